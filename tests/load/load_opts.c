/* load_opts.c: see load_opts.h. */
#include "load_opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage[] =
    "usage: wsmill-load hold|echo|churn|subscribe|publish|fanout [options]\n"
    "  --url URL                  target (default ws://127.0.0.1:8080/): ws://HOST:PORT/PATH\n"
    "                             or wss:// (TLS, certificate not verified);\n"
    "                             publish also http://HOST:PORT/pub/NAME (publish API)\n"
    "  -n, --connections N        hold/echo/subscribe/fanout: connections (subscribers);\n"
    "                             churn: concurrent loops; publish: publisher connections\n"
    "                             (default 1000 hold/echo/subscribe/fanout, 100 churn,\n"
    "                             publish: 1 over HTTP, one per channel over ws; k/m suffixes)\n"
    "  --concurrency N            same as --connections\n"
    "  --rate R                   new connections/s over all processes, 0 = unlimited\n"
    "                             (default 10000, churn 0); publish: messages/s (100)\n"
    "  -d, --duration T           s: hold time, or the measured echo/churn/publish window (10)\n"
    "  --timeout S                s: verify phase bound; ramp and close get S + n/rate (60)\n"
    "  --conn-timeout S           s: per connect+handshake, per echo, per close, per\n"
    "                             publish answer (10)\n"
    "  -s, --size S               message payload bytes (64; publishing: at least 24)\n"
    "  --depth D                  echo: messages in flight per connection (1)\n"
    "  --verify-sample K          hold: K random connections echo once before closing\n"
    "  --verify-first             hold: the sample echoes when the hold begins, then sits\n"
    "                             idle (what a connection that talked once costs)\n"
    "  --procs P                  client processes (default: <= 19000 sockets each)\n"
    "  --max-pending N            per process cap on unfinished handshakes/closes (1000)\n"
    "  --cpu LIST                 pin processes round-robin, e.g. 1 or 0,1 or 0-3\n"
    "  --src-base ADDR            first source address (127.0.0.2)\n"
    "  --per-src N                connections per source address (60000)\n"
    "  --origin ORIGIN            send an Origin header\n"
    "  --raw                      plain TCP against wsmill-floor --mode echo\n"
    "  --deflate                  offer permessage-deflate (client_no_context_takeover): the\n"
    "                             101 must accept it; echo messages go out compressed, and\n"
    "                             compressed messages (RSV1) are inflated, then checked;\n"
    "                             subscribers inflate bytes seen a moment ago only once\n"
    "                             (the inflate memo, load_pmd.h; counted in the JSON)\n"
    "  --deflate-takeover         --deflate, but without client_no_context_takeover, so the\n"
    "                             server keeps each connection's window (the tool still\n"
    "                             compresses every message on its own, as the RFC allows)\n"
    "  --json                     echo: JSON-like ASCII text messages (text frames), still\n"
    "                             carrying the sequence and connection number; publish,\n"
    "                             subscribe, fanout: JSON-like text after the 24-byte stamp\n"
    "  --handshake-only           hold/churn: upgrade only, no echo, no close frame\n"
    "  --channels K               subscribe/publish/fanout: use channels NAME-0..NAME-(K-1)\n"
    "                             (subscribers and publishes spread round robin)\n"
    "  --pub-rate R               fanout: messages/s over all publishers (100); publish: = --rate\n"
    "  --pub-url URL              fanout: where to publish (default --url: client publish);\n"
    "                             http://HOST:PORT/pub/NAME for the publish API\n"
    "  --publishers P             fanout: publisher connections (HTTP 1, ws one per channel)\n"
    "  --pipeline D               HTTP publishing: requests in flight per connection (64)\n"
    "  --drain S                  publish/fanout: after the run, wait at most S s for\n"
    "                             answers and deliveries (10)\n"
    "  --token TOKEN              publish API: send Authorization: Bearer TOKEN\n"
    "  --pub-cpu LIST             fanout: pin the publisher process (default: --cpu)\n"
    "  --recv epoll|spin          subscribe/fanout: how subscribers wait for data (epoll);\n"
    "                             spin polls without sleeping during the run, so a server\n"
    "                             on this host never pays to wake this process\n"
    "  --v1                       subscribe/fanout: subscribers offer the wsmill.v1 subprotocol\n"
    "                             (docs/history.md): answers are skipped, each message's\n"
    "                             \"NAME OFFSET\\n\" header is stripped before it is checked\n"
    "  -q, --quiet                no progress lines on stderr\n"
    "  -h, --help\n";

enum {
    O_URL = 256,
    O_RATE,
    O_TIMEOUT,
    O_CONN_TIMEOUT,
    O_DEPTH,
    O_VERIFY,
    O_VERIFY_FIRST,
    O_PROCS,
    O_PENDING,
    O_CPU,
    O_SRC_BASE,
    O_PER_SRC,
    O_ORIGIN,
    O_RAW,
    O_DEFLATE,
    O_DEFLATE_TAKEOVER,
    O_JSON,
    O_HS_ONLY,
    O_CHANNELS,
    O_PUB_RATE,
    O_PUB_URL,
    O_PUBLISHERS,
    O_PIPELINE,
    O_DRAIN,
    O_TOKEN,
    O_PUB_CPU,
    O_RECV,
    O_V1
};

static const struct option longopts[] = {
    {"url", required_argument, NULL, O_URL},
    {"connections", required_argument, NULL, 'n'},
    {"concurrency", required_argument, NULL, 'n'},
    {"rate", required_argument, NULL, O_RATE},
    {"duration", required_argument, NULL, 'd'},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"conn-timeout", required_argument, NULL, O_CONN_TIMEOUT},
    {"size", required_argument, NULL, 's'},
    {"depth", required_argument, NULL, O_DEPTH},
    {"verify-sample", required_argument, NULL, O_VERIFY},
    {"verify-first", no_argument, NULL, O_VERIFY_FIRST},
    {"procs", required_argument, NULL, O_PROCS},
    {"max-pending", required_argument, NULL, O_PENDING},
    {"cpu", required_argument, NULL, O_CPU},
    {"src-base", required_argument, NULL, O_SRC_BASE},
    {"per-src", required_argument, NULL, O_PER_SRC},
    {"origin", required_argument, NULL, O_ORIGIN},
    {"raw", no_argument, NULL, O_RAW},
    {"deflate", no_argument, NULL, O_DEFLATE},
    {"deflate-takeover", no_argument, NULL, O_DEFLATE_TAKEOVER},
    {"json", no_argument, NULL, O_JSON},
    {"handshake-only", no_argument, NULL, O_HS_ONLY},
    {"channels", required_argument, NULL, O_CHANNELS},
    {"pub-rate", required_argument, NULL, O_PUB_RATE},
    {"pub-url", required_argument, NULL, O_PUB_URL},
    {"publishers", required_argument, NULL, O_PUBLISHERS},
    {"pipeline", required_argument, NULL, O_PIPELINE},
    {"drain", required_argument, NULL, O_DRAIN},
    {"token", required_argument, NULL, O_TOKEN},
    {"pub-cpu", required_argument, NULL, O_PUB_CPU},
    {"recv", required_argument, NULL, O_RECV},
    {"v1", no_argument, NULL, O_V1},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

const char *load_opts_mode_name(enum load_mode mode)
{
    switch (mode) {
    case LOAD_HOLD: return "hold";
    case LOAD_ECHO: return "echo";
    case LOAD_CHURN: return "churn";
    case LOAD_SUBSCRIBE: return "subscribe";
    case LOAD_PUBLISH: return "publish";
    case LOAD_FANOUT: return "fanout";
    }
    return "?";
}

/* Parses a non-negative number with an optional k/m/g suffix (x1000). */
static int parse_num(const char *name, const char *s, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && *end != '\0' && end[1] == '\0') {
        switch (*end) {
        case 'k':
        case 'K':
            v *= 1e3;
            end++;
            break;
        case 'm':
        case 'M':
            v *= 1e6;
            end++;
            break;
        case 'g':
        case 'G':
            v *= 1e9;
            end++;
            break;
        }
    }
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > max) {
        fprintf(stderr, "wsmill-load: --%s %s: expected a number in [0, %.0f]\n", name, s, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_u64(const char *name, const char *s, double max, uint64_t *out)
{
    double v;
    if (parse_num(name, s, max, &v) == -1)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_u32(const char *name, const char *s, double max, uint32_t *out)
{
    double v;
    if (parse_num(name, s, max, &v) == -1)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "ws://host[:port][/path]", "wss://..." or "http://..."; resolves host to one IPv4
 * address. Whether http:// is acceptable is checked once the mode is known. */
static int parse_url(struct load_target *t, const char *opt, const char *url)
{
    const char *hp;
    unsigned long port;
    t->tls = 0;
    if (strncasecmp(url, "ws://", 5) == 0) {
        hp = url + 5;
        port = 80;
        t->http = 0;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        hp = url + 6;
        port = 443;
        t->http = 0;
        t->tls = 1;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        hp = url + 7;
        port = 80;
        t->http = 1;
    } else {
        fprintf(stderr, "wsmill-load: --%s %s: only ws://, wss:// and http:// URLs are supported\n", opt,
                url);
        return -1;
    }
    snprintf(t->url, sizeof(t->url), "%s", url);
    const char *slash = strchr(hp, '/');
    size_t hplen = slash ? (size_t)(slash - hp) : strlen(hp);
    snprintf(t->path, sizeof(t->path), "%s", slash ? slash : "/");
    t->name_end = (uint32_t)strcspn(t->path, "?");
    char name[256];
    if (hplen == 0 || hplen >= sizeof(name)) {
        fprintf(stderr, "wsmill-load: --%s %s: bad host\n", opt, url);
        return -1;
    }
    memcpy(name, hp, hplen);
    name[hplen] = '\0';
    char *colon = strrchr(name, ':');
    if (colon != NULL) {
        char *end;
        *colon = '\0';
        port = strtoul(colon + 1, &end, 10);
        if (*end != '\0' || port == 0 || port > 65535) {
            fprintf(stderr, "wsmill-load: --%s %s: bad port\n", opt, url);
            return -1;
        }
    }
    snprintf(t->host, sizeof(t->host), "%s:%lu", name, port);
    t->dst.sin_family = AF_INET;
    t->dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, name, &t->dst.sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "wsmill-load: getaddrinfo(%s) failed: %s\n", name, gai_strerror(rc));
        return -1;
    }
    t->dst.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

int load_opts_chan_path(const struct load_opts *o, const struct load_target *t, uint64_t k, char *out,
                        size_t cap)
{
    int n;
    if (o->channels == 0)
        n = snprintf(out, cap, "%s", t->path);
    else
        n = snprintf(out, cap, "%.*s-%llu%s", (int)t->name_end, t->path, (unsigned long long)k,
                     t->path + t->name_end);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* "1", "0,1", "0-3,6". */
static int parse_cpus(int *cpus, int *ncpus, const char *opt, const char *s)
{
    const char *p = s;
    *ncpus = 0;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || a < 0)
            goto bad;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p || b < a)
                goto bad;
        }
        for (long c = a; c <= b; c++) {
            if (*ncpus == LOAD_MAX_CPUS || c >= 1024)
                goto bad;
            cpus[(*ncpus)++] = (int)c;
        }
        if (*end == ',')
            end++;
        else if (*end != '\0')
            goto bad;
        p = end;
    }
    if (*ncpus > 0)
        return 0;
bad:
    fprintf(stderr, "wsmill-load: --%s %s: expected a list like 0,1 or 0-3\n", opt, s);
    return -1;
}

static int parse_src(struct load_opts *o, const char *s)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) {
        fprintf(stderr, "wsmill-load: --src-base %s: not an IPv4 address\n", s);
        return -1;
    }
    o->src_base = ntohl(a.s_addr);
    return 0;
}

static int parse_one(struct load_opts *o, int c, const char *arg)
{
    switch (c) {
    case O_URL: return parse_url(&o->target, "url", arg);
    case 'n': return parse_u64("connections", arg, 1e8, &o->conns);
    case O_RATE: return parse_num("rate", arg, 1e9, &o->rate);
    case 'd': return parse_num("duration", arg, 86400, &o->duration);
    case O_TIMEOUT: return parse_num("timeout", arg, 86400, &o->timeout);
    case O_CONN_TIMEOUT: return parse_num("conn-timeout", arg, 86400, &o->conn_timeout);
    case 's': return parse_u64("size", arg, 16 << 20, &o->size);
    case O_DEPTH: return parse_u32("depth", arg, 4096, &o->depth);
    case O_VERIFY: return parse_u64("verify-sample", arg, 1e8, &o->verify_sample);
    case O_VERIFY_FIRST: o->verify_first = 1; return 0;
    case O_PROCS: return parse_u32("procs", arg, 4096, &o->procs);
    case O_PENDING: return parse_u32("max-pending", arg, 1e6, &o->max_pending);
    case O_CPU: return parse_cpus(o->cpus, &o->ncpus, "cpu", arg);
    case O_SRC_BASE: return parse_src(o, arg);
    case O_PER_SRC: return parse_u64("per-src", arg, 1e6, &o->per_src);
    case O_ORIGIN: o->origin = arg; return 0;
    case O_RAW: o->raw = 1; return 0;
    case O_DEFLATE: o->deflate = 1; return 0;
    case O_DEFLATE_TAKEOVER: o->deflate = 2; return 0;
    case O_JSON: o->json = 1; return 0;
    case O_HS_ONLY: o->handshake_only = 1; return 0;
    case O_CHANNELS: return parse_u64("channels", arg, LOAD_MAX_CHANNELS, &o->channels);
    case O_PUB_RATE: return parse_num("pub-rate", arg, 1e8, &o->pub_rate);
    case O_PUB_URL: return parse_url(&o->pub, "pub-url", arg);
    case O_PUBLISHERS: return parse_u64("publishers", arg, 1e6, &o->pub_conns);
    case O_PIPELINE: return parse_u32("pipeline", arg, 65536, &o->pipeline);
    case O_DRAIN: return parse_num("drain", arg, 86400, &o->drain);
    case O_TOKEN: o->token = arg; return 0;
    case O_PUB_CPU: return parse_cpus(o->pub_cpus, &o->pub_ncpus, "pub-cpu", arg);
    case O_RECV:
        if (strcmp(arg, "epoll") == 0 || strcmp(arg, "spin") == 0) {
            o->recv_spin = arg[0] == 's';
            return 0;
        }
        fprintf(stderr, "wsmill-load: --recv must be epoll or spin, not '%s'\n", arg);
        return -1;
    case O_V1: o->v1 = 1; return 0;
    case 'q': o->quiet = 1; return 0;
    }
    fputs(usage, stderr);
    return -1;
}

static int bad(const char *msg)
{
    fprintf(stderr, "wsmill-load: %s\n", msg);
    return -1;
}

/* Checks and defaults of publish, subscribe and fanout. */
static int validate_pubsub(struct load_opts *o, int conns_given)
{
    if (o->raw || o->handshake_only || o->verify_sample > 0 || o->depth != 1)
        return bad("--raw, --handshake-only, --verify-sample and --depth do not apply to "
                   "subscribe/publish/fanout");
    if (o->target.http && o->mode != LOAD_PUBLISH)
        return bad("--url must be ws:// here (http:// is for publishing: publish --url, fanout --pub-url)");
    if (o->mode == LOAD_SUBSCRIBE) {
        if (o->pub.url[0])
            return bad("--pub-url applies to fanout");
        return 0;
    }
    if (o->size < LOAD_STAMP_LEN)
        return bad("--size must be at least 24 when publishing (stamp, sequence, publisher, channel)");
    if (o->pub_rate <= 0)
        return bad("the publish rate must be positive");
    if (o->pipeline == 0)
        return bad("--pipeline must be at least 1");
    uint64_t nchan = load_opts_nchan(o);
    if (o->mode == LOAD_PUBLISH) {
        if (o->pub.url[0])
            return bad("publish takes the target as --url (--pub-url is for fanout)");
        o->pub = o->target;
        if (!conns_given)
            o->conns = o->target.http ? 1 : nchan;
        o->pub_conns = o->conns;
    } else {
        if (!o->pub.url[0])
            o->pub = o->target;
        if (o->pub_conns == 0)
            o->pub_conns = o->pub.http ? 1 : nchan;
        o->pub_procs = 1;
    }
    if (o->pub.http && o->pub_conns > nchan)
        return bad("HTTP publishing: at most one connection per channel (channel k goes out on "
                   "connection k mod P, which keeps each channel's order)");
    if (!o->pub.http && o->channels > 0 && o->pub_conns != o->channels)
        return bad("ws publishing: one connection per channel (-n / --publishers must equal --channels)");
    if (o->pub_conns > 19000 && o->mode == LOAD_FANOUT)
        return bad("fanout: at most 19000 publisher connections (one process)");
    return 0;
}

/* Cross-option checks, after the mode-dependent defaults are in. */
static int validate(struct load_opts *o, int conns_given)
{
    if (o->conns == 0)
        return bad("--connections must be at least 1");
    if (o->size == 0)
        return bad("--size must be at least 1");
    if (o->depth == 0)
        return bad("--depth must be at least 1");
    if (o->max_pending == 0)
        return bad("--max-pending must be at least 1");
    if (o->per_src == 0)
        return bad("--per-src must be at least 1");
    if (o->conn_timeout <= 0 || o->timeout <= 0)
        return bad("--timeout and --conn-timeout must be positive");
    if (o->raw && o->handshake_only)
        return bad("--raw and --handshake-only exclude each other");
    if (o->raw && (o->deflate || o->json))
        return bad("--deflate and --json need WebSocket frames, not --raw");
    if (o->handshake_only && o->mode == LOAD_ECHO)
        return bad("--handshake-only applies to hold and churn only");
    if (o->verify_sample > 0 && (o->mode != LOAD_HOLD || o->handshake_only))
        return bad("--verify-sample applies to hold without --handshake-only");
    if (o->verify_first && o->verify_sample == 0)
        return bad("--verify-first needs --verify-sample K");
    if (o->verify_sample > o->conns)
        o->verify_sample = o->conns;
    if (load_opts_pubsub(o)) {
        if (validate_pubsub(o, conns_given) == -1)
            return -1;
    } else {
        if (o->target.http)
            return bad("--url must be ws:// in hold, echo and churn");
        if (o->channels || o->pub.url[0] || o->pub_conns || o->token || o->pub_ncpus)
            return bad("--channels, --pub-url, --publishers, --token and --pub-cpu apply to "
                       "subscribe/publish/fanout");
    }
    if (o->recv_spin && o->mode != LOAD_SUBSCRIBE && o->mode != LOAD_FANOUT) {
        return bad("--recv spin applies to subscribe and fanout");
    }
    /* fanout's publishers take the source addresses after the subscribers' */
    uint64_t addrs = (o->conns + o->per_src - 1) / o->per_src;
    if (o->mode == LOAD_FANOUT)
        addrs += (o->pub_conns + o->per_src - 1) / o->per_src;
    uint64_t last = o->src_base + addrs - 1;
    if (last > 0xffffffffu || (o->src_base >> 24) != (last >> 24))
        return bad("--src-base/--per-src: source addresses would leave the base's /8");
    return 0;
}

int load_opts_parse(struct load_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->conns = UINT64_MAX; /* "not given": the default depends on the mode */
    o->rate = -1;
    o->pub_rate = -1;
    o->duration = 10;
    o->timeout = 60;
    o->conn_timeout = 10;
    o->size = 64;
    o->depth = 1;
    o->max_pending = 1000;
    o->per_src = 60000;
    o->pipeline = 64;
    o->drain = 10;
    o->src_base = 0x7f000002; /* 127.0.0.2: leave 127.0.0.1 to the server's own traffic */
    if (parse_url(&o->target, "url", "ws://127.0.0.1:8080/") == -1)
        return -1;

    int c;
    while ((c = getopt_long(argc, argv, "n:d:s:qh", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return 1;
        }
        if (parse_one(o, c, optarg) == -1)
            return -1;
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return -1;
    }
    static const struct {
        const char *name;
        enum load_mode mode;
    } modes[] = {{"hold", LOAD_HOLD},           {"echo", LOAD_ECHO},       {"churn", LOAD_CHURN},
                 {"subscribe", LOAD_SUBSCRIBE}, {"publish", LOAD_PUBLISH}, {"fanout", LOAD_FANOUT}};
    const char *mode = argv[optind];
    size_t m = 0;
    while (m < sizeof(modes) / sizeof(modes[0]) && strcmp(mode, modes[m].name) != 0)
        m++;
    if (m == sizeof(modes) / sizeof(modes[0])) {
        fprintf(stderr, "wsmill-load: unknown mode '%s' (hold, echo, churn, subscribe, publish, fanout)\n",
                mode);
        return -1;
    }
    o->mode = modes[m].mode;
    int conns_given = o->conns != UINT64_MAX;
    if (!conns_given)
        o->conns = o->mode == LOAD_CHURN ? 100 : 1000;
    if (o->mode == LOAD_PUBLISH) {
        /* --rate is the message rate here; publishers connect at once */
        if (o->pub_rate < 0)
            o->pub_rate = o->rate;
        o->rate = 0;
    }
    if (o->pub_rate < 0)
        o->pub_rate = 100;
    if (o->rate < 0)
        o->rate = o->mode == LOAD_CHURN ? 0 : 10000;
    return validate(o, conns_given);
}
