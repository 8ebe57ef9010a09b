/* fuzz_proxy_proto.c: libFuzzer target for common/proxy_proto.c and the
 * trusted_proxies list parser (common/cidr.c).
 *
 * pp_parse must answer only -1, 0 or a length within the input and PP_MAX;
 * an answer of 0 must stay 0 or become a header once more bytes come (never
 * a different header); a header's answer must not change when bytes are
 * appended. cidr_list_parse must stay within its list and produce ranges
 * whose own base address matches them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "common/cidr.h"
#include "common/proxy_proto.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_pp(const uint8_t *data, size_t size)
{
    struct pp_addr a, b;
    const char *why;
    ssize_t r = pp_parse(data, size, &a, &why);
    CHECK(r >= -1 && r <= (ssize_t)size && r <= PP_MAX);
    if (r == -1)
        CHECK(why && *why);
    if (r > 0) {
        CHECK(a.version == 1 || a.version == 2);
        CHECK(a.family == AF_INET || a.family == AF_INET6 || a.family == AF_UNSPEC);
        /* Only the header's own bytes decide. */
        CHECK(pp_parse(data, (size_t)r, &b, &why) == r && memcmp(&a, &b, sizeof a) == 0);
    }
    /* Every prefix of a header (or of a still-open input) needs more. */
    if (r >= 0) {
        size_t lim = r > 0 ? (size_t)r : size;
        for (size_t i = 0; i < lim; i++)
            CHECK(pp_parse(data, i, &b, &why) == 0);
    }
}

static void fuzz_cidr(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct cidr_list *l = malloc(sizeof *l);
    char err[160];
    if (cidr_list_parse(text, l, err, sizeof err) == 0) {
        CHECK(l->n <= CIDR_LIST_MAX);
        for (uint32_t i = 0; i < l->n; i++) {
            const struct cidr *c = &l->e[i];
            CHECK((c->family == 4 && c->bits <= 32) || (c->family == 6 && c->bits <= 128));
            CHECK(cidr_list_match(l, c->family, c->addr));
        }
    } else {
        CHECK(memchr(err, 0, sizeof err) && err[0]);
    }
    free(l);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the parser (so one corpus seeds both). */
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_cidr(data + 1, size - 1);
    else
        fuzz_pp(data + 1, size - 1);
    return 0;
}
