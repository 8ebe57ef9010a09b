/* config.c: the declarative settings table and everything that reads it:
 * defaults, parsing (libinih), validation, formatting, diffing. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "log.h"
#include "net.h"
#include "redisurl.h"

#define OFF(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define KiB    ((int64_t)1024)
#define MiB    (KiB * 1024)
#define GiB    (MiB * 1024)
#define SEC    ((int64_t)1000)
#define DAY    (86400 * SEC)

static const struct config_key keys[] = {
    {"listen", CONFIG_LISTEN, OFF(listen), 0, 0, "127.0.0.1:8080", RELOAD_GENERATION,
     "address and port to accept WebSocket connections on (HOST:PORT, [IPv6]:PORT, *:PORT)", NULL},
    {"workers", CONFIG_AUTO_COUNT, OFF(workers), 0, 256, "auto", RELOAD_GENERATION,
     "worker processes; auto = one per CPU core", NULL},
    {"max_connections", CONFIG_AUTO_COUNT, OFF(max_connections), 1, 100000000, "auto", 1,
     "upgraded connections across all workers; past it handshakes get 503; auto = what the open-file limit "
     "and memory allow (printed at start, docs/tuning.md)",
     NULL},
    {"max_message_size", CONFIG_SIZE, OFF(max_message_size), 0, 1 * GiB, "16M", 1,
     "largest message (all fragments together) a client may send; past it close 1009", NULL},
    {"max_header_size", CONFIG_SIZE, OFF(max_header_size), 256, 1 * MiB, "8k", 1,
     "largest upgrade request (request line and headers); past it 431", NULL},
    {"max_backpressure", CONFIG_SIZE, OFF(max_backpressure), 1 * KiB, 16 * GiB, "64M", 1,
     "bytes queued for a connection that is not reading; past it close 1008", NULL},
    {"handshake_timeout", CONFIG_DURATION, OFF(handshake_timeout), 100, DAY, "10s", 1,
     "time a client has from connect to a complete upgrade request", NULL},
    {"ping_interval", CONFIG_DURATION, OFF(ping_interval), 0, DAY, "30s", 1,
     "send a ping after this long without traffic from the client; 0 = never", NULL},
    {"idle_timeout", CONFIG_DURATION, OFF(idle_timeout), 0, DAY, "75s", 1,
     "close (1001) after this long without traffic from the client (a subscriber still reading a backlog "
     "counts as traffic); 0 = never",
     NULL},
    {"drain_timeout", CONFIG_DURATION, OFF(drain_timeout), 0, DAY, "10s", 1,
     "on a graceful stop, how long clients have to finish the close handshake", NULL},
    {"allowed_origins", CONFIG_STRING, OFF(allowed_origins), 0, 0, "", 1,
     "comma-separated Origin values allowed to connect (403 otherwise); empty = any", NULL},
    {"status_socket", CONFIG_STRING, OFF(status_socket), 0, 0, "/tmp/wsmill.status.sock", RELOAD_MASTER,
     "unix socket (mode 0600) that answers every connection with a JSON snapshot", NULL},
    {"pid_file", CONFIG_STRING, OFF(pid_file), 0, 0, "/tmp/wsmill.pid", RELOAD_MASTER,
     "file holding the master's pid while it runs", NULL},
    {"log_file", CONFIG_STRING, OFF(log_file), 0, 0, "", 1,
     "log destination; empty = standard error; SIGUSR1 reopens it", NULL},
    {"log_level", CONFIG_LOGLEVEL, OFF(log_level), 0, 5, "info", 1,
     "debug, info, notice, warn, error or crit", NULL},
    {"publish_listen", CONFIG_STRING, OFF(publish_listen), 0, 0, "127.0.0.1:8081", RELOAD_GENERATION,
     "HOST:PORT of the HTTP service: /pub/, /metrics, /healthz, /status, /dashboard; empty = none", NULL},
    {"publish_token", CONFIG_STRING, OFF(publish_token), 0, 0, "", 1,
     "when set, the publish API requires `Authorization: Bearer <token>` (401 otherwise)", NULL},
    {"metrics_token", CONFIG_STRING, OFF(metrics_token), 0, 0, "", 1,
     "when set, /metrics, /status, /dashboard/events want it (Bearer or ?token=); /healthz stays open", NULL},
    {"client_publish", CONFIG_BOOL, OFF(client_publish), 0, 1, "off", 1,
     "on: a message a client sends on /ch/NAME is published to its channels; off: refused with 1008", NULL},
    {"max_channels_per_conn", CONFIG_INT, OFF(max_channels_per_conn), 1, 1024, "16", 1,
     "channels one connection may join with /ch/A,B,C (400 past it)", NULL},
    {"slow_consumer", CONFIG_CHOICE, OFF(slow_consumer), 0, 1, "close", 1,
     "when a subscriber's queue passes max_backpressure: close (1013) or drop (skip messages for it)",
     "close|drop"},
    {"max_frame_size", CONFIG_SIZE, OFF(max_frame_size), 0, 1 * GiB, "16M", 1,
     "largest payload of one frame; a longer length field gets close 1009 before any payload is read", NULL},
    {"max_messages_per_second", CONFIG_INT, OFF(max_messages_per_second), 0, 10000000, "10000", 1,
     "messages a connection may send per second (token bucket, one second of burst); past it close 1008; 0 = "
     "off",
     NULL},
    {"max_bytes_per_second", CONFIG_SIZE, OFF(max_bytes_per_second), 0, 16 * GiB, "64M", 1,
     "payload bytes a connection may send per second (token bucket, one second of burst); past it close "
     "1008; "
     "0 = off",
     NULL},
    {"max_connections_per_ip", CONFIG_INT, OFF(max_connections_per_ip), 0, 1000000, "10000", 1,
     "connections (handshaking or open) one client address may hold across all workers; past it 429; 0 = off",
     NULL},
    {"max_handshakes_per_ip", CONFIG_INT, OFF(max_handshakes_per_ip), 0, 1000000, "256", 1,
     "unfinished handshakes one client address may have at once (slowloris); past it 429; 0 = off", NULL},
    {"auth_secret", CONFIG_STRING, OFF(auth_secret), 0, 0, "", 1,
     "when set, a connection needs a JWT signed with it (HS256; ?token= or Authorization: Bearer; exp "
     "checked, "
     "optional channels claim): 401 without a valid one, 403 for a channel it does not list",
     NULL},
    {"user", CONFIG_STRING, OFF(user), 0, 0, "", RELOAD_RESTART,
     "when the master runs as root, workers switch to this user (and its groups) once their sockets are "
     "bound; empty = workers keep the master's user",
     NULL},
    {"ring_size", CONFIG_SIZE, OFF(ring_size), 64 * KiB, 4 * GiB, "64M", 0,
     "shared-memory publish ring; a worker a whole ring behind loses (and counts) messages", NULL},
    {"history_size", CONFIG_INT, OFF(history_size), 0, 1000000, "0", RELOAD_RESTART,
     "messages kept per channel for clients that resume (wsmill.v1, docs/history.md); 0 = none", NULL},
    {"history_ttl", CONFIG_DURATION, OFF(history_ttl), 0, 30 * DAY, "300s", RELOAD_HOT,
     "a kept message older than this is no longer served to a resuming client; 0 = no age limit", NULL},
    {"history_channels", CONFIG_INT, OFF(history_channels), 8, 1 << 20, "4096", RELOAD_RESTART,
     "history store slots; when full, the channel published to least recently loses its history", NULL},
    {"history_memory", CONFIG_SIZE, OFF(history_memory), 64 * KiB, 64 * GiB, "64M", RELOAD_RESTART,
     "payload bytes the history store keeps, all channels together", NULL},
    {"broker", CONFIG_CHOICE, OFF(broker), 0, 1, "local", RELOAD_GENERATION,
     "local: publishes reach this node's subscribers through the shared ring; redis: through Redis pub/sub, "
     "so they reach subscribers on every node sharing redis_url (docs/redis.md)",
     "local|redis"},
    {"permessage_deflate", CONFIG_BOOL, OFF(permessage_deflate), 0, 1, "on", 1,
     "accept permessage-deflate (RFC 7692, always server_no_context_takeover) on new connections", NULL},
    {"deflate_min_size", CONFIG_SIZE, OFF(deflate_min_size), 0, 1 * GiB, "64", 1,
     "messages shorter than this go out uncompressed (docs/deflate.md)", NULL},
    {"deflate_level", CONFIG_INT, OFF(deflate_level), 1, 9, "1", 1,
     "zlib level for outgoing messages: 1 fastest, 9 smallest (docs/deflate.md)", NULL},
    {"deflate_client_window_bits", CONFIG_INT, OFF(deflate_client_window_bits), 8, 15, "10", 1,
     "window (2^N bytes) asked of clients that let the server pick it; kept per client keeping context",
     NULL},
    {"redis_url", CONFIG_STRING, OFF(redis_url), 0, 0, "redis://127.0.0.1:6379", RELOAD_GENERATION,
     "Redis for broker = redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (%XX escapes in the password)",
     NULL},
    {"redis_prefix", CONFIG_STRING, OFF(redis_prefix), 0, 0, "wsmill:", RELOAD_GENERATION,
     "prepended to channel names in Redis (PUBLISH/SUBSCRIBE wsmill:NAME); nodes that share it share "
     "channels",
     NULL},
    {"tls_listen", CONFIG_STRING, OFF(tls_listen), 0, 0, "", RELOAD_RESTART,
     "HOST:PORT of a second listener that speaks TLS (wss://), served by every worker next to listen; empty "
     "= "
     "none (docs/tls.md)",
     NULL},
    {"tls_cert", CONFIG_STRING, OFF(tls_cert), 0, 0, "", 1,
     "PEM file with the certificate, then its chain; a reload re-reads it (refused, old one kept, if bad)",
     NULL},
    {"tls_key", CONFIG_STRING, OFF(tls_key), 0, 0, "", 1,
     "PEM file with the private key, read by the master before workers drop privileges; a world-readable "
     "key is a warning",
     NULL},
    {"tls_ciphers", CONFIG_STRING, OFF(tls_ciphers), 0, 0, TLS_DEFAULT_CIPHERS, 1,
     "OpenSSL cipher list for TLS 1.2 (forward-secret AEAD only by default); TLS 1.3 uses OpenSSL's suites",
     NULL},
    {"tls_min_version", CONFIG_CHOICE, OFF(tls_min_version), 0, 1, "1.2", 1,
     "oldest TLS version accepted (1.2 or 1.3); older ones are never offered", "1.2|1.3"},
    {"tls_session_tickets", CONFIG_BOOL, OFF(tls_session_tickets), 0, 1, "on", 1,
     "resumption by session tickets (stateless: no per-session memory in the server)", NULL},
    {"proxy_protocol", CONFIG_BOOL, OFF(proxy_protocol), 0, 1, "off", 1,
     "connections on listen start with a PROXY protocol v1/v2 header from a trusted_proxies peer; its "
     "client address is used for limits, logs and status; missing, malformed or untrusted: closed",
     NULL},
    {"tls_proxy_protocol", CONFIG_BOOL, OFF(tls_proxy_protocol), 0, 1, "off", 1,
     "the same for tls_listen: the PROXY header comes first, then the TLS handshake", NULL},
    {"trusted_proxies", CONFIG_STRING, OFF(trusted_proxies), 0, 0, "", 1,
     "comma-separated addresses or CIDR ranges (10.0.0.0/8, ::1) allowed to send a PROXY header", NULL},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const struct config_key *config_keys(size_t *n)
{
    *n = NKEYS;
    return keys;
}

const struct config_key *config_key_find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int __attribute__((format(printf, 3, 4))) fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* One rule for sizes: k, m or g, alone or followed by b or ib, in any
 * case, are powers of 1024 (16M = 16MB = 16MiB = 16 mib); a bare number
 * or "b" is bytes. Returns the multiplier, or 0 for anything else. */
static long long size_multiplier(const char *s)
{
    const char *units = "kmg";
    const char *u = *s ? strchr(units, tolower((unsigned char)*s)) : NULL;
    if (!*s || !strcasecmp(s, "b"))
        return 1;
    if (!u || (s[1] && strcasecmp(s + 1, "b") && strcasecmp(s + 1, "ib")))
        return 0;
    return (long long)1 << (10 * (u - units + 1));
}

/* Parses an integer with an optional unit suffix. For sizes see
 * size_multiplier; for durations ms, s, m, h (result in ms,
 * plain numbers are seconds). Returns 0 or -1 when malformed/overflowing. */
static int parse_number(const char *v, enum config_type type, int64_t *out)
{
    errno = 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v || errno == ERANGE || n < 0)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    long long mul = 1;
    if (type == CONFIG_SIZE) {
        mul = size_multiplier(end);
        if (!mul)
            return -1;
    } else if (type == CONFIG_DURATION) {
        if (!*end || !strcmp(end, "s"))
            mul = SEC;
        else if (!strcmp(end, "ms"))
            mul = 1;
        else if (!strcmp(end, "m"))
            mul = 60 * SEC;
        else if (!strcmp(end, "h"))
            mul = 3600 * SEC;
        else
            return -1;
    } else if (*end) {
        return -1;
    }
    if (n > LLONG_MAX / mul)
        return -1;
    *out = n * mul;
    return 0;
}

int config_parse_size(const char *text, int64_t *bytes)
{
    return parse_number(text, CONFIG_SIZE, bytes);
}

static const char *unit_hint(enum config_type type)
{
    switch (type) {
    case CONFIG_SIZE: return " (bytes; suffixes k, m, g, also as kB/KiB, powers of 1024)";
    case CONFIG_DURATION: return " (seconds; suffixes ms, s, m, h)";
    default: return "";
    }
}

/* Index of word in "a|b|c", or -1. */
static int64_t choice_index(const char *choices, const char *word)
{
    size_t wl = strlen(word);
    int64_t i = 0;
    for (const char *p = choices; *p; i++) {
        const char *end = strchr(p, '|');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == wl && !strncasecmp(p, word, l))
            return i;
        if (!end)
            break;
        p = end + 1;
    }
    return -1;
}

static int set_listen(struct config *c, const char *v, char *err, size_t errlen)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return fail(err, errlen, "listen: '%s' is not HOST:PORT", v);
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 1 || port > 65535)
        return fail(err, errlen, "listen: port in '%s' must be 1-65535", v);
    size_t hl = (size_t)(colon - v);
    const char *h = v;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { /* [::1]:8080 */
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(c->listen_host) || strlen(v) >= sizeof(c->listen))
        return fail(err, errlen, "listen: '%s' is too long", v);
    memcpy(c->listen_host, h, hl);
    c->listen_host[hl] = '\0';
    c->listen_port = (uint16_t)port;
    snprintf(c->listen, sizeof(c->listen), "%s", v);
    return 0;
}

int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct config_key *k = config_key_find(key);
    if (!k)
        return fail(err, errlen, "unknown key '%s'", key);
    char *field = (char *)c + k->offset;
    int64_t n;
    switch (k->type) {
    case CONFIG_LISTEN: return set_listen(c, value, err, errlen);
    case CONFIG_STRING:
        if (strlen(value) >= k->size)
            return fail(err, errlen, "%s: value is longer than %zu bytes", key, k->size - 1);
        snprintf(field, k->size, "%s", value);
        return 0;
    case CONFIG_LOGLEVEL:
        n = log_level_parse(value);
        if (n < 0)
            return fail(err, errlen, "%s: '%s' is not one of debug, info, notice, warn, error, crit", key,
                        value);
        *(int64_t *)field = n;
        return 0;
    case CONFIG_BOOL:
        if (!strcasecmp(value, "on") || !strcasecmp(value, "yes") || !strcasecmp(value, "true") ||
            !strcmp(value, "1"))
            n = 1;
        else if (!strcasecmp(value, "off") || !strcasecmp(value, "no") || !strcasecmp(value, "false") ||
                 !strcmp(value, "0"))
            n = 0;
        else
            return fail(err, errlen, "%s: '%s' is not on or off", key, value);
        *(int64_t *)field = n;
        return 0;
    case CONFIG_CHOICE:
        n = choice_index(k->choices, value);
        if (n < 0)
            return fail(err, errlen, "%s: '%s' is not one of %s", key, value, k->choices);
        *(int64_t *)field = n;
        return 0;
    case CONFIG_AUTO_COUNT:
        if (!strcasecmp(value, "auto")) {
            *(int64_t *)field = 0;
            return 0;
        }
        if (parse_number(value, CONFIG_INT, &n) || n < (k->min > 1 ? k->min : 1) || n > k->max)
            return fail(err, errlen, "%s: '%s' is not auto or a number from 1 to %" PRId64, key, value,
                        k->max);
        *(int64_t *)field = n;
        return 0;
    default:
        if (parse_number(value, k->type, &n))
            return fail(err, errlen, "%s: '%s' is not a valid value%s", key, value, unit_hint(k->type));
        if (n < k->min || n > k->max) {
            char lo[32], hi[32];
            struct config tmp;
            *(int64_t *)((char *)&tmp + k->offset) = k->min;
            config_format(&tmp, k, lo, sizeof(lo));
            *(int64_t *)((char *)&tmp + k->offset) = k->max;
            config_format(&tmp, k, hi, sizeof(hi));
            return fail(err, errlen, "%s: '%s' is out of range (%s to %s)", key, value, lo, hi);
        }
        *(int64_t *)field = n;
        return 0;
    }
}

void config_defaults(struct config *c)
{
    char err[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NKEYS; i++)
        if (config_set(c, keys[i].name, keys[i].dflt, err, sizeof(err)) != 0)
            abort(); /* a bad default is a programming error */
}

struct load_ctx {
    struct config *c;
    char seen[NKEYS];
    char err[512];
    int failed;
};

static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    (void)section; /* sections only group: a key means the same anywhere */
    if (ctx->failed)
        return 0;
    const struct config_key *k = config_key_find(name);
    if (k && ctx->seen[k - keys]) {
        snprintf(ctx->err, sizeof(ctx->err), "duplicate key '%s' (every key may appear once)", name);
        ctx->failed = 1;
        return 0;
    }
    if (config_set(ctx->c, name, value, ctx->err, sizeof(ctx->err)) != 0) {
        ctx->failed = 1;
        return 0;
    }
    ctx->seen[k - keys] = 1;
    return 1;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
    struct load_ctx ctx = {.c = c};
    config_defaults(c);
    int rc = ini_parse(path, on_ini_pair, &ctx);
    if (rc == -1)
        return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (rc == -2)
        return fail(err, errlen, "%s: out of memory while parsing", path);
    if (rc > 0)
        return fail(err, errlen, "%s:%d: %s", path, rc,
                    ctx.failed ? ctx.err : "syntax error (expected 'key = value' or '[section]')");
    char why[512];
    if (config_validate(c, why, sizeof(why)) != 0)
        return fail(err, errlen, "%s: %s", path, why);
    return 0;
}

/* tls_listen, its files and the PROXY protocol's trust list. The files
 * themselves are read by the master (master/tls_check.c), not here. */
static int validate_tls(const struct config *c, char *err, size_t errlen)
{
    union sockaddr_any a, b;
    if (c->tls_listen[0]) {
        socklen_t al = net_parse_hostport(c->tls_listen, &a);
        if (!al)
            return fail(err, errlen,
                        "tls_listen: '%s' is not HOST:PORT with an IPv4/IPv6 address, localhost or * and a "
                        "port 1-65535 (or empty for no TLS listener)",
                        c->tls_listen);
        if (net_parse_hostport(c->listen, &b) == al && !memcmp(&a, &b, al) && c->listen_port)
            return fail(err, errlen, "tls_listen %s is the same address as listen", c->tls_listen);
        if (!c->tls_cert[0] || !c->tls_key[0])
            return fail(err, errlen, "tls_listen is set: tls_cert and tls_key must name the PEM files");
    }
    struct cidr_list l;
    char why[200];
    if (cidr_list_parse(c->trusted_proxies, &l, why, sizeof why) == -1)
        return fail(err, errlen, "trusted_proxies: %s", why);
    int pp = c->proxy_protocol || (c->tls_listen[0] && c->tls_proxy_protocol);
    if (pp && l.n == 0)
        return fail(err, errlen,
                    "%s is on but trusted_proxies is empty: every connection would be refused (list the "
                    "balancer's addresses)",
                    c->proxy_protocol ? "proxy_protocol" : "tls_proxy_protocol");
    return 0;
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    if (c->ping_interval && c->idle_timeout && c->ping_interval >= c->idle_timeout)
        return fail(err, errlen,
                    "ping_interval (%" PRId64 " ms) must be shorter than idle_timeout (%" PRId64
                    " ms), or a live client would be closed before it is pinged",
                    c->ping_interval, c->idle_timeout);
    union sockaddr_any pa;
    if (c->publish_listen[0] && !net_parse_hostport(c->publish_listen, &pa))
        return fail(err, errlen,
                    "publish_listen: '%s' is not HOST:PORT with an IPv4/IPv6 address, localhost or * and a "
                    "port 1-65535 (or empty to turn it off)",
                    c->publish_listen);
    if (!c->status_socket[0])
        return fail(err, errlen, "status_socket must be set");
    struct redis_url u;
    char why[256];
    if (redis_url_parse(c->redis_url, &u, why, sizeof(why)) == -1)
        return fail(err, errlen, "redis_url: %s", why);
    if (strlen(c->status_socket) >= 108)
        return fail(err, errlen, "status_socket: a unix socket path must be shorter than 108 bytes");
    return validate_tls(c, err, errlen);
}

int config_diff(const struct config *a, const struct config *b, int only_restart, char *buf, size_t len)
{
    int count = 0;
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &keys[i];
        if (only_restart && k->reloadable == RELOAD_HOT)
            continue;
        if (memcmp((const char *)a + k->offset, (const char *)b + k->offset, k->size) == 0)
            continue;
        if ((k->type == CONFIG_STRING || k->type == CONFIG_LISTEN) &&
            strcmp((const char *)a + k->offset, (const char *)b + k->offset) == 0)
            continue;
        count++;
        int w = used < len ? snprintf(buf + used, len - used, "%s%s", count > 1 ? ", " : "", k->name) : 0;
        used += w > 0 ? (size_t)w : 0;
    }
    return count;
}
