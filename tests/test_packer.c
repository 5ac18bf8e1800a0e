/* The packer: streams of committed pages cut into segments, checked against
 * a brute-force model (every input page in exactly one segment, with its
 * bytes; each segment's commits exactly the model's grouping of its pages;
 * each cut forced by the builder refusing the next page); cuts on the LSN
 * span, on max_bytes and on 65535 pages; failing callbacks and allocations
 * lose nothing; compaction of many small, overlapping segments.
 *
 * commit_ready: each commit handed over once, in commit order, exactly when
 * its last segment has been emitted, with the segments volume_commit wants;
 * catalogued from there into an in-memory index, every read at its LSN
 * gives the model's bytes, where cataloguing from emit reads stale ones. */
#include "segtest.h"

#include <errno.h>
#include <limits.h>

/* What the failing callbacks return: a host's own code, which the packer
 * hands back as SEGIDX_EIO. */
#define FAIL_CODE (-100)

/* ------------------------------------------------------------ the sink */

/* What emit handed over, copied: the callbacks' arguments are borrowed. */
struct emitted_commit {
    segidx_vid vid;
    uint64_t lsn;
    uint32_t *offs; /* ascending */
    uint32_t n;
};

struct emitted {
    segidx_sid sid;
    uint8_t *buf;   /* exactly len bytes, so that ASan sees reads past it */
    size_t len;
    struct emitted_commit *commits;
    size_t n_commits;
};

struct ready;
struct catalog;

struct sink {
    struct emitted *segs;
    size_t n, cap;
    uint64_t pages;                     /* in the segments emitted */
    uint64_t sid_calls, emit_calls;
    uint64_t fail_sid_at, fail_emit_at; /* the call that fails, 1-based; 0: none */
    int fail_rc;                        /* what it returns; 0: FAIL_CODE */
    unsigned failures;
    struct ready *ready;                /* commit_ready's checks */
};

/* A commit of the stream: a run of pages of one (vid, lsn). */
struct run {
    uint32_t first, n;
};

/* What commit_ready must do, and what it saw. */
struct ready {
    const wl_page *stream;
    uint32_t n;
    struct run *runs;
    uint32_t n_runs;
    uint32_t called;          /* runs handed over: always a prefix */
    uint64_t calls, fail_at;  /* fail_at: the call that fails, 1-based; 0: none */
    int fail_rc;
    uint32_t by_segments[6];  /* commits handed over in 1, 2, ... 5, 6+ segments */
    struct catalog *cat;      /* NULL: commit_ready only checks */
};

static bool same_commit(const wl_page *a, const wl_page *b)
{
    return a->lsn == b->lsn && memcmp(a->vid.bytes, b->vid.bytes, 16) == 0;
}

static struct ready ready_new(const wl_page *stream, uint32_t n)
{
    struct ready r = { stream, n, calloc(n ? n : 1, sizeof(struct run)), 0, 0, 0, 0, 0,
                       { 0 }, NULL };
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0 || !same_commit(&stream[i - 1], &stream[i]))
            r.runs[r.n_runs++] = (struct run){ i, 0 };
        r.runs[r.n_runs - 1].n++;
    }
    return r;
}

/* The commits every one of whose pages is in the first `pages` of the
 * stream: what commit_ready must have taken once those are emitted. */
static uint32_t complete_runs(const struct ready *r, uint64_t pages)
{
    uint32_t c = 0;
    while (c < r->n_runs && r->runs[c].first + r->runs[c].n <= pages)
        c++;
    return c;
}

static int sink_commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                             const segidx_commit_segment *segs, size_t n);

static int sink_failure(struct sink *k)
{
    k->failures++;
    return k->fail_rc ? k->fail_rc : FAIL_CODE;
}

static int sink_next_sid(void *ctx, segidx_sid *sid)
{
    struct sink *k = ctx;
    if (++k->sid_calls == k->fail_sid_at)
        return sink_failure(k);
    memset(sid->bytes, 0xA5, 16);
    memcpy(sid->bytes, &k->sid_calls, 8);
    return 0;
}

static int copy_offset(segidx_offset o, void *ctx)
{
    struct emitted_commit *c = ctx;
    c->offs[c->n++] = o;
    return 0;
}

static void copy_commit(struct emitted_commit *to, const segidx_packed_commit *from)
{
    assert_non_null(from->offsets);
    uint64_t card = segidx_offset_set_cardinality(from->offsets);
    to->vid = from->vid;
    to->lsn = from->lsn;
    to->offs = malloc((card ? card : 1) * sizeof *to->offs);
    to->n = 0;
    assert_int_equal(segidx_offset_set_iterate(from->offsets, copy_offset, to), 0);
    assert_int_equal(to->n, card);
}

static int sink_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                     const segidx_packed_commit *commits, size_t n)
{
    struct sink *k = ctx;
    if (++k->emit_calls == k->fail_emit_at)
        return sink_failure(k);
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 16;
        k->segs = realloc(k->segs, k->cap * sizeof *k->segs);
        assert_non_null(k->segs);
    }
    struct emitted *e = &k->segs[k->n++];
    e->sid = *sid;
    e->len = len;
    e->buf = malloc(len);
    assert_non_null(e->buf);
    memcpy(e->buf, buf, len);
    e->n_commits = n;
    e->commits = calloc(n ? n : 1, sizeof *e->commits);
    for (size_t i = 0; i < n; i++) {
        copy_commit(&e->commits[i], &commits[i]);
        k->pages += e->commits[i].n;
    }
    return 0;
}

static void sink_free(struct sink *k)
{
    for (size_t i = 0; i < k->n; i++) {
        for (size_t c = 0; c < k->segs[i].n_commits; c++)
            free(k->segs[i].commits[c].offs);
        free(k->segs[i].commits);
        free(k->segs[i].buf);
    }
    free(k->segs);
    memset(k, 0, sizeof *k);
}

static segidx_packer_options packer_options(uint32_t page_size, size_t max_bytes, struct sink *k)
{
    segidx_packer_options o;
    memset(&o, 0, sizeof o);
    o.segment.page_size = page_size;
    o.segment.max_bytes = max_bytes;
    o.next_sid = sink_next_sid;
    o.emit = sink_emit;
    o.ctx = k;
    return o;
}

static segidx_packer *new_packer(uint32_t page_size, size_t max_bytes, struct sink *k)
{
    segidx_packer_options o = packer_options(page_size, max_bytes, k);
    segidx_packer *p = NULL;
    assert_int_equal(segidx_packer_new(&o, &p), SEGIDX_OK);
    assert_non_null(p);
    return p;
}

/* ------------------------------------------------------------ streams */

/* Commit order: LSN, then volume, then offset. */
static int commit_order(const void *pa, const void *pb)
{
    const wl_page *a = pa, *b = pb;
    if (a->lsn != b->lsn)
        return a->lsn < b->lsn ? -1 : 1;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    return (a->off > b->off) - (a->off < b->off);
}

/* Compaction order: volume, then LSN, then offset. */
static int compact_order(const void *pa, const void *pb)
{
    const wl_page *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    if (a->lsn != b->lsn)
        return a->lsn < b->lsn ? -1 : 1;
    return (a->off > b->off) - (a->off < b->off);
}

static wl_page *sorted_copy(const workload *w, int (*cmp)(const void *, const void *))
{
    wl_page *s = malloc((w->n ? w->n : 1) * sizeof *s);
    assert_non_null(s);
    memcpy(s, w->pages, w->n * sizeof *s);
    qsort(s, w->n, sizeof *s, cmp);
    return s;
}

/* The page the model expects at stream position `pos`. */
static void expected_page(uint8_t *page, uint32_t page_size, const wl_page *p, uint8_t xor)
{
    wl_fill_page(page, page_size, p);
    for (uint32_t i = 0; xor && i < page_size; i++)
        page[i] ^= xor;
}

static void add_all(segidx_packer *p, const wl_page *stream, uint32_t n, uint32_t page_size)
{
    uint8_t *page = malloc(page_size);
    for (uint32_t i = 0; i < n; i++) {
        wl_fill_page(page, page_size, &stream[i]);
        int rc = segidx_packer_add(p, &stream[i].vid, stream[i].off, stream[i].lsn, page);
        if (rc) {
            print_error("page %u of %u: rc %d\n", i, n, rc);
            fail();
        }
    }
    free(page);
}

/* ------------------------------------------------------------ the model */

struct keyed {
    wl_page p;
    uint32_t pos; /* in the stream */
};

static int keyed_compare(const void *a, const void *b)
{
    return wl_compare(&((const struct keyed *)a)->p, &((const struct keyed *)b)->p);
}

struct model {
    const wl_page *stream;     /* the pages in the order the packer took them */
    uint32_t n;
    const uint8_t *xor;        /* per position: what the page bytes are XORed with */
    struct keyed *by_key;      /* (vid, off, lsn) -> position */
    uint32_t *owner;           /* position -> segment, UINT32_MAX before */
    uint32_t page_size;
};

static struct model model_new(const wl_page *stream, uint32_t n, const uint8_t *xor,
                              uint32_t page_size)
{
    struct model m = { stream, n, xor, malloc((n ? n : 1) * sizeof(struct keyed)),
                       malloc((n ? n : 1) * sizeof(uint32_t)), page_size };
    for (uint32_t i = 0; i < n; i++) {
        m.by_key[i] = (struct keyed){ stream[i], i };
        m.owner[i] = UINT32_MAX;
    }
    qsort(m.by_key, n, sizeof *m.by_key, keyed_compare);
    for (uint32_t i = 1; i < n; i++) /* the model itself: no page twice */
        assert_int_not_equal(keyed_compare(&m.by_key[i - 1], &m.by_key[i]), 0);
    return m;
}

static void model_free(struct model *m)
{
    free(m->by_key);
    free(m->owner);
}

static uint32_t model_position(const struct model *m, const segidx_vid *vid, uint32_t off,
                               uint64_t lsn)
{
    struct keyed key = { { *vid, off, lsn }, 0 };
    const struct keyed *hit = bsearch(&key, m->by_key, m->n, sizeof key, keyed_compare);
    if (!hit) {
        print_error("a segment holds a page nobody added: off %u lsn %llu\n", off,
                    (unsigned long long)lsn);
        fail();
    }
    return hit->pos;
}

struct claim {
    struct model *m;
    const segidx_segment *s;
    uint32_t seg;
    uint8_t *expect;
};

/* A page of segment `seg`: the model must have it, nobody else may have
 * claimed it, its bytes must be right, and find must return it. */
static int claim_page(void *ctx, const segidx_segment_page *pg)
{
    struct claim *c = ctx;
    struct model *m = c->m;
    uint32_t pos = model_position(m, pg->vid, pg->offset, pg->lsn);
    assert_int_equal(m->owner[pos], UINT32_MAX);
    m->owner[pos] = c->seg;
    expected_page(c->expect, m->page_size, &m->stream[pos], m->xor ? m->xor[pos] : 0);
    assert_memory_equal(pg->page, c->expect, m->page_size);
    segidx_page_ref ref;
    assert_int_equal(segidx_segment_find(c->s, pg->vid, pg->offset, pg->lsn, &ref), SEGIDX_OK);
    assert_int_equal(ref.lsn, pg->lsn);
    assert_int_equal(ref.local, pg->local);
    assert_memory_equal(ref.page, c->expect, m->page_size);
    return 0;
}

static segidx_segment *open_emitted(const struct emitted *e)
{
    segidx_segment *s = NULL;
    assert_int_equal(segidx_segment_open(e->buf, e->len, &s), SEGIDX_OK);
    return s;
}

/* Open and verify every segment and give each of its pages an owner. */
static void claim_all(struct model *m, const struct sink *k, size_t max_bytes)
{
    uint8_t *expect = malloc(m->page_size);
    uint64_t pages = 0;
    for (size_t i = 0; i < k->n; i++) {
        const struct emitted *e = &k->segs[i];
        assert_true(e->len <= max_bytes);
        segidx_segment *s = open_emitted(e);
        assert_int_equal(segidx_segment_verify(s), SEGIDX_OK);
        segidx_segment_stats st;
        segidx_segment_stats_get(s, &st);
        assert_memory_equal(st.sid.bytes, e->sid.bytes, 16);
        assert_int_equal(st.page_size, m->page_size);
        assert_int_equal(st.segment_bytes, e->len);
        for (size_t j = 0; j < i; j++)
            assert_memory_not_equal(k->segs[j].sid.bytes, e->sid.bytes, 16);
        struct claim c = { m, s, (uint32_t)i, expect };
        assert_int_equal(segidx_segment_iterate(s, NULL, claim_page, &c), 0);
        pages += st.page_count;
        segidx_segment_close(s);
    }
    for (uint32_t pos = 0; pos < m->n; pos++)
        if (m->owner[pos] == UINT32_MAX) {
            print_error("page %u of the stream is in no segment\n", pos);
            fail();
        }
    assert_int_equal(pages, m->n);
    free(expect);
}

static void check_finds(const struct model *m, const struct sink *k)
{
    for (size_t seg = 0; seg < k->n; seg++) {
        workload mine = { "segment", NULL, 0, 0, 0 };
        for (uint32_t i = 0; i < m->n; i++)
            if (m->owner[i] == seg)
                wl_push(&mine, &m->stream[i].vid, m->stream[i].off, m->stream[i].lsn);
        wl_page *sorted = model_sorted(&mine);
        segidx_segment *s = open_emitted(&k->segs[seg]);
        for (uint32_t i = 0; i < mine.n; i++) {
            const wl_page *p = &sorted[i];
            assert_find_matches_model(s, sorted, mine.n, &p->vid, p->off, p->lsn - 1, 0);
            assert_find_matches_model(s, sorted, mine.n, &p->vid, p->off, p->lsn + 1, 0);
            assert_find_matches_model(s, sorted, mine.n, &p->vid, p->off, UINT64_MAX, 0);
            assert_find_matches_model(s, sorted, mine.n, &p->vid, p->off + 1, p->lsn, 0);
        }
        segidx_segment_close(s);
        free(sorted);
        wl_free(&mine);
    }
}

/* A page and the segment that holds it, to sort by (owner, vid, lsn,
 * offset): the order of each segment's commits and their offsets. */
struct owned {
    uint32_t owner;
    wl_page p;
};

static int owned_order(const void *pa, const void *pb)
{
    const struct owned *a = pa, *b = pb;
    if (a->owner != b->owner)
        return a->owner < b->owner ? -1 : 1;
    return compact_order(&a->p, &b->p);
}

static void check_segment_offsets(const segidx_segment *s, const struct emitted_commit *c)
{
    segidx_offset_set *at = NULL;
    assert_int_equal(segidx_segment_offsets(s, &c->vid, c->lsn, &at), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_cardinality(at), c->n);
    for (uint32_t i = 0; i < c->n; i++)
        assert_true(segidx_offset_set_contains(at, c->offs[i]));
    segidx_offset_set_free(at);
}

/* Each segment's commits are exactly the model's (vid, lsn) -> offsets of
 * the pages it holds, sorted by (vid, lsn), and what the segment says. */
static void check_commits(const struct model *m, const struct sink *k)
{
    struct owned *order = malloc((m->n ? m->n : 1) * sizeof *order);
    for (uint32_t i = 0; i < m->n; i++)
        order[i] = (struct owned){ m->owner[i], m->stream[i] };
    qsort(order, m->n, sizeof *order, owned_order);
    uint32_t j = 0;
    for (size_t seg = 0; seg < k->n; seg++) {
        const struct emitted *e = &k->segs[seg];
        segidx_segment *s = open_emitted(e);
        assert_true(e->n_commits > 0);
        for (size_t ci = 0; ci < e->n_commits; ci++) {
            const struct emitted_commit *c = &e->commits[ci];
            assert_true(c->n > 0);
            for (uint32_t i = 0; i < c->n; i++, j++) {
                assert_true(j < m->n);
                const wl_page *want = &order[j].p;
                assert_int_equal(order[j].owner, seg);
                assert_memory_equal(c->vid.bytes, want->vid.bytes, 16);
                assert_int_equal(c->lsn, want->lsn);
                assert_int_equal(c->offs[i], want->off);
            }
            check_segment_offsets(s, c);
        }
        /* Every page of this segment was in one of its commits. */
        assert_true(j == m->n || order[j].owner != seg);
        segidx_segment_close(s);
    }
    assert_int_equal(j, m->n);
    free(order);
}

/* The packer took the stream in order, so each segment is a run of it;
 * and it cut only when the builder refused the run's next page. */
static void check_cuts(const struct model *m, const struct sink *k, size_t max_bytes)
{
    if (m->n == 0)
        return;
    assert_int_equal(m->owner[0], 0);
    for (uint32_t i = 1; i < m->n; i++)
        assert_true(m->owner[i] - m->owner[i - 1] <= 1);
    assert_int_equal(m->owner[m->n - 1], k->n - 1);

    segidx_segment_options o = { m->page_size, max_bytes, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&o);
    uint8_t *page = calloc(1, m->page_size);
    for (uint32_t i = 0; i < m->n; i++) {
        const wl_page *p = &m->stream[i];
        int rc = segidx_segment_builder_add(b, &p->vid, p->off, p->lsn, page);
        bool cut_here = i > 0 && m->owner[i] != m->owner[i - 1];
        if (cut_here) {
            if (rc != SEGIDX_EFULL && rc != SEGIDX_ERANGE) {
                print_error("segment %u was cut before page %u, which fit (rc %d)\n",
                            m->owner[i - 1], i, rc);
                fail();
            }
            segidx_segment_builder_reset(b);
            rc = segidx_segment_builder_add(b, &p->vid, p->off, p->lsn, page);
        }
        assert_int_equal(rc, SEGIDX_OK);
    }
    free(page);
    segidx_segment_builder_free(b);
}

static void check_packed(const wl_page *stream, uint32_t n, const uint8_t *xor,
                         const struct sink *k, uint32_t page_size, size_t max_bytes)
{
    struct model m = model_new(stream, n, xor, page_size);
    claim_all(&m, k, max_bytes);
    check_finds(&m, k);
    check_commits(&m, k);
    check_cuts(&m, k, max_bytes);
    model_free(&m);
}

/* Stream a workload in commit order and check the result. */
static size_t stream_and_check(const workload *w, uint32_t page_size, size_t max_bytes)
{
    struct sink k = { 0 };
    segidx_packer *p = new_packer(page_size, max_bytes, &k);
    wl_page *stream = sorted_copy(w, commit_order);
    add_all(p, stream, w->n, page_size);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    check_packed(stream, w->n, NULL, &k, page_size, max_bytes);
    /* Nothing is left: another flush emits nothing. */
    uint64_t emits = k.emit_calls;
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(k.emit_calls, emits);
    size_t segments = k.n;
    segidx_packer_free(p);
    sink_free(&k);
    free(stream);
    return segments;
}

/* ------------------------------------------------------------ streaming */

static void test_stream_reference_workloads(void **state)
{
    (void)state;
    workload ws[] = { wl_w1(1), wl_w2(2), wl_w3(3) };
    for (size_t i = 0; i < 3; i++) {
        size_t segments = stream_and_check(&ws[i], 512, 64 * 1024);
        assert_true(segments >= 30); /* 4090 pages of 512 bytes in 64 KiB segments */
        wl_free(&ws[i]);
    }
}

static void test_stream_random_workloads(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        workload w = wl_random(seed);
        uint32_t page_size = seed % 2 ? 512 : 1024;
        size_t max_bytes = 16 * 1024 + (size_t)(seed * 7919 % (64 * 1024));
        stream_and_check(&w, page_size, max_bytes);
        wl_free(&w);
    }
}

/* A commit bigger than a segment is split; each part is one commit. */
static void test_commit_split_across_segments(void **state)
{
    (void)state;
    workload w = wl_w3(5);
    struct sink k = { 0 };
    segidx_packer *p = new_packer(512, 32 * 1024, &k);
    add_all(p, w.pages, w.n, 512);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    check_packed(w.pages, w.n, NULL, &k, 512, 32 * 1024);
    assert_true(k.n > 60);
    for (size_t i = 0; i < k.n; i++) {
        assert_int_equal(k.segs[i].n_commits, 1);
        assert_int_equal(k.segs[i].commits[0].lsn, w.pages[0].lsn);
    }
    segidx_packer_free(p);
    sink_free(&k);
    wl_free(&w);
}

/* ------------------------------------------------------------ cuts */

static void test_cut_on_lsn_span(void **state)
{
    (void)state;
    segidx_vid a = { { 0xAA } }, b = { { 0xBB } };
    const uint64_t base = 1000;
    workload w = { "span", NULL, 0, 0, 0 };
    wl_push(&w, &a, 0, base);
    wl_push(&w, &a, 1, base + 1);
    wl_push(&w, &b, 9, base + 2);
    wl_push(&w, &a, 0, base + SEGIDX_MAX_LSN_SPAN);     /* span exactly 65535: fits */
    wl_push(&w, &a, 2, base + SEGIDX_MAX_LSN_SPAN + 1); /* 65536: the next segment */
    wl_push(&w, &b, 10, base + 100000);
    struct sink k = { 0 };
    const size_t max_bytes = 1 << 20; /* bytes are not the limit */
    segidx_packer *p = new_packer(512, max_bytes, &k);
    add_all(p, w.pages, w.n, 512);
    assert_int_equal(k.n, 1); /* cut on the fifth page, before adding it */
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(k.n, 2);
    check_packed(w.pages, w.n, NULL, &k, 512, max_bytes);
    segidx_segment *s = open_emitted(&k.segs[0]);
    segidx_segment_stats st;
    segidx_segment_stats_get(s, &st);
    assert_int_equal(st.page_count, 4);
    assert_true(st.segment_bytes < max_bytes / 100);
    segidx_segment_close(s);
    assert_int_equal(k.segs[0].n_commits, 4);
    assert_int_equal(k.segs[1].n_commits, 2);
    segidx_packer_free(p);
    sink_free(&k);
    wl_free(&w);
}

/* With room for header, footer, N pages, their checksums and a small
 * index, but not for one more page, segments hold exactly N pages. */
static void test_cut_after_n_pages(void **state)
{
    (void)state;
    static const uint32_t ns[] = { 1, 3, 10 };
    for (size_t t = 0; t < 3; t++) {
        uint32_t n = ns[t];
        size_t max_bytes = 64 + 64 + (size_t)n * (512 + 8) + 200;
        workload w = { "bulk", NULL, 0, 0, 0 };
        segidx_vid vid = { { 7, 7, 7 } };
        for (uint32_t i = 0; i < 3 * n + 1; i++)
            wl_push(&w, &vid, 5000 + i, 42);
        struct sink k = { 0 };
        segidx_packer *p = new_packer(512, max_bytes, &k);
        add_all(p, w.pages, w.n, 512);
        assert_int_equal(k.n, 3);
        assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
        assert_int_equal(k.n, 4);
        check_packed(w.pages, w.n, NULL, &k, 512, max_bytes);
        for (size_t i = 0; i < 4; i++) {
            assert_int_equal(k.segs[i].n_commits, 1);
            assert_int_equal(k.segs[i].commits[0].n, i < 3 ? n : 1);
            assert_int_equal(k.segs[i].commits[0].offs[0], 5000 + i * n);
        }
        segidx_packer_free(p);
        sink_free(&k);
        wl_free(&w);
    }
}

/* 65535 pages, however many bytes remain. The emit callback only counts:
 * the segments are big. */
struct page_counts {
    uint32_t counts[4];
    size_t n;
};

static int count_sid(void *ctx, segidx_sid *sid)
{
    (void)ctx;
    memset(sid, 1, sizeof *sid);
    return 0;
}

static int count_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                      const segidx_packed_commit *commits, size_t n)
{
    (void)sid;
    struct page_counts *c = ctx;
    segidx_segment *s = NULL;
    assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
    segidx_segment_stats st;
    segidx_segment_stats_get(s, &st);
    segidx_segment_close(s);
    assert_int_equal(n, 1);
    assert_int_equal(segidx_offset_set_cardinality(commits[0].offsets), st.page_count);
    assert_true(c->n < 4);
    c->counts[c->n++] = st.page_count;
    return 0;
}

static void test_cut_at_max_pages(void **state)
{
    (void)state;
    struct page_counts c = { { 0 }, 0 };
    segidx_packer_options o;
    memset(&o, 0, sizeof o);
    o.segment.page_size = 512;
    o.segment.max_bytes = 64u << 20;
    o.next_sid = count_sid;
    o.emit = count_emit;
    o.ctx = &c;
    segidx_packer *p = NULL;
    assert_int_equal(segidx_packer_new(&o, &p), SEGIDX_OK);
    uint8_t page[512] = { 3 };
    segidx_vid vid = { { 1 } };
    for (uint32_t i = 0; i <= SEGIDX_MAX_SEGMENT_PAGES; i++)
        assert_int_equal(segidx_packer_add(p, &vid, i, 9, page), SEGIDX_OK);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.counts[0], SEGIDX_MAX_SEGMENT_PAGES);
    assert_int_equal(c.counts[1], 1);
    segidx_packer_free(p);
}

/* ------------------------------------------------------------ failures */

/* A workload of a few hundred pages over several volumes. */
static workload small_workload(void)
{
    for (uint64_t seed = 100;; seed++) {
        workload w = wl_random(seed);
        if (w.n >= 300 && w.n <= 700 && w.pages[0].lsn != w.pages[w.n - 1].lsn &&
            memcmp(w.pages[0].vid.bytes, w.pages[w.n - 1].vid.bytes, 16) != 0)
            return w;
        wl_free(&w);
    }
}

enum recovery { RETRY_ADD, FLUSH_THEN_ADD };

/* Stream with one injected callback failure; on it, check the error came
 * back, then recover as `how` says. */
static void stream_with_failure(const wl_page *stream, uint32_t n, struct sink *k,
                                size_t max_bytes, enum recovery how)
{
    segidx_packer *p = new_packer(512, max_bytes, k);
    uint8_t page[512];
    for (uint32_t i = 0; i < n; i++) {
        wl_fill_page(page, 512, &stream[i]);
        unsigned failures = k->failures;
        size_t emitted = k->n;
        int rc = segidx_packer_add(p, &stream[i].vid, stream[i].off, stream[i].lsn, page);
        if (rc == SEGIDX_OK)
            continue;
        assert_int_equal(rc, SEGIDX_EIO);
        assert_int_equal(k->failures, failures + 1);
        assert_int_equal(k->n, emitted);
        if (how == FLUSH_THEN_ADD)
            assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
        assert_int_equal(segidx_packer_add(p, &stream[i].vid, stream[i].off, stream[i].lsn, page),
                         SEGIDX_OK);
    }
    int rc = segidx_packer_flush(p);
    if (rc) {
        assert_int_equal(rc, SEGIDX_EIO);
        assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    }
    assert_int_equal(k->failures, 1);
    segidx_packer_free(p);
}

static void test_callback_failures_lose_nothing(void **state)
{
    (void)state;
    workload w = small_workload();
    wl_page *stream = sorted_copy(&w, commit_order);
    const size_t max_bytes = 8 * 1024;
    struct sink k = { 0 };
    segidx_packer *p = new_packer(512, max_bytes, &k);
    add_all(p, stream, w.n, 512);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    segidx_packer_free(p);
    uint64_t emits = k.emit_calls;
    assert_true(emits >= 10);
    sink_free(&k);

    /* Each emit and each next_sid call in turn fails once, the last one
     * during the final flush; both ways of recovering. */
    for (uint64_t at = 1; at <= emits; at += at < 4 || at + 4 > emits ? 1 : 3)
        for (int kind = 0; kind < 4; kind++) {
            struct sink f = { 0 };
            if (kind < 2)
                f.fail_emit_at = at;
            else
                f.fail_sid_at = at;
            stream_with_failure(stream, w.n, &f, max_bytes, kind % 2 ? FLUSH_THEN_ADD : RETRY_ADD);
            assert_int_equal(f.n, emits);
            check_packed(stream, w.n, NULL, &f, 512, max_bytes);
            sink_free(&f);
        }
    free(stream);
    wl_free(&w);
}

/* An allocator that fails the n-th call once, and checks that every size
 * given back is the size that was asked for. */
struct test_alloc {
    uint64_t calls, fail_at;
    unsigned failures;
    size_t live;
};

#define HEADER 16u

static bool alloc_fails(struct test_alloc *t)
{
    if (++t->calls != t->fail_at)
        return false;
    t->failures++;
    return true;
}

static void *ta_alloc(void *ctx, size_t size)
{
    struct test_alloc *t = ctx;
    if (alloc_fails(t))
        return NULL;
    uint8_t *p = malloc(size + HEADER);
    assert_non_null(p);
    memcpy(p, &size, sizeof size);
    t->live++;
    return p + HEADER;
}

static void *ta_resize(void *ctx, void *ptr, size_t old_size, size_t new_size)
{
    struct test_alloc *t = ctx;
    size_t had;
    memcpy(&had, (uint8_t *)ptr - HEADER, sizeof had);
    assert_int_equal(had, old_size);
    if (alloc_fails(t))
        return NULL;
    uint8_t *p = realloc((uint8_t *)ptr - HEADER, new_size + HEADER);
    assert_non_null(p);
    memcpy(p, &new_size, sizeof new_size);
    return p + HEADER;
}

static void ta_release(void *ctx, void *ptr, size_t size)
{
    struct test_alloc *t = ctx;
    size_t had;
    memcpy(&had, (uint8_t *)ptr - HEADER, sizeof had);
    assert_int_equal(had, size);
    t->live--;
    free((uint8_t *)ptr - HEADER);
}

/* Pass `rc` on; an ENOMEM must be the allocation the test just failed. */
static int count_enomem(int rc, struct test_alloc *t, unsigned *seen)
{
    if (rc == SEGIDX_ENOMEM)
        assert_int_equal(t->failures, ++*seen);
    return rc;
}

/* A call that failed for want of memory emitted nothing and handed no
 * commit over. */
static void assert_nothing_out(const struct sink *k, size_t emitted, uint32_t called)
{
    assert_int_equal(k->n, emitted);
    if (k->ready)
        assert_int_equal(k->ready->called, called);
}

/* Run the stream with the fail_at-th allocation failing; return whether
 * a failure was injected. Every ENOMEM is retried and must then succeed.
 * With `ready`, through commit_ready too. */
static bool stream_with_failing_allocator(const wl_page *stream, uint32_t n, uint64_t fail_at,
                                          size_t max_bytes, bool ready)
{
    struct test_alloc t = { 0, fail_at, 0, 0 };
    segidx_allocator a = { ta_alloc, ta_resize, ta_release, &t };
    struct sink k = { 0 };
    struct ready rd = ready_new(stream, n);
    segidx_packer_options o = packer_options(512, max_bytes, &k);
    o.segment.alloc = &a;
    if (ready) {
        k.ready = &rd;
        o.commit_ready = sink_commit_ready;
    }
    segidx_packer *p = NULL;
    unsigned seen = 0;
    while (count_enomem(segidx_packer_new(&o, &p), &t, &seen) == SEGIDX_ENOMEM)
        assert_null(p);
    uint8_t page[512];
    int rc;
    for (uint32_t i = 0; i < n; i++) {
        wl_fill_page(page, 512, &stream[i]);
        size_t emitted = k.n;
        uint32_t called = rd.called;
        while ((rc = count_enomem(segidx_packer_add(p, &stream[i].vid, stream[i].off,
                                                       stream[i].lsn, page),
                                     &t, &seen)) == SEGIDX_ENOMEM)
            assert_nothing_out(&k, emitted, called);
        assert_int_equal(rc, SEGIDX_OK);
    }
    size_t emitted = k.n;
    uint32_t called = rd.called;
    while ((rc = count_enomem(segidx_packer_flush(p), &t, &seen)) == SEGIDX_ENOMEM)
        assert_nothing_out(&k, emitted, called);
    assert_int_equal(rc, SEGIDX_OK);
    segidx_packer_free(p);
    assert_int_equal(t.live, 0);
    assert_int_equal(seen, t.failures); /* every failure surfaced as ENOMEM */
    check_packed(stream, n, NULL, &k, 512, max_bytes);
    if (ready)
        assert_int_equal(rd.called, rd.n_runs);
    free(rd.runs);
    sink_free(&k);
    return t.failures > 0;
}

static void test_allocation_failures_lose_nothing(void **state)
{
    (void)state;
    workload w = small_workload();
    uint32_t n = w.n < 200 ? w.n : 200;
    wl_page *stream = sorted_copy(&w, commit_order);
    for (int ready = 0; ready < 2; ready++) {
        uint64_t at = 1;
        while (stream_with_failing_allocator(stream, n, at, 6 * 1024, ready))
            at++;
        assert_true(at > 20); /* the packer's and the builder's memory were both in play */
        print_message("allocation failures%s: %llu points, each recovered\n",
                      ready ? " with commit_ready" : "", (unsigned long long)(at - 1));
    }
    free(stream);
    wl_free(&w);
}

/* ------------------------------------------------------------ compaction */

/* Pack a workload in commit order into small segments. */
static void pack_small(const workload *w, struct sink *k, size_t max_bytes)
{
    segidx_packer *p = new_packer(512, max_bytes, k);
    wl_page *stream = sorted_copy(w, commit_order);
    add_all(p, stream, w->n, 512);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    segidx_packer_free(p);
    free(stream);
}

static const segidx_segment **open_all(const struct sink *k, size_t extra)
{
    const segidx_segment **segs = calloc(k->n + extra + 1, sizeof *segs);
    for (size_t i = 0; i < k->n; i++)
        segs[i] = open_emitted(&k->segs[i]);
    return segs;
}

static void close_all(const segidx_segment **segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        segidx_segment_close((segidx_segment *)segs[i]);
    free(segs);
}

/* Compact `segs` into segments of at most `max_bytes` and check every
 * version of the workload is there once, with bytes XORed by `xor`. */
static size_t compact_and_check(const segidx_segment *const *segs, size_t n, const workload *w,
                                const uint8_t *xor, size_t max_bytes)
{
    struct sink k = { 0 };
    segidx_packer *p = new_packer(512, max_bytes, &k);
    assert_int_equal(segidx_compact(segs, n, p), SEGIDX_OK);
    wl_page *stream = sorted_copy(w, compact_order);
    check_packed(stream, w->n, xor, &k, 512, max_bytes);
    size_t out = k.n;
    segidx_packer_free(p);
    sink_free(&k);
    free(stream);
    return out;
}

/* One volume whose versions span far more than 65535 LSNs. */
static workload wide_span_workload(void)
{
    workload w = { "wide", NULL, 0, 0, 0 };
    segidx_vid vid = { { 0x3C } };
    for (uint32_t i = 0; i < 400; i++)
        wl_push(&w, &vid, i % 37, 1 + 997ull * i);
    return w;
}

static void test_compact_workloads(void **state)
{
    (void)state;
    workload ws[] = { wl_w2(41), wl_random(42), wl_random(43), wide_span_workload() };
    for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
        struct sink small = { 0 };
        pack_small(&ws[i], &small, 6 * 1024);
        const segidx_segment **segs = open_all(&small, 0);
        size_t big = compact_and_check(segs, small.n, &ws[i], NULL, 256 * 1024);
        assert_true(big < small.n || small.n == 1);
        close_all(segs, small.n);
        sink_free(&small);
        wl_free(&ws[i]);
    }
}

/* Build one segment from the pages of `w` picked by `pick`, with their
 * bytes XORed by `xor`. */
static uint8_t *build_subset(const workload *w, const uint8_t *pick, uint8_t xor, size_t *len)
{
    segidx_segment_options o = { 512, 64u << 20, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&o);
    uint8_t page[512];
    for (uint32_t i = 0; i < w->n; i++) {
        if (!pick[i])
            continue;
        expected_page(page, 512, &w->pages[i], xor);
        assert_int_equal(
            segidx_segment_builder_add(b, &w->pages[i].vid, w->pages[i].off, w->pages[i].lsn, page),
            SEGIDX_OK);
    }
    *len = segidx_segment_builder_size(b);
    uint8_t *buf = malloc(*len);
    segidx_sid sid = { { 0xEE } };
    assert_int_equal(segidx_segment_builder_finish(b, &sid, buf, *len), SEGIDX_OK);
    segidx_segment_builder_free(b);
    return buf;
}

/* The XOR the model expects per position of the compaction-order stream,
 * given a per-position-of-`w` XOR. */
static uint8_t *xor_in_compact_order(const workload *w, const uint8_t *pick, uint8_t xor)
{
    wl_page *stream = sorted_copy(w, compact_order);
    struct model m = model_new(w->pages, w->n, NULL, 512);
    uint8_t *out = calloc(w->n, 1);
    for (uint32_t i = 0; i < w->n; i++)
        out[i] = pick[model_position(&m, &stream[i].vid, stream[i].off, stream[i].lsn)] ? xor : 0;
    model_free(&m);
    free(stream);
    return out;
}

/* Duplicated and overlapping inputs: each version packed once; where two
 * inputs disagree on a page's bytes, the first one in the array wins. */
static void test_compact_overlapping_inputs(void **state)
{
    (void)state;
    workload w = wl_w2(44);
    struct sink small = { 0 };
    pack_small(&w, &small, 6 * 1024);
    size_t n = small.n;

    /* The small segments, then the same again in reverse, then a segment
     * holding every third page once more. */
    const segidx_segment **segs = open_all(&small, n + 1);
    for (size_t i = 0; i < n; i++)
        segs[n + i] = segs[n - 1 - i];
    uint8_t *pick = calloc(w.n, 1);
    workload thirds = { "thirds", NULL, 0, 0, 0 };
    for (uint32_t i = 0; i < w.n; i += 3) {
        pick[i] = 1;
        wl_push(&thirds, &w.pages[i].vid, w.pages[i].off, w.pages[i].lsn);
    }
    size_t same_len;
    segidx_sid same_sid = { { 0xDD } };
    uint8_t *same = build_segment(&thirds, 512, 7, &same_sid, &same_len);
    wl_free(&thirds);
    segidx_segment *same_seg = NULL;
    assert_int_equal(segidx_segment_open(same, same_len, &same_seg), SEGIDX_OK);
    segs[2 * n] = same_seg;
    compact_and_check(segs, 2 * n + 1, &w, NULL, 256 * 1024);

    /* A segment whose copies of every third page have other bytes: first
     * in the array, its bytes win; last, the originals do. */
    size_t other_len;
    uint8_t *other = build_subset(&w, pick, 0x5A, &other_len);
    segidx_segment *other_seg = NULL;
    assert_int_equal(segidx_segment_open(other, other_len, &other_seg), SEGIDX_OK);
    const segidx_segment **first = calloc(n + 1, sizeof *first);
    first[0] = other_seg;
    memcpy(first + 1, segs, n * sizeof *segs);
    uint8_t *xor = xor_in_compact_order(&w, pick, 0x5A);
    compact_and_check(first, n + 1, &w, xor, 256 * 1024);
    segs[n] = other_seg; /* after the originals */
    compact_and_check(segs, n + 1, &w, NULL, 256 * 1024);

    free(xor);
    free(first);
    segidx_segment_close(other_seg);
    segidx_segment_close(same_seg);
    free(other);
    free(same);
    free(pick);
    for (size_t i = 0; i < n; i++)
        segidx_segment_close((segidx_segment *)segs[i]);
    free(segs);
    sink_free(&small);
    wl_free(&w);
}

static void test_compact_errors(void **state)
{
    (void)state;
    workload w = wl_w3(45);
    w.n = 100;
    struct sink small = { 0 };
    pack_small(&w, &small, 8 * 1024);
    const segidx_segment **segs = open_all(&small, 1);
    size_t n = small.n;

    struct sink k = { 0 };
    segidx_packer *p = new_packer(512, 64 * 1024, &k);
    assert_int_equal(segidx_compact(segs, n, NULL), SEGIDX_EINVAL);
    assert_int_equal(segidx_compact(NULL, 1, p), SEGIDX_EINVAL);
    segs[n] = NULL;
    assert_int_equal(segidx_compact(segs, n + 1, p), SEGIDX_EINVAL);

    /* Tail-only: no page bytes to copy. */
    const struct emitted *e = &small.segs[0];
    size_t tail_len;
    assert_int_equal(segidx_segment_tail_len(e->buf + e->len - SEGIDX_SEGMENT_FOOTER_BYTES,
                                             e->len, &tail_len),
                     SEGIDX_OK);
    segidx_segment *tail = NULL;
    assert_int_equal(segidx_segment_open_tail(e->buf + e->len - tail_len, tail_len, e->len, &tail),
                     SEGIDX_OK);
    segs[n] = tail;
    assert_int_equal(segidx_compact(segs, n + 1, p), SEGIDX_EINVAL);
    segidx_segment_close(tail);
    assert_int_equal(k.sid_calls + k.emit_calls, 0);

    /* Pages of another size. */
    struct sink k2 = { 0 };
    segidx_packer *p2 = new_packer(1024, 64 * 1024, &k2);
    assert_int_equal(segidx_compact(segs, n, p2), SEGIDX_EINVAL);
    assert_int_equal(segidx_compact(segs, 0, p2), SEGIDX_OK); /* nothing to do */
    assert_int_equal(k2.emit_calls, 0);
    segidx_packer_free(p2);

    /* A failing emit comes back as SEGIDX_EIO; the pages stay for a flush. */
    k.fail_emit_at = 1;
    assert_int_equal(segidx_compact(segs, n, p), SEGIDX_EIO);
    assert_int_equal(k.n, 0);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    check_packed(w.pages, w.n, NULL, &k, 512, 64 * 1024);

    segidx_packer_free(p);
    sink_free(&k);
    close_all(segs, n);
    sink_free(&small);
    w.n = WORKLOAD_PAGES;
    wl_free(&w);
}

/* ------------------------------------------------------------ edges */

static void test_new_refuses_bad_options(void **state)
{
    (void)state;
    struct sink k = { 0 };
    segidx_packer *sentinel = (segidx_packer *)(uintptr_t)0x77, *p = sentinel;
    segidx_packer_options good = packer_options(0, 0, &k);
    assert_int_equal(segidx_packer_new(NULL, &p), SEGIDX_EINVAL);
    assert_int_equal(segidx_packer_new(&good, NULL), SEGIDX_EINVAL);

    segidx_allocator no_release = { ta_alloc, ta_resize, NULL, NULL };
    segidx_packer_options bad[7];
    for (size_t i = 0; i < 7; i++)
        bad[i] = good;
    bad[0].next_sid = NULL;
    bad[1].emit = NULL;
    bad[2].segment.page_size = 1000;
    bad[3].segment.page_size = 256;
    bad[4].segment.page_size = 4096;
    bad[4].segment.max_bytes = 4096; /* not even one page */
#if SIZE_MAX > 0xFFFFFFFFu
    bad[5].segment.max_bytes = (size_t)1 << 32; /* above 4 GiB - 1 */
#else
    /* A 32-bit size_t cannot ask for more than 4 GiB - 1: a page too large. */
    bad[5].segment.page_size = 131072;
#endif
    bad[6].segment.alloc = &no_release;
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(segidx_packer_new(&bad[i], &p), SEGIDX_EINVAL);
        assert_ptr_equal(p, sentinel);
    }
    /* Room for a page, but not for the builder's worst-case index: refused
     * up front, or every add refused without a loop or an empty segment. */
    segidx_packer_options tight = packer_options(512, 700, &k);
    int rc = segidx_packer_new(&tight, &p);
    if (rc == SEGIDX_OK) {
        uint8_t small[512] = { 0 };
        segidx_vid v = { { 1 } };
        assert_int_not_equal(segidx_packer_add(p, &v, 1, 1, small), SEGIDX_OK);
        assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
        assert_int_equal(k.sid_calls + k.emit_calls, 0);
        segidx_packer_free(p);
        p = sentinel;
    } else {
        assert_int_equal(rc, SEGIDX_EINVAL);
    }
    assert_int_equal(segidx_packer_new(&good, &p), SEGIDX_OK); /* 4 KiB pages, 16 MiB */
    assert_ptr_not_equal(p, sentinel);
    uint8_t page[4096] = { 0 };
    segidx_vid vid = { { 1 } };
    assert_int_equal(segidx_packer_add(p, &vid, 1, 1, page), SEGIDX_OK);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(k.n, 1);
    assert_true(k.segs[0].len > 4096);
    segidx_packer_free(p);
    sink_free(&k);
}

static void test_flush_empty_and_free_null(void **state)
{
    (void)state;
    struct sink k = { 0 };
    segidx_packer *p = new_packer(512, 64 * 1024, &k);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(k.sid_calls + k.emit_calls, 0);
    assert_int_equal(segidx_packer_flush(NULL), SEGIDX_EINVAL);
    segidx_packer_free(p);
    segidx_packer_free(NULL);
    /* Freed with pages still open: dropped, nothing leaks (ASan). */
    p = new_packer(512, 64 * 1024, &k);
    uint8_t page[512] = { 0 };
    segidx_vid vid = { { 2 } };
    for (uint32_t i = 0; i < 50; i++)
        assert_int_equal(segidx_packer_add(p, &vid, i, 1 + i % 3, page), SEGIDX_OK);
    segidx_packer_free(p);
    assert_int_equal(k.emit_calls, 0);
}

/* lsn 0 and a page already in the open segment are refused and leave the
 * packer as it was; the refused page can come back in a later segment. */
static void test_invalid_pages(void **state)
{
    (void)state;
    struct sink k = { 0 };
    segidx_packer *p = new_packer(512, 64 * 1024, &k);
    segidx_vid a = { { 1 } }, b = { { 2 } };
    workload w = { "valid", NULL, 0, 0, 0 };
    wl_push(&w, &a, 10, 5);
    wl_push(&w, &a, 11, 5);
    wl_push(&w, &b, 10, 6);
    add_all(p, w.pages, w.n, 512);
    uint8_t page[512] = { 0 };
    assert_int_equal(segidx_packer_add(p, &a, 12, 0, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_packer_add(p, &b, 10, 6, page), SEGIDX_EINVAL); /* duplicate */
    assert_int_equal(segidx_packer_add(p, &a, 10, 5, page), SEGIDX_EINVAL); /* duplicate */
    assert_int_equal(segidx_packer_add(NULL, &a, 12, 1, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_packer_add(p, NULL, 12, 1, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_packer_add(p, &a, 12, 1, NULL), SEGIDX_EINVAL);
    /* A new (vid, lsn) that was refused must not show up as an empty commit. */
    segidx_vid c = { { 3 } };
    assert_int_equal(segidx_packer_add(p, &c, 1, 0, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    check_packed(w.pages, w.n, NULL, &k, 512, 64 * 1024);
    assert_int_equal(k.segs[0].n_commits, 2);

    /* The same page once more, now in another segment. */
    wl_page again = w.pages[0];
    wl_fill_page(page, 512, &again);
    assert_int_equal(segidx_packer_add(p, &again.vid, again.off, again.lsn, page), SEGIDX_OK);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(k.n, 2);
    segidx_packer_free(p);
    sink_free(&k);
    wl_free(&w);
}

static void test_offset_extremes(void **state)
{
    (void)state;
    segidx_vid a = { { 0 } }, b;
    memset(b.bytes, 0xFF, 16);
    workload w = { "ends", NULL, 0, 0, 0 };
    wl_push(&w, &a, 0, 1);
    wl_push(&w, &a, UINT32_MAX, 1);
    wl_push(&w, &b, UINT32_MAX, UINT64_MAX - 5);
    wl_push(&w, &a, 0, 2);
    wl_push(&w, &b, 0, UINT64_MAX);
    struct sink k = { 0 };
    segidx_packer *p = new_packer(512, 64 * 1024, &k);
    add_all(p, w.pages, w.n, 512);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(k.n, 1);
    check_packed(w.pages, w.n, NULL, &k, 512, 64 * 1024);
    const struct emitted *e = &k.segs[0];
    assert_int_equal(e->n_commits, 4);
    assert_int_equal(e->commits[0].n, 2); /* a@1: 0 and UINT32_MAX */
    assert_int_equal(e->commits[0].offs[0], 0);
    assert_int_equal(e->commits[0].offs[1], UINT32_MAX);
    assert_int_equal(e->commits[3].lsn, UINT64_MAX);
    segidx_packer_free(p);
    sink_free(&k);
    wl_free(&w);
}

/* ------------------------------------------------------------ commit_ready */

/* An in-memory catalog that commit_ready fills, read back through a
 * loader over the segments the sink keeps. `latest` is the model: per
 * volume and offset, the LSN of the version a read at the volume's newest
 * LSN must return (0: never written). */
#define UNIVERSE 96u

struct catalog {
    segidx_volume_index *vi;
    segidx_loader *loader;
    const segidx_vid *vids;
    uint32_t volumes;
    uint64_t *latest;         /* volumes x UNIVERSE */
    uint64_t reads, stale;    /* pages read, and of those, wrong ones */
};

static const struct emitted *emitted_with_sid(const struct sink *k, const segidx_sid *sid)
{
    for (size_t i = 0; i < k->n; i++)
        if (memcmp(k->segs[i].sid.bytes, sid->bytes, 16) == 0)
            return &k->segs[i];
    return NULL;
}

/* A segment's share of (vid, lsn) as emit reported it. */
static const struct emitted_commit *share_in(const struct emitted *e, const segidx_vid *vid,
                                             segidx_lsn lsn)
{
    for (size_t i = 0; i < e->n_commits; i++)
        if (e->commits[i].lsn == lsn && memcmp(e->commits[i].vid.bytes, vid->bytes, 16) == 0)
            return &e->commits[i];
    return NULL;
}

/* segs name emitted segments, each once, each with exactly the share emit
 * reported; the shares are disjoint and together the commit's pages. */
static void check_commit_segments(const struct sink *k, const struct run *run,
                                  const wl_page *first, const segidx_commit_segment *segs,
                                  size_t n)
{
    assert_true(n >= 1);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct emitted *e = emitted_with_sid(k, &segs[i].sid);
        if (!e) {
            print_error("commit_ready named a segment not yet emitted\n");
            fail();
        }
        for (size_t j = 0; j < i; j++)
            assert_memory_not_equal(segs[j].sid.bytes, segs[i].sid.bytes, 16);
        const struct emitted_commit *share = share_in(e, &first->vid, first->lsn);
        assert_non_null(share);
        assert_int_equal(segidx_offset_set_cardinality(segs[i].offsets), share->n);
        for (uint32_t o = 0; o < share->n; o++)
            assert_true(segidx_offset_set_contains(segs[i].offsets, share->offs[o]));
        total += share->n;
    }
    assert_int_equal(total, run->n);
    for (uint32_t p = 0; p < run->n; p++) {
        unsigned holders = 0;
        for (size_t i = 0; i < n; i++)
            holders += segidx_offset_set_contains(segs[i].offsets, first[p].off);
        assert_int_equal(holders, 1);
    }
}

static uint32_t volume_of(const struct catalog *c, const segidx_vid *vid)
{
    for (uint32_t v = 0; v < c->volumes; v++)
        if (memcmp(c->vids[v].bytes, vid->bytes, 16) == 0)
            return v;
    fail_msg("a volume the test does not know");
    return 0;
}

struct read_check {
    struct catalog *cat;
    const segidx_vid *vid;
    const uint64_t *latest;   /* the volume's row */
    uint32_t seen;
};

static int check_read_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct read_check *rc = ctx;
    uint8_t want[512];
    uint64_t want_lsn = rc->latest[off];
    bool right = want_lsn == 0 ? page == NULL && lsn == 0 : page != NULL && lsn == want_lsn;
    if (right && page) {
        wl_page p = { *rc->vid, off, want_lsn };
        wl_fill_page(want, sizeof want, &p);
        right = memcmp(page, want, sizeof want) == 0;
    }
    rc->cat->reads++;
    rc->cat->stale += !right;
    rc->seen++;
    return 0;
}

/* Read every offset of volume `v` at `lsn`, its newest; count wrong pages
 * in cat->stale. */
static void read_volume(struct catalog *cat, uint32_t v, segidx_lsn lsn)
{
    segidx_offset_set *q = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(q, 0, UNIVERSE), SEGIDX_OK);
    struct read_check rc = { cat, &cat->vids[v], cat->latest + (size_t)v * UNIVERSE, 0 };
    assert_int_equal(segidx_read_pages(cat->vi, cat->loader, &cat->vids[v], lsn, q,
                                       check_read_page, &rc),
                     SEGIDX_OK);
    assert_int_equal(rc.seen, UNIVERSE);
    segidx_offset_set_free(q);
}

/* Catalogue a commit the way a host does, then read its volume back at
 * that LSN: every page must be the model's. */
static void catalogue_and_read(struct catalog *cat, const struct run *run, const wl_page *first,
                               const segidx_commit_segment *segs, size_t n)
{
    uint32_t v = volume_of(cat, &first->vid);
    assert_int_equal(segidx_volume_commit(cat->vi, &first->vid, first->lsn, first->lsn, segs, n),
                     SEGIDX_OK);
    for (uint32_t p = 0; p < run->n; p++)
        cat->latest[(size_t)v * UNIVERSE + first[p].off] = first->lsn;
    uint64_t stale = cat->stale;
    read_volume(cat, v, first->lsn);
    assert_int_equal(cat->stale, stale);
}

static int sink_commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                             const segidx_commit_segment *segs, size_t n)
{
    struct sink *k = ctx;
    struct ready *r = k->ready;
    if (++r->calls == r->fail_at) {
        k->failures++;
        return r->fail_rc ? r->fail_rc : FAIL_CODE;
    }
    if (r->called >= r->n_runs) {
        print_error("commit_ready called for a commit that is not there\n");
        fail();
    }
    const struct run *run = &r->runs[r->called];
    const wl_page *first = &r->stream[run->first];
    assert_memory_equal(vid->bytes, first->vid.bytes, 16); /* in commit order */
    assert_int_equal(lsn, first->lsn);
    assert_true(run->first + run->n <= k->pages);         /* every page emitted */
    check_commit_segments(k, run, first, segs, n);
    r->by_segments[n < 6 ? n - 1 : 5]++;
    if (r->cat)
        catalogue_and_read(r->cat, run, first, segs, n);
    r->called++;
    return 0;
}

static segidx_packer *new_ready_packer(uint32_t page_size, size_t max_bytes, struct sink *k)
{
    segidx_packer_options o = packer_options(page_size, max_bytes, k);
    o.commit_ready = sink_commit_ready;
    segidx_packer *p = NULL;
    assert_int_equal(segidx_packer_new(&o, &p), SEGIDX_OK);
    return p;
}

/* After every call that returned OK, commit_ready has taken exactly the
 * commits whose pages are all emitted, and whose end the packer has seen
 * (a later commit's page, or a flush). */
static void assert_handed_over(const struct sink *k, bool flushed)
{
    const struct ready *r = k->ready;
    uint32_t want = complete_runs(r, k->pages);
    if (flushed)
        want = r->n_runs;
    if (r->called != want) {
        print_error("commit_ready took %u commits; %u are complete\n", r->called, want);
        fail();
    }
}

/* A call that may fail once with the sink's injected failure: it must
 * come back as `want_rc`, and the same call then succeeds. */
static int retried(int rc, const struct sink *k, unsigned *failures, int want_rc)
{
    if (rc == SEGIDX_OK)
        return rc;
    assert_int_equal(rc, want_rc);
    assert_int_equal(k->failures, ++*failures);
    return rc;
}

/* Stream every page in order, then flush, retrying each call that fails;
 * commit_ready checks itself. With `flush_between`, an add that failed on
 * a commit's first page is followed by a flush, which must hand over every
 * commit before it, before the add is repeated. */
static void stream_commits(segidx_packer *p, struct sink *k, int want_rc, bool flush_between)
{
    const struct ready *r = k->ready;
    uint8_t page[512];
    unsigned failures = k->failures;
    for (uint32_t i = 0; i < r->n; i++) {
        const wl_page *pg = &r->stream[i];
        wl_fill_page(page, sizeof page, pg);
        while (retried(segidx_packer_add(p, &pg->vid, pg->off, pg->lsn, page), k, &failures,
                       want_rc))
            if (flush_between && (i == 0 || !same_commit(&pg[-1], pg))) {
                assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
                assert_int_equal(r->called, complete_runs(r, i));
            }
        assert_handed_over(k, false);
    }
    while (retried(segidx_packer_flush(p), k, &failures, want_rc))
        ;
    assert_handed_over(k, true);
    uint64_t emits = k->emit_calls, calls = r->calls;
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK); /* nothing left */
    assert_int_equal(k->emit_calls, emits);
    assert_int_equal(r->calls, calls);
}

/* Commits of volumes 0..volumes-1, LSNs 1, 2, ... per volume, each of 1 to
 * max_pages distinct offsets below UNIVERSE, the volumes taking turns at
 * random. */
static workload commit_workload(uint64_t seed, uint32_t volumes, uint32_t commits,
                                uint32_t max_pages, segidx_vid *vids)
{
    test_rng r = { seed };
    workload w = { "commits", NULL, 0, 0, seed };
    uint64_t next[8] = { 0 };
    for (uint32_t v = 0; v < volumes; v++) {
        memset(vids[v].bytes, 0, 16);
        vids[v].bytes[0] = 0xC0;
        vids[v].bytes[1] = (uint8_t)v;
        vids[v].bytes[15] = (uint8_t)seed;
    }
    for (uint32_t c = 0; c < commits; c++) {
        uint32_t v = (uint32_t)rng_below(&r, volumes);
        uint64_t lsn = ++next[v];
        uint32_t pages = 1 + (uint32_t)rng_below(&r, max_pages);
        bool taken[UNIVERSE] = { false };
        for (uint32_t k = 0; k < pages; k++) {
            uint32_t off;
            do
                off = (uint32_t)rng_below(&r, UNIVERSE);
            while (taken[off]);
            taken[off] = true;
            wl_push(&w, &vids[v], off, lsn);
        }
    }
    return w;
}

static int sink_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                      void **handle)
{
    const struct emitted *e = emitted_with_sid(ctx, sid);
    if (!e)
        return SEGIDX_ENOTFOUND;
    *buf = e->buf;
    *len = e->len;
    *handle = NULL;
    return SEGIDX_OK;
}

static void sink_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                         void *handle)
{
    (void)ctx, (void)sid, (void)buf, (void)len, (void)handle;
}

static struct catalog catalog_open(struct sink *k, const segidx_vid *vids, uint32_t volumes,
                                   segidx_segment_source *src)
{
    struct catalog c = { NULL, NULL, vids, volumes,
                         calloc((size_t)volumes * UNIVERSE, sizeof(uint64_t)), 0, 0 };
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open(kv, &c.vi), SEGIDX_OK);
    *src = (segidx_segment_source){ SEGIDX_SEGMENT_SOURCE_VERSION, sink_fetch, sink_release, k };
    assert_int_equal(segidx_loader_new(src, NULL, &c.loader), SEGIDX_OK);
    return c;
}

static void catalog_close(struct catalog *c)
{
    segidx_loader_free(c->loader);
    segidx_volume_index_close(c->vi);
    free(c->latest);
}

/* Random commits, many spread over 2 to 4 small segments, catalogued from
 * commit_ready and read back at once. */
static void test_commit_ready_random_workloads(void **state)
{
    (void)state;
    uint32_t by_segments[6] = { 0 };
    for (uint64_t seed = 1; seed <= (uint64_t)test_scaled(24); seed++) {
        test_rng r = { seed * 7717 };
        segidx_vid vids[4];
        uint32_t volumes = 1 + (uint32_t)rng_below(&r, 4);
        workload w = commit_workload(seed, volumes, 40 + (uint32_t)rng_below(&r, 80),
                                     1 + (uint32_t)rng_below(&r, 30), vids);
        size_t max_bytes = 4096 + (size_t)rng_below(&r, 4096); /* 5 to 13 pages */
        struct sink k = { 0 };
        struct ready rd = ready_new(w.pages, w.n);
        segidx_segment_source src;
        struct catalog cat = catalog_open(&k, vids, volumes, &src);
        rd.cat = &cat;
        k.ready = &rd;
        segidx_packer *p = new_ready_packer(512, max_bytes, &k);
        stream_commits(p, &k, SEGIDX_OK, false);
        check_packed(w.pages, w.n, NULL, &k, 512, max_bytes);
        assert_true(cat.reads >= (uint64_t)rd.n_runs * UNIVERSE);
        assert_int_equal(cat.stale, 0);
        for (int i = 0; i < 6; i++)
            by_segments[i] += rd.by_segments[i];
        segidx_packer_free(p);
        catalog_close(&cat);
        free(rd.runs);
        sink_free(&k);
        wl_free(&w);
    }
    print_message("commits in 1..5, 6+ segments: %u %u %u %u %u %u\n", by_segments[0],
                  by_segments[1], by_segments[2], by_segments[3], by_segments[4],
                  by_segments[5]);
    uint32_t total = 0;
    for (int i = 0; i < 6; i++)
        total += by_segments[i];
    /* Most commits that span segments span 2 to 4 of them; a third of all
     * commits at least span some. */
    assert_true(3 * (by_segments[1] + by_segments[2] + by_segments[3]) >= total);
    assert_true(by_segments[1] + by_segments[2] + by_segments[3] >=
                4 * (by_segments[4] + by_segments[5]));
}

/* The reference and random streams of the other tests, in commit order:
 * commit_ready takes each (vid, lsn) once, and emit's segments are as
 * they were without it. */
static void test_commit_ready_other_streams(void **state)
{
    (void)state;
    workload ws[] = { wl_w1(11), wl_w2(12), wl_w3(13), wl_random(14), wl_random(15) };
    for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
        wl_page *stream = sorted_copy(&ws[i], commit_order);
        struct sink k = { 0 };
        struct ready rd = ready_new(stream, ws[i].n);
        k.ready = &rd;
        segidx_packer *p = new_ready_packer(512, 24 * 1024, &k);
        stream_commits(p, &k, SEGIDX_OK, false);
        check_packed(stream, ws[i].n, NULL, &k, 512, 24 * 1024);
        segidx_packer_free(p);
        free(rd.runs);
        sink_free(&k);
        free(stream);
        wl_free(&ws[i]);
    }
}

/* One page; a commit that fills a segment exactly; an empty flush. */
static void test_commit_ready_edges(void **state)
{
    (void)state;
    segidx_vid vid = { { 0xE1 } };
    uint8_t page[512] = { 0 };

    /* Empty: no callback at all. */
    struct sink k = { 0 };
    workload none = { "none", NULL, 0, 0, 0 };
    struct ready rd = ready_new(NULL, 0);
    k.ready = &rd;
    segidx_packer *p = new_ready_packer(512, 64 * 1024, &k);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(k.sid_calls + k.emit_calls + rd.calls, 0);
    segidx_packer_free(p);
    free(rd.runs);

    /* One page: handed over at the flush, not before. */
    workload one = { "one", NULL, 0, 0, 0 };
    wl_push(&one, &vid, 7, 1);
    rd = ready_new(one.pages, one.n);
    k.ready = &rd;
    p = new_ready_packer(512, 64 * 1024, &k);
    wl_fill_page(page, 512, &one.pages[0]);
    assert_int_equal(segidx_packer_add(p, &vid, 7, 1, page), SEGIDX_OK);
    assert_int_equal(rd.calls, 0);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(rd.called, 1);
    assert_int_equal(rd.by_segments[0], 1);
    segidx_packer_free(p);
    free(rd.runs);
    sink_free(&k);

    /* Commit 1 fills a segment of exactly 4 pages; commit 2's first page
     * cuts it, and commit 1 is handed over, in one segment, before that
     * page is taken; commit 2 waits for the flush. */
    const uint32_t fit = 4;
    size_t max_bytes = 64 + 64 + (size_t)fit * (512 + 8) + 200;
    workload w = { "exact", NULL, 0, 0, 0 };
    for (uint32_t i = 0; i < fit; i++)
        wl_push(&w, &vid, 100 + i, 1);
    for (uint32_t i = 0; i < 3; i++)
        wl_push(&w, &vid, 100 + i, 2);
    rd = ready_new(w.pages, w.n);
    k.ready = &rd;
    p = new_ready_packer(512, max_bytes, &k);
    for (uint32_t i = 0; i < w.n; i++) {
        wl_fill_page(page, 512, &w.pages[i]);
        assert_int_equal(segidx_packer_add(p, &vid, w.pages[i].off, w.pages[i].lsn, page),
                         SEGIDX_OK);
        assert_int_equal(k.n, i < fit ? 0 : 1);
        assert_int_equal(rd.called, i < fit ? 0 : 1);
    }
    assert_int_equal(k.segs[0].n_commits, 1);
    assert_int_equal(k.segs[0].commits[0].n, fit);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(rd.called, 2);
    assert_int_equal(rd.by_segments[0], 2);
    check_packed(w.pages, w.n, NULL, &k, 512, max_bytes);
    segidx_packer_free(p);
    free(rd.runs);
    sink_free(&k);
    wl_free(&w);
    wl_free(&one);
    wl_free(&none);
}

/* With commit_ready, a commit's pages come together, each offset once:
 * a page of a closed commit, or an offset the commit already has in an
 * emitted segment, is refused and changes nothing. */
static void test_commit_ready_refuses(void **state)
{
    (void)state;
    segidx_vid a = { { 0xA0 } }, b = { { 0xB0 } };
    const size_t max_bytes = 64 + 64 + 4 * (512 + 8) + 200; /* 4 pages */
    workload w = { "refuse", NULL, 0, 0, 0 };
    for (uint32_t i = 0; i < 6; i++) /* a@1 over two segments */
        wl_push(&w, &a, i, 1);
    wl_push(&w, &b, 0, 1);
    wl_push(&w, &b, 1, 1);
    struct sink k = { 0 };
    struct ready rd = ready_new(w.pages, w.n);
    k.ready = &rd;
    segidx_packer *p = new_ready_packer(512, max_bytes, &k);
    uint8_t page[512];
    for (uint32_t i = 0; i < 6; i++) {
        wl_fill_page(page, 512, &w.pages[i]);
        assert_int_equal(segidx_packer_add(p, &a, i, 1, page), SEGIDX_OK);
    }
    assert_int_equal(k.n, 1);
    assert_int_equal(segidx_packer_add(p, &a, 1, 1, page), SEGIDX_EINVAL); /* emitted */
    assert_int_equal(segidx_packer_add(p, &a, 5, 1, page), SEGIDX_EINVAL); /* open */
    assert_int_equal(segidx_packer_add(p, &a, 9, 0, page), SEGIDX_EINVAL);
    for (uint32_t i = 6; i < 8; i++) {
        wl_fill_page(page, 512, &w.pages[i]);
        assert_int_equal(segidx_packer_add(p, &b, w.pages[i].off, 1, page), SEGIDX_OK);
    }
    assert_int_equal(segidx_packer_add(p, &a, 9, 1, page), SEGIDX_EINVAL); /* closed */
    assert_int_equal(rd.calls, 0);
    assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
    assert_int_equal(rd.called, 2);
    assert_int_equal(rd.by_segments[1], 1); /* a@1 in two segments */
    check_packed(w.pages, w.n, NULL, &k, 512, max_bytes);
    segidx_packer_free(p);
    free(rd.runs);
    sink_free(&k);
    wl_free(&w);
}

/* next_sid, emit and commit_ready each fail at every call in turn (and
 * fail with codes of every kind): the call that made it returns the code
 * the header promises, and repeating that call loses nothing and hands
 * nothing over twice. */
static void test_commit_ready_failures(void **state)
{
    (void)state;
    segidx_vid vids[3];
    workload w = commit_workload(99, 3, 30, 12, vids);
    const size_t max_bytes = 5 * 1024;
    struct sink k = { 0 };
    struct ready rd = ready_new(w.pages, w.n);
    k.ready = &rd;
    segidx_packer *p = new_ready_packer(512, max_bytes, &k);
    stream_commits(p, &k, SEGIDX_OK, false);
    segidx_packer_free(p);
    const uint64_t sids = k.sid_calls, emits = k.emit_calls, readies = rd.calls;
    assert_true(emits >= 8 && readies == rd.n_runs);
    sink_free(&k);

    static const struct {
        int rc, want;
    } codes[] = { { FAIL_CODE, SEGIDX_EIO },  { 5, SEGIDX_EIO },
                  { -EIO, SEGIDX_EIO },       { -ETIMEDOUT, SEGIDX_EIO },
                  { INT_MAX, SEGIDX_EIO },    { INT_MIN, SEGIDX_EIO },
                  { SEGIDX_ENOMEM, SEGIDX_ENOMEM }, { SEGIDX_ECONFLICT, SEGIDX_ECONFLICT } };
    const size_t n_codes = sizeof codes / sizeof *codes;
    for (int which = 0; which < 3; which++) {
        uint64_t calls = which == 0 ? sids : which == 1 ? emits : readies;
        for (uint64_t at = 1; at <= calls; at++) {
            size_t code = (size_t)(at + (uint64_t)which) % n_codes;
            struct sink f = { 0 };
            struct ready fr = ready_new(w.pages, w.n);
            f.ready = &fr;
            f.fail_rc = codes[code].rc;
            fr.fail_rc = codes[code].rc;
            if (which == 0)
                f.fail_sid_at = at;
            else if (which == 1)
                f.fail_emit_at = at;
            else
                fr.fail_at = at;
            p = new_ready_packer(512, max_bytes, &f);
            stream_commits(p, &f, codes[code].want, at % 2 == 0);
            assert_int_equal(f.failures, 1);
            assert_int_equal(fr.called, fr.n_runs);
            assert_int_equal(f.n, emits);
            check_packed(w.pages, w.n, NULL, &f, 512, max_bytes);
            segidx_packer_free(p);
            free(fr.runs);
            sink_free(&f);
        }
    }
    free(rd.runs);
    wl_free(&w);
}

/* A packer freed with commits not yet handed over (some emitted, some
 * open, one whose commit_ready failed) leaks nothing (ASan, valgrind). */
static void test_commit_ready_free_pending(void **state)
{
    (void)state;
    segidx_vid vids[2];
    workload w = commit_workload(5, 2, 20, 10, vids);
    struct sink k = { 0 };
    struct ready rd = ready_new(w.pages, w.n);
    rd.fail_at = 2;
    k.ready = &rd;
    segidx_packer *p = new_ready_packer(512, 4096, &k);
    uint8_t page[512];
    uint32_t i = 0;
    int rc = SEGIDX_OK;
    for (; i < w.n && rc == SEGIDX_OK; i++) {
        wl_fill_page(page, 512, &w.pages[i]);
        rc = segidx_packer_add(p, &w.pages[i].vid, w.pages[i].off, w.pages[i].lsn, page);
    }
    assert_int_equal(rc, SEGIDX_EIO);
    assert_int_equal(rd.called, 1);
    segidx_packer_free(p);
    free(rd.runs);
    sink_free(&k);
    wl_free(&w);
}

/* ------------------------------------------------------------ partial commits */

/* The old way, a host that catalogues each commit from the first emit
 * that holds part of it: with a commit spread over two segments, a read
 * at its LSN between the two emits returns the older bytes of the pages
 * still in the packer, with SEGIDX_OK. */
struct eager_host {
    struct sink k;
    struct catalog *cat;
    const struct run *runs;
    const wl_page *stream;
    segidx_lsn catalogued;
    uint64_t stale_reads;      /* reads with at least one wrong page */
};

static int eager_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                      const segidx_packed_commit *commits, size_t n)
{
    struct eager_host *h = ctx;
    int rc = sink_emit(&h->k, sid, buf, len, commits, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (commits[i].lsn != h->catalogued + 1)
            continue; /* already catalogued from an earlier share */
        segidx_commit_segment seg = { *sid, commits[i].offsets };
        assert_int_equal(segidx_volume_commit(h->cat->vi, &commits[i].vid, commits[i].lsn,
                                              commits[i].lsn, &seg, 1),
                         SEGIDX_OK);
        h->catalogued = commits[i].lsn;
        /* The model: the whole commit is there. */
        const struct run *run = &h->runs[commits[i].lsn - 1];
        for (uint32_t p = 0; p < run->n; p++)
            h->cat->latest[h->stream[run->first + p].off] = commits[i].lsn;
        uint64_t stale = h->cat->stale;
        read_volume(h->cat, 0, commits[i].lsn);
        h->stale_reads += h->cat->stale > stale;
    }
    return 0;
}

static void test_partial_commit_from_emit_reads_stale(void **state)
{
    (void)state;
    segidx_vid vid = { { 0x6E } };
    /* Commit 1 writes offsets 0..7, commit 2 rewrites 0..9, in segments
     * of 6 pages: each commit spans two. Catalogued after its first
     * segment, commit 1 reads 6 and 7 as never written, and commit 2
     * reads 4..9 as commit 1's. */
    workload w = { "partial", NULL, 0, 0, 0 };
    for (uint32_t i = 0; i < 8; i++)
        wl_push(&w, &vid, i, 1);
    for (uint32_t i = 0; i < 10; i++)
        wl_push(&w, &vid, i, 2);
    wl_push(&w, &vid, 50, 3);
    const size_t max_bytes = 64 + 64 + 6 * (512 + 8) + 200;
    uint8_t page[512];

    for (int eager = 1; eager >= 0; eager--) {
        struct eager_host h = { { 0 }, NULL, NULL, w.pages, 0, 0 };
        struct ready rd = ready_new(w.pages, w.n);
        segidx_segment_source src;
        struct catalog cat = catalog_open(&h.k, &vid, 1, &src);
        h.cat = &cat;
        h.runs = rd.runs;
        segidx_packer_options o = packer_options(512, max_bytes, &h.k);
        if (eager) {
            o.emit = eager_emit;
            o.ctx = &h; /* h.k first: the sink's callbacks see their sink */
        } else {
            rd.cat = &cat;
            h.k.ready = &rd;
            o.commit_ready = sink_commit_ready;
        }
        segidx_packer *p = NULL;
        assert_int_equal(segidx_packer_new(&o, &p), SEGIDX_OK);
        for (uint32_t i = 0; i < w.n; i++) {
            wl_fill_page(page, 512, &w.pages[i]);
            assert_int_equal(
                segidx_packer_add(p, &vid, w.pages[i].off, w.pages[i].lsn, page), SEGIDX_OK);
        }
        assert_int_equal(segidx_packer_flush(p), SEGIDX_OK);
        assert_true(h.k.n >= 3);
        if (eager) {
            assert_int_equal(h.catalogued, 3);
            /* Commits 1 and 2, and commit 3 on top of their missing shares. */
            assert_int_equal(h.stale_reads, 3);
            assert_true(cat.stale >= 1);
        } else {
            assert_int_equal(rd.called, 3);
            assert_int_equal(rd.by_segments[1], 2); /* commits 1 and 2 */
            assert_int_equal(cat.stale, 0);
            assert_true(cat.reads >= 3 * UNIVERSE);
        }
        segidx_packer_free(p);
        catalog_close(&cat);
        free(rd.runs);
        sink_free(&h.k);
    }
    wl_free(&w);
}

/* Compaction through a packer with commit_ready: each (vid, lsn) of the
 * inputs handed over once, in (vid, lsn) order, with its new segments. */
static void test_compact_commit_ready(void **state)
{
    (void)state;
    workload w = wl_w2(46);
    struct sink small = { 0 };
    pack_small(&w, &small, 6 * 1024);
    const segidx_segment **segs = open_all(&small, 0);
    wl_page *stream = sorted_copy(&w, compact_order);
    struct sink k = { 0 };
    struct ready rd = ready_new(stream, w.n);
    k.ready = &rd;
    segidx_packer *p = new_ready_packer(512, 32 * 1024, &k);
    assert_int_equal(segidx_compact(segs, small.n, p), SEGIDX_OK);
    assert_int_equal(rd.called, rd.n_runs);
    check_packed(stream, w.n, NULL, &k, 512, 32 * 1024);
    segidx_packer_free(p);
    free(rd.runs);
    sink_free(&k);
    free(stream);
    close_all(segs, small.n);
    sink_free(&small);
    wl_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_reference_workloads),
        cmocka_unit_test(test_stream_random_workloads),
        cmocka_unit_test(test_commit_split_across_segments),
        cmocka_unit_test(test_cut_on_lsn_span),
        cmocka_unit_test(test_cut_after_n_pages),
        cmocka_unit_test(test_cut_at_max_pages),
        cmocka_unit_test(test_callback_failures_lose_nothing),
        cmocka_unit_test(test_allocation_failures_lose_nothing),
        cmocka_unit_test(test_compact_workloads),
        cmocka_unit_test(test_compact_overlapping_inputs),
        cmocka_unit_test(test_compact_errors),
        cmocka_unit_test(test_new_refuses_bad_options),
        cmocka_unit_test(test_flush_empty_and_free_null),
        cmocka_unit_test(test_invalid_pages),
        cmocka_unit_test(test_offset_extremes),
        cmocka_unit_test(test_commit_ready_random_workloads),
        cmocka_unit_test(test_commit_ready_other_streams),
        cmocka_unit_test(test_commit_ready_edges),
        cmocka_unit_test(test_commit_ready_refuses),
        cmocka_unit_test(test_commit_ready_failures),
        cmocka_unit_test(test_commit_ready_free_pending),
        cmocka_unit_test(test_partial_commit_from_emit_reads_stale),
        cmocka_unit_test(test_compact_commit_ready),
    };
    return cmocka_run_group_tests_name("packer", tests, NULL, NULL);
}
