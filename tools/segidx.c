/* segidx: the command-line tool of libsegidx, what mdb_stat and
 * sqlite3_analyzer are to their libraries. This file holds the command
 * table, help and bench; the subcommands that read segment files live in
 * inspect.c, those that read a volume index in catalog.c, those that
 * change a host directory in maintain.c and compact.c, and `demo` in
 * demo.c. */
#include "cli.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const cli_command cli_cmd_help, cli_cmd_version;

static const cli_command *const commands[] = {
    &cli_cmd_demo,  &cli_cmd_inspect, &cli_cmd_verify, &cli_cmd_dump,   &cli_cmd_get,
    &cli_cmd_ls,    &cli_cmd_changed, &cli_cmd_check,   &cli_cmd_stats,  &cli_cmd_backup,
    &cli_cmd_gc,    &cli_cmd_compact, &cli_cmd_kvcheck, &cli_cmd_bench, &cli_cmd_help,
    &cli_cmd_version,
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i]->name, name))
            return commands[i];
    return NULL;
}

static void print_usage(FILE *out)
{
    fputs("usage: segidx COMMAND [ARGUMENTS]\n"
          "       segidx help [COMMAND]   (or segidx COMMAND --help): a command's usage\n"
          "       segidx --version\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\n"
          "DIR is a host directory as `segidx demo` writes it: DIR/index, an LMDB\n"
          "volume index, and DIR/segments, one file per segment named by its sid.\n"
          "Ids are 32 hex characters. Options may come before or after the other\n"
          "arguments, as --opt=value or --opt value; -- ends them.\n"
          "Exit status: 0 success, 1 failure, 2 usage.\n",
          out);
}

/* ------------------------------------------------------------ help, version */

static int run_help(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, NULL, 0, &a);
    if (rc)
        return rc;
    if (a.npos == 0) {
        print_usage(stdout);
        return CLI_OK;
    }
    const cli_command *which = find_command(a.pos[0]);
    if (!which)
        return cli_usage_error(cmd, "unknown command: %s", a.pos[0]);
    cli_print_command_usage(which, stdout);
    return CLI_OK;
}

static const cli_command cli_cmd_help = {
    "help", "at most one COMMAND", 0, 1,
    "the list of commands, or one command's usage",
    "usage: segidx help [COMMAND]\n"
    "The list of commands, or COMMAND's usage, on standard output.\n",
    run_help,
};

static int run_version(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, NULL, 0, &a);
    if (rc)
        return rc;
    printf("%s\n", segidx_version_string());
    return CLI_OK;
}

static const cli_command cli_cmd_version = {
    "version", "", 0, 0,
    "the library's version (also --version)",
    "usage: segidx version\n"
    "       segidx --version\n"
    "The version of libsegidx this command was built with.\n",
    run_version,
};

/* ------------------------------------------------------------ bench */

static const char *program_path; /* argv[0]: the benchmarks sit beside it */

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The benchmarks are built in build/bench, beside build/segidx: run each
 * one found there, in name order. Installed, there are none. */
static int run_bench(const cli_command *cmd, int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, NULL, 0, &a);
    if (rc)
        return rc;
    char dir[4096];
    const char *slash = strrchr(program_path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s/bench", (int)(slash - program_path), program_path);
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

const cli_command cli_cmd_bench = {
    "bench", "", 0, 0,
    "run the benchmarks built beside segidx",
    "usage: segidx bench\n"
    "Runs each benchmark program built beside this one (make bench), in name\n"
    "order; in an installed segidx there are none.\n",
    run_bench,
};

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    program_path = argv[0];
    opterr = 0;
    int c;
    /* "+": stop at the command's name; what follows is the command's. */
    while ((c = getopt_long(argc, argv, "+:hV", lo, NULL)) != -1) {
        if (c == 'h') {
            print_usage(stdout);
            return CLI_OK;
        }
        if (c == 'V') {
            printf("%s\n", segidx_version_string());
            return CLI_OK;
        }
        return optopt > 0 ? cli_usage_error(NULL, "unknown option -%c", optopt)
                          : cli_usage_error(NULL, "unknown option %s", argv[optind - 1]);
    }
    if (optind >= argc) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    const cli_command *cmd = find_command(argv[optind]);
    if (!cmd) {
        fprintf(stderr, "segidx: unknown command: %s\n", argv[optind]);
        print_usage(stderr);
        return CLI_USAGE;
    }
    int rc = cmd->run(cmd, argc - optind, argv + optind);
    return rc == CLI_HELP ? CLI_OK : rc;
}
