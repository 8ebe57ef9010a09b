/* main.c: command-line parsing and dispatch; the work lives elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "capacity.h"
#include "master.h"
#include "plan.h"
#include "redischeck.h"
#include "status.h"
#include "tls_check.h"
#include "statusfmt.h"
#include "sysctls.h"

#define DEFAULT_CONF "conf/wsmill.conf"
#define MAX_ARGS     32

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wsmill [run] [-c FILE]     run the master in the foreground\n"
            "       wsmill check [-c FILE]     validate FILE and report whether max_connections fits\n"
            "                                  (exit 0 fits, 1 invalid config, 2 limits too low,\n"
            "                                  3 broker = redis and Redis does not answer)\n"
            "       wsmill check --plan N --memory SIZE --cores C [--nofile H] [--local-clients] [-c FILE]\n"
            "                                  what a box with SIZE of RAM and C cores needs for N\n"
            "                                  connections: workers, LimitNOFILE, sysctls, hash, memory,\n"
            "                                  keepalive (--nofile: a hard open-file limit it cannot raise)\n"
            "       wsmill tune --connections N [--local-clients] [--apply]\n"
            "                                  the sysctls for N connections on this host, with --apply\n"
            "                                  written (never lowered); scripts/tune-kernel.sh runs this\n"
            "       wsmill status [-c FILE | -s SOCKET] [--json] [--interval SECONDS] [--oldbin]\n"
            "                                  the running server: a summary with rates over SECONDS\n"
            "                                  (default 1), or its JSON snapshot (--oldbin: the old\n"
            "                                  master's during a binary upgrade)\n"
            "       wsmill get KEY... [-c FILE] print settings as FILE resolves them (for scripts)\n"
            "       wsmill config-doc          print every setting as a Markdown table (docs/config.md)\n"
            "       wsmill -h                  this help\n"
            "FILE defaults to " DEFAULT_CONF ". Signals to the master: HUP reload, TERM/INT graceful\n"
            "stop, QUIT fast stop, USR1 reopen logs, USR2 binary upgrade, WINCH (old master, after\n"
            "USR2) retire its workers and exit. See docs/reload.md.\n");
}

/* What the command line said, for every command. */
struct args {
    const char *cmd, *path, *sock;
    char *rest[MAX_ARGS];
    int nrest, oldbin, json, local, apply;
    int64_t plan, memory, cores, nofile, conns;
    double interval;
};

static int load(struct config *cfg, const char *path)
{
    char err[768];
    if (config_load(cfg, path, err, sizeof err) == -1) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int cmd_plan(const struct args *a)
{
    struct config cfg;
    if (a->memory <= 0 || a->cores <= 0) {
        fprintf(stderr, "wsmill check --plan N needs --memory SIZE (16G) and --cores N of the target box\n");
        return 1;
    }
    if (load(&cfg, a->path) == -1)
        return 1;
    struct plan_box box = {a->plan, a->memory, (int)a->cores, a->nofile, a->local};
    return plan_print(&box, &cfg, a->path, stdout);
}

static int cmd_check(const struct args *a)
{
    struct config cfg;
    struct privs privs;
    char err[512];
    if (a->plan)
        return cmd_plan(a);
    if (load(&cfg, a->path) == -1)
        return 1;
    int who = privs_resolve(cfg.user, geteuid(), &privs, err, sizeof err);
    if (who == -1) {
        fprintf(stderr, "%s: %s\n", a->path, err);
        return 1;
    }
    if (who == 1)
        printf("%s: warning: %s\n", a->path, err);
    if (tls_check_report(&cfg, a->path, stdout) != 0)
        return 1;
    printf("%s: configuration OK\n", a->path);
    int rc = capacity_report(&cfg, a->path, stdout);
    if (cfg.broker == BROKER_REDIS && redischeck_run(&cfg, stdout, stderr) != 0)
        return REDISCHECK_FAILED;
    return rc;
}

static int cmd_status(const struct args *a)
{
    char sock[CONFIG_STR_MAX + 8], err[768];
    if (a->sock) {
        snprintf(sock, sizeof sock, "%s", a->sock);
    } else if (statusfmt_socket_of(a->path, sock, sizeof sock, err, sizeof err) == -1) {
        fprintf(stderr, "%s\n", err);
        return 1;
    } else if (err[0]) {
        fprintf(stderr, "%s\n", err); /* the file has an error; its status_socket was still found */
    }
    if (a->oldbin)
        strncat(sock, ".oldbin", sizeof sock - strlen(sock) - 1);
    if (a->json)
        return status_query(sock, stdout);
    return statusfmt_summary(sock, a->interval, stdout);
}

static int cmd_get(const struct args *a)
{
    struct config cfg;
    char buf[CONFIG_LIST_MAX + 64];
    if (a->nrest == 0) {
        fprintf(stderr, "wsmill get: name at least one key\n");
        return 1;
    }
    if (load(&cfg, a->path) == -1)
        return 1;
    for (int i = 0; i < a->nrest; i++) {
        const struct config_key *k = config_key_find(a->rest[i]);
        if (!k) {
            fprintf(stderr, "wsmill get: unknown key \"%s\"\n", a->rest[i]);
            return 1;
        }
        config_format(&cfg, k, buf, sizeof buf);
        printf("%s\n", buf);
    }
    return 0;
}

/* A positive count ("1000000", "1M" is not a count). */
static int parse_count(const char *opt, const char *v, int64_t *out)
{
    char *end;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || n < 1) {
        fprintf(stderr, "wsmill: %s needs a positive number, not \"%s\"\n", opt, v ? v : "");
        return -1;
    }
    *out = n;
    return 0;
}

/* Options that take a value; returns 1 when argv[*i] was one, -1 on error. */
static int value_option(struct args *a, int argc, char **argv, int *i)
{
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int rc = 0;
    if (!strcmp(o, "-c"))
        a->path = v;
    else if (!strcmp(o, "-s"))
        a->sock = v;
    else if (!strcmp(o, "--plan"))
        rc = parse_count(o, v, &a->plan);
    else if (!strcmp(o, "--cores"))
        rc = parse_count(o, v, &a->cores);
    else if (!strcmp(o, "--nofile"))
        rc = parse_count(o, v, &a->nofile);
    else if (!strcmp(o, "--connections"))
        rc = parse_count(o, v, &a->conns);
    else if (!strcmp(o, "--memory")) {
        if (!v || config_parse_size(v, &a->memory) == -1) {
            fprintf(stderr, "wsmill: --memory needs a size (16G, 16GiB, 16384M), not \"%s\"\n", v ? v : "");
            return -1;
        }
    } else if (!strcmp(o, "--interval")) {
        a->interval = v ? strtod(v, NULL) : 0;
        if (a->interval <= 0 || a->interval > 60) {
            fprintf(stderr, "wsmill: --interval needs seconds between 0 and 60\n");
            return -1;
        }
    } else
        return 0;
    if (!v) {
        fprintf(stderr, "wsmill: %s needs a value\n", o);
        return -1;
    }
    (*i)++;
    return rc == -1 ? -1 : 1;
}

/* Returns 0, 1 after printing the help (exit 0), or -1 on a bad argument. */
static int parse_args(struct args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int v = value_option(a, argc, argv, &i);
        if (v == -1)
            return -1;
        if (v == 1)
            continue;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(o, "--oldbin")) {
            a->oldbin = 1;
        } else if (!strcmp(o, "--json")) {
            a->json = 1;
        } else if (!strcmp(o, "--local-clients")) {
            a->local = 1;
        } else if (!strcmp(o, "--apply")) {
            a->apply = 1;
        } else if (!a->cmd && o[0] != '-') {
            a->cmd = o;
        } else if (a->cmd && !strcmp(a->cmd, "get") && o[0] != '-' && a->nrest < MAX_ARGS) {
            a->rest[a->nrest++] = argv[i];
        } else {
            fprintf(stderr, "wsmill: unexpected argument \"%s\"\n", o);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {.path = DEFAULT_CONF, .interval = 1.0};
    int p = parse_args(&a, argc, argv);
    if (p != 0)
        return p == 1 ? 0 : 1;
    if (!a.cmd || !strcmp(a.cmd, "run"))
        return master_run(a.path, argv);
    if (!strcmp(a.cmd, "check"))
        return cmd_check(&a);
    if (!strcmp(a.cmd, "status"))
        return cmd_status(&a);
    if (!strcmp(a.cmd, "get"))
        return cmd_get(&a);
    if (!strcmp(a.cmd, "tune")) {
        if (!a.conns) {
            fprintf(stderr, "wsmill tune needs --connections N\n");
            return 1;
        }
        return sysctls_tune(a.conns, a.local, a.apply, stdout);
    }
    if (!strcmp(a.cmd, "config-doc")) {
        config_doc_write(stdout);
        return 0;
    }
    fprintf(stderr, "wsmill: unknown command \"%s\"\n", a.cmd);
    usage(stderr);
    return 1;
}
