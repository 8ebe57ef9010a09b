/* ws_frame.c: RFC 6455 section 5 framing, pure and allocation-free. */
#include "ws_frame.h"

#include <string.h>

#include "utf8.h"

int ws_parse_header(const uint8_t *buf, size_t len, int require_mask, uint64_t max_payload,
                    struct ws_header *h)
{
    return ws_parse_header_ext(buf, len, require_mask, max_payload, 0, h);
}

int ws_parse_header_ext(const uint8_t *buf, size_t len, int require_mask, uint64_t max_payload,
                        unsigned rsv_allowed, struct ws_header *h)
{
    if (len < 2)
        return 0;
    uint8_t b0 = buf[0], b1 = buf[1];
    h->fin = b0 >> 7;
    h->rsv = (b0 >> 4) & 7;
    h->opcode = b0 & 0x0f;
    h->masked = b1 >> 7;
    /* Fail as early as the bytes allow: these need only the first two. */
    if (h->rsv & ~rsv_allowed)
        return -WS_CLOSE_PROTOCOL; /* no extension negotiated that uses it */
    /* An extension's bit (RSV1: "compressed", RFC 7692 6) marks a data
     * message's first frame only: never a control frame or a continuation. */
    if (h->rsv && (h->opcode == WS_OP_CONT || (h->opcode & 0x8)))
        return -WS_CLOSE_PROTOCOL;
    switch (h->opcode) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG: break;
    default: return -WS_CLOSE_PROTOCOL;
    }
    if (require_mask && !h->masked)
        return -WS_CLOSE_PROTOCOL;
    unsigned len7 = b1 & 0x7f;
    if (ws_is_control(h->opcode) && (!h->fin || len7 > WS_MAX_CONTROL_PAYLOAD))
        return -WS_CLOSE_PROTOCOL;

    size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (h->masked ? 4 : 0);
    size_t pos = 2;
    uint64_t plen = len7;
    if (len7 == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        if (plen < 126)
            return -WS_CLOSE_PROTOCOL; /* not the minimal encoding */
        pos = 4;
    } else if (len7 == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63 || plen < 65536)
            return -WS_CLOSE_PROTOCOL;
        pos = 10;
    }
    /* Judge the size before waiting for the mask: a 2 GiB length field is
     * refused the moment it is readable, with nothing allocated. */
    if (!ws_is_control(h->opcode) && plen > max_payload)
        return -WS_CLOSE_TOO_BIG;
    if (len < need)
        return 0;
    h->mask = 0;
    if (h->masked)
        memcpy(&h->mask, buf + pos, 4);
    h->length = plen;
    h->header_len = (uint8_t)need;
    return (int)need;
}

void ws_unmask(uint8_t *p, size_t n, uint32_t mask, uint64_t offset)
{
    if (!mask || !n)
        return;
    /* Rotate the key so byte 0 of p lines up with key byte (offset % 4). */
    unsigned shift = (unsigned)(offset & 3) * 8;
    uint32_t k = shift ? (mask >> shift) | (mask << (32 - shift)) : mask;
    size_t i = 0;
    /* Bytes until p is 8-aligned, then whole words. */
    while (i < n && ((uintptr_t)(p + i) & 7)) {
        p[i] ^= (uint8_t)k;
        k = (k >> 8) | (k << 24);
        i++;
    }
    uint64_t k64 = (uint64_t)k << 32 | k;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        w[0] ^= k64;
        w[1] ^= k64;
        w[2] ^= k64;
        w[3] ^= k64;
        memcpy(p + i, w, 32);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k64;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++) {
        p[i] ^= (uint8_t)k;
        k = (k >> 8) | (k << 24);
    }
}

size_t ws_build_header(uint8_t *out, unsigned opcode, int fin, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

static int close_code_sendable(int code)
{
    /* RFC 6455 7.4.1/7.4.2: 1004-1006 and 1015 are reserved for local use;
     * 1012-1014 were registered later (IANA) and are accepted by Autobahn. */
    if (code >= 1000 && code <= 1003)
        return 1;
    if (code >= 1007 && code <= 1014)
        return 1;
    return code >= 3000 && code <= 4999;
}

int ws_parse_close(const uint8_t *payload, size_t len, int *code)
{
    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1)
        return -WS_CLOSE_PROTOCOL;
    int c = payload[0] << 8 | payload[1];
    if (!close_code_sendable(c))
        return -WS_CLOSE_PROTOCOL;
    if (!utf8_valid(payload + 2, len - 2))
        return -WS_CLOSE_INVALID_DATA;
    *code = c;
    return 0;
}

size_t ws_build_close(uint8_t *out, int code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_MAX_CONTROL_PAYLOAD - 2) {
        rlen = WS_MAX_CONTROL_PAYLOAD - 2;
        /* Cut before a code point, not inside one: the peer validates it. */
        while (rlen > 0 && ((uint8_t)reason[rlen] & 0xC0) == 0x80)
            rlen--;
    }
    if (code <= 0) { /* no status: an empty close */
        out[0] = 0x80 | WS_OP_CLOSE;
        out[1] = 0;
        return 2;
    }
    size_t h = ws_build_header(out, WS_OP_CLOSE, 1, rlen + 2);
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (rlen)
        memcpy(out + h + 2, reason, rlen);
    return h + 2 + rlen;
}
