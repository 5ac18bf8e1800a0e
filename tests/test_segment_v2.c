/* Segment format version 2: its edge cases against a brute-force model
 * (offsets 0 and UINT32_MAX, one page, a full segment, 65,535 versions of
 * one offset, many volumes), the same answers as version 1 for the same
 * pages, segidx_segment_find_many against the model on every kind of
 * sorted list, and every structural fact of the version 2 index broken
 * with the checksums recomputed. */
#include "segcheck.h"

/* Both versions of the same pages give the same answers. */
static void roundtrip_both(const workload *w, test_rng *r)
{
    for (unsigned version = 1; version <= 2; version++) {
        size_t len;
        uint8_t *buf = build_as(w, 512, version, &len);
        segidx_segment *s;
        assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
        check_segment(s, w, r);
        if (version == 2) { /* the lookups for any x86-64 too, where the CPU has BMI2 */
            segidx__segment_use_generic(s, true);
            check_segment(s, w, r);
        }
        segidx_segment_close(s);
        free(buf);
    }
}

static void test_random_against_model(void **state)
{
    (void)state;
    test_rng r = { 5 };
    for (uint64_t seed = 1; seed <= (uint64_t)test_scaled(25); seed++) {
        workload w = wl_random(seed + 1000);
        roundtrip_both(&w, &r);
        wl_free(&w);
    }
    workload ws[] = { wl_w1(3), wl_w2(4), wl_w3(5) };
    for (int i = 0; i < 3; i++) {
        roundtrip_both(&ws[i], &r);
        wl_free(&ws[i]);
    }
}

static void test_edges(void **state)
{
    (void)state;
    test_rng r = { 9 };
    segidx_vid vid = { { 9, 9 } };
    /* One page at 0, one at UINT32_MAX, both ends in one volume. */
    static const uint32_t ends[][2] = { { 0, 0 }, { UINT32_MAX, UINT32_MAX }, { 0, UINT32_MAX } };
    for (int i = 0; i < 3; i++) {
        workload w = { "ends", NULL, 0, 0, 1 };
        wl_push(&w, &vid, ends[i][0], 5);
        if (ends[i][1] != ends[i][0])
            wl_push(&w, &vid, ends[i][1], 5 + SEGIDX_MAX_LSN_SPAN);
        roundtrip_both(&w, &r);
        wl_free(&w);
    }
    /* Skewed chunks: dense runs then far outliers, 64 and 65 offsets. */
    for (uint32_t count = 63; count <= 130; count += 67) {
        workload w = { "skew", NULL, 0, 0, 1 };
        for (uint32_t i = 0; i < count; i++)
            wl_push(&w, &vid, i < count - 3 ? i : UINT32_MAX - (count - i) * 1000003u, 3);
        roundtrip_both(&w, &r);
        wl_free(&w);
    }
    /* Many volumes of one page each. */
    workload many = { "many", NULL, 0, 0, 1 };
    for (uint32_t i = 0; i < 3000; i++) {
        segidx_vid v = { { 0 } };
        memcpy(v.bytes, &i, 4);
        v.bytes[15] = (uint8_t)i;
        wl_push(&many, &v, i * 7919u, 1 + i % 50);
    }
    roundtrip_both(&many, &r);
    wl_free(&many);
}

/* A volume whose second chunk has low-bit width `l` and `len` elements in
 * its bucket 0 (distinct low bits below 2^l, 0 among them), after 64 dense
 * offsets so that ranks count a first chunk. Then either (last 0) one
 * element in each bucket up to 63 (a chunk of 64), or one element at
 * `last`, whose width must be `l` (short chunks reach the widths above
 * 26). */
static void push_lane_volume(workload *w, test_rng *r, uint8_t tag, unsigned l, unsigned len,
                             uint32_t last)
{
    segidx_vid vid = { { 0xB0, tag, (uint8_t)l, (uint8_t)len } };
    uint32_t base = (uint32_t)rng_below(r, 1u << 12);
    for (uint32_t i = 0; i < 64; i++)
        wl_push(w, &vid, base + i, 7);
    uint32_t first = base + 64, range = l ? (uint32_t)(1ull << l) : 1;
    uint32_t *low = malloc(len * sizeof *low);
    assert_non_null(low);
    low[0] = 0;
    for (unsigned k = 1; k < len;) { /* distinct, any order: the builder sorts */
        uint32_t v = (uint32_t)rng_below(r, range);
        bool seen = false;
        for (unsigned j = 0; j < k; j++)
            seen |= low[j] == v;
        if (!seen)
            low[k++] = v;
    }
    for (unsigned k = 0; k < len; k++)
        wl_push(w, &vid, first + low[k], 7);
    free(low);
    if (last) {
        wl_push(w, &vid, first + last, 7);
        return;
    }
    for (uint32_t b = len; b < 64; b++) /* the last one, 63 << l, fixes the width */
        wl_push(w, &vid, first + (b << l), 7);
}

/* Buckets whose low bits fit one 8-byte load exactly, and one element
 * past it, at every low-bit width 0..31: every value of bucket 0's range
 * (or 4096 of them) and the pages' neighbours, found or missed as the
 * model says, by both copies of the lookups. */
static void test_bucket_lanes(void **state)
{
    (void)state;
    test_rng r = { 11 };
    workload w = { "lanes", NULL, 0, 0, 1 };
    for (unsigned l = 0; l <= 26; l++) {
        unsigned fit = l ? 57 / l : 1;
        const unsigned sizes[] = { 1, 2, fit, fit + 1, 2 * fit + 1, 60 };
        for (uint8_t k = 0; k < 6; k++)
            if (sizes[k] <= 60 && (l >= 6 || sizes[k] <= (1u << l)))
                push_lane_volume(&w, &r, k, l, sizes[k], 0);
    }
    /* Widths 27..31: a chunk of len + 1 elements whose last is
     * (len + 1) << (l - 1), the smallest that needs width l. */
    for (unsigned l = 27; l <= 31; l++)
        for (unsigned len = 1; len <= 2; len++)
            push_lane_volume(&w, &r, (uint8_t)(6 + len), l, len, (len + 1u) << (l - 1));
    wl_page *sorted = model_sorted(&w);
    size_t len;
    uint8_t *buf = build_as(&w, 512, 2, &len);
    segidx_segment *s;
    assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
    for (int generic = 0; generic <= 1; generic++) {
        segidx__segment_use_generic(s, generic);
        for (uint32_t i = 0; i < w.n; i++) {
            const wl_page *p = &sorted[i];
            if (i + 64 < w.n && !memcmp(sorted[i + 64].vid.bytes, p->vid.bytes, 16) &&
                (i == 0 || memcmp(sorted[i - 1].vid.bytes, p->vid.bytes, 16))) {
                uint32_t first = sorted[i + 64].off; /* the second chunk's bucket 0 */
                for (uint32_t d = 0; d < 4096; d++) {
                    uint32_t off = first + (d < 2048 ? d : (uint32_t)rng_next(&r) >> (d % 32));
                    assert_find_matches_model(s, sorted, w.n, &p->vid, off, 7, 512);
                }
            }
            for (uint32_t d = 0; d < 3; d++)
                assert_find_matches_model(s, sorted, w.n, &p->vid, p->off + d - 1, 7, 512);
        }
    }
    segidx_segment_close(s);
    free(buf);
    free(sorted);
    wl_free(&w);
}

/* One offset with 65,535 versions (a full segment): every LSN's newest
 * version, the oldest and the newest by find and find_many. */
static void test_full_segment_one_offset(void **state)
{
    (void)state;
    workload w = { "versions", NULL, 0, 0, 1 };
    segidx_vid vid = { { 7 } };
    for (uint32_t i = 0; i < SEGIDX_MAX_SEGMENT_PAGES; i++)
        wl_push(&w, &vid, 12345, 100 + i);
    for (unsigned version = 1; version <= 2; version++) {
        size_t len;
        uint8_t *buf = build_as(&w, 512, version, &len);
        segidx_segment *s;
        assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
        for (uint64_t lsn = 95; lsn < 100 + SEGIDX_MAX_SEGMENT_PAGES + 5; lsn += version == 1 ? 97 : 1) {
            segidx_page_ref ref;
            int rc = segidx_segment_find(s, &vid, 12345, lsn, &ref);
            if (lsn < 100) {
                assert_int_equal(rc, SEGIDX_ENOTFOUND);
                continue;
            }
            uint64_t want = lsn < 100 + SEGIDX_MAX_SEGMENT_PAGES ? lsn : 99 + SEGIDX_MAX_SEGMENT_PAGES;
            assert_int_equal(rc, SEGIDX_OK);
            assert_int_equal(ref.lsn, want);
            assert_int_equal(ref.local, want - 100);
        }
        uint32_t offs[3] = { 12344, 12345, 12345 };
        segidx_page_ref out[3];
        assert_int_equal(segidx_segment_find_many(s, &vid, UINT64_MAX, offs, 3, out),
                         SEGIDX_ENOTFOUND);
        assert_int_equal(out[0].lsn, 0);
        assert_int_equal(out[1].local, SEGIDX_MAX_SEGMENT_PAGES - 1);
        assert_int_equal(out[2].local, SEGIDX_MAX_SEGMENT_PAGES - 1);
        segidx_segment_close(s);
        free(buf);
    }
    wl_free(&w);
}

static void test_find_many_arguments(void **state)
{
    (void)state;
    workload w = wl_w2(8);
    size_t len;
    uint8_t *buf = build_as(&w, 512, 2, &len);
    segidx_segment *s;
    assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
    uint32_t offs[2] = { 9, 8 };
    segidx_page_ref out[2] = { { NULL, 1, 1 }, { NULL, 1, 1 } };
    assert_int_equal(segidx_segment_find_many(s, &w.pages[0].vid, 1, offs, 2, out), SEGIDX_EINVAL);
    assert_int_equal(out[0].local, 1); /* untouched */
    assert_int_equal(segidx_segment_find_many(NULL, &w.pages[0].vid, 1, offs, 0, out), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_find_many(s, NULL, 1, offs, 0, out), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_find_many(s, &w.pages[0].vid, 1, NULL, 1, out), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_find_many(s, &w.pages[0].vid, 1, offs, 1, NULL), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_find_many(s, &w.pages[0].vid, 1, NULL, 0, NULL), SEGIDX_OK);
    segidx_segment_close(s);
    free(buf);
    wl_free(&w);
}

/* ------------------------------------------------------------ crafted */

static uint64_t varint_at(const uint8_t **p)
{
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            return v;
    }
}

/* The parts of volume 1 (partitioned, with versions) of crafted_v2(). */
struct parts {
    uint8_t *kind, *rlsn_bits, *top, *records, *stream, *ranks, *rlsn;
    uint64_t chunks, entries, stream_bits;
};

static struct parts map_volume(uint8_t *buf, size_t len, uint32_t want)
{
    struct parts m = { 0 };
    uint8_t *f = buf + len - SEG_FOOTER_BYTES;
    const uint8_t *p = buf + segidx__load64(f + FOOT_INDEX_OFFSET);
    uint32_t volumes = segidx__load32(f + FOOT_VOLUME_COUNT);
    uint64_t pages[8], offsets[8], span[8];
    uint8_t kind[8], bits[8];
    assert_true(volumes <= 8);
    for (uint32_t v = 0; v < volumes; v++) {
        p += 16;
        varint_at(&p);
        pages[v] = varint_at(&p);
        offsets[v] = varint_at(&p);
        varint_at(&p);
        span[v] = varint_at(&p);
        if (v == want) {
            m.kind = (uint8_t *)p;
            m.rlsn_bits = (uint8_t *)p + 1;
        }
        kind[v] = *p++;
        bits[v] = *p++;
    }
    for (uint32_t v = 0; v <= want; v++) {
        uint64_t chunks = pef_chunks(offsets[v]), entries = pef_top_entries(span[v], chunks);
        if (kind[v] == KIND2_PARTITIONED) {
            m.top = (uint8_t *)p;
            m.records = m.top + 2 * (entries + 1);
            m.stream_bits = segidx__load32(m.records + 8 * chunks + 4);
            m.stream = m.records + 8 * (chunks + 1);
            m.chunks = chunks;
            m.entries = entries;
            p = m.stream + stream_bytes(m.stream_bits);
        }
        m.ranks = (uint8_t *)p;
        if (offsets[v] < pages[v])
            p += stream_bytes(offsets[v] * bits_for(pages[v] - 1));
        m.rlsn = (uint8_t *)p;
        p += stream_bytes(pages[v] * bits[v]);
    }
    return m;
}

static uint8_t *crafted_v2(size_t *len)
{
    workload w = { "crafted2", NULL, 0, 0, 5 };
    segidx_vid v0 = { { 1 } }, v1 = { { 2 } };
    for (uint32_t i = 0; i < 20; i++) /* range */
        wl_push(&w, &v0, 77 + i, 9);
    for (uint32_t i = 0; i < 150; i++) /* three chunks, skewed, versions */
        for (uint32_t k = 0; k <= i % 3; k++)
            wl_push(&w, &v1, i < 100 ? i * 2 : i * 100003u, 7 + k * 300);
    uint8_t *buf = build_as(&w, 512, 2, len);
    wl_free(&w);
    return buf;
}

static void test_crafted_v2(void **state)
{
    (void)state;
    size_t len;
    uint8_t *base = crafted_v2(&len);
    uint8_t *buf = malloc(len);
    segidx_segment *s = NULL;
    assert_int_equal(segidx_segment_open(base, len, &s), SEGIDX_OK);
    segidx_segment_volume vol;
    assert_int_equal(segidx_segment_volume_get(s, 1, &vol), SEGIDX_OK);
    assert_int_equal(vol.offset_encoding, SEGIDX_OFFSETS_PARTITIONED);
    assert_int_equal(vol.rlsn_width, 2);
    segidx_segment_close(s);
    for (int kase = 0; kase < 16; kase++) {
        memcpy(buf, base, len);
        struct parts m = map_volume(buf, len, 1);
        assert_int_equal(m.chunks, 3);
        uint8_t *f = buf + len - SEG_FOOTER_BYTES;
        int want = SEGIDX_ECORRUPT;
        switch (kase) {
        case 0: *m.kind = 2; break;                                  /* unknown kind */
        case 1: *m.rlsn_bits = 17; break;                            /* too wide */
        case 2: *m.rlsn_bits = 11; break;                            /* not minimal */
        case 3: m.top[0] ^= 1; break;                                /* directory */
        case 4: m.top[2 * m.entries] ^= 1; break;                    /* its end */
        case 5: segidx__store32(m.records + 8, 0); break;           /* chunk 1 not above 0 */
        case 6: m.records[8 + 7] ^= 0x04; break;                     /* chunk 1's width */
        case 7: m.records[8 + 4] ^= 1; break;                        /* chunk 1's position */
        case 8: flip_bit(m.stream, 3); break;                        /* a high bit */
        case 9: flip_bit(m.stream, m.stream_bits); break;            /* padding */
        case 10: m.ranks[0] ^= 2; break;                             /* version rank */
        case 11: /* offset 1's second version at its first's rLSN, 0 */
            for (uint64_t bit = 2 * *m.rlsn_bits; bit < 3 * *m.rlsn_bits; bit++)
                m.rlsn[bit / 8] &= (uint8_t) ~(1u << (bit % 8));
            break;
        case 12: m.records[8 * m.chunks] = 1; break;                 /* end record's first */
        case 13: segidx__store16(buf + HEAD_VERSION, 1); break;      /* header says 1 */
        case 14: segidx__store16(f + FOOT_VERSION, 4); want = SEGIDX_EVERSION; break;
        case 15: segidx__store16(buf + HEAD_VERSION, 4); want = SEGIDX_EVERSION; break;
        }
        reseal(buf, len);
        s = NULL;
        int rc = segidx_segment_open(buf, len, &s);
        if (rc != want) {
            print_error("crafted v2 case %d: rc %d\n", kase, rc);
            segidx_segment_close(s);
            fail();
        }
    }
    free(buf);
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_bucket_lanes),
        cmocka_unit_test(test_full_segment_one_offset),
        cmocka_unit_test(test_find_many_arguments),
        cmocka_unit_test(test_crafted_v2),
    };
    return cmocka_run_group_tests_name("segment_v2", tests, NULL, NULL);
}
