/* Loader figures (DESIGN.md, "Targets": a warm get+put costs <= 200 ns with
 * 2 threads; N threads asking for one cold sid cause exactly 1 fetch).
 *
 * Warm: every segment is cached before timing; each thread does get+put
 * pairs over 8 sids and the figure is wall time over the pairs one thread
 * did, i.e. the latency a caller sees while the other threads hammer the
 * same lock. Cold fan-in: 16 threads released by a barrier ask for one sid
 * whose fetch sleeps 20 ms; the figure is the number of fetches, and any
 * other count than 1 exits non-zero. */
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

/* ------------------------------------------------------------ warm */

struct warm {
    segidx_loader *l;
    const struct source *src;
    pthread_barrier_t *start;
    uint64_t seed;
    int failed;
};

static void *warm_thread(void *p)
{
    struct warm *w = p;
    bench_rng r = bench_rng_seed(w->seed);
    pthread_barrier_wait(w->start);
    for (int n = 0; n < WARM_OPS; n++) {
        const segidx_segment *s;
        if (segidx_loader_get(w->l, &w->src->sids[bench_rng_below(&r, SIDS)], &s) != SEGIDX_OK) {
            w->failed = 1;
            break;
        }
        segidx_loader_put(w->l, s);
    }
    return NULL;
}

struct warm_case {
    segidx_loader *l;
    const struct source *src;
    int threads;
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
        w[i] = (struct warm){ c->l, c->src, &start, 0x3a11u + (uint64_t)i, 0 };
        BENCH_CHECK(pthread_create(&t[i], NULL, warm_thread, &w[i]) == 0);
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < c->threads; i++)
        pthread_join(t[i], NULL);
    uint64_t t1 = bench_now_ns();
    pthread_barrier_destroy(&start);
    for (int i = 0; i < c->threads; i++)
        BENCH_CHECK(!w[i].failed);
    return (double)(t1 - t0) / WARM_OPS;
}

static void bench_warm(struct source *s)
{
    segidx_loader *l = loader_over(s);
    for (int i = 0; i < SIDS; i++) {
        const segidx_segment *seg;
        BENCH_CHECK(segidx_loader_get(l, &s->sids[i], &seg) == SEGIDX_OK);
        segidx_loader_put(l, seg);
    }
    static const char *names[] = { NULL, "loader.get+put warm 1 thread",
                                   "loader.get+put warm 2 threads" };
    /* A single-threaded build has no lock: one thread is all it allows. */
    int max_threads = segidx_threadsafe() ? 2 : 1;
    for (int threads = 1; threads <= max_threads; threads++) {
        struct warm_case c = { l, s, threads };
        double ns = bench_median_of(warm_round, &c, ROUNDS);
        bench_print(&(struct bench_figure){ .name = names[threads], .value = ns,
                                            .unit = "ns/op" });
    }
    segidx_loader_stats st;
    segidx_loader_stats_get(l, &st);
    BENCH_CHECK(st.fetches == SIDS); /* warm means warm: nothing refetched */
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
