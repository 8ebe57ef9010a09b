/* test_jwt.c: common/jwt.c against RFC 7519/7515 (HS256, compact form) and
 * its header's contract. Tokens are built here with OpenSSL's HMAC and a
 * local base64url encoder, and handed to jwt_verify as exact-size heap
 * copies without a NUL, so ASan sees any read past the end. */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include "common/jwt.h"
#include "tests/unit/b64url.h"
#include "tap.h"

#define NOW     1700000000LL
#define SECRET  "your-256-bit-secret"
#define TOK_CAP 16384

static const char jwt_io[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
                             ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
                             ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/* Writes b64url(header).b64url(payload).b64url(HMAC-md(secret, both)) into
 * out (TOK_CAP bytes); returns its length. */
static size_t sign_md(char *out, const EVP_MD *md, const char *header, size_t hn, const char *payload,
                      size_t pn, const char *secret)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    size_t o = b64url(header, hn, out);
    out[o++] = '.';
    o += b64url(payload, pn, out + o);
    if (!HMAC(md, secret, (int)strlen(secret), (unsigned char *)out, o, mac, &ml))
        abort();
    out[o++] = '.';
    o += b64url(mac, ml, out + o);
    return o;
}

static char tok[TOK_CAP];

static const char *sign(const char *header, const char *payload, const char *secret)
{
    sign_md(tok, EVP_sha256(), header, strlen(header), payload, strlen(payload), secret);
    return tok;
}

/* Payload signed under the usual HS256 header with SECRET. */
static const char *signp(const char *payload)
{
    return sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET);
}

static enum jwt_result verify_n(const char *t, size_t n, const char *secret, int64_t now, int64_t leeway,
                                struct jwt_claims *c)
{
    char *copy = malloc(n ? n : 1);
    char *key = malloc(strlen(secret) + 1);
    if (!copy || !key)
        abort();
    memcpy(copy, t, n);
    memcpy(key, secret, strlen(secret));
    memset(c, 0x5a, sizeof(*c)); /* anything not written by jwt_verify shows */
    enum jwt_result r = jwt_verify(copy, n, key, strlen(secret), now, leeway, c);
    free(copy);
    free(key);
    return r;
}

static enum jwt_result verify(const char *t, const char *secret, int64_t now, int64_t leeway)
{
    struct jwt_claims c;
    return verify_n(t, strlen(t), secret, now, leeway, &c);
}

/* Verifies payload signed properly: the result is the payload's alone. */
static enum jwt_result vp(const char *payload)
{
    return verify(signp(payload), SECRET, NOW, 0);
}

/* Signs payload, then verifies it into *c. */
static enum jwt_result vpc(const char *payload, int64_t now, int64_t leeway, struct jwt_claims *c)
{
    const char *t = signp(payload);
    return verify_n(t, strlen(t), SECRET, now, leeway, c);
}

static int allowed(const struct jwt_claims *c, const char *ch)
{
    size_t n = strlen(ch);
    char *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, ch, n);
    int r = jwt_channel_allowed(c, copy, n);
    free(copy);
    return r;
}

static void test_jwt_io(void)
{
    struct jwt_claims c;
    is_int(verify_n(jwt_io, strlen(jwt_io), SECRET, NOW, 0, &c), JWT_OK, "jwt.io HS256 example verifies");
    is_str(c.sub, "1234567890", "jwt.io example: sub");
    is_int((long long)c.sub_len, 10, "jwt.io example: sub_len");
    ok(c.has_sub && !c.has_exp && !c.has_nbf && !c.has_channels, "jwt.io example: only sub present");
    is_int(allowed(&c, "anything"), 1, "no channels claim allows any channel");
    is_str(signp("{\"sub\":\"1234567890\",\"name\":\"John Doe\",\"iat\":1516239022}"), jwt_io,
           "the test's signer reproduces the jwt.io token");
    is_int(verify(jwt_io, "your-256-bit-secreT", NOW, 0), JWT_BAD_SIGNATURE, "wrong secret");
    is_int(verify(jwt_io, "", NOW, 0), JWT_BAD_SIGNATURE, "empty secret");
    sign("{\"alg\":\"HS256\"}", "{}", "");
    is_int(verify(tok, "", NOW, 0), JWT_BAD_SIGNATURE, "token signed with the empty secret is refused");

    /* A bad signature leaves nothing from the payload behind. */
    verify_n(jwt_io, strlen(jwt_io), "nope", NOW, 0, &c);
    ok(c.sub[0] == 0 && !c.has_sub && c.channel_count == 0, "claims zeroed after a bad signature");
}

static void test_tampered(void)
{
    char t[sizeof(jwt_io)];
    memcpy(t, jwt_io, sizeof(jwt_io));
    /* payload {"sub":"1234567891",...}: same length, so only the payload part differs */
    char p[128];
    static const char tampered[] = "{\"sub\":\"1234567891\",\"name\":\"John Doe\",\"iat\":1516239022}";
    b64url(tampered, sizeof(tampered) - 1, p);
    const char *dot = strchr(t, '.');
    memcpy((char *)dot + 1, p, strlen(p));
    ok(strcmp(t, jwt_io) != 0, "tampered token differs");
    is_int(verify(t, SECRET, NOW, 0), JWT_BAD_SIGNATURE, "tampered payload (sub changed)");

    memcpy(t, jwt_io, sizeof(jwt_io));
    char *sig = strrchr(t, '.') + 1;
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    is_int(verify(t, SECRET, NOW, 0), JWT_BAD_SIGNATURE, "one signature character changed");

    memcpy(t, jwt_io, sizeof(jwt_io));
    sig = strrchr(t, '.') + 1;
    sig[42] = 'd'; /* 'c' -> 'd': sets an unused trailing bit */
    is_int(verify(t, SECRET, NOW, 0), JWT_MALFORMED, "signature with a non-zero unused bit");

    memcpy(t, jwt_io, sizeof(jwt_io));
    t[strlen(t) - 1] = 0;
    t[strlen(t) - 1] = 'A'; /* canonical: no unused bit set */
    is_int(verify(t, SECRET, NOW, 0), JWT_BAD_SIGNATURE, "signature one character short (42)");
    t[strlen(t) - 1] = '5';
    is_int(verify(t, SECRET, NOW, 0), JWT_MALFORMED, "the same with an unused bit set");
    /* 44 characters of base64url are 33 bytes */
    char longer[sizeof(jwt_io) + 1];
    memcpy(longer, jwt_io, sizeof(jwt_io) - 1);
    longer[sizeof(jwt_io) - 2] = 'c';
    longer[sizeof(jwt_io) - 1] = 'A';
    longer[sizeof(jwt_io)] = 0;
    is_int(verify(longer, SECRET, NOW, 0), JWT_BAD_SIGNATURE, "signature one character long (44)");

    /* The signature covers the header too. */
    char h[64];
    memcpy(t, jwt_io, sizeof(jwt_io));
    b64url("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", 27, h);
    memcpy(t, h, strlen(h));
    is_int(verify(t, SECRET, NOW, 0), JWT_BAD_SIGNATURE, "tampered header (typ changed)");
}

static void test_alg(void)
{
    is_int(verify(sign("{\"alg\":\"none\"}", "{\"sub\":\"x\"}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG,
           "alg none, with a signature");
    char t[256];
    size_t n = b64url("{\"alg\":\"none\"}", 14, t);
    t[n++] = '.';
    n += b64url("{\"sub\":\"x\"}", 11, t + n);
    t[n++] = '.';
    t[n] = 0;
    is_int(verify(t, SECRET, NOW, 0), JWT_BAD_ALG, "alg none, unsecured form (empty signature)");
    sign_md(tok, EVP_sha512(), "{\"alg\":\"HS512\"}", 15, "{}", 2, SECRET);
    is_int(verify(tok, SECRET, NOW, 0), JWT_BAD_ALG, "alg HS512 (signed with HMAC-SHA512)");
    is_int(verify(sign("{\"alg\":\"HS512\"}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG,
           "alg HS512 with an HS256 signature");
    is_int(verify(sign("{\"alg\":\"hs256\"}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG,
           "alg hs256 (case)");
    is_int(verify(sign("{\"alg\":\"HS256 \"}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG, "alg 'HS256 '");
    is_int(verify(sign("{\"alg\":\"RS256\"}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG, "alg RS256");
    is_int(verify(sign("{\"alg\":\"HS256HS256HS256HS256\"}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG,
           "alg long string");
    is_int(verify(sign("{\"typ\":\"JWT\"}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG, "no alg");
    is_int(verify(sign("{\"alg\":256}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG, "alg a number");
    is_int(verify(sign("{\"alg\":null}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG, "alg null");
    is_int(verify(sign("{\"alg\":[\"HS256\"]}", "{}", SECRET), SECRET, NOW, 0), JWT_BAD_ALG, "alg an array");
    is_int(verify(sign("{\"alg\":\"HS\\u0032\\u00356\"}", "{}", SECRET), SECRET, NOW, 0), JWT_OK,
           "alg HS256 spelled with escapes");
    is_int(verify(sign(" {\"alg\" : \"HS256\", \"kid\":{\"x\":[1]}}\n", "{}", SECRET), SECRET, NOW, 0),
           JWT_OK, "header with whitespace, no typ, a nested member");
    is_int(verify(sign("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{}", SECRET), SECRET, NOW, 0), JWT_MALFORMED,
           "alg twice");
    is_int(verify(sign("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", SECRET), SECRET, NOW, 0), JWT_MALFORMED,
           "alg none then HS256");
    is_int(verify(sign("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{}", SECRET), SECRET, NOW, 0),
           JWT_MALFORMED, "crit refused");
    is_int(verify(sign("[\"alg\",\"HS256\"]", "{}", SECRET), SECRET, NOW, 0), JWT_MALFORMED,
           "header an array");
    is_int(verify(sign("{\"alg\":\"HS256\"", "{}", SECRET), SECRET, NOW, 0), JWT_MALFORMED,
           "header truncated");
    is_int(verify(sign("{\"alg\":\"HS256\"}}", "{}", SECRET), SECRET, NOW, 0), JWT_MALFORMED,
           "header trailing garbage");
    is_int(verify(sign("", "{}", SECRET), SECRET, NOW, 0), JWT_MALFORMED, "empty header");
}

static void test_shape(void)
{
    static const struct {
        const char *t;
        const char *why;
    } bad[] = {
        {"", "empty"},
        {"eyJhbGciOiJIUzI1NiJ9", "one part"},
        {"eyJhbGciOiJIUzI1NiJ9.e30", "two parts"},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AAAA.AAAA", "four parts"},
        {"..", "three empty parts"},
        {".e30.AAAA", "empty header part"},
        {"eyJhbGciOiJIUzI1NiJ9=.e30.AAAA", "header with '=' padding"},
        {"eyJhbGciOiJIUzI1NiJ9.e30=.AAAA", "payload with '=' padding"},
        {"eyJhbGciOiJIUzI1NiJ9.e3+.AAAA", "'+' in payload"},
        {"eyJhbGciOiJIUzI1NiJ9.e3/.AAAA", "'/' in payload"},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AA+A", "'+' in signature"},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AAAAA", "signature length 5 (mod 4 == 1)"},
        {"eyJhbGciOiJIUzI1NiJ9.e30AA.AAAA", "payload length 5"},
        {"eyJhbGciOiJIUzI1NiJ9A.e30.AAAA", "header length 21"},
        {"eyJhbGciOiJIUzI1NiJ9.e31.AAAA", "payload with a non-zero unused bit"},
        {"eyJhbGciOiJIUzI1NiJ9.e3 0.AAAA", "space in payload"},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AAAA\n", "newline after signature"},
        {" eyJhbGciOiJIUzI1NiJ9.e30.AAAA", "space before header"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(verify(bad[i].t, SECRET, NOW, 0), JWT_MALFORMED, "%s", bad[i].why);
    char t[sizeof(jwt_io) + 1];
    memcpy(t, jwt_io, sizeof(jwt_io));
    t[strlen(t) - 1] = 0;
    t[strlen(t) - 1] = 0; /* 41 characters: mod 4 == 1 */
    is_int(verify(t, SECRET, NOW, 0), JWT_MALFORMED, "signature of 41 characters");
    /* A NUL inside the length */
    memcpy(t, jwt_io, sizeof(jwt_io));
    struct jwt_claims c;
    is_int(verify_n(t, sizeof(jwt_io), SECRET, NOW, 0, &c), JWT_MALFORMED, "trailing NUL byte inside len");
    is_int(verify_n(t, 0, SECRET, NOW, 0, &c), JWT_MALFORMED, "length 0");
}

static void test_time(void)
{
    struct jwt_claims c;
    char p[128];
    snprintf(p, sizeof(p), "{\"exp\":%lld}", NOW - 100);
    is_int(verify(signp(p), SECRET, NOW, 0), JWT_EXPIRED, "exp 100 s ago");
    is_int(verify(signp(p), SECRET, NOW, 100), JWT_EXPIRED,
           "exp 100 s ago, leeway 100 (exp + leeway == now)");
    is_int(verify(signp(p), SECRET, NOW, 101), JWT_OK, "exp 100 s ago, leeway 101");
    is_int(verify(signp(p), SECRET, NOW, -1000), JWT_EXPIRED, "negative leeway counts as 0");
    snprintf(p, sizeof(p), "{\"exp\":%lld}", NOW);
    is_int(verify(signp(p), SECRET, NOW, 0), JWT_EXPIRED, "exp == now");
    snprintf(p, sizeof(p), "{\"exp\":%lld}", NOW + 1);
    is_int(vpc(p, NOW, 0, &c), JWT_OK, "exp now + 1");
    ok(c.has_exp && c.exp == NOW + 1, "exp value kept");
    snprintf(p, sizeof(p), "{\"exp\":%lld.999}", NOW);
    is_int(verify(signp(p), SECRET, NOW, 0), JWT_EXPIRED, "exp now.999 floors to now");
    snprintf(p, sizeof(p), "{\"exp\":%lld.5,\"sub\":\"u\"}", NOW + 1);
    is_int(vpc(p, NOW, 0, &c), JWT_OK, "exp (now+1).5");
    is_int(c.exp, NOW + 1, "fraction floored");
    is_int(vpc("{\"exp\":-1.5}", NOW, 0, &c), JWT_EXPIRED, "exp -1.5");
    is_int(c.exp, -2, "negative fraction floors down");
    is_str(c.sub, "", "claims filled for JWT_EXPIRED (no sub)");
    is_int(vpc("{\"exp\":-0.0}", NOW, 0, &c), JWT_EXPIRED, "exp -0.0");
    is_int(c.exp, 0, "-0.0 is 0");
    is_int(vpc("{\"exp\":9223372036854775807}", NOW, INT64_MAX, &c), JWT_OK,
           "exp INT64_MAX with leeway INT64_MAX (no overflow)");
    is_int(c.exp, INT64_MAX, "exp INT64_MAX kept");
    is_int(vpc("{\"exp\":-9223372036854775808}", NOW, 0, &c), JWT_EXPIRED, "exp INT64_MIN");
    is_int(c.exp, INT64_MIN, "exp INT64_MIN kept");
    is_int(vp("{\"exp\":9223372036854775808}"), JWT_MALFORMED, "exp INT64_MAX + 1");
    is_int(vp("{\"exp\":-9223372036854775808.5}"), JWT_MALFORMED, "exp floors below INT64_MIN");
    is_int(vp("{\"exp\":99999999999999999999999}"), JWT_MALFORMED, "exp beyond 64 bits");
    is_int(vp("{\"exp\":1.7e9}"), JWT_MALFORMED, "exp with an exponent");
    is_int(vp("{\"exp\":\"1700000000\"}"), JWT_MALFORMED, "exp a string");
    is_int(vp("{\"exp\":null}"), JWT_MALFORMED, "exp null");
    is_int(vp("{\"exp\":01}"), JWT_MALFORMED, "exp with a leading zero");
    is_int(vp("{\"exp\":1.}"), JWT_MALFORMED, "exp '1.'");
    is_int(vp("{\"exp\":+1}"), JWT_MALFORMED, "exp '+1'");
    is_int(vp("{\"exp\":-}"), JWT_MALFORMED, "exp '-'");

    snprintf(p, sizeof(p), "{\"nbf\":%lld}", NOW + 10);
    is_int(verify(signp(p), SECRET, NOW, 0), JWT_NOT_YET_VALID, "nbf 10 s ahead");
    is_int(verify(signp(p), SECRET, NOW, 9), JWT_NOT_YET_VALID, "nbf 10 s ahead, leeway 9");
    is_int(verify(signp(p), SECRET, NOW, 10), JWT_OK, "nbf 10 s ahead, leeway 10");
    snprintf(p, sizeof(p), "{\"nbf\":%lld}", NOW);
    is_int(vpc(p, NOW, 0, &c), JWT_OK, "nbf == now");
    ok(c.has_nbf && c.nbf == NOW, "nbf value kept");
    is_int(verify(signp("{\"nbf\":9223372036854775807}"), SECRET, INT64_MAX, INT64_MAX), JWT_OK,
           "now + leeway saturates");
    snprintf(p, sizeof(p), "{\"nbf\":%lld,\"exp\":%lld,\"sub\":\"s\"}", NOW + 10, NOW - 10);
    is_int(vpc(p, NOW, 0, &c), JWT_EXPIRED, "both wrong: exp checked first");
    is_str(c.sub, "s", "claims filled for JWT_EXPIRED");
    snprintf(p, sizeof(p), "{\"nbf\":%lld,\"exp\":%lld,\"sub\":\"s\"}", NOW - 10, NOW + 10);
    is_int(vp(p), JWT_OK, "nbf past, exp future");
    snprintf(p, sizeof(p), "{\"nbf\":%lld,\"sub\":\"n\"}", NOW + 10);
    is_int(vpc(p, NOW, 0, &c), JWT_NOT_YET_VALID, "nbf future");
    is_str(c.sub, "n", "claims filled for JWT_NOT_YET_VALID");
}

static void test_channels(void)
{
    struct jwt_claims c;
    is_int(vpc("{\"channels\":[\"chat\", \"room.*\" ,\"a\\u002ab\",\"\\u0062oard\"]}", NOW, 0, &c), JWT_OK,
           "channels claim");
    ok(c.has_channels && c.channel_count == 4, "four entries");
    is_int(allowed(&c, "chat"), 1, "exact entry");
    is_int(allowed(&c, "chat2"), 0, "exact entry is not a prefix");
    is_int(allowed(&c, "cha"), 0, "nor a longer name's prefix");
    is_int(allowed(&c, "Chat"), 0, "case matters");
    is_int(allowed(&c, "room.a"), 1, "prefix entry room.*: room.a");
    is_int(allowed(&c, "room.a.b"), 1, "prefix entry room.*: room.a.b");
    is_int(allowed(&c, "room."), 1, "prefix entry room.*: room.");
    is_int(allowed(&c, "room"), 0, "prefix entry room.*: not room");
    is_int(allowed(&c, "roomA"), 0, "prefix entry room.*: not roomA");
    is_int(allowed(&c, "a*b"), 1, "'*' inside an entry is literal (escaped \\u002a)");
    is_int(allowed(&c, "axb"), 0, "'*' inside an entry matches nothing else");
    is_int(allowed(&c, "board"), 1, "escaped entry decoded");
    is_int(allowed(&c, ""), 0, "empty name");

    is_int(vpc("{\"channels\":[\"*\"]}", NOW, 0, &c), JWT_OK, "channels [*]");
    ok(allowed(&c, "x") && allowed(&c, "room.1") && allowed(&c, ""), "'*' allows all");
    is_int(jwt_channel_allowed(&c, NULL, 0), 1, "'*' with a NULL, 0-byte name");
    is_int(vpc("{\"channels\":[]}", NOW, 0, &c), JWT_OK, "channels []");
    ok(c.has_channels && !allowed(&c, "x") && !allowed(&c, "*"), "empty channels allow nothing");
    is_int(vpc("{\"channels\":[\"\"]}", NOW, 0, &c), JWT_OK, "channels [\"\"]");
    ok(!allowed(&c, "x") && allowed(&c, ""), "empty entry matches only the empty name");

    is_int(vp("{\"channels\":\"chat\"}"), JWT_MALFORMED, "channels a string");
    is_int(vp("{\"channels\":null}"), JWT_MALFORMED, "channels null");
    is_int(vp("{\"channels\":{}}"), JWT_MALFORMED, "channels an object");
    is_int(vp("{\"channels\":\"]}"), JWT_MALFORMED, "channels '\"]' (no '[')");
    is_int(vp("{\"channels\":[\"a\",1]}"), JWT_MALFORMED, "channels with a number");
    is_int(vp("{\"channels\":[[\"a\"]]}"), JWT_MALFORMED, "channels nested array");
    is_int(vp("{\"channels\":[\"a\",]}"), JWT_MALFORMED, "channels trailing comma");
    is_int(vp("{\"channels\":[\"a\" \"b\"]}"), JWT_MALFORMED, "channels missing comma");
    is_int(vp("{\"channels\":[\"a\""), JWT_MALFORMED, "channels unterminated");

    char p[4096];
    size_t o = (size_t)snprintf(p, sizeof(p), "{\"channels\":[");
    for (int i = 0; i < JWT_CHANNELS_MAX; i++)
        o += (size_t)snprintf(p + o, sizeof(p) - o, "%s\"c%d\"", i ? "," : "", i);
    snprintf(p + o, sizeof(p) - o, "]}");
    is_int(vpc(p, NOW, 0, &c), JWT_OK, "JWT_CHANNELS_MAX entries");
    ok(allowed(&c, "c0") && allowed(&c, "c31") && !allowed(&c, "c32"), "all JWT_CHANNELS_MAX entries kept");
    snprintf(p + o, sizeof(p) - o, ",\"c%d\"]}", JWT_CHANNELS_MAX);
    is_int(vp(p), JWT_MALFORMED, "JWT_CHANNELS_MAX + 1 entries");

    /* JWT_CHANNELS_BYTES exactly, then one more */
    char big[JWT_CHANNELS_BYTES + 64];
    o = (size_t)snprintf(p, sizeof(p), "{\"channels\":[");
    for (int i = 0; i < 8; i++) {
        memset(big, 'a' + i, JWT_CHANNELS_BYTES / 8);
        big[JWT_CHANNELS_BYTES / 8] = 0;
        o += (size_t)snprintf(p + o, sizeof(p) - o, "%s\"%s\"", i ? "," : "", big);
    }
    snprintf(p + o, sizeof(p) - o, "]}");
    is_int(vpc(p, NOW, 0, &c), JWT_OK, "JWT_CHANNELS_BYTES of entries");
    memset(big, 'h', JWT_CHANNELS_BYTES / 8);
    big[JWT_CHANNELS_BYTES / 8] = 0;
    ok(allowed(&c, big), "last entry intact");
    snprintf(p + o, sizeof(p) - o, ",\"z\"]}");
    is_int(vp(p), JWT_MALFORMED, "JWT_CHANNELS_BYTES + 1 bytes of entries");
}

static void test_sub(void)
{
    struct jwt_claims c;
    is_int(vpc("{\"sub\":\"a\\\"b\\\\c\\/d\\u00e9\\u20ac\\ud83d\\ude00\\n\\t\\b\\f\\r\"}", NOW, 0, &c),
           JWT_OK, "sub with every escape");
    static const char want[] = "a\"b\\c/d\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n\t\b\f\r";
    is_mem(c.sub, c.sub_len, want, sizeof(want) - 1, "sub decoded to UTF-8");
    is_int(c.sub[c.sub_len], 0, "sub NUL-terminated");
    is_int(vpc("{\"sub\":\"caf\xc3\xa9\"}", NOW, 0, &c), JWT_OK, "raw UTF-8 sub");
    is_str(c.sub, "caf\xc3\xa9", "raw UTF-8 kept");
    is_int(vp("{\"sub\":\"a\\u0000b\"}"), JWT_MALFORMED, "\\u0000 in sub");
    is_int(vp("{\"x\":\"a\\u0000b\"}"), JWT_MALFORMED, "\\u0000 in an ignored member");
    is_int(vp("{\"sub\":\"\\ud83d\"}"), JWT_MALFORMED, "lone high surrogate");
    is_int(vp("{\"sub\":\"\\ud83dx\"}"), JWT_MALFORMED, "high surrogate then a character");
    is_int(vp("{\"sub\":\"\\ud83d\\u0041\"}"), JWT_MALFORMED, "high surrogate then a non-surrogate");
    is_int(vp("{\"sub\":\"\\ude00\"}"), JWT_MALFORMED, "lone low surrogate");
    is_int(vp("{\"sub\":\"\\u12\"}"), JWT_MALFORMED, "short \\u");
    is_int(vp("{\"sub\":\"\\u12g4\"}"), JWT_MALFORMED, "bad hex in \\u");
    is_int(vp("{\"sub\":\"\\x41\"}"), JWT_MALFORMED, "unknown escape \\x");
    is_int(vp("{\"sub\":\"\\'\"}"), JWT_MALFORMED, "unknown escape \\'");
    is_int(vp("{\"sub\":\"a\tb\"}"), JWT_MALFORMED, "raw tab in a string");
    is_int(vp("{\"sub\":\"a\x7f\"}"), JWT_OK, "raw DEL is allowed");
    is_int(vp("{\"sub\":\"\xc3\"}"), JWT_MALFORMED, "truncated UTF-8");
    is_int(vp("{\"sub\":\"\xed\xa0\x80\"}"), JWT_MALFORMED, "UTF-8 surrogate");
    is_int(vp("{\"sub\":\"\xc0\xaf\"}"), JWT_MALFORMED, "overlong UTF-8");
    is_int(vp("{\"sub\":1}"), JWT_MALFORMED, "sub a number");
    is_int(vp("{\"sub\":null}"), JWT_MALFORMED, "sub null");

    char p[512], s[JWT_SUB_MAX + 2];
    memset(s, 'x', JWT_SUB_MAX - 1);
    s[JWT_SUB_MAX - 1] = 0;
    snprintf(p, sizeof(p), "{\"sub\":\"%s\"}", s);
    is_int(vpc(p, NOW, 0, &c), JWT_OK, "sub of JWT_SUB_MAX - 1 bytes");
    is_str(c.sub, s, "long sub kept whole");
    snprintf(p, sizeof(p), "{\"sub\":\"%sx\"}", s);
    is_int(vp(p), JWT_MALFORMED, "sub of JWT_SUB_MAX bytes");
    /* 125 bytes plus a 3-byte escape: the limit counts decoded bytes */
    s[JWT_SUB_MAX - 3] = 0;
    snprintf(p, sizeof(p), "{\"sub\":\"%s\\u20ac\"}", s);
    is_int(vp(p), JWT_MALFORMED, "sub over the limit only once decoded");
    s[JWT_SUB_MAX - 4] = 0;
    snprintf(p, sizeof(p), "{\"sub\":\"%s\\u20ac\"}", s);
    is_int(vpc(p, NOW, 0, &c), JWT_OK, "sub at the limit once decoded");
    is_int((long long)c.sub_len, JWT_SUB_MAX - 1, "sub_len at the limit");
}

static void test_json(void)
{
    struct jwt_claims c;
    is_int(vpc("{\"x\":{\"a\":[1,-2.5e+3,0.5E-1,true,false,null,\"s\\\"}]\",{},[]],\"b\":{}},"
               "\"y\":\"\\u005c\",\"z\":-0,\"sub\":\"ok\"}",
               NOW, 0, &c),
           JWT_OK, "skipping every JSON type");
    is_str(c.sub, "ok", "member after skipped values read");
    is_int(vpc(" \t\r\n{ \"sub\" : \"w\" , \"exp\" : 2000000000 } \n", NOW, 0, &c), JWT_OK,
           "whitespace everywhere JSON allows it");
    ok(!strcmp(c.sub, "w") && c.exp == 2000000000, "members read through whitespace");
    is_int(vp("{}"), JWT_OK, "empty object");
    is_int(vp("{ }"), JWT_OK, "empty object with a space");

    static const struct {
        const char *p;
        const char *why;
    } bad[] = {
        {"", "empty payload"},
        {" ", "only whitespace"},
        {"{", "truncated at '{'"},
        {"{\"sub\":\"a\"", "truncated before '}'"},
        {"{\"sub\":", "truncated after ':'"},
        {"{\"sub\"", "truncated after a name"},
        {"{\"sub\":\"a", "unterminated string"},
        {"{\"x\":\"a\\\"}", "string ending in an escaped quote"},
        {"{\"x\":\"a\\", "string ending in a backslash"},
        {"{\"sub\":\"a\"}x", "trailing garbage"},
        {"{\"sub\":\"a\"}{}", "two objects"},
        {"[]", "an array"},
        {"\"sub\"", "a string"},
        {"null", "null"},
        {"{\"sub\":\"a\",}", "trailing comma"},
        {"{,}", "lone comma"},
        {"{\"sub\" \"a\"}", "missing colon"},
        {"{\"sub\":\"a\" \"exp\":1}", "missing comma"},
        {"{'sub':'a'}", "single quotes"},
        {"{sub:\"a\"}", "unquoted name"},
        {"{\"x\":tru}", "bad literal tru"},
        {"{\"x\":True}", "bad literal True"},
        {"{\"x\":nul}", "truncated null"},
        {"{\"x\":[1,2}", "array closed by '}'"},
        {"{\"x\":{\"a\":1]}", "object closed by ']'"},
        {"{\"x\":{\"a\"}}", "nested member without value"},
        {"{\"x\":{1:2}}", "nested number name"},
        {"{\"x\":[1 2]}", "nested missing comma"},
        {"{\"x\":[,]}", "nested lone comma"},
        {"{\"x\":.5}", "number '.5'"},
        {"{\"x\":1e}", "number '1e'"},
        {"{\"x\":1e+}", "number '1e+'"},
        {"{\"x\":-a}", "number '-a'"},
        {"{\"x\":0x10}", "hex number"},
        {"{\"x\":NaN}", "NaN"},
        {"{\"sub\":\"a\",\"sub\":\"b\"}", "duplicate sub"},
        {"{\"exp\":1,\"exp\":2}", "duplicate exp"},
        {"{\"x\":1,\"x\":{}}", "duplicate ignored member"},
        {"{\"exp\":1,\"\\u0065xp\":2}", "duplicate spelled with an escape"},
        {"{\"channels\":[],\"channels\":[\"*\"]}", "duplicate channels"},
        {"{\"a\":1,\"b\":2,\"c\":3,\"a\":4}", "duplicate after others"},
        {"{\"\\ud800\":1}", "lone surrogate in a name"},
        {"{\"x\":\"\\ud800\"}", "lone surrogate in an ignored member"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(verify(sign("{\"alg\":\"HS256\"}", bad[i].p, SECRET), SECRET, NOW, 0), JWT_MALFORMED, "%s",
               bad[i].why);
    /* The trailing NUL case above is cut by strlen; sign it with its NUL. */
    sign_md(tok, EVP_sha256(), "{\"alg\":\"HS256\"}", 15, "{}\0", 3, SECRET);
    is_int(verify(tok, SECRET, NOW, 0), JWT_MALFORMED, "payload with a NUL after the object");
    is_int(vp("{\"exp\":1,\"ex\":2,\"e\":3,\"\":4,\"sub\":\"a\"}"), JWT_EXPIRED,
           "prefix names are not duplicates");
    is_int(vp("{\"a\":{\"k\":1},\"b\":{\"k\":1}}"), JWT_OK, "same name in different nested objects");

    /* Depth: the top object is level 1; JWT_JSON_DEPTH levels are fine. */
    char p[256];
    for (int depth = JWT_JSON_DEPTH; depth <= JWT_JSON_DEPTH + 1; depth++) {
        size_t o = (size_t)snprintf(p, sizeof(p), "{\"x\":");
        for (int i = 2; i <= depth; i++) {
            if (i % 2)
                p[o++] = '[';
            else
                o += (size_t)snprintf(p + o, sizeof(p) - o, "{\"k\":");
        }
        o += (size_t)snprintf(p + o, sizeof(p) - o, "1");
        for (int i = depth; i >= 2; i--)
            p[o++] = i % 2 ? ']' : '}';
        snprintf(p + o, sizeof(p) - o, "}");
        is_int(vp(p), depth <= JWT_JSON_DEPTH ? JWT_OK : JWT_MALFORMED, "nesting %d levels: %s", depth, p);
    }
    /* Far deeper than the limit: bounded, no stack growth. */
    char deep[2100];
    size_t o = (size_t)snprintf(deep, sizeof(deep), "{\"x\":");
    while (o < 1005)
        deep[o++] = '[';
    deep[o] = 0;
    is_int(vp(deep), JWT_MALFORMED, "1000 unclosed '['");
    memset(deep + o, ']', 1000);
    snprintf(deep + o + 1000, sizeof(deep) - o - 1000, "}");
    is_int(vp(deep), JWT_MALFORMED, "1000 nested arrays, closed");
    /* the same shape with JWT_JSON_DEPTH levels, as a control */
    o = 5;
    for (int i = 0; i < JWT_JSON_DEPTH - 1; i++)
        deep[o++] = '[';
    for (int i = 0; i < JWT_JSON_DEPTH - 1; i++)
        deep[o++] = ']';
    snprintf(deep + o, sizeof(deep) - o, "}");
    is_int(vp(deep), JWT_OK, "%d levels of arrays, closed (control for the above)", JWT_JSON_DEPTH);
    is_int(vpc("{\"sub\":\"a\",\"x\":}", NOW, 0, &c), JWT_MALFORMED, "payload malformed after sub");
    ok(!c.has_sub && c.sub[0] == 0, "claims zeroed after a malformed payload");
}

/* Finds a signed token of exactly want bytes by padding the header with
 * spaces and the payload with a member. */
static int token_of_length(size_t want)
{
    static char header[128], payload[JWT_TOKEN_MAX];
    for (size_t f = 0; f < JWT_TOKEN_MAX; f++) {
        for (int sp = 0; sp < 3; sp++) {
            snprintf(header, sizeof(header), "{\"alg\":\"HS256\"%*s}", sp, "");
            int o = snprintf(payload, sizeof(payload), "{\"sub\":\"big\",\"f\":\"");
            memset(payload + o, 'f', f);
            snprintf(payload + o + f, sizeof(payload) - o - f, "\"}");
            if (strlen(sign(header, payload, SECRET)) == want)
                return 1;
        }
    }
    return 0;
}

static void test_length(void)
{
    struct jwt_claims c;
    if (ok(token_of_length(JWT_TOKEN_MAX), "built a token of JWT_TOKEN_MAX bytes")) {
        is_int(verify_n(tok, strlen(tok), SECRET, NOW, 0, &c), JWT_OK, "JWT_TOKEN_MAX bytes verify");
        is_str(c.sub, "big", "sub of the longest token");
    }
    if (ok(token_of_length(JWT_TOKEN_MAX + 1), "built a token of JWT_TOKEN_MAX + 1 bytes")) {
        is_int(verify(tok, SECRET, NOW, 0), JWT_MALFORMED, "JWT_TOKEN_MAX + 1 bytes refused");
    }
    is_int(vp("{\"sub\":\"big\"}"), JWT_OK, "(control: the same shape, short)");
}

static void test_names(void)
{
    const char *seen[JWT_CHANNEL_DENIED + 1];
    int fine = 1;
    for (int r = JWT_OK; r <= JWT_CHANNEL_DENIED; r++) {
        seen[r] = jwt_result_name((enum jwt_result)r);
        if (!seen[r] || !strcmp(seen[r], "unknown"))
            fine = 0;
        for (int k = 0; k < r; k++)
            if (fine && !strcmp(seen[k], seen[r]))
                fine = 0;
    }
    ok(fine, "every result has its own name");
    is_str(jwt_result_name(JWT_OK), "ok", "name of JWT_OK");
    is_str(jwt_result_name(JWT_BAD_SIGNATURE), "bad signature", "name of JWT_BAD_SIGNATURE");
    is_str(jwt_result_name((enum jwt_result)99), "unknown", "name of an unknown value");
}

int main(void)
{
    test_jwt_io();
    test_tampered();
    test_alg();
    test_shape();
    test_time();
    test_channels();
    test_sub();
    test_json();
    test_length();
    test_names();
    return done_testing();
}
