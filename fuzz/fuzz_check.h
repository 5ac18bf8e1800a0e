/* fuzz_check.h: what the fuzz targets share. An invariant that does not
 * hold aborts, which libFuzzer and the replay driver (replay.c) both
 * report with the input; byte order helpers; and the OffsetSet calls a
 * target makes to build its inputs and models, checked. Nothing here reads
 * a format: each target reads the bytes on its own, independently of
 * src/. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <segidx.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
    abort();
}

#define CHECK(x) ((x) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #x))

/* Little-endian, as every format here; big-endian for the volume index's
 * keys, which sort by LSN. */
static inline uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static inline uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static inline void put16(uint8_t *p, uint16_t v)
{
    put_le(p, v, 2);
}

static inline void put32(uint8_t *p, uint32_t v)
{
    put_le(p, v, 4);
}

static inline void put64(uint8_t *p, uint64_t v)
{
    put_le(p, v, 8);
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* A store as a second index sees it: the same calls, and closing the
 * index leaves it open (the caller closes it). */
static inline int fuzz_borrow_get(void *self, const void *key, size_t klen,
                                  segidx_kv_visit_fn fn, void *ctx)
{
    const segidx_kv *kv = self;
    return kv->vt->get(kv->self, key, klen, fn, ctx);
}

static inline int fuzz_borrow_scan(void *self, const void *lo, size_t lolen, const void *hi,
                                   size_t hilen, bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    const segidx_kv *kv = self;
    return kv->vt->scan(kv->self, lo, lolen, hi, hilen, reverse, fn, ctx);
}

static inline int fuzz_borrow_write(void *self, const segidx_kv_op *ops, size_t n)
{
    const segidx_kv *kv = self;
    return kv->vt->write(kv->self, ops, n);
}

static inline void fuzz_borrow_close(void *self)
{
    (void)self;
}

static inline segidx_kv fuzz_borrowed(segidx_kv *kv)
{
    static const segidx_kv_vtable vt = { SEGIDX_KV_VTABLE_VERSION, fuzz_borrow_get,
                                         fuzz_borrow_scan, fuzz_borrow_write, fuzz_borrow_close };
    return (segidx_kv){ &vt, kv };
}

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
