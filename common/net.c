/* net.c: listening addresses and sockets (see net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

socklen_t net_resolve(const char *host, uint16_t port, union sockaddr_any *a)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t len = strlen(host);
    memset(a, 0, sizeof(*a));
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        host = buf;
    }
    if (!strcmp(host, "*") || !strcmp(host, ""))
        host = "0.0.0.0";
    else if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a->in4.sin_addr) == 1) {
        a->in4.sin_family = AF_INET;
        a->in4.sin_port = htons(port);
        return sizeof(a->in4);
    }
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        return sizeof(a->in6);
    }
    return 0;
}

socklen_t net_parse_hostport(const char *spec, union sockaddr_any *a)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        return 0;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
        return 0;
    return net_resolve(host, (uint16_t)port, a);
}

int net_listen(const union sockaddr_any *a, socklen_t alen, const char *what, int backlog)
{
    int one = 1;
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        log_error("socket() for %s failed: %s", what, strerror(errno));
        return -1;
    }
    /* Every socket of the group binds the same address; the kernel spreads
     * connections over them. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) {
        log_error("setsockopt(%s, SO_REUSEADDR/SO_REUSEPORT) failed: %s", what, strerror(errno));
        goto fail;
    }
    if (bind(fd, &a->sa, alen) == -1) {
        log_error("bind(%s) failed: %s", what, strerror(errno));
        goto fail;
    }
    if (listen(fd, backlog) == -1) {
        log_error("listen(%s, %d) failed: %s", what, backlog, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

void net_name(const union sockaddr_any *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(a->in4.sin_port));
    } else {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(a->in6.sin6_port));
    }
}
