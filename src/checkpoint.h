/* Checkpoints of the volume index (docs/FORMAT.md, "Checkpoints"): the
 * schedule of rounds, images and deltas; the chunk map, which is how one
 * chunk of an image or a delta is stored; and lists of versions, which is
 * how they are built in memory. No store calls here: volume_index.c reads
 * and writes, this file decides what. Not installed. */
#ifndef SEGIDX_CHECKPOINT_H
#define SEGIDX_CHECKPOINT_H

#include "internal.h"

/* Offsets per chunk: a chunk map holds the offsets c << 12 .. c << 12 | 4095. */
#define SEGIDX__CHUNK_BITS 12
#define SEGIDX__CHUNK_OFFSETS (1u << SEGIDX__CHUNK_BITS)

#define SEGIDX__CKPT_MAX_COMMITS (1u << 24)
#define SEGIDX__CKPT_MAX_FANOUT 64
#define SEGIDX__CKPT_MAX_LEVELS 6

/* A volume's schedule, as its meta (version 2) stores it. */
typedef struct segidx__ckpt_policy {
    segidx_lsn from;  /* C0: round 0's LSN; 0 = the volume has no checkpoints */
    uint32_t commits; /* K */
    uint8_t fanout;   /* F */
    uint8_t levels;   /* L */
} segidx__ckpt_policy;

/* Whether the fields are in range (from not checked). */
bool segidx__ckpt_policy_valid(const segidx__ckpt_policy *p);
/* F^(level - 1): the rounds a delta of `level` (1..L) spans. */
uint64_t segidx__ckpt_span(const segidx__ckpt_policy *p, unsigned level);
/* F^L: rounds between two images. */
uint64_t segidx__ckpt_image_every(const segidx__ckpt_policy *p);
/* The LSN that round n ends at. */
static inline segidx_lsn segidx__ckpt_round_lsn(const segidx__ckpt_policy *p, uint64_t n)
{
    return p->from + n * p->commits;
}
/* The newest round ending at or before `lsn` (>= from). */
static inline uint64_t segidx__ckpt_round_of(const segidx__ckpt_policy *p, segidx_lsn lsn)
{
    return (lsn - p->from) / p->commits;
}
/* The newest image round at or before round n. */
uint64_t segidx__ckpt_image_round(const segidx__ckpt_policy *p, uint64_t n);
/* The lowest LSN a value of `level` at round LSN `round` may name. */
segidx_lsn segidx__ckpt_min_lsn(const segidx__ckpt_policy *p, unsigned level, segidx_lsn round);
/* The highest delta level stored at round n (>= 1, not an image round). */
unsigned segidx__ckpt_top_level(const segidx__ckpt_policy *p, uint64_t n);

/* One version of one offset: written by commit `lsn`. */
typedef struct segidx__ver {
    uint32_t off;
    segidx_lsn lsn;
} segidx__ver;

/* A growable list of versions. */
typedef struct segidx__vers {
    segidx__ver *v;
    size_t n, cap;
} segidx__vers;

void segidx__vers_free(segidx__vers *l);
/* Room for `more` versions. SEGIDX_OK or SEGIDX_ENOMEM. */
int segidx__vers_reserve(segidx__vers *l, size_t more);
/* Append every offset of `s` with `lsn`. SEGIDX_OK or SEGIDX_ENOMEM. */
int segidx__vers_add_set(segidx__vers *l, const segidx_offset_set *s, segidx_lsn lsn);
/* Keep, for each offset, the first of its versions in the list (callers
 * append newest first), sorted by offset. SEGIDX_OK or SEGIDX_ENOMEM. */
int segidx__vers_newest(segidx__vers *l);

/* A chunk map, parsed in place (the bytes stay the caller's). */
typedef struct segidx__chunk_map {
    unsigned level;
    segidx_lsn round;
    uint32_t chunk;
    unsigned count, width;
    bool bitmap;
    const uint8_t *offsets, *lsns;
    uint16_t rank[SEGIDX__CHUNK_OFFSETS / 64]; /* bitmap: bits set before each word */
} segidx__chunk_map;

/* Check every structural fact FORMAT.md lists (not the LSN range, which
 * depends on the schedule: segidx__chunk_map_lsn checks each LSN taken).
 * SEGIDX_OK, SEGIDX_EVERSION or SEGIDX_ECORRUPT. */
int segidx__chunk_map_parse(const void *val, size_t len, segidx__chunk_map *m);
/* Whether the map holds `off` (an offset of its chunk); if so, its
 * position among the map's offsets through *i. */
bool segidx__chunk_map_find(const segidx__chunk_map *m, uint32_t off, unsigned *i);
/* The LSN at position i, checked to lie in [min_lsn, round]: SEGIDX_OK or
 * SEGIDX_ECORRUPT. */
int segidx__chunk_map_lsn(const segidx__chunk_map *m, unsigned i, segidx_lsn min_lsn,
                          segidx_lsn *lsn);
/* Every version the map holds, each LSN checked as above. */
int segidx__vers_add_map(segidx__vers *l, const segidx__chunk_map *m, segidx_lsn min_lsn);

/* The bytes of the chunk map of v[0..n) (one chunk, sorted by offset,
 * distinct, every lsn <= round, n >= 1), and in *width the width of its
 * rLSNs, which encode takes so that the map is measured once. */
size_t segidx__chunk_map_size(const segidx__ver *v, size_t n, segidx_lsn round, unsigned *width);
/* Write it; `out` holds segidx__chunk_map_size() bytes, `width` what that
 * call set. */
void segidx__chunk_map_encode(const segidx__ver *v, size_t n, unsigned level, segidx_lsn round,
                              unsigned width, uint8_t *out);

#endif
