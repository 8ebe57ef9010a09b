/* b64url.h (tests only): unpadded base64url (RFC 4648 section 5), the
 * encoding of a JWT's parts, made from OpenSSL's base64 by swapping the
 * two alphabet letters that differ and cutting the padding. */
#ifndef WSMILL_TEST_B64URL_H
#define WSMILL_TEST_B64URL_H
#include <openssl/evp.h>
#include <stddef.h>

/* Encodes n bytes into out, which needs 4 * ceil(n / 3) + 1 bytes (the
 * padding is written, then cut); NUL-terminated. Returns the length. */
static inline size_t b64url(const void *src, size_t n, char *out)
{
    int o = EVP_EncodeBlock((unsigned char *)out, src, (int)n);
    while (o > 0 && out[o - 1] == '=')
        o--;
    for (int i = 0; i < o; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[o] = 0;
    return (size_t)o;
}

#endif
