/* Compaction by another process: a forked child compacts (and prunes) the
 * volumes in a loop through its own LMDB store on the same directory,
 * while the parent commits through a packer. Segments are files
 * (examples/segment_files.h) shared by both: the parent's packer writes
 * them before catalogueing, the child reads them through its loader and
 * writes the compacted ones, the parent's reads fetch both.
 *
 * The parent is the model (compacttest.h's world over the LMDB store,
 * its packer writing files): between commit batches it reads random
 * offsets at random LSNs between keep_from and the head, each page
 * checked; a read may answer SEGIDX_ERANGE only when the child's prune
 * passed its LSN. Once the child has exited: every commit that returned
 * OK is there, every read at every retained LSN is exact (the files
 * loaded into the world's segment store, cw_check_all()), prune's cut
 * holds; then a collector in the parent deletes every file no entry
 * names, and only those, and the reads stay exact.
 *
 * Parent and child share a page of counters (a shared mapping): the child's
 * progress, which the parent waits for so that compactions meet the
 * history as it grows, and the stop flag. A child that does not stop
 * within a generous bound is killed and fails the test. */
#include "compacttest.h"

#include "../examples/segment_files.h"
#include "segidx_lmdb.h"

#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

typedef unsigned long long ull;

#define BOUND_SECONDS 60 /* a child still running then has hung */
enum { LAG = 4, READS_PER_BATCH = 6 };

/* What parent and child share. */
typedef struct shared {
    atomic_int stop, child_done;
    atomic_long batches; /* the parent's */
    atomic_long compactions, segments_in, segments_out, pages, prunes;
} shared;

/* Exit statuses of the child: 0 is success. */
enum { CHILD_OK, CHILD_OPEN, CHILD_GET, CHILD_COMPACT, CHILD_PRUNE, CHILD_HUNG };

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void nap(long usec)
{
    struct timespec t = { 0, usec * 1000 };
    nanosleep(&t, NULL);
}

/* A run's directory: the LMDB store in idx/, segment files in segments/. */
typedef struct paths {
    char dir[64], idx[80];
    segment_files files;
} paths;

static segidx_kv open_store(const paths *p)
{
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = true; /* a process crash loses nothing; this is about races */
    o.map_size = (size_t)256 << 20;
    segidx_kv kv = { NULL, NULL };
    if (segidx_kv_lmdb_open(p->idx, &o, &kv) != SEGIDX_OK)
        kv.vt = NULL;
    return kv;
}

/* Sids name their process (0: the parent's packer, 1: the child). */
typedef struct sid_source {
    const segment_files *files;
    unsigned process;
    uint64_t next;
} sid_source;

static int file_next_sid(void *ctx, segidx_sid *sid)
{
    sid_source *s = ctx;
    *sid = cw_sid(++s->next);
    sid->bytes[1] = (uint8_t)s->process;
    return 0;
}

static int file_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                     const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n;
    sid_source *s = ctx;
    return segment_files_write(s->files, sid, buf, len);
}

/* ------------------------------------------------------------ the child */

static int child_loop(const paths *p, shared *sh, const segidx_volume_index_options *opts,
                      uint64_t seed)
{
    segidx_kv kv = open_store(p);
    segidx_volume_index *vi;
    if (!kv.vt)
        return CHILD_OPEN;
    if (segidx_volume_index_open_with(kv, opts, &vi) != SEGIDX_OK) {
        kv.vt->close(kv.self);
        return CHILD_OPEN;
    }
    segment_files files = p->files;
    segidx_segment_source src = segment_files_source(&files);
    segidx_loader *l;
    if (segidx_loader_new(&src, NULL, &l) != SEGIDX_OK) {
        segidx_volume_index_close(vi);
        return CHILD_OPEN;
    }
    sid_source sids = { &files, 1, 0 };
    test_rng rng = { seed ^ 0xC41D };
    int st = CHILD_OK;
    double end = now_seconds() + BOUND_SECONDS;
    while (!st && !atomic_load(&sh->stop)) {
        if (now_seconds() > end) {
            st = CHILD_HUNG;
            break;
        }
        /* A few compactions a commit batch, no more. */
        if (atomic_load(&sh->compactions) > 2 * (LAG + atomic_load(&sh->batches))) {
            nap(100);
            continue;
        }
        unsigned v = (unsigned)rng_below(&rng, CW_VOLUMES);
        segidx_vid vid = cw_vid(v);
        segidx_volume_meta m;
        int rc = segidx_volume_get(vi, &vid, &m);
        if (rc == SEGIDX_ENOTFOUND) { /* no commit yet */
            nap(200);
            continue;
        }
        if (rc) {
            fprintf(stderr, "child: get volume %u: %s\n", v, segidx_strerror(rc));
            st = CHILD_GET;
            break;
        }
        segidx_compact_options o = { { CW_PAGE, 0, NULL }, file_next_sid, file_emit, NULL, &sids,
                                     CW_PAGE * (1 + rng_below(&rng, 40)),
                                     CW_PAGE * (1 + rng_below(&rng, 60)) };
        segidx_compact_stats cs = { 0 };
        if ((rc = segidx_volume_compact(vi, l, &vid, &o, &cs))) {
            fprintf(stderr, "child: compact volume %u: %s\n", v, segidx_strerror(rc));
            st = CHILD_COMPACT;
            break;
        }
        atomic_fetch_add(&sh->segments_in, (long)cs.segments_in);
        atomic_fetch_add(&sh->segments_out, (long)cs.segments_out);
        atomic_fetch_add(&sh->pages, (long)cs.pages);
        atomic_fetch_add(&sh->compactions, 1);
        if (rng_below(&rng, 4) || m.lsn < 2)
            continue;
        /* Prune a few LSNs behind the head as this process saw it. */
        segidx_lsn lo = m.keep_from ? m.keep_from : 1;
        segidx_lsn back = rng_below(&rng, 24);
        segidx_lsn keep = m.lsn > lo + back ? m.lsn - back : lo;
        if ((rc = segidx_volume_prune(vi, &vid, keep))) {
            fprintf(stderr, "child: prune volume %u to %llu: %s\n", v, (ull)keep,
                    segidx_strerror(rc));
            st = CHILD_PRUNE;
            break;
        }
        atomic_fetch_add(&sh->prunes, 1);
    }
    segidx_loader_free(l);
    segidx_volume_index_close(vi);
    return st;
}

/* ------------------------------------------------------------ the parent */

static int compare_sid(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* The world first, so that the packer's commit_ready (compacttest.h's)
 * gets it as its context. */
typedef struct parent {
    cw_world w;
    sid_source sids;
    segidx_loader *l;
    test_rng rng; /* the reads' */
    long batches, reads, reads_pruned;
} parent;

static int parent_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                       const segidx_packed_commit *commits, size_t n)
{
    parent *p = ctx;
    return file_emit(&p->sids, sid, buf, len, commits, n);
}

static int parent_next_sid(void *ctx, segidx_sid *sid)
{
    parent *p = ctx;
    return file_next_sid(&p->sids, sid);
}

/* One read of every offset of volume v at a random LSN between keep_from
 * and the head: exact, or ERANGE with keep_from now past it. */
static void parent_read(parent *p, unsigned v)
{
    cw_world *w = &p->w;
    segidx_vid vid = cw_vid(v);
    segidx_volume_meta m;
    assert_int_equal(segidx_volume_get(w->vi, &vid, &m), SEGIDX_OK);
    assert_int_equal(m.lsn, w->vol[v].lsn); /* the parent is the only committer */
    segidx_lsn lo = m.keep_from ? m.keep_from : 1;
    segidx_lsn lsn = lo + rng_below(&p->rng, m.lsn - lo + 1);
    segidx_offset_set *all = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(all, 0, CW_OFFSETS), SEGIDX_OK);
    struct cw_read r = { &w->vol[v], v, lsn, 0 };
    int rc = segidx_read_pages(w->vi, p->l, &vid, lsn, all, cw_check_page, &r);
    segidx_offset_set_free(all);
    p->reads++;
    if (rc == SEGIDX_ERANGE) {
        assert_int_equal(r.next, 0);
        assert_int_equal(segidx_volume_get(w->vi, &vid, &m), SEGIDX_OK);
        if (m.keep_from <= lsn)
            fail_msg("read of volume %u at %llu: ERANGE, keep_from %llu", v, (ull)lsn,
                     (ull)m.keep_from);
        p->reads_pruned++;
        return;
    }
    if (rc)
        fail_msg("read of volume %u at %llu (keep_from %llu, head %llu): %s", v, (ull)lsn,
                 (ull)m.keep_from, (ull)m.lsn, segidx_strerror(rc));
    assert_int_equal(r.next, CW_OFFSETS);
}

/* The segment files' sids, sorted. */
static size_t list_files(const paths *pa, segidx_sid **out)
{
    DIR *d = opendir(pa->files.dir);
    assert_non_null(d);
    struct cw_refs r = { NULL, 0, 0 };
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        /* The sid in hex, ".seg": no temporaries left behind. */
        assert_int_equal(strlen(e->d_name), 36);
        assert_string_equal(e->d_name + 32, ".seg");
        segidx_sid sid;
        for (int i = 0; i < 16; i++) {
            unsigned b;
            assert_int_equal(sscanf(e->d_name + 2 * i, "%2x", &b), 1);
            sid.bytes[i] = (uint8_t)b;
        }
        cw_collect_ref(&r, &sid);
    }
    closedir(d);
    if (r.n)
        qsort(r.sids, r.n, sizeof *r.sids, compare_sid);
    *out = r.sids;
    return r.n;
}

/* The world's segment store: exactly the files, read afresh. */
static void load_files(parent *p, const paths *pa, const segidx_sid *sids, size_t n)
{
    cw_store *st = &p->w.segs;
    for (size_t i = 0; i < st->n; i++)
        free(st->s[i].buf);
    st->n = 0;
    for (size_t i = 0; i < n; i++) {
        const void *buf;
        size_t len;
        void *handle;
        assert_int_equal(segment_files_fetch((void *)&pa->files, &sids[i], &buf, &len, &handle),
                         SEGIDX_OK);
        cw_store_add(st, &sids[i], buf, len);
        segment_files_release((void *)&pa->files, &sids[i], buf, len, handle);
    }
}

/* Delete every file no entry names; returns how many. Afterwards the
 * files are exactly the segments named. */
static size_t collect_files(parent *p, const paths *pa)
{
    struct cw_refs named = { NULL, 0, 0 };
    assert_int_equal(segidx_volume_index_segments(p->w.vi, cw_collect_ref, &named), SEGIDX_OK);
    segidx_sid *files;
    size_t n = list_files(pa, &files), deleted = 0;
    for (size_t i = 0; i < named.n; i++)
        if (!bsearch(&named.sids[i], files, n, sizeof *files, compare_sid))
            fail_msg("segment %02x%02x..%02x%02x is named, its file is missing",
                     named.sids[i].bytes[0], named.sids[i].bytes[1], named.sids[i].bytes[14],
                     named.sids[i].bytes[15]);
    for (size_t i = 0; i < n; i++) {
        if (bsearch(&files[i], named.sids, named.n, sizeof *named.sids, compare_sid))
            continue;
        char path[1100];
        segment_files_path(&pa->files, &files[i], path, sizeof path);
        assert_int_equal(unlink(path), 0);
        deleted++;
    }
    free(files);
    n = list_files(pa, &files);
    assert_int_equal(n, named.n);
    if (n)
        assert_memory_equal(files, named.sids, n * sizeof *files);
    free(files);
    free(named.sids);
    return deleted;
}

/* Every commit that returned OK is there, keep_from is what the child's
 * prunes left, and every read at every retained LSN is exact through the
 * files as they are now. */
static void check_everything(parent *p, const paths *pa)
{
    cw_world *w = &p->w;
    for (unsigned v = 0; v < CW_VOLUMES; v++) {
        segidx_vid vid = cw_vid(v);
        segidx_volume_meta m;
        assert_int_equal(segidx_volume_get(w->vi, &vid, &m), SEGIDX_OK);
        assert_int_equal(m.lsn, w->vol[v].lsn);
        assert_int_equal(m.lsn, w->vol[v].added);
        assert_true(m.keep_from >= w->vol[v].keep_from && m.keep_from <= m.lsn);
        w->vol[v].keep_from = m.keep_from;
    }
    segidx_sid *files;
    size_t n = list_files(pa, &files);
    load_files(p, pa, files, n);
    free(files);
    cw_check_all(w, w->vi);
    cw_check_pruned(w, w->vi);
}

/* Remove a directory and the files in it. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        char path[1200];
        if (e->d_name[0] != '.' && snprintf(path, sizeof path, "%s/%s", dir, e->d_name) > 0)
            assert_int_equal(unlink(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

static void remove_run(const paths *pa)
{
    remove_dir(pa->idx);
    remove_dir(pa->files.dir);
    assert_int_equal(rmdir(pa->dir), 0);
}

/* Wait for the child, killing it after BOUND_SECONDS; it must exit 0. */
static void wait_child(pid_t pid)
{
    int status = 0;
    bool done = false;
    for (double end = now_seconds() + BOUND_SECONDS; !done && now_seconds() < end;) {
        done = waitpid(pid, &status, WNOHANG) == pid;
        if (!done)
            nap(20000);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the compacting child still ran after %d s: killed", BOUND_SECONDS);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_OK)
        fail_msg("the compacting child %s %d", WIFEXITED(status) ? "exited with" : "was killed by",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static void run(const char *name, uint64_t seed, const segidx_volume_index_options *opts)
{
    paths pa;
    memset(&pa, 0, sizeof pa);
    const char *tmp = getenv("TMPDIR");
    snprintf(pa.dir, sizeof pa.dir, "%s/segidx-compaction-XXXXXX",
             tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    assert_non_null(mkdtemp(pa.dir));
    snprintf(pa.idx, sizeof pa.idx, "%s/idx", pa.dir);
    snprintf(pa.files.dir, sizeof pa.files.dir, "%s/segments", pa.dir);
    assert_int_equal(mkdir(pa.files.dir, 0700), 0);
    /* The store exists before the child opens it. */
    segidx_kv kv = open_store(&pa);
    assert_non_null(kv.vt);
    kv.vt->close(kv.self);

    /* The shared page: a file both map (POSIX has no anonymous maps). */
    char path[128];
    snprintf(path, sizeof path, "%s/shared", pa.dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, sizeof(shared)), 0);
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(sh != MAP_FAILED);
    close(fd);
    unlink(path); /* the mapping stays */
    atomic_init(&sh->stop, 0);
    atomic_init(&sh->child_done, 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int st = child_loop(&pa, sh, opts, seed);
        atomic_store(&sh->child_done, 1);
        _exit(st);
    }

    /* The parent: the world over its own LMDB store, its packer writing
     * files. */
    parent *p = calloc(1, sizeof *p);
    assert_non_null(p);
    kv = open_store(&pa);
    assert_non_null(kv.vt);
    cw_open_on(&p->w, kv, seed, opts);
    p->sids = (sid_source){ &pa.files, 0, 0 };
    p->rng.s = seed * 31 + 7;
    segidx_segment_source src = segment_files_source(&pa.files);
    assert_int_equal(segidx_loader_new(&src, NULL, &p->l), SEGIDX_OK);
    segidx_packer_free(p->w.packer);
    segidx_packer_options po = { { CW_PAGE, 0, NULL }, parent_next_sid, parent_emit, p,
                                 cw_commit_ready };
    assert_int_equal(segidx_packer_new(&po, &p->w.packer), SEGIDX_OK);

    segidx_lsn max = (segidx_lsn)test_scaled_threads(CW_MAX_LSN / 2);
    for (;;) {
        unsigned open[CW_VOLUMES], n_open = 0;
        for (unsigned v = 0; v < CW_VOLUMES; v++)
            if (p->w.vol[v].added < max)
                open[n_open++] = v;
        if (!n_open || atomic_load(&sh->child_done))
            break;
        /* Let the child's compactions keep up (a bounded wait: it may
         * also be slow to start). */
        for (int naps = 0; naps < 20000 && p->batches > LAG + atomic_load(&sh->compactions);
             naps++)
            nap(50);
        for (unsigned i = 0, n = 1 + (unsigned)rng_below(&p->rng, 4); i < n; i++)
            cw_commit(&p->w, open[rng_below(&p->rng, n_open)]);
        cw_flush(&p->w);
        atomic_store(&sh->batches, ++p->batches);
        for (unsigned i = 0; i < READS_PER_BATCH; i++) {
            unsigned v = (unsigned)rng_below(&p->rng, CW_VOLUMES);
            if (p->w.vol[v].lsn)
                parent_read(p, v);
        }
    }
    atomic_store(&sh->stop, 1);
    wait_child(pid);

    check_everything(p, &pa);
    size_t deleted = collect_files(p, &pa);
    check_everything(p, &pa);
    print_message("%s: %ld commit batches, %ld reads between them (%ld pruned meanwhile); "
                  "the child: %ld compactions (%ld segments in, %ld out, %ld pages), %ld prunes; "
                  "gc deleted %zu files, %zu left\n",
                  name, p->batches, p->reads, p->reads_pruned, atomic_load(&sh->compactions),
                  atomic_load(&sh->segments_in), atomic_load(&sh->segments_out),
                  atomic_load(&sh->pages), atomic_load(&sh->prunes), deleted, p->w.segs.n);
    assert_true(atomic_load(&sh->segments_in) > 0 && atomic_load(&sh->prunes) > 0);
    assert_true(deleted > 0);

    segidx_loader_free(p->l);
    cw_close(&p->w);
    free(p);
    munmap(sh, sizeof *sh);
    remove_run(&pa);
}

static void test_small_checkpoints(void **state)
{
    (void)state;
    const segidx_volume_index_options o = { 2, 2, 2 };
    run("K 2 F 2 L 2", 1, &o);
}

static void test_walk_only(void **state)
{
    (void)state;
    const segidx_volume_index_options o = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };
    run("checkpoints off", 2, &o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_checkpoints),
        cmocka_unit_test(test_walk_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
