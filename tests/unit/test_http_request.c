/* test_http_request.c: worker/http/request.c, the HTTP service's request
 * parser: its stops (headers, complete), pipelining, bodies and limits,
 * and the answer it gives for bad input. */
#include <stdlib.h>

#include "tap.h"
#include "worker/http/request.h"

/* Feeds s whole, answering HEAD with limit; returns the events seen, as
 * letters (H head, D done, M more, I invalid, N no memory). */
static const char *run(struct http_request *r, const char *s, size_t limit, char *out)
{
    size_t n = strlen(s), k = 0;
    const uint8_t *p = (const uint8_t *)s;
    for (;;) {
        size_t used;
        enum http_req_event ev = http_request_feed(r, p, n, &used);
        p += used;
        n -= used;
        out[k++] = "MHDIN"[ev];
        if (ev == HTTP_REQ_HEAD) {
            r->limit = limit;
            r->discard = limit == 0;
        }
        if (ev == HTTP_REQ_MORE || ev == HTTP_REQ_INVALID || ev == HTTP_REQ_NOMEM ||
            (!n && ev != HTTP_REQ_HEAD))
            break;
    }
    out[k] = '\0';
    return out;
}

static void test_pipelined_requests_stop_in_order(void)
{
    struct http_request r;
    http_request_init(&r);
    const char *two =
        "POST /pub/a?type=binary HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream; q=1\r\n"
        "Authorization:  Bearer  tok \r\nContent-Length: 3\r\n\r\nabc"
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t used, n = strlen(two);
    const uint8_t *p = (const uint8_t *)two;
    is_int(http_request_feed(&r, p, n, &used), HTTP_REQ_HEAD, "stops at the first request's headers");
    is_mem(r.url, r.url_len, "/pub/a?type=binary", 18, "url");
    is_int((long long)http_request_path_len(&r), 6, "path without the query");
    size_t ql;
    const char *q = http_request_query(&r, &ql);
    is_mem(q, ql, "type=binary", 11, "query");
    ok(r.ctype_binary, "application/octet-stream with a parameter is binary");
    is_mem(r.auth, r.auth_len, "Bearer  tok", 11, "Authorization kept, trimmed at the ends");
    r.limit = 10;
    p += used, n -= used;
    is_int(http_request_feed(&r, p, n, &used), HTTP_REQ_DONE, "then the first request is complete");
    is_mem(r.body, r.body_len, "abc", 3, "with its body");
    p += used, n -= used;
    is_int(http_request_feed(&r, p, n, &used), HTTP_REQ_HEAD, "the second request's headers");
    is_mem(r.url, r.url_len, "/metrics", 8, "second url");
    ok(!r.has_auth && !r.ctype_binary && !r.body, "nothing of the first request remains");
    p += used, n -= used;
    is_int(http_request_feed(&r, p, n, &used), HTTP_REQ_DONE, "the second is complete");
    is_int((long long)(n - used), 0, "every byte consumed");
    http_request_reset_body(&r);
}

static void test_byte_by_byte_is_the_same(void)
{
    struct http_request r;
    http_request_init(&r);
    const char *s = "POST /pub/b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
                    "2\r\nhi\r\n3\r\n!!!\r\n0\r\n\r\n";
    char ev[64];
    size_t k = 0;
    for (size_t i = 0; s[i];) {
        size_t used;
        enum http_req_event e = http_request_feed(&r, (const uint8_t *)s + i, 1, &used);
        if (e != HTTP_REQ_MORE)
            ev[k++] = "MHDIN"[e];
        if (e == HTTP_REQ_HEAD) {
            r.limit = 100;
            r.discard = 0;
        }
        i += used;
    }
    ev[k] = '\0';
    is_str(ev, "HD", "one byte at a time: headers, then complete");
    ok(r.expect_continue, "Expect: 100-continue seen");
    is_mem(r.body, r.body_len, "hi!!!", 5, "the chunked body, joined");
    http_request_reset_body(&r);
}

static void test_limits_and_bad_input(void)
{
    struct http_request r;
    char ev[32];
    http_request_init(&r);
    is_str(
        run(&r, "POST /pub/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 4, ev),
        "HI", "a chunked body over the limit");
    is_int(r.status, 413, "is 413");
    http_request_reset_body(&r);
    http_request_init(&r);
    is_str(run(&r, "POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", 0, ev), "HD", "a dropped body");
    ok(r.body == NULL, "keeps nothing");
    http_request_init(&r);
    is_str(run(&r, "GET /x HTTP/1.1\r\nHost x\r\n\r\n", 0, ev), "I", "a header without a colon");
    is_int(r.status, 400, "is 400");
    ok(r.why && strlen(r.why) > 0, "with a reason: %s", r.why);
    http_parser_set_max_header_size(64);
    http_request_init(&r);
    char big[256];
    snprintf(big, sizeof(big), "GET /x HTTP/1.1\r\nX-Long: %0100d\r\n\r\n", 0);
    is_str(run(&r, big, 0, ev), "I", "headers over max_header_size");
    is_int(r.status, 431, "are 431");
    http_parser_set_max_header_size(80 * 1024);
}

static void test_long_urls_and_values(void)
{
    struct http_request r;
    char ev[32];
    size_t n = HTTP_URL_MAX + 100;
    char *s = malloc(n + 64);
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', n);
    strcpy(s + 5 + n, " HTTP/1.1\r\n\r\n");
    http_parser_set_max_header_size(1 << 20);
    http_request_init(&r);
    is_str(run(&r, s, 0, ev), "HD", "a long target parses");
    ok(r.url_len > HTTP_URL_MAX, "and says it is too long (%zu)", r.url_len);
    free(s);
    http_parser_set_max_header_size(80 * 1024);
}

int main(void)
{
    test_pipelined_requests_stop_in_order();
    test_byte_by_byte_is_the_same();
    test_limits_and_bad_input();
    test_long_urls_and_values();
    return done_testing();
}
