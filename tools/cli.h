/* cli.h: what the parts of the segidx command share: the subcommand table
 * and option parsing, error reporting, ids as hex, times, JSON strings,
 * segment files read whole, and a host directory as the demo writes it. */
#ifndef SEGIDX_CLI_H
#define SEGIDX_CLI_H

#include <segidx.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/* Exit codes: 0 success, 1 a failure, 2 a usage error. CLI_HELP means
 * "--help was answered on standard output": main exits 0 for it. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_HELP = 3 };

/* ------------------------------------------------------------ subcommands */

typedef struct cli_command cli_command;
struct cli_command {
    const char *name;
    const char *args;     /* its positionals, for "expected ..." */
    int min_args, max_args; /* how many it takes; max -1: no bound */
    const char *summary;  /* one line for `segidx --help` */
    /* `segidx NAME --help`: synopsis lines, then one line per option
     * (-h, --help is added when printed). */
    const char *usage;
    /* argv[0] is the subcommand's name. */
    int (*run)(const cli_command *cmd, int argc, char **argv);
};

extern const cli_command cli_cmd_demo, cli_cmd_inspect, cli_cmd_verify, cli_cmd_dump,
    cli_cmd_get, cli_cmd_ls, cli_cmd_check, cli_cmd_stats, cli_cmd_backup, cli_cmd_gc,
    cli_cmd_compact, cli_cmd_bench, cli_cmd_changed, cli_cmd_kvcheck;

/* `cmd`'s usage: synopsis, options, and the -h, --help line. */
void cli_print_command_usage(const cli_command *cmd, FILE *out);

/* ------------------------------------------------------------ options */

/* One long option of a subcommand. */
typedef struct cli_opt {
    const char *name;  /* without the dashes: "json" */
    bool takes_value;
    bool seen;
    const char *value; /* the last one given */
} cli_opt;

/* The positional arguments, in order. They are gathered in argv itself
 * (getopt never looks back at what it has passed), so they live as long
 * as argv does. */
typedef struct cli_args {
    char **pos;
    int npos;
} cli_args;

/* Parse a subcommand's argv with getopt_long: options may come before,
 * between or after positionals, as --opt=value or --opt value; `--` ends
 * them; -h and --help print the usage on standard output. The number of
 * positionals must be within the command's bounds. Returns CLI_OK,
 * CLI_HELP, or CLI_USAGE after saying what is wrong. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opt *opts, size_t nopts,
              cli_args *out);
/* cli_parse for the many commands whose one option is --json. */
int cli_parse_json(const cli_command *cmd, int argc, char **argv, cli_args *out, bool *json);
/* An option's value as a number in [lo, hi] into *out (left alone when the
 * option was not given). Returns CLI_OK, or CLI_USAGE after saying why. */
int cli_opt_u64(const cli_command *cmd, const cli_opt *opt, uint64_t lo, uint64_t hi,
                uint64_t *out);

/* ------------------------------------------------------------ errors */

/* One line on stderr: "segidx: <what>: <segidx_strerror(rc)>"; returns 1. */
int cli_fail(const char *what, int rc);
/* The same with the system's reason appended, for a failed open/read. */
int cli_fail_errno(const char *what, int rc, int err);
/* "segidx: CMD: <msg>" and the usage hint on stderr; returns 2. `cmd` NULL
 * for the command as a whole. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------ values */

/* Ids print and parse as 32 lowercase hex characters. */
void cli_hex16(const uint8_t bytes[16], char out[33]);
bool cli_parse_hex16(const char *s, uint8_t out[16]);
bool cli_parse_u64(const char *s, uint64_t *out);
int cli_sid_cmp(const segidx_sid *a, const segidx_sid *b);

/* A Unix time in seconds as ISO-8601 UTC, "2026-12-01T06:22:12Z"; 0 as
 * "-" (never set), a time gmtime cannot take as the number itself. */
void cli_time_utc(uint64_t t, char out[32]);
/* A string as a JSON string literal, on stdout. */
void cli_json_string(const char *s);
/* `"NAME": T, "NAME_utc": "..."` (null for 0), on stdout. */
void cli_json_time(const char *name, uint64_t t);

const char *cli_encoding_name(int encoding);

/* ------------------------------------------------------------ files */

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
/* The whole file mapped read-only, for segments kept open at length;
 * returns as cli_read_file (an empty file is SEGIDX_ECORRUPT). */
int cli_map_file(const char *path, const void **buf, size_t *len, int *err);
void cli_unmap_file(const void *buf, size_t len);

/* ------------------------------------------------------------ host dirs */

/* A host directory as `segidx demo` writes it: DIR/index is an LMDB volume
 * index, DIR/segments holds one file per segment, named by its sid in hex
 * with ".seg" (examples/segment_files.h). */
void cli_dir_index_path(const char *dir, char *out, size_t cap);
bool cli_dir_segments_path(const char *dir, char *out, size_t cap); /* false: too long */
void cli_dir_segment_path(const char *dir, const segidx_sid *sid, char *out, size_t cap);
/* Open DIR/index, which must hold a store already (opening would make an
 * empty one, which to gc would mean that nothing is referenced). On
 * failure prints one line and returns 1. */
int cli_open_index(const char *dir, segidx_volume_index **out);

/* fsync a directory, so that the names made in it last; -1 and errno on
 * failure. */
int cli_sync_dir(const char *path);

/* The volumes of an index, copied out of segidx_volume_list(), whose
 * callback may not call the index back. */
typedef struct cli_volume {
    segidx_vid vid;
    segidx_volume_meta meta;
} cli_volume;
typedef struct cli_volumes {
    cli_volume *v;
    size_t n, cap;
} cli_volumes;
int cli_volumes_list(segidx_volume_index *vi, cli_volumes *out);
void cli_volumes_free(cli_volumes *vs);

/* A sorted set of sids. */
typedef struct cli_sid_set {
    segidx_sid *sids;
    size_t n, cap;
} cli_sid_set;
/* Every sid some commit entry of the index names (one consistent scan). */
int cli_sid_set_referenced(segidx_volume_index *vi, cli_sid_set *out);
bool cli_sid_set_has(const cli_sid_set *s, const segidx_sid *sid);
void cli_sid_set_free(cli_sid_set *s);

/* What a file in DIR/segments is, by its name. */
enum cli_seg_kind { CLI_SEG_SEGMENT, CLI_SEG_TMP, CLI_SEG_OTHER };
typedef struct cli_seg_entry {
    const char *path;   /* DIR/segments/NAME */
    const char *name;
    int kind;           /* enum cli_seg_kind */
    segidx_sid sid;     /* CLI_SEG_SEGMENT: from the name */
    off_t bytes;
    time_t mtime;
} cli_seg_entry;
/* Visit the regular files of DIR/segments (lstat; links and directories
 * are skipped). A non-zero return of fn stops and is returned. On an
 * error prints one line and returns 1. */
int cli_dir_scan_segments(const char *dir, int (*fn)(void *ctx, const cli_seg_entry *e),
                          void *ctx);

#endif
