/* fuzz_resume.c: libFuzzer target for common/resume.c.
 *
 * The input is a query string. When resume_find finds a value and
 * resume_parse accepts it, every position must hold a valid channel name
 * inside the decode buffer, a non-zero epoch and an offset below 2^63,
 * with no name twice; writing the positions back out and parsing again
 * must give the same positions. A refusal must come with a reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/handshake.h"
#include "common/resume.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

#define MAXPOS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *val;
    size_t vl;
    int f = resume_find((const char *)data, size, &val, &vl);
    CHECK(f >= -1 && f <= 1);
    if (f != 1)
        return 0;
    CHECK(val >= (const char *)data && val + vl <= (const char *)data + size);
    char *buf = malloc(vl + 1);
    struct resume_pos p[MAXPOS], q[MAXPOS];
    const char *why = NULL;
    int n = resume_parse(val, vl, buf, vl + 1, p, MAXPOS, &why);
    if (n < 0) {
        CHECK(n == -1 && why && *why);
        free(buf);
        return 0;
    }
    CHECK(n >= 1 && n <= MAXPOS);
    size_t cap = (size_t)n * 180 + 1, used = 0;
    char *out = malloc(cap);
    for (int i = 0; i < n; i++) {
        CHECK(p[i].name_off + p[i].name_len <= vl);
        CHECK(hs_channel_name_valid(buf + p[i].name_off, p[i].name_len));
        CHECK(p[i].epoch != 0 && p[i].offset < (1ULL << 63));
        for (int k = 0; k < i; k++)
            CHECK(p[k].name_len != p[i].name_len ||
                  memcmp(buf + p[k].name_off, buf + p[i].name_off, p[i].name_len));
        used += (size_t)snprintf(out + used, cap - used, "%s%.*s:%llx:%llu", i ? "," : "", (int)p[i].name_len,
                                 buf + p[i].name_off, (unsigned long long)p[i].epoch,
                                 (unsigned long long)p[i].offset);
    }
    char *buf2 = malloc(used + 1);
    CHECK(resume_parse(out, used, buf2, used + 1, q, MAXPOS, &why) == n);
    for (int i = 0; i < n; i++)
        CHECK(q[i].epoch == p[i].epoch && q[i].offset == p[i].offset && q[i].name_len == p[i].name_len &&
              !memcmp(buf2 + q[i].name_off, buf + p[i].name_off, p[i].name_len));
    free(buf2);
    free(out);
    free(buf);
    return 0;
}
