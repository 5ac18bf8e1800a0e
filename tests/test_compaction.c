/* Compaction: segidx_volume_compact(), segidx_volume_repoint() and
 * segidx_volume_index_segments(), against a model of every page version:
 * random commits, compactions, prunes, checkpoints and garbage
 * collections interleaved, with every read at every retained LSN checked;
 * prunes and commits run exactly between two store calls of a compaction
 * (and a compaction between two of a prune's); a store failing at every
 * call of a compaction; segments lacking or damaging what entries name. */
#include "compacttest.h"

static const segidx_volume_index_options small_rounds = { 2, 2, 2 };

/* A history of `commits` commits spread over the volumes, all catalogued. */
static void build(cw_world *w, unsigned commits)
{
    for (unsigned i = 0; i < commits; i++)
        cw_commit(w, (unsigned)rng_below(&w->rng, CW_VOLUMES));
    cw_flush(w);
}

static segidx_compact_stats compact(cw_world *w, segidx_volume_index *vi, unsigned v,
                                    size_t small, size_t max, int want)
{
    segidx_loader *l = cw_loader(&w->segs);
    segidx_compact_options o = cw_compact_options(w, small, max);
    segidx_compact_stats st = { 0 };
    segidx_vid vid = cw_vid(v);
    assert_int_equal(segidx_volume_compact(vi, l, &vid, &o, &st), want);
    segidx_loader_free(l);
    return st;
}

/* ------------------------------------------------------------ changed */

#define SENTINEL 1000000u /* in `out` before the call: added to, never cleared */

/* segidx_volume_changed(from, to) of volume v answers as the model: the
 * offsets some commit in (from, to] wrote. */
static void check_changed(cw_world *w, segidx_volume_index *vi, unsigned v, segidx_lsn from,
                          segidx_lsn to)
{
    const cw_volume *m = &w->vol[v];
    segidx_vid vid = cw_vid(v);
    segidx_offset_set *got = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add(got, SENTINEL), SEGIDX_OK);
    int rc = segidx_volume_changed(vi, &vid, from, to, got);
    if (to < m->keep_from) {
        assert_int_equal(rc, SEGIDX_ERANGE);
        assert_int_equal(segidx_offset_set_cardinality(got), 1);
    } else {
        assert_int_equal(rc, SEGIDX_OK);
        uint64_t n = 1;
        segidx_lsn top = to < m->lsn ? to : m->lsn;
        for (uint32_t off = 0; off < CW_OFFSETS; off++) {
            bool want = false;
            for (segidx_lsn l = from + 1; l <= top && !want; l++)
                want = m->wrote[l][off];
            assert_int_equal(segidx_offset_set_contains(got, off), want);
            n += want;
        }
        assert_int_equal(segidx_offset_set_cardinality(got), n);
    }
    assert_true(segidx_offset_set_contains(got, SENTINEL));
    segidx_offset_set_free(got);
}

/* A few random (from, to) pairs of every volume, around its history. */
static void check_changed_some(cw_world *w, segidx_volume_index *vi)
{
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        if (!w->vol[v].lsn)
            continue;
        for (int i = 0; i < 4; i++) {
            segidx_lsn a = rng_below(&w->rng, w->vol[v].lsn + 3);
            segidx_lsn b = rng_below(&w->rng, w->vol[v].lsn + 3);
            check_changed(w, vi, v, a < b ? a : b, a < b ? b : a);
        }
    }
}

/* Every pair, with checkpoints and without, through prunes and a
 * compaction; and the call's own errors. */
static void run_changed_all(const segidx_volume_index_options *o)
{
    cw_world w;
    cw_open(&w, 77, o);
    build(&w, 150);
    for (int phase = 0; phase < 3; phase++) {
        for (unsigned v = 0; v < CW_VOLUMES; v++)
            for (segidx_lsn to = 0; to <= w.vol[v].lsn + 2; to++)
                for (segidx_lsn from = 0; from <= to; from++)
                    check_changed(&w, w.vi, v, from, to);
        if (phase == 0) {
            segidx_vid vid = cw_vid(0);
            segidx_lsn keep = w.vol[0].lsn / 2 + 1;
            assert_int_equal(segidx_volume_prune(w.vi, &vid, keep), SEGIDX_OK);
            w.vol[0].keep_from = keep;
        } else if (phase == 1) {
            compact(&w, w.vi, 0, 1 << 20, 1 << 20, SEGIDX_OK);
            cw_gc(&w.segs, w.vi);
        }
    }
    segidx_vid vid = cw_vid(0), nobody = cw_vid(99);
    segidx_offset_set *out = segidx_offset_set_new();
    assert_int_equal(segidx_volume_changed(NULL, &vid, 0, 1, out), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_changed(w.vi, NULL, 0, 1, out), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_changed(w.vi, &vid, 0, 1, NULL), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_changed(w.vi, &vid, 2, 1, out), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_changed(w.vi, &nobody, 0, 1, out), SEGIDX_ENOTFOUND);
    assert_int_equal(segidx_volume_changed(w.vi, &vid, 0, UINT64_MAX, out), SEGIDX_OK);
    assert_int_equal(segidx_volume_changed(w.vi, &vid, UINT64_MAX, UINT64_MAX, out), SEGIDX_OK);
    segidx_offset_set_free(out);
    cw_close(&w);
}

static void test_changed_every_pair(void **state)
{
    (void)state;
    run_changed_all(&small_rounds);
    segidx_volume_index_options walk = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };
    run_changed_all(&walk);
    segidx_volume_index_options defaults = { 0, 0, 0 };
    run_changed_all(&defaults);
}

/* ------------------------------------------------------------ the model */

static void run_model(uint64_t seed, long ops)
{
    size_t compacted = 0, collected = 0;
    cw_world w;
    cw_open(&w, seed, &small_rounds);
    for (long op = 0; op < ops; op++) {
        unsigned v = (unsigned)rng_below(&w.rng, CW_VOLUMES);
        unsigned what = (unsigned)rng_below(&w.rng, 20);
        if (what < 12) {
            cw_commit(&w, v);
            continue;
        }
        cw_flush(&w);
        if (!w.vol[v].lsn)
            continue;
        segidx_vid vid = cw_vid(v);
        if (what < 16) {
            size_t small = CW_PAGE * (1 + rng_below(&w.rng, 40));
            size_t max = CW_PAGE * (1 + rng_below(&w.rng, 60));
            segidx_compact_stats st = compact(&w, w.vi, v, small, max, SEGIDX_OK);
            assert_true(st.segments_in <= st.segments_seen);
            assert_true(st.segments_in == 0 || st.commits > 0);
            assert_true(st.segments_in == 0 || st.segments_out > 0);
            compacted += st.segments_in;
        } else if (what < 18) {
            segidx_lsn keep = cw_pick_keep(&w, v);
            assert_int_equal(segidx_volume_prune(w.vi, &vid, keep), SEGIDX_OK);
            if (keep > w.vol[v].keep_from)
                w.vol[v].keep_from = keep;
        } else {
            collected += cw_gc(&w.segs, w.vi);
        }
        cw_check_all(&w, w.vi);
        cw_check_pruned(&w, w.vi);
        check_changed_some(&w, w.vi);
    }
    cw_flush(&w);
    collected += cw_gc(&w.segs, w.vi);
    cw_check_all(&w, w.vi);
    cw_close(&w);
    assert_true(compacted > 0 && collected > 0); /* the run did what it is for */
}

static void test_model_random(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++)
        run_model(seed * 7919, test_scaled(300));
}

/* Without checkpoints too: the walk reads what the re-point wrote. */
static void test_model_walk_only(void **state)
{
    (void)state;
    cw_world w;
    segidx_volume_index_options off = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };
    cw_open(&w, 99, &off);
    build(&w, 120);
    for (unsigned v = 0; v < CW_VOLUMES; v++)
        compact(&w, w.vi, v, 1 << 20, 1 << 20, SEGIDX_OK);
    assert_true(cw_gc(&w.segs, w.vi) > 0);
    cw_check_all(&w, w.vi);
    cw_close(&w);
}

/* ------------------------------------------------------------ the plan */

/* Shared segments are compacted into volume-local ones; once every volume
 * moved off them, nothing names them; a second pass has nothing to do. */
static void test_plan_volume_local(void **state)
{
    (void)state;
    cw_world w;
    cw_open(&w, 5, &small_rounds);
    build(&w, 150);
    size_t before = w.segs.n;
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        segidx_compact_stats st = compact(&w, w.vi, v, 1 << 20, 1 << 20, SEGIDX_OK);
        assert_int_equal(st.segments_in, st.segments_seen);
        assert_true(st.segments_out >= 1);
        assert_true(st.bytes_in > 0 && st.bytes_out > 0);
    }
    size_t deleted = cw_gc(&w.segs, w.vi);
    assert_true(deleted > 0 && deleted <= before);
    cw_check_all(&w, w.vi);
    /* Every segment left is one volume's. */
    for (size_t i = 0; i < w.segs.n; i++) {
        segidx_segment *s;
        assert_int_equal(segidx_segment_open(w.segs.s[i].buf, w.segs.s[i].len, &s), SEGIDX_OK);
        segidx_segment_stats st;
        segidx_segment_stats_get(s, &st);
        assert_int_equal(st.volume_count, 1);
        segidx_segment_close(s);
    }
    /* Big volume-local segments: nothing worth doing. */
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        segidx_compact_stats st = compact(&w, w.vi, v, CW_PAGE, 1 << 20, SEGIDX_OK);
        assert_int_equal(st.segments_in, 0);
        assert_int_equal(st.segments_out, 0);
    }
    cw_close(&w);
}

/* max_input_bytes bounds one call: small inputs, many calls, same reads. */
static void test_plan_bounded(void **state)
{
    (void)state;
    cw_world w;
    cw_open(&w, 6, &small_rounds);
    build(&w, 150);
    segidx_compact_stats st = compact(&w, w.vi, 0, 1 << 20, 2 * CW_PAGE, SEGIDX_OK);
    assert_true(st.segments_in >= 1);
    assert_true(st.pages <= 6 + 2); /* the first candidate whole, then up to the bound */
    cw_check_all(&w, w.vi);
    for (int i = 0; i < 200 && st.segments_in; i++)
        st = compact(&w, w.vi, 0, 1 << 20, 4 * CW_PAGE, SEGIDX_OK);
    assert_int_equal(st.segments_in, 0);
    cw_gc(&w.segs, w.vi);
    cw_check_all(&w, w.vi);
    cw_close(&w);
}

/* A compaction whose planned callback stops writes nothing. */
static int stop_plan(void *ctx, const segidx_sid *old, size_t n)
{
    (void)old;
    size_t *seen = ctx;
    *seen = n;
    return 42;
}

static int stop_next_sid(void *ctx, segidx_sid *sid)
{
    (void)ctx, (void)sid;
    fail_msg("a stopped compaction asked for a sid");
    return SEGIDX_EIO;
}

static void test_plan_stop(void **state)
{
    (void)state;
    cw_world w;
    cw_open(&w, 8, &small_rounds);
    build(&w, 60);
    dump before = dump_store(w.raw);
    size_t segs = w.segs.n, seen = 0;
    segidx_loader *l = cw_loader(&w.segs);
    segidx_compact_options o = cw_compact_options(&w, 1 << 20, 1 << 20);
    o.planned = stop_plan;
    o.next_sid = stop_next_sid;
    o.ctx = &seen;
    segidx_vid vid = cw_vid(1);
    assert_int_equal(segidx_volume_compact(w.vi, l, &vid, &o, NULL), 42);
    assert_true(seen > 0);
    o.next_sid = NULL;
    assert_int_equal(segidx_volume_compact(w.vi, l, &vid, &o, NULL), SEGIDX_EINVAL);
    segidx_vid nobody = cw_vid(100);
    o = cw_compact_options(&w, 1 << 20, 1 << 20);
    assert_int_equal(segidx_volume_compact(w.vi, l, &nobody, &o, NULL), SEGIDX_ENOTFOUND);
    segidx_loader_free(l);
    dump after = dump_store(w.raw);
    assert_dumps_equal(&before, &after);
    assert_int_equal(w.segs.n, segs);
    free(before.p);
    free(after.p);
    cw_close(&w);
}

/* A volume whose commits are all empty has a meta and no entry: nothing
 * to plan, nothing undefined on the way (make asan runs it under UBSan). */
static void test_only_empty_commits(void **state)
{
    (void)state;
    cw_world w;
    cw_open(&w, 9, &small_rounds);
    segidx_vid vid = cw_vid(2);
    for (segidx_lsn lsn = 1; lsn <= 3; lsn++)
        assert_int_equal(segidx_volume_commit(w.vi, &vid, lsn, 1, NULL, 0), SEGIDX_OK);
    segidx_compact_stats st = compact(&w, w.vi, 2, 1 << 20, 1 << 20, SEGIDX_OK);
    assert_int_equal(st.segments_seen, 0);
    assert_int_equal(st.segments_in, 0);
    assert_int_equal(w.segs.n, 0);
    cw_close(&w);
}

/* ------------------------------------------------------------ re-point */

static void test_repoint_invalid(void **state)
{
    (void)state;
    cw_world w;
    cw_open(&w, 11, &small_rounds);
    build(&w, 30);
    segidx_vid vid = cw_vid(0);
    segidx_sid old = cw_sid(1), fresh = cw_sid(1000000);
    segidx_offset_set *some = segidx_offset_set_new();
    segidx_offset_set *none = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add(some, 1), SEGIDX_OK);
    segidx_commit_segment seg = { fresh, some };
    segidx_repoint mv = { vid, 1, &seg, 1 };
    dump before = dump_store(w.raw);
    assert_int_equal(segidx_volume_repoint(NULL, &old, 1, &mv, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_repoint(w.vi, NULL, 1, &mv, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 0, &mv, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, NULL, 1), SEGIDX_EINVAL);
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, &mv, 0), SEGIDX_EINVAL);
    segidx_repoint twice[2] = { mv, mv };
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, twice, 2), SEGIDX_EINVAL);
    segidx_repoint lsn0 = { vid, 0, &seg, 1 };
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, &lsn0, 1), SEGIDX_EINVAL);
    segidx_commit_segment into_old = { old, some };
    segidx_repoint self = { vid, 1, &into_old, 1 };
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, &self, 1), SEGIDX_EINVAL);
    segidx_commit_segment empty = { fresh, none };
    segidx_repoint hollow = { vid, 1, &empty, 1 };
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, &hollow, 1), SEGIDX_EINVAL);
    segidx_commit_segment doubled[2] = { { fresh, some }, { fresh, none } };
    segidx_repoint dup = { vid, 1, doubled, 2 };
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, &dup, 1), SEGIDX_EINVAL);
    /* Moves of unknown volumes and of LSNs above the head move nothing. */
    segidx_repoint nobody = { cw_vid(200), 1, &seg, 1 };
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, &nobody, 1), SEGIDX_OK);
    segidx_repoint future = { vid, w.vol[0].lsn + 1, &seg, 1 };
    assert_int_equal(segidx_volume_repoint(w.vi, &old, 1, &future, 1), SEGIDX_OK);
    dump after = dump_store(w.raw);
    assert_dumps_equal(&before, &after);
    free(before.p);
    free(after.p);
    segidx_offset_set_free(some);
    segidx_offset_set_free(none);
    cw_close(&w);
}

/* The entries of one commit, as the catalog holds them. */
typedef struct commit_entries {
    segidx_lsn lsn;
    segidx_sid sid[8];
    segidx_offset_set *off[8];
    size_t n;
} commit_entries;

static int take_commit(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                       const segidx_offset_set *offsets)
{
    commit_entries *c = ctx;
    if (lsn == c->lsn && c->n < 8) {
        c->sid[c->n] = *sid;
        c->off[c->n++] = segidx_offset_set_copy(offsets);
    }
    return 0;
}

static void commit_entries_free(commit_entries *c)
{
    for (size_t i = 0; i < c->n; i++)
        segidx_offset_set_free(c->off[i]);
    c->n = 0;
}

/* The first commit of volume v with two offsets or more in one entry. */
static void find_commit(cw_world *w, unsigned v, commit_entries *c)
{
    segidx_vid vid = cw_vid(v);
    for (segidx_lsn l = 1; l <= w->vol[v].lsn; l++) {
        *c = (commit_entries){ .lsn = l };
        assert_int_equal(segidx_volume_commits(w->vi, &vid, take_commit, c), SEGIDX_OK);
        if (c->n && segidx_offset_set_cardinality(c->off[0]) >= 2)
            return;
        commit_entries_free(c);
    }
    fail_msg("no commit with two offsets in one entry");
}

static int add_page(segidx_offset off, void *ctx)
{
    void **a = ctx;
    segidx_segment_builder *b = a[0];
    const segidx_lsn *lsn = a[1];
    uint8_t page[CW_PAGE];
    cw_page(0, off, *lsn, page);
    segidx_vid vid = cw_vid(0);
    return segidx_segment_builder_add(b, &vid, off, *lsn, page);
}

/* A segment `sid` holding volume 0's pages `offs` at `lsn`, in the store. */
static void write_segment(cw_world *w, const segidx_sid *sid, segidx_lsn lsn,
                          const segidx_offset_set *offs)
{
    segidx_segment_options so = { CW_PAGE, 0, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&so);
    assert_non_null(b);
    void *a[2] = { b, &lsn };
    assert_int_equal(segidx_offset_set_iterate(offs, add_page, a), 0);
    size_t len = segidx_segment_builder_size(b);
    uint8_t *buf = malloc(len);
    assert_int_equal(segidx_segment_builder_finish(b, sid, buf, len), SEGIDX_OK);
    cw_store_add(&w->segs, sid, buf, len);
    free(buf);
    segidx_segment_builder_free(b);
}

static int drop_first(segidx_offset off, void *ctx)
{
    segidx_offset *first = ctx;
    *first = off;
    return 1;
}

/* By hand: a re-point that would drop an offset of a replaced entry, or
 * lands on a sid the commit names already, is refused; a whole one
 * replaces the entry and reads stay exact. */
static void test_repoint_by_hand(void **state)
{
    (void)state;
    cw_world w;
    cw_open(&w, 12, &small_rounds);
    build(&w, 60);
    commit_entries c;
    find_commit(&w, 0, &c);
    segidx_vid vid = cw_vid(0);
    segidx_sid fresh = cw_sid(2000000), stranger = cw_sid(3000000);
    dump before = dump_store(w.raw);

    segidx_offset_set *less = segidx_offset_set_copy(c.off[0]);
    segidx_offset first = 0;
    segidx_offset_set_iterate(less, drop_first, &first);
    segidx_offset_set *gone = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add(gone, first), SEGIDX_OK);
    segidx_offset_set_free(segidx_offset_set_cut(less, gone));
    segidx_commit_segment short_seg = { fresh, less };
    segidx_repoint mv = { vid, c.lsn, &short_seg, 1 };
    assert_int_equal(segidx_volume_repoint(w.vi, &c.sid[0], 1, &mv, 1), SEGIDX_EINVAL);

    dump after = dump_store(w.raw);
    assert_dumps_equal(&before, &after);

    /* Two new segments splitting the entry: both named, the old one not. */
    write_segment(&w, &fresh, c.lsn, less);
    write_segment(&w, &stranger, c.lsn, gone);
    segidx_commit_segment split[2] = { { fresh, less }, { stranger, gone } };
    mv = (segidx_repoint){ vid, c.lsn, split, 2 };
    assert_int_equal(segidx_volume_repoint(w.vi, &c.sid[0], 1, &mv, 1), SEGIDX_OK);
    commit_entries now = { .lsn = c.lsn };
    assert_int_equal(segidx_volume_commits(w.vi, &vid, take_commit, &now), SEGIDX_OK);
    assert_int_equal(now.n, c.n + 1);
    for (size_t i = 0; i < now.n; i++)
        assert_memory_not_equal(now.sid[i].bytes, c.sid[0].bytes, 16);
    cw_check_all(&w, w.vi);
    /* Again: nothing names the old sid for that commit, nothing moves. */
    dump again = dump_store(w.raw);
    assert_int_equal(segidx_volume_repoint(w.vi, &c.sid[0], 1, &mv, 1), SEGIDX_OK);
    /* Onto a segment another entry of the commit names: refused. */
    segidx_commit_segment onto = { stranger, less };
    segidx_repoint over = { vid, c.lsn, &onto, 1 };
    assert_int_equal(segidx_volume_repoint(w.vi, &fresh, 1, &over, 1), SEGIDX_EINVAL);
    dump again_after = dump_store(w.raw);
    assert_dumps_equal(&again, &again_after);
    free(before.p);
    free(after.p);
    free(again.p);
    free(again_after.p);
    segidx_offset_set_free(less);
    segidx_offset_set_free(gone);
    commit_entries_free(&c);
    commit_entries_free(&now);
    cw_close(&w);
}

/* ------------------------------------------------------------ bad segments */

static cw_segment *stored(cw_world *w, const segidx_sid *sid)
{
    for (size_t i = 0; i < w->segs.n; i++)
        if (!memcmp(w->segs.s[i].sid.bytes, sid->bytes, 16))
            return &w->segs.s[i];
    fail_msg("segment not in the store");
    return NULL;
}

/* Compacting volume 0 fails with ECORRUPT and changes nothing. */
static void assert_compact_refused(cw_world *w)
{
    dump before = dump_store(w->raw);
    compact(w, w->vi, 0, 1 << 20, 1 << 20, SEGIDX_ECORRUPT);
    dump after = dump_store(w->raw);
    assert_dumps_equal(&before, &after);
    free(before.p);
    free(after.p);
}

/* A segment lacking a page its entry names, and one with a damaged page:
 * compaction copies neither, and re-points nothing. */
static void test_bad_segments_refused(void **state)
{
    (void)state;
    for (int damage = 0; damage < 2; damage++) {
        cw_world w;
        cw_open(&w, 13, &small_rounds);
        build(&w, 60);
        commit_entries c;
        find_commit(&w, 0, &c);
        cw_segment *seg = stored(&w, &c.sid[0]);
        segidx_offset first = 0;
        segidx_offset_set_iterate(c.off[0], drop_first, &first);
        if (damage) {
            segidx_segment *s;
            assert_int_equal(segidx_segment_open(seg->buf, seg->len, &s), SEGIDX_OK);
            segidx_page_ref ref;
            segidx_vid vid = cw_vid(0);
            assert_int_equal(segidx_segment_find(s, &vid, first, c.lsn, &ref), SEGIDX_OK);
            uint64_t at;
            uint32_t len;
            assert_int_equal(segidx_segment_page_range(s, ref.local, &at, &len), SEGIDX_OK);
            segidx_segment_close(s);
            seg->buf[at + 7] ^= 0x40;
        } else {
            /* The same sid, built again without the commit's first page. */
            segidx_offset_set *less = segidx_offset_set_copy(c.off[0]);
            segidx_offset_set *gone = segidx_offset_set_new();
            assert_int_equal(segidx_offset_set_add(gone, first), SEGIDX_OK);
            segidx_offset_set_free(segidx_offset_set_cut(less, gone));
            size_t n = w.segs.n;
            write_segment(&w, &c.sid[0], c.lsn, less);
            free(seg->buf);
            *seg = w.segs.s[--w.segs.n];
            assert_int_equal(w.segs.n, n);
            segidx_offset_set_free(less);
            segidx_offset_set_free(gone);
        }
        assert_compact_refused(&w);
        commit_entries_free(&c);
        cw_close(&w);
    }
}

/* ------------------------------------------------------------ races
 *
 * The racing operation runs through the world's second handle exactly
 * before call k of the operation under test, for every k the operation
 * makes; afterwards (and after a gc of everything nothing names) every
 * read at every retained LSN is exact and prune's cut holds.
 */
typedef struct race {
    cw_world w;
    unsigned v;
    segidx_lsn keep;
    bool ran;
} race;

static void race_open(race *r)
{
    cw_open(&r->w, 4242, &small_rounds);
    build(&r->w, 90);
    r->v = 1;
    r->ran = false;
    /* Half the volume's history below the prune point. */
    r->keep = r->w.vol[r->v].lsn / 2 + 1;
}

static void prune_now(void *ctx)
{
    race *r = ctx;
    segidx_vid vid = cw_vid(r->v);
    assert_int_equal(segidx_volume_prune(r->w.other, &vid, r->keep), SEGIDX_OK);
    r->w.vol[r->v].keep_from = r->keep;
    r->ran = true;
}

static void compact_now(void *ctx)
{
    race *r = ctx;
    compact(&r->w, r->w.other, r->v, 1 << 20, 1 << 20, SEGIDX_OK);
    r->ran = true;
}

static void commit_now(void *ctx)
{
    race *r = ctx;
    for (int i = 0; i < 3; i++)
        cw_commit(&r->w, r->v);
    cw_flush(&r->w);
    r->ran = true;
}

static void do_compact(race *r)
{
    compact(&r->w, r->w.vi, r->v, 1 << 20, 1 << 20, SEGIDX_OK);
}

static void do_prune(race *r)
{
    segidx_vid vid = cw_vid(r->v);
    assert_int_equal(segidx_volume_prune(r->w.vi, &vid, r->keep), SEGIDX_OK);
    r->w.vol[r->v].keep_from = r->keep;
}

/* Run `op` with `racer` before its call k, for k = 1, 2, ... until op
 * makes fewer than k calls. */
static void race_every_call(void (*op)(race *r), void (*racer)(void *ctx))
{
    for (long k = 1;; k++) {
        race r;
        race_open(&r);
        stub_hook(r.w.stub, k, racer, &r);
        op(&r);
        r.w.stub->hook_at = 0;
        bool ran = r.ran;
        cw_flush(&r.w);
        cw_gc(&r.w.segs, r.w.vi);
        cw_check_all(&r.w, r.w.vi);
        cw_check_pruned(&r.w, r.w.vi);
        cw_close(&r.w);
        if (!ran)
            break;
    }
}

static void test_race_prune_under_compact(void **state)
{
    (void)state;
    race_every_call(do_compact, prune_now);
}

static void test_race_compact_under_prune(void **state)
{
    (void)state;
    race_every_call(do_prune, compact_now);
}

static void test_race_commit_under_compact(void **state)
{
    (void)state;
    race_every_call(do_compact, commit_now);
}

static void test_race_compact_under_compact(void **state)
{
    (void)state;
    race_every_call(do_compact, compact_now);
}

/* The prune that lost to a re-point would have written its cut back under
 * the old sid: the old segment named again after gc deleted it. Here the
 * prune's write meets the re-point first, so it must read again. */
static void test_race_compact_under_prune_write(void **state)
{
    (void)state;
    race r;
    race_open(&r);
    /* A prune's calls: meta get, entries scan, checkpoint scan, write. */
    r.w.stub->writes = 0;
    stub_hook(r.w.stub, 4, compact_now, &r);
    do_prune(&r);
    assert_true(r.ran);
    cw_gc(&r.w.segs, r.w.vi);
    cw_check_all(&r.w, r.w.vi);
    cw_check_pruned(&r.w, r.w.vi);
    cw_close(&r.w);
}

/* ------------------------------------------------------------ failures */

/* A store failing at call k of a compaction, for every k: the call fails
 * with the store's error, the catalog is as it was, reads stay exact. */
static void fail_at(int method, long k, bool *reached)
{
    race r;
    race_open(&r);
    dump before = dump_store(r.w.raw);
    long *at = method == 0 ? &r.w.stub->fail_get_at
             : method == 1 ? &r.w.stub->fail_scan_at : &r.w.stub->fail_write_at;
    *at = k;
    segidx_loader *l = cw_loader(&r.w.segs);
    segidx_compact_options o = cw_compact_options(&r.w, 1 << 20, 1 << 20);
    segidx_vid vid = cw_vid(r.v);
    int rc = segidx_volume_compact(r.w.vi, l, &vid, &o, NULL);
    segidx_loader_free(l);
    *reached = *at == 0;
    if (*reached) {
        assert_int_equal(rc, SEGIDX_EIO);
        dump after = dump_store(r.w.raw);
        assert_dumps_equal(&before, &after);
        free(after.p);
    } else {
        assert_int_equal(rc, SEGIDX_OK);
    }
    *at = 0;
    free(before.p);
    cw_gc(&r.w.segs, r.w.vi);
    cw_check_all(&r.w, r.w.vi);
    cw_close(&r.w);
}

static void test_store_fails_at_every_call(void **state)
{
    (void)state;
    for (int method = 0; method < 3; method++) {
        long failures = 0;
        bool reached = true;
        for (long k = 1; reached; k++) {
            fail_at(method, k, &reached);
            failures += reached;
        }
        assert_true(failures >= 1);
    }
}

/* Every checkpoint read a changed query makes, and a prune landing before
 * each of its store calls: the answer stays exact or is ERANGE. */
static void test_changed_prune_race(void **state)
{
    (void)state;
    for (long k = 1; k < 40; k++) {
        race r;
        race_open(&r);
        stub_hook(r.w.stub, k, prune_now, &r);
        segidx_lsn to = r.w.vol[r.v].lsn;
        check_changed(&r.w, r.w.vi, r.v, 3, to);
        r.w.stub->hook_at = 0;
        cw_close(&r.w);
    }
}

const struct CMUnitTest compaction_tests[] = {
    cmocka_unit_test(test_model_random),
    cmocka_unit_test(test_model_walk_only),
    cmocka_unit_test(test_plan_volume_local),
    cmocka_unit_test(test_plan_bounded),
    cmocka_unit_test(test_plan_stop),
    cmocka_unit_test(test_only_empty_commits),
    cmocka_unit_test(test_repoint_invalid),
    cmocka_unit_test(test_repoint_by_hand),
    cmocka_unit_test(test_bad_segments_refused),
    cmocka_unit_test(test_race_prune_under_compact),
    cmocka_unit_test(test_race_compact_under_prune),
    cmocka_unit_test(test_race_commit_under_compact),
    cmocka_unit_test(test_race_compact_under_compact),
    cmocka_unit_test(test_race_compact_under_prune_write),
    cmocka_unit_test(test_store_fails_at_every_call),
    cmocka_unit_test(test_changed_every_pair),
    cmocka_unit_test(test_changed_prune_race),
};

int main(void)
{
    return cmocka_run_group_tests(compaction_tests, NULL, NULL);
}
