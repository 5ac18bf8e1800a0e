/* Writes the seed corpus of fuzz/kv_value_fuzz.c. Built by hand:
 *
 *   make build/libsegidx.a
 *   cc -std=c11 -Iinclude fuzz/make_kv_value_corpus.c build/libsegidx.a \
 *      -lroaring -pthread -o /tmp/mkkvcorpus && /tmp/mkkvcorpus fuzz/corpus/kv_value
 *
 * Each seed is one input in the target's layout (see the comment at the top
 * of fuzz/kv_value_fuzz.c): a control byte, a shape byte, a history mask,
 * then a meta, an entry, or both. Seeds:
 *  - "meta-*": valid metas (ahead of and behind the history, at and next to
 *    UINT64_MAX, never written, with a prune point), sealed by the target
 *    or carrying their own checksum, and metas with one fact broken (a
 *    flipped checksum, version 2 at 48 bytes and at 40, truncated, too
 *    long, unknown flag, reserved word, LSN 0, keep_from above the LSN,
 *    last_offset without the written flag, magic, empty);
 *  - "entry-*": valid entries (arrays, runs, several containers,
 *    UINT32_MAX, ones shadowed by newer commits, one of them sharing its
 *    sid with another dropped entry, one replacing a background entry, one
 *    overlapping a sibling of its commit) and entries with one
 *    fact broken, the envelope resealed where the break is in the payload
 *    so that the structural checks are what refuse them;
 *  - "both-*": a meta and an entry together, among them an entry above the
 *    meta's LSN;
 *  - "meta-v2-*": metas of version 2 (a checkpoint schedule, with no
 *    checkpoint values stored), valid and with one field broken;
 *  - "ck-*": checkpoint mode ("CK", a schedule byte, a plant byte, then the
 *    usual three): the history committed with checkpoints, one value left
 *    as written, patched (resealed or not), rebuilt from the input or
 *    deleted.
 */
#include <segidx.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* The control byte's fields (fuzz/kv_value_fuzz.c). */
#define META 0
#define ENTRY 1
#define BOTH 2
#define SEAL_META 4
#define SEAL_ENTRY 8
#define VID_FF 0x10
#define SID(s) ((s) << 5)

static const char *dir;
static uint8_t out[4096];
static size_t len;

static void put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static void bytes(const uint8_t *p, size_t n)
{
    if (n > sizeof out - len) {
        fprintf(stderr, "seed too long\n");
        exit(1);
    }
    memcpy(out + len, p, n);
    len += n;
}

static void byte(int v)
{
    uint8_t b = (uint8_t)v;
    bytes(&b, 1);
}

static void emit(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(out, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    len = 0;
}

/* The three leading bytes: L commits of history (1..8), the entry at
 * 1 + kbits % L, keep (0: 0, 1: 1, 2: k, 3: L) for a generated meta. */
static void head(int ctl, int hist, int kbits, int keep, int mask)
{
    byte(ctl);
    byte((hist - 1) | kbits << 3 | keep << 6);
    byte(mask);
}

/* ------------------------------------------------------------ metas */

struct meta {
    int version, flags;
    uint64_t lsn;
    uint32_t last_offset, reserved;
    uint64_t last_commit, keep_from;
};

static void meta_bytes(uint8_t m[48], const struct meta *f)
{
    memset(m, 0, 48);
    memcpy(m, "SXVM", 4);
    put(m + 4, (uint64_t)f->version, 2);
    put(m + 6, (uint64_t)f->flags, 2);
    put(m + 8, f->lsn, 8);
    put(m + 16, f->last_offset, 4);
    put(m + 20, f->reserved, 4);
    put(m + 24, f->last_commit, 8);
    put(m + 32, f->keep_from, 8);
    put(m + 40, XXH3_64bits(m, 40), 8);
}

static struct meta valid_meta(uint64_t lsn)
{
    struct meta m = { 1, 1, lsn, 12, 0, 99, 0 };
    return m;
}

/* A meta-only seed: the meta's first `n` bytes (up to 56: zeros past 48). */
static void meta_seed(const char *name, int ctl, int hist, int mask, const struct meta *f,
                      size_t n, void (*spoil)(uint8_t *))
{
    uint8_t m[56] = { 0 };
    meta_bytes(m, f);
    if (spoil)
        spoil(m);
    head(META | ctl, hist, 0, 0, mask);
    bytes(m, n);
    emit(name);
}

static void flip_checksum(uint8_t *m) { m[44] ^= 0x20; }
static void zero_checksum(uint8_t *m) { memset(m + 40, 0, 8); }
static void bad_magic(uint8_t *m) { m[3] = 'X'; }

/* ------------------------------------------------------------ entries */

/* The stored form of a set, from the library. */
static size_t set_bytes(uint8_t *buf, size_t cap, const uint32_t *ranges, size_t n)
{
    segidx_offset_set *s = segidx_offset_set_new();
    if (!s)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = ranges[2 * i], last = ranges[2 * i + 1];
        if (last == UINT32_MAX) {
            segidx_offset_set_add(s, UINT32_MAX);
            if (lo < last)
                segidx_offset_set_add_range(s, lo, last);
        } else {
            segidx_offset_set_add_range(s, lo, last + 1);
        }
    }
    size_t k = segidx_offset_set_serialize(s, buf, cap);
    segidx_offset_set_free(s);
    if (!k)
        exit(1);
    return k;
}

/* An envelope around a payload written by hand. */
static size_t envelope(uint8_t *buf, const uint8_t *payload, size_t n)
{
    memcpy(buf, "SXOS", 4);
    put(buf + 4, 1, 2);
    put(buf + 6, 0, 2);
    put(buf + 8, n, 4);
    put(buf + 12, 0, 4);
    memcpy(buf + 24, payload, n);
    put(buf + 16, XXH3_64bits(buf + 24, n), 8);
    return 24 + n;
}

/* A payload of array containers: (key, values...) per container. */
struct array_container {
    uint16_t key;
    int card;
    uint16_t v[4];
};

static size_t array_payload(uint8_t *p, const struct array_container *c, int size,
                            int offset_skew)
{
    size_t n = 0;
    put(p, 12346, 4);
    put(p + 4, (uint64_t)size, 4);
    n = 8;
    size_t desc = n, starts = n + 4 * (size_t)size;
    n = starts + 4 * (size_t)size;
    for (int i = 0; i < size; i++) {
        put(p + desc + 4 * (size_t)i, c[i].key, 2);
        put(p + desc + 4 * (size_t)i + 2, (uint64_t)(c[i].card - 1), 2);
        put(p + starts + 4 * (size_t)i, n + (size_t)(i == size - 1 ? offset_skew : 0), 4);
        for (int j = 0; j < c[i].card; j++, n += 2)
            put(p + n, c[i].v[j], 2);
    }
    return n;
}

/* One run container at key 0 with the runs given as (start, length - 1). */
static size_t run_payload(uint8_t *p, const uint16_t *runs, int n_runs, int card, int flags)
{
    put(p, 12347, 4); /* one container: size - 1 = 0 */
    p[4] = (uint8_t)flags;
    put(p + 5, 0, 2);
    put(p + 7, (uint64_t)(card - 1), 2);
    put(p + 9, (uint64_t)n_runs, 2);
    for (int i = 0; i < 2 * n_runs; i++)
        put(p + 11 + 2 * (size_t)i, runs[i], 2);
    return 11 + 4 * (size_t)n_runs;
}

static void entry_seed(const char *name, int ctl, int hist, int kbits, int keep, int mask,
                       const uint8_t *e, size_t n)
{
    head(ENTRY | ctl, hist, kbits, keep, mask);
    bytes(e, n);
    emit(name);
}

static void both_seed(const char *name, int ctl, int hist, int kbits, int mask,
                      const struct meta *f, const uint8_t *e, size_t n)
{
    uint8_t m[48];
    meta_bytes(m, f);
    head(BOTH | ctl, hist, kbits, 0, mask);
    byte(48);
    bytes(m, 48);
    bytes(e, n);
    emit(name);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    struct meta m;

    /* ---- metas: valid */
    m = valid_meta(4);
    meta_seed("meta-valid", 0, 4, 0x0F, &m, 48, NULL);
    m = valid_meta(8);
    m.keep_from = 3;
    meta_seed("meta-valid-sealed-keep", SEAL_META, 8, 0xFF, &m, 48, zero_checksum);
    m = valid_meta(20);
    m.keep_from = 20;
    meta_seed("meta-ahead-pruned", VID_FF, 3, 0x07, &m, 48, NULL);
    m = valid_meta(2);
    meta_seed("meta-behind-history", 0, 5, 0x1F, &m, 48, NULL);
    m = valid_meta(UINT64_MAX);
    meta_seed("meta-lsn-max", 0, 2, 0x03, &m, 48, NULL);
    m = valid_meta(UINT64_MAX - 1);
    m.keep_from = 2;
    m.last_offset = UINT32_MAX;
    meta_seed("meta-lsn-max-minus-1", VID_FF, 2, 0x03, &m, 48, NULL);
    m = valid_meta(3);
    m.flags = 0;
    m.last_offset = 0;
    meta_seed("meta-never-written", 0, 3, 0x05, &m, 48, NULL);

    /* ---- metas: one fact broken */
    m = valid_meta(4);
    meta_seed("meta-checksum-flipped", 0, 4, 0x0F, &m, 48, flip_checksum);
    m = valid_meta(4);
    m.version = 2;
    meta_seed("meta-version-2", 0, 4, 0x0F, &m, 48, NULL);
    meta_seed("meta-version-2-short", 0, 4, 0x0F, &m, 40, NULL);
    m = valid_meta(4);
    meta_seed("meta-truncated", SEAL_META, 4, 0x0F, &m, 47, NULL);
    meta_seed("meta-too-long", SEAL_META, 4, 0x0F, &m, 56, NULL);
    meta_seed("meta-bad-magic", SEAL_META, 4, 0x0F, &m, 48, bad_magic);
    meta_seed("meta-empty", 0, 1, 0x01, &m, 0, NULL);
    m.flags = 3;
    meta_seed("meta-unknown-flag", SEAL_META, 4, 0x0F, &m, 48, zero_checksum);
    m = valid_meta(4);
    m.reserved = 1;
    meta_seed("meta-reserved", SEAL_META, 4, 0x0F, &m, 48, zero_checksum);
    m = valid_meta(0);
    meta_seed("meta-lsn-0", SEAL_META, 4, 0x0F, &m, 48, zero_checksum);
    m = valid_meta(4);
    m.keep_from = 5;
    meta_seed("meta-keep-above-lsn", SEAL_META, 4, 0x0F, &m, 48, zero_checksum);
    m = valid_meta(4);
    m.flags = 0;
    meta_seed("meta-offset-not-written", SEAL_META, 4, 0x0F, &m, 48, zero_checksum);

    /* ---- entries: valid */
    uint8_t e[512], p[512];
    size_t n;
    static const uint32_t small[] = { 3, 5, 100, 100 };
    n = set_bytes(e, sizeof e, small, 2);
    entry_seed("entry-array", SEAL_ENTRY | SID(5), 6, 2, 0, 0x3B, e, n);
    static const uint32_t wide[] = { 0, 39, 70000, 70099, UINT32_MAX, UINT32_MAX };
    n = set_bytes(e, sizeof e, wide, 3);
    entry_seed("entry-containers", VID_FF | SID(6), 6, 4, 1, 0x2F, e, n);
    static const uint32_t mid[] = { 2, 9 };
    n = set_bytes(e, sizeof e, mid, 1);
    /* k = 3 and sid 1 + 3 % 3 = 1: the background entry of commit 3 */
    entry_seed("entry-replaces", SEAL_ENTRY | SID(1), 6, 2, 0, 0x3F, e, n);
    /* sid 7 beside the background's sid 1 at k = 3, sharing offsets */
    entry_seed("entry-overlaps-sibling", SEAL_ENTRY | SID(7), 6, 2, 0, 0x3F, e, n);
    static const uint32_t shadowed[] = { 1, 2 };
    n = set_bytes(e, sizeof e, shadowed, 1);
    entry_seed("entry-shadowed", SEAL_ENTRY | SID(6), 4, 0, 0, 0x0E, e, n);
    /* k = 2, sid 2: dropped at keep_from 5 along with commit 1's entry,
     * whose sid it shares, and no kept entry names sid 2 */
    static const uint32_t five[] = { 5, 5 };
    n = set_bytes(e, sizeof e, five, 1);
    entry_seed("entry-dropped-shared-sid", SEAL_ENTRY | SID(2), 5, 1, 0, 0x17, e, n);
    n = set_bytes(e, sizeof e, shadowed, 1);
    entry_seed("entry-keep-at-k", SEAL_ENTRY | SID(4), 8, 4, 2, 0xFF, e, n);
    entry_seed("entry-keep-at-lsn", SEAL_ENTRY | VID_FF | SID(4), 8, 4, 3, 0xAA, e, n);

    /* ---- entries: one fact broken */
    static const struct array_container one[] = { { 0, 2, { 1, 2 } } };
    static const struct array_container two[] = { { 0, 1, { 7 } }, { 1, 1, { 3 } } };
    static const struct array_container unsorted[] = { { 1, 1, { 7 } }, { 0, 1, { 3 } } };
    static const struct array_container dup[] = { { 0, 2, { 4, 4 } } };
    n = envelope(e, p, array_payload(p, one, 0, 0));
    entry_seed("entry-empty-set", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n);
    n = envelope(e, p, array_payload(p, two, 2, 0));
    entry_seed("entry-two-arrays", 0, 4, 1, 0, 0x0D, e, n);
    e[4] = 2;
    entry_seed("entry-version-2", 0, 4, 1, 0, 0x0F, e, n);
    e[4] = 1;
    e[30] ^= 1;
    entry_seed("entry-checksum-flipped", 0, 4, 1, 0, 0x0F, e, n);
    e[30] ^= 1;
    entry_seed("entry-truncated", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n - 3);
    e[n] = 0;
    entry_seed("entry-trailing-byte", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n + 1);
    entry_seed("entry-short", 0, 4, 1, 0, 0x0F, e, 10);
    n = envelope(e, p, array_payload(p, unsorted, 2, 0));
    entry_seed("entry-keys-unsorted", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n);
    n = envelope(e, p, array_payload(p, two, 2, 2));
    entry_seed("entry-start-wrong", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n);
    n = envelope(e, p, array_payload(p, dup, 1, 0));
    entry_seed("entry-array-repeat", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n);
    static const uint16_t touching[] = { 0, 3, 4, 1 };
    n = envelope(e, p, run_payload(p, touching, 2, 6, 1));
    entry_seed("entry-runs-touching", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n);
    static const uint16_t apart[] = { 0, 3, 6, 1 };
    n = envelope(e, p, run_payload(p, apart, 2, 6, 1));
    entry_seed("entry-runs", SEAL_ENTRY | VID_FF, 4, 1, 0, 0x0D, e, n);
    n = envelope(e, p, run_payload(p, apart, 2, 6, 3));
    entry_seed("entry-run-flag-past-size", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n);
    n = envelope(e, p, run_payload(p, apart, 2, 7, 1));
    entry_seed("entry-runs-card-wrong", SEAL_ENTRY, 4, 1, 0, 0x0F, e, n);

    /* ---- metas of version 2 */
    static const struct {
        const char *name;
        uint64_t from;
        uint32_t k;
        int f, l, reserved;
    } v2[] = {
        { "meta-v2-valid", 2, 1, 2, 1, 0 },        { "meta-v2-long-rounds", 1, 3, 3, 2, 0 },
        { "meta-v2-from-0", 0, 1, 2, 1, 0 },       { "meta-v2-from-above-lsn", 9, 1, 2, 1, 0 },
        { "meta-v2-k-0", 1, 0, 2, 1, 0 },          { "meta-v2-fanout-1", 1, 1, 1, 1, 0 },
        { "meta-v2-fanout-65", 1, 1, 65, 1, 0 },   { "meta-v2-levels-7", 1, 1, 2, 7, 0 },
        { "meta-v2-reserved", 1, 1, 2, 1, 1 },
    };
    for (size_t i = 0; i < sizeof v2 / sizeof *v2; i++) {
        uint8_t b[64] = { 0 };
        m = valid_meta(6);
        m.version = 2;
        meta_bytes(b, &m);
        put(b + 40, v2[i].from, 8);
        put(b + 48, v2[i].k, 4);
        b[52] = (uint8_t)v2[i].f;
        b[53] = (uint8_t)v2[i].l;
        b[54] = (uint8_t)v2[i].reserved;
        put(b + 56, XXH3_64bits(b, 56), 8);
        head(META, 8, 0, 0, 0xFF);
        bytes(b, 64);
        emit(v2[i].name);
    }

    /* ---- checkpoint mode: "CK" [schedule] [plant] ctl shape mask [bytes] */
    static const struct {
        const char *name;
        int sched, plant, ctl, shape, mask;
        size_t n;
        uint8_t patch[24];
    } ck[] = {
        { "ck-as-written", 0x00, 0xFF, 0, 7, 0xFF, 0, { 0 } },
        { "ck-c0-mid-k2", 0x31, 0xFF, 0, 7, 0xFB, 0, { 0 } },
        { "ck-levels-2-f3", 0x2C, 0xFF, VID_FF, 7, 0xFF, 0, { 0 } },
        { "ck-patch-count", 0x00, 2, SEAL_ENTRY, 7, 0xFF, 22, { [20] = 1 } },
        { "ck-patch-lsn", 0x01, 3, SEAL_ENTRY, 7, 0xFF, 12, { [10] = 0 } },
        { "ck-patch-width", 0x04, 1, SEAL_ENTRY, 5, 0x3F, 23, { [22] = 0x20 } },
        { "ck-patch-level", 0x08, 0, SEAL_ENTRY, 7, 0xFF, 7, { [6] = 1 } },
        { "ck-patch-unsealed", 0x00, 4, 0, 7, 0xFF, 12, { [11] = 0x80 } },
        { "ck-delete", 0x00, 0x81, 0, 7, 0xFF, 0, { 0 } },
        { "ck-built-map", 0x05, 2, SEAL_META, 6, 0x7F, 9, { 4, 4, 0, 1, 0, 1, 2, 3, 9 } },
        { "ck-built-map-k1", 0x00, 5, SEAL_META, 7, 0xFF, 8, { 3, 3, 2, 1, 1, 2, 7, 0 } },
        { "ck-pruned", 0x12, 0xFF, 0, 7 | 3 << 6, 0xFF, 0, { 0 } },
    };
    for (size_t i = 0; i < sizeof ck / sizeof *ck; i++) {
        byte('C');
        byte('K');
        byte(ck[i].sched);
        byte(ck[i].plant);
        byte(ck[i].ctl);
        byte(ck[i].shape);
        byte(ck[i].mask);
        bytes(ck[i].patch, ck[i].n);
        emit(ck[i].name);
    }

    /* ---- both */
    n = set_bytes(e, sizeof e, small, 2);
    m = valid_meta(6);
    both_seed("both-valid", SEAL_META | SEAL_ENTRY | SID(2), 6, 3, 0x37, &m, e, n);
    m = valid_meta(2);
    both_seed("both-entry-above-meta", SID(2), 6, 4, 0x03, &m, e, n);
    m = valid_meta(6);
    m.version = 2;
    both_seed("both-meta-version-2", SID(5), 6, 3, 0x3F, &m, e, n);
    m = valid_meta(7);
    m.keep_from = 7;
    both_seed("both-vid-ff-pruned", VID_FF | SID(3), 7, 6, 0x7F, &m, e, n);
    return 0;
}
