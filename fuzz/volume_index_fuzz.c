/* Fuzz target: the volume index (segidx_volume_*) over the in-memory store,
 * driven as a small program.
 *
 * The input is a sequence of at most MAX_OPS operations. Each starts with
 * one byte `c`: c % 8 picks the operation, bit 3 the volume (two volume
 * ids, one of them all 0xFF so that the "end of the volume's keys" carry is
 * walked), and c >> 4 is a small parameter. Operands follow; a short input
 * reads as zeros.
 *
 *   0, 1  commit    [lsn mode] [time] [n segs] n * ([sid] [offsets])
 *   2, 3  find      [lsn] [stop after] [offsets]
 *   4     prune     [keep_from]                   (c >> 4 odd: prune_report)
 *   5     read      get / list / commits          ((c >> 4) % 3)
 *   6, 7  plant     [key kind] ... [value kind] ...
 *
 * offsets = [count] count * ([a] [b]): a small range [a % 64, + b % 8], or
 * for a >= 0xFD a single UINT32_MAX, an offset above 65535 (a second
 * container) or a long range (bitmap and run containers).
 *
 * "plant" writes raw bytes straight into the store, under the meta key,
 * a commit entry key, a key of the wrong length under `segments/` or
 * `volumes/`, or deletes a key: this is how bad values reach the decoders.
 * Values are raw bytes, a meta built from the input (version, flags, fields,
 * then a checksum, then one byte flipped and a length cut or grown), an
 * OffsetSet's stored form (mutated the same way, its envelope resealed or
 * not) or nothing.
 *
 * A model holds the commits made through the API. While nothing was planted
 * for a volume ("clean"), every call on it is checked exactly against the
 * model: commit's result, get's meta, find's callbacks (newest first, each
 * with its cut) and its final query (the offsets never written), prune's
 * result, the unreferenced sids it reports, and the entries it leaves, and
 * that reads at or after the prune point answer as they did before it.
 * Once planted, a volume only has to give no crash, errors from the
 * expected list, and a find that fails must leave its query as it was.
 * Any broken invariant calls abort().
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

#define MAX_OPS 64
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
    segidx_kv kv;               /* the store, owned by vi */
    segidx_volume_index *vi;
    struct volume vol[2];
    bool planted;               /* anything planted anywhere */
};

static bool allowed(int rc)
{
    return rc == SEGIDX_OK || rc == SEGIDX_ECORRUPT || rc == SEGIDX_EVERSION ||
           rc == SEGIDX_ENOTFOUND || rc == SEGIDX_ECONFLICT || rc == SEGIDX_EINVAL ||
           rc == SEGIDX_ERANGE;
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
    } else {
        segidx_volume_meta m;
        lsn = segidx_volume_get(st->vi, &v->vid, &m) == SEGIDX_OK ? m.lsn + 1 : 1;
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

    int rc = segidx_volume_commit(st->vi, &v->vid, lsn, time, n ? segs : NULL, n);
    CHECK(allowed(rc));
    if (!v->dirty) {
        CHECK(rc == want);
        if (rc == SEGIDX_OK) {
            struct commit *c = &v->c[v->lsn];
            c->lsn = lsn;
            c->time = time;
            c->n = n;
            for (size_t i = 0; i < n; i++) {
                c->sid[i] = segs[i].sid;
                c->off[i] = offs[i];
                offs[i] = NULL;
            }
            /* In sid order, the order of their keys (insertion sort keeps
             * each sid with its offsets). */
            for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && compare_sid(&c->sid[j], &c->sid[j - 1]) < 0; j--) {
                    segidx_sid ts = c->sid[j];
                    segidx_offset_set *to = c->off[j];
                    c->sid[j] = c->sid[j - 1];
                    c->off[j] = c->off[j - 1];
                    c->sid[j - 1] = ts;
                    c->off[j - 1] = to;
                }
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
    }
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free(offs[i]);
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
            /* Walk the unpruned model: a prune must not change this. */
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
                    if (stop_after && f->n_want == stop_after) {
                        want = STOPPED;
                        break;
                    }
                }
                if (want == STOPPED)
                    break;
            }
        }
    }

    int rc = segidx_volume_find_segments(st->vi, &v->vid, lsn, query, find_cb, f);
    if (rc == STOPPED) {
        CHECK(stop_after && f->calls == stop_after);
    } else {
        CHECK(allowed(rc));
        CHECK(!stop_after || f->calls < stop_after);
        if (rc != SEGIDX_OK)
            CHECK(segidx_offset_set_equals(query, orig)); /* put back */
        else
            CHECK(subset(query, orig));
    }
    if (f->exact) {
        CHECK(rc == want);
        CHECK(f->calls == (rc == SEGIDX_OK || rc == STOPPED ? f->n_want : 0));
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

/* segidx_volume_commits(), against the model's pruned entries when clean. */
static void check_commits(struct state *st, struct volume *v)
{
    struct commits_ctx *c = calloc(1, sizeof *c);
    struct mentry *want = calloc(MAX_ENTRIES, sizeof *want);
    CHECK(c != NULL && want != NULL);
    c->exact = !v->dirty;
    c->want = want;
    if (c->exact)
        c->n_want = model_entries(v, v->keep_from, want);
    int rc = segidx_volume_commits(st->vi, &v->vid, commits_cb, c);
    CHECK(allowed(rc));
    if (c->exact) {
        CHECK(rc == (v->lsn ? SEGIDX_OK : SEGIDX_ENOTFOUND));
        CHECK(c->calls == c->n_want);
    }
    mentries_free(want, c->n_want);
    free(want);
    free(c);
}

static void check_get(struct state *st, struct volume *v)
{
    segidx_volume_meta m, before;
    memset(&m, 0xA5, sizeof m);
    before = m;
    int rc = segidx_volume_get(st->vi, &v->vid, &m);
    CHECK(allowed(rc));
    if (rc)
        CHECK(!memcmp(&m, &before, sizeof m));
    else
        CHECK(m.lsn >= 1 && m.keep_from <= m.lsn);
    if (v->dirty)
        return;
    if (!v->lsn) {
        CHECK(rc == SEGIDX_ENOTFOUND);
        return;
    }
    CHECK(rc == SEGIDX_OK);
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
    int rc = segidx_volume_list(st->vi, list_cb, &l);
    CHECK(allowed(rc));
    if (l.exact) {
        CHECK(rc == SEGIDX_OK);
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
    int rc = report ? segidx_volume_prune_report(st->vi, &v->vid, keep_from, report_cb, &rep)
                    : segidx_volume_prune(st->vi, &v->vid, keep_from);
    CHECK(allowed(rc));
    if (rc)
        CHECK(rep.n == 0);
    if (v->dirty)
        return;
    int want = !v->lsn ? SEGIDX_ENOTFOUND : keep_from > v->lsn ? SEGIDX_EINVAL : SEGIDX_OK;
    CHECK(rc == want);
    if (rc || keep_from <= v->keep_from) {
        CHECK(rep.n == 0);
        return;
    }
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
        for (size_t i = 0; i < nb; i++) {
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
    /* The entries left are exactly the model's. */
    check_commits(st, v);
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

static void plant(struct state *st, struct volume *v, struct reader *r)
{
    uint8_t key[64];
    size_t klen;
    uint8_t kind = u8(r) % 5;
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
        uint8_t vkind = u8(r) % 4;
        if (vkind == 0) { /* raw */
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
        if (vkind == 1 || vkind == 2) {
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
    CHECK(segidx_volume_index_open(st->kv, &st->vi) == SEGIDX_OK);

    struct reader r = { data, size };
    for (int ops = 0; ops < MAX_OPS && r.n; ops++) {
        uint8_t c = u8(&r);
        struct volume *v = &st->vol[(c >> 3) & 1];
        switch (c & 7) {
        case 0:
        case 1:
            op_commit(st, v, &r);
            break;
        case 2:
        case 3:
            op_find(st, v, &r);
            break;
        case 4:
            op_prune(st, v, (c >> 4) & 1, &r);
            break;
        case 5:
            switch ((c >> 4) % 3) {
            case 0:
                check_get(st, v);
                break;
            case 1:
                check_list(st);
                break;
            default:
                check_commits(st, v);
                break;
            }
            break;
        default:
            plant(st, v, &r);
            break;
        }
    }
    /* The end state, whatever the input did. */
    for (size_t i = 0; i < 2; i++) {
        check_get(st, &st->vol[i]);
        check_commits(st, &st->vol[i]);
    }
    check_list(st);

    segidx_volume_index_close(st->vi);
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < MAX_COMMITS; j++)
            for (size_t k = 0; k < st->vol[i].c[j].n; k++)
                segidx_offset_set_free(st->vol[i].c[j].off[k]);
    free(st);
    return 0;
}
