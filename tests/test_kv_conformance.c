/* The conformance suite itself (segidx_kv_conformance): a store that keeps
 * every rule passes, and stores broken on purpose, one way each, fail it
 * with the rule they break named first. Each broken store wraps the
 * in-memory store. */
#include "kv_forward.h"
#include "testutil.h"

#include "segidx_kvcheck.h"

#include <sched.h>
#include <time.h>

typedef enum breakage {
    KEEPS_RULES,
    VERSION_1,         /* no EXPECT: the three EXPECT rules are skipped */
    IGNORES_HI,        /* a forward scan runs past hi */
    REVERSE_ASCENDS,   /* a reverse scan comes back ascending */
    IGNORES_STOP,      /* a scan goes on after a non-zero visit return */
    GET_RETURNS_0,     /* get drops the visit function's return */
    FIRST_OP_WINS,     /* a batch applied last op first */
    NOT_ATOMIC,        /* each op its own write: a bad op leaves the good ones */
    DROPS_EXPECT,      /* EXPECTs ignored */
    EXPECT_APART,      /* EXPECTs read before the write, not inside it */
    PAGED_SCAN,        /* a scan in pages of 50 keys, each a new snapshot */
    TRUNCATES_VALUES,  /* values cut at 64 KiB */
    WRITE_FAILS,       /* every write: SEGIDX_EIO */
} breakage;

typedef struct broken {
    kv_forward fw; /* first: the hooks get it */
    breakage how;
} broken;

static int b_get(kv_forward *f, const void *key, size_t klen, segidx_kv_visit_fn fn, void *ctx)
{
    broken *b = (broken *)f;
    int rc = kv_forward_inner_get(f, key, klen, fn, ctx);
    return b->how == GET_RETURNS_0 && rc != SEGIDX_ENOTFOUND ? 0 : rc;
}

/* A page of pairs, copied out of the inner store's scan. */
typedef struct page {
    uint8_t *k[50], *v[50];
    size_t kl[50], vl[50], n;
} page;

static int page_take(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    page *p = ctx;
    p->k[p->n] = malloc(klen + 1);
    p->v[p->n] = malloc(vlen + 1);
    assert_non_null(p->k[p->n]);
    assert_non_null(p->v[p->n]);
    memcpy(p->k[p->n], key, klen);
    if (vlen)
        memcpy(p->v[p->n], val, vlen);
    p->kl[p->n] = klen, p->vl[p->n] = vlen;
    return ++p->n == 50;
}

static void page_free(page *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->k[i]), free(p->v[i]);
    p->n = 0;
}

/* A keyset pager with no snapshot: the next page starts after the last
 * key seen, in a scan of its own. */
static int paged_scan(broken *b, const void *lo, size_t lolen, const void *hi, size_t hilen,
                      bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    uint8_t bound[600];
    size_t blen = 0;
    bool first = true;
    for (;;) {
        page p = { .n = 0 };
        const void *l = lo, *h = hi;
        size_t ll = lolen, hl = hilen;
        if (!first && !reverse)
            l = bound, ll = blen; /* last key + 0x00: the next key after it */
        if (!first && reverse)
            h = bound, hl = blen; /* the last key itself, exclusive */
        int rc = kv_forward_inner_scan(&b->fw, l, ll, h, hl, reverse, page_take, &p);
        if (rc < 0) {
            page_free(&p);
            return rc;
        }
        int stop = 0;
        for (size_t i = 0; i < p.n && !stop; i++)
            stop = fn(ctx, p.k[i], p.kl[i], p.v[i], p.vl[i]);
        bool more = p.n == 50;
        if (more) {
            assert_true(p.kl[49] < sizeof bound);
            memcpy(bound, p.k[49], p.kl[49]);
            blen = p.kl[49];
            if (!reverse)
                bound[blen++] = 0x00;
        }
        page_free(&p);
        if (stop || !more)
            return stop;
        first = false;
    }
}

typedef struct visit_ctx {
    segidx_kv_visit_fn fn;
    void *ctx;
    size_t truncate;
} visit_ctx;

static int ignore_stop(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    visit_ctx *v = ctx;
    v->fn(v->ctx, key, klen, val, vlen);
    return 0;
}

static int b_scan(kv_forward *f, const void *lo, size_t lolen, const void *hi, size_t hilen,
                  bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    broken *b = (broken *)f;
    visit_ctx v = { fn, ctx, 0 };
    switch (b->how) {
    case IGNORES_HI:
        if (!reverse)
            hilen = 0;
        break;
    case REVERSE_ASCENDS:
        reverse = false;
        break;
    case IGNORES_STOP:
        return kv_forward_inner_scan(f, lo, lolen, hi, hilen, reverse, ignore_stop, &v);
    case PAGED_SCAN:
        return paged_scan(b, lo, lolen, hi, hilen, reverse, fn, ctx);
    default:
        break;
    }
    return kv_forward_inner_scan(f, lo, lolen, hi, hilen, reverse, fn, ctx);
}

static int has_value(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    const segidx_kv_op *op = ctx;
    return op->val && op->vlen == vlen && (vlen == 0 || memcmp(op->val, val, vlen) == 0) ? 0 : 1;
}

/* EXPECTs checked by gets, then a pause, then the rest written: the
 * window a store without a transaction around its check leaves open. */
static int expect_apart(broken *b, const segidx_kv_op *ops, size_t n)
{
    segidx_kv_op *rest = malloc((n + 1) * sizeof *rest);
    assert_non_null(rest);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].op != SEGIDX_KV_EXPECT) {
            rest[m++] = ops[i];
            continue;
        }
        int rc = kv_forward_inner_get(&b->fw, ops[i].key, ops[i].klen, has_value,
                                      (void *)&ops[i]);
        bool holds = ops[i].val ? rc == 0 : rc == SEGIDX_ENOTFOUND;
        if (!holds) {
            free(rest);
            return SEGIDX_ECONFLICT;
        }
    }
    if (m < n) { /* widen the window where it matters */
        sched_yield();
        nanosleep(&(struct timespec){ 0, 20000 }, NULL);
    }
    int rc = kv_forward_inner_write(&b->fw, rest, m);
    free(rest);
    return rc;
}

static int b_write(kv_forward *f, const segidx_kv_op *ops, size_t n)
{
    broken *b = (broken *)f;
    if (b->how == WRITE_FAILS)
        return SEGIDX_EIO;
    if (b->how == EXPECT_APART)
        return expect_apart(b, ops, n);
    if (b->how == NOT_ATOMIC) {
        for (size_t i = 0; i < n; i++) {
            int rc = kv_forward_inner_write(f, &ops[i], 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    segidx_kv_op *copy = malloc((n + 1) * sizeof *copy);
    assert_non_null(copy);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        segidx_kv_op op = ops[b->how == FIRST_OP_WINS ? n - 1 - i : i];
        if (b->how == DROPS_EXPECT && op.op == SEGIDX_KV_EXPECT)
            continue;
        if (b->how == TRUNCATES_VALUES && op.op == SEGIDX_KV_PUT && op.vlen > 65536)
            op.vlen = 65536;
        copy[m++] = op;
    }
    int rc = kv_forward_inner_write(f, n ? copy : ops, m);
    free(copy);
    return rc;
}

static void b_close(kv_forward *f)
{
    kv_forward_inner_close(f);
    free((broken *)f);
}

static segidx_kv open_broken(breakage how)
{
    broken *b = calloc(1, sizeof *b);
    assert_non_null(b);
    segidx_kv inner;
    assert_int_equal(segidx_kv_mem_open(&inner), SEGIDX_OK);
    kv_forward_init(&b->fw, inner);
    b->fw.get = b_get;
    b->fw.scan = b_scan;
    b->fw.write = b_write;
    b->fw.close = b_close;
    b->how = how;
    return kv_forward_kv_version(&b->fw, how == VERSION_1 ? 1 : SEGIDX_KV_VTABLE_VERSION);
}

/* What the suite reported, rule by rule. */
typedef struct outcome {
    int n, holds, broken, skipped;
    char first_broken[32];
    char names[16][32];
} outcome;

static void record(void *ctx, const char *rule, int status, const char *detail)
{
    outcome *o = ctx;
    assert_non_null(rule);
    assert_non_null(detail);
    assert_true(o->n < 16);
    snprintf(o->names[o->n++], sizeof o->names[0], "%s", rule);
    if (status == SEGIDX_KV_RULE_HOLDS)
        o->holds++;
    else if (status == SEGIDX_KV_RULE_SKIPPED)
        o->skipped++;
    else {
        assert_int_equal(status, SEGIDX_KV_RULE_BROKEN);
        assert_true(strlen(detail) > 10); /* it says what it saw */
        if (!o->broken++)
            snprintf(o->first_broken, sizeof o->first_broken, "%s", rule);
        print_message("    %s: %s\n", rule, detail);
    }
}

static int run_suite(breakage how, outcome *o)
{
    segidx_kv kv = open_broken(how);
    memset(o, 0, sizeof *o);
    int rc = segidx_kv_conformance(kv, record, o);
    /* Whatever happened, the suite leaves the store empty. */
    kv.vt->close(kv.self);
    return rc;
}

static void test_keeping_every_rule_passes(void **state)
{
    (void)state;
    outcome o;
    assert_int_equal(run_suite(KEEPS_RULES, &o), SEGIDX_OK);
    assert_int_equal(o.n, 12);
    assert_int_equal(o.holds, segidx_threadsafe() ? 12 : 9);
    assert_string_equal(o.names[0], "order");
    assert_string_equal(o.names[11], "concurrent");
}

static void test_version_1_skips_expect(void **state)
{
    (void)state;
    outcome o;
    assert_int_equal(run_suite(VERSION_1, &o), SEGIDX_OK);
    assert_int_equal(o.broken, 0);
    assert_int_equal(o.skipped, segidx_threadsafe() ? 3 : 5);
}

static void expect_broken(breakage how, const char *rule, int want_rc)
{
    outcome o;
    int rc = run_suite(how, &o);
    print_message("%-16s -> %d broken, first %s (%d)\n", rule, o.broken, o.first_broken, rc);
    assert_int_equal(rc, want_rc);
    assert_true(o.broken >= 1);
    assert_string_equal(o.first_broken, rule);
    assert_int_equal(o.n, 12); /* the run went on to every rule */
}

static void test_each_breakage_is_named(void **state)
{
    (void)state;
    expect_broken(IGNORES_HI, "bounds", SEGIDX_ECORRUPT);
    expect_broken(REVERSE_ASCENDS, "order", SEGIDX_ECORRUPT);
    expect_broken(IGNORES_STOP, "visit-return", SEGIDX_ECORRUPT);
    expect_broken(GET_RETURNS_0, "get", SEGIDX_ECORRUPT);
    expect_broken(FIRST_OP_WINS, "later-wins", SEGIDX_ECORRUPT);
    expect_broken(NOT_ATOMIC, "invalid-batch", SEGIDX_ECORRUPT);
    expect_broken(DROPS_EXPECT, "expect", SEGIDX_ECORRUPT);
    expect_broken(TRUNCATES_VALUES, "order", SEGIDX_ECORRUPT);
    expect_broken(WRITE_FAILS, "order", SEGIDX_EIO);
    if (segidx_threadsafe()) {
        expect_broken(EXPECT_APART, "expect-race", SEGIDX_ECORRUPT);
        expect_broken(PAGED_SCAN, "snapshot", SEGIDX_ECORRUPT);
    }
}

static int count_keys(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    ++*(int *)ctx;
    return 0;
}

/* A store that holds anything is refused before a byte is written. */
static void test_refuses_a_store_in_use(void **state)
{
    (void)state;
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    segidx_kv_op op = { SEGIDX_KV_PUT, "mine", 4, "v", 1 };
    assert_int_equal(kv.vt->write(kv.self, &op, 1), SEGIDX_OK);
    outcome o;
    memset(&o, 0, sizeof o);
    assert_int_equal(segidx_kv_conformance(kv, record, &o), SEGIDX_EINVAL);
    assert_string_equal(o.first_broken, "empty");
    int n = 0;
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, count_keys, &n), 0);
    assert_int_equal(n, 1);
    /* No report function is fine too. */
    assert_int_equal(segidx_kv_conformance(kv, NULL, NULL), SEGIDX_EINVAL);
    kv.vt->close(kv.self);
    assert_int_equal(segidx_kv_conformance((segidx_kv){ NULL, NULL }, NULL, NULL), SEGIDX_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeping_every_rule_passes),
        cmocka_unit_test(test_version_1_skips_expect),
        cmocka_unit_test(test_each_breakage_is_named),
        cmocka_unit_test(test_refuses_a_store_in_use),
    };
    return cmocka_run_group_tests_name("kv_conformance", tests, NULL, NULL);
}
