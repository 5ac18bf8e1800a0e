/* A throwaway PostgreSQL server for the tests of the PostgreSQL store:
 * initdb and pg_ctl in a fresh temporary directory, listening on a free
 * port of 127.0.0.1 only (and a socket in that directory), trust
 * authentication, fsync off (an operating-system crash could lose data;
 * a crash of the server cannot, as commits stay synchronous: the restart
 * tests count on that). One server per test binary, started in main
 * before the tests and shared by them (each test uses tables of its own).
 *
 * Cleanup does not depend on the test binary ending well: a watchdog (a
 * shell started first, reading a pipe only this process writes to) stops
 * the server and removes the directory when the pipe closes, which the
 * kernel does when the binary exits, however it exits. The pipe's write
 * end is close-on-exec, so the server and the tools never hold it.
 *
 * Server binaries come from PATH, else from /usr/lib/postgresql/<v>/bin
 * (the newest). As root, initdb and postgres refuse to run: they run as
 * the user `postgres` through runuser, and the directory is theirs.
 *
 * No server found: with CI set (to anything non-empty) that is a failure;
 * otherwise the binary prints one line, "skipped: no PostgreSQL server
 * (initdb) found", and exits 0. */
#ifndef SEGIDX_PGSERVER_H
#define SEGIDX_PGSERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct pgserver {
    char bindir[512];   /* where initdb and pg_ctl are */
    char dir[64];       /* the temporary directory: data/, logs, the socket */
    char conninfo[256];
    int port;
    bool as_postgres;   /* run the server's programs through runuser */
    pid_t owner;        /* the process that started it (not its forks) */
    pid_t watchdog;
    int watch_fd;       /* the watchdog's pipe: closing it stops everything */
    unsigned tables;    /* names handed out by pgserver_table() */
} pgserver;

static pgserver pgserver_the;

static inline bool pgserver_copy(char *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        return false;
    memcpy(out, s, n + 1);
    return true;
}

static inline bool pgserver_executable(const char *path)
{
    return access(path, X_OK) == 0;
}

/* The directory holding initdb and pg_ctl: PATH first, then the newest
 * /usr/lib/postgresql/<version>/bin. */
static inline bool pgserver_find(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char buf[4096], cand[600];
    if (path && strlen(path) < sizeof buf) {
        strcpy(buf, path);
        for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(cand, sizeof cand, "%s/initdb", d);
            if (!pgserver_executable(cand))
                continue;
            snprintf(cand, sizeof cand, "%s/pg_ctl", d);
            if (pgserver_executable(cand) && pgserver_copy(out, cap, d))
                return true;
        }
    }
    glob_t g;
    bool any = false;
    double best = -1;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char *v = g.gl_pathv[i] + strlen("/usr/lib/postgresql/");
            double version = strtod(v, NULL);
            snprintf(cand, sizeof cand, "%s", g.gl_pathv[i]);
            char *slash = strrchr(cand, '/');
            *slash = '\0';
            char ctl[640];
            snprintf(ctl, sizeof ctl, "%s/pg_ctl", cand);
            if (version > best && pgserver_executable(ctl) && pgserver_copy(out, cap, cand)) {
                best = version;
                any = true;
            }
        }
        globfree(&g);
    }
    return any;
}

/* Run a program of the server's (argv[0] a name in bindir), as postgres
 * when root, its output appended to `log`. Its exit status, or -1. */
static inline int pgserver_run(const pgserver *s, const char *const *argv, const char *log)
{
    char prog[640];
    snprintf(prog, sizeof prog, "%s/%s", s->bindir, argv[0]);
    const char *full[32];
    size_t n = 0;
    if (s->as_postgres) {
        full[n++] = "runuser";
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    full[n++] = prog;
    for (size_t i = 1; argv[i] && n < 31; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (devnull >= 0)
            dup2(devnull, 0);
        execvp(full[0], (char *const *)full);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A port nothing listens on right now (the kernel's pick). */
static inline int pgserver_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static inline void pgserver_show_log(const pgserver *s, const char *name)
{
    char path[128], line[512];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fprintf(stderr, "---- %s\n", path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* pg_ctl start (again) on the server's port; 0 when it accepts connections. */
static inline int pgserver_ctl_start(pgserver *s)
{
    char data[96], log[96], opts[512];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    snprintf(opts, sizeof opts,
             "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off "
             "-c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB "
             "-c log_min_messages=fatal -c log_min_error_statement=panic", s->port, s->dir);
    const char *argv[] = { "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", opts,
                           "start", NULL };
    char ctl_log[96];
    snprintf(ctl_log, sizeof ctl_log, "%s/pg_ctl.log", s->dir);
    return pgserver_run(s, argv, ctl_log);
}

/* pg_ctl stop: fast (sessions ended, a clean shutdown) or immediate. */
static inline int pgserver_ctl_stop(pgserver *s, bool immediate)
{
    char data[96], ctl_log[96];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(ctl_log, sizeof ctl_log, "%s/pg_ctl.log", s->dir);
    const char *argv[] = { "pg_ctl", "-D", data, "-m", immediate ? "immediate" : "fast", "-w",
                           "stop", NULL };
    return pgserver_run(s, argv, ctl_log);
}

/* The watchdog: waits for its stdin (the pipe) to close, then stops the
 * server and removes the directory. */
static inline int pgserver_watch(pgserver *s)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    char script[1400];
    snprintf(script, sizeof script,
             "cat >/dev/null; if [ -f '%s/data/postmaster.pid' ]; then "
             "%s '%s/pg_ctl' -D '%s/data' -m immediate -w stop >/dev/null 2>&1; fi; "
             "rm -rf '%s'",
             s->dir, s->as_postgres ? "runuser -u postgres --" : "", s->bindir, s->dir, s->dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    s->watchdog = pid;
    s->watch_fd = fds[1];
    return 0;
}

/* Start the server: 0, or -1 after saying why on stderr. */
static inline int pgserver_start(pgserver *s)
{
    s->owner = getpid();
    snprintf(s->dir, sizeof s->dir, "/tmp/segidx-pg-XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("pgserver: mkdtemp");
        return -1;
    }
    s->as_postgres = geteuid() == 0;
    if (s->as_postgres) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(s->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pgserver: running as root, and no user postgres to run the "
                            "server as\n");
            rmdir(s->dir);
            return -1;
        }
    }
    if (pgserver_watch(s) != 0) {
        perror("pgserver: watchdog");
        rmdir(s->dir);
        return -1;
    }
    char data[96], log[96];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(log, sizeof log, "%s/initdb.log", s->dir);
    const char *initdb[] = { "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                             "--no-locale", "--no-sync", NULL };
    if (pgserver_run(s, initdb, log) != 0) {
        fprintf(stderr, "pgserver: initdb failed\n");
        pgserver_show_log(s, "initdb.log");
        return -1;
    }
    for (int tries = 0; tries < 5; tries++) {
        s->port = pgserver_free_port();
        if (s->port > 0 && pgserver_ctl_start(s) == 0) {
            snprintf(s->conninfo, sizeof s->conninfo,
                     "host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable "
                     "gssencmode=disable connect_timeout=10", s->port);
            return 0;
        }
    }
    fprintf(stderr, "pgserver: the server did not start\n");
    pgserver_show_log(s, "pg_ctl.log");
    pgserver_show_log(s, "server.log");
    return -1;
}

/* Stop the server and remove its directory (the watchdog does both);
 * only in the process that started it. */
static inline void pgserver_stop(pgserver *s)
{
    if (s->owner != getpid() || s->watchdog <= 0)
        return;
    close(s->watch_fd);
    int st;
    while (waitpid(s->watchdog, &st, 0) < 0 && errno == EINTR)
        ;
    s->watchdog = 0;
}

/* For main(): start the shared server. Returns true when it runs; false
 * with *exit_code set when the binary should end now (0: skipped, no
 * server here and not in CI; 1: a failure). */
static inline bool pgserver_main_start(int *exit_code)
{
    pgserver *s = &pgserver_the;
    if (!pgserver_find(s->bindir, sizeof s->bindir)) {
        const char *ci = getenv("CI");
        if (ci && *ci) {
            fprintf(stderr, "FAILED: no PostgreSQL server (initdb) found, and CI is set: "
                            "install one (scripts/deps.sh)\n");
            *exit_code = 1;
        } else {
            printf("skipped: no PostgreSQL server (initdb) found\n");
            *exit_code = 0;
        }
        return false;
    }
    if (pgserver_start(s) != 0) {
        pgserver_stop(s);
        *exit_code = 1;
        return false;
    }
    return true;
}

static inline const char *pgserver_conninfo(void)
{
    return pgserver_the.conninfo;
}

/* A table name no other test of this run uses: "<prefix>_<pid>_<n>". */
static inline const char *pgserver_table(char *buf, size_t cap, const char *prefix)
{
    snprintf(buf, cap, "%s_%d_%u", prefix, (int)getpid(), pgserver_the.tables++);
    return buf;
}

#endif
