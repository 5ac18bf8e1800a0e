/* Fuzz target: segidx_offset_set_deserialize() and everything one does with
 * the set it returns.
 *
 * Each input is tried twice:
 *  1. as it is, which exercises the envelope checks (magic, version, flags,
 *     length, checksum);
 *  2. with its first 24 bytes replaced by a correct envelope for the rest,
 *     so that mutated payloads get past the checksum and reach the
 *     portable-format validation. In this pass the input's own bytes 16..24
 *     are free for the fuzzer: they pick the ranges the cut checks use.
 *
 * A failed deserialize must return SEGIDX_ECORRUPT or SEGIDX_EVERSION and
 * leave `out` alone. A set that is accepted is checked against an
 * independent reading of the payload (the portable format spec) and then
 * used: cardinality, is_empty, iterate, contains, add, add_range, cut,
 * serialize and deserialize again. Any broken invariant calls abort().
 *
 * Every input, in both passes, is also cut by its stored bytes
 * (segidx__offset_set_cut_stored, what find_segments' walk uses) with
 * queries taken from the input: it must return what deserialize returned,
 * and on success give the cut and leave the query that deserialize + cut
 * give; on an error leave both alone.
 *
 * Builds as a libFuzzer target and, with fuzz/replay.c, as a plain program
 * that replays a corpus.
 */
#include <segidx.h>

#include "fuzz_check.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "../src/internal.h" /* segidx__offset_set_cut_stored */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ENVELOPE_BYTES 24
/* Walks over a set check each of the first WALK_LIMIT elements (membership,
 * gaps, other sets); after that only order and count, up to `limit`
 * elements: COUNT_LIMIT for the one walk over the input's set, WALK_LIMIT
 * for the rest. Whole-set checks (cuts, byte-equal round trips, the spec
 * reading) cover what lies beyond; the limits bound the time per input. */
#define WALK_LIMIT (1u << 14)
#define COUNT_LIMIT (1u << 21)
#define WALK_STOPPED 0x5eed

/* The envelope docs/FORMAT.md describes, for `n` payload bytes at p + 24. */
static void write_envelope(uint8_t *p, size_t n)
{
    memcpy(p, "SXOS", 4);
    put16(p + 4, 1);
    put16(p + 6, 0);
    put32(p + 8, (uint32_t)n);
    put32(p + 12, 0);
    put64(p + 16, XXH3_64bits(p + ENVELOPE_BYTES, n));
}

/* ------------------------------------------------------------ helpers */

static segidx_offset_set *must_deserialize(const uint8_t *buf, size_t len)
{
    segidx_offset_set *s = NULL;
    int rc = segidx_offset_set_deserialize(buf, len, &s);
    CHECK(rc == SEGIDX_OK);
    CHECK(s != NULL);
    return s;
}

/* A cut that must succeed (the fuzzer does not inject allocation failures). */
static segidx_offset_set *must_cut(segidx_offset_set *s, const segidx_offset_set *other)
{
    segidx_offset_set *c = segidx_offset_set_cut(s, other);
    CHECK(c != NULL);
    return c;
}

/* Serialize `s` into a fresh buffer, checking the size contract and the
 * envelope. */
static uint8_t *must_serialize(const segidx_offset_set *s, size_t *len)
{
    uint64_t card = segidx_offset_set_cardinality(s);
    size_t n = segidx_offset_set_serialized_size(s);
    CHECK(n >= ENVELOPE_BYTES + 8);
    uint8_t *buf = malloc(n);
    CHECK(buf != NULL);
    CHECK(segidx_offset_set_serialize(s, buf, n - 1) == 0);
    CHECK(segidx_offset_set_serialize(s, buf, n) == n);
    CHECK(memcmp(buf, "SXOS", 4) == 0);
    CHECK(get16(buf + 4) == 1 && get16(buf + 6) == 0 && get32(buf + 12) == 0);
    CHECK(get32(buf + 8) == n - ENVELOPE_BYTES);
    CHECK(get64(buf + 16) == XXH3_64bits(buf + ENVELOPE_BYTES, n - ENVELOPE_BYTES));
    CHECK(segidx_offset_set_cardinality(s) == card); /* serialize leaves s alone */
    *len = n;
    return buf;
}

/* ------------------------------------------------------------ walks */

/* Iterate `self`, checking order, membership, the gaps between elements,
 * and optionally that each element is in `in` and in none of `out`. */
struct walk {
    const segidx_offset_set *self;
    const segidx_offset_set *in;
    const segidx_offset_set *out[2];
    uint64_t n, limit;
    uint32_t first, last;
    segidx_offset_set *collect; /* if non-NULL, gets every other element */
};

/* The per-element checks, for the first WALK_LIMIT elements of a walk. */
static void check_element(struct walk *w, segidx_offset o)
{
    if (w->n == 0) {
        w->first = o;
        if (o > 0)
            CHECK(!segidx_offset_set_contains(w->self, o - 1));
    } else if (o - w->last > 1) {
        CHECK(!segidx_offset_set_contains(w->self, w->last + 1));
        CHECK(!segidx_offset_set_contains(w->self, o - 1));
    }
    CHECK(segidx_offset_set_contains(w->self, o));
    if (w->in)
        CHECK(segidx_offset_set_contains(w->in, o));
    for (int i = 0; i < 2; i++)
        if (w->out[i])
            CHECK(!segidx_offset_set_contains(w->out[i], o));
    if (w->collect && (w->n & 1) == 0)
        CHECK(segidx_offset_set_add(w->collect, o) == SEGIDX_OK);
}

static int walk_one(segidx_offset o, void *ctx)
{
    struct walk *w = ctx;
    if (w->n > 0)
        CHECK(o > w->last);
    if (w->n < WALK_LIMIT)
        check_element(w, o);
    w->last = o;
    w->n++;
    return w->n >= w->limit ? WALK_STOPPED : 0;
}

static void walk(struct walk *w)
{
    uint64_t card = segidx_offset_set_cardinality(w->self);
    CHECK(segidx_offset_set_is_empty(w->self) == (card == 0));
    w->n = 0;
    int rc = segidx_offset_set_iterate(w->self, walk_one, w);
    if (rc == 0) {
        CHECK(w->n == card);
        if (w->n > 0 && w->last < UINT32_MAX)
            CHECK(!segidx_offset_set_contains(w->self, w->last + 1));
    } else {
        CHECK(rc == WALK_STOPPED);
        CHECK(w->n == w->limit && w->n <= card);
    }
    if (card == 0) {
        CHECK(!segidx_offset_set_contains(w->self, 0));
        CHECK(!segidx_offset_set_contains(w->self, UINT32_MAX));
    }
}

static void walk_plain(const segidx_offset_set *s, const segidx_offset_set *in,
                       const segidx_offset_set *out0, const segidx_offset_set *out1)
{
    struct walk w = { s, in, { out0, out1 }, 0, WALK_LIMIT, 0, 0, NULL };
    walk(&w);
}

/* A set made by the library's own operations must survive its stored form:
 * the validator may not refuse anything serialize() writes. */
static void check_roundtrip(const segidx_offset_set *s)
{
    size_t n, n2;
    uint8_t *ser = must_serialize(s, &n);
    segidx_offset_set *t = must_deserialize(ser, n);
    CHECK(segidx_offset_set_cardinality(t) == segidx_offset_set_cardinality(s));
    walk_plain(t, s, NULL, NULL);
    uint8_t *ser2 = must_serialize(t, &n2);
    CHECK(n2 == n && memcmp(ser, ser2, n) == 0);
    free(ser2);
    free(ser);
    segidx_offset_set_free(t);
}

/* ---------------------------------------------- independent spec reading */

/* Read a payload that the library accepted, by the portable format spec
 * and nothing else, into `ref` (through add/add_range), and return the sum
 * of the header's cardinalities. Every read is bounds-checked: running out
 * of bytes here means the validator accepted something malformed. */
struct spec_reader {
    const uint8_t *p;
    size_t pos, len;
};

static const uint8_t *spec_take(struct spec_reader *r, size_t n)
{
    CHECK(n <= r->len - r->pos);
    const uint8_t *q = r->p + r->pos;
    r->pos += n;
    return q;
}

static uint64_t spec_read(const uint8_t *payload, size_t len, segidx_offset_set *ref)
{
    struct spec_reader r = { payload, 0, len };
    uint32_t cookie = get32(spec_take(&r, 4));
    uint32_t size;
    const uint8_t *run_flags = NULL;
    if ((cookie & 0xFFFF) == 12347) {
        size = (cookie >> 16) + 1;
        run_flags = spec_take(&r, (size + 7) / 8);
        bool any = false;
        for (uint32_t i = 0; i < (size + 7) / 8; i++)
            any |= run_flags[i] != 0;
        CHECK(any); /* the run cookie means some run container */
        CHECK(size % 8 == 0 || run_flags[(size + 7) / 8 - 1] >> (size % 8) == 0);
    } else {
        CHECK(cookie == 12346);
        size = get32(spec_take(&r, 4));
        CHECK(size <= 65536);
    }
    const uint8_t *keycards = spec_take(&r, 4 * (size_t)size);
    const uint8_t *offsets = NULL;
    if (!run_flags || size >= 4)
        offsets = spec_take(&r, 4 * (size_t)size);

    uint64_t total = 0;
    for (uint32_t i = 0; i < size; i++) {
        uint32_t key = get16(keycards + 4 * i);
        uint32_t card = get16(keycards + 4 * i + 2) + 1u;
        uint32_t base = key << 16;
        CHECK(i == 0 || key > get16(keycards + 4 * (i - 1)));
        if (offsets)
            CHECK(get32(offsets + 4 * i) == r.pos);
        total += card;
        uint32_t seen = 0;
        if (run_flags && (run_flags[i / 8] >> (i % 8) & 1)) {
            uint32_t n_runs = get16(spec_take(&r, 2));
            CHECK(n_runs > 0);
            const uint8_t *runs = spec_take(&r, 4 * (size_t)n_runs);
            for (uint32_t j = 0; j < n_runs; j++) {
                uint32_t start = get16(runs + 4 * j), len1 = get16(runs + 4 * j + 2);
                CHECK(start + len1 <= 0xFFFF);
                CHECK(j == 0 || start > (uint32_t)get16(runs + 4 * (j - 1)) +
                                            get16(runs + 4 * (j - 1) + 2) + 1);
                uint32_t lo = base + start, last = base + start + len1;
                if (last == UINT32_MAX) {
                    CHECK(segidx_offset_set_add(ref, UINT32_MAX) == SEGIDX_OK);
                    CHECK(segidx_offset_set_add_range(ref, lo, last) == SEGIDX_OK);
                } else {
                    CHECK(segidx_offset_set_add_range(ref, lo, last + 1) == SEGIDX_OK);
                }
                seen += len1 + 1;
            }
        } else if (card <= 4096) {
            const uint8_t *a = spec_take(&r, 2 * (size_t)card);
            for (uint32_t j = 0; j < card; j++) {
                CHECK(j == 0 || get16(a + 2 * j) > get16(a + 2 * (j - 1)));
                CHECK(segidx_offset_set_add(ref, base + get16(a + 2 * j)) == SEGIDX_OK);
            }
            seen = card;
        } else {
            const uint8_t *b = spec_take(&r, 8192);
            for (uint32_t j = 0; j < 65536; j++)
                if (b[j / 8] >> (j % 8) & 1) {
                    CHECK(segidx_offset_set_add(ref, base + j) == SEGIDX_OK);
                    seen++;
                }
        }
        CHECK(seen == card);
    }
    CHECK(r.pos == len);
    return total;
}

/* ------------------------------------------------------------ cut */

/* Cut a fresh copy of `s` (serialized as `ser`) by `other` and check that
 * the result and the remainder partition `s` the way they must: element by
 * element on a prefix, and as whole sets with further cuts. Returns
 * |s ∩ other|. */
static uint64_t check_cut(const segidx_offset_set *s, const uint8_t *ser, size_t ser_len,
                          const segidx_offset_set *other)
{
    uint64_t card = segidx_offset_set_cardinality(s);
    uint64_t other_card = segidx_offset_set_cardinality(other);

    segidx_offset_set *rest = must_deserialize(ser, ser_len);
    segidx_offset_set *shared = must_cut(rest, other);
    uint64_t n_shared = segidx_offset_set_cardinality(shared);
    uint64_t n_rest = segidx_offset_set_cardinality(rest);
    CHECK(n_shared + n_rest == card);
    CHECK(n_shared <= other_card);
    CHECK(segidx_offset_set_cardinality(other) == other_card);

    walk_plain(shared, s, rest, NULL);
    walk_plain(shared, other, NULL, NULL);
    walk_plain(rest, s, other, shared);
    check_roundtrip(shared);
    check_roundtrip(rest);

    /* Whole sets: shared and rest lie inside s and do not meet ... */
    segidx_offset_set *whole = must_deserialize(ser, ser_len);
    segidx_offset_set *a = must_cut(whole, shared);
    CHECK(segidx_offset_set_cardinality(a) == n_shared);
    segidx_offset_set *b = must_cut(whole, rest);
    CHECK(segidx_offset_set_cardinality(b) == n_rest);
    CHECK(segidx_offset_set_is_empty(whole));
    /* ... rest misses other entirely, shared lies inside it. */
    segidx_offset_set *c = must_cut(rest, other);
    CHECK(segidx_offset_set_is_empty(c));
    CHECK(segidx_offset_set_cardinality(rest) == n_rest);
    segidx_offset_set *d = must_cut(shared, other);
    CHECK(segidx_offset_set_cardinality(d) == n_shared);
    CHECK(segidx_offset_set_is_empty(shared));

    segidx_offset_set_free(d);
    segidx_offset_set_free(c);
    segidx_offset_set_free(b);
    segidx_offset_set_free(a);
    segidx_offset_set_free(whole);
    segidx_offset_set_free(shared);
    segidx_offset_set_free(rest);
    return n_shared;
}

/* ------------------------------------------------------------ one input */

static void use_set(const segidx_offset_set *s, const uint8_t *payload, size_t payload_len,
                    const uint8_t ctl[8])
{
    uint64_t card = segidx_offset_set_cardinality(s);
    CHECK(card <= (uint64_t)1 << 32);

    /* The set holds exactly what the payload says, by the spec. */
    segidx_offset_set *ref = segidx_offset_set_new();
    CHECK(ref != NULL);
    CHECK(spec_read(payload, payload_len, ref) == card);
    CHECK(segidx_offset_set_cardinality(ref) == card);

    /* Walk it, and keep every other element for a cut below. */
    segidx_offset_set *alternate = segidx_offset_set_new();
    CHECK(alternate != NULL);
    struct walk w = { s, ref, { NULL, NULL }, 0, COUNT_LIMIT, 0, 0, alternate };
    walk(&w);
    uint32_t first = w.first, last = w.last;

    /* Serialize, read back: the same set, and the same bytes again. */
    size_t ser_len, ser2_len;
    uint8_t *ser = must_serialize(s, &ser_len);
    segidx_offset_set *s2 = must_deserialize(ser, ser_len);
    CHECK(segidx_offset_set_cardinality(s2) == card);
    walk_plain(s2, s, NULL, NULL);
    uint8_t *ser2 = must_serialize(s2, &ser2_len);
    CHECK(ser2_len == ser_len && memcmp(ser, ser2, ser_len) == 0);
    {
        segidx_offset_set *t = NULL;
        CHECK(segidx_offset_set_deserialize(ser, ser_len - 1, &t) == SEGIDX_ECORRUPT);
        CHECK(t == NULL);
    }

    /* ref == s as whole sets (ref is consumed). */
    segidx_offset_set *same = must_cut(ref, s2);
    CHECK(segidx_offset_set_cardinality(same) == card);
    CHECK(segidx_offset_set_is_empty(ref));
    segidx_offset_set_free(same);

    /* Cuts: by a range from the control bytes, by every other element plus
     * a range, by an empty set, by an equal set, and by itself. */
    uint32_t x = get32(ctl), y = get32(ctl + 4);
    uint32_t lo = first + x % 0x40000u;
    uint32_t hi = lo + y % 0x40000u;
    if (lo < first || hi < lo)
        lo = first, hi = UINT32_MAX;
    segidx_offset_set *range = segidx_offset_set_new();
    CHECK(range != NULL);
    if (hi > lo)
        CHECK(segidx_offset_set_add_range(range, hi, lo) == SEGIDX_EINVAL);
    CHECK(segidx_offset_set_add_range(range, lo, hi) == SEGIDX_OK);
    CHECK(segidx_offset_set_cardinality(range) == (uint64_t)hi - lo);
    uint64_t in_range = check_cut(s, ser, ser_len, range);

    /* add_range into a copy of s adds exactly what was missing. */
    segidx_offset_set *grown = must_deserialize(ser, ser_len);
    CHECK(segidx_offset_set_add_range(grown, lo, hi) == SEGIDX_OK);
    CHECK(segidx_offset_set_cardinality(grown) == card + ((uint64_t)hi - lo) - in_range);
    bool had = segidx_offset_set_contains(grown, y);
    CHECK(segidx_offset_set_add(grown, y) == SEGIDX_OK);
    CHECK(segidx_offset_set_contains(grown, y));
    CHECK(segidx_offset_set_cardinality(grown) ==
          card + ((uint64_t)hi - lo) - in_range + (had ? 0 : 1));
    check_roundtrip(grown);
    segidx_offset_set_free(grown);

    uint32_t extra = x & 0xFFFF;
    if (last < UINT32_MAX - extra)
        CHECK(segidx_offset_set_add_range(alternate, last + 1, last + 1 + extra) == SEGIDX_OK);
    check_cut(s, ser, ser_len, alternate);

    segidx_offset_set *empty = segidx_offset_set_new();
    CHECK(empty != NULL);
    CHECK(check_cut(s, ser, ser_len, empty) == 0);
    CHECK(check_cut(s, ser, ser_len, s2) == card);

    segidx_offset_set *self = must_deserialize(ser, ser_len);
    segidx_offset_set *all = must_cut(self, self);
    CHECK(segidx_offset_set_cardinality(all) == card);
    CHECK(segidx_offset_set_is_empty(self));
    segidx_offset_set_free(all);
    segidx_offset_set_free(self);

    CHECK(segidx_offset_set_cardinality(s) == card);
    segidx_offset_set_free(empty);
    segidx_offset_set_free(range);
    segidx_offset_set_free(s2);
    segidx_offset_set_free(alternate);
    segidx_offset_set_free(ref);
    free(ser2);
    free(ser);
}

/* ------------------------------------------------------------ cut by stored bytes */

/* cut_stored(query, buf) against deserialize(buf) + cut(query, set). */
static void check_cut_stored(const uint8_t *buf, size_t len, const segidx_offset_set *query)
{
    static max_align_t untouched;
    segidx_offset_set *const sentinel = (segidx_offset_set *)(void *)&untouched;
    segidx_offset_set *stored = NULL, *want_cut = NULL;
    segidx_offset_set *want_query = segidx_offset_set_copy(query);
    CHECK(want_query != NULL);
    int want = segidx_offset_set_deserialize(buf, len, &stored);
    if (want == SEGIDX_OK)
        want_cut = must_cut(want_query, stored);

    segidx_offset_set *q = segidx_offset_set_copy(query);
    CHECK(q != NULL);
    segidx_offset_set *cut = sentinel;
    uint64_t card = UINT64_MAX;
    int rc = segidx__offset_set_cut_stored(q, buf, len, &cut, &card);
    if (rc != want) {
        fprintf(stderr, "offset_set_fuzz: cut_stored returned %d, deserialize %d\n", rc, want);
        abort();
    }
    if (rc == SEGIDX_OK) {
        CHECK(cut != NULL && cut != sentinel);
        CHECK(segidx_offset_set_equals(cut, want_cut));
        CHECK(segidx_offset_set_equals(q, want_query));
        CHECK(card == segidx_offset_set_cardinality(stored));
        segidx_offset_set_free(cut);
    } else {
        CHECK(cut == sentinel && card == UINT64_MAX);
        CHECK(segidx_offset_set_equals(q, query));
    }
    segidx_offset_set_free(q);
    segidx_offset_set_free(want_cut);
    segidx_offset_set_free(want_query);
    segidx_offset_set_free(stored);
}

/* Queries from the input: none; a range the control bytes place; the
 * input's own bytes read as offsets (which often share keys with the
 * containers the payload names), and all of those together. */
static void check_cut_stored_queries(const uint8_t *buf, size_t len, const uint8_t ctl[8])
{
    segidx_offset_set *none = segidx_offset_set_new(), *range = segidx_offset_set_new();
    segidx_offset_set *words = segidx_offset_set_new();
    CHECK(none != NULL && range != NULL && words != NULL);
    uint32_t lo = get32(ctl), span = get32(ctl + 4) % 0x40000u;
    uint32_t hi = lo <= UINT32_MAX - span ? lo + span : UINT32_MAX;
    CHECK(segidx_offset_set_add_range(range, lo, hi) == SEGIDX_OK);
    for (size_t i = 0; i + 4 <= len && i < 4 * 512; i += 2) {
        uint32_t v = get32(buf + i);
        CHECK(segidx_offset_set_add(words, v) == SEGIDX_OK);
        CHECK(segidx_offset_set_add(words, v << 16 | v >> 16) == SEGIDX_OK);
    }
    check_cut_stored(buf, len, none);
    check_cut_stored(buf, len, range);
    check_cut_stored(buf, len, words);
    CHECK(segidx_offset_set_add_range(words, lo, hi) == SEGIDX_OK);
    check_cut_stored(buf, len, words);
    segidx_offset_set_free(words);
    segidx_offset_set_free(range);
    segidx_offset_set_free(none);
}

static void run_one(const uint8_t *buf, size_t len, const uint8_t ctl[8])
{
    check_cut_stored_queries(buf, len, ctl);

    static max_align_t untouched;
    segidx_offset_set *const sentinel = (segidx_offset_set *)(void *)&untouched;
    segidx_offset_set *s = sentinel;
    int rc = segidx_offset_set_deserialize(buf, len, &s);
    if (rc != SEGIDX_OK) {
        if (rc != SEGIDX_ECORRUPT && rc != SEGIDX_EVERSION) {
            fprintf(stderr, "offset_set_fuzz: deserialize returned %d (%s)\n", rc,
                    segidx_strerror(rc));
            abort();
        }
        CHECK(s == sentinel);
        return;
    }
    CHECK(s != NULL && s != sentinel);
    CHECK(len >= ENVELOPE_BYTES);
    use_set(s, buf + ENVELOPE_BYTES, len - ENVELOPE_BYTES, ctl);
    segidx_offset_set_free(s);
}

/* Once per process: the checksum this target forges must be the library's,
 * or pass 2 would silently test nothing but the checksum check. */
static void self_check(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    segidx_offset_set *s = segidx_offset_set_new();
    CHECK(s != NULL);
    CHECK(segidx_offset_set_add(s, 7) == SEGIDX_OK);
    size_t n;
    uint8_t *buf = must_serialize(s, &n);
    uint8_t *copy = malloc(n);
    CHECK(copy != NULL);
    memcpy(copy, buf, n);
    write_envelope(copy, n - ENVELOPE_BYTES);
    CHECK(memcmp(buf, copy, n) == 0);
    /* The documented argument checks. */
    segidx_offset_set *out = NULL;
    CHECK(segidx_offset_set_deserialize(NULL, n, &out) == SEGIDX_EINVAL);
    CHECK(segidx_offset_set_deserialize(buf, n, NULL) == SEGIDX_EINVAL);
    CHECK(segidx_offset_set_add(NULL, 1) == SEGIDX_EINVAL);
    CHECK(segidx_offset_set_add_range(NULL, 0, 1) == SEGIDX_EINVAL);
    CHECK(segidx_offset_set_serialize(s, buf, ENVELOPE_BYTES - 1) == 0);
    segidx_offset_set_free(NULL);
    free(copy);
    free(buf);
    segidx_offset_set_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    self_check();
    uint8_t ctl[8] = { 0 };
    if (size >= ENVELOPE_BYTES)
        memcpy(ctl, data + 16, 8);

    /* Pass 1: the bytes as they are. An empty input still gets a non-NULL
     * pointer: NULL is a different contract (EINVAL). */
    run_one(size ? data : ctl, size, ctl);

    /* Pass 2: the same payload under a correct envelope. */
    if (size >= ENVELOPE_BYTES) {
        uint8_t *fixed = malloc(size);
        CHECK(fixed != NULL);
        memcpy(fixed, data, size);
        write_envelope(fixed, size - ENVELOPE_BYTES);
        if (memcmp(fixed, data, size) != 0)
            run_one(fixed, size, ctl);
        free(fixed);
    }
    return 0;
}
