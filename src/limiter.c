/* The request limiter (limiter.h): a permit per 16-byte key, and a cap on
 * permits held over all keys.
 *
 * A key has an entry in a chained hash table only while a thread holds its
 * permit or waits for it; each entry has its own condition variable, so a
 * release wakes one waiter of that key and nobody else. Entries that leave
 * the table go to a free list with their condition variable still
 * initialised: the list is as long as the most keys ever busy at once
 * (bounded by the number of threads), and keys come and go on every fetch,
 * so re-initialising a condvar each time would be waste.
 *
 * The permit of the key is taken first and the global slot second, so a
 * thread waiting behind another for the same key holds no slot. */
#include "limiter.h"
#include "sync.h"

typedef struct lim_entry {
    uint8_t key[16];
    unsigned holders;  /* 0 or 1 */
    unsigned waiters;  /* threads asleep on `cond` for this key */
#if SEGIDX__THREADS
    pthread_t owner;   /* the holder, while holders is 1 */
#endif
    segidx__cond cond;
    struct lim_entry *next; /* hash chain, or the free list */
} lim_entry;

struct segidx__limiter {
    segidx__mutex lock;
    segidx__cond slot_cond;   /* a slot of the global cap came free */
    unsigned max_total;       /* 0: no cap */
    unsigned held, peak;      /* permits held now / at most */
    unsigned slot_waiters;
    lim_entry **buckets;
    size_t nbuckets;          /* a power of two */
    size_t count;             /* entries in the table */
    lim_entry *free_list;
};

enum { LIM_INITIAL_BUCKETS = 64 };

int segidx__limiter_new(unsigned max_total, segidx__limiter **out)
{
    if (!out)
        return SEGIDX_EINVAL;
    segidx__limiter *l = segidx__alloc(NULL, sizeof *l);
    if (!l)
        return SEGIDX_ENOMEM;
    memset(l, 0, sizeof *l);
    l->max_total = max_total;
    l->nbuckets = LIM_INITIAL_BUCKETS;
    l->buckets = segidx__alloc_array(NULL, l->nbuckets, sizeof *l->buckets);
    if (!l->buckets) {
        segidx__release(NULL, l, sizeof *l);
        return SEGIDX_ENOMEM;
    }
    if (segidx__mutex_init(&l->lock) != SEGIDX_OK) {
        segidx__release(NULL, l->buckets, l->nbuckets * sizeof *l->buckets);
        segidx__release(NULL, l, sizeof *l);
        return SEGIDX_ENOMEM;
    }
    if (segidx__cond_init(&l->slot_cond) != SEGIDX_OK) {
        segidx__mutex_destroy(&l->lock);
        segidx__release(NULL, l->buckets, l->nbuckets * sizeof *l->buckets);
        segidx__release(NULL, l, sizeof *l);
        return SEGIDX_ENOMEM;
    }
    *out = l;
    return SEGIDX_OK;
}

static void entry_destroy(lim_entry *e)
{
    segidx__cond_destroy(&e->cond);
    segidx__release(NULL, e, sizeof *e);
}

void segidx__limiter_free(segidx__limiter *l)
{
    if (!l)
        return;
    /* Every permit was released, so the table is empty; free whatever a
     * misuse left there anyway rather than leak it. */
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (lim_entry *e = l->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_destroy(e);
        }
    }
    for (lim_entry *e = l->free_list, *next; e; e = next) {
        next = e->next;
        entry_destroy(e);
    }
    segidx__cond_destroy(&l->slot_cond);
    segidx__mutex_destroy(&l->lock);
    segidx__release(NULL, l->buckets, l->nbuckets * sizeof *l->buckets);
    segidx__release(NULL, l, sizeof *l);
}

/* The entry of `key` and the link that points at it. */
static lim_entry **entry_slot(segidx__limiter *l, const uint8_t key[16])
{
    lim_entry **p = &l->buckets[(size_t)segidx__id_hash(key) & (l->nbuckets - 1)];
    while (*p && !segidx__id_equal((*p)->key, key))
        p = &(*p)->next;
    return p;
}

/* Double the table when it is fuller than one entry a bucket. Failing to
 * grow only makes chains longer, so it is not an error. */
static void table_grow(segidx__limiter *l)
{
    size_t n = l->nbuckets * 2;
    lim_entry **b = segidx__alloc_array(NULL, n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (lim_entry *e = l->buckets[i], *next; e; e = next) {
            next = e->next;
            lim_entry **head = &b[(size_t)segidx__id_hash(e->key) & (n - 1)];
            e->next = *head;
            *head = e;
        }
    }
    segidx__release(NULL, l->buckets, l->nbuckets * sizeof *l->buckets);
    l->buckets = b;
    l->nbuckets = n;
}

/* A fresh entry for `key`, linked at *slot; NULL if out of memory. */
static lim_entry *entry_insert(segidx__limiter *l, lim_entry **slot, const uint8_t key[16])
{
    lim_entry *e = l->free_list;
    if (e) {
        l->free_list = e->next;
    } else {
        e = segidx__alloc(NULL, sizeof *e);
        if (!e)
            return NULL;
        if (segidx__cond_init(&e->cond) != SEGIDX_OK) {
            segidx__release(NULL, e, sizeof *e);
            return NULL;
        }
    }
    memcpy(e->key, key, 16);
    e->holders = 0;
    e->waiters = 0;
    e->next = NULL;
    *slot = e;
    if (++l->count > l->nbuckets)
        table_grow(l);
    return e;
}

/* A callback run under a permit (a fetch, a pull) that asks for the same
 * permit again would wait for itself forever: that is refused instead. With
 * one thread, any holder is the caller. */
static bool held_by_caller(const lim_entry *e)
{
#if SEGIDX__THREADS
    return e->holders && pthread_equal(e->owner, pthread_self());
#else
    return e->holders != 0;
#endif
}

int segidx__limiter_acquire(segidx__limiter *l, const uint8_t key[16])
{
    segidx__mutex_lock(&l->lock);
    lim_entry **slot = entry_slot(l, key);
    lim_entry *e = *slot;
    if (!e) {
        e = entry_insert(l, slot, key);
        if (!e) {
            segidx__mutex_unlock(&l->lock);
            return SEGIDX_ENOMEM;
        }
    }
    if (held_by_caller(e)) {
        segidx__mutex_unlock(&l->lock);
        return SEGIDX_EINVAL;
    }
#if SEGIDX__THREADS
    /* The entry stays in the table while anyone waits on it (release
     * removes it only when nobody does), so `e` remains valid. */
    while (e->holders) {
        e->waiters++;
        segidx__cond_wait(&e->cond, &l->lock);
        e->waiters--;
    }
#endif
    /* The key is ours from here, also while we wait for a slot: nobody
     * else for this key gets past the loop above, and the entry stays. */
    e->holders++;
#if SEGIDX__THREADS
    e->owner = pthread_self();
    while (l->max_total && l->held >= l->max_total) {
        l->slot_waiters++;
        segidx__cond_wait(&l->slot_cond, &l->lock);
        l->slot_waiters--;
    }
#endif
    if (++l->held > l->peak)
        l->peak = l->held;
    segidx__mutex_unlock(&l->lock);
    return SEGIDX_OK;
}

void segidx__limiter_release(segidx__limiter *l, const uint8_t key[16])
{
    segidx__mutex_lock(&l->lock);
    lim_entry **slot = entry_slot(l, key);
    lim_entry *e = *slot;
    if (e && e->holders) {
        e->holders--;
        l->held--;
        if (e->waiters) {
            /* One waiter takes the permit; the others keep sleeping until
             * it is given back in turn. */
            segidx__cond_signal(&e->cond);
        } else if (!e->holders) {
            *slot = e->next;
            l->count--;
            e->next = l->free_list;
            l->free_list = e;
        }
        if (l->slot_waiters)
            segidx__cond_signal(&l->slot_cond);
    }
    segidx__mutex_unlock(&l->lock);
}

unsigned segidx__limiter_held(segidx__limiter *l)
{
    segidx__mutex_lock(&l->lock);
    unsigned n = l->held;
    segidx__mutex_unlock(&l->lock);
    return n;
}

unsigned segidx__limiter_peak(segidx__limiter *l)
{
    segidx__mutex_lock(&l->lock);
    unsigned n = l->peak;
    segidx__mutex_unlock(&l->lock);
    return n;
}
