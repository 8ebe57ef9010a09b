/* utf8_ref.h: a slow, obviously-correct UTF-8 checker written from the
 * well-formed byte sequence table of RFC 3629 section 4 (Unicode table 3-7),
 * used by test_utf8.c and fuzz_utf8.c as the oracle for common/utf8.c.
 *
 * utf8_ref() returns -1 when p[0..n) is valid, -2 when it is valid so far
 * but ends inside a code point, or the index of the first byte that can
 * never be part of a valid sequence (where a fail-fast validator must say
 * REJECT). */
#ifndef WSMILL_TESTS_UTF8_REF_H
#define WSMILL_TESTS_UTF8_REF_H
#include <stddef.h>
#include <stdint.h>

static inline long utf8_ref(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        size_t need;
        if (b <= 0x7F) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b == 0xE0) {
            need = 2, lo = 0xA0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            need = 2;
        } else if (b == 0xED) {
            need = 2, hi = 0x9F;
        } else if (b == 0xF0) {
            need = 3, lo = 0x90;
        } else if (b >= 0xF1 && b <= 0xF3) {
            need = 3;
        } else if (b == 0xF4) {
            need = 3, hi = 0x8F;
        } else {
            return (long)i; /* 80..C1, F5..FF never start a sequence */
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n)
                return -2;
            uint8_t c = p[i + k];
            if (k == 1 ? c < lo || c > hi : c < 0x80 || c > 0xBF)
                return (long)(i + k);
        }
        i += need + 1;
    }
    return -1;
}

#endif
