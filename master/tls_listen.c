/* tls_listen.c: a TLS twin for each listening socket of the master. */
#include "tls_listen.h"

#include <unistd.h>

#include "../common/log.h"
#include "../common/net.h"
#include "master.h"

#define TLS_BACKLOG 65535 /* clamped by net.core.somaxconn, as listen's */

int tls_listen_twin(struct master *m, const struct config *cfg, int s)
{
    union sockaddr_any a;
    char what[CONFIG_STR_MAX + 16];
    if (!cfg->tls_listen[0] || m->tls_socks[s] != -1)
        return 0;
    socklen_t alen = net_parse_hostport(cfg->tls_listen, &a);
    if (!alen) { /* config_validate refuses this; be safe */
        log_error("tls_listen %s: not HOST:PORT", cfg->tls_listen);
        return -1;
    }
    snprintf(what, sizeof what, "tls_listen %s", cfg->tls_listen);
    m->tls_socks[s] = net_listen(&a, alen, what, TLS_BACKLOG);
    return m->tls_socks[s] == -1 ? -1 : 0;
}

void tls_listen_untwin(struct master *m, int s)
{
    if (m->tls_socks[s] == -1)
        return;
    close(m->tls_socks[s]);
    m->tls_socks[s] = -1;
}
