/* net.h: listening addresses and sockets, shared by the master's listen
 * sockets and the workers' publish API listener. */
#ifndef WSMILL_NET_H
#define WSMILL_NET_H
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* host: an IPv4 or IPv6 literal (brackets optional), "localhost", or "*" /
 * "" for every IPv4 address. Returns the sockaddr size, or 0 when host is
 * none of these. */
socklen_t net_resolve(const char *host, uint16_t port, union sockaddr_any *a);
/* "HOST:PORT" with HOST as above and PORT 1-65535. Returns the sockaddr
 * size, or 0. */
socklen_t net_parse_hostport(const char *spec, union sockaddr_any *a);
/* A non-blocking SO_REUSEPORT listening socket on a. Errors are logged
 * naming `what` (the setting and address). Returns the fd, or -1. */
int net_listen(const union sockaddr_any *a, socklen_t alen, const char *what, int backlog);
/* "1.2.3.4:80" or "[::1]:80". */
void net_name(const union sockaddr_any *a, char *buf, size_t len);

#endif
