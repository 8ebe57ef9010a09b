/* listen.c: resolve the listen address, create the SO_REUSEPORT group,
 * check sockets inherited from an old master, and the sysctl that keeps a
 * closed socket's queue alive. */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/net.h"
#include "master.h"

/* The kernel clamps the backlog to net.core.somaxconn; ask for the most. */
#define LISTEN_BACKLOG 65535

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
    char name[INET6_ADDRSTRLEN + 16], what[INET6_ADDRSTRLEN + 24];
    socklen_t alen = net_resolve(cfg->listen_host, cfg->listen_port, &a);
    if (alen == 0) {
        log_error("listen %s: host \"%s\" is not an IPv4/IPv6 address, localhost or *", cfg->listen,
                  cfg->listen_host);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        net_name(&a, name, sizeof name);
        snprintf(what, sizeof what, "listen %s", name);
        fds[i] = net_listen(&a, alen, what, LISTEN_BACKLOG);
        if (fds[i] == -1) {
            listen_close(fds, i);
            return -1;
        }
        if (i == 0 && cfg->listen_port == 0)
            learn_port(fds[0], &a);
    }
    net_name(&a, name, sizeof name);
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

int listen_open_like(int model, int n, int *fds)
{
    union sockaddr_any a;
    socklen_t alen = sizeof a;
    char name[INET6_ADDRSTRLEN + 16];
    if (getsockname(model, &a.sa, &alen) == -1) {
        log_error("getsockname(listening socket %d) failed: %s", model, strerror(errno));
        return -1;
    }
    net_name(&a, name, sizeof name);
    for (int i = 0; i < n; i++) {
        fds[i] = net_listen(&a, alen, name, LISTEN_BACKLOG);
        if (fds[i] == -1) {
            listen_close(fds, i);
            return -1;
        }
    }
    return 0;
}

static int same_host(const union sockaddr_any *want, const union sockaddr_any *got)
{
    if (want->sa.sa_family != got->sa.sa_family)
        return 0;
    if (want->sa.sa_family == AF_INET)
        return want->in4.sin_addr.s_addr == got->in4.sin_addr.s_addr;
    return !memcmp(&want->in6.sin6_addr, &got->in6.sin6_addr, sizeof want->in6.sin6_addr);
}

int listen_matches(const struct config *cfg, int fd)
{
    union sockaddr_any want, got;
    socklen_t len = sizeof got;
    int on = 0, type = 0;
    socklen_t olen = sizeof on, tlen = sizeof type;
    if (net_resolve(cfg->listen_host, cfg->listen_port, &want) == 0)
        return 0;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == -1 || !on ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == -1 || type != SOCK_STREAM ||
        getsockname(fd, &got.sa, &len) == -1 || !same_host(&want, &got))
        return 0;
    uint16_t port = got.sa.sa_family == AF_INET ? ntohs(got.in4.sin_port) : ntohs(got.in6.sin6_port);
    return cfg->listen_port == 0 || cfg->listen_port == port;
}

void listen_name(int fd, char *buf, size_t len)
{
    union sockaddr_any a;
    socklen_t alen = sizeof a;
    if (getsockname(fd, &a.sa, &alen) == -1 || (a.sa.sa_family != AF_INET && a.sa.sa_family != AF_INET6)) {
        snprintf(buf, len, "?");
        return;
    }
    net_name(&a, buf, len);
}

int listen_table_add(struct listener *tab, int max, int fd)
{
    for (int i = 0; i < max; i++) {
        if (tab[i].fd != -1)
            continue;
        tab[i].fd = fd;
        listen_name(fd, tab[i].addr, sizeof tab[i].addr);
        return i;
    }
    return -1;
}

#define MIGRATE_SYSCTL "/proc/sys/net/ipv4/tcp_migrate_req"

int listen_enable_migrate(void)
{
    char v = 0;
    int fd = open(MIGRATE_SYSCTL, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        log_warn("open(%s) failed: %s: this kernel (before 5.14?) cannot migrate the queue of a closed"
                 " listening socket; connections queued on a socket retired by a reload that shrinks"
                 " workers will be reset",
                 MIGRATE_SYSCTL, strerror(errno));
        return 0;
    }
    ssize_t n = read(fd, &v, 1);
    close(fd);
    if (n == 1 && v == '1')
        return 1;
    fd = open(MIGRATE_SYSCTL, O_WRONLY | O_CLOEXEC);
    if (fd == -1 || write(fd, "1\n", 2) != 2) {
        log_warn("writing 1 to %s failed: %s; connections queued on a socket retired by a reload that"
                 " shrinks workers will be reset (sysctl -w net.ipv4.tcp_migrate_req=1 to avoid it)",
                 MIGRATE_SYSCTL, strerror(errno));
        if (fd != -1)
            close(fd);
        return 0;
    }
    close(fd);
    log_notice("net.ipv4.tcp_migrate_req was 0, set to 1: a retired listening socket hands its queued"
               " connections to the others instead of resetting them");
    return 1;
}
