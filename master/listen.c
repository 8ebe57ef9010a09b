/* listen.c: resolve the listen address and create the SO_REUSEPORT group. */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"

/* The kernel clamps the backlog to net.core.somaxconn; ask for the most. */
#define LISTEN_BACKLOG 65535

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* Accepts an IPv4 or IPv6 literal (brackets optional), "localhost", and
 * "*", "" or "0.0.0.0" for every IPv4 address. Returns the sockaddr size,
 * or 0 when host is none of these. */
static socklen_t parse_host(const char *host, uint16_t port, union sockaddr_any *a)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t len = strlen(host);
    memset(a, 0, sizeof *a);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof buf) {
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
        return sizeof a->in4;
    }
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        return sizeof a->in6;
    }
    return 0;
}

static int open_one(const union sockaddr_any *a, socklen_t alen, const char *name)
{
    int one = 1;
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        log_error("socket() for %s failed: %s", name, strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1) {
        log_error("setsockopt(%s, SO_REUSEADDR/SO_REUSEPORT) failed: %s", name, strerror(errno));
        goto fail;
    }
    if (bind(fd, &a->sa, alen) == -1) {
        log_error("bind(%s) failed: %s", name, strerror(errno));
        goto fail;
    }
    if (listen(fd, LISTEN_BACKLOG) == -1) {
        log_error("listen(%s, %d) failed: %s", name, LISTEN_BACKLOG, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* Port 0 asks the kernel for a port: learn it from the first socket so
 * the others join the same group instead of each getting their own. */
static void learn_port(int fd, union sockaddr_any *a)
{
    union sockaddr_any got;
    socklen_t len = sizeof got;
    if (getsockname(fd, &got.sa, &len) == -1)
        return;
    if (a->sa.sa_family == AF_INET)
        a->in4.sin_port = got.in4.sin_port;
    else
        a->in6.sin6_port = got.in6.sin6_port;
}

static void name_addr(const union sockaddr_any *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, ntohs(a->in4.sin_port));
    } else {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%u", ip, ntohs(a->in6.sin6_port));
    }
}

static void note_backlog_clamp(void)
{
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
    int max = 0;
    if (!f)
        return;
    if (fscanf(f, "%d", &max) == 1 && max < LISTEN_BACKLOG)
        log_notice("listen backlog %d clamped to net.core.somaxconn %d"
                   " (sysctl -w net.core.somaxconn=%d to raise)",
                   LISTEN_BACKLOG, max, LISTEN_BACKLOG);
    fclose(f);
}

int listen_open(const struct config *cfg, int n, int *fds)
{
    union sockaddr_any a;
    char name[INET6_ADDRSTRLEN + 16];
    socklen_t alen = parse_host(cfg->listen_host, cfg->listen_port, &a);
    if (alen == 0) {
        log_error("listen %s: host \"%s\" is not an IPv4/IPv6 address, localhost or *", cfg->listen,
                  cfg->listen_host);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        name_addr(&a, name, sizeof name);
        fds[i] = open_one(&a, alen, name);
        if (fds[i] == -1) {
            listen_close(fds, i);
            return -1;
        }
        if (i == 0 && cfg->listen_port == 0)
            learn_port(fds[0], &a);
    }
    name_addr(&a, name, sizeof name);
    log_notice("listening on %s with %d SO_REUSEPORT socket%s", name, n, n == 1 ? "" : "s");
    note_backlog_clamp();
    return 0;
}

void listen_close(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] != -1)
            close(fds[i]);
        fds[i] = -1;
    }
}
