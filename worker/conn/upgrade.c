/* upgrade.c: the upgrade request, parsed incrementally with http-parser.
 * Only the headers the handshake needs are kept; the request itself is
 * never buffered, so a request split over many reads costs no more memory
 * than one that arrives whole. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../common/clock.h"
#include "../../common/handshake.h"
#include "../../common/http_hdr.h"
#include "../../common/jwt.h"
#include "../../common/log.h"
#include "../http/metrics.h"
#include "conn.h"
#include "endpoint.h"
#include "limits.h"
#include "output.h"
#include "pmd.h"
#include "upgrade.h"

enum hdr_id {
    HDR_OTHER = HTTP_HDR_OTHER,
    HDR_HOST,
    HDR_UPGRADE,
    HDR_CONNECTION,
    HDR_KEY,
    HDR_VERSION,
    HDR_ORIGIN,
    HDR_AUTH,
    HDR_PROTOCOL,
    HDR_EXTENSIONS
};

#define VALUE_MAX  HS_ORIGIN_MAX        /* longest value we keep (Origin); longer ones are truncated */
#define URL_INLINE 48                   /* "/echo", "/ch/room-42": no allocation */
#define AUTH_MAX   (JWT_TOKEN_MAX + 16) /* "Bearer " + a token */

struct hs_state {
    http_parser parser;
    struct hs_request req;
    size_t bytes; /* request bytes seen, against max_header_size */
    int headers_done;
    struct http_hdr hh; /* the header being read (common/http_hdr.h) */
    uint64_t began_ns;  /* accepted (mono_ns): the handshake time goes to /metrics */
    char value[VALUE_MAX];
    size_t value_len;        /* may exceed VALUE_MAX: truncated */
    char *url;               /* url_inline, or a heap buffer for long /ch/ lists */
    size_t url_len, url_cap; /* url_len may exceed HS_PATH_MAX: too long */
    char url_inline[URL_INLINE];
    const char *path; /* after headers: url without the query string */
    size_t path_len;
    char *auth; /* Authorization value (a token can be long); malloc'd */
    size_t auth_len;
    /* permessage-deflate: the first acceptable offer (pmd.h) */
    int pmd_pref;   /* deflate_client_window_bits, or 0 when permessage_deflate is off */
    int pmd_result; /* enum pmd_offer_result so far */
    struct pmd_params pmd;
};

void *upgrade_state_new(void)
{
    struct hs_state *hs = malloc(sizeof(*hs));
    if (!hs)
        return NULL;
    http_parser_init(&hs->parser, HTTP_REQUEST);
    hs->parser.data = hs;
    hs_request_init(&hs->req);
    hs->bytes = 0;
    hs->headers_done = 0;
    http_hdr_init(&hs->hh);
    hs->began_ns = mono_ns();
    hs->value_len = hs->url_len = 0;
    hs->url = hs->url_inline;
    hs->url_cap = URL_INLINE;
    hs->path = NULL;
    hs->path_len = 0;
    hs->auth = NULL;
    hs->auth_len = 0;
    hs->pmd_pref = 0;
    hs->pmd_result = PMD_OFFER_NONE;
    return hs;
}

void upgrade_state_free(void *p)
{
    struct hs_state *hs = p;
    if (hs->url != hs->url_inline)
        free(hs->url);
    free(hs->auth);
    free(hs);
}

static const struct http_hdr_name known[] = {
    {"host", HDR_HOST},
    {"upgrade", HDR_UPGRADE},
    {"connection", HDR_CONNECTION},
    {"sec-websocket-key", HDR_KEY},
    {"sec-websocket-version", HDR_VERSION},
    {"origin", HDR_ORIGIN},
    {"authorization", HDR_AUTH},
    {"sec-websocket-protocol", HDR_PROTOCOL},
    {"sec-websocket-extensions", HDR_EXTENSIONS},
};

/* One Sec-WebSocket-Extensions header: the offers in it, until one is
 * accepted. A value longer than we keep is read up to its last whole
 * offer (the last comma we have). */
static void extensions(struct hs_state *hs, const char *v, size_t vl)
{
    if (!hs->pmd_pref || hs->pmd_result != PMD_OFFER_NONE)
        return;
    if (hs->value_len > VALUE_MAX) {
        const char *comma = memrchr(v, ',', vl);
        vl = comma ? (size_t)(comma - v) : 0;
    }
    hs->pmd_result = pmd_offer_parse(v, vl, hs->pmd_pref, &hs->pmd);
}

/* A header (name and whole value) is complete: record what it says. */
static void header_done(struct hs_state *hs, int id)
{
    struct hs_request *r = &hs->req;
    size_t vl = hs->value_len < VALUE_MAX ? hs->value_len : VALUE_MAX;
    const char *v = hs->value;
    switch (id) {
    case HDR_HOST: r->has_host = 1; break;
    case HDR_UPGRADE: r->upgrade_websocket |= hs_header_has_token(v, vl, "websocket"); break;
    case HDR_CONNECTION: r->connection_upgrade |= hs_header_has_token(v, vl, "upgrade"); break;
    case HDR_PROTOCOL: r->wsmill_v1 |= hs_header_has_token(v, vl, HS_PROTOCOL_V1); break;
    case HDR_KEY:
        r->key_count++;
        r->key_len = (int)(hs->value_len > HS_KEY_LEN ? HS_KEY_LEN + 1 : hs->value_len);
        memcpy(r->key, v, vl < HS_KEY_LEN ? vl : HS_KEY_LEN);
        r->key[vl < HS_KEY_LEN ? vl : HS_KEY_LEN] = '\0';
        break;
    case HDR_VERSION: {
        r->version_count++;
        int ver = 0, ok = vl > 0 && vl <= 3;
        for (size_t i = 0; ok && i < vl; i++)
            ok = v[i] >= '0' && v[i] <= '9' ? (ver = ver * 10 + v[i] - '0', 1) : 0;
        r->version = ok ? ver : -1;
        break;
    }
    case HDR_ORIGIN:
        r->origin_len = (int)(hs->value_len < HS_ORIGIN_MAX ? hs->value_len : HS_ORIGIN_MAX);
        memcpy(r->origin, v,
               (size_t)r->origin_len < HS_ORIGIN_MAX ? (size_t)r->origin_len : HS_ORIGIN_MAX - 1);
        break;
    case HDR_EXTENSIONS: extensions(hs, v, vl); break;
    default: break;
    }
    hs->value_len = 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct hs_state *hs = p->data;
    size_t want = hs->url_len + n;
    if (want > hs->url_cap && hs->url_len < HS_PATH_MAX) {
        size_t cap = want < HS_PATH_MAX ? want * 2 : HS_PATH_MAX;
        char *u = malloc(cap);
        if (!u)
            return -1; /* out of memory: the request fails as malformed */
        memcpy(u, hs->url, hs->url_len);
        if (hs->url != hs->url_inline)
            free(hs->url);
        hs->url = u;
        hs->url_cap = cap;
    }
    http_hdr_append(hs->url, hs->url_cap, &hs->url_len, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct hs_state *hs = p->data;
    int done = http_hdr_field(&hs->hh, at, n);
    if (done != HTTP_HDR_NONE)
        header_done(hs, done);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct hs_state *hs = p->data;
    if (http_hdr_value(&hs->hh, known, sizeof(known) / sizeof(known[0])) == HDR_AUTH) {
        /* Kept whole (up to a token's maximum) and only this one. */
        if (!hs->auth && !(hs->auth = malloc(AUTH_MAX)))
            return -1;
        http_hdr_append(hs->auth, AUTH_MAX, &hs->auth_len, at, n);
        return 0;
    }
    http_hdr_append(hs->value, VALUE_MAX, &hs->value_len, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct hs_state *hs = p->data;
    int done = http_hdr_end(&hs->hh);
    if (done != HTTP_HDR_NONE)
        header_done(hs, done);
    hs->headers_done = 1;
    hs->req.method_get = p->method == HTTP_GET;
    hs->req.http_major = p->http_major;
    hs->req.http_minor = p->http_minor;
    /* Path without the query string; too long stays too long. */
    size_t l = hs->url_len < hs->url_cap ? hs->url_len : hs->url_cap;
    const char *q = memchr(hs->url, '?', l);
    hs->path = hs->url;
    hs->path_len = q ? (size_t)(q - hs->url) : hs->url_len;
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

/* Answers with an HTTP error, counts it, and lets the connection linger. */
static void reject(struct conn *c, int status, enum hs_reject why, const char *text)
{
    struct worker *w = conn_worker(c);
    char buf[512];
    shm_add(&w->slot->rejected[why], 1);
    log_debug("fd %d: handshake refused with %d: %s", conn_fd(c), status, text);
    size_t n = hs_build_error(buf, sizeof(buf), status, text);
    conn_set_state(c, CONN_LINGER);
    if (output_raw(c, buf, n) == -1)
        return;
    conn_fail(c, 0, text); /* not OPEN: this only lingers */
}

static enum hs_reject reject_reason(int status)
{
    switch (status) {
    case 403: return HS_REJECT_FORBIDDEN;
    case 404: return HS_REJECT_NOT_FOUND;
    case 405: return HS_REJECT_METHOD;
    case 426: return HS_REJECT_VERSION;
    case 431: return HS_REJECT_HEADER_SIZE;
    case 503: return HS_REJECT_FULL;
    default: return HS_REJECT_BAD_REQUEST;
    }
}

static const char *reject_text(int status)
{
    switch (status) {
    case 403: return "Origin not allowed (allowed_origins)";
    case 405: return "a WebSocket upgrade must use GET";
    case 426: return "unsupported Sec-WebSocket-Version; this server speaks 13";
    default:
        return "not a valid WebSocket upgrade request (RFC 6455 4.1: GET, HTTP/1.1, Host, "
               "Upgrade: websocket, Connection: Upgrade, a 16-byte base64 Sec-WebSocket-Key, "
               "Sec-WebSocket-Version: 13)";
    }
}

/* The token: the query parameter `token`, else `Authorization: Bearer`. */
static const char *find_token(struct hs_state *hs, size_t *len)
{
    size_t ul = hs->url_len < hs->url_cap ? hs->url_len : hs->url_cap;
    for (size_t i = hs->path_len + 1; i + 6 <= ul; i++) {
        if ((i == hs->path_len + 1 || hs->url[i - 1] == '&') && !memcmp(hs->url + i, "token=", 6)) {
            const char *v = hs->url + i + 6;
            const char *end = memchr(v, '&', ul - (i + 6));
            *len = end ? (size_t)(end - v) : ul - (i + 6);
            return v;
        }
    }
    if (hs->auth && hs->auth_len <= AUTH_MAX && hs->auth_len > 7 && !strncasecmp(hs->auth, "Bearer ", 7)) {
        *len = hs->auth_len - 7;
        return hs->auth + 7;
    }
    return NULL;
}

/* auth_secret is set: the request must carry a valid HS256 token, and the
 * endpoint must accept its claims (a channels claim must list every channel
 * asked for). Answers 401 or 403 and returns 0 when not. */
static int authorized(struct conn *c, struct hs_state *hs, const struct endpoint *ep, const char *rest,
                      size_t rest_len)
{
    struct worker *w = conn_worker(c);
    size_t tl = 0;
    const char *token = find_token(hs, &tl);
    if (!token) {
        reject(c, 401, HS_REJECT_UNAUTHORIZED,
               "a token is required (?token=JWT or Authorization: Bearer JWT)");
        return 0;
    }
    struct jwt_claims claims;
    enum jwt_result r = jwt_verify(token, tl, w->cfg.auth_secret, strlen(w->cfg.auth_secret),
                                   (int64_t)ev_now(w->loop), 0, &claims);
    if (r != JWT_OK) {
        char why[128];
        snprintf(why, sizeof(why), "token refused: %s", jwt_result_name(r));
        reject(c, 401, HS_REJECT_UNAUTHORIZED, why);
        return 0;
    }
    char why[200];
    if (ep->authorize && ep->authorize(&claims, rest, rest_len, why, sizeof(why))) {
        reject(c, 403, HS_REJECT_CHANNEL_DENIED, why);
        return 0;
    }
    return 1;
}

/* The path's endpoint, or 0 after answering 414 or 404. */
static int route(struct conn *c, struct hs_state *hs, const char **rest, size_t *rest_len)
{
    if (hs->path_len >= HS_PATH_MAX) {
        reject(c, 414, HS_REJECT_BAD_REQUEST, "request path too long");
        return 0;
    }
    int ep = endpoint_find(conn_worker(c), hs->path, hs->path_len, rest, rest_len);
    if (!ep)
        reject(c, 404, HS_REJECT_NOT_FOUND, "no WebSocket endpoint at this path (try /echo or /ch/NAME)");
    return ep;
}

/* The request is complete: decide, answer, and on success open. */
static void decide(struct conn *c, struct hs_state *hs)
{
    struct worker *w = conn_worker(c);
    int status = hs_check(&hs->req, &w->cfg);
    if (status) {
        reject(c, status, reject_reason(status), reject_text(status));
        return;
    }
    const char *rest;
    size_t rest_len;
    int idx = route(c, hs, &rest, &rest_len);
    if (!idx)
        return;
    const struct endpoint *ep = endpoint_of(w, idx);
    enum hs_reject reason = HS_REJECT_BAD_REQUEST;
    const char *why = NULL;
    if (ep->check && (status = ep->check(w, rest, rest_len, &reason, &why))) {
        reject(c, status, reason, why);
        return;
    }
    if (hs->pmd_result == PMD_OFFER_MALFORMED) {
        reject(c, 400, HS_REJECT_BAD_REQUEST,
               "malformed Sec-WebSocket-Extensions (RFC 6455 9.1: offer; param[=token|\"quoted\"], ...)");
        return;
    }
    if (w->cfg.auth_secret[0] && !authorized(c, hs, ep, rest, rest_len))
        return;
    /* The endpoint's subprotocol: today only wsmill.v1 exists, and the
     * request parser notes whether the client offered it. */
    int offered = ep->protocol && hs->req.wsmill_v1;
    size_t ul = hs->url_len < hs->url_cap ? hs->url_len : hs->url_cap;
    const char *query = ul > hs->path_len ? hs->url + hs->path_len + 1 : "";
    size_t qlen = ul > hs->path_len ? ul - hs->path_len - 1 : 0;
    if (ep->check_query && (status = ep->check_query(w, query, qlen, offered, &why))) {
        reject(c, status, HS_REJECT_BAD_REQUEST, why);
        return;
    }
    if (!limits_admit_upgrade(w)) {
        reject(c, 503, HS_REJECT_FULL, "server full (max_connections reached); retry later");
        return;
    }
    char resp[256 + PMD_ANSWER_MAX];
    /* The endpoint's subprotocol, when the client offered it, is named in
     * the answer (a wsmill.v1 subscriber, pubsub/histsub.c). */
    size_t n = hs_build_accept_proto(resp, sizeof(resp), hs->req.key, (size_t)hs->req.key_len,
                                     offered ? ep->protocol : NULL);
    if (hs->pmd_result == PMD_OFFER_ACCEPTED) {
        /* The answer goes before the blank line that ends the head. */
        n -= 2;
        n += pmd_offer_answer(&hs->pmd, resp + n, sizeof(resp) - n - 2);
        memcpy(resp + n, "\r\n", 2);
        n += 2;
        pmd_conn_agreed(c, &hs->pmd);
        shm_add(&w->slot->pmd_negotiated, 1);
    }
    c->flags |= CF_UPGRADED;
    c->endpoint = (uint8_t)idx;
    shm_add(&w->slot->connections, 1);
    shm_add(&w->slot->handshakes, 1);
    metrics_observe_handshake(w, hs->began_ns);
    if (offered) {
        ep->open_protocol(c, rest, rest_len, query, qlen, resp, n);
        return;
    }
    if (ep->open && ep->open(c, rest, rest_len) == -1) {
        conn_drop(c, 0); /* only out of memory gets here (the path was checked above) */
        return;
    }
    conn_set_state(c, CONN_OPEN); /* frees hs (and rest with it) */
    output_raw(c, resp, n);
}

size_t upgrade_feed(struct conn *c, uint8_t *data, size_t len)
{
    struct worker *w = conn_worker(c);
    struct hs_state *hs = c->busy;
    hs->pmd_pref = w->cfg.permessage_deflate ? (int)w->cfg.deflate_client_window_bits : 0;
    size_t used = http_parser_execute(&hs->parser, &settings, (const char *)data, len);
    hs->bytes += used;
    if (hs->headers_done) {
        if ((int64_t)hs->bytes > w->cfg.max_header_size) {
            reject(c, 431, HS_REJECT_HEADER_SIZE, "request headers exceed max_header_size");
            return len;
        }
        int upgrade = hs->parser.upgrade;
        decide(c, hs);
        /* Bytes after the request are frames only on a real upgrade. */
        return upgrade && c->state == CONN_OPEN ? used : len;
    }
    enum http_errno err = HTTP_PARSER_ERRNO(&hs->parser);
    if (err == HPE_HEADER_OVERFLOW || (int64_t)hs->bytes > w->cfg.max_header_size) {
        reject(c, 431, HS_REJECT_HEADER_SIZE, "request headers exceed max_header_size");
        return len;
    }
    if (err != HPE_OK) {
        reject(c, 400, HS_REJECT_BAD_REQUEST, http_errno_description(err));
        return len;
    }
    return len;
}
