/* The segment loader: a cache of open segments over a host's segment
 * source, bounded in bytes, with pins and a request limiter.
 *
 * State: two chained hash tables of the entries (by sid, for get; by
 * segment pointer, for put: a put must not read the segment it is handed,
 * which may be long gone) and LD_STRIPES stripes, each a mutex and the
 * counters of the calls that hold it, on cache lines of their own. A call
 * takes the stripe of the CPU it runs on (of its thread where the CPU
 * cannot be asked). The tables and the loader's own fields (budget, bytes
 * cached, the clock) change only with every stripe lock held, so any one
 * stripe lock is enough to read them; they are read-mostly, and cores keep
 * their own copies of such lines.
 *
 * Pins: each entry has a slot per stripe, on a cache line of its own, with
 * the pins taken under that stripe's lock and the tick of its last get
 * there; the entry's pin count is the sum over its slots. A hit locks its
 * stripe, looks the sid up, adds a pin to the entry's slot of that stripe
 * and counts the hit in the stripe; a put locks its stripe, looks the
 * pointer up and takes the pin back from the same slot. Two threads on two
 * CPUs thus write no line in common, even when they pin the same segment.
 * A put that finds no pin in its own slot (its get ran on another CPU; or
 * it is a put without a get) takes every lock and drops a pin from any
 * slot that has one, or, when no slot has one, refuses the put and counts
 * it rather than wrapping a count around, which would hand the segment to
 * eviction while its holders still read it.
 *
 * Eviction is least recently got first, over unpinned entries, by a clock
 * (`tick`) that only moves when a segment is inserted: a hit stamps its
 * slot with tick + 1, an insert advances tick by 2 and stamps the new entry
 * with it; an entry's stamp is its slots' latest. So an entry got after
 * another was inserted counts as more recent than it; entries got between
 * the same two inserts count as equally recent, and among those the one
 * inserted first goes first. That costs a hit no write to a shared clock,
 * where an exact LRU list needs a relink under one lock on every unpin.
 * The victim is found by a walk over every entry's slots: O(cached
 * segments x stripes) per eviction, next to the fetch that caused it.
 *
 * The budget: after every insert and every last unpin, entries leave while
 * the cache holds more than cache_bytes, so between calls either
 * cached_bytes <= cache_bytes or every cached byte is pinned: the cache
 * exceeds its budget by at most the bytes pinned. A put under its stripe
 * lock sees cached_bytes stand still (an insert would need that lock too):
 * within budget, dropping a pin, last or not, cannot break the rule and
 * the put is done; over budget, or for a discarded copy, it takes every
 * lock, drops the pin and lets go what must go in the same step. Evicted
 * entries leave the tables under the locks and are closed and released to
 * the host after them, by the thread whose call evicted them; an entry is
 * in the tables until then and in no table afterwards, so it is released
 * once.
 *
 * Discarded entries (a page failed its checksum: loader.h) leave the sid
 * table at once, so that the next get fetches afresh, but stay in the
 * segment table, pinned, until their last put releases them. Until then
 * two entries may share a sid; only one of them is ever in the sid table.
 *
 * Each entry has a bit per page, set once the page passed its checksum.
 * Bits are only ever set, with relaxed atomic ORs: a bit set means that
 * page of that very buffer was hashed and matched (the host keeps the
 * buffer unchanged until release), so a read never needs an order between
 * the bit and anything else.
 *
 * Misses go through the limiter (limiter.h), keyed by the sid: the permit
 * holder looks in the cache again (the previous holder may just have
 * inserted the segment), fetches outside the locks, opens the bytes and
 * inserts them, then gives the permit back. When a fetch fails, the permit
 * passes to one waiter, which misses again and retries: one retry at a
 * time, and nobody waits for a permit that is never given back.
 *
 * Counters: hits, misses and refused puts are counted in the stripe the
 * call holds; pinned bytes are not counted at all but summed over the
 * entries by a snapshot, which takes every lock and so sees the state
 * between two calls' steps, as one lock did. `misses` counts gets that did
 * not find the segment at their first look (including those that then
 * found it after waiting), `fetches` every call of the host's fetch,
 * `fetch_failures` the fetches that left nothing in the cache (the fetch's
 * own error, or bytes that failed validation). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1 /* sched_getcpu() */
#endif

#include "internal.h"
#include "limiter.h"
#include "sync.h"

#include "loader.h"

#if SEGIDX__THREADS && defined(__linux__)
#include <sched.h>
#endif

#if SEGIDX__THREADS
typedef atomic_uint_least32_t ld_word;
#else
typedef uint_least32_t ld_word;
#endif

enum { LD_WORD_BITS = 32 };

/* Stripes: one per CPU up to 16 (CPUs beyond share them, modulo); one
 * without threads. A power of two, below the 64 locks ThreadSanitizer
 * follows in one thread (a miss holds them all). */
enum { LD_STRIPES = SEGIDX__THREADS ? 16 : 1 };
/* A stripe's lock and counters: two cache lines (x86's adjacent-line
 * prefetcher moves lines in pairs). An entry's slots: one line each, as
 * every entry has LD_STRIPES of them. */
enum { LD_LINE = 128, LD_SLOT_LINE = 64 };
enum { LD_INITIAL_BUCKETS = 64 };

/* An entry's pins and last get under one stripe's lock. */
typedef union ld_slot {
    struct {
        unsigned pins;
        uint64_t used;   /* the tick of its last get (see the top) */
    } v;
    unsigned char line[LD_SLOT_LINE];
} ld_slot;

typedef struct segidx__copy {
    /* Set at insert; then changed only with every lock held. */
    segidx_sid sid;
    segidx_segment *seg;
    const void *buf;
    size_t len;              /* the bytes counted against the budget */
    void *handle;
    void *mem;               /* the allocation the entry is aligned in */
    bool discarded;          /* out of the sid table, released at its last put */
    uint64_t seq;            /* insertion order: breaks ties of `used` */
    struct segidx__copy *by_sid; /* chain of the sid table */
    struct segidx__copy *by_seg; /* chain of the segment-pointer table */
    struct segidx__copy *next;   /* victims on their way back to the host */
    uint32_t npages;
    _Alignas(LD_SLOT_LINE) ld_slot slot[LD_STRIPES];
    ld_word verified[];      /* a bit per page that passed its checksum */
} ld_entry;

typedef struct ld_stripe {
    segidx__mutex lock;
    uint64_t hits, misses, bad_puts;
} ld_stripe;

#define LD_STRIPE_BYTES ((sizeof(ld_stripe) + LD_LINE - 1) / LD_LINE * LD_LINE)
typedef union ld_stripe_line {
    ld_stripe s;
    unsigned char line[LD_STRIPE_BYTES];
} ld_stripe_line;

struct segidx_loader {
    /* Written with every stripe lock held, read under any one of them. */
    size_t cache_bytes;
    size_t cached_bytes;
    size_t cached_segments;
    uint64_t tick;
    uint64_t seq;
    uint64_t fetches, fetch_failures, evictions, discards;
    ld_entry **sid_buckets, **seg_buckets;
    size_t nbuckets;         /* a power of two, the same for both tables */
    /* Set at creation. */
    segidx_segment_source src;
    segidx__limiter *limiter;
    ld_stripe_line *stripes;
    void *mem, *stripes_mem; /* the allocations the two are aligned in */
    void (*hook)(void *ctx, enum segidx__loader_point at);
    void *hook_ctx;
};

/* ------------------------------------------------------------ memory */

/* `size` bytes starting on a line of their own and ending before the
 * next one's start: nothing another part of the process writes shares a
 * line with them. *mem is what to release, with lines_size(size). */
static size_t lines_size(size_t size)
{
    return size + 2 * LD_LINE;
}

static void *lines_alloc(size_t size, void **mem)
{
    unsigned char *p = segidx__alloc(NULL, lines_size(size));
    if (!p)
        return NULL;
    *mem = p;
    return p + (LD_LINE - (uintptr_t)p % LD_LINE);
}

/* ------------------------------------------------------------ stripes */

/* The stripe of the calling thread: that of the CPU it runs on, so that
 * threads running at once never share one (a thread that moves to another
 * CPU between a get and its put only makes that put take the slow way). */
static unsigned stripe_index(void)
{
#if SEGIDX__THREADS
#if defined(__linux__)
    int cpu = sched_getcpu();
    if (cpu >= 0)
        return (unsigned)cpu % LD_STRIPES;
#endif
    return (unsigned)(segidx__thread_hash() >> 40) % LD_STRIPES;
#else
    return 0;
#endif
}

static void lock_all(segidx_loader *l)
{
    for (size_t i = 0; i < LD_STRIPES; i++)
        segidx__mutex_lock_brief(&l->stripes[i].s.lock);
}

static void unlock_all(segidx_loader *l)
{
    for (size_t i = LD_STRIPES; i-- > 0;)
        segidx__mutex_unlock(&l->stripes[i].s.lock);
}

/* ------------------------------------------------------------ tables */

static size_t seg_hash(const segidx_segment *s)
{
    uint64_t h = (uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ h >> 29);
}

static ld_entry *find_sid(const segidx_loader *l, const segidx_sid *sid)
{
    ld_entry *e = l->sid_buckets[(size_t)segidx__id_hash(sid->bytes) & (l->nbuckets - 1)];
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
        h = &sid_b[(size_t)segidx__id_hash(e->sid.bytes) & (n - 1)];
        e->by_sid = *h;
        *h = e;
    }
    h = &seg_b[seg_hash(e->seg) & (n - 1)];
    e->by_seg = *h;
    *h = e;
}

static void unlink_sid(segidx_loader *l, ld_entry *e)
{
    ld_entry **p = &l->sid_buckets[(size_t)segidx__id_hash(e->sid.bytes) & (l->nbuckets - 1)];
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

/* ------------------------------------------------------------ pins */

/* An entry's pins over every slot. Every lock is held. */
static unsigned entry_pins(const ld_entry *e)
{
    unsigned n = 0;
    for (size_t i = 0; i < LD_STRIPES; i++)
        n += e->slot[i].v.pins;
    return n;
}

/* ------------------------------------------------------------ eviction */

/* Take an entry out of the tables and the counts, onto `*victims`
 * (through `next`) for release after the locks. It must not be pinned. */
static void forget(segidx_loader *l, ld_entry *e, ld_entry **victims)
{
    unlink_tables(l, e);
    l->cached_bytes -= e->len;
    l->cached_segments--;
    e->next = *victims;
    *victims = e;
}

/* The unpinned entry got least recently (see the top), or NULL. */
static ld_entry *lru_victim(const segidx_loader *l)
{
    ld_entry *best = NULL;
    uint64_t best_used = 0;
    for (size_t b = 0; b < l->nbuckets; b++) {
        for (ld_entry *e = l->seg_buckets[b]; e; e = e->by_seg) {
            if (e->discarded)
                continue;
            unsigned pins = 0;
            uint64_t used = 0;
            for (size_t i = 0; i < LD_STRIPES; i++) {
                pins |= e->slot[i].v.pins;
                if (e->slot[i].v.used > used)
                    used = e->slot[i].v.used;
            }
            if (pins)
                continue;
            if (!best || used < best_used || (used == best_used && e->seq < best->seq)) {
                best = e;
                best_used = used;
            }
        }
    }
    return best;
}

/* Unpinned entries leave, least recently got first, until the cache fits
 * its budget (or only pinned bytes remain). Every lock is held. */
static void evict_over_budget(segidx_loader *l, ld_entry **victims)
{
    while (l->cached_bytes > l->cache_bytes) {
        ld_entry *e = lru_victim(l);
        if (!e)
            break;
        forget(l, e, victims);
        l->evictions++;
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
        segidx__release(NULL, e->mem, lines_size(entry_size(e->npages)));
    }
}

static void run_hook(segidx_loader *l, enum segidx__loader_point at)
{
    if (l->hook)
        l->hook(l->hook_ctx, at);
}

void segidx__loader_set_hook(segidx_loader *l,
                             void (*fn)(void *ctx, enum segidx__loader_point at), void *ctx)
{
    l->hook = fn;
    l->hook_ctx = ctx;
}

/* ------------------------------------------------------------ handle */

/* Frees what segidx_loader_new() made: the stripes [0, n) were initialised. */
static void loader_release(segidx_loader *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        segidx__mutex_destroy(&l->stripes[i].s.lock);
    segidx__limiter_free(l->limiter);
    segidx__release(NULL, l->sid_buckets, l->nbuckets * sizeof *l->sid_buckets);
    segidx__release(NULL, l->seg_buckets, l->nbuckets * sizeof *l->seg_buckets);
    segidx__release(NULL, l->stripes_mem, lines_size(LD_STRIPES * sizeof *l->stripes));
    segidx__release(NULL, l->mem, lines_size(sizeof *l));
}

int segidx_loader_new(const segidx_segment_source *src, const segidx_loader_options *opts,
                      segidx_loader **out)
{
    if (!src || !out || !src->fetch || !src->release || src->version < 1)
        return SEGIDX_EINVAL;
    void *mem;
    segidx_loader *l = lines_alloc(sizeof *l, &mem);
    if (!l)
        return SEGIDX_ENOMEM;
    memset(l, 0, sizeof *l);
    l->mem = mem;
    l->src = *src;
    l->cache_bytes = opts && opts->cache_bytes ? opts->cache_bytes : SEGIDX_DEFAULT_CACHE_BYTES;
    unsigned max_fetches =
        opts && opts->max_fetches ? opts->max_fetches : SEGIDX_DEFAULT_MAX_FETCHES;
    l->nbuckets = LD_INITIAL_BUCKETS;
    l->sid_buckets = segidx__alloc_array(NULL, l->nbuckets, sizeof *l->sid_buckets);
    l->seg_buckets = segidx__alloc_array(NULL, l->nbuckets, sizeof *l->seg_buckets);
    l->stripes = lines_alloc(LD_STRIPES * sizeof *l->stripes, &l->stripes_mem);
    int rc = SEGIDX_ENOMEM;
    if (!l->sid_buckets || !l->seg_buckets || !l->stripes ||
        (rc = segidx__limiter_new(max_fetches, &l->limiter)) != SEGIDX_OK) {
        loader_release(l, 0);
        return rc;
    }
    memset(l->stripes, 0, LD_STRIPES * sizeof *l->stripes);
    for (size_t i = 0; i < LD_STRIPES; i++) {
        if (segidx__mutex_init(&l->stripes[i].s.lock) != SEGIDX_OK) {
            loader_release(l, i);
            return SEGIDX_ENOMEM;
        }
    }
    *out = l;
    return SEGIDX_OK;
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
    loader_release(l, LD_STRIPES);
}

/* ------------------------------------------------------------ get / put */

/* Pin a cached entry under stripe `s`, whose lock is held. */
static void pin(const segidx_loader *l, ld_entry *e, unsigned s)
{
    ld_slot *p = &e->slot[s];
    p->v.pins++;
    if (p->v.used != l->tick + 1)
        p->v.used = l->tick + 1;
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
    void *mem;
    ld_entry *e = lines_alloc(entry_size(st.page_count), &mem);
    if (!e) {
        segidx_segment_close(seg);
        return SEGIDX_ENOMEM;
    }
    memset(e, 0, sizeof *e);
    e->mem = mem;
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

    lock_all(l);
    l->fetches++;
    if (rc != SEGIDX_OK) {
        l->fetch_failures++;
        unlock_all(l);
        if (fetched)
            l->src.release(l->src.ctx, sid, buf, len, handle);
        return rc;
    }
    e->handle = handle;
    e->seq = ++l->seq;
    l->tick += 2;
    /* Pinned in the caller's stripe, where its put will look first. */
    ld_slot *p = &e->slot[stripe_index()];
    p->v.pins = 1;
    p->v.used = l->tick;
    link_tables(l->sid_buckets, l->seg_buckets, l->nbuckets, e);
    l->cached_bytes += len;
    if (++l->cached_segments > l->nbuckets)
        tables_grow(l);
    ld_entry *victims = NULL;
    evict_over_budget(l, &victims);
    *out = e;
    unlock_all(l);
    release_victims(l, victims);
    return SEGIDX_OK;
}

/* The entry of `sid`, pinned: from the cache, or fetched. */
static int get_entry(segidx_loader *l, const segidx_sid *sid, ld_entry **out)
{
    unsigned s = stripe_index();
    ld_stripe *st = &l->stripes[s].s;
    segidx__mutex_lock_brief(&st->lock);
    ld_entry *e = find_sid(l, sid);
    if (e) {
        pin(l, e, s);
        st->hits++;
        segidx__mutex_unlock(&st->lock);
        *out = e;
        return SEGIDX_OK;
    }
    st->misses++;
    segidx__mutex_unlock(&st->lock);
    run_hook(l, SEGIDX__LOADER_MISSED);

    int rc = segidx__limiter_acquire(l->limiter, sid->bytes);
    if (rc != SEGIDX_OK)
        return rc;
    /* Whoever held the permit before us may have cached it meanwhile. */
    s = stripe_index();
    st = &l->stripes[s].s;
    segidx__mutex_lock_brief(&st->lock);
    e = find_sid(l, sid);
    if (e)
        pin(l, e, s);
    segidx__mutex_unlock(&st->lock);
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

/* The put that cannot be done in its stripe alone: its slot holds no pin,
 * or the cache is over budget, or the copy was discarded. With every lock
 * held, so that what the last pin lets go leaves in the same step. The
 * segment is looked up again: between the first look and here, with no
 * lock held, other calls ran. */
static void put_locked(segidx_loader *l, const segidx_segment *s)
{
    run_hook(l, SEGIDX__LOADER_PUT_LOCKED);
    ld_entry *victims = NULL;
    lock_all(l);
    unsigned si = stripe_index();
    ld_entry *e = find_seg(l, s);
    unsigned pins = e ? entry_pins(e) : 0;
    if (pins == 0) {
        l->stripes[si].s.bad_puts++;
    } else {
        /* Ours if we have one here, else whichever slot has one: pins are
         * not told apart by who took them. */
        ld_slot *p = &e->slot[si];
        for (size_t i = 0; !p->v.pins; i++)
            p = &e->slot[i];
        p->v.pins--;
        if (pins == 1) {
            if (e->discarded)
                forget(l, e, &victims);
            else
                evict_over_budget(l, &victims);
        }
    }
    unlock_all(l);
    release_victims(l, victims);
}

void segidx_loader_put(segidx_loader *l, const segidx_segment *s)
{
    if (!l || !s)
        return;
    unsigned si = stripe_index();
    ld_stripe *st = &l->stripes[si].s;
    segidx__mutex_lock_brief(&st->lock);
    ld_entry *e = find_seg(l, s);
    if (!e) {
        /* A segment this loader does not hold (any more). */
        st->bad_puts++;
    } else if (e->slot[si].v.pins && !e->discarded && l->cached_bytes <= l->cache_bytes) {
        /* Within budget: whether this pin was the last or not, nothing
         * needs to leave. */
        e->slot[si].v.pins--;
    } else {
        segidx__mutex_unlock(&st->lock);
        put_locked(l, s);
        return;
    }
    segidx__mutex_unlock(&st->lock);
}

void segidx__loader_discard(segidx_loader *l, segidx__copy *e)
{
    lock_all(l);
    if (!e->discarded && entry_pins(e)) {
        unlink_sid(l, e);
        e->discarded = true;
        l->discards++;
    }
    unlock_all(l);
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
    memset(out, 0, sizeof *out);
    if (!l)
        return;
    lock_all(l);
    out->fetches = l->fetches;
    out->fetch_failures = l->fetch_failures;
    out->evictions = l->evictions;
    out->cached_bytes = l->cached_bytes;
    out->cached_segments = l->cached_segments;
    out->discards = l->discards;
    for (size_t i = 0; i < LD_STRIPES; i++) {
        const ld_stripe *st = &l->stripes[i].s;
        out->hits += st->hits;
        out->misses += st->misses;
        out->bad_puts += st->bad_puts;
    }
    for (size_t b = 0; b < l->nbuckets; b++)
        for (const ld_entry *e = l->seg_buckets[b]; e; e = e->by_seg)
            if (entry_pins(e))
                out->pinned_bytes += e->len;
    unlock_all(l);
}
