/* pubapi.c: the HTTP publish API (POST /pub/CHANNEL) on publish_listen.
 *
 * Every worker binds the same address with SO_REUSEPORT and the kernel
 * spreads connections; a publish goes into the shared ring, so it reaches
 * subscribers on every worker whichever one took the request.
 *
 * API connections are few (backends, not browsers), so unlike struct conn
 * each one is malloc'd with its own ev_io and ev_timer. Requests are parsed
 * with http-parser and answered synchronously when complete, in arrival
 * order, which is what makes pipelining come out in order. Responses go into
 * a small per-connection output buffer that is written at the end of the
 * wakeup; while it holds bytes the socket refused we read no more requests,
 * which bounds it. */
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/handshake.h"
#include "../common/log.h"
#include "../common/net.h"
#include "../common/utf8.h"
#include "../common/ws_frame.h"
#include "pubapi.h"
#include "pubsub/channels.h"
#include "worker-t.h"

#define API_BACKLOG            4096
#define API_ACCEPTS_PER_WAKEUP 64
#define API_ACCEPT_PAUSE_S     0.1
#define API_READ_SIZE          (64 * 1024)
#define API_READS_PER_WAKEUP   4
#define API_IDLE_S             60.0 /* keep-alive connection without a request */
#define API_LINGER_S           5.0  /* after our FIN, for the peer to hang up */
#define URL_MAX                HS_PATH_MAX
#define FIELD_MAX              32
#define VALUE_MAX              (CONFIG_STR_MAX + 16) /* "Bearer " and the longest token fit */
#define CHAN_MAX               1024                  /* max_channels_per_conn's ceiling */

enum api_state {
    API_IDLE,    /* between requests */
    API_REQUEST, /* a request has begun and is not complete */
    API_LINGER,  /* answered with Connection: close: FIN sent, discard input */
};

enum hdr_id { HDR_OTHER, HDR_AUTH, HDR_CTYPE, HDR_EXPECT };

/* What one request says; reset when the next begins (all before url). */
struct api_req {
    uint8_t *body;
    size_t body_len, body_cap;
    size_t limit;   /* max_message_size when the headers arrived */
    size_t url_len; /* may exceed URL_MAX: too long */
    size_t field_len;
    size_t value_len;
    size_t auth_len; /* may exceed VALUE_MAX: cannot match */
    int in_value;
    int has_auth, ctype_binary, expect_continue;
    int status; /* refused at the headers, answered at the end */
    const char *why;
    int batch;
    unsigned opcode;
    char url[URL_MAX];
    char field[FIELD_MAX];
    char value[VALUE_MAX];
    char auth[VALUE_MAX];
};

struct pubapi;

struct api_conn {
    struct api_conn *prev, *next;
    struct pubapi *api;
    ev_io io;
    ev_timer timer;
    http_parser parser;
    uint8_t state;    /* enum api_state */
    uint8_t closing;  /* no more requests: close once the output is flushed */
    uint8_t peer_eof; /* the peer sent FIN */
    uint8_t broken;   /* out of memory or a write error: close now */
    char *out;
    size_t out_len, out_off, out_cap;
    struct api_req req;
};

struct pubapi {
    struct worker *w;
    int fd;
    ev_io accept_io;
    ev_timer accept_pause;
    struct api_conn *conns;
    int stopped;
    char name[CONFIG_STR_MAX];
};

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* ---- output ----------------------------------------------------------- */

static void out_append(struct api_conn *ac, const void *data, size_t n)
{
    if (ac->broken)
        return;
    if (ac->out_len + n > ac->out_cap) {
        size_t cap = ac->out_cap ? ac->out_cap : 1024;
        while (cap < ac->out_len + n)
            cap *= 2;
        char *p = realloc(ac->out, cap);
        if (!p) {
            ac->broken = 1; /* only this connection suffers */
            return;
        }
        ac->out = p;
        ac->out_cap = cap;
    }
    memcpy(ac->out + ac->out_len, data, n);
    ac->out_len += n;
}

static const char *status_text(int status)
{
    switch (status) {
    case 202: return "Accepted";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    default: return hs_status_text(status);
    }
}

/* Queues one complete response with a JSON body. Connection: close when
 * the connection ends after it, keep-alive for an HTTP/1.0 client that
 * asked for it. */
static void respond(struct api_conn *ac, int status, const char *body, size_t blen)
{
    char head[512];
    const http_parser *p = &ac->parser;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s%s\r\n",
                     status, status_text(status), blen, status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
                     status == 405 ? "Allow: POST\r\n" : "",
                     ac->closing                                ? "Connection: close\r\n"
                     : p->http_major == 1 && p->http_minor == 0 ? "Connection: keep-alive\r\n"
                                                                : "");
    out_append(ac, head, (size_t)n);
    out_append(ac, body, blen);
}

/* Refuses the request: counts it, and answers {"error": why}. why is
 * our own text (no characters JSON would need escaped). then_close ends
 * the connection after the answer. */
static void refuse(struct api_conn *ac, int status, const char *why, int then_close)
{
    struct worker *w = ac->api->w;
    char body[640];
    shm_add(&w->slot->publish_rejected, 1);
    log_debug("publish API fd %d: %d: %s", ac->io.fd, status, why);
    if (then_close)
        ac->closing = 1;
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
    respond(ac, status, body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

/* ---- connection life -------------------------------------------------- */

static void set_timer(struct api_conn *ac, double seconds)
{
    struct ev_loop *loop = ac->api->w->loop;
    ev_timer_stop(loop, &ac->timer);
    ev_timer_set(&ac->timer, seconds, 0);
    ev_timer_start(loop, &ac->timer);
}

static void set_events(struct api_conn *ac, int events)
{
    struct ev_loop *loop = ac->api->w->loop;
    if ((ac->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&ac->io))
        return;
    ev_io_stop(loop, &ac->io);
    ev_io_set(&ac->io, ac->io.fd, events);
    if (events)
        ev_io_start(loop, &ac->io);
}

/* Closes and frees ac. Callers return right after: nothing touches ac
 * once this ran (no watcher of it is active any more). */
static void api_close(struct api_conn *ac)
{
    struct ev_loop *loop = ac->api->w->loop;
    ev_io_stop(loop, &ac->io);
    ev_timer_stop(loop, &ac->timer);
    if (close(ac->io.fd) == -1)
        log_debug("close(%d) of a publish API connection failed: %s", ac->io.fd, strerror(errno));
    if (ac->prev)
        ac->prev->next = ac->next;
    else
        ac->api->conns = ac->next;
    if (ac->next)
        ac->next->prev = ac->prev;
    free(ac->req.body);
    free(ac->out);
    free(ac);
}

/* Writes what is queued. Returns 0, or -1 when the socket failed. */
static int flush(struct api_conn *ac)
{
    while (ac->out_off < ac->out_len) {
        ssize_t n = write(ac->io.fd, ac->out + ac->out_off, ac->out_len - ac->out_off);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            log_debug("write(%d) of a publish API response failed: %s", ac->io.fd, strerror(errno));
            return -1;
        }
        ac->out_off += (size_t)n;
    }
    /* Nothing pending: an idle connection keeps no buffer. */
    free(ac->out);
    ac->out = NULL;
    ac->out_len = ac->out_off = ac->out_cap = 0;
    return 0;
}

/* After every wakeup: write, then pick what to wait for. Returns -1 when
 * ac was closed. */
static int settle(struct api_conn *ac)
{
    if (ac->broken || flush(ac) == -1) {
        api_close(ac);
        return -1;
    }
    int pending = ac->out_len > 0;
    if (!pending && ac->closing && ac->state != API_LINGER) {
        /* Closing with unread input would make the kernel send RST, which
         * can destroy the answer before the peer reads it: send FIN and
         * discard until the peer hangs up. */
        if (ac->peer_eof) {
            api_close(ac);
            return -1;
        }
        if (shutdown(ac->io.fd, SHUT_WR) == -1)
            log_debug("shutdown(%d, SHUT_WR) failed: %s", ac->io.fd, strerror(errno));
        ac->state = API_LINGER;
        set_timer(ac, API_LINGER_S);
    }
    if (!pending && ac->peer_eof) {
        api_close(ac);
        return -1;
    }
    /* No reading while an answer waits: that bounds the output buffer. */
    int events = pending ? EV_WRITE : ac->closing && ac->state != API_LINGER ? 0 : EV_READ;
    set_events(ac, events);
    return 0;
}

static void conn_new(struct pubapi *api, int fd)
{
    int one = 1;
    /* Answers are single small writes (100 Continue, then the response):
     * Nagle would hold the second one for a delayed ACK. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        log_debug("setsockopt(%d, TCP_NODELAY) failed: %s", fd, strerror(errno));
    struct api_conn *ac = calloc(1, sizeof(*ac));
    if (!ac) {
        log_warn("out of memory for a publish API connection; closing fd %d", fd);
        close(fd);
        return;
    }
    ac->api = api;
    http_parser_init(&ac->parser, HTTP_REQUEST);
    ac->parser.data = ac;
    ev_io_init(&ac->io, conn_io_cb, fd, EV_READ);
    ev_io_start(api->w->loop, &ac->io);
    ev_timer_init(&ac->timer, conn_timer_cb, API_IDLE_S, 0);
    ev_timer_start(api->w->loop, &ac->timer);
    ac->next = api->conns;
    if (ac->next)
        ac->next->prev = ac;
    api->conns = ac;
}

/* ---- request parsing -------------------------------------------------- */

static void append(char *buf, size_t cap, size_t *len, const char *at, size_t n)
{
    if (*len < cap) {
        size_t room = cap - *len;
        memcpy(buf + *len, at, n < room ? n : room);
    }
    *len += n;
}

static void trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t'))
        (*v)++, (*n)--;
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

static enum hdr_id header_id(const struct api_req *r)
{
    static const struct {
        const char *name;
        enum hdr_id id;
    } known[] = {
        {"authorization", HDR_AUTH},
        {"content-type", HDR_CTYPE},
        {"expect", HDR_EXPECT},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == r->field_len && !strncasecmp(known[i].name, r->field, r->field_len))
            return known[i].id;
    return HDR_OTHER;
}

/* A header is complete: keep what the API needs. */
static void header_done(struct api_req *r)
{
    size_t vl = r->value_len < VALUE_MAX ? r->value_len : VALUE_MAX;
    const char *v = r->value;
    trim(&v, &vl);
    switch (r->field_len < FIELD_MAX ? header_id(r) : HDR_OTHER) {
    case HDR_AUTH:
        r->has_auth = 1;
        r->auth_len = r->value_len > VALUE_MAX ? VALUE_MAX + 1 : vl;
        memcpy(r->auth, v, vl);
        break;
    case HDR_CTYPE: {
        const char *semi = memchr(v, ';', vl); /* the media type, without parameters */
        size_t tl = semi ? (size_t)(semi - v) : vl;
        trim(&v, &tl);
        r->ctype_binary = tl == 24 && !strncasecmp(v, "application/octet-stream", 24);
        break;
    }
    case HDR_EXPECT: r->expect_continue = vl == 12 && !strncasecmp(v, "100-continue", 12); break;
    default: break;
    }
    r->field_len = r->value_len = 0;
}

static int on_message_begin(http_parser *p)
{
    struct api_conn *ac = p->data;
    struct api_req *r = &ac->req;
    free(r->body);
    memset(r, 0, offsetof(struct api_req, url)); /* the buffers need no clearing */
    r->opcode = WS_OP_TEXT;
    ac->state = API_REQUEST;
    /* A request runs against handshake_timeout from its first byte, so a
     * client trickling bytes cannot hold it open. */
    set_timer(ac, (double)ac->api->w->cfg.handshake_timeout / 1000.0);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct api_conn *ac = p->data;
    append(ac->req.url, URL_MAX, &ac->req.url_len, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct api_req *r = &((struct api_conn *)p->data)->req;
    if (r->in_value) {
        header_done(r);
        r->in_value = 0;
    }
    append(r->field, FIELD_MAX, &r->field_len, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct api_req *r = &((struct api_conn *)p->data)->req;
    r->in_value = 1;
    append(r->value, VALUE_MAX, &r->value_len, at, n);
    return 0;
}

/* Constant time in the token's content: no early exit on a mismatch. */
static int token_equal(const char *got, size_t got_len, const char *want, size_t want_len)
{
    volatile unsigned diff = got_len != want_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)(i < got_len ? got[i] : 0) ^ (unsigned char)want[i];
    return diff == 0;
}

static int authorized(const struct api_req *r, const struct config *cfg)
{
    size_t tl = strlen(cfg->publish_token);
    if (!tl)
        return 1;
    if (!r->has_auth || r->auth_len > VALUE_MAX || r->auth_len < 7 || strncasecmp(r->auth, "Bearer ", 7))
        return 0;
    const char *t = r->auth + 7;
    size_t n = r->auth_len - 7;
    trim(&t, &n);
    return token_equal(t, n, cfg->publish_token, tl);
}

/* Reads ?type=text|binary&batch=lines. Returns NULL, or why it is bad. */
static const char *parse_query(struct api_req *r, const char *q, size_t n, int *type_set)
{
    size_t i = 0;
    while (i < n) {
        const char *item = q + i;
        const char *amp = memchr(item, '&', n - i);
        size_t il = amp ? (size_t)(amp - item) : n - i;
        i += il + 1;
        if (!il)
            continue;
        if (il == 9 && !memcmp(item, "type=text", 9)) {
            r->opcode = WS_OP_TEXT;
            *type_set = 1;
        } else if (il == 11 && !memcmp(item, "type=binary", 11)) {
            r->opcode = WS_OP_BINARY;
            *type_set = 1;
        } else if (il == 11 && !memcmp(item, "batch=lines", 11)) {
            r->batch = 1;
        } else if (il >= 5 && !memcmp(item, "type=", 5)) {
            return "bad query: type must be text or binary";
        } else if (il >= 6 && !memcmp(item, "batch=", 6)) {
            return "bad query: batch must be lines";
        } else {
            return "bad query: unknown parameter (the publish API knows type=text|binary and batch=lines)";
        }
    }
    return NULL;
}

/* The channel list of the path (after "/pub/"), split into off/len.
 * Returns the count, or sets *why and returns -1. */
static int channel_list(struct api_conn *ac, uint16_t *off, uint8_t *len, const char **why)
{
    const struct api_req *r = &ac->req;
    const char *q = memchr(r->url, '?', r->url_len);
    size_t plen = q ? (size_t)(q - r->url) : r->url_len;
    int max = (int)ac->api->w->cfg.max_channels_per_conn;
    int n = hs_channel_list(r->url + 5, plen - 5, max < CHAN_MAX ? max : CHAN_MAX, off, len);
    if (n == -2)
        *why = "too many channels in /pub/A,B,C (max_channels_per_conn)";
    else if (n < 0)
        *why = "invalid channel name: 1-128 bytes of A-Z a-z 0-9 _ . : - separated by commas";
    return n;
}

static int fail(struct api_req *r, int status, const char *why)
{
    r->why = why;
    return status;
}

/* Everything decidable before the body: 0, or the status to refuse with
 * (and r->why). */
static int check_headers(struct api_conn *ac, http_parser *p)
{
    struct api_req *r = &ac->req;
    const struct config *cfg = &ac->api->w->cfg;
    if (r->url_len >= URL_MAX)
        return fail(r, 414, "request target longer than 4095 bytes");
    const char *q = memchr(r->url, '?', r->url_len);
    size_t plen = q ? (size_t)(q - r->url) : r->url_len;
    if (plen < 5 || memcmp(r->url, "/pub/", 5))
        return fail(r, 404, "no such endpoint: the publish API serves POST /pub/CHANNEL");
    if (p->method != HTTP_POST)
        return fail(r, 405, "method not allowed: publish with POST /pub/CHANNEL");
    if (!authorized(r, cfg))
        return fail(r, 401,
                    r->has_auth ? "wrong token (publish_token)"
                                : "missing Authorization: Bearer token (publish_token is set)");
    if (!(p->flags & (F_CHUNKED | F_CONTENTLENGTH)))
        return fail(r, 411, "Content-Length or Transfer-Encoding: chunked required");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > (uint64_t)cfg->max_message_size)
        return fail(r, 413, "body larger than max_message_size");
    const char *why;
    int type_set = 0;
    if (q && (why = parse_query(r, q + 1, r->url_len - plen - 1, &type_set)))
        return fail(r, 400, why);
    if (!type_set && r->ctype_binary) /* an explicit ?type wins */
        r->opcode = WS_OP_BINARY;
    uint16_t off[CHAN_MAX];
    uint8_t len[CHAN_MAX];
    if (channel_list(ac, off, len, &why) < 0)
        return fail(r, 400, why);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct api_conn *ac = p->data;
    struct api_req *r = &ac->req;
    if (r->in_value)
        header_done(r);
    r->in_value = 0;
    r->limit = (size_t)ac->api->w->cfg.max_message_size;
    int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if (p->upgrade) {
        refuse(ac, 400, "Upgrade is not supported on the publish API", 1);
        return -1;
    }
    r->status = check_headers(ac, p);
    /* A refused request's body is read and dropped to keep the connection,
     * unless that would mean reading a body we said we would not take
     * (411, 413, a client waiting for 100 Continue) or of unknown size. */
    if (r->status && (r->status == 411 || r->status == 413 || (p->flags & F_CHUNKED) ||
                      (has_body && r->expect_continue))) {
        refuse(ac, r->status, r->why, 1);
        return -1;
    }
    if (!r->status && has_body && r->expect_continue && p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        out_append(ac, cont, sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct api_conn *ac = p->data;
    struct api_req *r = &ac->req;
    if (r->status)
        return 0; /* refused: dropped */
    if (n > r->limit - r->body_len) {
        /* Only a chunked body gets here: a Content-Length was checked. */
        refuse(ac, 413, "body larger than max_message_size", 1);
        return -1;
    }
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + n)
            cap *= 2;
        if (cap > r->limit)
            cap = r->limit;
        if ((p->flags & F_CONTENTLENGTH) && cap > r->body_len + n + p->content_length)
            cap = r->body_len + n + p->content_length; /* the rest is announced */
        uint8_t *b = realloc(r->body, cap);
        if (!b) {
            ac->broken = 1;
            return -1;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

/* ---- publishing ------------------------------------------------------- */

/* The next message of the body: the whole body, or with batch=lines each
 * non-empty line. Returns 1 with *msg and *len set, or 0 when done. */
static int next_msg(const struct api_req *r, size_t *pos, const uint8_t **msg, size_t *len)
{
    static const uint8_t empty[1];
    if (!r->batch) {
        if (*pos)
            return 0;
        *pos = 1;
        *msg = r->body ? r->body : empty;
        *len = r->body_len;
        return 1;
    }
    while (*pos < r->body_len) {
        const uint8_t *s = r->body + *pos;
        const uint8_t *nl = memchr(s, '\n', r->body_len - *pos);
        size_t n = nl ? (size_t)(nl - s) : r->body_len - *pos;
        *pos += n + (nl != NULL);
        if (n) {
            *msg = s;
            *len = n;
            return 1;
        }
    }
    return 0;
}

/* Drops repeated names (/pub/A,A publishes once, as /ch/A,A joins once). */
static int dedupe(const char *base, uint16_t *off, uint8_t *len, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < k && !dup; j++)
            dup = len[j] == len[i] && !memcmp(base + off[j], base + off[i], len[i]);
        if (!dup)
            off[k] = off[i], len[k] = len[i], k++;
    }
    return k;
}

static void answer_published(struct api_conn *ac, const char *base, const uint16_t *off, const uint8_t *len,
                             int nchan, uint64_t msgs)
{
    /* Names are at most the URL long, plus 3 bytes each of quotes and comma. */
    char body[URL_MAX + 3 * CHAN_MAX + 128];
    int n = snprintf(body, sizeof(body), "{\"published\":%llu,\"messages\":%llu,\"channels\":[",
                     (unsigned long long)(msgs * (uint64_t)nchan), (unsigned long long)msgs);
    for (int i = 0; i < nchan; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "%s\"%.*s\"", i ? "," : "", (int)len[i],
                      base + off[i]);
    n += snprintf(body + n, sizeof(body) - (size_t)n, "]}\n");
    respond(ac, 202, body, (size_t)n);
}

/* Publishes every message to every channel, message by message. Returns
 * 0, or -1 when channels_publish failed (answered). */
static int publish_all(struct api_conn *ac, const uint16_t *off, const uint8_t *len, int nchan)
{
    struct worker *w = ac->api->w;
    const struct api_req *r = &ac->req;
    const char *base = r->url + 5;
    /* One ring record per message naming every channel, so a subscriber of
     * several of them receives it once. */
    char list[RING_CHANNEL_MAX];
    size_t ll = 0;
    for (int i = 0; i < nchan && ll + len[i] + 1 <= sizeof(list); i++) {
        if (ll)
            list[ll++] = ',';
        memcpy(list + ll, base + off[i], len[i]);
        ll += len[i];
    }
    const uint8_t *m;
    size_t pos = 0, mlen;
    while (next_msg(r, &pos, &m, &mlen)) {
        if (channels_publish(w, list, ll, r->opcode, m, mlen) == -1) {
            /* The ring refuses only what is too large (sizes were checked);
             * the broker refuses when Redis is down. channels_publish
             * counted it. */
            int err = errno;
            char body[512], why[320];
            if (err == ENOTCONN || err == ENOBUFS) {
                channels_why(w, why, sizeof(why));
                int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"broker\":\"redis\"}\n", why);
                respond(ac, 503, body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
                return -1;
            }
            log_warn("publish API: channels_publish(%.*s, %zu bytes) failed: %s", (int)ll, list, mlen,
                     strerror(err));
            int n = snprintf(body, sizeof(body), "{\"error\":\"publish failed: %s\"}\n",
                             err == EMSGSIZE ? "message larger than the ring accepts (ring_size)"
                                             : strerror(err));
            respond(ac, err == EMSGSIZE ? 413 : 503, body, (size_t)n);
            return -1;
        }
    }
    return 0;
}

/* The request is complete and passed every check of its headers. */
static void publish(struct api_conn *ac)
{
    struct worker *w = ac->api->w;
    struct api_req *r = &ac->req;
    uint16_t off[CHAN_MAX];
    uint8_t len[CHAN_MAX];
    const char *why;
    int nchan = channel_list(ac, off, len, &why);
    if (nchan < 0) { /* max_channels_per_conn was lowered by a reload meanwhile */
        refuse(ac, 400, why, 0);
        return;
    }
    nchan = dedupe(r->url + 5, off, len, nchan);
    if (r->opcode == WS_OP_TEXT && !utf8_valid(r->body, r->body_len)) {
        refuse(ac, 400, "text message is not valid UTF-8 (send ?type=binary for bytes)", 0);
        return;
    }
    /* Check every message first, so a request is published whole or not at all. */
    size_t pos = 0, mlen, max = ring_max_payload(w->ring);
    const uint8_t *m;
    uint64_t msgs = 0;
    while (next_msg(r, &pos, &m, &mlen)) {
        if (mlen > max) {
            refuse(ac, 413, "message larger than the publish ring accepts (ring_size / 4)", 0);
            return;
        }
        msgs++;
    }
    if (!channels_can_publish(w) && msgs > 1) {
        /* Redis is down: publish_all's first channels_publish fails and
         * answers 503 (never 202 for a message that went nowhere), and
         * broker_publish counts that message lost; the rest of the batch
         * is lost with it. */
        shm_add(&w->slot->broker_lost, msgs - 1);
    }
    if (publish_all(ac, off, len, nchan) == 0)
        answer_published(ac, r->url + 5, off, len, nchan, msgs);
}

static int on_message_complete(http_parser *p)
{
    struct api_conn *ac = p->data;
    struct api_req *r = &ac->req;
    if (!http_should_keep_alive(p) || ac->api->stopped)
        ac->closing = 1;
    if (r->status)
        refuse(ac, r->status, r->why, 0);
    else
        publish(ac);
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    ac->state = API_IDLE;
    set_timer(ac, API_IDLE_S);
    return ac->closing ? -1 : 0; /* after Connection: close, ignore what follows */
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- I/O -------------------------------------------------------------- */

static void feed(struct api_conn *ac, const uint8_t *data, size_t n)
{
    http_parser_execute(&ac->parser, &settings, (const char *)data, n);
    if (ac->closing || ac->broken)
        return; /* a callback answered and stopped the parser */
    enum http_errno err = HTTP_PARSER_ERRNO(&ac->parser);
    if (err == HPE_HEADER_OVERFLOW)
        refuse(ac, 431, "request headers exceed max_header_size", 1);
    else if (err != HPE_OK)
        refuse(ac, 400, http_errno_description(err), 1);
}

static void on_readable(struct api_conn *ac)
{
    struct worker *w = ac->api->w;
    size_t size = w->scratch_size < API_READ_SIZE ? w->scratch_size : API_READ_SIZE;
    for (int i = 0; i < API_READS_PER_WAKEUP; i++) {
        ssize_t n = read(ac->io.fd, w->scratch, size);
        if (n == 0) {
            ac->peer_eof = 1;
            ac->closing = 1;
            return;
        }
        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                log_debug("read(%d) on a publish API connection failed: %s", ac->io.fd, strerror(errno));
                ac->broken = 1;
            }
            return;
        }
        if (ac->state == API_LINGER)
            continue; /* after our answer: discard */
        feed(ac, w->scratch, (size_t)n);
        if (ac->closing || ac->broken || ac->out_len || (size_t)n < size)
            return; /* answered something: write it before reading more */
    }
}

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct api_conn *ac = container_of(io, struct api_conn, io);
    if ((revents & EV_READ) && !(ac->closing && ac->state != API_LINGER))
        on_readable(ac);
    settle(ac); /* writes, and may close ac */
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct api_conn *ac = container_of(t, struct api_conn, timer);
    if (ac->state != API_REQUEST || ac->closing) {
        api_close(ac); /* idle, or lingering, or the peer does not read */
        return;
    }
    refuse(ac, 408, "request not complete within handshake_timeout", 1);
    ac->state = API_IDLE;
    set_timer(ac, API_LINGER_S); /* for the answer to go out */
    settle(ac);
}

/* ---- the listener ----------------------------------------------------- */

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct pubapi *api = container_of(io, struct pubapi, accept_io);
    for (int i = 0; i < API_ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(api->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd != -1) {
            conn_new(api, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN: return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO: continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* A readable listener we cannot take from would spin: pause.
             * Waiting clients stay in the accept queue. */
            log_error("accept4() on publish_listen %s failed: %s; pausing %.0f ms", api->name,
                      strerror(errno), API_ACCEPT_PAUSE_S * 1000);
            ev_io_stop(loop, &api->accept_io);
            ev_timer_start(loop, &api->accept_pause);
            return;
        default: log_error("accept4() on publish_listen %s failed: %s", api->name, strerror(errno)); return;
        }
    }
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct pubapi *api = container_of(t, struct pubapi, accept_pause);
    if (!api->stopped)
        ev_io_start(loop, &api->accept_io);
}

int pubapi_start(struct worker *w)
{
    const char *spec = w->cfg.publish_listen;
    if (!spec[0])
        return 0;
    union sockaddr_any a;
    socklen_t alen = net_parse_hostport(spec, &a);
    if (!alen) {
        log_error(
            "publish_listen %s: not HOST:PORT with an IPv4/IPv6 address, localhost or * and a port 1-65535",
            spec);
        return -1;
    }
    struct pubapi *api = xcalloc(1, sizeof(*api));
    api->w = w;
    snprintf(api->name, sizeof(api->name), "%s", spec);
    char what[sizeof(api->name) + 16];
    snprintf(what, sizeof(what), "publish_listen %s", spec);
    api->fd = net_listen(&a, alen, what, API_BACKLOG);
    if (api->fd == -1) {
        free(api);
        return -1;
    }
    ev_io_init(&api->accept_io, accept_cb, api->fd, EV_READ);
    ev_io_start(w->loop, &api->accept_io);
    ev_timer_init(&api->accept_pause, accept_resume_cb, API_ACCEPT_PAUSE_S, 0);
    w->pubapi = api;
    log_debug("publish API listening on %s", api->name);
    return 0;
}

void pubapi_stop(struct worker *w)
{
    struct pubapi *api = w->pubapi;
    if (!api || api->stopped)
        return;
    api->stopped = 1;
    ev_io_stop(w->loop, &api->accept_io);
    ev_timer_stop(w->loop, &api->accept_pause);
    if (close(api->fd) == -1)
        log_error("close(%d) of publish_listen %s failed: %s", api->fd, api->name, strerror(errno));
    api->fd = -1;
    /* Requests in progress finish (their answer says Connection: close);
     * idle keep-alive connections go now. */
    struct api_conn *next;
    for (struct api_conn *ac = api->conns; ac; ac = next) {
        next = ac->next;
        if (ac->state == API_REQUEST)
            continue; /* on_message_complete sees api->stopped */
        if (!ac->out_len)
            api_close(ac);
        else
            ac->closing = 1; /* its last answer is still going out */
    }
}
