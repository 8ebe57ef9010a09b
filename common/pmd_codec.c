/* pmd_codec.c: per-worker zlib streams for permessage-deflate. */
#include "pmd_codec.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "alloc.h"

#define INFLATE_KEEP (256 * 1024) /* inflate buffer kept between messages */

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

struct pmd_codec {
    int level;
    z_stream *def[16]; /* by window bits 9-15, made on first use */
    z_stream inf;
    int inf_ready;
    uint8_t *buf; /* inflate output */
    size_t cap;
    uint64_t deflated;
};

struct pmd_codec *pmd_codec_new(int level)
{
    struct pmd_codec *z = xcalloc(1, sizeof(*z));
    z->level = level;
    return z;
}

static void drop_deflaters(struct pmd_codec *z)
{
    for (int i = 0; i < 16; i++) {
        if (z->def[i]) {
            deflateEnd(z->def[i]);
            free(z->def[i]);
            z->def[i] = NULL;
        }
    }
}

void pmd_codec_free(struct pmd_codec *z)
{
    if (!z)
        return;
    drop_deflaters(z);
    if (z->inf_ready)
        inflateEnd(&z->inf);
    free(z->buf);
    free(z);
}

void pmd_codec_set_level(struct pmd_codec *z, int level)
{
    if (level != z->level)
        drop_deflaters(z); /* remade at the new level on next use */
    z->level = level;
}

uint64_t pmd_codec_deflated(const struct pmd_codec *z)
{
    return z->deflated;
}

/* The stream for window bits (9-15), made on first use; NULL when zlib
 * cannot have one. */
static z_stream *deflater(struct pmd_codec *z, int bits)
{
    if (z->def[bits])
        return z->def[bits];
    z_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (deflateInit2(s, z->level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(s);
        return NULL;
    }
    return z->def[bits] = s;
}

size_t pmd_codec_deflate(struct pmd_codec *z, int bits, const uint8_t *in, size_t len, uint8_t *out,
                         size_t cap)
{
    if (len == 0 || cap < sizeof(tail) + 1 || len > UINT32_MAX)
        return 0;
    /* Each message starts from an empty window, so no match reaches back
     * further than the message is long: a message no longer than the
     * peer's window may use the widest stream. zlib's raw deflate has no
     * 8-bit window; its 9-bit one never reaches back more than 250 bytes. */
    int b = len <= ((size_t)1 << bits) ? 15 : bits < 9 ? 9 : bits;
    z_stream *s = deflater(z, b);
    if (!s)
        return 0;
    deflateReset(s);
    s->next_in = (Bytef *)in;
    s->avail_in = (uInt)len;
    s->next_out = out;
    s->avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    int r = deflate(s, Z_SYNC_FLUSH);
    size_t n = (size_t)(s->next_out - out);
    /* A full output buffer may hide pending bytes: count it as not fitting. */
    if (r != Z_OK || s->avail_in || !s->avail_out || n < sizeof(tail) ||
        memcmp(out + n - sizeof(tail), tail, sizeof(tail)) != 0)
        return 0;
    n -= sizeof(tail);
    if (n >= len)
        return 0;
    z->deflated++;
    return n;
}

/* Room for at least one more byte of output, up to max + 1 (the byte that
 * tells a message over max). Returns 0 or a pmd_inflate_result. */
static int grow(struct pmd_codec *z, size_t used, size_t max)
{
    if (used < z->cap && used <= max)
        return 0;
    if (used > max)
        return PMD_INFLATE_TOO_BIG;
    size_t want = z->cap ? z->cap * 2 : 4096;
    if (want > max + 1)
        want = max + 1;
    uint8_t *nb = realloc(z->buf, want);
    if (!nb)
        return PMD_INFLATE_NOMEM;
    z->buf = nb;
    z->cap = want;
    return 0;
}

/* Runs the inflater over what is left of its input, growing the output.
 * Returns 0 when the input is used up, 1 at the end of a final block, or
 * a pmd_inflate_result. */
static int run(struct pmd_codec *z, size_t max)
{
    z_stream *s = &z->inf;
    for (;;) {
        size_t used = (size_t)(s->next_out - z->buf);
        int g = grow(z, used, max);
        if (g)
            return g;
        s->next_out = z->buf + used;
        size_t room = (z->cap < max + 1 ? z->cap : max + 1) - used;
        s->avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
        /* Z_BLOCK: stop at block boundaries, so data_type tells whether
         * the input ended between blocks. */
        int r = inflate(s, Z_BLOCK);
        if (r == Z_STREAM_END)
            return 1;
        if (r == Z_MEM_ERROR)
            return PMD_INFLATE_NOMEM;
        if (r != Z_OK && r != Z_BUF_ERROR)
            return PMD_INFLATE_BAD; /* Z_DATA_ERROR, Z_NEED_DICT */
        if (s->avail_out && !s->avail_in)
            return 0;
        if (r == Z_BUF_ERROR && s->avail_out)
            return PMD_INFLATE_BAD; /* no progress with room on both sides */
        if (s->next_out - z->buf > (ptrdiff_t)max)
            return PMD_INFLATE_TOO_BIG;
    }
}

int pmd_codec_inflate(struct pmd_codec *z, const uint8_t *dict, size_t dict_len, const uint8_t *in,
                      size_t len, size_t max, const uint8_t **out, size_t *out_len)
{
    z_stream *s = &z->inf;
    if (!z->inf_ready) {
        if (inflateInit2(s, -15) != Z_OK)
            return PMD_INFLATE_NOMEM;
        z->inf_ready = 1;
    } else {
        inflateReset(s);
    }
    if (dict_len && inflateSetDictionary(s, dict, (uInt)dict_len) != Z_OK)
        return PMD_INFLATE_BAD;
    if (grow(z, 0, max))
        return PMD_INFLATE_NOMEM;
    s->next_out = z->buf;
    if (len == 0) {
        /* Strictly a broken block (RFC 7692 7.2.3.6 says 0x00), but some
         * senders strip an empty message to nothing: take it as empty. */
        *out = z->buf;
        *out_len = 0;
        return PMD_INFLATE_OK;
    }
    int r = 0;
    /* The message, then the tail its sender stripped. */
    for (int part = 0; part < 2 && r == 0; part++) {
        const uint8_t *p = part ? tail : in;
        size_t n = part ? sizeof(tail) : len;
        while (n && r == 0) {
            uInt step = n > UINT32_MAX ? UINT32_MAX : (uInt)n;
            s->next_in = (Bytef *)p;
            s->avail_in = step;
            r = run(z, max);
            p += step - s->avail_in;
            n -= step - s->avail_in;
        }
        /* A message that ended its final block (BFINAL) has nothing after
         * it; the tail that follows it does not count. */
        if (r == 1 && part == 0 && n > 0)
            return PMD_INFLATE_BAD;
    }
    if (r < 0)
        return r;
    /* Without a final block the stream must stop between blocks: anything
     * else is a message cut short. */
    if (r == 0 && !(s->data_type & 128))
        return PMD_INFLATE_BAD;
    *out = z->buf;
    *out_len = (size_t)(s->next_out - z->buf);
    return PMD_INFLATE_OK;
}

void pmd_codec_trim(struct pmd_codec *z)
{
    if (z->cap > INFLATE_KEEP) {
        free(z->buf);
        z->buf = NULL;
        z->cap = 0;
    }
}

void pmd_window_push(uint8_t *win, size_t cap, size_t *fill, const uint8_t *msg, size_t n)
{
    if (n >= cap) {
        memcpy(win, msg + n - cap, cap);
        *fill = cap;
        return;
    }
    size_t keep = *fill < cap - n ? *fill : cap - n;
    memmove(win, win + *fill - keep, keep);
    memcpy(win + keep, msg, n);
    *fill = keep + n;
}
