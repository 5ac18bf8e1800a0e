/* Checks shared by the segment format tests of versions 2 and 3: build a
 * workload in a given format and layout, compare find and find_many with
 * the brute-force model, and reseal bytes changed on purpose. */
#ifndef SEGIDX_SEGCHECK_H
#define SEGIDX_SEGCHECK_H

#include "segtest.h"

#include "segment_format.h"

static const segidx_sid sid2 = { { 0x52, 0xD0, 2 } };

/* The workload's pages in format `version`, version 3's layouts restricted
 * to kind, sh, k (-1: free; see segidx__segment_builder_force_layout). */
static inline uint8_t *build_layout(const workload *w, uint32_t page_size, unsigned version,
                                    int kind, int sh, int k, size_t *len)
{
    segidx_segment_options opts = { page_size, 0xFFFFFFFFu, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    assert_non_null(b);
    assert_int_equal(segidx__segment_builder_set_version(b, version), SEGIDX_OK);
    assert_int_equal(segidx__segment_builder_force_layout(b, kind, sh, k), SEGIDX_OK);
    uint8_t *page = malloc(page_size);
    for (uint32_t i = 0; i < w->n; i++) {
        wl_fill_page(page, page_size, &w->pages[i]);
        assert_int_equal(segidx_segment_builder_add(b, &w->pages[i].vid, w->pages[i].off,
                                                    w->pages[i].lsn, page),
                         SEGIDX_OK);
    }
    free(page);
    *len = segidx_segment_builder_size(b);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(segidx_segment_builder_finish(b, &sid2, buf, *len), SEGIDX_OK);
    segidx_segment_builder_free(b);
    return buf;
}

static inline uint8_t *build_as(const workload *w, uint32_t page_size, unsigned version,
                                size_t *len)
{
    return build_layout(w, page_size, version, -1, -1, -1, len);
}

/* find_many over `offs` against the model, one answer each. */
static inline void check_many(const segidx_segment *s, const wl_page *sorted, uint32_t n,
                       const segidx_vid *vid, uint64_t lsn, const uint32_t *offs, size_t k)
{
    segidx_page_ref *out = malloc((k ? k : 1) * sizeof *out);
    int rc = segidx_segment_find_many(s, vid, lsn, offs, k, out);
    bool all = true;
    for (size_t i = 0; i < k; i++) {
        int64_t want = model_find(sorted, n, vid, offs[i], lsn);
        if (want < 0) {
            all = false;
            assert_int_equal(out[i].lsn, 0);
            assert_int_equal(out[i].local, UINT32_MAX);
            assert_null(out[i].page);
        } else {
            assert_int_equal(out[i].local, (uint32_t)want);
            assert_int_equal(out[i].lsn, sorted[want].lsn);
        }
    }
    assert_int_equal(rc, all ? SEGIDX_OK : SEGIDX_ENOTFOUND);
    free(out);
}

static inline int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Every page and its neighbours through find, then sorted lists through
 * find_many: empty, one, all of a volume, with duplicates and misses. */
static inline void check_segment(const segidx_segment *s, const workload *w, test_rng *r)
{
    wl_page *sorted = model_sorted(w);
    uint32_t n = w->n;
    for (uint32_t i = 0; i < n; i++) {
        const wl_page *p = &sorted[i];
        static const int64_t d[] = { 0, -1, 1 };
        for (int k = 0; k < 3; k++) {
            assert_find_matches_model(s, sorted, n, &p->vid, p->off, p->lsn + (uint64_t)d[k], 512);
            assert_find_matches_model(s, sorted, n, &p->vid, p->off + (uint32_t)d[k], p->lsn, 512);
        }
        assert_find_matches_model(s, sorted, n, &p->vid, p->off, UINT64_MAX, 512);
        assert_find_matches_model(s, sorted, n, &p->vid, p->off ^ 0x80000000u, UINT64_MAX, 512);
    }
    uint32_t *offs = malloc((4 * n + 8) * sizeof *offs);
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && !memcmp(sorted[j].vid.bytes, sorted[i].vid.bytes, 16))
            j++;
        const segidx_vid *vid = &sorted[i].vid;
        uint64_t lsns[] = { 0, sorted[i].lsn, sorted[(i + j) / 2].lsn, UINT64_MAX };
        for (int l = 0; l < 4; l++) {
            check_many(s, sorted, n, vid, lsns[l], offs, 0);
            size_t k = 0; /* all of the volume's pages: duplicates where versions are */
            for (uint32_t q = i; q < j; q++)
                offs[k++] = sorted[q].off;
            check_many(s, sorted, n, vid, lsns[l], offs, k);
            check_many(s, sorted, n, vid, lsns[l], offs + k / 2, 1);
            for (int round = 0; round < 4; round++) { /* random picks, misses among them */
                k = 0;
                for (uint32_t q = i; q < j; q++) {
                    if (rng_below(r, 4) == 0)
                        offs[k++] = sorted[q].off;
                    if (rng_below(r, 8) == 0)
                        offs[k++] = sorted[q].off + (uint32_t)rng_below(r, 5) - 2;
                }
                if (rng_below(r, 2))
                    offs[k++] = 0;
                if (rng_below(r, 2))
                    offs[k++] = UINT32_MAX;
                offs[k++] = (uint32_t)rng_next(r);
                qsort(offs, k, sizeof *offs, cmp_u32);
                check_many(s, sorted, n, vid, lsns[l], offs, k);
            }
        }
        i = j;
    }
    segidx_vid unknown = sorted[0].vid;
    unknown.bytes[3] ^= 0x77;
    offs[0] = sorted[0].off;
    check_many(s, sorted, n, &unknown, UINT64_MAX, offs, 1);
    free(offs);
    free(sorted);
}

static inline void reseal(uint8_t *buf, size_t len)
{
    uint8_t *f = buf + len - SEG_FOOTER_BYTES;
    size_t index_len = segidx__load32(f + FOOT_INDEX_LEN);
    segidx__store64(f + FOOT_HEADER_SUM, segidx__xxh3(buf, SEG_HEADER_BYTES));
    segidx__store64(f + FOOT_SUM, segidx__xxh3(f - index_len, index_len + FOOT_SUM));
}

/* Reseal changed bytes and open them: rejected as corrupt (NULL), or the
 * segment; never any other answer. */
static inline segidx_segment *open_resealed(uint8_t *buf, size_t len)
{
    reseal(buf, len);
    segidx_segment *s = NULL;
    int rc = segidx_segment_open(buf, len, &s);
    assert_true(rc == SEGIDX_OK || rc == SEGIDX_ECORRUPT);
    return rc ? NULL : s;
}

static inline void flip_bit(uint8_t *p, uint64_t bit)
{
    p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

#endif
