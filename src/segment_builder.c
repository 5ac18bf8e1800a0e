/* The segment builder: collects page versions in any order, then writes a
 * segment as docs/FORMAT.md describes. The index encoding of each volume is
 * chosen at plan time (smallest wins); the plan is cached until the next
 * add, so builder_size() and finish() agree and cost one sort. */
#include "segment_format.h"

#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* One page version as added. Its bytes are at pages + index * page_size. */
struct entry {
    segidx_vid vid;
    uint32_t off;
    uint64_t lsn;
};

/* What the builder must know of a volume to refuse a page early. */
struct volume_stat {
    segidx_vid vid;
    uint64_t min_lsn, max_lsn;
};

/* A keyed layout (version 3, kinds 2 and 3) of a volume's offsets. */
struct keyed_layout {
    uint64_t bytes;        /* directory and bucket stream; 0: no layout */
    uint64_t cost;         /* what the choice minimises, in bits */
    unsigned sh, k;
    uint64_t keys;         /* directory entries, K + 2 */
    uint64_t stream_len;
};

/* A volume as finish() will write it. */
struct volume_plan {
    uint32_t first;        /* index into the sorted entries */
    uint32_t pages;
    uint32_t offsets;      /* distinct */
    uint32_t first_offset, span;
    uint64_t base_lsn;
    int encoding;
    unsigned width;
    bool versions;         /* some offset has several */
    uint64_t entry_bytes, data_bytes;
    /* Version 2 */
    unsigned rlsn_bits, rank_bits;
    uint64_t chunks, top_entries, stream_bits;
    /* Version 3: the keyed layouts this volume can take (bytes 0: none),
     * and the one it takes when its kind is 2 or 3. */
    struct keyed_layout ef, packed;
    uint64_t pef_bytes;    /* directory, records and stream of kind 1 */
    unsigned sh, k;
    uint64_t keys, stream_len;
};

struct sorted_entry {
    segidx_vid vid;
    uint32_t off;
    uint32_t index;        /* into entries and pages */
    uint64_t lsn;
};

struct segidx_segment_builder {
    segidx_allocator alloc_copy;
    const segidx_allocator *alloc;
    uint32_t page_size;
    uint64_t max_bytes;
    unsigned version;      /* the format version finish() writes */

    struct entry *entries;
    uint8_t *pages;
    uint32_t n, cap;       /* pages added; pages that fit in `pages` */
    uint32_t entries_cap;  /* may run ahead of cap after a failed growth */

    /* Open addressing over entries (index + 1; 0 = empty), to refuse a
     * duplicate (vid, off, lsn) in O(1). */
    uint32_t *dedup;
    uint32_t dedup_mask;

    struct volume_stat *vols;
    uint32_t n_vols, vols_cap;
    uint32_t *vol_slots;   /* index + 1 into vols; 0 = empty */
    uint32_t vol_slots_mask;

    /* Test hook: version 3 layouts restricted (-1: free). */
    int force_kind, force_sh, force_k;

    /* The cached plan; valid while `planned`. */
    bool planned;
    struct sorted_entry *sorted;
    struct volume_plan *plan;
    uint64_t planned_size;
};

/* ------------------------------------------------------------ hashing */

static uint64_t hash_vid(const segidx_vid *vid)
{
    return XXH3_64bits(vid->bytes, sizeof vid->bytes);
}

static uint64_t hash_entry(const segidx_vid *vid, uint32_t off, uint64_t lsn)
{
    uint8_t key[28];
    memcpy(key, vid->bytes, 16);
    segidx__store32(key + 16, off);
    segidx__store64(key + 20, lsn);
    return XXH3_64bits(key, sizeof key);
}

static bool same_entry(const struct entry *e, const segidx_vid *vid, uint32_t off, uint64_t lsn)
{
    return e->off == off && e->lsn == lsn && memcmp(e->vid.bytes, vid->bytes, 16) == 0;
}

/* The slot where (vid, off, lsn) is or would go. */
static uint32_t *dedup_slot(const segidx_segment_builder *b, const segidx_vid *vid, uint32_t off,
                            uint64_t lsn)
{
    uint32_t i = (uint32_t)hash_entry(vid, off, lsn) & b->dedup_mask;
    while (b->dedup[i] && !same_entry(&b->entries[b->dedup[i] - 1], vid, off, lsn))
        i = (i + 1) & b->dedup_mask;
    return &b->dedup[i];
}

static uint32_t *vol_slot(const segidx_segment_builder *b, const segidx_vid *vid)
{
    uint32_t i = (uint32_t)hash_vid(vid) & b->vol_slots_mask;
    while (b->vol_slots[i] &&
           memcmp(b->vols[b->vol_slots[i] - 1].vid.bytes, vid->bytes, 16) != 0)
        i = (i + 1) & b->vol_slots_mask;
    return &b->vol_slots[i];
}

/* ------------------------------------------------------------ growth
 *
 * Every table grows before anything is changed, so a failed allocation
 * leaves the builder as it was.
 */

static int grow_entries(segidx_segment_builder *b)
{
    if (b->n < b->cap)
        return SEGIDX_OK;
    /* Never more room than max_bytes could ever use. */
    uint64_t most = b->max_bytes / b->page_size;
    uint32_t cap = b->cap ? b->cap * 2 : 64;
    if (cap > most)
        cap = (uint32_t)most;
    if (cap > SEGIDX_MAX_SEGMENT_PAGES)
        cap = SEGIDX_MAX_SEGMENT_PAGES;
    if (b->entries_cap < cap) {
        struct entry *e = segidx__resize(b->alloc, b->entries, b->entries_cap * sizeof *e,
                                         cap * sizeof *e);
        if (!e)
            return SEGIDX_ENOMEM;
        b->entries = e;
        b->entries_cap = cap;
    }
    uint8_t *p = segidx__resize(b->alloc, b->pages, (size_t)b->cap * b->page_size,
                                (size_t)cap * b->page_size);
    if (!p)
        return SEGIDX_ENOMEM;
    b->pages = p;
    b->cap = cap;
    return SEGIDX_OK;
}

/* Rebuild an index+1 table of `2 * count` or more slots, a power of two. */
static int rehash(segidx_segment_builder *b, uint32_t **slots, uint32_t *mask, uint32_t count,
                  bool volumes)
{
    uint32_t size = 16;
    while (size < 2 * count + 2)
        size *= 2;
    if (*slots && *mask + 1 >= size)
        return SEGIDX_OK;
    uint32_t *fresh = segidx__alloc_array(b->alloc, size, sizeof *fresh);
    if (!fresh)
        return SEGIDX_ENOMEM;
    uint32_t *old = *slots, old_size = old ? *mask + 1 : 0;
    *slots = fresh;
    *mask = size - 1;
    for (uint32_t i = 0; i < old_size; i++) {
        if (!old[i])
            continue;
        uint32_t *slot = volumes ? vol_slot(b, &b->vols[old[i] - 1].vid)
                                 : dedup_slot(b, &b->entries[old[i] - 1].vid,
                                              b->entries[old[i] - 1].off,
                                              b->entries[old[i] - 1].lsn);
        *slot = old[i];
    }
    segidx__release(b->alloc, old, old_size * sizeof *old);
    return SEGIDX_OK;
}

static int grow_volumes(segidx_segment_builder *b)
{
    if (b->n_vols == b->vols_cap) {
        uint32_t cap = b->vols_cap ? b->vols_cap * 2 : 16;
        struct volume_stat *v =
            segidx__resize(b->alloc, b->vols, b->vols_cap * sizeof *v, cap * sizeof *v);
        if (!v)
            return SEGIDX_ENOMEM;
        b->vols = v;
        b->vols_cap = cap;
    }
    return rehash(b, &b->vol_slots, &b->vol_slots_mask, b->n_vols + 1, true);
}

/* The index at its worst: every offset encoding is chosen only when it is
 * smallest, so none exceeds Elias-Fano's (l + 2) bits plus samples, under
 * 4.5 bytes a page; version ranks and rLSNs add 2 + 2. A volume adds its
 * entry and a few bytes of rounding. */
#define WORST_INDEX_BYTES_PER_PAGE 9u
/* Version 2 adds per volume at most a top directory entry and a chunk
 * record past its chunks' share, and three padded streams. */
#define WORST_INDEX_BYTES_PER_VOLUME (VOLUME_ENTRY_MAX_BYTES + 32u)

/* ------------------------------------------------------------ lifecycle */

/* The page size and segment limit that options name, defaults applied. */
static uint32_t options_page_size(const segidx_segment_options *o)
{
    return o && o->page_size ? o->page_size : SEGIDX_DEFAULT_PAGE_SIZE;
}

static uint64_t options_max_bytes(const segidx_segment_options *o)
{
    return o && o->max_bytes ? o->max_bytes : SEGIDX_DEFAULT_SEGMENT_BYTES;
}

bool segidx__segment_options_valid(const segidx_segment_options *o)
{
    uint32_t page_size = options_page_size(o);
    uint64_t max_bytes = options_max_bytes(o);
    if (page_size < SEG_MIN_PAGE_SIZE || page_size > SEG_MAX_PAGE_SIZE ||
        (page_size & (page_size - 1)) || max_bytes > SEG_MAX_BYTES)
        return false;
    /* One page of one volume must fit by the bound add() applies. */
    uint64_t one_page = seg_index_offset(1, page_size) + SEG_FOOTER_BYTES +
                        WORST_INDEX_BYTES_PER_PAGE + WORST_INDEX_BYTES_PER_VOLUME;
    const segidx_allocator *a = o ? o->alloc : NULL;
    return max_bytes >= one_page && (!a || (a->alloc && a->resize && a->release));
}

segidx_segment_builder *segidx_segment_builder_new(const segidx_segment_options *opts)
{
    if (!segidx__segment_options_valid(opts))
        return NULL;
    uint32_t page_size = options_page_size(opts);
    uint64_t max_bytes = options_max_bytes(opts);
    const segidx_allocator *a = opts ? opts->alloc : NULL;
    segidx_segment_builder *b = segidx__alloc(a, sizeof *b);
    if (!b)
        return NULL;
    memset(b, 0, sizeof *b);
    if (a) {
        b->alloc_copy = *a;
        b->alloc = &b->alloc_copy;
    }
    b->page_size = page_size;
    b->max_bytes = max_bytes;
    b->version = SEG_VERSION;
    b->force_kind = b->force_sh = b->force_k = -1;
    return b;
}

static void forget_plan(segidx_segment_builder *b)
{
    if (!b->planned)
        return;
    segidx__release(b->alloc, b->sorted, b->n * sizeof *b->sorted);
    segidx__release(b->alloc, b->plan, b->n_vols * sizeof *b->plan);
    b->sorted = NULL;
    b->plan = NULL;
    b->planned = false;
}

int segidx__segment_builder_set_version(segidx_segment_builder *b, unsigned version)
{
    if (!b || (version != SEG_VERSION_1 && version != SEG_VERSION_2 && version != SEG_VERSION_3))
        return SEGIDX_EINVAL;
    forget_plan(b);
    b->version = version;
    return SEGIDX_OK;
}

int segidx__segment_builder_force_layout(segidx_segment_builder *b, int kind, int sh, int k)
{
    if (!b || kind < -1 || kind == 0 || kind > (int)KIND3_PACKED || sh < -1 ||
        sh > (int)KEYED_MAX_SH || k < -1 || k > (int)KEYED_MAX_K)
        return SEGIDX_EINVAL;
    forget_plan(b);
    b->force_kind = kind;
    b->force_sh = sh;
    b->force_k = k;
    return SEGIDX_OK;
}

void segidx_segment_builder_reset(segidx_segment_builder *b)
{
    if (!b)
        return;
    forget_plan(b);
    b->n = 0;
    b->n_vols = 0;
    if (b->dedup)
        memset(b->dedup, 0, (b->dedup_mask + 1) * sizeof *b->dedup);
    if (b->vol_slots)
        memset(b->vol_slots, 0, (b->vol_slots_mask + 1) * sizeof *b->vol_slots);
}

void segidx_segment_builder_free(segidx_segment_builder *b)
{
    if (!b)
        return;
    forget_plan(b);
    const segidx_allocator *a = b->alloc;
    segidx__release(a, b->entries, b->entries_cap * sizeof *b->entries);
    segidx__release(a, b->pages, (size_t)b->cap * b->page_size);
    if (b->dedup)
        segidx__release(a, b->dedup, (b->dedup_mask + 1) * sizeof *b->dedup);
    segidx__release(a, b->vols, b->vols_cap * sizeof *b->vols);
    if (b->vol_slots)
        segidx__release(a, b->vol_slots, (b->vol_slots_mask + 1) * sizeof *b->vol_slots);
    segidx_allocator copy = b->alloc_copy;
    segidx__release(a ? &copy : NULL, b, sizeof *b);
}

uint32_t segidx_segment_builder_pages(const segidx_segment_builder *b)
{
    return b ? b->n : 0;
}

/* ------------------------------------------------------------ add */

/* An upper bound of the finished size: exact for header, pages, checksums
 * and footer; the index at its worst (see size_bound). */

static uint64_t size_bound(const segidx_segment_builder *b, uint32_t pages, uint32_t vols)
{
    return seg_index_offset(pages, b->page_size) + SEG_FOOTER_BYTES +
           (uint64_t)pages * WORST_INDEX_BYTES_PER_PAGE +
           (uint64_t)vols * WORST_INDEX_BYTES_PER_VOLUME;
}

int segidx_segment_builder_add(segidx_segment_builder *b, const segidx_vid *vid, segidx_offset off,
                               segidx_lsn lsn, const void *page)
{
    if (!b || !vid || !page || lsn == 0)
        return SEGIDX_EINVAL;
    if (b->n && *dedup_slot(b, vid, off, lsn))
        return SEGIDX_EINVAL;

    uint32_t *vslot = b->n_vols ? vol_slot(b, vid) : NULL;
    struct volume_stat *vs = vslot && *vslot ? &b->vols[*vslot - 1] : NULL;
    if (vs) {
        uint64_t lo = lsn < vs->min_lsn ? lsn : vs->min_lsn;
        uint64_t hi = lsn > vs->max_lsn ? lsn : vs->max_lsn;
        if (hi - lo > SEGIDX_MAX_LSN_SPAN)
            return SEGIDX_ERANGE;
    }
    if (b->n == SEGIDX_MAX_SEGMENT_PAGES ||
        size_bound(b, b->n + 1, b->n_vols + !vs) > b->max_bytes)
        return SEGIDX_EFULL;

    /* Grow everything first: from here on nothing can fail. */
    int rc = grow_entries(b);
    if (!rc)
        rc = rehash(b, &b->dedup, &b->dedup_mask, b->n + 1, false);
    if (!rc && !vs)
        rc = grow_volumes(b);
    if (rc)
        return rc;

    forget_plan(b);
    if (vs) {
        if (lsn < vs->min_lsn)
            vs->min_lsn = lsn;
        if (lsn > vs->max_lsn)
            vs->max_lsn = lsn;
    } else {
        b->vols[b->n_vols] = (struct volume_stat){ *vid, lsn, lsn };
        *vol_slot(b, vid) = ++b->n_vols;
    }
    b->entries[b->n] = (struct entry){ *vid, off, lsn };
    memcpy(b->pages + (size_t)b->n * b->page_size, page, b->page_size);
    *dedup_slot(b, vid, off, lsn) = ++b->n;
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ plan */

static int compare_sorted(const void *pa, const void *pb)
{
    const struct sorted_entry *a = pa, *b = pb;
    int c = memcmp(a->vid.bytes, b->vid.bytes, 16);
    if (c)
        return c;
    if (a->off != b->off)
        return a->off < b->off ? -1 : 1;
    return (a->lsn > b->lsn) - (a->lsn < b->lsn);
}

/* Choose the smallest offset encoding; on a tie the faster one (range,
 * then bitmap, then Elias-Fano). */
static int choose_encoding(uint64_t n, uint64_t span, uint64_t *bytes)
{
    int best = SEGIDX_OFFSETS_ELIAS_FANO;
    *bytes = offsets_bytes(best, n, span);
    for (int enc = SEGIDX_OFFSETS_BITMAP; enc >= SEGIDX_OFFSETS_RANGE; enc--) {
        uint64_t size = offsets_bytes(enc, n, span);
        if (size <= *bytes) {
            best = enc;
            *bytes = size;
        }
    }
    return best;
}

/* Fill in one volume's plan from its sorted entries [first, first + pages). */
static void plan_volume(const struct sorted_entry *s, struct volume_plan *v)
{
    uint64_t max_value = 0;
    v->offsets = 0;
    v->versions = false;
    v->base_lsn = UINT64_MAX;
    for (uint32_t i = 0; i < v->pages; i++)
        if (s[i].lsn < v->base_lsn)
            v->base_lsn = s[i].lsn;
    for (uint32_t i = 0; i < v->pages; i++) {
        bool new_offset = i == 0 || s[i].off != s[i - 1].off;
        uint64_t value = new_offset ? s[i].lsn - v->base_lsn : s[i].lsn - s[i - 1].lsn;
        if (value > max_value)
            max_value = value;
        v->offsets += new_offset;
        v->versions |= !new_offset;
    }
    v->first_offset = s[0].off;
    v->span = s[v->pages - 1].off - s[0].off;
    v->width = max_value == 0 ? 0 : max_value <= 0xFF ? 1 : 2;
    uint64_t offsets_size;
    v->encoding = choose_encoding(v->offsets, v->span, &offsets_size);
    v->data_bytes = offsets_size + (v->versions ? 2ull * v->offsets : 0) +
                    (uint64_t)v->width * v->pages;
    v->entry_bytes = 16 + varint_len(v->base_lsn) + varint_len(v->pages) +
                     varint_len(v->offsets) + varint_len(v->first_offset) +
                     varint_len(v->span) + 1;
}

/* Version 2: the bits of the chunk of offsets [first, last] holding n. */
static uint64_t pef_chunk_bits(uint64_t first, uint64_t last, uint64_t n)
{
    unsigned l = pef_low_bits(last - first, n);
    return n + ((last - first) >> l) + 1 + n * l;
}

static void plan_volume_v2(const struct sorted_entry *s, struct volume_plan *v)
{
    uint64_t max_rlsn = 0, chunk_first = 0, in_chunk = 0, prev = 0;
    v->offsets = 0;
    v->base_lsn = UINT64_MAX;
    v->stream_bits = 0;
    for (uint32_t i = 0; i < v->pages; i++)
        if (s[i].lsn < v->base_lsn)
            v->base_lsn = s[i].lsn;
    for (uint32_t i = 0; i < v->pages; i++) {
        if (s[i].lsn - v->base_lsn > max_rlsn)
            max_rlsn = s[i].lsn - v->base_lsn;
        if (i && s[i].off == s[i - 1].off)
            continue;
        uint64_t x = s[i].off - s[0].off;
        if (in_chunk == PEF_CHUNK) {
            v->stream_bits += pef_chunk_bits(chunk_first, prev, in_chunk);
            in_chunk = 0;
        }
        if (in_chunk == 0)
            chunk_first = x;
        in_chunk++;
        prev = x;
        v->offsets++;
    }
    v->stream_bits += pef_chunk_bits(chunk_first, prev, in_chunk);
    v->first_offset = s[0].off;
    v->span = s[v->pages - 1].off - s[0].off;
    v->versions = v->offsets < v->pages;
    v->rlsn_bits = bits_for(max_rlsn);
    v->rank_bits = v->versions ? bits_for(v->pages - 1) : 0;
    v->width = 0;
    v->data_bytes = stream_bytes((uint64_t)v->offsets * v->rank_bits) +
                    stream_bytes((uint64_t)v->pages * v->rlsn_bits);
    if ((uint64_t)v->offsets == (uint64_t)v->span + 1) {
        v->encoding = KIND2_RANGE;
        v->chunks = v->top_entries = 0;
    } else {
        v->encoding = KIND2_PARTITIONED;
        v->chunks = pef_chunks(v->offsets);
        v->top_entries = pef_top_entries(v->span, v->chunks);
        v->data_bytes += 2 * (v->top_entries + 1) + PEF_RECORD_BYTES * (v->chunks + 1) +
                         stream_bytes(v->stream_bits);
    }
    v->entry_bytes = 16 + varint_len(v->base_lsn) + varint_len(v->pages) +
                     varint_len(v->offsets) + varint_len(v->first_offset) +
                     varint_len(v->span) + 2;
}

/* Version 3 ------------------------------------------------------------ */

/* Elements of a key's Elias-Fano bucket x[0..m) (values of width w) in
 * sub-buckets too long for one load of low bits: each costs a lookup
 * halving steps, so the choice charges them. */
static uint64_t crowded_elements(const uint32_t *x, uint64_t m, unsigned w)
{
    unsigned l = w - keyed_high_bits(m, w);
    uint64_t low = (1ull << w) - 1, crowd = 0;
    for (uint64_t a = 0, e; a < m; a = e) {
        for (e = a + 1; e < m && ((x[e] & low) >> l) == ((x[a] & low) >> l); e++)
            ;
        if ((e - a) * l > PACKED_MAX_BITS)
            crowd += e - a;
    }
    return crowd;
}

/* Layout (sh, k) of `kind` over x[0..n) into *out, unless it breaks a
 * limit (a key over 32 offsets, a stream past 16-bit positions, a packed
 * bucket past one load) or costs `limit` bits or more. */
static bool keyed_measure(const uint32_t *x, uint32_t n, unsigned kind, unsigned sh, unsigned k,
                          uint64_t limit, struct keyed_layout *out)
{
    unsigned w;
    uint64_t keys = keyed_key(x[n - 1], sh, k, &w) + 2;
    uint64_t cost = 8 * KEYED_ENTRY_BYTES * keys, stream = 0;
    for (uint32_t i = 0; i < n && cost < limit;) {
        unsigned wj;
        uint64_t key = keyed_key(x[i], sh, k, &w);
        uint32_t j = i + 1;
        while (j < n && keyed_key(x[j], sh, k, &wj) == key)
            j++;
        uint64_t m = j - i;
        if (m > KEYED_MAX_BUCKET ||
            (kind == KIND3_PACKED && (m * w > PACKED_MAX_BITS || (w == 0 && m > 1))))
            return false;
        uint64_t bytes = keyed_bucket_bytes(kind, m, w);
        stream += bytes;
        cost += 8 * bytes;
        if (kind == KIND3_EF_BUCKETS)
            cost += 16 * crowded_elements(x + i, m, w);
        if (stream > KEYED_MAX_STREAM)
            return false;
        i = j;
    }
    if (cost >= limit)
        return false;
    *out = (struct keyed_layout){ KEYED_ENTRY_BYTES * keys + stream, cost, sh, k, keys, stream };
    return true;
}

/* The cheapest layout of `kind` (ties: smaller sh, then smaller k), or one
 * of 0 bytes when none fits. Past k = bits(span >> sh) every key is linear:
 * a larger k changes nothing. */
static struct keyed_layout keyed_choose(const uint32_t *x, uint32_t n, uint32_t span,
                                        unsigned kind, int force_sh, int force_k)
{
    struct keyed_layout best = { 0 }, next;
    uint64_t limit = UINT64_MAX;
    unsigned top = force_sh >= 0 ? (unsigned)force_sh : bits_for(span);
    for (unsigned sh = 0; sh <= top && sh <= KEYED_MAX_SH; sh++) {
        if (force_sh >= 0 && sh != (unsigned)force_sh)
            continue;
        for (unsigned k = 0; k <= KEYED_MAX_K; k++) {
            bool wanted = force_k < 0 || k == (unsigned)force_k;
            if (wanted && keyed_measure(x, n, kind, sh, k, limit, &next)) {
                best = next;
                limit = next.cost;
            }
            if (force_k < 0 && k >= bits_for(span >> sh))
                break;
        }
    }
    return best;
}

/* The distinct offsets of a volume, relative to its first, into x. */
static void volume_offsets(const struct sorted_entry *s, const struct volume_plan *v, uint32_t *x)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->pages; i++)
        if (i == 0 || s[i].off != s[i - 1].off)
            x[k++] = s[i].off - v->first_offset;
}

/* The keyed layouts a partitioned volume could take instead. */
static void plan_keyed(const segidx_segment_builder *b, const struct sorted_entry *s,
                       struct volume_plan *v, uint32_t *x)
{
    v->ef = v->packed = (struct keyed_layout){ 0 };
    v->pef_bytes = 0;
    if (v->encoding != KIND2_PARTITIONED || v->offsets > KEYED_MAX_OFFSETS || b->force_kind == 1)
        return;
    v->pef_bytes = 2 * (v->top_entries + 1) + PEF_RECORD_BYTES * (v->chunks + 1) +
                   stream_bytes(v->stream_bits);
    volume_offsets(s, v, x);
    if (b->force_kind != (int)KIND3_PACKED) {
        v->ef = keyed_choose(x, v->offsets, v->span, KIND3_EF_BUCKETS, b->force_sh, b->force_k);
        /* Layouts that fit only through many empty keys stay partitioned. */
        if (b->force_kind < 0 && v->ef.bytes > 2 * v->pef_bytes + 64)
            v->ef.bytes = 0;
    }
    if (b->force_kind != (int)KIND3_EF_BUCKETS)
        v->packed = keyed_choose(x, v->offsets, v->span, KIND3_PACKED, b->force_sh, b->force_k);
}

/* Which kind volume v takes when the segment packs (`packed`) or not. */
static unsigned keyed_kind(const segidx_segment_builder *b, const struct volume_plan *v,
                           bool packed, bool keyed)
{
    if (v->encoding == KIND2_RANGE)
        return KIND2_RANGE;
    if (!keyed)
        return KIND2_PARTITIONED;
    if (b->force_kind == (int)KIND3_PACKED)
        return v->packed.bytes ? KIND3_PACKED : KIND2_PARTITIONED;
    if (!v->ef.bytes)
        return KIND2_PARTITIONED;
    return packed && v->packed.bytes ? KIND3_PACKED : KIND3_EF_BUCKETS;
}

static uint64_t volume_bytes(const struct volume_plan *v, unsigned kind)
{
    uint64_t bytes = v->entry_bytes + v->data_bytes;
    if (kind == KIND3_EF_BUCKETS)
        return bytes + 2 - v->pef_bytes + v->ef.bytes;
    if (kind == KIND3_PACKED)
        return bytes + 2 - v->pef_bytes + v->packed.bytes;
    return bytes;
}

static uint64_t index_bytes_with(const segidx_segment_builder *b, const struct volume_plan *p,
                                 bool packed, bool keyed)
{
    uint64_t total = 0;
    for (uint32_t v = 0; v < b->n_vols; v++)
        total += volume_bytes(&p[v], keyed_kind(b, &p[v], packed, keyed));
    return total;
}

/* Packed lanes where the whole index grows by at most a byte a page over
 * Elias-Fano buckets; and back to kind 1 everywhere should the keyed
 * index not fit the segment's limit (the bound add() applies counts kind 1). */
static uint64_t choose_kinds(segidx_segment_builder *b, struct volume_plan *p)
{
    uint64_t ef = index_bytes_with(b, p, false, true), packed = index_bytes_with(b, p, true, true);
    bool pack = packed <= ef + b->n || b->force_kind == (int)KIND3_PACKED;
    bool keyed = seg_index_offset(b->n, b->page_size) + SEG_FOOTER_BYTES + (pack ? packed : ef) <=
                 b->max_bytes;
    uint64_t total = 0;
    for (uint32_t v = 0; v < b->n_vols; v++) {
        unsigned kind = keyed_kind(b, &p[v], pack, keyed);
        p[v].data_bytes = volume_bytes(&p[v], kind) - p[v].entry_bytes;
        if (kind >= KIND3_EF_BUCKETS) {
            const struct keyed_layout *l = kind == KIND3_PACKED ? &p[v].packed : &p[v].ef;
            p[v].data_bytes -= 2;
            p[v].entry_bytes += 2;
            p[v].sh = l->sh;
            p[v].k = l->k;
            p[v].keys = l->keys;
            p[v].stream_len = l->stream_len;
        }
        p[v].encoding = (int)kind;
        total += p[v].entry_bytes + p[v].data_bytes;
    }
    return total;
}

static int plan(segidx_segment_builder *b)
{
    if (b->planned)
        return SEGIDX_OK;
    if (b->n == 0)
        return SEGIDX_EINVAL;
    struct sorted_entry *s = segidx__alloc(b->alloc, b->n * sizeof *s);
    struct volume_plan *p = segidx__alloc(b->alloc, b->n_vols * sizeof *p);
    uint32_t *x = segidx__alloc(b->alloc, b->n * sizeof *x);
    if (!s || !p || !x) {
        segidx__release(b->alloc, s, b->n * sizeof *s);
        segidx__release(b->alloc, p, b->n_vols * sizeof *p);
        segidx__release(b->alloc, x, b->n * sizeof *x);
        return SEGIDX_ENOMEM;
    }
    for (uint32_t i = 0; i < b->n; i++)
        s[i] = (struct sorted_entry){ b->entries[i].vid, b->entries[i].off, i, b->entries[i].lsn };
    qsort(s, b->n, sizeof *s, compare_sorted);

    uint64_t index_len = 0;
    uint32_t v = 0;
    for (uint32_t i = 0; i < b->n; v++) {
        uint32_t j = i + 1;
        while (j < b->n && memcmp(s[j].vid.bytes, s[i].vid.bytes, 16) == 0)
            j++;
        p[v].first = i;
        p[v].pages = j - i;
        if (b->version == SEG_VERSION_1) {
            plan_volume(s + i, &p[v]);
        } else {
            plan_volume_v2(s + i, &p[v]);
            if (b->version == SEG_VERSION_3)
                plan_keyed(b, s + i, &p[v], x);
        }
        index_len += p[v].entry_bytes + p[v].data_bytes;
        i = j;
    }
    segidx__release(b->alloc, x, b->n * sizeof *x);
    b->sorted = s;
    b->plan = p;
    if (b->version == SEG_VERSION_3)
        index_len = choose_kinds(b, p);
    b->planned_size = seg_index_offset(b->n, b->page_size) + index_len + SEG_FOOTER_BYTES;
    b->planned = true;
    return SEGIDX_OK;
}

size_t segidx_segment_builder_size(const segidx_segment_builder *b)
{
    /* Planning only caches what the pages already determine. */
    segidx_segment_builder *mb = (segidx_segment_builder *)b;
    return b && plan(mb) == SEGIDX_OK ? (size_t)b->planned_size : 0;
}

/* ------------------------------------------------------------ write */

static void put_bits(uint8_t *p, uint64_t bit, uint64_t value, unsigned nbits)
{
    for (unsigned k = 0; k < nbits; k++, bit++)
        if (value >> k & 1)
            p[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

static uint8_t *write_bitmap(uint8_t *p, const uint32_t *x, uint32_t n, uint32_t span)
{
    uint64_t words = bitmap_words(span);
    memset(p, 0, 8 * words);
    for (uint32_t i = 0; i < n; i++)
        p[x[i] / 8] |= (uint8_t)(1u << (x[i] % 8));
    uint8_t *samples = p + 8 * words;
    uint32_t ones = 0;
    for (uint64_t w = 0; w < words; w++) {
        if (w % BITMAP_WORDS_PER_SAMPLE == 0)
            segidx__store16(samples + 2 * (w / BITMAP_WORDS_PER_SAMPLE), (uint16_t)ones);
        ones += segidx__popcount64(segidx__load64(p + 8 * w));
    }
    return samples + 2 * div_ceil(words, BITMAP_WORDS_PER_SAMPLE);
}

static uint8_t *write_elias_fano(uint8_t *p, const uint32_t *x, uint32_t n, uint32_t span)
{
    unsigned l = ef_low_bits(n, span);
    uint64_t low_bytes = ef_low_bytes(n, l), high_words = ef_high_words(n, span, l);
    uint64_t buckets = ef_buckets(span, l);
    uint8_t *low = p, *high = p + low_bytes, *samples = high + 8 * high_words;
    memset(p, 0, low_bytes + 8 * high_words);
    for (uint32_t i = 0; i < n; i++) {
        put_bits(low, (uint64_t)i * l, x[i], l);
        uint64_t pos = ((uint64_t)x[i] >> l) + i;
        high[pos / 8] |= (uint8_t)(1u << (pos % 8));
    }
    /* Zero z of the high bits sits after the elements of buckets 0..z. */
    uint32_t i = 0;
    for (uint64_t z = 0; z < buckets; z += EF_ZEROS_PER_SAMPLE) {
        while (i < n && ((uint64_t)x[i] >> l) <= z)
            i++;
        segidx__store16(samples + 2 * (z / EF_ZEROS_PER_SAMPLE), (uint16_t)i);
    }
    return samples + 2 * ef_sample_count(span, l);
}

static uint8_t *write_volume_entry(uint8_t *p, const struct sorted_entry *s,
                                   const struct volume_plan *v)
{
    memcpy(p, s->vid.bytes, 16);
    p += 16;
    p += varint_put(p, v->base_lsn);
    p += varint_put(p, v->pages);
    p += varint_put(p, v->offsets);
    p += varint_put(p, v->first_offset);
    p += varint_put(p, v->span);
    *p++ = (uint8_t)(v->encoding | v->width << KIND_WIDTH_SHIFT | (v->versions ? KIND_VERSIONS : 0));
    return p;
}

/* Offsets, version ranks and rLSNs of one volume; `x` is scratch for
 * `v->offsets` values. */
static uint8_t *write_volume_data(uint8_t *p, const struct sorted_entry *s,
                                  const struct volume_plan *v, uint32_t *x, uint16_t *ranks)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->pages; i++)
        if (i == 0 || s[i].off != s[i - 1].off) {
            ranks[k] = (uint16_t)i;
            x[k++] = s[i].off - v->first_offset;
        }
    if (v->encoding == SEGIDX_OFFSETS_BITMAP)
        p = write_bitmap(p, x, v->offsets, v->span);
    else if (v->encoding == SEGIDX_OFFSETS_ELIAS_FANO)
        p = write_elias_fano(p, x, v->offsets, v->span);
    if (v->versions)
        for (uint32_t i = 0; i < v->offsets; i++, p += 2)
            segidx__store16(p, ranks[i]);
    for (uint32_t i = 0; i < v->pages && v->width; i++, p += v->width) {
        bool new_offset = i == 0 || s[i].off != s[i - 1].off;
        uint64_t value = new_offset ? s[i].lsn - v->base_lsn : s[i].lsn - s[i - 1].lsn;
        if (v->width == 1)
            *p = (uint8_t)value;
        else
            segidx__store16(p, (uint16_t)value);
    }
    return p;
}

/* Version 2 ------------------------------------------------------------ */

static uint8_t *write_entry_v2(uint8_t *p, const struct sorted_entry *s,
                               const struct volume_plan *v)
{
    memcpy(p, s->vid.bytes, 16);
    p += 16;
    p += varint_put(p, v->base_lsn);
    p += varint_put(p, v->pages);
    p += varint_put(p, v->offsets);
    p += varint_put(p, v->first_offset);
    p += varint_put(p, v->span);
    *p++ = (uint8_t)v->encoding;
    *p++ = (uint8_t)v->rlsn_bits;
    if (v->encoding >= (int)KIND3_EF_BUCKETS) {
        *p++ = (uint8_t)v->sh;
        *p++ = (uint8_t)v->k;
    }
    return p;
}

/* One key's bucket of x[0..m), values of width w; its bytes. */
static uint64_t write_bucket(uint8_t *st, const uint32_t *x, uint64_t m, unsigned w, unsigned kind)
{
    uint64_t low = (1ull << w) - 1;
    if (kind == KIND3_PACKED) {
        for (uint64_t q = 0; q < m; q++)
            put_bits(st, q * w, x[q] & low, w);
        return keyed_bucket_bytes(kind, m, w);
    }
    unsigned hb = keyed_high_bits(m, w), l = w - hb;
    uint64_t lows = m + (1ull << hb);
    for (uint64_t q = 0; q < m; q++) {
        uint64_t bit = ((x[q] & low) >> l) + q;
        st[bit / 8] |= (uint8_t)(1u << (bit % 8));
        put_bits(st, lows + q * l, x[q] & low, l);
    }
    return keyed_bucket_bytes(kind, m, w);
}

/* Directory and bucket stream of x[0..n). */
static uint8_t *write_keyed(uint8_t *p, const uint32_t *x, const struct volume_plan *v)
{
    uint8_t *stream = p + KEYED_ENTRY_BYTES * v->keys;
    memset(stream, 0, v->stream_len);
    uint64_t pos = 0;
    uint32_t i = 0;
    for (uint64_t j = 0; j + 1 < v->keys; j++) {
        segidx__store32(p + KEYED_ENTRY_BYTES * j, i | (uint32_t)pos << 16);
        unsigned w;
        uint32_t e = i;
        while (e < v->offsets && keyed_key(x[e], v->sh, v->k, &w) == j)
            e++;
        w = keyed_width(j, v->sh, v->k); /* also for an empty key */
        pos += write_bucket(stream + pos, x + i, e - i, w, (unsigned)v->encoding);
        i = e;
    }
    segidx__store32(p + KEYED_ENTRY_BYTES * (v->keys - 1), v->offsets | (uint32_t)pos << 16);
    return stream + v->stream_len;
}

/* Top directory, chunk records and chunk stream of x[0..n). */
static uint8_t *write_partitioned(uint8_t *p, const uint32_t *x, const struct volume_plan *v)
{
    uint64_t n = v->offsets, chunks = v->chunks, entries = v->top_entries;
    unsigned t = pef_top_shift(v->span, chunks);
    uint8_t *top = p, *records = top + 2 * (entries + 1);
    uint8_t *stream = records + PEF_RECORD_BYTES * (chunks + 1);
    memset(stream, 0, stream_bytes(v->stream_bits));
    uint64_t c = 0;
    for (uint64_t j = 0; j < entries; j++) {
        while (c + 1 < chunks && x[(c + 1) * PEF_CHUNK] <= j << t)
            c++;
        segidx__store16(top + 2 * j, (uint16_t)c);
    }
    segidx__store16(top + 2 * entries, (uint16_t)(chunks - 1));
    uint64_t pos = 0;
    for (c = 0; c < chunks; c++) {
        const uint32_t *y = x + c * PEF_CHUNK;
        uint64_t nc = n - c * PEF_CHUNK < PEF_CHUNK ? n - c * PEF_CHUNK : PEF_CHUNK;
        unsigned l = pef_low_bits(y[nc - 1] - y[0], nc);
        segidx__store32(records + PEF_RECORD_BYTES * c, y[0]);
        segidx__store32(records + PEF_RECORD_BYTES * c + 4, (uint32_t)pos | (uint32_t)l << PEF_POS_BITS);
        uint64_t high = nc + ((uint64_t)(y[nc - 1] - y[0]) >> l) + 1;
        for (uint64_t i = 0; i < nc; i++) {
            uint64_t d = y[i] - y[0], bit = pos + (d >> l) + i;
            stream[bit / 8] |= (uint8_t)(1u << (bit % 8));
            put_bits(stream, pos + high + i * l, d, l);
        }
        pos += high + nc * l;
    }
    segidx__store32(records + PEF_RECORD_BYTES * chunks, 0);
    segidx__store32(records + PEF_RECORD_BYTES * chunks + 4, (uint32_t)pos);
    return stream + stream_bytes(pos);
}

static uint8_t *write_data_v2(uint8_t *p, const struct sorted_entry *s,
                              const struct volume_plan *v, uint32_t *x, uint16_t *ranks)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->pages; i++)
        if (i == 0 || s[i].off != s[i - 1].off) {
            ranks[k] = (uint16_t)i;
            x[k++] = s[i].off - v->first_offset;
        }
    if (v->encoding == KIND2_PARTITIONED)
        p = write_partitioned(p, x, v);
    else if (v->encoding != KIND2_RANGE)
        p = write_keyed(p, x, v);
    uint64_t bytes = stream_bytes((uint64_t)v->offsets * v->rank_bits);
    memset(p, 0, bytes);
    for (uint32_t i = 0; i < v->offsets && v->rank_bits; i++)
        put_bits(p, (uint64_t)i * v->rank_bits, ranks[i], v->rank_bits);
    p += bytes;
    bytes = stream_bytes((uint64_t)v->pages * v->rlsn_bits);
    memset(p, 0, bytes);
    for (uint32_t i = 0; i < v->pages && v->rlsn_bits; i++)
        put_bits(p, (uint64_t)i * v->rlsn_bits, s[i].lsn - v->base_lsn, v->rlsn_bits);
    return p + bytes;
}

static void write_footer(uint8_t *foot, const segidx_segment_builder *b, const segidx_sid *sid,
                         uint64_t index_offset, uint64_t index_len, const uint8_t *header)
{
    memset(foot, 0, SEG_FOOTER_BYTES);
    segidx__store64(foot + FOOT_INDEX_OFFSET, index_offset);
    segidx__store32(foot + FOOT_INDEX_LEN, (uint32_t)index_len);
    segidx__store32(foot + FOOT_PAGE_COUNT, b->n);
    segidx__store32(foot + FOOT_VOLUME_COUNT, b->n_vols);
    segidx__store32(foot + FOOT_PAGE_SIZE, b->page_size);
    memcpy(foot + FOOT_SID, sid->bytes, 16);
    segidx__store64(foot + FOOT_HEADER_SUM, segidx__xxh3(header, SEG_HEADER_BYTES));
    /* The index and footer are contiguous: one checksum pass over both. */
    segidx__store64(foot + FOOT_SUM, segidx__xxh3(foot - index_len, index_len + FOOT_SUM));
    segidx__store16(foot + FOOT_VERSION, (uint16_t)b->version);
    segidx__store16(foot + FOOT_FLAGS, 0);
    memcpy(foot + FOOT_MAGIC, seg_footer_magic, 4);
}

static void write_header(uint8_t *h, const segidx_segment_builder *b, const segidx_sid *sid,
                         uint64_t index_len)
{
    memset(h, 0, SEG_HEADER_BYTES);
    memcpy(h, seg_header_magic, 4);
    segidx__store16(h + HEAD_VERSION, (uint16_t)b->version);
    segidx__store32(h + HEAD_PAGE_SIZE, b->page_size);
    segidx__store32(h + HEAD_PAGE_COUNT, b->n);
    segidx__store32(h + HEAD_VOLUME_COUNT, b->n_vols);
    segidx__store32(h + HEAD_INDEX_LEN, (uint32_t)index_len);
    memcpy(h + HEAD_SID, sid->bytes, 16);
}

int segidx_segment_builder_finish(segidx_segment_builder *b, const segidx_sid *sid, void *buf,
                                  size_t cap)
{
    if (!b || !sid || !buf || b->n == 0)
        return SEGIDX_EINVAL;
    int rc = plan(b);
    if (rc)
        return rc;
    if (cap < b->planned_size)
        return SEGIDX_EINVAL;
    uint32_t *x = segidx__alloc(b->alloc, b->n * sizeof *x);
    uint16_t *ranks = segidx__alloc(b->alloc, b->n * sizeof *ranks);
    if (!x || !ranks) {
        segidx__release(b->alloc, x, b->n * sizeof *x);
        segidx__release(b->alloc, ranks, b->n * sizeof *ranks);
        return SEGIDX_ENOMEM;
    }

    uint8_t *out = buf;
    uint8_t *page = out + SEG_HEADER_BYTES;
    uint8_t *sums = page + (size_t)b->n * b->page_size;
    for (uint32_t i = 0; i < b->n; i++, page += b->page_size) {
        memcpy(page, b->pages + (size_t)b->sorted[i].index * b->page_size, b->page_size);
        segidx__store64(sums + 8 * i, segidx__xxh3(page, b->page_size));
    }
    uint64_t index_offset = seg_index_offset(b->n, b->page_size);
    uint8_t *index = out + index_offset, *p = index;
    bool v1 = b->version == SEG_VERSION_1;
    for (uint32_t v = 0; v < b->n_vols; v++)
        p = v1 ? write_volume_entry(p, b->sorted + b->plan[v].first, &b->plan[v])
               : write_entry_v2(p, b->sorted + b->plan[v].first, &b->plan[v]);
    for (uint32_t v = 0; v < b->n_vols; v++)
        p = v1 ? write_volume_data(p, b->sorted + b->plan[v].first, &b->plan[v], x, ranks)
               : write_data_v2(p, b->sorted + b->plan[v].first, &b->plan[v], x, ranks);
    uint64_t index_len = (uint64_t)(p - index);
    write_header(out, b, sid, index_len);
    write_footer(p, b, sid, index_offset, index_len, out);

    segidx__release(b->alloc, x, b->n * sizeof *x);
    segidx__release(b->alloc, ranks, b->n * sizeof *ranks);
    return SEGIDX_OK;
}
