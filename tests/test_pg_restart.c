/* The PostgreSQL server stopped and started again while a volume index
 * commits to it and readers read from it: calls fail while it is down
 * (SEGIDX_EIO, no crash, no hang), the index goes on when it is back, and
 * afterwards every acknowledged commit is there and every read at every
 * LSN is exact. Readers that read during the restarts never get a wrong
 * answer with SEGIDX_OK. */
#include "testutil.h"

#include "pgserver.h"
#include "segidx_pg.h"

#include <pthread.h>
#include <stdatomic.h>

/* Commits before the first restart, between, and after the second
 * (a tenth under valgrind). */
enum { OFFSETS = 64, BEFORE = 60, BETWEEN = 60, AFTER = 40 };

/* Commit `lsn` wrote offsets lsn % 64 and lsn * 7 % 64 into the segment
 * whose sid holds `lsn`. */
static segidx_sid sid_of(segidx_lsn lsn)
{
    segidx_sid s = { { 0x5E } };
    memcpy(&s.bytes[8], &lsn, sizeof lsn);
    return s;
}

static bool wrote(segidx_lsn lsn, uint32_t off)
{
    return off == lsn % OFFSETS || off == lsn * 7 % OFFSETS;
}

/* The commit that holds `off` as of `at`, or 0. */
static segidx_lsn newest(segidx_lsn at, uint32_t off)
{
    for (segidx_lsn l = at; l >= 1; l--)
        if (wrote(l, off))
            return l;
    return 0;
}

typedef struct shared {
    segidx_volume_index *vi;
    segidx_vid vid;
    atomic_ullong acked;   /* every commit up to this one is known to be in */
    atomic_int stop;
    atomic_long eio, wrong, reads;
} shared;

/* Each offset of `cut` must be the newest version as of the query's LSN
 * in exactly the commit the sid names. */
typedef struct check_ctx {
    segidx_lsn at, head; /* head: min(at, the LSN the volume had) */
    bool wrong;
} check_ctx;

static int check_hit(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    check_ctx *c = ctx;
    segidx_lsn commit;
    memcpy(&commit, &sid->bytes[8], sizeof commit);
    if (lsn < commit || lsn > c->at)
        c->wrong = true;
    for (uint32_t off = 0; off < OFFSETS; off++)
        if (segidx_offset_set_contains(cut, off) && newest(c->head, off) != commit) {
            c->wrong = true;
            fprintf(stderr, "read at %llu: offset %u answered by commit %llu, not %llu\n",
                    (unsigned long long)c->at, off, (unsigned long long)commit,
                    (unsigned long long)newest(c->head, off));
        }
    return 0;
}

/* find_segments at `at` for every offset, on a volume whose LSN is at
 * least `head`, or exactly `head` when at > head: SEGIDX_OK and exact, or
 * an error; *wrong when it answered OK with something else. */
static int read_at(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn at, segidx_lsn head,
                   bool *wrong)
{
    segidx_offset_set *q = segidx_offset_set_new();
    assert_non_null(q);
    assert_int_equal(segidx_offset_set_add_range(q, 0, OFFSETS), SEGIDX_OK);
    check_ctx c = { at, at < head ? at : head, false };
    int rc = segidx_volume_find_segments(vi, vid, at, q, check_hit, &c);
    if (rc == SEGIDX_OK) {
        for (uint32_t off = 0; off < OFFSETS; off++)
            if (segidx_offset_set_contains(q, off) != (newest(c.head, off) == 0))
                c.wrong = true;
        *wrong = c.wrong;
    }
    segidx_offset_set_free(q);
    return rc;
}

static void pause_ms(long ms)
{
    nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL);
}

/* Commits the next LSN over and over. After an error it learns from the
 * volume's meta whether the commit went in (a write whose connection
 * broke may have committed) before it goes on. */
static void *committer(void *arg)
{
    shared *s = arg;
    segidx_lsn next = 1;
    while (!atomic_load(&s->stop)) {
        segidx_offset_set *o = segidx_offset_set_new();
        if (!o || segidx_offset_set_add(o, (uint32_t)(next % OFFSETS)) ||
            segidx_offset_set_add(o, (uint32_t)(next * 7 % OFFSETS)))
            abort();
        segidx_commit_segment seg = { sid_of(next), o };
        int rc = segidx_volume_commit(s->vi, &s->vid, next, next, &seg, 1);
        segidx_offset_set_free(o);
        if (rc == SEGIDX_OK) {
            atomic_store(&s->acked, next++);
            continue;
        }
        if (rc != SEGIDX_EIO && rc != SEGIDX_ECONFLICT)
            abort(); /* nothing else may come back: the main thread sees it hang */
        atomic_fetch_add(&s->eio, 1);
        for (;;) { /* went it in? */
            segidx_volume_meta m;
            rc = segidx_volume_get(s->vi, &s->vid, &m);
            if (rc == SEGIDX_OK || rc == SEGIDX_ENOTFOUND) {
                segidx_lsn have = rc == SEGIDX_OK ? m.lsn : 0;
                if (have != next - 1 && have != next)
                    abort(); /* the LSN went back, or jumped */
                if (have == next)
                    atomic_store(&s->acked, next++);
                break;
            }
            if (atomic_load(&s->stop))
                return NULL;
            pause_ms(5);
        }
    }
    return NULL;
}

/* Reads at acknowledged LSNs while the server comes and goes. */
static void *reader(void *arg)
{
    shared *s = arg;
    uint64_t r = 12345;
    while (!atomic_load(&s->stop)) {
        segidx_lsn acked = atomic_load(&s->acked);
        if (acked == 0) {
            pause_ms(1);
            continue;
        }
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        segidx_lsn at = 1 + (r >> 33) % acked;
        bool wrong = false;
        int rc = read_at(s->vi, &s->vid, at, at, &wrong);
        if (rc == SEGIDX_OK) {
            atomic_fetch_add(&s->reads, 1);
            if (wrong)
                atomic_fetch_add(&s->wrong, 1);
        } else if (rc == SEGIDX_EIO) {
            atomic_fetch_add(&s->eio, 1);
            pause_ms(2);
        } else {
            atomic_fetch_add(&s->wrong, 1); /* no other answer is right */
        }
    }
    return NULL;
}

static void wait_acked(shared *s, segidx_lsn at_least)
{
    for (int i = 0; i < 60000 && atomic_load(&s->acked) < at_least; i++)
        pause_ms(1);
    assert_true(atomic_load(&s->acked) >= at_least);
}

static void test_restarts_under_load(void **state)
{
    (void)state;
    if (!segidx_threadsafe()) /* a SEGIDX_SINGLE_THREADED=1 build */
        skip();
    char table[64];
    segidx_kv_pg_options o = { 0 };
    o.table = pgserver_table(table, sizeof table, "restart_vi");
    segidx_kv kv;
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_OK);
    /* A small checkpoint schedule, so that rounds land during the run. */
    segidx_volume_index_options vo = { 0 };
    vo.checkpoint_commits = 4;
    vo.checkpoint_fanout = 2;
    vo.checkpoint_levels = 2;
    shared s = { 0 };
    assert_int_equal(segidx_volume_index_open_with(kv, &vo, &s.vi), SEGIDX_OK);
    memset(s.vid.bytes, 0xA7, sizeof s.vid.bytes);

    pthread_t tc, tr[2];
    assert_int_equal(pthread_create(&tc, NULL, committer, &s), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&tr[i], NULL, reader, &s), 0);
    segidx_lsn goal = (segidx_lsn)test_scaled_threads(BEFORE);
    for (int round = 0; round < 2; round++) {
        wait_acked(&s, goal);
        /* Immediate first (a crash: open transactions die), then fast. */
        assert_int_equal(pgserver_ctl_stop(&pgserver_the, round == 0), 0);
        pause_ms(200);
        assert_int_equal(pgserver_ctl_start(&pgserver_the), 0);
        goal = atomic_load(&s.acked) + (segidx_lsn)test_scaled_threads(round == 0 ? BETWEEN : AFTER);
    }
    wait_acked(&s, goal);
    atomic_store(&s.stop, 1);
    assert_int_equal(pthread_join(tc, NULL), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(tr[i], NULL), 0);
    print_message("restarts: %llu commits acknowledged, %ld calls failed while down, "
                  "%ld reads during the run\n", (unsigned long long)atomic_load(&s.acked),
                  atomic_load(&s.eio), atomic_load(&s.reads));
    assert_int_equal(atomic_load(&s.wrong), 0);
    assert_true(atomic_load(&s.eio) > 0); /* the server was down under the calls */

    /* Afterwards, through a fresh store and index: the volume is at the
     * last acknowledged LSN and every LSN reads exactly. */
    segidx_lsn last = atomic_load(&s.acked);
    segidx_volume_index_close(s.vi);
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_OK);
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open_with(kv, &vo, &vi), SEGIDX_OK);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(vi, &s.vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, last);
    for (segidx_lsn at = 1; at <= last + 1; at++) {
        bool wrong = false;
        assert_int_equal(read_at(vi, &s.vid, at, last, &wrong), SEGIDX_OK);
        assert_false(wrong);
    }
    segidx_volume_index_close(vi);
}

int main(void)
{
    int code;
    if (!pgserver_main_start(&code))
        return code;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restarts_under_load),
    };
    int rc = cmocka_run_group_tests_name("pg restart", tests, NULL, NULL);
    pgserver_stop(&pgserver_the);
    return rc;
}
