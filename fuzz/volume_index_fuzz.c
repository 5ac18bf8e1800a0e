/* Fuzz target: the volume index (segidx_volume_*) over the in-memory store,
 * driven as a small program, through a store that may lie.
 *
 * The input is a sequence of at most MAX_OPS operations. Each starts with
 * one byte `c`: c % 8 picks the operation, bit 3 the volume (two volume
 * ids, one of them all 0xFF so that the "end of the volume's keys" carry is
 * walked), and c >> 4 is a small parameter. Operands follow; a short input
 * reads as zeros.
 *
 *   0     commit    [lsn mode] [time] [n segs] n * ([sid] [offsets])
 *   1     group     [count] count * ([volume + lsn mode] [time] [n segs]
 *                   n * ([sid] [offsets]))     (segidx_volume_commit_group:
 *                                               1..8 commits of either
 *                                               volume, in one write)
 *   2, 3  find      [lsn] [stop after] [offsets]
 *   4     prune     [keep_from]                   (c >> 4 odd: prune_report)
 *   5     read      get / list / commits          ((c >> 4) % 6: 0..2)
 *         repoint   [lsn] [mask] [salt]           (3: re-point a commit's
 *                                                   segments onto new sids)
 *         segments  the referenced sids            (4)
 *         changed   [from] [to]                    (5: the offsets written
 *                                                   in (from, to])
 *   6     plant     [key kind] ... [value kind] ...
 *   7     lie       c >> 4 script bytes           (replace the lie script;
 *                                                   bit 3: reopen the index
 *                                                   over the other vtable
 *                                                   version, 2 or 1)
 *
 * offsets = [count] count * ([a] [b]): a small range [a % 64, + b % 8], or
 * for a >= 0xFD a single UINT32_MAX, an offset above 65535 (a second
 * container) or a long range (bitmap and run containers).
 *
 * "plant" writes raw bytes straight into the store, under the meta key,
 * a commit entry key, a checkpoint key (a round LSN, a level, a chunk), a
 * key of the wrong length under `segments/` or `volumes/`, or deletes a
 * key: this is how bad values reach the decoders. Values are raw bytes, a
 * meta built from the input (version, flags, fields, then a checksum, then
 * one byte flipped and a length cut or grown), an OffsetSet's stored form
 * (mutated the same way, its envelope resealed or not), a chunk map
 * (list or bitmap, LSN fields from the input, mutated the same way, its
 * checksum resealed or not) or nothing. The index writes checkpoints on a
 * short schedule (`schedule` below), so programs read through them.
 *
 * "lie": the volume index calls the store through a wrapping vtable that
 * takes one byte of the script per store call (get, scan or write) while
 * the script lasts, and breaks the KV contract as that byte says (0: it
 * does not). A scan hands out a key outside the range asked for (the
 * neighbours, another volume's entries) at any place, runs the other way,
 * swaps two keys, repeats one, goes on after the visitor said stop, stops
 * half way with an error, returns a positive, errno-like or unknown code,
 * or hands a key cut short, an empty key, bytes at NULL or a flipped value
 * byte. A get returns 0 without calling back, calls back twice, with
 * another key, cut or NULL bytes, a flipped value, or says ENOTFOUND or a
 * foreign code after calling back. A write fails without writing, or
 * writes and then fails. Lies a reader cannot tell from the truth (a key
 * left out, another valid value, a write dropped with 0) are not told.
 * The store starts as a version-2 vtable; as version 1 the index writes
 * without EXPECTs.
 *
 * A model holds the commits made through the API. While nothing was planted
 * for a volume ("clean"), every call on it is checked exactly against the
 * model: commit's result, get's meta, find's callbacks (newest first, each
 * with its cut) and its final query (the offsets never written), prune's
 * result, the unreferenced sids it reports, and the entries it leaves, and
 * that reads at or after the prune point answer as they did before it.
 * A call during which the store lied gives that exact answer or an error:
 * SEGIDX_ECORRUPT, SEGIDX_EIO, what the store's own return becomes
 * (SEGIDX_EVERSION too after a flipped byte); a failed find has not called
 * back and leaves its query as it was. A write that fails with nothing
 * applied leaves the store byte for byte as it was (a dump's hash); one
 * that the store applied and then failed is taken into the model (the
 * store's meta says so, checked) and the volume's entries are checked
 * against it through a second index over the honest store.
 * Once planted, a volume only has to give no crash, errors from the
 * expected list, and a find that fails must leave its query as it was.
 * Any broken invariant calls abort().
 *
 * Builds as a libFuzzer target and, with fuzz/replay.c, as a plain program
 * that replays a corpus.
 */
#include <segidx.h>

#include "fuzz_check.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 64

/* A checkpoint schedule short enough for a program of MAX_OPS operations
 * to close many rounds and pass several images: every other commit is a
 * round, every 8th round an image. */
static const segidx_volume_index_options schedule = { 2, 2, 3 };
#define MAX_SEGS 4
#define MAX_COMMITS (MAX_OPS + 1)
#define MAX_ENTRIES (MAX_COMMITS * MAX_SEGS)
#define STOPPED 0x5eed

#define META_KEY_LEN 24
#define ENTRY_KEY_LEN 49
#define META_BYTES 48

/* ------------------------------------------------------------ input */

struct reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct reader *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

/* Whether a ⊆ b. */
static bool subset(const segidx_offset_set *a, const segidx_offset_set *b)
{
    segidx_offset_set *rest = copy_set(a);
    segidx_offset_set_free(cut_set(rest, b));
    bool ok = segidx_offset_set_is_empty(rest);
    segidx_offset_set_free(rest);
    return ok;
}

static bool disjoint(const segidx_offset_set *a, const segidx_offset_set *b)
{
    segidx_offset_set *tmp = copy_set(a);
    segidx_offset_set *shared = cut_set(tmp, b);
    bool ok = segidx_offset_set_is_empty(shared);
    segidx_offset_set_free(shared);
    segidx_offset_set_free(tmp);
    return ok;
}

static segidx_offset_set *read_offsets(struct reader *r)
{
    segidx_offset_set *s = new_set();
    unsigned count = u8(r) % 5;
    for (unsigned i = 0; i < count; i++) {
        uint8_t a = u8(r), b = u8(r);
        if (a == 0xFF)
            CHECK(segidx_offset_set_add(s, UINT32_MAX) == SEGIDX_OK);
        else if (a == 0xFE)
            CHECK(segidx_offset_set_add(s, 65536u + b) == SEGIDX_OK);
        else if (a == 0xFD)
            CHECK(segidx_offset_set_add_range(s, 0, 4096u + 16u * b) == SEGIDX_OK);
        else
            CHECK(segidx_offset_set_add_range(s, a % 64u, a % 64u + 1u + b % 8u) == SEGIDX_OK);
    }
    return s;
}

static uint64_t read_lsn(struct reader *r)
{
    uint8_t b = u8(r);
    return b == 0xFF ? UINT64_MAX : b & 31u;
}

static segidx_sid make_sid(uint8_t b)
{
    segidx_sid sid;
    memset(sid.bytes, 0, sizeof sid.bytes);
    sid.bytes[0] = b;
    return sid;
}

/* ------------------------------------------------------------ the store */

#define MAX_SCRIPT 15

/* What a lying store returns instead of the truth: positive values,
 * errno-like negatives (-5 is -EIO on Linux, -22 -EINVAL), values out of
 * every range, and the library's own codes. */
static const int lie_rc[15] = {
    1, 3, INT_MAX, -5, -22, -1000, INT_MIN, SEGIDX_EIO, SEGIDX_ENOMEM, SEGIDX_ECONFLICT,
    SEGIDX_ENOTFOUND, SEGIDX_ECORRUPT, SEGIDX_EFULL, SEGIDX_EINVAL, SEGIDX_EVERSION,
};

/* What the library makes of a store's return: its own codes pass, all
 * else (positive, unknown, -5 which is also SEGIDX_ERANGE) is SEGIDX_EIO. */
static int as_library_rc(int rc)
{
    return rc <= 0 && rc >= SEGIDX_EFULL && rc != -5 ? rc : SEGIDX_EIO;
}

enum scan_lie {
    S_HONEST,
    S_FOREIGN,     /* a key outside [lo, hi) put in at some place */
    S_REVERSED,    /* the other direction */
    S_SWAP,        /* two neighbours swapped */
    S_REPEAT,      /* a key again, at or after its place */
    S_IGNORE_STOP, /* visits go on after the visitor said stop */
    S_RC_END,      /* a whole, honest visit, then a wrong return */
    S_FAIL_MID,    /* stops after some keys with an error */
    S_NULL_BYTES,  /* a value at NULL with its length (or a NULL key) */
    S_CUT_KEY,     /* a key one byte short */
    S_EMPTY_KEY,   /* a key of length 0 */
    S_FLIP,        /* one bit of a value flipped */
    S_KINDS
};

enum get_lie {
    G_HONEST,
    G_SILENT,    /* 0, no callback */
    G_TWICE,     /* two callbacks */
    G_OTHER_KEY, /* a callback with another key */
    G_FOUND_NOT, /* a callback, then ENOTFOUND */
    G_RC,        /* a wrong return, no callback */
    G_RC_AFTER,  /* a callback, then a wrong return */
    G_NULL_BYTES,
    G_CUT_KEY,
    G_FLIP,
    G_KINDS
};

enum write_lie {
    W_HONEST,
    W_FAIL,       /* nothing written, an error returned */
    W_APPLY_FAIL, /* written, then an error returned */
    W_KINDS
};

struct pair {
    uint8_t *key, *val;
    size_t klen, vlen;
};

struct hostile {
    segidx_kv raw;          /* the in-memory store underneath */
    uint8_t script[MAX_SCRIPT];
    size_t n_script, pos;
    /* What happened since call_begin(): */
    unsigned lies;          /* store calls that broke the contract */
    int said[4 * MAX_SCRIPT]; /* what the library may make of the store's returns */
    size_t n_said;
    bool flipped;           /* a value's bytes were changed */
    unsigned writes;        /* write calls */
    unsigned applied;       /* writes the raw store took */
    bool unsure;            /* one of them was then reported failed */
    struct pair *all;       /* the whole store, for a lying scan */
    size_t n_all, cap_all;
};

static uint8_t next_lie(struct hostile *h)
{
    return h->pos < h->n_script ? h->script[h->pos++] : 0;
}

static void note_said(struct hostile *h, int rc)
{
    if (rc && h->n_said < sizeof h->said / sizeof h->said[0])
        h->said[h->n_said++] = as_library_rc(rc);
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

static void pairs_clear(struct hostile *h)
{
    for (size_t i = 0; i < h->n_all; i++) {
        free(h->all[i].key);
        free(h->all[i].val);
    }
    h->n_all = 0;
}

static void pair_copy(struct pair *p, const void *key, size_t klen, const void *val, size_t vlen)
{
    p->key = malloc(klen ? klen : 1);
    p->val = malloc(vlen ? vlen : 1);
    CHECK(p->key != NULL && p->val != NULL);
    if (klen)
        memcpy(p->key, key, klen);
    if (vlen)
        memcpy(p->val, val, vlen);
    p->klen = klen;
    p->vlen = vlen;
}

static int collect_pair(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct hostile *h = ctx;
    if (h->n_all == h->cap_all) {
        h->cap_all = h->cap_all ? 2 * h->cap_all : 64;
        h->all = realloc(h->all, h->cap_all * sizeof *h->all);
        CHECK(h->all != NULL);
    }
    pair_copy(&h->all[h->n_all++], key, klen, val, vlen);
    return 0;
}

/* A value of the honest store, copied out of its callback. */
struct got {
    bool found;
    struct pair p;
};

static int collect_got(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct got *g = ctx;
    CHECK(!g->found);
    g->found = true;
    pair_copy(&g->p, key, klen, val, vlen);
    return 0;
}

static int h_get(void *self, const void *key, size_t klen, segidx_kv_visit_fn fn, void *ctx)
{
    struct hostile *h = self;
    uint8_t b = next_lie(h);
    unsigned kind = b % G_KINDS, q = b / G_KINDS;
    if (kind == G_HONEST)
        return h->raw.vt->get(h->raw.self, key, klen, fn, ctx);
    h->lies++;
    struct got g = { false, { NULL, NULL, 0, 0 } };
    int raw = h->raw.vt->get(h->raw.self, key, klen, collect_got, &g);
    CHECK(raw == (g.found ? SEGIDX_OK : SEGIDX_ENOTFOUND));
    /* What a callback hands out: the value, or junk for a key not there. */
    static const uint8_t junk[4] = { 'S', 'X', 'V', 'M' };
    const uint8_t *val = g.found ? g.p.val : junk;
    size_t vlen = g.found ? g.p.vlen : sizeof junk;
    uint8_t other[64], flip[4096];
    int rc;
    switch (kind) {
    case G_SILENT:
        rc = SEGIDX_OK;
        break;
    case G_TWICE:
        rc = fn(ctx, key, klen, val, vlen);
        if (!rc)
            rc = fn(ctx, key, klen, val, vlen);
        break;
    case G_OTHER_KEY:
        CHECK(klen >= 1 && klen <= sizeof other);
        memcpy(other, key, klen);
        other[q % klen] ^= (uint8_t)(1u << (q % 8));
        rc = fn(ctx, other, klen, val, vlen);
        break;
    case G_FOUND_NOT:
        fn(ctx, key, klen, val, vlen);
        rc = SEGIDX_ENOTFOUND;
        break;
    case G_RC:
        rc = lie_rc[q % 15];
        if (rc == SEGIDX_ENOTFOUND && g.found)
            rc = 2; /* hiding a key that is there is not a lie a reader can see */
        if (rc != SEGIDX_ENOTFOUND)
            note_said(h, rc);
        break;
    case G_RC_AFTER:
        rc = lie_rc[q % 15];
        if (g.found)
            fn(ctx, key, klen, val, vlen);
        if (rc != SEGIDX_ENOTFOUND) /* after a callback: the library's ECORRUPT */
            note_said(h, rc);
        break;
    case G_NULL_BYTES:
        rc = vlen ? fn(ctx, key, klen, NULL, vlen) : fn(ctx, NULL, klen, val, vlen);
        break;
    case G_CUT_KEY:
        rc = fn(ctx, key, klen - 1, val, vlen);
        break;
    default: /* G_FLIP */
        if (vlen > sizeof flip)
            vlen = sizeof flip;
        memcpy(flip, val, vlen);
        if (vlen)
            flip[(q * 13u) % vlen] ^= (uint8_t)(1u << (q % 8));
        h->flipped = true;
        rc = fn(ctx, key, klen, flip, vlen);
        break;
    }
    if (g.found) {
        free(g.p.key);
        free(g.p.val);
    }
    return rc;
}

static int h_scan(void *self, const void *lo, size_t lolen, const void *hi, size_t hilen,
                  bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    struct hostile *h = self;
    uint8_t b = next_lie(h);
    unsigned kind = b % S_KINDS, q = b / S_KINDS;
    if (kind == S_HONEST)
        return h->raw.vt->scan(h->raw.self, lo, lolen, hi, hilen, reverse, fn, ctx);
    h->lies++;
    uint8_t p2 = kind == S_FOREIGN || kind == S_REPEAT || kind == S_FAIL_MID || kind == S_FLIP
                     ? next_lie(h)
                     : 0;
    pairs_clear(h);
    CHECK(h->raw.vt->scan(h->raw.self, "", 0, "", 0, false, collect_pair, h) == SEGIDX_OK);
    /* [first, end): the range asked for, in the store's order. */
    size_t first = 0, end;
    while (first < h->n_all && lolen &&
           key_cmp(h->all[first].key, h->all[first].klen, lo, lolen) < 0)
        first++;
    end = first;
    while (end < h->n_all && (!hilen || key_cmp(h->all[end].key, h->all[end].klen, hi, hilen) < 0))
        end++;
    size_t m = end - first, n = 0;
    size_t *order = malloc((m + 2) * sizeof *order);
    CHECK(order != NULL);
    bool backwards = reverse != (kind == S_REVERSED);
    for (size_t i = 0; i < m; i++)
        order[n++] = backwards ? end - 1 - i : first + i;

    if (kind == S_FOREIGN && m < h->n_all) {
        /* Of the keys outside: the nearest on the side the visit starts
         * from, the nearest on the side it ends at, then the others. */
        size_t *cand = malloc((h->n_all - m) * sizeof *cand), nc = 0;
        CHECK(cand != NULL);
        if (reverse ? end < h->n_all : first > 0)
            cand[nc++] = reverse ? end : first - 1;
        if (reverse ? first > 0 : end < h->n_all)
            cand[nc++] = reverse ? first - 1 : end;
        size_t near = nc;
        for (size_t i = 0; i < h->n_all; i++)
            if ((i < first || i >= end) && i != cand[0] && (near < 2 || i != cand[1]))
                cand[nc++] = i;
        size_t at = p2 % (n + 1);
        memmove(order + at + 1, order + at, (n - at) * sizeof *order);
        order[at] = cand[q % nc];
        n++;
        free(cand);
    } else if (kind == S_SWAP && n >= 2) {
        size_t i = q % (n - 1), t = order[i];
        order[i] = order[i + 1];
        order[i + 1] = t;
    } else if (kind == S_REPEAT && n >= 1) {
        size_t i = q % n, at = i + 1 + p2 % (n - i);
        size_t again = order[i];
        memmove(order + at + 1, order + at, (n - at) * sizeof *order);
        order[at] = again;
        n++;
    }

    size_t spot = n ? q % n : 0; /* where a damaged key or value goes */
    size_t limit = kind == S_FAIL_MID ? q : n;
    int stop = 0;
    uint8_t *flip = NULL;
    for (size_t i = 0; i < n && i < limit; i++) {
        const struct pair *p = &h->all[order[i]];
        const void *key = p->key, *val = p->val;
        size_t klen = p->klen, vlen = p->vlen;
        if (i == spot) {
            if (kind == S_NULL_BYTES) {
                if (vlen)
                    val = NULL;
                else
                    key = NULL;
            } else if (kind == S_CUT_KEY) {
                klen--;
            } else if (kind == S_EMPTY_KEY) {
                klen = 0;
            } else if (kind == S_FLIP) {
                flip = malloc(vlen + 1);
                CHECK(flip != NULL);
                if (vlen) {
                    memcpy(flip, val, vlen);
                    flip[(p2 * 131u + q) % vlen] ^= (uint8_t)(1u << (p2 % 8));
                } else {
                    flip[0] = p2;
                    vlen = 1;
                }
                val = flip;
                h->flipped = true;
            }
        }
        int rc = fn(ctx, key, klen, val, vlen);
        if (rc && !stop)
            stop = rc;
        if (stop && kind != S_IGNORE_STOP)
            break;
    }
    free(flip);
    free(order);
    int rc = stop;
    if (kind == S_RC_END) {
        rc = q ? lie_rc[(q - 1) % 15] : 0; /* 0 after a stop: the stop dropped */
        if (rc != stop)
            note_said(h, rc);
    } else if (kind == S_FAIL_MID && !stop) {
        rc = lie_rc[p2 % 15]; /* after `limit` keys, or at the end */
        note_said(h, rc);
    }
    return rc;
}

static int h_write(void *self, const segidx_kv_op *ops, size_t n)
{
    struct hostile *h = self;
    uint8_t b = next_lie(h);
    unsigned kind = b % W_KINDS;
    int lie = lie_rc[(b / W_KINDS) % 15];
    h->writes++;
    if (kind == W_FAIL) {
        h->lies++;
        note_said(h, lie);
        return lie;
    }
    int rc = h->raw.vt->write(h->raw.self, ops, n);
    if (rc)
        return rc;
    h->applied++;
    if (kind == W_APPLY_FAIL) {
        h->lies++;
        h->unsure = true;
        note_said(h, lie);
        return lie;
    }
    return SEGIDX_OK;
}

/* The target closes the store itself: an index may be reopened over it. */
static void h_close(void *self)
{
    (void)self;
}

static const segidx_kv_vtable hostile_vt = { SEGIDX_KV_VTABLE_VERSION, h_get, h_scan, h_write,
                                             h_close };

/* The same store as a version-1 vtable: the index drops its EXPECTs. */
static const segidx_kv_vtable hostile_vt1 = { 1, h_get, h_scan, h_write, h_close };

/* The whole raw store, every key and value with their lengths, hashed:
 * two equal hashes mean the same bytes. */
static int dump_pair(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    XXH3_state_t *s = ctx;
    uint8_t len[16];
    put64(len, klen);
    put64(len + 8, vlen);
    CHECK(XXH3_128bits_update(s, len, sizeof len) == XXH_OK);
    CHECK(XXH3_128bits_update(s, key, klen) == XXH_OK);
    CHECK(XXH3_128bits_update(s, val, vlen) == XXH_OK);
    return 0;
}

static XXH128_hash_t dump_store(const struct hostile *h)
{
    XXH3_state_t s;
    CHECK(XXH3_128bits_reset(&s) == XXH_OK);
    CHECK(h->raw.vt->scan(h->raw.self, "", 0, "", 0, false, dump_pair, &s) == SEGIDX_OK);
    return XXH3_128bits_digest(&s);
}

/* ------------------------------------------------------------ model */

struct commit {
    uint64_t lsn, time;
    size_t n;
    segidx_sid sid[MAX_SEGS];         /* ascending, as the store orders them */
    segidx_offset_set *off[MAX_SEGS];
};

struct volume {
    segidx_vid vid;
    bool dirty;                 /* raw bytes were planted for it */
    struct commit c[MAX_COMMITS]; /* c[i].lsn == i + 1 */
    uint64_t lsn, keep_from, last_commit;
    uint32_t last_offset;
    bool written;
};

struct state {
    segidx_kv kv;               /* the raw store */
    struct hostile *h;          /* the store as vi sees it */
    segidx_volume_index *vi;
    bool version1;              /* vi sees a version-1 vtable */
    segidx_volume_index *check_vi; /* over the raw store: honest */
    struct volume vol[2];
    bool planted;               /* anything planted anywhere */
};

/* Before each checked call: forget what the store did in the last one. */
static void call_begin(struct state *st)
{
    struct hostile *h = st->h;
    h->lies = h->writes = h->applied = 0;
    h->n_said = 0;
    h->flipped = h->unsure = false;
}

/* An error the call may give because the store lied during it. */
static bool lie_error(const struct state *st, int rc)
{
    const struct hostile *h = st->h;
    if (!h->lies || rc >= 0)
        return false;
    if (rc == SEGIDX_ECORRUPT || rc == SEGIDX_EIO || (rc == SEGIDX_EVERSION && h->flipped))
        return true;
    for (size_t i = 0; i < h->n_said; i++)
        if (rc == h->said[i])
            return true;
    return false;
}

static bool allowed(const struct state *st, int rc)
{
    return rc == SEGIDX_OK || rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION ||
           rc == SEGIDX_ENOTFOUND || rc == SEGIDX_ECONFLICT || rc == SEGIDX_EINVAL ||
           rc == SEGIDX_ERANGE || lie_error(st, rc);
}

/* An entry of the model as the store should hold it now. */
struct mentry {
    uint64_t lsn;
    segidx_sid sid;
    segidx_offset_set *off; /* owned */
};

/* The entries after pruning to keep_from, oldest first: each entry below
 * keep_from loses what commits in (its lsn, keep_from] wrote; empty ones go. */
static size_t model_entries(const struct volume *v, uint64_t keep_from, struct mentry *out)
{
    size_t n = 0;
    for (uint64_t i = 0; i < v->lsn; i++) {
        const struct commit *c = &v->c[i];
        for (size_t j = 0; j < c->n; j++) {
            segidx_offset_set *off = copy_set(c->off[j]);
            for (uint64_t k = c->lsn; k < keep_from && k < v->lsn; k++)
                for (size_t m = 0; m < v->c[k].n; m++)
                    segidx_offset_set_free(cut_set(off, v->c[k].off[m]));
            if (segidx_offset_set_is_empty(off)) {
                segidx_offset_set_free(off);
                continue;
            }
            out[n++] = (struct mentry){ c->lsn, c->sid[j], off };
        }
    }
    return n;
}

static void mentries_free(struct mentry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free(e[i].off);
}

/* ------------------------------------------------------------ commit */

static int compare_sid(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int note_max(segidx_offset o, void *ctx)
{
    *(uint32_t *)ctx = o; /* ascending: the last one is the highest */
    return 0;
}

/* A commit's segments in sid order, the order of their keys; an
 * insertion sort keeps each sid with its offsets. */
static void sort_segments(struct commit *c)
{
    for (size_t i = 1; i < c->n; i++)
        for (size_t j = i; j > 0 && compare_sid(&c->sid[j], &c->sid[j - 1]) < 0; j--) {
            segidx_sid ts = c->sid[j];
            segidx_offset_set *to = c->off[j];
            c->sid[j] = c->sid[j - 1];
            c->off[j] = c->off[j - 1];
            c->sid[j - 1] = ts;
            c->off[j - 1] = to;
        }
}

/* Commit `lsn` of the model: the segments (their sets taken over) in sid
 * order, the order of their keys. */
static void model_commit(struct volume *v, uint64_t lsn, uint64_t time,
                         const segidx_commit_segment *segs, segidx_offset_set **offs, size_t n)
{
    struct commit *c = &v->c[v->lsn];
    c->lsn = lsn;
    c->time = time;
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        c->sid[i] = segs[i].sid;
        c->off[i] = offs[i];
        offs[i] = NULL;
    }
    sort_segments(c);
    for (size_t i = 0; i < n; i++) {
        uint32_t m = 0;
        segidx_offset_set_iterate(c->off[i], note_max, &m);
        if (!v->written || m > v->last_offset)
            v->last_offset = m;
        v->written = true;
    }
    v->lsn = lsn;
    v->last_commit = time;
}

static void verify_clean(struct state *st, struct volume *v);

static void op_commit(struct state *st, struct volume *v, struct reader *r)
{
    uint8_t mode = u8(r);
    uint64_t time = u8(r);
    size_t n = u8(r) % (MAX_SEGS + 1);
    segidx_commit_segment segs[MAX_SEGS];
    segidx_offset_set *offs[MAX_SEGS];
    for (size_t i = 0; i < n; i++) {
        segs[i].sid = make_sid(u8(r) % 6);
        offs[i] = read_offsets(r);
        segs[i].offsets = offs[i];
    }
    uint64_t lsn;
    if (mode >= 0xE0) {
        lsn = mode - 0xE0u;
    } else if (!v->dirty) {
        lsn = v->lsn + 1;
    } else { /* asked of the honest store: no lie is spent on it */
        segidx_volume_meta m;
        lsn = segidx_volume_get(st->check_vi, &v->vid, &m) == SEGIDX_OK ? m.lsn + 1 : 1;
    }
    /* The model has room for MAX_COMMITS commits; one op makes at most one. */
    CHECK(v->lsn + 1 < MAX_COMMITS || v->dirty);

    /* What the model expects: segments are checked before the LSN. */
    int want = SEGIDX_OK;
    for (size_t i = 0; i < n && !want; i++) {
        if (segidx_offset_set_is_empty(offs[i]) || segs[i].sid.bytes[0] == 0)
            want = SEGIDX_EINVAL;
        for (size_t j = 0; j < i && !want; j++)
            if (!memcmp(segs[i].sid.bytes, segs[j].sid.bytes, 16) || !disjoint(offs[i], offs[j]))
                want = SEGIDX_EINVAL;
    }
    if (!want && lsn != v->lsn + 1)
        want = SEGIDX_ECONFLICT;

    XXH128_hash_t before = dump_store(st->h);
    call_begin(st);
    int rc = segidx_volume_commit(st->vi, &v->vid, lsn, time, n ? segs : NULL, n);
    struct hostile *h = st->h;
    CHECK(allowed(st, rc));
    /* One write lands at most: after a write the store took, whatever it
     * then said, the LSN is taken and a retry must not write again. */
    CHECK(h->applied <= 1);
    if (rc == SEGIDX_OK)
        CHECK(h->applied == 1);
    else if (!h->applied)
        CHECK(XXH128_isEqual(before, dump_store(h))); /* not a byte changed */
    if (!v->dirty) {
        CHECK(rc == want || lie_error(st, rc));
        if (h->applied) {
            /* Written, whatever the store then said: the model takes it,
             * and the honest store must show exactly that. */
            CHECK(want == SEGIDX_OK);
            bool lied = h->lies > 0;
            model_commit(v, lsn, time, segs, offs, n);
            if (lied)
                verify_clean(st, v);
        }
    }
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free(offs[i]);
}

/* ------------------------------------------------------------ group commit */

#define GROUP_MAX 8

/* The arguments segidx_volume_commit() refuses: EINVAL. */
static bool bad_segments(const segidx_commit_segment *segs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (segidx_offset_set_is_empty(segs[i].offsets) || segs[i].sid.bytes[0] == 0)
            return true;
        for (size_t j = 0; j < i; j++)
            if (!memcmp(segs[i].sid.bytes, segs[j].sid.bytes, 16) ||
                !disjoint(segs[i].offsets, segs[j].offsets))
                return true;
    }
    return false;
}

/* A group of commits to either volume: all of them or none. For clean
 * volumes, exactly: the first item with bad arguments is EINVAL, else the
 * first whose LSN is not its volume's next is ECONFLICT, each naming that
 * item; else every commit lands, in one write. */
static void op_group(struct state *st, struct reader *r)
{
    size_t n = 1 + u8(r) % GROUP_MAX;
    segidx_volume_commit_item items[GROUP_MAX];
    segidx_commit_segment segs[GROUP_MAX][MAX_SEGS];
    segidx_offset_set *offs[GROUP_MAX][MAX_SEGS];
    struct volume *vols[GROUP_MAX];
    uint64_t next[2] = { st->vol[0].lsn + 1, st->vol[1].lsn + 1 };
    for (int k = 0; k < 2; k++)
        if (st->vol[k].dirty) { /* asked of the honest store */
            segidx_volume_meta m;
            next[k] = segidx_volume_get(st->check_vi, &st->vol[k].vid, &m) == SEGIDX_OK
                          ? m.lsn + 1 : 1;
        }
    bool dirty = false;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t mode = u8(r);
        int k = mode & 1;
        struct volume *v = &st->vol[k];
        uint64_t time = u8(r);
        size_t ns = u8(r) % (MAX_SEGS + 1);
        for (size_t j = 0; j < ns; j++) {
            segs[count][j].sid = make_sid(u8(r) % 6);
            offs[count][j] = read_offsets(r);
            segs[count][j].offsets = offs[count][j];
        }
        /* The model has room for MAX_COMMITS commits of a volume. */
        if (v->lsn + 1 + GROUP_MAX >= MAX_COMMITS && !v->dirty) {
            for (size_t j = 0; j < ns; j++)
                segidx_offset_set_free(offs[count][j]);
            continue;
        }
        uint64_t lsn = mode >= 0xE0 ? (uint64_t)(mode - 0xE0u) >> 1 : next[k];
        next[k] = lsn + 1;
        items[count] = (segidx_volume_commit_item){ v->vid, lsn, time, ns ? segs[count] : NULL,
                                                    ns };
        vols[count++] = v;
        dirty |= v->dirty;
    }
    if (!count)
        return;
    int want = SEGIDX_OK;
    size_t want_failed = count;
    for (size_t i = 0; i < count && !want; i++)
        if (bad_segments(segs[i], items[i].n)) {
            want = SEGIDX_EINVAL;
            want_failed = i;
        }
    uint64_t model_next[2] = { st->vol[0].lsn + 1, st->vol[1].lsn + 1 };
    for (size_t i = 0; i < count && !want; i++) {
        int k = vols[i] == &st->vol[1];
        if (items[i].lsn != model_next[k]++) {
            want = SEGIDX_ECONFLICT;
            want_failed = i;
        }
    }

    XXH128_hash_t before = dump_store(st->h);
    call_begin(st);
    size_t failed = SIZE_MAX;
    int rc = segidx_volume_commit_group(st->vi, items, count, &failed);
    struct hostile *h = st->h;
    CHECK(allowed(st, rc));
    CHECK(failed <= count);
    CHECK(h->applied <= 1);
    if (rc == SEGIDX_OK)
        CHECK(h->applied == 1 && failed == count);
    else if (!h->applied)
        CHECK(XXH128_isEqual(before, dump_store(h)));
    if (!dirty) {
        CHECK(rc == want || lie_error(st, rc));
        if (rc == want)
            CHECK(failed == want_failed || h->lies);
    }
    if (h->applied) {
        /* Written, whatever the store then said: a clean volume's items
         * were its next commits, and the model takes them. */
        for (size_t i = 0; i < count; i++) {
            CHECK(!bad_segments(segs[i], items[i].n));
            if (vols[i]->dirty)
                continue;
            CHECK(items[i].lsn == vols[i]->lsn + 1);
            model_commit(vols[i], items[i].lsn, items[i].commit_time, segs[i], offs[i],
                         items[i].n);
        }
        for (int k = 0; k < 2; k++)
            if (h->lies && !st->vol[k].dirty)
                verify_clean(st, &st->vol[k]);
    }
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < items[i].n; j++)
            segidx_offset_set_free(offs[i][j]);
}

/* ------------------------------------------------------------ find */

struct expect_cb {
    uint64_t lsn;
    segidx_sid sid;
    segidx_offset_set *cut; /* owned */
};

struct find_ctx {
    bool exact;                 /* compare with `want` */
    struct expect_cb want[MAX_ENTRIES];
    size_t n_want, calls;
    unsigned stop_after;        /* 0: never stop */
    uint64_t at;                /* highest LSN a callback may name */
    uint64_t last_lsn;          /* lsns are non-increasing */
    const segidx_offset_set *orig, *query;
};

static int find_cb(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    struct find_ctx *f = ctx;
    CHECK(sid != NULL && cut != NULL);
    CHECK(!segidx_offset_set_is_empty(cut));
    CHECK(lsn >= 1 && lsn <= f->at && lsn <= f->last_lsn);
    f->last_lsn = lsn;
    CHECK(subset(cut, f->orig));
    CHECK(disjoint(cut, f->query)); /* already cut from the query */
    if (f->exact) {
        CHECK(f->calls < f->n_want);
        const struct expect_cb *w = &f->want[f->calls];
        CHECK(w->lsn == lsn);
        CHECK(!memcmp(w->sid.bytes, sid->bytes, 16));
        CHECK(segidx_offset_set_equals(w->cut, cut));
    }
    f->calls++;
    return f->stop_after && f->calls == f->stop_after ? STOPPED : 0;
}

static void op_find(struct state *st, struct volume *v, struct reader *r)
{
    uint64_t lsn = read_lsn(r);
    unsigned stop_after = u8(r) % 4;
    segidx_offset_set *query = read_offsets(r);
    segidx_offset_set *orig = copy_set(query);

    struct find_ctx *f = calloc(1, sizeof *f);
    CHECK(f != NULL);
    f->stop_after = stop_after;
    f->orig = orig;
    f->query = query;
    f->last_lsn = UINT64_MAX;
    f->at = UINT64_MAX;

    int want = SEGIDX_OK;
    segidx_offset_set *left = NULL;
    if (!v->dirty) {
        f->exact = true;
        if (v->lsn == 0)
            want = SEGIDX_ENOTFOUND;
        else if (lsn < v->keep_from)
            want = SEGIDX_ERANGE;
        else {
            /* Walk the unpruned model: a prune must not change this. The
             * whole walk even when the callback stops: the calls come
             * after it, and the query is left as after it. */
            uint64_t at = lsn < v->lsn ? lsn : v->lsn;
            f->at = at;
            left = copy_set(query);
            for (uint64_t l = at; l >= 1 && !segidx_offset_set_is_empty(left); l--) {
                const struct commit *c = &v->c[l - 1];
                for (size_t j = c->n; j-- > 0 && !segidx_offset_set_is_empty(left);) {
                    segidx_offset_set *cut = cut_set(left, c->off[j]);
                    if (segidx_offset_set_is_empty(cut)) {
                        segidx_offset_set_free(cut);
                        continue;
                    }
                    f->want[f->n_want++] = (struct expect_cb){ l, c->sid[j], cut };
                }
            }
            if (stop_after && f->n_want >= stop_after)
                want = STOPPED;
        }
    }

    call_begin(st);
    int rc = segidx_volume_find_segments(st->vi, &v->vid, lsn, query, find_cb, f);
    CHECK(st->h->writes == 0);
    if (rc == STOPPED) {
        CHECK(stop_after && f->calls == stop_after);
    } else {
        CHECK(allowed(st, rc));
        CHECK(!stop_after || f->calls < stop_after);
        if (rc != SEGIDX_OK) { /* put back, and nothing handed out */
            CHECK(segidx_offset_set_equals(query, orig));
            CHECK(f->calls == 0);
        } else {
            CHECK(subset(query, orig));
        }
    }
    if (f->exact && rc != want) {
        /* Only a lie excuses another answer, and only an error. */
        CHECK(lie_error(st, rc));
    } else if (f->exact) {
        size_t calls = want == STOPPED ? stop_after : rc == SEGIDX_OK ? f->n_want : 0;
        CHECK(f->calls == calls);
        if (left)
            CHECK(segidx_offset_set_equals(query, left));
        else
            CHECK(segidx_offset_set_equals(query, orig));
    }
    for (size_t i = 0; i < f->n_want; i++)
        segidx_offset_set_free(f->want[i].cut);
    free(f);
    segidx_offset_set_free(left);
    segidx_offset_set_free(orig);
    segidx_offset_set_free(query);
}

/* ------------------------------------------------------------ reads */

struct commits_ctx {
    bool exact;
    struct mentry *want;
    size_t n_want, calls;
    uint64_t last_lsn;
    segidx_sid last_sid;
};

static int commits_cb(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                      const segidx_offset_set *offsets)
{
    struct commits_ctx *c = ctx;
    CHECK(sid != NULL && offsets != NULL);
    CHECK(!segidx_offset_set_is_empty(offsets));
    CHECK(lsn >= 1);
    /* Oldest first, then in sid order within a commit. */
    CHECK(lsn > c->last_lsn ||
          (lsn == c->last_lsn && (c->calls == 0 || compare_sid(sid, &c->last_sid) > 0)));
    c->last_lsn = lsn;
    c->last_sid = *sid;
    if (c->exact) {
        CHECK(c->calls < c->n_want);
        CHECK(c->want[c->calls].lsn == lsn);
        CHECK(!memcmp(c->want[c->calls].sid.bytes, sid->bytes, 16));
        CHECK(segidx_offset_set_equals(c->want[c->calls].off, offsets));
    }
    c->calls++;
    return 0;
}

/* segidx_volume_commits() through `vi` (the lying store's index or the
 * honest one), against the model's pruned entries when clean. Entries
 * handed out before an error must be exact too. */
static void check_commits(struct state *st, segidx_volume_index *vi, struct volume *v)
{
    struct commits_ctx *c = calloc(1, sizeof *c);
    struct mentry *want = calloc(MAX_ENTRIES, sizeof *want);
    CHECK(c != NULL && want != NULL);
    c->exact = !v->dirty;
    c->want = want;
    if (c->exact)
        c->n_want = model_entries(v, v->keep_from, want);
    call_begin(st);
    int rc = segidx_volume_commits(vi, &v->vid, commits_cb, c);
    CHECK(st->h->writes == 0);
    CHECK(allowed(st, rc));
    int want_rc = v->lsn ? SEGIDX_OK : SEGIDX_ENOTFOUND;
    if (c->exact && rc != want_rc)
        CHECK(lie_error(st, rc));
    else if (c->exact)
        CHECK(c->calls == c->n_want);
    mentries_free(want, c->n_want);
    free(want);
    free(c);
}

static void check_get(struct state *st, segidx_volume_index *vi, struct volume *v)
{
    segidx_volume_meta m, before;
    memset(&m, 0xA5, sizeof m);
    before = m;
    call_begin(st);
    int rc = segidx_volume_get(vi, &v->vid, &m);
    CHECK(st->h->writes == 0);
    CHECK(allowed(st, rc));
    if (rc)
        CHECK(!memcmp(&m, &before, sizeof m));
    else
        CHECK(m.lsn >= 1 && m.keep_from <= m.lsn);
    if (v->dirty)
        return;
    int want = v->lsn ? SEGIDX_OK : SEGIDX_ENOTFOUND;
    if (rc != want) {
        CHECK(lie_error(st, rc));
        return;
    }
    if (rc)
        return;
    CHECK(m.lsn == v->lsn && m.keep_from == v->keep_from && m.last_commit == v->last_commit &&
          m.last_offset == (v->written ? v->last_offset : 0));
}

struct list_ctx {
    struct state *st;
    bool exact;
    size_t calls;
    segidx_vid last;
};

static int list_cb(void *ctx, const segidx_vid *vid, const segidx_volume_meta *meta)
{
    struct list_ctx *l = ctx;
    CHECK(vid != NULL && meta != NULL);
    CHECK(meta->lsn >= 1 && meta->keep_from <= meta->lsn);
    CHECK(l->calls == 0 || memcmp(vid->bytes, l->last.bytes, 16) > 0);
    l->last = *vid;
    if (l->exact) {
        const struct volume *v = NULL;
        for (size_t i = 0; i < 2; i++)
            if (!memcmp(l->st->vol[i].vid.bytes, vid->bytes, 16))
                v = &l->st->vol[i];
        CHECK(v != NULL && v->lsn >= 1);
        CHECK(meta->lsn == v->lsn && meta->keep_from == v->keep_from &&
              meta->last_commit == v->last_commit);
    }
    l->calls++;
    return 0;
}

static void check_list(struct state *st)
{
    struct list_ctx l = { st, !st->planted, 0, { { 0 } } };
    call_begin(st);
    int rc = segidx_volume_list(st->vi, list_cb, &l);
    CHECK(st->h->writes == 0);
    CHECK(allowed(st, rc));
    if (l.exact && rc != SEGIDX_OK) {
        CHECK(lie_error(st, rc));
    } else if (l.exact) {
        CHECK(l.calls == (size_t)(st->vol[0].lsn > 0) + (size_t)(st->vol[1].lsn > 0));
    }
}

/* ------------------------------------------------------------ prune */

#define MAX_REPORTS 128

struct report_ctx {
    segidx_sid sid[MAX_REPORTS];
    size_t n;
};

static void report_cb(void *ctx, const segidx_sid *sid)
{
    struct report_ctx *r = ctx;
    CHECK(sid != NULL);
    for (size_t i = 0; i < r->n; i++)
        CHECK(memcmp(r->sid[i].bytes, sid->bytes, 16) != 0); /* once each */
    CHECK(r->n < MAX_REPORTS);
    r->sid[r->n++] = *sid;
}

static bool names_sid(const struct mentry *e, size_t n, const segidx_sid *sid)
{
    for (size_t i = 0; i < n; i++)
        if (!memcmp(e[i].sid.bytes, sid->bytes, 16))
            return true;
    return false;
}

static void op_prune(struct state *st, struct volume *v, bool report, struct reader *r)
{
    uint64_t keep_from = read_lsn(r);
    struct report_ctx rep = { .n = 0 };
    XXH128_hash_t dump = dump_store(st->h);
    call_begin(st);
    int rc = report ? segidx_volume_prune_report(st->vi, &v->vid, keep_from, report_cb, &rep)
                    : segidx_volume_prune(st->vi, &v->vid, keep_from);
    const struct hostile *h = st->h;
    bool lied = h->lies > 0, unsure = h->unsure;
    CHECK(allowed(st, rc));
    CHECK(h->applied <= 1); /* a write the store took is never made again */
    if (rc)
        CHECK(rep.n == 0);
    if (!h->applied)
        CHECK(XXH128_isEqual(dump, dump_store(h))); /* not a byte changed */
    if (v->dirty)
        return;
    int want = !v->lsn ? SEGIDX_ENOTFOUND : keep_from > v->lsn ? SEGIDX_EINVAL : SEGIDX_OK;
    CHECK(rc == want || lie_error(st, rc));
    if (!h->applied) {
        /* OK with nothing written only when there was nothing to do. */
        CHECK(rc != SEGIDX_OK || keep_from <= v->keep_from);
        CHECK(rep.n == 0);
        return;
    }
    /* Written, whatever the store then said: the model takes it. */
    CHECK(want == SEGIDX_OK && keep_from > v->keep_from);
    /* Reported: exactly the sids the entries named before and not after. */
    struct mentry *before = calloc(MAX_ENTRIES, sizeof *before);
    struct mentry *after = calloc(MAX_ENTRIES, sizeof *after);
    CHECK(before != NULL && after != NULL);
    size_t nb = model_entries(v, v->keep_from, before);
    size_t na = model_entries(v, keep_from, after);
    v->keep_from = keep_from;
    if (report) {
        for (size_t i = 0; i < rep.n; i++)
            CHECK(names_sid(before, nb, &rep.sid[i]) && !names_sid(after, na, &rep.sid[i]));
        /* All of them, unless the store took the write and said it had
         * not: the library then finds the prune done, as if by another
         * writer, which reports them itself. */
        for (size_t i = 0; i < nb && rc == SEGIDX_OK && !unsure; i++) {
            if (names_sid(after, na, &before[i].sid))
                continue;
            bool found = false;
            for (size_t j = 0; j < rep.n; j++)
                found |= !memcmp(rep.sid[j].bytes, before[i].sid.bytes, 16);
            CHECK(found);
        }
    }
    mentries_free(before, nb);
    mentries_free(after, na);
    free(before);
    free(after);
    /* The entries left are exactly the model's, as the honest store has
     * them: a lie must not have been written back. */
    check_commits(st, st->check_vi, v);
    if (lied)
        check_get(st, st->check_vi, v);
}

/* The honest store holds exactly the model's meta and entries. */
static void verify_clean(struct state *st, struct volume *v)
{
    check_get(st, st->check_vi, v);
    check_commits(st, st->check_vi, v);
}

/* ------------------------------------------------------------ re-point */

/* A new sid for `old`: the same but for byte 1, so that a program's sids
 * (make_sid: byte 0 only) and the re-pointed ones never meet, while one
 * re-pointed twice may come back to its first name. */
static segidx_sid moved_sid(const segidx_sid *old, uint8_t salt)
{
    segidx_sid sid = *old;
    sid.bytes[1] ^= (uint8_t)(salt | 1);
    return sid;
}

/* Re-point commit `lsn` of the volume: the segments `mask` picks (all
 * when it picks none) onto moved sids, each with the commit's whole
 * offsets (the re-point keeps only what the entries still hold). */
static void op_repoint(struct state *st, struct volume *v, struct reader *r)
{
    uint64_t lsn = read_lsn(r);
    uint8_t mask = u8(r), salt = u8(r);
    struct commit *c = lsn >= 1 && lsn <= v->lsn ? &v->c[lsn - 1] : NULL;
    segidx_sid old[MAX_SEGS];
    segidx_commit_segment segs[MAX_SEGS];
    size_t n = 0;
    bool picked[MAX_SEGS] = { false };
    for (size_t i = 0; c && i < c->n; i++)
        picked[i] = (mask >> i) & 1;
    bool any = false;
    for (size_t i = 0; c && i < c->n; i++)
        any |= picked[i];
    for (size_t i = 0; c && i < c->n; i++)
        if (picked[i] || !any) {
            picked[i] = true;
            old[n] = c->sid[i];
            segs[n] = (segidx_commit_segment){ moved_sid(&c->sid[i], salt), c->off[i] };
            n++;
        }
    segidx_offset_set *one = NULL;
    if (!n) { /* nothing to move: a move of a commit with no entries */
        one = segidx_offset_set_new();
        CHECK(one != NULL && segidx_offset_set_add(one, 0) == SEGIDX_OK);
        old[0] = make_sid(1);
        segs[0] = (segidx_commit_segment){ moved_sid(&old[0], salt), one };
        n = 1;
    }
    segidx_repoint mv = { v->vid, c ? lsn : UINT64_MAX, segs, n }; /* no commit: above any */
    /* A moved sid that another entry of the commit names is refused, when
     * the commit still has something to move. */
    bool clash = false;
    struct mentry *now = calloc(MAX_ENTRIES, sizeof *now);
    CHECK(now != NULL);
    size_t nn = v->dirty ? 0 : model_entries(v, v->keep_from, now);
    bool held = false;
    for (size_t i = 0; i < nn; i++) {
        if (now[i].lsn != mv.lsn)
            continue;
        bool replaced = false;
        for (size_t j = 0; j < n; j++)
            replaced |= !memcmp(now[i].sid.bytes, old[j].bytes, 16);
        held |= replaced;
        for (size_t j = 0; j < n && !replaced; j++)
            clash |= !memcmp(now[i].sid.bytes, segs[j].sid.bytes, 16);
    }
    mentries_free(now, nn);
    free(now);
    XXH128_hash_t dump = dump_store(st->h);
    call_begin(st);
    int rc = segidx_volume_repoint(st->vi, old, n, &mv, 1);
    const struct hostile *h = st->h;
    CHECK(allowed(st, rc));
    CHECK(h->applied <= 1);
    if (!h->applied)
        CHECK(XXH128_isEqual(dump, dump_store(h)));
    if (!v->dirty) {
        int want = held && clash ? SEGIDX_EINVAL : SEGIDX_OK;
        CHECK(rc == want || lie_error(st, rc));
        CHECK(!h->applied || (held && !clash)); /* written only when there was a move */
        if (rc == SEGIDX_OK && !h->lies)
            CHECK(h->applied == (held && !clash)); /* and always then */
        if (h->applied && c) { /* taken, whatever the store then said */
            for (size_t i = 0, j = 0; i < c->n; i++)
                if (picked[i])
                    c->sid[i] = segs[j++].sid;
            sort_segments(c);
        }
        verify_clean(st, v);
    }
    segidx_offset_set_free(one);
}

/* ------------------------------------------------------------ changed */

static int add_offset(segidx_offset o, void *ctx)
{
    return segidx_offset_set_add(ctx, o);
}

/* segidx_volume_changed(from, to): with nothing planted, exactly the
 * offsets the model's commits in (from, to] wrote, added to what `out`
 * held; on an error `out` as it was. */
static void op_changed(struct state *st, struct volume *v, struct reader *r)
{
    uint64_t from = read_lsn(r), to = read_lsn(r);
    segidx_offset_set *out = segidx_offset_set_new(), *want = segidx_offset_set_new();
    CHECK(out != NULL && want != NULL && segidx_offset_set_add(out, 7777777) == SEGIDX_OK);
    CHECK(segidx_offset_set_add(want, 7777777) == SEGIDX_OK);
    call_begin(st);
    int rc = segidx_volume_changed(st->vi, &v->vid, from, to, out);
    CHECK(st->h->writes == 0);
    CHECK(allowed(st, rc));
    if (rc)
        CHECK(segidx_offset_set_equals(out, want));
    if (!v->dirty) {
        int expect = from > to ? SEGIDX_EINVAL : !v->lsn ? SEGIDX_ENOTFOUND
                   : to < v->keep_from ? SEGIDX_ERANGE : SEGIDX_OK;
        CHECK(rc == expect || lie_error(st, rc));
        /* c[k] is commit k + 1: the commits in (from, to] are c[from..to). */
        for (uint64_t k = from; rc == SEGIDX_OK && k < to && k < v->lsn; k++)
            for (size_t i = 0; i < v->c[k].n; i++)
                CHECK(segidx_offset_set_iterate(v->c[k].off[i], add_offset, want) == 0);
        if (rc == SEGIDX_OK)
            CHECK(segidx_offset_set_equals(out, want));
    }
    segidx_offset_set_free(out);
    segidx_offset_set_free(want);
}

/* ------------------------------------------------------------ referenced */

struct refs_ctx {
    segidx_sid sid[MAX_ENTRIES * 2];
    size_t n;
};

static int refs_cb(void *ctx, const segidx_sid *sid)
{
    struct refs_ctx *r = ctx;
    CHECK(sid != NULL && r->n < MAX_ENTRIES * 2);
    CHECK(r->n == 0 || compare_sid(&r->sid[r->n - 1], sid) < 0); /* sid order, once each */
    r->sid[r->n++] = *sid;
    return 0;
}

/* segidx_volume_index_segments(): with nothing planted, exactly the sids
 * the model's entries name, over both volumes. */
static void check_segments(struct state *st)
{
    struct refs_ctx *r = calloc(1, sizeof *r);
    struct mentry *want = calloc(MAX_ENTRIES, sizeof *want);
    CHECK(r != NULL && want != NULL);
    call_begin(st);
    int rc = segidx_volume_index_segments(st->vi, refs_cb, r);
    CHECK(st->h->writes == 0);
    CHECK(allowed(st, rc));
    if (!st->planted && rc != SEGIDX_OK) {
        CHECK(lie_error(st, rc));
    } else if (!st->planted) {
        size_t named = 0;
        for (size_t v = 0; v < 2; v++) {
            size_t n = model_entries(&st->vol[v], st->vol[v].keep_from, want);
            for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (size_t k = 0; k < r->n && !found; k++)
                    found = !memcmp(r->sid[k].bytes, want[i].sid.bytes, 16);
                CHECK(found);
                named++;
            }
            mentries_free(want, n);
        }
        CHECK(r->n <= named);
        CHECK(named > 0 || r->n == 0);
    }
    free(want);
    free(r);
}

/* ------------------------------------------------------------ plant */

static void build_meta(uint8_t *out, struct reader *r)
{
    uint8_t ver = u8(r), flags = u8(r), lsn = u8(r), last = u8(r), keep = u8(r), time = u8(r);
    memset(out, 0, META_BYTES);
    memcpy(out, "SXVM", 4);
    put_le(out + 4, ver <= 1 ? 1 : ver, 2);
    put_le(out + 6, flags & 0x80 ? flags : flags & 1, 2);
    put_le(out + 8, lsn == 0xFF ? UINT64_MAX : lsn & 31u, 8);
    put_le(out + 16, last == 0xFF ? UINT32_MAX : last, 4);
    put_le(out + 24, time, 8);
    put_le(out + 32, keep == 0xFF ? UINT64_MAX : keep & 31u, 8);
    put_le(out + 40, XXH3_64bits(out, 40), 8);
}

/* A chunk map (docs/FORMAT.md, "Chunk map") for the checkpoint key `key`:
 * `count` offsets from the input, each with an LSN field of `width` bits;
 * valid as built (the LSNs may lie outside what the schedule allows). */
static size_t build_chunk_map(uint8_t *out, const uint8_t *key, struct reader *r)
{
    unsigned count = 1 + u8(r) % 8u, width = u8(r) % 9u, next = u8(r), step = 1 + u8(r) % 7u;
    bool dense = u8(r) & 1; /* the bitmap encoding: offsets 0..count-1 */
    if (dense)
        count = 256 + u8(r);
    size_t ob = dense ? 512 : 2 * (size_t)count, lb = ((size_t)count * width + 7) / 8;
    size_t n = 24 + ob + lb + 8;
    memset(out, 0, n);
    memcpy(out, "SXCK", 4);
    put_le(out + 4, 1, 2);
    out[6] = key[36];
    out[7] = dense;
    uint64_t round = 0;
    for (int i = 0; i < 8; i++)
        round = round << 8 | key[28 + i];
    put_le(out + 8, round, 8);
    put_le(out + 16, (uint32_t)key[37] << 24 | (uint32_t)key[38] << 16 | (uint32_t)key[39] << 8 |
                         key[40], 4);
    put_le(out + 20, count - 1, 2);
    out[22] = (uint8_t)width;
    for (unsigned i = 0; i < count; i++, next += step) {
        if (dense)
            out[24 + i / 8] |= (uint8_t)(1u << (i % 8));
        else
            put_le(out + 24 + 2 * i, next, 2); /* at most 255 + 7 * 8: increasing */
        uint64_t field = u8(r);
        for (unsigned b = 0; b < width; b++)
            if (field >> b & 1)
                out[24 + ob + (i * width + b) / 8] |= (uint8_t)(1u << ((i * width + b) % 8));
    }
    put_le(out + n - 8, XXH3_64bits(out, n - 8), 8);
    return n;
}

static void plant(struct state *st, struct volume *v, struct reader *r)
{
    uint8_t key[64];
    size_t klen;
    uint8_t kind = u8(r) % 6;
    bool del = false;
    switch (kind) {
    case 0: /* the meta */
        memcpy(key, "volumes/", 8);
        memcpy(key + 8, v->vid.bytes, 16);
        klen = META_KEY_LEN;
        v->dirty = true;
        break;
    case 1: /* a commit entry */
    case 4: { /* a delete, of the meta or of an entry */
        uint64_t lsn = read_lsn(r);
        segidx_sid sid = make_sid(u8(r));
        del = kind == 4;
        if (del && lsn == 0) {
            memcpy(key, "volumes/", 8);
            memcpy(key + 8, v->vid.bytes, 16);
            klen = META_KEY_LEN;
        } else {
            memcpy(key, "segments/", 9);
            memcpy(key + 9, v->vid.bytes, 16);
            put_be64(key + 25, lsn);
            memcpy(key + 33, sid.bytes, 16);
            klen = ENTRY_KEY_LEN;
        }
        v->dirty = true;
        break;
    }
    case 2: { /* a key of the wrong length under segments/ */
        uint64_t lsn = read_lsn(r);
        memcpy(key, "segments/", 9);
        memcpy(key + 9, v->vid.bytes, 16);
        put_be64(key + 25, lsn);
        memset(key + 33, 0, sizeof key - 33);
        key[33] = u8(r);
        klen = 1 + u8(r) % 63u;
        if (klen == ENTRY_KEY_LEN)
            klen++;
        if (klen >= 25)
            v->dirty = true;
        else /* short enough to be anybody's */
            st->vol[0].dirty = st->vol[1].dirty = true;
        break;
    }
    case 5: { /* a checkpoint value: at a round LSN, a level, a chunk */
        memcpy(key, "checkpoints/", 12);
        memcpy(key + 12, v->vid.bytes, 16);
        put_be64(key + 28, read_lsn(r));
        key[36] = u8(r) % 5;
        uint8_t c = u8(r);
        uint32_t chunk = c == 0xFF ? UINT32_MAX >> 12 : c == 0xFE ? 16 : c % 4u;
        for (int i = 0; i < 4; i++)
            key[37 + i] = (uint8_t)(chunk >> (24 - 8 * i));
        klen = 41;
        v->dirty = true;
        break;
    }
    default: /* a key of the wrong length under volumes/ */
        memcpy(key, "volumes/", 8);
        memcpy(key + 8, v->vid.bytes, 16);
        memset(key + 24, u8(r), sizeof key - 24);
        klen = 1 + u8(r) % 40u;
        if (klen == META_KEY_LEN)
            klen++;
        break;
    }
    st->planted = true;

    uint8_t val[16384];
    size_t vlen = 0;
    if (!del) {
        uint8_t vkind = kind == 5 ? 3 : u8(r) % 4;
        if (kind == 5 && u8(r) % 4 == 0)
            vkind = 0;
        if (vkind == 3 && kind == 5) { /* a chunk map */
            vlen = build_chunk_map(val, key, r);
        } else if (vkind == 0) { /* raw */
            vlen = u8(r) % 64u;
            for (size_t i = 0; i < vlen; i++)
                val[i] = u8(r);
        } else if (vkind == 1) { /* a meta */
            build_meta(val, r);
            vlen = META_BYTES;
        } else if (vkind == 2) { /* an OffsetSet */
            segidx_offset_set *s = read_offsets(r);
            vlen = segidx_offset_set_serialize(s, val, sizeof val);
            CHECK(vlen >= 24);
            segidx_offset_set_free(s);
        }
        if (vkind == 1 || vkind == 2 || (vkind == 3 && kind == 5)) {
            uint8_t pos = u8(r), flip = u8(r), len = u8(r), seal = u8(r);
            if (flip)
                val[pos % vlen] ^= flip;
            if (len) { /* cut short, or grown by zeros */
                size_t n = (size_t)len % (vlen + 8);
                if (n > vlen)
                    memset(val + vlen, 0, n - vlen);
                vlen = n;
            }
            if (vkind == 2 && (seal & 1) && vlen >= 24) { /* a fresh envelope */
                put_le(val + 8, vlen - 24, 4);
                put_le(val + 16, XXH3_64bits(val + 24, vlen - 24), 8);
            }
            if (vkind == 1 && (seal & 1) && vlen >= 48)
                put_le(val + 40, XXH3_64bits(val, 40), 8);
            if (vkind == 3 && (seal & 1) && vlen >= 8) /* the chunk map's checksum */
                put_le(val + vlen - 8, XXH3_64bits(val, vlen - 8), 8);
        }
    }
    segidx_kv_op op = { del ? SEGIDX_KV_DEL : SEGIDX_KV_PUT, key, klen, val, vlen };
    CHECK(st->kv.vt->write(st->kv.self, &op, 1) == SEGIDX_OK);
}

/* ------------------------------------------------------------ driver */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state *st = calloc(1, sizeof *st);
    CHECK(st != NULL);
    memcpy(st->vol[0].vid.bytes, "volume-A\0\0\0\0\0\0\0\1", 16);
    memset(st->vol[1].vid.bytes, 0xFF, 16);
    CHECK(segidx_kv_mem_open(&st->kv) == SEGIDX_OK);
    st->h = calloc(1, sizeof *st->h);
    CHECK(st->h != NULL);
    st->h->raw = st->kv;
    CHECK(segidx_volume_index_open_with((segidx_kv){ &hostile_vt, st->h }, &schedule, &st->vi) ==
          SEGIDX_OK);
    CHECK(segidx_volume_index_open_with(fuzz_borrowed(&st->kv), &schedule,
                                        &st->check_vi) == SEGIDX_OK);

    struct reader r = { data, size };
    for (int ops = 0; ops < MAX_OPS && r.n; ops++) {
        uint8_t c = u8(&r);
        struct volume *v = &st->vol[(c >> 3) & 1];
        switch (c & 7) {
        case 0:
            op_commit(st, v, &r);
            break;
        case 1:
            op_group(st, &r);
            break;
        case 2:
        case 3:
            op_find(st, v, &r);
            break;
        case 4:
            op_prune(st, v, (c >> 4) & 1, &r);
            break;
        case 5:
            switch ((c >> 4) % 6) {
            case 0:
                check_get(st, st->vi, v);
                break;
            case 1:
                check_list(st);
                break;
            case 2:
                check_commits(st, st->vi, v);
                break;
            case 3:
                op_repoint(st, v, &r);
                break;
            case 4:
                check_segments(st);
                break;
            default:
                op_changed(st, v, &r);
                break;
            }
            break;
        case 6:
            plant(st, v, &r);
            break;
        default: /* a new lie script, from the next store call on */
            if (c & 8) { /* and the index reopened over the other vtable version */
                segidx_volume_index_close(st->vi);
                st->version1 = !st->version1;
                segidx_kv kv = { st->version1 ? &hostile_vt1 : &hostile_vt, st->h };
                CHECK(segidx_volume_index_open_with(kv, &schedule, &st->vi) == SEGIDX_OK);
            }
            st->h->n_script = c >> 4;
            st->h->pos = 0;
            for (size_t i = 0; i < st->h->n_script; i++)
                st->h->script[i] = u8(&r);
            break;
        }
    }
    /* The end state, whatever the input did, told by an honest store. */
    st->h->n_script = 0;
    for (size_t i = 0; i < 2; i++) {
        check_get(st, st->vi, &st->vol[i]);
        check_commits(st, st->vi, &st->vol[i]);
    }
    check_list(st);

    segidx_volume_index_close(st->check_vi);
    segidx_volume_index_close(st->vi);
    pairs_clear(st->h);
    free(st->h->all);
    free(st->h);
    st->kv.vt->close(st->kv.self);
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < MAX_COMMITS; j++)
            for (size_t k = 0; k < st->vol[i].c[j].n; k++)
                segidx_offset_set_free(st->vol[i].c[j].off[k]);
    free(st);
    return 0;
}
