/* resume.c: parsing resume positions (see resume.h). */
#include "resume.h"

#include <string.h>

#include "handshake.h"

int resume_find(const char *query, size_t len, const char **val, size_t *vlen)
{
    int found = 0;
    size_t pos = 0;
    while (pos <= len) {
        const char *amp = memchr(query + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - query) : len;
        if (end - pos >= 7 && !memcmp(query + pos, "resume=", 7)) {
            if (found)
                return -1;
            found = 1;
            *val = query + pos + 7;
            *vlen = end - pos - 7;
        }
        pos = end + 1;
    }
    return found;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %XX-decodes src into dst; returns the length, or -1 on a bad escape. */
static long decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(src[i + 1]) : -1, lo = i + 2 < len ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi << 4 | lo;
            i += 2;
        }
        if (o >= cap)
            return -1;
        dst[o++] = (char)c;
    }
    return (long)o;
}

/* Parses [s, s + n) as 1-16 hex digits into *v (not 0). */
static int parse_epoch(const char *s, size_t n, uint64_t *v)
{
    if (n == 0 || n > 16)
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hexval(s[i]);
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint64_t)d;
    }
    return *v ? 0 : -1;
}

/* Parses [s, s + n) as 1-19 decimal digits below 2^63 into *v. */
static int parse_offset(const char *s, size_t n, uint64_t *v)
{
    if (n == 0 || n > 19)
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (uint64_t)(s[i] - '0');
    }
    return *v < (1ULL << 63) ? 0 : -1;
}

static const char *item(const char *buf, size_t start, size_t end, struct resume_pos *p)
{
    const char *s = buf + start;
    size_t n = end - start;
    if (n == 0)
        return "resume: empty item (want NAME:EPOCH:OFFSET,...)";
    const char *c2 = NULL, *c1 = NULL;
    for (size_t i = n; i-- > 0 && !c1;)
        if (s[i] == ':') {
            if (!c2)
                c2 = s + i;
            else
                c1 = s + i;
        }
    if (!c1)
        return "resume: an item is not NAME:EPOCH:OFFSET";
    size_t nl = (size_t)(c1 - s);
    if (!hs_channel_name_valid(s, nl))
        return "resume: invalid channel name (1-128 bytes of A-Z a-z 0-9 _ . : -)";
    if (parse_epoch(c1 + 1, (size_t)(c2 - c1 - 1), &p->epoch) == -1)
        return "resume: the epoch must be 1-16 hex digits, not 0 (as the server sent it)";
    if (parse_offset(c2 + 1, (size_t)(s + n - c2 - 1), &p->offset) == -1)
        return "resume: the offset must be a decimal number below 2^63";
    p->name_off = (uint16_t)start;
    p->name_len = (uint8_t)nl;
    return NULL;
}

int resume_parse(const char *val, size_t len, char *buf, size_t bufcap, struct resume_pos *out, int max,
                 const char **why)
{
    long dl = len > 0xffff ? -1 : decode(val, len, buf, bufcap);
    if (dl < 0) {
        *why = len > 0xffff ? "resume: too long" : "resume: bad %-escape";
        return -1;
    }
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= (size_t)dl; i++) {
        if (i < (size_t)dl && buf[i] != ',')
            continue;
        if (n == max) {
            *why = "resume: more positions than channels allowed (max_channels_per_conn)";
            return -1;
        }
        if ((*why = item(buf, start, i, &out[n])))
            return -1;
        for (int k = 0; k < n; k++)
            if (out[k].name_len == out[n].name_len &&
                !memcmp(buf + out[k].name_off, buf + out[n].name_off, out[n].name_len)) {
                *why = "resume: a channel is named twice";
                return -1;
            }
        n++;
        start = i + 1;
    }
    return n;
}
