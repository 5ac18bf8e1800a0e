/* The loader's request limiter (src/limiter.c) on its own: the edges of
 * its cap (none, 1, the largest), keys that differ in one byte, a table
 * that grows and empties, a permit asked for twice by its holder, random
 * operations against a model, and threads: one holder per key, never more
 * than the cap over all keys, and a waiter that gets in exactly when the
 * holder lets go. */
#include "testutil.h"

#include "limiter.h"

#include <limits.h>

#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
#define LIMITER_THREADS 1
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#else
#define LIMITER_THREADS 0
#endif

/* Key number i: its bytes spell i in the first 8 and a fixed pattern in
 * the last 8, so keys differ in as few as one byte. */
static void key_of(uint64_t i, uint8_t key[16])
{
    memcpy(key, &i, 8);
    memset(key + 8, 0xA5, 8);
}

static void test_new_and_free_edges(void **state)
{
    (void)state;
    assert_int_equal(segidx__limiter_new(0, NULL), SEGIDX_EINVAL);
    static const unsigned caps[] = { 0, 1, 2, UINT_MAX };
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        segidx__limiter *l = NULL;
        assert_int_equal(segidx__limiter_new(caps[c], &l), SEGIDX_OK);
        assert_non_null(l);
        assert_int_equal(segidx__limiter_held(l), 0);
        assert_int_equal(segidx__limiter_peak(l), 0);
        segidx__limiter_free(l);
    }
    segidx__limiter_free(NULL);
}

/* One permit with a cap of 1: taken, refused to its own holder (nothing
 * more held then), given back, taken again; a release of a key nobody
 * holds, or given back twice, changes nothing. */
static void test_one_key_cap_one(void **state)
{
    (void)state;
    segidx__limiter *l;
    assert_int_equal(segidx__limiter_new(1, &l), SEGIDX_OK);
    uint8_t k[16], other[16];
    key_of(7, k);
    key_of(8, other);
    segidx__limiter_release(l, k); /* never taken */
    assert_int_equal(segidx__limiter_held(l), 0);
    assert_int_equal(segidx__limiter_acquire(l, k), SEGIDX_OK);
    assert_int_equal(segidx__limiter_held(l), 1);
    assert_int_equal(segidx__limiter_acquire(l, k), SEGIDX_EINVAL);
    assert_int_equal(segidx__limiter_held(l), 1);
    segidx__limiter_release(l, other); /* not held: no slot comes free */
    assert_int_equal(segidx__limiter_held(l), 1);
    segidx__limiter_release(l, k);
    assert_int_equal(segidx__limiter_held(l), 0);
    segidx__limiter_release(l, k); /* twice */
    assert_int_equal(segidx__limiter_held(l), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(segidx__limiter_acquire(l, i & 1 ? other : k), SEGIDX_OK);
        segidx__limiter_release(l, i & 1 ? other : k);
    }
    assert_int_equal(segidx__limiter_peak(l), 1);
    segidx__limiter_free(l);
}

/* Keys that differ in a single byte (any of the 16) are different
 * permits: all held at once. */
static void test_keys_one_byte_apart(void **state)
{
    (void)state;
    segidx__limiter *l;
    assert_int_equal(segidx__limiter_new(0, &l), SEGIDX_OK);
    uint8_t base[16] = { 0 };
    assert_int_equal(segidx__limiter_acquire(l, base), SEGIDX_OK);
    uint8_t keys[16][16];
    for (int b = 0; b < 16; b++) {
        memcpy(keys[b], base, 16);
        keys[b][b] = 1;
        assert_int_equal(segidx__limiter_acquire(l, keys[b]), SEGIDX_OK);
    }
    assert_int_equal(segidx__limiter_held(l), 17);
    for (int b = 0; b < 16; b++)
        assert_int_equal(segidx__limiter_acquire(l, keys[b]), SEGIDX_EINVAL);
    for (int b = 0; b < 16; b++)
        segidx__limiter_release(l, keys[b]);
    segidx__limiter_release(l, base);
    assert_int_equal(segidx__limiter_held(l), 0);
    assert_int_equal(segidx__limiter_peak(l), 17);
    segidx__limiter_free(l);
}

/* Many keys at once (the table grows well past its first size), all given
 * back, and taken again from the entries kept for reuse; a cap of
 * UINT_MAX is no cap in practice. */
static void test_many_keys_grow_and_reuse(void **state)
{
    (void)state;
    enum { KEYS = 5000 };
    segidx__limiter *l;
    assert_int_equal(segidx__limiter_new(UINT_MAX, &l), SEGIDX_OK);
    uint8_t k[16];
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < KEYS; i++) {
            key_of(i * 0x10001, k);
            assert_int_equal(segidx__limiter_acquire(l, k), SEGIDX_OK);
        }
        assert_int_equal(segidx__limiter_held(l), KEYS);
        for (uint64_t i = 0; i < KEYS; i += 97) {
            key_of(i * 0x10001, k);
            assert_int_equal(segidx__limiter_acquire(l, k), SEGIDX_EINVAL);
        }
        /* Given back in another order than taken. */
        for (uint64_t i = KEYS; i-- > 0;) {
            key_of(((i * 7919) % KEYS) * 0x10001, k);
            segidx__limiter_release(l, k);
        }
        assert_int_equal(segidx__limiter_held(l), 0);
        assert_int_equal(segidx__limiter_peak(l), KEYS);
    }
    segidx__limiter_free(l);
}

/* Whatever a misuse leaves held is freed with the limiter (no leak for
 * the sanitizers and valgrind to find). */
static void test_free_with_permits_held(void **state)
{
    (void)state;
    segidx__limiter *l;
    assert_int_equal(segidx__limiter_new(3, &l), SEGIDX_OK);
    uint8_t k[16];
    for (uint64_t i = 0; i < 3; i++) {
        key_of(i, k);
        assert_int_equal(segidx__limiter_acquire(l, k), SEGIDX_OK);
    }
    segidx__limiter_free(l);
}

/* Random acquires and releases from one thread over a small pool of keys,
 * against a model: the set of keys held. A held key asked for again is
 * EINVAL; a release of a key not held changes nothing; held() is the
 * model's size and peak() its largest. With a cap, a key is only asked
 * for while a slot is free (the one thread would wait for itself). */
static void test_random_against_model(void **state)
{
    (void)state;
    enum { POOL = 40 };
    static const unsigned caps[] = { 0, 1, 3, 17, UINT_MAX };
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        unsigned cap = caps[c];
        test_rng r = { 0x11A1700 + c };
        segidx__limiter *l;
        assert_int_equal(segidx__limiter_new(cap, &l), SEGIDX_OK);
        bool held[POOL] = { false };
        unsigned n = 0, peak = 0;
        long ops = test_scaled_threads(20000);
        for (long i = 0; i < ops; i++) {
            unsigned j = (unsigned)rng_below(&r, POOL);
            uint8_t k[16];
            /* Keys j and j ^ 1 differ in one bit of one byte. */
            key_of(j, k);
            if (rng_below(&r, 2)) {
                if (held[j]) {
                    assert_int_equal(segidx__limiter_acquire(l, k), SEGIDX_EINVAL);
                } else if (!cap || n < cap) {
                    assert_int_equal(segidx__limiter_acquire(l, k), SEGIDX_OK);
                    held[j] = true;
                    n++;
                    peak = n > peak ? n : peak;
                }
            } else {
                segidx__limiter_release(l, k);
                n -= held[j];
                held[j] = false;
            }
            assert_int_equal(segidx__limiter_held(l), n);
            assert_int_equal(segidx__limiter_peak(l), peak);
        }
        for (unsigned j = 0; j < POOL; j++) {
            uint8_t k[16];
            key_of(j, k);
            segidx__limiter_release(l, k);
        }
        assert_int_equal(segidx__limiter_held(l), 0);
        assert_true(!cap || peak <= cap);
        segidx__limiter_free(l);
    }
}

#if LIMITER_THREADS

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------ a waiter, step by step */

struct waiter {
    segidx__limiter *l;
    uint8_t key[16];
    atomic_int started, inside;
    int rc;
};

static void *waiter_run(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->started, 1);
    w->rc = segidx__limiter_acquire(w->l, w->key);
    atomic_store(&w->inside, 1);
    return NULL;
}

/* The main thread holds a permit (its key's, or with a cap of 1 the only
 * slot); a thread asks for `key` and must not get in until the main thread
 * lets go. Not getting in is checked after a pause: a correct limiter can
 * never fail it, however the threads are scheduled. */
static void wait_behind(unsigned cap, uint64_t held_key, uint64_t asked_key)
{
    segidx__limiter *l;
    assert_int_equal(segidx__limiter_new(cap, &l), SEGIDX_OK);
    uint8_t mine[16];
    key_of(held_key, mine);
    assert_int_equal(segidx__limiter_acquire(l, mine), SEGIDX_OK);
    struct waiter w = { .l = l };
    key_of(asked_key, w.key);
    atomic_init(&w.started, 0);
    atomic_init(&w.inside, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_run, &w), 0);
    while (!atomic_load(&w.started))
        sleep_ms(1);
    sleep_ms(30);
    assert_int_equal(atomic_load(&w.inside), 0);
    assert_int_equal(segidx__limiter_held(l), 1);
    segidx__limiter_release(l, mine);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.rc, SEGIDX_OK);
    assert_int_equal(atomic_load(&w.inside), 1);
    assert_int_equal(segidx__limiter_held(l), 1);
    /* The permit is the waiter's now: the main thread may take it back
     * once the waiter (gone) gives it back, here on its behalf. */
    segidx__limiter_release(l, w.key);
    assert_int_equal(segidx__limiter_held(l), 0);
    assert_int_equal(segidx__limiter_peak(l), 1);
    segidx__limiter_free(l);
}

static void test_waiter_same_key(void **state)
{
    (void)state;
    wait_behind(0, 5, 5);
    wait_behind(UINT_MAX, 5, 5);
}

static void test_waiter_for_the_only_slot(void **state)
{
    (void)state;
    wait_behind(1, 5, 6);
}

/* ------------------------------------------------ many threads, one key */

enum { THREADS = 4 };

struct crowd {
    segidx__limiter *l;
    unsigned keys;          /* threads pick keys in [0, keys) */
    unsigned cap;           /* the limiter's cap, 0 for none */
    long rounds;
    atomic_int inside;      /* holders right now, over all keys */
    atomic_int most;        /* the most holders seen at once */
    atomic_int per_key[THREADS];
    long counter[THREADS];  /* plain: only a key's holder touches its own */
    atomic_int failures;
};

struct crowd_arg {
    struct crowd *c;
    unsigned id;
};

static void *crowd_run(void *arg)
{
    struct crowd_arg *a = arg;
    struct crowd *c = a->c;
    test_rng r = { 0xC0FFEE + a->id };
    for (long i = 0; i < c->rounds; i++) {
        unsigned j = (unsigned)rng_below(&r, c->keys);
        uint8_t k[16];
        key_of(j, k);
        if (segidx__limiter_acquire(c->l, k) != SEGIDX_OK) {
            atomic_fetch_add(&c->failures, 1);
            continue;
        }
        if (atomic_fetch_add(&c->per_key[j], 1) != 0)
            atomic_fetch_add(&c->failures, 1); /* two holders of one key */
        int now = atomic_fetch_add(&c->inside, 1) + 1;
        for (int m = atomic_load(&c->most); now > m;)
            if (atomic_compare_exchange_weak(&c->most, &m, now))
                break;
        c->counter[j]++; /* a data race, for TSan, unless holders exclude */
        if (rng_below(&r, 8) == 0)
            sched_yield();
        atomic_fetch_sub(&c->inside, 1);
        atomic_fetch_sub(&c->per_key[j], 1);
        segidx__limiter_release(c->l, k);
    }
    return NULL;
}

static void crowd(unsigned keys, unsigned cap)
{
    struct crowd c = { .keys = keys, .cap = cap, .rounds = test_scaled_threads(20000) };
    assert_int_equal(segidx__limiter_new(cap, &c.l), SEGIDX_OK);
    atomic_init(&c.inside, 0);
    atomic_init(&c.most, 0);
    atomic_init(&c.failures, 0);
    for (int i = 0; i < THREADS; i++)
        atomic_init(&c.per_key[i], 0);
    pthread_t t[THREADS];
    struct crowd_arg a[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        a[i] = (struct crowd_arg){ &c, i };
        assert_int_equal(pthread_create(&t[i], NULL, crowd_run, &a[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(atomic_load(&c.failures), 0);
    long total = 0;
    for (unsigned j = 0; j < keys; j++)
        total += c.counter[j];
    assert_int_equal(total, THREADS * c.rounds);
    unsigned bound = cap && cap < keys ? cap : keys;
    assert_true((unsigned)atomic_load(&c.most) <= bound);
    assert_true(segidx__limiter_peak(c.l) <= bound);
    assert_int_equal(segidx__limiter_held(c.l), 0);
    segidx__limiter_free(c.l);
}

/* One key: one holder at a time, every round done. */
static void test_threads_one_key(void **state)
{
    (void)state;
    crowd(1, 0);
}

/* As many keys as threads under a cap of 2 and of 1: never more holders
 * than the cap, and never two of one key. */
static void test_threads_under_a_cap(void **state)
{
    (void)state;
    crowd(THREADS, 2);
    crowd(THREADS, 1);
    crowd(2, 0);
}

#endif /* LIMITER_THREADS */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_free_edges),
        cmocka_unit_test(test_one_key_cap_one),
        cmocka_unit_test(test_keys_one_byte_apart),
        cmocka_unit_test(test_many_keys_grow_and_reuse),
        cmocka_unit_test(test_free_with_permits_held),
        cmocka_unit_test(test_random_against_model),
#if LIMITER_THREADS
        cmocka_unit_test(test_waiter_same_key),
        cmocka_unit_test(test_waiter_for_the_only_slot),
        cmocka_unit_test(test_threads_one_key),
        cmocka_unit_test(test_threads_under_a_cap),
#endif
    };
    return cmocka_run_group_tests_name("request limiter", tests, NULL, NULL);
}
