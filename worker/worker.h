/* worker.h: the entry point the master calls in a freshly forked child.
 * A worker owns one SO_REUSEPORT listening socket and the connections it
 * accepts. Workers share nothing but the shared-memory block: a publish
 * with broker = local is a record in its ring, and a worker that sleeps is
 * woken by the publisher with SIGURG (worker/pubsub/broker_local.c); they
 * exchange nothing else. Signals from the master:
 * SIGTERM drain (stop accepting, close 1001, wait up to drain_timeout),
 * SIGWINCH retire (stop accepting; keep serving established connections
 * until they close on their own or drain_timeout passes, then close 1001
 * and exit: a new generation has taken over the listening socket),
 * SIGQUIT exit at once, SIGHUP re-read settings from the shared block,
 * SIGUSR1 reopen the log file. */
#ifndef WSMILL_WORKER_H
#define WSMILL_WORKER_H
#include <stdint.h>
#include "../common/history.h"
#include "../common/privs.h"
#include "../common/shm.h"

struct worker_spec {
    int id;              /* slot index in shm->slots */
    uint32_t generation; /* master's worker generation */
    int listen_fd;       /* non-blocking, listening, SO_REUSEPORT */
    int tls_fd;          /* its twin on tls_listen, or -1 */
    struct shm *shm;
    struct history *history;   /* the history store (common/history.h), shared by every worker */
    const struct privs *privs; /* the user to switch to once sockets are bound */
};

/* Runs the worker's event loop until it is told to stop; returns the exit
 * status for _exit(). The caller has closed every descriptor the worker
 * must not own, and left SIGTERM, SIGQUIT, SIGHUP, SIGUSR1 and SIGWINCH
 * blocked: the loop reads them through a signalfd (EVFLAG_SIGNALFD), so one
 * sent before the watchers exist is delivered, not fatal. */
int worker_run(const struct worker_spec *spec);

#endif
