/* Compacting a volume whose commits are all empty: nothing to do, and
 * nothing undefined on the way (run it under UBSan: make asan). The
 * volume has a meta but no entry, so segidx_volume_compact() plans over
 * zero entries. */
#include "testutil.h"

static int no_sid(void *ctx, segidx_sid *sid)
{
    (void)ctx, (void)sid;
    return SEGIDX_EIO;
}

static int no_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                   const segidx_packed_commit *commits, size_t n)
{
    (void)ctx, (void)sid, (void)buf, (void)len, (void)commits, (void)n;
    return SEGIDX_EIO;
}

static int no_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                    void **handle)
{
    (void)ctx, (void)sid, (void)buf, (void)len, (void)handle;
    return SEGIDX_ENOTFOUND;
}

static void no_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                       void *handle)
{
    (void)ctx, (void)sid, (void)buf, (void)len, (void)handle;
}

static void test_only_empty_commits(void **state)
{
    (void)state;
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open(kv, &vi), SEGIDX_OK);
    segidx_vid vid = { { 'e', 'm', 'p', 't', 'y' } };
    assert_int_equal(segidx_volume_commit(vi, &vid, 1, 1, NULL, 0), SEGIDX_OK);
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, no_fetch, no_release, NULL };
    segidx_loader *l;
    assert_int_equal(segidx_loader_new(&src, NULL, &l), SEGIDX_OK);
    segidx_compact_options o = { { 512, 0, NULL }, no_sid, no_emit, NULL, NULL, 0, 0 };
    segidx_compact_stats st;
    memset(&st, 0xff, sizeof st);
    assert_int_equal(segidx_volume_compact(vi, l, &vid, &o, &st), SEGIDX_OK);
    assert_int_equal(st.segments_seen, 0);
    assert_int_equal(st.segments_in, 0);
    segidx_loader_free(l);
    segidx_volume_index_close(vi);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_only_empty_commits) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
