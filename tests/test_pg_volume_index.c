/* The volume index tests, over PostgreSQL stores on a server of their own. */
#define VOLUME_INDEX_OVER_PG 1
#include "test_volume_index.c"
