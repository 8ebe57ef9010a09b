/* jwt.c: HS256 JWT verification, pure (contract in jwt.h). */
#include "jwt.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include "utf8.h"

/* Base64url turns 4 characters into at most 3 bytes, so a decoded header
 * or payload of a token within JWT_TOKEN_MAX always fits. */
#define JSON_MAX    (JWT_TOKEN_MAX / 4 * 3)
#define SIG_LEN     32 /* HMAC-SHA256 */
#define SIG_B64_LEN 43 /* its unpadded base64url */

/* ---- base64url (RFC 4648 section 5, no padding) ---- */

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

/* Decodes n characters into dst (which must hold n / 4 * 3 + 2 bytes), or
 * only checks them when dst is NULL. Returns the decoded length, or -1 for
 * a character outside the alphabet (padding included), a length that no
 * byte count encodes to (n % 4 == 1), or non-zero unused trailing bits:
 * each byte string has exactly one accepted spelling. */
static long b64url_decode(const char *src, size_t n, unsigned char *dst)
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

/* ---- JSON (RFC 8259), only as much as a flat claims object needs ---- */

struct json {
    const unsigned char *p;
    size_t i, n;
};

static void json_ws(struct json *j)
{
    while (j->i < j->n &&
           (j->p[j->i] == ' ' || j->p[j->i] == '\t' || j->p[j->i] == '\n' || j->p[j->i] == '\r'))
        j->i++;
}

static int json_peek(const struct json *j)
{
    return j->i < j->n ? j->p[j->i] : -1;
}

static int json_hex4(struct json *j, uint32_t *out)
{
    if (j->n - j->i < 4)
        return -1;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = j->p[j->i++];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* Appends code point cp as UTF-8 to out (cap bytes) at *o; -2 when full. */
static int put_utf8(char *out, size_t cap, size_t *o, uint32_t cp)
{
    unsigned char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    if (!out)
        return 0;
    if (cap - *o < k)
        return -2;
    memcpy(out + *o, b, k);
    *o += k;
    return 0;
}

/* Reads the string starting at the opening quote. With out, decodes it
 * into out (cap bytes, no NUL added) and sets *len; without, checks it.
 * Returns 0, -1 when malformed (raw control byte, bad escape, lone
 * surrogate, U+0000, unterminated), -2 when it does not fit in cap. The
 * text was checked as UTF-8 beforehand, so raw bytes are copied as they
 * are. */
static int json_string(struct json *j, char *out, size_t cap, size_t *len)
{
    size_t o = 0;
    if (json_peek(j) != '"')
        return -1;
    j->i++;
    for (;;) {
        if (j->i >= j->n)
            return -1;
        unsigned char c = j->p[j->i++];
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        uint32_t cp = c;
        if (c == '\\') {
            if (j->i >= j->n)
                return -1;
            switch (j->p[j->i++]) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (json_hex4(j, &cp) == -1 || cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
                    return -1;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (j->n - j->i < 2 || j->p[j->i] != '\\' || j->p[j->i + 1] != 'u')
                        return -1;
                    j->i += 2;
                    if (json_hex4(j, &lo) == -1 || lo < 0xdc00 || lo > 0xdfff)
                        return -1;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            default: return -1;
            }
            if (put_utf8(out, cap, &o, cp) == -2)
                return -2;
            continue;
        }
        if (out) {
            if (o == cap)
                return -2;
            out[o] = (char)c;
        }
        o++;
    }
    if (len)
        *len = o;
    return 0;
}

/* Reads a number. With out, stores it floored to an integer and refuses
 * (-1) an exponent or a value outside int64_t; without, only checks the
 * grammar. */
static int json_number(struct json *j, int64_t *out)
{
    const unsigned char *p = j->p;
    size_t i = j->i, n = j->n;
    int neg = 0, overflow = 0, frac = 0, expo = 0;
    uint64_t mag = 0;
    if (i < n && p[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= n || p[i] < '0' || p[i] > '9')
        return -1;
    if (p[i] == '0') {
        i++; /* no leading zeros: "01" stops here and fails in the caller */
    } else {
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            unsigned d = p[i] - '0';
            if (mag > (UINT64_MAX - d) / 10)
                overflow = 1;
            else
                mag = mag * 10 + d;
        }
    }
    if (i < n && p[i] == '.') {
        i++;
        if (i >= n || p[i] < '0' || p[i] > '9')
            return -1;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
            frac |= p[i] != '0';
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        expo = 1;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || p[i] < '0' || p[i] > '9')
            return -1;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    j->i = i;
    if (!out)
        return 0;
    if (overflow || expo)
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

static int json_literal(struct json *j, const char *lit)
{
    size_t k = strlen(lit);
    if (j->n - j->i < k || memcmp(j->p + j->i, lit, k) != 0)
        return -1;
    j->i += k;
    return 0;
}

/* Skips one value whose containers would sit at nesting level `depth`
 * (the top object is level 1). Recursion is bounded by JWT_JSON_DEPTH. */
static int json_skip(struct json *j, int depth)
{
    int c = json_peek(j);
    if (c == '"')
        return json_string(j, NULL, 0, NULL) == 0 ? 0 : -1;
    if (c == 't')
        return json_literal(j, "true");
    if (c == 'f')
        return json_literal(j, "false");
    if (c == 'n')
        return json_literal(j, "null");
    if (c == '-' || (c >= '0' && c <= '9'))
        return json_number(j, NULL);
    if (c != '{' && c != '[')
        return -1;
    if (depth > JWT_JSON_DEPTH)
        return -1;
    int close = c == '{' ? '}' : ']';
    j->i++;
    json_ws(j);
    if (json_peek(j) == close) {
        j->i++;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (json_string(j, NULL, 0, NULL) != 0)
                return -1;
            json_ws(j);
            if (json_peek(j) != ':')
                return -1;
            j->i++;
            json_ws(j);
        }
        if (json_skip(j, depth + 1) == -1)
            return -1;
        json_ws(j);
        c = json_peek(j);
        j->i++;
        if (c == close)
            return 0;
        if (c != ',')
            return -1;
        json_ws(j);
    }
}

/* Called with a member's decoded name and j at its value (after
 * whitespace); must consume the value. Returns JWT_OK to go on. */
typedef enum jwt_result (*member_fn)(void *ctx, const char *name, size_t n, struct json *j);

static int name_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(name, want, n) == 0;
}

/* Walks the top-level object filling all of text (UTF-8 checked here),
 * calling fn for each member. Repeated names and anything but whitespace
 * after the object are malformed. */
static enum jwt_result json_object(const unsigned char *text, size_t n, member_fn fn, void *ctx)
{
    /* Decoded names seen so far, each as 2 length bytes then the bytes. A
     * member takes at least its decoded name plus 4 characters ("":0), so
     * the names of any object in n <= JSON_MAX bytes fit. */
    char seen[JSON_MAX];
    size_t used = 0;
    struct json j = {text, 0, n};
    if (!utf8_valid(text, n))
        return JWT_MALFORMED;
    json_ws(&j);
    if (json_peek(&j) != '{')
        return JWT_MALFORMED;
    j.i++;
    json_ws(&j);
    if (json_peek(&j) == '}') {
        j.i++;
    } else {
        for (;;) {
            size_t nl;
            if (sizeof(seen) - used < 2)
                return JWT_MALFORMED;
            char *name = seen + used + 2;
            if (json_string(&j, name, sizeof(seen) - used - 2, &nl) != 0)
                return JWT_MALFORMED;
            for (size_t k = 0; k < used;
                 k += 2 + ((size_t)(unsigned char)seen[k] << 8 | (unsigned char)seen[k + 1])) {
                size_t kl = (size_t)(unsigned char)seen[k] << 8 | (unsigned char)seen[k + 1];
                if (kl == nl && memcmp(seen + k + 2, name, nl) == 0)
                    return JWT_MALFORMED;
            }
            seen[used] = (char)(nl >> 8);
            seen[used + 1] = (char)(nl & 0xff);
            used += 2 + nl;
            json_ws(&j);
            if (json_peek(&j) != ':')
                return JWT_MALFORMED;
            j.i++;
            json_ws(&j);
            enum jwt_result r = fn(ctx, name, nl, &j);
            if (r != JWT_OK)
                return r;
            json_ws(&j);
            int c = json_peek(&j);
            j.i++;
            if (c == '}')
                break;
            if (c != ',')
                return JWT_MALFORMED;
            json_ws(&j);
        }
    }
    json_ws(&j);
    return j.i == n ? JWT_OK : JWT_MALFORMED;
}

/* ---- header and payload ---- */

struct header {
    int alg_seen;
    int alg_hs256;
};

static enum jwt_result header_member(void *ctx, const char *name, size_t n, struct json *j)
{
    struct header *h = ctx;
    if (name_is(name, n, "crit"))
        return JWT_MALFORMED;
    if (name_is(name, n, "alg")) {
        h->alg_seen = 1;
        if (json_peek(j) == '"') {
            char alg[8];
            size_t al, start = j->i;
            int r = json_string(j, alg, sizeof(alg), &al);
            if (r == -2) { /* longer than any name we accept: step over it */
                j->i = start;
                r = json_string(j, NULL, 0, NULL);
                al = 0;
            }
            if (r != 0)
                return JWT_MALFORMED;
            h->alg_hs256 = name_is(alg, al, "HS256");
            return JWT_OK;
        }
    }
    return json_skip(j, 2) == 0 ? JWT_OK : JWT_MALFORMED;
}

static enum jwt_result channels_member(struct jwt_claims *c, struct json *j)
{
    size_t used = 0;
    c->has_channels = 1;
    if (json_peek(j) != '[')
        return JWT_MALFORMED;
    j->i++;
    json_ws(j);
    if (json_peek(j) == ']') {
        j->i++;
        return JWT_OK;
    }
    for (;;) {
        size_t len;
        if (c->channel_count == JWT_CHANNELS_MAX ||
            json_string(j, c->channel_buf + used, sizeof(c->channel_buf) - used, &len) != 0)
            return JWT_MALFORMED;
        c->channel_off[c->channel_count] = (uint16_t)used;
        c->channel_len[c->channel_count] = (uint16_t)len;
        c->channel_count++;
        used += len;
        json_ws(j);
        int ch = json_peek(j);
        j->i++;
        if (ch == ']')
            return JWT_OK;
        if (ch != ',')
            return JWT_MALFORMED;
        json_ws(j);
    }
}

static enum jwt_result payload_member(void *ctx, const char *name, size_t n, struct json *j)
{
    struct jwt_claims *c = ctx;
    if (name_is(name, n, "exp")) {
        c->has_exp = 1;
        return json_number(j, &c->exp) == 0 ? JWT_OK : JWT_MALFORMED;
    }
    if (name_is(name, n, "nbf")) {
        c->has_nbf = 1;
        return json_number(j, &c->nbf) == 0 ? JWT_OK : JWT_MALFORMED;
    }
    if (name_is(name, n, "sub")) {
        c->has_sub = 1;
        if (json_string(j, c->sub, sizeof(c->sub) - 1, &c->sub_len) != 0)
            return JWT_MALFORMED;
        c->sub[c->sub_len] = '\0';
        return JWT_OK;
    }
    if (name_is(name, n, "channels"))
        return channels_member(c, j);
    return json_skip(j, 2) == 0 ? JWT_OK : JWT_MALFORMED;
}

/* ---- API ---- */

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
    struct header hdr = {0, 0};
    enum jwt_result r = json_object(text, (size_t)tn, header_member, &hdr);
    if (r != JWT_OK)
        return r;
    if (!hdr.alg_hs256)
        return JWT_BAD_ALG;

    /* Nothing in the payload is read before the signature holds. */
    unsigned char sig[SIG_LEN + 2], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (sn != SIG_B64_LEN || secret_len == 0 || secret_len > INT_MAX)
        return JWT_BAD_SIGNATURE;
    b64url_decode(s, sn, sig);
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)token, (size_t)(d2 - token), mac,
              &mac_len) ||
        mac_len != SIG_LEN)
        return JWT_BAD_SIGNATURE;
    int differ = CRYPTO_memcmp(mac, sig, SIG_LEN);
    OPENSSL_cleanse(mac, sizeof(mac)); /* the right signature for this header.payload */
    if (differ)
        return JWT_BAD_SIGNATURE;

    tn = b64url_decode(p, pn, text);
    r = json_object(text, (size_t)tn, payload_member, out);
    if (r != JWT_OK) {
        memset(out, 0, sizeof(*out));
        return r;
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
