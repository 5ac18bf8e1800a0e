/* Locks and atomics for the handles that are "safe for concurrent use".
 *
 * Every wrapper compiles to nothing in a SEGIDX_SINGLE_THREADED=1 build, so
 * the parts that lock are written once and firmware-like hosts link no
 * pthreads. Not installed.
 *
 * Errors: only what can fail returns int (SEGIDX_OK or SEGIDX_E*):
 * initialisation (SEGIDX_ENOMEM: pthreads is out of memory or of some other
 * resource) and taking a reader-writer lock (SEGIDX_EFULL when too many
 * readers hold it, SEGIDX_ECONFLICT when this thread already holds it for
 * writing). Locking a mutex the caller does not already hold, unlocking,
 * signalling and destroying cannot fail on an object that was initialised
 * and is used as documented, so those return nothing.
 */
#ifndef SEGIDX_SYNC_H
#define SEGIDX_SYNC_H

#include "internal.h"

#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
#define SEGIDX__THREADS 0
#else
#define SEGIDX__THREADS 1
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#endif

#if SEGIDX__THREADS

typedef struct segidx__mutex { pthread_mutex_t m; } segidx__mutex;
typedef struct segidx__rwlock { pthread_rwlock_t l; } segidx__rwlock;
typedef struct segidx__cond { pthread_cond_t c; } segidx__cond;
/* An int many threads may load and store without a lock. */
typedef struct segidx__atomic_int { atomic_int v; } segidx__atomic_int;

static inline int segidx__mutex_init(segidx__mutex *m)
{
    return pthread_mutex_init(&m->m, NULL) ? SEGIDX_ENOMEM : SEGIDX_OK;
}

static inline void segidx__mutex_destroy(segidx__mutex *m)
{
    pthread_mutex_destroy(&m->m);
}

static inline void segidx__mutex_lock(segidx__mutex *m)
{
    pthread_mutex_lock(&m->m);
}

static inline void segidx__mutex_unlock(segidx__mutex *m)
{
    pthread_mutex_unlock(&m->m);
}

static inline int segidx__rwlock_init(segidx__rwlock *l)
{
    return pthread_rwlock_init(&l->l, NULL) ? SEGIDX_ENOMEM : SEGIDX_OK;
}

static inline void segidx__rwlock_destroy(segidx__rwlock *l)
{
    pthread_rwlock_destroy(&l->l);
}

static inline int segidx__rwlock_error(int e)
{
    if (e == 0)
        return SEGIDX_OK;
    return e == EAGAIN ? SEGIDX_EFULL : SEGIDX_ECONFLICT;
}

/* Shared: many readers at once. */
static inline int segidx__rwlock_rdlock(segidx__rwlock *l)
{
    return segidx__rwlock_error(pthread_rwlock_rdlock(&l->l));
}

/* Exclusive. */
static inline int segidx__rwlock_wrlock(segidx__rwlock *l)
{
    return segidx__rwlock_error(pthread_rwlock_wrlock(&l->l));
}

/* Releases either kind. */
static inline void segidx__rwlock_unlock(segidx__rwlock *l)
{
    pthread_rwlock_unlock(&l->l);
}

static inline int segidx__cond_init(segidx__cond *c)
{
    return pthread_cond_init(&c->c, NULL) ? SEGIDX_ENOMEM : SEGIDX_OK;
}

static inline void segidx__cond_destroy(segidx__cond *c)
{
    pthread_cond_destroy(&c->c);
}

/* Wakes spuriously like any condition variable: wait in a loop on the
 * predicate, with `m` held. */
static inline void segidx__cond_wait(segidx__cond *c, segidx__mutex *m)
{
    pthread_cond_wait(&c->c, &m->m);
}

static inline void segidx__cond_signal(segidx__cond *c)
{
    pthread_cond_signal(&c->c);
}

static inline void segidx__cond_broadcast(segidx__cond *c)
{
    pthread_cond_broadcast(&c->c);
}

/* Relaxed: for values read for information (last error codes, counters),
 * never to publish other memory. */
static inline void segidx__atomic_int_store(segidx__atomic_int *a, int v)
{
    atomic_store_explicit(&a->v, v, memory_order_relaxed);
}

static inline int segidx__atomic_int_load(const segidx__atomic_int *a)
{
    return atomic_load_explicit(&((segidx__atomic_int *)a)->v, memory_order_relaxed);
}

#else /* single-threaded: nothing to lock, nobody to wait for */

/* A member each: C has no empty structs. */
typedef struct segidx__mutex { char unused; } segidx__mutex;
typedef struct segidx__rwlock { char unused; } segidx__rwlock;
typedef struct segidx__cond { char unused; } segidx__cond;
typedef struct segidx__atomic_int { int v; } segidx__atomic_int;

static inline int segidx__mutex_init(segidx__mutex *m) { (void)m; return SEGIDX_OK; }
static inline void segidx__mutex_destroy(segidx__mutex *m) { (void)m; }
static inline void segidx__mutex_lock(segidx__mutex *m) { (void)m; }
static inline void segidx__mutex_unlock(segidx__mutex *m) { (void)m; }

static inline int segidx__rwlock_init(segidx__rwlock *l) { (void)l; return SEGIDX_OK; }
static inline void segidx__rwlock_destroy(segidx__rwlock *l) { (void)l; }
static inline int segidx__rwlock_rdlock(segidx__rwlock *l) { (void)l; return SEGIDX_OK; }
static inline int segidx__rwlock_wrlock(segidx__rwlock *l) { (void)l; return SEGIDX_OK; }
static inline void segidx__rwlock_unlock(segidx__rwlock *l) { (void)l; }

static inline int segidx__cond_init(segidx__cond *c) { (void)c; return SEGIDX_OK; }
static inline void segidx__cond_destroy(segidx__cond *c) { (void)c; }
/* Returns at once. With one thread, whatever a caller would wait for can
 * only be brought about by that caller itself, so code that would block
 * here must not be reached in this build: guard such waits with
 * SEGIDX__THREADS, or make the predicate true before waiting. */
static inline void segidx__cond_wait(segidx__cond *c, segidx__mutex *m) { (void)c; (void)m; }
static inline void segidx__cond_signal(segidx__cond *c) { (void)c; }
static inline void segidx__cond_broadcast(segidx__cond *c) { (void)c; }

static inline void segidx__atomic_int_store(segidx__atomic_int *a, int v) { a->v = v; }
static inline int segidx__atomic_int_load(const segidx__atomic_int *a) { return a->v; }

#endif

#endif
