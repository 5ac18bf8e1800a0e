/**
 * @file segidx.h
 * @brief libsegidx: which immutable segment holds page `offset` of volume
 *        `vid` as of `lsn`, and where in it.
 *
 * Map of this header, in the order a host meets the calls:
 *
 * - The write path. Committed pages go into a packer
 *   (segidx_packer_new(), segidx_packer_add(), segidx_packer_flush()),
 *   which cuts immutable segments and hands each to the host's `emit` to
 *   store; once every segment of a commit is stored, `commit_ready` hands
 *   the commit back, and the host catalogues it in the volume index
 *   (segidx_volume_index_open() over a KV store: segidx_kv_mem_open(), or
 *   LMDB and PostgreSQL in segidx_lmdb.h and segidx_pg.h) with
 *   segidx_volume_commit_group() (segidx_volume_commit() for one). The
 *   sets of offsets a commit wrote are OffsetSets (segidx_offset_set_*).
 *   Upkeep: segidx_volume_prune(), segidx_volume_compact(),
 *   segidx_volume_index_segments() for garbage collection.
 * - The read path. segidx_read_pages() answers "these offsets of this
 *   volume as of this LSN": it asks the volume index which segments hold
 *   them (segidx_volume_find_segments()), gets each segment from a loader
 *   (segidx_loader_new() over the host's segidx_segment_source, which
 *   fetches segments by sid and caches them within a byte bound) and finds
 *   each page in it (segidx_segment_find_many(); segidx_segment_find() for
 *   one). Replicas follow a primary with segidx_volume_sync() and
 *   segidx_volume_changed(). Hosts that range-read segments open them from
 *   their tail: segidx_segment_tail_len(), segidx_segment_open_tail().
 *
 * Ownership, in one paragraph: a `*_new`/`*_open` call gives the caller a
 * handle it frees with the matching `*_free`/`*_close` (each accepts NULL).
 * Everything else passed in is borrowed for the call, except where a
 * parameter says "borrowed until close" (a segment's bytes, a store's
 * `self`). Everything a callback receives is borrowed for that callback
 * only: copy what must outlive it. Out-parameters are the caller's memory,
 * written only on success. Pages returned by a find point into the
 * segment's buffer and live as long as the segment is open (or, through a
 * loader, until segidx_loader_put()).
 *
 * Every callback type has a name (`segidx_*_fn`). Calls that return
 * `size_t` return 0 for failure and say so; calls that return `bool`,
 * `uint32_t` or `uint64_t` cannot fail.
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
 *
 * Exactness: no call returns #SEGIDX_OK with a wrong answer. Whatever races
 * it (commits and prunes in this process or another), whatever a host
 * callback does, a read returns the right page for its LSN or an error:
 * #SEGIDX_ERANGE when pruned under it, #SEGIDX_ECORRUPT when bytes or a
 * host store break their contract, #SEGIDX_EIO when the host fails.
 *
 * Host callbacks return 0 or a negative `SEGIDX_E*` code. Anything else (a
 * positive value, an errno such as -EIO, a code of the host's own) reaches
 * the caller as #SEGIDX_EIO; so does #SEGIDX_ERANGE, which no callback has
 * cause to report and which is -EIO's value on Linux.
 *
 * Callbacks and re-entry: a callback may call back into the library unless
 * its documentation says otherwise. The exceptions: a KV store's visit
 * callbacks (the store may hold a lock through them), the callbacks of
 * segidx_volume_list() and segidx_volume_commits() (they run inside the
 * store's scan, so they must not call the same volume index), a `pull` that
 * syncs its own volume again (#SEGIDX_EINVAL, never a wait for itself), and
 * a segment source's `fetch` asking its own loader for the same sid (the
 * same). segidx_volume_find_segments() and segidx_read_pages() call their
 * callbacks after every store and loader call, with nothing held.
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

/** An allocator's allocation: `size` bytes aligned for any type, or NULL. */
typedef void *(*segidx_alloc_fn)(void *ctx, size_t size);
/** An allocator's resize: `ptr` of `old_size` bytes to `new_size`, or NULL. */
typedef void *(*segidx_resize_fn)(void *ctx, void *ptr, size_t old_size, size_t new_size);
/** An allocator's release of `ptr`, `size` bytes as asked for. */
typedef void (*segidx_release_fn)(void *ctx, void *ptr, size_t size);

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
    segidx_alloc_fn alloc;
    /** Grow or shrink `ptr` (of `old_size` bytes) to `new_size`, or return
     *  NULL and leave `ptr` as it was. */
    segidx_resize_fn resize;
    /** Give back `ptr` (of `size` bytes). Never called with NULL. */
    segidx_release_fn release;
    /** Passed to each function as it is. */
    void *ctx;
} segidx_allocator;

/* ------------------------------------------------------------ OffsetSet */

/**
 * @brief A set of page offsets (u32), over a CRoaring bitmap.
 *
 * Memory comes from CRoaring, which allocates with the C library's malloc
 * (0.2.66 has no allocation hook; later versions have a process-wide one,
 * which belongs to the application: libsegidx never sets it). A set that
 * nobody mutates may be read from many threads; mutation needs outside
 * locking.
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
 * @brief A copy of `s`.
 * @return a new set owned by the caller, or NULL if an allocation failed.
 */
SEGIDX_API segidx_offset_set *segidx_offset_set_copy(const segidx_offset_set *s);

/** @brief Whether `a` and `b` hold the same offsets. */
SEGIDX_API bool segidx_offset_set_equals(const segidx_offset_set *a, const segidx_offset_set *b);

/** Called with each offset of a set (note: the offset comes before `ctx`). */
typedef int (*segidx_offset_fn)(segidx_offset o, void *ctx);

/**
 * @brief Call `fn` for each offset in ascending order.
 * @param[in] fn called with each offset and `ctx`; a non-zero return stops
 *            the iteration. `fn` must not mutate `s`.
 * @return 0 when every offset was visited, otherwise the first non-zero
 *         value `fn` returned.
 */
SEGIDX_API int segidx_offset_set_iterate(const segidx_offset_set *s, segidx_offset_fn fn,
                                         void *ctx);

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


/* ------------------------------------------------------------ segments */

/**
 * @brief Options for a segment builder. Zero fields mean the defaults.
 *
 * Initialise with `segidx_segment_options opts = {0};` and set what you
 * need, so that fields added later keep their defaults.
 */
typedef struct segidx_segment_options {
    /** Page size in bytes: a power of two, 512 to 65536; 0 = 4096. */
    uint32_t page_size;
    /** Largest segment in bytes, header to footer; 0 = 16 MiB.
     *  At least one page must fit; at most 4 GiB - 1. */
    size_t max_bytes;
    /** Allocator for the builder; NULL = malloc. Copied; see
     *  segidx_allocator. */
    const segidx_allocator *alloc;
} segidx_segment_options;

/** Default page size. */
#define SEGIDX_DEFAULT_PAGE_SIZE 4096u
/** Default (and usual) largest segment: 16 MiB. */
#define SEGIDX_DEFAULT_SEGMENT_BYTES (16u << 20)
/** Most pages one segment holds: local indexes fit u16. */
#define SEGIDX_MAX_SEGMENT_PAGES 65535u
/** Widest LSN span of one volume within one segment (rLSNs fit u16). */
#define SEGIDX_MAX_LSN_SPAN 65535u

/**
 * @brief Where a page is: the answer of segidx_segment_find().
 *
 * `page` points into the buffer the segment was opened on (borrowed: valid
 * while that buffer is and the segment is open; never free it), or is NULL
 * for a segment opened from its tail only.
 */
typedef struct segidx_page_ref {
    const void *page;  /**< page_size bytes, or NULL (tail-only open) */
    uint32_t local;    /**< the page's rank in (vid, offset, lsn) order */
    segidx_lsn lsn;    /**< the LSN of the version found */
} segidx_page_ref;

/** A segment being built. Not thread-safe: one thread at a time. */
typedef struct segidx_segment_builder segidx_segment_builder;
/** An open, immutable segment: read it from any number of threads. */
typedef struct segidx_segment segidx_segment;

/**
 * @brief Create a builder.
 * @param[in] opts NULL for 4096-byte pages and 16 MiB segments.
 * @return the builder, owned by the caller, or NULL if `opts` is invalid
 *         (page size not a power of two in range, max_bytes too small for
 *         one page or above 4 GiB - 1) or an allocation failed.
 */
SEGIDX_API segidx_segment_builder *segidx_segment_builder_new(const segidx_segment_options *opts);

/**
 * @brief Add one page version. Pages may arrive in any order.
 * @param[in] vid the volume; copied.
 * @param[in] off the page offset, any u32.
 * @param[in] lsn the version, >= 1.
 * @param[in] page page_size bytes; copied, borrowed for the call only.
 * @return #SEGIDX_OK;
 *         #SEGIDX_EINVAL for NULL arguments, lsn 0, or a (vid, off, lsn)
 *         already added;
 *         #SEGIDX_EFULL if the segment with this page could exceed
 *         max_bytes or 65535 pages (the size bound is exact up to the index,
 *         whose worst case is counted);
 *         #SEGIDX_ERANGE if the volume's LSN span would exceed 65535;
 *         #SEGIDX_ENOMEM. After any error the builder is unchanged.
 */
SEGIDX_API int segidx_segment_builder_add(segidx_segment_builder *b, const segidx_vid *vid,
                                          segidx_offset off, segidx_lsn lsn, const void *page);

/** @brief The number of pages added so far. */
SEGIDX_API uint32_t segidx_segment_builder_pages(const segidx_segment_builder *b);

/**
 * @brief The exact number of bytes segidx_segment_builder_finish() writes.
 * @return that size, or 0 for a builder with no pages or if an allocation
 *         failed while planning the index.
 */
SEGIDX_API size_t segidx_segment_builder_size(const segidx_segment_builder *b);

/**
 * @brief Write the segment. The same pages give the same bytes, whatever
 *        order they were added in. The builder is unchanged and may be
 *        finished again or reset.
 * @param[in] sid the segment's id, written into it.
 * @param[out] buf where to write; any alignment.
 * @param[in] cap bytes available; at least segidx_segment_builder_size().
 * @return #SEGIDX_OK; #SEGIDX_EINVAL for NULL arguments, no pages, or `cap`
 *         too small (nothing is written then); #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_segment_builder_finish(segidx_segment_builder *b, const segidx_sid *sid,
                                             void *buf, size_t cap);

/** @brief Forget every page, keeping the options and the memory. */
SEGIDX_API void segidx_segment_builder_reset(segidx_segment_builder *b);

/** @brief Free a builder. Accepts NULL. */
SEGIDX_API void segidx_segment_builder_free(segidx_segment_builder *b);

/**
 * @brief Open a segment in place (zero-copy).
 *
 * Validates everything a lookup relies on (see docs/FORMAT.md, "What open
 * validates") in one pass over the index besides its checksum, and builds
 * an O(volumes) table on the heap (malloc: about 100 bytes a volume).
 * Page bytes are not checked here; see segidx_segment_verify().
 *
 * @param[in] buf the whole segment, any alignment. Borrowed: it must stay
 *            valid and unchanged until segidx_segment_close().
 * @param[in] len its exact length.
 * @param[out] out the segment, owned by the caller; set only on success.
 * @return #SEGIDX_OK, #SEGIDX_ECORRUPT, #SEGIDX_EVERSION, #SEGIDX_EINVAL
 *         (NULL arguments), #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_segment_open(const void *buf, size_t len, segidx_segment **out);

/**
 * @brief How many bytes from the end of a segment a host must read to open
 *        it with segidx_segment_open_tail().
 * @param[in] footer the last 64 bytes of the segment (#SEGIDX_SEGMENT_FOOTER_BYTES).
 * @param[in] segment_len the segment's full length.
 * @param[out] tail_len page checksums + index + footer.
 * @return #SEGIDX_OK, #SEGIDX_ECORRUPT, #SEGIDX_EVERSION, #SEGIDX_EINVAL.
 */
SEGIDX_API int segidx_segment_tail_len(const void *footer, uint64_t segment_len,
                                       size_t *tail_len);
/** Bytes of a segment's footer. */
#define SEGIDX_SEGMENT_FOOTER_BYTES 64u

/**
 * @brief Open a segment from its tail alone (page checksums, index,
 *        footer), for hosts that range-read: find() then gives local
 *        indexes with `page == NULL`, and segidx_segment_page_range() says
 *        which bytes to fetch.
 * @param[in] tail the last `tail_len` bytes of the segment; borrowed until
 *            close. `tail_len` as segidx_segment_tail_len() gave it.
 * @param[in] segment_len the segment's full length.
 * @return as segidx_segment_open().
 */
SEGIDX_API int segidx_segment_open_tail(const void *tail, size_t tail_len, uint64_t segment_len,
                                        segidx_segment **out);

/**
 * @brief Find the version of page `off` of volume `vid` with the highest
 *        LSN <= `lsn`.
 * @param[out] out where it is; set only on success.
 * @return #SEGIDX_OK, or #SEGIDX_ENOTFOUND when the segment holds no such
 *         version (unknown volume, unknown offset, every version newer).
 *         Thread-safe; no allocation, no I/O.
 */
SEGIDX_API int segidx_segment_find(const segidx_segment *s, const segidx_vid *vid,
                                   segidx_offset off, segidx_lsn lsn, segidx_page_ref *out);

/**
 * @brief Find many offsets of one volume at one LSN: segidx_segment_find()
 *        for each of `offs[0..n)`, with the volume looked up once and the
 *        offsets merged through the index in order (a stretch of the index
 *        that several offsets fall into is decoded once, not searched once
 *        per offset). This is what segidx_read_pages() uses.
 *
 * @param[in] s an open segment; thread-safe like segidx_segment_find().
 * @param[in] vid the volume.
 * @param[in] lsn the version wanted: for each offset, its newest <= `lsn`.
 * @param[in] offs `n` offsets in non-decreasing order (duplicates allowed,
 *            each answered); borrowed for the call.
 * @param[in] n how many; 0 is allowed (nothing to do, #SEGIDX_OK).
 * @param[out] out `n` answers, `out[i]` for `offs[i]`, caller-owned. A hit
 *            is what segidx_segment_find() gives (`page` borrowed from the
 *            segment's buffer, NULL for a tail-only segment); a miss has
 *            `lsn` 0 (no page has LSN 0), `local` UINT32_MAX and `page`
 *            NULL.
 * @return #SEGIDX_OK when every offset was found; #SEGIDX_ENOTFOUND when at
 *         least one was not (each marked as above; an unknown volume marks
 *         them all); #SEGIDX_EINVAL for a NULL `s` or `vid`, NULL `offs` or
 *         `out` with `n > 0`, or offsets out of order: `out` is then left
 *         untouched. No allocation, no I/O.
 */
SEGIDX_API int segidx_segment_find_many(const segidx_segment *s, const segidx_vid *vid,
                                        segidx_lsn lsn, const segidx_offset *offs, size_t n,
                                        segidx_page_ref *out);

/**
 * @brief The byte range of page `local` within the segment file.
 * @return #SEGIDX_OK, #SEGIDX_EINVAL if `local` is not a page.
 */
SEGIDX_API int segidx_segment_page_range(const segidx_segment *s, uint32_t local,
                                         uint64_t *offset, uint32_t *len);

/**
 * @brief Check one page's bytes against its checksum (for pages fetched
 *        by range after a tail-only open).
 * @param[in] page page_size bytes.
 * @return #SEGIDX_OK, #SEGIDX_ECORRUPT, #SEGIDX_EINVAL.
 */
SEGIDX_API int segidx_segment_check_page(const segidx_segment *s, uint32_t local,
                                         const void *page);

/**
 * @brief Full validation: what open checked, plus every page's checksum.
 * @return #SEGIDX_OK, #SEGIDX_ECORRUPT, or #SEGIDX_EINVAL for a tail-only
 *         segment (it has no pages to check).
 */
SEGIDX_API int segidx_segment_verify(const segidx_segment *s);

/** @brief Close a segment; its buffer goes back to the host. Accepts NULL. */
SEGIDX_API void segidx_segment_close(segidx_segment *s);

/** Offset encodings of a volume in a segment's index (docs/FORMAT.md). */
enum segidx_offset_encoding {
    SEGIDX_OFFSETS_RANGE = 0,       /**< contiguous: no bytes */
    SEGIDX_OFFSETS_BITMAP = 1,      /**< dense: bitmap + rank samples */
    SEGIDX_OFFSETS_ELIAS_FANO = 2,  /**< sparse: Elias-Fano + select samples */
    /** format version 2: chunks of 64 offsets, each Elias-Fano with its own
     *  low-bit width, behind a directory over the offsets' top bits */
    SEGIDX_OFFSETS_PARTITIONED = 3,
    /** format version 3: offsets keyed by their bit length (a linear floor,
     *  then parts of each octave), at most 32 a key, each key's bucket
     *  Elias-Fano */
    SEGIDX_OFFSETS_KEYED = 4,
    /** format version 3: the same keys, each bucket's values packed at
     *  one width so that one load holds them all */
    SEGIDX_OFFSETS_KEYED_PACKED = 5
};

/** @brief A segment as a whole. */
typedef struct segidx_segment_stats {
    segidx_sid sid;
    uint32_t page_size;
    uint32_t page_count;
    uint32_t volume_count;
    size_t index_bytes;    /**< the index alone (volume table + data) */
    uint64_t segment_bytes;
} segidx_segment_stats;

/** @brief Fill `out` with the segment's figures. */
SEGIDX_API void segidx_segment_stats_get(const segidx_segment *s, segidx_segment_stats *out);

/** @brief One volume of a segment. */
typedef struct segidx_segment_volume {
    segidx_vid vid;
    uint32_t first_page;      /**< local index of its first page */
    uint32_t page_count;
    uint32_t offset_count;    /**< distinct offsets */
    segidx_offset first_offset, last_offset;
    segidx_lsn min_lsn, max_lsn;
    int offset_encoding;      /**< enum segidx_offset_encoding */
    unsigned rlsn_width;      /**< 0, 1 or 2 bytes per page (format version 2
                                   packs bits: the bytes they round up to) */
    size_t index_bytes;       /**< its table entry and data */
} segidx_segment_volume;

/**
 * @brief Volume `i` (0 <= i < volume_count) in vid order.
 * @return #SEGIDX_OK or #SEGIDX_EINVAL.
 */
SEGIDX_API int segidx_segment_volume_get(const segidx_segment *s, uint32_t i,
                                         segidx_segment_volume *out);

/** @brief One page of a segment, as segidx_segment_iterate() sees it. */
typedef struct segidx_segment_page {
    const segidx_vid *vid;    /**< borrowed for the callback */
    segidx_offset offset;
    segidx_lsn lsn;
    uint32_t local;
    const void *page;         /**< NULL for a tail-only segment */
} segidx_segment_page;

/** Called with each page of a segment; `p` is borrowed for the call. */
typedef int (*segidx_segment_page_fn)(void *ctx, const segidx_segment_page *p);

/**
 * @brief Visit every page in (vid, offset, lsn) order, which is local order.
 * @param[in] vid NULL for every volume, or just this one.
 * @return 0, the first non-zero value `fn` returned, or #SEGIDX_ENOTFOUND
 *         for a `vid` the segment lacks.
 */
SEGIDX_API int segidx_segment_iterate(const segidx_segment *s, const segidx_vid *vid,
                                      segidx_segment_page_fn fn, void *ctx);

/**
 * @brief The offsets of the pages this segment holds for volume `vid` at
 *        exactly LSN `lsn`: what segidx_volume_commit() records for it.
 * @param[out] out a new set, owned by the caller (empty when there are none).
 * @return #SEGIDX_OK, #SEGIDX_EINVAL, #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_segment_offsets(const segidx_segment *s, const segidx_vid *vid,
                                      segidx_lsn lsn, segidx_offset_set **out);

/* ------------------------------------------------------------ packer */

/** @brief What one finished segment holds of one commit: a share of it,
 *  not necessarily all of it (see segidx_packer_options.commit_ready). */
typedef struct segidx_packed_commit {
    segidx_vid vid;
    segidx_lsn lsn;
    /** The offsets of the pages of (vid, lsn) in this segment; borrowed for
     *  the callback: copy it (e.g. serialize) to keep it. */
    const segidx_offset_set *offsets;
} segidx_packed_commit;

/* Defined with the volume index, below. */
typedef struct segidx_commit_segment segidx_commit_segment;

/** Fills `sid` with a fresh segment id (packer and compaction). */
typedef int (*segidx_next_sid_fn)(void *ctx, segidx_sid *sid);
/** Takes one finished segment durably (packer and compaction): `buf`
 *  (`len` bytes) and `commits` (`n`) are borrowed for the call. */
typedef int (*segidx_emit_fn)(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                              const segidx_packed_commit *commits, size_t n);
/** A commit is complete (its segments all emitted): `segs` (`n`) borrowed
 *  for the call. */
typedef int (*segidx_commit_ready_fn)(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                                      const segidx_commit_segment *segs, size_t n);

/**
 * @brief How a packer names and hands over the segments it cuts, and when
 *        it tells the host that a commit can be catalogued.
 *
 * Every callback's non-zero return is returned by the packer call that
 * made it: the library's own codes as they are (but -5, which is -EIO as
 * well as #SEGIDX_ERANGE), anything else (a positive value, an errno, a
 * host's own code) as #SEGIDX_EIO. None of them may call back into the
 * same packer; they may call the rest of the library (commit_ready
 * typically calls segidx_volume_commit()).
 */
typedef struct segidx_packer_options {
    /** Page size, max_bytes and allocator of every segment. */
    segidx_segment_options segment;
    /** Fill `sid` with the next segment's id. Called once for every
     *  attempt to emit, so a retry after a failed emit gets a fresh id. A
     *  non-zero return is returned by the call that needed it; nothing is
     *  lost. Required. */
    segidx_next_sid_fn next_sid;
    /** Take one finished segment: make `buf` durable where readers will
     *  fetch it. `buf` (`len` bytes) and `commits` (one per (vid, lsn) it
     *  holds, sorted by vid then lsn) are borrowed for the call. Each of
     *  `commits` is only this segment's SHARE of a commit: a commit's pages
     *  may be spread over several segments, and the later ones do not
     *  exist yet. Do not catalogue commits from here: a commit catalogued
     *  before all its segments exist is published half-written, and a read
     *  at its LSN then gets the older bytes of the pages still to come,
     *  with #SEGIDX_OK. Catalogue from commit_ready. A non-zero return is
     *  returned by the call that cut the segment, and the segment's pages
     *  stay in the packer, so a later add or flush tries again. Required. */
    segidx_emit_fn emit;
    /** Passed to every callback as it is. */
    void *ctx;
    /**
     * Optional (NULL: not called). A commit is complete: every segment
     * holding one of its pages has been emitted (emit returned 0). `segs`
     * (`n` >= 1, one per such segment in the order they were emitted,
     * offsets disjoint, their union the commit's pages) is exactly what
     * segidx_volume_commit() wants: this is where a host catalogues the
     * commit. `segs` and its offset sets are the packer's, borrowed for the
     * call and freed after it.
     *
     * Called once per (vid, lsn), in commit order (the order of the
     * commits' first pages), from segidx_packer_add() or
     * segidx_packer_flush(), as soon as the packer knows the commit is
     * complete: a commit is closed by the first page of another commit, or
     * by a flush, and it is complete once it is closed and none of its pages
     * is in the open segment. So a commit's pages must be added one after
     * another, and a flush must come between commits, not within one; the
     * newest commit is handed over only when the next commit's first page
     * comes, or at the next flush.
     *
     * A non-zero return is returned by the add or flush that made the call;
     * that commit and the ones after it stay in the packer, and the next
     * add or flush calls commit_ready again from that commit (an add does
     * so before taking its page; after an error the page was not added).
     * Nothing is lost and no commit is handed over twice.
     *
     * Compaction (segidx_compact()) hands each (vid, lsn) it repacked to
     * commit_ready too, with its new segments. Those commits are already in
     * the catalog: a compaction host must not commit them again, but
     * re-point them (segidx_volume_repoint(), which takes exactly these
     * segments), or leave commit_ready NULL on a compaction packer.
     * segidx_volume_compact() does all of it for one volume.
     */
    segidx_commit_ready_fn commit_ready;
} segidx_packer_options;

/** A streaming packer: committed pages in, segments out. One thread. */
typedef struct segidx_packer segidx_packer;

/**
 * @brief Create a packer.
 * @param[in] opts copied; next_sid and emit are required, commit_ready is
 *            optional.
 * @param[out] out the packer, owned by the caller; set only on success.
 * @return #SEGIDX_OK, #SEGIDX_EINVAL (missing callback, bad segment
 *         options), #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_packer_new(const segidx_packer_options *opts, segidx_packer **out);

/**
 * @brief Add one committed page, in commit order.
 *
 * Commit order: all the pages of one commit, one after another, then the
 * next commit's; within a volume, LSNs ascending. When the page does not
 * fit the open segment (max_bytes, 65535 pages, or its volume's LSN span
 * would pass 65535), the open segment is finished and emitted, and the
 * page starts the next one. Commits complete before the page is taken
 * (the first page of a commit closes the one before it) are handed to
 * commit_ready first.
 *
 * Without commit_ready, duplicates are caught within the open segment
 * only: the packer keeps no memory of segments it has emitted. With it,
 * the packer holds every commit until commit_ready has taken it, and also
 * refuses a page of a commit it has closed, and an offset the commit
 * already wrote into an emitted segment. It does not remember commits it
 * has handed over: a page of one would start that commit again, which
 * segidx_volume_commit() then refuses.
 *
 * @param[in] page page_size bytes; copied.
 * @return #SEGIDX_OK; #SEGIDX_EINVAL (lsn 0, a (vid, off, lsn) already in
 *         the open segment, with commit_ready: a page of a closed commit
 *         or an offset its emitted segments hold); #SEGIDX_ENOMEM; or what
 *         next_sid, emit or commit_ready returned (see
 *         segidx_packer_options). After an error the page was not added
 *         and nothing was lost (commits handed over before the error stay
 *         handed over): the call may be repeated.
 */
SEGIDX_API int segidx_packer_add(segidx_packer *p, const segidx_vid *vid, segidx_offset off,
                                 segidx_lsn lsn, const void *page);

/**
 * @brief Finish and emit the open segment, if it holds any page; close the
 *        newest commit, and hand every complete commit to commit_ready.
 *
 * After a flush that returned #SEGIDX_OK, the packer holds nothing: every
 * page is in an emitted segment and every commit went to commit_ready. A
 * flush on a packer that holds nothing calls no callback.
 *
 * @return #SEGIDX_OK, #SEGIDX_ENOMEM, or what next_sid, emit or
 *         commit_ready returned: if next_sid or emit failed, the pages
 *         stay; if commit_ready did, that commit and the ones after it
 *         stay; either way flush may be called again.
 */
SEGIDX_API int segidx_packer_flush(segidx_packer *p);

/** @brief Free a packer; pages not yet flushed, and commits commit_ready
 *  has not taken, are dropped. Accepts NULL. */
SEGIDX_API void segidx_packer_free(segidx_packer *p);

/**
 * @brief Compaction: feed every page version of `n` segments through the
 *        packer, in (vid, lsn, offset) order, then flush. Every version is
 *        kept; a (vid, offset, lsn) found in several segments is packed
 *        once, from the first segment that has it.
 * Pages already open in the packer are packed along with them (with
 * commit_ready set, under segidx_packer_add()'s rules: a page of a commit
 * the packer has closed is #SEGIDX_EINVAL). What commit_ready means here:
 * see segidx_packer_options.
 *
 * @param[in] segs open segments (not tail-only) of the packer's page size;
 *            borrowed for the call.
 * @return #SEGIDX_OK, #SEGIDX_EINVAL (NULL, tail-only or another page
 *         size, checked before anything is packed), #SEGIDX_ENOMEM, or what
 *         the packer's callbacks returned. A failure part-way leaves some
 *         segments emitted and some pages open: free that packer, and treat
 *         what it emitted as unreferenced.
 */
SEGIDX_API int segidx_compact(const segidx_segment *const *segs, size_t n, segidx_packer *p);

/* ------------------------------------------------------------ KV vtable */

/** A batch operation: store `val` under `key`. */
#define SEGIDX_KV_PUT 1
/** A batch operation: remove `key` (removing a missing key is not an error). */
#define SEGIDX_KV_DEL 2
/**
 * A batch operation of vtable version 2: a condition, not a change. `key`
 * must hold exactly `val`/`vlen` (`val` NULL: `key` must be absent). Every
 * EXPECT of a batch is checked against the store as it is just before the
 * batch, inside the same atomic step that applies it (for a store shared
 * by several processes, inside the one write transaction they all queue
 * for); if any fails, the write applies nothing and returns
 * #SEGIDX_ECONFLICT. This is how the volume index stays exact when other
 * processes or hosts write the same catalog.
 */
#define SEGIDX_KV_EXPECT 3
/** The vtable version this header describes. Methods and meanings are
 *  only ever appended; the library uses what `version` says the host has
 *  (SQLite VFS style).
 *  - 1: get, scan, write (PUT, DEL), close.
 *  - 2: write also takes #SEGIDX_KV_EXPECT. With a version-1 store the
 *    volume index serializes its writes with a mutex of its own, which
 *    holds within one process (one segidx_volume_index) only: two
 *    processes or two indexes writing one version-1 store can lose
 *    commits. */
#define SEGIDX_KV_VTABLE_VERSION 2

/**
 * @brief Receives one key/value pair from a KV store.
 *
 * `key` and `val` are borrowed: valid only during the call; copy what you
 * keep. Return 0 to go on; a non-zero return stops a scan and is returned
 * by it.
 */
typedef int (*segidx_kv_visit_fn)(void *ctx, const void *key, size_t klen, const void *val,
                                  size_t vlen);

/** @brief One operation of an atomic batch. Borrowed for the write call. */
typedef struct segidx_kv_op {
    int op;            /**< #SEGIDX_KV_PUT, #SEGIDX_KV_DEL or #SEGIDX_KV_EXPECT */
    const void *key;
    size_t klen;
    const void *val;   /**< ignored for #SEGIDX_KV_DEL; NULL in an EXPECT: absent */
    size_t vlen;
} segidx_kv_op;

/** A store's methods, as segidx_kv_vtable describes them. */
typedef int (*segidx_kv_get_fn)(void *self, const void *key, size_t klen, segidx_kv_visit_fn fn,
                                void *ctx);
typedef int (*segidx_kv_scan_fn)(void *self, const void *lo, size_t lolen, const void *hi,
                                 size_t hilen, bool reverse, segidx_kv_visit_fn fn, void *ctx);
typedef int (*segidx_kv_write_fn)(void *self, const segidx_kv_op *ops, size_t n);
typedef void (*segidx_kv_close_fn)(void *self);

/**
 * @brief An ordered key-value store supplied by the host.
 *
 * Keys are byte strings ordered by memcmp, a shorter key before every
 * longer key it prefixes; keys are never empty (#SEGIDX_EINVAL). Every
 * method returns 0 or a negative `SEGIDX_E*` code (#SEGIDX_EIO for a
 * storage failure, #SEGIDX_EFULL when the store is full, #SEGIDX_ENOMEM).
 * A store used by a volume index must allow calls from several threads at
 * once, unless the library is single-threaded. A visit callback must
 * neither write to nor read from the store it is visiting (the in-memory
 * store holds its lock through the callback, and such a call would wait
 * for it: that store answers #SEGIDX_EINVAL instead).
 *
 * What the volume index relies on, and checks on every call (a store that
 * breaks it makes the call fail with #SEGIDX_ECORRUPT): get calls `fn`
 * exactly once, with the key asked for, when it returns 0, and never when
 * it returns #SEGIDX_ENOTFOUND; scan hands out only keys in [lo, hi), in
 * strictly ascending order (descending when `reverse`), each once, stops
 * at `fn`'s first non-zero return and returns it; no pointer is NULL with
 * a non-zero length. What it relies on and cannot check: a scan is one
 * consistent snapshot, a write is atomic, an EXPECT is checked inside the
 * write's atomic step, and a store hands back the bytes that were put
 * (values carry checksums; a value moved under another key of the same
 * shape is not detected). segidx_kv_conformance() (segidx_kvcheck.h) checks
 * all of it that one process can see; the bundled stores pass it: run it
 * against your own.
 */
typedef struct segidx_kv_vtable {
    uint32_t version; /**< #SEGIDX_KV_VTABLE_VERSION */
    /** Look `key` up and call `fn` once with its value.
     *  @return fn's return, or #SEGIDX_ENOTFOUND (fn not called). */
    segidx_kv_get_fn get;
    /** Call `fn` for every key in [lo, hi), ascending, or descending when
     *  `reverse`. An empty `lo` (lolen 0) starts at the first key; an empty
     *  `hi` (hilen 0) runs to the last. The view is one consistent snapshot.
     *  @return 0 when every key was visited, else fn's first non-zero
     *  return, or an error. */
    segidx_kv_scan_fn scan;
    /** Apply `n` operations atomically and, for a durable store, durably:
     *  all of them or none. Later operations on the same key win. */
    segidx_kv_write_fn write;
    /** Release the store. */
    segidx_kv_close_fn close;
} segidx_kv_vtable;

/** @brief A store: its methods and the state they take as `self`. */
typedef struct segidx_kv {
    const segidx_kv_vtable *vt;
    void *self;
} segidx_kv;

/**
 * @brief Open an empty in-memory ordered KV (a balanced tree: O(log n) get,
 *        seek and write per key). For tests, and for embedded hosts with no
 *        disk. Safe for concurrent use (a reader-writer lock inside that
 *        starves neither writers nor readers) unless single-threaded.
 *        Implements vtable version 2 (#SEGIDX_KV_EXPECT). A get, scan or
 *        write called from one of the store's own visit callbacks answers
 *        #SEGIDX_EINVAL. Its contents go with `kv.vt->close(kv.self)`.
 * @param[out] out the store; set only on success.
 * @return #SEGIDX_OK, #SEGIDX_EINVAL, #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_kv_mem_open(segidx_kv *out);

/* ------------------------------------------------------------ volume index */

/** @brief What the volume index knows of a volume. */
typedef struct segidx_volume_meta {
    segidx_lsn lsn;              /**< the latest commit; 0 for none */
    segidx_offset last_offset;   /**< the highest offset ever written (0 if none) */
    uint64_t last_commit;        /**< the commit_time of the latest commit */
    segidx_lsn keep_from;        /**< reads below this LSN were pruned (0: never) */
} segidx_volume_meta;

/** @brief The offsets one commit wrote into one segment. */
typedef struct segidx_commit_segment {
    segidx_sid sid;                    /**< not all zero */
    const segidx_offset_set *offsets;  /**< not empty; borrowed for the call */
} segidx_commit_segment;

/**
 * @brief An LSN-keyed catalog of which segments hold which pages of each
 *        volume, over a host's ordered KV (docs/FORMAT.md, "Volume index").
 *        Safe for concurrent use: commits and prunes are serialized inside,
 *        reads run in parallel on the store's snapshots.
 *
 * Several processes or hosts may write one catalog through a store of
 * vtable version 2 or later (the bundled in-memory and LMDB stores are):
 * every write carries a #SEGIDX_KV_EXPECT on the volume's meta as it was
 * read, so of two writers racing for one LSN exactly one wins, and a prune
 * elsewhere never moves a volume's LSN back or loses a commit. With a
 * version-1 store only this handle's own writers are ordered.
 *
 * What the store hands back is checked against the vtable's contract
 * (keys in the range asked for, in order, none repeated, no visit after a
 * stop, a get that calls back once with its key); a store that breaks it
 * costs #SEGIDX_ECORRUPT, never a wrong answer, and a prune never writes
 * back what such a store handed out.
 */
typedef struct segidx_volume_index segidx_volume_index;

/**
 * @brief Open a volume index over a KV store.
 * @param[in] kv the store; on success the index owns it and closes it in
 *            segidx_volume_index_close(); on failure the caller still does.
 * @param[out] out the index; set only on success.
 * @return #SEGIDX_OK, #SEGIDX_EINVAL (NULL vt or method, version 0),
 *         #SEGIDX_ENOMEM. Any version from 1 on is accepted: version 1
 *         gets no #SEGIDX_KV_EXPECT (see #SEGIDX_KV_VTABLE_VERSION), a
 *         version above 2 is used as version 2.
 */
SEGIDX_API int segidx_volume_index_open(segidx_kv kv, segidx_volume_index **out);

/**
 * @brief Options for segidx_volume_index_open_with(). Zero fields mean the
 * defaults: initialise with `segidx_volume_index_options o = {0};`.
 *
 * **Checkpoints** bound a read's cost (docs/FORMAT.md, "Checkpoints"): every
 * `checkpoint_commits` (K) commits make a round; a round's commit also
 * writes, in its own atomic batch, a delta of the pages the round changed
 * per chunk of 4096 offsets, every F rounds a delta one level up, and every
 * K·F^L commits an image of the whole volume. A read then walks at most
 * K - 1 commits, (F - 1)·L deltas and one image per chunk it spans,
 * whatever the history. The commit that closes a round pays for it: it
 * reads the round's commits (level 1), F - 1 deltas per level it writes,
 * and at an image round the previous image; that is the latency spike,
 * largest every K·F^L commits.
 *
 * The schedule is the volume's: the first commit made through a handle
 * with checkpoints on fixes it in the volume's meta (this is also how a
 * volume written by version 0.1 gets its first checkpoint, with one walk
 * of its history), and every later writer follows it whatever its own
 * options. Such a volume can no longer be read by version 0.1.
 */
typedef struct segidx_volume_index_options {
    /** Commits per round, 1..2^24; 0 = #SEGIDX_DEFAULT_CHECKPOINT_COMMITS;
     *  #SEGIDX_CHECKPOINTS_OFF: volumes without checkpoints stay so. */
    uint32_t checkpoint_commits;
    /** Rounds per delta one level up, 2..64; 0 = #SEGIDX_DEFAULT_CHECKPOINT_FANOUT. */
    unsigned checkpoint_fanout;
    /** Delta levels, 1..6; 0 = #SEGIDX_DEFAULT_CHECKPOINT_LEVELS. */
    unsigned checkpoint_levels;
} segidx_volume_index_options;

/** Commits per checkpoint round by default. */
#define SEGIDX_DEFAULT_CHECKPOINT_COMMITS 16u
/** Checkpoint fanout by default. */
#define SEGIDX_DEFAULT_CHECKPOINT_FANOUT 4u
/** Checkpoint delta levels by default: an image every 16·4^4 = 4096 commits. */
#define SEGIDX_DEFAULT_CHECKPOINT_LEVELS 4u
/** segidx_volume_index_options::checkpoint_commits: start no checkpoints. */
#define SEGIDX_CHECKPOINTS_OFF UINT32_MAX

/**
 * @brief segidx_volume_index_open() with options.
 * @param[in] opts NULL for the defaults (checkpoints on).
 * @return as segidx_volume_index_open(); #SEGIDX_EINVAL also for options
 *         out of range.
 */
SEGIDX_API int segidx_volume_index_open_with(segidx_kv kv,
                                             const segidx_volume_index_options *opts,
                                             segidx_volume_index **out);

/** @brief Close the index and its store. Accepts NULL. */
SEGIDX_API void segidx_volume_index_close(segidx_volume_index *vi);

/**
 * @brief A volume's meta.
 * @return #SEGIDX_OK, #SEGIDX_ENOTFOUND (no commit yet), #SEGIDX_ECORRUPT,
 *         #SEGIDX_EVERSION, or the store's error.
 */
SEGIDX_API int segidx_volume_get(segidx_volume_index *vi, const segidx_vid *vid,
                                 segidx_volume_meta *out);

/**
 * @brief Record commit `lsn` of a volume: which segments hold the pages it
 *        wrote. One atomic write of the store (segidx_volume_commit_group()
 *        makes many commits in one).
 * @param[in] lsn exactly the volume's LSN + 1 (1 for a new volume).
 * @param[in] commit_time any value the host likes (e.g. a Unix time);
 *            kept as last_commit.
 * @param[in] segs `n` segments with disjoint, non-empty offset sets and
 *            distinct, non-zero sids; n = 0 is an empty commit, which
 *            advances the LSN.
 * @return #SEGIDX_OK; #SEGIDX_ECONFLICT (lsn is not the next one: another
 *         writer, here or in another process, got there first; or other
 *         writers kept changing the volume through 16 tries in a row);
 *         #SEGIDX_EINVAL (overlapping or empty offsets, a zero or repeated
 *         sid, NULL); #SEGIDX_ECORRUPT; #SEGIDX_ENOMEM; or the store's
 *         error. On failure nothing is written. A prune that lands between
 *         this call's read and its write makes it read again and retry.
 */
SEGIDX_API int segidx_volume_commit(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                                    uint64_t commit_time, const segidx_commit_segment *segs,
                                    size_t n);

/** @brief One commit of a group: the arguments of one
 *  segidx_volume_commit() call. */
typedef struct segidx_volume_commit_item {
    segidx_vid vid;
    segidx_lsn lsn;
    uint64_t commit_time;
    const segidx_commit_segment *segs; /**< `n` segments, borrowed for the call */
    size_t n;
} segidx_volume_commit_item;

/**
 * @brief Record several commits, of one volume or of many, in one atomic
 *        write of the store: all of them, or none.
 *
 * Each item obeys every rule of segidx_volume_commit() (its LSN the next
 * one, empty commits allowed, its segments' limits), and the store then
 * holds exactly the bytes that the same commits made one by one, in item
 * order, would have left: the same entries, metas (last_offset,
 * last_commit) and checkpoint values, a round reached inside the group
 * included. One durable write instead of `n` is the point: a packer's
 * flush hands over many commits at once (segidx_packer_options.
 * commit_ready); collect them and commit them here.
 *
 * A group may hold several commits of one volume, in LSN order (the
 * second is the first's LSN + 1, and so on), mixed with other volumes'
 * in any way. The write carries one #SEGIDX_KV_EXPECT per volume, on its
 * meta as read before the group, so a writer elsewhere that changed one of
 * the group's volumes in between makes the whole write fail; the group
 * then reads again and retries, as a single commit does (16 tries).
 *
 * @param[in] items `n` commits; borrowed for the call. n = 0 does
 *            nothing and returns #SEGIDX_OK.
 * @param[out] failed optional: on an error, the index of the item that
 *            was refused (or being planned when the error came), or `n`
 *            when the error is the group's (its write failed, or
 *            allocation before any item was looked at); `n` on success.
 *            Every item's arguments are checked first (the first bad one
 *            is named), then the items in order against the catalog.
 * @return #SEGIDX_OK; #SEGIDX_ECONFLICT (item `*failed`'s LSN is not the
 *         next one for its volume: another writer took it, or the group
 *         repeats or skips one; or, with `*failed` = n, other writers kept
 *         changing the group's volumes through 16 tries); #SEGIDX_EINVAL
 *         (NULL, or an item as segidx_volume_commit() refuses it);
 *         #SEGIDX_ECORRUPT or #SEGIDX_EVERSION (a stored value of item
 *         `*failed`'s volume); #SEGIDX_ENOMEM; or the store's error. On
 *         any error nothing is written: drop or fix the failed item (and
 *         the later items of its volume, whose LSNs follow it) and commit
 *         the rest again. With a version-1 store, groups and single
 *         commits are ordered by this handle's lock alone.
 */
SEGIDX_API int segidx_volume_commit_group(segidx_volume_index *vi,
                                          const segidx_volume_commit_item *items, size_t n,
                                          size_t *failed);

/** Called by segidx_volume_find_segments() with a commit segment and the
 *  pages of the query it answers (`cut`: borrowed for the call). */
typedef int (*segidx_find_segments_fn)(void *ctx, const segidx_sid *sid, segidx_lsn lsn,
                                       segidx_offset_set *cut);

/**
 * @brief Which segments answer `query` at `lsn`: the volume's commits
 *        newest first from min(lsn, the volume's LSN), each cutting `query`
 *        by its offsets, until `query` is empty.
 *
 * Without checkpoints (a volume written with #SEGIDX_CHECKPOINTS_OFF, or
 * an LSN below its first checkpoint) this walks the commits: one store
 * entry per commit segment walked, and one key more once the query is
 * empty (each key is taken only when the next shows that the store handed
 * them out in order). With checkpoints it walks at most K - 1 commits, then
 * reads the round's deltas and image for the chunks the rest of the query
 * spans, then the entries of each commit they name: the same answer, at a
 * cost that does not grow with the history (segidx_volume_index_options).
 * Either way the volume's meta is read twice: before, and after, so that
 * a prune that passed `lsn` meanwhile makes the call #SEGIDX_ERANGE
 * instead of a torn answer.
 *
 * @param[in,out] query the offsets asked for; afterwards exactly those never
 *            written up to `lsn` (read them as zero pages).
 * @param[in] fn called for each commit segment that answers some of the
 *            query, newest first, with the offsets it answers (`cut`: owned
 *            by the call, freed after it returns; the callback may not keep
 *            it). The calls come once the walk is complete and checked, with
 *            no store call under way: `fn` may call the library. A non-zero
 *            return stops the calls and is returned (`query` is then as
 *            after the whole walk).
 * A read above the volume's LSN reads history as of that LSN; if commits
 * and a prune past it land during the walk, the walk runs again from the
 * newer meta (up to 17 times, then #SEGIDX_ECONFLICT).
 *
 * @return #SEGIDX_OK; #SEGIDX_ENOTFOUND (unknown volume); #SEGIDX_ERANGE
 *         (lsn below the volume's prune point, also when a prune passed it
 *         during the call); #SEGIDX_ECORRUPT (a bad value, or a store that
 *         broke its contract); #SEGIDX_ECONFLICT (overtaken by prunes
 *         again and again); #SEGIDX_ENOMEM; the store's error; or fn's
 *         return. On an error (not fn's stop) `query` is as it was and `fn`
 *         was not called.
 */
SEGIDX_API int segidx_volume_find_segments(segidx_volume_index *vi, const segidx_vid *vid,
                                           segidx_lsn lsn, segidx_offset_set *query,
                                           segidx_find_segments_fn fn, void *ctx);

/**
 * @brief Forget what no read at or after `keep_from` needs: entries every
 *        offset of which a newer commit at or before keep_from rewrote are
 *        deleted, partly shadowed ones are rewritten smaller. Reads at any
 *        LSN >= keep_from return what they returned before; reads below it
 *        return #SEGIDX_ERANGE. One atomic write, conditional on the
 *        volume's meta as read: a commit or prune that lands in between
 *        (in any process) makes this call read again and retry.
 * @param[in] keep_from 1..the volume's LSN; at or below an earlier prune
 *            point it changes nothing.
 * @return #SEGIDX_OK, #SEGIDX_ENOTFOUND, #SEGIDX_EINVAL (keep_from above the
 *         volume's LSN), #SEGIDX_ECORRUPT, #SEGIDX_ECONFLICT (other writers
 *         changed the volume through 16 tries in a row), #SEGIDX_ENOMEM,
 *         the store's error.
 */
SEGIDX_API int segidx_volume_prune(segidx_volume_index *vi, const segidx_vid *vid,
                                   segidx_lsn keep_from);

/** Told of a segment no volume references any more; `sid` borrowed. */
typedef void (*segidx_unreferenced_fn)(void *ctx, const segidx_sid *sid);

/**
 * @brief segidx_volume_prune(), also reporting each sid this volume no
 *        longer references at all, once, after the write succeeded, so that
 *        the host can garbage-collect segments no volume needs.
 */
SEGIDX_API int segidx_volume_prune_report(segidx_volume_index *vi, const segidx_vid *vid,
                                          segidx_lsn keep_from,
                                          segidx_unreferenced_fn unreferenced, void *ctx);

/** Called by segidx_volume_list() with each volume; both borrowed. */
typedef int (*segidx_volume_list_fn)(void *ctx, const segidx_vid *vid,
                                     const segidx_volume_meta *meta);

/**
 * @brief Visit every volume in vid order.
 * @param[in] fn gets borrowed pointers; a non-zero return stops and is
 *            returned. It runs inside the store's scan: it must not call
 *            this volume index (copy what you need, act after the call).
 * @return 0, fn's stop value, #SEGIDX_ECORRUPT, or the store's error.
 */
SEGIDX_API int segidx_volume_list(segidx_volume_index *vi, segidx_volume_list_fn fn, void *ctx);

/** Called by segidx_volume_commits() with each commit segment; all borrowed. */
typedef int (*segidx_volume_commits_fn)(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                                        const segidx_offset_set *offsets);

/**
 * @brief Visit a volume's commit segments, oldest first (empty commits have
 *        none), up to the volume's LSN as this call read it first: commits
 *        that land during the call are not visited.
 * @param[in] fn gets borrowed pointers; a non-zero return stops and is
 *            returned. It runs inside the store's scan: it must not call
 *            this volume index.
 * @return 0, fn's stop value, #SEGIDX_ECORRUPT, #SEGIDX_ENOMEM, or the
 *         store's error.
 */
SEGIDX_API int segidx_volume_commits(segidx_volume_index *vi, const segidx_vid *vid,
                                     segidx_volume_commits_fn fn, void *ctx);

/**
 * @brief The offsets written in (from_lsn, to_lsn], added to `out`: what a
 *        replica at from_lsn must drop from its cache to read at to_lsn.
 *
 * Exactly the offsets whose newest version at or below to_lsn is above
 * from_lsn. Above the volume's newest checkpoint round it reads the
 * commits in the range; below it, the round's checkpoints (at most
 * (F-1)·L deltas and an image per chunk of the volume, the older ones
 * skipped when from_lsn is above them) and at most K-1 commits after the
 * round: the cost is bounded by the volume's size and its schedule, not
 * by its history. A to_lsn above the volume's LSN means its LSN. from_lsn
 * may lie below the prune point (pruned entries keep what reads at and
 * after it need); to_lsn may not.
 *
 * @param[in,out] out the offsets are added to what it holds; unchanged on
 *                any error.
 * @return #SEGIDX_OK; #SEGIDX_EINVAL (NULL, from_lsn > to_lsn);
 *         #SEGIDX_ENOTFOUND (unknown volume); #SEGIDX_ERANGE (to_lsn below
 *         the prune point); #SEGIDX_ECORRUPT; #SEGIDX_ENOMEM; the store's
 *         error.
 */
SEGIDX_API int segidx_volume_changed(segidx_volume_index *vi, const segidx_vid *vid,
                                     segidx_lsn from_lsn, segidx_lsn to_lsn,
                                     segidx_offset_set *out);

/* ------------------------------------------------------------ compaction */

typedef struct segidx_loader segidx_loader; /* below, with the loader */

/**
 * @brief One commit's pages, moved by a compaction into new segments.
 *
 * `segs` (`n` >= 1, borrowed for the call) name the new segments and, for
 * each, the offsets of commit (`vid`, `lsn`) it holds, at exactly `lsn`:
 * what segidx_packer_options.commit_ready hands a compaction packer.
 */
typedef struct segidx_repoint {
    segidx_vid vid;
    segidx_lsn lsn;
    const segidx_commit_segment *segs;
    size_t n;
} segidx_repoint;

/**
 * @brief Re-point the catalog from old segments to the new segments a
 *        compaction wrote, in one atomic store write.
 *
 * For every move, the entries of commit (vid, lsn) that name a sid of
 * `old` are replaced by one entry per new segment, holding that segment's
 * offsets restricted to what the replaced entries held (a prune may have
 * cut them since the compaction read them; what it cut stays cut).
 * Entries naming other segments are left as they are; a commit with no
 * entry in `old` any more (pruned, or re-pointed already: repeating a
 * re-point is harmless) is skipped. Every read at every LSN
 * answers the same pages before and after, from segments holding the
 * same bytes; no meta and no checkpoint changes (checkpoints name LSNs,
 * never segments).
 *
 * The write is conditional (#SEGIDX_KV_EXPECT) on every replaced entry
 * still holding what this call read, and on the new keys being absent, so
 * a prune, or another compaction, in any process, that got in between
 * makes it read again and retry; commits and checkpoints, which never
 * touch an existing entry, do not conflict with it. With a version-1
 * store it is serialized with this handle's other writes only.
 *
 * The new segments must exist, durable, before this call (the entries
 * name them from the moment it returns), and the old ones must stay
 * readable until every read that may have found them has finished (see
 * segidx_volume_index_segments()).
 *
 * @param[in] old sids being replaced (`n_old` >= 1); borrowed.
 * @param[in] moves `n` >= 1 commits, no (vid, lsn) twice; borrowed.
 * @return #SEGIDX_OK; #SEGIDX_EINVAL (NULL, n or n_old 0, a (vid, lsn)
 *         twice, a move's segments not distinct and non-zero, offsets
 *         empty or overlapping, a new sid also in `old`, or, for a
 *         commit that still has entries to replace, a new sid another of
 *         its entries names or an offset of a replaced entry that no new
 *         segment holds: pages would be lost); #SEGIDX_ECONFLICT (other
 *         writers changed those entries through 16 tries in a row);
 *         #SEGIDX_ECORRUPT; #SEGIDX_ENOMEM; the store's error. On any
 *         error the catalog is as it was.
 */
SEGIDX_API int segidx_volume_repoint(segidx_volume_index *vi, const segidx_sid *old,
                                     size_t n_old, const segidx_repoint *moves, size_t n);

/** Called with a segment id; `sid` borrowed. */
typedef int (*segidx_sid_fn)(void *ctx, const segidx_sid *sid);

/**
 * @brief Visit every segment that some commit entry of some volume names,
 *        once each, in sid order: what a garbage collector must keep.
 *
 * One scan of every entry (keys only: no value is decoded), so what it
 * reports is one consistent state of the store when the store's scans
 * are snapshots (LMDB's are). A segment written but not yet catalogued
 * (a packer's emit before its commit_ready, a compaction before its
 * re-point) is named by no entry, and one that a re-point or prune just
 * stopped naming may still be read by a read that found it earlier:
 * delete only segments that have been unreferenced longer than any write
 * and read takes (the `segidx gc` command waits a grace period).
 *
 * @param[in] fn called after the scan with a borrowed sid; a non-zero
 *            return stops and is returned. It may call the library.
 * @return 0, fn's stop value, #SEGIDX_ECORRUPT (a key that is no entry
 *         key), #SEGIDX_ENOMEM, or the store's error.
 */
SEGIDX_API int segidx_volume_index_segments(segidx_volume_index *vi, segidx_sid_fn fn,
                                            void *ctx);

/** Defaults of segidx_compact_options. */
#define SEGIDX_DEFAULT_COMPACT_SMALL_BYTES (4u << 20)
#define SEGIDX_DEFAULT_COMPACT_MAX_INPUT_BYTES ((size_t)256 << 20)

/** Told the sids a compaction will replace (`n`, borrowed) before it writes. */
typedef int (*segidx_planned_fn)(void *ctx, const segidx_sid *old, size_t n);

/**
 * @brief What segidx_volume_compact() compacts, and how it writes.
 *
 * A segment is a candidate for volume `vid` when any of these holds:
 * - it is small: fewer than `small_bytes` bytes;
 * - it is shared: it holds pages of other volumes too (compaction makes
 *   volume-local segments, as Graft's design does);
 * - it is mostly garbage: fewer than half of this volume's pages in it
 *   are still named by the catalog (the rest were pruned away).
 * Candidates are taken oldest first (by the first commit naming them)
 * until their live pages pass `max_input_bytes`. A plan of one segment is
 * carried out only when that segment is shared or mostly garbage: a
 * lone small volume-local segment has nothing to merge with.
 */
typedef struct segidx_compact_options {
    /** Page size (must match the segments), max_bytes and allocator of
     *  the new segments; 0 = default. */
    segidx_segment_options segment;
    /** As segidx_packer_options: a fresh sid per segment, and taking one
     *  finished segment durably. `emit` gets only this volume's pages.
     *  Both required. */
    segidx_next_sid_fn next_sid;
    segidx_emit_fn emit;
    /** Optional: called once the plan is made, before any segment is
     *  written, with the sids to be replaced (borrowed); a non-zero return
     *  stops the call and is returned (nothing written). A host can record
     *  here when the old segments stop being needed. */
    segidx_planned_fn planned;
    void *ctx;
    /** 0 = #SEGIDX_DEFAULT_COMPACT_SMALL_BYTES. */
    size_t small_bytes;
    /** 0 = #SEGIDX_DEFAULT_COMPACT_MAX_INPUT_BYTES. */
    size_t max_input_bytes;
} segidx_compact_options;

/** @brief What one segidx_volume_compact() did. */
typedef struct segidx_compact_stats {
    size_t segments_seen;     /**< segments the volume's entries name */
    size_t segments_in;       /**< replaced (0: nothing worth doing) */
    size_t segments_out;      /**< written */
    size_t commits;           /**< (vid, lsn) re-pointed */
    uint64_t pages;           /**< page versions rewritten */
    uint64_t bytes_in;        /**< bytes of the replaced segments */
    uint64_t bytes_out;       /**< bytes of the new segments */
} segidx_compact_stats;

/**
 * @brief Compact one volume: plan, rewrite its live pages of the planned
 *        segments into new volume-local segments, and re-point its
 *        entries at them (segidx_volume_repoint(), one atomic write).
 *
 * Only page versions some entry of `vid` names are rewritten, each at its
 * own LSN, in commit order, through a packer that keeps every segment
 * within max_bytes and the rLSN span. Each page is checked against its
 * checksum and against its entry before it is copied: a segment lacking a
 * named page, or holding a damaged one, stops the call with
 * #SEGIDX_ECORRUPT before anything is re-pointed. A host calls this
 * periodically; each call does at most `max_input_bytes` of work.
 *
 * The old segments are not deleted: other volumes may still name them,
 * and reads in flight may still use them (segidx_volume_index_segments()).
 * After an error the catalog is as it was; segments emitted before the
 * error are named by nothing.
 *
 * @param[in] l where the old segments are read (pins one at a time).
 * @param[out] stats optional.
 * @return #SEGIDX_OK (also when there was nothing worth doing:
 *         stats->segments_in 0); #SEGIDX_EINVAL; #SEGIDX_ENOTFOUND (unknown
 *         volume); #SEGIDX_ECORRUPT; #SEGIDX_ECONFLICT (see
 *         segidx_volume_repoint()); #SEGIDX_ENOMEM; the loader's, the
 *         store's or a callback's error.
 */
SEGIDX_API int segidx_volume_compact(segidx_volume_index *vi, segidx_loader *l,
                                     const segidx_vid *vid, const segidx_compact_options *opts,
                                     segidx_compact_stats *stats);

/* ------------------------------------------------------------ loader */

/** The segment source vtable version this header describes. */
#define SEGIDX_SEGMENT_SOURCE_VERSION 1

/** A segment source's fetch and release; see segidx_segment_source. */
typedef int (*segidx_fetch_fn)(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                               void **handle);
typedef void (*segidx_source_release_fn)(void *ctx, const segidx_sid *sid, const void *buf,
                                         size_t len, void *handle);

/**
 * @brief Where segments come from: the host downloads or maps them.
 *
 * `fetch` fills `*buf`/`*len` with the whole segment and `*handle` with
 * anything the host needs to give it back. The bytes are borrowed: the
 * library only reads them, and they must stay valid and unchanged until
 * `release`. It may block and it may fail: a `SEGIDX_E*` error (e.g.
 * #SEGIDX_ENOTFOUND) is passed on as it is; a positive return or any other
 * negative one (an errno such as -EIO) becomes #SEGIDX_EIO. A fetch that
 * fails hands nothing over. A fetch that returns 0 but leaves `*buf` NULL
 * is #SEGIDX_ECORRUPT and handed nothing over either; bytes that fail
 * validation (`*len` 0 among them) are #SEGIDX_ECORRUPT and released at
 * once. `release` is called exactly once for every fetch that returned 0
 * with a buffer: when the segment leaves the cache, when it fails
 * validation, when a page of it failed its checksum and its last pin goes,
 * or when the loader is freed. Both may be called from any thread,
 * concurrently; two copies of one sid may be held at once (a dropped one
 * still pinned beside a new fetch), and the release of one may overlap a
 * new fetch of the same sid: each call gets its own buffer and handle
 * back. A source of a newer version is accepted: this build calls only
 * version 1's two methods.
 */
typedef struct segidx_segment_source {
    uint32_t version; /**< #SEGIDX_SEGMENT_SOURCE_VERSION */
    segidx_fetch_fn fetch;
    segidx_source_release_fn release;
    void *ctx;
} segidx_segment_source;

/** @brief Loader limits. Zero fields mean the defaults. */
typedef struct segidx_loader_options {
    /** Bytes of segments kept open when nobody uses them; 0 = 256 MiB.
     *  Pinned segments are never evicted, so the cache exceeds this by at
     *  most the bytes pinned. */
    size_t cache_bytes;
    /** Fetches in flight at once, over all sids; 0 = 16. */
    unsigned max_fetches;
} segidx_loader_options;

/** Default loader cache budget. */
#define SEGIDX_DEFAULT_CACHE_BYTES ((size_t)256 << 20)
/** Default cap on fetches in flight. */
#define SEGIDX_DEFAULT_MAX_FETCHES 16u

/** A cache of open segments over a segment source. Safe for concurrent use. */
typedef struct segidx_loader segidx_loader;

/**
 * @brief Create a loader.
 * @param[in] src copied; fetch and release are required.
 * @param[in] opts NULL for the defaults.
 * @return #SEGIDX_OK, #SEGIDX_EINVAL, #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_loader_new(const segidx_segment_source *src,
                                 const segidx_loader_options *opts, segidx_loader **out);

/**
 * @brief The open segment `sid`, pinned until segidx_loader_put().
 *
 * Each segidx_loader_put() must match exactly one segidx_loader_get() that
 * returned that segment to the same caller: a put without its own get
 * releases someone else's pin, and the segment may then be released to the
 * host while they still read it.
 *
 * A cache hit returns at once. On a miss, at most one fetch per sid is in
 * flight: other callers for that sid wait and then find it cached (or, if
 * the fetch failed, one of them retries), and at most max_fetches fetches
 * run at once over all sids. A fetched segment is opened (validated)
 * before it is cached; bytes that fail are released and nothing is cached.
 *
 * @param[out] out the segment; borrowed until the matching put (the
 *            loader owns it: never close it). Set only on success.
 * @return #SEGIDX_OK; the fetch's error, a host's own code or a positive
 *         one as #SEGIDX_EIO; #SEGIDX_ECORRUPT (0 without a buffer, or
 *         bytes that failed validation) or #SEGIDX_EVERSION;
 *         #SEGIDX_EINVAL; #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_loader_get(segidx_loader *l, const segidx_sid *sid,
                                 const segidx_segment **out);

/**
 * @brief Unpin a segment segidx_loader_get() returned (see there for the
 *        one rule of pins). Accepts NULL.
 *
 * The loader catches what it can of a broken rule: a put of a segment that
 * has no pin left, or that this loader does not hold, changes nothing and
 * is counted in segidx_loader_stats.bad_puts. A put that takes another
 * holder's pin while pins remain cannot be told from a right one.
 */
SEGIDX_API void segidx_loader_put(segidx_loader *l, const segidx_segment *s);

/**
 * @brief Free the loader, releasing every cached segment to the host.
 *        No segment may still be pinned (a pinned one is released anyway,
 *        and its pointer dangles). Accepts NULL.
 *
 * The loader allocates with malloc: its memory is O(cached segments).
 */
SEGIDX_API void segidx_loader_free(segidx_loader *l);

/** @brief What a loader has done, for tests and monitoring. */
typedef struct segidx_loader_stats {
    uint64_t hits;           /**< gets answered from the cache at first look */
    uint64_t misses;         /**< gets that missed at first look (some then
                                  found the segment after waiting) */
    uint64_t fetches;        /**< calls to fetch */
    uint64_t fetch_failures; /**< fetches that failed, or whose bytes failed
                                  validation */
    uint64_t evictions;      /**< segments released to make room */
    size_t cached_bytes;     /**< bytes of every segment held, pinned or not
                                  (a discarded one until its last put) */
    size_t pinned_bytes;     /**< of those, the ones pinned now */
    size_t cached_segments;  /**< segments held, counted as cached_bytes */
    uint64_t discards;       /**< segments dropped because a page failed its
                                  checksum in segidx_read_pages(); each is
                                  released at its last put, and the next get
                                  of its sid fetches afresh */
    uint64_t bad_puts;       /**< puts refused: no pin left to drop */
} segidx_loader_stats;

/** @brief A consistent snapshot of the loader's counters. */
SEGIDX_API void segidx_loader_stats_get(segidx_loader *l, segidx_loader_stats *out);

/* ------------------------------------------------------------ read path */

/** Brings `vid` of `vi` from `have` up to at least the LSN asked of
 *  segidx_volume_sync(), by committing what the primary has. */
typedef int (*segidx_pull_fn)(void *ctx, segidx_volume_index *vi, const segidx_vid *vid,
                              segidx_lsn have);

/**
 * @brief Bring a volume's catalog up to `lsn` from a remote one.
 *
 * If the volume's LSN is already >= lsn, returns at once. Otherwise takes
 * the volume's sync permit (one sync per volume at a time; different
 * volumes sync in parallel), checks again, and calls `pull`, which applies
 * the newer commits with segidx_volume_commit(). Concurrent syncs of one
 * volume thus call `pull` once: the others wait and find the LSN reached.
 *
 * @param[in] pull gets the LSN the index has (0 for an unknown volume);
 *            returns 0 or a negative `SEGIDX_E*`. It may call the library,
 *            sync other volumes included; syncing its own volume again
 *            returns #SEGIDX_EINVAL at once.
 * @return #SEGIDX_OK, #SEGIDX_EINVAL (also: called from this volume's own
 *         pull), #SEGIDX_ENOMEM, the store's error, pull's error (#SEGIDX_EIO
 *         for a return that is not a `SEGIDX_E*` code), or #SEGIDX_ERANGE if
 *         pull succeeded but the volume is still below `lsn`.
 */
SEGIDX_API int segidx_volume_sync(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                                  segidx_pull_fn pull, void *ctx);

/** Most offsets one segidx_read_pages() call takes (Graft's cap too). */
#define SEGIDX_READ_MAX_PAGES 1024u

/** Called by segidx_read_pages() with each offset: its page (borrowed for
 *  the call; NULL when never written) and the LSN of the commit that
 *  wrote it. */
typedef int (*segidx_page_fn)(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn);

/**
 * @brief Read pages of a volume as of `lsn`.
 *
 * Finds the segments with segidx_volume_find_segments(), loads each one
 * once through the loader and keeps it pinned for the whole call, looks
 * every offset up in its segment at its commit's LSN, and checks every page
 * found against its XXH3 checksum. Only then calls `fn`, once per offset,
 * in ascending offset order: with the page (pointing into the segment's
 * buffer, borrowed: valid during that call only, never to be freed or
 * written) and its LSN, or with page NULL and lsn 0 for an offset never
 * written up to `lsn` (a zero page).
 *
 * A page whose checksum fails makes the whole call #SEGIDX_ECORRUPT, with
 * no fn call, and the loader drops that segment (segidx_loader_stats.
 * discards): the next read that needs it fetches it again, so that good
 * bytes from the host heal it; reads of its other pages succeed as long as
 * those pages check. A page is hashed the first time a read hands it out
 * from a fetched copy and trusted for that copy afterwards, which is why
 * the host must not change a segment's bytes between fetch and release.
 *
 * @param[in] offsets at most #SEGIDX_READ_MAX_PAGES offsets; borrowed.
 * @return #SEGIDX_OK; #SEGIDX_EINVAL (NULL, or too many offsets);
 *         #SEGIDX_ENOTFOUND (unknown volume); #SEGIDX_ERANGE (lsn below the
 *         volume's prune point); #SEGIDX_ECORRUPT (a page failed its
 *         checksum, or a segment lacks a page the catalog names, or has it
 *         only at an older LSN: the index is out of sync); the loader's or
 *         the store's error; or fn's non-zero return, which stops the
 *         calls. No fn call happens on an error found before the first one.
 */
SEGIDX_API int segidx_read_pages(segidx_volume_index *vi, segidx_loader *l, const segidx_vid *vid,
                                 segidx_lsn lsn, const segidx_offset_set *offsets,
                                 segidx_page_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* SEGIDX_H */
