/* demo.c: `segidx demo`, a whole host in one run. Volumes commit pages at
 * skewed random offsets; the packer cuts them into segment files under
 * DIR/segments (each fsynced by emit); the packer's commit_ready, which
 * comes only once every segment holding a commit's pages is on disk, in
 * commit order, collects the commits, and every packer call that handed
 * some over is followed by one group commit of them all into the LMDB
 * volume index under DIR/index (one store write for many commits).
 * Then random reads at random LSNs come back through a loader
 * that mmaps the files, and every page is checked against what was
 * written: a page names its (volume, offset, lsn) and the rest of it is
 * derived from those (demo_page.h).
 *
 * With --acks it says on stdout when each commit is in the index (once
 * the group write holding it has returned), for the crash trials
 * (tests/demo_crash.c), which kill it at random moments and then hold the
 * index to every commit it acknowledged. */
#include "cli.h"
#include "demo_page.h"
#include "../examples/segment_files.h" /* segments as mmapped files */

#include <segidx_lmdb.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { PAGE = DEMO_PAGE_SIZE };

/* ------------------------------------------------------------ random */

static uint64_t below(uint64_t *state, uint64_t n)
{
    return splitmix64(state) % n;
}

/* ------------------------------------------------------------ state */

/* Every LSN that wrote one offset of one volume, ascending. */
struct history {
    uint32_t *lsns;
    uint32_t n, cap;
};

struct demo {
    char dir[2048], seg_dir[2100], index_dir[2100];
    segment_files files; /* seg_dir, as the host helper knows it */
    unsigned volumes, commits, pages;
    uint64_t reads, seed;
    uint32_t space;                /* offsets per volume */
    uint64_t rng;
    segidx_vid *vids;
    segidx_volume_index *vi;
    uint8_t sid_prefix[8];
    uint64_t segments;
    segidx_sid *sids;
    segidx_lsn *committed;         /* per volume: the index's LSN */
    segidx_lsn *handed;            /* per volume: the last LSN commit_ready gave */
    struct pending *pending;       /* commits handed over, not yet in the index */
    size_t n_pending, cap_pending;
    struct history *hist;          /* volumes x space */
    uint64_t total_pages;
    bool tty;
    bool acks;                     /* --acks */
};

/* A commit the packer handed over, kept until the group that holds it:
 * its segments' offsets are the packer's only during commit_ready. */
struct pending {
    segidx_volume_commit_item item;
    segidx_commit_segment *segs;
};

/* A skewed offset: three writes in four go to the first eighth. */
static segidx_offset pick_offset(struct demo *d)
{
    if (below(&d->rng, 4) < 3)
        return (segidx_offset)below(&d->rng, d->space / 8);
    return (segidx_offset)below(&d->rng, d->space);
}

static void progress(const struct demo *d, const char *phase, uint64_t done, uint64_t total)
{
    if (!d->tty || !total)
        return;
    unsigned width = 40, filled = (unsigned)(done * width / total);
    char bar[41];
    for (unsigned i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : ' ';
    bar[width] = '\0';
    printf("\r%-8s [%s] %3u%%", phase, bar, (unsigned)(done * 100 / total));
    if (done == total)
        putchar('\n');
    fflush(stdout);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ files */

static int mkdir_p(const char *path)
{
    char buf[2200];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* ------------------------------------------------------------ write */

static int next_sid(void *ctx, segidx_sid *sid)
{
    struct demo *d = ctx;
    uint64_t n = ++d->segments;
    memcpy(sid->bytes, d->sid_prefix, 8);
    for (int i = 0; i < 8; i++)
        sid->bytes[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    return SEGIDX_OK;
}

/* "ack VID LSN PAGES": commit `lsn` of volume `v` is in the index. Flushed
 * at once, because a reader that kills us may only count what reached it:
 * an ack still in our buffer would die with us, and one that reached it
 * must be a promise the index keeps. */
static void print_ack(const struct demo *d, unsigned v, segidx_lsn lsn,
                      const segidx_commit_segment *segs, size_t n)
{
    uint64_t pages = 0;
    for (size_t i = 0; i < n; i++)
        pages += segidx_offset_set_cardinality(segs[i].offsets);
    char hex[33];
    cli_hex16(d->vids[v].bytes, hex);
    printf("ack %s %llu %llu\n", hex, (unsigned long long)lsn, (unsigned long long)pages);
    fflush(stdout);
}

/* A segment: on disk before emit returns, so that a commit naming it
 * never points at a file a crash could lose. */
static int emit(void *ctx, const segidx_sid *sid, const void *buf, size_t len,
                const segidx_packed_commit *commits, size_t n)
{
    (void)commits, (void)n; /* shares of commits: commit_ready has them whole */
    struct demo *d = ctx;
    int rc = segment_files_write(&d->files, sid, buf, len);
    if (rc)
        return rc;
    segidx_sid *sids = realloc(d->sids, (size_t)d->segments * sizeof *sids);
    if (!sids)
        return SEGIDX_ENOMEM;
    d->sids = sids;
    d->sids[d->segments - 1] = *sid;
    return SEGIDX_OK;
}

static void pending_free(struct pending *p)
{
    for (size_t i = 0; i < p->item.n; i++)
        segidx_offset_set_free((segidx_offset_set *)p->segs[i].offsets);
    free(p->segs);
}

/* A commit whose segments are all on disk: kept for the next group. */
static int commit_ready(void *ctx, const segidx_vid *vid, segidx_lsn lsn,
                        const segidx_commit_segment *segs, size_t n)
{
    struct demo *d = ctx;
    unsigned v = demo_vid_volume(vid);
    if (v >= d->volumes || lsn != d->handed[v] + 1)
        return SEGIDX_ECORRUPT; /* the packer broke its order */
    if (d->n_pending == d->cap_pending) {
        size_t cap = d->cap_pending ? 2 * d->cap_pending : 64;
        struct pending *p = realloc(d->pending, cap * sizeof *p);
        if (!p)
            return SEGIDX_ENOMEM;
        d->pending = p;
        d->cap_pending = cap;
    }
    struct pending p = { { *vid, lsn, (uint64_t)time(NULL), NULL, 0 }, calloc(n, sizeof *p.segs) };
    if (!p.segs)
        return SEGIDX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        p.segs[i].sid = segs[i].sid;
        if (!(p.segs[i].offsets = segidx_offset_set_copy(segs[i].offsets))) {
            pending_free(&p);
            return SEGIDX_ENOMEM;
        }
        p.item.n = i + 1;
    }
    p.item.segs = p.segs;
    d->pending[d->n_pending++] = p;
    d->handed[v] = lsn;
    return SEGIDX_OK;
}

/* Every commit handed over since the last group, into the index in one
 * write, then acked: an ack is printed only once the write returned. */
static int commit_pending(struct demo *d)
{
    if (!d->n_pending)
        return SEGIDX_OK;
    segidx_volume_commit_item *items = malloc(d->n_pending * sizeof *items);
    if (!items)
        return SEGIDX_ENOMEM;
    for (size_t i = 0; i < d->n_pending; i++)
        items[i] = d->pending[i].item;
    size_t failed;
    int rc = segidx_volume_commit_group(d->vi, items, d->n_pending, &failed);
    free(items);
    if (rc) {
        if (failed < d->n_pending)
            fprintf(stderr, "segidx: demo: commit %llu of volume %u refused\n",
                    (unsigned long long)d->pending[failed].item.lsn,
                    demo_vid_volume(&d->pending[failed].item.vid));
        return rc;
    }
    for (size_t i = 0; i < d->n_pending; i++) {
        const struct pending *p = &d->pending[i];
        unsigned v = demo_vid_volume(&p->item.vid);
        d->committed[v] = p->item.lsn;
        if (d->acks)
            print_ack(d, v, p->item.lsn, p->segs, p->item.n);
        pending_free(&d->pending[i]);
    }
    d->n_pending = 0;
    return SEGIDX_OK;
}

/* After a packer call: commit what it handed over (also when it failed
 * later on: those commits are complete), the call's error first. */
static int after_packer(struct demo *d, int rc)
{
    int committed = commit_pending(d);
    return rc ? rc : committed;
}

static int history_add(struct history *h, segidx_lsn lsn)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? 2 * h->cap : 4;
        uint32_t *l = realloc(h->lsns, cap * sizeof *l);
        if (!l)
            return SEGIDX_ENOMEM;
        h->lsns = l;
        h->cap = cap;
    }
    h->lsns[h->n++] = (uint32_t)lsn;
    return SEGIDX_OK;
}

static int write_volumes(struct demo *d)
{
    segidx_packer_options po = { { PAGE, 0, NULL }, next_sid, emit, d, commit_ready };
    segidx_packer *packer;
    int rc = segidx_packer_new(&po, &packer);
    if (rc)
        return cli_fail("packer", rc);
    unsigned char *page = malloc(PAGE);
    segidx_offset *offs = malloc((size_t)2 * d->pages * sizeof *offs);
    uint32_t *mark = calloc((size_t)d->volumes * d->space, sizeof *mark);
    if (!page || !offs || !mark)
        rc = SEGIDX_ENOMEM;
    const char *what = "pack";
    for (segidx_lsn lsn = 1; lsn <= d->commits && !rc; lsn++) {
        for (unsigned v = 0; v < d->volumes && !rc; v++) {
            uint32_t n = 1 + (uint32_t)below(&d->rng, 2 * (uint64_t)d->pages - 1);
            uint32_t *m = mark + (size_t)v * d->space;
            for (uint32_t k = 0; k < n; k++) {
                segidx_offset off;
                do
                    off = pick_offset(d);
                while (m[off] == lsn);
                m[off] = (uint32_t)lsn;
                offs[k] = off;
            }
            for (uint32_t k = 0; k < n && !rc; k++) {
                demo_page_fill(page, v, offs[k], lsn);
                rc = after_packer(d, segidx_packer_add(packer, &d->vids[v], offs[k], lsn, page));
                if (!rc)
                    rc = history_add(&d->hist[(size_t)v * d->space + offs[k]], lsn);
                d->total_pages += !rc;
            }
        }
        progress(d, "writing", lsn, d->commits);
    }
    if (!rc && (rc = after_packer(d, segidx_packer_flush(packer))))
        what = "flush";
    for (unsigned v = 0; v < d->volumes && !rc; v++)
        if (d->committed[v] != d->commits)
            rc = SEGIDX_ECORRUPT; /* a commit never reached commit_ready */
    segidx_packer_free(packer);
    free(page);
    free(offs);
    free(mark);
    return rc ? cli_fail(what, rc) : CLI_OK;
}

/* ------------------------------------------------------------ read */

struct check {
    struct demo *d;
    unsigned v;
    segidx_lsn at;
    unsigned char *want;
    bool ok;
};

static segidx_lsn expected_lsn(const struct demo *d, unsigned v, segidx_offset off,
                               segidx_lsn at)
{
    const struct history *h = &d->hist[(size_t)v * d->space + off];
    segidx_lsn best = 0;
    for (uint32_t i = 0; i < h->n && h->lsns[i] <= at; i++)
        best = h->lsns[i];
    return best;
}

static int check_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct check *c = ctx;
    segidx_lsn want = expected_lsn(c->d, c->v, off, c->at);
    if (!page) {
        c->ok = want == 0;
    } else {
        demo_page_fill(c->want, c->v, off, want);
        c->ok = lsn == want && memcmp(page, c->want, PAGE) == 0;
    }
    if (!c->ok)
        fprintf(stderr, "segidx: demo: volume %u offset %u at lsn %llu: got lsn %llu, "
                        "want lsn %llu\n",
                c->v, (unsigned)off, (unsigned long long)c->at, (unsigned long long)lsn,
                (unsigned long long)want);
    return 0;
}

static int read_volumes(struct demo *d, double *seconds, uint64_t *bad)
{
    segidx_segment_source src = segment_files_source(&d->files);
    segidx_loader *loader;
    int rc = segidx_loader_new(&src, NULL, &loader);
    if (rc)
        return cli_fail("loader", rc);
    struct check c = { d, 0, 0, malloc(PAGE), true };
    if (!c.want)
        rc = SEGIDX_ENOMEM;
    double t0 = now();
    uint64_t step = d->reads / 100 ? d->reads / 100 : 1;
    for (uint64_t i = 0; i < d->reads && !rc; i++) {
        c.v = (unsigned)below(&d->rng, d->volumes);
        c.at = 1 + below(&d->rng, d->commits);
        c.ok = false;
        segidx_offset_set *q = segidx_offset_set_new();
        if (!q || segidx_offset_set_add(q, pick_offset(d))) {
            rc = SEGIDX_ENOMEM;
        } else {
            rc = segidx_read_pages(d->vi, loader, &d->vids[c.v], c.at, q, check_page, &c);
            *bad += !c.ok;
        }
        segidx_offset_set_free(q);
        if ((i + 1) % step == 0 || i + 1 == d->reads)
            progress(d, "reading", i + 1, d->reads);
    }
    *seconds = now() - t0;
    free(c.want);
    segidx_loader_free(loader);
    return rc ? cli_fail("read", rc) : CLI_OK;
}

/* Sum of each segment's index bytes, read back from the files. */
static int index_bytes(struct demo *d, uint64_t *bytes, uint64_t *pages)
{
    for (uint64_t i = 0; i < d->segments; i++) {
        char path[2200];
        cli_segment_file f;
        segment_files_path(&d->files, &d->sids[i], path, sizeof path);
        int rc = cli_segment_file_open(path, &f);
        if (rc)
            return rc;
        segidx_segment_stats st;
        segidx_segment_stats_get(f.seg, &st);
        *bytes += st.index_bytes;
        *pages += st.page_count;
        cli_segment_file_close(&f);
    }
    return CLI_OK;
}

/* ------------------------------------------------------------ main */

static void demo_free(struct demo *d)
{
    segidx_volume_index_close(d->vi);
    if (d->hist)
        for (size_t i = 0; i < (size_t)d->volumes * d->space; i++)
            free(d->hist[i].lsns);
    free(d->hist);
    free(d->committed);
    free(d->handed);
    for (size_t i = 0; i < d->n_pending; i++)
        pending_free(&d->pending[i]);
    free(d->pending);
    free(d->vids);
    free(d->sids);
}

static int run_demo(const cli_command *cmd, int argc, char **argv)
{
    cli_opt opts[] = {
        { "volumes", true, false, NULL }, { "commits", true, false, NULL },
        { "pages", true, false, NULL },   { "reads", true, false, NULL },
        { "seed", true, false, NULL },    { "acks", false, false, NULL },
    };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 6, &a);
    if (rc)
        return rc;
    uint64_t volumes = 4, commits = 200, pages = 32, reads = 20000, seed = 1;
    if ((rc = cli_opt_u64(cmd, &opts[0], 1, 1000, &volumes)) ||
        (rc = cli_opt_u64(cmd, &opts[1], 1, 100000, &commits)) ||
        (rc = cli_opt_u64(cmd, &opts[2], 1, 10000, &pages)) ||
        (rc = cli_opt_u64(cmd, &opts[3], 0, 100000000, &reads)) ||
        (rc = cli_opt_u64(cmd, &opts[4], 0, UINT64_MAX, &seed)))
        return rc;

    static struct demo d; /* zeroed; large path buffers */
    d.volumes = (unsigned)volumes;
    d.commits = (unsigned)commits;
    d.pages = (unsigned)pages;
    d.reads = reads;
    d.seed = d.rng = seed;
    d.space = pages * 16 > 4096 ? (uint32_t)pages * 16 : 4096;
    d.acks = opts[5].seen;
    d.tty = isatty(STDOUT_FILENO) && !d.acks; /* a progress bar would garble the ack lines */
    if (a.npos == 1) {
        snprintf(d.dir, sizeof d.dir, "%s", a.pos[0]);
        if (mkdir_p(d.dir) != 0)
            return cli_fail_errno(d.dir, SEGIDX_EIO, errno);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(d.dir, sizeof d.dir, "%s/segidx-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(d.dir))
            return cli_fail_errno(d.dir, SEGIDX_EIO, errno);
    }
    snprintf(d.seg_dir, sizeof d.seg_dir, "%s/segments", d.dir);
    if ((size_t)snprintf(d.files.dir, sizeof d.files.dir, "%s", d.seg_dir) >= sizeof d.files.dir)
        return cli_usage_error(cmd, "DIR is too long");
    snprintf(d.index_dir, sizeof d.index_dir, "%s/index", d.dir);
    struct stat st;
    if (stat(d.index_dir, &st) == 0 || stat(d.seg_dir, &st) == 0) {
        fprintf(stderr, "segidx: %s: %s (it already holds a demo; give a new DIR)\n", d.dir,
                segidx_strerror(SEGIDX_ECONFLICT));
        return CLI_FAIL;
    }
    if (mkdir_p(d.seg_dir) != 0)
        return cli_fail_errno(d.seg_dir, SEGIDX_EIO, errno);
    printf("segidx demo in %s (seed %llu)\n", d.dir, (unsigned long long)seed);
    fflush(stdout);

    uint64_t s = splitmix64(&d.rng);
    memcpy(d.sid_prefix, &s, 8);
    d.vids = calloc(d.volumes, sizeof *d.vids);
    d.committed = calloc(d.volumes, sizeof *d.committed);
    d.handed = calloc(d.volumes, sizeof *d.handed);
    d.hist = calloc((size_t)d.volumes * d.space, sizeof *d.hist);
    if (!d.vids || !d.committed || !d.handed || !d.hist) {
        demo_free(&d);
        return cli_fail("demo", SEGIDX_ENOMEM);
    }
    for (unsigned v = 0; v < d.volumes; v++)
        demo_vid(d.sid_prefix, v, &d.vids[v]);

    segidx_kv kv;
    int open_error = 0;
    segidx_kv_lmdb_options ko = { 0 };
    /* Scratch data: the segments are fsynced, the catalog need not be. A
     * killed process loses nothing even so (its writes are in the OS's page
     * cache, which outlives it), so an ack survives SIGKILL, which is what
     * the crash trials test; only a power loss could take it back. */
    ko.nosync = true;
    ko.open_error = &open_error;
    if ((rc = segidx_kv_lmdb_open(d.index_dir, &ko, &kv))) {
        fprintf(stderr, "segidx: %s: %s (%s)\n", d.index_dir, segidx_strerror(rc),
                segidx_kv_lmdb_strerror(open_error));
        demo_free(&d);
        return CLI_FAIL;
    }
    if ((rc = segidx_volume_index_open(kv, &d.vi))) {
        kv.vt->close(kv.self);
        demo_free(&d);
        return cli_fail(d.index_dir, rc);
    }
    if (!d.tty)
        printf("writing %u volumes x %u commits\n", d.volumes, d.commits);
    double t0 = now();
    if ((rc = write_volumes(&d))) {
        demo_free(&d);
        return rc;
    }
    double write_s = now() - t0;

    uint64_t ibytes = 0, ipages = 0;
    if ((rc = index_bytes(&d, &ibytes, &ipages))) {
        demo_free(&d);
        return rc;
    }
    if (!d.tty)
        printf("reading %llu random pages at random LSNs\n", (unsigned long long)d.reads);
    double read_s = 0;
    uint64_t bad = 0;
    rc = read_volumes(&d, &read_s, &bad);
    demo_free(&d);
    if (rc)
        return rc;

    printf("volumes           %u\n", d.volumes);
    printf("commits           %u per volume, %llu in all\n", d.commits,
           (unsigned long long)d.commits * d.volumes);
    printf("pages             %llu (%.1f MiB) in %.2f s\n", (unsigned long long)d.total_pages,
           (double)d.total_pages * PAGE / (1 << 20), write_s);
    printf("segments          %llu under %s\n", (unsigned long long)d.segments, d.seg_dir);
    printf("index bytes/page  %.2f (%llu index bytes)\n",
           ipages ? (double)ibytes / (double)ipages : 0.0, (unsigned long long)ibytes);
    printf("reads/s           %.0f (%llu reads in %.2f s)\n",
           read_s > 0 ? (double)d.reads / read_s : 0.0, (unsigned long long)d.reads, read_s);
    if (ipages != d.total_pages) {
        fprintf(stderr, "segidx: demo: the segments hold %llu pages, %llu were written\n",
                (unsigned long long)ipages, (unsigned long long)d.total_pages);
        return CLI_FAIL;
    }
    if (bad) {
        printf("%llu of %llu reads checked: MISMATCH\n", (unsigned long long)bad,
               (unsigned long long)d.reads);
        return CLI_FAIL;
    }
    printf("all %llu reads checked: ok\n", (unsigned long long)d.reads);
    return CLI_OK;
}

const cli_command cli_cmd_demo = {
    "demo", "at most one DIR", 0, 1,
    "write volumes, read them back, check every page",
    "usage: segidx demo [DIR] [--volumes N] [--commits N] [--pages N] [--reads N]\n"
    "                   [--seed S] [--acks]\n"
    "Simulates volumes committing pages (seeded), packs them into segment files\n"
    "under DIR/segments, records the commits in an LMDB volume index under\n"
    "DIR/index, then reads random pages at random LSNs back and checks every\n"
    "one. DIR must be new; without it a temporary directory is made.\n"
    "  --volumes N          volumes to write, 1..1000 (default 4)\n"
    "  --commits N          commits per volume, 1..100000 (default 200)\n"
    "  --pages N            mean pages per commit, 1..10000 (default 32)\n"
    "  --reads N            random reads to check, 0..100000000 (default 20000)\n"
    "  --seed S             the simulation's seed (default 1)\n"
    "  --acks               print \"ack VID LSN PAGES\" as each commit enters the\n"
    "                       index\n",
    run_demo,
};
