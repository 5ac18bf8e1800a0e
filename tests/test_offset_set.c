/* OffsetSet: behaviour against a brute-force model (sorted u32 arrays),
 * the stored form's round trip, and rejection of every malformed input. */
#include "testutil.h"

#include "internal.h" /* little-endian helpers and the checksum */

/* ------------------------------------------------------------ the model */

typedef struct model {
    uint32_t *v;
    size_t n, cap;
} model;

static void model_push(model *m, uint32_t x)
{
    if (m->n == m->cap) {
        m->cap = m->cap * 2 + 16;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        assert_non_null(m->v);
    }
    m->v[m->n++] = x;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void model_normalize(model *m)
{
    if (m->n == 0)
        return;
    qsort(m->v, m->n, sizeof *m->v, cmp_u32);
    size_t w = 1;
    for (size_t i = 1; i < m->n; i++)
        if (m->v[i] != m->v[w - 1])
            m->v[w++] = m->v[i];
    m->n = w;
}

static bool model_has(const model *m, uint32_t x)
{
    return m->n && bsearch(&x, m->v, m->n, sizeof *m->v, cmp_u32) != NULL;
}

/* keep == true: the offsets of a also in b; false: those not in b. */
static model model_filter(const model *a, const model *b, bool keep)
{
    model out = { 0 };
    for (size_t i = 0; i < a->n; i++)
        if (model_has(b, a->v[i]) == keep)
            model_push(&out, a->v[i]);
    return out;
}

static void model_free(model *m)
{
    free(m->v);
    *m = (model){ 0 };
}

/* ------------------------------------------------------------ generators */

enum kind { KIND_EMPTY, KIND_SPARSE, KIND_DENSE, KIND_RUNS, KIND_EDGES, KIND_COUNT };

/* Fill both the set and the model; `add_range` exercises the range path. */
static void add_both(segidx_offset_set *s, model *m, uint32_t x)
{
    assert_int_equal(segidx_offset_set_add(s, x), SEGIDX_OK);
    model_push(m, x);
}

static void add_range_both(segidx_offset_set *s, model *m, uint32_t lo, uint32_t hi)
{
    assert_int_equal(segidx_offset_set_add_range(s, lo, hi), SEGIDX_OK);
    for (uint64_t x = lo; x < hi; x++)
        model_push(m, (uint32_t)x);
}

static void generate(test_rng *r, enum kind k, segidx_offset_set *s, model *m)
{
    uint32_t base = (uint32_t)rng_below(r, 1u << 20) << 12;
    switch (k) {
    case KIND_EMPTY:
        break;
    case KIND_SPARSE:
        for (int i = 0, n = (int)rng_below(r, 2000); i < n; i++)
            add_both(s, m, (uint32_t)rng_next(r));
        break;
    case KIND_DENSE: /* one or two containers, mostly bitsets */
        for (int i = 0; i < 60000; i++)
            add_both(s, m, base + (uint32_t)rng_below(r, 1u << 17));
        break;
    case KIND_RUNS:
        for (int i = 0, n = 1 + (int)rng_below(r, 8); i < n; i++) {
            uint32_t lo = base + (uint32_t)rng_below(r, 1u << 18);
            add_range_both(s, m, lo, lo + (uint32_t)rng_below(r, 20000));
        }
        break;
    case KIND_EDGES: {
        static const uint32_t edges[] = { 0, 1, 65535, 65536, UINT32_MAX - 1, UINT32_MAX };
        for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
            if (rng_below(r, 3))
                add_both(s, m, edges[i]);
        break;
    }
    default:
        fail();
    }
    model_normalize(m);
}

/* A second set that shares some of the first's offsets and has its own. */
static void generate_overlapping(test_rng *r, const model *first, segidx_offset_set *s,
                                 model *m)
{
    generate(r, (enum kind)rng_below(r, KIND_COUNT), s, m);
    for (size_t i = 0; i < first->n; i++)
        if (rng_below(r, 2))
            add_both(s, m, first->v[i]);
    model_normalize(m);
}

struct collect {
    model m;
    int stop_after; /* stop with 7 after this many, or never if < 0 */
};

static int collect_one(segidx_offset o, void *ctx)
{
    struct collect *c = ctx;
    if (c->stop_after >= 0 && (int)c->m.n == c->stop_after)
        return 7;
    model_push(&c->m, o);
    return 0;
}

static void assert_set_equals(const segidx_offset_set *s, const model *m)
{
    assert_int_equal(segidx_offset_set_cardinality(s), m->n);
    assert_int_equal(segidx_offset_set_is_empty(s), m->n == 0);
    struct collect c = { { 0 }, -1 };
    assert_int_equal(segidx_offset_set_iterate(s, collect_one, &c), 0);
    assert_int_equal(c.m.n, m->n);
    if (m->n)
        assert_memory_equal(c.m.v, m->v, m->n * sizeof *m->v);
    model_free(&c.m);
}

/* ------------------------------------------------------------ basics */

static void test_empty_and_one(void **state)
{
    (void)state;
    segidx_offset_set *s = segidx_offset_set_new();
    assert_non_null(s);
    assert_true(segidx_offset_set_is_empty(s));
    assert_int_equal(segidx_offset_set_cardinality(s), 0);
    assert_false(segidx_offset_set_contains(s, 0));
    assert_false(segidx_offset_set_contains(s, UINT32_MAX));

    assert_int_equal(segidx_offset_set_add(s, UINT32_MAX), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(s, UINT32_MAX), SEGIDX_OK);
    assert_true(segidx_offset_set_contains(s, UINT32_MAX));
    assert_false(segidx_offset_set_contains(s, UINT32_MAX - 1));
    assert_int_equal(segidx_offset_set_cardinality(s), 1);
    assert_false(segidx_offset_set_is_empty(s));

    assert_int_equal(segidx_offset_set_add(s, 0), SEGIDX_OK);
    assert_true(segidx_offset_set_contains(s, 0));
    assert_int_equal(segidx_offset_set_cardinality(s), 2);
    segidx_offset_set_free(s);
    segidx_offset_set_free(NULL);
}

static void test_add_range_edges(void **state)
{
    (void)state;
    segidx_offset_set *s = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(s, 5, 5), SEGIDX_OK);
    assert_true(segidx_offset_set_is_empty(s));
    assert_int_equal(segidx_offset_set_add_range(s, 6, 5), SEGIDX_EINVAL);
    assert_true(segidx_offset_set_is_empty(s));

    /* The full u32 space but its last offset, then that one too: "full". */
    assert_int_equal(segidx_offset_set_add_range(s, 0, UINT32_MAX), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_cardinality(s), UINT32_MAX);
    assert_false(segidx_offset_set_contains(s, UINT32_MAX));
    assert_int_equal(segidx_offset_set_add(s, UINT32_MAX), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_cardinality(s), (uint64_t)UINT32_MAX + 1);

    /* A full set cut by itself leaves nothing and returns everything. */
    segidx_offset_set *all = segidx_offset_set_cut(s, s);
    assert_non_null(all);
    assert_true(segidx_offset_set_is_empty(s));
    assert_int_equal(segidx_offset_set_cardinality(all), (uint64_t)UINT32_MAX + 1);
    segidx_offset_set_free(all);
    segidx_offset_set_free(s);
}

static void test_null_arguments(void **state)
{
    (void)state;
    segidx_offset_set *s = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add(NULL, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_offset_set_add_range(NULL, 1, 2), SEGIDX_EINVAL);
    assert_false(segidx_offset_set_contains(NULL, 1));
    assert_true(segidx_offset_set_is_empty(NULL));
    assert_null(segidx_offset_set_cut(NULL, s));
    assert_null(segidx_offset_set_cut(s, NULL));
    assert_int_equal(segidx_offset_set_iterate(s, NULL, NULL), SEGIDX_EINVAL);
    assert_int_equal(segidx_offset_set_serialize(s, NULL, 100), 0);
    segidx_offset_set *out = NULL;
    assert_int_equal(segidx_offset_set_deserialize(NULL, 0, &out), SEGIDX_EINVAL);
    assert_int_equal(segidx_offset_set_deserialize("x", 1, NULL), SEGIDX_EINVAL);
    segidx_offset_set_free(s);
}

static void test_iterate_stops(void **state)
{
    (void)state;
    segidx_offset_set *s = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(s, 100, 110), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(s, 3), SEGIDX_OK);
    struct collect c = { { 0 }, 4 };
    assert_int_equal(segidx_offset_set_iterate(s, collect_one, &c), 7);
    assert_int_equal(c.m.n, 4);
    uint32_t want[] = { 3, 100, 101, 102 };
    assert_memory_equal(c.m.v, want, sizeof want);
    model_free(&c.m);

    segidx_offset_set *e = segidx_offset_set_new();
    struct collect none = { { 0 }, 0 };
    assert_int_equal(segidx_offset_set_iterate(e, collect_one, &none), 0);
    segidx_offset_set_free(e);
    segidx_offset_set_free(s);
}

/* ------------------------------------------------------------ cut */

static void check_cut(test_rng *r, enum kind ka)
{
    segidx_offset_set *a = segidx_offset_set_new(), *b = segidx_offset_set_new();
    model ma = { 0 }, mb = { 0 };
    generate(r, ka, a, &ma);
    generate_overlapping(r, &ma, b, &mb);

    model shared = model_filter(&ma, &mb, true), rest = model_filter(&ma, &mb, false);
    segidx_offset_set *cut = segidx_offset_set_cut(a, b);
    assert_non_null(cut);
    assert_set_equals(cut, &shared);
    assert_set_equals(a, &rest);
    assert_set_equals(b, &mb); /* `other` is never touched */

    /* Cutting again finds nothing: an empty set, not NULL. */
    segidx_offset_set *again = segidx_offset_set_cut(a, b);
    assert_non_null(again);
    assert_true(segidx_offset_set_is_empty(again));
    assert_set_equals(a, &rest);

    segidx_offset_set_free(again);
    segidx_offset_set_free(cut);
    segidx_offset_set_free(a);
    segidx_offset_set_free(b);
    model_free(&ma);
    model_free(&mb);
    model_free(&shared);
    model_free(&rest);
}

static void test_cut_against_model(void **state)
{
    (void)state;
    test_rng r = { 0x5E6D1D0001ull };
    for (int round = 0; round < 60; round++)
        check_cut(&r, (enum kind)(round % KIND_COUNT));
}

static void test_cut_self_and_empty(void **state)
{
    (void)state;
    segidx_offset_set *s = segidx_offset_set_new(), *e = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(s, 10, 20000), SEGIDX_OK);
    segidx_offset_set *none = segidx_offset_set_cut(s, e);
    assert_non_null(none);
    assert_true(segidx_offset_set_is_empty(none));
    assert_int_equal(segidx_offset_set_cardinality(s), 19990);

    segidx_offset_set *nothing = segidx_offset_set_cut(e, s);
    assert_non_null(nothing);
    assert_true(segidx_offset_set_is_empty(nothing));

    segidx_offset_set *all = segidx_offset_set_cut(s, s);
    assert_int_equal(segidx_offset_set_cardinality(all), 19990);
    assert_true(segidx_offset_set_is_empty(s));
    segidx_offset_set_free(all);
    segidx_offset_set_free(nothing);
    segidx_offset_set_free(none);
    segidx_offset_set_free(e);
    segidx_offset_set_free(s);
}

/* ------------------------------------------------------------ stored form */

static uint8_t *serialize_all(const segidx_offset_set *s, size_t *len)
{
    size_t n = segidx_offset_set_serialized_size(s);
    assert_true(n >= 24);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(segidx_offset_set_serialize(s, buf, n), n);
    *len = n;
    return buf;
}

static void test_roundtrip_against_model(void **state)
{
    (void)state;
    test_rng r = { 0x5E6D1D0002ull };
    for (int round = 0; round < 40; round++) {
        segidx_offset_set *s = segidx_offset_set_new();
        model m = { 0 };
        generate(&r, (enum kind)(round % KIND_COUNT), s, &m);
        size_t len;
        uint8_t *buf = serialize_all(s, &len);

        /* Too small a buffer: 0, and not one byte written. */
        uint8_t *small = malloc(len);
        memset(small, 0xAB, len);
        assert_int_equal(segidx_offset_set_serialize(s, small, len - 1), 0);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(small[i], 0xAB);
        free(small);

        /* Any alignment. */
        uint8_t *shifted = malloc(len + 1);
        memcpy(shifted + 1, buf, len);
        segidx_offset_set *back = NULL;
        assert_int_equal(segidx_offset_set_deserialize(shifted + 1, len, &back), SEGIDX_OK);
        assert_set_equals(back, &m);
        assert_set_equals(s, &m); /* serializing did not change s */

        segidx_offset_set_free(back);
        free(shifted);
        free(buf);
        segidx_offset_set_free(s);
        model_free(&m);
    }
}

/* Runs become run containers: the stored form of a long range is tiny. */
static void test_serialize_run_optimizes(void **state)
{
    (void)state;
    segidx_offset_set *s = segidx_offset_set_new();
    for (uint32_t x = 1000; x < 200000; x++)
        assert_int_equal(segidx_offset_set_add(s, x), SEGIDX_OK);
    size_t len;
    uint8_t *buf = serialize_all(s, &len);
    assert_true(len < 100);
    free(buf);
    segidx_offset_set_free(s);
}

/* Bytes that must be refused; *out must stay as it was. */
static void assert_rejected(const uint8_t *p, size_t len)
{
    segidx_offset_set *sentinel = (segidx_offset_set *)(uintptr_t)0x1234;
    segidx_offset_set *out = sentinel;
    int rc = segidx_offset_set_deserialize(p, len, &out);
    if (rc != SEGIDX_ECORRUPT && rc != SEGIDX_EVERSION) {
        print_error("accepted %zu bytes (rc %d)\n", len, rc);
        if (rc == SEGIDX_OK)
            segidx_offset_set_free(out);
        fail();
    }
    assert_ptr_equal(out, sentinel);
}

static test_bytes seal(const test_bytes *payload);

/* ------------------------------------------------------------ cut by stored bytes
 *
 * segidx__offset_set_cut_stored(query, bytes) must be deserialize(bytes)
 * and then cut(query, set): the same return for any bytes, and on success
 * the same cut, the same query left and the stored set's cardinality; on
 * an error the query and *cut untouched.
 */

static void check_cut_stored(const uint8_t *p, size_t len, const segidx_offset_set *query)
{
    segidx_offset_set *stored = NULL, *want_query = segidx_offset_set_copy(query);
    assert_non_null(want_query);
    int want = segidx_offset_set_deserialize(p, len, &stored);
    segidx_offset_set *want_cut = NULL;
    if (want == SEGIDX_OK)
        assert_non_null(want_cut = segidx_offset_set_cut(want_query, stored));

    segidx_offset_set *q = segidx_offset_set_copy(query);
    assert_non_null(q);
    segidx_offset_set *sentinel = (segidx_offset_set *)(uintptr_t)0x1234, *cut = sentinel;
    uint64_t card = UINT64_MAX;
    int rc = segidx__offset_set_cut_stored(q, p, len, &cut, &card);
    if (rc != want) {
        print_error("cut_stored %d, deserialize %d on %zu bytes\n", rc, want, len);
        fail();
    }
    if (rc == SEGIDX_OK) {
        assert_true(segidx_offset_set_equals(cut, want_cut));
        assert_true(segidx_offset_set_equals(q, want_query));
        assert_int_equal(card, segidx_offset_set_cardinality(stored));
        segidx_offset_set_free(cut);
    } else {
        assert_ptr_equal(cut, sentinel);
        assert_int_equal(card, UINT64_MAX);
        assert_true(segidx_offset_set_equals(q, query));
    }
    segidx_offset_set_free(q);
    segidx_offset_set_free(want_cut);
    segidx_offset_set_free(want_query);
    segidx_offset_set_free(stored);
}

/* Queries for the stored-form checks: none, one offset at each edge, the
 * first containers full, and a mix of sparse offsets and runs. */
enum { PROBE_QUERIES = 5 };

static segidx_offset_set *probe_query(int which)
{
    segidx_offset_set *q = segidx_offset_set_new();
    assert_non_null(q);
    switch (which) {
    case 0:
        break;
    case 1:
        assert_int_equal(segidx_offset_set_add(q, 0), SEGIDX_OK);
        assert_int_equal(segidx_offset_set_add(q, UINT32_MAX), SEGIDX_OK);
        break;
    case 2:
        assert_int_equal(segidx_offset_set_add_range(q, 0, 4u << 16), SEGIDX_OK);
        break;
    case 3:
        for (uint32_t x = 0; x < (8u << 16); x += 7)
            assert_int_equal(segidx_offset_set_add(q, x), SEGIDX_OK);
        break;
    default:
        assert_int_equal(segidx_offset_set_add_range(q, 3, 70000), SEGIDX_OK);
        assert_int_equal(segidx_offset_set_add_range(q, 131072 + 5, 131072 + 9), SEGIDX_OK);
        assert_int_equal(segidx_offset_set_add(q, UINT32_MAX), SEGIDX_OK);
        break;
    }
    return q;
}

static void check_cut_stored_all_queries(const uint8_t *p, size_t len)
{
    for (int i = 0; i < PROBE_QUERIES; i++) {
        segidx_offset_set *q = probe_query(i);
        check_cut_stored(p, len, q);
        segidx_offset_set_free(q);
    }
}

/* Stored sets of one more shape than generate() makes: arrays of a few
 * dozen to a few thousand offsets per container, on both sides of where
 * cut_stored stops probing and hands a container to CRoaring. */
static void generate_clustered(test_rng *r, segidx_offset_set *s, model *m)
{
    uint32_t base = (uint32_t)rng_below(r, 4) << 16;
    uint32_t n = (uint32_t)rng_below(r, 3) == 0 ? 60 + (uint32_t)rng_below(r, 10)
                                                : (uint32_t)rng_below(r, 4000);
    for (uint32_t i = 0; i < n; i++)
        add_both(s, m, base + (uint32_t)rng_below(r, 3u << 16));
    if (rng_below(r, 2))
        add_range_both(s, m, base + 100, base + 100 + (uint32_t)rng_below(r, 120));
    model_normalize(m);
}

static void test_cut_stored_against_cut(void **state)
{
    (void)state;
    test_rng r = { 0x5E6D1D0010ull };
    for (long round = 0; round < test_scaled(240); round++) {
        segidx_offset_set *a = segidx_offset_set_new(), *b = segidx_offset_set_new();
        model ma = { 0 }, mb = { 0 };
        if (round % (KIND_COUNT + 1) == KIND_COUNT)
            generate_clustered(&r, a, &ma);
        else
            generate(&r, (enum kind)(round % (KIND_COUNT + 1)), a, &ma);
        switch (round % 4) {
        case 0: /* a query that shares offsets with the stored set */
            generate_overlapping(&r, &ma, b, &mb);
            break;
        case 1: /* one of any kind, mostly apart */
            generate(&r, (enum kind)rng_below(&r, KIND_COUNT), b, &mb);
            break;
        case 2: /* a clustered query */
            generate_clustered(&r, b, &mb);
            break;
        default: /* the stored set itself, and more */
            generate_overlapping(&r, &ma, b, &mb);
            for (size_t i = 0; i < ma.n; i++)
                add_both(b, &mb, ma.v[i]);
            model_normalize(&mb);
            break;
        }
        size_t len;
        uint8_t *buf = serialize_all(a, &len);
        check_cut_stored(buf, len, b);
        check_cut_stored_all_queries(buf, len);

        /* And against the model, once. */
        model shared = model_filter(&mb, &ma, true), rest = model_filter(&mb, &ma, false);
        segidx_offset_set *cut = NULL;
        uint64_t card = 0;
        assert_int_equal(segidx__offset_set_cut_stored(b, buf, len, &cut, &card), SEGIDX_OK);
        assert_set_equals(cut, &shared);
        assert_set_equals(b, &rest);
        assert_int_equal(card, ma.n);
        segidx_offset_set_free(cut);

        free(buf);
        segidx_offset_set_free(a);
        segidx_offset_set_free(b);
        model_free(&ma);
        model_free(&mb);
        model_free(&shared);
        model_free(&rest);
    }
}

static void test_cut_stored_full_containers(void **state)
{
    (void)state;
    /* Full containers on both sides, at the first and the last key. */
    segidx_offset_set *s = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(s, 0, 2u << 16), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add_range(s, UINT32_MAX - 65535, UINT32_MAX), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(s, UINT32_MAX), SEGIDX_OK);
    size_t len;
    uint8_t *buf = serialize_all(s, &len);
    check_cut_stored_all_queries(buf, len);
    check_cut_stored(buf, len, s);
    free(buf);

    /* The same offsets stored as bitsets, not runs. */
    test_bytes b = { 0 };
    bytes_u32(&b, 12346);
    bytes_u32(&b, 2);
    bytes_u16(&b, 0);
    bytes_u16(&b, 65535);
    bytes_u16(&b, 65535);
    bytes_u16(&b, 65535);
    bytes_u32(&b, 24);
    bytes_u32(&b, 24 + 8192);
    uint8_t ones[8192];
    memset(ones, 0xFF, sizeof ones);
    bytes_put(&b, ones, sizeof ones);
    bytes_put(&b, ones, sizeof ones);
    test_bytes sealed = seal(&b);
    check_cut_stored_all_queries(sealed.p, sealed.len);
    check_cut_stored(sealed.p, sealed.len, s);

    /* The argument checks. */
    segidx_offset_set *cut = NULL;
    assert_int_equal(segidx__offset_set_cut_stored(NULL, sealed.p, sealed.len, &cut, NULL),
                     SEGIDX_EINVAL);
    assert_int_equal(segidx__offset_set_cut_stored(s, NULL, sealed.len, &cut, NULL),
                     SEGIDX_EINVAL);
    assert_int_equal(segidx__offset_set_cut_stored(s, sealed.p, sealed.len, NULL, NULL),
                     SEGIDX_EINVAL);
    assert_null(cut);
    bytes_free(&sealed);
    bytes_free(&b);
    segidx_offset_set_free(s);
}

static void test_every_flip_and_truncation(void **state)
{
    (void)state;
    test_rng r = { 0x5E6D1D0003ull };
    static const uint8_t masks[] = { 0x01, 0x80, 0xFF };
    for (int k = 0; k < KIND_COUNT; k++) {
        segidx_offset_set *s = segidx_offset_set_new();
        model m = { 0 };
        generate(&r, (enum kind)k, s, &m);
        size_t len;
        uint8_t *buf = serialize_all(s, &len);
        segidx_offset_set *query = probe_query(k % PROBE_QUERIES);
        /* Flipping payload bytes of a dense set costs a checksum each:
         * cover every byte of the header and the first 4 KiB. */
        size_t flips = len < 4096 ? len : 4096;
        for (size_t i = 0; i < flips; i++)
            for (size_t j = 0; j < sizeof masks; j++) {
                buf[i] ^= masks[j];
                assert_rejected(buf, len);
                check_cut_stored(buf, len, query);
                buf[i] ^= masks[j];
            }
        for (size_t n = 0; n < len; n++) {
            assert_rejected(buf, n);
            check_cut_stored(buf, n, query);
        }
        /* One byte too many is as bad as one too few. */
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, buf, len);
        longer[len] = 0;
        assert_rejected(longer, len + 1);
        check_cut_stored(longer, len + 1, query);
        free(longer);
        check_cut_stored_all_queries(buf, len);
        segidx_offset_set_free(query);

        segidx_offset_set *back = NULL;
        assert_int_equal(segidx_offset_set_deserialize(buf, len, &back), SEGIDX_OK);
        assert_set_equals(back, &m);
        segidx_offset_set_free(back);
        free(buf);
        segidx_offset_set_free(s);
        model_free(&m);
    }
}

static void test_unknown_version(void **state)
{
    (void)state;
    segidx_offset_set *s = segidx_offset_set_new();
    size_t len;
    uint8_t *buf = serialize_all(s, &len);
    segidx__store16(buf + 4, 2);
    segidx_offset_set *out = NULL;
    assert_int_equal(segidx_offset_set_deserialize(buf, len, &out), SEGIDX_EVERSION);
    assert_null(out);
    check_cut_stored_all_queries(buf, len);
    free(buf);
    segidx_offset_set_free(s);
}

/* ------------------------------------------------------------ forged payloads
 *
 * Hand-made portable payloads, sealed with a correct envelope and checksum
 * so that only the structural validator can catch what is wrong. Each case
 * starts from a valid payload (checked to be accepted) and breaks one fact.
 */

static test_bytes seal(const test_bytes *payload)
{
    test_bytes b = { 0 };
    bytes_put(&b, "SXOS", 4);
    bytes_u16(&b, 1);
    bytes_u16(&b, 0);
    bytes_u32(&b, (uint32_t)payload->len);
    bytes_u32(&b, 0);
    bytes_u64(&b, segidx__xxh3(payload->p, payload->len));
    if (payload->len)
        bytes_put(&b, payload->p, payload->len);
    return b;
}

static int deserialize_payload(const test_bytes *payload, uint64_t *card)
{
    test_bytes sealed = seal(payload);
    check_cut_stored_all_queries(sealed.p, sealed.len);
    segidx_offset_set *out = NULL;
    int rc = segidx_offset_set_deserialize(sealed.p, sealed.len, &out);
    if (rc == SEGIDX_OK) {
        *card = segidx_offset_set_cardinality(out);
        segidx_offset_set_free(out);
    } else {
        assert_null(out);
    }
    bytes_free(&sealed);
    return rc;
}

static void expect_payload(test_bytes *payload, int want_rc, uint64_t want_card)
{
    uint64_t card = 0;
    int rc = deserialize_payload(payload, &card);
    assert_int_equal(rc, want_rc);
    if (rc == SEGIDX_OK)
        assert_int_equal(card, want_card);
    bytes_free(payload);
}

/* No-run cookie, containers given as (key, array of values). */
struct array_container {
    uint16_t key;
    uint16_t n;
    const uint16_t *values;
};

static test_bytes arrays_payload(const struct array_container *c, uint32_t count,
                                 uint32_t claimed_count, int offset_fudge)
{
    test_bytes b = { 0 };
    bytes_u32(&b, 12346);
    bytes_u32(&b, claimed_count);
    for (uint32_t i = 0; i < count; i++) {
        bytes_u16(&b, c[i].key);
        bytes_u16(&b, (uint16_t)(c[i].n - 1));
    }
    uint32_t pos = 8 + 8 * count;
    for (uint32_t i = 0; i < count; i++) {
        bytes_u32(&b, (uint32_t)((int)pos + (i == 0 ? offset_fudge : 0)));
        pos += 2u * c[i].n;
    }
    for (uint32_t i = 0; i < count; i++)
        for (uint16_t j = 0; j < c[i].n; j++)
            bytes_u16(&b, c[i].values[j]);
    return b;
}

static void test_forged_arrays(void **state)
{
    (void)state;
    static const uint16_t ok[] = { 1, 5, 9 }, unsorted[] = { 1, 9, 5 },
                          dup[] = { 1, 5, 5 };
    struct array_container good[] = { { 0, 3, ok }, { 7, 3, ok } };
    test_bytes p = arrays_payload(good, 2, 2, 0);
    expect_payload(&p, SEGIDX_OK, 6);

    struct array_container keys_unsorted[] = { { 7, 3, ok }, { 0, 3, ok } };
    p = arrays_payload(keys_unsorted, 2, 2, 0);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    struct array_container keys_dup[] = { { 7, 3, ok }, { 7, 3, ok } };
    p = arrays_payload(keys_dup, 2, 2, 0);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    struct array_container array_unsorted[] = { { 0, 3, ok }, { 7, 3, unsorted } };
    p = arrays_payload(array_unsorted, 2, 2, 0);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    struct array_container array_dup[] = { { 0, 3, dup } };
    p = arrays_payload(array_dup, 1, 1, 0);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    /* A huge container count, with and without the bytes to back it. */
    p = arrays_payload(good, 2, 0xFFFFFFFFu, 0);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = arrays_payload(good, 2, 65537, 0);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = arrays_payload(good, 2, 3, 0);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = arrays_payload(good, 2, 1, 0); /* fewer than there are: trailing bytes */
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    /* An offset header that points elsewhere. */
    p = arrays_payload(good, 2, 2, 2);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    /* A cardinality that claims one value more than the array holds. */
    p = arrays_payload(good, 2, 2, 0);
    segidx__store16(p.p + 8 + 4 + 2, 3); /* second container: card - 1 = 3 */
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    /* The empty set, and a cookie nobody knows. */
    p = arrays_payload(good, 0, 0, 0);
    expect_payload(&p, SEGIDX_OK, 0);
    p = arrays_payload(good, 2, 2, 0);
    segidx__store32(p.p, 12345);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
}

/* A bitset container (cardinality > 4096) whose popcount must match. */
static test_bytes bitset_payload(uint32_t claimed_card, uint32_t set_bits)
{
    test_bytes b = { 0 };
    bytes_u32(&b, 12346);
    bytes_u32(&b, 1);
    bytes_u16(&b, 3);
    bytes_u16(&b, (uint16_t)(claimed_card - 1));
    bytes_u32(&b, 16);
    uint8_t words[8192] = { 0 };
    for (uint32_t i = 0; i < set_bits; i++)
        words[i / 8] |= (uint8_t)(1u << (i % 8));
    bytes_put(&b, words, sizeof words);
    return b;
}

static void test_forged_bitsets(void **state)
{
    (void)state;
    test_bytes p = bitset_payload(5000, 5000);
    expect_payload(&p, SEGIDX_OK, 5000);
    p = bitset_payload(5000, 4999);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = bitset_payload(65536, 65536);
    expect_payload(&p, SEGIDX_OK, 65536);
    p = bitset_payload(5000, 5000);
    p.len -= 1; /* a bitset cut short */
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
}

/* Run cookie: one container per run list, runs as (start, length - 1). */
static test_bytes runs_payload(uint32_t n_containers, const uint16_t *runs, uint16_t n_runs,
                               uint32_t card)
{
    test_bytes b = { 0 };
    bytes_u32(&b, 12347u | (n_containers - 1) << 16);
    uint8_t flags[8192 / 8 + 1] = { 0 };
    for (uint32_t i = 0; i < n_containers; i++)
        flags[i / 8] |= (uint8_t)(1u << (i % 8));
    bytes_put(&b, flags, (n_containers + 7) / 8);
    for (uint32_t i = 0; i < n_containers; i++) {
        bytes_u16(&b, (uint16_t)i);
        bytes_u16(&b, (uint16_t)(card - 1));
    }
    if (n_containers >= 4) {
        uint32_t pos = (uint32_t)b.len + 4 * n_containers;
        for (uint32_t i = 0; i < n_containers; i++)
            bytes_u32(&b, pos + i * (2u + 4u * n_runs));
    }
    for (uint32_t i = 0; i < n_containers; i++) {
        bytes_u16(&b, n_runs);
        for (uint16_t j = 0; j < 2 * n_runs; j++)
            bytes_u16(&b, runs[j]);
    }
    return b;
}

static void test_forged_runs(void **state)
{
    (void)state;
    static const uint16_t ok[] = { 10, 4, 100, 0, 65000, 535 };  /* 5 + 1 + 536 */
    static const uint16_t overlap[] = { 10, 4, 14, 3 };           /* 10..14, 14..17 */
    static const uint16_t unsorted[] = { 100, 0, 10, 4 };
    static const uint16_t past_end[] = { 65530, 10 };             /* to 65540 */
    static const uint16_t touching[] = { 10, 4, 15, 0 };          /* 10..14, 15 */

    test_bytes p = runs_payload(1, ok, 3, 542);
    expect_payload(&p, SEGIDX_OK, 542);
    p = runs_payload(5, ok, 3, 542); /* with the offset header */
    expect_payload(&p, SEGIDX_OK, 5 * 542);
    static const uint16_t at_zero[] = { 0, 4, 10, 0 };            /* 0..4, 10 */
    p = runs_payload(1, at_zero, 2, 6);
    expect_payload(&p, SEGIDX_OK, 6);
    p = runs_payload(1, touching, 2, 6); /* CRoaring would have merged them */
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    p = runs_payload(1, overlap, 2, 9);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = runs_payload(1, unsorted, 2, 6);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = runs_payload(1, past_end, 1, 11);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = runs_payload(1, ok, 3, 541); /* wrong cardinality */
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = runs_payload(1, ok, 0, 1); /* no runs at all */
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    /* A run cookie with no run container, and a flag past the last one. */
    p = runs_payload(1, ok, 3, 542);
    p.p[4] = 0;
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
    p = runs_payload(1, ok, 3, 542);
    p.p[4] |= 0x80;
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    /* A run count far beyond the bytes. */
    p = runs_payload(1, ok, 3, 542);
    segidx__store16(p.p + 4 + 1 + 4, 0xFFFF);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);

    /* The largest container count the cookie can name, with no bytes. */
    p = runs_payload(1, ok, 3, 542);
    segidx__store32(p.p, 12347u | 0xFFFFu << 16);
    expect_payload(&p, SEGIDX_ECORRUPT, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_one),
        cmocka_unit_test(test_add_range_edges),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_iterate_stops),
        cmocka_unit_test(test_cut_against_model),
        cmocka_unit_test(test_cut_self_and_empty),
        cmocka_unit_test(test_roundtrip_against_model),
        cmocka_unit_test(test_serialize_run_optimizes),
        cmocka_unit_test(test_every_flip_and_truncation),
        cmocka_unit_test(test_unknown_version),
        cmocka_unit_test(test_forged_arrays),
        cmocka_unit_test(test_forged_bitsets),
        cmocka_unit_test(test_forged_runs),
        cmocka_unit_test(test_cut_stored_against_cut),
        cmocka_unit_test(test_cut_stored_full_containers),
    };
    return cmocka_run_group_tests_name("offset_set", tests, NULL, NULL);
}
