/* Volume index test helpers: a KV stub that counts and fails calls, and a
 * brute-force model of a volume's commits. Shared by the volume index
 * tests over the in-memory store and over LMDB. */
#ifndef SEGIDX_VITEST_H
#define SEGIDX_VITEST_H

#include "kv_forward.h"
#include "testutil.h"

/* ------------------------------------------------------------ the stub KV
 *
 * Wraps a real store. Each method can be told to fail on its Nth call from
 * now (1 = the next call) with `fail_rc`; every call and every entry a scan
 * hands out is counted. A race is run on purpose by `hook`: it runs just
 * before the call numbered `hook_at` (counting every method's calls from 1
 * since it was set), so that another writer's operation lands exactly
 * between two calls of the one under test.
 */
typedef struct stub_kv {
    kv_forward fw; /* first: the hooks get it */
    int fail_rc;
    long fail_get_at, fail_scan_at, fail_write_at; /* 0: never */
    long gets, scans, writes;
    long visited;  /* entries scans handed to their callbacks */
    long calls;    /* every method's, for hook_at */
    long hook_at;  /* 0: never */
    void (*hook)(void *ctx);
    void *hook_ctx;
} stub_kv;

/* Run the hook if this call is the one it waits for. */
static void stub_call(stub_kv *s)
{
    if (++s->calls == s->hook_at && s->hook)
        s->hook(s->hook_ctx);
}

/* Arm the hook to run before the `at`th call from now. */
static inline void stub_hook(stub_kv *s, long at, void (*hook)(void *ctx), void *ctx)
{
    s->calls = 0;
    s->hook_at = at;
    s->hook = hook;
    s->hook_ctx = ctx;
}

struct stub_visit {
    stub_kv *stub;
    segidx_kv_visit_fn fn;
    void *ctx;
};

static int stub_count_visit(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct stub_visit *v = ctx;
    v->stub->visited++;
    return v->fn(v->ctx, key, klen, val, vlen);
}

static bool stub_should_fail(long *at)
{
    return *at > 0 && --*at == 0;
}

static int stub_get(kv_forward *f, const void *key, size_t klen, segidx_kv_visit_fn fn,
                    void *ctx)
{
    stub_kv *s = (stub_kv *)f;
    stub_call(s);
    s->gets++;
    if (stub_should_fail(&s->fail_get_at))
        return s->fail_rc;
    return kv_forward_inner_get(f, key, klen, fn, ctx);
}

static int stub_scan(kv_forward *f, const void *lo, size_t lolen, const void *hi, size_t hilen,
                     bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    stub_kv *s = (stub_kv *)f;
    stub_call(s);
    s->scans++;
    if (stub_should_fail(&s->fail_scan_at))
        return s->fail_rc;
    struct stub_visit v = { s, fn, ctx };
    return kv_forward_inner_scan(f, lo, lolen, hi, hilen, reverse, stub_count_visit, &v);
}

static int stub_write(kv_forward *f, const segidx_kv_op *ops, size_t n)
{
    stub_kv *s = (stub_kv *)f;
    stub_call(s);
    s->writes++;
    if (stub_should_fail(&s->fail_write_at))
        return s->fail_rc;
    return kv_forward_inner_write(f, ops, n);
}

static void stub_close(kv_forward *f)
{
    kv_forward_inner_close(f);
    free((stub_kv *)f);
}

static inline segidx_kv stub_wrap(segidx_kv inner, stub_kv **out)
{
    stub_kv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    kv_forward_init(&s->fw, inner);
    s->fw.get = stub_get;
    s->fw.scan = stub_scan;
    s->fw.write = stub_write;
    s->fw.close = stub_close;
    s->fail_rc = SEGIDX_EIO;
    *out = s;
    return kv_forward_kv(&s->fw);
}

/* ------------------------------------------------------------ dumps
 *
 * The whole store as one byte string: "unchanged" means equal dumps.
 */
typedef struct dump {
    uint8_t *p;
    size_t len, cap;
} dump;

static inline void dump_put(dump *d, const void *src, size_t n)
{
    if (d->len + n + 8 > d->cap) {
        d->cap = (d->len + n + 8) * 2;
        d->p = realloc(d->p, d->cap);
        assert_non_null(d->p);
    }
    uint64_t len = n;
    memcpy(d->p + d->len, &len, 8);
    memcpy(d->p + d->len + 8, src, n);
    d->len += n + 8;
}

static inline int dump_visit(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    dump_put(ctx, key, klen);
    dump_put(ctx, val, vlen);
    return 0;
}

static inline dump dump_store(segidx_kv kv)
{
    dump d = { 0 };
    assert_int_equal(kv.vt->scan(kv.self, "", 0, "", 0, false, dump_visit, &d), 0);
    return d;
}

static inline void assert_dumps_equal(const dump *a, const dump *b)
{
    assert_int_equal(a->len, b->len);
    if (a->len)
        assert_memory_equal(a->p, b->p, a->len);
}

/* ------------------------------------------------------------ the model */

#define MODEL_MAX_SEGS 3

typedef struct model_seg {
    segidx_sid sid;
    segidx_offset_set *offsets;
} model_seg;

typedef struct model_commit {
    segidx_lsn lsn;
    model_seg segs[MODEL_MAX_SEGS];
    size_t n;
} model_commit;

typedef struct model_volume {
    segidx_vid vid;
    model_commit *commits; /* commits[i].lsn == i + 1 */
    size_t n;
    segidx_lsn keep_from;
} model_volume;

static inline void model_volume_free(model_volume *v)
{
    for (size_t i = 0; i < v->n; i++)
        for (size_t j = 0; j < v->commits[i].n; j++)
            segidx_offset_set_free(v->commits[i].segs[j].offsets);
    free(v->commits);
    memset(v, 0, sizeof *v);
}

/* One visit of find_segments, as the model or the index reports it. */
typedef struct found {
    segidx_lsn lsn;
    segidx_sid sid;
    segidx_offset_set *cut;
} found;

typedef struct found_list {
    found *f;
    size_t n, cap;
    int stop_after; /* return 99 after this many visits; -1: never */
    long walked;    /* the model's entries read (model_find only) */
} found_list;

static inline int collect_found(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    found_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->f = realloc(l->f, l->cap * sizeof *l->f);
        assert_non_null(l->f);
    }
    l->f[l->n++] = (found){ lsn, *sid, segidx_offset_set_copy(cut) };
    return l->stop_after >= 0 && (int)l->n == l->stop_after ? 99 : 0;
}

static inline void found_list_free(found_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        segidx_offset_set_free(l->f[i].cut);
    free(l->f);
    memset(l, 0, sizeof *l);
}

/* The model's find_segments: newest first; within one commit the index
 * visits segments in descending sid order (a reverse scan), so do that. */
static inline void model_find(const model_volume *v, segidx_lsn lsn, segidx_offset_set *query,
                       found_list *out)
{
    size_t top = lsn < v->n ? lsn : v->n;
    for (size_t c = top; c-- > 0 && !segidx_offset_set_is_empty(query);) {
        const model_commit *mc = &v->commits[c];
        size_t order[MODEL_MAX_SEGS];
        for (size_t i = 0; i < mc->n; i++)
            order[i] = i;
        for (size_t i = 0; i < mc->n; i++) /* selection sort, descending sid */
            for (size_t j = i + 1; j < mc->n; j++)
                if (memcmp(mc->segs[order[j]].sid.bytes, mc->segs[order[i]].sid.bytes, 16) > 0) {
                    size_t t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        for (size_t i = 0; i < mc->n && !segidx_offset_set_is_empty(query); i++) {
            const model_seg *s = &mc->segs[order[i]];
            out->walked++;
            segidx_offset_set *cut = segidx_offset_set_cut(query, s->offsets);
            if (!segidx_offset_set_is_empty(cut))
                collect_found(out, &s->sid, mc->lsn, cut);
            segidx_offset_set_free(cut);
        }
    }
}

static inline void assert_found_equal(const found_list *a, const found_list *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->f[i].lsn, b->f[i].lsn);
        assert_memory_equal(a->f[i].sid.bytes, b->f[i].sid.bytes, 16);
        assert_true(segidx_offset_set_equals(a->f[i].cut, b->f[i].cut));
    }
}

/* What a find_segments over `asked` at `lsn` gave (its visits `got`, the
 * query it left `left`) is what the model gives. */
static inline void assert_find_like_model(const model_volume *v, segidx_lsn lsn,
                                          const segidx_offset_set *asked, const found_list *got,
                                          const segidx_offset_set *left)
{
    segidx_offset_set *mq = segidx_offset_set_copy(asked);
    found_list want = { NULL, 0, 0, -1, 0 };
    model_find(v, lsn, mq, &want);
    assert_found_equal(got, &want);
    assert_true(segidx_offset_set_equals(left, mq));
    found_list_free(&want);
    segidx_offset_set_free(mq);
}

/* find_segments of `vi` at `lsn` over `asked` answers OK, as the model. */
static inline void assert_find_exact(segidx_volume_index *vi, const model_volume *v,
                                     segidx_lsn lsn, const segidx_offset_set *asked)
{
    segidx_offset_set *q = segidx_offset_set_copy(asked);
    found_list got = { NULL, 0, 0, -1, 0 };
    assert_int_equal(segidx_volume_find_segments(vi, &v->vid, lsn, q, collect_found, &got),
                     SEGIDX_OK);
    assert_find_like_model(v, lsn, asked, &got, q);
    found_list_free(&got);
    segidx_offset_set_free(q);
}

#endif
