/* The threaded volume index stress, over LMDB stores. */
#define VI_STRESS_OVER_LMDB 1
#include "test_vi_stress.c"
