/* The segment loader and its request limiter, over a fake in-memory source
 * built from real segments: hits, misses, LRU by bytes, pins, fetch
 * failures, corrupt bytes, bad arguments, and (threaded builds) many
 * threads over a small cache with a slow source. Then read_pages over the
 * same source and an in-memory volume index: damaged pages, every position
 * of the damage, the segment dropped and fetched again, against a model.
 *
 * Every fetch hands out a fresh malloc'd copy of the segment behind a
 * 64-byte header holding a token number; release frees the copy (so ASan
 * catches any read of released bytes) and marks the token, which outlives
 * it: a token released twice, released while a test thread holds it
 * pinned, or never released by the end is a failure. Worker threads never
 * call cmocka's asserts (they longjmp): they count violations, and the
 * main thread asserts the counts are zero. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1 /* sched_setaffinity(), sched_getcpu(): stripes by CPU */
#endif

#include "testutil.h"

#include <limits.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "limiter.h"
#include "loader.h"

#if !(defined(SEGIDX_SINGLE_THREADED) && SEGIDX_SINGLE_THREADED)
#define TEST_THREADS 1
#include <pthread.h>
#include <sched.h>
#else
#define TEST_THREADS 0
#endif

enum {
    PAGE = 512,
    HDR = 64,            /* bytes before each fetched copy: the token number */
    MAX_SIDS = 64,
    MAX_TOKENS = 1 << 16,
};

/* ------------------------------------------------------------ fake source */

enum fake_mode {
    MODE_OK, MODE_CORRUPT, MODE_TRUNCATED, MODE_WRONG_SID,
    MODE_NO_BUFFER, /* returns 0 and leaves *buf NULL */
    MODE_EMPTY,     /* returns 0 with a buffer of length 0 */
};

struct token {
    atomic_int pins;      /* test threads holding this copy pinned */
    atomic_int released;  /* times the loader released it */
    int sid;
};

struct fake {
#if TEST_THREADS
    pthread_mutex_t lock;
#endif
    unsigned nsids;
    segidx_sid sids[MAX_SIDS];
    uint8_t *bytes[MAX_SIDS];
    size_t len[MAX_SIDS];
    enum fake_mode mode[MAX_SIDS];
    size_t flip_at[MAX_SIDS]; /* a byte flipped in every copy handed out; 0: none */
    long delay_ns;        /* each fetch sleeps this long */
    unsigned fail_nth;    /* the fetch with this serial (1-based) fails; 0: none */
    bool fail_all;
    int fail_rc;

    /* Counted under `lock`. */
    unsigned fetches, per_sid[MAX_SIDS];
    unsigned inflight, peak_inflight;
    unsigned inflight_sid[MAX_SIDS], peak_inflight_sid;
    unsigned ntokens;
    struct token *tokens;
    /* Counted anywhere. */
    atomic_uint releases, released_sid[MAX_SIDS];
    atomic_uint violations;  /* double release, release while pinned, bad args */
};

static void fake_lock(struct fake *f)
{
#if TEST_THREADS
    pthread_mutex_lock(&f->lock);
#else
    (void)f;
#endif
}

static void fake_unlock(struct fake *f)
{
#if TEST_THREADS
    pthread_mutex_unlock(&f->lock);
#else
    (void)f;
#endif
}

static const segidx_vid test_vid = { { 0xA1, 0xB2, 0xC3 } };

static uint8_t page_byte(int sid, uint32_t off)
{
    return (uint8_t)(sid * 7 + off + 1);
}

/* Segment i: pages 0..pages-1 of test_vid at LSN 1, each filled with
 * page_byte(i, off). */
static uint8_t *make_segment(const segidx_sid *sid, int i, uint32_t pages, size_t *len)
{
    segidx_segment_options o = { PAGE, 0, NULL };
    segidx_segment_builder *b = segidx_segment_builder_new(&o);
    assert_non_null(b);
    uint8_t page[PAGE];
    for (uint32_t off = 0; off < pages; off++) {
        memset(page, page_byte(i, off), sizeof page);
        assert_int_equal(segidx_segment_builder_add(b, &test_vid, off, 1, page), SEGIDX_OK);
    }
    *len = segidx_segment_builder_size(b);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(segidx_segment_builder_finish(b, sid, buf, *len), SEGIDX_OK);
    segidx_segment_builder_free(b);
    return buf;
}

static segidx_sid sid_of(int i)
{
    segidx_sid s = { { 0x5E, 0x61, 0xD0 } };
    s.bytes[15] = (uint8_t)i;
    s.bytes[7] = (uint8_t)(i * 37);
    return s;
}

/* `n` segments; segment i has pages_of(i) pages. */
static struct fake *fake_new(unsigned n, uint32_t (*pages_of)(int))
{
    struct fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
#if TEST_THREADS
    pthread_mutex_init(&f->lock, NULL);
#endif
    f->nsids = n;
    for (unsigned i = 0; i < n; i++) {
        f->sids[i] = sid_of((int)i);
        f->bytes[i] = make_segment(&f->sids[i], (int)i, pages_of((int)i), &f->len[i]);
    }
    f->fail_rc = SEGIDX_EIO;
    f->tokens = calloc(MAX_TOKENS, sizeof *f->tokens);
    assert_non_null(f->tokens);
    return f;
}

static void fake_free(struct fake *f)
{
    for (unsigned i = 0; i < f->nsids; i++)
        free(f->bytes[i]);
#if TEST_THREADS
    pthread_mutex_destroy(&f->lock);
#endif
    free(f->tokens);
    free(f);
}

static int fake_index(const struct fake *f, const segidx_sid *sid)
{
    for (unsigned i = 0; i < f->nsids; i++)
        if (memcmp(f->sids[i].bytes, sid->bytes, 16) == 0)
            return (int)i;
    return -1;
}

static void sleep_ns(long ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = { ns / 1000000000L, ns % 1000000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int fake_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                      void **handle)
{
    struct fake *f = ctx;
    int i = fake_index(f, sid);
    if (i < 0)
        return SEGIDX_ENOTFOUND;
    fake_lock(f);
    unsigned serial = ++f->fetches;
    f->per_sid[i]++;
    if (++f->inflight > f->peak_inflight)
        f->peak_inflight = f->inflight;
    if (++f->inflight_sid[i] > f->peak_inflight_sid)
        f->peak_inflight_sid = f->inflight_sid[i];
    fake_unlock(f);

    sleep_ns(f->delay_ns);

    int rc = SEGIDX_OK;
    if (f->fail_all || serial == f->fail_nth) {
        rc = f->fail_rc;
    } else if (f->mode[i] == MODE_NO_BUFFER) {
        *handle = f; /* a handle without bytes: nothing was handed over */
    } else {
        int from = f->mode[i] == MODE_WRONG_SID ? (i + 1) % (int)f->nsids : i;
        size_t n = f->len[from];
        uint8_t *p = malloc(HDR + n);
        assert_non_null(p);
        memcpy(p + HDR, f->bytes[from], n);
        if (f->mode[i] == MODE_CORRUPT)
            p[HDR + n - 80] ^= 0x40; /* in the index, under its checksum */
        if (f->mode[i] == MODE_TRUNCATED)
            n--;
        if (f->mode[i] == MODE_EMPTY)
            n = 0;
        if (f->flip_at[i])
            p[HDR + f->flip_at[i]] ^= 0x20;
        fake_lock(f);
        unsigned t = f->ntokens < MAX_TOKENS ? f->ntokens++ : MAX_TOKENS;
        fake_unlock(f);
        if (t == MAX_TOKENS) {
            free(p);
            atomic_fetch_add(&f->violations, 1);
            rc = SEGIDX_ENOMEM;
        } else {
            f->tokens[t].sid = i;
            memcpy(p, &t, sizeof t);
            *buf = p + HDR;
            *len = n;
            *handle = &f->tokens[t];
        }
    }

    fake_lock(f);
    f->inflight--;
    f->inflight_sid[i]--;
    fake_unlock(f);
    return rc;
}

static void fake_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                         void *handle)
{
    struct fake *f = ctx;
    const uint8_t *p = (const uint8_t *)buf - HDR;
    unsigned t;
    memcpy(&t, p, sizeof t);
    struct token *tok = handle;
    int i = fake_index(f, sid);
    if (t >= MAX_TOKENS || tok != &f->tokens[t] || i < 0 || tok->sid != i)
        atomic_fetch_add(&f->violations, 1);
    if (atomic_load(&tok->pins) != 0)
        atomic_fetch_add(&f->violations, 1);
    if (atomic_fetch_add(&tok->released, 1) != 0)
        atomic_fetch_add(&f->violations, 1);
    (void)len;
    atomic_fetch_add(&f->releases, 1);
    atomic_fetch_add(&f->released_sid[i < 0 ? 0 : i], 1);
    free((void *)p);
}

static segidx_loader *loader_over(struct fake *f, size_t cache_bytes, unsigned max_fetches)
{
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, fake_fetch, fake_release, f };
    segidx_loader_options o = { cache_bytes, max_fetches };
    segidx_loader *l = NULL;
    assert_int_equal(segidx_loader_new(&src, &o, &l), SEGIDX_OK);
    assert_non_null(l);
    return l;
}

/* Every successful fetch was released exactly once, none while pinned. */
static void assert_all_released_once(struct fake *f)
{
    assert_int_equal(atomic_load(&f->violations), 0);
    for (unsigned t = 0; t < f->ntokens; t++) {
        assert_int_equal(atomic_load(&f->tokens[t].released), 1);
        assert_int_equal(atomic_load(&f->tokens[t].pins), 0);
    }
    assert_int_equal(atomic_load(&f->releases), f->ntokens);
}

static uint32_t pages_same(int i)
{
    (void)i;
    return 2;
}

static uint32_t pages_varied(int i)
{
    return 1 + (uint32_t)(i % 4);
}

/* The token behind a pinned segment, found from its page 0's address;
 * checks that page's bytes as well. NULL if anything is off. */
static struct token *check_segment(struct fake *f, const segidx_segment *s, int i)
{
    segidx_page_ref ref;
    if (segidx_segment_find(s, &test_vid, 0, 1, &ref) != SEGIDX_OK || !ref.page)
        return NULL;
    const uint8_t *page = ref.page;
    for (size_t k = 0; k < PAGE; k++)
        if (page[k] != page_byte(i, 0))
            return NULL;
    uint64_t at;
    uint32_t plen;
    if (segidx_segment_page_range(s, ref.local, &at, &plen) != SEGIDX_OK)
        return NULL;
    unsigned t;
    memcpy(&t, page - at - HDR, sizeof t);
    return t < MAX_TOKENS ? &f->tokens[t] : NULL;
}

/* ------------------------------------------------------------ single thread */

static void test_bad_args(void **state)
{
    (void)state;
    struct fake *f = fake_new(2, pages_same);
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, fake_fetch, fake_release, f };
    segidx_loader *l = (segidx_loader *)&src; /* must stay untouched */
    assert_int_equal(segidx_loader_new(NULL, NULL, &l), SEGIDX_EINVAL);
    assert_int_equal(segidx_loader_new(&src, NULL, NULL), SEGIDX_EINVAL);
    segidx_segment_source bad = src;
    bad.fetch = NULL;
    assert_int_equal(segidx_loader_new(&bad, NULL, &l), SEGIDX_EINVAL);
    bad = src;
    bad.release = NULL;
    assert_int_equal(segidx_loader_new(&bad, NULL, &l), SEGIDX_EINVAL);
    bad = src;
    bad.version = 0;
    assert_int_equal(segidx_loader_new(&bad, NULL, &l), SEGIDX_EINVAL);
    assert_ptr_equal(l, (segidx_loader *)&src);
    /* A newer source is fine: only version 1's methods are called. */
    bad.version = SEGIDX_SEGMENT_SOURCE_VERSION + 1;
    assert_int_equal(segidx_loader_new(&bad, NULL, &l), SEGIDX_OK);
    segidx_loader_free(l);

    assert_int_equal(segidx_loader_new(&src, NULL, &l), SEGIDX_OK); /* defaults */
    const segidx_segment *s = (const segidx_segment *)f, *s0 = s;
    assert_int_equal(segidx_loader_get(NULL, &f->sids[0], &s), SEGIDX_EINVAL);
    assert_int_equal(segidx_loader_get(l, NULL, &s), SEGIDX_EINVAL);
    assert_int_equal(segidx_loader_get(l, &f->sids[0], NULL), SEGIDX_EINVAL);
    assert_ptr_equal(s, s0);
    segidx_sid unknown = sid_of(200);
    assert_int_equal(segidx_loader_get(l, &unknown, &s), SEGIDX_ENOTFOUND);
    assert_ptr_equal(s, s0);

    segidx_loader_put(NULL, NULL);
    segidx_loader_put(l, NULL);
    /* A segment this loader never handed out changes nothing. */
    segidx_segment *foreign = NULL;
    assert_int_equal(segidx_segment_open(f->bytes[0], f->len[0], &foreign), SEGIDX_OK);
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &s), SEGIDX_OK);
    segidx_loader_put(l, foreign);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, f->len[0]);
    assert_int_equal(st.bad_puts, 1);
    segidx_loader_put(l, s);
    segidx_loader_put(l, s); /* one put too many: refused */
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.cached_bytes, f->len[0]);
    assert_int_equal(st.bad_puts, 2);
    segidx_segment_close(foreign);

    segidx_loader_stats_get(NULL, &st);
    assert_int_equal(st.cached_segments, 0);
    segidx_loader_stats_get(l, NULL);
    segidx_loader_free(l);
    segidx_loader_free(NULL);
    assert_all_released_once(f);
    fake_free(f);
}

static void test_hits_and_misses(void **state)
{
    (void)state;
    struct fake *f = fake_new(4, pages_varied);
    segidx_loader *l = loader_over(f, 0, 0);
    const segidx_segment *a, *b;
    assert_int_equal(segidx_loader_get(l, &f->sids[1], &a), SEGIDX_OK);
    assert_non_null(check_segment(f, a, 1));
    assert_int_equal(segidx_loader_get(l, &f->sids[1], &b), SEGIDX_OK);
    assert_ptr_equal(a, b);
    segidx_segment_stats ss;
    segidx_segment_stats_get(a, &ss);
    assert_memory_equal(ss.sid.bytes, f->sids[1].bytes, 16);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.fetches, 1);
    assert_int_equal(st.fetch_failures, 0);
    assert_int_equal(st.cached_segments, 1);
    assert_int_equal(st.cached_bytes, f->len[1]);
    assert_int_equal(st.pinned_bytes, f->len[1]);
    segidx_loader_put(l, a);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, f->len[1]);
    segidx_loader_put(l, b);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.cached_bytes, f->len[1]);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(segidx_loader_get(l, &f->sids[i], &a), SEGIDX_OK);
        assert_non_null(check_segment(f, a, i));
        segidx_loader_put(l, a);
    }
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 4);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(atomic_load(&f->releases), 0);
    segidx_loader_free(l);
    assert_int_equal(atomic_load(&f->releases), 4);
    assert_all_released_once(f);
    fake_free(f);
}

static void get_put(segidx_loader *l, struct fake *f, int i)
{
    const segidx_segment *s;
    assert_int_equal(segidx_loader_get(l, &f->sids[i], &s), SEGIDX_OK);
    assert_non_null(check_segment(f, s, i));
    segidx_loader_put(l, s);
}

static void assert_released(struct fake *f, const unsigned *want)
{
    for (unsigned i = 0; i < f->nsids; i++)
        assert_int_equal(atomic_load(&f->released_sid[i]), want[i]);
}

/* Four equal segments fit; the least recently used unpinned one goes. */
static void test_lru_by_bytes(void **state)
{
    (void)state;
    struct fake *f = fake_new(6, pages_same);
    segidx_loader *l = loader_over(f, 4 * f->len[0], 0);
    for (int i = 0; i < 4; i++)
        get_put(l, f, i);
    assert_released(f, (unsigned[]){ 0, 0, 0, 0, 0, 0 });
    get_put(l, f, 0); /* 0 is now the most recent; 1 the least */
    get_put(l, f, 4);
    assert_released(f, (unsigned[]){ 0, 1, 0, 0, 0, 0 });
    get_put(l, f, 5);
    assert_released(f, (unsigned[]){ 0, 1, 1, 0, 0, 0 });
    get_put(l, f, 1); /* a refetch, evicting 3 */
    assert_released(f, (unsigned[]){ 0, 1, 1, 1, 0, 0 });
    assert_int_equal(f->per_sid[1], 2);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.cached_segments, 4);
    assert_int_equal(st.cached_bytes, 4 * f->len[0]);
    assert_int_equal(st.fetches, 7);
    segidx_loader_free(l);
    assert_released(f, (unsigned[]){ 1, 2, 1, 1, 1, 1 });
    assert_all_released_once(f);
    fake_free(f);
}

/* Segments of different sizes: eviction frees bytes, not a count. */
static void test_lru_varied_sizes(void **state)
{
    (void)state;
    struct fake *f = fake_new(8, pages_varied); /* 1, 2, 3, 4, 1, 2, 3, 4 pages */
    size_t budget = f->len[0] + f->len[1] + f->len[2];
    segidx_loader *l = loader_over(f, budget, 0);
    for (int i = 0; i < 3; i++)
        get_put(l, f, i);
    assert_int_equal(atomic_load(&f->releases), 0);
    get_put(l, f, 3); /* 4 pages: the oldest go until it fits */
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_true(st.cached_bytes <= budget);
    size_t kept = budget + f->len[3];
    unsigned want[8] = { 0 };
    for (int i = 0; i < 3 && kept > budget; i++) {
        want[i] = 1;
        kept -= f->len[i];
    }
    assert_true(want[0]); /* at least one went */
    assert_released(f, want);
    assert_int_equal(st.cached_bytes, kept);
    /* Bigger than the whole budget: it is served, then goes at its put. */
    segidx_loader_free(l);
    l = loader_over(f, f->len[3] - 1, 0);
    const segidx_segment *s;
    unsigned before = atomic_load(&f->released_sid[3]);
    assert_int_equal(segidx_loader_get(l, &f->sids[3], &s), SEGIDX_OK);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.cached_bytes, f->len[3]);
    assert_int_equal(atomic_load(&f->released_sid[3]), before);
    segidx_loader_put(l, s);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.cached_bytes, 0);
    assert_int_equal(atomic_load(&f->released_sid[3]), before + 1);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* Pinned segments stay whatever the budget says; put lets them go. */
static void test_pins_respected(void **state)
{
    (void)state;
    struct fake *f = fake_new(5, pages_same);
    size_t one = f->len[0];
    segidx_loader *l = loader_over(f, 2 * one, 0);
    const segidx_segment *s[4], *again;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(segidx_loader_get(l, &f->sids[i], &s[i]), SEGIDX_OK);
        assert_non_null(check_segment(f, s[i], i));
    }
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.cached_bytes, 3 * one); /* over budget by pinned bytes */
    assert_int_equal(st.pinned_bytes, 3 * one);
    assert_int_equal(atomic_load(&f->releases), 0);
    /* Pinned twice: one put is not enough to let it go. */
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &again), SEGIDX_OK);
    assert_ptr_equal(again, s[0]);
    segidx_loader_put(l, s[0]);
    assert_int_equal(atomic_load(&f->releases), 0);
    for (int i = 0; i < 3; i++)
        assert_non_null(check_segment(f, s[i], i));
    segidx_loader_put(l, again); /* 0 unpinned while over budget: it goes */
    assert_released(f, (unsigned[]){ 1, 0, 0, 0, 0 });
    segidx_loader_put(l, s[1]);
    segidx_loader_put(l, s[2]);
    assert_released(f, (unsigned[]){ 1, 0, 0, 0, 0 }); /* 2 * one: within */
    assert_int_equal(segidx_loader_get(l, &f->sids[3], &s[3]), SEGIDX_OK);
    assert_released(f, (unsigned[]){ 1, 1, 0, 0, 0 });
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.cached_bytes, 2 * one);
    assert_int_equal(st.pinned_bytes, one);
    segidx_loader_put(l, s[3]);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* A fetch that asks its own loader for the sid it is fetching: an error
 * at once (the permit is its own), never a wait for itself. Another sid
 * from inside a fetch is fine. */
struct reentry {
    segidx_loader *l;
    segidx_sid sids[2];
    uint8_t *bytes[2];
    size_t len[2];
    int same_rc, other_rc;
    unsigned releases;
};

static int reentering_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                            void **handle)
{
    struct reentry *e = ctx;
    int i = memcmp(sid->bytes, e->sids[0].bytes, 16) == 0 ? 0 : 1;
    if (i == 0) {
        const segidx_segment *s = NULL;
        e->same_rc = segidx_loader_get(e->l, sid, &s);
        assert_null(s);
        e->other_rc = segidx_loader_get(e->l, &e->sids[1], &s);
        segidx_loader_put(e->l, s);
    }
    *buf = e->bytes[i];
    *len = e->len[i];
    *handle = NULL;
    return 0;
}

static void reentry_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                            void *handle)
{
    (void)sid, (void)buf, (void)len, (void)handle;
    ((struct reentry *)ctx)->releases++;
}

static void test_fetch_reentering_its_get(void **state)
{
    (void)state;
    struct reentry e = { 0 };
    for (int i = 0; i < 2; i++) {
        e.sids[i] = sid_of(i);
        e.bytes[i] = make_segment(&e.sids[i], i, 3, &e.len[i]);
    }
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, reentering_fetch,
                                  reentry_release, &e };
    assert_int_equal(segidx_loader_new(&src, NULL, &e.l), SEGIDX_OK);
    const segidx_segment *s = NULL;
    assert_int_equal(segidx_loader_get(e.l, &e.sids[0], &s), SEGIDX_OK);
    assert_non_null(s);
    assert_int_equal(e.same_rc, SEGIDX_EINVAL);
    assert_int_equal(e.other_rc, SEGIDX_OK);
    segidx_loader_put(e.l, s);
    /* The permit went back: the sid is cached, a get hits. */
    assert_int_equal(segidx_loader_get(e.l, &e.sids[0], &s), SEGIDX_OK);
    segidx_loader_put(e.l, s);
    segidx_loader_stats st;
    segidx_loader_stats_get(e.l, &st);
    assert_int_equal(st.fetches, 2);
    segidx_loader_free(e.l);
    assert_int_equal(e.releases, 2);
    free(e.bytes[0]);
    free(e.bytes[1]);
}

/* The third fetch fails: its caller gets the error, nothing is cached,
 * the next get retries and succeeds. */
static void test_fetch_failure_then_retry(void **state)
{
    (void)state;
    struct fake *f = fake_new(3, pages_same);
    f->fail_nth = 3;
    segidx_loader *l = loader_over(f, 0, 0);
    get_put(l, f, 0);
    get_put(l, f, 1);
    const segidx_segment *s = NULL;
    assert_int_equal(segidx_loader_get(l, &f->sids[2], &s), SEGIDX_EIO);
    assert_null(s);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 3);
    assert_int_equal(st.fetch_failures, 1);
    assert_int_equal(st.cached_segments, 2);
    assert_int_equal(st.cached_bytes, 2 * f->len[0]);
    get_put(l, f, 2);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 4);
    assert_int_equal(st.cached_segments, 3);
    /* A host that returns a positive value still fails, as EIO. */
    f->fail_nth = 5;
    f->fail_rc = 1;
    segidx_loader_free(l);
    l = loader_over(f, 0, 0);
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &s), SEGIDX_EIO);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* Bytes that fail validation: ECORRUPT, released at once, nothing cached. */
static void test_corrupt_segments(void **state)
{
    (void)state;
    struct fake *f = fake_new(4, pages_varied);
    f->mode[1] = MODE_CORRUPT;
    f->mode[2] = MODE_TRUNCATED;
    f->mode[3] = MODE_WRONG_SID;
    segidx_loader *l = loader_over(f, 0, 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 1; i < 4; i++) {
            const segidx_segment *s = NULL;
            unsigned before = atomic_load(&f->released_sid[i]);
            assert_int_equal(segidx_loader_get(l, &f->sids[i], &s), SEGIDX_ECORRUPT);
            assert_null(s);
            assert_int_equal(atomic_load(&f->released_sid[i]), before + 1);
        }
    }
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 6);
    assert_int_equal(st.fetch_failures, 6);
    assert_int_equal(st.cached_segments, 0);
    assert_int_equal(st.cached_bytes, 0);
    assert_int_equal(st.pinned_bytes, 0);
    get_put(l, f, 0); /* the good one still loads */
    assert_int_equal(atomic_load(&f->releases), 6);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* Limiter, single-threaded view: permits of distinct keys, the counts. */
static void test_limiter_counts(void **state)
{
    (void)state;
    segidx__limiter *lim = NULL;
    assert_int_equal(segidx__limiter_new(4, &lim), SEGIDX_OK);
    uint8_t k[200][16];
    memset(k, 0, sizeof k);
    for (int i = 0; i < 200; i++) {
        k[i][0] = (uint8_t)i;
        k[i][9] = (uint8_t)(i >> 3);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(segidx__limiter_acquire(lim, k[i]), SEGIDX_OK);
    assert_int_equal(segidx__limiter_held(lim), 3);
    for (int i = 0; i < 3; i++)
        segidx__limiter_release(lim, k[i]);
    assert_int_equal(segidx__limiter_held(lim), 0);
    assert_int_equal(segidx__limiter_peak(lim), 3);
    segidx__limiter_free(lim);
    segidx__limiter_free(NULL);

    /* No cap: many keys held at once (the table grows). */
    assert_int_equal(segidx__limiter_new(0, &lim), SEGIDX_OK);
    for (int i = 0; i < 200; i++)
        assert_int_equal(segidx__limiter_acquire(lim, k[i]), SEGIDX_OK);
    assert_int_equal(segidx__limiter_held(lim), 200);
    for (int i = 199; i >= 0; i--)
        segidx__limiter_release(lim, k[i]);
    segidx__limiter_release(lim, k[0]); /* not held: ignored */
    assert_int_equal(segidx__limiter_held(lim), 0);
    assert_int_equal(segidx__limiter_peak(lim), 200);
    segidx__limiter_free(lim);
}

/* Puts without their own get: refused once no pin is left, never a
 * wrap-around that would let the segment be evicted while held. */
static void test_bad_puts(void **state)
{
    (void)state;
    struct fake *f = fake_new(3, pages_same);
    segidx_loader *l = loader_over(f, 2 * f->len[0], 0);
    const segidx_segment *a, *b;
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &a), SEGIDX_OK);
    segidx_loader_put(l, a);
    for (int i = 0; i < 3; i++)
        segidx_loader_put(l, a);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.bad_puts, 3);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.cached_bytes, f->len[0]);
    assert_int_equal(st.cached_segments, 1);

    /* Two holders; one puts twice, taking the other's pin: that much the
     * loader cannot tell, but the rightful holder's put is then refused,
     * and the segment was never released while pinned. */
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &a), SEGIDX_OK);
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &b), SEGIDX_OK);
    assert_ptr_equal(a, b);
    struct token *tok = check_segment(f, a, 0);
    assert_non_null(tok);
    segidx_loader_put(l, b);
    segidx_loader_put(l, b);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.bad_puts, 3);
    assert_int_equal(st.pinned_bytes, 0);
    segidx_loader_put(l, a);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.bad_puts, 4);
    assert_int_equal(atomic_load(&tok->released), 0);

    /* Evicted, then put again: it is in no table, so the put is refused. */
    get_put(l, f, 1);
    get_put(l, f, 2); /* evicts 0 */
    assert_int_equal(atomic_load(&tok->released), 1);
    segidx_loader_put(l, a); /* only the pointer is compared, never read */
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.bad_puts, 5);
    assert_int_equal(st.cached_segments, 2);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.hits + st.misses, 5);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* What the source's fetch returns, as the loader passes it on. */
static void test_fetch_returns(void **state)
{
    (void)state;
    struct fake *f = fake_new(3, pages_same);
    segidx_loader *l = loader_over(f, 0, 0);
    static const struct { int rc, want; } cases[] = {
        { SEGIDX_ENOTFOUND, SEGIDX_ENOTFOUND }, /* the library's own codes pass */
        { SEGIDX_EIO, SEGIDX_EIO },
        { SEGIDX_ENOMEM, SEGIDX_ENOMEM },
        { -5, SEGIDX_EIO },                     /* -EIO from errno */
        { -1000, SEGIDX_EIO },                  /* a host's own code */
        { INT_MIN, SEGIDX_EIO },
        { 1, SEGIDX_EIO },                      /* positive: still a failure */
        { INT_MAX, SEGIDX_EIO },
    };
    f->fail_all = true;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        f->fail_rc = cases[k].rc;
        const segidx_segment *s = (const segidx_segment *)f;
        assert_int_equal(segidx_loader_get(l, &f->sids[0], &s), cases[k].want);
        assert_ptr_equal(s, (const segidx_segment *)f); /* untouched */
    }
    f->fail_all = false;

    /* 0 without a buffer: nothing was handed over, nothing is released. */
    f->mode[1] = MODE_NO_BUFFER;
    /* 0 with an empty buffer: bytes that fail validation, released. */
    f->mode[2] = MODE_EMPTY;
    const segidx_segment *s = NULL;
    assert_int_equal(segidx_loader_get(l, &f->sids[1], &s), SEGIDX_ECORRUPT);
    assert_null(s);
    assert_int_equal(atomic_load(&f->releases), 0);
    assert_int_equal(segidx_loader_get(l, &f->sids[2], &s), SEGIDX_ECORRUPT);
    assert_null(s);
    assert_int_equal(atomic_load(&f->released_sid[2]), 1);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    size_t n = sizeof cases / sizeof cases[0] + 2;
    assert_int_equal(st.fetches, n);
    assert_int_equal(st.fetch_failures, n);
    assert_int_equal(st.cached_segments, 0);
    assert_int_equal(st.cached_bytes, 0);
    assert_int_equal(st.pinned_bytes, 0);
    get_put(l, f, 0); /* and then a good fetch */
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* ------------------------------------------------------------ read_pages */

/* One volume of RP_COMMITS commits over RP_OFFSETS offsets, the first half
 * of the commits in segment 0, the rest in segment 1, served by the fake
 * source and catalogued in the in-memory store. */
enum { RP_OFFSETS = 12, RP_COMMITS = 8, RP_SEGS = 2, RP_MAX_VERSIONS = RP_OFFSETS * RP_COMMITS };

struct version {
    uint32_t off;
    segidx_lsn lsn;
    int seg;
    uint32_t local;
};

struct rp_world {
    struct fake *f;
    segidx_volume_index *vi;
    struct version v[RP_MAX_VERSIONS];
    unsigned nv;
    uint32_t pages[RP_SEGS];
};

static uint8_t rp_byte(uint32_t off, segidx_lsn lsn, size_t k)
{
    return (uint8_t)(off * 31 + lsn * 7 + k * 13 + 3);
}

static void rp_fill(uint8_t *page, uint32_t off, segidx_lsn lsn)
{
    for (size_t k = 0; k < PAGE; k++)
        page[k] = rp_byte(off, lsn, k);
}

static int rp_seg_of(segidx_lsn lsn)
{
    return lsn <= RP_COMMITS / 2 ? 0 : 1;
}

static void rp_world_open(struct rp_world *w, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->f = fake_new(RP_SEGS, pages_same);
    test_rng r = { seed };
    segidx_segment_options o = { PAGE, 0, NULL };
    segidx_segment_builder *b[RP_SEGS];
    for (int i = 0; i < RP_SEGS; i++)
        assert_non_null(b[i] = segidx_segment_builder_new(&o));
    uint8_t page[PAGE];
    for (segidx_lsn lsn = 1; lsn <= RP_COMMITS; lsn++) {
        bool wrote = false;
        for (uint32_t off = 0; off < RP_OFFSETS; off++) {
            if (rng_below(&r, 3) != 0 && (wrote || off + 1 < RP_OFFSETS))
                continue;
            rp_fill(page, off, lsn);
            assert_int_equal(segidx_segment_builder_add(b[rp_seg_of(lsn)], &test_vid, off, lsn, page),
                             SEGIDX_OK);
            w->v[w->nv++] = (struct version){ off, lsn, rp_seg_of(lsn), 0 };
            wrote = true;
        }
    }
    for (int i = 0; i < RP_SEGS; i++) {
        free(w->f->bytes[i]);
        w->f->len[i] = segidx_segment_builder_size(b[i]);
        w->f->bytes[i] = malloc(w->f->len[i]);
        assert_non_null(w->f->bytes[i]);
        assert_int_equal(segidx_segment_builder_finish(b[i], &w->f->sids[i], w->f->bytes[i],
                                                       w->f->len[i]),
                         SEGIDX_OK);
        w->pages[i] = segidx_segment_builder_pages(b[i]);
        segidx_segment_builder_free(b[i]);
    }
    /* Where each version landed, and the catalog. */
    segidx_segment *seg[RP_SEGS];
    for (int i = 0; i < RP_SEGS; i++)
        assert_int_equal(segidx_segment_open(w->f->bytes[i], w->f->len[i], &seg[i]), SEGIDX_OK);
    for (unsigned k = 0; k < w->nv; k++) {
        segidx_page_ref ref;
        struct version *v = &w->v[k];
        assert_int_equal(segidx_segment_find(seg[v->seg], &test_vid, v->off, v->lsn, &ref),
                         SEGIDX_OK);
        assert_int_equal(ref.lsn, v->lsn);
        v->local = ref.local;
    }
    segidx_kv kv;
    assert_int_equal(segidx_kv_mem_open(&kv), SEGIDX_OK);
    assert_int_equal(segidx_volume_index_open(kv, &w->vi), SEGIDX_OK);
    for (segidx_lsn lsn = 1; lsn <= RP_COMMITS; lsn++) {
        int i = rp_seg_of(lsn);
        segidx_offset_set *offs;
        assert_int_equal(segidx_segment_offsets(seg[i], &test_vid, lsn, &offs), SEGIDX_OK);
        segidx_commit_segment cs = { w->f->sids[i], offs };
        assert_int_equal(segidx_volume_commit(w->vi, &test_vid, lsn, 0, &cs, 1), SEGIDX_OK);
        segidx_offset_set_free(offs);
    }
    for (int i = 0; i < RP_SEGS; i++)
        segidx_segment_close(seg[i]);
}

static void rp_world_close(struct rp_world *w)
{
    segidx_volume_index_close(w->vi);
    fake_free(w->f);
}

/* The model: the version of `off` a read at `lsn` must give, or NULL. */
static const struct version *rp_model(const struct rp_world *w, uint32_t off, segidx_lsn lsn)
{
    const struct version *best = NULL;
    for (unsigned k = 0; k < w->nv; k++)
        if (w->v[k].off == off && w->v[k].lsn <= lsn && (!best || w->v[k].lsn > best->lsn))
            best = &w->v[k];
    return best;
}

/* The byte range of page `local` of segment `i` within its bytes. */
static size_t rp_page_at(const struct rp_world *w, int i, uint32_t local)
{
    segidx_segment *seg;
    assert_int_equal(segidx_segment_open(w->f->bytes[i], w->f->len[i], &seg), SEGIDX_OK);
    uint64_t at;
    uint32_t len;
    assert_int_equal(segidx_segment_page_range(seg, local, &at, &len), SEGIDX_OK);
    assert_int_equal(len, PAGE);
    segidx_segment_close(seg);
    return (size_t)at;
}

struct rp_read {
    const struct rp_world *w;
    segidx_lsn lsn;
    unsigned calls;
    bool wrong;
};

/* Never asserts: worker threads call it too. */
static int rp_check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct rp_read *r = ctx;
    const struct version *v = rp_model(r->w, off, r->lsn);
    r->calls++;
    if (!v) {
        r->wrong |= page != NULL || lsn != 0;
        return 0;
    }
    r->wrong |= !page || lsn != v->lsn;
    for (size_t k = 0; page && k < PAGE && !r->wrong; k++)
        r->wrong |= ((const uint8_t *)page)[k] != rp_byte(off, v->lsn, k);
    return 0;
}

/* What a read of `asked` at `lsn` must return while page `local` of
 * segment `seg` is damaged (seg < 0: nothing is). */
static int rp_expect(const struct rp_world *w, const segidx_offset_set *asked, segidx_lsn lsn,
                     int seg, uint32_t local)
{
    for (uint32_t off = 0; off < RP_OFFSETS; off++) {
        const struct version *v = rp_model(w, off, lsn);
        if (v && v->seg == seg && v->local == local && segidx_offset_set_contains(asked, off))
            return SEGIDX_ECORRUPT;
    }
    return SEGIDX_OK;
}

/* Read and check against the model: OK with every page right, or
 * ECORRUPT with no callback at all. Returns the read's code; -100 when it
 * is not what the model says (threads cannot assert). */
static int rp_read_checked(const struct rp_world *w, segidx_loader *l,
                           const segidx_offset_set *asked, segidx_lsn lsn, int seg, uint32_t local)
{
    struct rp_read r = { w, lsn, 0, false };
    int rc = segidx_read_pages(w->vi, l, &test_vid, lsn, asked, rp_check_page, &r);
    int want = rp_expect(w, asked, lsn, seg, local);
    if (rc != want || r.wrong)
        return -100;
    if (rc == SEGIDX_OK ? r.calls != segidx_offset_set_cardinality(asked) : r.calls != 0)
        return -100;
    return rc;
}

static segidx_offset_set *rp_one(uint32_t off)
{
    segidx_offset_set *s = segidx_offset_set_new();
    assert_non_null(s);
    assert_int_equal(segidx_offset_set_add(s, off), SEGIDX_OK);
    return s;
}

static segidx_offset_set *rp_random_offsets(test_rng *r)
{
    segidx_offset_set *s = segidx_offset_set_new();
    assert_non_null(s);
    for (uint32_t off = 0; off < RP_OFFSETS + 2; off++)
        if (rng_below(r, 3) == 0)
            assert_int_equal(segidx_offset_set_add(s, off), SEGIDX_OK);
    return s;
}

/* A version held in segment `seg`, and the same offset's newest version. */
static const struct version *rp_version_in(const struct rp_world *w, int seg)
{
    for (unsigned k = 0; k < w->nv; k++)
        if (w->v[k].seg == seg)
            return &w->v[k];
    return NULL;
}

/* Issue 11, case 5: a byte flipped in a page of a loaded segment. The
 * read of that page fails with no callback, the segment is dropped and
 * released once its pin goes, and the next read heals with a new fetch.
 * Pages of the same copy verified before the damage stay served from it. */
static void test_damaged_page_heals(void **state)
{
    (void)state;
    struct rp_world w;
    rp_world_open(&w, 11);
    struct fake *f = w.f;
    segidx_loader *l = loader_over(f, 0, 0);
    const struct version *bad = rp_version_in(&w, 0);
    assert_non_null(bad);

    /* Every other version of segment 0, verified in the loaded copy. */
    for (unsigned k = 0; k < w.nv; k++) {
        if (w.v[k].seg != 0 || &w.v[k] == bad)
            continue;
        segidx_offset_set *one = rp_one(w.v[k].off);
        assert_int_equal(rp_read_checked(&w, l, one, w.v[k].lsn, -1, 0), SEGIDX_OK);
        segidx_offset_set_free(one);
    }
    /* Flip a byte of the bad page in the host's buffer behind the copy. */
    const segidx_segment *s;
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &s), SEGIDX_OK);
    segidx_page_ref ref;
    assert_int_equal(segidx_segment_find(s, &test_vid, bad->off, bad->lsn, &ref), SEGIDX_OK);
    uint8_t *damage = (uint8_t *)ref.page + PAGE / 2;
    *damage ^= 0x01;
    segidx_loader_put(l, s);

    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 1);
    /* Other pages of the copy were verified before: they are still served. */
    for (unsigned k = 0; k < w.nv; k++) {
        if (w.v[k].seg != 0 || &w.v[k] == bad)
            continue;
        segidx_offset_set *one = rp_one(w.v[k].off);
        assert_int_equal(rp_read_checked(&w, l, one, w.v[k].lsn, -1, 0), SEGIDX_OK);
        segidx_offset_set_free(one);
    }
    segidx_offset_set *one = rp_one(bad->off);
    assert_int_equal(rp_read_checked(&w, l, one, bad->lsn, 0, bad->local), SEGIDX_ECORRUPT);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.discards, 1);
    assert_int_equal(st.fetches, 1);
    assert_int_equal(st.cached_segments, 0); /* its pin went: released */
    assert_int_equal(st.cached_bytes, 0);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(atomic_load(&f->released_sid[0]), 1);

    /* The host's bytes are good: a new fetch heals it. */
    assert_int_equal(rp_read_checked(&w, l, one, bad->lsn, -1, 0), SEGIDX_OK);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 2);
    assert_int_equal(st.discards, 1);
    assert_int_equal(st.cached_segments, 1);
    assert_int_equal(st.bad_puts, 0);
    segidx_offset_set_free(one);
    segidx_loader_free(l);
    assert_all_released_once(f);
    rp_world_close(&w);
}

/* The damaged copy is pinned by another holder too: it leaves the table at
 * once, a new get fetches a fresh copy beside it, and the old one is
 * released only at the holder's put, its bytes readable until then. */
static void test_damaged_page_other_holder(void **state)
{
    (void)state;
    struct rp_world w;
    rp_world_open(&w, 12);
    struct fake *f = w.f;
    const struct version *bad = rp_version_in(&w, 1);
    f->flip_at[1] = rp_page_at(&w, 1, bad->local) + 7;
    segidx_loader *l = loader_over(f, 0, 0);
    const segidx_segment *held, *fresh;
    assert_int_equal(segidx_loader_get(l, &f->sids[1], &held), SEGIDX_OK);
    segidx_offset_set *one = rp_one(bad->off);
    assert_int_equal(rp_read_checked(&w, l, one, bad->lsn, 1, bad->local), SEGIDX_ECORRUPT);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.discards, 1);
    assert_int_equal(st.cached_segments, 1);
    assert_int_equal(st.pinned_bytes, f->len[1]);
    assert_int_equal(atomic_load(&f->releases), 0);

    f->flip_at[1] = 0; /* the host serves good bytes from now on */
    assert_int_equal(segidx_loader_get(l, &f->sids[1], &fresh), SEGIDX_OK);
    assert_ptr_not_equal(fresh, held);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 2);
    assert_int_equal(st.cached_segments, 2);
    assert_int_equal(st.pinned_bytes, 2 * f->len[1]);
    segidx_page_ref ref;
    assert_int_equal(segidx_segment_find(held, &test_vid, bad->off, bad->lsn, &ref), SEGIDX_OK);
    assert_int_equal(segidx_segment_check_page(held, ref.local, ref.page), SEGIDX_ECORRUPT);
    assert_int_equal(rp_read_checked(&w, l, one, bad->lsn, -1, 0), SEGIDX_OK);

    segidx_loader_put(l, held);
    assert_int_equal(atomic_load(&f->releases), 1);
    segidx_loader_put(l, fresh);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.cached_segments, 1);
    assert_int_equal(st.cached_bytes, f->len[1]);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.bad_puts, 0);
    assert_int_equal(atomic_load(&f->releases), 1);

    /* Discarding twice counts once; a put after the release is refused. */
    const segidx_segment *s;
    segidx__copy *c1, *c2;
    assert_int_equal(segidx__loader_pin(l, &f->sids[1], &s, &c1), SEGIDX_OK);
    assert_int_equal(segidx__loader_pin(l, &f->sids[1], &s, &c2), SEGIDX_OK);
    assert_ptr_equal(c1, c2);
    segidx__loader_discard(l, c1);
    segidx__loader_discard(l, c2);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.discards, 2);
    segidx_loader_put(l, s);
    assert_int_equal(atomic_load(&f->releases), 1);
    segidx_loader_put(l, s);
    assert_int_equal(atomic_load(&f->releases), 2);
    segidx_loader_put(l, s);
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.bad_puts, 1);
    assert_int_equal(st.cached_segments, 0);
    segidx_offset_set_free(one);
    segidx_loader_free(l);
    assert_all_released_once(f);
    rp_world_close(&w);
}

/* Every page position of both segments damaged in turn, in every copy the
 * host hands out: each version read alone, then random reads at random
 * LSNs, all against the model (ECORRUPT exactly when a read needs the
 * damaged page); then the host's bytes are good again and the damaged
 * page reads right. */
static void test_damage_every_position(void **state)
{
    (void)state;
    struct rp_world w;
    rp_world_open(&w, 13);
    struct fake *f = w.f;
    test_rng r = { 0xDA3A6E };
    unsigned positions = 0;
    for (int i = 0; i < RP_SEGS; i++) {
        for (uint32_t local = 0; local < w.pages[i]; local++, positions++) {
            f->flip_at[i] = rp_page_at(&w, i, local) + (local * 37) % PAGE;
            /* A cache of one segment: the other comes and goes too. */
            segidx_loader *l = loader_over(f, f->len[0] > f->len[1] ? f->len[0] : f->len[1], 0);
            unsigned failed = 0;
            for (unsigned k = 0; k < w.nv; k++) {
                segidx_offset_set *one = rp_one(w.v[k].off);
                int rc = rp_read_checked(&w, l, one, w.v[k].lsn, i, local);
                assert_int_not_equal(rc, -100);
                failed += rc == SEGIDX_ECORRUPT;
                segidx_offset_set_free(one);
            }
            assert_int_equal(failed, 1); /* exactly the damaged version */
            for (int n = 0; n < 12; n++) {
                segidx_offset_set *asked = rp_random_offsets(&r);
                segidx_lsn lsn = 1 + rng_below(&r, RP_COMMITS + 1);
                int rc = rp_read_checked(&w, l, asked, lsn, i, local);
                assert_int_not_equal(rc, -100);
                failed += rc == SEGIDX_ECORRUPT;
                segidx_offset_set_free(asked);
            }
            segidx_loader_stats st;
            segidx_loader_stats_get(l, &st);
            assert_int_equal(st.discards, failed);
            assert_int_equal(st.pinned_bytes, 0);
            assert_int_equal(st.bad_puts, 0);

            /* Good bytes from the host now. A damaged copy still cached
             * (its last reads did not touch the page) fails once more and
             * goes; the read after it heals. */
            f->flip_at[i] = 0;
            const struct version *v = NULL;
            for (unsigned k = 0; k < w.nv && !v; k++)
                if (w.v[k].seg == i && w.v[k].local == local)
                    v = &w.v[k];
            assert_non_null(v);
            const segidx_segment *s;
            assert_int_equal(segidx_loader_get(l, &f->sids[i], &s), SEGIDX_OK);
            segidx_loader_stats now;
            segidx_loader_stats_get(l, &now);
            segidx_loader_put(l, s);
            bool was_cached = now.fetches == st.fetches;
            segidx_offset_set *one = rp_one(v->off);
            assert_int_equal(rp_read_checked(&w, l, one, v->lsn, was_cached ? i : -1, local),
                             was_cached ? SEGIDX_ECORRUPT : SEGIDX_OK);
            assert_int_equal(rp_read_checked(&w, l, one, v->lsn, -1, 0), SEGIDX_OK);
            segidx_offset_set_free(one);
            segidx_loader_free(l);
            assert_all_released_once(f);
        }
    }
    assert_int_equal(positions, w.nv);
    rp_world_close(&w);
}

/* A source failing with an errno fails the read as SEGIDX_EIO, before
 * any callback. */
static void test_read_source_errors(void **state)
{
    (void)state;
    struct rp_world w;
    rp_world_open(&w, 14);
    segidx_loader *l = loader_over(w.f, 0, 0);
    segidx_offset_set *all = segidx_offset_set_new();
    assert_int_equal(segidx_offset_set_add_range(all, 0, RP_OFFSETS), SEGIDX_OK);
    w.f->fail_all = true;
    static const int rcs[] = { -5, 3, SEGIDX_ENOTFOUND };
    for (size_t k = 0; k < sizeof rcs / sizeof rcs[0]; k++) {
        w.f->fail_rc = rcs[k];
        struct rp_read rd = { &w, RP_COMMITS, 0, false };
        assert_int_equal(segidx_read_pages(w.vi, l, &test_vid, RP_COMMITS, all, rp_check_page, &rd),
                         rcs[k] == SEGIDX_ENOTFOUND ? SEGIDX_ENOTFOUND : SEGIDX_EIO);
        assert_int_equal(rd.calls, 0);
    }
    w.f->fail_all = false;
    w.f->mode[0] = MODE_NO_BUFFER;
    struct rp_read rd = { &w, RP_COMMITS, 0, false };
    assert_int_equal(segidx_read_pages(w.vi, l, &test_vid, RP_COMMITS, all, rp_check_page, &rd),
                     SEGIDX_ECORRUPT);
    assert_int_equal(rd.calls, 0);
    w.f->mode[0] = MODE_OK;
    assert_int_equal(rp_read_checked(&w, l, all, RP_COMMITS, -1, 0), SEGIDX_OK);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.discards, 0);
    segidx_offset_set_free(all);
    segidx_loader_free(l);
    assert_all_released_once(w.f);
    rp_world_close(&w);
}

/* ------------------------------------------------------------ races, by schedule */

/* A hook (loader.h) that runs one racing operation, once, at the point it
 * names: the race happens exactly there, on every run. */
enum race_op {
    RACE_NONE,
    RACE_GET_SAME,   /* another get of the segment being put */
    RACE_PUT_OTHER,  /* the put of another pinned segment (it evicts) */
    RACE_DISCARD,    /* the segment being put is discarded */
    RACE_GET_NEW,    /* a cold get and put of a third segment */
    RACE_BAD_PUT,    /* a put without a get takes the pin being put */
    RACE_FILL,       /* get+put of the sid being missed: it is cached first */
    RACE_FAIL,       /* a get of the sid being missed whose fetch fails */
};

struct race {
    segidx_loader *l;
    struct fake *f;
    enum segidx__loader_point at;
    enum race_op op;
    int runs;               /* how often the hook fired at `at` */
    int sid;                /* the segment the race is about */
    const segidx_segment *seg, *other, *extra;
    segidx__copy *copy;
};

static void race_hook(void *ctx, enum segidx__loader_point at)
{
    struct race *r = ctx;
    if (at != r->at || r->runs++)
        return; /* once, and not from inside the racing call itself */
    struct fake *f = r->f;
    const segidx_segment *s = NULL;
    switch (r->op) {
    case RACE_NONE:
        break;
    case RACE_GET_SAME:
        assert_int_equal(segidx_loader_get(r->l, &f->sids[r->sid], &r->extra), SEGIDX_OK);
        assert_ptr_equal(r->extra, r->seg);
        break;
    case RACE_PUT_OTHER:
        segidx_loader_put(r->l, r->other);
        break;
    case RACE_DISCARD:
        segidx__loader_discard(r->l, r->copy);
        break;
    case RACE_GET_NEW:
        assert_int_equal(segidx_loader_get(r->l, &f->sids[2], &s), SEGIDX_OK);
        assert_non_null(check_segment(f, s, 2));
        segidx_loader_put(r->l, s);
        break;
    case RACE_BAD_PUT:
        segidx_loader_put(r->l, r->seg);
        break;
    case RACE_FILL:
        get_put(r->l, f, r->sid);
        break;
    case RACE_FAIL:
        f->fail_all = true;
        assert_int_equal(segidx_loader_get(r->l, &f->sids[r->sid], &s), SEGIDX_EIO);
        f->fail_all = false;
        break;
    }
}

/* A put that may drop the last pin while the cache is over budget leaves
 * its stripe's lock and takes every lock: each racing operation runs in
 * that gap. A budget of one segment; A (0) and B (1) pinned, so over
 * budget; A is put. */
static void run_put_race(enum race_op op)
{
    struct fake *f = fake_new(3, pages_same);
    size_t one = f->len[0];
    segidx_loader *l = loader_over(f, one, 0);
    struct race r = { l, f, SEGIDX__LOADER_PUT_LOCKED, op, 0, 0, NULL, NULL, NULL, NULL };
    assert_int_equal(segidx__loader_pin(l, &f->sids[0], &r.seg, &r.copy), SEGIDX_OK);
    assert_int_equal(segidx_loader_get(l, &f->sids[1], &r.other), SEGIDX_OK);
    segidx__loader_set_hook(l, race_hook, &r);
    segidx_loader_put(l, r.seg);
    /* A racing put goes the same way and passes the hook once more. */
    assert_int_equal(r.runs, op == RACE_GET_SAME || op == RACE_DISCARD ? 1 : 2);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    switch (op) {
    case RACE_GET_SAME:
        /* Our pin went, the racing one holds A: nothing could leave. */
        assert_int_equal(st.pinned_bytes, 2 * one);
        assert_int_equal(atomic_load(&f->releases), 0);
        segidx_loader_put(l, r.extra); /* now A is the last pin: it goes */
        assert_released(f, (unsigned[]){ 1, 0, 0 });
        segidx_loader_put(l, r.other); /* within budget: B stays */
        break;
    case RACE_PUT_OTHER:
        /* B's put evicted B (A was pinned); A's put then fit: A stays. */
        assert_released(f, (unsigned[]){ 0, 1, 0 });
        assert_int_equal(st.cached_bytes, one);
        assert_int_equal(st.pinned_bytes, 0);
        assert_int_equal(st.evictions, 1);
        break;
    case RACE_DISCARD:
        /* Discarded under our pin, released at our put; B is untouched. */
        assert_released(f, (unsigned[]){ 1, 0, 0 });
        assert_int_equal(st.discards, 1);
        assert_int_equal(st.evictions, 0);
        assert_int_equal(st.cached_bytes, one);
        assert_int_equal(st.pinned_bytes, one);
        segidx_loader_put(l, r.other);
        break;
    case RACE_GET_NEW:
        /* C came and went (over budget with A and B pinned), then A. */
        assert_released(f, (unsigned[]){ 1, 0, 1 });
        assert_int_equal(st.cached_bytes, one);
        assert_int_equal(st.pinned_bytes, one);
        assert_int_equal(st.fetches, 3);
        segidx_loader_put(l, r.other);
        break;
    case RACE_BAD_PUT:
        /* The racing put took our pin and evicted A; ours is refused and
         * touches nothing that is gone. */
        assert_released(f, (unsigned[]){ 1, 0, 0 });
        assert_int_equal(st.bad_puts, 1);
        assert_int_equal(st.cached_bytes, one);
        segidx_loader_put(l, r.other);
        break;
    default:
        fail();
    }
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_true(st.cached_bytes <= one);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

static void test_put_races(void **state)
{
    (void)state;
    static const enum race_op ops[] = { RACE_GET_SAME, RACE_PUT_OTHER, RACE_DISCARD,
                                        RACE_GET_NEW, RACE_BAD_PUT };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        run_put_race(ops[i]);
}

/* A get that missed leaves its stripe's lock before asking for the sid's
 * permit: a racing get caches the sid there (the second look finds it:
 * one fetch), or fails its fetch (the second look misses: ours fetches). */
static void test_miss_races(void **state)
{
    (void)state;
    for (int op = RACE_FILL; op <= RACE_FAIL; op++) {
        struct fake *f = fake_new(2, pages_same);
        segidx_loader *l = loader_over(f, 0, 0);
        struct race r = { l, f, SEGIDX__LOADER_MISSED, (enum race_op)op, 0, 1,
                          NULL, NULL, NULL, NULL };
        segidx__loader_set_hook(l, race_hook, &r);
        const segidx_segment *s;
        assert_int_equal(segidx_loader_get(l, &f->sids[1], &s), SEGIDX_OK);
        assert_non_null(check_segment(f, s, 1));
        segidx_loader_put(l, s);
        segidx_loader_stats st;
        segidx_loader_stats_get(l, &st);
        assert_int_equal(st.misses, 2);
        assert_int_equal(st.hits, 0);
        assert_int_equal(st.fetches, op == RACE_FILL ? 1 : 2);
        assert_int_equal(st.fetch_failures, op == RACE_FILL ? 0 : 1);
        assert_int_equal(st.cached_segments, 1);
        assert_int_equal(st.pinned_bytes, 0);
        segidx_loader_free(l);
        assert_all_released_once(f);
        fake_free(f);
    }
}

/* Between a fetch and the insert of its bytes (the fetch callback runs
 * with no lock held): a hit pins the only cached segment, so the insert
 * finds nothing it may evict and the cache goes over budget by pinned
 * bytes; the first put then evicts, the second fits. */
struct fetch_race {
    struct fake *f;
    segidx_loader *l;
    const segidx_segment *held;
    segidx_loader_stats during;
};

static int racing_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                        void **handle)
{
    struct fetch_race *r = ctx;
    if (memcmp(sid->bytes, r->f->sids[1].bytes, 16) == 0 && !r->held) {
        assert_int_equal(segidx_loader_get(r->l, &r->f->sids[0], &r->held), SEGIDX_OK);
        segidx_loader_stats_get(r->l, &r->during);
    }
    return fake_fetch(r->f, sid, buf, len, handle);
}

static void racing_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                           void *handle)
{
    fake_release(((struct fetch_race *)ctx)->f, sid, buf, len, handle);
}

static void test_fetch_races(void **state)
{
    (void)state;
    struct fetch_race r = { fake_new(2, pages_same), NULL, NULL, { 0 } };
    struct fake *f = r.f;
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, racing_fetch, racing_release,
                                  &r };
    segidx_loader_options o = { f->len[0], 0 };
    assert_int_equal(segidx_loader_new(&src, &o, &r.l), SEGIDX_OK);
    get_put(r.l, f, 0);
    const segidx_segment *b;
    assert_int_equal(segidx_loader_get(r.l, &f->sids[1], &b), SEGIDX_OK);
    /* During the fetch: A pinned, B not yet counted anywhere. */
    assert_int_equal(r.during.cached_segments, 1);
    assert_int_equal(r.during.pinned_bytes, f->len[0]);
    assert_int_equal(r.during.fetches, 1);
    segidx_loader_stats st;
    segidx_loader_stats_get(r.l, &st);
    assert_int_equal(st.cached_bytes, 2 * f->len[0]);
    assert_int_equal(st.pinned_bytes, 2 * f->len[0]);
    assert_int_equal(atomic_load(&f->releases), 0);
    segidx_loader_put(r.l, r.held); /* over budget: A goes at once */
    assert_released(f, (unsigned[]){ 1, 0 });
    segidx_loader_put(r.l, b);
    segidx_loader_stats_get(r.l, &st);
    assert_int_equal(st.cached_bytes, f->len[1]);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.evictions, 1);
    segidx_loader_free(r.l);
    assert_all_released_once(f);
    fake_free(f);
}

/* ------------------------------------------------------------ threads */

#if TEST_THREADS

static void start_threads(pthread_t *t, int n, void *(*fn)(void *), void *args, size_t size)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * size), 0);
}

static void join_threads(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
}

struct storm {
    segidx_loader *l;
    struct fake *f;
    pthread_barrier_t *start;
    size_t cache_bytes;
    uint64_t seed;
    unsigned gets;
    atomic_uint *errors;
    atomic_uint *over_budget;
    atomic_uint *gets_done;
};

/* Random gets, sometimes two pins at once, sometimes held for a while;
 * every pinned segment's bytes are read while pinned. */
static void *storm_thread(void *p)
{
    struct storm *a = p;
    test_rng r = { a->seed };
    pthread_barrier_wait(a->start);
    for (unsigned n = 0; n < a->gets; n++) {
        int i = (int)rng_below(&r, a->f->nsids), j = -1;
        const segidx_segment *s = NULL, *s2 = NULL;
        atomic_fetch_add(a->gets_done, 1);
        if (segidx_loader_get(a->l, &a->f->sids[i], &s) != SEGIDX_OK) {
            atomic_fetch_add(a->errors, 1);
            continue;
        }
        struct token *tok = check_segment(a->f, s, i), *tok2 = NULL;
        if (!tok) {
            atomic_fetch_add(a->errors, 1);
        } else {
            atomic_fetch_add(&tok->pins, 1);
            if (atomic_load(&tok->released))
                atomic_fetch_add(a->errors, 1);
        }
        if (rng_below(&r, 8) == 0) {
            j = (int)rng_below(&r, a->f->nsids);
            atomic_fetch_add(a->gets_done, 1);
            if (segidx_loader_get(a->l, &a->f->sids[j], &s2) != SEGIDX_OK) {
                atomic_fetch_add(a->errors, 1);
                s2 = NULL;
            } else if (!(tok2 = check_segment(a->f, s2, j))) {
                atomic_fetch_add(a->errors, 1);
            } else {
                atomic_fetch_add(&tok2->pins, 1);
            }
        }
        uint64_t hold = rng_below(&r, 16);
        if (hold == 0)
            sleep_ns(20000);
        else if (hold < 4)
            sched_yield();
        if (rng_below(&r, 4) == 0) {
            /* Between calls, bytes beyond the budget are all pinned. */
            segidx_loader_stats st;
            segidx_loader_stats_get(a->l, &st);
            if ((st.cached_bytes > a->cache_bytes && st.cached_bytes != st.pinned_bytes) ||
                st.pinned_bytes > st.cached_bytes)
                atomic_fetch_add(a->over_budget, 1);
        }
        if (tok && !check_segment(a->f, s, i))
            atomic_fetch_add(a->errors, 1);
        if (tok2) {
            if (!check_segment(a->f, s2, j))
                atomic_fetch_add(a->errors, 1);
            atomic_fetch_sub(&tok2->pins, 1);
        }
        if (s2)
            segidx_loader_put(a->l, s2);
        if (tok)
            atomic_fetch_sub(&tok->pins, 1);
        segidx_loader_put(a->l, s);
    }
    return NULL;
}

enum { STORM_THREADS = 16, STORM_GETS = 1000, STORM_SIDS = 64, STORM_CAP = 4 };

static void run_storm(size_t cache_divisor, bool expect_one_fetch_each)
{
    struct fake *f = fake_new(STORM_SIDS, pages_varied);
    f->delay_ns = 200000; /* 0.2 ms: fetches overlap */
    size_t total = 0;
    for (unsigned i = 0; i < f->nsids; i++)
        total += f->len[i];
    size_t cache = total / cache_divisor;
    segidx_loader *l = loader_over(f, cache, STORM_CAP);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, STORM_THREADS);
    atomic_uint errors = 0, over = 0, gets = 0;
    struct storm a[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++)
        a[i] = (struct storm){ l, f, &start, cache, 0x10ad0000u + (uint64_t)i * 7919,
                               STORM_GETS, &errors, &over, &gets };
    pthread_t t[STORM_THREADS];
    start_threads(t, STORM_THREADS, storm_thread, a, sizeof a[0]);
    join_threads(t, STORM_THREADS);
    pthread_barrier_destroy(&start);

    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&over), 0);
    assert_int_equal(atomic_load(&f->violations), 0);
    assert_int_equal(f->peak_inflight_sid, 1); /* one fetch per sid at a time */
    assert_true(f->peak_inflight <= STORM_CAP);
    assert_true(f->peak_inflight >= 1);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, f->fetches);
    assert_int_equal(st.fetch_failures, 0);
    assert_int_equal(st.pinned_bytes, 0);
    assert_true(st.cached_bytes <= cache);
    assert_int_equal(st.hits + st.misses, atomic_load(&gets));
    assert_true(atomic_load(&gets) >= STORM_THREADS * STORM_GETS);
    assert_true(st.fetches <= st.misses);
    print_message("storm cache %zu of %zu B: %llu gets, %llu hits, %u fetches, "
                  "%u at once (cap %d), %llu evictions\n",
                  cache, total, (unsigned long long)(st.hits + st.misses),
                  (unsigned long long)st.hits, f->fetches, f->peak_inflight, STORM_CAP,
                  (unsigned long long)st.evictions);
    /* Whatever was fetched and is not cached any more went back once. */
    assert_int_equal(atomic_load(&f->releases), st.fetches - st.cached_segments);
    assert_int_equal(st.evictions, atomic_load(&f->releases));
    for (unsigned i = 0; i < f->nsids; i++) {
        assert_true(f->per_sid[i] >= 1);
        if (expect_one_fetch_each)
            assert_int_equal(f->per_sid[i], 1);
    }
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* 16 threads x 1000 gets over 64 sids; a cache of 1/8 of them. */
static void test_storm_small_cache(void **state)
{
    (void)state;
    run_storm(8, false);
}

/* The same with room for all: every sid is fetched exactly once. */
static void test_storm_big_cache(void **state)
{
    (void)state;
    run_storm(1, true);
}

struct fan {
    segidx_loader *l;
    const segidx_sid *sid;
    pthread_barrier_t *start;
    int rc;
    const segidx_segment *s;
};

static void *fan_thread(void *p)
{
    struct fan *a = p;
    pthread_barrier_wait(a->start);
    a->rc = segidx_loader_get(a->l, a->sid, &a->s);
    return NULL;
}

/* `n` threads ask for one cold sid at once; returns how many succeeded
 * and puts their segments back. */
static int fan_in(segidx_loader *l, const segidx_sid *sid, int n, int *rcs)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    struct fan a[16];
    pthread_t t[16];
    for (int i = 0; i < n; i++)
        a[i] = (struct fan){ l, sid, &start, 1, NULL };
    start_threads(t, n, fan_thread, a, sizeof a[0]);
    join_threads(t, n);
    pthread_barrier_destroy(&start);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        rcs[i] = a[i].rc;
        if (a[i].rc == SEGIDX_OK) {
            ok++;
            assert_ptr_equal(a[i].s, a[0].rc == SEGIDX_OK ? a[0].s : a[i].s);
            segidx_loader_put(l, a[i].s);
        }
    }
    return ok;
}

static void test_cold_fan_in_one_fetch(void **state)
{
    (void)state;
    struct fake *f = fake_new(2, pages_same);
    f->delay_ns = 20000000; /* 20 ms: everyone arrives while it runs */
    segidx_loader *l = loader_over(f, 0, 0);
    int rcs[16];
    assert_int_equal(fan_in(l, &f->sids[0], 16, rcs), 16);
    assert_int_equal(f->fetches, 1);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetches, 1);
    assert_int_equal(st.hits + st.misses, 16);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* The first fetch fails while 8 threads wait: one of them retries, the
 * retry succeeds, and everyone else finds it cached. */
static void test_failed_fetch_with_waiters(void **state)
{
    (void)state;
    struct fake *f = fake_new(2, pages_same);
    f->delay_ns = 20000000;
    f->fail_nth = 1;
    segidx_loader *l = loader_over(f, 0, 0);
    int rcs[8];
    assert_int_equal(fan_in(l, &f->sids[0], 8, rcs), 7);
    for (int i = 0; i < 8; i++)
        assert_true(rcs[i] == SEGIDX_OK || rcs[i] == SEGIDX_EIO);
    assert_int_equal(f->fetches, 2);
    assert_int_equal(f->peak_inflight_sid, 1);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetch_failures, 1);
    assert_int_equal(st.cached_segments, 1);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* Every fetch fails: each waiter retries in turn (one at a time, no herd)
 * and every one returns the error; nobody is left waiting. */
static void test_failing_source_no_herd(void **state)
{
    (void)state;
    struct fake *f = fake_new(2, pages_same);
    f->delay_ns = 2000000;
    f->fail_all = true;
    segidx_loader *l = loader_over(f, 0, 0);
    int rcs[8];
    assert_int_equal(fan_in(l, &f->sids[0], 8, rcs), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(rcs[i], SEGIDX_EIO);
    assert_int_equal(f->fetches, 8);
    assert_int_equal(f->peak_inflight_sid, 1);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.fetch_failures, 8);
    assert_int_equal(st.cached_segments, 0);
    f->fail_all = false;
    get_put(l, f, 0);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* Corrupt bytes with waiters: each caller validates its own fetch and
 * gets ECORRUPT; every copy is released once; nothing is cached. */
static void test_corrupt_with_waiters(void **state)
{
    (void)state;
    struct fake *f = fake_new(2, pages_same);
    f->delay_ns = 2000000;
    f->mode[0] = MODE_CORRUPT;
    segidx_loader *l = loader_over(f, 0, 0);
    int rcs[8];
    assert_int_equal(fan_in(l, &f->sids[0], 8, rcs), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(rcs[i], SEGIDX_ECORRUPT);
    assert_int_equal(atomic_load(&f->releases), 8);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.cached_segments, 0);
    assert_int_equal(st.cached_bytes, 0);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

/* 16 cold sids at once under a cap of 3: never more than 3 fetches run. */
static void test_global_cap(void **state)
{
    (void)state;
    struct fake *f = fake_new(16, pages_same);
    f->delay_ns = 5000000;
    segidx_loader *l = loader_over(f, 0, 3);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 16);
    struct fan a[16];
    pthread_t t[16];
    for (int i = 0; i < 16; i++)
        a[i] = (struct fan){ l, &f->sids[i], &start, 1, NULL };
    start_threads(t, 16, fan_thread, a, sizeof a[0]);
    join_threads(t, 16);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(a[i].rc, SEGIDX_OK);
        segidx_loader_put(l, a[i].s);
    }
    assert_int_equal(f->fetches, 16);
    assert_true(f->peak_inflight <= 3);
    assert_true(f->peak_inflight >= 2); /* they did overlap */
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

struct lim_arg {
    segidx__limiter *lim;
    const uint8_t *key;
    atomic_int done;
};

static void *lim_thread(void *p)
{
    struct lim_arg *a = p;
    if (segidx__limiter_acquire(a->lim, a->key) == SEGIDX_OK) {
        atomic_store(&a->done, 1);
        segidx__limiter_release(a->lim, a->key);
    } else {
        atomic_store(&a->done, -1);
    }
    return NULL;
}

/* Wait up to `ms` for `a->done`. */
static int lim_wait(struct lim_arg *a, int ms)
{
    for (int i = 0; i < ms && !atomic_load(&a->done); i++)
        sleep_ns(1000000);
    return atomic_load(&a->done);
}

/* A held key blocks only itself; the cap blocks everyone. */
static void test_limiter_keys_independent(void **state)
{
    (void)state;
    segidx__limiter *lim = NULL;
    assert_int_equal(segidx__limiter_new(2, &lim), SEGIDX_OK);
    uint8_t k1[16] = { 1 }, k2[16] = { 2 }, k3[16] = { 3 };
    assert_int_equal(segidx__limiter_acquire(lim, k1), SEGIDX_OK);

    struct lim_arg other = { lim, k2, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, lim_thread, &other), 0);
    assert_int_equal(lim_wait(&other, 5000), 1); /* k2 did not wait for k1 */
    pthread_join(t, NULL);

    struct lim_arg same = { lim, k1, 0 };
    assert_int_equal(pthread_create(&t, NULL, lim_thread, &same), 0);
    assert_int_equal(lim_wait(&same, 50), 0); /* k1 waits for k1 */
    segidx__limiter_release(lim, k1);
    assert_int_equal(lim_wait(&same, 5000), 1);
    pthread_join(t, NULL);

    /* The cap: with k1 and k2 held, k3 waits until one goes. */
    assert_int_equal(segidx__limiter_acquire(lim, k1), SEGIDX_OK);
    assert_int_equal(segidx__limiter_acquire(lim, k2), SEGIDX_OK);
    struct lim_arg capped = { lim, k3, 0 };
    assert_int_equal(pthread_create(&t, NULL, lim_thread, &capped), 0);
    assert_int_equal(lim_wait(&capped, 50), 0);
    assert_int_equal(segidx__limiter_held(lim), 2);
    segidx__limiter_release(lim, k2);
    assert_int_equal(lim_wait(&capped, 5000), 1);
    pthread_join(t, NULL);
    segidx__limiter_release(lim, k1);
    assert_int_equal(segidx__limiter_held(lim), 0);
    assert_int_equal(segidx__limiter_peak(lim), 2);
    segidx__limiter_free(lim);
}

/* Threads reading random pages at random LSNs while every copy of
 * segment 1 the host hands out has one damaged page: each read is checked
 * against the model (ECORRUPT exactly when it needs that page), copies are
 * discarded while other readers still hold them, and every copy goes back
 * to the host once. */
enum { RP_THREADS = 4, RP_READS = 400 };

struct rp_thread {
    const struct rp_world *w;
    segidx_loader *l;
    pthread_barrier_t *start;
    uint64_t seed;
    uint32_t local;
    unsigned corrupt, wrong;
};

static void *rp_reader(void *p)
{
    struct rp_thread *a = p;
    test_rng r = { a->seed };
    pthread_barrier_wait(a->start);
    for (unsigned n = 0; n < RP_READS; n++) {
        segidx_offset_set *asked = segidx_offset_set_new();
        if (!asked) {
            a->wrong++;
            continue;
        }
        for (uint32_t off = 0; off < RP_OFFSETS + 1; off++)
            if (rng_below(&r, 4) == 0 && segidx_offset_set_add(asked, off) != SEGIDX_OK)
                a->wrong++;
        segidx_lsn lsn = 1 + rng_below(&r, RP_COMMITS);
        int rc = rp_read_checked(a->w, a->l, asked, lsn, 1, a->local);
        a->wrong += rc == -100;
        a->corrupt += rc == SEGIDX_ECORRUPT;
        segidx_offset_set_free(asked);
    }
    return NULL;
}

static void test_damaged_reads_threads(void **state)
{
    (void)state;
    struct rp_world w;
    rp_world_open(&w, 15);
    struct fake *f = w.f;
    const struct version *bad = rp_version_in(&w, 1);
    f->flip_at[1] = rp_page_at(&w, 1, bad->local) + 100;
    segidx_loader *l = loader_over(f, f->len[0] + f->len[1], 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RP_THREADS);
    struct rp_thread a[RP_THREADS];
    for (int i = 0; i < RP_THREADS; i++)
        a[i] = (struct rp_thread){ &w, l, &start, 0x5EAD0000u + (uint64_t)i, bad->local, 0, 0 };
    pthread_t t[RP_THREADS];
    start_threads(t, RP_THREADS, rp_reader, a, sizeof a[0]);
    join_threads(t, RP_THREADS);
    pthread_barrier_destroy(&start);
    unsigned corrupt = 0;
    for (int i = 0; i < RP_THREADS; i++) {
        assert_int_equal(a[i].wrong, 0);
        corrupt += a[i].corrupt;
    }
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_true(corrupt > 0);
    /* Readers sharing a damaged copy each fail; it is discarded once. */
    assert_true(st.discards >= 1 && st.discards <= corrupt);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.bad_puts, 0);
    assert_int_equal(atomic_load(&f->releases), st.fetches - st.fetch_failures - st.cached_segments);
    print_message("damaged reads: %u of %u failed, %llu discards, %llu fetches\n", corrupt,
                  RP_THREADS * RP_READS, (unsigned long long)st.discards,
                  (unsigned long long)st.fetches);
    segidx_loader_free(l);
    assert_all_released_once(f);
    rp_world_close(&w);
}

/* ------------------------------------------------------------ stripes */

#if defined(__linux__)
/* Move the calling thread to `cpu`; false if the system would not. */
static bool run_on_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 && sched_getcpu() == cpu;
}
#endif

/* A get on one CPU and its put on another: the put finds no pin in its own
 * stripe's slot and takes the one in the other's, under every lock; the
 * budget and the refusal of a put too many work across stripes as within
 * one. Moved between CPUs by affinity (Linux), so that the stripes differ
 * on every run. */
static void test_put_on_another_cpu(void **state)
{
    (void)state;
#if defined(__linux__)
    cpu_set_t was;
    assert_int_equal(sched_getaffinity(0, sizeof was, &was), 0);
    int a = -1, b = -1;
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (!CPU_ISSET(i, &was))
            continue;
        if (a < 0)
            a = i;
        else if (b < 0 && i % 16 != a % 16) /* another stripe */
            b = i;
    }
    if (b < 0 || !run_on_cpu(a)) {
        sched_setaffinity(0, sizeof was, &was);
        skip();
    }
    struct fake *f = fake_new(2, pages_same);
    segidx_loader *l = loader_over(f, f->len[0], 0);
    const segidx_segment *s, *s2, *t;
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &s), SEGIDX_OK);
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &s2), SEGIDX_OK);
    assert_true(run_on_cpu(b));
    segidx_loader_put(l, s);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, f->len[0]);
    segidx_loader_put(l, s2);
    segidx_loader_put(l, s2); /* one too many, from either CPU */
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.bad_puts, 1);
    assert_int_equal(st.cached_segments, 1);

    /* Over budget with pins in two stripes: each put's last pin lets go
     * what must go, wherever its get ran. */
    assert_true(run_on_cpu(a));
    assert_int_equal(segidx_loader_get(l, &f->sids[0], &s), SEGIDX_OK);
    assert_true(run_on_cpu(b));
    assert_int_equal(segidx_loader_get(l, &f->sids[1], &t), SEGIDX_OK);
    segidx_loader_put(l, s); /* A's pin is in a's slot: taken from there */
    assert_released(f, (unsigned[]){ 1, 0 });
    assert_true(run_on_cpu(a));
    segidx_loader_put(l, t);
    assert_released(f, (unsigned[]){ 1, 0 });
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(st.cached_bytes, f->len[1]);
    assert_int_equal(st.bad_puts, 1);
    assert_int_equal(st.hits, 2);
    sched_setaffinity(0, sizeof was, &was);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
#else
    skip();
#endif
}

/* ------------------------------------------------------------ model stress */

/* Threads get and put at random, skewed to a few hot segments so that
 * several pin one segment at once, keep up to MS_HOLD pins across phase
 * boundaries, discard copies they hold now and then, and hand what they
 * hold to the next thread at each boundary, which puts them (from another
 * CPU, as often as not). At each boundary, with every thread stopped, the
 * loader's snapshot is checked against the model: the bytes of the copies
 * held are exactly pinned_bytes, the cache is within budget or all pinned,
 * every get was a hit or a miss, every fetched copy not cached was
 * released once and none while held. */
enum { MS_THREADS = 4, MS_SIDS = 12, MS_HOT = 3, MS_HOLD = 6, MS_OPS = 300 };

struct ms_held {
    int sid;
    const segidx_segment *s;
    struct token *tok;
};

struct ms_thread {
    segidx_loader *l;
    struct fake *f;
    pthread_barrier_t *bar;
    uint64_t seed;
    long phases;
    struct ms_held held[MS_HOLD], handed[MS_HOLD];
    int nheld, nhanded;
    unsigned gets, errors, discard_calls;
};

static void ms_put(struct ms_thread *t, struct ms_held *h)
{
    atomic_fetch_sub(&h->tok->pins, 1);
    segidx_loader_put(t->l, h->s);
}

static void *ms_worker(void *p)
{
    struct ms_thread *t = p;
    test_rng r = { t->seed };
    for (long phase = 0; phase < t->phases; phase++) {
        for (int i = 0; i < t->nhanded; i++)
            ms_put(t, &t->handed[i]);
        t->nhanded = 0;
        for (int n = 0; n < MS_OPS; n++) {
            if (t->nheld < MS_HOLD && rng_below(&r, 5) < 3) {
                int sid = (int)(rng_below(&r, 2) ? rng_below(&r, MS_HOT)
                                                 : rng_below(&r, MS_SIDS));
                const segidx_segment *s = NULL;
                segidx__copy *copy = NULL;
                bool as_copy = rng_below(&r, 4) == 0;
                int rc = as_copy ? segidx__loader_pin(t->l, &t->f->sids[sid], &s, &copy)
                                 : segidx_loader_get(t->l, &t->f->sids[sid], &s);
                t->gets++;
                struct token *tok = rc == SEGIDX_OK ? check_segment(t->f, s, sid) : NULL;
                if (!tok) {
                    t->errors++;
                    continue;
                }
                atomic_fetch_add(&tok->pins, 1);
                if (atomic_load(&tok->released))
                    t->errors++;
                t->held[t->nheld++] = (struct ms_held){ sid, s, tok };
                if (as_copy && rng_below(&r, 16) == 0) {
                    segidx__loader_discard(t->l, copy);
                    t->discard_calls++;
                }
            } else if (t->nheld) {
                int i = (int)rng_below(&r, (uint64_t)t->nheld);
                if (!check_segment(t->f, t->held[i].s, t->held[i].sid))
                    t->errors++;
                ms_put(t, &t->held[i]);
                t->held[i] = t->held[--t->nheld];
            }
        }
        pthread_barrier_wait(t->bar); /* the model is checked */
        pthread_barrier_wait(t->bar); /* pins are handed on */
    }
    for (int i = 0; i < t->nhanded; i++)
        ms_put(t, &t->handed[i]);
    for (int i = 0; i < t->nheld; i++)
        ms_put(t, &t->held[i]);
    t->nhanded = t->nheld = 0;
    return NULL;
}

/* The snapshot against what the threads hold, all of them stopped. */
static void ms_check(segidx_loader *l, struct fake *f, struct ms_thread *t, size_t cache)
{
    const segidx_segment *seen[MS_THREADS * MS_HOLD];
    size_t nseen = 0, pinned = 0;
    unsigned gets = 0, discard_calls = 0;
    for (int i = 0; i < MS_THREADS; i++) {
        assert_int_equal(t[i].errors, 0);
        gets += t[i].gets;
        discard_calls += t[i].discard_calls;
        for (int k = 0; k < t[i].nheld; k++) {
            size_t j = 0;
            while (j < nseen && seen[j] != t[i].held[k].s)
                j++;
            if (j == nseen) {
                seen[nseen++] = t[i].held[k].s;
                pinned += f->len[t[i].held[k].sid];
            }
        }
    }
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, pinned);
    assert_true(st.cached_bytes <= cache || st.cached_bytes == st.pinned_bytes);
    assert_true(st.pinned_bytes <= st.cached_bytes);
    assert_int_equal(st.hits + st.misses, gets);
    assert_int_equal(st.fetches, f->fetches);
    assert_int_equal(st.fetch_failures, 0);
    assert_int_equal(st.bad_puts, 0);
    assert_true(st.discards <= discard_calls);
    assert_int_equal(atomic_load(&f->releases), st.fetches - st.cached_segments);
    assert_int_equal(atomic_load(&f->violations), 0);
    assert_int_equal(f->peak_inflight_sid, 1);
}

static void test_model_stress(void **state)
{
    (void)state;
    struct fake *f = fake_new(MS_SIDS, pages_varied);
    size_t total = 0;
    for (unsigned i = 0; i < f->nsids; i++)
        total += f->len[i];
    size_t cache = total / 3;
    segidx_loader *l = loader_over(f, cache, 3);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, MS_THREADS + 1);
    long phases = test_scaled_threads(60);
    struct ms_thread t[MS_THREADS];
    for (int i = 0; i < MS_THREADS; i++)
        t[i] = (struct ms_thread){ .l = l, .f = f, .bar = &bar,
                                   .seed = 0x5EED0000u + (uint64_t)i * 104729, .phases = phases };
    pthread_t th[MS_THREADS];
    start_threads(th, MS_THREADS, ms_worker, t, sizeof t[0]);
    for (long phase = 0; phase < phases; phase++) {
        pthread_barrier_wait(&bar);
        ms_check(l, f, t, cache);
        /* Each thread's pins go to the next one, which puts them. */
        for (int i = 0; i < MS_THREADS; i++) {
            struct ms_thread *to = &t[(i + 1) % MS_THREADS];
            memcpy(to->handed, t[i].held, sizeof to->handed);
            to->nhanded = t[i].nheld;
        }
        for (int i = 0; i < MS_THREADS; i++)
            t[i].nheld = 0;
        pthread_barrier_wait(&bar);
    }
    join_threads(th, MS_THREADS);
    pthread_barrier_destroy(&bar);
    ms_check(l, f, t, cache);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_true(st.cached_bytes <= cache);
    print_message("model stress: %llu gets, %llu hits, %llu fetches, %llu evictions, "
                  "%llu discards\n",
                  (unsigned long long)(st.hits + st.misses), (unsigned long long)st.hits,
                  (unsigned long long)st.fetches, (unsigned long long)st.evictions,
                  (unsigned long long)st.discards);
    segidx_loader_free(l);
    assert_all_released_once(f);
    fake_free(f);
}

#endif /* TEST_THREADS */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_hits_and_misses),
        cmocka_unit_test(test_lru_by_bytes),
        cmocka_unit_test(test_lru_varied_sizes),
        cmocka_unit_test(test_pins_respected),
        cmocka_unit_test(test_fetch_failure_then_retry),
        cmocka_unit_test(test_fetch_reentering_its_get),
        cmocka_unit_test(test_corrupt_segments),
        cmocka_unit_test(test_limiter_counts),
        cmocka_unit_test(test_bad_puts),
        cmocka_unit_test(test_fetch_returns),
        cmocka_unit_test(test_damaged_page_heals),
        cmocka_unit_test(test_damaged_page_other_holder),
        cmocka_unit_test(test_damage_every_position),
        cmocka_unit_test(test_read_source_errors),
        cmocka_unit_test(test_put_races),
        cmocka_unit_test(test_miss_races),
        cmocka_unit_test(test_fetch_races),
#if TEST_THREADS
        cmocka_unit_test(test_storm_small_cache),
        cmocka_unit_test(test_storm_big_cache),
        cmocka_unit_test(test_cold_fan_in_one_fetch),
        cmocka_unit_test(test_failed_fetch_with_waiters),
        cmocka_unit_test(test_failing_source_no_herd),
        cmocka_unit_test(test_corrupt_with_waiters),
        cmocka_unit_test(test_global_cap),
        cmocka_unit_test(test_limiter_keys_independent),
        cmocka_unit_test(test_damaged_reads_threads),
        cmocka_unit_test(test_put_on_another_cpu),
        cmocka_unit_test(test_model_stress),
#endif
    };
    /* A stuck waiter fails the run instead of hanging CI (SIGALRM kills). */
    alarm(600);
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
