/* spawn.c: forking workers, reaping them, and respawning with back-off.
 *
 * The master is the single writer of a slot while no worker runs in it:
 * before fork (state, generation, start time) and after the worker died
 * (state, connections). The worker writes the slot in between. */
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
    struct worker_spec spec = {
        .id = i,
        .generation = m->w[i].generation,
        .listen_fd = m->listen_fds[i],
        .shm = m->shm,
    };
    close(m->sig_fd);
    if (m->status_fd != -1)
        close(m->status_fd);
    for (int j = 0; j < m->nworkers; j++)
        if (j != i)
            close(m->listen_fds[j]);
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
    w->generation++;
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
    log_info("worker %d started: pid %d, generation %u", i, (int)pid, w->generation);
}

static int find_slot(const struct master *m, pid_t pid)
{
    for (int i = 0; i < m->nworkers; i++)
        if (m->w[i].pid == pid)
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

static void reaped(struct master *m, int i, int status)
{
    struct master_worker *w = &m->w[i];
    int64_t now = master_now_ms();
    char how[128];
    describe(status, how, sizeof how);
    int64_t lost = release_slot(m, i);
    pid_t pid = w->pid;
    w->pid = 0;
    if (m->stop) {
        log_info("worker %d (pid %d) %s", i, (int)pid, how);
        return;
    }
    schedule_respawn(m, i, now);
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
        if (i == -1)
            log_warn("reaped unknown child pid %d", (int)pid);
        else
            reaped(m, i, status);
    }
    if (pid == -1 && errno != ECHILD)
        log_error("waitpid(-1, WNOHANG) failed: %s", strerror(errno));
}

void spawn_due(struct master *m)
{
    if (m->stop)
        return;
    int64_t now = master_now_ms();
    for (int i = 0; i < m->nworkers; i++) {
        if (m->w[i].respawn_ms && m->w[i].respawn_ms <= now) {
            m->w[i].respawn_ms = 0;
            spawn_worker(m, i);
        }
    }
}

int64_t spawn_next_due(const struct master *m, int64_t now)
{
    int64_t next = -1;
    if (m->stop)
        return -1;
    for (int i = 0; i < m->nworkers; i++) {
        int64_t at = m->w[i].respawn_ms;
        if (!at)
            continue;
        int64_t d = at > now ? at - now : 0;
        if (next == -1 || d < next)
            next = d;
    }
    return next;
}

int spawn_signal_all(struct master *m, int sig)
{
    int n = 0;
    for (int i = 0; i < m->nworkers; i++) {
        if (m->w[i].pid <= 0)
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
    for (int i = 0; i < m->nworkers; i++)
        n += m->w[i].pid > 0;
    return n;
}
