/* read_pages end to end: a packer writes segment files, a volume index
 * records the commits, a loader mmaps the files (the host in
 * examples/segment_files.h), and random reads at random LSNs, also after
 * random prunes and over segments of random sizes, must return exactly
 * what a brute-force model says. Then the errors: pruned, out of sync, too
 * many offsets, a missing file, a callback that stops, a damaged page in a
 * file and its repair.
 *
 * The volume index is over the in-memory store, or over LMDB when built
 * with READ_PAGES_OVER_LMDB (tests/test_lmdb_read_pages.c). */
#include "segtest.h"

#include "../examples/segment_files.h"
#ifdef READ_PAGES_OVER_LMDB
#include "segidx_lmdb.h"
#define STORE_NAME "lmdb"
#else
#define STORE_NAME "the in-memory store"
#endif

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>

#define PAGE 512u
#define VOLUMES 3
#define UNIVERSE 200u

struct pending { /* what the packer emitted for one (vid, lsn) */
    segidx_vid vid;
    segidx_lsn lsn;
    segidx_sid sid;
    segidx_offset_set *offsets;
};

typedef struct world {
    char dir[64], seg_dir[80], idx_dir[80];
    segment_files files;
    segidx_volume_index *vi;
    segidx_loader *loader;
    segidx_vid vids[VOLUMES];
    segidx_lsn top[VOLUMES];
    workload model; /* every page written: (vid, off, lsn) */
    struct pending *pend;
    size_t n_pend, cap_pend;
    uint64_t next_sid;
} world;

static int next_sid(void *ctx, segidx_sid *sid)
{
    world *w = ctx;
    memset(sid->bytes, 0, 16);
    uint64_t n = ++w->next_sid;
    memcpy(sid->bytes + 8, &n, 8);
    sid->bytes[0] = 0x5E;
    return 0;
}

static int emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                const segidx_packed_commit *commits, size_t n)
{
    world *w = ctx;
    assert_int_equal(segment_files_write(&w->files, sid, buf, len), SEGIDX_OK);
    for (size_t i = 0; i < n; i++) {
        if (w->n_pend == w->cap_pend) {
            w->cap_pend = w->cap_pend ? 2 * w->cap_pend : 64;
            w->pend = realloc(w->pend, w->cap_pend * sizeof *w->pend);
            assert_non_null(w->pend);
        }
        w->pend[w->n_pend++] = (struct pending){ commits[i].vid, commits[i].lsn, *sid,
                                                 segidx_offset_set_copy(commits[i].offsets) };
    }
    return 0;
}

static int compare_pending(const void *pa, const void *pb)
{
    const struct pending *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    return (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

/* Every (vid, lsn) the packer saw becomes one volume commit, in LSN order,
 * once all its segments are written. */
static void commit_pending(world *w)
{
    qsort(w->pend, w->n_pend, sizeof *w->pend, compare_pending);
    for (size_t i = 0; i < w->n_pend;) {
        size_t j = i;
        segidx_commit_segment segs[16];
        while (j < w->n_pend && !compare_pending(&w->pend[i], &w->pend[j])) {
            assert_true(j - i < 16);
            segs[j - i] = (segidx_commit_segment){ w->pend[j].sid, w->pend[j].offsets };
            j++;
        }
        assert_int_equal(segidx_volume_commit(w->vi, &w->pend[i].vid, w->pend[i].lsn, 0, segs,
                                              j - i),
                         SEGIDX_OK);
        for (size_t k = i; k < j; k++)
            segidx_offset_set_free(w->pend[k].offsets);
        i = j;
    }
    w->n_pend = 0;
}

/* A world of `commits` random commits packed into segments of at most
 * `segment_bytes`. */
static void world_open_sized(world *w, uint64_t seed, size_t cache_bytes, int commits,
                             size_t segment_bytes)
{
    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "/tmp/segidx-read-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    snprintf(w->seg_dir, sizeof w->seg_dir, "%s/segments", w->dir);
    snprintf(w->idx_dir, sizeof w->idx_dir, "%s/index", w->dir);
    assert_int_equal(mkdir(w->seg_dir, 0755), 0);
    snprintf(w->files.dir, sizeof w->files.dir, "%s", w->seg_dir);
    segidx_kv kv;
#ifdef READ_PAGES_OVER_LMDB
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = true;
    o.map_size = (size_t)64 << 20;
    assert_int_equal(segidx_kv_lmdb_open(w->idx_dir, &o, &kv), SEGIDX_OK);
#else
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
#endif
    assert_int_equal(segidx_volume_index_open(kv, &w->vi), SEGIDX_OK);

    w->model = (workload){ "read", NULL, 0, 0, seed };
    for (int v = 0; v < VOLUMES; v++)
        w->vids[v] = wl_vid(&w->model);
    segidx_packer_options po = { .segment = { PAGE, segment_bytes, NULL }, .next_sid = next_sid,
                                  .emit = emit, .ctx = w };
    segidx_packer *p;
    assert_int_equal(segidx_packer_new(&po, &p), SEGIDX_OK);
    uint8_t page[PAGE];
    for (int c = 0; c < commits; c++) {
        int v = (int)wl_below(&w->model, VOLUMES);
        segidx_lsn lsn = ++w->top[v];
        uint32_t from = w->model.n, k = 1 + (uint32_t)wl_below(&w->model, 20);
        while (w->model.n - from < k) {
            uint32_t off = wl_below(&w->model, 30) == 0 ? UINT32_MAX
                                                         : (uint32_t)wl_below(&w->model, UNIVERSE);
            if (wl_has_offset(&w->model, from, &w->vids[v], off))
                continue;
            wl_push(&w->model, &w->vids[v], off, lsn);
            wl_fill_page(page, PAGE, &w->model.pages[w->model.n - 1]);
            assert_int_equal(segidx_packer_add(p, &w->vids[v], off, lsn, page), SEGIDX_OK);
        }
    }
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    segidx_packer_free(p);
    commit_pending(w);

    segidx_segment_source src = segment_files_source(&w->files);
    segidx_loader_options lo = { cache_bytes, 4 };
    assert_int_equal(segidx_loader_new(&src, &lo, &w->loader), SEGIDX_OK);
}

static void world_open(world *w, uint64_t seed, size_t cache_bytes)
{
    world_open_sized(w, seed, cache_bytes, 120, 24 * 1024);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void world_close(world *w)
{
    segidx_loader_free(w->loader);
    segidx_volume_index_close(w->vi);
    free(w->pend);
    wl_free(&w->model);
    remove_tree(w->dir);
}

/* ------------------------------------------------------------ reads */

struct expect {
    const world *w;
    const segidx_vid *vid;
    segidx_lsn lsn;
    const segidx_offset_set *asked;
    uint64_t calls;
    int64_t last_off;
    int stop_after;
};

/* The model's newest version of (vid, off) at or below lsn, or 0. */
static segidx_lsn model_version(const world *w, const segidx_vid *vid, uint32_t off,
                                segidx_lsn lsn)
{
    segidx_lsn best = 0;
    for (uint32_t i = 0; i < w->model.n; i++) {
        const wl_page *p = &w->model.pages[i];
        if (p->off == off && p->lsn <= lsn && p->lsn > best &&
            !memcmp(p->vid.bytes, vid->bytes, 16))
            best = p->lsn;
    }
    return best;
}

static int check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct expect *e = ctx;
    assert_true((int64_t)off > e->last_off); /* ascending, once each */
    assert_true(segidx_offset_set_contains(e->asked, off));
    e->last_off = off;
    segidx_lsn want = model_version(e->w, e->vid, off, e->lsn);
    assert_int_equal(lsn, want);
    if (!want) {
        assert_null(page);
    } else {
        uint8_t bytes[PAGE];
        wl_page p = { *e->vid, off, want };
        wl_fill_page(bytes, PAGE, &p);
        assert_non_null(page);
        assert_memory_equal(page, bytes, PAGE);
    }
    e->calls++;
    return e->stop_after >= 0 && (int)e->calls == e->stop_after ? 42 : 0;
}

static segidx_offset_set *random_offsets(test_rng *r)
{
    segidx_offset_set *s = segidx_offset_set_new();
    if (rng_below(r, 4) == 0)
        segidx_offset_set_add_range(s, 0, UNIVERSE + 10);
    for (int i = 0, n = (int)rng_below(r, 40); i < n; i++)
        segidx_offset_set_add(s, (uint32_t)rng_below(r, UNIVERSE + 10));
    if (rng_below(r, 3) == 0)
        segidx_offset_set_add(s, UINT32_MAX);
    return s;
}

static void read_and_check(world *w, int v, segidx_lsn lsn, const segidx_offset_set *asked)
{
    struct expect e = { w, &w->vids[v], lsn, asked, 0, -1, -1 };
    assert_int_equal(segidx_read_pages(w->vi, w->loader, &w->vids[v], lsn, asked, check_page, &e),
                     SEGIDX_OK);
    assert_int_equal(e.calls, segidx_offset_set_cardinality(asked));
}

static void test_random_reads_match_the_model(void **state)
{
    (void)state;
    world w;
    world_open(&w, 1, 64 * 1024); /* a small cache: segments come and go */
    test_rng r = { 9 };
    for (int i = 0; i < 300; i++) {
        int v = (int)rng_below(&r, VOLUMES);
        segidx_offset_set *asked = random_offsets(&r);
        read_and_check(&w, v, rng_below(&r, w.top[v] + 3), asked);
        segidx_offset_set_free(asked);
    }
    segidx_loader_stats st;
    segidx_loader_stats_get(w.loader, &st);
    assert_true(st.evictions > 0);
    assert_int_equal(st.pinned_bytes, 0);
    world_close(&w);
}

/* Worlds of random sizes (segments from a few pages to many, so that a
 * read's commits share segments in every proportion), random prunes
 * between the reads: every read at or above a volume's prune point must
 * answer as the model, every read below it SEGIDX_ERANGE with no page. */
static void test_random_worlds_and_prunes(void **state)
{
    (void)state;
    int rounds = (int)test_scaled(6);
    for (int round = 0; round < rounds; round++) {
        test_rng r = { 0x9EAD0000u + (uint64_t)round };
        size_t cache = rng_below(&r, 2) ? 1 << 20 : 16 * 1024;
        int commits = 20 + (int)rng_below(&r, 100);
        size_t segment_bytes = 8 * 1024 + rng_below(&r, 120 * 1024);
        world w;
        world_open_sized(&w, 100 + (uint64_t)round, cache, commits, segment_bytes);
        segidx_lsn keep[VOLUMES] = { 0 };
        for (int i = 0; i < 150; i++) {
            int v = (int)rng_below(&r, VOLUMES);
            if (w.top[v] && rng_below(&r, 20) == 0) {
                segidx_lsn k = 1 + rng_below(&r, w.top[v]);
                assert_int_equal(segidx_volume_prune(w.vi, &w.vids[v], k), SEGIDX_OK);
                keep[v] = k > keep[v] ? k : keep[v];
            }
            segidx_offset_set *asked = random_offsets(&r);
            segidx_lsn lsn = rng_below(&r, w.top[v] + 3);
            if (lsn < keep[v]) {
                struct expect e = { &w, &w.vids[v], lsn, asked, 0, -1, -1 };
                assert_int_equal(segidx_read_pages(w.vi, w.loader, &w.vids[v], lsn, asked,
                                                   check_page, &e),
                                 SEGIDX_ERANGE);
                assert_int_equal(e.calls, 0);
            } else if (w.top[v]) {
                read_and_check(&w, v, lsn, asked);
            }
            segidx_offset_set_free(asked);
        }
        segidx_loader_stats st;
        segidx_loader_stats_get(w.loader, &st);
        assert_int_equal(st.pinned_bytes, 0);
        world_close(&w);
    }
}

static void test_read_errors(void **state)
{
    (void)state;
    world w;
    world_open(&w, 2, 1 << 20);
    int v = 0;
    segidx_offset_set *asked = segidx_offset_set_new();
    segidx_offset_set_add_range(asked, 0, UNIVERSE);
    struct expect e = { &w, &w.vids[v], w.top[v], asked, 0, -1, 3 };

    /* fn's stop value comes back. */
    assert_int_equal(segidx_read_pages(w.vi, w.loader, &w.vids[v], w.top[v], asked, check_page, &e),
                     42);
    /* Too many offsets; no volume. */
    segidx_offset_set *big = segidx_offset_set_new();
    segidx_offset_set_add_range(big, 0, SEGIDX_READ_MAX_PAGES + 1);
    e = (struct expect){ &w, &w.vids[v], w.top[v], big, 0, -1, -1 };
    assert_int_equal(segidx_read_pages(w.vi, w.loader, &w.vids[v], 1, big, check_page, &e),
                     SEGIDX_EINVAL);
    assert_int_equal(e.calls, 0);
    segidx_vid unknown = { { 0xEE } };
    assert_int_equal(segidx_read_pages(w.vi, w.loader, &unknown, 1, asked, check_page, &e),
                     SEGIDX_ENOTFOUND);

    /* Pruned: below keep_from is out of range, at it reads as before. */
    segidx_lsn keep = w.top[v] / 2 + 1;
    assert_int_equal(segidx_volume_prune(w.vi, &w.vids[v], keep), SEGIDX_OK);
    assert_int_equal(segidx_read_pages(w.vi, w.loader, &w.vids[v], keep - 1, asked, check_page, &e),
                     SEGIDX_ERANGE);
    read_and_check(&w, v, keep, asked);

    /* Out of sync: a commit naming a segment for an offset it lacks. */
    segidx_sid some = { { 0x5E } };
    some.bytes[8] = 1;
    segidx_offset_set *lack = segidx_offset_set_new();
    segidx_offset_set_add(lack, UNIVERSE + 5); /* no segment holds it */
    segidx_commit_segment bogus = { some, lack };
    assert_int_equal(segidx_volume_commit(w.vi, &w.vids[v], w.top[v] + 1, 0, &bogus, 1), 0);
    segidx_offset_set_add(asked, UNIVERSE + 5);
    e = (struct expect){ &w, &w.vids[v], w.top[v] + 1, asked, 0, -1, -1 };
    assert_int_equal(segidx_read_pages(w.vi, w.loader, &w.vids[v], w.top[v] + 1, asked, check_page,
                                       &e),
                     SEGIDX_ECORRUPT);
    assert_int_equal(e.calls, 0); /* nothing handed out before the error */

    /* A missing segment file: the source's error comes back. */
    segidx_loader_free(w.loader); /* an empty cache: every read fetches */
    segidx_segment_source src = segment_files_source(&w.files);
    assert_int_equal(segidx_loader_new(&src, NULL, &w.loader), SEGIDX_OK);
    char path[1100];
    segidx_sid first = { { 0x5E } };
    first.bytes[8] = 1;
    segment_files_path(&w.files, &first, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    segidx_offset_set *all = segidx_offset_set_new();
    segidx_offset_set_add_range(all, 0, UNIVERSE);
    int failures = 0;
    for (int k = 0; k < VOLUMES; k++) {
        segidx_lsn at = k == v ? w.top[v] : UINT64_MAX; /* not the bogus commit */
        e = (struct expect){ &w, &w.vids[k], at, all, 0, -1, -1 };
        int rc = segidx_read_pages(w.vi, w.loader, &w.vids[k], at, all, NULL, &e);
        assert_int_equal(rc, SEGIDX_EINVAL); /* NULL fn */
        rc = segidx_read_pages(w.vi, w.loader, &w.vids[k], at, all, check_page, &e);
        failures += rc == SEGIDX_ENOTFOUND;
        assert_true(rc == SEGIDX_OK || rc == SEGIDX_ENOTFOUND || rc == SEGIDX_ECORRUPT);
    }
    assert_true(failures >= 1); /* the first segment holds some volume's pages */
    segidx_offset_set_free(all);
    segidx_offset_set_free(lack);
    segidx_offset_set_free(big);
    segidx_offset_set_free(asked);
    world_close(&w);
}

struct pages_of {
    segidx_segment_page p[512];
    segidx_vid vids[512];
    uint32_t n;
};

static int keep_page(void *ctx, const segidx_segment_page *p)
{
    struct pages_of *a = ctx;
    assert_true(a->n < 512);
    a->vids[a->n] = *p->vid;
    a->p[a->n] = *p;
    a->p[a->n].vid = &a->vids[a->n];
    a->p[a->n++].page = NULL;
    return 0;
}

/* Flip one byte of a file in place. */
static void flip_byte(const char *path, uint64_t at)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)at), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)at), 1);
    assert_int_equal(close(fd), 0);
}

static int read_one(world *w, const segidx_segment_page *p, uint64_t *calls)
{
    segidx_offset_set *one = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add(one, p->offset), SEGIDX_OK);
    struct expect e = { w, p->vid, p->lsn, one, 0, -1, -1 };
    int rc = segidx_read_pages(w->vi, w->loader, p->vid, p->lsn, one, check_page, &e);
    segidx_offset_set_free(one);
    *calls = e.calls;
    return rc;
}

/* A segment file with a damaged page (bit rot, a bad copy): its other
 * pages read right, the damaged one fails with no callback however often
 * it is read, each time from a new fetch, and reads right once the file is
 * repaired. */
static void test_damaged_file(void **state)
{
    (void)state;
    world w;
    world_open(&w, 3, 1 << 20);
    segidx_sid first = { { 0x5E } };
    first.bytes[8] = 1;
    char path[1100];
    segment_files_path(&w.files, &first, path, sizeof path);
    const void *buf;
    size_t len;
    void *handle;
    assert_int_equal(segment_files_fetch(&w.files, &first, &buf, &len, &handle), SEGIDX_OK);
    segidx_segment *seg;
    assert_int_equal(segidx_segment_open(buf, len, &seg), SEGIDX_OK);
    static struct pages_of pages;
    pages.n = 0;
    assert_int_equal(segidx_segment_iterate(seg, NULL, keep_page, &pages), 0);
    assert_true(pages.n >= 2);
    const segidx_segment_page *bad = &pages.p[pages.n / 2], *good = &pages.p[0];
    uint64_t at;
    uint32_t plen;
    assert_int_equal(segidx_segment_page_range(seg, bad->local, &at, &plen), SEGIDX_OK);
    segidx_segment_close(seg);
    segment_files_release(&w.files, &first, buf, len, handle);

    flip_byte(path, at + plen / 3);
    uint64_t calls;
    segidx_loader_stats st0, st;
    segidx_loader_stats_get(w.loader, &st0);
    assert_int_equal(read_one(&w, good, &calls), SEGIDX_OK);
    assert_int_equal(calls, 1);
    for (int i = 1; i <= 2; i++) {
        /* Its other pages read right, each time from a new fetch. */
        assert_int_equal(read_one(&w, good, &calls), SEGIDX_OK);
        assert_int_equal(calls, 1);
        assert_int_equal(read_one(&w, bad, &calls), SEGIDX_ECORRUPT);
        assert_int_equal(calls, 0);
        segidx_loader_stats_get(w.loader, &st);
        assert_int_equal(st.discards, st0.discards + (uint64_t)i);
        assert_int_equal(st.fetches, st0.fetches + (uint64_t)i);
        assert_int_equal(st.cached_segments, st0.cached_segments); /* unmapped */
        assert_int_equal(st.pinned_bytes, 0);
    }
    /* Repaired while no copy of it is mapped: the next read heals. */
    flip_byte(path, at + plen / 3);
    assert_int_equal(read_one(&w, bad, &calls), SEGIDX_OK);
    assert_int_equal(calls, 1);
    segidx_loader_stats_get(w.loader, &st);
    assert_int_equal(st.fetches, st0.fetches + 3);
    assert_int_equal(st.discards, st0.discards + 2);
    assert_int_equal(st.bad_puts, 0);
    world_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_reads_match_the_model),
        cmocka_unit_test(test_random_worlds_and_prunes),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_damaged_file),
    };
    return cmocka_run_group_tests_name("read_pages over " STORE_NAME " and files", tests, NULL,
                                       NULL);
}
