/* Error strings, version and build facts. */
#include "testutil.h"

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    const char *seen[10] = { 0 };
    for (int err = 0; err >= SEGIDX_EFULL; err--) {
        const char *s = segidx_strerror(err);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
        for (int j = 0; j < -err; j++)
            assert_string_not_equal(s, seen[j]); /* each its own words */
        seen[-err] = s;
    }
    assert_string_equal(segidx_strerror(SEGIDX_EFULL - 1), "unknown error");
    assert_string_equal(segidx_strerror(1), "unknown error");
    assert_string_equal(segidx_strerror(-2147483647 - 1), "unknown error");
}

static void test_error_values_are_the_contract(void **state)
{
    (void)state;
    assert_int_equal(SEGIDX_OK, 0);
    assert_int_equal(SEGIDX_ENOMEM, -1);
    assert_int_equal(SEGIDX_EINVAL, -2);
    assert_int_equal(SEGIDX_ECORRUPT, -3);
    assert_int_equal(SEGIDX_ENOTFOUND, -4);
    assert_int_equal(SEGIDX_ERANGE, -5);
    assert_int_equal(SEGIDX_ECONFLICT, -6);
    assert_int_equal(SEGIDX_EIO, -7);
    assert_int_equal(SEGIDX_EVERSION, -8);
    assert_int_equal(SEGIDX_EFULL, -9);
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(segidx_version(), SEGIDX_VERSION_NUMBER);
    assert_string_equal(segidx_version_string(), SEGIDX_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SEGIDX_VERSION_MAJOR, SEGIDX_VERSION_MINOR,
             SEGIDX_VERSION_PATCH);
    assert_string_equal(segidx_version_string(), want);
}

/* The single-threaded build must say so: hosts check it at start-up. */
static void test_threadsafe_matches_build(void **state)
{
    (void)state;
#if defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED
    assert_int_equal(segidx_threadsafe(), 0);
#else
    assert_int_equal(segidx_threadsafe(), 1);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_error_values_are_the_contract),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_threadsafe_matches_build),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
