/* The read path: find_segments, load each segment once, look every offset
 * up at its commit's LSN and check its page, then hand the pages over in
 * offset order.
 *
 * Every page is resolved and checked before the first callback, so that a
 * failed read has handed out nothing. A page that fails its checksum has
 * its segment discarded from the loader while this read still pins it:
 * the bytes the host gave are bad, and only a new fetch can bring good
 * ones. */
#include "loader.h"

#include <stdlib.h>

/* A commit segment find_segments named, with the offsets it answers. */
struct hit {
    segidx_sid sid;
    segidx_lsn lsn;
    segidx_offset_set *cut;
    const segidx_segment *seg; /* pinned, or NULL */
    segidx__copy *copy;        /* the loader's copy behind seg */
    size_t owner;              /* the hit that pins seg for this one */
};

/* One requested offset and where its page is. */
struct slot {
    segidx_offset off;
    const void *page;
    segidx_lsn lsn;
};

struct read {
    struct hit *hits;
    size_t n_hits;
    struct slot *slots;
    size_t n_slots;
    enum segidx__page_check check;
    segidx__copy *damaged; /* the copy whose page failed its checksum */
};

/* The commit segments that answer the query, their cuts taken over. */
static int find_hits(struct read *r, segidx_volume_index *vi, const segidx_vid *vid,
                     segidx_lsn lsn, segidx_offset_set *query)
{
    segidx__find_hit *found;
    size_t n;
    int rc = segidx__volume_find(vi, vid, lsn, query, &found, &n);
    if (rc)
        return rc;
    r->hits = malloc((n ? n : 1) * sizeof *r->hits);
    if (!r->hits) {
        segidx__find_hits_free(found, n);
        return SEGIDX_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        r->hits[i] = (struct hit){ found[i].sid, found[i].lsn, found[i].cut, NULL, NULL, i };
    r->n_hits = n;
    free(found); /* the cuts are r->hits' now */
    return SEGIDX_OK;
}

static int add_slot(segidx_offset o, void *ctx)
{
    struct read *r = ctx;
    r->slots[r->n_slots++] = (struct slot){ o, NULL, 0 };
    return 0;
}

/* A hit's sid and place, to sort the hits by sid. */
struct sid_rank {
    segidx_sid sid;
    size_t hit;
};

static int sid_rank_cmp(const void *a, const void *b)
{
    const struct sid_rank *x = a, *y = b;
    int c = memcmp(x->sid.bytes, y->sid.bytes, sizeof x->sid.bytes);
    return c ? c : (x->hit > y->hit) - (x->hit < y->hit);
}

/* Each hit's owner: the first hit (in find order) with its sid, which
 * alone pins and unpins the segment; the others share its pin. Sorting by
 * (sid, place) puts every sid's first hit at the head of its run, so this
 * is O(n log n) however many hits share a segment. */
static int find_owners(struct read *r)
{
    size_t n = r->n_hits;
    for (size_t i = 0; i < n; i++)
        r->hits[i].owner = i;
    if (n < 2)
        return SEGIDX_OK;
    struct sid_rank *rank = malloc(n * sizeof *rank);
    if (!rank)
        return SEGIDX_ENOMEM;
    for (size_t i = 0; i < n; i++)
        rank[i] = (struct sid_rank){ r->hits[i].sid, i };
    qsort(rank, n, sizeof *rank, sid_rank_cmp);
    for (size_t i = 1, head = 0; i < n; i++) {
        if (segidx__id_equal(rank[i].sid.bytes, rank[head].sid.bytes))
            r->hits[rank[i].hit].owner = rank[head].hit;
        else
            head = i;
    }
    free(rank);
    return SEGIDX_OK;
}

/* Pin each distinct segment once; hits of the same sid share the pin. An
 * owner comes before the hits it owns, so its pin is there to share. */
static int pin_segments(segidx_loader *l, struct read *r)
{
    int rc = find_owners(r);
    for (size_t i = 0; i < r->n_hits && !rc; i++) {
        struct hit *h = &r->hits[i];
        if (h->owner != i) {
            h->seg = r->hits[h->owner].seg;
            h->copy = r->hits[h->owner].copy;
        } else {
            rc = segidx__loader_pin(l, &h->sid, &h->seg, &h->copy);
        }
    }
    return rc;
}

/* Each pin given back once, by its owner; a hit whose pin failed or was
 * never taken holds none. */
static void unpin_segments(segidx_loader *l, struct read *r)
{
    for (size_t i = 0; i < r->n_hits; i++)
        if (r->hits[i].owner == i && r->hits[i].seg)
            segidx_loader_put(l, r->hits[i].seg);
}

/* A page that fails marks its copy for discarding once the resolving is
 * over: discarding is a trip through the loader's lock, once per read. */
static int check_page(struct read *r, const struct hit *hit, const segidx_page_ref *ref)
{
    int rc = SEGIDX_OK;
    if (r->check == SEGIDX__PAGES_CHECKED)
        rc = segidx__loader_check_page(hit->copy, ref->local, ref->page);
    else if (r->check == SEGIDX__PAGES_HASHED)
        rc = segidx_segment_check_page(hit->seg, ref->local, ref->page) ? SEGIDX_ECORRUPT : 0;
    if (rc)
        r->damaged = hit->copy;
    return rc;
}

struct collect {
    segidx_offset *offs;
    size_t n;
};

static int collect_offset(segidx_offset o, void *ctx)
{
    struct collect *c = ctx;
    c->offs[c->n++] = o;
    return 0;
}

/* The segment must hold every offset of the hit's cut at exactly the
 * commit's LSN, and each page must hold its checksum. The cut's offsets
 * come sorted, so the segment resolves them in one merge
 * (segidx_segment_find_many) and the slots are walked alongside. */
static int resolve_hit(struct read *r, const struct hit *hit, const segidx_vid *vid,
                       segidx_offset *offs, segidx_page_ref *refs)
{
    struct collect c = { offs, 0 };
    segidx_offset_set_iterate(hit->cut, collect_offset, &c);
    int rc = segidx_segment_find_many(hit->seg, vid, hit->lsn, offs, c.n, refs);
    if (rc)
        return rc == SEGIDX_ENOTFOUND ? SEGIDX_ECORRUPT : rc; /* index out of sync */
    size_t slot = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (refs[i].lsn != hit->lsn || !refs[i].page)
            return SEGIDX_ECORRUPT;
        rc = check_page(r, hit, &refs[i]);
        if (rc)
            return rc;
        while (slot < r->n_slots && r->slots[slot].off < offs[i])
            slot++;
        if (slot == r->n_slots || r->slots[slot].off != offs[i])
            return SEGIDX_ECORRUPT;
        r->slots[slot].page = refs[i].page;
        r->slots[slot].lsn = refs[i].lsn;
    }
    return SEGIDX_OK;
}

static void read_free(struct read *r)
{
    for (size_t i = 0; i < r->n_hits; i++)
        segidx_offset_set_free(r->hits[i].cut);
    free(r->hits);
    free(r->slots);
}

int segidx__read_pages_with(segidx_volume_index *vi, segidx_loader *l, const segidx_vid *vid,
                            segidx_lsn lsn, const segidx_offset_set *offsets,
                            int (*fn)(void *ctx, segidx_offset off, const void *page,
                                      segidx_lsn lsn),
                            void *ctx, enum segidx__page_check check)
{
    if (!vi || !l || !vid || !offsets || !fn)
        return SEGIDX_EINVAL;
    uint64_t n = segidx_offset_set_cardinality(offsets);
    if (n > SEGIDX_READ_MAX_PAGES)
        return SEGIDX_EINVAL;
    struct read r = { NULL, 0, malloc((n ? n : 1) * sizeof *r.slots), 0, check, NULL };
    segidx_offset_set *query = segidx_offset_set_copy(offsets);
    int rc = r.slots && query ? SEGIDX_OK : SEGIDX_ENOMEM;
    if (!rc)
        segidx_offset_set_iterate(offsets, add_slot, &r);
    if (!rc)
        rc = find_hits(&r, vi, vid, lsn, query);
    segidx_offset_set_free(query);
    if (!rc)
        rc = pin_segments(l, &r);
    /* Scratch for the largest cut: no cut holds more than the query. */
    segidx_offset *offs = rc ? NULL : malloc((n ? n : 1) * sizeof *offs);
    segidx_page_ref *refs = rc ? NULL : malloc((n ? n : 1) * sizeof *refs);
    if (!rc && (!offs || !refs))
        rc = SEGIDX_ENOMEM;
    for (size_t i = 0; i < r.n_hits && !rc; i++) {
        if (segidx_offset_set_cardinality(r.hits[i].cut) > n)
            rc = SEGIDX_ECORRUPT;
        else
            rc = resolve_hit(&r, &r.hits[i], vid, offs, refs);
    }
    free(offs);
    free(refs);
    if (r.damaged)
        segidx__loader_discard(l, r.damaged); /* still pinned by this read */
    for (size_t i = 0; i < r.n_slots && !rc; i++)
        rc = fn(ctx, r.slots[i].off, r.slots[i].page, r.slots[i].lsn);
    unpin_segments(l, &r);
    read_free(&r);
    return rc;
}

int segidx_read_pages(segidx_volume_index *vi, segidx_loader *l, const segidx_vid *vid,
                      segidx_lsn lsn, const segidx_offset_set *offsets,
                      int (*fn)(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn),
                      void *ctx)
{
    return segidx__read_pages_with(vi, l, vid, lsn, offsets, fn, ctx, SEGIDX__PAGES_CHECKED);
}
