/* The segment format's constants and the arithmetic both its writer and its
 * reader need, so that the two cannot disagree. docs/FORMAT.md is the
 * reference; this file follows it. */
#ifndef SEGIDX_SEGMENT_FORMAT_H
#define SEGIDX_SEGMENT_FORMAT_H

#include "internal.h"

#define SEG_HEADER_BYTES 64u
#define SEG_FOOTER_BYTES SEGIDX_SEGMENT_FOOTER_BYTES
#define SEG_PAGE_SUM_BYTES 8u
/* Format versions: builders write SEG_VERSION; readers open all three. */
#define SEG_VERSION_1 1u
#define SEG_VERSION_2 2u
#define SEG_VERSION_3 3u
#define SEG_VERSION SEG_VERSION_3
#define SEG_MIN_PAGE_SIZE 512u
#define SEG_MAX_PAGE_SIZE 65536u
#define SEG_MAX_BYTES 0xFFFFFFFFu

static const uint8_t seg_header_magic[4] = { 'S', 'X', 'S', 'G' };
static const uint8_t seg_footer_magic[4] = { 'S', 'X', 'S', 'F' };

/* Footer field positions. */
#define FOOT_INDEX_OFFSET 0
#define FOOT_INDEX_LEN 8
#define FOOT_PAGE_COUNT 12
#define FOOT_VOLUME_COUNT 16
#define FOOT_PAGE_SIZE 20
#define FOOT_SID 24
#define FOOT_HEADER_SUM 40
#define FOOT_SUM 48
#define FOOT_VERSION 56
#define FOOT_FLAGS 58
#define FOOT_MAGIC 60

/* Header field positions. */
#define HEAD_VERSION 4
#define HEAD_FLAGS 6
#define HEAD_PAGE_SIZE 8
#define HEAD_PAGE_COUNT 12
#define HEAD_VOLUME_COUNT 16
#define HEAD_INDEX_LEN 20
#define HEAD_SID 24
#define HEAD_RESERVED 40

/* The kind byte of a volume entry. */
#define KIND_ENCODING_MASK 0x03u
#define KIND_WIDTH_SHIFT 2
#define KIND_WIDTH_MASK 0x0Cu
#define KIND_VERSIONS 0x10u
#define KIND_KNOWN_BITS 0x1Fu

/* Most bytes a volume entry takes: vid, five varints, kind (and, in
 * version 2, rlsn_bits). Version 3's sh and k are not counted: a builder
 * writes them only where the index still fits the segment's limit. */
#define VOLUME_ENTRY_MAX_BYTES (16u + 10u + 3u * 5u + 5u + 2u)

static inline uint64_t div_ceil(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Bytes of a bit stream of `bits` bits. */
static inline uint64_t stream_bytes(uint64_t bits)
{
    return div_ceil(bits, 8);
}

/* Version 2: the kind byte, and the partitioned Elias-Fano layout. */
#define KIND2_RANGE 0u
#define KIND2_PARTITIONED 1u
#define PEF_CHUNK 64u           /* offsets a chunk */
#define PEF_RECORD_BYTES 8u
#define PEF_POS_BITS 26u        /* where: bit position, then l */
#define PEF_POS_MASK ((1u << PEF_POS_BITS) - 1)
#define RLSN2_MAX_BITS 16u

/* Version 3 adds two kinds keyed by an offset's exponent: a directory of
 * u32 entries (rank in bits 0..15, bucket position in bits 16..31), then
 * one bucket a key, Elias-Fano or packed lanes. */
#define KIND3_EF_BUCKETS 2u
#define KIND3_PACKED 3u
#define KEYED_MAX_SH 31u
#define KEYED_MAX_K 24u
#define KEYED_MAX_BUCKET 32u       /* offsets a key */
#define KEYED_MAX_OFFSETS 0xFFFFu  /* ranks and positions are 16 bits */
#define KEYED_MAX_STREAM 0xFFFFu
#define KEYED_ENTRY_BYTES 4u
#define PACKED_MAX_BITS 57u        /* one unaligned 8-byte load from any bit */

/* The key of x = offset - first_offset, and (in *w) the low bits a key
 * stores: y = x >> sh, s = max(0, bits(y) - 1 - k), key = (s << k) + (y >> s). */
static inline uint64_t keyed_key(uint64_t x, unsigned sh, unsigned k, unsigned *w)
{
    uint64_t y = x >> sh;
    unsigned e = y ? 64u - (unsigned)__builtin_clzll(y) : 0;
    unsigned s = e > k + 1 ? e - 1 - k : 0;
    *w = s + sh;
    return ((uint64_t)s << k) + (y >> s);
}

/* What every value of key j shares: x >> keyed_width(j) == keyed_mantissa(j). */
static inline unsigned keyed_width(uint64_t j, unsigned sh, unsigned k)
{
    return (unsigned)(j < (2ull << k) ? 0 : (j >> k) - 1) + sh;
}

static inline uint64_t keyed_mantissa(uint64_t j, unsigned k)
{
    return j < (2ull << k) ? j : (1ull << k) + (j & ((1ull << k) - 1));
}

static inline unsigned ceil_log2(uint64_t n)
{
    return n <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(n - 1);
}

/* An Elias-Fano bucket of n (1..32) values below 2^w: hb high bits a value
 * (2^hb buckets), l = w - hb low bits. */
static inline unsigned keyed_high_bits(uint64_t n, unsigned w)
{
    unsigned cl = ceil_log2(n);
    return w < cl ? w : cl;
}

/* Bytes of key j's bucket of n values of width w; 0 when empty. */
static inline uint64_t keyed_bucket_bytes(unsigned kind, uint64_t n, unsigned w)
{
    if (n == 0)
        return 0;
    if (kind == KIND3_PACKED)
        return stream_bytes(n * w);
    unsigned hb = keyed_high_bits(n, w);
    return stream_bytes(n + (1ull << hb) + n * (w - hb));
}

/* bits(v): how many bits v needs; 0 for 0. */
static inline unsigned bits_for(uint64_t v)
{
    return v ? 64u - (unsigned)__builtin_clzll(v) : 0;
}

static inline uint64_t pef_chunks(uint64_t n)
{
    return div_ceil(n, PEF_CHUNK);
}

/* The top directory's shift: the smallest t with (span >> t) + 1 <= 2C. */
static inline unsigned pef_top_shift(uint64_t span, uint64_t chunks)
{
    unsigned t = 0;
    while (t < 32 && (span >> t) + 1 > 2 * chunks)
        t++;
    return t;
}

static inline uint64_t pef_top_entries(uint64_t span, uint64_t chunks)
{
    return (span >> pef_top_shift(span, chunks)) + 1;
}

/* A chunk's low-bit width: the smallest l with (last >> l) < n. */
static inline unsigned pef_low_bits(uint64_t last, uint64_t n)
{
    unsigned l = 0;
    while ((last >> l) >= n)
        l++;
    return l;
}


/* Bitmap rank samples: one u16 per this many words. */
#define BITMAP_WORDS_PER_SAMPLE 4u
/* Elias-Fano select samples: one u16 per this many zeros of the high bits. */
#define EF_ZEROS_PER_SAMPLE 32u

/* The segment's bytes before the index: header, pages, page checksums. */
static inline uint64_t seg_index_offset(uint32_t page_count, uint32_t page_size)
{
    return SEG_HEADER_BYTES + (uint64_t)page_count * (page_size + SEG_PAGE_SUM_BYTES);
}

/* Elias-Fano: the low-bit width is fixed by n and the span, so it is never
 * stored: floor(log2((span + 1) / n)), 0 when that quotient is below 2. */
static inline unsigned ef_low_bits(uint64_t n, uint64_t span)
{
    uint64_t q = (span + 1) / n;
    return q < 2 ? 0 : 63u - (unsigned)__builtin_clzll(q);
}

/* Sizes of the parts of one volume's offsets, all in bytes; u64 so that
 * forged counts cannot overflow before they are compared with the index. */
static inline uint64_t ef_buckets(uint64_t span, unsigned l)
{
    return (span >> l) + 1;
}

static inline uint64_t ef_low_bytes(uint64_t n, unsigned l)
{
    return div_ceil(n * l, 8);
}

static inline uint64_t ef_high_words(uint64_t n, uint64_t span, unsigned l)
{
    return div_ceil(n + ef_buckets(span, l), 64);
}

static inline uint64_t ef_sample_count(uint64_t span, unsigned l)
{
    return div_ceil(ef_buckets(span, l), EF_ZEROS_PER_SAMPLE);
}

static inline uint64_t ef_bytes(uint64_t n, uint64_t span)
{
    unsigned l = ef_low_bits(n, span);
    return ef_low_bytes(n, l) + 8 * ef_high_words(n, span, l) + 2 * ef_sample_count(span, l);
}

static inline uint64_t bitmap_words(uint64_t span)
{
    return span / 64 + 1;
}

static inline uint64_t bitmap_bytes(uint64_t span)
{
    uint64_t w = bitmap_words(span);
    return 8 * w + 2 * div_ceil(w, BITMAP_WORDS_PER_SAMPLE);
}

/* Bytes of the offsets of a volume with n distinct offsets over `span`,
 * in encoding `enc`; UINT64_MAX when the encoding cannot hold them. */
static inline uint64_t offsets_bytes(int enc, uint64_t n, uint64_t span)
{
    switch (enc) {
    case SEGIDX_OFFSETS_RANGE: return n == span + 1 ? 0 : UINT64_MAX;
    case SEGIDX_OFFSETS_BITMAP: return bitmap_bytes(span);
    case SEGIDX_OFFSETS_ELIAS_FANO: return ef_bytes(n, span);
    default: return UINT64_MAX;
    }
}

/* Which format version a builder writes (SEG_VERSION_1, 2 or 3; new
 * builders write SEG_VERSION). Versions 1 and 2 stay buildable so that
 * tests and corpora can prove old segments still read. SEGIDX_EINVAL
 * otherwise. */
int segidx__segment_builder_set_version(segidx_segment_builder *b, unsigned version);

/* Version 3: restrict every volume that is not a range to `kind` (1, 2 or
 * 3; -1 any) and its layout to `sh`, `k` (-1 any), so that tests reach each
 * kind and layout. A volume the restriction leaves no layout for keeps kind 1. */
int segidx__segment_builder_force_layout(segidx_segment_builder *b, int kind, int sh, int k);

/* Which kind (version 2 and 3 numbering) and layout a volume was opened
 * with: for tests that check the builder's choice. */
int segidx__segment_volume_kind(const segidx_segment *s, uint32_t i, unsigned *sh, unsigned *k);

/* Lookups of versions 2 and 3 run a copy compiled for POPCNT, LZCNT and BMI2 when
 * the CPU has them; `generic` true makes this segment use the copy for any
 * x86-64 instead (false: back to what the CPU allows), so that tests and
 * the fuzz target check both. */
void segidx__segment_use_generic(segidx_segment *s, bool generic);

/* Whether segment options are usable: page size, max_bytes with room for
 * one page, a complete allocator. The builder and the packer both ask. */
bool segidx__segment_options_valid(const segidx_segment_options *o);

/* LEB128 varints. */
static inline size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

#endif
