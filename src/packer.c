/* The packer: committed pages in, segments out (DESIGN.md part 8).
 *
 * Pages go into one segment builder until it refuses one (max_bytes, 65535
 * pages, or its volume's LSN span); then the open segment is finished,
 * named by next_sid and handed to emit with the OffsetSet of every
 * (vid, lsn) it holds, and the page starts the next segment. The commits
 * are tracked as pages arrive, in a small (vid, lsn) -> OffsetSet map, so
 * that emitting never has to decode the bytes it just wrote.
 *
 * Every failure leaves the packer as it was: the open segment keeps its
 * pages until an emit succeeds, so a later add or flush tries again. */
#include "segment_format.h"

#include <stdlib.h>

/* One (vid, lsn) of the open segment and the offsets it wrote there. */
struct commit {
    segidx_vid vid;
    segidx_lsn lsn;
    segidx_offset_set *offsets;
};

struct segidx_packer {
    segidx_allocator alloc_copy;
    const segidx_allocator *alloc;  /* &alloc_copy, or NULL for malloc */
    int (*next_sid)(void *ctx, segidx_sid *sid);
    int (*emit)(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                const segidx_packed_commit *commits, size_t n);
    void *ctx;
    uint32_t page_size;

    segidx_segment_builder *builder;
    uint8_t *buf;                   /* finished segment, reused */
    size_t buf_cap;

    struct commit *commits;
    segidx_packed_commit *packed;   /* emit's sorted view of the commits */
    uint32_t n_commits, commits_cap;
    uint32_t packed_cap;            /* trails commits_cap after a failed growth */
    uint32_t *slots;                /* commit index + 1; 0 = empty */
    uint32_t slots_mask;
};

/* ------------------------------------------------------------ commits */

static uint64_t hash_commit(const segidx_vid *vid, segidx_lsn lsn)
{
    uint8_t key[24];
    memcpy(key, vid->bytes, 16);
    segidx__store64(key + 16, lsn);
    return segidx__xxh3(key, sizeof key);
}

/* The slot where (vid, lsn) is or would go; the table is never full. */
static uint32_t *commit_slot(const segidx_packer *p, const segidx_vid *vid, segidx_lsn lsn)
{
    uint32_t i = (uint32_t)hash_commit(vid, lsn) & p->slots_mask;
    for (;;) {
        uint32_t c = p->slots[i];
        if (!c || (p->commits[c - 1].lsn == lsn &&
                   segidx__id_equal(p->commits[c - 1].vid.bytes, vid->bytes)))
            return &p->slots[i];
        i = (i + 1) & p->slots_mask;
    }
}

/* Keep the slot table at most half full, so that probes stay short. */
static int rehash_commits(segidx_packer *p, uint32_t count)
{
    uint32_t size = 16;
    while (size < 2 * count + 2)
        size *= 2;
    if (p->slots && p->slots_mask + 1 >= size)
        return SEGIDX_OK;
    uint32_t *fresh = segidx__alloc_array(p->alloc, size, sizeof *fresh);
    if (!fresh)
        return SEGIDX_ENOMEM;
    uint32_t old_size = p->slots ? p->slots_mask + 1 : 0;
    segidx__release(p->alloc, p->slots, old_size * sizeof *p->slots);
    p->slots = fresh;
    p->slots_mask = size - 1;
    for (uint32_t c = 0; c < p->n_commits; c++)
        *commit_slot(p, &p->commits[c].vid, p->commits[c].lsn) = c + 1;
    return SEGIDX_OK;
}

/* Room for one more commit, made before anything changes, so that a
 * failed allocation leaves the map as it was. */
static int reserve_commit(segidx_packer *p)
{
    if (p->n_commits == p->commits_cap) {
        uint32_t cap = p->commits_cap ? 2 * p->commits_cap : 16;
        struct commit *c = segidx__resize(p->alloc, p->commits, p->commits_cap * sizeof *c,
                                          cap * sizeof *c);
        if (!c)
            return SEGIDX_ENOMEM;
        p->commits = c;
        p->commits_cap = cap;
    }
    if (p->packed_cap < p->commits_cap) {
        segidx_packed_commit *k = segidx__resize(p->alloc, p->packed,
                                                 p->packed_cap * sizeof *k,
                                                 p->commits_cap * sizeof *k);
        if (!k)
            return SEGIDX_ENOMEM;
        p->packed = k;
        p->packed_cap = p->commits_cap;
    }
    return rehash_commits(p, p->n_commits + 1);
}

/* Forget every commit: its pages have left in an emitted segment. */
static void clear_commits(segidx_packer *p)
{
    for (uint32_t c = 0; c < p->n_commits; c++)
        segidx_offset_set_free(p->commits[c].offsets);
    p->n_commits = 0;
    if (p->slots)
        memset(p->slots, 0, (p->slots_mask + 1) * sizeof *p->slots);
}

static int compare_packed(const void *pa, const void *pb)
{
    const segidx_packed_commit *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    return (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

/* emit's view of the commits, sorted by vid then lsn. A copy, so that the
 * slots keep pointing at the right commits if emit fails. */
static void sort_commits(segidx_packer *p)
{
    for (uint32_t c = 0; c < p->n_commits; c++)
        p->packed[c] = (segidx_packed_commit){ p->commits[c].vid, p->commits[c].lsn,
                                               p->commits[c].offsets };
    qsort(p->packed, p->n_commits, sizeof *p->packed, compare_packed);
}

/* ------------------------------------------------------------ segments */

/* The builder takes the page and the map records it, or neither happens. */
static int add_page(segidx_packer *p, const segidx_vid *vid, segidx_offset off, segidx_lsn lsn,
                    const void *page)
{
    int rc = reserve_commit(p);
    if (rc)
        return rc;
    uint32_t *slot = commit_slot(p, vid, lsn);
    segidx_offset_set *fresh = NULL;
    if (!*slot && !(fresh = segidx_offset_set_new()))
        return SEGIDX_ENOMEM;
    rc = segidx_segment_builder_add(p->builder, vid, off, lsn, page);
    if (rc) {
        segidx_offset_set_free(fresh);
        return rc;
    }
    if (fresh) {
        p->commits[p->n_commits] = (struct commit){ *vid, lsn, fresh };
        *slot = ++p->n_commits;
    }
    return segidx_offset_set_add(p->commits[*slot - 1].offsets, off);
}

static int reserve_buf(segidx_packer *p, size_t len)
{
    if (len <= p->buf_cap)
        return SEGIDX_OK;
    uint8_t *b = segidx__resize(p->alloc, p->buf, p->buf_cap, len);
    if (!b)
        return SEGIDX_ENOMEM;
    p->buf = b;
    p->buf_cap = len;
    return SEGIDX_OK;
}

/* Finish, name and emit the open segment, then start an empty one. Until
 * emit succeeds nothing is forgotten: each attempt asks for a new sid, so
 * that an id a failed attempt may have half-written is never reused for
 * other bytes. */
static int emit_open_segment(segidx_packer *p)
{
    if (segidx_segment_builder_pages(p->builder) == 0)
        return SEGIDX_OK;
    size_t len = segidx_segment_builder_size(p->builder);
    if (len == 0)
        return SEGIDX_ENOMEM; /* planning the index failed */
    int rc = reserve_buf(p, len);
    if (rc)
        return rc;
    segidx_sid sid;
    memset(&sid, 0, sizeof sid);
    rc = p->next_sid(p->ctx, &sid);
    if (rc)
        return rc;
    rc = segidx_segment_builder_finish(p->builder, &sid, p->buf, len);
    if (rc)
        return rc;
    sort_commits(p);
    rc = p->emit(p->ctx, &sid, p->buf, len, p->packed, p->n_commits);
    if (rc)
        return rc;
    segidx_segment_builder_reset(p->builder);
    clear_commits(p);
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ lifecycle */

/* What segidx_segment_builder_new() accepts, checked here as well because
 * its NULL return does not tell bad options from a failed allocation. */
int segidx_packer_new(const segidx_packer_options *opts, segidx_packer **out)
{
    if (!opts || !out || !opts->next_sid || !opts->emit ||
        !segidx__segment_options_valid(&opts->segment))
        return SEGIDX_EINVAL;
    const segidx_allocator *a = opts->segment.alloc;
    segidx_packer *p = segidx__alloc(a, sizeof *p);
    if (!p)
        return SEGIDX_ENOMEM;
    memset(p, 0, sizeof *p);
    if (a) {
        p->alloc_copy = *a;
        p->alloc = &p->alloc_copy;
    }
    p->next_sid = opts->next_sid;
    p->emit = opts->emit;
    p->ctx = opts->ctx;
    p->page_size = opts->segment.page_size ? opts->segment.page_size : SEGIDX_DEFAULT_PAGE_SIZE;
    segidx_segment_options seg = opts->segment;
    seg.alloc = p->alloc;
    p->builder = segidx_segment_builder_new(&seg);
    if (!p->builder) {
        segidx_packer_free(p);
        return SEGIDX_ENOMEM; /* the options were checked above */
    }
    *out = p;
    return SEGIDX_OK;
}

void segidx_packer_free(segidx_packer *p)
{
    if (!p)
        return;
    clear_commits(p);
    segidx_segment_builder_free(p->builder);
    const segidx_allocator *a = p->alloc;
    segidx__release(a, p->buf, p->buf_cap);
    segidx__release(a, p->commits, p->commits_cap * sizeof *p->commits);
    segidx__release(a, p->packed, p->packed_cap * sizeof *p->packed);
    if (p->slots)
        segidx__release(a, p->slots, (p->slots_mask + 1) * sizeof *p->slots);
    segidx_allocator copy = p->alloc_copy; /* `a` points into `p` */
    segidx__release(a ? &copy : NULL, p, sizeof *p);
}

/* ------------------------------------------------------------ streaming */

int segidx_packer_add(segidx_packer *p, const segidx_vid *vid, segidx_offset off, segidx_lsn lsn,
                      const void *page)
{
    if (!p || !vid || !page)
        return SEGIDX_EINVAL;
    int rc = add_page(p, vid, off, lsn, page);
    /* An empty builder that refuses a page would refuse it again: only a
     * segment with pages is worth cutting. */
    if ((rc == SEGIDX_EFULL || rc == SEGIDX_ERANGE) &&
        segidx_segment_builder_pages(p->builder) > 0) {
        rc = emit_open_segment(p);
        if (!rc)
            rc = add_page(p, vid, off, lsn, page);
    }
    return rc;
}

int segidx_packer_flush(segidx_packer *p)
{
    return p ? emit_open_segment(p) : SEGIDX_EINVAL;
}

/* ------------------------------------------------------------ compaction */

/* One page version of an input segment; `seg` breaks ties so that the
 * first segment's copy sorts first. */
struct version {
    segidx_vid vid;
    segidx_lsn lsn;
    segidx_offset off;
    uint32_t seg;
    const void *page;
};

struct collection {
    struct version *v;
    size_t n, cap;
    uint32_t seg;
};

static int collect_page(void *ctx, const segidx_segment_page *pg)
{
    struct collection *c = ctx;
    if (!pg->page)
        return SEGIDX_EINVAL; /* a tail-only segment has no page bytes */
    if (c->n == c->cap)
        return SEGIDX_ECORRUPT; /* more pages than the segment said it has */
    c->v[c->n++] = (struct version){ *pg->vid, pg->lsn, pg->offset, c->seg, pg->page };
    return 0;
}

static int compare_versions(const void *pa, const void *pb)
{
    const struct version *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    if (a->lsn != b->lsn)
        return a->lsn < b->lsn ? -1 : 1;
    if (a->off != b->off)
        return a->off < b->off ? -1 : 1;
    return (a->seg > b->seg) - (a->seg < b->seg);
}

static bool same_version(const struct version *a, const struct version *b)
{
    return a->lsn == b->lsn && a->off == b->off && segidx__id_equal(a->vid.bytes, b->vid.bytes);
}

/* Every segment must be open with its pages, in the packer's page size;
 * `total` is their page count. */
static int check_inputs(const segidx_segment *const *segs, size_t n, const segidx_packer *p,
                        size_t *total)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!segs[i])
            return SEGIDX_EINVAL;
        segidx_segment_stats st;
        segidx_segment_stats_get(segs[i], &st);
        if (st.page_size != p->page_size)
            return SEGIDX_EINVAL;
        *total += st.page_count;
    }
    return SEGIDX_OK;
}

static int collect_versions(const segidx_segment *const *segs, size_t n, struct collection *c)
{
    for (size_t i = 0; i < n; i++) {
        c->seg = (uint32_t)i;
        int rc = segidx_segment_iterate(segs[i], NULL, collect_page, c);
        if (rc)
            return rc;
    }
    qsort(c->v, c->n, sizeof *c->v, compare_versions);
    return SEGIDX_OK;
}

/* Each distinct (vid, offset, lsn) once, from the first segment with it. */
static int feed_versions(segidx_packer *p, const struct collection *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (i > 0 && same_version(&c->v[i - 1], &c->v[i]))
            continue;
        const struct version *v = &c->v[i];
        int rc = segidx_packer_add(p, &v->vid, v->off, v->lsn, v->page);
        if (rc)
            return rc;
    }
    return SEGIDX_OK;
}

int segidx_compact(const segidx_segment *const *segs, size_t n, segidx_packer *p)
{
    if (!p || (n && !segs) || n > UINT32_MAX)
        return SEGIDX_EINVAL;
    size_t total;
    int rc = check_inputs(segs, n, p, &total);
    if (rc)
        return rc;
    struct collection c = { segidx__alloc_array(p->alloc, total, sizeof *c.v), 0, total, 0 };
    if (!c.v)
        return SEGIDX_ENOMEM;
    rc = collect_versions(segs, n, &c);
    if (!rc)
        rc = feed_versions(p, &c);
    if (!rc)
        rc = segidx_packer_flush(p);
    segidx__release(p->alloc, c.v, total * sizeof *c.v);
    return rc;
}
