/* Checkpoint figures (docs/FORMAT.md, "Checkpoints"): what a volume
 * index with checkpoints costs and saves against the plain walk, both
 * over nosync LMDB, both built in the same run from the same commits.
 *
 * The volume: 100,000 pages, one bulk load commit of all of them (LSN 1)
 * except every 1000th page (offsets 500, 1500, ...: holes inside the
 * written range), then H commits of 16 distinct pages each, every commit
 * into a fresh segment (sid). Two workloads: the pages of a commit are
 * uniform over the volume, or Zipf(1)-skewed (workload.h's generator:
 * hot low pages). The holes are never written.
 *
 * Figures per H and workload, checkpoints on against checkpoints off
 * ("walk"):
 *   - catalog bytes per commit (key + value of every PUT the index hands
 *     the store) and data.mdb growth per commit, over the H commits;
 *   - commit latency: mean (what throughput sees), median, p99.9 and
 *     max (a round's closing commit writes its deltas, an image round
 *     its image: the spikes);
 *   - find_segments in us per query (median of rounds, both sides
 *     alternating) and KV entries read per query (scan visits plus get
 *     callbacks), for queries of 1, 64 and 1024 written pages at the
 *     latest LSN and at the middle one (1 + H/2), and for one never
 *     written page inside the written range and one above it.
 * Every measured query is answered by both indexes first, untimed: the
 * answers (hits, their LSNs and sids, their offsets, what is left) must
 * be the same on both sides and agree with a model of the commits.
 *
 *   bench_checkpoint [H ...]       H commits per run; default 1000 10000
 *   SEGIDX_BENCH_CKPT=K,F,L        the checkpoint policy (default: the
 *                                  library's, {0} options)
 *   SEGIDX_BENCH_WORKLOAD=uniform|zipf   one workload only
 *   SEGIDX_BENCH_VERBOSE=1         also KV calls (gets + scans) per query
 *   SEGIDX_BENCH_BEHIND=n          query n commits below the latest and the
 *                                  middle LSN. A read at a round's own LSN
 *                                  walks no commit, one just below it K - 1:
 *                                  with K = 16, H = 10k puts the latest LSN
 *                                  on a round (and H = 100k, 1M both), and
 *                                  n = 1 then gives the longest walks.
 * Progress goes to stderr for H >= 100000. */
#include "bench.h"
#include "kv.h"
#include "workload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segidx.h"
#include "segidx_lmdb.h"

enum { VOLUME_PAGES = 100000, COMMIT_PAGES = 16, HOLE_EVERY = 1000, HOLE_AT = 500,
       HOLE_INSIDE = 50500, HOLE_ABOVE = 200000 };

/* ------------------------------------------------------------ one index */

enum { PATH_BYTES = 512 };

/* One LMDB store and its index: checkpoints on, or the walk. */
struct side {
    char dir[PATH_BYTES];
    struct bench_counting_kv *kv;
    segidx_volume_index *vi;
    double *lat_us;           /* each of the H commits */
    struct bench_kv_counts after_bulk; /* the counters once the bulk load was in */
    long long file_after_bulk;
};

/* dir + "/" + name into path[PATH_BYTES]. */
static void path_of(char *path, const char *dir, const char *name)
{
    int n = snprintf(path, PATH_BYTES, "%s/%s", dir, name);
    BENCH_CHECK(n > 0 && n < PATH_BYTES);
}

static long long file_bytes(const struct side *s)
{
    char path[PATH_BYTES];
    struct stat st;
    path_of(path, s->dir, "data.mdb");
    BENCH_CHECK(stat(path, &st) == 0);
    return (long long)st.st_size;
}

static void side_open(struct side *s, const char *root, const char *name,
                      const segidx_volume_index_options *opts, uint32_t commits)
{
    path_of(s->dir, root, name);
    segidx_kv kv = bench_lmdb_open(s->dir, true, (size_t)16 << 30);
    s->kv = bench_xmalloc(sizeof *s->kv);
    *s->kv = (struct bench_counting_kv){ kv, { 0 } };
    BENCH_CHECK(segidx_volume_index_open_with(bench_counting_kv(s->kv), opts, &s->vi) ==
                SEGIDX_OK);
    s->lat_us = bench_xmalloc(commits * sizeof *s->lat_us);
}

static void side_close(struct side *s)
{
    segidx_volume_index_close(s->vi);
    free(s->kv);
    free(s->lat_us);
    bench_scratch_remove(s->dir);
}

/* ------------------------------------------------------------ the commits */

static bool is_hole(uint32_t off)
{
    return off % HOLE_EVERY == HOLE_AT;
}

/* A page of the volume that is not a hole: uniform, or Zipf(1) by rank. */
static uint32_t draw_page(workload *g, bool zipf)
{
    for (;;) {
        uint32_t o = zipf ? wl_zipf(g, VOLUME_PAGES) : (uint32_t)wl_below(g, VOLUME_PAGES);
        if (!is_hole(o))
            return o;
    }
}

/* `n` distinct pages, drawn as draw_page() draws them. */
static segidx_offset_set *draw_pages(workload *g, bool zipf, uint32_t n)
{
    segidx_offset_set *s = segidx_offset_set_new();
    BENCH_CHECK(s);
    while (segidx_offset_set_cardinality(s) < n)
        BENCH_CHECK(segidx_offset_set_add(s, draw_page(g, zipf)) == SEGIDX_OK);
    return s;
}

/* A fresh segment per commit: its sid is its LSN. */
static segidx_sid sid_of(segidx_lsn lsn)
{
    segidx_sid sid = { { 0x5E } };
    memcpy(sid.bytes + 8, &lsn, 8);
    return sid;
}

/* Commit `set` at `lsn` to both sides, which goes first alternating;
 * each call timed into lat_us[i] (i < 0: not recorded). */
static void commit_both(struct side *sides, const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_offset_set *set, long i)
{
    segidx_commit_segment seg = { sid_of(lsn), set };
    for (int k = 0; k < 2; k++) {
        struct side *s = &sides[(lsn + (segidx_lsn)k) % 2];
        uint64_t t = bench_now_ns();
        BENCH_CHECK(segidx_volume_commit(s->vi, vid, lsn, lsn, &seg, 1) == SEGIDX_OK);
        if (i >= 0)
            s->lat_us[i] = (double)(bench_now_ns() - t) / 1e3;
    }
}

/* Per page, the LSN of its newest write (0: never), as commits go. */
struct model {
    uint32_t *lsn;
    uint32_t now;
};

static int mark_written(segidx_offset o, void *ctx)
{
    struct model *m = ctx;
    m->lsn[o] = m->now;
    return 0;
}

static uint32_t model_lsn(const uint32_t *last, uint32_t off)
{
    return off < VOLUME_PAGES ? last[off] : 0;
}

/* ------------------------------------------------------------ answers */

struct hit {
    segidx_lsn lsn;
    segidx_sid sid;
    segidx_offset_set *cut;
};

struct answer {
    struct hit *h;
    size_t n, cap;
    segidx_offset_set *left; /* the query afterwards */
};

static int collect_hit(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    struct answer *a = ctx;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->h = realloc(a->h, a->cap * sizeof *a->h);
        BENCH_CHECK(a->h);
    }
    a->h[a->n] = (struct hit){ lsn, *sid, segidx_offset_set_copy(cut) };
    BENCH_CHECK(a->h[a->n].cut);
    a->n++;
    return 0;
}

static void answer_free(struct answer *a)
{
    for (size_t i = 0; i < a->n; i++)
        segidx_offset_set_free(a->h[i].cut);
    free(a->h);
    segidx_offset_set_free(a->left);
    memset(a, 0, sizeof *a);
}

static int compare_hits(const void *pa, const void *pb)
{
    const struct hit *a = pa, *b = pb;
    if (a->lsn != b->lsn)
        return a->lsn < b->lsn ? 1 : -1;
    return memcmp(a->sid.bytes, b->sid.bytes, 16);
}

/* The same hits (as a set: ordered by LSN, then sid), the same offsets
 * in each, the same query left. */
static void check_same(struct answer *a, struct answer *b)
{
    qsort(a->h, a->n, sizeof *a->h, compare_hits);
    qsort(b->h, b->n, sizeof *b->h, compare_hits);
    BENCH_CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        BENCH_CHECK(a->h[i].lsn == b->h[i].lsn);
        BENCH_CHECK(memcmp(a->h[i].sid.bytes, b->h[i].sid.bytes, 16) == 0);
        BENCH_CHECK(segidx_offset_set_equals(a->h[i].cut, b->h[i].cut));
    }
    BENCH_CHECK(segidx_offset_set_equals(a->left, b->left));
}

struct model_check {
    const uint32_t *last;
    const segidx_offset_set *query;
    uint32_t want; /* the LSN each offset must have; 0: never written */
};

static int check_offset(segidx_offset o, void *ctx)
{
    struct model_check *c = ctx;
    BENCH_CHECK(segidx_offset_set_contains(c->query, o));
    BENCH_CHECK(model_lsn(c->last, o) == c->want);
    return 0;
}

/* Each offset of the query answered by the commit that last wrote it up
 * to the query's LSN, from that commit's segment; the rest never written. */
static void check_model(const struct answer *a, const uint32_t *last,
                        const segidx_offset_set *query)
{
    uint64_t total = segidx_offset_set_cardinality(a->left);
    for (size_t i = 0; i < a->n; i++) {
        segidx_sid sid = sid_of(a->h[i].lsn);
        BENCH_CHECK(memcmp(sid.bytes, a->h[i].sid.bytes, 16) == 0);
        BENCH_CHECK(!segidx_offset_set_is_empty(a->h[i].cut));
        struct model_check c = { last, query, (uint32_t)a->h[i].lsn };
        segidx_offset_set_iterate(a->h[i].cut, check_offset, &c);
        total += segidx_offset_set_cardinality(a->h[i].cut);
    }
    struct model_check c = { last, query, 0 };
    segidx_offset_set_iterate(a->left, check_offset, &c);
    BENCH_CHECK(total == segidx_offset_set_cardinality(query));
}

/* ------------------------------------------------------------ queries */

struct query_set {
    segidx_offset_set **q;
    int n;
    uint64_t found; /* offsets the queries find, over all of them */
};

static void query_set_free(struct query_set *qs)
{
    for (int i = 0; i < qs->n; i++)
        segidx_offset_set_free(qs->q[i]);
    free(qs->q);
}

/* `n` queries of `pages` written pages each, or of the one page `only`
 * (pages 0). */
static struct query_set make_queries(workload *g, bool zipf, int n, uint32_t pages,
                                     uint32_t only)
{
    struct query_set qs = { bench_xmalloc((size_t)n * sizeof *qs.q), n, 0 };
    for (int i = 0; i < n; i++) {
        if (pages) {
            qs.q[i] = draw_pages(g, zipf, pages);
        } else {
            BENCH_CHECK(qs.q[i] = segidx_offset_set_new());
            BENCH_CHECK(segidx_offset_set_add(qs.q[i], only) == SEGIDX_OK);
        }
    }
    return qs;
}

/* One query on one side, untimed, its answer and what it read kept. */
static void answer_query(struct side *s, const segidx_vid *vid, segidx_lsn lsn,
                         const segidx_offset_set *query, struct answer *a, struct bench_kv_counts *used)
{
    a->left = segidx_offset_set_copy(query);
    BENCH_CHECK(a->left);
    struct bench_kv_counts before = s->kv->n;
    BENCH_CHECK(segidx_volume_find_segments(s->vi, vid, lsn, a->left, collect_hit, a) ==
                SEGIDX_OK);
    used->visits += s->kv->n.visits - before.visits;
    used->calls += s->kv->n.calls - before.calls;
}

struct timed {
    struct side *s;
    const segidx_vid *vid;
    segidx_lsn lsn;
    const struct query_set *qs;
};

static int count_found(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    (void)sid, (void)lsn;
    *(uint64_t *)ctx += segidx_offset_set_cardinality(cut);
    return 0;
}

/* One round: every query of the set once; us per query. The copies of
 * the queries are made outside the clock. */
static double timed_round(void *ctx)
{
    struct timed *t = ctx;
    uint64_t ns = 0, found = 0;
    for (int i = 0; i < t->qs->n; i++) {
        segidx_offset_set *q = segidx_offset_set_copy(t->qs->q[i]);
        BENCH_CHECK(q);
        uint64_t t0 = bench_now_ns();
        int rc = segidx_volume_find_segments(t->s->vi, t->vid, t->lsn, q, count_found, &found);
        ns += bench_now_ns() - t0;
        BENCH_CHECK(rc == SEGIDX_OK);
        segidx_offset_set_free(q);
    }
    BENCH_CHECK(found == t->qs->found);
    return (double)ns / 1e3 / t->qs->n;
}

/* ------------------------------------------------------------ a run */

struct run {
    const char *hname;   /* "10k" */
    const char *wname;   /* "uni", "zipf" */
    bool zipf;
    uint32_t commits;    /* H */
    uint32_t behind;     /* queries this many commits below latest and middle */
    int queries, rounds; /* per measurement */
    bool verbose, progress;
};

static void print_pair(const char *what, const struct run *r, const char *which, double ours,
                       double base, const char *unit)
{
    char name[96];
    snprintf(name, sizeof name, "ckpt.%s %s %s%s%s", what, r->hname, r->wname, *which ? " " : "",
             which);
    bench_print(&(struct bench_figure){ .name = name, .value = ours, .unit = unit,
                                        .baseline = "walk", .baseline_value = base });
}

/* One kind of query: checked on both sides, then timed. */
static void measure(const struct run *r, struct side *sides, const segidx_vid *vid,
                    segidx_lsn lsn, const uint32_t *last, struct query_set *qs, const char *which)
{
    struct bench_kv_counts used[2] = { { 0 }, { 0 } };
    for (int i = 0; i < qs->n; i++) {
        struct answer a[2] = { { 0 }, { 0 } };
        for (int k = 0; k < 2; k++)
            answer_query(&sides[k], vid, lsn, qs->q[i], &a[k], &used[k]);
        check_model(&a[1], last, qs->q[i]);
        check_same(&a[0], &a[1]);
        qs->found += segidx_offset_set_cardinality(qs->q[i]) -
                     segidx_offset_set_cardinality(a[0].left);
        answer_free(&a[0]);
        answer_free(&a[1]);
    }
    struct timed on = { &sides[0], vid, lsn, qs }, off = { &sides[1], vid, lsn, qs };
    double us_on, us_off;
    bench_median_pair(timed_round, &on, timed_round, &off, r->rounds, &us_on, &us_off);
    print_pair("find", r, which, us_on, us_off, "us/q");
    print_pair("entries", r, which, (double)used[0].visits / qs->n,
               (double)used[1].visits / qs->n, "/query");
    if (r->verbose)
        print_pair("kv_calls", r, which, (double)used[0].calls / qs->n,
                   (double)used[1].calls / qs->n, "/query");
}

/* ------------------------------------------------------------ changed */

struct timed_changed {
    struct side *s;
    const segidx_vid *vid;
    segidx_lsn from, to;
    uint64_t want; /* offsets in the answer */
};

static double changed_round(void *ctx)
{
    struct timed_changed *t = ctx;
    segidx_offset_set *out = segidx_offset_set_new();
    BENCH_CHECK(out);
    uint64_t t0 = bench_now_ns();
    BENCH_CHECK(segidx_volume_changed(t->s->vi, t->vid, t->from, t->to, out) == SEGIDX_OK);
    double us = (double)(bench_now_ns() - t0) / 1e3;
    BENCH_CHECK(segidx_offset_set_cardinality(out) == t->want);
    segidx_offset_set_free(out);
    return us;
}

/* segidx_volume_changed(from, latest) with checkpoints against the walk:
 * the answer checked against the model's newest LSN of each page at
 * `latest` (changed: above `from`); its time and the entries it reads. */
static void measure_changed(const struct run *r, struct side *sides, const segidx_vid *vid,
                            segidx_lsn from, segidx_lsn latest, const uint32_t *last,
                            const char *which)
{
    uint64_t want = 0, visits[2];
    for (uint32_t o = 0; o < VOLUME_PAGES; o++)
        want += last[o] > from;
    for (int k = 0; k < 2; k++) {
        segidx_offset_set *out = segidx_offset_set_new();
        BENCH_CHECK(out);
        struct bench_kv_counts before = sides[k].kv->n;
        BENCH_CHECK(segidx_volume_changed(sides[k].vi, vid, from, latest, out) == SEGIDX_OK);
        visits[k] = sides[k].kv->n.visits - before.visits;
        BENCH_CHECK(segidx_offset_set_cardinality(out) == want);
        for (uint32_t o = 0; o < VOLUME_PAGES; o += 97)
            BENCH_CHECK(segidx_offset_set_contains(out, o) == (last[o] > from));
        segidx_offset_set_free(out);
    }
    struct timed_changed on = { &sides[0], vid, from, latest, want };
    struct timed_changed off = { &sides[1], vid, from, latest, want };
    double us_on, us_off;
    bench_median_pair(changed_round, &on, changed_round, &off, r->rounds, &us_on, &us_off);
    print_pair("changed", r, which, us_on, us_off, "us");
    print_pair("changed_entries", r, which, (double)visits[0], (double)visits[1], "/call");
}

static int compare_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The latency at quantile q of v[0..n) (sorts v). */
static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, compare_double);
    return v[(size_t)(q * (double)(n - 1))];
}

static void print_build(const struct run *r, struct side *sides)
{
    double bytes[2], growth[2], mean[2], med[2], p999[2], max[2];
    for (int k = 0; k < 2; k++) {
        struct side *s = &sides[k];
        mean[k] = 0;
        for (uint32_t i = 0; i < r->commits; i++)
            mean[k] += s->lat_us[i] / r->commits;
        bytes[k] = (double)(s->kv->n.put_bytes - s->after_bulk.put_bytes) / r->commits;
        growth[k] = (double)(file_bytes(s) - s->file_after_bulk) / r->commits;
        med[k] = quantile(s->lat_us, r->commits, 0.5);
        p999[k] = quantile(s->lat_us, r->commits, 0.999);
        max[k] = s->lat_us[r->commits - 1];
    }
    print_pair("catalog_bytes", r, "", bytes[0], bytes[1], "B/c");
    print_pair("lmdb_growth", r, "", growth[0], growth[1], "B/c");
    print_pair("commit", r, "mean", mean[0], mean[1], "us");
    print_pair("commit", r, "median", med[0], med[1], "us");
    print_pair("commit", r, "p99.9", p999[0], p999[1], "us");
    print_pair("commit", r, "max", max[0], max[1], "us");
}

static void progress(const struct run *r, const char *what)
{
    if (r->progress)
        fprintf(stderr, "bench_checkpoint: H=%s %s: %s\n", r->hname, r->wname, what);
}

static void one_run(const struct run *r, const segidx_volume_index_options *policy)
{
    char root[] = "/tmp/segidx-bench-ckpt-XXXXXX";
    BENCH_CHECK(mkdtemp(root));
    segidx_volume_index_options walk = { 0 };
    walk.checkpoint_commits = SEGIDX_CHECKPOINTS_OFF;
    struct side sides[2]; /* [0] checkpoints, [1] the walk */
    side_open(&sides[0], root, "on", policy, r->commits);
    side_open(&sides[1], root, "off", &walk, r->commits);
    segidx_vid vid = { { 0xC4, 0xEC } };

    /* The bulk load: every page but the holes, LSN 1. */
    segidx_offset_set *bulk = segidx_offset_set_new();
    BENCH_CHECK(bulk);
    for (uint32_t lo = 0; lo < VOLUME_PAGES; lo += HOLE_EVERY) {
        BENCH_CHECK(segidx_offset_set_add_range(bulk, lo, lo + HOLE_AT) == SEGIDX_OK);
        BENCH_CHECK(segidx_offset_set_add_range(bulk, lo + HOLE_AT + 1, lo + HOLE_EVERY) ==
                    SEGIDX_OK);
    }
    commit_both(sides, &vid, 1, bulk, -1);
    for (int k = 0; k < 2; k++) {
        sides[k].after_bulk = sides[k].kv->n;
        sides[k].file_after_bulk = file_bytes(&sides[k]);
    }
    struct model m = { calloc(VOLUME_PAGES, sizeof *m.lsn), 1 };
    BENCH_CHECK(m.lsn);
    segidx_offset_set_iterate(bulk, mark_written, &m);
    segidx_offset_set_free(bulk);

    /* H commits of 16 pages; the model kept at the middle LSN too. */
    segidx_lsn latest = 1 + (segidx_lsn)r->commits - r->behind;
    segidx_lsn middle = 1 + r->commits / 2 - r->behind;
    uint32_t *at_middle = bench_xmalloc(VOLUME_PAGES * sizeof *at_middle);
    uint32_t *at_latest = bench_xmalloc(VOLUME_PAGES * sizeof *at_latest);
    workload g = { "commits", NULL, 0, 0, r->zipf ? 0x21BF : 0x0F17 };
    for (uint32_t i = 0; i < r->commits; i++) {
        segidx_offset_set *s = draw_pages(&g, r->zipf, COMMIT_PAGES);
        segidx_lsn lsn = 2 + (segidx_lsn)i;
        commit_both(sides, &vid, lsn, s, (long)i);
        m.now = (uint32_t)lsn;
        segidx_offset_set_iterate(s, mark_written, &m);
        segidx_offset_set_free(s);
        if (lsn == middle)
            memcpy(at_middle, m.lsn, VOLUME_PAGES * sizeof *at_middle);
        if (lsn == latest)
            memcpy(at_latest, m.lsn, VOLUME_PAGES * sizeof *at_latest);
        if (r->progress && (i + 1) % (r->commits / 10) == 0) {
            char what[64];
            snprintf(what, sizeof what, "%u of %u commits", i + 1, r->commits);
            progress(r, what);
        }
    }
    print_build(r, sides);

    /* The queries, at the latest LSN and at the middle one. */
    static const uint32_t sizes[] = { 1, 64, 1024 };
    workload qg = { "queries", NULL, 0, 0, r->zipf ? 0x9A11 : 0x7E57 };
    for (int at = 0; at < 2; at++) {
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            char which[48];
            snprintf(which, sizeof which, "%s %u", at ? "middle" : "latest", sizes[k]);
            progress(r, which);
            /* Single pages walk little on average but with a long tail:
             * more of them. */
            int n = sizes[k] == 1 && r->queries < 40 ? 40 : r->queries;
            struct query_set qs = make_queries(&qg, r->zipf, n, sizes[k], 0);
            measure(r, sides, &vid, at ? middle : latest, at ? at_middle : at_latest, &qs,
                    which);
            query_set_free(&qs);
        }
    }
    static const struct { const char *name; uint32_t off; } holes[] = {
        { "hole inside", HOLE_INSIDE }, { "hole above", HOLE_ABOVE } };
    for (size_t k = 0; k < sizeof holes / sizeof *holes; k++) {
        progress(r, holes[k].name);
        struct query_set qs = make_queries(&qg, r->zipf, r->queries, 0, holes[k].off);
        measure(r, sides, &vid, latest, at_latest, &qs, holes[k].name);
        query_set_free(&qs);
    }

    /* What a replica asks: the pages changed since the middle LSN, and
     * since 100 commits ago. */
    progress(r, "changed");
    measure_changed(r, sides, &vid, middle, latest, at_latest, "since middle");
    measure_changed(r, sides, &vid, latest > 100 ? latest - 100 : 1, latest, at_latest,
                    "last 100");

    free(at_middle);
    free(at_latest);
    free(m.lsn);
    side_close(&sides[0]);
    side_close(&sides[1]);
    rmdir(root);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    segidx_volume_index_options policy = { 0 };
    const char *env = getenv("SEGIDX_BENCH_CKPT");
    if (env && *env) {
        unsigned k, f, l;
        BENCH_CHECK(sscanf(env, "%u,%u,%u", &k, &f, &l) == 3);
        policy.checkpoint_commits = k;
        policy.checkpoint_fanout = f;
        policy.checkpoint_levels = l;
        fprintf(stderr, "bench_checkpoint: policy K=%u F=%u L=%u\n", k, f, l);
    }
    const char *only = getenv("SEGIDX_BENCH_WORKLOAD");
    const char *verbose = getenv("SEGIDX_BENCH_VERBOSE");
    const char *behind_env = getenv("SEGIDX_BENCH_BEHIND");
    uint32_t behind = behind_env ? (uint32_t)strtoul(behind_env, NULL, 10) : 0;
    if (behind)
        fprintf(stderr, "bench_checkpoint: queries %u commits below latest and middle\n",
                behind);

    uint32_t hs[16] = { 1000, 10000 };
    int n_h = 2;
    if (argc > 1) {
        n_h = 0;
        for (int i = 1; i < argc && n_h < 16; i++) {
            char *end;
            errno = 0;
            unsigned long h = strtoul(argv[i], &end, 10);
            BENCH_CHECK(errno == 0 && *end == 0 && h >= 10 && h <= 100000000);
            hs[n_h++] = (uint32_t)h;
        }
    }
    for (int i = 0; i < n_h; i++) {
        BENCH_CHECK(hs[i] / 2 > behind);
        char hname[16];
        bench_count_name(hname, sizeof hname, hs[i]);
        for (int z = 0; z < 2; z++) {
            const char *wname = z ? "zipf" : "uni";
            if (only && *only && strcmp(only, z ? "zipf" : "uniform") != 0)
                continue;
            /* A walk over the whole history costs about 0.1 us an entry:
             * fewer queries as H grows keep each measurement to seconds
             * (and make bench to a few seconds in all). */
            uint32_t queries = hs[i] <= 10000 ? 200000 / hs[i] : 4000000 / hs[i];
            struct run r = { hname, wname, z == 1, hs[i], behind,
                             queries < 8 ? 8 : queries > 40 ? 40 : (int)queries,
                             hs[i] <= 10000 ? 5 : 3, verbose && *verbose == '1',
                             hs[i] >= 100000 };
            one_run(&r, &policy);
        }
    }
    return 0;
}
