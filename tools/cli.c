/* cli.c: the helpers every subcommand of segidx uses. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const char *what, int rc)
{
    fprintf(stderr, "segidx: %s: %s\n", what, segidx_strerror(rc));
    return CLI_FAIL;
}

int cli_fail_errno(const char *what, int rc, int err)
{
    fprintf(stderr, "segidx: %s: %s (%s)\n", what, segidx_strerror(rc), strerror(err));
    return CLI_FAIL;
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "segidx: %s%s", cmd ? cmd->name : "", cmd ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(segidx %s%s--help for usage)\n", cmd ? cmd->name : "", cmd ? " " : "");
    return CLI_USAGE;
}

/* ------------------------------------------------------------ options */

void cli_print_command_usage(const cli_command *cmd, FILE *out)
{
    fputs(cmd->usage, out);
    fputs("  -h, --help           print this usage and exit\n", out);
}

enum { MAX_OPTS = 16, OPT_BASE = 256 };

/* What getopt_long stumbled on, as the user typed it. */
static int bad_option(const cli_command *cmd, char **argv, const cli_opt *opts, size_t nopts)
{
    if (optopt >= OPT_BASE && (size_t)(optopt - OPT_BASE) < nopts)
        return cli_usage_error(cmd, "option --%s takes no value", opts[optopt - OPT_BASE].name);
    if (optopt > 0 && optopt < OPT_BASE)
        return cli_usage_error(cmd, "unknown option -%c", optopt);
    return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opt *opts, size_t nopts,
              cli_args *out)
{
    struct option lo[MAX_OPTS + 2];
    if (nopts > MAX_OPTS)
        return cli_usage_error(cmd, "too many options to parse");
    for (size_t i = 0; i < nopts; i++) {
        int has_arg = opts[i].takes_value ? required_argument : no_argument;
        lo[i] = (struct option){ opts[i].name, has_arg, NULL, OPT_BASE + (int)i };
    }
    lo[nopts] = (struct option){ "help", no_argument, NULL, 'h' };
    lo[nopts + 1] = (struct option){ NULL, 0, NULL, 0 };
    out->pos = argv + 1;
    out->npos = 0;
    /* 0 starts getopt afresh (glibc, musl): main parsed its own options
     * first. "-" hands positionals back in order, wherever they stand,
     * even under POSIXLY_CORRECT; ":" reports a missing value apart. */
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "-:h", lo, NULL)) != -1) {
        if (c == 1) {
            out->pos[out->npos++] = optarg; /* at or before where getopt has read */
        } else if (c >= OPT_BASE) {
            opts[c - OPT_BASE].seen = true;
            opts[c - OPT_BASE].value = optarg;
        } else if (c == 'h') {
            cli_print_command_usage(cmd, stdout);
            return CLI_HELP;
        } else if (c == ':') {
            return cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
        } else {
            return bad_option(cmd, argv, opts, nopts);
        }
    }
    while (optind < argc) /* after "--" */
        out->pos[out->npos++] = argv[optind++];
    if (cmd->max_args == 0 && out->npos)
        return cli_usage_error(cmd, "takes no arguments");
    if (out->npos < cmd->min_args || (cmd->max_args >= 0 && out->npos > cmd->max_args))
        return cli_usage_error(cmd, "expected %s", cmd->args);
    return CLI_OK;
}

int cli_parse_json(const cli_command *cmd, int argc, char **argv, cli_args *out, bool *json)
{
    cli_opt opts[] = { { "json", false, false, NULL } };
    int rc = cli_parse(cmd, argc, argv, opts, 1, out);
    *json = opts[0].seen;
    return rc;
}

int cli_opt_u64(const cli_command *cmd, const cli_opt *opt, uint64_t lo, uint64_t hi,
                uint64_t *out)
{
    if (!opt->seen)
        return CLI_OK;
    uint64_t v;
    if (!cli_parse_u64(opt->value, &v) || v < lo || v > hi)
        return cli_usage_error(cmd, "--%s wants a number from %llu to %llu, not %s", opt->name,
                               (unsigned long long)lo, (unsigned long long)hi, opt->value);
    *out = v;
    return CLI_OK;
}

/* ------------------------------------------------------------ values */

void cli_hex16(const uint8_t bytes[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[32] = '\0';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool cli_parse_hex16(const char *s, uint8_t out[16])
{
    uint8_t tmp[16];
    if (strlen(s) != 32)
        return false;
    for (int i = 0; i < 16; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(out, tmp, 16);
    return true;
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

int cli_sid_cmp(const segidx_sid *a, const segidx_sid *b)
{
    return memcmp(a->bytes, b->bytes, sizeof a->bytes);
}

void cli_time_utc(uint64_t t, char out[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t == 0) {
        snprintf(out, 32, "-");
        return;
    }
    if ((uint64_t)tt != t || !gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "%llu", (unsigned long long)t);
}

void cli_json_string(const char *s)
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

void cli_json_time(const char *name, uint64_t t)
{
    char utc[32];
    cli_time_utc(t, utc);
    printf("\"%s\": %llu, \"%s_utc\": ", name, (unsigned long long)t, name);
    if (t)
        cli_json_string(utc);
    else
        fputs("null", stdout);
}

/* ------------------------------------------------------------ files */

/* Open `path` for reading, which must be a regular file. */
static int open_regular(const char *path, int *fd, struct stat *st, int *err)
{
    *err = 0;
    if ((*fd = open(path, O_RDONLY)) < 0) {
        *err = errno;
        return errno == ENOENT ? SEGIDX_ENOTFOUND : SEGIDX_EIO;
    }
    if (fstat(*fd, st) != 0)
        *err = errno;
    else if (!S_ISREG(st->st_mode))
        *err = S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
    if (*err) {
        close(*fd);
        return SEGIDX_EIO;
    }
    return SEGIDX_OK;
}

int cli_read_file(const char *path, void **buf, size_t *len, int *err)
{
    int fd;
    struct stat st;
    int rc = open_regular(path, &fd, &st, err);
    if (rc)
        return rc;
    size_t size = (size_t)st.st_size;
    unsigned char *p = malloc(size ? size : 1);
    if (!p) {
        close(fd);
        *err = ENOMEM;
        return SEGIDX_ENOMEM;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, p + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *err = n < 0 ? errno : EIO;
            free(p);
            close(fd);
            return SEGIDX_EIO;
        }
        done += (size_t)n;
    }
    close(fd);
    *buf = p;
    *len = size;
    return SEGIDX_OK;
}

int cli_map_file(const char *path, const void **buf, size_t *len, int *err)
{
    int fd;
    struct stat st;
    int rc = open_regular(path, &fd, &st, err);
    if (rc)
        return rc;
    if (st.st_size == 0) {
        close(fd);
        return SEGIDX_ECORRUPT; /* no segment is empty, and mmap takes no 0 */
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        *err = errno;
    close(fd); /* the mapping stays */
    if (map == MAP_FAILED)
        return SEGIDX_EIO;
    *buf = map;
    *len = (size_t)st.st_size;
    return SEGIDX_OK;
}

void cli_unmap_file(const void *buf, size_t len)
{
    if (buf)
        munmap((void *)buf, len);
}

int cli_segment_file_open(const char *path, cli_segment_file *out)
{
    int err = 0;
    memset(out, 0, sizeof *out);
    int rc = cli_read_file(path, &out->buf, &out->len, &err);
    if (rc)
        return cli_fail_errno(path, rc, err);
    if ((rc = segidx_segment_open(out->buf, out->len, &out->seg))) {
        free(out->buf);
        out->buf = NULL;
        return cli_fail(path, rc);
    }
    return CLI_OK;
}

void cli_segment_file_close(cli_segment_file *f)
{
    segidx_segment_close(f->seg);
    free(f->buf);
    f->seg = NULL;
    f->buf = NULL;
}

const char *cli_encoding_name(int encoding)
{
    switch (encoding) {
    case SEGIDX_OFFSETS_RANGE: return "range";
    case SEGIDX_OFFSETS_BITMAP: return "bitmap";
    case SEGIDX_OFFSETS_ELIAS_FANO: return "elias-fano";
    case SEGIDX_OFFSETS_PARTITIONED: return "partitioned";
    case SEGIDX_OFFSETS_KEYED: return "keyed";
    case SEGIDX_OFFSETS_KEYED_PACKED: return "keyed-packed";
    default: return "unknown";
    }
}
