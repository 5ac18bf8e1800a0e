/* libsegidx_lmdb: the segidx_kv vtable over one LMDB environment.
 *
 * This library uses only the types of segidx.h: nothing of libsegidx is
 * called, so it links against liblmdb alone and allocates with malloc
 * (LMDB does the same).
 *
 * Each method is one LMDB transaction: get and scan a read-only one (a
 * snapshot; with MDB_NOTLS the slot belongs to the transaction, not the
 * thread, so any thread may run any number of them), write one write
 * transaction, committed or aborted as a whole. A batch's EXPECTs are
 * read in that write transaction before any change: LMDB lets one write
 * transaction run at a time over every process that opens the
 * environment, so nothing can land between the check and the change.
 *
 * Backups copy with LMDB's own copy, which reads in one read transaction
 * (a snapshot) and so never sees a page half written. It needs an open
 * environment, and LMDB forbids opening one twice in a process: closing
 * the second would drop the POSIX locks the first holds on lock.mdb (they
 * belong to the process, not to the descriptor), and then other processes
 * take its readers for dead. Hence the stores a process has open are
 * listed here (the only state outside a store), and a backup of one of
 * them copies through its environment.
 */
#include "segidx_lmdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lmdb.h>

/* ------------------------------------------------------------ threads
 *
 * The library stands on segidx.h alone, so it has its own few wrappers
 * rather than the core's sync.h; they vanish in a single-threaded build,
 * where nothing ever waits (a backup and a close never overlap there). */

#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
typedef struct lk_mutex { int unused; } lk_mutex;
typedef struct lk_cond { int unused; } lk_cond;
typedef struct lk_atomic_int { int v; } lk_atomic_int;
#define LK_MUTEX_INITIALIZER { 0 }
#define LK_COND_INITIALIZER { 0 }
static int lk_mutex_init(lk_mutex *m) { (void)m; return 0; }
static void lk_mutex_destroy(lk_mutex *m) { (void)m; }
static void lk_lock(lk_mutex *m) { (void)m; }
static void lk_unlock(lk_mutex *m) { (void)m; }
static void lk_cond_wait(lk_cond *c, lk_mutex *m) { (void)c; (void)m; }
static void lk_cond_broadcast(lk_cond *c) { (void)c; }
static void lk_atomic_store(lk_atomic_int *a, int v) { a->v = v; }
static int lk_atomic_load(const lk_atomic_int *a) { return a->v; }
typedef struct lk_seq { unsigned v; } lk_seq;
static unsigned lk_seq_read(lk_seq *q) { return q->v; }
static unsigned lk_seq_reread(lk_seq *q) { return q->v; }
static void lk_seq_bump(lk_seq *q) { q->v++; }
#else
#include <pthread.h>
#include <stdatomic.h>
typedef struct lk_mutex { pthread_mutex_t m; } lk_mutex;
typedef struct lk_cond { pthread_cond_t c; } lk_cond;
/* Relaxed: the last error code is read for information only. */
typedef struct lk_atomic_int { atomic_int v; } lk_atomic_int;
#define LK_MUTEX_INITIALIZER { PTHREAD_MUTEX_INITIALIZER }
#define LK_COND_INITIALIZER { PTHREAD_COND_INITIALIZER }
static int lk_mutex_init(lk_mutex *m) { return pthread_mutex_init(&m->m, NULL); }
static void lk_mutex_destroy(lk_mutex *m) { pthread_mutex_destroy(&m->m); }
static void lk_lock(lk_mutex *m) { pthread_mutex_lock(&m->m); }
static void lk_unlock(lk_mutex *m) { pthread_mutex_unlock(&m->m); }
static void lk_cond_wait(lk_cond *c, lk_mutex *m) { pthread_cond_wait(&c->c, &m->m); }
static void lk_cond_broadcast(lk_cond *c) { pthread_cond_broadcast(&c->c); }
static void lk_atomic_store(lk_atomic_int *a, int v)
{
    atomic_store_explicit(&a->v, v, memory_order_relaxed);
}
static int lk_atomic_load(const lk_atomic_int *a)
{
    return atomic_load_explicit(&((lk_atomic_int *)a)->v, memory_order_relaxed);
}
/* A sequence count read around a span of reads, seqlock fashion: the
 * first read before the span, the reread after it. The reread and the
 * bump are read-modify-writes, full barriers: the span's loads cannot
 * pass the reread, nor a commit's writes the bump before it. */
typedef struct lk_seq { atomic_uint v; } lk_seq;
static unsigned lk_seq_read(lk_seq *q) { return atomic_load(&q->v); }
static unsigned lk_seq_reread(lk_seq *q) { return atomic_fetch_add(&q->v, 0); }
static void lk_seq_bump(lk_seq *q) { atomic_fetch_add(&q->v, 1); }
#endif

/* A read transaction and its cursor (NULL until a scan needs one). */
typedef struct reader {
    MDB_txn *txn;
    MDB_cursor *cursor;
} reader;

/* Read transactions kept reset between calls, per store: renewing one
 * costs no allocation and no pass over the shared reader table, which a
 * read that resolves a thousand LSNs would otherwise pay a thousand times.
 * Each keeps its reader slot (see segidx_kv_lmdb_options::max_readers). */
#define IDLE_READERS 4

typedef struct lmdb_kv {
    MDB_env *env;
    MDB_dbi dbi;
    lk_mutex readers_lock;
    /* Commits of this store (see read_snapshot): odd while one runs;
     * commit_lock is held through each, for a reader that must wait. */
    lk_seq commits;
    lk_mutex commit_lock;
    reader idle[IDLE_READERS];
    unsigned n_idle;
    size_t max_key;             /* longest key LMDB takes */
    lk_atomic_int last_rc; /* the last LMDB code that was an error */
    /* Its place in the list of open stores (all under open_stores_lock). */
    dev_t dev;                  /* the directory's device and inode */
    ino_t ino;
    pid_t pid;                  /* the process that opened it */
    unsigned backups;           /* backups copying through env right now */
    struct lmdb_kv *next;
} lmdb_kv;

/* The stores this process has open (see the top of the file). The lock is
 * also held while a backup opens, uses and closes an environment of its
 * own, so that no store of this process opens the same one meanwhile. */
static lk_mutex open_stores_lock = LK_MUTEX_INITIALIZER;
static lk_cond backup_done = LK_COND_INITIALIZER;
static lmdb_kv *open_stores;

static const segidx_kv_vtable lmdb_vtable;

/* ------------------------------------------------------------ errors */

static int map_error(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return SEGIDX_OK;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        return SEGIDX_EFULL;
    case MDB_BAD_VALSIZE:
        return SEGIDX_EINVAL;
    case ENOMEM:
        return SEGIDX_ENOMEM;
    default:
        return SEGIDX_EIO;
    }
}

/* Remember a failed LMDB call's code for segidx_kv_lmdb_last_error(), and
 * translate it. */
static int fail(lmdb_kv *kv, int rc)
{
    lk_atomic_store(&kv->last_rc, rc);
    return map_error(rc);
}

/* ------------------------------------------------------------ keys */

/* The store's order (LMDB's default too): memcmp, a key that prefixes
 * another sorting first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

static int val_cmp(const MDB_val *v, const void *b, size_t blen)
{
    return key_cmp(v->mv_data, v->mv_size, b, blen);
}

/* ------------------------------------------------------------ readers */

static void reader_free(reader *r)
{
    if (r->cursor)
        mdb_cursor_close(r->cursor);
    if (r->txn)
        mdb_txn_abort(r->txn);
    *r = (reader){ NULL, NULL };
}

/* Take a snapshot into r->txn: renew it if it is set, else begin one.
 *
 * LMDB (0.9.24) starts a read by loading the last transaction id N and then
 * copying the roots from meta page N & 1, without checking that the page
 * still holds N. A reader delayed between the two while commit N+1 ends
 * and commit N+2 writes that page gets N+2's roots, before N+2 is
 * published: its next read, which loads N+1, then goes back in time (the
 * conformance suite's concurrent rule saw it under load). Hence commits of
 * this store are counted, odd while one runs, and a snapshot taken while a
 * whole commit began and ended besides the one that may have been running
 * is taken again; after a few tries, under commit_lock, where no commit of
 * this process runs. Commits by other processes are not seen here. */
static int read_snapshot(lmdb_kv *kv, reader *r)
{
    for (int tries = 0;; tries++) {
        bool locked = tries == 8;
        if (locked)
            lk_lock(&kv->commit_lock);
        unsigned before = lk_seq_read(&kv->commits);
        int rc = r->txn ? mdb_txn_renew(r->txn) : MDB_SUCCESS;
        if (rc)
            reader_free(r);
        if (!r->txn && (rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &r->txn)))
            r->txn = NULL;
        unsigned after = lk_seq_reread(&kv->commits);
        if (locked)
            lk_unlock(&kv->commit_lock);
        /* Safe unless meta page N & 1 may have been rewritten: a commit
         * ended and another began after the one running at `before`. */
        if (rc || after - (before | 1u) <= 1u || locked)
            return rc;
        mdb_txn_reset(r->txn);
    }
}

/* Start a read: an idle transaction renewed, or a new one; with a cursor
 * when `cursor`. Returns an LMDB code; on failure *r holds nothing. */
static int read_begin(lmdb_kv *kv, reader *r, bool cursor)
{
    *r = (reader){ NULL, NULL };
    lk_lock(&kv->readers_lock);
    if (kv->n_idle)
        *r = kv->idle[--kv->n_idle];
    lk_unlock(&kv->readers_lock);
    int rc = read_snapshot(kv, r);
    if (!rc && cursor)
        rc = r->cursor ? mdb_cursor_renew(r->txn, r->cursor)
                       : mdb_cursor_open(r->txn, kv->dbi, &r->cursor);
    if (rc)
        reader_free(r);
    return rc;
}

/* End a read: its snapshot released, the transaction kept idle if there
 * is room. */
static void read_end(lmdb_kv *kv, reader *r)
{
    mdb_txn_reset(r->txn);
    lk_lock(&kv->readers_lock);
    if (kv->n_idle < IDLE_READERS) {
        kv->idle[kv->n_idle++] = *r;
        *r = (reader){ NULL, NULL };
    }
    lk_unlock(&kv->readers_lock);
    reader_free(r);
}

/* A key LMDB can store: 1 to max_key bytes. */
static bool key_valid(const lmdb_kv *kv, const void *key, size_t klen)
{
    return key && klen > 0 && klen <= kv->max_key;
}

/* ------------------------------------------------------------ methods */

static int lmdb_get(void *self, const void *key, size_t klen, segidx_kv_visit_fn fn, void *ctx)
{
    lmdb_kv *kv = self;
    if (!kv || !fn || !key_valid(kv, key, klen))
        return SEGIDX_EINVAL;
    reader r;
    int rc = read_begin(kv, &r, false);
    if (rc)
        return fail(kv, rc);
    MDB_val k = { klen, (void *)key }, v;
    rc = mdb_get(r.txn, kv->dbi, &k, &v);
    if (rc == MDB_SUCCESS)
        rc = fn(ctx, key, klen, v.mv_data, v.mv_size);
    else if (rc == MDB_NOTFOUND)
        rc = SEGIDX_ENOTFOUND;
    else
        rc = fail(kv, rc);
    read_end(kv, &r);
    return rc;
}

/* Put the cursor on the first key >= lo (empty: the first key). A bound
 * longer than any storable key is cut to max_key bytes for the seek, which
 * lands at most one key early (the cut bound itself), so step on while the
 * key is below lo. */
static int seek_forward(const lmdb_kv *kv, MDB_cursor *c, const void *lo, size_t lolen,
                        MDB_val *k, MDB_val *v)
{
    if (lolen == 0)
        return mdb_cursor_get(c, k, v, MDB_FIRST);
    k->mv_size = lolen < kv->max_key ? lolen : kv->max_key;
    k->mv_data = (void *)lo;
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    while (rc == MDB_SUCCESS && val_cmp(k, lo, lolen) < 0)
        rc = mdb_cursor_get(c, k, v, MDB_NEXT);
    return rc;
}

/* Put the cursor on the last key < hi (empty: the last key): one past it
 * with MDB_SET_RANGE, or at the end when every key is smaller, then back.
 * With hi cut to max_key bytes (h) the seek may land on h itself, which is
 * < hi; no key after h can be < hi (it would have to extend h past the
 * longest key), so stepping back while >= hi finds the right key. */
static int seek_reverse(const lmdb_kv *kv, MDB_cursor *c, const void *hi, size_t hilen,
                        MDB_val *k, MDB_val *v)
{
    if (hilen == 0)
        return mdb_cursor_get(c, k, v, MDB_LAST);
    k->mv_size = hilen < kv->max_key ? hilen : kv->max_key;
    k->mv_data = (void *)hi;
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, k, v, MDB_LAST);
    while (rc == MDB_SUCCESS && val_cmp(k, hi, hilen) >= 0)
        rc = mdb_cursor_get(c, k, v, MDB_PREV);
    return rc;
}

static int lmdb_scan(void *self, const void *lo, size_t lolen, const void *hi, size_t hilen,
                     bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    lmdb_kv *kv = self;
    if (!kv || !fn || (!lo && lolen) || (!hi && hilen))
        return SEGIDX_EINVAL;
    if (lolen && hilen && key_cmp(lo, lolen, hi, hilen) >= 0)
        return SEGIDX_OK; /* [lo, hi) is empty */
    reader r;
    int rc = read_begin(kv, &r, true);
    if (rc)
        return fail(kv, rc);
    MDB_cursor *c = r.cursor;
    MDB_val k, v;
    MDB_cursor_op step = reverse ? MDB_PREV : MDB_NEXT;
    rc = reverse ? seek_reverse(kv, c, hi, hilen, &k, &v)
                 : seek_forward(kv, c, lo, lolen, &k, &v);
    int result = SEGIDX_OK;
    while (rc == MDB_SUCCESS) {
        if (reverse ? lolen && val_cmp(&k, lo, lolen) < 0
                    : hilen && val_cmp(&k, hi, hilen) >= 0)
            break;
        result = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (result)
            break;
        rc = mdb_cursor_get(c, &k, &v, step);
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        result = fail(kv, rc);
    read_end(kv, &r);
    return result;
}

static bool op_valid(const lmdb_kv *kv, const segidx_kv_op *op)
{
    if (op->op != SEGIDX_KV_PUT && op->op != SEGIDX_KV_DEL && op->op != SEGIDX_KV_EXPECT)
        return false;
    if (!key_valid(kv, op->key, op->klen))
        return false;
    return op->op == SEGIDX_KV_DEL || op->val || op->vlen == 0;
}

/* Whether every EXPECT of the batch holds in `txn`, read before the batch
 * changes anything (an EXPECT after a PUT of its key sees the old value):
 * SEGIDX_OK, SEGIDX_ECONFLICT, or the error of a failed read. */
static int check_expects(lmdb_kv *kv, MDB_txn *txn, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].op != SEGIDX_KV_EXPECT)
            continue;
        MDB_val k = { ops[i].klen, (void *)ops[i].key }, v;
        int rc = mdb_get(txn, kv->dbi, &k, &v);
        if (rc == MDB_NOTFOUND) {
            if (ops[i].val)
                return SEGIDX_ECONFLICT;
            continue;
        }
        if (rc)
            return fail(kv, rc);
        if (!ops[i].val || v.mv_size != ops[i].vlen ||
            (ops[i].vlen && memcmp(v.mv_data, ops[i].val, ops[i].vlen) != 0))
            return SEGIDX_ECONFLICT;
    }
    return SEGIDX_OK;
}

/* Whether a batch changes anything, or only states conditions. */
static bool batch_changes(const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].op != SEGIDX_KV_EXPECT)
            return true;
    return false;
}

static int lmdb_write(void *self, const segidx_kv_op *ops, size_t n)
{
    lmdb_kv *kv = self;
    if (!kv || (!ops && n))
        return SEGIDX_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!op_valid(kv, &ops[i]))
            return SEGIDX_EINVAL;
    if (n == 0)
        return SEGIDX_OK;

    MDB_txn *txn;
    int rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
    if (rc)
        return fail(kv, rc);
    int checked = check_expects(kv, txn, ops, n);
    if (checked || !batch_changes(ops, n)) {
        mdb_txn_abort(txn); /* nothing to commit: no sync either */
        return checked;
    }
    static const char none[1] = { 0 }; /* an empty value's address: never NULL */
    for (size_t i = 0; i < n && rc == MDB_SUCCESS; i++) {
        MDB_val k = { ops[i].klen, (void *)ops[i].key };
        if (ops[i].op == SEGIDX_KV_PUT) {
            MDB_val v = { ops[i].vlen, (void *)(ops[i].vlen ? ops[i].val : none) };
            rc = mdb_put(txn, kv->dbi, &k, &v, 0);
        } else if (ops[i].op == SEGIDX_KV_DEL) {
            rc = mdb_del(txn, kv->dbi, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = MDB_SUCCESS; /* removing a missing key is not an error */
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return fail(kv, rc);
    }
    lk_lock(&kv->commit_lock);
    lk_seq_bump(&kv->commits); /* odd: see read_snapshot */
    rc = mdb_txn_commit(txn);  /* frees txn, committed or not */
    lk_seq_bump(&kv->commits);
    lk_unlock(&kv->commit_lock);
    return rc ? fail(kv, rc) : SEGIDX_OK;
}

static void lmdb_close(void *self)
{
    lmdb_kv *kv = self;
    if (!kv)
        return;
    lk_lock(&open_stores_lock);
    for (lmdb_kv **p = &open_stores; *p; p = &(*p)->next) {
        if (*p == kv) {
            *p = kv->next;
            break;
        }
    }
    while (kv->backups) /* copying through env: wait for them to finish */
        lk_cond_wait(&backup_done, &open_stores_lock);
    lk_unlock(&open_stores_lock);
    while (kv->n_idle)
        reader_free(&kv->idle[--kv->n_idle]);
    lk_mutex_destroy(&kv->readers_lock);
    lk_mutex_destroy(&kv->commit_lock);
    mdb_env_close(kv->env);
    free(kv);
}

static const segidx_kv_vtable lmdb_vtable = {
    SEGIDX_KV_VTABLE_VERSION, lmdb_get, lmdb_scan, lmdb_write, lmdb_close,
};

/* ------------------------------------------------------------ open */

/* mkdir -p: 0 when `path` is (now) a directory, else an errno code. */
static int make_dirs(const char *path)
{
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p)
        return ENOMEM;
    memcpy(p, path, n + 1);
    struct stat st;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        if (p[i - 1] == '/')
            continue; /* "a//b", "a/" */
        char saved = p[i];
        p[i] = '\0';
        /* mkdir only what is missing: an existing parent we may not write
         * to would otherwise answer EACCES rather than EEXIST. */
        if (stat(p, &st) != 0 && mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return e;
        }
        p[i] = saved;
    }
    free(p);
    if (stat(path, &st) != 0)
        return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* The environment and its unnamed database; *lmdb_rc says why on failure. */
static int env_open(lmdb_kv *kv, const char *path, const segidx_kv_lmdb_options *opts,
                    int *lmdb_rc)
{
    size_t map_size = opts && opts->map_size ? opts->map_size
                                             : SEGIDX_KV_LMDB_DEFAULT_MAP_SIZE;
    unsigned flags = MDB_NOTLS;
    if (opts && opts->nosync)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;

    int rc = mdb_env_create(&kv->env);
    if (rc) {
        kv->env = NULL;
        *lmdb_rc = rc;
        return map_error(rc);
    }
    rc = mdb_env_set_mapsize(kv->env, map_size);
    if (!rc && opts && opts->max_readers)
        rc = mdb_env_set_maxreaders(kv->env, opts->max_readers);
    if (!rc)
        rc = mdb_env_open(kv->env, path, flags, 0664);
    if (!rc) {
        /* Free the slots of readers that died without closing (a crashed
         * process): they would pin old pages forever. */
        int dead;
        mdb_reader_check(kv->env, &dead);
        MDB_txn *txn;
        rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn);
        if (!rc) {
            rc = mdb_dbi_open(txn, NULL, 0, &kv->dbi);
            if (rc)
                mdb_txn_abort(txn);
            else
                rc = mdb_txn_commit(txn); /* keeps the handle for the env */
        }
    }
    if (rc) {
        mdb_env_close(kv->env); /* required after a failed mdb_env_open too */
        kv->env = NULL;
        *lmdb_rc = rc;
        return map_error(rc) == SEGIDX_ENOMEM ? SEGIDX_ENOMEM : SEGIDX_EIO;
    }
    kv->max_key = (size_t)mdb_env_get_maxkeysize(kv->env);
    return SEGIDX_OK;
}

int segidx_kv_lmdb_open(const char *path, const segidx_kv_lmdb_options *opts, segidx_kv *out)
{
    int ignored;
    int *lmdb_rc = opts && opts->open_error ? opts->open_error : &ignored;
    *lmdb_rc = 0;
    if (!path || !*path || !out)
        return SEGIDX_EINVAL;

    int e = make_dirs(path);
    if (e) {
        *lmdb_rc = e;
        return e == ENOMEM ? SEGIDX_ENOMEM : SEGIDX_EIO;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        *lmdb_rc = errno;
        return SEGIDX_EIO;
    }
    lmdb_kv *kv = malloc(sizeof *kv);
    if (kv && lk_mutex_init(&kv->readers_lock)) {
        free(kv);
        kv = NULL;
    }
    if (kv && lk_mutex_init(&kv->commit_lock)) {
        lk_mutex_destroy(&kv->readers_lock);
        free(kv);
        kv = NULL;
    }
    if (!kv) {
        *lmdb_rc = ENOMEM;
        return SEGIDX_ENOMEM;
    }
    kv->n_idle = 0;
    kv->commits = (lk_seq){ 0 };
    lk_lock(&open_stores_lock);
    int rc = env_open(kv, path, opts, lmdb_rc);
    if (rc) {
        lk_unlock(&open_stores_lock);
        lk_mutex_destroy(&kv->readers_lock);
        lk_mutex_destroy(&kv->commit_lock);
        free(kv);
        return rc;
    }
    kv->dev = st.st_dev;
    kv->ino = st.st_ino;
    kv->pid = getpid();
    kv->backups = 0;
    kv->next = open_stores;
    open_stores = kv;
    lk_unlock(&open_stores_lock);
    lk_atomic_store(&kv->last_rc, MDB_SUCCESS);
    out->vt = &lmdb_vtable;
    out->self = kv;
    return SEGIDX_OK;
}

const char *segidx_kv_lmdb_last_error(const segidx_kv *kv)
{
    if (!kv || kv->vt != &lmdb_vtable || !kv->self)
        return NULL;
    const lmdb_kv *l = kv->self;
    return mdb_strerror(lk_atomic_load(&l->last_rc));
}

const char *segidx_kv_lmdb_strerror(int lmdb_error)
{
    return mdb_strerror(lmdb_error);
}

/* ------------------------------------------------------------ backup */

/* "dir/name", malloc'd; NULL when out of memory. */
static char *path_join(const char *dir, const char *name)
{
    size_t d = strlen(dir), n = strlen(name);
    char *p = malloc(d + 1 + n + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, d);
    p[d] = '/';
    memcpy(p + d + 1, name, n + 1);
    return p;
}

static int errno_error(int e)
{
    return e == ENOMEM ? SEGIDX_ENOMEM : SEGIDX_EIO;
}

/* The copy of `env`, written to `fd`: LMDB's copy without compaction (a
 * plain page copy, LMDB's simplest and most used path: free pages stay
 * free in the copy). 0 or an LMDB or errno code. */
static int copy_env(MDB_env *env, int fd)
{
    int rc = mdb_env_copyfd2(env, fd, 0);
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    return rc;
}

/* Copy the environment at `path` to `fd`: through the store of this
 * process that has it open, or else an environment of its own, read-only
 * (a backup never creates or changes its source). 0 or an LMDB or errno
 * code. */
static int copy_path(const char *path, const struct stat *st, int fd)
{
    lk_lock(&open_stores_lock);
    lmdb_kv *kv = open_stores;
    pid_t me = getpid();
    while (kv && !(kv->dev == st->st_dev && kv->ino == st->st_ino && kv->pid == me))
        kv = kv->next;
    if (kv) {
        kv->backups++;
        lk_unlock(&open_stores_lock);
        int rc = copy_env(kv->env, fd);
        if (rc)
            lk_atomic_store(&kv->last_rc, rc);
        lk_lock(&open_stores_lock);
        kv->backups--;
        lk_cond_broadcast(&backup_done);
        lk_unlock(&open_stores_lock);
        return rc;
    }
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc == 0) {
        rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS, 0664);
        if (rc == 0)
            rc = copy_env(env, fd);
        mdb_env_close(env); /* also after a failed open */
    }
    lk_unlock(&open_stores_lock);
    return rc;
}

/* Give the finished copy its name, never replacing one that appeared
 * meanwhile (link fails on an existing name; rename, for file systems
 * without links, is checked first), and make the name durable. 0, EEXIST
 * or another errno code. */
static int publish(const char *tmp, const char *final, const char *dest)
{
    if (link(tmp, final) != 0) {
        int e = errno;
        if (e == EEXIST)
            return e;
        struct stat st;
        if (e != EPERM && e != ENOTSUP && e != ENOSYS && e != EMLINK)
            return e;
        if (lstat(final, &st) == 0)
            return EEXIST;
        if (rename(tmp, final) != 0)
            return errno;
    } else {
        unlink(tmp);
    }
    int dfd = open(dest, O_RDONLY | O_DIRECTORY);
    int rc = dfd >= 0 && fsync(dfd) == 0 ? 0 : errno;
    if (dfd >= 0)
        close(dfd);
    if (rc)
        unlink(final); /* a failed call leaves no backup behind */
    return rc;
}

int segidx_kv_lmdb_backup(const char *path, const char *dest)
{
    if (!path || !*path || !dest || !*dest)
        return SEGIDX_EINVAL;
    struct stat src;
    if (stat(path, &src) != 0)
        return errno_error(errno);
    if (!S_ISDIR(src.st_mode))
        return SEGIDX_EIO;
    int e = make_dirs(dest);
    if (e)
        return errno_error(e);
    char *final = path_join(dest, "data.mdb");
    char *tmp = final ? malloc(strlen(final) + 48) : NULL;
    if (!tmp) {
        free(final);
        return SEGIDX_ENOMEM;
    }
    struct stat st;
    int rc = SEGIDX_OK;
    if (lstat(final, &st) == 0 || errno != ENOENT) {
        rc = SEGIDX_EINVAL; /* never over an existing store */
        goto out;
    }
    /* Written under a name of its own, and named data.mdb only once it is
     * whole and synced: a crash or failure part-way never leaves a
     * data.mdb that looks like a backup. */
    int fd = -1;
    for (unsigned i = 0; fd < 0 && i < 1000; i++) {
        snprintf(tmp, strlen(final) + 48, "%s.partial-%ld-%u", final, (long)getpid(), i);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0664);
        if (fd < 0 && errno != EEXIST) {
            rc = errno_error(errno);
            goto out;
        }
    }
    if (fd < 0) {
        rc = SEGIDX_EIO;
        goto out;
    }
    e = copy_path(path, &src, fd);
    if (close(fd) != 0 && e == 0)
        e = errno;
    if (e == 0)
        e = publish(tmp, final, dest);
    if (e) {
        unlink(tmp);
        rc = e == EEXIST ? SEGIDX_EINVAL : map_error(e) == SEGIDX_ENOMEM ? SEGIDX_ENOMEM
                                                                           : SEGIDX_EIO;
    }
out:
    free(tmp);
    free(final);
    return rc;
}
