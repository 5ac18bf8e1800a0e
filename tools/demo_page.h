/* demo_page.h: what `segidx demo` writes, shared with its crash trials
 * (tests/demo_crash.c), which re-derive every page from the (volume,
 * offset, lsn) it should hold instead of trusting anything the killed
 * writer left behind. A page names its (volume, offset, lsn) in text, and
 * the rest of it is a function of those three. */
#ifndef SEGIDX_DEMO_PAGE_H
#define SEGIDX_DEMO_PAGE_H

#include <segidx.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../tests/support/splitmix64.h"

#define DEMO_PAGE_SIZE 4096u


/* Volume `v` of a run: the run's 8-byte prefix, altered so that vids and
 * sids differ, then `v` big-endian in the last four bytes, where
 * demo_vid_volume() finds it again. */
static inline void demo_vid(const uint8_t prefix[8], unsigned v, segidx_vid *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->bytes, prefix, 8);
    out->bytes[7] ^= 0x5a;
    for (int i = 0; i < 4; i++)
        out->bytes[12 + i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline unsigned demo_vid_volume(const segidx_vid *vid)
{
    return (unsigned)vid->bytes[12] << 24 | (unsigned)vid->bytes[13] << 16 |
           (unsigned)vid->bytes[14] << 8 | vid->bytes[15];
}

/* What page `off` of volume `v` holds at `lsn`: DEMO_PAGE_SIZE bytes. */
static inline void demo_page_fill(unsigned char *page, unsigned v, segidx_offset off,
                                  segidx_lsn lsn)
{
    uint64_t st = (uint64_t)v << 40 ^ (uint64_t)off << 20 ^ lsn;
    for (size_t i = 0; i < DEMO_PAGE_SIZE; i += 8) {
        uint64_t x = splitmix64(&st);
        memcpy(page + i, &x, 8);
    }
    int n = snprintf((char *)page, 64, "segidx demo: volume %u offset %u lsn %llu", v,
                     (unsigned)off, (unsigned long long)lsn);
    page[n] = '\n';
}

#endif
