/* load_ws.c: see load_ws.h. */
#include "load_ws.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void load_ws_key(const uint8_t raw[16], char out[LOAD_WS_KEY_LEN + 1])
{
    EVP_EncodeBlock((unsigned char *)out, raw, 16);
}

void load_ws_accept(const char *key, size_t key_len, char out[LOAD_WS_ACCEPT_LEN + 1])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    char buf[128];

    /* A key longer than the buffer cannot be the 24-byte base64 nonce the RFC
     * asks for; hashing a truncated copy still yields a wrong accept, which is
     * the honest answer. */
    if (key_len > sizeof(buf) - (sizeof(ws_guid) - 1))
        key_len = sizeof(buf) - (sizeof(ws_guid) - 1);
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, ws_guid, sizeof(ws_guid) - 1);
    SHA1((const unsigned char *)buf, key_len + sizeof(ws_guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

int load_ws_request(char *buf, size_t cap, const char *host, const char *path, const char *origin,
                    const char *key, const char *extensions, const char *protocol)
{
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s"
                     "%s%s%s"
                     "%s%s%s"
                     "\r\n",
                     path, host, key, origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "",
                     extensions ? "Sec-WebSocket-Extensions: " : "", extensions ? extensions : "",
                     extensions ? "\r\n" : "", protocol ? "Sec-WebSocket-Protocol: " : "",
                     protocol ? protocol : "", protocol ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

/* True when the comma-separated list v[0..n) holds token (case-insensitive). */
static int has_token(const char *v, size_t n, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp(v + start, token, tlen) == 0)
            return 1;
    }
    return 0;
}

/* Parses "HTTP/1.x NNN ..." at the start of buf; returns NNN or 0. */
static int status_code(const char *buf, size_t len)
{
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return 0;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return 0;
        code = code * 10 + (buf[i] - '0');
    }
    return code;
}

ssize_t load_ws_response(const char *buf, size_t len, const char *accept, int *status,
                         enum load_ws_hs_err *err)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    *status = status_code(buf, len);
    if (end == NULL)
        return 0;
    if (*status == 0)
        return *err = LOAD_WS_HS_MALFORMED, -1;
    if (*status != 101)
        return *err = LOAD_WS_HS_STATUS, -1;

    int upgrade = 0, connection = 0, accepted = 0;
    /* end[1] is a '\n', so the search always succeeds. */
    const char *p = (const char *)memchr(buf, '\n', (size_t)(end + 2 - buf)) + 1;
    while (p < end + 2) {
        const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            return *err = LOAD_WS_HS_MALFORMED, -1;
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(eol - v);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (nlen == 7 && strncasecmp(p, "Upgrade", 7) == 0)
            upgrade = has_token(v, vlen, "websocket");
        else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0)
            connection = has_token(v, vlen, "upgrade");
        else if (nlen == 20 && strncasecmp(p, "Sec-WebSocket-Accept", 20) == 0)
            accepted = vlen == LOAD_WS_ACCEPT_LEN && memcmp(v, accept, vlen) == 0;
        p = eol + 2;
    }
    if (!upgrade || !connection)
        return *err = LOAD_WS_HS_UPGRADE, -1;
    if (!accepted)
        return *err = LOAD_WS_HS_ACCEPT, -1;
    return end + 4 - buf;
}

static int frame_check(const struct load_ws_frame *f, uint8_t b0, enum load_ws_frame_err *err)
{
    /* RSV1 is permessage-deflate's "compressed" on a message's first frame;
     * the caller refuses it unless that was negotiated. */
    if ((b0 & 0x30) || ((b0 & 0x40) && (f->opcode == LOAD_WS_CONT || (f->opcode & 0x8))))
        return *err = LOAD_WS_F_RSV, -1;
    if ((f->opcode > LOAD_WS_BINARY && f->opcode < LOAD_WS_CLOSE) || f->opcode > LOAD_WS_PONG)
        return *err = LOAD_WS_F_OPCODE, -1;
    if ((f->opcode & 0x8) && (!f->fin || f->len > 125))
        return *err = LOAD_WS_F_CONTROL, -1;
    return 0;
}

int load_ws_frame_parse(const uint8_t *p, size_t n, struct load_ws_frame *f, enum load_ws_frame_err *err)
{
    if (n < 2)
        return 0;
    size_t need = 2;
    uint64_t len = p[1] & 0x7f;
    if (len == 126)
        need += 2;
    else if (len == 127)
        need += 8;
    f->masked = p[1] >> 7;
    if (f->masked)
        need += 4;
    if (n < need)
        return 0;
    if (len == 126) {
        len = (uint64_t)p[2] << 8 | p[3];
        if (len < 126)
            return *err = LOAD_WS_F_LENGTH, -1;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        if (len >> 63 || len <= 0xffff)
            return *err = LOAD_WS_F_LENGTH, -1;
    }
    f->fin = p[0] >> 7;
    f->opcode = p[0] & 0x0f;
    f->rsv1 = (p[0] >> 6) & 1;
    f->len = len;
    if (f->masked)
        memcpy(f->mask, p + need - 4, 4);
    if (frame_check(f, p[0], err) == -1)
        return -1;
    return (int)need;
}

size_t load_ws_frame_header(uint8_t *out, unsigned opcode, uint64_t len, const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask != NULL) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void load_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
    size_t i = 0;
    /* Word at a time once aligned to the key: echo runs move many MB/s and
     * the byte loop would show in the client's CPU profile. */
    while (i < n && ((off + i) & 3) != 0) {
        p[i] ^= mask[(off + i) & 3];
        i++;
    }
    uint64_t m8;
    memcpy(&m8, mask, 4);
    memcpy((uint8_t *)&m8 + 4, mask, 4);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m8;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= mask[(off + i) & 3];
}

const char *load_ws_hs_err_name(enum load_ws_hs_err err)
{
    switch (err) {
    case LOAD_WS_HS_MALFORMED: return "bad_response";
    case LOAD_WS_HS_STATUS: return "bad_status";
    case LOAD_WS_HS_UPGRADE: return "bad_upgrade_headers";
    case LOAD_WS_HS_ACCEPT: return "bad_accept";
    }
    return "unknown";
}

const char *load_ws_frame_err_name(enum load_ws_frame_err err)
{
    switch (err) {
    case LOAD_WS_F_RSV: return "bad_frame_rsv";
    case LOAD_WS_F_OPCODE: return "bad_frame_opcode";
    case LOAD_WS_F_CONTROL: return "bad_control_frame";
    case LOAD_WS_F_LENGTH: return "bad_frame_length";
    }
    return "bad_frame";
}
