/* fuzz_check.h: what the fuzz targets share. An invariant that does not
 * hold aborts, which libFuzzer and the replay driver (replay.c) both
 * report with the input; and the OffsetSet calls a target makes to build
 * its inputs and models, checked. Nothing here reads a format: each target
 * reads the bytes on its own, independently of src/. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <segidx.h>

#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
    abort();
}

#define CHECK(x) ((x) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #x))

static inline segidx_offset_set *new_set(void)
{
    segidx_offset_set *s = segidx_offset_set_new();
    CHECK(s != NULL);
    return s;
}

static inline segidx_offset_set *copy_set(const segidx_offset_set *s)
{
    segidx_offset_set *c = segidx_offset_set_copy(s);
    CHECK(c != NULL);
    return c;
}

static inline segidx_offset_set *cut_set(segidx_offset_set *s, const segidx_offset_set *by)
{
    segidx_offset_set *c = segidx_offset_set_cut(s, by);
    CHECK(c != NULL);
    return c;
}

#endif
