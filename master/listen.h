/* listen.h: the master's listening sockets, one per worker, all bound to
 * the same address with SO_REUSEPORT so the kernel spreads connections
 * across workers. They are made before the first fork and stay open in the
 * master, so a respawned worker, or a worker of a new generation, takes
 * over its predecessor's accept queue. */
#ifndef WSMILL_LISTEN_H
#define WSMILL_LISTEN_H
#include <stddef.h>
#include "../common/config.h"

struct listener;

/* Opens n non-blocking listening sockets on cfg->listen_host/listen_port
 * into fds. Port 0 picks one free port shared by all n. Returns 0, or -1
 * after logging the address and errno (nothing is left open). */
int listen_open(const struct config *cfg, int n, int *fds);

/* Opens n more sockets into fds that join model's SO_REUSEPORT group
 * (same address and port). Returns 0, or -1 after logging (nothing left
 * open). */
int listen_open_like(int model, int n, int *fds);

/* 1 when fd is a listening TCP socket bound to cfg's address (any port
 * when cfg's port is 0), else 0. */
int listen_matches(const struct config *cfg, int fd);

/* Writes fd's bound address as "HOST:PORT" ("[HOST]:PORT" for IPv6). */
void listen_name(int fd, char *buf, size_t len);

/* Closes the n sockets in fds and sets them to -1. */
void listen_close(int *fds, int n);

/* Stores fd in the first unused entry of tab (max entries, fd -1 =
 * unused) with its address; returns the index, or -1 when full. */
int listen_table_add(struct listener *tab, int max, int fd);

/* Makes sure net.ipv4.tcp_migrate_req is 1, so that a closed listening
 * socket hands its queued connections to the rest of its SO_REUSEPORT
 * group instead of resetting them. Returns 1 when it is on, 0 after
 * logging why not. */
int listen_enable_migrate(void);

#endif
