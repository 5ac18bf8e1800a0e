/* segidx kvcheck: the KV conformance suite (segidx_kv_conformance) over
 * the bundled stores, so that a host can see what the suite checks, and
 * that the stores it would put the catalog on keep every rule. */
#include "cli.h"

#include <segidx_kvcheck.h>
#include <segidx_lmdb.h>

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

static int run_kvcheck(const cli_command *cmd, int argc, char **argv)
{
    cli_opt opts[] = { { "store", true, false, NULL },
                       { "lmdb", true, false, NULL },
                       { "json", false, false, NULL } };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 3, &a);
    if (rc)
        return rc;
    const char *which = opts[0].seen ? opts[0].value : "all";
    bool mem = !strcmp(which, "mem") || !strcmp(which, "all");
    bool lmdb = !strcmp(which, "lmdb") || !strcmp(which, "all");
    if (!mem && !lmdb)
        return cli_usage_error(cmd, "unknown store: %s (mem, lmdb or all)", which);
    kvcheck_run r = { NULL, opts[2].seen, true, 0 };
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
    if (r.json)
        puts("\n]");
    return worst;
}

const cli_command cli_cmd_kvcheck = {
    "kvcheck", "no arguments", 0, 0,
    "the KV conformance suite over the bundled stores",
    "usage: segidx kvcheck [--store=mem|lmdb|all] [--lmdb DIR] [--json]\n"
    "Runs the KV conformance suite (segidx_kv_conformance in segidx_kvcheck.h:\n"
    "key order, scan bounds, get, visit returns, batch rules and atomicity,\n"
    "SEGIDX_KV_EXPECT alone and raced by threads, one snapshot per scan,\n"
    "concurrent writers and scanners) over the in-memory store and an LMDB\n"
    "store, one line per rule: store, rule, holds/BROKEN/skipped, what was\n"
    "checked or seen. Exit 1 when a rule is broken. A host runs the same\n"
    "suite over its own store with the library call.\n"
    "  --store=NAME         mem, lmdb or all (the default)\n"
    "  --lmdb DIR           the LMDB store in DIR, which must hold no keys\n"
    "                       (default: a scratch directory, removed afterwards)\n"
    "  --json               one JSON array of {store, rule, status, detail}\n",
    run_kvcheck,
};
