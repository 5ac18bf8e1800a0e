/* compact.c: `segidx compact`, segidx_volume_compact() over every volume
 * of a host directory: live pages out of shared, small or mostly pruned
 * segments into new volume-local segment files, the catalog re-pointed.
 * The replaced files stay; `segidx gc` deletes them once no entry names
 * them and the grace period has passed since this compaction. */
#include "cli.h"

/* Only its loader source and writer are used here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../examples/segment_files.h" /* segments as mmapped files */
#pragma GCC diagnostic pop

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

struct compact {
    const char *dir;
    segment_files files;  /* DIR/segments */
    bool dry_run;
    const char *vid_hex;  /* the volume being compacted */
    bool stopped;         /* the dry run's stop in `planned` */
    char failed[4200];    /* a file `planned` could not touch */
    int failed_errno;
    segidx_compact_stats total;
    uint64_t planned;     /* dry run: segments it would replace */
};

/* A fresh random sid: compactions in other processes draw their own. */
static int next_sid(void *ctx, segidx_sid *sid)
{
    (void)ctx;
    static const segidx_sid zero;
    do {
        if (getrandom(sid->bytes, sizeof sid->bytes, 0) != (ssize_t)sizeof sid->bytes)
            return SEGIDX_EIO;
    } while (!cli_sid_cmp(sid, &zero));
    return SEGIDX_OK;
}

/* Durable before the re-point names it: the file and its name. */
static int emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n;
    struct compact *c = ctx;
    int rc = segment_files_write(&c->files, sid, buf, len);
    if (!rc && cli_sync_dir(c->files.dir) != 0)
        rc = SEGIDX_EIO;
    return rc;
}

/* Before anything is written: the replaced files' mtime becomes now, so
 * that gc's grace period counts from this compaction, not from when they
 * were written. A dry run shows the plan and stops here. */
static int planned(void *ctx, const segidx_sid *old, size_t n)
{
    struct compact *c = ctx;
    static const struct timespec mtime_now[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };
    char path[4200];
    for (size_t i = 0; i < n; i++) {
        cli_dir_segment_path(c->dir, &old[i], path, sizeof path);
        if (c->dry_run) {
            printf("volume %s: would replace %s\n", c->vid_hex, path);
        } else if (utimensat(AT_FDCWD, path, mtime_now, 0) != 0) {
            snprintf(c->failed, sizeof c->failed, "%s", path);
            c->failed_errno = errno;
            return SEGIDX_EIO;
        }
    }
    c->planned += n;
    c->stopped = c->dry_run;
    return c->dry_run ? SEGIDX_ECONFLICT : SEGIDX_OK; /* any non-zero stops it */
}

static void add_stats(segidx_compact_stats *t, const segidx_compact_stats *s)
{
    t->segments_seen += s->segments_seen;
    t->segments_in += s->segments_in;
    t->segments_out += s->segments_out;
    t->commits += s->commits;
    t->pages += s->pages;
    t->bytes_in += s->bytes_in;
    t->bytes_out += s->bytes_out;
}

static void print_stats(const char *what, const segidx_compact_stats *s)
{
    printf("%s: %zu segments seen, %zu replaced, %zu written, %zu commits re-pointed, "
           "%llu pages, %llu bytes in, %llu bytes out\n",
           what, s->segments_seen, s->segments_in, s->segments_out, s->commits,
           (unsigned long long)s->pages, (unsigned long long)s->bytes_in,
           (unsigned long long)s->bytes_out);
}

/* The page size of the volume's segments, which the new ones must share:
 * that of the segment its first entry names. */
struct first_sid {
    bool found;
    segidx_sid sid;
};

static int take_first(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                      const segidx_offset_set *offsets)
{
    (void)lsn, (void)offsets;
    struct first_sid *f = ctx;
    f->found = true;
    f->sid = *sid;
    return 1; /* one is enough */
}

static int volume_page_size(segidx_volume_index *vi, segidx_loader *l, const segidx_vid *vid,
                            uint32_t *page_size)
{
    struct first_sid f = { false, { { 0 } } };
    int rc = segidx_volume_commits(vi, vid, take_first, &f);
    if (rc != 1)
        return rc; /* an error, or no entry: the default will do */
    const segidx_segment *s;
    if ((rc = segidx_loader_get(l, &f.sid, &s)))
        return rc;
    segidx_segment_stats st;
    segidx_segment_stats_get(s, &st);
    segidx_loader_put(l, s);
    *page_size = st.page_size;
    return SEGIDX_OK;
}

static int compact_volume(struct compact *c, segidx_volume_index *vi, segidx_loader *l,
                          const segidx_vid *vid, segidx_compact_options *o)
{
    char hex[33], what[4300];
    cli_hex16(vid->bytes, hex);
    c->vid_hex = hex;
    segidx_compact_stats st = { 0 };
    int rc = volume_page_size(vi, l, vid, &o->segment.page_size);
    if (!rc)
        rc = segidx_volume_compact(vi, l, vid, o, &st);
    if (rc && c->stopped)
        return CLI_OK;
    if (rc && c->failed[0])
        return cli_fail_errno(c->failed, rc, c->failed_errno);
    if (rc) {
        snprintf(what, sizeof what, "%s: volume %s", c->dir, hex);
        return cli_fail(what, rc);
    }
    snprintf(what, sizeof what, "volume %s", hex);
    print_stats(what, &st);
    add_stats(&c->total, &st);
    return CLI_OK;
}

static int compact_all(struct compact *c, segidx_volume_index *vi, segidx_compact_options *o)
{
    segidx_segment_source src = segment_files_source(&c->files);
    segidx_loader *l;
    cli_volumes vs;
    int rc = segidx_loader_new(&src, NULL, &l);
    if (rc)
        return cli_fail("loader", rc);
    if ((rc = cli_volumes_list(vi, &vs))) {
        segidx_loader_free(l);
        cli_dir_index_path(c->dir, c->failed, sizeof c->failed);
        return cli_fail(c->failed, rc);
    }
    for (size_t i = 0; !rc && i < vs.n; i++) {
        c->stopped = false;
        rc = compact_volume(c, vi, l, &vs.v[i].vid, o);
    }
    if (!rc && c->dry_run)
        printf("dry run: %zu volumes, %llu segment replacements planned, nothing written\n",
               vs.n, (unsigned long long)c->planned);
    else if (!rc)
        print_stats("total", &c->total);
    cli_volumes_free(&vs);
    segidx_loader_free(l);
    return rc;
}

static int run_compact(const cli_command *cmd, int argc, char **argv)
{
    cli_opt opts[] = { { "small-bytes", true, false, NULL },
                       { "max-input-bytes", true, false, NULL },
                       { "dry-run", false, false, NULL } };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 3, &a);
    if (rc)
        return rc;
    uint64_t small = SEGIDX_DEFAULT_COMPACT_SMALL_BYTES;
    uint64_t max_input = SEGIDX_DEFAULT_COMPACT_MAX_INPUT_BYTES;
    if ((rc = cli_opt_u64(cmd, &opts[0], 1, SIZE_MAX, &small)) ||
        (rc = cli_opt_u64(cmd, &opts[1], 1, SIZE_MAX, &max_input)))
        return rc;
    static struct compact c; /* zeroed; large path buffers */
    c.dir = a.pos[0];
    c.dry_run = opts[2].seen;
    if (!cli_dir_segments_path(c.dir, c.files.dir, sizeof c.files.dir))
        return cli_usage_error(cmd, "DIR is too long");
    segidx_compact_options o = { { 0 }, next_sid, emit, planned, &c, (size_t)small,
                                 (size_t)max_input };
    segidx_volume_index *vi;
    if ((rc = cli_open_index(c.dir, &vi)))
        return rc;
    rc = compact_all(&c, vi, &o);
    segidx_volume_index_close(vi);
    return rc;
}

const cli_command cli_cmd_compact = {
    "compact", "one DIR", 1, 1,
    "rewrite fragmented segments and re-point the catalog",
    "usage: segidx compact DIR [--small-bytes N] [--max-input-bytes N] [--dry-run]\n"
    "For every volume of DIR/index, rewrites its live pages out of segments that\n"
    "are shared with other volumes, small, or mostly pruned into new\n"
    "volume-local segment files, and re-points its catalog entries at them in\n"
    "one atomic write: every read at every retained LSN gives the same bytes.\n"
    "The replaced files stay (other volumes or reads in flight may use them);\n"
    "their mtime is set to the time of the compaction, before anything is\n"
    "written, so that `segidx gc` deletes them a grace period later. One line\n"
    "per volume (segments seen, replaced, written, commits re-pointed, pages,\n"
    "bytes in and out) and a total.\n"
    "  --small-bytes N      segments below N bytes are small (default 4 MiB)\n"
    "  --max-input-bytes N  live bytes one volume's compaction reads at most\n"
    "                       (default 256 MiB)\n"
    "  --dry-run            print each volume's plan, write nothing\n",
    run_compact,
};
