/* The volume index: an LSN-keyed catalog over a host's ordered KV
 * (docs/FORMAT.md, "Volume index").
 *
 * Exactness across writers: a volume's meta is the version of everything
 * stored for it. Every write (commit, prune) puts the meta it read back as
 * a SEGIDX_KV_EXPECT in the same batch, so a writer in another process or
 * on another host that got in between makes the store refuse the batch
 * whole (SEGIDX_ECONFLICT); the loser reads again and either finds its LSN
 * taken (a commit's ECONFLICT) or tries once more. Within one process a
 * mutex also orders writers, which is all a version-1 store gets.
 *
 * Exactness of reads: a read's meta and its scan are two calls, so a prune
 * may land between them. find_segments reads the meta again after its
 * scan and before it hands out anything: if the prune point passed the
 * read's LSN meanwhile, the answer may be torn and the read is
 * SEGIDX_ERANGE, as it would be after the prune; if it passed only the
 * LSN the scan read history at (a read above the head), the walk runs
 * again. A prune never changes an answer at or above its point, so a scan
 * that saw it is exact whenever that LSN is still allowed.
 *
 * Every store call goes through kv_guard.c, which holds what the store
 * hands back to the vtable's contract. */
#include "kv_guard.h"
#include "limiter.h"
#include "sync.h"

#include <stdlib.h>

struct segidx_volume_index {
    segidx_kv kv;
    segidx__mutex write_lock;      /* commits and prunes of this handle, one at a time */
    segidx__limiter *sync_permits; /* one catalog pull per volume at a time */
};

/* ------------------------------------------------------------ keys */

#define VOLUMES_PREFIX "volumes/"
#define VOLUMES_PREFIX_LEN 8
#define SEGMENTS_PREFIX "segments/"
#define SEGMENTS_PREFIX_LEN 9
#define META_KEY_LEN (VOLUMES_PREFIX_LEN + 16)
#define SEGMENT_KEY_LEN (SEGMENTS_PREFIX_LEN + 16 + 8 + 16)
#define SEGMENT_KEY_LSN (SEGMENTS_PREFIX_LEN + 16)
#define SEGMENT_KEY_SID (SEGMENT_KEY_LSN + 8)

static void store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void meta_key(uint8_t key[META_KEY_LEN], const segidx_vid *vid)
{
    memcpy(key, VOLUMES_PREFIX, VOLUMES_PREFIX_LEN);
    memcpy(key + VOLUMES_PREFIX_LEN, vid->bytes, 16);
}

/* `segments/` + vid + lsn + sid; callers cut it short for scan bounds. */
static void segment_key(uint8_t key[SEGMENT_KEY_LEN], const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_sid *sid)
{
    memcpy(key, SEGMENTS_PREFIX, SEGMENTS_PREFIX_LEN);
    memcpy(key + SEGMENTS_PREFIX_LEN, vid->bytes, 16);
    store_be64(key + SEGMENT_KEY_LSN, lsn);
    if (sid)
        memcpy(key + SEGMENT_KEY_SID, sid->bytes, 16);
    else
        memset(key + SEGMENT_KEY_SID, 0, 16);
}

/* The scan range of a volume's commits with lsn in [lo, hi]: keys from
 * segments/vid/BE(lo) up to (excluding) segments/vid/BE(hi + 1), or to the
 * end of the volume's prefix when hi is UINT64_MAX. */
struct lsn_range {
    uint8_t lo[SEGMENT_KEY_LSN + 8], hi[SEGMENT_KEY_LSN + 8];
    size_t hilen;
};

static void lsn_range(struct lsn_range *r, const segidx_vid *vid, segidx_lsn lo, segidx_lsn hi)
{
    uint8_t key[SEGMENT_KEY_LEN];
    segment_key(key, vid, lo, NULL);
    memcpy(r->lo, key, sizeof r->lo);
    r->hilen = sizeof r->hi;
    if (hi < UINT64_MAX) {
        segment_key(key, vid, hi + 1, NULL);
        memcpy(r->hi, key, sizeof r->hi);
        return;
    }
    /* The first key after every segments/vid/... key: vid + 1, carried. */
    memcpy(r->hi, key, SEGMENT_KEY_LSN);
    r->hilen = SEGMENT_KEY_LSN;
    for (int i = SEGMENT_KEY_LSN - 1; i >= SEGMENTS_PREFIX_LEN; i--)
        if (++r->hi[i] != 0)
            return;
    r->hilen = SEGMENTS_PREFIX_LEN; /* vid was all 0xFF: prefix + 1 */
    r->hi[SEGMENTS_PREFIX_LEN - 1]++;
}

/* ------------------------------------------------------------ meta */

#define META_BYTES 48
#define META_VERSION 1
#define META_FLAG_WRITTEN 1u
static const uint8_t meta_magic[4] = { 'S', 'X', 'V', 'M' };

struct meta {
    segidx_volume_meta pub;
    bool written; /* some offset was ever written: last_offset means it */
};

static void encode_meta(uint8_t out[META_BYTES], const struct meta *m)
{
    memset(out, 0, META_BYTES);
    memcpy(out, meta_magic, 4);
    segidx__store16(out + 4, META_VERSION);
    segidx__store16(out + 6, m->written ? META_FLAG_WRITTEN : 0);
    segidx__store64(out + 8, m->pub.lsn);
    segidx__store32(out + 16, m->pub.last_offset);
    segidx__store64(out + 24, m->pub.last_commit);
    segidx__store64(out + 32, m->pub.keep_from);
    segidx__store64(out + 40, segidx__xxh3(out, 40));
}

/* Only the bytes encode_meta() writes pass: every field, flag and
 * reserved byte is checked, so encoding a decoded meta gives back exactly
 * the stored bytes, which is what a write EXPECTs. */
static int decode_meta(const uint8_t *p, size_t len, struct meta *m)
{
    if (len < 6 || memcmp(p, meta_magic, 4) != 0)
        return SEGIDX_ECORRUPT;
    /* The version before the length: a later version may be longer. */
    if (segidx__load16(p + 4) != META_VERSION)
        return SEGIDX_EVERSION;
    if (len != META_BYTES)
        return SEGIDX_ECORRUPT;
    uint16_t flags = segidx__load16(p + 6);
    m->written = flags & META_FLAG_WRITTEN;
    m->pub.lsn = segidx__load64(p + 8);
    m->pub.last_offset = segidx__load32(p + 16);
    m->pub.last_commit = segidx__load64(p + 24);
    m->pub.keep_from = segidx__load64(p + 32);
    bool ok = (flags & ~META_FLAG_WRITTEN) == 0 && segidx__load32(p + 20) == 0 &&
              segidx__load64(p + 40) == segidx__xxh3(p, 40) && m->pub.lsn >= 1 &&
              m->pub.keep_from <= m->pub.lsn && (m->written || m->pub.last_offset == 0);
    return ok ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

struct meta_visit {
    struct meta *out;
    int rc;
};

static int visit_meta(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    struct meta_visit *v = ctx;
    v->rc = decode_meta(val, vlen, v->out);
    return 0;
}

/* The stored meta, or ENOTFOUND for a volume with no commit. */
static int read_meta(segidx_volume_index *vi, const segidx_vid *vid, struct meta *out)
{
    uint8_t key[META_KEY_LEN];
    meta_key(key, vid);
    struct meta_visit v = { out, SEGIDX_OK };
    int rc = segidx__kv_get(&vi->kv, key, sizeof key, visit_meta, &v);
    return rc ? rc : v.rc;
}

/* ------------------------------------------------------------ open, get */

int segidx_volume_index_open(segidx_kv kv, segidx_volume_index **out)
{
    if (!out || !kv.vt || kv.vt->version < 1 ||
        !kv.vt->get || !kv.vt->scan || !kv.vt->write || !kv.vt->close)
        return SEGIDX_EINVAL;
    segidx_volume_index *vi = calloc(1, sizeof *vi);
    if (!vi)
        return SEGIDX_ENOMEM;
    vi->kv = kv;
    if (segidx__limiter_new(0, &vi->sync_permits)) {
        free(vi);
        return SEGIDX_ENOMEM;
    }
    if (segidx__mutex_init(&vi->write_lock)) {
        segidx__limiter_free(vi->sync_permits);
        free(vi);
        return SEGIDX_ENOMEM;
    }
    *out = vi;
    return SEGIDX_OK;
}

void segidx_volume_index_close(segidx_volume_index *vi)
{
    if (!vi)
        return;
    vi->kv.vt->close(vi->kv.self);
    segidx__mutex_destroy(&vi->write_lock);
    segidx__limiter_free(vi->sync_permits);
    free(vi);
}

int segidx_volume_get(segidx_volume_index *vi, const segidx_vid *vid, segidx_volume_meta *out)
{
    if (!vi || !vid || !out)
        return SEGIDX_EINVAL;
    struct meta m;
    int rc = read_meta(vi, vid, &m);
    if (!rc)
        *out = m.pub;
    return rc;
}

/* ------------------------------------------------------------ commit */

static const segidx_sid zero_sid;

/* Distinct non-zero sids; non-empty, pairwise disjoint offsets. Returns
 * the highest offset through *max (when n > 0). */
static int check_commit_segments(const segidx_commit_segment *segs, size_t n, uint32_t *max)
{
    *max = 0;
    for (size_t i = 0; i < n; i++) {
        if (!segs[i].offsets || segidx_offset_set_is_empty(segs[i].offsets) ||
            memcmp(segs[i].sid.bytes, zero_sid.bytes, 16) == 0)
            return SEGIDX_EINVAL;
        uint32_t m = segidx__offset_set_max(segs[i].offsets);
        *max = m > *max ? m : *max;
        for (size_t j = 0; j < i; j++)
            if (segidx__id_equal(segs[i].sid.bytes, segs[j].sid.bytes) ||
                segidx__offset_set_intersects(segs[i].offsets, segs[j].offsets))
                return SEGIDX_EINVAL;
    }
    return SEGIDX_OK;
}

/* A write's condition: the meta key holds `old`'s bytes, or nothing for a
 * new volume. `buf` holds the key and the value it points at. */
static segidx_kv_op expect_meta(uint8_t buf[META_KEY_LEN + META_BYTES], const segidx_vid *vid,
                                const struct meta *old)
{
    meta_key(buf, vid);
    if (!old)
        return (segidx_kv_op){ SEGIDX_KV_EXPECT, buf, META_KEY_LEN, NULL, 0 };
    encode_meta(buf + META_KEY_LEN, old);
    return (segidx_kv_op){ SEGIDX_KV_EXPECT, buf, META_KEY_LEN, buf + META_KEY_LEN, META_BYTES };
}

/* How often a write that lost to another writer reads again and retries
 * when the loss left its own change still possible (a commit after a
 * prune elsewhere, a prune after a commit elsewhere). Each retry follows
 * a write that did land, so the store moved on; the bound only keeps a
 * writer from spinning behind an endless stream of others. */
#define WRITE_RETRIES 16

/* The batch of one commit: the EXPECT on the meta it read, the new meta,
 * and one entry per segment. Keys and values live in one allocation that
 * the caller frees. */
struct batch {
    segidx_kv_op *ops;
    uint8_t *bytes;
    size_t n;
};

static void batch_free(struct batch *b)
{
    free(b->ops);
    free(b->bytes);
}

static int build_commit_batch(struct batch *b, const segidx_vid *vid, segidx_lsn lsn,
                              const struct meta *old, const struct meta *m,
                              const segidx_commit_segment *segs, size_t n)
{
    size_t bytes = 2 * (META_KEY_LEN + META_BYTES);
    for (size_t i = 0; i < n; i++)
        bytes += SEGMENT_KEY_LEN + segidx_offset_set_serialized_size(segs[i].offsets);
    b->n = n + 2;
    b->ops = malloc(b->n * sizeof *b->ops);
    b->bytes = malloc(bytes);
    if (!b->ops || !b->bytes) {
        batch_free(b);
        return SEGIDX_ENOMEM;
    }
    uint8_t *p = b->bytes;
    b->ops[0] = expect_meta(p, vid, old);
    p += META_KEY_LEN + META_BYTES;
    meta_key(p, vid);
    encode_meta(p + META_KEY_LEN, m);
    b->ops[1] = (segidx_kv_op){ SEGIDX_KV_PUT, p, META_KEY_LEN, p + META_KEY_LEN, META_BYTES };
    p += META_KEY_LEN + META_BYTES;
    for (size_t i = 0; i < n; i++) {
        segment_key(p, vid, lsn, &segs[i].sid);
        size_t len = segidx_offset_set_serialized_size(segs[i].offsets);
        if (!len || segidx_offset_set_serialize(segs[i].offsets, p + SEGMENT_KEY_LEN, len) != len) {
            batch_free(b);
            return SEGIDX_ENOMEM;
        }
        b->ops[i + 2] = (segidx_kv_op){ SEGIDX_KV_PUT, p, SEGMENT_KEY_LEN, p + SEGMENT_KEY_LEN, len };
        p += SEGMENT_KEY_LEN + len;
    }
    return SEGIDX_OK;
}

/* The meta after commit `lsn`, from the meta before it (NULL: new volume). */
static int next_meta(const struct meta *old, segidx_lsn lsn, uint64_t commit_time, size_t n,
                     uint32_t max_offset, struct meta *out)
{
    segidx_lsn current = old ? old->pub.lsn : 0;
    if (lsn != current + 1 || lsn == 0)
        return SEGIDX_ECONFLICT;
    *out = old ? *old : (struct meta){ { 0, 0, 0, 0 }, false };
    out->pub.lsn = lsn;
    out->pub.last_commit = commit_time;
    if (n && (!out->written || max_offset > out->pub.last_offset))
        out->pub.last_offset = max_offset;
    out->written |= n > 0;
    return SEGIDX_OK;
}

/* One read of the meta and one conditional write. *lost: the write lost to
 * another writer (the meta moved since the read), so reading again may
 * succeed: if that writer committed, the next read finds `lsn` taken and
 * says ECONFLICT; a prune or checkpoint leaves it free. */
static int try_commit(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                      uint64_t commit_time, const segidx_commit_segment *segs, size_t n,
                      uint32_t max_offset, bool *lost)
{
    *lost = false;
    struct meta old, next;
    int rc = read_meta(vi, vid, &old);
    const struct meta *prev = rc == SEGIDX_OK ? &old : NULL;
    if (rc == SEGIDX_OK || rc == SEGIDX_ENOTFOUND)
        rc = next_meta(prev, lsn, commit_time, n, max_offset, &next);
    struct batch b = { 0 };
    if (!rc)
        rc = build_commit_batch(&b, vid, lsn, prev, &next, segs, n);
    if (rc)
        return rc;
    rc = segidx__kv_write(&vi->kv, b.ops, b.n);
    batch_free(&b);
    *lost = rc == SEGIDX_ECONFLICT;
    return rc;
}

int segidx_volume_commit(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                         uint64_t commit_time, const segidx_commit_segment *segs, size_t n)
{
    if (!vi || !vid || (n && !segs))
        return SEGIDX_EINVAL;
    uint32_t max_offset;
    int rc = check_commit_segments(segs, n, &max_offset);
    if (rc)
        return rc;
    segidx__mutex_lock(&vi->write_lock);
    bool lost = true;
    for (int attempt = 0; lost && attempt <= WRITE_RETRIES; attempt++)
        rc = try_commit(vi, vid, lsn, commit_time, segs, n, max_offset, &lost);
    segidx__mutex_unlock(&vi->write_lock);
    return rc;
}

/* ------------------------------------------------------------ entries */

/* A commit entry as the store holds it, parsed and checked. */
struct entry {
    segidx_lsn lsn;
    segidx_sid sid;
    segidx_offset_set *offsets; /* owned by whoever parsed it */
};

/* A key of `vid`'s entries. The scan's range says so already when the store
 * keeps to it; this is checked anyway, as it costs two compares. */
static bool is_entry_key(const uint8_t *key, size_t klen, const segidx_vid *vid)
{
    return klen == SEGMENT_KEY_LEN && memcmp(key, SEGMENTS_PREFIX, SEGMENTS_PREFIX_LEN) == 0 &&
           segidx__id_equal(key + SEGMENTS_PREFIX_LEN, vid->bytes);
}

/* An entry's key: of `vid`, with an LSN in 1..max_lsn. Fills e's lsn and
 * sid (its offsets are left NULL). */
static int parse_entry_key(const uint8_t *key, size_t klen, const segidx_vid *vid,
                           segidx_lsn max_lsn, struct entry *e)
{
    if (!is_entry_key(key, klen, vid))
        return SEGIDX_ECORRUPT;
    e->lsn = load_be64(key + SEGMENT_KEY_LSN);
    memcpy(e->sid.bytes, key + SEGMENT_KEY_SID, 16);
    e->offsets = NULL;
    return e->lsn == 0 || e->lsn > max_lsn ? SEGIDX_ECORRUPT : SEGIDX_OK;
}

/* What reading an entry's stored set gave, as the walks report it. */
static int entry_value_rc(int rc)
{
    return rc == SEGIDX_ENOMEM || rc == SEGIDX_EVERSION ? rc : SEGIDX_ECORRUPT;
}

static int parse_entry(const uint8_t *key, size_t klen, const void *val, size_t vlen,
                       const segidx_vid *vid, segidx_lsn max_lsn, struct entry *e)
{
    if (parse_entry_key(key, klen, vid, max_lsn, e))
        return SEGIDX_ECORRUPT;
    int rc = segidx_offset_set_deserialize(val, vlen, &e->offsets);
    if (rc)
        return entry_value_rc(rc);
    if (segidx_offset_set_is_empty(e->offsets)) {
        segidx_offset_set_free(e->offsets);
        return SEGIDX_ECORRUPT;
    }
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ find */

/* The hits are kept until the walk is known not to be torn. */
struct find_walk {
    const segidx_vid *vid;
    segidx_lsn max_lsn;
    segidx_offset_set *query;
    segidx__find_hit *hits;
    size_t n_hits, cap_hits;
    int err;       /* a corrupt entry, no memory */
};

void segidx__find_hits_free(segidx__find_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free(hits[i].cut);
    free(hits);
}

static int keep_find_hit(struct find_walk *w, const struct entry *e, segidx_offset_set *cut)
{
    if (w->n_hits == w->cap_hits) {
        size_t cap = w->cap_hits ? 2 * w->cap_hits : 8;
        segidx__find_hit *h = realloc(w->hits, cap * sizeof *h);
        if (!h)
            return SEGIDX_ENOMEM;
        w->hits = h;
        w->cap_hits = cap;
    }
    w->hits[w->n_hits++] = (segidx__find_hit){ e->sid, e->lsn, cut };
    return SEGIDX_OK;
}

/* A commit entry's key checked as parse_entry checks it, and its stored
 * set cut from the query straight from the value's bytes: checked exactly
 * as parse_entry checks them, without building the set. */
static int cut_entry(const uint8_t *key, size_t klen, const void *val, size_t vlen,
                     struct find_walk *w, struct entry *e, segidx_offset_set **cut)
{
    if (parse_entry_key(key, klen, w->vid, w->max_lsn, e))
        return SEGIDX_ECORRUPT;
    uint64_t stored = 0;
    int rc = segidx__offset_set_cut_stored(w->query, val, vlen, cut, &stored);
    if (rc)
        return entry_value_rc(rc);
    if (stored == 0) { /* an empty set cut nothing: the query is as it was */
        segidx_offset_set_free(*cut);
        return SEGIDX_ECORRUPT;
    }
    return SEGIDX_OK;
}

/* One commit entry, newest first: cut the query by it and keep the cut.
 * Any non-zero return ends the store's scan; the walk says why. (The
 * store has read one key more by then: kv_guard.c holds each key back
 * until the next shows that it came in order.) */
static int visit_for_find(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct find_walk *w = ctx;
    struct entry e;
    segidx_offset_set *cut;
    if ((w->err = cut_entry(key, klen, val, vlen, w, &e, &cut)))
        return 1;
    if (segidx_offset_set_is_empty(cut))
        segidx_offset_set_free(cut);
    else if ((w->err = keep_find_hit(w, &e, cut)))
        return segidx_offset_set_free(cut), 1;
    return segidx_offset_set_is_empty(w->query);
}

/* A walk that must be run again: internal, never returned. */
#define WALK_AGAIN 1

/* After the scan: the read stands only if the prune point has not passed
 * `at`, the LSN the walk read history at, and the volume is still there
 * with its LSN not gone back (a store that lost it has misbehaved). A
 * prune point past the query's own LSN makes the read SEGIDX_ERANGE; one
 * past `at` alone (commits and a prune landed during the walk, and the
 * query asked for a later LSN) means the history read may have lost pages
 * that newer commits rewrote: read again, from the newer meta. */
static int check_not_torn(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                          segidx_lsn at, const struct meta *before)
{
    struct meta now;
    int rc = read_meta(vi, vid, &now);
    if (rc)
        return rc == SEGIDX_ENOTFOUND ? SEGIDX_ECORRUPT : rc;
    if (now.pub.lsn < before->pub.lsn || now.pub.keep_from < before->pub.keep_from)
        return SEGIDX_ECORRUPT;
    if (lsn < now.pub.keep_from)
        return SEGIDX_ERANGE;
    return at < now.pub.keep_from ? WALK_AGAIN : SEGIDX_OK;
}

/* The walk of find_segments: the query cut, the hits kept. On an error, or
 * WALK_AGAIN, the query is as it was. */
static int find_walk_run(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                         const struct meta *m, struct find_walk *w)
{
    /* Kept so that a failure can put the query back as it was. */
    segidx_offset_set *saved = segidx_offset_set_copy(w->query);
    if (!saved)
        return SEGIDX_ENOMEM;
    segidx_lsn at = lsn < m->pub.lsn ? lsn : m->pub.lsn;
    struct lsn_range r;
    lsn_range(&r, vid, 0, at); /* from 0: an entry at LSN 0 is corrupt, as in every other walk */
    int scan = segidx__kv_scan(&vi->kv, r.lo, sizeof r.lo, r.hi, r.hilen, true, visit_for_find,
                               w);
    int rc = w->err ? w->err : scan < 0 ? scan : SEGIDX_OK;
    if (!rc)
        rc = check_not_torn(vi, vid, lsn, at, m);
    if (rc)
        segidx__offset_set_swap(w->query, saved);
    segidx_offset_set_free(saved);
    return rc;
}

/* Read the meta and walk, again while a prune overtakes the walk; at most
 * WRITE_RETRIES + 1 times, each after a prune that did land. */
static int find_walk(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                     struct find_walk *w)
{
    for (int attempt = 0; attempt <= WRITE_RETRIES; attempt++) {
        struct meta m;
        int rc = read_meta(vi, vid, &m);
        if (rc)
            return rc;
        if (lsn < m.pub.keep_from)
            return SEGIDX_ERANGE;
        if (lsn == 0 || segidx_offset_set_is_empty(w->query))
            return SEGIDX_OK;
        w->max_lsn = m.pub.lsn;
        rc = find_walk_run(vi, vid, lsn, &m, w);
        if (rc != WALK_AGAIN)
            return rc;
        segidx__find_hits_free(w->hits, w->n_hits);
        w->hits = NULL;
        w->n_hits = w->cap_hits = 0;
    }
    return SEGIDX_ECONFLICT;
}

int segidx_volume_find_segments(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                                segidx_offset_set *query,
                                int (*fn)(void *ctx, const segidx_sid *sid, segidx_lsn lsn,
                                          segidx_offset_set *cut),
                                void *ctx)
{
    if (!vi || !vid || !query || !fn)
        return SEGIDX_EINVAL;
    segidx__find_hit *hits;
    size_t n;
    int rc = segidx__volume_find(vi, vid, lsn, query, &hits, &n);
    /* Only now, with the walk known whole, does anything leave the call:
     * and no store lock is held, so fn may call the library again. */
    for (size_t i = 0; i < n && !rc; i++)
        rc = fn(ctx, &hits[i].sid, hits[i].lsn, hits[i].cut);
    segidx__find_hits_free(hits, n);
    return rc;
}

int segidx__volume_find(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                        segidx_offset_set *query, segidx__find_hit **hits, size_t *n)
{
    struct find_walk w = { vid, 0, query, NULL, 0, 0, 0 };
    int rc = find_walk(vi, vid, lsn, &w);
    if (rc) {
        segidx__find_hits_free(w.hits, w.n_hits);
        w.hits = NULL;
        w.n_hits = 0;
    }
    *hits = w.hits;
    *n = w.n_hits;
    return rc;
}

/* ------------------------------------------------------------ listing */

struct list_walk {
    int (*fn)(void *ctx, const segidx_vid *vid, const segidx_volume_meta *meta);
    void *ctx;
    int err, stop;
};

static int visit_for_list(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct list_walk *w = ctx;
    struct meta m;
    if (klen != META_KEY_LEN || memcmp(key, VOLUMES_PREFIX, VOLUMES_PREFIX_LEN) != 0) {
        w->err = SEGIDX_ECORRUPT;
        return 1;
    }
    if ((w->err = decode_meta(val, vlen, &m)))
        return 1;
    segidx_vid vid;
    memcpy(vid.bytes, (const uint8_t *)key + VOLUMES_PREFIX_LEN, 16);
    return w->stop = w->fn(w->ctx, &vid, &m.pub);
}

int segidx_volume_list(segidx_volume_index *vi,
                       int (*fn)(void *ctx, const segidx_vid *vid, const segidx_volume_meta *meta),
                       void *ctx)
{
    if (!vi || !fn)
        return SEGIDX_EINVAL;
    uint8_t hi[VOLUMES_PREFIX_LEN];
    memcpy(hi, VOLUMES_PREFIX, VOLUMES_PREFIX_LEN);
    hi[VOLUMES_PREFIX_LEN - 1]++; /* "volumes0": just past every volumes/ key */
    struct list_walk w = { fn, ctx, 0, 0 };
    int scan = segidx__kv_scan(&vi->kv, VOLUMES_PREFIX, VOLUMES_PREFIX_LEN, hi, sizeof hi, false,
                               visit_for_list, &w);
    return w.err ? w.err : scan; /* scan: 0, fn's stop, or an error */
}

struct commits_walk {
    const segidx_vid *vid;
    segidx_lsn max_lsn;
    int (*fn)(void *ctx, segidx_lsn lsn, const segidx_sid *sid, const segidx_offset_set *offsets);
    void *ctx;
    int err, stop;
};

static int visit_for_commits(void *ctx, const void *key, size_t klen, const void *val,
                             size_t vlen)
{
    struct commits_walk *w = ctx;
    struct entry e;
    if ((w->err = parse_entry(key, klen, val, vlen, w->vid, w->max_lsn, &e)))
        return 1;
    w->stop = w->fn(w->ctx, e.lsn, &e.sid, e.offsets);
    segidx_offset_set_free(e.offsets);
    return w->stop;
}

int segidx_volume_commits(segidx_volume_index *vi, const segidx_vid *vid,
                          int (*fn)(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                                    const segidx_offset_set *offsets),
                          void *ctx)
{
    if (!vi || !vid || !fn)
        return SEGIDX_EINVAL;
    struct meta m;
    int rc = read_meta(vi, vid, &m);
    if (rc)
        return rc;
    /* Up to the LSN the meta names: a commit landing after the meta was
     * read is not listed (and not taken for damage). */
    struct lsn_range r;
    lsn_range(&r, vid, 0, m.pub.lsn);
    struct commits_walk w = { vid, m.pub.lsn, fn, ctx, 0, 0 };
    int scan = segidx__kv_scan(&vi->kv, r.lo, sizeof r.lo, r.hi, r.hilen, false,
                               visit_for_commits, &w);
    return w.err ? w.err : scan; /* scan: 0, fn's stop, or an error */
}

/* ------------------------------------------------------------ prune */

/* Every commit entry of a volume, oldest first, read in one scan. */
struct entry_list {
    struct entry *e;
    size_t n, cap;
    const segidx_vid *vid;
    segidx_lsn max_lsn;
    int err;
};

static void entry_list_free(struct entry_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        segidx_offset_set_free(l->e[i].offsets);
    free(l->e);
}

static int visit_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct entry_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct entry *e = realloc(l->e, cap * sizeof *e);
        if (!e) {
            l->err = SEGIDX_ENOMEM;
            return 1;
        }
        l->e = e;
        l->cap = cap;
    }
    if ((l->err = parse_entry(key, klen, val, vlen, l->vid, l->max_lsn, &l->e[l->n])))
        return 1;
    l->n++;
    return 0;
}

static int read_entries(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn max_lsn,
                        struct entry_list *l)
{
    struct lsn_range r;
    lsn_range(&r, vid, 0, max_lsn);
    *l = (struct entry_list){ NULL, 0, 0, vid, max_lsn, 0 };
    int scan = segidx__kv_scan(&vi->kv, r.lo, sizeof r.lo, r.hi, r.hilen, false, visit_collect,
                               l);
    int rc = l->err ? l->err : scan < 0 ? scan : SEGIDX_OK;
    if (rc)
        entry_list_free(l);
    return rc;
}

static int compare_sids(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* What a prune writes, and which sids it keeps and drops. The batch: the
 * EXPECT on the meta read, the entry ops, the new meta. */
struct prune_plan {
    segidx_kv_op *ops;
    uint8_t **bufs;     /* the key + value bytes of each entry op (NULL for the others) */
    size_t n_ops;
    segidx_sid *kept, *dropped;
    size_t n_kept, n_dropped;
    uint8_t expect[META_KEY_LEN + META_BYTES];
    uint8_t meta[META_KEY_LEN + META_BYTES];
};

static void prune_plan_free(struct prune_plan *p)
{
    for (size_t i = 0; p->bufs && i < p->n_ops; i++)
        free(p->bufs[i]);
    free(p->bufs);
    free(p->ops);
    free(p->kept);
    free(p->dropped);
}

/* An op on a commit entry's key: a DEL, or a PUT of `offsets`. */
static int plan_entry_op(struct prune_plan *p, const segidx_vid *vid, const struct entry *e,
                         const segidx_offset_set *offsets)
{
    size_t vlen = offsets ? segidx_offset_set_serialized_size(offsets) : 0;
    uint8_t *buf = malloc(SEGMENT_KEY_LEN + vlen);
    if (!buf || (offsets && !vlen))
        return free(buf), SEGIDX_ENOMEM;
    segment_key(buf, vid, e->lsn, &e->sid);
    if (offsets)
        segidx_offset_set_serialize(offsets, buf + SEGMENT_KEY_LEN, vlen);
    p->bufs[p->n_ops] = buf;
    p->ops[p->n_ops++] = (segidx_kv_op){ offsets ? SEGIDX_KV_PUT : SEGIDX_KV_DEL, buf,
                                         SEGMENT_KEY_LEN, buf + SEGMENT_KEY_LEN, vlen };
    return SEGIDX_OK;
}

/* Walk the entries newest first. `seen` gathers the offsets of commits in
 * (entry, keep_from]: what an entry below keep_from still answers for some
 * read at or after keep_from is its offsets minus those. */
static int plan_prune(struct prune_plan *p, const segidx_vid *vid, struct entry_list *l,
                      segidx_lsn keep_from)
{
    segidx_offset_set *seen = segidx_offset_set_new();
    p->ops = malloc((l->n + 2) * sizeof *p->ops);
    p->bufs = calloc(l->n + 2, sizeof *p->bufs);
    p->n_ops = 1; /* ops[0] is the EXPECT */
    p->kept = malloc((l->n + 1) * sizeof *p->kept);
    p->dropped = malloc((l->n + 1) * sizeof *p->dropped);
    int rc = seen && p->ops && p->bufs && p->kept && p->dropped ? SEGIDX_OK : SEGIDX_ENOMEM;
    for (size_t i = l->n; i-- > 0 && !rc;) {
        struct entry *e = &l->e[i];
        if (e->lsn > keep_from) {
            p->kept[p->n_kept++] = e->sid;
            continue;
        }
        uint64_t before = segidx_offset_set_cardinality(e->offsets);
        /* Below keep_from, keep only what (lsn, keep_from] did not rewrite;
         * what was cut away is in `seen` already. */
        segidx_offset_set *shadowed = NULL;
        if (e->lsn < keep_from && !(shadowed = segidx_offset_set_cut(e->offsets, seen))) {
            rc = SEGIDX_ENOMEM;
            break;
        }
        segidx_offset_set_free(shadowed);
        if (!segidx__offset_set_union(seen, e->offsets)) {
            rc = SEGIDX_ENOMEM;
            break;
        }
        if (segidx_offset_set_is_empty(e->offsets)) {
            p->dropped[p->n_dropped++] = e->sid;
            rc = plan_entry_op(p, vid, e, NULL);
        } else {
            p->kept[p->n_kept++] = e->sid;
            if (segidx_offset_set_cardinality(e->offsets) < before)
                rc = plan_entry_op(p, vid, e, e->offsets);
        }
    }
    segidx_offset_set_free(seen);
    return rc;
}

/* Each dropped sid that no kept entry names, once. */
static void report_unreferenced(struct prune_plan *p,
                                void (*fn)(void *ctx, const segidx_sid *sid), void *ctx)
{
    if (!p->n_dropped) /* also a prune that had nothing to do, and planned nothing */
        return;
    qsort(p->kept, p->n_kept, sizeof *p->kept, compare_sids);
    qsort(p->dropped, p->n_dropped, sizeof *p->dropped, compare_sids);
    for (size_t i = 0; i < p->n_dropped; i++) {
        if (i && !compare_sids(&p->dropped[i], &p->dropped[i - 1]))
            continue;
        if (!bsearch(&p->dropped[i], p->kept, p->n_kept, sizeof *p->kept, compare_sids))
            fn(ctx, &p->dropped[i]);
    }
}

/* One read and one conditional write, as try_commit(). `p` is filled
 * (and must be freed) whatever the outcome. */
static int try_prune(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn keep_from,
                     struct prune_plan *p, bool *lost)
{
    *lost = false;
    struct meta m;
    int rc = read_meta(vi, vid, &m);
    if (!rc && keep_from > m.pub.lsn)
        rc = SEGIDX_EINVAL;
    if (rc || keep_from <= m.pub.keep_from)
        return rc;
    struct entry_list l;
    if ((rc = read_entries(vi, vid, m.pub.lsn, &l)))
        return rc;
    rc = plan_prune(p, vid, &l, keep_from);
    entry_list_free(&l);
    if (rc)
        return rc;
    p->ops[0] = expect_meta(p->expect, vid, &m);
    m.pub.keep_from = keep_from;
    meta_key(p->meta, vid);
    encode_meta(p->meta + META_KEY_LEN, &m);
    p->ops[p->n_ops] = (segidx_kv_op){ SEGIDX_KV_PUT, p->meta, META_KEY_LEN,
                                       p->meta + META_KEY_LEN, META_BYTES };
    rc = segidx__kv_write(&vi->kv, p->ops, p->n_ops + 1);
    *lost = rc == SEGIDX_ECONFLICT;
    return rc;
}

int segidx_volume_prune_report(segidx_volume_index *vi, const segidx_vid *vid,
                               segidx_lsn keep_from,
                               void (*unreferenced)(void *ctx, const segidx_sid *sid), void *ctx)
{
    if (!vi || !vid)
        return SEGIDX_EINVAL;
    segidx__mutex_lock(&vi->write_lock);
    struct prune_plan p = { 0 };
    bool lost = true;
    int rc = SEGIDX_OK;
    for (int attempt = 0; lost && attempt <= WRITE_RETRIES; attempt++) {
        prune_plan_free(&p);
        p = (struct prune_plan){ 0 };
        rc = try_prune(vi, vid, keep_from, &p, &lost);
    }
    segidx__mutex_unlock(&vi->write_lock);
    if (!rc && unreferenced)
        report_unreferenced(&p, unreferenced, ctx);
    prune_plan_free(&p);
    return rc;
}

int segidx_volume_prune(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn keep_from)
{
    return segidx_volume_prune_report(vi, vid, keep_from, NULL, NULL);
}

/* ------------------------------------------------------------ sync */

/* The volume's LSN: 0 for a volume with no commit. */
static int current_lsn(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn *lsn)
{
    struct meta m;
    int rc = read_meta(vi, vid, &m);
    *lsn = rc ? 0 : m.pub.lsn;
    return rc == SEGIDX_ENOTFOUND ? SEGIDX_OK : rc;
}

int segidx_volume_sync(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                       int (*pull)(void *ctx, segidx_volume_index *vi, const segidx_vid *vid,
                                   segidx_lsn have),
                       void *ctx)
{
    if (!vi || !vid || !pull)
        return SEGIDX_EINVAL;
    segidx_lsn have;
    int rc = current_lsn(vi, vid, &have);
    if (rc || have >= lsn)
        return rc;
    if ((rc = segidx__limiter_acquire(vi->sync_permits, vid->bytes)))
        return rc;
    /* Whoever held the permit before may have pulled what we need. */
    rc = current_lsn(vi, vid, &have);
    if (!rc && have < lsn) {
        rc = segidx__host_rc(pull(ctx, vi, vid, have));
        if (!rc && !(rc = current_lsn(vi, vid, &have)) && have < lsn)
            rc = SEGIDX_ERANGE;
    }
    segidx__limiter_release(vi->sync_permits, vid->bytes);
    return rc;
}
