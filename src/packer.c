/* The packer: committed pages in, segments out, each with the OffsetSet
 * of every (vid, lsn) it holds, ready for segidx_volume_commit().
 *
 * Pages go into one segment builder until it refuses one (max_bytes, 65535
 * pages, or its volume's LSN span); then the open segment is finished,
 * named by next_sid and handed to emit with the OffsetSet of every
 * (vid, lsn) it holds, and the page starts the next segment. The commits
 * are tracked as pages arrive, in a small (vid, lsn) -> commit map, so
 * that emitting never has to decode the bytes it just wrote.
 *
 * With commit_ready, a commit stays in the map after its segments leave,
 * collecting one share (sid, offsets) per emitted segment, until it is
 * complete: closed (a page of another commit came after it, or a flush)
 * and with no page left in the open segment. Pages arrive in commit order,
 * so the commits form a queue in which the complete ones are a prefix, and
 * commit_ready is called from its head. Calls happen only before a page is
 * taken (never after), so a failing commit_ready leaves the page out and
 * the commit at the head, for the next add or flush to call again.
 *
 * Every failure leaves the packer as it was: the open segment keeps its
 * pages until an emit succeeds, so a later add or flush tries again; all
 * memory a cut needs is reserved before next_sid is asked, so that nothing
 * can fail once emit has taken a segment. */
#include "segment_format.h"

#include <stdlib.h>

/* One emitted segment's part of a commit; the offsets are owned. */
struct share {
    segidx_sid sid;
    segidx_offset_set *offsets;
};

/* A (vid, lsn) the packer still holds. */
struct commit {
    segidx_vid vid;
    segidx_lsn lsn;
    segidx_offset_set *open;   /* its offsets in the open segment; NULL: none */
    struct share *shares;      /* with commit_ready: the emitted segments' parts */
    uint32_t n_shares, shares_cap;
};

struct segidx_packer {
    segidx_allocator alloc_copy;
    const segidx_allocator *alloc;  /* &alloc_copy, or NULL for malloc */
    int (*next_sid)(void *ctx, segidx_sid *sid);
    int (*emit)(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                const segidx_packed_commit *commits, size_t n);
    int (*commit_ready)(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_commit_segment *segs, size_t n);
    void *ctx;
    uint32_t page_size;

    segidx_segment_builder *builder;
    uint8_t *buf;                   /* finished segment, reused */
    size_t buf_cap;

    struct commit *commits;         /* in commit order */
    segidx_packed_commit *packed;   /* emit's sorted view of the open segment */
    uint32_t n_commits, commits_cap;
    uint32_t packed_cap;            /* trails commits_cap after a failed growth */
    uint32_t *slots;                /* commit index + 1; 0 = empty */
    uint32_t slots_mask;
    segidx_commit_segment *view;    /* commit_ready's view of one commit's shares */
    uint32_t view_cap;              /* >= every commit's shares_cap */
    bool last_closed;               /* a flush closed the newest commit */
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

/* The commit (vid, lsn), or NULL when the packer holds no page of it. */
static struct commit *find_commit(const segidx_packer *p, const segidx_vid *vid, segidx_lsn lsn)
{
    if (!p->slots)
        return NULL;
    uint32_t c = *commit_slot(p, vid, lsn);
    return c ? &p->commits[c - 1] : NULL;
}

static void index_commits(segidx_packer *p)
{
    if (p->slots)
        memset(p->slots, 0, (p->slots_mask + 1) * sizeof *p->slots);
    for (uint32_t c = 0; c < p->n_commits; c++)
        *commit_slot(p, &p->commits[c].vid, p->commits[c].lsn) = c + 1;
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
    index_commits(p);
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

static void free_commit(const segidx_packer *p, struct commit *c)
{
    segidx_offset_set_free(c->open);
    for (uint32_t i = 0; i < c->n_shares; i++)
        segidx_offset_set_free(c->shares[i].offsets);
    segidx__release(p->alloc, c->shares, c->shares_cap * sizeof *c->shares);
}

/* Forget the first `k` commits, which commit_ready has taken (or, without
 * it, every commit, once its pages have left in an emitted segment). */
static void drop_commits(segidx_packer *p, uint32_t k)
{
    for (uint32_t c = 0; c < k; c++)
        free_commit(p, &p->commits[c]);
    memmove(p->commits, p->commits + k, (p->n_commits - k) * sizeof *p->commits);
    p->n_commits -= k;
    index_commits(p);
}

static bool is_commit(const struct commit *c, const segidx_vid *vid, segidx_lsn lsn)
{
    return c->lsn == lsn && segidx__id_equal(c->vid.bytes, vid->bytes);
}

/* Whether commit `i` can be handed to commit_ready now. The newest commit
 * is closed by a flush or by `next`, the (vid, lsn) of a page about to be
 * added (NULL: none). */
static bool commit_complete(const segidx_packer *p, uint32_t i, const segidx_vid *next_vid,
                            segidx_lsn next_lsn)
{
    const struct commit *c = &p->commits[i];
    if (c->open)
        return false;
    if (i + 1 < p->n_commits || p->last_closed)
        return true;
    return next_vid && !is_commit(c, next_vid, next_lsn);
}

/* Hand every complete commit at the head of the queue to commit_ready, in
 * order, and forget it. A failure stops the walk: that commit and the
 * ones after it stay, to be handed over again by the next add or flush. */
static int hand_over_complete(segidx_packer *p, const segidx_vid *next_vid,
                              segidx_lsn next_lsn)
{
    if (!p->commit_ready)
        return SEGIDX_OK;
    uint32_t done = 0;
    int rc = SEGIDX_OK;
    while (done < p->n_commits && commit_complete(p, done, next_vid, next_lsn)) {
        const struct commit *c = &p->commits[done];
        for (uint32_t i = 0; i < c->n_shares; i++)
            p->view[i] = (segidx_commit_segment){ c->shares[i].sid, c->shares[i].offsets };
        rc = segidx__host_rc(p->commit_ready(p->ctx, &c->vid, c->lsn, p->view, c->n_shares));
        if (rc)
            break;
        done++;
    }
    if (done)
        drop_commits(p, done);
    return rc;
}

/* With commit_ready, a commit's pages must come together, each once: a
 * page of a commit already closed, or one of its offsets already in an
 * emitted segment, would make a commit that volume_commit cannot take.
 * (Without it, only the open segment's duplicates are caught, by the
 * builder.) */
static bool page_refused(const segidx_packer *p, const segidx_vid *vid, segidx_offset off,
                         segidx_lsn lsn)
{
    if (!p->commit_ready)
        return false;
    const struct commit *c = find_commit(p, vid, lsn);
    if (!c)
        return false;
    if (c != &p->commits[p->n_commits - 1] || p->last_closed)
        return true;
    for (uint32_t i = 0; i < c->n_shares; i++)
        if (segidx_offset_set_contains(c->shares[i].offsets, off))
            return true;
    return false;
}

static int compare_packed(const void *pa, const void *pb)
{
    const segidx_packed_commit *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    return (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

/* emit's view of the open segment's commits, sorted by vid then lsn. A
 * copy, so that the slots keep pointing at the right commits if emit
 * fails. */
static uint32_t sort_open_commits(segidx_packer *p)
{
    uint32_t n = 0;
    for (uint32_t c = 0; c < p->n_commits; c++)
        if (p->commits[c].open)
            p->packed[n++] = (segidx_packed_commit){ p->commits[c].vid, p->commits[c].lsn,
                                                     p->commits[c].open };
    qsort(p->packed, n, sizeof *p->packed, compare_packed);
    return n;
}

/* Room for one more share in every commit of the open segment, and in the
 * view commit_ready gets, before the segment is emitted. */
static int reserve_shares(segidx_packer *p)
{
    if (!p->commit_ready)
        return SEGIDX_OK;
    for (uint32_t i = 0; i < p->n_commits; i++) {
        struct commit *c = &p->commits[i];
        if (!c->open || c->n_shares < c->shares_cap)
            continue;
        uint32_t cap = c->shares_cap ? 2 * c->shares_cap : 2;
        if (cap > p->view_cap) {
            segidx_commit_segment *v = segidx__resize(p->alloc, p->view,
                                                      p->view_cap * sizeof *v, cap * sizeof *v);
            if (!v)
                return SEGIDX_ENOMEM;
            p->view = v;
            p->view_cap = cap;
        }
        struct share *s = segidx__resize(p->alloc, c->shares, c->shares_cap * sizeof *s,
                                         cap * sizeof *s);
        if (!s)
            return SEGIDX_ENOMEM;
        c->shares = s;
        c->shares_cap = cap;
    }
    return SEGIDX_OK;
}

/* The open segment was emitted as `sid`: its offsets become each commit's
 * share of it, or, without commit_ready, are done with. */
static void segment_emitted(segidx_packer *p, const segidx_sid *sid)
{
    segidx_segment_builder_reset(p->builder);
    if (!p->commit_ready) {
        drop_commits(p, p->n_commits);
        return;
    }
    for (uint32_t i = 0; i < p->n_commits; i++) {
        struct commit *c = &p->commits[i];
        if (c->open) {
            c->shares[c->n_shares++] = (struct share){ *sid, c->open };
            c->open = NULL;
        }
    }
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
    struct commit *c = *slot ? &p->commits[*slot - 1] : NULL;
    segidx_offset_set *fresh = NULL;
    if ((!c || !c->open) && !(fresh = segidx_offset_set_new()))
        return SEGIDX_ENOMEM;
    rc = segidx_segment_builder_add(p->builder, vid, off, lsn, page);
    if (rc) {
        segidx_offset_set_free(fresh);
        return rc;
    }
    if (!c) {
        c = &p->commits[p->n_commits];
        *c = (struct commit){ *vid, lsn, NULL, NULL, 0, 0 };
        *slot = ++p->n_commits;
        p->last_closed = false;
    }
    if (fresh)
        c->open = fresh;
    return segidx_offset_set_add(c->open, off);
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
    if (!rc)
        rc = reserve_shares(p);
    if (rc)
        return rc;
    segidx_sid sid;
    memset(&sid, 0, sizeof sid);
    rc = segidx__host_rc(p->next_sid(p->ctx, &sid));
    if (rc)
        return rc;
    rc = segidx_segment_builder_finish(p->builder, &sid, p->buf, len);
    if (rc)
        return rc;
    uint32_t n = sort_open_commits(p);
    rc = segidx__host_rc(p->emit(p->ctx, &sid, p->buf, len, p->packed, n));
    if (rc)
        return rc;
    segment_emitted(p, &sid);
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
    p->commit_ready = opts->commit_ready;
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
    for (uint32_t c = 0; c < p->n_commits; c++)
        free_commit(p, &p->commits[c]);
    segidx_segment_builder_free(p->builder);
    const segidx_allocator *a = p->alloc;
    segidx__release(a, p->buf, p->buf_cap);
    segidx__release(a, p->commits, p->commits_cap * sizeof *p->commits);
    segidx__release(a, p->packed, p->packed_cap * sizeof *p->packed);
    segidx__release(a, p->view, p->view_cap * sizeof *p->view);
    if (p->slots)
        segidx__release(a, p->slots, (p->slots_mask + 1) * sizeof *p->slots);
    segidx_allocator copy = p->alloc_copy; /* `a` points into `p` */
    segidx__release(a ? &copy : NULL, p, sizeof *p);
}

/* ------------------------------------------------------------ streaming */

int segidx_packer_add(segidx_packer *p, const segidx_vid *vid, segidx_offset off, segidx_lsn lsn,
                      const void *page)
{
    if (!p || !vid || !page || lsn == 0 || page_refused(p, vid, off, lsn))
        return SEGIDX_EINVAL;
    /* Complete commits go out before the page is taken, so that an error
     * from commit_ready means the page was not added. */
    int rc = hand_over_complete(p, vid, lsn);
    if (!rc)
        rc = add_page(p, vid, off, lsn, page);
    /* An empty builder that refuses a page would refuse it again: only a
     * segment with pages is worth cutting. */
    if ((rc == SEGIDX_EFULL || rc == SEGIDX_ERANGE) &&
        segidx_segment_builder_pages(p->builder) > 0) {
        rc = emit_open_segment(p);
        if (!rc)
            rc = hand_over_complete(p, vid, lsn);
        if (!rc)
            rc = add_page(p, vid, off, lsn, page);
    }
    return rc;
}

int segidx_packer_flush(segidx_packer *p)
{
    if (!p)
        return SEGIDX_EINVAL;
    int rc = emit_open_segment(p);
    if (rc)
        return rc;
    p->last_closed = true;
    return hand_over_complete(p, NULL, 0);
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
