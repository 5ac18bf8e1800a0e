/* cli.h: what the parts of the segidx command share: error reporting,
 * argument parsing, ids as hex, and segment files read whole. */
#ifndef SEGIDX_CLI_H
#define SEGIDX_CLI_H

#include <segidx.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes: 0 success, 1 a failure, 2 a usage error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* One line on stderr: "segidx: <what>: <segidx_strerror(rc)>"; returns 1. */
int cli_fail(const char *what, int rc);
/* The same with the system's reason appended, for a failed open/read. */
int cli_fail_errno(const char *what, int rc, int err);
/* "segidx: <msg>" and the usage hint on stderr; returns 2. */
int cli_usage_error(const char *fmt, ...);

/* Ids print and parse as 32 lowercase hex characters. */
void cli_hex16(const uint8_t bytes[16], char out[33]);
bool cli_parse_hex16(const char *s, uint8_t out[16]);
bool cli_parse_u64(const char *s, uint64_t *out);

/* Arguments split into flags (with an optional value) and positionals. */
typedef struct cli_args {
    const char *pos[8];
    int npos;
} cli_args;
typedef struct cli_flag {
    const char *name;  /* "--json" */
    bool takes_value;
    bool seen;
    const char *value;
} cli_flag;
/* Returns 0, or 2 after printing what is wrong. */
int cli_parse_args(int argc, char **argv, cli_flag *flags, size_t nflags, cli_args *out);

/* A segment file read whole into memory, and opened. */
typedef struct cli_segment_file {
    void *buf;
    size_t len;
    segidx_segment *seg;
} cli_segment_file;
/* Read and open `path`; on failure prints one line and returns 1. */
int cli_segment_file_open(const char *path, cli_segment_file *out);
void cli_segment_file_close(cli_segment_file *f);
/* The whole file in memory, for paths the caller checks itself.
 * Returns SEGIDX_OK or SEGIDX_ENOTFOUND / SEGIDX_EIO with *err = errno. */
int cli_read_file(const char *path, void **buf, size_t *len, int *err);

/* Subcommands: each takes argv from its own name on. */
int cli_demo(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_ls(int argc, char **argv);
int cli_bench(int argc, char **argv, const char *argv0);
void cli_print_usage(void);

const char *cli_encoding_name(int encoding);

#endif
