/* A conformance suite for any segidx_kv, checked against a brute-force
 * model (a sorted array of key/value pairs).
 *
 * A test file describes how to open a fresh, empty store and lists the
 * suite among its tests:
 *
 *     static int open_mine(void *ctx, segidx_kv *out) { ... }
 *     static kvtest_store mine = { "mine", open_mine, NULL };
 *     const struct CMUnitTest tests[] = { KVTEST_SUITE(&mine), ... };
 *
 * What it checks is the vtable's contract in segidx.h, version 2 (the
 * SEGIDX_KV_EXPECT tests: a version-1 store leaves them out), plus the
 * argument rules both bundled stores share (an empty key, an unknown op
 * code or NULL with a non-zero length is SEGIDX_EINVAL, in an EXPECT too,
 * and nothing of the batch is applied): a host store that answers
 * differently can skip kvtest_invalid_batches.
 */
#ifndef SEGIDX_KVTEST_H
#define SEGIDX_KVTEST_H

#include "testutil.h"

#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
#define KVTEST_THREADS 1
#include <pthread.h>
#include <sched.h>
#else
#define KVTEST_THREADS 0
#endif

typedef struct kvtest_store {
    const char *name;
    /* Open a fresh, empty store; 0 or a SEGIDX_E* code. */
    int (*open)(void *ctx, segidx_kv *out);
    void *ctx;
} kvtest_store;

static inline segidx_kv kvtest_open(void **state)
{
    const kvtest_store *s = *state;
    segidx_kv kv = { NULL, NULL };
    assert_int_equal(s->open(s->ctx, &kv), SEGIDX_OK);
    assert_non_null(kv.vt);
    assert_int_equal(kv.vt->version, SEGIDX_KV_VTABLE_VERSION);
    return kv;
}

static inline void kvtest_close(segidx_kv kv)
{
    kv.vt->close(kv.self);
}

/* ------------------------------------------------------------ the model */

typedef struct kvm_entry {
    uint8_t *k, *v;
    size_t klen, vlen;
} kvm_entry;

/* Sorted by key (memcmp order, shorter first on a shared prefix); unique. */
typedef struct kvm {
    kvm_entry *e;
    size_t n, cap;
} kvm;

static inline int kvtest_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

/* The first index whose key is >= key. */
static inline size_t kvm_lower_bound(const kvm *m, const void *key, size_t klen)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kvtest_key_cmp(m->e[mid].k, m->e[mid].klen, key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline const kvm_entry *kvm_find(const kvm *m, const void *key, size_t klen)
{
    size_t i = kvm_lower_bound(m, key, klen);
    if (i < m->n && kvtest_key_cmp(m->e[i].k, m->e[i].klen, key, klen) == 0)
        return &m->e[i];
    return NULL;
}

static inline uint8_t *kvtest_dup(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static inline void kvm_put(kvm *m, const void *key, size_t klen, const void *val, size_t vlen)
{
    size_t i = kvm_lower_bound(m, key, klen);
    if (i < m->n && kvtest_key_cmp(m->e[i].k, m->e[i].klen, key, klen) == 0) {
        free(m->e[i].v);
        m->e[i].v = kvtest_dup(val, vlen);
        m->e[i].vlen = vlen;
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap * 2 + 16;
        m->e = realloc(m->e, m->cap * sizeof *m->e);
        assert_non_null(m->e);
    }
    memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
    m->e[i] = (kvm_entry){ kvtest_dup(key, klen), kvtest_dup(val, vlen), klen, vlen };
    m->n++;
}

static inline void kvm_del(kvm *m, const void *key, size_t klen)
{
    size_t i = kvm_lower_bound(m, key, klen);
    if (i < m->n && kvtest_key_cmp(m->e[i].k, m->e[i].klen, key, klen) == 0) {
        free(m->e[i].k);
        free(m->e[i].v);
        memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
        m->n--;
    }
}

static inline void kvm_apply(kvm *m, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].op == SEGIDX_KV_PUT)
            kvm_put(m, ops[i].key, ops[i].klen, ops[i].val, ops[i].vlen);
        else if (ops[i].op == SEGIDX_KV_DEL)
            kvm_del(m, ops[i].key, ops[i].klen);
    }
}

/* Whether every EXPECT of a batch holds in the model as it is before the
 * batch. */
static inline bool kvm_expects_hold(const kvm *m, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].op != SEGIDX_KV_EXPECT)
            continue;
        const kvm_entry *e = kvm_find(m, ops[i].key, ops[i].klen);
        bool holds = !ops[i].val ? e == NULL
                                 : e && e->vlen == ops[i].vlen &&
                                       (e->vlen == 0 || memcmp(e->v, ops[i].val, e->vlen) == 0);
        if (!holds)
            return false;
    }
    return true;
}

static inline void kvm_free(kvm *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].k);
        free(m->e[i].v);
    }
    free(m->e);
    *m = (kvm){ 0 };
}

/* ------------------------------------------------------------ visiting */

/* What a scan or get handed to its callback, copied; stops with `stop_rc`
 * once `stop_after` pairs were taken, if stop_after >= 0. */
typedef struct kvtest_seen {
    kvm got; /* in visit order, not sorted */
    long stop_after;
    int stop_rc;
} kvtest_seen;

static inline int kvtest_collect(void *ctx, const void *key, size_t klen, const void *val,
                                 size_t vlen)
{
    kvtest_seen *s = ctx;
    if (s->stop_after >= 0 && (long)s->got.n == s->stop_after)
        return s->stop_rc;
    assert_true(key != NULL || klen == 0);
    assert_true(val != NULL || vlen == 0);
    kvm *m = &s->got;
    if (m->n == m->cap) {
        m->cap = m->cap * 2 + 16;
        m->e = realloc(m->e, m->cap * sizeof *m->e);
        assert_non_null(m->e);
    }
    m->e[m->n++] = (kvm_entry){ kvtest_dup(key, klen), kvtest_dup(val, vlen), klen, vlen };
    return 0;
}

static inline void kvtest_assert_entry(const kvm_entry *got, const kvm_entry *want)
{
    assert_int_equal(got->klen, want->klen);
    if (want->klen)
        assert_memory_equal(got->k, want->k, want->klen);
    assert_int_equal(got->vlen, want->vlen);
    if (want->vlen)
        assert_memory_equal(got->v, want->v, want->vlen);
}

/* Scan [lo, hi) and compare with the model, in full and stopped early. */
static inline void kvtest_check_range(segidx_kv kv, const kvm *m, const void *lo, size_t lolen,
                                      const void *hi, size_t hilen, bool reverse,
                                      long stop_after)
{
    size_t i0 = lolen ? kvm_lower_bound(m, lo, lolen) : 0;
    size_t i1 = hilen ? kvm_lower_bound(m, hi, hilen) : m->n;
    if (i1 < i0)
        i1 = i0; /* lo >= hi: nothing */
    size_t want = i1 - i0;
    kvtest_seen s = { { 0 }, stop_after, 0 };
    s.stop_rc = stop_after % 2 ? 42 : -1000 - (int)stop_after;
    int rc = kv.vt->scan(kv.self, lo, lolen, hi, hilen, reverse, kvtest_collect, &s);
    bool stopped = stop_after >= 0 && (size_t)stop_after < want;
    if (stopped) {
        assert_int_equal(rc, s.stop_rc);
        assert_int_equal(s.got.n, (size_t)stop_after);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(s.got.n, want);
    }
    for (size_t j = 0; j < s.got.n; j++)
        kvtest_assert_entry(&s.got.e[j], &m->e[reverse ? i1 - 1 - j : i0 + j]);
    kvm_free(&s.got);
}

static inline void kvtest_check_get(segidx_kv kv, const kvm *m, const void *key, size_t klen)
{
    const kvm_entry *want = kvm_find(m, key, klen);
    kvtest_seen s = { { 0 }, -1, 0 };
    int rc = kv.vt->get(kv.self, key, klen, kvtest_collect, &s);
    if (want) {
        assert_int_equal(rc, 0);
        assert_int_equal(s.got.n, 1);
        kvtest_assert_entry(&s.got.e[0], want);
    } else {
        assert_int_equal(rc, SEGIDX_ENOTFOUND);
        assert_int_equal(s.got.n, 0);
    }
    kvm_free(&s.got);
}

/* The whole store, both ways, and every key's get. */
static inline void kvtest_check_all(segidx_kv kv, const kvm *m)
{
    kvtest_check_range(kv, m, NULL, 0, NULL, 0, false, -1);
    kvtest_check_range(kv, m, NULL, 0, NULL, 0, true, -1);
    for (size_t i = 0; i < m->n; i++)
        kvtest_check_get(kv, m, m->e[i].k, m->e[i].klen);
}

static inline void kvtest_write_ok(segidx_kv kv, kvm *m, const segidx_kv_op *ops, size_t n)
{
    assert_int_equal(kv.vt->write(kv.self, ops, n), SEGIDX_OK);
    kvm_apply(m, ops, n);
}

#define KVTEST_PUT(k, kl, v, vl) ((segidx_kv_op){ SEGIDX_KV_PUT, (k), (kl), (v), (vl) })
#define KVTEST_DEL(k, kl) ((segidx_kv_op){ SEGIDX_KV_DEL, (k), (kl), NULL, 0 })
/* `key` holds exactly v/vl; v NULL: `key` is absent. */
#define KVTEST_EXPECT(k, kl, v, vl) ((segidx_kv_op){ SEGIDX_KV_EXPECT, (k), (kl), (v), (vl) })

/* A batch whose EXPECTs fail: SEGIDX_ECONFLICT, and the store is still
 * exactly the model, every key and value byte for byte. */
static inline void kvtest_write_conflicts(segidx_kv kv, const kvm *m, const segidx_kv_op *ops,
                                          size_t n)
{
    assert_false(kvm_expects_hold(m, ops, n));
    assert_int_equal(kv.vt->write(kv.self, ops, n), SEGIDX_ECONFLICT);
    kvtest_check_all(kv, m);
    for (size_t i = 0; i < n; i++)
        kvtest_check_get(kv, m, ops[i].key, ops[i].klen);
}

/* ------------------------------------------------------------ generators */

#define KVTEST_MAX_KEY 64
#define KVTEST_MAX_VAL 3000

/* Bytes that sit at the edges of memcmp order, and one in the middle. */
static const uint8_t kvtest_alphabet[] = { 0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 'a' };

/* A key, often related to one the model holds: itself, a prefix of it, it
 * with a byte more; otherwise short keys over a small alphabet (so they
 * collide and prefix each other) or longer random ones. */
static inline size_t kvtest_gen_key(test_rng *r, const kvm *m, uint8_t *buf)
{
    uint64_t mode = rng_below(r, 10);
    if (m->n && mode >= 5) {
        const kvm_entry *e = &m->e[rng_below(r, m->n)];
        size_t len = e->klen;
        memcpy(buf, e->k, len);
        if (mode == 7 && len > 1)
            return len - 1 - rng_below(r, len - 1); /* a proper prefix */
        if (mode == 8 && len < KVTEST_MAX_KEY) {
            buf[len] = kvtest_alphabet[rng_below(r, sizeof kvtest_alphabet)];
            return len + 1;
        }
        return len;
    }
    if (mode == 4) {
        size_t len = 8 + rng_below(r, KVTEST_MAX_KEY - 8 + 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next(r);
        return len;
    }
    size_t len = 1 + rng_below(r, 5);
    for (size_t i = 0; i < len; i++)
        buf[i] = kvtest_alphabet[rng_below(r, sizeof kvtest_alphabet)];
    return len;
}

static inline size_t kvtest_gen_val(test_rng *r, uint8_t *buf)
{
    uint64_t mode = rng_below(r, 20);
    size_t len = mode < 6 ? 0 : mode < 19 ? 1 + rng_below(r, 32)
                                          : 200 + rng_below(r, KVTEST_MAX_VAL - 200 + 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rng_next(r);
    return len;
}

/* A scan bound: empty (no bound) a fifth of the time, else a key. */
static inline size_t kvtest_gen_bound(test_rng *r, const kvm *m, uint8_t *buf)
{
    return rng_below(r, 5) == 0 ? 0 : kvtest_gen_key(r, m, buf);
}

/* A batch of up to 12 operations, and room for 4 EXPECTs more, with the
 * bytes they point to. */
typedef struct kvtest_batch {
    segidx_kv_op ops[16];
    uint8_t keys[16][KVTEST_MAX_KEY + 1];
    uint8_t vals[16][KVTEST_MAX_VAL + 1];
    size_t n;
} kvtest_batch;

static inline void kvtest_gen_batch(test_rng *r, const kvm *m, kvtest_batch *b)
{
    b->n = 1 + rng_below(r, 12);
    for (size_t i = 0; i < b->n; i++) {
        size_t klen;
        if (i && rng_below(r, 6) == 0) { /* an earlier key of this batch again */
            const segidx_kv_op *prev = &b->ops[rng_below(r, i)];
            klen = prev->klen;
            memcpy(b->keys[i], prev->key, klen);
        } else {
            klen = kvtest_gen_key(r, m, b->keys[i]);
        }
        if (rng_below(r, 3) == 0) {
            b->ops[i] = KVTEST_DEL(b->keys[i], klen);
        } else {
            size_t vlen = kvtest_gen_val(r, b->vals[i]);
            /* An empty value's pointer may be NULL. */
            b->ops[i] = KVTEST_PUT(b->keys[i], klen, vlen || rng_below(r, 2) ? b->vals[i] : NULL,
                                   vlen);
        }
    }
}

/* ------------------------------------------------------------ tests */

/* Random batches against the model; after each, gets of present and absent
 * keys and scans over random bounds, both ways, some stopped early. */
static inline void kvtest_random_batches(void **state)
{
    const kvtest_store *st = *state;
    test_rng r = { 0x4B56000001ull };
    segidx_kv kv = kvtest_open(state);
    kvm m = { 0 };
    kvtest_batch *b = malloc(sizeof *b);
    assert_non_null(b);
    uint8_t lo[KVTEST_MAX_KEY + 1], hi[KVTEST_MAX_KEY + 1], key[KVTEST_MAX_KEY + 1];
    int batches = 300;
    for (int round = 0; round < batches; round++) {
        kvtest_gen_batch(&r, &m, b);
        kvtest_write_ok(kv, &m, b->ops, b->n);

        for (int i = 0; i < 12; i++) {
            size_t klen = kvtest_gen_key(&r, &m, key);
            kvtest_check_get(kv, &m, key, klen);
        }
        for (int i = 0; i < 12; i++) {
            size_t lolen = kvtest_gen_bound(&r, &m, lo), hilen = kvtest_gen_bound(&r, &m, hi);
            long stop = rng_below(&r, 3) == 0 ? (long)rng_below(&r, 8) : -1;
            kvtest_check_range(kv, &m, lo, lolen, hi, hilen, i % 2, stop);
            kvtest_check_range(kv, &m, hi, hilen, lo, lolen, i % 2 == 0, -1);
        }
        if (round % 50 == 49 || round == batches - 1)
            kvtest_check_all(kv, &m);
    }
    print_message("kvtest[%s]: %zu keys after %d batches\n", st->name, m.n, batches);
    free(b);
    kvm_free(&m);
    kvtest_close(kv);
}

/* Keys that are each other's prefixes and bytes at the edges of memcmp
 * order come back in order, with exactly their bytes. */
static inline void kvtest_exact_bytes(void **state)
{
    segidx_kv kv = kvtest_open(state);
    kvm m = { 0 };
    static const uint8_t k00[] = { 0x00 }, k0000[] = { 0x00, 0x00 }, k01[] = { 0x01 },
                         kff[] = { 0xFF }, kffff[] = { 0xFF, 0xFF, 0xFF }, ka00[] = { 'a', 0x00 };
    static const uint8_t vzeros[] = { 0, 0, 0, 1, 0 };
    uint8_t klong[300], vlong[5000];
    for (size_t i = 0; i < sizeof klong; i++)
        klong[i] = (uint8_t)(0xFE + i * 7); /* sorts between "abc" and 0xFF */
    for (size_t i = 0; i < sizeof vlong; i++)
        vlong[i] = (uint8_t)(i * 13 + 1);
    segidx_kv_op ops[] = {
        KVTEST_PUT(kffff, 3, "fff", 3), KVTEST_PUT(k00, 1, "", 0),
        KVTEST_PUT(k0000, 2, vzeros, sizeof vzeros), KVTEST_PUT("a", 1, "A", 1),
        KVTEST_PUT(ka00, 2, NULL, 0), KVTEST_PUT("ab", 2, "AB", 2),
        KVTEST_PUT("abc", 3, vlong, sizeof vlong), KVTEST_PUT(kff, 1, "f", 1),
        KVTEST_PUT(k01, 1, "1", 1), KVTEST_PUT(klong, sizeof klong, "long", 4),
    };
    kvtest_write_ok(kv, &m, ops, sizeof ops / sizeof *ops);
    kvtest_check_all(kv, &m);

    /* The order, spelled out. */
    static const char *const order[] = { "\x00", "\x00\x00", "\x01", "a", "a\x00", "ab", "abc" };
    kvtest_seen s = { { 0 }, -1, 0 };
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, kvtest_collect, &s), 0);
    assert_int_equal(s.got.n, 10);
    static const size_t order_len[] = { 1, 2, 1, 1, 2, 2, 3 };
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(s.got.e[i].klen, order_len[i]);
        assert_memory_equal(s.got.e[i].k, order[i], order_len[i]);
    }
    assert_int_equal(s.got.e[7].klen, sizeof klong); /* 0xFE 0x05 ... */
    assert_int_equal(s.got.e[8].klen, 1);            /* 0xFF */
    assert_int_equal(s.got.e[9].klen, 3);            /* 0xFF 0xFF 0xFF */
    assert_int_equal(s.got.e[1].vlen, sizeof vzeros);
    assert_memory_equal(s.got.e[1].v, vzeros, sizeof vzeros);
    assert_int_equal(s.got.e[0].vlen, 0);
    assert_int_equal(s.got.e[6].vlen, sizeof vlong);
    assert_memory_equal(s.got.e[6].v, vlong, sizeof vlong);
    kvm_free(&s.got);

    /* Bounds between neighbours that prefix each other. */
    kvtest_check_range(kv, &m, "a", 1, "ab", 2, false, -1);          /* a, a\0 */
    kvtest_check_range(kv, &m, "a", 1, "ab", 2, true, -1);
    kvtest_check_range(kv, &m, ka00, 2, "abc", 3, false, -1);        /* a\0, ab */
    kvtest_check_range(kv, &m, k00, 1, k0000, 2, true, -1);          /* \0 */
    kvtest_check_range(kv, &m, kff, 1, NULL, 0, true, -1);           /* ff, ffffff */
    kvtest_check_range(kv, &m, NULL, 0, k01, 1, true, -1);           /* \0\0, \0 */
    kvtest_check_range(kv, &m, kffff, 3, NULL, 0, false, -1);        /* ffffff */
    static const uint8_t kffff_more[] = { 0xFF, 0xFF, 0xFF, 0x00 };
    kvtest_check_range(kv, &m, kffff_more, 4, NULL, 0, false, -1);   /* nothing */
    kvm_free(&m);
    kvtest_close(kv);
}

/* Batch rules: later operations on a key win, a missing key deletes
 * fine, an empty batch changes nothing; bounds with lo >= hi visit
 * nothing. */
static inline void kvtest_batch_rules(void **state)
{
    segidx_kv kv = kvtest_open(state);
    kvm m = { 0 };
    assert_int_equal(kv.vt->write(kv.self, NULL, 0), SEGIDX_OK);
    segidx_kv_op first[] = {
        KVTEST_PUT("a", 1, "1", 1), KVTEST_PUT("a", 1, "22", 2),  /* a = 22 */
        KVTEST_PUT("b", 1, "1", 1), KVTEST_DEL("b", 1),           /* b gone */
        KVTEST_DEL("c", 1), KVTEST_PUT("c", 1, "3", 1),           /* c = 3 */
        KVTEST_DEL("missing", 7),
        KVTEST_PUT("d", 1, "x", 1), KVTEST_DEL("d", 1), KVTEST_PUT("d", 1, "", 0),
    };
    kvtest_write_ok(kv, &m, first, sizeof first / sizeof *first);
    assert_int_equal(m.n, 3);
    kvtest_check_all(kv, &m);
    kvtest_check_get(kv, &m, "b", 1);
    kvtest_check_get(kv, &m, "missing", 7);

    segidx_kv_op again[] = { KVTEST_DEL("a", 1), KVTEST_DEL("a", 1), KVTEST_PUT("c", 1, "4", 1) };
    kvtest_write_ok(kv, &m, again, 3);
    segidx_kv_op none[1] = { KVTEST_PUT("zzz", 3, "", 0) };
    assert_int_equal(kv.vt->write(kv.self, none, 0), SEGIDX_OK); /* n = 0: nothing */
    kvtest_check_all(kv, &m);
    kvtest_check_get(kv, &m, "zzz", 3);

    /* lo >= hi: nothing, not an error. */
    kvtest_check_range(kv, &m, "c", 1, "c", 1, false, -1);
    kvtest_check_range(kv, &m, "c", 1, "c", 1, true, -1);
    kvtest_check_range(kv, &m, "d", 1, "c", 1, false, -1);
    kvtest_check_range(kv, &m, "d", 1, "c", 1, true, -1);
    kvtest_check_range(kv, &m, "c\x00", 2, "c", 1, true, -1);
    /* The stop value comes back whatever it is, stopping at the first. */
    kvtest_check_range(kv, &m, NULL, 0, NULL, 0, false, 0);
    kvtest_check_range(kv, &m, NULL, 0, NULL, 0, true, 1);
    kvm_free(&m);
    kvtest_close(kv);
}

/* A batch with one bad operation anywhere is refused whole. */
static inline void kvtest_invalid_batches(void **state)
{
    segidx_kv kv = kvtest_open(state);
    kvm m = { 0 };
    segidx_kv_op setup[] = { KVTEST_PUT("keep", 4, "v", 1), KVTEST_PUT("gone?", 5, "v", 1) };
    kvtest_write_ok(kv, &m, setup, 2);

    /* Good operations first, the bad one last. */
    segidx_kv_op bad[] = {
        KVTEST_PUT("new", 3, "v", 1), KVTEST_DEL("gone?", 5), KVTEST_PUT("keep", 4, "changed", 7),
        KVTEST_PUT("x", 1, "v", 1),
    };
    const size_t last = sizeof bad / sizeof *bad - 1;
    const segidx_kv_op wrong[] = {
        { 0, "x", 1, "v", 1 },                      /* unknown op codes */
        { 4, "x", 1, "v", 1 },
        { -1, "x", 1, NULL, 0 },
        { SEGIDX_KV_EXPECT, "", 0, "v", 1 },        /* EXPECTs: an empty key */
        { SEGIDX_KV_EXPECT, "", 0, NULL, 0 },
        { SEGIDX_KV_EXPECT, NULL, 1, NULL, 0 },     /* NULL key, klen > 0 */
        { SEGIDX_KV_EXPECT, "keep", 4, NULL, 1 },   /* NULL value, vlen > 0 */
        { SEGIDX_KV_PUT, NULL, 1, "v", 1 },         /* NULL key, klen > 0 */
        { SEGIDX_KV_DEL, NULL, 4, NULL, 0 },
        { SEGIDX_KV_PUT, "x", 1, NULL, 3 },         /* NULL value, vlen > 0 */
        { SEGIDX_KV_PUT, "", 0, "v", 1 },           /* empty keys */
        { SEGIDX_KV_PUT, NULL, 0, "v", 1 },
        { SEGIDX_KV_DEL, "", 0, NULL, 0 },
    };
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        bad[last] = wrong[i];
        assert_int_equal(kv.vt->write(kv.self, bad, last + 1), SEGIDX_EINVAL);
        kvtest_check_all(kv, &m);
        kvtest_check_get(kv, &m, "new", 3);
    }
    /* NULL ops with n > 0. */
    assert_int_equal(kv.vt->write(kv.self, NULL, 1), SEGIDX_EINVAL);
    /* A big batch, then a bad op: none of it. */
    enum { BIG = 2000 };
    segidx_kv_op *ops = malloc((BIG + 1) * sizeof *ops);
    uint8_t (*keys)[4] = malloc(BIG * sizeof *keys);
    assert_non_null(ops);
    assert_non_null(keys);
    for (uint32_t i = 0; i < BIG; i++) {
        keys[i][0] = (uint8_t)(i >> 24), keys[i][1] = (uint8_t)(i >> 16);
        keys[i][2] = (uint8_t)(i >> 8), keys[i][3] = (uint8_t)i;
        ops[i] = KVTEST_PUT(keys[i], 4, keys[i], 4);
    }
    ops[BIG] = (segidx_kv_op){ 99, "k", 1, NULL, 0 };
    assert_int_equal(kv.vt->write(kv.self, ops, BIG + 1), SEGIDX_EINVAL);
    kvtest_check_all(kv, &m);
    /* And it goes in once the bad op is gone. */
    kvtest_write_ok(kv, &m, ops, BIG);
    kvtest_check_all(kv, &m);
    free(keys);
    free(ops);
    kvm_free(&m);
    kvtest_close(kv);
}

/* ------------------------------------------------------------ EXPECT */

/* EXPECT, case by case: what matches, every way of not matching, and that
 * every EXPECT of a batch sees the store as it was before the batch. */
static inline void kvtest_expect_rules(void **state)
{
    segidx_kv kv = kvtest_open(state);
    kvm m = { 0 };
    static const uint8_t vbin[] = { 0x00, 0xFF, 0x00 }, vbin2[] = { 0x00, 0xFF, 0x01 };
    segidx_kv_op setup[] = { KVTEST_PUT("a", 1, "1", 1), KVTEST_PUT("b", 1, "22", 2),
                             KVTEST_PUT("e", 1, "", 0), KVTEST_PUT("z", 1, vbin, 3) };
    kvtest_write_ok(kv, &m, setup, 4);

    /* Matches let the batch in; EXPECTs alone change nothing. */
    segidx_kv_op match[] = { KVTEST_EXPECT("a", 1, "1", 1), KVTEST_PUT("c", 1, "3", 1) };
    kvtest_write_ok(kv, &m, match, 2);
    segidx_kv_op only[] = { KVTEST_EXPECT("b", 1, "22", 2), KVTEST_EXPECT("e", 1, "", 0),
                            KVTEST_EXPECT("missing", 7, NULL, 0), KVTEST_EXPECT("z", 1, vbin, 3) };
    kvtest_write_ok(kv, &m, only, 4);
    kvtest_check_all(kv, &m);

    /* Each mismatch, last in a batch that changes other keys, then first. */
    const segidx_kv_op wrong[] = {
        KVTEST_EXPECT("a", 1, "2", 1),      /* another value */
        KVTEST_EXPECT("b", 1, "2", 1),      /* a prefix of the value */
        KVTEST_EXPECT("b", 1, "222", 3),    /* the value and a byte more */
        KVTEST_EXPECT("b", 1, "", 0),       /* empty, where the key holds bytes */
        KVTEST_EXPECT("z", 1, vbin2, 3),    /* the last byte differs */
        KVTEST_EXPECT("e", 1, "x", 1),      /* bytes, where the key holds "" */
        KVTEST_EXPECT("e", 1, NULL, 0),     /* absent, where the key holds "" */
        KVTEST_EXPECT("a", 1, NULL, 0),     /* absent, where the key is there */
        KVTEST_EXPECT("missing", 7, "", 0), /* "", where the key is absent */
        KVTEST_EXPECT("missing", 7, "1", 1),
        KVTEST_EXPECT("a\0", 2, "1", 1),    /* a key that extends a present one */
    };
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        segidx_kv_op last[] = { KVTEST_PUT("a", 1, "new", 3), KVTEST_DEL("b", 1),
                                KVTEST_PUT("n", 1, "n", 1), KVTEST_DEL("e", 1), wrong[i] };
        kvtest_write_conflicts(kv, &m, last, 5);
        segidx_kv_op first[] = { wrong[i], KVTEST_PUT("a", 1, "new", 3), KVTEST_DEL("z", 1) };
        kvtest_write_conflicts(kv, &m, first, 3);
    }

    /* Several EXPECTs that hold, then one that does not. */
    segidx_kv_op last_fails[] = {
        KVTEST_EXPECT("a", 1, "1", 1), KVTEST_EXPECT("b", 1, "22", 2),
        KVTEST_EXPECT("missing", 7, NULL, 0), KVTEST_PUT("a", 1, "x", 1), KVTEST_DEL("e", 1),
        KVTEST_EXPECT("e", 1, "", 0), KVTEST_EXPECT("c", 1, "4", 1),
    };
    kvtest_write_conflicts(kv, &m, last_fails, 7);

    /* An EXPECT after a change of its key in the same batch still sees the
     * value from before the batch. */
    segidx_kv_op after_put[] = { KVTEST_PUT("a", 1, "9", 1), KVTEST_EXPECT("a", 1, "9", 1) };
    kvtest_write_conflicts(kv, &m, after_put, 2);
    segidx_kv_op after_new[] = { KVTEST_PUT("new", 3, "v", 1), KVTEST_EXPECT("new", 3, "v", 1) };
    kvtest_write_conflicts(kv, &m, after_new, 2);
    segidx_kv_op after_del[] = { KVTEST_DEL("a", 1), KVTEST_EXPECT("a", 1, NULL, 0) };
    kvtest_write_conflicts(kv, &m, after_del, 2);
    segidx_kv_op old_values[] = {
        KVTEST_PUT("a", 1, "9", 1), KVTEST_DEL("b", 1), KVTEST_EXPECT("a", 1, "1", 1),
        KVTEST_EXPECT("b", 1, "22", 2), KVTEST_PUT("new", 3, "v", 1),
        KVTEST_EXPECT("new", 3, NULL, 0),
    };
    kvtest_write_ok(kv, &m, old_values, 6);
    kvtest_check_all(kv, &m);

    /* Compare-and-swap and compare-and-delete. */
    segidx_kv_op cas[] = { KVTEST_EXPECT("a", 1, "9", 1), KVTEST_PUT("a", 1, "10", 2) };
    kvtest_write_ok(kv, &m, cas, 2);
    kvtest_write_conflicts(kv, &m, cas, 2); /* "a" is "10" now */
    segidx_kv_op cad[] = { KVTEST_EXPECT("new", 3, "v", 1), KVTEST_DEL("new", 3) };
    kvtest_write_ok(kv, &m, cad, 2);
    kvtest_write_conflicts(kv, &m, cad, 2);

    /* A long value: one byte off at either end is a mismatch. */
    uint8_t big[KVTEST_MAX_VAL];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    segidx_kv_op put_big = KVTEST_PUT("big", 3, big, sizeof big);
    kvtest_write_ok(kv, &m, &put_big, 1);
    for (int end = 0; end < 2; end++) {
        size_t at = end ? sizeof big - 1 : 0;
        big[at] ^= 0x01;
        segidx_kv_op off[] = { KVTEST_EXPECT("big", 3, big, sizeof big), KVTEST_DEL("big", 3) };
        kvtest_write_conflicts(kv, &m, off, 2);
        big[at] ^= 0x01;
    }
    segidx_kv_op shorter[] = { KVTEST_EXPECT("big", 3, big, sizeof big - 1), KVTEST_DEL("a", 1) };
    kvtest_write_conflicts(kv, &m, shorter, 2);
    segidx_kv_op exact[] = { KVTEST_EXPECT("big", 3, big, sizeof big), KVTEST_DEL("big", 3) };
    kvtest_write_ok(kv, &m, exact, 2);
    kvtest_check_all(kv, &m);
    kvm_free(&m);
    kvtest_close(kv);
}

/* An EXPECT on `key`: the model's value (or absence), or, when `wrong`,
 * something a byte or a presence away from it. Its bytes go to `val`. */
static inline segidx_kv_op kvtest_gen_expect(test_rng *r, const kvm *m, const uint8_t *key,
                                             size_t klen, bool wrong, uint8_t *val)
{
    const kvm_entry *e = kvm_find(m, key, klen);
    size_t vlen = e ? e->vlen : 0;
    if (e && vlen)
        memcpy(val, e->v, vlen);
    bool present = e != NULL;
    if (wrong) {
        switch (rng_below(r, 4)) {
        case 0: /* present <-> absent ("" for the value when it appears) */
            present = !present;
            vlen = 0;
            break;
        case 1: /* a byte more */
            if (present) {
                val[vlen++] = (uint8_t)rng_next(r);
                break;
            }
            present = true;
            break;
        case 2: /* a byte less */
            if (present && vlen) {
                vlen--;
                break;
            }
            present = !present;
            break;
        default: /* one bit of one byte */
            if (present && vlen) {
                val[rng_below(r, vlen)] ^= (uint8_t)(1u << rng_below(r, 8));
                break;
            }
            present = !present;
            break;
        }
    }
    return KVTEST_EXPECT(key, klen, present ? (const void *)val : NULL, vlen);
}

/* Random batches with EXPECTs mixed in, some true and some a little
 * wrong: the store applies exactly the batches the model says hold and
 * answers SEGIDX_ECONFLICT, changing nothing, for the others. */
static inline void kvtest_expect_random(void **state)
{
    const kvtest_store *st = *state;
    test_rng r = { 0x4B56000003ull };
    segidx_kv kv = kvtest_open(state);
    kvm m = { 0 };
    kvtest_batch *b = malloc(sizeof *b);
    assert_non_null(b);
    int applied = 0, refused = 0, rounds = (int)test_scaled(300);
    for (int round = 0; round < rounds; round++) {
        kvtest_gen_batch(&r, &m, b);
        size_t expects = 1 + rng_below(&r, 4);
        bool one_wrong = rng_below(&r, 2);
        size_t wrong_at = rng_below(&r, expects);
        for (size_t j = 0; j < expects; j++) {
            size_t slot = b->n; /* its bytes */
            size_t klen;
            if (rng_below(&r, 3) == 0) { /* a key the batch also changes */
                const segidx_kv_op *other = &b->ops[rng_below(&r, b->n)];
                klen = other->klen;
                memcpy(b->keys[slot], other->key, klen);
            } else {
                klen = kvtest_gen_key(&r, &m, b->keys[slot]);
            }
            segidx_kv_op ex = kvtest_gen_expect(&r, &m, b->keys[slot], klen,
                                                one_wrong && j == wrong_at, b->vals[slot]);
            size_t at = rng_below(&r, b->n + 1);
            memmove(&b->ops[at + 1], &b->ops[at], (b->n - at) * sizeof *b->ops);
            b->ops[at] = ex;
            b->n++;
        }
        if (kvm_expects_hold(&m, b->ops, b->n)) {
            kvtest_write_ok(kv, &m, b->ops, b->n);
            applied++;
        } else {
            assert_int_equal(kv.vt->write(kv.self, b->ops, b->n), SEGIDX_ECONFLICT);
            refused++;
        }
        for (size_t i = 0; i < b->n; i++)
            kvtest_check_get(kv, &m, b->ops[i].key, b->ops[i].klen);
        if (round % 25 == 24 || round == rounds - 1)
            kvtest_check_all(kv, &m);
    }
    print_message("kvtest[%s]: %d batches with EXPECTs applied, %d refused, %zu keys\n",
                  st->name, applied, refused, m.n);
    assert_true(applied > rounds / 4);
    assert_true(refused > rounds / 4);
    free(b);
    kvm_free(&m);
    kvtest_close(kv);
}

static inline int kvtest_read_u64(void *ctx, const void *key, size_t klen, const void *val,
                                  size_t vlen)
{
    (void)key;
    (void)klen;
    if (vlen != 8)
        return -1;
    memcpy(ctx, val, 8);
    return 0;
}

/* Add one to the counter under `key` (absent counts as 0) with a
 * compare-and-swap: read it, then write the next value on the condition
 * that the key still holds what was read; read again after each
 * SEGIDX_ECONFLICT, counted in *conflicts. `between` (may be NULL) runs
 * between the read and the write, to let others in there. 0 or the
 * store's error. Calls no cmocka assert, so threads and forked processes
 * can use it. */
static inline int kvtest_cas_increment(segidx_kv kv, const void *key, size_t klen,
                                       void (*between)(void), long *conflicts)
{
    for (;;) {
        uint64_t cur = 0, next;
        int rc = kv.vt->get(kv.self, key, klen, kvtest_read_u64, &cur);
        if (rc != SEGIDX_OK && rc != SEGIDX_ENOTFOUND)
            return rc;
        if (between)
            between();
        bool absent = rc == SEGIDX_ENOTFOUND;
        next = cur + 1;
        segidx_kv_op ops[2] = { KVTEST_EXPECT(key, klen, absent ? NULL : &cur, absent ? 0 : 8),
                                KVTEST_PUT(key, klen, &next, 8) };
        rc = kv.vt->write(kv.self, ops, 2);
        if (rc != SEGIDX_ECONFLICT)
            return rc;
        ++*conflicts;
    }
}

/* The counter under `key`, which must be there. */
static inline uint64_t kvtest_counter(segidx_kv kv, const void *key, size_t klen)
{
    uint64_t v = 0;
    assert_int_equal(kv.vt->get(kv.self, key, klen, kvtest_read_u64, &v), SEGIDX_OK);
    return v;
}

#if KVTEST_THREADS

/* ------------------------------------------------------------ threads */

enum { KVTEST_CAS_THREADS = 4 };

typedef struct kvtest_cas_thread {
    segidx_kv kv;
    long increments, conflicts;
    int rc;
    pthread_t tid;
} kvtest_cas_thread;

/* Gives up the processor between read and write, so that the others'
 * increments land there and conflicts happen on every run. */
static inline void kvtest_yield(void)
{
    sched_yield();
}

static inline void *kvtest_cas_worker(void *arg)
{
    kvtest_cas_thread *t = arg;
    for (long i = 0; i < t->increments && t->rc == SEGIDX_OK; i++)
        t->rc = kvtest_cas_increment(t->kv, "counter", 7, kvtest_yield, &t->conflicts);
    return NULL;
}

/* Threads each add to one counter with compare-and-swap: no increment is
 * lost and none counted twice, however the writes interleave. */
static inline void kvtest_cas_counter(void **state)
{
    const kvtest_store *st = *state;
    segidx_kv kv = kvtest_open(state);
    kvtest_cas_thread th[KVTEST_CAS_THREADS];
    memset(th, 0, sizeof th);
    long per_thread = test_scaled(500), conflicts = 0;
    for (int i = 0; i < KVTEST_CAS_THREADS; i++) {
        th[i].kv = kv;
        th[i].increments = per_thread;
        assert_int_equal(pthread_create(&th[i].tid, NULL, kvtest_cas_worker, &th[i]), 0);
    }
    for (int i = 0; i < KVTEST_CAS_THREADS; i++) {
        assert_int_equal(pthread_join(th[i].tid, NULL), 0);
        assert_int_equal(th[i].rc, SEGIDX_OK);
        conflicts += th[i].conflicts;
    }
    assert_int_equal(kvtest_counter(kv, "counter", 7),
                     (uint64_t)(KVTEST_CAS_THREADS * per_thread));
    print_message("kvtest[%s]: %d x %ld increments, %ld conflicts retried\n", st->name,
                  KVTEST_CAS_THREADS, per_thread, conflicts);
    kvtest_close(kv);
}

/* Writers each own two key ranges: a group of keys that every batch sets
 * to one value (so a scan that is one snapshot sees them all equal) and a
 * range of random keys only they write (so their own scans are exact).
 * Scanners check the groups. In the end the store holds exactly what each
 * writer's model says. Failures are recorded, not asserted: cmocka's
 * asserts belong to the main thread. */
enum { KVTEST_WRITERS = 4, KVTEST_SCANNERS = 2, KVTEST_GROUP = 5 };

typedef struct kvtest_thread {
    segidx_kv kv;
    int id, rounds;
    pthread_t tid;
    kvm own;            /* a writer's random keys */
    const char *error;  /* the first failure, or NULL */
    volatile int *writers_done;
} kvtest_thread;

static inline void kvtest_group_key(uint8_t *key, int writer, int j)
{
    key[0] = 'g';
    key[1] = (uint8_t)writer;
    key[2] = (uint8_t)j;
}

/* Collects into a fixed array; no cmocka asserts off the main thread. */
typedef struct kvtest_raw {
    size_t n, bad;
    uint8_t keys[KVTEST_WRITERS * KVTEST_GROUP][3];
    uint32_t vals[KVTEST_WRITERS * KVTEST_GROUP];
} kvtest_raw;

static inline int kvtest_raw_collect(void *ctx, const void *key, size_t klen, const void *val,
                                     size_t vlen)
{
    kvtest_raw *c = ctx;
    if (klen != 3 || vlen != 4 || c->n == KVTEST_WRITERS * KVTEST_GROUP) {
        c->bad++;
        return 0;
    }
    memcpy(c->keys[c->n], key, 3);
    memcpy(&c->vals[c->n], val, 4);
    c->n++;
    return 0;
}

static inline int kvtest_model_collect(void *ctx, const void *key, size_t klen,
                                       const void *val, size_t vlen)
{
    kvm *m = ctx;
    if (m->n == m->cap) {
        m->cap = m->cap * 2 + 16;
        m->e = realloc(m->e, m->cap * sizeof *m->e);
        if (!m->e)
            abort();
    }
    m->e[m->n++] = (kvm_entry){ kvtest_dup(key, klen), kvtest_dup(val, vlen), klen, vlen };
    return 0;
}

static inline bool kvtest_same(const kvm *a, const kvm *b, bool b_reversed)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const kvm_entry *x = &a->e[i], *y = &b->e[b_reversed ? b->n - 1 - i : i];
        if (x->klen != y->klen || memcmp(x->k, y->k, x->klen) || x->vlen != y->vlen ||
            (x->vlen && memcmp(x->v, y->v, x->vlen)))
            return false;
    }
    return true;
}

/* (kvm_apply asserts only when malloc fails: fine off the main thread.) */
static inline void *kvtest_writer(void *arg)
{
    kvtest_thread *t = arg;
    test_rng r = { 0x7E57000000ull + (uint64_t)t->id };
    uint8_t gkeys[KVTEST_GROUP][3];
    for (int j = 0; j < KVTEST_GROUP; j++)
        kvtest_group_key(gkeys[j], t->id, j);
    for (int i = 1; i <= t->rounds && !t->error; i++) {
        uint32_t v = (uint32_t)i;
        segidx_kv_op g[KVTEST_GROUP];
        for (int j = 0; j < KVTEST_GROUP; j++)
            g[j] = KVTEST_PUT(gkeys[j], 3, &v, 4);
        if (t->kv.vt->write(t->kv.self, g, KVTEST_GROUP) != SEGIDX_OK)
            t->error = "group write failed";

        uint8_t key[4] = { 'r', (uint8_t)t->id, (uint8_t)rng_below(&r, 8),
                           (uint8_t)rng_below(&r, 256) };
        uint8_t val[16];
        size_t vlen = rng_below(&r, sizeof val + 1);
        for (size_t j = 0; j < vlen; j++)
            val[j] = (uint8_t)rng_next(&r);
        segidx_kv_op op = rng_below(&r, 4) ? KVTEST_PUT(key, 4, val, vlen) : KVTEST_DEL(key, 4);
        if (t->kv.vt->write(t->kv.self, &op, 1) != SEGIDX_OK)
            t->error = "random write failed";
        kvm_apply(&t->own, &op, 1);

        if (i % 64 == 0) { /* my range is mine alone: exact, both ways */
            uint8_t lo[2] = { 'r', (uint8_t)t->id }, hi[2] = { 'r', (uint8_t)(t->id + 1) };
            for (int rev = 0; rev < 2; rev++) {
                kvm seen = { 0 };
                if (t->kv.vt->scan(t->kv.self, lo, 2, hi, 2, rev, kvtest_model_collect, &seen))
                    t->error = "own scan failed";
                else if (!kvtest_same(&seen, &t->own, rev))
                    t->error = "own scan differs from what this writer wrote";
                kvm_free(&seen);
            }
        }
    }
    return NULL;
}

static inline void *kvtest_scanner(void *arg)
{
    kvtest_thread *t = arg;
    uint32_t last[KVTEST_WRITERS] = { 0 };
    kvtest_raw *c = malloc(sizeof *c);
    if (!c)
        abort();
    for (int scans = 0; !t->error; scans++) {
        int done = __atomic_load_n(t->writers_done, __ATOMIC_ACQUIRE);
        c->n = c->bad = 0;
        bool rev = scans % 2;
        if (t->kv.vt->scan(t->kv.self, "g", 1, "h", 1, rev, kvtest_raw_collect, c)) {
            t->error = "group scan failed";
            break;
        }
        if (c->bad)
            t->error = "group scan saw a foreign pair";
        /* Per writer: all of its group or none, one value, never older. */
        for (size_t i = 0; i < c->n && !t->error; i += KVTEST_GROUP) {
            if (c->n - i < KVTEST_GROUP) {
                t->error = "group scan saw part of a group";
                break;
            }
            int w = c->keys[i][1];
            for (int j = 0; j < KVTEST_GROUP; j++)
                if (c->keys[i + j][1] != w || c->vals[i + j] != c->vals[i])
                    t->error = "group scan saw a torn batch (not one snapshot)";
            if (w >= KVTEST_WRITERS || c->vals[i] < last[w])
                t->error = "group scan went back in time";
            else
                last[w] = c->vals[i];
        }
        /* A get in between: found with its 4 bytes, or not yet written. */
        uint8_t key[3];
        kvtest_group_key(key, scans % KVTEST_WRITERS, scans % KVTEST_GROUP);
        c->n = c->bad = 0;
        int rc = t->kv.vt->get(t->kv.self, key, 3, kvtest_raw_collect, c);
        if ((rc != 0 && rc != SEGIDX_ENOTFOUND) || c->bad || c->n != (rc == 0))
            t->error = "group get failed";
        if (done)
            break;
    }
    free(c);
    return NULL;
}

/* A few writers and scanners at once; then the store is exactly what the
 * writers wrote. */
static inline void kvtest_threads(void **state)
{
    const kvtest_store *st = *state;
    segidx_kv kv = kvtest_open(state);
    volatile int writers_done = 0;
    kvtest_thread th[KVTEST_WRITERS + KVTEST_SCANNERS];
    memset(th, 0, sizeof th);
    for (int i = 0; i < KVTEST_WRITERS + KVTEST_SCANNERS; i++) {
        th[i].kv = kv;
        th[i].id = i;
        th[i].rounds = (int)test_scaled(1500);
        th[i].writers_done = &writers_done;
        void *(*fn)(void *) = i < KVTEST_WRITERS ? kvtest_writer : kvtest_scanner;
        assert_int_equal(pthread_create(&th[i].tid, NULL, fn, &th[i]), 0);
    }
    for (int i = 0; i < KVTEST_WRITERS; i++)
        assert_int_equal(pthread_join(th[i].tid, NULL), 0);
    __atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
    for (int i = KVTEST_WRITERS; i < KVTEST_WRITERS + KVTEST_SCANNERS; i++)
        assert_int_equal(pthread_join(th[i].tid, NULL), 0);
    for (int i = 0; i < KVTEST_WRITERS + KVTEST_SCANNERS; i++) {
        if (th[i].error) {
            print_error("kvtest[%s]: thread %d: %s\n", st->name, i, th[i].error);
            fail();
        }
    }

    /* The union of what was written. */
    kvm m = { 0 };
    for (int w = 0; w < KVTEST_WRITERS; w++) {
        uint32_t v = (uint32_t)th[w].rounds;
        for (int j = 0; j < KVTEST_GROUP; j++) {
            uint8_t key[3];
            kvtest_group_key(key, w, j);
            kvm_put(&m, key, 3, &v, 4);
        }
        for (size_t i = 0; i < th[w].own.n; i++)
            kvm_put(&m, th[w].own.e[i].k, th[w].own.e[i].klen, th[w].own.e[i].v,
                    th[w].own.e[i].vlen);
        kvm_free(&th[w].own);
    }
    kvtest_check_all(kv, &m);
    kvm_free(&m);
    kvtest_close(kv);
}

#define KVTEST_THREAD_TESTS(store)                                                  \
    , cmocka_unit_test_prestate(kvtest_threads, (store)),                           \
    cmocka_unit_test_prestate(kvtest_cas_counter, (store))
#else
#define KVTEST_THREAD_TESTS(store)
#endif

/* The suite, as cmocka test entries for one store. */
#define KVTEST_SUITE(store)                                                         \
    cmocka_unit_test_prestate(kvtest_exact_bytes, (store)),                         \
    cmocka_unit_test_prestate(kvtest_batch_rules, (store)),                         \
    cmocka_unit_test_prestate(kvtest_invalid_batches, (store)),                     \
    cmocka_unit_test_prestate(kvtest_random_batches, (store)),                      \
    cmocka_unit_test_prestate(kvtest_expect_rules, (store)),                        \
    cmocka_unit_test_prestate(kvtest_expect_random, (store))                        \
    KVTEST_THREAD_TESTS(store)

#endif
