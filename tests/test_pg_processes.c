/* Processes sharing one volume index over one PostgreSQL table: the tests
 * of test_lmdb_processes.c, each child with a store of its own. */
#define PROCESSES_OVER_PG 1
#include "test_lmdb_processes.c"
