/* http_hdr.h: picking the headers a handler wants out of http-parser's
 * split callbacks. http-parser hands over a header's name and value in
 * pieces (a read may end anywhere); this keeps the name until its value
 * begins, says which known header the value belongs to, and when the value
 * is complete. Shared by the WebSocket upgrade path (worker/conn/upgrade.c) and
 * the HTTP service (worker/http/request.c); each keeps its own values.
 * Pure: no allocation, no I/O. */
#ifndef WSMILL_HTTP_HDR_H
#define WSMILL_HTTP_HDR_H
#include <stddef.h>

#define HTTP_HDR_FIELD_MAX 32 /* longer names are no header we want */
#define HTTP_HDR_NONE      (-1)
#define HTTP_HDR_OTHER     0 /* a header not in the caller's table */

struct http_hdr_name {
    const char *name; /* lower case */
    int id;           /* > 0 */
};

struct http_hdr {
    size_t field_len; /* may exceed HTTP_HDR_FIELD_MAX: then no known header */
    int in_value;     /* the last piece was a value */
    int cur;          /* id of the header whose value is arriving */
    char field[HTTP_HDR_FIELD_MAX];
};

void http_hdr_init(struct http_hdr *h);

/* Appends n bytes at `at` to buf (cap bytes), keeping what fits; *len
 * counts every byte, so *len > cap says it was cut. */
void http_hdr_append(char *buf, size_t cap, size_t *len, const char *at, size_t n);

/* on_header_field: a piece of a name. Returns the id of the header whose
 * value this ends (the caller records its value now), or HTTP_HDR_NONE. */
int http_hdr_field(struct http_hdr *h, const char *at, size_t n);

/* on_header_value: a piece of a value arrived. Returns the id (from names,
 * case-insensitive; HTTP_HDR_OTHER when absent) of its header. */
int http_hdr_value(struct http_hdr *h, const struct http_hdr_name *names, size_t count);

/* on_headers_complete: the id of the header whose value is still open
 * (the caller records it), or HTTP_HDR_NONE. */
int http_hdr_end(struct http_hdr *h);

/* Strips spaces and tabs from both ends of [*v, *v + *n). */
void http_hdr_trim(const char **v, size_t *n);

#endif
