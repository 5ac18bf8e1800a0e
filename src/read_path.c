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
        r->hits[i] = (struct hit){ found[i].sid, found[i].lsn, found[i].cut, NULL, NULL };
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

static int compare_slot(const void *key, const void *elem)
{
    segidx_offset a = *(const segidx_offset *)key, b = ((const struct slot *)elem)->off;
    return (a > b) - (a < b);
}

/* Pin each distinct segment once; hits of the same sid share the pin. */
static int pin_segments(segidx_loader *l, struct read *r)
{
    for (size_t i = 0; i < r->n_hits; i++) {
        for (size_t j = 0; j < i && !r->hits[i].seg; j++) {
            if (segidx__id_equal(r->hits[j].sid.bytes, r->hits[i].sid.bytes)) {
                r->hits[i].seg = r->hits[j].seg;
                r->hits[i].copy = r->hits[j].copy;
            }
        }
        if (r->hits[i].seg)
            continue;
        int rc = segidx__loader_pin(l, &r->hits[i].sid, &r->hits[i].seg, &r->hits[i].copy);
        if (rc)
            return rc;
    }
    return SEGIDX_OK;
}

static void unpin_segments(segidx_loader *l, struct read *r)
{
    for (size_t i = 0; i < r->n_hits; i++) {
        bool first = r->hits[i].seg != NULL;
        for (size_t j = 0; j < i && first; j++)
            first = !segidx__id_equal(r->hits[j].sid.bytes, r->hits[i].sid.bytes);
        if (first)
            segidx_loader_put(l, r->hits[i].seg);
    }
}

struct resolve {
    struct read *r;
    const struct hit *hit;
    const segidx_vid *vid;
};

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

/* The segment must hold this offset at exactly the commit's LSN, and its
 * page must hold its checksum. */
static int resolve_offset(segidx_offset o, void *ctx)
{
    struct resolve *rv = ctx;
    segidx_page_ref ref;
    if (segidx_segment_find(rv->hit->seg, rv->vid, o, rv->hit->lsn, &ref) != SEGIDX_OK ||
        ref.lsn != rv->hit->lsn || !ref.page)
        return SEGIDX_ECORRUPT; /* the index is out of sync with the segment */
    int rc = check_page(rv->r, rv->hit, &ref);
    if (rc)
        return rc;
    struct slot *s = bsearch(&o, rv->r->slots, rv->r->n_slots, sizeof *s, compare_slot);
    if (!s)
        return SEGIDX_ECORRUPT;
    s->page = ref.page;
    s->lsn = ref.lsn;
    return 0;
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
    for (size_t i = 0; i < r.n_hits && !rc; i++) {
        struct resolve rv = { &r, &r.hits[i], vid };
        rc = segidx_offset_set_iterate(r.hits[i].cut, resolve_offset, &rv);
    }
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
