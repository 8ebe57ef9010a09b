/* cidr.c: address range lists and matching. */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *entry, size_t len, const char *why)
{
    snprintf(err, errlen, "'%.*s': %s", (int)(len > 64 ? 64 : len), entry, why);
    return -1;
}

/* 1 when every bit of a past the first `bits` is zero. */
static int host_bits_clear(const uint8_t *a, int bytes, int bits)
{
    for (int i = 0; i < bytes; i++) {
        int keep = bits - i * 8;
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        if (a[i] & (uint8_t)~mask)
            return 0;
    }
    return 1;
}

static int parse_one(const char *s, size_t len, struct cidr *c, char *err, size_t errlen)
{
    char buf[64];
    if (len >= sizeof buf)
        return fail(err, errlen, s, len, "too long for an address range");
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    int bits = -1;
    if (slash) {
        *slash = '\0';
        const char *b = slash + 1;
        size_t bl = strlen(b);
        if (bl == 0 || bl > 3 || (bl > 1 && b[0] == '0'))
            return fail(err, errlen, s, len, "prefix length is not a number");
        bits = 0;
        for (size_t i = 0; i < bl; i++) {
            if (b[i] < '0' || b[i] > '9')
                return fail(err, errlen, s, len, "prefix length is not a number");
            bits = bits * 10 + (b[i] - '0');
        }
    }
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr) == 1)
        c->family = 4;
    else if (inet_pton(AF_INET6, buf, c->addr) == 1)
        c->family = 6;
    else
        return fail(err, errlen, s, len, "not an IPv4 or IPv6 address");
    int maxbits = c->family == 4 ? 32 : 128;
    if (bits > maxbits)
        return fail(err, errlen, s, len, c->family == 4 ? "prefix longer than 32" : "prefix longer than 128");
    c->bits = (uint8_t)(bits < 0 ? maxbits : bits);
    if (!host_bits_clear(c->addr, c->family == 4 ? 4 : 16, c->bits))
        return fail(err, errlen, s, len, "address has bits set past the prefix length");
    return 0;
}

int cidr_list_parse(const char *text, struct cidr_list *out, char *err, size_t errlen)
{
    out->n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p)
            return 0;
        size_t len = strcspn(p, " ,\t");
        if (out->n == CIDR_LIST_MAX) {
            snprintf(err, errlen, "more than %d address ranges", CIDR_LIST_MAX);
            return -1;
        }
        if (parse_one(p, len, &out->e[out->n], err, errlen) == -1)
            return -1;
        out->n++;
        p += len;
    }
}

static int in_range(const struct cidr *c, const uint8_t *a)
{
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (a[full] & mask);
}

int cidr_list_match(const struct cidr_list *l, int family, const uint8_t *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *v4 = family == 4 ? addr : NULL;
    if (family == 6 && memcmp(addr, mapped, sizeof mapped) == 0)
        v4 = addr + 12;
    for (uint32_t i = 0; i < l->n; i++) {
        const struct cidr *c = &l->e[i];
        if (c->family == 4 && v4 && in_range(c, v4))
            return 1;
        if (c->family == 6 && family == 6 && in_range(c, addr))
            return 1;
    }
    return 0;
}
