/* LMDB durability: a child process commits to a durable volume index in a
 * loop, reporting each acknowledged LSN down a pipe, and is killed with
 * SIGKILL at a random moment. After each kill the store must hold a prefix
 * of the commits: every acknowledged commit, none torn, nothing beyond.
 *
 * SEGIDX_CRASH_TRIALS sets the number of kills (make check: 5,
 * make check-long: 50). */
#include "testutil.h"

#include "segidx_lmdb.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const segidx_vid crash_vid = { { 0xC4, 0xA5, 0x11 } };

/* Commit `lsn`'s segments, a function of lsn alone: one to three, each
 * with its own sid and disjoint offsets. */
static size_t commit_for(segidx_lsn lsn, segidx_commit_segment segs[3])
{
    test_rng r = { lsn * 0x9E3779B97F4A7C15ull };
    size_t n = 1 + rng_below(&r, 3);
    for (size_t i = 0; i < n; i++) {
        memset(segs[i].sid.bytes, 0, 16);
        memcpy(segs[i].sid.bytes, &lsn, 8);
        segs[i].sid.bytes[8] = (uint8_t)(i + 1);
        segidx_offset_set *s = segidx_offset_set_new();
        for (uint32_t k = 0, m = 1 + (uint32_t)rng_below(&r, 50); k < m; k++)
            segidx_offset_set_add(s, (uint32_t)(rng_below(&r, 1000) * 3 + i));
        segs[i].offsets = s;
    }
    return n;
}

static void free_commit(segidx_commit_segment *segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free((segidx_offset_set *)segs[i].offsets);
}

static segidx_volume_index *open_durable(const char *dir)
{
    segidx_kv kv;
    segidx_kv_lmdb_options o = { 0 };
    o.map_size = (size_t)256 << 20;
    if (segidx_kv_lmdb_open(dir, &o, &kv) != SEGIDX_OK)
        return NULL;
    segidx_volume_index *vi;
    if (segidx_volume_index_open(kv, &vi) != SEGIDX_OK) {
        kv.vt->close(kv.self);
        return NULL;
    }
    return vi;
}

/* The child: commit forever, acknowledging each LSN once it is durable. */
static void writer(const char *dir, int ack_fd)
{
    segidx_volume_index *vi = open_durable(dir);
    if (!vi)
        _exit(2);
    segidx_volume_meta m = { 0 };
    int rc = segidx_volume_get(vi, &crash_vid, &m);
    if (rc && rc != SEGIDX_ENOTFOUND)
        _exit(3);
    for (segidx_lsn lsn = m.lsn + 1;; lsn++) {
        segidx_commit_segment segs[3];
        size_t n = commit_for(lsn, segs);
        rc = segidx_volume_commit(vi, &crash_vid, lsn, lsn * 10, segs, n);
        free_commit(segs, n);
        if (rc)
            _exit(4);
        if (write(ack_fd, &lsn, sizeof lsn) != sizeof lsn)
            _exit(5);
    }
}

struct replay {
    segidx_lsn top;
    segidx_lsn next;       /* the next LSN whose entries are expected */
    size_t seen_in_next;   /* of its segments */
    segidx_commit_segment want[3];
    size_t n_want;
};

/* The entries come oldest first, by sid within a commit: compare each with
 * what commit_for made. */
static int check_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                       const segidx_offset_set *offsets)
{
    struct replay *r = ctx;
    if (lsn != r->next) {
        assert_int_equal(r->seen_in_next, r->n_want); /* the previous one is whole */
        assert_int_equal(lsn, r->next + 1);           /* and none is missing */
        free_commit(r->want, r->n_want);
        r->next = lsn;
        r->seen_in_next = 0;
        r->n_want = commit_for(lsn, r->want);
    }
    assert_true(lsn <= r->top);
    assert_true(r->seen_in_next < r->n_want);
    const segidx_commit_segment *w = &r->want[r->seen_in_next++];
    assert_memory_equal(sid->bytes, w->sid.bytes, 16);
    assert_true(segidx_offset_set_equals(offsets, w->offsets));
    return 0;
}

static segidx_lsn read_acks(int fd)
{
    segidx_lsn last = 0, lsn;
    while (read(fd, &lsn, sizeof lsn) == sizeof lsn)
        last = lsn;
    return last;
}

static void test_sigkill_leaves_a_prefix(void **state)
{
    (void)state;
    const char *env = getenv("SEGIDX_CRASH_TRIALS");
    int trials = env ? atoi(env) : 5;
    char dir[] = "/tmp/segidx-crash-XXXXXX";
    assert_non_null(mkdtemp(dir));
    test_rng r = { (uint64_t)time(NULL) };
    segidx_lsn acked_total = 0;
    for (int t = 0; t < trials; t++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            writer(dir, fds[1]);
        }
        close(fds[1]);
        struct timespec nap = { 0, (long)(5 + rng_below(&r, 120)) * 1000000L };
        nanosleep(&nap, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status)); /* killed, not failed on its own */
        segidx_lsn acked = read_acks(fds[0]);
        close(fds[0]);

        segidx_volume_index *vi = open_durable(dir);
        assert_non_null(vi);
        segidx_volume_meta m = { 0 };
        int rc = segidx_volume_get(vi, &crash_vid, &m);
        assert_true(rc == SEGIDX_OK || (rc == SEGIDX_ENOTFOUND && acked == 0));
        assert_true(m.lsn >= acked);
        assert_true(m.lsn >= acked_total);
        if (m.lsn)
            assert_int_equal(m.last_commit, m.lsn * 10);
        struct replay rp = { m.lsn, 0, 0, { { { { 0 } }, NULL } }, 0 };
        if (m.lsn)
            assert_int_equal(segidx_volume_commits(vi, &crash_vid, check_entry, &rp), 0);
        assert_int_equal(rp.next, m.lsn);              /* up to the meta's LSN */
        assert_int_equal(rp.seen_in_next, rp.n_want);  /* the last one whole */
        free_commit(rp.want, rp.n_want);
        segidx_volume_index_close(vi);
        acked_total = m.lsn;
    }
    print_message("%d kills, %llu commits survived\n", trials, (unsigned long long)acked_total);
    char path[64];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_leaves_a_prefix),
    };
    return cmocka_run_group_tests_name("lmdb crash", tests, NULL, NULL);
}
