/* fuzz_pmd_offer.c: libFuzzer target for common/pmd_offer.c.
 *
 * The first byte picks the preferred client window; the rest is a
 * Sec-WebSocket-Extensions value. The result must be one of the three,
 * an accepted offer must stay in range, and our own answer, read back as
 * an offer, must be accepted with the same settings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/pmd_offer.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int pref = PMD_MIN_BITS + data[0] % 8;
    /* A copy of exactly the value, so reading one byte past it shows. */
    char *v = malloc(size - 1 ? size - 1 : 1);
    memcpy(v, data + 1, size - 1);
    struct pmd_params p;
    int r = pmd_offer_parse(v, size - 1, pref, &p);
    CHECK(r == PMD_OFFER_NONE || r == PMD_OFFER_ACCEPTED || r == PMD_OFFER_MALFORMED);
    if (r == PMD_OFFER_ACCEPTED) {
        CHECK(p.server_bits >= PMD_MIN_BITS && p.server_bits <= PMD_MAX_BITS);
        CHECK(p.client_bits >= PMD_MIN_BITS && p.client_bits <= PMD_MAX_BITS);
        CHECK(!p.client_bits_set || p.client_bits <= pref);
        CHECK(p.client_bits_set || p.client_bits == PMD_MAX_BITS);
        char ans[PMD_ANSWER_MAX];
        size_t n = pmd_offer_answer(&p, ans, sizeof(ans));
        CHECK(n > 28 && n < sizeof(ans) && ans[n - 2] == '\r' && ans[n - 1] == '\n');
        const char *val = ans + strlen("Sec-WebSocket-Extensions: ");
        struct pmd_params q;
        CHECK(pmd_offer_parse(val, (size_t)(ans + n - 2 - val), PMD_MAX_BITS, &q) == PMD_OFFER_ACCEPTED);
        CHECK(q.server_bits == p.server_bits && q.client_no_context_takeover == p.client_no_context_takeover);
        CHECK(q.client_bits == p.client_bits);
    }
    free(v);
    return 0;
}
