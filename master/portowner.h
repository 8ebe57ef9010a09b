/* portowner.h: who listens on a TCP address. SO_REUSEPORT lets a second
 * process of the same user join a listening group, so binding alone does
 * not tell a master that another server already serves its port. The
 * master asks before it opens (or adds) a listening group: a probe bind
 * without SO_REUSEPORT fails with EADDRINUSE when anything listens there,
 * and /proc names the processes that hold such a socket. */
#ifndef WSMILL_PORTOWNER_H
#define WSMILL_PORTOWNER_H
#include <stddef.h>
#include <sys/types.h>
#include "../common/config.h"
#include "../common/net.h"

/* Not closed: two masters started in the same instant could both pass the
 * probe before either listens; the pid file (same files) narrows that
 * further. A start a moment later is refused. */

#define PORTOWNER_MAX_PIDS 8

/* One line of /proc/net/tcp or /proc/net/tcp6. */
struct portowner_entry {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network order; 4 bytes for AF_INET */
    unsigned port;
    int listening; /* state 0A */
    unsigned long inode;
};

/* Parses one data line of /proc/net/tcp{,6} (the header line and anything
 * malformed give -1). Pure: no I/O. Returns 0 and fills e, or -1. */
int portowner_parse_line(const char *line, int family, struct portowner_entry *e);

/* 1 when a listening socket e conflicts with binding a (same port, and the
 * same address or a wildcard on either side), else 0. */
int portowner_conflicts(const struct portowner_entry *e, const union sockaddr_any *a);

/* 1 when something listens on a (a probe bind without SO_REUSEPORT fails
 * with EADDRINUSE), 0 when the address is free or another error would
 * show at the real bind. Port 0 is always free. */
int portowner_in_use(const union sockaddr_any *a, socklen_t alen);

/* Fills pids (ascending, at most max) with the processes this user can
 * inspect that hold a listening socket conflicting with a; returns how
 * many. */
int portowner_find(const union sockaddr_any *a, pid_t *pids, int max);

/* Checks a before a master binds it. family_root: the master whose
 * sockets are not a conflict (ourselves, or the old master during a
 * binary upgrade); it and its children may hold a. Returns 0 when a may
 * be bound, or -1 with "ADDRESS: address already in use by pid N (comm),
 * ..." in err. what names the setting ("listen", "publish_listen"). */
int portowner_check(const char *what, const union sockaddr_any *a, socklen_t alen, pid_t family_root,
                    char *err, size_t errlen);

/* portowner_check for every listener of cfg (listen, publish_listen,
 * tls_listen);
 * with old (a reload), only for addresses that changed. Returns 0, or -1
 * with the first conflict in err. */
int portowner_check_config(const struct config *cfg, const struct config *old, pid_t family_root, char *err,
                           size_t errlen);

#endif
