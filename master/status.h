/* status.h: the status socket. A unix stream socket in the master's poll
 * loop; every connection receives one JSON snapshot of the shared-memory
 * block and is closed. `wsmill status` is the client. */
#ifndef WSMILL_STATUS_H
#define WSMILL_STATUS_H
#include <stdint.h>
#include <stdio.h>
#include "../common/shm.h"

/* Binds and listens on path (a stale socket file is replaced) with mode
 * 0600. Returns the non-blocking listening fd, or -1 after logging. */
int status_listen(const char *path);

struct master;

/* Accepts every pending connection on lfd and writes each the master's
 * snapshot: totals, every occupied worker slot, the last reload, the
 * upgrade state. Never blocks for more than a short send timeout. */
void status_serve(int lfd, struct master *m);

/* 1 when fd is a listening unix socket bound to path (one inherited from
 * an old master), else 0. */
int status_adopt(int fd, const char *path);

/* Closes lfd and removes path (lfd -1: nothing). */
void status_close(int lfd, const char *path);

/* Client: connects to path and copies the snapshot to out. Returns 0, or
 * 1 after printing why to stderr. */
int status_query(const char *path, FILE *out);

/* Client: reads the snapshot into *out (NUL-terminated, the caller frees
 * it) and its length into *outlen. Returns 0, or -1 after printing why to
 * stderr. */
int status_fetch(const char *path, char **out, size_t *outlen);

/* 1 when a process accepts connections on path (a live master). */
int status_probe(const char *path);

#endif
