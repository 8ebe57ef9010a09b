/* b64url.h: unpadded base64url (RFC 4648 section 5), the spelling of a JSON
 * Web Token's three parts. Pure: no I/O, no allocation. */
#ifndef WSMILL_B64URL_H
#define WSMILL_B64URL_H
#include <stddef.h>

/* Bytes dst must hold to decode n characters. */
#define B64URL_DECODED_MAX(n) ((n) / 4 * 3 + 2)

/* Decodes n characters of src into dst (B64URL_DECODED_MAX(n) bytes), or
 * only checks them when dst is NULL. Returns the decoded length, or -1 for
 * a character outside A-Z a-z 0-9 - _ (padding '=' included), a length no
 * byte count encodes to (n % 4 == 1), or non-zero unused trailing bits: so
 * each byte string has exactly one accepted spelling. */
long b64url_decode(const char *src, size_t n, unsigned char *dst);

#endif
