/* fuzz_json.c: libFuzzer target for common/json.c.
 *
 * Input: byte 0 = max_depth (0-31), then the JSON text. Checks: a refusal
 * says why; an accepted text is an object no deeper than max_depth, and
 * for every member, json_member_text's span parses on its own (jansson,
 * any value) to a value equal to the member's, and there is no member
 * after the last. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/json.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int depth_of(json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    int d = 0;
    if (json_is_array(v))
        json_array_foreach(v, i, x)
        {
            int c = depth_of(x);
            d = c > d ? c : d;
        }
    else if (json_is_object(v))
        json_object_foreach(v, k, x)
        {
            int c = depth_of(x);
            d = c > d ? c : d;
        }
    else
        return 0;
    return d + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int max_depth = data[0] & 31;
    size_t n = size - 1;
    char *text = malloc(n ? n : 1); /* exact size: ASan sees overreads */
    memcpy(text, data + 1, n);
    json_error_t why;
    json_t *o = json_read_object(text, n, max_depth, &why);
    if (!o) {
        CHECK(why.text[0] != '\0');
        free(text);
        return 0;
    }
    CHECK(json_is_object(o) && depth_of(o) <= max_depth);
    size_t index = 0, vn;
    const char *k, *v;
    json_t *x;
    json_object_foreach(o, k, x)
    {
        CHECK(json_member_text(text, n, index, &v, &vn) == 0);
        CHECK(v >= text && v + vn <= text + n);
        json_t *alone = json_loadb(v, vn, JSON_DECODE_ANY, NULL);
        CHECK(alone && json_equal(alone, x));
        json_decref(alone);
        index++;
    }
    CHECK(json_member_text(text, n, index, &v, &vn) == -1);
    json_decref(o);
    free(text);
    return 0;
}
