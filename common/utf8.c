/* utf8.c: a table-driven DFA in the style of Bjoern Hoehrmann's decoder,
 * reduced to validation. Byte classes split the ranges where RFC 3629's
 * well-formed table (section 4) differs, so overlongs, surrogates and code
 * points above U+10FFFF are rejected at the first byte that proves them. */
#include "utf8.h"

/* Byte classes:
 * 0: 00..7F  1: 80..8F  2: 90..9F  3: A0..BF  4: C2..DF  5: E0  6: E1..EC,EE..EF
 * 7: ED  8: F0  9: F1..F3  10: F4  11: C0,C1,F5..FF (never valid) */
/* clang-format off */
static const uint8_t byte_class[256] = {
#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 00..7F */
    R16(1),                                                         /* 80..8F */
    R16(2),                                                         /* 90..9F */
    R16(3), R16(3),                                                 /* A0..BF */
    11, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,               /* C0..CF */
    R16(4),                                                         /* D0..DF */
    5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 6, 6,                 /* E0..EF */
    8, 9, 9, 9, 10, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11,     /* F0..FF */
#undef R16
};

/* States are multiples of 12 so state + class indexes the table directly.
 * 0 accept, 12 reject, 24: need 1 more (80..BF), 36: need 2 more (80..BF),
 * 48: E0 seen (A0..BF), 60: ED seen (80..9F), 72: F0 seen (90..BF),
 * 84: need 3 more (80..BF), 96: F4 seen (80..8F). */
enum { A = 0, X = 12, N1 = 24, N2 = 36, E0 = 48, ED = 60, F0 = 72, N3 = 84, F4 = 96 };

static const uint8_t transition[108] = {
    /*        00  80  90  A0  C2  E0  E1  ED  F0  F1  F4  bad */
    /* A  */ A,  X,  X,  X,  N1, E0, N2, ED, F0, N3, F4, X,
    /* X  */ X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    /* N1 */ X,  A,  A,  A,  X,  X,  X,  X,  X,  X,  X,  X,
    /* N2 */ X,  N1, N1, N1, X,  X,  X,  X,  X,  X,  X,  X,
    /* E0 */ X,  X,  X,  N1, X,  X,  X,  X,  X,  X,  X,  X,
    /* ED */ X,  N1, N1, X,  X,  X,  X,  X,  X,  X,  X,  X,
    /* F0 */ X,  X,  N2, N2, X,  X,  X,  X,  X,  X,  X,  X,
    /* N3 */ X,  N2, N2, N2, X,  X,  X,  X,  X,  X,  X,  X,
    /* F4 */ X,  N2, X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
};
/* clang-format on */

uint32_t utf8_feed(uint32_t state, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Fast path: at a boundary, skip ASCII eight bytes at a time. */
        if (state == UTF8_ACCEPT) {
            while (i + 8 <= n) {
                uint64_t w;
                __builtin_memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i == n)
                break;
        }
        state = transition[state + byte_class[p[i++]]];
        if (state == UTF8_REJECT)
            return UTF8_REJECT;
    }
    return state;
}

int utf8_valid(const uint8_t *p, size_t n)
{
    return utf8_feed(UTF8_ACCEPT, p, n) == UTF8_ACCEPT;
}
