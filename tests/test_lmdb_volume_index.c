/* The volume index tests, over LMDB stores. */
#define VOLUME_INDEX_OVER_LMDB 1
#include "test_volume_index.c"
