/* test_pmd_offer.c: common/pmd_offer.c. Each case is one
 * Sec-WebSocket-Extensions value, the result and, when accepted, the exact
 * answer line; the preferred client window is 10 unless a case says. */
#include <stdio.h>
#include <string.h>
#include "common/pmd_offer.h"
#include "tap.h"

#define PD   "permessage-deflate"
#define SNCT "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"

struct ocase {
    const char *value;
    int pref;
    int want; /* enum pmd_offer_result */
    const char *answer;
};

static const struct ocase cases[] = {
    /* plain offers */
    {PD, 10, PMD_OFFER_ACCEPTED, SNCT "\r\n"},
    {"PerMessage-Deflate", 10, PMD_OFFER_ACCEPTED, SNCT "\r\n"},
    {PD "; client_max_window_bits", 10, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=10\r\n"},
    {PD "; client_max_window_bits", 15, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=15\r\n"},
    {PD "; client_max_window_bits=9", 10, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=9\r\n"},
    {PD "; client_max_window_bits=15", 10, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=10\r\n"},
    {PD "; client_max_window_bits=\"12\"", 10, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=10\r\n"},
    {PD "; client_max_window_bits=\"8\"", 10, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=8\r\n"},
    {PD "; server_max_window_bits=12", 10, PMD_OFFER_ACCEPTED, SNCT "; server_max_window_bits=12\r\n"},
    {PD "; server_no_context_takeover", 10, PMD_OFFER_ACCEPTED, SNCT "\r\n"},
    {PD "; client_no_context_takeover", 10, PMD_OFFER_ACCEPTED, SNCT "; client_no_context_takeover\r\n"},
    {PD
     ";client_no_context_takeover;server_no_context_takeover;server_max_window_bits=8;client_max_window_bits",
     12, PMD_OFFER_ACCEPTED,
     SNCT "; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=12\r\n"},
    {PD " ;\tclient_max_window_bits = 11 ", 15, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=11\r\n"},
    /* several offers: the first acceptable one wins */
    {PD "; client_max_window_bits=9, " PD, 10, PMD_OFFER_ACCEPTED, SNCT "; client_max_window_bits=9\r\n"},
    {PD "; x=1, " PD "; client_max_window_bits", 10, PMD_OFFER_ACCEPTED,
     SNCT "; client_max_window_bits=10\r\n"},
    {"x-webkit-deflate-frame, " PD, 10, PMD_OFFER_ACCEPTED, SNCT "\r\n"},
    {"foo; bar=\"a b\", " PD, 10, PMD_OFFER_ACCEPTED, SNCT "\r\n"},
    {", ," PD ",", 10, PMD_OFFER_ACCEPTED, SNCT "\r\n"},
    /* refused offers (RFC 7692 7.1): unknown, repeated, misplaced or out of range */
    {PD "; x", 10, PMD_OFFER_NONE, NULL},
    {PD "; client_max_window_bits; client_max_window_bits", 10, PMD_OFFER_NONE, NULL},
    {PD "; server_no_context_takeover; server_no_context_takeover", 10, PMD_OFFER_NONE, NULL},
    {PD "; server_no_context_takeover=1", 10, PMD_OFFER_NONE, NULL},
    {PD "; client_no_context_takeover=\"\"", 10, PMD_OFFER_NONE, NULL},
    {PD "; server_max_window_bits", 10, PMD_OFFER_NONE, NULL},
    {PD "; server_max_window_bits=7", 10, PMD_OFFER_NONE, NULL},
    {PD "; server_max_window_bits=16", 10, PMD_OFFER_NONE, NULL},
    {PD "; server_max_window_bits=08", 10, PMD_OFFER_NONE, NULL},
    {PD "; client_max_window_bits=0", 10, PMD_OFFER_NONE, NULL},
    {PD "; client_max_window_bits=\"1 0\"", 10, PMD_OFFER_NONE, NULL},
    {PD "; client_max_window_bits=100000000000000000000000000000000000000", 10, PMD_OFFER_NONE, NULL},
    {PD "; x, " PD "; y", 10, PMD_OFFER_NONE, NULL},
    {"", 10, PMD_OFFER_NONE, NULL},
    {"x-webkit-deflate-frame", 10, PMD_OFFER_NONE, NULL},
    {"permessage-deflat", 10, PMD_OFFER_NONE, NULL},
    {"permessage-deflatex", 10, PMD_OFFER_NONE, NULL},
    /* the header grammar broken: 400 */
    {PD "; client_max_window_bits=\"10", 10, PMD_OFFER_MALFORMED, NULL},
    {PD ";", 10, PMD_OFFER_MALFORMED, NULL},
    {PD "; =10", 10, PMD_OFFER_MALFORMED, NULL},
    {PD "; client_max_window_bits=", 10, PMD_OFFER_MALFORMED, NULL},
    {PD " client_max_window_bits", 10, PMD_OFFER_MALFORMED, NULL},
    {"; " PD, 10, PMD_OFFER_MALFORMED, NULL},
    {PD ", @", 10, PMD_OFFER_MALFORMED, NULL},
    {PD ", foo; a=\"b\\", 10, PMD_OFFER_MALFORMED, NULL},
};

static void check_params(void)
{
    struct pmd_params p;
    int r = pmd_offer_parse(PD "; server_max_window_bits=9; client_max_window_bits=12", 41, 10, &p);
    is_int(r, PMD_OFFER_NONE, "a value cut short is read as it stands (length honoured)");
    r = pmd_offer_parse(PD "; server_max_window_bits=9; client_max_window_bits=12",
                        strlen(PD "; server_max_window_bits=9; client_max_window_bits=12"), 10, &p);
    is_int(r, PMD_OFFER_ACCEPTED, "accepted");
    is_int(p.server_bits, 9, "server window 9");
    is_int(p.client_bits, 10, "client window negotiated down to 10");
    is_int(p.client_no_context_takeover, 0, "client keeps its context");
    r = pmd_offer_parse(PD, strlen(PD), 10, &p);
    is_int(p.server_bits, 15, "server window 15 when the offer sets none");
    is_int(p.client_bits, 15, "client window 15 when the client does not let us pick it");
    is_int(p.client_bits_set, 0, "and the answer does not name it");
    r = pmd_offer_parse(PD "; client_max_window_bits", strlen(PD "; client_max_window_bits"), 99, &p);
    is_int(p.client_bits, 15, "an out-of-range preference falls back to 15");
}

int main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ocase *c = &cases[i];
        struct pmd_params p;
        memset(&p, 0xAA, sizeof(p));
        int r = pmd_offer_parse(c->value, strlen(c->value), c->pref, &p);
        is_int(r, c->want, "'%s' -> %d", c->value, c->want);
        if (c->answer && r == PMD_OFFER_ACCEPTED) {
            char out[PMD_ANSWER_MAX];
            size_t n = pmd_offer_answer(&p, out, sizeof(out));
            is_int((long long)n, (long long)strlen(out), "answer length");
            is_str(out, c->answer, "answer to '%s'", c->value);
        }
    }
    check_params();
    return done_testing();
}
