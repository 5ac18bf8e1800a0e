/* static_check: linked with -static against libsegidx.a and a libroaring.a
 * built from source (tests/static_test.sh), it must run with no dynamic
 * loader at all: a segment built, opened and searched, and an OffsetSet
 * stored, read back and cut. Prints one line and exits 0 when all agree.
 */
#include <segidx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 512u

static int fail(const char *what, int rc)
{
    fprintf(stderr, "static_check: %s: %s\n", what, segidx_strerror(rc));
    return 1;
}

static int check_segment(void)
{
    segidx_segment_options o = { 0 };
    o.page_size = PAGE;
    segidx_segment_builder *b = segidx_segment_builder_new(&o);
    if (!b)
        return fail("segment_builder_new", SEGIDX_ENOMEM);
    segidx_vid vid = { { 7 } };
    unsigned char page[PAGE];
    int rc = SEGIDX_OK;
    for (segidx_offset off = 0; off < 64 && rc == SEGIDX_OK; off += 3) {
        memset(page, (int)off, sizeof page);
        rc = segidx_segment_builder_add(b, &vid, off, 5 + off % 2, page);
    }
    if (rc != SEGIDX_OK) {
        segidx_segment_builder_free(b);
        return fail("segment_builder_add", rc);
    }
    size_t len = segidx_segment_builder_size(b);
    unsigned char *buf = malloc(len);
    segidx_sid sid = { { 9 } };
    rc = buf ? segidx_segment_builder_finish(b, &sid, buf, len) : SEGIDX_ENOMEM;
    segidx_segment_builder_free(b);
    if (rc != SEGIDX_OK) {
        free(buf);
        return fail("segment_builder_finish", rc);
    }
    segidx_segment *s = NULL;
    rc = segidx_segment_open(buf, len, &s);
    if (rc == SEGIDX_OK)
        rc = segidx_segment_verify(s);
    segidx_page_ref ref;
    if (rc == SEGIDX_OK) {
        rc = segidx_segment_find(s, &vid, 30, 100, &ref);
        if (rc == SEGIDX_OK && (ref.lsn != 5 || ((const unsigned char *)ref.page)[0] != 30))
            rc = SEGIDX_ECORRUPT;
    }
    if (rc == SEGIDX_OK && segidx_segment_find(s, &vid, 31, 100, &ref) != SEGIDX_ENOTFOUND)
        rc = SEGIDX_ECORRUPT; /* never written */
    segidx_segment_close(s);
    free(buf);
    return rc == SEGIDX_OK ? 0 : fail("segment", rc);
}

static int check_offset_set(void)
{
    segidx_offset_set *query = segidx_offset_set_new(), *commit = segidx_offset_set_new();
    segidx_offset_set *stored = NULL, *cut = NULL;
    unsigned char *buf = NULL;
    int rc = query && commit ? SEGIDX_OK : SEGIDX_ENOMEM;
    if (rc == SEGIDX_OK)
        rc = segidx_offset_set_add_range(query, 0, 100);
    if (rc == SEGIDX_OK)
        rc = segidx_offset_set_add_range(commit, 90, 200000);
    size_t need = rc == SEGIDX_OK ? segidx_offset_set_serialized_size(commit) : 0;
    if (rc == SEGIDX_OK && (!(buf = malloc(need)) ||
                            segidx_offset_set_serialize(commit, buf, need) != need))
        rc = SEGIDX_ENOMEM;
    if (rc == SEGIDX_OK)
        rc = segidx_offset_set_deserialize(buf, need, &stored);
    if (rc == SEGIDX_OK && !(cut = segidx_offset_set_cut(query, stored)))
        rc = SEGIDX_ENOMEM;
    if (rc == SEGIDX_OK && (segidx_offset_set_cardinality(cut) != 10 ||
                            segidx_offset_set_cardinality(query) != 90 ||
                            segidx_offset_set_contains(query, 90)))
        rc = SEGIDX_ECORRUPT;
    segidx_offset_set_free(cut);
    segidx_offset_set_free(stored);
    segidx_offset_set_free(commit);
    segidx_offset_set_free(query);
    free(buf);
    return rc == SEGIDX_OK ? 0 : fail("offset set", rc);
}

int main(void)
{
    if (check_segment() || check_offset_set())
        return 1;
    printf("static_check: libsegidx %s: segment and OffsetSet ok, %u-bit size_t\n",
           segidx_version_string(), (unsigned)(sizeof(size_t) * 8));
    return 0;
}
