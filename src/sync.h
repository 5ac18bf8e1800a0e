/* Locks and atomics for the handles that are "safe for concurrent use".
 *
 * Every wrapper compiles to nothing in a SEGIDX_SINGLE_THREADED=1 build, so
 * the parts that lock are written once and firmware-like hosts link no
 * pthreads. Not installed.
 *
 * Errors: only what can fail returns int (SEGIDX_OK or SEGIDX_E*):
 * initialisation (SEGIDX_ENOMEM: pthreads is out of memory or of some other
 * resource) and taking a reader-writer lock for reading (SEGIDX_EFULL when
 * too many readers hold it). Locking a mutex the caller does not already
 * hold, taking a reader-writer lock for writing, unlocking, signalling and
 * destroying cannot fail on an object that was initialised and is used as
 * documented, so those return nothing (the write lock returns SEGIDX_OK,
 * so that callers read alike).
 */
#ifndef SEGIDX_SYNC_H
#define SEGIDX_SYNC_H

#include "internal.h"

#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
#define SEGIDX__THREADS 0
#else
#define SEGIDX__THREADS 1
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#endif

#if SEGIDX__THREADS

/* Tell the CPU the caller is spinning: on x86 PAUSE keeps a spin loop from
 * flooding the memory pipeline and yields to the sibling hyperthread. */
static inline void segidx__cpu_pause(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct segidx__mutex { pthread_mutex_t m; } segidx__mutex;
typedef struct segidx__cond { pthread_cond_t c; } segidx__cond;
/* For a mutex and a condition variable with static storage, which need no
 * init and are never destroyed. */
#define SEGIDX__MUTEX_INITIALIZER { PTHREAD_MUTEX_INITIALIZER }
#define SEGIDX__COND_INITIALIZER { PTHREAD_COND_INITIALIZER }
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

/* segidx__mutex_lock() for a mutex held only for a few dozen instructions
 * at a time: a taker that finds it held tries again a few times, a CPU
 * pause apart, before it sleeps. Two threads meeting on such a lock then
 * wait for each other for nanoseconds, where a sleep and a wake-up would
 * cost two system calls each time. */
static inline void segidx__mutex_lock_brief(segidx__mutex *m)
{
    for (int i = 0; i < 64; i++) {
        if (pthread_mutex_trylock(&m->m) == 0)
            return;
        segidx__cpu_pause();
    }
    pthread_mutex_lock(&m->m);
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

/* A reader-writer lock that neither side can starve, of our own over a
 * mutex and two condition variables rather than pthread_rwlock_t: glibc's
 * default rwlock prefers readers, and under a steady read load a writer
 * waited there for minutes; other C libraries choose otherwise, so no
 * pthreads attribute gives the same behaviour everywhere.
 * - Once a writer waits, readers that arrive queue behind it: reads that
 *   overlap one another cannot keep a writer out.
 * - When a writer leaves, the readers that were waiting all get in before
 *   the next writer (they are handed the lock, counted in `readers`, so no
 *   writer can slip in first): a stream of writers cannot keep readers out.
 * Consequently a thread holding the lock for reading must not take it
 * again, not even for reading: a writer may queue in between, and then
 * both wait for each other. */
typedef struct segidx__rwlock {
    pthread_mutex_t m;
    pthread_cond_t readers_go, writer_go;
    unsigned readers;         /* holding it shared */
    unsigned readers_waiting;
    unsigned writers_waiting;
    unsigned long read_turn;  /* moves on each time waiting readers are let in */
    bool writer;              /* held exclusive */
} segidx__rwlock;

static inline int segidx__rwlock_init(segidx__rwlock *l)
{
    if (pthread_mutex_init(&l->m, NULL))
        return SEGIDX_ENOMEM;
    if (pthread_cond_init(&l->readers_go, NULL)) {
        pthread_mutex_destroy(&l->m);
        return SEGIDX_ENOMEM;
    }
    if (pthread_cond_init(&l->writer_go, NULL)) {
        pthread_cond_destroy(&l->readers_go);
        pthread_mutex_destroy(&l->m);
        return SEGIDX_ENOMEM;
    }
    l->readers = l->readers_waiting = l->writers_waiting = 0;
    l->read_turn = 0;
    l->writer = false;
    return SEGIDX_OK;
}

static inline void segidx__rwlock_destroy(segidx__rwlock *l)
{
    pthread_cond_destroy(&l->writer_go);
    pthread_cond_destroy(&l->readers_go);
    pthread_mutex_destroy(&l->m);
}

/* Shared: many readers at once, none while a writer holds or waits. */
static inline int segidx__rwlock_rdlock(segidx__rwlock *l)
{
    pthread_mutex_lock(&l->m);
    if (l->readers + l->readers_waiting >= UINT_MAX - 1) {
        pthread_mutex_unlock(&l->m);
        return SEGIDX_EFULL;
    }
    if (!l->writer && l->writers_waiting == 0) {
        l->readers++;
    } else {
        /* Wait for a writer's unlock to hand us the lock: it counts us
         * into `readers` and moves read_turn on. */
        unsigned long turn = l->read_turn;
        l->readers_waiting++;
        while (l->read_turn == turn)
            pthread_cond_wait(&l->readers_go, &l->m);
    }
    pthread_mutex_unlock(&l->m);
    return SEGIDX_OK;
}

/* Exclusive. */
static inline int segidx__rwlock_wrlock(segidx__rwlock *l)
{
    pthread_mutex_lock(&l->m);
    l->writers_waiting++;
    while (l->writer || l->readers)
        pthread_cond_wait(&l->writer_go, &l->m);
    l->writers_waiting--;
    l->writer = true;
    pthread_mutex_unlock(&l->m);
    return SEGIDX_OK;
}

/* Releases either kind. */
static inline void segidx__rwlock_unlock(segidx__rwlock *l)
{
    pthread_mutex_lock(&l->m);
    if (l->writer) {
        l->writer = false;
        if (l->readers_waiting) {
            l->readers += l->readers_waiting;
            l->readers_waiting = 0;
            l->read_turn++;
            pthread_cond_broadcast(&l->readers_go);
        } else if (l->writers_waiting) {
            pthread_cond_signal(&l->writer_go);
        }
    } else if (--l->readers == 0 && l->writers_waiting) {
        pthread_cond_signal(&l->writer_go);
    }
    pthread_mutex_unlock(&l->m);
}

/* How many threads wait for the lock, each way: for tests that must know
 * a thread is blocked before they go on. */
static inline void segidx__rwlock_waiting(segidx__rwlock *l, unsigned *readers,
                                          unsigned *writers)
{
    pthread_mutex_lock(&l->m);
    *readers = l->readers_waiting;
    *writers = l->writers_waiting;
    pthread_mutex_unlock(&l->m);
}

/* A hash of the calling thread's id, to spread threads over stripes of
 * per-thread state (pthread_t is opaque: its bytes are hashed). */
static inline uint64_t segidx__thread_hash(void)
{
    pthread_t t = pthread_self();
    uint64_t v = 0;
    memcpy(&v, &t, sizeof t < sizeof v ? sizeof t : sizeof v);
    v *= 0x9E3779B97F4A7C15ull;
    return v ^ v >> 29;
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
#define SEGIDX__MUTEX_INITIALIZER { 0 }
#define SEGIDX__COND_INITIALIZER { 0 }

static inline int segidx__mutex_init(segidx__mutex *m) { (void)m; return SEGIDX_OK; }
static inline void segidx__mutex_destroy(segidx__mutex *m) { (void)m; }
static inline void segidx__mutex_lock(segidx__mutex *m) { (void)m; }
static inline void segidx__mutex_unlock(segidx__mutex *m) { (void)m; }
static inline void segidx__mutex_lock_brief(segidx__mutex *m) { (void)m; }

static inline int segidx__rwlock_init(segidx__rwlock *l) { (void)l; return SEGIDX_OK; }
static inline void segidx__rwlock_destroy(segidx__rwlock *l) { (void)l; }
static inline int segidx__rwlock_rdlock(segidx__rwlock *l) { (void)l; return SEGIDX_OK; }
static inline int segidx__rwlock_wrlock(segidx__rwlock *l) { (void)l; return SEGIDX_OK; }
static inline void segidx__rwlock_unlock(segidx__rwlock *l) { (void)l; }
static inline void segidx__rwlock_waiting(segidx__rwlock *l, unsigned *readers,
                                          unsigned *writers)
{
    (void)l;
    *readers = *writers = 0;
}

static inline int segidx__cond_init(segidx__cond *c) { (void)c; return SEGIDX_OK; }
static inline void segidx__cond_destroy(segidx__cond *c) { (void)c; }
/* Returns at once. With one thread, whatever a caller would wait for can
 * only be brought about by that caller itself, so code that would block
 * here must not be reached in this build: guard such waits with
 * SEGIDX__THREADS, or make the predicate true before waiting. */
static inline void segidx__cond_wait(segidx__cond *c, segidx__mutex *m) { (void)c; (void)m; }
static inline void segidx__cond_signal(segidx__cond *c) { (void)c; }
static inline void segidx__cond_broadcast(segidx__cond *c) { (void)c; }

static inline uint64_t segidx__thread_hash(void) { return 0; }

static inline void segidx__atomic_int_store(segidx__atomic_int *a, int v) { a->v = v; }
static inline int segidx__atomic_int_load(const segidx__atomic_int *a) { return a->v; }


#endif

#endif
