/* The in-memory ordered KV: segidx_kv_mem_open().
 *
 * An AVL tree of nodes that each hold one key and its value in a single
 * allocation. Why AVL:
 * - deterministic O(log n) get, seek, insert and delete in the worst case
 *   (a treap is only expected O(log n), and needs PRNG state);
 * - the tightest height of the usual balanced trees (< 1.44 log2 n, red-black
 *   allows 2 log2 n), and reads (get, seek) are what a volume index does most;
 * - variable-length keys stay one pointer each, where a B-tree would need
 *   per-node key arrays or indirection to pay off. Hosts with really large
 *   catalogs use the LMDB adapter, which is a B+tree on disk.
 * The height bound also bounds the explicit stacks that scans use instead of
 * parent pointers (see MEM_MAX_HEIGHT).
 *
 * Locking: one reader-writer lock. get and scan hold it shared for their
 * whole run, callbacks included, which is what makes a scan one consistent
 * snapshot; write holds it exclusive while it links nodes it allocated
 * beforehand, so a failed allocation never leaves half a batch behind,
 * and checks the batch's EXPECTs under that same lock, before linking
 * anything: the check and the change are one step.
 * The lock is sync.h's own, which lets no side starve: readers that come
 * while a writer waits queue behind it (with glibc's reader-preferring
 * rwlock a commit waited 8.7 s behind 2 busy readers, minutes behind 4),
 * and the readers waiting when a writer leaves go before the next writer.
 * Hence a visit callback must neither write to nor read from the same
 * store: a write would wait forever for the callback's own read lock to
 * go, and a second read would queue behind any writer that came in
 * between, which waits for the first read: both hang. Such a call is
 * caught instead (a thread-local list of the stores whose callbacks the
 * thread is in) and answers SEGIDX_EINVAL. Copy what you need and call
 * again after the call returns. A long callback holds writers off, and
 * with them the readers that come after them.
 *
 * Memory: keys and values are copied in (segidx__alloc: malloc); the
 * pointers callbacks get point into the tree and are valid for the call
 * only.
 *
 * Arguments: keys are 1 byte or more, as in LMDB (an empty key could not be
 * named as a scan bound, where empty means "no bound"); an empty key, an
 * unknown op code or NULL with a non-zero length is SEGIDX_EINVAL, and a
 * batch holding one applies nothing.
 */
#include "internal.h"
#include "sync.h"

#include <limits.h>

/* One key and its value: `data` holds klen key bytes, then vlen value
 * bytes. */
typedef struct mem_node {
    struct mem_node *child[2]; /* [0] smaller keys, [1] larger keys */
    size_t klen, vlen;
    int height;                /* leaves are 1 */
    unsigned char data[];
} mem_node;

typedef struct mem_kv {
    segidx__rwlock lock;
    mem_node *root;
} mem_kv;

/* The stores whose visit callbacks this thread is running, innermost
 * first: each get and scan links a mem_visit on its stack while it calls
 * back. A plain static in a single-threaded build, where a nested call
 * would not hang but would change the tree under the walk. */
typedef struct mem_visit {
    const mem_kv *kv;
    const struct mem_visit *outer;
} mem_visit;

#if SEGIDX__THREADS
static _Thread_local const mem_visit *mem_visiting;
#else
static const mem_visit *mem_visiting;
#endif

/* Whether this thread is inside one of `kv`'s own callbacks. */
static bool in_own_callback(const mem_kv *kv)
{
    for (const mem_visit *v = mem_visiting; v; v = v->outer)
        if (v->kv == kv)
            return true;
    return false;
}

/* An AVL tree of n nodes is less than 1.4405 log2(n + 2) high, and fewer
 * than 2^(bits of size_t) nodes fit in memory: 1.5 times those bits is a
 * safe stack depth for every walk below (96 on 64-bit targets). */
#define MEM_MAX_HEIGHT ((int)(sizeof(size_t) * CHAR_BIT * 3 / 2))

/* ------------------------------------------------------------ keys */

static int node_cmp(const void *key, size_t klen, const mem_node *n)
{
    return segidx__key_cmp(key, klen, n->data, n->klen);
}

/* ------------------------------------------------------------ AVL */

static int height(const mem_node *n)
{
    return n ? n->height : 0;
}

static void fix_height(mem_node *n)
{
    int l = height(n->child[0]), r = height(n->child[1]);
    n->height = (l > r ? l : r) + 1;
}

/* Turn `n` so that its child on side `dir` becomes the subtree's root. */
static mem_node *rotate(mem_node *n, int dir)
{
    mem_node *c = n->child[dir];
    n->child[dir] = c->child[!dir];
    c->child[!dir] = n;
    fix_height(n);
    fix_height(c);
    return c;
}

/* Restore the AVL property at `n`, whose subtrees are AVL trees differing
 * in height by at most 2; returns the subtree's new root. */
static mem_node *rebalance(mem_node *n)
{
    int diff = height(n->child[1]) - height(n->child[0]);
    if (diff > 1 || diff < -1) {
        int dir = diff > 0;
        mem_node *c = n->child[dir];
        /* A child leaning the other way first turns to lean our way. */
        if (height(c->child[!dir]) > height(c->child[dir]))
            n->child[dir] = rotate(c, !dir);
        return rotate(n, dir);
    }
    fix_height(n);
    return n;
}

/* Link `nn` into `t`. An equal key's node is replaced by `nn` in place and
 * handed back in *replaced for the caller to free. */
static mem_node *avl_insert(mem_node *t, mem_node *nn, mem_node **replaced)
{
    if (!t) {
        nn->child[0] = nn->child[1] = NULL;
        nn->height = 1;
        return nn;
    }
    int c = node_cmp(nn->data, nn->klen, t);
    if (c == 0) {
        nn->child[0] = t->child[0];
        nn->child[1] = t->child[1];
        nn->height = t->height;
        *replaced = t;
        return nn;
    }
    int dir = c > 0;
    t->child[dir] = avl_insert(t->child[dir], nn, replaced);
    return rebalance(t);
}

/* Unlink the smallest node of `t` into *min. */
static mem_node *avl_remove_min(mem_node *t, mem_node **min)
{
    if (!t->child[0]) {
        *min = t;
        return t->child[1];
    }
    t->child[0] = avl_remove_min(t->child[0], min);
    return rebalance(t);
}

/* Unlink the node of `key` into *removed (left NULL when there is none). */
static mem_node *avl_remove(mem_node *t, const void *key, size_t klen, mem_node **removed)
{
    if (!t)
        return NULL;
    int c = node_cmp(key, klen, t);
    if (c == 0) {
        *removed = t;
        if (!t->child[0])
            return t->child[1];
        if (!t->child[1])
            return t->child[0];
        mem_node *m;
        mem_node *right = avl_remove_min(t->child[1], &m);
        m->child[0] = t->child[0];
        m->child[1] = right;
        return rebalance(m);
    }
    int dir = c > 0;
    t->child[dir] = avl_remove(t->child[dir], key, klen, removed);
    return rebalance(t);
}

static mem_node *avl_find(mem_node *t, const void *key, size_t klen)
{
    while (t) {
        int c = node_cmp(key, klen, t);
        if (c == 0)
            return t;
        t = t->child[c > 0];
    }
    return NULL;
}

static void node_free(mem_node *n)
{
    segidx__release(NULL, n, sizeof *n + n->klen + n->vlen);
}

static void avl_free(mem_node *t)
{
    /* Recursion depth is the height: bounded, see MEM_MAX_HEIGHT. */
    if (!t)
        return;
    avl_free(t->child[0]);
    avl_free(t->child[1]);
    node_free(t);
}

/* ------------------------------------------------------------ methods */

static int mem_get(void *self, const void *key, size_t klen, segidx_kv_visit_fn fn, void *ctx)
{
    mem_kv *kv = self;
    if (!kv || !fn || !key || klen == 0 || in_own_callback(kv))
        return SEGIDX_EINVAL;
    int rc = segidx__rwlock_rdlock(&kv->lock);
    if (rc)
        return rc;
    mem_node *n = avl_find(kv->root, key, klen);
    if (n) {
        mem_visit me = { kv, mem_visiting };
        mem_visiting = &me;
        rc = fn(ctx, n->data, n->klen, n->data + n->klen, n->vlen);
        mem_visiting = me.outer;
    } else {
        rc = SEGIDX_ENOTFOUND;
    }
    segidx__rwlock_unlock(&kv->lock);
    return rc;
}

/* In-order walks with an explicit stack of the ancestors still to visit. */
typedef struct mem_walk {
    mem_node *stack[MEM_MAX_HEIGHT];
    int depth;
} mem_walk;

/* Push `t` and its descendants towards side `dir`: the nodes visited next,
 * nearest last. */
static void walk_push_edge(mem_walk *w, mem_node *t, int dir)
{
    for (; t; t = t->child[dir])
        w->stack[w->depth++] = t;
}

/* Seek the first key >= lo (forward, dir 1) or the last key < hi (reverse,
 * dir 0; an empty bound means no bound): the nodes of the search path that
 * are in range go on the stack, the first to visit on top. walk_next()
 * pushes the subtrees between them as it reaches them. */
static void walk_seek(mem_walk *w, mem_node *t, const void *bound, size_t blen, int dir)
{
    w->depth = 0;
    while (t) {
        bool in_range = blen == 0 ||
                        (dir ? node_cmp(bound, blen, t) <= 0 : node_cmp(bound, blen, t) > 0);
        if (in_range) {
            w->stack[w->depth++] = t;
            t = t->child[!dir];
        } else {
            t = t->child[dir];
        }
    }
}

/* The next node in walk order, or NULL. */
static mem_node *walk_next(mem_walk *w, int dir)
{
    if (w->depth == 0)
        return NULL;
    mem_node *n = w->stack[--w->depth];
    walk_push_edge(w, n->child[dir], !dir);
    return n;
}

static int mem_scan(void *self, const void *lo, size_t lolen, const void *hi, size_t hilen,
                    bool reverse, segidx_kv_visit_fn fn, void *ctx)
{
    mem_kv *kv = self;
    if (!kv || !fn || (!lo && lolen) || (!hi && hilen) || in_own_callback(kv))
        return SEGIDX_EINVAL;
    if (lolen && hilen && segidx__key_cmp(lo, lolen, hi, hilen) >= 0)
        return SEGIDX_OK; /* [lo, hi) is empty */
    int rc = segidx__rwlock_rdlock(&kv->lock);
    if (rc)
        return rc;
    mem_walk w;
    int dir = !reverse;
    /* Start at one end of the range; stop at the other. */
    const void *start = reverse ? hi : lo, *stop = reverse ? lo : hi;
    size_t startlen = reverse ? hilen : lolen, stoplen = reverse ? lolen : hilen;
    walk_seek(&w, kv->root, start, startlen, dir);
    mem_visit me = { kv, mem_visiting };
    mem_visiting = &me;
    for (mem_node *n; rc == 0 && (n = walk_next(&w, dir));) {
        if (stoplen) {
            int c = node_cmp(stop, stoplen, n);
            if (reverse ? c > 0 : c <= 0)
                break;
        }
        rc = fn(ctx, n->data, n->klen, n->data + n->klen, n->vlen);
    }
    mem_visiting = me.outer;
    segidx__rwlock_unlock(&kv->lock);
    return rc;
}

static bool op_valid(const segidx_kv_op *op)
{
    if (op->op != SEGIDX_KV_PUT && op->op != SEGIDX_KV_DEL && op->op != SEGIDX_KV_EXPECT)
        return false;
    if (op->klen == 0 || !op->key)
        return false;
    return op->op == SEGIDX_KV_DEL || op->val || op->vlen == 0;
}

/* Whether the tree holds what one EXPECT names: its value, byte for byte,
 * or no key at all when the EXPECT's val is NULL. */
static bool expect_holds(mem_node *root, const segidx_kv_op *op)
{
    const mem_node *found = avl_find(root, op->key, op->klen);
    if (!op->val)
        return found == NULL;
    return found && found->vlen == op->vlen &&
           (op->vlen == 0 || memcmp(found->data + found->klen, op->val, op->vlen) == 0);
}

/* Every EXPECT of the batch, against the tree before any of its changes:
 * an EXPECT after a PUT of its key still sees the old value. */
static bool expects_hold(mem_node *root, const segidx_kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].op == SEGIDX_KV_EXPECT && !expect_holds(root, &ops[i]))
            return false;
    return true;
}

/* Free a chain of unlinked nodes (linked through child[0]). */
static void chain_free(mem_node *n)
{
    while (n) {
        mem_node *next = n->child[0];
        node_free(n);
        n = next;
    }
}

static int mem_write(void *self, const segidx_kv_op *ops, size_t n)
{
    mem_kv *kv = self;
    if (!kv || (!ops && n) || in_own_callback(kv))
        return SEGIDX_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!op_valid(&ops[i]))
            return SEGIDX_EINVAL;

    /* Every node the batch links, allocated and filled before the lock, in
     * op order: after this, applying the batch cannot fail. */
    mem_node *first = NULL, **tail = &first;
    for (size_t i = 0; i < n; i++) {
        const segidx_kv_op *op = &ops[i];
        if (op->op != SEGIDX_KV_PUT)
            continue;
        if (op->vlen > SIZE_MAX - sizeof(mem_node) ||
            op->klen > SIZE_MAX - sizeof(mem_node) - op->vlen) {
            chain_free(first);
            return SEGIDX_ENOMEM;
        }
        mem_node *nn = segidx__alloc(NULL, sizeof *nn + op->klen + op->vlen);
        if (!nn) {
            chain_free(first);
            return SEGIDX_ENOMEM;
        }
        nn->child[0] = nn->child[1] = NULL;
        nn->klen = op->klen;
        nn->vlen = op->vlen;
        memcpy(nn->data, op->key, op->klen);
        if (op->vlen)
            memcpy(nn->data + op->klen, op->val, op->vlen);
        *tail = nn;
        tail = &nn->child[0];
    }

    int rc = segidx__rwlock_wrlock(&kv->lock);
    if (rc) {
        chain_free(first);
        return rc;
    }
    if (!expects_hold(kv->root, ops, n)) {
        segidx__rwlock_unlock(&kv->lock);
        chain_free(first);
        return SEGIDX_ECONFLICT;
    }
    mem_node *dead = NULL; /* replaced and removed nodes, freed unlocked */
    for (size_t i = 0; i < n; i++) {
        mem_node *gone = NULL;
        if (ops[i].op == SEGIDX_KV_PUT) {
            mem_node *nn = first;
            first = nn->child[0];
            kv->root = avl_insert(kv->root, nn, &gone);
        } else if (ops[i].op == SEGIDX_KV_DEL) {
            kv->root = avl_remove(kv->root, ops[i].key, ops[i].klen, &gone);
        }
        if (gone) {
            gone->child[0] = dead;
            dead = gone;
        }
    }
    segidx__rwlock_unlock(&kv->lock);
    chain_free(dead);
    return SEGIDX_OK;
}

static void mem_close(void *self)
{
    mem_kv *kv = self;
    if (!kv)
        return;
    avl_free(kv->root);
    segidx__rwlock_destroy(&kv->lock);
    segidx__release(NULL, kv, sizeof *kv);
}

static const segidx_kv_vtable mem_vtable = {
    SEGIDX_KV_VTABLE_VERSION, mem_get, mem_scan, mem_write, mem_close,
};

void segidx__kv_mem_waiting(const segidx_kv *kv, unsigned *readers, unsigned *writers)
{
    segidx__rwlock_waiting(&((mem_kv *)kv->self)->lock, readers, writers);
}

int segidx_kv_mem_open(segidx_kv *out)
{
    if (!out)
        return SEGIDX_EINVAL;
    mem_kv *kv = segidx__alloc(NULL, sizeof *kv);
    if (!kv)
        return SEGIDX_ENOMEM;
    kv->root = NULL;
    int rc = segidx__rwlock_init(&kv->lock);
    if (rc) {
        segidx__release(NULL, kv, sizeof *kv);
        return rc;
    }
    out->vt = &mem_vtable;
    out->self = kv;
    return SEGIDX_OK;
}
