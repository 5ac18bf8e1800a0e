/* The LMDB adapter: the conformance suite (tests/kvtest.h) on real
 * environments in a temporary directory, then what only a disk store has:
 * reopening, directories, a map that fills up, LMDB's own errors. */
#include "kvtest.h"

#include "segidx_lmdb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* mkdtemp'd by the group setup, removed with everything in it at the end. */
static char base[256];

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            for (struct dirent *e; (e = readdir(d));) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char sub[4096];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(base, sizeof base, "/tmp/segidx-kv-lmdb-XXXXXX");
    return mkdtemp(base) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    rm_rf(base);
    struct stat st;
    return stat(base, &st) == 0 ? -1 : 0; /* nothing left behind */
}

/* A path under the temporary directory. */
static const char *tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", base, name);
    return buf;
}

/* Each open is a fresh environment in a directory of its own. */
typedef struct lmdb_store {
    const char *label;
    const segidx_kv_lmdb_options *opts; /* NULL: the defaults (durable) */
    int opened;
} lmdb_store;

static int open_lmdb(void *ctx, segidx_kv *out)
{
    lmdb_store *s = ctx;
    char name[64], path[512];
    snprintf(name, sizeof name, "%s-%d", s->label, s->opened++);
    return segidx_kv_lmdb_open(tmp_path(path, sizeof path, name), s->opts, out);
}

static const segidx_kv_lmdb_options nosync_opts = { 0, true, 0, NULL };
static lmdb_store durable_ctx = { "durable", NULL, 0 };
static lmdb_store nosync_ctx = { "nosync", &nosync_opts, 0 };
static kvtest_store durable_store = { "lmdb", open_lmdb, &durable_ctx };
static kvtest_store nosync_store = { "lmdb-nosync", open_lmdb, &nosync_ctx };

static segidx_kv open_at(const char *path, const segidx_kv_lmdb_options *opts)
{
    segidx_kv kv = { NULL, NULL };
    assert_int_equal(segidx_kv_lmdb_open(path, opts, &kv), SEGIDX_OK);
    assert_non_null(kv.vt);
    return kv;
}

static void fill_model(segidx_kv kv, kvm *m, uint32_t from, uint32_t n)
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

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ------------------------------------------------------------ tests */

/* What was written before close is there after reopen: with the default
 * options, with nosync, and after deletes. */
static void test_reopen_sees_data(void **state)
{
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "reopen");
    kvm m = { 0 };
    segidx_kv kv = open_at(path, NULL);
    fill_model(kv, &m, 0, 300);
    kv.vt->close(kv.self);

    kv = open_at(path, NULL);
    kvtest_check_all(kv, &m);
    segidx_kv_op ops[] = { KVTEST_DEL("k\0\0\0\x07", 5), KVTEST_PUT("new", 3, "v", 1) };
    kvtest_write_ok(kv, &m, ops, 2);
    kv.vt->close(kv.self);

    kv = open_at(path, &nosync_opts); /* nosync: a process exit loses nothing */
    kvtest_check_all(kv, &m);
    fill_model(kv, &m, 1000, 50);
    kv.vt->close(kv.self);

    segidx_kv_lmdb_options defaults = { 0 };
    kv = open_at(path, &defaults);
    kvtest_check_all(kv, &m);
    kv.vt->close(kv.self);
    kvm_free(&m);
}

/* A path that does not exist yet is created, parents and all. */
static void test_creates_missing_directories(void **state)
{
    (void)state;
    char path[512], file[600];
    tmp_path(path, sizeof path, "a/b//c/");
    assert_false(exists(tmp_path(file, sizeof file, "a")));
    int err = -1;
    segidx_kv_lmdb_options opts = { 0 };
    opts.open_error = &err;
    segidx_kv kv = open_at(path, &opts);
    assert_int_equal(err, 0);
    snprintf(file, sizeof file, "%sdata.mdb", path);
    assert_true(exists(file));
    kvm m = { 0 };
    fill_model(kv, &m, 0, 3);
    kv.vt->close(kv.self);
    kv = open_at(tmp_path(path, sizeof path, "a/b/c"), NULL); /* the same store */
    kvtest_check_all(kv, &m);
    kv.vt->close(kv.self);
    kvm_free(&m);
}

/* A file where the directory should be: an error, the reason, no store. */
static void test_path_is_a_file(void **state)
{
    (void)state;
    char path[512], under[600];
    tmp_path(path, sizeof path, "plain-file");
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);

    int err = 0;
    segidx_kv_lmdb_options opts = { 0 };
    opts.open_error = &err;
    segidx_kv sentinel = { (const segidx_kv_vtable *)(uintptr_t)0x1, (void *)(uintptr_t)0x2 };
    segidx_kv kv = sentinel;
    assert_int_equal(segidx_kv_lmdb_open(path, &opts, &kv), SEGIDX_EIO);
    assert_int_equal(err, ENOTDIR);
    assert_non_null(strstr(segidx_kv_lmdb_strerror(err), "directory"));
    assert_ptr_equal(kv.vt, sentinel.vt);
    assert_ptr_equal(kv.self, sentinel.self);

    snprintf(under, sizeof under, "%s/below", path);
    err = 0;
    assert_int_equal(segidx_kv_lmdb_open(under, &opts, &kv), SEGIDX_EIO);
    assert_int_equal(err, ENOTDIR);
    assert_int_equal(segidx_kv_lmdb_open(under, NULL, &kv), SEGIDX_EIO);
    assert_ptr_equal(kv.self, sentinel.self);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char path[512];
    segidx_kv kv = { NULL, NULL };
    int err = -1;
    segidx_kv_lmdb_options opts = { 0 };
    opts.open_error = &err;
    assert_int_equal(segidx_kv_lmdb_open(NULL, &opts, &kv), SEGIDX_EINVAL);
    assert_int_equal(err, 0);
    assert_int_equal(segidx_kv_lmdb_open("", NULL, &kv), SEGIDX_EINVAL);
    assert_int_equal(segidx_kv_lmdb_open(tmp_path(path, sizeof path, "args"), NULL, NULL),
                     SEGIDX_EINVAL);
    assert_null(kv.vt);

    assert_null(segidx_kv_lmdb_last_error(NULL));
    segidx_kv mem;
    assert_int_equal(segidx_kv_mem_open(&mem), SEGIDX_OK);
    assert_null(segidx_kv_lmdb_last_error(&mem));
    mem.vt->close(mem.self);

    kv = open_at(path, &nosync_opts);
    assert_non_null(segidx_kv_lmdb_last_error(&kv)); /* nothing failed yet */
    kvtest_seen s = { { 0 }, -1, 0 };
    assert_int_equal(kv.vt->get(kv.self, "k", 1, NULL, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, NULL, NULL), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->scan(kv.self, NULL, 2, NULL, 0, false, kvtest_collect, &s),
                     SEGIDX_EINVAL);
    assert_int_equal(kv.vt->get(kv.self, "", 0, kvtest_collect, &s), SEGIDX_EINVAL);
    assert_int_equal(s.got.n, 0);
    kv.vt->close(kv.self);
    kv.vt->close(NULL); /* accepted */
}

/* Keys up to LMDB's limit go in; longer ones are refused up front; scan
 * bounds of any length work. */
static void test_long_keys_and_bounds(void **state)
{
    (void)state;
    char path[512];
    segidx_kv kv = open_at(tmp_path(path, sizeof path, "long"), &nosync_opts);
    enum { MAX = 511 }; /* a default LMDB build */
    uint8_t a[MAX + 100];
    memset(a, 'a', sizeof a);
    uint8_t ab[MAX];
    memset(ab, 'a', MAX);
    ab[MAX - 1] = 'b';
    kvm m = { 0 };
    segidx_kv_op ops[] = {
        KVTEST_PUT(a, MAX, "511", 3), KVTEST_PUT(a, MAX - 1, "510", 3),
        KVTEST_PUT(ab, MAX, "ab", 2), KVTEST_PUT("b", 1, "b", 1), KVTEST_PUT(a, 1, "1", 1),
    };
    kvtest_write_ok(kv, &m, ops, sizeof ops / sizeof *ops);
    segidx_kv_op too_long = KVTEST_PUT(a, MAX + 1, "x", 1);
    assert_int_equal(kv.vt->write(kv.self, &too_long, 1), SEGIDX_EINVAL);
    assert_int_equal(kv.vt->get(kv.self, a, MAX + 1, kvtest_collect, NULL), SEGIDX_EINVAL);
    kvtest_check_all(kv, &m);

    /* Bounds around, at and past the longest keys, both ways. */
    static const size_t lens[] = { 0, 1, MAX - 1, MAX, MAX + 1, MAX + 99 };
    uint8_t abx[MAX + 100];
    memcpy(abx, ab, MAX);
    memset(abx + MAX, 0, 100);
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
        for (size_t j = 0; j < sizeof lens / sizeof *lens; j++)
            for (int rev = 0; rev < 2; rev++) {
                kvtest_check_range(kv, &m, a, lens[i], a, lens[j], rev, -1);
                kvtest_check_range(kv, &m, a, lens[i], abx, lens[j], rev, -1);
                kvtest_check_range(kv, &m, abx, lens[i], NULL, 0, rev, -1);
                kvtest_check_range(kv, &m, NULL, 0, abx, lens[j], rev, -1);
            }
    kv.vt->close(kv.self);
    kvm_free(&m);
}

/* A tiny map fills up: SEGIDX_EFULL, LMDB's message, nothing of the failed
 * batch applied, and the store goes on working. */
static void test_map_full(void **state)
{
    (void)state;
    char path[512];
    segidx_kv_lmdb_options opts = { 0 };
    opts.map_size = 256 << 10;
    segidx_kv kv = open_at(tmp_path(path, sizeof path, "full"), &opts);
    kvm m = { 0 };
    uint8_t val[3][1000];
    memset(val, 0x33, sizeof val);
    int rc = SEGIDX_OK;
    uint32_t i;
    for (i = 0; i < 10000 && rc == SEGIDX_OK; i++) {
        uint8_t k[3][4];
        segidx_kv_op ops[3];
        for (int j = 0; j < 3; j++) {
            uint32_t x = 3 * i + (uint32_t)j;
            k[j][0] = (uint8_t)(x >> 24), k[j][1] = (uint8_t)(x >> 16);
            k[j][2] = (uint8_t)(x >> 8), k[j][3] = (uint8_t)x;
            val[j][0] = (uint8_t)x;
            ops[j] = KVTEST_PUT(k[j], 4, val[j], sizeof val[j]);
        }
        rc = kv.vt->write(kv.self, ops, 3);
        if (rc == SEGIDX_OK)
            kvm_apply(&m, ops, 3);
    }
    assert_int_equal(rc, SEGIDX_EFULL);
    assert_true(m.n > 30); /* it held something first */
    const char *msg = segidx_kv_lmdb_last_error(&kv);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "MDB_MAP_FULL"));
    print_message("map full after %zu keys: %s\n", m.n, msg);
    kvtest_check_all(kv, &m);

    /* Still usable: reads see exactly the model, and writes go on, each
     * one whole or not at all. Near a full map LMDB may refuse even a
     * delete (copy-on-write needs pages too, and freed ones are reused only
     * a transaction or two later), so either answer is fine, but some of
     * them go in. */
    int written = 0;
    for (size_t j = 0; j < 20; j++) {
        uint8_t key[4]; /* a copy: the model frees its keys as it deletes */
        memcpy(key, m.e[j].k, 4);
        segidx_kv_op ops[2] = { KVTEST_DEL(key, 4), KVTEST_PUT("small", 5, &j, 1) };
        rc = kv.vt->write(kv.self, ops, j % 2 + 1);
        if (rc == SEGIDX_OK) {
            kvm_apply(&m, ops, j % 2 + 1);
            written++;
        } else {
            assert_int_equal(rc, SEGIDX_EFULL);
        }
        kvtest_check_all(kv, &m);
    }
    assert_true(written > 0);
    /* The message stays until the next failure. */
    assert_non_null(strstr(segidx_kv_lmdb_last_error(&kv), "MDB_MAP_FULL"));
    kv.vt->close(kv.self);

    /* One batch bigger than the whole map, on an empty store: nothing. */
    kv = open_at(tmp_path(path, sizeof path, "full-once"), &opts);
    enum { BIG = 400 };
    segidx_kv_op *ops = malloc(BIG * sizeof *ops);
    uint8_t (*k)[2] = malloc(BIG * sizeof *k);
    assert_non_null(ops);
    assert_non_null(k);
    for (int j = 0; j < BIG; j++) {
        k[j][0] = (uint8_t)(j >> 8), k[j][1] = (uint8_t)j;
        ops[j] = KVTEST_PUT(k[j], 2, val[0], sizeof val[0]);
    }
    assert_int_equal(kv.vt->write(kv.self, ops, BIG), SEGIDX_EFULL);
    kvm empty = { 0 };
    kvtest_check_all(kv, &empty);
    kvtest_write_ok(kv, &empty, ops, 10);
    kvtest_check_all(kv, &empty);
    kvm_free(&empty);
    free(k);
    free(ops);
    kv.vt->close(kv.self);
    kvm_free(&m);
}

/* LMDB errors other than a full map come back as SEGIDX_EIO with their
 * message: here a reader table of one slot, and a callback that reads
 * again while the scan holds the slot. */
typedef struct nested_ctx {
    segidx_kv kv;
    int inner_rc;
} nested_ctx;

static int ignore(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)ctx, (void)key, (void)klen, (void)val, (void)vlen;
    return 0;
}

static int nested_get(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    nested_ctx *c = ctx;
    c->inner_rc = c->kv.vt->get(c->kv.self, key, klen, ignore, NULL);
    return 1;
}

static void test_lmdb_errors_are_eio(void **state)
{
    (void)state;
    char path[512];
    segidx_kv_lmdb_options opts = { 0 };
    opts.max_readers = 1;
    opts.nosync = true;
    segidx_kv kv = open_at(tmp_path(path, sizeof path, "readers"), &opts);
    kvm m = { 0 };
    fill_model(kv, &m, 0, 5);
    nested_ctx c = { kv, 0 };
    assert_int_equal(kv.vt->scan(kv.self, NULL, 0, NULL, 0, false, nested_get, &c), 1);
    assert_int_equal(c.inner_rc, SEGIDX_EIO);
    assert_non_null(strstr(segidx_kv_lmdb_last_error(&kv), "MDB_READERS_FULL"));
    kvtest_check_all(kv, &m); /* one reader at a time is fine */
    kv.vt->close(kv.self);
    kvm_free(&m);
}

/* ------------------------------------------------------------ processes */

static void yield_cpu(void)
{
    sched_yield();
}

/* A child's share of the counter test, with a store of its own: its exit
 * status says how it went (no cmocka in a child). */
static int cas_child(const char *path, long increments)
{
    segidx_kv kv;
    if (segidx_kv_lmdb_open(path, &nosync_opts, &kv) != SEGIDX_OK)
        return 2;
    long conflicts = 0;
    int rc = SEGIDX_OK;
    for (long i = 0; i < increments && rc == SEGIDX_OK; i++)
        rc = kvtest_cas_increment(kv, "counter", 7, yield_cpu, &conflicts);
    kv.vt->close(kv.self);
    return rc == SEGIDX_OK ? 0 : 3;
}

/* Processes, each with its own store on one directory, add to one counter
 * with compare-and-swap. The EXPECT is read inside the write transaction,
 * which LMDB gives to one process at a time, so no increment is lost and
 * none counted twice. */
static void test_cas_across_processes(void **state)
{
    (void)state;
    enum { CHILDREN = 3 };
    long per_process = test_scaled_threads(300), conflicts = 0;
    char path[512];
    tmp_path(path, sizeof path, "cas-processes");
    segidx_kv kv = open_at(path, &nosync_opts); /* created before anyone races to */
    kv.vt->close(kv.self);

    pid_t kids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0)
            _exit(cas_child(path, per_process));
    }
    kv = open_at(path, &nosync_opts);
    for (long i = 0; i < per_process; i++)
        assert_int_equal(kvtest_cas_increment(kv, "counter", 7, yield_cpu, &conflicts), 0);
    for (int i = 0; i < CHILDREN; i++) {
        int status;
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(kvtest_counter(kv, "counter", 7), (uint64_t)((CHILDREN + 1) * per_process));
    print_message("%d processes x %ld increments, %ld conflicts retried here\n", CHILDREN + 1,
                  per_process, conflicts);
    kv.vt->close(kv.self);
}

/* ------------------------------------------------------------ backups */

/* Batch i (from 1) puts key 'i' + i (big-endian) and sets "count" to i,
 * both to i: a consistent copy with "count" c holds exactly keys 1..c. */
static int write_numbered_batch(segidx_kv kv, uint32_t i)
{
    uint8_t k[5] = { 'i', (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
    uint64_t v = i;
    segidx_kv_op ops[2] = { KVTEST_PUT(k, 5, &v, 8), KVTEST_PUT("count", 5, &v, 8) };
    return kv.vt->write(kv.self, ops, 2);
}

typedef struct numbered_check {
    uint32_t seen;
    bool ok;
} numbered_check;

static int check_numbered(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    numbered_check *c = ctx;
    uint32_t i = ++c->seen;
    uint8_t want[5] = { 'i', (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                        (uint8_t)i };
    uint64_t v = 0;
    if (vlen == 8)
        memcpy(&v, val, 8);
    if (klen != 5 || memcmp(key, want, 5) != 0 || vlen != 8 || v != i)
        c->ok = false;
    return 0;
}

/* Opens the store in `dir` and checks that it holds batches 1..c for its
 * own count c, nothing torn and nothing missing: c. */
static uint64_t check_numbered_store(const char *dir)
{
    segidx_kv kv = open_at(dir, &nosync_opts);
    uint64_t count = 0;
    int rc = kv.vt->get(kv.self, "count", 5, kvtest_read_u64, &count);
    assert_true(rc == SEGIDX_OK || rc == SEGIDX_ENOTFOUND);
    numbered_check c = { 0, true };
    assert_int_equal(kv.vt->scan(kv.self, "i", 1, "j", 1, false, check_numbered, &c), 0);
    assert_true(c.ok);
    assert_int_equal(c.seen, count);
    kv.vt->close(kv.self);
    return count;
}

enum { BACKUPS = 8 };
/* A writer's bound, fewer under valgrind (SEGIDX_TEST_QUICK), where the
 * backups run slowly enough for a writer to reach it. */
#define WRITER_MAX_BATCHES ((uint32_t)test_scaled_threads(20000))

/* Takes BACKUPS backups of `path` into backup-<label>-<k> while a writer
 * runs, then checks each is a consistent prefix of the writer's batches,
 * the later ones no shorter. */
static void backups_during_writes(const char *path, const char *label, uint64_t *first,
                                  uint64_t *last)
{
    char dest[BACKUPS][512];
    for (int k = 0; k < BACKUPS; k++) {
        char name[64];
        snprintf(name, sizeof name, "backup-%s-%d", label, k);
        tmp_path(dest[k], sizeof dest[k], name);
        assert_int_equal(segidx_kv_lmdb_backup(path, dest[k]), SEGIDX_OK);
    }
    uint64_t prev = 0;
    for (int k = 0; k < BACKUPS; k++) {
        uint64_t c = check_numbered_store(dest[k]);
        assert_true(c >= 1 && c >= prev);
        prev = c;
        if (k == 0)
            *first = c;
    }
    *last = prev;
}

/* A child writes numbered batches until told to stop (or up to a bound);
 * it reports its first batch on `started`. */
static int numbered_writer_child(const char *path, int started, int stop)
{
    segidx_kv kv;
    if (segidx_kv_lmdb_open(path, &nosync_opts, &kv) != SEGIDX_OK)
        return 2;
    int rc = 0;
    for (uint32_t i = 1; i <= WRITER_MAX_BATCHES && rc == 0; i++) {
        if (write_numbered_batch(kv, i) != SEGIDX_OK)
            rc = 3;
        else if (i == 1 && write(started, "s", 1) != 1)
            rc = 4;
        char b;
        if (read(stop, &b, 1) == 1)
            break;
    }
    kv.vt->close(kv.self);
    return rc;
}

/* Backups taken while another process commits: each one opens and holds
 * a consistent prefix of the writer's batches. */
static void test_backup_while_another_process_writes(void **state)
{
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "backup-src-process");
    segidx_kv kv = open_at(path, &nosync_opts);
    kv.vt->close(kv.self);
    int started[2], stop[2];
    assert_int_equal(pipe(started), 0);
    assert_int_equal(pipe(stop), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(started[0]);
        close(stop[1]);
        if (fcntl(stop[0], F_SETFL, O_NONBLOCK) != 0)
            _exit(5);
        _exit(numbered_writer_child(path, started[1], stop[0]));
    }
    close(started[1]);
    close(stop[0]);
    char b;
    assert_int_equal(read(started[0], &b, 1), 1);
    uint64_t first = 0, last = 0;
    backups_during_writes(path, "process", &first, &last);
    /* The writer may have reached its bound and gone already (a slow,
     * loaded machine): then nobody reads the pipe, and that is fine. */
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);
    ssize_t told = write(stop[1], "x", 1);
    assert_true(told == 1 || errno == EPIPE);
    signal(SIGPIPE, was);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(started[0]);
    close(stop[1]);
    assert_true(check_numbered_store(path) >= last);
    print_message("backups while another process writes: %llu to %llu batches\n",
                  (unsigned long long)first, (unsigned long long)last);
}

/* Whether some other process holds a lock on byte 0 of `lockfile`: LMDB
 * holds a shared one there in every process that has the environment
 * open. Asked from a child, as a process never sees its own locks. */
static bool lmdb_lock_held(const char *lockfile)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(lockfile, O_RDWR);
        if (fd < 0)
            _exit(2);
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = 0;
        fl.l_len = 1;
        if (fcntl(fd, F_GETLK, &fl) != 0)
            _exit(2);
        _exit(fl.l_type == F_UNLCK ? 1 : 0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 2);
    return WEXITSTATUS(status) == 0;
}

/* The check above sees what it must: closing any descriptor of lock.mdb
 * in a process drops that process's LMDB locks (which is why a backup of
 * a store this process has open must not open the environment again). */
static void test_lock_check_sees_a_dropped_lock(void **state)
{
    (void)state;
    char path[512], lockfile[600];
    tmp_path(path, sizeof path, "lock-check");
    snprintf(lockfile, sizeof lockfile, "%s/lock.mdb", path);
    segidx_kv kv = open_at(path, &nosync_opts);
    assert_true(lmdb_lock_held(lockfile));
    int fd = open(lockfile, O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    assert_false(lmdb_lock_held(lockfile));
    kv.vt->close(kv.self);
}

#if KVTEST_THREADS
typedef struct numbered_writer {
    segidx_kv kv;
    int started, stop, rc;
} numbered_writer;

static void *numbered_writer_thread(void *arg)
{
    numbered_writer *w = arg;
    for (uint32_t i = 1; i <= WRITER_MAX_BATCHES && w->rc == 0; i++) {
        w->rc = write_numbered_batch(w->kv, i);
        if (i == 1)
            __atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
        if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE))
            break;
    }
    __atomic_store_n(&w->started, 1, __ATOMIC_RELEASE); /* also when it failed */
    return NULL;
}

/* Backups of a store this process has open, while a thread commits: they
 * go through the open environment (opening it again would drop this
 * process's LMDB locks, which the check after them would see), and each
 * holds a consistent prefix. */
static void test_backup_while_a_thread_writes(void **state)
{
    (void)state;
    char path[512], lockfile[600];
    tmp_path(path, sizeof path, "backup-src-thread");
    snprintf(lockfile, sizeof lockfile, "%s/lock.mdb", path);
    numbered_writer w = { open_at(path, &nosync_opts), 0, 0, 0 };
    assert_true(lmdb_lock_held(lockfile));
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, numbered_writer_thread, &w), 0);
    while (!__atomic_load_n(&w.started, __ATOMIC_ACQUIRE))
        sched_yield();
    uint64_t first = 0, last = 0;
    backups_during_writes(path, "thread", &first, &last);
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(tid, NULL), 0);
    assert_int_equal(w.rc, SEGIDX_OK);
    assert_true(lmdb_lock_held(lockfile));
    w.kv.vt->close(w.kv.self);
    assert_true(check_numbered_store(path) >= last);
    print_message("backups while a thread writes: %llu to %llu batches\n",
                  (unsigned long long)first, (unsigned long long)last);
}
#define BACKUP_THREAD_TESTS cmocka_unit_test(test_backup_while_a_thread_writes),
#else
#define BACKUP_THREAD_TESTS
#endif

/* The names in a directory other than . and .., or -1 if it is missing. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* What a backup refuses, leaving what it found as it was; and what it
 * makes is a store like any other. */
static void test_backup_refusals_and_edges(void **state)
{
    (void)state;
    char src[512], dest[512], other[512], file[600];
    tmp_path(src, sizeof src, "backup-edges-src");
    tmp_path(dest, sizeof dest, "backup-edges/a/b");
    assert_int_equal(segidx_kv_lmdb_backup(NULL, dest), SEGIDX_EINVAL);
    assert_int_equal(segidx_kv_lmdb_backup("", dest), SEGIDX_EINVAL);
    assert_int_equal(segidx_kv_lmdb_backup(src, NULL), SEGIDX_EINVAL);
    assert_int_equal(segidx_kv_lmdb_backup(src, ""), SEGIDX_EINVAL);
    /* No source: nothing made. */
    assert_int_equal(segidx_kv_lmdb_backup(src, dest), SEGIDX_EIO);
    assert_int_equal(dir_entries(tmp_path(other, sizeof other, "backup-edges")), -1);

    /* An empty store, into directories that do not exist yet. */
    segidx_kv kv = open_at(src, &nosync_opts);
    kv.vt->close(kv.self);
    assert_int_equal(segidx_kv_lmdb_backup(src, dest), SEGIDX_OK);
    assert_int_equal(dir_entries(dest), 1); /* data.mdb alone */
    assert_int_equal(check_numbered_store(dest), 0);

    /* Some batches; a dest that holds a store is refused, untouched. */
    kv = open_at(src, &nosync_opts);
    for (uint32_t i = 1; i <= 50; i++)
        assert_int_equal(write_numbered_batch(kv, i), SEGIDX_OK);
    kv.vt->close(kv.self);
    assert_int_equal(segidx_kv_lmdb_backup(src, dest), SEGIDX_EINVAL);
    assert_int_equal(check_numbered_store(dest), 0);
    assert_int_equal(segidx_kv_lmdb_backup(src, src), SEGIDX_EINVAL);

    /* A copy is a store: it reopens, takes writes, and is backed up in turn. */
    tmp_path(other, sizeof other, "backup-edges-copy");
    assert_int_equal(segidx_kv_lmdb_backup(src, other), SEGIDX_OK);
    kv = open_at(other, &nosync_opts);
    assert_int_equal(write_numbered_batch(kv, 51), SEGIDX_OK);
    kv.vt->close(kv.self);
    assert_int_equal(check_numbered_store(other), 51);
    assert_int_equal(check_numbered_store(src), 50);

    /* A source that is a file, or a directory with no store: EIO, and no
     * data.mdb nor a partial copy left in dest. */
    tmp_path(file, sizeof file, "backup-edges-file");
    int fd = open(file, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    tmp_path(dest, sizeof dest, "backup-edges-none");
    assert_int_equal(segidx_kv_lmdb_backup(file, dest), SEGIDX_EIO);
    char empty[512];
    tmp_path(empty, sizeof empty, "backup-edges-empty");
    assert_int_equal(mkdir(empty, 0777), 0);
    assert_int_equal(segidx_kv_lmdb_backup(empty, dest), SEGIDX_EIO);
    assert_int_equal(dir_entries(dest), 0);
    assert_int_equal(dir_entries(empty), 0); /* the source is never written */
    /* A dest that is a file. */
    assert_int_equal(segidx_kv_lmdb_backup(src, file), SEGIDX_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        KVTEST_SUITE(&nosync_store),
        /* The default, durable store: every batch is an fsync. */
        KVTEST_SUITE(&durable_store),
        cmocka_unit_test(test_reopen_sees_data),
        cmocka_unit_test(test_creates_missing_directories),
        cmocka_unit_test(test_path_is_a_file),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_long_keys_and_bounds),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test(test_lmdb_errors_are_eio),
        cmocka_unit_test(test_cas_across_processes),
        cmocka_unit_test(test_lock_check_sees_a_dropped_lock),
        cmocka_unit_test(test_backup_while_another_process_writes),
        BACKUP_THREAD_TESTS
        cmocka_unit_test(test_backup_refusals_and_edges),
    };
    return cmocka_run_group_tests_name("kv_lmdb", tests, group_setup, group_teardown);
}
