/* A store that passes every call of the segidx_kv vtable to an inner
 * store, for the tests' wrappers (a store that breaks a rule, counts, or
 * runs a racing operation between two calls). A hook, when set, runs in
 * place of its method and forwards with kv_forward_inner_*() as it sees
 * fit; a method without a hook forwards as is. Writes the inner store
 * refuses with SEGIDX_ECONFLICT (an EXPECT failed) are counted either
 * way. Embed a kv_forward first in a struct of your own to give the hooks
 * more state. Header-only. */
#ifndef SEGIDX_KV_FORWARD_H
#define SEGIDX_KV_FORWARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "segidx.h"

typedef struct kv_forward kv_forward;

struct kv_forward {
    segidx_kv inner;
    bool borrowed;       /* close leaves `inner` open (its owner closes it) */
    atomic_long refused; /* writes `inner` refused with SEGIDX_ECONFLICT */
    int (*get)(kv_forward *f, const void *key, size_t klen, segidx_kv_visit_fn fn, void *ctx);
    int (*scan)(kv_forward *f, const void *lo, size_t lolen, const void *hi, size_t hilen,
                bool reverse, segidx_kv_visit_fn fn, void *ctx);
    int (*write)(kv_forward *f, const segidx_kv_op *ops, size_t n);
    /* In place of closing `inner` (unless borrowed): frees what holds f,
     * and closes `inner` itself when it should. */
    void (*close)(kv_forward *f);
};

/* `f` over `inner`: no hooks, nothing counted yet. */
static inline void kv_forward_init(kv_forward *f, segidx_kv inner)
{
    memset(f, 0, sizeof *f);
    f->inner = inner;
    atomic_init(&f->refused, 0);
}

static inline int kv_forward_inner_get(kv_forward *f, const void *key, size_t klen,
                                       segidx_kv_visit_fn fn, void *ctx)
{
    return f->inner.vt->get(f->inner.self, key, klen, fn, ctx);
}

static inline int kv_forward_inner_scan(kv_forward *f, const void *lo, size_t lolen,
                                        const void *hi, size_t hilen, bool reverse,
                                        segidx_kv_visit_fn fn, void *ctx)
{
    return f->inner.vt->scan(f->inner.self, lo, lolen, hi, hilen, reverse, fn, ctx);
}

static inline int kv_forward_inner_write(kv_forward *f, const segidx_kv_op *ops, size_t n)
{
    int rc = f->inner.vt->write(f->inner.self, ops, n);
    if (rc == SEGIDX_ECONFLICT)
        atomic_fetch_add(&f->refused, 1);
    return rc;
}

static inline void kv_forward_inner_close(kv_forward *f)
{
    f->inner.vt->close(f->inner.self);
}

static inline int kv_forward_get_(void *self, const void *key, size_t klen,
                                  segidx_kv_visit_fn fn, void *ctx)
{
    kv_forward *f = self;
    return f->get ? f->get(f, key, klen, fn, ctx) : kv_forward_inner_get(f, key, klen, fn, ctx);
}

static inline int kv_forward_scan_(void *self, const void *lo, size_t lolen, const void *hi,
                                   size_t hilen, bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    kv_forward *f = self;
    if (f->scan)
        return f->scan(f, lo, lolen, hi, hilen, reverse, fn, ctx);
    return kv_forward_inner_scan(f, lo, lolen, hi, hilen, reverse, fn, ctx);
}

static inline int kv_forward_write_(void *self, const segidx_kv_op *ops, size_t n)
{
    kv_forward *f = self;
    return f->write ? f->write(f, ops, n) : kv_forward_inner_write(f, ops, n);
}

static inline void kv_forward_close_(void *self)
{
    kv_forward *f = self;
    if (f->close)
        f->close(f);
    else if (!f->borrowed)
        kv_forward_inner_close(f);
}

/* `f` as a store of vtable version `version` (1 knows no EXPECT: the
 * volume index then sends none), or of the current one. */
static inline segidx_kv kv_forward_kv_version(kv_forward *f, uint32_t version)
{
    static const segidx_kv_vtable v1 = { 1, kv_forward_get_, kv_forward_scan_,
                                         kv_forward_write_, kv_forward_close_ };
    static const segidx_kv_vtable current = { SEGIDX_KV_VTABLE_VERSION, kv_forward_get_,
                                              kv_forward_scan_, kv_forward_write_,
                                              kv_forward_close_ };
    return (segidx_kv){ version == 1 ? &v1 : &current, f };
}

static inline segidx_kv kv_forward_kv(kv_forward *f)
{
    return kv_forward_kv_version(f, SEGIDX_KV_VTABLE_VERSION);
}

/* A view of a store that several indexes share, as several hosts share
 * one catalog: each index gets one, whose close leaves the store open. It
 * keeps no state of its own (the view's self is the store itself), so it
 * needs no kv_forward to live as long as the index. */
static inline int borrow_get(void *self, const void *k, size_t kl, segidx_kv_visit_fn fn,
                             void *ctx)
{
    const segidx_kv *kv = self;
    return kv->vt->get(kv->self, k, kl, fn, ctx);
}

static inline int borrow_scan(void *self, const void *lo, size_t lol, const void *hi,
                              size_t hil, bool rev, segidx_kv_visit_fn fn, void *ctx)
{
    const segidx_kv *kv = self;
    return kv->vt->scan(kv->self, lo, lol, hi, hil, rev, fn, ctx);
}

static inline int borrow_write(void *self, const segidx_kv_op *ops, size_t n)
{
    const segidx_kv *kv = self;
    return kv->vt->write(kv->self, ops, n);
}

static inline void borrow_close(void *self)
{
    (void)self;
}

/* `kv` must outlive every index opened on the result. */
static inline segidx_kv borrowed_kv(segidx_kv *kv)
{
    static const segidx_kv_vtable vt = { SEGIDX_KV_VTABLE_VERSION, borrow_get, borrow_scan,
                                         borrow_write, borrow_close };
    return (segidx_kv){ &vt, kv };
}

#endif
