/* pmd_offer.c: the Sec-WebSocket-Extensions grammar of RFC 6455 9.1 and the
 * permessage-deflate parameters of RFC 7692 7.1.
 *
 *   extension-list = 1#( extension-token *( ";" extension-param ) )
 *   extension-param = token [ "=" ( token | quoted-string ) ]
 *
 * Optional whitespace is allowed around the separators; empty list
 * elements are skipped (RFC 7230 7). */
#include "pmd_offer.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define VALUE_MAX 32 /* longer values are kept truncated: no pmd value is that long */

struct cursor {
    const char *p, *end;
};

enum param_bit { SNCT = 1, CNCT = 2, SMWB = 4, CMWB = 8 };

/* One offer while it is read. */
struct offer {
    int pmd;         /* the extension is permessage-deflate */
    int refused;     /* a parameter broke RFC 7692's rules */
    unsigned seen;   /* enum param_bit */
    int server_bits; /* 0 = absent */
    int client_bits; /* 0 = absent, -1 = present without a value */
};

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void skip_ows(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int at(const struct cursor *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

/* A token at the cursor: its length (0 when there is none). */
static size_t take_token(struct cursor *c, const char **s)
{
    *s = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - *s);
}

/* A token or quoted-string, unescaped into buf (VALUE_MAX + 1 bytes; a
 * longer value is cut there and *n says its real length). Returns 0, or -1
 * when malformed (nothing, or an unterminated quote). */
static int take_value(struct cursor *c, char *buf, size_t *n)
{
    *n = 0;
    if (!at(c, '"')) {
        const char *s;
        size_t l = take_token(c, &s);
        if (!l)
            return -1;
        memcpy(buf, s, l < VALUE_MAX ? l : VALUE_MAX);
        *n = l;
        buf[l < VALUE_MAX ? l : VALUE_MAX] = '\0';
        return 0;
    }
    c->p++;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' && ++c->p == c->end)
            return -1;
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20 && ch != '\t')
            return -1;
        if (*n < VALUE_MAX)
            buf[*n] = (char)ch;
        ++*n;
    }
    if (c->p == c->end)
        return -1;
    c->p++;
    buf[*n < VALUE_MAX ? *n : VALUE_MAX] = '\0';
    return 0;
}

/* 8-15 written in decimal without a leading zero, else 0. */
static int window_bits(const char *v, size_t n)
{
    if (n == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return 0;
}

static const struct {
    const char *name;
    enum param_bit bit;
} params[] = {
    {"server_no_context_takeover", SNCT},
    {"client_no_context_takeover", CNCT},
    {"server_max_window_bits", SMWB},
    {"client_max_window_bits", CMWB},
};

/* Applies one parameter to a permessage-deflate offer. has_value: 1 with v
 * (n bytes, possibly more than were kept), 0 without. */
static void offer_param(struct offer *o, const char *name, size_t nl, int has_value, const char *v, size_t n)
{
    enum param_bit bit = 0;
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
        if (strlen(params[i].name) == nl && !strncasecmp(params[i].name, name, nl))
            bit = params[i].bit;
    if (!bit || (o->seen & bit)) {
        o->refused = 1; /* unknown or repeated */
        return;
    }
    o->seen |= bit;
    int bits = has_value ? window_bits(v, n) : 0;
    switch (bit) {
    case SNCT:
    case CNCT:
        if (has_value)
            o->refused = 1;
        break;
    case SMWB:
        if (!bits)
            o->refused = 1;
        o->server_bits = bits;
        break;
    case CMWB:
        if (has_value && !bits)
            o->refused = 1;
        o->client_bits = has_value ? bits : -1;
        break;
    }
}

/* Reads "; name[=value]" pairs after an extension's name. Returns 0, or -1
 * when the grammar breaks. */
static int read_params(struct cursor *c, struct offer *o)
{
    for (;;) {
        skip_ows(c);
        if (!at(c, ';'))
            return 0;
        c->p++;
        skip_ows(c);
        const char *name;
        size_t nl = take_token(c, &name);
        if (!nl)
            return -1;
        skip_ows(c);
        char v[VALUE_MAX + 1];
        size_t vl = 0;
        int has_value = at(c, '=');
        if (has_value) {
            c->p++;
            skip_ows(c);
            if (take_value(c, v, &vl) < 0)
                return -1;
        }
        if (o->pmd)
            offer_param(o, name, nl, has_value, v, vl);
    }
}

static void settle(const struct offer *o, int client_bits_pref, struct pmd_params *out)
{
    memset(out, 0, sizeof(*out));
    out->server_bits = o->server_bits ? (uint8_t)o->server_bits : PMD_MAX_BITS;
    out->server_bits_set = o->server_bits != 0;
    out->client_no_context_takeover = (o->seen & CNCT) != 0;
    out->client_bits = PMD_MAX_BITS;
    if (o->client_bits) {
        /* The client lets us pick its window: the configured one, or its
         * own bound when that is smaller. */
        int b = client_bits_pref;
        if (o->client_bits > 0 && o->client_bits < b)
            b = o->client_bits;
        out->client_bits = (uint8_t)b;
        out->client_bits_set = 1;
    }
}

int pmd_offer_parse(const char *value, size_t len, int client_bits_pref, struct pmd_params *out)
{
    struct cursor c = {value, value + len};
    if (client_bits_pref < PMD_MIN_BITS || client_bits_pref > PMD_MAX_BITS)
        client_bits_pref = PMD_MAX_BITS;
    int accepted = 0;
    for (;;) {
        skip_ows(&c);
        if (c.p == c.end)
            break;
        if (at(&c, ',')) { /* empty element */
            c.p++;
            continue;
        }
        const char *name;
        size_t nl = take_token(&c, &name);
        if (!nl)
            return PMD_OFFER_MALFORMED;
        struct offer o = {.pmd = nl == 18 && !strncasecmp(name, "permessage-deflate", 18)};
        if (read_params(&c, &o) < 0)
            return PMD_OFFER_MALFORMED;
        skip_ows(&c);
        if (c.p < c.end && !at(&c, ','))
            return PMD_OFFER_MALFORMED;
        /* The whole value is read even after a match, so a malformed tail
         * is answered the same wherever it sits. */
        if (o.pmd && !o.refused && !accepted) {
            settle(&o, client_bits_pref, out);
            accepted = 1;
        }
    }
    return accepted ? PMD_OFFER_ACCEPTED : PMD_OFFER_NONE;
}

size_t pmd_offer_answer(const struct pmd_params *p, char *out, size_t cap)
{
    char sb[32] = "", cb[32] = "";
    if (p->server_bits_set)
        snprintf(sb, sizeof(sb), "; server_max_window_bits=%d", p->server_bits);
    if (p->client_bits_set)
        snprintf(cb, sizeof(cb), "; client_max_window_bits=%d", p->client_bits);
    int n = snprintf(out, cap,
                     "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover%s%s%s\r\n",
                     p->client_no_context_takeover ? "; client_no_context_takeover" : "", sb, cb);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
