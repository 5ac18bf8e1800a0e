/* Allocation failure, for every allocation of every public call.
 *
 * This binary is linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc,--wrap=free: every allocation libsegidx (linked in
 * statically) and this file make goes through __wrap_* below, which keeps
 * the set of live blocks and, when armed with N, fails exactly the Nth
 * allocation from then on.
 *
 * fail_each() runs one public call with its 1st, 2nd, ... allocation
 * failing, one per run, until a run makes fewer allocations than N. Every
 * run that had an allocation fail must return SEGIDX_ENOMEM, leave no block
 * it allocated behind, and leave its state as it was (a check per call:
 * the store's bytes, the query, the builder's pages, the loader's cache...);
 * the run that finally succeeds must give the answer a run without any
 * failure gave. Calls on handles run again and again on the same handle,
 * so a failed run that changed anything shows up in the runs after it.
 *
 * What this cannot reach: CRoaring is a shared library, so the wrap does
 * not see its allocations (its own in sets, cuts, copies, serialization),
 * and 0.2.66 does not check every one of them itself, so failing them would
 * test CRoaring rather than libsegidx (README, "Security"). Likewise
 * liblmdb's. The OffsetSet calls are swept anyway: they make no allocation
 * of their own, and the sweep proves it. The sanitizer builds run this file
 * too, so a CRoaring block leaked on one of our error paths is caught by
 * LeakSanitizer and valgrind. */
#include "kv_forward.h"
#include "testutil.h"

#include "segidx_lmdb.h"

#include <stdbool.h>
#include <unistd.h>

/* ------------------------------------------------------------ the wrap */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

/* Live blocks: an open-addressing set of pointers with tombstones, in
 * memory the wrap does not see. The sweeps are single-threaded. */
#define TOMB ((void *)1)

static struct {
    void **slot;
    size_t cap, used, live; /* used counts tombstones too */
    long fail_at, seen;     /* armed when fail_at > 0 */
    bool failed;
} fa;

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 17);
}

static void track(void *p);

static void track_rehash(void)
{
    void **old = fa.slot;
    size_t old_cap = fa.cap;
    fa.cap = old_cap ? old_cap * 2 : 1024;
    fa.slot = __real_calloc(fa.cap, sizeof *fa.slot);
    if (!fa.slot)
        abort(); /* the test's own bookkeeping: nothing sensible to do */
    fa.used = fa.live = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] && old[i] != TOMB)
            track(old[i]);
    __real_free(old);
}

static void track(void *p)
{
    if (!p)
        return;
    if (2 * (fa.used + 1) > fa.cap)
        track_rehash();
    size_t i = ptr_hash(p) & (fa.cap - 1);
    while (fa.slot[i] && fa.slot[i] != TOMB)
        i = (i + 1) & (fa.cap - 1);
    fa.used += fa.slot[i] == NULL;
    fa.slot[i] = p;
    fa.live++;
}

/* Blocks allocated outside the wrap (by CRoaring, say) are not in the set:
 * freeing them changes nothing here. */
static void untrack(void *p)
{
    if (!p || !fa.cap)
        return;
    for (size_t i = ptr_hash(p) & (fa.cap - 1); fa.slot[i]; i = (i + 1) & (fa.cap - 1))
        if (fa.slot[i] == p) {
            fa.slot[i] = TOMB;
            fa.live--;
            return;
        }
}

static bool inject(void)
{
    if (fa.fail_at <= 0 || ++fa.seen != fa.fail_at)
        return false;
    fa.failed = true;
    return true;
}

void *__wrap_malloc(size_t n)
{
    if (inject())
        return NULL;
    void *p = __real_malloc(n);
    track(p);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (inject())
        return NULL;
    void *p = __real_calloc(n, size);
    track(p);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (inject())
        return NULL;
    void *q = __real_realloc(p, n);
    if (q) {
        untrack(p);
        track(q);
    }
    return q;
}

void __wrap_free(void *p)
{
    untrack(p);
    __real_free(p);
}

/* The host's own allocations (a callback keeping what it is given) are
 * not under test: they neither fail nor count. */
static long faults_pause(void)
{
    long saved = fa.fail_at;
    fa.fail_at = 0;
    return saved;
}

static void faults_resume(long saved)
{
    fa.fail_at = saved;
}

static void arm(long n)
{
    fa.fail_at = n;
    fa.seen = 0;
    fa.failed = false;
}

/* Disarm; true if an allocation was failed since arm(). */
static bool disarm(void)
{
    fa.fail_at = 0;
    return fa.failed;
}

/* ------------------------------------------------------------ the sweep */

typedef struct sweep {
    const char *name;
    int (*call)(void *ctx);            /* the public call, its result */
    void (*unchanged)(void *ctx);      /* after a failed run: state as it was */
    void (*answer)(void *ctx);         /* after the run that succeeded */
    void *ctx;
    /* The call may keep memory it grew in its handle after a failure (its
     * tables grow before anything changes): what it keeps is counted when
     * the handle is freed. Otherwise a failed run must free all it took. */
    bool keeps;
} sweep;

#define SWEEP(n, f, u, a, c) \
    ((sweep){ .name = (n), .call = (f), .unchanged = (u), .answer = (a), .ctx = (c) })

static long total_calls, total_points;

/* Run the call with its Nth allocation failing for N = 1, 2, ... until a
 * run makes fewer than N; returns how many allocations that run made. */
static long sweep_points(const sweep *s)
{
    for (long n = 1;; n++) {
        size_t live = fa.live;
        arm(n);
        int rc = s->call(s->ctx);
        bool failed = disarm();
        if (!failed) {
            if (rc != SEGIDX_OK)
                fail_msg("%s: %s with no failed allocation (run %ld)", s->name,
                         segidx_strerror(rc), n);
            if (s->answer)
                s->answer(s->ctx);
            return n - 1;
        }
        if (rc != SEGIDX_ENOMEM)
            fail_msg("%s: allocation %ld failed, the call returned %s", s->name, n,
                     segidx_strerror(rc));
        if (s->keeps ? fa.live < live : fa.live != live)
            fail_msg("%s: allocation %ld failed, %zd blocks were left behind", s->name, n,
                     (ssize_t)(fa.live - live));
        if (s->unchanged)
            s->unchanged(s->ctx);
    }
}

static void report(const char *name, long points, const char *over)
{
    printf("alloc_fail: %-40s %4ld allocation points%s\n", name, points, over ? over : "");
    total_calls++;
    total_points += points;
}

static void fail_each(const sweep *s)
{
    report(s->name, sweep_points(s), NULL);
}

/* ------------------------------------------------------------ fixtures */

enum { PAGE = 512, NVOL = 3, NCOMMITS = 12 };

static segidx_vid vid_n(unsigned v)
{
    segidx_vid id = { { 0 } };
    id.bytes[0] = 0xA1;
    id.bytes[15] = (uint8_t)(v + 1);
    return id;
}

static segidx_sid sid_n(uint64_t n)
{
    segidx_sid id = { { 0 } };
    id.bytes[0] = 0x5E;
    memcpy(id.bytes + 8, &n, sizeof n);
    return id;
}

/* A page's bytes are a function of where it belongs. */
static void fill(uint8_t *page, const segidx_vid *vid, segidx_offset off, segidx_lsn lsn)
{
    test_rng r = { (uint64_t)vid->bytes[15] << 56 ^ (uint64_t)off << 20 ^ lsn };
    for (size_t i = 0; i < PAGE; i += 8) {
        uint64_t x = rng_next(&r);
        memcpy(page + i, &x, 8);
    }
}

/* The offsets commit `lsn` of volume `v` writes: a function of both. */
static segidx_offset_set *commit_offsets(unsigned v, segidx_lsn lsn)
{
    test_rng r = { v * 1000003ull + lsn };
    segidx_offset_set *s = segidx_offset_set_new();
    assert_non_null(s);
    for (unsigned k = 0, n = 1 + (unsigned)rng_below(&r, 12); k < n; k++)
        assert_int_equal(segidx_offset_set_add(s, (segidx_offset)rng_below(&r, 64)), SEGIDX_OK);
    if (lsn % 5 == 0)
        assert_int_equal(segidx_offset_set_add(s, UINT32_MAX), SEGIDX_OK);
    return s;
}

/* The sid of the one segment that holds commit (v, lsn). */
static segidx_sid commit_sid(unsigned v, segidx_lsn lsn)
{
    return sid_n(v * 100000ull + lsn);
}

/* Bytes of a segment `sid` holding commit (v, lsn). */
static uint8_t *segment_named(unsigned v, segidx_lsn lsn, const segidx_sid *sid, size_t *len)
{
    segidx_segment_options opts = { PAGE, 0, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&opts);
    assert_non_null(b);
    segidx_offset_set *offs = commit_offsets(v, lsn);
    segidx_vid vid = vid_n(v);
    uint8_t page[PAGE];
    segidx_offset list[65];
    size_t n = 0;
    for (segidx_offset o = 0; o < 64; o++)
        if (segidx_offset_set_contains(offs, o))
            list[n++] = o;
    if (segidx_offset_set_contains(offs, UINT32_MAX))
        list[n++] = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        fill(page, &vid, list[i], lsn);
        assert_int_equal(segidx_segment_builder_add(b, &vid, list[i], lsn, page), SEGIDX_OK);
    }
    segidx_offset_set_free(offs);
    *len = segidx_segment_builder_size(b);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(segidx_segment_builder_finish(b, sid, buf, *len), SEGIDX_OK);
    segidx_segment_builder_free(b);
    return buf;
}

/* Bytes of the segment holding commit (v, lsn). */
static uint8_t *commit_segment(unsigned v, segidx_lsn lsn, size_t *len)
{
    segidx_sid sid = commit_sid(v, lsn);
    return segment_named(v, lsn, &sid, len);
}

/* An in-memory index of NVOL volumes x NCOMMITS commits, built unarmed;
 * `kv` is its store, owned by the index. */
static segidx_volume_index *index_build(segidx_kv *kv_out)
{
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    *kv_out = kv;
    segidx_volume_index *vi;
    assert_int_equal(segidx_volume_index_open(kv, &vi), SEGIDX_OK);
    for (segidx_lsn lsn = 1; lsn <= NCOMMITS; lsn++)
        for (unsigned v = 0; v < NVOL; v++) {
            segidx_vid vid = vid_n(v);
            segidx_commit_segment seg = { commit_sid(v, lsn), commit_offsets(v, lsn) };
            assert_int_equal(segidx_volume_commit(vi, &vid, lsn, lsn * 10, &seg, 1), SEGIDX_OK);
            segidx_offset_set_free((segidx_offset_set *)seg.offsets);
        }
    return vi;
}

/* ------------------------------------------------------------ OffsetSet */

struct set_ctx {
    segidx_offset_set *a, *b, *a_before, *out;
    uint8_t buf[1 << 16];
    size_t len;
};

static segidx_offset_set *mixed_set(uint64_t seed)
{
    test_rng r = { seed };
    segidx_offset_set *s = segidx_offset_set_new();
    assert_non_null(s);
    for (int i = 0; i < 300; i++)
        assert_int_equal(segidx_offset_set_add(s, (segidx_offset)rng_below(&r, 200000)), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add_range(s, 70000, 140000), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(s, UINT32_MAX), SEGIDX_OK);
    return s;
}

static void set_unchanged(void *ctx)
{
    struct set_ctx *c = ctx;
    assert_true(segidx_offset_set_equals(c->a, c->a_before));
}

static int set_new_call(void *ctx)
{
    struct set_ctx *c = ctx;
    segidx_offset_set_free(c->out);
    c->out = segidx_offset_set_new();
    return c->out ? SEGIDX_OK : SEGIDX_ENOMEM;
}

static int set_copy_call(void *ctx)
{
    struct set_ctx *c = ctx;
    segidx_offset_set_free(c->out);
    c->out = segidx_offset_set_copy(c->a);
    return c->out ? SEGIDX_OK : SEGIDX_ENOMEM;
}

static int set_cut_call(void *ctx)
{
    struct set_ctx *c = ctx;
    segidx_offset_set_free(c->out);
    segidx_offset_set_free(c->a);
    c->a = segidx_offset_set_copy(c->a_before); /* cut takes from `a` */
    assert_non_null(c->a);
    c->out = segidx_offset_set_cut(c->a, c->b);
    return c->out ? SEGIDX_OK : SEGIDX_ENOMEM;
}

static void set_cut_answer(void *ctx)
{
    struct set_ctx *c = ctx;
    /* a_before = what is left in a, plus the cut, disjointly */
    uint64_t n = segidx_offset_set_cardinality(c->a) + segidx_offset_set_cardinality(c->out);
    assert_int_equal(n, segidx_offset_set_cardinality(c->a_before));
    for (segidx_offset o = 0; o < 200000; o += 97)
        assert_int_equal(segidx_offset_set_contains(c->out, o),
                         segidx_offset_set_contains(c->a_before, o) &&
                             segidx_offset_set_contains(c->b, o));
}

static int set_serialize_call(void *ctx)
{
    struct set_ctx *c = ctx;
    size_t need = segidx_offset_set_serialized_size(c->a);
    if (!need)
        return SEGIDX_ENOMEM;
    assert_true(need <= sizeof c->buf);
    c->len = segidx_offset_set_serialize(c->a, c->buf, sizeof c->buf);
    return c->len ? SEGIDX_OK : SEGIDX_ENOMEM;
}

static int set_deserialize_call(void *ctx)
{
    struct set_ctx *c = ctx;
    segidx_offset_set_free(c->out);
    c->out = NULL;
    return segidx_offset_set_deserialize(c->buf, c->len, &c->out);
}

static void set_out_is_a(void *ctx)
{
    struct set_ctx *c = ctx;
    assert_true(segidx_offset_set_equals(c->out, c->a));
}

static void offset_set_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct set_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->a = mixed_set(1);
    c->b = mixed_set(2);
    c->a_before = segidx_offset_set_copy(c->a);
    sweep s[] = {
        SWEEP("segidx_offset_set_new", set_new_call, NULL, NULL, c),
        SWEEP("segidx_offset_set_copy", set_copy_call, set_unchanged, set_out_is_a, c),
        SWEEP("segidx_offset_set_cut", set_cut_call, NULL, set_cut_answer, c),
        SWEEP("segidx_offset_set_serialize", set_serialize_call, set_unchanged, NULL, c),
        SWEEP("segidx_offset_set_deserialize", set_deserialize_call, set_unchanged, set_out_is_a,
              c),
    };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++)
        fail_each(&s[i]);
    segidx_offset_set_free(c->out);
    segidx_offset_set_free(c->a);
    segidx_offset_set_free(c->b);
    segidx_offset_set_free(c->a_before);
    free(c);
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ segments */

struct seg_ctx {
    segidx_segment_builder *b;
    const segidx_segment_options *opts;
    uint8_t page[PAGE];
    segidx_vid vid;
    segidx_offset off;
    segidx_lsn lsn;
    uint32_t pages_before;
    uint8_t *want, *got, *tail;
    size_t len, tail_len;
    segidx_segment *seg;
    segidx_offset_set *offsets;
};

static int builder_new_call(void *ctx)
{
    struct seg_ctx *c = ctx;
    segidx_segment_builder_free(c->b);
    c->b = segidx_segment_builder_new(c->opts);
    return c->b ? SEGIDX_OK : SEGIDX_ENOMEM;
}

static int builder_add_call(void *ctx)
{
    struct seg_ctx *c = ctx;
    return segidx_segment_builder_add(c->b, &c->vid, c->off, c->lsn, c->page);
}

static void builder_unchanged(void *ctx)
{
    struct seg_ctx *c = ctx;
    assert_int_equal(segidx_segment_builder_pages(c->b), c->pages_before);
}

static int builder_finish_call(void *ctx)
{
    struct seg_ctx *c = ctx;
    size_t n = segidx_segment_builder_size(c->b);
    if (!n)
        return SEGIDX_ENOMEM;
    assert_int_equal(n, c->len);
    segidx_sid sid = sid_n(7);
    return segidx_segment_builder_finish(c->b, &sid, c->got, c->len);
}

static void builder_answer(void *ctx)
{
    struct seg_ctx *c = ctx;
    assert_memory_equal(c->got, c->want, c->len);
}

static int open_call(void *ctx)
{
    struct seg_ctx *c = ctx;
    segidx_segment_close(c->seg);
    c->seg = NULL;
    return segidx_segment_open(c->want, c->len, &c->seg);
}

static int open_tail_call(void *ctx)
{
    struct seg_ctx *c = ctx;
    segidx_segment_close(c->seg);
    c->seg = NULL;
    return segidx_segment_open_tail(c->tail, c->tail_len, c->len, &c->seg);
}

static void segment_answer(void *ctx)
{
    struct seg_ctx *c = ctx;
    segidx_page_ref ref;
    assert_int_equal(segidx_segment_find(c->seg, &c->vid, c->off, c->lsn, &ref), SEGIDX_OK);
    assert_int_equal(ref.lsn, c->lsn);
}

static int offsets_call(void *ctx)
{
    struct seg_ctx *c = ctx;
    segidx_offset_set_free(c->offsets);
    c->offsets = NULL;
    return segidx_segment_offsets(c->seg, &c->vid, c->lsn, &c->offsets);
}

static void offsets_answer(void *ctx)
{
    struct seg_ctx *c = ctx;
    assert_true(segidx_offset_set_contains(c->offsets, c->off));
}

static int verify_call(void *ctx)
{
    struct seg_ctx *c = ctx;
    return segidx_segment_verify(c->seg);
}

/* Build, finish, open (whole and tail-only), offsets and verify, with
 * every add of a 300-page segment failing at each of its allocations. */
static void segment_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    segidx_segment_options opts = { PAGE, 0, NULL };
    struct seg_ctx c = { .opts = &opts };
    sweep mk = SWEEP("segidx_segment_builder_new", builder_new_call, NULL, NULL, &c);
    fail_each(&mk);

    /* The reference: the same pages, added with no failure. */
    segidx_segment_builder *ref = segidx_segment_builder_new(&opts);
    assert_non_null(ref);
    test_rng r = { 42 };
    enum { N = 300 };
    struct { segidx_vid vid; segidx_offset off; segidx_lsn lsn; } pg[N];
    for (unsigned i = 0; i < N; i++) {
        pg[i].vid = vid_n((unsigned)rng_below(&r, 5));
        pg[i].off = i % 7 == 0 ? UINT32_MAX - i : (segidx_offset)(i * 37 % 1000);
        pg[i].lsn = 1 + i / 40;
        fill(c.page, &pg[i].vid, pg[i].off, pg[i].lsn);
        assert_int_equal(segidx_segment_builder_add(ref, &pg[i].vid, pg[i].off, pg[i].lsn, c.page),
                         SEGIDX_OK);
    }
    c.len = segidx_segment_builder_size(ref);
    c.want = malloc(c.len);
    c.got = malloc(c.len);
    assert_non_null(c.want);
    assert_non_null(c.got);
    segidx_sid sid = sid_n(7);
    assert_int_equal(segidx_segment_builder_finish(ref, &sid, c.want, c.len), SEGIDX_OK);
    segidx_segment_builder_free(ref);

    long points = 0;
    sweep add = SWEEP("segidx_segment_builder_add", builder_add_call, builder_unchanged, NULL, &c);
    add.keeps = true; /* its tables grow before a page goes in */
    for (unsigned i = 0; i < N; i++) {
        c.vid = pg[i].vid;
        c.off = pg[i].off;
        c.lsn = pg[i].lsn;
        fill(c.page, &c.vid, c.off, c.lsn);
        c.pages_before = i;
        points += sweep_points(&add);
    }
    report(add.name, points, " over 300 adds");

    sweep finish = SWEEP("segidx_segment_builder_finish", builder_finish_call, NULL,
                         builder_answer, &c);
    finish.keeps = true; /* the plan size() made is kept for finish() */
    fail_each(&finish);
    c.vid = pg[N / 2].vid;
    c.off = pg[N / 2].off;
    c.lsn = pg[N / 2].lsn;
    sweep op = SWEEP("segidx_segment_open", open_call, NULL, segment_answer, &c);
    fail_each(&op);
    sweep offs = SWEEP("segidx_segment_offsets", offsets_call, NULL, offsets_answer, &c);
    fail_each(&offs);
    sweep ver = SWEEP("segidx_segment_verify", verify_call, NULL, NULL, &c);
    fail_each(&ver);
    segidx_segment_close(c.seg);
    c.seg = NULL;

    assert_int_equal(segidx_segment_tail_len(c.want + c.len - SEGIDX_SEGMENT_FOOTER_BYTES, c.len,
                                             &c.tail_len),
                     SEGIDX_OK);
    c.tail = c.want + c.len - c.tail_len;
    sweep tail = SWEEP("segidx_segment_open_tail", open_tail_call, NULL, segment_answer, &c);
    fail_each(&tail);

    segidx_segment_close(c.seg);
    segidx_offset_set_free(c.offsets);
    segidx_segment_builder_free(c.b);
    free(c.want);
    free(c.got);
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ packer */

/* Emitted segments, each with its commit list, in one buffer reserved up
 * front so that the host's emit allocates nothing; sids count segments
 * emitted, not attempts, so a retried cut names the same sid. */
struct pack_out {
    test_bytes bytes;
    uint64_t emitted;
};

static int pack_next_sid(void *ctx, segidx_sid *sid)
{
    struct pack_out *o = ctx;
    *sid = sid_n(o->emitted + 1);
    return SEGIDX_OK;
}

static int pack_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                     const segidx_packed_commit *commits, size_t n)
{
    struct pack_out *o = ctx;
    assert_true(o->bytes.len + 16 + len + n * 32 <= o->bytes.cap);
    bytes_put(&o->bytes, sid->bytes, 16);
    bytes_put(&o->bytes, buf, len);
    for (size_t i = 0; i < n; i++) {
        bytes_put(&o->bytes, commits[i].vid.bytes, 16);
        bytes_u64(&o->bytes, commits[i].lsn);
        bytes_u64(&o->bytes, segidx_offset_set_cardinality(commits[i].offsets));
    }
    o->emitted++;
    return SEGIDX_OK;
}

/* commit_ready: each commit as it is handed over, into the same buffer,
 * so that a failed run that handed one over shows, and the final
 * comparison covers them. */
static int pack_commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                             const segidx_commit_segment *segs, size_t n)
{
    struct pack_out *o = ctx;
    assert_true(o->bytes.len + 32 + n * 24 <= o->bytes.cap);
    bytes_put(&o->bytes, vid->bytes, 16);
    bytes_u64(&o->bytes, lsn);
    bytes_u64(&o->bytes, n);
    for (size_t i = 0; i < n; i++) {
        bytes_put(&o->bytes, segs[i].sid.bytes, 16);
        bytes_u64(&o->bytes, segidx_offset_set_cardinality(segs[i].offsets));
    }
    return SEGIDX_OK;
}

struct pack_ctx {
    segidx_packer_options opts;
    segidx_packer *p;
    struct pack_out out;
    bool together;         /* each commit's pages one after another */
    segidx_vid vid;
    segidx_offset off;
    segidx_lsn lsn;
    uint8_t page[PAGE];
    size_t emitted_before; /* bytes of out */
    const segidx_segment *const *segs; /* compaction's input */
    size_t nsegs;
    test_bytes want;
};

static void pack_ctx_init(struct pack_ctx *c, size_t max_bytes)
{
    memset(c, 0, sizeof *c);
    c->opts.segment = (segidx_segment_options){ PAGE, max_bytes, NULL };
    c->opts.next_sid = pack_next_sid;
    c->opts.emit = pack_emit;
    c->opts.ctx = &c->out;
    c->out.bytes.cap = (size_t)2 << 20;
    c->out.bytes.p = malloc(c->out.bytes.cap);
    assert_non_null(c->out.bytes.p);
}

static int packer_new_call(void *ctx)
{
    struct pack_ctx *c = ctx;
    segidx_packer_free(c->p);
    c->p = NULL;
    return segidx_packer_new(&c->opts, &c->p);
}

static int packer_add_call(void *ctx)
{
    struct pack_ctx *c = ctx;
    return segidx_packer_add(c->p, &c->vid, c->off, c->lsn, c->page);
}

static int packer_flush_call(void *ctx)
{
    struct pack_ctx *c = ctx;
    return segidx_packer_flush(c->p);
}

/* A failed add or flush has emitted nothing and handed no commit over: a
 * cut that fails keeps its pages in the packer (the final comparison with
 * a run without failures proves the pages themselves are all there, once,
 * and each commit handed over once). */
static void packer_unchanged(void *ctx)
{
    struct pack_ctx *c = ctx;
    assert_int_equal(c->out.bytes.len, c->emitted_before);
}

/* Add 600 pages of 4 volumes, 16 commits a volume; with `s`, each add is
 * swept. The volumes' pages take turns, or, with `together`, come 4 at a
 * time, a whole commit, as commit_ready wants them. */
static long pack_pages(struct pack_ctx *c, const sweep *s)
{
    long points = 0;
    for (unsigned i = 0; i < 600; i++) {
        c->vid = vid_n(c->together ? i / 4 % 4 : i % 4);
        c->off = (segidx_offset)(i * 7919u % 5000u);
        c->lsn = 1 + i / 16;
        fill(c->page, &c->vid, c->off, c->lsn);
        c->emitted_before = c->out.bytes.len;
        if (s)
            points += sweep_points(s);
        else
            assert_int_equal(packer_add_call(c), SEGIDX_OK);
    }
    return points;
}

/* The packer over 600 pages cut into segments of at most 64 KiB, every
 * add and the flush failing at each of their allocations: the segments
 * emitted (and, with commit_ready, the commits handed over) must be byte
 * for byte those of a run with no failure. */
static void sweep_packer(bool commit_ready)
{
    size_t live = fa.live;
    struct pack_ctx ref, c;
    pack_ctx_init(&ref, 64u << 10);
    pack_ctx_init(&c, 64u << 10);
    if (commit_ready) {
        ref.opts.commit_ready = c.opts.commit_ready = pack_commit_ready;
        ref.together = c.together = true;
    }
    assert_int_equal(packer_new_call(&ref), SEGIDX_OK);
    pack_pages(&ref, NULL);
    assert_int_equal(packer_flush_call(&ref), SEGIDX_OK);

    sweep mk = SWEEP(commit_ready ? "segidx_packer_new (commit_ready)" : "segidx_packer_new",
                     packer_new_call, NULL, NULL, &c);
    fail_each(&mk);
    sweep add = SWEEP(commit_ready ? "segidx_packer_add (commit_ready)" : "segidx_packer_add",
                      packer_add_call, packer_unchanged, NULL, &c);
    add.keeps = true; /* as the builder's add, and a cut keeps its plan */
    report(add.name, pack_pages(&c, &add), " over 600 adds");
    c.emitted_before = c.out.bytes.len;
    sweep fl = SWEEP(commit_ready ? "segidx_packer_flush (commit_ready)" : "segidx_packer_flush",
                     packer_flush_call, packer_unchanged, NULL, &c);
    fl.keeps = true; /* a failed cut keeps its plan */
    fail_each(&fl);
    assert_true(c.out.emitted > 3);
    assert_int_equal(c.out.bytes.len, ref.out.bytes.len);
    assert_memory_equal(c.out.bytes.p, ref.out.bytes.p, ref.out.bytes.len);
    segidx_packer_free(ref.p);
    segidx_packer_free(c.p);
    bytes_free(&ref.out.bytes);
    bytes_free(&c.out.bytes);
    assert_int_equal(fa.live, live);
}

static void packer_calls(void **state)
{
    (void)state;
    sweep_packer(false);
    sweep_packer(true);
}

/* Compaction is documented to leave a failed packer half-fed, so each run
 * gets a fresh packer; every failed run must still return ENOMEM and leak
 * nothing, and the run with no failure must emit what the reference did. */
static int compact_call(void *ctx)
{
    struct pack_ctx *c = ctx;
    segidx_packer_free(c->p);
    c->p = NULL;
    c->out.bytes.len = 0;
    c->out.emitted = 0;
    long saved = faults_pause(); /* the fresh packer is not under test */
    int rc = segidx_packer_new(&c->opts, &c->p);
    faults_resume(saved);
    assert_int_equal(rc, SEGIDX_OK);
    return segidx_compact(c->segs, c->nsegs, c->p);
}

static void compact_answer(void *ctx)
{
    struct pack_ctx *c = ctx;
    assert_int_equal(c->out.bytes.len, c->want.len);
    assert_memory_equal(c->out.bytes.p, c->want.p, c->want.len);
}

static void compact_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    size_t len[3];
    uint8_t *buf[3];
    segidx_segment *seg[3];
    for (unsigned i = 0; i < 3; i++) {
        buf[i] = commit_segment(i, 1 + i, &len[i]);
        assert_int_equal(segidx_segment_open(buf[i], len[i], &seg[i]), SEGIDX_OK);
    }
    struct pack_ctx c;
    pack_ctx_init(&c, 0);
    c.segs = (const segidx_segment *const *)seg;
    c.nsegs = 3;
    assert_int_equal(compact_call(&c), SEGIDX_OK);
    bytes_put(&c.want, c.out.bytes.p, c.out.bytes.len);

    /* A failed run frees nothing of the packer it fed: free it first. */
    sweep cp = SWEEP("segidx_compact", compact_call, NULL, compact_answer, &c);
    long points = 0;
    for (;; points++) {
        segidx_packer_free(c.p);
        c.p = NULL;
        size_t l0 = fa.live;
        arm(points + 1);
        int rc = cp.call(&c);
        bool failed = disarm();
        segidx_packer_free(c.p);
        c.p = NULL;
        assert_int_equal(fa.live, l0);
        if (!failed) {
            assert_int_equal(rc, SEGIDX_OK);
            compact_answer(&c);
            break;
        }
        assert_int_equal(rc, SEGIDX_ENOMEM);
    }
    report(cp.name, points, NULL);
    bytes_free(&c.out.bytes);
    bytes_free(&c.want);
    for (unsigned i = 0; i < 3; i++) {
        segidx_segment_close(seg[i]);
        free(buf[i]);
    }
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ KV stores */

/* The whole store as one byte string (vitest.h has the same for the
 * volume index tests; this file keeps its own to stay independent of the
 * model there). */
static int dump_visit(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    long saved = faults_pause();
    test_bytes *b = ctx;
    bytes_u64(b, klen);
    bytes_put(b, key, klen);
    bytes_u64(b, vlen);
    bytes_put(b, val, vlen);
    faults_resume(saved);
    return 0;
}

static void dump(segidx_kv kv, test_bytes *out)
{
    out->len = 0;
    assert_int_equal(kv.vt->scan(kv.self, "", 0, "", 0, false, dump_visit, out), 0);
}

struct kv_ctx {
    segidx_kv kv;
    segidx_kv_op ops[3];
    test_bytes before, after;
    uint8_t key[3][8], val[3][300];
    char dir[64];
};

static void kv_unchanged(void *ctx)
{
    struct kv_ctx *c = ctx;
    dump(c->kv, &c->after);
    assert_int_equal(c->after.len, c->before.len);
    assert_memory_equal(c->after.p, c->before.p, c->before.len);
}

static int kv_write_call(void *ctx)
{
    struct kv_ctx *c = ctx;
    return c->kv.vt->write(c->kv.self, c->ops, 3);
}

static int kv_scan_call(void *ctx)
{
    struct kv_ctx *c = ctx;
    c->after.len = 0;
    return c->kv.vt->scan(c->kv.self, "", 0, "", 0, true, dump_visit, &c->after);
}

static int kv_get_call(void *ctx)
{
    struct kv_ctx *c = ctx;
    c->after.len = 0;
    return c->kv.vt->get(c->kv.self, c->key[0], 8, dump_visit, &c->after);
}

static int kv_mem_open_call(void *ctx)
{
    struct kv_ctx *c = ctx;
    if (c->kv.vt)
        c->kv.vt->close(c->kv.self);
    c->kv.vt = NULL;
    return segidx_kv_mem_open(&c->kv);
}

static int kv_lmdb_open_call(void *ctx)
{
    struct kv_ctx *c = ctx;
    if (c->kv.vt)
        c->kv.vt->close(c->kv.self);
    c->kv.vt = NULL;
    segidx_kv_lmdb_options o = { 0 };
    o.map_size = (size_t)8 << 20;
    o.nosync = true;
    return segidx_kv_lmdb_open(c->dir, &o, &c->kv);
}

/* 40 batches of two puts and a delete, each swept, then get and scan. */
static void kv_calls(struct kv_ctx *c, const char *store)
{
    char name[4][64];
    snprintf(name[0], sizeof name[0], "%s write", store);
    snprintf(name[1], sizeof name[1], "%s scan", store);
    snprintf(name[2], sizeof name[2], "%s get", store);
    sweep wr = SWEEP(name[0], kv_write_call, kv_unchanged, NULL, c);
    long points = 0;
    test_rng r = { 9 };
    for (unsigned i = 0; i < 40; i++) {
        for (unsigned k = 0; k < 3; k++) {
            for (unsigned j = 0; j < 8; j++)
                c->key[k][j] = (uint8_t)rng_below(&r, 4);
            memset(c->val[k], (int)i, sizeof c->val[k]);
            size_t vlen = 1 + rng_below(&r, sizeof c->val[k]);
            c->ops[k] = (segidx_kv_op){ k < 2 ? SEGIDX_KV_PUT : SEGIDX_KV_DEL, c->key[k], 8,
                                        c->val[k], vlen };
        }
        dump(c->kv, &c->before);
        points += sweep_points(&wr);
    }
    report(wr.name, points, " over 40 batches");
    dump(c->kv, &c->before);
    sweep sc = SWEEP(name[1], kv_scan_call, kv_unchanged, NULL, c);
    fail_each(&sc);
    sweep g = SWEEP(name[2], kv_get_call, kv_unchanged, NULL, c);
    int rc = kv_get_call(c);
    assert_true(rc == SEGIDX_OK || rc == SEGIDX_ENOTFOUND);
    if (rc == SEGIDX_OK)
        fail_each(&g);
    c->kv.vt->close(c->kv.self);
    c->kv.vt = NULL;
    bytes_free(&c->before);
    bytes_free(&c->after);
}

static void kv_mem_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct kv_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    sweep op = SWEEP("segidx_kv_mem_open", kv_mem_open_call, NULL, NULL, c);
    fail_each(&op);
    kv_calls(c, "kv_mem");
    free(c);
    assert_int_equal(fa.live, live);
}

/* liblmdb's own allocations are outside the wrap: this sweeps the
 * adapter's. */
static void kv_lmdb_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct kv_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/segidx-af-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(c->dir));
    sweep op = SWEEP("segidx_kv_lmdb_open", kv_lmdb_open_call, NULL, NULL, c);
    fail_each(&op);
    kv_calls(c, "kv_lmdb");
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", c->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", c->dir);
    unlink(path);
    rmdir(c->dir);
    free(c);
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ volume index */

struct vi_ctx {
    segidx_volume_index *vi, *ref;
    segidx_kv kv, ref_kv;
    segidx_vid vid;
    segidx_lsn lsn;
    segidx_commit_segment segs[2];
    size_t nsegs;
    segidx_offset_set *query, *query_before;
    test_bytes before, after, got, want;
    unsigned pruned;
    segidx_lsn from; /* segidx_volume_changed's */
};

static void vi_unchanged(void *ctx)
{
    struct vi_ctx *c = ctx;
    dump(c->kv, &c->after);
    assert_int_equal(c->after.len, c->before.len);
    assert_memory_equal(c->after.p, c->before.p, c->before.len);
}

static int vi_open_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    segidx_volume_index *vi = NULL;
    int rc = segidx_volume_index_open(c->kv, &vi);
    if (rc == SEGIDX_OK) {
        /* The index owns the store now: close both, then open another. */
        segidx_volume_index_close(vi);
        long saved = faults_pause();
        assert_int_equal(segidx_kv_mem_open(&c->kv), SEGIDX_OK);
        faults_resume(saved);
    }
    return rc;
}

static int vi_commit_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    return segidx_volume_commit(c->vi, &c->vid, c->lsn, c->lsn * 10, c->segs, c->nsegs);
}

static int vi_get_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    segidx_volume_meta m;
    int rc = segidx_volume_get(c->vi, &c->vid, &m);
    if (rc == SEGIDX_OK)
        assert_int_equal(m.lsn, NCOMMITS);
    return rc;
}

static int found_visit(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    long saved = faults_pause();
    test_bytes *b = ctx;
    bytes_put(b, sid->bytes, 16);
    bytes_u64(b, lsn);
    bytes_u64(b, segidx_offset_set_cardinality(cut));
    faults_resume(saved);
    return 0;
}

static int vi_find_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    c->got.len = 0;
    return segidx_volume_find_segments(c->vi, &c->vid, c->lsn, c->query, found_visit, &c->got);
}

static void vi_query_unchanged(void *ctx)
{
    struct vi_ctx *c = ctx;
    assert_true(segidx_offset_set_equals(c->query, c->query_before));
    vi_unchanged(ctx);
}

static void vi_got_want(void *ctx)
{
    struct vi_ctx *c = ctx;
    assert_int_equal(c->got.len, c->want.len);
    assert_memory_equal(c->got.p, c->want.p, c->want.len);
}

static void vi_find_answer(void *ctx)
{
    struct vi_ctx *c = ctx;
    vi_got_want(ctx);
    /* The reference run left the same query behind in query_before. */
    segidx_offset_set *q = segidx_offset_set_copy(c->query_before);
    test_bytes w = { 0 };
    assert_int_equal(segidx_volume_find_segments(c->ref, &c->vid, c->lsn, q, found_visit, &w),
                     SEGIDX_OK);
    assert_true(segidx_offset_set_equals(q, c->query));
    segidx_offset_set_free(q);
    bytes_free(&w);
}

static void unref_visit(void *ctx, const segidx_sid *sid)
{
    long saved = faults_pause();
    bytes_put(ctx, sid->bytes, 16);
    faults_resume(saved);
}

static int vi_prune_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    c->got.len = 0;
    return segidx_volume_prune_report(c->vi, &c->vid, c->lsn, unref_visit, &c->got);
}

static int list_visit(void *ctx, const segidx_vid *vid, const segidx_volume_meta *m)
{
    long saved = faults_pause();
    test_bytes *b = ctx;
    bytes_put(b, vid->bytes, 16);
    bytes_u64(b, m->lsn); /* field by field: the struct has padding */
    bytes_u32(b, m->last_offset);
    bytes_u64(b, m->last_commit);
    bytes_u64(b, m->keep_from);
    faults_resume(saved);
    return 0;
}

static int vi_list_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    c->got.len = 0;
    return segidx_volume_list(c->vi, list_visit, &c->got);
}

static int commits_visit(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                         const segidx_offset_set *offsets)
{
    long saved = faults_pause();
    test_bytes *b = ctx;
    bytes_u64(b, lsn);
    bytes_put(b, sid->bytes, 16);
    bytes_u64(b, segidx_offset_set_cardinality(offsets));
    faults_resume(saved);
    return 0;
}

static int vi_commits_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    c->got.len = 0;
    return segidx_volume_commits(c->vi, &c->vid, commits_visit, &c->got);
}

/* Run `call` on the reference index (no failure) into `want`. */
static void vi_reference(struct vi_ctx *c, int (*call)(void *))
{
    segidx_volume_index *vi = c->vi;
    c->vi = c->ref;
    assert_int_equal(call(c), SEGIDX_OK);
    c->vi = vi;
    c->want.len = 0;
    bytes_put(&c->want, c->got.p ? c->got.p : (uint8_t *)"", c->got.len);
}

static void volume_index_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct vi_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);

    assert_int_equal(segidx_kv_mem_open(&c->kv), SEGIDX_OK);
    sweep op = SWEEP("segidx_volume_index_open", vi_open_call, NULL, NULL, c);
    fail_each(&op);
    c->kv.vt->close(c->kv.self);

    /* Two identical indexes: one under test, one reference. Commits are
     * swept on the first as it is built. */
    assert_int_equal(segidx_kv_mem_open(&c->kv), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open(c->kv, &c->vi), SEGIDX_OK);
    c->ref = index_build(&c->ref_kv);
    sweep cm = SWEEP("segidx_volume_commit", vi_commit_call, vi_unchanged, NULL, c);
    long points = 0;
    for (segidx_lsn lsn = 1; lsn <= NCOMMITS; lsn++)
        for (unsigned v = 0; v < NVOL; v++) {
            c->vid = vid_n(v);
            c->lsn = lsn;
            c->segs[0] = (segidx_commit_segment){ commit_sid(v, lsn), commit_offsets(v, lsn) };
            c->nsegs = 1;
            dump(c->kv, &c->before);
            points += sweep_points(&cm);
            segidx_offset_set_free((segidx_offset_set *)c->segs[0].offsets);
        }
    report(cm.name, points, " over 36 commits");
    dump(c->kv, &c->before);
    dump(c->ref_kv, &c->after);
    assert_int_equal(c->after.len, c->before.len);
    assert_memory_equal(c->after.p, c->before.p, c->before.len);

    c->vid = vid_n(1);
    sweep g = SWEEP("segidx_volume_get", vi_get_call, vi_unchanged, NULL, c);
    fail_each(&g);

    /* find at the latest LSN and at a middle one, for every offset asked */
    for (segidx_lsn lsn = NCOMMITS; lsn >= NCOMMITS / 2; lsn -= NCOMMITS / 2) {
        c->lsn = lsn;
        segidx_offset_set_free(c->query);
        segidx_offset_set_free(c->query_before);
        c->query = segidx_offset_set_new();
        assert_int_equal(segidx_offset_set_add_range(c->query, 0, 70), SEGIDX_OK);
        assert_int_equal(segidx_offset_set_add(c->query, UINT32_MAX), SEGIDX_OK);
        c->query_before = segidx_offset_set_copy(c->query);
        segidx_offset_set *q = c->query;
        c->query = segidx_offset_set_copy(q);
        vi_reference(c, vi_find_call);
        segidx_offset_set_free(c->query);
        c->query = q;
        sweep f = SWEEP(lsn == NCOMMITS ? "segidx_volume_find_segments (latest)"
                                         : "segidx_volume_find_segments (middle)",
                        vi_find_call, vi_query_unchanged, vi_find_answer, c);
        fail_each(&f);
    }

    sweep ls = SWEEP("segidx_volume_list", vi_list_call, vi_unchanged, vi_got_want, c);
    vi_reference(c, vi_list_call);
    fail_each(&ls);
    sweep cs = SWEEP("segidx_volume_commits", vi_commits_call, vi_unchanged, vi_got_want, c);
    vi_reference(c, vi_commits_call);
    fail_each(&cs);

    /* prune_report: the reference prunes first; then the two stores must
     * hold the same bytes and report the same sids. */
    c->lsn = NCOMMITS - 2;
    vi_reference(c, vi_prune_call);
    sweep pr = SWEEP("segidx_volume_prune_report", vi_prune_call, vi_unchanged, vi_got_want, c);
    fail_each(&pr);
    assert_true(c->want.len > 0); /* something was unreferenced */
    dump(c->kv, &c->before);
    dump(c->ref_kv, &c->after);
    assert_int_equal(c->after.len, c->before.len);
    assert_memory_equal(c->after.p, c->before.p, c->before.len);

    segidx_volume_index_close(c->vi);
    segidx_volume_index_close(c->ref);
    segidx_offset_set_free(c->query);
    segidx_offset_set_free(c->query_before);
    bytes_free(&c->before);
    bytes_free(&c->after);
    bytes_free(&c->got);
    bytes_free(&c->want);
    free(c);
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ checkpoints */

/* K = 2, F = 2, L = 3 from LSN 1: round n closes at LSN 2n + 1. Round 0
 * (LSN 1) and round 8 (LSN 17) are images; odd rounds (LSN 3, 7, 11, 15,
 * 19) write a level-1 delta; rounds 2 and 6 (LSN 5, 13) levels 1 and 2,
 * round 4 (LSN 9) levels 1 to 3. */
static const segidx_volume_index_options ckpt_opts = { 2, 2, 3 };
static const segidx_volume_index_options walk_opts = { SEGIDX_CHECKPOINTS_OFF, 0, 0 };
enum { CK_COMMITS = 20, CK_HISTORY = 12 };

static int vi_open_with_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    segidx_volume_index *vi = NULL;
    int rc = segidx_volume_index_open_with(c->kv, &ckpt_opts, &vi);
    if (rc == SEGIDX_OK) {
        segidx_volume_index_close(vi);
        long saved = faults_pause();
        assert_int_equal(segidx_kv_mem_open(&c->kv), SEGIDX_OK);
        faults_resume(saved);
    }
    return rc;
}

/* What a commit of the schedule above writes besides its entry. */
enum { CK_BETWEEN, CK_LEVEL1, CK_LEVELS, CK_IMAGE, CK_KINDS };

static unsigned ckpt_kind(segidx_lsn lsn)
{
    if (lsn % 2 == 0)
        return CK_BETWEEN;
    uint64_t round = (lsn - 1) / 2;
    return round % 8 == 0 ? CK_IMAGE : round % 2 ? CK_LEVEL1 : CK_LEVELS;
}

static void commit_unarmed(segidx_volume_index *vi, unsigned v, segidx_lsn lsn)
{
    segidx_vid vid = vid_n(v);
    segidx_commit_segment seg = { commit_sid(v, lsn), commit_offsets(v, lsn) };
    assert_int_equal(segidx_volume_commit(vi, &vid, lsn, lsn * 10, &seg, 1), SEGIDX_OK);
    segidx_offset_set_free((segidx_offset_set *)seg.offsets);
}

/* Volumes 0 and 1: CK_COMMITS commits on the schedule above. Volume 2:
 * CK_HISTORY commits through a handle with checkpoints off, and then one
 * through `vi`, which upgrades it. Unarmed: the reference. */
static void ckpt_build(segidx_volume_index *vi, segidx_volume_index *walk)
{
    for (segidx_lsn lsn = 1; lsn <= CK_COMMITS; lsn++)
        for (unsigned v = 0; v < 2; v++)
            commit_unarmed(vi, v, lsn);
    for (segidx_lsn lsn = 1; lsn <= CK_HISTORY; lsn++)
        commit_unarmed(walk, 2, lsn);
    commit_unarmed(vi, 2, CK_HISTORY + 1);
}

static bool stores_equal(segidx_kv a, segidx_kv b)
{
    test_bytes x = { 0 }, y = { 0 };
    dump(a, &x);
    dump(b, &y);
    bool same = x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
    bytes_free(&x);
    bytes_free(&y);
    return same;
}

/* A find at c->vid and c->lsn over offsets 0..70 and UINT32_MAX, swept;
 * the answer must be the reference's. `wide`: also one offset in each of
 * 80 chunks, more than a read gets one by one (it scans the values). */
static void ckpt_find(struct vi_ctx *c, const char *name, bool wide)
{
    segidx_offset_set_free(c->query);
    segidx_offset_set_free(c->query_before);
    c->query = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(c->query, 0, 70), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(c->query, UINT32_MAX), SEGIDX_OK);
    for (uint32_t chunk = 1; wide && chunk <= 80; chunk++)
        assert_int_equal(segidx_offset_set_add(c->query, chunk << 12 | 7), SEGIDX_OK);
    c->query_before = segidx_offset_set_copy(c->query);
    segidx_offset_set *q = c->query;
    c->query = segidx_offset_set_copy(q);
    vi_reference(c, vi_find_call);
    assert_true(c->want.len > 0);
    segidx_offset_set_free(c->query);
    c->query = q;
    dump(c->kv, &c->before);
    sweep f = SWEEP(name, vi_find_call, vi_query_unchanged, vi_find_answer, c);
    fail_each(&f);
}

static int vi_changed_call(void *ctx)
{
    struct vi_ctx *c = ctx;
    return segidx_volume_changed(c->vi, &c->vid, c->from, c->lsn, c->query);
}

/* The one run that succeeded added what the reference adds. */
static void vi_changed_answer(void *ctx)
{
    struct vi_ctx *c = ctx;
    segidx_offset_set *q = segidx_offset_set_copy(c->query_before);
    assert_int_equal(segidx_volume_changed(c->ref, &c->vid, c->from, c->lsn, q), SEGIDX_OK);
    assert_true(segidx_offset_set_equals(q, c->query));
    assert_true(segidx_offset_set_cardinality(q) > 1);
    segidx_offset_set_free(q);
}

/* segidx_volume_changed(from, c->lsn) into a set holding one offset,
 * swept: a failure leaves the set as it was. */
static void ckpt_changed(struct vi_ctx *c, segidx_lsn from, const char *name)
{
    segidx_offset_set_free(c->query);
    segidx_offset_set_free(c->query_before);
    c->query = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add(c->query, 1u << 30), SEGIDX_OK);
    c->query_before = segidx_offset_set_copy(c->query);
    c->from = from;
    dump(c->kv, &c->before);
    sweep ch = SWEEP(name, vi_changed_call, vi_query_unchanged, vi_changed_answer, c);
    fail_each(&ch);
}

/* Checkpoint writes, reads and deletes: open_with; commits of each kind
 * the schedule has (between rounds, a level-1 delta, deltas of higher
 * levels, an image) and the round-0 commit that upgrades a volume written
 * without checkpoints (one walk of its history); finds that read deltas
 * and images; a prune that deletes checkpoint values. */
static void checkpoint_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct vi_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);

    assert_int_equal(segidx_kv_mem_open(&c->kv), SEGIDX_OK);
    sweep op = SWEEP("segidx_volume_index_open_with", vi_open_with_call, NULL, NULL, c);
    fail_each(&op);
    c->kv.vt->close(c->kv.self);

    /* Under test: `vi` (checkpoints on) and `walk` (off) over one store;
     * the reference: the same over another, built unarmed. */
    segidx_volume_index *walk, *ref_walk;
    assert_int_equal(segidx_kv_mem_open(&c->kv), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(c->kv, &ckpt_opts, &c->vi), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&c->kv), &walk_opts, &walk),
                     SEGIDX_OK);
    assert_int_equal(segidx_kv_mem_open(&c->ref_kv), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(c->ref_kv, &ckpt_opts, &c->ref), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&c->ref_kv), &walk_opts, &ref_walk),
                     SEGIDX_OK);
    ckpt_build(c->ref, ref_walk);

    static const char *const kind_name[CK_KINDS] = {
        "segidx_volume_commit (between rounds)",
        "segidx_volume_commit (round: level-1 delta)",
        "segidx_volume_commit (round: deltas up to level 2, 3)",
        "segidx_volume_commit (image round)",
    };
    long points[CK_KINDS] = { 0 };
    unsigned commits[CK_KINDS] = { 0 };
    sweep cm = SWEEP("segidx_volume_commit (checkpoints)", vi_commit_call, vi_unchanged, NULL, c);
    for (segidx_lsn lsn = 1; lsn <= CK_COMMITS; lsn++)
        for (unsigned v = 0; v < 2; v++) {
            c->vid = vid_n(v);
            c->lsn = lsn;
            c->segs[0] = (segidx_commit_segment){ commit_sid(v, lsn), commit_offsets(v, lsn) };
            c->nsegs = 1;
            dump(c->kv, &c->before);
            points[ckpt_kind(lsn)] += sweep_points(&cm);
            commits[ckpt_kind(lsn)]++;
            segidx_offset_set_free((segidx_offset_set *)c->segs[0].offsets);
        }
    for (unsigned k = 0; k < CK_KINDS; k++) {
        char over[32];
        snprintf(over, sizeof over, " over %u commits", commits[k]);
        report(kind_name[k], points[k], over);
    }

    /* The upgrade: volume 2's history without checkpoints, then its next
     * commit through `vi` becomes round 0 and writes the image. */
    for (segidx_lsn lsn = 1; lsn <= CK_HISTORY; lsn++)
        commit_unarmed(walk, 2, lsn);
    c->vid = vid_n(2);
    c->lsn = CK_HISTORY + 1;
    c->segs[0] = (segidx_commit_segment){ commit_sid(2, c->lsn), commit_offsets(2, c->lsn) };
    c->nsegs = 1;
    dump(c->kv, &c->before);
    sweep up = SWEEP("segidx_volume_commit (round 0, upgrading)", vi_commit_call, vi_unchanged,
                     NULL, c);
    fail_each(&up);
    segidx_offset_set_free((segidx_offset_set *)c->segs[0].offsets);
    assert_true(stores_equal(c->kv, c->ref_kv));

    /* Reads: at LSN 16 one commit walked, then the deltas of rounds 7
     * (level 1), 6 (level 2) and 4 (level 3) and the image of round 0;
     * at the head (20) one commit and round 9's delta over round 8's
     * image; at the upgraded volume's round 0 its image alone; and the
     * handle with checkpoints off reading by the volume's schedule. */
    c->vid = vid_n(0);
    c->lsn = 16;
    ckpt_find(c, "segidx_volume_find_segments (deltas of 3 levels, image)", false);
    ckpt_find(c, "segidx_volume_find_segments (deltas of 3 levels, image, 80 chunks)", true);
    c->vid = vid_n(1);
    c->lsn = CK_COMMITS;
    ckpt_find(c, "segidx_volume_find_segments (delta, image)", false);
    c->vid = vid_n(2);
    c->lsn = CK_HISTORY + 1;
    ckpt_find(c, "segidx_volume_find_segments (upgraded: image)", false);
    segidx_volume_index *vi = c->vi;
    c->vi = walk;
    c->vid = vid_n(0);
    c->lsn = 15;
    ckpt_find(c, "segidx_volume_find_segments (checkpoints off)", false);
    c->vi = vi;
    c->vid = vid_n(0);
    c->lsn = 16;
    ckpt_changed(c, 2, "segidx_volume_changed (deltas, image)");
    ckpt_changed(c, 15, "segidx_volume_changed (the commits after a round)");

    /* A prune to 18 keeps round 8's image (LSN 17) and deletes every
     * checkpoint value of the rounds below it, with the entries' rewrites. */
    c->vid = vid_n(0);
    c->lsn = 18;
    vi_reference(c, vi_prune_call);
    dump(c->kv, &c->before);
    sweep pr = SWEEP("segidx_volume_prune_report (checkpoints)", vi_prune_call, vi_unchanged,
                     vi_got_want, c);
    fail_each(&pr);
    assert_true(stores_equal(c->kv, c->ref_kv));
    c->lsn = 19;
    ckpt_find(c, "segidx_volume_find_segments (after the prune)", false);

    segidx_volume_index_close(walk);
    segidx_volume_index_close(ref_walk);
    segidx_volume_index_close(c->vi);
    segidx_volume_index_close(c->ref);
    segidx_offset_set_free(c->query);
    segidx_offset_set_free(c->query_before);
    bytes_free(&c->before);
    bytes_free(&c->after);
    bytes_free(&c->got);
    bytes_free(&c->want);
    free(c);
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ group commit */

/* A group of commits: items of several volumes, several LSNs of each. */
struct group_ctx {
    struct vi_ctx *c;
    segidx_volume_commit_item items[16];
    segidx_commit_segment segs[16];
    size_t n;
};

static void group_add(struct group_ctx *g, unsigned v, segidx_lsn lsn, bool empty)
{
    g->segs[g->n] = (segidx_commit_segment){ commit_sid(v, lsn),
                                             empty ? NULL : commit_offsets(v, lsn) };
    g->items[g->n] = (segidx_volume_commit_item){ vid_n(v), lsn, lsn * 10, &g->segs[g->n],
                                                  empty ? 0 : 1 };
    g->n++;
}

static void group_clear(struct group_ctx *g)
{
    for (size_t i = 0; i < g->n; i++)
        segidx_offset_set_free((segidx_offset_set *)g->segs[i].offsets);
    g->n = 0;
}

static int group_call(void *ctx)
{
    struct group_ctx *g = ctx;
    size_t failed;
    int rc = segidx_volume_commit_group(g->c->vi, g->items, g->n, &failed);
    assert_true(rc == SEGIDX_OK ? failed == g->n : failed <= g->n);
    return rc;
}

static void group_unchanged(void *ctx)
{
    struct group_ctx *g = ctx;
    vi_unchanged(g->c);
}

/* The group that succeeded wrote what its commits one by one write. */
static void group_answer(void *ctx)
{
    struct group_ctx *g = ctx;
    for (size_t i = 0; i < g->n; i++) {
        const segidx_volume_commit_item *it = &g->items[i];
        assert_int_equal(segidx_volume_commit(g->c->ref, &it->vid, it->lsn, it->commit_time,
                                              it->segs, it->n),
                         SEGIDX_OK);
    }
    assert_true(stores_equal(g->c->kv, g->c->ref_kv));
}

/* segidx_volume_commit_group() on the short schedule: groups of two
 * volumes' commits 5 LSNs at a time (rounds, deltas of every level and an
 * image inside groups, each round reading the group's earlier commits),
 * then one that upgrades a volume written without checkpoints and starts
 * a new one with an empty commit among its own. */
static void group_commit_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct vi_ctx *c = calloc(1, sizeof *c);
    struct group_ctx *g = calloc(1, sizeof *g);
    assert_non_null(c);
    assert_non_null(g);
    g->c = c;
    segidx_volume_index *walk, *ref_walk;
    assert_int_equal(segidx_kv_mem_open(&c->kv), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(c->kv, &ckpt_opts, &c->vi), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&c->kv), &walk_opts, &walk),
                     SEGIDX_OK);
    assert_int_equal(segidx_kv_mem_open(&c->ref_kv), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(c->ref_kv, &ckpt_opts, &c->ref), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open_with(borrowed_kv(&c->ref_kv), &walk_opts, &ref_walk),
                     SEGIDX_OK);
    for (segidx_lsn lsn = 1; lsn <= CK_HISTORY; lsn++) {
        commit_unarmed(walk, 2, lsn);
        commit_unarmed(ref_walk, 2, lsn);
    }
    sweep gs = SWEEP("segidx_volume_commit_group", group_call, group_unchanged, group_answer, g);
    long points = 0, groups = 0, commits = 0;
    for (segidx_lsn from = 1; from <= CK_COMMITS; from += 5, groups++) {
        for (segidx_lsn lsn = from; lsn < from + 5; lsn++)
            for (unsigned v = 0; v < 2; v++)
                group_add(g, v, lsn, false);
        dump(c->kv, &c->before);
        points += sweep_points(&gs);
        commits += (long)g->n;
        group_clear(g);
    }
    group_add(g, 3, 1, false);
    group_add(g, 2, CK_HISTORY + 1, false);
    group_add(g, 3, 2, true);
    group_add(g, 2, CK_HISTORY + 2, false);
    group_add(g, 3, 3, false);
    dump(c->kv, &c->before);
    points += sweep_points(&gs);
    commits += (long)g->n;
    groups++;
    group_clear(g);
    char over[64];
    snprintf(over, sizeof over, " over %ld groups (%ld commits)", groups, commits);
    report(gs.name, points, over);
    segidx_volume_index_close(walk);
    segidx_volume_index_close(ref_walk);
    segidx_volume_index_close(c->vi);
    segidx_volume_index_close(c->ref);
    bytes_free(&c->before);
    bytes_free(&c->after);
    free(g);
    free(c);
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ loader, reads */

/* A segment source over NVOL x NCOMMITS segments in memory. */
struct source {
    uint8_t *buf[NVOL][NCOMMITS + 1];
    size_t len[NVOL][NCOMMITS + 1];
    long fetched, released;
};

static int source_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                        void **handle)
{
    struct source *src = ctx;
    uint64_t n;
    memcpy(&n, sid->bytes + 8, sizeof n);
    unsigned v = (unsigned)(n / 100000), lsn = (unsigned)(n % 100000);
    if (v >= NVOL || lsn < 1 || lsn > NCOMMITS)
        return SEGIDX_ENOTFOUND;
    *buf = src->buf[v][lsn];
    *len = src->len[v][lsn];
    *handle = NULL;
    src->fetched++;
    return SEGIDX_OK;
}

static void source_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                           void *handle)
{
    (void)sid, (void)buf, (void)len, (void)handle;
    struct source *src = ctx;
    src->released++;
}

/* Every commit's segment, then (after the loader that used them is
 * freed: it released all it fetched) freed. */
static void source_fill(struct source *src)
{
    for (unsigned v = 0; v < NVOL; v++)
        for (segidx_lsn lsn = 1; lsn <= NCOMMITS; lsn++)
            src->buf[v][lsn] = commit_segment(v, lsn, &src->len[v][lsn]);
}

static void source_free(struct source *src)
{
    assert_int_equal(src->fetched, src->released);
    for (unsigned v = 0; v < NVOL; v++)
        for (segidx_lsn lsn = 1; lsn <= NCOMMITS; lsn++)
            free(src->buf[v][lsn]);
}

struct read_ctx {
    struct source src;
    segidx_segment_source ss;
    segidx_loader_options lo;
    segidx_loader *l;
    segidx_volume_index *vi;
    segidx_kv kv;
    segidx_vid vid;
    segidx_sid sid;
    segidx_lsn lsn;
    segidx_offset_set *offsets;
    test_bytes got, want, before, after;
    segidx_loader_stats stats;
    long pulls;
};

static void loader_unchanged(void *ctx)
{
    struct read_ctx *c = ctx;
    segidx_loader_stats st;
    segidx_loader_stats_get(c->l, &st);
    assert_int_equal(st.cached_segments, c->stats.cached_segments);
    assert_int_equal(st.cached_bytes, c->stats.cached_bytes);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(c->src.fetched - c->src.released, (long)st.cached_segments);
}

static int loader_new_call(void *ctx)
{
    struct read_ctx *c = ctx;
    segidx_loader_free(c->l);
    c->l = NULL;
    return segidx_loader_new(&c->ss, &c->lo, &c->l);
}

static int loader_get_call(void *ctx)
{
    struct read_ctx *c = ctx;
    const segidx_segment *seg;
    int rc = segidx_loader_get(c->l, &c->sid, &seg);
    if (rc == SEGIDX_OK) {
        segidx_page_ref ref;
        segidx_offset_set *offs = commit_offsets(0, c->lsn);
        segidx_offset first = 0;
        while (!segidx_offset_set_contains(offs, first))
            first++;
        segidx_offset_set_free(offs);
        assert_int_equal(segidx_segment_find(seg, &c->vid, first, c->lsn, &ref), SEGIDX_OK);
        segidx_loader_put(c->l, seg);
    }
    return rc;
}

static int page_visit(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    long saved = faults_pause();
    struct read_ctx *c = ctx;
    bytes_u32(&c->got, off);
    bytes_u64(&c->got, lsn);
    if (page) {
        uint8_t want[PAGE];
        fill(want, &c->vid, off, lsn);
        assert_memory_equal(page, want, PAGE);
    }
    faults_resume(saved);
    return 0;
}

static int read_pages_call(void *ctx)
{
    struct read_ctx *c = ctx;
    c->got.len = 0;
    return segidx_read_pages(c->vi, c->l, &c->vid, c->lsn, c->offsets, page_visit, c);
}

/* A failed read called back nothing and holds no pin. */
static void read_unchanged(void *ctx)
{
    struct read_ctx *c = ctx;
    assert_int_equal(c->got.len, 0);
    loader_unchanged(ctx);
}

static void read_answer(void *ctx)
{
    struct read_ctx *c = ctx;
    assert_int_equal(c->got.len, c->want.len);
    assert_memory_equal(c->got.p, c->want.p, c->want.len);
}

/* The host's pull: commit what the index lacks of volume 0, from the
 * reference index's commits (the host's allocations are not under test). */
static int sync_pull(void *ctx, segidx_volume_index *vi, const segidx_vid *vid, segidx_lsn have)
{
    long saved = faults_pause();
    struct read_ctx *c = ctx;
    c->pulls++;
    for (segidx_lsn lsn = have + 1; lsn <= c->lsn; lsn++) {
        segidx_commit_segment seg = { commit_sid(0, lsn), commit_offsets(0, lsn) };
        assert_int_equal(segidx_volume_commit(vi, vid, lsn, lsn * 10, &seg, 1), SEGIDX_OK);
        segidx_offset_set_free((segidx_offset_set *)seg.offsets);
    }
    faults_resume(saved);
    return SEGIDX_OK;
}

static int sync_call(void *ctx)
{
    struct read_ctx *c = ctx;
    return segidx_volume_sync(c->vi, &c->vid, c->lsn, sync_pull, c);
}

static void sync_unchanged(void *ctx)
{
    struct read_ctx *c = ctx;
    dump(c->kv, &c->after);
    assert_int_equal(c->after.len, c->before.len);
    assert_memory_equal(c->after.p, c->before.p, c->before.len);
    assert_int_equal(c->pulls, 0);
}

static void read_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct read_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    source_fill(&c->src);
    c->ss = (segidx_segment_source){ SEGIDX_SEGMENT_SOURCE_VERSION, source_fetch,
                                     source_release, &c->src };

    sweep mk = SWEEP("segidx_loader_new", loader_new_call, NULL, NULL, c);
    fail_each(&mk);
    /* Every segment of volume 0, cold, into a cache that keeps them all. */
    c->vid = vid_n(0);
    sweep get = SWEEP("segidx_loader_get", loader_get_call, loader_unchanged, NULL, c);
    get.keeps = true; /* the limiter keeps a free list of its entries */
    long points = 0;
    for (segidx_lsn lsn = 1; lsn <= NCOMMITS; lsn++) {
        c->lsn = lsn;
        c->sid = commit_sid(0, lsn);
        segidx_loader_stats_get(c->l, &c->stats);
        points += sweep_points(&get);
    }
    report(get.name, points, " over 12 cold gets");
    c->lsn = 3;
    c->sid = commit_sid(0, 3);
    segidx_loader_stats_get(c->l, &c->stats);
    sweep warm = SWEEP("segidx_loader_get (warm)", loader_get_call, loader_unchanged, NULL, c);
    fail_each(&warm);

    /* read_pages through a loader that keeps nothing unpinned, so that
     * every run fetches and opens every segment it needs again. */
    c->lo.cache_bytes = 1;
    assert_int_equal(loader_new_call(c), SEGIDX_OK);
    segidx_loader_stats_get(c->l, &c->stats);
    c->vi = index_build(&c->kv);
    c->offsets = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(c->offsets, 0, 70), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(c->offsets, UINT32_MAX), SEGIDX_OK);
    static const char *const rd_name[NVOL] = { "segidx_read_pages (volume 0)",
                                                "segidx_read_pages (volume 1, middle)",
                                                "segidx_read_pages (volume 2)" };
    for (unsigned v = 0; v < NVOL; v++) {
        sweep rd = SWEEP(rd_name[v], read_pages_call, read_unchanged, read_answer, c);
        c->vid = vid_n(v);
        c->lsn = v == 1 ? NCOMMITS / 2 : NCOMMITS;
        assert_int_equal(read_pages_call(c), SEGIDX_OK);
        c->want.len = 0;
        bytes_put(&c->want, c->got.p, c->got.len);
        fail_each(&rd);
    }
    segidx_volume_index_close(c->vi);

    /* volume_sync of a volume 4 commits behind; pull's own work is the
     * host's, so only sync's allocations are swept. */
    c->vi = index_build(&c->kv);
    c->vid = vid_n(NVOL); /* a volume the index does not know yet */
    c->lsn = 4;
    dump(c->kv, &c->before);
    sweep sy = SWEEP("segidx_volume_sync", sync_call, sync_unchanged, NULL, c);
    sy.keeps = true; /* as loader_get */
    fail_each(&sy);
    assert_int_equal(c->pulls, 1);
    segidx_volume_index_close(c->vi);

    segidx_loader_free(c->l);
    source_free(&c->src);
    segidx_offset_set_free(c->offsets);
    bytes_free(&c->got);
    bytes_free(&c->want);
    bytes_free(&c->before);
    bytes_free(&c->after);
    free(c);
    assert_int_equal(fa.live, live);
}

/* ------------------------------------------------------------ compaction */

/* The segments a compaction emits, in one buffer reserved up front (the
 * host's emit allocates nothing), found again by sid for the reads that
 * follow (those of the last sweep only: each run overwrites them). Sids
 * count the segments of the run, so that the run that succeeds names what
 * the reference run named. */
enum { CP_MAX_OUT = 64, CP_TAG_OUT = 0xC0, CP_TAG_MOVED = 0xC1 };

struct compact_ctx {
    struct source src; /* the commits' segments */
    test_bytes out;
    segidx_sid out_sid[CP_MAX_OUT];
    size_t out_at[CP_MAX_OUT], out_len[CP_MAX_OUT], n_out;
    uint64_t sid_base; /* each sweep's own sids */
    segidx_segment_source ss;
    segidx_loader *l;
    segidx_volume_index *vi, *ref;
    segidx_kv kv, ref_kv;
    segidx_compact_options opts;
    segidx_compact_stats stats, want_stats;
    segidx_vid vid;
    segidx_lsn keep_from;   /* the volume's prune point: reads start there */
    test_bytes before, after, want, want_out;
    /* A re-point by hand: every commit of a volume to a segment of its own. */
    segidx_sid old[NCOMMITS];
    segidx_commit_segment moved[NCOMMITS + 1];
    segidx_repoint moves[NCOMMITS + 1];
    uint8_t *moved_buf[NCOMMITS + 1];
    size_t moved_len[NCOMMITS + 1];
};

static segidx_sid tagged_sid(uint8_t tag, uint64_t n)
{
    segidx_sid id = sid_n(n);
    id.bytes[0] = tag;
    return id;
}

/* Emitted segments and the re-pointed commits' new ones by sid; the rest
 * as `source`. */
static int compact_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                         void **handle)
{
    struct compact_ctx *c = ctx;
    if (sid->bytes[0] == CP_TAG_OUT) {
        for (size_t i = 0; i < c->n_out; i++)
            if (!memcmp(c->out_sid[i].bytes, sid->bytes, 16)) {
                *buf = c->out.p + c->out_at[i];
                *len = c->out_len[i];
                *handle = NULL;
                return SEGIDX_OK;
            }
        return SEGIDX_ENOTFOUND;
    }
    if (sid->bytes[0] == CP_TAG_MOVED) {
        for (segidx_lsn lsn = 1; lsn <= NCOMMITS; lsn++)
            if (c->moved_buf[lsn] && !memcmp(c->moved[lsn - 1].sid.bytes, sid->bytes, 16)) {
                *buf = c->moved_buf[lsn];
                *len = c->moved_len[lsn];
                *handle = NULL;
                return SEGIDX_OK;
            }
        return SEGIDX_ENOTFOUND;
    }
    return source_fetch(&c->src, sid, buf, len, handle);
}

static void compact_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                            void *handle)
{
    struct compact_ctx *c = ctx;
    if (sid->bytes[0] != CP_TAG_OUT && sid->bytes[0] != CP_TAG_MOVED)
        source_release(&c->src, sid, buf, len, handle);
}

static int compact_next_sid(void *ctx, segidx_sid *sid)
{
    struct compact_ctx *c = ctx;
    *sid = tagged_sid(CP_TAG_OUT, c->sid_base + c->n_out + 1);
    return SEGIDX_OK;
}

static int compact_emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                        const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n;
    struct compact_ctx *c = ctx;
    assert_true(c->n_out < CP_MAX_OUT && c->out.len + len <= c->out.cap);
    c->out_sid[c->n_out] = *sid;
    c->out_at[c->n_out] = c->out.len;
    c->out_len[c->n_out++] = len;
    bytes_put(&c->out, buf, len);
    return SEGIDX_OK;
}

static int vc_call(void *ctx)
{
    struct compact_ctx *c = ctx;
    c->out.len = 0;
    c->n_out = 0;
    memset(&c->stats, 0, sizeof c->stats);
    return segidx_volume_compact(c->vi, c->l, &c->vid, &c->opts, &c->stats);
}

static int repoint_call(void *ctx)
{
    struct compact_ctx *c = ctx;
    return segidx_volume_repoint(c->vi, c->old, NCOMMITS, c->moves, NCOMMITS + 1);
}

struct compact_read {
    unsigned v;
    segidx_lsn lsn;
    unsigned pages;
};

/* Each page is the newest version at or below the read's LSN. */
static int compact_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct compact_read *r = ctx;
    segidx_lsn want = 0;
    for (segidx_lsn l = r->lsn; l >= 1 && !want; l--) {
        segidx_offset_set *offs = commit_offsets(r->v, l);
        if (segidx_offset_set_contains(offs, off))
            want = l;
        segidx_offset_set_free(offs);
    }
    assert_int_equal(lsn, want);
    if (want) {
        uint8_t expect[PAGE];
        segidx_vid vid = vid_n(r->v);
        fill(expect, &vid, off, want);
        assert_non_null(page);
        assert_memory_equal(page, expect, PAGE);
    } else {
        assert_null(page);
    }
    r->pages++;
    return 0;
}

/* Reads of the volume at its prune point, between, and at its head, every
 * offset the commits write and one more: exact. */
static void compact_reads_exact(struct compact_ctx *c)
{
    segidx_offset_set *q = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(q, 0, 70), SEGIDX_OK);
    assert_int_equal(segidx_offset_set_add(q, UINT32_MAX), SEGIDX_OK);
    segidx_lsn from = c->keep_from ? c->keep_from : 1;
    segidx_lsn at[3] = { from, (from + NCOMMITS) / 2, NCOMMITS };
    for (unsigned i = 0; i < 3; i++) {
        struct compact_read r = { c->vid.bytes[15] - 1u, at[i], 0 };
        assert_int_equal(segidx_read_pages(c->vi, c->l, &c->vid, at[i], q, compact_page, &r),
                         SEGIDX_OK);
        assert_int_equal(r.pages, 71);
    }
    segidx_offset_set_free(q);
}

/* The store holds `want`, and the reads are exact. */
static void store_and_reads(struct compact_ctx *c, const test_bytes *want)
{
    dump(c->kv, &c->after);
    assert_int_equal(c->after.len, want->len);
    assert_memory_equal(c->after.p, want->p, want->len);
    compact_reads_exact(c);
}

/* A failed call changed no stored byte. */
static void vc_unchanged(void *ctx)
{
    struct compact_ctx *c = ctx;
    store_and_reads(c, &c->before);
}

/* The call that succeeded wrote what the reference call wrote. */
static void repoint_answer(void *ctx)
{
    struct compact_ctx *c = ctx;
    store_and_reads(c, &c->want);
}

static void vc_answer(void *ctx)
{
    struct compact_ctx *c = ctx;
    assert_memory_equal(&c->stats, &c->want_stats, sizeof c->stats);
    assert_int_equal(c->out.len, c->want_out.len);
    assert_memory_equal(c->out.p, c->want_out.p, c->out.len);
    repoint_answer(ctx);
}

/* Run `call` on the reference index (no failure): what the store holds
 * then is the answer; the emitted segments too. */
static void vc_reference(struct compact_ctx *c, int (*call)(void *))
{
    segidx_volume_index *vi = c->vi;
    c->vi = c->ref;
    assert_int_equal(call(c), SEGIDX_OK);
    c->vi = vi;
    c->want_stats = c->stats;
    c->want_out.len = 0;
    bytes_put(&c->want_out, c->out.p ? c->out.p : (uint8_t *)"", c->out.len);
    dump(c->ref_kv, &c->want);
    dump(c->kv, &c->before);
}

static void prune_both(struct compact_ctx *c, segidx_lsn keep_from)
{
    assert_int_equal(segidx_volume_prune(c->ref, &c->vid, keep_from), SEGIDX_OK);
    assert_int_equal(segidx_volume_prune(c->vi, &c->vid, keep_from), SEGIDX_OK);
    c->keep_from = keep_from;
}

/* segidx_volume_compact over the commits' segments (12 small ones per
 * volume) into segments of at most 8 KiB: volume 0 whole; volume 1 after a
 * prune, most of its pages garbage. Then segidx_volume_repoint by hand:
 * volume 2's commits, after a prune (some entries gone, some cut), each
 * to a new segment, and a move of a volume nobody has. Every failed run
 * leaves the store as it was and the reads exact; the run that succeeds
 * writes what a run without failures wrote, segments and store. */
static void compaction_calls(void **state)
{
    (void)state;
    size_t live = fa.live;
    struct compact_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    source_fill(&c->src);
    c->out.cap = (size_t)1 << 20;
    c->out.p = malloc(c->out.cap);
    assert_non_null(c->out.p);
    c->ss = (segidx_segment_source){ SEGIDX_SEGMENT_SOURCE_VERSION, compact_fetch, compact_release,
                                     c };
    /* A loader that keeps nothing unpinned: every run fetches again. */
    segidx_loader_options lo = { 1, 0 };
    assert_int_equal(segidx_loader_new(&c->ss, &lo, &c->l), SEGIDX_OK);
    c->opts = (segidx_compact_options){ { PAGE, 8u << 10, NULL }, compact_next_sid, compact_emit,
                                        NULL, c, 0, 0 };
    c->ref = index_build(&c->ref_kv);
    c->vi = index_build(&c->kv);

    c->vid = vid_n(0);
    vc_reference(c, vc_call);
    assert_int_equal(c->want_stats.segments_in, NCOMMITS);
    assert_true(c->want_stats.segments_out > 1);
    sweep cp = SWEEP("segidx_volume_compact", vc_call, vc_unchanged, vc_answer, c);
    fail_each(&cp);

    c->vid = vid_n(1);
    c->sid_base = 1000;
    prune_both(c, NCOMMITS - 1);
    vc_reference(c, vc_call);
    assert_true(c->want_stats.segments_in > 0);
    sweep pr = SWEEP("segidx_volume_compact (pruned)", vc_call, vc_unchanged,
                     vc_answer, c);
    fail_each(&pr);

    c->vid = vid_n(2);
    prune_both(c, NCOMMITS / 2);
    for (segidx_lsn lsn = 1; lsn <= NCOMMITS; lsn++) {
        c->old[lsn - 1] = commit_sid(2, lsn);
        c->moved[lsn - 1] = (segidx_commit_segment){ tagged_sid(CP_TAG_MOVED, lsn),
                                                     commit_offsets(2, lsn) };
        c->moved_buf[lsn] = segment_named(2, lsn, &c->moved[lsn - 1].sid, &c->moved_len[lsn]);
        c->moves[lsn - 1] = (segidx_repoint){ c->vid, lsn, &c->moved[lsn - 1], 1 };
    }
    c->moved[NCOMMITS] = (segidx_commit_segment){ tagged_sid(CP_TAG_MOVED, 100),
                                                  commit_offsets(2, 1) };
    c->moves[NCOMMITS] = (segidx_repoint){ vid_n(NVOL + 5), 1, &c->moved[NCOMMITS], 1 };
    vc_reference(c, repoint_call);
    assert_true(c->want.len != c->before.len || memcmp(c->want.p, c->before.p, c->want.len));
    sweep rp = SWEEP("segidx_volume_repoint", repoint_call, vc_unchanged, repoint_answer, c);
    fail_each(&rp);

    segidx_loader_free(c->l);
    source_free(&c->src);
    segidx_volume_index_close(c->vi);
    segidx_volume_index_close(c->ref);
    for (size_t i = 0; i <= NCOMMITS; i++) {
        segidx_offset_set_free((segidx_offset_set *)c->moved[i].offsets);
        free(c->moved_buf[i]);
    }
    bytes_free(&c->out);
    bytes_free(&c->before);
    bytes_free(&c->after);
    bytes_free(&c->want);
    bytes_free(&c->want_out);
    free(c);
    assert_int_equal(fa.live, live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offset_set_calls),
        cmocka_unit_test(segment_calls),
        cmocka_unit_test(packer_calls),
        cmocka_unit_test(compact_calls),
        cmocka_unit_test(kv_mem_calls),
        cmocka_unit_test(kv_lmdb_calls),
        cmocka_unit_test(volume_index_calls),
        cmocka_unit_test(checkpoint_calls),
        cmocka_unit_test(group_commit_calls),
        cmocka_unit_test(read_calls),
        cmocka_unit_test(compaction_calls),
    };
    int rc = cmocka_run_group_tests_name("alloc_fail", tests, NULL, NULL);
    printf("alloc_fail: %ld calls, %ld allocation points, each failed in turn\n", total_calls,
           total_points);
    return rc;
}
