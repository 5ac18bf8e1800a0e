/* The reference workloads of the benchmarks' targets, from one seeded
 * generator, shared by the benchmarks and the tests:
 *
 *   W1  the write path: 50 volumes, one commit each, 4090 pages, one
 *       version per offset. Pages per volume follow 1/rank (a few busy
 *       volumes, many quiet ones); each volume has 2^12..2^20 pages
 *       (log-uniform) and its offsets are Zipf(1) over them, so hot low
 *       pages cluster and a long tail is scattered.
 *   W2  a compacted segment: 8 volumes, 4090 pages; each chosen offset
 *       (Zipf(1) over 2^16 pages) has 1-8 versions with distinct LSNs
 *       inside one span of 1000.
 *   W3  a bulk load: one volume, one commit, 4090 contiguous offsets.
 *   WR  random: 1..20 volumes, 1..3000 pages, offsets anywhere in u32
 *       or clustered, 1..4 versions over spans up to 65535.
 *
 * 4090 pages of 4 KiB plus their checksums exceed 16 MiB, so segments of
 * these workloads are built with WORKLOAD_MAX_BYTES. */
#ifndef SEGIDX_WORKLOAD_H
#define SEGIDX_WORKLOAD_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segidx.h"
#include "splitmix64.h"

#define WORKLOAD_PAGES 4090u
#define WORKLOAD_MAX_BYTES (32u << 20)

typedef struct wl_page {
    segidx_vid vid;
    uint32_t off;
    uint64_t lsn;
} wl_page;

typedef struct workload {
    const char *name;
    wl_page *pages;
    uint32_t n, cap;
    uint64_t rng;
} workload;

static inline uint64_t wl_next(workload *w)
{
    return splitmix64(&w->rng);
}

static inline double wl_unit(workload *w)
{
    return (double)(wl_next(w) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static inline uint64_t wl_below(workload *w, uint64_t n)
{
    return wl_next(w) % n;
}

/* Zipf(1) over [0, size): continuous inverse CDF of 1/(x+1). */
static inline uint32_t wl_zipf(workload *w, uint64_t size)
{
    double x = exp(wl_unit(w) * log((double)size + 1.0)) - 1.0;
    uint64_t v = (uint64_t)x;
    return (uint32_t)(v < size ? v : size - 1);
}

static inline segidx_vid wl_vid(workload *w)
{
    segidx_vid v;
    uint64_t a = wl_next(w), b = wl_next(w);
    memcpy(v.bytes, &a, 8);
    memcpy(v.bytes + 8, &b, 8);
    return v;
}

static inline void wl_push(workload *w, const segidx_vid *vid, uint32_t off, uint64_t lsn)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1024;
        w->pages = realloc(w->pages, w->cap * sizeof *w->pages);
        if (!w->pages)
            abort();
    }
    w->pages[w->n++] = (wl_page){ *vid, off, lsn };
}

/* Local order in a segment: (vid, offset, lsn). A qsort comparator. */
static inline int wl_compare(const void *pa, const void *pb)
{
    const wl_page *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    if (a->off != b->off)
        return a->off < b->off ? -1 : 1;
    return (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

/* Whether (vid, off, lsn) with any lsn in [lo, hi] is already there among
 * the pages from `from` on: generators use it to keep offsets distinct. */
static inline bool wl_has_offset(const workload *w, uint32_t from, const segidx_vid *vid,
                                 uint32_t off)
{
    for (uint32_t i = from; i < w->n; i++)
        if (w->pages[i].off == off && memcmp(w->pages[i].vid.bytes, vid->bytes, 16) == 0)
            return true;
    return false;
}

static inline void wl_free(workload *w)
{
    free(w->pages);
    memset(w, 0, sizeof *w);
}

static inline workload wl_w1(uint64_t seed)
{
    workload w = { "W1", NULL, 0, 0, seed };
    const uint32_t volumes = 50;
    double harmonic = 0;
    for (uint32_t v = 0; v < volumes; v++)
        harmonic += 1.0 / (v + 1);
    for (uint32_t v = 0; v < volumes; v++) {
        uint32_t quota = v + 1 == volumes ? WORKLOAD_PAGES - w.n
                                          : (uint32_t)(WORKLOAD_PAGES / (harmonic * (v + 1)));
        uint64_t size = (uint64_t)exp2(12.0 + 8.0 * wl_unit(&w));
        if (size < 4ull * quota)
            size = 4ull * quota;
        segidx_vid vid = wl_vid(&w);
        uint64_t lsn = 1 + wl_below(&w, 1000000);
        uint32_t from = w.n;
        while (w.n - from < quota) {
            uint32_t off = wl_zipf(&w, size);
            if (!wl_has_offset(&w, from, &vid, off))
                wl_push(&w, &vid, off, lsn);
        }
    }
    return w;
}

static inline workload wl_w2(uint64_t seed)
{
    workload w = { "W2", NULL, 0, 0, seed };
    const uint32_t volumes = 8, quota = WORKLOAD_PAGES / volumes;
    for (uint32_t v = 0; v < volumes; v++) {
        segidx_vid vid = wl_vid(&w);
        uint64_t base = 1 + wl_below(&w, 1000000);
        uint32_t from = w.n, want = v + 1 == volumes ? WORKLOAD_PAGES - w.n : quota;
        while (w.n - from < want) {
            uint32_t off = wl_zipf(&w, 1u << 16);
            if (wl_has_offset(&w, from, &vid, off))
                continue;
            uint32_t versions = 1 + (uint32_t)wl_below(&w, 8);
            uint64_t lsns[8];
            for (uint32_t k = 0; k < versions && w.n - from < want; k++) {
                uint64_t lsn;
                bool again;
                do { /* distinct LSNs for one offset */
                    lsn = base + wl_below(&w, 1000);
                    again = false;
                    for (uint32_t j = 0; j < k; j++)
                        again |= lsns[j] == lsn;
                } while (again);
                lsns[k] = lsn;
                wl_push(&w, &vid, off, lsn);
            }
        }
    }
    return w;
}

static inline workload wl_w3(uint64_t seed)
{
    workload w = { "W3", NULL, 0, 0, seed };
    segidx_vid vid = wl_vid(&w);
    uint32_t first = (uint32_t)wl_below(&w, 1u << 30);
    uint64_t lsn = 1 + wl_below(&w, 1000000);
    for (uint32_t i = 0; i < WORKLOAD_PAGES; i++)
        wl_push(&w, &vid, first + i, lsn);
    return w;
}

static inline workload wl_random(uint64_t seed)
{
    workload w = { "WR", NULL, 0, 0, seed };
    uint32_t volumes = 1 + (uint32_t)wl_below(&w, 20);
    for (uint32_t v = 0; v < volumes; v++) {
        segidx_vid vid = wl_vid(&w);
        uint32_t pages = 1 + (uint32_t)wl_below(&w, 3000 / volumes);
        uint64_t span = 1 + wl_below(&w, wl_below(&w, 2) ? 65535 : 50);
        uint64_t base = 1 + wl_below(&w, UINT64_MAX / 2);
        bool clustered = wl_below(&w, 2);
        uint32_t center = (uint32_t)wl_next(&w);
        uint32_t from = w.n;
        for (uint32_t i = 0; i < pages;) {
            uint32_t off = clustered ? center + (uint32_t)wl_below(&w, 4 * pages + 1)
                                     : (uint32_t)wl_next(&w);
            if (wl_below(&w, 50) == 0)
                off = wl_below(&w, 2) ? 0 : UINT32_MAX;
            if (wl_has_offset(&w, from, &vid, off))
                continue;
            uint32_t versions = 1 + (uint32_t)wl_below(&w, 4);
            uint64_t lsn = base + wl_below(&w, span);
            for (uint32_t k = 0; k < versions && i < pages && lsn < base + span; k++, i++) {
                wl_push(&w, &vid, off, lsn);
                lsn += 1 + wl_below(&w, span / 4 + 1);
            }
        }
    }
    return w;
}

/* The bytes of a page: a function of (vid, off, lsn), so that any reader
 * can tell a right page from a wrong one. */
static inline void wl_fill_page(void *page, uint32_t page_size, const wl_page *p)
{
    uint64_t x = p->lsn * 0x9E3779B97F4A7C15ull ^ p->off;
    uint64_t vid;
    memcpy(&vid, p->vid.bytes, 8);
    x ^= vid;
    uint8_t *b = page;
    for (uint32_t i = 0; i < page_size; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(b + i, &x, 8);
    }
}

#endif
