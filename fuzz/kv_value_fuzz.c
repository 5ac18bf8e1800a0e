/* Fuzz target: the volume index's KV values, one per input: a volume meta,
 * a commit entry, or both, planted in an in-memory store and read back
 * through every public call that decodes them.
 *
 * fuzz/volume_index_fuzz.c plants bad values between the operations of a
 * program; this target is the plain decoder target, so that coverage
 * feedback works straight on the meta and commit-entry decoders.
 *
 * Input:
 *
 *   byte 0   ctl   bits 0-1  what the bytes are: 0 the volume's meta;
 *                            1 a commit entry (the meta is valid, with an
 *                            LSN >= the entry's); 2 and 3 both: a meta,
 *                            then an entry
 *                  bit 2     reseal the meta: write XXH3-64 of its bytes
 *                            0..40 at 40 (when it has 48 bytes or more)
 *                  bit 3     reseal the entry's envelope: its length field
 *                            and the XXH3-64 of its payload (24 bytes or more)
 *                  bit 4     the volume id: all 0xFF (the end-of-prefix
 *                            carry), its neighbour volume sorting just
 *                            before it; otherwise one whose neighbour sorts
 *                            just after it
 *                  bits 5-7  the entry's sid (its last byte; 1..3 are also
 *                            sids of the background history)
 *   byte 1   shape bits 0-2  L - 1: the background history has commits
 *                            1..L, and a valid meta says LSN L
 *                  bits 3-5  the entry's LSN: k = 1 + bits % L
 *                  bits 6-7  the valid meta's keep_from: 0, 1, k or L
 *   byte 2   mask  bit j - 1 set: background commit j has an entry (its
 *                  sid's last byte is 1 + j % 3); clear: an empty commit
 *   then     ctl 0:    the meta's bytes (the rest of the input)
 *            ctl 1:    the entry's bytes
 *            ctl 2, 3: one length byte n, n meta bytes (fewer if the input
 *                      ends), then the entry's bytes
 *
 * The fuzzed entry lives at (k, sid) and replaces a background entry with
 * that key. A neighbour volume with a valid meta and two entries shares the
 * store, so scans that run past the volume's keys show.
 *
 * The target reads the bytes itself, by docs/FORMAT.md and without the
 * library's decoders (the meta layout, the OffsetSet envelope and portable
 * payload), and so knows what each call must answer: whether it fails and
 * with which error (an unknown meta version is EVERSION whatever the
 * length, since a later version may be longer), which callbacks it makes
 * with which sids, LSNs and offsets, and what the store holds afterwards.
 * It drives segidx_volume_get, segidx_volume_list, segidx_volume_commits,
 * segidx_volume_find_segments at a spread of LSNs (with a query of 0..15,
 * 65535, 65536, 2^31, UINT32_MAX and the entry's smallest and largest
 * offset; once stopped by its callback), segidx_volume_sync, and, each on a
 * fresh store, segidx_volume_prune / _report at a spread of keep_from
 * values, segidx_volume_commit of the next LSN (and of a taken one), and a
 * sync whose pull commits. A failed find must leave its query as it was;
 * a failed prune or commit must leave the store byte for byte as it was
 * (the whole store is dumped with the vtable's scan before and after);
 * a prune must keep every read at or after keep_from as it was and rewrite
 * entries as FORMAT.md says. Any broken invariant calls abort().
 *
 * Builds as a libFuzzer target and, with fuzz/replay.c, as a plain program
 * that replays a corpus.
 */
#include <segidx.h>

#include "fuzz_check.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define META_KEY_LEN 24
#define ENTRY_KEY_LEN 49
#define META_BYTES 48
#define ENVELOPE_BYTES 24
#define MAX_HISTORY 8
#define MAX_ENTRIES (MAX_HISTORY + 1)
#define MAX_KEYS 32
#define MAX_LSNS 24
#define STOPPED 0x5eed
/* Not a return code of the library: "the meta's own error". */
#define META_FAIL 1

/* ------------------------------------------------------------ bytes */

static void *must_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    return p;
}

static void add(segidx_offset_set *s, uint32_t o)
{
    CHECK(segidx_offset_set_add(s, o) == SEGIDX_OK);
}

/* [lo, last], last included: UINT32_MAX cannot end a half-open range. */
static void add_closed(segidx_offset_set *s, uint32_t lo, uint32_t last)
{
    if (last == UINT32_MAX) {
        CHECK(segidx_offset_set_add_range(s, lo, last) == SEGIDX_OK);
        add(s, UINT32_MAX);
    } else {
        CHECK(segidx_offset_set_add_range(s, lo, last + 1) == SEGIDX_OK);
    }
}

static segidx_sid make_sid(uint8_t last)
{
    segidx_sid sid;
    memset(sid.bytes, 0, sizeof sid.bytes);
    sid.bytes[15] = last;
    return sid;
}

static bool sid_eq(const segidx_sid *a, const segidx_sid *b)
{
    return memcmp(a->bytes, b->bytes, 16) == 0;
}

static void meta_key(uint8_t key[META_KEY_LEN], const segidx_vid *vid)
{
    memcpy(key, "volumes/", 8);
    memcpy(key + 8, vid->bytes, 16);
}

static void entry_key(uint8_t key[ENTRY_KEY_LEN], const segidx_vid *vid, uint64_t lsn,
                      const segidx_sid *sid)
{
    memcpy(key, "segments/", 9);
    memcpy(key + 9, vid->bytes, 16);
    put_be64(key + 25, lsn);
    memcpy(key + 33, sid->bytes, 16);
}

/* ------------------------------------------------------ spec reading: meta */

struct dmeta {
    uint64_t lsn, last_commit, keep_from;
    uint32_t last_offset;
    bool written;
};

/* What reading these bytes as a volume meta must give. */
static int spec_meta(const uint8_t *p, size_t n, struct dmeta *m)
{
    if (n < 4 || memcmp(p, "SXVM", 4) != 0)
        return SEGIDX_ECORRUPT;
    if (n < 6)
        return SEGIDX_ECORRUPT;
    if (get16(p + 4) != 1)
        return SEGIDX_EVERSION;
    if (n != META_BYTES)
        return SEGIDX_ECORRUPT;
    uint32_t flags = get16(p + 6);
    m->written = flags & 1;
    m->lsn = get64(p + 8);
    m->last_offset = get32(p + 16);
    m->last_commit = get64(p + 24);
    m->keep_from = get64(p + 32);
    if ((flags & ~1u) || get32(p + 20) != 0 || get64(p + 40) != XXH3_64bits(p, 40))
        return SEGIDX_ECORRUPT;
    if (m->lsn == 0 || m->keep_from > m->lsn || (!m->written && m->last_offset != 0))
        return SEGIDX_ECORRUPT;
    return SEGIDX_OK;
}

static void encode_meta(uint8_t out[META_BYTES], const struct dmeta *m)
{
    memset(out, 0, META_BYTES);
    memcpy(out, "SXVM", 4);
    put_le(out + 4, 1, 2);
    put_le(out + 6, m->written ? 1 : 0, 2);
    put_le(out + 8, m->lsn, 8);
    put_le(out + 16, m->last_offset, 4);
    put_le(out + 24, m->last_commit, 8);
    put_le(out + 32, m->keep_from, 8);
    put_le(out + 40, XXH3_64bits(out, 40), 8);
}

/* ------------------------------------------------- spec reading: OffsetSet */

struct cursor {
    const uint8_t *p;
    size_t pos, len;
};

static const uint8_t *take(struct cursor *c, size_t n)
{
    if (n > c->len - c->pos)
        return NULL;
    const uint8_t *q = c->p + c->pos;
    c->pos += n;
    return q;
}

static bool bit(const uint8_t *bits, uint32_t i)
{
    return bits[i / 8] >> (i % 8) & 1;
}

/* One run container at `base`, per FORMAT.md 4: r >= 1 runs, each apart
 * from the one before, inside the container, adding up to `card`. */
static bool spec_runs(struct cursor *c, uint32_t base, uint32_t card, segidx_offset_set *s)
{
    const uint8_t *q = take(c, 2);
    if (!q)
        return false;
    uint32_t r = get16(q);
    const uint8_t *runs = take(c, 4 * (size_t)r);
    if (!runs || r == 0)
        return false;
    uint32_t sum = 0;
    int64_t prev_last = -2;
    for (uint32_t j = 0; j < r; j++) {
        uint32_t start = get16(runs + 4 * j), more = get16(runs + 4 * j + 2);
        if ((int64_t)start <= prev_last + 1 || start + more > 0xFFFF)
            return false;
        add_closed(s, base + start, base + start + more);
        prev_last = start + more;
        sum += more + 1;
    }
    return sum == card;
}

static bool spec_array(struct cursor *c, uint32_t base, uint32_t card, segidx_offset_set *s)
{
    const uint8_t *a = take(c, 2 * (size_t)card);
    if (!a)
        return false;
    for (uint32_t j = 0; j < card; j++) {
        if (j > 0 && get16(a + 2 * j) <= get16(a + 2 * (j - 1)))
            return false;
        add(s, base + get16(a + 2 * j));
    }
    return true;
}

static bool spec_bitset(struct cursor *c, uint32_t base, uint32_t card, segidx_offset_set *s)
{
    const uint8_t *b = take(c, 8192);
    if (!b)
        return false;
    uint32_t seen = 0;
    for (uint32_t j = 0; j < 65536; j++)
        if (bit(b, j)) {
            add(s, base + j);
            seen++;
        }
    return seen == card;
}

/* The portable payload, FORMAT.md steps 1 to 5. */
static bool spec_payload(const uint8_t *p, size_t len, segidx_offset_set *s)
{
    struct cursor c = { p, 0, len };
    const uint8_t *q = take(&c, 4);
    if (!q)
        return false;
    uint32_t cookie = get32(q), size;
    const uint8_t *flags = NULL;
    if ((cookie & 0xFFFF) == 12347) {
        size = (cookie >> 16) + 1;
        if (!(flags = take(&c, (size + 7) / 8)))
            return false;
        bool any = false;
        for (uint32_t i = 0; i < (size + 7) / 8 * 8; i++) {
            if (i >= size && bit(flags, i))
                return false;
            any |= bit(flags, i);
        }
        if (!any)
            return false;
    } else if (cookie == 12346) {
        if (!(q = take(&c, 4)) || (size = get32(q)) > 65536)
            return false;
    } else {
        return false;
    }
    const uint8_t *desc = take(&c, 4 * (size_t)size);
    if (!desc)
        return false;
    const uint8_t *starts = NULL;
    if ((!flags || size >= 4) && !(starts = take(&c, 4 * (size_t)size)))
        return false;
    for (uint32_t i = 0; i < size; i++) {
        uint32_t key = get16(desc + 4 * i), card = get16(desc + 4 * i + 2) + 1;
        if (i > 0 && key <= get16(desc + 4 * (i - 1)))
            return false;
        if (starts && get32(starts + 4 * i) != c.pos)
            return false;
        bool ok = flags && bit(flags, i) ? spec_runs(&c, key << 16, card, s)
                  : card <= 4096         ? spec_array(&c, key << 16, card, s)
                                         : spec_bitset(&c, key << 16, card, s);
        if (!ok)
            return false;
    }
    return c.pos == len;
}

/* What reading these bytes as a commit entry's value must give (the key's
 * checks aside): OK with the offsets in *out, or the error. */
static int spec_entry_value(const uint8_t *p, size_t n, segidx_offset_set **out)
{
    *out = NULL;
    if (n < ENVELOPE_BYTES || memcmp(p, "SXOS", 4) != 0)
        return SEGIDX_ECORRUPT;
    if (get16(p + 4) != 1)
        return SEGIDX_EVERSION;
    if (get16(p + 6) != 0 || get32(p + 12) != 0 || get32(p + 8) != n - ENVELOPE_BYTES ||
        get64(p + 16) != XXH3_64bits(p + ENVELOPE_BYTES, n - ENVELOPE_BYTES))
        return SEGIDX_ECORRUPT;
    segidx_offset_set *s = new_set();
    if (!spec_payload(p + ENVELOPE_BYTES, n - ENVELOPE_BYTES, s) ||
        segidx_offset_set_is_empty(s)) {
        segidx_offset_set_free(s);
        return SEGIDX_ECORRUPT;
    }
    *out = s;
    return SEGIDX_OK;
}

static void seal_envelope(uint8_t *p, size_t n)
{
    put_le(p + 8, n - ENVELOPE_BYTES, 4);
    put_le(p + 16, XXH3_64bits(p + ENVELOPE_BYTES, n - ENVELOPE_BYTES), 8);
}

/* ------------------------------------------------------------ the world */

struct ventry {
    uint64_t lsn;
    segidx_sid sid;
    const uint8_t *val;
    size_t vlen;
    int value_rc;             /* what the value alone reads as */
    segidx_offset_set *set;   /* its offsets when value_rc is OK; owned */
};

/* Everything one input plants, and what the target read from it. */
struct world {
    segidx_vid vid, other;
    const uint8_t *meta;
    size_t meta_len;
    int meta_rc;
    struct dmeta m;
    struct ventry e[MAX_ENTRIES]; /* the volume's entries, in key order */
    size_t n;
    uint64_t k;                   /* the fuzzed entry's LSN (or where it would be) */
    bool overlap;                 /* entries of one LSN share offsets */
    segidx_offset_set *query;
    uint8_t meta_buf[META_BYTES];
    uint8_t *meta_copy, *entry_copy;
    uint8_t *hist[MAX_HISTORY];
    size_t hist_len[MAX_HISTORY];
    uint8_t other_meta[META_BYTES];
    uint8_t *other_val[2];
    size_t other_len[2];
};

static const uint64_t other_lsn[2] = { 1, 2 };
static const uint8_t other_sid[2] = { 1, 4 };
static const struct dmeta other_m = { 2, 77, 0, 9, true };

/* What commit j of the background writes: overlapping small ranges, so
 * that newer commits shadow older ones, and now and then offsets in other
 * containers. */
static segidx_offset_set *history_set(unsigned j)
{
    segidx_offset_set *s = new_set();
    CHECK(segidx_offset_set_add_range(s, j - 1, j + 3) == SEGIDX_OK);
    if (j % 2 == 0)
        add(s, 65536 + j);
    if (j == 3)
        add(s, UINT32_MAX);
    if (j == 5)
        CHECK(segidx_offset_set_add_range(s, 0, 1) == SEGIDX_OK);
    if (j == 7)
        add(s, 1u << 31);
    return s;
}

static uint8_t *serialize(const segidx_offset_set *s, size_t *len)
{
    size_t n = segidx_offset_set_serialized_size(s);
    CHECK(n >= ENVELOPE_BYTES);
    uint8_t *buf = must_malloc(n);
    CHECK(segidx_offset_set_serialize(s, buf, n) == n);
    *len = n;
    return buf;
}

static int cmp_entry(const struct ventry *a, const struct ventry *b)
{
    if (a->lsn != b->lsn)
        return a->lsn < b->lsn ? -1 : 1;
    return memcmp(a->sid.bytes, b->sid.bytes, 16);
}

/* Put an entry in key order; one with the same key is replaced. */
static void world_put_entry(struct world *w, const struct ventry *e)
{
    size_t i = 0;
    while (i < w->n && cmp_entry(&w->e[i], e) < 0)
        i++;
    if (i < w->n && cmp_entry(&w->e[i], e) == 0) {
        segidx_offset_set_free(w->e[i].set);
    } else {
        CHECK(w->n < MAX_ENTRIES);
        memmove(&w->e[i + 1], &w->e[i], (w->n - i) * sizeof *w->e);
        w->n++;
    }
    w->e[i] = *e;
}

static void world_free(struct world *w)
{
    for (size_t i = 0; i < w->n; i++)
        segidx_offset_set_free(w->e[i].set);
    for (size_t j = 0; j < MAX_HISTORY; j++)
        free(w->hist[j]);
    free(w->other_val[0]);
    free(w->other_val[1]);
    free(w->meta_copy);
    free(w->entry_copy);
    segidx_offset_set_free(w->query);
}

static bool disjoint(const segidx_offset_set *a, const segidx_offset_set *b)
{
    segidx_offset_set *t = copy_set(a);
    segidx_offset_set *shared = cut_set(t, b);
    bool ok = segidx_offset_set_is_empty(shared);
    segidx_offset_set_free(shared);
    segidx_offset_set_free(t);
    return ok;
}

static int note_first(segidx_offset o, void *ctx)
{
    *(uint32_t *)ctx = o;
    return 1;
}

static int note_last(segidx_offset o, void *ctx)
{
    *(uint32_t *)ctx = o;
    return 0;
}

static void world_build(struct world *w, const uint8_t *data, size_t size)
{
    memset(w, 0, sizeof *w);
    uint8_t ctl = size > 0 ? data[0] : 0;
    uint8_t shape = size > 1 ? data[1] : 0;
    uint8_t mask = size > 2 ? data[2] : 0;
    const uint8_t *rest = size > 3 ? data + 3 : NULL;
    size_t rest_len = size > 3 ? size - 3 : 0;
    unsigned mode = ctl & 3;

    if (ctl & 0x10) {
        memset(w->vid.bytes, 0xFF, 16);
        w->other = w->vid;
        w->other.bytes[15] = 0xFE;
    } else {
        memcpy(w->vid.bytes, "volume-A\0\0\0\0\0\0\0\1", 16);
        w->other = w->vid;
        w->other.bytes[15] = 2;
    }
    unsigned hist_lsn = 1 + (shape & 7);
    w->k = 1 + ((shape >> 3) & 7) % hist_lsn;

    /* The meta: generated and valid, or the input's bytes. */
    const uint8_t *meta_in = NULL, *entry_in = NULL;
    size_t meta_in_len = 0, entry_in_len = 0;
    if (mode == 0) {
        meta_in = rest, meta_in_len = rest_len;
    } else if (mode == 1) {
        entry_in = rest, entry_in_len = rest_len;
    } else if (rest_len > 0) {
        meta_in_len = rest[0] < rest_len - 1 ? rest[0] : rest_len - 1;
        meta_in = rest + 1;
        entry_in = rest + 1 + meta_in_len;
        entry_in_len = rest_len - 1 - meta_in_len;
    }
    if (mode == 1) {
        unsigned pick = shape >> 6;
        struct dmeta m = { hist_lsn, 1000 + hist_lsn, 0, 65536 + hist_lsn, true };
        m.keep_from = pick == 0 ? 0 : pick == 1 ? 1 : pick == 2 ? w->k : hist_lsn;
        encode_meta(w->meta_buf, &m);
        w->meta = w->meta_buf;
        w->meta_len = META_BYTES;
    } else {
        w->meta_copy = must_malloc(meta_in_len);
        if (meta_in_len)
            memcpy(w->meta_copy, meta_in, meta_in_len);
        if ((ctl & 4) && meta_in_len >= META_BYTES)
            put_le(w->meta_copy + 40, XXH3_64bits(w->meta_copy, 40), 8);
        w->meta = w->meta_copy;
        w->meta_len = meta_in_len;
    }
    w->meta_rc = spec_meta(w->meta, w->meta_len, &w->m);

    /* The background history, then the fuzzed entry over it. */
    for (unsigned j = 1; j <= hist_lsn; j++) {
        if (!(mask >> (j - 1) & 1))
            continue;
        segidx_offset_set *s = history_set(j);
        w->hist[j - 1] = serialize(s, &w->hist_len[j - 1]);
        struct ventry e = { j, make_sid((uint8_t)(1 + j % 3)), w->hist[j - 1],
                            w->hist_len[j - 1], SEGIDX_OK, s };
        world_put_entry(w, &e);
    }
    if (mode != 0) {
        w->entry_copy = must_malloc(entry_in_len);
        if (entry_in_len)
            memcpy(w->entry_copy, entry_in, entry_in_len);
        if ((ctl & 8) && entry_in_len >= ENVELOPE_BYTES)
            seal_envelope(w->entry_copy, entry_in_len);
        struct ventry e = { w->k, make_sid(ctl >> 5), w->entry_copy, entry_in_len, 0, NULL };
        e.value_rc = spec_entry_value(e.val, e.vlen, &e.set);
        world_put_entry(w, &e);
    }
    for (size_t i = 0; i < w->n; i++)
        for (size_t j = i + 1; j < w->n && w->e[j].lsn == w->e[i].lsn; j++)
            if (w->e[i].set && w->e[j].set && !disjoint(w->e[i].set, w->e[j].set))
                w->overlap = true;

    /* The neighbour: always valid. */
    encode_meta(w->other_meta, &other_m);
    for (int i = 0; i < 2; i++) {
        segidx_offset_set *s = new_set();
        CHECK(segidx_offset_set_add_range(s, i ? 5 : 0, i ? 6 : 10) == SEGIDX_OK);
        w->other_val[i] = serialize(s, &w->other_len[i]);
        segidx_offset_set_free(s);
    }

    /* The query: the low offsets every history touches, the container
     * edges, and the fuzzed entry's ends, so that it answers when reached. */
    w->query = new_set();
    CHECK(segidx_offset_set_add_range(w->query, 0, 16) == SEGIDX_OK);
    add(w->query, 65535);
    add(w->query, 65536);
    add(w->query, 1u << 31);
    add(w->query, UINT32_MAX);
    for (size_t i = 0; i < w->n; i++)
        if (w->e[i].set && w->e[i].val == w->entry_copy) {
            uint32_t lo = 0, hi = 0;
            segidx_offset_set_iterate(w->e[i].set, note_first, &lo);
            add(w->query, lo);
            /* Walk to the last only when that stays cheap. */
            if (segidx_offset_set_cardinality(w->e[i].set) <= 4096) {
                segidx_offset_set_iterate(w->e[i].set, note_last, &hi);
                add(w->query, hi);
            }
        }
}

/* What reading entry `e` must give, its key's LSN checked against the
 * meta's (only meaningful once the meta read fine). */
static int entry_rc(const struct world *w, const struct ventry *e)
{
    if (e->lsn == 0 || e->lsn > w->m.lsn)
        return SEGIDX_ECORRUPT;
    return e->value_rc;
}

/* Whether `got` is what the target expected: META_FAIL stands for the
 * meta's own error. */
static bool rc_ok(const struct world *w, int got, int want)
{
    if (want != META_FAIL)
        return got == want;
    return got == w->meta_rc;
}

static segidx_volume_index *world_open(const struct world *w, segidx_kv *kv)
{
    uint8_t keys[4 + MAX_ENTRIES][ENTRY_KEY_LEN];
    segidx_kv_op ops[4 + MAX_ENTRIES];
    size_t n = 0;
    meta_key(keys[n], &w->vid);
    ops[n] = (segidx_kv_op){ SEGIDX_KV_PUT, keys[n], META_KEY_LEN, w->meta, w->meta_len };
    n++;
    for (size_t i = 0; i < w->n; i++, n++) {
        entry_key(keys[n], &w->vid, w->e[i].lsn, &w->e[i].sid);
        ops[n] = (segidx_kv_op){ SEGIDX_KV_PUT, keys[n], ENTRY_KEY_LEN, w->e[i].val,
                                 w->e[i].vlen };
    }
    meta_key(keys[n], &w->other);
    ops[n] = (segidx_kv_op){ SEGIDX_KV_PUT, keys[n], META_KEY_LEN, w->other_meta, META_BYTES };
    n++;
    for (int i = 0; i < 2; i++, n++) {
        segidx_sid sid = make_sid(other_sid[i]);
        entry_key(keys[n], &w->other, other_lsn[i], &sid);
        ops[n] = (segidx_kv_op){ SEGIDX_KV_PUT, keys[n], ENTRY_KEY_LEN, w->other_val[i],
                                 w->other_len[i] };
    }
    CHECK(segidx_kv_mem_open(kv) == SEGIDX_OK);
    CHECK(kv->vt->write(kv->self, ops, n) == SEGIDX_OK);
    segidx_volume_index *vi;
    CHECK(segidx_volume_index_open(*kv, &vi) == SEGIDX_OK);
    return vi;
}

/* ------------------------------------------------------------ snapshots */

struct pair {
    uint8_t *key, *val;
    size_t klen, vlen;
};

struct snapshot {
    struct pair p[MAX_KEYS];
    size_t n;
};

static int snapshot_visit(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct snapshot *s = ctx;
    CHECK(s->n < MAX_KEYS);
    struct pair *p = &s->p[s->n++];
    p->key = must_malloc(klen);
    p->val = must_malloc(vlen);
    memcpy(p->key, key, klen);
    if (vlen)
        memcpy(p->val, val, vlen);
    p->klen = klen;
    p->vlen = vlen;
    return 0;
}

static void snapshot_take(segidx_kv kv, struct snapshot *s)
{
    s->n = 0;
    CHECK(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, snapshot_visit, s) == 0);
}

static void snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->p[i].key);
        free(s->p[i].val);
    }
    s->n = 0;
}

static bool same_bytes(const void *a, size_t an, const void *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static bool snapshots_equal(const struct snapshot *a, const struct snapshot *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_bytes(a->p[i].key, a->p[i].klen, b->p[i].key, b->p[i].klen) ||
            !same_bytes(a->p[i].val, a->p[i].vlen, b->p[i].val, b->p[i].vlen))
            return false;
    return true;
}

static const struct pair *snapshot_find(const struct snapshot *s, const uint8_t *key, size_t klen)
{
    for (size_t i = 0; i < s->n; i++)
        if (same_bytes(s->p[i].key, s->p[i].klen, key, klen))
            return &s->p[i];
    return NULL;
}

/* Whether `p` is a commit entry key of volume `vid`. */
static bool is_entry_of(const struct pair *p, const segidx_vid *vid)
{
    return p->klen == ENTRY_KEY_LEN && memcmp(p->key, "segments/", 9) == 0 &&
           memcmp(p->key + 9, vid->bytes, 16) == 0;
}

/* ------------------------------------------------------------ find */

struct call {
    uint64_t lsn;
    segidx_sid sid;
    segidx_offset_set *cut; /* owned */
};

struct calls {
    struct call c[MAX_ENTRIES];
    size_t n;
    size_t stop_after;      /* 0: never stop */
    const segidx_offset_set *query;
};

static void calls_free(struct calls *c)
{
    for (size_t i = 0; i < c->n; i++)
        segidx_offset_set_free(c->c[i].cut);
    c->n = 0;
}

static bool calls_equal(const struct calls *a, const struct calls *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->c[i].lsn != b->c[i].lsn || !sid_eq(&a->c[i].sid, &b->c[i].sid) ||
            !segidx_offset_set_equals(a->c[i].cut, b->c[i].cut))
            return false;
    return true;
}

static int record_find(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    struct calls *c = ctx;
    CHECK(sid != NULL && cut != NULL);
    CHECK(c->n < MAX_ENTRIES);
    CHECK(!segidx_offset_set_is_empty(cut));
    CHECK(disjoint(cut, c->query)); /* already taken out of the query */
    c->c[c->n++] = (struct call){ lsn, *sid, copy_set(cut) };
    return c->stop_after && c->n == c->stop_after ? STOPPED : 0;
}

/* The documented walk: newest first from min(lsn, the meta's LSN), each
 * entry read as it is reached, until the query is empty. `keep_from` stands
 * for the meta's (a prune changes it). The query left is in *left. */
static int expect_find(const struct world *w, uint64_t keep_from, uint64_t lsn,
                       const segidx_offset_set *query, struct calls *out,
                       segidx_offset_set **left)
{
    *left = copy_set(query);
    out->n = 0;
    if (w->meta_rc)
        return META_FAIL;
    if (lsn < keep_from)
        return SEGIDX_ERANGE;
    uint64_t at = lsn < w->m.lsn ? lsn : w->m.lsn;
    if (at == 0 || segidx_offset_set_is_empty(query))
        return SEGIDX_OK;
    /* The whole walk first; the calls only once it is through. */
    for (size_t i = w->n; i-- > 0;) {
        const struct ventry *e = &w->e[i];
        if (e->lsn > at)
            continue;
        int rc = entry_rc(w, e);
        if (rc) {
            segidx_offset_set_free(*left);
            *left = copy_set(query);
            calls_free(out);
            return rc;
        }
        segidx_offset_set *cut = cut_set(*left, e->set);
        if (segidx_offset_set_is_empty(cut))
            segidx_offset_set_free(cut);
        else
            out->c[out->n++] = (struct call){ e->lsn, e->sid, cut };
        if (segidx_offset_set_is_empty(*left))
            break;
    }
    if (out->stop_after && out->n >= out->stop_after) {
        while (out->n > out->stop_after)
            segidx_offset_set_free(out->c[--out->n].cut);
        return STOPPED;
    }
    return SEGIDX_OK;
}

static void check_find(const struct world *w, segidx_volume_index *vi, uint64_t keep_from,
                       uint64_t lsn, const segidx_offset_set *q, size_t stop_after)
{
    struct calls *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    CHECK(want != NULL && got != NULL);
    want->stop_after = got->stop_after = stop_after;
    segidx_offset_set *left;
    int want_rc = expect_find(w, keep_from, lsn, q, want, &left);
    segidx_offset_set *query = copy_set(q);
    got->query = query;
    int rc = segidx_volume_find_segments(vi, &w->vid, lsn, query, record_find, got);
    CHECK(rc_ok(w, rc, want_rc));
    CHECK(calls_equal(want, got));
    if (rc != SEGIDX_OK && rc != STOPPED)
        CHECK(segidx_offset_set_equals(query, q));
    CHECK(segidx_offset_set_equals(query, left));
    segidx_offset_set_free(query);
    segidx_offset_set_free(left);
    calls_free(want);
    calls_free(got);
    free(want);
    free(got);
}

static size_t add_lsn(uint64_t *lsns, size_t n, uint64_t l)
{
    for (size_t i = 0; i < n; i++)
        if (lsns[i] == l)
            return n;
    CHECK(n < MAX_LSNS);
    lsns[n] = l;
    return n + 1;
}

/* LSNs around everything that matters: the history, the entry, the meta's
 * LSN and prune point, and the ends of u64. */
static size_t find_lsns(const struct world *w, uint64_t keep_from, uint64_t *lsns)
{
    size_t n = 0;
    for (uint64_t l = 0; l <= MAX_HISTORY + 1; l++)
        n = add_lsn(lsns, n, l);
    if (!w->meta_rc) {
        n = add_lsn(lsns, n, w->m.lsn - 1);
        n = add_lsn(lsns, n, w->m.lsn);
        n = add_lsn(lsns, n, w->m.lsn + 1); /* 0 when the LSN is UINT64_MAX */
        n = add_lsn(lsns, n, keep_from - 1);
        n = add_lsn(lsns, n, keep_from);
    }
    n = add_lsn(lsns, n, UINT64_MAX - 1);
    return add_lsn(lsns, n, UINT64_MAX);
}

static void check_finds(const struct world *w, segidx_volume_index *vi, uint64_t keep_from)
{
    uint64_t lsns[MAX_LSNS];
    size_t n = find_lsns(w, keep_from, lsns);
    for (size_t i = 0; i < n; i++)
        check_find(w, vi, keep_from, lsns[i], w->query, 0);
    check_find(w, vi, keep_from, UINT64_MAX, w->query, 1);
    segidx_offset_set *empty = new_set();
    check_find(w, vi, keep_from, UINT64_MAX, empty, 0);
    segidx_offset_set_free(empty);
}

/* After a prune, fewer: the prune point, the entry's LSN and the top are
 * where a wrong rewrite would show, and the prunes are many. */
static void check_finds_after_prune(const struct world *w, segidx_volume_index *vi,
                                    uint64_t keep_from)
{
    uint64_t lsns[MAX_LSNS];
    size_t n = 0;
    n = add_lsn(lsns, n, keep_from - 1);
    n = add_lsn(lsns, n, keep_from);
    n = add_lsn(lsns, n, w->k);
    n = add_lsn(lsns, n, w->k + 1);
    n = add_lsn(lsns, n, UINT64_MAX);
    for (size_t i = 0; i < n; i++)
        check_find(w, vi, keep_from, lsns[i], w->query, 0);
}

/* ------------------------------------------------------------ reads */

static void check_get(const struct world *w, segidx_volume_index *vi, const struct dmeta *m)
{
    segidx_volume_meta got, before;
    memset(&got, 0xA5, sizeof got);
    before = got;
    int rc = segidx_volume_get(vi, &w->vid, &got);
    CHECK(rc_ok(w, rc, w->meta_rc ? META_FAIL : SEGIDX_OK));
    if (rc) {
        CHECK(memcmp(&got, &before, sizeof got) == 0);
        return;
    }
    CHECK(got.lsn == m->lsn && got.last_offset == m->last_offset &&
          got.last_commit == m->last_commit && got.keep_from == m->keep_from);
}

struct list_ctx {
    const struct world *w;
    size_t calls;
};

static int list_cb(void *ctx, const segidx_vid *vid, const segidx_volume_meta *meta)
{
    struct list_ctx *l = ctx;
    const struct world *w = l->w;
    CHECK(vid != NULL && meta != NULL);
    bool ff = w->vid.bytes[0] == 0xFF; /* then the neighbour sorts first */
    bool is_v = (l->calls == 0) != ff;
    l->calls++;
    CHECK(l->calls <= 2);
    if (is_v) {
        CHECK(!w->meta_rc);
        CHECK(!memcmp(vid->bytes, w->vid.bytes, 16));
        CHECK(meta->lsn == w->m.lsn && meta->last_offset == w->m.last_offset &&
              meta->last_commit == w->m.last_commit && meta->keep_from == w->m.keep_from);
    } else {
        CHECK(!memcmp(vid->bytes, w->other.bytes, 16));
        CHECK(meta->lsn == other_m.lsn && meta->last_offset == other_m.last_offset &&
              meta->last_commit == other_m.last_commit && meta->keep_from == 0);
    }
    return 0;
}

static void check_list(const struct world *w, segidx_volume_index *vi)
{
    struct list_ctx l = { w, 0 };
    int rc = segidx_volume_list(vi, list_cb, &l);
    bool ff = w->vid.bytes[0] == 0xFF;
    if (w->meta_rc) {
        CHECK(rc_ok(w, rc, META_FAIL));
        CHECK(l.calls == (ff ? 1u : 0u));
    } else {
        CHECK(rc == SEGIDX_OK && l.calls == 2);
    }
}

struct commits_ctx {
    const struct ventry *want; /* `n` entries that read fine, in key order */
    size_t n, calls;
};

static int commits_cb(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                      const segidx_offset_set *offsets)
{
    struct commits_ctx *c = ctx;
    CHECK(sid != NULL && offsets != NULL);
    CHECK(c->calls < c->n);
    const struct ventry *e = &c->want[c->calls++];
    CHECK(e->lsn == lsn && sid_eq(&e->sid, sid));
    CHECK(segidx_offset_set_equals(e->set, offsets));
    return 0;
}

/* Commits reads every entry of the volume, oldest first, and stops at the
 * first that does not read. */
static void check_commits(const struct world *w, segidx_volume_index *vi)
{
    struct commits_ctx c = { w->e, 0, 0 };
    int want = SEGIDX_OK;
    if (w->meta_rc) {
        want = META_FAIL;
    } else {
        /* Up to the meta's LSN: entries above it are not walked. */
        while (c.n < w->n && w->e[c.n].lsn <= w->m.lsn && !(want = entry_rc(w, &w->e[c.n])))
            c.n++;
    }
    int rc = segidx_volume_commits(vi, &w->vid, commits_cb, &c);
    CHECK(rc_ok(w, rc, want));
    CHECK(c.calls == c.n);
}

static int pull_never(void *ctx, segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn have)
{
    (void)ctx, (void)vi, (void)vid, (void)have;
    fuzz_fail(__FILE__, __LINE__, "sync pulled when it did not need to");
    return 0;
}

static void check_reads(const struct world *w)
{
    segidx_kv kv;
    segidx_volume_index *vi = world_open(w, &kv);
    struct snapshot *before = calloc(1, sizeof *before), *after = calloc(1, sizeof *after);
    CHECK(before != NULL && after != NULL);
    snapshot_take(kv, before);

    check_get(w, vi, &w->m);
    check_list(w, vi);
    check_commits(w, vi);
    check_finds(w, vi, w->m.keep_from);
    /* The LSN it has, or any when the meta does not read: no pull. */
    int rc = segidx_volume_sync(vi, &w->vid, w->meta_rc ? 1 : w->m.lsn, pull_never, NULL);
    CHECK(rc_ok(w, rc, w->meta_rc ? META_FAIL : SEGIDX_OK));

    snapshot_take(kv, after);
    CHECK(snapshots_equal(before, after)); /* reads write nothing */
    snapshot_free(before);
    snapshot_free(after);
    free(before);
    free(after);
    segidx_volume_index_close(vi);
}

/* ------------------------------------------------------------ prune */

struct report_ctx {
    segidx_sid sid[MAX_ENTRIES];
    size_t n;
};

static void report_cb(void *ctx, const segidx_sid *sid)
{
    struct report_ctx *r = ctx;
    CHECK(sid != NULL);
    for (size_t i = 0; i < r->n; i++)
        CHECK(!sid_eq(&r->sid[i], sid)); /* once each */
    CHECK(r->n < MAX_ENTRIES);
    r->sid[r->n++] = *sid;
}

/* Whether an entry of the catalog (at or below the meta's LSN: the walks
 * read no entry above it) names `sid`. */
static bool snapshot_names_sid(const struct snapshot *s, const struct world *w,
                               const segidx_sid *sid)
{
    for (size_t i = 0; i < s->n; i++)
        if (is_entry_of(&s->p[i], &w->vid) && get_be64(s->p[i].key + 25) <= w->m.lsn &&
            memcmp(s->p[i].key + 33, sid->bytes, 16) == 0)
            return true;
    return false;
}

/* What FORMAT.md says entry `e` holds after a prune to keep_from: below
 * keep_from, what no commit in (its lsn, keep_from] rewrote. NULL: gone. */
static segidx_offset_set *pruned_offsets(const struct world *w, const struct ventry *e,
                                         uint64_t keep_from)
{
    segidx_offset_set *s = copy_set(e->set);
    if (e->lsn < keep_from)
        for (size_t i = 0; i < w->n; i++)
            if (w->e[i].lsn > e->lsn && w->e[i].lsn <= keep_from)
                segidx_offset_set_free(cut_set(s, w->e[i].set));
    if (segidx_offset_set_is_empty(s)) {
        segidx_offset_set_free(s);
        return NULL;
    }
    return s;
}

/* After a prune that wrote: the meta has the new prune point and nothing
 * else new, the neighbour is untouched, every entry is as FORMAT.md says
 * (exactly, unless entries of one LSN overlap, which FORMAT.md rules out
 * and the reader cannot see cheaply: then each is a subset of what it was),
 * entries left alone keep their bytes, and the sids reported are those
 * the volume no longer names. */
static void check_pruned_store(const struct world *w, const struct snapshot *before,
                               const struct snapshot *after, uint64_t keep_from,
                               const struct report_ctx *rep, bool report)
{
    uint8_t mkey[META_KEY_LEN], mval[META_BYTES];
    meta_key(mkey, &w->vid);
    struct dmeta m = w->m;
    m.keep_from = keep_from;
    encode_meta(mval, &m);
    for (size_t i = 0; i < after->n; i++) {
        const struct pair *a = &after->p[i];
        const struct pair *b = snapshot_find(before, a->key, a->klen);
        CHECK(b != NULL); /* a prune adds no key */
        if (same_bytes(a->key, a->klen, mkey, META_KEY_LEN)) {
            CHECK(same_bytes(a->val, a->vlen, mval, META_BYTES));
        } else if (!is_entry_of(a, &w->vid)) {
            CHECK(same_bytes(a->val, a->vlen, b->val, b->vlen));
        }
    }
    for (size_t i = 0; i < w->n; i++) {
        const struct ventry *e = &w->e[i];
        uint8_t key[ENTRY_KEY_LEN];
        entry_key(key, &w->vid, e->lsn, &e->sid);
        const struct pair *a = snapshot_find(after, key, ENTRY_KEY_LEN);
        if (e->lsn > w->m.lsn) { /* above the meta's LSN: not walked, left as it was */
            CHECK(a != NULL && same_bytes(a->val, a->vlen, e->val, e->vlen));
            continue;
        }
        segidx_offset_set *now = NULL;
        if (a) {
            CHECK(spec_entry_value(a->val, a->vlen, &now) == SEGIDX_OK);
            CHECK(e->lsn < keep_from || same_bytes(a->val, a->vlen, e->val, e->vlen));
            segidx_offset_set *rest = copy_set(now);
            segidx_offset_set_free(cut_set(rest, e->set));
            CHECK(segidx_offset_set_is_empty(rest)); /* only ever smaller */
            segidx_offset_set_free(rest);
            if (segidx_offset_set_equals(now, e->set))
                CHECK(same_bytes(a->val, a->vlen, e->val, e->vlen));
        } else {
            CHECK(e->lsn < keep_from);
        }
        if (!w->overlap) {
            segidx_offset_set *want = pruned_offsets(w, e, keep_from);
            CHECK((want == NULL) == (now == NULL));
            if (want)
                CHECK(segidx_offset_set_equals(want, now));
            segidx_offset_set_free(want);
        }
        segidx_offset_set_free(now);
    }
    if (!report)
        return;
    for (size_t i = 0; i < rep->n; i++)
        CHECK(snapshot_names_sid(before, w, &rep->sid[i]) &&
              !snapshot_names_sid(after, w, &rep->sid[i]));
    for (size_t i = 0; i < w->n; i++) {
        if (w->e[i].lsn > w->m.lsn || snapshot_names_sid(after, w, &w->e[i].sid))
            continue;
        bool found = false;
        for (size_t j = 0; j < rep->n; j++)
            found |= sid_eq(&rep->sid[j], &w->e[i].sid);
        CHECK(found);
    }
}

/* The entries a volume's commits walk visits, from a snapshot. */
static void check_commits_match(const struct world *w, segidx_volume_index *vi,
                                const struct snapshot *s)
{
    struct ventry *want = calloc(MAX_KEYS, sizeof *want);
    CHECK(want != NULL);
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!is_entry_of(&s->p[i], &w->vid) || get_be64(s->p[i].key + 25) > w->m.lsn)
            continue;
        struct ventry *e = &want[n++];
        e->lsn = get_be64(s->p[i].key + 25);
        memcpy(e->sid.bytes, s->p[i].key + 33, 16);
        CHECK(spec_entry_value(s->p[i].val, s->p[i].vlen, &e->set) == SEGIDX_OK);
    }
    struct commits_ctx c = { want, n, 0 };
    CHECK(segidx_volume_commits(vi, &w->vid, commits_cb, &c) == SEGIDX_OK);
    CHECK(c.calls == n);
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free(want[i].set);
    free(want);
}

static void check_prune(const struct world *w, uint64_t keep_from, bool report)
{
    segidx_kv kv;
    segidx_volume_index *vi = world_open(w, &kv);
    struct snapshot *before = calloc(1, sizeof *before), *after = calloc(1, sizeof *after);
    CHECK(before != NULL && after != NULL);
    snapshot_take(kv, before);

    int want = SEGIDX_OK;
    bool writes = false;
    if (w->meta_rc) {
        want = META_FAIL;
    } else if (keep_from > w->m.lsn) {
        want = SEGIDX_EINVAL;
    } else if (keep_from > w->m.keep_from) {
        for (size_t i = 0; i < w->n && !want; i++)
            if (w->e[i].lsn <= w->m.lsn) /* entries above it are not walked */
                want = entry_rc(w, &w->e[i]);
        writes = !want;
    }
    struct report_ctx rep = { .n = 0 };
    int rc = report ? segidx_volume_prune_report(vi, &w->vid, keep_from, report_cb, &rep)
                    : segidx_volume_prune(vi, &w->vid, keep_from);
    CHECK(rc_ok(w, rc, want));
    snapshot_take(kv, after);
    if (!writes) {
        CHECK(rep.n == 0);
        CHECK(snapshots_equal(before, after));
    } else {
        check_pruned_store(w, before, after, keep_from, &rep, report);
        struct dmeta m = w->m;
        m.keep_from = keep_from;
        check_get(w, vi, &m);
        /* Every read at or after keep_from answers as before the prune. */
        check_finds_after_prune(w, vi, keep_from);
        check_commits_match(w, vi, after);
    }
    snapshot_free(before);
    snapshot_free(after);
    free(before);
    free(after);
    segidx_volume_index_close(vi);
}

static void check_prunes(const struct world *w)
{
    if (w->meta_rc) {
        check_prune(w, 1, true);
        return;
    }
    uint64_t kf[MAX_LSNS];
    size_t n = 0;
    n = add_lsn(kf, n, 1);
    n = add_lsn(kf, n, w->k);
    n = add_lsn(kf, n, w->k + 1);
    n = add_lsn(kf, n, w->m.keep_from);
    n = add_lsn(kf, n, w->m.keep_from + 1);
    n = add_lsn(kf, n, w->m.lsn);
    n = add_lsn(kf, n, w->m.lsn + 1);
    n = add_lsn(kf, n, UINT64_MAX);
    /* segidx_volume_prune is prune_report without a callback: once is
     * enough for it. */
    for (size_t i = 0; i < n; i++)
        check_prune(w, kf[i], kf[i] != 1);
}

/* ------------------------------------------------------------ commit */

static segidx_offset_set *commit_offsets(void)
{
    segidx_offset_set *s = new_set();
    add(s, 0);
    add(s, 5);
    add(s, 65537);
    return s;
}

#define COMMIT_SID 0x40
#define COMMIT_TIME 0xC0FFEEu
#define COMMIT_MAX 65537u

/* After a commit that wrote: the meta is the old one moved on by one
 * commit, the new entry (if any) holds what was committed, and nothing
 * else changed. */
static void check_committed_store(const struct world *w, const struct snapshot *before,
                                  const struct snapshot *after, const segidx_sid *sid,
                                  const segidx_offset_set *offsets, const struct dmeta *m)
{
    uint8_t mkey[META_KEY_LEN], mval[META_BYTES], ekey[ENTRY_KEY_LEN];
    meta_key(mkey, &w->vid);
    encode_meta(mval, m);
    if (sid)
        entry_key(ekey, &w->vid, m->lsn, sid);
    bool added = sid && !snapshot_find(before, ekey, ENTRY_KEY_LEN);
    CHECK(after->n == before->n + (added ? 1 : 0));
    for (size_t i = 0; i < after->n; i++) {
        const struct pair *a = &after->p[i];
        if (same_bytes(a->key, a->klen, mkey, META_KEY_LEN)) {
            CHECK(same_bytes(a->val, a->vlen, mval, META_BYTES));
        } else if (sid && same_bytes(a->key, a->klen, ekey, ENTRY_KEY_LEN)) {
            segidx_offset_set *s;
            CHECK(spec_entry_value(a->val, a->vlen, &s) == SEGIDX_OK);
            CHECK(segidx_offset_set_equals(s, offsets));
            segidx_offset_set_free(s);
        } else {
            const struct pair *b = snapshot_find(before, a->key, a->klen);
            CHECK(b != NULL && same_bytes(a->val, a->vlen, b->val, b->vlen));
        }
    }
}

static void check_commit(const struct world *w)
{
    segidx_kv kv;
    segidx_volume_index *vi = world_open(w, &kv);
    struct snapshot *before = calloc(1, sizeof *before), *after = calloc(1, sizeof *after);
    CHECK(before != NULL && after != NULL);
    snapshot_take(kv, before);
    segidx_offset_set *offsets = commit_offsets();
    segidx_commit_segment seg = { make_sid(COMMIT_SID), offsets };

    /* A taken LSN: refused, nothing written. */
    uint64_t taken = w->meta_rc ? 1 : w->m.lsn;
    int rc = segidx_volume_commit(vi, &w->vid, taken, COMMIT_TIME, &seg, 1);
    CHECK(rc_ok(w, rc, w->meta_rc ? META_FAIL : SEGIDX_ECONFLICT));
    snapshot_take(kv, after);
    CHECK(snapshots_equal(before, after));
    snapshot_free(after);

    /* The next LSN: one past the meta's, which does not exist past
     * UINT64_MAX (lsn + 1 wraps to 0). */
    uint64_t next = w->meta_rc ? 2 : w->m.lsn + 1;
    int want = w->meta_rc ? META_FAIL : next == 0 ? SEGIDX_ECONFLICT : SEGIDX_OK;
    rc = segidx_volume_commit(vi, &w->vid, next, COMMIT_TIME, &seg, 1);
    CHECK(rc_ok(w, rc, want));
    snapshot_take(kv, after);
    if (rc) {
        CHECK(snapshots_equal(before, after));
    } else {
        struct dmeta m = w->m;
        m.lsn = next;
        m.last_commit = COMMIT_TIME;
        if (!m.written || COMMIT_MAX > m.last_offset)
            m.last_offset = COMMIT_MAX;
        m.written = true;
        check_committed_store(w, before, after, &seg.sid, offsets, &m);
        check_get(w, vi, &m);
        struct calls *got = calloc(1, sizeof *got);
        CHECK(got != NULL);
        segidx_offset_set *q = copy_set(offsets);
        got->query = q;
        CHECK(segidx_volume_find_segments(vi, &w->vid, next, q, record_find, got) == SEGIDX_OK);
        CHECK(got->n == 1 && got->c[0].lsn == next && sid_eq(&got->c[0].sid, &seg.sid));
        CHECK(segidx_offset_set_equals(got->c[0].cut, offsets));
        CHECK(segidx_offset_set_is_empty(q));
        segidx_offset_set_free(q);
        calls_free(got);
        free(got);
    }
    segidx_offset_set_free(offsets);
    snapshot_free(before);
    snapshot_free(after);
    free(before);
    free(after);
    segidx_volume_index_close(vi);
}

struct pull_ctx {
    uint64_t have;
    int calls;
};

static int pull_empty_commit(void *ctx, segidx_volume_index *vi, const segidx_vid *vid,
                             segidx_lsn have)
{
    struct pull_ctx *p = ctx;
    p->calls++;
    CHECK(have == p->have);
    return segidx_volume_commit(vi, vid, have + 1, COMMIT_TIME + 1, NULL, 0);
}

/* A sync one LSN ahead: the pull sees the meta's LSN and its empty commit
 * moves only the meta on. */
static void check_sync(const struct world *w)
{
    if (!w->meta_rc && w->m.lsn == UINT64_MAX)
        return; /* nothing lies ahead */
    segidx_kv kv;
    segidx_volume_index *vi = world_open(w, &kv);
    struct snapshot *before = calloc(1, sizeof *before), *after = calloc(1, sizeof *after);
    CHECK(before != NULL && after != NULL);
    snapshot_take(kv, before);
    struct pull_ctx p = { w->m.lsn, 0 };
    uint64_t target = w->meta_rc ? 1 : w->m.lsn + 1;
    int rc = segidx_volume_sync(vi, &w->vid, target, pull_empty_commit, &p);
    snapshot_take(kv, after);
    if (w->meta_rc) {
        CHECK(rc_ok(w, rc, META_FAIL));
        CHECK(p.calls == 0);
        CHECK(snapshots_equal(before, after));
    } else {
        CHECK(rc == SEGIDX_OK && p.calls == 1);
        struct dmeta m = w->m;
        m.lsn = target;
        m.last_commit = COMMIT_TIME + 1;
        check_committed_store(w, before, after, NULL, NULL, &m);
        check_get(w, vi, &m);
    }
    snapshot_free(before);
    snapshot_free(after);
    free(before);
    free(after);
    segidx_volume_index_close(vi);
}

/* ------------------------------------------------------------ driver */

/* Once per process: this target's meta and envelope writers must be the
 * library's, or resealing would test nothing past the checksums. */
static void self_check(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    segidx_kv kv;
    CHECK(segidx_kv_mem_open(&kv) == SEGIDX_OK);
    segidx_volume_index *vi;
    CHECK(segidx_volume_index_open(kv, &vi) == SEGIDX_OK);
    segidx_vid vid;
    memset(vid.bytes, 7, 16);
    segidx_offset_set *s = commit_offsets();
    segidx_commit_segment seg = { make_sid(COMMIT_SID), s };
    CHECK(segidx_volume_commit(vi, &vid, 1, COMMIT_TIME, &seg, 1) == SEGIDX_OK);
    struct snapshot *snap = calloc(1, sizeof *snap);
    CHECK(snap != NULL);
    snapshot_take(kv, snap);
    CHECK(snap->n == 2);
    uint8_t key[ENTRY_KEY_LEN], mval[META_BYTES];
    meta_key(key, &vid);
    struct dmeta m = { 1, COMMIT_TIME, 0, COMMIT_MAX, true }, back;
    encode_meta(mval, &m);
    const struct pair *p = snapshot_find(snap, key, META_KEY_LEN);
    CHECK(p != NULL && same_bytes(p->val, p->vlen, mval, META_BYTES));
    CHECK(spec_meta(p->val, p->vlen, &back) == SEGIDX_OK);
    entry_key(key, &vid, 1, &seg.sid);
    p = snapshot_find(snap, key, ENTRY_KEY_LEN);
    CHECK(p != NULL);
    uint8_t *copy = must_malloc(p->vlen);
    memcpy(copy, p->val, p->vlen);
    seal_envelope(copy, p->vlen);
    CHECK(same_bytes(copy, p->vlen, p->val, p->vlen));
    segidx_offset_set *read;
    CHECK(spec_entry_value(p->val, p->vlen, &read) == SEGIDX_OK);
    CHECK(segidx_offset_set_equals(read, s));
    segidx_offset_set_free(read);
    free(copy);
    snapshot_free(snap);
    free(snap);
    segidx_offset_set_free(s);
    segidx_volume_index_close(vi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    self_check();
    struct world *w = calloc(1, sizeof *w);
    CHECK(w != NULL);
    world_build(w, data, size);
    check_reads(w);
    check_prunes(w);
    check_commit(w);
    check_sync(w);
    world_free(w);
    free(w);
    return 0;
}
