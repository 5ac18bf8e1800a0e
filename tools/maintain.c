/* maintain.c: the subcommands that change a host directory's files:
 * backup (a consistent copy of a live index and the segments it names)
 * and gc (delete segment files no catalog entry references). */
#include "cli.h"

/* Only its writer is used here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../examples/segment_files.h"
#pragma GCC diagnostic pop

#include <segidx_lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ backup */

struct backup {
    const char *dir, *dest;
    segment_files files; /* DEST/segments */
    bool copy;           /* --copy: never hard-link */
    uint64_t linked, copied, bytes;
};

/* A hard link shares the bytes, which segments never change once written
 * (and which their writer made durable); it is made under a temporary
 * name and renamed, so that a name in the copy always stands for a whole
 * segment. */
static int link_segment(const char *from, const char *to)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    unlink(tmp);
    if (link(from, tmp) != 0)
        return -1;
    if (rename(tmp, to) != 0) {
        int err = errno;
        unlink(tmp);
        errno = err;
        return -1;
    }
    return 0;
}

/* One segment into DEST/segments: linked where the file system allows,
 * else copied as a writer writes one (temporary name, fsync, rename). */
static int backup_segment(struct backup *b, const segidx_sid *sid)
{
    char from[4200], to[4200];
    void *buf;
    size_t len;
    int err, rc;
    cli_dir_segment_path(b->dir, sid, from, sizeof from);
    cli_dir_segment_path(b->dest, sid, to, sizeof to);
    if (!b->copy && link_segment(from, to) == 0) {
        struct stat st;
        b->linked++;
        b->bytes += stat(to, &st) == 0 ? (uint64_t)st.st_size : 0;
        return CLI_OK;
    }
    if ((rc = cli_read_file(from, &buf, &len, &err)))
        return cli_fail_errno(from, rc, err);
    rc = segment_files_write(&b->files, sid, buf, len);
    free(buf);
    if (rc)
        return cli_fail(to, rc);
    b->copied++;
    b->bytes += len;
    return CLI_OK;
}

/* The segments the copied index names: a snapshot of the live one. */
static int backup_segments(struct backup *b)
{
    segidx_volume_index *vi;
    cli_sid_set ref;
    char segs[4200];
    int rc = cli_open_index(b->dest, &vi);
    if (rc)
        return rc;
    rc = cli_sid_set_referenced(vi, &ref);
    segidx_volume_index_close(vi);
    if (rc) {
        cli_dir_index_path(b->dest, segs, sizeof segs);
        return cli_fail(segs, rc);
    }
    snprintf(segs, sizeof segs, "%s", b->files.dir);
    if (mkdir(segs, 0777) != 0 && errno != EEXIST)
        rc = cli_fail_errno(segs, SEGIDX_EIO, errno);
    for (size_t i = 0; !rc && i < ref.n; i++)
        rc = backup_segment(b, &ref.sids[i]);
    if (!rc && cli_sync_dir(segs) != 0)
        rc = cli_fail_errno(segs, SEGIDX_EIO, errno);
    cli_sid_set_free(&ref);
    return rc;
}

static int run_backup(const cli_command *cmd, int argc, char **argv)
{
    cli_opt opts[] = { { "copy", false, false, NULL } };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 1, &a);
    if (rc)
        return rc;
    static struct backup b; /* zeroed; large path buffers */
    b.dir = a.pos[0];
    b.dest = a.pos[1];
    b.copy = opts[0].seen;
    if (!cli_dir_segments_path(b.dest, b.files.dir, sizeof b.files.dir))
        return cli_usage_error(cmd, "DEST is too long");
    char from[4200], to[4200], data[4300];
    struct stat st;
    cli_dir_index_path(b.dir, from, sizeof from);
    cli_dir_index_path(b.dest, to, sizeof to);
    snprintf(data, sizeof data, "%s/data.mdb", to);
    if (stat(data, &st) == 0) {
        fprintf(stderr, "segidx: %s: %s (it already holds an index; give a new DEST)\n", to,
                segidx_strerror(SEGIDX_ECONFLICT));
        return CLI_FAIL;
    }
    if ((rc = segidx_kv_lmdb_backup(from, to)))
        return cli_fail(from, rc);
    if ((rc = backup_segments(&b)))
        return rc;
    printf("index     %s -> %s\n", from, to);
    printf("segments  %llu (%llu linked, %llu copied), %llu bytes\n",
           (unsigned long long)(b.linked + b.copied), (unsigned long long)b.linked,
           (unsigned long long)b.copied, (unsigned long long)b.bytes);
    return CLI_OK;
}

const cli_command cli_cmd_backup = {
    "backup", "DIR DEST", 2, 2,
    "a consistent copy of a live index and its segments",
    "usage: segidx backup DIR DEST [--copy]\n"
    "Copies DIR/index to DEST/index as one consistent snapshot while writers go\n"
    "on (segidx_kv_lmdb_backup; a raw copy of a live data.mdb is no backup),\n"
    "then every segment file the copy references into DEST/segments, hard-linked\n"
    "where the file system allows (segments never change), so that `segidx\n"
    "check DEST` passes. Finish it within gc's grace period, or a segment the\n"
    "copy names may be deleted before it is copied. Refuses a DEST that already\n"
    "holds an index.\n"
    "  --copy               copy the segment files, never hard-link them\n",
    run_backup,
};

/* ------------------------------------------------------------ gc */

struct gc {
    const cli_sid_set *referenced;
    time_t now;
    uint64_t grace;
    bool dry_run, json;
    uint64_t referenced_files, young, other;
    uint64_t deleted, deleted_tmp, deleted_bytes;
};

/* Unreferenced long enough: no read can still be using it, no writer
 * still be about to catalogue it. */
static bool gc_old_enough(const struct gc *g, time_t mtime)
{
    return g->grace == 0 || (mtime <= g->now && (uint64_t)(g->now - mtime) >= g->grace);
}

static void gc_print(struct gc *g, const cli_seg_entry *e)
{
    char utc[32];
    cli_time_utc(e->mtime > 0 ? (uint64_t)e->mtime : 0, utc);
    if (g->json) {
        printf("%s\n  {\"path\": ", g->deleted + g->deleted_tmp ? "," : "");
        cli_json_string(e->path);
        printf(", \"kind\": \"%s\", \"bytes\": %llu, ",
               e->kind == CLI_SEG_TMP ? "tmp" : "segment", (unsigned long long)e->bytes);
        cli_json_time("mtime", e->mtime > 0 ? (uint64_t)e->mtime : 0);
        putchar('}');
    } else {
        printf("%s %s (%llu bytes, modified %s)\n", g->dry_run ? "would delete" : "deleted",
               e->path, (unsigned long long)e->bytes, utc);
    }
}

static int gc_file(void *ctx, const cli_seg_entry *e)
{
    struct gc *g = ctx;
    if (e->kind == CLI_SEG_OTHER) {
        g->other++;
        return 0;
    }
    if (e->kind == CLI_SEG_SEGMENT && cli_sid_set_has(g->referenced, &e->sid)) {
        g->referenced_files++;
        return 0;
    }
    if (!gc_old_enough(g, e->mtime)) {
        g->young++;
        return 0;
    }
    if (!g->dry_run && unlink(e->path) != 0 && errno != ENOENT)
        return cli_fail_errno(e->path, SEGIDX_EIO, errno);
    gc_print(g, e);
    if (e->kind == CLI_SEG_TMP)
        g->deleted_tmp++;
    else
        g->deleted++;
    g->deleted_bytes += (uint64_t)e->bytes;
    return 0;
}

static void gc_report(const struct gc *g, const char *dir)
{
    const char *verb = g->dry_run ? "would delete" : "deleted";
    if (g->json) {
        printf("],\n \"dir\": ");
        cli_json_string(dir);
        printf(", \"grace\": %llu, \"dry_run\": %s, \"deleted_segments\": %llu, "
               "\"deleted_tmp\": %llu, \"deleted_bytes\": %llu, \"referenced\": %llu, "
               "\"kept_young\": %llu, \"other\": %llu}\n",
               (unsigned long long)g->grace, g->dry_run ? "true" : "false",
               (unsigned long long)g->deleted, (unsigned long long)g->deleted_tmp,
               (unsigned long long)g->deleted_bytes, (unsigned long long)g->referenced_files,
               (unsigned long long)g->young, (unsigned long long)g->other);
        return;
    }
    printf("%-12s %llu segments, %llu temporary files, %llu bytes\n", verb,
           (unsigned long long)g->deleted, (unsigned long long)g->deleted_tmp,
           (unsigned long long)g->deleted_bytes);
    printf("%-12s %llu referenced, %llu younger than the grace period (%llu s), "
           "%llu not ours\n",
           "kept", (unsigned long long)g->referenced_files, (unsigned long long)g->young,
           (unsigned long long)g->grace, (unsigned long long)g->other);
}

static int run_gc(const cli_command *cmd, int argc, char **argv)
{
    cli_opt opts[] = { { "grace", true, false, NULL }, { "dry-run", false, false, NULL },
                       { "json", false, false, NULL } };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 3, &a);
    if (rc)
        return rc;
    struct gc g = { 0 };
    g.grace = 3600;
    g.dry_run = opts[1].seen;
    g.json = opts[2].seen;
    if ((rc = cli_opt_u64(cmd, &opts[0], 0, UINT32_MAX, &g.grace)))
        return rc;
    const char *dir = a.pos[0];
    /* The referenced set first, the directory after: a segment written in
     * between is unreferenced in our eyes, and the grace period keeps it. */
    segidx_volume_index *vi;
    cli_sid_set ref;
    if ((rc = cli_open_index(dir, &vi)))
        return rc;
    rc = cli_sid_set_referenced(vi, &ref);
    segidx_volume_index_close(vi);
    if (rc) {
        char index[4200];
        cli_dir_index_path(dir, index, sizeof index);
        return cli_fail(index, rc);
    }
    g.referenced = &ref;
    g.now = time(NULL);
    if (g.json)
        printf("{\"deleted\": [");
    rc = cli_dir_scan_segments(dir, gc_file, &g);
    if (!rc)
        gc_report(&g, dir);
    else if (g.json)
        printf("]}\n"); /* still one document; the error is on stderr */
    cli_sid_set_free(&ref);
    return rc;
}

const cli_command cli_cmd_gc = {
    "gc", "one DIR", 1, 1,
    "delete segment files no catalog entry references",
    "usage: segidx gc DIR [--grace SECONDS] [--dry-run] [--json]\n"
    "Deletes the files of DIR/segments that no commit entry in DIR/index\n"
    "references, once they are older (by mtime) than the grace period, and\n"
    "*.tmp files older than it; one line per file deleted, then a summary.\n"
    "Referenced files are never deleted. The grace period protects a segment\n"
    "just written and not yet catalogued, and one a compaction just replaced,\n"
    "which a read that found it earlier may still use: `segidx compact` sets\n"
    "the mtime of the segments it replaces to the time of the compaction, so\n"
    "the grace counts from then. Make it longer than any write, read or\n"
    "backup takes.\n"
    "  --grace SECONDS      the grace period; default 3600, 0 deletes at once\n"
    "  --dry-run            say what would be deleted, delete nothing\n"
    "  --json               one JSON document on standard output\n",
    run_gc,
};
