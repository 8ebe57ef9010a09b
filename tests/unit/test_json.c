/* test_json.c: common/json.c, the strict reading of outside JSON over
 * jansson: what json_read_object refuses (each case once accepted by a
 * laxer parser), the depth limit at its edge, the error codes it reports,
 * and json_member_text's spans. Inputs are exact-size heap copies without
 * a NUL, so ASan sees any read past the end. */
#include <stdlib.h>
#include <string.h>
#include "common/json.h"
#include "tap.h"

static char *copy_of(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, s, n);
    return c;
}

/* 1 when text (n bytes) is accepted with max_depth; why receives the error. */
static int accepts_n(const char *text, size_t n, int max_depth, json_error_t *why)
{
    char *c = copy_of(text, n);
    json_t *v = json_read_object(c, n, max_depth, why);
    free(c);
    json_decref(v);
    return v != NULL;
}

static int accepts(const char *text)
{
    json_error_t why;
    return accepts_n(text, strlen(text), 16, &why);
}

#define REFUSED(lit, why) ok(!accepts_n(lit, sizeof(lit) - 1, 16, &err), "refused: %s", why)

static void test_refused(void)
{
    json_error_t err;
    ok(accepts(" {\"a\":[1,-2.5e+3,true,false,null,\"s\\u00e9\",{}],\"b\":{\"a\":1}} \n"),
       "an object with every JSON type, whitespace around");
    ok(accepts("{}"), "empty object");
    ok(accepts("{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":1e308}"),
       "int64_t's ends and a large double");
    REFUSED("", "empty text");
    REFUSED("[1]", "an array at the top");
    REFUSED("\"x\"", "a string at the top");
    REFUSED("{\"a\":1}x", "trailing garbage");
    REFUSED("{\"a\":1}{}", "two objects");
    REFUSED("{\"a\":1}\0", "a NUL after the object");
    REFUSED("{\"a\":1,\"a\":2}", "duplicate name");
    REFUSED("{\"x\":{\"a\":1,\"a\":2}}", "duplicate name in a nested object");
    REFUSED("{\"a\":1,\"\\u0061\":2}", "duplicate spelled with an escape");
    REFUSED("{\"a\":\"\xed\xa0\x80\"}", "UTF-8-encoded surrogate");
    REFUSED("{\"a\":\"\xc0\xaf\"}", "overlong UTF-8");
    REFUSED("{\"a\":\"\xc3\"}", "truncated UTF-8");
    REFUSED("{\"a\":\"\xf4\x90\x80\x80\"}", "UTF-8 above U+10FFFF");
    REFUSED("{\"\xff\":1}", "invalid UTF-8 in a name");
    REFUSED("{\"a\":\"x\\u0000y\"}", "\\u0000 in a string");
    REFUSED("{\"a\\u0000\":1}", "\\u0000 in a name");
    REFUSED("{\"a\":\"\\ud83d\"}", "lone high surrogate");
    REFUSED("{\"a\":\"\\ude00\"}", "lone low surrogate");
    REFUSED("{\"a\":\"\\ud83d\\u0041\"}", "high surrogate then a non-surrogate");
    REFUSED("{\"a\":\"a\tb\"}", "raw control character in a string");
    REFUSED("{\"a\":9223372036854775808}", "integer above int64_t");
    REFUSED("{\"a\":99999999999999999999999}", "integer beyond 64 bits");
    REFUSED("{\"a\":1e400}", "real beyond double");
    REFUSED("{\"a\":01}", "leading zero");
    REFUSED("{\"a\":1.}", "'1.'");
    REFUSED("{\"a\":.5}", "'.5'");
    REFUSED("{\"a\":NaN}", "NaN");
    REFUSED("{\"a\":1,}", "trailing comma");
    REFUSED("{'a':1}", "single quotes");
    REFUSED("\xef\xbb\xbf{}", "byte order mark");
}

/* "{"x":" then depth - 1 nested arrays around 1, then "}". */
static size_t nested(char *p, size_t cap, int depth)
{
    size_t o = (size_t)snprintf(p, cap, "{\"x\":");
    for (int i = 1; i < depth && o + 2 < cap; i++)
        p[o++] = '[';
    p[o++] = '1';
    for (int i = 1; i < depth && o + 2 < cap; i++)
        p[o++] = ']';
    p[o++] = '}';
    return o;
}

static void test_depth(void)
{
    static char p[8192];
    json_error_t err;
    for (int max = 1; max <= 20; max += 19) {
        ok(accepts_n(p, nested(p, sizeof(p), max), max, &err), "%d levels with max_depth %d", max, max);
        ok(!accepts_n(p, nested(p, sizeof(p), max + 1), max, &err), "%d levels with max_depth %d", max + 1,
           max);
        is_int(json_error_code(&err), json_error_stack_overflow, "  the error says why");
    }
    ok(accepts_n("{\"a\":{},\"b\":[]}", 15, 2, &err), "empty containers count as a level (2 of 2)");
    ok(!accepts_n("{\"a\":{\"b\":[]}}", 14, 2, &err), "empty containers count as a level (3 of 2)");
    ok(!accepts_n(p, nested(p, sizeof(p), 3000), 5000, &err), "3000 levels: jansson's own limit holds");
}

static void test_errors(void)
{
    json_error_t err;
    ok(!accepts_n("[]", 2, 16, &err), "array refused");
    is_int(json_error_code(&err), json_error_wrong_type, "  as the wrong type");
    ok(strlen(err.text) > 0, "  with a message: %s", err.text);
    ok(!accepts_n("{\"a\":1,\"a\":1}", 13, 16, &err), "duplicate refused");
    is_int(json_error_code(&err), json_error_duplicate_key, "  as a duplicate");
    ok(!accepts_n("{\"a\":1} x", 9, 16, NULL), "why may be NULL");
}

/* Checks member index's text in object text. want NULL: no such member. */
static void member_is(const char *text, size_t index, const char *want)
{
    size_t n = strlen(text), vn = 0;
    json_error_t err;
    ok(accepts_n(text, n, 16, &err), "object accepted: %s", text);
    char *c = copy_of(text, n);
    const char *v = NULL;
    int r = json_member_text(c, n, index, &v, &vn);
    if (!want)
        is_int(r, -1, "  member %zu: none", index);
    else if (is_int(r, 0, "  member %zu found", index))
        is_mem(v, vn, want, strlen(want), "  member %zu is %s", index, want);
    free(c);
}

static void test_member_text(void)
{
    static const char obj[] =
        " { \"a\" : 1 , \"b\":{\"x\":[1,\"],:}\"]} ,\"c\":\"s\\\"}\\\\\", \"d\" :-1.5e3\n}";
    member_is(obj, 0, "1");
    member_is(obj, 1, "{\"x\":[1,\"],:}\"]}");
    member_is(obj, 2, "\"s\\\"}\\\\\"");
    member_is(obj, 3, "-1.5e3");
    member_is(obj, 4, NULL);
    member_is("{}", 0, NULL);
    member_is("{\"k:\":\"v,\",\"n\":[{},{\"a\":2}]}", 1, "[{},{\"a\":2}]");
    member_is("{\"\\\"\":0.25}", 0, "0.25");
}

int main(void)
{
    test_refused();
    test_depth();
    test_errors();
    test_member_text();
    return done_testing();
}
