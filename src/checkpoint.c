/* Checkpoints: the schedule, the chunk map codec, version lists
 * (docs/FORMAT.md, "Checkpoints"). */
#include "checkpoint.h"

#include <stdlib.h>

/* ------------------------------------------------------------ schedule */

bool segidx__ckpt_policy_valid(const segidx__ckpt_policy *p)
{
    return p->commits >= 1 && p->commits <= SEGIDX__CKPT_MAX_COMMITS && p->fanout >= 2 &&
           p->fanout <= SEGIDX__CKPT_MAX_FANOUT && p->levels >= 1 &&
           p->levels <= SEGIDX__CKPT_MAX_LEVELS;
}

/* F^e for e <= L <= 6 and F <= 64: at most 2^36, no overflow. */
static uint64_t power(unsigned f, unsigned e)
{
    uint64_t r = 1;
    while (e--)
        r *= f;
    return r;
}

uint64_t segidx__ckpt_span(const segidx__ckpt_policy *p, unsigned level)
{
    return power(p->fanout, level - 1);
}

uint64_t segidx__ckpt_image_every(const segidx__ckpt_policy *p)
{
    return power(p->fanout, p->levels);
}

uint64_t segidx__ckpt_image_round(const segidx__ckpt_policy *p, uint64_t n)
{
    return n - n % segidx__ckpt_image_every(p);
}

segidx_lsn segidx__ckpt_min_lsn(const segidx__ckpt_policy *p, unsigned level, segidx_lsn round)
{
    return level == 0 ? 1 : round - segidx__ckpt_span(p, level) * p->commits + 1;
}

unsigned segidx__ckpt_top_level(const segidx__ckpt_policy *p, uint64_t n)
{
    unsigned j = 1;
    while (j < p->levels && n % segidx__ckpt_span(p, j + 1) == 0)
        j++;
    return j;
}

/* ------------------------------------------------------------ versions */

void segidx__vers_free(segidx__vers *l)
{
    free(l->v);
    *l = (segidx__vers){ 0 };
}

int segidx__vers_reserve(segidx__vers *l, size_t more)
{
    if (l->cap - l->n >= more)
        return SEGIDX_OK;
    size_t cap = l->cap ? l->cap : 256;
    while (cap - l->n < more) {
        if (cap > SIZE_MAX / 2 / sizeof *l->v)
            return SEGIDX_ENOMEM;
        cap *= 2;
    }
    segidx__ver *v = realloc(l->v, cap * sizeof *v);
    if (!v)
        return SEGIDX_ENOMEM;
    l->v = v;
    l->cap = cap;
    return SEGIDX_OK;
}

struct add_set {
    segidx__vers *l;
    segidx_lsn lsn;
};

static int add_one(segidx_offset o, void *ctx)
{
    struct add_set *a = ctx;
    a->l->v[a->l->n++] = (segidx__ver){ o, a->lsn };
    return 0;
}

int segidx__vers_add_set(segidx__vers *l, const segidx_offset_set *s, segidx_lsn lsn)
{
    uint64_t card = segidx_offset_set_cardinality(s);
    if (card > SIZE_MAX / sizeof *l->v || segidx__vers_reserve(l, (size_t)card))
        return SEGIDX_ENOMEM;
    struct add_set a = { l, lsn };
    segidx_offset_set_iterate(s, add_one, &a);
    return SEGIDX_OK;
}

/* A stable sort by offset: four passes of a byte each (LSD radix), so that
 * an image of a few hundred thousand versions sorts in linear time. */
static int sort_by_offset(segidx__vers *l)
{
    segidx__ver *tmp = malloc(l->n * sizeof *tmp);
    if (!tmp)
        return SEGIDX_ENOMEM;
    segidx__ver *from = l->v, *to = tmp;
    for (unsigned shift = 0; shift < 32; shift += 8) {
        size_t count[257] = { 0 };
        for (size_t i = 0; i < l->n; i++)
            count[(from[i].off >> shift & 0xFF) + 1]++;
        if (count[(from[0].off >> shift & 0xFF) + 1] == l->n)
            continue; /* one bucket: this byte orders nothing */
        for (unsigned b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < l->n; i++)
            to[count[from[i].off >> shift & 0xFF]++] = from[i];
        segidx__ver *t = from;
        from = to;
        to = t;
    }
    if (from != l->v)
        memcpy(l->v, from, l->n * sizeof *l->v);
    free(tmp);
    return SEGIDX_OK;
}

int segidx__vers_newest(segidx__vers *l)
{
    if (l->n < 2)
        return SEGIDX_OK;
    if (sort_by_offset(l))
        return SEGIDX_ENOMEM;
    size_t k = 1;
    for (size_t i = 1; i < l->n; i++)
        if (l->v[i].off != l->v[k - 1].off)
            l->v[k++] = l->v[i];
    l->n = k;
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ chunk map */

#define MAP_HEADER 24
#define MAP_CHECKSUM 8
#define MAP_VERSION 1
#define MAP_BITMAP_BYTES (SEGIDX__CHUNK_OFFSETS / 8)
/* From this many offsets on, the bitmap is the smaller encoding. */
#define MAP_BITMAP_FROM (MAP_BITMAP_BYTES / 2)
static const uint8_t map_magic[4] = { 'S', 'X', 'C', 'K' };

static size_t offsets_bytes(unsigned count)
{
    return count >= MAP_BITMAP_FROM ? MAP_BITMAP_BYTES : 2 * (size_t)count;
}

static size_t lsns_bytes(unsigned count, unsigned width)
{
    return ((size_t)count * width + 7) / 8;
}

/* The w-bit field at bit `bit`, fields packed from bit 0 upward. */
static uint64_t get_field(const uint8_t *p, size_t bit, unsigned w)
{
    uint64_t v = 0;
    for (unsigned got = 0; got < w;) {
        unsigned shift = (unsigned)((bit + got) & 7), take = 8 - shift;
        take = take < w - got ? take : w - got;
        v |= (uint64_t)((p[(bit + got) >> 3] >> shift) & ((1u << take) - 1)) << got;
        got += take;
    }
    return v;
}

static void put_field(uint8_t *p, size_t bit, unsigned w, uint64_t v)
{
    for (unsigned put = 0; put < w;) {
        unsigned shift = (unsigned)((bit + put) & 7), take = 8 - shift;
        take = take < w - put ? take : w - put;
        p[(bit + put) >> 3] |= (uint8_t)(((v >> put) & ((1u << take) - 1)) << shift);
        put += take;
    }
}

static unsigned bits_for(uint64_t v)
{
    unsigned w = 0;
    while (v) {
        w++;
        v >>= 1;
    }
    return w;
}

/* Bits set in x, without a call (built for CPUs without POPCNT, the
 * builtin becomes a library call per word). */
static unsigned popcount64(uint64_t x)
{
    x -= x >> 1 & 0x5555555555555555u;
    x = (x & 0x3333333333333333u) + (x >> 2 & 0x3333333333333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Fu;
    return (unsigned)((x * 0x0101010101010101u) >> 56);
}

/* A bitmap's rank table (the bits set before each word); returns the bits
 * set in all. */
static unsigned rank_words(const uint8_t *p, uint16_t rank[SEGIDX__CHUNK_OFFSETS / 64])
{
    unsigned c = 0;
    for (size_t i = 0; i < SEGIDX__CHUNK_OFFSETS / 64; i++) {
        rank[i] = (uint16_t)c;
        c += popcount64(segidx__load64(p + 8 * i));
    }
    return c;
}

static bool list_increasing(const uint8_t *p, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        if (segidx__load16(p + 2 * i) >= SEGIDX__CHUNK_OFFSETS ||
            (i && segidx__load16(p + 2 * i) <= segidx__load16(p + 2 * i - 2)))
            return false;
    return true;
}

int segidx__chunk_map_parse(const void *val, size_t len, segidx__chunk_map *m)
{
    const uint8_t *p = val;
    if (!p || len < 6 || memcmp(p, map_magic, 4) != 0)
        return SEGIDX_ECORRUPT;
    if (segidx__load16(p + 4) != MAP_VERSION)
        return SEGIDX_EVERSION;
    if (len < MAP_HEADER + MAP_CHECKSUM)
        return SEGIDX_ECORRUPT;
    m->level = p[6];
    m->bitmap = p[7] == 1;
    m->round = segidx__load64(p + 8);
    m->chunk = segidx__load32(p + 16);
    m->count = segidx__load16(p + 20) + 1u;
    m->width = p[22];
    if (p[7] > 1 || p[23] != 0 || m->level > SEGIDX__CKPT_MAX_LEVELS || m->width > 64 ||
        m->count > SEGIDX__CHUNK_OFFSETS || m->bitmap != (m->count >= MAP_BITMAP_FROM) ||
        m->round == 0 || m->chunk > (UINT32_MAX >> SEGIDX__CHUNK_BITS))
        return SEGIDX_ECORRUPT;
    size_t ob = offsets_bytes(m->count), lb = lsns_bytes(m->count, m->width);
    if (len != MAP_HEADER + ob + lb + MAP_CHECKSUM ||
        segidx__load64(p + len - MAP_CHECKSUM) != segidx__xxh3(p, len - MAP_CHECKSUM))
        return SEGIDX_ECORRUPT;
    m->offsets = p + MAP_HEADER;
    m->lsns = m->offsets + ob;
    bool ok = m->bitmap ? rank_words(m->offsets, m->rank) == m->count
                        : list_increasing(m->offsets, m->count);
    /* The last LSN byte's unused bits are zero: one stored form per map. */
    unsigned used = (unsigned)((size_t)m->count * m->width % 8);
    if (ok && used && (m->lsns[lb - 1] >> used) != 0)
        ok = false;
    return ok ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

bool segidx__chunk_map_find(const segidx__chunk_map *m, uint32_t off, unsigned *i)
{
    unsigned bit = off & (SEGIDX__CHUNK_OFFSETS - 1);
    if (m->bitmap) {
        uint64_t word = segidx__load64(m->offsets + 8 * (bit >> 6));
        if (!(word >> (bit & 63) & 1))
            return false;
        /* Rank: the bits set below `bit`. */
        *i = m->rank[bit >> 6] + popcount64(word & ((UINT64_C(1) << (bit & 63)) - 1));
        return true;
    }
    unsigned lo = 0, hi = m->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        unsigned v = segidx__load16(m->offsets + 2 * mid);
        if (v == bit) {
            *i = mid;
            return true;
        }
        if (v < bit)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

int segidx__chunk_map_lsn(const segidx__chunk_map *m, unsigned i, segidx_lsn min_lsn,
                          segidx_lsn *lsn)
{
    uint64_t back = get_field(m->lsns, (size_t)i * m->width, m->width);
    if (back > m->round - min_lsn)
        return SEGIDX_ECORRUPT;
    *lsn = m->round - back;
    return SEGIDX_OK;
}

/* The i-th version of a map, whose offset is `bit` in the chunk. */
static int add_map_version(segidx__vers *l, const segidx__chunk_map *m, unsigned i, unsigned bit,
                           segidx_lsn min_lsn)
{
    segidx_lsn lsn;
    if (segidx__chunk_map_lsn(m, i, min_lsn, &lsn))
        return SEGIDX_ECORRUPT;
    l->v[l->n++] = (segidx__ver){ m->chunk << SEGIDX__CHUNK_BITS | bit, lsn };
    return SEGIDX_OK;
}

int segidx__vers_add_map(segidx__vers *l, const segidx__chunk_map *m, segidx_lsn min_lsn)
{
    if (min_lsn > m->round)
        return SEGIDX_ECORRUPT;
    if (segidx__vers_reserve(l, m->count))
        return SEGIDX_ENOMEM;
    int rc = SEGIDX_OK;
    unsigned i = 0;
    if (!m->bitmap)
        for (; i < m->count && !rc; i++)
            rc = add_map_version(l, m, i, segidx__load16(m->offsets + 2 * i), min_lsn);
    /* A bitmap: its set bits, a word at a time (bit b of byte k is offset
     * 8k + b, so a little-endian word holds 64 offsets in order). */
    for (unsigned word = 0; m->bitmap && word < SEGIDX__CHUNK_OFFSETS / 64 && !rc; word++)
        for (uint64_t bits = segidx__load64(m->offsets + 8 * word); bits && !rc; bits &= bits - 1)
            rc = add_map_version(l, m, i++, word * 64 + (unsigned)__builtin_ctzll(bits), min_lsn);
    return rc;
}

static unsigned width_of(const segidx__ver *v, size_t n, segidx_lsn round)
{
    uint64_t most = 0;
    for (size_t i = 0; i < n; i++)
        most = round - v[i].lsn > most ? round - v[i].lsn : most;
    return bits_for(most);
}

size_t segidx__chunk_map_size(const segidx__ver *v, size_t n, segidx_lsn round, unsigned *width)
{
    *width = width_of(v, n, round);
    return MAP_HEADER + offsets_bytes((unsigned)n) + lsns_bytes((unsigned)n, *width) + MAP_CHECKSUM;
}

void segidx__chunk_map_encode(const segidx__ver *v, size_t n, unsigned level, segidx_lsn round,
                              unsigned width, uint8_t *out)
{
    unsigned count = (unsigned)n;
    size_t ob = offsets_bytes(count), lb = lsns_bytes(count, width);
    size_t len = MAP_HEADER + ob + lb + MAP_CHECKSUM;
    memset(out, 0, len);
    memcpy(out, map_magic, 4);
    segidx__store16(out + 4, MAP_VERSION);
    out[6] = (uint8_t)level;
    out[7] = count >= MAP_BITMAP_FROM;
    segidx__store64(out + 8, round);
    segidx__store32(out + 16, v[0].off >> SEGIDX__CHUNK_BITS);
    segidx__store16(out + 20, (uint16_t)(count - 1));
    out[22] = (uint8_t)width;
    uint8_t *offs = out + MAP_HEADER, *lsns = offs + ob;
    for (unsigned i = 0; i < count; i++) {
        unsigned bit = v[i].off & (SEGIDX__CHUNK_OFFSETS - 1);
        if (count >= MAP_BITMAP_FROM)
            offs[bit >> 3] |= (uint8_t)(1u << (bit & 7));
        else
            segidx__store16(offs + 2 * i, (uint16_t)bit);
        put_field(lsns, (size_t)i * width, width, round - v[i].lsn);
    }
    segidx__store64(out + len - MAP_CHECKSUM, segidx__xxh3(out, len - MAP_CHECKSUM));
}
