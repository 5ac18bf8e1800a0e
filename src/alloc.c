/* Allocation through the host's segidx_allocator, or libc. */
#include "internal.h"

#include <stdlib.h>

void *segidx__alloc(const segidx_allocator *a, size_t size)
{
    if (size == 0)
        size = 1; /* never hand out NULL for success */
    return a ? a->alloc(a->ctx, size) : malloc(size);
}

void *segidx__resize(const segidx_allocator *a, void *ptr, size_t old_size, size_t new_size)
{
    if (!ptr)
        return segidx__alloc(a, new_size);
    if (new_size == 0)
        new_size = 1;
    return a ? a->resize(a->ctx, ptr, old_size, new_size) : realloc(ptr, new_size);
}

void segidx__release(const segidx_allocator *a, void *ptr, size_t size)
{
    if (!ptr)
        return;
    if (a)
        a->release(a->ctx, ptr, size ? size : 1);
    else
        free(ptr);
}

void *segidx__alloc_array(const segidx_allocator *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = segidx__alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *segidx__grow(void *array, size_t *cap, size_t n, size_t size, size_t first)
{
    if (n < *cap)
        return array;
    size_t more = *cap ? 2 * *cap : first;
    if (more < *cap || more > SIZE_MAX / size)
        return NULL;
    void *p = realloc(array, more * size);
    if (p)
        *cap = more;
    return p;
}
