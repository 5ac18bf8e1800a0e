/* OffsetSet figures: cut against CRoaring's and + andnot_inplace (the
 * target: offset_set_cut <= 1.1x the baseline), the stored form's
 * serialize / deserialize throughput against raw CRoaring portable I/O, and
 * a query cut straight by stored bytes (what find_segments does per commit
 * entry) against deserialize + cut of the same bytes.
 *
 * Our side goes through the public API only; the baseline calls CRoaring
 * directly. Both sides are built from one recipe per input, and every
 * result is checked (outside the timed part) against the baseline's, so a
 * broken cut or codec exits non-zero instead of printing a good figure.
 *
 * Ratios are our time / baseline time (see bench.h): lower is better. */
#include "bench.h"

#include <string.h>

#include <roaring/roaring.h>

#include "segidx.h"
#include "internal.h" /* segidx__offset_set_cut_stored */

enum {
    ROUNDS = 31,      /* per side; odd, so the median is one round */
    CUT_OPS = 100,    /* cuts timed per round, each on a fresh copy */
    CODEC_OPS = 16,   /* serializations / deserializations per round */
    MAX_RANGES = 16,
};

/* ------------------------------------------------------------ recipes */

struct range {
    uint32_t lo, hi; /* half-open */
};

/* The contents of one set, as the calls that build it: both sides replay
 * it through their own API, so they hold the same offsets by construction. */
struct recipe {
    uint32_t *offsets;
    size_t n_offsets, cap_offsets;
    struct range ranges[MAX_RANGES];
    size_t n_ranges;
};

static void recipe_init(struct recipe *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->offsets = bench_xmalloc(cap * sizeof *r->offsets);
    r->cap_offsets = cap;
}

static void recipe_free(struct recipe *r)
{
    free(r->offsets);
    memset(r, 0, sizeof *r);
}

static void recipe_add(struct recipe *r, uint32_t o)
{
    BENCH_CHECK(r->n_offsets < r->cap_offsets);
    r->offsets[r->n_offsets++] = o;
}

static void recipe_add_range(struct recipe *r, uint32_t lo, uint32_t hi)
{
    BENCH_CHECK(r->n_ranges < MAX_RANGES && lo <= hi);
    r->ranges[r->n_ranges++] = (struct range){ lo, hi };
}

/* `n` distinct offsets of [base, base + universe), by a partial shuffle. */
static void recipe_add_distinct(struct recipe *r, bench_rng *rng, uint32_t base,
                                uint32_t universe, size_t n)
{
    BENCH_CHECK(n <= universe);
    uint32_t *all = bench_xmalloc((size_t)universe * sizeof *all);
    for (uint32_t i = 0; i < universe; i++)
        all[i] = i;
    bench_rng_shuffle_u32(rng, all, universe);
    for (size_t i = 0; i < n; i++)
        recipe_add(r, base + all[i]);
    free(all);
}

static segidx_offset_set *build_ours(const struct recipe *r)
{
    segidx_offset_set *s = segidx_offset_set_new();
    BENCH_CHECK(s != NULL);
    for (size_t i = 0; i < r->n_offsets; i++)
        BENCH_CHECK(segidx_offset_set_add(s, r->offsets[i]) == SEGIDX_OK);
    for (size_t i = 0; i < r->n_ranges; i++)
        BENCH_CHECK(segidx_offset_set_add_range(s, r->ranges[i].lo, r->ranges[i].hi) ==
                    SEGIDX_OK);
    return s;
}

/* The baseline is run-optimized, as our stored form is: then both sides
 * hold the same containers (array / bitset / run) and the comparison is
 * about the operation, not about one side having better-shaped input. */
static roaring_bitmap_t *build_base(const struct recipe *r)
{
    roaring_bitmap_t *b = roaring_bitmap_create();
    BENCH_CHECK(b != NULL);
    for (size_t i = 0; i < r->n_offsets; i++)
        roaring_bitmap_add(b, r->offsets[i]);
    for (size_t i = 0; i < r->n_ranges; i++)
        if (r->ranges[i].lo < r->ranges[i].hi)
            roaring_bitmap_add_range_closed(b, r->ranges[i].lo, r->ranges[i].hi - 1);
    roaring_bitmap_run_optimize(b);
    return b;
}

/* Our stored form of `s`, in a fresh buffer. */
static uint8_t *our_stored(const segidx_offset_set *s, size_t *len)
{
    size_t cap = segidx_offset_set_serialized_size(s);
    BENCH_CHECK(cap > 0);
    uint8_t *buf = bench_xmalloc(cap);
    *len = segidx_offset_set_serialize(s, buf, cap);
    BENCH_CHECK(*len == cap);
    return buf;
}

/* CRoaring's portable form of `b`, in a fresh buffer. */
static char *base_stored(const roaring_bitmap_t *b, size_t *len)
{
    size_t cap = roaring_bitmap_portable_size_in_bytes(b);
    char *buf = bench_xmalloc(cap);
    *len = roaring_bitmap_portable_serialize(b, buf);
    BENCH_CHECK(*len == cap);
    return buf;
}

/* ------------------------------------------------------------ checks */

static int absent_from_base(segidx_offset o, void *ctx)
{
    return !roaring_bitmap_contains(ctx, o);
}

/* Same cardinality and every offset of ours in the baseline: same set. */
static bool same_contents(const segidx_offset_set *ours, const roaring_bitmap_t *base)
{
    return segidx_offset_set_cardinality(ours) == roaring_bitmap_get_cardinality(base) &&
           segidx_offset_set_iterate(ours, absent_from_base, (void *)base) == 0;
}

/* ------------------------------------------------------------ cut inputs */

/* s: 1,000 random offsets over 16 containers (small arrays); other: about
 * half of them plus 1,000 others. */
static void make_sparse(bench_rng *rng, struct recipe *s, struct recipe *o)
{
    recipe_init(s, 1000);
    recipe_init(o, 2000);
    for (int i = 0; i < 1000; i++) {
        uint32_t v = bench_rng_below(rng, 1u << 20);
        recipe_add(s, v);
        if (bench_rng_next(rng) & 1)
            recipe_add(o, v);
    }
    for (int i = 0; i < 1000; i++)
        recipe_add(o, bench_rng_below(rng, 1u << 20));
}

/* s and other: 60,000 distinct offsets each in one container (bitsets);
 * two independent draws overlap in about 60000^2 / 65536 ~ 55,000. */
static void make_dense(bench_rng *rng, struct recipe *s, struct recipe *o)
{
    recipe_init(s, 60000);
    recipe_init(o, 60000);
    recipe_add_distinct(s, rng, 0, 65536, 60000);
    recipe_add_distinct(o, rng, 0, 65536, 60000);
}

/* s: 8 long ranges (50k-150k offsets each, run containers); other: the same
 * ranges shifted by half their length, so each cut takes about half. */
static void make_runs(bench_rng *rng, struct recipe *s, struct recipe *o)
{
    recipe_init(s, 0);
    recipe_init(o, 0);
    for (uint32_t i = 0; i < 8; i++) {
        uint32_t lo = i * (1u << 19) + bench_rng_below(rng, 1u << 16);
        uint32_t len = 50000 + bench_rng_below(rng, 100000);
        recipe_add_range(s, lo, lo + len);
        recipe_add_range(o, lo + len / 2, lo + len / 2 + len);
    }
}

/* ------------------------------------------------------------ cut */

/* Fresh copies come from each side's stored bytes: cut mutates its input,
 * so every timed cut needs its own, and deserializing is the one copy our
 * public API offers. The baseline deserializes its own portable bytes the
 * same way, so both sides' copies are laid out alike. */
struct cut_case {
    uint8_t *our_s;
    size_t our_s_len;
    segidx_offset_set *our_o;
    char *base_s;
    size_t base_s_len;
    roaring_bitmap_t *base_o;
    uint64_t want_shared, want_left; /* cardinalities every cut must give */
};

static segidx_offset_set *our_copy(const struct cut_case *c)
{
    segidx_offset_set *s = NULL;
    BENCH_CHECK(segidx_offset_set_deserialize(c->our_s, c->our_s_len, &s) == SEGIDX_OK);
    return s;
}

static roaring_bitmap_t *base_copy(const struct cut_case *c)
{
    roaring_bitmap_t *b = roaring_bitmap_portable_deserialize_safe(c->base_s, c->base_s_len);
    BENCH_CHECK(b != NULL);
    return b;
}

static void cut_case_init(struct cut_case *c, const struct recipe *s, const struct recipe *o)
{
    segidx_offset_set *our_s = build_ours(s);
    roaring_bitmap_t *base_s = build_base(s);
    BENCH_CHECK(same_contents(our_s, base_s));
    c->our_s = our_stored(our_s, &c->our_s_len);
    c->base_s = base_stored(base_s, &c->base_s_len);
    segidx_offset_set_free(our_s);
    roaring_bitmap_free(base_s);

    /* `other` also goes through the stored form, as a commit's set would. */
    segidx_offset_set *our_o = build_ours(o);
    size_t len;
    uint8_t *bytes = our_stored(our_o, &len);
    segidx_offset_set_free(our_o);
    c->our_o = NULL;
    BENCH_CHECK(segidx_offset_set_deserialize(bytes, len, &c->our_o) == SEGIDX_OK);
    free(bytes);
    c->base_o = build_base(o);
    BENCH_CHECK(same_contents(c->our_o, c->base_o));
}

static void cut_case_free(struct cut_case *c)
{
    free(c->our_s);
    free(c->base_s);
    segidx_offset_set_free(c->our_o);
    roaring_bitmap_free(c->base_o);
}

/* One cut on each side, compared offset by offset; it also fixes the
 * cardinalities that every timed cut is then checked against. */
static void cut_case_verify(struct cut_case *c)
{
    segidx_offset_set *s = our_copy(c);
    segidx_offset_set *shared = segidx_offset_set_cut(s, c->our_o);
    BENCH_CHECK(shared != NULL);
    roaring_bitmap_t *bs = base_copy(c);
    roaring_bitmap_t *bshared = roaring_bitmap_and(bs, c->base_o);
    BENCH_CHECK(bshared != NULL);
    roaring_bitmap_andnot_inplace(bs, c->base_o);

    BENCH_CHECK(same_contents(shared, bshared));
    BENCH_CHECK(same_contents(s, bs));
    c->want_shared = roaring_bitmap_get_cardinality(bshared);
    c->want_left = roaring_bitmap_get_cardinality(bs);
    /* A cut that takes all or nothing would not exercise both halves. */
    BENCH_CHECK(c->want_shared > 0 && c->want_left > 0);

    segidx_offset_set_free(s);
    segidx_offset_set_free(shared);
    roaring_bitmap_free(bs);
    roaring_bitmap_free(bshared);
}

static double our_cut_round(void *arg)
{
    const struct cut_case *c = arg;
    segidx_offset_set *s[CUT_OPS], *shared[CUT_OPS];
    for (int k = 0; k < CUT_OPS; k++)
        s[k] = our_copy(c);

    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CUT_OPS; k++)
        shared[k] = segidx_offset_set_cut(s[k], c->our_o);
    uint64_t t1 = bench_now_ns();

    for (int k = 0; k < CUT_OPS; k++) {
        BENCH_CHECK(shared[k] != NULL);
        BENCH_CHECK(segidx_offset_set_cardinality(shared[k]) == c->want_shared);
        BENCH_CHECK(segidx_offset_set_cardinality(s[k]) == c->want_left);
        segidx_offset_set_free(shared[k]);
        segidx_offset_set_free(s[k]);
    }
    return (double)(t1 - t0) / CUT_OPS;
}

static double base_cut_round(void *arg)
{
    const struct cut_case *c = arg;
    roaring_bitmap_t *s[CUT_OPS], *shared[CUT_OPS];
    for (int k = 0; k < CUT_OPS; k++)
        s[k] = base_copy(c);

    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CUT_OPS; k++) {
        shared[k] = roaring_bitmap_and(s[k], c->base_o);
        roaring_bitmap_andnot_inplace(s[k], c->base_o);
    }
    uint64_t t1 = bench_now_ns();

    for (int k = 0; k < CUT_OPS; k++) {
        BENCH_CHECK(shared[k] != NULL);
        BENCH_CHECK(roaring_bitmap_get_cardinality(shared[k]) == c->want_shared);
        BENCH_CHECK(roaring_bitmap_get_cardinality(s[k]) == c->want_left);
        roaring_bitmap_free(shared[k]);
        roaring_bitmap_free(s[k]);
    }
    return (double)(t1 - t0) / CUT_OPS;
}

typedef void (*make_input_fn)(bench_rng *rng, struct recipe *s, struct recipe *o);

/* Each input has its own seed, so adding or reordering inputs leaves the
 * others' workloads (and figures) unchanged. */
static void bench_cut(const char *name, make_input_fn make, uint64_t seed)
{
    bench_rng rng = bench_rng_seed(seed);
    struct recipe s, o;
    make(&rng, &s, &o);
    struct cut_case c;
    cut_case_init(&c, &s, &o);
    recipe_free(&s);
    recipe_free(&o);
    cut_case_verify(&c);

    double ours, base;
    bench_median_pair(our_cut_round, &c, base_cut_round, &c, ROUNDS, &ours, &base);
    /* The target: ratio <= 1.1. Not enforced here: a shared
     * machine's noise would make that a flaky gate. */
    bench_print(&(struct bench_figure){ .name = name, .value = ours, .unit = "ns/op",
                                        .baseline = "roaring and+andnot_inplace",
                                        .baseline_value = base });
    cut_case_free(&c);
}

/* ------------------------------------------------------------ codec */

/* A mixed set of a few hundred KB stored: 16 dense containers (bitsets),
 * 32 containers of ~3,000 offsets (large arrays), 20,000 offsets over 64
 * containers (small arrays) and 8 long ranges (runs). */
static void make_mixed(bench_rng *rng, struct recipe *r)
{
    recipe_init(r, 16 * 60000 + 32 * 3000 + 20000);
    for (uint32_t k = 0; k < 16; k++)
        recipe_add_distinct(r, rng, k << 16, 65536, 60000);
    for (uint32_t k = 16; k < 48; k++)
        recipe_add_distinct(r, rng, k << 16, 65536, 3000);
    for (int i = 0; i < 20000; i++)
        recipe_add(r, (64u << 16) + bench_rng_below(rng, 64u << 16));
    for (uint32_t i = 0; i < 8; i++) {
        uint32_t lo = (256u << 16) + i * (1u << 19) + bench_rng_below(rng, 1u << 16);
        recipe_add_range(r, lo, lo + 50000 + bench_rng_below(rng, 100000));
    }
}

struct codec_case {
    segidx_offset_set *ours;   /* as built by adds: serialize optimizes a copy */
    roaring_bitmap_t *base;    /* run-optimized once, up front */
    uint8_t *our_bytes;
    size_t our_len;
    char *base_bytes;
    size_t base_len;
    void *out;                 /* scratch for serialize, our_len bytes */
    uint64_t card;
};

static double our_serialize_round(void *arg)
{
    struct codec_case *c = arg;
    size_t n[CODEC_OPS];
    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++)
        n[k] = segidx_offset_set_serialize(c->ours, c->out, c->our_len);
    uint64_t t1 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++)
        BENCH_CHECK(n[k] == c->our_len);
    BENCH_CHECK(memcmp(c->out, c->our_bytes, c->our_len) == 0);
    return (double)(t1 - t0) / CODEC_OPS;
}

/* The baseline writes an already run-optimized bitmap: the raw cost of the
 * format. Our serialize also copies and run-optimizes (so that `s` stays
 * untouched) and checksums; the ratio shows what that costs. */
static double base_serialize_round(void *arg)
{
    struct codec_case *c = arg;
    size_t n[CODEC_OPS];
    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++)
        n[k] = roaring_bitmap_portable_serialize(c->base, c->out);
    uint64_t t1 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++)
        BENCH_CHECK(n[k] == c->base_len);
    BENCH_CHECK(memcmp(c->out, c->base_bytes, c->base_len) == 0);
    return (double)(t1 - t0) / CODEC_OPS;
}

static double our_deserialize_round(void *arg)
{
    struct codec_case *c = arg;
    segidx_offset_set *s[CODEC_OPS];
    int rc[CODEC_OPS];
    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++)
        rc[k] = segidx_offset_set_deserialize(c->our_bytes, c->our_len, &s[k]);
    uint64_t t1 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++) {
        BENCH_CHECK(rc[k] == SEGIDX_OK);
        BENCH_CHECK(segidx_offset_set_cardinality(s[k]) == c->card);
        segidx_offset_set_free(s[k]);
    }
    return (double)(t1 - t0) / CODEC_OPS;
}

/* The baseline only bounds-checks; ours also validates every structural
 * fact and the checksum (see segidx.h), which is what the ratio prices. */
static double base_deserialize_round(void *arg)
{
    struct codec_case *c = arg;
    roaring_bitmap_t *b[CODEC_OPS];
    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++)
        b[k] = roaring_bitmap_portable_deserialize_safe(c->base_bytes, c->base_len);
    uint64_t t1 = bench_now_ns();
    for (int k = 0; k < CODEC_OPS; k++) {
        BENCH_CHECK(b[k] != NULL);
        BENCH_CHECK(roaring_bitmap_get_cardinality(b[k]) == c->card);
        roaring_bitmap_free(b[k]);
    }
    return (double)(t1 - t0) / CODEC_OPS;
}

/* MB (10^6 bytes) per second from bytes per op and ns per op. */
static double mb_per_s(size_t bytes, double ns_per_op)
{
    return (double)bytes / ns_per_op * 1e3;
}

/* Throughput counts each side's own stored bytes; the printed ratio is
 * still our time / baseline time per byte (bench_time_ratio). */
static void bench_codec(uint64_t seed)
{
    bench_rng rng = bench_rng_seed(seed);
    struct recipe r;
    make_mixed(&rng, &r);
    struct codec_case c;
    c.ours = build_ours(&r);
    c.base = build_base(&r);
    recipe_free(&r);
    BENCH_CHECK(same_contents(c.ours, c.base));
    c.card = roaring_bitmap_get_cardinality(c.base);
    c.our_bytes = our_stored(c.ours, &c.our_len);
    c.base_bytes = base_stored(c.base, &c.base_len);
    /* The baseline writes into the same scratch; ours is never shorter. */
    BENCH_CHECK(c.base_len <= c.our_len);
    c.out = bench_xmalloc(c.our_len);

    /* Round trip once before timing: our bytes must read back as the set. */
    segidx_offset_set *back = NULL;
    BENCH_CHECK(segidx_offset_set_deserialize(c.our_bytes, c.our_len, &back) == SEGIDX_OK);
    BENCH_CHECK(same_contents(back, c.base));
    segidx_offset_set_free(back);

    double ours, base;
    bench_median_pair(our_serialize_round, &c, base_serialize_round, &c, ROUNDS, &ours,
                      &base);
    bench_print(&(struct bench_figure){ .name = "offset_set.serialize",
                                        .value = mb_per_s(c.our_len, ours), .unit = "MB/s",
                                        .better = BENCH_HIGHER_IS_BETTER,
                                        .baseline = "roaring portable_serialize",
                                        .baseline_value = mb_per_s(c.base_len, base) });
    bench_median_pair(our_deserialize_round, &c, base_deserialize_round, &c, ROUNDS, &ours,
                      &base);
    bench_print(&(struct bench_figure){ .name = "offset_set.deserialize",
                                        .value = mb_per_s(c.our_len, ours), .unit = "MB/s",
                                        .better = BENCH_HIGHER_IS_BETTER,
                                        .baseline = "roaring portable_deserialize_safe",
                                        .baseline_value = mb_per_s(c.base_len, base) });
    bench_print(&(struct bench_figure){ .name = "offset_set.stored_bytes mixed",
                                        .value = (double)c.our_len, .unit = "B" });

    free(c.out);
    free(c.our_bytes);
    free(c.base_bytes);
    segidx_offset_set_free(c.ours);
    roaring_bitmap_free(c.base);
}

/* ------------------------------------------------------------ cut by stored bytes */

/* A query cut by one stored set, as find_segments' walk does per commit
 * entry; each op cuts its own copy of the query. */
struct stored_case {
    uint8_t *bytes;
    size_t len;
    segidx_offset_set *query;
    uint64_t want_shared, want_left;
};

static double our_stored_cut_round(void *arg)
{
    const struct stored_case *c = arg;
    segidx_offset_set *q[CUT_OPS], *shared[CUT_OPS];
    int rc[CUT_OPS];
    for (int k = 0; k < CUT_OPS; k++)
        BENCH_CHECK((q[k] = segidx_offset_set_copy(c->query)) != NULL);
    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CUT_OPS; k++)
        rc[k] = segidx__offset_set_cut_stored(q[k], c->bytes, c->len, &shared[k], NULL);
    uint64_t t1 = bench_now_ns();
    for (int k = 0; k < CUT_OPS; k++) {
        BENCH_CHECK(rc[k] == SEGIDX_OK);
        BENCH_CHECK(segidx_offset_set_cardinality(shared[k]) == c->want_shared);
        BENCH_CHECK(segidx_offset_set_cardinality(q[k]) == c->want_left);
        segidx_offset_set_free(shared[k]);
        segidx_offset_set_free(q[k]);
    }
    return (double)(t1 - t0) / CUT_OPS;
}

static double deserialize_cut_round(void *arg)
{
    const struct stored_case *c = arg;
    segidx_offset_set *q[CUT_OPS], *shared[CUT_OPS];
    for (int k = 0; k < CUT_OPS; k++)
        BENCH_CHECK((q[k] = segidx_offset_set_copy(c->query)) != NULL);
    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < CUT_OPS; k++) {
        segidx_offset_set *stored = NULL;
        shared[k] = segidx_offset_set_deserialize(c->bytes, c->len, &stored) == SEGIDX_OK
                        ? segidx_offset_set_cut(q[k], stored)
                        : NULL;
        segidx_offset_set_free(stored);
    }
    uint64_t t1 = bench_now_ns();
    for (int k = 0; k < CUT_OPS; k++) {
        BENCH_CHECK(shared[k] != NULL);
        BENCH_CHECK(segidx_offset_set_cardinality(shared[k]) == c->want_shared);
        BENCH_CHECK(segidx_offset_set_cardinality(q[k]) == c->want_left);
        segidx_offset_set_free(shared[k]);
        segidx_offset_set_free(q[k]);
    }
    return (double)(t1 - t0) / CUT_OPS;
}

static void bench_stored_cut(const char *name, const struct recipe *stored,
                             const struct recipe *query)
{
    struct stored_case c;
    segidx_offset_set *s = build_ours(stored);
    c.bytes = our_stored(s, &c.len);
    c.query = build_ours(query);
    /* The answer every timed op must give, from deserialize + cut. */
    segidx_offset_set *q = segidx_offset_set_copy(c.query);
    BENCH_CHECK(q != NULL);
    segidx_offset_set *shared = segidx_offset_set_cut(q, s);
    BENCH_CHECK(shared != NULL);
    c.want_shared = segidx_offset_set_cardinality(shared);
    c.want_left = segidx_offset_set_cardinality(q);
    segidx_offset_set_free(shared);
    segidx_offset_set_free(q);
    segidx_offset_set_free(s);

    double ours, base;
    bench_median_pair(our_stored_cut_round, &c, deserialize_cut_round, &c, ROUNDS, &ours,
                      &base);
    bench_print(&(struct bench_figure){ .name = name, .value = ours, .unit = "ns/op",
                                        .baseline = "deserialize + cut",
                                        .baseline_value = base });
    free(c.bytes);
    segidx_offset_set_free(c.query);
}

/* A commit entry of bench_volume_index.c's volume: 1-32 offsets of 65,536,
 * against a query of 1,024 of them; and the mixed set of the codec figures
 * (bitsets, arrays, runs over 300+ containers) against 2,000 offsets that
 * meet a few of its containers. */
static void bench_stored_cuts(uint64_t seed)
{
    bench_rng rng = bench_rng_seed(seed);
    struct recipe s, q;
    recipe_init(&s, 32);
    recipe_init(&q, 1024);
    recipe_add_distinct(&s, &rng, 0, 65536, 1 + bench_rng_below(&rng, 32));
    recipe_add_distinct(&q, &rng, 0, 65536, 1024);
    bench_stored_cut("offset_set.cut_stored commit", &s, &q);
    recipe_free(&s);
    recipe_free(&q);

    make_mixed(&rng, &s);
    recipe_init(&q, 2000);
    for (int i = 0; i < 2000; i++)
        recipe_add(&q, (uint32_t)bench_rng_below(&rng, 4) << 20 | bench_rng_below(&rng, 1u << 16));
    bench_stored_cut("offset_set.cut_stored mixed", &s, &q);
    recipe_free(&s);
    recipe_free(&q);
}

int main(void)
{
    bench_cut("offset_set.cut sparse", make_sparse, 0x5e61d0001u);
    bench_cut("offset_set.cut dense", make_dense, 0x5e61d0002u);
    bench_cut("offset_set.cut runs", make_runs, 0x5e61d0003u);
    bench_codec(0x5e61d0004u);
    bench_stored_cuts(0x5e61d0005u);
    return 0;
}
