/* The KV conformance suite (include/segidx_kvcheck.h): every rule the
 * volume index relies on from a host's store, checked against a
 * brute-force model (a sorted array of key/value pairs).
 *
 * Each rule is a function that starts from an empty store and records the
 * first thing it sees go wrong (kc_fail) and returns; the runner reports
 * it, empties the store and goes on. Nothing here asserts or aborts: a
 * host runs this inside its own test framework. */
#include "segidx_kvcheck.h"

#include "internal.h"
#include "sync.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if SEGIDX__THREADS
#include <errno.h>
#include <sched.h>
#include <time.h>
#endif

/* ------------------------------------------------------------ the run */

typedef struct kc {
    segidx_kv kv;
    int rc;            /* the current rule's first failure; 0 while it holds */
    char detail[320];  /* what it saw, or what a rule that holds checked */
} kc;

/* Record the rule's first failure; false, so that checks read
 * `if (!check(...)) return false`. */
static bool kc_fail(kc *c, int rc, const char *fmt, ...)
{
    if (c->rc == 0) {
        c->rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->detail, sizeof c->detail, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* What a rule that holds checked (kept out of a broken rule's detail). */
static void kc_note(kc *c, const char *fmt, ...)
{
    if (c->rc)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
}

/* What a call that had to succeed returned instead: the store's own code
 * when it is one that reports a failure of the store, else a wrong answer. */
static int kc_store_rc(int rc)
{
    return rc == SEGIDX_EIO || rc == SEGIDX_ENOMEM || rc == SEGIDX_EFULL ? rc : SEGIDX_ECORRUPT;
}

static bool kc_oom(kc *c)
{
    return kc_fail(c, SEGIDX_ENOMEM, "out of memory in the suite itself");
}

/* splitmix64: the suite's inputs repeat exactly from run to run. */
static uint64_t kc_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t kc_below(uint64_t *s, uint64_t n)
{
    return kc_next(s) % n;
}

/* Up to 12 bytes of a key in hex, for a message. */
typedef struct kc_hex {
    char s[48];
} kc_hex;

static kc_hex kc_hexof(const void *p, size_t n)
{
    kc_hex h;
    size_t at = 0, show = n < 12 ? n : 12;
    if (n == 0)
        snprintf(h.s, sizeof h.s, "(empty)");
    for (size_t i = 0; i < show; i++)
        at += (size_t)snprintf(h.s + at, sizeof h.s - at, "%02x", ((const uint8_t *)p)[i]);
    if (show < n)
        snprintf(h.s + at, sizeof h.s - at, "..(%zu B)", n);
    return h;
}

/* ------------------------------------------------------------ the model */

typedef struct kc_entry {
    uint8_t *k, *v;
    size_t klen, vlen;
} kc_entry;

/* Sorted by key in the store's order, unique; or, for what a scan handed
 * out, in visit order. */
typedef struct kc_model {
    kc_entry *e;
    size_t n, cap;
} kc_model;

static size_t kc_lower_bound(const kc_model *m, const void *key, size_t klen)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (segidx__key_cmp(m->e[mid].k, m->e[mid].klen, key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const kc_entry *kc_find(const kc_model *m, const void *key, size_t klen)
{
    size_t i = kc_lower_bound(m, key, klen);
    if (i < m->n && segidx__key_cmp(m->e[i].k, m->e[i].klen, key, klen) == 0)
        return &m->e[i];
    return NULL;
}

static uint8_t *kc_dup(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static void kc_entry_free(kc_entry *e)
{
    free(e->k);
    free(e->v);
}

static void kc_model_free(kc_model *m)
{
    for (size_t i = 0; i < m->n; i++)
        kc_entry_free(&m->e[i]);
    free(m->e);
    *m = (kc_model){ 0 };
}

/* Room for one entry more and a copy of key and value; false when out of
 * memory (then nothing changed). */
static bool kc_new_entry(kc_model *m, const void *key, size_t klen, const void *val, size_t vlen,
                         kc_entry *out)
{
    kc_entry *e = segidx__grow(m->e, &m->cap, m->n, sizeof *m->e, 16);
    if (!e)
        return false;
    m->e = e;
    *out = (kc_entry){ kc_dup(key, klen), kc_dup(val, vlen), klen, vlen };
    if (!out->k || !out->v) {
        kc_entry_free(out);
        return false;
    }
    return true;
}

static bool kc_append(kc_model *m, const void *key, size_t klen, const void *val, size_t vlen)
{
    kc_entry e;
    if (!kc_new_entry(m, key, klen, val, vlen, &e))
        return false;
    m->e[m->n++] = e;
    return true;
}

static bool kc_put(kc_model *m, const void *key, size_t klen, const void *val, size_t vlen)
{
    size_t i = kc_lower_bound(m, key, klen);
    if (i < m->n && segidx__key_cmp(m->e[i].k, m->e[i].klen, key, klen) == 0) {
        uint8_t *v = kc_dup(val, vlen);
        if (!v)
            return false;
        free(m->e[i].v);
        m->e[i].v = v;
        m->e[i].vlen = vlen;
        return true;
    }
    kc_entry e;
    if (!kc_new_entry(m, key, klen, val, vlen, &e))
        return false;
    memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
    m->e[i] = e;
    m->n++;
    return true;
}

static void kc_del(kc_model *m, const void *key, size_t klen)
{
    size_t i = kc_lower_bound(m, key, klen);
    if (i < m->n && segidx__key_cmp(m->e[i].k, m->e[i].klen, key, klen) == 0) {
        kc_entry_free(&m->e[i]);
        memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
        m->n--;
    }
}

static bool kc_apply(kc_model *m, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].op == SEGIDX_KV_PUT && !kc_put(m, ops[i].key, ops[i].klen, ops[i].val,
                                                  ops[i].vlen))
            return false;
        if (ops[i].op == SEGIDX_KV_DEL)
            kc_del(m, ops[i].key, ops[i].klen);
    }
    return true;
}

/* Whether every EXPECT of a batch holds in the model as it is before it. */
static bool kc_expects_hold(const kc_model *m, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].op != SEGIDX_KV_EXPECT)
            continue;
        const kc_entry *e = kc_find(m, ops[i].key, ops[i].klen);
        bool holds = !ops[i].val ? e == NULL
                                 : e && e->vlen == ops[i].vlen &&
                                       (e->vlen == 0 || memcmp(e->v, ops[i].val, e->vlen) == 0);
        if (!holds)
            return false;
    }
    return true;
}

static bool kc_same_entry(const kc_entry *a, const kc_entry *b)
{
    return a->klen == b->klen && memcmp(a->k, b->k, a->klen) == 0 && a->vlen == b->vlen &&
           (a->vlen == 0 || memcmp(a->v, b->v, a->vlen) == 0);
}

/* ------------------------------------------------------------ visiting */

/* What a scan or get handed out, copied; stops with `stop_rc` once
 * `stop_after` pairs were taken, if stop_after >= 0. */
typedef struct kc_seen {
    kc_model got;
    long stop_after;
    int stop_rc;
    bool null_ptr, nomem;
} kc_seen;

static int kc_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    kc_seen *s = ctx;
    if (s->stop_after >= 0 && (long)s->got.n == s->stop_after)
        return s->stop_rc;
    if ((!key && klen) || (!val && vlen)) {
        s->null_ptr = true;
        return 0;
    }
    if (!kc_append(&s->got, key, klen, val, vlen))
        s->nomem = true;
    return 0;
}

static bool kc_seen_sane(kc *c, const kc_seen *s, const char *what)
{
    if (s->nomem)
        return kc_oom(c);
    if (s->null_ptr)
        return kc_fail(c, SEGIDX_ECORRUPT, "%s handed out a NULL pointer with a non-zero length",
                       what);
    return true;
}

/* Scan [lo, hi) and compare with the model, in full or stopped after
 * `stop_after` pairs. */
static bool kc_range(kc *c, const kc_model *m, const void *lo, size_t lolen, const void *hi,
                     size_t hilen, bool reverse, long stop_after)
{
    size_t i0 = lolen ? kc_lower_bound(m, lo, lolen) : 0;
    size_t i1 = hilen ? kc_lower_bound(m, hi, hilen) : m->n;
    if (i1 < i0)
        i1 = i0; /* lo >= hi: nothing */
    size_t want = i1 - i0;
    kc_seen s = { { 0 }, stop_after, stop_after % 2 ? 42 : -1000 - (int)stop_after, 0, 0 };
    int rc = c->kv.vt->scan(c->kv.self, lo, lolen, hi, hilen, reverse, kc_collect, &s);
    bool stopped = stop_after >= 0 && (size_t)stop_after < want;
    int want_rc = stopped ? s.stop_rc : 0;
    size_t want_n = stopped ? (size_t)stop_after : want;
    kc_hex l = kc_hexof(lo, lolen), h = kc_hexof(hi, hilen);
    const char *dir = reverse ? "reverse" : "forward";
    bool ok = kc_seen_sane(c, &s, "scan");
    if (ok && rc != want_rc)
        ok = kc_fail(c, rc < 0 && !stopped ? kc_store_rc(rc) : SEGIDX_ECORRUPT,
                     "scan [%s, %s) %s returned %d, expected %d", l.s, h.s, dir, rc, want_rc);
    if (ok && s.got.n != want_n)
        ok = kc_fail(c, SEGIDX_ECORRUPT, "scan [%s, %s) %s visited %zu keys, expected %zu%s", l.s,
                     h.s, dir, s.got.n, want_n,
                     stopped ? " (it must stop at the first non-zero visit return)" : "");
    for (size_t j = 0; ok && j < s.got.n; j++) {
        const kc_entry *got = &s.got.e[j], *exp = &m->e[reverse ? i1 - 1 - j : i0 + j];
        if (kc_same_entry(got, exp))
            continue;
        kc_hex g = kc_hexof(got->k, got->klen), e = kc_hexof(exp->k, exp->klen);
        if (got->klen == exp->klen && memcmp(got->k, exp->k, got->klen) == 0)
            ok = kc_fail(c, SEGIDX_ECORRUPT, "scan [%s, %s) %s: key %s came back with other "
                         "bytes than were put (%zu B, expected %zu B)", l.s, h.s, dir, g.s,
                         got->vlen, exp->vlen);
        else
            ok = kc_fail(c, SEGIDX_ECORRUPT, "scan [%s, %s) %s: pair %zu is key %s, expected %s",
                         l.s, h.s, dir, j, g.s, e.s);
    }
    kc_model_free(&s.got);
    return ok;
}

static bool kc_get(kc *c, const kc_model *m, const void *key, size_t klen)
{
    const kc_entry *want = kc_find(m, key, klen);
    kc_seen s = { { 0 }, -1, 0, 0, 0 };
    int rc = c->kv.vt->get(c->kv.self, key, klen, kc_collect, &s);
    kc_hex k = kc_hexof(key, klen);
    bool ok = kc_seen_sane(c, &s, "get");
    if (ok && want && rc != 0)
        ok = kc_fail(c, kc_store_rc(rc), "get of present key %s returned %d", k.s, rc);
    else if (ok && want && s.got.n != 1)
        ok = kc_fail(c, SEGIDX_ECORRUPT, "get of present key %s called the visit function %zu "
                     "times, expected once", k.s, s.got.n);
    else if (ok && want && !kc_same_entry(&s.got.e[0], want))
        ok = kc_fail(c, SEGIDX_ECORRUPT, "get of key %s handed out other bytes than were put "
                     "(%zu B, expected %zu B)", k.s, s.got.e[0].vlen, want->vlen);
    else if (ok && !want && rc != SEGIDX_ENOTFOUND)
        ok = kc_fail(c, rc < 0 && rc != SEGIDX_EINVAL ? kc_store_rc(rc) : SEGIDX_ECORRUPT,
                     "get of absent key %s returned %d, expected SEGIDX_ENOTFOUND", k.s, rc);
    else if (ok && !want && s.got.n)
        ok = kc_fail(c, SEGIDX_ECORRUPT, "get of absent key %s called the visit function", k.s);
    kc_model_free(&s.got);
    return ok;
}

/* The whole store, both ways, and every key's get. */
static bool kc_check_all(kc *c, const kc_model *m)
{
    if (!kc_range(c, m, NULL, 0, NULL, 0, false, -1) || !kc_range(c, m, NULL, 0, NULL, 0, true, -1))
        return false;
    for (size_t i = 0; i < m->n; i++)
        if (!kc_get(c, m, m->e[i].k, m->e[i].klen))
            return false;
    return true;
}

static bool kc_write_ok(kc *c, kc_model *m, const segidx_kv_op *ops, size_t n)
{
    int rc = c->kv.vt->write(c->kv.self, ops, n);
    if (rc != SEGIDX_OK)
        return kc_fail(c, kc_store_rc(rc), "a valid batch of %zu ops returned %d (%s)", n, rc,
                       segidx_strerror(rc));
    return kc_apply(m, ops, n) || kc_oom(c);
}

/* A batch that must be refused with `want`: nothing of it applied. */
static bool kc_write_refused(kc *c, const kc_model *m, const segidx_kv_op *ops, size_t n, int want,
                             const char *what)
{
    int rc = c->kv.vt->write(c->kv.self, ops, n);
    if (rc != want)
        return kc_fail(c, rc < 0 && rc != SEGIDX_EINVAL && rc != SEGIDX_ECONFLICT
                              ? kc_store_rc(rc) : SEGIDX_ECORRUPT,
                       "%s returned %d, expected %d (%s)", what, rc, want, segidx_strerror(want));
    if (!kc_check_all(c, m)) {
        size_t at = strlen(c->detail);
        snprintf(c->detail + at, sizeof c->detail - at, " (after %s was refused: not atomic)",
                 what);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (ops[i].klen && ops[i].key && !kc_get(c, m, ops[i].key, ops[i].klen))
            return false;
    return true;
}

static bool kc_conflicts(kc *c, const kc_model *m, const segidx_kv_op *ops, size_t n)
{
    return kc_write_refused(c, m, ops, n, SEGIDX_ECONFLICT, "a batch whose EXPECT fails");
}

#define KC_PUT(k, kl, v, vl) ((segidx_kv_op){ SEGIDX_KV_PUT, (k), (kl), (v), (vl) })
#define KC_DEL(k, kl) ((segidx_kv_op){ SEGIDX_KV_DEL, (k), (kl), NULL, 0 })
#define KC_EXPECT(k, kl, v, vl) ((segidx_kv_op){ SEGIDX_KV_EXPECT, (k), (kl), (v), (vl) })
#define KC_N(a) (sizeof(a) / sizeof *(a))

/* ------------------------------------------------------------ generators */

#define KC_MAX_KEY 64
#define KC_MAX_VAL 3000

/* Bytes at the edges of memcmp order, and one in the middle. */
static const uint8_t kc_alphabet[] = { 0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 'a' };

/* A key, often related to one the model holds: itself, a proper prefix,
 * it with a byte more; otherwise short keys over a small alphabet (so
 * they collide and prefix each other) or longer random ones. */
static size_t kc_gen_key(uint64_t *r, const kc_model *m, uint8_t *buf)
{
    uint64_t mode = kc_below(r, 10);
    if (m->n && mode >= 5) {
        const kc_entry *e = &m->e[kc_below(r, m->n)];
        size_t len = e->klen;
        memcpy(buf, e->k, len);
        if (mode == 7 && len > 1)
            return len - 1 - kc_below(r, len - 1);
        if (mode == 8 && len < KC_MAX_KEY) {
            buf[len] = kc_alphabet[kc_below(r, sizeof kc_alphabet)];
            return len + 1;
        }
        return len;
    }
    size_t len = mode == 4 ? 8 + kc_below(r, KC_MAX_KEY - 8 + 1) : 1 + kc_below(r, 5);
    for (size_t i = 0; i < len; i++)
        buf[i] = mode == 4 ? (uint8_t)kc_next(r) : kc_alphabet[kc_below(r, sizeof kc_alphabet)];
    return len;
}

static size_t kc_gen_val(uint64_t *r, uint8_t *buf)
{
    uint64_t mode = kc_below(r, 20);
    size_t len = mode < 6 ? 0 : mode < 19 ? 1 + kc_below(r, 32)
                                          : 200 + kc_below(r, KC_MAX_VAL - 200 + 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)kc_next(r);
    return len;
}

/* A scan bound: empty (no bound) a fifth of the time, else a key. */
static size_t kc_gen_bound(uint64_t *r, const kc_model *m, uint8_t *buf)
{
    return kc_below(r, 5) == 0 ? 0 : kc_gen_key(r, m, buf);
}

/* Up to 12 operations, room for 4 EXPECTs more, and their bytes. */
typedef struct kc_batch {
    segidx_kv_op ops[16];
    uint8_t keys[16][KC_MAX_KEY + 1];
    uint8_t vals[16][KC_MAX_VAL + 1];
    size_t n;
} kc_batch;

static void kc_gen_batch(uint64_t *r, const kc_model *m, kc_batch *b)
{
    b->n = 1 + kc_below(r, 12);
    for (size_t i = 0; i < b->n; i++) {
        size_t klen;
        if (i && kc_below(r, 6) == 0) { /* an earlier key of this batch again */
            const segidx_kv_op *prev = &b->ops[kc_below(r, i)];
            klen = prev->klen;
            memcpy(b->keys[i], prev->key, klen);
        } else {
            klen = kc_gen_key(r, m, b->keys[i]);
        }
        if (kc_below(r, 3) == 0) {
            b->ops[i] = KC_DEL(b->keys[i], klen);
        } else {
            size_t vlen = kc_gen_val(r, b->vals[i]);
            /* An empty value's pointer may be NULL. */
            b->ops[i] = KC_PUT(b->keys[i], klen, vlen || kc_below(r, 2) ? b->vals[i] : NULL,
                               vlen);
        }
    }
}

/* An EXPECT on `key`: the model's value (or absence), or, when `wrong`, a
 * byte or a presence away from it. Its bytes go to `val`. */
static segidx_kv_op kc_gen_expect(uint64_t *r, const kc_model *m, const uint8_t *key,
                                  size_t klen, bool wrong, uint8_t *val)
{
    const kc_entry *e = kc_find(m, key, klen);
    size_t vlen = e ? e->vlen : 0;
    if (e && vlen)
        memcpy(val, e->v, vlen);
    bool present = e != NULL;
    if (wrong) {
        uint64_t how = kc_below(r, 4);
        if (how == 1 && present)
            val[vlen++] = (uint8_t)kc_next(r); /* a byte more */
        else if (how == 2 && present && vlen)
            vlen--;                            /* a byte less */
        else if (how == 3 && present && vlen)
            val[kc_below(r, vlen)] ^= (uint8_t)(1u << kc_below(r, 8)); /* one bit */
        else if (how == 1 && !present)
            present = true;
        else {                                 /* present <-> absent */
            present = !present;
            vlen = 0;
        }
    }
    return KC_EXPECT(key, klen, present ? (const void *)val : NULL, vlen);
}

/* ------------------------------------------------------------ rules */

static const uint8_t k00[] = { 0x00 }, k0000[] = { 0x00, 0x00 }, k01[] = { 0x01 },
                     kff[] = { 0xFF }, kffff[] = { 0xFF, 0xFF, 0xFF }, ka00[] = { 'a', 0x00 },
                     kffff00[] = { 0xFF, 0xFF, 0xFF, 0x00 };

/* Keys that prefix each other, bytes at the edges of memcmp order, empty
 * and long values. */
static bool rule_order(kc *c, kc_model *m)
{
    static const uint8_t vzeros[] = { 0, 0, 0, 1, 0 };
    enum { LONG_VAL = 100000 };
    uint8_t klong[300];
    uint8_t *vlong = malloc(LONG_VAL);
    if (!vlong)
        return kc_oom(c);
    for (size_t i = 0; i < sizeof klong; i++)
        klong[i] = (uint8_t)(0xFE + i * 7); /* sorts between "abc" and 0xFF */
    for (size_t i = 0; i < LONG_VAL; i++)
        vlong[i] = (uint8_t)(i * 13 + 1);
    segidx_kv_op ops[] = {
        KC_PUT(kffff, 3, "fff", 3), KC_PUT(k00, 1, "", 0), KC_PUT(k0000, 2, vzeros, 5),
        KC_PUT("a", 1, "A", 1), KC_PUT(ka00, 2, NULL, 0), KC_PUT("ab", 2, "AB", 2),
        KC_PUT("abc", 3, vlong, LONG_VAL), KC_PUT(kff, 1, "f", 1), KC_PUT(k01, 1, "1", 1),
        KC_PUT(klong, sizeof klong, "long", 4),
    };
    bool ok = kc_write_ok(c, m, ops, KC_N(ops)) && kc_check_all(c, m);
    free(vlong);
    kc_note(c, "10 keys: prefixes, 0x00 and 0xff bytes, a 300-byte key, values of 0 to 100000 B");
    return ok;
}

/* Every pair of a set of bounds, both ways, over keys that prefix and
 * extend each other. */
static bool rule_bounds(kc *c, kc_model *m)
{
    uint64_t r = 0x4B56000002ull;
    segidx_kv_op ops[] = {
        KC_PUT(k00, 1, "", 0), KC_PUT(k0000, 2, "0", 1), KC_PUT(k01, 1, "1", 1),
        KC_PUT("a", 1, "A", 1), KC_PUT(ka00, 2, "A0", 2), KC_PUT("ab", 2, "AB", 2),
        KC_PUT(kff, 1, "f", 1), KC_PUT(kffff, 3, "fff", 3),
    };
    if (!kc_write_ok(c, m, ops, KC_N(ops)))
        return false;
    uint8_t key[KC_MAX_KEY + 1], val[KC_MAX_VAL + 1];
    for (int i = 0; i < 60; i++) {
        size_t klen = kc_gen_key(&r, m, key), vlen = kc_gen_val(&r, val);
        segidx_kv_op put = KC_PUT(key, klen, val, vlen);
        if (!kc_write_ok(c, m, &put, 1))
            return false;
    }
    /* Bounds: no bound, stored keys, keys between, beyond both ends. */
    struct { const void *p; size_t n; } b[] = {
        { NULL, 0 }, { k00, 1 }, { k0000, 2 }, { k01, 1 }, { "a", 1 }, { ka00, 2 },
        { "ab", 2 }, { "abc", 3 }, { "b", 1 }, { kff, 1 }, { kffff, 3 }, { kffff00, 4 },
        { "\x7f", 1 }, { "\x80", 1 }, { "\x00\x00\x00", 3 }, { "\xfe\xff", 2 },
    };
    for (size_t i = 0; i < KC_N(b); i++)
        for (size_t j = 0; j < KC_N(b); j++)
            for (int rev = 0; rev < 2; rev++)
                if (!kc_range(c, m, b[i].p, b[i].n, b[j].p, b[j].n, rev, -1))
                    return false;
    kc_note(c, "%zu scans over %zu keys: every pair of %zu bounds, both ways",
            KC_N(b) * KC_N(b) * 2, m->n, KC_N(b));
    return true;
}

static int kc_visit_returns(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    int *calls_and_rc = ctx;
    calls_and_rc[0]++;
    return calls_and_rc[1];
}

static bool rule_get(kc *c, kc_model *m)
{
    segidx_kv_op ops[] = { KC_PUT("k", 1, "v", 1), KC_PUT("k\x00", 2, "", 0),
                           KC_PUT("kk", 2, "vv", 2) };
    if (!kc_write_ok(c, m, ops, KC_N(ops)))
        return false;
    static const struct { const char *k; size_t n; } keys[] = {
        { "k", 1 }, { "k\x00", 2 }, { "kk", 2 }, { "j", 1 }, { "k\x00\x00", 3 }, { "kkk", 3 },
        { "\xff", 1 }, { "\x00", 1 },
    };
    for (size_t i = 0; i < KC_N(keys); i++)
        if (!kc_get(c, m, keys[i].k, keys[i].n))
            return false;
    /* The visit function's return is get's. */
    static const int rets[] = { 7, -1000, SEGIDX_EIO };
    for (size_t i = 0; i < KC_N(rets); i++) {
        int st[2] = { 0, rets[i] };
        int rc = c->kv.vt->get(c->kv.self, "kk", 2, kc_visit_returns, st);
        if (rc != rets[i] || st[0] != 1)
            return kc_fail(c, SEGIDX_ECORRUPT, "get whose visit function returned %d returned %d "
                           "(%d calls), expected that value (1 call)", rets[i], rc, st[0]);
    }
    kc_note(c, "3 present and 5 absent keys (prefixes, extensions), visit returns 7, -1000, -7");
    return true;
}

static bool rule_visit_return(kc *c, kc_model *m)
{
    uint8_t key[2];
    for (int i = 0; i < 10; i++) {
        key[0] = 's', key[1] = (uint8_t)(i * 25);
        segidx_kv_op put = KC_PUT(key, 2, key, 2);
        if (!kc_write_ok(c, m, &put, 1))
            return false;
    }
    for (long stop = 0; stop < 5; stop++)
        for (int rev = 0; rev < 2; rev++)
            if (!kc_range(c, m, NULL, 0, NULL, 0, rev, stop) ||
                !kc_range(c, m, "s\x20", 2, "s\xff", 2, rev, stop))
                return false;
    kc_note(c, "scans stopped after 0 to 4 keys with returns 42 and -1000 - n, both ways");
    return true;
}

static bool rule_later_wins(kc *c, kc_model *m)
{
    if (c->kv.vt->write(c->kv.self, NULL, 0) != SEGIDX_OK)
        return kc_fail(c, SEGIDX_ECORRUPT, "an empty batch (NULL, 0) was not SEGIDX_OK");
    segidx_kv_op first[] = {
        KC_PUT("a", 1, "1", 1), KC_PUT("a", 1, "22", 2), /* a = 22 */
        KC_PUT("b", 1, "1", 1), KC_DEL("b", 1),          /* b gone */
        KC_DEL("c", 1), KC_PUT("c", 1, "3", 1),          /* c = 3 */
        KC_DEL("missing", 7),
        KC_PUT("d", 1, "x", 1), KC_DEL("d", 1), KC_PUT("d", 1, "", 0),
    };
    if (!kc_write_ok(c, m, first, KC_N(first)) || !kc_check_all(c, m) ||
        !kc_get(c, m, "b", 1) || !kc_get(c, m, "missing", 7))
        return false;
    segidx_kv_op again[] = { KC_DEL("a", 1), KC_DEL("a", 1), KC_PUT("c", 1, "4", 1) };
    if (!kc_write_ok(c, m, again, KC_N(again)))
        return false;
    segidx_kv_op none[1] = { KC_PUT("zzz", 3, "", 0) };
    if (c->kv.vt->write(c->kv.self, none, 0) != SEGIDX_OK)
        return kc_fail(c, SEGIDX_ECORRUPT, "a batch of 0 ops was not SEGIDX_OK");
    if (!kc_check_all(c, m) || !kc_get(c, m, "zzz", 3))
        return false;
    /* lo >= hi: nothing, not an error. */
    for (int rev = 0; rev < 2; rev++)
        if (!kc_range(c, m, "c", 1, "c", 1, rev, -1) || !kc_range(c, m, "d", 1, "c", 1, rev, -1) ||
            !kc_range(c, m, "c\x00", 2, "c", 1, rev, -1))
            return false;
    kc_note(c, "put-put, put-del, del-put, del-put-del-put in one batch; empty batches");
    return true;
}

static bool rule_invalid_batch(kc *c, kc_model *m)
{
    segidx_kv_op setup[] = { KC_PUT("keep", 4, "v", 1), KC_PUT("gone?", 5, "v", 1) };
    if (!kc_write_ok(c, m, setup, 2))
        return false;
    segidx_kv_op bad[] = { KC_PUT("new", 3, "v", 1), KC_DEL("gone?", 5),
                           KC_PUT("keep", 4, "changed", 7), KC_PUT("x", 1, "v", 1) };
    const size_t last = KC_N(bad) - 1;
    static const struct { segidx_kv_op op; const char *what; } wrong[] = {
        { { 0, "x", 1, "v", 1 }, "a batch with op code 0" },
        { { 4, "x", 1, "v", 1 }, "a batch with op code 4" },
        { { -1, "x", 1, NULL, 0 }, "a batch with op code -1" },
        { { SEGIDX_KV_PUT, "", 0, "v", 1 }, "a batch with a PUT of an empty key" },
        { { SEGIDX_KV_PUT, NULL, 0, "v", 1 }, "a batch with a PUT of a NULL key" },
        { { SEGIDX_KV_DEL, "", 0, NULL, 0 }, "a batch with a DEL of an empty key" },
        { { SEGIDX_KV_PUT, NULL, 1, "v", 1 }, "a batch with a NULL key of length 1" },
        { { SEGIDX_KV_DEL, NULL, 4, NULL, 0 }, "a batch with a DEL of a NULL key of length 4" },
        { { SEGIDX_KV_PUT, "x", 1, NULL, 3 }, "a batch with a NULL value of length 3" },
    };
    for (size_t i = 0; i < KC_N(wrong); i++) {
        bad[last] = wrong[i].op;
        if (!kc_write_refused(c, m, bad, last + 1, SEGIDX_EINVAL, wrong[i].what))
            return false;
        if (!kc_get(c, m, "new", 3))
            return false;
    }
    enum { BIG = 2000 };
    segidx_kv_op *ops = malloc((BIG + 1) * sizeof *ops);
    uint8_t(*keys)[4] = malloc(BIG * sizeof *keys);
    bool ok = ops && keys;
    if (!ok)
        kc_oom(c);
    for (uint32_t i = 0; ok && i < BIG; i++) {
        segidx__store32(keys[i], i);
        ops[i] = KC_PUT(keys[i], 4, keys[i], 4);
    }
    if (ok) {
        ops[BIG] = (segidx_kv_op){ 99, "k", 1, NULL, 0 };
        ok = kc_write_refused(c, m, ops, BIG + 1, SEGIDX_EINVAL,
                              "2000 PUTs then an op code 99") &&
             kc_write_ok(c, m, ops, BIG) && kc_check_all(c, m);
    }
    free(keys);
    free(ops);
    kc_note(c, "%zu kinds of bad op after good ones, and after 2000 PUTs: SEGIDX_EINVAL, "
            "nothing applied", KC_N(wrong));
    return ok;
}

static bool rule_random(kc *c, kc_model *m)
{
    uint64_t r = 0x4B56000001ull;
    kc_batch *b = malloc(sizeof *b);
    if (!b)
        return kc_oom(c);
    uint8_t lo[KC_MAX_KEY + 1], hi[KC_MAX_KEY + 1], key[KC_MAX_KEY + 1];
    enum { BATCHES = 200 };
    bool ok = true;
    for (int round = 0; ok && round < BATCHES; round++) {
        kc_gen_batch(&r, m, b);
        ok = kc_write_ok(c, m, b->ops, b->n);
        for (int i = 0; ok && i < 8; i++) {
            size_t klen = kc_gen_key(&r, m, key);
            ok = kc_get(c, m, key, klen);
        }
        for (int i = 0; ok && i < 8; i++) {
            size_t lolen = kc_gen_bound(&r, m, lo), hilen = kc_gen_bound(&r, m, hi);
            long stop = kc_below(&r, 3) == 0 ? (long)kc_below(&r, 8) : -1;
            ok = kc_range(c, m, lo, lolen, hi, hilen, i % 2, stop) &&
                 kc_range(c, m, hi, hilen, lo, lolen, i % 2 == 0, -1);
        }
        if (ok && (round % 50 == 49 || round == BATCHES - 1))
            ok = kc_check_all(c, m);
    }
    free(b);
    kc_note(c, "%d random batches, each followed by 8 gets and 16 scans; %zu keys at the end",
            BATCHES, m->n);
    return ok;
}

static bool rule_expect(kc *c, kc_model *m)
{
    static const uint8_t vbin[] = { 0x00, 0xFF, 0x00 }, vbin2[] = { 0x00, 0xFF, 0x01 };
    segidx_kv_op setup[] = { KC_PUT("a", 1, "1", 1), KC_PUT("b", 1, "22", 2),
                             KC_PUT("e", 1, "", 0), KC_PUT("z", 1, vbin, 3) };
    segidx_kv_op match[] = { KC_EXPECT("a", 1, "1", 1), KC_PUT("c", 1, "3", 1) };
    segidx_kv_op only[] = { KC_EXPECT("b", 1, "22", 2), KC_EXPECT("e", 1, "", 0),
                            KC_EXPECT("missing", 7, NULL, 0), KC_EXPECT("z", 1, vbin, 3) };
    if (!kc_write_ok(c, m, setup, 4) || !kc_write_ok(c, m, match, 2) ||
        !kc_write_ok(c, m, only, 4) || !kc_check_all(c, m))
        return false;
    const segidx_kv_op wrong[] = {
        KC_EXPECT("a", 1, "2", 1),      /* another value */
        KC_EXPECT("b", 1, "2", 1),      /* a prefix of the value */
        KC_EXPECT("b", 1, "222", 3),    /* the value and a byte more */
        KC_EXPECT("b", 1, "", 0),       /* empty, where the key holds bytes */
        KC_EXPECT("z", 1, vbin2, 3),    /* the last byte differs */
        KC_EXPECT("e", 1, "x", 1),      /* bytes, where the key holds "" */
        KC_EXPECT("e", 1, NULL, 0),     /* absent, where the key holds "" */
        KC_EXPECT("a", 1, NULL, 0),     /* absent, where the key is there */
        KC_EXPECT("missing", 7, "", 0), /* "", where the key is absent */
        KC_EXPECT("missing", 7, "1", 1),
        KC_EXPECT("a\0", 2, "1", 1),    /* a key that extends a present one */
    };
    for (size_t i = 0; i < KC_N(wrong); i++) {
        segidx_kv_op last[] = { KC_PUT("a", 1, "new", 3), KC_DEL("b", 1), KC_PUT("n", 1, "n", 1),
                                KC_DEL("e", 1), wrong[i] };
        segidx_kv_op first[] = { wrong[i], KC_PUT("a", 1, "new", 3), KC_DEL("z", 1) };
        if (!kc_conflicts(c, m, last, 5) || !kc_conflicts(c, m, first, 3))
            return false;
    }
    segidx_kv_op last_fails[] = {
        KC_EXPECT("a", 1, "1", 1), KC_EXPECT("b", 1, "22", 2), KC_EXPECT("missing", 7, NULL, 0),
        KC_PUT("a", 1, "x", 1), KC_DEL("e", 1), KC_EXPECT("e", 1, "", 0),
        KC_EXPECT("c", 1, "4", 1),
    };
    /* An EXPECT after a change of its key in the same batch still sees
     * the value from before the batch. */
    segidx_kv_op after_put[] = { KC_PUT("a", 1, "9", 1), KC_EXPECT("a", 1, "9", 1) };
    segidx_kv_op after_new[] = { KC_PUT("new", 3, "v", 1), KC_EXPECT("new", 3, "v", 1) };
    segidx_kv_op after_del[] = { KC_DEL("a", 1), KC_EXPECT("a", 1, NULL, 0) };
    segidx_kv_op old_values[] = {
        KC_PUT("a", 1, "9", 1), KC_DEL("b", 1), KC_EXPECT("a", 1, "1", 1),
        KC_EXPECT("b", 1, "22", 2), KC_PUT("new", 3, "v", 1), KC_EXPECT("new", 3, NULL, 0),
    };
    segidx_kv_op cas[] = { KC_EXPECT("a", 1, "9", 1), KC_PUT("a", 1, "10", 2) };
    segidx_kv_op cad[] = { KC_EXPECT("new", 3, "v", 1), KC_DEL("new", 3) };
    if (!kc_conflicts(c, m, last_fails, 7) || !kc_conflicts(c, m, after_put, 2) ||
        !kc_conflicts(c, m, after_new, 2) || !kc_conflicts(c, m, after_del, 2) ||
        !kc_write_ok(c, m, old_values, 6) || !kc_check_all(c, m) ||
        !kc_write_ok(c, m, cas, 2) || !kc_conflicts(c, m, cas, 2) ||
        !kc_write_ok(c, m, cad, 2) || !kc_conflicts(c, m, cad, 2))
        return false;
    /* A long value: one byte off at either end is a mismatch. */
    uint8_t big[KC_MAX_VAL];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    segidx_kv_op put_big = KC_PUT("big", 3, big, sizeof big);
    if (!kc_write_ok(c, m, &put_big, 1))
        return false;
    for (int end = 0; end < 2; end++) {
        size_t at = end ? sizeof big - 1 : 0;
        big[at] ^= 0x01;
        segidx_kv_op off[] = { KC_EXPECT("big", 3, big, sizeof big), KC_DEL("big", 3) };
        bool ok = kc_conflicts(c, m, off, 2);
        big[at] ^= 0x01;
        if (!ok)
            return false;
    }
    segidx_kv_op shorter[] = { KC_EXPECT("big", 3, big, sizeof big - 1), KC_DEL("a", 1) };
    segidx_kv_op exact[] = { KC_EXPECT("big", 3, big, sizeof big), KC_DEL("big", 3) };
    if (!kc_conflicts(c, m, shorter, 2) || !kc_write_ok(c, m, exact, 2) || !kc_check_all(c, m))
        return false;
    kc_note(c, "%zu kinds of mismatch, first and last in a batch; EXPECTs see the store before "
            "their batch; compare-and-swap and -delete", KC_N(wrong));
    return true;
}

static bool rule_expect_random(kc *c, kc_model *m)
{
    uint64_t r = 0x4B56000003ull;
    kc_batch *b = malloc(sizeof *b);
    if (!b)
        return kc_oom(c);
    enum { ROUNDS = 200 };
    int applied = 0, refused = 0;
    bool ok = true;
    for (int round = 0; ok && round < ROUNDS; round++) {
        kc_gen_batch(&r, m, b);
        size_t expects = 1 + kc_below(&r, 4);
        bool one_wrong = kc_below(&r, 2);
        size_t wrong_at = kc_below(&r, expects);
        for (size_t j = 0; j < expects; j++) {
            size_t slot = b->n, klen;
            if (kc_below(&r, 3) == 0) { /* a key the batch also changes */
                const segidx_kv_op *other = &b->ops[kc_below(&r, b->n)];
                klen = other->klen;
                memcpy(b->keys[slot], other->key, klen);
            } else {
                klen = kc_gen_key(&r, m, b->keys[slot]);
            }
            segidx_kv_op ex = kc_gen_expect(&r, m, b->keys[slot], klen,
                                            one_wrong && j == wrong_at, b->vals[slot]);
            size_t at = kc_below(&r, b->n + 1);
            memmove(&b->ops[at + 1], &b->ops[at], (b->n - at) * sizeof *b->ops);
            b->ops[at] = ex;
            b->n++;
        }
        if (kc_expects_hold(m, b->ops, b->n)) {
            ok = kc_write_ok(c, m, b->ops, b->n);
            applied++;
        } else {
            int rc = c->kv.vt->write(c->kv.self, b->ops, b->n);
            if (rc != SEGIDX_ECONFLICT)
                ok = kc_fail(c, rc < 0 && rc != SEGIDX_EINVAL ? kc_store_rc(rc) : SEGIDX_ECORRUPT,
                             "a batch with a failing EXPECT returned %d, expected "
                             "SEGIDX_ECONFLICT", rc);
            refused++;
        }
        for (size_t i = 0; ok && i < b->n; i++)
            ok = kc_get(c, m, b->ops[i].key, b->ops[i].klen);
        if (ok && (round % 25 == 24 || round == ROUNDS - 1))
            ok = kc_check_all(c, m);
    }
    free(b);
    kc_note(c, "%d random batches with EXPECTs: %d applied, %d refused", ROUNDS, applied, refused);
    return ok;
}

#if SEGIDX__THREADS

/* ------------------------------------------------------------ threads */

static int kc_read_u64(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    if (vlen != 8)
        return 1;
    memcpy(ctx, val, 8);
    return 0;
}

enum { KC_CAS_THREADS = 4, KC_CAS_EACH = 200, KC_RACE_KEYS = 50 };

/* A reusable barrier for however many threads did start (a
 * pthread_barrier's count is fixed before they are created). */
typedef struct kc_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int parties, arrived; /* parties 0: not open yet */
    unsigned round;
} kc_gate;

static void kc_gate_wait(kc_gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->parties == 0)
        pthread_cond_wait(&g->cv, &g->mu);
    unsigned round = g->round;
    if (++g->arrived == g->parties) {
        g->arrived = 0;
        g->round++;
        pthread_cond_broadcast(&g->cv);
    }
    while (g->round == round)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void kc_gate_open(kc_gate *g, int parties)
{
    pthread_mutex_lock(&g->mu);
    g->parties = parties;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct kc_racer {
    segidx_kv kv;
    pthread_t tid;
    kc_gate *gate;
    uint8_t id;
    long conflicts;
    int rc;                    /* the first unexpected return */
    uint8_t won[KC_RACE_KEYS]; /* creations this thread won */
} kc_racer;

/* Add one to the counter with a compare-and-swap; read again after each
 * SEGIDX_ECONFLICT. Yields between read and write so that the others'
 * increments land there. */
static int kc_cas_increment(kc_racer *t)
{
    for (;;) {
        uint64_t cur = 0, next;
        int rc = t->kv.vt->get(t->kv.self, "counter", 7, kc_read_u64, &cur);
        if (rc != SEGIDX_OK && rc != SEGIDX_ENOTFOUND)
            return rc;
        sched_yield();
        bool absent = rc == SEGIDX_ENOTFOUND;
        next = cur + 1;
        segidx_kv_op ops[2] = { KC_EXPECT("counter", 7, absent ? NULL : &cur, absent ? 0 : 8),
                                KC_PUT("counter", 7, &next, 8) };
        rc = t->kv.vt->write(t->kv.self, ops, 2);
        if (rc != SEGIDX_ECONFLICT)
            return rc;
        t->conflicts++;
    }
}

static void *kc_racer_main(void *arg)
{
    kc_racer *t = arg;
    for (int i = 0; i < KC_CAS_EACH && t->rc == 0; i++)
        t->rc = kc_cas_increment(t);
    /* Every thread creates key j at once, on the condition that it is
     * absent: one wins, the others must see SEGIDX_ECONFLICT. */
    for (int j = 0; j < KC_RACE_KEYS; j++) {
        kc_gate_wait(t->gate);
        uint8_t key[2] = { 'n', (uint8_t)j };
        segidx_kv_op ops[2] = { KC_EXPECT(key, 2, NULL, 0), KC_PUT(key, 2, &t->id, 1) };
        int rc = t->kv.vt->write(t->kv.self, ops, 2);
        if (rc == SEGIDX_OK)
            t->won[j] = 1;
        else if (rc != SEGIDX_ECONFLICT && t->rc == 0)
            t->rc = rc;
    }
    return NULL;
}

static bool rule_expect_race(kc *c, kc_model *m)
{
    kc_racer th[KC_CAS_THREADS];
    kc_gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };
    memset(th, 0, sizeof th);
    int started = 0;
    for (; started < KC_CAS_THREADS; started++) {
        th[started] = (kc_racer){ .kv = c->kv, .gate = &gate, .id = (uint8_t)started };
        if (pthread_create(&th[started].tid, NULL, kc_racer_main, &th[started]))
            break;
    }
    kc_gate_open(&gate, started);
    long conflicts = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        conflicts += th[i].conflicts;
    }
    pthread_cond_destroy(&gate.cv);
    pthread_mutex_destroy(&gate.mu);
    if (started < KC_CAS_THREADS)
        return kc_fail(c, SEGIDX_ENOMEM, "could not start %d threads", KC_CAS_THREADS);
    for (int i = 0; i < KC_CAS_THREADS; i++)
        if (th[i].rc)
            return kc_fail(c, kc_store_rc(th[i].rc), "a racing get or write returned %d (%s)",
                           th[i].rc, segidx_strerror(th[i].rc));
    uint64_t total = 0;
    int rc = c->kv.vt->get(c->kv.self, "counter", 7, kc_read_u64, &total);
    if (rc || total != (uint64_t)KC_CAS_THREADS * KC_CAS_EACH)
        return kc_fail(c, SEGIDX_ECORRUPT, "%d threads added %d each by compare-and-swap; the "
                       "counter holds %llu (get %d): an EXPECT let a stale write in",
                       KC_CAS_THREADS, KC_CAS_EACH, (unsigned long long)total, rc);
    if (!kc_put(m, "counter", 7, &total, 8))
        return kc_oom(c);
    for (int j = 0; j < KC_RACE_KEYS; j++) {
        int winners = 0;
        uint8_t who = 0;
        for (int i = 0; i < KC_CAS_THREADS; i++)
            if (th[i].won[j])
                winners++, who = th[i].id;
        if (winners != 1)
            return kc_fail(c, SEGIDX_ECORRUPT, "%d threads created key 6e%02x at once on the "
                           "condition that it was absent, and %d succeeded", KC_CAS_THREADS, j,
                           winners);
        uint8_t key[2] = { 'n', (uint8_t)j };
        if (!kc_put(m, key, 2, &who, 1))
            return kc_oom(c);
    }
    if (!kc_check_all(c, m))
        return false;
    kc_note(c, "%d threads x %d compare-and-swap increments (%ld conflicts retried); %d keys "
            "created by %d threads at once, one winner each", KC_CAS_THREADS, KC_CAS_EACH,
            conflicts, KC_RACE_KEYS, KC_CAS_THREADS);
    return true;
}

/* A write that runs in another thread while a scan's visit function
 * waits for it (or, for a store that holds writers back during a scan, a
 * while). */
typedef struct kc_snap {
    segidx_kv kv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go, done, landed;
    int write_rc;
    const segidx_kv_op *ops;
    size_t n;
    kc_seen seen;
} kc_snap;

static void *kc_snap_writer(void *arg)
{
    kc_snap *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->go)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    int rc = s->kv.vt->write(s->kv.self, s->ops, s->n);
    pthread_mutex_lock(&s->mu);
    s->write_rc = rc;
    s->done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int kc_snap_visit(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    kc_snap *s = ctx;
    if (s->seen.got.n == 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 300 * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&s->mu);
        s->go = true;
        pthread_cond_broadcast(&s->cv);
        int wrc = 0;
        while (!s->done && wrc != ETIMEDOUT)
            wrc = pthread_cond_timedwait(&s->cv, &s->mu, &until);
        s->landed = s->done;
        pthread_mutex_unlock(&s->mu);
    }
    return kc_collect(&s->seen, key, klen, val, vlen);
}

enum { KC_SNAP_KEYS = 600 };

static bool kc_snapshot_once(kc *c, kc_model *m, bool reverse, bool *landed)
{
    /* Change keys at the far end of the scan: one deleted, one changed,
     * one new in between. */
    uint8_t far[2][3], newkey[4];
    uint16_t end = reverse ? 0 : KC_SNAP_KEYS - 1, near = reverse ? 1 : KC_SNAP_KEYS - 2;
    far[0][0] = far[1][0] = 's';
    segidx__store16(&far[0][1], end);
    segidx__store16(&far[1][1], near);
    memcpy(newkey, far[1], 3);
    newkey[3] = reverse ? 0x00 : 0xFF; /* between near and end either way */
    segidx_kv_op ops[] = { KC_DEL(far[0], 3), KC_PUT(far[1], 3, "changed", 7),
                           KC_PUT(newkey, 4, "new", 3) };
    kc_snap s = { .kv = c->kv, .ops = ops, .n = KC_N(ops), .seen = { { 0 }, -1, 0, 0, 0 } };
    pthread_t tid;
    if (pthread_mutex_init(&s.mu, NULL) || pthread_cond_init(&s.cv, NULL) ||
        pthread_create(&tid, NULL, kc_snap_writer, &s))
        return kc_fail(c, SEGIDX_ENOMEM, "could not start a thread");
    int rc = c->kv.vt->scan(c->kv.self, NULL, 0, NULL, 0, reverse, kc_snap_visit, &s);
    pthread_mutex_lock(&s.mu);
    s.go = true; /* an empty scan never called the visit function */
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(tid, NULL);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    *landed = s.landed;
    bool ok = kc_seen_sane(c, &s.seen, "scan");
    if (ok && rc)
        ok = kc_fail(c, kc_store_rc(rc), "a scan with a write in another thread returned %d", rc);
    if (ok && s.write_rc)
        ok = kc_fail(c, kc_store_rc(s.write_rc), "a write in another thread during a scan "
                     "returned %d", s.write_rc);
    bool same = ok && s.seen.got.n == m->n;
    for (size_t i = 0; same && i < m->n; i++)
        same = kc_same_entry(&s.seen.got.e[i], &m->e[reverse ? m->n - 1 - i : i]);
    if (ok && !same)
        ok = kc_fail(c, SEGIDX_ECORRUPT, "a %s scan saw a write that landed while it ran "
                     "(%zu keys seen, %zu before the write): a scan must be one snapshot",
                     reverse ? "reverse" : "forward", s.seen.got.n, m->n);
    kc_model_free(&s.seen.got);
    return ok && (kc_apply(m, ops, KC_N(ops)) || kc_oom(c)) && kc_check_all(c, m);
}

static bool rule_snapshot(kc *c, kc_model *m)
{
    segidx_kv_op *ops = malloc(KC_SNAP_KEYS * sizeof *ops);
    uint8_t(*keys)[3] = malloc(KC_SNAP_KEYS * sizeof *keys);
    bool ok = ops && keys;
    if (!ok)
        kc_oom(c);
    for (uint16_t i = 0; ok && i < KC_SNAP_KEYS; i++) {
        keys[i][0] = 's';
        segidx__store16(&keys[i][1], i);
        ops[i] = KC_PUT(keys[i], 3, keys[i], 3);
    }
    ok = ok && kc_write_ok(c, m, ops, KC_SNAP_KEYS);
    free(ops);
    free(keys);
    bool landed[2] = { false, false };
    for (int rev = 0; ok && rev < 2; rev++)
        ok = kc_snapshot_once(c, m, rev, &landed[rev]);
    if (ok)
        kc_note(c, "a 3-op batch from another thread while a scan of %d keys waited in its "
                "first visit: %s", KC_SNAP_KEYS,
                landed[0] && landed[1] ? "it landed during the scan, which did not see it"
                : !landed[0] && !landed[1] ? "the store held the write until the scan ended"
                                           : "it landed during one scan");
    return ok;
}

/* Writers each own a group of keys that every batch sets to one value (a
 * scan that is one snapshot sees a group whole, one value) and a range of
 * random keys only they write (so their own scans are exact). */
enum { KC_WRITERS = 4, KC_SCANNERS = 2, KC_GROUP = 5, KC_ROUNDS = 300 };

typedef struct kc_worker {
    segidx_kv kv;
    int id;
    pthread_t tid;
    kc_model own;
    const char *error;
    int rc;
    atomic_int *writers_done;
} kc_worker;

static void kc_group_key(uint8_t *key, int writer, int j)
{
    key[0] = 'g', key[1] = (uint8_t)writer, key[2] = (uint8_t)j;
}

static void kc_worker_fail(kc_worker *t, int rc, const char *what)
{
    if (!t->error)
        t->error = what, t->rc = rc;
}

static bool kc_same_model(const kc_model *a, const kc_model *b, bool b_reversed)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!kc_same_entry(&a->e[i], &b->e[b_reversed ? b->n - 1 - i : i]))
            return false;
    return true;
}

static void *kc_writer(void *arg)
{
    kc_worker *t = arg;
    uint64_t r = 0x7E57000000ull + (uint64_t)t->id;
    uint8_t gkeys[KC_GROUP][3];
    for (int j = 0; j < KC_GROUP; j++)
        kc_group_key(gkeys[j], t->id, j);
    for (int i = 1; i <= KC_ROUNDS && !t->error; i++) {
        uint32_t v = (uint32_t)i;
        segidx_kv_op g[KC_GROUP];
        for (int j = 0; j < KC_GROUP; j++)
            g[j] = KC_PUT(gkeys[j], 3, &v, 4);
        int rc = t->kv.vt->write(t->kv.self, g, KC_GROUP);
        if (rc)
            kc_worker_fail(t, kc_store_rc(rc), "a group write failed");
        uint8_t key[4] = { 'r', (uint8_t)t->id, (uint8_t)kc_below(&r, 8),
                           (uint8_t)kc_below(&r, 256) };
        uint8_t val[16];
        size_t vlen = kc_below(&r, sizeof val + 1);
        for (size_t j = 0; j < vlen; j++)
            val[j] = (uint8_t)kc_next(&r);
        segidx_kv_op op = kc_below(&r, 4) ? KC_PUT(key, 4, val, vlen) : KC_DEL(key, 4);
        if ((rc = t->kv.vt->write(t->kv.self, &op, 1)) != 0)
            kc_worker_fail(t, kc_store_rc(rc), "a write failed");
        if (!kc_apply(&t->own, &op, 1))
            kc_worker_fail(t, SEGIDX_ENOMEM, "out of memory in the suite itself");
        if (i % 64 == 0) { /* my range is mine alone: exact, both ways */
            uint8_t lo[2] = { 'r', (uint8_t)t->id }, hi[2] = { 'r', (uint8_t)(t->id + 1) };
            for (int rev = 0; rev < 2; rev++) {
                kc_seen seen = { { 0 }, -1, 0, 0, 0 };
                if ((rc = t->kv.vt->scan(t->kv.self, lo, 2, hi, 2, rev, kc_collect, &seen)) != 0)
                    kc_worker_fail(t, kc_store_rc(rc), "a scan failed");
                else if (seen.nomem || seen.null_ptr)
                    kc_worker_fail(t, seen.nomem ? SEGIDX_ENOMEM : SEGIDX_ECORRUPT,
                                   "a scan handed out a NULL pointer");
                else if (!kc_same_model(&seen.got, &t->own, rev))
                    kc_worker_fail(t, SEGIDX_ECORRUPT,
                                   "a writer's scan of its own keys differs from what it wrote");
                kc_model_free(&seen.got);
            }
        }
    }
    return NULL;
}

/* Collects 3-byte keys with 4-byte values into a fixed array. */
typedef struct kc_raw {
    size_t n, bad;
    uint8_t keys[KC_WRITERS * KC_GROUP][3];
    uint32_t vals[KC_WRITERS * KC_GROUP];
} kc_raw;

static int kc_raw_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    kc_raw *c = ctx;
    if (!key || !val || klen != 3 || vlen != 4 || c->n == KC_WRITERS * KC_GROUP) {
        c->bad++;
        return 0;
    }
    memcpy(c->keys[c->n], key, 3);
    memcpy(&c->vals[c->n], val, 4);
    c->n++;
    return 0;
}

/* Per writer: all of its group or none, one value, never older. */
static void kc_check_groups(kc_worker *t, const kc_raw *c, uint32_t *last)
{
    for (size_t i = 0; i < c->n && !t->error; i += KC_GROUP) {
        if (c->n - i < KC_GROUP) {
            kc_worker_fail(t, SEGIDX_ECORRUPT, "a scan saw part of a batch");
            return;
        }
        int w = c->keys[i][1];
        for (int j = 0; j < KC_GROUP; j++)
            if (c->keys[i + j][1] != w || c->vals[i + j] != c->vals[i])
                kc_worker_fail(t, SEGIDX_ECORRUPT, "a scan saw a torn batch (not one snapshot, "
                               "or a batch not atomic)");
        if (w >= KC_WRITERS || c->vals[i] < last[w])
            kc_worker_fail(t, SEGIDX_ECORRUPT, "a scan went back in time");
        else
            last[w] = c->vals[i];
    }
}

static void *kc_scanner(void *arg)
{
    kc_worker *t = arg;
    uint32_t last[KC_WRITERS] = { 0 };
    kc_raw *c = malloc(sizeof *c);
    if (!c) {
        kc_worker_fail(t, SEGIDX_ENOMEM, "out of memory in the suite itself");
        return NULL;
    }
    for (int scans = 0; !t->error; scans++) {
        int done = atomic_load(t->writers_done);
        c->n = c->bad = 0;
        int rc = t->kv.vt->scan(t->kv.self, "g", 1, "h", 1, scans % 2, kc_raw_collect, c);
        if (rc)
            kc_worker_fail(t, kc_store_rc(rc), "a scan failed");
        else if (c->bad)
            kc_worker_fail(t, SEGIDX_ECORRUPT, "a scan saw a pair no writer wrote");
        else
            kc_check_groups(t, c, last);
        /* A get in between: found with its 4 bytes, or not yet written. */
        uint8_t key[3];
        kc_group_key(key, scans % KC_WRITERS, scans % KC_GROUP);
        c->n = c->bad = 0;
        rc = t->kv.vt->get(t->kv.self, key, 3, kc_raw_collect, c);
        if ((rc != 0 && rc != SEGIDX_ENOTFOUND) || c->bad || c->n != (rc == 0))
            kc_worker_fail(t, rc < 0 && rc != SEGIDX_ENOTFOUND ? kc_store_rc(rc)
                                                                : SEGIDX_ECORRUPT,
                           "a get during writes failed");
        if (done)
            break;
    }
    free(c);
    return NULL;
}

static bool rule_concurrent(kc *c, kc_model *m)
{
    atomic_int writers_done = 0;
    kc_worker th[KC_WRITERS + KC_SCANNERS];
    memset(th, 0, sizeof th);
    int started = 0;
    for (; started < KC_WRITERS + KC_SCANNERS; started++) {
        kc_worker *t = &th[started];
        t->kv = c->kv, t->id = started, t->writers_done = &writers_done;
        if (pthread_create(&t->tid, NULL, started < KC_WRITERS ? kc_writer : kc_scanner, t))
            break;
    }
    for (int i = 0; i < started; i++) {
        if (i == KC_WRITERS) /* scanners stop after one more scan */
            atomic_store(&writers_done, 1);
        pthread_join(th[i].tid, NULL);
    }
    bool ok = true;
    if (started < KC_WRITERS + KC_SCANNERS)
        ok = kc_fail(c, SEGIDX_ENOMEM, "could not start %d threads", KC_WRITERS + KC_SCANNERS);
    for (int i = 0; ok && i < started; i++)
        if (th[i].error)
            ok = kc_fail(c, th[i].rc, "%s", th[i].error);
    /* The union of what was written. */
    for (int w = 0; w < KC_WRITERS && w < started; w++) {
        uint32_t v = KC_ROUNDS;
        for (int j = 0; ok && j < KC_GROUP; j++) {
            uint8_t key[3];
            kc_group_key(key, w, j);
            ok = kc_put(m, key, 3, &v, 4) || kc_oom(c);
        }
        for (size_t i = 0; ok && i < th[w].own.n; i++)
            ok = kc_put(m, th[w].own.e[i].k, th[w].own.e[i].klen, th[w].own.e[i].v,
                        th[w].own.e[i].vlen) || kc_oom(c);
        kc_model_free(&th[w].own);
    }
    ok = ok && kc_check_all(c, m);
    kc_note(c, "%d writers x %d batches and %d scanners at once; then the store held exactly "
            "what was written", KC_WRITERS, KC_ROUNDS, KC_SCANNERS);
    return ok;
}

#endif /* SEGIDX__THREADS */

/* ------------------------------------------------------------ the runner */

static int kc_first_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)ctx, (void)key, (void)klen, (void)val, (void)vlen;
    return 1;
}

static int kc_collect_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    kc_seen *s = ctx;
    if (!kc_append(&s->got, key, klen, NULL, 0))
        s->nomem = true;
    return 0;
}

/* Delete every key. 0, or what went wrong. */
static int kc_clear(segidx_kv kv)
{
    kc_seen s = { { 0 }, -1, 0, 0, 0 };
    int rc = kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, kc_collect_key, &s);
    segidx_kv_op *ops = rc || s.nomem ? NULL : malloc((s.got.n + 1) * sizeof *ops);
    if (!rc && !ops)
        rc = SEGIDX_ENOMEM;
    for (size_t i = 0; !rc && i < s.got.n; i++)
        ops[i] = KC_DEL(s.got.e[i].k, s.got.e[i].klen);
    for (size_t at = 0; !rc && at < s.got.n; at += 1000)
        rc = kv.vt->write(kv.self, ops + at, s.got.n - at < 1000 ? s.got.n - at : 1000);
    free(ops);
    kc_model_free(&s.got);
    if (!rc)
        rc = kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, kc_first_key, NULL);
    return rc;
}

typedef struct kc_rule {
    const char *name;
    bool (*run)(kc *c, kc_model *m);
    bool needs_expect, needs_threads;
} kc_rule;

static const kc_rule kc_rules[] = {
    { "order", rule_order, false, false },
    { "bounds", rule_bounds, false, false },
    { "get", rule_get, false, false },
    { "visit-return", rule_visit_return, false, false },
    { "later-wins", rule_later_wins, false, false },
    { "invalid-batch", rule_invalid_batch, false, false },
    { "random", rule_random, false, false },
    { "expect", rule_expect, true, false },
    { "expect-random", rule_expect_random, true, false },
#if SEGIDX__THREADS
    { "expect-race", rule_expect_race, true, true },
    { "snapshot", rule_snapshot, false, true },
    { "concurrent", rule_concurrent, false, true },
#else
    { "expect-race", NULL, true, true },
    { "snapshot", NULL, false, true },
    { "concurrent", NULL, false, true },
#endif
};

SEGIDX_API int segidx_kv_conformance(segidx_kv kv, segidx_kv_report_fn report, void *ctx)
{
    if (!kv.vt || !kv.vt->get || !kv.vt->scan || !kv.vt->write || kv.vt->version < 1)
        return SEGIDX_EINVAL;
    int rc = kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, kc_first_key, NULL);
    if (rc) {
        if (report)
            report(ctx, "empty", SEGIDX_KV_RULE_BROKEN,
                   rc == 1 ? "the store is not empty: the suite needs a fresh, empty store"
                           : "a scan of the whole store failed");
        return rc == 1 ? SEGIDX_EINVAL : segidx__host_rc(rc);
    }
    int first = SEGIDX_OK;
    for (size_t i = 0; i < KC_N(kc_rules); i++) {
        const kc_rule *rule = &kc_rules[i];
        kc c = { .kv = kv };
        if (!rule->run || (rule->needs_expect && kv.vt->version < 2)) {
            if (report)
                report(ctx, rule->name, SEGIDX_KV_RULE_SKIPPED,
                       rule->run ? "a version-1 store has no SEGIDX_KV_EXPECT"
                                 : "a single-threaded build");
            continue;
        }
        kc_model m = { 0 };
        rule->run(&c, &m);
        kc_model_free(&m);
        int clear = kc_clear(kv);
        if (clear && !c.rc) {
            c.rc = clear == 1 ? SEGIDX_ECORRUPT : segidx__host_rc(clear);
            snprintf(c.detail, sizeof c.detail, "deleting every key afterwards failed (%d)", clear);
        }
        if (report)
            report(ctx, rule->name, c.rc ? SEGIDX_KV_RULE_BROKEN : SEGIDX_KV_RULE_HOLDS, c.detail);
        if (c.rc && !first)
            first = c.rc;
        if (clear) /* the next rule needs an empty store */
            break;
    }
    return first;
}
