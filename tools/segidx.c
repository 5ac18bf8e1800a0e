/* segidx: the command-line tool of libsegidx, what mdb_stat and
 * sqlite3_analyzer are to their libraries. `demo` lives in demo.c; the
 * other subcommands, which look at what a host stored, live here. */
#include "cli.h"

#include <segidx_lmdb.h>

#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void cli_print_usage(void)
{
    fputs("usage: segidx <command> [arguments]\n"
          "\n"
          "  demo [DIR] [--volumes N] [--commits N] [--pages N] [--reads N] [--seed S]\n"
          "       [--acks]\n"
          "        write volumes through the packer into segment files and an LMDB\n"
          "        volume index under DIR, read them back and check every page;\n"
          "        --acks prints \"ack VID LSN PAGES\" as each commit enters the index\n"
          "  inspect SEGMENT [--json]      a segment's header, volumes and checksums\n"
          "  verify SEGMENT...             full validation, one line per file\n"
          "  get SEGMENT VID OFFSET [LSN] [--hex]\n"
          "  get --index DIR VID OFFSET [LSN] [--hex]\n"
          "        where a page is (the latest version at or below LSN)\n"
          "  ls DIR [VID] [--json]         the volumes of DIR/index, or one's commits\n"
          "  bench                         run the benchmarks built beside segidx\n"
          "  --version, --help\n"
          "\n"
          "Ids are 32 hex characters. Exit status: 0 success, 1 failure, 2 usage.\n",
          stderr);
}

/* ------------------------------------------------------------ JSON */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* ------------------------------------------------------------ inspect */

int cli_inspect(int argc, char **argv)
{
    cli_flag flags[] = { { "--json", false, false, NULL } };
    cli_args a;
    int rc = cli_parse_args(argc, argv, flags, 1, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cli_usage_error("inspect: expected one SEGMENT");
    bool json = flags[0].seen;
    const char *path = a.pos[0];
    cli_segment_file f;
    if ((rc = cli_segment_file_open(path, &f)))
        return rc;

    segidx_segment_stats st;
    segidx_segment_stats_get(f.seg, &st);
    char hex[33];
    cli_hex16(st.sid.bytes, hex);
    double per_page = st.page_count ? (double)st.index_bytes / st.page_count : 0.0;
    int verify = segidx_segment_verify(f.seg);
    if (json) {
        printf("{\"path\": ");
        json_string(path);
        printf(", \"sid\": \"%s\", \"page_size\": %u, \"page_count\": %u, "
               "\"volume_count\": %u, \"segment_bytes\": %llu, \"index_bytes\": %zu, "
               "\"index_bytes_per_page\": %.3f,\n \"volumes\": [",
               hex, st.page_size, st.page_count, st.volume_count,
               (unsigned long long)st.segment_bytes, st.index_bytes, per_page);
    } else {
        printf("segment        %s\n", path);
        printf("sid            %s\n", hex);
        printf("page size      %u\n", st.page_size);
        printf("pages          %u\n", st.page_count);
        printf("volumes        %u\n", st.volume_count);
        printf("segment bytes  %llu\n", (unsigned long long)st.segment_bytes);
        printf("index bytes    %zu (%.2f bytes/page)\n", st.index_bytes, per_page);
    }
    for (uint32_t i = 0; i < st.volume_count; i++) {
        segidx_segment_volume v;
        if ((rc = segidx_segment_volume_get(f.seg, i, &v))) {
            cli_segment_file_close(&f);
            return cli_fail(path, rc);
        }
        cli_hex16(v.vid.bytes, hex);
        if (json)
            printf("%s\n  {\"vid\": \"%s\", \"first_page\": %u, \"page_count\": %u, "
                   "\"offset_count\": %u, \"first_offset\": %u, \"last_offset\": %u, "
                   "\"min_lsn\": %llu, \"max_lsn\": %llu, \"encoding\": \"%s\", "
                   "\"rlsn_width\": %u, \"index_bytes\": %zu}",
                   i ? "," : "", hex, v.first_page, v.page_count, v.offset_count,
                   (unsigned)v.first_offset, (unsigned)v.last_offset,
                   (unsigned long long)v.min_lsn, (unsigned long long)v.max_lsn,
                   cli_encoding_name(v.offset_encoding), v.rlsn_width, v.index_bytes);
        else
            printf("volume %s\n"
                   "  pages %u (local %u..%u), offsets %u (%u..%u), lsn %llu..%llu,\n"
                   "  encoding %s, rLSN width %u, index bytes %zu\n",
                   hex, v.page_count, v.first_page, v.first_page + v.page_count - 1,
                   v.offset_count, (unsigned)v.first_offset, (unsigned)v.last_offset,
                   (unsigned long long)v.min_lsn, (unsigned long long)v.max_lsn,
                   cli_encoding_name(v.offset_encoding), v.rlsn_width, v.index_bytes);
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

/* ------------------------------------------------------------ verify */

int cli_verify(int argc, char **argv)
{
    int rc;
    if (argc < 2)
        return cli_usage_error("verify: expected SEGMENT...");
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] == '-')
            return cli_usage_error("verify: unknown option %s", argv[i]);
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *path = argv[i];
        void *buf = NULL;
        size_t len = 0;
        int err = 0;
        segidx_segment *seg = NULL;
        rc = cli_read_file(path, &buf, &len, &err);
        if (rc) {
            printf("FAIL %s: %s (%s)\n", path, segidx_strerror(rc), strerror(err));
            bad++;
            continue;
        }
        if (!(rc = segidx_segment_open(buf, len, &seg)))
            rc = segidx_segment_verify(seg);
        segidx_segment_close(seg);
        free(buf);
        if (rc) {
            printf("FAIL %s: %s\n", path, segidx_strerror(rc));
            bad++;
        } else {
            printf("OK %s\n", path);
        }
    }
    return bad ? CLI_FAIL : CLI_OK;
}

/* ------------------------------------------------------------ index */

static int open_index(const char *dir, segidx_volume_index **out)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/index", dir);
    if (stat(path, &st) != 0)
        return cli_fail_errno(path, SEGIDX_ENOTFOUND, errno);
    if (!S_ISDIR(st.st_mode))
        return cli_fail_errno(path, SEGIDX_EINVAL, ENOTDIR);
    segidx_kv kv;
    int open_error = 0;
    segidx_kv_lmdb_options opts = { 0 };
    opts.open_error = &open_error;
    int rc = segidx_kv_lmdb_open(path, &opts, &kv);
    if (rc) {
        fprintf(stderr, "segidx: %s: %s (%s)\n", path, segidx_strerror(rc),
                segidx_kv_lmdb_strerror(open_error));
        return CLI_FAIL;
    }
    if ((rc = segidx_volume_index_open(kv, out))) {
        kv.vt->close(kv.self);
        return cli_fail(path, rc);
    }
    return CLI_OK;
}

/* ------------------------------------------------------------ get */

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

int cli_get(int argc, char **argv)
{
    cli_flag flags[] = { { "--hex", false, false, NULL }, { "--index", true, false, NULL } };
    cli_args a;
    int rc = cli_parse_args(argc, argv, flags, 2, &a);
    if (rc)
        return rc;
    bool by_index = flags[1].seen;
    int first = by_index ? 0 : 1; /* where VID sits among the positionals */
    if (a.npos < first + 2 || a.npos > first + 3)
        return cli_usage_error("get: expected %sVID OFFSET [LSN]",
                               by_index ? "--index DIR " : "SEGMENT ");
    segidx_vid vid;
    uint64_t off, lsn = UINT64_MAX;
    if (!cli_parse_hex16(a.pos[first], vid.bytes))
        return cli_usage_error("get: VID must be 32 hex characters: %s", a.pos[first]);
    if (!cli_parse_u64(a.pos[first + 1], &off) || off > UINT32_MAX)
        return cli_usage_error("get: bad OFFSET: %s", a.pos[first + 1]);
    if (a.npos == first + 3 && (!cli_parse_u64(a.pos[first + 2], &lsn) || lsn == 0))
        return cli_usage_error("get: bad LSN: %s", a.pos[first + 2]);

    char path[4096];
    segidx_lsn find_lsn = lsn;
    if (by_index) {
        segidx_volume_index *vi;
        if ((rc = open_index(flags[1].value, &vi)))
            return rc;
        segidx_offset_set *q = segidx_offset_set_new();
        struct found_segment f = { 0 };
        rc = q ? segidx_offset_set_add(q, (segidx_offset)off) : SEGIDX_ENOMEM;
        if (!rc)
            rc = segidx_volume_find_segments(vi, &vid, lsn, q, on_found_segment, &f);
        segidx_offset_set_free(q);
        segidx_volume_index_close(vi);
        if (rc) {
            snprintf(path, sizeof path, "%s: volume %s", flags[1].value, a.pos[first]);
            return cli_fail(path, rc);
        }
        if (!f.found) {
            fprintf(stderr, "segidx: %s: volume %s offset %llu: never written (a zero page)\n",
                    flags[1].value, a.pos[first], (unsigned long long)off);
            return CLI_FAIL;
        }
        char hex[33];
        cli_hex16(f.sid.bytes, hex);
        snprintf(path, sizeof path, "%s/segments/%s.seg", flags[1].value, hex);
        find_lsn = f.lsn;
    } else {
        snprintf(path, sizeof path, "%s", a.pos[0]);
    }

    cli_segment_file f;
    if ((rc = cli_segment_file_open(path, &f)))
        return rc;
    segidx_page_ref ref;
    if ((rc = segidx_segment_find(f.seg, &vid, (segidx_offset)off, find_lsn, &ref))) {
        cli_segment_file_close(&f);
        char what[4200];
        snprintf(what, sizeof what, "%s: volume %s offset %llu", path, a.pos[first],
                 (unsigned long long)off);
        return cli_fail(what, rc);
    }
    uint64_t at = 0;
    uint32_t len = 0;
    if ((rc = segidx_segment_page_range(f.seg, ref.local, &at, &len))) {
        cli_segment_file_close(&f);
        return cli_fail(path, rc);
    }
    /* A page that fails its checksum is reported, never shown as good. */
    if ((rc = segidx_segment_check_page(f.seg, ref.local, ref.page))) {
        cli_segment_file_close(&f);
        char what[4200];
        snprintf(what, sizeof what, "%s: page %u", path, ref.local);
        return cli_fail(what, rc);
    }
    segidx_segment_stats st;
    segidx_segment_stats_get(f.seg, &st);
    char hex[33];
    cli_hex16(st.sid.bytes, hex);
    printf("segment  %s\n", path);
    printf("sid      %s\n", hex);
    printf("local    %u\n", ref.local);
    printf("lsn      %llu\n", (unsigned long long)ref.lsn);
    printf("bytes    %llu..%llu (%u bytes)\n", (unsigned long long)at,
           (unsigned long long)(at + len), len);
    if (flags[0].seen)
        hexdump(ref.page, len, at);
    cli_segment_file_close(&f);
    return CLI_OK;
}

/* ------------------------------------------------------------ ls */

struct ls_state {
    bool json;
    unsigned n;
};

static int on_volume(void *ctx, const segidx_vid *vid, const segidx_volume_meta *m)
{
    struct ls_state *s = ctx;
    char hex[33];
    cli_hex16(vid->bytes, hex);
    if (s->json)
        printf("%s\n  {\"vid\": \"%s\", \"lsn\": %llu, \"last_offset\": %u, "
               "\"last_commit\": %llu, \"keep_from\": %llu}",
               s->n ? "," : "", hex, (unsigned long long)m->lsn, (unsigned)m->last_offset,
               (unsigned long long)m->last_commit, (unsigned long long)m->keep_from);
    else
        printf("%s  %10llu  %11u  %11llu\n", hex, (unsigned long long)m->lsn,
               (unsigned)m->last_offset, (unsigned long long)m->last_commit);
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

int cli_ls(int argc, char **argv)
{
    cli_flag flags[] = { { "--json", false, false, NULL } };
    cli_args a;
    int rc = cli_parse_args(argc, argv, flags, 1, &a);
    if (rc)
        return rc;
    if (a.npos < 1 || a.npos > 2)
        return cli_usage_error("ls: expected DIR [VID]");
    segidx_vid vid;
    if (a.npos == 2 && !cli_parse_hex16(a.pos[1], vid.bytes))
        return cli_usage_error("ls: VID must be 32 hex characters: %s", a.pos[1]);
    segidx_volume_index *vi;
    if ((rc = open_index(a.pos[0], &vi)))
        return rc;
    struct ls_state s = { flags[0].seen, 0 };
    char what[4200];
    if (a.npos == 1) {
        if (s.json)
            printf("{\"volumes\": [");
        else
            printf("%-32s  %10s  %11s  %11s\n", "vid", "lsn", "last_offset", "last_commit");
        rc = segidx_volume_list(vi, on_volume, &s);
        snprintf(what, sizeof what, "%s", a.pos[0]);
    } else {
        segidx_volume_meta m;
        rc = segidx_volume_get(vi, &vid, &m);
        if (!rc) {
            if (s.json)
                printf("{\"vid\": \"%s\", \"lsn\": %llu, \"last_offset\": %u, "
                       "\"last_commit\": %llu, \"keep_from\": %llu, \"commits\": [",
                       a.pos[1], (unsigned long long)m.lsn, (unsigned)m.last_offset,
                       (unsigned long long)m.last_commit, (unsigned long long)m.keep_from);
            else
                printf("volume %s: lsn %llu, last_offset %u, last_commit %llu\n"
                       "%10s  %-32s  %8s\n",
                       a.pos[1], (unsigned long long)m.lsn, (unsigned)m.last_offset,
                       (unsigned long long)m.last_commit, "lsn", "sid", "pages");
            rc = segidx_volume_commits(vi, &vid, on_commit, &s);
        }
        snprintf(what, sizeof what, "%s: volume %s", a.pos[0], a.pos[1]);
    }
    segidx_volume_index_close(vi);
    if (s.json && (a.npos == 1 || s.n || !rc))
        printf("]}\n");
    if (rc)
        return cli_fail(what, rc);
    return CLI_OK;
}

/* ------------------------------------------------------------ bench */

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The benchmarks are built in build/bench, beside build/segidx: run each
 * one found there, in name order. Installed, there are none. */
int cli_bench(int argc, char **argv, const char *argv0)
{
    (void)argv;
    if (argc > 1)
        return cli_usage_error("bench: takes no arguments");
    char dir[4096];
    const char *slash = strrchr(argv0, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s/bench", (int)(slash - argv0), argv0);
    else
        snprintf(dir, sizeof dir, "bench-not-found");
    DIR *d = slash ? opendir(dir) : NULL;
    char *names[64];
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < 64;)
        if (!strncmp(e->d_name, "bench_", 6))
            names[n++] = strdup(e->d_name);
    if (d)
        closedir(d);
    if (!n) {
        printf("segidx bench: no benchmarks beside this program; "
               "run `make bench` in the source tree\n");
        return CLI_OK;
    }
    qsort(names, n, sizeof names[0], compare_names);
    int status = CLI_OK;
    for (size_t i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execl(path, path, (char *)NULL);
            _exit(127);
        }
        int ws = 0;
        if (pid < 0 || waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws)) {
            fprintf(stderr, "segidx: bench: %s failed\n", path);
            status = CLI_FAIL;
        }
        free(names[i]);
    }
    return status;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_print_usage();
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("%s\n", segidx_version_string());
        return CLI_OK;
    }
    if (!strcmp(cmd, "demo"))
        return cli_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect"))
        return cli_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify"))
        return cli_verify(argc - 1, argv + 1);
    if (!strcmp(cmd, "get"))
        return cli_get(argc - 1, argv + 1);
    if (!strcmp(cmd, "ls"))
        return cli_ls(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cli_bench(argc - 1, argv + 1, argv[0]);
    if (strcmp(cmd, "--help") && strcmp(cmd, "help") && strcmp(cmd, "-h"))
        fprintf(stderr, "segidx: unknown command: %s\n", cmd);
    cli_print_usage();
    return CLI_USAGE;
}
