/* demo_crash: SIGKILL trials of `segidx demo`, a whole host's write path
 * (packer, segment files, LMDB volume index) killed at random moments.
 *
 * Each trial runs `segidx demo DIR --acks ...` with its own seed and small
 * sizes, reads the "ack VID LSN PAGES" lines it prints as each commit
 * enters the index, and kills it: at once, after some acks, after a random
 * delay, or once it has finished. Then, in what the dead writer left:
 * - every acknowledged commit is in the index with exactly PAGES offsets;
 * - every commit the index holds, acknowledged or not (the kill may fall
 *   between a commit and its ack), reads back through a loader at its LSN
 *   as exactly the pages the demo wrote, and a volume's commits run 1, 2,
 *   ... up to its meta's LSN with none missing;
 * - every segment the index names is there, verifies, holds at each
 *   (volume, offset, lsn) the page the demo derives from those, and holds
 *   exactly the offsets the index records for it.
 * Then `segidx compact DIR` and `segidx gc DIR --grace 0` are killed at
 * random moments in turn (or let finish); after each, all of the above
 * holds again, every offset of every volume reads at its first, last and
 * two random LSNs as exactly the page the entries taken before named, and
 * at the end `segidx check DIR` passes.
 * These are the promises a process crash must keep. A power loss is
 * another matter: the demo's index is nosync, whose writes survive the
 * process in the OS's page cache but not the machine going down.
 *
 * Usage: demo_crash PATH/TO/segidx TRIALS. The trials are drawn from a
 * fixed base seed, or from SEGIDX_CRASH_SEED; SEGIDX_CRASH_VERBOSE=1 prints
 * a line per trial. Kill moments still depend on timing, so a failed
 * trial's directory is kept and its writer's command printed. Exit 0 when
 * every trial held, 1 when one did not, 2 on a usage error. Not named
 * test_*.c: `make check-unit` runs those without arguments. */
#define _XOPEN_SOURCE 700 /* nftw */

#include "segidx.h"
#include "segidx_lmdb.h"

#include "../tools/demo_page.h"

/* Only its loader source is used here; its writer is the demo's. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../examples/segment_files.h"
#pragma GCC diagnostic pop

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SEED 1
/* A writer that has not finished by then is hung, not slow. */
#define WATCHDOG_SECONDS 120.0

/* ------------------------------------------------------------ plans */

static uint64_t below(uint64_t *rng, uint64_t n)
{
    return splitmix64(rng) % n;
}

enum kill_at { KILL_AT_ONCE, KILL_AFTER_ACKS, KILL_AFTER_DELAY, KILL_AFTER_EXIT };

/* One trial, drawn from the base seed alone so that the sequence replays. */
struct plan {
    unsigned no;
    uint64_t seed;                   /* the demo's --seed */
    unsigned volumes, commits, pages;
    enum kill_at kill_at;
    uint64_t acks;                   /* KILL_AFTER_ACKS: after this many */
    double delay_share;              /* KILL_AFTER_DELAY: of a whole write's time */
    /* Then `segidx compact DIR` and `segidx gc DIR --grace 0`, each killed
     * after this share of its usual time (0: at once; above 1: mostly
     * after it exited). */
    double compact_share, gc_share;
};

/* A whole write is some 5000 to 24000 pages (--pages is the mean per
 * commit), 20 to 94 MiB, so that it spans two to six 16 MiB segments:
 * commits reach the index only as the segment holding their last page is
 * cut, so a write within one segment would ack everything at its very end,
 * leaving no moment between acks to kill it in. */
static void draw_plan(uint64_t *rng, unsigned no, struct plan *p)
{
    p->no = no;
    p->seed = splitmix64(rng);
    p->volumes = 1 + (unsigned)below(rng, 4);
    p->pages = 8 + (unsigned)below(rng, 57);
    uint64_t total = 5000 + below(rng, 19001), commits = total / (p->volumes * p->pages);
    p->commits = commits < 20 ? 20 : commits > 2000 ? 2000 : (unsigned)commits;
    /* Most kills follow some acks, which come in a burst as each segment
     * is cut: inside the burst, or while the next segment is written.
     * Delays spread others over the whole write, first segment included. */
    uint64_t r = below(rng, 100);
    p->kill_at = r < 5 ? KILL_AT_ONCE : r < 65 ? KILL_AFTER_ACKS
               : r < 95 ? KILL_AFTER_DELAY : KILL_AFTER_EXIT;
    p->acks = 1 + below(rng, (uint64_t)p->volumes * p->commits);
    p->delay_share = (double)below(rng, 1101) / 1000.0; /* a few land after the end */
    p->compact_share = (double)below(rng, 1201) / 1000.0;
    p->gc_share = (double)below(rng, 1201) / 1000.0;
}

static uint64_t plan_commits(const struct plan *p)
{
    return (uint64_t)p->volumes * p->commits;
}

/* ------------------------------------------------------------ the run */

struct ack {
    segidx_vid vid;
    segidx_lsn lsn;
    uint64_t pages;
    bool seen;                       /* its volume is in the index */
};

/* What a trial saw of its writer. */
struct run {
    struct ack *acks;
    size_t n, cap;
    uint64_t acked_pages;
    double last_ack;                 /* seconds after the start */
    char line[256];                  /* a line not yet whole */
    size_t line_len;
    bool eof;
};

struct crash {
    const char *segidx;
    uint64_t base_seed;
    const struct plan *plan;         /* the trial under way */
    const char *dir;
    double seconds_per_page;         /* of a whole write, learnt as trials finish */
    double compact_seconds, gc_seconds; /* of a whole run of each, learnt likewise */
    bool verbose;                    /* a line per trial */
    unsigned failures;               /* of the trial under way */
    uint64_t acked, unacked, segments;
    unsigned before_first_ack, mid_write, after_last_ack, finished;
    unsigned compacts_killed, compacts_done, gcs_killed, gcs_done;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* `p` with room for element `n`: itself, a larger copy, or NULL (then `p`
 * and `*cap` are as they were). */
static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    size_t more = *cap ? 2 * *cap : 16;
    void *q = realloc(p, more * size);
    if (q)
        *cap = more;
    return q;
}

static void hex16(const uint8_t bytes[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
}

/* One line naming the trial, its seed and, when given, the volume and LSN. */
static void fail(struct crash *c, const segidx_vid *vid, segidx_lsn lsn, const char *fmt, ...)
{
    if (++c->failures > 20)
        return; /* the first ones tell the story */
    fprintf(stderr, "demo_crash: trial %u (seed %" PRIu64 ")", c->plan->no, c->plan->seed);
    if (vid) {
        char hex[33];
        hex16(vid->bytes, hex);
        fprintf(stderr, " volume %s lsn %" PRIu64, hex, (uint64_t)lsn);
    }
    fputs(": ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* 32 lowercase hex digits, as the demo prints ids. */
static bool parse_hex16(const char *s, uint8_t out[16])
{
    for (int i = 0; i < 32; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return false;
        out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | d : d << 4);
    }
    return true;
}

/* "ack VID LSN PAGES", VID at 4, LSN from 37. */
static int add_ack(struct crash *c, struct run *r, const char *line)
{
    struct ack a;
    unsigned long long lsn, pages;
    char tail;
    if (strlen(line) < 37 || !parse_hex16(line + 4, a.vid.bytes) || line[36] != ' ' ||
        sscanf(line + 37, "%llu %llu%c", &lsn, &pages, &tail) != 2) {
        fail(c, NULL, 0, "a bad ack line: %s", line);
        return -1;
    }
    struct ack *acks = grow(r->acks, &r->cap, r->n, sizeof *acks);
    if (!acks) {
        fail(c, NULL, 0, "out of memory");
        return -1;
    }
    r->acks = acks;
    a.lsn = lsn;
    a.pages = pages;
    a.seen = false;
    r->acks[r->n++] = a;
    r->acked_pages += pages;
    return 0;
}

/* Take in what the writer printed; its other lines (the demo's report)
 * pass by. A last line cut short by the kill was never an ack. */
static int take_output(struct crash *c, struct run *r, const char *buf, size_t n, double t)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (r->line_len < sizeof r->line - 1)
                r->line[r->line_len++] = buf[i];
            continue;
        }
        r->line[r->line_len] = '\0';
        r->line_len = 0;
        if (strncmp(r->line, "ack ", 4) != 0)
            continue;
        if (add_ack(c, r, r->line))
            return -1;
        r->last_ack = t;
    }
    return 0;
}

/* Wait up to `timeout_ms` for output and take what came. */
static int read_output(struct crash *c, struct run *r, int fd, int timeout_ms, double t0)
{
    struct pollfd pfd = { fd, POLLIN, 0 };
    int ready = poll(&pfd, 1, timeout_ms);
    char buf[4096];
    ssize_t got = ready > 0 ? read(fd, buf, sizeof buf) : 0;
    if ((ready < 0 || got < 0) && errno != EINTR) {
        fail(c, NULL, 0, "reading the writer's output: %s", strerror(errno));
        return -1;
    }
    if (ready <= 0 || got < 0)
        return 0;
    r->eof = got == 0;
    return take_output(c, r, buf, (size_t)got, now() - t0);
}

static pid_t start_writer(const struct crash *c, const char *dir, int out_fd, int other_fd)
{
    const struct plan *p = c->plan;
    char seed[24], volumes[16], commits[16], pages[16];
    snprintf(seed, sizeof seed, "%" PRIu64, p->seed);
    snprintf(volumes, sizeof volumes, "%u", p->volumes);
    snprintf(commits, sizeof commits, "%u", p->commits);
    snprintf(pages, sizeof pages, "%u", p->pages);
    char *argv[] = { (char *)c->segidx, "demo", (char *)dir, "--acks", "--reads", "0",
                     "--seed", seed, "--volumes", volumes, "--commits", commits,
                     "--pages", pages, NULL };
    pid_t pid = fork();
    if (pid == 0) {
        close(other_fd);
        if (dup2(out_fd, STDOUT_FILENO) < 0)
            _exit(126);
        close(out_fd);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Whether the plan's moment has come. */
static bool time_to_kill(const struct crash *c, const struct run *r, double t0)
{
    const struct plan *p = c->plan;
    switch (p->kill_at) {
    case KILL_AT_ONCE: return true;
    case KILL_AFTER_ACKS: return r->n >= p->acks;
    case KILL_AFTER_DELAY:
        return now() - t0 >= p->delay_share * c->seconds_per_page * p->pages * plan_commits(p);
    case KILL_AFTER_EXIT: return false;
    }
    return true;
}

/* Count how the trial ended. A writer that failed on its own, or finished
 * without acking every commit, fails the trial. */
static int classify_end(struct crash *c, const struct run *r, int status)
{
    uint64_t all = plan_commits(c->plan);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (r->n != all) {
            fail(c, NULL, 0, "the writer finished after %zu acks of %" PRIu64, r->n, all);
            return -1;
        }
        c->finished++;
        return 0;
    }
    if (WIFEXITED(status)) {
        fail(c, NULL, 0, "the writer exited with status %d", WEXITSTATUS(status));
        return -1;
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fail(c, NULL, 0, "the writer died of signal %d", WTERMSIG(status));
        return -1;
    }
    if (r->n == 0)
        c->before_first_ack++;
    else if (r->n < all)
        c->mid_write++;
    else
        c->after_last_ack++;
    return 0;
}

/* Run the writer, kill it when the plan says, and reap it; afterwards
 * `r` holds every ack that reached us, even those read after the kill. */
static int run_writer(struct crash *c, const char *dir, struct run *r)
{
    int fds[2];
    if (pipe(fds) != 0) {
        fail(c, NULL, 0, "pipe: %s", strerror(errno));
        return -1;
    }
    double t0 = now();
    pid_t pid = start_writer(c, dir, fds[1], fds[0]);
    close(fds[1]);
    if (pid < 0) {
        fail(c, NULL, 0, "fork: %s", strerror(errno));
        close(fds[0]);
        return -1;
    }
    int rc = 0;
    while (!rc && !r->eof && !time_to_kill(c, r, t0)) {
        if (now() - t0 > WATCHDOG_SECONDS) {
            fail(c, NULL, 0, "the writer hung");
            rc = -1;
        } else {
            rc = read_output(c, r, fds[0], 1, t0) < 0 ? -1 : 0;
        }
    }
    kill(pid, SIGKILL); /* a no-op when it has exited: then it was a zombie */
    while (!rc && !r->eof)
        rc = read_output(c, r, fds[0], -1, t0) < 0 ? -1 : 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fail(c, NULL, 0, "waitpid: %s", strerror(errno));
            return -1;
        }
    return rc ? rc : classify_end(c, r, status);
}

/* ------------------------------------------------------------ the checks */

/* One commit segment of the index. */
struct entry {
    segidx_lsn lsn;
    segidx_sid sid;
    segidx_offset_set *offsets;
    uint64_t pages;
};

struct volume {
    segidx_vid vid;
    segidx_volume_meta meta;
    struct entry *e;
    size_t n, cap;
};

/* What the dead writer left, opened as a reader would. */
struct view {
    struct crash *c;
    segidx_volume_index *vi;
    segment_files files;
    segidx_loader *loader;
    struct volume *vols;
    size_t nvols, capvols;
    segidx_sid *checked;             /* segments verified whole already */
    size_t nchecked, capchecked;
    const segidx_sid *sid;           /* the segment being verified */
    unsigned char want[DEMO_PAGE_SIZE];
};

static int list_volume(void *ctx, const segidx_vid *vid, const segidx_volume_meta *meta)
{
    struct view *v = ctx;
    struct volume *vols = grow(v->vols, &v->capvols, v->nvols, sizeof *vols);
    if (!vols)
        return SEGIDX_ENOMEM;
    v->vols = vols;
    v->vols[v->nvols++] = (struct volume){ *vid, *meta, NULL, 0, 0 };
    return 0;
}

static int collect_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                         const segidx_offset_set *offsets)
{
    struct volume *vol = ctx;
    struct entry *e = grow(vol->e, &vol->cap, vol->n, sizeof *e);
    if (!e)
        return SEGIDX_ENOMEM;
    vol->e = e;
    segidx_offset_set *copy = segidx_offset_set_copy(offsets);
    if (!copy)
        return SEGIDX_ENOMEM;
    vol->e[vol->n++] = (struct entry){ lsn, *sid, copy, segidx_offset_set_cardinality(copy) };
    return 0;
}

static void free_volumes(struct view *v)
{
    for (size_t i = 0; i < v->nvols; i++) {
        for (size_t k = 0; k < v->vols[i].n; k++)
            segidx_offset_set_free(v->vols[i].e[k].offsets);
        free(v->vols[i].e);
    }
    free(v->vols);
}

/* The demo never makes an empty commit, so every LSN up to the meta's has
 * entries: a gap is a commit lost, a torn one shows in the reads. */
static void check_lsns(struct view *v, const struct volume *vol)
{
    const struct plan *p = v->c->plan;
    segidx_lsn at = 0;
    for (size_t i = 0; i < vol->n; i++) {
        if (vol->e[i].lsn != at && vol->e[i].lsn != at + 1)
            fail(v->c, &vol->vid, vol->e[i].lsn, "no commit %" PRIu64 " before it",
                 (uint64_t)at + 1);
        at = vol->e[i].lsn;
    }
    if (at != vol->meta.lsn)
        fail(v->c, &vol->vid, vol->meta.lsn, "the meta's LSN, but the commits end at %" PRIu64,
             (uint64_t)at);
    if (demo_vid_volume(&vol->vid) >= p->volumes || vol->meta.lsn > p->commits)
        fail(v->c, &vol->vid, vol->meta.lsn, "a volume or LSN the demo never wrote");
}

static int check_segment_page(void *ctx, const segidx_segment_page *p)
{
    struct view *v = ctx;
    demo_page_fill(v->want, demo_vid_volume(p->vid), p->offset, p->lsn);
    if (memcmp(p->page, v->want, DEMO_PAGE_SIZE) == 0)
        return 0;
    char hex[33];
    hex16(v->sid->bytes, hex);
    fail(v->c, p->vid, p->lsn, "segment %s: offset %u is not what the demo wrote", hex,
         (unsigned)p->offset);
    return 1;
}

/* Every page's checksum, then every page's bytes. */
static void check_segment(struct view *v, const segidx_segment *seg, const segidx_sid *sid)
{
    char hex[33];
    hex16(sid->bytes, hex);
    segidx_segment_stats st;
    segidx_segment_stats_get(seg, &st);
    int rc = segidx_segment_verify(seg);
    if (rc || st.page_size != DEMO_PAGE_SIZE || memcmp(st.sid.bytes, sid->bytes, 16) != 0) {
        fail(v->c, NULL, 0, "segment %s: %s", hex,
             rc ? segidx_strerror(rc) : "not the segment the demo wrote");
        return;
    }
    v->sid = sid;
    segidx_segment_iterate(seg, NULL, check_segment_page, v);
    v->c->segments++;
}

/* Whether `sid` was verified before in this trial; remembers it if not.
 * -1 when out of memory. */
static int seen_segment(struct view *v, const segidx_sid *sid)
{
    for (size_t i = 0; i < v->nchecked; i++)
        if (memcmp(v->checked[i].bytes, sid->bytes, 16) == 0)
            return 1;
    segidx_sid *checked = grow(v->checked, &v->capchecked, v->nchecked, sizeof *checked);
    if (!checked)
        return -1;
    v->checked = checked;
    v->checked[v->nchecked++] = *sid;
    return 0;
}

/* The entry's segment is there, verifies (once a trial), and holds exactly
 * the entry's offsets at its LSN. */
static void check_entry_segment(struct view *v, const struct volume *vol, const struct entry *e)
{
    char hex[33];
    hex16(e->sid.bytes, hex);
    const segidx_segment *seg;
    int rc = segidx_loader_get(v->loader, &e->sid, &seg);
    if (rc) {
        fail(v->c, &vol->vid, e->lsn, "segment %s: %s", hex, segidx_strerror(rc));
        return;
    }
    int seen = seen_segment(v, &e->sid);
    if (seen < 0)
        fail(v->c, NULL, 0, "out of memory");
    else if (!seen)
        check_segment(v, seg, &e->sid);
    segidx_offset_set *held = NULL;
    rc = segidx_segment_offsets(seg, &vol->vid, e->lsn, &held);
    if (rc)
        fail(v->c, &vol->vid, e->lsn, "segment %s: %s", hex, segidx_strerror(rc));
    else if (!segidx_offset_set_equals(held, e->offsets))
        fail(v->c, &vol->vid, e->lsn, "segment %s holds other offsets of it than the index "
             "names (%" PRIu64 " and %" PRIu64 ")", hex, segidx_offset_set_cardinality(held),
             e->pages);
    segidx_offset_set_free(held);
    segidx_loader_put(v->loader, seg);
}

/* Reading an entry's offsets at its LSN, as a host would. */
struct reading {
    struct view *v;
    const struct volume *vol;
    segidx_lsn lsn;
    segidx_offset_set *query;        /* the next batch */
    uint64_t calls;
};

static int compare_page(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct reading *rd = ctx;
    rd->calls++;
    if (!page || lsn != rd->lsn) {
        fail(rd->v->c, &rd->vol->vid, rd->lsn, "offset %u reads as lsn %" PRIu64,
             (unsigned)off, (uint64_t)lsn);
        return 1;
    }
    demo_page_fill(rd->v->want, demo_vid_volume(&rd->vol->vid), off, lsn);
    if (memcmp(page, rd->v->want, DEMO_PAGE_SIZE) == 0)
        return 0;
    fail(rd->v->c, &rd->vol->vid, rd->lsn, "offset %u reads other bytes than the demo wrote",
         (unsigned)off);
    return 1;
}

/* Read the batch and start the next one; -1 after a failure, reported. */
static int read_batch(struct reading *rd)
{
    uint64_t want = segidx_offset_set_cardinality(rd->query), calls = rd->calls;
    int rc = segidx_read_pages(rd->v->vi, rd->v->loader, &rd->vol->vid, rd->lsn, rd->query,
                               compare_page, rd);
    if (rc < 0)
        fail(rd->v->c, &rd->vol->vid, rd->lsn, "read_pages: %s", segidx_strerror(rc));
    else if (!rc && rd->calls - calls != want)
        fail(rd->v->c, &rd->vol->vid, rd->lsn, "read_pages answered %" PRIu64 " offsets of %"
             PRIu64, rd->calls - calls, want);
    segidx_offset_set_free(rd->query);
    rd->query = segidx_offset_set_new();
    if (!rd->query && !rc)
        fail(rd->v->c, NULL, 0, "out of memory");
    return rc || !rd->query || rd->calls - calls != want ? -1 : 0;
}

static int batch_offset(segidx_offset off, void *ctx)
{
    struct reading *rd = ctx;
    if (segidx_offset_set_add(rd->query, off)) {
        fail(rd->v->c, NULL, 0, "out of memory");
        return -1;
    }
    if (segidx_offset_set_cardinality(rd->query) < SEGIDX_READ_MAX_PAGES)
        return 0;
    return read_batch(rd);
}

static void read_entry(struct view *v, const struct volume *vol, const struct entry *e)
{
    struct reading rd = { v, vol, e->lsn, segidx_offset_set_new(), 0 };
    if (!rd.query) {
        fail(v->c, NULL, 0, "out of memory");
        return;
    }
    if (segidx_offset_set_iterate(e->offsets, batch_offset, &rd) == 0 &&
        !segidx_offset_set_is_empty(rd.query))
        read_batch(&rd);
    segidx_offset_set_free(rd.query);
}

/* Each ack of this volume names a commit the index holds, whole. */
static void check_acks(struct view *v, const struct volume *vol, struct run *r)
{
    uint64_t *pages = calloc(vol->meta.lsn + 1, sizeof *pages); /* by LSN */
    if (!pages) {
        fail(v->c, NULL, 0, "out of memory");
        return;
    }
    for (size_t k = 0; k < vol->n; k++)
        if (vol->e[k].lsn <= vol->meta.lsn)
            pages[vol->e[k].lsn] += vol->e[k].pages;
    segidx_lsn top = 0;
    for (size_t i = 0; i < r->n; i++) {
        struct ack *a = &r->acks[i];
        if (memcmp(a->vid.bytes, vol->vid.bytes, 16) != 0)
            continue;
        a->seen = true;
        top = a->lsn > top ? a->lsn : top;
        if (a->lsn > vol->meta.lsn)
            fail(v->c, &vol->vid, a->lsn, "acked, but the volume is at lsn %" PRIu64,
                 (uint64_t)vol->meta.lsn);
        else if (pages[a->lsn] != a->pages)
            fail(v->c, &vol->vid, a->lsn, "acked with %" PRIu64 " pages, the index has %" PRIu64,
                 a->pages, pages[a->lsn]);
    }
    free(pages);
    v->c->unacked += vol->meta.lsn > top ? vol->meta.lsn - top : 0;
}

static void check_volume(struct view *v, struct volume *vol, struct run *r)
{
    int rc = segidx_volume_commits(v->vi, &vol->vid, collect_entry, vol);
    if (rc) {
        fail(v->c, &vol->vid, vol->meta.lsn, "commits: %s", segidx_strerror(rc));
        return;
    }
    check_lsns(v, vol);
    for (size_t i = 0; i < vol->n && v->c->failures == 0; i++) {
        check_entry_segment(v, vol, &vol->e[i]);
        read_entry(v, vol, &vol->e[i]);
    }
    check_acks(v, vol, r);
}

static int open_index(struct crash *c, const char *dir, segidx_volume_index **vi)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/index", dir);
    segidx_kv kv;
    int open_error = 0;
    segidx_kv_lmdb_options o = { 0 };
    o.open_error = &open_error;
    int rc = segidx_kv_lmdb_open(path, &o, &kv);
    if (rc) {
        fail(c, NULL, 0, "%s: %s (%s)", path, segidx_strerror(rc),
             segidx_kv_lmdb_strerror(open_error));
        return rc;
    }
    if ((rc = segidx_volume_index_open(kv, vi))) {
        kv.vt->close(kv.self);
        fail(c, NULL, 0, "%s: %s", path, segidx_strerror(rc));
    }
    return rc;
}

/* The index and segments in `dir`, opened as a reader would, with its
 * volumes listed (their entries not yet read); NULL after a failure,
 * reported. */
static struct view *open_view(struct crash *c, const char *dir)
{
    struct view *v = calloc(1, sizeof *v);
    if (!v) {
        fail(c, NULL, 0, "out of memory");
        return NULL;
    }
    v->c = c;
    snprintf(v->files.dir, sizeof v->files.dir, "%s/segments", dir);
    segidx_segment_source src = segment_files_source(&v->files);
    int rc = open_index(c, dir, &v->vi);
    if (!rc && (rc = segidx_loader_new(&src, NULL, &v->loader)))
        fail(c, NULL, 0, "loader: %s", segidx_strerror(rc));
    if (!rc && (rc = segidx_volume_list(v->vi, list_volume, v)))
        fail(c, NULL, 0, "volume list: %s", segidx_strerror(rc));
    if (!rc)
        return v;
    segidx_loader_free(v->loader);
    segidx_volume_index_close(v->vi);
    free_volumes(v);
    free(v);
    return NULL;
}

static void close_view(struct view *v)
{
    if (!v)
        return;
    segidx_loader_free(v->loader);
    segidx_volume_index_close(v->vi);
    free_volumes(v);
    free(v->checked);
    free(v);
}

/* Hold what `dir` holds to what the run acknowledged. */
static void check_dir(struct crash *c, const char *dir, struct run *r)
{
    struct view *v = open_view(c, dir);
    if (!v)
        return;
    for (size_t i = 0; i < v->nvols; i++)
        check_volume(v, &v->vols[i], r);
    for (size_t i = 0; i < r->n; i++)
        if (!r->acks[i].seen)
            fail(c, &r->acks[i].vid, r->acks[i].lsn, "acked, but the index has no such volume");
    close_view(v);
}

/* ------------------------------------------------------------ compaction and gc
 *
 * After the writer, `segidx compact DIR` and then `segidx gc DIR --grace 0`
 * are killed at random moments too. Before them the trial takes every
 * entry of the index (checked just now against the acks); after each, the
 * index is checked again as above, every offset of every volume reads at
 * several LSNs as exactly the page those entries name, and at the end
 * `segidx check DIR` passes.
 */

/* Every entry of every volume, as a later check's reference. */
static struct view *take_entries(struct crash *c, const char *dir)
{
    struct view *v = open_view(c, dir);
    for (size_t i = 0; v && i < v->nvols; i++) {
        int rc = segidx_volume_commits(v->vi, &v->vols[i].vid, collect_entry, &v->vols[i]);
        if (rc)
            fail(c, &v->vols[i].vid, 0, "commits: %s", segidx_strerror(rc));
    }
    return v;
}

/* One page against the version the reference names (0: never written). */
struct version_read {
    struct view *v;
    const struct volume *vol;
    segidx_lsn lsn;
    const segidx_lsn *version;   /* by offset */
    uint64_t calls;
};

static int compare_version(void *ctx, segidx_offset off, const void *page, segidx_lsn lsn)
{
    struct version_read *vr = ctx;
    segidx_lsn want = vr->version[off];
    vr->calls++;
    if (!want && !page)
        return 0;
    if (!want || !page || lsn != want) {
        fail(vr->v->c, &vr->vol->vid, vr->lsn, "offset %u reads as lsn %" PRIu64 ", not %" PRIu64,
             (unsigned)off, page ? (uint64_t)lsn : 0, (uint64_t)want);
        return 1;
    }
    demo_page_fill(vr->v->want, demo_vid_volume(&vr->vol->vid), off, want);
    if (memcmp(page, vr->v->want, DEMO_PAGE_SIZE) == 0)
        return 0;
    fail(vr->v->c, &vr->vol->vid, vr->lsn, "offset %u reads other bytes than the demo wrote",
         (unsigned)off);
    return 1;
}

struct versions {
    segidx_lsn *by_offset;
    segidx_lsn lsn;
    size_t n;
};

static int set_version(segidx_offset off, void *ctx)
{
    struct versions *vs = ctx;
    if (off < vs->n)
        vs->by_offset[off] = vs->lsn;
    return 0;
}

/* Every offset up to the volume's last at `lsn`, in batches, through the
 * view `now`, against the entries of `ref` (oldest first). */
static void read_versions(struct view *now, const struct volume *ref, segidx_lsn lsn)
{
    struct versions vs = { NULL, 0, (size_t)ref->meta.last_offset + 1 };
    vs.by_offset = calloc(vs.n, sizeof *vs.by_offset);
    if (!vs.by_offset) {
        fail(now->c, NULL, 0, "out of memory");
        return;
    }
    for (size_t i = 0; i < ref->n && ref->e[i].lsn <= lsn; i++) {
        vs.lsn = ref->e[i].lsn;
        segidx_offset_set_iterate(ref->e[i].offsets, set_version, &vs);
    }
    struct version_read vr = { now, ref, lsn, vs.by_offset, 0 };
    for (size_t lo = 0; lo < vs.n && now->c->failures == 0; lo += SEGIDX_READ_MAX_PAGES) {
        size_t hi = vs.n - lo < SEGIDX_READ_MAX_PAGES ? vs.n : lo + SEGIDX_READ_MAX_PAGES;
        segidx_offset_set *q = segidx_offset_set_new();
        uint64_t calls = vr.calls;
        int rc = q ? segidx_offset_set_add_range(q, (segidx_offset)lo, (segidx_offset)hi)
                   : SEGIDX_ENOMEM;
        if (!rc)
            rc = segidx_read_pages(now->vi, now->loader, &ref->vid, lsn, q, compare_version, &vr);
        if (rc < 0)
            fail(now->c, &ref->vid, lsn, "read_pages: %s", segidx_strerror(rc));
        else if (!rc && vr.calls - calls != hi - lo)
            fail(now->c, &ref->vid, lsn, "read_pages answered %" PRIu64 " offsets of %zu",
                 vr.calls - calls, hi - lo);
        segidx_offset_set_free(q);
    }
    free(vs.by_offset);
}

/* After a compaction or gc: the index holds to the acks as before, and
 * reads at the first, the last and two random LSNs of every volume give
 * what the reference entries name. */
static void check_after(struct crash *c, const char *dir, struct run *r, const struct view *ref)
{
    uint64_t unacked = c->unacked; /* counted once, by the writer's check */
    check_dir(c, dir, r);
    c->unacked = unacked;
    struct view *now = c->failures ? NULL : open_view(c, dir);
    uint64_t rng = c->plan->seed ^ 0x5eed;
    for (size_t i = 0; now && i < ref->nvols && !c->failures; i++) {
        const struct volume *vol = &ref->vols[i];
        segidx_lsn top = vol->meta.lsn;
        segidx_lsn at[4] = { 1, top, 1 + below(&rng, top), 1 + below(&rng, top) };
        for (int k = 0; k < 4 && !c->failures; k++)
            read_versions(now, vol, at[k]);
    }
    close_view(now);
}

/* Run `segidx ARGS`, its output dropped (errors kept), and kill it after
 * `delay` seconds unless it has exited (delay < 0: never). *status is its
 * wait status, *took how long it ran. -1 after a failure, reported. */
static int run_tool(struct crash *c, char *const argv[], double delay, int *status,
                    double *took)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid < 0) {
        fail(c, NULL, 0, "fork: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR) {
            fail(c, NULL, 0, "waitpid: %s", strerror(errno));
            return -1;
        }
        double t = now() - t0;
        if ((delay >= 0 && t >= delay) || t > WATCHDOG_SECONDS) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            if (t > WATCHDOG_SECONDS) {
                fail(c, NULL, 0, "segidx %s hung", argv[1]);
                return -1;
            }
            break;
        }
        struct timespec nap = { 0, 200000 };
        nanosleep(&nap, NULL);
    }
    *took = now() - t0;
    return 0;
}

/* Run a maintenance command killed after `share` of its usual time:
 * it must exit 0 or die of the kill. Learns the usual time from runs
 * that finished. */
static int maintain(struct crash *c, const char *dir, const char *what, double share,
                    double *usual, unsigned *killed, unsigned *done)
{
    char *argv[] = { (char *)c->segidx, (char *)what, (char *)dir, NULL, NULL, NULL };
    if (!strcmp(what, "gc")) {
        argv[3] = "--grace";
        argv[4] = "0";
    }
    int status;
    double took;
    if (run_tool(c, argv, share * *usual, &status, &took))
        return -1;
    bool finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    bool was_killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (c->verbose && (finished || was_killed))
        fprintf(stderr, "demo_crash: trial %u: segidx %s %s after %.3f s\n", c->plan->no, what,
                finished ? "finished" : "killed", took);
    if (finished) {
        (*done)++;
        *usual = (*usual + took) / 2;
        return 0;
    }
    if (was_killed) {
        (*killed)++;
        return 0;
    }
    fail(c, NULL, 0, "segidx %s %s: %s %d", what, dir,
         WIFEXITED(status) ? "exited with status" : "died of signal",
         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return -1;
}

/* Compaction, then gc, each killed at the plan's moment and checked; then
 * `segidx check` must pass. */
static void compact_and_collect(struct crash *c, const char *dir, struct run *r)
{
    const struct plan *p = c->plan;
    struct view *ref = take_entries(c, dir);
    if (ref && !c->failures &&
        !maintain(c, dir, "compact", p->compact_share, &c->compact_seconds, &c->compacts_killed,
                  &c->compacts_done))
        check_after(c, dir, r, ref);
    if (ref && !c->failures &&
        !maintain(c, dir, "gc", p->gc_share, &c->gc_seconds, &c->gcs_killed, &c->gcs_done))
        check_after(c, dir, r, ref);
    close_view(ref);
    if (c->failures)
        return;
    char *argv[] = { (char *)c->segidx, "check", (char *)dir, NULL };
    int status;
    double took;
    if (!run_tool(c, argv, -1, &status, &took) && !(WIFEXITED(status) && !WEXITSTATUS(status)))
        fail(c, NULL, 0, "segidx check %s failed after the compaction and gc", dir);
}

/* ------------------------------------------------------------ trials */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A whole write's pace, from the time its last ack came: what turns a
 * plan's delay share into seconds on this machine. */
static void learn_pace(struct crash *c, const struct run *r)
{
    if (r->n != plan_commits(c->plan) || !r->acked_pages)
        return;
    c->seconds_per_page = (c->seconds_per_page + r->last_ack / (double)r->acked_pages) / 2;
}

static const char *kill_name(enum kill_at k)
{
    switch (k) {
    case KILL_AT_ONCE: return "at once";
    case KILL_AFTER_ACKS: return "after some acks";
    case KILL_AFTER_DELAY: return "after a delay";
    case KILL_AFTER_EXIT: return "after it exited";
    }
    return "?";
}

static void report_failure(const struct crash *c, unsigned trials)
{
    const struct plan *p = c->plan;
    fprintf(stderr,
            "demo_crash: trial %u of %u failed (base seed %" PRIu64 "), its directory kept: %s\n"
            "demo_crash: the writer was: %s demo DIR --acks --reads 0 --seed %" PRIu64
            " --volumes %u --commits %u --pages %u, killed %s\n",
            p->no, trials, c->base_seed, c->dir, c->segidx, p->seed, p->volumes, p->commits,
            p->pages, kill_name(p->kill_at));
}

static int trial(struct crash *c, const struct plan *p, unsigned trials)
{
    c->plan = p;
    c->failures = 0;
    const char *tmp = getenv("TMPDIR");
    char dir[960]; /* DIR/segments/SID.seg.tmp must fit segment_files' paths */
    if ((size_t)snprintf(dir, sizeof dir, "%s/segidx-demo-crash-XXXXXX",
                         tmp && *tmp ? tmp : "/tmp") >= sizeof dir) {
        fprintf(stderr, "demo_crash: TMPDIR is too long\n");
        return -1;
    }
    if (!mkdtemp(dir)) {
        fprintf(stderr, "demo_crash: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    c->dir = dir;
    struct run r = { 0 };
    double t0 = now();
    if (run_writer(c, dir, &r) == 0) {
        learn_pace(c, &r);
        check_dir(c, dir, &r);
        c->acked += r.n;
        if (!c->failures)
            compact_and_collect(c, dir, &r);
    }
    if (c->verbose)
        fprintf(stderr, "demo_crash: trial %u: %u x %u commits of ~%u pages, killed %s: "
                "%zu acks of %" PRIu64 ", %.3f s\n", p->no, p->volumes, p->commits, p->pages,
                kill_name(p->kill_at), r.n, plan_commits(p), now() - t0);
    free(r.acks);
    if (c->failures) {
        report_failure(c, trials);
        return -1;
    }
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    *out = v;
    return !errno && !*end;
}

int main(int argc, char **argv)
{
    uint64_t trials, seed = DEFAULT_SEED;
    const char *env = getenv("SEGIDX_CRASH_SEED");
    if (argc != 3 || !parse_u64(argv[2], &trials) || !trials || trials > 1000000 ||
        (env && *env && !parse_u64(env, &seed))) {
        fprintf(stderr, "usage: [SEGIDX_CRASH_SEED=N] %s PATH/TO/segidx TRIALS\n", argv[0]);
        return 2;
    }
    if (access(argv[1], X_OK) != 0) {
        fprintf(stderr, "demo_crash: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    struct crash c = { 0 };
    c.segidx = argv[1];
    c.base_seed = seed;
    c.verbose = getenv("SEGIDX_CRASH_VERBOSE") != NULL;
    c.seconds_per_page = 20e-6; /* a first guess; learn_pace() corrects it */
    c.compact_seconds = 0.3;     /* likewise, corrected by maintain() */
    c.gc_seconds = 0.01;
    uint64_t rng = seed;
    for (unsigned t = 1; t <= trials; t++) {
        struct plan p;
        draw_plan(&rng, t, &p);
        if (trial(&c, &p, (unsigned)trials))
            return 1;
    }
    printf("demo_crash: %u trials, %" PRIu64 " acked commits checked, %" PRIu64
           " unacked found and checked, %" PRIu64 " segments verified, %u kills before the "
           "first ack, %u mid-write, %u after the last ack, %u runs to the end; compactions "
           "%u killed, %u done; gcs %u killed, %u done (seed %" PRIu64 ")\n",
           (unsigned)trials, c.acked, c.unacked, c.segments, c.before_first_ack, c.mid_write,
           c.after_last_ack, c.finished, c.compacts_killed, c.compacts_done, c.gcs_killed,
           c.gcs_done, seed);
    return 0;
}
