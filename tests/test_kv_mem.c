/* The in-memory KV: the conformance suite (tests/kvtest.h), growth that
 * stays logarithmic, its own argument checks, calls from its own
 * callbacks, and a lock under which neither writers nor readers starve. */
#include "kvtest.h"

#include "internal.h"
#include "sync.h"

#include <time.h>

static int open_mem(void *ctx, segidx_kv *out)
{
    (void)ctx;
    return segidx_kv_mem_open(out);
}

static kvtest_store mem_store = { "mem", open_mem, NULL };

static void key_be32(uint8_t *k, uint32_t v)
{
    k[0] = (uint8_t)(v >> 24);
    k[1] = (uint8_t)(v >> 16);
    k[2] = (uint8_t)(v >> 8);
    k[3] = (uint8_t)v;
}

typedef struct count_ctx {
    uint32_t n, next, step;
    bool ok;
} count_ctx;

/* Checks that keys come in the order of the numbers they spell. */
static int count_in_order(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    count_ctx *c = ctx;
    uint8_t want[4];
    key_be32(want, c->next);
    if (klen != 4 || vlen != 4 || memcmp(key, want, 4) || memcmp(val, want, 4))
        c->ok = false;
    c->n++;
    c->next += c->step;
    return 0;
}

static int ignore(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)ctx, (void)key, (void)klen, (void)val, (void)vlen;
    return 0;
}

/* 200k keys written one at a time in ascending order, then descending
 * (the orders that turn an unbalanced tree into a list, and this test into
 * hours), each read back, scanned, seeked into and deleted. Not timed: a
 * linear structure simply does not finish. */
static void test_many_sequential_keys(void **state)
{
    (void)state;
    enum { N = 200000 };
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    uint8_t k[4];
    for (uint32_t i = 0; i < N; i++) { /* even keys, ascending */
        key_be32(k, 2 * i);
        segidx_kv_op op = KVTEST_PUT(k, 4, k, 4);
        assert_int_equal(kv.vt->write(kv.self, &op, 1), SEGIDX_OK);
    }
    for (uint32_t i = N; i-- > 0;) { /* odd keys, descending */
        key_be32(k, 2 * i + 1);
        segidx_kv_op op = KVTEST_PUT(k, 4, k, 4);
        assert_int_equal(kv.vt->write(kv.self, &op, 1), SEGIDX_OK);
    }
    for (uint32_t i = 0; i < 2 * N; i++) {
        key_be32(k, i);
        assert_int_equal(kv.vt->get(kv.self, k, 4, ignore, NULL), 0);
    }
    key_be32(k, 2 * N);
    assert_int_equal(kv.vt->get(kv.self, k, 4, ignore, NULL), SEGIDX_ENOTFOUND);

    count_ctx c = { 0, 0, 1, true };
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, count_in_order, &c), 0);
    assert_int_equal(c.n, 2 * N);
    assert_true(c.ok);
    c = (count_ctx){ 0, 2 * N - 1, (uint32_t)-1, true };
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, true, count_in_order, &c), 0);
    assert_int_equal(c.n, 2 * N);
    assert_true(c.ok);

    /* Many short seeks: each costs O(log n), not a walk from the start. */
    for (uint32_t i = 0; i < 2 * N; i += 97) {
        uint8_t lo[4], hi[4];
        key_be32(lo, i);
        key_be32(hi, i + 3);
        c = (count_ctx){ 0, i, 1, true };
        assert_int_equal(kv.vt->scan(kv.self, lo, 4, hi, 4, false, count_in_order, &c), 0);
        assert_true(c.ok);
        assert_int_equal(c.n, i + 3 <= 2 * N ? 3 : 2 * N - i);
        c = (count_ctx){ 0, i + 2, (uint32_t)-1, true };
        assert_int_equal(kv.vt->scan(kv.self, lo, 4, hi, 4, true, count_in_order, &c), 0);
        assert_true(c.ok);
    }

    /* Delete the odd keys, in batches, from the middle outwards. */
    segidx_kv_op *ops = malloc(1000 * sizeof *ops);
    uint8_t (*keys)[4] = malloc(1000 * sizeof *keys);
    assert_non_null(ops);
    assert_non_null(keys);
    for (uint32_t b = 0; b < N / 1000; b++) {
        uint32_t base = (b % 2 ? N / 2 + b / 2 * 1000 : N / 2 - (b / 2 + 1) * 1000);
        for (uint32_t j = 0; j < 1000; j++) {
            key_be32(keys[j], 2 * (base + j) + 1);
            ops[j] = KVTEST_DEL(keys[j], 4);
        }
        assert_int_equal(kv.vt->write(kv.self, ops, 1000), SEGIDX_OK);
    }
    c = (count_ctx){ 0, 0, 2, true };
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, count_in_order, &c), 0);
    assert_int_equal(c.n, N);
    assert_true(c.ok);
    free(keys);
    free(ops);
    kv.vt->close(kv.self);
}

/* Random keys in random order, inserted and deleted, in big batches. */
static void test_many_random_keys(void **state)
{
    (void)state;
    enum { N = 100000, BATCH = 500 };
    test_rng r = { 0x4B56000002ull };
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    uint8_t (*keys)[8] = malloc(N * sizeof *keys);
    segidx_kv_op *ops = malloc(BATCH * sizeof *ops);
    assert_non_null(keys);
    assert_non_null(ops);
    for (uint32_t i = 0; i < N; i++) {
        uint64_t x = rng_next(&r);
        memcpy(keys[i], &x, 8);
    }
    for (uint32_t i = 0; i < N; i += BATCH) {
        for (uint32_t j = 0; j < BATCH; j++)
            ops[j] = KVTEST_PUT(keys[i + j], 8, keys[i + j], 8);
        assert_int_equal(kv.vt->write(kv.self, ops, BATCH), SEGIDX_OK);
    }
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(kv.vt->get(kv.self, keys[i], 8, ignore, NULL), 0);
    for (uint32_t i = 0; i < N; i += 2 * BATCH) { /* delete every other batch */
        for (uint32_t j = 0; j < BATCH; j++)
            ops[j] = KVTEST_DEL(keys[i + j], 8);
        assert_int_equal(kv.vt->write(kv.self, ops, BATCH), SEGIDX_OK);
    }
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(kv.vt->get(kv.self, keys[i], 8, ignore, NULL),
                         i / BATCH % 2 ? 0 : SEGIDX_ENOTFOUND);
    free(ops);
    free(keys);
    kv.vt->close(kv.self);
}

static void test_arguments(void **state)
{
    (void)state;
    assert_int_equal(segidx_kv_mem_open(NULL), SEGIDX_EINVAL);
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    segidx_kv_op op = KVTEST_PUT("k", 1, "v", 1);
    assert_int_equal(kv.vt->write(kv.self, &op, 1), SEGIDX_OK);
    /* No callback, NULL bounds with a length, empty keys for get. */
    assert_int_equal(kv.vt->get(kv.self, "k", 1, NULL, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->get(kv.self, "", 0, ignore, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->get(kv.self, NULL, 1, ignore, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, NULL, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 1, NULL, 0, false, ignore, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 1, true, ignore, NULL), SEGIDX_EINVAL);
    /* Bounds longer than any key. */
    uint8_t big[10000];
    memset(big, 'k', sizeof big);
    kvtest_seen seen = { { 0 }, -1, 0 };
    assert_int_equal(kv.vt->scan(kv.self, "k", 1, big, sizeof big, false, kvtest_collect, &seen),
                     0);
    assert_int_equal(seen.got.n, 1);
    kvm_free(&seen.got);
    assert_int_equal(kv.vt->get(kv.self, big, sizeof big, ignore, NULL), SEGIDX_ENOTFOUND);
    kv.vt->close(kv.self);
    kv.vt->close(NULL); /* accepted */
}

/* Values handed to callbacks point into the store: stable while the
 * callback runs, and a second get sees the same bytes. */
static int check_value(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    const uint8_t *want = ctx;
    return vlen == 3 && memcmp(val, want, 3) == 0 ? 0 : -99;
}

static void test_overwrite_replaces_value(void **state)
{
    (void)state;
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    for (int i = 0; i < 1000; i++) {
        uint8_t v[3] = { (uint8_t)i, (uint8_t)(i >> 8), 0x5A };
        segidx_kv_op ops[2] = { KVTEST_PUT("same", 4, v, 3), KVTEST_PUT("other", 5, v, i % 4) };
        assert_int_equal(kv.vt->write(kv.self, ops, 2), SEGIDX_OK);
        assert_int_equal(kv.vt->get(kv.self, "same", 4, check_value, v), 0);
    }
    kv.vt->close(kv.self);
}

/* ------------------------------------------------------------ re-entry */

typedef struct reenter_ctx {
    segidx_kv kv, other;
    int get_rc, scan_rc, write_rc, other_rc, inner_rc;
    bool nested; /* call `kv` again from inside a callback of `other` */
} reenter_ctx;

static int reenter_inner(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    reenter_ctx *c = ctx;
    c->inner_rc = c->kv.vt->get(c->kv.self, key, klen, ignore, NULL);
    return 0;
}

static int reenter(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    reenter_ctx *c = ctx;
    segidx_kv_op op = KVTEST_PUT("k2", 2, "v", 1);
    c->get_rc = c->kv.vt->get(c->kv.self, key, klen, ignore, NULL);
    c->scan_rc = c->kv.vt->scan(c->kv.self, NULL, 0, NULL, 0, false, ignore, NULL);
    c->write_rc = c->kv.vt->write(c->kv.self, &op, 1);
    c->other_rc = c->nested ? c->other.vt->get(c->other.self, "o", 1, reenter_inner, c)
                            : c->other.vt->get(c->other.self, "o", 1, ignore, NULL);
    return 0;
}

/* A callback that calls its own store again would hang (a write waits for
 * the callback's read lock; a second read queues behind any writer that
 * came in between): each such call answers SEGIDX_EINVAL at once, also
 * from a callback of another store called inside. Another store is fine,
 * and so is the same store once the call returned. */
static void test_calls_from_own_callback(void **state)
{
    (void)state;
    reenter_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(segidx_kv_mem_open(&c.kv), SEGIDX_OK);
    assert_int_equal(segidx_kv_mem_open(&c.other), SEGIDX_OK);
    segidx_kv_op op = KVTEST_PUT("k", 1, "v", 1), o = KVTEST_PUT("o", 1, "o", 1);
    assert_int_equal(c.kv.vt->write(c.kv.self, &op, 1), SEGIDX_OK);
    assert_int_equal(c.other.vt->write(c.other.self, &o, 1), SEGIDX_OK);
    for (int nested = 0; nested < 2; nested++) {
        for (int via_scan = 0; via_scan < 2; via_scan++) {
            c.nested = nested;
            c.get_rc = c.scan_rc = c.write_rc = c.other_rc = c.inner_rc = 1;
            int rc = via_scan ? c.kv.vt->scan(c.kv.self, NULL, 0, NULL, 0, true, reenter, &c)
                              : c.kv.vt->get(c.kv.self, "k", 1, reenter, &c);
            assert_int_equal(rc, 0);
            assert_int_equal(c.get_rc, SEGIDX_EINVAL);
            assert_int_equal(c.scan_rc, SEGIDX_EINVAL);
            assert_int_equal(c.write_rc, SEGIDX_EINVAL);
            assert_int_equal(c.other_rc, 0);
            assert_int_equal(c.inner_rc, nested ? SEGIDX_EINVAL : 1);
        }
    }
    /* Back out of the callbacks: everything works, nothing was written. */
    assert_int_equal(c.kv.vt->get(c.kv.self, "k2", 2, ignore, NULL), SEGIDX_ENOTFOUND);
    assert_int_equal(c.kv.vt->get(c.kv.self, "k", 1, ignore, NULL), 0);
    assert_int_equal(c.kv.vt->write(c.kv.self, &op, 1), SEGIDX_OK);
    c.other.vt->close(c.other.self);
    c.kv.vt->close(c.kv.self);
}

#if KVTEST_THREADS

/* ------------------------------------------------------------ the lock */

/* Waits, boundedly, until `done` says a thread is where the test wants it
 * (blocked on a lock, which nothing else can tell): no sleep decides the
 * outcome, the bound only turns a hang into a failure. */
static bool wait_until(bool (*done)(void *), void *arg)
{
    for (long i = 0; i < 60000; i++) { /* 1 ms each: a minute at most */
        if (done(arg))
            return true;
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    return false;
}

static unsigned long next_event(unsigned long *seq)
{
    return __atomic_add_fetch(seq, 1, __ATOMIC_SEQ_CST);
}

/* Reader A parks in a scan callback until released; writer W and reader B
 * come in while it is there. */
typedef struct order_test {
    segidx_kv kv;
    pthread_mutex_t m;
    pthread_cond_t cv;
    bool a_inside, a_release;
    unsigned long seq, a_in, a_out, w_start, w_done, b_start, b_read;
    int w_rc, a_rc, b_rc;
    char b_saw[8];
} order_test;

static int park_in_callback(void *ctx, const void *key, size_t klen, const void *val,
                            size_t vlen)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    order_test *t = ctx;
    pthread_mutex_lock(&t->m);
    t->a_in = next_event(&t->seq);
    t->a_inside = true;
    pthread_cond_broadcast(&t->cv);
    while (!t->a_release)
        pthread_cond_wait(&t->cv, &t->m);
    t->a_out = next_event(&t->seq);
    pthread_mutex_unlock(&t->m);
    return 0;
}

static void *reader_a(void *arg)
{
    order_test *t = arg;
    t->a_rc = t->kv.vt->scan(t->kv.self, NULL, 0, NULL, 0, false, park_in_callback, t);
    return NULL;
}

static void *writer_w(void *arg)
{
    order_test *t = arg;
    segidx_kv_op op = KVTEST_PUT("k", 1, "new", 3);
    t->w_start = next_event(&t->seq);
    t->w_rc = t->kv.vt->write(t->kv.self, &op, 1);
    t->w_done = next_event(&t->seq);
    return NULL;
}

static int note_read(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    order_test *t = ctx;
    t->b_read = next_event(&t->seq);
    memcpy(t->b_saw, val, vlen < sizeof t->b_saw - 1 ? vlen : sizeof t->b_saw - 1);
    return 0;
}

static void *reader_b(void *arg)
{
    order_test *t = arg;
    t->b_start = next_event(&t->seq);
    t->b_rc = t->kv.vt->get(t->kv.self, "k", 1, note_read, t);
    return NULL;
}

static bool writer_waits(void *arg)
{
    unsigned r, w;
    segidx__kv_mem_waiting(arg, &r, &w);
    return w == 1;
}

static bool reader_and_writer_wait(void *arg)
{
    unsigned r, w;
    segidx__kv_mem_waiting(arg, &r, &w);
    return r == 1 && w == 1;
}

/* Reader A is in a scan callback; writer W comes and waits for it; then
 * reader B comes. B must not overtake W (a reader-preferring lock lets it
 * in beside A, and a steady stream of such readers kept commits waiting
 * for minutes): B waits, and once A leaves, W writes first and B reads
 * what W wrote. */
static void test_readers_queue_behind_a_waiting_writer(void **state)
{
    (void)state;
    order_test *t = calloc(1, sizeof *t);
    assert_non_null(t);
    assert_int_equal(segidx_kv_mem_open(&t->kv), SEGIDX_OK);
    segidx_kv_op op = KVTEST_PUT("k", 1, "old", 3);
    assert_int_equal(t->kv.vt->write(t->kv.self, &op, 1), SEGIDX_OK);
    pthread_mutex_init(&t->m, NULL);
    pthread_cond_init(&t->cv, NULL);

    pthread_t a, w, b;
    assert_int_equal(pthread_create(&a, NULL, reader_a, t), 0);
    pthread_mutex_lock(&t->m);
    while (!t->a_inside)
        pthread_cond_wait(&t->cv, &t->m);
    pthread_mutex_unlock(&t->m);

    assert_int_equal(pthread_create(&w, NULL, writer_w, t), 0);
    assert_true(wait_until(writer_waits, &t->kv));
    assert_int_equal(pthread_create(&b, NULL, reader_b, t), 0);
    assert_true(wait_until(reader_and_writer_wait, &t->kv)); /* B is held back */
    assert_int_equal(__atomic_load_n(&t->b_read, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(__atomic_load_n(&t->w_done, __ATOMIC_SEQ_CST), 0);

    pthread_mutex_lock(&t->m);
    t->a_release = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->m);
    assert_int_equal(pthread_join(a, NULL), 0);
    assert_int_equal(pthread_join(w, NULL), 0);
    assert_int_equal(pthread_join(b, NULL), 0);

    assert_int_equal(t->a_rc, 0);
    assert_int_equal(t->w_rc, SEGIDX_OK);
    assert_int_equal(t->b_rc, 0);
    assert_true(t->a_in < t->w_start && t->w_start < t->b_start && t->b_start < t->a_out);
    assert_true(t->a_out < t->b_read);
    assert_string_equal(t->b_saw, "new"); /* B read after W wrote */
    unsigned r, wr;
    segidx__kv_mem_waiting(&t->kv, &r, &wr);
    assert_int_equal(r + wr, 0);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->m);
    t->kv.vt->close(t->kv.self);
    free(t);
}

/* The other side: readers waiting when a writer leaves go before the next
 * writer, so a stream of writers cannot starve readers either. Run on the
 * lock itself, which the test holds for writing where the store would
 * hold it only inside a write. */
typedef struct handoff_test {
    segidx__rwlock lock;
    unsigned long seq, reader_in, writer_in;
} handoff_test;

static void *handoff_reader(void *arg)
{
    handoff_test *t = arg;
    if (segidx__rwlock_rdlock(&t->lock) == SEGIDX_OK) {
        t->reader_in = next_event(&t->seq);
        segidx__rwlock_unlock(&t->lock);
    }
    return NULL;
}

static void *handoff_writer(void *arg)
{
    handoff_test *t = arg;
    segidx__rwlock_wrlock(&t->lock);
    t->writer_in = next_event(&t->seq);
    segidx__rwlock_unlock(&t->lock);
    return NULL;
}

static bool lock_has_waiting(handoff_test *t, unsigned readers, unsigned writers)
{
    unsigned r, w;
    segidx__rwlock_waiting(&t->lock, &r, &w);
    return r == readers && w == writers;
}

static bool one_reader_waits(void *arg)
{
    return lock_has_waiting(arg, 1, 0);
}

static bool reader_and_writer_wait_on_lock(void *arg)
{
    return lock_has_waiting(arg, 1, 1);
}

static void test_waiting_readers_go_before_the_next_writer(void **state)
{
    (void)state;
    handoff_test t;
    memset(&t, 0, sizeof t);
    assert_int_equal(segidx__rwlock_init(&t.lock), SEGIDX_OK);
    assert_int_equal(segidx__rwlock_wrlock(&t.lock), SEGIDX_OK);
    pthread_t r, w;
    assert_int_equal(pthread_create(&r, NULL, handoff_reader, &t), 0);
    assert_true(wait_until(one_reader_waits, &t));
    assert_int_equal(pthread_create(&w, NULL, handoff_writer, &t), 0);
    assert_true(wait_until(reader_and_writer_wait_on_lock, &t));
    segidx__rwlock_unlock(&t.lock);
    assert_int_equal(pthread_join(r, NULL), 0);
    assert_int_equal(pthread_join(w, NULL), 0);
    assert_int_equal(t.reader_in, 1);
    assert_int_equal(t.writer_in, 2);
    assert_true(lock_has_waiting(&t, 0, 0));
    segidx__rwlock_destroy(&t.lock);
}

/* Readers read without a pause while one writer writes a fixed number of
 * times: every write gets through (with a reader-preferring lock and a
 * few busy readers this did not finish), and every read sees a counter
 * that never goes back. Not timed: a starved writer simply hangs the run. */
enum { STRESS_READERS = 4 };

typedef struct stress_reader {
    segidx_kv kv;
    const int *writer_done;
    long reads;
    const char *error;
    pthread_t tid;
} stress_reader;

static int read_counter(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    if (vlen != 8)
        return -1;
    memcpy(ctx, val, 8);
    return 0;
}

static void *stress_read(void *arg)
{
    stress_reader *t = arg;
    uint64_t last = 0;
    while (!__atomic_load_n(t->writer_done, __ATOMIC_ACQUIRE) && !t->error) {
        uint64_t v = 0;
        int rc = t->reads % 2
                     ? t->kv.vt->get(t->kv.self, "n", 1, read_counter, &v)
                     : t->kv.vt->scan(t->kv.self, "n", 1, "o", 1, false, read_counter, &v);
        if ((rc != 0 && rc != SEGIDX_ENOTFOUND) || v < last)
            t->error = rc ? "read failed" : "the counter went back";
        last = v;
        t->reads++;
    }
    return NULL;
}

static void test_writer_gets_through_busy_readers(void **state)
{
    (void)state;
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    int writer_done = 0;
    stress_reader th[STRESS_READERS];
    memset(th, 0, sizeof th);
    for (int i = 0; i < STRESS_READERS; i++) {
        th[i].kv = kv;
        th[i].writer_done = &writer_done;
        assert_int_equal(pthread_create(&th[i].tid, NULL, stress_read, &th[i]), 0);
    }
    long writes = test_scaled_threads(3000);
    for (uint64_t i = 1; i <= (uint64_t)writes; i++) {
        segidx_kv_op op = KVTEST_PUT("n", 1, &i, 8);
        assert_int_equal(kv.vt->write(kv.self, &op, 1), SEGIDX_OK);
    }
    __atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
    long reads = 0;
    for (int i = 0; i < STRESS_READERS; i++) {
        assert_int_equal(pthread_join(th[i].tid, NULL), 0);
        assert_null(th[i].error);
        reads += th[i].reads;
    }
    assert_int_equal(kvtest_counter(kv, "n", 1), (uint64_t)writes);
    print_message("%ld writes through %d readers (%ld reads)\n", writes, STRESS_READERS, reads);
    kv.vt->close(kv.self);
}

#define LOCK_TESTS                                                                  \
    cmocka_unit_test(test_readers_queue_behind_a_waiting_writer),                   \
    cmocka_unit_test(test_waiting_readers_go_before_the_next_writer),               \
    cmocka_unit_test(test_writer_gets_through_busy_readers),
#else
#define LOCK_TESTS
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        KVTEST_SUITE(&mem_store),
        cmocka_unit_test(test_many_sequential_keys),
        cmocka_unit_test(test_many_random_keys),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_overwrite_replaces_value),
        cmocka_unit_test(test_calls_from_own_callback),
        LOCK_TESTS
    };
    return cmocka_run_group_tests_name("kv_mem", tests, NULL, NULL);
}
