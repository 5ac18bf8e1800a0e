/* The request limiter: at most one holder of a permit per 16-byte key
 * (a sid or a vid), and optionally at most N holders over all keys.
 *
 * Keys are the ids themselves, held in a table while a permit is taken or
 * waited for: two different keys never wait for each other (no striped
 * mutexes that make unrelated ids collide), except on the global cap.
 * In a SEGIDX_SINGLE_THREADED=1 build nobody ever waits. */
#ifndef SEGIDX_LIMITER_H
#define SEGIDX_LIMITER_H

#include "internal.h"

typedef struct segidx__limiter segidx__limiter;

/* max_total: the cap over all keys; 0 for none. */
int segidx__limiter_new(unsigned max_total, segidx__limiter **out);
/* Every permit must have been released. Accepts NULL. */
void segidx__limiter_free(segidx__limiter *l);

/* Take the permit of `key`, waiting while another thread holds it, and
 * then a slot of the global cap (waiting while max_total are taken).
 * SEGIDX_OK, SEGIDX_ENOMEM, or SEGIDX_EINVAL when the calling thread holds
 * that permit already (a callback re-entered): nothing is held then. */
int segidx__limiter_acquire(segidx__limiter *l, const uint8_t key[16]);
/* Give back the permit of `key` (and its slot) and wake one waiter. */
void segidx__limiter_release(segidx__limiter *l, const uint8_t key[16]);

/* How many permits are held now, and the most ever held at once: for
 * tests of the cap. */
unsigned segidx__limiter_held(segidx__limiter *l);
unsigned segidx__limiter_peak(segidx__limiter *l);

#endif
