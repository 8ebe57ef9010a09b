/* upgrade.c: replacing the running binary without closing a listening
 * socket, the way nginx does it.
 *
 *   SIGUSR2 to the master: it renames pid_file to pid_file.oldbin, moves
 *   its own status to status_socket.oldbin, and forks + execs its binary
 *   (the path it was started from) with the same arguments and
 *   WSMILL_INHERIT="listen=FD,FD,...;status=FD". The new master adopts
 *   those descriptors instead of binding, writes pid_file and serves the
 *   status socket. Both generations of workers accept meanwhile.
 *   SIGWINCH to the old master: it retires all its workers and exits once
 *   they are gone (`wsmill.sh upgrade` sends it when the new master's
 *   workers are all active).
 *   If the new master exits first, the old one takes the pid file and the
 *   status socket back and serves on (with a fresh generation of workers
 *   if it had begun retiring them). */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/log.h"
#include "status.h"

#define INHERIT_ENV "WSMILL_INHERIT"
#define OLDBIN      ".oldbin"

void upgrade_init(struct master *m, char **argv)
{
    static const char deleted[] = " (deleted)";
    m->up.argv = argv;
    m->up.oldbin_fd = -1;
    ssize_t n = readlink("/proc/self/exe", m->up.exe, sizeof m->up.exe - 1);
    if (n <= 0) {
        log_warn("readlink(/proc/self/exe) failed: %s; a binary upgrade will exec %s", strerror(errno),
                 argv[0]);
        snprintf(m->up.exe, sizeof m->up.exe, "%s", argv[0]);
        return;
    }
    m->up.exe[n] = '\0';
    size_t len = (size_t)n, dl = sizeof deleted - 1;
    if (len > dl && !strcmp(m->up.exe + len - dl, deleted))
        m->up.exe[len - dl] = '\0'; /* replaced before we got here: exec the new file */
}

static void oldbin_path(const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s" OLDBIN, path);
}

/* Builds "listen=FD,...;status=FD" for the newest generation's sockets. */
static void inherit_value(const struct master *m, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "listen=");
    for (int k = 0; k < m->nworkers && used < len; k++)
        used += (size_t)snprintf(buf + used, len - used, "%s%d", k ? "," : "", m->socks[m->cur_socks[k]].fd);
    if (m->status_fd != -1 && used < len)
        used += (size_t)snprintf(buf + used, len - used, ";status=%d", m->status_fd);
    if (m->history_fd != -1 && used < len)
        snprintf(buf + used, len - used, ";history=%d", m->history_fd);
}

static void __attribute__((noreturn)) exec_child(struct master *m, const char *env)
{
    /* Only these descriptors cross the exec; everything else is CLOEXEC. */
    for (int k = 0; k < m->nworkers; k++)
        fcntl(m->socks[m->cur_socks[k]].fd, F_SETFD, 0);
    if (m->status_fd != -1)
        fcntl(m->status_fd, F_SETFD, 0);
    if (m->history_fd != -1)
        fcntl(m->history_fd, F_SETFD, 0);
    setenv(INHERIT_ENV, env, 1);
    /* The signal mask stays blocked across exec: the new master reads the
     * same signals through its own signalfd, and one arriving before that
     * must not kill it. */
    execv(m->up.exe, m->up.argv);
    log_error("upgrade: execv(%s) failed: %s", m->up.exe, strerror(errno));
    _exit(127);
}

static int refuse_upgrade(const struct master *m, char *why, size_t len)
{
    char oldbin[CONFIG_STR_MAX + 8];
    pid_t older = 0;
    if (m->cfg.pid_file[0]) {
        oldbin_path(m->cfg.pid_file, oldbin, sizeof oldbin);
        older = pidfile_live(oldbin);
    }
    if (m->up.child)
        snprintf(why, len, "new master pid %d is running (SIGWINCH hands over to it)", (int)m->up.child);
    else if (m->up.handover || m->stop)
        snprintf(why, len, "this master is stopping");
    else if (m->switching)
        snprintf(why, len, "a reload is still starting worker generation %u; try again when it serves",
                 m->generation);
    else if (older)
        snprintf(why, len, "old master pid %d (%s) has not exited yet", (int)older, oldbin);
    else if (access(m->up.exe, X_OK) == -1)
        snprintf(why, len, "access(%s, X_OK) failed: %s", m->up.exe, strerror(errno));
    else
        return 0;
    return -1;
}

void upgrade_start(struct master *m)
{
    char why[PATH_MAX + 256], env[SHM_MAX_WORKERS * 12 + 64], oldbin[CONFIG_STR_MAX + 8];
    if (refuse_upgrade(m, why, sizeof why) == -1)
        goto refused;
    oldbin_path(m->cfg.pid_file, oldbin, sizeof oldbin);
    if (m->cfg.pid_file[0] && pidfile_rename(m->cfg.pid_file, oldbin) == -1) {
        snprintf(why, sizeof why, "cannot move the pid file %s aside", m->cfg.pid_file);
        goto refused;
    }
    inherit_value(m, env, sizeof env);
    pid_t pid = fork();
    if (pid == -1) {
        snprintf(why, sizeof why, "fork() failed: %s", strerror(errno));
        if (m->cfg.pid_file[0])
            pidfile_rename(oldbin, m->cfg.pid_file);
        goto refused;
    }
    if (pid == 0)
        exec_child(m, env);
    m->up.child = pid;
    /* The status socket is the new master's from now on; ours moves. */
    m->status_paused = 1;
    if (m->cfg.status_socket[0]) {
        oldbin_path(m->cfg.status_socket, why, sizeof why);
        m->up.oldbin_fd = status_listen(why);
    }
    m->up.started++;
    log_notice("upgrade: started %s as pid %d (%s); this master's pid file is now %s", m->up.exe, (int)pid,
               env, m->cfg.pid_file[0] ? oldbin : "(none)");
    return;
refused:
    m->up.refused++;
    snprintf(m->up.last_error, sizeof m->up.last_error, "refused: %.480s", why);
    log_error("upgrade refused: %s", why);
}

void upgrade_handover(struct master *m)
{
    if (!m->up.child) {
        log_warn("SIGWINCH ignored: no new master is running (SIGUSR2 starts one)");
        return;
    }
    if (m->up.handover || m->stop)
        return;
    m->up.handover = 1;
    int64_t conns = atomic_load(&m->shm->total_connections);
    int n = reload_retire_all(m);
    log_notice("upgrade: handing over to pid %d: retiring %d workers with %" PRId64
               " connections; exiting when they are gone",
               (int)m->up.child, n, conns);
}

static void leave_oldbin_status(struct master *m)
{
    char path[CONFIG_STR_MAX + 8];
    if (m->up.oldbin_fd == -1)
        return;
    oldbin_path(m->cfg.status_socket, path, sizeof path);
    status_close(m->up.oldbin_fd, path);
    m->up.oldbin_fd = -1;
}

void upgrade_reaped(struct master *m, int status)
{
    char oldbin[CONFIG_STR_MAX + 8];
    pid_t pid = m->up.child;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    m->up.child = 0;
    if (m->cfg.pid_file[0]) {
        oldbin_path(m->cfg.pid_file, oldbin, sizeof oldbin);
        pidfile_rename(oldbin, m->cfg.pid_file);
    }
    leave_oldbin_status(m);
    /* The new master may have removed the path or bound another socket
     * there: bind afresh rather than trust what is left. */
    if (m->status_fd != -1) {
        close(m->status_fd);
        m->status_fd = status_listen(m->cfg.status_socket);
    }
    m->status_paused = 0;
    if (m->stop) {
        log_notice("upgrade: new master pid %d exited (status %d) while we stop", (int)pid, code);
        return;
    }
    if (m->up.handover) {
        m->up.handover = 0;
        log_crit("upgrade: new master pid %d exited (status %d) after the handover began; this master"
                 " (pid %d) serves again with a new generation of workers",
                 (int)pid, code, (int)getpid());
        reload_restart_generation(m);
        return;
    }
    log_error("upgrade failed: new master pid %d exited (status %d); this master (pid %d) keeps serving",
              (int)pid, code, (int)getpid());
    m->up.failed++;
    snprintf(m->up.last_error, sizeof m->up.last_error,
             "new master pid %d exited with status %d before the handover", (int)pid, code);
}

void upgrade_cleanup(struct master *m)
{
    char oldbin[CONFIG_STR_MAX + 8];
    leave_oldbin_status(m);
    if (!m->up.child)
        return;
    /* The path and pid_file are the new master's now. */
    if (m->status_fd != -1)
        close(m->status_fd);
    m->status_fd = -1;
    if (m->cfg.pid_file[0]) {
        oldbin_path(m->cfg.pid_file, oldbin, sizeof oldbin);
        pidfile_remove(oldbin);
    }
}

static int parse_fd(const char *s, char **end)
{
    errno = 0;
    long v = strtol(s, end, 10);
    if (errno || *end == s || v < 3 || v > 1 << 20)
        return -1;
    if (fcntl((int)v, F_GETFD) == -1)
        return -1;
    return (int)v;
}

int inherit_parse(int *fds, int max, int *status_fd, int *history_fd)
{
    const char *env = getenv(INHERIT_ENV);
    int n = 0;
    *status_fd = -1;
    *history_fd = -1;
    if (!env)
        return 0;
    char *copy = strdup(env), *save = NULL;
    if (!copy)
        goto bad;
    for (char *part = strtok_r(copy, ";", &save); part; part = strtok_r(NULL, ";", &save)) {
        char *end;
        if (!strncmp(part, "listen=", 7)) {
            for (char *p = part + 7; *p && n < max; p = *end == ',' ? end + 1 : end) {
                if ((fds[n] = parse_fd(p, &end)) == -1)
                    goto bad;
                n++;
            }
        } else if (!strncmp(part, "status=", 7)) {
            if ((*status_fd = parse_fd(part + 7, &end)) == -1 || *end)
                goto bad;
        } else if (!strncmp(part, "history=", 8)) {
            if ((*history_fd = parse_fd(part + 8, &end)) == -1 || *end)
                goto bad;
        } else {
            goto bad;
        }
    }
    free(copy);
    unsetenv(INHERIT_ENV); /* our workers and our own upgrade must not see it */
    /* Ours now: not to be passed on by accident. */
    for (int k = 0; k < n; k++)
        fcntl(fds[k], F_SETFD, FD_CLOEXEC);
    if (*status_fd != -1)
        fcntl(*status_fd, F_SETFD, FD_CLOEXEC);
    if (*history_fd != -1)
        fcntl(*history_fd, F_SETFD, FD_CLOEXEC);
    return n;
bad:
    fprintf(stderr, "wsmill: %s=\"%s\": not \"listen=FD,...;status=FD\" with open descriptors\n", INHERIT_ENV,
            env);
    free(copy);
    unsetenv(INHERIT_ENV);
    return -1;
}
