/* Segment format version 3: the keyed kinds (2, Elias-Fano buckets; 3,
 * packed lanes) against a brute-force model on random and reference
 * workloads, each kind forced, by both copies of the lookups; the layouts
 * at their limits (offsets 0 and UINT32_MAX, one offset, 32 in one key,
 * 65,535 offsets, sh 0 and 31, k 0 and 24, keys of width 0); the builder's
 * choice on W1 and W2; and every byte of a keyed index changed with the
 * checksums recomputed: rejected, or read as what iterate reads. */
#include "segcheck.h"

static segidx_segment *open_ok(const uint8_t *buf, size_t len)
{
    segidx_segment *s = NULL;
    assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
    return s;
}

/* Model checks through both copies of the lookups. */
static void check_both_copies(segidx_segment *s, const workload *w, test_rng *r)
{
    for (int generic = 0; generic <= 1; generic++) {
        segidx__segment_use_generic(s, generic);
        check_segment(s, w, r);
    }
}

/* Every volume that is not a range took `kind` (any keyed kind for -1). */
static void assert_kinds(const segidx_segment *s, int kind)
{
    segidx_segment_stats st;
    segidx_segment_stats_get(s, &st);
    for (uint32_t v = 0; v < st.volume_count; v++) {
        segidx_segment_volume vol;
        assert_int_equal(segidx_segment_volume_get(s, v, &vol), SEGIDX_OK);
        int got = segidx__segment_volume_kind(s, v, NULL, NULL);
        if (vol.offset_count == (uint64_t)vol.last_offset - vol.first_offset + 1)
            assert_int_equal(got, KIND2_RANGE);
        else if (kind >= 0)
            assert_int_equal(got, kind);
        else
            assert_true(got >= (int)KIND3_EF_BUCKETS);
    }
}

/* The workload in version 3 as the builder chooses, then with every volume
 * forced to kind 2, then to kind 3 (where a volume has no layout of that
 * kind it keeps kind 1): each against the model. */
static void roundtrip_kinds(const workload *w, test_rng *r, bool forced)
{
    for (int kind = -1; kind <= (forced ? (int)KIND3_PACKED : -1); kind++) {
        if (kind == 0)
            continue;
        size_t len;
        uint8_t *buf = build_layout(w, 512, SEG_VERSION_3, kind, -1, -1, &len);
        assert_int_equal(segidx__load16(buf + len - SEG_FOOTER_BYTES + FOOT_VERSION), 3);
        segidx_segment *s = open_ok(buf, len);
        check_both_copies(s, w, r);
        segidx_segment_close(s);
        free(buf);
    }
}

static void test_random_against_model(void **state)
{
    (void)state;
    test_rng r = { 31 };
    /* Forced kinds on a few: a random workload's outliers can leave a
     * forced kind only layouts of many empty keys, slow to build. */
    for (uint64_t seed = 1; seed <= (uint64_t)test_scaled(20); seed++) {
        workload w = wl_random(seed + 3000);
        roundtrip_kinds(&w, &r, seed <= (uint64_t)test_scaled(6));
        wl_free(&w);
    }
    workload ws[] = { wl_w1(3), wl_w2(4), wl_w3(5) };
    for (int i = 0; i < 3; i++) {
        roundtrip_kinds(&ws[i], &r, true);
        wl_free(&ws[i]);
    }
}

/* W1 takes Elias-Fano buckets everywhere, W2 packed lanes, W3 ranges, all
 * within the byte budget; and the same pages build the same bytes. */
static void test_builder_choice(void **state)
{
    (void)state;
    static const int kinds[] = { KIND3_EF_BUCKETS, KIND3_PACKED, KIND2_RANGE };
    static const int reported[] = { SEGIDX_OFFSETS_KEYED, SEGIDX_OFFSETS_KEYED_PACKED,
                                    SEGIDX_OFFSETS_RANGE };
    static const double budget[] = { 2.0, 3.0, 0.5 };
    workload ws[] = { wl_w1(1), wl_w2(2), wl_w3(3) };
    for (int i = 0; i < 3; i++) {
        size_t len, again;
        uint8_t *buf = build_as(&ws[i], 4096, SEG_VERSION_3, &len);
        uint8_t *twin = build_as(&ws[i], 4096, SEG_VERSION_3, &again);
        assert_int_equal(len, again);
        assert_memory_equal(buf, twin, len);
        segidx_segment *s = open_ok(buf, len);
        segidx_segment_stats st;
        segidx_segment_stats_get(s, &st);
        assert_true((double)st.index_bytes <= budget[i] * st.page_count);
        for (uint32_t v = 0; v < st.volume_count; v++) {
            segidx_segment_volume vol;
            assert_int_equal(segidx_segment_volume_get(s, v, &vol), SEGIDX_OK);
            assert_int_equal(vol.offset_encoding, reported[i]);
            assert_int_equal(segidx__segment_volume_kind(s, v, NULL, NULL), kinds[i]);
        }
        segidx_segment_close(s);
        free(buf);
        free(twin);
        wl_free(&ws[i]);
    }
}

/* One volume of `offs` (sorted or not), a version each, and one of two
 * versions where `versions` says; built with the layout forced. */
static workload one_volume(const uint32_t *offs, uint32_t n, bool versions)
{
    workload w = { "edge3", NULL, 0, 0, 1 };
    segidx_vid vid = { { 0x33, 3 } };
    for (uint32_t i = 0; i < n; i++) {
        wl_push(&w, &vid, offs[i], 10 + i % 7);
        if (versions && i % 3 == 0)
            wl_push(&w, &vid, offs[i], 1000 + i);
    }
    return w;
}

/* The volume built with kind, sh and k forced: that layout when `fits`,
 * kind 1 otherwise; its answers as the model's, with values around every
 * offset and every key's first value. */
static void check_forced(const workload *w, int kind, int sh, int k, bool fits, test_rng *r)
{
    size_t len;
    uint8_t *buf = build_layout(w, 512, SEG_VERSION_3, kind, sh, k, &len);
    segidx_segment *s = open_ok(buf, len);
    unsigned got_sh, got_k;
    int got = segidx__segment_volume_kind(s, 0, &got_sh, &got_k);
    segidx_segment_volume vol;
    assert_int_equal(segidx_segment_volume_get(s, 0, &vol), SEGIDX_OK);
    bool range = vol.offset_count == (uint64_t)vol.last_offset - vol.first_offset + 1;
    if (range) {
        assert_int_equal(got, KIND2_RANGE);
    } else if (fits) {
        if (got != kind)
            print_error("forced kind %d sh %d k %d: kind %d\n", kind, sh, k, got);
        assert_int_equal(got, kind);
        if (sh >= 0)
            assert_int_equal(got_sh, (unsigned)sh);
        if (k >= 0)
            assert_int_equal(got_k, (unsigned)k);
    } else {
        assert_int_equal(got, KIND2_PARTITIONED);
    }
    wl_page *sorted = model_sorted(w);
    for (int generic = 0; generic <= 1; generic++) {
        segidx__segment_use_generic(s, generic);
        for (unsigned b = 0; b < 32 && !range && got >= (int)KIND3_EF_BUCKETS; b++) {
            uint32_t x = b < 2 ? b : (uint32_t)1 << b; /* around key boundaries */
            for (int d = -1; d <= 1; d++)
                assert_find_matches_model(s, sorted, w->n, &vol.vid,
                                          vol.first_offset + x + (uint32_t)d, UINT64_MAX, 512);
        }
    }
    check_both_copies(s, w, r);
    free(sorted);
    segidx_segment_close(s);
    free(buf);
}

static void test_edges(void **state)
{
    (void)state;
    test_rng r = { 13 };
    /* Both ends of the offsets, alone and together. */
    static const uint32_t ends[][3] = { { 0, 5, 9 }, { UINT32_MAX - 9, UINT32_MAX - 4, UINT32_MAX },
                                        { 0, 1u << 31, UINT32_MAX } };
    for (int i = 0; i < 3; i++)
        for (int kind = 2; kind <= 3; kind++) {
            /* At sh 31 every key has width 31, and at k 0 so do 2^31 and
             * UINT32_MAX: two lanes of 31 bits are past one load. */
            bool lanes_fit = i < 2 || kind == 2;
            workload w = one_volume(ends[i], 3, true);
            check_forced(&w, kind, -1, -1, true, &r);
            check_forced(&w, kind, 0, 0, lanes_fit, &r);
            check_forced(&w, kind, 31, -1, kind == 2, &r);
            /* k 24 at sh 0 over a span of 2^32 would be 2^27 keys. */
            check_forced(&w, kind, i < 2 ? 0 : 24, 24, true, &r);
            wl_free(&w);
        }
    /* One offset: a range. */
    uint32_t one = 77;
    workload single = one_volume(&one, 1, true);
    check_forced(&single, 2, -1, -1, true, &r);
    wl_free(&single);
    /* 32 offsets in key 0 (sh 6: values below 64), then 33. */
    uint32_t even[40];
    for (uint32_t i = 0; i < 40; i++)
        even[i] = 2 * i;
    even[32] = 1000;
    workload w32 = one_volume(even, 33, false);
    check_forced(&w32, 2, 6, 0, true, &r);
    check_forced(&w32, 3, 6, 0, false, &r); /* 32 lanes of 6 bits: past one load */
    wl_free(&w32);
    even[32] = 64 - 1; /* 33 values below 64: no key may hold them */
    workload w33 = one_volume(even, 33, false);
    check_forced(&w33, 2, 6, 0, false, &r);
    wl_free(&w33);
    /* Sub-buckets too long for one load of low bits (sh 31: one key of
     * width 31, 26 low bits a value), halved before the lanes compare:
     * 32, 3 and 2 values in sub-bucket 0. */
    for (uint32_t count = 32; count >= 2; count = count == 32 ? 3 : count - 1) {
        uint32_t crowd[33];
        for (uint32_t i = 0; i < count; i++)
            crowd[i] = i * 1000003u;
        crowd[count] = 3u << 30; /* a last one in another sub-bucket */
        workload wc = one_volume(crowd, count + 1, true);
        check_forced(&wc, 2, 31, -1, true, &r);
        wl_free(&wc);
    }
    /* Keys of width 0: sh 0 and a k above the span's bits. */
    uint32_t sparse[] = { 0, 2, 3, 7, 8, 100, 101, 5000, 5002, 70000 };
    workload w0 = one_volume(sparse, 10, true);
    for (int kind = 2; kind <= 3; kind++) {
        check_forced(&w0, kind, 0, 24, true, &r);
        check_forced(&w0, kind, 0, 0, true, &r);
        check_forced(&w0, kind, 2, 3, true, &r);
    }
    wl_free(&w0);
    /* 65,535 offsets (every third), kind 2 and 3 as they fit; and the
     * builder's own choice. */
    uint32_t *many = malloc(SEGIDX_MAX_SEGMENT_PAGES * sizeof *many);
    for (uint32_t i = 0; i < SEGIDX_MAX_SEGMENT_PAGES; i++)
        many[i] = 3 * i + (i & 1);
    workload big = one_volume(many, SEGIDX_MAX_SEGMENT_PAGES, false);
    check_forced(&big, 2, -1, -1, true, &r);
    check_forced(&big, 3, -1, -1, true, &r);
    wl_free(&big);
    free(many);
}

/* What the segment holds, as iterate reads it, in local order. */
static int collect_page(void *ctx, const segidx_segment_page *p)
{
    wl_push(ctx, p->vid, p->offset, p->lsn);
    return 0;
}

/* Every byte of the index from `from` changed three ways, checksums
 * recomputed: open rejects it, or every lookup agrees with what iterate
 * reads (never a page the index does not hold, never a read past it:
 * each buffer is exactly the segment's size). */
static void damage_every_byte(const uint8_t *base, size_t len, size_t from)
{
    uint8_t *buf = malloc(len);
    size_t to = len - SEG_FOOTER_BYTES, accepted = 0;
    static const uint8_t flips[] = { 0x01, 0x80, 0x5A };
    for (size_t at = from; at < to; at++)
        for (int f = 0; f < 3; f++) {
            memcpy(buf, base, len);
            buf[at] ^= flips[f];
            segidx_segment *s = open_resealed(buf, len);
            if (!s)
                continue;
            accepted++;
            workload seen = { "seen", NULL, 0, 0, 1 };
            assert_int_equal(segidx_segment_iterate(s, NULL, collect_page, &seen), 0);
            for (uint32_t i = 0; i < seen.n; i++) {
                const wl_page *p = &seen.pages[i];
                for (uint32_t d = 0; d < 3; d++)
                    assert_find_matches_model(s, seen.pages, seen.n, &p->vid, p->off + d - 1,
                                              p->lsn, 0);
            }
            wl_free(&seen);
            segidx_segment_close(s);
        }
    print_message("resealed v3 damage: %zu of %zu still valid\n", accepted, 3 * (to - from));
    free(buf);
}

/* Truncations: every length of the index's end and the footer. */
static void truncate_every_tail(const uint8_t *base, size_t len, size_t from)
{
    for (size_t n = from; n < len; n++) {
        uint8_t *cut = malloc(n);
        memcpy(cut, base, n);
        segidx_segment *s = NULL;
        assert_int_equal(segidx_segment_open(cut, n, &s), SEGIDX_ECORRUPT);
        free(cut);
    }
}

static void test_damaged_bytes(void **state)
{
    (void)state;
    workload w = { "damage3", NULL, 0, 0, 1 };
    segidx_vid a = { { 1 } }, b = { { 2 } }, c = { { 3 } };
    for (uint32_t i = 0; i < 30; i++) { /* a key of several values, versions */
        wl_push(&w, &a, 5 + i * i, 9);
        if (i % 4 == 0)
            wl_push(&w, &a, 5 + i * i, 90 + i);
    }
    for (uint32_t i = 0; i < 12; i++) /* sparse, u32 ends */
        wl_push(&w, &b, i < 11 ? i * 977 : UINT32_MAX, 4);
    for (uint32_t i = 0; i < 8; i++) /* a range between them */
        wl_push(&w, &c, 40 + i, 4);
    for (int kind = 2; kind <= 3; kind++) {
        size_t len;
        uint8_t *base = build_layout(&w, 512, SEG_VERSION_3, kind, -1, -1, &len);
        segidx_segment *s = open_ok(base, len);
        assert_kinds(s, kind);
        segidx_segment_close(s);
        size_t from = (size_t)segidx__load64(base + len - SEG_FOOTER_BYTES + FOOT_INDEX_OFFSET);
        damage_every_byte(base, len, from);
        truncate_every_tail(base, len, from);
        free(base);
    }
    wl_free(&w);
}

/* Crafted: kinds 2 and 3 are version 3's only; sh and k past their limits. */
static void test_crafted_v3(void **state)
{
    (void)state;
    uint32_t offs[] = { 0, 3, 8, 9, 40 };
    workload w = one_volume(offs, 5, false);
    size_t len;
    uint8_t *base = build_layout(&w, 512, SEG_VERSION_3, 2, 1, 1, &len);
    size_t from = (size_t)segidx__load64(base + len - SEG_FOOTER_BYTES + FOOT_INDEX_OFFSET);
    const uint8_t *p = base + from + 16;
    for (int i = 0; i < 5; i++) /* the five varints */
        while (*p++ & 0x80)
            ;
    size_t kind_at = (size_t)(p - base);
    assert_int_equal(base[kind_at], 2);
    uint8_t *buf = malloc(len);
    for (int kase = 0; kase < 5; kase++) {
        memcpy(buf, base, len);
        switch (kase) {
        case 0: segidx__store16(buf + HEAD_VERSION, 2);
                segidx__store16(buf + len - SEG_FOOTER_BYTES + FOOT_VERSION, 2); break;
        case 1: buf[kind_at + 2] = 32; break; /* sh */
        case 2: buf[kind_at + 3] = 25; break; /* k */
        case 3: buf[kind_at] = 4; break;      /* kind */
        case 4: buf[kind_at] = 3; break;      /* packed bytes under an EF kind */
        }
        reseal(buf, len);
        segidx_segment *s = NULL;
        assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_ECORRUPT);
    }
    free(buf);
    free(base);
    wl_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_builder_choice),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_damaged_bytes),
        cmocka_unit_test(test_crafted_v3),
    };
    return cmocka_run_group_tests_name("segment_v3", tests, NULL, NULL);
}
