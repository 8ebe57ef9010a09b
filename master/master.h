/* master.h: the supervising process. It owns the configuration, the
 * rlimits, the listening sockets, the shared-memory block and the status
 * socket; it forks workers into slots and never touches a connection.
 *
 * The master is a small poll() loop over a signalfd and the status socket,
 * with a timeout for respawn back-off, generation switches and deadlines.
 * It runs no libev loop, so a forked worker inherits no event-loop state.
 *
 * Workers come in generations. A reload that hot settings cannot absorb
 * (workers, listen, ...) starts generation G+1 in free slots, on the
 * sockets the master already holds; once all of it is active the older
 * generations are retired (SIGWINCH: stop accepting, drain) and sockets
 * nobody serves any more are closed. docs/reload.md tells the whole story. */
#ifndef WSMILL_MASTER_H
#define WSMILL_MASTER_H
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/privs.h"
#include "../common/history.h"
#include "../common/shm.h"

/* A listen address change keeps the old sockets open while the new ones
 * start, so the table holds two full sets. */
#define MASTER_MAX_SOCKETS (2 * SHM_MAX_WORKERS)
#define MASTER_ADDR_MAX    64

enum master_stop { MASTER_RUNNING, MASTER_STOP_GRACEFUL, MASTER_STOP_FAST };

/* What the master does with a slot (shm's state is what the worker says). */
enum slot_role {
    SLOT_FREE = 0, /* no worker, no pending respawn */
    SLOT_SERVING,  /* a worker of a serving or starting generation: respawned if it dies */
    SLOT_RETIRING, /* told to retire (SIGWINCH): freed when it exits, never respawned */
};

/* The master's private view of one worker slot (shm holds the public one). */
struct master_worker {
    pid_t pid; /* 0 when no process runs in this slot */
    enum slot_role role;
    uint32_t generation;    /* the worker generation this slot belongs to */
    int sock;               /* index into master.socks */
    int64_t started_ms;     /* monotonic */
    int64_t respawn_ms;     /* monotonic time of the pending respawn, 0 = none */
    int64_t delay_ms;       /* current back-off */
    int64_t retired_ms;     /* SIGWINCH sent (monotonic), 0 = not retiring */
    int64_t retire_conns;   /* connections when it was retired */
    int64_t deadline_conns; /* still open at drain_timeout; -1 = not reached yet */
    int killed;             /* SIGKILL sent after the retire deadline */
};

/* One listening socket; fd -1 = unused entry. */
struct listener {
    int fd;
    char addr[MASTER_ADDR_MAX]; /* "127.0.0.1:8080", "[::1]:8080" */
};

/* The last SIGHUP, for the status socket and `wsmill.sh reload`. */
struct reload_info {
    uint64_t seq;          /* SIGHUPs handled, failed ones included */
    int ok;                /* 0: refused, the old configuration runs on */
    uint32_t generation;   /* worker generation it started; 0 = hot only */
    int64_t at;            /* unix seconds */
    int64_t begun_ms;      /* monotonic, when the signal was handled */
    int64_t serving_ms;    /* signal to new generation active; -1 = not yet */
    int retired_workers;   /* older-generation workers retired at the switch */
    int64_t retired_conns; /* connections they held then */
    char changed[512];
    char error[768];
};

/* Binary upgrade state (USR2 / WINCH). */
struct upgrade {
    char exe[PATH_MAX];                /* our binary, resolved at start */
    char **argv;                       /* our arguments, for the exec */
    pid_t child;                       /* the new master, 0 = none */
    int handover;                      /* WINCH: retiring everything, exit when done */
    int oldbin_fd;                     /* status socket at status_socket.oldbin, or -1 */
    int status_inherited;              /* we took status_fd over from an old master */
    uint32_t started, failed, refused; /* USR2s that started a new master, ... */
    char last_error[512];              /* why the last one was refused or failed */
};

/* Totals of retired workers and of workers whose slot was freed. */
struct retire_stats {
    uint64_t workers;     /* retired workers that exited */
    uint64_t drained;     /* their connections that ended before drain_timeout */
    uint64_t at_deadline; /* their connections still open at drain_timeout (sent 1001) */
};

struct master {
    const char *conf_path;
    char conf_real[PATH_MAX]; /* conf_path made absolute, for status and `reload -c` */
    int max_conns_auto;       /* the file says max_connections = auto */
    int ready_due;            /* tell the service manager READY=1 once the newest generation serves */
    struct config cfg;
    struct privs privs;  /* the user workers switch to (config key user) */
    int nworkers;        /* size of the newest generation */
    uint32_t generation; /* newest worker generation, 1 at start */
    int switching;       /* the newest generation is not all active yet */
    int migrate;         /* net.ipv4.tcp_migrate_req is on */
    struct listener socks[MASTER_MAX_SOCKETS];
    int cur_socks[SHM_MAX_WORKERS];    /* socks entries of the newest generation, in order */
    int tls_socks[MASTER_MAX_SOCKETS]; /* socks[i]'s twin on tls_listen, -1 = none (tls_listen.c) */
    struct shm *shm;
    struct history *history; /* the history store (a memfd mapping: survives a binary upgrade) */
    int history_fd;
    int sig_fd;
    int status_fd;
    int status_paused; /* the status socket is the new master's to serve */
    enum master_stop stop;
    int64_t deadline_ms; /* stop: when stragglers get SIGKILL; 0 = none */
    int killed;          /* SIGKILL already sent */
    int give_up;         /* workers survived SIGKILL: exit without them */
    struct reload_info reload;
    struct upgrade up;
    struct retire_stats retire;
    uint64_t worker_deaths; /* serving workers that died and were respawned */
    struct master_worker w[SHM_MAX_WORKERS];
};

/* Runs the master in the foreground with the config at path until a stop
 * signal has been handled; argv is kept for a binary upgrade. Returns the
 * process exit status. */
int master_run(const char *conf_path, char **argv);

/* With a user to switch to, gives the log file to that user, so workers
 * can reopen it (SIGUSR1, a new log_file) after their switch. */
void master_log_chown(const struct master *m);

/* Monotonic milliseconds, for back-off and deadlines. */
static inline int64_t master_now_ms(void)
{
    return (int64_t)(mono_ns() / 1000000);
}

/* spawn.c: slots, starting, reaping, retiring and signalling workers. */

/* Claims n free slots for a new generation serving socks[0..n-1] and
 * forks them. Returns 0, or -1 (nothing claimed) when fewer than n slots
 * are free. */
int spawn_generation(struct master *m, uint32_t gen, int n, const int *socks);
/* How many slots are free. */
int spawn_free_slots(const struct master *m);
/* Forks the worker of slot i on its socket; on fork failure schedules a retry. */
void spawn_worker(struct master *m, int i);
/* Reaps every exited child: serving slots are respawned (not while
 * stopping), retiring ones freed; the upgrade child goes to upgrade_reaped. */
void spawn_reap(struct master *m);
/* Starts the workers whose back-off has expired. */
void spawn_due(struct master *m);
/* Milliseconds until the next respawn or retire deadline, or -1 when none. */
int64_t spawn_next_due(const struct master *m, int64_t now);
/* Retire deadlines: samples what is left at drain_timeout and SIGKILLs a
 * retiring worker that outlived it by a wide margin. */
void spawn_check_retiring(struct master *m);
/* Retires slot i: SIGWINCH to a live worker, freeing a dead one. */
void spawn_retire(struct master *m, int i);
/* 1 when every slot of generation gen runs and its worker says active. */
int spawn_generation_active(const struct master *m, uint32_t gen);
/* Sends sig to every live worker; returns how many were signalled. */
int spawn_signal_all(struct master *m, int sig);
/* How many workers are alive (forked and not yet reaped). */
int spawn_live(const struct master *m);

/* reload.c: SIGHUP and the switch to a new generation. */

/* SIGHUP: loads and validates the file; applies hot keys in place and
 * starts a new generation for the rest. A file that fails any check
 * leaves everything as it was (logged, and in the status JSON). */
void reload_run(struct master *m);
/* Called every loop turn: when the newest generation is all active,
 * retires the older ones and closes the sockets nobody serves any more. */
void reload_check_switch(struct master *m);
/* Retires every worker (binary upgrade handover); returns how many. */
int reload_retire_all(struct master *m);
/* Starts a new generation like the newest one, on its sockets (after a
 * failed handover the master serves again). */
void reload_restart_generation(struct master *m);

/* upgrade.c: the binary upgrade (USR2) and its handover (WINCH). */

/* At start: remembers our binary and arguments for a later exec. */
void upgrade_init(struct master *m, char **argv);
/* SIGUSR2: renames the pid file to .oldbin, moves our status to
 * status_socket.oldbin and execs our binary with the listening sockets
 * and the status socket passed in WSMILL_INHERIT. */
void upgrade_start(struct master *m);
/* SIGWINCH: once a new master runs, retires all our workers; the loop
 * exits when they are gone. */
void upgrade_handover(struct master *m);
/* The new master exited: while we have not finished the handover, take
 * the pid file and the status socket back and keep (or start) serving. */
void upgrade_reaped(struct master *m, int status);
/* At exit: leave the pid file and status socket to the new master. */
void upgrade_cleanup(struct master *m);

/* upgrade.c, the new master's side: WSMILL_INHERIT. */

/* Parses and removes WSMILL_INHERIT. Returns how many listening fds it
 * names (into fds, at most max), *status_fd the status socket and
 * *history_fd the history store's memfd (each -1 when absent); 0 and -1
 * when the variable is absent; -1 after logging when malformed. */
int inherit_parse(int *fds, int max, int *status_fd, int *history_fd);

/* pidfile.c: the pid file. An empty path disables it. */

/* Returns the pid a file names if that process is alive, else 0. */
pid_t pidfile_live(const char *path);
/* Writes our pid; returns 0, or -1 after logging. */
int pidfile_write(const char *path);
/* Removes the file if it still names us. */
void pidfile_remove(const char *path);
/* Renames from to to if from names us; returns 0, or -1 after logging. */
int pidfile_rename(const char *from, const char *to);

#endif
