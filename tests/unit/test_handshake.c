/* test_handshake.c: common/handshake.c against RFC 6455 section 4 and its
 * header's contract. Header values and keys are passed as exact-size heap
 * copies without a NUL, because the worker hands over http-parser's
 * (pointer, length) slices of its read buffer. */
#include <stdlib.h>
#include <string.h>
#include "common/config.h"
#include "common/handshake.h"
#include "tap.h"

static char *dup_exact(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    return c;
}

static int key_valid(const char *key, size_t n)
{
    char *c = dup_exact(key, n);
    int r = hs_key_valid(c, n);
    free(c);
    return r;
}

static int has_token(const char *value, const char *token)
{
    size_t n = strlen(value);
    char *c = dup_exact(value, n);
    int r = hs_header_has_token(c, n, token);
    free(c);
    return r;
}

static void test_accept_key(void)
{
    /* RFC 6455 section 1.3's example. (The brief given to this test's author
     * quoted "s3pPLMBiTxaQ9kOYjaSGSJC0d5k="; SHA-1 of the key plus the GUID,
     * checked with `openssl sha1 -binary | base64`, and the RFC text both say
     * the value below.) */
    static const char *vec[][2] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
        {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
    };
    for (size_t i = 0; i < 2; i++) {
        char *key = dup_exact(vec[i][0], HS_KEY_LEN);
        char *out = malloc(HS_ACCEPT_LEN + 1); /* exactly what the header promises to use */
        memset(out, 'Z', HS_ACCEPT_LEN + 1);
        hs_accept_key(key, HS_KEY_LEN, out);
        out[HS_ACCEPT_LEN] == 0 ? is_str(out, vec[i][1], "accept key for %s", vec[i][0])
                                : ok(0, "accept key for %s is NUL-terminated", vec[i][0]);
        free(key);
        free(out);
    }
}

static void test_key_valid(void)
{
    static const struct {
        const char *key;
        int want;
        const char *why;
    } keys[] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", 1, "RFC example"},
        {"AAAAAAAAAAAAAAAAAAAAAA==", 1, "all zero bytes"},
        {"/////////////////////w==", 1, "'/' and 'w' (0xff bytes)"},
        {"+++++++++++++++++++++g==", 1, "'+' characters"},
        {"dGhlIHNhbXBsZSBub25jZQ=", 0, "23 characters"},
        {"dGhlIHNhbXBsZSBub25jZQ===", 0, "25 characters"},
        {"", 0, "empty"},
        {"dGhlIHNhbXBsZSBub25jZ!==", 0, "'!' in key"},
        {"dGhlIHNhbXBsZSBub25j ZQ=", 0, "space in key"},
        {"dGhlIHNhbXBsZSBub25jZQ-_", 0, "base64url characters"},
        {"dGhlIHNhbXBsZSBub25-ZQ==", 0, "'-' in key"},
        {"dGhlIHNhbXBsZSBub25jZQ=A", 0, "padding then data"},
        {"dGhlIHNhbXBsZSBub25j=Q==", 0, "padding in the middle"},
        {"=GhlIHNhbXBsZSBub25jZQ==", 0, "padding first"},
        {"dGhlIHNhbXBsZSBub25jZQQ=", 0, "one pad: decodes to 17 bytes"},
        {"dGhlIHNhbXBsZSBub25jZSE=", 0, "17 bytes ('the sample nonce!')"},
        {"dGhlIHNhbXBsZSBub25jZWFh", 0, "no padding: 18 bytes"},
        {"dGhlIHNhbXBsZSBub25j====", 0, "four pads: 15 bytes"},
        {"dGhlIHNhbXBsZSBub25jZ===", 0, "three pads"},
        {"dGhlIHNhbXBsZSBub25jZQ\r\n", 0, "CRLF in place of padding"},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        is_int(key_valid(keys[i].key, strlen(keys[i].key)), keys[i].want, "hs_key_valid: %s", keys[i].why);
    is_int(key_valid("dGhlIHNhbXBsZSBub25jZQ==", 23), 0, "valid key cut to len 23");
    is_int(key_valid("dGhlIHNhbXBsZSBub25jZQ==\0", 25), 0, "valid key plus NUL, len 25");
    is_int(key_valid("dGhlIHNhbX\0sZSBub25jZQ==", 24), 0, "NUL inside a 24-byte key");
}

static void test_has_token(void)
{
    static const struct {
        const char *value;
        int want;
    } v[] = {
        {"Upgrade", 1},
        {"upgrade", 1},
        {"UPGRADE", 1},
        {"keep-alive, Upgrade", 1},
        {"keep-alive,Upgrade", 1},
        {"Upgrade, keep-alive", 1},
        {" upgrade ", 1},
        {"\tUpgrade\t", 1},
        {",, upgrade ,,", 1},
        {"a, b, c, upgrade", 1},
        {"notupgrade", 0},
        {"upgrade2", 0},
        {"upgrad", 0},
        {"", 0},
        {"keep-alive", 0},
        {"up grade", 0},
        {"upgrade-x, keep-alive", 0},
        {"x-upgrade", 0},
        {",", 0},
        {"   ", 0},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        is_int(has_token(v[i].value, "upgrade"), v[i].want, "has_token('%s', upgrade)", v[i].value);
    is_int(has_token("websocket", "websocket"), 1, "has_token('websocket', websocket)");
    is_int(has_token("WebSocket", "websocket"), 1, "has_token('WebSocket', websocket)");
    is_int(has_token("websockets", "websocket"), 0, "has_token('websockets', websocket)");

    /* The length bounds the value: "Upgrade" cut to 6 bytes is "Upgrad". */
    char *c = dup_exact("Upgrade", 7);
    is_int(hs_header_has_token(c, 6, "upgrade"), 0, "has_token honours len (6 of 'Upgrade')");
    free(c);
    c = dup_exact("keep-alive, Upgrade, x", 22);
    is_int(hs_header_has_token(c, 19, "upgrade"), 1, "has_token with len ending at a token");
    free(c);
}

static int chan_valid(const char *name, size_t n)
{
    char *c = dup_exact(name, n);
    int r = hs_channel_name_valid(c, n);
    free(c);
    return r;
}

/* Splits list (exact heap copy) and renders the result as "a|b|c" or the
 * error code, so one string comparison checks count, offsets and lengths. */
static const char *chan_list(const char *list, int max)
{
    static char out[8192];
    uint16_t off[64];
    uint8_t len[64];
    size_t n = strlen(list);
    char *c = dup_exact(list, n);
    int r = hs_channel_list(c, n, max, off, len);
    if (r < 0) {
        snprintf(out, sizeof(out), "%d", r);
    } else {
        size_t o = 0;
        out[0] = 0;
        for (int i = 0; i < r && o < sizeof(out); i++) {
            if (off[i] + len[i] > n) {
                snprintf(out, sizeof(out), "name %d out of bounds", i);
                break;
            }
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s", i ? "|" : "", len[i], c + off[i]);
        }
    }
    free(c);
    return out;
}

static void test_channels(void)
{
    char max[HS_CHANNEL_MAX + 2];
    memset(max, 'm', sizeof(max));
    static const struct {
        const char *name;
        int want;
    } v[] = {
        {"a", 1},   {"news", 1}, {"news.sport:uk-1_X9", 1}, {"", 0},     {"a b", 0}, {"a/b", 0},
        {"a,b", 0}, {"%41", 0},  {"caf\xc3\xa9", 0},        {"a\tb", 0}, {"*", 0},   {"a?b", 0},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        is_int(chan_valid(v[i].name, strlen(v[i].name)), v[i].want, "hs_channel_name_valid('%s')", v[i].name);
    is_int(chan_valid(max, HS_CHANNEL_MAX), 1, "128-byte channel name is valid");
    is_int(chan_valid(max, HS_CHANNEL_MAX + 1), 0, "129-byte channel name is invalid");
    is_int(chan_valid("ab\0c", 4), 0, "NUL inside a name is invalid");
    is_int(chan_valid("news", 3), 1, "length bounds the name ('new')");

    is_str(chan_list("a", 16), "a", "channel list 'a'");
    is_str(chan_list("a,bb,ccc", 16), "a|bb|ccc", "channel list 'a,bb,ccc'");
    is_str(chan_list("a,b,c", 3), "a|b|c", "exactly max names");
    is_str(chan_list("a,b,c", 2), "-2", "more than max -> -2");
    is_str(chan_list("", 16), "-1", "empty list -> -1");
    is_str(chan_list("a,,b", 16), "-1", "empty name in the middle -> -1");
    is_str(chan_list("a,", 16), "-1", "trailing comma -> -1");
    is_str(chan_list(",a", 16), "-1", "leading comma -> -1");
    is_str(chan_list("a,b c", 16), "-1", "invalid name -> -1");
    char big[40 * 101 + 1], want[sizeof(big)];
    size_t o = 0;
    for (int i = 0; i < 40; i++) {
        memset(big + o, 'a' + i % 26, 100);
        o += 100;
        big[o++] = i < 39 ? ',' : 0;
    }
    memcpy(want, big, sizeof(big));
    for (char *p = want; *p; p++)
        if (*p == ',')
            *p = '|';
    is_str(chan_list(big, 64), want, "40 names of 100 bytes (offsets past 255)");
    memcpy(big, max, HS_CHANNEL_MAX);
    big[HS_CHANNEL_MAX] = 0;
    is_int((long long)strlen(chan_list(big, 1)), HS_CHANNEL_MAX, "one 128-byte name keeps its length");
}

static void valid_request(struct hs_request *r)
{
    hs_request_init(r);
    r->method_get = 1;
    r->http_major = 1;
    r->http_minor = 1;
    r->upgrade_websocket = 1;
    r->connection_upgrade = 1;
    r->has_host = 1;
    r->key_count = 1;
    strcpy(r->key, "dGhlIHNhbXBsZSBub25jZQ==");
    r->key_len = HS_KEY_LEN;
    r->version = 13;
    r->version_count = 1;
    r->origin_len = -1;
}

static void set_origin(struct hs_request *r, const char *o)
{
    strcpy(r->origin, o);
    r->origin_len = (int)strlen(o);
}

static void test_check(void)
{
    struct config cfg;
    config_defaults(&cfg);
    struct hs_request r;

    hs_request_init(&r);
    ok(r.key_count == 0 && r.version == -1 && r.origin_len == -1 && !r.method_get && !r.has_host &&
           !r.upgrade_websocket && !r.connection_upgrade,
       "hs_request_init: nothing seen (key_count %d, version %d, origin_len %d)", r.key_count, r.version,
       r.origin_len);
    ok(hs_check(&r, &cfg) != 0, "an empty request is refused (%d)", hs_check(&r, &cfg));

    valid_request(&r);
    is_int(hs_check(&r, &cfg), 0, "valid upgrade -> 0");
    set_origin(&r, "https://anything.example");
    is_int(hs_check(&r, &cfg), 0, "any Origin with the default (empty) allowed_origins -> 0");
    r.http_minor = 2;
    is_int(hs_check(&r, &cfg), 0, "HTTP/1.2 -> 0");
    r.http_major = 2, r.http_minor = 0;
    is_int(hs_check(&r, &cfg), 0, "HTTP/2.0 is not below 1.1 -> 0");

#define EXPECT(setup, want, what)                                                                            \
    do {                                                                                                     \
        valid_request(&r);                                                                                   \
        setup;                                                                                               \
        is_int(hs_check(&r, &cfg), want, "%s -> %d", what, want);                                            \
    } while (0)
    EXPECT(r.method_get = 0, 405, "method not GET");
    EXPECT((r.http_major = 1, r.http_minor = 0), 400, "HTTP/1.0");
    EXPECT((r.http_major = 0, r.http_minor = 9), 400, "HTTP/0.9");
    EXPECT(r.has_host = 0, 400, "no Host");
    EXPECT(r.upgrade_websocket = 0, 400, "no Upgrade: websocket");
    EXPECT(r.connection_upgrade = 0, 400, "no Connection: upgrade");
    EXPECT((r.key_count = 0, r.key[0] = 0, r.key_len = 0), 400, "no key");
    EXPECT(r.key_count = 2, 400, "two keys");
    EXPECT((strcpy(r.key, "abc"), r.key_len = 3), 400, "3-character key");
    EXPECT((strcpy(r.key, "dGhlIHNhbXBsZSBub25jZ!=="), r.key_len = 24), 400, "bad-character key");
    EXPECT((strcpy(r.key, "dGhlIHNhbXBsZSBub25jZQ=="), r.key_len = 30), 400,
           "key longer than 24 as received (kept 24)");
    EXPECT(r.version = 8, 426, "version 8");
    EXPECT(r.version = 14, 426, "version 14");
    /* The header: a missing Sec-WebSocket-Version is a bad request (400);
     * one that is present but not exactly one "13" gets 426, which tells
     * the client the version we speak. */
    EXPECT((r.version = -1, r.version_count = 0), 400, "no version header");
    EXPECT((r.version = 13, r.version_count = 2), 426, "version 13 sent twice");
    EXPECT((r.version = -1, r.version_count = 1), 426, "version not a number");

    /* Origin policy. */
    char err[256];
    int set = config_set(&cfg, "allowed_origins", "https://a.example,https://b.example", err, sizeof(err));
    if (!ok(set == 0, "config_set allowed_origins"))
        diag("%s", err);
    EXPECT(set_origin(&r, "https://c.example"), 403, "Origin not in the list");
    EXPECT(set_origin(&r, "https://a.example.evil"), 403, "Origin extending a listed one");
    EXPECT(set_origin(&r, "https://a.exampl"), 403, "Origin prefix of a listed one");
    EXPECT(set_origin(&r, ""), 403, "empty Origin header with a list");
    EXPECT(set_origin(&r, "https://a.example"), 0, "first listed Origin");
    EXPECT(set_origin(&r, "https://b.example"), 0, "second listed Origin");
    EXPECT((void)0, 0, "no Origin with a list (non-browser client)");
    EXPECT((memcpy(r.origin, "https://a.example", 18), r.origin_len = HS_ORIGIN_MAX + 10), 403,
           "Origin truncated because too long");
    config_defaults(&cfg);
    EXPECT((memset(r.origin, 'o', HS_ORIGIN_MAX - 1), r.origin[HS_ORIGIN_MAX - 1] = 0,
            r.origin_len = HS_ORIGIN_MAX - 1),
           0, "Origin of HS_ORIGIN_MAX - 1 bytes, no list");
    EXPECT((memset(r.origin, 'o', HS_ORIGIN_MAX - 1), r.origin[HS_ORIGIN_MAX - 1] = 0,
            r.origin_len = HS_ORIGIN_MAX),
           403, "Origin longer than HS_ORIGIN_MAX - 1, no list");
#undef EXPECT
}

static const char *find(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

static void test_build(void)
{
    enum { CAP = 512 };
    char *out = malloc(CAP);
    memset(out, 0, CAP);
    char *key = dup_exact("dGhlIHNhbXBsZSBub25jZQ==", HS_KEY_LEN);
    size_t n = hs_build_accept(out, CAP, key, HS_KEY_LEN);
    free(key);
    ok(n > 0 && n <= 160, "hs_build_accept fits in 160 bytes (%zu)", n);
    ok(n >= 12 && memcmp(out, "HTTP/1.1 101 ", 13) == 0, "starts with 'HTTP/1.1 101 '");
    ok(find(out, n, "\r\nUpgrade: websocket\r\n") != NULL, "has Upgrade: websocket");
    ok(find(out, n, "\r\nConnection: Upgrade\r\n") != NULL, "has Connection: Upgrade");
    ok(find(out, n, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL,
       "has the accept key");
    ok(n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0, "ends with CRLFCRLF");
    ok(find(out, n, "\r\n\r\n") == out + n - 4, "exactly one blank line (no body)");
    key = dup_exact("dGhlIHNhbXBsZSBub25jZQ==", HS_KEY_LEN);
    n = hs_build_accept_proto(out, CAP, key, HS_KEY_LEN, HS_PROTOCOL_V1);
    free(key);
    ok(n <= 200 && find(out, n, "\r\nSec-WebSocket-Protocol: wsmill.v1\r\n\r\n") == out + n - 39,
       "with a protocol: its header last, then the blank line (%zu bytes)", n);

    memset(out, 0, CAP);
    n = hs_build_error(out, CAP, 426, "unsupported version");
    ok(n > 0 && n < CAP, "hs_build_error 426 length %zu", n);
    ok(n >= 13 && memcmp(out, "HTTP/1.1 426 ", 13) == 0, "426 status line");
    ok(find(out, n, "\r\nSec-WebSocket-Version: 13\r\n") != NULL, "426 has Sec-WebSocket-Version: 13");
    ok(find(out, n, "\r\nConnection: close\r\n") != NULL, "426 has Connection: close");
    const char *blank = find(out, n, "\r\n\r\n");
    ok(blank && find(blank, n - (size_t)(blank - out), "unsupported version") != NULL, "426 body says why");
    const char *cl = find(out, n, "\r\nContent-Length:");
    if (cl && blank) {
        long want = (long)(n - (size_t)(blank + 4 - out));
        is_int(strtol(cl + 17, NULL, 10), want, "Content-Length matches the body");
    } else {
        ok(cl == NULL && blank != NULL, "no Content-Length: body delimited by close");
    }

    memset(out, 0, CAP);
    n = hs_build_error(out, CAP, 403, "origin not allowed");
    ok(n >= 13 && memcmp(out, "HTTP/1.1 403 ", 13) == 0, "403 status line");
    ok(find(out, n, "Sec-WebSocket-Version") == NULL, "403 has no Sec-WebSocket-Version");
    ok(find(out, n, "\r\nConnection: close\r\n") != NULL, "403 has Connection: close");

    static const struct {
        int status;
        const char *text;
    } st[] = {{101, "Switching Protocols"},
              {400, "Bad Request"},
              {403, "Forbidden"},
              {404, "Not Found"},
              {405, "Method Not Allowed"},
              {426, "Upgrade Required"},
              {431, "Request Header Fields Too Large"},
              {503, "Service Unavailable"}};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
        is_str(hs_status_text(st[i].status), st[i].text, "hs_status_text(%d)", st[i].status);
    free(out);
}

int main(void)
{
    test_accept_key();
    test_key_valid();
    test_has_token();
    test_check();
    test_build();
    test_channels();
    return done_testing();
}
