/* The read_pages tests, over an LMDB volume index. */
#define READ_PAGES_OVER_LMDB 1
#include "test_read_pages.c"
