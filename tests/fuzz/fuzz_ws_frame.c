/* fuzz_ws_frame.c: libFuzzer target for common/ws_frame.c.
 *
 * The input is treated as bytes off the wire. Besides "no crash, no
 * sanitizer report", it checks the header's promises: a parsed header's
 * length is within the input and WS_MAX_HEADER, every shorter prefix needs
 * more, and its fields round-trip through ws_build_header; ws_unmask in two
 * pieces equals the byte-at-a-time definition; a close payload that parses
 * has a sendable code and rebuilds into a close frame that parses again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/utf8.h"
#include "common/ws_frame.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* With RSV1 allowed (permessage-deflate): the same answer as without, but
 * for RSV1 alone on a data message's first frame, which is then taken. */
static void check_rsv1(const uint8_t *data, size_t size, int require_mask, uint64_t max, int plain)
{
    struct ws_header h;
    int r = ws_parse_header_ext(data, size, require_mask, max, WS_RSV1, &h);
    int rsv1_data = size >= 1 && (data[0] & 0x70) == 0x40 && ((data[0] & 0x0f) == 1 || (data[0] & 0x0f) == 2);
    if (!rsv1_data) {
        CHECK(r == plain);
        return;
    }
    /* The same bytes without RSV1 must parse alike. */
    uint8_t copy[WS_MAX_HEADER];
    size_t n = size < sizeof(copy) ? size : sizeof(copy);
    memcpy(copy, data, n);
    copy[0] &= (uint8_t)~0x40;
    struct ws_header g;
    CHECK(r == ws_parse_header(copy, n, require_mask, max, &g));
    if (r > 0)
        CHECK(h.rsv == WS_RSV1 && h.length == g.length && h.opcode == g.opcode);
}

static void check_header(const uint8_t *data, size_t size, int require_mask, uint64_t max)
{
    struct ws_header h;
    int r = ws_parse_header(data, size, require_mask, max, &h);
    check_rsv1(data, size, require_mask, max, r);
    CHECK(r >= -1009 && r <= WS_MAX_HEADER);
    if (r < 0)
        CHECK(r == -1002 || r == -1009);
    if (r == 0)
        CHECK(size < WS_MAX_HEADER); /* a full header's worth always decides */
    if (r <= 0)
        return;

    CHECK((size_t)r <= size && h.header_len == r);
    CHECK(h.rsv == 0 && h.opcode <= 0xA && (h.opcode <= 2 || h.opcode >= 8));
    CHECK(!require_mask || h.masked);
    CHECK(!ws_is_control(h.opcode) || (h.fin && h.length <= WS_MAX_CONTROL_PAYLOAD));
    CHECK(ws_is_control(h.opcode) || h.length <= max);
    CHECK(!(h.length >> 63));
    for (int k = 0; k < r; k++) {
        struct ws_header p;
        CHECK(ws_parse_header(data, (size_t)k, require_mask, max, &p) <= 0);
    }

    /* Round trip: our builder writes the minimal encoding, and the parser
     * only accepts minimal encodings, so the sizes must agree too. */
    uint8_t out[WS_MAX_HEADER];
    size_t n = ws_build_header(out, h.opcode, h.fin, h.length);
    CHECK(n + (h.masked ? 4 : 0) == (size_t)r);
    CHECK(out[0] == data[0] && out[1] == (data[1] & 0x7f)); /* same but the mask bit */
    CHECK(memcmp(out + 2, data + 2, n - 2) == 0);
    struct ws_header g;
    CHECK(ws_parse_header(out, n, 0, UINT64_MAX, &g) == (int)n);
    CHECK(g.fin == h.fin && g.opcode == h.opcode && g.length == h.length && !g.masked);

    /* Unmask whatever payload followed, in two pieces split by the mask's
     * first byte, against the reference. */
    size_t plen = size - (size_t)r;
    if (!h.masked || plen == 0)
        return;
    uint8_t *a = malloc(plen), *b = malloc(plen);
    memcpy(a, data + r, plen);
    memcpy(b, data + r, plen);
    const uint8_t *key = data + r - 4;
    for (size_t i = 0; i < plen; i++)
        b[i] ^= key[i & 3];
    size_t split = (size_t)key[0] % (plen + 1);
    ws_unmask(a, split, h.mask, 0);
    ws_unmask(a + split, plen - split, h.mask, split);
    CHECK(memcmp(a, b, plen) == 0);
    free(a);
    free(b);
}

static void check_close(const uint8_t *data, size_t size)
{
    int code = -1;
    int r = ws_parse_close(data, size, &code);
    CHECK(r == 0 || r == -1002 || r == -1007);
    if (size == 1)
        CHECK(r == -1002);
    if (r != 0)
        return;
    if (size == 0) {
        CHECK(code == 1005);
        return;
    }
    CHECK((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
    CHECK(utf8_valid(data + 2, size - 2));

    /* Echo it back the way a server answers a close: the frame we build
     * must be one we (and so the peer) accept, whatever the reason's
     * length. */
    char reason[256];
    size_t rl = size - 2 < sizeof(reason) - 1 ? size - 2 : sizeof(reason) - 1;
    memcpy(reason, data + 2, rl);
    reason[rl] = 0;
    /* A NUL ends the C string; the rest of the reason is simply not sent.
     * A cut at sizeof(reason) may split a character: keep the valid
     * prefix, as a caller would. */
    rl = strlen(reason);
    while (rl && !utf8_valid((const uint8_t *)reason, rl))
        reason[--rl] = 0;
    uint8_t frame[2 + WS_MAX_CONTROL_PAYLOAD];
    size_t n = ws_build_close(frame, code, reason);
    CHECK(n >= 4 && n <= sizeof(frame));
    struct ws_header h;
    CHECK(ws_parse_header(frame, n, 0, 0, &h) == 2);
    CHECK(h.opcode == WS_OP_CLOSE && h.fin && h.length == n - 2);
    int again = -1;
    CHECK(ws_parse_close(frame + 2, n - 2, &again) == 0 && again == code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_header(data, size, 0, UINT64_MAX);
    check_header(data, size, 1, 1 << 20);
    check_header(data, size, 1, 0);
    check_close(data, size);
    return 0;
}
