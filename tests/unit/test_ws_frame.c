/* test_ws_frame.c: common/ws_frame.c against its header's contract.
 *
 * Frames are encoded here by hand (not with ws_build_header) so a bug shared
 * by the builder and the parser cannot hide itself. Every parse is done on
 * an exact-size heap copy, so ASan reports any read past the bytes given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/ws_frame.h"
#include "tap.h"

#define NO_LIMIT UINT64_MAX

/* An exact-size heap copy: one byte more would hide an over-read. */
static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    return c;
}

static int parse_exact(const uint8_t *p, size_t n, int require_mask, uint64_t max, struct ws_header *h)
{
    uint8_t *c = dup_exact(p, n);
    memset(h, 0xA5, sizeof(*h));
    int r = ws_parse_header(c, n, require_mask, max, h);
    free(c);
    return r;
}

/* Length encodings: the minimal one for len, or a forced one. */
enum { LEN_MIN, LEN_7, LEN_16, LEN_64 };

/* Encodes a frame header by hand; returns its length. mask_bytes is the key
 * as it appears on the wire (NULL = unmasked). */
static size_t enc(uint8_t *out, int fin, int rsv, int op, const uint8_t *mask_bytes, int form, uint64_t len)
{
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (op & 0xF));
    uint8_t m = mask_bytes ? 0x80 : 0;
    if (form == LEN_MIN)
        form = len < 126 ? LEN_7 : len <= 0xFFFF ? LEN_16 : LEN_64;
    if (form == LEN_7) {
        out[n++] = m | (uint8_t)len;
    } else if (form == LEN_16) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (mask_bytes) {
        memcpy(out + n, mask_bytes, 4);
        n += 4;
    }
    return n;
}

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* The key as ws_header.mask holds it: a little-endian load of the wire bytes. */
static uint32_t mask_le(const uint8_t *m)
{
    return (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
}

/* Every prefix of a valid header needs more; the whole header (alone, and
 * with payload bytes after it) parses with the right fields. */
static void check_valid(const char *what, const uint8_t *hdr, size_t n, int require_mask, uint64_t max,
                        int fin, int op, int masked, uint64_t len)
{
    struct ws_header h;
    int bad_prefix = -1, bad_r = 0;
    for (size_t k = 0; k < n; k++) {
        int r = parse_exact(hdr, k, require_mask, max, &h);
        if (r != 0 && bad_prefix < 0) {
            bad_prefix = (int)k;
            bad_r = r;
        }
    }
    if (!ok(bad_prefix < 0, "%s: every prefix 0..%zu needs more", what, n - 1))
        diag("prefix of %d bytes returned %d", bad_prefix, bad_r);

    uint8_t buf[WS_MAX_HEADER + 8];
    memcpy(buf, hdr, n);
    memset(buf + n, 0x5A, 8);
    for (int extra = 0; extra <= 8; extra += 8) {
        int r = parse_exact(buf, n + (size_t)extra, require_mask, max, &h);
        if (!is_int(r, (long long)n, "%s (+%d bytes): header length", what, extra))
            continue;
        int fields = h.fin == (fin ? 1 : 0) && h.rsv == 0 && h.opcode == op && h.masked == (masked ? 1 : 0) &&
                     h.length == len && h.header_len == n && (!masked || h.mask == mask_le(MASK));
        if (!ok(fields, "%s (+%d bytes): fields", what, extra))
            diag("fin %u rsv %u op %u masked %u mask %08x length %" PRIu64 " header_len %u", h.fin, h.rsv,
                 h.opcode, h.masked, h.mask, h.length, h.header_len);
    }
}

/* An invalid header: no prefix may claim success or a different error, and
 * the whole header returns want. */
static void check_invalid(const char *what, const uint8_t *hdr, size_t n, int require_mask, uint64_t max,
                          int want)
{
    struct ws_header h;
    int bad_prefix = -1, bad_r = 0;
    for (size_t k = 0; k < n; k++) {
        int r = parse_exact(hdr, k, require_mask, max, &h);
        if (r != 0 && r != want && bad_prefix < 0) {
            bad_prefix = (int)k;
            bad_r = r;
        }
    }
    if (!ok(bad_prefix < 0, "%s: prefixes return 0 or %d", what, want))
        diag("prefix of %d bytes returned %d", bad_prefix, bad_r);
    is_int(parse_exact(hdr, n, require_mask, max, &h), want, "%s -> %d", what, want);
}

static void test_lengths(void)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, (1ULL << 32) + 5, (1ULL << 63) - 1};
    static const size_t want_hlen[] = {2, 2, 2, 4, 4, 4, 10, 10, 10};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t hdr[WS_MAX_HEADER];
        char what[96];
        size_t n = enc(hdr, 1, 0, WS_OP_BINARY, NULL, LEN_MIN, lens[i]);
        snprintf(what, sizeof(what), "unmasked binary len %" PRIu64, lens[i]);
        is_int((long long)n, (long long)want_hlen[i], "%s: encoder sanity", what);
        check_valid(what, hdr, n, 0, NO_LIMIT, 1, WS_OP_BINARY, 0, lens[i]);

        n = enc(hdr, 0, 0, WS_OP_TEXT, MASK, LEN_MIN, lens[i]);
        snprintf(what, sizeof(what), "masked text FIN=0 len %" PRIu64, lens[i]);
        check_valid(what, hdr, n, 1, NO_LIMIT, 0, WS_OP_TEXT, 1, lens[i]);
    }
    /* The limit is inclusive: a payload of exactly max_payload is fine. */
    uint8_t hdr[WS_MAX_HEADER];
    size_t n = enc(hdr, 1, 0, WS_OP_TEXT, MASK, LEN_MIN, 65536);
    check_valid("len 65536 with max_payload 65536", hdr, n, 1, 65536, 1, WS_OP_TEXT, 1, 65536);
}

static void test_opcodes(void)
{
    static const int valid[] = {WS_OP_CONT, WS_OP_TEXT, WS_OP_BINARY, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    uint8_t hdr[WS_MAX_HEADER];
    char what[64];
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        size_t n = enc(hdr, 1, 0, valid[i], MASK, LEN_MIN, 5);
        snprintf(what, sizeof(what), "opcode 0x%x", valid[i]);
        check_valid(what, hdr, n, 1, NO_LIMIT, 1, valid[i], 1, 5);
    }
    for (int op = 0; op < 16; op++) {
        if ((op >= 3 && op <= 7) || op >= 0xB) {
            size_t n = enc(hdr, 1, 0, op, MASK, LEN_MIN, 5);
            snprintf(what, sizeof(what), "reserved opcode 0x%x", op);
            check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);
        }
    }
    for (int rsv = 1; rsv < 8; rsv++) {
        size_t n = enc(hdr, 1, rsv, WS_OP_TEXT, MASK, LEN_MIN, 5);
        snprintf(what, sizeof(what), "RSV bits %d%d%d", rsv >> 2 & 1, rsv >> 1 & 1, rsv & 1);
        check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);
    }
}

static void test_control(void)
{
    static const int ctl[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    uint8_t hdr[WS_MAX_HEADER];
    char what[80];
    for (size_t i = 0; i < 3; i++) {
        size_t n = enc(hdr, 0, 0, ctl[i], MASK, LEN_MIN, 0);
        snprintf(what, sizeof(what), "control 0x%x with FIN=0", ctl[i]);
        check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);

        n = enc(hdr, 1, 0, ctl[i], MASK, LEN_MIN, 125);
        snprintf(what, sizeof(what), "control 0x%x len 125", ctl[i]);
        check_valid(what, hdr, n, 1, NO_LIMIT, 1, ctl[i], 1, 125);

        n = enc(hdr, 1, 0, ctl[i], MASK, LEN_MIN, 126);
        snprintf(what, sizeof(what), "control 0x%x len 126", ctl[i]);
        check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);

        n = enc(hdr, 1, 0, ctl[i], MASK, LEN_MIN, 70000);
        snprintf(what, sizeof(what), "control 0x%x len 70000", ctl[i]);
        check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);

        /* max_payload limits data frames (the header says so); a control
         * frame is bounded by 125 alone. */
        n = enc(hdr, 1, 0, ctl[i], MASK, LEN_MIN, 100);
        snprintf(what, sizeof(what), "control 0x%x len 100 with max_payload 10", ctl[i]);
        check_valid(what, hdr, n, 1, 10, 1, ctl[i], 1, 100);
    }
}

static void test_mask_rule(void)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t n = enc(hdr, 1, 0, WS_OP_TEXT, NULL, LEN_MIN, 5);
    check_invalid("unmasked frame with require_mask", hdr, n, 1, NO_LIMIT, -1002);
    n = enc(hdr, 1, 0, WS_OP_PING, NULL, LEN_MIN, 0);
    check_invalid("unmasked ping with require_mask", hdr, n, 1, NO_LIMIT, -1002);
    n = enc(hdr, 1, 0, WS_OP_TEXT, NULL, LEN_16, 300);
    check_invalid("unmasked 16-bit length with require_mask", hdr, n, 1, NO_LIMIT, -1002);
    n = enc(hdr, 1, 0, WS_OP_TEXT, NULL, LEN_MIN, 5);
    check_valid("unmasked frame without require_mask", hdr, n, 0, NO_LIMIT, 1, WS_OP_TEXT, 0, 5);
}

static void test_length_encoding(void)
{
    uint8_t hdr[WS_MAX_HEADER];
    char what[80];
    static const uint64_t short16[] = {0, 1, 125};
    for (size_t i = 0; i < 3; i++) {
        size_t n = enc(hdr, 1, 0, WS_OP_BINARY, MASK, LEN_16, short16[i]);
        snprintf(what, sizeof(what), "16-bit encoding of %" PRIu64, short16[i]);
        check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);
    }
    size_t n = enc(hdr, 1, 0, WS_OP_BINARY, MASK, LEN_16, 126);
    check_valid("16-bit encoding of 126 (minimal)", hdr, n, 1, NO_LIMIT, 1, WS_OP_BINARY, 1, 126);

    static const uint64_t short64[] = {0, 125, 126, 65535};
    for (size_t i = 0; i < 4; i++) {
        n = enc(hdr, 1, 0, WS_OP_BINARY, MASK, LEN_64, short64[i]);
        snprintf(what, sizeof(what), "64-bit encoding of %" PRIu64, short64[i]);
        check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);
    }
    n = enc(hdr, 1, 0, WS_OP_BINARY, MASK, LEN_64, 65536);
    check_valid("64-bit encoding of 65536 (minimal)", hdr, n, 1, NO_LIMIT, 1, WS_OP_BINARY, 1, 65536);

    static const uint64_t top[] = {1ULL << 63, UINT64_MAX, (1ULL << 63) | 5};
    for (size_t i = 0; i < 3; i++) {
        n = enc(hdr, 1, 0, WS_OP_BINARY, MASK, LEN_64, top[i]);
        snprintf(what, sizeof(what), "64-bit length 0x%" PRIx64 " (top bit)", top[i]);
        check_invalid(what, hdr, n, 1, NO_LIMIT, -1002);
    }
}

static void test_max_payload(void)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t n = enc(hdr, 1, 0, WS_OP_TEXT, MASK, LEN_MIN, 1001);
    check_invalid("text 1001 bytes, max_payload 1000", hdr, n, 1, 1000, -1009);
    n = enc(hdr, 1, 0, WS_OP_TEXT, MASK, LEN_MIN, 1000);
    check_valid("text 1000 bytes, max_payload 1000", hdr, n, 1, 1000, 1, WS_OP_TEXT, 1, 1000);
    n = enc(hdr, 0, 0, WS_OP_CONT, MASK, LEN_MIN, 70000);
    check_invalid("continuation 70000 bytes, max_payload 65536", hdr, n, 1, 65536, -1009);
    n = enc(hdr, 1, 0, WS_OP_BINARY, MASK, LEN_MIN, 11);
    check_invalid("binary 11 bytes, max_payload 10", hdr, n, 1, 10, -1009);
    n = enc(hdr, 1, 0, WS_OP_BINARY, NULL, LEN_MIN, 1);
    check_invalid("binary 1 byte, max_payload 0", hdr, n, 0, 0, -1009);

    /* A 2 GiB frame with only its header present: the verdict must come
     * from the header alone (exact-size buffer: ASan catches any look at
     * the absent payload). */
    n = enc(hdr, 1, 0, WS_OP_BINARY, MASK, LEN_MIN, 2ULL << 30);
    is_int((long long)n, 14, "2 GiB header is 14 bytes");
    check_invalid("2 GiB binary, max_payload 16 MiB", hdr, n, 1, 16 << 20, -1009);
}

/* ws_unmask against the byte-at-a-time definition. */
static void ref_unmask(uint8_t *p, size_t n, const uint8_t *m, uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= m[(offset + i) & 3];
}

static void test_unmask(void)
{
    enum { MAXN = 100, GUARD = 16 };
    uint8_t orig[8 + MAXN + GUARD], want[8 + MAXN + GUARD];
    uint8_t *buf = malloc(sizeof(orig));
    srand(12345);
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)rand();
    for (uint64_t off = 0; off < 8; off++) {
        int fails = 0;
        for (size_t align = 0; align < 8; align++) {
            for (size_t n = 0; n <= MAXN; n++) {
                memcpy(buf, orig, sizeof(orig));
                memcpy(want, orig, sizeof(orig));
                ref_unmask(want + align, n, MASK, off);
                ws_unmask(buf + align, n, mask_le(MASK), off);
                if (memcmp(buf, want, sizeof(orig)) != 0 && fails++ == 0) {
                    diag("first mismatch: offset %" PRIu64 " align %zu len %zu", off, align, n);
                    tap_hex("got", buf, align + n + 2);
                    tap_hex("expected", want, align + n + 2);
                }
            }
        }
        ok(fails == 0, "ws_unmask offset %" PRIu64 ", lengths 0..%d, alignments 0..7 (%d bad)", off, MAXN,
           fails);
    }
    free(buf);

    /* Large offsets only matter modulo 4. */
    uint8_t a[37], b[37];
    memcpy(a, orig, sizeof(a));
    memcpy(b, orig, sizeof(b));
    ws_unmask(a, sizeof(a), mask_le(MASK), (1ULL << 32) + 3);
    ref_unmask(b, sizeof(b), MASK, 3);
    is_mem(a, sizeof(a), b, sizeof(b), "ws_unmask offset 2^32+3 acts as offset 3");

    /* A frame unmasked in uneven pieces equals one unmasked whole. */
    enum { FRAME = 1000 };
    uint8_t *whole = malloc(FRAME), *pieces = malloc(FRAME);
    for (size_t i = 0; i < FRAME; i++)
        whole[i] = pieces[i] = (uint8_t)(i * 7 + 3);
    ws_unmask(whole, FRAME, mask_le(MASK), 0);
    size_t done = 0, step = 1;
    while (done < FRAME) {
        size_t k = step < FRAME - done ? step : FRAME - done;
        uint8_t *piece = dup_exact(pieces + done, k); /* exact size: catches word over-reads */
        ws_unmask(piece, k, mask_le(MASK), done);
        memcpy(pieces + done, piece, k);
        free(piece);
        done += k;
        step = step * 3 % 17 + 1;
    }
    is_mem(pieces, FRAME, whole, FRAME, "ws_unmask in pieces with running offset = whole");
    /* And masking twice restores the data (XOR is its own inverse). */
    ws_unmask(whole, FRAME, mask_le(MASK), 0);
    int same = 1;
    for (size_t i = 0; i < FRAME; i++)
        same &= whole[i] == (uint8_t)(i * 7 + 3);
    ok(same, "ws_unmask twice is the identity");
    free(whole);
    free(pieces);
}

static void test_build_header(void)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, (1ULL << 32) + 5, (1ULL << 63) - 1};
    static const int ops[] = {WS_OP_CONT, WS_OP_TEXT, WS_OP_BINARY, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    int fails = 0, count = 0;
    for (size_t o = 0; o < 6; o++) {
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            for (int fin = 0; fin <= 1; fin++) {
                if (ws_is_control((unsigned)ops[o]) && (!fin || lens[l] > 125))
                    continue;
                uint8_t out[WS_MAX_HEADER + 4];
                memset(out, 0xEE, sizeof(out));
                size_t n = ws_build_header(out, (unsigned)ops[o], fin, lens[l]);
                uint8_t want[WS_MAX_HEADER];
                size_t wn = enc(want, fin, 0, ops[o], NULL, LEN_MIN, lens[l]);
                struct ws_header h;
                int r = parse_exact(out, n, 0, NO_LIMIT, &h);
                count++;
                int good = n == wn && memcmp(out, want, n) == 0 && out[n] == 0xEE && r == (int)n &&
                           h.fin == fin && h.opcode == ops[o] && h.masked == 0 && h.rsv == 0 &&
                           h.length == lens[l] && h.header_len == n;
                if (!good && fails++ < 3) {
                    diag("op 0x%x fin %d len %" PRIu64 ": built %zu bytes, parse %d", ops[o], fin, lens[l], n,
                         r);
                    tap_hex("built", out, n);
                    tap_hex("expected", want, wn);
                }
            }
        }
    }
    ok(fails == 0,
       "ws_build_header: %d opcode/fin/length combinations are minimal and "
       "round-trip through ws_parse_header (%d bad)",
       count, fails);

    uint8_t out[WS_MAX_HEADER];
    size_t n = ws_build_header(out, WS_OP_TEXT, 1, 5);
    is_mem(out, n, "\x81\x05", 2, "text FIN len 5 -> 81 05");
    n = ws_build_header(out, WS_OP_BINARY, 1, 126);
    is_mem(out, n, "\x82\x7e\x00\x7e", 4, "binary len 126 -> 82 7e 00 7e");
    n = ws_build_header(out, WS_OP_BINARY, 0, 65536);
    is_mem(out, n, "\x02\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10,
           "binary no-FIN len 65536 -> 02 7f 00..01 00 00");
}

static int parse_close_exact(const void *p, size_t n, int *code)
{
    uint8_t *c = dup_exact(p, n);
    *code = -12345;
    int r = ws_parse_close(c, n, code);
    free(c);
    return r;
}

static void test_parse_close(void)
{
    int code;
    is_int(parse_close_exact("", 0, &code), 0, "close: empty payload is fine");
    is_int(code, 1005, "close: empty payload reports 1005");
    is_int(parse_close_exact("\x03", 1, &code), -1002, "close: 1-byte payload -> -1002");

    static const int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        is_int(parse_close_exact(p, 2, &code), -1002, "close code %d -> -1002", bad[i]);
    }
    /* 1012-1014 are IANA-registered since RFC 6455; the header accepts them. */
    static const int good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                               1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint8_t p[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
        int r = parse_close_exact(p, 2, &code);
        ok(r == 0 && code == good[i], "close code %d accepted (got r=%d code=%d)", good[i], r, code);
    }
    int r = parse_close_exact("\x03\xe8"
                              "bye",
                              5, &code);
    ok(r == 0 && code == 1000, "close 1000 'bye' (r=%d code=%d)", r, code);
    r = parse_close_exact("\x0f\xa0"
                          "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                          13, &code);
    ok(r == 0 && code == 4000, "close 4000 with UTF-8 reason (r=%d code=%d)", r, code);
    is_int(parse_close_exact("\x03\xe8"
                             "\xff",
                             3, &code),
           -1007, "close reason with byte FF -> -1007");
    is_int(parse_close_exact("\x03\xe8"
                             "ok\xce",
                             5, &code),
           -1007, "close reason ending inside a code point -> -1007");
    is_int(parse_close_exact("\x03\xe8"
                             "\xed\xa0\x80",
                             5, &code),
           -1007, "close reason with a surrogate -> -1007");
    /* A code checked before the reason or after: either way, an invalid
     * code with a valid reason is a protocol error. */
    is_int(parse_close_exact("\x03\xed"
                             "ok",
                             4, &code),
           -1002, "close 1005 with reason -> -1002");
}

static void test_build_close(void)
{
    uint8_t out[2 + 125 + 16];
    memset(out, 0xEE, sizeof(out));
    size_t n = ws_build_close(out, 1000, "bye");
    is_mem(out, n,
           "\x88\x05\x03\xe8"
           "bye",
           7, "close 1000 'bye' frame bytes");

    n = ws_build_close(out, 1001, "");
    is_mem(out, n, "\x88\x02\x03\xe9", 4, "close 1001 with empty reason");
    n = ws_build_close(out, 1000, NULL);
    is_mem(out, n, "\x88\x02\x03\xe8", 4, "close 1000 with NULL reason");

    char longr[301];
    for (int i = 0; i < 300; i++)
        longr[i] = (char)('a' + i % 26);
    longr[300] = 0;
    memset(out, 0xEE, sizeof(out));
    n = ws_build_close(out, 1011, longr);
    ok(n == 127 && out[0] == 0x88 && out[1] == 125,
       "300-byte reason truncated to payload 125 "
       "(len %zu, byte1 %u)",
       n, out[1]);
    ok(out[2] == 0x03 && out[3] == 0xf3 && memcmp(out + 4, longr, 123) == 0,
       "truncated close keeps the code and the first 123 reason bytes");
    ok(out[127] == 0xEE, "ws_build_close writes nothing past 127 bytes");

    /* The whole frame must be something our own parser (and any peer's)
     * accepts: a reason cut inside a code point would be invalid UTF-8 and
     * make the peer answer 1007. */
    char mb[200];
    memset(mb, 'x', 122);
    memcpy(mb + 122, "\xc3\xa9\xc3\xa9", 4); /* "éé": the cut at 123 splits the first */
    mb[126] = 0;
    n = ws_build_close(out, 1000, mb);
    struct ws_header h;
    int r = parse_exact(out, n, 0, NO_LIMIT, &h);
    ok(r == 2 && h.opcode == WS_OP_CLOSE && h.fin && h.length + 2 == n && h.length <= 125,
       "close with multibyte reason: header parses (r=%d len %" PRIu64 ")", r, h.length);
    int code;
    r = parse_close_exact(out + 2, n - 2, &code);
    ok(r == 0 && code == 1000,
       "close with a reason truncated near a 2-byte character stays "
       "valid UTF-8 (ws_parse_close r=%d, payload %zu)",
       r, n - 2);
}

/* ws_parse_header_ext: RSV1 (permessage-deflate) on a data message's first
 * frame only, and only when allowed; RSV2/RSV3 never. */
static void test_rsv_ext(void)
{
    static const struct {
        uint8_t b0;
        unsigned allowed;
        int want; /* > 0: header length */
        const char *what;
    } cases[] = {
        {0xC1, WS_RSV1, 6, "RSV1 text, allowed"},
        {0xC2, WS_RSV1, 6, "RSV1 binary, allowed"},
        {0x41, WS_RSV1, 6, "RSV1 text without FIN (first fragment), allowed"},
        {0xC1, 0, -1002, "RSV1 text, not negotiated"},
        {0xC0, WS_RSV1, -1002, "RSV1 continuation"},
        {0xC9, WS_RSV1, -1002, "RSV1 ping"},
        {0xC8, WS_RSV1, -1002, "RSV1 close"},
        {0xA1, WS_RSV1, -1002, "RSV2 text"},
        {0x91, WS_RSV1, -1002, "RSV3 text"},
        {0x81, WS_RSV1, 6, "no RSV, allowed mask set"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t hdr[6] = {cases[i].b0, 0x80, 1, 2, 3, 4};
        struct ws_header h;
        int r = ws_parse_header_ext(hdr, sizeof(hdr), 1, 1000, cases[i].allowed, &h);
        is_int(r, cases[i].want, "%s", cases[i].what);
        if (r > 0)
            is_int(h.rsv, cases[i].b0 >> 4 & 7, "%s: rsv reported", cases[i].what);
    }
}

int main(void)
{
    test_lengths();
    test_opcodes();
    test_control();
    test_mask_rule();
    test_length_encoding();
    test_max_payload();
    test_unmask();
    test_build_header();
    test_parse_close();
    test_build_close();
    test_rsv_ext();
    return done_testing();
}
