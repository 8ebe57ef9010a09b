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
    "usage: wsmill-load hold|echo|churn [options]\n"
    "  --url ws://HOST:PORT/PATH  target (default ws://127.0.0.1:8080/)\n"
    "  -n, --connections N        hold/echo: connections; churn: concurrent loops\n"
    "                             (default 1000 hold/echo, 100 churn; k/m suffixes)\n"
    "  --concurrency N            same as --connections\n"
    "  --rate R                   new connections/s over all processes, 0 = unlimited\n"
    "                             (default 10000 hold/echo, 0 churn)\n"
    "  -d, --duration T           s: hold time, or the measured echo/churn window (10)\n"
    "  --timeout S                s: verify phase bound; ramp and close get S + n/rate (60)\n"
    "  --conn-timeout S           s: per connect+handshake, per echo, per close (10)\n"
    "  -s, --size S               message payload bytes (64)\n"
    "  --depth D                  echo: messages in flight per connection (1)\n"
    "  --verify-sample K          hold: K random connections echo once before closing\n"
    "  --procs P                  client processes (default: <= 19000 sockets each)\n"
    "  --max-pending N            per process cap on unfinished handshakes/closes (1000)\n"
    "  --cpu LIST                 pin processes round-robin, e.g. 1 or 0,1 or 0-3\n"
    "  --src-base ADDR            first source address (127.0.0.2)\n"
    "  --per-src N                connections per source address (60000)\n"
    "  --origin ORIGIN            send an Origin header\n"
    "  --raw                      plain TCP against wsmill-floor --mode echo\n"
    "  --handshake-only           hold/churn: upgrade only, no echo, no close frame\n"
    "  -q, --quiet                no progress lines on stderr\n"
    "  -h, --help\n";

enum {
    O_URL = 256,
    O_RATE,
    O_TIMEOUT,
    O_CONN_TIMEOUT,
    O_DEPTH,
    O_VERIFY,
    O_PROCS,
    O_PENDING,
    O_CPU,
    O_SRC_BASE,
    O_PER_SRC,
    O_ORIGIN,
    O_RAW,
    O_HS_ONLY
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
    {"procs", required_argument, NULL, O_PROCS},
    {"max-pending", required_argument, NULL, O_PENDING},
    {"cpu", required_argument, NULL, O_CPU},
    {"src-base", required_argument, NULL, O_SRC_BASE},
    {"per-src", required_argument, NULL, O_PER_SRC},
    {"origin", required_argument, NULL, O_ORIGIN},
    {"raw", no_argument, NULL, O_RAW},
    {"handshake-only", no_argument, NULL, O_HS_ONLY},
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

/* "ws://host[:port][/path]"; resolves host to one IPv4 address. */
static int parse_url(struct load_opts *o, const char *url)
{
    if (strncasecmp(url, "ws://", 5) != 0) {
        fprintf(stderr, "wsmill-load: --url %s: only ws:// URLs are supported\n", url);
        return -1;
    }
    snprintf(o->url, sizeof(o->url), "%s", url);
    const char *hp = url + 5;
    const char *slash = strchr(hp, '/');
    size_t hplen = slash ? (size_t)(slash - hp) : strlen(hp);
    snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
    char name[256];
    if (hplen == 0 || hplen >= sizeof(name)) {
        fprintf(stderr, "wsmill-load: --url %s: bad host\n", url);
        return -1;
    }
    memcpy(name, hp, hplen);
    name[hplen] = '\0';
    unsigned long port = 80;
    char *colon = strrchr(name, ':');
    if (colon != NULL) {
        char *end;
        *colon = '\0';
        port = strtoul(colon + 1, &end, 10);
        if (*end != '\0' || port == 0 || port > 65535) {
            fprintf(stderr, "wsmill-load: --url %s: bad port\n", url);
            return -1;
        }
    }
    snprintf(o->host, sizeof(o->host), "%s:%lu", name, port);
    o->dst.sin_family = AF_INET;
    o->dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, name, &o->dst.sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "wsmill-load: getaddrinfo(%s) failed: %s\n", name, gai_strerror(rc));
        return -1;
    }
    o->dst.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

/* "1", "0,1", "0-3,6". */
static int parse_cpus(struct load_opts *o, const char *s)
{
    const char *p = s;
    o->ncpus = 0;
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
            if (o->ncpus == LOAD_MAX_CPUS || c >= 1024)
                goto bad;
            o->cpus[o->ncpus++] = (int)c;
        }
        if (*end == ',')
            end++;
        else if (*end != '\0')
            goto bad;
        p = end;
    }
    if (o->ncpus > 0)
        return 0;
bad:
    fprintf(stderr, "wsmill-load: --cpu %s: expected a list like 0,1 or 0-3\n", s);
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
    case O_URL: return parse_url(o, arg);
    case 'n': return parse_u64("connections", arg, 1e8, &o->conns);
    case O_RATE: return parse_num("rate", arg, 1e9, &o->rate);
    case 'd': return parse_num("duration", arg, 86400, &o->duration);
    case O_TIMEOUT: return parse_num("timeout", arg, 86400, &o->timeout);
    case O_CONN_TIMEOUT: return parse_num("conn-timeout", arg, 86400, &o->conn_timeout);
    case 's': return parse_u64("size", arg, 16 << 20, &o->size);
    case O_DEPTH: return parse_u32("depth", arg, 4096, &o->depth);
    case O_VERIFY: return parse_u64("verify-sample", arg, 1e8, &o->verify_sample);
    case O_PROCS: return parse_u32("procs", arg, 4096, &o->procs);
    case O_PENDING: return parse_u32("max-pending", arg, 1e6, &o->max_pending);
    case O_CPU: return parse_cpus(o, arg);
    case O_SRC_BASE: return parse_src(o, arg);
    case O_PER_SRC: return parse_u64("per-src", arg, 1e6, &o->per_src);
    case O_ORIGIN: o->origin = arg; return 0;
    case O_RAW: o->raw = 1; return 0;
    case O_HS_ONLY: o->handshake_only = 1; return 0;
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

/* Cross-option checks, after the mode-dependent defaults are in. */
static int validate(struct load_opts *o)
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
    if (o->handshake_only && o->mode == LOAD_ECHO)
        return bad("--handshake-only applies to hold and churn only");
    if (o->verify_sample > 0 && (o->mode != LOAD_HOLD || o->handshake_only))
        return bad("--verify-sample applies to hold without --handshake-only");
    if (o->verify_sample > o->conns)
        o->verify_sample = o->conns;
    uint64_t last = o->src_base + (o->conns - 1) / o->per_src;
    if (last > 0xffffffffu || (o->src_base >> 24) != (last >> 24))
        return bad("--src-base/--per-src: source addresses would leave the base's /8");
    return 0;
}

int load_opts_parse(struct load_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->conns = UINT64_MAX; /* "not given": the default depends on the mode */
    o->rate = -1;
    o->duration = 10;
    o->timeout = 60;
    o->conn_timeout = 10;
    o->size = 64;
    o->depth = 1;
    o->max_pending = 1000;
    o->per_src = 60000;
    o->src_base = 0x7f000002; /* 127.0.0.2: leave 127.0.0.1 to the server's own traffic */
    if (parse_url(o, "ws://127.0.0.1:8080/") == -1)
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
    const char *mode = argv[optind];
    if (strcmp(mode, "hold") == 0)
        o->mode = LOAD_HOLD;
    else if (strcmp(mode, "echo") == 0)
        o->mode = LOAD_ECHO;
    else if (strcmp(mode, "churn") == 0)
        o->mode = LOAD_CHURN;
    else {
        fprintf(stderr, "wsmill-load: unknown mode '%s' (hold, echo, churn)\n", mode);
        return -1;
    }
    if (o->conns == UINT64_MAX)
        o->conns = o->mode == LOAD_CHURN ? 100 : 1000;
    if (o->rate < 0)
        o->rate = o->mode == LOAD_CHURN ? 0 : 10000;
    return validate(o);
}
