/* redisurl.c: parsing redis_url (see redisurl.h). */
#include "redisurl.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

/* Copies s[0..n) into out (size REDISURL_FIELD_MAX), decoding %XX.
 * Returns 0, or -1 when too long or a % escape is malformed. */
static int decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = OPENSSL_hexchar2int((unsigned char)s[i + 1]),
                lo = OPENSSL_hexchar2int((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= REDISURL_FIELD_MAX)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Digits only, value in [lo, hi]. */
static int number(const char *s, size_t n, long lo, long hi, long *out)
{
    long v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(s, scheme, sizeof(scheme) - 1)) {
        snprintf(err, errlen, "does not start with redis:// (redis://[:PASSWORD@]HOST:PORT[/DB])");
        return -1;
    }
    const char *p = s + sizeof(scheme) - 1;
    const char *end = p + strlen(p);
    /* The password may hold '@' and '/' only %-encoded; the last '@'
     * before the path ends the credentials. */
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = NULL;
    for (const char *q = p; q < (slash ? slash : end); q++)
        if (*q == '@')
            auth_end = q;
    if (auth_end) {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (!colon) {
            snprintf(err, errlen, "credentials must be :PASSWORD@ or USER:PASSWORD@");
            return -1;
        }
        if (decode(p, (size_t)(colon - p), u->user) ||
            decode(colon + 1, (size_t)(auth_end - colon - 1), u->password)) {
            snprintf(err, errlen, "user or password is too long or has a bad %%XX escape");
            return -1;
        }
        if (!u->password[0]) {
            snprintf(err, errlen, "empty password after ':' (leave out ':@' for none)");
            return -1;
        }
        p = auth_end + 1;
    }
    const char *hp_end = slash ? slash : end;
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') { /* [IPv6]:PORT */
        const char *rb = memchr(p, ']', (size_t)(hp_end - p));
        if (!rb) {
            snprintf(err, errlen, "'[' without ']' around an IPv6 address");
            return -1;
        }
        host = p + 1;
        host_end = rb;
        if (rb + 1 < hp_end) {
            if (rb[1] != ':') {
                snprintf(err, errlen, "expected ':PORT' after ']'");
                return -1;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(hp_end - p));
        host_end = colon ? colon : hp_end;
        if (colon)
            port = colon + 1;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= REDISURL_FIELD_MAX) {
        snprintf(err, errlen, "%s host", hl ? "too long a" : "no");
        return -1;
    }
    for (size_t i = 0; i < hl; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_' || c == ':')) {
            snprintf(err, errlen, "host has a character other than letters, digits, '.', '-', '_' or ':'");
            return -1;
        }
    }
    memcpy(u->host, host, hl);
    long v;
    if (port) {
        if (number(port, (size_t)(hp_end - port), 1, 65535, &v)) {
            snprintf(err, errlen, "port must be 1-65535");
            return -1;
        }
        u->port = (uint16_t)v;
    }
    if (slash && slash + 1 < end) {
        if (number(slash + 1, (size_t)(end - slash - 1), 0, 1 << 30, &v)) {
            snprintf(err, errlen, "database after '/' must be a number 0-%d", 1 << 30);
            return -1;
        }
        u->db = (int)v;
    }
    return 0;
}
