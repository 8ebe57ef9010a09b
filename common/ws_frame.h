/* ws_frame.h: the RFC 6455 frame layer as pure code: no I/O, no allocation.
 *
 * The parser reads one frame header at a time and says one of three things:
 * consumed N header bytes (>0), need more bytes (0), or invalid (<0: minus
 * the close code to send). Payload bytes are not copied; the caller unmasks
 * them in place with ws_unmask as they arrive, so a frame can be streamed
 * across many reads. */
#ifndef WSMILL_WS_FRAME_H
#define WSMILL_WS_FRAME_H
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_ABNORMAL = 1006,
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_EXTENSION = 1010,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_AGAIN = 1013,
};

#define WS_MAX_HEADER          14 /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_CONTROL_PAYLOAD 125

struct ws_header {
    uint8_t fin;
    uint8_t rsv; /* the three RSV bits, as bits 2..0 */
    uint8_t opcode;
    uint8_t masked;
    uint32_t mask;      /* mask key as it appears on the wire, little-endian load */
    uint64_t length;    /* payload length */
    uint8_t header_len; /* bytes the header took */
};

static inline int ws_is_control(unsigned opcode)
{
    return (opcode & 0x8) != 0;
}

/* Parses a frame header from buf[0..len). Returns header bytes consumed
 * (>0) with *h filled, 0 if more bytes are needed, or -code on a protocol
 * error that needs no connection state: reserved bits set (no extension
 * negotiated) or a reserved opcode -> -1002; a control frame that is
 * fragmented or longer than 125 -> -1002; a 64-bit length with the top bit
 * set or a non-minimal length encoding -> -1002; require_mask and the frame
 * is unmasked -> -1002; a data frame longer than max_payload -> -1009. */
int ws_parse_header(const uint8_t *buf, size_t len, int require_mask, uint64_t max_payload,
                    struct ws_header *h);

/* ws_parse_header with the RSV bits in rsv_allowed (bits 2..0, RSV1 = 4)
 * accepted on the first frame of a data message (an extension such as
 * permessage-deflate negotiated them); on a control frame or a
 * continuation they are still -1002. */
int ws_parse_header_ext(const uint8_t *buf, size_t len, int require_mask, uint64_t max_payload,
                        unsigned rsv_allowed, struct ws_header *h);

#define WS_RSV1 4 /* in struct ws_header.rsv */

/* Unmasks (or masks: XOR is its own inverse) n bytes in place; offset is
 * how many payload bytes of this frame came before p, so the key stays
 * aligned when a frame arrives in pieces. Works a machine word at a time. */
void ws_unmask(uint8_t *p, size_t n, uint32_t mask, uint64_t offset);

/* Writes a server frame header (FIN set as given, unmasked) for a payload of
 * len bytes into out (at least WS_MAX_HEADER bytes); returns its length. */
size_t ws_build_header(uint8_t *out, unsigned opcode, int fin, uint64_t len);

/* Checks a close frame's payload (already unmasked): empty is fine (code
 * 1005 is reported); 1 byte is invalid; the code must be one a peer may
 * send (1000-1003, 1007-1014, 3000-4999: 1012-1014 are IANA-registered
 * since RFC 6455) and the reason valid UTF-8.
 * Returns 0 with *code set, or -1002 / -1007 for the close to answer with. */
int ws_parse_close(const uint8_t *payload, size_t len, int *code);

/* Builds a whole close frame (header + 2-byte code + reason, truncated to
 * fit 125 bytes) into out (at least 2 + 125 bytes); returns its length. */
size_t ws_build_close(uint8_t *out, int code, const char *reason);

#endif
