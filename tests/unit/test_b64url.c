/* test_b64url.c: common/b64url.c against RFC 4648's test vectors (in the
 * URL alphabet), round trips through OpenSSL's encoder (tests/unit/b64url.h),
 * and the one-spelling rule checked exhaustively over all 2- and 3-character
 * inputs. Inputs are exact-size heap copies, so ASan sees any overread. */
#include <stdlib.h>
#include <string.h>
#include "common/b64url.h"
#include "tests/unit/b64url.h"
#include "tap.h"

/* Decodes s (n characters) from a heap copy into out; returns the length. */
static long dec(const char *s, size_t n, unsigned char *out)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, s, n);
    long r = b64url_decode(c, n, out);
    free(c);
    return r;
}

static void test_vectors(void)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    unsigned char out[16];
    for (int i = 0; i < 7; i++) {
        long n = dec(coded[i], strlen(coded[i]), out);
        is_mem(out, n < 0 ? 0 : (size_t)n, plain[i], strlen(plain[i]), "RFC 4648 vector '%s'", coded[i]);
        is_int(dec(coded[i], strlen(coded[i]), NULL), (long long)strlen(plain[i]),
               "  length alone (dst NULL)");
    }
    is_int(dec("-_8", 3, out), 2, "'-' and '_' are 62 and 63");
    ok(out[0] == 0xfb && out[1] == 0xff, "  decoded to fb ff");
}

static void test_refused(void)
{
    static const char *bad[] = {"Zg==", "Zg=", "+w", "/w", "Zm 9v", "Zm9v\n", "Z", "Zm9vY", "Zh", "Zm9"};
    static const char *why[] = {"padding",
                                "one '='",
                                "'+' (standard alphabet)",
                                "'/' (standard alphabet)",
                                "a space",
                                "a newline",
                                "1 character",
                                "5 characters",
                                "unused bits set",
                                "unused bits set (3 characters)"};
    for (int i = 0; i < 10; i++)
        is_int(dec(bad[i], strlen(bad[i]), NULL), -1, "refused: %s", why[i]);
    is_int(dec("Zm\0v", 4, NULL), -1, "refused: a NUL inside the length");
}

static void test_round_trip(void)
{
    unsigned char in[100], out[B64URL_DECODED_MAX(136)];
    char enc[140];
    int fine = 1;
    srand(12345);
    for (int t = 0; t < 2000 && fine; t++) {
        size_t n = (size_t)(t % 100);
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)rand();
        size_t en = b64url(in, n, enc);
        long dn = dec(enc, en, out);
        if (dn != (long)n || memcmp(in, out, n) != 0) {
            fine = 0;
            diag("round trip failed for %zu bytes: %s", n, enc);
        }
    }
    ok(fine, "2000 random byte strings of 0-99 bytes decode to themselves");
}

static void test_one_spelling(void)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char out[4];
    long two = 0, three = 0;
    char s[3];
    for (int a = 0; a < 64; a++)
        for (int b = 0; b < 64; b++) {
            s[0] = alpha[a], s[1] = alpha[b];
            two += dec(s, 2, out) == 1;
            for (int c = 0; c < 64; c++) {
                s[2] = alpha[c];
                three += dec(s, 3, out) == 2;
            }
        }
    is_int(two, 256, "of all 4096 2-character strings, one per byte value decodes");
    is_int(three, 65536, "of all 262144 3-character strings, one per 2-byte value decodes");
}

int main(void)
{
    test_vectors();
    test_refused();
    test_round_trip();
    test_one_spelling();
    return done_testing();
}
