/* LMDB durability: a child process commits to a durable volume index in a
 * loop, and prunes it now and then, reporting each acknowledged commit and
 * prune down a pipe, and is killed with SIGKILL at a random moment. After
 * each kill the store must hold a prefix of the commits: every
 * acknowledged commit and prune, none torn, nothing beyond.
 *
 * The writer keeps checkpoints on a small schedule (docs/FORMAT.md,
 * "Checkpoints"), so that most kills land in or next to the write of one:
 * volume 0 closes a round with every commit (K = 1, F = 2, L = 3: an image
 * every 8 commits), volume 1 with every other one (K = 2, F = 2, L = 2: an
 * image every 8 commits). Volume 0 got its schedule from the handle that
 * made its first commit, before the trials; the writer's own options are
 * volume 1's, whose first 6 commits were made with checkpoints off, so
 * that the writer's first commit of it upgrades it (round 0 at LSN 7, an
 * image from one walk of its history). After each kill, against a model of
 * every commit (what commit `lsn` of a volume writes is a function of both):
 *
 *   - the meta: the LSN and prune point at least what was acknowledged, and
 *     never back; the prune point one the writer may have chosen; the
 *     schedule as above;
 *   - volume_commits lists every commit up to the meta's LSN, each entry
 *     with exactly the offsets the prune point leaves it;
 *   - find_segments of every offset at every retained LSN (and above the
 *     head) gives each offset's newest write, segment and LSN; above the
 *     first checkpoint these reads go through the checkpoints;
 *   - every checkpoint value in the store, decoded as FORMAT.md says:
 *     exactly the rounds the prune point keeps, each holding for every
 *     offset of its chunk written in its span the newest LSN there.
 *
 * SEGIDX_CRASH_TRIALS sets the number of kills (make check: 5,
 * make check-long: 50). */
#include "testutil.h"

#include "internal.h" /* the checksum, to decode checkpoint values */
#include "segidx_lmdb.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VOLS 2
static const segidx_vid crash_vid[VOLS] = { { { 0xC4, 0xA5, 0x11 } },
                                            { { 0xC4, 0xA5, 0x11, 1 } } };

/* Offsets are k * SPREAD + segment, k < 1000: chunks 0 to 3. */
#define SPREAD 13u
#define OFFSETS (1000u * SPREAD)
#define MAX_SEGS 3
/* The writer prunes each volume to lsn - PRUNE_LAG after each commit whose
 * LSN is a multiple of PRUNE_EVERY. */
#define PRUNE_EVERY 5
#define PRUNE_LAG 12
/* Volume 1's commits before the writer's: without checkpoints. */
#define UPGRADE_AT 7

/* A volume's schedule as its meta stores it; from == 0: none. */
struct schedule {
    segidx_lsn from;
    uint64_t commits, fanout, levels;
};

static const segidx_volume_index_options volume0_opts = { 1, 2, 3 };
static const segidx_volume_index_options writer_opts = { 2, 2, 2 };
static const segidx_volume_index_options walk_only = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };
static const struct schedule want_schedule[VOLS] = { { 1, 1, 2, 3 }, { UPGRADE_AT, 2, 2, 2 } };

/* Commit `lsn` of volume v's segments, a function of both: one to three,
 * each with its own sid and disjoint offsets. */
static size_t commit_for(unsigned v, segidx_lsn lsn, segidx_commit_segment segs[MAX_SEGS])
{
    test_rng r = { lsn * 0x9E3779B97F4A7C15ull ^ v * 0xD1B54A32D192ED03ull };
    size_t n = 1 + rng_below(&r, MAX_SEGS);
    for (size_t i = 0; i < n; i++) {
        memset(segs[i].sid.bytes, 0, 16);
        memcpy(segs[i].sid.bytes, &lsn, 8);
        segs[i].sid.bytes[8] = (uint8_t)(i + 1);
        segs[i].sid.bytes[9] = (uint8_t)v;
        segidx_offset_set *s = segidx_offset_set_new();
        assert_non_null(s);
        for (uint32_t k = 0, m = 1 + (uint32_t)rng_below(&r, 50); k < m; k++)
            segidx_offset_set_add(s, (uint32_t)(rng_below(&r, 1000) * SPREAD + i));
        segs[i].offsets = s;
    }
    return n;
}

static void free_commit(segidx_commit_segment *segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        segidx_offset_set_free((segidx_offset_set *)segs[i].offsets);
}

/* A durable LMDB store and a volume index over it; *raw: the store, which
 * the index owns (used only while it is open, for reads of stored bytes). */
static segidx_volume_index *open_durable(const char *dir, const segidx_volume_index_options *opts,
                                         segidx_kv *raw)
{
    segidx_kv kv;
    segidx_kv_lmdb_options o = { 0 };
    o.map_size = (size_t)256 << 20;
    if (segidx_kv_lmdb_open(dir, &o, &kv) != SEGIDX_OK)
        return NULL;
    segidx_volume_index *vi;
    if (segidx_volume_index_open_with(kv, opts, &vi) != SEGIDX_OK) {
        kv.vt->close(kv.self);
        return NULL;
    }
    if (raw)
        *raw = kv;
    return vi;
}

static int commit(segidx_volume_index *vi, unsigned v, segidx_lsn lsn)
{
    segidx_commit_segment segs[MAX_SEGS];
    size_t n = commit_for(v, lsn, segs);
    int rc = segidx_volume_commit(vi, &crash_vid[v], lsn, lsn * 10, segs, n);
    free_commit(segs, n);
    return rc;
}

/* What the writer acknowledges: a commit or a prune, once it is durable. */
enum { ACK_COMMIT = 1, ACK_PRUNE = 2 };
struct ack {
    uint32_t v, kind;
    uint64_t lsn; /* the commit's, or the prune's keep_from */
};

static void send_ack(int fd, unsigned v, uint32_t kind, uint64_t lsn)
{
    struct ack a = { v, kind, lsn };
    if (write(fd, &a, sizeof a) != sizeof a)
        _exit(5);
}

/* The child: commit to both volumes in turn forever, pruning each now and
 * then, acknowledging each commit and prune once it is durable. */
static void writer(const char *dir, int ack_fd)
{
    segidx_volume_index *vi = open_durable(dir, &writer_opts, NULL);
    if (!vi)
        _exit(2);
    segidx_lsn next[VOLS];
    for (unsigned v = 0; v < VOLS; v++) {
        segidx_volume_meta m = { 0 };
        if (segidx_volume_get(vi, &crash_vid[v], &m))
            _exit(3);
        next[v] = m.lsn + 1;
    }
    for (;;)
        for (unsigned v = 0; v < VOLS; v++) {
            segidx_lsn lsn = next[v]++;
            if (commit(vi, v, lsn))
                _exit(4);
            send_ack(ack_fd, v, ACK_COMMIT, lsn);
            if (lsn % PRUNE_EVERY == 0 && lsn > PRUNE_LAG) {
                if (segidx_volume_prune(vi, &crash_vid[v], lsn - PRUNE_LAG))
                    _exit(6);
                send_ack(ack_fd, v, ACK_PRUNE, lsn - PRUNE_LAG);
            }
        }
}

/* The last commit and prune acknowledged of each volume. */
static void read_acks(int fd, segidx_lsn commits[VOLS], segidx_lsn prunes[VOLS])
{
    struct ack a;
    while (read(fd, &a, sizeof a) == sizeof a) {
        assert_true(a.v < VOLS);
        if (a.kind == ACK_COMMIT)
            commits[a.v] = a.lsn;
        else
            prunes[a.v] = a.lsn;
    }
}

/* ------------------------------------------------------------ the model */

/* One write of one offset: commit `lsn`'s segment `seg`. */
struct write {
    segidx_lsn lsn;
    unsigned seg;
};

struct writes {
    struct write *w; /* ascending LSN */
    size_t n, cap;
};

/* Every commit of a volume up to n, by offset. */
struct model {
    segidx_lsn n;
    struct writes off[OFFSETS];
    segidx_offset_set *(*sets)[MAX_SEGS]; /* [lsn]: each segment's offsets */
    unsigned char *n_segs;                /* [lsn] */
    size_t cap;
};

struct add_write {
    struct model *m;
    struct write w;
};

static int add_write(segidx_offset o, void *ctx)
{
    struct add_write *a = ctx;
    assert_true(o < OFFSETS);
    struct writes *l = &a->m->off[o];
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->w = realloc(l->w, l->cap * sizeof *l->w);
        assert_non_null(l->w);
    }
    l->w[l->n++] = a->w;
    return 0;
}

/* Model the commits up to `head`. */
static void model_extend(struct model *m, unsigned v, segidx_lsn head)
{
    if (head + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < head + 1)
            cap *= 2;
        m->sets = realloc(m->sets, cap * sizeof *m->sets);
        m->n_segs = realloc(m->n_segs, cap);
        assert_non_null(m->sets);
        assert_non_null(m->n_segs);
        m->cap = cap;
    }
    for (segidx_lsn lsn = m->n + 1; lsn <= head; lsn++) {
        segidx_commit_segment segs[MAX_SEGS];
        size_t n = commit_for(v, lsn, segs);
        m->n_segs[lsn] = (unsigned char)n;
        for (size_t j = 0; j < n; j++) {
            struct add_write a = { m, { lsn, (unsigned)j } };
            segidx_offset_set_iterate(segs[j].offsets, add_write, &a);
            m->sets[lsn][j] = (segidx_offset_set *)segs[j].offsets;
        }
    }
    if (head > m->n)
        m->n = head;
}

static void model_free(struct model *m)
{
    for (segidx_lsn lsn = 1; lsn <= m->n; lsn++)
        for (unsigned j = 0; j < m->n_segs[lsn]; j++)
            segidx_offset_set_free(m->sets[lsn][j]);
    for (size_t o = 0; o < OFFSETS; o++)
        free(m->off[o].w);
    free(m->sets);
    free(m->n_segs);
}

/* The newest write of offset o at or below lsn; NULL: none. */
static const struct write *model_at(const struct model *m, segidx_offset o, segidx_lsn lsn)
{
    if (o >= OFFSETS)
        return NULL;
    const struct writes *l = &m->off[o];
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->w[mid].lsn <= lsn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? &l->w[lo - 1] : NULL;
}

/* ------------------------------------------------------------ the checks */

typedef unsigned long long ull;

/* volume_commits, oldest first: each entry is a segment of the commit of
 * its LSN, with exactly the offsets no commit in (its LSN, keep_from]
 * rewrote; an entry with none left is gone. */
struct listing {
    const struct model *m;
    segidx_lsn head, keep_from, last;
    unsigned char *seen; /* [lsn]: bit j, segment j listed */
};

struct kept {
    const struct model *m;
    segidx_lsn lsn, keep_from;
    segidx_offset_set *out;
};

static int keep_if_not_rewritten(segidx_offset o, void *ctx)
{
    struct kept *k = ctx;
    if (k->lsn >= k->keep_from || model_at(k->m, o, k->keep_from)->lsn == k->lsn)
        assert_int_equal(segidx_offset_set_add(k->out, o), SEGIDX_OK);
    return 0;
}

/* The offsets of segment j of commit lsn that the prune point leaves it. */
static segidx_offset_set *kept_offsets(const struct model *m, segidx_lsn lsn, unsigned j,
                                       segidx_lsn keep_from)
{
    struct kept k = { m, lsn, keep_from, segidx_offset_set_new() };
    assert_non_null(k.out);
    segidx_offset_set_iterate(m->sets[lsn][j], keep_if_not_rewritten, &k);
    return k.out;
}

static int check_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                       const segidx_offset_set *offsets)
{
    struct listing *l = ctx;
    assert_true(lsn >= 1 && lsn <= l->head && lsn >= l->last);
    l->last = lsn;
    segidx_lsn in_sid;
    memcpy(&in_sid, sid->bytes, 8);
    unsigned j = sid->bytes[8] - 1u;
    assert_int_equal(in_sid, lsn);
    assert_true(j < l->m->n_segs[lsn] && !(l->seen[lsn] >> j & 1));
    l->seen[lsn] |= (unsigned char)(1u << j);
    segidx_offset_set *want = kept_offsets(l->m, lsn, j, l->keep_from);
    assert_true(segidx_offset_set_equals(offsets, want));
    segidx_offset_set_free(want);
    return 0;
}

static void check_listing(segidx_volume_index *vi, unsigned v, const struct model *m,
                          const segidx_volume_meta *meta)
{
    struct listing l = { m, meta->lsn, meta->keep_from, 0, calloc(meta->lsn + 1, 1) };
    assert_non_null(l.seen);
    assert_int_equal(segidx_volume_commits(vi, &crash_vid[v], check_entry, &l), 0);
    /* Every segment not listed was pruned away whole. */
    for (segidx_lsn lsn = 1; lsn <= meta->lsn; lsn++)
        for (unsigned j = 0; j < m->n_segs[lsn]; j++)
            if (!(l.seen[lsn] >> j & 1)) {
                segidx_offset_set *want = kept_offsets(m, lsn, j, meta->keep_from);
                assert_true(segidx_offset_set_is_empty(want));
                segidx_offset_set_free(want);
            }
    free(l.seen);
}

/* find_segments of every offset at `lsn`, against the model. */
struct answer {
    const struct model *m;
    unsigned v;
    segidx_lsn lsn, last;
    unsigned char answered[OFFSETS];
    segidx_lsn got_lsn;
    unsigned got_seg;
    long n;
};

static int check_answer_offset(segidx_offset o, void *ctx)
{
    struct answer *a = ctx;
    const struct write *w = model_at(a->m, o, a->lsn);
    assert_non_null(w);
    assert_false(a->answered[o]);
    a->answered[o] = 1;
    if (w->lsn != a->got_lsn || w->seg != a->got_seg)
        fail_msg("volume %u read at %llu: offset %u from LSN %llu segment %u, the model says LSN "
                 "%llu segment %u", a->v, (ull)a->lsn, o, (ull)a->got_lsn, a->got_seg,
                 (ull)w->lsn, w->seg);
    a->n++;
    return 0;
}

static int check_visit(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    struct answer *a = ctx;
    segidx_lsn in_sid;
    memcpy(&in_sid, sid->bytes, 8);
    assert_int_equal(in_sid, lsn);
    assert_int_equal(sid->bytes[9], a->v);
    assert_true(lsn <= a->lsn && lsn <= a->last);
    a->last = lsn;
    a->got_lsn = lsn;
    a->got_seg = sid->bytes[8] - 1u;
    segidx_offset_set_iterate(cut, check_answer_offset, a);
    return 0;
}

static int check_never_written(segidx_offset o, void *ctx)
{
    struct answer *a = ctx;
    if (model_at(a->m, o, a->lsn))
        fail_msg("volume %u read at %llu: offset %u left unanswered, the model has it at %llu",
                 a->v, (ull)a->lsn, o, (ull)model_at(a->m, o, a->lsn)->lsn);
    return 0;
}

static void check_read(segidx_volume_index *vi, unsigned v, const struct model *m,
                       segidx_lsn lsn, struct answer *a)
{
    memset(a, 0, sizeof *a);
    a->m = m;
    a->v = v;
    a->lsn = lsn;
    a->last = UINT64_MAX;
    segidx_offset_set *q = segidx_offset_set_new();
    assert_non_null(q);
    /* Every offset, the never written ones between them included. */
    assert_int_equal(segidx_offset_set_add_range(q, 0, OFFSETS + 5), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(q, UINT32_MAX), SEGIDX_OK);
    uint64_t asked = segidx_offset_set_cardinality(q);
    assert_int_equal(segidx_volume_find_segments(vi, &crash_vid[v], lsn, q, check_visit, a),
                     SEGIDX_OK);
    segidx_offset_set_iterate(q, check_never_written, a);
    assert_int_equal(segidx_offset_set_cardinality(q) + (uint64_t)a->n, asked);
    segidx_offset_set_free(q);
}

/* ------------------------------------------------------------ checkpoints */

#define CKPT_PREFIX "checkpoints/"
#define CKPT_PREFIX_LEN 12
#define CKPT_KEY_LEN (CKPT_PREFIX_LEN + 16 + 8 + 1 + 4)
#define CHUNK_BITS 12
#define CHUNK_OFFSETS (1u << CHUNK_BITS)

static uint64_t power_of(uint64_t f, uint64_t e)
{
    uint64_t r = 1;
    while (e--)
        r *= f;
    return r;
}

static uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int keep_schedule(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen;
    struct schedule *sch = ctx;
    const uint8_t *p = val;
    *sch = (struct schedule){ 0, 0, 0, 0 };
    if (vlen == 64 && segidx__load16(p + 4) == 2)
        *sch = (struct schedule){ segidx__load64(p + 40), segidx__load32(p + 48), p[52], p[53] };
    else
        assert_int_equal(vlen, 48); /* version 1: no checkpoints */
    return 0;
}

/* The volume's schedule, from its meta's stored bytes. */
static struct schedule read_schedule(segidx_kv raw, unsigned v)
{
    uint8_t key[24];
    memcpy(key, "volumes/", 8);
    memcpy(key + 8, crash_vid[v].bytes, 16);
    struct schedule sch;
    assert_int_equal(raw.vt->get(raw.self, key, sizeof key, keep_schedule, &sch), SEGIDX_OK);
    return sch;
}

/* A chunk map of `level` at round LSN `round` for `chunk`, decoded as
 * FORMAT.md ("Chunk map") says into off[]/lsn[]; false if any byte breaks
 * the format. */
static bool decode_chunk_map(const uint8_t *p, size_t len, segidx_lsn round, unsigned level,
                             uint32_t chunk, uint32_t *off, segidx_lsn *lsn, unsigned *count)
{
    static const uint8_t magic[4] = { 'S', 'X', 'C', 'K' };
    if (len < 32 || memcmp(p, magic, 4) != 0 || segidx__load16(p + 4) != 1 || p[6] != level ||
        p[7] > 1 || segidx__load64(p + 8) != round || segidx__load32(p + 16) != chunk ||
        p[22] > 64 || p[23] != 0)
        return false;
    unsigned n = segidx__load16(p + 20) + 1u, width = p[22];
    bool bitmap = p[7] == 1;
    if (bitmap != (n >= 256))
        return false;
    size_t ob = bitmap ? CHUNK_OFFSETS / 8 : 2 * (size_t)n, lb = ((size_t)n * width + 7) / 8;
    if (len != 24 + ob + lb + 8 || segidx__load64(p + len - 8) != segidx__xxh3(p, len - 8))
        return false;
    const uint8_t *offs = p + 24, *lsns = offs + ob;
    unsigned k = 0;
    for (unsigned i = 0; i < (bitmap ? CHUNK_OFFSETS : n); i++) {
        unsigned b = bitmap ? i : segidx__load16(offs + 2 * i);
        if (bitmap ? !(offs[b / 8] >> (b % 8) & 1) : false)
            continue;
        if (k == n || b >= CHUNK_OFFSETS || (k && b <= (off[k - 1] & (CHUNK_OFFSETS - 1))))
            return false;
        off[k++] = chunk << CHUNK_BITS | b;
    }
    if (k != n)
        return false;
    for (unsigned i = 0; i < n; i++) {
        uint64_t field = 0;
        for (unsigned bit = 0; bit < width; bit++) {
            size_t pos = (size_t)i * width + bit;
            field |= (uint64_t)(lsns[pos / 8] >> (pos % 8) & 1) << bit;
        }
        if (field >= round)
            return false;
        lsn[i] = round - field;
    }
    size_t used = (size_t)n * width % 8;
    if (used && lsns[lb - 1] >> used)
        return false;
    *count = n;
    return true;
}

/* Whether round n of the schedule stores a value of `level`. */
static bool round_has_level(const struct schedule *sch, uint64_t n, unsigned level)
{
    if (n % power_of(sch->fanout, sch->levels) == 0)
        return level == 0;
    return level >= 1 && level <= sch->levels && n % power_of(sch->fanout, level - 1) == 0;
}

/* How many offsets of `chunk` the model puts in the value of `level` at
 * round LSN `round`: those written in its span. */
static unsigned expected_count(const struct model *m, const struct schedule *sch, segidx_lsn round,
                               unsigned level, uint32_t chunk)
{
    segidx_lsn lo = level == 0 ? 0 : round - sch->commits * power_of(sch->fanout, level - 1);
    unsigned n = 0;
    for (uint32_t o = chunk << CHUNK_BITS; o < OFFSETS && o < (chunk + 1) << CHUNK_BITS; o++) {
        const struct write *w = model_at(m, o, round);
        n += w && w->lsn > lo;
    }
    return n;
}

struct ckpt_check {
    const struct model *m;
    unsigned v;
    struct schedule sch;
    segidx_lsn head;
    uint64_t first_round; /* the oldest round the prune point keeps */
    long values;
    uint32_t off[CHUNK_OFFSETS];
    segidx_lsn lsn[CHUNK_OFFSETS];
};

static int check_ckpt_value(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct ckpt_check *c = ctx;
    const struct schedule *sch = &c->sch;
    const uint8_t *k = key;
    assert_int_equal(klen, CKPT_KEY_LEN);
    assert_memory_equal(k + CKPT_PREFIX_LEN, crash_vid[c->v].bytes, 16);
    segidx_lsn round = load_be(k + CKPT_PREFIX_LEN + 16, 8);
    unsigned level = k[CKPT_PREFIX_LEN + 24];
    uint32_t chunk = (uint32_t)load_be(k + CKPT_PREFIX_LEN + 25, 4);
    if (round < sch->from || (round - sch->from) % sch->commits != 0 || round > c->head ||
        (round - sch->from) / sch->commits < c->first_round ||
        !round_has_level(sch, (round - sch->from) / sch->commits, level))
        fail_msg("volume %u (LSN %llu) holds a checkpoint value at round LSN %llu level %u chunk "
                 "%u, which the schedule and the prune point (round %llu on) do not keep",
                 c->v, (ull)c->head, (ull)round, level, chunk, (ull)c->first_round);
    unsigned n = 0;
    if (!decode_chunk_map(val, vlen, round, level, chunk, c->off, c->lsn, &n))
        fail_msg("volume %u: the checkpoint value at round LSN %llu level %u chunk %u breaks the "
                 "format", c->v, (ull)round, level, chunk);
    segidx_lsn lo = level == 0 ? 0 : round - sch->commits * power_of(sch->fanout, level - 1);
    for (unsigned i = 0; i < n; i++) {
        const struct write *w = model_at(c->m, c->off[i], round);
        if (!w || w->lsn <= lo || w->lsn != c->lsn[i])
            fail_msg("volume %u: the checkpoint value at round LSN %llu level %u holds offset %u "
                     "at LSN %llu; the model: %llu (span above %llu)", c->v, (ull)round, level,
                     c->off[i], (ull)c->lsn[i], (ull)(w ? w->lsn : 0), (ull)lo);
    }
    assert_int_equal(n, expected_count(c->m, sch, round, level, chunk));
    c->values++;
    return 0;
}

/* Every checkpoint value of volume v, against the model; returns how many. */
static long check_checkpoints(segidx_kv raw, unsigned v, const struct model *m,
                              const struct schedule *sch, const segidx_volume_meta *meta)
{
    struct ckpt_check *c = calloc(1, sizeof *c);
    assert_non_null(c);
    *c = (struct ckpt_check){ .m = m, .v = v, .sch = *sch, .head = meta->lsn };
    uint64_t every = power_of(sch->fanout, sch->levels);
    if (meta->keep_from >= sch->from) {
        uint64_t n = (meta->keep_from - sch->from) / sch->commits;
        c->first_round = n - n % every;
    }
    long expected = 0;
    for (uint64_t n = c->first_round; sch->from + n * sch->commits <= meta->lsn; n++)
        for (unsigned level = 0; level <= sch->levels; level++)
            for (uint32_t chunk = 0; chunk <= (OFFSETS - 1) >> CHUNK_BITS; chunk++)
                if (round_has_level(sch, n, level))
                    expected += expected_count(m, sch, sch->from + n * sch->commits, level,
                                               chunk) > 0;
    uint8_t lo[CKPT_PREFIX_LEN + 16], hi[CKPT_PREFIX_LEN + 16];
    memcpy(lo, CKPT_PREFIX, CKPT_PREFIX_LEN);
    memcpy(lo + CKPT_PREFIX_LEN, crash_vid[v].bytes, 16);
    memcpy(hi, lo, sizeof hi);
    hi[sizeof hi - 1]++; /* the vids' last bytes are not 0xFF */
    assert_int_equal(raw.vt->scan(raw.self, lo, sizeof lo, hi, sizeof hi, false, check_ckpt_value,
                                  c),
                     0);
    assert_int_equal(c->values, expected);
    long values = c->values;
    free(c);
    return values;
}

/* ------------------------------------------------------------ the trials */

/* Before the trials: volume 0's first commit through a handle with its
 * schedule; volume 1's first commits with checkpoints off. */
static void setup(const char *dir)
{
    segidx_volume_index *vi = open_durable(dir, &volume0_opts, NULL);
    assert_non_null(vi);
    assert_int_equal(commit(vi, 0, 1), SEGIDX_OK);
    segidx_volume_index_close(vi);
    vi = open_durable(dir, &walk_only, NULL);
    assert_non_null(vi);
    for (segidx_lsn lsn = 1; lsn < UPGRADE_AT; lsn++)
        assert_int_equal(commit(vi, 1, lsn), SEGIDX_OK);
    segidx_volume_index_close(vi);
}

static void test_sigkill_leaves_a_prefix(void **state)
{
    (void)state;
    const char *env = getenv("SEGIDX_CRASH_TRIALS");
    int trials = env ? atoi(env) : 5;
    char dir[] = "/tmp/segidx-crash-XXXXXX";
    assert_non_null(mkdtemp(dir));
    test_rng r = { (uint64_t)time(NULL) };
    segidx_volume_meta last[VOLS] = { { 0 } };
    struct model *model = calloc(VOLS, sizeof *model);
    struct answer *a = malloc(sizeof *a);
    assert_non_null(model);
    assert_non_null(a);
    long reads = 0, through = 0, values = 0;
    setup(dir);
    for (int t = 0; t < trials; t++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            writer(dir, fds[1]);
        }
        close(fds[1]);
        struct timespec nap = { 0, (long)(5 + rng_below(&r, 120)) * 1000000L };
        nanosleep(&nap, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status)); /* killed, not failed on its own */
        segidx_lsn acked[VOLS] = { 0 }, pruned[VOLS] = { 0 };
        read_acks(fds[0], acked, pruned);
        close(fds[0]);

        segidx_kv raw;
        segidx_volume_index *vi = open_durable(dir, &walk_only, &raw);
        assert_non_null(vi);
        for (unsigned v = 0; v < VOLS; v++) {
            segidx_volume_meta m;
            assert_int_equal(segidx_volume_get(vi, &crash_vid[v], &m), SEGIDX_OK);
            assert_true(m.lsn >= acked[v] && m.lsn >= last[v].lsn);
            assert_int_equal(m.last_commit, m.lsn * 10);
            /* The prune point: one the writer chose, every acknowledged one. */
            assert_true(m.keep_from >= pruned[v] && m.keep_from >= last[v].keep_from);
            assert_true(m.keep_from == 0 || ((m.keep_from + PRUNE_LAG) % PRUNE_EVERY == 0 &&
                                             m.keep_from + PRUNE_LAG <= m.lsn));
            struct schedule sch = read_schedule(raw, v), want = want_schedule[v];
            if (m.lsn < want.from)
                want = (struct schedule){ 0, 0, 0, 0 };
            assert_memory_equal(&sch, &want, sizeof sch);
            model_extend(&model[v], v, m.lsn);
            check_listing(vi, v, &model[v], &m);
            /* Every retained LSN, above the head too; below, ERANGE. */
            for (segidx_lsn lsn = m.keep_from ? m.keep_from : 1; lsn <= m.lsn + 2; lsn++) {
                check_read(vi, v, &model[v], lsn, a);
                reads++;
                through += sch.from && lsn >= sch.from;
            }
            check_read(vi, v, &model[v], UINT64_MAX, a);
            if (m.keep_from > 1) {
                segidx_offset_set *q = segidx_offset_set_new();
                assert_int_equal(segidx_offset_set_add(q, 1), SEGIDX_OK);
                assert_int_equal(segidx_volume_find_segments(vi, &crash_vid[v], m.keep_from - 1,
                                                             q, check_visit, a),
                                 SEGIDX_ERANGE);
                segidx_offset_set_free(q);
            }
            if (sch.from)
                values += check_checkpoints(raw, v, &model[v], &sch, &m);
            last[v] = m;
        }
        segidx_volume_index_close(vi);
    }
    print_message("%d kills, %llu and %llu commits survived (keep_from %llu and %llu); %ld reads "
                  "of every offset, %ld of them through checkpoints; %ld checkpoint values "
                  "checked\n",
                  trials, (ull)last[0].lsn, (ull)last[1].lsn, (ull)last[0].keep_from,
                  (ull)last[1].keep_from, reads, through, values);
    for (unsigned v = 0; v < VOLS; v++)
        model_free(&model[v]);
    free(model);
    free(a);
    char path[64];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_leaves_a_prefix),
    };
    return cmocka_run_group_tests_name("lmdb crash", tests, NULL, NULL);
}
