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
 * A re-point after compaction changes no answer and no meta: it EXPECTs
 * the entries it replaces instead, and prune, the other writer of
 * existing entries, EXPECTs the entries it changes as well.
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
#include "checkpoint.h"
#include "kv_guard.h"
#include "limiter.h"
#include "sync.h"

#include <stdlib.h>

struct segidx_volume_index {
    segidx_kv kv;
    segidx__ckpt_policy policy;    /* for volumes without checkpoints yet; commits == 0: none */
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

static void store_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
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

/* Version 1: a volume without checkpoints; version 2 adds their schedule. */
#define META_V1_BYTES 48
#define META_V2_BYTES 64
#define META_MAX_BYTES META_V2_BYTES
#define META_FLAG_WRITTEN 1u
static const uint8_t meta_magic[4] = { 'S', 'X', 'V', 'M' };

/* Field positions (docs/FORMAT.md, "Volume meta"); the checksum is the
 * last 8 bytes of either version. */
#define META_MAGIC 0
#define META_VERSION 4
#define META_FLAGS 6
#define META_LSN 8
#define META_LAST_OFFSET 16
#define META_RESERVED 20
#define META_LAST_COMMIT 24
#define META_KEEP_FROM 32
/* Version 2 only. */
#define META_CKPT_FROM 40
#define META_CKPT_COMMITS 48
#define META_CKPT_FANOUT 52
#define META_CKPT_LEVELS 53
#define META_CKPT_RESERVED 54
#define META_SUM_BYTES 8

struct meta {
    segidx_volume_meta pub;
    bool written;             /* some offset was ever written: last_offset means it */
    segidx__ckpt_policy ckpt; /* from == 0: no checkpoints (a version-1 meta) */
};

static size_t meta_bytes(const struct meta *m)
{
    return m->ckpt.from ? META_V2_BYTES : META_V1_BYTES;
}

/* Returns the length written: meta_bytes(m). */
static size_t encode_meta(uint8_t out[META_MAX_BYTES], const struct meta *m)
{
    size_t len = meta_bytes(m);
    memset(out, 0, len);
    memcpy(out + META_MAGIC, meta_magic, 4);
    segidx__store16(out + META_VERSION, m->ckpt.from ? 2 : 1);
    segidx__store16(out + META_FLAGS, m->written ? META_FLAG_WRITTEN : 0);
    segidx__store64(out + META_LSN, m->pub.lsn);
    segidx__store32(out + META_LAST_OFFSET, m->pub.last_offset);
    segidx__store64(out + META_LAST_COMMIT, m->pub.last_commit);
    segidx__store64(out + META_KEEP_FROM, m->pub.keep_from);
    if (m->ckpt.from) {
        segidx__store64(out + META_CKPT_FROM, m->ckpt.from);
        segidx__store32(out + META_CKPT_COMMITS, m->ckpt.commits);
        out[META_CKPT_FANOUT] = m->ckpt.fanout;
        out[META_CKPT_LEVELS] = m->ckpt.levels;
    }
    size_t body = len - META_SUM_BYTES;
    segidx__store64(out + body, segidx__xxh3(out, body));
    return len;
}

/* Only the bytes encode_meta() writes pass: every field, flag and
 * reserved byte is checked, so encoding a decoded meta gives back exactly
 * the stored bytes, which is what a write EXPECTs. */
static int decode_meta(const uint8_t *p, size_t len, struct meta *m)
{
    if (len < META_VERSION + 2 || memcmp(p + META_MAGIC, meta_magic, 4) != 0)
        return SEGIDX_ECORRUPT;
    /* The version before the length: a later version may be longer. */
    uint16_t version = segidx__load16(p + META_VERSION);
    if (version != 1 && version != 2)
        return SEGIDX_EVERSION;
    if (len != (version == 1 ? META_V1_BYTES : META_V2_BYTES))
        return SEGIDX_ECORRUPT;
    uint16_t flags = segidx__load16(p + META_FLAGS);
    m->written = flags & META_FLAG_WRITTEN;
    m->pub.lsn = segidx__load64(p + META_LSN);
    m->pub.last_offset = segidx__load32(p + META_LAST_OFFSET);
    m->pub.last_commit = segidx__load64(p + META_LAST_COMMIT);
    m->pub.keep_from = segidx__load64(p + META_KEEP_FROM);
    m->ckpt = (segidx__ckpt_policy){ 0, 0, 0, 0 };
    size_t body = len - META_SUM_BYTES;
    bool ok = (flags & ~META_FLAG_WRITTEN) == 0 && segidx__load32(p + META_RESERVED) == 0 &&
              segidx__load64(p + body) == segidx__xxh3(p, body) && m->pub.lsn >= 1 &&
              m->pub.keep_from <= m->pub.lsn && (m->written || m->pub.last_offset == 0);
    if (ok && version == 2) {
        m->ckpt = (segidx__ckpt_policy){ segidx__load64(p + META_CKPT_FROM),
                                         segidx__load32(p + META_CKPT_COMMITS),
                                         p[META_CKPT_FANOUT], p[META_CKPT_LEVELS] };
        ok = m->ckpt.from >= 1 && m->ckpt.from <= m->pub.lsn &&
             segidx__ckpt_policy_valid(&m->ckpt) && segidx__load16(p + META_CKPT_RESERVED) == 0;
    }
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

/* The schedule a handle gives volumes that have none yet; commits == 0 for
 * none. EINVAL for options out of range. */
static int policy_of(const segidx_volume_index_options *opts, segidx__ckpt_policy *p)
{
    segidx_volume_index_options o = opts ? *opts : (segidx_volume_index_options){ 0 };
    if (o.checkpoint_commits == SEGIDX_CHECKPOINTS_OFF) {
        *p = (segidx__ckpt_policy){ 0, 0, 0, 0 };
        return SEGIDX_OK;
    }
    uint32_t k = o.checkpoint_commits ? o.checkpoint_commits : SEGIDX_DEFAULT_CHECKPOINT_COMMITS;
    unsigned f = o.checkpoint_fanout ? o.checkpoint_fanout : SEGIDX_DEFAULT_CHECKPOINT_FANOUT;
    unsigned l = o.checkpoint_levels ? o.checkpoint_levels : SEGIDX_DEFAULT_CHECKPOINT_LEVELS;
    if (f > SEGIDX__CKPT_MAX_FANOUT || l > SEGIDX__CKPT_MAX_LEVELS)
        return SEGIDX_EINVAL;
    *p = (segidx__ckpt_policy){ 0, k, (uint8_t)f, (uint8_t)l };
    return segidx__ckpt_policy_valid(p) ? SEGIDX_OK : SEGIDX_EINVAL;
}

int segidx_volume_index_open_with(segidx_kv kv, const segidx_volume_index_options *opts,
                                  segidx_volume_index **out)
{
    segidx__ckpt_policy policy;
    if (!out || !kv.vt || kv.vt->version < 1 || !kv.vt->get || !kv.vt->scan || !kv.vt->write ||
        !kv.vt->close || policy_of(opts, &policy))
        return SEGIDX_EINVAL;
    segidx_volume_index *vi = calloc(1, sizeof *vi);
    if (!vi)
        return SEGIDX_ENOMEM;
    vi->kv = kv;
    vi->policy = policy;
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

int segidx_volume_index_open(segidx_kv kv, segidx_volume_index **out)
{
    return segidx_volume_index_open_with(kv, NULL, out);
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

/* A write's batch: its ops, and the key + value bytes each op owns. */
struct batch {
    segidx_kv_op *ops;
    uint8_t **bufs; /* bufs[i]: ops[i]'s key and value, or NULL */
    size_t n, cap;
};

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->bufs[i]);
    free(b->bufs);
    free(b->ops);
    *b = (struct batch){ 0 };
}

/* Room for `more` ops. */
static int batch_reserve(struct batch *b, size_t more)
{
    if (more <= b->cap - b->n)
        return SEGIDX_OK;
    size_t cap = b->cap ? 2 * b->cap : 16;
    if (cap - b->n < more)
        cap = b->n + more;
    if (cap < b->n || cap > SIZE_MAX / sizeof(segidx_kv_op))
        return SEGIDX_ENOMEM;
    segidx_kv_op *ops = realloc(b->ops, cap * sizeof *ops);
    if (ops)
        b->ops = ops;
    uint8_t **bufs = ops ? realloc(b->bufs, cap * sizeof *bufs) : NULL;
    if (!bufs)
        return SEGIDX_ENOMEM;
    b->bufs = bufs;
    b->cap = cap;
    return SEGIDX_OK;
}

/* Op i becomes an op on `buf` (key, then value), which it owns. */
static void batch_set(struct batch *b, size_t i, int op, uint8_t *buf, size_t klen, size_t vlen)
{
    b->bufs[i] = buf;
    b->ops[i] = (segidx_kv_op){ op, buf, klen, vlen || op == SEGIDX_KV_PUT ? buf + klen : NULL,
                                vlen };
}

/* Append an op on `buf` (key, then value; taken over, also on failure). */
static int batch_add(struct batch *b, int op, uint8_t *buf, size_t klen, size_t vlen)
{
    if (batch_reserve(b, 1)) {
        free(buf);
        return SEGIDX_ENOMEM;
    }
    batch_set(b, b->n++, op, buf, klen, vlen);
    return SEGIDX_OK;
}

/* Append `n` empty ops (op 0, no bytes), to be set later: a group's
 * EXPECTs and metas go first, and are known only as its volumes are read. */
static int batch_add_slots(struct batch *b, size_t n)
{
    if (batch_reserve(b, n))
        return SEGIDX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        b->bufs[b->n] = NULL;
        b->ops[b->n++] = (segidx_kv_op){ 0, NULL, 0, NULL, 0 };
    }
    return SEGIDX_OK;
}

/* A new buffer of klen + vlen bytes, or NULL. */
static uint8_t *op_buffer(size_t klen, size_t vlen)
{
    return vlen > SIZE_MAX - klen ? NULL : malloc(klen + vlen);
}

/* Op i of `b` becomes a write's condition: the meta key holds `old`'s
 * bytes, or nothing for a new volume (old NULL). A batch's EXPECTs come
 * first (a version-1 store gets the rest as it is). */
static int batch_set_expect_meta(struct batch *b, size_t i, const segidx_vid *vid,
                                 const struct meta *old)
{
    uint8_t *buf = op_buffer(META_KEY_LEN, META_MAX_BYTES);
    if (!buf)
        return SEGIDX_ENOMEM;
    meta_key(buf, vid);
    size_t len = old ? encode_meta(buf + META_KEY_LEN, old) : 0;
    batch_set(b, i, SEGIDX_KV_EXPECT, buf, META_KEY_LEN, len);
    return SEGIDX_OK;
}

/* Op i of `b` becomes a PUT of meta `m`. */
static int batch_set_put_meta(struct batch *b, size_t i, const segidx_vid *vid,
                              const struct meta *m)
{
    uint8_t *buf = op_buffer(META_KEY_LEN, META_MAX_BYTES);
    if (!buf)
        return SEGIDX_ENOMEM;
    meta_key(buf, vid);
    batch_set(b, i, SEGIDX_KV_PUT, buf, META_KEY_LEN, encode_meta(buf + META_KEY_LEN, m));
    return SEGIDX_OK;
}

static int batch_expect_meta(struct batch *b, const segidx_vid *vid, const struct meta *old)
{
    int rc = batch_add_slots(b, 1);
    return rc ? rc : batch_set_expect_meta(b, b->n - 1, vid, old);
}

static int batch_put_meta(struct batch *b, const segidx_vid *vid, const struct meta *m)
{
    int rc = batch_add_slots(b, 1);
    return rc ? rc : batch_set_put_meta(b, b->n - 1, vid, m);
}

/* A PUT of `offsets` at an entry's key, or a DEL when it is NULL. */
static int batch_entry(struct batch *b, const segidx_vid *vid, segidx_lsn lsn,
                       const segidx_sid *sid, const segidx_offset_set *offsets)
{
    size_t vlen = 0;
    uint8_t *buf;
    if (offsets) {
        int rc = segidx__offset_set_serialize_after(offsets, SEGMENT_KEY_LEN, &buf, &vlen);
        if (rc)
            return rc;
    } else if (!(buf = op_buffer(SEGMENT_KEY_LEN, 0))) {
        return SEGIDX_ENOMEM;
    }
    segment_key(buf, vid, lsn, sid);
    return batch_add(b, offsets ? SEGIDX_KV_PUT : SEGIDX_KV_DEL, buf, SEGMENT_KEY_LEN, vlen);
}

/* How often a write that lost to another writer reads again and retries
 * when the loss left its own change still possible (a commit after a
 * prune elsewhere, a prune after a commit elsewhere). Each retry follows
 * a write that did land, so the store moved on; the bound only keeps a
 * writer from spinning behind an endless stream of others. */
#define WRITE_RETRIES 16

/* The meta after commit `lsn`, from the meta before it (NULL: new volume).
 * A volume without checkpoints starts them here when the handle's policy
 * has them: this commit is round 0. */
static int next_meta(const segidx_volume_index *vi, const struct meta *old, segidx_lsn lsn,
                     uint64_t commit_time, size_t n, uint32_t max_offset, struct meta *out)
{
    segidx_lsn current = old ? old->pub.lsn : 0;
    if (lsn != current + 1 || lsn == 0)
        return SEGIDX_ECONFLICT;
    *out = old ? *old : (struct meta){ { 0, 0, 0, 0 }, false, { 0, 0, 0, 0 } };
    out->pub.lsn = lsn;
    out->pub.last_commit = commit_time;
    if (n && (!out->written || max_offset > out->pub.last_offset))
        out->pub.last_offset = max_offset;
    out->written |= n > 0;
    if (!out->ckpt.from && vi->policy.commits) {
        out->ckpt = vi->policy;
        out->ckpt.from = lsn;
    }
    return SEGIDX_OK;
}

static int batch_checkpoint(segidx_volume_index *vi, struct batch *b, const segidx_vid *vid,
                            const struct meta *m, const segidx_commit_segment *segs, size_t n);

/* What commit `lsn` adds to a batch besides its meta: one entry per
 * segment, and the checkpoint values of a round (`m` is the meta after
 * it). The round's reads see the batch's earlier PUTs as written. */
static int batch_commit_body(segidx_volume_index *vi, struct batch *b, const segidx_vid *vid,
                             segidx_lsn lsn, const struct meta *m,
                             const segidx_commit_segment *segs, size_t n)
{
    int rc = SEGIDX_OK;
    for (size_t i = 0; i < n && !rc; i++)
        rc = batch_entry(b, vid, lsn, &segs[i].sid, segs[i].offsets);
    if (!rc && m->ckpt.from && (lsn - m->ckpt.from) % m->ckpt.commits == 0)
        rc = batch_checkpoint(vi, b, vid, m, segs, n);
    return rc;
}

/* ------------------------------------------------------------ commit groups
 *
 * A single commit is a group of one. A group is one atomic write: first
 * an EXPECT of each volume's meta as read (absent for a new volume), then
 * each volume's meta after its last commit of the group, then every
 * commit's entries and checkpoint values in item order. A commit of a
 * volume reads the store (its meta once per attempt, and a round's
 * commits and deltas) through the batch built so far, so the bytes are
 * those the same commits made one by one would write; the EXPECTs name
 * the state before the group, which is what the store checks them
 * against. */

/* One volume of a group. */
struct group_volume {
    segidx_vid vid;
    bool read;        /* this attempt has read its meta */
    bool exists;      /* it has a meta: stored, or made by an earlier item */
    struct meta old;  /* as read: the EXPECT (when it was stored) */
    struct meta now;  /* after the group's items so far: the PUT */
};

/* A group's items, checked, and their volumes, found once for every
 * attempt. */
struct group {
    const segidx_volume_commit_item *items;
    size_t n;
    struct group_volume *vols;
    size_t nvol;
    size_t *vol_of;       /* items[i] commits to vols[vol_of[i]] */
    uint32_t *max_offset; /* items[i]'s highest offset */
};

/* One attempt: read each volume's meta as its first item comes, plan
 * every item in order, and write. *failed: the item being planned when
 * an error came, or n (the write's error). *lost: the write lost to
 * another writer (a meta moved since it was read), so reading again may
 * succeed: if that writer committed, the next attempt finds an LSN taken
 * and says ECONFLICT; a prune leaves it free. */
static int try_group(segidx_volume_index *vi, struct group *g, size_t *failed, bool *lost)
{
    *lost = false;
    *failed = g->n;
    struct batch b = { 0 };
    int rc = batch_add_slots(&b, 2 * g->nvol);
    for (size_t v = 0; v < g->nvol; v++)
        g->vols[v].read = false;
    for (size_t i = 0; i < g->n && !rc; i++) {
        const segidx_volume_commit_item *it = &g->items[i];
        size_t v = g->vol_of[i];
        struct group_volume *gv = &g->vols[v];
        if (!gv->read) {
            rc = read_meta(vi, &gv->vid, &gv->old);
            gv->read = true;
            gv->exists = rc == SEGIDX_OK;
            gv->now = gv->old;
            if (rc == SEGIDX_OK || rc == SEGIDX_ENOTFOUND)
                rc = batch_set_expect_meta(&b, v, &gv->vid, gv->exists ? &gv->old : NULL);
        }
        struct meta next;
        if (!rc)
            rc = next_meta(vi, gv->exists ? &gv->now : NULL, it->lsn, it->commit_time, it->n,
                           g->max_offset[i], &next);
        if (!rc)
            rc = batch_commit_body(vi, &b, &gv->vid, it->lsn, &next, it->segs, it->n);
        if (rc) {
            *failed = i;
        } else {
            gv->now = next;
            gv->exists = true;
        }
    }
    for (size_t v = 0; v < g->nvol && !rc; v++)
        rc = batch_set_put_meta(&b, g->nvol + v, &g->vols[v].vid, &g->vols[v].now);
    if (!rc) {
        rc = segidx__kv_write(&vi->kv, b.ops, b.n);
        *lost = rc == SEGIDX_ECONFLICT; /* not next_meta's: an LSN was taken */
    }
    batch_free(&b);
    return rc;
}

/* The attempts, serialized with this handle's other writes. */
static int commit_group(segidx_volume_index *vi, struct group *g, size_t *failed)
{
    int rc = SEGIDX_OK;
    segidx__mutex_lock(&vi->write_lock);
    bool lost = true;
    for (int attempt = 0; lost && attempt <= WRITE_RETRIES; attempt++)
        rc = try_group(vi, g, failed, &lost);
    segidx__mutex_unlock(&vi->write_lock);
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
    segidx_volume_commit_item item = { *vid, lsn, commit_time, segs, n };
    struct group_volume vol = { *vid, false, false, { { 0, 0, 0, 0 }, false, { 0, 0, 0, 0 } },
                                { { 0, 0, 0, 0 }, false, { 0, 0, 0, 0 } } };
    size_t vol_of = 0, failed;
    struct group g = { &item, 1, &vol, 1, &vol_of, &max_offset };
    return commit_group(vi, &g, &failed);
}

/* An item's place among the group's, by volume, then by position. */
struct item_order {
    const segidx_vid *vid;
    size_t i;
};

static int compare_item_order(const void *pa, const void *pb)
{
    const struct item_order *a = pa, *b = pb;
    int c = memcmp(a->vid->bytes, b->vid->bytes, 16);
    return c ? c : (a->i > b->i) - (a->i < b->i);
}

/* The distinct volumes of g's items, and which each item commits to. */
static int group_volumes(struct group *g)
{
    struct item_order *order = malloc(g->n * sizeof *order);
    if (!order)
        return SEGIDX_ENOMEM;
    for (size_t i = 0; i < g->n; i++)
        order[i] = (struct item_order){ &g->items[i].vid, i };
    qsort(order, g->n, sizeof *order, compare_item_order);
    g->nvol = 0;
    for (size_t k = 0; k < g->n; k++) {
        if (k == 0 || !segidx__id_equal(order[k].vid->bytes, order[k - 1].vid->bytes)) {
            g->vols[g->nvol] = (struct group_volume){ .vid = *order[k].vid };
            g->nvol++;
        }
        g->vol_of[order[k].i] = g->nvol - 1;
    }
    free(order);
    return SEGIDX_OK;
}

int segidx_volume_commit_group(segidx_volume_index *vi, const segidx_volume_commit_item *items,
                               size_t n, size_t *failed)
{
    size_t ignored;
    failed = failed ? failed : &ignored;
    *failed = n;
    if (!vi || (n && !items))
        return SEGIDX_EINVAL;
    if (n == 0)
        return SEGIDX_OK;
    if (n > SIZE_MAX / 2 / sizeof(struct group_volume))
        return SEGIDX_ENOMEM;
    struct group g = { items, n, NULL, 0, NULL, NULL };
    g.max_offset = malloc(n * sizeof *g.max_offset);
    g.vol_of = g.max_offset ? malloc(n * sizeof *g.vol_of) : NULL;
    g.vols = g.vol_of ? malloc(n * sizeof *g.vols) : NULL;
    int rc = g.vols ? SEGIDX_OK : SEGIDX_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = items[i].n && !items[i].segs
                 ? SEGIDX_EINVAL
                 : check_commit_segments(items[i].segs, items[i].n, &g.max_offset[i]);
        if (rc)
            *failed = i;
    }
    if (!rc)
        rc = group_volumes(&g);
    if (!rc)
        rc = commit_group(vi, &g, failed);
    free(g.vols);
    free(g.vol_of);
    free(g.max_offset);
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

/* ------------------------------------------------------------ checkpoints */

#define CKPT_PREFIX "checkpoints/"
#define CKPT_PREFIX_LEN 12
#define CKPT_KEY_LSN (CKPT_PREFIX_LEN + 16)
#define CKPT_KEY_LEVEL (CKPT_KEY_LSN + 8)
#define CKPT_KEY_CHUNK (CKPT_KEY_LEVEL + 1)
#define CKPT_KEY_LEN (CKPT_KEY_CHUNK + 4)

/* `checkpoints/` + vid + round + level + chunk; callers cut it short for
 * scan bounds. */
static void ckpt_key(uint8_t key[CKPT_KEY_LEN], const segidx_vid *vid, segidx_lsn round,
                     unsigned level, uint32_t chunk)
{
    memcpy(key, CKPT_PREFIX, CKPT_PREFIX_LEN);
    memcpy(key + CKPT_PREFIX_LEN, vid->bytes, 16);
    store_be64(key + CKPT_KEY_LSN, round);
    key[CKPT_KEY_LEVEL] = (uint8_t)level;
    store_be32(key + CKPT_KEY_CHUNK, chunk);
}

static bool is_ckpt_key(const uint8_t *key, size_t klen, const segidx_vid *vid)
{
    return klen == CKPT_KEY_LEN && memcmp(key, CKPT_PREFIX, CKPT_PREFIX_LEN) == 0 &&
           segidx__id_equal(key + CKPT_PREFIX_LEN, vid->bytes);
}

/* A stored chunk map, checked against the key it came from and its LSNs
 * against the schedule. */
static int parse_ckpt_value(const uint8_t *key, const void *val, size_t vlen,
                            segidx__chunk_map *map)
{
    int rc = segidx__chunk_map_parse(val, vlen, map);
    if (rc)
        return rc == SEGIDX_EVERSION ? rc : SEGIDX_ECORRUPT;
    bool same = map->round == load_be64(key + CKPT_KEY_LSN) &&
                map->level == key[CKPT_KEY_LEVEL] && map->chunk == load_be32(key + CKPT_KEY_CHUNK);
    return same ? SEGIDX_OK : SEGIDX_ECORRUPT;
}

/* A scan of [lo, hi) as the store will be once `pending` (a batch being
 * built; NULL for none) is written. A commit of a group reads what the
 * group's earlier commits put (the round's commits, the deltas below it)
 * exactly as the same commit made alone after them would read it from the
 * store: the batch's PUTs in range are merged into the store's keys in
 * order, and one over a stored key hides it. */
struct overlay {
    const segidx_kv_op **put; /* the PUTs in range, ascending */
    size_t n, next;           /* next: how many were handed out */
    bool reverse;
    segidx_kv_visit_fn fn;
    void *ctx;
};

static const segidx_kv_op *overlay_peek(const struct overlay *o)
{
    return o->put[o->reverse ? o->n - 1 - o->next : o->next];
}

static int overlay_emit(struct overlay *o)
{
    const segidx_kv_op *p = overlay_peek(o);
    o->next++;
    return o->fn(o->ctx, p->key, p->klen, p->val, p->vlen);
}

/* A stored key: first the PUTs that come before it in the scan's order. */
static int visit_overlay(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct overlay *o = ctx;
    while (o->next < o->n) {
        const segidx_kv_op *p = overlay_peek(o);
        int c = segidx__key_cmp(p->key, p->klen, key, klen);
        if (o->reverse ? c < 0 : c > 0)
            break;
        int rc = overlay_emit(o);
        if (rc || c == 0)
            return rc; /* c == 0: the PUT hides the stored value */
    }
    return o->fn(o->ctx, key, klen, val, vlen);
}

/* By key; of two PUTs of one key, the later in the batch last. */
static int compare_put(const void *pa, const void *pb)
{
    const segidx_kv_op *a = *(const segidx_kv_op *const *)pa;
    const segidx_kv_op *b = *(const segidx_kv_op *const *)pb;
    int c = segidx__key_cmp(a->key, a->klen, b->key, b->klen);
    return c ? c : (a > b) - (a < b);
}

static bool put_in_range(const segidx_kv_op *op, const void *lo, size_t lolen, const void *hi,
                         size_t hilen)
{
    return op->op == SEGIDX_KV_PUT &&
           (!lolen || segidx__key_cmp(op->key, op->klen, lo, lolen) >= 0) &&
           segidx__key_cmp(op->key, op->klen, hi, hilen) < 0;
}

static int scan_through(segidx_volume_index *vi, const struct batch *pending, const void *lo,
                        size_t lolen, const void *hi, size_t hilen, bool reverse,
                        segidx_kv_visit_fn fn, void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; pending && i < pending->n; i++)
        n += put_in_range(&pending->ops[i], lo, lolen, hi, hilen);
    if (!n) /* a single commit, and most of a group's reads */
        return segidx__kv_scan(&vi->kv, lo, lolen, hi, hilen, reverse, fn, ctx);
    const segidx_kv_op **put = malloc(n * sizeof *put);
    if (!put)
        return SEGIDX_ENOMEM;
    n = 0;
    for (size_t i = 0; i < pending->n; i++)
        if (put_in_range(&pending->ops[i], lo, lolen, hi, hilen))
            put[n++] = &pending->ops[i];
    qsort(put, n, sizeof *put, compare_put);
    size_t kept = 0; /* of each key, the last PUT */
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n ||
            segidx__key_cmp(put[i]->key, put[i]->klen, put[i + 1]->key, put[i + 1]->klen) != 0)
            put[kept++] = put[i];
    struct overlay o = { put, kept, 0, reverse, fn, ctx };
    int rc = segidx__kv_scan(&vi->kv, lo, lolen, hi, hilen, reverse, visit_overlay, &o);
    while (!rc && o.next < o.n)
        rc = overlay_emit(&o);
    free(put);
    return rc;
}

/* Gathering versions for a round: from commit entries, from stored maps. */
struct vers_visit {
    const segidx_vid *vid;
    segidx_lsn max_lsn;
    segidx__vers *out;
    segidx_offset_set *seen;   /* entries: offsets a newer commit wrote */
    segidx_lsn min_lsn;        /* maps: the oldest LSN they may name */
    int err;
};

/* An entry, newest first: the offsets no newer commit wrote are its. */
static int visit_entry_vers(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct vers_visit *v = ctx;
    struct entry e;
    if ((v->err = parse_entry(key, klen, val, vlen, v->vid, v->max_lsn, &e)))
        return 1;
    segidx_offset_set *shadowed = segidx_offset_set_cut(e.offsets, v->seen);
    if (!shadowed)
        v->err = SEGIDX_ENOMEM;
    else if (!(v->err = segidx__vers_add_set(v->out, e.offsets, e.lsn)) &&
             !segidx__offset_set_union(v->seen, e.offsets))
        v->err = SEGIDX_ENOMEM;
    segidx_offset_set_free(shadowed);
    segidx_offset_set_free(e.offsets);
    return v->err != 0;
}

/* The newest version of every offset the commits in [lo, hi] wrote and
 * `seen` does not hold (it gathers them): one reverse scan, so that memory
 * grows with the offsets, not with the commits (round 0 reads them all). */
static int vers_from_entries(segidx_volume_index *vi, const struct batch *pending,
                             const segidx_vid *vid, segidx_lsn lo, segidx_lsn hi,
                             segidx_offset_set *seen, segidx__vers *out)
{
    if (lo > hi)
        return SEGIDX_OK;
    struct lsn_range r;
    lsn_range(&r, vid, lo, hi);
    struct vers_visit v = { vid, hi, out, seen, 0, 0 };
    int scan = scan_through(vi, pending, r.lo, sizeof r.lo, r.hi, r.hilen, true,
                            visit_entry_vers, &v);
    return v.err ? v.err : scan < 0 ? scan : SEGIDX_OK;
}

static int visit_map_vers(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct vers_visit *v = ctx;
    segidx__chunk_map map;
    if (!is_ckpt_key(key, klen, v->vid))
        v->err = SEGIDX_ECORRUPT;
    else if (!(v->err = parse_ckpt_value(key, val, vlen, &map)))
        v->err = segidx__vers_add_map(v->out, &map, v->min_lsn);
    return v->err != 0;
}

/* Every version the value of `level` at round LSN `round` holds. */
static int vers_from_stored(segidx_volume_index *vi, const struct batch *pending,
                            const segidx_vid *vid, const segidx__ckpt_policy *pol,
                            segidx_lsn round, unsigned level, segidx__vers *out)
{
    uint8_t lo[CKPT_KEY_LEN], hi[CKPT_KEY_LEN];
    ckpt_key(lo, vid, round, level, 0);
    ckpt_key(hi, vid, round, level + 1, 0);
    struct vers_visit v = { vid, 0, out, NULL, segidx__ckpt_min_lsn(pol, level, round), 0 };
    int scan = scan_through(vi, pending, lo, CKPT_KEY_CHUNK, hi, CKPT_KEY_CHUNK, false,
                            visit_map_vers, &v);
    return v.err ? v.err : scan < 0 ? scan : SEGIDX_OK;
}

/* PUTs of the chunk maps of `vers` (newest versions, sorted by offset). */
static int batch_chunk_maps(struct batch *b, const segidx_vid *vid, const segidx__vers *vers,
                            unsigned level, segidx_lsn round)
{
    for (size_t i = 0, j; i < vers->n; i = j) {
        uint32_t chunk = vers->v[i].off >> SEGIDX__CHUNK_BITS;
        for (j = i + 1; j < vers->n && vers->v[j].off >> SEGIDX__CHUNK_BITS == chunk; j++)
            ;
        unsigned width;
        size_t vlen = segidx__chunk_map_size(vers->v + i, j - i, round, &width);
        uint8_t *buf = op_buffer(CKPT_KEY_LEN, vlen);
        if (!buf)
            return SEGIDX_ENOMEM;
        ckpt_key(buf, vid, round, level, chunk);
        segidx__chunk_map_encode(vers->v + i, j - i, level, round, width, buf + CKPT_KEY_LEN);
        int rc = batch_add(b, SEGIDX_KV_PUT, buf, CKPT_KEY_LEN, vlen);
        if (rc)
            return rc;
    }
    return SEGIDX_OK;
}

/* The stored deltas of `level` at the F - 1 rounds before round n, one
 * span apart: with the block ending at n, they make the block of the
 * next level (or the image) ending at n. */
static int vers_from_siblings(segidx_volume_index *vi, const struct batch *pending,
                              const segidx_vid *vid, const segidx__ckpt_policy *pol, uint64_t n,
                              unsigned level, segidx__vers *out)
{
    uint64_t span = segidx__ckpt_span(pol, level);
    int rc = SEGIDX_OK;
    for (unsigned k = 1; k < pol->fanout && !rc; k++)
        rc = vers_from_stored(vi, pending, vid, pol, segidx__ckpt_round_lsn(pol, n - k * span),
                              level, out);
    return rc;
}

/* The checkpoint values commit `m->pub.lsn` writes, as a round of the
 * schedule (docs/FORMAT.md): round 0's image from the whole history; at
 * a later round the delta of level 1 from the round's commits, each level
 * up from F deltas of the level below, and at an image round the image
 * from the previous one and the top level's deltas. Only what readers use
 * is written: an image round writes its image alone. */
static int batch_checkpoint(segidx_volume_index *vi, struct batch *b, const segidx_vid *vid,
                            const struct meta *m, const segidx_commit_segment *segs, size_t n)
{
    const segidx__ckpt_policy *pol = &m->ckpt;
    segidx_lsn lsn = m->pub.lsn;
    uint64_t round = segidx__ckpt_round_of(pol, lsn);
    bool image = segidx__ckpt_image_round(pol, round) == round;
    segidx__vers vers = { 0 };
    /* The round's own commits: this one, and those since the last round. */
    segidx_offset_set *seen = segidx_offset_set_new();
    int rc = seen ? SEGIDX_OK : SEGIDX_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++)
        if ((rc = segidx__vers_add_set(&vers, segs[i].offsets, lsn)) ||
            !segidx__offset_set_union(seen, segs[i].offsets))
            rc = rc ? rc : SEGIDX_ENOMEM;
    segidx_lsn first = round == 0 ? 1 : lsn - pol->commits + 1;
    if (!rc)
        rc = vers_from_entries(vi, b, vid, first, lsn - 1, seen, &vers);
    segidx_offset_set_free(seen);
    /* Versions are gathered newest first throughout: of two versions of
     * one offset, the one gathered first is kept. */
    if (!rc)
        rc = segidx__vers_newest(&vers);
    if (round > 0) {
        unsigned top = image ? pol->levels : segidx__ckpt_top_level(pol, round);
        for (unsigned level = 1; level <= top && !rc; level++) {
            if (level > 1 && !(rc = vers_from_siblings(vi, b, vid, pol, round, level - 1, &vers)))
                rc = segidx__vers_newest(&vers);
            if (!rc && !image)
                rc = batch_chunk_maps(b, vid, &vers, level, lsn);
        }
        if (image && !rc) {
            rc = vers_from_siblings(vi, b, vid, pol, round, pol->levels, &vers);
            uint64_t previous = round - segidx__ckpt_image_every(pol);
            if (!rc)
                rc = vers_from_stored(vi, b, vid, pol, segidx__ckpt_round_lsn(pol, previous),
                                      0, &vers);
            if (!rc)
                rc = segidx__vers_newest(&vers);
        }
    }
    if (image && !rc)
        rc = batch_chunk_maps(b, vid, &vers, 0, lsn);
    segidx__vers_free(&vers);
    return rc;
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
    bool missing;  /* a checkpoint named a commit that does not hold the offset */
};

void segidx__find_hits_free(segidx__find_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free(hits[i].cut);
    free(hits);
}

static int keep_find_hit(struct find_walk *w, const struct entry *e, segidx_offset_set *cut)
{
    segidx__find_hit *hits = segidx__grow(w->hits, &w->cap_hits, w->n_hits, sizeof *hits, 8);
    if (!hits)
        return SEGIDX_ENOMEM;
    w->hits = hits;
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

/* Reading checkpoints: the query's offsets that no commit after the round
 * answered, and what the round's deltas and image answer for them. */
struct ckpt_read {
    const segidx_vid *vid;
    segidx_offset_set *open; /* open offsets: the query's, up to the highest written */
    segidx__vers found;
    uint32_t *chunk_open;    /* the open offsets of the chunk under way... */
    size_t n_chunk_open, cap_chunk_open;
    segidx_lsn min_lsn;      /* ... and the oldest LSN its value may name */
    int err;                 /* scans: why the visit stopped */
};

/* Above the highest offset ever written no value can hold one: what is
 * open is bounded by the volume, not by the query. */
static int ckpt_read_init(struct ckpt_read *r, const segidx_offset_set *query,
                          const struct meta *m)
{
    r->open = m->written ? segidx_offset_set_copy(query) : segidx_offset_set_new();
    if (!r->open)
        return SEGIDX_ENOMEM;
    segidx__offset_set_remove_above(r->open, m->pub.last_offset);
    /* A chunk holds at most this many open offsets: a read of a few pages
     * asks for room for a few. */
    uint64_t open = segidx_offset_set_cardinality(r->open);
    r->cap_chunk_open = open < SEGIDX__CHUNK_OFFSETS ? (size_t)open + 1 : SEGIDX__CHUNK_OFFSETS;
    r->chunk_open = malloc(r->cap_chunk_open * sizeof *r->chunk_open);
    return r->chunk_open ? SEGIDX_OK : SEGIDX_ENOMEM;
}

static void ckpt_read_free(struct ckpt_read *r)
{
    segidx_offset_set_free(r->open);
    free(r->chunk_open);
    segidx__vers_free(&r->found);
}

/* The open offsets of `chunk`, into r->chunk_open. */
static size_t open_in_chunk(struct ckpt_read *r, uint32_t chunk)
{
    uint32_t lo = chunk << SEGIDX__CHUNK_BITS;
    r->n_chunk_open = segidx__offset_set_range(r->open, lo, lo | (SEGIDX__CHUNK_OFFSETS - 1),
                                               r->chunk_open, r->cap_chunk_open);
    return r->n_chunk_open;
}

/* A chunk's value: each of the chunk's open offsets it holds is found, with
 * its LSN. */
static int take_from_value(struct ckpt_read *r, const uint8_t *key, const void *val,
                           size_t vlen)
{
    segidx__chunk_map map;
    int rc = parse_ckpt_value(key, val, vlen, &map);
    if (!rc)
        rc = segidx__vers_reserve(&r->found, r->n_chunk_open);
    for (size_t i = 0; i < r->n_chunk_open && !rc; i++) {
        unsigned pos;
        segidx_lsn lsn;
        if (segidx__chunk_map_find(&map, r->chunk_open[i], &pos) &&
            !(rc = segidx__chunk_map_lsn(&map, pos, r->min_lsn, &lsn)))
            r->found.v[r->found.n++] = (segidx__ver){ r->chunk_open[i], lsn };
    }
    return rc;
}

static int visit_ckpt_get(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)klen; /* the key asked for: kv_guard.c checks */
    return take_from_value(ctx, key, val, vlen);
}

static int visit_ckpt_scan(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct ckpt_read *r = ctx;
    const uint8_t *k = key;
    if (!is_ckpt_key(k, klen, r->vid)) {
        r->err = SEGIDX_ECORRUPT;
        return 1;
    }
    uint32_t chunk = load_be32(k + CKPT_KEY_CHUNK);
    if (chunk > (UINT32_MAX >> SEGIDX__CHUNK_BITS)) {
        r->err = SEGIDX_ECORRUPT;
        return 1;
    }
    if (open_in_chunk(r, chunk))
        r->err = take_from_value(r, k, val, vlen);
    return r->err != 0;
}

/* Up to this many chunks a value is read by a get per chunk (a get hands
 * the value over in place; a scan copies each, to check the order); a
 * query that spans more reads the values of its span in one scan, so that
 * its cost is bounded by the chunks the volume has values for, not by the
 * query. */
#define GETS_UP_TO 64

/* The chunks the open offsets span, counted up to GETS_UP_TO + 1. */
static unsigned open_chunks(const struct ckpt_read *r, uint32_t *first, uint32_t *last)
{
    unsigned n = 0;
    uint32_t at = 0, next;
    while (n <= GETS_UP_TO && segidx__offset_set_range(r->open, at, UINT32_MAX, &next, 1)) {
        uint32_t chunk = next >> SEGIDX__CHUNK_BITS;
        if (n++ == 0)
            *first = chunk;
        *last = chunk;
        if (chunk == UINT32_MAX >> SEGIDX__CHUNK_BITS)
            break;
        at = (chunk + 1) << SEGIDX__CHUNK_BITS;
    }
    if (n > GETS_UP_TO)
        *last = segidx__offset_set_max(r->open) >> SEGIDX__CHUNK_BITS;
    return n;
}

/* Answer what the value of `level` at round LSN `round` holds for the open
 * offsets, chunk by chunk in order, and close those it answers. */
static int consult(segidx_volume_index *vi, struct ckpt_read *r, const segidx__ckpt_policy *pol,
                   segidx_lsn round, unsigned level)
{
    r->min_lsn = segidx__ckpt_min_lsn(pol, level, round);
    size_t before = r->found.n;
    uint32_t first = 0, last = 0;
    unsigned chunks = open_chunks(r, &first, &last);
    uint8_t lo[CKPT_KEY_LEN], hi[CKPT_KEY_LEN];
    int rc = SEGIDX_OK;
    if (chunks > GETS_UP_TO) {
        ckpt_key(lo, r->vid, round, level, first);
        ckpt_key(hi, r->vid, round, level, last + 1);
        r->err = 0;
        int scan = segidx__kv_scan(&vi->kv, lo, sizeof lo, hi, sizeof hi, false, visit_ckpt_scan,
                                   r);
        rc = r->err ? r->err : scan < 0 ? scan : SEGIDX_OK;
    }
    uint32_t at = first << SEGIDX__CHUNK_BITS, next;
    while (chunks <= GETS_UP_TO && !rc && segidx__offset_set_range(r->open, at, UINT32_MAX, &next, 1)) {
        uint32_t chunk = next >> SEGIDX__CHUNK_BITS;
        open_in_chunk(r, chunk);
        ckpt_key(lo, r->vid, round, level, chunk);
        rc = segidx__kv_get(&vi->kv, lo, sizeof lo, visit_ckpt_get, r);
        rc = rc == SEGIDX_ENOTFOUND ? SEGIDX_OK : rc;
        if (chunk == UINT32_MAX >> SEGIDX__CHUNK_BITS)
            break;
        at = (chunk + 1) << SEGIDX__CHUNK_BITS;
    }
    for (size_t i = before; i < r->found.n; i++)
        segidx__offset_set_remove_many(r->open, &r->found.v[i].off, 1);
    return rc;
}

/* By LSN, newest first, then by offset. */
static int compare_found(const void *a, const void *b)
{
    const segidx__ver *x = a, *y = b;
    if (x->lsn != y->lsn)
        return (x->lsn < y->lsn) - (x->lsn > y->lsn);
    return (x->off > y->off) - (x->off < y->off);
}

/* The offsets in v[0..n), as a new set, or NULL. */
static segidx_offset_set *set_of(const segidx__ver *v, size_t n)
{
    segidx_offset_set *s = segidx_offset_set_new();
    for (size_t i = 0; s && i < n; i++)
        if (segidx_offset_set_add(s, v[i].off)) {
            segidx_offset_set_free(s);
            return NULL;
        }
    return s;
}

/* Take what the checkpoints answered out of the query, and cut each named
 * commit's entries by the offsets named with it: one short scan per LSN.
 * An offset no entry of its commit holds sets w->missing. */
static int resolve_found(segidx_volume_index *vi, const segidx_vid *vid, struct find_walk *w,
                         segidx__vers *found)
{
    if (!found->n)
        return SEGIDX_OK;
    segidx_offset_set *took = set_of(found->v, found->n), *cut = NULL;
    if (!took || !(cut = segidx_offset_set_cut(w->query, took))) {
        segidx_offset_set_free(took);
        return SEGIDX_ENOMEM;
    }
    segidx_offset_set_free(took);
    segidx_offset_set_free(cut);
    qsort(found->v, found->n, sizeof *found->v, compare_found);
    segidx_offset_set *query = w->query;
    int rc = SEGIDX_OK;
    for (size_t i = 0, j; i < found->n && !rc && !w->missing; i = j) {
        segidx_lsn lsn = found->v[i].lsn;
        for (j = i + 1; j < found->n && found->v[j].lsn == lsn; j++)
            ;
        if (!(w->query = set_of(found->v + i, j - i))) {
            rc = SEGIDX_ENOMEM;
            break;
        }
        struct lsn_range r;
        lsn_range(&r, vid, lsn, lsn);
        /* Reversed, as the walk reads a commit's entries. */
        int scan = segidx__kv_scan(&vi->kv, r.lo, sizeof r.lo, r.hi, r.hilen, true,
                                   visit_for_find, w);
        rc = w->err ? w->err : scan < 0 ? scan : SEGIDX_OK;
        w->missing = !segidx_offset_set_is_empty(w->query);
        segidx_offset_set_free(w->query);
    }
    w->query = query;
    return rc;
}

/* What the commits after round `round` left open, from its deltas, newest
 * first, and then the image below them (docs/FORMAT.md, "Reading with
 * checkpoints"). */
static int read_checkpoints(segidx_volume_index *vi, const segidx_vid *vid,
                            const struct meta *m, uint64_t round, struct find_walk *w)
{
    const segidx__ckpt_policy *pol = &m->ckpt;
    struct ckpt_read r = { .vid = vid };
    int rc = ckpt_read_init(&r, w->query, m);
    uint64_t image = segidx__ckpt_image_round(pol, round);
    for (uint64_t p = round; p > image && !rc && !segidx_offset_set_is_empty(r.open);) {
        unsigned level = segidx__ckpt_top_level(pol, p);
        rc = consult(vi, &r, pol, segidx__ckpt_round_lsn(pol, p), level);
        p -= segidx__ckpt_span(pol, level);
    }
    if (!rc && !segidx_offset_set_is_empty(r.open))
        rc = consult(vi, &r, pol, segidx__ckpt_round_lsn(pol, image), 0);
    if (!rc)
        rc = resolve_found(vi, vid, w, &r.found);
    ckpt_read_free(&r);
    return rc;
}

/* The walk of find_segments: the query cut, the hits kept. On an error, or
 * WALK_AGAIN, the query is as it was. Below the volume's first checkpoint
 * (or without one) the walk reads every commit down to the first; above
 * it, the commits after the newest round and then the checkpoints. */
static int find_walk_run(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lsn,
                         const struct meta *m, struct find_walk *w)
{
    /* Kept so that a failure can put the query back as it was. */
    segidx_offset_set *saved = segidx_offset_set_copy(w->query);
    if (!saved)
        return SEGIDX_ENOMEM;
    segidx_lsn at = lsn < m->pub.lsn ? lsn : m->pub.lsn;
    bool checkpoints = m->ckpt.from && at >= m->ckpt.from;
    uint64_t round = checkpoints ? segidx__ckpt_round_of(&m->ckpt, at) : 0;
    /* From 0 without checkpoints: an entry at LSN 0 is corrupt, as in
     * every other walk. */
    segidx_lsn from = checkpoints ? segidx__ckpt_round_lsn(&m->ckpt, round) + 1 : 0;
    int rc = SEGIDX_OK;
    if (from <= at) {
        struct lsn_range r;
        lsn_range(&r, vid, from, at);
        int scan = segidx__kv_scan(&vi->kv, r.lo, sizeof r.lo, r.hi, r.hilen, true,
                                   visit_for_find, w);
        rc = w->err ? w->err : scan < 0 ? scan : SEGIDX_OK;
    }
    if (!rc && checkpoints && !segidx_offset_set_is_empty(w->query))
        rc = read_checkpoints(vi, vid, m, round, w);
    if (!rc)
        rc = check_not_torn(vi, vid, lsn, at, m);
    if (!rc && w->missing)
        rc = SEGIDX_ECORRUPT;
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
        w->missing = false;
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
    struct find_walk w = { vid, 0, query, NULL, 0, 0, 0, false };
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

/* ------------------------------------------------------------ changed */

/* What commits in an LSN range wrote: the union of their entries. */
struct union_walk {
    const segidx_vid *vid;
    segidx_lsn max_lsn;
    segidx_offset_set *out;
    int err;
};

static int visit_union(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct union_walk *u = ctx;
    struct entry e;
    if ((u->err = parse_entry(key, klen, val, vlen, u->vid, u->max_lsn, &e)))
        return 1;
    if (!segidx__offset_set_union(u->out, e.offsets))
        u->err = SEGIDX_ENOMEM;
    segidx_offset_set_free(e.offsets);
    return u->err != 0;
}

static int union_entries(segidx_volume_index *vi, const segidx_vid *vid, const struct meta *m,
                         segidx_lsn lo, segidx_lsn hi, segidx_offset_set *out)
{
    if (lo > hi)
        return SEGIDX_OK;
    struct lsn_range r;
    lsn_range(&r, vid, lo, hi);
    struct union_walk u = { vid, m->pub.lsn, out, 0 };
    int scan = segidx__kv_scan(&vi->kv, r.lo, sizeof r.lo, r.hi, r.hilen, false, visit_union,
                               &u);
    return u.err ? u.err : scan < 0 ? scan : SEGIDX_OK;
}

/* What commits in (from, round] wrote, from the round's cover: each of
 * those commits lies in the span of one delta or below the image, whose
 * value holds the offset with an LSN at least that commit's. So: every
 * offset a value of the cover holds with an LSN above `from`. Values of
 * rounds at or below `from` only name older LSNs and are not read. */
static int changed_by_cover(segidx_volume_index *vi, const segidx_vid *vid,
                            const struct meta *m, uint64_t round, segidx_lsn from,
                            segidx_offset_set *out)
{
    const segidx__ckpt_policy *pol = &m->ckpt;
    uint64_t image = segidx__ckpt_image_round(pol, round);
    segidx__vers vers = { 0 };
    int rc = SEGIDX_OK;
    for (uint64_t p = round; p > image && !rc && segidx__ckpt_round_lsn(pol, p) > from;) {
        unsigned level = segidx__ckpt_top_level(pol, p);
        rc = vers_from_stored(vi, NULL, vid, pol, segidx__ckpt_round_lsn(pol, p), level, &vers);
        p -= segidx__ckpt_span(pol, level);
    }
    if (!rc && segidx__ckpt_round_lsn(pol, image) > from)
        rc = vers_from_stored(vi, NULL, vid, pol, segidx__ckpt_round_lsn(pol, image), 0, &vers);
    for (size_t i = 0; i < vers.n && !rc; i++)
        if (vers.v[i].lsn > from)
            rc = segidx_offset_set_add(out, vers.v[i].off);
    segidx__vers_free(&vers);
    return rc;
}

/* One meta read, the reads, and the check that no prune tore them. Above
 * the newest round, or without checkpoints, the commits in (from, at] are
 * read themselves; below it, the round's cover answers for (from, round]
 * and the commits after the round for the rest. */
static int changed_run(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn from,
                       segidx_lsn to, const struct meta *m, segidx_offset_set *out)
{
    segidx_lsn at = to < m->pub.lsn ? to : m->pub.lsn;
    if (at <= from)
        return check_not_torn(vi, vid, to, at, m);
    bool checkpoints = m->ckpt.from && at >= m->ckpt.from;
    uint64_t round = checkpoints ? segidx__ckpt_round_of(&m->ckpt, at) : 0;
    segidx_lsn round_lsn = checkpoints ? segidx__ckpt_round_lsn(&m->ckpt, round) : 0;
    int rc;
    if (round_lsn <= from) {
        rc = union_entries(vi, vid, m, from + 1, at, out);
    } else {
        rc = union_entries(vi, vid, m, round_lsn + 1, at, out);
        if (!rc && m->written)
            rc = changed_by_cover(vi, vid, m, round, from, out);
    }
    return rc ? rc : check_not_torn(vi, vid, to, at, m);
}

int segidx_volume_changed(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn from_lsn,
                          segidx_lsn to_lsn, segidx_offset_set *out)
{
    if (!vi || !vid || !out || from_lsn > to_lsn)
        return SEGIDX_EINVAL;
    for (int attempt = 0; attempt <= WRITE_RETRIES; attempt++) {
        struct meta m;
        int rc = read_meta(vi, vid, &m);
        if (rc)
            return rc;
        if (to_lsn < m.pub.keep_from)
            return SEGIDX_ERANGE;
        /* Into a copy of `out`, which a failure leaves as it was. */
        segidx_offset_set *found = segidx_offset_set_copy(out);
        rc = found ? changed_run(vi, vid, from_lsn, to_lsn, &m, found) : SEGIDX_ENOMEM;
        if (!rc)
            segidx__offset_set_swap(out, found);
        segidx_offset_set_free(found);
        if (rc != WALK_AGAIN)
            return rc;
    }
    return SEGIDX_ECONFLICT;
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

/* ------------------------------------------------------------ segments named */

/* The sids of every entry key of every volume, as one scan hands them. */
struct sid_list {
    segidx_sid *sids;
    size_t n, cap;
    int err;
};

static int visit_entry_sid(void *ctx, const void *key, size_t klen, const void *val,
                           size_t vlen)
{
    (void)val, (void)vlen;
    struct sid_list *l = ctx;
    const uint8_t *k = key;
    if (klen != SEGMENT_KEY_LEN || memcmp(k, SEGMENTS_PREFIX, SEGMENTS_PREFIX_LEN) != 0 ||
        load_be64(k + SEGMENT_KEY_LSN) == 0) {
        l->err = SEGIDX_ECORRUPT;
        return 1;
    }
    /* A commit's entries come together, and a segment often holds several
     * commits in a row: skip a repeat of the last sid before storing. */
    if (l->n && memcmp(l->sids[l->n - 1].bytes, k + SEGMENT_KEY_SID, 16) == 0)
        return 0;
    segidx_sid *sids = segidx__grow(l->sids, &l->cap, l->n, sizeof *sids, 256);
    if (!sids) {
        l->err = SEGIDX_ENOMEM;
        return 1;
    }
    l->sids = sids;
    memcpy(l->sids[l->n++].bytes, k + SEGMENT_KEY_SID, 16);
    return 0;
}

static int compare_sids(const void *a, const void *b);

int segidx_volume_index_segments(segidx_volume_index *vi,
                                 int (*fn)(void *ctx, const segidx_sid *sid), void *ctx)
{
    if (!vi || !fn)
        return SEGIDX_EINVAL;
    uint8_t hi[SEGMENTS_PREFIX_LEN];
    memcpy(hi, SEGMENTS_PREFIX, SEGMENTS_PREFIX_LEN);
    hi[SEGMENTS_PREFIX_LEN - 1]++; /* "segments0": just past every entry key */
    struct sid_list l = { NULL, 0, 0, 0 };
    int rc = segidx__kv_scan(&vi->kv, SEGMENTS_PREFIX, SEGMENTS_PREFIX_LEN, hi, sizeof hi,
                             false, visit_entry_sid, &l);
    if (l.err)
        rc = l.err;
    if (!rc && l.n > 1)
        qsort(l.sids, l.n, sizeof *l.sids, compare_sids);
    for (size_t i = 0; i < l.n && !rc; i++)
        if (i == 0 || compare_sids(&l.sids[i], &l.sids[i - 1]))
            rc = fn(ctx, &l.sids[i]);
    free(l.sids);
    return rc;
}

/* ------------------------------------------------------------ prune */

/* Every commit entry of a volume, oldest first, read in one scan. */
/* Entries at or below `keep_raw` also keep the value bytes the store
 * holds (raw[i], else NULL): what a write that changes them EXPECTs. */
struct entry_list {
    struct entry *e;
    struct raw_value {
        uint8_t *val;
        size_t len;
    } *raw;
    size_t n, cap;
    const segidx_vid *vid;
    segidx_lsn max_lsn, keep_raw;
    int err;
};

static void entry_list_free(struct entry_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        segidx_offset_set_free(l->e[i].offsets);
        free(l->raw[i].val);
    }
    free(l->e);
    free(l->raw);
}

static int entry_list_grow(struct entry_list *l)
{
    size_t cap = l->cap ? 2 * l->cap : 64;
    struct entry *e = realloc(l->e, cap * sizeof *e);
    if (e)
        l->e = e;
    struct raw_value *raw = e ? realloc(l->raw, cap * sizeof *raw) : NULL;
    if (!raw)
        return SEGIDX_ENOMEM;
    l->raw = raw;
    l->cap = cap;
    return SEGIDX_OK;
}

static int visit_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct entry_list *l = ctx;
    if (l->n == l->cap && (l->err = entry_list_grow(l)))
        return 1;
    struct entry *e = &l->e[l->n];
    if ((l->err = parse_entry(key, klen, val, vlen, l->vid, l->max_lsn, e)))
        return 1;
    struct raw_value *raw = &l->raw[l->n];
    *raw = (struct raw_value){ NULL, vlen };
    if (e->lsn <= l->keep_raw && !(raw->val = malloc(vlen))) {
        segidx_offset_set_free(e->offsets);
        l->err = SEGIDX_ENOMEM;
        return 1;
    }
    if (raw->val)
        memcpy(raw->val, val, vlen);
    l->n++;
    return 0;
}

/* The entries with lsn in [lo, hi], oldest first, in one scan. */
static int read_entry_range(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn lo,
                            segidx_lsn hi, segidx_lsn max_lsn, segidx_lsn keep_raw,
                            struct entry_list *l)
{
    struct lsn_range r;
    lsn_range(&r, vid, lo, hi);
    *l = (struct entry_list){ NULL, NULL, 0, 0, vid, max_lsn, keep_raw, 0 };
    int scan = segidx__kv_scan(&vi->kv, r.lo, sizeof r.lo, r.hi, r.hilen, false, visit_collect,
                               l);
    int rc = l->err ? l->err : scan < 0 ? scan : SEGIDX_OK;
    if (rc)
        entry_list_free(l);
    return rc;
}

/* Every entry up to max_lsn. */
static int read_entries(segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn max_lsn,
                        segidx_lsn keep_raw, struct entry_list *l)
{
    return read_entry_range(vi, vid, 0, max_lsn, max_lsn, keep_raw, l);
}

/* A write's condition: entry (vid, lsn, sid) holds exactly `val`, or is
 * absent when `val` is NULL. */
static int batch_expect_entry(struct batch *b, const segidx_vid *vid, segidx_lsn lsn,
                              const segidx_sid *sid, const uint8_t *val, size_t vlen)
{
    size_t len = val ? vlen : 0;
    uint8_t *buf = op_buffer(SEGMENT_KEY_LEN, len);
    if (!buf)
        return SEGIDX_ENOMEM;
    segment_key(buf, vid, lsn, sid);
    if (len)
        memcpy(buf + SEGMENT_KEY_LEN, val, len);
    return batch_add(b, SEGIDX_KV_EXPECT, buf, SEGMENT_KEY_LEN, len);
}

static int compare_sids(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* What a prune writes, and which sids it keeps and drops. The batch: the
 * EXPECT on the meta read, the entry ops, the checkpoint deletes, the new
 * meta. */
struct prune_plan {
    struct batch b;
    segidx_sid *kept, *dropped;
    size_t n_kept, n_dropped;
};

static void prune_plan_free(struct prune_plan *p)
{
    batch_free(&p->b);
    free(p->kept);
    free(p->dropped);
}

/* Change an entry on the condition that it still holds what was read: a
 * re-point may have replaced it since (segidx_volume_repoint()), and a
 * change written over that would name the old segment again. */
static int batch_change_entry(struct batch *b, const segidx_vid *vid, const struct entry *e,
                              const struct raw_value *raw, const segidx_offset_set *offsets)
{
    int rc = batch_expect_entry(b, vid, e->lsn, &e->sid, raw->val, raw->len);
    return rc ? rc : batch_entry(b, vid, e->lsn, &e->sid, offsets);
}

/* Walk the entries newest first. `seen` gathers the offsets of commits in
 * (entry, keep_from]: what an entry below keep_from still answers for some
 * read at or after keep_from is its offsets minus those. */
static int plan_prune(struct prune_plan *p, const segidx_vid *vid, struct entry_list *l,
                      segidx_lsn keep_from)
{
    segidx_offset_set *seen = segidx_offset_set_new();
    p->kept = malloc((l->n + 1) * sizeof *p->kept);
    p->dropped = malloc((l->n + 1) * sizeof *p->dropped);
    int rc = seen && p->kept && p->dropped ? SEGIDX_OK : SEGIDX_ENOMEM;
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
        bool drop = segidx_offset_set_is_empty(e->offsets);
        if (drop)
            p->dropped[p->n_dropped++] = e->sid;
        else
            p->kept[p->n_kept++] = e->sid;
        if (drop || segidx_offset_set_cardinality(e->offsets) < before)
            rc = batch_change_entry(&p->b, vid, e, &l->raw[i], drop ? NULL : e->offsets);
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

struct ckpt_deletes {
    struct batch *b;
    const segidx_vid *vid;
    int err;
};

static int visit_ckpt_delete(void *ctx, const void *key, size_t klen, const void *val,
                             size_t vlen)
{
    (void)val, (void)vlen;
    struct ckpt_deletes *d = ctx;
    uint8_t *buf = NULL;
    if (!is_ckpt_key(key, klen, d->vid))
        d->err = SEGIDX_ECORRUPT;
    else if (!(buf = op_buffer(klen, 0)))
        d->err = SEGIDX_ENOMEM;
    else
        d->err = batch_add(d->b, SEGIDX_KV_DEL, memcpy(buf, key, klen), klen, 0);
    return d->err != 0;
}

/* DELs of the checkpoint values no read at or after keep_from uses: every
 * round below the newest image round at or before keep_from. */
static int plan_checkpoint_deletes(segidx_volume_index *vi, struct batch *b,
                                   const segidx_vid *vid, const struct meta *m,
                                   segidx_lsn keep_from)
{
    const segidx__ckpt_policy *pol = &m->ckpt;
    if (!pol->from || keep_from < pol->from)
        return SEGIDX_OK;
    uint64_t round = segidx__ckpt_image_round(pol, segidx__ckpt_round_of(pol, keep_from));
    uint8_t lo[CKPT_KEY_LEN], hi[CKPT_KEY_LEN];
    ckpt_key(lo, vid, 0, 0, 0);
    ckpt_key(hi, vid, segidx__ckpt_round_lsn(pol, round), 0, 0);
    struct ckpt_deletes d = { b, vid, 0 };
    int scan = segidx__kv_scan(&vi->kv, lo, CKPT_KEY_LSN, hi, CKPT_KEY_LEVEL, false,
                               visit_ckpt_delete, &d);
    return d.err ? d.err : scan < 0 ? scan : SEGIDX_OK;
}

/* One read and one conditional write, as try_group(). `p` is filled
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
    if ((rc = read_entries(vi, vid, m.pub.lsn, keep_from, &l)))
        return rc;
    rc = batch_expect_meta(&p->b, vid, &m);
    if (!rc)
        rc = plan_prune(p, vid, &l, keep_from);
    entry_list_free(&l);
    if (!rc)
        rc = plan_checkpoint_deletes(vi, &p->b, vid, &m, keep_from);
    m.pub.keep_from = keep_from;
    if (!rc)
        rc = batch_put_meta(&p->b, vid, &m);
    if (!rc)
        rc = segidx__kv_write(&vi->kv, p->b.ops, p->b.n);
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

/* ------------------------------------------------------------ re-point */

/* A move's own checks, before anything is read: its segments as a commit
 * would take them, none of them among the old ones. */
static int check_move(const segidx_repoint *mv, const segidx_sid *old, size_t n_old)
{
    uint32_t max;
    if (mv->lsn == 0 || mv->n == 0 || !mv->segs || check_commit_segments(mv->segs, mv->n, &max))
        return SEGIDX_EINVAL;
    for (size_t i = 0; i < mv->n; i++)
        if (bsearch(&mv->segs[i].sid, old, n_old, sizeof *old, compare_sids))
            return SEGIDX_EINVAL;
    return SEGIDX_OK;
}

static int compare_moves(const void *pa, const void *pb)
{
    const segidx_repoint *a = *(const segidx_repoint *const *)pa;
    const segidx_repoint *b = *(const segidx_repoint *const *)pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    return c ? c : (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

/* The moves in (vid, lsn) order, each checked, none twice; `old` sorted. */
static int sort_moves(const segidx_repoint *moves, size_t n, const segidx_sid *old,
                      size_t n_old, const segidx_repoint **order)
{
    for (size_t i = 0; i < n; i++) {
        order[i] = &moves[i];
        if (check_move(&moves[i], old, n_old))
            return SEGIDX_EINVAL;
    }
    qsort(order, n, sizeof *order, compare_moves);
    for (size_t i = 1; i < n; i++)
        if (!compare_moves(&order[i - 1], &order[i]))
            return SEGIDX_EINVAL;
    return SEGIDX_OK;
}

/* `a` minus what `b` holds, in place. */
static int subtract(segidx_offset_set *a, const segidx_offset_set *b)
{
    segidx_offset_set *shared = segidx_offset_set_cut(a, b);
    segidx_offset_set_free(shared);
    return shared ? SEGIDX_OK : SEGIDX_ENOMEM;
}

/* What the replaced entries of one commit held. When they held anything,
 * no other entry of the commit may name a new segment: the new entry
 * would overwrite it. (When they held nothing, the move is done already,
 * or pruned away: a repeated re-point is no error.) */
static int replaced_offsets(const struct entry_list *l, const segidx_repoint *mv,
                            const segidx_sid *old, size_t n_old, segidx_offset_set *held)
{
    bool named = false;
    for (size_t i = 0; i < l->n; i++) {
        if (bsearch(&l->e[i].sid, old, n_old, sizeof *old, compare_sids)) {
            if (!segidx__offset_set_union(held, l->e[i].offsets))
                return SEGIDX_ENOMEM;
            continue;
        }
        for (size_t j = 0; j < mv->n; j++)
            named |= segidx__id_equal(l->e[i].sid.bytes, mv->segs[j].sid.bytes);
    }
    return named && !segidx_offset_set_is_empty(held) ? SEGIDX_EINVAL : SEGIDX_OK;
}

/* Every offset held must have a new home, or its page would be lost. */
static int check_covered(const segidx_offset_set *held, const segidx_repoint *mv)
{
    segidx_offset_set *rest = segidx_offset_set_copy(held);
    int rc = rest ? SEGIDX_OK : SEGIDX_ENOMEM;
    for (size_t i = 0; i < mv->n && !rc; i++)
        rc = subtract(rest, mv->segs[i].offsets);
    if (!rc && !segidx_offset_set_is_empty(rest))
        rc = SEGIDX_EINVAL;
    segidx_offset_set_free(rest);
    return rc;
}

/* The new entries of one commit: each new segment's offsets that the
 * replaced entries still held, under "key absent". */
static int batch_new_entries(struct batch *b, const segidx_repoint *mv,
                             const segidx_offset_set *held)
{
    int rc = SEGIDX_OK;
    for (size_t i = 0; i < mv->n && !rc; i++) {
        segidx_offset_set *copy = segidx_offset_set_copy(mv->segs[i].offsets);
        segidx_offset_set *part = copy ? segidx_offset_set_cut(copy, held) : NULL;
        rc = part ? SEGIDX_OK : SEGIDX_ENOMEM;
        if (!rc && !segidx_offset_set_is_empty(part)) {
            rc = batch_expect_entry(b, &mv->vid, mv->lsn, &mv->segs[i].sid, NULL, 0);
            if (!rc)
                rc = batch_entry(b, &mv->vid, mv->lsn, &mv->segs[i].sid, part);
        }
        segidx_offset_set_free(part);
        segidx_offset_set_free(copy);
    }
    return rc;
}

/* One commit's part of the batch: EXPECT and DEL each replaced entry as
 * read, then the new entries. Nothing when no replaced entry is left. */
static int plan_move(segidx_volume_index *vi, struct batch *b, const segidx_repoint *mv,
                     const struct meta *m, const segidx_sid *old, size_t n_old)
{
    struct entry_list l;
    int rc = read_entry_range(vi, &mv->vid, mv->lsn, mv->lsn, m->pub.lsn, UINT64_MAX, &l);
    if (rc)
        return rc;
    segidx_offset_set *held = segidx_offset_set_new();
    rc = held ? replaced_offsets(&l, mv, old, n_old, held) : SEGIDX_ENOMEM;
    if (!rc && !segidx_offset_set_is_empty(held)) {
        rc = check_covered(held, mv);
        for (size_t i = 0; i < l.n && !rc; i++)
            if (bsearch(&l.e[i].sid, old, n_old, sizeof *old, compare_sids))
                rc = batch_change_entry(b, &mv->vid, &l.e[i], &l.raw[i], NULL);
        if (!rc)
            rc = batch_new_entries(b, mv, held);
    }
    segidx_offset_set_free(held);
    entry_list_free(&l);
    return rc;
}

/* One read of everything the moves touch and one conditional write. A
 * move of a volume with no meta, or above its LSN, has nothing to move. */
static int try_repoint(segidx_volume_index *vi, const segidx_repoint *const *order, size_t n,
                       const segidx_sid *old, size_t n_old, bool *lost)
{
    *lost = false;
    struct batch b = { 0 };
    struct meta m;
    int rc = SEGIDX_OK, meta_rc = SEGIDX_ENOTFOUND;
    for (size_t i = 0; i < n && !rc; i++) {
        if (i == 0 || !segidx__id_equal(order[i]->vid.bytes, order[i - 1]->vid.bytes))
            meta_rc = read_meta(vi, &order[i]->vid, &m);
        if (meta_rc && meta_rc != SEGIDX_ENOTFOUND)
            rc = meta_rc;
        else if (!meta_rc && order[i]->lsn <= m.pub.lsn)
            rc = plan_move(vi, &b, order[i], &m, old, n_old);
    }
    if (!rc && b.n) {
        rc = segidx__kv_write(&vi->kv, b.ops, b.n);
        *lost = rc == SEGIDX_ECONFLICT;
    }
    batch_free(&b);
    return rc;
}

int segidx_volume_repoint(segidx_volume_index *vi, const segidx_sid *old, size_t n_old,
                          const segidx_repoint *moves, size_t n)
{
    if (!vi || !old || !moves || !n_old || !n || n > SIZE_MAX / sizeof(void *) ||
        n_old > SIZE_MAX / sizeof *old)
        return SEGIDX_EINVAL;
    segidx_sid *sorted = malloc(n_old * sizeof *sorted);
    const segidx_repoint **order = malloc(n * sizeof *order);
    int rc = sorted && order ? SEGIDX_OK : SEGIDX_ENOMEM;
    if (!rc) {
        memcpy(sorted, old, n_old * sizeof *sorted);
        qsort(sorted, n_old, sizeof *sorted, compare_sids);
        rc = sort_moves(moves, n, sorted, n_old, order);
    }
    if (!rc) {
        segidx__mutex_lock(&vi->write_lock);
        bool lost = true;
        for (int attempt = 0; lost && attempt <= WRITE_RETRIES; attempt++)
            rc = try_repoint(vi, order, n, sorted, n_old, &lost);
        segidx__mutex_unlock(&vi->write_lock);
    }
    free(order);
    free(sorted);
    return rc;
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
