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
 *                            0..40 at 40 (when it has 48 bytes or more; a
 *                            version-2 meta of 64 bytes or more: of 0..56
 *                            at 56)
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
 * Checkpoint mode: an input that starts with "CK" reads as
 *
 *   "CK" sched plant ctl shape mask bytes...
 *
 * The background history (shape, mask as above) is committed through the
 * library: commits 1..C0-1 without checkpoints, C0..L with the schedule
 * K = 1 + sched % 4, F = 2 + bit 2, levels 1 + bit 3, C0 = 1 + (sched >> 4)
 * % L; the meta is the library's (with the input's keep_from), and so are
 * the checkpoint values. `plant` picks one of them (plant % (values + 1);
 * the last choice plants nothing) and with bit 7 deletes it; otherwise
 * ctl bit 2 replaces it by a chunk map built from the bytes (offsets and
 * LSN fields of the input's choosing), or else the bytes are XORed over it
 * and extend it, and ctl bit 3 reseals its trailing checksum. A meta of
 * version 2 (in either mode) makes the target read the volume as FORMAT.md
 * "Reading with checkpoints" says, decoding chunk maps itself: the walk
 * stops at the newest round, the cover and image answer for the chunks
 * still open (an absent value holds nothing), each LSN named is cut from
 * its entries. With nothing planted this must also be the walk's answer.
 * Writes (prune, commit, sync) are not checked on volumes with checkpoints.
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

/* The worlds below are written as a volume without checkpoints; an index
 * that started checkpoints on the commit it makes would write more than
 * the checks expect. */
static const segidx_volume_index_options walk_only = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };

#define META_KEY_LEN 24
#define ENTRY_KEY_LEN 49
#define META_BYTES 48
#define META_V2_BYTES 64
#define CKPT_KEY_LEN 41
#define MAX_CVALS 192
#define ENVELOPE_BYTES 24
#define MAX_HISTORY 8
#define MAX_ENTRIES (MAX_HISTORY + 1)
#define MAX_KEYS 256
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
    /* Version 2: the checkpoint schedule (ckpt_from 0: version 1). */
    uint64_t ckpt_from;
    uint32_t ckpt_k;
    unsigned ckpt_f, ckpt_l;
};

/* What reading these bytes as a volume meta must give. */
static int spec_meta(const uint8_t *p, size_t n, struct dmeta *m)
{
    if (n < 4 || memcmp(p, "SXVM", 4) != 0)
        return SEGIDX_ECORRUPT;
    if (n < 6)
        return SEGIDX_ECORRUPT;
    unsigned version = get16(p + 4);
    if (version != 1 && version != 2)
        return SEGIDX_EVERSION;
    if (n != (version == 1 ? META_BYTES : META_V2_BYTES))
        return SEGIDX_ECORRUPT;
    m->ckpt_from = 0;
    m->ckpt_k = 0;
    m->ckpt_f = m->ckpt_l = 0;
    if (version == 2) {
        m->ckpt_from = get64(p + 40);
        m->ckpt_k = get32(p + 48);
        m->ckpt_f = p[52];
        m->ckpt_l = p[53];
        if (get64(p + 56) != XXH3_64bits(p, 56) || get16(p + 54) != 0)
            return SEGIDX_ECORRUPT;
    } else if (get64(p + 40) != XXH3_64bits(p, 40)) {
        return SEGIDX_ECORRUPT;
    }
    uint32_t flags = get16(p + 6);
    m->written = flags & 1;
    m->lsn = get64(p + 8);
    m->last_offset = get32(p + 16);
    m->last_commit = get64(p + 24);
    m->keep_from = get64(p + 32);
    if ((flags & ~1u) || get32(p + 20) != 0)
        return SEGIDX_ECORRUPT;
    if (m->lsn == 0 || m->keep_from > m->lsn || (!m->written && m->last_offset != 0))
        return SEGIDX_ECORRUPT;
    if (version == 2 && (m->ckpt_from == 0 || m->ckpt_from > m->lsn || m->ckpt_k == 0 ||
                         m->ckpt_k > (1u << 24) || m->ckpt_f < 2 || m->ckpt_f > 64 ||
                         m->ckpt_l < 1 || m->ckpt_l > 6))
        return SEGIDX_ECORRUPT;
    return SEGIDX_OK;
}

/* Version 2 when m has a schedule; returns the length written. */
static size_t encode_meta(uint8_t *out, const struct dmeta *m)
{
    memset(out, 0, m->ckpt_from ? META_V2_BYTES : META_BYTES);
    memcpy(out, "SXVM", 4);
    put_le(out + 4, m->ckpt_from ? 2 : 1, 2);
    put_le(out + 6, m->written ? 1 : 0, 2);
    put_le(out + 8, m->lsn, 8);
    put_le(out + 16, m->last_offset, 4);
    put_le(out + 24, m->last_commit, 8);
    put_le(out + 32, m->keep_from, 8);
    if (!m->ckpt_from) {
        put_le(out + 40, XXH3_64bits(out, 40), 8);
        return META_BYTES;
    }
    put_le(out + 40, m->ckpt_from, 8);
    put_le(out + 48, m->ckpt_k, 4);
    out[52] = (uint8_t)m->ckpt_f;
    out[53] = (uint8_t)m->ckpt_l;
    put_le(out + 56, XXH3_64bits(out, 56), 8);
    return META_V2_BYTES;
}

/* Reseal a meta's checksum where its version puts it. */
static void reseal_meta(uint8_t *p, size_t n)
{
    if (n >= META_V2_BYTES && get16(p + 4) == 2)
        put_le(p + 56, XXH3_64bits(p, 56), 8);
    else if (n >= META_BYTES)
        put_le(p + 40, XXH3_64bits(p, 40), 8);
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
    uint8_t meta_buf[META_V2_BYTES];
    struct cval {               /* checkpoint values, in key order */
        uint8_t key[CKPT_KEY_LEN];
        uint8_t *val;
        size_t vlen;
    } cv[MAX_CVALS];
    size_t n_cv;
    bool ckpt_clean;            /* checkpoint mode, nothing planted */
    uint8_t *meta_copy, *entry_copy;
    uint8_t *hist[MAX_HISTORY];
    size_t hist_len[MAX_HISTORY];
    uint8_t other_meta[META_BYTES];
    uint8_t *other_val[2];
    size_t other_len[2];
};

static const uint64_t other_lsn[2] = { 1, 2 };
static const uint8_t other_sid[2] = { 1, 4 };
static const struct dmeta other_m = { 2, 77, 0, 9, true, 0, 0, 0, 0 };

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
    for (size_t i = 0; i < w->n_cv; i++)
        free(w->cv[i].val);
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
        struct dmeta m = { hist_lsn, 1000 + hist_lsn, 0, 65536 + hist_lsn, true, 0, 0, 0, 0 };
        m.keep_from = pick == 0 ? 0 : pick == 1 ? 1 : pick == 2 ? w->k : hist_lsn;
        encode_meta(w->meta_buf, &m);
        w->meta = w->meta_buf;
        w->meta_len = META_BYTES;
    } else {
        w->meta_copy = must_malloc(meta_in_len);
        if (meta_in_len)
            memcpy(w->meta_copy, meta_in, meta_in_len);
        if (ctl & 4)
            reseal_meta(w->meta_copy, meta_in_len);
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

/* ------------------------------------------------------------ checkpoint mode */

struct ckpt_collect {
    struct world *w;
    uint8_t meta[META_V2_BYTES];
    size_t meta_len;
};

static int collect_ckpt(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct ckpt_collect *c = ctx;
    struct world *w = c->w;
    const uint8_t *k = key;
    if (klen == CKPT_KEY_LEN && memcmp(k, "checkpoints/", 12) == 0 &&
        memcmp(k + 12, w->vid.bytes, 16) == 0) {
        CHECK(w->n_cv < MAX_CVALS);
        struct cval *cv = &w->cv[w->n_cv++];
        memcpy(cv->key, key, CKPT_KEY_LEN);
        cv->val = must_malloc(vlen);
        memcpy(cv->val, val, vlen);
        cv->vlen = vlen;
    } else if (klen == META_KEY_LEN && memcmp(k, "volumes/", 8) == 0 &&
               memcmp(k + 8, w->vid.bytes, 16) == 0) {
        CHECK(vlen == META_V2_BYTES);
        memcpy(c->meta, val, vlen);
        c->meta_len = vlen;
    }
    return 0;
}

/* A chunk map for `key` built from the bytes: 1..8 offsets from
 * b[2] % 32 on, b[3] % 4 + 1 apart, LSN fields of b[1] % 10 bits, one byte
 * each from b[4] on. Valid as built, except that its LSNs may be any. */
static size_t build_chunk_map(uint8_t *out, const uint8_t key[CKPT_KEY_LEN], const uint8_t *b,
                              size_t n)
{
    unsigned count = 1 + (n > 0 ? b[0] : 0) % 8u, width = (n > 1 ? b[1] : 0) % 10u;
    unsigned next = (n > 2 ? b[2] : 0) % 32u, step = 1 + (n > 3 ? b[3] : 0) % 4u;
    size_t lb = ((size_t)count * width + 7) / 8, len = 24 + 2 * (size_t)count + lb + 8;
    memset(out, 0, len);
    memcpy(out, "SXCK", 4);
    put_le(out + 4, 1, 2);
    out[6] = key[36];
    put_le(out + 8, get_be64(key + 28), 8);
    put_le(out + 16, (uint32_t)key[37] << 24 | (uint32_t)key[38] << 16 | (uint32_t)key[39] << 8 |
                         key[40], 4);
    put_le(out + 20, count - 1, 2);
    out[22] = (uint8_t)width;
    for (unsigned i = 0; i < count; i++, next += step) {
        put_le(out + 24 + 2 * i, next, 2);
        unsigned field = 4 + i < n ? b[4 + i] : 0;
        for (unsigned bit = 0; bit < width; bit++)
            if (field >> bit & 1)
                out[24 + 2 * count + (i * width + bit) / 8] |= (uint8_t)(1u << ((i * width + bit) % 8));
    }
    put_le(out + len - 8, XXH3_64bits(out, len - 8), 8);
    return len;
}

/* The planted value: a chunk map built from the input's bytes (ctl bit 2),
 * or the value as written with the input's bytes XORed over its start and
 * any further ones appended; its checksum resealed (bit 3); or no value at
 * all (plant bit 7). */
static void plant_cval(struct world *w, uint8_t plant, uint8_t ctl, const uint8_t *rest,
                       size_t rest_len)
{
    size_t i = plant % (w->n_cv + 1);
    if (i == w->n_cv) {
        w->ckpt_clean = true;
        return;
    }
    struct cval *cv = &w->cv[i];
    if (plant & 0x80) {
        free(cv->val);
        memmove(cv, cv + 1, (w->n_cv - i - 1) * sizeof *cv);
        w->n_cv--;
        return;
    }
    if (ctl & 4) {
        uint8_t *val = must_malloc(24 + 16 + 9 + 8);
        free(cv->val);
        cv->val = val;
        cv->vlen = build_chunk_map(val, cv->key, rest, rest_len);
        return;
    }
    size_t len = cv->vlen > rest_len ? cv->vlen : rest_len;
    uint8_t *val = must_malloc(len);
    for (size_t j = 0; j < len; j++)
        val[j] = j < cv->vlen ? (uint8_t)(cv->val[j] ^ (j < rest_len ? rest[j] : 0)) : rest[j];
    if ((ctl & 8) && len >= 8)
        put_le(val + len - 8, XXH3_64bits(val, len - 8), 8);
    free(cv->val);
    cv->val = val;
    cv->vlen = len;
}

/* Checkpoint mode: the background history committed through the library,
 * the first C0 - 1 commits without checkpoints and the rest with a small
 * schedule, so that its checkpoint values are the library's own; one of
 * them is then planted over. */
static void world_build_ckpt(struct world *w, const uint8_t *data, size_t size)
{
    memset(w, 0, sizeof *w);
    uint8_t pol = size > 2 ? data[2] : 0, plant = size > 3 ? data[3] : 0;
    uint8_t ctl = size > 4 ? data[4] : 0, shape = size > 5 ? data[5] : 0;
    uint8_t mask = size > 6 ? data[6] : 0;
    const uint8_t *rest = size > 7 ? data + 7 : NULL;
    size_t rest_len = size > 7 ? size - 7 : 0;
    memcpy(w->vid.bytes, "volume-A\0\0\0\0\0\0\0\1", 16);
    if (ctl & 0x10)
        memset(w->vid.bytes, 0xFF, 16);
    w->other = w->vid;
    w->other.bytes[15] = ctl & 0x10 ? 0xFE : 2;
    unsigned hist_lsn = 1 + (shape & 7), c0 = 1 + (pol >> 4) % hist_lsn;
    w->k = c0;

    segidx_kv raw;
    CHECK(segidx_kv_mem_open(&raw) == SEGIDX_OK);
    segidx_volume_index_options sched = { 1 + (pol & 3u), 2 + (pol >> 2 & 1u), 1 + (pol >> 3 & 1u) };
    segidx_volume_index *off, *on;
    CHECK(segidx_volume_index_open_with(fuzz_borrowed(&raw), &walk_only, &off) == 0);
    CHECK(segidx_volume_index_open_with(fuzz_borrowed(&raw), &sched, &on) == 0);
    for (unsigned j = 1; j <= hist_lsn; j++) {
        segidx_volume_index *vi = j < c0 ? off : on;
        segidx_commit_segment seg = { make_sid((uint8_t)(1 + j % 3)), NULL };
        if (mask >> (j - 1) & 1) {
            segidx_offset_set *set = history_set(j);
            seg.offsets = set;
            w->hist[j - 1] = serialize(set, &w->hist_len[j - 1]);
            struct ventry e = { j, seg.sid, w->hist[j - 1], w->hist_len[j - 1], SEGIDX_OK, set };
            world_put_entry(w, &e);
        }
        CHECK(segidx_volume_commit(vi, &w->vid, j, 1000 + j, &seg, seg.offsets ? 1 : 0) == 0);
    }
    segidx_volume_index_close(off);
    segidx_volume_index_close(on);
    struct ckpt_collect c = { w, { 0 }, 0 };
    CHECK(raw.vt->scan(raw.self, "", 0, "\xff", 1, false, collect_ckpt, &c) == 0);
    raw.vt->close(raw.self);

    /* This target's meta writer is the library's; the prune point is the
     * input's, over entries left as they were (reads at or after it are
     * the same either way). */
    CHECK(spec_meta(c.meta, c.meta_len, &w->m) == SEGIDX_OK && w->m.ckpt_from == c0);
    uint8_t again[META_V2_BYTES];
    CHECK(encode_meta(again, &w->m) == c.meta_len && memcmp(again, c.meta, c.meta_len) == 0);
    unsigned pick = shape >> 6;
    w->m.keep_from = pick == 0 ? 0 : pick == 1 ? 1 : pick == 2 ? c0 : hist_lsn;
    w->meta_len = encode_meta(w->meta_buf, &w->m);
    w->meta = w->meta_buf;
    plant_cval(w, plant, ctl, rest, rest_len);

    encode_meta(w->other_meta, &other_m);
    for (int i = 0; i < 2; i++) {
        segidx_offset_set *s = new_set();
        CHECK(segidx_offset_set_add_range(s, i ? 5 : 0, i ? 6 : 10) == SEGIDX_OK);
        w->other_val[i] = serialize(s, &w->other_len[i]);
        segidx_offset_set_free(s);
    }
    /* Written offsets of every chunk, and holes inside the written range. */
    w->query = new_set();
    CHECK(segidx_offset_set_add_range(w->query, 0, 16) == SEGIDX_OK);
    add(w->query, 4096);
    add(w->query, 65535);
    CHECK(segidx_offset_set_add_range(w->query, 65536, 65546) == SEGIDX_OK);
    add(w->query, 1u << 31);
    add(w->query, UINT32_MAX);
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
    segidx_kv_op ops[4 + MAX_ENTRIES + MAX_CVALS];
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
    for (size_t i = 0; i < w->n_cv; i++, n++)
        ops[n] = (segidx_kv_op){ SEGIDX_KV_PUT, w->cv[i].key, CKPT_KEY_LEN, w->cv[i].val,
                                 w->cv[i].vlen };
    CHECK(segidx_kv_mem_open(kv) == SEGIDX_OK);
    CHECK(kv->vt->write(kv->self, ops, n) == SEGIDX_OK);
    segidx_volume_index *vi;
    CHECK(segidx_volume_index_open_with(*kv, &walk_only, &vi) == SEGIDX_OK);
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

/* ------------------------------------------------- spec reading: checkpoints */

static void ckpt_key(uint8_t key[CKPT_KEY_LEN], const segidx_vid *vid, uint64_t round,
                     unsigned level, uint32_t chunk)
{
    memcpy(key, "checkpoints/", 12);
    memcpy(key + 12, vid->bytes, 16);
    put_be64(key + 28, round);
    key[36] = (uint8_t)level;
    for (int i = 0; i < 4; i++)
        key[37 + i] = (uint8_t)(chunk >> (24 - 8 * i));
}

/* A chunk map as FORMAT.md has it: which offsets (of the chunk) it holds,
 * and the raw LSN field of each. */
struct dmap {
    bool has[4096];
    uint64_t field[4096];
    uint64_t round;
};

static int spec_chunk_map(const uint8_t *p, size_t n, const uint8_t key[CKPT_KEY_LEN],
                          struct dmap *m)
{
    if (n < 6 || memcmp(p, "SXCK", 4) != 0)
        return SEGIDX_ECORRUPT;
    if (get16(p + 4) != 1)
        return SEGIDX_EVERSION;
    if (n < 32)
        return SEGIDX_ECORRUPT;
    unsigned count = get16(p + 20) + 1u, width = p[22];
    bool bitmap = p[7] == 1;
    uint32_t chunk = (uint32_t)key[37] << 24 | (uint32_t)key[38] << 16 | (uint32_t)key[39] << 8 |
                     key[40];
    m->round = get64(p + 8);
    if (p[7] > 1 || p[23] || p[6] != key[36] || m->round != get_be64(key + 28) ||
        get32(p + 16) != chunk || width > 64 || bitmap != (count >= 256))
        return SEGIDX_ECORRUPT;
    size_t ob = bitmap ? 512 : 2 * (size_t)count, lb = ((size_t)count * width + 7) / 8;
    if (n != 24 + ob + lb + 8 || get64(p + n - 8) != XXH3_64bits(p, n - 8))
        return SEGIDX_ECORRUPT;
    memset(m->has, 0, sizeof m->has);
    unsigned offs[4096], k = 0;
    for (unsigned i = 0; i < (bitmap ? 4096u : count); i++) {
        if (bitmap) {
            if (p[24 + i / 8] >> (i % 8) & 1)
                offs[k++] = i;
        } else {
            unsigned o = get16(p + 24 + 2 * i);
            if (o >= 4096 || (k && o <= offs[k - 1]))
                return SEGIDX_ECORRUPT;
            offs[k++] = o;
        }
    }
    if (k != count)
        return SEGIDX_ECORRUPT;
    const uint8_t *l = p + 24 + ob;
    for (unsigned i = 0; i < count; i++) {
        uint64_t v = 0;
        for (unsigned b = 0; b < width; b++) {
            size_t bit = (size_t)i * width + b;
            v |= (uint64_t)(l[bit / 8] >> (bit % 8) & 1) << b;
        }
        m->has[offs[i]] = true;
        m->field[offs[i]] = v;
    }
    size_t used = (size_t)count * width % 8;
    if (used && (l[lb - 1] >> used) != 0)
        return SEGIDX_ECORRUPT;
    return SEGIDX_OK;
}

static const struct cval *find_cval(const struct world *w, const uint8_t key[CKPT_KEY_LEN])
{
    for (size_t i = 0; i < w->n_cv; i++)
        if (memcmp(w->cv[i].key, key, CKPT_KEY_LEN) == 0)
            return &w->cv[i];
    return NULL;
}

static uint64_t power_of(unsigned f, unsigned e)
{
    uint64_t r = 1;
    while (e--)
        r *= f;
    return r;
}

/* The offsets still open (ascending), and what the checkpoints named. */
struct open_list {
    uint32_t off[64];
    size_t n;
    uint32_t got_off[64];
    uint64_t got_lsn[64];
    size_t n_got;
};

static int collect_open(segidx_offset o, void *ctx)
{
    struct open_list *ol = ctx;
    CHECK(ol->n < 64);
    ol->off[ol->n++] = o;
    return 0;
}

/* One value of the cover (FORMAT.md "Reading with checkpoints", step 2
 * or 3), for every chunk the open offsets span, in chunk order. */
static int consult_value(const struct world *w, struct open_list *ol, uint64_t round,
                         unsigned level)
{
    const struct dmeta *m = &w->m;
    uint64_t min_lsn = level == 0 ? 1 : round - power_of(m->ckpt_f, level - 1) * m->ckpt_k + 1;
    bool taken[64] = { false };
    for (size_t i = 0, j; i < ol->n; i = j) {
        uint32_t chunk = ol->off[i] >> 12;
        for (j = i + 1; j < ol->n && ol->off[j] >> 12 == chunk; j++)
            ;
        uint8_t key[CKPT_KEY_LEN];
        ckpt_key(key, &w->vid, round, level, chunk);
        const struct cval *cv = find_cval(w, key);
        if (!cv)
            continue;
        static struct dmap map;
        int rc = spec_chunk_map(cv->val, cv->vlen, key, &map);
        if (rc)
            return rc;
        for (size_t x = i; x < j; x++) {
            unsigned bit = ol->off[x] & 4095;
            if (!map.has[bit])
                continue;
            if (map.field[bit] > round - min_lsn)
                return SEGIDX_ECORRUPT;
            ol->got_off[ol->n_got] = ol->off[x];
            ol->got_lsn[ol->n_got++] = round - map.field[bit];
            taken[x] = true;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < ol->n; i++)
        if (!taken[i])
            ol->off[k++] = ol->off[i];
    ol->n = k;
    return SEGIDX_OK;
}

/* The read of a volume with checkpoints, from its round on: the commits
 * after the round were walked already (`left` is what they left); this
 * reads the cover and the image, then the entries of each LSN named. */
static int expect_checkpoints(const struct world *w, uint64_t at, segidx_offset_set *left,
                              struct calls *out)
{
    const struct dmeta *m = &w->m;
    uint64_t round = (at - m->ckpt_from) / m->ckpt_k;
    uint64_t every = power_of(m->ckpt_f, m->ckpt_l), image = round - round % every;
    static struct open_list ol;
    memset(&ol, 0, sizeof ol);
    segidx_offset_set_iterate(left, collect_open, &ol);
    while (ol.n && (!m->written || ol.off[ol.n - 1] > m->last_offset))
        ol.n--;
    int rc = SEGIDX_OK;
    for (uint64_t p = round; p > image && ol.n && !rc;) {
        unsigned level = 1;
        while (level < m->ckpt_l && p % power_of(m->ckpt_f, level) == 0)
            level++;
        rc = consult_value(w, &ol, m->ckpt_from + p * m->ckpt_k, level);
        p -= power_of(m->ckpt_f, level - 1);
    }
    if (!rc && ol.n)
        rc = consult_value(w, &ol, m->ckpt_from + image * m->ckpt_k, 0);
    if (rc)
        return rc;
    segidx_offset_set *named = new_set();
    for (size_t i = 0; i < ol.n_got; i++)
        add(named, ol.got_off[i]);
    segidx_offset_set_free(cut_set(left, named));
    segidx_offset_set_free(named);
    /* Each LSN named, newest first: its entries, newest sid first, each
     * cutting the offsets named with it until none is left; an offset no
     * entry of its LSN holds is corrupt. */
    bool used[64] = { false };
    for (;;) {
        uint64_t lsn = 0;
        for (size_t i = 0; i < ol.n_got; i++)
            if (!used[i] && ol.got_lsn[i] > lsn)
                lsn = ol.got_lsn[i];
        if (lsn == 0)
            return SEGIDX_OK;
        segidx_offset_set *group = new_set();
        for (size_t i = 0; i < ol.n_got; i++)
            if (!used[i] && ol.got_lsn[i] == lsn) {
                used[i] = true;
                add(group, ol.got_off[i]);
            }
        for (size_t i = w->n; i-- > 0 && !segidx_offset_set_is_empty(group);) {
            const struct ventry *e = &w->e[i];
            if (e->lsn != lsn)
                continue;
            if ((rc = entry_rc(w, e))) {
                segidx_offset_set_free(group);
                return rc;
            }
            segidx_offset_set *cut = cut_set(group, e->set);
            if (segidx_offset_set_is_empty(cut))
                segidx_offset_set_free(cut);
            else
                out->c[out->n++] = (struct call){ e->lsn, e->sid, cut };
        }
        bool missing = !segidx_offset_set_is_empty(group);
        segidx_offset_set_free(group);
        if (missing)
            return SEGIDX_ECORRUPT;
    }
}

/* Set while expect_find answers as if the volume had no checkpoints: what
 * its checkpoints must agree with while nothing was planted in them. */
static bool model_walk;

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
    /* With checkpoints (at or above the first), the walk stops at the
     * newest round, and the checkpoints answer the rest. */
    bool ckpt = !model_walk && w->m.ckpt_from && at >= w->m.ckpt_from;
    uint64_t from = ckpt ? w->m.ckpt_from + (at - w->m.ckpt_from) / w->m.ckpt_k * w->m.ckpt_k + 1
                         : 0;
    /* The whole walk first; the calls only once it is through. */
    int rc = SEGIDX_OK;
    for (size_t i = w->n; i-- > 0 && !rc;) {
        const struct ventry *e = &w->e[i];
        if (e->lsn > at)
            continue;
        if (e->lsn < from)
            break;
        if ((rc = entry_rc(w, e)))
            break;
        segidx_offset_set *cut = cut_set(*left, e->set);
        if (segidx_offset_set_is_empty(cut))
            segidx_offset_set_free(cut);
        else
            out->c[out->n++] = (struct call){ e->lsn, e->sid, cut };
        if (segidx_offset_set_is_empty(*left))
            break;
    }
    if (!rc && ckpt && !segidx_offset_set_is_empty(*left))
        rc = expect_checkpoints(w, at, *left, out);
    if (rc) {
        segidx_offset_set_free(*left);
        *left = copy_set(query);
        calls_free(out);
        return rc;
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
    if (w->ckpt_clean) {
        /* Checkpoints as written: the same answer as the walk. */
        struct calls *walk = calloc(1, sizeof *walk);
        CHECK(walk != NULL);
        walk->stop_after = stop_after;
        segidx_offset_set *walk_left;
        model_walk = true;
        int walk_rc = expect_find(w, keep_from, lsn, q, walk, &walk_left);
        model_walk = false;
        CHECK(walk_rc == want_rc && calls_equal(walk, want) &&
              segidx_offset_set_equals(walk_left, left));
        segidx_offset_set_free(walk_left);
        calls_free(walk);
        free(walk);
    }
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

/* Writes to a volume with checkpoints are the volume index tests' and
 * volume_index_fuzz.c's: what a commit or prune writes there is more than
 * this target models. */
static bool has_checkpoints(const struct world *w)
{
    return !w->meta_rc && w->m.ckpt_from;
}

static void check_prunes(const struct world *w)
{
    if (has_checkpoints(w))
        return;
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
    if (has_checkpoints(w))
        return;
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
    if (has_checkpoints(w))
        return;
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
    CHECK(segidx_volume_index_open_with(kv, &walk_only, &vi) == SEGIDX_OK);
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
    struct dmeta m = { 1, COMMIT_TIME, 0, COMMIT_MAX, true, 0, 0, 0, 0 }, back;
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
    if (size >= 2 && data[0] == 'C' && data[1] == 'K')
        world_build_ckpt(w, data, size);
    else
        world_build(w, data, size);
    check_reads(w);
    check_prunes(w);
    check_commit(w);
    check_sync(w);
    world_free(w);
    free(w);
    return 0;
}
