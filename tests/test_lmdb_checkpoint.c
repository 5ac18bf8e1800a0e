/* The checkpoint tests, over LMDB stores. */
#define CHECKPOINT_OVER_LMDB 1
#include "test_checkpoint.c"
