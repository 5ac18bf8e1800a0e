/* The segment loader: a cache of open segments over a host's segment
 * source, bounded in bytes, with pins and a request limiter.
 *
 * State: LD_SHARDS shards, each a mutex and two chained hash tables, on
 * cache lines of their own: the entries whose sid hashes to the shard (for
 * get) and the entries whose segment pointer hashes to it (for put; a put
 * must not read the segment it is handed, which may be long gone). Every
 * entry is in one segment table; every entry not discarded is in one sid
 * table. The loader's own fields (budget, bytes cached, the clock) are
 * written only with every shard lock held, so that one shard lock is
 * enough to read them.
 *
 * The hit path writes no line that another segment's hit writes: a get
 * locks its sid's shard, looks the sid up, adds a pin and counts the hit
 * there; a put locks its segment's shard, looks the pointer up and takes
 * the pin off. Pins are atomic, since the two sides of one entry's count
 * may hold different locks; the count only ever goes up under the sid
 * shard's lock and down under the segment shard's lock, so a put that
 * sees pins > 0 under its lock can take one off without a compare loop.
 * Everything else (misses, evictions, discards, statistics) takes every
 * shard lock, in shard order, and may look at anything.
 *
 * Eviction is least recently got first, over unpinned entries, by a clock
 * (`tick`) that only moves when a segment is inserted: a hit stamps its
 * entry with tick + 1, an insert advances tick by 2 and stamps the new
 * entry with it. So an entry got after another was inserted counts as
 * more recent than it; entries got between the same two inserts count as
 * equally recent, and among those the one inserted first goes first. That
 * costs a hit no write to a shared clock, where an exact LRU list needs a
 * relink under one lock on every unpin. The victim is found by a walk over
 * the entries, O(cached segments) per eviction, next to a fetch.
 *
 * The budget: after every insert and every last unpin, entries leave while
 * the cache holds more than cache_bytes, so between calls either
 * cached_bytes <= cache_bytes or every cached byte is pinned: the cache
 * exceeds its budget by at most the bytes pinned. A put that drops a last
 * pin checks cached_bytes under its shard lock (no insert can move it
 * meanwhile); when the cache is within budget nothing needs to leave and
 * the put is done, otherwise it takes every lock and evicts. Evicted
 * entries leave the tables under the locks and are closed and released to
 * the host after them, by the thread whose call evicted them; an entry is
 * in the tables until then and in no table afterwards, so it is released
 * once.
 *
 * Discarded entries (a page failed its checksum: loader.h) leave the sid
 * table at once, so that the next get fetches afresh, but stay in the
 * segment table, pinned, until their last put releases them. Until then
 * two entries may share a sid; only one of them is ever in a sid table.
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
 * inserted the segment), fetches outside the locks, opens the bytes and
 * inserts them, then gives the permit back. When a fetch fails, the permit
 * passes to one waiter, which misses again and retries: one retry at a
 * time, and nobody waits for a permit that is never given back.
 *
 * Counters: hits, misses (in the sid's shard) and refused puts (in the
 * segment's shard) are counted where the call already holds a lock, and
 * so are pinned bytes: a get that pins an unpinned entry adds its bytes to
 * its shard, a put that unpins one takes them from its own, and only the
 * sum over the shards means anything. A snapshot takes every lock, so it
 * sees the state between two calls' steps, as one lock did. `misses`
 * counts gets that did not find the segment at their first look
 * (including those that then found it after waiting), `fetches` every call
 * of the host's fetch, `fetch_failures` the fetches that left nothing in
 * the cache (the fetch's own error, or bytes that failed validation). */
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

/* Enough shards that two threads hitting different segments seldom meet
 * in one; few enough that taking them all (a miss, a snapshot) stays
 * cheap, and below the 64 locks ThreadSanitizer follows in one thread.
 * Without threads there is nothing to spread. A power of two. */
enum { LD_SHARDS = SEGIDX__THREADS ? 32 : 1 };
/* Two cache lines: x86's adjacent-line prefetcher moves lines in pairs. */
enum { LD_LINE = 128 };
enum { LD_INITIAL_BUCKETS = 8 };

typedef struct segidx__copy {
    segidx_sid sid;
    segidx_segment *seg;
    const void *buf;
    size_t len;              /* the bytes counted against the budget */
    void *handle;
    segidx__atomic_uint pins; /* up under the sid's shard lock, down under the segment's */
    bool discarded;          /* out of the sid table, released at its last put */
    uint64_t used;           /* the tick of its last get (see the top) */
    uint64_t seq;            /* insertion order: breaks ties of `used` */
    struct segidx__copy *by_sid; /* chain of its sid table */
    struct segidx__copy *by_seg; /* chain of its segment table */
    struct segidx__copy *next;   /* victims on their way back to the host */
    uint32_t npages;
    ld_word verified[];      /* a bit per page that passed its checksum */
} ld_entry;

typedef struct ld_shard {
    segidx__mutex lock;
    ld_entry **sid_b, **seg_b;
    size_t sid_nb, seg_nb;   /* bucket counts, powers of two */
    size_t sid_n, seg_n;     /* entries in each table */
    uint64_t hits, misses, bad_puts;
    size_t pinned;           /* bytes pinned here minus unpinned here, mod 2^N */
} ld_shard;

#define LD_SHARD_BYTES ((sizeof(ld_shard) + LD_LINE - 1) / LD_LINE * LD_LINE)
typedef union ld_slot {
    ld_shard s;
    unsigned char line[LD_SHARD_BYTES];
} ld_slot;

struct segidx_loader {
    /* Written with every shard lock held, read under any one of them. */
    size_t cache_bytes;
    size_t cached_bytes;
    size_t cached_segments;
    uint64_t tick;
    uint64_t seq;
    uint64_t fetches, fetch_failures, evictions, discards;
    /* Set at creation. */
    segidx_segment_source src;
    segidx__limiter *limiter;
    ld_slot *shards;
    void *mem, *shards_mem;  /* the allocations the two are aligned in */
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

/* ------------------------------------------------------------ tables */

static uint64_t seg_hash(const segidx_segment *s)
{
    uint64_t h = (uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull;
    return h ^ h >> 29;
}

/* Buckets use a hash's low bits, shards its high ones. */
static ld_shard *shard_of(const segidx_loader *l, uint64_t h)
{
    return &l->shards[(h >> 40) & (LD_SHARDS - 1)].s;
}

static void lock_all(segidx_loader *l)
{
    for (size_t i = 0; i < LD_SHARDS; i++)
        segidx__mutex_lock(&l->shards[i].s.lock);
}

static void unlock_all(segidx_loader *l)
{
    for (size_t i = LD_SHARDS; i-- > 0;)
        segidx__mutex_unlock(&l->shards[i].s.lock);
}

static ld_entry *find_sid(const ld_shard *sh, uint64_t h, const segidx_sid *sid)
{
    ld_entry *e = sh->sid_b[h & (sh->sid_nb - 1)];
    while (e && !segidx__id_equal(e->sid.bytes, sid->bytes))
        e = e->by_sid;
    return e;
}

static ld_entry *find_seg(const ld_shard *sh, uint64_t h, const segidx_segment *s)
{
    ld_entry *e = sh->seg_b[h & (sh->seg_nb - 1)];
    while (e && e->seg != s)
        e = e->by_seg;
    return e;
}

/* Double a shard's sid table. Failing to grow only makes chains longer,
 * so it is not an error. */
static void sid_table_grow(ld_shard *sh)
{
    size_t n = sh->sid_nb * 2;
    ld_entry **b = segidx__alloc_array(NULL, n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < sh->sid_nb; i++) {
        for (ld_entry *e = sh->sid_b[i], *next; e; e = next) {
            next = e->by_sid;
            ld_entry **head = &b[segidx__id_hash(e->sid.bytes) & (n - 1)];
            e->by_sid = *head;
            *head = e;
        }
    }
    segidx__release(NULL, sh->sid_b, sh->sid_nb * sizeof *sh->sid_b);
    sh->sid_b = b;
    sh->sid_nb = n;
}

static void seg_table_grow(ld_shard *sh)
{
    size_t n = sh->seg_nb * 2;
    ld_entry **b = segidx__alloc_array(NULL, n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < sh->seg_nb; i++) {
        for (ld_entry *e = sh->seg_b[i], *next; e; e = next) {
            next = e->by_seg;
            ld_entry **head = &b[seg_hash(e->seg) & (n - 1)];
            e->by_seg = *head;
            *head = e;
        }
    }
    segidx__release(NULL, sh->seg_b, sh->seg_nb * sizeof *sh->seg_b);
    sh->seg_b = b;
    sh->seg_nb = n;
}

/* The linking and unlinking below run with every lock held. */
static void link_sid(segidx_loader *l, ld_entry *e)
{
    uint64_t h = segidx__id_hash(e->sid.bytes);
    ld_shard *sh = shard_of(l, h);
    ld_entry **head = &sh->sid_b[h & (sh->sid_nb - 1)];
    e->by_sid = *head;
    *head = e;
    if (++sh->sid_n > sh->sid_nb)
        sid_table_grow(sh);
}

static void link_seg(segidx_loader *l, ld_entry *e)
{
    uint64_t h = seg_hash(e->seg);
    ld_shard *sh = shard_of(l, h);
    ld_entry **head = &sh->seg_b[h & (sh->seg_nb - 1)];
    e->by_seg = *head;
    *head = e;
    if (++sh->seg_n > sh->seg_nb)
        seg_table_grow(sh);
}

static void unlink_sid(segidx_loader *l, ld_entry *e)
{
    uint64_t h = segidx__id_hash(e->sid.bytes);
    ld_shard *sh = shard_of(l, h);
    ld_entry **p = &sh->sid_b[h & (sh->sid_nb - 1)];
    while (*p != e)
        p = &(*p)->by_sid;
    *p = e->by_sid;
    sh->sid_n--;
}

static void unlink_seg(segidx_loader *l, ld_entry *e)
{
    uint64_t h = seg_hash(e->seg);
    ld_shard *sh = shard_of(l, h);
    ld_entry **p = &sh->seg_b[h & (sh->seg_nb - 1)];
    while (*p != e)
        p = &(*p)->by_seg;
    *p = e->by_seg;
    sh->seg_n--;
}

/* ------------------------------------------------------------ eviction */

/* Take an entry out of the tables and the counts, onto `*victims`
 * (through `next`) for release after the locks. It must not be pinned. */
static void forget(segidx_loader *l, ld_entry *e, ld_entry **victims)
{
    if (!e->discarded)
        unlink_sid(l, e);
    unlink_seg(l, e);
    l->cached_bytes -= e->len;
    l->cached_segments--;
    e->next = *victims;
    *victims = e;
}

/* The unpinned entry got least recently (see the top), or NULL. */
static ld_entry *lru_victim(const segidx_loader *l)
{
    ld_entry *best = NULL;
    for (size_t i = 0; i < LD_SHARDS; i++) {
        const ld_shard *sh = &l->shards[i].s;
        for (size_t b = 0; b < sh->seg_nb; b++) {
            for (ld_entry *e = sh->seg_b[b]; e; e = e->by_seg) {
                if (e->discarded || segidx__atomic_uint_load(&e->pins) != 0)
                    continue;
                if (!best || e->used < best->used ||
                    (e->used == best->used && e->seq < best->seq))
                    best = e;
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
        segidx__release(NULL, e, entry_size(e->npages));
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

/* Frees the shards [0, n) were initialised, and the loader. */
static void loader_release(segidx_loader *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ld_shard *sh = &l->shards[i].s;
        segidx__mutex_destroy(&sh->lock);
        segidx__release(NULL, sh->sid_b, sh->sid_nb * sizeof *sh->sid_b);
        segidx__release(NULL, sh->seg_b, sh->seg_nb * sizeof *sh->seg_b);
    }
    segidx__limiter_free(l->limiter);
    segidx__release(NULL, l->shards_mem, lines_size(LD_SHARDS * sizeof(ld_slot)));
    segidx__release(NULL, l->mem, lines_size(sizeof *l));
}

static int shard_init(ld_shard *sh)
{
    memset(sh, 0, sizeof *sh);
    sh->sid_nb = sh->seg_nb = LD_INITIAL_BUCKETS;
    sh->sid_b = segidx__alloc_array(NULL, sh->sid_nb, sizeof *sh->sid_b);
    sh->seg_b = segidx__alloc_array(NULL, sh->seg_nb, sizeof *sh->seg_b);
    if (sh->sid_b && sh->seg_b && segidx__mutex_init(&sh->lock) == SEGIDX_OK)
        return SEGIDX_OK;
    segidx__release(NULL, sh->sid_b, sh->sid_nb * sizeof *sh->sid_b);
    segidx__release(NULL, sh->seg_b, sh->seg_nb * sizeof *sh->seg_b);
    return SEGIDX_ENOMEM;
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
    l->shards = lines_alloc(LD_SHARDS * sizeof(ld_slot), &l->shards_mem);
    if (!l->shards) {
        loader_release(l, 0);
        return SEGIDX_ENOMEM;
    }
    int rc = segidx__limiter_new(max_fetches, &l->limiter);
    if (rc != SEGIDX_OK) {
        loader_release(l, 0);
        return rc;
    }
    for (size_t i = 0; i < LD_SHARDS; i++) {
        if (shard_init(&l->shards[i].s) != SEGIDX_OK) {
            loader_release(l, i);
            return SEGIDX_ENOMEM;
        }
    }
    *out = l;
    return SEGIDX_OK;
}

/* Every entry is released, pinned or not: a pinned one is the caller's
 * bug (its pointer dangles from here on), but leaking the host's bytes
 * would be a second one. Every entry is in one segment table. */
void segidx_loader_free(segidx_loader *l)
{
    if (!l)
        return;
    ld_entry *all = NULL;
    for (size_t i = 0; i < LD_SHARDS; i++) {
        ld_shard *sh = &l->shards[i].s;
        for (size_t b = 0; b < sh->seg_nb; b++) {
            for (ld_entry *e = sh->seg_b[b], *next; e; e = next) {
                next = e->by_seg;
                e->next = all;
                all = e;
            }
        }
    }
    release_victims(l, all);
    loader_release(l, LD_SHARDS);
}

/* ------------------------------------------------------------ get / put */

/* Pin a cached entry found in `sh`, its sid's shard, whose lock is held. */
static void pin(const segidx_loader *l, ld_shard *sh, ld_entry *e)
{
    if (segidx__atomic_uint_add(&e->pins, 1) == 0)
        sh->pinned += e->len;
    if (e->used != l->tick + 1)
        e->used = l->tick + 1;
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
    segidx__atomic_uint_init(&e->pins, 0);
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
    segidx__atomic_uint_init(&e->pins, 1);
    e->seq = ++l->seq;
    l->tick += 2;
    e->used = l->tick;
    link_sid(l, e);
    link_seg(l, e);
    shard_of(l, segidx__id_hash(sid->bytes))->pinned += len;
    l->cached_bytes += len;
    l->cached_segments++;
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
    uint64_t h = segidx__id_hash(sid->bytes);
    ld_shard *sh = shard_of(l, h);
    segidx__mutex_lock_brief(&sh->lock);
    ld_entry *e = find_sid(sh, h, sid);
    if (e) {
        pin(l, sh, e);
        sh->hits++;
        segidx__mutex_unlock(&sh->lock);
        *out = e;
        return SEGIDX_OK;
    }
    sh->misses++;
    segidx__mutex_unlock(&sh->lock);
    run_hook(l, SEGIDX__LOADER_MISSED);

    int rc = segidx__limiter_acquire(l->limiter, sid->bytes);
    if (rc != SEGIDX_OK)
        return rc;
    /* Whoever held the permit before us may have cached it meanwhile. */
    segidx__mutex_lock_brief(&sh->lock);
    e = find_sid(sh, h, sid);
    if (e)
        pin(l, sh, e);
    segidx__mutex_unlock(&sh->lock);
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

/* A put whose pin may be the last while the cache is over budget, or of a
 * discarded copy: with every lock held, so that what the last pin lets go
 * leaves in the same step. The put looks the segment up again: between
 * its first look and here other calls ran. */
static void put_locked(segidx_loader *l, const segidx_segment *s)
{
    run_hook(l, SEGIDX__LOADER_PUT_LOCKED);
    ld_entry *victims = NULL;
    lock_all(l);
    uint64_t h = seg_hash(s);
    ld_shard *sh = shard_of(l, h);
    ld_entry *e = find_seg(sh, h, s);
    if (!e || segidx__atomic_uint_load(&e->pins) == 0) {
        sh->bad_puts++;
    } else if (segidx__atomic_uint_sub(&e->pins, 1) == 1) {
        sh->pinned -= e->len;
        if (e->discarded)
            forget(l, e, &victims);
        else
            evict_over_budget(l, &victims);
    }
    unlock_all(l);
    release_victims(l, victims);
}

void segidx_loader_put(segidx_loader *l, const segidx_segment *s)
{
    if (!l || !s)
        return;
    uint64_t h = seg_hash(s);
    ld_shard *sh = shard_of(l, h);
    segidx__mutex_lock_brief(&sh->lock);
    ld_entry *e = find_seg(sh, h, s);
    /* A segment this loader does not hold, or one put more often than it
     * was got: dropping a pin here would take someone else's. Pins only
     * go down under this lock, so the count seen here stays above 0. */
    unsigned pins = e ? segidx__atomic_uint_load(&e->pins) : 0;
    if (pins == 0) {
        sh->bad_puts++;
    } else if (pins == 1 && (e->discarded || l->cached_bytes > l->cache_bytes)) {
        segidx__mutex_unlock(&sh->lock);
        put_locked(l, s);
        return;
    } else if (segidx__atomic_uint_sub(&e->pins, 1) == 1) {
        /* The last pin, within budget (a get may have added one since the
         * look: then this was not the last). */
        sh->pinned -= e->len;
    }
    segidx__mutex_unlock(&sh->lock);
}

void segidx__loader_discard(segidx_loader *l, segidx__copy *e)
{
    lock_all(l);
    if (!e->discarded && segidx__atomic_uint_load(&e->pins)) {
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
    for (size_t i = 0; i < LD_SHARDS; i++) {
        const ld_shard *sh = &l->shards[i].s;
        out->hits += sh->hits;
        out->misses += sh->misses;
        out->bad_puts += sh->bad_puts;
        out->pinned_bytes += sh->pinned;
    }
    unlock_all(l);
}
