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
 *  - "v3-*" are format version 3, written by encode3() below (the
 *    library's builder does not write offset kinds 2 and 3): valid ones
 *    with kinds 2 and 3 at sh 0..3 and 5, k 0 and 1, keys of width 0, one
 *    element, 32 elements in a key, offsets 0 and UINT32_MAX, versions, a
 *    range beside them, and a builder's version 2 segment relabelled;
 *    invalid ones each with one fact broken and both checksums
 *    recomputed: a bucket one byte long, a rank above offset_count, an
 *    Elias-Fano bucket missing a high bit, a packed bucket of more than
 *    57 bits, unsorted values, sh 32, a directory for one key more than
 *    offset_span's, and kind 2 in a version 2 segment.
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

/* Both checksums recomputed for the bytes as they are. */
static void reseal(uint8_t *buf, size_t len)
{
    uint8_t *f = buf + len - 64;
    uint64_t index_len = get(f + 8, 4);
    put(f + 40, XXH3_64bits(buf, 64), 8);
    put(f + 48, XXH3_64bits(f - index_len, index_len + 48), 8);
}

/* The pages of `ps` (sorted) and their checksums, in a buffer with room
 * for an index and the footer; returns the buffer, `*index` where the
 * index starts. */
static uint8_t *write_pages(const struct pages *ps, size_t *index)
{
    uint32_t n = ps->n;
    uint8_t *buf = calloc(1, 64 + (size_t)n * (PAGE + 8) + 64 + 200000);
    if (!buf)
        die("out of memory");
    for (uint32_t i = 0; i < n; i++) {
        fill_page(buf + 64 + (size_t)i * PAGE, &ps->p[i]);
        put(buf + 64 + (size_t)n * PAGE + 8 * i, XXH3_64bits(buf + 64 + (size_t)i * PAGE, PAGE), 8);
    }
    *index = 64 + (size_t)n * (PAGE + 8);
    return buf;
}

/* The first page of each volume of `ps` (sorted), then ps->n; returns how
 * many volumes. */
static uint32_t split_volumes(const struct pages *ps, uint32_t starts[17])
{
    uint32_t vols = 0;
    for (uint32_t i = 0; i < ps->n; i++)
        if (i == 0 || memcmp(ps->p[i].vid.bytes, ps->p[i - 1].vid.bytes, 16) != 0) {
            if (vols == 16)
                die("too many volumes for the encoder");
            starts[vols++] = i;
        }
    starts[vols] = ps->n;
    return vols;
}

/* Header and footer of format `version` around the index that ends at
 * `end`, sealed; returns the segment's length. */
static size_t frame(uint8_t *buf, size_t index, uint8_t *end, uint32_t pages, uint32_t vols,
                    unsigned version)
{
    uint64_t index_len = (uint64_t)(end - (buf + index));
    uint8_t *h = buf, *f = end;
    memcpy(h, "SXSG", 4);
    put(h + 4, version, 2);
    put(h + 8, PAGE, 4);
    put(h + 12, pages, 4);
    put(h + 16, vols, 4);
    put(h + 20, index_len, 4);
    memcpy(h + 24, seed_sid.bytes, 16);
    put(f + 0, index, 8);
    put(f + 8, index_len, 4);
    put(f + 12, pages, 4);
    put(f + 16, vols, 4);
    put(f + 20, PAGE, 4);
    memcpy(f + 24, seed_sid.bytes, 16);
    put(f + 56, version, 2);
    memcpy(f + 60, "SXSF", 4);
    size_t len = (size_t)(f + 64 - buf);
    reseal(buf, len);
    return len;
}

/* Write a whole segment of `ps` (any order) with per-volume choices `how`
 * (indexed by volume in vid order; NULL = the builder's choices). */
static uint8_t *encode(struct pages *ps, const struct how *how, size_t *len, struct where *at)
{
    qsort(ps->p, ps->n, sizeof *ps->p, by_key);
    uint32_t n = ps->n;
    size_t index;
    uint8_t *buf = write_pages(ps, &index);
    uint32_t *x = malloc(n * sizeof *x);
    uint16_t *ranks = malloc(n * sizeof *ranks);
    if (!x || !ranks)
        die("out of memory");
    uint8_t *p = buf + index;
    /* Volume entries, then data. */
    uint32_t starts[17], vols = split_volumes(ps, starts);
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
    *len = frame(buf, index, p, n, vols, 1);
    at->index = index;
    at->footer = *len - 64;
    free(x);
    free(ranks);
    return buf;
}

/* ------------------------------------------------------------ version 3 */

/* Format version 3 is version 2 with two more offset kinds, 2 (Elias-Fano
 * buckets) and 3 (packed buckets), keyed by exponent; the library's
 * builder does not write them, so this encoder does, with sh and k given
 * per volume. */

/* How to write one volume in version 3: kind 0 (range; needs a
 * contiguous volume) or kind 2 or 3 with its sh and k. */
struct how3 {
    unsigned kind, sh, k;
};

/* One fact a malformed seed breaks, in the first volume of kind 2 or 3. */
enum flaw3 {
    FLAW_NONE,
    FLAW_BUCKET_LONGER,   /* the first bucket one byte longer than its formula */
    FLAW_RANK_ABOVE,      /* a directory rank above offset_count */
    FLAW_HIGH_MISSING,    /* an Elias-Fano bucket's first high bit cleared */
    FLAW_UNSORTED,        /* the first bucket's first two values swapped */
    FLAW_SH_32,           /* sh = 32 */
    FLAW_DIRECTORY_LONGER /* a directory for K + 1, one key more than offset_span's */
};

static unsigned bit_len(uint64_t v)
{
    unsigned b = 0;
    for (; v; v >>= 1)
        b++;
    return b;
}

/* key(x) and its width w = s + sh. */
static uint32_t key3(uint32_t x, unsigned sh, unsigned k, unsigned *w)
{
    uint32_t y = x >> sh;
    unsigned e = bit_len(y), s = e > k + 1 ? e - 1 - k : 0;
    *w = s + sh;
    return (s << k) + (y >> s);
}

/* A little-endian bit stream: value v of w bits at bit `at`. */
static void put_bits(uint8_t *p, uint64_t at, uint64_t v, unsigned w)
{
    for (unsigned i = 0; i < w; i++)
        if (v >> i & 1)
            set_bit(p, at + i);
}

/* One bucket of n values v (relative to the key, below 2^w) at p; returns
 * its bytes. */
static size_t write_bucket3(uint8_t *p, unsigned kind, const uint32_t *v, uint32_t n, unsigned w)
{
    if (n == 0)
        return 0;
    if (kind == 3) {
        for (uint32_t i = 0; i < n; i++)
            put_bits(p, (uint64_t)i * w, v[i], w);
        return ((uint64_t)n * w + 7) / 8;
    }
    unsigned cl = bit_len(n - 1), hb = w < cl ? w : cl, l = w - hb;
    uint64_t high = n + (1u << hb);
    for (uint32_t i = 0; i < n; i++) {
        set_bit(p, (v[i] >> l) + i);
        put_bits(p, high + (uint64_t)i * l, v[i] & ((1ull << l) - 1), l);
    }
    return (high + (uint64_t)n * l + 7) / 8;
}

/* The offsets x[0..n) (relative) in kind 2 or 3: the directory, then the
 * bucket stream. Returns the end. */
static uint8_t *write_exponent(uint8_t *p, const uint32_t *x, uint32_t n, const struct how3 *h,
                               enum flaw3 flaw)
{
    unsigned w;
    uint32_t K = key3(x[n - 1], h->sh, h->k, &w) + (flaw == FLAW_DIRECTORY_LONGER);
    uint8_t *directory = p, *stream = p + 4 * ((size_t)K + 2);
    uint32_t i = 0, pos = 0, v[32];
    bool broken = false;
    for (uint32_t j = 0; j <= K; j++) {
        put(directory + 4 * j, i | pos << 16, 4);
        uint32_t nj = 0;
        unsigned wi;
        for (; i < n && key3(x[i], h->sh, h->k, &wi) == j; i++) {
            if (nj == 32)
                die("more than 32 offsets in a key");
            w = wi; /* the next key's would be left in wi after the loop */
            v[nj++] = x[i] & (uint32_t)((1ull << w) - 1);
        }
        if (nj >= 2 && !broken && flaw == FLAW_UNSORTED) {
            uint32_t t = v[0];
            v[0] = v[1];
            v[1] = t;
            broken = true;
        }
        size_t bytes = write_bucket3(stream + pos, h->kind, v, nj, w);
        if (nj >= 2 && !broken && flaw == FLAW_HIGH_MISSING) {
            uint64_t b = 0; /* the first element's high bit: the lowest one */
            while (!(stream[pos + b / 8] >> b % 8 & 1))
                b++;
            stream[pos + b / 8] &= (uint8_t)~(1u << b % 8);
            broken = true;
        }
        if (nj && !broken && flaw == FLAW_BUCKET_LONGER) {
            bytes++;
            broken = true;
        }
        pos += (uint32_t)bytes;
    }
    put(directory + 4 * ((size_t)K + 1), n | pos << 16, 4);
    if (flaw == FLAW_RANK_ABOVE)
        put(directory + 4 * (K / 2 + 1), n + 1, 2);
    return stream + pos;
}

/* A version 3 segment of `ps`: volume v (in vid order) written as how[v];
 * `flaw` breaks the first volume of kind 2 or 3. Pages are sorted in
 * place; the caller frees the bytes. */
static uint8_t *encode3(struct pages *ps, const struct how3 *how, enum flaw3 flaw, size_t *len)
{
    qsort(ps->p, ps->n, sizeof *ps->p, by_key);
    size_t index;
    uint8_t *buf = write_pages(ps, &index);
    uint32_t *x = malloc(ps->n * sizeof *x), *ranks = malloc(ps->n * sizeof *ranks);
    if (!x || !ranks)
        die("out of memory");
    uint8_t *p = buf + index;
    uint32_t starts[17], vols = split_volumes(ps, starts);
    /* The table, then each volume's data. */
    for (int pass = 0; pass < 2; pass++) {
        bool flawed = false;
        for (uint32_t vi = 0; vi < vols; vi++) {
            const struct pg *s = ps->p + starts[vi];
            uint32_t pages = starts[vi + 1] - starts[vi], offsets = 0;
            uint64_t base = UINT64_MAX, max = 0;
            for (uint32_t i = 0; i < pages; i++)
                base = s[i].lsn < base ? s[i].lsn : base;
            for (uint32_t i = 0; i < pages; i++) {
                max = s[i].lsn - base > max ? s[i].lsn - base : max;
                if (i == 0 || s[i].off != s[i - 1].off) {
                    ranks[offsets] = i;
                    x[offsets++] = s[i].off - s[0].off;
                }
            }
            const struct how3 *h = &how[vi];
            enum flaw3 f = h->kind >= 2 && !flawed ? flaw : FLAW_NONE;
            flawed |= h->kind >= 2;
            unsigned rlsn_bits = bit_len(max);
            if (pass == 0) {
                memcpy(p, s->vid.bytes, 16);
                p += 16;
                p += varint(p, base);
                p += varint(p, pages);
                p += varint(p, offsets);
                p += varint(p, s[0].off);
                p += varint(p, x[offsets - 1]);
                *p++ = (uint8_t)h->kind;
                *p++ = (uint8_t)rlsn_bits;
                if (h->kind >= 2) {
                    *p++ = (uint8_t)(f == FLAW_SH_32 ? 32 : h->sh);
                    *p++ = (uint8_t)h->k;
                }
                continue;
            }
            if (h->kind >= 2)
                p = write_exponent(p, x, offsets, h, f);
            if (offsets < pages) { /* version ranks, as version 2 */
                unsigned rb = bit_len(pages - 1);
                for (uint32_t i = 0; i < offsets; i++)
                    put_bits(p, (uint64_t)i * rb, ranks[i], rb);
                p += ((uint64_t)offsets * rb + 7) / 8;
            }
            for (uint32_t i = 0; i < pages; i++)
                put_bits(p, (uint64_t)i * rlsn_bits, s[i].lsn - base, rlsn_bits);
            p += ((uint64_t)pages * rlsn_bits + 7) / 8;
        }
    }
    *len = frame(buf, index, p, ps->n, vols, 3);
    free(x);
    free(ranks);
    return buf;
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

    put(buf + len - 64 + 56, 4, 2); /* footer version 4 */
    write_seed("invalid-footer-version-4", buf, len, SEGIDX_EVERSION);
    put(buf + len - 64 + 56, 2, 2); /* version 2 with a version 1 index and header */
    write_seed("invalid-footer-version-2-of-1", buf, len, SEGIDX_ECORRUPT);
    put(buf + len - 64 + 56, 1, 2);

    put(buf + 4, 4, 2); /* header version 4, its checksum recomputed */
    reseal(buf, len);
    write_seed("invalid-header-version-4", buf, len, SEGIDX_EVERSION);
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

/* Write `ps` in version 3 as `how` says, with `flaw`, and free the pages. */
static void seed3(const char *name, struct pages *ps, const struct how3 *how, enum flaw3 flaw,
                  int want)
{
    size_t len;
    uint8_t *buf = encode3(ps, how, flaw, &len);
    write_seed(name, buf, len, want);
    free(buf);
    free(ps->p);
    *ps = (struct pages){ NULL, 0 };
}

/* A version 2 segment from the builder (a range, partitioned Elias-Fano
 * volumes, versions) is a valid version 3 one once both version fields
 * say 3: kinds 0 and 1 keep their bytes. The same bytes with kind 2 in a version 2 segment are
 * corrupt. */
static void v3_relabelled(void)
{
    struct pages ps = { NULL, 0 };
    add(&ps, 65, 3, 10);
    add(&ps, 65, 4, 10);
    add(&ps, 65, 5, 10);
    for (uint32_t i = 0; i < 6; i++)
        add(&ps, 66, 7 * i * i, 20 + i % 2);
    add(&ps, 66, 7, 25);
    build_version = 2;
    size_t len;
    uint8_t *buf = build(&ps, &len);
    build_version = 1;
    free(ps.p);
    put(buf + 4, 3, 2);
    put(buf + len - 64 + 56, 3, 2);
    reseal(buf, len);
    write_seed("v3-valid-relabelled-v2", buf, len, SEGIDX_OK);
    free(buf);
}

/* Offsets of the version 3 seeds, each volume a case: sh = 0..3 and 5,
 * k = 0 and 1, buckets of width 0, one element, 32 elements in a key
 * (kind 2 only: packed lanes hold at most 57 bits), offsets 0 and
 * UINT32_MAX, an Elias-Fano sub-bucket of two 29-bit lows (58 bits, more
 * than one compare takes), a packed bucket of exactly 57 bits, versions. */
static void v3_volumes(struct pages *ps, unsigned kind)
{
    static const uint32_t fib[] = { 0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233 };
    for (uint32_t i = 0; i < 13; i++) /* sh 0, k 0; offsets 5 and 13 have 2 versions */
        for (uint32_t v = 0; v <= (fib[i] == 5 || fib[i] == 13); v++)
            add(ps, 70, fib[i], 40 + 3 * v + i % 2);
    static const uint32_t loose[] = { 0, 1, 6, 7, 20, 40, 41, 300, 1000 };
    for (uint32_t i = 0; i < 9; i++) /* sh 1, k 1 */
        add(ps, 71, 1000 + loose[i], 7);
    add(ps, 72, 0, 3); /* sh 2, k 0: the ends of u32 */
    add(ps, 72, UINT32_MAX, 3);
    if (kind == 2) {
        add(ps, 72, (1u << 31) + 5, 4);
        add(ps, 72, (1u << 31) + 9, 4);
    } else {
        add(ps, 72, 1u << 20, 4);
    }
    add(ps, 73, UINT32_MAX, 1000); /* sh 3, k 1: one element */
    for (uint32_t i = 0; i < 3; i++) /* a range among them */
        add(ps, 75, 60 + i, 9);
    if (kind == 2) {
        for (uint32_t i = 0; i < 32; i++) /* sh 5, k 0: key 0 holds 32 */
            add(ps, 74, 500 + i, 2);
        add(ps, 74, 540, 2);
        add(ps, 74, 600, 2);
    } else {
        static const uint32_t wide[] = { 0, 1u << 19, (1u << 19) + 7, (1u << 20) - 1 };
        for (uint32_t i = 0; i < 4; i++) /* sh 0, k 0: 3 values of 19 bits */
            add(ps, 76, 77 + wide[i], 5);
    }
}

/* Nine offsets in sh 1, k 0 (keys 0..4, key 4 holding two), and a range. */
static void v3_small(struct pages *ps)
{
    static const uint32_t offs[] = { 0, 1, 2, 3, 4, 6, 9, 17, 30 };
    for (uint32_t i = 0; i < 9; i++)
        add(ps, 80, 100 + offs[i], 6);
    add(ps, 81, 5, 6);
    add(ps, 81, 6, 6);
}

static void v3_seeds(void)
{
    v3_relabelled();
    struct pages ps = { NULL, 0 };
    struct how3 ef[] = { { 2, 0, 0 }, { 2, 1, 1 }, { 2, 2, 0 }, { 2, 3, 1 }, { 2, 5, 0 },
                         { 0, 0, 0 } };
    v3_volumes(&ps, 2);
    seed3("v3-valid-ef", &ps, ef, FLAW_NONE, SEGIDX_OK);
    struct how3 packed[] = { { 3, 0, 0 }, { 3, 1, 1 }, { 3, 2, 0 }, { 3, 3, 1 }, { 0, 0, 0 },
                             { 3, 0, 0 } };
    v3_volumes(&ps, 3);
    seed3("v3-valid-packed", &ps, packed, FLAW_NONE, SEGIDX_OK);

    struct how3 small_ef[] = { { 2, 1, 0 }, { 0, 0, 0 } };
    static const struct {
        const char *name;
        enum flaw3 flaw;
    } ef_flaws[] = { { "v3-invalid-bucket-longer", FLAW_BUCKET_LONGER },
                     { "v3-invalid-rank-above-count", FLAW_RANK_ABOVE },
                     { "v3-invalid-ef-high-missing-one", FLAW_HIGH_MISSING },
                     { "v3-invalid-sh-32", FLAW_SH_32 },
                     { "v3-invalid-directory-past-span-key", FLAW_DIRECTORY_LONGER } };
    for (size_t i = 0; i < sizeof ef_flaws / sizeof *ef_flaws; i++) {
        v3_small(&ps);
        seed3(ef_flaws[i].name, &ps, small_ef, ef_flaws[i].flaw, SEGIDX_ECORRUPT);
    }
    struct how3 small_packed[] = { { 3, 1, 0 }, { 0, 0, 0 } };
    v3_small(&ps);
    seed3("v3-invalid-packed-unsorted", &ps, small_packed, FLAW_UNSORTED, SEGIDX_ECORRUPT);
    static const uint32_t wide[] = { 0, 1u << 19, (1u << 19) + 1, (1u << 19) + 2, (1u << 20) - 1 };
    for (uint32_t i = 0; i < 5; i++) /* one key holds 4 values of 19 bits: 76 > 57 */
        add(&ps, 82, wide[i], 3);
    seed3("v3-invalid-packed-wide", &ps, small_packed, FLAW_NONE, SEGIDX_ECORRUPT);

    /* Kind 2 is not defined in version 2. */
    v3_small(&ps);
    size_t len;
    uint8_t *buf = encode3(&ps, small_ef, FLAW_NONE, &len);
    free(ps.p);
    write_seed("v3-valid-small", buf, len, SEGIDX_OK);
    put(buf + 4, 2, 2);
    put(buf + len - 64 + 56, 2, 2);
    reseal(buf, len);
    write_seed("v3-invalid-kind-2-in-v2", buf, len, SEGIDX_ECORRUPT);
    free(buf);
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
    v3_seeds();
    printf("make_segment_corpus: %u seeds, %zu bytes, in %s\n", files, total_bytes, dir);
    return 0;
}
