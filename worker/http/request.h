/* request.h: one HTTP/1.1 request at a time, parsed incrementally with
 * http-parser. Pure: no I/O; the only memory it takes is the body, grown
 * up to the limit the caller sets when the headers are in.
 *
 * http_request_feed stops at two points, so the caller can decide between
 * them: when the headers are complete (HTTP_REQ_HEAD: pick a route, check
 * it, set limit or discard, maybe answer 100 Continue) and when the request
 * is complete (HTTP_REQ_DONE: answer it). Then it is called again with
 * the bytes it did not consume; pipelined requests come out in order. */
#ifndef WSMILL_HTTP_REQUEST_H
#define WSMILL_HTTP_REQUEST_H
#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/config.h"
#include "../../common/handshake.h"
#include "../../common/http_hdr.h"

#define HTTP_URL_MAX   HS_PATH_MAX
#define HTTP_VALUE_MAX (CONFIG_STR_MAX + 16) /* "Bearer " and the longest token fit */

enum http_req_event {
    HTTP_REQ_MORE,    /* every byte consumed; more are needed */
    HTTP_REQ_HEAD,    /* the headers are complete */
    HTTP_REQ_DONE,    /* the request is complete */
    HTTP_REQ_INVALID, /* malformed or over a limit: answer status (why), then close */
    HTTP_REQ_NOMEM,   /* no memory for the body: close without an answer */
};

struct http_request {
    http_parser parser;
    struct http_hdr hh;
    /* What one request says; reset when the next begins (all before url). */
    int begun;     /* a request has started (its first byte came) */
    uint8_t *body; /* malloc'd; the caller may take it after DONE */
    size_t body_len, body_cap;
    size_t limit;   /* largest body kept (set at HEAD; 0 = none) */
    int discard;    /* set at HEAD: read the body, keep none of it */
    size_t url_len; /* may exceed HTTP_URL_MAX: too long */
    size_t value_len;
    size_t auth_len; /* may exceed HTTP_VALUE_MAX: cannot match */
    int has_auth, ctype_binary, expect_continue;
    int event;       /* what paused the parser */
    int status;      /* HTTP_REQ_INVALID: the status to answer */
    const char *why; /* and why (static text) */
    char url[HTTP_URL_MAX];
    char value[HTTP_VALUE_MAX];
    char auth[HTTP_VALUE_MAX];
};

/* Prepares r for the first request of a connection. */
void http_request_init(struct http_request *r);
/* Frees the body (if any). r can be fed again afterwards. */
void http_request_reset_body(struct http_request *r);

/* Parses up to n bytes; *used says how many it consumed. */
enum http_req_event http_request_feed(struct http_request *r, const uint8_t *data, size_t n, size_t *used);

/* The request target without its query string, and the query (after '?',
 * NULL when there is none). Valid from HEAD on when url_len < HTTP_URL_MAX. */
size_t http_request_path_len(const struct http_request *r);
const char *http_request_query(const struct http_request *r, size_t *len);

#endif
