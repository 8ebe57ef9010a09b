/* jwt.c: HS256 JWT verification (contract in jwt.h). The JSON is read by
 * jansson through common/json.h; what is left here is what JWT means. */
#include "jwt.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include "b64url.h"
#include "json.h"

/* Base64url turns 4 characters into at most 3 bytes, so a decoded header
 * or payload of a token within JWT_TOKEN_MAX always fits. */
#define JSON_MAX    B64URL_DECODED_MAX(JWT_TOKEN_MAX)
#define SIG_LEN     32 /* HMAC-SHA256 */
#define SIG_B64_LEN 43 /* its unpadded base64url */

/* ---- header ---- */

static enum jwt_result check_header(const unsigned char *text, size_t n)
{
    json_t *h = json_read_object(text, n, JWT_JSON_DEPTH, NULL);
    if (!h)
        return JWT_MALFORMED;
    json_t *alg = json_object_get(h, "alg");
    enum jwt_result r = JWT_OK;
    if (json_object_get(h, "crit")) /* no extension is implemented */
        r = JWT_MALFORMED;
    else if (!json_is_string(alg) || json_string_length(alg) != 5 ||
             memcmp(json_string_value(alg), "HS256", 5))
        r = JWT_BAD_ALG;
    json_decref(h);
    return r;
}

/* ---- payload ---- */

/* A NumericDate from its JSON text s (n bytes, a number jansson accepted),
 * floored to an integer: 0, or -1 for an exponent form or a value outside
 * int64_t. The text is read rather than jansson's double, so that a large
 * value with a fraction floors exactly. */
static int numeric_date(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0, frac = 0;
    uint64_t mag = 0;
    if (n && s[0] == '-') {
        neg = 1;
        i++;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (mag > (UINT64_MAX - d) / 10)
            return -1;
        mag = mag * 10 + d;
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            frac |= s[i] != '0';
    if (i != n) /* an exponent */
        return -1;
    const uint64_t min_mag = (uint64_t)INT64_MAX + 1;
    if (!neg) {
        if (mag > INT64_MAX)
            return -1;
        *out = (int64_t)mag;
        return 0;
    }
    /* floor(-x.y) with y > 0 is -(x + 1) */
    if (mag > min_mag || (frac && mag == min_mag))
        return -1;
    mag += (uint64_t)frac;
    *out = mag == min_mag ? INT64_MIN : -(int64_t)mag;
    return 0;
}

/* Reads member `name` of payload p (text t, n bytes) as a NumericDate. */
static enum jwt_result date_claim(json_t *p, const unsigned char *t, size_t n, const char *name, int64_t *out,
                                  int *has)
{
    json_t *v = json_object_get(p, name), *x;
    size_t index = 0, len;
    const char *k, *text;
    if (!v)
        return JWT_OK;
    *has = 1;
    json_object_foreach(p, k, x)
    { /* its place in the text: jansson keeps the order */
        if (x == v)
            break;
        index++;
    }
    if (!json_is_number(v) || json_member_text((const char *)t, n, index, &text, &len) == -1 ||
        numeric_date(text, len, out) == -1)
        return JWT_MALFORMED;
    return JWT_OK;
}

static enum jwt_result sub_claim(json_t *p, struct jwt_claims *c)
{
    json_t *v = json_object_get(p, "sub");
    if (!v)
        return JWT_OK;
    c->has_sub = 1;
    if (!json_is_string(v) || json_string_length(v) >= sizeof(c->sub))
        return JWT_MALFORMED;
    c->sub_len = json_string_length(v);
    memcpy(c->sub, json_string_value(v), c->sub_len);
    c->sub[c->sub_len] = '\0';
    return JWT_OK;
}

static enum jwt_result channels_claim(json_t *p, struct jwt_claims *c)
{
    json_t *a = json_object_get(p, "channels"), *v;
    size_t i, used = 0;
    if (!a)
        return JWT_OK;
    c->has_channels = 1;
    if (!json_is_array(a) || json_array_size(a) > JWT_CHANNELS_MAX)
        return JWT_MALFORMED;
    json_array_foreach(a, i, v)
    {
        size_t len = json_string_length(v);
        if (!json_is_string(v) || len > sizeof(c->channel_buf) - used)
            return JWT_MALFORMED;
        memcpy(c->channel_buf + used, json_string_value(v), len);
        c->channel_off[c->channel_count] = (uint16_t)used;
        c->channel_len[c->channel_count] = (uint16_t)len;
        c->channel_count++;
        used += len;
    }
    return JWT_OK;
}

/* Fills *c from the payload text; JWT_OK or JWT_MALFORMED. */
static enum jwt_result read_claims(const unsigned char *text, size_t n, struct jwt_claims *c)
{
    json_t *p = json_read_object(text, n, JWT_JSON_DEPTH, NULL);
    if (!p)
        return JWT_MALFORMED;
    enum jwt_result r = date_claim(p, text, n, "exp", &c->exp, &c->has_exp);
    if (r == JWT_OK)
        r = date_claim(p, text, n, "nbf", &c->nbf, &c->has_nbf);
    if (r == JWT_OK)
        r = sub_claim(p, c);
    if (r == JWT_OK)
        r = channels_claim(p, c);
    json_decref(p);
    return r;
}

/* ---- API ---- */

/* Checks the signature s (sn characters) of the first signed_len bytes of
 * token: JWT_OK or JWT_BAD_SIGNATURE. */
static enum jwt_result check_signature(const char *token, size_t signed_len, const char *s, size_t sn,
                                       const char *secret, size_t secret_len)
{
    unsigned char sig[B64URL_DECODED_MAX(SIG_B64_LEN)], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (sn != SIG_B64_LEN || secret_len == 0 || secret_len > INT_MAX)
        return JWT_BAD_SIGNATURE;
    b64url_decode(s, sn, sig);
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)token, signed_len, mac,
              &mac_len) ||
        mac_len != SIG_LEN)
        return JWT_BAD_SIGNATURE;
    int differ = CRYPTO_memcmp(mac, sig, SIG_LEN);
    OPENSSL_cleanse(mac, sizeof(mac)); /* the right signature for this header.payload */
    return differ ? JWT_BAD_SIGNATURE : JWT_OK;
}

enum jwt_result jwt_verify(const char *token, size_t len, const char *secret, size_t secret_len, int64_t now,
                           int64_t leeway, struct jwt_claims *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > JWT_TOKEN_MAX)
        return JWT_MALFORMED;
    const char *end = token + len;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return JWT_MALFORMED;
    const char *h = token, *p = d1 + 1, *s = d2 + 1;
    size_t hn = (size_t)(d1 - h), pn = (size_t)(d2 - p), sn = (size_t)(end - s);

    unsigned char text[JSON_MAX];
    long tn = b64url_decode(h, hn, text);
    if (tn < 0 || b64url_decode(p, pn, NULL) < 0 || b64url_decode(s, sn, NULL) < 0)
        return JWT_MALFORMED;
    enum jwt_result r = check_header(text, (size_t)tn);
    if (r != JWT_OK)
        return r;
    /* Nothing in the payload is read before the signature holds. */
    r = check_signature(token, (size_t)(d2 - token), s, sn, secret, secret_len);
    if (r != JWT_OK)
        return r;
    tn = b64url_decode(p, pn, text);
    if (read_claims(text, (size_t)tn, out) != JWT_OK) {
        memset(out, 0, sizeof(*out));
        return JWT_MALFORMED;
    }
    if (leeway < 0)
        leeway = 0;
    /* exp + leeway and now + leeway saturate instead of overflowing. */
    if (out->has_exp && out->exp <= INT64_MAX - leeway && now >= out->exp + leeway)
        return JWT_EXPIRED;
    if (out->has_nbf && now <= INT64_MAX - leeway && now + leeway < out->nbf)
        return JWT_NOT_YET_VALID;
    return JWT_OK;
}
int jwt_channel_allowed(const struct jwt_claims *c, const char *channel, size_t n)
{
    if (!c->has_channels)
        return 1;
    for (int i = 0; i < c->channel_count; i++) {
        const char *e = c->channel_buf + c->channel_off[i];
        size_t el = c->channel_len[i];
        /* (length checks first: channel may be NULL when n is 0) */
        if (el > 0 && e[el - 1] == '*') {
            if (el == 1 || (n >= el - 1 && memcmp(channel, e, el - 1) == 0))
                return 1;
        } else if (el == n && (n == 0 || memcmp(channel, e, n) == 0)) {
            return 1;
        }
    }
    return 0;
}

const char *jwt_result_name(enum jwt_result r)
{
    switch (r) {
    case JWT_OK: return "ok";
    case JWT_MALFORMED: return "malformed";
    case JWT_BAD_ALG: return "bad alg";
    case JWT_BAD_SIGNATURE: return "bad signature";
    case JWT_EXPIRED: return "expired";
    case JWT_NOT_YET_VALID: return "not yet valid";
    case JWT_CHANNEL_DENIED: return "channel denied";
    }
    return "unknown";
}
