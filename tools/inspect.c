/* inspect.c: the subcommands that read segment files: inspect, verify,
 * dump, and get (which may find its segment through a volume index). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ inspect */

static void inspect_header(const char *path, const segidx_segment_stats *st, bool json)
{
    char hex[33];
    cli_hex16(st->sid.bytes, hex);
    double per_page = st->page_count ? (double)st->index_bytes / st->page_count : 0.0;
    if (json) {
        printf("{\"path\": ");
        cli_json_string(path);
        printf(", \"sid\": \"%s\", \"page_size\": %u, \"page_count\": %u, "
               "\"volume_count\": %u, \"segment_bytes\": %llu, \"index_bytes\": %zu, "
               "\"index_bytes_per_page\": %.3f,\n \"volumes\": [",
               hex, st->page_size, st->page_count, st->volume_count,
               (unsigned long long)st->segment_bytes, st->index_bytes, per_page);
        return;
    }
    printf("segment        %s\n", path);
    printf("sid            %s\n", hex);
    printf("page size      %u\n", st->page_size);
    printf("pages          %u\n", st->page_count);
    printf("volumes        %u\n", st->volume_count);
    printf("segment bytes  %llu\n", (unsigned long long)st->segment_bytes);
    printf("index bytes    %zu (%.2f bytes/page)\n", st->index_bytes, per_page);
}

static void inspect_volume(const segidx_segment_volume *v, uint32_t i, bool json)
{
    char hex[33];
    cli_hex16(v->vid.bytes, hex);
    if (json)
        printf("%s\n  {\"vid\": \"%s\", \"first_page\": %u, \"page_count\": %u, "
               "\"offset_count\": %u, \"first_offset\": %u, \"last_offset\": %u, "
               "\"min_lsn\": %llu, \"max_lsn\": %llu, \"encoding\": \"%s\", "
               "\"rlsn_width\": %u, \"index_bytes\": %zu}",
               i ? "," : "", hex, v->first_page, v->page_count, v->offset_count,
               (unsigned)v->first_offset, (unsigned)v->last_offset,
               (unsigned long long)v->min_lsn, (unsigned long long)v->max_lsn,
               cli_encoding_name(v->offset_encoding), v->rlsn_width, v->index_bytes);
    else
        printf("volume %s\n"
               "  pages %u (local %u..%u), offsets %u (%u..%u), lsn %llu..%llu,\n"
               "  encoding %s, rLSN width %u, index bytes %zu\n",
               hex, v->page_count, v->first_page, v->first_page + v->page_count - 1,
               v->offset_count, (unsigned)v->first_offset, (unsigned)v->last_offset,
               (unsigned long long)v->min_lsn, (unsigned long long)v->max_lsn,
               cli_encoding_name(v->offset_encoding), v->rlsn_width, v->index_bytes);
}

/* What inspect and dump take: one SEGMENT, opened here, and --json. */
static int open_segment_arg(const cli_command *cmd, int argc, char **argv, const char **path,
                            cli_segment_file *f, bool *json)
{
    cli_args a;
    int rc = cli_parse_json(cmd, argc, argv, &a, json);
    if (rc)
        return rc;
    *path = a.pos[0];
    return cli_segment_file_open(*path, f);
}

static int run_inspect(const cli_command *cmd, int argc, char **argv)
{
    const char *path;
    cli_segment_file f;
    bool json;
    int rc = open_segment_arg(cmd, argc, argv, &path, &f, &json);
    if (rc)
        return rc;

    segidx_segment_stats st;
    segidx_segment_stats_get(f.seg, &st);
    int verify = segidx_segment_verify(f.seg);
    inspect_header(path, &st, json);
    for (uint32_t i = 0; i < st.volume_count; i++) {
        segidx_segment_volume v;
        if ((rc = segidx_segment_volume_get(f.seg, i, &v))) {
            cli_segment_file_close(&f);
            return cli_fail(path, rc);
        }
        inspect_volume(&v, i, json);
    }
    if (json)
        printf("],\n \"pages\": \"%s\"}\n", verify ? segidx_strerror(verify) : "ok");
    else
        printf("pages: %s\n", verify ? segidx_strerror(verify) : "ok");
    cli_segment_file_close(&f);
    if (verify) {
        fflush(stdout);
        return cli_fail(path, verify);
    }
    return CLI_OK;
}

const cli_command cli_cmd_inspect = {
    "inspect", "one SEGMENT", 1, 1,
    "a segment's header, volumes and checksums",
    "usage: segidx inspect SEGMENT [--json]\n"
    "A segment's header facts, each volume it holds (pages, offsets, LSN range,\n"
    "offset encoding, rLSN width, index bytes) and whether every page checksum\n"
    "holds; exit 1 when one does not.\n"
    "  --json               one JSON document on standard output\n",
    run_inspect,
};

/* ------------------------------------------------------------ verify */

/* Open and fully validate one file; *err is errno when reading failed. */
static int verify_file(const char *path, int *err)
{
    void *buf = NULL;
    size_t len = 0;
    segidx_segment *seg = NULL;
    *err = 0;
    int rc = cli_read_file(path, &buf, &len, err);
    if (rc)
        return rc;
    if (!(rc = segidx_segment_open(buf, len, &seg)))
        rc = segidx_segment_verify(seg);
    segidx_segment_close(seg);
    free(buf);
    return rc;
}

static void verify_line(const char *path, int rc, int err, bool json, int i)
{
    if (json) {
        printf("%s\n  {\"path\": ", i ? "," : "");
        cli_json_string(path);
        if (rc)
            printf(", \"ok\": false, \"error\": \"%s%s%s%s\"}", segidx_strerror(rc),
                   err ? " (" : "", err ? strerror(err) : "", err ? ")" : "");
        else
            printf(", \"ok\": true}");
    } else if (rc && err) {
        printf("FAIL %s: %s (%s)\n", path, segidx_strerror(rc), strerror(err));
    } else if (rc) {
        printf("FAIL %s: %s\n", path, segidx_strerror(rc));
    } else {
        printf("OK %s\n", path);
    }
}

static int run_verify(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    bool json;
    int rc = cli_parse_json(cmd, argc, argv, &a, &json);
    if (rc)
        return rc;
    int bad = 0;
    if (json)
        printf("{\"files\": [");
    for (int i = 0; i < a.npos; i++) {
        int err;
        rc = verify_file(a.pos[i], &err);
        verify_line(a.pos[i], rc, err, json, i);
        bad += rc != 0;
    }
    if (json)
        printf("],\n \"checked\": %d, \"failed\": %d}\n", a.npos, bad);
    return bad ? CLI_FAIL : CLI_OK;
}

const cli_command cli_cmd_verify = {
    "verify", "SEGMENT...", 1, -1,
    "full validation of segment files, one line each",
    "usage: segidx verify SEGMENT... [--json]\n"
    "Validates each file fully (its index and every page checksum), one line\n"
    "each: \"OK PATH\" or \"FAIL PATH: why\"; exit 1 when any fails.\n"
    "  --json               one JSON document on standard output\n",
    run_verify,
};

/* ------------------------------------------------------------ dump */

struct dump {
    const segidx_segment *seg;
    bool json;
    uint32_t pages, damaged;
};

static int dump_page(void *ctx, const segidx_segment_page *p)
{
    struct dump *d = ctx;
    uint64_t at = 0;
    uint32_t len = 0;
    int rc = segidx_segment_page_range(d->seg, p->local, &at, &len);
    if (rc)
        return rc;
    bool ok = segidx_segment_check_page(d->seg, p->local, p->page) == SEGIDX_OK;
    char hex[33];
    cli_hex16(p->vid->bytes, hex);
    if (d->json)
        printf("%s\n  {\"vid\": \"%s\", \"offset\": %u, \"lsn\": %llu, \"local\": %u, "
               "\"start\": %llu, \"end\": %llu, \"ok\": %s}",
               d->pages ? "," : "", hex, (unsigned)p->offset, (unsigned long long)p->lsn,
               p->local, (unsigned long long)at, (unsigned long long)(at + len),
               ok ? "true" : "false");
    else {
        char range[48];
        snprintf(range, sizeof range, "%llu..%llu", (unsigned long long)at,
                 (unsigned long long)(at + len));
        printf("%s  %10u  %10llu  %6u  %-22s  %s\n", hex, (unsigned)p->offset,
               (unsigned long long)p->lsn, p->local, range, ok ? "ok" : "DAMAGED");
    }
    d->pages++;
    d->damaged += !ok;
    return 0;
}

static int run_dump(const cli_command *cmd, int argc, char **argv)
{
    const char *path;
    cli_segment_file f;
    bool json;
    int rc = open_segment_arg(cmd, argc, argv, &path, &f, &json);
    if (rc)
        return rc;
    struct dump d = { f.seg, json, 0, 0 };
    segidx_segment_stats st;
    segidx_segment_stats_get(f.seg, &st);
    char hex[33];
    cli_hex16(st.sid.bytes, hex);
    if (d.json) {
        printf("{\"path\": ");
        cli_json_string(path);
        printf(", \"sid\": \"%s\", \"page_size\": %u,\n \"pages\": [", hex, st.page_size);
    } else {
        printf("%-32s  %10s  %10s  %6s  %-22s  %s\n", "vid", "offset", "lsn", "local", "bytes",
               "checksum");
    }
    rc = segidx_segment_iterate(f.seg, NULL, dump_page, &d);
    if (d.json)
        printf("],\n \"page_count\": %u, \"damaged\": %u}\n", d.pages, d.damaged);
    cli_segment_file_close(&f);
    fflush(stdout);
    if (rc)
        return cli_fail(path, rc);
    if (d.damaged) {
        fprintf(stderr, "segidx: %s: %u of %u pages damaged: %s\n", path, d.damaged, d.pages,
                segidx_strerror(SEGIDX_ECORRUPT));
        return CLI_FAIL;
    }
    return CLI_OK;
}

const cli_command cli_cmd_dump = {
    "dump", "one SEGMENT", 1, 1,
    "every page version of a segment, one line each",
    "usage: segidx dump SEGMENT [--json]\n"
    "Every page version the segment holds, one line each in (vid, offset, lsn)\n"
    "order: vid, offset, lsn, local index, byte range in the file, and whether\n"
    "its checksum holds (ok or DAMAGED); exit 1 when a page is damaged.\n"
    "  --json               one JSON document on standard output\n",
    run_dump,
};

/* ------------------------------------------------------------ get */

/* What `get` was asked: a page, in a segment file or through an index. */
struct get_query {
    const char *index_dir; /* --index DIR, or NULL */
    const char *vid_text;
    segidx_vid vid;
    uint64_t off, lsn;
    bool hex, json;
};

static int get_parse(const cli_command *cmd, const cli_args *a, struct get_query *q)
{
    int first = q->index_dir ? 0 : 1; /* where VID sits among the positionals */
    if (a->npos < first + 2 || a->npos > first + 3)
        return cli_usage_error(cmd, "expected %sVID OFFSET [LSN]",
                               q->index_dir ? "--index DIR " : "SEGMENT ");
    q->vid_text = a->pos[first];
    q->lsn = UINT64_MAX;
    if (!cli_parse_hex16(a->pos[first], q->vid.bytes))
        return cli_usage_error(cmd, "VID must be 32 hex characters: %s", a->pos[first]);
    if (!cli_parse_u64(a->pos[first + 1], &q->off) || q->off > UINT32_MAX)
        return cli_usage_error(cmd, "bad OFFSET: %s", a->pos[first + 1]);
    if (a->npos == first + 3 && (!cli_parse_u64(a->pos[first + 2], &q->lsn) || q->lsn == 0))
        return cli_usage_error(cmd, "bad LSN: %s", a->pos[first + 2]);
    return CLI_OK;
}

struct found_segment {
    bool found;
    segidx_sid sid;
    segidx_lsn lsn;
};

static int on_found_segment(void *ctx, const segidx_sid *sid, segidx_lsn lsn,
                            segidx_offset_set *cut)
{
    struct found_segment *f = ctx;
    (void)cut;
    f->found = true;
    f->sid = *sid;
    f->lsn = lsn;
    return 0;
}

/* The segment file the index names for the page, and the LSN of the
 * commit that wrote it, into path and *lsn. */
static int get_through_index(const struct get_query *q, char *path, size_t cap, segidx_lsn *lsn)
{
    segidx_volume_index *vi;
    int rc = cli_open_index(q->index_dir, &vi);
    if (rc)
        return rc;
    segidx_offset_set *s = segidx_offset_set_new();
    struct found_segment f = { 0 };
    rc = s ? segidx_offset_set_add(s, (segidx_offset)q->off) : SEGIDX_ENOMEM;
    if (!rc)
        rc = segidx_volume_find_segments(vi, &q->vid, q->lsn, s, on_found_segment, &f);
    segidx_offset_set_free(s);
    segidx_volume_index_close(vi);
    if (rc) {
        snprintf(path, cap, "%s: volume %s", q->index_dir, q->vid_text);
        return cli_fail(path, rc);
    }
    if (!f.found) {
        fprintf(stderr, "segidx: %s: volume %s offset %llu: never written (a zero page)\n",
                q->index_dir, q->vid_text, (unsigned long long)q->off);
        return CLI_FAIL;
    }
    cli_dir_segment_path(q->index_dir, &f.sid, path, cap);
    *lsn = f.lsn;
    return CLI_OK;
}

static void hexdump(const unsigned char *p, size_t len, uint64_t base)
{
    for (size_t i = 0; i < len; i += 16) {
        printf("%08llx ", (unsigned long long)(base + i));
        for (size_t j = 0; j < 16; j++) {
            if (j == 8)
                putchar(' ');
            if (i + j < len)
                printf(" %02x", p[i + j]);
            else
                printf("   ");
        }
        printf("  |");
        for (size_t j = 0; j < 16 && i + j < len; j++)
            putchar(p[i + j] >= 0x20 && p[i + j] < 0x7f ? p[i + j] : '.');
        printf("|\n");
    }
    printf("%08llx\n", (unsigned long long)(base + len));
}

static void get_print(const struct get_query *q, const char *path, const segidx_segment *seg,
                      const segidx_page_ref *ref, uint64_t at, uint32_t len)
{
    segidx_segment_stats st;
    segidx_segment_stats_get(seg, &st);
    char hex[33];
    cli_hex16(st.sid.bytes, hex);
    if (q->json) {
        printf("{\"segment\": ");
        cli_json_string(path);
        printf(", \"sid\": \"%s\", \"vid\": \"%s\", \"offset\": %llu, \"local\": %u, "
               "\"lsn\": %llu, \"start\": %llu, \"end\": %llu, \"bytes\": %u",
               hex, q->vid_text, (unsigned long long)q->off, ref->local,
               (unsigned long long)ref->lsn, (unsigned long long)at,
               (unsigned long long)(at + len), len);
        if (q->hex) {
            printf(", \"page_hex\": \"");
            for (uint32_t i = 0; i < len; i++)
                printf("%02x", ((const unsigned char *)ref->page)[i]);
            putchar('"');
        }
        printf("}\n");
        return;
    }
    printf("segment  %s\n", path);
    printf("sid      %s\n", hex);
    printf("local    %u\n", ref->local);
    printf("lsn      %llu\n", (unsigned long long)ref->lsn);
    printf("bytes    %llu..%llu (%u bytes)\n", (unsigned long long)at,
           (unsigned long long)(at + len), len);
    if (q->hex)
        hexdump(ref->page, len, at);
}

/* Find the page in the file at `path` as of `lsn` and show it. */
static int get_from_segment(const struct get_query *q, const char *path, segidx_lsn lsn)
{
    cli_segment_file f;
    int rc = cli_segment_file_open(path, &f);
    if (rc)
        return rc;
    char what[4200];
    segidx_page_ref ref;
    uint64_t at = 0;
    uint32_t len = 0;
    if ((rc = segidx_segment_find(f.seg, &q->vid, (segidx_offset)q->off, lsn, &ref))) {
        snprintf(what, sizeof what, "%s: volume %s offset %llu", path, q->vid_text,
                 (unsigned long long)q->off);
    } else if ((rc = segidx_segment_page_range(f.seg, ref.local, &at, &len))) {
        snprintf(what, sizeof what, "%s", path);
    } else if ((rc = segidx_segment_check_page(f.seg, ref.local, ref.page))) {
        /* A page that fails its checksum is reported, never shown as good. */
        snprintf(what, sizeof what, "%s: page %u", path, ref.local);
    } else {
        get_print(q, path, f.seg, &ref, at, len);
    }
    cli_segment_file_close(&f);
    return rc ? cli_fail(what, rc) : CLI_OK;
}

static int run_get(const cli_command *cmd, int argc, char **argv)
{
    cli_opt opts[] = { { "hex", false, false, NULL }, { "index", true, false, NULL },
                       { "json", false, false, NULL } };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 3, &a);
    if (rc)
        return rc;
    struct get_query q = { 0 };
    q.index_dir = opts[1].seen ? opts[1].value : NULL;
    q.hex = opts[0].seen;
    q.json = opts[2].seen;
    if ((rc = get_parse(cmd, &a, &q)))
        return rc;
    char path[4096];
    segidx_lsn lsn = q.lsn;
    if (!q.index_dir)
        snprintf(path, sizeof path, "%s", a.pos[0]);
    else if ((rc = get_through_index(&q, path, sizeof path, &lsn)))
        return rc;
    return get_from_segment(&q, path, lsn);
}

const cli_command cli_cmd_get = {
    "get", "SEGMENT VID OFFSET [LSN]", 2, 4,
    "where a page is, in a segment or through a volume index",
    "usage: segidx get SEGMENT VID OFFSET [LSN] [--hex] [--json]\n"
    "       segidx get --index DIR VID OFFSET [LSN] [--hex] [--json]\n"
    "Where page OFFSET of volume VID is as of LSN (the latest by default): in\n"
    "SEGMENT, or in the segment that DIR's volume index names for it. The\n"
    "page's checksum is checked; a damaged page is an error.\n"
    "  --index DIR          find the segment through DIR/index\n"
    "  --hex                dump the page's bytes too\n"
    "  --json               one JSON document on standard output (with --hex,\n"
    "                       the page as \"page_hex\")\n",
    run_get,
};
