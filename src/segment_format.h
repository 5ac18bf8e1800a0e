/* The segment format's constants and the arithmetic both its writer and its
 * reader need, so that the two cannot disagree. docs/FORMAT.md is the
 * reference; this file follows it. */
#ifndef SEGIDX_SEGMENT_FORMAT_H
#define SEGIDX_SEGMENT_FORMAT_H

#include "internal.h"

#define SEG_HEADER_BYTES 64u
#define SEG_FOOTER_BYTES SEGIDX_SEGMENT_FOOTER_BYTES
#define SEG_PAGE_SUM_BYTES 8u
/* Format versions: builders write SEG_VERSION; readers open both. */
#define SEG_VERSION_1 1u
#define SEG_VERSION_2 2u
#define SEG_VERSION SEG_VERSION_2
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
 * version 2, rlsn_bits). */
#define VOLUME_ENTRY_MAX_BYTES (16u + 10u + 3u * 5u + 5u + 2u)

static inline uint64_t div_ceil(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Version 2: the kind byte, and the partitioned Elias-Fano layout. */
#define KIND2_RANGE 0u
#define KIND2_PARTITIONED 1u
#define PEF_CHUNK 64u           /* offsets a chunk */
#define PEF_RECORD_BYTES 8u
#define PEF_POS_BITS 26u        /* where: bit position, then l */
#define PEF_POS_MASK ((1u << PEF_POS_BITS) - 1)
#define RLSN2_MAX_BITS 16u

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

/* Bytes of a bit stream of `bits` bits. */
static inline uint64_t stream_bytes(uint64_t bits)
{
    return div_ceil(bits, 8);
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

/* Which format version a builder writes (SEG_VERSION_1 or SEG_VERSION_2;
 * new builders write SEG_VERSION). Version 1 stays buildable so that tests
 * and corpora can prove old segments still read. SEGIDX_EINVAL otherwise. */
int segidx__segment_builder_set_version(segidx_segment_builder *b, unsigned version);

/* Lookups of version 2 run a copy compiled for POPCNT, LZCNT and BMI2 when
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
