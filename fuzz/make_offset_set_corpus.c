/* Writes the seed corpus of fuzz/offset_set_fuzz.c. Built by hand:
 *
 *   cc -std=c11 -Iinclude fuzz/make_offset_set_corpus.c build/libsegidx.a \
 *      -lroaring -pthread -o /tmp/mkcorpus && /tmp/mkcorpus fuzz/corpus/offset_set
 *
 * Valid seeds come from the public API; invalid ones are valid bytes with
 * one fact broken (and, where the break is in the payload, the checksum
 * recomputed so that the payload validation is what refuses them).
 */
#include <segidx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static const char *dir;

static void put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* Serialize into a static buffer (the largest seed is ~8 KiB). */
static uint8_t buf[65536];
static size_t serialize(segidx_offset_set *s)
{
    size_t n = segidx_offset_set_serialize(s, buf, sizeof buf);
    if (n == 0)
        exit(1);
    segidx_offset_set_free(s);
    return n;
}

static void reseal(size_t n)
{
    put(buf + 8, n - 24, 4);
    put(buf + 16, XXH3_64bits(buf + 24, n - 24), 8);
}

static segidx_offset_set *set(void)
{
    segidx_offset_set *s = segidx_offset_set_new();
    if (!s)
        exit(1);
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    segidx_offset_set *s;
    size_t n;

    write_file("valid-empty", buf, serialize(set()));

    s = set();
    segidx_offset_set_add(s, 0);
    n = serialize(s);
    write_file("valid-zero", buf, n);
    buf[4] = 2; /* version 2: SEGIDX_EVERSION */
    write_file("invalid-version-2", buf, n);

    s = set();
    segidx_offset_set_add(s, UINT32_MAX);
    write_file("valid-uint32-max", buf, serialize(s));

    s = set(); /* 4096 values, every 16th: the largest array container */
    for (uint32_t v = 0; v < 65536; v += 16)
        segidx_offset_set_add(s, 0x10000 + v);
    write_file("valid-array-4096", buf, serialize(s));

    s = set(); /* 4097 values: the smallest bitset container */
    for (uint32_t v = 0; v < 4097; v++)
        segidx_offset_set_add(s, 0x20000 + v * 15);
    n = serialize(s);
    write_file("valid-bitset-4097", buf, n);
    buf[24 + 16 + 1] ^= 0x01; /* bit 8 (v = 0, 15, 30: 8 is clear): popcount 4098 */
    reseal(n);
    write_file("invalid-bitset-popcount", buf, n);

    s = set(); /* dense: every other value, 32768 runs, so a bitset */
    for (uint32_t v = 0; v < 65536; v += 2)
        segidx_offset_set_add(s, 0x30000 + v);
    write_file("valid-bitset-dense", buf, serialize(s));

    s = set();
    segidx_offset_set_add_range(s, 1000, 60000);
    n = serialize(s);
    write_file("valid-run-1container", buf, n);
    buf[16] ^= 0x01;
    write_file("invalid-checksum", buf, n);

    s = set();
    segidx_offset_set_add_range(s, UINT32_MAX - 100, UINT32_MAX);
    segidx_offset_set_add(s, UINT32_MAX);
    write_file("valid-run-top-container", buf, serialize(s));

    s = set(); /* run cookie, 3 containers: no offset header */
    segidx_offset_set_add_range(s, 5, 500);
    segidx_offset_set_add(s, 0x10007);
    segidx_offset_set_add(s, 0x10009);
    segidx_offset_set_add_range(s, 0x70000, 0x80000);
    write_file("valid-runs-3containers", buf, serialize(s));

    s = set(); /* run cookie, 5 containers: offset header */
    segidx_offset_set_add_range(s, 0, 0x10000);
    segidx_offset_set_add_range(s, 0x10010, 0x10020);
    segidx_offset_set_add(s, 0x20005);
    segidx_offset_set_add_range(s, 0x50000, 0x50003);
    segidx_offset_set_add_range(s, 0xFFFF0000u, 0xFFFF8000u);
    n = serialize(s);
    write_file("valid-runs-5containers", buf, n);
    write_file("invalid-truncated", buf, 20);
    put(buf + 24 + 4 + 1 + 20, 4 + 1 + 20 + 20 + 1, 4); /* offset[0] one too far */
    reseal(n);
    write_file("invalid-offset-wrong", buf, n);

    s = set(); /* no run cookie, 5 array containers: offset header */
    for (uint32_t k = 0; k < 5; k++)
        for (uint32_t v = 0; v < 10; v++)
            segidx_offset_set_add(s, k * 0x30000 + v * 7);
    n = serialize(s);
    write_file("valid-arrays-5containers", buf, n);
    put(buf + 24 + 8, 4, 2); /* keys 4, 3, ...: not increasing */
    reseal(n);
    write_file("invalid-keys-unsorted", buf, n);

    /* Hand-made run containers: cookie 12347 (1 container), run flags,
     * key 0 / card 20, two runs. Touching runs are valid, overlap is not. */
    static const uint8_t touching[] = { 0x3B, 0x30, 0, 0, 0x01, 0, 0, 19, 0,
                                        2, 0, 0, 0, 9, 0, 10, 0, 9, 0 };
    memcpy(buf + 24, touching, sizeof touching);
    n = 24 + sizeof touching;
    memcpy(buf, "SXOS\1\0\0\0\0\0\0\0\0\0\0\0", 16);
    reseal(n);
    write_file("invalid-touching-runs", buf, n);
    buf[24 + 15] = 5; /* second run starts at 5: overlaps the first */
    reseal(n);
    write_file("invalid-runs-overlap", buf, n);
    return 0;
}
