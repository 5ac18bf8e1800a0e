/* write_and_read: a whole host on one page. Pages go through the packer
 * into segment files; the packer says when all the segments of a commit
 * are written (commit_ready), and after each packer call the commits it
 * handed over go into an LMDB volume index together, in one atomic (and
 * durable) write; reads come back through a loader that mmaps the files,
 * and are checked.
 *
 * Build against an installed libsegidx:
 *     cc write_and_read.c $(pkg-config --cflags --libs libsegidx_lmdb)
 * Run:  ./a.out [DIR]        (a fresh temporary directory by default)
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mmap: segments are files */

#include <segidx.h>
#include <segidx_lmdb.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment_files.h"

enum { PAGE = 4096, VOLUMES = 2, COMMITS = 20, PAGES_PER_COMMIT = 16, MAX_SEGS = 4 };

/* What a page holds: its volume, offset and LSN, so a read can be checked. */
static void fill(unsigned char *page, int volume, segidx_offset off, segidx_lsn lsn)
{
    memset(page, 0, PAGE);
    snprintf((char *)page, PAGE, "volume %d page %u lsn %llu", volume, (unsigned)off,
             (unsigned long long)lsn);
}

/* A commit handed over and not yet in the index, with copies of what the
 * packer lent for the callback. */
struct pending {
    segidx_volume_commit_item item;
    segidx_commit_segment segs[MAX_SEGS];
};

struct host {
    segment_files files;
    segidx_volume_index *index;
    uint64_t next_sid;
    segidx_vid vids[VOLUMES];
    struct pending pending[VOLUMES * COMMITS];
    size_t n_pending;
};

static int next_sid(void *ctx, segidx_sid *sid)
{
    struct host *h = ctx;
    memset(sid, 0, sizeof *sid);
    uint64_t n = ++h->next_sid;
    memcpy(sid->bytes, &n, sizeof n);
    return SEGIDX_OK;
}

/* A finished segment: write the file, durably. `commits` are only this
 * segment's part of each commit: cataloguing them here could publish a
 * commit whose other pages are not written yet. */
static int emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n;
    struct host *h = ctx;
    return segment_files_write(&h->files, sid, buf, len);
}

/* Every segment holding the commit is written: keep it for the next
 * group. `segs` is borrowed, so copy it. */
static int commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_commit_segment *segs, size_t n)
{
    struct host *h = ctx;
    if (n > MAX_SEGS || h->n_pending == VOLUMES * COMMITS)
        return SEGIDX_ERANGE;
    struct pending *p = &h->pending[h->n_pending];
    for (size_t i = 0; i < n; i++) {
        p->segs[i].sid = segs[i].sid;
        if (!(p->segs[i].offsets = segidx_offset_set_copy(segs[i].offsets)))
            return SEGIDX_ENOMEM; /* (the copies before it leak: the example stops) */
    }
    p->item = (segidx_volume_commit_item){ *vid, lsn, lsn, p->segs, n };
    h->n_pending++;
    return SEGIDX_OK;
}

/* Catalogue the commits handed over since the last call: one atomic write
 * of the index for all of them (one fsync instead of one per commit). */
static int commit_pending(struct host *h)
{
    segidx_volume_commit_item items[VOLUMES * COMMITS];
    for (size_t i = 0; i < h->n_pending; i++)
        items[i] = h->pending[i].item;
    int rc = segidx_volume_commit_group(h->index, items, h->n_pending, NULL);
    for (size_t i = 0; i < h->n_pending; i++)
        for (size_t j = 0; j < h->pending[i].item.n; j++)
            segidx_offset_set_free((segidx_offset_set *)h->pending[i].segs[j].offsets);
    h->n_pending = 0;
    return rc;
}

static int check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    int *volume = ctx;
    unsigned char want[PAGE];
    if (!page)
        return 0; /* never written: a zero page */
    fill(want, *volume, off, lsn);
    return memcmp(page, want, PAGE) ? SEGIDX_ECORRUPT : 0;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "write_and_read: %s: %s\n", what, segidx_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    static struct host h;
    char dir[512], index_dir[600];
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "/tmp/segidx-example-XXXXXX");
    if (argc <= 1 && !mkdtemp(dir))
        return 1;
    snprintf(h.files.dir, sizeof h.files.dir, "%s", dir);
    snprintf(index_dir, sizeof index_dir, "%s/index", dir);

    segidx_kv kv;
    int rc = segidx_kv_lmdb_open(index_dir, NULL, &kv);
    if (rc)
        return fail("open the index", rc);
    if ((rc = segidx_volume_index_open(kv, &h.index)))
        return fail("open the index", rc);

    /* Write: every commit rewrites some pages of its volume. */
    segidx_packer_options po = { { PAGE, 1 << 20, NULL }, next_sid, emit, &h, commit_ready };
    segidx_packer *packer;
    if ((rc = segidx_packer_new(&po, &packer)))
        return fail("packer", rc);
    unsigned char page[PAGE];
    for (int v = 0; v < VOLUMES; v++)
        h.vids[v].bytes[0] = (uint8_t)v;
    for (segidx_lsn lsn = 1; lsn <= COMMITS && !rc; lsn++)
        for (int v = 0; v < VOLUMES && !rc; v++)
            for (segidx_offset k = 0; k < PAGES_PER_COMMIT && !rc; k++) {
                segidx_offset off = (segidx_offset)((lsn * 7 + k * 13) % 64);
                fill(page, v, off, lsn);
                rc = segidx_packer_add(packer, &h.vids[v], off, lsn, page);
                if (!rc)
                    rc = commit_pending(&h);
            }
    if (rc || (rc = segidx_packer_flush(packer)) || (rc = commit_pending(&h)))
        return fail("pack", rc); /* flush: the last commits too */
    segidx_packer_free(packer);

    /* Read: every volume at every LSN, pages 0..63, checked byte for byte. */
    segidx_segment_source src = segment_files_source(&h.files);
    segidx_loader *loader;
    if ((rc = segidx_loader_new(&src, NULL, &loader)))
        return fail("loader", rc);
    segidx_offset_set *want = segidx_offset_set_new();
    segidx_offset_set_add_range(want, 0, 64);
    for (int v = 0; v < VOLUMES && !rc; v++)
        for (segidx_lsn lsn = 1; lsn <= COMMITS && !rc; lsn++)
            rc = segidx_read_pages(h.index, loader, &h.vids[v], lsn, want, check_page, &v);
    segidx_offset_set_free(want);
    segidx_loader_stats st;
    segidx_loader_stats_get(loader, &st);
    segidx_loader_free(loader);
    segidx_volume_index_close(h.index);
    if (rc)
        return fail("read", rc);
    printf("%d volumes x %d commits in %llu segments under %s; %d reads checked\n", VOLUMES,
           COMMITS, (unsigned long long)h.next_sid, dir, VOLUMES * COMMITS);
    printf("ok\n");
    return 0;
}
