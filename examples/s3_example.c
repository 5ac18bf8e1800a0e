/* s3_example: segments on S3. Pages of a few volumes go through the packer
 * into segments, each segment is PUT to a bucket as it is cut, each commit
 * is catalogued in an in-memory volume index once all its segments are up,
 * and then every page is read back from the bucket three ways and checked
 * byte for byte against what was written:
 *
 *   cold    a sample of single pages, each segment opened from one ranged
 *           GET of its tail, each page one ranged GET (segment_ranges.h,
 *           hot fetching off);
 *   hot     every page of every volume at every LSN: segments go hot after
 *           16 page GETs and are fetched whole once;
 *   loader  the same reads through the library's loader and
 *           segidx_read_pages(), the source doing whole-object GETs.
 *
 * It prints the requests and bytes each way cost.
 *
 * Usage:
 *   s3_example [--endpoint URL] [--bucket B] [--region R] [--access-key K]
 *              [--secret-key S] [--prefix P] [--no-upload] [--damage]
 *              [--missing]
 * Each setting falls back on the environment: S3_ENDPOINT (default
 * http://127.0.0.1:4568), S3_BUCKET (segidx), S3_REGION (us-east-1),
 * S3_ACCESS_KEY_ID / AWS_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY /
 * AWS_SECRET_ACCESS_KEY (both required), S3_PREFIX (segidx-example).
 * The bucket must exist.
 *
 *   --no-upload  write nothing: the same workload packs into the same
 *                segments under the same names, so this re-catalogues what
 *                an earlier run uploaded under PREFIX and reads it back.
 *   --damage     then flip one byte of one page of a segment on the server,
 *                and check that reading that page fails with
 *                SEGIDX_ECORRUPT (cold, hot and through the loader) while
 *                the segment's other pages still read; then put it back.
 *   --missing    then delete one segment, and check that reading from it
 *                fails with SEGIDX_ENOTFOUND and a 404.
 *
 * Exit status 0 when everything checked, 1 with a message otherwise.
 *
 * Build against an installed libsegidx:
 *     cc s3_example.c $(pkg-config --cflags --libs libsegidx) -lcurl
 */
#define _POSIX_C_SOURCE 200809L

#include <segidx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_segments.h"

enum {
    PAGE = 4096,
    VOLUMES = 3,
    COMMITS = 12,
    PAGES_PER_COMMIT = 48,
    OFFSETS = 512,          /* each volume's pages: 0..511 */
    SEGMENT_BYTES = 1 << 20, /* small segments, so that there are several */
    MAX_SEGMENTS = 64,
    COLD_READS = 8,         /* single pages per volume, cold */
};

struct segment {
    segidx_sid sid;
    size_t len;
};

/* A commit the packer handed over, not yet in the catalog, with copies of
 * what it lent for the callback. */
#define PENDING_SEGS 4
struct pending {
    segidx_volume_commit_item item;
    segidx_commit_segment segs[PENDING_SEGS];
};

struct host {
    s3_client s3;
    segidx_volume_index *vi;
    segidx_vid vids[VOLUMES];
    int no_upload;
    uint64_t prefix_hash;
    struct segment segs[MAX_SEGMENTS];
    size_t n_segs;
    uint64_t uploaded;
    struct pending pending[VOLUMES * COMMITS];
    size_t n_pending;
};

/* Which commits wrote which offsets: the model every read is checked by. */
static segidx_offset commit_offset(segidx_lsn lsn, int k)
{
    return (segidx_offset)((lsn * 37 + (uint64_t)k * 11) % OFFSETS);
}

static int commit_wrote(segidx_lsn lsn, segidx_offset off)
{
    for (int k = 0; k < PAGES_PER_COMMIT; k++)
        if (commit_offset(lsn, k) == off)
            return 1;
    return 0;
}

/* The LSN page `off` holds as of `lsn` (0: never written). */
static segidx_lsn model_lsn(segidx_offset off, segidx_lsn lsn)
{
    for (; lsn > 0; lsn--)
        if (commit_wrote(lsn, off))
            return lsn;
    return 0;
}

static void fill(uint8_t *page, int volume, segidx_offset off, segidx_lsn lsn)
{
    uint64_t x = ((uint64_t)volume << 48) ^ ((uint64_t)off << 20) ^ lsn;
    for (int i = 0; i < PAGE; i += 8) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        memcpy(page + i, &x, 8);
    }
    snprintf((char *)page, 64, "volume %d page %u lsn %llu", volume, (unsigned)off,
             (unsigned long long)lsn);
}

/* ------------------------------------------------------------ writing */

static int next_sid(void *ctx, segidx_sid *sid)
{
    struct host *h = ctx;
    if (h->n_segs == MAX_SEGMENTS)
        return SEGIDX_EFULL;
    uint64_t n = h->n_segs + 1;
    for (int i = 0; i < 8; i++) {
        sid->bytes[i] = (uint8_t)(h->prefix_hash >> (56 - 8 * i));
        sid->bytes[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    }
    return SEGIDX_OK;
}

/* A finished segment: up to the bucket before anything names it. */
static int emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n;
    struct host *h = ctx;
    if (!h->no_upload) {
        int rc = s3_put_segment(&h->s3, sid, buf, len);
        if (rc)
            return rc;
        h->uploaded += len;
    }
    h->segs[h->n_segs++] = (struct segment){ *sid, len };
    return SEGIDX_OK;
}

/* Every segment of the commit is in the bucket: keep it for the group
 * commit after this packer call. */
static int commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_commit_segment *segs, size_t n)
{
    struct host *h = ctx;
    if (n > PENDING_SEGS || h->n_pending == VOLUMES * COMMITS)
        return SEGIDX_ERANGE;
    struct pending *p = &h->pending[h->n_pending];
    for (size_t i = 0; i < n; i++) {
        p->segs[i].sid = segs[i].sid;
        if (!(p->segs[i].offsets = segidx_offset_set_copy(segs[i].offsets)))
            return SEGIDX_ENOMEM; /* (the copies before it leak: the example stops) */
    }
    p->item = (segidx_volume_commit_item){ *vid, lsn, lsn, p->segs, n };
    h->n_pending++;
    return SEGIDX_OK;
}

/* The commits handed over since the last call, into the catalog in one
 * atomic write. */
static int commit_pending(struct host *h)
{
    segidx_volume_commit_item items[VOLUMES * COMMITS];
    for (size_t i = 0; i < h->n_pending; i++)
        items[i] = h->pending[i].item;
    int rc = segidx_volume_commit_group(h->vi, items, h->n_pending, NULL);
    for (size_t i = 0; i < h->n_pending; i++)
        for (size_t j = 0; j < h->pending[i].item.n; j++)
            segidx_offset_set_free((segidx_offset_set *)h->pending[i].segs[j].offsets);
    h->n_pending = 0;
    return rc;
}

static int write_volumes(struct host *h)
{
    segidx_packer_options po = { { PAGE, SEGMENT_BYTES, NULL }, next_sid, emit, h,
                                 commit_ready };
    segidx_packer *p;
    int rc = segidx_packer_new(&po, &p);
    uint8_t page[PAGE];
    for (segidx_lsn lsn = 1; lsn <= COMMITS && !rc; lsn++)
        for (int v = 0; v < VOLUMES && !rc; v++)
            for (int k = 0; k < PAGES_PER_COMMIT && !rc; k++) {
                fill(page, v, commit_offset(lsn, k), lsn);
                rc = segidx_packer_add(p, &h->vids[v], commit_offset(lsn, k), lsn, page);
                if (!rc)
                    rc = commit_pending(h);
            }
    if (!rc)
        rc = segidx_packer_flush(p);
    if (!rc)
        rc = commit_pending(h);
    segidx_packer_free(p);
    return rc;
}

/* ------------------------------------------------------------ reading */

struct check {
    int volume;
    segidx_lsn at;
    uint64_t pages;   /* pages handed out and checked */
};

static int check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct check *c = ctx;
    uint8_t want[PAGE];
    segidx_lsn want_lsn = model_lsn(off, c->at);
    if (lsn != want_lsn || (page == NULL) != (want_lsn == 0))
        return SEGIDX_ECORRUPT;
    c->pages++;
    if (!page)
        return 0;
    fill(want, c->volume, off, lsn);
    return memcmp(page, want, PAGE) ? SEGIDX_ECORRUPT : 0;
}

typedef int (*read_fn)(void *reader, segidx_volume_index *vi, const segidx_vid *vid,
                       segidx_lsn lsn, const segidx_offset_set *offsets, struct check *c);

static int read_ranges(void *reader, segidx_volume_index *vi, const segidx_vid *vid,
                       segidx_lsn lsn, const segidx_offset_set *offsets, struct check *c)
{
    return seg_ranges_read_pages(reader, vi, vid, lsn, offsets, check_page, c);
}

static int read_loader(void *reader, segidx_volume_index *vi, const segidx_vid *vid,
                       segidx_lsn lsn, const segidx_offset_set *offsets, struct check *c)
{
    return segidx_read_pages(vi, reader, vid, lsn, offsets, check_page, c);
}

/* One page of volume v at lsn. */
static int read_one(read_fn rf, void *reader, struct host *h, int v, segidx_offset off,
                    segidx_lsn lsn, uint64_t *pages)
{
    segidx_offset_set *one = segidx_offset_set_new();
    if (!one)
        return SEGIDX_ENOMEM;
    struct check c = { v, lsn, 0 };
    int rc = segidx_offset_set_add(one, off);
    if (!rc)
        rc = rf(reader, h->vi, &h->vids[v], lsn, one, &c);
    segidx_offset_set_free(one);
    if (pages)
        *pages += c.pages;
    return rc;
}

/* Every offset of every volume at every LSN. */
static int read_all(read_fn rf, void *reader, struct host *h, uint64_t *pages)
{
    segidx_offset_set *all = segidx_offset_set_new();
    int rc = all ? segidx_offset_set_add_range(all, 0, OFFSETS) : SEGIDX_ENOMEM;
    for (int v = 0; v < VOLUMES && !rc; v++)
        for (segidx_lsn lsn = 1; lsn <= COMMITS && !rc; lsn++) {
            struct check c = { v, lsn, 0 };
            rc = rf(reader, h->vi, &h->vids[v], lsn, all, &c);
            *pages += c.pages;
        }
    segidx_offset_set_free(all);
    return rc;
}

static uint64_t segment_bytes(const struct host *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i < h->n_segs; i++)
        n += h->segs[i].len;
    return n;
}

static void print_ranges(const char *what, const seg_ranges_stats *st, uint64_t pages)
{
    printf("%-7s %6llu pages checked: %llu tail GETs %llu B, %llu page GETs %llu B, "
           "%llu whole GETs %llu B, %llu HEADs; %llu B in all\n",
           what, (unsigned long long)pages, (unsigned long long)st->tail_gets,
           (unsigned long long)st->tail_bytes, (unsigned long long)st->page_gets,
           (unsigned long long)st->page_bytes, (unsigned long long)st->whole_gets,
           (unsigned long long)st->whole_bytes, (unsigned long long)st->heads,
           (unsigned long long)(st->tail_bytes + st->page_bytes + st->whole_bytes +
                                st->refused_bytes));
}

static int fail(const char *what, int rc, const s3_client *s3)
{
    fprintf(stderr, "s3_example: %s: %s\n", what, segidx_strerror(rc));
    if (s3 && s3->error[0])
        fprintf(stderr, "s3_example: %s\n", s3->error);
    return 1;
}

/* Cold: single pages, each segment opened from its tail, no whole GETs. */
static int read_cold(struct host *h, seg_store *store)
{
    seg_ranges_options o = { 0, UINT32_MAX, 0 };
    seg_ranges *r;
    int rc = seg_ranges_new(store, &o, &r);
    if (rc)
        return fail("cold reader", rc, NULL);
    uint64_t pages = 0;
    for (int v = 0; v < VOLUMES && !rc; v++)
        for (int i = 0; i < COLD_READS && !rc; i++) {
            segidx_lsn lsn = COMMITS - (segidx_lsn)((i * 5 + v) % COMMITS);
            segidx_offset off = commit_offset(lsn, (i * 7 + v * 3) % PAGES_PER_COMMIT);
            rc = read_one(read_ranges, r, h, v, off, lsn, &pages);
        }
    seg_ranges_stats st;
    seg_ranges_stats_get(r, &st);
    seg_ranges_free(r);
    if (rc)
        return fail("cold read", rc, &h->s3);
    print_ranges("cold", &st, pages);
    /* What one page from a segment not opened yet costs, on average. */
    uint64_t opens = st.opens ? st.opens : 1;
    uint64_t tail = st.tail_bytes / opens, page = st.page_bytes / (st.page_gets ? st.page_gets : 1);
    printf("one cold page: %llu B (tail %llu B + page %llu B; %s) where a whole segment is "
           "%llu B on average\n",
           (unsigned long long)(tail + page), (unsigned long long)tail,
           (unsigned long long)page,
           st.suffix_ignored ? "HEAD, tail GET, page GET" : "tail GET, page GET",
           (unsigned long long)(segment_bytes(h) / h->n_segs));
    if (st.suffix_ignored)
        printf("the server ignores suffix ranges (bytes=-N): segment lengths come from "
               "HEAD, one more request per segment opened\n");
    return 0;
}

static int read_hot(struct host *h, seg_store *store)
{
    seg_ranges *r;
    int rc = seg_ranges_new(store, NULL, &r);
    if (rc)
        return fail("hot reader", rc, NULL);
    uint64_t pages = 0;
    rc = read_all(read_ranges, r, h, &pages);
    seg_ranges_stats st;
    seg_ranges_stats_get(r, &st);
    seg_ranges_free(r);
    if (rc)
        return fail("hot read", rc, &h->s3);
    print_ranges("hot", &st, pages);
    return 0;
}

static int read_through_loader(struct host *h, seg_store *store)
{
    seg_ranges *r;
    segidx_loader *l = NULL;
    int rc = seg_ranges_new(store, NULL, &r);
    segidx_segment_source src = seg_ranges_source(r);
    if (!rc)
        rc = segidx_loader_new(&src, NULL, &l);
    uint64_t pages = 0;
    if (!rc)
        rc = read_all(read_loader, l, h, &pages);
    segidx_loader_free(l);
    seg_ranges_stats st;
    seg_ranges_stats_get(r, &st);
    seg_ranges_free(r);
    if (rc)
        return fail("loader read", rc, &h->s3);
    print_ranges("loader", &st, pages);
    return 0;
}

/* ------------------------------------------------------------ failures */

struct pick {
    uint32_t want_local;
    segidx_vid vid;
    segidx_offset off;
    segidx_lsn lsn;
    int found;
};

static int pick_page(void *ctx, const segidx_segment_page *p)
{
    struct pick *k = ctx;
    if (p->local != k->want_local)
        return 0;
    k->off = p->offset;
    k->lsn = p->lsn;
    k->found = 1;
    return 1;
}

/* The volume, offset and LSN of page `local` of segment `seg`. */
static int locate(const segidx_segment *seg, const struct host *h, uint32_t local, int *v,
                  struct pick *k)
{
    k->want_local = local;
    k->found = 0;
    for (int i = 0; i < VOLUMES && !k->found; i++) {
        segidx_segment_iterate(seg, &h->vids[i], pick_page, k);
        if (k->found)
            *v = i;
    }
    return k->found ? SEGIDX_OK : SEGIDX_ENOTFOUND;
}

/* Whether page (v, off) as of lsn is the version that segment holds. */
static int expect(const char *what, int rc, int want, const s3_client *s3)
{
    if (rc == want) {
        printf("  %-44s %s, as expected\n", what, want ? segidx_strerror(rc) : "ok");
        return 0;
    }
    fprintf(stderr, "s3_example: %s: %s where %s was expected\n", what, segidx_strerror(rc),
            want ? segidx_strerror(want) : "ok");
    if (rc && s3->error[0])
        fprintf(stderr, "s3_example: %s\n", s3->error);
    return 1;
}

static int damage_test(struct host *h, seg_store *store)
{
    const struct segment *victim = &h->segs[0];
    char key[400];
    s3_segment_key(&h->s3, &victim->sid, key, sizeof key);
    seg_reply whole;
    seg_get all = { SEG_GET_WHOLE, 0, 0, 0 };
    int rc = s3_get(&h->s3, key, &all, &whole);
    if (rc)
        return fail("damage: get", rc, &h->s3);
    segidx_segment *seg;
    if ((rc = segidx_segment_open(whole.body, (size_t)whole.len, &seg))) {
        free(whole.body);
        return fail("damage: open", rc, NULL);
    }
    segidx_segment_stats ss;
    segidx_segment_stats_get(seg, &ss);
    int bad_v = 0, good_v = 0;
    struct pick bad, good;
    uint64_t at;
    uint32_t plen;
    rc = locate(seg, h, ss.page_count / 2, &bad_v, &bad);
    if (!rc)
        rc = locate(seg, h, ss.page_count / 2 + 1, &good_v, &good);
    if (!rc)
        rc = segidx_segment_page_range(seg, ss.page_count / 2, &at, &plen);
    segidx_segment_close(seg);
    if (rc) {
        free(whole.body);
        return fail("damage: locate", rc, NULL);
    }
    whole.body[at + 100] ^= 0x20;
    rc = s3_put(&h->s3, key, whole.body, (size_t)whole.len);
    whole.body[at + 100] ^= 0x20;
    if (rc) {
        free(whole.body);
        return fail("damage: put", rc, &h->s3);
    }
    printf("damage: flipped byte %llu of %s (page %u: volume %d offset %u lsn %llu)\n",
           (unsigned long long)(at + 100), key, ss.page_count / 2, bad_v, (unsigned)bad.off,
           (unsigned long long)bad.lsn);

    int bad_count = 0;
    seg_ranges_options cold = { 0, UINT32_MAX, 0 }, hot = { 0, 1, 0 };
    seg_ranges *rc_cold = NULL, *rc_hot = NULL, *rc_src = NULL;
    segidx_loader *l = NULL;
    rc = seg_ranges_new(store, &cold, &rc_cold);
    if (!rc)
        rc = seg_ranges_new(store, &hot, &rc_hot);
    if (!rc)
        rc = seg_ranges_new(store, NULL, &rc_src);
    segidx_segment_source src = seg_ranges_source(rc_src);
    if (!rc)
        rc = segidx_loader_new(&src, NULL, &l);
    if (rc) {
        free(whole.body);
        return fail("damage: readers", rc, NULL);
    }
    bad_count += expect("cold read of the next page",
                        read_one(read_ranges, rc_cold, h, good_v, good.off, good.lsn, NULL),
                        0, &h->s3);
    bad_count += expect("cold read of the damaged page",
                        read_one(read_ranges, rc_cold, h, bad_v, bad.off, bad.lsn, NULL),
                        SEGIDX_ECORRUPT, &h->s3);
    bad_count += expect("hot read of the next page",
                        read_one(read_ranges, rc_hot, h, good_v, good.off, good.lsn, NULL), 0,
                        &h->s3);
    bad_count += expect("hot read of the damaged page",
                        read_one(read_ranges, rc_hot, h, bad_v, bad.off, bad.lsn, NULL),
                        SEGIDX_ECORRUPT, &h->s3);
    bad_count += expect("loader read of the next page",
                        read_one(read_loader, l, h, good_v, good.off, good.lsn, NULL), 0,
                        &h->s3);
    bad_count += expect("loader read of the damaged page",
                        read_one(read_loader, l, h, bad_v, bad.off, bad.lsn, NULL),
                        SEGIDX_ECORRUPT, &h->s3);
    /* Each reader first took the segment's good page, so the hot and the
     * loader ones hold the damaged copy when they meet the bad page; that
     * copy is dropped there. Put the good bytes back: the same readers
     * heal, as nothing damaged was kept. */
    rc = s3_put(&h->s3, key, whole.body, (size_t)whole.len);
    free(whole.body);
    if (rc)
        bad_count += expect("put the segment back", rc, 0, &h->s3);
    bad_count += expect("cold read after repair",
                        read_one(read_ranges, rc_cold, h, bad_v, bad.off, bad.lsn, NULL), 0,
                        &h->s3);
    bad_count += expect("hot read after repair",
                        read_one(read_ranges, rc_hot, h, bad_v, bad.off, bad.lsn, NULL), 0,
                        &h->s3);
    bad_count += expect("loader read after repair",
                        read_one(read_loader, l, h, bad_v, bad.off, bad.lsn, NULL), 0, &h->s3);
    segidx_loader_free(l);
    seg_ranges_free(rc_cold);
    seg_ranges_free(rc_hot);
    seg_ranges_free(rc_src);
    return bad_count ? 1 : 0;
}

static int missing_test(struct host *h, seg_store *store)
{
    const struct segment *victim = &h->segs[h->n_segs - 1];
    char key[400];
    s3_segment_key(&h->s3, &victim->sid, key, sizeof key);
    /* A page the victim holds: its first page, from its tail. */
    seg_ranges *r;
    int rc = seg_ranges_new(store, NULL, &r);
    if (rc)
        return fail("missing: reader", rc, NULL);
    seg_reply tail;
    seg_get req = { SEG_GET_WHOLE, 0, 0, 0 };
    segidx_segment *seg = NULL;
    int v = 0;
    struct pick p;
    rc = s3_get(&h->s3, key, &req, &tail);
    if (!rc) {
        rc = segidx_segment_open(tail.body, (size_t)tail.len, &seg);
        if (!rc)
            rc = locate(seg, h, 0, &v, &p);
        segidx_segment_close(seg);
        free(tail.body);
    }
    if (!rc)
        rc = s3_delete(&h->s3, key);
    if (rc) {
        seg_ranges_free(r);
        return fail("missing: set up", rc, &h->s3);
    }
    printf("missing: deleted %s (holds volume %d offset %u lsn %llu)\n", key, v,
           (unsigned)p.off, (unsigned long long)p.lsn);
    rc = read_one(read_ranges, r, h, v, p.off, p.lsn, NULL);
    seg_ranges_free(r);
    int bad = expect("read from the deleted segment", rc, SEGIDX_ENOTFOUND, &h->s3);
    if (!bad)
        printf("  the server said: %s\n", h->s3.error);
    return bad;
}

/* ------------------------------------------------------------ main */

static const char *setting(int argc, char **argv, const char *flag, const char *env1,
                           const char *env2, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], flag))
            return argv[i + 1];
    const char *v = env1 ? getenv(env1) : NULL;
    if ((!v || !*v) && env2)
        v = getenv(env2);
    return v && *v ? v : dflt;
}

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag))
            return 1;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: s3_example [--endpoint URL] [--bucket B] [--region R] "
                    "[--access-key K] [--secret-key S] [--prefix P] [--no-upload] "
                    "[--damage] [--missing]\n"
                    "(settings also from S3_ENDPOINT, S3_BUCKET, S3_REGION, "
                    "S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_PREFIX)\n");
    return 2;
}

static int run(struct host *h, int argc, char **argv)
{
    segidx_kv kv;
    int rc = segidx_kv_mem_open(&kv);
    if (rc || (rc = segidx_volume_index_open(kv, &h->vi)))
        return fail("open the index", rc, NULL);
    for (int v = 0; v < VOLUMES; v++) {
        memset(h->vids[v].bytes, 0xA0, 16);
        h->vids[v].bytes[15] = (uint8_t)v;
    }
    if ((rc = write_volumes(h)))
        return fail(h->no_upload ? "catalogue" : "write and upload", rc, &h->s3);
    printf("%d volumes x %d commits: %zu segments, %llu B%s\n", VOLUMES, COMMITS, h->n_segs,
           (unsigned long long)segment_bytes(h),
           h->no_upload ? " (not uploaded: already there)" : " uploaded");

    seg_store store = s3_segment_store(&h->s3);
    if (read_cold(h, &store) || read_hot(h, &store) || read_through_loader(h, &store))
        return 1;
    if (has_flag(argc, argv, "--damage") && damage_test(h, &store))
        return 1;
    if (has_flag(argc, argv, "--missing") && missing_test(h, &store))
        return 1;
    printf("%llu requests, %llu B sent, %llu B received\n", (unsigned long long)h->s3.requests,
           (unsigned long long)h->s3.bytes_sent, (unsigned long long)h->s3.bytes_received);
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const known[] = { "--endpoint", "--bucket", "--region", "--access-key",
                                         "--secret-key", "--prefix" };
    for (int i = 1; i < argc; i++) {
        int ok = !strcmp(argv[i], "--no-upload") || !strcmp(argv[i], "--damage") ||
                 !strcmp(argv[i], "--missing");
        for (size_t k = 0; k < sizeof known / sizeof *known && !ok; k++)
            if (!strcmp(argv[i], known[k]) && i + 1 < argc)
                ok = 1, i++;
        if (!ok)
            return usage();
    }
    s3_config cfg = {
        setting(argc, argv, "--endpoint", "S3_ENDPOINT", NULL, "http://127.0.0.1:4568"),
        setting(argc, argv, "--bucket", "S3_BUCKET", NULL, "segidx"),
        setting(argc, argv, "--region", "S3_REGION", "AWS_REGION", "us-east-1"),
        setting(argc, argv, "--access-key", "S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", NULL),
        setting(argc, argv, "--secret-key", "S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY",
                NULL),
        setting(argc, argv, "--prefix", "S3_PREFIX", NULL, "segidx-example"),
    };
    setvbuf(stdout, NULL, _IOLBF, 0); /* in order with stderr */
    static struct host h;
    h.no_upload = has_flag(argc, argv, "--no-upload");
    if (curl_global_init(CURL_GLOBAL_DEFAULT))
        return fail("curl_global_init", SEGIDX_EIO, NULL);
    int rc = s3_client_init(&h.s3, &cfg);
    if (rc) {
        curl_global_cleanup();
        return fail("configure", rc, &h.s3);
    }
    /* Segment ids: a hash of the prefix, then a counter, so that a run
     * under another prefix never names another run's segments. */
    h.prefix_hash = 14695981039346656037u;
    for (const char *s = cfg.prefix; *s; s++)
        h.prefix_hash = (h.prefix_hash ^ (uint8_t)*s) * 1099511628211u;
    printf("s3_example: %s/%s/%s/ (region %s)\n", h.s3.endpoint, h.s3.bucket, h.s3.prefix,
           cfg.region);
    rc = run(&h, argc, argv);
    segidx_volume_index_close(h.vi);
    s3_client_free(&h.s3);
    curl_global_cleanup();
    return rc;
}
