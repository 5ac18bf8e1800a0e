/* volume_sync: a pull only when behind, one pull per volume at a time,
 * different volumes in parallel, errors passed through. */
#include "testutil.h"

#include <time.h>

#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
#include <pthread.h>
#include <stdatomic.h>
#endif

/* A "remote" catalog: commits 1..remote_lsn of a volume, each one segment
 * holding offset = lsn. pull applies what the local index lacks. */
struct remote {
    segidx_lsn remote_lsn;
    int pulls;
    int fail_with;          /* a pull returns this, if not 0 */
    long pull_ns;           /* how long a pull takes */
#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
    atomic_int in_pull;     /* pulls of this volume running now */
    atomic_int max_in_pull;
#endif
};

static void nap(long ns)
{
    struct timespec t = { ns / 1000000000L, ns % 1000000000L };
    if (ns)
        nanosleep(&t, NULL);
}

static int pull(void *ctx, segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn have)
{
    struct remote *r = ctx;
#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
    int now = atomic_fetch_add(&r->in_pull, 1) + 1;
    int seen = atomic_load(&r->max_in_pull);
    while (now > seen && !atomic_compare_exchange_weak(&r->max_in_pull, &seen, now))
        ;
#endif
    r->pulls++;
    nap(r->pull_ns);
    int rc = r->fail_with;
    for (segidx_lsn lsn = have + 1; !rc && lsn <= r->remote_lsn; lsn++) {
        segidx_offset_set *s = segidx_offset_set_new();
        segidx_offset_set_add(s, (uint32_t)lsn);
        segidx_commit_segment seg = { { { 1, (uint8_t)lsn } }, s };
        rc = segidx_volume_commit(vi, vid, lsn, lsn, &seg, 1);
        segidx_offset_set_free(s);
    }
#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
    atomic_fetch_sub(&r->in_pull, 1);
#endif
    return rc;
}

static segidx_volume_index *open_index(void)
{
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open(kv, &vi), SEGIDX_OK);
    return vi;
}

static void test_pull_only_when_behind(void **state)
{
    (void)state;
    segidx_volume_index *vi = open_index();
    segidx_vid vid = { { 3 } };
    struct remote r = { .remote_lsn = 5 };
    assert_int_equal(segidx_volume_sync(vi, &vid, 0, pull, &r), SEGIDX_OK);
    assert_int_equal(r.pulls, 0); /* LSN 0: nothing to have */
    assert_int_equal(segidx_volume_sync(vi, &vid, 5, pull, &r), SEGIDX_OK);
    assert_int_equal(r.pulls, 1);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(vi, &vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 5);
    assert_int_equal(segidx_volume_sync(vi, &vid, 3, pull, &r), SEGIDX_OK);
    assert_int_equal(segidx_volume_sync(vi, &vid, 5, pull, &r), SEGIDX_OK);
    assert_int_equal(r.pulls, 1); /* already there: at once */

    /* The remote does not have it: the pull succeeds, the sync cannot. */
    assert_int_equal(segidx_volume_sync(vi, &vid, 9, pull, &r), SEGIDX_ERANGE);
    assert_int_equal(r.pulls, 2);
    /* A failing pull: its error, and the index as it was. */
    r.remote_lsn = 9;
    r.fail_with = SEGIDX_EIO;
    assert_int_equal(segidx_volume_sync(vi, &vid, 9, pull, &r), SEGIDX_EIO);
    assert_int_equal(segidx_volume_get(vi, &vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 5);
    r.fail_with = 0;
    assert_int_equal(segidx_volume_sync(vi, &vid, 9, pull, &r), SEGIDX_OK);
    assert_int_equal(segidx_volume_get(vi, &vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 9);
    assert_int_equal(segidx_volume_sync(NULL, &vid, 9, pull, &r), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_sync(vi, &vid, 9, NULL, &r), SEGIDX_EINVAL);
    segidx_volume_index_close(vi);
}

/* A pull that syncs its own volume again: an error, never a wait for
 * itself. Another volume's sync from inside a pull is fine. */
struct reentry {
    segidx_lsn lsn;
    segidx_vid other;
    int inner_rc, other_rc;
};

static int reentering_pull(void *ctx, segidx_volume_index *vi, const segidx_vid *vid,
                           segidx_lsn have)
{
    struct reentry *e = ctx;
    struct remote r = { .remote_lsn = e->lsn };
    e->inner_rc = segidx_volume_sync(vi, vid, e->lsn, pull, &r);
    struct remote o = { .remote_lsn = 2 };
    e->other_rc = segidx_volume_sync(vi, &e->other, 2, pull, &o);
    return pull(&r, vi, vid, have);
}

static void test_pull_reentering_its_sync(void **state)
{
    (void)state;
    segidx_volume_index *vi = open_index();
    segidx_vid vid = { { 7 } };
    struct reentry e = { 4, { { 8 } }, 1, 1 };
    assert_int_equal(segidx_volume_sync(vi, &vid, 4, reentering_pull, &e), SEGIDX_OK);
    assert_int_equal(e.inner_rc, SEGIDX_EINVAL);
    assert_int_equal(e.other_rc, SEGIDX_OK);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(vi, &vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 4);
    assert_int_equal(segidx_volume_get(vi, &e.other, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 2);
    /* The permit went back: a later sync of the volume pulls as usual. */
    struct remote r = { .remote_lsn = 6 };
    assert_int_equal(segidx_volume_sync(vi, &vid, 6, pull, &r), SEGIDX_OK);
    assert_int_equal(r.pulls, 1);
    segidx_volume_index_close(vi);
}

/* What a pull returns that is not a SEGIDX_E* code (a positive value, an
 * errno) is SEGIDX_EIO; the library's own codes pass as they are. */
static void test_pull_returns_mapped(void **state)
{
    (void)state;
    segidx_volume_index *vi = open_index();
    segidx_vid vid = { { 9 } };
    const int returned[] = { 1, 5, -5 /* -EIO */, -12 /* -ENOMEM */, -1000, SEGIDX_ENOMEM,
                             SEGIDX_ECONFLICT, SEGIDX_EFULL, SEGIDX_EIO };
    const int expected[] = { SEGIDX_EIO, SEGIDX_EIO, SEGIDX_EIO, SEGIDX_EIO, SEGIDX_EIO,
                             SEGIDX_ENOMEM, SEGIDX_ECONFLICT, SEGIDX_EFULL, SEGIDX_EIO };
    for (size_t i = 0; i < sizeof returned / sizeof *returned; i++) {
        struct remote r = { .remote_lsn = 3, .fail_with = returned[i] };
        assert_int_equal(segidx_volume_sync(vi, &vid, 3, pull, &r), expected[i]);
        assert_int_equal(segidx_volume_get(vi, &vid, &(segidx_volume_meta){ 0 }),
                         SEGIDX_ENOTFOUND);
    }
    segidx_volume_index_close(vi);
}

#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
struct syncer {
    segidx_volume_index *vi;
    segidx_vid vid;
    segidx_lsn lsn;
    struct remote *r;
    pthread_barrier_t *start;
    int rc;
};

static void *run_sync(void *p)
{
    struct syncer *s = p;
    pthread_barrier_wait(s->start);
    s->rc = segidx_volume_sync(s->vi, &s->vid, s->lsn, pull, s->r);
    return NULL;
}

/* Sixteen syncs of one volume: one pull. */
static void test_one_pull_per_volume(void **state)
{
    (void)state;
    enum { THREADS = 16 };
    segidx_volume_index *vi = open_index();
    struct remote r = { .remote_lsn = 30, .pull_ns = 20 * 1000 * 1000 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    struct syncer s[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (struct syncer){ vi, { { 4 } }, 30, &r, &start, -1 };
        assert_int_equal(pthread_create(&t[i], NULL, run_sync, &s[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].rc, SEGIDX_OK);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(r.pulls, 1);
    assert_int_equal(atomic_load(&r.max_in_pull), 1);
    segidx_volume_index_close(vi);
}

/* Two volumes' pulls meet: each waits (up to 10 s) until both have
 * started. If syncs of different volumes waited for each other, the first
 * pull would wait alone and fail the meeting. */
static atomic_int pulls_started;

static int meeting_pull(void *ctx, segidx_volume_index *vi, const segidx_vid *vid,
                        segidx_lsn have)
{
    atomic_fetch_add(&pulls_started, 1);
    for (int i = 0; i < 10000 && atomic_load(&pulls_started) < 2; i++)
        nap(1000 * 1000);
    if (atomic_load(&pulls_started) < 2)
        return SEGIDX_ECONFLICT; /* alone: the other sync is blocked */
    return pull(ctx, vi, vid, have);
}

static void *run_meeting_sync(void *p)
{
    struct syncer *s = p;
    s->rc = segidx_volume_sync(s->vi, &s->vid, s->lsn, meeting_pull, s->r);
    return NULL;
}

static void test_volumes_sync_in_parallel(void **state)
{
    (void)state;
    segidx_volume_index *vi = open_index();
    struct remote a = { .remote_lsn = 3 }, b = { .remote_lsn = 3 };
    atomic_store(&pulls_started, 0);
    struct syncer s[2] = { { vi, { { 5 } }, 3, &a, NULL, -1 }, { vi, { { 6 } }, 3, &b, NULL, -1 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, run_meeting_sync, &s[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(s[0].rc, SEGIDX_OK);
    assert_int_equal(s[1].rc, SEGIDX_OK);
    assert_int_equal(a.pulls + b.pulls, 2);
    segidx_volume_index_close(vi);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_only_when_behind),
        cmocka_unit_test(test_pull_reentering_its_sync),
        cmocka_unit_test(test_pull_returns_mapped),
#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
        cmocka_unit_test(test_one_pull_per_volume),
        cmocka_unit_test(test_volumes_sync_in_parallel),
#endif
    };
    return cmocka_run_group_tests_name("volume_sync", tests, NULL, NULL);
}
