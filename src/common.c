/* Error strings, version and build facts. */
#include "internal.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

const char *segidx_strerror(int err)
{
    switch (err) {
    case SEGIDX_OK: return "success";
    case SEGIDX_ENOMEM: return "out of memory";
    case SEGIDX_EINVAL: return "invalid argument";
    case SEGIDX_ECORRUPT: return "corrupt data";
    case SEGIDX_ENOTFOUND: return "not found";
    case SEGIDX_ERANGE: return "out of range";
    case SEGIDX_ECONFLICT: return "conflict";
    case SEGIDX_EIO: return "I/O error";
    case SEGIDX_EVERSION: return "unsupported format version";
    case SEGIDX_EFULL: return "full";
    default: return "unknown error";
    }
}

unsigned segidx_version(void)
{
    return SEGIDX_VERSION_NUMBER;
}

const char *segidx_version_string(void)
{
    return SEGIDX_VERSION_STRING;
}

int segidx_threadsafe(void)
{
#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
    return 0;
#else
    return 1;
#endif
}

uint64_t segidx__xxh3(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}
