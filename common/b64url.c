/* b64url.c: unpadded base64url decoding, pure (contract in b64url.h). */
#include "b64url.h"

#include <stdint.h>

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long b64url_decode(const char *src, size_t n, unsigned char *dst)
{
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)src[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v; /* only the low `bits` bits matter */
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (dst)
                dst[o] = (unsigned char)(acc >> bits);
            o++;
        }
    }
    if (acc & ((1u << bits) - 1))
        return -1;
    return (long)o;
}
