/* segment_ranges.h: reading segments from an object store by byte range.
 *
 * The segment format puts everything a reader needs to find a page in the
 * segment's tail (page checksums, index, footer; docs/FORMAT.md). This
 * header turns that into a host's read path over any object store that
 * serves byte ranges (S3 and its kin; examples/s3_segments.h plugs S3 in
 * through libcurl, the benchmark an in-memory object):
 *
 *   - cold: a segment is opened from ONE ranged GET of its tail, then
 *     every page costs ONE ranged GET of exactly its bytes, verified
 *     against its checksum before anyone sees it;
 *   - hot: a segment that has had `hot_pages` pages fetched by range (this
 *     read's pages counted in) is fetched whole, once, kept, and read in
 *     place from then on;
 *   - a segidx_segment_source (whole-object GETs) for the library's own
 *     loader and segidx_read_pages(), for hosts that want only that.
 *
 * How a host uses it:
 *
 *     seg_store store = { my_get, my_size, my_ctx };   // or s3_segment_store()
 *     seg_ranges *r;
 *     seg_ranges_new(&store, NULL, &r);                // NULL: defaults
 *     rc = seg_ranges_read_pages(r, vi, &vid, lsn, offsets, fn, ctx);
 *     seg_ranges_stats_get(r, &st);                    // requests, bytes
 *     seg_ranges_free(r);
 *
 * seg_ranges_read_pages() keeps segidx_read_pages()'s contract: the
 * segments come from the catalog (segidx_volume_find_segments()), every
 * page must be in its segment at exactly its commit's LSN and hold its
 * checksum, and only when every asked page is resolved and checked is `fn`
 * called, once per offset in ascending order (page NULL, lsn 0: never
 * written). A damaged page makes the read SEGIDX_ECORRUPT with no `fn`
 * call; a damaged whole copy is dropped, so the next read fetches afresh.
 *
 * The range policy, and why:
 *   - The tail is read with a suffix range (`bytes=-N`), which needs no
 *     length: one GET. N is `tail_guess` (64 KiB: a 16 MiB segment of
 *     4 KiB pages has a tail of about 42 KiB) for the first segment, then
 *     the longest tail seen plus a quarter, rounded up to 4 KiB: segments
 *     of one host come in few sizes, so one GET nearly always holds the
 *     whole tail. A longer tail costs a second GET for the rest (and grows
 *     the guess).
 *   - Some servers ignore suffix ranges and answer bytes from the start.
 *     The reply's Content-Range gives that away (it does not end at the
 *     object's last byte); the store then stays in explicit-range mode for
 *     good: the object's length from a HEAD, then `bytes=L-N-(L-1)`. That
 *     costs one HEAD (no body) per segment opened.
 *   - Each reply is checked against what was asked: position, length and
 *     object length. Anything else is SEGIDX_EIO, never a page.
 *
 * The hot policy: a page GET costs a round trip and a request fee; a whole
 * GET costs the segment's bytes once. After `hot_pages` (default 16) pages
 * of one segment, further pages from it are likely (reads cluster), and 16
 * round trips cost about what one 16 MiB transfer does on a datacenter
 * link. Whole copies and tails share one byte budget (`cache_bytes`),
 * least recently used first out.
 *
 * Not thread-safe: one seg_ranges per thread (its store, e.g. one curl
 * handle, usually is too). Its caches are its own; segments are immutable,
 * so nothing ever goes stale.
 *
 * Single header, all functions static inline (so that a program may use
 * only some of them without warnings). */
#ifndef SEGMENT_RANGES_H
#define SEGMENT_RANGES_H

#include <segidx.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the store */

enum seg_get_kind {
    SEG_GET_WHOLE,  /* the whole object */
    SEG_GET_SUFFIX, /* its last `n` bytes (all of it if shorter) */
    SEG_GET_RANGE,  /* `n` bytes from `first` */
};

typedef struct seg_get {
    enum seg_get_kind kind;
    uint64_t first;
    uint64_t n;
    uint64_t total;  /* the object's length when known (the reply must
                        agree: another length is another object), or 0 */
} seg_get;

/* What the server sent: `len` bytes (malloc'd, the caller frees) that the
 * server says are bytes [at, at + len) of an object of `total` bytes. The
 * store checks its protocol (statuses, Content-Length against the body,
 * Content-Range well-formed and matching the body); seg_ranges checks that
 * the answer is what it asked for. */
typedef struct seg_reply {
    uint8_t *body;
    uint64_t len;
    uint64_t at;
    uint64_t total;
} seg_reply;

/* An object store, one object per segment. `get` returns 0 with a reply,
 * SEGIDX_ENOTFOUND for a missing object, SEGIDX_EIO (or another SEGIDX_E*
 * code) for anything else, and then owns nothing. `size` gives the
 * object's length (a HEAD); it is needed only for servers that ignore
 * suffix ranges, and may be NULL otherwise. */
typedef struct seg_store {
    int (*get)(void *ctx, const segidx_sid *sid, const seg_get *req, seg_reply *rep);
    int (*size)(void *ctx, const segidx_sid *sid, uint64_t *len);
    void *ctx;
} seg_store;

/* ------------------------------------------------------------ options */

typedef struct seg_ranges_options {
    size_t tail_guess;   /* first suffix read; 0 = 64 KiB */
    unsigned hot_pages;  /* page GETs of a segment before it is fetched
                            whole; 0 = 16; UINT32_MAX: never */
    size_t cache_bytes;  /* tails and whole copies kept; 0 = 256 MiB */
} seg_ranges_options;

#define SEG_RANGES_TAIL_GUESS ((size_t)64 << 10)
#define SEG_RANGES_HOT_PAGES 16u
#define SEG_RANGES_CACHE_BYTES ((size_t)256 << 20)

/* What went over the wire (bodies only: headers are not counted). */
typedef struct seg_ranges_stats {
    uint64_t tail_gets, tail_bytes;   /* suffix / tail range GETs */
    uint64_t page_gets, page_bytes;   /* one page each */
    uint64_t whole_gets, whole_bytes; /* hot segments, and the loader source */
    uint64_t heads;                   /* lengths asked (suffix-less servers) */
    uint64_t refused_bytes;           /* bodies received but refused */
    uint64_t opens;                   /* segments opened from their tail */
    uint64_t promotions;              /* segments that went hot */
    uint64_t corrupt_pages;           /* pages that failed their checksum */
    int suffix_ignored;               /* the server ignores `bytes=-N` */
} seg_ranges_stats;

/* ------------------------------------------------------------ internals */

/* One segment we hold: its tail (cold) or all of it (hot). */
struct seg_entry {
    segidx_sid sid;
    uint8_t *buf;           /* the bytes `seg` was opened on (malloc'd) */
    size_t buf_len;
    segidx_segment *seg;
    int hot;                /* seg is the whole segment */
    uint64_t seg_len;       /* the object's length */
    uint64_t page_gets;     /* pages fetched by range since the tail opened */
    uint64_t last_use;
};

typedef struct seg_ranges {
    seg_store store;
    seg_ranges_options opt;
    seg_ranges_stats st;
    size_t tail_hint;       /* the next suffix read's size */
    size_t tail_max;        /* the longest tail seen */
    struct seg_entry *e;
    size_t n, cap;
    size_t held;            /* bytes of every entry's buffer */
    uint64_t clock;
} seg_ranges;

static inline int seg_ranges_new(const seg_store *store, const seg_ranges_options *opts,
                                 seg_ranges **out)
{
    if (!store || !store->get || !out)
        return SEGIDX_EINVAL;
    seg_ranges *r = calloc(1, sizeof *r);
    if (!r)
        return SEGIDX_ENOMEM;
    r->store = *store;
    if (opts)
        r->opt = *opts;
    if (!r->opt.tail_guess)
        r->opt.tail_guess = SEG_RANGES_TAIL_GUESS;
    if (r->opt.tail_guess < SEGIDX_SEGMENT_FOOTER_BYTES)
        r->opt.tail_guess = SEGIDX_SEGMENT_FOOTER_BYTES;
    if (!r->opt.hot_pages)
        r->opt.hot_pages = SEG_RANGES_HOT_PAGES;
    if (!r->opt.cache_bytes)
        r->opt.cache_bytes = SEG_RANGES_CACHE_BYTES;
    r->tail_hint = r->opt.tail_guess;
    *out = r;
    return SEGIDX_OK;
}

static inline void seg_entry_drop(seg_ranges *r, size_t i)
{
    segidx_segment_close(r->e[i].seg);
    free(r->e[i].buf);
    r->held -= r->e[i].buf_len;
    r->e[i] = r->e[--r->n];
}

static inline void seg_ranges_free(seg_ranges *r)
{
    if (!r)
        return;
    while (r->n)
        seg_entry_drop(r, r->n - 1);
    free(r->e);
    free(r);
}

static inline void seg_ranges_stats_get(const seg_ranges *r, seg_ranges_stats *out)
{
    *out = r->st;
}

/* Make room for `len` more bytes, least recently used first; `keep`
 * (an index, or SIZE_MAX) is the entry being worked on and stays. The
 * budget is soft by one entry: a single segment larger than the budget is
 * still held while it is read. */
static inline void seg_ranges_evict(seg_ranges *r, size_t len, size_t *keep)
{
    while (r->held + len > r->opt.cache_bytes) {
        size_t victim = SIZE_MAX;
        for (size_t i = 0; i < r->n; i++)
            if (i != *keep && (victim == SIZE_MAX || r->e[i].last_use < r->e[victim].last_use))
                victim = i;
        if (victim == SIZE_MAX)
            return;
        if (*keep == r->n - 1)
            *keep = victim; /* the last entry moves into the victim's slot */
        seg_entry_drop(r, victim);
    }
}

static inline int seg_get_checked(seg_ranges *r, const segidx_sid *sid, const seg_get *req,
                                  seg_reply *rep, int *suffix_ignored);

/* Ask the store and check that the reply is exactly what was asked. */
static inline int seg_ranges_get(seg_ranges *r, const segidx_sid *sid, const seg_get *req,
                                 seg_reply *rep)
{
    return seg_get_checked(r, sid, req, rep, NULL);
}

static inline int seg_get_checked(seg_ranges *r, const segidx_sid *sid, const seg_get *req,
                                  seg_reply *rep, int *suffix_ignored)
{
    memset(rep, 0, sizeof *rep);
    int rc = r->store.get(r->store.ctx, sid, req, rep);
    if (rc)
        return rc < 0 ? rc : SEGIDX_EIO;
    int ok = rep->body && rep->at <= rep->total && rep->len <= rep->total - rep->at &&
             (!req->total || rep->total == req->total);
    if (ok) {
        switch (req->kind) {
        case SEG_GET_WHOLE:
            ok = rep->at == 0 && rep->len == rep->total;
            break;
        case SEG_GET_SUFFIX:
            ok = rep->at + rep->len == rep->total &&
                 rep->len == (req->n < rep->total ? req->n : rep->total);
            if (!ok && suffix_ignored && rep->total) {
                *suffix_ignored = 1; /* the length it told is still news */
                r->st.refused_bytes += rep->len;
                free(rep->body);
                rep->body = NULL;
                return SEGIDX_EIO;
            }
            break;
        case SEG_GET_RANGE:
            ok = rep->at == req->first && rep->len == req->n;
            break;
        }
    }
    if (!ok) {
        r->st.refused_bytes += rep->len;
        free(rep->body);
        memset(rep, 0, sizeof *rep);
        return SEGIDX_EIO;
    }
    return SEGIDX_OK;
}

/* The last `n` bytes of an object of `len` bytes (n <= len). */
static inline int seg_get_last(seg_ranges *r, const segidx_sid *sid, uint64_t len, uint64_t n,
                               seg_reply *rep)
{
    seg_get req = { SEG_GET_RANGE, len - n, n, len };
    return seg_ranges_get(r, sid, &req, rep);
}

/* Open `sid` from its tail: one suffix GET in the common case. */
static inline int seg_open_tail(seg_ranges *r, const segidx_sid *sid, struct seg_entry *e)
{
    seg_reply rep;
    int rc;
    uint64_t len = 0;
    if (!r->st.suffix_ignored) {
        seg_get req = { SEG_GET_SUFFIX, 0, r->tail_hint, 0 };
        int ignored = 0;
        rc = seg_get_checked(r, sid, &req, &rep, &ignored);
        if (rc && ignored) {
            /* The reply's object length is all we take from it; from now
             * on lengths come from HEAD. */
            r->st.suffix_ignored = 1;
            len = rep.total;
            if (!len)
                return SEGIDX_EIO;
            rc = seg_get_last(r, sid, len, r->tail_hint < len ? r->tail_hint : len, &rep);
        }
    } else {
        if (!r->store.size)
            return SEGIDX_EIO;
        r->st.heads++;
        if ((rc = r->store.size(r->store.ctx, sid, &len)))
            return rc < 0 ? rc : SEGIDX_EIO;
        if (!len)
            return SEGIDX_ECORRUPT;
        rc = seg_get_last(r, sid, len, r->tail_hint < len ? r->tail_hint : len, &rep);
    }
    if (rc)
        return rc;
    r->st.tail_gets++;
    r->st.tail_bytes += rep.len;
    len = rep.total;
    if (rep.len < SEGIDX_SEGMENT_FOOTER_BYTES || len > SIZE_MAX) {
        free(rep.body);
        return SEGIDX_ECORRUPT; /* shorter than a footer */
    }
    size_t tail_len;
    rc = segidx_segment_tail_len(rep.body + rep.len - SEGIDX_SEGMENT_FOOTER_BYTES, len,
                                 &tail_len);
    if (rc) {
        free(rep.body);
        return rc;
    }
    if (tail_len > rep.len) {
        /* The guess was short: fetch the rest in front of what we have,
         * and guess this much next time. */
        uint8_t *all = malloc(tail_len);
        seg_reply more;
        seg_get req = { SEG_GET_RANGE, len - tail_len, tail_len - rep.len, len };
        rc = all ? seg_ranges_get(r, sid, &req, &more) : SEGIDX_ENOMEM;
        if (rc) {
            free(all);
            free(rep.body);
            return rc;
        }
        r->st.tail_gets++;
        r->st.tail_bytes += more.len;
        memcpy(all, more.body, more.len);
        memcpy(all + more.len, rep.body, rep.len);
        free(more.body);
        free(rep.body);
        rep.body = all;
        rep.len = tail_len;
    }
    /* Next time ask for this tail and a quarter more: segments of one
     * host are of a few sizes, so one GET nearly always suffices, and a
     * longer tail costs one more GET and grows the guess. */
    if (tail_len > r->tail_max)
        r->tail_max = tail_len;
    r->tail_hint = (r->tail_max + r->tail_max / 4 + 4095) & ~(size_t)4095;
    rc = segidx_segment_open_tail(rep.body + (rep.len - tail_len), tail_len, len, &e->seg);
    if (rc) {
        free(rep.body);
        return rc;
    }
    e->buf = rep.body;
    e->buf_len = rep.len;
    e->seg_len = len;
    e->hot = 0;
    r->st.opens++;
    return SEGIDX_OK;
}

/* Fetch the whole object and open it: ready for segidx_segment_find(). */
static inline int seg_get_whole(seg_ranges *r, const segidx_sid *sid, seg_reply *rep)
{
    seg_get req = { SEG_GET_WHOLE, 0, 0, 0 };
    int rc = seg_ranges_get(r, sid, &req, rep);
    if (rc)
        return rc;
    r->st.whole_gets++;
    r->st.whole_bytes += rep->len;
    if (rep->len > SIZE_MAX) {
        free(rep->body);
        return SEGIDX_EFULL;
    }
    return SEGIDX_OK;
}

static inline int seg_make_hot(seg_ranges *r, struct seg_entry *e)
{
    seg_reply rep;
    segidx_segment *seg;
    int rc = seg_get_whole(r, &e->sid, &rep);
    if (rc)
        return rc;
    if ((rc = segidx_segment_open(rep.body, (size_t)rep.len, &seg))) {
        free(rep.body);
        return rc;
    }
    segidx_segment_close(e->seg);
    free(e->buf);
    r->held -= e->buf_len;
    e->seg = seg;
    e->buf = rep.body;
    e->buf_len = (size_t)rep.len;
    e->seg_len = rep.len;
    e->hot = 1;
    r->held += e->buf_len;
    r->st.promotions++;
    return SEGIDX_OK;
}

/* The entry for `sid`, opened from its tail if it is new. */
static inline int seg_entry_get(seg_ranges *r, const segidx_sid *sid, size_t *out)
{
    for (size_t i = 0; i < r->n; i++) {
        if (!memcmp(r->e[i].sid.bytes, sid->bytes, sizeof sid->bytes)) {
            r->e[i].last_use = ++r->clock;
            *out = i;
            return SEGIDX_OK;
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        struct seg_entry *e = realloc(r->e, cap * sizeof *e);
        if (!e)
            return SEGIDX_ENOMEM;
        r->e = e;
        r->cap = cap;
    }
    struct seg_entry e = { .sid = *sid };
    int rc = seg_open_tail(r, sid, &e);
    if (rc)
        return rc;
    e.last_use = ++r->clock;
    size_t none = SIZE_MAX;
    seg_ranges_evict(r, e.buf_len, &none);
    r->e[r->n] = e;
    r->held += e.buf_len;
    *out = r->n++;
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ read path */

struct seg_slot {
    segidx_offset off;
    segidx_lsn lsn;
    uint8_t *page; /* a copy, or NULL: never written */
};

struct seg_read {
    seg_ranges *r;
    const segidx_vid *vid;
    struct seg_slot *slots;
    size_t n_slots;
    size_t entry;        /* the entry of the hit being resolved */
    segidx_lsn hit_lsn;
};

static inline int seg_add_slot(segidx_offset o, void *ctx)
{
    struct seg_read *rd = ctx;
    rd->slots[rd->n_slots++] = (struct seg_slot){ o, 0, NULL };
    return 0;
}

static inline struct seg_slot *seg_slot_find(struct seg_read *rd, segidx_offset o)
{
    size_t lo = 0, hi = rd->n_slots;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rd->slots[mid].off < o)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < rd->n_slots && rd->slots[lo].off == o ? &rd->slots[lo] : NULL;
}

/* One offset of a hit: in its segment at exactly the commit's LSN, its
 * bytes from the whole copy or one ranged GET, checked, copied. */
static inline int seg_resolve(segidx_offset o, void *ctx)
{
    struct seg_read *rd = ctx;
    seg_ranges *r = rd->r;
    struct seg_entry *e = &r->e[rd->entry];
    struct seg_slot *slot = seg_slot_find(rd, o);
    segidx_page_ref ref;
    uint64_t at;
    uint32_t plen;
    if (!slot || slot->page)
        return SEGIDX_ECORRUPT; /* not asked, or named by two commits */
    if (segidx_segment_find(e->seg, rd->vid, o, rd->hit_lsn, &ref) != SEGIDX_OK ||
        ref.lsn != rd->hit_lsn)
        return SEGIDX_ECORRUPT; /* the catalog is out of sync with the segment */
    int rc = segidx_segment_page_range(e->seg, ref.local, &at, &plen);
    if (rc)
        return rc;
    uint8_t *page = malloc(plen);
    if (!page)
        return SEGIDX_ENOMEM;
    if (e->hot) {
        memcpy(page, ref.page, plen);
    } else {
        seg_get req = { SEG_GET_RANGE, at, plen, e->seg_len };
        seg_reply rep;
        if ((rc = seg_ranges_get(r, &e->sid, &req, &rep))) {
            free(page);
            return rc;
        }
        r->st.page_gets++;
        r->st.page_bytes += rep.len;
        e->page_gets++;
        memcpy(page, rep.body, plen);
        free(rep.body);
    }
    if (segidx_segment_check_page(e->seg, ref.local, page) != SEGIDX_OK) {
        r->st.corrupt_pages++;
        free(page);
        return SEGIDX_ECORRUPT;
    }
    slot->page = page;
    slot->lsn = ref.lsn;
    return 0;
}

static inline int seg_visit_hit(void *ctx, const segidx_sid *sid, segidx_lsn lsn,
                                segidx_offset_set *cut)
{
    struct seg_read *rd = ctx;
    seg_ranges *r = rd->r;
    size_t i;
    int rc = seg_entry_get(r, sid, &i);
    if (rc)
        return rc;
    struct seg_entry *e = &r->e[i];
    if (!e->hot && e->page_gets + segidx_offset_set_cardinality(cut) >= r->opt.hot_pages) {
        /* Room for the whole copy first; the tail goes when it arrives. */
        size_t keep = i;
        seg_ranges_evict(r, e->seg_len > SIZE_MAX ? SIZE_MAX : (size_t)e->seg_len, &keep);
        i = keep;
        if ((rc = seg_make_hot(r, &r->e[i])))
            return rc;
    }
    rd->entry = i;
    rd->hit_lsn = lsn;
    rc = segidx_offset_set_iterate(cut, seg_resolve, rd);
    if (rc == SEGIDX_ECORRUPT && r->e[i].hot)
        seg_entry_drop(r, i); /* bad bytes in our copy: fetch afresh next time */
    return rc;
}

/* segidx_read_pages(), over ranged GETs: see the top of this file. */
static inline int seg_ranges_read_pages(seg_ranges *r, segidx_volume_index *vi,
                                        const segidx_vid *vid, segidx_lsn lsn,
                                        const segidx_offset_set *offsets,
                                        int (*fn)(void *ctx, segidx_offset off, const void *page,
                                                  segidx_lsn lsn),
                                        void *ctx)
{
    if (!r || !vi || !vid || !offsets || !fn)
        return SEGIDX_EINVAL;
    uint64_t n = segidx_offset_set_cardinality(offsets);
    if (n > SEGIDX_READ_MAX_PAGES)
        return SEGIDX_EINVAL;
    struct seg_read rd = { r, vid, calloc(n ? (size_t)n : 1, sizeof *rd.slots), 0, 0, 0 };
    segidx_offset_set *query = segidx_offset_set_copy(offsets);
    int rc = rd.slots && query ? SEGIDX_OK : SEGIDX_ENOMEM;
    if (!rc)
        rc = segidx_offset_set_iterate(offsets, seg_add_slot, &rd);
    if (!rc)
        rc = segidx_volume_find_segments(vi, vid, lsn, query, seg_visit_hit, &rd);
    /* What the catalog names no commit for was never written: it stays
     * NULL. Every page is in hand and checked before the first fn call. */
    for (size_t i = 0; i < rd.n_slots && !rc; i++)
        rc = fn(ctx, rd.slots[i].off, rd.slots[i].page, rd.slots[i].lsn);
    for (size_t i = 0; i < rd.n_slots; i++)
        free(rd.slots[i].page);
    free(rd.slots);
    segidx_offset_set_free(query);
    return rc;
}

/* ------------------------------------------------------------ loader */

/* A segidx_segment_source over the same store: whole-object GETs, checked
 * like every other reply, counted in the same stats. For the library's
 * loader and segidx_read_pages(), which cache and verify on their own. The
 * loader calls it from the thread that asked, so with one thread reading
 * it shares seg_ranges' one-thread rule. */
static inline int seg_ranges_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                                   void **handle)
{
    seg_reply rep;
    int rc = seg_get_whole(ctx, sid, &rep);
    if (rc)
        return rc;
    *buf = rep.body;
    *len = (size_t)rep.len;
    *handle = rep.body;
    return SEGIDX_OK;
}

static inline void seg_ranges_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                                      void *handle)
{
    (void)ctx, (void)sid, (void)buf, (void)len;
    free(handle);
}

static inline segidx_segment_source seg_ranges_source(seg_ranges *r)
{
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, seg_ranges_fetch,
                                  seg_ranges_release, r };
    return src;
}

#endif
