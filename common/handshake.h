/* handshake.h: the opening handshake of RFC 6455 section 4 as pure code.
 * The worker feeds the request to http-parser and fills struct hs_request
 * as headers arrive; hs_check decides the answer; hs_build_* write it. */
#ifndef WSMILL_HANDSHAKE_H
#define WSMILL_HANDSHAKE_H
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include "config.h"

#define HS_KEY_LEN    24   /* base64 of 16 bytes */
#define HS_ACCEPT_LEN 28   /* base64 of a SHA-1 */
#define HS_PATH_MAX   4096 /* longest request path (a /ch/ list) */
#define HS_ORIGIN_MAX 256

struct hs_request {
    int method_get; /* the method was GET */
    int http_major, http_minor;
    int upgrade_websocket;  /* Upgrade header lists "websocket" */
    int connection_upgrade; /* Connection header lists "upgrade" */
    int has_host;
    int key_count; /* how many Sec-WebSocket-Key headers */
    char key[HS_KEY_LEN + 1];
    int key_len; /* as received (may be wrong) */
    int version; /* Sec-WebSocket-Version, -1 when absent or not a number */
    int version_count;
    char origin[HS_ORIGIN_MAX];
    int origin_len; /* -1 when absent; > HS_ORIGIN_MAX-1 when truncated */
    int wsmill_v1;  /* Sec-WebSocket-Protocol lists wsmill.v1 (docs/history.md) */
};

#define HS_PROTOCOL_V1 "wsmill.v1"

#define HS_CHANNEL_MAX 128

/* 1 if name (n bytes) is a valid channel name: 1-128 bytes of
 * [A-Za-z0-9_.:-]. */
int hs_channel_name_valid(const char *name, size_t n);

/* Steps through a comma-separated list: the next name is [*name, *name +
 * *n) and 1 is returned, or 0 at the end. *pos starts at 0. A list of
 * length 0 holds one empty name. */
static inline int hs_list_next(const char *list, size_t len, size_t *pos, const char **name, size_t *n)
{
    if (*pos > len)
        return 0;
    const char *comma = memchr(list + *pos, ',', len - *pos);
    size_t end = comma ? (size_t)(comma - list) : len;
    *name = list + *pos;
    *n = end - *pos;
    *pos = end + 1;
    return 1;
}

/* Splits a comma-separated channel list (as in /ch/A,B,C) into at most max
 * names, written as offsets/lengths into off[]/len[]. Returns the count, or
 * -1 when a name is invalid (or empty), or -2 when there are more than max. */
int hs_channel_list(const char *list, size_t n, int max, uint16_t *off, uint8_t *len);

/* Resets r to "nothing seen yet". */
void hs_request_init(struct hs_request *r);

/* Case-insensitive: does the comma-separated header value list token? */
int hs_header_has_token(const char *value, size_t len, const char *token);

/* 1 if key is 24 characters of base64 that decode to exactly 16 bytes. */
int hs_key_valid(const char *key, size_t len);

/* Computes Sec-WebSocket-Accept for key into out (HS_ACCEPT_LEN + 1 bytes). */
void hs_accept_key(const char *key, size_t len, char *out);

/* What the server answers before looking at the path: 0 when the request is
 * a valid WebSocket upgrade allowed by cfg, else the HTTP status:
 * 405 (method), 400 (HTTP < 1.1, no Host, missing Upgrade/Connection
 * tokens, missing Sec-WebSocket-Version, missing/repeated/invalid key),
 * 426 (Sec-WebSocket-Version present but not exactly one "13"), 403 (Origin
 * present and not in allowed_origins, or longer than HS_ORIGIN_MAX - 1). */
int hs_check(const struct hs_request *r, const struct config *cfg);

/* Writes the 101 response for key into out (at least 160 bytes); returns
 * its length. */
size_t hs_build_accept(char *out, size_t cap, const char *key, size_t key_len);
/* The same, with `Sec-WebSocket-Protocol: protocol` when protocol is not
 * NULL (at least 200 bytes then). */
size_t hs_build_accept_proto(char *out, size_t cap, const char *key, size_t key_len, const char *protocol);

/* Writes an error response with a short plain-text body saying why, and
 * `Connection: close` (426 adds Sec-WebSocket-Version: 13); returns its
 * length. */
size_t hs_build_error(char *out, size_t cap, int status, const char *why);

/* The reason phrase for a status this server sends. */
const char *hs_status_text(int status);

#endif
