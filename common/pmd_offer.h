/* pmd_offer.h: permessage-deflate negotiation (RFC 7692 section 7) as pure
 * code: reads the offers in one Sec-WebSocket-Extensions header value and
 * writes the answer. No I/O, no allocation.
 *
 * The server always answers server_no_context_takeover, so it never keeps
 * a compressor per connection; the client's window is negotiated down to
 * the configured size when the client allows it (client_max_window_bits). */
#ifndef WSMILL_PMD_OFFER_H
#define WSMILL_PMD_OFFER_H
#include <stddef.h>
#include <stdint.h>

#define PMD_MIN_BITS 8
#define PMD_MAX_BITS 15
/* The longest answer pmd_offer_answer writes, header name and CRLF included. */
#define PMD_ANSWER_MAX 160

/* What one accepted offer settles. */
struct pmd_params {
    uint8_t server_bits;                /* window our messages may use (8-15; 15 when the offer set none) */
    uint8_t server_bits_set;            /* the offer had server_max_window_bits: the answer repeats it */
    uint8_t client_bits;                /* window the client's messages may use (8-15) */
    uint8_t client_bits_set;            /* the answer carries client_max_window_bits=client_bits */
    uint8_t client_no_context_takeover; /* the client resets its context per message */
};

enum pmd_offer_result {
    PMD_OFFER_NONE = 0,         /* no acceptable permessage-deflate offer in this value */
    PMD_OFFER_ACCEPTED = 1,     /* *out holds the first acceptable offer */
    PMD_OFFER_MALFORMED = -400, /* the value breaks the header grammar (RFC 6455 9.1): answer 400 */
};

/* Reads value[0..len) (one Sec-WebSocket-Extensions header; a request with
 * several calls this once per header, in order, until one is accepted).
 * An offer of permessage-deflate with an unknown or repeated parameter, or
 * a parameter value out of place or out of range (8-15, no leading zero),
 * is refused and the next offer is tried (RFC 7692 7.1). client_bits_pref
 * (8-15) is the window asked of clients that offer client_max_window_bits.
 * Returns enum pmd_offer_result. */
int pmd_offer_parse(const char *value, size_t len, int client_bits_pref, struct pmd_params *out);

/* Writes the "Sec-WebSocket-Extensions: ...\r\n" answer line for p into out
 * (cap >= PMD_ANSWER_MAX); returns its length. */
size_t pmd_offer_answer(const struct pmd_params *p, char *out, size_t cap);

#endif
