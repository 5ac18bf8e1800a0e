/* The host's KV store, as the volume index calls it: every answer checked.
 *
 * A store is host code, and a store that misbehaves must cost an error,
 * never a wrong answer and never damage written back. So every get and scan
 * goes through here, and what the store hands back is held to the vtable's
 * contract before the volume index sees it:
 * - get: the callback is called exactly once, with the key asked for, when
 *   the store says 0; never when it says SEGIDX_ENOTFOUND;
 * - scan: every key lies in [lo, hi), keys come strictly ascending (or
 *   strictly descending when reversed), so none repeats, and once the
 *   visitor has said stop, the store calls it no more; a key reaches the
 *   visitor only once the key after it (or the scan's end) has shown it
 *   came in order, so nothing is taken from a store out of order;
 * - a violation of any of these is SEGIDX_ECORRUPT, whatever the store
 *   returned; a return the vtable does not allow (positive, or a negative
 *   code that is not the library's) is SEGIDX_EIO.
 * Writes pass EXPECT operations only to stores of vtable version 2 or
 * later; for a version-1 store they are dropped, and the caller's own
 * mutex is all that orders writers. Not installed. */
#ifndef SEGIDX_KV_GUARD_H
#define SEGIDX_KV_GUARD_H

#include "internal.h"

/* The longest key the volume index uses, and so the longest a checked scan
 * accepts: a longer one cannot be one of ours. */
#define SEGIDX__KV_MAX_KEY 64

/* As the vtable's get: `fn` is called once, with the value. Returns 0,
 * SEGIDX_ENOTFOUND, SEGIDX_ECORRUPT (a store that broke the contract), or
 * the store's error. `fn` returns 0 or a SEGIDX_E* code, which is returned. */
int segidx__kv_get(const segidx_kv *kv, const void *key, size_t klen, segidx_kv_visit_fn fn,
                   void *ctx);

/* As the vtable's scan, checked as above; `hi` must not be empty. Returns
 * 0 when every key was visited, fn's first non-zero return, SEGIDX_ECORRUPT,
 * SEGIDX_ENOMEM (values are copied), or the store's error. */
int segidx__kv_scan(const segidx_kv *kv, const void *lo, size_t lolen, const void *hi,
                    size_t hilen, bool reverse, segidx_kv_visit_fn fn, void *ctx);

/* As the vtable's write, EXPECTs dropped for a version-1 store. Returns 0,
 * SEGIDX_ECONFLICT (an EXPECT failed), SEGIDX_ENOMEM, or the store's error. */
int segidx__kv_write(const segidx_kv *kv, const segidx_kv_op *ops, size_t n);

/* Whether the store checks EXPECTs itself (vtable version 2 or later). */
bool segidx__kv_has_expect(const segidx_kv *kv);

#endif
