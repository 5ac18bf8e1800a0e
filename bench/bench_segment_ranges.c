/* Bytes a range-reading host moves for one page (examples/segment_ranges.h,
 * the read policy of examples/s3_segments.h), against fetching the whole
 * segment, for a typical segment: the default 16 MiB filled with 4 KiB
 * pages of W1 (50 volumes, about 4050 pages fit).
 *
 * Counted, not timed: the store is an in-memory object that answers GETs
 * as S3 does (suffix and explicit ranges, whole objects), so the figures
 * are the bytes and requests segment_ranges asks for, through the same
 * code an S3 host runs, minus HTTP. That keeps them exact and the same on
 * every run; what a network adds on top (headers, round trips) depends on
 * the network. Every page read is checked against what was written.
 *
 * Figures: a cold page (tail GET + page GET) vs one whole-segment GET; a
 * second page of the same segment (one page GET) vs the same; how many
 * cold pages one whole GET costs; requests for a cold page vs a server
 * without suffix ranges (HEAD, tail GET, page GET). The first tail GET
 * asks for the default guess (64 KiB) of a tail of about 42 KiB. */
#include "bench.h"
#include "workload.h"

#include "segidx.h"

#include "../examples/segment_ranges.h"

struct object {
    segidx_sid sid;
    const uint8_t *bytes;
    uint64_t len;
    int no_suffix;   /* answer as a server that ignores `bytes=-N` */
    int lie;         /* page replies that break the protocol: 1 short,
                        2 long, 3 shifted, 4 another object length */
    uint64_t gets, heads;
};

static int mem_get(void *ctx, const segidx_sid *sid, const seg_get *req, seg_reply *rep)
{
    struct object *o = ctx;
    if (memcmp(sid->bytes, o->sid.bytes, 16))
        return SEGIDX_ENOTFOUND;
    uint64_t at = 0, n = o->len;
    if (req->kind == SEG_GET_SUFFIX) {
        n = req->n < o->len ? req->n : o->len;
        at = o->no_suffix ? 0 : o->len - n;
        if (o->no_suffix && n < o->len)
            n++; /* bytes 0..N, as such servers answer */
    } else if (req->kind == SEG_GET_RANGE) {
        if (req->first >= o->len)
            return SEGIDX_EIO;
        at = req->first;
        n = req->n < o->len - at ? req->n : o->len - at;
    }
    rep->body = bench_xmalloc((size_t)n + 1);
    memcpy(rep->body, o->bytes + at, (size_t)n);
    rep->len = n;
    rep->at = at;
    rep->total = o->len;
    if (req->kind == SEG_GET_RANGE && n == SEGIDX_DEFAULT_PAGE_SIZE && o->lie) {
        rep->len += o->lie == 1 ? (uint64_t)-1 : o->lie == 2 ? 1 : 0;
        rep->at += o->lie == 3;
        rep->total += o->lie == 4;
    }
    o->gets++;
    return SEGIDX_OK;
}

static int mem_size(void *ctx, const segidx_sid *sid, uint64_t *len)
{
    struct object *o = ctx;
    if (memcmp(sid->bytes, o->sid.bytes, 16))
        return SEGIDX_ENOTFOUND;
    o->heads++;
    *len = o->len;
    return SEGIDX_OK;
}

struct want {
    wl_page page;
    uint8_t *buf;
    int seen;
};

static int check(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct want *w = ctx;
    BENCH_CHECK(page && off == w->page.off && lsn == w->page.lsn);
    wl_fill_page(w->buf, SEGIDX_DEFAULT_PAGE_SIZE, &w->page);
    BENCH_CHECK(memcmp(page, w->buf, SEGIDX_DEFAULT_PAGE_SIZE) == 0);
    w->seen++;
    return 0;
}

/* Read page `p` through `r`; the bytes and requests it cost. */
static void read_one(seg_ranges *r, segidx_volume_index *vi, const wl_page *p, uint8_t *buf)
{
    segidx_offset_set *one = segidx_offset_set_new();
    BENCH_CHECK(one && segidx_offset_set_add(one, p->off) == SEGIDX_OK);
    struct want w = { *p, buf, 0 };
    BENCH_CHECK(seg_ranges_read_pages(r, vi, &p->vid, p->lsn, one, check, &w) == SEGIDX_OK);
    BENCH_CHECK(w.seen == 1);
    segidx_offset_set_free(one);
}

/* A reply that is not what was asked is an error, never a page. */
static void read_refused(seg_ranges *r, segidx_volume_index *vi, const wl_page *p, uint8_t *buf)
{
    segidx_offset_set *one = segidx_offset_set_new();
    BENCH_CHECK(one && segidx_offset_set_add(one, p->off) == SEGIDX_OK);
    struct want w = { *p, buf, 0 };
    BENCH_CHECK(seg_ranges_read_pages(r, vi, &p->vid, p->lsn, one, check, &w) == SEGIDX_EIO);
    BENCH_CHECK(w.seen == 0);
    segidx_offset_set_free(one);
}

static uint64_t moved(const seg_ranges_stats *st)
{
    return st->tail_bytes + st->page_bytes + st->whole_bytes + st->refused_bytes;
}

int main(void)
{
    /* W1's layout, every volume's commit at LSN 1 so that it catalogues. */
    workload wl = wl_w1(1);
    uint8_t *page = bench_xmalloc(SEGIDX_DEFAULT_PAGE_SIZE);
    segidx_segment_builder *b = segidx_segment_builder_new(NULL);
    BENCH_CHECK(b != NULL);
    uint32_t used = 0;
    for (; used < wl.n; used++) {
        wl.pages[used].lsn = 1;
        wl_fill_page(page, SEGIDX_DEFAULT_PAGE_SIZE, &wl.pages[used]);
        int rc = segidx_segment_builder_add(b, &wl.pages[used].vid, wl.pages[used].off, 1, page);
        if (rc == SEGIDX_EFULL)
            break;
        BENCH_CHECK(rc == SEGIDX_OK);
    }
    struct object o = { { { 0x53, 0x33 } }, NULL, segidx_segment_builder_size(b), 0, 0, 0, 0 };
    uint8_t *bytes = bench_xmalloc((size_t)o.len);
    BENCH_CHECK(segidx_segment_builder_finish(b, &o.sid, bytes, (size_t)o.len) == SEGIDX_OK);
    segidx_segment_builder_free(b);
    o.bytes = bytes;

    /* The catalog: each volume's pages in this segment, one commit. */
    segidx_segment *seg;
    BENCH_CHECK(segidx_segment_open(bytes, (size_t)o.len, &seg) == SEGIDX_OK);
    segidx_segment_stats ss;
    segidx_segment_stats_get(seg, &ss);
    segidx_kv kv;
    segidx_volume_index *vi;
    BENCH_CHECK(segidx_kv_mem_open(&kv) == SEGIDX_OK);
    BENCH_CHECK(segidx_volume_index_open(kv, &vi) == SEGIDX_OK);
    for (uint32_t i = 0; i < ss.volume_count; i++) {
        segidx_segment_volume v;
        segidx_offset_set *offs;
        BENCH_CHECK(segidx_segment_volume_get(seg, i, &v) == SEGIDX_OK);
        BENCH_CHECK(segidx_segment_offsets(seg, &v.vid, 1, &offs) == SEGIDX_OK);
        segidx_commit_segment cs = { o.sid, offs };
        BENCH_CHECK(segidx_volume_commit(vi, &v.vid, 1, 0, &cs, 1) == SEGIDX_OK);
        segidx_offset_set_free(offs);
    }
    segidx_segment_close(seg);

    /* A page in the middle of the segment, and the one after it. */
    const wl_page *first = &wl.pages[used / 2], *second = &wl.pages[used / 2 + 1];
    seg_store store = { mem_get, mem_size, &o };
    seg_ranges *r;
    BENCH_CHECK(seg_ranges_new(&store, NULL, &r) == SEGIDX_OK);
    read_one(r, vi, first, page);
    seg_ranges_stats cold, warm;
    seg_ranges_stats_get(r, &cold);
    uint64_t cold_gets = o.gets;
    read_one(r, vi, second, page);
    seg_ranges_stats_get(r, &warm);
    BENCH_CHECK(cold.tail_gets == 1 && cold.page_gets == 1 && cold.whole_gets == 0);
    BENCH_CHECK(warm.tail_gets == 1 && warm.page_gets == 2);
    seg_ranges_free(r);

    /* The same cold page from a server that ignores suffix ranges, once
     * the reader knows it does (its second segment opened). */
    o.no_suffix = 1;
    BENCH_CHECK(seg_ranges_new(&store, NULL, &r) == SEGIDX_OK);
    read_one(r, vi, first, page);
    seg_ranges_stats once;
    seg_ranges_stats_get(r, &once);
    BENCH_CHECK(once.suffix_ignored);
    seg_ranges_free(r);

    /* Page replies short, long, shifted or of another length: refused. */
    o.no_suffix = 0;
    BENCH_CHECK(seg_ranges_new(&store, NULL, &r) == SEGIDX_OK);
    for (o.lie = 1; o.lie <= 4; o.lie++)
        read_refused(r, vi, first, page);
    o.lie = 0;
    read_one(r, vi, first, page);
    seg_ranges_free(r);

    char name[80];
    snprintf(name, sizeof name, "s3 cold page (W1 %u pages)", ss.page_count);
    struct bench_figure f = { name, (double)moved(&cold), "B", BENCH_LOWER_IS_BETTER,
                              "whole segment GET", (double)o.len };
    bench_print(&f);
    f = (struct bench_figure){ "s3 page of an open segment", (double)(moved(&warm) - moved(&cold)),
                               "B", BENCH_LOWER_IS_BETTER, "whole segment GET", (double)o.len };
    bench_print(&f);
    /* The ratio column shows 0.00 for so small a share: say it the other way. */
    f = (struct bench_figure){ "s3 whole segment / cold page bytes",
                               (double)o.len / (double)moved(&cold), "x", BENCH_HIGHER_IS_BETTER,
                               NULL, 0 };
    bench_print(&f);
    f = (struct bench_figure){ "s3 requests per cold page", (double)cold_gets, "req",
                               BENCH_LOWER_IS_BETTER, "HEAD + tail + page", 3.0 };
    bench_print(&f);

    segidx_volume_index_close(vi);
    free(bytes);
    free(page);
    wl_free(&wl);
    return 0;
}
