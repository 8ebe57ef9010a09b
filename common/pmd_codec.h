/* pmd_codec.h: the zlib side of permessage-deflate (RFC 7692 section 7.2)
 * for one worker: deflate streams shared by every connection (the server
 * never takes over context, so each message is compressed on its own) and
 * one inflate stream primed, message by message, from the connection's
 * saved window when the client keeps its context. A connection owns no
 * zlib state at all. */
#ifndef WSMILL_PMD_CODEC_H
#define WSMILL_PMD_CODEC_H
#include <stddef.h>
#include <stdint.h>

struct pmd_codec;

enum pmd_inflate_result {
    PMD_INFLATE_OK = 0,
    PMD_INFLATE_TOO_BIG = -1009, /* inflated past the limit: close 1009 */
    PMD_INFLATE_BAD = -1007,     /* not a valid deflate message: close 1007 */
    PMD_INFLATE_NOMEM = -1011,   /* out of memory: close 1011 */
};

/* A codec compressing at level (1-9). Aborts when out of memory (start-up).
 * Streams are made on first use. */
struct pmd_codec *pmd_codec_new(int level);
void pmd_codec_free(struct pmd_codec *z);
/* A new compression level for later messages (reload). */
void pmd_codec_set_level(struct pmd_codec *z, int level);

/* Compresses one whole message in[0..len) so that a peer with a window of
 * 2^bits (8-15) can inflate it, into out[0..cap), without the 00 00 ff ff
 * tail. Returns the compressed length, or 0 when it is not shorter than len
 * or does not fit in cap (then send it uncompressed: RFC 7692 allows it per
 * message), or when zlib fails. */
size_t pmd_codec_deflate(struct pmd_codec *z, int bits, const uint8_t *in, size_t len, uint8_t *out,
                         size_t cap);

/* Inflates one whole message in[0..len) (its tail already stripped by the
 * sender), primed with dict[0..dict_len) (the connection's window, or
 * nothing). On PMD_INFLATE_OK *out and *out_len hold the plaintext in the
 * codec's buffer, valid until the next call; it never grows past max bytes
 * (a bomb costs at most max). Returns enum pmd_inflate_result. */
int pmd_codec_inflate(struct pmd_codec *z, const uint8_t *dict, size_t dict_len, const uint8_t *in,
                      size_t len, size_t max, const uint8_t **out, size_t *out_len);

/* Gives back the inflate buffer when a large message left it big. */
void pmd_codec_trim(struct pmd_codec *z);

/* How many messages the codec compressed and inflated (for tests and
 * status). */
uint64_t pmd_codec_deflated(const struct pmd_codec *z);

/* Slides a window of cap bytes that holds *fill bytes: afterwards it holds
 * the last cap bytes of (window, msg[0..n)). */
void pmd_window_push(uint8_t *win, size_t cap, size_t *fill, const uint8_t *msg, size_t n);

#endif
