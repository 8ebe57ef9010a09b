/* test_pmd_codec.c: common/pmd_codec.c against zlib used directly as the
 * peer (the way a client's permessage-deflate would use it): round trips,
 * window limits, context takeover through the saved window, bombs, and
 * broken or truncated messages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "common/pmd_codec.h"
#include "tap.h"

static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* JSON-ish text that compresses like chat traffic does. */
static size_t json(uint8_t *out, size_t n, int seq)
{
    static const char *words[] = {"alice", "bob", "price", "room", "hello", "update", "ts", "value"};
    size_t k = 0;
    while (k < n) {
        char item[96];
        int l = snprintf(item, sizeof(item), "{\"user\":\"%s\",\"seq\":%d,\"%s\":%u},", words[rnd() % 8],
                         seq++, words[rnd() % 8], rnd() % 1000);
        for (int i = 0; i < l && k < n; i++)
            out[k++] = (uint8_t)item[i];
    }
    return n;
}

/* A client's compressor: raw deflate, context kept or not, tail stripped. */
struct peer {
    z_stream s;
    int takeover;
};

static void peer_init(struct peer *p, int bits, int takeover)
{
    memset(p, 0, sizeof(*p));
    p->takeover = takeover;
    deflateInit2(&p->s, 6, Z_DEFLATED, -(bits < 9 ? 9 : bits), 8, Z_DEFAULT_STRATEGY);
}

static size_t peer_deflate(struct peer *p, const uint8_t *in, size_t n, uint8_t *out, size_t cap, int flush)
{
    if (!p->takeover)
        deflateReset(&p->s);
    p->s.next_in = (Bytef *)in;
    p->s.avail_in = (uInt)n;
    p->s.next_out = out;
    p->s.avail_out = (uInt)cap;
    deflate(&p->s, flush);
    size_t l = cap - p->s.avail_out;
    return flush == Z_SYNC_FLUSH ? l - 4 : l;
}

/* Inflates what we compressed as a peer with a window of 2^bits would,
 * strictly: one output byte per call, so every match is copied from
 * zlib's sliding window (2^bits bytes) and one reaching further back is
 * "invalid distance too far back". (With a large output buffer zlib also
 * accepts matches into the output of the same call.) */
static int peer_inflate(int bits, const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *got)
{
    z_stream s = {0};
    static uint8_t buf[(1 << 18) + 4];
    if (n + 4 > sizeof(buf))
        return -1;
    memcpy(buf, in, n);
    memcpy(buf + n, "\x00\x00\xff\xff", 4);
    inflateInit2(&s, -bits);
    s.next_in = buf;
    s.avail_in = (uInt)n + 4;
    s.next_out = out;
    int r = Z_OK;
    while (r == Z_OK && s.avail_in && (size_t)(s.next_out - out) < cap) {
        s.avail_out = 1;
        r = inflate(&s, Z_SYNC_FLUSH);
    }
    while (r == Z_OK && (size_t)(s.next_out - out) < cap) { /* pending output */
        s.avail_out = 1;
        r = inflate(&s, Z_SYNC_FLUSH);
        if (s.avail_out)
            break;
    }
    *got = (size_t)(s.next_out - out);
    inflateEnd(&s);
    return r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR ? 0 : -1;
}

static uint8_t msg[1 << 17], comp[(1 << 17) + 64], back[1 << 17];

static void round_trips(struct pmd_codec *z)
{
    static const size_t sizes[] = {16, 64, 200, 512, 1000, 4096, 20000, 1 << 17};
    for (int bits = 8; bits <= 15; bits++) {
        int fails = 0, compressed = 0;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t n = json(msg, sizes[i], (int)i);
            size_t c = pmd_codec_deflate(z, bits, msg, n, comp, n + 8);
            if (!c)
                continue;
            compressed++;
            size_t got;
            /* A peer with exactly 2^bits of window (zlib's raw inflate
             * takes 8) refuses any match reaching further back. */
            if (peer_inflate(bits, comp, c, back, sizeof(back), &got) || got != n || memcmp(back, msg, n))
                fails++;
            const uint8_t *out;
            size_t ol;
            if (pmd_codec_inflate(z, NULL, 0, comp, c, n, &out, &ol) != PMD_INFLATE_OK || ol != n ||
                memcmp(out, msg, n))
                fails++;
        }
        is_int(fails, 0, "window %d: every size inflates back, by zlib at that window and by the codec",
               bits);
        ok(compressed >= 7, "window %d: JSON from 64 bytes up compresses (%d of 8 sizes)", bits, compressed);
    }
    /* The strict peer can fail: a 4 KiB message compressed for a 32 KiB
     * window has matches further back than 256 bytes. */
    size_t n4 = json(msg, 4096, 5), got4;
    size_t c4 = pmd_codec_deflate(z, 15, msg, n4, comp, n4 + 8);
    ok(c4 && peer_inflate(8, comp, c4, back, sizeof(back), &got4) != 0,
       "a 15-bit-window message is refused by a strict 8-bit peer (the check bites)");
    for (size_t i = 0; i < 4096; i++)
        msg[i] = (uint8_t)rnd();
    is_int((long long)pmd_codec_deflate(z, 15, msg, 4096, comp, sizeof(comp)), 0,
           "random bytes do not shrink: 0 (send uncompressed)");
    json(msg, 4096, 1);
    is_int((long long)pmd_codec_deflate(z, 15, msg, 4096, comp, 100), 0, "output over cap: 0");
    is_int((long long)pmd_codec_deflate(z, 15, msg, 0, comp, 100), 0, "empty message: 0");
}

/* Client keeps its context across messages; the server keeps only its last
 * 2^bits bytes of plaintext and primes the inflater with them. */
static void takeover(struct pmd_codec *z)
{
    for (int bits = 9; bits <= 15; bits++) {
        struct peer p;
        peer_init(&p, bits, 1);
        size_t cap = (size_t)1 << bits, fill = 0;
        uint8_t *win = malloc(cap);
        int fails = 0;
        size_t in_total = 0, comp_total = 0;
        for (int m = 0; m < 40; m++) {
            size_t n = json(msg, 16 + rnd() % (m % 5 == 0 ? 9000 : 600), m);
            size_t c = peer_deflate(&p, msg, n, comp, sizeof(comp), Z_SYNC_FLUSH);
            const uint8_t *out;
            size_t ol;
            int r = pmd_codec_inflate(z, win, fill, comp, c, 1 << 20, &out, &ol);
            if (r != PMD_INFLATE_OK || ol != n || memcmp(out, msg, n))
                fails++;
            else
                pmd_window_push(win, cap, &fill, out, ol);
            in_total += n;
            comp_total += c;
        }
        is_int(fails, 0, "window %d, context taken over: 40 messages inflate (%zu -> %zu bytes)", bits,
               in_total, comp_total);
        deflateEnd(&p.s);
        free(win);
    }
    /* The same stream without the window: a reference into the previous
     * message is a distance too far back. */
    struct peer p;
    peer_init(&p, 15, 1);
    size_t n = json(msg, 2000, 7);
    peer_deflate(&p, msg, n, comp, sizeof(comp), Z_SYNC_FLUSH);
    size_t c = peer_deflate(&p, msg, n, comp, sizeof(comp), Z_SYNC_FLUSH);
    const uint8_t *out;
    size_t ol;
    is_int(pmd_codec_inflate(z, NULL, 0, comp, c, 1 << 20, &out, &ol), PMD_INFLATE_BAD,
           "a match before the saved window: 1007");
    deflateEnd(&p.s);
}

static void limits(struct pmd_codec *z)
{
    struct peer p;
    peer_init(&p, 15, 0);
    /* 64 MiB of zeros is about 64 KiB compressed. */
    size_t total = 0, c = 0;
    uint8_t *zeros = calloc(1, 1 << 20);
    uint8_t *bomb = malloc(1 << 18);
    p.s.next_out = bomb;
    p.s.avail_out = 1 << 18;
    for (int i = 0; i < 64; i++) {
        p.s.next_in = zeros;
        p.s.avail_in = 1 << 20;
        deflate(&p.s, i == 63 ? Z_SYNC_FLUSH : Z_NO_FLUSH);
        total += 1 << 20;
    }
    c = (1 << 18) - p.s.avail_out - 4;
    diag("bomb: %zu bytes inflate to %zu", c, total);
    const uint8_t *out;
    size_t ol;
    is_int(pmd_codec_inflate(z, NULL, 0, bomb, c, 1 << 20, &out, &ol), PMD_INFLATE_TOO_BIG,
           "a 64 MiB bomb with max 1 MiB: 1009");
    is_int(pmd_codec_inflate(z, NULL, 0, bomb, c, (size_t)64 << 20, &out, &ol), PMD_INFLATE_OK,
           "the same with max 64 MiB inflates");
    is_u64(ol, total, "to all of it");
    pmd_codec_trim(z);

    size_t n = json(msg, 5000, 3);
    c = pmd_codec_deflate(z, 15, msg, n, comp, sizeof(comp));
    is_int(pmd_codec_inflate(z, NULL, 0, comp, c, n, &out, &ol), PMD_INFLATE_OK, "exactly max: fine");
    is_int(pmd_codec_inflate(z, NULL, 0, comp, c, n - 1, &out, &ol), PMD_INFLATE_TOO_BIG, "max + 1: 1009");
    /* Cut short, the 00 00 ff ff tail often reads as literals and an
     * end-of-block (the all-ones code), which is a valid different message;
     * it must never read as the original. */
    int cut_same = 0;
    for (size_t cut = 1; cut < c; cut++)
        cut_same += pmd_codec_inflate(z, NULL, 0, comp, c - cut, n, &out, &ol) == PMD_INFLATE_OK && ol == n &&
                    !memcmp(out, msg, n);
    is_int(cut_same, 0, "cut short anywhere: never the original text");
    is_int(pmd_codec_inflate(z, NULL, 0,
                             (const uint8_t *)"\x00\x10\x00\xef\xff"
                                              "abc",
                             8, n, &out, &ol),
           PMD_INFLATE_BAD, "a stored block of 16 with 3 bytes (and the tail): ends mid-block, 1007");
    is_int(pmd_codec_inflate(z, NULL, 0, (const uint8_t *)"\x07\x00", 2, n, &out, &ol), PMD_INFLATE_BAD,
           "reserved block type 11: 1007");
    /* BFINAL is allowed (RFC 7692 7.2.3.4), bytes after it are not. */
    deflateEnd(&p.s);
    peer_init(&p, 15, 0);
    size_t f = peer_deflate(&p, msg, n, comp, sizeof(comp), Z_FINISH);
    is_int(pmd_codec_inflate(z, NULL, 0, comp, f, n, &out, &ol), PMD_INFLATE_OK, "a final block: fine");
    ok(ol == n && !memcmp(out, msg, n), "and the text is right");
    comp[f] = 0x00;
    is_int(pmd_codec_inflate(z, NULL, 0, comp, f + 1, n, &out, &ol), PMD_INFLATE_BAD,
           "a byte after the final block: 1007");
    is_int(pmd_codec_inflate(z, NULL, 0, (const uint8_t *)"", 0, 10, &out, &ol), PMD_INFLATE_OK,
           "an empty payload is taken as an empty message");
    is_int((long long)ol, 0, "of 0 bytes");
    is_int(pmd_codec_inflate(z, NULL, 0, (const uint8_t *)"\x00", 1, 10, &out, &ol), PMD_INFLATE_OK,
           "0x00 (RFC 7692 7.2.3.6's empty message) too");
    deflateEnd(&p.s);
    free(zeros);
    free(bomb);
}

static void windows(void)
{
    uint8_t win[8];
    size_t fill = 0;
    pmd_window_push(win, 8, &fill, (const uint8_t *)"abc", 3);
    is_mem(win, fill, "abc", 3, "push into an empty window");
    pmd_window_push(win, 8, &fill, (const uint8_t *)"defg", 4);
    is_mem(win, fill, "abcdefg", 7, "append");
    pmd_window_push(win, 8, &fill, (const uint8_t *)"hij", 3);
    is_mem(win, fill, "cdefghij", 8, "slide: the last 8 bytes");
    pmd_window_push(win, 8, &fill, (const uint8_t *)"0123456789", 10);
    is_mem(win, fill, "23456789", 8, "a message longer than the window replaces it");
    pmd_window_push(win, 8, &fill, (const uint8_t *)"", 0);
    is_mem(win, fill, "23456789", 8, "an empty message changes nothing");
}

int main(void)
{
    struct pmd_codec *z = pmd_codec_new(6);
    round_trips(z);
    uint64_t before = pmd_codec_deflated(z);
    json(msg, 1000, 9);
    size_t c6 = pmd_codec_deflate(z, 15, msg, 1000, comp, sizeof(comp));
    pmd_codec_set_level(z, 1);
    size_t c1 = pmd_codec_deflate(z, 15, msg, 1000, comp, sizeof(comp));
    ok(c1 && c6 && c1 >= c6, "level 1 after level 6: %zu >= %zu bytes", c1, c6);
    is_u64(pmd_codec_deflated(z), before + 2, "deflate count");
    takeover(z);
    limits(z);
    windows();
    pmd_codec_free(z);
    return done_testing();
}
