/* Stores for the benchmarks: a store that counts what the volume index
 * asks of the store under it, and scratch LMDB stores (a fresh directory
 * under /tmp, a store opened in it, the removal of both). Header-only,
 * like bench.h. */
#ifndef SEGIDX_BENCH_KV_H
#define SEGIDX_BENCH_KV_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "segidx_lmdb.h"

/* ------------------------------------------------------------ counting store */

/* What the index asked of its store. */
struct bench_kv_counts {
    uint64_t visits;      /* scan visits and get callbacks: entries read */
    uint64_t scan_visits; /* of those, scan visits */
    uint64_t calls;       /* gets and scans */
    uint64_t put_bytes;   /* key + value bytes of the PUTs written */
};

/* A store passing every call to `inner`, counting as it goes. */
struct bench_counting_kv {
    segidx_kv inner;
    struct bench_kv_counts n;
};

struct bench_counting_visit {
    struct bench_counting_kv *c;
    bool scan;
    segidx_kv_visit_fn fn;
    void *ctx;
};

static inline int bench_count_visit(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    struct bench_counting_visit *cv = ctx;
    cv->c->n.visits++;
    cv->c->n.scan_visits += cv->scan;
    return cv->fn(cv->ctx, k, kl, v, vl);
}

static inline int bench_counting_get(void *self, const void *k, size_t kl, segidx_kv_visit_fn fn,
                                     void *ctx)
{
    struct bench_counting_kv *c = self;
    struct bench_counting_visit cv = { c, false, fn, ctx };
    c->n.calls++;
    return c->inner.vt->get(c->inner.self, k, kl, bench_count_visit, &cv);
}

static inline int bench_counting_scan(void *self, const void *lo, size_t lol, const void *hi,
                                      size_t hil, bool rev, segidx_kv_visit_fn fn, void *ctx)
{
    struct bench_counting_kv *c = self;
    struct bench_counting_visit cv = { c, true, fn, ctx };
    c->n.calls++;
    return c->inner.vt->scan(c->inner.self, lo, lol, hi, hil, rev, bench_count_visit, &cv);
}

static inline int bench_counting_write(void *self, const segidx_kv_op *ops, size_t n)
{
    struct bench_counting_kv *c = self;
    for (size_t i = 0; i < n; i++)
        if (ops[i].op == SEGIDX_KV_PUT)
            c->n.put_bytes += ops[i].klen + ops[i].vlen;
    return c->inner.vt->write(c->inner.self, ops, n);
}

static inline void bench_counting_close(void *self)
{
    struct bench_counting_kv *c = self;
    c->inner.vt->close(c->inner.self);
}

/* `c` (its inner store set, its counts zero) as a store; closing it
 * closes the inner one, not `c` itself. */
static inline segidx_kv bench_counting_kv(struct bench_counting_kv *c)
{
    static const segidx_kv_vtable vt = { SEGIDX_KV_VTABLE_VERSION, bench_counting_get,
                                         bench_counting_scan, bench_counting_write,
                                         bench_counting_close };
    return (segidx_kv){ &vt, c };
}

/* ------------------------------------------------------------ scratch LMDB */

/* A new empty directory /tmp/segidx-bench-<name>-XXXXXX; free() it. */
static inline char *bench_scratch_dir(const char *name)
{
    char *dir = bench_xmalloc(256);
    snprintf(dir, 256, "/tmp/segidx-bench-%s-XXXXXX", name);
    BENCH_CHECK(mkdtemp(dir));
    return dir;
}

/* Remove the store in `dir` (its two files) and the directory. */
static inline void bench_scratch_remove(const char *dir)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    for (int i = 0; i < 2; i++) {
        char path[1024];
        int n = snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        BENCH_CHECK(n > 0 && (size_t)n < sizeof path);
        unlink(path);
    }
    rmdir(dir);
}

/* The LMDB store in `dir` (created if missing). `map_size` is address
 * space: the file grows as it is used. `nosync` for every figure that is
 * not about fsync. */
static inline segidx_kv bench_lmdb_open(const char *dir, bool nosync, size_t map_size)
{
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = nosync;
    o.map_size = map_size;
    segidx_kv kv;
    BENCH_CHECK(segidx_kv_lmdb_open(dir, &o, &kv) == SEGIDX_OK);
    return kv;
}

#endif /* SEGIDX_BENCH_KV_H */
