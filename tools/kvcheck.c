/* segidx kvcheck: the KV conformance suite (segidx_kv_conformance) over
 * the bundled stores (in memory, LMDB, PostgreSQL), so that a host can see
 * what the suite checks, and that the store it would put the catalog on
 * keeps every rule. */
#include "cli.h"

#include <segidx_kvcheck.h>
#include <segidx_lmdb.h>
#include <segidx_pg.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct kvcheck_run {
    const char *store;
    bool json, first_line;
    int broken;
} kvcheck_run;

static void report(void *ctx, const char *rule, int status, const char *detail)
{
    kvcheck_run *r = ctx;
    const char *word = status == SEGIDX_KV_RULE_HOLDS    ? "holds"
                       : status == SEGIDX_KV_RULE_BROKEN ? "BROKEN"
                                                         : "skipped";
    r->broken += status == SEGIDX_KV_RULE_BROKEN;
    if (!r->json) {
        printf("%-6s %-13s %-7s %s\n", r->store, rule, word, detail);
        fflush(stdout);
        return;
    }
    printf("%s\n  {\"store\": ", r->first_line ? "" : ",");
    r->first_line = false;
    cli_json_string(r->store);
    printf(", \"rule\": ");
    cli_json_string(rule);
    printf(", \"status\": ");
    cli_json_string(word);
    printf(", \"detail\": ");
    cli_json_string(detail);
    putchar('}');
}

/* Run the suite over `kv` and close it. */
static int check_store(kvcheck_run *r, const char *name, segidx_kv kv)
{
    r->store = name;
    int rc = segidx_kv_conformance(kv, report, r);
    kv.vt->close(kv.self);
    if (rc && !r->broken) /* refused before any rule (a store in use) */
        return cli_fail(name, rc);
    return rc ? CLI_FAIL : CLI_OK;
}

static int check_lmdb(kvcheck_run *r, const char *dir)
{
    char scratch[4096];
    if (!dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/segidx-kvcheck-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch))
            return cli_fail_errno("a scratch directory for LMDB", SEGIDX_EIO, errno);
    }
    segidx_kv_lmdb_options o = { 0 };
    o.nosync = !dir; /* a scratch store: durability is not what is checked */
    segidx_kv kv;
    int rc = segidx_kv_lmdb_open(dir ? dir : scratch, &o, &kv);
    if (rc)
        rc = cli_fail(dir ? dir : scratch, rc);
    else
        rc = check_store(r, "lmdb", kv);
    if (!dir) {
        char path[4200];
        snprintf(path, sizeof path, "%s/data.mdb", scratch);
        unlink(path);
        snprintf(path, sizeof path, "%s/lock.mdb", scratch);
        unlink(path);
        rmdir(scratch);
    }
    return rc;
}

static int check_pg(const cli_command *cmd, kvcheck_run *r, const char *conninfo,
                    const char *table)
{
    char why[512];
    segidx_kv_pg_options o = { 0 };
    o.table = table;
    o.open_error = why;
    o.open_error_cap = sizeof why;
    segidx_kv kv;
    int rc = segidx_kv_pg_open(conninfo, &o, &kv);
    if (rc) {
        /* libpq's messages run over lines: one line here. */
        for (char *c = why; *c; c++)
            if (*c == '\n' || *c == '\t')
                *c = c[1] ? ' ' : '\0';
        if (rc == SEGIDX_EINVAL) /* the table name */
            return cli_usage_error(cmd, "%s", why);
        fprintf(stderr, "segidx: PostgreSQL store: %s: %s\n", segidx_strerror(rc), why);
        return CLI_FAIL;
    }
    return check_store(r, "pg", kv);
}

static int run_kvcheck(const cli_command *cmd, int argc, char **argv)
{
    cli_opt opts[] = { { "store", true, false, NULL },    { "lmdb", true, false, NULL },
                       { "pg", true, false, NULL },       { "pg-table", true, false, NULL },
                       { "json", false, false, NULL } };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 5, &a);
    if (rc)
        return rc;
    const char *which = opts[0].seen ? opts[0].value : "all";
    bool all = !strcmp(which, "all");
    bool mem = all || !strcmp(which, "mem");
    bool lmdb = all || !strcmp(which, "lmdb");
    bool pg = (all && opts[2].seen) || !strcmp(which, "pg");
    if (!mem && !lmdb && !pg)
        return cli_usage_error(cmd, "unknown store: %s (mem, lmdb, pg or all)", which);
    if (pg && !opts[2].seen)
        return cli_usage_error(cmd, "--store=pg needs --pg CONNINFO");
    kvcheck_run r = { NULL, opts[4].seen, true, 0 };
    if (r.json)
        putchar('[');
    int worst = CLI_OK;
    if (mem) {
        segidx_kv kv;
        if ((rc = segidx_kv_mem_open(&kv)) != 0)
            rc = cli_fail("the in-memory store", rc);
        else
            rc = check_store(&r, "mem", kv);
        worst = rc > worst ? rc : worst;
    }
    if (lmdb) {
        rc = check_lmdb(&r, opts[1].value);
        worst = rc > worst ? rc : worst;
    }
    if (pg) {
        rc = check_pg(cmd, &r, opts[2].value, opts[3].value ? opts[3].value : "segidx_kvcheck");
        worst = rc > worst ? rc : worst;
    }
    if (r.json)
        puts("\n]");
    return worst;
}

const cli_command cli_cmd_kvcheck = {
    "kvcheck", "no arguments", 0, 0,
    "the KV conformance suite over the bundled stores",
    "usage: segidx kvcheck [--store=mem|lmdb|pg|all] [--lmdb DIR] [--pg CONNINFO]\n"
    "                      [--pg-table NAME] [--json]\n"
    "Runs the KV conformance suite (segidx_kv_conformance in segidx_kvcheck.h:\n"
    "key order, scan bounds, get, visit returns, batch rules and atomicity,\n"
    "SEGIDX_KV_EXPECT alone and raced by threads, one snapshot per scan,\n"
    "concurrent writers and scanners) over the bundled stores: in memory,\n"
    "LMDB, and PostgreSQL when --pg is given; one line per rule: store, rule,\n"
    "holds/BROKEN/skipped, what was checked or seen. Exit 1 when a rule is\n"
    "broken. A host runs the same suite over its own store with the library\n"
    "call.\n"
    "  --store=NAME         mem, lmdb, pg or all (the default: mem, lmdb, and pg\n"
    "                       when --pg is given)\n"
    "  --lmdb DIR           the LMDB store in DIR, which must hold no keys\n"
    "                       (default: a scratch directory, removed afterwards)\n"
    "  --pg CONNINFO        a PostgreSQL-protocol server (libpq's conninfo)\n"
    "  --pg-table NAME      its table, created if missing, which must hold no\n"
    "                       keys and is left empty (default segidx_kvcheck)\n"
    "  --json               one JSON array of {store, rule, status, detail}\n",
    run_kvcheck,
};
