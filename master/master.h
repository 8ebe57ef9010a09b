/* master.h: the supervising process. It owns the configuration, the
 * rlimits, the listening sockets, the shared-memory block and the status
 * socket; it forks one worker per slot and never touches a connection.
 *
 * The master is a small poll() loop over a signalfd and the status socket,
 * with a timeout for respawn back-off and stop deadlines. It runs no libev
 * loop, so a forked worker inherits no event-loop state. */
#ifndef WSMILL_MASTER_H
#define WSMILL_MASTER_H
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "../common/config.h"
#include "../common/shm.h"

enum master_stop { MASTER_RUNNING, MASTER_STOP_GRACEFUL, MASTER_STOP_FAST };

/* The master's private view of one worker slot (shm holds the public one). */
struct master_worker {
    pid_t pid;           /* 0 when no process runs in this slot */
    uint32_t generation; /* how many times this slot has been started */
    int64_t started_ms;  /* monotonic */
    int64_t respawn_ms;  /* monotonic time of the pending respawn, 0 = none */
    int64_t delay_ms;    /* current back-off */
};

struct master {
    const char *conf_path;
    struct config cfg;
    int nworkers;
    int listen_fds[SHM_MAX_WORKERS];
    struct shm *shm;
    int sig_fd;
    int status_fd;
    enum master_stop stop;
    int64_t deadline_ms; /* stop: when stragglers get SIGKILL; 0 = none */
    int killed;          /* SIGKILL already sent */
    int give_up;         /* workers survived SIGKILL: exit without them */
    struct master_worker w[SHM_MAX_WORKERS];
};

/* Runs the master in the foreground with the config at path until a stop
 * signal has been handled; returns the process exit status. */
int master_run(const char *conf_path);

/* Monotonic milliseconds, for back-off and deadlines. */
static inline int64_t master_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* spawn.c: starting, reaping and signalling workers. */

/* Forks worker i on listening socket i; on fork failure schedules a retry. */
void spawn_worker(struct master *m, int i);
/* Reaps every exited child, updates its slot and schedules its respawn
 * (none while stopping). */
void spawn_reap(struct master *m);
/* Starts the workers whose back-off has expired. */
void spawn_due(struct master *m);
/* Milliseconds until the next pending respawn, or -1 when none. */
int64_t spawn_next_due(const struct master *m, int64_t now);
/* Sends sig to every live worker; returns how many were signalled. */
int spawn_signal_all(struct master *m, int sig);
/* How many workers are alive (forked and not yet reaped). */
int spawn_live(const struct master *m);

/* pidfile.c: the pid file. An empty path disables it. */

/* Returns the pid a file names if that process is alive, else 0. */
pid_t pidfile_live(const char *path);
/* Writes our pid; returns 0, or -1 after logging. */
int pidfile_write(const char *path);
/* Removes the file if it still names us. */
void pidfile_remove(const char *path);

#endif
