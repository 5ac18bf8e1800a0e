/**
 * @file segidx_lmdb.h
 * @brief libsegidx_lmdb: a segidx_kv over LMDB, in its own small library so
 *        that the core depends on no database.
 *
 * Link with `pkg-config --libs libsegidx_lmdb` (which brings libsegidx and,
 * for static links, liblmdb). The header needs nothing from LMDB's.
 *
 * A store is one LMDB environment (a directory holding `data.mdb` and
 * `lock.mdb`) with its unnamed database. Every `get` and `scan` runs in a
 * read transaction of its own (one consistent snapshot, readers never
 * block), every `write` in one write transaction: all or nothing, and
 * durable when it returns unless the store was opened with `nosync`.
 * The store is safe for concurrent use from any number of threads
 * (`MDB_NOTLS`: read transactions are not tied to threads); LMDB serializes
 * writers. Several processes may open the same directory; one process must
 * not open it twice at once (an LMDB rule: close the first store first).
 * Each `write` checks its #SEGIDX_KV_EXPECT ops inside its write
 * transaction, which LMDB gives to one process at a time: the check holds
 * across processes (vtable version 2).
 *
 * Copies: a raw copy of a live `data.mdb` is not a backup; use
 * segidx_kv_lmdb_backup().
 *
 * Error mapping, for every method:
 * - `MDB_MAP_FULL` (the map_size is used up) and `MDB_TXN_FULL` (one batch
 *   dirties too many pages) give #SEGIDX_EFULL; the batch is not applied.
 * - An allocation failure inside LMDB gives #SEGIDX_ENOMEM.
 * - Every other LMDB or system error gives #SEGIDX_EIO.
 * - Arguments outside the domain give #SEGIDX_EINVAL, before LMDB is
 *   called: an empty key or one longer than LMDB's limit (511 bytes in a
 *   default LMDB build), an unknown op code, NULL with a non-zero length
 *   (and from LMDB, `MDB_BAD_VALSIZE`: a value too large to store).
 *   Scan bounds may be of any length.
 * The LMDB message of the last failure stays available: see
 * segidx_kv_lmdb_last_error().
 *
 * Callbacks run inside the read transaction and get pointers into the
 * memory map: valid during the call only, never to be written through.
 * A callback should not write to the same store (LMDB allows it, but the
 * open read transaction keeps the pages it sees from being reused, and the
 * in-memory store would deadlock: keep the habit portable).
 */
#ifndef SEGIDX_LMDB_H
#define SEGIDX_LMDB_H

#include "segidx.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Map size when segidx_kv_lmdb_options::map_size is 0: 1 GiB. */
#define SEGIDX_KV_LMDB_DEFAULT_MAP_SIZE ((size_t)1 << 30)

/**
 * @brief Options for segidx_kv_lmdb_open(). Zero fields mean the defaults.
 *
 * Initialise with `segidx_kv_lmdb_options opts = {0};` and set what you
 * need, so that fields added later keep their defaults.
 */
typedef struct segidx_kv_lmdb_options {
    /** Most bytes the database may grow to (LMDB's map size; address space
     *  is reserved, disk is used as data grows); 0 = 1 GiB. LMDB rounds it
     *  up to whole pages, and an existing database larger than this keeps
     *  its own size. A store that is full answers #SEGIDX_EFULL: reopen it
     *  with a larger map_size. */
    size_t map_size;
    /** Skip the fsyncs at commit (`MDB_NOSYNC | MDB_NOMETASYNC`): for
     *  benchmarks and scratch data. A system crash may then lose the last
     *  batches, or on file systems that reorder writes, corrupt the
     *  database. A process crash loses nothing. */
    bool nosync;
    /** Most read transactions at once, over every process sharing the
     *  store (each get or scan in flight takes one, and each open store
     *  keeps up to 4 idle ones between calls, renewed rather than begun
     *  again); 0 = LMDB's default (126). More than that fail with
     *  #SEGIDX_EIO. */
    unsigned max_readers;
    /** If not NULL, receives the LMDB or errno code of a failed open (0
     *  when open succeeds); segidx_kv_lmdb_strerror() names it. The only
     *  field that is written. */
    int *open_error;
} segidx_kv_lmdb_options;

/**
 * @brief Open (creating if need be) the LMDB store in directory `path`.
 *
 * @param[in] path a directory; it and any missing parents are created
 *            (mode 0777 less the umask). The database files are created in
 *            it with mode 0664 less the umask.
 * @param[in] opts NULL for the defaults; read during the call only.
 * @param[out] out the store, set only on success; release it with
 *             `out->vt->close(out->self)`, which closes the environment.
 * @return #SEGIDX_OK; #SEGIDX_EINVAL for NULL `path` or `out`, or an empty
 *         path; #SEGIDX_ENOMEM; #SEGIDX_EIO when the directory cannot be
 *         made or is not a directory, or LMDB refuses the environment
 *         (opts->open_error says why).
 */
SEGIDX_API int segidx_kv_lmdb_open(const char *path, const segidx_kv_lmdb_options *opts,
                                   segidx_kv *out);

/**
 * @brief The LMDB message of the last LMDB call that failed on this store,
 *        e.g. "MDB_MAP_FULL: Environment mapsize limit reached".
 *
 * Only failures of LMDB itself are recorded (not #SEGIDX_EINVAL found
 * before calling it), and a later success does not clear one. The code is
 * kept per store in an atomic int: reading it is safe while other threads
 * use the store, but with several threads failing at once it is the last
 * of theirs, not necessarily this thread's.
 *
 * @param[in] kv a store opened by segidx_kv_lmdb_open().
 * @return a static string, never to be freed: LMDB's message, "Successful
 *         return: 0" when nothing failed yet, or NULL when `kv` is NULL or
 *         not an LMDB store.
 */
SEGIDX_API const char *segidx_kv_lmdb_last_error(const segidx_kv *kv);

/**
 * @brief Copy a live store to `dest`, consistently: the copy holds exactly
 *        the batches committed when it began, whatever writers in this or
 *        other processes do meanwhile.
 *
 * A raw copy of a live `data.mdb` (cp, rsync, a file-level snapshot taken
 * while a writer runs) is not a backup: it can hold torn pages, and a
 * reader of it can crash inside liblmdb. This uses LMDB's own copy
 * (`mdb_env_copyfd2`), which reads in one read transaction. It does not
 * compact: the copy is a page-for-page image of the pages in use, free
 * pages included (as large as the live `data.mdb`'s used part).
 *
 * The copy is written under a temporary name in `dest`, synced, and only
 * then named `dest/data.mdb` (the directory synced too), so a crash or a
 * failure part-way never leaves a `data.mdb` that looks like a backup; no
 * `lock.mdb` is copied (LMDB makes one when the copy is opened). Open the
 * copy with segidx_kv_lmdb_open(), or move the directory into place.
 *
 * Like any reader, the copy holds its snapshot until it ends, so a store
 * written to meanwhile grows instead of reusing the pages the copy still
 * reads. When this process has `path` open as a store, the copy goes
 * through that store's environment (LMDB forbids opening one twice in a
 * process), and that store's close waits for it; an LMDB failure is then
 * recorded for segidx_kv_lmdb_last_error() on that store (there is no
 * other place to read the message). Otherwise the copy opens `path`
 * read-only for its duration, and segidx_kv_lmdb_open() calls of this
 * process wait until it is done. Safe to call from any thread.
 *
 * @param[in] path the directory of a store (as given to
 *            segidx_kv_lmdb_open()); never written to.
 * @param[in] dest a directory; it and any missing parents are created
 *            (mode 0777 less the umask), the copy is created in it with
 *            mode 0664 less the umask.
 * @return #SEGIDX_OK; #SEGIDX_EINVAL for NULL or empty `path` or `dest`, or
 *         when `dest` already holds a `data.mdb` (a backup never replaces
 *         a store); #SEGIDX_ENOMEM; #SEGIDX_EIO when `path` is not a store
 *         (missing, not a directory, no data.mdb), `dest` cannot be made,
 *         or LMDB or the file system fail. On failure no `dest/data.mdb`
 *         is left behind (directories it made stay).
 */
SEGIDX_API int segidx_kv_lmdb_backup(const char *path, const char *dest);

/**
 * @brief LMDB's message for an LMDB or errno code (`mdb_strerror`), for
 *        segidx_kv_lmdb_options::open_error.
 * @return a string, never to be freed; for errno codes it comes from
 *         strerror().
 */
SEGIDX_API const char *segidx_kv_lmdb_strerror(int lmdb_error);

#ifdef __cplusplus
}
#endif

#endif /* SEGIDX_LMDB_H */
