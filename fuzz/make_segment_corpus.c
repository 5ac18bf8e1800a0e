/* Writes the seed corpus of fuzz/segment_fuzz.c. Built by hand:
 *
 *   make build/libsegidx.a
 *   cc -std=c11 -Iinclude fuzz/make_segment_corpus.c build/libsegidx.a \
 *      -lroaring -pthread -o /tmp/mksegcorpus && /tmp/mksegcorpus fuzz/corpus/segment
 *
 * Every seed is a real segment with 512-byte pages and a few pages (the
 * whole folder stays small):
 *  - most "valid-*" segments come from segidx_segment_builder_* in format
 *    version 1, each also as "v2-valid-*" in version 2 (three chunks of
 *    partitioned Elias-Fano in "v2-valid-chunks"): one
 *    page; a contiguous bulk load (range encoding); a dense bitmap;
 *    sparse Elias-Fano volumes (one with enough offsets for several
 *    select samples); versions with 1- and 2-byte rLSNs; several volumes,
 *    and more than a 16-slot vid table holds; offsets 0 and UINT32_MAX;
 *    LSNs near UINT64_MAX; small W1/W2-like mixes (tests/support/workload.h).
 *  - "valid-reencoded-*", "valid-break-base" and "valid-ef-32-buckets"
 *    are written by this program's own encoder (encode() below), some in
 *    forms the format allows but the builder never picks (a sparse bitmap
 *    with several rank samples, bitmaps whose last word is full,
 *    Elias-Fano with 0 low bits, wider rLSNs than needed, version ranks
 *    in a bitmap volume), so that the fuzzer starts from every decoding
 *    path.
 *  - "invalid-*" are valid bytes with one fact broken: a flipped index
 *    byte, a truncation, unknown footer and header versions, and
 *    structural breaks with both checksums recomputed (so that the
 *    structural validation is what refuses them), among them an
 *    Elias-Fano volume with one element missing from its high bits, so
 *    that the zeros outnumber its buckets.
 * The program opens every seed and checks that valid ones open and invalid
 * ones are refused with the expected code; it exits 1 otherwise.
 */
#include <segidx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define PAGE 512u
/* docs/FORMAT.md: one Elias-Fano select sample per this many zeros. */
#define EF_SAMPLE_ZEROS 32u

static const char *dir;
static size_t total_bytes;
static unsigned files;

static void put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static uint64_t get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << 8 * i;
    return v;
}

static void die(const char *what)
{
    fprintf(stderr, "make_segment_corpus: %s\n", what);
    exit(1);
}

/* Write a seed and check that open says what it must. */
static void write_seed(const char *name, const uint8_t *p, size_t n, int want)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        die("out of memory");
    memcpy(copy, p, n);
    segidx_segment *s = NULL;
    int rc = segidx_segment_open(copy, n, &s);
    segidx_segment_close(s);
    free(copy);
    if (rc != want) {
        fprintf(stderr, "make_segment_corpus: %s: open returned %d, want %d\n", name, rc, want);
        exit(1);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        die("cannot write a seed");
    total_bytes += n;
    files++;
}

/* ------------------------------------------------------------ pages */

struct pg {
    segidx_vid vid;
    uint32_t off;
    uint64_t lsn;
};

struct pages {
    struct pg *p;
    uint32_t n;
};

static void add(struct pages *ps, uint8_t vid_byte, uint32_t off, uint64_t lsn)
{
    ps->p = realloc(ps->p, (ps->n + 1) * sizeof *ps->p);
    if (!ps->p)
        die("out of memory");
    segidx_vid vid = { { vid_byte, 0x5E, 0x61, 0xD0 } };
    vid.bytes[15] = (uint8_t)(vid_byte * 37);
    ps->p[ps->n++] = (struct pg){ vid, off, lsn };
}

/* A page's bytes: a function of (vid, off, lsn). */
static void fill_page(uint8_t *page, const struct pg *p)
{
    uint64_t x = p->lsn * 0x9E3779B97F4A7C15ull ^ p->off ^ XXH3_64bits(p->vid.bytes, 16);
    for (uint32_t i = 0; i < PAGE; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        put(page + i, x, 8);
    }
}

static const segidx_sid seed_sid = { { 0x5E, 0xED, 0x5E, 0x61, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                       11, 12 } };

/* The library's internal switch to the format version a builder writes:
 * version 1 seeds keep the old reader fuzzed. */
int segidx__segment_builder_set_version(segidx_segment_builder *b, unsigned version);
static unsigned build_version = 1;

/* Build with the library's builder, adding in reverse so that the builder
 * sorts. The caller frees the bytes. */
static uint8_t *build(const struct pages *ps, size_t *len)
{
    segidx_segment_options opts = { PAGE, 0, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    if (!b || segidx__segment_builder_set_version(b, build_version) != SEGIDX_OK)
        die("builder_new");
    uint8_t page[PAGE];
    for (uint32_t i = ps->n; i-- > 0;) {
        fill_page(page, &ps->p[i]);
        if (segidx_segment_builder_add(b, &ps->p[i].vid, ps->p[i].off, ps->p[i].lsn, page) !=
            SEGIDX_OK)
            die("builder_add");
    }
    *len = segidx_segment_builder_size(b);
    uint8_t *buf = malloc(*len);
    if (!buf || segidx_segment_builder_finish(b, &seed_sid, buf, *len) != SEGIDX_OK)
        die("builder_finish");
    segidx_segment_builder_free(b);
    return buf;
}

/* Each built seed in format version 1 under its name, and in version 2
 * (partitioned Elias-Fano, packed ranks and rLSNs) as "v2-" + name. */
static void seed_built(const char *name, struct pages *ps)
{
    size_t len;
    uint8_t *buf = build(ps, &len);
    write_seed(name, buf, len, SEGIDX_OK);
    free(buf);
    char v2[128];
    snprintf(v2, sizeof v2, "v2-%s", name);
    build_version = 2;
    buf = build(ps, &len);
    build_version = 1;
    write_seed(v2, buf, len, SEGIDX_OK);
    free(buf);
    free(ps->p);
    ps->p = NULL;
    ps->n = 0;
}

/* ------------------------------------------------------------ own encoder */

/* How to write one volume: -1 = what the builder would pick. */
struct how {
    int encoding;
    int width;
    int versions;
};

/* Where a volume's parts went, for the breakers below. */
struct where {
    size_t kind[16], data[16], ranks[16], rlsn[16];
    size_t index, footer;
};

static int by_key(const void *pa, const void *pb)
{
    const struct pg *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    if (a->off != b->off)
        return a->off < b->off ? -1 : 1;
    return (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

static size_t varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static unsigned ef_l(uint64_t n, uint64_t span)
{
    uint64_t q = (span + 1) / n;
    unsigned l = 0;
    while (q >= 2) { /* floor(log2(q)), 0 below 2 */
        q >>= 1;
        l++;
    }
    return l;
}

static void set_bit(uint8_t *p, uint64_t i)
{
    p[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* Write the volume data of offsets x[0..n) (relative) in `enc`. */
static uint8_t *write_offsets(uint8_t *p, const uint32_t *x, uint32_t n, uint32_t span, int enc)
{
    if (enc == SEGIDX_OFFSETS_BITMAP) {
        uint64_t words = (uint64_t)span / 64 + 1;
        memset(p, 0, 8 * words + 2 * ((words + 3) / 4));
        for (uint32_t i = 0; i < n; i++)
            set_bit(p, x[i]);
        uint32_t ones = 0;
        for (uint64_t w = 0; w < words; w++) {
            if (w % 4 == 0)
                put(p + 8 * words + 2 * (w / 4), ones, 2);
            ones += (uint32_t)__builtin_popcountll(get(p + 8 * w, 8));
        }
        return p + 8 * words + 2 * ((words + 3) / 4);
    }
    if (enc == SEGIDX_OFFSETS_ELIAS_FANO) {
        unsigned l = ef_l(n, span);
        uint64_t buckets = ((uint64_t)span >> l) + 1;
        uint64_t low_bytes = ((uint64_t)n * l + 7) / 8, high_words = (n + buckets + 63) / 64;
        uint64_t samples = (buckets + EF_SAMPLE_ZEROS - 1) / EF_SAMPLE_ZEROS;
        uint8_t *low = p, *high = p + low_bytes, *smp = high + 8 * high_words;
        memset(p, 0, low_bytes + 8 * high_words + 2 * samples);
        for (uint32_t i = 0; i < n; i++) {
            for (unsigned k = 0; k < l; k++)
                if (x[i] >> k & 1)
                    set_bit(low, (uint64_t)i * l + k);
            set_bit(high, ((uint64_t)x[i] >> l) + i);
        }
        uint32_t i = 0;
        for (uint64_t z = 0; z < buckets; z += EF_SAMPLE_ZEROS) {
            while (i < n && ((uint64_t)x[i] >> l) <= z)
                i++;
            put(smp + 2 * (z / EF_SAMPLE_ZEROS), i, 2);
        }
        return smp + 2 * samples;
    }
    return p; /* range */
}

/* Write a whole segment of `ps` (any order) with per-volume choices `how`
 * (indexed by volume in vid order; NULL = the builder's choices). */
static uint8_t *encode(struct pages *ps, const struct how *how, size_t *len, struct where *at)
{
    qsort(ps->p, ps->n, sizeof *ps->p, by_key);
    uint32_t n = ps->n;
    size_t cap = 64 + (size_t)n * (PAGE + 8) + 64 + 200000;
    uint8_t *buf = calloc(1, cap);
    uint32_t *x = malloc(n * sizeof *x);
    uint16_t *ranks = malloc(n * sizeof *ranks);
    if (!buf || !x || !ranks)
        die("out of memory");
    for (uint32_t i = 0; i < n; i++) {
        fill_page(buf + 64 + (size_t)i * PAGE, &ps->p[i]);
        put(buf + 64 + (size_t)n * PAGE + 8 * i, XXH3_64bits(buf + 64 + (size_t)i * PAGE, PAGE), 8);
    }
    size_t index = 64 + (size_t)n * (PAGE + 8);
    uint8_t *p = buf + index;
    /* Volume entries, then data. */
    uint32_t starts[17], vols = 0;
    for (uint32_t i = 0; i < n; i++)
        if (i == 0 || memcmp(ps->p[i].vid.bytes, ps->p[i - 1].vid.bytes, 16) != 0) {
            if (vols == 16)
                die("too many volumes for the encoder");
            starts[vols++] = i;
        }
    starts[vols] = n;
    int enc[16], width[16], versions[16];
    for (uint32_t v = 0; v < vols; v++) {
        const struct pg *s = ps->p + starts[v];
        uint32_t pages = starts[v + 1] - starts[v], offsets = 0;
        uint64_t base = UINT64_MAX, maxv = 0;
        for (uint32_t i = 0; i < pages; i++)
            base = s[i].lsn < base ? s[i].lsn : base;
        bool multi = false;
        for (uint32_t i = 0; i < pages; i++) {
            bool fresh = i == 0 || s[i].off != s[i - 1].off;
            uint64_t d = fresh ? s[i].lsn - base : s[i].lsn - s[i - 1].lsn;
            maxv = d > maxv ? d : maxv;
            offsets += fresh;
            multi |= !fresh;
        }
        uint32_t span = s[pages - 1].off - s[0].off;
        enc[v] = how && how[v].encoding >= 0 ? how[v].encoding
                 : offsets == (uint64_t)span + 1 ? SEGIDX_OFFSETS_RANGE
                                                 : SEGIDX_OFFSETS_ELIAS_FANO;
        width[v] = how && how[v].width >= 0 ? how[v].width : maxv == 0 ? 0 : maxv <= 255 ? 1 : 2;
        versions[v] = how && how[v].versions >= 0 ? how[v].versions : multi;
        memcpy(p, s->vid.bytes, 16);
        p += 16;
        p += varint(p, base);
        p += varint(p, pages);
        p += varint(p, offsets);
        p += varint(p, s[0].off);
        p += varint(p, span);
        at->kind[v] = (size_t)(p - buf);
        *p++ = (uint8_t)(enc[v] | width[v] << 2 | (versions[v] ? 0x10 : 0));
    }
    for (uint32_t v = 0; v < vols; v++) {
        const struct pg *s = ps->p + starts[v];
        uint32_t pages = starts[v + 1] - starts[v], k = 0;
        uint64_t base = UINT64_MAX;
        for (uint32_t i = 0; i < pages; i++) {
            base = s[i].lsn < base ? s[i].lsn : base;
            if (i == 0 || s[i].off != s[i - 1].off) {
                ranks[k] = (uint16_t)i;
                x[k++] = s[i].off - s[0].off;
            }
        }
        at->data[v] = (size_t)(p - buf);
        p = write_offsets(p, x, k, s[pages - 1].off - s[0].off, enc[v]);
        at->ranks[v] = (size_t)(p - buf);
        if (versions[v])
            for (uint32_t i = 0; i < k; i++, p += 2)
                put(p, ranks[i], 2);
        at->rlsn[v] = (size_t)(p - buf);
        for (uint32_t i = 0; i < pages && width[v]; i++, p += width[v]) {
            bool fresh = i == 0 || s[i].off != s[i - 1].off;
            put(p, fresh ? s[i].lsn - base : s[i].lsn - s[i - 1].lsn, width[v]);
        }
    }
    uint64_t index_len = (uint64_t)(p - (buf + index));
    uint8_t *h = buf, *f = p;
    memcpy(h, "SXSG", 4);
    put(h + 4, 1, 2);
    put(h + 8, PAGE, 4);
    put(h + 12, n, 4);
    put(h + 16, vols, 4);
    put(h + 20, index_len, 4);
    memcpy(h + 24, seed_sid.bytes, 16);
    put(f + 0, index, 8);
    put(f + 8, index_len, 4);
    put(f + 12, n, 4);
    put(f + 16, vols, 4);
    put(f + 20, PAGE, 4);
    memcpy(f + 24, seed_sid.bytes, 16);
    put(f + 40, XXH3_64bits(h, 64), 8);
    put(f + 48, XXH3_64bits(buf + index, index_len + 48), 8);
    put(f + 56, 1, 2);
    memcpy(f + 60, "SXSF", 4);
    *len = (size_t)(f + 64 - buf);
    at->index = index;
    at->footer = *len - 64;
    free(x);
    free(ranks);
    return buf;
}

/* Both checksums recomputed for the bytes as they are. */
static void reseal(uint8_t *buf, size_t len)
{
    uint8_t *f = buf + len - 64;
    uint64_t index_len = get(f + 8, 4);
    put(f + 40, XXH3_64bits(buf, 64), 8);
    put(f + 48, XXH3_64bits(f - index_len, index_len + 48), 8);
}

/* ------------------------------------------------------------ seeds */

static void valid_built(void)
{
    struct pages ps = { NULL, 0 };

    add(&ps, 1, 7, 1);
    seed_built("valid-one-page", &ps);

    for (uint32_t i = 0; i < 12; i++) /* W3-like: contiguous, one commit */
        add(&ps, 2, 1000000 + i, 42);
    seed_built("valid-range-bulk", &ps);

    for (uint32_t i = 0; i < 20; i++) /* dense: 10 of 20 */
        if (i % 2 == 0 || i == 19)
            add(&ps, 3, 500 + i, 9);
    seed_built("valid-bitmap-dense", &ps);

    static const uint32_t sparse[] = { 3, 1000, 5000, 70000, 1u << 20, 1u << 28, 3000000000u };
    for (uint32_t i = 0; i < sizeof sparse / sizeof *sparse; i++) /* wide low bits */
        add(&ps, 4, sparse[i], 77);
    seed_built("valid-ef-sparse", &ps);

    for (uint32_t i = 0; i < 40; i++) /* > 64 buckets: several select samples */
        add(&ps, 5, 16 * i + (i * i) % 7, 3);
    seed_built("valid-ef-samples", &ps);

    for (uint32_t i = 0; i < 5; i++) /* versions, 1-byte rLSNs */
        for (uint32_t k = 0; k <= i % 3; k++)
            add(&ps, 6, 300 + 40 * i, 100 + 7 * i + 60 * k);
    seed_built("valid-versions-u8", &ps);

    for (uint32_t i = 0; i < 4; i++) /* versions, 2-byte rLSNs, span 65535 */
        for (uint32_t k = 0; k <= i % 2; k++)
            add(&ps, 7, 2 * i, k ? 65536 : 1 + i * 300);
    seed_built("valid-versions-u16", &ps);

    add(&ps, 8, 0, 5); /* several volumes, every kind */
    add(&ps, 9, 10, 6);
    add(&ps, 9, 11, 6);
    add(&ps, 9, 12, 6);
    add(&ps, 10, 4, 1);
    add(&ps, 10, 4, 2);
    add(&ps, 10, 900, 2);
    add(&ps, 11, 1, 1000);
    add(&ps, 11, 3, 1001);
    add(&ps, 11, 4, 1000);
    add(&ps, 11, 6, 1002);
    add(&ps, 12, 123456, 9);
    add(&ps, 12, 923456, 9);
    seed_built("valid-volumes-mixed", &ps);

    add(&ps, 13, 0, 1); /* the ends of u32 */
    add(&ps, 13, UINT32_MAX, 1);
    add(&ps, 14, UINT32_MAX, 3);
    add(&ps, 15, UINT32_MAX - 2, 4);
    add(&ps, 15, UINT32_MAX - 1, 4);
    add(&ps, 15, UINT32_MAX, 4);
    seed_built("valid-offsets-0-max", &ps);

    for (uint32_t i = 0; i < 140; i++) /* three chunks of 64: a dense run, a far tail */
        for (uint32_t k = 0; k <= (i % 10 == 0); k++)
            add(&ps, 17, i < 90 ? 10 + i : 10 + i * i * 9973u, 50 + k * 400);
    seed_built("valid-chunks", &ps);

    add(&ps, 16, 5, UINT64_MAX - 300); /* the end of u64 */
    add(&ps, 16, 5, UINT64_MAX);
    add(&ps, 16, 6, UINT64_MAX - 1);
    add(&ps, 17, 9, UINT64_MAX);
    seed_built("valid-lsn-max", &ps);

    for (uint8_t v = 0; v < 12; v++) /* more volumes than a 16-slot vid table takes */
        add(&ps, (uint8_t)(100 + v), v, 1 + v);
    seed_built("valid-many-volumes", &ps);

    /* W1-like: a few volumes, one commit each, skewed offsets. */
    uint64_t rng = 1;
    for (uint8_t v = 0; v < 5; v++) {
        uint32_t seen[8], k = 0;
        for (uint32_t i = 0; i < (uint32_t)(5 - v); i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t off = (uint32_t)(rng >> 33) % (v ? 4096u << (3 * v) : 64u);
            bool dup = false;
            for (uint32_t j = 0; j < k; j++)
                dup |= seen[j] == off;
            if (dup)
                continue;
            seen[k++] = off;
            add(&ps, (uint8_t)(20 + v), off, 1 + v * 1000);
        }
    }
    seed_built("valid-w1-like", &ps);

    /* W2-like: compacted, 1-4 versions inside a span of 1000. */
    for (uint8_t v = 0; v < 2; v++)
        for (uint32_t i = 0; i < 4; i++)
            for (uint32_t k = 0; k <= (i + v) % 4; k++)
                add(&ps, (uint8_t)(30 + v), i * i * 97 + v, 5000 + k * 250 + i);
    seed_built("valid-w2-like", &ps);
}

static void valid_reencoded(void)
{
    struct pages ps = { NULL, 0 };
    struct where at;
    size_t len;
    uint8_t *buf;

    /* The same sparse offsets as a bitmap (5 words, 2 rank samples), as
     * Elias-Fano, and a range volume forced to u16 rLSNs. */
    static const uint32_t offs[] = { 0, 150, 300 };
    for (uint32_t i = 0; i < 3; i++) {
        add(&ps, 40, 7000 + offs[i], 11);
        add(&ps, 41, 7000 + offs[i], 11);
    }
    add(&ps, 42, 1, 20);
    add(&ps, 42, 2, 21);
    {
        struct how how[3] = { { SEGIDX_OFFSETS_BITMAP, 0, 0 }, { SEGIDX_OFFSETS_ELIAS_FANO, 0, 0 },
                              { SEGIDX_OFFSETS_RANGE, 2, 0 } };
        buf = encode(&ps, how, &len, &at);
        write_seed("valid-reencoded-sparse-bitmap", buf, len, SEGIDX_OK);
        free(buf);
    }
    free(ps.p);
    ps = (struct pages){ NULL, 0 };

    /* Elias-Fano with 0 low bits (dense); a bitmap with 1-byte rLSNs all
     * 0 (wider than needed); a bitmap with version ranks, two offsets
     * holding two versions. The versions bit is only set where some
     * offset has several: FORMAT.md refuses it otherwise. */
    static const uint32_t dense[] = { 0, 1, 3, 4, 5, 7 };
    for (uint32_t i = 0; i < 6; i++) {
        add(&ps, 43, 60 + dense[i], 8);
        add(&ps, 44, 60 + dense[i], 8);
        add(&ps, 48, 60 + dense[i], 8);
        if (i % 3 == 1)
            add(&ps, 48, 60 + dense[i], 9 + i);
    }
    {
        struct how how[3] = { { SEGIDX_OFFSETS_ELIAS_FANO, -1, -1 },
                              { SEGIDX_OFFSETS_BITMAP, 1, 0 },
                              { SEGIDX_OFFSETS_BITMAP, 1, 1 } };
        buf = encode(&ps, how, &len, &at);
        write_seed("valid-reencoded-ef-l0", buf, len, SEGIDX_OK);
        free(buf);
    }
    free(ps.p);
    ps = (struct pages){ NULL, 0 };

    /* Bitmaps whose last word is full (span 63 and 127). */
    add(&ps, 46, 0, 1);
    add(&ps, 46, 63, 1);
    add(&ps, 47, 0, 1);
    add(&ps, 47, 64, 1);
    add(&ps, 47, 127, 1);
    {
        struct how how[2] = { { SEGIDX_OFFSETS_BITMAP, -1, -1 }, { SEGIDX_OFFSETS_BITMAP, -1, -1 } };
        buf = encode(&ps, how, &len, &at);
        write_seed("valid-reencoded-bitmap-full-word", buf, len, SEGIDX_OK);
        free(buf);
    }
    free(ps.p);
    ps = (struct pages){ NULL, 0 };

    /* Versions in an Elias-Fano volume with 2-byte rLSNs that fit in 1. */
    for (uint32_t i = 0; i < 4; i++)
        for (uint32_t k = 0; k < 2; k++)
            add(&ps, 45, i * 1000, 3 + k * (i + 1));
    {
        struct how how[1] = { { SEGIDX_OFFSETS_ELIAS_FANO, 2, 1 } };
        buf = encode(&ps, how, &len, &at);
        write_seed("valid-reencoded-wide-rlsn", buf, len, SEGIDX_OK);
        free(buf);
    }
    free(ps.p);
}

/* A segment with a bitmap, an Elias-Fano and a versioned volume, for the
 * structural breaks: returns the bytes and where things are. */
static uint8_t *break_base(size_t *len, struct where *at)
{
    struct pages ps = { NULL, 0 };
    for (uint32_t i = 0; i < 4; i++)
        add(&ps, 50, 100 + i + (i > 2), 4); /* bitmap 0, 1, 2, 4 */
    for (uint32_t i = 0; i < 3; i++)
        add(&ps, 51, i * 70000, 4); /* Elias-Fano */
    for (uint32_t i = 0; i < 2; i++)
        for (uint32_t k = 0; k < 2; k++)
            add(&ps, 52, 10 + i, 4 + k); /* versions, range */
    struct how how[3] = { { SEGIDX_OFFSETS_BITMAP, -1, -1 }, { SEGIDX_OFFSETS_ELIAS_FANO, -1, -1 },
                          { SEGIDX_OFFSETS_RANGE, -1, -1 } };
    uint8_t *buf = encode(&ps, how, len, at);
    free(ps.p);
    return buf;
}

static void invalid(void)
{
    struct pages ps = { NULL, 0 };
    size_t len;
    struct where at;

    for (uint32_t i = 0; i < 3; i++)
        add(&ps, 60, 40 + 3 * i, 2 + i);
    uint8_t *buf = build(&ps, &len);
    free(ps.p);
    size_t index = (size_t)get(buf + len - 64, 8);

    buf[index + 17] ^= 0x04; /* checksum fails */
    write_seed("invalid-flipped-index-byte", buf, len, SEGIDX_ECORRUPT);
    buf[index + 17] ^= 0x04;

    write_seed("invalid-truncated", buf, len - 10, SEGIDX_ECORRUPT);

    put(buf + len - 64 + 56, 3, 2); /* footer version 3 */
    write_seed("invalid-footer-version-3", buf, len, SEGIDX_EVERSION);
    put(buf + len - 64 + 56, 2, 2); /* version 2 with a version 1 index and header */
    write_seed("invalid-footer-version-2-of-1", buf, len, SEGIDX_ECORRUPT);
    put(buf + len - 64 + 56, 1, 2);

    put(buf + 4, 3, 2); /* header version 3, its checksum recomputed */
    reseal(buf, len);
    write_seed("invalid-header-version-3", buf, len, SEGIDX_EVERSION);
    put(buf + 4, 2, 2); /* header version 2, footer version 1 */
    reseal(buf, len);
    write_seed("invalid-header-version-2-of-1", buf, len, SEGIDX_ECORRUPT);
    put(buf + 4, 1, 2);
    reseal(buf, len);
    write_seed("valid-three-offsets", buf, len, SEGIDX_OK);

    buf[40] = 1; /* header reserved byte */
    reseal(buf, len);
    write_seed("invalid-header-reserved", buf, len, SEGIDX_ECORRUPT);
    free(buf);

    /* Structural breaks, resealed. */
    uint8_t *base = break_base(&len, &at);
    write_seed("valid-break-base", base, len, SEGIDX_OK);
    buf = malloc(len);
    if (!buf)
        die("out of memory");
#define BREAK(name, stmt)                                  \
    do {                                                   \
        memcpy(buf, base, len);                            \
        stmt;                                              \
        reseal(buf, len);                                  \
        write_seed(name, buf, len, SEGIDX_ECORRUPT);       \
    } while (0)
    /* bitmap 100, 101, 102, 104: bits 0, 1, 2, 4 of one word; its sample at +8 */
    BREAK("invalid-bitmap-rank-sample", buf[at.data[0] + 8] = 1);
    BREAK("invalid-bitmap-bit-past-span", buf[at.data[0] + 1] |= 0x01);
    BREAK("invalid-bitmap-popcount", buf[at.data[0]] ^= 0x08);
    /* Elias-Fano 0, 70000, 140000: n 3, l 15, 6 low bytes, 1 high word, 1 sample */
    BREAK("invalid-ef-first-not-0", buf[at.data[1]] ^= 0x01);
    BREAK("invalid-ef-sample", buf[at.ranks[1] - 1] ^= 0x01);
    BREAK("invalid-ef-high-padding", buf[at.ranks[1] - 3] |= 0x80);
    /* versions: ranks 0, 2 of 4 pages; rLSNs 0,1,0,1 at width 1 */
    BREAK("invalid-version-rank", put(buf + at.ranks[2] + 2, 4, 2));
    BREAK("invalid-rlsn-not-increasing", buf[at.rlsn[2] + 1] = 0);
    BREAK("invalid-base-not-smallest", buf[at.rlsn[2]] = 1; buf[at.rlsn[2] + 2] = 1);
    BREAK("invalid-kind-width-3", buf[at.kind[1]] |= 0x0C);
    BREAK("invalid-kind-encoding-3", buf[at.kind[0]] |= 0x03);
    BREAK("invalid-vid-order", buf[at.index] = 0xFF);
    BREAK("invalid-volume-count", put(buf + at.footer + 16, 2, 4); put(buf + 16, 2, 4));
#undef BREAK
    free(buf);
    free(base);

    /* One version per offset, 1-byte rLSNs, an LSN past UINT64_MAX. */
    ps = (struct pages){ NULL, 0 };
    add(&ps, 61, 1, UINT64_MAX - 2);
    add(&ps, 61, 2, UINT64_MAX);
    {
        struct how how[1] = { { -1, 1, 0 } };
        buf = encode(&ps, how, &len, &at);
        buf[at.rlsn[0] + 1] = 5;
        reseal(buf, len);
        write_seed("invalid-rlsn-overflow", buf, len, SEGIDX_ECORRUPT);
        free(buf);
    }
    free(ps.p);

    /* Elias-Fano with exactly 32 buckets (n 16, span 62, l 1) and one
     * element's high bit cleared: 33 zeros, one more than the samples
     * cover. */
    ps = (struct pages){ NULL, 0 };
    for (uint32_t i = 0; i < 15; i++)
        add(&ps, 62, 4 * i, 6);
    add(&ps, 62, 62, 6);
    {
        struct how how[1] = { { SEGIDX_OFFSETS_ELIAS_FANO, -1, -1 } };
        buf = encode(&ps, how, &len, &at);
        write_seed("valid-ef-32-buckets", buf, len, SEGIDX_OK);
        /* low bits: 2 bytes; element 15 (62 = bucket 31) sets bit 46 */
        buf[at.data[0] + 2 + 46 / 8] &= (uint8_t)~(1u << 46 % 8);
        reseal(buf, len);
        write_seed("invalid-ef-missing-element", buf, len, SEGIDX_ECORRUPT);
        free(buf);
    }
    free(ps.p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    valid_built();
    valid_reencoded();
    invalid();
    printf("make_segment_corpus: %u seeds, %zu bytes, in %s\n", files, total_bytes, dir);
    return 0;
}
