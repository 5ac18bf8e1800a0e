/* OffsetSet: a set of page offsets over CRoaring, with cut and a validated,
 * checksummed stored form (see docs/FORMAT.md, "OffsetSet"). */
#include "internal.h"

#include <roaring/roaring.h>
#include <stdlib.h>

/* A segidx_offset_set is a roaring_bitmap_t: no wrapper, so that cut costs
 * what CRoaring's and + andnot cost and nothing more. */
static roaring_bitmap_t *bm(segidx_offset_set *s)
{
    return (roaring_bitmap_t *)s;
}

static const roaring_bitmap_t *cbm(const segidx_offset_set *s)
{
    return (const roaring_bitmap_t *)s;
}

static segidx_offset_set *as_set(roaring_bitmap_t *r)
{
    return (segidx_offset_set *)r;
}

segidx_offset_set *segidx_offset_set_new(void)
{
    return as_set(roaring_bitmap_create());
}

void segidx_offset_set_free(segidx_offset_set *s)
{
    if (s)
        roaring_bitmap_free(bm(s));
}

int segidx_offset_set_add(segidx_offset_set *s, segidx_offset o)
{
    if (!s)
        return SEGIDX_EINVAL;
    roaring_bitmap_add(bm(s), o);
    return SEGIDX_OK;
}

int segidx_offset_set_add_range(segidx_offset_set *s, segidx_offset lo, segidx_offset hi)
{
    if (!s || lo > hi)
        return SEGIDX_EINVAL;
    if (lo < hi)
        roaring_bitmap_add_range_closed(bm(s), lo, hi - 1);
    return SEGIDX_OK;
}

bool segidx_offset_set_contains(const segidx_offset_set *s, segidx_offset o)
{
    return s && roaring_bitmap_contains(cbm(s), o);
}

uint64_t segidx_offset_set_cardinality(const segidx_offset_set *s)
{
    return s ? roaring_bitmap_get_cardinality(cbm(s)) : 0;
}

bool segidx_offset_set_is_empty(const segidx_offset_set *s)
{
    return !s || roaring_bitmap_is_empty(cbm(s));
}

segidx_offset_set *segidx_offset_set_cut(segidx_offset_set *s, const segidx_offset_set *other)
{
    if (!s || !other)
        return NULL;
    roaring_bitmap_t *shared = roaring_bitmap_and(bm(s), cbm(other));
    if (!shared)
        return NULL;
    /* Subtracting the (usually much smaller) intersection rather than
     * `other` touches only the containers the two sets share. */
    if (!roaring_bitmap_is_empty(shared))
        roaring_bitmap_andnot_inplace(bm(s), shared);
    return as_set(shared);
}

segidx_offset_set *segidx_offset_set_copy(const segidx_offset_set *s)
{
    return s ? as_set(roaring_bitmap_copy(cbm(s))) : NULL;
}

bool segidx_offset_set_equals(const segidx_offset_set *a, const segidx_offset_set *b)
{
    return a && b && roaring_bitmap_equals(cbm(a), cbm(b));
}

void segidx__offset_set_swap(segidx_offset_set *a, segidx_offset_set *b)
{
    roaring_bitmap_t t = *bm(a);
    *bm(a) = *bm(b);
    *bm(b) = t;
}

bool segidx__offset_set_union(segidx_offset_set *a, const segidx_offset_set *b)
{
    roaring_bitmap_or_inplace(bm(a), cbm(b));
    return true; /* CRoaring 0.2.66 reports no allocation failure here */
}

size_t segidx__offset_set_range(const segidx_offset_set *s, uint32_t lo, uint32_t hi,
                                uint32_t *out, size_t cap)
{
    roaring_uint32_iterator_t it;
    roaring_init_iterator(cbm(s), &it);
    size_t n = 0;
    if (!roaring_move_uint32_iterator_equalorlarger(&it, lo))
        return 0;
    while (it.has_value && it.current_value <= hi && n < cap) {
        out[n++] = it.current_value;
        roaring_advance_uint32_iterator(&it);
    }
    return n;
}

void segidx__offset_set_remove_many(segidx_offset_set *s, const uint32_t *v, size_t n)
{
    roaring_bitmap_remove_many(bm(s), n, v);
}

void segidx__offset_set_remove_above(segidx_offset_set *s, uint32_t x)
{
    if (x < UINT32_MAX)
        roaring_bitmap_remove_range_closed(bm(s), x + 1, UINT32_MAX);
}

bool segidx__offset_set_intersects(const segidx_offset_set *a, const segidx_offset_set *b)
{
    return roaring_bitmap_intersect(cbm(a), cbm(b));
}

uint32_t segidx__offset_set_max(const segidx_offset_set *s)
{
    return roaring_bitmap_maximum(cbm(s));
}

struct iterate_ctx {
    int (*fn)(segidx_offset o, void *ctx);
    void *ctx;
    int rc;
};

static bool iterate_one(uint32_t value, void *param)
{
    struct iterate_ctx *it = param;
    it->rc = it->fn(value, it->ctx);
    return it->rc == 0;
}

int segidx_offset_set_iterate(const segidx_offset_set *s,
                              int (*fn)(segidx_offset o, void *ctx), void *ctx)
{
    if (!s || !fn)
        return SEGIDX_EINVAL;
    struct iterate_ctx it = { fn, ctx, 0 };
    roaring_iterate(cbm(s), iterate_one, &it);
    return it.rc;
}

/* ------------------------------------------------------------------------
 * Stored form: envelope + CRoaring portable format.
 */

#define ENVELOPE_BYTES 24
#define ENVELOPE_VERSION 1
static const uint8_t envelope_magic[4] = { 'S', 'X', 'O', 'S' };

/* Cookies and limits of the portable format (CRoaring's format spec). */
#define PORTABLE_COOKIE_NO_RUNS 12346u
#define PORTABLE_COOKIE_RUNS 12347u
#define PORTABLE_NO_OFFSET_THRESHOLD 4u
#define PORTABLE_MAX_CONTAINERS 65536u
#define PORTABLE_ARRAY_MAX_CARD 4096u
#define PORTABLE_BITSET_BYTES 8192u

/* The run-optimized copy that both serialized_size and serialize describe,
 * so that the two always agree and `s` stays untouched. */
static roaring_bitmap_t *optimized_copy(const segidx_offset_set *s)
{
    roaring_bitmap_t *copy = roaring_bitmap_copy(cbm(s));
    if (copy)
        roaring_bitmap_run_optimize(copy);
    return copy;
}

size_t segidx_offset_set_serialized_size(const segidx_offset_set *s)
{
    if (!s)
        return 0;
    roaring_bitmap_t *copy = optimized_copy(s);
    if (!copy)
        return 0;
    size_t n = ENVELOPE_BYTES + roaring_bitmap_portable_size_in_bytes(copy);
    roaring_bitmap_free(copy);
    return n;
}

/* The envelope and `payload` bytes of `copy` (its portable size) at out. */
static void write_stored(const roaring_bitmap_t *copy, size_t payload, uint8_t *out)
{
    roaring_bitmap_portable_serialize(copy, (char *)out + ENVELOPE_BYTES);
    memcpy(out, envelope_magic, 4);
    segidx__store16(out + 4, ENVELOPE_VERSION);
    segidx__store16(out + 6, 0);
    segidx__store32(out + 8, (uint32_t)payload);
    segidx__store32(out + 12, 0);
    segidx__store64(out + 16, segidx__xxh3(out + ENVELOPE_BYTES, payload));
}

size_t segidx_offset_set_serialize(const segidx_offset_set *s, void *buf, size_t cap)
{
    if (!s || !buf)
        return 0;
    roaring_bitmap_t *copy = optimized_copy(s);
    if (!copy)
        return 0;
    size_t payload = roaring_bitmap_portable_size_in_bytes(copy);
    size_t total = 0;
    if (cap >= ENVELOPE_BYTES && payload <= cap - ENVELOPE_BYTES) {
        write_stored(copy, payload, buf);
        total = ENVELOPE_BYTES + payload;
    }
    roaring_bitmap_free(copy);
    return total;
}

int segidx__offset_set_serialize_after(const segidx_offset_set *s, size_t prefix, uint8_t **out,
                                       size_t *len)
{
    *out = NULL;
    *len = 0;
    roaring_bitmap_t *copy = optimized_copy(s);
    if (!copy)
        return SEGIDX_ENOMEM;
    size_t payload = roaring_bitmap_portable_size_in_bytes(copy);
    uint8_t *buf = NULL;
    if (payload <= SIZE_MAX - ENVELOPE_BYTES - prefix)
        buf = malloc(prefix + ENVELOPE_BYTES + payload);
    if (buf) {
        write_stored(copy, payload, buf + prefix);
        *out = buf;
        *len = ENVELOPE_BYTES + payload;
    }
    roaring_bitmap_free(copy);
    return buf ? SEGIDX_OK : SEGIDX_ENOMEM;
}

/* A bounded reader over the payload: every take checks the bytes left, so
 * no loop below can read past the end however its counts were forged. */
struct reader {
    const uint8_t *base;
    size_t pos, len;
};

static const uint8_t *take(struct reader *r, size_t n)
{
    if (n > r->len - r->pos)
        return NULL;
    const uint8_t *p = r->base + r->pos;
    r->pos += n;
    return p;
}

static int validate_array(const uint8_t *p, uint32_t card)
{
    for (uint32_t i = 1; i < card; i++)
        if (segidx__load16(p + 2 * i) <= segidx__load16(p + 2 * (i - 1)))
            return SEGIDX_ECORRUPT;
    return SEGIDX_OK;
}

static int validate_bitset(const uint8_t *p, uint32_t card)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < PORTABLE_BITSET_BYTES / 8; i++)
        count += segidx__popcount64(segidx__load64(p + 8 * i));
    return count == card ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* Runs are (start, length - 1) pairs: sorted, apart (a run that touches
 * the previous one is refused: CRoaring always merges those, and its
 * equals/subset give wrong answers on unmerged ones), inside 0..65535, and
 * together exactly `card` values. On success *runs_out and *n_runs_out say
 * where they are. */
static int validate_runs(struct reader *r, uint32_t card, const uint8_t **runs_out,
                         uint32_t *n_runs_out)
{
    const uint8_t *p = take(r, 2);
    if (!p)
        return SEGIDX_ECORRUPT;
    uint32_t n_runs = segidx__load16(p);
    const uint8_t *runs = take(r, 4 * (size_t)n_runs);
    if (!runs || n_runs == 0)
        return SEGIDX_ECORRUPT;
    uint32_t sum = 0;
    int64_t prev_end = -2; /* so that a first run may start at 0 */
    for (uint32_t i = 0; i < n_runs; i++) {
        uint32_t start = segidx__load16(runs + 4 * i);
        uint32_t extra = segidx__load16(runs + 4 * i + 2);
        if ((int64_t)start <= prev_end + 1 || start + extra > 0xFFFFu)
            return SEGIDX_ECORRUPT;
        prev_end = start + extra;
        sum += extra + 1;
    }
    *runs_out = runs;
    *n_runs_out = n_runs;
    return sum == card ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* CRoaring writes the run cookie only when some container is a run
 * container, and never sets a flag past the last container. */
static bool valid_run_flags(const uint8_t *flags, uint32_t size)
{
    uint32_t bytes = (size + 7) / 8;
    bool any = false;
    for (uint32_t i = 0; i < bytes; i++)
        any |= flags[i] != 0;
    return any && (size % 8 == 0 || flags[bytes - 1] >> (size % 8) == 0);
}

/* One container of a stored payload, already validated, as it lies in the
 * bytes: what a walk over the containers hands to its visitor. */
enum container_kind { KIND_ARRAY, KIND_BITSET, KIND_RUNS };

struct stored_container {
    uint32_t key, card;
    enum container_kind kind;
    const uint8_t *body; /* array: `card` u16; bitset: 8192 bytes; runs: pairs */
    uint32_t n_runs;     /* runs only */
};

/* A visitor keeps its own error: the walk goes on validating, so that bad
 * bytes further on still decide the result as they would without it. */
typedef void (*container_visit_fn)(void *ctx, const struct stored_container *c);

/* Check every structural fact of a portable-format payload that CRoaring
 * 0.2.66 trusts (its _safe reader checks bounds only), handing each
 * container to `visit` (may be NULL) once it is known good. */
static int validate_portable(const uint8_t *p, size_t len, container_visit_fn visit, void *ctx)
{
    struct reader r = { p, 0, len };
    const uint8_t *w = take(&r, 4);
    if (!w)
        return SEGIDX_ECORRUPT;
    uint32_t cookie = segidx__load32(w);
    uint32_t size;
    const uint8_t *run_flags = NULL;
    if ((cookie & 0xFFFFu) == PORTABLE_COOKIE_RUNS) {
        size = (cookie >> 16) + 1;
        if (!(run_flags = take(&r, (size + 7) / 8)) || !valid_run_flags(run_flags, size))
            return SEGIDX_ECORRUPT;
    } else if (cookie == PORTABLE_COOKIE_NO_RUNS) {
        if (!(w = take(&r, 4)))
            return SEGIDX_ECORRUPT;
        size = segidx__load32(w);
        if (size > PORTABLE_MAX_CONTAINERS)
            return SEGIDX_ECORRUPT;
    } else {
        return SEGIDX_ECORRUPT;
    }
    const uint8_t *headers = take(&r, 4 * (size_t)size);
    if (!headers)
        return SEGIDX_ECORRUPT;
    const uint8_t *offsets = NULL;
    if (!run_flags || size >= PORTABLE_NO_OFFSET_THRESHOLD)
        if (!(offsets = take(&r, 4 * (size_t)size)))
            return SEGIDX_ECORRUPT;

    for (uint32_t i = 0; i < size; i++) {
        struct stored_container c = { segidx__load16(headers + 4 * i),
                                      segidx__load16(headers + 4 * i + 2) + 1u, KIND_ARRAY,
                                      NULL, 0 };
        if (i > 0 && c.key <= segidx__load16(headers + 4 * (i - 1)))
            return SEGIDX_ECORRUPT;
        if (offsets && segidx__load32(offsets + 4 * i) != r.pos)
            return SEGIDX_ECORRUPT;
        int rc;
        if (run_flags && (run_flags[i / 8] >> (i % 8)) & 1) {
            c.kind = KIND_RUNS;
            rc = validate_runs(&r, c.card, &c.body, &c.n_runs);
        } else if (c.card <= PORTABLE_ARRAY_MAX_CARD) {
            rc = (c.body = take(&r, 2 * (size_t)c.card)) ? validate_array(c.body, c.card)
                                                         : SEGIDX_ECORRUPT;
        } else {
            c.kind = KIND_BITSET;
            rc = (c.body = take(&r, PORTABLE_BITSET_BYTES)) ? validate_bitset(c.body, c.card)
                                                            : SEGIDX_ECORRUPT;
        }
        if (rc)
            return rc;
        if (visit)
            visit(ctx, &c);
    }
    return r.pos == len ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

static int validate_envelope(const uint8_t *p, size_t len)
{
    if (len < ENVELOPE_BYTES || memcmp(p, envelope_magic, 4) != 0)
        return SEGIDX_ECORRUPT;
    if (segidx__load16(p + 4) != ENVELOPE_VERSION)
        return SEGIDX_EVERSION;
    if (segidx__load16(p + 6) != 0 || segidx__load32(p + 12) != 0 ||
        segidx__load32(p + 8) != len - ENVELOPE_BYTES)
        return SEGIDX_ECORRUPT;
    if (segidx__load64(p + 16) != segidx__xxh3(p + ENVELOPE_BYTES, len - ENVELOPE_BYTES))
        return SEGIDX_ECORRUPT;
    return SEGIDX_OK;
}

/* The whole stored form checked: envelope, checksum, structure, and
 * CRoaring's own idea of the payload's length (belt and braces: it must
 * agree on the length we validated). Each container goes to `visit`. */
static int validate_stored(const uint8_t *p, size_t len, container_visit_fn visit, void *ctx)
{
    int rc = validate_envelope(p, len);
    if (rc)
        return rc;
    const uint8_t *payload = p + ENVELOPE_BYTES;
    size_t n = len - ENVELOPE_BYTES;
    if ((rc = validate_portable(payload, n, visit, ctx)))
        return rc;
    if (roaring_bitmap_portable_deserialize_size((const char *)payload, n) != n)
        return SEGIDX_ECORRUPT;
    return SEGIDX_OK;
}

int segidx_offset_set_deserialize(const void *buf, size_t len, segidx_offset_set **out)
{
    if (!buf || !out)
        return SEGIDX_EINVAL;
    int rc = validate_stored(buf, len, NULL, NULL);
    if (rc)
        return rc;
    const char *payload = (const char *)buf + ENVELOPE_BYTES;
    roaring_bitmap_t *r = roaring_bitmap_portable_deserialize_safe(payload, len - ENVELOPE_BYTES);
    if (!r)
        return SEGIDX_ENOMEM;
    *out = as_set(r);
    return SEGIDX_OK;
}

/* ------------------------------------------------------------------------
 * Cutting by a stored set without building it: one walk over the stored
 * containers validates each one and intersects those whose key the query
 * has. The query is touched only once the whole stored form is known good.
 */

/* A stored container of at most this many offsets is intersected by
 * probing the query for each of them (no allocation); a larger one is
 * handed to CRoaring, whose container operations are faster in bulk. */
#define PROBE_MAX_CARD 64u

struct stored_cut {
    const roaring_bitmap_t *query;
    int32_t next;          /* the query's first container not yet passed */
    roaring_bitmap_t *cut; /* created with its first offset */
    uint64_t card;         /* offsets in the stored set */
    int err;
};

static int add_to_cut(struct stored_cut *sc, const uint32_t *vals, size_t n)
{
    if (n == 0)
        return SEGIDX_OK;
    if (!sc->cut && !(sc->cut = roaring_bitmap_create()))
        return SEGIDX_ENOMEM;
    roaring_bitmap_add_many(sc->cut, n, vals);
    return SEGIDX_OK;
}

/* A small container: each of its offsets looked up in the query. */
static int cut_by_probing(struct stored_cut *sc, const struct stored_container *c)
{
    uint32_t hits[PROBE_MAX_CARD], n = 0, high = c->key << 16;
    if (c->kind == KIND_ARRAY) {
        for (uint32_t i = 0; i < c->card; i++) {
            uint32_t v = high | segidx__load16(c->body + 2 * i);
            if (roaring_bitmap_contains(sc->query, v))
                hits[n++] = v;
        }
    } else { /* runs: validated to hold exactly card <= PROBE_MAX_CARD offsets */
        for (uint32_t i = 0; i < c->n_runs; i++) {
            uint32_t start = segidx__load16(c->body + 4 * i);
            uint32_t last = start + segidx__load16(c->body + 4 * i + 2);
            for (uint32_t v = start; v <= last; v++)
                if (roaring_bitmap_contains(sc->query, high | v))
                    hits[n++] = high | v;
        }
    }
    return add_to_cut(sc, hits, n);
}

/* A large container: CRoaring reads it alone (a one-container portable
 * payload, with the run cookie so that any kind can be said) and
 * intersects it with the query. */
static int cut_by_container(struct stored_cut *sc, const struct stored_container *c)
{
    size_t body = c->kind == KIND_RUNS ? 2 + 4 * (size_t)c->n_runs
                  : c->kind == KIND_BITSET ? PORTABLE_BITSET_BYTES
                                           : 2 * (size_t)c->card;
    const uint8_t *from = c->kind == KIND_RUNS ? c->body - 2 : c->body;
    size_t total = 4 + 1 + 4 + body;
    uint8_t *buf = malloc(total);
    if (!buf)
        return SEGIDX_ENOMEM;
    segidx__store32(buf, PORTABLE_COOKIE_RUNS); /* one container */
    buf[4] = c->kind == KIND_RUNS;
    segidx__store16(buf + 5, (uint16_t)c->key);
    segidx__store16(buf + 7, (uint16_t)(c->card - 1));
    memcpy(buf + 9, from, body);
    roaring_bitmap_t *one = roaring_bitmap_portable_deserialize_safe((const char *)buf, total);
    free(buf);
    if (!one)
        return SEGIDX_ENOMEM;
    roaring_bitmap_t *shared = roaring_bitmap_and(sc->query, one);
    roaring_bitmap_free(one);
    if (!shared)
        return SEGIDX_ENOMEM;
    if (roaring_bitmap_is_empty(shared)) {
        roaring_bitmap_free(shared);
    } else if (!sc->cut) {
        sc->cut = shared;
    } else {
        roaring_bitmap_or_inplace(sc->cut, shared);
        roaring_bitmap_free(shared);
    }
    return SEGIDX_OK;
}

/* The visitor: containers come in increasing key order, so the query's
 * keys are passed once, merge-style. A container whose key the query
 * lacks costs its validation only. */
static void cut_container(void *ctx, const struct stored_container *c)
{
    struct stored_cut *sc = ctx;
    sc->card += c->card;
    const roaring_array_t *q = &sc->query->high_low_container;
    while (sc->next < q->size && q->keys[sc->next] < c->key)
        sc->next++;
    if (sc->err || sc->next == q->size || q->keys[sc->next] != c->key)
        return;
    sc->err = c->card <= PROBE_MAX_CARD && c->kind != KIND_BITSET ? cut_by_probing(sc, c)
                                                                  : cut_by_container(sc, c);
}

int segidx__offset_set_cut_stored(segidx_offset_set *query, const void *buf, size_t len,
                                  segidx_offset_set **cut, uint64_t *stored_card)
{
    if (!query || !buf || !cut)
        return SEGIDX_EINVAL;
    struct stored_cut sc = { cbm(query), 0, NULL, 0, SEGIDX_OK };
    int rc = validate_stored(buf, len, cut_container, &sc);
    if (!rc)
        rc = sc.err;
    if (!rc && !sc.cut && !(sc.cut = roaring_bitmap_create()))
        rc = SEGIDX_ENOMEM;
    if (rc) {
        if (sc.cut)
            roaring_bitmap_free(sc.cut);
        return rc;
    }
    if (!roaring_bitmap_is_empty(sc.cut))
        roaring_bitmap_andnot_inplace(bm(query), sc.cut);
    *cut = as_set(sc.cut);
    if (stored_card)
        *stored_card = sc.card;
    return SEGIDX_OK;
}
