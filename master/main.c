/* main.c: command-line parsing and dispatch; the work lives elsewhere. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "capacity.h"
#include "master.h"
#include "redischeck.h"
#include "status.h"
#include "tls_check.h"

#define DEFAULT_CONF "conf/wsmill.conf"
#define MAX_ARGS     32

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wsmill [run] [-c FILE]     run the master in the foreground\n"
            "       wsmill check [-c FILE]     validate FILE and report whether max_connections fits\n"
            "                                  (exit 0 fits, 1 invalid config, 2 limits too low,\n"
            "                                  3 broker = redis and Redis does not answer)\n"
            "       wsmill status [-c FILE] [--oldbin]\n"
            "                                  print the running server's JSON status (--oldbin: the\n"
            "                                  old master's during a binary upgrade)\n"
            "       wsmill get KEY... [-c FILE] print settings as FILE resolves them (for scripts)\n"
            "       wsmill config-doc          print every setting as a Markdown table (docs/config.md)\n"
            "       wsmill -h                  this help\n"
            "FILE defaults to " DEFAULT_CONF ". Signals to the master: HUP reload, TERM/INT graceful\n"
            "stop, QUIT fast stop, USR1 reopen logs, USR2 binary upgrade, WINCH (old master, after\n"
            "USR2) retire its workers and exit. See docs/reload.md.\n");
}

static int load(struct config *cfg, const char *path)
{
    char err[768];
    if (config_load(cfg, path, err, sizeof err) == -1) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int cmd_check(const char *path)
{
    struct config cfg;
    struct privs privs;
    char err[512];
    if (load(&cfg, path) == -1)
        return 1;
    int who = privs_resolve(cfg.user, geteuid(), &privs, err, sizeof err);
    if (who == -1) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    if (who == 1)
        printf("%s: warning: %s\n", path, err);
    if (tls_check_report(&cfg, path, stdout) != 0)
        return 1;
    printf("%s: configuration OK\n", path);
    int rc = capacity_report(&cfg, path, stdout);
    if (cfg.broker == BROKER_REDIS && redischeck_run(&cfg, stdout, stderr) != 0)
        return REDISCHECK_FAILED;
    return rc;
}

static int cmd_status(const char *path, int oldbin)
{
    struct config cfg;
    char sock[CONFIG_STR_MAX + 8];
    if (load(&cfg, path) == -1)
        return 1;
    if (!cfg.status_socket[0]) {
        fprintf(stderr, "%s: status_socket is empty: the status socket is disabled\n", path);
        return 1;
    }
    snprintf(sock, sizeof sock, "%s%s", cfg.status_socket, oldbin ? ".oldbin" : "");
    return status_query(sock, stdout);
}

static int cmd_get(const char *path, char **keys, int nkeys)
{
    struct config cfg;
    char buf[CONFIG_LIST_MAX + 64];
    if (nkeys == 0) {
        fprintf(stderr, "wsmill get: name at least one key\n");
        return 1;
    }
    if (load(&cfg, path) == -1)
        return 1;
    for (int i = 0; i < nkeys; i++) {
        const struct config_key *k = config_key_find(keys[i]);
        if (!k) {
            fprintf(stderr, "wsmill get: unknown key \"%s\"\n", keys[i]);
            return 1;
        }
        config_format(&cfg, k, buf, sizeof buf);
        printf("%s\n", buf);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF, *cmd = NULL;
    char *rest[MAX_ARGS];
    int nrest = 0, oldbin = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-c")) {
            if (++i == argc) {
                fprintf(stderr, "wsmill: -c needs a FILE\n");
                return 1;
            }
            path = argv[i];
        } else if (cmd && !strcmp(cmd, "status") && !strcmp(argv[i], "--oldbin")) {
            oldbin = 1;
        } else if (!cmd && argv[i][0] != '-') {
            cmd = argv[i];
        } else if (cmd && !strcmp(cmd, "get") && argv[i][0] != '-' && nrest < MAX_ARGS) {
            rest[nrest++] = argv[i];
        } else {
            fprintf(stderr, "wsmill: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 1;
        }
    }
    if (!cmd || !strcmp(cmd, "run"))
        return master_run(path, argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(path);
    if (!strcmp(cmd, "status"))
        return cmd_status(path, oldbin);
    if (!strcmp(cmd, "get"))
        return cmd_get(path, rest, nrest);
    if (!strcmp(cmd, "config-doc")) {
        config_write_doc(stdout);
        return 0;
    }
    fprintf(stderr, "wsmill: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 1;
}
