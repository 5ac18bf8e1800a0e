/* Group commit figures: durable commits/s of 50
 * volumes batched into one store write (segidx_volume_commit_group(), what
 * a host does with the commits one packer flush hands over) against one
 * store write per commit (segidx_volume_commit()), both over durable LMDB
 * (an fsync per write), checkpoints on (the defaults), the same kind of
 * commits: 1-32 skewed offsets each in one segment. Both sides make the
 * same commits (a round is 5 flushes of 50, so volumes pass checkpoint
 * rounds on both), rounds alternate between the sides and the medians are
 * printed; at the end both stores must hold the same bytes. Also the
 * store writes and PUT bytes each commit costs, counted under the index,
 * and the bytes the process sent to the disk per commit (Linux's
 * /proc/self/io write_bytes; the line is left out where it is not). */
#include "bench.h"
#include "kv.h"

#include <math.h>
#include <string.h>

#include "segidx.h"
#include "segidx_lmdb.h"

enum { VOLUMES = 50, VOLUME_PAGES = 1 << 16, FLUSHES = 5, ROUNDS = 7 };

/* A writer: its index over a scratch durable LMDB store (through a
 * counting store, first so that the store's `self` is the writer), and
 * where each volume's LSNs are. */
struct writer {
    struct bench_counting_kv count;
    uint64_t writes;  /* store writes: one durable transaction each */
    uint64_t commits; /* commits made */
    uint64_t disk;    /* bytes sent to the disk while committing */
    char *dir;
    segidx_volume_index *vi;
    segidx_lsn next[VOLUMES];
    uint64_t sids;
    bench_rng rng;
};

static int counting_write(void *self, const segidx_kv_op *ops, size_t n)
{
    struct writer *w = self;
    w->writes++;
    return bench_counting_kv(&w->count).vt->write(&w->count, ops, n);
}

static void writer_open(struct writer *w, const char *name, uint64_t seed)
{
    static segidx_kv_vtable vt;
    vt = *bench_counting_kv(NULL).vt;
    vt.write = counting_write;
    memset(w, 0, sizeof *w);
    w->dir = bench_scratch_dir(name);
    w->count.inner = bench_lmdb_open(w->dir, false, (size_t)1 << 30);
    BENCH_CHECK(segidx_volume_index_open((segidx_kv){ &vt, w }, &w->vi) == SEGIDX_OK);
    for (int v = 0; v < VOLUMES; v++)
        w->next[v] = 1;
    w->rng = bench_rng_seed(seed);
}

static void writer_close(struct writer *w)
{
    segidx_volume_index_close(w->vi);
    bench_scratch_remove(w->dir);
    free(w->dir);
}

/* The bytes this process has caused to be written to storage, or
 * UINT64_MAX where the system does not say. */
static uint64_t disk_written(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = sscanf(line, "write_bytes: %llu", &v) == 1;
    if (f)
        fclose(f);
    return found ? (uint64_t)v : UINT64_MAX;
}

/* Add the disk bytes since `from` to w->disk (UINT64_MAX: unknown). */
static void count_disk(struct writer *w, uint64_t from)
{
    uint64_t now = disk_written();
    w->disk = from == UINT64_MAX || now == UINT64_MAX || w->disk == UINT64_MAX
                  ? UINT64_MAX : w->disk + (now - from);
}

static segidx_vid vid_of(int v)
{
    segidx_vid vid = { { 0x6C, (uint8_t)v } };
    return vid;
}

/* A commit's offsets: 1-32 of them, Zipf-skewed over the volume's pages. */
static segidx_offset_set *commit_offsets(bench_rng *r)
{
    segidx_offset_set *s = segidx_offset_set_new();
    BENCH_CHECK(s);
    for (uint32_t k = 0, n = 1 + bench_rng_below(r, 32); k < n; k++) {
        double x = exp((double)(bench_rng_next(r) >> 11) / 9007199254740992.0 *
                       log((double)VOLUME_PAGES + 1.0)) - 1.0;
        BENCH_CHECK(segidx_offset_set_add(s, (uint32_t)x % VOLUME_PAGES) == SEGIDX_OK);
    }
    return s;
}

/* One commit for each volume, as a packer flush of 50 volumes hands them
 * over: `segs[v]` and `items[v]` filled, their sets to be freed. */
static void make_flush(struct writer *w, segidx_commit_segment *segs,
                       segidx_volume_commit_item *items)
{
    for (int v = 0; v < VOLUMES; v++) {
        segidx_sid sid = { { 0 } };
        uint64_t n = ++w->sids;
        memcpy(sid.bytes, &n, 8);
        segs[v] = (segidx_commit_segment){ sid, commit_offsets(&w->rng) };
        items[v] = (segidx_volume_commit_item){ vid_of(v), w->next[v]++, w->commits + (uint64_t)v,
                                                &segs[v], 1 };
    }
}

static void free_flush(segidx_commit_segment *segs)
{
    for (int v = 0; v < VOLUMES; v++)
        segidx_offset_set_free((segidx_offset_set *)segs[v].offsets);
}

/* Commits/s, one store write each. */
static double single_round(void *ctx)
{
    struct writer *w = ctx;
    segidx_commit_segment segs[VOLUMES];
    segidx_volume_commit_item items[VOLUMES];
    uint64_t t = 0;
    for (int f = 0; f < FLUSHES; f++) {
        make_flush(w, segs, items);
        uint64_t d0 = disk_written(), t0 = bench_now_ns();
        for (int v = 0; v < VOLUMES; v++)
            BENCH_CHECK(segidx_volume_commit(w->vi, &items[v].vid, items[v].lsn,
                                             items[v].commit_time, items[v].segs,
                                             items[v].n) == SEGIDX_OK);
        t += bench_now_ns() - t0;
        count_disk(w, d0);
        w->commits += VOLUMES;
        free_flush(segs);
    }
    return FLUSHES * VOLUMES / ((double)t / 1e9);
}

/* Commits/s, 50 commits a store write. */
static double group_round(void *ctx)
{
    struct writer *w = ctx;
    segidx_commit_segment segs[VOLUMES];
    segidx_volume_commit_item items[VOLUMES];
    uint64_t t = 0;
    for (int f = 0; f < FLUSHES; f++) {
        make_flush(w, segs, items);
        uint64_t d0 = disk_written(), t0 = bench_now_ns();
        size_t failed;
        BENCH_CHECK(segidx_volume_commit_group(w->vi, items, VOLUMES, &failed) == SEGIDX_OK);
        t += bench_now_ns() - t0;
        count_disk(w, d0);
        w->commits += VOLUMES;
        free_flush(segs);
    }
    return FLUSHES * VOLUMES / ((double)t / 1e9);
}

/* FNV-1a over every key and value, in order: equal stores, equal hashes. */
static int hash_pair(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    uint64_t *h = ctx;
    const uint8_t *parts[2] = { key, val };
    size_t lens[2] = { klen, vlen };
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i <= lens[p]; i++)
            *h = (*h ^ (i < lens[p] ? parts[p][i] : 0x100u + lens[p] % 251)) * 0x100000001B3u;
    return 0;
}

static uint64_t store_hash(struct writer *w)
{
    uint64_t h = 0xCBF29CE484222325u;
    BENCH_CHECK(w->count.inner.vt->scan(w->count.inner.self, "", 0, "", 0, false, hash_pair, &h) ==
                SEGIDX_OK);
    return h;
}

int main(void)
{
    static struct writer writers[2];
    struct writer *single = &writers[0], *group = &writers[1];
    writer_open(single, "single", 1);
    writer_open(group, "group", 1);
    double g, s;
    bench_median_pair(group_round, group, single_round, single, ROUNDS, &g, &s);
    bench_print(&(struct bench_figure){ .name = "volume.commit_group durable 50 vols",
                                        .value = g, .unit = "c/s",
                                        .better = BENCH_HIGHER_IS_BETTER,
                                        .baseline = "a write per commit", .baseline_value = s });
    bench_print(&(struct bench_figure){ .name = "volume.commit_group speedup", .value = g / s,
                                        .unit = "x", .better = BENCH_HIGHER_IS_BETTER });
    /* Every commit is there: each volume's LSN is the one we reached. */
    for (int k = 0; k < 2; k++)
        for (int v = 0; v < VOLUMES; v++) {
            segidx_vid vid = vid_of(v);
            segidx_volume_meta m;
            BENCH_CHECK(segidx_volume_get(writers[k].vi, &vid, &m) == SEGIDX_OK &&
                        m.lsn == writers[k].next[v] - 1);
        }
    BENCH_CHECK(store_hash(single) == store_hash(group));
    bench_print(&(struct bench_figure){
        .name = "volume.commit_group writes", .value = (double)group->writes / group->commits,
        .unit = "/commit", .baseline = "a write per commit",
        .baseline_value = (double)single->writes / single->commits });
    bench_print(&(struct bench_figure){
        .name = "volume.commit_group put bytes",
        .value = (double)group->count.n.put_bytes / group->commits, .unit = "B/commit",
        .baseline = "a write per commit",
        .baseline_value = (double)single->count.n.put_bytes / single->commits });
    if (single->disk != UINT64_MAX && group->disk != UINT64_MAX)
        bench_print(&(struct bench_figure){
            .name = "volume.commit_group disk bytes", .value = (double)group->disk / group->commits,
            .unit = "B/commit", .baseline = "a write per commit",
            .baseline_value = (double)single->disk / single->commits });
    writer_close(single);
    writer_close(group);
    return 0;
}
