/* Shared by the unit tests: cmocka, a seeded PRNG, a growable byte buffer. */
#ifndef SEGIDX_TESTUTIL_H
#define SEGIDX_TESTUTIL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "segidx.h"
#include "splitmix64.h"

/* Mark bytes unreadable for ASan (no-ops in other builds): lets a test
 * place an input at the end of one big buffer and still have every read
 * before it caught, instead of allocating a fresh buffer per input. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define test_poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define test_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define test_poison(p, n) ((void)(p), (void)(n))
#define test_unpoison(p, n) ((void)(p), (void)(n))
#endif

/* SEGIDX_TEST_QUICK=1 (set by `make valgrind`) divides the heaviest loops
 * (thread rounds, random rounds, byte-by-byte damage) by ten or so: under
 * valgrind every instruction costs fifty and threads run one at a time.
 * SEGIDX_TEST_QUICK=models (set by `make tsan`) divides only the loops that
 * run on one thread (random models, damage sweeps): ThreadSanitizer finds
 * races only where threads meet, so the rounds where they meet
 * (test_scaled_threads) stay whole. The cases themselves stay the same;
 * only their repetitions shrink. */
static inline bool test_quick(void)
{
    const char *q = getenv("SEGIDX_TEST_QUICK");
    return q && *q && *q != '0';
}

static inline bool test_quick_threads(void)
{
    return test_quick() && strcmp(getenv("SEGIDX_TEST_QUICK"), "models") != 0;
}

/* Repetitions on one thread. */
static inline long test_scaled(long n)
{
    return test_quick() ? (n + 9) / 10 : n;
}

/* Rounds in which threads or processes meet. */
static inline long test_scaled_threads(long n)
{
    return test_quick_threads() ? (n + 9) / 10 : n;
}

/* Each test seeds its own generator so that a failure replays from the
 * printed seed. */
typedef struct test_rng { uint64_t s; } test_rng;

static inline uint64_t rng_next(test_rng *r)
{
    return splitmix64(&r->s);
}

/* Uniform in [0, n); n > 0. The modulo bias is irrelevant for tests. */
static inline uint64_t rng_below(test_rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* An append-only byte buffer for hand-made encodings, little-endian. */
typedef struct test_bytes {
    uint8_t *p;
    size_t len, cap;
} test_bytes;

static inline void bytes_put(test_bytes *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static inline void bytes_u16(test_bytes *b, uint16_t v)
{
    uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    bytes_put(b, x, 2);
}

static inline void bytes_u32(test_bytes *b, uint32_t v)
{
    bytes_u16(b, (uint16_t)v);
    bytes_u16(b, (uint16_t)(v >> 16));
}

static inline void bytes_u64(test_bytes *b, uint64_t v)
{
    bytes_u32(b, (uint32_t)v);
    bytes_u32(b, (uint32_t)(v >> 32));
}

static inline void bytes_free(test_bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

#endif
