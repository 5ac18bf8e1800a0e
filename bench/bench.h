/* Helpers shared by every benchmark in bench/: a clock, a seeded PRNG, a
 * median-of-rounds runner and the one printing function.
 *
 * Header-only. Everything is `static inline` rather than plain `static`:
 * -Wall warns about an unused `static` function but not about an unused
 * `static inline` one, and no bench uses every helper.
 *
 * Output contract (one line per figure, so `make bench` reads as a table
 * and scripts can grep it):
 *
 *   name                                      value unit    ratio R.RR vs <baseline> (<baseline value> <unit>)
 *
 * The ratio part appears only when the figure has a baseline. */
#ifndef SEGIDX_BENCH_H
#define SEGIDX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "splitmix64.h"

/* ------------------------------------------------------------ failure */

/* A bench that measured something wrong must not print a figure: report to
 * stderr and exit non-zero so `make bench` (and CI) notices. */
static inline void bench_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: bench check failed: %s\n", file, line, what);
    exit(1);
}

#define BENCH_CHECK(cond)                                  \
    do {                                                   \
        if (!(cond))                                       \
            bench_fail(__FILE__, __LINE__, #cond);         \
    } while (0)

/* malloc that cannot return NULL: benches have no use for a partial run. */
static inline void *bench_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bench_fail(__FILE__, __LINE__, "out of memory");
    return p;
}

/* ------------------------------------------------------------ clock */

/* Monotonic nanoseconds: immune to wall-clock steps (NTP) during a run. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ PRNG */

/* splitmix64 (splitmix64.h): a seed names one workload everywhere. */
typedef struct bench_rng {
    uint64_t state;
} bench_rng;

static inline bench_rng bench_rng_seed(uint64_t seed)
{
    bench_rng r = { seed };
    return r;
}

static inline uint64_t bench_rng_next(bench_rng *r)
{
    return splitmix64(&r->state);
}

/* A value in [0, n) by multiply-shift (Lemire) on the high 32 bits. The
 * bias is below n / 2^32, far under anything a benchmark can see. */
static inline uint32_t bench_rng_below(bench_rng *r, uint32_t n)
{
    return (uint32_t)(((bench_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Fisher-Yates: shuffle v[0..n) in place. */
static inline void bench_rng_shuffle_u32(bench_rng *r, uint32_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = bench_rng_below(r, (uint32_t)i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* ------------------------------------------------------------ rounds */

/* The most rounds one measurement may take; keeps the median off the heap. */
#define BENCH_MAX_ROUNDS 63

/* One round of a measurement: do untimed setup, time the work, do untimed
 * teardown, and return the figure for this round (e.g. ns per op). */
typedef double (*bench_round_fn)(void *ctx);

/* The median of v[0..n) (n >= 1); sorts v. The median rather than the mean
 * or the minimum: on a shared 2-core machine a few rounds get preempted and
 * land far out, and the median ignores them without rewarding a lucky one. */
static inline double bench_median(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        double x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline int bench_clamp_rounds(int rounds)
{
    return rounds < 1 ? 1 : rounds > BENCH_MAX_ROUNDS ? BENCH_MAX_ROUNDS : rounds;
}

/* Run `fn` once to warm up (caches, the allocator's arenas, page faults),
 * then `rounds` times, and return the median figure. */
static inline double bench_median_of(bench_round_fn fn, void *ctx, int rounds)
{
    double v[BENCH_MAX_ROUNDS];
    int n = bench_clamp_rounds(rounds);
    (void)fn(ctx);
    for (int i = 0; i < n; i++)
        v[i] = fn(ctx);
    return bench_median(v, (size_t)n);
}

/* Measure ours and a baseline side by side: rounds alternate between the
 * two, and which goes first alternates too, so that a slow spell of the
 * machine (another tenant, frequency change) hits both sides alike instead
 * of whichever happened to run during it. Medians land in *ours_med and
 * *base_med. */
static inline void bench_median_pair(bench_round_fn ours, void *ours_ctx,
                                     bench_round_fn base, void *base_ctx, int rounds,
                                     double *ours_med, double *base_med)
{
    double o[BENCH_MAX_ROUNDS], b[BENCH_MAX_ROUNDS];
    int n = bench_clamp_rounds(rounds);
    (void)ours(ours_ctx);
    (void)base(base_ctx);
    for (int i = 0; i < n; i++) {
        if (i % 2) {
            b[i] = base(base_ctx);
            o[i] = ours(ours_ctx);
        } else {
            o[i] = ours(ours_ctx);
            b[i] = base(base_ctx);
        }
    }
    *ours_med = bench_median(o, (size_t)n);
    *base_med = bench_median(b, (size_t)n);
}

/* ------------------------------------------------------------ names */

/* A count as figure names write it: "1k", "10k", "1M", or the number. */
static inline void bench_count_name(char *out, size_t len, uint32_t n)
{
    if (n && n % 1000000 == 0)
        snprintf(out, len, "%uM", n / 1000000);
    else if (n && n % 1000 == 0)
        snprintf(out, len, "%uk", n / 1000);
    else
        snprintf(out, len, "%u", n);
}

/* ------------------------------------------------------------ printing */

/* Whether a bigger value is better: times are LOWER, throughputs HIGHER.
 * Zero is LOWER, so a figure that says nothing means a time. */
enum bench_better { BENCH_LOWER_IS_BETTER = 0, BENCH_HIGHER_IS_BETTER = 1 };

/* One figure. Use designated initializers; leave .baseline NULL when there
 * is nothing to compare with. */
struct bench_figure {
    const char *name;
    double value;
    const char *unit;            /* "ns/op", "MB/s", "B/page", ... */
    enum bench_better better;
    const char *baseline;        /* the baseline's name, or NULL */
    double baseline_value;       /* in the same unit as value */
};

/* The ratio is always OUR TIME / BASELINE TIME for the same work, so that
 * across every bench "lower is better" and 1.10 means "10% slower than the
 * baseline". For a time that is value / baseline_value; for a throughput
 * (work per second) the same quantity is baseline_value / value, i.e. our
 * time per unit of work over the baseline's. */
static inline double bench_time_ratio(const struct bench_figure *f)
{
    return f->better == BENCH_HIGHER_IS_BETTER ? f->baseline_value / f->value
                                               : f->value / f->baseline_value;
}

/* Print one figure as one line, in fixed columns. */
static inline void bench_print(const struct bench_figure *f)
{
    if (!f->baseline) {
        printf("%-34s %12.2f %s\n", f->name, f->value, f->unit);
    } else {
        printf("%-34s %12.2f %-6s  ratio %.2f vs %s (%.2f %s)\n", f->name, f->value,
               f->unit, bench_time_ratio(f), f->baseline, f->baseline_value, f->unit);
    }
    /* Flush per line: when a later figure crashes or fails its check, the
     * earlier ones are still on record. */
    fflush(stdout);
}

#endif /* SEGIDX_BENCH_H */
