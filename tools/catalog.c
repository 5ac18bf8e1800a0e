/* catalog.c: the subcommands that read a host directory's volume index:
 * ls, check (every catalog entry against the segment files it names) and
 * stats. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ ls */

struct ls_state {
    bool json;
    unsigned n;
};

static int on_volume(void *ctx, const segidx_vid *vid, const segidx_volume_meta *m)
{
    struct ls_state *s = ctx;
    char hex[33], utc[32];
    cli_hex16(vid->bytes, hex);
    if (s->json) {
        printf("%s\n  {\"vid\": \"%s\", \"lsn\": %llu, \"last_offset\": %u, ", s->n ? "," : "",
               hex, (unsigned long long)m->lsn, (unsigned)m->last_offset);
        cli_json_time("last_commit", m->last_commit);
        printf(", \"keep_from\": %llu}", (unsigned long long)m->keep_from);
    } else {
        cli_time_utc(m->last_commit, utc);
        printf("%s  %10llu  %11u  %10llu  %s\n", hex, (unsigned long long)m->lsn,
               (unsigned)m->last_offset, (unsigned long long)m->keep_from, utc);
    }
    s->n++;
    return 0;
}

static int on_commit(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                     const segidx_offset_set *offsets)
{
    struct ls_state *s = ctx;
    char hex[33];
    cli_hex16(sid->bytes, hex);
    unsigned long long pages = (unsigned long long)segidx_offset_set_cardinality(offsets);
    if (s->json)
        printf("%s\n  {\"lsn\": %llu, \"sid\": \"%s\", \"pages\": %llu}", s->n ? "," : "",
               (unsigned long long)lsn, hex, pages);
    else
        printf("%10llu  %s  %8llu\n", (unsigned long long)lsn, hex, pages);
    s->n++;
    return 0;
}

static void ls_volume_header(const char *vid, const segidx_volume_meta *m, bool json)
{
    char utc[32];
    if (json) {
        printf("{\"vid\": \"%s\", \"lsn\": %llu, \"last_offset\": %u, ", vid,
               (unsigned long long)m->lsn, (unsigned)m->last_offset);
        cli_json_time("last_commit", m->last_commit);
        printf(", \"keep_from\": %llu, \"commits\": [", (unsigned long long)m->keep_from);
        return;
    }
    cli_time_utc(m->last_commit, utc);
    printf("volume %s: lsn %llu, last_offset %u, keep_from %llu, last_commit %s\n"
           "%10s  %-32s  %8s\n",
           vid, (unsigned long long)m->lsn, (unsigned)m->last_offset,
           (unsigned long long)m->keep_from, utc, "lsn", "sid", "pages");
}

static int run_ls(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    bool json;
    int rc = cli_parse_json(cmd, argc, argv, &a, &json);
    if (rc)
        return rc;
    segidx_vid vid;
    if (a.npos == 2 && !cli_parse_hex16(a.pos[1], vid.bytes))
        return cli_usage_error(cmd, "VID must be 32 hex characters: %s", a.pos[1]);
    segidx_volume_index *vi;
    if ((rc = cli_open_index(a.pos[0], &vi)))
        return rc;
    struct ls_state s = { json, 0 };
    char what[4200];
    bool open_json = s.json && a.npos == 1;
    if (a.npos == 1) {
        if (s.json)
            printf("{\"volumes\": [");
        else
            printf("%-32s  %10s  %11s  %10s  %s\n", "vid", "lsn", "last_offset", "keep_from",
                   "last_commit");
        rc = segidx_volume_list(vi, on_volume, &s);
        snprintf(what, sizeof what, "%s", a.pos[0]);
    } else {
        segidx_volume_meta m;
        rc = segidx_volume_get(vi, &vid, &m);
        if (!rc) {
            ls_volume_header(a.pos[1], &m, s.json);
            open_json = s.json;
            rc = segidx_volume_commits(vi, &vid, on_commit, &s);
        }
        snprintf(what, sizeof what, "%s: volume %s", a.pos[0], a.pos[1]);
    }
    segidx_volume_index_close(vi);
    if (open_json)
        printf("]}\n");
    if (rc)
        return cli_fail(what, rc);
    return CLI_OK;
}

const cli_command cli_cmd_ls = {
    "ls", "DIR [VID]", 1, 2,
    "the volumes of DIR's index, or one volume's commits",
    "usage: segidx ls DIR [VID] [--json]\n"
    "The volumes of DIR/index with their LSN, last offset, prune point and\n"
    "last commit time (UTC), or volume VID's commit entries: LSN, segment,\n"
    "pages.\n"
    "  --json               one JSON document on standard output\n",
    run_ls,
};

/* ------------------------------------------------------------ changed */

/* Offsets printed as runs: "lo-hi" or "o", one per line, or JSON pairs. */
struct runs {
    bool json, open;
    uint64_t n;
    segidx_offset lo, hi;
};

static void print_run(struct runs *r)
{
    if (r->json)
        printf("%s[%u, %u]", r->n ? ", " : "", (unsigned)r->lo, (unsigned)r->hi);
    else if (r->lo == r->hi)
        printf("%u\n", (unsigned)r->lo);
    else
        printf("%u-%u\n", (unsigned)r->lo, (unsigned)r->hi);
    r->n++;
}

static int add_to_run(segidx_offset o, void *ctx)
{
    struct runs *r = ctx;
    if (r->open && o == r->hi + 1) {
        r->hi = o;
        return 0;
    }
    if (r->open)
        print_run(r);
    r->lo = r->hi = o;
    r->open = true;
    return 0;
}

static int run_changed(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    bool json;
    int rc = cli_parse_json(cmd, argc, argv, &a, &json);
    if (rc)
        return rc;
    segidx_vid vid;
    uint64_t from, to = UINT64_MAX;
    if (!cli_parse_hex16(a.pos[1], vid.bytes))
        return cli_usage_error(cmd, "VID must be 32 hex characters: %s", a.pos[1]);
    if (!cli_parse_u64(a.pos[2], &from))
        return cli_usage_error(cmd, "bad FROM: %s", a.pos[2]);
    if (a.npos == 4 && (!cli_parse_u64(a.pos[3], &to) || to < from))
        return cli_usage_error(cmd, "bad TO (at least FROM): %s", a.pos[3]);
    segidx_volume_index *vi;
    if ((rc = cli_open_index(a.pos[0], &vi)))
        return rc;
    segidx_volume_meta m;
    segidx_offset_set *out = segidx_offset_set_new();
    rc = out ? segidx_volume_get(vi, &vid, &m) : SEGIDX_ENOMEM;
    if (!rc)
        rc = segidx_volume_changed(vi, &vid, from, to, out);
    segidx_volume_index_close(vi);
    if (rc) {
        segidx_offset_set_free(out);
        char what[4200];
        snprintf(what, sizeof what, "%s: volume %s", a.pos[0], a.pos[1]);
        return cli_fail(what, rc);
    }
    uint64_t top = to < m.lsn ? to : m.lsn, count = segidx_offset_set_cardinality(out);
    struct runs r = { json, false, 0, 0, 0 };
    if (json)
        printf("{\"vid\": \"%s\", \"from\": %llu, \"to\": %llu, \"count\": %llu, "
               "\"runs\": [", a.pos[1], (unsigned long long)from, (unsigned long long)top,
               (unsigned long long)count);
    else
        printf("%llu offsets written in (%llu, %llu]\n", (unsigned long long)count,
               (unsigned long long)from, (unsigned long long)top);
    segidx_offset_set_iterate(out, add_to_run, &r);
    if (r.open)
        print_run(&r);
    if (json)
        printf("]}\n");
    segidx_offset_set_free(out);
    return CLI_OK;
}

const cli_command cli_cmd_changed = {
    "changed", "DIR VID FROM [TO]", 3, 4,
    "the offsets a volume's commits wrote after an LSN",
    "usage: segidx changed DIR VID FROM [TO] [--json]\n"
    "The offsets volume VID's commits wrote in (FROM, TO] (TO: the volume's\n"
    "LSN by default), what a replica at FROM must drop: a count, then runs\n"
    "of offsets, one per line (\"lo-hi\" or one offset). Read from the\n"
    "checkpoints, not the whole history.\n"
    "  --json               one JSON document on standard output\n",
    run_changed,
};

/* ------------------------------------------------------------ check */

/* A segment check has opened and found sound, kept mapped by sid so that
 * each file is read and verified once however many entries name it. */
struct open_segment {
    segidx_sid sid;
    const void *map;
    size_t len;
    segidx_segment *seg;
};

struct check {
    const char *dir;
    struct open_segment *segs; /* open addressing; seg NULL: a free slot */
    size_t cap, nsegs;
    const segidx_vid *vid;     /* the volume being walked */
    char vid_hex[33];
    const struct open_segment *at; /* the entry being checked: its segment */
    segidx_lsn lsn;                /* and its LSN */
    uint64_t commits, entries, pages;
    char path[4200];           /* the first problem: where, */
    char problem[600];         /* and what */
};

/* Record the first problem; returns the stop value for the walks. */
static int check_problem(struct check *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    if (path != c->path)
        snprintf(c->path, sizeof c->path, "%s", path);
    va_start(ap, fmt);
    vsnprintf(c->problem, sizeof c->problem, fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

static size_t sid_slot(const segidx_sid *sid, size_t cap)
{
    uint64_t a, b;
    memcpy(&a, sid->bytes, 8);
    memcpy(&b, sid->bytes + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15u)) * 0xbf58476d1ce4e5b9u;
    return (size_t)(h >> 17) & (cap - 1);
}

static struct open_segment *check_lookup(struct check *c, const segidx_sid *sid)
{
    size_t i = sid_slot(sid, c->cap);
    while (c->segs[i].seg && cli_sid_cmp(&c->segs[i].sid, sid))
        i = (i + 1) & (c->cap - 1);
    return &c->segs[i];
}

/* Room for one more at no more than half full. */
static int check_grow(struct check *c)
{
    if (2 * (c->nsegs + 1) <= c->cap)
        return SEGIDX_OK;
    size_t cap = c->cap ? 2 * c->cap : 64;
    struct open_segment *old = c->segs;
    size_t old_cap = c->cap;
    if (!(c->segs = calloc(cap, sizeof *c->segs))) {
        c->segs = old;
        return SEGIDX_ENOMEM;
    }
    c->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].seg)
            *check_lookup(c, &old[i].sid) = old[i];
    free(old);
    return SEGIDX_OK;
}

/* The first damaged page of a segment that failed verify, named. */
static int find_damaged(void *ctx, const segidx_segment_page *p)
{
    struct check *c = ctx;
    char hex[33];
    if (segidx_segment_check_page(c->at->seg, p->local, p->page) == SEGIDX_OK)
        return 0;
    cli_hex16(p->vid->bytes, hex);
    return check_problem(c, c->path, "page %u (volume %s offset %u lsn %llu): damaged: %s",
                         p->local, hex, (unsigned)p->offset, (unsigned long long)p->lsn,
                         segidx_strerror(SEGIDX_ECORRUPT));
}

/* Open, match against its name and verify the segment at `path`. */
static int check_open(struct check *c, struct open_segment *s, const char *path)
{
    int err = 0;
    int rc = cli_map_file(path, &s->map, &s->len, &err);
    if (rc)
        return check_problem(c, path, "%s%s%s%s: volume %s lsn %llu names it",
                             rc == SEGIDX_ENOTFOUND ? "missing" : segidx_strerror(rc),
                             err ? " (" : "", err ? strerror(err) : "", err ? ")" : "",
                             c->vid_hex, (unsigned long long)c->lsn);
    if ((rc = segidx_segment_open(s->map, s->len, &s->seg)))
        return check_problem(c, path, "%s", segidx_strerror(rc));
    segidx_segment_stats st;
    segidx_segment_stats_get(s->seg, &st);
    char hex[33];
    cli_hex16(st.sid.bytes, hex);
    if (cli_sid_cmp(&st.sid, &s->sid))
        return check_problem(c, path, "holds segment %s, not the one its name says", hex);
    if ((rc = segidx_segment_verify(s->seg))) {
        c->at = s;
        snprintf(c->path, sizeof c->path, "%s", path);
        if (rc == SEGIDX_ECORRUPT &&
            segidx_segment_iterate(s->seg, NULL, find_damaged, c) == CLI_FAIL)
            return CLI_FAIL; /* the page is named */
        return check_problem(c, path, "%s", segidx_strerror(rc));
    }
    return CLI_OK;
}

/* The segment `sid`, opened and checked the first time it is named. */
static int check_segment(struct check *c, const segidx_sid *sid, const struct open_segment **out)
{
    struct open_segment *s = c->cap ? check_lookup(c, sid) : NULL;
    if (s && s->seg) {
        *out = s;
        return CLI_OK;
    }
    char path[4200];
    cli_dir_segment_path(c->dir, sid, path, sizeof path);
    struct open_segment fresh = { *sid, NULL, 0, NULL };
    int rc = check_open(c, &fresh, path);
    if (!rc && check_grow(c))
        rc = check_problem(c, path, "%s", segidx_strerror(SEGIDX_ENOMEM));
    if (rc) {
        segidx_segment_close(fresh.seg);
        cli_unmap_file(fresh.map, fresh.len);
        return rc;
    }
    s = check_lookup(c, sid);
    *s = fresh;
    c->nsegs++;
    *out = s;
    return CLI_OK;
}

/* The entry's segment must hold the offset at exactly the entry's LSN. */
static int check_offset(segidx_offset off, void *ctx)
{
    struct check *c = ctx;
    segidx_page_ref ref;
    int rc = segidx_segment_find(c->at->seg, c->vid, off, c->lsn, &ref);
    if (!rc && ref.lsn == c->lsn)
        return 0;
    char path[4200];
    cli_dir_segment_path(c->dir, &c->at->sid, path, sizeof path);
    if (rc == SEGIDX_ENOTFOUND)
        return check_problem(c, path, "lacks volume %s offset %u lsn %llu, which the catalog "
                             "names", c->vid_hex, (unsigned)off, (unsigned long long)c->lsn);
    if (rc)
        return check_problem(c, path, "volume %s offset %u lsn %llu: %s", c->vid_hex,
                             (unsigned)off, (unsigned long long)c->lsn, segidx_strerror(rc));
    return check_problem(c, path, "holds volume %s offset %u at lsn %llu, not at lsn %llu, "
                         "which the catalog names", c->vid_hex, (unsigned)off,
                         (unsigned long long)ref.lsn, (unsigned long long)c->lsn);
}

static int check_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                       const segidx_offset_set *offsets)
{
    struct check *c = ctx;
    c->commits += lsn != c->lsn; /* a commit's entries come together */
    c->entries++;
    c->pages += segidx_offset_set_cardinality(offsets);
    c->lsn = lsn;
    int rc = check_segment(c, sid, &c->at);
    return rc ? rc : segidx_offset_set_iterate(offsets, check_offset, c);
}

/* A read through the checkpoints must name segments that hold what it
 * says they hold, as the entries do. */
static int check_found(void *ctx, const segidx_sid *sid, segidx_lsn lsn, segidx_offset_set *cut)
{
    struct check *c = ctx;
    c->lsn = lsn;
    int rc = check_segment(c, sid, &c->at);
    return rc ? rc : segidx_offset_set_iterate(cut, check_offset, c);
}

/* Every page the volume has as of its LSN, found in one read. */
static int check_read_all(struct check *c, segidx_volume_index *vi, const cli_volume *v)
{
    segidx_offset_set *q = segidx_offset_set_new();
    int rc = q ? segidx_offset_set_add_range(q, 0, v->meta.last_offset) : SEGIDX_ENOMEM;
    if (!rc)
        rc = segidx_offset_set_add(q, v->meta.last_offset); /* the range is [lo, hi) */
    if (!rc)
        rc = segidx_volume_find_segments(vi, &v->vid, v->meta.lsn, q, check_found, c);
    segidx_offset_set_free(q);
    if (rc && !c->problem[0]) {
        char index[4200];
        cli_dir_index_path(c->dir, index, sizeof index);
        check_problem(c, index, "volume %s: reading every page at lsn %llu: %s", c->vid_hex,
                      (unsigned long long)v->meta.lsn, segidx_strerror(rc));
    }
    return rc ? CLI_FAIL : CLI_OK;
}

static int check_volume(struct check *c, segidx_volume_index *vi, const cli_volume *v)
{
    c->vid = &v->vid;
    cli_hex16(v->vid.bytes, c->vid_hex);
    c->lsn = 0;
    int rc = segidx_volume_commits(vi, &v->vid, check_entry, c);
    if (rc && !c->problem[0]) {
        char index[4200];
        cli_dir_index_path(c->dir, index, sizeof index);
        check_problem(c, index, "volume %s: %s", c->vid_hex, segidx_strerror(rc));
    }
    return rc ? CLI_FAIL : check_read_all(c, vi, v);
}

static void check_free(struct check *c)
{
    for (size_t i = 0; i < c->cap; i++)
        if (c->segs[i].seg) {
            segidx_segment_close(c->segs[i].seg);
            cli_unmap_file(c->segs[i].map, c->segs[i].len);
        }
    free(c->segs);
}

static void check_report(const struct check *c, size_t volumes, bool json)
{
    if (json) {
        printf("{\"dir\": ");
        cli_json_string(c->dir);
        printf(", \"volumes\": %zu, \"commits\": %llu, \"entries\": %llu, \"pages\": %llu, "
               "\"segments\": %zu, \"ok\": %s",
               volumes, (unsigned long long)c->commits, (unsigned long long)c->entries,
               (unsigned long long)c->pages, c->nsegs, c->problem[0] ? "false" : "true");
        if (c->problem[0]) {
            printf(", \"path\": ");
            cli_json_string(c->path);
            printf(", \"error\": ");
            cli_json_string(c->problem);
        }
        printf("}\n");
    } else if (!c->problem[0]) {
        printf("volumes   %zu\n", volumes);
        printf("commits   %llu (%llu entries, %llu pages)\n", (unsigned long long)c->commits,
               (unsigned long long)c->entries, (unsigned long long)c->pages);
        printf("segments  %zu, every page checksum ok\n", c->nsegs);
        printf("%s: consistent\n", c->dir);
    }
    fflush(stdout);
    if (c->problem[0])
        fprintf(stderr, "segidx: %s: %s\n", c->path, c->problem);
}

static int run_check(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    bool json;
    int rc = cli_parse_json(cmd, argc, argv, &a, &json);
    if (rc)
        return rc;
    segidx_volume_index *vi;
    if ((rc = cli_open_index(a.pos[0], &vi)))
        return rc;
    struct check c = { 0 };
    c.dir = a.pos[0];
    cli_volumes vs;
    if ((rc = cli_volumes_list(vi, &vs))) {
        char index[4200];
        cli_dir_index_path(c.dir, index, sizeof index);
        check_problem(&c, index, "%s", segidx_strerror(rc));
    }
    for (size_t i = 0; !rc && i < vs.n; i++)
        rc = check_volume(&c, vi, &vs.v[i]);
    check_report(&c, vs.n, json);
    check_free(&c);
    cli_volumes_free(&vs);
    segidx_volume_index_close(vi);
    return c.problem[0] ? CLI_FAIL : CLI_OK;
}

const cli_command cli_cmd_check = {
    "check", "one DIR", 1, 1,
    "every catalog entry against the segment files it names",
    "usage: segidx check DIR [--json]\n"
    "Holds every commit entry of every volume in DIR/index to the segment file\n"
    "it names: the file exists, opens, is the segment its name says, every page\n"
    "checksum holds, and it has each offset of the entry at exactly the entry's\n"
    "LSN. Then reads every page of each volume at its LSN once, through the\n"
    "checkpoints. Exit 0 when all is consistent, 1 naming the first problem\n"
    "and its file.\n"
    "  --json               one JSON document on standard output\n",
    run_check,
};

/* ------------------------------------------------------------ stats */

struct file_count {
    uint64_t n, bytes;
};

struct stats {
    const cli_sid_set *referenced;
    struct file_count present, unreferenced, tmp, other;
    uint64_t referenced_present;
};

static int count_file(void *ctx, const cli_seg_entry *e)
{
    struct stats *s = ctx;
    struct file_count *fc = &s->other;
    if (e->kind == CLI_SEG_TMP)
        fc = &s->tmp;
    if (e->kind == CLI_SEG_SEGMENT) {
        fc = &s->present;
        if (cli_sid_set_has(s->referenced, &e->sid))
            s->referenced_present++;
        else
            s->unreferenced.n++, s->unreferenced.bytes += (uint64_t)e->bytes;
    }
    fc->n++;
    fc->bytes += (uint64_t)e->bytes;
    return 0;
}

static int count_entry(void *ctx, segidx_lsn lsn, const segidx_sid *sid,
                       const segidx_offset_set *offsets)
{
    (void)lsn, (void)sid, (void)offsets;
    (*(uint64_t *)ctx)++;
    return 0;
}

static void stats_volume(const cli_volume *v, uint64_t entries, size_t i, bool json)
{
    char hex[33], utc[32];
    cli_hex16(v->vid.bytes, hex);
    if (json) {
        printf("%s\n  {\"vid\": \"%s\", \"lsn\": %llu, \"last_offset\": %u, \"keep_from\": %llu, "
               "\"entries\": %llu, ",
               i ? "," : "", hex, (unsigned long long)v->meta.lsn, (unsigned)v->meta.last_offset,
               (unsigned long long)v->meta.keep_from, (unsigned long long)entries);
        cli_json_time("last_commit", v->meta.last_commit);
        putchar('}');
        return;
    }
    if (i == 0)
        printf("%-32s  %10s  %11s  %10s  %10s  %s\n", "vid", "lsn", "last_offset", "keep_from",
               "entries", "last_commit");
    cli_time_utc(v->meta.last_commit, utc);
    printf("%s  %10llu  %11u  %10llu  %10llu  %s\n", hex, (unsigned long long)v->meta.lsn,
           (unsigned)v->meta.last_offset, (unsigned long long)v->meta.keep_from,
           (unsigned long long)entries, utc);
}

/* What stats reads from the index: the volumes, their entries, and the
 * segments the entries name. */
struct stats_index {
    cli_volumes vs;
    uint64_t *entries; /* per volume */
    uint64_t total;
    cli_sid_set ref;
};

static int stats_read_index(segidx_volume_index *vi, struct stats_index *x)
{
    int rc = cli_volumes_list(vi, &x->vs);
    if (!rc && !(x->entries = calloc(x->vs.n + 1, sizeof *x->entries)))
        rc = SEGIDX_ENOMEM;
    for (size_t i = 0; !rc && i < x->vs.n; i++) {
        rc = segidx_volume_commits(vi, &x->vs.v[i].vid, count_entry, &x->entries[i]);
        x->total += x->entries[i];
    }
    if (!rc)
        rc = cli_sid_set_referenced(vi, &x->ref);
    return rc;
}

static void stats_index_free(struct stats_index *x)
{
    cli_volumes_free(&x->vs);
    cli_sid_set_free(&x->ref);
    free(x->entries);
}

static void stats_report(const char *dir, const struct stats_index *x, const struct stats *s,
                         uint64_t index_bytes, bool json)
{
    uint64_t missing = x->ref.n - s->referenced_present;
    if (json) {
        printf("{\"dir\": ");
        cli_json_string(dir);
        printf(", \"volumes\": %zu, \"entries\": %llu, \"segments_referenced\": %zu, "
               "\"segments_missing\": %llu,\n \"segment_files\": %llu, \"segment_bytes\": %llu, "
               "\"unreferenced_files\": %llu, \"unreferenced_bytes\": %llu, "
               "\"tmp_files\": %llu, \"tmp_bytes\": %llu, \"other_files\": %llu, "
               "\"index_bytes\": %llu,\n \"volume_list\": [",
               x->vs.n, (unsigned long long)x->total, x->ref.n, (unsigned long long)missing,
               (unsigned long long)s->present.n, (unsigned long long)s->present.bytes,
               (unsigned long long)s->unreferenced.n, (unsigned long long)s->unreferenced.bytes,
               (unsigned long long)s->tmp.n, (unsigned long long)s->tmp.bytes,
               (unsigned long long)s->other.n, (unsigned long long)index_bytes);
    } else {
        printf("volumes              %zu\n", x->vs.n);
        printf("commit entries       %llu\n", (unsigned long long)x->total);
        printf("segments referenced  %zu (%llu missing)\n", x->ref.n, (unsigned long long)missing);
        printf("segment files        %llu, %llu bytes\n", (unsigned long long)s->present.n,
               (unsigned long long)s->present.bytes);
        printf("unreferenced files   %llu, %llu bytes\n", (unsigned long long)s->unreferenced.n,
               (unsigned long long)s->unreferenced.bytes);
        printf("temporary files      %llu, %llu bytes\n", (unsigned long long)s->tmp.n,
               (unsigned long long)s->tmp.bytes);
        printf("other files          %llu\n", (unsigned long long)s->other.n);
        printf("index bytes          %llu (LMDB data.mdb)\n", (unsigned long long)index_bytes);
    }
    for (size_t i = 0; i < x->vs.n; i++)
        stats_volume(&x->vs.v[i], x->entries[i], i, json);
    if (json)
        printf("]}\n");
}

static int run_stats(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    bool json;
    int rc = cli_parse_json(cmd, argc, argv, &a, &json);
    if (rc)
        return rc;
    const char *dir = a.pos[0];
    segidx_volume_index *vi;
    if ((rc = cli_open_index(dir, &vi)))
        return rc;
    struct stats_index x = { 0 };
    char path[4200];
    cli_dir_index_path(dir, path, sizeof path);
    rc = stats_read_index(vi, &x);
    segidx_volume_index_close(vi);
    if (rc) {
        stats_index_free(&x);
        return cli_fail(path, rc);
    }
    struct stats s = { &x.ref, { 0 }, { 0 }, { 0 }, { 0 }, 0 };
    struct stat st;
    snprintf(path + strlen(path), sizeof path - strlen(path), "/data.mdb");
    if (stat(path, &st) != 0)
        rc = cli_fail_errno(path, SEGIDX_EIO, errno);
    if (!rc)
        rc = cli_dir_scan_segments(dir, count_file, &s);
    if (!rc)
        stats_report(dir, &x, &s, (uint64_t)st.st_size, json);
    stats_index_free(&x);
    return rc;
}

const cli_command cli_cmd_stats = {
    "stats", "one DIR", 1, 1,
    "what DIR holds: volumes, entries, segments, files, bytes",
    "usage: segidx stats DIR [--json]\n"
    "Volumes and commit entries in DIR/index, the segments they reference\n"
    "(and how many of those are missing), the segment files in DIR/segments\n"
    "and their bytes, those no entry references (what gc may delete),\n"
    "temporary files, the size of the LMDB file, and per volume its LSN, last\n"
    "offset, prune point, entries and last commit time (UTC).\n"
    "  --json               one JSON document on standard output\n",
    run_stats,
};
