/* The volume index against a brute-force model: commits, find_segments and
 * prune; errors that change nothing; a store that fails; corrupt values;
 * concurrent commits. Over the in-memory store, or over LMDB when built
 * with VOLUME_INDEX_OVER_LMDB (tests/test_lmdb_volume_index.c), or over
 * PostgreSQL when built with VOLUME_INDEX_OVER_PG
 * (tests/test_pg_volume_index.c: a server of its own, a table per store). */
#include "vitest.h"

#ifdef VOLUME_INDEX_OVER_LMDB
#include "segidx_lmdb.h"

#include <unistd.h>

/* A fresh LMDB store in its own temporary directory, which its close
 * removes: the index owns the store, so the wrapper owns the directory. */
struct lmdb_scratch {
    segidx_kv inner;
    char dir[64];
};

static int scratch_get(void *self, const void *k, size_t kl, segidx_kv_visit_fn fn, void *ctx)
{
    struct lmdb_scratch *s = self;
    return s->inner.vt->get(s->inner.self, k, kl, fn, ctx);
}

static int scratch_scan(void *self, const void *lo, size_t lol, const void *hi, size_t hil,
                        bool rev, segidx_kv_visit_fn fn, void *ctx)
{
    struct lmdb_scratch *s = self;
    return s->inner.vt->scan(s->inner.self, lo, lol, hi, hil, rev, fn, ctx);
}

static int scratch_write(void *self, const segidx_kv_op *ops, size_t n)
{
    struct lmdb_scratch *s = self;
    return s->inner.vt->write(s->inner.self, ops, n);
}

static void scratch_close(void *self)
{
    struct lmdb_scratch *s = self;
    s->inner.vt->close(s->inner.self);
    char path[96];
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", s->dir);
    unlink(path);
    assert_int_equal(rmdir(s->dir), 0);
    free(s);
}

static const segidx_kv_vtable scratch_vt = { SEGIDX_KV_VTABLE_VERSION, scratch_get, scratch_scan,
                                             scratch_write, scratch_close };

static int open_test_store(segidx_kv *out)
{
    struct lmdb_scratch *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->dir, sizeof s->dir, "/tmp/segidx-vi-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = true; /* durability has its own test: the crash trials */
    o.map_size = (size_t)64 << 20;
    assert_int_equal(segidx_kv_lmdb_open(s->dir, &o, &s->inner), SEGIDX_OK);
    *out = (segidx_kv){ &scratch_vt, s };
    return SEGIDX_OK;
}
#elif defined(VOLUME_INDEX_OVER_PG)
#include "pgserver.h"
#include "segidx_pg.h"

/* A fresh table on the test's server; the wrapper keeps its name for the
 * other process of the races. */
struct pg_scratch {
    segidx_kv inner;
    char table[64];
};

static int scratch_get(void *self, const void *k, size_t kl, segidx_kv_visit_fn fn, void *ctx)
{
    struct pg_scratch *s = self;
    return s->inner.vt->get(s->inner.self, k, kl, fn, ctx);
}

static int scratch_scan(void *self, const void *lo, size_t lol, const void *hi, size_t hil,
                        bool rev, segidx_kv_visit_fn fn, void *ctx)
{
    struct pg_scratch *s = self;
    return s->inner.vt->scan(s->inner.self, lo, lol, hi, hil, rev, fn, ctx);
}

static int scratch_write(void *self, const segidx_kv_op *ops, size_t n)
{
    struct pg_scratch *s = self;
    return s->inner.vt->write(s->inner.self, ops, n);
}

static void scratch_close(void *self)
{
    struct pg_scratch *s = self;
    s->inner.vt->close(s->inner.self);
    free(s);
}

static const segidx_kv_vtable scratch_vt = { SEGIDX_KV_VTABLE_VERSION, scratch_get, scratch_scan,
                                             scratch_write, scratch_close };

static int open_pg_table(const char *table, segidx_kv *out)
{
    segidx_kv_pg_options o = { 0 };
    o.table = table;
    return segidx_kv_pg_open(pgserver_conninfo(), &o, out);
}

static int open_test_store(segidx_kv *out)
{
    struct pg_scratch *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pgserver_table(s->table, sizeof s->table, "vi");
    assert_int_equal(open_pg_table(s->table, &s->inner), SEGIDX_OK);
    *out = (segidx_kv){ &scratch_vt, s };
    return SEGIDX_OK;
}
#else
static int open_test_store(segidx_kv *out)
{
    return segidx_kv_mem_open(out);
}
#endif

#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
#include <pthread.h>
#endif

/* Offsets come from a small universe, so commits overlap and shadow each
 * other, plus the edges. */
#define UNIVERSE 300u
static const uint32_t edge_offsets[] = { 0, 1u << 31, UINT32_MAX };

typedef struct fixture {
    segidx_volume_index *vi;
    stub_kv *stub;
    segidx_kv raw; /* the store under the stub, for dumps and planting */
    test_rng rng;
} fixture;

/* These tests count the walk's store calls and entries exactly, so their
 * volumes keep to the walk: no checkpoints (test_checkpoint.c has those). */
static const segidx_volume_index_options walk_only = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };

static void fixture_open(fixture *f, uint64_t seed)
{
    segidx_kv mem;
    assert_int_equal(open_test_store(&mem), SEGIDX_OK);
    f->raw = mem;
    segidx_kv kv = stub_wrap(mem, &f->stub);
    assert_int_equal(segidx_volume_index_open_with(kv, &walk_only, &f->vi), SEGIDX_OK);
    f->rng = (test_rng){ seed };
}

static void fixture_close(fixture *f)
{
    segidx_volume_index_close(f->vi);
}

static segidx_vid random_vid(test_rng *r)
{
    segidx_vid v;
    for (int i = 0; i < 16; i++)
        v.bytes[i] = (uint8_t)rng_next(r);
    return v;
}

static uint32_t random_offset(test_rng *r)
{
    if (rng_below(r, 20) == 0)
        return edge_offsets[rng_below(r, 3)];
    return (uint32_t)rng_below(r, UNIVERSE);
}

/* A random commit: 0..3 segments, disjoint offsets, sids from a small pool
 * (a segment holds many commits). */
static void random_commit(test_rng *r, model_commit *c, segidx_lsn lsn)
{
    memset(c, 0, sizeof *c);
    c->lsn = lsn;
    c->n = rng_below(r, 5) == 0 ? 0 : 1 + rng_below(r, MODEL_MAX_SEGS);
    for (size_t i = 0; i < c->n; i++) {
        c->segs[i].offsets = segidx_offset_set_new();
        bool distinct;
        do {
            memset(c->segs[i].sid.bytes, 0, 16);
            c->segs[i].sid.bytes[15] = (uint8_t)(1 + rng_below(r, 12));
            distinct = true;
            for (size_t j = 0; j < i; j++)
                distinct &= memcmp(c->segs[j].sid.bytes, c->segs[i].sid.bytes, 16) != 0;
        } while (!distinct);
    }
    for (uint32_t k = 0, n = (uint32_t)rng_below(r, 40); k < n && c->n; k++) {
        uint32_t off = random_offset(r);
        bool taken = false;
        for (size_t i = 0; i < c->n; i++)
            taken |= segidx_offset_set_contains(c->segs[i].offsets, off);
        if (!taken)
            segidx_offset_set_add(c->segs[rng_below(r, c->n)].offsets, off);
    }
    /* No empty segment: give each at least one offset of its own. */
    for (size_t i = 0; i < c->n; i++)
        if (segidx_offset_set_is_empty(c->segs[i].offsets))
            segidx_offset_set_add(c->segs[i].offsets, UNIVERSE + 1000 * (uint32_t)lsn + (uint32_t)i);
}

static int commit_model(segidx_volume_index *vi, model_volume *v, const model_commit *c,
                        uint64_t time)
{
    segidx_commit_segment segs[MODEL_MAX_SEGS];
    for (size_t i = 0; i < c->n; i++)
        segs[i] = (segidx_commit_segment){ c->segs[i].sid, c->segs[i].offsets };
    return segidx_volume_commit(vi, &v->vid, c->lsn, time, segs, c->n);
}

static void model_append(model_volume *v, const model_commit *c)
{
    v->commits = realloc(v->commits, (v->n + 1) * sizeof *v->commits);
    assert_non_null(v->commits);
    v->commits[v->n++] = *c;
}

/* Commit `count` random commits to the volume, checking the meta. */
static void grow_volume(fixture *f, model_volume *v, size_t count)
{
    for (size_t k = 0; k < count; k++) {
        model_commit c;
        random_commit(&f->rng, &c, v->n + 1);
        uint64_t time = 1000 + v->n;
        assert_int_equal(commit_model(f->vi, v, &c, time), SEGIDX_OK);
        model_append(v, &c);
        segidx_volume_meta m;
        assert_int_equal(segidx_volume_get(f->vi, &v->vid, &m), SEGIDX_OK);
        assert_int_equal(m.lsn, v->n);
        assert_int_equal(m.last_commit, time);
        uint32_t last = 0;
        for (size_t i = 0; i < v->n; i++)
            for (size_t j = 0; j < v->commits[i].n; j++) {
                segidx_offset_set *o = v->commits[i].segs[j].offsets;
                uint64_t card = segidx_offset_set_cardinality(o);
                for (uint32_t e = 0; e < 3; e++)
                    if (segidx_offset_set_contains(o, edge_offsets[e]) && edge_offsets[e] > last)
                        last = edge_offsets[e];
                for (uint32_t x = 0; x < UNIVERSE + 1000 * (uint32_t)v->n + 8 && card; x++)
                    if (segidx_offset_set_contains(o, x) && x > last)
                        last = x;
            }
        assert_int_equal(m.last_offset, last);
    }
}

static segidx_offset_set *random_query(test_rng *r)
{
    segidx_offset_set *q = segidx_offset_set_new();
    if (rng_below(r, 3) == 0) {
        segidx_offset_set_add_range(q, 0, UNIVERSE);
    } else {
        for (int i = 0, n = 1 + (int)rng_below(r, 60); i < n; i++)
            segidx_offset_set_add(q, random_offset(r));
    }
    if (rng_below(r, 2)) /* half the queries can never empty */
        segidx_offset_set_add(q, UNIVERSE + 999999);
    return q;
}

/* find_segments and the model agree on the visits, the final query and the
 * number of store entries read. */
static void check_find(fixture *f, const model_volume *v, segidx_lsn lsn, segidx_offset_set *q)
{
    segidx_offset_set *mq = segidx_offset_set_copy(q);
    found_list got = { NULL, 0, 0, -1, 0 }, want = { NULL, 0, 0, -1, 0 };
    model_find(v, lsn, mq, &want);
    long visited = f->stub->visited;
    assert_int_equal(segidx_volume_find_segments(f->vi, &v->vid, lsn, q, collect_found, &got),
                     SEGIDX_OK);
    assert_found_equal(&got, &want);
    assert_true(segidx_offset_set_equals(q, mq));
    /* A walk whose query empties reads one key more, for its order. */
    long read = f->stub->visited - visited;
    assert_true(read == want.walked ||
                (segidx_offset_set_is_empty(mq) && read == want.walked + 1));
    found_list_free(&got);
    found_list_free(&want);
    segidx_offset_set_free(mq);
}

static void test_random_against_model(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, 1);
    model_volume vols[4] = { 0 };
    for (int i = 0; i < 4; i++)
        vols[i].vid = random_vid(&f.rng);
    memset(vols[0].vid.bytes, 0x00, 16); /* the key-range edges */
    memset(vols[1].vid.bytes, 0xFF, 16);
    for (long round = 0; round < test_scaled(40); round++) {
        /* Each volume first, so that a short run knows all four too. */
        model_volume *v = &vols[round < 4 ? round : (long)rng_below(&f.rng, 4)];
        grow_volume(&f, v, 1 + rng_below(&f.rng, 3));
        for (int q = 0; q < 10; q++) {
            segidx_offset_set *query = random_query(&f.rng);
            check_find(&f, v, rng_below(&f.rng, v->n + 3), query);
            segidx_offset_set_free(query);
        }
    }
    /* Every volume listed once, in vid order, with its meta. */
    for (int i = 0; i < 4; i++) {
        segidx_offset_set *query = random_query(&f.rng);
        check_find(&f, &vols[i], UINT64_MAX, query);
        segidx_offset_set_free(query);
        model_volume_free(&vols[i]);
    }
    fixture_close(&f);
}

static void test_unknown_volume_and_empty_query(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, 2);
    segidx_vid vid = random_vid(&f.rng);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(f.vi, &vid, &m), SEGIDX_ENOTFOUND);
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add(q, 5);
    found_list got = { NULL, 0, 0, -1, 0 };
    assert_int_equal(segidx_volume_find_segments(f.vi, &vid, 1, q, collect_found, &got),
                     SEGIDX_ENOTFOUND);
    assert_int_equal(segidx_offset_set_cardinality(q), 1);
    /* An empty commit makes the volume, with nothing written. */
    assert_int_equal(segidx_volume_commit(f.vi, &vid, 1, 7, NULL, 0), SEGIDX_OK);
    assert_int_equal(segidx_volume_get(f.vi, &vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 1);
    assert_int_equal(m.last_offset, 0);
    assert_int_equal(m.last_commit, 7);
    long scans = f.stub->scans;
    assert_int_equal(segidx_volume_find_segments(f.vi, &vid, 1, q, collect_found, &got), 0);
    assert_int_equal(segidx_offset_set_cardinality(q), 1); /* never written */
    segidx_offset_set *empty = segidx_offset_set_new();
    assert_int_equal(segidx_volume_find_segments(f.vi, &vid, 1, empty, collect_found, &got), 0);
    assert_int_equal(segidx_volume_find_segments(f.vi, &vid, 0, q, collect_found, &got), 0);
    assert_int_equal(f.stub->scans - scans, 1); /* empty query, lsn 0: no scan */
    assert_int_equal(got.n, 0);
    segidx_offset_set_free(empty);
    segidx_offset_set_free(q);
    fixture_close(&f);
}

/* fn's non-zero return stops the walk and comes back; the query keeps what
 * was cut before the stop. */
static void test_callback_stops(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, 3);
    model_volume v = { 0 };
    v.vid = random_vid(&f.rng);
    for (segidx_lsn lsn = 1; lsn <= 5; lsn++) {
        model_commit c = { lsn, { { { { 0 } }, segidx_offset_set_new() } }, 1 };
        c.segs[0].sid.bytes[0] = (uint8_t)lsn;
        segidx_offset_set_add(c.segs[0].offsets, (uint32_t)lsn);
        assert_int_equal(commit_model(f.vi, &v, &c, 0), SEGIDX_OK);
        model_append(&v, &c);
    }
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add_range(q, 0, 10);
    found_list got = { NULL, 0, 0, 2, 0 };
    assert_int_equal(segidx_volume_find_segments(f.vi, &v.vid, 5, q, collect_found, &got), 99);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.f[0].lsn, 5);
    assert_int_equal(got.f[1].lsn, 4);
    /* The walk ends before the first call: the query lost what all five
     * commits wrote, whatever the callback said. */
    assert_int_equal(segidx_offset_set_cardinality(q), 5);
    found_list_free(&got);
    segidx_offset_set_free(q);
    model_volume_free(&v);
    fixture_close(&f);
}

/* ------------------------------------------------------------ commit errors */

static void test_commit_errors_change_nothing(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, 4);
    model_volume v = { 0 };
    v.vid = random_vid(&f.rng);
    grow_volume(&f, &v, 3);
    dump before = dump_store(f.raw);

    segidx_offset_set *a = segidx_offset_set_new(), *b = segidx_offset_set_new(),
                      *e = segidx_offset_set_new();
    segidx_offset_set_add_range(a, 0, 10);
    segidx_offset_set_add_range(b, 9, 20);
    segidx_sid s1 = { { 1 } }, s2 = { { 2 } }, zero = { { 0 } };
    segidx_commit_segment overlap[] = { { s1, a }, { s2, b } };
    segidx_commit_segment same_sid[] = { { s1, a }, { s1, e } };
    segidx_commit_segment zero_sid[] = { { zero, a } };
    segidx_commit_segment empty[] = { { s1, e } };
    segidx_commit_segment null_set[] = { { s1, NULL } };
    segidx_commit_segment ok[] = { { s1, a } };
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 4, 0, overlap, 2), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 4, 0, same_sid, 2), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 4, 0, zero_sid, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 4, 0, empty, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 4, 0, null_set, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 4, 0, NULL, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 3, 0, ok, 1), SEGIDX_ECONFLICT);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 5, 0, ok, 1), SEGIDX_ECONFLICT);
    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 0, 0, ok, 1), SEGIDX_ECONFLICT);
    segidx_vid other = random_vid(&f.rng);
    assert_int_equal(segidx_volume_commit(f.vi, &other, 2, 0, ok, 1), SEGIDX_ECONFLICT);
    dump after = dump_store(f.raw);
    assert_dumps_equal(&before, &after);

    assert_int_equal(segidx_volume_commit(f.vi, &v.vid, 4, 0, ok, 1), SEGIDX_OK);
    free(before.p);
    free(after.p);
    segidx_offset_set_free(a);
    segidx_offset_set_free(b);
    segidx_offset_set_free(e);
    model_volume_free(&v);
    fixture_close(&f);
}

#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
struct racer {
    segidx_volume_index *vi;
    const segidx_vid *vid;
    segidx_lsn lsn;
    pthread_barrier_t *start;
    int rc;
};

static void *race_commit(void *p)
{
    struct racer *r = p;
    segidx_offset_set *s = segidx_offset_set_new();
    segidx_offset_set_add(s, (uint32_t)r->lsn);
    segidx_commit_segment seg = { { { 7 } }, s };
    pthread_barrier_wait(r->start);
    r->rc = segidx_volume_commit(r->vi, r->vid, r->lsn, 0, &seg, 1);
    segidx_offset_set_free(s);
    return NULL;
}

/* Eight threads commit the same LSN: exactly one wins. */
static void test_concurrent_commits_one_wins(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, 5);
    segidx_vid vid = random_vid(&f.rng);
    enum { THREADS = 8 };
    const segidx_lsn last = (segidx_lsn)test_scaled_threads(40);
    for (segidx_lsn lsn = 1; lsn <= last; lsn++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, THREADS);
        pthread_t t[THREADS];
        struct racer r[THREADS];
        for (int i = 0; i < THREADS; i++) {
            r[i] = (struct racer){ f.vi, &vid, lsn, &start, 0 };
            assert_int_equal(pthread_create(&t[i], NULL, race_commit, &r[i]), 0);
        }
        int wins = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            assert_true(r[i].rc == SEGIDX_OK || r[i].rc == SEGIDX_ECONFLICT);
            wins += r[i].rc == SEGIDX_OK;
        }
        pthread_barrier_destroy(&start);
        assert_int_equal(wins, 1);
    }
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(f.vi, &vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, last);
    fixture_close(&f);
}
#endif

/* ------------------------------------------------------------ prune */

struct sid_list {
    segidx_sid s[256];
    size_t n;
};

static void note_sid(void *ctx, const segidx_sid *sid)
{
    struct sid_list *l = ctx;
    for (size_t i = 0; i < l->n; i++)
        assert_memory_not_equal(l->s[i].bytes, sid->bytes, 16); /* once each */
    assert_true(l->n < 256);
    l->s[l->n++] = *sid;
}

static int note_commit_sid(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                           const segidx_offset_set *offsets)
{
    (void)lsn;
    assert_false(segidx_offset_set_is_empty(offsets));
    struct sid_list *l = ctx;
    for (size_t i = 0; i < l->n; i++)
        if (!memcmp(l->s[i].bytes, sid->bytes, 16))
            return 0;
    l->s[l->n++] = *sid;
    return 0;
}

static bool sid_in(const struct sid_list *l, const segidx_sid *sid)
{
    for (size_t i = 0; i < l->n; i++)
        if (!memcmp(l->s[i].bytes, sid->bytes, 16))
            return true;
    return false;
}

/* After a prune, each entry below keep_from holds exactly what no commit
 * in (its lsn, keep_from] rewrote, and entries left empty are gone. */
struct pruned_check {
    const model_volume *v;
    segidx_lsn keep_from;
    size_t entries_below;
};

static int check_pruned_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                              const segidx_offset_set *offsets)
{
    struct pruned_check *c = ctx;
    if (lsn >= c->keep_from)
        return 0;
    c->entries_below++;
    const model_commit *mc = &c->v->commits[lsn - 1];
    size_t i = 0;
    while (i < mc->n && memcmp(mc->segs[i].sid.bytes, sid->bytes, 16))
        i++;
    assert_true(i < mc->n);
    segidx_offset_set *want = segidx_offset_set_copy(mc->segs[i].offsets);
    for (segidx_lsn l = lsn + 1; l <= c->keep_from; l++)
        for (size_t j = 0; j < c->v->commits[l - 1].n; j++)
            segidx_offset_set_free(segidx_offset_set_cut(want, c->v->commits[l - 1].segs[j].offsets));
    assert_true(segidx_offset_set_equals(offsets, want));
    segidx_offset_set_free(want);
    return 0;
}

static size_t model_entries_left_below(const model_volume *v, segidx_lsn keep_from)
{
    size_t n = 0;
    for (segidx_lsn lsn = 1; lsn < keep_from; lsn++)
        for (size_t i = 0; i < v->commits[lsn - 1].n; i++) {
            segidx_offset_set *left = segidx_offset_set_copy(v->commits[lsn - 1].segs[i].offsets);
            for (segidx_lsn l = lsn + 1; l <= keep_from; l++)
                for (size_t j = 0; j < v->commits[l - 1].n; j++)
                    segidx_offset_set_free(segidx_offset_set_cut(left, v->commits[l - 1].segs[j].offsets));
            n += !segidx_offset_set_is_empty(left);
            segidx_offset_set_free(left);
        }
    return n;
}

/* Reads at every LSN from keep_from on, recorded before the prune. */
struct reads {
    found_list at[64];
    segidx_offset_set *left[64];
    segidx_offset_set *query;
};

static void test_prune_keeps_reads(void **state)
{
    (void)state;
    for (uint64_t seed = 10; seed < 10 + (uint64_t)test_scaled(12); seed++) {
        fixture f;
        fixture_open(&f, seed);
        model_volume v = { 0 };
        v.vid = random_vid(&f.rng);
        grow_volume(&f, &v, 20 + rng_below(&f.rng, 30));
        segidx_lsn keep_from = 1 + rng_below(&f.rng, v.n);
        struct reads r;
        r.query = random_query(&f.rng);
        segidx_lsn top = v.n + 1;
        for (segidx_lsn l = keep_from; l <= top; l++) {
            r.left[l - keep_from] = segidx_offset_set_copy(r.query);
            r.at[l - keep_from] = (found_list){ NULL, 0, 0, -1, 0 };
            assert_int_equal(segidx_volume_find_segments(f.vi, &v.vid, l, r.left[l - keep_from],
                                                         collect_found, &r.at[l - keep_from]),
                             0);
        }
        struct sid_list before = { .n = 0 }, after = { .n = 0 }, reported = { .n = 0 };
        assert_int_equal(segidx_volume_commits(f.vi, &v.vid, note_commit_sid, &before), 0);
        assert_int_equal(segidx_volume_prune_report(f.vi, &v.vid, keep_from, note_sid, &reported),
                         SEGIDX_OK);
        assert_int_equal(segidx_volume_commits(f.vi, &v.vid, note_commit_sid, &after), 0);
        struct pruned_check pc = { &v, keep_from, 0 };
        assert_int_equal(segidx_volume_commits(f.vi, &v.vid, check_pruned_entry, &pc), 0);
        assert_int_equal(pc.entries_below, model_entries_left_below(&v, keep_from));

        for (segidx_lsn l = keep_from; l <= top; l++) {
            segidx_offset_set *q = segidx_offset_set_copy(r.query);
            found_list got = { NULL, 0, 0, -1, 0 };
            assert_int_equal(segidx_volume_find_segments(f.vi, &v.vid, l, q, collect_found, &got),
                             0);
            assert_found_equal(&got, &r.at[l - keep_from]);
            assert_true(segidx_offset_set_equals(q, r.left[l - keep_from]));
            found_list_free(&got);
            found_list_free(&r.at[l - keep_from]);
            segidx_offset_set_free(r.left[l - keep_from]);
            segidx_offset_set_free(q);
        }
        if (keep_from > 1) {
            found_list none = { NULL, 0, 0, -1, 0 };
            assert_int_equal(segidx_volume_find_segments(f.vi, &v.vid, keep_from - 1, r.query,
                                                         collect_found, &none),
                             SEGIDX_ERANGE);
        }
        /* Reported: exactly the sids referenced before and not after. */
        for (size_t i = 0; i < before.n; i++)
            assert_int_equal(sid_in(&reported, &before.s[i]), !sid_in(&after, &before.s[i]));
        assert_true(reported.n + after.n == before.n);

        segidx_volume_meta m;
        assert_int_equal(segidx_volume_get(f.vi, &v.vid, &m), SEGIDX_OK);
        assert_int_equal(m.keep_from, keep_from);
        /* Pruning less changes nothing; pruning the future is refused. */
        dump d1 = dump_store(f.raw);
        assert_int_equal(segidx_volume_prune(f.vi, &v.vid, keep_from - 1), SEGIDX_OK);
        assert_int_equal(segidx_volume_prune(f.vi, &v.vid, v.n + 1), SEGIDX_EINVAL);
        dump d2 = dump_store(f.raw);
        assert_dumps_equal(&d1, &d2);
        free(d1.p);
        free(d2.p);
        segidx_offset_set_free(r.query);
        model_volume_free(&v);
        fixture_close(&f);
    }
}

/* ------------------------------------------------------------ failing store */

enum call { CALL_COMMIT, CALL_FIND, CALL_PRUNE, CALL_GET, CALL_LIST, CALL_COMMITS, CALLS };

static int count_volume(void *ctx, const segidx_vid *vid, const segidx_volume_meta *m)
{
    (void)vid, (void)m;
    ++*(int *)ctx;
    return 0;
}

static int ignore_commit(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                         const segidx_offset_set *offsets)
{
    (void)ctx, (void)lsn, (void)sid, (void)offsets;
    return 0;
}

static int run_call(fixture *f, model_volume *v, enum call call, segidx_offset_set *q)
{
    found_list got = { NULL, 0, 0, -1, 0 };
    segidx_volume_meta m;
    int n = 0, rc;
    switch (call) {
    case CALL_COMMIT: {
        model_commit c;
        random_commit(&f->rng, &c, v->n + 1);
        rc = commit_model(f->vi, v, &c, 5);
        if (rc == SEGIDX_OK)
            model_append(v, &c);
        else
            for (size_t i = 0; i < c.n; i++)
                segidx_offset_set_free(c.segs[i].offsets);
        return rc;
    }
    case CALL_FIND:
        rc = segidx_volume_find_segments(f->vi, &v->vid, v->n, q, collect_found, &got);
        found_list_free(&got);
        return rc;
    case CALL_PRUNE: return segidx_volume_prune(f->vi, &v->vid, v->n / 2 + 1);
    case CALL_GET: return segidx_volume_get(f->vi, &v->vid, &m);
    case CALL_LIST: return segidx_volume_list(f->vi, count_volume, &n);
    default: return segidx_volume_commits(f->vi, &v->vid, ignore_commit, NULL);
    }
}

/* Each public call, with each store method failing at each of its calls:
 * the error comes back, the store and the query are as they were. */
static void test_failing_store_changes_nothing(void **state)
{
    (void)state;
    for (int call = 0; call < CALLS; call++)
        for (int method = 0; method < 3; method++)
            for (long at = 1;; at++) {
                fixture f;
                fixture_open(&f, 100 + (uint64_t)call);
                model_volume v = { 0 };
                v.vid = random_vid(&f.rng);
                grow_volume(&f, &v, 12);
                segidx_offset_set *q = segidx_offset_set_new();
                segidx_offset_set_add_range(q, 0, UNIVERSE);
                segidx_offset_set *q0 = segidx_offset_set_copy(q);
                dump before = dump_store(f.raw);
                long *fail = method == 0 ? &f.stub->fail_get_at
                           : method == 1 ? &f.stub->fail_scan_at : &f.stub->fail_write_at;
                *fail = at;
                int rc = run_call(&f, &v, (enum call)call, q);
                bool failed = *fail == 0;
                *fail = 0;
                if (failed) {
                    assert_int_equal(rc, SEGIDX_EIO);
                    dump after = dump_store(f.raw);
                    assert_dumps_equal(&before, &after);
                    free(after.p);
                    assert_true(segidx_offset_set_equals(q, q0));
                } else {
                    assert_int_equal(rc, SEGIDX_OK);
                }
                free(before.p);
                segidx_offset_set_free(q);
                segidx_offset_set_free(q0);
                model_volume_free(&v);
                fixture_close(&f);
                if (!failed)
                    break; /* the call made fewer than `at` such calls */
            }
}

/* ------------------------------------------------------------ corrupt values */

static void plant(fixture *f, const void *key, size_t klen, const void *val, size_t vlen)
{
    segidx_kv_op op = { SEGIDX_KV_PUT, key, klen, val, vlen };
    assert_int_equal(f->raw.vt->write(f->raw.self, &op, 1), SEGIDX_OK);
}

struct first_value {
    uint8_t key[64], val[4096];
    size_t klen, vlen;
};

static int keep_first(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct first_value *fv = ctx;
    assert_true(klen <= sizeof fv->key && vlen <= sizeof fv->val);
    memcpy(fv->key, key, klen);
    memcpy(fv->val, val, vlen);
    fv->klen = klen;
    fv->vlen = vlen;
    return 1;
}

/* `walks_read_it`: the bad value lies where find_segments, commits and
 * prune look (an entry above the volume's LSN does not: every walk stops
 * at the LSN its meta names). */
static void assert_reads_corrupt(fixture *f, model_volume *v, bool meta_too, bool walks_read_it)
{
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add_range(q, 0, UNIVERSE);
    found_list got = { NULL, 0, 0, -1, 0 };
    int rc = segidx_volume_find_segments(f->vi, &v->vid, v->n, q, collect_found, &got);
    if (walks_read_it)
        assert_true(rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION);
    else
        assert_int_equal(rc, SEGIDX_OK);
    found_list_free(&got);
    rc = segidx_volume_commits(f->vi, &v->vid, ignore_commit, NULL);
    if (walks_read_it)
        assert_true(rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION);
    else
        assert_int_equal(rc, SEGIDX_OK);
    rc = segidx_volume_prune(f->vi, &v->vid, v->n);
    if (walks_read_it)
        assert_true(rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION);
    else
        assert_int_equal(rc, SEGIDX_OK);
    if (meta_too) {
        segidx_volume_meta m;
        rc = segidx_volume_get(f->vi, &v->vid, &m);
        assert_true(rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION);
        int n = 0;
        rc = segidx_volume_list(f->vi, count_volume, &n);
        assert_true(rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION);
    }
    segidx_offset_set_free(q);
}

static void test_corrupt_values(void **state)
{
    (void)state;
    for (int kind = 0; kind < 6; kind++) {
        fixture f;
        fixture_open(&f, 200 + (uint64_t)kind);
        model_volume v = { 0 };
        v.vid = random_vid(&f.rng);
        do { /* until the newest commit has an entry */
            grow_volume(&f, &v, 1);
        } while (v.commits[v.n - 1].n == 0);
        uint8_t mkey[24];
        memcpy(mkey, "volumes/", 8);
        memcpy(mkey + 8, v.vid.bytes, 16);
        struct first_value fv;
        uint8_t lo[25];
        memcpy(lo, "segments/", 9);
        memcpy(lo + 9, v.vid.bytes, 16);
        uint8_t hi[50]; /* past every key of this volume's commits */
        memcpy(hi, lo, sizeof lo);
        memset(hi + sizeof lo, 0xFF, sizeof hi - sizeof lo);
        assert_int_equal(f.raw.vt->scan(f.raw.self, lo, sizeof lo, hi, sizeof hi, true,
                                        keep_first, &fv),
                         1);
        assert_int_equal(fv.klen, 49); /* the newest commit's entry */
        switch (kind) {
        case 0: { /* a flipped byte in the meta */
            struct first_value m;
            f.raw.vt->get(f.raw.self, mkey, sizeof mkey, keep_first, &m);
            m.val[9] ^= 1;
            plant(&f, mkey, sizeof mkey, m.val, m.vlen);
            break;
        }
        case 1: /* a short meta */
            plant(&f, mkey, sizeof mkey, "SXVM", 4);
            break;
        case 2: /* a flipped byte in the newest entry's offsets */
            fv.val[fv.vlen - 1] ^= 0x10;
            plant(&f, fv.key, fv.klen, fv.val, fv.vlen);
            break;
        case 3: /* a key of the wrong length under the volume's prefix */
            plant(&f, fv.key, fv.klen - 1, fv.val, fv.vlen);
            break;
        case 4: /* an entry above the volume's LSN */
            fv.key[9 + 16 + 7] = 0xFF;
            plant(&f, fv.key, fv.klen, fv.val, fv.vlen);
            break;
        default: { /* an entry that holds no offset */
            segidx_offset_set *e = segidx_offset_set_new();
            uint8_t buf[64];
            size_t n = segidx_offset_set_serialize(e, buf, sizeof buf);
            plant(&f, fv.key, fv.klen, buf, n);
            segidx_offset_set_free(e);
        }
        }
        assert_reads_corrupt(&f, &v, kind < 2, kind != 4);
        model_volume_free(&v);
        fixture_close(&f);
    }
}

/* A meta of a later version, longer than this build's: EVERSION, not
 * ECORRUPT, from every call that reads it. */
static void test_meta_of_a_later_version(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, 300);
    model_volume v = { 0 };
    v.vid = random_vid(&f.rng);
    grow_volume(&f, &v, 3);
    uint8_t mkey[24];
    memcpy(mkey, "volumes/", 8);
    memcpy(mkey + 8, v.vid.bytes, 16);
    struct first_value m;
    assert_int_equal(f.raw.vt->get(f.raw.self, mkey, sizeof mkey, keep_first, &m), 1);
    m.val[4] = 3; /* version 3 */
    memset(m.val + m.vlen, 0, 16);
    plant(&f, mkey, sizeof mkey, m.val, m.vlen + 16);
    segidx_volume_meta meta;
    assert_int_equal(segidx_volume_get(f.vi, &v.vid, &meta), SEGIDX_EVERSION);
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add_range(q, 0, UNIVERSE);
    found_list got = { NULL, 0, 0, -1, 0 };
    assert_int_equal(segidx_volume_find_segments(f.vi, &v.vid, v.n, q, collect_found, &got),
                     SEGIDX_EVERSION);
    found_list_free(&got);
    segidx_offset_set_free(q);
    model_volume_free(&v);
    fixture_close(&f);
}

/* ------------------------------------------------------------ races
 *
 * Each race is run on purpose, at every point: the stub runs another
 * writer's operation just before call k of the operation under test, for
 * every k, and the outcome must be exact at each. The other writer is
 * another process for LMDB and PostgreSQL (a child that opens the same
 * directory or table, as a second host would) and another index over the
 * same store otherwise.
 */
enum { OTHER_COMMIT, OTHER_PRUNE, OTHER_COMMIT_PRUNE };

typedef struct other_op {
    fixture *f;
    int kind;
    model_volume *v;
    const model_commit *c; /* OTHER_COMMIT, OTHER_COMMIT_PRUNE */
    segidx_lsn keep_from;  /* OTHER_PRUNE, OTHER_COMMIT_PRUNE */
    int rc;                /* its result, once run */
    bool ran;
} other_op;

/* No cmocka asserts here: for LMDB this runs in a child process. */
static int other_apply(segidx_volume_index *vi, other_op *op)
{
    if (op->kind != OTHER_PRUNE) {
        int rc = commit_model(vi, op->v, op->c, 77);
        if (rc || op->kind == OTHER_COMMIT)
            return rc;
    }
    return segidx_volume_prune(vi, &op->v->vid, op->keep_from);
}

#ifdef VOLUME_INDEX_OVER_LMDB
#include <sys/wait.h>

static void other_run(void *ctx)
{
    other_op *op = ctx;
    const struct lmdb_scratch *s = op->f->raw.self;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        segidx_kv kv;
        segidx_volume_index *vi;
        segidx_kv_lmdb_options o = { 0 };
        o.nosync = true;
        o.map_size = (size_t)64 << 20;
        if (segidx_kv_lmdb_open(s->dir, &o, &kv) || segidx_volume_index_open_with(kv, &walk_only, &vi))
            _exit(100);
        int rc = other_apply(vi, op);
        segidx_volume_index_close(vi);
        _exit(rc <= 0 && rc >= -20 ? -rc : 101);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) <= 20);
    op->rc = -WEXITSTATUS(status);
    op->ran = true;
}
#elif defined(VOLUME_INDEX_OVER_PG)
#include <sys/wait.h>

static void other_run(void *ctx)
{
    other_op *op = ctx;
    const struct pg_scratch *s = op->f->raw.self;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the parent's connections stay the parent's: a store of its own */
        segidx_kv kv;
        segidx_volume_index *vi;
        if (open_pg_table(s->table, &kv) || segidx_volume_index_open_with(kv, &walk_only, &vi))
            _exit(100);
        int rc = other_apply(vi, op);
        segidx_volume_index_close(vi);
        _exit(rc <= 0 && rc >= -20 ? -rc : 101);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) <= 20);
    op->rc = -WEXITSTATUS(status);
    op->ran = true;
}
#else
static void other_run(void *ctx)
{
    other_op *op = ctx;
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&op->f->raw), &walk_only, &vi), 0);
    op->rc = other_apply(vi, op);
    op->ran = true;
    segidx_volume_index_close(vi);
}
#endif

/* A fixture whose volume has `n` random commits: the same ones for the same
 * seed, so that every point of a race starts from the same catalog. */
static void race_fixture(fixture *f, model_volume *v, uint64_t seed, size_t n)
{
    fixture_open(f, seed);
    *v = (model_volume){ 0 };
    v->vid = random_vid(&f->rng);
    grow_volume(f, v, n);
}

/* find_segments at `lsn` over every offset the volume can hold agrees
 * with the model (pruning keeps those reads, so the model is the unpruned
 * history). */
static void assert_read_exact(fixture *f, const model_volume *v, segidx_lsn lsn)
{
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add_range(q, 0, UNIVERSE + 1000 * (uint32_t)(v->n + 1));
    for (int e = 0; e < 3; e++)
        segidx_offset_set_add(q, edge_offsets[e]);
    assert_find_exact(f->vi, v, lsn, q);
    segidx_offset_set_free(q);
}

static void assert_meta(fixture *f, const model_volume *v, segidx_lsn lsn, segidx_lsn keep_from)
{
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(f->vi, &v->vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, lsn);
    assert_int_equal(m.keep_from, keep_from);
}

/* Issue: a prune between find_segments' meta read and its scan made written
 * pages read as never written. Now a read is exact or, if the prune point
 * passed its LSN during the call, SEGIDX_ERANGE with the query as it was. */
static void test_race_prune_under_read(void **state)
{
    (void)state;
    const size_t n = 24;
    /* The quick repetitions read inside the history and above its head. */
    const segidx_lsn reads[] = { 9, n + 3, 1, n };
    for (size_t r = 0; r < (test_quick() ? 2 : sizeof reads / sizeof *reads); r++) {
        segidx_lsn lsn = reads[r];
        for (segidx_lsn keep = lsn > 1 ? lsn - 1 : 1; keep <= lsn + 1 && keep <= n; keep++) {
            for (long at = 1; at <= 4; at++) {
                fixture f;
                model_volume v;
                race_fixture(&f, &v, 900, n);
                other_op op = { &f, OTHER_PRUNE, &v, NULL, keep, 0, false };
                stub_hook(f.stub, at, other_run, &op);
                segidx_offset_set *q = segidx_offset_set_new();
                segidx_offset_set_add_range(q, 0, UNIVERSE);
                segidx_offset_set *before = segidx_offset_set_copy(q);
                found_list got = { NULL, 0, 0, -1, 0 };
                int rc = segidx_volume_find_segments(f.vi, &v.vid, lsn, q, collect_found, &got);
                stub_hook(f.stub, 0, NULL, NULL);
                if (op.ran && keep > lsn) {
                    assert_int_equal(rc, SEGIDX_ERANGE);
                    assert_int_equal(got.n, 0);
                    assert_true(segidx_offset_set_equals(q, before));
                } else {
                    assert_int_equal(rc, SEGIDX_OK);
                    assert_find_like_model(&v, lsn, before, &got, q);
                }
                assert_int_equal(op.ran, at <= 3); /* meta, scan, meta again */
                if (op.ran)
                    assert_int_equal(op.rc, SEGIDX_OK);
                found_list_free(&got);
                segidx_offset_set_free(q);
                segidx_offset_set_free(before);
                model_volume_free(&v);
                fixture_close(&f);
            }
        }
    }
}

/* Found by the threaded stress: a read above the head reads history as of
 * the head it saw; commits and a prune to a point above that head, landing
 * during the walk, rewrite that history. The read must not answer from it
 * (it walks again, from the newer meta). */
static void test_race_commit_and_prune_under_read_above_head(void **state)
{
    (void)state;
    for (long at = 1; at <= 4; at++) {
        fixture f;
        model_volume v;
        race_fixture(&f, &v, 905, 12);
        model_commit c;
        do { /* a commit that rewrites pages */
            random_commit(&f.rng, &c, v.n + 1);
        } while (c.n == 0);
        other_op op = { &f, OTHER_COMMIT_PRUNE, &v, &c, v.n + 1, 0, false };
        stub_hook(f.stub, at, other_run, &op);
        segidx_offset_set *q = segidx_offset_set_new();
        segidx_offset_set_add_range(q, 0, UNIVERSE);
        segidx_offset_set *asked = segidx_offset_set_copy(q);
        found_list got = { NULL, 0, 0, -1, 0 };
        int rc = segidx_volume_find_segments(f.vi, &v.vid, UINT64_MAX, q, collect_found, &got);
        stub_hook(f.stub, 0, NULL, NULL);
        assert_int_equal(rc, SEGIDX_OK);
        assert_int_equal(op.ran, at <= 3); /* meta, scan, meta again */
        /* As of the head before, or, when the other writer got in, after. */
        if (op.ran)
            model_append(&v, &c);
        assert_find_like_model(&v, UINT64_MAX, asked, &got, q);
        if (!op.ran)
            for (size_t i = 0; i < c.n; i++)
                segidx_offset_set_free(c.segs[i].offsets);
        found_list_free(&got);
        segidx_offset_set_free(q);
        segidx_offset_set_free(asked);
        model_volume_free(&v);
        fixture_close(&f);
    }
}

/* Issue: two writers that both read LSN n stored n + 1 twice. Now exactly
 * one commit holds n + 1, and the other writer gets SEGIDX_ECONFLICT,
 * wherever the race falls. */
static void test_race_commit_under_commit(void **state)
{
    (void)state;
    for (long at = 1; at <= 3; at++) {
        fixture f;
        model_volume v;
        race_fixture(&f, &v, 901, 10);
        model_commit mine, theirs = { v.n + 1, { { { { 0 } }, segidx_offset_set_new() } }, 1 };
        random_commit(&f.rng, &mine, v.n + 1);
        memset(theirs.segs[0].sid.bytes, 0xEE, 16); /* a sid of its own: the winner shows */
        segidx_offset_set_add_range(theirs.segs[0].offsets, 5, 9);
        other_op op = { &f, OTHER_COMMIT, &v, &theirs, 0, 0, false };
        stub_hook(f.stub, at, other_run, &op);
        int rc = commit_model(f.vi, &v, &mine, 5);
        stub_hook(f.stub, 0, NULL, NULL);
        assert_int_equal(op.ran, at <= 2); /* meta, write */
        if (!op.ran)
            other_run(&op);
        assert_true((rc == SEGIDX_OK) != (op.rc == SEGIDX_OK));
        assert_int_equal(rc == SEGIDX_OK ? op.rc : rc, SEGIDX_ECONFLICT);
        assert_int_equal(rc == SEGIDX_OK, at == 3);
        const model_commit *won = rc == SEGIDX_OK ? &mine : &theirs;
        const model_commit *lost = rc == SEGIDX_OK ? &theirs : &mine;
        model_append(&v, won);
        for (size_t i = 0; i < lost->n; i++)
            segidx_offset_set_free(lost->segs[i].offsets);
        assert_meta(&f, &v, v.n, 0);
        for (segidx_lsn l = 1; l <= v.n; l++)
            assert_read_exact(&f, &v, l);
        model_volume_free(&v);
        fixture_close(&f);
    }
}

/* Issue: a prune in one process moved the volume's LSN back in another.
 * A prune landing inside a commit, or a commit inside a prune, loses
 * nothing: both take effect, whatever the order. */
static void test_race_prune_and_commit(void **state)
{
    (void)state;
    const size_t n = 16;
    const segidx_lsn keep = 9;
    for (int prune_first = 0; prune_first < 2; prune_first++) {
        for (long at = 1; at <= 4; at++) {
            fixture f;
            model_volume v;
            race_fixture(&f, &v, 902, n);
            model_commit c;
            random_commit(&f.rng, &c, v.n + 1);
            int rc;
            other_op op;
            if (prune_first) { /* the other prunes inside our commit */
                op = (other_op){ &f, OTHER_PRUNE, &v, NULL, keep, 0, false };
                stub_hook(f.stub, at, other_run, &op);
                rc = commit_model(f.vi, &v, &c, 5);
            } else {           /* the other commits inside our prune */
                op = (other_op){ &f, OTHER_COMMIT, &v, &c, 0, 0, false };
                stub_hook(f.stub, at, other_run, &op);
                rc = segidx_volume_prune(f.vi, &v.vid, keep);
            }
            stub_hook(f.stub, 0, NULL, NULL);
            assert_int_equal(rc, SEGIDX_OK);
            if (!op.ran)
                other_run(&op);
            assert_int_equal(op.rc, SEGIDX_OK);
            model_append(&v, &c);
            assert_meta(&f, &v, n + 1, keep);
            for (segidx_lsn l = keep; l <= v.n + 1; l++)
                assert_read_exact(&f, &v, l);
            model_volume_free(&v);
            fixture_close(&f);
        }
    }
}

/* Two prunes race: the prune point ends at the higher of the two. */
static void test_race_prune_under_prune(void **state)
{
    (void)state;
    const size_t n = 16;
    const segidx_lsn points[][2] = { { 5, 11 }, { 11, 5 } };
    for (size_t p = 0; p < 2; p++) {
        for (long at = 1; at <= 4; at++) {
            fixture f;
            model_volume v;
            race_fixture(&f, &v, 903, n);
            other_op op = { &f, OTHER_PRUNE, &v, NULL, points[p][1], 0, false };
            stub_hook(f.stub, at, other_run, &op);
            assert_int_equal(segidx_volume_prune(f.vi, &v.vid, points[p][0]), SEGIDX_OK);
            stub_hook(f.stub, 0, NULL, NULL);
            if (!op.ran)
                other_run(&op);
            assert_int_equal(op.rc, SEGIDX_OK);
            segidx_lsn keep = points[p][0] > points[p][1] ? points[p][0] : points[p][1];
            assert_meta(&f, &v, n, keep);
            for (segidx_lsn l = keep; l <= n; l++)
                assert_read_exact(&f, &v, l);
            model_volume_free(&v);
            fixture_close(&f);
        }
    }
}

struct commit_count {
    segidx_lsn last;
    size_t entries;
};

static int count_commit(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                        const segidx_offset_set *offsets)
{
    (void)sid, (void)offsets;
    struct commit_count *c = ctx;
    assert_true(lsn >= c->last);
    c->last = lsn;
    c->entries++;
    return 0;
}

static size_t model_entries_upto(const model_volume *v, segidx_lsn lsn)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n && v->commits[i].lsn <= lsn; i++)
        n += v->commits[i].n;
    return n;
}

/* Issue: volume_commits racing a commit said SEGIDX_ECORRUPT on a healthy
 * index. Now it lists the commits up to the LSN its meta read named. */
static void test_race_commit_under_listing(void **state)
{
    (void)state;
    for (long at = 1; at <= 3; at++) {
        fixture f;
        model_volume v;
        race_fixture(&f, &v, 904, 12);
        model_commit c;
        do { /* a commit with entries (an empty one allocates nothing) */
            random_commit(&f.rng, &c, v.n + 1);
        } while (c.n == 0);
        other_op op = { &f, OTHER_COMMIT, &v, &c, 0, 0, false };
        stub_hook(f.stub, at, other_run, &op);
        struct commit_count got = { 0, 0 };
        assert_int_equal(segidx_volume_commits(f.vi, &v.vid, count_commit, &got), SEGIDX_OK);
        stub_hook(f.stub, 0, NULL, NULL);
        assert_int_equal(op.ran, at <= 2); /* meta, scan */
        if (!op.ran)
            other_run(&op);
        assert_int_equal(op.rc, SEGIDX_OK);
        size_t upto = at == 1 ? v.n + 1 : v.n;
        model_append(&v, &c);
        assert_int_equal(got.entries, model_entries_upto(&v, upto));
        model_volume_free(&v);
        fixture_close(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_unknown_volume_and_empty_query),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_commit_errors_change_nothing),
#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
        cmocka_unit_test(test_concurrent_commits_one_wins),
#endif
        cmocka_unit_test(test_prune_keeps_reads),
        cmocka_unit_test(test_failing_store_changes_nothing),
        cmocka_unit_test(test_corrupt_values),
        cmocka_unit_test(test_meta_of_a_later_version),
        cmocka_unit_test(test_race_prune_under_read),
        cmocka_unit_test(test_race_commit_and_prune_under_read_above_head),
        cmocka_unit_test(test_race_commit_under_commit),
        cmocka_unit_test(test_race_prune_and_commit),
        cmocka_unit_test(test_race_prune_under_prune),
        cmocka_unit_test(test_race_commit_under_listing),
    };
#if defined(VOLUME_INDEX_OVER_LMDB)
    return cmocka_run_group_tests_name("volume_index over lmdb", tests, NULL, NULL);
#elif defined(VOLUME_INDEX_OVER_PG)
    int code;
    if (!pgserver_main_start(&code))
        return code;
    code = cmocka_run_group_tests_name("volume_index over postgresql", tests, NULL, NULL);
    pgserver_stop(&pgserver_the);
    return code;
#else
    return cmocka_run_group_tests_name("volume_index over mem", tests, NULL, NULL);
#endif
}
