/* A threaded stress of the volume index, every answer checked against a
 * model (Jepsen-style). Committers race for each volume's next LSN, a
 * pruner raises keep_from one LSN at a time behind the head, readers ask
 * find_segments at random LSNs (below, at and above keep_from, above the
 * head), a lister walks volume_list and volume_commits, and syncers pull
 * missing LSNs through volume_sync.
 *
 * What a commit writes is a function of (volume, lsn), so every thread
 * knows the model; only which writer won an LSN is learnt as the run goes,
 * from the sids (they name the writer) and from the commits that returned
 * OK. A read is exact when some LSN H between min(lsn, head before the
 * call) and min(lsn, head after it) explains every offset's answer.
 *
 * Run over one volume index (its mutex orders the writers), and over two
 * indexes on one store (the store's SEGIDX_KV_EXPECT orders them). Over
 * the in-memory store, or over LMDB when built with VI_STRESS_OVER_LMDB
 * (tests/test_lmdb_vi_stress.c). Bounded by iteration counts: the
 * committers stop when each volume holds max_lsn commits; the readers and
 * the lister run a minimum and then while the committers run, up to a
 * maximum; the pruner and syncers while the committers run.
 * SEGIDX_TEST_QUICK shrinks them all.
 *
 * Each run has its checkpoint schedule (docs/FORMAT.md, "Checkpoints"):
 * the defaults; a small one (K = 2, F = 2, L = 2: every other commit
 * closes a round, every eighth writes an image), where commits, prunes and
 * reads meet checkpoint writes and deletes all the time; two indexes with
 * different options, the second following the schedule the first gave the
 * volumes; and volumes written without checkpoints that a second index
 * upgrades while the first, with checkpoints off, keeps committing. The
 * runs split the iterations one run had before. After each run, besides
 * reads at every retained LSN, every checkpoint value in the store is
 * decoded and compared with the model: exactly the rounds the prune point
 * keeps, each value what its round's commits wrote. */
#include "testutil.h"

#include "internal.h" /* the checksum, to decode checkpoint values */
#include "kv_forward.h"

#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
static void test_needs_threads(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_needs_threads) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#ifdef VI_STRESS_OVER_LMDB
#include "segidx_lmdb.h"

#include <unistd.h>
#endif

/* ------------------------------------------------------------ the workload
 *
 * Offsets are "candidates" 0..CANDIDATES-1: 96 small offsets that commits
 * write often (so they shadow each other), two edges written rarely, and
 * two offsets no commit writes.
 */
#define VOLUMES 3
#define SMALL_OFFSETS 96u
#define WRITTEN 98u
#define CANDIDATES 100u
#define MAX_SEGS 3
#define MAX_OFFS 8
#define MAIN_WRITER 14u /* the first commit of each volume, before the threads */
#define COMMITTERS 4    /* writers 1..4 */
#define SYNCERS 2       /* writers 5..6 */
#define READERS 3
#define SID_TAG 0x51
#define LAG_HIGH 40 /* committers wait when a head is this far past keep_from... */
#define LAG_LOW 8   /* ...until it is back to this */

static segidx_offset candidate_offset(unsigned u)
{
    static const segidx_offset high[] = { 1u << 31, UINT32_MAX, 4096, 1u << 20 };
    return u < SMALL_OFFSETS ? u : high[u - SMALL_OFFSETS];
}

static int candidate_index(segidx_offset off)
{
    if (off < SMALL_OFFSETS)
        return (int)off;
    for (unsigned u = SMALL_OFFSETS; u < CANDIDATES; u++)
        if (candidate_offset(u) == off)
            return (int)u;
    return -1;
}

/* What commit `lsn` of volume `v` writes, whoever commits it. */
struct content {
    uint8_t n;                       /* segments; 0: an empty commit */
    uint8_t len[MAX_SEGS];           /* offsets of each segment */
    uint8_t off[MAX_SEGS][MAX_OFFS]; /* candidates below WRITTEN */
};

static void make_content(unsigned v, segidx_lsn lsn, struct content *c)
{
    test_rng r = { (v + 1) * 0xD1B54A32D192ED03ull ^ lsn * 0x9E3779B97F4A7C15ull };
    memset(c, 0, sizeof *c);
    if (rng_below(&r, 16) == 0)
        return;
    unsigned k = 1 + (unsigned)rng_below(&r, MAX_OFFS), got = 0;
    uint8_t picked[MAX_OFFS];
    bool used[WRITTEN] = { false };
    while (got < k) {
        unsigned u = rng_below(&r, 50) == 0 ? SMALL_OFFSETS + (unsigned)rng_below(&r, 2)
                                           : (unsigned)rng_below(&r, SMALL_OFFSETS);
        if (!used[u]) {
            used[u] = true;
            picked[got++] = (uint8_t)u;
        }
    }
    c->n = (uint8_t)(1 + rng_below(&r, MAX_SEGS));
    if (c->n > k)
        c->n = (uint8_t)k;
    for (unsigned i = 0; i < k; i++) {
        unsigned j = i < c->n ? i : (unsigned)rng_below(&r, c->n);
        c->off[j][c->len[j]++] = picked[i];
    }
}

/* The segment of `c` that writes candidate u, or -1. */
static int content_seg(const struct content *c, unsigned u)
{
    for (unsigned j = 0; j < c->n; j++)
        for (unsigned i = 0; i < c->len[j]; i++)
            if (c->off[j][i] == u)
                return (int)j;
    return -1;
}

/* A sid names the volume, the LSN, the segment and the writer. */
struct sid_parts {
    unsigned v, j, writer;
    segidx_lsn lsn;
};

static segidx_sid sid_for(unsigned v, segidx_lsn lsn, unsigned j, unsigned writer)
{
    segidx_sid sid;
    memset(&sid, 0, sizeof sid);
    sid.bytes[0] = SID_TAG;
    sid.bytes[1] = (uint8_t)v;
    for (int i = 0; i < 8; i++)
        sid.bytes[2 + i] = (uint8_t)(lsn >> (56 - 8 * i));
    sid.bytes[10] = (uint8_t)j;
    sid.bytes[11] = (uint8_t)writer;
    return sid;
}

static bool sid_decode(const segidx_sid *sid, struct sid_parts *p)
{
    static const uint8_t zero[4];
    if (sid->bytes[0] != SID_TAG || memcmp(sid->bytes + 12, zero, 4) != 0)
        return false;
    p->v = sid->bytes[1];
    p->lsn = 0;
    for (int i = 0; i < 8; i++)
        p->lsn = p->lsn << 8 | sid->bytes[2 + i];
    p->j = sid->bytes[10];
    p->writer = sid->bytes[11];
    return p->v < VOLUMES && p->j < MAX_SEGS && p->writer >= 1 && p->writer <= MAIN_WRITER;
}

static segidx_offset_set *new_set(void)
{
    segidx_offset_set *s = segidx_offset_set_new();
    if (!s)
        abort();
    return s;
}

/* ------------------------------------------------------------ shared state */

struct lsn_list {
    segidx_lsn *lsn; /* ascending */
    size_t n;
};

struct stress {
    segidx_volume_index *vi[2];
    unsigned n_vi;
    segidx_lsn max_lsn; /* each volume stops there */
    uint64_t seed;
    const char *name;   /* the run's */
    long share;         /* the run's iterations, in 1/1200ths of the whole budget */
    segidx_kv raw;      /* the store under the indexes, for the final checks */
    segidx_vid vid[VOLUMES];
    struct content *content;             /* [at(v, lsn)] */
    segidx_offset *last_offset;          /* [at(v, lsn)]: the meta's after lsn */
    struct lsn_list writes[VOLUMES][WRITTEN];
    atomic_uchar *winner;                /* [at(v, lsn)]: whose commit returned OK */
    uint8_t *reported;                   /* [at(v, lsn)]: bit j: sid j reported unreferenced */
    atomic_int busy;                     /* committers still running */
    atomic_int in_pull[2][VOLUMES];
    atomic_long failures;
    atomic_long commits, conflicts, conflicts_lsn_free, reads, reads_pruned, reads_torn,
        prunes, prune_conflicts, unreferenced, syncs, pulls, lists, walks;
};

/* An iteration count of the whole budget, cut to this run's share. */
static long stress_scaled(const struct stress *s, long n)
{
    return test_scaled_threads(n * s->share / 1200);
}

static size_t at(const struct stress *s, unsigned v, segidx_lsn lsn)
{
    return v * (size_t)(s->max_lsn + 2) + (size_t)lsn;
}

static const struct content *content_of(const struct stress *s, unsigned v, segidx_lsn lsn)
{
    return &s->content[at(s, v, lsn)];
}

static void stress_fail(struct stress *s, const char *fmt, ...)
{
    if (atomic_fetch_add(&s->failures, 1) >= 20)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "stress (%s, seed %llu, %u index%s): %s\n", s->name,
            (unsigned long long)s->seed, s->n_vi, s->n_vi > 1 ? "es" : "", buf);
}

#define CHECK(s, cond, ...)                   \
    do {                                      \
        if (!(cond))                          \
            stress_fail((s), __VA_ARGS__);    \
    } while (0)

static bool stress_ok(struct stress *s)
{
    return atomic_load(&s->failures) == 0;
}

typedef unsigned long long ull;

/* The newest LSN <= h that wrote candidate u of volume v; 0: none. */
static segidx_lsn model_at(const struct stress *s, unsigned v, unsigned u, segidx_lsn h)
{
    if (u >= WRITTEN)
        return 0;
    const struct lsn_list *l = &s->writes[v][u];
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->lsn[mid] <= h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? l->lsn[lo - 1] : 0;
}

/* The oldest LSN > a that wrote candidate u of volume v; UINT64_MAX: none. */
static segidx_lsn model_next(const struct stress *s, unsigned v, unsigned u, segidx_lsn a)
{
    if (u >= WRITTEN)
        return UINT64_MAX;
    const struct lsn_list *l = &s->writes[v][u];
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->lsn[mid] <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n ? l->lsn[lo] : UINT64_MAX;
}

static struct stress *stress_new(segidx_lsn max_lsn, uint64_t seed)
{
    struct stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->max_lsn = max_lsn;
    s->seed = seed;
    size_t cells = at(s, VOLUMES, 0);
    s->content = calloc(cells, sizeof *s->content);
    s->last_offset = calloc(cells, sizeof *s->last_offset);
    s->winner = calloc(cells, sizeof *s->winner);
    s->reported = calloc(cells, 1);
    assert_true(s->content && s->last_offset && s->winner && s->reported);
    for (size_t i = 0; i < cells; i++)
        atomic_init(&s->winner[i], 0);
    for (unsigned v = 0; v < VOLUMES; v++) {
        memset(&s->vid[v], 0, sizeof s->vid[v]);
        memcpy(s->vid[v].bytes, "stress", 6);
        s->vid[v].bytes[6] = (uint8_t)v;
        for (unsigned u = 0; u < WRITTEN; u++) {
            s->writes[v][u].lsn = calloc(max_lsn + 1, sizeof(segidx_lsn));
            assert_non_null(s->writes[v][u].lsn);
        }
        segidx_offset last = 0;
        for (segidx_lsn lsn = 1; lsn <= max_lsn; lsn++) {
            struct content *c = &s->content[at(s, v, lsn)];
            make_content(v, lsn, c);
            for (unsigned j = 0; j < c->n; j++)
                for (unsigned i = 0; i < c->len[j]; i++) {
                    unsigned u = c->off[j][i];
                    struct lsn_list *l = &s->writes[v][u];
                    l->lsn[l->n++] = lsn;
                    last = candidate_offset(u) > last ? candidate_offset(u) : last;
                }
            s->last_offset[at(s, v, lsn)] = last;
        }
    }
    atomic_init(&s->busy, 0);
    atomic_init(&s->failures, 0);
    return s;
}

static void stress_free(struct stress *s)
{
    for (unsigned v = 0; v < VOLUMES; v++)
        for (unsigned u = 0; u < WRITTEN; u++)
            free(s->writes[v][u].lsn);
    free(s->content);
    free(s->last_offset);
    free(s->winner);
    free(s->reported);
    free(s);
}

static unsigned winner_of(struct stress *s, unsigned v, segidx_lsn lsn)
{
    return atomic_load(&s->winner[at(s, v, lsn)]);
}

static void record_winner(struct stress *s, unsigned v, segidx_lsn lsn, unsigned writer)
{
    unsigned char none = 0;
    if (!atomic_compare_exchange_strong(&s->winner[at(s, v, lsn)], &none, (unsigned char)writer))
        stress_fail(s, "volume %u LSN %llu: commits of writers %u and %u both returned OK", v,
                    (ull)lsn, none, writer);
}

/* ------------------------------------------------------------ per thread */

struct worker {
    struct stress *s;
    unsigned id; /* writers: their writer id */
    test_rng rng;
    segidx_lsn seen_lsn[VOLUMES], seen_keep[VOLUMES]; /* the most this thread saw */
    const char *role;
    bool waiting[VOLUMES]; /* writers: for the pruner to catch up */
};

/* A meta this thread got: the LSN it names matches its last_offset and
 * last_commit, and neither the LSN nor keep_from went back. */
static void check_meta(struct worker *w, unsigned v, const segidx_volume_meta *m)
{
    struct stress *s = w->s;
    if (m->lsn < 1 || m->lsn > s->max_lsn) {
        stress_fail(s, "%s: volume %u at LSN %llu, outside 1..%llu", w->role, v, (ull)m->lsn,
                    (ull)s->max_lsn);
        return;
    }
    CHECK(s, m->keep_from <= m->lsn, "%s: volume %u keep_from %llu above its LSN %llu", w->role,
          v, (ull)m->keep_from, (ull)m->lsn);
    CHECK(s, m->last_offset == s->last_offset[at(s, v, m->lsn)],
          "%s: volume %u at LSN %llu: last_offset %u, expected %u", w->role, v, (ull)m->lsn,
          m->last_offset, s->last_offset[at(s, v, m->lsn)]);
    unsigned writer = (unsigned)(m->last_commit & 0xFF), won = winner_of(s, v, m->lsn);
    CHECK(s, m->last_commit >> 8 == m->lsn && (won == 0 || won == writer),
          "%s: volume %u at LSN %llu: last_commit names LSN %llu by writer %u, winner %u",
          w->role, v, (ull)m->lsn, (ull)(m->last_commit >> 8), writer, won);
    CHECK(s, m->lsn >= w->seen_lsn[v], "%s: volume %u went back from LSN %llu to %llu", w->role,
          v, (ull)w->seen_lsn[v], (ull)m->lsn);
    CHECK(s, m->keep_from >= w->seen_keep[v], "%s: volume %u keep_from went back from %llu to %llu",
          w->role, v, (ull)w->seen_keep[v], (ull)m->keep_from);
    if (m->lsn > w->seen_lsn[v])
        w->seen_lsn[v] = m->lsn;
    if (m->keep_from > w->seen_keep[v])
        w->seen_keep[v] = m->keep_from;
}

static bool get_meta(struct worker *w, segidx_volume_index *vi, unsigned v, segidx_volume_meta *m)
{
    int rc = segidx_volume_get(vi, &w->s->vid[v], m);
    if (rc) {
        stress_fail(w->s, "%s: volume_get of volume %u: %s", w->role, v, segidx_strerror(rc));
        return false;
    }
    check_meta(w, v, m);
    return true;
}

/* Commit `lsn` of volume v as `writer`; an OK is recorded as its win. */
static int commit_as(struct stress *s, segidx_volume_index *vi, unsigned v, segidx_lsn lsn,
                     unsigned writer)
{
    const struct content *c = content_of(s, v, lsn);
    segidx_commit_segment segs[MAX_SEGS];
    segidx_offset_set *sets[MAX_SEGS] = { NULL };
    for (unsigned j = 0; j < c->n; j++) {
        sets[j] = new_set();
        for (unsigned i = 0; i < c->len[j]; i++)
            segidx_offset_set_add(sets[j], candidate_offset(c->off[j][i]));
        segs[j] = (segidx_commit_segment){ sid_for(v, lsn, j, writer), sets[j] };
    }
    int rc = segidx_volume_commit(vi, &s->vid[v], lsn, lsn << 8 | writer, segs, c->n);
    for (unsigned j = 0; j < c->n; j++)
        segidx_offset_set_free(sets[j]);
    if (rc == SEGIDX_OK) {
        record_winner(s, v, lsn, writer);
        atomic_fetch_add(&s->commits, 1);
    }
    return rc;
}

/* ------------------------------------------------------------ committers */

/* Whether a writer should let the pruner catch up with volume v, so that
 * keep_from stays near the head: past LAG_HIGH, wait until it is back to
 * LAG_LOW, and then race the other writers again. */
static bool held_back(struct worker *w, unsigned v, const segidx_volume_meta *m)
{
    segidx_lsn lag = m->lsn - m->keep_from;
    w->waiting[v] = lag > LAG_HIGH || (w->waiting[v] && lag > LAG_LOW);
    return w->waiting[v];
}

/* Read the volume's LSN, commit the next one: OK or ECONFLICT, and the
 * LSN is taken either way. Until every volume reached max_lsn. */
static void *committer(void *p)
{
    struct worker *w = p;
    struct stress *s = w->s;
    segidx_volume_index *vi = s->vi[w->id % s->n_vi];
    bool full[VOLUMES] = { false };
    unsigned n_full = 0;
    long waits = 0;
    long cap = (long)s->max_lsn * VOLUMES * 50;
    for (long i = 0; i < cap && n_full < VOLUMES; i += !waits) {
        if (!stress_ok(s))
            break;
        unsigned v = (unsigned)rng_below(&w->rng, VOLUMES);
        segidx_volume_meta m;
        if (!get_meta(w, vi, v, &m))
            break;
        if (m.lsn >= s->max_lsn) {
            n_full += !full[v];
            full[v] = true;
            continue;
        }
        if (held_back(w, v, &m) && waits < 1000000) {
            waits++;
            sched_yield();
            continue;
        }
        waits = 0;
        /* Now and then give the others time to read the same LSN. */
        if (rng_below(&w->rng, 2))
            sched_yield();
        segidx_lsn lsn = m.lsn + 1;
        int rc = commit_as(s, vi, v, lsn, w->id);
        if (rc != SEGIDX_OK && rc != SEGIDX_ECONFLICT) {
            stress_fail(s, "committer %u: commit of volume %u LSN %llu: %s", w->id, v, (ull)lsn,
                        segidx_strerror(rc));
            break;
        }
        if (!get_meta(w, vi, v, &m))
            break;
        if (rc == SEGIDX_OK)
            CHECK(s, m.lsn >= lsn, "committer %u: volume %u at LSN %llu after commit %llu OK",
                  w->id, v, (ull)m.lsn, (ull)lsn);
        else {
            atomic_fetch_add(&s->conflicts, 1);
            /* Allowed (the retries behind prunes are bounded), but counted. */
            if (m.lsn < lsn)
                atomic_fetch_add(&s->conflicts_lsn_free, 1);
        }
    }
    CHECK(s, n_full == VOLUMES || !stress_ok(s), "committer %u gave up", w->id);
    atomic_fetch_sub(&s->busy, 1);
    return NULL;
}

/* ------------------------------------------------------------ pruner */

struct sid_notes {
    segidx_sid *sid;
    size_t n, cap;
};

static void note_unreferenced(void *ctx, const segidx_sid *sid)
{
    struct sid_notes *n = ctx;
    if (n->n == n->cap) {
        n->cap = n->cap ? 2 * n->cap : 16;
        n->sid = realloc(n->sid, n->cap * sizeof *n->sid);
        if (!n->sid)
            abort();
    }
    n->sid[n->n++] = *sid;
}

/* A sid prune_report(keep_from) said no entry of volume v names any more:
 * each of its offsets was rewritten in (its LSN, keep_from], and it was
 * not reported before. */
static void check_unreferenced(struct stress *s, unsigned v, segidx_lsn keep_from,
                               const segidx_sid *sid)
{
    struct sid_parts p;
    if (!sid_decode(sid, &p) || p.v != v || p.lsn < 1 || p.lsn >= keep_from ||
        p.j >= content_of(s, v, p.lsn)->n) {
        stress_fail(s, "pruner: volume %u keep_from %llu: reported a sid it cannot drop", v,
                    (ull)keep_from);
        return;
    }
    unsigned won = winner_of(s, v, p.lsn);
    CHECK(s, won == 0 || won == p.writer, "pruner: reported writer %u's sid at LSN %llu, won by %u",
          p.writer, (ull)p.lsn, won);
    const struct content *c = content_of(s, v, p.lsn);
    for (unsigned i = 0; i < c->len[p.j]; i++)
        CHECK(s, model_next(s, v, c->off[p.j][i], p.lsn) <= keep_from,
              "pruner: volume %u keep_from %llu: sid of LSN %llu reported unreferenced while "
              "offset %u is still its", v, (ull)keep_from, (ull)p.lsn,
              candidate_offset(c->off[p.j][i]));
    uint8_t *bits = &s->reported[at(s, v, p.lsn)];
    CHECK(s, !(*bits & (1u << p.j)), "pruner: volume %u LSN %llu segment %u reported twice", v,
          (ull)p.lsn, p.j);
    *bits |= (uint8_t)(1u << p.j);
    atomic_fetch_add(&s->unreferenced, 1);
}

/* Raise each volume's keep_from by one, a few LSNs behind its head. */
static void *pruner(void *p)
{
    struct worker *w = p;
    struct stress *s = w->s;
    struct sid_notes notes = { NULL, 0, 0 };
    while (stress_ok(s) && atomic_load(&s->busy) > 0) {
        bool moved = false;
        for (unsigned v = 0; v < VOLUMES && stress_ok(s); v++) {
            segidx_volume_index *vi = s->vi[rng_below(&w->rng, s->n_vi)];
            segidx_volume_meta m;
            if (!get_meta(w, vi, v, &m))
                break;
            segidx_lsn lag = 2 + rng_below(&w->rng, 8), target = m.keep_from + 1;
            if (target + lag > m.lsn)
                continue;
            bool report = rng_below(&w->rng, 2);
            notes.n = 0;
            int rc = report ? segidx_volume_prune_report(vi, &s->vid[v], target,
                                                         note_unreferenced, &notes)
                            : segidx_volume_prune(vi, &s->vid[v], target);
            if (rc == SEGIDX_ECONFLICT) {
                atomic_fetch_add(&s->prune_conflicts, 1);
                continue;
            }
            if (rc) {
                stress_fail(s, "pruner: prune of volume %u to %llu: %s", v, (ull)target,
                            segidx_strerror(rc));
                break;
            }
            moved = true;
            atomic_fetch_add(&s->prunes, 1);
            if (!get_meta(w, vi, v, &m))
                break;
            CHECK(s, m.keep_from == target, "pruner: volume %u keep_from %llu after prune to %llu",
                  v, (ull)m.keep_from, (ull)target);
            for (size_t i = 0; i < notes.n; i++)
                check_unreferenced(s, v, target, &notes.sid[i]);
        }
        if (!moved)
            sched_yield();
    }
    free(notes.sid);
    return NULL;
}

/* ------------------------------------------------------------ readers */

/* One find_segments call as its callback saw it. */
struct answer {
    struct stress *s;
    unsigned v;
    segidx_lsn lsn;                   /* the read's */
    bool asked[CANDIDATES], answered[CANDIDATES];
    segidx_lsn got[CANDIDATES];       /* the LSN answering each candidate */
    unsigned writer[CANDIDATES];
    segidx_lsn last;                  /* the previous visit's LSN */
    struct sid_parts cur;             /* the visit's sid */
    long calls;
};

static int visit_answer_offset(segidx_offset off, void *ctx)
{
    struct answer *a = ctx;
    int u = candidate_index(off);
    if (u < 0 || !a->asked[u] || a->answered[u]) {
        stress_fail(a->s, "read of volume %u at %llu: offset %u handed out %s", a->v,
                    (ull)a->lsn, off, u < 0 || !a->asked[u] ? "unasked" : "twice");
        return 0;
    }
    a->answered[u] = true;
    a->got[u] = a->cur.lsn;
    a->writer[u] = a->cur.writer;
    CHECK(a->s, content_seg(content_of(a->s, a->v, a->cur.lsn), (unsigned)u) == (int)a->cur.j,
          "read of volume %u at %llu: offset %u answered by LSN %llu segment %u, which did not "
          "write it", a->v, (ull)a->lsn, off, (ull)a->cur.lsn, a->cur.j);
    return 0;
}

static int visit_answer(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    struct answer *a = ctx;
    a->calls++;
    if (!sid_decode(sid, &a->cur) || a->cur.v != a->v || a->cur.lsn != lsn || lsn < 1 ||
        lsn > a->s->max_lsn || a->cur.j >= content_of(a->s, a->v, lsn)->n) {
        stress_fail(a->s, "read of volume %u at %llu: a visit names LSN %llu and a sid not of it",
                    a->v, (ull)a->lsn, (ull)lsn);
        return 0;
    }
    CHECK(a->s, lsn <= a->last && lsn <= a->lsn,
          "read of volume %u at %llu: visit of LSN %llu after one of %llu", a->v, (ull)a->lsn,
          (ull)lsn, (ull)a->last);
    a->last = lsn;
    segidx_offset_set_iterate(cut, visit_answer_offset, a);
    return 0;
}

/* An OK answer of a read at `lsn` between metas `before` and `after`: some
 * H in [min(lsn, before), min(lsn, after)] explains every candidate (its
 * answer is the newest commit <= H that wrote it, or none), each answering
 * sid is the winner's, and the query kept exactly the unanswered offsets. */
static void check_answer(struct stress *s, const struct answer *a, const segidx_volume_meta *before,
                         const segidx_volume_meta *after, const segidx_offset_set *query)
{
    segidx_lsn lo0 = a->lsn < before->lsn ? a->lsn : before->lsn;
    segidx_lsn hi0 = a->lsn < after->lsn ? a->lsn : after->lsn;
    segidx_lsn lo = lo0, hi = hi0;
    for (unsigned u = 0; u < CANDIDATES; u++) {
        if (!a->asked[u])
            continue;
        CHECK(s, segidx_offset_set_contains(query, candidate_offset(u)) == !a->answered[u],
              "read of volume %u at %llu: offset %u %s in the query afterwards", a->v,
              (ull)a->lsn, candidate_offset(u), a->answered[u] ? "answered and still" : "not");
        segidx_lsn got = a->answered[u] ? a->got[u] : 0;
        if (a->answered[u]) {
            unsigned won = winner_of(s, a->v, got);
            CHECK(s, won == 0 || won == a->writer[u],
                  "read of volume %u at %llu: offset %u from writer %u's LSN %llu, won by %u",
                  a->v, (ull)a->lsn, candidate_offset(u), a->writer[u], (ull)got, won);
        }
        segidx_lsn next = model_next(s, a->v, u, got);
        lo = got > lo ? got : lo;
        hi = next - 1 < hi ? next - 1 : hi;
    }
    CHECK(s, segidx_offset_set_cardinality(query) <= CANDIDATES,
          "read of volume %u at %llu: the query grew", a->v, (ull)a->lsn);
    if (lo <= hi)
        return;
    char why[600];
    size_t len = 0;
    for (unsigned u = 0; u < CANDIDATES && len < sizeof why - 60; u++)
        if (a->asked[u])
            len += (size_t)snprintf(why + len, sizeof why - len, " %u:%llu(model %llu..%llu)",
                                    candidate_offset(u), (ull)(a->answered[u] ? a->got[u] : 0),
                                    (ull)model_at(s, a->v, u, lo0), (ull)model_at(s, a->v, u, hi0));
    stress_fail(s, "WRONG ANSWER: read of volume %u at LSN %llu (head %llu..%llu, keep_from "
                   "%llu..%llu): offset:answer(model) =%s", a->v, (ull)a->lsn, (ull)before->lsn,
                (ull)after->lsn, (ull)before->keep_from, (ull)after->keep_from, why);
}

/* One read of volume v at lsn for the candidates `asked`, checked. */
static void read_checked(struct worker *w, segidx_volume_index *vi, unsigned v, segidx_lsn lsn,
                         const bool asked[CANDIDATES], const segidx_volume_meta *before)
{
    struct stress *s = w->s;
    struct answer *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->s = s;
    a->v = v;
    a->lsn = lsn;
    a->last = UINT64_MAX;
    segidx_offset_set *q = new_set();
    for (unsigned u = 0; u < CANDIDATES; u++)
        if ((a->asked[u] = asked[u]))
            segidx_offset_set_add(q, candidate_offset(u));
    segidx_offset_set *orig = segidx_offset_set_copy(q);
    if (!orig)
        abort();
    int rc = segidx_volume_find_segments(vi, &s->vid[v], lsn, q, visit_answer, a);
    segidx_volume_meta after;
    if (!get_meta(w, vi, v, &after))
        goto out;
    atomic_fetch_add(&s->reads, 1);
    if (lsn < before->keep_from) {
        CHECK(s, rc == SEGIDX_ERANGE, "%s: read of volume %u at %llu below keep_from %llu: %s",
              w->role, v, (ull)lsn, (ull)before->keep_from, segidx_strerror(rc));
        atomic_fetch_add(&s->reads_pruned, 1);
    } else if (rc == SEGIDX_ERANGE) {
        /* Pruned under the read: past lsn, or, for a read above the head,
         * past the head the read went by. */
        segidx_lsn read_at = lsn < before->lsn ? lsn : before->lsn;
        CHECK(s, after.keep_from > read_at,
              "%s: read of volume %u at %llu (head %llu): ERANGE, but keep_from is %llu",
              w->role, v, (ull)lsn, (ull)before->lsn, (ull)after.keep_from);
        atomic_fetch_add(&s->reads_torn, 1);
    } else if (rc == SEGIDX_OK) {
        check_answer(s, a, before, &after, q);
    } else {
        stress_fail(s, "%s: read of volume %u at %llu: %s", w->role, v, (ull)lsn,
                    segidx_strerror(rc));
    }
    if (rc != SEGIDX_OK)
        CHECK(s, a->calls == 0 && segidx_offset_set_equals(q, orig),
              "%s: read of volume %u at %llu failed (%s) but called back or changed the query",
              w->role, v, (ull)lsn, segidx_strerror(rc));
out:
    segidx_offset_set_free(q);
    segidx_offset_set_free(orig);
    free(a);
}

/* A read LSN: below keep_from, near it (where reads race the pruner), in
 * [keep_from, head], at the head, above it. */
static segidx_lsn pick_lsn(test_rng *r, const segidx_volume_meta *m)
{
    unsigned k = (unsigned)rng_below(r, 100);
    if (k < 15)
        return m->keep_from > 0 ? rng_below(r, m->keep_from) : 0;
    if (k < 50)
        return m->keep_from + rng_below(r, 3);
    if (k < 80)
        return m->keep_from + rng_below(r, m->lsn - m->keep_from + 1);
    if (k < 85)
        return m->lsn;
    if (k < 95)
        return m->lsn + 1 + rng_below(r, 5);
    return UINT64_MAX;
}

static void *reader(void *p)
{
    struct worker *w = p;
    struct stress *s = w->s;
    long min = stress_scaled(s, 3000), max = stress_scaled(s, 12000);
    for (long i = 0; stress_ok(s) && i < max && (i < min || atomic_load(&s->busy) > 0); i++) {
        unsigned v = (unsigned)rng_below(&w->rng, VOLUMES);
        segidx_volume_index *vi = s->vi[rng_below(&w->rng, s->n_vi)];
        segidx_volume_meta before;
        if (!get_meta(w, vi, v, &before))
            break;
        bool asked[CANDIDATES] = { false };
        for (unsigned k = 0, n = 1 + (unsigned)rng_below(&w->rng, 12); k < n; k++)
            asked[rng_below(&w->rng, CANDIDATES)] = true;
        read_checked(w, vi, v, pick_lsn(&w->rng, &before), asked, &before);
    }
    return NULL;
}

/* ------------------------------------------------------------ lister */

struct list_walk {
    struct worker *w;
    unsigned next; /* the volume expected next */
};

static int visit_volume(void *ctx, const segidx_vid *vid, const segidx_volume_meta *meta)
{
    struct list_walk *l = ctx;
    struct stress *s = l->w->s;
    if (l->next >= VOLUMES || memcmp(vid->bytes, s->vid[l->next].bytes, 16) != 0) {
        stress_fail(s, "lister: volume_list visited an unexpected vid after %u volumes", l->next);
        return 1;
    }
    check_meta(l->w, l->next++, meta);
    return 0;
}

/* volume_commits of volume v, between metas `before` and `after`. At the
 * prune point K of the walk's snapshot (before's keep_from <= K <= after's),
 * an entry (L, j) holds the offsets of segment j not rewritten in (L, K]
 * when L < K, all of them otherwise, and is absent when that leaves none.
 * The walk notes what it saw; the checks that need `after` run after it. */
struct commits_walk {
    struct stress *s;
    unsigned v;
    uint16_t *seen;   /* [lsn * MAX_SEGS + j]: 0x100 | mask of the segment's offsets held */
    unsigned *writer; /* [lsn]: the writer of its first entry */
    segidx_lsn last;
    const char *role;
    bool failed;
};

static bool rewritten(const struct stress *s, unsigned v, unsigned u, segidx_lsn lsn,
                      segidx_lsn keep_from)
{
    return lsn < keep_from && model_next(s, v, u, lsn) <= keep_from;
}

static int visit_commit_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                              const segidx_offset_set *offsets)
{
    struct commits_walk *c = ctx;
    struct stress *s = c->s;
    struct sid_parts p;
    if (!sid_decode(sid, &p) || p.v != c->v || p.lsn != lsn || lsn < c->last || lsn < 1 ||
        lsn > s->max_lsn || p.j >= content_of(s, c->v, lsn)->n ||
        c->seen[lsn * MAX_SEGS + p.j]) {
        stress_fail(s, "%s: volume_commits of volume %u: entry at LSN %llu (after %llu) out of "
                       "order, repeated or not a segment of it", c->role, c->v, (ull)lsn,
                    (ull)c->last);
        c->failed = true;
        return 1;
    }
    c->last = lsn;
    if (!c->writer[lsn])
        c->writer[lsn] = p.writer;
    unsigned won = winner_of(s, c->v, lsn);
    CHECK(s, c->writer[lsn] == p.writer && (won == 0 || won == p.writer),
          "%s: volume %u LSN %llu: entries of writers %u and %u, winner %u", c->role, c->v,
          (ull)lsn, c->writer[lsn], p.writer, won);
    const struct content *ct = content_of(s, c->v, lsn);
    uint16_t mask = 0x100;
    uint64_t inside = 0;
    for (unsigned i = 0; i < ct->len[p.j]; i++)
        if (segidx_offset_set_contains(offsets, candidate_offset(ct->off[p.j][i]))) {
            mask |= (uint16_t)(1u << i);
            inside++;
        }
    c->seen[lsn * MAX_SEGS + p.j] = mask;
    CHECK(s, inside == segidx_offset_set_cardinality(offsets) && inside > 0,
          "%s: volume %u LSN %llu segment %u holds %llu offsets, %llu of them its own", c->role,
          c->v, (ull)lsn, p.j, (ull)segidx_offset_set_cardinality(offsets), (ull)inside);
    return 0;
}

static void check_commits(struct worker *w, segidx_volume_index *vi, unsigned v,
                          const segidx_volume_meta *before)
{
    struct stress *s = w->s;
    struct commits_walk c = { s, v, calloc((s->max_lsn + 2) * MAX_SEGS, sizeof(uint16_t)),
                              calloc(s->max_lsn + 2, sizeof(unsigned)), 0, w->role, false };
    if (!c.seen || !c.writer)
        abort();
    int rc = segidx_volume_commits(vi, &s->vid[v], visit_commit_entry, &c);
    segidx_volume_meta after;
    if (!get_meta(w, vi, v, &after))
        goto out;
    if (rc) {
        if (!c.failed)
            stress_fail(s, "%s: volume_commits of volume %u: %s", w->role, v, segidx_strerror(rc));
        goto out;
    }
    atomic_fetch_add(&s->walks, 1);
    for (segidx_lsn lsn = 1; lsn <= s->max_lsn; lsn++) {
        const struct content *ct = content_of(s, v, lsn);
        for (unsigned j = 0; j < ct->n; j++) {
            uint16_t mask = c.seen[lsn * MAX_SEGS + j];
            bool kept = false;
            for (unsigned i = 0; i < ct->len[j]; i++) {
                unsigned u = ct->off[j][i];
                kept |= !rewritten(s, v, u, lsn, after.keep_from);
                if (!mask)
                    continue;
                if (mask & (1u << i))
                    CHECK(s, !rewritten(s, v, u, lsn, before->keep_from),
                          "%s: volume %u LSN %llu still holds offset %u, rewritten at %llu <= "
                          "keep_from %llu", w->role, v, (ull)lsn, candidate_offset(u),
                          (ull)model_next(s, v, u, lsn), (ull)before->keep_from);
                else
                    CHECK(s, rewritten(s, v, u, lsn, after.keep_from),
                          "%s: volume %u LSN %llu lost offset %u (keep_from %llu, next write "
                          "%llu)", w->role, v, (ull)lsn, candidate_offset(u),
                          (ull)after.keep_from, (ull)model_next(s, v, u, lsn));
            }
            if (mask)
                CHECK(s, lsn <= after.lsn, "%s: volume_commits of volume %u listed LSN %llu "
                                           "above the head %llu", w->role, v, (ull)lsn,
                      (ull)after.lsn);
            else if (lsn <= before->lsn)
                CHECK(s, !kept, "%s: volume_commits of volume %u lacks LSN %llu segment %u "
                                "(head %llu..%llu, keep_from %llu..%llu)", w->role, v, (ull)lsn,
                      j, (ull)before->lsn, (ull)after.lsn, (ull)before->keep_from,
                      (ull)after.keep_from);
        }
    }
out:
    free(c.seen);
    free(c.writer);
}

static void *lister(void *p)
{
    struct worker *w = p;
    struct stress *s = w->s;
    long min = stress_scaled(s, 200), max = stress_scaled(s, 1500);
    for (long i = 0; stress_ok(s) && i < max && (i < min || atomic_load(&s->busy) > 0); i++) {
        segidx_volume_index *vi = s->vi[rng_below(&w->rng, s->n_vi)];
        struct list_walk l = { w, 0 };
        int rc = segidx_volume_list(vi, visit_volume, &l);
        CHECK(s, rc == SEGIDX_OK && l.next == VOLUMES, "lister: volume_list: %s after %u volumes",
              segidx_strerror(rc), l.next);
        atomic_fetch_add(&s->lists, 1);
        unsigned v = (unsigned)rng_below(&w->rng, VOLUMES);
        segidx_volume_meta before;
        if (!get_meta(w, vi, v, &before))
            break;
        check_commits(w, vi, v, &before);
    }
    return NULL;
}

/* ------------------------------------------------------------ syncers */

struct pull_ctx {
    struct worker *w;
    unsigned v, handle;
    segidx_lsn target;
    int pulls;
};

/* Commit the LSNs the index lacks up to the target, as this syncer; an
 * LSN another writer took is skipped past. */
static int pull_missing(void *ctx, segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn have)
{
    struct pull_ctx *c = ctx;
    struct stress *s = c->w->s;
    c->pulls++;
    atomic_fetch_add(&s->pulls, 1);
    int now = atomic_fetch_add(&s->in_pull[c->handle][c->v], 1) + 1;
    CHECK(s, now == 1, "syncer: %d pulls of volume %u at once through one index", now, c->v);
    CHECK(s, vi == s->vi[c->handle] && memcmp(vid->bytes, s->vid[c->v].bytes, 16) == 0,
          "syncer: pull called with another index or volume");
    CHECK(s, have < c->target, "syncer: pull of volume %u called with %llu, target %llu", c->v,
          (ull)have, (ull)c->target);
    int rc = SEGIDX_OK;
    segidx_lsn lsn = have + 1;
    for (int tries = 0; lsn <= c->target && tries < 1000; tries++) {
        rc = commit_as(s, vi, c->v, lsn, c->w->id);
        if (rc == SEGIDX_OK) {
            lsn++;
            continue;
        }
        if (rc != SEGIDX_ECONFLICT)
            break;
        atomic_fetch_add(&s->conflicts, 1);
        rc = SEGIDX_OK;
        segidx_volume_meta m;
        if (!get_meta(c->w, vi, c->v, &m)) {
            rc = SEGIDX_EIO;
            break;
        }
        lsn = m.lsn + 1;
    }
    atomic_fetch_sub(&s->in_pull[c->handle][c->v], 1);
    return rc;
}

static void *syncer(void *p)
{
    struct worker *w = p;
    struct stress *s = w->s;
    while (stress_ok(s) && atomic_load(&s->busy) > 0) {
        unsigned v = (unsigned)rng_below(&w->rng, VOLUMES);
        unsigned handle = (unsigned)rng_below(&w->rng, s->n_vi);
        segidx_volume_index *vi = s->vi[handle];
        segidx_volume_meta m;
        if (!get_meta(w, vi, v, &m))
            break;
        if (m.lsn >= s->max_lsn || held_back(w, v, &m)) {
            sched_yield();
            continue;
        }
        /* Now and then a target already reached: no pull at all. */
        bool behind = rng_below(&w->rng, 8) != 0;
        segidx_lsn target = behind ? m.lsn + 1 + rng_below(&w->rng, 3) : m.lsn;
        if (target > s->max_lsn)
            target = s->max_lsn;
        struct pull_ctx c = { w, v, handle, target, 0 };
        int rc = segidx_volume_sync(vi, &s->vid[v], target, pull_missing, &c);
        CHECK(s, rc == SEGIDX_OK, "syncer %u: sync of volume %u to %llu: %s", w->id, v,
              (ull)target, segidx_strerror(rc));
        CHECK(s, behind || c.pulls == 0, "syncer %u: pulled for an LSN the index had", w->id);
        atomic_fetch_add(&s->syncs, 1);
        if (!get_meta(w, vi, v, &m))
            break;
        CHECK(s, m.lsn >= target, "syncer %u: volume %u at %llu after a sync to %llu", w->id, v,
              (ull)m.lsn, (ull)target);
    }
    return NULL;
}

/* ------------------------------------------------------------ the store */

/* One store under one or two volume indexes: each index owns a reference,
 * the last close closes the store (and, for LMDB, removes its directory). */
struct shared_store {
    kv_forward fw;       /* first: the close hook gets it; fw.refused counts
                          * the writes the store refused (an EXPECT failed) */
    atomic_int refs;
#ifdef VI_STRESS_OVER_LMDB
    char dir[64];
#endif
};

static void shared_close(kv_forward *f)
{
    struct shared_store *st = (struct shared_store *)f;
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    kv_forward_inner_close(f);
#ifdef VI_STRESS_OVER_LMDB
    char path[96];
    snprintf(path, sizeof path, "%s/data.mdb", st->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", st->dir);
    unlink(path);
    rmdir(st->dir);
#endif
    free(st);
}

static struct shared_store *shared_open(void)
{
    struct shared_store *st = calloc(1, sizeof *st);
    assert_non_null(st);
    segidx_kv inner;
#ifdef VI_STRESS_OVER_LMDB
    snprintf(st->dir, sizeof st->dir, "/tmp/segidx-stress-XXXXXX");
    assert_non_null(mkdtemp(st->dir));
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = true;
    o.map_size = (size_t)256 << 20;
    assert_int_equal(segidx_kv_lmdb_open(st->dir, &o, &inner), SEGIDX_OK);
#else
    assert_int_equal(segidx_kv_mem_open(&inner), SEGIDX_OK);
#endif
    kv_forward_init(&st->fw, inner);
    st->fw.close = shared_close;
    atomic_init(&st->refs, 0);
    return st;
}

/* ------------------------------------------------------------ checkpoints
 *
 * The checkpoint values in the store, read straight from it and decoded as
 * docs/FORMAT.md ("Checkpoints") says, against the model: a volume's meta
 * names its schedule; every round from the newest image round at or below
 * the prune point up to the head has exactly the values its commit writes
 * (a chunk with nothing in it has none), each holding, for every offset of
 * its chunk written in its span, the newest LSN there; no other round has
 * any. */

#define CKPT_PREFIX "checkpoints/"
#define CKPT_PREFIX_LEN 12
#define CKPT_KEY_LEN (CKPT_PREFIX_LEN + 16 + 8 + 1 + 4)
#define CHUNK_BITS 12
#define CHUNK_OFFSETS (1u << CHUNK_BITS)

/* A volume's schedule as its meta stores it; from == 0: no checkpoints. */
struct schedule {
    segidx_lsn from;
    uint64_t commits, fanout, levels;
};

static uint64_t power_of(uint64_t f, uint64_t e)
{
    uint64_t r = 1;
    while (e--)
        r *= f;
    return r;
}

static uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A chunk map of `level` at round LSN `round` for `chunk`, decoded into
 * off[]/lsn[] (ascending offsets); false if any byte breaks the format. */
static bool decode_chunk_map(const uint8_t *p, size_t len, segidx_lsn round, unsigned level,
                             uint32_t chunk, uint32_t *off, segidx_lsn *lsn, unsigned *count)
{
    static const uint8_t magic[4] = { 'S', 'X', 'C', 'K' };
    if (len < 32 || memcmp(p, magic, 4) != 0 || segidx__load16(p + 4) != 1 || p[6] != level ||
        p[7] > 1 || segidx__load64(p + 8) != round || segidx__load32(p + 16) != chunk ||
        p[22] > 64 || p[23] != 0)
        return false;
    unsigned n = segidx__load16(p + 20) + 1u, width = p[22];
    bool bitmap = p[7] == 1;
    if (bitmap != (n >= 256))
        return false;
    size_t ob = bitmap ? CHUNK_OFFSETS / 8 : 2 * (size_t)n, lb = ((size_t)n * width + 7) / 8;
    if (len != 24 + ob + lb + 8 || segidx__load64(p + len - 8) != segidx__xxh3(p, len - 8))
        return false;
    const uint8_t *offs = p + 24, *lsns = offs + ob;
    unsigned k = 0;
    for (unsigned i = 0; i < (bitmap ? CHUNK_OFFSETS : n); i++) {
        unsigned b = bitmap ? i : segidx__load16(offs + 2 * i);
        if (bitmap ? !(offs[b / 8] >> (b % 8) & 1) : false)
            continue;
        if (k == n || b >= CHUNK_OFFSETS || (k && b <= (off[k - 1] & (CHUNK_OFFSETS - 1))))
            return false;
        off[k++] = chunk << CHUNK_BITS | b;
    }
    if (k != n)
        return false;
    for (unsigned i = 0; i < n; i++) {
        uint64_t field = 0;
        for (unsigned bit = 0; bit < width; bit++) {
            size_t pos = (size_t)i * width + bit;
            field |= (uint64_t)(lsns[pos / 8] >> (pos % 8) & 1) << bit;
        }
        if (field >= round)
            return false;
        lsn[i] = round - field;
    }
    size_t used = (size_t)n * width % 8;
    if (used && lsns[lb - 1] >> used)
        return false;
    *count = n;
    return true;
}

struct ckpt_check {
    struct stress *s;
    struct schedule sch[VOLUMES];
    segidx_volume_meta meta[VOLUMES];
    uint64_t first_round[VOLUMES]; /* the oldest round the prune point keeps */
    long values[VOLUMES];          /* values checked */
    uint32_t off[CHUNK_OFFSETS];
    segidx_lsn lsn[CHUNK_OFFSETS];
};

/* The offsets of `chunk` a value of `level` at round LSN `round` holds in
 * the model, with their LSNs: the newest write of each in its span. */
static unsigned expected_map(const struct stress *s, unsigned v, const struct schedule *sch,
                             segidx_lsn round, unsigned level, uint32_t chunk,
                             segidx_lsn lsn[WRITTEN])
{
    segidx_lsn lo = level == 0 ? 0 : round - sch->commits * power_of(sch->fanout, level - 1);
    unsigned n = 0;
    for (unsigned u = 0; u < WRITTEN; u++) {
        lsn[u] = 0;
        if (candidate_offset(u) >> CHUNK_BITS != chunk)
            continue;
        segidx_lsn l = model_at(s, v, u, round);
        if (l > lo) {
            lsn[u] = l;
            n++;
        }
    }
    return n;
}

/* Whether round n of the schedule stores a value of `level`. */
static bool round_has_level(const struct schedule *sch, uint64_t n, unsigned level)
{
    bool image = n % power_of(sch->fanout, sch->levels) == 0;
    if (image)
        return level == 0;
    return level >= 1 && level <= sch->levels && n % power_of(sch->fanout, level - 1) == 0;
}

static int visit_ckpt_value(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct ckpt_check *c = ctx;
    struct stress *s = c->s;
    const uint8_t *k = key;
    unsigned v = 0;
    while (v < VOLUMES &&
           (klen != CKPT_KEY_LEN || memcmp(k + CKPT_PREFIX_LEN, s->vid[v].bytes, 16) != 0))
        v++;
    if (v == VOLUMES) {
        stress_fail(s, "final: a checkpoint key of %zu bytes, of no volume", klen);
        return 1;
    }
    const struct schedule *sch = &c->sch[v];
    segidx_lsn round = load_be(k + CKPT_PREFIX_LEN + 16, 8);
    unsigned level = k[CKPT_PREFIX_LEN + 24];
    uint32_t chunk = (uint32_t)load_be(k + CKPT_PREFIX_LEN + 25, 4);
    if (!sch->from || round < sch->from || (round - sch->from) % sch->commits != 0 ||
        round > c->meta[v].lsn || (round - sch->from) / sch->commits < c->first_round[v] ||
        !round_has_level(sch, (round - sch->from) / sch->commits, level)) {
        stress_fail(s, "final: volume %u (LSN %llu, keep_from %llu) holds a checkpoint value at "
                       "round LSN %llu level %u chunk %u, which its schedule (from %llu, K %llu, "
                       "F %llu, L %llu) does not keep", v, (ull)c->meta[v].lsn,
                    (ull)c->meta[v].keep_from, (ull)round, level, chunk, (ull)sch->from,
                    (ull)sch->commits, (ull)sch->fanout, (ull)sch->levels);
        return 1;
    }
    unsigned n;
    if (!decode_chunk_map(val, vlen, round, level, chunk, c->off, c->lsn, &n)) {
        stress_fail(s, "final: volume %u: the checkpoint value at round LSN %llu level %u chunk "
                       "%u breaks the format", v, (ull)round, level, chunk);
        return 1;
    }
    segidx_lsn want[WRITTEN];
    unsigned n_want = expected_map(s, v, sch, round, level, chunk, want);
    bool same = n == n_want;
    for (unsigned i = 0; i < n && same; i++) {
        int u = candidate_index(c->off[i]);
        same = u >= 0 && u < (int)WRITTEN && want[u] == c->lsn[i];
    }
    CHECK(s, same, "final: volume %u: the checkpoint value at round LSN %llu level %u chunk %u "
                   "holds %u offsets, not the %u of the model, or other LSNs", v, (ull)round,
          level, chunk, n, n_want);
    c->values[v]++;
    return !same;
}

/* The meta's schedule, read from its stored bytes (a version-2 meta). */
static int keep_schedule(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    struct schedule *sch = ctx;
    const uint8_t *p = val;
    *sch = (struct schedule){ 0, 0, 0, 0 };
    if (vlen == 64 && segidx__load16(p + 4) == 2)
        *sch = (struct schedule){ segidx__load64(p + 40), segidx__load32(p + 48), p[52], p[53] };
    return 0;
}

/* Every checkpoint value of every volume, against the model, and each
 * volume's schedule against `want` (from == 0: none; from == 1: from the
 * first commit; from > 1: from some commit after from - 1). */
static void check_checkpoints(struct stress *s, const struct schedule *want, long *n_values)
{
    struct ckpt_check *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->s = s;
    long expected[VOLUMES] = { 0 };
    for (unsigned v = 0; v < VOLUMES; v++) {
        assert_int_equal(segidx_volume_get(s->vi[0], &s->vid[v], &c->meta[v]), SEGIDX_OK);
        uint8_t key[24];
        memcpy(key, "volumes/", 8);
        memcpy(key + 8, s->vid[v].bytes, 16);
        assert_int_equal(s->raw.vt->get(s->raw.self, key, sizeof key, keep_schedule, &c->sch[v]),
                         SEGIDX_OK);
        struct schedule *sch = &c->sch[v];
        CHECK(s, (sch->from != 0) == (want->from != 0) &&
                     (want->from <= 1 ? sch->from == want->from : sch->from >= want->from) &&
                     (!sch->from || (sch->commits == want->commits &&
                                     sch->fanout == want->fanout && sch->levels == want->levels)),
              "final: volume %u has the schedule from %llu K %llu F %llu L %llu, not from %s%llu "
              "K %llu F %llu L %llu", v, (ull)sch->from, (ull)sch->commits, (ull)sch->fanout,
              (ull)sch->levels, want->from > 1 ? ">= " : "", (ull)want->from,
              (ull)want->commits, (ull)want->fanout, (ull)want->levels);
        if (!sch->from || !stress_ok(s))
            continue;
        segidx_lsn keep = c->meta[v].keep_from, head = c->meta[v].lsn;
        uint64_t every = power_of(sch->fanout, sch->levels);
        if (keep >= sch->from) {
            uint64_t n = (keep - sch->from) / sch->commits;
            c->first_round[v] = n - n % every;
        }
        segidx_lsn lsns[WRITTEN];
        static const uint32_t chunks[] = { 0, (1u << 31) >> CHUNK_BITS,
                                           UINT32_MAX >> CHUNK_BITS };
        for (uint64_t n = c->first_round[v]; sch->from + n * sch->commits <= head; n++)
            for (unsigned level = 0; level <= sch->levels; level++)
                for (unsigned i = 0; i < 3 && round_has_level(sch, n, level); i++)
                    expected[v] += expected_map(s, v, sch, sch->from + n * sch->commits, level,
                                                chunks[i], lsns) > 0;
    }
    if (stress_ok(s)) {
        uint8_t lo[CKPT_PREFIX_LEN], hi[CKPT_PREFIX_LEN];
        memcpy(lo, CKPT_PREFIX, CKPT_PREFIX_LEN);
        memcpy(hi, CKPT_PREFIX, CKPT_PREFIX_LEN);
        hi[CKPT_PREFIX_LEN - 1]++;
        int rc = s->raw.vt->scan(s->raw.self, lo, sizeof lo, hi, sizeof hi, false,
                                 visit_ckpt_value, c);
        CHECK(s, rc >= 0, "final: scan of the checkpoint values: %s", segidx_strerror(rc));
    }
    for (unsigned v = 0; v < VOLUMES && stress_ok(s); v++) {
        CHECK(s, c->values[v] == expected[v], "final: volume %u holds %ld checkpoint values, "
                                              "the model %ld", v, c->values[v], expected[v]);
        *n_values += c->values[v];
    }
    free(c);
}

/* ------------------------------------------------------------ the run */

static void final_checks(struct stress *s)
{
    struct worker w = { s, 0, { 0 }, { 0 }, { 0 }, "final", { false } };
    segidx_volume_index *vi = s->vi[0];
    for (unsigned v = 0; v < VOLUMES; v++) {
        segidx_volume_meta m;
        if (!get_meta(&w, vi, v, &m))
            continue;
        CHECK(s, m.lsn == s->max_lsn, "final: volume %u at %llu, not %llu", v, (ull)m.lsn,
              (ull)s->max_lsn);
        for (segidx_lsn lsn = 1; lsn <= s->max_lsn; lsn++)
            CHECK(s, (lsn <= m.lsn) == (winner_of(s, v, lsn) != 0),
                  "final: volume %u at %llu, LSN %llu %s", v, (ull)m.lsn, (ull)lsn,
                  lsn <= m.lsn ? "stored, but no commit of it returned OK" : "returned OK, but "
                                                                             "is not there");
        /* Each LSN's entries: exactly its winner's, as the prune point left them. */
        check_commits(&w, vi, v, &m);
        /* Every retained LSN (and above the head) reads exactly; below, ERANGE. */
        bool all[CANDIDATES];
        for (unsigned u = 0; u < CANDIDATES; u++)
            all[u] = true;
        for (segidx_lsn lsn = m.keep_from; lsn <= m.lsn + 1; lsn++)
            read_checked(&w, vi, v, lsn, all, &m);
        read_checked(&w, vi, v, UINT64_MAX, all, &m);
        if (m.keep_from > 0)
            read_checked(&w, vi, v, m.keep_from - 1, all, &m);
    }
}

/* One run: its indexes' options, and how its volumes begin. */
struct stress_run {
    const char *name;
    unsigned n_vi;
    uint64_t seed;
    long share;                               /* in 1/1200ths of the budget */
    segidx_volume_index_options opts[2];      /* each index's */
    segidx_lsn history;                       /* LSNs committed through index 0 first */
    struct schedule want;                     /* the volumes' schedule afterwards */
};

static void run_stress(const struct stress_run *run)
{
    unsigned n_vi = run->n_vi;
    uint64_t seed = run->seed;
    struct stress *s = stress_new((segidx_lsn)test_scaled_threads(run->share), seed);
    struct shared_store *st = shared_open();
    s->n_vi = n_vi;
    s->name = run->name;
    s->share = run->share;
    s->raw = st->fw.inner;
    for (unsigned i = 0; i < n_vi; i++) {
        atomic_fetch_add(&st->refs, 1);
        assert_int_equal(segidx_volume_index_open_with(kv_forward_kv(&st->fw),
                                                       &run->opts[i], &s->vi[i]),
                         SEGIDX_OK);
    }
    for (unsigned v = 0; v < VOLUMES; v++)
        for (segidx_lsn lsn = 1; lsn <= run->history; lsn++)
            assert_int_equal(commit_as(s, s->vi[0], v, lsn, MAIN_WRITER), SEGIDX_OK);

    enum { THREADS = COMMITTERS + SYNCERS + READERS + 2 };
    struct worker w[THREADS];
    pthread_t t[THREADS];
    void *(*role[THREADS])(void *);
    const char *names[THREADS];
    unsigned n = 0;
    for (unsigned i = 0; i < COMMITTERS; i++, n++)
        role[n] = committer, names[n] = "committer";
    for (unsigned i = 0; i < SYNCERS; i++, n++)
        role[n] = syncer, names[n] = "syncer";
    for (unsigned i = 0; i < READERS; i++, n++)
        role[n] = reader, names[n] = "reader";
    role[n] = pruner, names[n++] = "pruner";
    role[n] = lister, names[n++] = "lister";
    atomic_store(&s->busy, COMMITTERS);
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ s, i + 1, { seed * 1000 + i }, { 0 }, { 0 }, names[i], { false } };
        assert_int_equal(pthread_create(&t[i], NULL, role[i], &w[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    long values = 0;
    if (stress_ok(s))
        final_checks(s);
    if (stress_ok(s))
        check_checkpoints(s, &run->want, &values);
    /* One index orders its writers itself: the store never refuses one. */
    long refused = atomic_load(&st->fw.refused);
    CHECK(s, n_vi > 1 || refused == 0, "one index, yet the store refused %ld writes", refused);

    print_message("%s: %ld commits, %ld conflicts (%ld with the LSN free), %ld reads "
                  "(%ld below keep_from, %ld pruned meanwhile), %ld prunes (%ld conflicts, %ld "
                  "sids unreferenced), %ld syncs (%ld pulls), %ld lists, %ld commit walks; "
                  "the store refused %ld writes; %ld checkpoint values checked\n",
                  run->name, atomic_load(&s->commits),
                  atomic_load(&s->conflicts), atomic_load(&s->conflicts_lsn_free),
                  atomic_load(&s->reads), atomic_load(&s->reads_pruned),
                  atomic_load(&s->reads_torn), atomic_load(&s->prunes),
                  atomic_load(&s->prune_conflicts), atomic_load(&s->unreferenced),
                  atomic_load(&s->syncs), atomic_load(&s->pulls), atomic_load(&s->lists),
                  atomic_load(&s->walks), refused, values);
    long failures = atomic_load(&s->failures);
    for (unsigned i = 0; i < n_vi; i++)
        segidx_volume_index_close(s->vi[i]);
    stress_free(s);
    assert_int_equal(failures, 0);
}

/* Five runs share the iterations one run had before: 480 LSNs a volume
 * each. */
#define SHARE 480

static const struct schedule default_schedule = { 1, SEGIDX_DEFAULT_CHECKPOINT_COMMITS,
                                                  SEGIDX_DEFAULT_CHECKPOINT_FANOUT,
                                                  SEGIDX_DEFAULT_CHECKPOINT_LEVELS };

/* Every writer through one index: its mutex orders them. Default
 * checkpoints (a round every 16 commits). */
static void test_stress_one_index(void **state)
{
    (void)state;
    struct stress_run r = { "one index", 1, 1, SHARE, { { 0, 0, 0 } }, 1, default_schedule };
    run_stress(&r);
}

/* Writers through two indexes on one store: only the store's EXPECT on
 * the meta orders them, as for two processes. */
static void test_stress_two_indexes(void **state)
{
    (void)state;
    struct stress_run r = { "two indexes", 2, 2, SHARE, { { 0, 0, 0 }, { 0, 0, 0 } }, 1,
                            default_schedule };
    run_stress(&r);
}

/* A small schedule: every other commit closes a round and writes deltas,
 * every fourth a level-2 delta, every eighth an image; each prune past an
 * image round deletes values, while readers read through them. */
static void test_stress_small_checkpoints(void **state)
{
    (void)state;
    struct stress_run r = { "one index, K 2 F 2 L 2", 1, 3, SHARE, { { 2, 2, 2 } }, 1,
                            { 1, 2, 2, 2 } };
    run_stress(&r);
}

/* Two indexes with different options: the first gives the volumes their
 * schedule at LSN 1, and the second, whose own would be K 1 F 2 L 3,
 * follows it in every commit it makes. */
static void test_stress_small_checkpoints_two_indexes(void **state)
{
    (void)state;
    struct stress_run r = { "two indexes, K 2 F 2 L 2 and K 1 F 2 L 3", 2, 4, SHARE,
                            { { 2, 2, 2 }, { 1, 2, 3 } }, 1, { 1, 2, 2, 2 } };
    run_stress(&r);
}

/* Volumes written without checkpoints (24 commits through an index that
 * has them off), then raced on by that index and one with K 3 F 2 L 1:
 * the first commit through the second upgrades the volume (round 0, an
 * image from one walk of the history), and the first keeps committing by
 * the schedule from then on. */
static void test_stress_upgrade(void **state)
{
    (void)state;
    struct stress_run r = { "two indexes, checkpoints off and K 3 F 2 L 1", 2, 5, SHARE,
                            { { SEGIDX_CHECKPOINTS_OFF, 0, 0 }, { 3, 2, 1 } }, 24,
                            { 25, 3, 2, 1 } };
    run_stress(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_one_index),
        cmocka_unit_test(test_stress_two_indexes),
        cmocka_unit_test(test_stress_small_checkpoints),
        cmocka_unit_test(test_stress_small_checkpoints_two_indexes),
        cmocka_unit_test(test_stress_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
