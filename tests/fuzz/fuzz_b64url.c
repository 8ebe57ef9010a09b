/* fuzz_b64url.c: libFuzzer target for common/b64url.c. Checks that the
 * length-only pass (dst NULL) agrees with decoding, that the result fits
 * B64URL_DECODED_MAX, and the one-spelling rule: whatever decodes
 * re-encodes (OpenSSL, tests/unit/b64url.h) to exactly the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/b64url.h"
#include "tests/unit/b64url.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    unsigned char *dst = malloc(B64URL_DECODED_MAX(size));
    memcpy(src, data, size);
    long n = b64url_decode(src, size, dst);
    CHECK(b64url_decode(src, size, NULL) == n);
    if (n >= 0) {
        CHECK((size_t)n <= B64URL_DECODED_MAX(size));
        char *again = malloc(size + 4);
        CHECK(b64url(dst, (size_t)n, again) == size && memcmp(again, src, size) == 0);
        free(again);
    }
    free(dst);
    free(src);
    return 0;
}
