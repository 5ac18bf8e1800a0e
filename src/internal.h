/* Internal helpers shared by the parts of libsegidx. Not installed. */
#ifndef SEGIDX_INTERNAL_H
#define SEGIDX_INTERNAL_H

#include "segidx.h"

#include <string.h>

/* Little-endian loads and stores at any alignment: memcpy compiles to one
 * move on the targets we care about and is defined behaviour everywhere. */
static inline uint16_t segidx__load16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t segidx__load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t segidx__load64(const uint8_t *p)
{
    return (uint64_t)segidx__load32(p) | (uint64_t)segidx__load32(p + 4) << 32;
}

static inline void segidx__store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void segidx__store32(uint8_t *p, uint32_t v)
{
    segidx__store16(p, (uint16_t)v);
    segidx__store16(p + 2, (uint16_t)(v >> 16));
}

static inline void segidx__store64(uint8_t *p, uint64_t v)
{
    segidx__store32(p, (uint32_t)v);
    segidx__store32(p + 4, (uint32_t)(v >> 32));
}

/* Population count. The builtin is one instruction only where the target
 * has POPCNT (-mpopcnt, -march=x86-64-v2 or later); elsewhere GCC calls a
 * libgcc routine, slower than this branch-free SWAR count. */
static inline unsigned segidx__popcount64(uint64_t x)
{
#if defined(__POPCNT__) || defined(__aarch64__)
    return (unsigned)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

/* The KV key order: memcmp, a key that prefixes another sorting first. */
static inline int segidx__key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

/* Ids are compared for equality on every lookup: two loads, no call. */
static inline bool segidx__id_equal(const uint8_t *a, const uint8_t *b)
{
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, a, 8);
    memcpy(&a1, a + 8, 8);
    memcpy(&b0, b, 8);
    memcpy(&b1, b + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

/* A bucket hash of a 16-byte id (a vid or a sid). Ids may be anything a
 * host picks (counters, UUIDs, hashes), so both halves are mixed: ids
 * differing in any byte spread over the buckets, and the high bits are as
 * good as the low ones (the loader picks its shard with them). */
static inline uint64_t segidx__id_hash(const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

/* What a host callback returned, as the library passes it on: 0 and the
 * library's own codes as they are; a positive value or any other negative
 * one (an errno, a host's own code) is SEGIDX_EIO, so that a caller never
 * sees a code segidx_strerror() does not know, nor a positive value where
 * an error was meant. SEGIDX_ERANGE too: no callback has a range to report,
 * and -5 is -EIO on Linux, the errno a host most likely passes on. */
static inline int segidx__host_rc(int rc)
{
    return rc <= 0 && rc >= SEGIDX_EFULL && rc != SEGIDX_ERANGE ? rc : SEGIDX_EIO;
}

/* XXH3-64 of a byte range, the one checksum every format uses (seed 0). */
uint64_t segidx__xxh3(const void *p, size_t n);



/* A commit segment that answers part of a find_segments query: the offsets
 * of the query it holds (`cut`, owned by the array's holder). */
typedef struct segidx__find_hit {
    segidx_sid sid;
    segidx_lsn lsn;
    segidx_offset_set *cut;
} segidx__find_hit;

/* segidx_volume_find_segments() without the callback: the hits, newest
 * first, handed over with their cuts (free with segidx__find_hits_free).
 * On an error *hits is NULL, *n is 0 and `query` is as it was. */
int segidx__volume_find(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                        segidx_offset_set *query, segidx__find_hit **hits, size_t *n);
/* Accepts NULL. */
void segidx__find_hits_free(segidx__find_hit *hits, size_t n);

/* Exchange the contents of two sets (restoring a query after a failure). */
void segidx__offset_set_swap(segidx_offset_set *a, segidx_offset_set *b);
/* a |= b; false if that could not be done. */
bool segidx__offset_set_union(segidx_offset_set *a, const segidx_offset_set *b);
/* The offsets of `s` in [lo, hi], ascending, at most `cap` of them, into
 * `out`; returns how many. */
size_t segidx__offset_set_range(const segidx_offset_set *s, uint32_t lo, uint32_t hi,
                                uint32_t *out, size_t cap);
/* segidx_offset_set_serialize() into a new malloc'd buffer, after `prefix`
 * bytes left for the caller (a KV key): the set is run-optimized, sized and
 * written once. *len is the stored form's length (without the prefix).
 * SEGIDX_OK or SEGIDX_ENOMEM (then *out is NULL). */
int segidx__offset_set_serialize_after(const segidx_offset_set *s, size_t prefix, uint8_t **out,
                                       size_t *len);
/* Remove v[0..n) from s. */
void segidx__offset_set_remove_many(segidx_offset_set *s, const uint32_t *v, size_t n);
/* Remove every offset above x. */
void segidx__offset_set_remove_above(segidx_offset_set *s, uint32_t x);
/* Whether two sets share an offset. */
bool segidx__offset_set_intersects(const segidx_offset_set *a, const segidx_offset_set *b);
/* The largest offset of a non-empty set. */
uint32_t segidx__offset_set_max(const segidx_offset_set *s);
/* segidx_offset_set_deserialize(buf, len) and then segidx_offset_set_cut
 * (query, that set), without building the stored set: the bytes are checked
 * exactly as deserialize checks them (same return for bad bytes), and only
 * the stored containers whose key `query` has are read into memory. On
 * success *cut is a new set (empty when nothing is shared), removed from
 * `query`, and *stored_card (may be NULL) the stored set's cardinality. On
 * any error `query` and *cut are as they were. */
int segidx__offset_set_cut_stored(segidx_offset_set *query, const void *buf, size_t len,
                                  segidx_offset_set **cut, uint64_t *stored_card);

/* How many threads wait for an in-memory store's lock, each way: lets a
 * test know that a thread is blocked before it goes on. */
void segidx__kv_mem_waiting(const segidx_kv *kv, unsigned *readers, unsigned *writers);

/* The host's allocator, or libc's when `a` is NULL. Sizes travel with every
 * call so that arena allocators need no headers. */
void *segidx__alloc(const segidx_allocator *a, size_t size);
void *segidx__resize(const segidx_allocator *a, void *ptr, size_t old_size, size_t new_size);
void segidx__release(const segidx_allocator *a, void *ptr, size_t size);
/* alloc, zeroed, with the count * size overflow check calloc would make. */
void *segidx__alloc_array(const segidx_allocator *a, size_t count, size_t size);
/* A libc-allocated array with room for element `n`: `array` itself, or a
 * copy with *cap doubled (from `first`). NULL when out of memory; then
 * `array` and *cap are as they were. */
void *segidx__grow(void *array, size_t *cap, size_t n, size_t size, size_t first);

#endif
