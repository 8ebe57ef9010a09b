/* listen.h: the master's listening sockets, one per worker, all bound to
 * the same address with SO_REUSEPORT so the kernel spreads connections
 * across workers. They are made before the first fork and stay open in the
 * master, so a respawned worker takes over its predecessor's accept queue. */
#ifndef WSMILL_LISTEN_H
#define WSMILL_LISTEN_H
#include "../common/config.h"

/* Opens n non-blocking listening sockets on cfg->listen_host/listen_port
 * into fds. Port 0 picks one free port shared by all n. Returns 0, or -1
 * after logging the address and errno (nothing is left open). */
int listen_open(const struct config *cfg, int n, int *fds);

/* Closes the n sockets in fds. */
void listen_close(int *fds, int n);

#endif
