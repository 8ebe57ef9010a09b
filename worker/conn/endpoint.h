/* endpoint.h: what a path serves once upgraded. The connection room knows
 * no endpoint by name: the worker registers them (echo.c, pubsub's
 * channels) and the upgrade looks the request's path up in that table, so
 * a new endpoint is a new file, and conn/ never calls up into pub/sub. */
#ifndef WSMILL_ENDPOINT_H
#define WSMILL_ENDPOINT_H
#include <stddef.h>
#include <stdint.h>

#include "../../common/handshake.h"
#include "../worker-t.h"

struct conn;
struct worker;
struct jwt_claims;

struct endpoint {
    const char *path; /* exact ("/echo"), or a prefix when it ends in '/' ("/ch/") */
    /* Before the answer: checks what follows a prefix (rest, len). Returns
     * 0, or the HTTP status to refuse with, setting *reason and *why. May
     * be NULL. */
    int (*check)(struct worker *w, const char *rest, size_t len, enum hs_reject *reason, const char **why);
    /* With auth_secret set, after the token verified: returns 0, or 403
     * with *why (a static or a buffer of why_len) when the claims do not
     * allow it. May be NULL. */
    int (*authorize)(const struct jwt_claims *claims, const char *rest, size_t len, char *why,
                     size_t why_len);
    /* 101 decided: set up c->ep. Returns 0, or -1 (out of memory). May be NULL. */
    int (*open)(struct conn *c, const char *rest, size_t len);
    /* A subprotocol the endpoint speaks (Sec-WebSocket-Protocol), or NULL. */
    const char *protocol;
    /* Before the answer: the query string (after '?', len 0 when none) and
     * whether the client offered `protocol`. Returns 0, or the HTTP status
     * to refuse with and *why. May be NULL. */
    int (*check_query)(struct worker *w, const char *query, size_t len, int offered, const char **why);
    /* Instead of open when the client offered `protocol`: the endpoint sets
     * c up, puts it in CONN_OPEN, sends resp (the 101 naming the protocol)
     * and whatever must follow it. Returns 0, or -1 when c was dropped. */
    int (*open_protocol)(struct conn *c, const char *rest, size_t len, const char *query, size_t qlen,
                         const char *resp, size_t resp_len);
    /* A complete data message; owned, if not NULL, is the malloc'd buffer
     * behind payload, the callee's to keep or free. */
    void (*message)(struct conn *c, unsigned opcode, uint8_t *payload, size_t len, uint8_t *owned);
    /* The connection is being released: free c->ep. May be NULL. */
    void (*close)(struct conn *c);
};

/* Adds ep to w's table (worker start). */
void endpoint_register(struct worker *w, const struct endpoint *ep);
/* The endpoint serving path, or 0 when none does; *rest is what follows a
 * prefix. Returns an index for conn->endpoint. */
int endpoint_find(struct worker *w, const char *path, size_t len, const char **rest, size_t *rest_len);
static inline const struct endpoint *endpoint_of(struct worker *w, int idx)
{
    return idx ? w->endpoints[idx] : NULL;
}

#endif
