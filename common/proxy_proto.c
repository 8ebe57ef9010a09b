/* proxy_proto.c: PROXY protocol v1 (text) and v2 (binary) headers. */
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

static ssize_t invalid(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

/* ---- version 1 --------------------------------------------------------- */

/* Copies the next space-terminated token of line[*pos..end) into tok (NUL
 * terminated). Returns its length, or -1 when empty or too long. */
static int v1_token(const char *line, size_t end, size_t *pos, char *tok, size_t cap)
{
    size_t s = *pos, i = s;
    while (i < end && line[i] != ' ')
        i++;
    if (i == s || i - s >= cap)
        return -1;
    memcpy(tok, line + s, i - s);
    tok[i - s] = '\0';
    *pos = i < end ? i + 1 : i;
    return (int)(i - s);
}

/* 1 to 5 digits, no sign, at most 65535. */
static int v1_port(const char *t, uint16_t *port)
{
    size_t l = strlen(t);
    unsigned v = 0;
    if (l == 0 || l > 5 || (l > 1 && t[0] == '0'))
        return -1;
    for (size_t i = 0; i < l; i++) {
        if (t[i] < '0' || t[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(t[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* The line without its CRLF: "PROXY TCP4 SRC DST SPORT DPORT". */
static ssize_t v1_fields(const char *line, size_t len, struct pp_addr *out, const char **why)
{
    char tok[48];
    size_t pos = sizeof(v1_sig) - 1;
    if (v1_token(line, len, &pos, tok, sizeof tok) < 0)
        return invalid(why, "v1: no protocol after PROXY");
    if (!strcmp(tok, "UNKNOWN")) {
        out->family = AF_UNSPEC; /* the rest of the line is ignored (spec 2.1) */
        return 0;
    }
    if (strcmp(tok, "TCP4") && strcmp(tok, "TCP6"))
        return invalid(why, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    int af = tok[3] == '4' ? AF_INET : AF_INET6;
    if (v1_token(line, len, &pos, tok, sizeof tok) < 0 || inet_pton(af, tok, out->src) != 1)
        return invalid(why, "v1: bad source address");
    if (v1_token(line, len, &pos, tok, sizeof tok) < 0 || inet_pton(af, tok, out->dst) != 1)
        return invalid(why, "v1: bad destination address");
    if (v1_token(line, len, &pos, tok, sizeof tok) < 0 || v1_port(tok, &out->src_port))
        return invalid(why, "v1: bad source port");
    if (v1_token(line, len, &pos, tok, sizeof tok) < 0 || v1_port(tok, &out->dst_port))
        return invalid(why, "v1: bad destination port");
    if (pos != len || line[len - 1] == ' ')
        return invalid(why, "v1: extra fields after the destination port");
    out->family = af;
    return 0;
}

static ssize_t parse_v1(const uint8_t *buf, size_t n, struct pp_addr *out, const char **why)
{
    size_t lim = n < PP_V1_MAX ? n : PP_V1_MAX;
    for (size_t i = 0; i < lim; i++) {
        if (buf[i] == '\r') {
            if (i + 2 > PP_V1_MAX)
                return invalid(why, "v1: no CRLF within 107 bytes");
            if (i + 1 == n)
                return 0;
            if (buf[i + 1] != '\n')
                return invalid(why, "v1: CR not followed by LF");
            if (v1_fields((const char *)buf, i, out, why) < 0)
                return -1;
            out->version = 1;
            return (ssize_t)(i + 2);
        }
        if (buf[i] == '\n' || buf[i] == '\0')
            return invalid(why, "v1: LF or NUL before CRLF");
    }
    if (n >= PP_V1_MAX)
        return invalid(why, "v1: no CRLF within 107 bytes");
    return 0;
}

/* ---- version 2 --------------------------------------------------------- */

static ssize_t parse_v2(const uint8_t *buf, size_t n, struct pp_addr *out, const char **why)
{
    if (n < 16)
        return 0;
    if ((buf[12] >> 4) != 2)
        return invalid(why, "v2: version is not 2");
    unsigned cmd = buf[12] & 0x0f, fam = buf[13];
    size_t len = (size_t)buf[14] << 8 | buf[15];
    if (cmd > 1)
        return invalid(why, "v2: command is neither LOCAL nor PROXY");
    if (16 + len > PP_V2_MAX)
        return invalid(why, "v2: header longer than 2064 bytes");
    if (n < 16 + len)
        return 0;
    const uint8_t *a = buf + 16;
    out->version = 2;
    out->family = AF_UNSPEC;
    if (cmd == 0) /* LOCAL: the balancer speaking for itself; addresses ignored */
        return (ssize_t)(16 + len);
    switch (fam) {
    case 0x11: /* TCP over IPv4 */
        if (len < 12)
            return invalid(why, "v2: TCP4 address block shorter than 12 bytes");
        out->family = AF_INET;
        memcpy(out->src, a, 4);
        memcpy(out->dst, a + 4, 4);
        out->src_port = (uint16_t)(a[8] << 8 | a[9]);
        out->dst_port = (uint16_t)(a[10] << 8 | a[11]);
        break;
    case 0x21: /* TCP over IPv6 */
        if (len < 36)
            return invalid(why, "v2: TCP6 address block shorter than 36 bytes");
        out->family = AF_INET6;
        memcpy(out->src, a, 16);
        memcpy(out->dst, a + 16, 16);
        out->src_port = (uint16_t)(a[32] << 8 | a[33]);
        out->dst_port = (uint16_t)(a[34] << 8 | a[35]);
        break;
    case 0x00: /* UNSPEC */
    case 0x31: /* unix stream: no address we can count by */ break;
    default: return invalid(why, "v2: address family/transport is not TCP4, TCP6, UNSPEC or unix stream");
    }
    return (ssize_t)(16 + len); /* TLVs after the addresses are skipped */
}

ssize_t pp_parse(const uint8_t *buf, size_t n, struct pp_addr *out, const char **why)
{
    static const char *none = "";
    *why = none;
    memset(out, 0, sizeof *out);
    if (n == 0)
        return 0;
    size_t v1l = sizeof(v1_sig) - 1;
    if (buf[0] == v1_sig[0]) {
        if (memcmp(buf, v1_sig, n < v1l ? n : v1l) != 0)
            return invalid(why, "not a PROXY header");
        return n < v1l ? 0 : parse_v1(buf, n, out, why);
    }
    if (buf[0] == v2_sig[0]) {
        if (memcmp(buf, v2_sig, n < sizeof v2_sig ? n : sizeof v2_sig) != 0)
            return invalid(why, "not a PROXY header");
        return parse_v2(buf, n, out, why);
    }
    return invalid(why, "not a PROXY header");
}
