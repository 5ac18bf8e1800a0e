/* What the loader offers the read path beyond its public calls. Not
 * installed.
 *
 * The read path pins each segment it needs as a copy: one fetched,
 * validated buffer of that segment as the loader holds it. A copy
 * remembers which of its pages already passed their checksum, so that a
 * warm read hashes no page twice, and a copy whose page failed is
 * discarded so that the next get fetches the segment again. */
#ifndef SEGIDX_LOADER_H
#define SEGIDX_LOADER_H

#include "internal.h"

typedef struct segidx__copy segidx__copy;

/* segidx_loader_get(), also returning the pinned copy. segidx_loader_put()
 * of `*seg` unpins it as usual. */
int segidx__loader_pin(segidx_loader *l, const segidx_sid *sid, const segidx_segment **seg,
                       segidx__copy **copy);

/* Whether page `local` of a pinned copy holds its checksum: SEGIDX_OK or
 * SEGIDX_ECORRUPT. `page` is where segidx_segment_find() put it in this
 * copy. The first call for a page hashes it; once it passed, later calls
 * only look at a bit. */
int segidx__loader_check_page(segidx__copy *copy, uint32_t local, const void *page);

/* Take a pinned copy out of the loader's table at once, so that every
 * later get fetches the segment afresh, and release it to the host when
 * its last pin goes. Holders of other pins keep reading it until then.
 * Discarding a copy twice changes nothing the second time. */
void segidx__loader_discard(segidx_loader *l, segidx__copy *copy);

/* Where a call lets go of every lock between two of its steps, so that
 * other calls may run there. A test sets a hook to run such a call at that
 * very point (FoundationDB style: the schedule is the test's, not luck's);
 * nothing else sets one. */
enum segidx__loader_point {
    /* get: the first look missed, its shard lock is gone, the sid's
     * permit not yet asked for. */
    SEGIDX__LOADER_MISSED,
    /* put: the pin it drops may be the last while the cache is over
     * budget or the copy discarded; its shard lock is gone, every lock is
     * about to be taken and the segment looked up again. */
    SEGIDX__LOADER_PUT_LOCKED,
};

/* Call fn(ctx, point) at each point above (NULL: none). Set it before
 * other threads use the loader. */
void segidx__loader_set_hook(segidx_loader *l,
                             void (*fn)(void *ctx, enum segidx__loader_point at), void *ctx);

/* How segidx_read_pages() checks the pages it hands out. The public call
 * is always SEGIDX__PAGES_CHECKED; the others exist for `make bench`, to
 * measure what the check costs, and are reachable from no public call. */
enum segidx__page_check {
    SEGIDX__PAGES_CHECKED,   /* each page of a copy hashed once, remembered */
    SEGIDX__PAGES_HASHED,    /* every page hashed on every read */
    SEGIDX__PAGES_UNCHECKED, /* no check at all: the baseline */
};

int segidx__read_pages_with(segidx_volume_index *vi, segidx_loader *l, const segidx_vid *vid,
                            segidx_lsn lsn, const segidx_offset_set *offsets,
                            int (*fn)(void *ctx, segidx_offset off, const void *page,
                                      segidx_lsn lsn),
                            void *ctx, enum segidx__page_check check);

#endif
