/* request.c: see request.h. */
#include "request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { HDR_AUTH = 1, HDR_CTYPE, HDR_EXPECT };

static const struct http_hdr_name known[] = {
    {"authorization", HDR_AUTH},
    {"content-type", HDR_CTYPE},
    {"expect", HDR_EXPECT},
};

void http_request_init(struct http_request *r)
{
    memset(r, 0, offsetof(struct http_request, url));
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    http_hdr_init(&r->hh);
}

void http_request_reset_body(struct http_request *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}

static void pause_with(struct http_request *r, int event)
{
    r->event = event;
    http_parser_pause(&r->parser, 1);
}

/* A header is complete: keep what the routes need. */
static void header_done(struct http_request *r, int id)
{
    size_t vl = r->value_len < HTTP_VALUE_MAX ? r->value_len : HTTP_VALUE_MAX;
    const char *v = r->value;
    http_hdr_trim(&v, &vl);
    switch (id) {
    case HDR_AUTH:
        r->has_auth = 1;
        r->auth_len = r->value_len > HTTP_VALUE_MAX ? HTTP_VALUE_MAX + 1 : vl;
        memmove(r->auth, v, vl);
        break;
    case HDR_CTYPE: {
        const char *semi = memchr(v, ';', vl); /* the media type, without parameters */
        size_t tl = semi ? (size_t)(semi - v) : vl;
        http_hdr_trim(&v, &tl);
        r->ctype_binary = tl == 24 && !strncasecmp(v, "application/octet-stream", 24);
        break;
    }
    case HDR_EXPECT: r->expect_continue = vl == 12 && !strncasecmp(v, "100-continue", 12); break;
    default: break;
    }
    r->value_len = 0;
}

static int on_message_begin(http_parser *p)
{
    struct http_request *r = p->data;
    free(r->body);
    /* From begun to the buffers (which need no clearing); not the parser. */
    memset(&r->begun, 0, offsetof(struct http_request, url) - offsetof(struct http_request, begun));
    r->begun = 1;
    http_hdr_init(&r->hh);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http_request *r = p->data;
    http_hdr_append(r->url, HTTP_URL_MAX, &r->url_len, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct http_request *r = p->data;
    int done = http_hdr_field(&r->hh, at, n);
    if (done != HTTP_HDR_NONE)
        header_done(r, done);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct http_request *r = p->data;
    http_hdr_value(&r->hh, known, sizeof(known) / sizeof(known[0]));
    http_hdr_append(r->value, HTTP_VALUE_MAX, &r->value_len, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_request *r = p->data;
    int done = http_hdr_end(&r->hh);
    if (done != HTTP_HDR_NONE)
        header_done(r, done);
    pause_with(r, HTTP_REQ_HEAD);
    return 0;
}

static int invalid(struct http_request *r, int status, const char *why)
{
    r->status = status;
    r->why = why;
    return -1;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct http_request *r = p->data;
    if (r->discard)
        return 0;
    if (n > r->limit - r->body_len)
        return invalid(r, 413, "body larger than max_message_size");
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + n)
            cap *= 2;
        if (cap > r->limit)
            cap = r->limit;
        if ((p->flags & F_CONTENTLENGTH) && cap > r->body_len + n + p->content_length)
            cap = r->body_len + n + p->content_length; /* the rest is announced */
        uint8_t *b = realloc(r->body, cap);
        if (!b)
            return invalid(r, 0, "out of memory");
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_request *r = p->data;
    r->begun = 0;
    pause_with(r, HTTP_REQ_DONE);
    return 0;
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

enum http_req_event http_request_feed(struct http_request *r, const uint8_t *data, size_t n, size_t *used)
{
    if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED)
        http_parser_pause(&r->parser, 0);
    r->event = HTTP_REQ_MORE;
    *used = http_parser_execute(&r->parser, &settings, (const char *)data, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&r->parser);
    if (err == HPE_OK || err == HPE_PAUSED)
        return (enum http_req_event)r->event;
    if (err == HPE_CB_body)
        return r->status ? HTTP_REQ_INVALID : HTTP_REQ_NOMEM;
    if (err == HPE_HEADER_OVERFLOW)
        r->status = 431, r->why = "request headers exceed max_header_size";
    else
        r->status = 400, r->why = http_errno_description(err);
    return HTTP_REQ_INVALID;
}

size_t http_request_path_len(const struct http_request *r)
{
    size_t l = r->url_len < HTTP_URL_MAX ? r->url_len : HTTP_URL_MAX;
    const char *q = memchr(r->url, '?', l);
    return q ? (size_t)(q - r->url) : r->url_len;
}

const char *http_request_query(const struct http_request *r, size_t *len)
{
    size_t l = r->url_len < HTTP_URL_MAX ? r->url_len : HTTP_URL_MAX;
    const char *q = memchr(r->url, '?', l);
    if (!q)
        return NULL;
    *len = l - (size_t)(q - r->url) - 1;
    return q + 1;
}
