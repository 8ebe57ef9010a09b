/* pmd.h: permessage-deflate (RFC 7692) on the worker's connections: the
 * message transform between frames and endpoints (pmd.c). The worker owns
 * the zlib streams (common/pmd_codec.c); a connection owns one byte, the
 * outcome of its negotiation (conn->pmd), plus, only once a client that
 * keeps its context has sent a compressed message, that client's window. */
#ifndef WSMILL_PMD_H
#define WSMILL_PMD_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../common/pmd_offer.h"

struct conn;
struct shbuf;
struct worker;

/* A connection's negotiated byte (pmd.c keeps it per descriptor; the
 * connection itself carries CF_DEFLATE): bit 7 set, bits 6..4 server
 * window bits - 8, bits 3..0 the client's window bits (8-15), or 0 when the
 * client does not keep its context (no window is ever kept). */
#define PMD_ON 0x80
static inline int pmd_server_bits(uint8_t p)
{
    return 8 + ((p >> 4) & 7);
}
static inline int pmd_client_bits(uint8_t p)
{
    return p & 15;
}
uint8_t pmd_encode(const struct pmd_params *p);

/* Worker start: the codec, and the descriptor-indexed tables of
 * negotiated bytes and client windows (reserved, touched only where used).
 * Returns 0 or -1. */
int pmd_worker_init(struct worker *w);
/* c's handshake agreed on p: c gets CF_DEFLATE and its byte. */
void pmd_conn_agreed(struct conn *c, const struct pmd_params *p);

/* A reload may change deflate_level. */
void pmd_worker_config(struct worker *w);

/* Inflates a compressed message of c (in[0..len)), primed with c's window;
 * the plaintext is in the worker's buffer until the next call. Returns 0,
 * or the close code: 1009 (max_message_size), 1007 (not valid deflate),
 * 1011 (out of memory). */
int pmd_inflate(struct conn *c, const uint8_t *in, size_t len, const uint8_t **out, size_t *out_len);

/* Gives back the inflate buffer a large message grew (after it is handled). */
void pmd_trim(struct worker *w);

/* For a data message to c: NULL when it goes uncompressed (no deflate on
 * c, shorter than deflate_min_size, or it does not shrink), else a
 * malloc'd compressed payload of *zlen bytes (the caller owns it). */
uint8_t *pmd_compress(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len, size_t *zlen);

/* For a deflate subscriber c: maps n whole frames of a channel's log to
 * what c is sent, into bufs and iov (no references taken). Each frame's
 * compressed twin is built once per worker, on first need, and kept with
 * the frame (struct shbuf.twin; *built grows by its size); c gets it when
 * it shrank and c's server window allows it, else the frame itself.
 * Returns the total bytes. */
size_t pmd_frames(struct conn *c, struct shbuf **log, int n, struct shbuf **bufs, struct iovec *iov,
                  size_t *built);
/* Counts n frames of total plaintext `plain` sent to c as `wire` bytes. */
void pmd_count_out(struct conn *c, uint64_t n_compressed, uint64_t n_plain, uint64_t saved);

/* c is released: its window goes. */
void pmd_conn_release(struct conn *c);

#endif
