/* Segments: build, open in place, find, verify, iterate: against a sorted
 * model on the reference workloads and random ones; every kind of miss;
 * builder errors; and rejection of corrupt and crafted bytes.
 *
 * The format-independent tests run three times: on segments of format
 * versions 1 and 2 (what older builders wrote, still read) and of version 3
 * (what builders write now). The crafted structures here are version 1's;
 * version 2's are in test_segment_v2.c, version 3's in test_segment_v3.c. */
#include "segcheck.h"

/* The format version this run's segments are built in. */
static unsigned test_version = SEG_VERSION_1;

/* segtest.h's build_segment, in test_version. */
static uint8_t *build_segment_as(const workload *w, uint32_t page_size, uint64_t shuffle_seed,
                                 const segidx_sid *sid, size_t *len)
{
    segidx_segment_options opts = { page_size, WORKLOAD_MAX_BYTES, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    assert_non_null(b);
    assert_int_equal(segidx__segment_builder_set_version(b, test_version), SEGIDX_OK);
    uint32_t *order = malloc((w->n ? w->n : 1) * sizeof *order);
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
    assert_int_equal(segidx__load16(buf + *len - SEG_FOOTER_BYTES + FOOT_VERSION), test_version);
    return buf;
}
#define build_segment build_segment_as

static int as_v1(void **state)
{
    (void)state;
    test_version = SEG_VERSION_1;
    return 0;
}

static int as_v2(void **state)
{
    (void)state;
    test_version = SEG_VERSION_2;
    return 0;
}

static int as_v3(void **state)
{
    (void)state;
    test_version = SEG_VERSION_3;
    return 0;
}

static const segidx_sid test_sid = { { 0x51, 0xD0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 } };

/* ------------------------------------------------------------ queries */

/* Every page, every version boundary, and every kind of miss. */
static void check_all_queries(const segidx_segment *s, const workload *w, uint32_t page_size)
{
    wl_page *sorted = model_sorted(w);
    uint32_t n = w->n;
    for (uint32_t i = 0; i < n; i++) {
        const wl_page *p = &sorted[i];
        assert_find_matches_model(s, sorted, n, &p->vid, p->off, p->lsn, page_size);      /* exact */
        assert_find_matches_model(s, sorted, n, &p->vid, p->off, p->lsn - 1, page_size);  /* below / between */
        assert_find_matches_model(s, sorted, n, &p->vid, p->off, p->lsn + 1, page_size);  /* between / above */
        assert_find_matches_model(s, sorted, n, &p->vid, p->off, UINT64_MAX, page_size);  /* newest */
        assert_find_matches_model(s, sorted, n, &p->vid, p->off - 1, p->lsn, page_size);  /* neighbours, */
        assert_find_matches_model(s, sorted, n, &p->vid, p->off + 1, p->lsn, page_size);  /* often absent */
        assert_find_matches_model(s, sorted, n, &p->vid, p->off ^ 0x80000000u, p->lsn, page_size);
    }
    segidx_vid unknown = sorted[0].vid;
    unknown.bytes[15] ^= 0x5A;
    assert_find_matches_model(s, sorted, n, &unknown, sorted[0].off, UINT64_MAX, page_size);
    assert_find_matches_model(s, sorted, n, &sorted[0].vid, 0, 0, page_size); /* lsn 0: nothing */
    assert_find_matches_model(s, sorted, n, &sorted[0].vid, UINT32_MAX, UINT64_MAX, page_size);
    assert_find_matches_model(s, sorted, n, &sorted[0].vid, 0, UINT64_MAX, page_size);
    free(sorted);
}

struct walk_check {
    const wl_page *sorted;
    uint32_t next, page_size;
};

static int check_walked_page(void *ctx, const segidx_segment_page *p)
{
    struct walk_check *c = ctx;
    const wl_page *want = &c->sorted[c->next];
    assert_memory_equal(p->vid->bytes, want->vid.bytes, 16);
    assert_int_equal(p->offset, want->off);
    assert_int_equal(p->lsn, want->lsn);
    assert_int_equal(p->local, c->next);
    c->next++;
    return 0;
}

static void check_iterate_and_stats(const segidx_segment *s, const workload *w, size_t len)
{
    wl_page *sorted = model_sorted(w);
    struct walk_check c = { sorted, 0, 0 };
    assert_int_equal(segidx_segment_iterate(s, NULL, check_walked_page, &c), 0);
    assert_int_equal(c.next, w->n);

    segidx_segment_stats st;
    segidx_segment_stats_get(s, &st);
    assert_int_equal(st.page_count, w->n);
    assert_int_equal(st.segment_bytes, len);
    assert_memory_equal(st.sid.bytes, test_sid.bytes, 16);

    /* Volumes in vid order, their pages adding up, their LSN ranges and
     * their per-LSN offset sets matching the model. */
    uint32_t first = 0;
    for (uint32_t v = 0; v < st.volume_count; v++) {
        segidx_segment_volume vol;
        assert_int_equal(segidx_segment_volume_get(s, v, &vol), SEGIDX_OK);
        assert_int_equal(vol.first_page, first);
        assert_memory_equal(vol.vid.bytes, sorted[first].vid.bytes, 16);
        uint64_t lo = UINT64_MAX, hi = 0;
        for (uint32_t i = first; i < first + vol.page_count; i++) {
            assert_memory_equal(sorted[i].vid.bytes, vol.vid.bytes, 16);
            lo = sorted[i].lsn < lo ? sorted[i].lsn : lo;
            hi = sorted[i].lsn > hi ? sorted[i].lsn : hi;
        }
        assert_int_equal(vol.min_lsn, lo);
        assert_int_equal(vol.max_lsn, hi);
        assert_int_equal(vol.first_offset, sorted[first].off);
        assert_int_equal(vol.last_offset, sorted[first + vol.page_count - 1].off);

        segidx_offset_set *at = NULL;
        assert_int_equal(segidx_segment_offsets(s, &vol.vid, lo, &at), SEGIDX_OK);
        uint64_t want = 0;
        for (uint32_t i = first; i < first + vol.page_count; i++)
            if (sorted[i].lsn == lo) {
                want++;
                assert_true(segidx_offset_set_contains(at, sorted[i].off));
            }
        assert_int_equal(segidx_offset_set_cardinality(at), want);
        segidx_offset_set_free(at);
        first += vol.page_count;
    }
    assert_int_equal(first, w->n);
    segidx_segment_volume none;
    assert_int_equal(segidx_segment_volume_get(s, st.volume_count, &none), SEGIDX_EINVAL);
    free(sorted);
}

static void roundtrip(const workload *w, uint32_t page_size, uint64_t seed)
{
    size_t len;
    uint8_t *buf = build_segment(w, page_size, seed, &test_sid, &len);
    segidx_segment *s = NULL;
    assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
    assert_int_equal(segidx_segment_verify(s), SEGIDX_OK);
    check_all_queries(s, w, page_size);
    check_iterate_and_stats(s, w, len);
    segidx_segment_close(s);
    free(buf);
}

static void test_reference_workloads(void **state)
{
    (void)state;
    workload ws[] = { wl_w1(11), wl_w2(12), wl_w3(13) };
    for (size_t i = 0; i < 3; i++) {
        roundtrip(&ws[i], 4096, 100 + i);
        wl_free(&ws[i]);
    }
}

static void test_random_workloads(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= (uint64_t)test_scaled(40); seed++) {
        workload w = wl_random(seed);
        roundtrip(&w, seed % 2 ? 512 : 1024, seed);
        wl_free(&w);
    }
}

/* Each offset encoding must show up, or the round trips prove less. */
static void test_every_encoding_used(void **state)
{
    (void)state;
    bool seen[SEGIDX_OFFSETS_KEYED_PACKED + 1] = { false };
    unsigned widths = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        workload w = wl_random(seed);
        size_t len;
        uint8_t *buf = build_segment(&w, 512, seed, &test_sid, &len);
        segidx_segment *s;
        assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
        segidx_segment_stats st;
        segidx_segment_stats_get(s, &st);
        for (uint32_t v = 0; v < st.volume_count; v++) {
            segidx_segment_volume vol;
            segidx_segment_volume_get(s, v, &vol);
            assert_in_range(vol.offset_encoding, SEGIDX_OFFSETS_RANGE, SEGIDX_OFFSETS_KEYED_PACKED);
            seen[vol.offset_encoding] = true;
            widths |= 1u << vol.rlsn_width;
        }
        segidx_segment_close(s);
        free(buf);
        wl_free(&w);
    }
    assert_true(seen[SEGIDX_OFFSETS_RANGE]);
    if (test_version == SEG_VERSION_2) {
        assert_true(seen[SEGIDX_OFFSETS_PARTITIONED]);
        assert_false(seen[SEGIDX_OFFSETS_BITMAP] || seen[SEGIDX_OFFSETS_ELIAS_FANO] ||
                     seen[SEGIDX_OFFSETS_KEYED] || seen[SEGIDX_OFFSETS_KEYED_PACKED]);
    } else if (test_version != SEG_VERSION_1) {
        assert_true(seen[SEGIDX_OFFSETS_KEYED] || seen[SEGIDX_OFFSETS_KEYED_PACKED]);
        assert_false(seen[SEGIDX_OFFSETS_BITMAP] || seen[SEGIDX_OFFSETS_ELIAS_FANO]);
    } else {
        assert_true(seen[SEGIDX_OFFSETS_BITMAP]);
        assert_true(seen[SEGIDX_OFFSETS_ELIAS_FANO]);
        assert_false(seen[SEGIDX_OFFSETS_PARTITIONED]);
    }
    assert_int_equal(widths, 7u); /* 0, 1 and 2 bytes */
}

static void test_single_page_edges(void **state)
{
    (void)state;
    static const uint32_t offs[] = { 0, UINT32_MAX };
    for (size_t i = 0; i < 2; i++) {
        workload w = { "one", NULL, 0, 0, 1 };
        segidx_vid vid = { { 0 } };
        wl_push(&w, &vid, offs[i], i ? UINT64_MAX : 1);
        roundtrip(&w, 512, 1);
        wl_free(&w);
    }
    /* Both ends of the u32 space in one volume: the widest span. */
    workload w = { "ends", NULL, 0, 0, 1 };
    segidx_vid vid;
    memset(vid.bytes, 0xFF, 16);
    wl_push(&w, &vid, 0, 7);
    wl_push(&w, &vid, UINT32_MAX, 7);
    wl_push(&w, &vid, UINT32_MAX, 7 + SEGIDX_MAX_LSN_SPAN);
    roundtrip(&w, 512, 1);
    wl_free(&w);
}

/* The same pages in any order give the same bytes. */
static void test_deterministic(void **state)
{
    (void)state;
    workload w = wl_w2(21);
    size_t a_len, b_len;
    uint8_t *a = build_segment(&w, 512, 1, &test_sid, &a_len);
    uint8_t *b = build_segment(&w, 512, 2, &test_sid, &b_len);
    assert_int_equal(a_len, b_len);
    assert_memory_equal(a, b, a_len);
    free(a);
    free(b);
    wl_free(&w);
}

/* ------------------------------------------------------------ builder */

static void test_builder_errors_change_nothing(void **state)
{
    (void)state;
    segidx_segment_options opts = { 512, 64 * 1024, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    uint8_t page[512] = { 1 };
    segidx_vid vid = { { 9 } }, other = { { 10 } };
    assert_int_equal(segidx_segment_builder_size(b), 0);
    assert_int_equal(segidx_segment_builder_finish(b, &test_sid, page, sizeof page),
                     SEGIDX_EINVAL); /* no pages */
    assert_int_equal(segidx_segment_builder_add(b, &vid, 5, 100, page), SEGIDX_OK);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 6, 100 + SEGIDX_MAX_LSN_SPAN, page),
                     SEGIDX_OK);
    size_t size = segidx_segment_builder_size(b);
    uint8_t *before = malloc(size), *after = malloc(size);
    assert_int_equal(segidx_segment_builder_finish(b, &test_sid, before, size), SEGIDX_OK);

    assert_int_equal(segidx_segment_builder_add(b, &vid, 5, 0, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 5, 100, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 7, 99, page), SEGIDX_ERANGE);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 7, 101 + SEGIDX_MAX_LSN_SPAN, page),
                     SEGIDX_ERANGE);
    assert_int_equal(segidx_segment_builder_add(NULL, &vid, 7, 1, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_builder_add(b, NULL, 7, 1, page), SEGIDX_EINVAL);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 7, 1, NULL), SEGIDX_EINVAL);
    /* Another volume's LSNs are its own business. */
    int rc;
    uint32_t added = 0;
    while ((rc = segidx_segment_builder_add(b, &other, added, 1, page)) == SEGIDX_OK)
        added++;
    assert_int_equal(rc, SEGIDX_EFULL);
    assert_true(added > 50);
    size_t full = segidx_segment_builder_size(b);
    assert_true(full <= opts.max_bytes);
    assert_int_equal(segidx_segment_builder_pages(b), added + 2);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 1000, 100, page), SEGIDX_EFULL);
    assert_int_equal(segidx_segment_builder_size(b), full);

    /* Too small a buffer: refused, nothing written. */
    memset(after, 0xEE, size);
    assert_int_equal(segidx_segment_builder_finish(b, &test_sid, after, size), SEGIDX_EINVAL);
    for (size_t i = 0; i < size; i++)
        assert_int_equal(after[i], 0xEE);

    segidx_segment_builder_reset(b);
    assert_int_equal(segidx_segment_builder_pages(b), 0);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 5, 100, page), SEGIDX_OK);
    assert_int_equal(segidx_segment_builder_add(b, &vid, 6, 100 + SEGIDX_MAX_LSN_SPAN, page),
                     SEGIDX_OK);
    assert_int_equal(segidx_segment_builder_size(b), size);
    assert_int_equal(segidx_segment_builder_finish(b, &test_sid, after, size), SEGIDX_OK);
    assert_memory_equal(before, after, size);
    free(before);
    free(after);
    segidx_segment_builder_free(b);
    segidx_segment_builder_free(NULL);
}

static void test_builder_options(void **state)
{
    (void)state;
    segidx_segment_options bad[] = {
        { 256, 0, NULL }, { 1000, 0, NULL }, { 131072, 0, NULL }, { 4096, 4096, NULL },
#if SIZE_MAX > 0xFFFFFFFFu
        /* Above 4 GiB - 1, which only a size_t wider than 32 bits can ask for. */
        { 512, (size_t)1 << 33, NULL },
#endif
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(segidx_segment_builder_new(&bad[i]));
    segidx_segment_options ok[] = { { 512, 0, NULL }, { 65536, 0, NULL }, { 0, 0, NULL } };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        segidx_segment_builder *b = segidx_segment_builder_new(&ok[i]);
        assert_non_null(b);
        segidx_segment_builder_free(b);
    }
    /* "At least one page must fit": any max_bytes the builder accepts
     * takes a first page, and the smallest such segment is within it. */
    uint8_t page[512] = { 0 };
    segidx_vid vid = { { 1 } };
    bool some_accepted = false;
    for (size_t max = 512; max < 1024; max++) {
        segidx_segment_options o = { 512, max, NULL };
        segidx_segment_builder *b = segidx_segment_builder_new(&o);
        if (!b)
            continue;
        some_accepted = true;
        assert_int_equal(segidx_segment_builder_add(b, &vid, UINT32_MAX, UINT64_MAX, page),
                         SEGIDX_OK);
        assert_true(segidx_segment_builder_size(b) <= max);
        segidx_segment_builder_free(b);
    }
    assert_true(some_accepted);
    segidx_segment_builder *d = segidx_segment_builder_new(NULL);
    assert_non_null(d);
    segidx_segment_builder_free(d);
}

/* ------------------------------------------------------------ corruption */

static void assert_open_rejects(const uint8_t *buf, size_t len)
{
    segidx_segment *s = (segidx_segment *)(uintptr_t)0x99;
    int rc = segidx_segment_open(buf, len, &s);
    if (rc != SEGIDX_ECORRUPT && rc != SEGIDX_EVERSION) {
        print_error("open accepted %zu bytes: rc %d\n", len, rc);
        fail();
    }
    assert_ptr_equal(s, (segidx_segment *)(uintptr_t)0x99);
}

static void test_every_flip_and_truncation(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= (uint64_t)test_scaled(4); seed++) {
        workload w = seed == 4 ? wl_w2(4) : wl_random(seed);
        size_t len;
        uint8_t *buf = build_segment(&w, 512, seed, &test_sid, &len);
        segidx_segment *s;
        assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
        segidx_segment_close(s);
        uint64_t index_offset = seg_index_offset(w.n, 512);
        /* Header, index and footer: every byte, a low and a high bit. */
        const size_t step = test_quick() ? 11 : 1;
        for (size_t i = 0; i < len; i += step) {
            if (i >= SEG_HEADER_BYTES && i < index_offset)
                i = (size_t)index_offset;
            for (int bit = 0; bit < 8; bit += 7) {
                buf[i] ^= (uint8_t)(1u << bit);
                assert_open_rejects(buf, len);
                buf[i] ^= (uint8_t)(1u << bit);
            }
        }
        /* Every truncation of the tail's neighbourhood, every 97th before
         * it. Each sits at the end of one buffer with everything before it
         * poisoned, so ASan sees a read on either side. */
        size_t dense_from = index_offset > 4096 ? (size_t)index_offset - 4096 : 0;
        uint8_t *room = malloc(len);
        for (size_t n = 0; n < len; n += n < dense_from ? 97 : step) {
            uint8_t *cut = room + (len - n);
            memcpy(cut, buf, n);
            test_poison(room, len - n);
            assert_open_rejects(cut, n);
            test_unpoison(room, len - n);
        }
        free(room);
        /* A flipped page or page checksum opens, and verify catches it. */
        size_t at[] = { SEG_HEADER_BYTES + 17, (size_t)index_offset - 3 };
        for (size_t k = 0; k < 2; k++) {
            buf[at[k]] ^= 4;
            assert_int_equal(segidx_segment_open(buf, len, &s), SEGIDX_OK);
            assert_int_equal(segidx_segment_verify(s), SEGIDX_ECORRUPT);
            segidx_segment_close(s);
            buf[at[k]] ^= 4;
        }
        free(buf);
        wl_free(&w);
    }
}

/* ------------------------------------------------------------ crafted
 *
 * Break one structural fact, then recompute every checksum, so that only
 * the structural validation can object.
 */

static uint64_t read_varint_at(const uint8_t **p)
{
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            return v;
    }
}

/* Where things are in a segment's index, found the way a reader would. */
struct layout {
    uint8_t *index;
    uint8_t *kind[64];           /* kind byte per volume */
    uint8_t *pages_varint[64];
    uint8_t *data[64];           /* volume data start */
    uint64_t offsets[64], pages[64], span[64];
    uint32_t volumes;
};

static struct layout map_index(uint8_t *buf, size_t len)
{
    struct layout m = { 0 };
    uint8_t *f = buf + len - SEG_FOOTER_BYTES;
    m.index = buf + segidx__load64(f + FOOT_INDEX_OFFSET);
    m.volumes = segidx__load32(f + FOOT_VOLUME_COUNT);
    assert_true(m.volumes <= 64);
    const uint8_t *p = m.index;
    for (uint32_t v = 0; v < m.volumes; v++) {
        p += 16;
        read_varint_at(&p);
        m.pages_varint[v] = (uint8_t *)p;
        m.pages[v] = read_varint_at(&p);
        m.offsets[v] = read_varint_at(&p);
        read_varint_at(&p);
        m.span[v] = read_varint_at(&p);
        m.kind[v] = (uint8_t *)p++;
    }
    uint8_t *d = (uint8_t *)p;
    for (uint32_t v = 0; v < m.volumes; v++) {
        m.data[v] = d;
        uint8_t kind = *m.kind[v];
        d += offsets_bytes(kind & KIND_ENCODING_MASK, m.offsets[v], m.span[v]);
        if (kind & KIND_VERSIONS)
            d += 2 * m.offsets[v];
        d += ((kind & KIND_WIDTH_MASK) >> KIND_WIDTH_SHIFT) * m.pages[v];
    }
    assert_ptr_equal(d, f);
    return m;
}

/* A segment whose volumes cover the encodings the crafted cases need. */
static uint8_t *crafted_base(size_t *len)
{
    workload w = { "crafted", NULL, 0, 0, 5 };
    segidx_vid v0 = { { 1 } }, v1 = { { 2 } }, v2 = { { 3 } };
    for (uint32_t i = 0; i < 40; i++) /* bitmap: dense, one version */
        wl_push(&w, &v0, 1000 + 3 * i, 50);
    for (uint32_t i = 0; i < 60; i++) /* Elias-Fano: sparse pairs, versions, u16 rLSNs */
        for (uint32_t k = 0; k <= i % 3; k++)
            wl_push(&w, &v1, i / 2 * 100003u + i % 2, 7 + k * 300);
    for (uint32_t i = 0; i < 20; i++) /* range */
        wl_push(&w, &v2, 77 + i, 9);
    uint8_t *buf = build_segment(&w, 512, 1, &test_sid, len);
    wl_free(&w);
    return buf;
}

typedef void (*breaker)(uint8_t *buf, size_t len, struct layout *m);

static void break_vid_order(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    m->index[0] = 0xFF; /* the first vid is now the largest */
}

static void break_width(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    *m->kind[1] |= KIND_WIDTH_MASK; /* width 3 */
}

static void break_encoding(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    *m->kind[0] |= KIND_ENCODING_MASK; /* encoding 3 */
}

static void break_kind_bits(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    *m->kind[2] |= 0x80;
}

static void break_volume_count(uint8_t *buf, size_t len, struct layout *m)
{
    (void)m;
    segidx__store32(buf + len - SEG_FOOTER_BYTES + FOOT_VOLUME_COUNT, 65535);
    segidx__store32(buf + HEAD_VOLUME_COUNT, 65535);
}

static void break_page_count(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    (*m->pages_varint[0])++; /* pages no longer add up: a position out of range */
}

static void break_bitmap_sample(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    uint64_t words = bitmap_words(m->span[0]);
    m->data[0][8 * words] ^= 1; /* rank sample 0 */
}

static void break_bitmap_bits(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    m->data[0][1] ^= 0x10; /* one offset more than offset_count */
}

/* Elias-Fano of volume 1: low bits first. Elements 2 and 3 share a bucket
 * (offsets 100003 and 100004); swapping their low bits puts them out of
 * order. */
static uint64_t get_bits(const uint8_t *p, uint64_t bit, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++, bit++)
        v |= (uint64_t)(p[bit / 8] >> (bit % 8) & 1) << k;
    return v;
}

static void set_bits(uint8_t *p, uint64_t bit, unsigned n, uint64_t v)
{
    for (unsigned k = 0; k < n; k++, bit++) {
        p[bit / 8] &= (uint8_t)~(1u << (bit % 8));
        p[bit / 8] |= (uint8_t)((v >> k & 1) << (bit % 8));
    }
}

static void break_ef_order(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    unsigned l = ef_low_bits(m->offsets[1], m->span[1]);
    uint8_t *low = m->data[1];
    uint64_t a = get_bits(low, 2 * l, l), b = get_bits(low, 3 * l, l);
    assert_int_equal(a + 1, b);
    set_bits(low, 2 * l, l, b);
    set_bits(low, 3 * l, l, a);
}

static void break_ef_sample(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    unsigned l = ef_low_bits(m->offsets[1], m->span[1]);
    uint8_t *samples = m->data[1] + ef_low_bytes(m->offsets[1], l) +
                       8 * ef_high_words(m->offsets[1], m->span[1], l);
    samples[0] ^= 1;
}

static void break_version_ranks(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    uint8_t *ranks = m->data[1] + offsets_bytes(SEGIDX_OFFSETS_ELIAS_FANO, m->offsets[1], m->span[1]);
    segidx__store16(ranks + 4, segidx__load16(ranks + 2)); /* not increasing */
}

static void break_lsn_order(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    uint8_t *rlsn = m->data[1] + offsets_bytes(SEGIDX_OFFSETS_ELIAS_FANO, m->offsets[1], m->span[1]) +
                    2 * m->offsets[1];
    /* Offset 1 has versions at pages 1 and 2: make the second delta 0. */
    segidx__store16(rlsn + 2 * 2, 0);
}

static void break_varint(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    *m->pages_varint[2] |= 0x80; /* runs into the next field */
}

static void break_range(uint8_t *buf, size_t len, struct layout *m)
{
    (void)buf, (void)len;
    uint8_t *p = m->pages_varint[2];
    read_varint_at((const uint8_t **)&p);
    (*p)--; /* offset_count below a range's span + 1 */
}

static void test_crafted_structures(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        breaker fn;
    } cases[] = {
        { "vid order", break_vid_order },     { "width 3", break_width },
        { "encoding 3", break_encoding },     { "unknown kind bits", break_kind_bits },
        { "volume count", break_volume_count }, { "page count", break_page_count },
        { "bitmap sample", break_bitmap_sample }, { "bitmap bits", break_bitmap_bits },
        { "ef order", break_ef_order },       { "ef sample", break_ef_sample },
        { "version ranks", break_version_ranks }, { "lsn order", break_lsn_order },
        { "varint", break_varint },           { "range count", break_range },
    };
    size_t len;
    uint8_t *base = crafted_base(&len);
    {
        struct layout m = map_index(base, len);
        assert_int_equal(m.volumes, 3);
        assert_int_equal(*m.kind[0] & KIND_ENCODING_MASK, SEGIDX_OFFSETS_BITMAP);
        assert_int_equal(*m.kind[1] & KIND_ENCODING_MASK, SEGIDX_OFFSETS_ELIAS_FANO);
        assert_true(*m.kind[1] & KIND_VERSIONS);
        assert_int_equal(*m.kind[2] & KIND_ENCODING_MASK, SEGIDX_OFFSETS_RANGE);
    }
    uint8_t *buf = malloc(len);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(buf, base, len);
        struct layout m = map_index(buf, len);
        cases[i].fn(buf, len, &m);
        reseal(buf, len);
        segidx_segment *s = NULL;
        int rc = segidx_segment_open(buf, len, &s);
        if (rc != SEGIDX_ECORRUPT) {
            print_error("crafted '%s': rc %d\n", cases[i].name, rc);
            segidx_segment_close(s);
            fail();
        }
    }
    free(buf);
    free(base);
}

/* Random damage to the index, resealed: open may accept bytes that still
 * make sense, but never crashes, and whatever it accepts answers queries
 * within bounds (ASan watches). */
static void test_resealed_random_damage(void **state)
{
    (void)state;
    test_rng r = { 77 };
    size_t len;
    uint8_t *base = crafted_base(&len);
    uint8_t *buf = malloc(len);
    uint64_t index_offset = segidx__load64(base + len - SEG_FOOTER_BYTES + FOOT_INDEX_OFFSET);
    size_t index_len = len - SEG_FOOTER_BYTES - (size_t)index_offset;
    unsigned accepted = 0;
    for (long round = 0; round < test_scaled(3000); round++) {
        memcpy(buf, base, len);
        for (int k = 0, hits = 1 + (int)rng_below(&r, 3); k < hits; k++)
            buf[index_offset + rng_below(&r, index_len)] ^= (uint8_t)(1 + rng_below(&r, 255));
        segidx_segment *s = open_resealed(buf, len);
        if (!s)
            continue;
        accepted++;
        segidx_segment_stats st;
        segidx_segment_stats_get(s, &st);
        for (uint32_t v = 0; v < st.volume_count; v++) {
            segidx_segment_volume vol;
            segidx_segment_volume_get(s, v, &vol);
            for (int q = 0; q < 50; q++) {
                segidx_page_ref ref;
                uint32_t off = vol.first_offset + (uint32_t)rng_below(&r, 4000000);
                if (segidx_segment_find(s, &vol.vid, off, vol.min_lsn + rng_below(&r, 1000),
                                        &ref) == SEGIDX_OK)
                    assert_true(ref.local < st.page_count);
            }
        }
        segidx_segment_close(s);
    }
    print_message("resealed damage: %u of %ld still valid\n", accepted, test_scaled(3000));
    free(buf);
    free(base);
}

/* ------------------------------------------------------------ tail */

static void test_open_from_tail(void **state)
{
    (void)state;
    workload w = wl_w2(31);
    size_t len;
    uint8_t *buf = build_segment(&w, 1024, 3, &test_sid, &len);
    size_t tail_len = 0;
    assert_int_equal(segidx_segment_tail_len(buf + len - SEGIDX_SEGMENT_FOOTER_BYTES, len,
                                             &tail_len),
                     SEGIDX_OK);
    assert_true(tail_len < len / 10);
    uint8_t *tail = malloc(tail_len); /* exactly the tail: ASan guards both ends */
    memcpy(tail, buf + len - tail_len, tail_len);
    segidx_segment *t, *full;
    assert_int_equal(segidx_segment_open_tail(tail, tail_len, len, &t), SEGIDX_OK);
    assert_int_equal(segidx_segment_open(buf, len, &full), SEGIDX_OK);
    check_all_queries(t, &w, 1024);
    assert_int_equal(segidx_segment_verify(t), SEGIDX_EINVAL);

    wl_page *sorted = model_sorted(&w);
    for (uint32_t i = 0; i < w.n; i += 7) {
        segidx_page_ref a, b;
        assert_int_equal(segidx_segment_find(t, &sorted[i].vid, sorted[i].off, sorted[i].lsn, &a),
                         SEGIDX_OK);
        assert_int_equal(segidx_segment_find(full, &sorted[i].vid, sorted[i].off, sorted[i].lsn,
                                             &b),
                         SEGIDX_OK);
        assert_null(a.page);
        assert_int_equal(a.local, b.local);
        uint64_t at;
        uint32_t n;
        assert_int_equal(segidx_segment_page_range(t, a.local, &at, &n), SEGIDX_OK);
        assert_ptr_equal(buf + at, b.page);
        assert_int_equal(n, 1024);
        assert_int_equal(segidx_segment_check_page(t, a.local, buf + at), SEGIDX_OK);
        buf[at + 5] ^= 1;
        assert_int_equal(segidx_segment_check_page(t, a.local, buf + at), SEGIDX_ECORRUPT);
        buf[at + 5] ^= 1;
    }
    uint64_t at;
    uint32_t n;
    assert_int_equal(segidx_segment_page_range(t, w.n, &at, &n), SEGIDX_EINVAL);
    /* A tail one byte short or long, or against the wrong length. */
    segidx_segment *bad = NULL;
    assert_int_equal(segidx_segment_open_tail(tail + 1, tail_len - 1, len, &bad),
                     SEGIDX_ECORRUPT);
    assert_int_equal(segidx_segment_open_tail(tail, tail_len, len + 1, &bad), SEGIDX_ECORRUPT);
    assert_null(bad);
    free(sorted);
    segidx_segment_close(t);
    segidx_segment_close(full);
    segidx_segment_close(NULL);
    free(tail);
    free(buf);
    wl_free(&w);
}

#define BOTH(t)                                                                            \
    cmocka_unit_test_setup(t, as_v1), cmocka_unit_test_setup(t, as_v2),                    \
        cmocka_unit_test_setup(t, as_v3)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_reference_workloads),
        BOTH(test_random_workloads),
        BOTH(test_every_encoding_used),
        BOTH(test_single_page_edges),
        BOTH(test_deterministic),
        BOTH(test_builder_errors_change_nothing),
        BOTH(test_builder_options),
        BOTH(test_every_flip_and_truncation),
        cmocka_unit_test_setup(test_crafted_structures, as_v1),
        BOTH(test_resealed_random_damage),
        BOTH(test_open_from_tail),
    };
    return cmocka_run_group_tests_name("segment", tests, NULL, NULL);
}
