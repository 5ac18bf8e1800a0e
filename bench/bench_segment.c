/* Segment figures: index bytes per page on W1/W2/W3 (targets: <= 2.0,
 * 3.0 and 0.5) against Graft's last server format (4 B/page + 20 B/volume);
 * find on random hits and misses against two baselines built in this
 * program from the same pages (target: >= 2x faster than graft and no
 * slower than hash); open and build speed.
 *
 * Baselines:
 *   graft  a sorted array of {vid, first, count}, then the pages' u32
 *          offsets (and u64 LSNs) sorted per volume: two binary searches.
 *   hash   open addressing keyed on (vid, offset) with XXH3, holding the
 *          first page and version count; the LSNs beside it.
 * Both answer the same question as segment_find (newest version <= lsn)
 * and are checked against it on every query before anything is timed.
 * Segments are built in the builder's default format (version 3); the
 * older layouts' figures come from the same program with
 * SEGIDX_BENCH_FORMAT=1 or 2 (an internal builder switch). */
#include "bench.h"

#include <math.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "segidx.h"
#include "workload.h"

enum { ROUNDS = 15, QUERIES = 1 << 16, OPENS = 200 };

/* ------------------------------------------------------------ pages */

/* The library's internal switch of the format version a builder writes. */
int segidx__segment_builder_set_version(segidx_segment_builder *b, unsigned version);
/* And the one that makes a segment use its lookups compiled for any x86-64. */
void segidx__segment_use_generic(segidx_segment *s, bool generic);

static unsigned format_version(void)
{
    const char *e = getenv("SEGIDX_BENCH_FORMAT");
    return e && (e[0] == '1' || e[0] == '2') ? (unsigned)(e[0] - '0') : 3;
}

static uint8_t *build(const workload *w, size_t *len)
{
    segidx_segment_options opts = { 4096, WORKLOAD_MAX_BYTES, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    BENCH_CHECK(b);
    BENCH_CHECK(segidx__segment_builder_set_version(b, format_version()) == SEGIDX_OK);
    uint8_t *page = bench_xmalloc(4096);
    for (uint32_t i = 0; i < w->n; i++) {
        wl_fill_page(page, 4096, &w->pages[i]);
        BENCH_CHECK(segidx_segment_builder_add(b, &w->pages[i].vid, w->pages[i].off,
                                               w->pages[i].lsn, page) == SEGIDX_OK);
    }
    *len = segidx_segment_builder_size(b);
    uint8_t *buf = bench_xmalloc(*len);
    segidx_sid sid = { { 1 } };
    BENCH_CHECK(segidx_segment_builder_finish(b, &sid, buf, *len) == SEGIDX_OK);
    segidx_segment_builder_free(b);
    free(page);
    return buf;
}

/* ------------------------------------------------------------ graft */

struct graft_volume {
    segidx_vid vid;
    uint32_t first, count;
};

struct graft {
    struct graft_volume *vols;
    uint32_t n_vols;
    uint32_t *offsets; /* per page, sorted by (vid, offset, lsn) */
    uint64_t *lsns;
};

static struct graft graft_build(const wl_page *sorted, uint32_t n)
{
    struct graft g = { bench_xmalloc(n * sizeof *g.vols), 0, bench_xmalloc(n * 4),
                       bench_xmalloc(n * 8) };
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0 || memcmp(sorted[i].vid.bytes, sorted[i - 1].vid.bytes, 16))
            g.vols[g.n_vols++] = (struct graft_volume){ sorted[i].vid, i, 0 };
        g.vols[g.n_vols - 1].count++;
        g.offsets[i] = sorted[i].off;
        g.lsns[i] = sorted[i].lsn;
    }
    return g;
}

static int64_t graft_find(const struct graft *g, const segidx_vid *vid, uint32_t off, uint64_t lsn)
{
    uint32_t lo = 0, hi = g->n_vols;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = memcmp(g->vols[mid].vid.bytes, vid->bytes, 16);
        if (c == 0) {
            lo = mid;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= g->n_vols || memcmp(g->vols[lo].vid.bytes, vid->bytes, 16))
        return -1;
    uint32_t first = g->vols[lo].first, end = first + g->vols[lo].count;
    uint32_t a = first, b = end; /* first page with offset > off */
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        if (g->offsets[mid] <= off)
            a = mid + 1;
        else
            b = mid;
    }
    for (uint32_t i = a; i > first && g->offsets[i - 1] == off; i--)
        if (g->lsns[i - 1] <= lsn)
            return i - 1;
    return -1;
}

/* ------------------------------------------------------------ hash */

struct hash_slot {
    segidx_vid vid;
    uint32_t off;
    uint16_t first, count; /* pages [first, first + count), oldest first */
    bool used;
};

struct hash {
    struct hash_slot *slots;
    uint32_t mask;
    uint64_t *lsns;
};

/* The same two-load equality segment_find uses, so that the baseline is not
 * slowed by a memcmp call. */
static bool vid_equal(const segidx_vid *a, const segidx_vid *b)
{
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, a->bytes, 8);
    memcpy(&a1, a->bytes + 8, 8);
    memcpy(&b0, b->bytes, 8);
    memcpy(&b1, b->bytes + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

static uint64_t hash_key(const segidx_vid *vid, uint32_t off)
{
    uint8_t key[20];
    memcpy(key, vid->bytes, 16);
    memcpy(key + 16, &off, 4);
    return XXH3_64bits(key, sizeof key);
}

static struct hash hash_build(const wl_page *sorted, uint32_t n)
{
    uint32_t size = 16;
    while (size < 2 * n)
        size *= 2;
    struct hash h = { calloc(size, sizeof(struct hash_slot)), size - 1, bench_xmalloc(n * 8) };
    BENCH_CHECK(h.slots);
    for (uint32_t i = 0; i < n; i++) {
        h.lsns[i] = sorted[i].lsn;
        if (i && sorted[i].off == sorted[i - 1].off &&
            !memcmp(sorted[i].vid.bytes, sorted[i - 1].vid.bytes, 16))
            continue; /* a newer version of the previous offset */
        uint32_t s = (uint32_t)hash_key(&sorted[i].vid, sorted[i].off) & h.mask;
        while (h.slots[s].used)
            s = (s + 1) & h.mask;
        uint32_t count = 1;
        while (i + count < n && sorted[i + count].off == sorted[i].off &&
               !memcmp(sorted[i + count].vid.bytes, sorted[i].vid.bytes, 16))
            count++;
        h.slots[s] = (struct hash_slot){ sorted[i].vid, sorted[i].off, (uint16_t)i,
                                         (uint16_t)count, true };
    }
    return h;
}

static int64_t hash_find(const struct hash *h, const segidx_vid *vid, uint32_t off, uint64_t lsn)
{
    uint32_t s = (uint32_t)hash_key(vid, off) & h->mask;
    for (; h->slots[s].used; s = (s + 1) & h->mask) {
        const struct hash_slot *e = &h->slots[s];
        if (e->off != off || !vid_equal(&e->vid, vid))
            continue;
        for (uint32_t k = e->count; k > 0; k--)
            if (h->lsns[e->first + k - 1] <= lsn)
                return e->first + k - 1;
        return -1;
    }
    return -1;
}

/* ------------------------------------------------------------ queries */

struct query {
    segidx_vid vid;
    uint32_t off;
    uint64_t lsn;
};

/* Hits: a random page at its own LSN or later. Misses: a known volume at
 * an offset it lacks (nine in ten), or an unknown volume. */
static struct query *make_queries(const wl_page *sorted, uint32_t n, bool hits, bench_rng *r)
{
    struct query *q = bench_xmalloc(QUERIES * sizeof *q);
    for (uint32_t i = 0; i < QUERIES; i++) {
        const wl_page *p = &sorted[bench_rng_below(r, n)];
        q[i] = (struct query){ p->vid, p->off, p->lsn + bench_rng_below(r, 3) };
        if (hits)
            continue;
        if (bench_rng_below(r, 10) == 0) {
            q[i].vid.bytes[7] ^= 0xA5;
            continue;
        }
        /* Near the page when that is a gap, else further out (a bulk load
         * has no gaps near its pages). */
        for (uint32_t reach = 64;; reach = reach < (1u << 30) ? reach * 2 : reach) {
            q[i].off = p->off + 1 + bench_rng_below(r, reach);
            wl_page key = { q[i].vid, q[i].off, 0 };
            uint32_t lo = 0, hi = n;
            while (lo < hi) { /* first page >= (vid, off, 0) */
                uint32_t mid = lo + (hi - lo) / 2;
                if (wl_compare(&sorted[mid], &key) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo == n || sorted[lo].off != q[i].off ||
                memcmp(sorted[lo].vid.bytes, q[i].vid.bytes, 16))
                break;
        }
    }
    return q;
}

struct find_ctx {
    const struct query *q;
    const segidx_segment *seg;
    const struct graft *graft;
    const struct hash *hash;
};

static volatile uint64_t sink;

static double round_ours(void *p)
{
    struct find_ctx *c = p;
    uint64_t t = bench_now_ns(), acc = 0;
    for (uint32_t i = 0; i < QUERIES; i++) {
        segidx_page_ref ref;
        if (segidx_segment_find(c->seg, &c->q[i].vid, c->q[i].off, c->q[i].lsn, &ref) == 0)
            acc += ref.local;
    }
    sink += acc;
    return (double)(bench_now_ns() - t) / QUERIES;
}

static double round_graft(void *p)
{
    struct find_ctx *c = p;
    uint64_t t = bench_now_ns(), acc = 0;
    for (uint32_t i = 0; i < QUERIES; i++)
        acc += (uint64_t)graft_find(c->graft, &c->q[i].vid, c->q[i].off, c->q[i].lsn);
    sink += acc;
    return (double)(bench_now_ns() - t) / QUERIES;
}

static double round_hash(void *p)
{
    struct find_ctx *c = p;
    uint64_t t = bench_now_ns(), acc = 0;
    for (uint32_t i = 0; i < QUERIES; i++)
        acc += (uint64_t)hash_find(c->hash, &c->q[i].vid, c->q[i].off, c->q[i].lsn);
    sink += acc;
    return (double)(bench_now_ns() - t) / QUERIES;
}

/* Every answer of every side must agree before any of them is timed. */
static void check_answers(const struct find_ctx *c)
{
    for (uint32_t i = 0; i < QUERIES; i++) {
        const struct query *q = &c->q[i];
        segidx_page_ref ref;
        int64_t ours = segidx_segment_find(c->seg, &q->vid, q->off, q->lsn, &ref) == 0
                           ? (int64_t)ref.local
                           : -1;
        BENCH_CHECK(ours == graft_find(c->graft, &q->vid, q->off, q->lsn));
        BENCH_CHECK(ours == hash_find(c->hash, &q->vid, q->off, q->lsn));
    }
}

static void bench_find(const char *wname, const segidx_segment *seg, const wl_page *sorted,
                       uint32_t n, bool hits, bench_rng *r)
{
    struct graft g = graft_build(sorted, n);
    struct hash h = hash_build(sorted, n);
    struct query *q = make_queries(sorted, n, hits, r);
    struct find_ctx c = { q, seg, &g, &h };
    check_answers(&c);
    double ours, graft, ours2, hash;
    bench_median_pair(round_ours, &c, round_graft, &c, ROUNDS, &ours, &graft);
    bench_median_pair(round_ours, &c, round_hash, &c, ROUNDS, &ours2, &hash);
    char name[64];
    snprintf(name, sizeof name, "segment.find %s %s", wname, hits ? "hit" : "miss");
    bench_print(&(struct bench_figure){ .name = name, .value = ours, .unit = "ns/op",
                                        .baseline = "graft 2x bsearch", .baseline_value = graft });
    bench_print(&(struct bench_figure){ .name = name, .value = ours2, .unit = "ns/op",
                                        .baseline = "xxh3 open addressing", .baseline_value = hash });
    free(q);
    free(g.vols);
    free(g.offsets);
    free(g.lsns);
    free(h.slots);
    free(h.lsns);
}

/* ------------------------------------------------------------ find_many
 *
 * What read_pages asks of a segment: per volume, a sorted list of offsets
 * at one LSN. segidx_segment_find_many over each volume's list against
 * segment_find of the same offsets one by one, in the same order; both in
 * ns per page. Two lists per volume: every distinct offset ("all") and one
 * in eight ("1/8"). */

struct many_ctx {
    const segidx_segment *seg;
    const segidx_vid *vids;   /* per list */
    const uint32_t *offs;     /* all lists, back to back */
    const size_t *starts;     /* list i is offs[starts[i] .. starts[i + 1]) */
    size_t lists, total;
    segidx_page_ref *out;
};

static double round_many(void *p)
{
    struct many_ctx *c = p;
    uint64_t t = bench_now_ns(), acc = 0;
    for (int rep = 0; rep < 8; rep++)
        for (size_t i = 0; i < c->lists; i++) {
            size_t n = c->starts[i + 1] - c->starts[i];
            BENCH_CHECK(segidx_segment_find_many(c->seg, &c->vids[i], UINT64_MAX,
                                                 c->offs + c->starts[i], n, c->out) == SEGIDX_OK);
            acc += c->out[n / 2].local;
        }
    sink += acc;
    return (double)(bench_now_ns() - t) / (8.0 * (double)c->total);
}

static double round_single(void *p)
{
    struct many_ctx *c = p;
    uint64_t t = bench_now_ns(), acc = 0;
    for (int rep = 0; rep < 8; rep++)
        for (size_t i = 0; i < c->lists; i++)
            for (size_t k = c->starts[i]; k < c->starts[i + 1]; k++) {
                segidx_page_ref ref;
                BENCH_CHECK(segidx_segment_find(c->seg, &c->vids[i], c->offs[k], UINT64_MAX,
                                                &ref) == SEGIDX_OK);
                acc += ref.local;
            }
    sink += acc;
    return (double)(bench_now_ns() - t) / (8.0 * (double)c->total);
}

static void bench_find_many(const char *wname, const segidx_segment *seg, const wl_page *sorted,
                            uint32_t n, unsigned every)
{
    struct many_ctx c = { seg, bench_xmalloc(n * sizeof(segidx_vid)), NULL, NULL, 0, 0,
                          bench_xmalloc(n * sizeof(segidx_page_ref)) };
    uint32_t *offs = bench_xmalloc(n * sizeof *offs);
    size_t *starts = bench_xmalloc((n + 1) * sizeof *starts);
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        starts[c.lists] = c.total;
        ((segidx_vid *)c.vids)[c.lists] = sorted[i].vid;
        for (uint32_t k = 0; j < n && !memcmp(sorted[j].vid.bytes, sorted[i].vid.bytes, 16); j++)
            if ((j == i || sorted[j].off != sorted[j - 1].off) && k++ % every == 0)
                offs[c.total++] = sorted[j].off;
        if (c.total > starts[c.lists])
            c.lists++;
        i = j;
    }
    starts[c.lists] = c.total;
    c.offs = offs;
    c.starts = starts;
    double many, single;
    bench_median_pair(round_many, &c, round_single, &c, ROUNDS, &many, &single);
    char name[64];
    snprintf(name, sizeof name, "segment.find_many %s %s", wname, every == 1 ? "all" : "1/8");
    bench_print(&(struct bench_figure){ .name = name, .value = many, .unit = "ns/page",
                                        .baseline = "segment_find per page",
                                        .baseline_value = single });
    free((void *)c.vids);
    free(c.out);
    free(offs);
    free(starts);
}

/* ------------------------------------------------------------ open, build */

struct open_ctx {
    const uint8_t *buf;
    size_t len;
};

static double round_open(void *p)
{
    struct open_ctx *c = p;
    uint64_t t = bench_now_ns();
    for (int i = 0; i < OPENS; i++) {
        segidx_segment *s;
        BENCH_CHECK(segidx_segment_open(c->buf, c->len, &s) == SEGIDX_OK);
        segidx_segment_close(s);
    }
    return (double)(bench_now_ns() - t) / OPENS / 1000.0;
}

static double round_checksum(void *p)
{
    struct open_ctx *c = p;
    uint64_t index_offset;
    memcpy(&index_offset, c->buf + c->len - 64, 8); /* little-endian hosts */
    uint64_t t = bench_now_ns(), acc = 0;
    for (int i = 0; i < OPENS; i++)
        acc += XXH3_64bits(c->buf + index_offset, c->len - index_offset - 16);
    sink += acc;
    return (double)(bench_now_ns() - t) / OPENS / 1000.0;
}

struct build_ctx {
    const workload *w;
    uint8_t *page;
    uint8_t *out;
};

static double round_build(void *p)
{
    struct build_ctx *c = p;
    segidx_segment_options opts = { 4096, WORKLOAD_MAX_BYTES, NULL };
    uint64_t t = bench_now_ns();
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    for (uint32_t i = 0; i < c->w->n; i++)
        BENCH_CHECK(segidx_segment_builder_add(b, &c->w->pages[i].vid, c->w->pages[i].off,
                                               c->w->pages[i].lsn, c->page) == SEGIDX_OK);
    size_t len = segidx_segment_builder_size(b);
    segidx_sid sid = { { 2 } };
    BENCH_CHECK(segidx_segment_builder_finish(b, &sid, c->out, len) == SEGIDX_OK);
    segidx_segment_builder_free(b);
    double seconds = (double)(bench_now_ns() - t) / 1e9;
    return c->w->n / seconds;
}

/* ------------------------------------------------------------ lookups only
 *
 * SEGIDX_BENCH_LOOKUPS=W1:hit (or W2, W3; hit or miss): one pass of the
 * queries through each side (round_ours, round_hash, round_graft, in that
 * order) and nothing else timed, for an instruction count per lookup:
 *
 *   valgrind --tool=callgrind --toggle-collect=round_ours \
 *       --toggle-collect=round_hash --toggle-collect=round_graft \
 *       bench_segment
 *
 * then each function's inclusive count divided by 65536 (loop included).
 * SEGIDX_BENCH_GENERIC=1 measures the lookups compiled for any x86-64
 * where the CPU would run the POPCNT and BMI2 copy. */
static int lookups_only(const char *spec)
{
    int k = spec[0] == 'W' && spec[1] >= '1' && spec[1] <= '3' ? spec[1] - '1' : -1;
    bool hits = strcmp(spec + 2, ":hit") == 0;
    if (k < 0 || (!hits && strcmp(spec + 2, ":miss") != 0)) {
        fprintf(stderr, "SEGIDX_BENCH_LOOKUPS: W1..W3 then :hit or :miss\n");
        return 2;
    }
    workload w = k == 0 ? wl_w1(1) : k == 1 ? wl_w2(2) : wl_w3(3);
    size_t len;
    uint8_t *buf = build(&w, &len);
    segidx_segment *seg;
    BENCH_CHECK(segidx_segment_open(buf, len, &seg) == SEGIDX_OK);
    const char *generic = getenv("SEGIDX_BENCH_GENERIC");
    segidx__segment_use_generic(seg, generic && generic[0] == '1');
    wl_page *sorted = bench_xmalloc(w.n * sizeof *sorted);
    memcpy(sorted, w.pages, w.n * sizeof *sorted);
    qsort(sorted, w.n, sizeof *sorted, wl_compare);
    bench_rng r = bench_rng_seed(42);
    struct graft g = graft_build(sorted, w.n);
    struct hash h = hash_build(sorted, w.n);
    struct query *q = make_queries(sorted, w.n, hits, &r);
    struct find_ctx c = { q, seg, &g, &h };
    check_answers(&c);
    /* Through pointers, so that each side stays a function of its own. */
    bench_round_fn volatile sides[] = { round_ours, round_hash, round_graft };
    for (int i = 0; i < 3; i++)
        sides[i](&c);
    printf("lookups %s: %u queries a side\n", spec, (unsigned)QUERIES);
    free(q);
    free(g.vols);
    free(g.offsets);
    free(g.lsns);
    free(h.slots);
    free(h.lsns);
    free(sorted);
    segidx_segment_close(seg);
    free(buf);
    wl_free(&w);
    return 0;
}

/* ------------------------------------------------------------ main */

int main(void)
{
    const char *only = getenv("SEGIDX_BENCH_LOOKUPS");
    if (only)
        return lookups_only(only);
    workload ws[] = { wl_w1(1), wl_w2(2), wl_w3(3) };
    static const double targets[] = { 2.0, 3.0, 0.5 }; /* B/page, the targets */
    bench_rng r = bench_rng_seed(42);
    for (int k = 0; k < 3; k++) {
        const workload *w = &ws[k];
        size_t len;
        uint8_t *buf = build(w, &len);
        segidx_segment *seg;
        BENCH_CHECK(segidx_segment_open(buf, len, &seg) == SEGIDX_OK);
        segidx_segment_stats st;
        segidx_segment_stats_get(seg, &st);
        char name[64];
        snprintf(name, sizeof name, "segment.index_bytes %s", w->name);
        double graft = (4.0 * st.page_count + 20.0 * st.volume_count) / st.page_count;
        bench_print(&(struct bench_figure){ .name = name,
                                            .value = (double)st.index_bytes / st.page_count,
                                            .unit = "B/page", .baseline = "graft format",
                                            .baseline_value = graft });
        (void)targets;

        wl_page *sorted = bench_xmalloc(w->n * sizeof *sorted);
        memcpy(sorted, w->pages, w->n * sizeof *sorted);
        qsort(sorted, w->n, sizeof *sorted, wl_compare);
        bench_find(w->name, seg, sorted, w->n, true, &r);
        bench_find(w->name, seg, sorted, w->n, false, &r);
        bench_find_many(w->name, seg, sorted, w->n, 1);
        bench_find_many(w->name, seg, sorted, w->n, 8);

        if (k == 0) {
            struct open_ctx oc = { buf, len };
            double open_us, sum_us;
            bench_median_pair(round_open, &oc, round_checksum, &oc, ROUNDS, &open_us, &sum_us);
            bench_print(&(struct bench_figure){ .name = "segment.open W1", .value = open_us,
                                                .unit = "us", .baseline = "xxh3 of the index",
                                                .baseline_value = sum_us });
            struct build_ctx bc = { w, bench_xmalloc(4096), bench_xmalloc(len) };
            memset(bc.page, 7, 4096);
            bench_print(&(struct bench_figure){ .name = "segment.build W1",
                                                .value = bench_median_of(round_build, &bc, 5),
                                                .unit = "pages/s",
                                                .better = BENCH_HIGHER_IS_BETTER });
            free(bc.page);
            free(bc.out);
        }
        free(sorted);
        segidx_segment_close(seg);
        free(buf);
    }
    for (int k = 0; k < 3; k++)
        wl_free(&ws[k]);
    return 0;
}
