/* embed_offset_set: every OffsetSet call a host makes, in one small program.
 *
 * Build against an installed libsegidx:
 *     cc embed_offset_set.c $(pkg-config --cflags --libs libsegidx)
 *
 * The story: a read asks for pages 0..99 of a volume. The newest commit wrote
 * pages 10..19 and 50; cutting the query by that commit leaves what older
 * commits must answer. The commit's set travels through storage in its
 * checksummed stored form.
 */
#include <segidx.h>

#include <stdio.h>
#include <stdlib.h>

static int check(int rc, const char *what)
{
    if (rc != SEGIDX_OK) {
        fprintf(stderr, "%s: %s\n", what, segidx_strerror(rc));
        exit(1);
    }
    return rc;
}

static int print_offset(segidx_offset o, void *ctx)
{
    int *printed = ctx;
    printf("%s%u", (*printed)++ ? "," : "", (unsigned)o);
    return *printed == 12 ? 1 : 0; /* non-zero stops the walk */
}

int main(void)
{
    printf("libsegidx %s\n", segidx_version_string());

    segidx_offset_set *query = segidx_offset_set_new();
    segidx_offset_set *commit = segidx_offset_set_new();
    if (!query || !commit)
        return 1;
    check(segidx_offset_set_add_range(query, 0, 100), "add_range");
    check(segidx_offset_set_add_range(commit, 10, 20), "add_range");
    check(segidx_offset_set_add(commit, 50), "add");
    check(segidx_offset_set_add(commit, 4000000000u), "add"); /* not asked for */

    /* The commit's set, stored and read back as the volume index would. */
    size_t need = segidx_offset_set_serialized_size(commit);
    unsigned char *buf = malloc(need);
    if (!buf || segidx_offset_set_serialize(commit, buf, need) != need)
        return 1;
    segidx_offset_set *stored = NULL;
    check(segidx_offset_set_deserialize(buf, need, &stored), "deserialize");
    buf[need / 2] ^= 1; /* one flipped bit anywhere is caught */
    segidx_offset_set *bad = NULL;
    int rc = segidx_offset_set_deserialize(buf, need, &bad);
    printf("flipped byte: %s\n", segidx_strerror(rc));
    if (rc != SEGIDX_ECORRUPT)
        return 1;
    free(buf);

    segidx_offset_set *found = segidx_offset_set_cut(query, stored);
    if (!found)
        return 1;
    printf("commit answers %llu pages, %llu left for older commits\n",
           (unsigned long long)segidx_offset_set_cardinality(found),
           (unsigned long long)segidx_offset_set_cardinality(query));
    printf("left: ");
    int printed = 0;
    if (segidx_offset_set_iterate(query, print_offset, &printed) == 1)
        printf(",...");
    printf("\n");

    int ok = segidx_offset_set_cardinality(found) == 11 &&
             segidx_offset_set_contains(found, 50) &&
             !segidx_offset_set_contains(query, 15) &&
             segidx_offset_set_contains(query, 99) &&
             !segidx_offset_set_is_empty(query);
    segidx_offset_set_free(found);
    segidx_offset_set_free(stored);
    segidx_offset_set_free(commit);
    segidx_offset_set_free(query);
    segidx_offset_set_free(NULL);
    printf("%s\n", ok ? "ok" : "MISMATCH");
    return ok ? 0 : 1;
}
