/* load_pmd.c: see load_pmd.h. */
#include "load_pmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static z_stream def, inf;
static int def_ready, inf_ready;
static int memo_off; /* some answer lacked server_no_context_takeover */

/* The inflate memo (load_pmd_inflate_memo): recent compressed messages
 * and their plaintext, in sets of MEMO_WAYS by a hash of the compressed
 * bytes; a miss replaces its set's least recently used entry. Subscribers
 * that lag by different amounts read different messages at once, so the
 * memo holds many (a direct-mapped one thrashed on collisions). */
#define MEMO_SLOTS 4096
#define MEMO_WAYS  4
#define MEMO_MAX   (64 * 1024) /* longer messages are inflated every time */
struct memo {
    uint8_t *z, *plain;
    size_t zlen, plen;
    uint64_t used; /* memo_clock when last hit or kept */
};
static uint64_t memo_clock;
static struct memo memo[MEMO_SLOTS];

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
        if (!memmem(p, l, "permessage-deflate", 18))
            return 0;
        if (!memmem(p, l, "server_no_context_takeover", 26))
            memo_off = 1; /* the server may compress against earlier messages */
        return 1;
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

/* A hash of the length and up to 64 bytes from each end: the memo
 * compares the whole message anyway. */
static uint64_t memo_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    size_t head = n < 64 ? n : 64, tail = n - head < 64 ? n - head : 64;
    for (size_t i = 0; i < head; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    for (size_t i = n - tail; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void memo_keep(struct memo *m, const uint8_t *in, size_t n, const uint8_t *plain, size_t len)
{
    uint8_t *z = realloc(m->z, n ? n : 1), *pl = z ? realloc(m->plain, len ? len : 1) : NULL;
    if (z)
        m->z = z;
    if (!z || !pl) {
        m->zlen = 0; /* out of memory: this slot stays empty */
        return;
    }
    m->plain = pl;
    memcpy(m->z, in, n);
    memcpy(m->plain, plain, len);
    m->zlen = n;
    m->plen = len;
}

ssize_t load_pmd_inflate_memo(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int *hit)
{
    *hit = 0;
    if (memo_off || n > MEMO_MAX)
        return load_pmd_inflate(in, n, out, cap);
    struct memo *set = &memo[memo_hash(in, n) % (MEMO_SLOTS / MEMO_WAYS) * MEMO_WAYS], *m = set;
    memo_clock++;
    for (int i = 0; i < MEMO_WAYS; i++) {
        struct memo *e = &set[i];
        if (e->zlen == n && n && memcmp(e->z, in, n) == 0) {
            if (e->plen >= cap)
                return -1; /* as load_pmd_inflate: a full buffer may hide more */
            memcpy(out, e->plain, e->plen);
            e->used = memo_clock;
            *hit = 1;
            return (ssize_t)e->plen;
        }
        if (e->used < m->used)
            m = e;
    }
    m->used = memo_clock;
    ssize_t len = load_pmd_inflate(in, n, out, cap);
    if (len >= 0)
        memo_keep(m, in, n, out, (size_t)len);
    return len;
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
