/* Loader figures (the targets: a warm get+put costs <= 200 ns with
 * 2 threads; N threads asking for one cold sid cause exactly 1 fetch).
 *
 * Warm: every segment is cached before timing; each thread does get+put
 * pairs over 8 sids (both threads over the same 8, so they pin the same
 * segments at once) and the figure is wall time over the pairs one thread
 * did, i.e. the latency a caller sees while the other thread works too.
 * The 2-thread figure's ratio is to the 1-thread one: 1.00 is perfect
 * scaling. The baseline is the loader's former design, rebuilt here: one
 * mutex over its tables, an LRU list relinked on every pin and unpin, the
 * counters beside them; rounds alternate between the two. The CPU figures
 * are the same runs in each thread's own CPU time: on a machine shared
 * with other work, a thread that waits for a core is not charged for it,
 * while cache lines moving between the cores are (a thread asleep on the
 * baseline's mutex is not charged either: its CPU figure is a floor).
 *
 * Cold fan-in: 16 threads released by a barrier ask for one sid whose
 * fetch sleeps 20 ms; the figure is the number of fetches, and any other
 * count than 1 exits non-zero. */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "segidx.h"

enum {
    SIDS = 8,
    PAGE = 4096,
    PAGES = 16,
    WARM_OPS = 200000,   /* get+put pairs per thread per round */
    ROUNDS = 11,
    FAN_THREADS = 16,
};

struct source {
    uint8_t *bytes[SIDS];
    size_t len[SIDS];
    segidx_sid sids[SIDS];
    long delay_ns;
    atomic_uint fetches, releases;
};

static segidx_sid sid_of(int i)
{
    segidx_sid s = { { 0xBE, 0x4C } };
    s.bytes[15] = (uint8_t)i;
    return s;
}

static int src_fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len,
                     void **handle)
{
    struct source *s = ctx;
    atomic_fetch_add(&s->fetches, 1);
    if (s->delay_ns) {
        struct timespec ts = { 0, s->delay_ns };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < SIDS; i++) {
        if (memcmp(s->sids[i].bytes, sid->bytes, 16) == 0) {
            *buf = s->bytes[i];
            *len = s->len[i];
            *handle = NULL;
            return SEGIDX_OK;
        }
    }
    return SEGIDX_ENOTFOUND;
}

static void src_release(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                        void *handle)
{
    struct source *s = ctx;
    (void)sid, (void)buf, (void)len, (void)handle;
    atomic_fetch_add(&s->releases, 1);
}

static void source_init(struct source *s)
{
    memset(s, 0, sizeof *s);
    uint8_t *page = bench_xmalloc(PAGE);
    segidx_vid vid = { { 1 } };
    for (int i = 0; i < SIDS; i++) {
        s->sids[i] = sid_of(i);
        segidx_segment_builder *b = segidx_segment_builder_new(NULL);
        BENCH_CHECK(b != NULL);
        for (uint32_t off = 0; off < PAGES; off++) {
            memset(page, (int)(i + off), PAGE);
            BENCH_CHECK(segidx_segment_builder_add(b, &vid, off, 1, page) == SEGIDX_OK);
        }
        s->len[i] = segidx_segment_builder_size(b);
        s->bytes[i] = bench_xmalloc(s->len[i]);
        BENCH_CHECK(segidx_segment_builder_finish(b, &s->sids[i], s->bytes[i], s->len[i]) ==
                    SEGIDX_OK);
        segidx_segment_builder_free(b);
    }
    free(page);
}

static void source_free(struct source *s)
{
    for (int i = 0; i < SIDS; i++)
        free(s->bytes[i]);
}

static segidx_loader *loader_over(struct source *s)
{
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, src_fetch, src_release, s };
    segidx_loader *l = NULL;
    BENCH_CHECK(segidx_loader_new(&src, NULL, &l) == SEGIDX_OK);
    return l;
}

/* ------------------------------------------------------------ baseline */

/* The former design's hit path: one mutex; entries found by sid on get and
 * by segment pointer on put; a pin that leaves 0 unlinks the entry from the
 * LRU list, an unpin to 0 pushes it at the head; hits and pinned bytes
 * counted beside the lock. */
struct gm_entry {
    segidx_sid sid;
    segidx_segment *seg;
    size_t len;
    unsigned pins;
    struct gm_entry *by_sid, *by_seg, *prev, *next;
};

enum { GM_BUCKETS = 64 };

struct gm_cache {
    pthread_mutex_t lock;
    struct gm_entry e[SIDS];
    struct gm_entry *sid_b[GM_BUCKETS], *seg_b[GM_BUCKETS];
    struct gm_entry *head, *tail;
    uint64_t hits;
    size_t pinned_bytes;
};

static size_t gm_sid_hash(const segidx_sid *sid)
{
    uint64_t a, b;
    memcpy(&a, sid->bytes, 8);
    memcpy(&b, sid->bytes + 8, 8);
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    return (size_t)(h ^ h >> 32) % GM_BUCKETS;
}

static size_t gm_seg_hash(const segidx_segment *s)
{
    uint64_t h = (uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ h >> 29) % GM_BUCKETS;
}

static void gm_unlink(struct gm_cache *c, struct gm_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void gm_push(struct gm_cache *c, struct gm_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    else
        c->tail = e;
    c->head = e;
}

static void gm_init(struct gm_cache *c, const struct source *s)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < SIDS; i++) {
        struct gm_entry *e = &c->e[i];
        e->sid = s->sids[i];
        e->len = s->len[i];
        BENCH_CHECK(segidx_segment_open(s->bytes[i], s->len[i], &e->seg) == SEGIDX_OK);
        size_t h = gm_sid_hash(&e->sid);
        e->by_sid = c->sid_b[h];
        c->sid_b[h] = e;
        h = gm_seg_hash(e->seg);
        e->by_seg = c->seg_b[h];
        c->seg_b[h] = e;
        gm_push(c, e);
    }
}

static void gm_free(struct gm_cache *c)
{
    for (int i = 0; i < SIDS; i++)
        segidx_segment_close(c->e[i].seg);
    pthread_mutex_destroy(&c->lock);
}

static const segidx_segment *gm_get(struct gm_cache *c, const segidx_sid *sid)
{
    pthread_mutex_lock(&c->lock);
    struct gm_entry *e = c->sid_b[gm_sid_hash(sid)];
    while (e && memcmp(e->sid.bytes, sid->bytes, 16) != 0)
        e = e->by_sid;
    if (e) {
        c->hits++;
        if (e->pins++ == 0) {
            gm_unlink(c, e);
            c->pinned_bytes += e->len;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return e ? e->seg : NULL;
}

static void gm_put(struct gm_cache *c, const segidx_segment *s)
{
    pthread_mutex_lock(&c->lock);
    struct gm_entry *e = c->seg_b[gm_seg_hash(s)];
    while (e && e->seg != s)
        e = e->by_seg;
    if (e && e->pins && --e->pins == 0) {
        c->pinned_bytes -= e->len;
        gm_push(c, e);
    }
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------ warm */

struct warm {
    segidx_loader *l;        /* ours, or NULL: */
    struct gm_cache *gm;     /* the baseline */
    const struct source *src;
    pthread_barrier_t *start;
    uint64_t seed;
    int failed;
    double cpu_ns;           /* this thread's CPU time per pair */
};

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *warm_thread(void *p)
{
    struct warm *w = p;
    bench_rng r = bench_rng_seed(w->seed);
    pthread_barrier_wait(w->start);
    uint64_t c0 = thread_cpu_ns();
    for (int n = 0; n < WARM_OPS; n++) {
        const segidx_sid *sid = &w->src->sids[bench_rng_below(&r, SIDS)];
        const segidx_segment *s;
        if (w->l) {
            if (segidx_loader_get(w->l, sid, &s) != SEGIDX_OK) {
                w->failed = 1;
                break;
            }
            segidx_loader_put(w->l, s);
        } else {
            if (!(s = gm_get(w->gm, sid))) {
                w->failed = 1;
                break;
            }
            gm_put(w->gm, s);
        }
    }
    w->cpu_ns = (double)(thread_cpu_ns() - c0) / WARM_OPS;
    return NULL;
}

struct warm_case {
    segidx_loader *l;
    struct gm_cache *gm;
    const struct source *src;
    int threads;
    double cpu_ns;           /* the last round's, mean over the threads */
    double cpu_rounds[BENCH_MAX_ROUNDS + 1];
    int nrounds;
};

/* ns per get+put pair as one thread sees it: the barrier releases every
 * thread at once and the clock runs until the last one is done. */
static double warm_round(void *ctx)
{
    struct warm_case *c = ctx;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)c->threads + 1);
    pthread_t t[2];
    struct warm w[2];
    for (int i = 0; i < c->threads; i++) {
        w[i] = (struct warm){ c->l, c->gm, c->src, &start, 0x3a11u + (uint64_t)i, 0, 0 };
        BENCH_CHECK(pthread_create(&t[i], NULL, warm_thread, &w[i]) == 0);
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < c->threads; i++)
        pthread_join(t[i], NULL);
    uint64_t t1 = bench_now_ns();
    pthread_barrier_destroy(&start);
    double cpu = 0;
    for (int i = 0; i < c->threads; i++) {
        BENCH_CHECK(!w[i].failed);
        cpu += w[i].cpu_ns / c->threads;
    }
    if (c->nrounds <= BENCH_MAX_ROUNDS)
        c->cpu_rounds[c->nrounds++] = cpu;
    return (double)(t1 - t0) / WARM_OPS;
}

/* The median CPU figure of the rounds a warm_case ran (the warm-up's
 * excluded, as bench_median_of does). */
static double warm_cpu_median(struct warm_case *c)
{
    return bench_median(c->cpu_rounds + 1, (size_t)c->nrounds - 1);
}

static void bench_warm(struct source *s)
{
    segidx_loader *l = loader_over(s);
    for (int i = 0; i < SIDS; i++) {
        const segidx_segment *seg;
        BENCH_CHECK(segidx_loader_get(l, &s->sids[i], &seg) == SEGIDX_OK);
        segidx_loader_put(l, seg);
    }
    struct gm_cache gm;
    gm_init(&gm, s);
    double ns[3] = { 0 }, base[3] = { 0 }, cpu[3] = { 0 }, base_cpu[3] = { 0 };
    /* A single-threaded build has no lock: one thread is all it allows. */
    int max_threads = segidx_threadsafe() ? 2 : 1;
    for (int threads = 1; threads <= max_threads; threads++) {
        struct warm_case ours = { l, NULL, s, threads, 0, { 0 }, 0 };
        struct warm_case mutex = { NULL, &gm, s, threads, 0, { 0 }, 0 };
        bench_median_pair(warm_round, &ours, warm_round, &mutex, ROUNDS, &ns[threads],
                          &base[threads]);
        cpu[threads] = warm_cpu_median(&ours);
        base_cpu[threads] = warm_cpu_median(&mutex);
    }
    bench_print(&(struct bench_figure){ .name = "loader.get+put warm 1 thread", .value = ns[1],
                                        .unit = "ns/op", .baseline = "global mutex",
                                        .baseline_value = base[1] });
    if (max_threads == 2) {
        bench_print(&(struct bench_figure){ .name = "loader.get+put warm 2 threads",
                                            .value = ns[2], .unit = "ns/op",
                                            .baseline = "1 thread", .baseline_value = ns[1] });
        bench_print(&(struct bench_figure){ .name = "global mutex get+put 2 threads",
                                            .value = base[2], .unit = "ns/op",
                                            .baseline = "its 1 thread",
                                            .baseline_value = base[1] });
        bench_print(&(struct bench_figure){ .name = "loader.get+put warm 1 thread CPU",
                                            .value = cpu[1], .unit = "ns/op" });
        bench_print(&(struct bench_figure){ .name = "loader.get+put warm 2 threads CPU",
                                            .value = cpu[2], .unit = "ns/op",
                                            .baseline = "1 thread CPU",
                                            .baseline_value = cpu[1] });
        bench_print(&(struct bench_figure){ .name = "global mutex 2 threads CPU",
                                            .value = base_cpu[2], .unit = "ns/op",
                                            .baseline = "its 1 thread CPU",
                                            .baseline_value = base_cpu[1] });
    }
    gm_free(&gm);
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    BENCH_CHECK(st.fetches == SIDS); /* warm means warm: nothing refetched */
    BENCH_CHECK(st.pinned_bytes == 0);
    segidx_loader_free(l);
    BENCH_CHECK(atomic_load(&s->releases) == SIDS);
}

/* ------------------------------------------------------------ cold */

struct fan {
    segidx_loader *l;
    const segidx_sid *sid;
    pthread_barrier_t *start;
    int rc;
    const segidx_segment *s;
};

static void *fan_thread(void *p)
{
    struct fan *f = p;
    pthread_barrier_wait(f->start);
    f->rc = segidx_loader_get(f->l, f->sid, &f->s);
    return NULL;
}

static void bench_cold_fan_in(struct source *s)
{
    s->delay_ns = 20000000;
    atomic_store(&s->fetches, 0);
    segidx_loader *l = loader_over(s);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, FAN_THREADS);
    pthread_t t[FAN_THREADS];
    struct fan f[FAN_THREADS];
    for (int i = 0; i < FAN_THREADS; i++) {
        f[i] = (struct fan){ l, &s->sids[0], &start, 1, NULL };
        BENCH_CHECK(pthread_create(&t[i], NULL, fan_thread, &f[i]) == 0);
    }
    for (int i = 0; i < FAN_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < FAN_THREADS; i++) {
        BENCH_CHECK(f[i].rc == SEGIDX_OK);
        segidx_loader_put(l, f[i].s);
    }
    unsigned fetches = atomic_load(&s->fetches);
    bench_print(&(struct bench_figure){ .name = "loader.cold fan-in 16 threads", .value = fetches,
                                        .unit = "fetches" });
    segidx_loader_free(l);
    s->delay_ns = 0;
    BENCH_CHECK(fetches == 1);
}

int main(void)
{
    struct source s;
    source_init(&s);
    bench_warm(&s);
    if (segidx_threadsafe())
        bench_cold_fan_in(&s);
    source_free(&s);
    return 0;
}
