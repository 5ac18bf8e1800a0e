/* A threaded stress of compaction, every read checked against a model.
 *
 * Over one in-memory store, each thread with its own volume index handle
 * (and loader, where it reads segments):
 * - a committer commits random pages to the volumes (cw_commit(), through
 *   a packer whose commit_ready catalogues each commit with
 *   segidx_volume_commit()), and publishes, under the model's mutex, each
 *   LSN that returned OK;
 * - compactors run segidx_volume_compact() on random volumes with random
 *   bounds, and prune now and then (or a pruner thread does);
 * - readers read random offsets at random LSNs between a volume's
 *   published keep_from and its published head, and check every page's
 *   bytes against the model: page (v, off, lsn) is cw_page()'s pattern,
 *   and the model knows which LSN wrote which offset. A read may answer
 *   SEGIDX_ERANGE only when a prune past its LSN was under way, and the
 *   volume's keep_from is then past it; anything else but OK fails;
 * - a collector deletes segments nothing needs, with a grace: a segment
 *   goes only when it was unreferenced (segidx_volume_index_segments())
 *   in two rounds separated by the end of every read that started before
 *   the first, and its writer (a commit batch or a compaction) had
 *   finished before the first round. Such a segment is never named again,
 *   and the collector checks that too; so no read ever misses a segment it
 *   found.
 * At the end every read at every retained LSN is exact (cw_check_all()),
 * every segment named is in the store, and prune's cut holds.
 *
 * Threads report failures through stress_fail() (cmocka's asserts belong
 * to the main thread; the committer's, in the world's helpers, only hold).
 * Bounded by LSNs: the committer stops when every volume holds its share;
 * the others run while it runs, and a minimum. SEGIDX_TEST_QUICK shrinks
 * the shares. A SEGIDX_SINGLE_THREADED=1 build skips it. */
#include "compacttest.h"
#include "kv_forward.h"

#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

typedef unsigned long long ull;

/* Threads take turns loosely: the committer waits while it is LAG
 * batches ahead of either the compactions or READS_PER_BATCH reads a
 * batch, and those wait while they are that far ahead of it. */
enum { SLOTS = 8, READERS = 2, LAG = 4, READS_PER_BATCH = 4 };

/* ------------------------------------------------------------ sid sets */

/* compacttest.h's list of sids (cw_collect_ref() appends one), sorted
 * for lookups. */
typedef struct cw_refs sid_set;

static int compare_sid(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void sid_set_sort(sid_set *set)
{
    if (set->n > 1) /* sids is NULL when empty, and qsort may not have NULL */
        qsort(set->sids, set->n, sizeof *set->sids, compare_sid);
}

/* `set` must be sorted. */
static bool sid_set_has(const sid_set *set, const segidx_sid *sid)
{
    return set->n && bsearch(sid, set->sids, set->n, sizeof *set->sids, compare_sid);
}

static void sid_set_free(sid_set *set)
{
    free(set->sids);
    *set = (sid_set){ NULL, 0, 0 };
}

/* ------------------------------------------------------------ shared state */

typedef struct stress_run {
    const char *name;
    uint64_t seed;
    segidx_volume_index_options opts;
    unsigned compactors;  /* 1 or 2 */
    bool pruner;          /* prunes from a thread of their own */
    long share;           /* LSNs a volume gets, at most CW_MAX_LSN */
} stress_run;

typedef struct stress {
    const stress_run *run;
    cw_world *w;          /* the store, the segments, the model */
    segidx_lsn max_lsn;
    /* The model: the world's volumes are the committer's (cw_commit()),
     * but for rows wrote[lsn] of LSNs up to a published head, which it
     * wrote before publishing them and never writes again. What other
     * threads know is published under the mutex. */
    pthread_mutex_t model;
    segidx_lsn head[CW_VOLUMES];      /* catalogued: its commit returned OK */
    segidx_lsn keep_from[CW_VOLUMES]; /* the highest keep_from a prune returned OK for */
    segidx_lsn intent[CW_VOLUMES];    /* the highest keep_from a prune was asked for */
    /* Operations in flight: active[slot] is the ticket of the read (or
     * compaction) a thread runs, 0 when none; pending[slot] the segments
     * its commit batch or compaction wrote so far. */
    pthread_mutex_t track;
    uint64_t next_ticket;
    uint64_t active[SLOTS];
    sid_set pending[SLOTS];
    atomic_int committing;
    atomic_long failures;
    atomic_long batches, commits, compactions, compacted_in, compacted_out,
        compact_conflicts, prunes, prune_conflicts, reads, reads_pruned, pages_checked,
        gc_rounds, gc_deleted;
    /* Every thread's view of the world's store (borrowed: the world closes
     * it), counting the writes the store refused (an EXPECT failed:
     * another writer got in between, and the library read again and
     * retried). */
    kv_forward store;
} stress;

/* One line on stderr (the first 20 failures), held together. */
static void stress_fail(stress *s, const char *fmt, ...)
{
    if (atomic_fetch_add(&s->failures, 1) >= 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    fprintf(stderr, "compaction stress (%s, seed %llu): ", s->run->name, (ull)s->run->seed);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

#define CHECK(s, cond, ...)                \
    do {                                   \
        if (!(cond))                       \
            stress_fail((s), __VA_ARGS__); \
    } while (0)

static bool stress_ok(stress *s)
{
    return atomic_load(&s->failures) == 0;
}

typedef struct worker {
    stress *s;
    unsigned slot;
    test_rng rng;
    segidx_volume_index *vi;
    segidx_loader *l;
} worker;

static void nap(long usec)
{
    struct timespec t = { 0, usec * 1000 };
    nanosleep(&t, NULL);
}

/* Nap while `cond` holds, at most a second. */
#define WAIT_WHILE(s, cond)                                                 \
    for (int naps_ = 0; naps_ < 20000 && stress_ok(s) && (cond); naps_++) \
        nap(50)

/* A read (or compaction) begins: it may use any segment named from now
 * until it ends. */
static void op_begin(worker *k)
{
    stress *s = k->s;
    pthread_mutex_lock(&s->track);
    s->active[k->slot] = ++s->next_ticket;
    pthread_mutex_unlock(&s->track);
}

/* A read, compaction or commit batch ends: what it wrote is catalogued
 * (or never will be). */
static void op_end(worker *k)
{
    stress *s = k->s;
    pthread_mutex_lock(&s->track);
    s->active[k->slot] = 0;
    s->pending[k->slot].n = 0;
    pthread_mutex_unlock(&s->track);
}

/* Every read that began at or before ticket `t` has ended. */
static bool grace_passed(stress *s, uint64_t t)
{
    bool passed = true;
    pthread_mutex_lock(&s->track);
    for (unsigned i = 0; i < SLOTS; i++)
        passed &= s->active[i] == 0 || s->active[i] > t;
    pthread_mutex_unlock(&s->track);
    return passed;
}

static int worker_next_sid(void *ctx, segidx_sid *sid)
{
    worker *k = ctx;
    return cw_next_sid(&k->s->w->segs, sid);
}

/* A segment is pending from before it is in the store until its writer
 * ends. */
static int worker_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                       const segidx_packed_commit *commits, size_t n)
{
    worker *k = ctx;
    stress *s = k->s;
    pthread_mutex_lock(&s->track);
    cw_collect_ref(&s->pending[k->slot], sid);
    cw_emit(&s->w->segs, sid, buf, len, commits, n);
    pthread_mutex_unlock(&s->track);
    return 0;
}

static segidx_volume_index *open_handle(stress *s)
{
    segidx_volume_index *vi = NULL;
    if (segidx_volume_index_open_with(kv_forward_kv(&s->store), &s->run->opts, &vi))
        abort();
    return vi;
}

static void published(stress *s, unsigned v, segidx_lsn *head, segidx_lsn *keep_from)
{
    pthread_mutex_lock(&s->model);
    *head = s->head[v];
    *keep_from = s->keep_from[v];
    pthread_mutex_unlock(&s->model);
}

/* ------------------------------------------------------------ the committer */

/* The world's commit_ready (it catalogues through the world's second
 * handle, the committer's own), then the LSN is published. */
static int commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_commit_segment *segs, size_t n)
{
    worker *k = ctx;
    stress *s = k->s;
    int rc = cw_commit_ready(s->w, vid, lsn, segs, n);
    if (rc == SEGIDX_OK) {
        pthread_mutex_lock(&s->model);
        s->head[vid->bytes[15] - 1u] = lsn;
        pthread_mutex_unlock(&s->model);
        atomic_fetch_add(&s->commits, 1);
    } else {
        stress_fail(s, "commit %llu of volume %u: %s", (ull)lsn, vid->bytes[15] - 1u,
                    segidx_strerror(rc));
    }
    return rc;
}

/* Batches of a few cw_commit()s of random volumes, each batch flushed:
 * the segments it wrote are pending until then. An empty commit goes
 * straight to the index and is published with the next commit of its
 * volume (reads take only published LSNs). The world's asserts hold on
 * this thread as long as nothing fails; a failure is a crash. */
static void *committer(void *arg)
{
    worker *k = arg;
    stress *s = k->s;
    cw_world *w = s->w;
    segidx_packer_free(w->packer);
    segidx_packer_options po = { { CW_PAGE, 0, NULL }, worker_next_sid, worker_emit, k,
                                 commit_ready };
    if (segidx_packer_new(&po, &w->packer) != SEGIDX_OK)
        abort();
    for (;;) {
        unsigned open[CW_VOLUMES], n_open = 0;
        for (unsigned v = 0; v < CW_VOLUMES; v++)
            if (w->vol[v].added < s->max_lsn)
                open[n_open++] = v;
        if (!n_open || !stress_ok(s))
            break;
        /* Keep pace with the compactions and the reads, so that they
         * meet every state of it. */
        long batches = atomic_load(&s->batches);
        WAIT_WHILE(s, batches > LAG + atomic_load(&s->compactions) / (long)s->run->compactors ||
                          batches > LAG + atomic_load(&s->reads) / READS_PER_BATCH);
        for (unsigned i = 0, n = 1 + (unsigned)rng_below(&k->rng, 4); i < n; i++) {
            unsigned v = open[rng_below(&k->rng, n_open)];
            if (w->vol[v].added < s->max_lsn)
                cw_commit(w, v);
        }
        cw_flush(w);
        op_end(k);
        atomic_fetch_add(&s->batches, 1);
    }
    atomic_store(&s->committing, 0);
    return NULL;
}

/* ------------------------------------------------------------ compactions, prunes */

static bool keep_going(stress *s, long done, long minimum)
{
    return stress_ok(s) && (atomic_load(&s->committing) || done < minimum);
}

/* A random volume with a published commit, or -1. */
static int pick_volume(worker *k, segidx_lsn *head, segidx_lsn *keep_from)
{
    unsigned v = (unsigned)rng_below(&k->rng, CW_VOLUMES);
    published(k->s, v, head, keep_from);
    return *head ? (int)v : -1;
}

/* Prune a random volume to a random LSN in [keep_from, head]. */
static void prune_one(worker *k)
{
    stress *s = k->s;
    segidx_lsn head, kf;
    int v = pick_volume(k, &head, &kf);
    if (v < 0)
        return;
    segidx_lsn lo = kf ? kf : 1;
    segidx_lsn keep = lo + rng_below(&k->rng, head - lo + 1);
    pthread_mutex_lock(&s->model);
    if (keep > s->intent[v])
        s->intent[v] = keep;
    pthread_mutex_unlock(&s->model);
    segidx_vid vid = cw_vid((unsigned)v);
    int rc = segidx_volume_prune(k->vi, &vid, keep);
    if (rc == SEGIDX_OK) {
        pthread_mutex_lock(&s->model);
        if (keep > s->keep_from[v])
            s->keep_from[v] = keep;
        pthread_mutex_unlock(&s->model);
        atomic_fetch_add(&s->prunes, 1);
    } else if (rc == SEGIDX_ECONFLICT) {
        atomic_fetch_add(&s->prune_conflicts, 1); /* nothing written; intent stays high */
    } else {
        stress_fail(s, "prune of volume %d to %llu: %s", v, (ull)keep, segidx_strerror(rc));
    }
}

static void *compactor(void *arg)
{
    worker *k = arg;
    stress *s = k->s;
    for (long n = 0; keep_going(s, n, 20); n++) {
        WAIT_WHILE(s, atomic_load(&s->committing) && n > LAG + atomic_load(&s->batches));
        segidx_lsn head, kf;
        int v = pick_volume(k, &head, &kf);
        if (v < 0) {
            nap(100);
            continue;
        }
        segidx_compact_options o = { { CW_PAGE, 0, NULL }, worker_next_sid, worker_emit, NULL, k,
                                     CW_PAGE * (1 + rng_below(&k->rng, 40)),
                                     CW_PAGE * (1 + rng_below(&k->rng, 60)) };
        segidx_compact_stats st = { 0 };
        segidx_vid vid = cw_vid((unsigned)v);
        op_begin(k);
        int rc = segidx_volume_compact(k->vi, k->l, &vid, &o, &st);
        op_end(k);
        if (rc == SEGIDX_OK) {
            CHECK(s, st.segments_in <= st.segments_seen, "compaction of %d: %zu of %zu segments",
                  v, st.segments_in, st.segments_seen);
            CHECK(s, st.segments_in == 0 || (st.segments_out > 0 && st.pages > 0),
                  "compaction of %d replaced %zu segments, wrote %zu (%llu pages)", v,
                  st.segments_in, st.segments_out, (ull)st.pages);
            atomic_fetch_add(&s->compacted_in, (long)st.segments_in);
            atomic_fetch_add(&s->compacted_out, (long)st.segments_out);
        } else if (rc == SEGIDX_ECONFLICT && (s->run->pruner || s->run->compactors > 1)) {
            atomic_fetch_add(&s->compact_conflicts, 1);
        } else {
            stress_fail(s, "compaction of volume %d: %s", v, segidx_strerror(rc));
        }
        atomic_fetch_add(&s->compactions, 1);
        if (!s->run->pruner && rng_below(&k->rng, 4) == 0)
            prune_one(k);
    }
    return NULL;
}

static void *pruner(void *arg)
{
    worker *k = arg;
    for (long n = 0; keep_going(k->s, n, 10); n++) {
        prune_one(k);
        nap(200);
    }
    return NULL;
}

/* ------------------------------------------------------------ readers */

/* The model's answer: the newest LSN <= lsn that wrote `off`, or 0. Only
 * rows up to a published head are read. */
static segidx_lsn model_version(const stress *s, unsigned v, uint32_t off, segidx_lsn lsn)
{
    for (segidx_lsn l = lsn; l > 0; l--)
        if (s->w->vol[v].wrote[l][off])
            return l;
    return 0;
}

typedef struct read_check {
    stress *s;
    unsigned v;
    segidx_lsn lsn;
    const segidx_offset_set *asked;
    long last;        /* the last offset handed over, -1 */
    unsigned calls;
    unsigned wrong;
    char why[160];
} read_check;

static int check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    read_check *c = ctx;
    c->calls++;
    segidx_lsn want = off < CW_OFFSETS ? model_version(c->s, c->v, off, c->lsn) : 0;
    bool ok = (long)off > c->last && segidx_offset_set_contains(c->asked, off);
    if (want) {
        uint8_t expect[CW_PAGE];
        cw_page(c->v, off, want, expect);
        ok = ok && page && lsn == want && !memcmp(page, expect, CW_PAGE);
    } else {
        ok = ok && !page && lsn == 0;
    }
    if (!ok && !c->wrong++)
        snprintf(c->why, sizeof c->why, "offset %u: got %s at LSN %llu, the model has LSN %llu",
                 off, page ? "a page" : "a zero page", (ull)lsn, (ull)want);
    c->last = off;
    return 0;
}

static void read_one(worker *k)
{
    stress *s = k->s;
    segidx_lsn head, kf;
    int v = pick_volume(k, &head, &kf);
    if (v < 0) {
        nap(50);
        return;
    }
    segidx_lsn lo = kf ? kf : 1;
    unsigned how = (unsigned)rng_below(&k->rng, 8);
    segidx_lsn lsn = how == 0 ? lo : how == 1 ? head : lo + rng_below(&k->rng, head - lo + 1);
    segidx_offset_set *asked = segidx_offset_set_new();
    if (!asked)
        abort();
    if (rng_below(&k->rng, 2))
        segidx_offset_set_add_range(asked, 0, CW_OFFSETS + 1);
    else
        for (unsigned i = 0, n = 1 + (unsigned)rng_below(&k->rng, 12); i < n; i++)
            segidx_offset_set_add(asked, (segidx_offset)rng_below(&k->rng, CW_OFFSETS));
    read_check c = { s, (unsigned)v, lsn, asked, -1, 0, 0, "" };
    segidx_vid vid = cw_vid((unsigned)v);
    op_begin(k);
    int rc = segidx_read_pages(k->vi, k->l, &vid, lsn, asked, check_page, &c);
    op_end(k);
    atomic_fetch_add(&s->reads, 1);
    if (rc == SEGIDX_OK) {
        CHECK(s, !c.wrong, "read of volume %d at %llu (head %llu, keep_from %llu): %s", v,
              (ull)lsn, (ull)head, (ull)kf, c.why);
        CHECK(s, c.calls == segidx_offset_set_cardinality(asked),
              "read of volume %d at %llu: %u pages of %llu", v, (ull)lsn, c.calls,
              (ull)segidx_offset_set_cardinality(asked));
        atomic_fetch_add(&s->pages_checked, (long)c.calls);
    } else if (rc == SEGIDX_ERANGE) {
        segidx_volume_meta m;
        int grc = segidx_volume_get(k->vi, &vid, &m);
        pthread_mutex_lock(&s->model);
        segidx_lsn intent = s->intent[v];
        pthread_mutex_unlock(&s->model);
        CHECK(s, c.calls == 0 && intent > lsn && grc == SEGIDX_OK && m.keep_from > lsn,
              "read of volume %d at %llu (keep_from %llu when picked): ERANGE, but the "
              "prunes asked for keep_from %llu, the volume's is %llu (%s), %u pages handed out",
              v, (ull)lsn, (ull)kf, (ull)intent, (ull)m.keep_from, segidx_strerror(grc),
              c.calls);
        atomic_fetch_add(&s->reads_pruned, 1);
    } else {
        stress_fail(s, "read of volume %d at %llu (head %llu, keep_from %llu): %s", v, (ull)lsn,
                    (ull)head, (ull)kf, segidx_strerror(rc));
    }
    segidx_offset_set_free(asked);
}

static void *reader(void *arg)
{
    worker *k = arg;
    stress *s = k->s;
    for (long n = 0; keep_going(s, n, 50); n++) {
        WAIT_WHILE(s, atomic_load(&s->committing) &&
                          n > (LAG + atomic_load(&s->batches)) * READS_PER_BATCH / READERS);
        read_one(k);
    }
    return NULL;
}

/* ------------------------------------------------------------ the collector */

/* The sids in the store, sorted. */
static void store_list(cw_store *st, sid_set *out)
{
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->n; i++)
        cw_collect_ref(out, &st->s[i].sid);
    pthread_mutex_unlock(&st->lock);
    sid_set_sort(out);
}

/* Candidates for deletion: segments in the store whose writer has ended
 * (the store and the writers' pending lists read together), and that the
 * index, scanned afterwards, does not name; `t` the last ticket a read
 * took by then. Checks that every segment named is in the store (only
 * this thread deletes, and a segment is stored before it is named). */
static void gc_scan(worker *k, sid_set *out, uint64_t *t)
{
    stress *s = k->s;
    cw_store *st = &s->w->segs;
    sid_set stored = { NULL, 0, 0 }, pending = { NULL, 0, 0 }, named = { NULL, 0, 0 };
    pthread_mutex_lock(&s->track);
    store_list(st, &stored);
    for (unsigned i = 0; i < SLOTS; i++)
        for (size_t j = 0; j < s->pending[i].n; j++)
            cw_collect_ref(&pending, &s->pending[i].sids[j]);
    pthread_mutex_unlock(&s->track);
    int rc = segidx_volume_index_segments(k->vi, cw_collect_ref, &named);
    CHECK(s, rc == SEGIDX_OK, "index_segments: %s", segidx_strerror(rc));
    pthread_mutex_lock(&s->track);
    *t = s->next_ticket;
    pthread_mutex_unlock(&s->track);

    sid_set_sort(&pending);
    sid_set_sort(&named);
    for (size_t i = 0; i < stored.n; i++)
        if (!sid_set_has(&pending, &stored.sids[i]) && !sid_set_has(&named, &stored.sids[i]))
            cw_collect_ref(out, &stored.sids[i]);
    sid_set_sort(out);

    /* Everything named is stored. */
    sid_set now = { NULL, 0, 0 };
    store_list(st, &now);
    for (size_t i = 0; i < named.n; i++)
        CHECK(s, sid_set_has(&now, &named.sids[i]),
              "segment %02x..%02x%02x is named but not stored", named.sids[i].bytes[0],
              named.sids[i].bytes[14], named.sids[i].bytes[15]);
    sid_set_free(&now);
    sid_set_free(&stored);
    sid_set_free(&pending);
    sid_set_free(&named);
}

/* Delete the candidates of the last round that are candidates again: all
 * of them, since a segment unreferenced after its writer ended is never
 * named again. What is left of `now` is the next round's candidates. */
static void gc_delete(worker *k, const sid_set *before, sid_set *now)
{
    stress *s = k->s;
    cw_store *st = &s->w->segs;
    for (size_t i = 0; i < before->n; i++)
        CHECK(s, sid_set_has(now, &before->sids[i]),
              "segment %02x..%02x%02x, unreferenced after its writer ended, is named again",
              before->sids[i].bytes[0], before->sids[i].bytes[14], before->sids[i].bytes[15]);
    long deleted = 0;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->n;) {
        if (sid_set_has(before, &st->s[i].sid) && sid_set_has(now, &st->s[i].sid)) {
            free(st->s[i].buf);
            st->s[i] = st->s[--st->n];
            deleted++;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&st->lock);
    size_t kept = 0;
    for (size_t i = 0; i < now->n; i++)
        if (!sid_set_has(before, &now->sids[i]))
            now->sids[kept++] = now->sids[i];
    now->n = kept;
    atomic_fetch_add(&s->gc_deleted, deleted);
}

static void *collector(void *arg)
{
    worker *k = arg;
    stress *s = k->s;
    sid_set cand = { NULL, 0, 0 };
    uint64_t t = 0;
    bool have = false;
    for (long n = 0; keep_going(s, n, 6);) {
        if (have && !grace_passed(s, t)) {
            nap(100);
            continue;
        }
        sid_set now = { NULL, 0, 0 };
        uint64_t t_now;
        gc_scan(k, &now, &t_now);
        if (have)
            gc_delete(k, &cand, &now);
        sid_set_free(&cand);
        cand = now;
        t = t_now;
        have = true;
        n++;
        atomic_fetch_add(&s->gc_rounds, 1);
        nap(500);
    }
    sid_set_free(&cand);
    return NULL;
}

/* ------------------------------------------------------------ the run */

static void final_checks(stress *s, segidx_volume_index *vi)
{
    cw_world *w = s->w;
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        segidx_vid vid = cw_vid(v);
        segidx_volume_meta m;
        w->vol[v].keep_from = s->keep_from[v];
        assert_int_equal(segidx_volume_get(vi, &vid, &m), SEGIDX_OK);
        assert_int_equal(w->vol[v].lsn, s->max_lsn);
        assert_int_equal(m.lsn, w->vol[v].lsn);
        assert_int_equal(m.keep_from, w->vol[v].keep_from);
    }
    /* Every segment named is stored. */
    sid_set named = { NULL, 0, 0 }, stored = { NULL, 0, 0 };
    assert_int_equal(segidx_volume_index_segments(vi, cw_collect_ref, &named), SEGIDX_OK);
    store_list(&w->segs, &stored);
    for (size_t i = 0; i < named.n; i++)
        assert_true(sid_set_has(&stored, &named.sids[i]));
    sid_set_free(&named);
    sid_set_free(&stored);
    cw_check_all(w, vi);
    cw_check_pruned(w, vi);
    /* What the run left compacts whole (every page it names is there and
     * intact), and still reads exactly. */
    segidx_loader *l = cw_loader(&w->segs);
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        segidx_compact_options o = cw_compact_options(w, 1 << 20, 1 << 20);
        segidx_vid vid = cw_vid(v);
        assert_int_equal(segidx_volume_compact(vi, l, &vid, &o, NULL), SEGIDX_OK);
    }
    segidx_loader_free(l);
}

static void run_stress(const stress_run *run)
{
    stress *s = calloc(1, sizeof *s);
    cw_world *w = calloc(1, sizeof *w);
    assert_true(s && w);
    s->run = run;
    s->w = w;
    s->max_lsn = (segidx_lsn)test_scaled_threads(run->share);
    assert_true(s->max_lsn <= CW_MAX_LSN);
    cw_open(w, run->seed, &run->opts);
    kv_forward_init(&s->store, w->raw);
    s->store.borrowed = true;
    pthread_mutex_init(&s->model, NULL);
    pthread_mutex_init(&s->track, NULL);
    atomic_store(&s->committing, 1);

    enum { MAX_THREADS = 7 };
    worker k[MAX_THREADS];
    pthread_t t[MAX_THREADS];
    void *(*role[MAX_THREADS])(void *);
    unsigned n = 0;
    role[n++] = committer;
    for (unsigned i = 0; i < run->compactors; i++)
        role[n++] = compactor;
    if (run->pruner)
        role[n++] = pruner;
    for (unsigned i = 0; i < READERS; i++)
        role[n++] = reader;
    role[n++] = collector;
    assert_true(n <= MAX_THREADS && n <= SLOTS);
    for (unsigned i = 0; i < n; i++) {
        bool own = role[i] != committer; /* which uses the world's second handle */
        k[i] = (worker){ s, i, { run->seed * 1000 + i }, own ? open_handle(s) : NULL,
                         own ? cw_loader(&w->segs) : NULL };
        assert_int_equal(pthread_create(&t[i], NULL, role[i], &k[i]), 0);
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (unsigned i = 0; i < n; i++) {
        segidx_loader_free(k[i].l);
        segidx_volume_index_close(k[i].vi);
    }
    long failures = atomic_load(&s->failures);
    if (!failures) {
        final_checks(s, w->vi);
        /* What is left unreferenced goes, and the reads stay exact. */
        size_t left = cw_gc(&w->segs, w->vi);
        cw_check_all(w, w->vi);
        print_message("%s: %ld commits (and %ld empty ones) in %ld batches, %ld compactions "
                      "(%ld segments in, %ld out, %ld conflicts), %ld prunes (%ld conflicts), "
                      "%ld reads (%ld pruned meanwhile, %ld pages checked), %ld gc rounds "
                      "deleted %ld segments (%zu more at the end, %zu kept); the store "
                      "refused %ld writes\n",
                      run->name, atomic_load(&s->commits),
                      CW_VOLUMES * (long)s->max_lsn - atomic_load(&s->commits),
                      atomic_load(&s->batches), atomic_load(&s->compactions),
                      atomic_load(&s->compacted_in), atomic_load(&s->compacted_out),
                      atomic_load(&s->compact_conflicts), atomic_load(&s->prunes),
                      atomic_load(&s->prune_conflicts), atomic_load(&s->reads),
                      atomic_load(&s->reads_pruned), atomic_load(&s->pages_checked),
                      atomic_load(&s->gc_rounds), atomic_load(&s->gc_deleted), left,
                      w->segs.n, atomic_load(&s->store.refused));
        /* The run did what it is for. */
        assert_true(atomic_load(&s->compacted_in) > 0);
        assert_true(atomic_load(&s->prunes) > 0);
        assert_true(atomic_load(&s->gc_deleted) > 0);
    }
    for (unsigned i = 0; i < SLOTS; i++)
        sid_set_free(&s->pending[i]);
    pthread_mutex_destroy(&s->model);
    pthread_mutex_destroy(&s->track);
    cw_close(w);
    free(w);
    free(s);
    assert_int_equal(failures, 0);
}

/* Each case runs SEEDS worlds, one after another. */
enum { SEEDS = 3 };

static void run_seeds(stress_run r)
{
    if (!segidx_threadsafe()) /* a SEGIDX_SINGLE_THREADED=1 build */
        skip();
    uint64_t first = r.seed;
    for (uint64_t seed = first; seed < first + SEEDS; seed++) {
        r.seed = seed;
        run_stress(&r);
    }
}

static void test_small_checkpoints(void **state)
{
    (void)state;
    run_seeds((stress_run){ "K 2 F 2 L 2", 1, { 2, 2, 2 }, 1, false, CW_MAX_LSN });
}

static void test_walk_only(void **state)
{
    (void)state;
    run_seeds((stress_run){ "checkpoints off", 11, { SEGIDX_CHECKPOINTS_OFF, 0, 0 }, 1, false,
                            CW_MAX_LSN });
}

/* Two compactors (of the same volumes, now and then) and a pruner of its
 * own: re-points race re-points and prunes, each EXPECTing the entries. */
static void test_racing_writers(void **state)
{
    (void)state;
    run_seeds((stress_run){ "two compactors, a pruner, default checkpoints", 21, { 0, 0, 0 }, 2,
                            true, CW_MAX_LSN });
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_checkpoints),
        cmocka_unit_test(test_walk_only),
        cmocka_unit_test(test_racing_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
