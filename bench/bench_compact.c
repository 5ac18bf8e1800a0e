/* Compaction and garbage collection figures (segidx.h, "compaction").
 *
 * 1. What one compaction pass does to reads. 8 volumes of 4096 pages of
 *    4 KiB, each loaded whole at LSN 1 (its own segments: 16 MiB and a
 *    small rest), then R rounds in which every volume commits 1-8 distinct
 *    pages, Zipf(1) over its pages (workload.h), and the round's 8 commits
 *    are flushed into one segment: small segments shared by every volume,
 *    as an engine that pushes its writes out quickly makes them. Segments
 *    live in memory behind a segidx_segment_source, the catalog in the
 *    in-memory store. Every volume is then pruned to keep_from = 1 + R/2
 *    (the old retained LSN) and the segments nothing names are dropped
 *    (gc: segidx_volume_index_segments()). Then one pass of
 *    segidx_volume_compact() over every volume, default options, through
 *    one loader that holds every segment, and the same gc. Two catalogs
 *    are built from the same commits and pruned alike, and only one is
 *    compacted, so that before and after are read side by side. Before
 *    and after the pass:
 *      - segments a 1024-page read pins (the distinct sids find_segments
 *        names), at the latest LSN and at keep_from;
 *      - us per 1024-page segidx_read_pages(), warm loader holding every
 *        segment, median of rounds, before and after taking turns;
 *    and, for the pass: bytes it wrote per byte of live data (page
 *    versions the catalog names x 4 KiB) against the page bytes it
 *    copied, per byte of live data; its time per volume;
 *    the bytes segments hold after it (and gc) against before. Every read
 *    is checked, untimed, against a model of the commits, before and
 *    after: the same LSN and bytes for every page.
 *
 * 2. What the garbage collector's question costs over C commits (LMDB,
 *    nosync, under /tmp): 4 volumes, commit i to volume i % 4, 1-8
 *    Zipf(1) pages of 16384, fake sids: one segment per 64 commits (16 of
 *    each volume), default checkpoints. The library's design,
 *    segidx_volume_index_segments() (one scan of every entry key), against
 *    the alternative, a reverse reference kept in the catalog: refs/<sid>
 *    -> u64 count, read-modify-written under SEGIDX_KV_EXPECT in the same
 *    batch as every write that adds or removes entries (struct refs_store
 *    below simulates it over the raw KV vtable; the library has no such
 *    thing). Its gc query is a scan of refs/ for counts of 0, through the
 *    library's checked scan as index_segments' is. Figures:
 *    both gc queries at C commits, and again once every volume is pruned
 *    to half its history (the two designs' answers cross-checked, every
 *    count against the entries); keys each query reads; and commits/s of
 *    the plain batch against the batch plus the count updates, in one
 *    store: blocks of 64 commits (one segment) take one way or the other
 *    by a seeded coin, a plain block's counts are written after it,
 *    outside the clock, and each way's rate is its median block's.
 *
 *    The cost this run cannot show (a single writer, and LMDB serializes
 *    writers anyway): contention. Commits of different volumes touch
 *    different keys (their meta, their entries) and never conflict; with
 *    counts, every commit that names a segment read-modify-writes that
 *    segment's count, so the volumes whose commits share a segment (here
 *    4, in an engine that packs many volumes' commits into each segment
 *    many more) all write one key. Over a store whose EXPECTs are
 *    optimistic (PostgreSQL, several hosts), two such commits racing
 *    conflict and one goes round again (another read, another write);
 *    concurrent writers serialize on the count of the segment they share,
 *    the hottest key in the catalog. A prune or a compaction changes the
 *    counts of many segments in one batch, so it conflicts with every
 *    commit naming any of them. The scan design keeps commits free of
 *    any shared key and pays at gc time instead.
 *
 *   bench_compact [R [C]]   default R = 1000 rounds, C = 20000 commits;
 *                           0 skips that part. make bench-long: 4000 1000000.
 *   SEGIDX_BENCH_VERBOSE=1  also what the pass and the gc queries did, on
 *                           stderr.
 * Progress goes to stderr for C >= 100000. */
#include "bench.h"
#include "kv.h"
#include "workload.h"

#include <errno.h>
#include <string.h>

#include "kv_guard.h"
#include "segidx.h"

/* ------------------------------------------------------------ sids */

/* Sid number k >= 1: its first 8 bytes, the rest zero. */
static segidx_sid sid_of_number(uint64_t k)
{
    segidx_sid sid = { { 0 } };
    memcpy(sid.bytes, &k, 8);
    return sid;
}

static uint64_t number_of_sid(const segidx_sid *sid)
{
    uint64_t k;
    memcpy(&k, sid->bytes, 8);
    return k;
}

/* A growing list of sids. */
struct sid_list {
    segidx_sid *v;
    size_t n, cap;
};

static void sid_list_push(struct sid_list *l, const segidx_sid *sid)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        BENCH_CHECK(l->v);
    }
    l->v[l->n++] = *sid;
}

static int compare_sid(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(segidx_sid));
}

static size_t sid_list_distinct(struct sid_list *l)
{
    qsort(l->v, l->n, sizeof *l->v, compare_sid);
    size_t d = 0;
    for (size_t i = 0; i < l->n; i++)
        d += i == 0 || compare_sid(&l->v[i], &l->v[i - 1]) != 0;
    return d;
}

/* A commit's pages: 1-8 distinct ones, Zipf(1) over the volume's. */
static segidx_offset_set *commit_offsets(workload *w, uint32_t volume_pages)
{
    segidx_offset_set *s = segidx_offset_set_new();
    BENCH_CHECK(s);
    for (uint32_t n = 1 + (uint32_t)wl_below(w, 8); segidx_offset_set_cardinality(s) < n;)
        BENCH_CHECK(segidx_offset_set_add(s, wl_zipf(w, volume_pages)) == SEGIDX_OK);
    return s;
}

/* ------------------------------------------------------------ part 1: segments in memory */

enum { PAGE = 4096, VOLUMES = 8, VOLUME_PAGES = 4096, READ_PAGES = 1024,
       READS_PER_VOLUME = 2, READS = VOLUMES * READS_PER_VOLUME, READ_ROUNDS = 7 };

/* Every segment written, by sid number (k at k - 1); NULL once gc took it.
 * Two catalogs name them, built from the same commits: vi[AFTER], which
 * the pass compacts, and vi[BEFORE], kept as it was, so that reads
 * before and after can be timed in alternating rounds. */
enum { AFTER = 0, BEFORE = 1 };

struct segments {
    struct { uint8_t *buf; size_t len; bool named; } *s;
    uint64_t n, cap;
    uint64_t held_bytes, held;
    segidx_volume_index *vi[2];
};

static int next_sid(void *ctx, segidx_sid *sid)
{
    struct segments *m = ctx;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->s = realloc(m->s, m->cap * sizeof *m->s);
        BENCH_CHECK(m->s);
    }
    m->s[m->n].buf = NULL;
    *sid = sid_of_number(++m->n);
    return 0;
}

static int keep_segment(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                        const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n;
    struct segments *m = ctx;
    uint64_t k = number_of_sid(sid);
    BENCH_CHECK(k >= 1 && k <= m->n && !m->s[k - 1].buf);
    m->s[k - 1].buf = bench_xmalloc(len);
    memcpy(m->s[k - 1].buf, buf, len);
    m->s[k - 1].len = len;
    m->s[k - 1].named = false;
    m->held_bytes += len;
    m->held++;
    return 0;
}

static int commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_commit_segment *segs, size_t n)
{
    struct segments *m = ctx;
    int rc = segidx_volume_commit(m->vi[AFTER], vid, lsn, lsn, segs, n);
    return rc ? rc : segidx_volume_commit(m->vi[BEFORE], vid, lsn, lsn, segs, n);
}

static int fetch(void *ctx, const segidx_sid *sid, const void **buf, size_t *len, void **handle)
{
    struct segments *m = ctx;
    uint64_t k = number_of_sid(sid);
    if (k < 1 || k > m->n || !m->s[k - 1].buf)
        return SEGIDX_ENOTFOUND;
    *buf = m->s[k - 1].buf;
    *len = m->s[k - 1].len;
    *handle = NULL;
    return 0;
}

static void release(void *ctx, const segidx_sid *sid, const void *buf, size_t len, void *handle)
{
    (void)ctx, (void)sid, (void)buf, (void)len, (void)handle;
}

/* A loader that holds every segment there is now, and room to spare. */
static segidx_loader *loader_for_all(struct segments *m)
{
    segidx_segment_source src = { SEGIDX_SEGMENT_SOURCE_VERSION, fetch, release, m };
    segidx_loader_options o = { 2 * m->held_bytes + ((size_t)64 << 20), 0 };
    segidx_loader *l;
    BENCH_CHECK(segidx_loader_new(&src, &o, &l) == SEGIDX_OK);
    return l;
}

static int mark_named(void *ctx, const segidx_sid *sid)
{
    struct segments *m = ctx;
    uint64_t k = number_of_sid(sid);
    BENCH_CHECK(k >= 1 && k <= m->n && m->s[k - 1].buf);
    m->s[k - 1].named = true;
    return 0;
}

/* Bytes of the segments catalog `which` names (marking them). */
static uint64_t named_bytes(struct segments *m, int which)
{
    for (uint64_t i = 0; i < m->n; i++)
        m->s[i].named = false;
    BENCH_CHECK(segidx_volume_index_segments(m->vi[which], mark_named, m) == SEGIDX_OK);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < m->n; i++)
        bytes += m->s[i].named ? m->s[i].len : 0;
    return bytes;
}

/* Drop every segment neither catalog names. No loader may hold any. */
static void gc(struct segments *m)
{
    named_bytes(m, AFTER);
    BENCH_CHECK(segidx_volume_index_segments(m->vi[BEFORE], mark_named, m) == SEGIDX_OK);
    for (uint64_t i = 0; i < m->n; i++) {
        if (!m->s[i].buf || m->s[i].named)
            continue;
        m->held_bytes -= m->s[i].len;
        m->held--;
        free(m->s[i].buf);
        m->s[i].buf = NULL;
    }
}

static int add_cardinality(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                           const segidx_offset_set *offsets)
{
    (void)lsn, (void)sid;
    *(uint64_t *)ctx += segidx_offset_set_cardinality(offsets);
    return 0;
}

/* ------------------------------------------------------------ part 1: reads */

struct zipf_run {
    struct segments m;
    segidx_vid vid[VOLUMES];
    uint32_t rounds;
    segidx_lsn lsn[2];                       /* [0] latest, [1] keep_from */
    uint32_t model[2][VOLUMES][VOLUME_PAGES]; /* each page's LSN at lsn[k] */
    segidx_offset_set *q[READS];             /* q[i] reads volume i / READS_PER_VOLUME */
    char name[16];                           /* R as figures name it */
};

struct check_read {
    const segidx_vid *vid;
    const uint32_t *model;
    uint8_t *page;
    uint32_t n;
    uint64_t lsn_sum; /* what the timed reads must add up to */
};

/* The page the model says, byte for byte. */
static int check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct check_read *c = ctx;
    BENCH_CHECK(page && off < VOLUME_PAGES && lsn == c->model[off]);
    wl_fill_page(c->page, PAGE, &(wl_page){ *c->vid, off, lsn });
    BENCH_CHECK(memcmp(page, c->page, PAGE) == 0);
    c->n++;
    c->lsn_sum += lsn;
    return 0;
}

static int note_sid(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    (void)lsn, (void)cut;
    sid_list_push(ctx, sid);
    return 0;
}

/* Every read of catalog `which` at lsn[at], checked against the model,
 * untimed; the mean of the segments each pins. Adds the LSNs of the
 * pages read to *lsn_sum. */
static double check_reads(struct zipf_run *z, segidx_loader *l, int which, int at,
                          uint64_t *lsn_sum)
{
    segidx_volume_index *vi = z->m.vi[which];
    uint8_t *page = bench_xmalloc(PAGE);
    size_t pinned = 0;
    for (int i = 0; i < READS; i++) {
        int v = i / READS_PER_VOLUME;
        struct check_read c = { &z->vid[v], z->model[at][v], page, 0, 0 };
        BENCH_CHECK(segidx_read_pages(vi, l, &z->vid[v], z->lsn[at], z->q[i], check_page, &c) ==
                    SEGIDX_OK);
        BENCH_CHECK(c.n == READ_PAGES);
        *lsn_sum += c.lsn_sum;
        struct sid_list sids = { NULL, 0, 0 };
        segidx_offset_set *q = segidx_offset_set_copy(z->q[i]);
        BENCH_CHECK(q);
        BENCH_CHECK(segidx_volume_find_segments(vi, &z->vid[v], z->lsn[at], q, note_sid, &sids) ==
                    SEGIDX_OK);
        BENCH_CHECK(segidx_offset_set_is_empty(q));
        pinned += sid_list_distinct(&sids);
        segidx_offset_set_free(q);
        free(sids.v);
    }
    free(page);
    return (double)pinned / READS;
}

struct timed_reads {
    struct zipf_run *z;
    segidx_loader *l;
    segidx_volume_index *vi;
    segidx_lsn lsn;
    uint64_t lsn_sum; /* of the pages every read hands out, as checked */
};

static int add_lsn(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    (void)off;
    BENCH_CHECK(page);
    *(uint64_t *)ctx += lsn;
    return 0;
}

/* One round: every read once; us per read. */
static double round_reads(void *ctx)
{
    struct timed_reads *t = ctx;
    uint64_t sum = 0, t0 = bench_now_ns();
    for (int i = 0; i < READS; i++)
        BENCH_CHECK(segidx_read_pages(t->vi, t->l, &t->z->vid[i / READS_PER_VOLUME], t->lsn,
                                      t->z->q[i], add_lsn, &sum) == SEGIDX_OK);
    double us = (double)(bench_now_ns() - t0) / 1e3 / READS;
    BENCH_CHECK(sum == t->lsn_sum);
    return us;
}

/* ------------------------------------------------------------ part 1: the run */

/* One page of commit (vid[v], lsn) into the packer, and into the model. */
struct add_page {
    struct zipf_run *z;
    segidx_packer *p;
    int v;
    segidx_lsn lsn;
    uint8_t *page;
};

static int add_page(segidx_offset off, void *ctx)
{
    struct add_page *a = ctx;
    const segidx_vid *vid = &a->z->vid[a->v];
    wl_fill_page(a->page, PAGE, &(wl_page){ *vid, off, a->lsn });
    BENCH_CHECK(segidx_packer_add(a->p, vid, off, a->lsn, a->page) == SEGIDX_OK);
    a->z->model[0][a->v][off] = (uint32_t)a->lsn;
    return 0;
}

/* Every page of every volume at LSN 1, a volume's pages flushed together;
 * then the rounds, one segment each. */
static void build_volumes(struct zipf_run *z)
{
    segidx_packer_options po = { { PAGE, 0, NULL }, next_sid, keep_segment, &z->m, commit_ready };
    segidx_packer *p;
    BENCH_CHECK(segidx_packer_new(&po, &p) == SEGIDX_OK);
    uint8_t *page = bench_xmalloc(PAGE);
    struct add_page bulk = { z, p, 0, 1, page };
    for (; bulk.v < VOLUMES; bulk.v++) {
        for (uint32_t off = 0; off < VOLUME_PAGES; off++)
            add_page(off, &bulk);
        BENCH_CHECK(segidx_packer_flush(p) == SEGIDX_OK);
    }
    workload g = { "compact", NULL, 0, 0, 0xC0A7 };
    for (uint32_t r = 1; r <= z->rounds; r++) {
        struct add_page a = { z, p, 0, 1 + r, page };
        for (a.v = 0; a.v < VOLUMES; a.v++) {
            segidx_offset_set *s = commit_offsets(&g, VOLUME_PAGES);
            segidx_offset_set_iterate(s, add_page, &a);
            segidx_offset_set_free(s);
        }
        BENCH_CHECK(segidx_packer_flush(p) == SEGIDX_OK);
        if (a.lsn == z->lsn[1])
            memcpy(z->model[1], z->model[0], sizeof z->model[1]);
    }
    free(page);
    segidx_packer_free(p);
}

static uint64_t live_pages(struct zipf_run *z, int which)
{
    uint64_t live = 0;
    for (int v = 0; v < VOLUMES; v++)
        BENCH_CHECK(segidx_volume_commits(z->m.vi[which], &z->vid[v], add_cardinality, &live) ==
                    SEGIDX_OK);
    return live;
}

/* "compact.<what> <R><which>": after the pass, against before it. */
static void print_after(const struct zipf_run *z, const char *what, const char *which,
                        double after, double before, const char *unit)
{
    char name[64];
    snprintf(name, sizeof name, "compact.%s %s%s", what, z->name, which);
    bench_print(&(struct bench_figure){ .name = name, .value = after, .unit = unit,
                                        .baseline = "before", .baseline_value = before });
}

/* One pass over every volume of vi[AFTER]; its time in ns. */
static uint64_t compact_all(struct zipf_run *z, segidx_compact_stats *total)
{
    segidx_loader *l = loader_for_all(&z->m);
    segidx_compact_options co = { .next_sid = next_sid, .emit = keep_segment, .ctx = &z->m };
    uint64_t ns = 0;
    for (int v = 0; v < VOLUMES; v++) {
        segidx_compact_stats st;
        uint64_t t0 = bench_now_ns();
        BENCH_CHECK(segidx_volume_compact(z->m.vi[AFTER], l, &z->vid[v], &co, &st) == SEGIDX_OK);
        ns += bench_now_ns() - t0;
        BENCH_CHECK(st.segments_in > 0);
        total->segments_in += st.segments_in;
        total->segments_out += st.segments_out;
        total->pages += st.pages;
        total->bytes_in += st.bytes_in;
        total->bytes_out += st.bytes_out;
    }
    if (getenv("SEGIDX_BENCH_VERBOSE")) {
        segidx_loader_stats ls;
        segidx_loader_stats_get(l, &ls);
        fprintf(stderr, "bench_compact: R=%s: the pass fetched %llu segments (%zu held, %zu MiB)\n",
                z->name, (unsigned long long)ls.fetches, ls.cached_segments,
                ls.cached_bytes >> 20);
    }
    segidx_loader_free(l);
    return ns;
}

static void zipf_part(uint32_t rounds)
{
    BENCH_CHECK(rounds >= 2);
    struct zipf_run *z = calloc(1, sizeof *z);
    BENCH_CHECK(z);
    z->rounds = rounds;
    z->lsn[0] = 1 + rounds;
    z->lsn[1] = 1 + rounds / 2;
    bench_count_name(z->name, sizeof z->name, rounds);
    for (int k = 0; k < 2; k++) {
        segidx_kv kv;
        BENCH_CHECK(segidx_kv_mem_open(&kv) == SEGIDX_OK);
        BENCH_CHECK(segidx_volume_index_open(kv, &z->m.vi[k]) == SEGIDX_OK);
    }
    for (int v = 0; v < VOLUMES; v++)
        z->vid[v] = (segidx_vid){ { 0xC0, (uint8_t)(v + 1) } };
    build_volumes(z);
    for (int k = 0; k < 2; k++)
        for (int v = 0; v < VOLUMES; v++)
            BENCH_CHECK(segidx_volume_prune(z->m.vi[k], &z->vid[v], z->lsn[1]) == SEGIDX_OK);
    gc(&z->m);

    /* The reads: 1024 distinct pages of a volume, uniform over its pages. */
    bench_rng r = bench_rng_seed(0xC0C0);
    uint32_t all[VOLUME_PAGES];
    for (uint32_t i = 0; i < VOLUME_PAGES; i++)
        all[i] = i;
    for (int i = 0; i < READS; i++) {
        bench_rng_shuffle_u32(&r, all, VOLUME_PAGES);
        BENCH_CHECK(z->q[i] = segidx_offset_set_new());
        for (uint32_t k = 0; k < READ_PAGES; k++)
            BENCH_CHECK(segidx_offset_set_add(z->q[i], all[k]) == SEGIDX_OK);
    }

    uint64_t live = live_pages(z, BEFORE), held_before = z->m.held_bytes;
    segidx_compact_stats total = { 0 };
    uint64_t ns = compact_all(z, &total);
    gc(&z->m); /* frees nothing vi[BEFORE] names: the reads before need them */
    uint64_t held_after = named_bytes(&z->m, AFTER);
    BENCH_CHECK(live_pages(z, AFTER) == live);

    segidx_loader *l = loader_for_all(&z->m);
    static const char *const at_name[2] = { "latest", "old" };
    for (int at = 0; at < 2; at++) {
        struct timed_reads t[2] = { { z, l, z->m.vi[AFTER], z->lsn[at], 0 },
                                    { z, l, z->m.vi[BEFORE], z->lsn[at], 0 } };
        double pinned[2];
        for (int which = 0; which < 2; which++)
            pinned[which] = check_reads(z, l, which, at, &t[which].lsn_sum);
        double us[2];
        bench_median_pair(round_reads, &t[AFTER], round_reads, &t[BEFORE], READ_ROUNDS,
                          &us[AFTER], &us[BEFORE]);
        char which[32];
        snprintf(which, sizeof which, " %s %d", at_name[at], READ_PAGES);
        print_after(z, "pinned", which, pinned[AFTER], pinned[BEFORE], "/read");
        print_after(z, "read", which, us[AFTER], us[BEFORE], "us");
    }
    segidx_loader_free(l);

    /* Per byte of live data, what the pass wrote against the page bytes
     * it copied (the rest is the new segments' index and checksums). Not
     * against stats.bytes_in: summed over volumes, that counts a shared
     * segment once per volume that replaced it. */
    double live_bytes = (double)live * PAGE;
    char name[64];
    snprintf(name, sizeof name, "compact.bytes_out/live %s", z->name);
    bench_print(&(struct bench_figure){ .name = name, .value = (double)total.bytes_out / live_bytes,
                                        .unit = "B/B", .baseline = "pages copied",
                                        .baseline_value = (double)total.pages * PAGE / live_bytes });
    snprintf(name, sizeof name, "compact.time %s per volume", z->name);
    bench_print(&(struct bench_figure){ .name = name, .value = (double)ns / 1e6 / VOLUMES,
                                        .unit = "ms" });
    print_after(z, "stored", "", (double)held_after / 1048576.0, (double)held_before / 1048576.0,
                "MiB");
    if (getenv("SEGIDX_BENCH_VERBOSE"))
        fprintf(stderr,
                "bench_compact: R=%s: %llu live pages; pass: %zu segments in, %zu out, %llu "
                "pages, %llu bytes in, %llu out\n",
                z->name, (unsigned long long)live, total.segments_in, total.segments_out,
                (unsigned long long)total.pages, (unsigned long long)total.bytes_in,
                (unsigned long long)total.bytes_out);

    for (int i = 0; i < READS; i++)
        segidx_offset_set_free(z->q[i]);
    for (int k = 0; k < 2; k++)
        segidx_volume_index_close(z->m.vi[k]);
    for (uint64_t i = 0; i < z->m.n; i++)
        free(z->m.s[i].buf);
    free(z->m.s);
    free(z);
}

/* ------------------------------------------------------------ part 2: counts in the catalog */

/* Key layouts (docs/FORMAT.md): an entry is segments/ vid lsn sid. */
#define ENTRY_PREFIX "segments/"
#define REFS_PREFIX "refs/"
enum { ENTRY_PREFIX_LEN = 9, ENTRY_KEY_LEN = ENTRY_PREFIX_LEN + 16 + 8 + 16,
       ENTRY_KEY_SID = ENTRY_PREFIX_LEN + 16 + 8, REFS_PREFIX_LEN = 5,
       REF_KEY_LEN = REFS_PREFIX_LEN + 16 };

static bool is_entry_key(const void *key, size_t klen)
{
    return klen == ENTRY_KEY_LEN && memcmp(key, ENTRY_PREFIX, ENTRY_PREFIX_LEN) == 0;
}

/* One entry op of a batch, where it stands in it. */
struct entry_op {
    const uint8_t *key;
    size_t at;
    int op;
    bool has_val;
};

struct ref_delta {
    segidx_sid sid;
    int64_t d;
};

/* One count change as the batch writes it: refs/<sid> must still hold
 * what was read (EXPECT), and then holds the new count (PUT). */
struct ref_write {
    uint8_t key[REF_KEY_LEN];
    uint8_t old[8], now[8];
    bool had;
};

/* The store the index writes through. With `inline_refs`, every write
 * that adds or removes entries also updates their segments' counts in the
 * same atomic batch; without, it passes through untouched (the plain
 * batch). The scratch arrays are kept between writes, as a library would
 * keep its batch buffers. */
struct refs_store {
    segidx_kv inner;               /* counted: */
    struct bench_counting_kv count; /* over the LMDB store */
    bool inline_refs;
    struct entry_op *e;
    struct ref_delta *d;
    struct ref_write *w;
    segidx_kv_op *ops;
    size_t cap_e, cap_d, cap_w, cap_ops;
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    *cap = need * 2;
    p = realloc(p, *cap * size);
    BENCH_CHECK(p);
    return p;
}

static int refs_get(void *self, const void *k, size_t kl, segidx_kv_visit_fn fn, void *ctx)
{
    struct refs_store *s = self;
    return s->inner.vt->get(s->inner.self, k, kl, fn, ctx);
}

static int refs_scan(void *self, const void *lo, size_t lol, const void *hi, size_t hil, bool rev,
                     segidx_kv_visit_fn fn, void *ctx)
{
    struct refs_store *s = self;
    return s->inner.vt->scan(s->inner.self, lo, lol, hi, hil, rev, fn, ctx);
}

static int compare_entry_op(const void *pa, const void *pb)
{
    const struct entry_op *a = pa, *b = pb;
    int c = memcmp(a->key, b->key, ENTRY_KEY_LEN);
    return c ? c : (a->at > b->at) - (a->at < b->at);
}

static int compare_delta(const void *pa, const void *pb)
{
    return compare_sid(&((const struct ref_delta *)pa)->sid, &((const struct ref_delta *)pb)->sid);
}

static int copy_count(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)k, (void)kl;
    BENCH_CHECK(vl == 8);
    memcpy(ctx, v, 8);
    return 0;
}

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Read each count of d[0..n) (the read of the read-modify-write) and
 * append its EXPECT and PUT to s->ops from `at` on; returns the new end. */
static size_t append_count_ops(struct refs_store *s, size_t n, size_t at)
{
    s->w = grow(s->w, &s->cap_w, n, sizeof *s->w);
    s->ops = grow(s->ops, &s->cap_ops, at + 2 * n, sizeof *s->ops);
    for (size_t i = 0; i < n; i++) {
        struct ref_write *w = &s->w[i];
        memcpy(w->key, REFS_PREFIX, REFS_PREFIX_LEN);
        memcpy(w->key + REFS_PREFIX_LEN, s->d[i].sid.bytes, 16);
        int rc = s->inner.vt->get(s->inner.self, w->key, REF_KEY_LEN, copy_count, w->old);
        BENCH_CHECK(rc == SEGIDX_OK || rc == SEGIDX_ENOTFOUND);
        w->had = rc == SEGIDX_OK;
        int64_t now = (w->had ? (int64_t)load_be64(w->old) : 0) + s->d[i].d;
        BENCH_CHECK(now >= 0);
        store_be64(w->now, (uint64_t)now);
        s->ops[at++] = (segidx_kv_op){ SEGIDX_KV_EXPECT, w->key, REF_KEY_LEN,
                                       w->had ? w->old : NULL, w->had ? 8 : 0 };
        s->ops[at++] = (segidx_kv_op){ SEGIDX_KV_PUT, w->key, REF_KEY_LEN, w->now, 8 };
    }
    return at;
}

/* What a batch does to each segment's count: per entry key, +1 if it
 * ends PUT and was absent, -1 if it ends DEL and was there. Whether it
 * was there, the batch says itself: the index EXPECTs the value of every
 * entry it changes or deletes, and never PUTs over an entry without that
 * (a commit's entries are new, a re-point EXPECTs its new keys absent). */
static size_t batch_deltas(struct refs_store *s, const segidx_kv_op *ops, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (is_entry_key(ops[i].key, ops[i].klen)) {
            s->e = grow(s->e, &s->cap_e, m + 1, sizeof *s->e);
            s->e[m++] = (struct entry_op){ ops[i].key, i, ops[i].op, ops[i].val != NULL };
        }
    if (m > 1)
        qsort(s->e, m, sizeof *s->e, compare_entry_op);
    size_t nd = 0;
    for (size_t i = 0, j; i < m; i = j) {
        bool had = false;
        int last = 0;
        for (j = i; j < m && memcmp(s->e[j].key, s->e[i].key, ENTRY_KEY_LEN) == 0; j++) {
            if (s->e[j].op == SEGIDX_KV_EXPECT)
                had |= s->e[j].has_val;
            else
                last = s->e[j].op;
        }
        BENCH_CHECK(last != SEGIDX_KV_DEL || had); /* a DEL the index did not EXPECT */
        int64_t d = last == SEGIDX_KV_PUT ? !had : last == SEGIDX_KV_DEL ? -1 : 0;
        if (!d)
            continue;
        s->d = grow(s->d, &s->cap_d, nd + 1, sizeof *s->d);
        memcpy(s->d[nd].sid.bytes, s->e[i].key + ENTRY_KEY_SID, 16);
        s->d[nd++].d = d;
    }
    if (nd > 1) { /* one count change per sid */
        qsort(s->d, nd, sizeof *s->d, compare_delta);
        size_t k = 0;
        for (size_t i = 0; i < nd; i++) {
            if (k && compare_sid(&s->d[k - 1].sid, &s->d[i].sid) == 0)
                s->d[k - 1].d += s->d[i].d;
            else
                s->d[k++] = s->d[i];
        }
        nd = k;
    }
    return nd;
}

static int refs_write(void *self, const segidx_kv_op *ops, size_t n)
{
    struct refs_store *s = self;
    size_t nd;
    if (!s->inline_refs || !(nd = batch_deltas(s, ops, n)))
        return s->inner.vt->write(s->inner.self, ops, n);
    s->ops = grow(s->ops, &s->cap_ops, n + 2 * nd, sizeof *s->ops);
    memcpy(s->ops, ops, n * sizeof *ops);
    return s->inner.vt->write(s->inner.self, s->ops, append_count_ops(s, nd, n));
}

static void refs_close(void *self)
{
    struct refs_store *s = self;
    s->inner.vt->close(s->inner.self);
}

static const segidx_kv_vtable refs_vt = { SEGIDX_KV_VTABLE_VERSION, refs_get, refs_scan,
                                          refs_write, refs_close };

/* The counts a plain block did not write: `d` more references to `sid`,
 * in a batch of their own. */
static void add_refs(struct refs_store *s, const segidx_sid *sid, int64_t d)
{
    s->d = grow(s->d, &s->cap_d, 1, sizeof *s->d);
    s->d[0] = (struct ref_delta){ *sid, d };
    BENCH_CHECK(s->inner.vt->write(s->inner.self, s->ops, append_count_ops(s, 1, 0)) ==
                SEGIDX_OK);
}

/* ------------------------------------------------------------ part 2: the gc queries */

enum { GC_VOLUMES = 4, GC_VOLUME_PAGES = 16384, GC_COMMITS_PER_SEGMENT = 64 };

struct gc_run {
    struct refs_store *s;
    segidx_volume_index *vi;
    segidx_vid vid[GC_VOLUMES];
    uint32_t commits;
    uint64_t segments; /* sid numbers 1..segments */
    char name[16];
    bool progress;
};

static segidx_sid gc_sid(uint32_t commit)
{
    return sid_of_number(commit / GC_COMMITS_PER_SEGMENT + 1);
}

static int push_sid(void *ctx, const segidx_sid *sid)
{
    sid_list_push(ctx, sid);
    return 0;
}

static int zero_count(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    BENCH_CHECK(kl == REF_KEY_LEN && vl == 8);
    segidx_sid sid;
    memcpy(sid.bytes, (const uint8_t *)k + REFS_PREFIX_LEN, 16);
    if (load_be64(v) == 0)
        sid_list_push(ctx, &sid);
    return 0;
}

/* The refcount design's gc query: every refs/ key, those at 0 kept. It
 * reads through the library's checked scan, as index_segments does and as
 * the design would inside the library. */
static int refs_query(struct refs_store *s, struct sid_list *out)
{
    uint8_t hi[REFS_PREFIX_LEN];
    memcpy(hi, REFS_PREFIX, REFS_PREFIX_LEN);
    hi[REFS_PREFIX_LEN - 1]++;
    return segidx__kv_scan(&(segidx_kv){ &refs_vt, s }, REFS_PREFIX, REFS_PREFIX_LEN, hi,
                           sizeof hi, false, zero_count, out);
}

struct gc_query {
    struct gc_run *g;
    bool refs;
    struct sid_list out;
    uint64_t visits;
};

static double round_query(void *ctx)
{
    struct gc_query *q = ctx;
    q->out.n = 0;
    uint64_t v0 = q->g->s->count.n.scan_visits, t0 = bench_now_ns();
    int rc = q->refs ? refs_query(q->g->s, &q->out)
                     : segidx_volume_index_segments(q->g->vi, push_sid, &q->out);
    double us = (double)(bench_now_ns() - t0) / 1e3;
    BENCH_CHECK(rc == SEGIDX_OK);
    q->visits = q->g->s->count.n.scan_visits - v0;
    return us;
}

struct count_check {
    uint64_t *entries; /* per sid number: entries naming it */
    uint64_t segments, counts;
    bool refs;         /* visiting refs/: compare instead of count */
};

static int tally(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    struct count_check *c = ctx;
    const uint8_t *key = k;
    segidx_sid sid;
    memcpy(sid.bytes, key + (c->refs ? REFS_PREFIX_LEN : ENTRY_KEY_SID), 16);
    uint64_t n = number_of_sid(&sid);
    BENCH_CHECK(n >= 1 && n <= c->segments);
    if (c->refs) {
        BENCH_CHECK(vl == 8 && load_be64(v) == c->entries[n - 1]);
        c->counts++;
    } else {
        BENCH_CHECK(kl == ENTRY_KEY_LEN);
        c->entries[n - 1]++;
    }
    return 0;
}

/* Every count equals the entries naming its segment; the scan's answer is
 * the sids with a count above 0, the refs query's those at 0, and every
 * segment has a count (each was named once). */
static void check_designs(struct gc_run *g, struct gc_query *q)
{
    struct count_check c = { calloc(g->segments, 8), g->segments, 0, false };
    BENCH_CHECK(c.entries);
    uint8_t lo[] = ENTRY_PREFIX, hi[] = ENTRY_PREFIX, rlo[] = REFS_PREFIX, rhi[] = REFS_PREFIX;
    hi[ENTRY_PREFIX_LEN - 1]++;
    rhi[REFS_PREFIX_LEN - 1]++;
    segidx_kv *in = &g->s->inner;
    BENCH_CHECK(in->vt->scan(in->self, lo, ENTRY_PREFIX_LEN, hi, ENTRY_PREFIX_LEN, false, tally,
                             &c) == SEGIDX_OK);
    c.refs = true;
    BENCH_CHECK(in->vt->scan(in->self, rlo, REFS_PREFIX_LEN, rhi, REFS_PREFIX_LEN, false, tally,
                             &c) == SEGIDX_OK);
    BENCH_CHECK(c.counts == g->segments);
    uint64_t named = 0;
    for (uint64_t i = 0; i < g->segments; i++)
        named += c.entries[i] > 0;
    BENCH_CHECK(q[0].out.n == named && q[1].out.n == g->segments - named);
    for (size_t i = 0; i < q[0].out.n; i++)
        BENCH_CHECK(c.entries[number_of_sid(&q[0].out.v[i]) - 1] > 0);
    for (size_t i = 0; i < q[1].out.n; i++)
        BENCH_CHECK(c.entries[number_of_sid(&q[1].out.v[i]) - 1] == 0);
    free(c.entries);
}

static void measure_queries(struct gc_run *g, const char *when)
{
    struct gc_query q[2] = { { g, false, { NULL, 0, 0 }, 0 }, { g, true, { NULL, 0, 0 }, 0 } };
    int rounds = g->commits >= 500000 ? 5 : 9;
    double scan_us, refs_us;
    bench_median_pair(round_query, &q[0], round_query, &q[1], rounds, &scan_us, &refs_us);
    check_designs(g, q);
    if (getenv("SEGIDX_BENCH_VERBOSE"))
        fprintf(stderr, "bench_compact: gc C=%s%s: %zu segments named, %zu at count 0\n", g->name,
                when, q[0].out.n, q[1].out.n);
    char name[64];
    snprintf(name, sizeof name, "gc.index_segments %s%s", g->name, when);
    bench_print(&(struct bench_figure){ .name = name, .value = scan_us, .unit = "us",
                                        .baseline = "refs/ count-0 scan",
                                        .baseline_value = refs_us });
    snprintf(name, sizeof name, "gc.keys_read %s%s", g->name, when);
    bench_print(&(struct bench_figure){ .name = name, .value = (double)q[0].visits, .unit = "keys",
                                        .baseline = "refs/ count-0 scan",
                                        .baseline_value = (double)q[1].visits });
    free(q[0].out.v);
    free(q[1].out.v);
}

/* The commits, 64 (one segment) at a time, each block plain or with
 * counts by a seeded coin; a plain block's counts are written after it,
 * untimed, so that the store is the same for both. The rate of each way
 * is that of its median block: on a shared machine a preempted block
 * lands far out, and the median ignores it on both sides alike. */
static void gc_commits(struct gc_run *g)
{
    workload w = { "gc", NULL, 0, 0, 0x6C0 };
    bench_rng coin = bench_rng_seed(0x6C1);
    segidx_offset_set *sets[GC_COMMITS_PER_SEGMENT];
    size_t blocks = g->commits / GC_COMMITS_PER_SEGMENT, done[2] = { 0, 0 };
    double *us[2] = { bench_xmalloc(blocks * sizeof(double)),
                      bench_xmalloc(blocks * sizeof(double)) };
    for (uint32_t b = 0; b < g->commits; b += GC_COMMITS_PER_SEGMENT) {
        uint32_t n = g->commits - b < GC_COMMITS_PER_SEGMENT ? g->commits - b
                                                             : GC_COMMITS_PER_SEGMENT;
        for (uint32_t k = 0; k < n; k++)
            sets[k] = commit_offsets(&w, GC_VOLUME_PAGES);
        int with = (int)(bench_rng_next(&coin) >> 63);
        g->s->inline_refs = with;
        segidx_sid sid = gc_sid(b);
        uint64_t t0 = bench_now_ns();
        for (uint32_t k = 0; k < n; k++) {
            uint32_t i = b + k;
            segidx_commit_segment seg = { sid, sets[k] };
            segidx_lsn lsn = i / GC_VOLUMES + 1;
            BENCH_CHECK(segidx_volume_commit(g->vi, &g->vid[i % GC_VOLUMES], lsn, lsn, &seg, 1) ==
                        SEGIDX_OK);
        }
        if (n == GC_COMMITS_PER_SEGMENT) /* whole blocks only */
            us[with][done[with]++] = (double)(bench_now_ns() - t0) / 1e3;
        if (!with)
            add_refs(g->s, &sid, n);
        for (uint32_t k = 0; k < n; k++)
            segidx_offset_set_free(sets[k]);
        if (g->progress && (b / GC_COMMITS_PER_SEGMENT + 1) % (g->commits / 640) == 0)
            fprintf(stderr, "bench_compact: gc C=%s: %u of %u commits\n", g->name, b + n,
                    g->commits);
    }
    g->s->inline_refs = true;
    BENCH_CHECK(done[0] && done[1]);
    double rate[2];
    for (int k = 0; k < 2; k++) {
        rate[k] = GC_COMMITS_PER_SEGMENT / (bench_median(us[k], done[k]) / 1e6);
        free(us[k]);
    }
    char name[64];
    snprintf(name, sizeof name, "gc.commit %s with refcounts", g->name);
    bench_print(&(struct bench_figure){ .name = name, .value = rate[1], .unit = "c/s",
                                        .better = BENCH_HIGHER_IS_BETTER,
                                        .baseline = "plain batch", .baseline_value = rate[0] });
}

static void gc_part(uint32_t commits)
{
    BENCH_CHECK(commits >= 2 * GC_COMMITS_PER_SEGMENT * GC_VOLUMES);
    struct gc_run g = { .commits = commits, .progress = commits >= 100000 };
    g.segments = (commits - 1) / GC_COMMITS_PER_SEGMENT + 1;
    bench_count_name(g.name, sizeof g.name, commits);
    char *dir = bench_scratch_dir("gc");
    g.s = calloc(1, sizeof *g.s);
    BENCH_CHECK(g.s);
    g.s->count.inner = bench_lmdb_open(dir, true, (size_t)16 << 30);
    g.s->inner = bench_counting_kv(&g.s->count);
    BENCH_CHECK(segidx_volume_index_open((segidx_kv){ &refs_vt, g.s }, &g.vi) == SEGIDX_OK);
    for (int v = 0; v < GC_VOLUMES; v++)
        g.vid[v] = (segidx_vid){ { 0x6C, (uint8_t)(v + 1) } };

    gc_commits(&g);
    measure_queries(&g, "");
    for (int v = 0; v < GC_VOLUMES; v++) {
        segidx_volume_meta m;
        BENCH_CHECK(segidx_volume_get(g.vi, &g.vid[v], &m) == SEGIDX_OK);
        BENCH_CHECK(segidx_volume_prune(g.vi, &g.vid[v], m.lsn / 2) == SEGIDX_OK);
    }
    if (g.progress)
        fprintf(stderr, "bench_compact: gc C=%s: pruned to half\n", g.name);
    measure_queries(&g, " pruned");

    segidx_volume_index_close(g.vi);
    free(g.s->e);
    free(g.s->d);
    free(g.s->w);
    free(g.s->ops);
    free(g.s);
    bench_scratch_remove(dir);
    free(dir);
}

/* ------------------------------------------------------------ main */

static uint32_t arg(int argc, char **argv, int i, uint32_t dflt)
{
    if (argc <= i)
        return dflt;
    char *end;
    errno = 0;
    unsigned long v = strtoul(argv[i], &end, 10);
    BENCH_CHECK(errno == 0 && *end == 0 && v <= 100000000);
    return (uint32_t)v;
}

int main(int argc, char **argv)
{
    uint32_t rounds = arg(argc, argv, 1, 1000), commits = arg(argc, argv, 2, 20000);
    if (rounds)
        zipf_part(rounds);
    if (commits)
        gc_part(commits);
    return 0;
}
