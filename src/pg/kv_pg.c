/* libsegidx_pg: the segidx_kv vtable over a PostgreSQL-protocol server.
 *
 * This library uses only the types of segidx.h: nothing of libsegidx is
 * called, so it links against libpq alone and allocates with malloc.
 *
 * Every connection stays in libpq's pipeline mode: a call queues its
 * statements, ends them with a Sync and reads the results in order, so a
 * write batch (BEGIN, its checks, its changes, COMMIT) is one round trip.
 * In a pipeline the client cannot look at a check's answer before the
 * changes behind it are sent, so a check that fails must fail on the
 * server: it raises an error, which aborts the transaction and makes the
 * server skip everything up to the Sync. The two checks (segidx_pg.h says
 * why they are safe against other writers):
 * - an EXPECT of a value: the rows are locked with SELECT ... FOR UPDATE,
 *   then `SELECT 1 / (count(*) = cardinality($1))::int` over the rows whose
 *   value matches divides by zero (SQLSTATE 22012) when one does not;
 * - an EXPECT of absence: an INSERT without ON CONFLICT, which fails with
 *   a unique violation (23505) when the key is there.
 * Nothing else in a batch can raise those two, and each is read from the
 * statement that raised it, so they mean ECONFLICT and nothing else does.
 *
 * Results nobody waits for (the COMMIT that ends a scan's read-only
 * transaction, the ROLLBACK after a failed batch) are sent and left
 * unread: `pending` counts their Syncs, and the next call on the
 * connection reads them before its own, which costs no round trip.
 */
#include "segidx_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#ifndef LIBPQ_HAS_PIPELINING
#error "libsegidx_pg needs libpq 14 or later (pipeline mode)"
#endif

/* ------------------------------------------------------------ threads
 *
 * The library stands on segidx.h alone, so it has its own two wrappers
 * rather than the core's sync.h; they vanish in a single-threaded build. */

#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
#define PG_THREADS 0
typedef struct pg_mutex { int unused; } pg_mutex;
typedef struct pg_cond { int unused; } pg_cond;
static int pg_mutex_init(pg_mutex *m) { (void)m; return 0; }
static void pg_mutex_destroy(pg_mutex *m) { (void)m; }
static void pg_lock(pg_mutex *m) { (void)m; }
static void pg_unlock(pg_mutex *m) { (void)m; }
static int pg_cond_init(pg_cond *c) { (void)c; return 0; }
static void pg_cond_destroy(pg_cond *c) { (void)c; }
static void pg_cond_signal(pg_cond *c) { (void)c; }
/* The store whose callback this thread is in, if any (see visit()). */
static const void *visiting;
#else
#define PG_THREADS 1
#include <pthread.h>
typedef struct pg_mutex { pthread_mutex_t m; } pg_mutex;
typedef struct pg_cond { pthread_cond_t c; } pg_cond;
static int pg_mutex_init(pg_mutex *m) { return pthread_mutex_init(&m->m, NULL); }
static void pg_mutex_destroy(pg_mutex *m) { pthread_mutex_destroy(&m->m); }
static void pg_lock(pg_mutex *m) { pthread_mutex_lock(&m->m); }
static void pg_unlock(pg_mutex *m) { pthread_mutex_unlock(&m->m); }
static int pg_cond_init(pg_cond *c) { return pthread_cond_init(&c->c, NULL); }
static void pg_cond_destroy(pg_cond *c) { pthread_cond_destroy(&c->c); }
static void pg_cond_signal(pg_cond *c) { pthread_cond_signal(&c->c); }
static void pg_cond_wait(pg_cond *c, pg_mutex *m) { pthread_cond_wait(&c->c, &m->m); }
static _Thread_local const void *visiting;
#endif

/* ------------------------------------------------------------ the store */

#define BYTEA_OID 17u
#define BYTEA_ARRAY_OID 1001u
#define FIRST_PAGE 16
#define MAX_PAGE 1024
#define MAX_PARAM 0x3FFFFFFFu   /* the most bytes one parameter may carry: 1 GiB - 1 */
#define BACKOFF_FIRST_NS 1000000L
#define BACKOFF_MAX_NS 100000000L

typedef struct pg_conn {
    PGconn *pg;       /* NULL: not connected */
    unsigned pending; /* Syncs sent whose results are unread */
    unsigned gen;     /* the pool's generation when it connected */
} pg_conn;

typedef struct pg_kv {
    char *conninfo;
    pid_t pid;                 /* the process that opened it */
    unsigned attempts;
    pg_mutex lock;             /* everything below */
    pg_cond freed;
    pg_conn *conns;
    unsigned n_conns;
    unsigned *idle;            /* slots free to take: a stack of indices */
    unsigned n_idle;
    unsigned gen;              /* bumped when a connection is found broken */
    char last_error[512];
    /* The statements, with the table's name in them. */
    char *sql_get, *sql_lock, *sql_check, *sql_insert, *sql_upsert, *sql_delete, *sql_probe;
    char table[128];
} pg_kv;

static const segidx_kv_vtable pg_vtable;

/* ------------------------------------------------------------ errors */

static void set_error(pg_kv *kv, const char *sqlstate, const char *msg)
{
    pg_lock(&kv->lock);
    snprintf(kv->last_error, sizeof kv->last_error, "%s%s%s", sqlstate ? sqlstate : "",
             sqlstate ? ": " : "", msg ? msg : "unknown error");
    size_t n = strlen(kv->last_error);
    while (n && (kv->last_error[n - 1] == '\n' || kv->last_error[n - 1] == ' '))
        kv->last_error[--n] = '\0';
    pg_unlock(&kv->lock);
}

static const char *sqlstate_of(const PGresult *res)
{
    return res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
}

static bool sqlstate_is(const PGresult *res, const char *state)
{
    const char *s = sqlstate_of(res);
    return s && strcmp(s, state) == 0;
}

/* Serialization failure or deadlock: the transaction may simply be tried again. */
static bool retryable(const PGresult *res)
{
    return sqlstate_is(res, "40001") || sqlstate_is(res, "40P01");
}

/* A server error's code, for what is neither a conflict nor retried. */
static int map_server_error(const PGresult *res)
{
    const char *s = sqlstate_of(res);
    if (!s)
        return SEGIDX_EIO;
    if (strcmp(s, "53100") == 0)
        return SEGIDX_EFULL;
    if (strcmp(s, "53200") == 0)
        return SEGIDX_ENOMEM;
    if (strncmp(s, "54", 2) == 0)
        return SEGIDX_EINVAL;
    return SEGIDX_EIO;
}

/* Record a failed result (or, with res NULL, the connection's message). */
static void record(pg_kv *kv, pg_conn *c, const PGresult *res)
{
    if (res && PQresultErrorMessage(res)[0])
        set_error(kv, sqlstate_of(res), PQresultErrorMessage(res));
    else
        set_error(kv, NULL, c && c->pg ? PQerrorMessage(c->pg) : "no connection");
}

/* ------------------------------------------------------------ keys */

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

static bool key_valid(const void *key, size_t klen)
{
    return key && klen > 0;
}

/* ------------------------------------------------------------ connections */

static void notice_ignore(void *arg, const char *message)
{
    (void)arg, (void)message; /* CREATE TABLE IF NOT EXISTS and such: not for stderr */
}

static void conn_drop(pg_conn *c)
{
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    c->pending = 0;
}

/* Free a connection inherited through fork() without ending the session,
 * which is the parent's: the socket's descriptor is first pointed at
 * /dev/null, so the goodbye PQfinish sends goes nowhere, and the parent's
 * descriptor (another entry, in another table) stays as it was. */
static void conn_abandon(pg_conn *c)
{
    if (!c->pg)
        return;
    int fd = PQsocket(c->pg), null = open("/dev/null", O_RDWR);
    if (fd >= 0 && null >= 0 && dup2(null, fd) == fd)
        conn_drop(c);
    /* else leave it: a leak in a child beats ending the parent's session */
    if (null >= 0)
        close(null);
    c->pg = NULL;
}

static int conn_connect(pg_kv *kv, pg_conn *c, unsigned gen)
{
    c->pg = PQconnectdb(kv->conninfo);
    c->pending = 0;
    c->gen = gen;
    if (!c->pg) {
        set_error(kv, NULL, "libpq could not allocate a connection");
        return SEGIDX_ENOMEM;
    }
    if (PQstatus(c->pg) != CONNECTION_OK || !PQenterPipelineMode(c->pg)) {
        record(kv, c, NULL);
        conn_drop(c);
        return SEGIDX_EIO;
    }
    PQsetNoticeProcessor(c->pg, notice_ignore, NULL);
    return SEGIDX_OK;
}

/* Read one statement's results: the first is kept (NULL when the
 * connection failed), any more are freed, up to libpq's NULL. */
static PGresult *read_one(pg_conn *c)
{
    PGresult *res = PQgetResult(c->pg);
    if (!res)
        return NULL;
    for (PGresult *more; (more = PQgetResult(c->pg));)
        PQclear(more);
    return res;
}

/* Read up to and including the next Sync's result: false when the
 * connection failed or answered out of turn. */
static bool read_sync(pg_conn *c)
{
    for (int i = 0; i < 1000; i++) {
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            if (PQstatus(c->pg) == CONNECTION_BAD)
                return false;
            continue; /* the NULL that ends a statement's results */
        }
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st == PGRES_PIPELINE_SYNC) {
            c->pending--;
            return true;
        }
        if (st == PGRES_FATAL_ERROR && PQstatus(c->pg) == CONNECTION_BAD)
            return false;
    }
    return false;
}

/* Whether an idle connection may be used: what earlier calls left unread
 * is read, no transaction is open, and the server has not spoken since
 * (a server that shuts down tells its clients so and closes). */
static bool conn_usable(pg_conn *c)
{
    while (c->pending)
        if (!read_sync(c))
            return false;
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE ||
        PQpipelineStatus(c->pg) != PQ_PIPELINE_ON)
        return false;
    struct pollfd p = { PQsocket(c->pg), POLLIN, 0 };
    return p.fd >= 0 && poll(&p, 1, 0) == 0;
}

/* Take a connection of the pool, connecting it if need be. *reused says
 * whether it was connected before this call (a failure on it may be the
 * server's going away in between rather than anything this call did). */
static int conn_acquire(pg_kv *kv, pg_conn **out, bool *reused)
{
    pg_lock(&kv->lock);
    while (kv->n_idle == 0) {
#if PG_THREADS
        pg_cond_wait(&kv->freed, &kv->lock);
#else
        pg_unlock(&kv->lock);
        return SEGIDX_EINVAL; /* only a call from inside a call gets here */
#endif
    }
    pg_conn *c = &kv->conns[kv->idle[--kv->n_idle]];
    unsigned gen = kv->gen;
    pg_unlock(&kv->lock);
    if (c->pg && (c->gen != gen || !conn_usable(c)))
        conn_drop(c);
    *reused = c->pg != NULL;
    int rc = c->pg ? SEGIDX_OK : conn_connect(kv, c, gen);
    if (rc) {
        pg_lock(&kv->lock);
        kv->idle[kv->n_idle++] = (unsigned)(c - kv->conns);
        pg_cond_signal(&kv->freed);
        pg_unlock(&kv->lock);
        return rc;
    }
    *out = c;
    return SEGIDX_OK;
}

/* Give a connection back; a broken one (or one a call gave up on: `failed`)
 * is closed, and every other one is checked again before its next use
 * (whatever broke it may have broken them too). */
static void conn_release(pg_kv *kv, pg_conn *c, bool failed)
{
    bool broken = c->pg && (failed || PQstatus(c->pg) == CONNECTION_BAD);
    if (broken)
        conn_drop(c);
    pg_lock(&kv->lock);
    if (broken)
        kv->gen++;
    kv->idle[kv->n_idle++] = (unsigned)(c - kv->conns);
    pg_cond_signal(&kv->freed);
    pg_unlock(&kv->lock);
}

/* ------------------------------------------------------------ statements */

/* A statement to queue: up to three binary parameters of the given types. */
typedef struct stmt {
    const char *sql;
    int n;
    unsigned types[3];
    const char *values[3];
    int lengths[3];
} stmt;

static const int binary_formats[3] = { 1, 1, 1 };
static const char empty_bytes[1] = { 0 }; /* the address of a zero-length parameter */

static bool stmt_send(pg_conn *c, const stmt *s)
{
    Oid types[3];
    const char *values[3];
    for (int i = 0; i < s->n; i++) {
        types[i] = s->types[i];
        values[i] = s->values[i] ? s->values[i] : empty_bytes; /* NULL would be SQL NULL */
    }
    return PQsendQueryParams(c->pg, s->sql, s->n, types, values, s->lengths, binary_formats,
                             1) == 1;
}

static stmt sql_only(const char *sql)
{
    stmt s = { sql, 0, { 0 }, { NULL }, { 0 } };
    return s;
}

static void stmt_bytea(stmt *s, const void *p, size_t len)
{
    s->types[s->n] = BYTEA_OID;
    s->values[s->n] = p;
    s->lengths[s->n] = (int)len;
    s->n++;
}

/* Queue `n` statements and a Sync, and send them. */
static bool send_all(pg_conn *c, const stmt *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!stmt_send(c, &s[i]))
            return false;
    if (!PQpipelineSync(c->pg))
        return false;
    c->pending++;
    return true;
}

/* Send and forget: `sql` and a Sync, read by the connection's next user. */
static void send_later(pg_conn *c, const char *sql)
{
    stmt s = sql_only(sql);
    (void)send_all(c, &s, 1); /* a failure shows at the next use */
}

/* The results of `n` statements sent with send_all(), then its Sync.
 * res[i] is NULL when the connection failed before it. Returns false when
 * the connection failed (the results read so far are kept). */
static bool read_all(pg_conn *c, PGresult **res, size_t n)
{
    for (size_t i = 0; i < n; i++)
        res[i] = NULL;
    for (size_t i = 0; i < n; i++) {
        res[i] = read_one(c);
        if (!res[i] || PQstatus(c->pg) == CONNECTION_BAD)
            return false;
        if (PQresultStatus(res[i]) == PGRES_PIPELINE_SYNC)
            return false; /* a Sync where a statement's result belongs */
    }
    return read_sync(c);
}

static void clear_all(PGresult **res, size_t n)
{
    for (size_t i = 0; i < n; i++)
        PQclear(res[i]);
}

static bool ok_status(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* The first failed result among n, or NULL. */
static PGresult *first_failure(PGresult **res, size_t n, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (!res[i] || !ok_status(res[i])) {
            *at = i;
            return res[i];
        }
    return NULL;
}

/* Sleep before try `attempt` (2, 3, ...): a random time up to a bound
 * that doubles from 1 ms to 100 ms, so that writers that collided spread
 * out. */
static void backoff(unsigned attempt, uint64_t *rng)
{
    long cap = BACKOFF_FIRST_NS;
    for (unsigned i = 2; i < attempt && cap < BACKOFF_MAX_NS; i++)
        cap *= 2;
    if (cap > BACKOFF_MAX_NS)
        cap = BACKOFF_MAX_NS;
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    struct timespec t = { 0, (long)(*rng % (uint64_t)cap) };
    nanosleep(&t, NULL);
}

static uint64_t rng_seed(const void *p)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    uint64_t s = (uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 32) ^ (uint64_t)(uintptr_t)p;
    return s ? s : 0x9E3779B97F4A7C15ull;
}

/* Whether a call may go on: the store is ours and not inside its own callback. */
static bool callable(const pg_kv *kv)
{
    return kv && visiting != kv && kv->pid == getpid();
}

static int visit(const pg_kv *kv, segidx_kv_visit_fn fn, void *ctx, const void *k, size_t kl,
                 const void *v, size_t vl)
{
    const void *outer = visiting;
    visiting = kv;
    int rc = fn(ctx, k, kl, v, vl);
    visiting = outer;
    return rc;
}

/* Whether a result has `cols` binary bytea columns. */
static bool bytea_columns(const PGresult *res, int cols)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != cols || PQntuples(res) < 0)
        return false;
    for (int i = 0; i < cols; i++)
        if (PQfformat(res, i) != 1 || PQftype(res, i) != BYTEA_OID)
            return false;
    return true;
}

/* Row r, column i of a checked result: a non-NULL value of a sane length. */
static bool cell(const PGresult *res, int r, int i, const void **p, size_t *len)
{
    if (PQgetisnull(res, r, i))
        return false;
    int n = PQgetlength(res, r, i);
    const char *v = PQgetvalue(res, r, i);
    if (n < 0 || !v)
        return false;
    *p = v;
    *len = (size_t)n;
    return true;
}

/* ------------------------------------------------------------ get */

static int pg_get(void *self, const void *key, size_t klen, segidx_kv_visit_fn fn, void *ctx)
{
    pg_kv *kv = self;
    if (!callable(kv) || !fn || !key_valid(key, klen) || klen > MAX_PARAM)
        return SEGIDX_EINVAL;
    uint64_t rng = rng_seed(&rng);
    bool retried_dead = false;
    for (unsigned attempt = 1;; attempt++) {
        pg_conn *c;
        bool reused;
        int rc = conn_acquire(kv, &c, &reused);
        if (rc)
            return rc;
        stmt s = sql_only(kv->sql_get);
        stmt_bytea(&s, key, klen);
        PGresult *res = NULL;
        bool alive = send_all(c, &s, 1) && read_all(c, &res, 1);
        if (!alive) {
            record(kv, c, res && !ok_status(res) ? res : NULL);
            PQclear(res);
            conn_release(kv, c, true);
            if (reused && !retried_dead) { /* the server may have gone while it idled */
                retried_dead = true;
                continue;
            }
            return SEGIDX_EIO;
        }
        if (!ok_status(res)) {
            bool again = retryable(res) && attempt < kv->attempts;
            rc = again ? SEGIDX_OK : map_server_error(res);
            record(kv, c, res);
            PQclear(res);
            conn_release(kv, c, false);
            if (!again)
                return rc;
            backoff(attempt + 1, &rng);
            continue;
        }
        const void *v;
        size_t vlen;
        if (!bytea_columns(res, 1) || PQntuples(res) > 1 ||
            (PQntuples(res) == 1 && !cell(res, 0, 0, &v, &vlen))) {
            set_error(kv, NULL, "get: a result of the wrong shape");
            rc = SEGIDX_ECORRUPT;
        } else if (PQntuples(res) == 0) {
            rc = SEGIDX_ENOTFOUND;
        } else {
            rc = visit(kv, fn, ctx, key, klen, v, vlen);
        }
        PQclear(res);
        conn_release(kv, c, false);
        return rc;
    }
}

/* ------------------------------------------------------------ scan */

typedef struct scan_state {
    pg_kv *kv;
    const void *lo, *hi;
    size_t lolen, hilen;
    bool reverse;
    uint8_t *last;     /* the last key visited (a copy), NULL before the first */
    size_t lastlen, lastcap;
    unsigned visited;
} scan_state;

/* The statement of the next page: after the last key, or from the bound. */
static void page_sql(const scan_state *st, int limit, char *buf, size_t cap, stmt *s)
{
    *s = sql_only(buf);
    bool first = !st->last;
    if (!st->reverse) {
        /* k >= lo (an empty lo: every key) or k > last; then k < hi. */
        stmt_bytea(s, first ? st->lo : st->last, first ? st->lolen : st->lastlen);
        if (st->hilen)
            stmt_bytea(s, st->hi, st->hilen);
        snprintf(buf, cap, "SELECT k, v FROM %s WHERE k %s $1%s ORDER BY k LIMIT %d",
                 st->kv->table, first ? ">=" : ">", st->hilen ? " AND k < $2" : "", limit);
    } else {
        /* k >= lo; then k < hi (none for an empty hi) or k < last. */
        stmt_bytea(s, st->lo, st->lolen);
        bool upper = !first || st->hilen;
        if (upper)
            stmt_bytea(s, first ? st->hi : st->last, first ? st->hilen : st->lastlen);
        snprintf(buf, cap, "SELECT k, v FROM %s WHERE k >= $1%s ORDER BY k DESC LIMIT %d",
                 st->kv->table, upper ? " AND k < $2" : "", limit);
    }
}

/* Whether a key may follow the last one in this scan. */
static bool key_in_order(const scan_state *st, const void *k, size_t kl)
{
    if (kl == 0)
        return false;
    if (st->last)
        return st->reverse ? key_cmp(k, kl, st->last, st->lastlen) < 0
                           : key_cmp(k, kl, st->last, st->lastlen) > 0;
    return (!st->lolen || key_cmp(k, kl, st->lo, st->lolen) >= 0) &&
           (!st->hilen || key_cmp(k, kl, st->hi, st->hilen) < 0);
}

static int remember(scan_state *st, const void *k, size_t kl)
{
    if (kl > st->lastcap) {
        uint8_t *p = realloc(st->last, kl);
        if (!p)
            return SEGIDX_ENOMEM;
        st->last = p;
        st->lastcap = kl;
    }
    memcpy(st->last, k, kl);
    st->lastlen = kl;
    return SEGIDX_OK;
}

/* Visit one page's rows. *more: the page was full and nobody stopped. */
static int visit_page(scan_state *st, const PGresult *res, int limit,
                      segidx_kv_visit_fn fn, void *ctx, bool *more)
{
    *more = false;
    if (!bytea_columns(res, 2) || PQntuples(res) > limit)
        return SEGIDX_ECORRUPT;
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        const void *k, *v;
        size_t kl, vl;
        if (!cell(res, r, 0, &k, &kl) || !cell(res, r, 1, &v, &vl) || !key_in_order(st, k, kl))
            return SEGIDX_ECORRUPT;
        int rc = remember(st, k, kl);
        if (rc)
            return rc;
        st->visited++;
        rc = visit(st->kv, fn, ctx, k, kl, v, vl);
        if (rc)
            return rc;
    }
    *more = rows == limit;
    return SEGIDX_OK;
}

/* One try of a scan on one connection. *dead: the connection failed. */
static int scan_once(scan_state *st, pg_conn *c, segidx_kv_visit_fn fn, void *ctx, bool *dead,
                     PGresult **failed)
{
    char sql[512];
    int limit = FIRST_PAGE;
    stmt s[2];
    s[0] = sql_only("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    page_sql(st, limit, sql, sizeof sql, &s[1]);
    PGresult *res[2] = { NULL, NULL };
    size_t n = 2;
    *dead = !send_all(c, s, 2) || !read_all(c, res, 2);
    int rc = SEGIDX_OK;
    for (;;) {
        size_t at;
        PGresult *bad = first_failure(res, n, &at);
        if (*dead || bad) {
            *failed = bad;
            if (bad)
                res[at] = NULL; /* handed to the caller */
            clear_all(res, n);
            rc = SEGIDX_EIO;
            break;
        }
        bool more;
        rc = visit_page(st, res[n - 1], limit, fn, ctx, &more);
        clear_all(res, n);
        if (rc == SEGIDX_ECORRUPT)
            set_error(st->kv, NULL, "scan: a result of the wrong shape, order or range");
        if (rc || !more)
            break;
        if (limit < MAX_PAGE)
            limit *= 2;
        page_sql(st, limit, sql, sizeof sql, &s[0]);
        n = 1;
        res[0] = NULL;
        *dead = !send_all(c, s, 1) || !read_all(c, res, 1);
    }
    if (!*dead)
        send_later(c, "COMMIT"); /* read-only: nothing waits on its answer */
    return rc;
}

static int pg_scan(void *self, const void *lo, size_t lolen, const void *hi, size_t hilen,
                   bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    pg_kv *kv = self;
    if (!callable(kv) || !fn || (!lo && lolen) || (!hi && hilen))
        return SEGIDX_EINVAL;
    if (lolen && hilen && key_cmp(lo, lolen, hi, hilen) >= 0)
        return SEGIDX_OK; /* [lo, hi) is empty */
    if (lolen > MAX_PARAM || hilen > MAX_PARAM)
        return SEGIDX_EINVAL;
    scan_state st = { kv, lo, hi, lolen, hilen, reverse, NULL, 0, 0, 0 };
    uint64_t rng = rng_seed(&rng);
    bool retried_dead = false;
    int rc;
    for (unsigned attempt = 1;; attempt++) {
        pg_conn *c;
        bool reused, dead = false;
        PGresult *failed = NULL;
        rc = conn_acquire(kv, &c, &reused);
        if (rc)
            break;
        st.visited = 0;
        free(st.last);
        st.last = NULL;
        st.lastlen = st.lastcap = 0;
        rc = scan_once(&st, c, fn, ctx, &dead, &failed);
        if (dead || failed)
            record(kv, c, failed);
        conn_release(kv, c, dead);
        bool fresh = st.visited == 0; /* nothing handed out yet: may start over */
        if (dead) {
            PQclear(failed);
            if (fresh && reused && !retried_dead) {
                retried_dead = true;
                continue;
            }
            rc = SEGIDX_EIO;
            break;
        }
        if (failed) {
            bool again = fresh && retryable(failed) && attempt < kv->attempts;
            rc = map_server_error(failed);
            PQclear(failed);
            if (again) {
                backoff(attempt + 1, &rng);
                continue;
            }
        }
        break;
    }
    free(st.last);
    return rc;
}

/* ------------------------------------------------------------ write */

static bool op_valid(const segidx_kv_op *op)
{
    if (op->op != SEGIDX_KV_PUT && op->op != SEGIDX_KV_DEL && op->op != SEGIDX_KV_EXPECT)
        return false;
    if (!key_valid(op->key, op->klen) || op->klen > MAX_PARAM)
        return false;
    if (op->op == SEGIDX_KV_DEL)
        return true;
    return (op->val || op->vlen == 0) && op->vlen <= MAX_PARAM;
}

/* An op and its place in the batch, sorted by key and then place. */
typedef struct ref {
    const segidx_kv_op *op;
    size_t at;
} ref;

static int ref_cmp(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    int c = key_cmp(x->op->key, x->op->klen, y->op->key, y->op->klen);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* A bytea[] parameter in binary form, built one element at a time. */
typedef struct barray {
    uint8_t *p;
    size_t len, cap, n;
} barray;

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Room for the header (ndim, flags, element type, size, lower bound). */
#define BARRAY_HEAD 20

static int barray_add(barray *a, const void *p, size_t len)
{
    if (!a->len)
        a->len = BARRAY_HEAD;
    if (len > MAX_PARAM || a->len + 4 + len > MAX_PARAM)
        return SEGIDX_EINVAL; /* more than one parameter may carry */
    if (a->len + 4 + len > a->cap) {
        size_t cap = (a->len + 4 + len) * 2;
        uint8_t *q = realloc(a->p, cap);
        if (!q)
            return SEGIDX_ENOMEM;
        a->p = q;
        a->cap = cap;
    }
    put_be32(a->p + a->len, (uint32_t)len);
    if (len)
        memcpy(a->p + a->len + 4, p, len);
    a->len += 4 + len;
    a->n++;
    return SEGIDX_OK;
}

static void barray_finish(barray *a)
{
    put_be32(a->p, 1);              /* one dimension */
    put_be32(a->p + 4, 0);          /* no NULLs */
    put_be32(a->p + 8, BYTEA_OID);
    put_be32(a->p + 12, (uint32_t)a->n);
    put_be32(a->p + 16, 1);         /* lower bound */
}

static void stmt_array(stmt *s, barray *a)
{
    barray_finish(a);
    s->types[s->n] = BYTEA_ARRAY_OID;
    s->values[s->n] = (const char *)a->p;
    s->lengths[s->n] = (int)a->len;
    s->n++;
}

/* What a batch asks, per key: the arrays of each statement. */
typedef struct plan {
    barray lock_k, check_k, check_v; /* EXPECTs of a value */
    barray insert_k, insert_v;       /* EXPECTs of absence: the key inserted (with its PUT) */
    barray upsert_k, upsert_v;       /* the last PUT of every other key */
    barray delete_k;                 /* the last DELs, and inserted keys not PUT */
    bool changes;
} plan;

static void plan_free(plan *p)
{
    barray *all[] = { &p->lock_k, &p->check_k, &p->check_v, &p->insert_k, &p->insert_v,
                      &p->upsert_k, &p->upsert_v, &p->delete_k };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]->p);
}

/* One key's ops (sorted by place): its EXPECTs must agree with each other
 * (two that differ cannot both hold: SEGIDX_ECONFLICT, whatever the store
 * holds), and its last PUT or DEL is what the batch leaves. */
static int plan_key(plan *p, const ref *g, size_t n)
{
    const segidx_kv_op *expect = NULL, *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const segidx_kv_op *op = g[i].op;
        if (op->op != SEGIDX_KV_EXPECT) {
            last = op;
            continue;
        }
        if (expect && ((expect->val == NULL) != (op->val == NULL) ||
                       (op->val && key_cmp(expect->val, expect->vlen, op->val, op->vlen))))
            return SEGIDX_ECONFLICT;
        expect = op;
    }
    const segidx_kv_op *k = g[0].op;
    bool put = last && last->op == SEGIDX_KV_PUT;
    int rc = SEGIDX_OK;
    if (expect && expect->val) {
        if (!(rc = barray_add(&p->lock_k, k->key, k->klen)) &&
            !(rc = barray_add(&p->check_k, k->key, k->klen)))
            rc = barray_add(&p->check_v, expect->val, expect->vlen);
    } else if (expect) {
        if (!(rc = barray_add(&p->insert_k, k->key, k->klen)))
            rc = barray_add(&p->insert_v, put ? last->val : NULL, put ? last->vlen : 0);
        if (!rc && !put)
            rc = barray_add(&p->delete_k, k->key, k->klen);
        return rc;
    }
    if (!rc && put && !(rc = barray_add(&p->upsert_k, k->key, k->klen)))
        rc = barray_add(&p->upsert_v, last->val, last->vlen);
    if (!rc && last && !put)
        rc = barray_add(&p->delete_k, k->key, k->klen);
    return rc;
}

static int plan_batch(plan *p, const segidx_kv_op *ops, size_t n)
{
    ref *refs = malloc(n * sizeof *refs);
    if (!refs)
        return SEGIDX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        refs[i] = (ref){ &ops[i], i };
        p->changes |= ops[i].op != SEGIDX_KV_EXPECT;
    }
    qsort(refs, n, sizeof *refs, ref_cmp);
    int rc = SEGIDX_OK;
    for (size_t i = 0, j; i < n && !rc; i = j) {
        for (j = i + 1; j < n && key_cmp(refs[j].op->key, refs[j].op->klen, refs[i].op->key,
                                         refs[i].op->klen) == 0;)
            j++;
        rc = plan_key(p, &refs[i], j - i);
    }
    free(refs);
    return rc;
}

enum { ST_BEGIN, ST_LOCK, ST_CHECK, ST_INSERT, ST_UPSERT, ST_DELETE, ST_END, ST_COUNT };

/* The pipeline of a planned batch; kind[i] says what s[i] is. */
static size_t plan_statements(const pg_kv *kv, plan *p, stmt *s, int *kind)
{
    size_t n = 0;
    kind[n] = ST_BEGIN;
    s[n++] = sql_only("BEGIN ISOLATION LEVEL READ COMMITTED");
    if (p->lock_k.n) {
        kind[n] = ST_LOCK;
        s[n] = sql_only(kv->sql_lock);
        stmt_array(&s[n++], &p->lock_k);
        kind[n] = ST_CHECK;
        s[n] = sql_only(kv->sql_check);
        stmt_array(&s[n], &p->check_k);
        stmt_array(&s[n++], &p->check_v);
    }
    if (p->insert_k.n) {
        kind[n] = ST_INSERT;
        s[n] = sql_only(kv->sql_insert);
        stmt_array(&s[n], &p->insert_k);
        stmt_array(&s[n++], &p->insert_v);
    }
    if (p->upsert_k.n) {
        kind[n] = ST_UPSERT;
        s[n] = sql_only(kv->sql_upsert);
        stmt_array(&s[n], &p->upsert_k);
        stmt_array(&s[n++], &p->upsert_v);
    }
    if (p->delete_k.n) {
        kind[n] = ST_DELETE;
        s[n] = sql_only(kv->sql_delete);
        stmt_array(&s[n++], &p->delete_k);
    }
    /* A batch of EXPECTs only holds its locks until it is rolled back. */
    kind[n] = ST_END;
    s[n++] = sql_only(p->changes ? "COMMIT" : "ROLLBACK");
    return n;
}

static int pg_write(void *self, const segidx_kv_op *ops, size_t n)
{
    pg_kv *kv = self;
    if (!callable(kv) || (!ops && n))
        return SEGIDX_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!op_valid(&ops[i]))
            return SEGIDX_EINVAL;
    if (n == 0)
        return SEGIDX_OK;
    plan p;
    memset(&p, 0, sizeof p);
    int rc = plan_batch(&p, ops, n);
    stmt s[ST_COUNT];
    int kind[ST_COUNT];
    size_t ns = rc ? 0 : plan_statements(kv, &p, s, kind);
    uint64_t rng = rng_seed(&rng);
    for (unsigned attempt = 1; !rc; attempt++) {
        pg_conn *c;
        bool reused;
        if ((rc = conn_acquire(kv, &c, &reused)))
            break;
        PGresult *res[ST_COUNT] = { NULL };
        bool alive = send_all(c, s, ns) && read_all(c, res, ns);
        size_t at = 0;
        PGresult *bad = first_failure(res, ns, &at);
        bool again = false;
        if (!alive) {
            /* Never sent twice: the COMMIT may have been carried out. */
            record(kv, c, bad);
            rc = SEGIDX_EIO;
        } else if (!bad) {
            rc = SEGIDX_OK;
        } else if ((kind[at] == ST_CHECK && sqlstate_is(bad, "22012")) ||
                   (kind[at] == ST_INSERT && sqlstate_is(bad, "23505"))) {
            rc = SEGIDX_ECONFLICT; /* an EXPECT failed on the server */
        } else if (retryable(bad)) {
            again = attempt < kv->attempts;
            rc = again ? SEGIDX_OK : SEGIDX_ECONFLICT;
            record(kv, c, bad);
        } else {
            rc = map_server_error(bad);
            record(kv, c, bad);
        }
        /* An error leaves BEGIN's transaction open and failed: end it. */
        if (alive && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            send_later(c, "ROLLBACK");
        clear_all(res, ns);
        conn_release(kv, c, !alive);
        if (!again)
            break;
        backoff(attempt + 1, &rng);
    }
    plan_free(&p);
    return rc;
}

/* ------------------------------------------------------------ close */

static void pg_close(void *self)
{
    pg_kv *kv = self;
    if (!kv)
        return;
    /* In a forked child the connections are the parent's: closing them
     * the usual way would end the parent's sessions. */
    bool ours = kv->pid == getpid();
    for (unsigned i = 0; kv->conns && i < kv->n_conns; i++) {
        if (ours)
            conn_drop(&kv->conns[i]);
        else
            conn_abandon(&kv->conns[i]);
    }
    pg_cond_destroy(&kv->freed);
    pg_mutex_destroy(&kv->lock);
    free(kv->conns);
    free(kv->idle);
    free(kv->conninfo);
    free(kv->sql_get);
    free(kv->sql_lock);
    free(kv->sql_check);
    free(kv->sql_insert);
    free(kv->sql_upsert);
    free(kv->sql_delete);
    free(kv->sql_probe);
    free(kv);
}

static const segidx_kv_vtable pg_vtable = {
    SEGIDX_KV_VTABLE_VERSION, pg_get, pg_scan, pg_write, pg_close,
};

/* ------------------------------------------------------------ open */

/* A name PostgreSQL takes without quotes and without folding case. */
static bool name_part_valid(const char *p, size_t n)
{
    if (n == 0 || n > 63 || (p[0] >= '0' && p[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
            return false;
    return true;
}

static bool table_valid(const char *t)
{
    const char *dot = strchr(t, '.');
    if (!dot)
        return name_part_valid(t, strlen(t));
    return name_part_valid(t, (size_t)(dot - t)) && name_part_valid(dot + 1, strlen(dot + 1));
}

static char *format_sql(const char *fmt, const char *table)
{
    int n = snprintf(NULL, 0, fmt, table, table);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s)
        snprintf(s, (size_t)n + 1, fmt, table, table);
    return s;
}

static int build_statements(pg_kv *kv)
{
    const char *t = kv->table;
    kv->sql_get = format_sql("SELECT v FROM %s WHERE k = $1", t);
    kv->sql_lock = format_sql("SELECT 1 FROM %s WHERE k = ANY($1::bytea[]) ORDER BY k FOR UPDATE", t);
    /* Divides by zero (22012) unless every expected value is there. */
    kv->sql_check = format_sql("SELECT 1 / (count(*) = cardinality($1::bytea[]))::int "
                               "FROM %s AS s JOIN unnest($1::bytea[], $2::bytea[]) AS e (k, v) "
                               "ON s.k = e.k AND s.v = e.v", t);
    /* No ON CONFLICT: a key that is there is a unique violation (23505). */
    kv->sql_insert = format_sql("INSERT INTO %s (k, v) "
                                "SELECT * FROM unnest($1::bytea[], $2::bytea[])", t);
    kv->sql_upsert = format_sql("INSERT INTO %s AS s (k, v) "
                                "SELECT * FROM unnest($1::bytea[], $2::bytea[]) AS e (k, v) "
                                "ON CONFLICT (k) DO UPDATE SET v = excluded.v", t);
    kv->sql_delete = format_sql("DELETE FROM %s WHERE k = ANY($1::bytea[])", t);
    kv->sql_probe = format_sql("SELECT k, v FROM %s LIMIT 0", t);
    return kv->sql_get && kv->sql_lock && kv->sql_check && kv->sql_insert && kv->sql_upsert &&
                   kv->sql_delete && kv->sql_probe
               ? SEGIDX_OK
               : SEGIDX_ENOMEM;
}

/* One statement without parameters, its result handed back (NULL with
 * the connection failed). */
static PGresult *run_sql(pg_conn *c, const char *sql)
{
    stmt s = sql_only(sql);
    PGresult *res = NULL;
    if (!send_all(c, &s, 1) || !read_all(c, &res, 1)) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Create the table if asked and missing, then check its columns. */
static int prepare_table(pg_kv *kv, pg_conn *c, bool create)
{
    PGresult *res;
    if (create) {
        /* YugabyteDB hashes a primary key unless told ASC, which
         * PostgreSQL refuses in a table's PRIMARY KEY. */
        const char *version = PQparameterStatus(c->pg, "server_version");
        bool yb = version && strstr(version, "-YB-");
        char *sql = format_sql(yb ? "CREATE TABLE IF NOT EXISTS %s "
                                    "(k bytea, v bytea NOT NULL, PRIMARY KEY (k ASC))"
                                  : "CREATE TABLE IF NOT EXISTS %s "
                                    "(k bytea PRIMARY KEY, v bytea NOT NULL)", kv->table);
        if (!sql)
            return SEGIDX_ENOMEM;
        res = run_sql(c, sql);
        free(sql);
        if (!res) {
            record(kv, c, NULL);
            return SEGIDX_EIO;
        }
        /* Two processes creating it at once: one may lose on the catalog's
         * unique index; the probe below decides. */
        if (!ok_status(res) && !sqlstate_is(res, "23505") && !sqlstate_is(res, "42P07")) {
            record(kv, c, res);
            int rc = map_server_error(res);
            PQclear(res);
            return rc;
        }
        PQclear(res);
    }
    if (!(res = run_sql(c, kv->sql_probe))) {
        record(kv, c, NULL);
        return SEGIDX_EIO;
    }
    int rc = SEGIDX_OK;
    if (!ok_status(res)) {
        record(kv, c, res);
        rc = sqlstate_is(res, "42P01") && !create ? SEGIDX_ENOTFOUND
             : sqlstate_is(res, "42703")          ? SEGIDX_EINVAL /* no column k or v */
                                                  : map_server_error(res);
    } else if (!bytea_columns(res, 2) || strcmp(PQfname(res, 0), "k") != 0 ||
               strcmp(PQfname(res, 1), "v") != 0) {
        set_error(kv, NULL, "the table's columns k and v are not both bytea");
        rc = SEGIDX_EINVAL;
    }
    PQclear(res);
    return rc;
}

static void report_open(const segidx_kv_pg_options *opts, const char *msg)
{
    if (opts && opts->open_error && opts->open_error_cap)
        snprintf(opts->open_error, opts->open_error_cap, "%s", msg);
}

int segidx_kv_pg_open(const char *conninfo, const segidx_kv_pg_options *opts, segidx_kv *out)
{
    report_open(opts, "");
    const char *table = opts && opts->table ? opts->table : SEGIDX_KV_PG_DEFAULT_TABLE;
    if (!conninfo || !out) {
        report_open(opts, "no conninfo or no out");
        return SEGIDX_EINVAL;
    }
    if (!table_valid(table)) {
        report_open(opts, "the table name is not lowercase [a-z_][a-z0-9_]* (or schema.name)");
        return SEGIDX_EINVAL;
    }
    pg_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return SEGIDX_ENOMEM;
    if (pg_mutex_init(&kv->lock)) {
        free(kv);
        return SEGIDX_ENOMEM;
    }
    if (pg_cond_init(&kv->freed)) {
        pg_mutex_destroy(&kv->lock);
        free(kv);
        return SEGIDX_ENOMEM;
    }
    snprintf(kv->table, sizeof kv->table, "%s", table);
    kv->pid = getpid();
    kv->attempts = opts && opts->max_attempts ? opts->max_attempts : SEGIDX_KV_PG_DEFAULT_ATTEMPTS;
    kv->n_conns = opts && opts->max_connections ? opts->max_connections
                                                : SEGIDX_KV_PG_DEFAULT_CONNECTIONS;
#if !PG_THREADS
    kv->n_conns = 1; /* one thread: one call at a time */
#endif
    size_t len = strlen(conninfo);
    kv->conninfo = malloc(len + 1);
    kv->conns = calloc(kv->n_conns, sizeof *kv->conns);
    kv->idle = calloc(kv->n_conns, sizeof *kv->idle);
    if (!kv->conninfo || !kv->conns || !kv->idle || build_statements(kv)) {
        pg_close(kv); /* frees what there is; nothing is connected */
        return SEGIDX_ENOMEM;
    }
    memcpy(kv->conninfo, conninfo, len + 1);
    for (unsigned i = 0; i < kv->n_conns; i++)
        kv->idle[kv->n_idle++] = kv->n_conns - 1 - i;
    pg_conn *c;
    bool reused;
    int rc = conn_acquire(kv, &c, &reused);
    if (!rc) {
        rc = prepare_table(kv, c, !(opts && opts->no_create));
        conn_release(kv, c, false);
    }
    if (rc) {
        report_open(opts, kv->last_error);
        pg_close(kv);
        return rc;
    }
    *out = (segidx_kv){ &pg_vtable, kv };
    return SEGIDX_OK;
}

size_t segidx_kv_pg_last_error(const segidx_kv *kv, char *buf, size_t cap)
{
    if (buf && cap)
        buf[0] = '\0';
    if (!kv || kv->vt != &pg_vtable || !kv->self)
        return 0;
    pg_kv *p = kv->self;
    pg_lock(&p->lock);
    size_t n = strlen(p->last_error);
    if (buf && cap)
        snprintf(buf, cap, "%s", p->last_error);
    pg_unlock(&p->lock);
    return n;
}
