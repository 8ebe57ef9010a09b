/* test_resume.c: common/resume.c, resume positions in the query string. */
#include <string.h>
#include "common/resume.h"
#include "tap.h"

static int parse(const char *s, struct resume_pos *p, char *buf, const char **why)
{
    *why = NULL;
    return resume_parse(s, strlen(s), buf, 4096, p, 16, why);
}

static void bad(const char *s, const char *word)
{
    struct resume_pos p[16];
    char buf[4096];
    const char *why;
    int n = parse(s, p, buf, &why);
    ok(n == -1 && why && strstr(why, word), "'%s' is refused: %s", s, why ? why : "(accepted)");
}

int main(void)
{
    struct resume_pos p[16];
    char buf[4096];
    const char *why;
    int n = parse("news:00c0ffee00c0ffee:41,a:b:1f:7", p, buf, &why);
    is_int(n, 2, "two positions");
    ok(p[0].name_len == 4 && !memcmp(buf + p[0].name_off, "news", 4) && p[0].epoch == 0x00c0ffee00c0ffeeULL &&
           p[0].offset == 41,
       "news at epoch 00c0ffee00c0ffee offset 41");
    ok(p[1].name_len == 3 && !memcmp(buf + p[1].name_off, "a:b", 3) && p[1].epoch == 0x1f && p[1].offset == 7,
       "a name with a colon splits at the last two");
    n = parse("news%3Affff%3A0%2Csport%3a1%3a18446744073709551", p, buf, &why);
    ok(n == 2 && p[0].epoch == 0xffff && p[0].offset == 0 && p[1].offset == 18446744073709551ULL,
       "%%-escaped separators (URLSearchParams) decode");
    is_int(parse("x:ffffffffffffffff:9223372036854775807", p, buf, &why), 1, "largest epoch and offset");
    bad("", "empty");
    bad("a:1:1,", "empty");
    bad("a:1", "NAME:EPOCH:OFFSET");
    bad("a", "NAME:EPOCH:OFFSET");
    bad(":1:1", "channel name");
    bad("a b:1:1", "channel name");
    bad("a:0:1", "epoch");
    bad("a:00000000000000001:1", "epoch");
    bad("a:xyz:1", "epoch");
    bad("a::1", "epoch");
    bad("a:1:", "offset");
    bad("a:1:-1", "offset");
    bad("a:1:9223372036854775808", "offset");
    bad("a:1:1x", "offset");
    bad("a:1:1,a:2:2", "twice");
    bad("a:1:%4", "escape");
    bad("a:1:%zz", "escape");
    char many[512] = "";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sc%d:1:1", i ? "," : "", i);
    bad(many, "more positions");
    const char *v;
    size_t vl;
    is_int(resume_find("token=x&resume=a:1:2", 20, &v, &vl), 1, "found after another parameter");
    ok(vl == 5 && !memcmp(v, "a:1:2", 5), "its value");
    is_int(resume_find("token=x", 7, &v, &vl), 0, "absent");
    is_int(resume_find("resume=a:1:2&resume=b:1:2", 25, &v, &vl), -1, "twice: refused");
    is_int(resume_find("xresume=a:1:2", 13, &v, &vl), 0, "only a whole parameter name counts");
    return done_testing();
}
