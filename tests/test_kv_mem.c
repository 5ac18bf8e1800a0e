/* The in-memory KV: the conformance suite (tests/kvtest.h), growth that
 * stays logarithmic, and its own argument checks. */
#include "kvtest.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        KVTEST_SUITE(&mem_store),
        cmocka_unit_test(test_many_sequential_keys),
        cmocka_unit_test(test_many_random_keys),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_overwrite_replaces_value),
    };
    return cmocka_run_group_tests_name("kv_mem", tests, NULL, NULL);
}
