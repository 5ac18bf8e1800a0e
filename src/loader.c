/* The segment loader: a cache of open segments over a host's segment
 * source, bounded in bytes, with pins and a request limiter.
 *
 * State: one mutex over two chained hash tables of the entries (by sid,
 * for get; by segment pointer, for put) and a list of the unpinned entries
 * in the order they were last unpinned. A hit is a lookup, a pin and, when
 * the pin count leaves 0, an unlink: a handful of pointer writes under one
 * lock, no allocation, no call out.
 *
 * Eviction is LRU by bytes over unpinned entries only: pinning an entry
 * takes it out of the list and unpinning puts it at the head, so the tail
 * is always the least recently used entry that may go, and evicting never
 * skips anything. After every insert and every unpin, entries leave from
 * the tail while the cache holds more than cache_bytes, so between calls
 * either cached_bytes <= cache_bytes or every cached byte is pinned:
 * the cache exceeds its budget by at most the bytes pinned. Evicted
 * entries are unlinked under the lock and closed and released to the host
 * after it, by the thread whose call evicted them; an entry is in the
 * tables until then and in no table afterwards, so it is released once.
 *
 * Discarded entries (a page failed its checksum: loader.h) leave the sid
 * table at once, so that the next get fetches afresh, but stay in the
 * segment table, pinned, until their last put releases them. Until then
 * two entries may share a sid; only one of them is ever in the sid table.
 * A put that finds no pin to drop is refused and counted rather than
 * wrapping the count around, which would hand the segment to eviction
 * while its holders still read it.
 *
 * Each entry has a bit per page, set once the page passed its checksum.
 * Bits are only ever set, with relaxed atomic ORs: a bit set means that
 * page of that very buffer was hashed and matched (the host keeps the
 * buffer unchanged until release), so a read never needs an order between
 * the bit and anything else.
 *
 * Misses go through the limiter (limiter.h), keyed by the sid: the permit
 * holder looks in the cache again (the previous holder may just have
 * inserted the segment), fetches outside the lock, opens the bytes and
 * inserts them, then gives the permit back. When a fetch fails, the permit
 * passes to one waiter, which misses again and retries: one retry at a
 * time, and nobody waits for a permit that is never given back.
 *
 * Counters: `misses` counts gets that did not find the segment at their
 * first look (including those that then found it after waiting), `fetches`
 * every call of the host's fetch, `fetch_failures` the fetches that left
 * nothing in the cache (the fetch's own error, or bytes that failed
 * validation). */
#include "internal.h"
#include "limiter.h"
#include "sync.h"

#include "loader.h"

#if SEGIDX__THREADS
typedef atomic_uint_least32_t ld_word;
#else
typedef uint_least32_t ld_word;
#endif

enum { LD_WORD_BITS = 32 };

typedef struct segidx__copy {
    segidx_sid sid;
    segidx_segment *seg;
    const void *buf;
    size_t len;              /* the bytes counted against the budget */
    void *handle;
    unsigned pins;
    bool discarded;          /* out of the sid table, released at its last put */
    struct segidx__copy *by_sid; /* chain of the sid table */
    struct segidx__copy *by_seg; /* chain of the segment-pointer table */
    struct segidx__copy *prev, *next; /* the unpinned list, when pins == 0 */
    uint32_t npages;
    ld_word verified[];      /* a bit per page that passed its checksum */
} ld_entry;

struct segidx_loader {
    segidx__mutex lock;
    segidx_segment_source src;
    size_t cache_bytes;
    segidx__limiter *limiter;
    ld_entry **sid_buckets, **seg_buckets;
    size_t nbuckets;         /* a power of two, the same for both tables */
    ld_entry *lru_head, *lru_tail; /* unpinned: head most recently used */
    segidx_loader_stats stats; /* cached_segments doubles as the entry count */
};

enum { LD_INITIAL_BUCKETS = 64 };

/* ------------------------------------------------------------ tables */

static size_t sid_hash(const segidx_sid *sid)
{
    uint64_t a, b;
    memcpy(&a, sid->bytes, 8);
    memcpy(&b, sid->bytes + 8, 8);
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return (size_t)h;
}

static size_t seg_hash(const segidx_segment *s)
{
    uint64_t h = (uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ h >> 29);
}

static ld_entry *find_sid(const segidx_loader *l, const segidx_sid *sid)
{
    ld_entry *e = l->sid_buckets[sid_hash(sid) & (l->nbuckets - 1)];
    while (e && !segidx__id_equal(e->sid.bytes, sid->bytes))
        e = e->by_sid;
    return e;
}

static ld_entry *find_seg(const segidx_loader *l, const segidx_segment *s)
{
    ld_entry *e = l->seg_buckets[seg_hash(s) & (l->nbuckets - 1)];
    while (e && e->seg != s)
        e = e->by_seg;
    return e;
}

/* A discarded entry goes into the segment table only: nobody may find it
 * by its sid any more, but its holders' puts must still find it. */
static void link_tables(ld_entry **sid_b, ld_entry **seg_b, size_t n, ld_entry *e)
{
    ld_entry **h;
    if (!e->discarded) {
        h = &sid_b[sid_hash(&e->sid) & (n - 1)];
        e->by_sid = *h;
        *h = e;
    }
    h = &seg_b[seg_hash(e->seg) & (n - 1)];
    e->by_seg = *h;
    *h = e;
}

static void unlink_sid(segidx_loader *l, ld_entry *e)
{
    ld_entry **p = &l->sid_buckets[sid_hash(&e->sid) & (l->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->by_sid;
    *p = e->by_sid;
}

static void unlink_tables(segidx_loader *l, ld_entry *e)
{
    if (!e->discarded)
        unlink_sid(l, e);
    ld_entry **p = &l->seg_buckets[seg_hash(e->seg) & (l->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->by_seg;
    *p = e->by_seg;
}

/* Double both tables when they hold more entries than buckets. Failing to
 * grow only makes chains longer, so it is not an error. Every entry is in
 * the segment table, so that is the one walked. */
static void tables_grow(segidx_loader *l)
{
    size_t n = l->nbuckets * 2;
    ld_entry **sb = segidx__alloc_array(NULL, n, sizeof *sb);
    ld_entry **gb = segidx__alloc_array(NULL, n, sizeof *gb);
    if (!sb || !gb) {
        segidx__release(NULL, sb, n * sizeof *sb);
        segidx__release(NULL, gb, n * sizeof *gb);
        return;
    }
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (ld_entry *e = l->seg_buckets[i], *next; e; e = next) {
            next = e->by_seg;
            link_tables(sb, gb, n, e);
        }
    }
    segidx__release(NULL, l->sid_buckets, l->nbuckets * sizeof *l->sid_buckets);
    segidx__release(NULL, l->seg_buckets, l->nbuckets * sizeof *l->seg_buckets);
    l->sid_buckets = sb;
    l->seg_buckets = gb;
    l->nbuckets = n;
}

/* ------------------------------------------------------------ LRU */

static void lru_unlink(segidx_loader *l, ld_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(segidx_loader *l, ld_entry *e)
{
    e->prev = NULL;
    e->next = l->lru_head;
    if (l->lru_head)
        l->lru_head->prev = e;
    else
        l->lru_tail = e;
    l->lru_head = e;
}

/* Take an entry out of the tables and the counts, onto `*victims`
 * (through `next`) for release after the lock. It must not be pinned. */
static void forget(segidx_loader *l, ld_entry *e, ld_entry **victims)
{
    unlink_tables(l, e);
    l->stats.cached_bytes -= e->len;
    l->stats.cached_segments--;
    e->next = *victims;
    *victims = e;
}

/* Take the least recently used unpinned entries out of the cache until it
 * fits its budget (or only pinned bytes remain). */
static void evict_over_budget(segidx_loader *l, ld_entry **victims)
{
    while (l->stats.cached_bytes > l->cache_bytes && l->lru_tail) {
        ld_entry *e = l->lru_tail;
        lru_unlink(l, e);
        forget(l, e, victims);
        l->stats.evictions++;
    }
}

static size_t entry_size(uint32_t npages)
{
    return sizeof(ld_entry) + (npages / LD_WORD_BITS + 1) * sizeof(ld_word);
}

/* Close each victim and hand its bytes back to the host. No lock held:
 * the host's release may block (munmap, a network call). */
static void release_victims(segidx_loader *l, ld_entry *victims)
{
    while (victims) {
        ld_entry *e = victims;
        victims = e->next;
        segidx_segment_close(e->seg);
        l->src.release(l->src.ctx, &e->sid, e->buf, e->len, e->handle);
        segidx__release(NULL, e, entry_size(e->npages));
    }
}

/* ------------------------------------------------------------ handle */

int segidx_loader_new(const segidx_segment_source *src, const segidx_loader_options *opts,
                      segidx_loader **out)
{
    if (!src || !out || !src->fetch || !src->release || src->version < 1)
        return SEGIDX_EINVAL;
    segidx_loader *l = segidx__alloc(NULL, sizeof *l);
    if (!l)
        return SEGIDX_ENOMEM;
    memset(l, 0, sizeof *l);
    l->src = *src;
    l->cache_bytes = opts && opts->cache_bytes ? opts->cache_bytes : SEGIDX_DEFAULT_CACHE_BYTES;
    unsigned max_fetches =
        opts && opts->max_fetches ? opts->max_fetches : SEGIDX_DEFAULT_MAX_FETCHES;
    l->nbuckets = LD_INITIAL_BUCKETS;
    l->sid_buckets = segidx__alloc_array(NULL, l->nbuckets, sizeof *l->sid_buckets);
    l->seg_buckets = segidx__alloc_array(NULL, l->nbuckets, sizeof *l->seg_buckets);
    int rc = SEGIDX_ENOMEM;
    if (!l->sid_buckets || !l->seg_buckets)
        goto fail;
    rc = segidx__limiter_new(max_fetches, &l->limiter);
    if (rc != SEGIDX_OK)
        goto fail;
    rc = segidx__mutex_init(&l->lock);
    if (rc != SEGIDX_OK)
        goto fail;
    *out = l;
    return SEGIDX_OK;
fail:
    segidx__limiter_free(l->limiter);
    segidx__release(NULL, l->sid_buckets, l->nbuckets * sizeof *l->sid_buckets);
    segidx__release(NULL, l->seg_buckets, l->nbuckets * sizeof *l->seg_buckets);
    segidx__release(NULL, l, sizeof *l);
    return rc;
}

/* Every entry is released, pinned or not: a pinned one is the caller's
 * bug (its pointer dangles from here on), but leaking the host's bytes
 * would be a second one. Discarded entries are in the segment table only. */
void segidx_loader_free(segidx_loader *l)
{
    if (!l)
        return;
    ld_entry *all = NULL;
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (ld_entry *e = l->seg_buckets[i], *next; e; e = next) {
            next = e->by_seg;
            e->next = all;
            all = e;
        }
    }
    release_victims(l, all);
    segidx__limiter_free(l->limiter);
    segidx__mutex_destroy(&l->lock);
    segidx__release(NULL, l->sid_buckets, l->nbuckets * sizeof *l->sid_buckets);
    segidx__release(NULL, l->seg_buckets, l->nbuckets * sizeof *l->seg_buckets);
    segidx__release(NULL, l, sizeof *l);
}

/* ------------------------------------------------------------ get / put */

/* Pin a cached entry. The lock is held. */
static void pin(segidx_loader *l, ld_entry *e)
{
    if (e->pins++ == 0) {
        lru_unlink(l, e);
        l->stats.pinned_bytes += e->len;
    }
}

/* Open fetched bytes as a new, unlinked entry for `sid`. On failure the
 * bytes are still the host's to be released. */
static int entry_open(const segidx_sid *sid, const void *buf, size_t len, ld_entry **out)
{
    segidx_segment *seg;
    int rc = segidx_segment_open(buf, len, &seg);
    if (rc == SEGIDX_EINVAL)
        return SEGIDX_ECORRUPT;
    if (rc != SEGIDX_OK)
        return rc;
    /* A segment that names another sid is the wrong object: caching it
     * would answer reads with another segment's pages. */
    segidx_segment_stats st;
    segidx_segment_stats_get(seg, &st);
    if (!segidx__id_equal(st.sid.bytes, sid->bytes)) {
        segidx_segment_close(seg);
        return SEGIDX_ECORRUPT;
    }
    ld_entry *e = segidx__alloc(NULL, entry_size(st.page_count));
    if (!e) {
        segidx_segment_close(seg);
        return SEGIDX_ENOMEM;
    }
    memset(e, 0, sizeof *e);
    for (uint32_t i = 0; i <= st.page_count / LD_WORD_BITS; i++) {
#if SEGIDX__THREADS
        atomic_init(&e->verified[i], 0);
#else
        e->verified[i] = 0;
#endif
    }
    e->sid = *sid;
    e->seg = seg;
    e->buf = buf;
    e->len = len;
    e->npages = st.page_count;
    *out = e;
    return SEGIDX_OK;
}

/* The miss path, with the sid's permit held: fetch, open, insert pinned.
 * A fetch's error passes through segidx__host_rc(). A fetch that returns
 * 0 without a buffer handed nothing over: it is SEGIDX_ECORRUPT and
 * nothing is released; any other bytes that fail are released at once. */
static int fetch_and_insert(segidx_loader *l, const segidx_sid *sid, ld_entry **out)
{
    const void *buf = NULL;
    size_t len = 0;
    void *handle = NULL;
    int rc = segidx__host_rc(l->src.fetch(l->src.ctx, sid, &buf, &len, &handle));
    bool fetched = rc == SEGIDX_OK && buf;
    ld_entry *e = NULL;
    if (fetched)
        rc = entry_open(sid, buf, len, &e);
    else if (rc == SEGIDX_OK)
        rc = SEGIDX_ECORRUPT;

    segidx__mutex_lock(&l->lock);
    l->stats.fetches++;
    if (rc != SEGIDX_OK) {
        l->stats.fetch_failures++;
        segidx__mutex_unlock(&l->lock);
        if (fetched)
            l->src.release(l->src.ctx, sid, buf, len, handle);
        return rc;
    }
    e->handle = handle;
    e->pins = 1;
    link_tables(l->sid_buckets, l->seg_buckets, l->nbuckets, e);
    l->stats.cached_bytes += len;
    l->stats.pinned_bytes += len;
    if (++l->stats.cached_segments > l->nbuckets)
        tables_grow(l);
    ld_entry *victims = NULL;
    evict_over_budget(l, &victims);
    *out = e;
    segidx__mutex_unlock(&l->lock);
    release_victims(l, victims);
    return SEGIDX_OK;
}

/* The entry of `sid`, pinned: from the cache, or fetched. */
static int get_entry(segidx_loader *l, const segidx_sid *sid, ld_entry **out)
{
    segidx__mutex_lock(&l->lock);
    ld_entry *e = find_sid(l, sid);
    if (e) {
        l->stats.hits++;
        pin(l, e);
        segidx__mutex_unlock(&l->lock);
        *out = e;
        return SEGIDX_OK;
    }
    l->stats.misses++;
    segidx__mutex_unlock(&l->lock);

    int rc = segidx__limiter_acquire(l->limiter, sid->bytes);
    if (rc != SEGIDX_OK)
        return rc;
    /* Whoever held the permit before us may have cached it meanwhile. */
    segidx__mutex_lock(&l->lock);
    e = find_sid(l, sid);
    if (e)
        pin(l, e);
    segidx__mutex_unlock(&l->lock);
    if (!e)
        rc = fetch_and_insert(l, sid, &e);
    segidx__limiter_release(l->limiter, sid->bytes);
    if (rc == SEGIDX_OK)
        *out = e;
    return rc;
}

int segidx_loader_get(segidx_loader *l, const segidx_sid *sid, const segidx_segment **out)
{
    if (!l || !sid || !out)
        return SEGIDX_EINVAL;
    ld_entry *e;
    int rc = get_entry(l, sid, &e);
    if (rc == SEGIDX_OK)
        *out = e->seg;
    return rc;
}

int segidx__loader_pin(segidx_loader *l, const segidx_sid *sid, const segidx_segment **seg,
                       segidx__copy **copy)
{
    ld_entry *e;
    int rc = get_entry(l, sid, &e);
    if (rc == SEGIDX_OK) {
        *seg = e->seg;
        *copy = e;
    }
    return rc;
}

/* Its last pin went: back to the cache, or, discarded, to the host. The
 * lock is held. */
static void unpinned(segidx_loader *l, ld_entry *e, ld_entry **victims)
{
    l->stats.pinned_bytes -= e->len;
    if (e->discarded) {
        forget(l, e, victims);
    } else {
        lru_push_head(l, e);
        evict_over_budget(l, victims);
    }
}

void segidx_loader_put(segidx_loader *l, const segidx_segment *s)
{
    if (!l || !s)
        return;
    ld_entry *victims = NULL;
    segidx__mutex_lock(&l->lock);
    ld_entry *e = find_seg(l, s);
    /* A segment this loader does not hold, or one put more often than it
     * was got: dropping a pin here would take someone else's. */
    if (!e || e->pins == 0)
        l->stats.bad_puts++;
    else if (--e->pins == 0)
        unpinned(l, e, &victims);
    segidx__mutex_unlock(&l->lock);
    release_victims(l, victims);
}

void segidx__loader_discard(segidx_loader *l, segidx__copy *e)
{
    segidx__mutex_lock(&l->lock);
    if (!e->discarded && e->pins) {
        unlink_sid(l, e);
        e->discarded = true;
        l->stats.discards++;
    }
    segidx__mutex_unlock(&l->lock);
}

int segidx__loader_check_page(segidx__copy *e, uint32_t local, const void *page)
{
    if (local >= e->npages)
        return SEGIDX_ECORRUPT;
    ld_word *w = &e->verified[local / LD_WORD_BITS];
    uint_least32_t bit = (uint_least32_t)1 << (local % LD_WORD_BITS);
#if SEGIDX__THREADS
    if (atomic_load_explicit(w, memory_order_relaxed) & bit)
        return SEGIDX_OK;
#else
    if (*w & bit)
        return SEGIDX_OK;
#endif
    if (segidx_segment_check_page(e->seg, local, page) != SEGIDX_OK)
        return SEGIDX_ECORRUPT;
#if SEGIDX__THREADS
    atomic_fetch_or_explicit(w, bit, memory_order_relaxed);
#else
    *w |= bit;
#endif
    return SEGIDX_OK;
}

void segidx_loader_stats_get(segidx_loader *l, segidx_loader_stats *out)
{
    if (!out)
        return;
    if (!l) {
        memset(out, 0, sizeof *out);
        return;
    }
    segidx__mutex_lock(&l->lock);
    *out = l->stats;
    segidx__mutex_unlock(&l->lock);
}
