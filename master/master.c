/* master.c: start-up, the poll loop, and what each signal does.
 *
 * Signals are blocked and read from a signalfd, so every action runs in
 * the loop, never in a handler. The loop also serves the status socket and
 * wakes for respawn back-off and stop deadlines. */
#include "master.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "capacity.h"
#include "listen.h"
#include "status.h"

#define FAST_STOP_MS    2000 /* SIGQUIT: how long workers get before SIGKILL */
#define DRAIN_MARGIN_MS 2000 /* SIGTERM: on top of drain_timeout */
#define AFTER_KILL_MS   5000 /* how long to wait for SIGKILLed workers */

static const int handled_signals[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1};

static int block_signals(struct master *m)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof handled_signals / sizeof handled_signals[0]; i++)
        sigaddset(&set, handled_signals[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1) {
        log_error("sigprocmask(SIG_BLOCK) failed: %s", strerror(errno));
        return -1;
    }
    /* nohup leaves SIGHUP ignored and an ignored SIGCHLD would reap our
     * children for us; blocked first, so nothing arrives in between. */
    for (size_t i = 0; i < sizeof handled_signals / sizeof handled_signals[0]; i++)
        signal(handled_signals[i], SIG_DFL);
    m->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m->sig_fd == -1) {
        log_error("signalfd() failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Two masters on one port would split its traffic (SO_REUSEPORT lets the
 * second bind), so a live pid file or status socket stops us. */
static int refuse_if_running(const struct config *cfg)
{
    pid_t pid = pidfile_live(cfg->pid_file);
    if (pid) {
        fprintf(stderr, "wsmill: already running as pid %d (pid file %s)\n", (int)pid, cfg->pid_file);
        return -1;
    }
    if (cfg->status_socket[0] && status_probe(cfg->status_socket)) {
        fprintf(stderr, "wsmill: already running: %s answers\n", cfg->status_socket);
        return -1;
    }
    return 0;
}

static int open_log(const struct config *cfg)
{
    log_set_process("master");
    log_set_level((int)cfg->log_level);
    if (log_open(cfg->log_file) == -1) {
        fprintf(stderr, "wsmill: log_open(%s) failed: %s\n", cfg->log_file, strerror(errno));
        return -1;
    }
    return 0;
}

static void setup_limits(struct master *m)
{
    char err[256];
    struct capacity cap;
    if (capacity_raise_nofile(&m->cfg, err, sizeof err) == -1)
        log_notice("%s", err);
    m->nworkers = capacity_workers(&m->cfg);
    capacity_compute(&m->cfg, &cap);
    log_info("RLIMIT_NOFILE %" PRId64 ": %d workers x %" PRId64 " connections = %" PRId64, cap.nofile_soft,
             cap.workers, cap.per_worker, cap.total);
    capacity_warn(&cap);
}

static void setup_shm(struct master *m)
{
    m->shm = shm_create((size_t)m->cfg.ring_size);
    m->shm->master_pid = (int32_t)getpid();
    m->shm->start_time = (int64_t)time(NULL);
    shm_publish_config(m->shm, &m->cfg);
}

/* Everything that can fail at start-up. Returns 0; -1 when the error went
 * to stderr; -2 when it went to the log (the caller points at it). */
static int master_init(struct master *m)
{
    char err[768];
    if (config_load(&m->cfg, m->conf_path, err, sizeof err) == -1) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (refuse_if_running(&m->cfg) == -1 || open_log(&m->cfg) == -1)
        return -1;
    if (block_signals(m) == -1)
        return -2;
    setup_limits(m);
    if (listen_open(&m->cfg, m->nworkers, m->listen_fds) == -1)
        return -2;
    setup_shm(m);
    if (m->cfg.status_socket[0]) {
        m->status_fd = status_listen(m->cfg.status_socket);
        if (m->status_fd == -1)
            return -2;
    }
    if (pidfile_write(m->cfg.pid_file) == -1)
        return -2;
    for (int i = 0; i < m->nworkers; i++)
        spawn_worker(m, i);
    log_notice("started: pid %d, %d workers, listen %s, max_connections %" PRId64 ", config %s",
               (int)getpid(), m->nworkers, m->cfg.listen, m->cfg.max_connections, m->conf_path);
    return 0;
}

/* Keys a running master cannot change whatever the table says: it would
 * have to rebind, resize the slot table or move its own files. */
static void keep_fixed(const struct config *old, struct config *nc)
{
    memcpy(nc->listen, old->listen, sizeof nc->listen);
    memcpy(nc->listen_host, old->listen_host, sizeof nc->listen_host);
    nc->listen_port = old->listen_port;
    nc->workers = old->workers;
    memcpy(nc->status_socket, old->status_socket, sizeof nc->status_socket);
    memcpy(nc->pid_file, old->pid_file, sizeof nc->pid_file);
}

/* Copies every key a reload cannot apply from old into nc. */
static void keep_restart_keys(const struct config *old, struct config *nc)
{
    size_t n;
    const struct config_key *k = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (k[i].reloadable)
            continue;
        memcpy((char *)nc + k[i].offset, (const char *)old + k[i].offset, k[i].size);
    }
    keep_fixed(old, nc);
}

static void apply_log(const struct config *old, struct config *nc)
{
    if (strcmp(old->log_file, nc->log_file) && log_open(nc->log_file) == -1) {
        log_error("log_open(%s) failed: %s; keeping %s", nc->log_file, strerror(errno),
                  old->log_file[0] ? old->log_file : "stderr");
        memcpy(nc->log_file, old->log_file, sizeof nc->log_file);
    }
    log_set_level((int)nc->log_level);
}

/* SIGHUP: the new file is loaded and validated in full before anything
 * changes, so a broken file leaves the running configuration untouched. */
static void master_reload(struct master *m)
{
    char err[768], restart[512], changed[1024];
    struct config *nc = xmalloc(sizeof *nc);
    if (config_load(nc, m->conf_path, err, sizeof err) == -1) {
        log_error("reload failed: %s; keeping the old configuration", err);
        free(nc);
        return;
    }
    if (config_diff(&m->cfg, nc, 1, restart, sizeof restart) > 0)
        log_warn("%s changed: restart needed; keeping the old value", restart);
    keep_restart_keys(&m->cfg, nc);
    if (config_diff(&m->cfg, nc, 0, changed, sizeof changed) == 0)
        snprintf(changed, sizeof changed, "nothing");
    apply_log(&m->cfg, nc);
    int capacity_moved = nc->max_connections != m->cfg.max_connections;
    m->cfg = *nc;
    free(nc);
    shm_publish_config(m->shm, &m->cfg);
    spawn_signal_all(m, SIGHUP);
    if (capacity_moved) {
        struct capacity cap;
        capacity_compute(&m->cfg, &cap);
        capacity_warn(&cap);
    }
    log_notice("reload: configuration generation %" PRIu64 " applied (changed: %s)",
               (uint64_t)atomic_load(&m->shm->config_generation), changed);
}

static void master_reopen(struct master *m)
{
    if (log_open(m->cfg.log_file) == -1)
        log_error("log_open(%s) failed: %s; keeping the old log", m->cfg.log_file, strerror(errno));
    else
        log_notice("log reopened");
    spawn_signal_all(m, SIGUSR1);
}

/* Graceful: workers stop accepting, close with 1001 and drain for up to
 * drain_timeout. Fast: workers exit at once. A fast stop may cut short a
 * graceful one, never the other way round. */
static void master_stop(struct master *m, enum master_stop kind)
{
    if (m->stop >= kind)
        return;
    int64_t grace = kind == MASTER_STOP_GRACEFUL ? m->cfg.drain_timeout + DRAIN_MARGIN_MS : FAST_STOP_MS;
    int64_t deadline = master_now_ms() + grace;
    if (!m->deadline_ms || deadline < m->deadline_ms)
        m->deadline_ms = deadline;
    m->stop = kind;
    int n = spawn_signal_all(m, kind == MASTER_STOP_GRACEFUL ? SIGTERM : SIGQUIT);
    log_notice("%s stop: %d worker%s signalled, SIGKILL in %" PRId64 " ms",
               kind == MASTER_STOP_GRACEFUL ? "graceful" : "fast", n, n == 1 ? "" : "s",
               m->deadline_ms - master_now_ms());
}

static void check_deadline(struct master *m)
{
    int64_t now = master_now_ms();
    if (!m->stop || !m->deadline_ms || now < m->deadline_ms)
        return;
    if (!m->killed) {
        int n = spawn_signal_all(m, SIGKILL);
        log_warn("%d worker%s still running at the stop deadline: SIGKILL sent", n, n == 1 ? "" : "s");
        m->killed = 1;
        m->deadline_ms = now + AFTER_KILL_MS;
    } else {
        log_crit("%d workers did not exit after SIGKILL; exiting without them", spawn_live(m));
        m->give_up = 1;
    }
}

static void on_signal(struct master *m, const struct signalfd_siginfo *si)
{
    int sig = (int)si->ssi_signo;
    if (sig != SIGCHLD)
        log_notice("signal SIG%s from pid %u", sigabbrev_np(sig), si->ssi_pid);
    switch (sig) {
    case SIGCHLD: spawn_reap(m); break;
    case SIGHUP:
        if (!m->stop)
            master_reload(m);
        break;
    case SIGTERM:
    case SIGINT: master_stop(m, MASTER_STOP_GRACEFUL); break;
    case SIGQUIT: master_stop(m, MASTER_STOP_FAST); break;
    case SIGUSR1: master_reopen(m); break;
    }
}

static void read_signals(struct master *m)
{
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(m->sig_fd, &si, sizeof si);
        if (n == (ssize_t)sizeof si) {
            on_signal(m, &si);
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno != EAGAIN)
            log_error("read(signalfd) failed: %s", strerror(errno));
        return;
    }
}

/* Milliseconds poll() may sleep: until the next respawn or deadline. */
static int poll_timeout(const struct master *m)
{
    int64_t now = master_now_ms();
    int64_t t = spawn_next_due(m, now);
    if (m->stop && m->deadline_ms) {
        int64_t d = m->deadline_ms > now ? m->deadline_ms - now : 0;
        if (t == -1 || d < t)
            t = d;
    }
    return t > 60000 ? 60000 : (int)t;
}

static void master_loop(struct master *m)
{
    while (!(m->stop && (spawn_live(m) == 0 || m->give_up))) {
        struct pollfd pfd[2] = {{m->sig_fd, POLLIN, 0}, {m->status_fd, POLLIN, 0}};
        int n = poll(pfd, 2, poll_timeout(m));
        if (n == -1 && errno != EINTR) {
            log_crit("poll() failed: %s", strerror(errno));
            return;
        }
        if (n > 0 && (pfd[0].revents & POLLIN))
            read_signals(m);
        if (n > 0 && (pfd[1].revents & POLLIN))
            status_serve(m->status_fd, m->shm, m->nworkers, m->cfg.max_connections);
        spawn_due(m);
        check_deadline(m);
    }
}

static void master_cleanup(struct master *m)
{
    status_close(m->status_fd, m->cfg.status_socket);
    pidfile_remove(m->cfg.pid_file);
    listen_close(m->listen_fds, m->nworkers);
    if (m->sig_fd != -1)
        close(m->sig_fd);
}

int master_run(const char *conf_path)
{
    struct master *m = xcalloc(1, sizeof *m);
    int rc = 0;
    m->conf_path = conf_path;
    m->sig_fd = m->status_fd = -1;
    for (int i = 0; i < SHM_MAX_WORKERS; i++)
        m->listen_fds[i] = -1;
    int init = master_init(m);
    if (init == -1) { /* nothing of ours exists yet; cfg may be partial */
        free(m);
        return 1;
    }
    if (init == 0) {
        master_loop(m);
        log_notice("exiting");
    } else {
        rc = 1;
        if (m->cfg.log_file[0])
            fprintf(stderr, "wsmill: start-up failed, see %s\n", m->cfg.log_file);
    }
    master_cleanup(m);
    free(m);
    return rc;
}
