/* segment_files.h: segments as files, one per segment in a directory, named
 * by the sid in hex, and a segidx_segment_source that mmaps them. A host's
 * whole storage layer for segments, small enough to copy into your own
 * program. POSIX; no global state. */
#ifndef SEGMENT_FILES_H
#define SEGMENT_FILES_H

#include <segidx.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct segment_files {
    char dir[1024];
} segment_files;

static void segment_files_path(const segment_files *sf, const segidx_sid *sid, char *out,
                               size_t cap)
{
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", sid->bytes[i]);
    snprintf(out, cap, "%s/%s.seg", sf->dir, hex);
}

/* Write a segment durably: to a temporary name, fsync, then rename, so
 * that a reader never sees half a segment. */
static int segment_files_write(const segment_files *sf, const segidx_sid *sid, const void *buf,
                               size_t len)
{
    char path[1100], tmp[1110];
    segment_files_path(sf, sid, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return SEGIDX_EIO;
    const char *p = buf;
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            unlink(tmp);
            return SEGIDX_EIO;
        }
        done += (size_t)n;
    }
    int rc = fsync(fd) == 0 && close(fd) == 0 && rename(tmp, path) == 0 ? SEGIDX_OK : SEGIDX_EIO;
    if (rc)
        unlink(tmp);
    return rc;
}

static int segment_files_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                               void **handle)
{
    char path[1100];
    segment_files_path(ctx, sid, path, sizeof path);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? SEGIDX_ENOTFOUND : SEGIDX_EIO;
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0)
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping stays */
    if (map == MAP_FAILED)
        return SEGIDX_EIO;
    *buf = map;
    *len = (size_t)st.st_size;
    *handle = NULL;
    return SEGIDX_OK;
}

static void segment_files_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                                  void *handle)
{
    (void)ctx, (void)sid, (void)handle;
    munmap((void *)buf, len);
}

/* The loader's source over the directory; `sf` must outlive the loader. */
static segidx_segment_source segment_files_source(segment_files *sf)
{
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, segment_files_fetch,
                                  segment_files_release, sf };
    return src;
}

#endif
