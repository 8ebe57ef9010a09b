/* limits.c: admission (per address at accept, global at the upgrade) and
 * the per-connection token buckets. */
#include "limits.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "../../common/handshake.h"
#include "../../common/iptable.h"
#include "conn.h"
#include "output.h"

static uint64_t now_ms(struct worker *w)
{
    return (uint64_t)(ev_now(w->loop) * 1000.0);
}

/* Refills c's buckets for the time since they were last touched. */
static void rate_refill(struct worker *w, struct conn_busy *b)
{
    const struct config *cfg = &w->cfg;
    uint64_t now = now_ms(w);
    if (!b->rl_on) {
        b->rl_on = 1;
        b->rl_msgs = cfg->max_messages_per_second * 1000;
        b->rl_bytes = cfg->max_bytes_per_second;
        b->rl_last_ms = now;
        return;
    }
    uint64_t dt = now - b->rl_last_ms;
    b->rl_last_ms = now;
    /* Rates are per second, so per millisecond the message bucket gains
     * `rate` milli-messages and the byte bucket rate/1000 bytes. */
    int64_t m = b->rl_msgs + (int64_t)dt * cfg->max_messages_per_second;
    int64_t by = b->rl_bytes + (int64_t)(dt * (uint64_t)cfg->max_bytes_per_second / 1000);
    b->rl_msgs = m < cfg->max_messages_per_second * 1000 ? m : cfg->max_messages_per_second * 1000;
    b->rl_bytes = by < cfg->max_bytes_per_second ? by : cfg->max_bytes_per_second;
}

int limits_rate_take(struct conn *c, uint64_t msgs, uint64_t bytes)
{
    struct worker *w = conn_worker(c);
    const struct config *cfg = &w->cfg;
    if (!cfg->max_messages_per_second && !cfg->max_bytes_per_second)
        return 0;
    struct conn_busy *b = conn_busy(c);
    if (!b)
        return 0; /* out of memory: the limit is not what should fail here */
    rate_refill(w, b);
    if (cfg->max_messages_per_second) {
        b->rl_msgs -= (int64_t)msgs * 1000;
        if (b->rl_msgs < 0)
            return 1;
    }
    if (cfg->max_bytes_per_second) {
        b->rl_bytes -= (int64_t)bytes;
        if (b->rl_bytes < 0)
            return 2;
    }
    return 0;
}

int limits_rate_full(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct conn_busy *b = c->busy;
    if (!b || !b->rl_on)
        return 1;
    rate_refill(w, b);
    return (!w->cfg.max_messages_per_second || b->rl_msgs >= w->cfg.max_messages_per_second * 1000) &&
           (!w->cfg.max_bytes_per_second || b->rl_bytes >= w->cfg.max_bytes_per_second);
}

int limits_admit_address(struct worker *w, struct conn *c, const struct sockaddr *sa)
{
    const struct config *cfg = &w->cfg;
    if (!cfg->max_connections_per_ip && !cfg->max_handshakes_per_ip)
        return 0;
    const void *a;
    size_t len;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        a = &s6->sin6_addr;
        len = 16;
        /* An IPv4 client on a dual-stack socket counts as its IPv4 address. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            a = (const uint8_t *)&s6->sin6_addr + 12;
            len = 4;
        }
    } else {
        a = &((const struct sockaddr_in *)sa)->sin_addr;
        len = 4;
    }
    switch (iptable_acquire(&w->shm->iptable, a, len, (uint32_t)cfg->max_connections_per_ip,
                            (uint32_t)cfg->max_handshakes_per_ip, &c->ip_slot)) {
    case IPT_OK: return 0;
    case IPT_TOO_MANY_CONNECTIONS: return HS_REJECT_IP_CONNECTIONS;
    case IPT_TOO_MANY_HANDSHAKES: return HS_REJECT_IP_HANDSHAKES;
    default: shm_add(&w->shm->iptable_full, 1); return 0;
    }
}

/* Over a per-address limit: answer 429 at once (before the request: the
 * client learns why) and linger, without allocating a request parser. */
void limits_refuse_address(struct worker *w, struct conn *c, int why)
{
    static const char resp[] = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
                               "Connection: close\r\nContent-Length: %d\r\n\r\n%s\n";
    char buf[384];
    const char *text = why == HS_REJECT_IP_CONNECTIONS
                           ? "too many connections from your address (max_connections_per_ip)"
                           : "too many unfinished handshakes from your address (max_handshakes_per_ip)";
    int n = snprintf(buf, sizeof(buf), resp, (int)strlen(text) + 1, text);
    shm_add(&w->slot->rejected[why], 1);
    conn_set_state(c, CONN_LINGER);
    if (output_raw(c, buf, (size_t)n) == -1)
        return;
    conn_fail(c, 0, text);
}

int limits_admit_upgrade(struct worker *w)
{
    return shm_admit(w->shm, w->cfg.max_connections);
}
