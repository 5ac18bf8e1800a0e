/* The volume index over PostgreSQL (libsegidx_pg) against LMDB, in one run:
 * a server of its own on loopback (tests/pgserver.h: fsync off, commits
 * synchronous), LMDB nosync beside it.
 *
 *   commits/s of one volume (1-32 skewed offsets per commit, no
 *   checkpoints: the walk), one committer; the same with 4 threads each
 *   committing to a volume of its own through one store;
 *   find_segments queries/s for 1024 written offsets at the latest LSN
 *   (a long walk: the scan streams page after page) and for 8 offsets the
 *   last 16 commits wrote (a walk that stops early: one short page);
 *   a get of one key (the meta), the round trip's floor.
 *
 * Every figure's baseline is the same work over LMDB. No server found:
 * one "skipped" line and exit 0 (with CI set, a failure). */
#include "bench.h"
#include "kv.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/pgserver.h"
#include "segidx.h"
#include "segidx_pg.h"

enum { COMMITS = 2000, VOLUME_PAGES = 1 << 16, WIDE = 1024, NARROW = 8, NARROW_BACK = 16,
       QUERIES = 40, GETS = 2000, THREADS = 4, THREAD_COMMITS = 300 };

static const segidx_volume_index_options walk_only = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };

/* ------------------------------------------------------------ stores */

struct store {
    const char *name;
    segidx_kv kv;
    char *dir; /* LMDB's, to remove */
};

static void open_pg(struct store *s)
{
    char table[64];
    segidx_kv_pg_options o = { 0 };
    o.table = pgserver_table(table, sizeof table, "bench");
    o.max_connections = THREADS;
    s->name = "pg";
    s->dir = NULL;
    BENCH_CHECK(segidx_kv_pg_open(pgserver_conninfo(), &o, &s->kv) == SEGIDX_OK);
}

static void open_lmdb(struct store *s)
{
    s->name = "lmdb";
    s->dir = bench_scratch_dir("pg-baseline");
    s->kv = bench_lmdb_open(s->dir, true, (size_t)1 << 30);
}

static segidx_volume_index *open_index(struct store *s)
{
    segidx_volume_index *vi;
    BENCH_CHECK(segidx_volume_index_open_with(s->kv, &walk_only, &vi) == SEGIDX_OK);
    return vi;
}

static void close_index(struct store *s, segidx_volume_index *vi)
{
    segidx_volume_index_close(vi);
    if (s->dir) {
        bench_scratch_remove(s->dir);
        free(s->dir);
    }
}

/* ------------------------------------------------------------ commits */

static segidx_offset_set *commit_offsets(bench_rng *r)
{
    segidx_offset_set *s = segidx_offset_set_new();
    for (uint32_t k = 0, n = 1 + bench_rng_below(r, 32); k < n; k++) {
        double x = exp((double)(bench_rng_next(r) >> 11) / 9007199254740992.0 *
                       log((double)VOLUME_PAGES + 1.0)) - 1.0;
        segidx_offset_set_add(s, (uint32_t)x % VOLUME_PAGES);
    }
    return s;
}

static segidx_sid sid_of(uint64_t i)
{
    segidx_sid sid = { { 0 } };
    uint64_t v = i / 64 + 1;
    memcpy(sid.bytes, &v, 8);
    return sid;
}

struct mark {
    uint32_t *last;
    uint32_t lsn;
};

static int mark_written(segidx_offset o, void *ctx)
{
    struct mark *m = ctx;
    m->last[o] = m->lsn;
    return 0;
}

/* Commits 1..n of `vid`; `last`, when given, gets each offset's newest LSN.
 * Commits per second. */
static double commit_run(segidx_volume_index *vi, const segidx_vid *vid, uint32_t n,
                         uint64_t seed, uint32_t *last)
{
    bench_rng r = bench_rng_seed(seed);
    uint64_t t = bench_now_ns(), untimed = 0;
    for (uint32_t i = 0; i < n; i++) {
        segidx_offset_set *s = commit_offsets(&r);
        segidx_commit_segment seg = { sid_of(i), s };
        BENCH_CHECK(segidx_volume_commit(vi, vid, i + 1, i, &seg, 1) == SEGIDX_OK);
        uint64_t u = bench_now_ns();
        struct mark m = { last, i + 1 };
        if (last)
            segidx_offset_set_iterate(s, mark_written, &m);
        untimed += bench_now_ns() - u;
        segidx_offset_set_free(s);
    }
    return n / ((double)(bench_now_ns() - t - untimed) / 1e9);
}

struct committer {
    segidx_volume_index *vi;
    segidx_vid vid;
    double per_s;
    pthread_t tid;
};

static void *committer_main(void *arg)
{
    struct committer *c = arg;
    c->per_s = commit_run(c->vi, &c->vid, THREAD_COMMITS, c->vid.bytes[0], NULL);
    return NULL;
}

/* THREADS committers at once, a volume each: total commits per second. */
static double commit_threads(segidx_volume_index *vi)
{
    struct committer c[THREADS];
    uint64_t t = bench_now_ns();
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct committer){ vi, { { (uint8_t)(0x70 + i), 'T' } }, 0, 0 };
        BENCH_CHECK(pthread_create(&c[i].tid, NULL, committer_main, &c[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++)
        BENCH_CHECK(pthread_join(c[i].tid, NULL) == 0);
    return THREADS * THREAD_COMMITS / ((double)(bench_now_ns() - t) / 1e9);
}

/* ------------------------------------------------------------ queries */

/* `want` offsets written by the commits in (from, top], picked at random. */
static segidx_offset_set *pick(const uint32_t *last, uint32_t from, uint32_t want, bench_rng *r)
{
    uint32_t *written = bench_xmalloc(VOLUME_PAGES * sizeof *written), n = 0;
    for (uint32_t o = 0; o < VOLUME_PAGES; o++)
        if (last[o] > from)
            written[n++] = o;
    BENCH_CHECK(n >= want);
    bench_rng_shuffle_u32(r, written, n);
    segidx_offset_set *q = segidx_offset_set_new();
    for (uint32_t k = 0; k < want; k++)
        segidx_offset_set_add(q, written[k]);
    free(written);
    return q;
}

static int count_cut(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    (void)sid, (void)lsn;
    *(uint64_t *)ctx += segidx_offset_set_cardinality(cut);
    return 0;
}

static double query_run(segidx_volume_index *vi, const segidx_vid *vid,
                        segidx_offset_set *const *qs, uint32_t want)
{
    uint64_t t = 0;
    for (int i = 0; i < QUERIES; i++) {
        segidx_offset_set *q = segidx_offset_set_copy(qs[i]);
        uint64_t found = 0, t0 = bench_now_ns();
        BENCH_CHECK(segidx_volume_find_segments(vi, vid, COMMITS, q, count_cut, &found) == 0);
        t += bench_now_ns() - t0;
        BENCH_CHECK(segidx_offset_set_is_empty(q) && found == want);
        segidx_offset_set_free(q);
    }
    return QUERIES / ((double)t / 1e9);
}

static double get_run(segidx_volume_index *vi, const segidx_vid *vid)
{
    uint64_t t = bench_now_ns();
    for (int i = 0; i < GETS; i++) {
        segidx_volume_meta m;
        BENCH_CHECK(segidx_volume_get(vi, vid, &m) == SEGIDX_OK && m.lsn == COMMITS);
    }
    return GETS / ((double)(bench_now_ns() - t) / 1e9);
}

/* ------------------------------------------------------------ main */

struct results {
    double commits, threaded, wide, narrow, gets;
};

static void run(struct store *s, struct results *out)
{
    const segidx_vid vid = { { 0x5E, 0x61 } };
    segidx_volume_index *vi = open_index(s);
    uint32_t *last = calloc(VOLUME_PAGES, sizeof *last);
    BENCH_CHECK(last != NULL);
    out->commits = commit_run(vi, &vid, COMMITS, 1, last);
    bench_rng r = bench_rng_seed(9);
    segidx_offset_set *wide[QUERIES], *narrow[QUERIES];
    for (int i = 0; i < QUERIES; i++) {
        wide[i] = pick(last, 0, WIDE, &r);
        narrow[i] = pick(last, COMMITS - NARROW_BACK, NARROW, &r);
    }
    out->wide = query_run(vi, &vid, wide, WIDE);
    out->narrow = query_run(vi, &vid, narrow, NARROW);
    out->gets = get_run(vi, &vid);
    out->threaded = commit_threads(vi);
    for (int i = 0; i < QUERIES; i++) {
        segidx_offset_set_free(wide[i]);
        segidx_offset_set_free(narrow[i]);
    }
    free(last);
    close_index(s, vi);
}

static void print(const char *name, double pg, double lmdb, const char *unit)
{
    bench_print(&(struct bench_figure){ .name = name, .value = pg, .unit = unit,
                                        .better = BENCH_HIGHER_IS_BETTER,
                                        .baseline = "lmdb nosync", .baseline_value = lmdb });
}

int main(void)
{
    int code;
    if (!pgserver_main_start(&code))
        return code;
    struct store pg, lmdb;
    struct results p, l;
    open_pg(&pg);
    run(&pg, &p);
    open_lmdb(&lmdb);
    run(&lmdb, &l);
    pgserver_stop(&pgserver_the);
    char line[80];
    print("pg.volume.commit walk", p.commits, l.commits, "c/s");
    snprintf(line, sizeof line, "pg.volume.commit %d threads", THREADS);
    print(line, p.threaded, l.threaded, "c/s");
    snprintf(line, sizeof line, "pg.volume.find_segments %d offsets", WIDE);
    print(line, p.wide, l.wide, "q/s");
    snprintf(line, sizeof line, "pg.volume.find_segments %d recent", NARROW);
    print(line, p.narrow, l.narrow, "q/s");
    print("pg.volume.get", p.gets, l.gets, "op/s");
    return 0;
}
