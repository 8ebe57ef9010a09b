/* test_utf8.c: common/utf8.c against named cases in the style of Markus
 * Kuhn's UTF-8 stress test, then exhaustively against the table-driven
 * oracle in utf8_ref.h (every 1-, 2- and 3-byte string, and a few million
 * random longer ones). For each input it checks the whole-buffer verdict,
 * incremental feeding at every split point, and the fail-fast position. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/utf8.h"
#include "tap.h"
#include "utf8_ref.h"

enum { VALID, INVALID, TRUNCATED };

struct ucase {
    const char *name;
    const char *bytes;
    size_t len;
    int want;
    long reject_at; /* for INVALID: index of the byte that must give REJECT */
};

#define C(name, lit, want, at)                                                                               \
    {                                                                                                        \
        name, lit, sizeof(lit) - 1, want, at                                                                 \
    }

static const struct ucase cases[] = {
    C("empty", "", VALID, 0),
    C("ASCII", "Hello, world!", VALID, 0),
    C("U+0000", "\x00", VALID, 0),
    C("U+007F (1-byte max)", "\x7f", VALID, 0),
    C("U+0080 (2-byte min)", "\xc2\x80", VALID, 0),
    C("U+07FF (2-byte max)", "\xdf\xbf", VALID, 0),
    C("U+0800 (3-byte min)", "\xe0\xa0\x80", VALID, 0),
    C("U+D7FF (before surrogates)", "\xed\x9f\xbf", VALID, 0),
    C("U+E000 (after surrogates)", "\xee\x80\x80", VALID, 0),
    C("U+FFFD", "\xef\xbf\xbd", VALID, 0),
    C("U+FFFF (3-byte max, noncharacter is still UTF-8)", "\xef\xbf\xbf", VALID, 0),
    C("U+10000 (4-byte min)", "\xf0\x90\x80\x80", VALID, 0),
    C("U+10FFFF (max)", "\xf4\x8f\xbf\xbf", VALID, 0),
    C("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", VALID, 0),
    C("mixed widths", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", VALID, 0),

    C("overlong NUL C0 80", "\xc0\x80", INVALID, 0),
    C("overlong C1 BF", "\xc1\xbf", INVALID, 0),
    C("overlong slash C0 AF", "\xc0\xaf", INVALID, 0),
    C("overlong E0 80 80", "\xe0\x80\x80", INVALID, 1),
    C("overlong E0 9F BF (U+07FF in 3)", "\xe0\x9f\xbf", INVALID, 1),
    C("overlong F0 80 80 80", "\xf0\x80\x80\x80", INVALID, 1),
    C("overlong F0 8F BF BF (U+FFFF in 4)", "\xf0\x8f\xbf\xbf", INVALID, 1),
    C("5-byte F8 88 80 80 80", "\xf8\x88\x80\x80\x80", INVALID, 0),
    C("6-byte FC 84 80 80 80 80", "\xfc\x84\x80\x80\x80\x80", INVALID, 0),
    C("surrogate ED A0 80 (U+D800)", "\xed\xa0\x80", INVALID, 1),
    C("surrogate ED AD BF (U+DB7F)", "\xed\xad\xbf", INVALID, 1),
    C("surrogate ED B0 80 (U+DC00)", "\xed\xb0\x80", INVALID, 1),
    C("surrogate ED BF BF (U+DFFF)", "\xed\xbf\xbf", INVALID, 1),
    C("surrogate pair ED A0 80 ED B0 80", "\xed\xa0\x80\xed\xb0\x80", INVALID, 1),
    C("U+110000 F4 90 80 80", "\xf4\x90\x80\x80", INVALID, 1),
    C("F5 80 80 80", "\xf5\x80\x80\x80", INVALID, 0),
    C("F7 BF BF BF", "\xf7\xbf\xbf\xbf", INVALID, 0),
    C("lone continuation 80", "\x80", INVALID, 0),
    C("lone continuation BF", "\xbf", INVALID, 0),
    C("ASCII then continuation", "abc\x80", INVALID, 3),
    C("2-byte lead then ASCII",
      "\xc3"
      "a",
      INVALID, 1),
    C("3-byte lead, 1 cont, then ASCII",
      "\xe2\x82"
      "a",
      INVALID, 2),
    C("4-byte lead, 2 cont, then lead", "\xf0\x9f\x98\xc3\xa9", INVALID, 3),
    C("FE", "\xfe", INVALID, 0),
    C("FF", "\xff", INVALID, 0),
    C("FE FE FF FF", "\xfe\xfe\xff\xff", INVALID, 0),
    C("Autobahn 6.3.1: kosme then surrogate",
      "\xce\xba\xe1\xbd\xb9\xce\xbc\xce\xb5\xed\xa0\x80"
      "edited",
      INVALID, 10),
    C("valid text then F5", "hello \xf5 world", INVALID, 6),

    C("truncated 2-byte C2", "\xc2", TRUNCATED, 0),
    C("truncated 3-byte E0 A0", "\xe0\xa0", TRUNCATED, 0),
    C("truncated 3-byte E1", "\xe1", TRUNCATED, 0),
    C("truncated 4-byte F0 90 80", "\xf0\x90\x80", TRUNCATED, 0),
    C("truncated 4-byte F4 8F BF", "\xf4\x8f\xbf", TRUNCATED, 0),
    C("truncated after text", "hello \xce", TRUNCATED, 0),
    C("truncated ED 9F", "\xed\x9f", TRUNCATED, 0),
};

/* Feeds byte by byte; returns the index where REJECT first appears, or -1,
 * and the final state in *final. */
static long first_reject(const uint8_t *p, size_t n, uint32_t *final)
{
    uint32_t st = UTF8_ACCEPT;
    long at = -1;
    for (size_t i = 0; i < n; i++) {
        st = utf8_feed(st, p + i, 1);
        if (st == UTF8_REJECT && at < 0)
            at = (long)i;
    }
    *final = st;
    return at;
}

/* Runs one input through every entry point. Returns NULL when all agree
 * with want/reject_at, else what went wrong (for a diagnostic). */
static const char *check(const uint8_t *p, size_t n, int want, long reject_at)
{
    /* Exact-size heap copy so a read past n is an ASan error. */
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, p, n);
    const char *why = NULL;
    uint32_t whole = utf8_feed(UTF8_ACCEPT, c, n);
    int valid = utf8_valid(c, n);
    if (valid != (want == VALID))
        why = "utf8_valid";
    else if (want == VALID && whole != UTF8_ACCEPT)
        why = "utf8_feed on a valid buffer is not ACCEPT";
    else if (want == INVALID && whole != UTF8_REJECT)
        why = "utf8_feed on an invalid buffer is not REJECT";
    else if (want == TRUNCATED && (whole == UTF8_ACCEPT || whole == UTF8_REJECT))
        why = "utf8_feed on a truncated buffer is ACCEPT or REJECT";
    for (size_t k = 0; !why && k <= n; k++) {
        uint32_t st = utf8_feed(utf8_feed(UTF8_ACCEPT, c, k), c + k, n - k);
        if (st != whole)
            why = "split feeding disagrees with whole feeding";
    }
    if (!why) {
        uint32_t fin;
        long at = first_reject(c, n, &fin);
        if (fin != whole)
            why = "byte-at-a-time final state differs from whole feeding";
        else if (want == INVALID && at != reject_at)
            why = "not fail-fast: REJECT at the wrong byte";
        else if (want != INVALID && at >= 0)
            why = "REJECT on an input that is not invalid";
        else if (want == INVALID) {
            /* Sticky: more valid text cannot bring it back. */
            if (utf8_feed(fin, (const uint8_t *)"abc", 3) != UTF8_REJECT)
                why = "REJECT is not sticky";
        }
    }
    free(c);
    return why;
}

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ucase *u = &cases[i];
        const uint8_t *p = (const uint8_t *)u->bytes;
        /* The oracle must agree with the hand-written expectation first, so
         * the exhaustive comparison below rests on a checked reference. */
        long ref = utf8_ref(p, u->len);
        long want_ref = u->want == VALID ? -1 : u->want == TRUNCATED ? -2 : u->reject_at;
        if (ref != want_ref) {
            ok(0, "oracle disagrees on %s: %ld vs %ld", u->name, ref, want_ref);
            continue;
        }
        const char *why = check(p, u->len, u->want, u->reject_at);
        if (!ok(why == NULL, "%s: %s",
                u->want == VALID     ? "valid"
                : u->want == INVALID ? "invalid"
                                     : "truncated",
                u->name)) {
            diag("%s", why);
            tap_hex("input", p, u->len);
            uint32_t fin;
            long at = first_reject(p, u->len, &fin);
            diag("utf8_valid %d, whole state %u, first REJECT at %ld (want %ld)", utf8_valid(p, u->len),
                 utf8_feed(UTF8_ACCEPT, p, u->len), at, u->reject_at);
        }
    }
}

static int check_ref(const uint8_t *p, size_t n, long *bad_ref)
{
    long ref = utf8_ref(p, n);
    *bad_ref = ref;
    int want = ref == -1 ? VALID : ref == -2 ? TRUNCATED : INVALID;
    return check(p, n, want, ref) == NULL;
}

static void report_exhaustive(const char *what, unsigned long count, unsigned long fails,
                              const uint8_t *first, size_t n, long ref)
{
    if (!ok(fails == 0, "%s: %lu inputs agree with the RFC 3629 table (%lu disagree)", what, count, fails)) {
        tap_hex("first disagreeing input", first, n);
        diag("oracle says %ld (-1 valid, -2 truncated, else first bad index); utf8_valid %d", ref,
             utf8_valid(first, n));
    }
}

static void test_exhaustive(void)
{
    uint8_t b[8], first[8];
    long ref, first_ref = 0;
    for (size_t len = 1; len <= 3; len++) {
        unsigned long fails = 0, count = 0, total = 1UL << (8 * len);
        size_t first_n = 0;
        for (unsigned long v = 0; v < total; v++) {
            for (size_t i = 0; i < len; i++)
                b[i] = (uint8_t)(v >> (8 * (len - 1 - i)));
            /* 3-byte strings: the full check costs ~n^2 feeds; the cheap
             * verdicts on all 16M strings and the full check on a sample
             * keep the run to seconds under ASan. */
            int good;
            if (len < 3 || (v & 63) == 0) {
                good = check_ref(b, len, &ref);
            } else {
                ref = utf8_ref(b, len);
                uint32_t st = utf8_feed(UTF8_ACCEPT, b, len);
                good = ref == -1   ? st == UTF8_ACCEPT && utf8_valid(b, len)
                       : ref == -2 ? st != UTF8_ACCEPT && st != UTF8_REJECT && !utf8_valid(b, len)
                                   : st == UTF8_REJECT && !utf8_valid(b, len);
            }
            count++;
            if (!good && fails++ == 0) {
                memcpy(first, b, len);
                first_n = len;
                first_ref = ref;
            }
        }
        char what[48];
        snprintf(what, sizeof(what), "every %zu-byte string", len);
        report_exhaustive(what, count, fails, first, first_n, first_ref);
    }

    /* Random strings of 4..8 bytes drawn mostly from the interesting bytes
     * (leads, boundaries of continuation ranges, ASCII). */
    static const uint8_t pool[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                   0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                   0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xfe, 0xff};
    unsigned long fails = 0, count = 0;
    size_t first_n = 0;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int iter = 0; iter < 300000; iter++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = 4 + (size_t)(x % 5);
        uint64_t y = x;
        for (size_t i = 0; i < len; i++) {
            y = y * 6364136223846793005ULL + 1442695040888963407ULL;
            b[i] = (y >> 60) & 1 ? (uint8_t)(y >> 32) : pool[(y >> 33) % sizeof(pool)];
        }
        count++;
        if (!check_ref(b, len, &ref) && fails++ == 0) {
            memcpy(first, b, len);
            first_n = len;
            first_ref = ref;
        }
    }
    report_exhaustive("random 4..8-byte strings", count, fails, first, first_n, first_ref);
}

static void test_states(void)
{
    const uint8_t *k = (const uint8_t *)"\xce\xba\xe1\xbd\xb9\xce\xbc\xce\xb5\xed\xa0\x80";
    uint32_t st = utf8_feed(UTF8_ACCEPT, k, 10);
    ok(st != UTF8_ACCEPT && st != UTF8_REJECT,
       "after 'CE BA E1 BD B9 CE BC CE B5 ED': inside "
       "a code point (state %u)",
       st);
    is_int(utf8_feed(st, k + 10, 1), UTF8_REJECT, "then A0 -> REJECT at once");
    is_int(utf8_feed(UTF8_REJECT, (const uint8_t *)"a", 1), UTF8_REJECT, "REJECT fed ASCII stays REJECT");
    is_int(utf8_feed(UTF8_REJECT, k, 0), UTF8_REJECT, "REJECT fed nothing stays REJECT");
    is_int(utf8_feed(UTF8_ACCEPT, k, 0), UTF8_ACCEPT, "ACCEPT fed nothing stays ACCEPT");
    st = utf8_feed(UTF8_ACCEPT, (const uint8_t *)"\xf0\x9f", 2);
    is_int(utf8_feed(st, (const uint8_t *)"\x98\x80", 2), UTF8_ACCEPT,
           "U+1F600 split 2+2 across calls -> ACCEPT");

    /* A long valid message (a word-at-a-time fast path, if any, must not
     * skip a bad byte at any position). */
    enum { N = 4096 };
    uint8_t *m = malloc(N);
    int misses = 0;
    for (size_t pos = 0; pos < 200; pos++) {
        memset(m, 'a', N);
        m[N - 1 - pos] = 0x80;
        if (utf8_valid(m, N) || utf8_feed(UTF8_ACCEPT, m, N) != UTF8_REJECT)
            misses++;
        m[N - 1 - pos] = 'a';
    }
    ok(utf8_valid(m, N), "4096 bytes of ASCII are valid");
    is_int(misses, 0, "a stray 80 in the last 200 positions of 4096 ASCII bytes is caught");
    free(m);
}

int main(void)
{
    test_cases();
    test_states();
    test_exhaustive();
    return done_testing();
}
