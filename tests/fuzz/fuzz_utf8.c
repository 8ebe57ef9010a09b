/* fuzz_utf8.c: libFuzzer target for common/utf8.c.
 *
 * The first input byte picks a split point; the rest is the text. Whole
 * validation, feeding in two pieces at that split, and feeding one byte at
 * a time must agree with each other and with the table-driven oracle in
 * tests/unit/utf8_ref.h, and a REJECT must come at the first impossible
 * byte (fail-fast), not later. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/utf8.h"
#include "tests/unit/utf8_ref.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    size_t split = data[0] % (n + 1);

    uint32_t whole = utf8_feed(UTF8_ACCEPT, p, n);
    int valid = utf8_valid(p, n);
    uint32_t two = utf8_feed(utf8_feed(UTF8_ACCEPT, p, split), p + split, n - split);
    CHECK(two == whole);
    CHECK(valid == (whole == UTF8_ACCEPT));

    uint32_t st = UTF8_ACCEPT;
    long first_reject = -1;
    for (size_t i = 0; i < n; i++) {
        st = utf8_feed(st, p + i, 1);
        if (st == UTF8_REJECT && first_reject < 0)
            first_reject = (long)i;
    }
    CHECK(st == whole);

    long ref = utf8_ref(p, n);
    if (ref == -1)
        CHECK(whole == UTF8_ACCEPT);
    else if (ref == -2)
        CHECK(whole != UTF8_ACCEPT && whole != UTF8_REJECT);
    else
        CHECK(whole == UTF8_REJECT && first_reject == ref);
    return 0;
}
