/* The host's KV store, every answer checked (kv_guard.h says what and why). */
#include "kv_guard.h"

#include <stdlib.h>

/* Bytes a store hands out: a NULL pointer with a length would be read. */
static bool bytes_ok(const void *p, size_t len)
{
    return p || len == 0;
}

/* ------------------------------------------------------------ get */

struct get_guard {
    const void *key;
    size_t klen;
    segidx_kv_visit_fn fn;
    void *ctx;
    unsigned calls;
    bool bad;  /* the store handed out what it must not */
    int fn_rc;
};

static int guard_get_visit(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct get_guard *g = ctx;
    if (g->calls++ || klen != g->klen || !bytes_ok(key, klen) || !bytes_ok(val, vlen) ||
        memcmp(key, g->key, klen) != 0) {
        g->bad = true;
        return SEGIDX_ECORRUPT;
    }
    g->fn_rc = g->fn(g->ctx, key, klen, val, vlen);
    return g->fn_rc;
}

int segidx__kv_get(const segidx_kv *kv, const void *key, size_t klen, segidx_kv_visit_fn fn,
                   void *ctx)
{
    struct get_guard g = { key, klen, fn, ctx, 0, false, 0 };
    int rc = kv->vt->get(kv->self, key, klen, guard_get_visit, &g);
    if (g.bad)
        return SEGIDX_ECORRUPT;
    if (rc == SEGIDX_ENOTFOUND)
        return g.calls ? SEGIDX_ECORRUPT : rc;
    if (g.calls == 0)   /* "found", yet nothing was handed over */
        return rc ? segidx__host_rc(rc) : SEGIDX_ECORRUPT;
    if (rc != g.fn_rc)  /* get returns what fn returned */
        return rc < 0 && rc != SEGIDX_ECORRUPT ? segidx__host_rc(rc) : SEGIDX_ECORRUPT;
    return g.fn_rc;
}

/* ------------------------------------------------------------ scan
 *
 * Keys reach the caller one behind the store: a key is handed on only once
 * the store's next key (or the end of the scan) has shown that it came in
 * order. A store that hands out an older entry first would otherwise have
 * it taken for the answer before anything could show that it was out of
 * order; the one-key delay costs a copy of each value.
 */

struct scan_guard {
    const uint8_t *lo, *hi;
    size_t lolen, hilen;
    bool reverse;
    segidx_kv_visit_fn fn;
    void *ctx;
    uint8_t key[SEGIDX__KV_MAX_KEY]; /* the key held back, and its value */
    size_t klen;
    uint8_t *val;
    size_t vlen, vcap;
    bool held;
    bool bad;
    int stop;  /* fn's non-zero return, once it came */
};

static bool key_in_order(const struct scan_guard *g, const void *key, size_t klen)
{
    if (g->lolen && segidx__key_cmp(key, klen, g->lo, g->lolen) < 0)
        return false;
    if (segidx__key_cmp(key, klen, g->hi, g->hilen) >= 0)
        return false;
    if (!g->held)
        return true;
    int c = segidx__key_cmp(key, klen, g->key, g->klen);
    return g->reverse ? c < 0 : c > 0;
}

/* Hand the held key on. */
static int release_held(struct scan_guard *g)
{
    g->held = false;
    return g->stop = g->fn(g->ctx, g->key, g->klen, g->val, g->vlen);
}

static int hold(struct scan_guard *g, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (vlen > g->vcap) {
        size_t cap = vlen > 2 * g->vcap ? vlen : 2 * g->vcap;
        uint8_t *p = realloc(g->val, cap);
        if (!p)
            return SEGIDX_ENOMEM;
        g->val = p;
        g->vcap = cap;
    }
    memcpy(g->key, key, klen);
    g->klen = klen;
    if (vlen)
        memcpy(g->val, val, vlen);
    g->vlen = vlen;
    g->held = true;
    return SEGIDX_OK;
}

static int guard_scan_visit(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct scan_guard *g = ctx;
    if (g->stop || klen == 0 || klen > SEGIDX__KV_MAX_KEY || !key || !bytes_ok(val, vlen) ||
        !key_in_order(g, key, klen)) {
        g->bad = true;
        return g->stop ? g->stop : SEGIDX_ECORRUPT;
    }
    if (g->held && release_held(g))
        return g->stop;
    if (hold(g, key, klen, val, vlen))
        return g->stop = SEGIDX_ENOMEM;
    return 0;
}

int segidx__kv_scan(const segidx_kv *kv, const void *lo, size_t lolen, const void *hi,
                    size_t hilen, bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    struct scan_guard g = { lo, hi, lolen, hilen, reverse, fn, ctx, { 0 }, 0, NULL, 0, 0,
                            false, false, 0 };
    int rc = kv->vt->scan(kv->self, lo, lolen, hi, hilen, reverse, guard_scan_visit, &g);
    if (g.bad) {
        rc = SEGIDX_ECORRUPT;
    } else if (g.stop) {
        /* A scan returns the stop; an error of the store's own still
         * counts as one. */
        if (rc != g.stop)
            rc = rc < 0 && rc != SEGIDX_ECORRUPT ? segidx__host_rc(rc) : SEGIDX_ECORRUPT;
    } else if (rc) {
        rc = segidx__host_rc(rc);
    } else if (g.held) {
        rc = release_held(&g); /* the last key: the end of the scan vouches for it */
    }
    free(g.val);
    return rc;
}

/* ------------------------------------------------------------ write */

bool segidx__kv_has_expect(const segidx_kv *kv)
{
    return kv->vt->version >= 2;
}

/* A version-1 store gets the batch without its EXPECTs (the volume index
 * serializes its own writes instead). */
static int write_without_expects(const segidx_kv *kv, const segidx_kv_op *ops, size_t n)
{
    while (n && ops->op == SEGIDX_KV_EXPECT) /* the usual place: first */
        ops++, n--;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += ops[i].op != SEGIDX_KV_EXPECT;
    if (kept == n)
        return segidx__host_rc(kv->vt->write(kv->self, ops, n));
    segidx_kv_op *changes = malloc(kept * sizeof *changes + 1);
    if (!changes)
        return SEGIDX_ENOMEM;
    for (size_t i = 0, j = 0; i < n; i++)
        if (ops[i].op != SEGIDX_KV_EXPECT)
            changes[j++] = ops[i];
    int rc = segidx__host_rc(kv->vt->write(kv->self, changes, kept));
    free(changes);
    return rc;
}

int segidx__kv_write(const segidx_kv *kv, const segidx_kv_op *ops, size_t n)
{
    if (!segidx__kv_has_expect(kv))
        return write_without_expects(kv, ops, n);
    return segidx__host_rc(kv->vt->write(kv->self, ops, n));
}
