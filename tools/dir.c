/* dir.c: a host directory as `segidx demo` writes it (DIR/index, an LMDB
 * volume index; DIR/segments, a file per segment), as the commands that
 * read or tend one see it. */
#include "cli.h"

#include <segidx_lmdb.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_dir_index_path(const char *dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/index", dir);
}

bool cli_dir_segments_path(const char *dir, char *out, size_t cap)
{
    return (size_t)snprintf(out, cap, "%s/segments", dir) < cap;
}

void cli_dir_segment_path(const char *dir, const segidx_sid *sid, char *out, size_t cap)
{
    char hex[33];
    cli_hex16(sid->bytes, hex);
    snprintf(out, cap, "%s/segments/%s.seg", dir, hex);
}

int cli_sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cli_open_index(const char *dir, segidx_volume_index **out)
{
    char path[4096], data[4200];
    struct stat st;
    cli_dir_index_path(dir, path, sizeof path);
    if (stat(path, &st) != 0)
        return cli_fail_errno(path, SEGIDX_ENOTFOUND, errno);
    if (!S_ISDIR(st.st_mode))
        return cli_fail_errno(path, SEGIDX_EINVAL, ENOTDIR);
    snprintf(data, sizeof data, "%s/data.mdb", path);
    if (stat(data, &st) != 0)
        return cli_fail_errno(data, SEGIDX_ENOTFOUND, errno);
    segidx_kv kv;
    int open_error = 0;
    segidx_kv_lmdb_options opts = { 0 };
    opts.open_error = &open_error;
    int rc = segidx_kv_lmdb_open(path, &opts, &kv);
    if (rc) {
        fprintf(stderr, "segidx: %s: %s (%s)\n", path, segidx_strerror(rc),
                segidx_kv_lmdb_strerror(open_error));
        return CLI_FAIL;
    }
    if ((rc = segidx_volume_index_open(kv, out))) {
        kv.vt->close(kv.self);
        return cli_fail(path, rc);
    }
    return CLI_OK;
}

/* ------------------------------------------------------------ volumes */

/* Room for one more element in an array that doubles as it grows. */
static int grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return SEGIDX_OK;
    size_t more = *cap ? 2 * *cap : 16;
    void *p = realloc(*items, more * size);
    if (!p)
        return SEGIDX_ENOMEM;
    *items = p;
    *cap = more;
    return SEGIDX_OK;
}

static int add_volume(void *ctx, const segidx_vid *vid, const segidx_volume_meta *meta)
{
    cli_volumes *vs = ctx;
    void *items = vs->v;
    int rc = grow(&items, &vs->cap, vs->n, sizeof *vs->v);
    vs->v = items;
    if (!rc)
        vs->v[vs->n++] = (cli_volume){ *vid, *meta };
    return rc;
}

int cli_volumes_list(segidx_volume_index *vi, cli_volumes *out)
{
    memset(out, 0, sizeof *out);
    int rc = segidx_volume_list(vi, add_volume, out);
    if (rc)
        cli_volumes_free(out);
    return rc;
}

void cli_volumes_free(cli_volumes *vs)
{
    free(vs->v);
    memset(vs, 0, sizeof *vs);
}

/* ------------------------------------------------------------ sid sets */

static int sid_set_add(void *ctx, const segidx_sid *sid)
{
    cli_sid_set *s = ctx;
    void *items = s->sids;
    int rc = grow(&items, &s->cap, s->n, sizeof *s->sids);
    s->sids = items;
    if (!rc)
        s->sids[s->n++] = *sid;
    return rc;
}

static int compare_sids(const void *a, const void *b)
{
    return cli_sid_cmp(a, b);
}

int cli_sid_set_referenced(segidx_volume_index *vi, cli_sid_set *out)
{
    memset(out, 0, sizeof *out);
    int rc = segidx_volume_index_segments(vi, sid_set_add, out);
    if (rc) {
        cli_sid_set_free(out);
        return rc;
    }
    /* They come in sid order; sorting again costs little next to a
     * lookup that missed, which would let gc delete a referenced file. */
    if (out->n)
        qsort(out->sids, out->n, sizeof *out->sids, compare_sids);
    return SEGIDX_OK;
}

bool cli_sid_set_has(const cli_sid_set *s, const segidx_sid *sid)
{
    return s->n && bsearch(sid, s->sids, s->n, sizeof *s->sids, compare_sids) != NULL;
}

void cli_sid_set_free(cli_sid_set *s)
{
    free(s->sids);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ DIR/segments */

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* "<32 hex>.seg" is a segment; "*.tmp" one being written (or left by a
 * writer that died); anything else is not ours. */
static int classify(const char *name, segidx_sid *sid)
{
    char hex[33];
    if (strlen(name) == 36 && ends_with(name, ".seg")) {
        memcpy(hex, name, 32);
        hex[32] = '\0';
        if (cli_parse_hex16(hex, sid->bytes))
            return CLI_SEG_SEGMENT;
    }
    return ends_with(name, ".tmp") ? CLI_SEG_TMP : CLI_SEG_OTHER;
}

int cli_dir_scan_segments(const char *dir, int (*fn)(void *ctx, const cli_seg_entry *e),
                          void *ctx)
{
    char segs[4096], path[4400];
    cli_dir_segments_path(dir, segs, sizeof segs);
    DIR *d = opendir(segs);
    if (!d && errno == ENOENT)
        return 0; /* a writer that died before its first segment: no files */
    if (!d)
        return cli_fail_errno(segs, SEGIDX_EIO, errno);
    int rc = 0;
    struct dirent *de;
    for (errno = 0; !rc && (de = readdir(d)); errno = 0) {
        cli_seg_entry e = { path, de->d_name, 0, { { 0 } }, 0, 0 };
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", segs, de->d_name);
        if (lstat(path, &st) != 0) {
            if (errno == ENOENT)
                continue; /* gone since readdir: a writer renamed its .tmp */
            rc = cli_fail_errno(path, SEGIDX_EIO, errno);
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        e.kind = classify(de->d_name, &e.sid);
        e.bytes = st.st_size;
        e.mtime = st.st_mtime;
        rc = fn(ctx, &e);
    }
    if (!rc && errno)
        rc = cli_fail_errno(segs, SEGIDX_EIO, errno);
    closedir(d);
    return rc;
}
