/**
 * @file segidx_kvcheck.h
 * @brief The KV conformance suite: checks a host's segidx_kv against every
 *        rule the volume index relies on, part of libsegidx.
 *
 * A host that puts the catalog on a store of its own (RocksDB,
 * FoundationDB, TiKV, a service of its own) runs this once in its own
 * tests, against a fresh empty store:
 *
 *     static void show(void *ctx, const char *rule, int status, const char *detail)
 *     {
 *         printf("%-14s %s %s\n", rule, status == SEGIDX_KV_RULE_BROKEN ? "BROKEN" : "ok", detail);
 *     }
 *     int rc = segidx_kv_conformance(my_store, show, NULL);  // SEGIDX_OK: every rule holds
 *
 * The bundled stores (in-memory, LMDB, PostgreSQL) pass it in the
 * library's own tests; `segidx kvcheck` runs it over them.
 *
 * The rules, in the order they run (the names `report` receives):
 * - `order`: keys come back in memcmp order, a key before every longer
 *   key it prefixes, with 0x00 and 0xff bytes anywhere; keys and values
 *   (empty, and up to 100 KB) come back byte for byte.
 * - `bounds`: a scan visits exactly the keys in [lo, hi), ascending, and
 *   descending when `reverse`; an empty bound is no bound; lo >= hi visits
 *   nothing; bounds that are, prefix or extend stored keys.
 * - `get`: a present key calls the visit function exactly once with its
 *   value and returns what it returned (also when non-zero); an absent key
 *   returns #SEGIDX_ENOTFOUND without calling it.
 * - `visit-return`: a scan stops at the visit function's first non-zero
 *   return and returns that value (positive or negative), both ways.
 * - `later-wins`: in one batch, later operations on a key win; deleting a
 *   missing key is no error; an empty batch changes nothing.
 * - `invalid-batch`: a batch with one bad operation anywhere (an empty
 *   key, an unknown op code, NULL with a non-zero length) is refused whole
 *   with #SEGIDX_EINVAL, also after 2,000 good operations: atomicity.
 * - `random`: random batches against a brute-force model, with gets and
 *   scans over random bounds, some stopped early.
 * - `expect`: #SEGIDX_KV_EXPECT case by case: a match lets the batch in,
 *   every way of not matching (another value, a byte more or less, empty
 *   against absent) is #SEGIDX_ECONFLICT with nothing applied, and every
 *   EXPECT sees the store as it was before its batch.
 * - `expect-random`: random batches with EXPECTs, some a byte or a
 *   presence wrong, against the model.
 * - `expect-race`: threads add to one counter by compare-and-swap (no
 *   increment lost or counted twice), then race to create the same keys
 *   with an EXPECT of absence (exactly one wins each key).
 * - `snapshot`: a write lands while a scan's visit function waits; the
 *   scan sees the store wholly as it was before it, or (a store that holds
 *   writers back during a scan) the write waits for the scan.
 * - `concurrent`: writers and scanners at once; no scan sees part of a
 *   batch or goes back in time, and the store ends exactly as written.
 *
 * A version-1 store (no #SEGIDX_KV_EXPECT) skips the three EXPECT rules;
 * a single-threaded build skips the three threaded ones. What the suite
 * cannot check from one process: that an EXPECT holds across processes
 * (the store's transaction must span them) and that writes are durable.
 */
#ifndef SEGIDX_KVCHECK_H
#define SEGIDX_KVCHECK_H

#include "segidx.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A rule's outcome, as segidx_kv_report_fn() receives it. */
#define SEGIDX_KV_RULE_HOLDS 0   /**< the store keeps the rule */
#define SEGIDX_KV_RULE_BROKEN 1  /**< the store breaks it (`detail` says how) */
#define SEGIDX_KV_RULE_SKIPPED 2 /**< not checked: a version-1 store or a single-threaded build */

/**
 * @brief Receives each rule's outcome once, when the rule is done.
 * @param rule   the rule's name (a static string: see the list above).
 * @param status #SEGIDX_KV_RULE_HOLDS, #SEGIDX_KV_RULE_BROKEN or
 *               #SEGIDX_KV_RULE_SKIPPED.
 * @param detail one line, borrowed for the call: what was seen against
 *               what the rule asks when broken; what was checked when it
 *               holds. Never NULL.
 */
typedef void (*segidx_kv_report_fn)(void *ctx, const char *rule, int status, const char *detail);

/**
 * @brief Check `kv` against every rule above, in order.
 *
 * `kv` must be empty; every rule leaves it empty again (it writes only
 * through the vtable, and deletes what it wrote), and `kv` is not closed.
 * The threaded rules call `kv` from several threads at once, as a volume
 * index does. A broken rule does not stop the run unless the store cannot
 * be emptied after it. Takes from well under a second (in memory) to a
 * few seconds (a server on loopback).
 *
 * @param report called once per rule; may be NULL.
 * @return #SEGIDX_OK when every rule holds (or is skipped);
 *         #SEGIDX_ECORRUPT when a rule is broken by a wrong answer; the
 *         store's own code when a call that must succeed failed (for
 *         example #SEGIDX_EIO), which breaks the rule too — in both cases
 *         the first broken rule's; #SEGIDX_EINVAL when `kv` has no vtable
 *         or is not empty (nothing is written then); #SEGIDX_ENOMEM.
 */
SEGIDX_API int segidx_kv_conformance(segidx_kv kv, segidx_kv_report_fn report, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
