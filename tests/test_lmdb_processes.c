/* Processes sharing one LMDB volume index, each with its own store and
 * index opened after fork:
 * - two committers race for one volume's next LSN for a few seconds: every
 *   LSN holds exactly one commit, the one its writer was told was OK, and
 *   no LSN is missing;
 * - a pruner raises keep_from behind the head while a committer commits
 *   and a reader reads: the LSN and keep_from never go back, no OK commit
 *   is lost, every read is exact or ERANGE with keep_from past it, and at
 *   the end every retained LSN reads exactly.
 * A commit's content is a function of (writer, lsn), and its sids name
 * both, so the parent checks the store against what the children logged.
 * Children report through their exit status and a log file each; a child
 * that does not finish within a generous bound is killed and fails the
 * test.
 *
 * Built again with PROCESSES_OVER_PG as tests/test_pg_processes.c: the same
 * children over one table of a PostgreSQL server the binary starts, each
 * process with a store (and connections) of its own. */
#include "kv_forward.h"
#include "testutil.h"

#ifdef PROCESSES_OVER_PG
#include "pgserver.h"
#include "segidx_pg.h"
#else
#include "segidx_lmdb.h"
#endif

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_SECONDS 2.2  /* each child's share of a case */
#define BOUND_SECONDS 60 /* a child still running then has hung */
#define UNIVERSE 64u     /* offsets commits write */
#define UNWRITTEN 1000u  /* an offset no commit writes */
#define MAX_OFFS 6
#define SID_TAG 0xC0
#define PACE_LAG 48      /* the paced committer waits for the pruner this far ahead */

typedef unsigned long long ull;

static const segidx_vid proc_vid = { { 'p', 'r', 'o', 'c', 'e', 's', 's' } };

/* ------------------------------------------------------------ content */

/* What writer `w` commits as LSN `lsn`: one or two segments, 1..6 offsets
 * of UNIVERSE. Never empty, so that a missing LSN shows. */
struct content {
    size_t n;
    segidx_sid sid[2];
    uint32_t off[2][MAX_OFFS];
    size_t len[2];
};

static void content_for(unsigned w, segidx_lsn lsn, struct content *c)
{
    test_rng r = { w * 0xD1B54A32D192ED03ull ^ lsn * 0x9E3779B97F4A7C15ull };
    memset(c, 0, sizeof *c);
    size_t k = 1 + rng_below(&r, MAX_OFFS);
    uint32_t picked[MAX_OFFS];
    size_t got = 0;
    while (got < k) {
        uint32_t o = (uint32_t)rng_below(&r, UNIVERSE);
        bool dup = false;
        for (size_t i = 0; i < got; i++)
            dup |= picked[i] == o;
        if (!dup)
            picked[got++] = o;
    }
    c->n = 1 + rng_below(&r, 2);
    if (c->n > k)
        c->n = k;
    for (size_t i = 0; i < k; i++) {
        size_t j = i < c->n ? i : rng_below(&r, c->n);
        c->off[j][c->len[j]++] = picked[i];
    }
    for (size_t j = 0; j < c->n; j++) {
        c->sid[j].bytes[0] = (uint8_t)(SID_TAG | w);
        for (int i = 0; i < 8; i++)
            c->sid[j].bytes[1 + i] = (uint8_t)(lsn >> (56 - 8 * i));
        c->sid[j].bytes[9] = (uint8_t)(j + 1);
    }
}

/* The segment of `c` that writes `off`, or -1. */
static int content_seg(const struct content *c, uint32_t off)
{
    for (size_t j = 0; j < c->n; j++)
        for (size_t i = 0; i < c->len[j]; i++)
            if (c->off[j][i] == off)
                return (int)j;
    return -1;
}

static int commit_content(segidx_volume_index *vi, unsigned w, segidx_lsn lsn)
{
    struct content c;
    content_for(w, lsn, &c);
    segidx_commit_segment segs[2];
    for (size_t j = 0; j < c.n; j++) {
        segidx_offset_set *s = segidx_offset_set_new();
        if (!s)
            _exit(90);
        for (size_t i = 0; i < c.len[j]; i++)
            segidx_offset_set_add(s, c.off[j][i]);
        segs[j] = (segidx_commit_segment){ c.sid[j], s };
    }
    int rc = segidx_volume_commit(vi, &proc_vid, lsn, lsn, segs, c.n);
    for (size_t j = 0; j < c.n; j++)
        segidx_offset_set_free((segidx_offset_set *)segs[j].offsets);
    return rc;
}

/* ------------------------------------------------------------ the model
 *
 * The history one writer made: for each offset, the LSNs that wrote it.
 */
struct history {
    unsigned writer;
    segidx_lsn head;
    segidx_lsn *lsn[UNIVERSE];
    size_t n[UNIVERSE], cap[UNIVERSE];
};

static void history_extend(struct history *h, segidx_lsn head)
{
    for (; h->head < head; h->head++) {
        struct content c;
        content_for(h->writer, h->head + 1, &c);
        for (size_t j = 0; j < c.n; j++)
            for (size_t i = 0; i < c.len[j]; i++) {
                uint32_t o = c.off[j][i];
                if (h->n[o] == h->cap[o]) {
                    h->cap[o] = h->cap[o] ? 2 * h->cap[o] : 64;
                    h->lsn[o] = realloc(h->lsn[o], h->cap[o] * sizeof *h->lsn[o]);
                    if (!h->lsn[o])
                        abort();
                }
                h->lsn[o][h->n[o]++] = h->head + 1;
            }
    }
}

static void history_free(struct history *h)
{
    for (unsigned o = 0; o < UNIVERSE; o++)
        free(h->lsn[o]);
}

/* The first LSN > a that wrote `off` (within the history), or UINT64_MAX. */
static segidx_lsn history_next(const struct history *h, uint32_t off, segidx_lsn a)
{
    if (off >= UNIVERSE)
        return UINT64_MAX;
    size_t lo = 0, hi = h->n[off];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->lsn[off][mid] <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < h->n[off] ? h->lsn[off][lo] : UINT64_MAX;
}

/* ------------------------------------------------------------ checked reads */

struct answer {
    unsigned writer;
    segidx_lsn got[UNIVERSE + 1]; /* by offset; [UNIVERSE]: UNWRITTEN */
    bool answered[UNIVERSE + 1];
    segidx_lsn last;
    const segidx_sid *sid;
    segidx_lsn lsn;
    int bad;
};

static unsigned slot_of(uint32_t off)
{
    return off < UNIVERSE ? off : UNIVERSE;
}

static int visit_offset(segidx_offset off, void *ctx)
{
    struct answer *a = ctx;
    struct content c;
    content_for(a->writer, a->lsn, &c);
    int j = content_seg(&c, off);
    if (j < 0 || memcmp(c.sid[j].bytes, a->sid->bytes, 16) != 0 || a->answered[slot_of(off)]) {
        a->bad = 1;
        return 0;
    }
    a->answered[slot_of(off)] = true;
    a->got[slot_of(off)] = a->lsn;
    return 0;
}

static int visit_found(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    struct answer *a = ctx;
    if (lsn > a->last || lsn == 0)
        a->bad = 1;
    a->last = lsn;
    a->sid = sid;
    a->lsn = lsn;
    segidx_offset_set_iterate(cut, visit_offset, a);
    return 0;
}

/* A read of every offset at `lsn`, given the meta read before it; `after`
 * gets the meta read after it. Returns 0 when the read is exact, or
 * ERANGE with keep_from now past lsn (or, for a read above the head, past
 * the head it went by); else a number saying what was wrong. */
static int read_and_check(segidx_volume_index *vi, struct history *h, segidx_lsn lsn,
                          const segidx_volume_meta *before, segidx_volume_meta *after)
{
    segidx_offset_set *q = segidx_offset_set_new();
    if (!q)
        abort();
    segidx_offset_set_add_range(q, 0, UNIVERSE);
    segidx_offset_set_add(q, UNWRITTEN);
    struct answer a;
    memset(&a, 0, sizeof a);
    a.writer = h->writer;
    a.last = UINT64_MAX;
    int rc = segidx_volume_find_segments(vi, &proc_vid, lsn, q, visit_found, &a);
    int why = 0;
    if (segidx_volume_get(vi, &proc_vid, after) != SEGIDX_OK)
        why = 1;
    else if (lsn < before->keep_from)
        why = rc == SEGIDX_ERANGE ? 0 : 2;
    else if (rc == SEGIDX_ERANGE) /* pruned past lsn, or past the head it read by */
        why = after->keep_from > (lsn < before->lsn ? lsn : before->lsn) ? 0 : 3;
    else if (rc != SEGIDX_OK || a.bad)
        why = 4;
    if (why || rc != SEGIDX_OK) {
        segidx_offset_set_free(q);
        return why;
    }
    history_extend(h, after->lsn);
    /* Some H in [min(lsn, before), min(lsn, after)] explains every answer. */
    segidx_lsn lo = lsn < before->lsn ? lsn : before->lsn;
    segidx_lsn hi = lsn < after->lsn ? lsn : after->lsn;
    for (uint32_t off = 0; off <= UNIVERSE; off++) {
        uint32_t o = off < UNIVERSE ? off : UNWRITTEN;
        segidx_lsn got = a.answered[off] ? a.got[off] : 0;
        if (segidx_offset_set_contains(q, o) == a.answered[off])
            why = 5;
        segidx_lsn next = history_next(h, o, got);
        lo = got > lo ? got : lo;
        hi = next - 1 < hi ? next - 1 : hi;
    }
    segidx_offset_set_free(q);
    if (!why && lo > hi) {
        fprintf(stderr, "WRONG ANSWER: read at %llu (head %llu..%llu, keep_from %llu..%llu)\n",
                (ull)lsn, (ull)before->lsn, (ull)after->lsn, (ull)before->keep_from,
                (ull)after->keep_from);
        why = 6;
    }
    return why;
}

/* ------------------------------------------------------------ children */

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The store, counting the writes it refuses (an EXPECT failed: the other
 * process wrote the volume first). One store per process. */
static kv_forward shared_store;

/* `dir`: LMDB's directory, or over PostgreSQL the table. */
static segidx_volume_index *open_shared(const char *dir)
{
#ifdef PROCESSES_OVER_PG
    segidx_kv_pg_options o = { 0 };
    o.table = dir;
    segidx_kv kv;
    if (segidx_kv_pg_open(pgserver_conninfo(), &o, &kv) != SEGIDX_OK)
        return NULL;
#else
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = true; /* a process crash loses nothing; this is about races */
    o.map_size = (size_t)512 << 20;
    segidx_kv kv;
    if (segidx_kv_lmdb_open(dir, &o, &kv) != SEGIDX_OK)
        return NULL;
#endif
    kv_forward_init(&shared_store, kv);
    segidx_volume_index *vi;
    if (segidx_volume_index_open(kv_forward_kv(&shared_store), &vi) != SEGIDX_OK) {
        kv_forward_inner_close(&shared_store);
        return NULL;
    }
    return vi;
}

/* Exit statuses of a child: 0 is success. */
enum {
    CHILD_OK, CHILD_OPEN, CHILD_GET, CHILD_LSN_BACK, CHILD_KEEP_BACK, CHILD_COMMIT,
    CHILD_AFTER_OK, CHILD_LOG, CHILD_PRUNE, CHILD_PRUNE_KEEP, CHILD_READ, CHILD_NOTHING
};

/* The volume's meta, LSN 0 before its first commit; the LSN and keep_from
 * must not have gone back since this process last looked. */
static int get_checked(segidx_volume_index *vi, segidx_volume_meta *m, segidx_volume_meta *seen)
{
    int rc = segidx_volume_get(vi, &proc_vid, m);
    if (rc == SEGIDX_ENOTFOUND)
        memset(m, 0, sizeof *m);
    else if (rc)
        return CHILD_GET;
    if (m->lsn < seen->lsn)
        return CHILD_LSN_BACK;
    if (m->keep_from < seen->keep_from)
        return CHILD_KEEP_BACK;
    *seen = *m;
    return CHILD_OK;
}

static int put_u64(int fd, uint64_t v)
{
    return write(fd, &v, sizeof v) == (ssize_t)sizeof v ? CHILD_OK : CHILD_LOG;
}

/* Commit the volume's next LSN until the time is up, logging each LSN
 * whose commit returned OK, then a 0, the number of conflicts and the
 * number of writes the store refused (the index retried some). With
 * `max_lag`, wait while the head is that far past keep_from, so that a
 * pruner keeps up and the history stays small enough to check whole. */
static int committer_child(const char *dir, unsigned writer, segidx_lsn max_lag, int log_fd)
{
    segidx_volume_index *vi = open_shared(dir);
    if (!vi)
        return CHILD_OPEN;
    segidx_volume_meta seen = { 0 }, m;
    segidx_lsn own = 0;
    uint64_t conflicts = 0, oks = 0;
    int st = CHILD_OK;
    for (double end = now_seconds() + RUN_SECONDS; !st && now_seconds() < end;) {
        if ((st = get_checked(vi, &m, &seen)))
            break;
        if (max_lag && m.lsn - m.keep_from >= max_lag) {
            sched_yield();
            continue;
        }
        segidx_lsn lsn = m.lsn + 1;
        int rc = commit_content(vi, writer, lsn);
        if (rc == SEGIDX_OK) {
            own = lsn;
            oks++;
            if ((st = put_u64(log_fd, lsn)))
                break;
        } else if (rc == SEGIDX_ECONFLICT) {
            conflicts++;
        } else {
            fprintf(stderr, "writer %u: commit %llu: %s\n", writer, (ull)lsn,
                    segidx_strerror(rc));
            st = CHILD_COMMIT;
            break;
        }
        if ((st = get_checked(vi, &m, &seen)))
            break;
        if (m.lsn < own)
            st = CHILD_AFTER_OK;
    }
    if (!st && !oks)
        st = CHILD_NOTHING;
    if (!st && !(st = put_u64(log_fd, 0)) && !(st = put_u64(log_fd, conflicts)))
        st = put_u64(log_fd, (uint64_t)atomic_load(&shared_store.refused));
    segidx_volume_index_close(vi);
    return st;
}

/* Raise keep_from to a few LSNs behind the head until the time is up,
 * logging each keep_from a prune returned OK for. */
static int pruner_child(const char *dir, int log_fd)
{
    segidx_volume_index *vi = open_shared(dir);
    if (!vi)
        return CHILD_OPEN;
    test_rng r = { 77 };
    segidx_volume_meta seen = { 0 }, m;
    uint64_t prunes = 0;
    int st = CHILD_OK;
    for (double end = now_seconds() + RUN_SECONDS; !st && now_seconds() < end;) {
        if ((st = get_checked(vi, &m, &seen)))
            break;
        segidx_lsn lag = 3 + rng_below(&r, 8);
        if (m.lsn <= lag || m.lsn - lag <= m.keep_from) {
            sched_yield();
            continue;
        }
        segidx_lsn target = m.lsn - lag;
        int rc = rng_below(&r, 2) ? segidx_volume_prune(vi, &proc_vid, target)
                                  : segidx_volume_prune_report(vi, &proc_vid, target, NULL, NULL);
        if (rc == SEGIDX_ECONFLICT)
            continue;
        if (rc) {
            fprintf(stderr, "pruner: prune to %llu: %s\n", (ull)target, segidx_strerror(rc));
            st = CHILD_PRUNE;
            break;
        }
        prunes++;
        if ((st = put_u64(log_fd, target)) || (st = get_checked(vi, &m, &seen)))
            break;
        if (m.keep_from != target)
            st = CHILD_PRUNE_KEEP;
    }
    if (!st && !prunes)
        st = CHILD_NOTHING;
    segidx_volume_index_close(vi);
    return st;
}

/* Read every offset at random LSNs around keep_from and the head, each
 * read checked against writer 1's history, until the time is up. */
static int reader_child(const char *dir, int log_fd)
{
    segidx_volume_index *vi = open_shared(dir);
    if (!vi)
        return CHILD_OPEN;
    test_rng r = { 78 };
    struct history h = { 1, 0, { NULL }, { 0 }, { 0 } };
    segidx_volume_meta seen = { 0 }, m, after;
    uint64_t reads = 0;
    int st = CHILD_OK;
    for (double end = now_seconds() + RUN_SECONDS; !st && now_seconds() < end;) {
        if ((st = get_checked(vi, &m, &seen)))
            break;
        if (m.lsn == 0) {
            sched_yield();
            continue;
        }
        unsigned k = (unsigned)rng_below(&r, 4);
        segidx_lsn lsn = k == 0   ? m.keep_from + rng_below(&r, 3)
                         : k == 1 ? m.keep_from + rng_below(&r, m.lsn - m.keep_from + 1)
                         : k == 2 ? m.lsn + rng_below(&r, 3)
                                  : (m.keep_from ? rng_below(&r, m.keep_from) : 0);
        int why = read_and_check(vi, &h, lsn, &m, &after);
        if (why) {
            fprintf(stderr, "reader: read at %llu (head %llu, keep_from %llu): check %d failed\n",
                    (ull)lsn, (ull)m.lsn, (ull)m.keep_from, why);
            st = CHILD_READ;
            break;
        }
        if ((st = get_checked(vi, &m, &seen)))
            break;
        reads++;
    }
    if (!st)
        st = put_u64(log_fd, reads);
    history_free(&h);
    segidx_volume_index_close(vi);
    return st;
}

/* ------------------------------------------------------------ the parent */

enum role { COMMITTER_1, COMMITTER_2, PACED, PRUNER, READER };

struct child {
    enum role role;
    pid_t pid;
    char log[128];
};

struct run {
    char dir[64];   /* the children's logs, and LMDB's files */
    char store[64]; /* what open_shared() opens: dir, or over PostgreSQL a table */
    struct child kids[3];
    int n;
};

static void run_open(struct run *run)
{
    memset(run, 0, sizeof *run);
    snprintf(run->dir, sizeof run->dir, "/tmp/segidx-processes-XXXXXX");
    assert_non_null(mkdtemp(run->dir));
#ifdef PROCESSES_OVER_PG
    pgserver_table(run->store, sizeof run->store, "processes");
#else
    memcpy(run->store, run->dir, sizeof run->store);
#endif
    /* The store exists before the children race to open it. */
    segidx_volume_index *vi = open_shared(run->store);
    assert_non_null(vi);
    segidx_volume_index_close(vi);
}

static void run_child(struct run *run, enum role role)
{
    struct child *c = &run->kids[run->n++];
    c->role = role;
    char dir[sizeof run->dir];
    memcpy(dir, run->dir, sizeof dir);
    snprintf(c->log, sizeof c->log, "%s/log%d", dir, (int)role);
    int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(NULL);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int st = role == COMMITTER_1 ? committer_child(run->store, 1, 0, fd)
                 : role == COMMITTER_2 ? committer_child(run->store, 2, 0, fd)
                 : role == PACED       ? committer_child(run->store, 1, PACE_LAG, fd)
                 : role == PRUNER      ? pruner_child(run->store, fd)
                                       : reader_child(run->store, fd);
        close(fd);
        _exit(st);
    }
    close(fd);
}

/* Wait for every child, killing any still running after BOUND_SECONDS;
 * each must have exited 0. */
static void run_wait(struct run *run)
{
    int statuses[3];
    bool done[3] = { false };
    int left = run->n;
    double end = now_seconds() + BOUND_SECONDS;
    while (left > 0 && now_seconds() < end) {
        for (int i = 0; i < run->n; i++)
            if (!done[i] && waitpid(run->kids[i].pid, &statuses[i], WNOHANG) == run->kids[i].pid) {
                done[i] = true;
                left--;
            }
        struct timespec nap = { 0, 20 * 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
    for (int i = 0; i < run->n; i++)
        if (!done[i]) {
            kill(run->kids[i].pid, SIGKILL);
            waitpid(run->kids[i].pid, &statuses[i], 0);
        }
    for (int i = 0; i < run->n; i++) {
        if (!done[i])
            fail_msg("child %d (role %d) still running after %d s: killed", i,
                     (int)run->kids[i].role, BOUND_SECONDS);
        if (!WIFEXITED(statuses[i]) || WEXITSTATUS(statuses[i]) != 0)
            fail_msg("child %d (role %d) %s %d", i, (int)run->kids[i].role,
                     WIFEXITED(statuses[i]) ? "exited with" : "killed by signal",
                     WIFEXITED(statuses[i]) ? WEXITSTATUS(statuses[i]) : WTERMSIG(statuses[i]));
    }
}

/* A child's log: the u64s it wrote. */
static uint64_t *read_log(const struct child *c, size_t *n)
{
    FILE *f = fopen(c->log, "rb");
    assert_non_null(f);
    size_t cap = 1024;
    uint64_t *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    *n = 0;
    while (fread(&v[*n], sizeof *v, 1, f) == 1)
        if (++*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
    fclose(f);
    return v;
}

static void run_close(struct run *run, segidx_volume_index *vi)
{
    segidx_volume_index_close(vi);
    for (int i = 0; i < run->n; i++)
        unlink(run->kids[i].log);
#ifndef PROCESSES_OVER_PG
    char path[160];
    snprintf(path, sizeof path, "%s/data.mdb", run->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", run->dir);
    unlink(path);
#endif
    assert_int_equal(rmdir(run->dir), 0);
}

/* The store's entries, by LSN: which writer (0: none yet) and a bitmask
 * per segment of the content's offsets held. */
struct stored {
    segidx_lsn head;
    unsigned *writer;        /* [lsn] */
    uint8_t (*held)[2];      /* [lsn][j]: 0x80 | offsets held, by their index in the content */
    bool bad;
};

static int visit_stored(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                        const segidx_offset_set *offsets)
{
    struct stored *s = ctx;
    unsigned w = sid->bytes[0] & ~SID_TAG;
    if (lsn < 1 || lsn > s->head || (sid->bytes[0] & SID_TAG) != SID_TAG || w < 1 || w > 2 ||
        (s->writer[lsn] && s->writer[lsn] != w)) {
        s->bad = true;
        return 0;
    }
    s->writer[lsn] = w;
    struct content c;
    content_for(w, lsn, &c);
    for (size_t j = 0; j < c.n; j++) {
        if (memcmp(c.sid[j].bytes, sid->bytes, 16) != 0)
            continue;
        uint8_t mask = 0x80;
        uint64_t inside = 0;
        for (size_t i = 0; i < c.len[j]; i++)
            if (segidx_offset_set_contains(offsets, c.off[j][i])) {
                mask |= (uint8_t)(1u << i);
                inside++;
            }
        /* Nothing but the segment's own offsets, and not the same entry twice. */
        if (s->held[lsn][j] || !inside || segidx_offset_set_cardinality(offsets) != inside)
            s->bad = true;
        s->held[lsn][j] = mask;
        return 0;
    }
    s->bad = true; /* a sid of no segment of that writer's commit */
    return 0;
}

static void read_stored(segidx_volume_index *vi, segidx_lsn head, struct stored *s)
{
    s->head = head;
    s->writer = calloc(head + 1, sizeof *s->writer);
    s->held = calloc(head + 1, sizeof *s->held);
    s->bad = false;
    assert_true(s->writer && s->held);
    assert_int_equal(segidx_volume_commits(vi, &proc_vid, visit_stored, s), SEGIDX_OK);
    assert_false(s->bad);
}

static void stored_free(struct stored *s)
{
    free(s->writer);
    free(s->held);
}

/* Two committers, one volume: every LSN 1..head holds exactly one commit,
 * all of it, by the writer that was told OK; every OK is there. */
static void test_two_committers(void **state)
{
    (void)state;
    struct run run;
    run_open(&run);
    run_child(&run, COMMITTER_1);
    run_child(&run, COMMITTER_2);
    run_wait(&run);

    segidx_volume_index *vi = open_shared(run.store);
    assert_non_null(vi);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(vi, &proc_vid, &m), SEGIDX_OK);
    unsigned *owner = calloc(m.lsn + 1, sizeof *owner);
    assert_non_null(owner);
    uint64_t oks[2] = { 0 }, conflicts[2] = { 0 }, refused[2] = { 0 };
    for (int i = 0; i < 2; i++) {
        size_t n;
        uint64_t *log = read_log(&run.kids[i], &n);
        assert_true(n >= 3 && log[n - 3] == 0); /* the trailer: 0, conflicts, refused */
        conflicts[i] = log[n - 2];
        refused[i] = log[n - 1];
        for (size_t k = 0; k + 3 < n; k++) {
            segidx_lsn lsn = log[k];
            if (lsn < 1 || lsn > m.lsn)
                fail_msg("writer %d was told LSN %llu was OK; the head is %llu", i + 1,
                         (ull)lsn, (ull)m.lsn);
            if (k > 0 && lsn <= log[k - 1])
                fail_msg("writer %d was told OK for %llu after %llu", i + 1, (ull)lsn,
                         (ull)log[k - 1]);
            if (owner[lsn])
                fail_msg("LSN %llu was OK for both writers", (ull)lsn);
            owner[lsn] = (unsigned)i + 1;
            oks[i]++;
        }
        free(log);
    }
    struct stored s;
    read_stored(vi, m.lsn, &s);
    for (segidx_lsn lsn = 1; lsn <= m.lsn; lsn++) {
        if (!owner[lsn])
            fail_msg("LSN %llu is stored (writer %u) but no commit of it returned OK", (ull)lsn,
                     s.writer[lsn]);
        if (s.writer[lsn] != owner[lsn])
            fail_msg("LSN %llu holds writer %u's commit, OK was writer %u's", (ull)lsn,
                     s.writer[lsn], owner[lsn]);
        struct content c;
        content_for(owner[lsn], lsn, &c);
        for (size_t j = 0; j < c.n; j++)
            if (s.held[lsn][j] != (uint8_t)(0x80 | ((1u << c.len[j]) - 1)))
                fail_msg("LSN %llu segment %zu: not all of writer %u's commit", (ull)lsn, j,
                         owner[lsn]);
    }
    print_message("2 processes, %.1f s: %llu LSNs, %llu + %llu OK, %llu + %llu conflicts, "
                  "%llu + %llu writes refused by the store\n", RUN_SECONDS, (ull)m.lsn,
                  (ull)oks[0], (ull)oks[1], (ull)conflicts[0], (ull)conflicts[1],
                  (ull)refused[0], (ull)refused[1]);
    assert_int_equal(oks[0] + oks[1], m.lsn);
    stored_free(&s);
    free(owner);
    run_close(&run, vi);
}

/* A committer, a pruner and a reader, each a process: nothing goes back,
 * nothing OK is lost, the entries are what the prune point leaves, and
 * every retained LSN reads exactly. */
static void test_prune_while_committing(void **state)
{
    (void)state;
    struct run run;
    run_open(&run);
    run_child(&run, PACED);
    run_child(&run, PRUNER);
    run_child(&run, READER);
    run_wait(&run);

    segidx_volume_index *vi = open_shared(run.store);
    assert_non_null(vi);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(vi, &proc_vid, &m), SEGIDX_OK);

    size_t n;
    /* The committer's log: 1..head, then 0, conflicts, refused writes. */
    uint64_t *log = read_log(&run.kids[0], &n);
    assert_true(n >= 3 && log[n - 3] == 0);
    if (n - 3 != m.lsn)
        fail_msg("%zu commits returned OK, the head is %llu", n - 3, (ull)m.lsn);
    for (size_t k = 0; k + 3 < n; k++)
        if (log[k] != k + 1)
            fail_msg("the committer's OK number %zu was LSN %llu", k + 1, (ull)log[k]);
    uint64_t conflicts = log[n - 2], refused = log[n - 1];
    free(log);
    log = read_log(&run.kids[1], &n); /* the pruner's keep_froms */
    assert_true(n >= 1);
    for (size_t k = 1; k < n; k++)
        if (log[k] <= log[k - 1])
            fail_msg("keep_from %llu after %llu", (ull)log[k], (ull)log[k - 1]);
    if (m.keep_from != log[n - 1])
        fail_msg("keep_from %llu, the last prune was to %llu", (ull)m.keep_from,
                 (ull)log[n - 1]);
    size_t prunes = n;
    free(log);
    log = read_log(&run.kids[2], &n);
    assert_int_equal(n, 1);
    uint64_t reads = log[0];
    free(log);

    /* The entries: all of each commit at or above keep_from; below it,
     * what (lsn, keep_from] did not rewrite, and nothing when that is
     * nothing. */
    struct history h = { 1, 0, { NULL }, { 0 }, { 0 } };
    history_extend(&h, m.lsn);
    struct stored s;
    read_stored(vi, m.lsn, &s);
    for (segidx_lsn lsn = 1; lsn <= m.lsn; lsn++) {
        struct content c;
        content_for(1, lsn, &c);
        for (size_t j = 0; j < c.n; j++) {
            uint8_t want = 0;
            for (size_t i = 0; i < c.len[j]; i++)
                if (lsn >= m.keep_from || history_next(&h, c.off[j][i], lsn) > m.keep_from)
                    want |= (uint8_t)(1u << i);
            if (want)
                want |= 0x80;
            if (s.held[lsn][j] != want)
                fail_msg("LSN %llu segment %zu holds 0x%x of its offsets, keep_from %llu "
                         "leaves 0x%x", (ull)lsn, j, s.held[lsn][j], (ull)m.keep_from, want);
        }
    }
    /* Every retained LSN, and above the head, reads exactly; below, ERANGE. */
    for (segidx_lsn lsn = m.keep_from ? m.keep_from - 1 : 0; lsn <= m.lsn + 2; lsn++) {
        segidx_volume_meta after;
        int why = read_and_check(vi, &h, lsn, &m, &after);
        if (why)
            fail_msg("final read at %llu (head %llu, keep_from %llu): check %d failed",
                     (ull)lsn, (ull)m.lsn, (ull)m.keep_from, why);
    }
    print_message("3 processes, %.1f s: %llu LSNs, %llu conflicts (%llu commit writes "
                  "refused by the store, retried), %zu prunes to keep_from %llu, %llu reads "
                  "checked\n", RUN_SECONDS, (ull)m.lsn, (ull)conflicts, (ull)refused, prunes,
                  (ull)m.keep_from, (ull)reads);
    stored_free(&s);
    history_free(&h);
    run_close(&run, vi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_committers),
        cmocka_unit_test(test_prune_while_committing),
    };
#ifdef PROCESSES_OVER_PG
    int code;
    if (!pgserver_main_start(&code))
        return code;
    code = cmocka_run_group_tests_name("processes over postgresql", tests, NULL, NULL);
    pgserver_stop(&pgserver_the);
    return code;
#else
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
