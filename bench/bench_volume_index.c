/* Volume index figures (find_segments; the target: store entries read =
 * commits walked until the query empties, no extra scans): one volume in
 * LMDB with 100,000 commits of 1-32 skewed offsets each.
 *
 *   find_segments queries/s for 1024 written offsets at the latest and at
 *   the middle LSN of a volume without checkpoints (the walk), and the
 *   store entries each query read against the commits it had to walk (they
 *   must be equal: no extra scans); commits/s, nosync (that volume) and
 *   durable (with checkpoints, the default), against bare LMDB puts of the
 *   same bytes in the same number of transactions. bench_checkpoint.c has
 *   the reads with checkpoints. */
#include "bench.h"
#include "kv.h"

#include <lmdb.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segidx.h"
#include "segidx_lmdb.h"

enum { COMMITS = 100000, QUERY_OFFSETS = 1024, VOLUME_PAGES = 1 << 16, QUERIES = 200,
       DURABLE_COMMITS = 300 };

/* ------------------------------------------------------------ the workload */

/* Commit i's offsets: 1-32 of them, Zipf-skewed over the volume's pages. */
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
    uint64_t v = i / 64 + 1; /* 64 commits a segment */
    memcpy(sid.bytes, &v, 8);
    return sid;
}

/* ------------------------------------------------------------ commits/s */

/* The same bytes the index writes, as bare LMDB puts in one transaction
 * per commit: the floor any catalog over LMDB can reach. */
static double bare_lmdb_commits(const char *dir, bool nosync, uint32_t commits, uint64_t seed)
{
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    BENCH_CHECK(mdb_env_create(&env) == 0);
    BENCH_CHECK(mdb_env_set_mapsize(env, (size_t)1 << 30) == 0);
    BENCH_CHECK(mdb_env_open(env, dir, MDB_NOTLS | (nosync ? MDB_NOSYNC | MDB_NOMETASYNC : 0),
                             0664) == 0);
    BENCH_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    BENCH_CHECK(mdb_dbi_open(txn, NULL, 0, &dbi) == 0);
    BENCH_CHECK(mdb_txn_commit(txn) == 0);
    bench_rng r = bench_rng_seed(seed);
    uint8_t meta_key[24] = "volumes/", meta[48] = { 0 }, key[49] = "segments/", val[4096];
    uint64_t t = bench_now_ns();
    for (uint32_t i = 0; i < commits; i++) {
        segidx_offset_set *s = commit_offsets(&r);
        size_t n = segidx_offset_set_serialize(s, val, sizeof val);
        segidx_offset_set_free(s);
        memcpy(meta + 8, &i, 4);
        memcpy(key + 33, &i, 4);
        MDB_val mk = { sizeof meta_key, meta_key }, mv = { sizeof meta, meta };
        MDB_val k = { sizeof key, key }, v = { n, val };
        BENCH_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
        BENCH_CHECK(mdb_put(txn, dbi, &mk, &mv, 0) == 0);
        BENCH_CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
        BENCH_CHECK(mdb_txn_commit(txn) == 0);
    }
    double per_s = commits / ((double)(bench_now_ns() - t) / 1e9);
    mdb_env_close(env);
    return per_s;
}

/* The walk's figures: a volume without checkpoints (bench_checkpoint.c
 * measures reads with them). */
static const segidx_volume_index_options walk_only = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };

/* opts NULL: the defaults, checkpoints on. */
static segidx_volume_index *open_index(const char *dir, bool nosync,
                                       const segidx_volume_index_options *opts,
                                       struct bench_counting_kv **count)
{
    segidx_kv kv = bench_lmdb_open(dir, nosync, (size_t)1 << 31);
    struct bench_counting_kv *c = bench_xmalloc(sizeof *c);
    *c = (struct bench_counting_kv){ kv, { 0 } };
    segidx_volume_index *vi;
    BENCH_CHECK(segidx_volume_index_open_with(bench_counting_kv(c), opts, &vi) ==
                SEGIDX_OK);
    *count = c;
    return vi;
}

/* Per offset: the newest commit that wrote it (0: none), as commits go. */
struct last_writes {
    uint32_t *lsn;
    uint32_t now;
};

static int mark_written(segidx_offset o, void *ctx)
{
    struct last_writes *w = ctx;
    w->lsn[o] = w->now;
    return 0;
}

/* Commit `commits` commits (their seed decides their offsets). When `at`
 * is given, at[k] receives each offset's last-write LSN as of commit
 * marks[k]. */
static double index_commits(segidx_volume_index *vi, const segidx_vid *vid, uint32_t commits,
                            uint64_t seed, uint32_t **at, const uint32_t *marks, int n_marks)
{
    bench_rng r = bench_rng_seed(seed);
    struct last_writes lw = { at ? calloc(VOLUME_PAGES, 4) : NULL, 0 };
    uint64_t t = bench_now_ns(), untimed = 0;
    for (uint32_t i = 0; i < commits; i++) {
        segidx_offset_set *s = commit_offsets(&r);
        segidx_commit_segment seg = { sid_of(i), s };
        BENCH_CHECK(segidx_volume_commit(vi, vid, i + 1, i, &seg, 1) == SEGIDX_OK);
        if (at) { /* bookkeeping for the queries, not timed */
            uint64_t u = bench_now_ns();
            lw.now = i + 1;
            segidx_offset_set_iterate(s, mark_written, &lw);
            for (int k = 0; k < n_marks; k++)
                if (marks[k] == i + 1)
                    memcpy(at[k], lw.lsn, VOLUME_PAGES * 4);
            untimed += bench_now_ns() - u;
        }
        segidx_offset_set_free(s);
    }
    free(lw.lsn);
    return commits / ((double)(bench_now_ns() - t - untimed) / 1e9);
}

/* ------------------------------------------------------------ queries */

struct query_set {
    segidx_offset_set *q[QUERIES];
    long walk[QUERIES]; /* entries each must read */
};

/* QUERY_OFFSETS distinct offsets written by `top`, and how far back the
 * oldest of their newest versions lies. */
static void make_queries(struct query_set *qs, const uint32_t *last, uint32_t top, bench_rng *r)
{
    uint32_t written[VOLUME_PAGES], n = 0;
    for (uint32_t o = 0; o < VOLUME_PAGES; o++)
        if (last[o])
            written[n++] = o;
    BENCH_CHECK(n >= QUERY_OFFSETS);
    for (int i = 0; i < QUERIES; i++) {
        bench_rng_shuffle_u32(r, written, n);
        qs->q[i] = segidx_offset_set_new();
        uint32_t oldest = top;
        for (uint32_t k = 0; k < QUERY_OFFSETS; k++) {
            segidx_offset_set_add(qs->q[i], written[k]);
            oldest = last[written[k]] < oldest ? last[written[k]] : oldest;
        }
        /* The commits from top down to the oldest, and one key more,
         * which a walk reads for its order once its query is empty. */
        qs->walk[i] = (long)(top - oldest + 1) + (oldest > 1);
    }
}

static int ignore_cut(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    (void)sid, (void)lsn;
    *(uint64_t *)ctx += segidx_offset_set_cardinality(cut);
    return 0;
}

static void bench_queries(const char *name, segidx_volume_index *vi, struct bench_counting_kv *count,
                          const segidx_vid *vid, uint32_t top, const struct query_set *qs)
{
    long visited = 0, walked = 0;
    uint64_t t = 0;
    for (int i = 0; i < QUERIES; i++) {
        segidx_offset_set *q = segidx_offset_set_copy(qs->q[i]);
        uint64_t found = 0;
        long before = (long)count->n.scan_visits;
        uint64_t t0 = bench_now_ns();
        BENCH_CHECK(segidx_volume_find_segments(vi, vid, top, q, ignore_cut, &found) == 0);
        t += bench_now_ns() - t0;
        BENCH_CHECK(segidx_offset_set_is_empty(q) && found == QUERY_OFFSETS);
        visited += (long)count->n.scan_visits - before;
        walked += qs->walk[i];
        segidx_offset_set_free(q);
    }
    char line[96];
    snprintf(line, sizeof line, "volume.find_segments walk %s", name);
    bench_print(&(struct bench_figure){ .name = line, .value = QUERIES / ((double)t / 1e9),
                                        .unit = "q/s", .better = BENCH_HIGHER_IS_BETTER });
    snprintf(line, sizeof line, "volume.entries_read walk %s", name);
    bench_print(&(struct bench_figure){ .name = line, .value = (double)visited / QUERIES,
                                        .unit = "/query", .baseline = "commits walked + 1",
                                        .baseline_value = (double)walked / QUERIES });
    BENCH_CHECK(visited == walked);
}

int main(void)
{
    segidx_vid vid = { { 0x5E, 0x61 } };
    bench_rng r = bench_rng_seed(7);

    /* 100,000 commits, nosync, then the queries. */
    char *dir = bench_scratch_dir("vi");
    struct bench_counting_kv *count;
    segidx_volume_index *vi = open_index(dir, true, &walk_only, &count);
    uint32_t marks[2] = { COMMITS / 2, COMMITS };
    uint32_t *at[2] = { bench_xmalloc(VOLUME_PAGES * 4), bench_xmalloc(VOLUME_PAGES * 4) };
    double nosync = index_commits(vi, &vid, COMMITS, 1, at, marks, 2);
    struct query_set latest, middle;
    make_queries(&latest, at[1], COMMITS, &r);
    make_queries(&middle, at[0], COMMITS / 2, &r);
    bench_queries("latest", vi, count, &vid, COMMITS, &latest);
    bench_queries("middle", vi, count, &vid, COMMITS / 2, &middle);
    for (int i = 0; i < QUERIES; i++) {
        segidx_offset_set_free(latest.q[i]);
        segidx_offset_set_free(middle.q[i]);
    }
    segidx_volume_index_close(vi);
    free(count);
    bench_scratch_remove(dir);
    free(dir);
    free(at[0]);
    free(at[1]);

    /* Commits/s against bare LMDB, the same number of commits each. */
    dir = bench_scratch_dir("bare");
    double bare_nosync = bare_lmdb_commits(dir, true, COMMITS, 1);
    bench_scratch_remove(dir);
    free(dir);
    bench_print(&(struct bench_figure){ .name = "volume.commit nosync walk", .value = nosync,
                                        .unit = "c/s", .better = BENCH_HIGHER_IS_BETTER,
                                        .baseline = "bare lmdb puts", .baseline_value = bare_nosync });

    dir = bench_scratch_dir("durable");
    vi = open_index(dir, false, NULL, &count);
    double durable = index_commits(vi, &vid, DURABLE_COMMITS, 2, NULL, NULL, 0);
    segidx_volume_index_close(vi);
    free(count);
    bench_scratch_remove(dir);
    free(dir);
    dir = bench_scratch_dir("bare-durable");
    double bare_durable = bare_lmdb_commits(dir, false, DURABLE_COMMITS, 2);
    bench_scratch_remove(dir);
    free(dir);
    bench_print(&(struct bench_figure){ .name = "volume.commit durable", .value = durable,
                                        .unit = "c/s", .better = BENCH_HIGHER_IS_BETTER,
                                        .baseline = "bare lmdb puts", .baseline_value = bare_durable });
    return 0;
}
