/* load_pmd: permessage-deflate for wsmill-load (--deflate), on zlib directly
 * (not common/pmd_codec.c: the tool never reuses the code it measures).
 * One deflate and one inflate stream per process, reset per message: the
 * tool offers client_no_context_takeover and the server always answers
 * server_no_context_takeover, so no message depends on an earlier one. */
#ifndef WSMILL_LOAD_PMD_H
#define WSMILL_LOAD_PMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What --deflate offers, and --deflate-takeover. */
#define LOAD_PMD_OFFER          "permessage-deflate; client_no_context_takeover; client_max_window_bits"
#define LOAD_PMD_OFFER_TAKEOVER "permessage-deflate; client_max_window_bits"

/* 1 when the response head buf[0..len) accepts permessage-deflate. */
int load_pmd_accepted(const char *buf, size_t len);

/* Compresses in[0..n) as one message (raw deflate, 00 00 ff ff stripped)
 * into out[0..cap). Returns the length, or -1 (does not fit, zlib error). */
ssize_t load_pmd_deflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* Inflates one compressed message into out[0..cap). Returns the length, or
 * -1 when it is not valid deflate or fills all of out (so out needs one
 * byte more than the longest message expected). */
ssize_t load_pmd_inflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* load_pmd_inflate for subscribers, with a memo: every subscriber on one
 * server worker gets the same compressed bytes for a channel message (the
 * server compresses it once, with server_no_context_takeover, so the bytes
 * alone decide the plaintext). A message whose compressed bytes equal, byte
 * for byte, one inflated a moment ago gets that plaintext without inflating
 * again: at 10,000 subscribers the tool would otherwise spend its core in
 * zlib and measure itself, not the server. Off (every message inflated) once
 * any answer lacks server_no_context_takeover. *hit: 1 when the memo answered. */
ssize_t load_pmd_inflate_memo(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int *hit);

/* --json: message seq of connection id as size bytes of JSON-like ASCII
 * (chat records whose words depend on both) into out. */
void load_pmd_json(uint8_t *out, size_t size, uint32_t id, uint64_t seq);

/* --json for published messages: byte i of a fixed 4 KiB stretch of such
 * text (wrapping), so a message's bytes stay a pure function of its stamp. */
uint8_t load_pmd_text_byte(uint64_t i);

/* A process-wide scratch buffer of at least n bytes (kept between calls),
 * or NULL when out of memory. */
uint8_t *load_pmd_scratch(size_t n);

#endif
