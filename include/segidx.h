/**
 * @file segidx.h
 * @brief libsegidx: which immutable segment holds page `offset` of volume
 *        `vid` as of `lsn`, and where in it.
 *
 * Conventions, as in LMDB:
 * - Every function that can fail returns `int`: #SEGIDX_OK (0) or a negative
 *   `SEGIDX_E*` code; segidx_strerror() names it.
 * - A call that fails leaves its inputs and out-parameters unchanged.
 * - Every `*_free` / `*_close` accepts NULL.
 * - The library keeps no global state and never sets CRoaring's process-wide
 *   memory hook: that belongs to the application.
 *
 * Threading: an object that nobody mutates may be read from many threads.
 * Handles documented as "safe for concurrent use" lock inside, unless the
 * library was built with `SEGIDX_SINGLE_THREADED=1` (see segidx_threadsafe()).
 */
#ifndef SEGIDX_H
#define SEGIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- version */

#define SEGIDX_VERSION_MAJOR 0
#define SEGIDX_VERSION_MINOR 1
#define SEGIDX_VERSION_PATCH 0
/** The version as one number: MAJOR * 10000 + MINOR * 100 + PATCH. */
#define SEGIDX_VERSION_NUMBER \
    (SEGIDX_VERSION_MAJOR * 10000 + SEGIDX_VERSION_MINOR * 100 + SEGIDX_VERSION_PATCH)
#define SEGIDX_STRINGIFY_(x) #x
#define SEGIDX_STRINGIFY(x) SEGIDX_STRINGIFY_(x)
/** The version as a string, "MAJOR.MINOR.PATCH". */
#define SEGIDX_VERSION_STRING                                   \
    SEGIDX_STRINGIFY(SEGIDX_VERSION_MAJOR) "."                  \
    SEGIDX_STRINGIFY(SEGIDX_VERSION_MINOR) "."                  \
    SEGIDX_STRINGIFY(SEGIDX_VERSION_PATCH)

/* ------------------------------------------------------------ export */

#ifndef SEGIDX_API
#  if defined(SEGIDX_BUILDING) && defined(__GNUC__)
#    define SEGIDX_API __attribute__((visibility("default")))
#  else
#    define SEGIDX_API
#  endif
#endif

/* ------------------------------------------------------------ errors */

#define SEGIDX_OK         0  /**< success */
#define SEGIDX_ENOMEM    -1  /**< an allocation failed */
#define SEGIDX_EINVAL    -2  /**< an argument is out of its domain */
#define SEGIDX_ECORRUPT  -3  /**< bytes failed validation (checksum or structure) */
#define SEGIDX_ENOTFOUND -4  /**< no such key, volume, offset or version */
#define SEGIDX_ERANGE    -5  /**< a value does not fit (LSN span, pruned LSN) */
#define SEGIDX_ECONFLICT -6  /**< a concurrent or out-of-order update lost */
#define SEGIDX_EIO       -7  /**< the host's storage failed */
#define SEGIDX_EVERSION  -8  /**< the bytes name a format version this build does not know */
#define SEGIDX_EFULL     -9  /**< a size limit would be exceeded */

/**
 * @brief A short English description of an error code.
 * @param[in] err a `SEGIDX_E*` code, or any other int.
 * @return a static string, never NULL ("unknown error" for unknown codes).
 *         Thread-safe.
 */
SEGIDX_API const char *segidx_strerror(int err);

/**
 * @brief The library's version at run time.
 * @return #SEGIDX_VERSION_NUMBER of the library that is linked, which may
 *         differ from the header's when linked dynamically.
 */
SEGIDX_API unsigned segidx_version(void);

/** @brief The library's version string at run time, e.g. "0.1.0". */
SEGIDX_API const char *segidx_version_string(void);

/**
 * @brief Whether this build locks inside its shared handles.
 * @return 1 for the default build, 0 for a `SEGIDX_SINGLE_THREADED=1` build,
 *         where no handle may be used from two threads at once.
 */
SEGIDX_API int segidx_threadsafe(void);

/* ------------------------------------------------------------ types */

/** A volume id: 16 opaque bytes, compared with memcmp. */
typedef struct segidx_vid { uint8_t bytes[16]; } segidx_vid;
/** A segment id: 16 opaque bytes, compared with memcmp. */
typedef struct segidx_sid { uint8_t bytes[16]; } segidx_sid;
/** A log sequence number: the first commit of a volume is 1; 0 means none. */
typedef uint64_t segidx_lsn;
/** A page offset within a volume. */
typedef uint32_t segidx_offset;

/**
 * @brief A host-supplied allocator for long-lived handles.
 *
 * Handles take a `const segidx_allocator *` in their options; NULL there
 * means the C library's malloc/realloc/free. The struct is copied when the
 * handle is created; `ctx` must stay valid until the handle is freed.
 * The sizes passed back to `resize` and `release` are the sizes that were
 * asked for, so that arena or pool allocators need no headers.
 * All three functions are required.
 */
typedef struct segidx_allocator {
    /** Return `size` bytes aligned for any type, or NULL. */
    void *(*alloc)(void *ctx, size_t size);
    /** Grow or shrink `ptr` (of `old_size` bytes) to `new_size`, or return
     *  NULL and leave `ptr` as it was. */
    void *(*resize)(void *ctx, void *ptr, size_t old_size, size_t new_size);
    /** Give back `ptr` (of `size` bytes). Never called with NULL. */
    void (*release)(void *ctx, void *ptr, size_t size);
    /** Passed to each function as it is. */
    void *ctx;
} segidx_allocator;

/* ------------------------------------------------------------ OffsetSet */

/**
 * @brief A set of page offsets (u32), over a CRoaring bitmap.
 *
 * Memory comes from CRoaring, which allocates through its own process-wide
 * hook (plain malloc unless the application changed it). A set that nobody
 * mutates may be read from many threads; mutation needs outside locking.
 */
typedef struct segidx_offset_set segidx_offset_set;

/**
 * @brief Create an empty set.
 * @return the new set, owned by the caller (free with
 *         segidx_offset_set_free()), or NULL if an allocation failed.
 */
SEGIDX_API segidx_offset_set *segidx_offset_set_new(void);

/** @brief Free a set. Accepts NULL. */
SEGIDX_API void segidx_offset_set_free(segidx_offset_set *s);

/**
 * @brief Add one offset.
 * @param[in,out] s the set.
 * @param[in] o any offset, 0 to UINT32_MAX.
 * @return #SEGIDX_OK (also when `o` was already there), #SEGIDX_EINVAL if
 *         `s` is NULL.
 */
SEGIDX_API int segidx_offset_set_add(segidx_offset_set *s, segidx_offset o);

/**
 * @brief Add every offset of the half-open range [lo, hi).
 * @return #SEGIDX_OK (an empty range, lo == hi, adds nothing),
 *         #SEGIDX_EINVAL if `s` is NULL or lo > hi.
 * @note UINT32_MAX itself cannot be named by a half-open u32 range: add it
 *       with segidx_offset_set_add().
 */
SEGIDX_API int segidx_offset_set_add_range(segidx_offset_set *s, segidx_offset lo,
                                           segidx_offset hi);

/** @brief Whether `o` is in `s`. */
SEGIDX_API bool segidx_offset_set_contains(const segidx_offset_set *s, segidx_offset o);

/** @brief The number of offsets in `s` (up to 2^32). */
SEGIDX_API uint64_t segidx_offset_set_cardinality(const segidx_offset_set *s);

/** @brief Whether `s` holds no offset. */
SEGIDX_API bool segidx_offset_set_is_empty(const segidx_offset_set *s);

/**
 * @brief Remove `s ∩ other` from `s` and return it.
 *
 * This is the step `find_segments` takes per commit: the query keeps what
 * the commit did not write, and the commit's share comes back.
 *
 * @param[in,out] s the set to cut from.
 * @param[in] other the set to cut by; may be `s` itself (then `s` empties).
 * @return a new set owned by the caller: empty, not NULL, when nothing is
 *         shared. NULL only if an allocation failed, and then `s` is
 *         unchanged (see the README on CRoaring's own allocations).
 */
SEGIDX_API segidx_offset_set *segidx_offset_set_cut(segidx_offset_set *s,
                                                   const segidx_offset_set *other);

/**
 * @brief Call `fn` for each offset in ascending order.
 * @param[in] fn called with each offset and `ctx`; a non-zero return stops
 *            the iteration. `fn` must not mutate `s`.
 * @return 0 when every offset was visited, otherwise the first non-zero
 *         value `fn` returned.
 */
SEGIDX_API int segidx_offset_set_iterate(const segidx_offset_set *s,
                                         int (*fn)(segidx_offset o, void *ctx), void *ctx);

/**
 * @brief The exact number of bytes segidx_offset_set_serialize() writes.
 * @return the size, or 0 if an allocation failed.
 */
SEGIDX_API size_t segidx_offset_set_serialized_size(const segidx_offset_set *s);

/**
 * @brief Write `s` in its stored form: a 24-byte envelope (magic "SXOS",
 *        format version, flags, payload length, a reserved word, XXH3-64 of
 *        the payload) followed by the run-optimized CRoaring portable
 *        format, which any Roaring implementation reads. See docs/FORMAT.md.
 *
 * `s` itself is not changed (run-optimization works on a private copy), so
 * concurrent readers of `s` are safe.
 *
 * @param[out] buf where to write; any alignment.
 * @param[in] cap the bytes available at `buf`.
 * @return the bytes written, or 0 if `cap` is too small or an allocation
 *         failed (then nothing was written).
 */
SEGIDX_API size_t segidx_offset_set_serialize(const segidx_offset_set *s, void *buf,
                                              size_t cap);

/**
 * @brief Read a set written by segidx_offset_set_serialize().
 *
 * Every byte is validated before CRoaring sees it: the envelope, the
 * checksum, and the structure of the portable payload (container count,
 * keys sorted and unique, cardinalities, arrays sorted, runs in range and
 * disjoint, offsets, no trailing bytes). Bytes that pass are exactly the
 * bytes serialize() can produce for some set, up to container choice.
 *
 * @param[in] buf the bytes; any alignment; borrowed for the call only.
 * @param[in] len their length.
 * @param[out] out the new set, owned by the caller; set only on success.
 * @return #SEGIDX_OK, #SEGIDX_ECORRUPT for malformed bytes,
 *         #SEGIDX_EVERSION for a format version this build does not know,
 *         #SEGIDX_EINVAL for NULL arguments, #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_offset_set_deserialize(const void *buf, size_t len,
                                             segidx_offset_set **out);

#ifdef __cplusplus
}
#endif

#endif /* SEGIDX_H */
