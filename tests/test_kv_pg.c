/* The PostgreSQL store: the conformance suite (tests/kvtest.h) against a
 * real server started for this binary (tests/pgserver.h), a fresh table
 * per store, then what only a server store has: reopening, tables made
 * or found, the server going away and coming back, bad arguments, keys
 * the server cannot index, a forked child. */
#include "kvtest.h"

#include "pgserver.h"
#include "segidx_pg.h"

#include <libpq-fe.h>

/* ------------------------------------------------------------ helpers */

static int open_fresh(void *ctx, segidx_kv *out)
{
    (void)ctx;
    char table[64];
    segidx_kv_pg_options o = { 0 };
    o.table = pgserver_table(table, sizeof table, "conf");
    return segidx_kv_pg_open(pgserver_conninfo(), &o, out);
}

static kvtest_store pg_store = { "pg", open_fresh, NULL };

static segidx_kv open_table(const char *table)
{
    segidx_kv kv = { NULL, NULL };
    segidx_kv_pg_options o = { 0 };
    o.table = table;
    char err[256];
    o.open_error = err;
    o.open_error_cap = sizeof err;
    int rc = segidx_kv_pg_open(pgserver_conninfo(), &o, &kv);
    if (rc)
        fail_msg("open %s: %s (%s)", table, segidx_strerror(rc), err);
    return kv;
}

/* One SQL statement through libpq directly: for tables a store did not make. */
static void sql(const char *text)
{
    PGconn *c = PQconnectdb(pgserver_conninfo());
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, text);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", text, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static void fill(segidx_kv kv, kvm *m, uint32_t from, uint32_t n)
{
    for (uint32_t i = from; i < from + n; i++) {
        uint8_t k[5] = { 'k', (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                         (uint8_t)i };
        uint8_t v[40];
        for (size_t j = 0; j < sizeof v; j++)
            v[j] = (uint8_t)(i + j);
        segidx_kv_op op = KVTEST_PUT(k, 5, v, i % sizeof v);
        kvtest_write_ok(kv, m, &op, 1);
    }
}

static int count_visit(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    ++*(size_t *)ctx;
    return 0;
}

/* ------------------------------------------------------------ tests */

/* What was written is there for a store opened later on the same table,
 * and for two stores open on it at once. */
static void test_reopen_sees_data(void **state)
{
    (void)state;
    char table[64];
    pgserver_table(table, sizeof table, "reopen");
    kvm m = { 0 };
    segidx_kv kv = open_table(table);
    fill(kv, &m, 0, 300);
    segidx_kv_op ops[] = { KVTEST_DEL("k\0\0\0\x05", 5), KVTEST_PUT("zz", 2, "", 0) };
    kvtest_write_ok(kv, &m, ops, 2);
    kvtest_close(kv);

    kv = open_table(table);
    kvtest_check_all(kv, &m);
    segidx_kv other = open_table(table);
    fill(other, &m, 1000, 10);
    kvtest_check_all(kv, &m);
    kvtest_close(other);
    kvtest_close(kv);
    kvm_free(&m);
}

/* A missing table is made (or, with no_create, ENOTFOUND); an existing one
 * is used as it is, also when made by hand; one of another shape is
 * refused. */
static void test_tables_made_and_found(void **state)
{
    (void)state;
    char table[64], msg[256];
    pgserver_table(table, sizeof table, "made");
    segidx_kv kv = { NULL, NULL };
    segidx_kv_pg_options o = { 0 };
    o.table = table;
    o.no_create = true;
    o.open_error = msg;
    o.open_error_cap = sizeof msg;
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_ENOTFOUND);
    assert_null(kv.vt);
    assert_non_null(strstr(msg, "42P01"));

    kvm m = { 0 };
    kv = open_table(table); /* made */
    fill(kv, &m, 0, 20);
    kvtest_close(kv);
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_OK);
    assert_string_equal(msg, "");
    kvtest_check_all(kv, &m);
    kvtest_close(kv);

    /* Made by hand, in a schema of its own, with rows already in it. */
    sql("CREATE SCHEMA IF NOT EXISTS hand");
    sql("CREATE TABLE hand.kv (k bytea PRIMARY KEY, v bytea NOT NULL)");
    sql("INSERT INTO hand.kv VALUES ('\\x0001'::bytea, '\\xff'::bytea)");
    o.table = "hand.kv";
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_OK);
    kvm hand = { 0 };
    kvm_put(&hand, "\x00\x01", 2, "\xff", 1);
    kvtest_check_all(kv, &hand);
    kvm_free(&hand);
    kvtest_close(kv);

    /* Another shape: refused, whether or not it may create. */
    sql("CREATE TABLE wrong_shape (k text PRIMARY KEY, v bytea)");
    o.table = "wrong_shape";
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_EINVAL);
    o.no_create = false;
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_EINVAL);
    assert_non_null(strstr(msg, "bytea"));
    sql("CREATE TABLE wrong_names (key bytea PRIMARY KEY, val bytea)");
    o.table = "wrong_names";
    kv = (segidx_kv){ NULL, NULL };
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_EINVAL);
    assert_null(kv.vt);

    /* The default table. */
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), NULL, &kv), SEGIDX_OK);
    kvtest_close(kv);
    kvm_free(&m);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    segidx_kv kv = { NULL, NULL };
    segidx_kv_pg_options o = { 0 };
    assert_int_equal(segidx_kv_pg_open(NULL, NULL, &kv), SEGIDX_EINVAL);
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), NULL, NULL), SEGIDX_EINVAL);
    const char *bad[] = { "", "Upper", "1abc", "a-b", "a.b.c", ".a", "a.", "a b", "a;drop",
                          "t\"x", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.table = bad[i];
        assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_EINVAL);
    }
    assert_null(kv.vt);

    /* Nobody listening: EIO, and the message says why. */
    char msg[512];
    o.table = NULL;
    o.open_error = msg;
    o.open_error_cap = sizeof msg;
    int port = pgserver_free_port();
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d connect_timeout=5 sslmode=disable",
             port);
    assert_int_equal(segidx_kv_pg_open(conninfo, &o, &kv), SEGIDX_EIO);
    assert_true(strlen(msg) > 0);
    assert_int_equal(segidx_kv_pg_open("not a conninfo", &o, &kv), SEGIDX_EIO);
    assert_true(strlen(msg) > 0);
    o.open_error_cap = 4; /* cut, still terminated */
    assert_int_equal(segidx_kv_pg_open(conninfo, &o, &kv), SEGIDX_EIO);
    assert_int_equal(strlen(msg), 3);
    assert_null(kv.vt);

    /* last_error of what is not a PostgreSQL store. */
    char buf[16] = "x";
    assert_int_equal(segidx_kv_pg_last_error(NULL, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    segidx_kv mem;
    assert_int_equal(segidx_kv_mem_open(&mem), SEGIDX_OK);
    assert_int_equal(segidx_kv_pg_last_error(&mem, buf, sizeof buf), 0);
    mem.vt->close(mem.self);

    /* Methods: the argument rules before anything is sent. */
    char table[64];
    kv = open_table(pgserver_table(table, sizeof table, "args"));
    assert_int_equal(kv.vt->get(kv.self, "", 0, count_visit, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->get(kv.self, NULL, 1, count_visit, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->get(kv.self, "a", 1, NULL, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 1, NULL, 0, false, count_visit, NULL),
                     SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 1, false, count_visit, NULL),
                     SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, NULL, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->write(kv.self, NULL, 1), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->write(kv.self, NULL, 0), SEGIDX_OK);
    assert_int_equal(segidx_kv_pg_last_error(&kv, buf, sizeof buf), 0); /* none of that failed on the server */
    kvtest_close(kv);
}

/* A key too long for the server's index: EINVAL, nothing of its batch
 * applied, and the message names the limit's class. */
static void test_key_too_long(void **state)
{
    (void)state;
    char table[64];
    segidx_kv kv = open_table(pgserver_table(table, sizeof table, "long"));
    kvm m = { 0 };
    fill(kv, &m, 0, 3);
    enum { LONG = 9000 };
    uint8_t *key = malloc(LONG);
    assert_non_null(key);
    test_rng r = { 42 };
    for (size_t i = 0; i < LONG; i++)
        key[i] = (uint8_t)rng_next(&r); /* incompressible */
    segidx_kv_op ops[] = { KVTEST_PUT("a", 1, "b", 1), KVTEST_PUT(key, LONG, "v", 1) };
    assert_int_equal(kv.vt->write(kv.self, ops, 2), SEGIDX_EINVAL);
    char msg[256];
    assert_true(segidx_kv_pg_last_error(&kv, msg, sizeof msg) > 0);
    assert_int_equal(strncmp(msg, "54", 2), 0);
    kvtest_check_all(kv, &m);
    /* Bounds that long are fine. */
    size_t seen = 0;
    assert_int_equal(kv.vt->scan(kv.self, key, LONG, NULL, 0, false, count_visit, &seen),
                     SEGIDX_OK);
    assert_int_equal(kv.vt->get(kv.self, key, LONG, count_visit, &seen), SEGIDX_ENOTFOUND);
    free(key);
    kvm_free(&m);
    kvtest_close(kv);
}

static int get_from_callback(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)v, (void)vl;
    segidx_kv *kv = ctx;
    segidx_kv_op op = KVTEST_PUT("x", 1, "y", 1);
    assert_int_equal(kv->vt->get(kv->self, k, kl, count_visit, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv->vt->write(kv->self, &op, 1), SEGIDX_EINVAL);
    assert_int_equal(kv->vt->scan(kv->self, NULL, 0, NULL, 0, false, count_visit, NULL),
                     SEGIDX_EINVAL);
    return 7;
}

/* A store's own callback calling it: EINVAL, never a wait for a connection. */
static void test_call_from_callback(void **state)
{
    (void)state;
    char table[64];
    segidx_kv_pg_options o = { 0 };
    o.table = pgserver_table(table, sizeof table, "reenter");
    o.max_connections = 1;
    segidx_kv kv;
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_OK);
    kvm m = { 0 };
    fill(kv, &m, 0, 3);
    assert_int_equal(kv.vt->get(kv.self, m.e[0].k, m.e[0].klen, get_from_callback, &kv), 7);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, true, get_from_callback, &kv), 7);
    kvtest_check_all(kv, &m);
    kvm_free(&m);
    kvtest_close(kv);
}

/* A forked child may not use its parent's store (EINVAL), and closing it
 * there leaves the parent's connections alone. */
static void test_forked_child(void **state)
{
    (void)state;
    char table[64];
    segidx_kv kv = open_table(pgserver_table(table, sizeof table, "fork"));
    kvm m = { 0 };
    fill(kv, &m, 0, 5);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        size_t seen = 0;
        segidx_kv_op op = KVTEST_PUT("c", 1, "c", 1);
        int bad = kv.vt->get(kv.self, "k", 1, count_visit, &seen) != SEGIDX_EINVAL ||
                  kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, count_visit, &seen) !=
                      SEGIDX_EINVAL ||
                  kv.vt->write(kv.self, &op, 1) != SEGIDX_EINVAL;
        kv.vt->close(kv.self);
        /* Its own store works. */
        segidx_kv mine;
        segidx_kv_pg_options o = { 0 };
        o.table = table;
        bad |= segidx_kv_pg_open(pgserver_conninfo(), &o, &mine) != SEGIDX_OK ||
               mine.vt->write(mine.self, &op, 1) != SEGIDX_OK;
        if (!bad)
            mine.vt->close(mine.self);
        kvm_free(&m);
        _exit(bad);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    kvm_put(&m, "c", 1, "c", 1);
    kvtest_check_all(kv, &m); /* the parent's connections still work */
    kvm_free(&m);
    kvtest_close(kv);
}

/* The server stops under an open store and starts again: while it is
 * down every call is EIO (no crash, no hang); afterwards calls connect
 * again and every acknowledged write is there, no refused one. */
static void test_server_restart(void **state)
{
    (void)state;
    char table[64];
    segidx_kv_pg_options o = { 0 };
    o.table = pgserver_table(table, sizeof table, "restart");
    o.max_connections = 3;
    segidx_kv kv;
    assert_int_equal(segidx_kv_pg_open(pgserver_conninfo(), &o, &kv), SEGIDX_OK);
    kvm m = { 0 };
    fill(kv, &m, 0, 50);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(pgserver_ctl_stop(&pgserver_the, round == 1), 0);
        size_t seen = 0;
        segidx_kv_op op = KVTEST_PUT("down", 4, "x", 1);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(kv.vt->get(kv.self, "k", 1, count_visit, &seen), SEGIDX_EIO);
            assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, i % 2, count_visit, &seen),
                             SEGIDX_EIO);
            assert_int_equal(kv.vt->write(kv.self, &op, 1), SEGIDX_EIO);
        }
        assert_int_equal(seen, 0);
        char msg[256];
        assert_true(segidx_kv_pg_last_error(&kv, msg, sizeof msg) > 0);
        assert_int_equal(pgserver_ctl_start(&pgserver_the), 0);
        /* Back: the first calls connect again. */
        fill(kv, &m, 100 + 10 * (uint32_t)round, 10);
        kvtest_check_all(kv, &m);
    }
    /* A store opened while the server was up and idle across a restart
     * finds out at its next call, not with a wrong answer. */
    segidx_kv idle = open_table(table);
    kvtest_check_all(idle, &m);
    assert_int_equal(pgserver_ctl_stop(&pgserver_the, false), 0);
    assert_int_equal(pgserver_ctl_start(&pgserver_the), 0);
    kvtest_check_all(idle, &m);
    kvtest_close(idle);
    kvtest_close(kv);
    kvm_free(&m);
}

int main(void)
{
    int code;
    if (!pgserver_main_start(&code))
        return code;
    const struct CMUnitTest tests[] = {
        KVTEST_SUITE(&pg_store),
        cmocka_unit_test(test_reopen_sees_data),
        cmocka_unit_test(test_tables_made_and_found),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_key_too_long),
        cmocka_unit_test(test_call_from_callback),
        cmocka_unit_test(test_forked_child),
        cmocka_unit_test(test_server_restart),
    };
    int rc = cmocka_run_group_tests_name("kv over postgresql", tests, NULL, NULL);
    pgserver_stop(&pgserver_the);
    return rc;
}
