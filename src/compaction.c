/* Compaction of one volume: plan which segments to replace, copy the
 * volume's live page versions out of them into new volume-local segments,
 * and re-point the catalog (segidx_volume_repoint(), one atomic write).
 *
 * Only what the catalog names is copied: a version no entry of the volume
 * names (pruned, or another volume's) stays behind, which is how the
 * garbage of shared and pruned segments goes away once every volume has
 * moved off them. Every copied page is checked against its checksum and
 * its entry first, so a compaction never turns a damaged or missing page
 * into a good-looking one. */
#include "internal.h"

#include <stdlib.h>

/* ------------------------------------------------------------ entries */

/* A commit entry of the volume, copied out of the catalog's scan. */
struct centry {
    segidx_lsn lsn;
    segidx_sid sid;
    segidx_offset_set *offsets;
};

/* A segment the volume's entries name, with what the plan weighs. */
struct cseg {
    segidx_sid sid;
    segidx_lsn first_lsn;  /* the oldest entry naming it */
    uint64_t live;         /* pages of the volume its entries name */
    uint64_t vol_pages;    /* pages of the volume it holds */
    uint64_t bytes;
    bool shared, small, garbage, chosen;
};

struct job {
    segidx_volume_index *vi;
    segidx_loader *l;
    const segidx_vid *vid;
    const segidx_compact_options *opts;
    uint32_t page_size;
    struct centry *e;
    size_t n, cap;
    struct cseg *segs;
    size_t n_segs;
    segidx_sid *old;       /* the chosen sids */
    size_t n_old;
    segidx_repoint *moves; /* what commit_ready handed over */
    size_t n_moves, cap_moves;
    segidx_compact_stats st;
    int err;
};

static int collect_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                         const segidx_offset_set *offsets)
{
    struct job *j = ctx;
    struct centry *e = segidx__grow(j->e, &j->cap, j->n, sizeof *e, 64);
    if (!e)
        return j->err = SEGIDX_ENOMEM;
    j->e = e;
    segidx_offset_set *copy = segidx_offset_set_copy(offsets);
    if (!copy)
        return j->err = SEGIDX_ENOMEM;
    j->e[j->n++] = (struct centry){ lsn, *sid, copy };
    return 0;
}

static int compare_sid_bytes(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int compare_centry_sid(const void *pa, const void *pb)
{
    const struct centry *a = pa, *b = pb;
    int c = compare_sid_bytes(&a->sid, &b->sid);
    return c ? c : (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

static int compare_centry_lsn(const void *pa, const void *pb)
{
    const struct centry *a = pa, *b = pb;
    if (a->lsn != b->lsn)
        return a->lsn < b->lsn ? -1 : 1;
    return compare_sid_bytes(&a->sid, &b->sid);
}

/* One cseg per distinct sid, with its live pages and oldest LSN; leaves
 * the entries in (sid, lsn) order. */
static int group_by_segment(struct job *j)
{
    if (j->n > 1) /* e is NULL for a volume of empty commits */
        qsort(j->e, j->n, sizeof *j->e, compare_centry_sid);
    j->segs = calloc(j->n ? j->n : 1, sizeof *j->segs);
    if (!j->segs)
        return SEGIDX_ENOMEM;
    for (size_t i = 0; i < j->n; i++) {
        if (i == 0 || compare_sid_bytes(&j->e[i].sid, &j->e[i - 1].sid))
            j->segs[j->n_segs++] = (struct cseg){ .sid = j->e[i].sid, .first_lsn = j->e[i].lsn };
        j->segs[j->n_segs - 1].live += segidx_offset_set_cardinality(j->e[i].offsets);
    }
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ plan */

/* How many pages of `vid` segment `s` holds: its volumes are in vid order. */
static int volume_pages(const segidx_segment *s, const segidx_vid *vid, uint32_t count,
                        uint64_t *pages)
{
    uint32_t lo = 0, hi = count;
    *pages = 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        segidx_segment_volume v;
        int rc = segidx_segment_volume_get(s, mid, &v);
        if (rc)
            return rc;
        int c = memcmp(v.vid.bytes, vid->bytes, 16);
        if (c == 0) {
            *pages = v.page_count;
            return SEGIDX_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SEGIDX_OK;
}

/* Weigh one segment: open it through the loader for its figures. */
static int weigh(struct job *j, struct cseg *c)
{
    const segidx_segment *s;
    int rc = segidx_loader_get(j->l, &c->sid, &s);
    if (rc)
        return rc;
    segidx_segment_stats st;
    segidx_segment_stats_get(s, &st);
    rc = st.page_size == j->page_size ? volume_pages(s, j->vid, st.volume_count, &c->vol_pages)
                                      : SEGIDX_EINVAL;
    segidx_loader_put(j->l, s);
    if (rc)
        return rc;
    /* An entry naming more pages than the segment holds is caught when
     * the pages are copied; here it only must not look like garbage. */
    size_t small = j->opts->small_bytes ? j->opts->small_bytes : SEGIDX_DEFAULT_COMPACT_SMALL_BYTES;
    c->bytes = st.segment_bytes;
    c->shared = st.volume_count > 1;
    c->small = st.segment_bytes < small;
    c->garbage = c->live * 2 < c->vol_pages;
    return SEGIDX_OK;
}

static int compare_cseg_age(const void *pa, const void *pb)
{
    const struct cseg *a = pa, *b = pb;
    return (a->first_lsn > b->first_lsn) - (a->first_lsn < b->first_lsn);
}

/* Candidates oldest first until their live bytes pass max_input_bytes;
 * a lone candidate only when rewriting it frees something. */
static int choose(struct job *j)
{
    size_t max = j->opts->max_input_bytes ? j->opts->max_input_bytes
                                          : SEGIDX_DEFAULT_COMPACT_MAX_INPUT_BYTES;
    if (j->n_segs > 1)
        qsort(j->segs, j->n_segs, sizeof *j->segs, compare_cseg_age);
    uint64_t bytes = 0;
    struct cseg *first = NULL;
    for (size_t i = 0; i < j->n_segs; i++) {
        struct cseg *c = &j->segs[i];
        if (!(c->shared || c->small || c->garbage))
            continue;
        uint64_t live = c->live * j->page_size;
        if (j->n_old && bytes + live > max)
            break;
        bytes += live;
        c->chosen = true;
        j->old[j->n_old++] = c->sid;
        first = first ? first : c;
    }
    if (j->n_old == 1 && !first->shared && !first->garbage) {
        first->chosen = false;
        j->n_old = 0;
    }
    if (j->n_old > 1)
        qsort(j->old, j->n_old, sizeof *j->old, compare_sid_bytes);
    for (size_t i = 0; i < j->n_segs; i++)
        if (j->segs[i].chosen)
            j->st.bytes_in += j->segs[i].bytes;
    j->st.segments_in = j->n_old;
    return SEGIDX_OK;
}

static int plan(struct job *j)
{
    int rc = group_by_segment(j);
    j->old = malloc((j->n_segs ? j->n_segs : 1) * sizeof *j->old);
    if (!rc && !j->old)
        rc = SEGIDX_ENOMEM;
    j->st.segments_seen = j->n_segs;
    for (size_t i = 0; i < j->n_segs && !rc; i++)
        rc = weigh(j, &j->segs[i]);
    return rc ? rc : choose(j);
}

/* ------------------------------------------------------------ write */

static int on_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                   const segidx_packed_commit *commits, size_t n)
{
    struct job *j = ctx;
    int rc = j->opts->emit(j->opts->ctx, sid, buf, len, commits, n);
    if (!rc) {
        j->st.segments_out++;
        j->st.bytes_out += len;
    }
    return rc;
}

static int on_next_sid(void *ctx, segidx_sid *sid)
{
    struct job *j = ctx;
    return j->opts->next_sid(j->opts->ctx, sid);
}

static void move_free(segidx_repoint *m)
{
    segidx_commit_segment *segs = (segidx_commit_segment *)m->segs;
    for (size_t i = 0; segs && i < m->n; i++)
        segidx_offset_set_free((segidx_offset_set *)segs[i].offsets);
    free(segs);
}

/* A commit rewritten whole: keep its new segments for the re-point. */
static int on_commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                           const segidx_commit_segment *segs, size_t n)
{
    struct job *j = ctx;
    segidx_repoint *moves = segidx__grow(j->moves, &j->cap_moves, j->n_moves, sizeof *moves, 64);
    if (!moves)
        return SEGIDX_ENOMEM;
    j->moves = moves;
    segidx_commit_segment *copy = calloc(n, sizeof *copy);
    segidx_repoint mv = { *vid, lsn, copy, n };
    for (size_t i = 0; copy && i < n; i++) {
        copy[i].sid = segs[i].sid;
        if (!(copy[i].offsets = segidx_offset_set_copy(segs[i].offsets))) {
            move_free(&mv);
            copy = NULL;
        }
    }
    if (!copy)
        return SEGIDX_ENOMEM;
    j->moves[j->n_moves++] = mv;
    return SEGIDX_OK;
}

struct copy_pages {
    struct job *j;
    segidx_packer *p;
    const segidx_segment *s;
    segidx_lsn lsn;
};

/* One page version, checked against its entry and its checksum. */
static int copy_page(segidx_offset off, void *ctx)
{
    struct copy_pages *c = ctx;
    segidx_page_ref ref;
    int rc = segidx_segment_find(c->s, c->j->vid, off, c->lsn, &ref);
    if (rc == SEGIDX_ENOTFOUND || (!rc && ref.lsn != c->lsn))
        return SEGIDX_ECORRUPT; /* the segment lacks what the entry names */
    if (!rc)
        rc = segidx_segment_check_page(c->s, ref.local, ref.page);
    if (!rc)
        rc = segidx_packer_add(c->p, c->j->vid, off, c->lsn, ref.page);
    return rc;
}

/* The chosen entries' pages in commit order: each commit's pages one
 * after another, as the packer wants them. */
static int copy_chosen(struct job *j, segidx_packer *p)
{
    if (j->n > 1)
        qsort(j->e, j->n, sizeof *j->e, compare_centry_lsn);
    for (size_t i = 0; i < j->n; i++) {
        if (!bsearch(&j->e[i].sid, j->old, j->n_old, sizeof *j->old, compare_sid_bytes))
            continue;
        struct copy_pages c = { j, p, NULL, j->e[i].lsn };
        int rc = segidx_loader_get(j->l, &j->e[i].sid, &c.s);
        if (rc)
            return rc;
        rc = segidx_offset_set_iterate(j->e[i].offsets, copy_page, &c);
        segidx_loader_put(j->l, c.s);
        if (rc)
            return rc;
        j->st.pages += segidx_offset_set_cardinality(j->e[i].offsets);
    }
    return segidx_packer_flush(p);
}

static int rewrite(struct job *j)
{
    segidx_packer_options po = { j->opts->segment, on_next_sid, on_emit, j, on_commit_ready };
    segidx_packer *p;
    int rc = segidx_packer_new(&po, &p);
    if (rc)
        return rc;
    rc = copy_chosen(j, p);
    segidx_packer_free(p);
    if (!rc)
        rc = segidx_volume_repoint(j->vi, j->old, j->n_old, j->moves, j->n_moves);
    if (!rc)
        j->st.commits = j->n_moves;
    return rc;
}

/* ------------------------------------------------------------ the call */

static void job_free(struct job *j)
{
    for (size_t i = 0; i < j->n; i++)
        segidx_offset_set_free(j->e[i].offsets);
    for (size_t i = 0; i < j->n_moves; i++)
        move_free(&j->moves[i]);
    free(j->e);
    free(j->segs);
    free(j->old);
    free(j->moves);
}

int segidx_volume_compact(segidx_volume_index *vi, segidx_loader *l, const segidx_vid *vid,
                          const segidx_compact_options *opts, segidx_compact_stats *stats)
{
    if (!vi || !l || !vid || !opts || !opts->next_sid || !opts->emit)
        return SEGIDX_EINVAL;
    uint32_t page_size = opts->segment.page_size ? opts->segment.page_size
                                                 : SEGIDX_DEFAULT_PAGE_SIZE;
    struct job j = { .vi = vi, .l = l, .vid = vid, .opts = opts, .page_size = page_size };
    segidx_volume_meta m;
    int rc = segidx_volume_get(vi, vid, &m);
    if (!rc) {
        rc = segidx_volume_commits(vi, vid, collect_entry, &j);
        rc = j.err ? j.err : rc;
    }
    if (!rc)
        rc = plan(&j);
    if (!rc && j.n_old && opts->planned)
        rc = opts->planned(opts->ctx, j.old, j.n_old);
    if (!rc && j.n_old)
        rc = rewrite(&j);
    if (!rc && stats)
        *stats = j.st;
    job_free(&j);
    return rc;
}
