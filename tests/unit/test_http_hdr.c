/* test_http_hdr.c: common/http_hdr.c, the header collector shared by the
 * upgrade path and the HTTP service, fed the way http-parser splits. */
#include "common/http_hdr.h"
#include "tap.h"

enum { H_HOST = 1, H_KEY };
static const struct http_hdr_name names[] = {{"host", H_HOST}, {"sec-websocket-key", H_KEY}};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static void test_split_name_and_value(void)
{
    struct http_hdr h;
    http_hdr_init(&h);
    is_int(http_hdr_field(&h, "Ho", 2), HTTP_HDR_NONE, "first name piece ends nothing");
    is_int(http_hdr_field(&h, "sT", 2), HTTP_HDR_NONE, "second name piece ends nothing");
    is_int(http_hdr_value(&h, names, NNAMES), H_HOST, "value belongs to Host, case-insensitive");
    is_int(http_hdr_value(&h, names, NNAMES), H_HOST, "a second value piece too");
    is_int(http_hdr_field(&h, "X-Other", 7), H_HOST, "the next name ends Host's value");
    is_int(http_hdr_value(&h, names, NNAMES), HTTP_HDR_OTHER, "an unknown header is OTHER");
    is_int(http_hdr_field(&h, "Sec-WebSocket-Key", 17), HTTP_HDR_OTHER, "which the next name ends");
    is_int(http_hdr_value(&h, names, NNAMES), H_KEY, "Sec-WebSocket-Key known");
    is_int(http_hdr_end(&h), H_KEY, "the end of the headers ends the last value");
    is_int(http_hdr_end(&h), HTTP_HDR_NONE, "and only once");
}

static void test_long_names_are_no_known_header(void)
{
    struct http_hdr h;
    char longname[64];
    memset(longname, 'h', sizeof(longname));
    memcpy(longname, "host", 4);
    http_hdr_init(&h);
    http_hdr_field(&h, longname, sizeof(longname));
    is_int(http_hdr_value(&h, names, NNAMES), HTTP_HDR_OTHER,
           "a name longer than the buffer matches nothing");
    http_hdr_init(&h);
    http_hdr_field(&h, "hos", 3);
    is_int(http_hdr_value(&h, names, NNAMES), HTTP_HDR_OTHER, "a prefix of a known name is not it");
}

static void test_append_counts_what_it_cuts(void)
{
    char buf[4];
    size_t len = 0;
    http_hdr_append(buf, sizeof(buf), &len, "abc", 3);
    http_hdr_append(buf, sizeof(buf), &len, "defg", 4);
    is_int((long long)len, 7, "len counts every byte");
    is_mem(buf, 4, "abcd", 4, "what fits is kept");
}

static void test_trim(void)
{
    const char *v = " \t bearer x\t ";
    size_t n = strlen(v);
    http_hdr_trim(&v, &n);
    is_mem(v, n, "bearer x", 8, "spaces and tabs go from both ends");
    v = "   ";
    n = 3;
    http_hdr_trim(&v, &n);
    is_int((long long)n, 0, "all blanks trim to nothing");
}

int main(void)
{
    test_split_name_and_value();
    test_long_names_are_no_known_header();
    test_append_counts_what_it_cuts();
    test_trim();
    return done_testing();
}
