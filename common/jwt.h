/* jwt.h: HS256 JSON Web Tokens (RFC 7519, JWS compact form of RFC 7515)
 * verified for authenticating a connection. No I/O. The token is decoded
 * into stack buffers and read with jansson (common/json.h), which
 * allocates the parse tree and frees it before jwt_verify returns (an
 * allocation failure reads as JWT_MALFORMED); libcrypto's HMAC may
 * allocate internally. The claims the server needs are copied into struct
 * jwt_claims, so nothing points into the caller's buffer.
 *
 * Accepted: exactly header.payload.signature in unpadded base64url
 * (common/b64url.h: canonical, unused trailing bits zero), at most
 * JWT_TOKEN_MAX bytes. Header and payload must each be one JSON object as
 * json_read_object accepts it: valid UTF-8, no name repeated within any
 * object, no \u0000 or lone surrogate in any string, no integer outside
 * int64_t or real outside double anywhere, nesting up to JWT_JSON_DEPTH
 * levels (counting the top object), nothing after the object but
 * whitespace. The header's "alg" must be the string "HS256" ("typ" and
 * other members are ignored; "crit" is refused, since no extension is
 * implemented). The signature is checked before anything in the payload
 * is read. Payload members used: "exp", "nbf" (numbers: an integer with an
 * optional fraction, floored exactly; exponent forms refused), "sub"
 * (string), "channels" (array of strings). Strings may use every JSON
 * escape: \uXXXX becomes UTF-8 and surrogate pairs are joined. */
#ifndef WSMILL_JWT_H
#define WSMILL_JWT_H
#include <stddef.h>
#include <stdint.h>

#define JWT_TOKEN_MAX      4096 /* longest token accepted, in bytes */
#define JWT_JSON_DEPTH     16   /* deepest nesting of arrays/objects, counting the top object */
#define JWT_SUB_MAX        128  /* sub buffer, with its NUL: a longer "sub" is malformed */
#define JWT_CHANNELS_MAX   32   /* entries in "channels": more is malformed */
#define JWT_CHANNELS_BYTES 1024 /* their decoded bytes together: more is malformed */

enum jwt_result {
    JWT_OK = 0,
    JWT_MALFORMED,      /* not a token of the form above, or over a limit */
    JWT_BAD_ALG,        /* header "alg" missing or not "HS256" (e.g. "none", "HS512") */
    JWT_BAD_SIGNATURE,  /* signature not 32 bytes, or not HMAC-SHA256 of header.payload */
    JWT_EXPIRED,        /* now >= exp + leeway */
    JWT_NOT_YET_VALID,  /* now + leeway < nbf */
    JWT_CHANNEL_DENIED, /* never returned by jwt_verify: for callers of jwt_channel_allowed */
};

struct jwt_claims {
    int64_t exp;
    int has_exp;
    int64_t nbf;
    int has_nbf;
    int has_sub;
    size_t sub_len;
    char sub[JWT_SUB_MAX]; /* NUL-terminated; contains no NUL */
    int has_channels;      /* "channels" claim present (an empty array allows nothing) */
    int channel_count;
    uint16_t channel_off[JWT_CHANNELS_MAX]; /* entry i is channel_buf[off[i]], len[i] bytes */
    uint16_t channel_len[JWT_CHANNELS_MAX];
    char channel_buf[JWT_CHANNELS_BYTES];
};

/* Verifies token (len bytes, need not be NUL-terminated) as HS256-signed
 * with secret (secret_len bytes; an empty secret verifies nothing) and
 * checks exp/nbf against now (unix seconds), each allowed leeway seconds
 * (a negative leeway counts as 0). Fills *out when the result is JWT_OK,
 * JWT_EXPIRED or JWT_NOT_YET_VALID (the signature was good); zeroes it
 * otherwise. exp is checked before nbf. */
enum jwt_result jwt_verify(const char *token, size_t len, const char *secret, size_t secret_len, int64_t now,
                           int64_t leeway, struct jwt_claims *out);

/* Without a "channels" claim: 1. With one: 1 if channel (n bytes) matches
 * an entry, else 0. An entry matches exactly, except that one ending in
 * '*' matches every channel starting with the bytes before the '*' ("*"
 * matches all; "room.*" matches "room.a" and "room." but not "room").
 * channel may be NULL when n is 0. */
int jwt_channel_allowed(const struct jwt_claims *c, const char *channel, size_t n);

/* A short lower-case name for r ("ok", "malformed", ...), for logs. */
const char *jwt_result_name(enum jwt_result r);

#endif
