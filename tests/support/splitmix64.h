/* splitmix64: the one seedable generator of the tests, benchmarks, fuzz
 * targets and the demo. Tiny, fast, and the same sequence on every
 * platform and libc (unlike rand()), so a seed names one input everywhere
 * and a failure replays from its printed seed. Header-only. */
#ifndef SEGIDX_SPLITMIX64_H
#define SEGIDX_SPLITMIX64_H

#include <stdint.h>

/* The next value of the sequence `*state` is at; moves it on. */
static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
