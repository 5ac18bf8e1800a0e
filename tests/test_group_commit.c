/* segidx_volume_commit_group(): many commits in one atomic store write.
 *
 * - Random groups (1..64 items over a handful of volumes, several LSNs of
 *   one volume in a group, checkpoint schedules short enough that rounds,
 *   deltas of every level and images fall inside groups, a volume written
 *   without checkpoints upgraded by a group) against a brute-force model:
 *   each group's result and the item it names, and afterwards every meta
 *   and find_segments at several LSNs. Every group that succeeds is also
 *   made as single commits, in item order, on a second store: the two
 *   stores must hold the same bytes. Every group that fails must leave
 *   its store byte for byte as it was. The same over a version-1 store
 *   (no EXPECT).
 * - A store that fails its Nth get, scan or write, for every N: an error,
 *   the store unchanged; a write refused once as a conflict is retried.
 * - A deterministic race: another index on the same store commits to one
 *   of the group's volumes (or prunes it, or commits to a volume outside
 *   the group) just before the group's Nth store call, for every N: the
 *   group fails with SEGIDX_ECONFLICT naming that volume's item, or, for
 *   the prune and the other volume, succeeds; the store then holds what
 *   the same operations one by one give.
 * - A threaded stress: threads making groups and single commits on
 *   overlapping volumes through two indexes over one store; afterwards
 *   every LSN holds exactly one attempt's commit, every commit that
 *   returned OK is there whole, and nothing of a refused one is. */
#include "vitest.h"

enum { NVOL = 6, MAX_ITEMS = 64, MAX_SEGS = MODEL_MAX_SEGS };

static segidx_vid vid_n(unsigned v)
{
    segidx_vid vid;
    /* Volume 0 is all 0xFF: the carry past a volume's last key. */
    memset(vid.bytes, v == 0 ? 0xFF : (int)(0x10 + v), 16);
    return vid;
}

static segidx_sid sid_n(uint64_t n)
{
    segidx_sid sid = { { 0 } };
    for (int i = 0; i < 8; i++)
        sid.bytes[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    sid.bytes[0] = 0x5D;
    return sid;
}

/* ------------------------------------------------------------ items */

/* A group's items and the segments they point to. */
typedef struct group_buf {
    segidx_volume_commit_item items[MAX_ITEMS];
    segidx_commit_segment segs[MAX_ITEMS][MAX_SEGS];
    unsigned vol[MAX_ITEMS];
    size_t n;
} group_buf;

static void group_free(group_buf *g)
{
    for (size_t i = 0; i < g->n; i++)
        for (size_t j = 0; j < MAX_SEGS; j++) {
            segidx_offset_set_free((segidx_offset_set *)g->segs[i][j].offsets);
            g->segs[i][j].offsets = NULL;
        }
    g->n = 0;
}

/* A random offset: mostly in the first three chunks, now and then far. */
static segidx_offset random_offset(test_rng *r)
{
    switch (rng_below(r, 8)) {
    case 0:
        return (segidx_offset)(1u << 20) + (segidx_offset)rng_below(r, 64);
    case 1:
        return UINT32_MAX - (segidx_offset)rng_below(r, 2);
    default:
        return (segidx_offset)rng_below(r, 3 * 4096 + 100);
    }
}

/* Item i of `g`: a commit to volume v at lsn, with 0..3 segments (0: an
 * empty commit, now and then) of random disjoint offsets. */
static void make_item(group_buf *g, size_t i, test_rng *r, uint64_t *sids, unsigned v,
                      segidx_lsn lsn)
{
    size_t nsegs = rng_below(r, 10) == 0 ? 0 : 1 + rng_below(r, MAX_SEGS);
    for (size_t j = 0; j < nsegs; j++) {
        g->segs[i][j].sid = sid_n(++*sids);
        g->segs[i][j].offsets = segidx_offset_set_new();
        assert_non_null(g->segs[i][j].offsets);
    }
    /* One fresh offset for each segment, then more to any of them. */
    size_t want = nsegs ? nsegs + rng_below(r, 24) : 0;
    for (size_t k = 0; k < want; k++) {
        segidx_offset o;
        bool taken;
        do {
            o = random_offset(r);
            taken = false;
            for (size_t j = 0; j < nsegs; j++)
                taken |= segidx_offset_set_contains(g->segs[i][j].offsets, o);
        } while (taken && k < nsegs);
        if (taken)
            continue;
        size_t j = k < nsegs ? k : rng_below(r, nsegs);
        assert_int_equal(segidx_offset_set_add((segidx_offset_set *)g->segs[i][j].offsets, o),
                         SEGIDX_OK);
    }
    g->items[i] = (segidx_volume_commit_item){ vid_n(v), lsn, 1000 * lsn + v, g->segs[i], nsegs };
    g->vol[i] = v;
}

/* ------------------------------------------------------------ the model */

typedef struct model {
    model_volume v[NVOL];
    segidx_offset last_offset[NVOL];
    bool written[NVOL];
    uint64_t last_commit[NVOL];
} model;

static void model_init(model *m)
{
    memset(m, 0, sizeof *m);
    for (unsigned v = 0; v < NVOL; v++)
        m->v[v].vid = vid_n(v);
}

static void model_free(model *m)
{
    for (unsigned v = 0; v < NVOL; v++)
        model_volume_free(&m->v[v]);
}

static int note_max(segidx_offset o, void *ctx)
{
    segidx_offset *max = ctx;
    *max = o > *max ? o : *max;
    return 0;
}

static void model_apply(model *m, unsigned v, const segidx_volume_commit_item *it)
{
    model_volume *mv = &m->v[v];
    assert_int_equal(it->lsn, mv->n + 1);
    mv->commits = realloc(mv->commits, (mv->n + 1) * sizeof *mv->commits);
    assert_non_null(mv->commits);
    model_commit *c = &mv->commits[mv->n++];
    memset(c, 0, sizeof *c);
    c->lsn = it->lsn;
    c->n = it->n;
    for (size_t j = 0; j < it->n; j++) {
        c->segs[j].sid = it->segs[j].sid;
        c->segs[j].offsets = segidx_offset_set_copy(it->segs[j].offsets);
        segidx_offset max = 0;
        segidx_offset_set_iterate(it->segs[j].offsets, note_max, &max);
        if (!m->written[v] || max > m->last_offset[v])
            m->last_offset[v] = max;
        m->written[v] = true;
    }
    m->last_commit[v] = it->commit_time;
}

/* What the group should answer: the first item whose arguments are bad
 * (EINVAL), else the first whose LSN is not its volume's next (ECONFLICT),
 * else OK (failed = n). */
static int model_expect(const model *m, const group_buf *g, size_t *failed)
{
    for (size_t i = 0; i < g->n; i++) {
        const segidx_volume_commit_item *it = &g->items[i];
        bool bad = it->n && !it->segs;
        for (size_t j = 0; j < it->n && !bad; j++) {
            bad = !it->segs[j].offsets || segidx_offset_set_is_empty(it->segs[j].offsets);
            segidx_sid zero = { { 0 } };
            bad = bad || memcmp(it->segs[j].sid.bytes, zero.bytes, 16) == 0;
            for (size_t k = 0; k < j && !bad; k++) {
                bad = memcmp(it->segs[j].sid.bytes, it->segs[k].sid.bytes, 16) == 0;
                segidx_offset_set *both = segidx_offset_set_copy(it->segs[j].offsets);
                segidx_offset_set *cut = segidx_offset_set_cut(both, it->segs[k].offsets);
                bad = bad || !segidx_offset_set_is_empty(cut);
                segidx_offset_set_free(cut);
                segidx_offset_set_free(both);
            }
        }
        if (bad) {
            *failed = i;
            return SEGIDX_EINVAL;
        }
    }
    segidx_lsn next[NVOL];
    for (unsigned v = 0; v < NVOL; v++)
        next[v] = m->v[v].n + 1;
    for (size_t i = 0; i < g->n; i++) {
        if (g->items[i].lsn != next[g->vol[i]]++) {
            *failed = i;
            return SEGIDX_ECONFLICT;
        }
    }
    *failed = g->n;
    return SEGIDX_OK;
}

/* Every meta, and find_segments at the head, at a random LSN and above
 * the head, over a query of everything ever asked. */
static void check_against_model(segidx_volume_index *vi, const model *m, test_rng *r)
{
    segidx_offset_set *asked = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(asked, 0, 3 * 4096 + 100), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add_range(asked, 1u << 20, (1u << 20) + 64), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add_range(asked, 70000, 70000 + MAX_SEGS), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(asked, UINT32_MAX - 1), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(asked, UINT32_MAX), SEGIDX_OK);
    for (unsigned v = 0; v < NVOL; v++) {
        const model_volume *mv = &m->v[v];
        segidx_volume_meta meta;
        int rc = segidx_volume_get(vi, &mv->vid, &meta);
        if (mv->n == 0) {
            assert_int_equal(rc, SEGIDX_ENOTFOUND);
            continue;
        }
        assert_int_equal(rc, SEGIDX_OK);
        assert_int_equal(meta.lsn, mv->n);
        assert_int_equal(meta.last_offset, m->last_offset[v]);
        assert_int_equal(meta.last_commit, m->last_commit[v]);
        assert_int_equal(meta.keep_from, 0);
        segidx_lsn at[3] = { mv->n, 1 + rng_below(r, mv->n), mv->n + 5 };
        for (int k = 0; k < 3; k++)
            assert_find_exact(vi, mv, at[k], asked);
    }
    segidx_offset_set_free(asked);
}

/* ------------------------------------------------------------ stores */

static int v1_get(void *self, const void *k, size_t kl, segidx_kv_visit_fn fn, void *ctx)
{
    return borrow_get(self, k, kl, fn, ctx);
}

static int v1_scan(void *self, const void *lo, size_t lol, const void *hi, size_t hil, bool rev,
                   segidx_kv_visit_fn fn, void *ctx)
{
    return borrow_scan(self, lo, lol, hi, hil, rev, fn, ctx);
}

static int v1_write(void *self, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ops[i].op, SEGIDX_KV_EXPECT); /* version 1 knows none */
    return borrow_write(self, ops, n);
}

/* `kv` as a version-1 store: the index writes without EXPECTs. */
static segidx_kv v1_view(segidx_kv *kv)
{
    static const segidx_kv_vtable vt = { 1, v1_get, v1_scan, v1_write, borrow_close };
    return (segidx_kv){ &vt, kv };
}

/* A store and the indexes over it: one with checkpoints on a schedule,
 * one with checkpoints off (which makes volumes a later commit through
 * the other upgrades). Both borrow the store. */
typedef struct world {
    segidx_kv kv;
    segidx_volume_index *ckpt, *walk;
} world;

static void world_open(world *w, const segidx_volume_index_options *opts, bool v1)
{
    assert_int_equal(segidx_kv_mem_open(&w->kv), SEGIDX_OK);
    static const segidx_volume_index_options off = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };
    segidx_kv a = v1 ? v1_view(&w->kv) : borrowed_kv(&w->kv);
    segidx_kv b = v1 ? v1_view(&w->kv) : borrowed_kv(&w->kv);
    assert_int_equal(segidx_volume_index_open_with(a, opts, &w->ckpt), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(b, &off, &w->walk), SEGIDX_OK);
}

static void world_close(world *w)
{
    segidx_volume_index_close(w->ckpt);
    segidx_volume_index_close(w->walk);
    w->kv.vt->close(w->kv.self);
}

static void dump_free(dump *d)
{
    free(d->p);
    memset(d, 0, sizeof *d);
}

static void assert_same_store(segidx_kv a, segidx_kv b)
{
    dump x = dump_store(a), y = dump_store(b);
    assert_dumps_equal(&x, &y);
    dump_free(&x);
    dump_free(&y);
}

/* ------------------------------------------------------------ random groups */

/* Spoil item j of a valid group: a skipped, repeated or zero LSN, or
 * arguments a commit refuses. */
static void spoil(group_buf *g, size_t j, test_rng *r)
{
    segidx_volume_commit_item *it = &g->items[j];
    switch (rng_below(r, 6)) {
    case 0:
        it->lsn++;
        break;
    case 1:
        it->lsn = it->lsn > 1 ? it->lsn - 1 : 0;
        break;
    case 2:
        it->lsn = 0;
        break;
    case 3: /* NULL segments */
        if (it->n)
            it->segs = NULL;
        else
            it->lsn += 2;
        break;
    case 4: /* a repeated sid */
        if (it->n >= 2)
            g->segs[j][1].sid = g->segs[j][0].sid;
        else
            it->lsn += 3;
        break;
    default: /* overlapping offsets */
        if (it->n >= 2) {
            segidx_offset o = 0;
            segidx_offset_set_iterate(g->segs[j][0].offsets, note_max, &o);
            assert_int_equal(segidx_offset_set_add((segidx_offset_set *)g->segs[j][1].offsets, o),
                             SEGIDX_OK);
        } else {
            it->lsn = UINT64_MAX;
        }
        break;
    }
}

static void random_groups(const segidx_volume_index_options *opts, bool v1, uint64_t seed,
                          long rounds)
{
    test_rng r = { seed };
    world a, b; /* a: groups; b: the same commits one by one */
    world_open(&a, opts, v1);
    world_open(&b, opts, v1);
    model m;
    model_init(&m);
    group_buf *g = calloc(1, sizeof *g);
    assert_non_null(g);
    uint64_t sids = 0;
    long ok = 0, refused = 0, items = 0, several = 0;
    for (long round = 0; round < rounds; round++) {
        /* Volumes 4 and 5 start without checkpoints; the first group
         * through `ckpt` that names them upgrades them. */
        bool walk = round < rounds / 4 && rng_below(&r, 2);
        size_t n = 1 + rng_below(&r, rng_below(&r, 4) == 0 ? MAX_ITEMS : 8);
        unsigned span = 1 + (unsigned)rng_below(&r, NVOL);
        segidx_lsn next[NVOL];
        for (unsigned v = 0; v < NVOL; v++)
            next[v] = m.v[v].n + 1;
        unsigned count[NVOL] = { 0 };
        for (size_t i = 0; i < n; i++) {
            unsigned v = walk ? 4 + (unsigned)rng_below(&r, 2) : (unsigned)rng_below(&r, span);
            make_item(g, i, &r, &sids, v, next[v]++);
            several += ++count[v] == 2;
        }
        g->n = n;
        if (rng_below(&r, 4) == 0)
            spoil(g, rng_below(&r, n), &r);
        size_t want_failed;
        int want = model_expect(&m, g, &want_failed);
        segidx_volume_index *vi = walk ? a.walk : a.ckpt;
        dump before = dump_store(a.kv);
        size_t failed = 12345;
        int rc = segidx_volume_commit_group(vi, g->items, n, &failed);
        if (rc != want || failed != want_failed)
            fail_msg("seed %llu round %ld: %s at %zu, want %s at %zu",
                     (unsigned long long)seed, round, segidx_strerror(rc), failed,
                     segidx_strerror(want), want_failed);
        if (rc) {
            dump after = dump_store(a.kv);
            assert_dumps_equal(&before, &after);
            dump_free(&after);
            refused++;
        } else {
            segidx_volume_index *ref = walk ? b.walk : b.ckpt;
            for (size_t i = 0; i < n; i++) {
                const segidx_volume_commit_item *it = &g->items[i];
                assert_int_equal(segidx_volume_commit(ref, &it->vid, it->lsn, it->commit_time,
                                                      it->segs, it->n),
                                 SEGIDX_OK);
                model_apply(&m, g->vol[i], it);
            }
            assert_same_store(a.kv, b.kv);
            ok++;
            items += (long)n;
        }
        dump_free(&before);
        group_free(g);
        if (round % 16 == 15 || round == rounds - 1)
            check_against_model(a.ckpt, &m, &r);
    }
    printf("seed %llu%s: %ld groups OK (%ld commits, %ld groups with several LSNs of a volume), "
           "%ld refused whole\n",
           (unsigned long long)seed, v1 ? " (version-1 store)" : "", ok, items, several, refused);
    free(g);
    model_free(&m);
    world_close(&a);
    world_close(&b);
}

static const segidx_volume_index_options schedules[] = {
    { 2, 2, 3 }, /* a round every other commit, an image every 16 */
    { 1, 2, 2 }, /* every commit a round */
    { 3, 3, 1 },
    { 0, 0, 0 }, /* the defaults */
    { SEGIDX_CHECKPOINTS_OFF, 0, 0 },
};

static void test_random_groups_against_model(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof schedules / sizeof *schedules; s++)
        random_groups(&schedules[s], false, 0x6C0 + s, test_scaled(160));
}

static void test_random_groups_version1_store(void **state)
{
    (void)state;
    random_groups(&schedules[0], true, 0x6D0, test_scaled(120));
    random_groups(&schedules[1], true, 0x6D1, test_scaled(60));
}

/* ------------------------------------------------------------ small cases */

static void test_arguments_and_edges(void **state)
{
    (void)state;
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open(kv, &vi), SEGIDX_OK);
    size_t failed = 7;
    assert_int_equal(segidx_volume_commit_group(NULL, NULL, 0, &failed), SEGIDX_EINVAL);
    assert_int_equal(failed, 0);
    assert_int_equal(segidx_volume_commit_group(vi, NULL, 3, &failed), SEGIDX_EINVAL);
    assert_int_equal(failed, 3);
    assert_int_equal(segidx_volume_commit_group(vi, NULL, 0, &failed), SEGIDX_OK);
    assert_int_equal(failed, 0);

    /* Empty commits of a new volume, several in one group, no `failed`. */
    segidx_volume_commit_item items[3] = { { vid_n(1), 1, 11, NULL, 0 },
                                           { vid_n(1), 2, 12, NULL, 0 },
                                           { vid_n(2), 1, 21, NULL, 0 } };
    assert_int_equal(segidx_volume_commit_group(vi, items, 3, NULL), SEGIDX_OK);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(vi, &items[0].vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 2);
    assert_int_equal(m.last_commit, 12);
    assert_int_equal(m.last_offset, 0);

    /* Out of order within a volume: the second item is named. */
    items[0].lsn = 4;
    items[1].lsn = 3;
    items[2].lsn = 2;
    assert_int_equal(segidx_volume_commit_group(vi, items, 3, &failed), SEGIDX_ECONFLICT);
    assert_int_equal(failed, 0);
    items[0].lsn = 3;
    items[1].lsn = 3;
    assert_int_equal(segidx_volume_commit_group(vi, items, 3, &failed), SEGIDX_ECONFLICT);
    assert_int_equal(failed, 1);
    /* A bad argument is named before any LSN is looked at. */
    items[2].n = 1;
    assert_int_equal(segidx_volume_commit_group(vi, items, 3, &failed), SEGIDX_EINVAL);
    assert_int_equal(failed, 2);
    items[2].n = 0;
    items[1].lsn = 4;
    assert_int_equal(segidx_volume_commit_group(vi, items, 3, &failed), SEGIDX_OK);
    assert_int_equal(failed, 3);
    assert_int_equal(segidx_volume_get(vi, &items[2].vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, 2);
    segidx_volume_index_close(vi);
}

/* ------------------------------------------------------------ failing stores */

/* A store with history on a short schedule, and a group that closes rounds
 * (deltas and an image among them), upgrades a volume written without
 * checkpoints, starts a new volume and holds several LSNs of each. */
typedef struct fixture {
    segidx_kv inner;
    stub_kv *stub;
    segidx_volume_index *vi;    /* over the stub */
    segidx_volume_index *other; /* another writer, straight on the store */
    group_buf g;
    uint64_t sids;
} fixture;

static const segidx_volume_index_options short_schedule = { 2, 2, 3 };

static void fixture_history(segidx_volume_index *vi, segidx_volume_index *walk, uint64_t *sids)
{
    test_rng r = { 0xF1 };
    group_buf *g = calloc(1, sizeof *g);
    assert_non_null(g);
    for (unsigned v = 0; v < 4; v++)
        for (segidx_lsn lsn = 1; lsn <= 6 + v; lsn++) {
            make_item(g, 0, &r, sids, v, lsn);
            g->n = 1;
            const segidx_volume_commit_item *it = &g->items[0];
            assert_int_equal(segidx_volume_commit(v == 3 ? walk : vi, &it->vid, lsn,
                                                  it->commit_time, it->segs, it->n),
                             SEGIDX_OK);
            group_free(g);
        }
    free(g);
}

/* Volumes 0..2 have 6, 7, 8 commits on the schedule; volume 3 has 9
 * without checkpoints; volume 4 is new. */
static void fixture_group(group_buf *g, uint64_t *sids)
{
    test_rng r = { 0xF2 };
    static const unsigned vols[] = { 0, 1, 4, 0, 2, 3, 1, 0, 4, 2, 3, 0, 1, 2, 4, 0 };
    segidx_lsn next[5] = { 7, 8, 9, 10, 1 };
    g->n = sizeof vols / sizeof *vols;
    for (size_t i = 0; i < g->n; i++)
        make_item(g, i, &r, sids, vols[i], next[vols[i]]++);
}

static void fixture_open(fixture *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(segidx_kv_mem_open(&f->inner), SEGIDX_OK);
    segidx_kv kv = stub_wrap(borrowed_kv(&f->inner), &f->stub);
    assert_int_equal(segidx_volume_index_open_with(kv, &short_schedule, &f->vi), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&f->inner), &short_schedule,
                                                   &f->other),
                     SEGIDX_OK);
    static const segidx_volume_index_options off = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };
    segidx_volume_index *walk;
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&f->inner), &off, &walk),
                     SEGIDX_OK);
    fixture_history(f->other, walk, &f->sids);
    segidx_volume_index_close(walk);
    fixture_group(&f->g, &f->sids);
}

static void fixture_close(fixture *f)
{
    group_free(&f->g);
    segidx_volume_index_close(f->vi);
    segidx_volume_index_close(f->other);
    f->inner.vt->close(f->inner.self);
}

/* The store after the fixture's group made as single commits, after
 * `before` (NULL: nothing) ran on the other writer. */
static dump reference_after(void (*before)(fixture *f), bool group)
{
    fixture f;
    fixture_open(&f);
    if (before)
        before(&f);
    for (size_t i = 0; group && i < f.g.n; i++) {
        const segidx_volume_commit_item *it = &f.g.items[i];
        assert_int_equal(segidx_volume_commit(f.other, &it->vid, it->lsn, it->commit_time,
                                              it->segs, it->n),
                         SEGIDX_OK);
    }
    dump d = dump_store(f.inner);
    fixture_close(&f);
    return d;
}

static void test_failing_store_at_every_call(void **state)
{
    (void)state;
    dump done = reference_after(NULL, true);
    long points = 0;
    for (int kind = 0; kind < 3; kind++) {
        for (long k = 1;; k++) {
            fixture f;
            fixture_open(&f);
            long *at = kind == 0 ? &f.stub->fail_get_at
                       : kind == 1 ? &f.stub->fail_scan_at : &f.stub->fail_write_at;
            *at = k;
            dump before = dump_store(f.inner);
            size_t failed;
            int rc = segidx_volume_commit_group(f.vi, f.g.items, f.g.n, &failed);
            bool fired = *at == 0;
            dump after = dump_store(f.inner);
            if (fired) {
                assert_int_equal(rc, SEGIDX_EIO);
                if (kind == 2)
                    assert_int_equal(failed, f.g.n); /* the write's: the group's */
                else
                    assert_true(failed < f.g.n); /* a read for an item */
                assert_dumps_equal(&before, &after);
                points++;
            } else {
                assert_int_equal(rc, SEGIDX_OK);
                assert_dumps_equal(&done, &after);
            }
            dump_free(&before);
            dump_free(&after);
            fixture_close(&f);
            if (!fired)
                break;
        }
    }
    /* A write the store refuses once as a conflict (nothing changed): the
     * group reads again and succeeds. */
    fixture f;
    fixture_open(&f);
    f.stub->fail_rc = SEGIDX_ECONFLICT;
    f.stub->fail_write_at = 1;
    assert_int_equal(segidx_volume_commit_group(f.vi, f.g.items, f.g.n, NULL), SEGIDX_OK);
    assert_int_equal(f.stub->writes, 2);
    dump after = dump_store(f.inner);
    assert_dumps_equal(&done, &after);
    dump_free(&after);
    fixture_close(&f);
    dump_free(&done);
    printf("failing store: %ld failed calls, each left the store unchanged\n", points);
}

/* ------------------------------------------------------------ races */

struct race {
    fixture *f;
    int kind;
    int rc;
};

enum { RACE_COMMIT, RACE_PRUNE, RACE_OUTSIDE, RACE_KINDS };

/* Volume 1's next commit, as the other writer would make it. */
static void commit_volume1(fixture *f)
{
    segidx_vid vid = vid_n(1);
    segidx_offset_set *s = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(s, 10, 20), SEGIDX_OK);
    segidx_commit_segment seg = { sid_n(999999), s };
    assert_int_equal(segidx_volume_commit(f->other, &vid, 8, 77, &seg, 1), SEGIDX_OK);
    segidx_offset_set_free(s);
}

static void prune_volume1(fixture *f)
{
    segidx_vid vid = vid_n(1);
    assert_int_equal(segidx_volume_prune(f->other, &vid, 6), SEGIDX_OK);
}

/* Volume 5, which the group does not name. */
static void commit_outside(fixture *f)
{
    segidx_vid vid = vid_n(5);
    assert_int_equal(segidx_volume_commit(f->other, &vid, 1, 55, NULL, 0), SEGIDX_OK);
}

static void (*const racers[RACE_KINDS])(fixture *f) = { commit_volume1, prune_volume1,
                                                        commit_outside };

static void run_racer(void *ctx)
{
    struct race *r = ctx;
    racers[r->kind](r->f);
    r->rc = 1;
}

static void test_race_between_reads_and_write(void **state)
{
    (void)state;
    /* How many store calls a group makes when nobody races it. */
    fixture f;
    fixture_open(&f);
    stub_hook(f.stub, 0, NULL, NULL);
    assert_int_equal(segidx_volume_commit_group(f.vi, f.g.items, f.g.n, NULL), SEGIDX_OK);
    long calls = f.stub->calls;
    fixture_close(&f);
    assert_true(calls > 6); /* five metas, some rounds' scans, the write */

    size_t first_of_1 = 0;
    fixture_open(&f);
    while (f.g.vol[first_of_1] != 1)
        first_of_1++;
    fixture_close(&f);

    long retried = 0;
    for (int kind = 0; kind < RACE_KINDS; kind++) {
        /* The racer alone; the racer, then the group as single commits. */
        dump lost = reference_after(racers[kind], false);
        dump won = kind == RACE_COMMIT ? (dump){ 0 } : reference_after(racers[kind], true);
        for (long k = 1; k <= calls; k++) {
            fixture_open(&f);
            struct race r = { &f, kind, 0 };
            stub_hook(f.stub, k, run_racer, &r);
            size_t failed;
            long writes = f.stub->writes;
            int rc = segidx_volume_commit_group(f.vi, f.g.items, f.g.n, &failed);
            assert_int_equal(r.rc, 1); /* the racer ran */
            retried += f.stub->writes - writes > 1;
            dump after = dump_store(f.inner);
            if (kind == RACE_COMMIT) {
                /* LSN 8 of volume 1 is taken: never two commits there. */
                assert_int_equal(rc, SEGIDX_ECONFLICT);
                assert_int_equal(failed, first_of_1);
                assert_dumps_equal(&lost, &after);
            } else {
                assert_int_equal(rc, SEGIDX_OK);
                assert_dumps_equal(&won, &after);
            }
            dump_free(&after);
            fixture_close(&f);
        }
        dump_free(&lost);
        dump_free(&won);
    }
    printf("races: %ld store calls, 3 racers before each; %ld groups lost their write and "
           "retried\n",
           calls, retried);
}

/* ------------------------------------------------------------ threads */

#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
static void test_threaded_stress(void **state)
{
    (void)state;
    skip();
}
#else
#include <pthread.h>

enum { THREADS = 4, SVOL = 4, ATTEMPTS = 300, GROUP_MAX = 6 };

/* What one attempt tried, and how it came out. Its sids name it:
 * thread, attempt, item, segment. */
struct attempt {
    size_t n;
    unsigned vol[GROUP_MAX];
    segidx_lsn lsn[GROUP_MAX];
    size_t nsegs[GROUP_MAX];
    segidx_offset_set *offsets[GROUP_MAX][MAX_SEGS];
    int rc;
};

struct stress {
    segidx_kv kv;
    segidx_volume_index *vi[2];
    struct attempt log[THREADS][ATTEMPTS];
    long attempts;
};

struct worker {
    struct stress *s;
    unsigned t;
};

static segidx_vid svid(unsigned v)
{
    return vid_n(v + 1);
}

static segidx_sid stress_sid(unsigned t, unsigned a, unsigned i, unsigned j)
{
    segidx_sid sid = { { 0 } };
    sid.bytes[0] = 0xAB;
    sid.bytes[1] = (uint8_t)t;
    sid.bytes[2] = (uint8_t)(a >> 8);
    sid.bytes[3] = (uint8_t)a;
    sid.bytes[4] = (uint8_t)i;
    sid.bytes[5] = (uint8_t)j;
    return sid;
}

static void *stress_worker(void *p)
{
    struct worker *w = p;
    struct stress *s = w->s;
    test_rng r = { 0x57 + w->t };
    for (unsigned a = 0; a < (unsigned)test_scaled_threads(ATTEMPTS); a++) {
        struct attempt *at = &s->log[w->t][a];
        segidx_volume_index *vi = s->vi[rng_below(&r, 2)];
        bool single = rng_below(&r, 3) == 0;
        at->n = single ? 1 : 1 + rng_below(&r, GROUP_MAX);
        segidx_volume_commit_item items[GROUP_MAX];
        segidx_commit_segment segs[GROUP_MAX][MAX_SEGS];
        segidx_lsn next[SVOL] = { 0 };
        for (size_t i = 0; i < at->n; i++) {
            unsigned v = (unsigned)rng_below(&r, SVOL);
            if (!next[v]) {
                segidx_volume_meta m;
                segidx_vid vid = svid(v);
                int rc = segidx_volume_get(vi, &vid, &m);
                if (rc != SEGIDX_OK && rc != SEGIDX_ENOTFOUND)
                    fail_msg("get: %s", segidx_strerror(rc));
                next[v] = (rc ? 0 : m.lsn) + 1 + (rng_below(&r, 8) == 0); /* now and then stale */
            }
            at->vol[i] = v;
            at->lsn[i] = next[v]++;
            at->nsegs[i] = 1 + rng_below(&r, MAX_SEGS);
            for (size_t j = 0; j < at->nsegs[i]; j++) {
                segidx_offset_set *o = segidx_offset_set_new();
                assert_non_null(o);
                for (unsigned k = 0; k < 1 + rng_below(&r, 6); k++)
                    segidx_offset_set_add(o, (segidx_offset)(j * 5000 + rng_below(&r, 5000)));
                at->offsets[i][j] = o;
                segs[i][j] = (segidx_commit_segment){ stress_sid(w->t, a, (unsigned)i,
                                                                 (unsigned)j), o };
            }
            items[i] = (segidx_volume_commit_item){ svid(v), at->lsn[i], a, segs[i],
                                                    at->nsegs[i] };
        }
        if (single)
            at->rc = segidx_volume_commit(vi, &items[0].vid, items[0].lsn, a, segs[0],
                                          at->nsegs[0]);
        else
            at->rc = segidx_volume_commit_group(vi, items, at->n, NULL);
        if (at->rc != SEGIDX_OK && at->rc != SEGIDX_ECONFLICT)
            fail_msg("thread %u attempt %u: %s", w->t, a, segidx_strerror(at->rc));
    }
    return NULL;
}

/* Per volume and LSN: the attempt item whose entries the store holds. */
struct seen {
    int t, a, i; /* -1: none yet */
    size_t segs;
    bool bad;
};

struct seen_walk {
    struct stress *s;
    struct seen *by_lsn;
    size_t max;
    unsigned v;
};

static int visit_stress_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                              const segidx_offset_set *offsets)
{
    struct seen_walk *w = ctx;
    assert_true(lsn >= 1 && lsn <= w->max);
    assert_int_equal(sid->bytes[0], 0xAB);
    unsigned t = sid->bytes[1], a = (unsigned)sid->bytes[2] << 8 | sid->bytes[3];
    unsigned i = sid->bytes[4], j = sid->bytes[5];
    assert_true(t < THREADS && a < ATTEMPTS);
    struct attempt *at = &w->s->log[t][a];
    assert_true(i < at->n && j < at->nsegs[i]);
    /* Only a commit that returned OK is in the store, at its own LSN. */
    assert_int_equal(at->rc, SEGIDX_OK);
    assert_int_equal(at->vol[i], w->v);
    assert_int_equal(at->lsn[i], lsn);
    assert_true(segidx_offset_set_equals(offsets, at->offsets[i][j]));
    struct seen *sn = &w->by_lsn[lsn - 1];
    if (sn->t < 0)
        *sn = (struct seen){ (int)t, (int)a, (int)i, 0, false };
    /* One attempt per LSN. */
    assert_true(sn->t == (int)t && sn->a == (int)a && sn->i == (int)i);
    sn->segs++;
    return 0;
}

static void test_threaded_stress(void **state)
{
    (void)state;
    struct stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(segidx_kv_mem_open(&s->kv), SEGIDX_OK);
    static const segidx_volume_index_options opts[2] = { { 2, 2, 2 }, { 0, 0, 0 } };
    for (int k = 0; k < 2; k++)
        assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&s->kv), &opts[k], &s->vi[k]),
                         SEGIDX_OK);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        w[t] = (struct worker){ s, t };
        assert_int_equal(pthread_create(&th[t], NULL, stress_worker, &w[t]), 0);
    }
    for (unsigned t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);

    long ok_items = 0, ok = 0, conflicts = 0, heads = 0;
    unsigned attempts = (unsigned)test_scaled_threads(ATTEMPTS);
    for (unsigned t = 0; t < THREADS; t++)
        for (unsigned a = 0; a < attempts; a++) {
            const struct attempt *at = &s->log[t][a];
            ok += at->rc == SEGIDX_OK;
            conflicts += at->rc != SEGIDX_OK;
            ok_items += at->rc == SEGIDX_OK ? (long)at->n : 0;
        }
    model m;
    model_init(&m);
    for (unsigned v = 0; v < SVOL; v++) {
        segidx_vid vid = svid(v);
        segidx_volume_meta meta;
        int rc = segidx_volume_get(s->vi[0], &vid, &meta);
        if (rc == SEGIDX_ENOTFOUND)
            continue;
        assert_int_equal(rc, SEGIDX_OK);
        heads += (long)meta.lsn;
        struct seen *by = malloc(meta.lsn * sizeof *by);
        assert_non_null(by);
        for (size_t l = 0; l < meta.lsn; l++)
            by[l] = (struct seen){ -1, -1, -1, 0, false };
        struct seen_walk sw = { s, by, meta.lsn, v };
        assert_int_equal(segidx_volume_commits(s->vi[0], &vid, visit_stress_entry, &sw),
                         SEGIDX_OK);
        /* Every LSN holds one attempt's commit, whole; the model learns it. */
        model_volume *mv = &m.v[v + 1];
        for (size_t l = 0; l < meta.lsn; l++) {
            assert_true(by[l].t >= 0);
            const struct attempt *at = &s->log[by[l].t][by[l].a];
            assert_int_equal(by[l].segs, at->nsegs[by[l].i]);
            segidx_commit_segment segs[MAX_SEGS];
            for (size_t j = 0; j < at->nsegs[by[l].i]; j++)
                segs[j] = (segidx_commit_segment){ stress_sid((unsigned)by[l].t,
                                                              (unsigned)by[l].a,
                                                              (unsigned)by[l].i, (unsigned)j),
                                                   at->offsets[by[l].i][j] };
            segidx_volume_commit_item it = { vid, l + 1, 0, segs, at->nsegs[by[l].i] };
            model_apply(&m, v + 1, &it);
        }
        free(by);
        segidx_offset_set *asked = segidx_offset_set_new();
        assert_int_equal(segidx_offset_set_add_range(asked, 0, 3 * 5000), SEGIDX_OK);
        for (segidx_lsn l = 1; l <= mv->n; l += 1 + mv->n / 8)
            assert_find_exact(s->vi[l % 2], mv, l, asked);
        assert_find_exact(s->vi[1], mv, mv->n, asked);
        segidx_offset_set_free(asked);
    }
    /* Every commit that returned OK is there (each LSN once, above). */
    assert_int_equal(ok_items, heads);
    printf("threads: %u x %u attempts, %ld OK (%ld commits), %ld refused; %ld LSNs, each "
           "one attempt's\n",
           THREADS, attempts, ok, ok_items, conflicts, heads);
    model_free(&m);
    for (unsigned t = 0; t < THREADS; t++)
        for (unsigned a = 0; a < attempts; a++)
            for (size_t i = 0; i < s->log[t][a].n; i++)
                for (size_t j = 0; j < s->log[t][a].nsegs[i]; j++)
                    segidx_offset_set_free(s->log[t][a].offsets[i][j]);
    segidx_volume_index_close(s->vi[0]);
    segidx_volume_index_close(s->vi[1]);
    s->kv.vt->close(s->kv.self);
    free(s);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arguments_and_edges),
        cmocka_unit_test(test_random_groups_against_model),
        cmocka_unit_test(test_random_groups_version1_store),
        cmocka_unit_test(test_failing_store_at_every_call),
        cmocka_unit_test(test_race_between_reads_and_write),
        cmocka_unit_test(test_threaded_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
