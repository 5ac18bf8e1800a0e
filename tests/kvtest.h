/* The KV conformance suite in cmocka: the library's own
 * (segidx_kv_conformance, include/segidx_kvcheck.h) as one test entry,
 * and the brute-force model and checks (a sorted array of key/value
 * pairs) that a store's own tests use beside it.
 *
 * A test file describes how to open a fresh, empty store and lists the
 * suite among its tests:
 *
 *     static int open_mine(void *ctx, segidx_kv *out) { ... }
 *     static kvtest_store mine = { "mine", open_mine, NULL };
 *     const struct CMUnitTest tests[] = { KVTEST_SUITE(&mine), ... };
 */
#ifndef SEGIDX_KVTEST_H
#define SEGIDX_KVTEST_H

#include "testutil.h"

#include "segidx_kvcheck.h"

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

/* ------------------------------------------------------------ the suite */

static inline void kvtest_report(void *ctx, const char *rule, int status, const char *detail)
{
    const kvtest_store *st = ctx;
    const char *word = status == SEGIDX_KV_RULE_HOLDS    ? "holds"
                       : status == SEGIDX_KV_RULE_BROKEN ? "BROKEN"
                                                         : "skipped";
    print_message("kvcheck[%s] %-13s %s: %s\n", st->name, rule, word, detail);
}

/* The library's conformance suite (segidx_kvcheck.h) over a fresh store:
 * every rule must hold. */
static inline void kvtest_conformance(void **state)
{
    segidx_kv kv = kvtest_open(state);
    assert_int_equal(segidx_kv_conformance(kv, kvtest_report, *state), SEGIDX_OK);
    kvtest_close(kv);
}

/* The suite, as a cmocka test entry for one store. */
#define KVTEST_SUITE(store) cmocka_unit_test_prestate(kvtest_conformance, (store))

#endif
