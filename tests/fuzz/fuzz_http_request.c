/* fuzz_http_request.c: libFuzzer target for worker/http/request.c.
 *
 * The first byte picks where to split the rest; the rest is fed as one
 * piece and again as two pieces (and again a byte at a time when short).
 * Every feeding must see the same stops (headers, complete, invalid with
 * the same status) with the same target and body (at the stops where they
 * are whole), up to a 431 (see too_long): how reads split a
 * request can never change what it means. Each stop must consume what it
 * says, and a body never exceeds the limit set at the headers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http/request.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

#define MAX_EVENTS 64
#define LIMIT      64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct trace {
    int n;
    int ev[MAX_EVENTS];
    int status[MAX_EVENTS];
    uint32_t url_hash[MAX_EVENTS], body_hash[MAX_EVENTS];
};

static uint32_t hash(const void *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *)p)[i]) * 16777619u;
    return h ^ (uint32_t)n;
}

/* Feeds [data, data + n); returns 0 when the request stream ended. */
static int feed(struct http_request *r, struct trace *t, const uint8_t *data, size_t n)
{
    while (n && t->n < MAX_EVENTS) {
        size_t used;
        enum http_req_event ev = http_request_feed(r, data, n, &used);
        CHECK(used <= n);
        data += used;
        n -= used;
        if (ev == HTTP_REQ_MORE) {
            CHECK(n == 0);
            return 1;
        }
        int i = t->n++;
        t->ev[i] = ev;
        t->status[i] = r->status;
        size_t ul = r->url_len < HTTP_URL_MAX ? r->url_len : HTTP_URL_MAX;
        /* at an error the target is whatever arrived before it: not compared */
        t->url_hash[i] = ev == HTTP_REQ_INVALID ? 0 : hash(r->url, ul) ^ (uint32_t)r->url_len;
        t->body_hash[i] = ev == HTTP_REQ_DONE ? hash(r->body, r->body_len) : 0;
        if (ev == HTTP_REQ_HEAD) {
            r->limit = LIMIT;
            r->discard = (r->url_len & 1) != 0; /* some requests drop their body */
        }
        if (ev == HTTP_REQ_DONE)
            CHECK(r->body_len <= LIMIT && (!r->discard || r->body_len == 0));
        if (ev == HTTP_REQ_INVALID) {
            CHECK(r->status >= 400 && r->status <= 431 && r->why);
            return 0;
        }
        if (ev == HTTP_REQ_NOMEM)
            return 0;
    }
    return 1;
}

static void run(const uint8_t *data, size_t size, size_t piece, struct trace *t)
{
    struct http_request *r = malloc(sizeof(*r));
    CHECK(r);
    http_request_init(r);
    memset(t, 0, sizeof(*t));
    for (size_t off = 0; off < size;) {
        size_t n = size - off < piece ? size - off : piece;
        if (!feed(r, t, data + off, n))
            break;
        off += n;
    }
    http_request_reset_body(r);
    free(r);
}

/* 1 when event i of t is a 431. http-parser finds an over-long header by
 * looking ahead in the buffer it was given (and counts header bytes a
 * little differently across calls), so input near max_header_size may be
 * refused 431 in one feeding and parse (or fail on a bad byte, 400) in
 * another. A 431 ends the comparison; nothing else may differ. */
static int too_long(const struct trace *t, int i)
{
    return i < t->n && t->ev[i] == HTTP_REQ_INVALID && t->status[i] == 431;
}

static void same(const struct trace *a, const struct trace *b)
{
    int n = a->n > b->n ? a->n : b->n;
    for (int i = 0; i < n; i++) {
        if (too_long(a, i) || too_long(b, i))
            return;
        CHECK(i < a->n && i < b->n);
        CHECK(a->ev[i] == b->ev[i]);
        CHECK(a->status[i] == b->status[i]);
        CHECK(a->url_hash[i] == b->url_hash[i]);
        CHECK(a->body_hash[i] == b->body_hash[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct trace whole, split;
    if (size < 1)
        return 0;
    http_parser_set_max_header_size(512);
    size_t cut = data[0] + 1;
    data++, size--;
    run(data, size, size ? size : 1, &whole);
    run(data, size, cut, &split);
    same(&whole, &split);
    if (size <= 256) {
        run(data, size, 1, &split);
        same(&whole, &split);
    }
    return 0;
}
