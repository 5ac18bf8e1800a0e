/* Internal helpers shared by the parts of libsegidx. Not installed. */
#ifndef SEGIDX_INTERNAL_H
#define SEGIDX_INTERNAL_H

#include "segidx.h"

#include <string.h>

/* Little-endian loads and stores at any alignment: memcpy compiles to one
 * move on the targets we care about and is defined behaviour everywhere. */
static inline uint16_t segidx__load16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t segidx__load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t segidx__load64(const uint8_t *p)
{
    return (uint64_t)segidx__load32(p) | (uint64_t)segidx__load32(p + 4) << 32;
}

static inline void segidx__store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void segidx__store32(uint8_t *p, uint32_t v)
{
    segidx__store16(p, (uint16_t)v);
    segidx__store16(p + 2, (uint16_t)(v >> 16));
}

static inline void segidx__store64(uint8_t *p, uint64_t v)
{
    segidx__store32(p, (uint32_t)v);
    segidx__store32(p + 4, (uint32_t)(v >> 32));
}

/* XXH3-64 of a byte range, the one checksum every format uses (seed 0). */
uint64_t segidx__xxh3(const void *p, size_t n);



/* The host's allocator, or libc's when `a` is NULL. Sizes travel with every
 * call so that arena allocators need no headers. */
void *segidx__alloc(const segidx_allocator *a, size_t size);
void *segidx__resize(const segidx_allocator *a, void *ptr, size_t old_size, size_t new_size);
void segidx__release(const segidx_allocator *a, void *ptr, size_t size);
/* alloc, zeroed, with the count * size overflow check calloc would make. */
void *segidx__alloc_array(const segidx_allocator *a, size_t count, size_t size);

#endif
