/* spawn.c: worker slots: forking workers, reaping them, respawning with
 * back-off, and retiring older generations.
 *
 * The master is the single writer of a slot while no worker runs in it:
 * before fork (state, generation, start time) and after the worker died
 * (state, connections; everything when the slot is freed). The worker
 * writes the slot in between. */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/log.h"
#include "../worker/worker.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   10000
#define CRASH_LOOP_MS    2000  /* dying sooner than this doubles the delay */
#define HEALTHY_MS       10000 /* surviving this long resets it */
/* A retiring worker closes what is left at drain_timeout and exits about
 * 2 s later; past drain_timeout + this it is stuck and gets SIGKILL. */
#define RETIRE_KILL_MARGIN_MS 10000

/* Default dispositions everywhere but SIGINT: Ctrl-C reaches the whole
 * process group, and the master turns it into a graceful stop that the
 * workers must live through to drain. The signals the worker's loop handles
 * stay blocked: one sent before its watchers exist (a reload or stop right
 * after a respawn) would otherwise kill it with the default action. libev's
 * signalfd watchers (EVFLAG_SIGNALFD) keep them blocked and read the
 * pending ones. Everything else is unblocked. */
static void child_signals(void)
{
    sigset_t loop_signals;
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL); /* fails harmlessly for SIGKILL, SIGSTOP, glibc's own */
    signal(SIGINT, SIG_IGN);
    sigemptyset(&loop_signals);
    sigaddset(&loop_signals, SIGTERM);
    sigaddset(&loop_signals, SIGQUIT);
    sigaddset(&loop_signals, SIGHUP);
    sigaddset(&loop_signals, SIGUSR1);
    sigaddset(&loop_signals, SIGWINCH);
    sigprocmask(SIG_SETMASK, &loop_signals, NULL);
}

/* Runs in the child: drop what belongs to the master and to the other
 * workers, undo the master's signal set-up, and enter the worker. */
static void __attribute__((noreturn)) child_main(struct master *m, int i)
{
    static char name[32];
    int own = m->socks[m->w[i].sock].fd;
    struct worker_spec spec = {
        .id = i,
        .generation = m->w[i].generation,
        .listen_fd = own,
        .tls_fd = m->tls_socks[m->w[i].sock],
        .shm = m->shm,
        .history = m->history,
        .privs = &m->privs,
    };
    close(m->sig_fd);
    if (m->status_fd != -1)
        close(m->status_fd);
    if (m->up.oldbin_fd != -1)
        close(m->up.oldbin_fd);
    if (m->history_fd != -1)
        close(m->history_fd); /* the mapping stays; the descriptor is the master's to pass on */
    for (int j = 0; j < MASTER_MAX_SOCKETS; j++) {
        if (m->socks[j].fd != -1 && m->socks[j].fd != own)
            close(m->socks[j].fd);
        if (m->tls_socks[j] != -1 && j != m->w[i].sock)
            close(m->tls_socks[j]);
    }
    child_signals();
    snprintf(name, sizeof name, "worker %d", i);
    log_set_process(name);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
        log_warn("prctl(PR_SET_PDEATHSIG, SIGTERM) failed: %s", strerror(errno));
    /* The master may have died before prctl took effect. */
    if (getppid() != m->shm->master_pid)
        _exit(1);
    atomic_store(&m->shm->slots[i].pid, (int32_t)getpid());
    _exit(worker_run(&spec));
}

static void schedule_respawn(struct master *m, int i, int64_t now)
{
    struct master_worker *w = &m->w[i];
    int64_t lived = now - w->started_ms;
    if (lived >= HEALTHY_MS)
        w->delay_ms = 0;
    else if (lived < CRASH_LOOP_MS)
        w->delay_ms = w->delay_ms ? w->delay_ms * 2 : BACKOFF_FIRST_MS;
    if (w->delay_ms > BACKOFF_MAX_MS)
        w->delay_ms = BACKOFF_MAX_MS;
    w->respawn_ms = now + w->delay_ms;
}

void spawn_worker(struct master *m, int i)
{
    struct master_worker *w = &m->w[i];
    struct worker_slot *slot = &m->shm->slots[i];
    /* Written before fork: the child sets WORKER_ACTIVE itself and must
     * not have it overwritten afterwards. */
    atomic_store(&slot->generation, w->generation);
    atomic_store(&slot->started_at, (int64_t)time(NULL));
    atomic_store(&slot->state, WORKER_STARTING);
    w->started_ms = master_now_ms();
    pid_t pid = fork();
    if (pid == -1) {
        schedule_respawn(m, i, w->started_ms);
        log_error("fork() for worker %d failed: %s; retrying in %lld ms", i, strerror(errno),
                  (long long)w->delay_ms);
        atomic_store(&slot->state, WORKER_DEAD);
        return;
    }
    if (pid == 0)
        child_main(m, i);
    w->pid = pid;
    atomic_store(&slot->pid, (int32_t)pid);
    log_info("worker %d started: pid %d, generation %u, socket %d", i, (int)pid, w->generation, w->sock);
}

int spawn_free_slots(const struct master *m)
{
    int n = 0;
    for (int i = 0; i < SHM_MAX_WORKERS; i++)
        n += m->w[i].role == SLOT_FREE;
    return n;
}

int spawn_generation(struct master *m, uint32_t gen, int n, const int *socks)
{
    int slots[SHM_MAX_WORKERS], got = 0;
    for (int i = 0; i < SHM_MAX_WORKERS && got < n; i++)
        if (m->w[i].role == SLOT_FREE)
            slots[got++] = i;
    if (got < n)
        return -1;
    for (int k = 0; k < n; k++) {
        struct master_worker *w = &m->w[slots[k]];
        memset(w, 0, sizeof *w);
        w->role = SLOT_SERVING;
        w->generation = gen;
        w->sock = socks[k];
        w->deadline_conns = -1;
        spawn_worker(m, slots[k]);
    }
    return 0;
}

static int find_slot(const struct master *m, pid_t pid)
{
    for (int i = 0; i < SHM_MAX_WORKERS; i++)
        if (m->w[i].pid == pid && m->w[i].role != SLOT_FREE)
            return i;
    return -1;
}

static void describe(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "changed state 0x%x", status);
}

/* The dead worker cannot release its connections: the master does, so
 * admission is not left counting sockets nobody holds. */
static int64_t release_slot(struct master *m, int i)
{
    struct worker_slot *slot = &m->shm->slots[i];
    int64_t lost = (int64_t)shm_get(&slot->connections);
    if (lost > 0)
        shm_release(m->shm, lost);
    atomic_store(&slot->connections, 0);
    atomic_store(&slot->state, WORKER_DEAD);
    return lost;
}

/* A freed slot's counters move into shm->gone (so the status totals never
 * go backwards) and the slot is zeroed for its next worker. */
static void free_slot(struct master *m, int i)
{
    struct worker_slot *s = &m->shm->slots[i];
    shm_slot_fold(&m->shm->gone, s);
    memset(s, 0, sizeof *s); /* state WORKER_EMPTY, pid 0 */
    memset(&m->w[i], 0, sizeof m->w[i]);
}

static void retired_exit(struct master *m, int i, const char *how)
{
    struct master_worker *w = &m->w[i];
    int64_t left = w->deadline_conns >= 0 ? w->deadline_conns : 0;
    int64_t drained = w->retire_conns > left ? w->retire_conns - left : 0;
    m->retire.workers++;
    m->retire.drained += (uint64_t)drained;
    m->retire.at_deadline += (uint64_t)left;
    log_info("worker %d (pid %d, generation %u) retired after %.1f s, %s: %lld connections drained,"
             " %lld closed at drain_timeout",
             i, (int)w->pid, w->generation, (master_now_ms() - w->retired_ms) / 1000.0, how,
             (long long)drained, (long long)left);
}

static void reaped(struct master *m, int i, int status)
{
    struct master_worker *w = &m->w[i];
    int64_t now = master_now_ms();
    char how[128];
    describe(status, how, sizeof how);
    int64_t lost = release_slot(m, i);
    pid_t pid = w->pid;
    if (w->role == SLOT_RETIRING) {
        retired_exit(m, i, how);
        free_slot(m, i);
        return;
    }
    w->pid = 0;
    if (m->stop) {
        log_info("worker %d (pid %d) %s", i, (int)pid, how);
        return;
    }
    schedule_respawn(m, i, now);
    m->worker_deaths++;
    shm_add(&m->shm->worker_deaths, 1);
    log_error("worker %d (pid %d, generation %u) %s after %.1f s, %lld connections dropped;"
              " respawning in %lld ms",
              i, (int)pid, w->generation, how, (now - w->started_ms) / 1000.0, (long long)lost,
              (long long)w->delay_ms);
}

void spawn_reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = find_slot(m, pid);
        if (i != -1)
            reaped(m, i, status);
        else if (m->up.child && pid == m->up.child)
            upgrade_reaped(m, status);
        else
            log_warn("reaped unknown child pid %d", (int)pid);
    }
    if (pid == -1 && errno != ECHILD)
        log_error("waitpid(-1, WNOHANG) failed: %s", strerror(errno));
}

void spawn_due(struct master *m)
{
    if (m->stop)
        return;
    int64_t now = master_now_ms();
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        struct master_worker *w = &m->w[i];
        if (w->role == SLOT_SERVING && w->respawn_ms && w->respawn_ms <= now) {
            w->respawn_ms = 0;
            spawn_worker(m, i);
        }
    }
}

static int64_t until(int64_t at, int64_t now)
{
    return at > now ? at - now : 0;
}

int64_t spawn_next_due(const struct master *m, int64_t now)
{
    int64_t next = -1;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        const struct master_worker *w = &m->w[i];
        int64_t d = -1;
        if (w->role == SLOT_SERVING && w->respawn_ms && !m->stop)
            d = until(w->respawn_ms, now);
        else if (w->role == SLOT_RETIRING && w->pid > 0 && !w->killed) {
            int64_t sample = w->retired_ms + m->cfg.drain_timeout;
            d = w->deadline_conns < 0 ? until(sample, now) : until(sample + RETIRE_KILL_MARGIN_MS, now);
        }
        if (d >= 0 && (next == -1 || d < next))
            next = d;
    }
    return next;
}

void spawn_check_retiring(struct master *m)
{
    int64_t now = master_now_ms();
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        struct master_worker *w = &m->w[i];
        if (w->role != SLOT_RETIRING || w->pid <= 0)
            continue;
        int64_t sample = w->retired_ms + m->cfg.drain_timeout;
        /* The worker's own timer sends 1001 at about this moment: what is
         * still open now did not end on its own. */
        if (w->deadline_conns < 0 && now >= sample)
            w->deadline_conns = (int64_t)shm_get(&m->shm->slots[i].connections);
        if (!w->killed && now >= sample + RETIRE_KILL_MARGIN_MS) {
            log_error("worker %d (pid %d, generation %u) still running %lld ms after drain_timeout: SIGKILL",
                      i, (int)w->pid, w->generation, (long long)RETIRE_KILL_MARGIN_MS);
            if (kill(w->pid, SIGKILL) == -1)
                log_warn("kill(%d, SIGKILL) failed: %s", (int)w->pid, strerror(errno));
            w->killed = 1;
        }
    }
}

void spawn_retire(struct master *m, int i)
{
    struct master_worker *w = &m->w[i];
    if (w->role != SLOT_SERVING)
        return;
    if (w->pid <= 0) { /* dead, waiting for a respawn that no longer makes sense */
        free_slot(m, i);
        return;
    }
    w->role = SLOT_RETIRING;
    w->respawn_ms = 0;
    w->retired_ms = master_now_ms();
    w->retire_conns = (int64_t)shm_get(&m->shm->slots[i].connections);
    w->deadline_conns = -1;
    if (kill(w->pid, SIGWINCH) == -1)
        log_warn("kill(%d, SIGWINCH) failed: %s", (int)w->pid, strerror(errno));
}

int spawn_generation_active(const struct master *m, uint32_t gen)
{
    int n = 0;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        const struct master_worker *w = &m->w[i];
        if (w->role != SLOT_SERVING || w->generation != gen)
            continue;
        if (w->pid <= 0 || atomic_load(&m->shm->slots[i].state) != WORKER_ACTIVE)
            return 0;
        n++;
    }
    return n > 0;
}

int spawn_signal_all(struct master *m, int sig)
{
    int n = 0;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        if (m->w[i].role == SLOT_FREE || m->w[i].pid <= 0)
            continue;
        if (kill(m->w[i].pid, sig) == -1)
            log_warn("kill(%d, %s) failed: %s", (int)m->w[i].pid, sigabbrev_np(sig), strerror(errno));
        else
            n++;
    }
    return n;
}

int spawn_live(const struct master *m)
{
    int n = 0;
    for (int i = 0; i < SHM_MAX_WORKERS; i++)
        n += m->w[i].role != SLOT_FREE && m->w[i].pid > 0;
    return n;
}
