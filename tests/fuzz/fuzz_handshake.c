/* fuzz_handshake.c: libFuzzer target for common/handshake.c's pure parts.
 *
 * The input is used at once as a Sec-WebSocket-Key, as a header value
 * searched for the "upgrade" and "websocket" tokens, and as the raw bytes
 * of a struct hs_request for hs_check; each result is compared with a
 * plain reference written here (OpenSSL for the accept key). */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/config.h"
#include "common/handshake.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int b64char(int c)
{
    return isalnum(c) || c == '+' || c == '/';
}

/* RFC 6455 4.2.1: 24 characters of base64 for 16 bytes; the last data
 * character carries 2 bits, so its low 4 bits are zero in canonical form. */
static int ref_key_valid(const uint8_t *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!b64char(k[i]))
            return 0;
    return strchr("AQgw", k[21]) != NULL;
}

/* Comma-separated list, optional SP/HTAB around items, case-insensitive. */
static int ref_has_token(const uint8_t *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i <= n) {
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (start < end && (v[start] == ' ' || v[start] == '\t'))
            start++;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl) {
            size_t j = 0;
            while (j < tl && tolower(v[start + j]) == tok[j])
                j++;
            if (j == tl)
                return 1;
        }
        i++;
    }
    return 0;
}

static void ref_accept(const uint8_t *key, size_t n, char *out)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE], buf[HS_KEY_LEN + sizeof(guid)];
    unsigned mdlen = 0;
    memcpy(buf, key, n);
    memcpy(buf + n, guid, sizeof(guid) - 1);
    CHECK(EVP_Digest(buf, n + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    int kv = hs_key_valid(s, size);
    CHECK(kv == 0 || kv == 1);
    CHECK(kv == ref_key_valid(data, size));

    /* NUL and the other control bytes are where a C-string shortcut would
     * differ; the reference treats them as ordinary bytes, as should the
     * (pointer, length) API. */
    CHECK(hs_header_has_token(s, size, "upgrade") == ref_has_token(data, size, "upgrade"));
    CHECK(hs_header_has_token(s, size, "websocket") == ref_has_token(data, size, "websocket"));

    /* Accept keys are computed for valid (24-byte) keys only, and the
     * implementation uses at most 24 bytes; it must be right up to that and
     * stay in bounds for any length. */
    char *out = malloc(HS_ACCEPT_LEN + 1), want[HS_ACCEPT_LEN + 4];
    hs_accept_key(s, size, out);
    CHECK(out[HS_ACCEPT_LEN] == 0);
    if (size <= HS_KEY_LEN) {
        ref_accept(data, size, want);
        CHECK(memcmp(out, want, HS_ACCEPT_LEN + 1) == 0);
    }
    free(out);

    /* hs_check over arbitrary field values: only the documented answers. */
    struct hs_request r;
    hs_request_init(&r);
    size_t n = size < sizeof(r) ? size : sizeof(r);
    memcpy(&r, data, n);
    r.key[HS_KEY_LEN] = 0;
    r.origin[HS_ORIGIN_MAX - 1] = 0;
    /* Lengths are left as fuzzed: key_len is "as received (may be wrong)"
     * and origin_len marks truncation by exceeding the buffer, so hs_check
     * must cope with any value without reading past the arrays. */
    struct config cfg;
    config_defaults(&cfg);
    if (size & 1) {
        char err[128];
        config_set(&cfg, "allowed_origins", "https://a.example,http://b.example:8080", err, sizeof(err));
    }
    int st = hs_check(&r, &cfg);
    CHECK(st == 0 || st == 400 || st == 403 || st == 405 || st == 426);
    if (st == 0) {
        CHECK(r.method_get && r.has_host && r.upgrade_websocket && r.connection_upgrade);
        CHECK(r.key_count == 1 && r.version == 13);
        CHECK(hs_key_valid(r.key, (size_t)r.key_len));
        CHECK(r.origin_len < 0 || config_origin_allowed(&cfg, r.origin, (size_t)r.origin_len));
    }

    /* Channel lists: every returned name lies inside the input, is valid,
     * and the names joined with commas give back the input. */
    {
        uint16_t off[32];
        uint8_t len[32];
        int max = size ? 1 + data[0] % 32 : 1;
        int c = hs_channel_list(s, size, max, off, len);
        CHECK(c >= -2 && c <= max && c != 0);
        if (c > 0) {
            size_t pos = 0;
            for (int i = 0; i < c; i++) {
                CHECK(off[i] == pos && (size_t)off[i] + len[i] <= size);
                CHECK(hs_channel_name_valid(s + off[i], len[i]));
                pos = (size_t)off[i] + len[i];
                CHECK(i == c - 1 ? pos == size : s[pos] == ',');
                pos++;
            }
        }
    }

    /* Error responses with an arbitrary reason stay within cap. */
    char resp[1024];
    char why[200];
    size_t wl = size < sizeof(why) - 1 ? size : sizeof(why) - 1;
    memcpy(why, data, wl);
    why[wl] = 0;
    size_t cap = size ? 64 + data[0] * 3 : sizeof(resp);
    size_t rl = hs_build_error(resp, cap, size ? 400 + data[size - 1] % 40 : 426, why);
    CHECK(rl < cap);
    return 0;
}
