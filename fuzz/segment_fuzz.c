/* Fuzz target: segidx_segment_open() and segidx_segment_open_tail(), and
 * everything one does with an open segment.
 *
 * Each input is tried up to three times, each time from a malloc'd buffer
 * of exactly its length (so that ASan sees any read past either end):
 *  1. as it is, which exercises the framing checks (magics, versions,
 *     flags, the length equation, both checksums);
 *  2. "resealed": the footer's header_checksum and checksum recomputed for
 *     the bytes as they are (when the footer's index_len fits the input),
 *     so that mutated indexes get past the checksum and reach the
 *     structural validation;
 *  3. "reframed": magics, versions, flags and reserved bytes set, the
 *     footer's index_offset and index_len derived from its page_count,
 *     page_size and the input's length, the header made a copy of the
 *     footer, then resealed; so that bytes inserted into or erased from
 *     the index still give a segment whose index is what gets validated.
 * A pass runs only when its bytes differ from the previous pass's.
 *
 * Every buffer is also read by an independent reading of docs/FORMAT.md
 * and of format version 3 (spec_full() / spec_tail() below, bounds-checked
 * everywhere, sharing no code with src/). Open must succeed exactly when
 * that reading accepts the bytes in a version the library reads; a failed
 * open must return SEGIDX_ECORRUPT or SEGIDX_EVERSION (the latter exactly
 * when a known magic carries a version the library does not read) and leave
 * `*out` alone. The tail path (segidx_segment_tail_len on the last 64
 * bytes, segidx_segment_open_tail on an exact-size copy of the tail) must
 * agree with the same reading of the tail, and must succeed whenever the
 * full open did.
 *
 * An open segment (whole or tail-only) is checked against the pages the
 * reading decoded: stats, every volume, iterate (all, early stop, per
 * volume, unknown volume), find for every page at its LSN and around it and
 * for queries derived from the input (its first page's bytes and a PRNG
 * seeded by its hash), offsets, page_range, check_page and verify. Any
 * broken invariant prints what broke and calls abort().
 *
 * Builds as a libFuzzer target and, with fuzz/replay.c, as a plain program
 * that replays a corpus (fuzz/corpus/segment, written by
 * fuzz/make_segment_corpus.c).
 */
#include <segidx.h>

#include "../tests/support/splitmix64.h"
#include "fuzz_check.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* docs/FORMAT.md, "Segment": sizes and field positions, written out here
 * rather than taken from src/ so that a wrong constant there shows. */
#define HEADER_BYTES 64u
#define FOOTER_BYTES 64u
#define SUM_BYTES 8u
#define MAX_PAGES 65535u
#define MAX_SEGMENT 0xFFFFFFFFull
/* footer */
#define F_INDEX_OFFSET 0
#define F_INDEX_LEN 8
#define F_PAGE_COUNT 12
#define F_VOLUME_COUNT 16
#define F_PAGE_SIZE 20
#define F_SID 24
#define F_HEADER_SUM 40
#define F_SUM 48
#define F_VERSION 56
#define F_FLAGS 58
#define F_MAGIC 60
/* header */
#define H_VERSION 4
#define H_FLAGS 6
#define H_PAGE_SIZE 8
#define H_PAGE_COUNT 12
#define H_VOLUME_COUNT 16
#define H_INDEX_LEN 20
#define H_SID 24
#define H_RESERVED 40

/* Version 3's offset kinds 2 and 3, as the library reports them
 * (SEGIDX_OFFSETS_KEYED and SEGIDX_OFFSETS_KEYED_PACKED). */
#define MODEL_EXPONENT_EF 4u
#define MODEL_EXPONENT_PACKED 5u

/* Elias-Fano: one select sample per this many zeros of the high bits. */
#define EF_SAMPLE_ZEROS 32u

/* Queries from the input's first page: this many 8-byte records at most. */
#define CTL_RECORDS 32u
/* PRNG queries per open segment. */
#define RANDOM_QUERIES 96u

static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    CHECK(q != NULL);
    if (n)
        memcpy(q, p, n);
    return q;
}

/* ------------------------------------------------ the spec, read independently */

struct mvol {
    segidx_vid vid;
    uint64_t base, max_lsn;
    uint32_t first_page, pages, offsets, first_offset, span;
    unsigned encoding, width, rlsn_bits; /* width: bytes (version 2: rlsn_bits rounded up) */
    unsigned kind, sh, k;                /* version 2 and 3: the kind byte; sh, k of kinds 2, 3 */
    bool versions;
    uint64_t index_bytes;
};

struct mpage {
    uint32_t vol;
    uint32_t off;
    uint64_t lsn;
};

/* What a reading by docs/FORMAT.md makes of some bytes. */
struct model {
    unsigned version;
    uint32_t page_size, page_count, volume_count, index_len;
    uint64_t segment_len;
    segidx_sid sid;
    struct mvol *vols;
    struct mpage *pages; /* page_count, in local order */
    const char *why;     /* set when the bytes are refused */
};

static void model_free(struct model *m)
{
    free(m->vols);
    free(m->pages);
    m->vols = NULL;
    m->pages = NULL;
}

static bool refuse(struct model *m, const char *why)
{
    m->why = why;
    return false;
}

/* A bounded reader. */
struct rd {
    const uint8_t *p;
    size_t pos, len;
};

static const uint8_t *rd_take(struct rd *r, uint64_t n)
{
    if (n > (uint64_t)(r->len - r->pos))
        return NULL;
    const uint8_t *q = r->p + r->pos;
    r->pos += (size_t)n;
    return q;
}

/* Unsigned LEB128, at most 10 bytes, no redundant zero group, no u64
 * overflow, at most `max`. */
static bool rd_varint(struct rd *r, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        const uint8_t *b = rd_take(r, 1);
        if (!b)
            return false;
        uint64_t group = *b & 0x7Fu;
        if (i == 9 && group > 1)
            return false;
        v |= group << (7 * i);
        if (!(*b & 0x80)) {
            if (i > 0 && *b == 0)
                return false;
            *out = v;
            return v <= max;
        }
    }
    return false;
}

static unsigned bit_at(const uint8_t *p, uint64_t i)
{
    return p[i / 8] >> (i % 8) & 1u;
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* The offsets of a bitmap volume, into x (n values). */
static bool spec_bitmap(struct model *m, struct rd *r, const struct mvol *v, uint32_t *x)
{
    uint64_t words = ceil_div((uint64_t)v->span + 1, 64);
    const uint8_t *bits = rd_take(r, 8 * words);
    const uint8_t *samples = bits ? rd_take(r, 2 * ceil_div(words, 4)) : NULL;
    if (!samples)
        return refuse(m, "bitmap runs past the index");
    uint64_t ones = 0;
    for (uint64_t w = 0; w < words; w++) {
        if (w % 4 == 0 && get16(samples + 2 * (w / 4)) != ones)
            return refuse(m, "bitmap rank sample");
        for (unsigned b = 0; b < 64; b++) {
            uint64_t pos = 64 * w + b;
            if (!bit_at(bits, pos))
                continue;
            if (pos > v->span)
                return refuse(m, "bitmap bit past the span");
            if (ones == v->offsets)
                return refuse(m, "bitmap has too many bits");
            x[ones++] = (uint32_t)pos;
        }
    }
    if (ones != v->offsets)
        return refuse(m, "bitmap has too few bits");
    if (x[0] != 0 || x[ones - 1] != v->span)
        return refuse(m, "bitmap misses bit 0 or bit span");
    return true;
}

/* The offsets of an Elias-Fano volume, into x (n values). */
static bool spec_elias_fano(struct model *m, struct rd *r, const struct mvol *v, uint32_t *x)
{
    uint64_t n = v->offsets, span = v->span;
    uint64_t q = (span + 1) / n;
    unsigned l = 0;
    while (q >= 2 && (q >> (l + 1)) != 0)
        l++;
    CHECK(l <= 32);
    uint64_t buckets = (span >> l) + 1, nbits = n + buckets;
    const uint8_t *low = rd_take(r, ceil_div(n * l, 8));
    const uint8_t *high = low ? rd_take(r, 8 * ceil_div(nbits, 64)) : NULL;
    const uint8_t *samples = high ? rd_take(r, 2 * ceil_div(buckets, EF_SAMPLE_ZEROS)) : NULL;
    if (!samples)
        return refuse(m, "Elias-Fano runs past the index");
    uint64_t ones = 0, zeros = 0;
    for (uint64_t pos = 0; pos < 64 * ceil_div(nbits, 64); pos++) {
        unsigned bit = bit_at(high, pos);
        if (pos >= nbits) {
            if (bit)
                return refuse(m, "Elias-Fano high padding");
            continue;
        }
        if (!bit) {
            if (zeros % EF_SAMPLE_ZEROS == 0) {
                if (zeros / EF_SAMPLE_ZEROS >= ceil_div(buckets, EF_SAMPLE_ZEROS))
                    return refuse(m, "Elias-Fano has too many zeros");
                if (get16(samples + 2 * (zeros / EF_SAMPLE_ZEROS)) != ones)
                    return refuse(m, "Elias-Fano select sample");
            }
            zeros++;
            continue;
        }
        if (ones == n)
            return refuse(m, "Elias-Fano has too many elements");
        uint64_t lowbits = 0;
        for (unsigned k = 0; k < l; k++)
            lowbits |= (uint64_t)bit_at(low, ones * l + k) << k;
        uint64_t value = (pos - ones) << l | lowbits;
        if (value > span)
            return refuse(m, "Elias-Fano element past the span");
        if (ones == 0 ? value != 0 : value <= x[ones - 1])
            return refuse(m, "Elias-Fano elements not increasing from 0");
        x[ones++] = (uint32_t)value;
    }
    if (ones != n || zeros != buckets)
        return refuse(m, "Elias-Fano counts");
    if (x[n - 1] != span)
        return refuse(m, "Elias-Fano last element is not the span");
    for (uint64_t b = n * l; b < 8 * ceil_div(n * l, 8); b++)
        if (bit_at(low, b))
            return refuse(m, "Elias-Fano low padding");
    return true;
}

/* One volume's data: offsets, version ranks, rLSNs; fills its pages. */
static bool spec_volume_data(struct model *m, struct rd *r, uint32_t vi, uint32_t *x)
{
    struct mvol *v = &m->vols[vi];
    size_t start = r->pos;
    if (v->encoding == SEGIDX_OFFSETS_RANGE) {
        if ((uint64_t)v->offsets != (uint64_t)v->span + 1)
            return refuse(m, "range count is not span + 1");
        for (uint32_t i = 0; i < v->offsets; i++)
            x[i] = i;
    } else if (v->encoding == SEGIDX_OFFSETS_BITMAP) {
        if (!spec_bitmap(m, r, v, x))
            return false;
    } else if (!spec_elias_fano(m, r, v, x)) {
        return false;
    }
    const uint8_t *ranks = NULL;
    if (v->versions) {
        ranks = rd_take(r, 2ull * v->offsets);
        if (!ranks)
            return refuse(m, "version ranks run past the index");
        for (uint32_t i = 0; i < v->offsets; i++) {
            uint32_t k = get16(ranks + 2 * i);
            if (i == 0 ? k != 0 : k <= get16(ranks + 2 * (i - 1)))
                return refuse(m, "version ranks not increasing from 0");
            if (k >= v->pages)
                return refuse(m, "version rank past the volume");
        }
    } else if (v->offsets != v->pages) {
        return refuse(m, "no version ranks, yet offsets != pages");
    }
    if (v->versions && (v->offsets == v->pages || v->width == 0))
        return refuse(m, "kind bit 4 set, yet every offset has one version");
    const uint8_t *rlsn = rd_take(r, (uint64_t)v->width * v->pages);
    if (!rlsn)
        return refuse(m, "rLSNs run past the index");
    uint64_t min_first = UINT64_MAX;
    v->max_lsn = 0;
    for (uint32_t i = 0; i < v->offsets; i++) {
        uint32_t page = ranks ? get16(ranks + 2 * i) : i;
        uint32_t end = !ranks ? i + 1 : i + 1 < v->offsets ? get16(ranks + 2 * (i + 1)) : v->pages;
        uint64_t lsn = 0;
        for (uint32_t k = page; k < end; k++) {
            uint64_t d = v->width == 0 ? 0 : v->width == 1 ? rlsn[k] : get16(rlsn + 2 * k);
            if (k == page) {
                if (d > UINT64_MAX - v->base)
                    return refuse(m, "LSN overflows u64");
                lsn = v->base + d;
                if (d < min_first)
                    min_first = d;
            } else {
                if (d == 0)
                    return refuse(m, "LSN list not strictly increasing");
                if (d > UINT64_MAX - lsn)
                    return refuse(m, "LSN overflows u64");
                lsn += d;
            }
            if (lsn > v->max_lsn)
                v->max_lsn = lsn;
            m->pages[v->first_page + k] = (struct mpage){ vi, v->first_offset + x[i], lsn };
        }
    }
    if (min_first != 0)
        return refuse(m, "base_lsn is not the smallest LSN");
    v->index_bytes += r->pos - start;
    return true;
}

/* ------------------------------------------------ format version 2 */

static unsigned nbits(uint64_t v)
{
    unsigned b = 0;
    for (; v; v >>= 1)
        b++;
    return b;
}

static uint64_t bits_get(const uint8_t *p, uint64_t at, unsigned w)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < w; k++)
        v |= (uint64_t)bit_at(p, at + k) << k;
    return v;
}

static bool padding_zero(const uint8_t *p, uint64_t bits)
{
    for (uint64_t b = bits; b < 8 * ceil_div(bits, 8); b++)
        if (bit_at(p, b))
            return false;
    return true;
}

/* Partitioned Elias-Fano: top directory, records, chunk stream. */
static bool spec_partitioned(struct model *m, struct rd *r, const struct mvol *v, uint32_t *x)
{
    const uint64_t mask = (1u << 26) - 1;
    uint64_t n = v->offsets, span = v->span, chunks = ceil_div(n, 64);
    unsigned t = 0;
    while (t < 32 && (span >> t) + 1 > 2 * chunks)
        t++;
    uint64_t entries = (span >> t) + 1;
    const uint8_t *top = rd_take(r, 2 * (entries + 1));
    const uint8_t *rec = top ? rd_take(r, 8 * (chunks + 1)) : NULL;
    if (!rec)
        return refuse(m, "partitioned: directory or records run past the index");
    uint32_t end_where = get32(rec + 8 * chunks + 4);
    if (get32(rec + 8 * chunks) != 0 || end_where > mask)
        return refuse(m, "partitioned: end record");
    uint64_t total = end_where;
    const uint8_t *st = rd_take(r, ceil_div(total, 8));
    if (!st)
        return refuse(m, "partitioned: stream runs past the index");
    if (!padding_zero(st, total))
        return refuse(m, "partitioned: stream padding");
    uint64_t k = 0;
    for (uint64_t c = 0; c < chunks; c++) {
        uint32_t first = get32(rec + 8 * c), where = get32(rec + 8 * c + 4);
        uint64_t pos = where & mask, l = where >> 26, end = get32(rec + 8 * c + 12) & mask;
        uint64_t nc = n - 64 * c < 64 ? n - 64 * c : 64;
        if (c == 0 && (pos != 0 || first != 0))
            return refuse(m, "partitioned: first chunk");
        if (l > 31 || end < pos || end > total || end - pos < nc * (l + 1))
            return refuse(m, "partitioned: chunk position or width");
        uint64_t high = end - pos - nc * l, ones = 0, zeros = 0;
        for (uint64_t q = 0; q < high; q++) {
            if (!bit_at(st, pos + q)) {
                zeros++;
                continue;
            }
            if (ones == nc)
                return refuse(m, "partitioned: too many elements in a chunk");
            uint64_t y = zeros << l | bits_get(st, pos + high + ones * l, (unsigned)l);
            uint64_t value = first + y;
            if (ones == 0 ? y != 0 : value <= x[k - 1])
                return refuse(m, "partitioned: chunk elements not rising from first");
            if (ones == 0 && c > 0 && value <= x[k - 1])
                return refuse(m, "partitioned: chunk not above the previous");
            if (value > span)
                return refuse(m, "partitioned: element past the span");
            x[k++] = (uint32_t)value;
            ones++;
        }
        if (ones != nc)
            return refuse(m, "partitioned: too few elements in a chunk");
        uint64_t last = x[k - 1] - first;
        if (zeros != (last >> l) + 1)
            return refuse(m, "partitioned: bucket count");
        if ((last >> l) >= nc || (l > 0 && (last >> (l - 1)) < nc))
            return refuse(m, "partitioned: low width not minimal");
    }
    if (x[n - 1] != span)
        return refuse(m, "partitioned: last element is not the span");
    for (uint64_t j = 0, c = 0; j <= entries; j++) {
        if (j == entries) {
            if (get16(top + 2 * j) != chunks - 1)
                return refuse(m, "partitioned: directory end");
            break;
        }
        while (c + 1 < chunks && x[64 * (c + 1)] <= j << t)
            c++;
        if (get16(top + 2 * j) != c)
            return refuse(m, "partitioned: directory value");
    }
    return true;
}

/* ------------------------------------------------ format version 3 */

/* The key of x: y = x >> sh, s = bits(y) - 1 - k when that is positive,
 * key = (s << k) + (y >> s); its values keep w = s + sh low bits. */
static uint64_t exp_key(uint64_t x, unsigned sh, unsigned k, unsigned *w)
{
    uint64_t y = x >> sh;
    unsigned e = nbits(y), s = e > k + 1 ? e - 1 - k : 0;
    *w = s + sh;
    return ((uint64_t)s << k) + (y >> s);
}

/* What every value of key j shares: x >> w == the result. Written from
 * the key's inverse, not from exp_key(), so that the two check each
 * other (see the CHECK in spec_exponent()). */
static uint64_t exp_key_top(uint64_t j, unsigned sh, unsigned k, unsigned *w)
{
    if (j < 2ull << k) {
        *w = sh;
        return j;
    }
    *w = (unsigned)((j >> k) - 1) + sh;
    return (1ull << k) + (j & ((1ull << k) - 1));
}

/* ceil(log2 n), 0 for n = 1. */
static unsigned ceil_log2(uint64_t n)
{
    return n <= 1 ? 0 : nbits(n - 1);
}

/* An Elias-Fano bucket of n >= 1 values of w bits keeps l = w - hb low
 * bits each, hb = min(w, ceil(log2 n)), behind n + 2^hb high bits. */
static unsigned exp_ef_low_width(uint64_t n, unsigned w)
{
    unsigned cl = ceil_log2(n);
    return w < cl ? 0 : w - cl;
}

/* Bytes of an Elias-Fano (kind 2) or packed (kind 3) bucket of n values
 * of w bits. */
static uint64_t exp_bucket_bytes(unsigned kind, uint64_t n, unsigned w)
{
    if (n == 0)
        return 0;
    if (kind == 3)
        return ceil_div(n * w, 8);
    unsigned l = exp_ef_low_width(n, w);
    return ceil_div(n + (1ull << (w - l)) + n * l, 8);
}

/* The n values of one bucket, into v: false when the bytes are not
 * exactly what the kind writes for them. */
static bool exp_bucket_values(const uint8_t *b, unsigned kind, uint64_t n, unsigned w,
                              uint64_t *v)
{
    uint64_t used;
    if (n == 0) /* an empty key: no bytes */
        return true;
    if (kind == 3) {
        if (n * w > 57 || (w == 0 && n > 1))
            return false;
        for (uint64_t i = 0; i < n; i++)
            v[i] = bits_get(b, i * w, w);
        used = n * w;
    } else {
        unsigned l = exp_ef_low_width(n, w);
        uint64_t high = n + (1ull << (w - l)), ones = 0; /* n + B */
        for (uint64_t pos = 0; pos < high; pos++) {
            if (!bit_at(b, pos))
                continue;
            if (ones == n)
                return false;
            v[ones] = (pos - ones) << l | bits_get(b, high + ones * l, l);
            ones++;
        }
        if (ones != n)
            return false;
        used = high + n * l;
    }
    for (uint64_t i = 0; i < n; i++)
        if (v[i] >> w != 0 || (i > 0 && v[i] <= v[i - 1]))
            return false;
    return padding_zero(b, used);
}

/* Kinds 2 and 3: a directory of K + 2 (rank, position) entries, then
 * the buckets key by key. */
static bool spec_exponent(struct model *m, struct rd *r, const struct mvol *v, uint32_t *x)
{
    if (v->sh > 31 || v->k > 24)
        return refuse(m, "exponent: sh or k");
    if (v->offsets > 65535)
        return refuse(m, "exponent: more offsets than a directory rank holds");
    unsigned w;
    uint64_t K = exp_key(v->span, v->sh, v->k, &w);
    const uint8_t *dir = rd_take(r, 4 * (K + 2));
    if (!dir)
        return refuse(m, "exponent: directory runs past the index");
    if (get32(dir) != 0 || get16(dir + 4 * (K + 1)) != v->offsets)
        return refuse(m, "exponent: first or last directory entry");
    uint32_t stream_len = get16(dir + 4 * (K + 1) + 2);
    const uint8_t *stream = rd_take(r, stream_len);
    if (!stream)
        return refuse(m, "exponent: bucket stream runs past the index");
    for (uint64_t j = 0; j <= K; j++) {
        uint32_t rank = get16(dir + 4 * j), pos = get16(dir + 4 * j + 2);
        uint32_t next_rank = get16(dir + 4 * j + 4), next_pos = get16(dir + 4 * j + 6);
        /* Checked here, not only at the end, so that no bucket is read
         * past the stream nor written past the offsets. */
        if (next_rank < rank || next_pos < pos || next_rank > v->offsets || next_pos > stream_len)
            return refuse(m, "exponent: directory falls");
        uint64_t n = next_rank - rank, vals[32];
        if (n > 32)
            return refuse(m, "exponent: more than 32 offsets in a key");
        uint64_t top = exp_key_top(j, v->sh, v->k, &w);
        if (next_pos - pos != exp_bucket_bytes(v->kind, n, w))
            return refuse(m, "exponent: bucket length");
        if (!exp_bucket_values(stream + pos, v->kind, n, w, vals))
            return refuse(m, "exponent: bucket values");
        for (uint64_t i = 0; i < n; i++) {
            uint64_t value = top << w | vals[i];
            unsigned vw;
            CHECK(exp_key(value, v->sh, v->k, &vw) == j && vw == w);
            if (value > v->span)
                return refuse(m, "exponent: value past the span");
            CHECK(rank + i == 0 || value > x[rank + i - 1]);
            x[rank + i] = (uint32_t)value;
        }
    }
    if (x[0] != 0 || x[v->offsets - 1] != v->span)
        return refuse(m, "exponent: first value is not 0 or last is not the span");
    return true;
}

static bool spec_volume_data_v2(struct model *m, struct rd *r, uint32_t vi, uint32_t *x)
{
    struct mvol *v = &m->vols[vi];
    size_t start = r->pos;
    if (v->encoding == SEGIDX_OFFSETS_RANGE) {
        if ((uint64_t)v->offsets != (uint64_t)v->span + 1)
            return refuse(m, "range count is not span + 1");
        for (uint32_t i = 0; i < v->offsets; i++)
            x[i] = i;
    } else if ((uint64_t)v->offsets > (uint64_t)v->span + 1) {
        return refuse(m, "more offsets than the span holds");
    } else if (v->kind >= 2) {
        if (!spec_exponent(m, r, v, x))
            return false;
    } else if (!spec_partitioned(m, r, v, x)) {
        return false;
    }
    const uint8_t *ranks = NULL;
    unsigned rb = 0;
    if (v->offsets < v->pages) {
        rb = nbits(v->pages - 1);
        ranks = rd_take(r, ceil_div((uint64_t)v->offsets * rb, 8));
        if (!ranks)
            return refuse(m, "version ranks run past the index");
        if (!padding_zero(ranks, (uint64_t)v->offsets * rb))
            return refuse(m, "version ranks padding");
        for (uint32_t i = 0; i < v->offsets; i++) {
            uint64_t k = bits_get(ranks, (uint64_t)i * rb, rb);
            if (i == 0 ? k != 0 : k <= bits_get(ranks, (uint64_t)(i - 1) * rb, rb))
                return refuse(m, "version ranks not increasing from 0");
            if (k >= v->pages)
                return refuse(m, "version rank past the volume");
        }
    }
    unsigned w = v->rlsn_bits;
    const uint8_t *rlsn = rd_take(r, ceil_div((uint64_t)v->pages * w, 8));
    if (!rlsn)
        return refuse(m, "rLSNs run past the index");
    if (!padding_zero(rlsn, (uint64_t)v->pages * w))
        return refuse(m, "rLSN padding");
    uint64_t min = UINT64_MAX, max = 0;
    for (uint32_t i = 0; i < v->offsets; i++) {
        uint64_t page = ranks ? bits_get(ranks, (uint64_t)i * rb, rb) : i;
        uint64_t end = !ranks ? i + 1u
                       : i + 1 < v->offsets ? bits_get(ranks, (uint64_t)(i + 1) * rb, rb)
                                            : v->pages;
        for (uint64_t k = page; k < end; k++) {
            uint64_t d = bits_get(rlsn, k * w, w);
            if (k > page && d <= bits_get(rlsn, (k - 1) * w, w))
                return refuse(m, "LSN list not strictly increasing");
            min = d < min ? d : min;
            max = d > max ? d : max;
            m->pages[v->first_page + k] = (struct mpage){ vi, v->first_offset + x[i], v->base + d };
        }
    }
    if (min != 0)
        return refuse(m, "base_lsn is not the smallest LSN");
    if (nbits(max) != w)
        return refuse(m, "rlsn_bits is not the width the largest rLSN needs");
    if (max > UINT64_MAX - v->base)
        return refuse(m, "LSN overflows u64");
    v->max_lsn = v->base + max;
    v->index_bytes += r->pos - start;
    return true;
}

static bool spec_index(struct model *m, const uint8_t *index)
{
    struct rd r = { index, 0, m->index_len };
    m->vols = calloc(m->volume_count, sizeof *m->vols);
    m->pages = calloc(m->page_count, sizeof *m->pages);
    CHECK(m->vols != NULL && m->pages != NULL);
    uint64_t pages = 0;
    for (uint32_t i = 0; i < m->volume_count; i++) {
        struct mvol *v = &m->vols[i];
        size_t start = r.pos;
        const uint8_t *vid = rd_take(&r, 16);
        uint64_t base, n_pages, n_offsets, first, span;
        if (!vid || !rd_varint(&r, UINT64_MAX, &base) || !rd_varint(&r, MAX_PAGES, &n_pages) ||
            !rd_varint(&r, n_pages, &n_offsets) || !rd_varint(&r, UINT32_MAX, &first) ||
            !rd_varint(&r, UINT32_MAX - first, &span))
            return refuse(m, "volume entry: varint");
        const uint8_t *kind = rd_take(&r, m->version >= 2 ? 2 : 1);
        if (!kind)
            return refuse(m, "volume entry runs past the index");
        if (base == 0 || n_pages == 0 || n_offsets == 0)
            return refuse(m, "volume entry: zero base, pages or offsets");
        if (m->version >= 2 && (kind[0] > (m->version == 3 ? 3 : 1) || kind[1] > 16))
            return refuse(m, "volume entry: kind or rlsn_bits");
        /* Kinds 2 and 3 carry sh and k after rlsn_bits. */
        const uint8_t *shk = NULL;
        if (m->version == 3 && kind[0] >= 2 && !(shk = rd_take(&r, 2)))
            return refuse(m, "volume entry runs past the index");
        if (m->version == 1 && (*kind & 0xE0 || (*kind & 3) == 3 || (*kind >> 2 & 3) == 3))
            return refuse(m, "volume entry: kind");
        memcpy(v->vid.bytes, vid, 16);
        if (i && memcmp(m->vols[i - 1].vid.bytes, vid, 16) >= 0)
            return refuse(m, "vids not strictly increasing");
        v->base = base;
        v->first_page = (uint32_t)pages;
        pages += n_pages;
        if (pages > m->page_count)
            return refuse(m, "volume pages exceed page_count");
        v->pages = (uint32_t)n_pages;
        v->offsets = (uint32_t)n_offsets;
        v->first_offset = (uint32_t)first;
        v->span = (uint32_t)span;
        if (m->version >= 2) {
            static const unsigned encodings[4] = { SEGIDX_OFFSETS_RANGE, SEGIDX_OFFSETS_PARTITIONED,
                                                   MODEL_EXPONENT_EF, MODEL_EXPONENT_PACKED };
            v->kind = kind[0];
            v->encoding = encodings[kind[0]];
            v->sh = shk ? shk[0] : 0;
            v->k = shk ? shk[1] : 0;
            v->rlsn_bits = kind[1];
            v->width = (kind[1] + 7u) / 8u;
            v->versions = n_offsets < n_pages;
        } else {
            v->encoding = *kind & 3u;
            v->width = *kind >> 2 & 3u;
            v->versions = *kind & 0x10;
        }
        v->index_bytes = r.pos - start;
    }
    if (pages != m->page_count)
        return refuse(m, "volume pages do not add up to page_count");
    uint32_t *x = malloc(m->page_count * sizeof *x);
    CHECK(x != NULL);
    bool ok = true;
    for (uint32_t i = 0; i < m->volume_count && ok; i++)
        ok = m->version >= 2 ? spec_volume_data_v2(m, &r, i, x) : spec_volume_data(m, &r, i, x);
    free(x);
    if (ok && r.pos != r.len)
        return refuse(m, "index has bytes left over");
    return ok;
}

/* The footer, against the segment's length. */
static bool spec_footer(struct model *m, const uint8_t *f, uint64_t segment_len)
{
    if (memcmp(f + F_MAGIC, "SXSF", 4) != 0)
        return refuse(m, "footer magic");
    if (get16(f + F_VERSION) < 1 || get16(f + F_VERSION) > 3)
        return refuse(m, "footer version");
    m->version = get16(f + F_VERSION);
    if (get16(f + F_FLAGS) != 0)
        return refuse(m, "footer flags");
    uint32_t ps = get32(f + F_PAGE_SIZE), pc = get32(f + F_PAGE_COUNT);
    uint32_t vc = get32(f + F_VOLUME_COUNT), il = get32(f + F_INDEX_LEN);
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
        return refuse(m, "footer page_size");
    if (pc < 1 || pc > MAX_PAGES || vc < 1 || vc > pc)
        return refuse(m, "footer page or volume count");
    uint64_t index_offset = HEADER_BYTES + (uint64_t)pc * (ps + SUM_BYTES);
    if (get64(f + F_INDEX_OFFSET) != index_offset)
        return refuse(m, "footer index_offset");
    if (segment_len != index_offset + il + FOOTER_BYTES || segment_len > MAX_SEGMENT)
        return refuse(m, "segment length");
    /* Implied by the index (a volume entry takes at least 16 + 5 + 1
     * bytes), and segidx_segment_tail_len() may refuse it from the footer
     * alone. */
    if ((uint64_t)vc * 22 > il)
        return refuse(m, "index_len too small for volume_count entries");
    m->page_size = ps;
    m->page_count = pc;
    m->volume_count = vc;
    m->index_len = il;
    m->segment_len = segment_len;
    memcpy(m->sid.bytes, f + F_SID, 16);
    return true;
}

static bool spec_checksum(struct model *m, const uint8_t *f)
{
    if (get64(f + F_SUM) != XXH3_64bits(f - m->index_len, (size_t)m->index_len + F_SUM))
        return refuse(m, "checksum");
    return true;
}

static bool spec_header(struct model *m, const uint8_t *h, const uint8_t *f)
{
    if (memcmp(h, "SXSG", 4) != 0)
        return refuse(m, "header magic");
    if (get16(h + H_VERSION) != m->version)
        return refuse(m, "header version");
    if (get16(h + H_FLAGS) != 0)
        return refuse(m, "header flags");
    if (get32(h + H_PAGE_SIZE) != m->page_size || get32(h + H_PAGE_COUNT) != m->page_count ||
        get32(h + H_VOLUME_COUNT) != m->volume_count || get32(h + H_INDEX_LEN) != m->index_len ||
        memcmp(h + H_SID, m->sid.bytes, 16) != 0)
        return refuse(m, "header differs from the footer");
    for (unsigned i = H_RESERVED; i < HEADER_BYTES; i++)
        if (h[i])
            return refuse(m, "header reserved bytes");
    if (get64(f + F_HEADER_SUM) != XXH3_64bits(h, HEADER_BYTES))
        return refuse(m, "header_checksum");
    return true;
}

/* The whole segment. */
static bool spec_full(struct model *m, const uint8_t *p, size_t len)
{
    memset(m, 0, sizeof *m);
    if (len < HEADER_BYTES + FOOTER_BYTES)
        return refuse(m, "shorter than header + footer");
    const uint8_t *f = p + len - FOOTER_BYTES;
    return spec_footer(m, f, len) && spec_header(m, p, f) && spec_checksum(m, f) &&
           spec_index(m, f - m->index_len);
}

/* The tail alone: page checksums, index, footer. */
static bool spec_tail(struct model *m, const uint8_t *p, size_t len, uint64_t segment_len)
{
    memset(m, 0, sizeof *m);
    if (len < FOOTER_BYTES)
        return refuse(m, "tail shorter than a footer");
    const uint8_t *f = p + len - FOOTER_BYTES;
    if (!spec_footer(m, f, segment_len))
        return false;
    if ((uint64_t)len != (uint64_t)m->page_count * SUM_BYTES + m->index_len + FOOTER_BYTES)
        return refuse(m, "tail length");
    return spec_checksum(m, f) && spec_index(m, f - m->index_len);
}

/* ------------------------------------------------------------ the model's answers */

static int page_cmp(const struct model *m, const struct mpage *p, const segidx_vid *vid,
                    uint32_t off, uint64_t lsn)
{
    int c = memcmp(m->vols[p->vol].vid.bytes, vid->bytes, 16);
    if (c)
        return c;
    if (p->off != off)
        return p->off < off ? -1 : 1;
    return (p->lsn > lsn) - (p->lsn < lsn);
}

/* The local index of the newest version of (vid, off) at or below lsn, or -1. */
static int64_t model_find(const struct model *m, const segidx_vid *vid, uint32_t off, uint64_t lsn)
{
    uint32_t lo = 0, hi = m->page_count; /* first page > key */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (page_cmp(m, &m->pages[mid], vid, off, lsn) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const struct mpage *p = &m->pages[lo - 1];
    if (p->off != off || memcmp(m->vols[p->vol].vid.bytes, vid->bytes, 16) != 0)
        return -1;
    return lo - 1;
}

static int64_t model_volume(const struct model *m, const segidx_vid *vid)
{
    for (uint32_t i = 0; i < m->volume_count; i++)
        if (memcmp(m->vols[i].vid.bytes, vid->bytes, 16) == 0)
            return i;
    return -1;
}

/* The decoded pages must be in strictly increasing (vid, offset, lsn)
 * order: that follows from the rules the reading enforced. */
static void model_self_check(const struct model *m)
{
    for (uint32_t i = 1; i < m->page_count; i++) {
        const struct mpage *p = &m->pages[i];
        CHECK(page_cmp(m, &m->pages[i - 1], &m->vols[p->vol].vid, p->off, p->lsn) < 0);
    }
}

/* ------------------------------------------------------------ using a segment */

struct use {
    const segidx_segment *s;
    const struct model *m;
    const uint8_t *pages;   /* the segment's page area, NULL for tail-only */
    const uint8_t *full;    /* the whole segment's bytes (for check_page), or NULL */
};

static const void *expected_page(const struct use *u, uint32_t local)
{
    return u->pages ? u->pages + (size_t)local * u->m->page_size : NULL;
}

/* The library's internal switch to the lookups compiled for any x86-64
 * (instead of its POPCNT and BMI2 copy): find is checked through both. */
void segidx__segment_use_generic(segidx_segment *s, bool generic);

static void check_find(const struct use *u, const segidx_vid *vid, uint32_t off, uint64_t lsn)
{
    static max_align_t untouched;
    segidx_page_ref ref = { &untouched, 0xDEADBEEFu, 0x5EED };
    segidx_page_ref generic = ref;
    segidx__segment_use_generic((segidx_segment *)u->s, true);
    int rc_generic = segidx_segment_find(u->s, vid, off, lsn, &generic);
    segidx__segment_use_generic((segidx_segment *)u->s, false);
    int rc = segidx_segment_find(u->s, vid, off, lsn, &ref);
    CHECK(rc == rc_generic && ref.page == generic.page && ref.local == generic.local &&
          ref.lsn == generic.lsn);
    int64_t want = model_find(u->m, vid, off, lsn);
    bool ok;
    if (want < 0)
        ok = rc == SEGIDX_ENOTFOUND && ref.page == (const void *)&untouched &&
             ref.local == 0xDEADBEEFu && ref.lsn == 0x5EED;
    else
        ok = rc == SEGIDX_OK && ref.local < u->m->page_count && ref.local == (uint64_t)want &&
             ref.lsn == u->m->pages[want].lsn && ref.page == expected_page(u, (uint32_t)want);
    if (ok)
        return;
    fprintf(stderr, "segment_fuzz: find(vid ");
    for (int i = 0; i < 16; i++)
        fprintf(stderr, "%02x", vid->bytes[i]);
    fprintf(stderr, ", off %u, lsn %llu)%s: rc %d local %u lsn %llu; model: ", (unsigned)off,
            (unsigned long long)lsn, u->pages ? "" : " [tail]", rc, (unsigned)ref.local,
            (unsigned long long)ref.lsn);
    if (want < 0)
        fprintf(stderr, "not found\n");
    else
        fprintf(stderr, "local %lld lsn %llu\n", (long long)want,
                (unsigned long long)u->m->pages[want].lsn);
    CHECK(!"find agrees with the model");
}

/* Iterate: the pages of volumes [from, to) in order, each as the model
 * has it; stops with `stop_rc` after page `stop_at` if that is set. */
struct walk {
    const struct use *u;
    uint32_t next, end;
    uint32_t stop_at;
    int stop_rc;
    bool have_prev;
    segidx_vid prev_vid;
    uint32_t prev_off;
    uint64_t prev_lsn;
};

static int walk_page(void *ctx, const segidx_segment_page *p)
{
    struct walk *w = ctx;
    const struct model *m = w->u->m;
    CHECK(p != NULL && p->vid != NULL);
    if (w->have_prev) { /* strictly increasing (vid, offset, lsn) */
        int c = memcmp(w->prev_vid.bytes, p->vid->bytes, 16);
        CHECK(c < 0 || (c == 0 && (w->prev_off < p->offset ||
                                   (w->prev_off == p->offset && w->prev_lsn < p->lsn))));
    }
    w->have_prev = true;
    w->prev_vid = *p->vid;
    w->prev_off = p->offset;
    w->prev_lsn = p->lsn;
    CHECK(w->next < w->end);
    CHECK(p->local == w->next);
    CHECK(p->local < m->page_count);
    const struct mpage *want = &m->pages[w->next];
    CHECK(memcmp(p->vid->bytes, m->vols[want->vol].vid.bytes, 16) == 0);
    CHECK(p->offset == want->off);
    CHECK(p->lsn == want->lsn);
    CHECK(p->page == expected_page(w->u, p->local));
    if (w->stop_rc && w->next == w->stop_at) {
        w->next++;
        return w->stop_rc;
    }
    w->next++;
    return 0;
}

static int never_called(void *ctx, const segidx_segment_page *p)
{
    (void)ctx, (void)p;
    CHECK(!"iterate called back for an unknown volume");
    return 0;
}

static void check_iterate(const struct use *u, uint64_t *rng)
{
    const struct model *m = u->m;
    struct walk all = { u, 0, m->page_count, 0, 0, false, { { 0 } }, 0, 0 };
    CHECK(segidx_segment_iterate(u->s, NULL, walk_page, &all) == 0);
    CHECK(all.next == m->page_count);

    uint32_t stop = (uint32_t)(splitmix64(rng) % m->page_count);
    struct walk early = { u, 0, m->page_count, stop, 77, false, { { 0 } }, 0, 0 };
    CHECK(segidx_segment_iterate(u->s, NULL, walk_page, &early) == 77);
    CHECK(early.next == stop + 1);

    uint32_t pick[3] = { 0, m->volume_count - 1, (uint32_t)(splitmix64(rng) % m->volume_count) };
    for (int i = 0; i < 3; i++) {
        const struct mvol *v = &m->vols[pick[i]];
        struct walk one = { u, v->first_page, v->first_page + v->pages, 0, 0, false, { { 0 } },
                            0, 0 };
        CHECK(segidx_segment_iterate(u->s, &v->vid, walk_page, &one) == 0);
        CHECK(one.next == v->first_page + v->pages);
    }
}

/* A vid the segment does not hold, near one it does. */
static segidx_vid unknown_vid(const struct model *m, uint64_t *rng)
{
    segidx_vid vid = m->vols[splitmix64(rng) % m->volume_count].vid;
    for (;;) {
        int i = 15;
        while (i >= 0 && ++vid.bytes[i] == 0)
            i--;
        if (model_volume(m, &vid) < 0)
            return vid;
    }
}

/* What the library reports as the offset encoding of version 3's kinds 2
 * and 3 (-1 where the segment has none), as its first volume of each kind
 * says: every other volume of the kind must say the same, and the two
 * kinds must differ. */
static void check_volumes(const struct use *u)
{
    const struct model *m = u->m;
    segidx_segment_stats st;
    memset(&st, 0xA5, sizeof st);
    segidx_segment_stats_get(u->s, &st);
    CHECK(memcmp(st.sid.bytes, m->sid.bytes, 16) == 0);
    CHECK(st.page_size == m->page_size);
    CHECK(st.page_count == m->page_count);
    CHECK(st.volume_count == m->volume_count);
    CHECK(st.index_bytes == m->index_len);
    CHECK(st.segment_bytes == m->segment_len);

    uint64_t index_bytes = 0;
    for (uint32_t i = 0; i < m->volume_count; i++) {
        const struct mvol *v = &m->vols[i];
        segidx_segment_volume got;
        CHECK(segidx_segment_volume_get(u->s, i, &got) == SEGIDX_OK);
        CHECK(memcmp(got.vid.bytes, v->vid.bytes, 16) == 0);
        CHECK(got.first_page == v->first_page);
        CHECK(got.page_count == v->pages);
        CHECK(got.offset_count == v->offsets);
        CHECK(got.first_offset == v->first_offset);
        CHECK(got.last_offset == v->first_offset + v->span);
        CHECK(got.min_lsn == v->base);
        CHECK(got.max_lsn == v->max_lsn);
        CHECK(got.offset_encoding == (int)v->encoding);
        CHECK(got.rlsn_width == v->width);
        CHECK(got.index_bytes == v->index_bytes);
        index_bytes += got.index_bytes;
    }
    CHECK(index_bytes == m->index_len);
    segidx_segment_volume none;
    memset(&none, 0x5A, sizeof none);
    segidx_segment_volume before = none;
    CHECK(segidx_segment_volume_get(u->s, m->volume_count, &none) == SEGIDX_EINVAL);
    CHECK(memcmp(&none, &before, sizeof none) == 0);
}

/* Queries around every page, then from the input's first page, then from
 * the PRNG. */
static void check_finds(const struct use *u, const uint8_t *ctl, size_t ctl_len, uint64_t *rng)
{
    const struct model *m = u->m;
    for (uint32_t i = 0; i < m->page_count; i++) {
        const struct mpage *p = &m->pages[i];
        const segidx_vid *vid = &m->vols[p->vol].vid;
        check_find(u, vid, p->off, p->lsn); /* itself, by the model */
        segidx_page_ref ref;
        CHECK(segidx_segment_find(u->s, vid, p->off, p->lsn, &ref) == SEGIDX_OK);
        CHECK(ref.local == i); /* and by the brief's own words */
        check_find(u, vid, p->off, p->lsn - 1);
        check_find(u, vid, p->off, p->lsn + 1);
        if (i + 1 == m->page_count || m->pages[i + 1].off != p->off ||
            m->pages[i + 1].vol != p->vol) { /* the last version of an offset */
            check_find(u, vid, p->off, UINT64_MAX);
            check_find(u, vid, p->off + 1, p->lsn);
        }
        if (i == 0 || m->pages[i - 1].off != p->off || m->pages[i - 1].vol != p->vol)
            check_find(u, vid, p->off - 1, p->lsn);
    }
    segidx_vid unknown = unknown_vid(m, rng);
    check_find(u, &unknown, m->pages[0].off, UINT64_MAX);

    for (size_t k = 0; k + 8 <= ctl_len && k / 8 < CTL_RECORDS; k += 8) {
        const uint8_t *c = ctl + k;
        uint32_t vi = c[0] % (m->volume_count + 1u);
        const struct mvol *v = &m->vols[vi < m->volume_count ? vi : 0];
        segidx_vid vid = vi < m->volume_count ? v->vid : unknown;
        int32_t delta = (int32_t)get32(c + 1);
        uint32_t off = (c[7] & 1) ? (uint32_t)delta : v->first_offset + (uint32_t)(delta >> 8);
        uint64_t lsn = (c[7] & 2) ? v->max_lsn - (int8_t)c[5] : v->base + (int8_t)c[6];
        check_find(u, &vid, off, lsn);
    }

    for (unsigned k = 0; k < RANDOM_QUERIES; k++) {
        uint64_t r = splitmix64(rng), r2 = splitmix64(rng);
        const struct mpage *p = &m->pages[r % m->page_count];
        const struct mvol *v = &m->vols[p->vol];
        segidx_vid vid = v->vid;
        switch (r >> 32 & 7) {
        case 0: vid = unknown; break;
        case 1: vid.bytes[r2 % 16] ^= (uint8_t)(1u << (r2 >> 8) % 8); break;
        default: break;
        }
        uint32_t off;
        switch (r >> 36 & 7) {
        case 0: off = (uint32_t)r2; break;
        case 1: off = v->first_offset - 1; break;
        case 2: off = v->first_offset + v->span + 1; break;
        case 3: off = v->first_offset + (uint32_t)(r2 % ((uint64_t)v->span + 1)); break;
        case 4: off = r2 & 1 ? 0 : UINT32_MAX; break;
        default: off = p->off + (uint32_t)(r2 % 5) - 2; break;
        }
        uint64_t lsn;
        switch (r >> 40 & 7) {
        case 0: lsn = splitmix64(rng); break;
        case 1: lsn = v->base - 1; break;
        case 2: lsn = v->max_lsn; break;
        case 3: lsn = r2 & 1 ? 0 : UINT64_MAX; break;
        case 4: lsn = v->base + (r2 >> 16) % (v->max_lsn - v->base + 1); break;
        default: lsn = p->lsn + (r2 >> 16) % 5 - 2; break;
        }
        check_find(u, &vid, off, lsn);
    }
}

/* find_many per volume (and for an unknown one): a sorted list of its
 * offsets, some repeated, some neighbours, both ends of u32, at LSNs
 * around the volume's; each answer as the model's, misses marked. */
static void check_find_many(const struct use *u, uint64_t *rng)
{
    const struct model *m = u->m;
    size_t cap = 2 * (size_t)m->page_count + 8;
    uint32_t *offs = malloc(cap * sizeof *offs);
    segidx_page_ref *out = malloc(cap * sizeof *out);
    CHECK(offs && out);
    segidx_vid unknown = unknown_vid(m, rng);
    for (uint32_t vi = 0; vi <= m->volume_count; vi++) {
        const struct mvol *v = &m->vols[vi < m->volume_count ? vi : 0];
        const segidx_vid *vid = vi < m->volume_count ? &v->vid : &unknown;
        size_t n = 0;
        uint64_t r = splitmix64(rng);
        if (r & 1)
            offs[n++] = 0;
        for (uint32_t k = v->first_page; k < v->first_page + v->pages; k++) {
            uint64_t pick = splitmix64(rng);
            if (pick % 4 != 0)
                offs[n++] = m->pages[k].off;
            if (pick % 16 == 1)
                offs[n++] = m->pages[k].off + 1;
        }
        if (r & 2)
            offs[n++] = UINT32_MAX;
        for (size_t i = 1; i < n; i++) /* insertion sort: small lists */
            for (size_t j = i; j > 0 && offs[j - 1] > offs[j]; j--) {
                uint32_t t = offs[j];
                offs[j] = offs[j - 1];
                offs[j - 1] = t;
            }
        uint64_t lsns[3] = { v->base + (r >> 8) % (v->max_lsn - v->base + 1), v->max_lsn,
                             (r & 4) ? UINT64_MAX : v->base - 1 };
        for (int l = 0; l < 3; l++) {
            int rc = segidx_segment_find_many(u->s, vid, lsns[l], offs, n, out);
            bool all = true;
            for (size_t i = 0; i < n; i++) {
                int64_t want = model_find(m, vid, offs[i], lsns[l]);
                if (want < 0) {
                    all = false;
                    CHECK(out[i].lsn == 0 && out[i].local == UINT32_MAX && out[i].page == NULL);
                } else {
                    CHECK(out[i].local == (uint64_t)want && out[i].lsn == m->pages[want].lsn);
                    CHECK(out[i].page == expected_page(u, (uint32_t)want));
                }
            }
            CHECK(rc == (all ? SEGIDX_OK : SEGIDX_ENOTFOUND));
        }
        if (n >= 2 && offs[0] != offs[n - 1]) { /* out of order: refused, out untouched */
            uint32_t t = offs[0];
            offs[0] = offs[n - 1];
            offs[n - 1] = t;
            out[0].local = 77;
            CHECK(segidx_segment_find_many(u->s, vid, v->max_lsn, offs, n, out) == SEGIDX_EINVAL);
            CHECK(out[0].local == 77);
        }
    }
    free(offs);
    free(out);
}

static void check_offsets(const struct use *u, uint64_t *rng)
{
    const struct model *m = u->m;
    const struct mpage *p = &m->pages[splitmix64(rng) % m->page_count];
    const segidx_vid *vid = &m->vols[p->vol].vid;
    uint64_t lsns[2] = { p->lsn, m->vols[p->vol].base };
    for (int k = 0; k < 2; k++) {
        segidx_offset_set *set = NULL;
        CHECK(segidx_segment_offsets(u->s, vid, lsns[k], &set) == SEGIDX_OK);
        CHECK(set != NULL);
        const struct mvol *v = &m->vols[p->vol];
        uint64_t want = 0;
        for (uint32_t i = v->first_page; i < v->first_page + v->pages; i++)
            if (m->pages[i].lsn == lsns[k]) {
                want++;
                CHECK(segidx_offset_set_contains(set, m->pages[i].off));
            }
        CHECK(want > 0);
        CHECK(segidx_offset_set_cardinality(set) == want);
        segidx_offset_set_free(set);
    }
    segidx_vid unknown = unknown_vid(m, rng);
    segidx_offset_set *set = NULL;
    CHECK(segidx_segment_offsets(u->s, &unknown, p->lsn, &set) == SEGIDX_OK);
    CHECK(set != NULL && segidx_offset_set_is_empty(set));
    segidx_offset_set_free(set);
}

/* page_range and check_page for every page, against this target's own
 * XXH3 of the page bytes; then verify. */
static void check_pages(const struct use *u)
{
    const struct model *m = u->m;
    bool all_good = true;
    const uint8_t *sums = u->full ? u->full + HEADER_BYTES + (size_t)m->page_count * m->page_size
                                  : NULL;
    for (uint32_t i = 0; i < m->page_count; i++) {
        uint64_t at = 0;
        uint32_t len = 0;
        CHECK(segidx_segment_page_range(u->s, i, &at, &len) == SEGIDX_OK);
        CHECK(at == HEADER_BYTES + (uint64_t)i * m->page_size && len == m->page_size);
        if (!u->full)
            continue;
        bool good = XXH3_64bits(u->full + at, len) == get64(sums + 8 * (size_t)i);
        all_good &= good;
        CHECK(segidx_segment_check_page(u->s, i, u->full + at) ==
              (good ? SEGIDX_OK : SEGIDX_ECORRUPT));
    }
    uint64_t at = 7;
    uint32_t len = 9;
    CHECK(segidx_segment_page_range(u->s, m->page_count, &at, &len) == SEGIDX_EINVAL);
    CHECK(at == 7 && len == 9);
    if (u->full)
        CHECK(segidx_segment_check_page(u->s, m->page_count, u->full) == SEGIDX_EINVAL);
    int rc = segidx_segment_verify(u->s);
    if (!u->pages)
        CHECK(rc == SEGIDX_EINVAL);
    else
        CHECK(rc == (all_good ? SEGIDX_OK : SEGIDX_ECORRUPT));
}

static void use_segment(const struct use *u, const uint8_t *ctl, size_t ctl_len, uint64_t seed)
{
    uint64_t rng = seed;
    check_volumes(u);
    check_iterate(u, &rng);
    segidx_vid unknown = unknown_vid(u->m, &rng);
    CHECK(segidx_segment_iterate(u->s, &unknown, never_called, NULL) == SEGIDX_ENOTFOUND);
    check_finds(u, ctl, ctl_len, &rng);
    check_find_many(u, &rng);
    check_offsets(u, &rng);
    check_pages(u);
}

/* ------------------------------------------------------------ one buffer */

static bool known_code(int rc)
{
    return rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION;
}

/* SEGIDX_EVERSION exactly when a magic is right and its version is not
 * one the library reads (a known header version other than the footer's
 * is corrupt): the footer's always (it is read first), the header's once
 * the footer passed. */
static bool known_version(unsigned v)
{
    return v >= 1 && v <= 3;
}

static void check_version_rule(const uint8_t *p, size_t len, int rc, bool footer_ok)
{
    if (len < HEADER_BYTES + FOOTER_BYTES) {
        CHECK(rc == SEGIDX_ECORRUPT);
        return;
    }
    const uint8_t *f = p + len - FOOTER_BYTES;
    bool f_magic = memcmp(f + F_MAGIC, "SXSF", 4) == 0, f_v1 = known_version(get16(f + F_VERSION));
    bool h_magic = memcmp(p, "SXSG", 4) == 0, h_v1 = known_version(get16(p + H_VERSION));
    if (f_magic && !f_v1)
        CHECK(rc == SEGIDX_EVERSION);
    if (footer_ok && h_magic && !h_v1)
        CHECK(rc == SEGIDX_EVERSION);
    if (rc == SEGIDX_EVERSION)
        CHECK(f_magic && (!f_v1 || (h_magic && !h_v1)));
}

static void disagree(const char *what, int rc, const struct model *m)
{
    fprintf(stderr, "segment_fuzz: %s returned %d (%s) but the spec reading %s%s\n", what, rc,
            segidx_strerror(rc), m->why ? "refuses it: " : "accepts it",
            m->why ? m->why : "");
    abort();
}

static void run_one(const uint8_t *buf, size_t len, uint64_t seed)
{
    static max_align_t untouched;
    segidx_segment *const sentinel = (segidx_segment *)(void *)&untouched;

    struct model full_model, tail_model;
    bool full_spec = spec_full(&full_model, buf, len);
    if (full_spec)
        model_self_check(&full_model);
    segidx_segment *s = sentinel;
    int rc = segidx_segment_open(buf, len, &s);
    if (rc != SEGIDX_OK) {
        if (!known_code(rc)) {
            fprintf(stderr, "segment_fuzz: open returned %d (%s)\n", rc, segidx_strerror(rc));
            abort();
        }
        CHECK(s == sentinel);
        s = NULL;
    } else {
        CHECK(s != NULL && s != sentinel);
    }
    if ((rc == SEGIDX_OK) != full_spec)
        disagree("segment_open", rc, &full_model);

    /* The tail path, from the last 64 bytes. */
    bool footer_ok = false, tail_spec = false;
    segidx_segment *t = NULL;
    uint8_t *tail = NULL;
    size_t tail_len = 0;
    if (len >= FOOTER_BYTES) {
        const uint8_t *f = buf + len - FOOTER_BYTES;
        size_t got = 0x5A5A5A;
        int trc = segidx_segment_tail_len(f, len, &got);
        struct model fm;
        memset(&fm, 0, sizeof fm);
        footer_ok = spec_footer(&fm, f, len);
        if (trc != SEGIDX_OK) {
            CHECK(known_code(trc));
            CHECK(got == 0x5A5A5A);
            if (footer_ok)
                disagree("segment_tail_len", trc, &fm);
            bool f_magic = memcmp(f + F_MAGIC, "SXSF", 4) == 0;
            CHECK((trc == SEGIDX_EVERSION) == (f_magic && !known_version(get16(f + F_VERSION))));
        } else {
            if (!footer_ok)
                disagree("segment_tail_len", trc, &fm);
            tail_len = got;
            CHECK(tail_len == (uint64_t)fm.page_count * SUM_BYTES + fm.index_len + FOOTER_BYTES);
            CHECK(tail_len <= len && tail_len >= FOOTER_BYTES);
        }
        CHECK(rc != SEGIDX_OK || trc == SEGIDX_OK);
    }
    check_version_rule(buf, len, rc, footer_ok);

    if (footer_ok) {
        tail = copy_exact(buf + len - tail_len, tail_len);
        tail_spec = spec_tail(&tail_model, tail, tail_len, len);
        if (tail_spec)
            model_self_check(&tail_model);
        t = sentinel;
        int orc = segidx_segment_open_tail(tail, tail_len, len, &t);
        if (orc != SEGIDX_OK) {
            CHECK(known_code(orc));
            CHECK(t == sentinel);
            t = NULL;
        } else {
            CHECK(t != NULL && t != sentinel);
        }
        if ((orc == SEGIDX_OK) != tail_spec)
            disagree("segment_open_tail", orc, &tail_model);
        CHECK(rc != SEGIDX_OK || orc == SEGIDX_OK); /* whole opens => tail opens */

        /* A tail one byte long, or against another length, is refused. */
        segidx_segment *bad = sentinel;
        if (tail_len < len) {
            int brc = segidx_segment_open_tail(buf + len - tail_len - 1, tail_len + 1, len, &bad);
            CHECK(known_code(brc) && bad == sentinel);
        }
        CHECK(known_code(segidx_segment_open_tail(tail, tail_len, (uint64_t)len + 1, &bad)));
        CHECK(segidx_segment_open_tail(tail + tail_len, 0, len, &bad) == SEGIDX_ECORRUPT);
        CHECK(segidx_segment_open_tail(tail + tail_len - (FOOTER_BYTES - 1), FOOTER_BYTES - 1, len,
                                       &bad) == SEGIDX_ECORRUPT);
        CHECK(bad == sentinel);
        if (!tail_spec)
            model_free(&tail_model);
    }

    /* The queries an input's first page asks. */
    const uint8_t *ctl = NULL;
    size_t ctl_len = 0;
    if (len >= 2 * HEADER_BYTES) {
        ctl = buf + HEADER_BYTES;
        ctl_len = len - 2 * HEADER_BYTES;
        if (ctl_len > 8 * CTL_RECORDS)
            ctl_len = 8 * CTL_RECORDS;
    }
    if (s) {
        struct use u = { s, &full_model, buf + HEADER_BYTES, buf };
        use_segment(&u, ctl, ctl_len, seed);
    }
    if (t) {
        struct use u = { t, &tail_model, NULL, buf };
        use_segment(&u, ctl, ctl_len, seed);
        if (s) { /* both read the same index */
            CHECK(tail_model.page_count == full_model.page_count);
            CHECK(memcmp(tail_model.pages, full_model.pages,
                         full_model.page_count * sizeof *full_model.pages) == 0);
        }
    }
    segidx_segment_close(t);
    segidx_segment_close(s);
    if (tail_spec)
        model_free(&tail_model);
    model_free(&full_model);
    free(tail);
}

/* ------------------------------------------------------------ passes */

/* Recompute header_checksum and, when the footer's index_len leaves room
 * for it after the header, checksum. */
static void reseal(uint8_t *p, size_t len)
{
    if (len < HEADER_BYTES + FOOTER_BYTES)
        return;
    uint8_t *f = p + len - FOOTER_BYTES;
    put64(f + F_HEADER_SUM, XXH3_64bits(p, HEADER_BYTES));
    uint64_t il = get32(f + F_INDEX_LEN);
    if (il + HEADER_BYTES + FOOTER_BYTES <= len)
        put64(f + F_SUM, XXH3_64bits(f - il, (size_t)il + F_SUM));
}

/* Make every framing field right for the footer's page size and count and
 * the input's length, then reseal. False when the footer's page size or
 * count cannot frame this length. */
static bool reframe(uint8_t *p, size_t len)
{
    if (len < HEADER_BYTES + FOOTER_BYTES)
        return false;
    uint8_t *f = p + len - FOOTER_BYTES;
    uint32_t ps = get32(f + F_PAGE_SIZE), pc = get32(f + F_PAGE_COUNT);
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)) || pc < 1 || pc > MAX_PAGES)
        return false;
    uint64_t index_offset = HEADER_BYTES + (uint64_t)pc * (ps + SUM_BYTES);
    if (index_offset + FOOTER_BYTES > len || len - index_offset - FOOTER_BYTES > UINT32_MAX)
        return false;
    uint32_t il = (uint32_t)(len - index_offset - FOOTER_BYTES);
    put64(f + F_INDEX_OFFSET, index_offset);
    put32(f + F_INDEX_LEN, il);
    unsigned version = get16(f + F_VERSION);
    version = version == 2 || version == 3 ? version : 1;
    put16(f + F_VERSION, (uint16_t)version);
    put16(f + F_FLAGS, 0);
    memcpy(f + F_MAGIC, "SXSF", 4);
    memcpy(p, "SXSG", 4);
    put16(p + H_VERSION, (uint16_t)version);
    put16(p + H_FLAGS, 0);
    put32(p + H_PAGE_SIZE, ps);
    put32(p + H_PAGE_COUNT, pc);
    put32(p + H_VOLUME_COUNT, get32(f + F_VOLUME_COUNT));
    put32(p + H_INDEX_LEN, il);
    memcpy(p + H_SID, f + F_SID, 16);
    memset(p + H_RESERVED, 0, HEADER_BYTES - H_RESERVED);
    reseal(p, len);
    return true;
}

/* Once per process: the checksums this target forges must be the
 * library's and its reading of the spec must accept what the builder
 * writes, or passes 2 and 3 would silently test nothing. Also the
 * documented argument checks. */
static void self_check(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    segidx_segment_options opts = { 512, 0, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    CHECK(b != NULL);
    uint8_t page[512];
    segidx_vid v1 = { { 1 } }, v2 = { { 2 } };
    for (uint32_t i = 0; i < 6; i++) {
        memset(page, (int)i, sizeof page);
        CHECK(segidx_segment_builder_add(b, i < 3 ? &v1 : &v2, i * 1000, 5 + i % 2, page) ==
              SEGIDX_OK);
    }
    CHECK(segidx_segment_builder_add(b, &v1, 0, 300, page) == SEGIDX_OK);
    size_t n = segidx_segment_builder_size(b);
    uint8_t *seg = malloc(n), *copy = malloc(n);
    CHECK(seg && copy);
    segidx_sid sid = { { 9, 8, 7 } };
    CHECK(segidx_segment_builder_finish(b, &sid, seg, n) == SEGIDX_OK);
    segidx_segment_builder_free(b);

    memcpy(copy, seg, n);
    put64(copy + n - FOOTER_BYTES + F_SUM, 0);
    put64(copy + n - FOOTER_BYTES + F_HEADER_SUM, 0);
    reseal(copy, n);
    CHECK(memcmp(seg, copy, n) == 0);
    CHECK(reframe(copy, n) && memcmp(seg, copy, n) == 0);
    struct model m;
    CHECK(spec_full(&m, seg, n));
    CHECK(m.page_count == 7 && m.volume_count == 2);
    model_free(&m);

    segidx_segment *s = NULL;
    CHECK(segidx_segment_open(NULL, n, &s) == SEGIDX_EINVAL);
    CHECK(segidx_segment_open(seg, n, NULL) == SEGIDX_EINVAL);
    CHECK(segidx_segment_open_tail(NULL, n, n, &s) == SEGIDX_EINVAL);
    CHECK(segidx_segment_open_tail(seg, n, n, NULL) == SEGIDX_EINVAL);
    size_t tl;
    CHECK(segidx_segment_tail_len(NULL, n, &tl) == SEGIDX_EINVAL);
    CHECK(segidx_segment_tail_len(seg + n - FOOTER_BYTES, n, NULL) == SEGIDX_EINVAL);
    CHECK(s == NULL);
    CHECK(segidx_segment_open(seg, n, &s) == SEGIDX_OK);
    segidx_page_ref ref;
    CHECK(segidx_segment_find(NULL, &v1, 0, 5, &ref) == SEGIDX_EINVAL);
    CHECK(segidx_segment_find(s, NULL, 0, 5, &ref) == SEGIDX_EINVAL);
    CHECK(segidx_segment_find(s, &v1, 0, 5, NULL) == SEGIDX_EINVAL);
    CHECK(segidx_segment_iterate(s, NULL, NULL, NULL) == SEGIDX_EINVAL);
    segidx_offset_set *os = NULL;
    CHECK(segidx_segment_offsets(s, NULL, 5, &os) == SEGIDX_EINVAL);
    CHECK(segidx_segment_offsets(s, &v1, 5, NULL) == SEGIDX_EINVAL);
    CHECK(os == NULL);
    CHECK(segidx_segment_verify(NULL) == SEGIDX_EINVAL);
    CHECK(segidx_segment_volume_get(s, 0, NULL) == SEGIDX_EINVAL);
    segidx_segment_stats_get(s, NULL);
    segidx_segment_stats_get(NULL, NULL);
    segidx_segment_close(s);
    segidx_segment_close(NULL);
    free(copy);
    free(seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    self_check();
    uint64_t seed = XXH3_64bits(data, size);

    /* Pass 1: the bytes as they are, in a buffer of exactly their size. */
    uint8_t *buf = copy_exact(data, size);
    run_one(buf, size, seed);

    /* Pass 2: resealed. */
    reseal(buf, size);
    if (size && memcmp(buf, data, size) != 0)
        run_one(buf, size, seed);

    /* Pass 3: reframed and resealed. */
    uint8_t *framed = copy_exact(buf, size);
    if (reframe(framed, size) && memcmp(framed, buf, size) != 0)
        run_one(framed, size, seed);
    free(framed);
    free(buf);
    return 0;
}
