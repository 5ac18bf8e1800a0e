/* Reading a segment in place: open (validate everything a lookup relies
 * on), find, verify, iterate. docs/FORMAT.md is the reference.
 *
 * Open decodes the volume table into `struct volume` (O(volumes) heap) and
 * checks every volume's data once; after that, find() trusts the bytes and
 * does no bounds checks. */
#include "segment_format.h"
#include "sync.h"

#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* A volume as open decoded and validated it. */
struct volume {
    segidx_vid vid;
    uint64_t base_lsn, max_lsn;
    uint32_t first_page, pages, offsets;
    uint32_t first_offset, span;
    uint8_t encoding, width, low_bits;
    bool versions;
    const uint8_t *words;    /* bitmap words, or Elias-Fano high words */
    const uint8_t *samples;  /* rank (bitmap) or select (Elias-Fano) samples */
    const uint8_t *low;      /* Elias-Fano low bits */
    const uint8_t *ranks;    /* version ranks, u16 each, or NULL */
    const uint8_t *rlsn;     /* width bytes a page (version 2: rlsn_bits) */
    size_t index_bytes;
    /* Version 2 */
    const uint8_t *top;      /* top directory, u16 each */
    const uint8_t *records;  /* chunk records */
    const uint8_t *stream;   /* chunk bits */
    uint32_t chunks;
    uint8_t top_shift, rlsn_bits, rank_bits;
    /* Version 3: kind as stored (0..3); kinds 2 and 3 keep their
     * directory and share `stream` */
    uint8_t kind, sh, k;
    const uint8_t *dir;
};

/* A slot of the vid hash table: the vid's first 8 bytes beside its volume,
 * so that a probe rarely loads a volume that is not the one. `volume`
 * NULL: empty. */
struct vid_slot {
    uint64_t vid0;
    const struct volume *volume;
};

struct segidx_segment {
    const uint8_t *pages;    /* NULL when opened from the tail */
    const uint8_t *sums;
    const uint8_t *index;
    size_t index_len;
    uint64_t segment_len;
    uint32_t page_size, page_count, volume_count;
    unsigned version;
    segidx_sid sid;
    struct volume *volumes;
    struct vid_slot *slots;  /* vid hash table, at most a quarter full */
    uint32_t slot_mask;
    uint64_t seed;
    bool hw;                 /* the CPU has POPCNT, LZCNT, BMI2: find_hw */
};

/* ------------------------------------------------------------ lookups */

/* Two multiplies keyed by a seed that differs per open: every byte of the
 * vid reaches the high half that picks the slot, and no fixed set of vids
 * collides in every process. */
static inline uint32_t vid_hash(const segidx_segment *s, const segidx_vid *vid)
{
    uint64_t a, b;
    memcpy(&a, vid->bytes, 8);
    memcpy(&b, vid->bytes + 8, 8);
    uint64_t h = ((a ^ s->seed) * 0x9E3779B97F4A7C15ull) ^ b;
    h = (h ^ h >> 29) * 0xD6E8FEB86659FD93ull;
    return (uint32_t)(h >> 32);
}

static inline const struct volume *volume_lookup(const segidx_segment *s, const segidx_vid *vid)
{
    uint64_t a;
    memcpy(&a, vid->bytes, 8);
    uint32_t i = vid_hash(s, vid) & s->slot_mask;
    for (;;) { /* a quarter full at most: an empty slot ends it soon */
        const struct vid_slot *e = &s->slots[i];
        if (!e->volume || (e->vid0 == a && segidx__id_equal(e->volume->vid.bytes, vid->bytes)))
            return e->volume;
        i = (i + 1) & s->slot_mask;
    }
}

static inline uint64_t low_mask(unsigned bits)
{
    return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

/* Element i's low bits. The 8-byte load may reach past the low bits into
 * the high words or the footer, never past the segment (FORMAT.md). */
static inline uint64_t ef_low_at(const struct volume *v, uint64_t bit)
{
    return segidx__load64(v->low + bit / 8) >> (bit % 8) & low_mask(v->low_bits);
}

static inline uint64_t ef_low(const struct volume *v, uint64_t i)
{
    return ef_low_at(v, i * v->low_bits);
}

/* Broadword select: the position of the r-th set bit of w (r below
 * popcount(w)), without branches (after Vigna, "Broadword implementation
 * of rank/select queries"): lookups must not pay a misprediction per bit. */
#define ONES_STEP_8 0x0101010101010101ull
#define MSBS_STEP_8 0x8080808080808080ull

/* Per byte: 0x80 where x's byte <= y's byte (bytes below 0x80), else 0. */
static inline uint64_t bytes_le(uint64_t x, uint64_t y)
{
    return ((((y | MSBS_STEP_8) - (x & ~MSBS_STEP_8)) ^ x ^ y) & MSBS_STEP_8);
}

/* Byte i of the result: the set bits of w in bytes 0..i. */
static inline uint64_t byte_prefix_counts(uint64_t w)
{
    uint64_t s = w - ((w >> 1) & 0x5555555555555555ull);
    s = (s & 0x3333333333333333ull) + ((s >> 2) & 0x3333333333333333ull);
    return ((s + (s >> 4)) & 0x0F0F0F0F0F0F0F0Full) * ONES_STEP_8;
}

static inline unsigned select_in_word(uint64_t w, unsigned r)
{
    uint64_t sums = byte_prefix_counts(w);
    /* The byte holding bit r: how many bytes have fewer than r + 1 bits. */
    unsigned byte = (unsigned)((bytes_le(sums, r * ONES_STEP_8) >> 7) * ONES_STEP_8 >> 56);
    unsigned before = byte ? (unsigned)(sums >> (8 * byte - 8) & 0xFF) : 0;
    uint64_t bits = w >> (8 * byte) & 0xFF;
    /* Spread the byte's bits over 8 bytes and count them the same way. */
    uint64_t spread = ((bits * ONES_STEP_8 & 0x8040201008040201ull) + 0x7F7F7F7F7F7F7F7Full) &
                      MSBS_STEP_8;
    uint64_t prefix = (spread >> 7) * ONES_STEP_8;
    unsigned bit = (unsigned)((bytes_le(prefix, (r - before) * ONES_STEP_8) >> 7) * ONES_STEP_8 >> 56);
    return 8 * byte + bit;
}

/* Bit position of zero number z of the high bits (z < buckets). */
static uint64_t ef_select0(const struct volume *v, uint64_t z)
{
    uint64_t k = z / EF_ZEROS_PER_SAMPLE;
    uint64_t pos = k * EF_ZEROS_PER_SAMPLE + segidx__load16(v->samples + 2 * k);
    unsigned r = (unsigned)(z % EF_ZEROS_PER_SAMPLE);
    uint64_t wi = pos / 64;
    uint64_t w = ~segidx__load64(v->words + 8 * wi) & (~0ull << (pos % 64));
    for (unsigned c; r >= (c = (unsigned)segidx__popcount64(w));) {
        r -= c;
        w = ~segidx__load64(v->words + 8 * ++wi);
    }
    return wi * 64 + select_in_word(w, r);
}

/* The first zero of the high bits at or after bit `pos` (one exists). */
static uint64_t ef_next_zero(const struct volume *v, uint64_t pos)
{
    uint64_t wi = pos / 64;
    uint64_t z = ~segidx__load64(v->words + 8 * wi) & (~0ull << (pos % 64));
    while (!z)
        z = ~segidx__load64(v->words + 8 * ++wi);
    return wi * 64 + (uint64_t)__builtin_ctzll(z);
}

/* The rank of x among the volume's offsets, or -1. Skewed offsets crowd
 * a few buckets (Zipf puts most of a volume's pages in bucket 0), so the
 * bucket's low bits, sorted and of fixed width, are binary-searched. */
static int64_t ef_rank(const struct volume *v, uint64_t x)
{
    uint64_t h = x >> v->low_bits, want = x & low_mask(v->low_bits);
    uint64_t pos = h ? ef_select0(v, h - 1) + 1 : 0;
    uint64_t lo = pos - h, len = ef_next_zero(v, pos) - pos;
    if (len == 0)
        return -1;
    /* Branch-free (the compiler makes it a cmov), and on bit positions so
     * that no multiply sits on the chain of dependent loads. */
    uint64_t l = v->low_bits, bit = lo * l;
    while (len > 1) {
        uint64_t half = len / 2;
        bit = ef_low_at(v, bit + half * l) <= want ? bit + half * l : bit;
        len -= half;
    }
    return ef_low_at(v, bit) == want ? (int64_t)(l ? bit / l : lo) : -1;
}

static int64_t bitmap_rank(const struct volume *v, uint64_t x)
{
    uint64_t wi = x / 64;
    uint64_t w = segidx__load64(v->words + 8 * wi);
    if (!(w >> (x % 64) & 1))
        return -1;
    uint64_t block = wi / BITMAP_WORDS_PER_SAMPLE;
    uint64_t rank = segidx__load16(v->samples + 2 * block);
    for (uint64_t j = block * BITMAP_WORDS_PER_SAMPLE; j < wi; j++)
        rank += (uint64_t)segidx__popcount64(segidx__load64(v->words + 8 * j));
    return (int64_t)(rank + (uint64_t)segidx__popcount64(w & low_mask(x % 64)));
}

static int64_t offset_rank(const struct volume *v, uint64_t x)
{
    switch (v->encoding) {
    case SEGIDX_OFFSETS_RANGE: return (int64_t)x;
    case SEGIDX_OFFSETS_BITMAP: return bitmap_rank(v, x);
    default: return ef_rank(v, x);
    }
}

static inline uint64_t rlsn_at(const struct volume *v, uint32_t page)
{
    switch (v->width) {
    case 0: return 0;
    case 1: return v->rlsn[page];
    default: return segidx__load16(v->rlsn + 2 * (size_t)page);
    }
}

/* The pages [first, end) of the offset with rank i, relative to the volume. */
static inline void offset_pages(const struct volume *v, uint64_t i, uint32_t *first, uint32_t *end)
{
    if (!v->versions) {
        *first = (uint32_t)i;
        *end = (uint32_t)i + 1;
        return;
    }
    *first = segidx__load16(v->ranks + 2 * i);
    *end = i + 1 < v->offsets ? segidx__load16(v->ranks + 2 * (i + 1)) : v->pages;
}

/* ------------------------------------------------------------ version 2 */

/* Lookups are compiled twice: for any x86-64 (SWAR popcount and select)
 * and, where the compiler can target them, for CPUs with POPCNT, LZCNT and
 * BMI2 (a select is then PDEP and TZCNT). Open asks the CPU once which one
 * its segment uses. A build that already targets them all (-march=native)
 * needs no second copy. */
#if defined(__POPCNT__) && defined(__BMI2__) && defined(__LZCNT__)
#include <immintrin.h>
#define SEG_HW_ALWAYS 1
#define SEG_HW_TARGET
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SEG_HW_DISPATCH 1
#define SEG_HW_TARGET __attribute__((target("popcnt,bmi,bmi2,lzcnt")))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SEG_INLINE inline __attribute__((always_inline))
#else
#define SEG_INLINE inline
#endif

#if defined(SEG_HW_ALWAYS) || defined(SEG_HW_DISPATCH)
/* Position of set bit number r (< popcount) of w. */
SEG_HW_TARGET static inline unsigned select_hw(uint64_t w, unsigned r)
{
    return (unsigned)__builtin_ctzll(_pdep_u64(1ull << r, w));
}

SEG_HW_TARGET static inline unsigned popcount_hw(uint64_t w)
{
    return (unsigned)__builtin_popcountll(w);
}

/* Leading zeros, 64 for 0. */
SEG_HW_TARGET static inline unsigned lzcnt_hw(uint64_t w)
{
    return (unsigned)_lzcnt_u64(w);
}
#else
static inline unsigned select_hw(uint64_t w, unsigned r)
{
    return select_in_word(w, r);
}

static inline unsigned popcount_hw(uint64_t w)
{
    return segidx__popcount64(w);
}

static inline unsigned lzcnt_hw(uint64_t w)
{
    return w ? (unsigned)__builtin_clzll(w) : 64;
}
#endif

/* `hw` is a constant in each copy: the other branch is compiled away. */
static SEG_INLINE unsigned popcount_any(uint64_t w, bool hw)
{
    return hw ? popcount_hw(w) : segidx__popcount64(w);
}

static SEG_INLINE unsigned select_any(uint64_t w, unsigned r, bool hw)
{
    return hw ? select_hw(w, r) : select_in_word(w, r);
}

static SEG_INLINE unsigned lzcnt_any(uint64_t w, bool hw)
{
    return hw ? lzcnt_hw(w) : w ? (unsigned)__builtin_clzll(w) : 64;
}

/* `w` bits (w <= 57) at bit `bit` of a stream. The 8-byte load may reach
 * past the stream, never past the footer (FORMAT.md, "Bit streams"). */
static inline uint64_t bits_at(const uint8_t *p, uint64_t bit, unsigned w)
{
    return segidx__load64(p + bit / 8) >> (bit % 8) & ((1ull << w) - 1);
}

/* 64 bits from bit `bit` of a stream (two loads, no branch). */
static inline uint64_t word_at(const uint8_t *p, uint64_t bit)
{
    const uint8_t *q = p + bit / 8;
    unsigned sh = (unsigned)(bit % 8);
    return segidx__load64(q) >> sh | (segidx__load64(q + 8) << 1) << (63 - sh);
}

static inline uint32_t record_first(const struct volume *v, uint64_t c)
{
    return segidx__load32(v->records + PEF_RECORD_BYTES * c);
}

static inline uint32_t record_where(const struct volume *v, uint64_t c)
{
    return segidx__load32(v->records + PEF_RECORD_BYTES * c + 4);
}

static inline uint64_t chunk_size(const struct volume *v, uint64_t c)
{
    uint64_t left = v->offsets - c * PEF_CHUNK;
    return left < PEF_CHUNK ? left : PEF_CHUNK;
}

/* The chunk that holds x if any does: the last whose first element is
 * <= x, among those the top directory names for x's top bits. */
static inline uint64_t pef_chunk_of(const struct volume *v, uint64_t x)
{
    uint64_t j = x >> v->top_shift;
    uint64_t c = segidx__load16(v->top + 2 * j);
    uint64_t last = segidx__load16(v->top + 2 * j + 2);
    if (last - c <= 1) /* the directory has 2 entries a chunk: mostly so */
        return c + ((last > c) & (record_first(v, c + 1) <= x));
    for (uint64_t len = last - c + 1; len > 1;) {
        uint64_t half = len / 2;
        c = record_first(v, c + half) <= x ? c + half : c;
        len -= half;
    }
    return c;
}

/* The low bits of a bucket are compared at once when they take at most
 * this many bits: one unaligned 8-byte load holds 57 bits from any bit. */
#define LANE_BITS 57u

/* lane_ones[l]: bit 0 of every l-bit lane of a word (0 for width 0). */
static const uint64_t lane_ones[32] = {
    0x0000000000000000ull, 0xFFFFFFFFFFFFFFFFull, 0x5555555555555555ull, 0x1249249249249249ull,
    0x1111111111111111ull, 0x0084210842108421ull, 0x0041041041041041ull, 0x0102040810204081ull,
    0x0101010101010101ull, 0x0040201008040201ull, 0x0004010040100401ull, 0x0000100200400801ull,
    0x0001001001001001ull, 0x0000008004002001ull, 0x0000040010004001ull, 0x0000200040008001ull,
    0x0001000100010001ull, 0x0000000400020001ull, 0x0000001000040001ull, 0x0000004000080001ull,
    0x0000010000100001ull, 0x0000040000200001ull, 0x0000000000400001ull, 0x0000000000800001ull,
    0x0000000001000001ull, 0x0000000002000001ull, 0x0000000004000001ull, 0x0000000008000001ull,
    0x0000000010000001ull, 0x0000000020000001ull, 0x0000000040000001ull, 0x0000000080000001ull,
};

/* The rank of x within chunk c (whose first element is <= x), or -1.
 * Zero number h of the high bits ends bucket h; its elements are the set
 * bits right before that zero, compared by their low bits. */
static SEG_INLINE int64_t pef_in_chunk_any(const struct volume *v, uint64_t c, uint64_t x,
                                           bool hw)
{
    const uint8_t *rec = v->records + PEF_RECORD_BYTES * c;
    uint64_t y = x - segidx__load32(rec);
    uint32_t where = segidx__load32(rec + 4);
    uint64_t pos = where & PEF_POS_MASK, n = chunk_size(v, c);
    unsigned l = where >> PEF_POS_BITS;
    uint64_t high = (segidx__load32(rec + PEF_RECORD_BYTES + 4) & PEF_POS_MASK) - pos - n * l;
    uint64_t h = y >> l;
    if (h >= high - n)
        return -1;
    /* At most 128 high bits: zero number h is in w0 or in w1. */
    /* Masks rather than branches: which word it is in is data. */
    uint64_t w0 = word_at(v->stream, pos), w1 = word_at(v->stream, pos + 64);
    unsigned zeros0 = 64 - popcount_any(w0, hw);
    uint64_t second = -(uint64_t)(h >= zeros0);
    uint64_t word = w0 ^ ((w0 ^ w1) & second), below = w0 & second;
    unsigned z = select_any(~word, (unsigned)h - (zeros0 & (unsigned)second), hw);
    /* The bucket: the ones right below that zero, in `word` and, when they
     * start at its bit 0, at the top of `below`. The shift moves the z bits
     * below the zero to the top and fills with zeros (z = 0: none). */
    unsigned len = lzcnt_any(~((word << 1) << (63 - z)), hw);
    len += lzcnt_any(~below, hw) & -(unsigned)(len == z);
    if (len == 0)
        return -1;
    uint64_t at = (64 & second) + z - h - len;
    /* Sorted by their low bits; a skewed chunk crowds some buckets, so
     * they are halved (branch-free steps: which half is data) until their
     * low bits fit one load. */
    uint64_t want = y & low_mask(l), low_pos = pos + high;
    while (len * l > LANE_BITS) {
        unsigned half = len / 2;
        at = bits_at(v->stream, low_pos + (at + half) * l, l) <= want ? at + half : at;
        len -= half;
    }
    /* Then all of them at once, as lanes of l bits: the lowest lane equal
     * to `want` is the lowest lane of (lanes ^ want) that borrows when one
     * is taken from each lane (a borrow only reaches lanes above the
     * first zero one). A bucket of width 0 has one element: it. */
    uint64_t ones = lane_ones[l], bit = low_pos + at * l;
    unsigned top = l - (l != 0); /* a lane's top bit */
    uint64_t t = (segidx__load64(v->stream + bit / 8) >> (bit % 8)) ^ want * ones;
    uint64_t hit = (t - ones) & ~t & ones << top & low_mask(len * l);
    if (!hit && l)
        return -1;
    /* Its number: the lanes that start below its bit 0. */
    return (int64_t)(c * PEF_CHUNK + at + popcount_any(ones & (((hit & -hit) >> top) - 1), hw));
}

/* ------------------------------------------------------------ version 3 */

/* The key of x and its width (keyed_key, with the CPU's LZCNT where the
 * copy may use it); the compiler turns the max into a conditional move. */
static SEG_INLINE uint64_t key_any(uint64_t x, unsigned sh, unsigned k, unsigned *w, bool hw)
{
    uint64_t y = x >> sh;
    int t = (int)(64 - lzcnt_any(y, hw)) - 1 - (int)k;
    unsigned s = t > 0 ? (unsigned)t : 0;
    *w = s + sh;
    return ((uint64_t)s << k) + (y >> s);
}

/* Lane-wise equality of `len` lanes of l bits at bit `bit` of p with
 * `want`: the number of the lane that holds it (any number when none
 * does), and in *hit whether one does. len * l <= 57. */
static SEG_INLINE uint64_t lane_find(const uint8_t *p, uint64_t bit, uint64_t want, unsigned l,
                                     uint64_t len, bool *hit, bool hw)
{
    uint64_t ones = lane_ones[l];
    unsigned top = l - (l != 0); /* a lane's top bit */
    uint64_t t = (segidx__load64(p + bit / 8) >> (bit % 8)) ^ want * ones;
    uint64_t m = (t - ones) & ~t & ones << top & low_mask((unsigned)(len * l));
    *hit = m != 0;
    return popcount_any(ones & (((m & -m) >> top) - 1), hw);
}

/* x's rank in an Elias-Fano bucket at `st` of n (1..32) values of width
 * w, or -1. The n + 2^hb high bits are one word: zero number h ends
 * sub-bucket h, whose low bits are compared lane-wise. */
static SEG_INLINE int64_t ef_bucket_rank(const uint8_t *st, uint64_t n, unsigned w, uint64_t vin,
                                         bool hw)
{
    unsigned cl = n > 1 ? 64 - lzcnt_any(n - 1, hw) : 0;
    unsigned hb = w < cl ? w : cl, l = w - hb;
    uint64_t h = vin >> l, word = segidx__load64(st);
    /* Bit 63 counted a zero: zero h is below it or it, and a select of an
     * empty key (n = 0, whatever follows) still finds one. */
    unsigned z = select_any(~word | 1ull << 63, (unsigned)h, hw);
    uint64_t len = lzcnt_any(~((word << 1) << (63 - z)), hw) & -(uint64_t)(n != 0);
    uint64_t at = z - h - len, want = vin & low_mask(l), low_pos = n + (1ull << hb);
    while (len * l > LANE_BITS) { /* the builder keeps it rare */
        uint64_t half = len / 2;
        at = bits_at(st, low_pos + (at + half) * l, l) <= want ? at + half : at;
        len -= half;
    }
    bool hit;
    uint64_t lane = lane_find(st, low_pos + at * l, want, l, len, &hit, hw);
    bool ok = len != 0 && (hit || l == 0);
    return ok ? (int64_t)(at + lane) : -1;
}

/* The rank of x (<= span) in a volume of kind 2 or 3, or -1. One load
 * reads key j's rank and position and key j + 1's rank. */
static SEG_INLINE int64_t keyed_rank_any(const struct volume *v, uint64_t x, bool hw)
{
    unsigned w;
    uint64_t key = key_any(x, v->sh, v->k, &w, hw);
    uint64_t vin = x & low_mask(w), d = segidx__load64(v->dir + KEYED_ENTRY_BYTES * key);
    uint64_t r0 = d & 0xFFFF, n = (d >> 32 & 0xFFFF) - r0;
    const uint8_t *st = v->stream + (d >> 16 & 0xFFFF);
    int64_t in;
    if (v->kind == KIND3_PACKED) {
        bool hit;
        uint64_t lane = lane_find(st, 0, vin, w, n, &hit, hw);
        in = n != 0 && (hit || w == 0) ? (int64_t)lane : -1;
    } else {
        in = ef_bucket_rank(st, n, w, vin, hw);
    }
    return in < 0 ? -1 : (int64_t)r0 + in;
}

/* The elements of key j, in order, into out (at most 32); their count. */
static uint64_t keyed_decode_key(const struct volume *v, uint64_t j, uint32_t *out)
{
    uint64_t d = segidx__load64(v->dir + KEYED_ENTRY_BYTES * j);
    uint64_t n = (d >> 32 & 0xFFFF) - (d & 0xFFFF);
    const uint8_t *st = v->stream + (d >> 16 & 0xFFFF);
    unsigned w = keyed_width(j, v->sh, v->k);
    uint64_t top = keyed_mantissa(j, v->k) << w;
    if (v->kind == KIND3_PACKED) {
        for (uint64_t i = 0; i < n; i++)
            out[i] = (uint32_t)(top | bits_at(st, i * w, w));
        return n;
    }
    unsigned hb = keyed_high_bits(n, w), l = w - hb;
    uint64_t word = segidx__load64(st), low_pos = n + (1ull << hb), i = 0;
    for (uint64_t m = word & low_mask((unsigned)low_pos); m && i < n; m &= m - 1, i++) {
        uint64_t high = (uint64_t)__builtin_ctzll(m) - i;
        out[i] = (uint32_t)(top | high << l | bits_at(st, low_pos + i * l, l));
    }
    return n;
}

static inline int64_t pef_in_chunk(const struct volume *v, uint64_t c, uint64_t x)
{
    return pef_in_chunk_any(v, c, x, false);
}

/* The elements of chunk c, in order, into out (at most PEF_CHUNK): walking
 * its set bits, no select. */
static uint64_t pef_decode_chunk(const struct volume *v, uint64_t c, uint32_t *out)
{
    uint32_t where = record_where(v, c), first = record_first(v, c);
    uint64_t pos = where & PEF_POS_MASK, n = chunk_size(v, c);
    unsigned l = where >> PEF_POS_BITS;
    uint64_t high = (record_where(v, c + 1) & PEF_POS_MASK) - pos - n * l, low_pos = pos + high;
    uint64_t i = 0;
    for (uint64_t base = 0; base < high && i < n; base += 64) {
        for (uint64_t w = word_at(v->stream, pos + base); w && i < n; w &= w - 1, i++) {
            uint64_t bucket = base + (uint64_t)__builtin_ctzll(w) - i;
            out[i] = first + (uint32_t)(bucket << l | bits_at(v->stream, low_pos + i * l, l));
        }
    }
    return n;
}

static inline uint64_t rlsn2_at(const struct volume *v, uint64_t page)
{
    return bits_at(v->rlsn, page * v->rlsn_bits, v->rlsn_bits);
}

static inline uint64_t rank2_at(const struct volume *v, uint64_t i)
{
    return bits_at(v->ranks, i * v->rank_bits, v->rank_bits);
}

/* Versions at most this many are searched in a fixed number of steps. */
#define SHORT_VERSION_LIST 8u

/* Offset `i` of the volume: its newest page at or below lsn (>= base). */
static SEG_INLINE bool pick_version_v2(const segidx_segment *s, const struct volume *v,
                                       uint64_t i, segidx_lsn lsn, segidx_page_ref *out)
{
    uint64_t want = lsn - v->base_lsn, page = i;
    if (v->offsets < v->pages) {
        page = rank2_at(v, i);
        uint64_t end = i + 1 < v->offsets ? rank2_at(v, i + 1) : v->pages;
        if (end - page <= SHORT_VERSION_LIST) {
            /* The last page <= want by steps of 4, 2, 1 that stay below
             * end: no branch on the LSNs, whatever the list's length. */
            for (unsigned step = SHORT_VERSION_LIST / 2; step; step /= 2) {
                uint64_t next = page + step, at = next < end ? next : page;
                page = rlsn2_at(v, at) <= want ? at : page;
            }
        } else {
            for (uint64_t len = end - page; len > 1;) {
                uint64_t half = len / 2;
                page = rlsn2_at(v, page + half) <= want ? page + half : page;
                len -= half;
            }
        }
    }
    uint64_t r = rlsn2_at(v, page);
    if (r > want)
        return false;
    uint32_t local = v->first_page + (uint32_t)page;
    out->local = local;
    out->lsn = v->base_lsn + r;
    out->page = s->pages ? s->pages + (size_t)local * s->page_size : NULL;
    return true;
}

static SEG_INLINE int find_v2_any(const segidx_segment *s, const struct volume *v, uint64_t x,
                                  segidx_lsn lsn, segidx_page_ref *out, bool hw)
{
    int64_t i = (int64_t)x;
    if (v->kind == KIND2_PARTITIONED)
        i = pef_in_chunk_any(v, pef_chunk_of(v, x), x, hw);
    else if (v->kind != KIND2_RANGE)
        i = keyed_rank_any(v, x, hw);
    if (i < 0 || !pick_version_v2(s, v, (uint64_t)i, lsn, out))
        return SEGIDX_ENOTFOUND;
    return SEGIDX_OK;
}

static int find_v2_sw(const segidx_segment *s, const struct volume *v, uint64_t x,
                      segidx_lsn lsn, segidx_page_ref *out)
{
    return find_v2_any(s, v, x, lsn, out, false);
}

#if defined(SEG_HW_ALWAYS) || defined(SEG_HW_DISPATCH)
SEG_HW_TARGET static int find_v2_hw(const segidx_segment *s, const struct volume *v, uint64_t x,
                                    segidx_lsn lsn, segidx_page_ref *out)
{
    return find_v2_any(s, v, x, lsn, out, true);
}
#endif

/* find_many's per-offset lookups, through the copy the segment uses. */
static inline int find_v2(const segidx_segment *s, const struct volume *v, uint64_t x,
                          segidx_lsn lsn, segidx_page_ref *out)
{
#if defined(SEG_HW_ALWAYS)
    (void)find_v2_sw;
    return find_v2_hw(s, v, x, lsn, out);
#elif defined(SEG_HW_DISPATCH)
    return s->hw ? find_v2_hw(s, v, x, lsn, out) : find_v2_sw(s, v, x, lsn, out);
#else
    return find_v2_sw(s, v, x, lsn, out);
#endif
}

/* Whether this CPU runs the copies compiled for POPCNT, LZCNT and BMI2. */
static bool cpu_has_hw_select(void)
{
#if defined(SEG_HW_ALWAYS)
    return true;
#elif defined(SEG_HW_DISPATCH)
    /* LZCNT by CPUID itself: compilers disagree on its feature name. A
     * CPUID can cost a virtual machine an exit to its host, so it is asked
     * once a process (0 unknown yet, 1 no, 2 yes; a race asks twice). */
    static segidx__atomic_int known;
    int k = segidx__atomic_int_load(&known);
    if (!k) {
        unsigned a, b, c, d;
        bool yes = __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi2") &&
                   __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & bit_LZCNT);
        k = yes ? 2 : 1;
        segidx__atomic_int_store(&known, k);
    }
    return k == 2;
#else
    return false;
#endif
}

void segidx__segment_use_generic(segidx_segment *s, bool generic)
{
    s->hw = !generic && cpu_has_hw_select();
}

/* ------------------------------------------------------------ find */

static int find_v1(const segidx_segment *s, const struct volume *v, segidx_offset off,
                   segidx_lsn lsn, segidx_page_ref *out);

/* All of segment_find past its argument checks, the vid probe included,
 * inlined into each copy so that a lookup makes one call. An offset below
 * first_offset wraps above the span (first_offset + span <= UINT32_MAX). */
static SEG_INLINE int find_any(const segidx_segment *s, const segidx_vid *vid, segidx_offset off,
                               segidx_lsn lsn, segidx_page_ref *out, bool hw)
{
    const struct volume *v = volume_lookup(s, vid);
    if (!v || lsn < v->base_lsn || (uint32_t)(off - v->first_offset) > v->span)
        return SEGIDX_ENOTFOUND;
    if (s->version == SEG_VERSION_1)
        return find_v1(s, v, off, lsn, out);
    return find_v2_any(s, v, (uint32_t)(off - v->first_offset), lsn, out, hw);
}

static int find_sw(const segidx_segment *s, const segidx_vid *vid, segidx_offset off,
                   segidx_lsn lsn, segidx_page_ref *out)
{
    return find_any(s, vid, off, lsn, out, false);
}

#if defined(SEG_HW_ALWAYS) || defined(SEG_HW_DISPATCH)
SEG_HW_TARGET static int find_hw(const segidx_segment *s, const segidx_vid *vid,
                                 segidx_offset off, segidx_lsn lsn, segidx_page_ref *out)
{
    return find_any(s, vid, off, lsn, out, true);
}
#endif

int segidx_segment_find(const segidx_segment *s, const segidx_vid *vid, segidx_offset off,
                        segidx_lsn lsn, segidx_page_ref *out)
{
    if (!s || !vid || !out)
        return SEGIDX_EINVAL;
#if defined(SEG_HW_ALWAYS)
    (void)find_sw;
    return find_hw(s, vid, off, lsn, out);
#elif defined(SEG_HW_DISPATCH)
    return s->hw ? find_hw(s, vid, off, lsn, out) : find_sw(s, vid, off, lsn, out);
#else
    return find_sw(s, vid, off, lsn, out);
#endif
}

static int find_v1(const segidx_segment *s, const struct volume *v, segidx_offset off,
                   segidx_lsn lsn, segidx_page_ref *out)
{
    int64_t i = offset_rank(v, off - v->first_offset);
    if (i < 0)
        return SEGIDX_ENOTFOUND;
    uint32_t page, end;
    offset_pages(v, (uint64_t)i, &page, &end);
    uint64_t at = v->base_lsn + rlsn_at(v, page);
    if (at > lsn)
        return SEGIDX_ENOTFOUND;
    while (page + 1 < end) { /* newer versions, oldest first */
        uint64_t next = at + rlsn_at(v, page + 1);
        if (next > lsn)
            break;
        at = next;
        page++;
    }
    uint32_t local = v->first_page + page;
    out->local = local;
    out->lsn = at;
    out->page = s->pages ? s->pages + (size_t)local * s->page_size : NULL;
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ find_many */

static const segidx_page_ref missing = { NULL, UINT32_MAX, 0 };

/* out[0..n) all missing; whether there were none. */
static bool all_missing(segidx_page_ref *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = missing;
    return n == 0;
}

/* offs[0..n), sorted, against the decoded elements x[0..count) of ranks
 * rank0.. (a chunk or a key that holds every one of them that is there):
 * one merge, no select. */
static bool merge_decoded(const segidx_segment *s, const struct volume *v, segidx_lsn lsn,
                          const uint32_t *x, uint64_t count, uint64_t rank0,
                          const segidx_offset *offs, size_t n, segidx_page_ref *out)
{
    bool all = true;
    for (uint64_t i = 0, j = 0; i < n; i++) {
        uint64_t y = offs[i] - v->first_offset;
        while (j < count && x[j] < y)
            j++;
        bool hit = j < count && x[j] == y && pick_version_v2(s, v, rank0 + j, lsn, &out[i]);
        if (!hit)
            out[i] = missing;
        all &= hit;
    }
    return all;
}

/* Version 3, keyed kinds: offs[0..n) all at or above first_offset. A key
 * that three or more offsets fall into is decoded once and merged; fewer
 * are looked up one by one. */
static bool find_many_keyed(const segidx_segment *s, const struct volume *v, segidx_lsn lsn,
                            const segidx_offset *offs, size_t n, segidx_page_ref *out)
{
    bool all = true;
    uint32_t x[KEYED_MAX_BUCKET];
    size_t i = 0;
    while (i < n && offs[i] - v->first_offset <= v->span) {
        unsigned w;
        uint64_t key = keyed_key(offs[i] - v->first_offset, v->sh, v->k, &w);
        size_t e = i + 1;
        while (e < n && offs[e] - v->first_offset <= v->span &&
               keyed_key(offs[e] - v->first_offset, v->sh, v->k, &w) == key)
            e++;
        if (e - i >= 3) {
            uint64_t count = keyed_decode_key(v, key, x);
            uint64_t rank0 = segidx__load32(v->dir + KEYED_ENTRY_BYTES * key) & 0xFFFF;
            all &= merge_decoded(s, v, lsn, x, count, rank0, offs + i, e - i, out + i);
            i = e;
        }
        for (; i < e; i++) {
            bool hit = find_v2(s, v, offs[i] - v->first_offset, lsn, &out[i]) == SEGIDX_OK;
            if (!hit)
                out[i] = missing;
            all &= hit;
        }
    }
    return all_missing(out + i, n - i) && all;
}

/* Version 2, partitioned: offs[0..n) all at or above first_offset. A
 * chunk that three or more offsets fall into is decoded once and merged;
 * fewer are searched in it. Chunks are found through the top directory
 * only when an offset leaves the current one. */
static bool find_many_partitioned(const segidx_segment *s, const struct volume *v,
                                  segidx_lsn lsn, const segidx_offset *offs, size_t n,
                                  segidx_page_ref *out)
{
    bool all = true;
    uint32_t x[PEF_CHUNK];
    size_t i = 0;
    while (i < n) {
        uint64_t at = offs[i] - v->first_offset;
        if (at > v->span)
            break;
        uint64_t c = pef_chunk_of(v, at);
        uint64_t limit = c + 1 < v->chunks ? record_first(v, c + 1) : (uint64_t)v->span + 1;
        size_t k = i + 1;
        while (k < n && offs[k] - v->first_offset < limit)
            k++;
        if (k - i >= 3) {
            uint64_t count = pef_decode_chunk(v, c, x);
            all &= merge_decoded(s, v, lsn, x, count, c * PEF_CHUNK, offs + i, k - i, out + i);
            i = k;
        } else {
            for (; i < k; i++) {
                int64_t r = pef_in_chunk(v, c, offs[i] - v->first_offset);
                bool hit = r >= 0 && pick_version_v2(s, v, (uint64_t)r, lsn, &out[i]);
                if (!hit)
                    out[i] = missing;
                all &= hit;
            }
        }
    }
    return all_missing(out + i, n - i) && all;
}

int segidx_segment_find_many(const segidx_segment *s, const segidx_vid *vid, segidx_lsn lsn,
                             const segidx_offset *offs, size_t n, segidx_page_ref *out)
{
    if (!s || !vid || (n && (!offs || !out)))
        return SEGIDX_EINVAL;
    for (size_t i = 1; i < n; i++)
        if (offs[i] < offs[i - 1])
            return SEGIDX_EINVAL;
    const struct volume *v = volume_lookup(s, vid);
    size_t i = 0;
    bool all = true;
    if (v && lsn >= v->base_lsn) {
        for (; i < n && offs[i] < v->first_offset; i++) {
            out[i] = missing;
            all = false;
        }
        if (s->version != SEG_VERSION_1 && v->kind == KIND2_PARTITIONED) {
            all &= find_many_partitioned(s, v, lsn, offs + i, n - i, out + i);
            i = n;
        } else if (s->version != SEG_VERSION_1 && v->kind != KIND2_RANGE) {
            all &= find_many_keyed(s, v, lsn, offs + i, n - i, out + i);
            i = n;
        }
        /* Version 1, and ranges: each offset on its own. */
        for (; i < n; i++) {
            uint64_t x = offs[i] - v->first_offset;
            int rc = x > v->span                     ? SEGIDX_ENOTFOUND
                     : s->version != SEG_VERSION_1 ? find_v2(s, v, x, lsn, &out[i])
                                                     : find_v1(s, v, offs[i], lsn, &out[i]);
            if (rc)
                out[i] = missing;
            all &= rc == SEGIDX_OK;
        }
    }
    all = all_missing(out + i, n - i) && all;
    return all ? SEGIDX_OK : SEGIDX_ENOTFOUND;
}

/* ------------------------------------------------------------ validation */

/* A bounded reader over the index. */
struct cursor {
    const uint8_t *p, *end;
};

static bool take(struct cursor *c, uint64_t n, const uint8_t **out)
{
    if (n > (uint64_t)(c->end - c->p))
        return false;
    *out = c->p;
    c->p += n;
    return true;
}

/* A minimal LEB128 varint no larger than `max`. */
static bool read_varint(struct cursor *c, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (c->p == c->end)
            return false;
        uint8_t byte = *c->p++;
        uint64_t group = byte & 0x7Fu;
        if (shift == 63 && group > 1)
            return false; /* overflows u64 */
        v |= group << shift;
        if (!(byte & 0x80)) {
            if (shift && group == 0)
                return false; /* a redundant zero group */
            *out = v;
            return v <= max;
        }
    }
    return false;
}

static int read_volume_entry(struct cursor *c, struct volume *v, uint64_t *pages_left)
{
    const uint8_t *vid;
    uint64_t base, pages, offsets, first, span;
    if (!take(c, 16, &vid) || !read_varint(c, UINT64_MAX, &base) || base == 0 ||
        !read_varint(c, *pages_left, &pages) || pages == 0 ||
        !read_varint(c, pages, &offsets) || offsets == 0 ||
        !read_varint(c, UINT32_MAX, &first) || !read_varint(c, UINT32_MAX - first, &span) ||
        c->p == c->end)
        return SEGIDX_ECORRUPT;
    uint8_t kind = *c->p++;
    unsigned width = (kind & KIND_WIDTH_MASK) >> KIND_WIDTH_SHIFT;
    unsigned enc = kind & KIND_ENCODING_MASK;
    if ((kind & ~KIND_KNOWN_BITS) || width > 2 || enc > SEGIDX_OFFSETS_ELIAS_FANO ||
        offsets > span + 1)
        return SEGIDX_ECORRUPT;
    memcpy(v->vid.bytes, vid, 16);
    v->base_lsn = base;
    v->pages = (uint32_t)pages;
    v->offsets = (uint32_t)offsets;
    v->first_offset = (uint32_t)first;
    v->span = (uint32_t)span;
    v->encoding = (uint8_t)enc;
    v->width = (uint8_t)width;
    v->versions = kind & KIND_VERSIONS;
    v->low_bits = (uint8_t)ef_low_bits(offsets, span);
    *pages_left -= pages;
    return SEGIDX_OK;
}

static int check_bitmap(const struct volume *v)
{
    uint64_t words = bitmap_words(v->span), ones = 0;
    for (uint64_t w = 0; w < words; w++) {
        if (w % BITMAP_WORDS_PER_SAMPLE == 0 &&
            segidx__load16(v->samples + 2 * (w / BITMAP_WORDS_PER_SAMPLE)) != ones)
            return SEGIDX_ECORRUPT;
        ones += (uint64_t)segidx__popcount64(segidx__load64(v->words + 8 * w));
    }
    uint64_t last = segidx__load64(v->words + 8 * (words - 1));
    unsigned top = v->span % 64;
    bool ok = ones == v->offsets && (segidx__load64(v->words) & 1) && (last >> top & 1) &&
              (top == 63 || last >> top >> 1 == 0);
    return ok ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* Elias-Fano, word by word: every set bit is the next element, whose value
 * (its bucket, i.e. the zeros before it, then its low bits) must rise
 * strictly from 0 to the span; the zeros must number the buckets; every
 * 64th zero must sit where its select sample says. */
static bool ef_samples_hold(const struct volume *v, uint64_t word_index, uint64_t zero_bits,
                            uint64_t zeros_before, uint64_t *next_sample)
{
    uint64_t in_word = segidx__popcount64(zero_bits);
    uint64_t samples = ef_sample_count(v->span, v->low_bits);
    for (; *next_sample < zeros_before + in_word; *next_sample += EF_ZEROS_PER_SAMPLE) {
        if (*next_sample / EF_ZEROS_PER_SAMPLE >= samples)
            return false; /* more zeros than buckets: never read past the samples */
        uint64_t at = word_index * 64 +
                      select_in_word(zero_bits, (unsigned)(*next_sample - zeros_before));
        if (segidx__load16(v->samples + 2 * (*next_sample / EF_ZEROS_PER_SAMPLE)) !=
            at - *next_sample)
            return false;
    }
    return true;
}

static int check_elias_fano(const struct volume *v)
{
    uint64_t n = v->offsets, buckets = ef_buckets(v->span, v->low_bits);
    uint64_t bits = n + buckets, ones = 0, zeros = 0, next_sample = 0, prev = 0;
    for (uint64_t wi = 0; wi < div_ceil(bits, 64); wi++) {
        uint64_t w = segidx__load64(v->words + 8 * wi);
        uint64_t valid = low_mask(bits - wi * 64 >= 64 ? 64 : (unsigned)(bits - wi * 64));
        if (w & ~valid)
            return SEGIDX_ECORRUPT; /* padding */
        if (!ef_samples_hold(v, wi, ~w & valid, zeros, &next_sample))
            return SEGIDX_ECORRUPT;
        for (uint64_t m = w; m; m &= m - 1, ones++) {
            if (ones == n)
                return SEGIDX_ECORRUPT;
            uint64_t high = wi * 64 + (uint64_t)__builtin_ctzll(m) - ones;
            uint64_t value = high << v->low_bits | ef_low(v, ones);
            if (ones ? value <= prev : value != 0)
                return SEGIDX_ECORRUPT;
            prev = value;
        }
        zeros += segidx__popcount64(~w & valid);
    }
    uint64_t low_bits = n * v->low_bits;
    if (low_bits % 8 && v->low[low_bits / 8] >> (low_bits % 8))
        return SEGIDX_ECORRUPT; /* padding of the low bits */
    bool ok = ones == n && zeros == buckets && prev == v->span;
    return ok ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* One version per offset: the rLSNs are each page's LSN above base_lsn;
 * the smallest must be 0 (base_lsn is the smallest LSN). */
static int check_single_versions(struct volume *v)
{
    if (v->width == 0) { /* every page at base_lsn: nothing stored */
        v->max_lsn = v->base_lsn;
        return SEGIDX_OK;
    }
    uint64_t min = UINT64_MAX, max = 0;
    for (uint32_t page = 0; page < v->pages; page++) {
        uint64_t r = rlsn_at(v, page);
        min = r < min ? r : min;
        max = r > max ? r : max;
    }
    if (min != 0 || max > UINT64_MAX - v->base_lsn)
        return SEGIDX_ECORRUPT;
    v->max_lsn = v->base_lsn + max;
    return SEGIDX_OK;
}

/* Several versions: ranks rise strictly from 0, every list rises strictly,
 * no LSN overflows u64, and some list starts at base_lsn. */
static int check_version_lists(struct volume *v)
{
    uint64_t max = v->base_lsn, min_first = UINT64_MAX;
    for (uint64_t i = 0; i < v->offsets; i++) {
        uint32_t page, end;
        offset_pages(v, i, &page, &end);
        if ((i == 0 && page != 0) || end <= page || end > v->pages)
            return SEGIDX_ECORRUPT;
        uint64_t first = rlsn_at(v, page), at = v->base_lsn + first;
        if (first > UINT64_MAX - v->base_lsn)
            return SEGIDX_ECORRUPT;
        min_first = first < min_first ? first : min_first;
        for (page++; page < end; page++) {
            uint64_t d = rlsn_at(v, page);
            if (d == 0 || d > UINT64_MAX - at)
                return SEGIDX_ECORRUPT;
            at += d;
        }
        max = at > max ? at : max;
    }
    if (min_first != 0)
        return SEGIDX_ECORRUPT;
    v->max_lsn = max;
    return SEGIDX_OK;
}

static int check_versions(struct volume *v)
{
    /* The versions bit means some offset has several (so fewer offsets than
     * pages), which one LSN for all pages (width 0) cannot have. */
    if (v->versions && (v->width == 0 || v->offsets == v->pages))
        return SEGIDX_ECORRUPT;
    if (!v->versions)
        return v->offsets == v->pages ? check_single_versions(v) : SEGIDX_ECORRUPT;
    return check_version_lists(v);
}

/* Place the volume's data parts at the cursor and validate them. */
static int read_volume_data(struct cursor *c, struct volume *v)
{
    const uint8_t *start = c->p, *unused;
    bool ok = true;
    if (v->encoding == SEGIDX_OFFSETS_RANGE) {
        ok = (uint64_t)v->offsets == (uint64_t)v->span + 1;
    } else if (v->encoding == SEGIDX_OFFSETS_BITMAP) {
        uint64_t words = bitmap_words(v->span);
        ok = take(c, 8 * words, &v->words) &&
             take(c, 2 * div_ceil(words, BITMAP_WORDS_PER_SAMPLE), &v->samples);
    } else {
        unsigned l = v->low_bits;
        ok = take(c, ef_low_bytes(v->offsets, l), &v->low) &&
             take(c, 8 * ef_high_words(v->offsets, v->span, l), &v->words) &&
             take(c, 2 * ef_sample_count(v->span, l), &v->samples);
    }
    v->ranks = NULL;
    if (ok && v->versions)
        ok = take(c, 2ull * v->offsets, &v->ranks);
    if (!ok || !take(c, (uint64_t)v->width * v->pages, &unused))
        return SEGIDX_ECORRUPT;
    v->rlsn = unused;
    v->index_bytes = (size_t)(c->p - start);

    int rc = SEGIDX_OK;
    if (v->encoding == SEGIDX_OFFSETS_BITMAP)
        rc = check_bitmap(v);
    else if (v->encoding == SEGIDX_OFFSETS_ELIAS_FANO)
        rc = check_elias_fano(v);
    return rc ? rc : check_versions(v);
}

/* ---------------------------------------------- validation, version 2 */

static int read_entry_v2(struct cursor *c, struct volume *v, uint64_t *pages_left,
                         unsigned version)
{
    const uint8_t *vid;
    uint64_t base, pages, offsets, first, span;
    if (!take(c, 16, &vid) || !read_varint(c, UINT64_MAX, &base) || base == 0 ||
        !read_varint(c, *pages_left, &pages) || pages == 0 ||
        !read_varint(c, pages, &offsets) || offsets == 0 ||
        !read_varint(c, UINT32_MAX, &first) || !read_varint(c, UINT32_MAX - first, &span) ||
        c->end - c->p < 2)
        return SEGIDX_ECORRUPT;
    unsigned kind = c->p[0], rlsn_bits = c->p[1];
    c->p += 2;
    unsigned top_kind = version == SEG_VERSION_3 ? KIND3_PACKED : KIND2_PARTITIONED;
    if (kind > top_kind || rlsn_bits > RLSN2_MAX_BITS || offsets > span + 1 ||
        (kind == KIND2_RANGE && offsets != span + 1))
        return SEGIDX_ECORRUPT;
    v->sh = v->k = 0;
    if (kind >= KIND3_EF_BUCKETS) {
        if (c->end - c->p < 2 || c->p[0] > KEYED_MAX_SH || c->p[1] > KEYED_MAX_K ||
            offsets > KEYED_MAX_OFFSETS)
            return SEGIDX_ECORRUPT;
        v->sh = c->p[0];
        v->k = c->p[1];
        c->p += 2;
    }
    v->kind = (uint8_t)kind;
    memcpy(v->vid.bytes, vid, 16);
    v->base_lsn = base;
    v->pages = (uint32_t)pages;
    v->offsets = (uint32_t)offsets;
    v->first_offset = (uint32_t)first;
    v->span = (uint32_t)span;
    static const uint8_t encodings[] = { SEGIDX_OFFSETS_RANGE, SEGIDX_OFFSETS_PARTITIONED,
                                         SEGIDX_OFFSETS_KEYED, SEGIDX_OFFSETS_KEYED_PACKED };
    v->encoding = encodings[kind];
    v->rlsn_bits = (uint8_t)rlsn_bits;
    v->width = (uint8_t)((rlsn_bits + 7) / 8);
    v->versions = offsets < pages;
    v->rank_bits = (uint8_t)(v->versions ? bits_for(pages - 1) : 0);
    *pages_left -= pages;
    return SEGIDX_OK;
}

/* The padding bits after `bits` bits of a stream are 0. */
static bool padding_clear(const uint8_t *p, uint64_t bits)
{
    return bits % 8 == 0 || (p[bits / 8] >> (bits % 8)) == 0;
}

/* Chunk c: positions and width as the records say, high bits holding
 * exactly its elements, the elements rising from the record's first above
 * `*prev` (the previous chunk's last, or none for chunk 0), the width the
 * smallest that fits. */
static bool check_chunk(const struct volume *v, uint64_t c, uint64_t total, uint64_t *prev)
{
    uint32_t where = record_where(v, c), next = record_where(v, c + 1);
    uint64_t pos = where & PEF_POS_MASK, end = next & PEF_POS_MASK, n = chunk_size(v, c);
    uint64_t l = where >> PEF_POS_BITS, first = record_first(v, c);
    if (l > 31 || end > total || end < pos || end - pos < n * (l + 1) + 1)
        return false;
    uint64_t high = end - pos - n * l, buckets = high - n;
    if (buckets > n || (c ? first <= *prev : first != 0) || first > v->span)
        return false;
    uint64_t ones = 0, y = 0;
    for (uint64_t base = 0; base < high; base += 64) {
        uint64_t w = word_at(v->stream, pos + base);
        if (high - base < 64)
            w &= low_mask((unsigned)(high - base));
        for (; w; w &= w - 1, ones++) {
            if (ones == n)
                return false;
            uint64_t bucket = base + (uint64_t)__builtin_ctzll(w) - ones;
            uint64_t value = bucket << l | bits_at(v->stream, pos + high + ones * l, (unsigned)l);
            if (ones ? value <= y : value != 0)
                return false;
            y = value;
        }
    }
    /* n ones and the zeros ending every bucket; y, the last, fixes the width. */
    if (ones != n || (y >> l) + 1 != buckets || (l && (y >> (l - 1)) < n) ||
        y > v->span - first)
        return false;
    *prev = first + y;
    return true;
}

static int check_partitioned(struct volume *v, struct cursor *cur)
{
    uint64_t chunks = pef_chunks(v->offsets);
    unsigned t = pef_top_shift(v->span, chunks);
    uint64_t entries = (v->span >> t) + 1;
    const uint8_t *unused;
    if (!take(cur, 2 * (entries + 1), &v->top) ||
        !take(cur, PEF_RECORD_BYTES * (chunks + 1), &v->records))
        return SEGIDX_ECORRUPT;
    v->chunks = (uint32_t)chunks;
    v->top_shift = (uint8_t)t;
    uint32_t end = record_where(v, chunks);
    uint64_t total = end;
    if (record_first(v, chunks) != 0 || end > PEF_POS_MASK || (record_where(v, 0) & PEF_POS_MASK) ||
        !take(cur, stream_bytes(total), &unused))
        return SEGIDX_ECORRUPT;
    v->stream = unused;
    if (!padding_clear(v->stream, total))
        return SEGIDX_ECORRUPT;
    uint64_t prev = 0;
    for (uint64_t c = 0; c < chunks; c++)
        if (!check_chunk(v, c, total, &prev))
            return SEGIDX_ECORRUPT;
    if (prev != v->span)
        return SEGIDX_ECORRUPT;
    /* Positions are checked pairwise; the last chunk must end the stream. */
    uint64_t c = 0;
    for (uint64_t j = 0; j < entries; j++) {
        while (c + 1 < chunks && record_first(v, c + 1) <= j << t)
            c++;
        if (segidx__load16(v->top + 2 * j) != c)
            return SEGIDX_ECORRUPT;
    }
    return segidx__load16(v->top + 2 * entries) == chunks - 1 ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* Key j's bucket of n values of width w at st (its bytes, `bytes`, the
 * formula's): every value below 2^w, above *prev (none before the first
 * element: it must be 0), high bits holding exactly n elements in their
 * 2^hb sub-buckets, padding 0. */
static bool check_bucket(const struct volume *v, uint64_t j, const uint8_t *st, uint64_t n,
                         uint64_t *count, uint64_t *prev)
{
    unsigned w = keyed_width(j, v->sh, v->k);
    uint64_t bits = v->kind == KIND3_PACKED ? n * w : 0;
    if (v->kind == KIND3_PACKED && (bits > PACKED_MAX_BITS || (w == 0 && n > 1)))
        return false;
    uint32_t x[KEYED_MAX_BUCKET];
    if (v->kind == KIND3_EF_BUCKETS) {
        unsigned hb = keyed_high_bits(n, w), l = w - hb;
        uint64_t high = n + (1ull << hb); /* <= 64 */
        uint64_t word = segidx__load64(st) & low_mask((unsigned)high), ones = 0;
        for (uint64_t m = word; m; m &= m - 1, ones++)
            if ((uint64_t)__builtin_ctzll(m) - ones >= 1ull << hb)
                return false; /* past the last zero: a value of w + 1 bits */
        if (ones != n)
            return false;
        bits = high + n * l;
    }
    if (!padding_clear(st, bits))
        return false;
    keyed_decode_key(v, j, x);
    for (uint64_t i = 0; i < n; i++, ++*count) {
        if (*count ? x[i] <= *prev : x[i] != 0)
            return false;
        *prev = x[i];
    }
    return true;
}

/* Kinds 2 and 3: the directory's K + 2 entries (ranks and positions never
 * falling, key j's bucket exactly its formula's bytes and at most 32
 * values), every bucket, values rising from 0 to the span. */
static int check_keyed(struct volume *v, struct cursor *cur)
{
    unsigned w;
    uint64_t keys = keyed_key(v->span, v->sh, v->k, &w) + 2;
    const uint8_t *end;
    if (!take(cur, KEYED_ENTRY_BYTES * keys, &v->dir))
        return SEGIDX_ECORRUPT;
    end = v->dir + KEYED_ENTRY_BYTES * (keys - 1);
    uint32_t first = segidx__load32(v->dir), last = segidx__load32(end);
    if (first != 0 || (last & 0xFFFF) != v->offsets || !take(cur, last >> 16, &v->stream))
        return SEGIDX_ECORRUPT;
    uint64_t count = 0, prev = 0;
    for (uint64_t j = 0; j + 1 < keys; j++) {
        uint32_t a = segidx__load32(v->dir + KEYED_ENTRY_BYTES * j);
        uint32_t b = segidx__load32(v->dir + KEYED_ENTRY_BYTES * (j + 1));
        uint64_t r0 = a & 0xFFFF, r1 = b & 0xFFFF, p0 = a >> 16, p1 = b >> 16;
        if (r1 < r0 || p1 < p0 || r1 - r0 > KEYED_MAX_BUCKET ||
            p1 - p0 != keyed_bucket_bytes(v->kind, r1 - r0, keyed_width(j, v->sh, v->k)))
            return SEGIDX_ECORRUPT;
        if (r1 > r0 && !check_bucket(v, j, v->stream + p0, r1 - r0, &count, &prev))
            return SEGIDX_ECORRUPT;
    }
    return count == v->offsets && prev == v->span ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* Ranks and rLSNs: every list rising strictly, the smallest value 0, the
 * width minimal, no LSN past u64. */
static int check_versions_v2(struct volume *v, struct cursor *c)
{
    const uint8_t *p;
    v->ranks = NULL;
    if (v->versions) {
        uint64_t bits = (uint64_t)v->offsets * v->rank_bits;
        if (!take(c, stream_bytes(bits), &p) || !padding_clear(p, bits))
            return SEGIDX_ECORRUPT;
        v->ranks = p;
        for (uint64_t i = 0, prev = 0; i < v->offsets; i++) {
            uint64_t r = rank2_at(v, i);
            if (i ? r <= prev : r != 0)
                return SEGIDX_ECORRUPT;
            if (r >= v->pages)
                return SEGIDX_ECORRUPT;
            prev = r;
        }
    }
    uint64_t bits = (uint64_t)v->pages * v->rlsn_bits;
    if (!take(c, stream_bytes(bits), &p) || !padding_clear(p, bits))
        return SEGIDX_ECORRUPT;
    v->rlsn = p;
    uint64_t min = UINT64_MAX, max = 0;
    for (uint64_t i = 0; i < v->offsets; i++) {
        uint64_t page = v->versions ? rank2_at(v, i) : i;
        uint64_t end = !v->versions ? i + 1 : i + 1 < v->offsets ? rank2_at(v, i + 1) : v->pages;
        for (uint64_t k = page, prev = 0; k < end; k++) {
            uint64_t r = rlsn2_at(v, k);
            if (k > page && r <= prev)
                return SEGIDX_ECORRUPT;
            prev = r;
            min = r < min ? r : min;
            max = r > max ? r : max;
        }
    }
    if (min != 0 || bits_for(max) != v->rlsn_bits || max > UINT64_MAX - v->base_lsn)
        return SEGIDX_ECORRUPT;
    v->max_lsn = v->base_lsn + max;
    return SEGIDX_OK;
}

static int read_data_v2(struct cursor *c, struct volume *v)
{
    const uint8_t *start = c->p;
    int rc = v->kind == KIND2_PARTITIONED ? check_partitioned(v, c)
             : v->kind != KIND2_RANGE    ? check_keyed(v, c)
                                         : SEGIDX_OK;
    if (!rc)
        rc = check_versions_v2(v, c);
    v->index_bytes = (size_t)(c->p - start);
    return rc;
}

static int build_vid_table(segidx_segment *s)
{
    uint32_t size = 16;
    while (size < 4 * s->volume_count)
        size *= 2;
    s->slots = calloc(size, sizeof *s->slots);
    if (!s->slots)
        return SEGIDX_ENOMEM;
    s->slot_mask = size - 1;
    for (uint32_t v = 0; v < s->volume_count; v++) {
        const struct volume *vol = &s->volumes[v];
        uint32_t i = vid_hash(s, &vol->vid) & s->slot_mask;
        while (s->slots[i].volume)
            i = (i + 1) & s->slot_mask;
        memcpy(&s->slots[i].vid0, vol->vid.bytes, 8);
        s->slots[i].volume = vol;
    }
    return SEGIDX_OK;
}

static int read_index(segidx_segment *s)
{
    struct cursor c = { s->index, s->index + s->index_len };
    uint64_t pages_left = s->page_count;
    for (uint32_t v = 0; v < s->volume_count; v++) {
        struct volume *vol = &s->volumes[v];
        const uint8_t *entry = c.p;
        int rc = s->version != SEG_VERSION_1 ? read_entry_v2(&c, vol, &pages_left, s->version)
                                             : read_volume_entry(&c, vol, &pages_left);
        if (rc)
            return SEGIDX_ECORRUPT;
        if (v && memcmp(s->volumes[v - 1].vid.bytes, vol->vid.bytes, 16) >= 0)
            return SEGIDX_ECORRUPT; /* vids strictly increasing */
        vol->first_page = s->page_count - (uint32_t)pages_left - vol->pages;
        vol->index_bytes = (size_t)(c.p - entry);
    }
    if (pages_left)
        return SEGIDX_ECORRUPT;
    for (uint32_t v = 0; v < s->volume_count; v++) {
        size_t entry_bytes = s->volumes[v].index_bytes;
        int rc = s->version != SEG_VERSION_1 ? read_data_v2(&c, &s->volumes[v])
                                             : read_volume_data(&c, &s->volumes[v]);
        if (rc)
            return rc;
        s->volumes[v].index_bytes += entry_bytes;
    }
    return c.p == c.end ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* ------------------------------------------------------------ open */

static int check_footer(const uint8_t *f, uint64_t segment_len)
{
    if (memcmp(f + FOOT_MAGIC, seg_footer_magic, 4) != 0)
        return SEGIDX_ECORRUPT;
    unsigned version = segidx__load16(f + FOOT_VERSION);
    if (version < SEG_VERSION_1 || version > SEG_VERSION_3)
        return SEGIDX_EVERSION;
    uint32_t page_size = segidx__load32(f + FOOT_PAGE_SIZE);
    uint32_t pages = segidx__load32(f + FOOT_PAGE_COUNT);
    uint32_t volumes = segidx__load32(f + FOOT_VOLUME_COUNT);
    uint64_t index_offset = segidx__load64(f + FOOT_INDEX_OFFSET);
    uint64_t index_len = segidx__load32(f + FOOT_INDEX_LEN);
    bool ok = segidx__load16(f + FOOT_FLAGS) == 0 && page_size >= SEG_MIN_PAGE_SIZE &&
              page_size <= SEG_MAX_PAGE_SIZE && !(page_size & (page_size - 1)) &&
              pages >= 1 && pages <= SEGIDX_MAX_SEGMENT_PAGES && volumes >= 1 &&
              volumes <= pages && index_offset == seg_index_offset(pages, page_size) &&
              segment_len == index_offset + index_len + SEG_FOOTER_BYTES &&
              segment_len <= SEG_MAX_BYTES && (uint64_t)volumes * 22 <= index_len;
    return ok ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

int segidx_segment_tail_len(const void *footer, uint64_t segment_len, size_t *tail_len)
{
    if (!footer || !tail_len)
        return SEGIDX_EINVAL;
    const uint8_t *f = footer;
    int rc = check_footer(f, segment_len);
    if (rc)
        return rc;
    *tail_len = (size_t)(segment_len - SEG_HEADER_BYTES -
                         (uint64_t)segidx__load32(f + FOOT_PAGE_COUNT) *
                             segidx__load32(f + FOOT_PAGE_SIZE));
    return SEGIDX_OK;
}

static void segment_free(segidx_segment *s)
{
    if (!s)
        return;
    free(s->volumes);
    free(s->slots);
    free(s);
}

/* Open from the tail: [page checksums][index][footer], `tail_len` bytes. */
static int open_tail(const uint8_t *tail, size_t tail_len, uint64_t segment_len,
                     segidx_segment **out)
{
    if (tail_len < SEG_FOOTER_BYTES)
        return SEGIDX_ECORRUPT;
    const uint8_t *f = tail + tail_len - SEG_FOOTER_BYTES;
    size_t want;
    int rc = segidx_segment_tail_len(f, segment_len, &want);
    if (rc)
        return rc;
    if (want != tail_len)
        return SEGIDX_ECORRUPT;
    size_t index_len = segidx__load32(f + FOOT_INDEX_LEN);
    if (segidx__load64(f + FOOT_SUM) != segidx__xxh3(f - index_len, index_len + FOOT_SUM))
        return SEGIDX_ECORRUPT;

    segidx_segment *s = calloc(1, sizeof *s);
    if (!s)
        return SEGIDX_ENOMEM;
    s->page_size = segidx__load32(f + FOOT_PAGE_SIZE);
    s->page_count = segidx__load32(f + FOOT_PAGE_COUNT);
    s->version = segidx__load16(f + FOOT_VERSION);
    s->volume_count = segidx__load32(f + FOOT_VOLUME_COUNT);
    s->segment_len = segment_len;
    s->sums = tail;
    s->index = f - index_len;
    s->index_len = index_len;
    s->seed = (uint64_t)(uintptr_t)s; /* differs per open: no fixed worst case */
    s->hw = cpu_has_hw_select();
    memcpy(s->sid.bytes, f + FOOT_SID, 16);
    s->volumes = calloc(s->volume_count, sizeof *s->volumes);
    if (!s->volumes)
        rc = SEGIDX_ENOMEM;
    if (!rc)
        rc = read_index(s);
    if (!rc)
        rc = build_vid_table(s);
    if (rc) {
        segment_free(s);
        return rc;
    }
    *out = s;
    return SEGIDX_OK;
}

int segidx_segment_open_tail(const void *tail, size_t tail_len, uint64_t segment_len,
                             segidx_segment **out)
{
    if (!tail || !out)
        return SEGIDX_EINVAL;
    return open_tail(tail, tail_len, segment_len, out);
}

/* The header must be what the footer says, byte for byte where it repeats
 * it, and hash to the footer's header_checksum. */
static int check_header(const uint8_t *h, const uint8_t *f)
{
    if (memcmp(h, seg_header_magic, 4) != 0)
        return SEGIDX_ECORRUPT;
    unsigned version = segidx__load16(h + HEAD_VERSION);
    if (version < SEG_VERSION_1 || version > SEG_VERSION_3)
        return SEGIDX_EVERSION;
    if (version != segidx__load16(f + FOOT_VERSION))
        return SEGIDX_ECORRUPT;
    static const uint8_t zeros[SEG_HEADER_BYTES - HEAD_RESERVED];
    bool ok = segidx__load16(h + HEAD_FLAGS) == 0 &&
              segidx__load32(h + HEAD_PAGE_SIZE) == segidx__load32(f + FOOT_PAGE_SIZE) &&
              segidx__load32(h + HEAD_PAGE_COUNT) == segidx__load32(f + FOOT_PAGE_COUNT) &&
              segidx__load32(h + HEAD_VOLUME_COUNT) == segidx__load32(f + FOOT_VOLUME_COUNT) &&
              segidx__load32(h + HEAD_INDEX_LEN) == segidx__load32(f + FOOT_INDEX_LEN) &&
              memcmp(h + HEAD_SID, f + FOOT_SID, 16) == 0 &&
              memcmp(h + HEAD_RESERVED, zeros, sizeof zeros) == 0 &&
              segidx__load64(f + FOOT_HEADER_SUM) == segidx__xxh3(h, SEG_HEADER_BYTES);
    return ok ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

int segidx_segment_open(const void *buf, size_t len, segidx_segment **out)
{
    if (!buf || !out)
        return SEGIDX_EINVAL;
    const uint8_t *p = buf;
    if (len < SEG_HEADER_BYTES + SEG_FOOTER_BYTES)
        return SEGIDX_ECORRUPT;
    const uint8_t *f = p + len - SEG_FOOTER_BYTES;
    size_t tail_len;
    int rc = segidx_segment_tail_len(f, len, &tail_len);
    if (!rc)
        rc = check_header(p, f);
    segidx_segment *s = NULL;
    if (!rc)
        rc = open_tail(p + len - tail_len, tail_len, len, &s);
    if (rc)
        return rc;
    s->pages = p + SEG_HEADER_BYTES;
    *out = s;
    return SEGIDX_OK;
}

void segidx_segment_close(segidx_segment *s)
{
    segment_free(s);
}

/* ------------------------------------------------------------ pages */

int segidx_segment_page_range(const segidx_segment *s, uint32_t local, uint64_t *offset,
                              uint32_t *len)
{
    if (!s || !offset || !len || local >= s->page_count)
        return SEGIDX_EINVAL;
    *offset = SEG_HEADER_BYTES + (uint64_t)local * s->page_size;
    *len = s->page_size;
    return SEGIDX_OK;
}

int segidx_segment_check_page(const segidx_segment *s, uint32_t local, const void *page)
{
    if (!s || !page || local >= s->page_count)
        return SEGIDX_EINVAL;
    uint64_t want = segidx__load64(s->sums + 8 * (size_t)local);
    return segidx__xxh3(page, s->page_size) == want ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

int segidx_segment_verify(const segidx_segment *s)
{
    if (!s || !s->pages)
        return SEGIDX_EINVAL;
    for (uint32_t i = 0; i < s->page_count; i++) {
        int rc = segidx_segment_check_page(s, i, s->pages + (size_t)i * s->page_size);
        if (rc)
            return rc;
    }
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ walking */

void segidx_segment_stats_get(const segidx_segment *s, segidx_segment_stats *out)
{
    if (!s || !out)
        return;
    out->sid = s->sid;
    out->page_size = s->page_size;
    out->page_count = s->page_count;
    out->volume_count = s->volume_count;
    out->index_bytes = s->index_len;
    out->segment_bytes = s->segment_len;
}

int segidx_segment_volume_get(const segidx_segment *s, uint32_t i, segidx_segment_volume *out)
{
    if (!s || !out || i >= s->volume_count)
        return SEGIDX_EINVAL;
    const struct volume *v = &s->volumes[i];
    *out = (segidx_segment_volume){
        .vid = v->vid,
        .first_page = v->first_page,
        .page_count = v->pages,
        .offset_count = v->offsets,
        .first_offset = v->first_offset,
        .last_offset = v->first_offset + v->span,
        .min_lsn = v->base_lsn,
        .max_lsn = v->max_lsn,
        .offset_encoding = v->encoding,
        .rlsn_width = v->width,
        .index_bytes = v->index_bytes,
    };
    return SEGIDX_OK;
}

/* Sequential decoding of a volume's offsets, in rank order. */
struct offset_walk {
    const struct volume *v;
    uint64_t rank, pos;  /* pos: next bit (bitmap) or high bit (Elias-Fano) */
};

static uint64_t next_offset(struct offset_walk *w)
{
    const struct volume *v = w->v;
    uint64_t x;
    if (v->encoding == SEGIDX_OFFSETS_RANGE) {
        x = w->rank;
    } else {
        while (!(segidx__load64(v->words + 8 * (w->pos / 64)) >> (w->pos % 64) & 1))
            w->pos++;
        x = v->encoding == SEGIDX_OFFSETS_BITMAP
                ? w->pos
                : (w->pos - w->rank) << v->low_bits | ef_low(v, w->rank);
        w->pos++;
    }
    w->rank++;
    return v->first_offset + x;
}

typedef int (*page_fn)(void *ctx, const segidx_segment_page *p);

static int iterate_volume_v2(const segidx_segment *s, const struct volume *v, page_fn fn,
                             void *ctx)
{
    uint32_t x[PEF_CHUNK];
    bool keyed = v->kind >= KIND3_EF_BUCKETS;
    uint64_t key = 0, decoded = 0, in = 0; /* keyed: elements of x, the next */
    for (uint64_t i = 0; i < v->offsets; i++) {
        if (i % PEF_CHUNK == 0 && v->kind == KIND2_PARTITIONED)
            pef_decode_chunk(v, i / PEF_CHUNK, x);
        while (keyed && in == decoded) { /* the next key that holds any */
            decoded = keyed_decode_key(v, key++, x);
            in = 0;
        }
        uint64_t at = v->kind == KIND2_PARTITIONED ? x[i % PEF_CHUNK] : keyed ? x[in++] : i;
        segidx_segment_page p = { &v->vid, (segidx_offset)(v->first_offset + at), 0, 0, NULL };
        uint64_t page = v->versions ? rank2_at(v, i) : i;
        uint64_t end = !v->versions ? i + 1 : i + 1 < v->offsets ? rank2_at(v, i + 1) : v->pages;
        for (; page < end; page++) {
            p.lsn = v->base_lsn + rlsn2_at(v, page);
            p.local = v->first_page + (uint32_t)page;
            p.page = s->pages ? s->pages + (size_t)p.local * s->page_size : NULL;
            int rc = fn(ctx, &p);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int iterate_volume(const segidx_segment *s, const struct volume *v, page_fn fn, void *ctx)
{
    if (s->version != SEG_VERSION_1)
        return iterate_volume_v2(s, v, fn, ctx);
    struct offset_walk w = { v, 0, 0 };
    for (uint64_t i = 0; i < v->offsets; i++) {
        segidx_segment_page p = { &v->vid, (segidx_offset)next_offset(&w), v->base_lsn, 0, NULL };
        uint32_t page, end;
        offset_pages(v, i, &page, &end);
        for (uint32_t k = page; k < end; k++) {
            p.lsn = (k == page ? v->base_lsn : p.lsn) + rlsn_at(v, k);
            p.local = v->first_page + k;
            p.page = s->pages ? s->pages + (size_t)p.local * s->page_size : NULL;
            int rc = fn(ctx, &p);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int segidx_segment_iterate(const segidx_segment *s, const segidx_vid *vid, page_fn fn, void *ctx)
{
    if (!s || !fn)
        return SEGIDX_EINVAL;
    if (vid) {
        const struct volume *v = volume_lookup(s, vid);
        return v ? iterate_volume(s, v, fn, ctx) : SEGIDX_ENOTFOUND;
    }
    for (uint32_t i = 0; i < s->volume_count; i++) {
        int rc = iterate_volume(s, &s->volumes[i], fn, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

struct offsets_at {
    segidx_lsn lsn;
    segidx_offset_set *set;
};

static int add_if_at(void *ctx, const segidx_segment_page *p)
{
    struct offsets_at *a = ctx;
    return p->lsn == a->lsn ? segidx_offset_set_add(a->set, p->offset) : 0;
}

int segidx_segment_offsets(const segidx_segment *s, const segidx_vid *vid, segidx_lsn lsn,
                           segidx_offset_set **out)
{
    if (!s || !vid || !out)
        return SEGIDX_EINVAL;
    struct offsets_at a = { lsn, segidx_offset_set_new() };
    if (!a.set)
        return SEGIDX_ENOMEM;
    const struct volume *v = volume_lookup(s, vid);
    int rc = v ? iterate_volume(s, v, add_if_at, &a) : 0;
    if (rc) {
        segidx_offset_set_free(a.set);
        return rc;
    }
    *out = a.set;
    return SEGIDX_OK;
}

int segidx__segment_volume_kind(const segidx_segment *s, uint32_t i, unsigned *sh, unsigned *k)
{
    if (!s || i >= s->volume_count)
        return -1;
    const struct volume *v = &s->volumes[i];
    if (sh)
        *sh = v->sh;
    if (k)
        *k = v->k;
    return s->version == SEG_VERSION_1 ? v->encoding : v->kind;
}
