/* worker.c: one worker process: its libev loop, the accept path, the
 * timing wheel's clock, settings reloads and the graceful drain. */
#include "worker.h"

#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "transport/proxy.h"
#include "transport/tls.h"
#include "conn/conn.h"
#include "conn/endpoint.h"
#include "conn/output.h"
#include "conn/pmd.h"
#include "echo.h"
#include "http/listener.h"
#include "http/metrics.h"
#include "pubsub/channels.h"

#define ACCEPTS_PER_WAKEUP 128 /* bound one wakeup's accept work */
#define ACCEPT_PAUSE_S     0.1 /* back-off when out of descriptors */
#define SCRATCH_SIZE       (256 * 1024)

static void apply_config(struct worker *w)
{
    char old_log[CONFIG_STR_MAX];
    memcpy(old_log, w->cfg.log_file, sizeof(old_log));
    uint64_t gen = shm_read_config(w->shm, &w->cfg);
    if (gen == w->cfg_generation)
        return;
    if (w->cfg_generation && strcmp(old_log, w->cfg.log_file) != 0)
        log_open(w->cfg.log_file);
    if (w->cfg_generation)
        log_info("settings generation %llu applied", (unsigned long long)gen);
    w->cfg_generation = gen;
    log_set_level((int)w->cfg.log_level);
    if (w->cfg.max_header_size > 0)
        http_parser_set_max_header_size((uint32_t)w->cfg.max_header_size);
    pmd_worker_config(w);
    proxy_reload(w);
    tls_reload(w);
}

/* Which listener io is, as conn_accepted's `how`. */
static unsigned accept_how(const struct worker *w, const ev_io *io)
{
    if (io == &w->tls_accept_io)
        return ACCEPT_TLS | (w->cfg.tls_proxy_protocol ? ACCEPT_PROXY : 0);
    return w->cfg.proxy_protocol ? ACCEPT_PROXY : 0;
}

static void pause_accepting(struct worker *w)
{
    ev_io_stop(w->loop, &w->accept_io);
    ev_io_stop(w->loop, &w->tls_accept_io);
    ev_timer_set(&w->accept_pause, ACCEPT_PAUSE_S, 0);
    ev_timer_start(w->loop, &w->accept_pause);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct worker *w = io->data;
    unsigned how = accept_how(w, io);
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        struct sockaddr_storage addr;
        socklen_t alen = sizeof(addr);
        int fd = accept4(io->fd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd != -1) {
            conn_accepted(w, fd, (struct sockaddr *)&addr, how);
            continue;
        }
        switch (errno) {
        case EAGAIN:
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
            if (errno == EAGAIN)
                return;
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM: {
            /* Out of descriptors or memory: spinning on a readable listen
             * socket would burn a core. Pause; queued clients wait in the
             * kernel's accept queue instead of being refused. */
            shm_add(&w->slot->accept_errors, 1);
            double now = ev_now(loop);
            if (now - w->last_emfile_log >= 1.0) {
                log_crit("accept4() on the listening socket failed: %s; %d connections open; pausing "
                         "accepts %.0f ms (raise RLIMIT_NOFILE, fs.file-max or workers)",
                         strerror(errno), w->live, ACCEPT_PAUSE_S * 1000);
                w->last_emfile_log = now;
            }
            pause_accepting(w);
            return;
        }
        default: log_error("accept4() on the listening socket failed: %s", strerror(errno)); return;
        }
    }
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct worker *w = container_of(t, struct worker, accept_pause);
    if (w->draining)
        return;
    ev_io_start(loop, &w->accept_io);
    if (w->tls_listen_fd != -1)
        ev_io_start(loop, &w->tls_accept_io);
}

static uint32_t now_ticks(struct worker *w)
{
    return (uint32_t)(ev_now(w->loop) * 1000 / WHEEL_TICK_MS);
}

/* Once a second: when connections stopped arriving after a burst (a
 * reconnect storm), or messages stopped after a burst of them, what they
 * freed (request parsers, output queues, inflate buffers) goes back to the
 * kernel, so the workers' memory tracks what the held connections use.
 * jemalloc's own decay runs only when the worker allocates, which an idle
 * worker never does. A worker that stays busy keeps its pages: it will
 * need them again. */
static void release_after_burst(struct worker *w)
{
    if (w->wheel.now - w->burst_tick < 1000 / WHEEL_TICK_MS)
        return;
    w->burst_tick = w->wheel.now;
    uint64_t seen = shm_get(&w->slot->accepted) + shm_get(&w->slot->messages_in) +
                    shm_get(&w->slot->messages_out) + shm_get(&w->slot->deliveries);
    if (seen != w->activity_seen) {
        w->activity_seen = seen;
        w->burst = 1;
    } else if (w->burst) {
        w->burst = 0;
        alloc_release_free();
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = container_of(t, struct worker, tick);
    if (atomic_load_explicit(&w->shm->config_generation, memory_order_acquire) != w->cfg_generation)
        apply_config(w);
    conn_tick(w, now_ticks(w));
    release_after_burst(w);
    metrics_tick(w);
}

static void stop_accepting(struct worker *w)
{
    http_listener_stop(w);
    w->draining = 1;
    atomic_store(&w->slot->state, WORKER_DRAINING);
    ev_io_stop(w->loop, &w->accept_io);
    ev_timer_stop(w->loop, &w->accept_pause);
    tls_stop(w); /* this worker's own socket: a successor has its own */
    /* Our copy only: the master (and a successor) keep the socket open, so
     * nothing queued on it is lost. */
    close(w->listen_fd);
    w->listen_fd = -1;
}

/* Retire (a new generation took over our socket): stop accepting, let the
 * established connections run until they end on their own, and only at
 * drain_timeout send 1001 to the rest. */
static void start_retire(struct worker *w)
{
    if (w->draining)
        return;
    stop_accepting(w);
    log_info("retiring: serving %d connections for up to %lld ms", w->live, (long long)w->cfg.drain_timeout);
    /* Handshakes in progress finish too (handshake_timeout bounds them): a
     * client mid-handshake during a reload must still get its 101. */
    if (w->live == 0) {
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    w->retiring = 1;
    ev_timer_set(&w->drain_deadline, (double)w->cfg.drain_timeout / 1000.0, 0);
    ev_timer_start(w->loop, &w->drain_deadline);
}

/* Graceful stop: no new connections; every open one gets 1001 and has
 * drain_timeout to finish the close handshake. */
static void start_drain(struct worker *w)
{
    if (w->draining && !w->retiring)
        return;
    if (!w->draining)
        stop_accepting(w);
    w->retiring = 0;
    log_info("draining %d connections (drain_timeout %lld ms)", w->live, (long long)w->cfg.drain_timeout);
    for (int fd = 0; fd < w->nconns; fd++) {
        struct conn *c = &w->conns[fd];
        if (c->state == CONN_OPEN)
            conn_close_with(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == CONN_HANDSHAKE)
            conn_drop(c, 0);
    }
    if (w->live == 0) {
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    if (!ev_is_active(&w->drain_deadline)) {
        ev_timer_set(&w->drain_deadline, (double)w->cfg.drain_timeout / 1000.0, 0);
        ev_timer_start(w->loop, &w->drain_deadline);
    }
}

static void drain_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct worker *w = container_of(t, struct worker, drain_deadline);
    if (w->retiring) {
        /* Retirement is over: now say goodbye the graceful way, with a
         * short grace for the close handshake. */
        start_drain(w);
        ev_timer_set(&w->drain_deadline, 2.0, 0);
        ev_timer_start(loop, &w->drain_deadline);
        return;
    }
    log_info("drain_timeout reached with %d connections left; closing them", w->live);
    for (int fd = 0; fd < w->nconns; fd++)
        if (w->conns[fd].state != CONN_FREE)
            conn_drop(&w->conns[fd], 0);
    conn_reap(w);
    ev_break(loop, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)revents;
    struct worker *w = s->data;
    switch (s->signum) {
    case SIGTERM: start_drain(w); break;
    case SIGWINCH: start_retire(w); break;
    case SIGQUIT:
        log_info("fast stop: closing %d connections", w->live);
        ev_break(loop, EVBREAK_ALL);
        break;
    case SIGHUP: apply_config(w); break;
    case SIGUSR1: log_open(w->cfg.log_file); break;
    }
}

/* Switches to the configured user once every socket is bound (the
 * publish API's too, so a port below 1024 works), before any client is
 * served. What a worker needs afterwards it already holds: the shared
 * block is mapped, the sockets are open, the log file was given to the
 * user by the master; the pid file and status socket stay the master's. */
static int drop_privileges(struct worker *w, const struct worker_spec *spec)
{
    char err[512];
    if (!spec->privs || !spec->privs->active)
        return 0;
    if (privs_drop(spec->privs, err, sizeof err) == -1) {
        log_crit("%s", err);
        return -1;
    }
    /* The kernel cleared the parent-death signal with the credentials. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
        log_warn("prctl(PR_SET_PDEATHSIG, SIGTERM) failed: %s", strerror(errno));
    if (getppid() != w->shm->master_pid)
        return -1;
    log_notice("worker %d running as user %s (uid %u, gid %u, %d groups)", w->id, spec->privs->name,
               (unsigned)spec->privs->uid, (unsigned)spec->privs->gid, spec->privs->ngroups);
    return 0;
}

static int setup(struct worker *w, const struct worker_spec *spec)
{
    memset(w, 0, sizeof(*w));
    w->id = spec->id;
    w->shm = spec->shm;
    w->history = spec->history;
    w->slot = &spec->shm->slots[spec->id];
    w->listen_fd = spec->listen_fd;
    w->tls_listen_fd = spec->tls_fd;
    apply_config(w);
    w->loop = ev_default_loop(EVBACKEND_EPOLL | EVFLAG_SIGNALFD);
    if (!w->loop) {
        log_crit("ev_default_loop(EVBACKEND_EPOLL) failed");
        return -1;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        log_crit("getrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
        return -1;
    }
    /* The table is indexed by fd and sized for every descriptor we may get;
     * pages are only touched (and resident) as descriptors are used. */
    w->nconns = (int)(rl.rlim_cur == RLIM_INFINITY ? 1 << 20 : rl.rlim_cur);
    size_t bytes = (size_t)w->nconns * sizeof(struct conn);
    w->conns = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (w->conns == MAP_FAILED) {
        log_crit("mmap(%zu bytes) for the connection table failed: %s", bytes, strerror(errno));
        return -1;
    }
    w->scratch_size = SCRATCH_SIZE;
    w->scratch = malloc(w->scratch_size);
    if (!w->scratch) {
        log_crit("out of memory for the %zu-byte read buffer", w->scratch_size);
        return -1;
    }
    if (output_init(w) == -1) {
        log_crit("out of memory for the %d-byte cork buffer", CORK_BYTES);
        return -1;
    }
    conn_init(w, now_ticks(w));
    if (pmd_worker_init(w) == -1)
        return -1;
    endpoint_register(w, &echo_endpoint);
    endpoint_register(w, &channels_endpoint);
    if (channels_init(w) == -1)
        return -1;
    if (http_listener_start(w) == -1)
        return -1;
    if (tls_start(w) == -1)
        return -1;
    return drop_privileges(w, spec);
}

static void start_watchers(struct worker *w)
{
    ev_io_init(&w->accept_io, accept_cb, w->listen_fd, EV_READ);
    w->accept_io.data = w;
    ev_io_start(w->loop, &w->accept_io);
    if (w->tls_listen_fd != -1) {
        ev_io_init(&w->tls_accept_io, accept_cb, w->tls_listen_fd, EV_READ);
        w->tls_accept_io.data = w;
        ev_io_start(w->loop, &w->tls_accept_io);
    }
    ev_timer_init(&w->accept_pause, accept_resume_cb, ACCEPT_PAUSE_S, 0);
    ev_timer_init(&w->drain_deadline, drain_deadline_cb, 1, 0);
    ev_timer_init(&w->tick, tick_cb, WHEEL_TICK_MS / 1000.0, WHEEL_TICK_MS / 1000.0);
    ev_timer_start(w->loop, &w->tick);
    ev_signal *sigs[] = {&w->sig_term, &w->sig_quit, &w->sig_hup, &w->sig_usr1, &w->sig_winch};
    int nums[] = {SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGWINCH};
    for (int i = 0; i < 5; i++) {
        ev_signal_init(sigs[i], signal_cb, nums[i]);
        sigs[i]->data = w;
        ev_signal_start(w->loop, sigs[i]);
    }
    /* A peer that vanished mid-write must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
}

int worker_run(const struct worker_spec *spec)
{
    static struct worker w; /* one per process; reached through watchers */
    if (setup(&w, spec) == -1)
        return 1;
    start_watchers(&w);
    atomic_store(&w.slot->state, WORKER_ACTIVE);
    log_info("worker %d serving (fd table %d, generation %u)", w.id, w.nconns, spec->generation);
    ev_run(w.loop, 0);
    channels_stop(&w);
    log_info("worker %d exiting with %d connections open", w.id, w.live);
    return 0;
}
