/* tls_listen.h: the master's tls_listen sockets. Each entry of the
 * listening-socket table (m->socks) gets a TLS twin on tls_listen, in the
 * same SO_REUSEPORT fashion: opened with it, handed to the same worker,
 * closed with it. Like the plain ones they stay open in the master, so a
 * respawned worker takes over its predecessor's TLS accept queue. */
#ifndef WSMILL_TLS_LISTEN_H
#define WSMILL_TLS_LISTEN_H

struct master;
struct config;

/* Opens socket-table entry s's twin on cfg->tls_listen (nothing to do when
 * tls_listen is empty or the twin exists). Returns 0, or -1 after logging
 * the address and errno. */
int tls_listen_twin(struct master *m, const struct config *cfg, int s);
/* Closes entry s's twin, if any. */
void tls_listen_untwin(struct master *m, int s);

#endif
