/* A small world for compaction tests: volumes committing pages through a
 * packer into segments kept in memory, a volume index over a stub-wrapped
 * store, and a brute-force model of every page version, against which
 * every read at every retained LSN is checked. */
#ifndef SEGIDX_COMPACTTEST_H
#define SEGIDX_COMPACTTEST_H

#include "vitest.h"

#include <pthread.h>

#define CW_PAGE 512
#define CW_OFFSETS 40  /* offsets 0..CW_OFFSETS-1 */
#define CW_VOLUMES 3
#define CW_MAX_LSN 400

/* ------------------------------------------------------------ segments */

typedef struct cw_segment {
    segidx_sid sid;
    uint8_t *buf;
    size_t len;
} cw_segment;

/* Segments by sid, shared by every thread of a test. */
typedef struct cw_store {
    pthread_mutex_t lock;
    cw_segment *s;
    size_t n, cap;
    uint64_t next_sid;
} cw_store;

static inline segidx_sid cw_sid(uint64_t n)
{
    segidx_sid sid = { { 0 } };
    sid.bytes[0] = 0x5e;
    for (int i = 0; i < 8; i++)
        sid.bytes[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    return sid;
}

static int cw_next_sid(void *ctx, segidx_sid *sid)
{
    cw_store *st = ctx;
    pthread_mutex_lock(&st->lock);
    *sid = cw_sid(++st->next_sid);
    pthread_mutex_unlock(&st->lock);
    return 0;
}

static void cw_store_add(cw_store *st, const segidx_sid *sid, const void *buf, size_t len)
{
    pthread_mutex_lock(&st->lock);
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 64;
        st->s = realloc(st->s, st->cap * sizeof *st->s);
        assert_non_null(st->s);
    }
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    st->s[st->n++] = (cw_segment){ *sid, copy, len };
    pthread_mutex_unlock(&st->lock);
}

static int cw_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                   const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n;
    cw_store_add(ctx, sid, buf, len);
    return 0;
}

/* The loader's source: a copy per fetch, so that a segment deleted while
 * a loader still holds it stays valid for that holder. */
static int cw_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                    void **handle)
{
    cw_store *st = ctx;
    int rc = SEGIDX_ENOTFOUND;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->n; i++)
        if (!memcmp(st->s[i].sid.bytes, sid->bytes, 16)) {
            uint8_t *copy = malloc(st->s[i].len);
            assert_non_null(copy);
            memcpy(copy, st->s[i].buf, st->s[i].len);
            *buf = copy;
            *len = st->s[i].len;
            *handle = copy;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void cw_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                       void *handle)
{
    (void)ctx, (void)sid, (void)buf, (void)len;
    free(handle);
}

static inline segidx_loader *cw_loader(cw_store *st)
{
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, cw_fetch, cw_release, st };
    segidx_loader *l = NULL;
    assert_int_equal(segidx_loader_new(&src, NULL, &l), SEGIDX_OK);
    return l;
}

struct cw_refs {
    segidx_sid *sids;
    size_t n, cap;
};

static int cw_collect_ref(void *ctx, const segidx_sid *sid)
{
    struct cw_refs *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->sids = realloc(r->sids, r->cap * sizeof *r->sids);
        assert_non_null(r->sids);
    }
    r->sids[r->n++] = *sid;
    return 0;
}

/* Delete every segment no entry names (no read is in flight in the
 * single-threaded tests, so no grace is needed); returns how many. */
static inline size_t cw_gc(cw_store *st, segidx_volume_index *vi)
{
    struct cw_refs r = { NULL, 0, 0 };
    assert_int_equal(segidx_volume_index_segments(vi, cw_collect_ref, &r), SEGIDX_OK);
    for (size_t i = 1; i < r.n; i++) /* sid order, each once */
        assert_true(memcmp(r.sids[i - 1].bytes, r.sids[i].bytes, 16) < 0);
    size_t deleted = 0;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->n;) {
        bool named = false;
        for (size_t k = 0; k < r.n && !named; k++)
            named = !memcmp(r.sids[k].bytes, st->s[i].sid.bytes, 16);
        if (named) {
            i++;
            continue;
        }
        free(st->s[i].buf);
        st->s[i] = st->s[--st->n];
        deleted++;
    }
    pthread_mutex_unlock(&st->lock);
    free(r.sids);
    return deleted;
}

static inline void cw_store_free(cw_store *st)
{
    for (size_t i = 0; i < st->n; i++)
        free(st->s[i].buf);
    free(st->s);
    pthread_mutex_destroy(&st->lock);
}

/* ------------------------------------------------------------ pages */

/* Page (v, off, lsn)'s bytes: a pattern no other version shares. */
static inline void cw_page(unsigned v, uint32_t off, uint64_t lsn, uint8_t *page)
{
    test_rng r = { ((uint64_t)v << 56) ^ ((uint64_t)off << 32) ^ lsn ^ 0xC0FFEEull };
    for (size_t i = 0; i < CW_PAGE; i += 8) {
        uint64_t x = rng_next(&r);
        memcpy(page + i, &x, 8);
    }
}

static inline segidx_vid cw_vid(unsigned v)
{
    segidx_vid vid = { { 0 } };
    vid.bytes[0] = 0x70;
    vid.bytes[15] = (uint8_t)(v + 1);
    return vid;
}

/* ------------------------------------------------------------ the world */

typedef struct cw_volume {
    segidx_lsn lsn;       /* committed: commit_ready's volume_commit returned OK */
    segidx_lsn added;     /* pages handed to the packer up to this LSN */
    segidx_lsn keep_from;
    /* wrote[lsn][off]: commit lsn wrote offset off */
    bool wrote[CW_MAX_LSN + 1][CW_OFFSETS];
} cw_volume;

typedef struct cw_world {
    segidx_kv raw;          /* the store; every index borrows it */
    stub_kv *stub;
    segidx_volume_index *vi;  /* through the stub */
    segidx_volume_index *other; /* a second writer on the same store */
    cw_store segs;
    segidx_packer *packer;
    cw_volume vol[CW_VOLUMES];
    test_rng rng;
} cw_world;

static int cw_commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                           const segidx_commit_segment *segs, size_t n)
{
    cw_world *w = ctx;
    unsigned v = vid->bytes[15] - 1u;
    int rc = segidx_volume_commit(w->other, vid, lsn, 1700000000 + lsn, segs, n);
    if (!rc)
        w->vol[v].lsn = lsn;
    return rc;
}

static int cw_world_next_sid(void *ctx, segidx_sid *sid)
{
    cw_world *w = ctx;
    return cw_next_sid(&w->segs, sid);
}

static int cw_world_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                         const segidx_packed_commit *commits, size_t n)
{
    cw_world *w = ctx;
    return cw_emit(&w->segs, sid, buf, len, commits, n);
}

/* A world over `raw` (taken over), with checkpoints as `o` says. */
static inline void cw_open_on(cw_world *w, segidx_kv raw, uint64_t seed,
                              const segidx_volume_index_options *o)
{
    memset(w, 0, sizeof *w);
    w->rng.s = seed;
    w->raw = raw;
    pthread_mutex_init(&w->segs.lock, NULL);
    segidx_kv kv = stub_wrap(borrowed_kv(&w->raw), &w->stub);
    assert_int_equal(segidx_volume_index_open_with(kv, o, &w->vi), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&w->raw), o, &w->other),
                     SEGIDX_OK);
    segidx_packer_options po = { { CW_PAGE, 0, NULL }, cw_world_next_sid, cw_world_emit, w,
                                 cw_commit_ready };
    assert_int_equal(segidx_packer_new(&po, &w->packer), SEGIDX_OK);
}

static inline void cw_open(cw_world *w, uint64_t seed, const segidx_volume_index_options *o)
{
    segidx_kv raw;
    assert_int_equal(segidx_kv_mem_open(&raw), SEGIDX_OK);
    cw_open_on(w, raw, seed, o);
}

static inline void cw_close(cw_world *w)
{
    segidx_packer_free(w->packer);
    segidx_volume_index_close(w->vi);
    segidx_volume_index_close(w->other);
    w->raw.vt->close(w->raw.self);
    cw_store_free(&w->segs);
}

/* One commit of volume v: 1..6 random offsets through the packer (or, now
 * and then, an empty commit straight to the index). The packer hands it
 * to commit_ready at the next commit's first page or at a flush; a flush
 * follows now and then, so segments hold several commits and volumes. */
static inline void cw_commit(cw_world *w, unsigned v)
{
    cw_volume *m = &w->vol[v];
    if (m->added >= CW_MAX_LSN)
        return;
    segidx_vid vid = cw_vid(v);
    segidx_lsn lsn = ++m->added;
    if (rng_below(&w->rng, 12) == 0) {
        assert_int_equal(segidx_packer_flush(w->packer), SEGIDX_OK);
        assert_int_equal(segidx_volume_commit(w->other, &vid, lsn, 1700000000 + lsn, NULL, 0),
                         SEGIDX_OK);
        m->lsn = lsn;
        return;
    }
    unsigned k = 1 + (unsigned)rng_below(&w->rng, 6);
    uint8_t page[CW_PAGE];
    for (unsigned i = 0; i < k; i++) {
        uint32_t off = (uint32_t)rng_below(&w->rng, CW_OFFSETS);
        if (m->wrote[lsn][off])
            continue;
        m->wrote[lsn][off] = true;
        cw_page(v, off, lsn, page);
        assert_int_equal(segidx_packer_add(w->packer, &vid, off, lsn, page), SEGIDX_OK);
    }
    if (rng_below(&w->rng, 3) == 0)
        assert_int_equal(segidx_packer_flush(w->packer), SEGIDX_OK);
}

/* Everything added is in a segment and in the index. */
static inline void cw_flush(cw_world *w)
{
    assert_int_equal(segidx_packer_flush(w->packer), SEGIDX_OK);
    for (unsigned v = 0; v < CW_VOLUMES; v++)
        assert_int_equal(w->vol[v].lsn, w->vol[v].added);
}

/* The model's answer: the LSN of the newest version of `off` at or below
 * `lsn`, or 0. */
static inline segidx_lsn cw_version(const cw_volume *m, uint32_t off, segidx_lsn lsn)
{
    for (segidx_lsn l = lsn < m->lsn ? lsn : m->lsn; l > 0; l--)
        if (m->wrote[l][off])
            return l;
    return 0;
}

struct cw_read {
    const cw_volume *m;
    unsigned v;
    segidx_lsn lsn;
    uint32_t next;  /* every offset comes, in order */
};

static int cw_check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct cw_read *r = ctx;
    assert_int_equal(off, r->next);
    r->next++;
    segidx_lsn want = cw_version(r->m, off, r->lsn);
    if (!want) {
        assert_null(page);
        return 0;
    }
    assert_non_null(page);
    assert_true(lsn >= want && lsn <= r->lsn);
    uint8_t expect[CW_PAGE];
    cw_page(r->v, off, want, expect);
    assert_memory_equal(page, expect, CW_PAGE);
    return 0;
}

/* Every offset of volume v at `lsn` reads as the model says. */
static inline void cw_check_read(segidx_volume_index *vi, segidx_loader *l, const cw_volume *m,
                                 unsigned v, segidx_lsn lsn)
{
    segidx_vid vid = cw_vid(v);
    segidx_offset_set *all = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(all, 0, CW_OFFSETS), SEGIDX_OK);
    struct cw_read r = { m, v, lsn, 0 };
    assert_int_equal(segidx_read_pages(vi, l, &vid, lsn, all, cw_check_page, &r), SEGIDX_OK);
    assert_int_equal(r.next, CW_OFFSETS);
    segidx_offset_set_free(all);
}

/* Every read at every retained LSN of every volume (and one above the
 * head) is exact, through a fresh loader so that deleted segments show. */
static inline void cw_check_all(cw_world *w, segidx_volume_index *vi)
{
    segidx_loader *l = cw_loader(&w->segs);
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        const cw_volume *m = &w->vol[v];
        if (!m->lsn)
            continue;
        segidx_lsn from = m->keep_from ? m->keep_from : 1;
        for (segidx_lsn lsn = from; lsn <= m->lsn + 1; lsn++)
            cw_check_read(vi, l, m, v, lsn);
        if (from > 1) {
            segidx_vid vid = cw_vid(v);
            segidx_offset_set *one = segidx_offset_set_new();
            assert_int_equal(segidx_offset_set_add(one, 0), SEGIDX_OK);
            struct cw_read r = { m, v, from - 1, 0 };
            assert_int_equal(segidx_read_pages(vi, l, &vid, from - 1, one, cw_check_page, &r),
                             SEGIDX_ERANGE);
            segidx_offset_set_free(one);
        }
    }
    segidx_loader_free(l);
}

/* Compaction options over the world's segment store. */
static inline segidx_compact_options cw_compact_options(cw_world *w, size_t small, size_t max)
{
    segidx_compact_options o = { { CW_PAGE, 0, NULL }, cw_next_sid, cw_emit, NULL, &w->segs,
                                 small, max };
    return o;
}

/* Prune volume v at a random LSN in [keep_from, lsn], in the model too. */
static inline segidx_lsn cw_pick_keep(cw_world *w, unsigned v)
{
    cw_volume *m = &w->vol[v];
    segidx_lsn lo = m->keep_from ? m->keep_from : 1;
    return lo + rng_below(&w->rng, m->lsn - lo + 1);
}

/* Prune's promise on the entries it leaves: below keep_from, an entry
 * holds no offset a later commit up to keep_from rewrote. */
struct cw_prune_check {
    const cw_volume *m;
    int bad;
};

static int cw_check_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                          const segidx_offset_set *offsets)
{
    (void)sid;
    struct cw_prune_check *c = ctx;
    if (lsn >= c->m->keep_from)
        return 0;
    for (uint32_t off = 0; off < CW_OFFSETS; off++)
        if (segidx_offset_set_contains(offsets, off) &&
            cw_version(c->m, off, c->m->keep_from) != lsn)
            c->bad++;
    return 0;
}

static inline void cw_check_pruned(cw_world *w, segidx_volume_index *vi)
{
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        if (!w->vol[v].lsn)
            continue;
        segidx_vid vid = cw_vid(v);
        struct cw_prune_check c = { &w->vol[v], 0 };
        assert_int_equal(segidx_volume_commits(vi, &vid, cw_check_entry, &c), SEGIDX_OK);
        assert_int_equal(c.bad, 0);
    }
}

#endif
