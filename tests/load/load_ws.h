/* load_ws: the small WebSocket codec shared by wsmill-load and wsmill-floor.
 *
 * Pure functions: no I/O, no allocation. Kept apart from common/ on purpose:
 * the load tool must be trustworthy on its own, so it never reuses the code it
 * measures. */
#ifndef WSMILL_LOAD_WS_H
#define WSMILL_LOAD_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LOAD_WS_KEY_LEN    24 /* base64 of 16 random bytes */
#define LOAD_WS_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */
#define LOAD_WS_HDR_MAX    14 /* 2 + 8 (length) + 4 (mask) */

enum load_ws_op {
    LOAD_WS_CONT = 0x0,
    LOAD_WS_TEXT = 0x1,
    LOAD_WS_BINARY = 0x2,
    LOAD_WS_CLOSE = 0x8,
    LOAD_WS_PING = 0x9,
    LOAD_WS_PONG = 0xA,
};

/* Why a handshake response was refused. */
enum load_ws_hs_err {
    LOAD_WS_HS_MALFORMED = 1, /* not an HTTP/1.x status line + headers */
    LOAD_WS_HS_STATUS,        /* status other than 101 (see *status) */
    LOAD_WS_HS_UPGRADE,       /* Upgrade/Connection headers missing or wrong */
    LOAD_WS_HS_ACCEPT,        /* Sec-WebSocket-Accept missing or wrong */
};

/* Why a frame header was refused. */
enum load_ws_frame_err {
    LOAD_WS_F_RSV = 1, /* RSV2/RSV3 set, or RSV1 on a control frame or continuation */
    LOAD_WS_F_OPCODE,  /* reserved opcode */
    LOAD_WS_F_CONTROL, /* fragmented control frame or payload > 125 */
    LOAD_WS_F_LENGTH,  /* non-minimal length, or 64-bit length with the top bit set */
};

struct load_ws_frame {
    uint8_t fin;
    uint8_t rsv1; /* permessage-deflate: the message is compressed (data, first frame only) */
    uint8_t opcode;
    uint8_t masked;
    uint8_t mask[4];
    uint64_t len;
};

/* Writes base64(raw) for a 16-byte nonce into out (NUL-terminated). */
void load_ws_key(const uint8_t raw[16], char out[LOAD_WS_KEY_LEN + 1]);

/* Writes base64(SHA-1(key + RFC 6455 GUID)) into out (NUL-terminated). */
void load_ws_accept(const char *key, size_t key_len, char out[LOAD_WS_ACCEPT_LEN + 1]);

/* Formats the upgrade request into buf; origin and extensions (a
 * Sec-WebSocket-Extensions value) may be NULL.
 * Returns its length, or -1 when it does not fit in cap. */
int load_ws_request(char *buf, size_t cap, const char *host, const char *path, const char *origin,
                    const char *key, const char *extensions, const char *protocol);

/* Checks an upgrade response against the expected accept value.
 * Returns the header length (> 0) when complete and valid, 0 when "\r\n\r\n"
 * has not arrived yet, -1 when invalid with *err set. *status gets the status
 * code whenever the status line could be parsed, else 0. */
ssize_t load_ws_response(const char *buf, size_t len, const char *accept, int *status,
                         enum load_ws_hs_err *err);

/* Parses a frame header from p[0..n). Returns the header length (> 0), 0 when
 * more bytes are needed, -1 when invalid with *err set. Does not judge the
 * mask bit: that depends on which side is reading. */
int load_ws_frame_parse(const uint8_t *p, size_t n, struct load_ws_frame *f, enum load_ws_frame_err *err);

/* Writes a FIN frame header into out (LOAD_WS_HDR_MAX bytes room); mask may be
 * NULL for an unmasked (server) frame. Returns the header length. */
size_t load_ws_frame_header(uint8_t *out, unsigned opcode, uint64_t len, const uint8_t *mask);

/* XORs p[0..n) with mask, starting at byte offset off of the payload. */
void load_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);

/* Returns a short name for a handshake/frame error, for failure keys. */
const char *load_ws_hs_err_name(enum load_ws_hs_err err);
const char *load_ws_frame_err_name(enum load_ws_frame_err err);

#endif
