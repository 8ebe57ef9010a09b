/* proxy.c: the PROXY protocol step before a connection's transport. */
#include "proxy.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/cidr.h"
#include "../../common/log.h"
#include "../../common/net.h"
#include "../../common/proxy_proto.h"
#include "../conn/conn.h"

void proxy_reload(struct worker *w)
{
    char err[256];
    if (!w->trusted && !(w->trusted = calloc(1, sizeof *w->trusted))) {
        log_error("out of memory for trusted_proxies: no peer is trusted");
        return;
    }
    /* config_validate parsed it already; a failure here keeps nobody. */
    if (cidr_list_parse(w->cfg.trusted_proxies, w->trusted, err, sizeof err) == -1) {
        log_error("trusted_proxies: %s: no peer is trusted", err);
        w->trusted->n = 0;
    }
}

static int refuse(struct worker *w, const char *why, int fd)
{
    shm_add(&w->slot->proxy_refused, 1);
    log_debug("fd %d: PROXY protocol: %s; closing without a response", fd, why);
    return -1;
}

int proxy_trusted(struct worker *w, const struct sockaddr *peer)
{
    int ok = 0;
    if (w->trusted && peer->sa_family == AF_INET)
        ok = cidr_list_match(w->trusted, 4, (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr);
    else if (w->trusted && peer->sa_family == AF_INET6)
        ok = cidr_list_match(w->trusted, 6, ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr);
    if (!ok)
        refuse(w, "peer not in trusted_proxies", -1);
    return ok;
}

static void to_sockaddr(const struct pp_addr *a, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (a->family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)out;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, a->src, 4);
        s->sin_port = htons(a->src_port);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)out;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a->src, 16);
        s->sin6_port = htons(a->src_port);
    }
}

static void set_lowat(int fd, int bytes)
{
    if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes) == -1)
        log_debug("setsockopt(%d, SO_RCVLOWAT, %d) failed: %s", fd, bytes, strerror(errno));
}

int proxy_read(struct conn *c, struct sockaddr_storage *out)
{
    struct worker *w = conn_worker(c);
    int fd = conn_fd(c);
    uint8_t buf[PP_MAX];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return refuse(w, "peer closed before a complete header", fd);
    if (n == -1)
        return errno == EAGAIN || errno == EINTR ? 0 : refuse(w, strerror(errno), fd);
    struct pp_addr a;
    const char *why;
    ssize_t hl = pp_parse(buf, (size_t)n, &a, &why);
    if (hl == -1)
        return refuse(w, why, fd);
    if (hl == 0) {
        /* Partial: wake up only once one more byte is there. */
        set_lowat(fd, (int)n + 1);
        return 0;
    }
    set_lowat(fd, 1); /* back to normal, in case a partial header raised it */
    if (recv(fd, buf, (size_t)hl, MSG_DONTWAIT) != hl)
        return refuse(w, "could not take the header off the socket", fd);
    if (a.family == AF_UNSPEC) {
        socklen_t len = sizeof *out;
        if (getpeername(fd, (struct sockaddr *)out, &len) == -1)
            return refuse(w, "getpeername failed", fd);
    } else {
        to_sockaddr(&a, out);
    }
    if (log_get_level() <= LOG_DEBUG) {
        union sockaddr_any sa;
        char name[INET6_ADDRSTRLEN + 16];
        memcpy(&sa, out, sizeof sa);
        net_name(&sa, name, sizeof name);
        log_debug("fd %d: PROXY v%d header: client %s", fd, a.version, name);
    }
    return 1;
}
