/* fuzz_jwt.c: libFuzzer target for common/jwt.c.
 *
 * Input: byte 0 = secret length * 2 + mode, byte 1 = leeway, then the
 * secret, then the rest.
 * - mode 0: the rest is the token as it is. A result that says the
 *   signature held (OK, EXPIRED, NOT_YET_VALID) must be one where
 *   base64url(HMAC-SHA256(secret, header.payload)) is exactly the
 *   signature part, re-signed here.
 * - mode 1: the rest is header JSON, a NUL, payload JSON (without a NUL:
 *   all payload, under {"alg":"HS256"}); the harness encodes and signs
 *   them, so the fuzzer steers the JSON parser directly. With a non-empty
 *   secret the result can then never be BAD_SIGNATURE.
 * Both: the result is one jwt_verify can return; the claims are
 * consistent (sub NUL-terminated at sub_len, channel entries inside their
 * buffer and each allowing its own name) when the signature held and all
 * zero otherwise; exp/nbf results agree with the times. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "common/jwt.h"
#include "tests/unit/b64url.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

#define NOW 1700000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes base64url(HMAC-SHA256(secret, msg)) into out (44 bytes); returns its length. */
static size_t sign(const uint8_t *secret, size_t sl, const char *msg, size_t n, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    static const uint8_t none;
    CHECK(HMAC(EVP_sha256(), sl ? secret : &none, (int)sl, (const unsigned char *)msg, n, mac, &ml));
    return b64url(mac, ml, out);
}

static void check_claims(enum jwt_result r, const struct jwt_claims *c, int64_t leeway)
{
    if (r != JWT_OK && r != JWT_EXPIRED && r != JWT_NOT_YET_VALID) {
        static const struct jwt_claims zero;
        CHECK(memcmp(c, &zero, sizeof(zero)) == 0);
        return;
    }
    CHECK(c->sub_len < JWT_SUB_MAX && c->sub[c->sub_len] == 0 && strlen(c->sub) == c->sub_len);
    CHECK(c->has_sub || c->sub_len == 0);
    CHECK(c->channel_count >= 0 && c->channel_count <= JWT_CHANNELS_MAX);
    CHECK(c->has_channels || c->channel_count == 0);
    for (int i = 0; i < c->channel_count; i++) {
        size_t off = c->channel_off[i], len = c->channel_len[i];
        CHECK(off + len <= JWT_CHANNELS_BYTES);
        const char *e = c->channel_buf + off;
        /* an entry allows its own name, and a prefix entry its prefix */
        size_t own = len && e[len - 1] == '*' ? len - 1 : len;
        CHECK(jwt_channel_allowed(c, e, own) == 1);
    }
    if (!c->has_channels)
        CHECK(jwt_channel_allowed(c, "x", 1) == 1);
    else if (c->channel_count == 0)
        CHECK(jwt_channel_allowed(c, "x", 1) == 0);
    int expired = c->has_exp && c->exp <= INT64_MAX - leeway && NOW >= c->exp + leeway;
    int early = c->has_nbf && NOW + leeway < c->nbf;
    CHECK(r == (expired ? JWT_EXPIRED : early ? JWT_NOT_YET_VALID : JWT_OK));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0] & 1;
    size_t sl = data[0] >> 1;
    int64_t leeway = data[1];
    data += 2, size -= 2;
    if (sl > size)
        sl = size;
    uint8_t *secret = malloc(sl ? sl : 1);
    memcpy(secret, data, sl);
    data += sl, size -= sl;

    char *tok = malloc(size * 4 / 3 + 128);
    size_t n;
    if (mode == 0) {
        memcpy(tok, data, size);
        n = size;
    } else {
        static const uint8_t hs256[] = "{\"alg\":\"HS256\"}";
        const uint8_t *nul = memchr(data, 0, size);
        const uint8_t *h = hs256, *p = data;
        size_t hn = sizeof(hs256) - 1, pn = size;
        if (nul) {
            h = data, hn = (size_t)(nul - data);
            p = nul + 1, pn = size - hn - 1;
        }
        n = b64url(h, hn, tok);
        tok[n++] = '.';
        n += b64url(p, pn, tok + n);
        size_t signed_len = n;
        tok[n++] = '.';
        n += sign(secret, sl, tok, signed_len, tok + n);
    }
    char *exact = malloc(n ? n : 1);
    memcpy(exact, tok, n);
    struct jwt_claims c;
    memset(&c, 0xa5, sizeof(c));
    enum jwt_result r = jwt_verify(exact, n, (const char *)secret, sl, NOW, leeway, &c);
    CHECK(r >= JWT_OK && r <= JWT_NOT_YET_VALID);
    check_claims(r, &c, leeway);

    if (mode == 1 && sl > 0)
        CHECK(r != JWT_BAD_SIGNATURE);
    if (r == JWT_OK || r == JWT_EXPIRED || r == JWT_NOT_YET_VALID) {
        /* The signature held: re-signing must give exactly its text. */
        const char *last = memrchr(exact, '.', n);
        CHECK(last && n <= JWT_TOKEN_MAX && sl > 0);
        char sig[64];
        size_t sn = sign(secret, sl, exact, (size_t)(last - exact), sig);
        CHECK((size_t)(exact + n - last - 1) == sn && memcmp(last + 1, sig, sn) == 0);
    }
    free(exact);
    free(tok);
    free(secret);
    return 0;
}
