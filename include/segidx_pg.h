/**
 * @file segidx_pg.h
 * @brief libsegidx_pg: a segidx_kv over a PostgreSQL-protocol server
 *        (PostgreSQL, CockroachDB, YugabyteDB), in its own small library so
 *        that the core depends on no database.
 *
 * Link with `pkg-config --libs libsegidx_pg` (which brings libsegidx and,
 * for static links, libpq). The header needs nothing from libpq's; the
 * library needs libpq 14 or later (pipeline mode).
 *
 * **The table.** A store is one table of two columns:
 *
 *     CREATE TABLE IF NOT EXISTS <table> (k bytea PRIMARY KEY, v bytea NOT NULL)
 *
 * created by segidx_kv_pg_open() when missing (unless
 * segidx_kv_pg_options::no_create), reused as it is when present. Keys
 * and values travel as binary parameters and binary results, never as
 * text. The key order of the vtable (memcmp, a shorter key before every
 * longer key it prefixes) is bytea's own order in PostgreSQL and BYTES'
 * in CockroachDB, and a COLLATE has no say over bytea; the store checks
 * every key a scan hands back against the order and the range it asked
 * for, so a server that orders keys otherwise costs #SEGIDX_ECORRUPT,
 * never a wrong or endless scan.
 *
 * **What a server must provide:** the statements below, an ordered index
 * on `k` (the primary key) so that a range is a range scan, `READ
 * COMMITTED` row locks (`SELECT ... FOR UPDATE`) and unique-key checks that
 * wait for the transaction holding the key, or a stricter isolation that
 * reports what it cannot order as SQLSTATE 40001 or 40P01.
 * - PostgreSQL 10 or later: nothing more.
 * - CockroachDB: runs every transaction SERIALIZABLE unless READ COMMITTED
 *   is enabled on the cluster; either is fine. Its restart errors
 *   (40001) are retried (segidx_kv_pg_options::max_attempts).
 * - YugabyteDB: its first primary-key column is HASH-sharded by default,
 *   where every range is a full scan. A table this store creates there says
 *   `PRIMARY KEY (k ASC)` (the server is recognised by the "-YB-" in its
 *   server_version; PostgreSQL itself does not take ASC in a table's
 *   PRIMARY KEY, and CockroachDB's primary keys are ascending ranges
 *   already). Create the table yourself the same way if you create it.
 *
 * **Isolation relied on.** A get is one statement. A scan is one
 * `REPEATABLE READ, READ ONLY` transaction (one snapshot, whatever its
 * length) read in keyset pages: `ORDER BY k [DESC] LIMIT n`, the next page
 * from the last key, pages growing from 16 rows to 1024, so a callback that
 * stops early stops the transfer within one page. A write is one `READ
 * COMMITTED` transaction sent in one round trip (libpq's pipeline mode):
 * - an EXPECT of a value locks the key's row (`SELECT ... FOR UPDATE`, in
 *   key order) and then compares, inside the transaction, every expected
 *   value with the locked row's; a mismatch raises an error on the server,
 *   which aborts the transaction and skips the rest of the pipeline;
 * - an EXPECT of absence INSERTs the key (no ON CONFLICT): if the key is
 *   there the INSERT fails with a unique violation; if another transaction
 *   is inserting it, the INSERT waits for that transaction and then fails
 *   or succeeds. Either way no two writers both find a key absent and both
 *   commit, and the key stays absent for everyone else until the batch
 *   commits. (A plain SELECT would let two writers see "absent" at once.)
 *   The inserted row then takes the batch's last PUT of the key, or is
 *   deleted again in the same transaction.
 * - the PUTs (the last one per key: later operations on a key win) are
 *   one `INSERT ... ON CONFLICT (k) DO UPDATE` and the DELs one `DELETE`,
 *   keys in order, then `COMMIT`.
 * Durable when it returns as the server's commits are (fsync and
 * synchronous_commit on, the defaults).
 *
 * **Threads and processes.** Safe for concurrent use from any number of
 * threads (unless libsegidx_pg was built with `SEGIDX_SINGLE_THREADED=1`):
 * the store keeps a pool of up to segidx_kv_pg_options::max_connections
 * connections, connected when first needed; a call takes one for its
 * length and waits when all are busy. Any number of stores, processes and
 * hosts may share one table: every check holds across them (vtable
 * version 2). libpq connections must not cross fork(): a child opens a
 * store of its own. A store used in a process other than the one that
 * opened it answers #SEGIDX_EINVAL; closing it there frees its memory
 * without ending the sessions, which stay the parent's.
 *
 * **Server gone.** A call whose connection fails answers #SEGIDX_EIO; the
 * next call connects again (idle connections that heard from the server
 * while idle, as a shut-down server's do, are replaced before use). A get,
 * or a scan before its first visit, is retried once on a new connection
 * when a pooled one turns out dead. A write is never sent twice after its
 * connection failed: whether it committed is then unknown, and
 * #SEGIDX_EIO says so (read to find out).
 *
 * Error mapping, for every method:
 * - A failed EXPECT gives #SEGIDX_ECONFLICT, nothing applied. So does a
 *   batch whose transaction met a serialization failure or deadlock
 *   (40001, 40P01) on each of its max_attempts tries: nothing applied
 *   either, and the volume index, which retries ECONFLICT by reading the
 *   meta again, treats both alike. Reads retry the same way and then give
 *   #SEGIDX_EIO; a scan that has visited keys is never retried.
 * - A full disk on the server (SQLSTATE 53100) gives #SEGIDX_EFULL; the
 *   server out of memory (53200) #SEGIDX_ENOMEM.
 * - A key the server's index cannot hold (class 54, program limits: about
 *   2700 bytes in a PostgreSQL btree) gives #SEGIDX_EINVAL, nothing applied.
 * - A result of the wrong shape (columns, types, formats, lengths, a key
 *   outside the range or order asked for) gives #SEGIDX_ECORRUPT.
 * - An allocation failure of this library gives #SEGIDX_ENOMEM.
 * - Every other libpq or server error (no connection, lost connection,
 *   permissions, a table of another shape) gives #SEGIDX_EIO.
 * - Arguments outside the domain give #SEGIDX_EINVAL before anything is
 *   sent: an empty key, an unknown op code, NULL with a non-zero length.
 *   Scan bounds may be of any length.
 * The message of the last failure stays available: see
 * segidx_kv_pg_last_error().
 *
 * Callbacks run with a connection (and for a scan, its transaction) held
 * and get pointers into libpq's result: valid during the call only. A
 * get, scan or write of the same store from one of its own visit callbacks
 * answers #SEGIDX_EINVAL (it could wait forever for a connection).
 */
#ifndef SEGIDX_PG_H
#define SEGIDX_PG_H

#include "segidx.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The table when segidx_kv_pg_options::table is NULL. */
#define SEGIDX_KV_PG_DEFAULT_TABLE "segidx_kv"
/** Connections when segidx_kv_pg_options::max_connections is 0. */
#define SEGIDX_KV_PG_DEFAULT_CONNECTIONS 4u
/** Tries when segidx_kv_pg_options::max_attempts is 0. */
#define SEGIDX_KV_PG_DEFAULT_ATTEMPTS 10u

/**
 * @brief Options for segidx_kv_pg_open(). Zero fields mean the defaults.
 *
 * Initialise with `segidx_kv_pg_options opts = {0};` and set what you
 * need, so that fields added later keep their defaults.
 */
typedef struct segidx_kv_pg_options {
    /** The table: `name` or `schema.name`, each part 1 to 63 of lowercase
     *  ASCII letters, digits and `_`, not starting with a digit (the names
     *  PostgreSQL needs no quotes for); NULL = #SEGIDX_KV_PG_DEFAULT_TABLE. */
    const char *table;
    /** Most connections the store opens to the server at once;
     *  0 = #SEGIDX_KV_PG_DEFAULT_CONNECTIONS. Threads beyond it wait. */
    unsigned max_connections;
    /** Tries of one call whose transaction meets a serialization failure or
     *  deadlock (40001, 40P01), with a randomized backoff between tries
     *  that doubles from 1 ms up to 100 ms; 0 = #SEGIDX_KV_PG_DEFAULT_ATTEMPTS,
     *  1 = no retry. */
    unsigned max_attempts;
    /** Do not create the table: a missing one is #SEGIDX_ENOTFOUND. */
    bool no_create;
    /** If not NULL, receives the message of a failed open (libpq's or the
     *  server's, with its SQLSTATE), NUL-terminated and cut to
     *  `open_error_cap` bytes; an empty string when open succeeds. The only
     *  field that is written. */
    char *open_error;
    size_t open_error_cap;
} segidx_kv_pg_options;

/**
 * @brief Connect to a server and open (creating if need be) a store's table.
 *
 * @param[in] conninfo a libpq connection string or URI ("host=... dbname=..."
 *            or "postgresql://..."), as for PQconnectdb(); "" takes libpq's
 *            defaults and environment (PGHOST, PGDATABASE, ...). Copied.
 * @param[in] opts NULL for the defaults; read during the call only.
 * @param[out] out the store, set only on success; release it with
 *             `out->vt->close(out->self)`, which closes its connections.
 * @return #SEGIDX_OK; #SEGIDX_EINVAL for NULL `conninfo` or `out`, a table
 *         name outside the rules, or an existing table whose columns `k`
 *         and `v` are not bytea; #SEGIDX_ENOTFOUND for a missing table with
 *         `no_create`; #SEGIDX_ENOMEM; #SEGIDX_EIO when the server cannot
 *         be reached or refuses (opts->open_error says why).
 */
SEGIDX_API int segidx_kv_pg_open(const char *conninfo, const segidx_kv_pg_options *opts,
                                 segidx_kv *out);

/**
 * @brief The message of the last failure on this store: libpq's or the
 *        server's, prefixed with the SQLSTATE when there is one, e.g.
 *        "53100: could not extend file ...".
 *
 * Only failures of libpq or the server are recorded (not #SEGIDX_EINVAL
 * found before sending, nor an EXPECT that failed), and a later success
 * does not clear one. With several threads failing at once it is the last
 * of theirs, not necessarily this thread's.
 *
 * @param[in] kv a store opened by segidx_kv_pg_open().
 * @param[out] buf receives the message, NUL-terminated, cut to `cap` bytes
 *             ("" when nothing failed yet); may be NULL when `cap` is 0.
 * @return the message's full length (as snprintf), or 0 when `kv` is NULL
 *         or not a PostgreSQL store (then `buf` gets "" if cap > 0).
 */
SEGIDX_API size_t segidx_kv_pg_last_error(const segidx_kv *kv, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SEGIDX_PG_H */
