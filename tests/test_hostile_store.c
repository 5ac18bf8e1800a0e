/* A host store that breaks the KV contract, one way at a time: keys outside
 * the range asked for, another volume's keys, entries out of order or
 * repeated, a visit's stop ignored, a scan or get returning what it must
 * not, a get that says "found" without handing anything over, bytes at
 * NULL. Every call of the volume index over it either answers exactly what
 * a well-behaved store would give, or fails with SEGIDX_ECORRUPT (the store
 * broke the contract) or SEGIDX_EIO (it returned a code the contract does
 * not allow); it never answers wrongly, and what fails leaves the store as
 * it was (prune never writes back what such a scan produced). For each way,
 * the calls that must notice it are named and must fail. */
#include "vitest.h"

enum mode {
    H_NONE,
    H_OUTSIDE_FIRST,   /* the key just outside the range, visited first */
    H_OUTSIDE_LAST,    /* the key just outside the range, visited last */
    H_REVERSED,        /* the range in the other direction */
    H_SWAP,            /* the first two keys swapped */
    H_REPEAT,          /* the first key twice */
    H_IGNORE_STOP,     /* visits go on after the callback said stop */
    H_SCAN_POSITIVE,   /* a scan that was not stopped returns 3 */
    H_SCAN_WRONG_STOP, /* a stopped scan returns 0, not the stop */
    H_SCAN_NULL_VALUE, /* a value at NULL with a length */
    H_GET_SILENT,      /* get returns 0 without calling back */
    H_GET_TWICE,       /* get calls back twice */
    H_GET_OTHER_KEY,   /* get calls back with another key and its value */
    H_GET_FOUND_NOT,   /* get calls back, then says ENOTFOUND */
    H_GET_ERRNO,       /* get returns -5, which is -EIO on Linux */
    H_WRITE_POSITIVE,  /* write applies nothing and returns 1 */
    H_WRITE_ERRNO,     /* write applies nothing and returns -22 (-EINVAL) */
    H_MODES
};

static const char *const mode_names[H_MODES] = {
    "none", "outside-first", "outside-last", "reversed", "swap", "repeat", "ignore-stop",
    "scan-positive", "scan-wrong-stop", "scan-null-value", "get-silent", "get-twice",
    "get-other-key", "get-found-not", "get-errno", "write-positive", "write-errno",
};

/* ------------------------------------------------------------ the store */

typedef struct pair {
    uint8_t *key, *val;
    size_t klen, vlen;
} pair;

typedef struct hostile {
    kv_forward fw; /* first: the hooks get it; over a borrowed store */
    enum mode mode;
    pair *all; /* the whole store, ascending, as of the scan */
    size_t n, cap;
} hostile;

static void pairs_clear(hostile *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->all[i].key);
        free(h->all[i].val);
    }
    h->n = 0;
}

static int collect_pair(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    hostile *h = ctx;
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->all = realloc(h->all, h->cap * sizeof *h->all);
        assert_non_null(h->all);
    }
    pair *p = &h->all[h->n++];
    p->key = malloc(klen);
    p->val = malloc(vlen ? vlen : 1);
    assert_true(p->key && p->val);
    memcpy(p->key, key, klen);
    memcpy(p->val, val, vlen);
    p->klen = klen;
    p->vlen = vlen;
    return 0;
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

static int h_get(kv_forward *f, const void *key, size_t klen, segidx_kv_visit_fn fn, void *ctx)
{
    hostile *h = (hostile *)f;
    int rc;
    switch (h->mode) {
    case H_GET_SILENT:
        return 0;
    case H_GET_TWICE:
        rc = kv_forward_inner_get(f, key, klen, fn, ctx);
        return rc ? rc : kv_forward_inner_get(f, key, klen, fn, ctx);
    case H_GET_OTHER_KEY: {
        /* Another key of the same length: its last byte changed. */
        uint8_t other[64];
        assert_true(klen <= sizeof other);
        memcpy(other, key, klen);
        other[klen - 1] ^= 1;
        return fn(ctx, other, klen, "SXVM", 4);
    }
    case H_GET_FOUND_NOT:
        rc = kv_forward_inner_get(f, key, klen, fn, ctx);
        return rc ? rc : SEGIDX_ENOTFOUND;
    case H_GET_ERRNO:
        return -5;
    default:
        return kv_forward_inner_get(f, key, klen, fn, ctx);
    }
}

/* Visit pairs [from, to) of the whole store in the given direction,
 * honouring fn's stop unless told not to. */
static int visit_run(hostile *h, size_t *order, size_t n, segidx_kv_visit_fn fn, void *ctx)
{
    int stop = 0;
    for (size_t i = 0; i < n; i++) {
        const pair *p = &h->all[order[i]];
        const void *val = h->mode == H_SCAN_NULL_VALUE && i == 0 ? NULL : p->val;
        int rc = fn(ctx, p->key, p->klen, val, p->vlen);
        if (rc && !stop)
            stop = rc;
        if (stop && h->mode != H_IGNORE_STOP)
            break;
    }
    if (stop)
        return h->mode == H_SCAN_WRONG_STOP ? 0 : stop;
    return h->mode == H_SCAN_POSITIVE ? 3 : 0;
}

static int h_scan(kv_forward *f, const void *lo, size_t lolen, const void *hi, size_t hilen,
                  bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    hostile *h = (hostile *)f;
    pairs_clear(h);
    assert_int_equal(kv_forward_inner_scan(f, "", 0, "", 0, false, collect_pair, h), 0);
    /* [first, end): the range asked for, in the whole store's order. */
    size_t first = 0, end;
    while (first < h->n && lolen && key_cmp(h->all[first].key, h->all[first].klen, lo, lolen) < 0)
        first++;
    end = first;
    while (end < h->n && (!hilen || key_cmp(h->all[end].key, h->all[end].klen, hi, hilen) < 0))
        end++;
    size_t *order = malloc((h->n + 2) * sizeof *order), n = 0;
    assert_non_null(order);
    bool backwards = reverse != (h->mode == H_REVERSED);
    /* The neighbours just outside the range, on the side the visit starts
     * from and on the side it ends at. */
    bool has_before = first > 0, has_after = end < h->n;
    size_t start_out = reverse ? end : first - 1, end_out = reverse ? first - 1 : end;
    bool start_ok = reverse ? has_after : has_before, end_ok = reverse ? has_before : has_after;
    if (h->mode == H_OUTSIDE_FIRST && start_ok)
        order[n++] = start_out;
    for (size_t i = 0; i < end - first; i++)
        order[n++] = backwards ? end - 1 - i : first + i;
    if (h->mode == H_OUTSIDE_LAST && end_ok)
        order[n++] = end_out;
    if (h->mode == H_SWAP && end - first >= 2) {
        size_t t = order[0];
        order[0] = order[1];
        order[1] = t;
    }
    if (h->mode == H_REPEAT && n) {
        memmove(order + 1, order, n * sizeof *order);
        n++;
    }
    int rc = visit_run(h, order, n, fn, ctx);
    free(order);
    return rc;
}

static int h_write(kv_forward *f, const segidx_kv_op *ops, size_t n)
{
    hostile *h = (hostile *)f;
    if (h->mode == H_WRITE_POSITIVE)
        return 1;
    if (h->mode == H_WRITE_ERRNO)
        return -22;
    return kv_forward_inner_write(f, ops, n);
}

/* Leaves the borrowed store open: the world closes it. */
static void h_close(kv_forward *f)
{
    hostile *h = (hostile *)f;
    pairs_clear(h);
    free(h->all);
    free(h);
}

/* ------------------------------------------------------------ the catalog
 *
 * Three volumes, a < b < c by vid, so that every range of b's keys has
 * another volume's keys on both sides; keys outside every range of ours
 * at both ends of the store. Commit `lsn` of a volume writes offsets
 * lsn .. lsn + 4 over two segments, so that versions shadow each other.
 */
#define COMMITS 8u
#define NEVER_WRITTEN 1000u

typedef struct world {
    segidx_kv raw;                /* the real store */
    hostile *h;
    segidx_volume_index *vi;      /* over the hostile store */
    segidx_volume_index *clean;   /* over the real store, to check with */
    model_volume v[3];
} world;

static void commit_of(model_commit *c, const segidx_vid *vid, segidx_lsn lsn)
{
    memset(c, 0, sizeof *c);
    c->lsn = lsn;
    c->n = 2;
    for (size_t i = 0; i < 2; i++) {
        c->segs[i].sid.bytes[0] = vid->bytes[0];
        c->segs[i].sid.bytes[1] = (uint8_t)i;
        c->segs[i].sid.bytes[15] = (uint8_t)lsn;
        c->segs[i].offsets = segidx_offset_set_new();
    }
    for (uint32_t o = (uint32_t)lsn; o < lsn + 5; o++)
        segidx_offset_set_add(c->segs[o % 2].offsets, o);
}

static int commit_model(segidx_volume_index *vi, const model_volume *v, const model_commit *c)
{
    segidx_commit_segment segs[MODEL_MAX_SEGS];
    for (size_t i = 0; i < c->n; i++)
        segs[i] = (segidx_commit_segment){ c->segs[i].sid, c->segs[i].offsets };
    return segidx_volume_commit(vi, &v->vid, c->lsn, c->lsn, segs, c->n);
}

static void model_add(model_volume *v, const model_commit *c)
{
    v->commits = realloc(v->commits, (v->n + 1) * sizeof *v->commits);
    assert_non_null(v->commits);
    v->commits[v->n++] = *c;
}

static void world_open(world *w)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(segidx_kv_mem_open(&w->raw), SEGIDX_OK);
    segidx_kv_op outside[2] = { { SEGIDX_KV_PUT, "a", 1, "x", 1 },
                                { SEGIDX_KV_PUT, "zz", 2, "y", 1 } };
    assert_int_equal(w->raw.vt->write(w->raw.self, outside, 2), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open(borrowed_kv(&w->raw), &w->clean), 0);
    for (int i = 0; i < 3; i++) {
        w->v[i].vid.bytes[0] = (uint8_t)(0x10 * (i + 1));
        for (segidx_lsn lsn = 1; lsn <= COMMITS; lsn++) {
            model_commit c;
            commit_of(&c, &w->v[i].vid, lsn);
            assert_int_equal(commit_model(w->clean, &w->v[i], &c), SEGIDX_OK);
            model_add(&w->v[i], &c);
        }
    }
    w->h = calloc(1, sizeof *w->h);
    assert_non_null(w->h);
    kv_forward_init(&w->h->fw, w->raw);
    w->h->fw.get = h_get;
    w->h->fw.scan = h_scan;
    w->h->fw.write = h_write;
    w->h->fw.close = h_close;
    assert_int_equal(segidx_volume_index_open(kv_forward_kv(&w->h->fw), &w->vi), 0);
}

static void world_close(world *w)
{
    segidx_volume_index_close(w->vi);
    segidx_volume_index_close(w->clean);
    for (int i = 0; i < 3; i++)
        model_volume_free(&w->v[i]);
    w->raw.vt->close(w->raw.self);
}

/* ------------------------------------------------------------ the calls */

enum op {
    OP_GET,
    OP_FIND_ALL,    /* a query that never empties: every entry is read */
    OP_FIND_SMALL,  /* one offset the newest commit wrote: the walk ends early */
    OP_COMMITS,
    OP_COMMITS_STOP, /* the callback stops after the first */
    OP_LIST,
    OP_LIST_STOP,
    OP_PRUNE,
    OP_COMMIT,
    OP_MODES
};

static const char *const op_names[OP_MODES] = {
    "get", "find-all", "find-small", "commits", "commits-stop", "list", "list-stop", "prune",
    "commit",
};

#define STOP 42

static int count_commits(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                         const segidx_offset_set *offsets)
{
    (void)lsn, (void)sid, (void)offsets;
    ++*(int *)ctx;
    return 0;
}

static int first_commit(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                        const segidx_offset_set *offsets)
{
    (void)sid, (void)offsets;
    *(segidx_lsn *)ctx = lsn;
    return STOP;
}

static int count_volumes(void *ctx, const segidx_vid *vid, const segidx_volume_meta *m)
{
    (void)vid;
    assert_int_equal(m->lsn, COMMITS);
    ++*(int *)ctx;
    return 0;
}

static int first_volume(void *ctx, const segidx_vid *vid, const segidx_volume_meta *m)
{
    (void)m;
    *(uint8_t *)ctx = vid->bytes[0];
    return STOP;
}

/* find_segments at the head of volume b over `query`: OK and exact, or an
 * error with the query as it was. */
static int run_find(world *w, segidx_offset_set *query)
{
    const model_volume *v = &w->v[1];
    segidx_offset_set *before = segidx_offset_set_copy(query);
    found_list got = { NULL, 0, 0, -1, 0 };
    int rc = segidx_volume_find_segments(w->vi, &v->vid, COMMITS, query, collect_found, &got);
    if (rc == SEGIDX_OK) {
        assert_find_like_model(v, COMMITS, before, &got, query);
    } else {
        assert_int_equal(got.n, 0);
        assert_true(segidx_offset_set_equals(query, before));
    }
    found_list_free(&got);
    segidx_offset_set_free(before);
    segidx_offset_set_free(query);
    return rc;
}

/* Run one call; when it says OK, check its answer against the model. */
static int run_op(world *w, enum op op)
{
    const model_volume *v = &w->v[1];
    int rc;
    switch (op) {
    case OP_GET: {
        segidx_volume_meta m = { 99, 99, 99, 99 };
        rc = segidx_volume_get(w->vi, &v->vid, &m);
        if (rc == SEGIDX_OK)
            assert_int_equal(m.lsn, COMMITS);
        else
            assert_int_equal(m.lsn, 99); /* out-parameter untouched */
        return rc;
    }
    case OP_FIND_ALL: {
        segidx_offset_set *q = segidx_offset_set_new();
        segidx_offset_set_add_range(q, 0, COMMITS + 8);
        segidx_offset_set_add(q, NEVER_WRITTEN);
        return run_find(w, q);
    }
    case OP_FIND_SMALL: {
        segidx_offset_set *q = segidx_offset_set_new();
        segidx_offset_set_add(q, COMMITS); /* commit COMMITS wrote it; so did 4 before */
        return run_find(w, q);
    }
    case OP_COMMITS: {
        int n = 0;
        rc = segidx_volume_commits(w->vi, &v->vid, count_commits, &n);
        if (rc == SEGIDX_OK)
            assert_int_equal(n, 2 * COMMITS);
        return rc;
    }
    case OP_COMMITS_STOP: {
        segidx_lsn first = 0;
        rc = segidx_volume_commits(w->vi, &v->vid, first_commit, &first);
        if (rc == STOP)
            return assert_int_equal(first, 1), SEGIDX_OK;
        return rc;
    }
    case OP_LIST: {
        int n = 0;
        rc = segidx_volume_list(w->vi, count_volumes, &n);
        if (rc == SEGIDX_OK)
            assert_int_equal(n, 3);
        return rc;
    }
    case OP_LIST_STOP: {
        uint8_t first = 0;
        rc = segidx_volume_list(w->vi, first_volume, &first);
        if (rc == STOP)
            return assert_int_equal(first, 0x10), SEGIDX_OK;
        return rc;
    }
    case OP_PRUNE:
        return segidx_volume_prune(w->vi, &v->vid, COMMITS - 2);
    default: {
        model_commit c;
        commit_of(&c, &v->vid, COMMITS + 1);
        rc = commit_model(w->vi, v, &c);
        for (size_t i = 0; i < c.n; i++)
            segidx_offset_set_free(c.segs[i].offsets);
        return rc;
    }
    }
}

/* After a write that said OK: every read from the prune point on, through
 * the clean index, is what the model says. */
static void check_reads(world *w, enum op op)
{
    model_volume *v = &w->v[1];
    if (op == OP_COMMIT) {
        model_commit c;
        commit_of(&c, &v->vid, COMMITS + 1);
        model_add(v, &c);
    }
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(w->clean, &v->vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, v->n);
    assert_int_equal(m.keep_from, op == OP_PRUNE ? COMMITS - 2 : 0);
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add_range(q, 0, (uint32_t)v->n + 8);
    for (segidx_lsn lsn = m.keep_from ? m.keep_from : 1; lsn <= v->n; lsn++)
        assert_find_exact(w->clean, v, lsn, q);
    segidx_offset_set_free(q);
}

/* The calls that must notice each way of misbehaving, and with what. */
struct must {
    enum mode mode;
    int rc;
    unsigned ops; /* bits of enum op */
};

#define OPS(...) (0u __VA_ARGS__)
#define B(op) | (1u << (op))

static const struct must musts[] = {
    { H_OUTSIDE_FIRST, SEGIDX_ECORRUPT,
      OPS(B(OP_FIND_ALL) B(OP_FIND_SMALL) B(OP_COMMITS) B(OP_COMMITS_STOP) B(OP_LIST)
              B(OP_LIST_STOP) B(OP_PRUNE)) },
    { H_OUTSIDE_LAST, SEGIDX_ECORRUPT, OPS(B(OP_FIND_ALL) B(OP_COMMITS) B(OP_LIST) B(OP_PRUNE)) },
    { H_REVERSED, SEGIDX_ECORRUPT,
      OPS(B(OP_FIND_ALL) B(OP_FIND_SMALL) B(OP_COMMITS) B(OP_LIST) B(OP_PRUNE)) },
    { H_SWAP, SEGIDX_ECORRUPT,
      OPS(B(OP_FIND_ALL) B(OP_FIND_SMALL) B(OP_COMMITS) B(OP_LIST) B(OP_PRUNE)) },
    { H_REPEAT, SEGIDX_ECORRUPT,
      OPS(B(OP_FIND_ALL) B(OP_FIND_SMALL) B(OP_COMMITS) B(OP_LIST) B(OP_PRUNE)) },
    { H_IGNORE_STOP, SEGIDX_ECORRUPT, OPS(B(OP_FIND_SMALL) B(OP_COMMITS_STOP) B(OP_LIST_STOP)) },
    { H_SCAN_POSITIVE, SEGIDX_EIO, OPS(B(OP_FIND_ALL) B(OP_COMMITS) B(OP_LIST) B(OP_PRUNE)) },
    { H_SCAN_WRONG_STOP, SEGIDX_ECORRUPT,
      OPS(B(OP_FIND_SMALL) B(OP_COMMITS_STOP) B(OP_LIST_STOP)) },
    { H_SCAN_NULL_VALUE, SEGIDX_ECORRUPT,
      OPS(B(OP_FIND_ALL) B(OP_FIND_SMALL) B(OP_COMMITS) B(OP_LIST) B(OP_PRUNE)) },
    { H_GET_SILENT, SEGIDX_ECORRUPT,
      OPS(B(OP_GET) B(OP_FIND_ALL) B(OP_COMMITS) B(OP_PRUNE) B(OP_COMMIT)) },
    { H_GET_TWICE, SEGIDX_ECORRUPT,
      OPS(B(OP_GET) B(OP_FIND_ALL) B(OP_COMMITS) B(OP_PRUNE) B(OP_COMMIT)) },
    { H_GET_OTHER_KEY, SEGIDX_ECORRUPT,
      OPS(B(OP_GET) B(OP_FIND_ALL) B(OP_COMMITS) B(OP_PRUNE) B(OP_COMMIT)) },
    { H_GET_FOUND_NOT, SEGIDX_ECORRUPT,
      OPS(B(OP_GET) B(OP_FIND_ALL) B(OP_COMMITS) B(OP_PRUNE) B(OP_COMMIT)) },
    { H_GET_ERRNO, SEGIDX_EIO, OPS(B(OP_GET) B(OP_FIND_ALL) B(OP_COMMITS) B(OP_PRUNE) B(OP_COMMIT)) },
    { H_WRITE_POSITIVE, SEGIDX_EIO, OPS(B(OP_PRUNE) B(OP_COMMIT)) },
    { H_WRITE_ERRNO, SEGIDX_EIO, OPS(B(OP_PRUNE) B(OP_COMMIT)) },
};

static void test_every_way_every_call(void **state)
{
    (void)state;
    for (int mode = 0; mode < H_MODES; mode++) {
        const struct must *must = NULL;
        for (size_t i = 0; i < sizeof musts / sizeof *musts; i++)
            if (musts[i].mode == (enum mode)mode)
                must = &musts[i];
        assert_true(must || mode == H_NONE); /* every way has calls that notice it */
        for (int op = 0; op < OP_MODES; op++) {
            world w;
            world_open(&w);
            dump before = dump_store(w.raw);
            w.h->mode = (enum mode)mode;
            int rc = run_op(&w, (enum op)op);
            w.h->mode = H_NONE;
            if (must && (must->ops >> op & 1u) && rc != must->rc)
                fail_msg("store misbehaving by %s: %s returned %d, not %d", mode_names[mode],
                         op_names[op], rc, must->rc);
            if (rc != SEGIDX_OK && rc != SEGIDX_ECORRUPT && rc != SEGIDX_EIO)
                fail_msg("store misbehaving by %s: %s returned %d", mode_names[mode],
                         op_names[op], rc);
            dump after = dump_store(w.raw);
            if (rc != SEGIDX_OK || op < OP_PRUNE)
                assert_dumps_equal(&before, &after); /* nothing written back */
            else
                check_reads(&w, (enum op)op);
            free(before.p);
            free(after.p);
            world_close(&w);
        }
    }
}

/* ------------------------------------------------------------ version 1
 *
 * A store of vtable version 1 knows no EXPECT: it never gets one, and the
 * volume index works over it as before (its writers ordered by the one
 * handle's mutex).
 */
static int v1_write(void *self, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ops[i].op, SEGIDX_KV_EXPECT);
    return borrow_write(self, ops, n);
}

static const segidx_kv_vtable v1_vt = { 1, borrow_get, borrow_scan, v1_write, borrow_close };

static void test_version_1_store(void **state)
{
    (void)state;
    segidx_kv raw;
    assert_int_equal(segidx_kv_mem_open(&raw), SEGIDX_OK);
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open((segidx_kv){ &v1_vt, &raw }, &vi), SEGIDX_OK);
    model_volume v = { 0 };
    v.vid.bytes[0] = 0x42;
    for (segidx_lsn lsn = 1; lsn <= COMMITS; lsn++) {
        model_commit c;
        commit_of(&c, &v.vid, lsn);
        assert_int_equal(commit_model(vi, &v, &c), SEGIDX_OK);
        assert_int_equal(commit_model(vi, &v, &c), SEGIDX_ECONFLICT); /* taken */
        model_add(&v, &c);
    }
    assert_int_equal(segidx_volume_prune(vi, &v.vid, 4), SEGIDX_OK);
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add_range(q, 0, COMMITS + 8);
    for (segidx_lsn lsn = 4; lsn <= COMMITS + 1; lsn++)
        assert_find_exact(vi, &v, lsn, q);
    segidx_offset_set_free(q);
    segidx_volume_index_close(vi);
    model_volume_free(&v);
    raw.vt->close(raw.self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_way_every_call),
        cmocka_unit_test(test_version_1_store),
    };
    return cmocka_run_group_tests_name("hostile store", tests, NULL, NULL);
}
