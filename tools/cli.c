/* cli.c: the helpers every subcommand of segidx uses. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("segidx: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(segidx --help for usage)\n", stderr);
    return CLI_USAGE;
}

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

int cli_parse_args(int argc, char **argv, cli_flag *flags, size_t nflags, cli_args *out)
{
    out->npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            size_t f = 0;
            while (f < nflags && strcmp(flags[f].name, a))
                f++;
            if (f == nflags)
                return cli_usage_error("%s: unknown option %s", argv[0], a);
            flags[f].seen = true;
            if (flags[f].takes_value) {
                if (i + 1 >= argc)
                    return cli_usage_error("%s: %s needs a value", argv[0], a);
                flags[f].value = argv[++i];
            }
            continue;
        }
        if ((size_t)out->npos >= sizeof out->pos / sizeof out->pos[0])
            return cli_usage_error("%s: too many arguments", argv[0]);
        out->pos[out->npos++] = a;
    }
    return 0;
}

int cli_read_file(const char *path, void **buf, size_t *len, int *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *err = errno;
        return errno == ENOENT ? SEGIDX_ENOTFOUND : SEGIDX_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err = errno;
        close(fd);
        return SEGIDX_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        close(fd);
        return SEGIDX_EIO;
    }
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
    default: return "unknown";
    }
}
