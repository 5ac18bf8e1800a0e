/* Checkpoints of the volume index (docs/FORMAT.md, "Checkpoints") against
 * the brute-force model: reads at every LSN around every round of many
 * small schedules; what a read costs, whatever the history; prune; the
 * first checkpoint of a volume written without them; races run at every
 * store call; a failing store; planted damage; the options; a query of
 * every offset. The stored checkpoint values are compared with what
 * FORMAT.md says they hold, decoded here from its text, not with the
 * library's code. Over the in-memory store, or over LMDB when built with
 * CHECKPOINT_OVER_LMDB (tests/test_lmdb_checkpoint.c). */
#include "vitest.h"

#include "internal.h" /* little-endian helpers and the checksum, to plant values */

#ifdef CHECKPOINT_OVER_LMDB
#include "kv_forward.h"
#include "segidx_lmdb.h"

#include <unistd.h>

/* A fresh LMDB store in its own temporary directory, which its close
 * removes. */
struct lmdb_scratch {
    kv_forward fw; /* first: the hooks get it */
    char dir[64];
};

static void scratch_close(kv_forward *f)
{
    struct lmdb_scratch *s = (struct lmdb_scratch *)f;
    kv_forward_inner_close(f);
    char path[96];
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", s->dir);
    unlink(path);
    assert_int_equal(rmdir(s->dir), 0);
    free(s);
}

static int open_test_store(segidx_kv *out)
{
    struct lmdb_scratch *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->dir, sizeof s->dir, "/tmp/segidx-ckpt-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = true;
    o.map_size = (size_t)256 << 20;
    segidx_kv inner;
    assert_int_equal(segidx_kv_lmdb_open(s->dir, &o, &inner), SEGIDX_OK);
    kv_forward_init(&s->fw, inner);
    s->fw.close = scratch_close;
    *out = kv_forward_kv(&s->fw);
    return SEGIDX_OK;
}
#else
static int open_test_store(segidx_kv *out)
{
    return segidx_kv_mem_open(out);
}
#endif

/* ------------------------------------------------------------ allocations
 *
 * This binary is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
 * (the Makefile's lines for it): every allocation libsegidx (linked in
 * statically) and this file make comes here. None of these tests needs a
 * block of ALLOC_CAP bytes; a request above it is refused (NULL) and
 * remembered, so that a call that would take memory in proportion to what
 * it is asked rather than to what the volume holds shows as SEGIDX_ENOMEM,
 * not as gigabytes taken from the machine.
 */
#define ALLOC_CAP ((size_t)64 << 20)

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static size_t largest_refused; /* 0: none */

static bool refuse(size_t n)
{
    if (n <= ALLOC_CAP)
        return false;
    largest_refused = n > largest_refused ? n : largest_refused;
    return true;
}

void *__wrap_malloc(size_t n)
{
    return refuse(n) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return size && refuse(n > SIZE_MAX / size ? SIZE_MAX : n * size) ? NULL
                                                                    : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return refuse(n) ? NULL : __real_realloc(p, n);
}

/* ------------------------------------------------------------ schedules */

typedef struct policy {
    uint32_t k; /* commits per round */
    unsigned f; /* fanout */
    unsigned l; /* levels */
} policy;

static const segidx_volume_index_options ckpt_off = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };

static segidx_volume_index_options opts_of(policy p)
{
    return (segidx_volume_index_options){ p.k, p.f, p.l };
}

static uint64_t ipow(uint64_t b, unsigned e)
{
    uint64_t r = 1;
    while (e--)
        r *= b;
    return r;
}

/* Rounds from one image to the next: F^L. */
static uint64_t image_every(policy p)
{
    return ipow(p.f, p.l);
}

static segidx_lsn round_lsn(segidx_lsn c0, policy p, uint64_t n)
{
    return c0 + n * p.k;
}

/* The LSN of the newest image round at or below `lsn` (which is >= c0). */
static segidx_lsn image_at_or_below(segidx_lsn c0, policy p, segidx_lsn lsn)
{
    uint64_t n = (lsn - c0) / p.k;
    return round_lsn(c0, p, n - n % image_every(p));
}

/* ------------------------------------------------------------ the fixture
 *
 * One store; every index over it borrows it, so that handles with other
 * options (another host) can come and go. The main handle's view counts
 * and fails calls through the stub.
 */
typedef struct fixture {
    segidx_kv raw;
    stub_kv *stub;
    segidx_volume_index *vi;
    test_rng rng;
} fixture;

static void fixture_index(fixture *f, const segidx_volume_index_options *o)
{
    segidx_kv kv = stub_wrap(borrowed_kv(&f->raw), &f->stub);
    assert_int_equal(segidx_volume_index_open_with(kv, o, &f->vi), SEGIDX_OK);
}

static void fixture_open(fixture *f, uint64_t seed, const segidx_volume_index_options *o)
{
    assert_int_equal(open_test_store(&f->raw), SEGIDX_OK);
    fixture_index(f, o);
    f->rng = (test_rng){ seed };
}

/* The main handle again, with other options. */
static void fixture_reopen(fixture *f, const segidx_volume_index_options *o)
{
    segidx_volume_index_close(f->vi);
    fixture_index(f, o);
}

static void fixture_close(fixture *f)
{
    segidx_volume_index_close(f->vi);
    f->raw.vt->close(f->raw.self);
}

/* A fixture whose store holds exactly the pairs of a dump. */
static void fixture_restore(fixture *f, const dump *d, const segidx_volume_index_options *o)
{
    assert_int_equal(open_test_store(&f->raw), SEGIDX_OK);
    segidx_kv_op *ops = NULL;
    size_t n = 0, cap = 0;
    for (size_t at = 0; at < d->len;) {
        uint64_t kl, vl;
        memcpy(&kl, d->p + at, 8);
        const uint8_t *k = d->p + at + 8;
        at += 8 + kl;
        memcpy(&vl, d->p + at, 8);
        const uint8_t *v = d->p + at + 8;
        at += 8 + vl;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            ops = realloc(ops, cap * sizeof *ops);
            assert_non_null(ops);
        }
        ops[n++] = (segidx_kv_op){ SEGIDX_KV_PUT, k, kl, v, vl };
    }
    if (n)
        assert_int_equal(f->raw.vt->write(f->raw.self, ops, n), SEGIDX_OK);
    free(ops);
    fixture_index(f, o);
    f->rng = (test_rng){ 1 };
}

/* ------------------------------------------------------------ commits
 *
 * Offsets: a hot set that commits keep rewriting, spread over the chunks
 * of 0..SPREAD (chunks 0..9), chunk edges, 0, 2^31 and (for some volumes)
 * UINT32_MAX; now and then a dense run of 300 (a bitmap-encoded chunk).
 * Never written: NEVER_CHUNK (a chunk nobody writes), NEVER_NEAR (a chunk
 * that holds 2^31), UINT32_MAX - 1.
 */
#define SPREAD 40000u
#define HOT 48u
#define NEVER_CHUNK 45000u
#define NEVER_NEAR ((1u << 31) + 1)
#define NEVER_TOP (UINT32_MAX - 1)

static uint32_t hot_offset(unsigned i)
{
    return i == 0 ? 4095 : i == 1 ? 4096 : (uint32_t)((i * 7919u) % (SPREAD + 1));
}

static uint32_t gen_offset(test_rng *r, bool top)
{
    uint64_t x = rng_below(r, 40);
    if (x == 0)
        return 0;
    if (x == 1)
        return 1u << 31;
    if (x == 2 && top)
        return UINT32_MAX;
    if (x < 22)
        return hot_offset((unsigned)rng_below(r, HOT));
    return (uint32_t)rng_below(r, SPREAD + 1);
}

static bool commit_holds(const model_commit *c, uint32_t off)
{
    for (size_t i = 0; i < c->n; i++)
        if (segidx_offset_set_contains(c->segs[i].offsets, off))
            return true;
    return false;
}

/* A random commit: empty (one in six), or one to three segments with
 * disjoint offsets and distinct sids from a small pool. */
static void gen_commit(test_rng *r, model_commit *c, segidx_lsn lsn, bool top)
{
    memset(c, 0, sizeof *c);
    c->lsn = lsn;
    c->n = rng_below(r, 6) == 0 ? 0 : 1 + rng_below(r, MODEL_MAX_SEGS);
    for (size_t i = 0; i < c->n; i++) {
        c->segs[i].offsets = segidx_offset_set_new();
        bool distinct;
        do {
            memset(c->segs[i].sid.bytes, 0, 16);
            c->segs[i].sid.bytes[0] = 0xA0;
            c->segs[i].sid.bytes[15] = (uint8_t)(1 + rng_below(r, 12));
            distinct = true;
            for (size_t j = 0; j < i; j++)
                distinct &= memcmp(c->segs[j].sid.bytes, c->segs[i].sid.bytes, 16) != 0;
        } while (!distinct);
    }
    if (!c->n)
        return;
    for (unsigned k = 0, n = 1 + (unsigned)rng_below(r, 24); k < n; k++) {
        uint32_t off = gen_offset(r, top);
        if (!commit_holds(c, off))
            segidx_offset_set_add(c->segs[rng_below(r, c->n)].offsets, off);
    }
    if (rng_below(r, 16) == 0) {
        uint32_t lo = (uint32_t)rng_below(r, SPREAD - 300);
        for (uint32_t x = lo; x < lo + 300; x++)
            if (!commit_holds(c, x))
                segidx_offset_set_add(c->segs[0].offsets, x);
    }
    for (size_t i = 0; i < c->n; i++)
        while (segidx_offset_set_is_empty(c->segs[i].offsets)) {
            uint32_t off = (uint32_t)rng_below(r, SPREAD + 1);
            if (!commit_holds(c, off))
                segidx_offset_set_add(c->segs[i].offsets, off);
        }
}

static void free_commit(model_commit *c)
{
    for (size_t i = 0; i < c->n; i++)
        segidx_offset_set_free(c->segs[i].offsets);
    c->n = 0;
}

static int commit_model(segidx_volume_index *vi, const segidx_vid *vid, const model_commit *c,
                        uint64_t time)
{
    segidx_commit_segment segs[MODEL_MAX_SEGS];
    for (size_t i = 0; i < c->n; i++)
        segs[i] = (segidx_commit_segment){ c->segs[i].sid, c->segs[i].offsets };
    return segidx_volume_commit(vi, vid, c->lsn, time, segs, c->n);
}

/* The model takes the commit's sets over. */
static void model_append(model_volume *v, const model_commit *c)
{
    v->commits = realloc(v->commits, (v->n + 1) * sizeof *v->commits);
    assert_non_null(v->commits);
    v->commits[v->n++] = *c;
}

/* Commit `count` random commits through `vi`, into the model too. */
static void grow(segidx_volume_index *vi, test_rng *r, model_volume *v, size_t count, bool top)
{
    for (size_t k = 0; k < count; k++) {
        model_commit c;
        gen_commit(r, &c, v->n + 1, top);
        assert_int_equal(commit_model(vi, &v->vid, &c, 1000 + v->n), SEGIDX_OK);
        model_append(v, &c);
    }
}

/* A model of the first `n` commits of `v` plus `extra` (NULL: none),
 * sharing their sets: free with free(view.commits) alone. */
static model_volume model_view(const model_volume *v, size_t n, const model_commit *extra)
{
    model_volume w = { v->vid, malloc((n + 1) * sizeof *v->commits), n, 0 };
    assert_non_null(w.commits);
    memcpy(w.commits, v->commits, n * sizeof *v->commits);
    if (extra)
        w.commits[w.n++] = *extra;
    return w;
}

static segidx_vid vid_fill(uint8_t b)
{
    segidx_vid v;
    memset(v.bytes, b, 16);
    return v;
}

static segidx_vid random_vid(test_rng *r)
{
    segidx_vid v;
    for (int i = 0; i < 16; i++)
        v.bytes[i] = (uint8_t)rng_next(r);
    return v;
}

/* ------------------------------------------------------------ queries */

static void add_nevers(segidx_offset_set *q)
{
    segidx_offset_set_add(q, NEVER_CHUNK);
    segidx_offset_set_add(q, NEVER_NEAR);
    segidx_offset_set_add(q, NEVER_TOP);
}

static void add_edges(segidx_offset_set *q)
{
    segidx_offset_set_add(q, 0);
    segidx_offset_set_add(q, 1u << 31);
    segidx_offset_set_add(q, UINT32_MAX);
}

/* Kinds: 0 every ordinary offset and the edges; 1 a few random offsets;
 * 2 one offset; 3 one whole chunk; 4 the hot set and the edges; 5 one
 * offset in each of 80 chunks (most never written), a run across a chunk
 * edge and the edges. Half of them also ask for pages never written. */
static segidx_offset_set *gen_query(test_rng *r, unsigned kind)
{
    segidx_offset_set *q = segidx_offset_set_new();
    switch (kind % 6) {
    case 5: /* more chunks than a read asks one by one: it scans their values */
        for (uint32_t c = 0; c < 80; c++)
            segidx_offset_set_add(q, c << 12 | (uint32_t)rng_below(r, 4096));
        segidx_offset_set_add_range(q, 4000, 4200);
        add_edges(q);
        break;
    case 0:
        segidx_offset_set_add_range(q, 0, SPREAD + 1);
        add_edges(q);
        break;
    case 1:
        for (unsigned i = 0, n = 1 + (unsigned)rng_below(r, 60); i < n; i++)
            segidx_offset_set_add(q, gen_offset(r, true));
        break;
    case 2: {
        static const uint32_t some[] = { 0, 4095, 4096, 1u << 31, UINT32_MAX, NEVER_CHUNK,
                                         NEVER_NEAR, NEVER_TOP };
        segidx_offset_set_add(q, rng_below(r, 2) ? gen_offset(r, true) : some[rng_below(r, 8)]);
        return q;
    }
    case 3: {
        uint32_t c = (uint32_t)rng_below(r, 11);
        segidx_offset_set_add_range(q, c << 12, (c + 1) << 12);
        break;
    }
    default:
        for (unsigned i = 0; i < HOT; i++)
            segidx_offset_set_add(q, hot_offset(i));
        add_edges(q);
    }
    if (rng_below(r, 2))
        add_nevers(q);
    return q;
}

/* find_segments over `asked` at `lsn`: its return, visits and query. */
static int find_into(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                     const segidx_offset_set *asked, found_list *got, segidx_offset_set **left)
{
    *got = (found_list){ NULL, 0, 0, -1, 0 };
    *left = segidx_offset_set_copy(asked);
    return segidx_volume_find_segments(vi, vid, lsn, *left, collect_found, got);
}

/* find_segments fails with `want`, calls nothing, leaves the query. */
static void assert_find_fails(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                              const segidx_offset_set *asked, int want)
{
    found_list got;
    segidx_offset_set *left;
    assert_int_equal(find_into(vi, vid, lsn, asked, &got, &left), want);
    assert_int_equal(got.n, 0);
    assert_true(segidx_offset_set_equals(left, asked));
    found_list_free(&got);
    segidx_offset_set_free(left);
}

static void assert_find_random(segidx_volume_index *vi, const model_volume *v, segidx_lsn lsn,
                               test_rng *r, unsigned kind)
{
    segidx_offset_set *q = gen_query(r, kind);
    assert_find_exact(vi, v, lsn, q);
    segidx_offset_set_free(q);
}

/* The edges, one query each: the empty query, 0, 2^31, UINT32_MAX, a page
 * never written in a chunk never written, one in a chunk written, one
 * above every page (unless UINT32_MAX was written), chunk edges. */
static void assert_edges_exact(segidx_volume_index *vi, const model_volume *v, segidx_lsn lsn)
{
    static const uint32_t one[] = { 0, 1u << 31, UINT32_MAX, NEVER_CHUNK, NEVER_NEAR, NEVER_TOP,
                                    4095, 4096 };
    segidx_offset_set *q = segidx_offset_set_new();
    assert_find_exact(vi, v, lsn, q);
    for (size_t i = 0; i < sizeof one / sizeof *one; i++) {
        segidx_offset_set *s = segidx_offset_set_new();
        segidx_offset_set_add(s, one[i]);
        assert_find_exact(vi, v, lsn, s);
        segidx_offset_set_free(s);
        segidx_offset_set_add(q, one[i]);
    }
    assert_find_exact(vi, v, lsn, q);
    segidx_offset_set_free(q);
}

/* ------------------------------------------------------------ stored bytes */

#define CK_PREFIX "checkpoints/"
#define CK_PREFIX_LEN 12
#define CK_KEY_ROUND (CK_PREFIX_LEN + 16)
#define CK_KEY_LEVEL (CK_KEY_ROUND + 8)
#define CK_KEY_CHUNK (CK_KEY_LEVEL + 1)
#define CK_KEY_LEN (CK_KEY_CHUNK + 4)
#define CHUNK_OFFSETS 4096u
#define MAP_MAX (24 + 512 + 8 * CHUNK_OFFSETS + 8 + 16)

static void store_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t load_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void ck_key(uint8_t key[CK_KEY_LEN], const segidx_vid *vid, segidx_lsn round,
                   unsigned level, uint32_t chunk)
{
    memcpy(key, CK_PREFIX, CK_PREFIX_LEN);
    memcpy(key + CK_PREFIX_LEN, vid->bytes, 16);
    store_be(key + CK_KEY_ROUND, round, 8);
    key[CK_KEY_LEVEL] = (uint8_t)level;
    store_be(key + CK_KEY_CHUNK, chunk, 4);
}

typedef struct ck_ver {
    uint32_t off;
    segidx_lsn lsn;
} ck_ver;

/* One checkpoint value: stored (decoded) or expected. */
typedef struct ck_value {
    segidx_lsn round;
    unsigned level;
    uint32_t chunk;
    ck_ver *v;
    size_t n;
} ck_value;

typedef struct ck_list {
    ck_value *a;
    size_t n, cap;
} ck_list;

static void ck_list_push(ck_list *l, ck_value v)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->a = realloc(l->a, l->cap * sizeof *l->a);
        assert_non_null(l->a);
    }
    l->a[l->n++] = v;
}

static void ck_list_free(ck_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->a[i].v);
    free(l->a);
    *l = (ck_list){ 0 };
}

static unsigned field_bit(const uint8_t *p, size_t bit)
{
    return p[bit >> 3] >> (bit & 7) & 1;
}

/* A chunk map read as FORMAT.md describes it: false for anything it does
 * not allow (LSNs are only checked to be >= 1 here). */
static bool ck_decode(const uint8_t *p, size_t len, ck_value *out)
{
    if (len < 32 || memcmp(p, "SXCK", 4) != 0 || segidx__load16(p + 4) != 1)
        return false;
    unsigned enc = p[7], count = segidx__load16(p + 20) + 1u, w = p[22];
    if (p[23] != 0 || enc > 1 || (enc == 1) != (count >= 256) || w > 64)
        return false;
    size_t ob = enc ? 512 : 2 * (size_t)count, lb = ((size_t)count * w + 7) / 8;
    if (len != 24 + ob + lb + 8 || segidx__load64(p + len - 8) != segidx__xxh3(p, len - 8))
        return false;
    out->level = p[6];
    out->round = segidx__load64(p + 8);
    out->chunk = segidx__load32(p + 16);
    if (out->chunk > (UINT32_MAX >> 12))
        return false;
    out->v = calloc(count, sizeof *out->v);
    assert_non_null(out->v);
    out->n = 0;
    const uint8_t *o = p + 24, *l = o + ob;
    if (enc) {
        for (unsigned b = 0; b < CHUNK_OFFSETS; b++)
            if (field_bit(o, b)) {
                if (out->n == count)
                    goto bad;
                out->v[out->n++].off = out->chunk << 12 | b;
            }
        if (out->n != count)
            goto bad;
    } else {
        for (unsigned i = 0; i < count; i++) {
            unsigned x = segidx__load16(o + 2 * i);
            if (x >= CHUNK_OFFSETS || (i && x <= segidx__load16(o + 2 * i - 2)))
                goto bad;
            out->v[out->n++].off = out->chunk << 12 | x;
        }
    }
    for (unsigned i = 0; i < count; i++) {
        uint64_t back = 0;
        for (unsigned b = 0; b < w; b++)
            back |= (uint64_t)field_bit(l, (size_t)i * w + b) << b;
        if (back >= out->round)
            goto bad;
        out->v[i].lsn = out->round - back;
    }
    if ((size_t)count * w % 8 && l[lb - 1] >> ((size_t)count * w % 8))
        goto bad;
    return true;
bad:
    free(out->v);
    out->v = NULL;
    return false;
}

/* A chunk map as FORMAT.md prescribes it, with each LSN given as its field
 * (round - LSN), so that out-of-range ones can be written too. `low` are
 * the offsets less chunk·4096, increasing. Returns the length. */
static size_t ck_encode(uint8_t *out, unsigned level, segidx_lsn round, uint32_t chunk,
                        const uint16_t *low, const uint64_t *back, unsigned count)
{
    uint64_t most = 0;
    for (unsigned i = 0; i < count; i++)
        most = back[i] > most ? back[i] : most;
    unsigned w = 0;
    while (w < 64 && most >> w)
        w++;
    bool bitmap = count >= 256;
    size_t ob = bitmap ? 512 : 2 * (size_t)count, lb = ((size_t)count * w + 7) / 8;
    size_t len = 24 + ob + lb + 8;
    memset(out, 0, len);
    memcpy(out, "SXCK", 4);
    segidx__store16(out + 4, 1);
    out[6] = (uint8_t)level;
    out[7] = bitmap;
    segidx__store64(out + 8, round);
    segidx__store32(out + 16, chunk);
    segidx__store16(out + 20, (uint16_t)(count - 1));
    out[22] = (uint8_t)w;
    uint8_t *o = out + 24, *l = o + ob;
    for (unsigned i = 0; i < count; i++) {
        if (bitmap)
            o[low[i] >> 3] |= (uint8_t)(1u << (low[i] & 7));
        else
            segidx__store16(o + 2 * i, low[i]);
        for (unsigned b = 0; b < w; b++)
            if (back[i] >> b & 1)
                l[((size_t)i * w + b) >> 3] |= (uint8_t)(1u << (((size_t)i * w + b) & 7));
    }
    segidx__store64(out + len - 8, segidx__xxh3(out, len - 8));
    return len;
}

/* The checksum again, after a change: only the structure is wrong. */
static void reseal(uint8_t *p, size_t len)
{
    segidx__store64(p + len - 8, segidx__xxh3(p, len - 8));
}

/* Every key and value of the volume's checkpoints, raw, in key order. */
typedef struct raw_pair {
    uint8_t key[64];
    size_t klen;
    uint8_t *val;
    size_t vlen;
} raw_pair;

typedef struct raw_list {
    raw_pair *a;
    size_t n, cap;
} raw_list;

static int collect_raw(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    raw_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->a = realloc(l->a, l->cap * sizeof *l->a);
        if (!l->a)
            return 1;
    }
    raw_pair *p = &l->a[l->n++];
    p->klen = klen < sizeof p->key ? klen : sizeof p->key;
    memcpy(p->key, key, p->klen);
    p->val = malloc(vlen + 1);
    if (!p->val)
        return 1;
    if (vlen)
        memcpy(p->val, val, vlen);
    p->vlen = vlen;
    return 0;
}

static void raw_list_free(raw_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->a[i].val);
    free(l->a);
    *l = (raw_list){ 0 };
}

static void scan_checkpoint_keys(segidx_kv raw, const segidx_vid *vid, raw_list *out)
{
    uint8_t lo[CK_PREFIX_LEN + 16], hi[CK_KEY_LEN + 1];
    memcpy(lo, CK_PREFIX, CK_PREFIX_LEN);
    memcpy(lo + CK_PREFIX_LEN, vid->bytes, 16);
    memcpy(hi, lo, sizeof lo);
    memset(hi + sizeof lo, 0xFF, sizeof hi - sizeof lo);
    *out = (raw_list){ 0 };
    assert_int_equal(raw.vt->scan(raw.self, lo, sizeof lo, hi, sizeof hi, false, collect_raw, out),
                     0);
}

/* The stored checkpoint values of a volume, decoded, in key order; each
 * key is well formed and agrees with its value's header. */
static void stored_checkpoints(segidx_kv raw, const segidx_vid *vid, ck_list *out)
{
    raw_list l;
    scan_checkpoint_keys(raw, vid, &l);
    *out = (ck_list){ 0 };
    for (size_t i = 0; i < l.n; i++) {
        const raw_pair *p = &l.a[i];
        assert_int_equal(p->klen, CK_KEY_LEN);
        ck_value v;
        assert_true(ck_decode(p->val, p->vlen, &v));
        assert_int_equal(v.round, load_be(p->key + CK_KEY_ROUND, 8));
        assert_int_equal(v.level, p->key[CK_KEY_LEVEL]);
        assert_int_equal(v.chunk, load_be(p->key + CK_KEY_CHUNK, 4));
        ck_list_push(out, v);
    }
    raw_list_free(&l);
}

/* ------------------------------------------------------------ the checkpoint model */

struct newest {
    segidx_offset_set *seen;
    ck_ver *v;
    size_t n, cap;
    segidx_lsn lsn;
};

static int newest_visit(segidx_offset o, void *ctx)
{
    struct newest *w = ctx;
    if (segidx_offset_set_contains(w->seen, o))
        return 0;
    segidx_offset_set_add(w->seen, o);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->v = realloc(w->v, w->cap * sizeof *w->v);
        assert_non_null(w->v);
    }
    w->v[w->n++] = (ck_ver){ o, w->lsn };
    return 0;
}

static int compare_ck_ver(const void *a, const void *b)
{
    const ck_ver *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* Every offset the commits in [lo, hi] wrote, with its newest LSN there,
 * by offset. */
static void model_newest(const model_volume *v, segidx_lsn lo, segidx_lsn hi, ck_ver **out,
                         size_t *n)
{
    struct newest w = { segidx_offset_set_new(), NULL, 0, 0, 0 };
    for (segidx_lsn lsn = hi; lsn >= lo && lsn >= 1; lsn--) {
        const model_commit *c = &v->commits[lsn - 1];
        w.lsn = lsn;
        for (size_t i = 0; i < c->n; i++)
            segidx_offset_set_iterate(c->segs[i].offsets, newest_visit, &w);
    }
    segidx_offset_set_free(w.seen);
    if (w.n)
        qsort(w.v, w.n, sizeof *w.v, compare_ck_ver);
    *out = w.v;
    *n = w.n;
}

/* The values of one image or delta, one per chunk that holds an offset. */
static void model_values(const model_volume *v, segidx_lsn round, unsigned level, segidx_lsn lo,
                         ck_list *out)
{
    ck_ver *all;
    size_t n;
    model_newest(v, lo, round, &all, &n);
    for (size_t i = 0, j; i < n; i = j) {
        uint32_t chunk = all[i].off >> 12;
        for (j = i + 1; j < n && all[j].off >> 12 == chunk; j++)
            ;
        ck_value cv = { round, level, chunk, malloc((j - i) * sizeof *all), j - i };
        assert_non_null(cv.v);
        memcpy(cv.v, all + i, (j - i) * sizeof *all);
        ck_list_push(out, cv);
    }
    free(all);
}

/* What FORMAT.md says a volume with schedule (c0, p) and head v->n holds,
 * in key order, after prunes up to `keep_from` (0: none). */
static void model_checkpoints(const model_volume *v, segidx_lsn c0, policy p,
                              segidx_lsn keep_from, ck_list *out)
{
    *out = (ck_list){ 0 };
    if (!c0)
        return;
    segidx_lsn drop_below = keep_from >= c0 ? image_at_or_below(c0, p, keep_from) : 0;
    for (uint64_t n = 0; round_lsn(c0, p, n) <= v->n; n++) {
        segidx_lsn r = round_lsn(c0, p, n);
        if (r < drop_below)
            continue;
        if (n % image_every(p) == 0) {
            model_values(v, r, 0, 1, out);
            continue;
        }
        for (unsigned j = 1; j <= p.l && n % ipow(p.f, j - 1) == 0; j++)
            model_values(v, r, j, r - p.k * ipow(p.f, j - 1) + 1, out);
    }
}

/* The store holds exactly the checkpoint values the model says. */
static void assert_checkpoints(segidx_kv raw, const model_volume *v, segidx_lsn c0, policy p,
                               segidx_lsn keep_from)
{
    ck_list want, got;
    model_checkpoints(v, c0, p, keep_from, &want);
    stored_checkpoints(raw, &v->vid, &got);
    assert_int_equal(got.n, want.n);
    for (size_t i = 0; i < got.n; i++) {
        assert_int_equal(got.a[i].round, want.a[i].round);
        assert_int_equal(got.a[i].level, want.a[i].level);
        assert_int_equal(got.a[i].chunk, want.a[i].chunk);
        assert_int_equal(got.a[i].n, want.a[i].n);
        for (size_t k = 0; k < got.a[i].n; k++) {
            assert_int_equal(got.a[i].v[k].off, want.a[i].v[k].off);
            assert_int_equal(got.a[i].v[k].lsn, want.a[i].v[k].lsn);
        }
    }
    ck_list_free(&want);
    ck_list_free(&got);
}

/* ------------------------------------------------------------ metas */

struct raw_value {
    uint8_t val[MAP_MAX];
    size_t vlen;
};

static int keep_value(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    struct raw_value *r = ctx;
    assert_true(vlen <= sizeof r->val);
    memcpy(r->val, val, vlen);
    r->vlen = vlen;
    return 0;
}

static void raw_get(segidx_kv raw, const void *key, size_t klen, struct raw_value *out)
{
    assert_int_equal(raw.vt->get(raw.self, key, klen, keep_value, out), 0);
}

static void raw_put(segidx_kv raw, const void *key, size_t klen, const void *val, size_t vlen)
{
    segidx_kv_op op = { SEGIDX_KV_PUT, key, klen, val, vlen };
    assert_int_equal(raw.vt->write(raw.self, &op, 1), SEGIDX_OK);
}

/* The volume's stored meta: version 1 (48 bytes, c0 == 0) or version 2
 * (64 bytes) with this schedule. */
static void assert_meta_bytes(segidx_kv raw, const segidx_vid *vid, segidx_lsn c0, policy p)
{
    uint8_t key[24];
    memcpy(key, "volumes/", 8);
    memcpy(key + 8, vid->bytes, 16);
    struct raw_value m;
    raw_get(raw, key, sizeof key, &m);
    assert_memory_equal(m.val, "SXVM", 4);
    if (!c0) {
        assert_int_equal(m.vlen, 48);
        assert_int_equal(segidx__load16(m.val + 4), 1);
        return;
    }
    assert_int_equal(m.vlen, 64);
    assert_int_equal(segidx__load16(m.val + 4), 2);
    assert_int_equal(segidx__load64(m.val + 40), c0);
    assert_int_equal(segidx__load32(m.val + 48), p.k);
    assert_int_equal(m.val[52], p.f);
    assert_int_equal(m.val[53], p.l);
    assert_int_equal(segidx__load16(m.val + 54), 0);
    assert_int_equal(segidx__load64(m.val + 56), segidx__xxh3(m.val, 56));
}

static void assert_meta(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                        segidx_lsn keep_from)
{
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(vi, vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, lsn);
    assert_int_equal(m.keep_from, keep_from);
}

/* ------------------------------------------------------------ 1. reads like the model */

/* Every LSN just before, at and just after each round (each image round
 * among them), around c0, below it, some at random, the head, above it:
 * each read is the model's. */
static void check_reads(segidx_volume_index *vi, const model_volume *v, segidx_lsn c0, policy p,
                        test_rng *r)
{
    size_t top = v->n + 1;
    bool *mark = calloc(top + 1, 1);
    assert_non_null(mark);
    for (uint64_t n = 0; round_lsn(c0, p, n) <= top; n++) {
        segidx_lsn at = round_lsn(c0, p, n);
        mark[at - 1] = mark[at] = true;
        if (at + 1 <= top)
            mark[at + 1] = true;
    }
    for (int i = 0; i < 20; i++)
        mark[1 + rng_below(r, v->n)] = true;
    unsigned kind = 0;
    for (segidx_lsn at = 0; at <= top; at++) {
        if (!mark[at])
            continue;
        assert_find_random(vi, v, at, r, kind++);
        if (at >= c0 && (at - c0) % p.k == 0 && (at - c0) / p.k % image_every(p) == 0)
            assert_edges_exact(vi, v, at);
    }
    assert_find_random(vi, v, UINT64_MAX, r, 0);
    assert_edges_exact(vi, v, UINT64_MAX);
    free(mark);
}

static void run_model_case(policy p, int i)
{
    fixture f;
    fixture_open(&f, 1000 + (uint64_t)i, &ckpt_off);
    uint64_t period = p.k * image_every(p);
    size_t n = 3 * period + 2 * p.k + 7;
    size_t least = test_quick() ? 60 : 200;
    n = n < least ? least : n;
    /* The key space's edges, and a neighbour whose checkpoints interleave. */
    model_volume v = { 0 }, w = { 0 };
    v.vid = vid_fill(i % 2 ? 0xFF : 0x00);
    w.vid = vid_fill(i % 2 ? 0x00 : 0xFF);
    bool top = i % 3 == 0; /* UINT32_MAX written too */
    /* Some volumes start their checkpoints later: commits before c0 go
     * through a handle without them. */
    segidx_lsn c0 = i % 4 == 1 ? 2 + rng_below(&f.rng, 2 * p.k + 3) : 1;
    grow(f.vi, &f.rng, &v, c0 - 1, top);
    segidx_volume_index_options o = opts_of(p);
    fixture_reopen(&f, &o);
    while (v.n < n) {
        grow(f.vi, &f.rng, &v, 1, top);
        if (v.n % 7 == 0)
            grow(f.vi, &f.rng, &w, 1, !top);
    }
    assert_meta_bytes(f.raw, &v.vid, c0, p);
    assert_meta_bytes(f.raw, &w.vid, 1, p);
    assert_checkpoints(f.raw, &v, c0, p, 0);
    assert_checkpoints(f.raw, &w, 1, p, 0);
    check_reads(f.vi, &v, c0, p, &f.rng);
    for (segidx_lsn at = 1; at <= w.n + 1; at += 1 + at / 4)
        assert_find_random(f.vi, &w, at, &f.rng, (unsigned)at);
    assert_edges_exact(f.vi, &w, w.n);
    model_volume_free(&v);
    model_volume_free(&w);
    fixture_close(&f);
}

/* Many small schedules, long enough histories to pass several images;
 * empty commits, several segments, rewrites, offsets in many chunks. */
static void test_reads_like_model(void **state)
{
    (void)state;
    static const uint32_t ks[] = { 1, 2, 3, 5 };
    int i = 0;
    for (int a = 0; a < 4; a++)
        for (unsigned fan = 2; fan <= 3; fan++)
            for (unsigned lev = 1; lev <= 3; lev++, i++)
                if (!test_quick() || i % 5 == 0)
                    run_model_case((policy){ ks[a], fan, lev }, i);
}

/* ------------------------------------------------------------ 2. read cost */

static size_t entries_at(const model_volume *v, segidx_lsn lsn)
{
    return lsn >= 1 && lsn <= v->n ? v->commits[lsn - 1].n : 0;
}

static int count_chunk(segidx_offset o, void *ctx)
{
    uint32_t *last = ctx;
    if (last[1] == 0 || o >> 12 != last[0]) {
        last[0] = o >> 12;
        last[1]++;
    }
    return 0;
}

static uint32_t chunks_of(const segidx_offset_set *q)
{
    uint32_t st[2] = { 0, 0 }; /* the last chunk, chunks counted */
    segidx_offset_set_iterate(q, count_chunk, st);
    return st[1];
}

struct cost {
    long gets, scans, visited;
};

static struct cost cost_since(const stub_kv *s, struct cost before)
{
    return (struct cost){ s->gets - before.gets, s->scans - before.scans,
                          s->visited - before.visited };
}

/* One read, checked against the model and against its bound: the meta
 * twice; at most K - 1 commits walked; per chunk at most (F - 1)·L + 1
 * values (over more than 64 chunks: one scan per value of the cover,
 * visiting the chunks written); one scan per LSN resolved, of that
 * commit's entries. */
static struct cost measured_read(fixture *f, const model_volume *v, policy p, segidx_lsn lsn,
                                 const segidx_offset_set *asked)
{
    struct cost before = { f->stub->gets, f->stub->scans, f->stub->visited };
    found_list got;
    segidx_offset_set *left;
    assert_int_equal(find_into(f->vi, &v->vid, lsn, asked, &got, &left), SEGIDX_OK);
    struct cost c = cost_since(f->stub, before);
    assert_find_like_model(v, lsn, asked, &got, left);
    segidx_lsn at = lsn < v->n ? lsn : v->n;
    segidx_lsn round = 1 + (at - 1) / p.k * p.k; /* c0 = 1 */
    long walked = 0, resolved = 0, lsns = 0;
    for (segidx_lsn l = round + 1; l <= at; l++)
        walked += (long)entries_at(v, l);
    for (size_t i = 0; i < got.n; i++)
        if (got.f[i].lsn <= round && (i == 0 || got.f[i].lsn != got.f[i - 1].lsn)) {
            resolved += (long)entries_at(v, got.f[i].lsn);
            lsns++;
        }
    /* A query over more than 64 chunks reads each value of the cover by
     * one scan of its span instead: it visits at most the chunks written. */
    long cover = (long)((p.f - 1) * p.l + 1), written_chunks = SPREAD / 4096 + 3;
    bool scanning = chunks_of(asked) > 64;
    assert_true(walked <= (long)(p.k - 1) * MODEL_MAX_SEGS);
    assert_true(c.gets <= 2 + (long)(scanning ? 64 : chunks_of(asked)) * cover);
    assert_true(c.scans <= 1 + lsns + (scanning ? cover : 0));
    assert_true(c.visited <= walked + resolved + (scanning ? cover * written_chunks : 0));
    found_list_free(&got);
    segidx_offset_set_free(left);
    return c;
}

/* A read's store calls do not grow with the history: with 200 commits or
 * 2000, every read keeps to the same bound, and a page never written
 * costs the same few calls; without checkpoints its walk reads every
 * entry of the volume. */
static void test_read_cost_bounded(void **state)
{
    (void)state;
    const policy p = { 4, 3, 2 }; /* an image every 36 commits */
    /* Both 20 past a multiple of 36: the head at the same point of the
     * schedule. */
    const size_t sizes[2] = { 200, test_quick() ? 560 : 2000 };
    struct cost never_cost[2];
    long plain_walk[2];
    for (int s = 0; s < 2; s++) {
        fixture f;
        segidx_volume_index_options o = opts_of(p);
        fixture_open(&f, 2000, &o);
        model_volume v = { 0 };
        v.vid = random_vid(&f.rng);
        grow(f.vi, &f.rng, &v, sizes[s], false);
        for (int r = 0; r < 80; r++) {
            segidx_lsn lsn = r < 8 ? v.n - (segidx_lsn)r : 1 + rng_below(&f.rng, v.n);
            segidx_offset_set *q = gen_query(&f.rng, (unsigned)r);
            measured_read(&f, &v, p, r == 8 ? UINT64_MAX : lsn, q);
            segidx_offset_set_free(q);
        }
        segidx_offset_set *never = segidx_offset_set_new();
        segidx_offset_set_add(never, NEVER_CHUNK);
        never_cost[s] = measured_read(&f, &v, p, v.n, never);

        /* The same commits into a volume without checkpoints. */
        stub_kv *ps;
        segidx_volume_index *plain_vi;
        assert_int_equal(segidx_volume_index_open_with(stub_wrap(borrowed_kv(&f.raw), &ps),
                                                       &ckpt_off, &plain_vi),
                         SEGIDX_OK);
        segidx_vid plain = vid_fill(0x77);
        size_t entries = 0;
        for (size_t i = 0; i < v.n; i++) {
            assert_int_equal(commit_model(plain_vi, &plain, &v.commits[i], 0), SEGIDX_OK);
            entries += v.commits[i].n;
        }
        long before = ps->visited;
        segidx_offset_set *q = segidx_offset_set_copy(never);
        found_list got = { NULL, 0, 0, -1, 0 };
        assert_int_equal(segidx_volume_find_segments(plain_vi, &plain, v.n, q, collect_found, &got),
                         SEGIDX_OK);
        assert_int_equal(got.n, 0);
        plain_walk[s] = ps->visited - before;
        assert_int_equal(plain_walk[s], (long)entries);
        found_list_free(&got);
        segidx_offset_set_free(q);
        segidx_offset_set_free(never);
        segidx_volume_index_close(plain_vi);
        model_volume_free(&v);
        fixture_close(&f);
    }
    /* The head of both is 19 commits past an image round: the same walk,
     * the same two deltas and the image. */
    for (int s = 0; s < 2; s++) {
        assert_true(never_cost[s].visited <= (long)(p.k - 1) * MODEL_MAX_SEGS);
        assert_true(never_cost[s].gets <= 2 + (long)((p.f - 1) * p.l + 1));
        assert_true(never_cost[s].scans <= 1);
    }
    assert_int_equal(never_cost[0].gets, never_cost[1].gets);
    assert_true(plain_walk[1] > 2 * plain_walk[0]);
}

/* ------------------------------------------------------------ 3. prune */

static void prune_case(policy p, uint64_t seed, bool late_start)
{
    fixture f;
    fixture_open(&f, seed, &ckpt_off);
    model_volume v = { 0 };
    v.vid = random_vid(&f.rng);
    uint64_t period = p.k * image_every(p);
    size_t n = 5 * period + 3 < 60 ? 60 : 5 * period + 3;
    segidx_lsn c0 = late_start ? 2 + rng_below(&f.rng, 6) : 1;
    grow(f.vi, &f.rng, &v, c0 - 1, true);
    segidx_volume_index_options o = opts_of(p);
    fixture_reopen(&f, &o);
    grow(f.vi, &f.rng, &v, n - v.n, true);

    /* Prune points, rising: around c0, around each image round, some
     * at random, the head. */
    bool *point = calloc(n + 2, 1);
    assert_non_null(point);
    for (segidx_lsn at = c0 - 1; at <= c0 + 1; at++)
        point[at] = true;
    for (uint64_t r = 0; round_lsn(c0, p, r) <= n; r += image_every(p)) {
        segidx_lsn at = round_lsn(c0, p, r);
        point[at - 1] = point[at] = point[at + 1] = true;
    }
    for (int i = 0; i < 4; i++)
        point[1 + rng_below(&f.rng, n)] = true;
    point[n] = true;
    segidx_lsn keep = 0;
    for (segidx_lsn kf = 1; kf <= n; kf++) {
        if (!point[kf] || (test_quick() && kf % 3 && kf != n))
            continue;
        assert_int_equal(segidx_volume_prune(f.vi, &v.vid, kf), SEGIDX_OK);
        keep = kf;
        assert_meta(f.vi, &v.vid, n, kf);
        assert_checkpoints(f.raw, &v, c0, p, kf);
        unsigned kind = 0;
        for (segidx_lsn at = kf; at <= n + 1; at++)
            assert_find_random(f.vi, &v, at, &f.rng, kind++);
        assert_edges_exact(f.vi, &v, kf);
        if (kf > 1) {
            segidx_offset_set *q = gen_query(&f.rng, 0);
            assert_find_fails(f.vi, &v.vid, kf - 1, q, SEGIDX_ERANGE);
            assert_find_fails(f.vi, &v.vid, 1 + rng_below(&f.rng, kf - 1), q, SEGIDX_ERANGE);
            segidx_offset_set_free(q);
        }
    }
    /* Rounds after the prune build on what it kept: the next images read
     * the image it kept and the pruned entries. */
    grow(f.vi, &f.rng, &v, 2 * period + p.k, true);
    assert_checkpoints(f.raw, &v, c0, p, keep);
    for (segidx_lsn at = keep; at <= v.n + 1; at++)
        assert_find_random(f.vi, &v, at, &f.rng, (unsigned)at);
    free(point);
    model_volume_free(&v);
    fixture_close(&f);
}

static void test_prune(void **state)
{
    (void)state;
    static const policy ps[] = { { 2, 2, 2 }, { 3, 3, 1 }, { 1, 2, 3 }, { 5, 2, 1 } };
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
        prune_case(ps[i], 3000 + i, false);
        if (!test_quick())
            prune_case(ps[i], 3100 + i, true);
    }
}

/* ------------------------------------------------------------ 4. upgrade */

static void upgrade_case(bool pruned)
{
    fixture f;
    fixture_open(&f, pruned ? 4001 : 4000, &ckpt_off);
    model_volume v = { 0 };
    v.vid = random_vid(&f.rng);
    grow(f.vi, &f.rng, &v, 37, true);
    segidx_lsn keep = 0;
    if (pruned) {
        keep = 20;
        assert_int_equal(segidx_volume_prune(f.vi, &v.vid, keep), SEGIDX_OK);
    }
    assert_meta_bytes(f.raw, &v.vid, 0, (policy){ 0, 0, 0 });

    /* Reads through a handle with checkpoints change nothing. */
    const policy p1 = { 3, 2, 2 }, p2 = { 5, 3, 1 };
    segidx_volume_index_options o1 = opts_of(p1), o2 = opts_of(p2);
    fixture_reopen(&f, &o1);
    for (segidx_lsn at = keep ? keep : 1; at <= v.n + 1; at++)
        assert_find_random(f.vi, &v, at, &f.rng, (unsigned)at);
    assert_meta_bytes(f.raw, &v.vid, 0, p1);
    assert_checkpoints(f.raw, &v, 0, p1, 0);

    /* The first commit through it is round 0: meta version 2, an image
     * of the whole history. */
    grow(f.vi, &f.rng, &v, 1, true);
    const segidx_lsn c0 = 38;
    assert_meta_bytes(f.raw, &v.vid, c0, p1);
    assert_checkpoints(f.raw, &v, c0, p1, keep);
    grow(f.vi, &f.rng, &v, 30, true);
    assert_checkpoints(f.raw, &v, c0, p1, keep);

    /* Later writers follow the volume's schedule, whatever their own. */
    fixture_reopen(&f, &o2);
    grow(f.vi, &f.rng, &v, 25, true);
    fixture_reopen(&f, &ckpt_off);
    grow(f.vi, &f.rng, &v, 10, true);
    fixture_reopen(&f, NULL);
    grow(f.vi, &f.rng, &v, 6, true);
    assert_meta_bytes(f.raw, &v.vid, c0, p1);
    assert_checkpoints(f.raw, &v, c0, p1, keep);

    /* ... while a volume that a handle starts gets that handle's. */
    model_volume w = { 0 };
    w.vid = random_vid(&f.rng);
    fixture_reopen(&f, &o2);
    grow(f.vi, &f.rng, &w, 40, false);
    assert_meta_bytes(f.raw, &w.vid, 1, p2);
    assert_checkpoints(f.raw, &w, 1, p2, 0);

    /* Below c0 by the walk, from c0 on by checkpoints: all the model's. */
    unsigned kind = 0;
    for (segidx_lsn at = keep ? keep : 1; at <= v.n + 1; at++)
        assert_find_random(f.vi, &v, at, &f.rng, kind++);
    for (segidx_lsn at = c0 - 1; at <= c0 + 1; at++)
        assert_edges_exact(f.vi, &v, at);
    for (segidx_lsn at = 1; at <= w.n; at += 3)
        assert_find_random(f.vi, &w, at, &f.rng, kind++);
    if (keep) {
        segidx_offset_set *q = gen_query(&f.rng, 0);
        assert_find_fails(f.vi, &v.vid, keep - 1, q, SEGIDX_ERANGE);
        segidx_offset_set_free(q);
    }
    model_volume_free(&v);
    model_volume_free(&w);
    fixture_close(&f);
}

static void test_upgrade(void **state)
{
    (void)state;
    upgrade_case(false);
    upgrade_case(true);
}

/* ------------------------------------------------------------ templates
 *
 * A volume built once and dumped, so that every point of a race or of a
 * failure starts from the same store. The same seed gives the same
 * commits: a template of n + 1 commits holds the next commit of one of n.
 */
typedef struct template {
    dump d;
    model_volume v;
    segidx_lsn c0; /* 0: no checkpoints */
    policy p;
} template;

static void make_template(template *t, policy p, segidx_lsn c0, size_t n, uint64_t seed)
{
    fixture f;
    fixture_open(&f, seed, &ckpt_off);
    t->v = (model_volume){ 0 };
    t->v.vid = random_vid(&f.rng);
    t->c0 = c0;
    t->p = p;
    grow(f.vi, &f.rng, &t->v, c0 ? c0 - 1 : n, false);
    if (c0) {
        segidx_volume_index_options o = opts_of(p);
        fixture_reopen(&f, &o);
        grow(f.vi, &f.rng, &t->v, n - t->v.n, false);
    }
    t->d = dump_store(f.raw);
    fixture_close(&f);
}

static void template_free(template *t)
{
    free(t->d.p);
    model_volume_free(&t->v);
}

/* A query for the race and failure tests: two whole chunks (every value
 * of them is read), the edges, a page never written. */
static segidx_offset_set *two_chunks(void)
{
    segidx_offset_set *q = segidx_offset_set_new();
    segidx_offset_set_add_range(q, 0, 2 * CHUNK_OFFSETS);
    add_edges(q);
    segidx_offset_set_add(q, NEVER_NEAR);
    return q;
}

/* ------------------------------------------------------------ 5. races */

enum { OTHER_COMMIT, OTHER_PRUNE, OTHER_COMMITS_PRUNE };

typedef struct other_op {
    fixture *f;
    int kind;
    const segidx_vid *vid;
    const model_commit *c; /* the commits to make: c[0..nc) */
    size_t nc;
    segidx_lsn keep_from;
    int rc;
    bool ran;
} other_op;

/* Another host's handle over the same store, with options of its own: it
 * follows the volume's stored schedule. */
static void other_run(void *ctx)
{
    other_op *op = ctx;
    const segidx_volume_index_options o = { 7, 5, 1 };
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&op->f->raw), &o, &vi), SEGIDX_OK);
    int rc = SEGIDX_OK;
    for (size_t i = 0; op->kind != OTHER_PRUNE && i < op->nc && !rc; i++)
        rc = commit_model(vi, op->vid, &op->c[i], 77);
    if (!rc && op->kind != OTHER_COMMIT)
        rc = segidx_volume_prune(vi, op->vid, op->keep_from);
    op->rc = rc;
    op->ran = true;
    segidx_volume_index_close(vi);
}

/* Stride over the calls of the operation under test (every one, unless
 * SEGIDX_TEST_QUICK). */
static long race_step(void)
{
    return test_quick() ? 3 : 1;
}

/* 5a. A read with checkpoints, a prune from another handle before each of
 * its store calls: exact, or SEGIDX_ERANGE when the prune point passed the
 * read's LSN; never a wrong answer. */
static void test_race_prune_under_read(void **state)
{
    (void)state;
    const policy p = { 2, 2, 3 }; /* images at LSN 1, 17, 33, 49, 65 */
    template t, t2;
    make_template(&t, p, 1, 52, 5000);
    make_template(&t2, p, 1, 68, 5000); /* the same 52, and 16 more */
    segidx_volume_index_options o = opts_of(p);
    const segidx_lsn reads[] = { 33, 34, 47, 48, 52, UINT64_MAX };
    for (size_t r = 0; r < sizeof reads / sizeof *reads; r++) {
        segidx_lsn lsn = reads[r];
        segidx_lsn keeps[5] = { 0 };
        size_t nk = 0;
        if (lsn <= 52) {
            keeps[nk++] = lsn - 1;
            keeps[nk++] = lsn;
            if (lsn < 52)
                keeps[nk++] = lsn + 1;
            if (lsn + 1 < 49)
                keeps[nk++] = 49; /* drops the image the read stands on */
        } else {
            keeps[nk++] = 33;
            keeps[nk++] = 52;
        }
        for (size_t k = 0; k < nk; k++)
            for (long at = 1;; at += race_step()) {
                fixture f;
                fixture_restore(&f, &t.d, &o);
                other_op op = { &f, OTHER_PRUNE, &t.v.vid, NULL, 0, keeps[k], 0, false };
                segidx_offset_set *asked = two_chunks();
                found_list got;
                segidx_offset_set *left;
                stub_hook(f.stub, at, other_run, &op);
                int rc = find_into(f.vi, &t.v.vid, lsn, asked, &got, &left);
                stub_hook(f.stub, 0, NULL, NULL);
                if (op.ran)
                    assert_int_equal(op.rc, SEGIDX_OK);
                if (op.ran && keeps[k] > lsn) {
                    assert_int_equal(rc, SEGIDX_ERANGE);
                    assert_int_equal(got.n, 0);
                    assert_true(segidx_offset_set_equals(left, asked));
                } else {
                    assert_int_equal(rc, SEGIDX_OK);
                    assert_find_like_model(&t.v, lsn, asked, &got, left);
                }
                if (at == 1) { /* the prune itself kept what it must */
                    assert_checkpoints(f.raw, &t.v, 1, p, keeps[k]);
                    for (segidx_lsn l = keeps[k]; l <= 53; l += 3)
                        assert_find_exact(f.vi, &t.v, l, asked);
                }
                bool ran = op.ran;
                found_list_free(&got);
                segidx_offset_set_free(left);
                segidx_offset_set_free(asked);
                fixture_close(&f);
                if (!ran)
                    break;
            }
    }
    /* Above the head: commits past the next image round and a prune to it
     * land during the read (the image the read stood on is dropped). It
     * answers as of the head its first meta named, or walks again from the
     * newer one; the prune point never passes its LSN. */
    for (long at = 1;; at += race_step()) {
        fixture f;
        fixture_restore(&f, &t.d, &o);
        other_op op = { &f, OTHER_COMMITS_PRUNE, &t.v.vid, &t2.v.commits[52], 16, 65, 0, false };
        segidx_offset_set *asked = two_chunks();
        found_list got;
        segidx_offset_set *left;
        stub_hook(f.stub, at, other_run, &op);
        int rc = find_into(f.vi, &t.v.vid, UINT64_MAX, asked, &got, &left);
        stub_hook(f.stub, 0, NULL, NULL);
        assert_int_equal(rc, SEGIDX_OK);
        if (op.ran)
            assert_int_equal(op.rc, SEGIDX_OK);
        assert_find_like_model(op.ran ? &t2.v : &t.v, UINT64_MAX, asked, &got, left);
        bool ran = op.ran;
        found_list_free(&got);
        segidx_offset_set_free(left);
        segidx_offset_set_free(asked);
        fixture_close(&f);
        if (!ran)
            break;
    }
    template_free(&t);
    template_free(&t2);
}

/* 5b. A read raced by another handle's commit that closes a round (a
 * delta of every level, or an image): exact, as of the read's LSN, or for
 * a read above the head, as of the head its first meta read named. */
static void test_race_round_commit_under_read(void **state)
{
    (void)state;
    const policy p = { 2, 2, 3 };
    segidx_volume_index_options o = opts_of(p);
    /* 41 closes round 20 (deltas of levels 1..3), 49 round 24 (an image). */
    static const size_t heads[] = { 40, 48 };
    for (size_t h = 0; h < 2; h++) {
        size_t n = heads[h];
        template t, t2;
        make_template(&t, p, 1, n, 5100 + h);
        make_template(&t2, p, 1, n + 1, 5100 + h);
        const segidx_lsn reads[] = { n, n - 1, image_at_or_below(1, p, n), UINT64_MAX };
        for (size_t r = 0; r < 4; r++)
            for (long at = 1;; at += race_step()) {
                fixture f;
                fixture_restore(&f, &t.d, &o);
                other_op op = { &f, OTHER_COMMIT, &t.v.vid, &t2.v.commits[n], 1, 0, 0, false };
                segidx_offset_set *asked = two_chunks();
                found_list got;
                segidx_offset_set *left;
                stub_hook(f.stub, at, other_run, &op);
                int rc = find_into(f.vi, &t.v.vid, reads[r], asked, &got, &left);
                stub_hook(f.stub, 0, NULL, NULL);
                assert_int_equal(rc, SEGIDX_OK);
                bool ran = op.ran;
                if (!ran)
                    other_run(&op);
                assert_int_equal(op.rc, SEGIDX_OK);
                bool newer = reads[r] == UINT64_MAX && ran && at == 1;
                assert_find_like_model(newer ? &t2.v : &t.v, reads[r], asked, &got, left);
                if (!ran) { /* the commit's checkpoints, and reads after it */
                    assert_checkpoints(f.raw, &t2.v, 1, p, 0);
                    for (segidx_lsn l = n - 2; l <= n + 2; l++)
                        assert_find_exact(f.vi, &t2.v, l, asked);
                }
                found_list_free(&got);
                segidx_offset_set_free(left);
                segidx_offset_set_free(asked);
                fixture_close(&f);
                if (!ran)
                    break;
            }
        template_free(&t);
        template_free(&t2);
    }
}

/* Reads at every LSN from `from` up to past the head are the model's. */
static void assert_all_reads(segidx_volume_index *vi, const model_volume *v, segidx_lsn from)
{
    segidx_offset_set *q = two_chunks();
    segidx_offset_set_add_range(q, 2 * CHUNK_OFFSETS, SPREAD + 1);
    for (segidx_lsn l = from ? from : 1; l <= v->n + 1; l++)
        assert_find_exact(vi, v, l, q);
    segidx_offset_set_free(q);
}

/* 5c. A commit that closes a round, and one that closes an image round,
 * raced before each of their store calls by another handle's commit of
 * the same LSN (one wins, the other is SEGIDX_ECONFLICT, reads return the
 * winner's) or by its prune (the commit tries again and lands). */
static void test_race_round_commit_under_writers(void **state)
{
    (void)state;
    const policy p = { 2, 2, 3 };
    segidx_volume_index_options o = opts_of(p);
    static const size_t heads[] = { 40, 48 };
    for (size_t h = 0; h < 2; h++) {
        size_t n = heads[h];
        template t, t2;
        make_template(&t, p, 1, n, 5200 + h);
        make_template(&t2, p, 1, n + 1, 5200 + h);
        const model_commit *mine = &t2.v.commits[n];
        model_commit theirs = { n + 1, { { { { 0 } }, segidx_offset_set_new() } }, 1 };
        memset(theirs.segs[0].sid.bytes, 0xEE, 16); /* a sid of its own: the winner shows */
        segidx_offset_set_add_range(theirs.segs[0].offsets, 3, 9);
        segidx_offset_set_add(theirs.segs[0].offsets, 4097);
        segidx_offset_set_add(theirs.segs[0].offsets, 1u << 31);
        for (long at = 1;; at += race_step()) {
            fixture f;
            fixture_restore(&f, &t.d, &o);
            other_op op = { &f, OTHER_COMMIT, &t.v.vid, &theirs, 1, 0, 0, false };
            stub_hook(f.stub, at, other_run, &op);
            int rc = commit_model(f.vi, &t.v.vid, mine, 5);
            stub_hook(f.stub, 0, NULL, NULL);
            bool ran = op.ran;
            if (!ran)
                other_run(&op);
            assert_true((rc == SEGIDX_OK) != (op.rc == SEGIDX_OK));
            assert_int_equal(rc == SEGIDX_OK ? op.rc : rc, SEGIDX_ECONFLICT);
            assert_int_equal(rc == SEGIDX_OK, !ran);
            model_volume won = model_view(&t.v, n, rc == SEGIDX_OK ? mine : &theirs);
            assert_meta(f.vi, &t.v.vid, n + 1, 0);
            assert_checkpoints(f.raw, &won, 1, p, 0);
            if (at == 1 || !ran)
                assert_all_reads(f.vi, &won, 1);
            else
                for (segidx_lsn l = n - 3; l <= n + 2; l++)
                    assert_edges_exact(f.vi, &won, l);
            free(won.commits);
            fixture_close(&f);
            if (!ran)
                break;
        }
        const segidx_lsn keeps[] = { n, n - 5, image_at_or_below(1, p, n) };
        for (size_t k = 0; k < 3; k++)
            for (long at = 1;; at += race_step()) {
                fixture f;
                fixture_restore(&f, &t.d, &o);
                other_op op = { &f, OTHER_PRUNE, &t.v.vid, NULL, 0, keeps[k], 0, false };
                stub_hook(f.stub, at, other_run, &op);
                int rc = commit_model(f.vi, &t.v.vid, mine, 5);
                stub_hook(f.stub, 0, NULL, NULL);
                assert_int_equal(rc, SEGIDX_OK);
                bool ran = op.ran;
                if (!ran)
                    other_run(&op);
                assert_int_equal(op.rc, SEGIDX_OK);
                assert_meta(f.vi, &t.v.vid, n + 1, keeps[k]);
                assert_checkpoints(f.raw, &t2.v, 1, p, keeps[k]);
                assert_all_reads(f.vi, &t2.v, keeps[k]);
                segidx_offset_set *q = two_chunks();
                assert_find_fails(f.vi, &t.v.vid, keeps[k] - 1, q, SEGIDX_ERANGE);
                segidx_offset_set_free(q);
                fixture_close(&f);
                if (!ran)
                    break;
            }
        free_commit(&theirs);
        template_free(&t);
        template_free(&t2);
    }
}

/* ------------------------------------------------------------ 6. a failing store */

static long *fail_counter(stub_kv *s, int method)
{
    return method == 0 ? &s->fail_get_at : method == 1 ? &s->fail_scan_at : &s->fail_write_at;
}

/* A commit that closes a round (deltas up to level 3), one that closes an
 * image round, and a volume's first checkpoint (round 0 of a volume
 * written without them): with the store's n-th get, scan or write failing,
 * for every n, the commit fails with it and the store is as it was; reads
 * stay exact. Then a read with checkpoints the same way. */
static void test_failing_store(void **state)
{
    (void)state;
    const policy p = { 2, 2, 3 };
    segidx_volume_index_options o = opts_of(p);
    struct {
        size_t n;
        segidx_lsn c0;
    } cases[] = { { 40, 1 }, { 48, 1 }, { 30, 0 } };
    for (size_t c = 0; c < 3; c++) {
        size_t n = cases[c].n;
        template t, t2;
        make_template(&t, p, cases[c].c0, n, 6000 + c);
        make_template(&t2, p, cases[c].c0, n + 1, 6000 + c);
        segidx_lsn c0 = cases[c].c0 ? cases[c].c0 : n + 1; /* after the commit */
        for (int method = 0; method < 3; method++) {
            fixture f;
            fixture_restore(&f, &t.d, &o);
            for (long at = 1;; at++) {
                dump before = dump_store(f.raw);
                long *fail = fail_counter(f.stub, method);
                *fail = at;
                int rc = commit_model(f.vi, &t.v.vid, &t2.v.commits[n], 5);
                bool failed = *fail == 0;
                *fail = 0;
                if (failed) {
                    assert_int_equal(rc, SEGIDX_EIO);
                    dump after = dump_store(f.raw);
                    assert_dumps_equal(&before, &after);
                    free(after.p);
                    free(before.p);
                    segidx_offset_set *q = two_chunks();
                    assert_find_exact(f.vi, &t.v, n, q);
                    assert_find_exact(f.vi, &t.v, n - 1, q);
                    assert_find_exact(f.vi, &t.v, UINT64_MAX, q);
                    segidx_offset_set_free(q);
                    continue;
                }
                free(before.p);
                assert_int_equal(rc, SEGIDX_OK);
                assert_true(at > 1);
                assert_meta_bytes(f.raw, &t.v.vid, c0, p);
                assert_checkpoints(f.raw, &t2.v, c0, p, 0);
                assert_all_reads(f.vi, &t2.v, n - 4);
                break;
            }
            fixture_close(&f);
        }
        template_free(&t);
        template_free(&t2);
    }

    /* A read that walks, reads three deltas and an image per chunk, and
     * resolves: every get or scan of it failing in turn. */
    template t;
    make_template(&t, p, 1, 48, 6100);
    fixture f;
    fixture_restore(&f, &t.d, &o);
    static const segidx_lsn reads[] = { 47, 48 };
    for (int r = 0; r < 2; r++)
        for (int method = 0; method < 2; method++)
            for (long at = 1;; at++) {
                segidx_offset_set *asked = two_chunks();
                found_list got;
                segidx_offset_set *left;
                long *fail = fail_counter(f.stub, method);
                *fail = at;
                int rc = find_into(f.vi, &t.v.vid, reads[r], asked, &got, &left);
                bool failed = *fail == 0;
                *fail = 0;
                if (failed) {
                    assert_int_equal(rc, SEGIDX_EIO);
                    assert_int_equal(got.n, 0);
                    assert_true(segidx_offset_set_equals(left, asked));
                } else {
                    assert_int_equal(rc, SEGIDX_OK);
                    assert_find_like_model(&t.v, reads[r], asked, &got, left);
                }
                found_list_free(&got);
                segidx_offset_set_free(left);
                segidx_offset_set_free(asked);
                if (!failed)
                    break;
            }
    fixture_close(&f);
    template_free(&t);
}

/* ------------------------------------------------------------ 7. corrupt values
 *
 * A fixed history with schedule K = 2, F = 2, L = 2 (images at LSN 1, 9,
 * 17, 25): a read at 23 consults the level-1 delta at 23, the level-2
 * delta at 21 and the image at 17; the commit of 25 (an image round)
 * reads all three. Chunk 0 and 1 get a few offsets from every commit,
 * chunk 2 a run of 300 at LSN 3 (a bitmap in the images), chunk 3 one at
 * LSN 22 (a bitmap in the delta at 23). Commits 5 and 12 are empty.
 */
static void fixed_commit(model_commit *c, segidx_lsn lsn)
{
    memset(c, 0, sizeof *c);
    c->lsn = lsn;
    if (lsn == 5 || lsn == 12)
        return;
    c->n = 1;
    c->segs[0].sid.bytes[15] = 1;
    segidx_offset_set *a = c->segs[0].offsets = segidx_offset_set_new();
    segidx_offset_set_add(a, (uint32_t)(lsn * 13 % 4096));
    segidx_offset_set_add(a, (uint32_t)(100 + lsn));
    segidx_offset_set_add(a, (uint32_t)(4096 + lsn * 29 % 4096));
    if (lsn == 7) {
        segidx_offset_set_add(a, 1u << 31);
        segidx_offset_set_add(a, UINT32_MAX);
    }
    if (lsn % 2 == 0 || lsn == 3 || lsn == 22) {
        c->n = 2;
        c->segs[1].sid.bytes[15] = 2;
        segidx_offset_set *b = c->segs[1].offsets = segidx_offset_set_new();
        if (lsn % 2 == 0) {
            segidx_offset_set_add(b, 5);
            segidx_offset_set_add(b, 4096 + 5);
        }
        if (lsn == 3)
            segidx_offset_set_add_range(b, 2 * 4096, 2 * 4096 + 300);
        if (lsn == 22)
            segidx_offset_set_add_range(b, 3 * 4096 + 100, 3 * 4096 + 400);
    }
}

/* The LSN the model answers `off` with at `lsn` (0: never written). */
static segidx_lsn model_answer(const model_volume *v, segidx_lsn lsn, uint32_t off)
{
    for (segidx_lsn l = lsn < v->n ? lsn : v->n; l >= 1; l--)
        if (commit_holds(&v->commits[l - 1], off))
            return l;
    return 0;
}

enum damage {
    D_VERSION,        /* version 2, checksum as it was: EVERSION */
    D_VERSION_SEALED, /* version 2, checksum recomputed: EVERSION */
    D_MAGIC,
    D_LEVEL,          /* the header's level is not the key's */
    D_ROUND,          /* ... its round */
    D_CHUNK,          /* ... its chunk */
    D_ENCODING,       /* list and bitmap swapped */
    D_COUNT_UP,       /* count one more than the bytes hold */
    D_COUNT_DOWN,
    D_WIDTH,          /* 65 bits per LSN */
    D_RESERVED,
    D_TRAILING,       /* one byte more before the checksum */
    D_SHORT,          /* one LSN byte less */
    D_LIST_SWAP,      /* two offsets out of order */
    D_LIST_REPEAT,    /* an offset twice */
    D_LIST_RANGE,     /* an offset of 4096 */
    D_BITMAP_MORE,    /* one bit more than count */
    D_BITMAP_LESS,
    D_PADDING,        /* an unused bit of the last LSN byte set */
    D_LSN_RANGE,      /* an LSN the value's level may not name */
    D_LSN_NOT_HELD,   /* an LSN in range whose commit does not hold the offset */
    D_LSN_EMPTY,      /* an LSN in range of an empty commit */
    D_CHECKSUM,       /* a checksum byte flipped */
    D_EMPTY,          /* no bytes */
    DAMAGES
};

struct target {
    segidx_lsn round;
    unsigned level;
    uint32_t chunk;
};

/* The value's versions, and the position of one the read at `lsn` takes
 * from it (-1: none). */
static int taken_position(const model_volume *v, const ck_value *cv, segidx_lsn lsn)
{
    for (size_t i = 0; i < cv->n; i++)
        if (model_answer(v, lsn, cv->v[i].off) == cv->v[i].lsn)
            return (int)i;
    return -1;
}

/* Write `cv` with its versions' LSN fields, one of them replaced. */
static size_t encode_with(uint8_t *out, const ck_value *cv, int pos, uint64_t back)
{
    uint16_t *low = malloc(cv->n * sizeof *low);
    uint64_t *backs = malloc(cv->n * sizeof *backs);
    assert_true(low && backs);
    for (size_t i = 0; i < cv->n; i++) {
        low[i] = (uint16_t)(cv->v[i].off & 4095);
        backs[i] = cv->round - cv->v[i].lsn;
    }
    if (pos >= 0)
        backs[pos] = back;
    size_t len = ck_encode(out, cv->level, cv->round, cv->chunk, low, backs, (unsigned)cv->n);
    free(low);
    free(backs);
    return len;
}

/* The damaged bytes of a value, or 0 when the damage does not apply to
 * it; *want: the read's error. */
static size_t damage(enum damage d, const uint8_t *orig, size_t len, const ck_value *cv,
                     const model_volume *v, segidx_lsn read, policy p, uint8_t *out, int *want)
{
    memcpy(out, orig, len);
    *want = SEGIDX_ECORRUPT;
    bool bitmap = orig[7] == 1;
    unsigned count = segidx__load16(orig + 20) + 1u, w = orig[22];
    segidx_lsn min_lsn = cv->level == 0 ? 1 : cv->round - p.k * ipow(p.f, cv->level - 1) + 1;
    int pos = taken_position(v, cv, read);
    switch (d) {
    case D_VERSION:
        out[4] = 2;
        *want = SEGIDX_EVERSION;
        return len;
    case D_VERSION_SEALED:
        out[4] = 2;
        *want = SEGIDX_EVERSION;
        break;
    case D_MAGIC: out[1] = 'Y'; break;
    case D_LEVEL: out[6] = (uint8_t)(cv->level + 1); break;
    case D_ROUND: segidx__store64(out + 8, cv->round + 2); break;
    case D_CHUNK: segidx__store32(out + 16, cv->chunk + 1); break;
    case D_ENCODING: out[7] ^= 1; break;
    case D_COUNT_UP: segidx__store16(out + 20, (uint16_t)count); break;
    case D_COUNT_DOWN:
        if (count < 2)
            return 0;
        segidx__store16(out + 20, (uint16_t)(count - 2));
        break;
    case D_WIDTH: out[22] = 65; break;
    case D_RESERVED: out[23] = 1; break;
    case D_TRAILING:
        out[len - 8] = 0; /* the checksum follows it */
        len++;
        break;
    case D_SHORT:
        if (((size_t)count * w + 7) / 8 == 0)
            return 0;
        memmove(out + len - 9, out + len - 8, 8);
        len--;
        break;
    case D_LIST_SWAP:
        if (bitmap || count < 2)
            return 0;
        memcpy(out + 24, orig + 26, 2);
        memcpy(out + 26, orig + 24, 2);
        break;
    case D_LIST_REPEAT:
        if (bitmap || count < 2)
            return 0;
        memcpy(out + 26, orig + 24, 2);
        break;
    case D_LIST_RANGE:
        if (bitmap)
            return 0;
        segidx__store16(out + 24 + 2 * (count - 1), 4096);
        break;
    case D_BITMAP_MORE:
    case D_BITMAP_LESS: {
        if (!bitmap)
            return 0;
        unsigned b = 0;
        while (((orig[24 + b / 8] >> (b % 8)) & 1) != (d == D_BITMAP_LESS))
            b++;
        out[24 + b / 8] ^= (uint8_t)(1u << (b % 8));
        break;
    }
    case D_PADDING:
        if ((size_t)count * w % 8 == 0)
            return 0;
        out[len - 9] |= 0x80;
        break;
    case D_LSN_RANGE:
        assert_true(pos >= 0);
        return encode_with(out, cv, pos, cv->round - min_lsn + 1);
    case D_LSN_NOT_HELD:
    case D_LSN_EMPTY: {
        assert_true(pos >= 0);
        for (segidx_lsn l = cv->round; l >= min_lsn; l--) {
            const model_commit *c = &v->commits[l - 1];
            if (l != cv->v[pos].lsn && (d == D_LSN_EMPTY ? c->n == 0
                                                         : c->n > 0 && !commit_holds(c, cv->v[pos].off)))
                return encode_with(out, cv, pos, cv->round - l);
        }
        return 0;
    }
    case D_CHECKSUM:
        out[len - 3] ^= 0x40;
        return len;
    case D_EMPTY: return SIZE_MAX; /* planted as no bytes */
    default: fail();
    }
    reseal(out, len);
    return len;
}

static void fixed_volume(fixture *f, model_volume *v, policy p, size_t n)
{
    segidx_volume_index_options o = opts_of(p);
    fixture_open(f, 7000, &o);
    *v = (model_volume){ 0 };
    v->vid = vid_fill(0x5A);
    for (segidx_lsn lsn = 1; lsn <= n; lsn++) {
        model_commit c;
        fixed_commit(&c, lsn);
        assert_int_equal(commit_model(f->vi, &v->vid, &c, 0), SEGIDX_OK);
        model_append(v, &c);
    }
}

/* A planted value the read consults: SEGIDX_ECORRUPT (or EVERSION), no
 * visit, the query as it was; the next image round's commit refuses it
 * too (unless only a read can tell) and writes nothing. */
static void test_corrupt_values(void **state)
{
    (void)state;
    const policy p = { 2, 2, 2 };
    fixture f;
    model_volume v;
    fixed_volume(&f, &v, p, 24);
    model_commit next;
    fixed_commit(&next, 25);
    const struct target targets[] = {
        { 17, 0, 0 }, { 21, 2, 0 }, { 23, 1, 0 }, /* lists */
        { 17, 0, 2 }, { 23, 1, 3 },               /* bitmaps */
    };
    segidx_offset_set *asked = segidx_offset_set_new();
    segidx_offset_set_add_range(asked, 0, 4 * CHUNK_OFFSETS);
    add_edges(asked);
    add_nevers(asked);
    uint8_t *bad = malloc(MAP_MAX);
    assert_non_null(bad);
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
        uint8_t key[CK_KEY_LEN];
        ck_key(key, &v.vid, targets[t].round, targets[t].level, targets[t].chunk);
        struct raw_value orig;
        raw_get(f.raw, key, sizeof key, &orig);
        assert_int_equal(orig.val[7], targets[t].chunk >= 2);
        ck_value cv;
        assert_true(ck_decode(orig.val, orig.vlen, &cv));
        /* This file's encoder writes what the library writes. */
        assert_int_equal(encode_with(bad, &cv, -1, 0), orig.vlen);
        assert_memory_equal(bad, orig.val, orig.vlen);
        for (int d = 0; d < DAMAGES; d++) {
            int want;
            size_t len = damage((enum damage)d, orig.val, orig.vlen, &cv, &v, 24, p, bad, &want);
            if (len == 0)
                continue;
            raw_put(f.raw, key, sizeof key, bad, len == SIZE_MAX ? 0 : len);
            assert_find_fails(f.vi, &v.vid, 23, asked, want);
            assert_find_fails(f.vi, &v.vid, 24, asked, want);
            if (d != D_LSN_NOT_HELD && d != D_LSN_EMPTY) {
                dump before = dump_store(f.raw);
                assert_int_equal(commit_model(f.vi, &v.vid, &next, 0), want);
                dump after = dump_store(f.raw);
                assert_dumps_equal(&before, &after);
                free(before.p);
                free(after.p);
            }
            raw_put(f.raw, key, sizeof key, orig.val, orig.vlen);
            assert_find_exact(f.vi, &v, 23, asked);
        }
        /* Every byte flipped, one at a time. */
        for (size_t i = 0; i < orig.vlen; i += test_quick() ? 7 : 1) {
            memcpy(bad, orig.val, orig.vlen);
            bad[i] ^= 0x01;
            raw_put(f.raw, key, sizeof key, bad, orig.vlen);
            assert_find_fails(f.vi, &v.vid, 23, asked,
                              i == 4 || i == 5 ? SEGIDX_EVERSION : SEGIDX_ECORRUPT);
        }
        raw_put(f.raw, key, sizeof key, orig.val, orig.vlen);
        free(cv.v);
    }
    /* Nothing stayed broken: the image round lands, and reads agree. */
    assert_int_equal(commit_model(f.vi, &v.vid, &next, 0), SEGIDX_OK);
    model_append(&v, &next);
    assert_checkpoints(f.raw, &v, 1, p, 0);
    for (segidx_lsn l = 1; l <= v.n + 1; l++)
        assert_find_exact(f.vi, &v, l, asked);
    free(bad);
    segidx_offset_set_free(asked);
    model_volume_free(&v);
    fixture_close(&f);
}

/* ------------------------------------------------------------ 9. a query of every offset */

/* A query of every u32 over a volume whose pages lie in 0..SPREAD: the
 * part above the volume's last offset holds nothing and costs nothing.
 * Without checkpoints the walk answers it with a few cuts of the set; with
 * them the read must answer it too, for the chunks the volume's offsets
 * span, and take no memory per offset asked. */
static void test_query_of_every_offset(void **state)
{
    (void)state;
    const policy p = { 2, 2, 2 };
    const segidx_volume_index_options on = opts_of(p);
    for (int ck = 0; ck < 2; ck++) {
        fixture f;
        fixture_open(&f, 9000, ck ? &on : &ckpt_off);
        model_volume v = { 0 };
        v.vid = random_vid(&f.rng);
        for (segidx_lsn lsn = 1; lsn <= 40; lsn++) {
            model_commit c = { lsn, { { { { 0 } }, segidx_offset_set_new() } }, 1 };
            c.segs[0].sid.bytes[0] = (uint8_t)(1 + lsn % 5);
            for (int k = 0; k < 20; k++)
                segidx_offset_set_add(c.segs[0].offsets, (uint32_t)rng_below(&f.rng, SPREAD + 1));
            assert_int_equal(commit_model(f.vi, &v.vid, &c, 0), SEGIDX_OK);
            model_append(&v, &c);
        }
        segidx_offset_set *every = segidx_offset_set_new();
        segidx_offset_set_add_range(every, 0, UINT32_MAX);
        segidx_offset_set_add(every, UINT32_MAX);
        largest_refused = 0;
        int first_rc = SEGIDX_OK;
        for (segidx_lsn lsn = 1; lsn <= v.n + 1; lsn += 3) {
            found_list got;
            segidx_offset_set *left;
            int rc = find_into(f.vi, &v.vid, lsn, every, &got, &left);
            if (rc == SEGIDX_OK) {
                assert_find_like_model(&v, lsn, every, &got, left);
            } else { /* an error, as the API allows: nothing called, query kept */
                assert_int_equal(got.n, 0);
                assert_true(segidx_offset_set_equals(left, every));
                if (first_rc == SEGIDX_OK)
                    print_error("checkpoints %s, read at %llu over every offset: %s; largest "
                                "allocation refused: %zu bytes\n",
                                ck ? "on" : "off", (unsigned long long)lsn,
                                segidx_strerror(rc), largest_refused);
                first_rc = first_rc ? first_rc : rc;
            }
            found_list_free(&got);
            segidx_offset_set_free(left);
        }
        size_t refused = largest_refused;
        segidx_offset_set_free(every);
        model_volume_free(&v);
        fixture_close(&f);
        assert_int_equal(first_rc, SEGIDX_OK);
        assert_int_equal(refused, 0);
    }
}

/* ------------------------------------------------------------ 8. options */

static void test_options(void **state)
{
    (void)state;
    const segidx_volume_index_options bad[] = {
        { 0, 1, 0 },  { 0, 65, 0 }, { 0, 0, 7 }, { (1u << 24) + 1, 0, 0 },
        { UINT32_MAX - 1, 0, 0 },   { 4, 1, 2 }, { 4, 2, 7 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        segidx_kv kv;
        assert_int_equal(open_test_store(&kv), SEGIDX_OK);
        segidx_volume_index *vi = NULL;
        assert_int_equal(segidx_volume_index_open_with(kv, &bad[i], &vi), SEGIDX_EINVAL);
        assert_null(vi); /* set only on success */
        kv.vt->close(kv.self); /* still the caller's */
    }
    /* The edges of each range open; NULL and zeros are the defaults. */
    struct {
        const segidx_volume_index_options *o;
        policy want;
    } good[] = {
        { NULL, { 16, 4, 4 } },
        { &(segidx_volume_index_options){ 0, 0, 0 }, { 16, 4, 4 } },
        { &(segidx_volume_index_options){ 1u << 24, 64, 6 }, { 1u << 24, 64, 6 } },
        { &(segidx_volume_index_options){ 1, 2, 1 }, { 1, 2, 1 } },
        { &ckpt_off, { 0, 0, 0 } },
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        fixture f;
        fixture_open(&f, 8000 + i, good[i].o);
        model_volume v = { 0 };
        v.vid = random_vid(&f.rng);
        grow(f.vi, &f.rng, &v, 3, true);
        assert_meta_bytes(f.raw, &v.vid, good[i].want.k ? 1 : 0, good[i].want);
        assert_checkpoints(f.raw, &v, good[i].want.k ? 1 : 0, good[i].want, 0);
        for (segidx_lsn l = 0; l <= 4; l++)
            assert_edges_exact(f.vi, &v, l);
        model_volume_free(&v);
        fixture_close(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_like_model),
        cmocka_unit_test(test_read_cost_bounded),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_race_prune_under_read),
        cmocka_unit_test(test_race_round_commit_under_read),
        cmocka_unit_test(test_race_round_commit_under_writers),
        cmocka_unit_test(test_failing_store),
        cmocka_unit_test(test_corrupt_values),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_query_of_every_offset),
    };
#ifdef CHECKPOINT_OVER_LMDB
    return cmocka_run_group_tests_name("checkpoints over lmdb", tests, NULL, NULL);
#else
    return cmocka_run_group_tests_name("checkpoints over mem", tests, NULL, NULL);
#endif
}
