/* Segment helpers shared by the segment and packer tests: build a segment
 * from a workload, a sorted model, and the model's answer to a query. */
#ifndef SEGIDX_SEGTEST_H
#define SEGIDX_SEGTEST_H

#include "testutil.h"
#include "workload.h"

/* The pages sorted by (vid, off, lsn): local order. */
static inline wl_page *model_sorted(const workload *w)
{
    wl_page *s = malloc(w->n * sizeof *s);
    assert_non_null(s);
    memcpy(s, w->pages, w->n * sizeof *s);
    qsort(s, w->n, sizeof *s, wl_compare);
    return s;
}

/* The model's answer: the local index of the newest version <= lsn, or -1. */
static inline int64_t model_find(const wl_page *s, uint32_t n, const segidx_vid *vid, uint32_t off,
                          uint64_t lsn)
{
    wl_page key = { *vid, off, lsn };
    uint32_t lo = 0, hi = n; /* first index > key */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (wl_compare(&s[mid], &key) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const wl_page *p = &s[lo - 1];
    if (p->off != off || memcmp(p->vid.bytes, vid->bytes, 16) != 0)
        return -1;
    return lo - 1;
}

/* segment_find answers as the model: the newest version <= lsn (and, when
 * page_size is not 0 and the segment has pages, with the model's bytes),
 * or ENOTFOUND. */
static inline void assert_find_matches_model(const segidx_segment *s, const wl_page *sorted, uint32_t n,
                       const segidx_vid *vid, uint32_t off, uint64_t lsn, uint32_t page_size)
{
    int64_t want = model_find(sorted, n, vid, off, lsn);
    segidx_page_ref ref = { NULL, 0, 0 };
    int rc = segidx_segment_find(s, vid, off, lsn, &ref);
    if (want < 0) {
        assert_int_equal(rc, SEGIDX_ENOTFOUND);
        return;
    }
    assert_int_equal(rc, SEGIDX_OK);
    assert_int_equal(ref.local, (uint32_t)want);
    assert_int_equal(ref.lsn, sorted[want].lsn);
    if (ref.page && page_size) {
        uint8_t *expect = malloc(page_size);
        wl_fill_page(expect, page_size, &sorted[want]);
        assert_memory_equal(ref.page, expect, page_size);
        free(expect);
    }
}

/* Add the workload's pages in a shuffled order and finish into a buffer of
 * exactly the segment's size (so that ASan sees any read past it). */
static inline uint8_t *build_segment(const workload *w, uint32_t page_size, uint64_t shuffle_seed,
                              const segidx_sid *sid, size_t *len)
{
    segidx_segment_options opts = { page_size, WORKLOAD_MAX_BYTES, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    assert_non_null(b);
    uint32_t *order = malloc(w->n * sizeof *order);
    for (uint32_t i = 0; i < w->n; i++)
        order[i] = i;
    test_rng r = { shuffle_seed };
    for (uint32_t i = w->n; i > 1; i--) {
        uint32_t j = (uint32_t)rng_below(&r, i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    uint8_t *page = malloc(page_size);
    for (uint32_t i = 0; i < w->n; i++) {
        const wl_page *p = &w->pages[order[i]];
        wl_fill_page(page, page_size, p);
        assert_int_equal(segidx_segment_builder_add(b, &p->vid, p->off, p->lsn, page), SEGIDX_OK);
    }
    free(page);
    free(order);
    *len = segidx_segment_builder_size(b);
    assert_true(*len > 0);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(segidx_segment_builder_finish(b, sid, buf, *len), SEGIDX_OK);
    segidx_segment_builder_free(b);
    return buf;
}

#endif
