/* read_pages, warm (every segment cached): pages/s for 1, 64 and 1024
 * offsets a call. One volume of 2,000 commits of 1-32 pages over 4,096
 * offsets, packed into 16 MiB segments held in memory, its catalog in the
 * in-memory store. The reads ask for offsets that were written, at the
 * latest LSN.
 *
 * What checking pages costs: each size is read three ways, rounds
 * interleaved so that the machine's slow spells hit all three alike: the
 * public call (a page is hashed the first time a read hands it out from a
 * loaded segment, only a bit is looked at afterwards: the warm case);
 * every page hashed on every read ("hash all": what a first read pays);
 * and no check at all, the baseline of both. The last two are internal
 * variants no public call reaches. */
#include "bench.h"

#include <string.h>

#include "loader.h"

enum { PAGE = 4096, COMMITS = 2000, OFFSETS = 4096, ROUNDS = 9 };

struct memory_segments {
    struct { segidx_sid sid; uint8_t *buf; size_t len; } *s;
    size_t n, cap;
    uint64_t next;
    segidx_volume_index *vi;
    segidx_vid vid;
    segidx_commit_segment *pending; /* this commit's segments, by lsn */
};

static int next_sid(void *ctx, segidx_sid *sid)
{
    struct memory_segments *m = ctx;
    memset(sid, 0, sizeof *sid);
    uint64_t n = ++m->next;
    memcpy(sid->bytes, &n, 8);
    return 0;
}

static int keep_segment(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                        const segidx_packed_commit *commits, size_t n)
{
    struct memory_segments *m = ctx;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->s = realloc(m->s, m->cap * sizeof *m->s);
        BENCH_CHECK(m->s);
    }
    m->s[m->n].sid = *sid;
    m->s[m->n].buf = bench_xmalloc(len);
    memcpy(m->s[m->n].buf, buf, len);
    m->s[m->n++].len = len;
    /* A commit may span two segments: commit it once its last one is out. */
    for (size_t i = 0; i < n; i++) {
        segidx_commit_segment *p = &m->pending[2 * commits[i].lsn];
        p[p[0].offsets ? 1 : 0] = (segidx_commit_segment){ *sid, segidx_offset_set_copy(commits[i].offsets) };
    }
    return 0;
}

static int fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len, void **handle)
{
    struct memory_segments *m = ctx;
    for (size_t i = 0; i < m->n; i++)
        if (!memcmp(m->s[i].sid.bytes, sid->bytes, 16)) {
            *buf = m->s[i].buf;
            *len = m->s[i].len;
            *handle = NULL;
            return 0;
        }
    return SEGIDX_ENOTFOUND;
}

static void release(void *ctx, const segidx_sid *sid, const void *buf, size_t len, void *handle)
{
    (void)ctx, (void)sid, (void)buf, (void)len, (void)handle;
}

struct collect_written {
    uint32_t v[OFFSETS];
    uint32_t n;
};

static int collect_written(segidx_offset o, void *ctx)
{
    struct collect_written *c = ctx;
    c->v[c->n++] = o;
    return 0;
}

struct read_ctx {
    segidx_volume_index *vi;
    segidx_loader *loader;
    const segidx_vid *vid;
    segidx_offset_set **queries;
    int n_queries;
    enum segidx__page_check check;
};

static int count_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    (void)off, (void)lsn;
    BENCH_CHECK(page);
    ++*(uint64_t *)ctx;
    return 0;
}

static double round_reads(void *p)
{
    struct read_ctx *c = p;
    uint64_t pages = 0, t = bench_now_ns();
    for (int i = 0; i < c->n_queries; i++)
        BENCH_CHECK(segidx__read_pages_with(c->vi, c->loader, c->vid, UINT64_MAX, c->queries[i],
                                            count_page, &pages, c->check) == SEGIDX_OK);
    double s = (double)(bench_now_ns() - t) / 1e9;
    return pages / s;
}

enum { WAYS = 3 };

/* The median of each way's rounds, the ways taking turns at going first. */
static void median_of_ways(struct read_ctx *c, double *med)
{
    double v[WAYS][ROUNDS];
    for (int w = 0; w < WAYS; w++)
        (void)round_reads(&c[w]);
    for (int i = 0; i < ROUNDS; i++)
        for (int k = 0; k < WAYS; k++)
            v[(i + k) % WAYS][i] = round_reads(&c[(i + k) % WAYS]);
    for (int w = 0; w < WAYS; w++)
        med[w] = bench_median(v[w], ROUNDS);
}

int main(void)
{
    static struct memory_segments m;
    m.vid.bytes[0] = 0xB1;
    m.pending = calloc(2 * (COMMITS + 1), sizeof *m.pending);
    segidx_kv kv;
    BENCH_CHECK(segidx_kv_mem_open(&kv) == 0 && segidx_volume_index_open(kv, &m.vi) == 0);
    segidx_packer_options po = { .segment = { PAGE, 0, NULL }, .next_sid = next_sid,
                                  .emit = keep_segment, .ctx = &m };
    segidx_packer *p;
    BENCH_CHECK(segidx_packer_new(&po, &p) == 0);
    bench_rng r = bench_rng_seed(3);
    uint8_t page[PAGE] = { 1 };
    segidx_offset_set *ever = segidx_offset_set_new();
    for (segidx_lsn lsn = 1; lsn <= COMMITS; lsn++) {
        segidx_offset_set *seen = segidx_offset_set_new();
        for (uint32_t k = 0, n = 1 + bench_rng_below(&r, 32); k < n; k++) {
            uint32_t off = bench_rng_below(&r, OFFSETS);
            if (segidx_offset_set_contains(seen, off))
                continue;
            segidx_offset_set_add(seen, off);
            segidx_offset_set_add(ever, off);
            BENCH_CHECK(segidx_packer_add(p, &m.vid, off, lsn, page) == 0);
        }
        segidx_offset_set_free(seen);
    }
    BENCH_CHECK(segidx_packer_flush(p) == 0);
    segidx_packer_free(p);
    for (segidx_lsn lsn = 1; lsn <= COMMITS; lsn++) {
        segidx_commit_segment *segs = &m.pending[2 * lsn];
        size_t n = segs[1].offsets ? 2 : segs[0].offsets ? 1 : 0;
        BENCH_CHECK(segidx_volume_commit(m.vi, &m.vid, lsn, lsn, segs, n) == 0);
        for (size_t i = 0; i < n; i++)
            segidx_offset_set_free((segidx_offset_set *)segs[i].offsets);
    }
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, fetch, release, &m };
    segidx_loader *loader;
    BENCH_CHECK(segidx_loader_new(&src, NULL, &loader) == 0);

    /* The candidates: every offset some commit wrote. */
    struct collect_written cw = { { 0 }, 0 };
    segidx_offset_set_iterate(ever, collect_written, &cw);
    segidx_offset_set_free(ever);
    uint32_t *written = cw.v, n_written = cw.n;
    static const int sizes[] = { 1, 64, 1024 };
    for (int k = 0; k < 3; k++) {
        enum { QUERIES = 64 };
        segidx_offset_set *q[QUERIES];
        for (int i = 0; i < QUERIES; i++) {
            bench_rng_shuffle_u32(&r, written, n_written);
            q[i] = segidx_offset_set_new();
            for (int j = 0; j < sizes[k]; j++)
                segidx_offset_set_add(q[i], written[j]);
        }
        struct read_ctx c[WAYS] = {
            { m.vi, loader, &m.vid, q, QUERIES, SEGIDX__PAGES_CHECKED },
            { m.vi, loader, &m.vid, q, QUERIES, SEGIDX__PAGES_HASHED },
            { m.vi, loader, &m.vid, q, QUERIES, SEGIDX__PAGES_UNCHECKED },
        };
        double med[WAYS];
        median_of_ways(c, med);
        static const char *const how[WAYS - 1] = { "", " hash all" };
        for (int w = 0; w < WAYS - 1; w++) {
            char name[64];
            snprintf(name, sizeof name, "read_pages warm %d/call%s", sizes[k], how[w]);
            bench_print(&(struct bench_figure){ .name = name, .value = med[w], .unit = "pages/s",
                                                .better = BENCH_HIGHER_IS_BETTER,
                                                .baseline = "no page check",
                                                .baseline_value = med[WAYS - 1] });
        }
        for (int i = 0; i < QUERIES; i++)
            segidx_offset_set_free(q[i]);
    }
    segidx_loader_free(loader);
    segidx_volume_index_close(m.vi);
    for (size_t i = 0; i < m.n; i++)
        free(m.s[i].buf);
    free(m.s);
    free(m.pending);
    return 0;
}
