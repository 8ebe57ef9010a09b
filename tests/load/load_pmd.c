/* load_pmd.c: see load_pmd.h. */
#include "load_pmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static z_stream def, inf;
static int def_ready, inf_ready;

int load_pmd_accepted(const char *buf, size_t len)
{
    const char *end = buf + len;
    for (const char *p = buf; p < end; p++) {
        static const char name[] = "sec-websocket-extensions:";
        if (p == buf || p[-1] != '\n' || (size_t)(end - p) < sizeof(name) - 1 ||
            strncasecmp(p, name, sizeof(name) - 1))
            continue;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)((eol ? eol : end) - p);
        return memmem(p, l, "permessage-deflate", 18) != NULL;
    }
    return 0;
}

ssize_t load_pmd_deflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    if (!def_ready) {
        if (deflateInit2(&def, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
        def_ready = 1;
    }
    deflateReset(&def);
    def.next_in = (Bytef *)in;
    def.avail_in = (uInt)n;
    def.next_out = out;
    def.avail_out = (uInt)cap;
    if (deflate(&def, Z_SYNC_FLUSH) != Z_OK || def.avail_in || !def.avail_out)
        return -1;
    size_t len = cap - def.avail_out;
    return len >= 4 ? (ssize_t)(len - 4) : -1;
}

/* Runs the inflater over what it was given. Returns 0, or -1 on bad data
 * or when out is full. */
static int run(void)
{
    while (inf.avail_in) {
        if (!inf.avail_out)
            return -1;
        int r = inflate(&inf, Z_SYNC_FLUSH);
        if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
            return -1;
        if (r != Z_OK && inf.avail_in)
            return -1;
    }
    return 0;
}

ssize_t load_pmd_inflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (!inf_ready) {
        if (inflateInit2(&inf, -15) != Z_OK)
            return -1;
        inf_ready = 1;
    }
    inflateReset(&inf);
    inf.next_out = out;
    inf.avail_out = (uInt)cap;
    inf.next_in = (Bytef *)in;
    inf.avail_in = (uInt)n;
    if (run() == -1)
        return -1;
    inf.next_in = (Bytef *)tail;
    inf.avail_in = sizeof(tail);
    if (run() == -1)
        return -1;
    size_t len = (size_t)(inf.next_out - out);
    return len >= cap ? -1 : (ssize_t)len; /* a full buffer may hide more */
}

void load_pmd_json(uint8_t *out, size_t size, uint32_t id, uint64_t seq)
{
    static const char *const words[] = {"hello", "world", "price",  "update",  "room",    "alice",
                                        "bob",   "carol", "online", "typing",  "message", "channel",
                                        "ready", "done",  "lobby",  "standup", "coffee",  "later"};
    char rec[160];
    size_t len = 0;
    int n = snprintf(rec, sizeof(rec), "{\"seq\":%llu,\"conn\":%u,\"items\":[", (unsigned long long)seq, id);
    for (uint64_t r = 0; len < size; r++) {
        size_t take = (size_t)n < size - len ? (size_t)n : size - len;
        memcpy(out + len, rec, take);
        len += take;
        uint64_t h = (seq * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)id << 32) ^ (r * 0xC2B2AE3D27D4EB4Full);
        h ^= h >> 29;
        n = snprintf(rec, sizeof(rec), "{\"user\":\"%s%u\",\"text\":\"%s %s %s\",\"ts\":%llu},",
                     words[h % 18], (unsigned)(h >> 8) % 1000, words[(h >> 16) % 18], words[(h >> 24) % 18],
                     words[(h >> 32) % 18], (unsigned long long)(1733430000000ull + seq * 37 + r));
    }
}

uint8_t load_pmd_text_byte(uint64_t i)
{
    static uint8_t text[4096];
    static int ready;
    if (!ready) {
        load_pmd_json(text, sizeof(text), 0, 0);
        ready = 1;
    }
    return text[i % sizeof(text)];
}

uint8_t *load_pmd_scratch(size_t n)
{
    static uint8_t *buf;
    static size_t cap;
    if (n > cap) {
        uint8_t *b = realloc(buf, n);
        if (b == NULL)
            return NULL;
        buf = b;
        cap = n;
    }
    return buf;
}
