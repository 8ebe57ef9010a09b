/* master.c: start-up, the poll loop, and what each signal does.
 *
 * Signals are blocked and read from a signalfd, so every action runs in
 * the loop, never in a handler. The loop also serves the status socket and
 * wakes for respawn back-off, generation switches and deadlines. Reloads
 * live in reload.c, the binary upgrade in upgrade.c. */
#include "master.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/histstore.h"
#include "../common/log.h"
#include "capacity.h"
#include "listen.h"
#include "tls_check.h"
#include "tls_listen.h"
#include "notify.h"
#include "portowner.h"
#include "status.h"

#define FAST_STOP_MS    2000 /* SIGQUIT: how long workers get before SIGKILL */
#define DRAIN_MARGIN_MS 2000 /* SIGTERM: on top of drain_timeout */
#define AFTER_KILL_MS   5000 /* how long to wait for SIGKILLed workers */
#define SWITCH_POLL_MS  10   /* while a new generation starts: how often to look */
#define MAX_INHERIT     SHM_MAX_WORKERS

static const int handled_signals[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

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
 * second bind), so a live pid file or status socket stops us, and so does
 * anyone else listening on one of our addresses (portowner.h). A master
 * started by a binary upgrade finds the pid file moved aside, its parent
 * still answering on the status socket it hands us, and its parent's
 * sockets on the addresses. */
static int refuse_if_running(const struct config *cfg, int upgrading)
{
    char err[512];
    pid_t pid = pidfile_live(cfg->pid_file);
    if (pid) {
        fprintf(stderr, "wsmill: already running as pid %d (pid file %s)\n", (int)pid, cfg->pid_file);
        return -1;
    }
    if (!upgrading && cfg->status_socket[0] && status_probe(cfg->status_socket)) {
        fprintf(stderr, "wsmill: already running: %s answers\n", cfg->status_socket);
        return -1;
    }
    if (portowner_check_config(cfg, NULL, upgrading ? getppid() : getpid(), err, sizeof err) == -1) {
        fprintf(stderr, "wsmill: not starting: %s\n", err);
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

/* The user workers switch to. Returns 0, or -1 after an error on stderr. */
static int setup_user(struct master *m)
{
    char err[512];
    int rc = privs_resolve(m->cfg.user, geteuid(), &m->privs, err, sizeof err);
    if (rc == -1) {
        fprintf(stderr, "%s: %s\n", m->conf_path, err);
        return -1;
    }
    if (rc == 1)
        log_warn("%s", err);
    else if (m->privs.active)
        log_notice("workers will run as user %s (uid %u, gid %u, %d groups) once their sockets are bound",
                   m->privs.name, (unsigned)m->privs.uid, (unsigned)m->privs.gid, m->privs.ngroups);
    master_log_chown(m);
    return 0;
}

void master_log_chown(const struct master *m)
{
    /* The master keeps root and opens the file first; a worker reopening
     * it as the user would get EACCES and stay on the rotated file. */
    if (!m->privs.active || !m->cfg.log_file[0])
        return;
    if (chown(m->cfg.log_file, m->privs.uid, (gid_t)-1) == -1)
        log_warn("chown(%s, %u) failed: %s; workers running as %s may not reopen the log", m->cfg.log_file,
                 (unsigned)m->privs.uid, strerror(errno), m->privs.name);
}

static void setup_limits(struct master *m)
{
    char err[256];
    struct capacity cap;
    char why[256];
    if (capacity_raise_nofile(&m->cfg, err, sizeof err) == -1)
        log_notice("%s", err);
    m->max_conns_auto = m->cfg.max_connections == 0;
    if (capacity_resolve(&m->cfg, why, sizeof why) && why[0])
        log_notice("%s", why);
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

/* The listening sockets: those an old master passed us when they are on
 * our address (extra ones closed, missing ones added to the group), else
 * new ones. Returns 0 or -1 after logging. */
static int setup_listeners(struct master *m, int *inh, int ninh)
{
    int fds[SHM_MAX_WORKERS], n = m->nworkers, adopt = ninh > 0;
    for (int k = 0; k < ninh; k++)
        adopt &= listen_matches(&m->cfg, inh[k]);
    if (adopt) {
        int use = ninh < n ? ninh : n;
        memcpy(fds, inh, (size_t)use * sizeof *fds);
        listen_close(inh + use, ninh - use);
        if (use < n && listen_open_like(fds[0], n - use, fds + use) == -1)
            return -1;
        log_notice("upgrade: took over %d listening sockets from the old master (pid %d), opened %d more",
                   use, (int)getppid(), n - use);
    } else {
        if (ninh)
            log_notice("upgrade: listen is now %s: not taking over the old master's %d sockets",
                       m->cfg.listen, ninh);
        listen_close(inh, ninh);
        if (listen_open(&m->cfg, n, fds) == -1)
            return -1;
    }
    for (int k = 0; k < n; k++)
        m->cur_socks[k] = listen_table_add(m->socks, MASTER_MAX_SOCKETS, fds[k]);
    for (int k = 0; k < n; k++)
        if (tls_listen_twin(m, &m->cfg, m->cur_socks[k]) == -1)
            return -1;
    return 0;
}

static int setup_status(struct master *m, int inherited)
{
    if (inherited != -1 && status_adopt(inherited, m->cfg.status_socket)) {
        m->status_fd = inherited;
        m->up.status_inherited = 1;
        return 0;
    }
    if (inherited != -1)
        close(inherited);
    m->status_fd = status_listen(m->cfg.status_socket);
    return m->status_fd == -1 ? -1 : 0;
}

/* The key is read here, before any worker drops privileges. */
static int setup_tls(struct master *m)
{
    char err[768];
    struct tls_pem pem;
    if (tls_check_prepare(&m->cfg, &pem, err, sizeof err) == -1) {
        fprintf(stderr, "%s: %s\n", m->conf_path, err);
        return -1;
    }
    tls_check_commit(m->shm, &m->cfg, &pem);
    return 0;
}

/* Everything that can fail at start-up. Returns 0; -1 when the error went
 * to stderr; -2 when it went to the log (the caller points at it). */
static int master_init(struct master *m)
{
    char err[768];
    int inh[MAX_INHERIT], status_in, history_in;
    int ninh = inherit_parse(inh, MAX_INHERIT, &status_in, &history_in);
    if (ninh == -1)
        return -1;
    if (config_load(&m->cfg, m->conf_path, err, sizeof err) == -1) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (refuse_if_running(&m->cfg, ninh > 0 || status_in != -1) == -1 || open_log(&m->cfg) == -1 ||
        setup_user(m) == -1)
        return -1;
    if (block_signals(m) == -1)
        return -2;
    setup_limits(m);
    m->migrate = listen_enable_migrate();
    if (setup_listeners(m, inh, ninh) == -1)
        return -2;
    setup_shm(m);
    m->history = histstore_open(&m->cfg, history_in, &m->history_fd);
    if (setup_tls(m) == -1)
        return -1;
    if (m->cfg.status_socket[0] && setup_status(m, status_in) == -1)
        return -2;
    if (pidfile_write(m->cfg.pid_file) == -1)
        return -2;
    m->generation = 1;
    m->ready_due = 1;
    spawn_generation(m, m->generation, m->nworkers, m->cur_socks);
    log_notice(
        "started: pid %d, %d workers, WebSocket ws://%s, publish API %s%s, max_connections %" PRId64
        ", config %s",
        (int)getpid(), m->nworkers, m->socks[m->cur_socks[0]].addr, m->cfg.publish_listen[0] ? "http://" : "",
        m->cfg.publish_listen[0] ? m->cfg.publish_listen : "off", m->cfg.max_connections, m->conf_real);
    return 0;
}

static void master_reopen(struct master *m)
{
    if (log_open(m->cfg.log_file) == -1) {
        log_error("log_open(%s) failed: %s; keeping the old log", m->cfg.log_file, strerror(errno));
    } else {
        master_log_chown(m);
        log_notice("log reopened");
    }
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
    m->ready_due = 0;
    notify_send("STOPPING=1\nSTATUS=%s stop: draining", kind == MASTER_STOP_GRACEFUL ? "graceful" : "fast");
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

static void on_hup(struct master *m)
{
    if (m->stop)
        return;
    if (m->up.child) {
        log_warn("SIGHUP ignored: binary upgrade in progress (new master pid %d)", (int)m->up.child);
        return;
    }
    /* systemd holds `reload` until READY=1: hot settings are at once,
     * a new generation once it serves (check_ready). */
    notify_send("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                (unsigned long long)(mono_ns() / 1000), m->conf_real);
    reload_run(m);
    m->ready_due = 1;
}

/* READY=1 (with our pid: after a binary upgrade the new master is the
 * main process) once every worker of the newest generation serves. */
static void check_ready(struct master *m)
{
    if (!m->ready_due || m->stop || m->switching || !spawn_generation_active(m, m->generation))
        return;
    m->ready_due = 0;
    notify_send("READY=1\nMAINPID=%d\nSTATUS=serving %s with %d workers, generation %u", (int)getpid(),
                m->socks[m->cur_socks[0]].addr, m->nworkers, m->generation);
}

static void on_signal(struct master *m, const struct signalfd_siginfo *si)
{
    int sig = (int)si->ssi_signo;
    if (sig != SIGCHLD)
        log_notice("signal SIG%s from pid %u", sigabbrev_np(sig), si->ssi_pid);
    switch (sig) {
    case SIGCHLD: spawn_reap(m); break;
    case SIGHUP: on_hup(m); break;
    case SIGUSR2: upgrade_start(m); break;
    case SIGWINCH: upgrade_handover(m); break;
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
    if ((m->switching || m->ready_due) && (t == -1 || t > SWITCH_POLL_MS))
        t = SWITCH_POLL_MS;
    return t > 60000 ? 60000 : (int)t;
}

static int loop_done(const struct master *m)
{
    if (m->stop)
        return spawn_live(m) == 0 || m->give_up;
    return m->up.handover && spawn_live(m) == 0;
}

static void master_loop(struct master *m)
{
    while (!loop_done(m)) {
        struct pollfd pfd[3] = {{m->sig_fd, POLLIN, 0},
                                {m->status_paused ? -1 : m->status_fd, POLLIN, 0},
                                {m->up.oldbin_fd, POLLIN, 0}};
        int n = poll(pfd, 3, poll_timeout(m));
        if (n == -1 && errno != EINTR) {
            log_crit("poll() failed: %s", strerror(errno));
            return;
        }
        if (n > 0 && (pfd[0].revents & POLLIN))
            read_signals(m);
        if (n > 0 && (pfd[1].revents & POLLIN) && !m->status_paused)
            status_serve(m->status_fd, m);
        if (n > 0 && (pfd[2].revents & POLLIN) && m->up.oldbin_fd != -1)
            status_serve(m->up.oldbin_fd, m);
        spawn_due(m);
        spawn_check_retiring(m);
        reload_check_switch(m);
        check_ready(m);
        check_deadline(m);
    }
}

static void master_cleanup(struct master *m, int init_failed)
{
    upgrade_cleanup(m); /* may hand status_fd and pid_file over */
    if (init_failed && m->up.status_inherited) {
        close(m->status_fd); /* the old master takes the path back */
        m->status_fd = -1;
    }
    status_close(m->status_fd, m->cfg.status_socket);
    if (!m->up.child)
        pidfile_remove(m->cfg.pid_file);
    for (int s = 0; s < MASTER_MAX_SOCKETS; s++)
        if (m->socks[s].fd != -1)
            close(m->socks[s].fd);
    if (m->sig_fd != -1)
        close(m->sig_fd);
}

int master_run(const char *conf_path, char **argv)
{
    size_t size = (sizeof(struct master) + SHM_CACHELINE - 1) & ~(size_t)(SHM_CACHELINE - 1);
    struct master *m = aligned_alloc(SHM_CACHELINE, size);
    int rc = 0;
    if (!m) {
        fprintf(stderr, "wsmill: out of memory (%zu bytes for the master)\n", size);
        return 1;
    }
    memset(m, 0, sizeof *m);
    m->conf_path = conf_path;
    if (!realpath(conf_path, m->conf_real))
        snprintf(m->conf_real, sizeof m->conf_real, "%s", conf_path);
    m->sig_fd = m->status_fd = m->history_fd = -1;
    for (int i = 0; i < MASTER_MAX_SOCKETS; i++)
        m->socks[i].fd = m->tls_socks[i] = -1;
    upgrade_init(m, argv);
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
    master_cleanup(m, init != 0);
    free(m);
    return rc;
}
