/* fuzz_pmd_inflate.c: libFuzzer target for common/pmd_codec.c's inflate.
 *
 * Byte 0 picks the output limit and how many of the following bytes form
 * the dictionary (the connection's saved window); the rest is a compressed
 * message. Whatever it is, the result must be one of the four and the
 * output no longer than the limit. Then the same bytes as plaintext must
 * survive a deflate (at a window picked by byte 0) and inflate round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/pmd_codec.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pmd_codec *z;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!z)
        z = pmd_codec_new(6);
    size_t max = (size_t)1 << (4 + (data[0] & 15)); /* 16 B to 512 KiB */
    size_t dict = size - 1 < (size_t)(data[0] >> 4) * 8 ? size - 1 : (size_t)(data[0] >> 4) * 8;
    const uint8_t *in = data + 1 + dict;
    size_t n = size - 1 - dict;
    const uint8_t *out;
    size_t ol = 0;
    int r = pmd_codec_inflate(z, data + 1, dict, in, n, max, &out, &ol);
    CHECK(r == PMD_INFLATE_OK || r == PMD_INFLATE_BAD || r == PMD_INFLATE_TOO_BIG || r == PMD_INFLATE_NOMEM);
    if (r == PMD_INFLATE_OK)
        CHECK(ol <= max);

    int bits = 8 + (data[0] & 7);
    uint8_t *comp = malloc(n + 8);
    size_t c = pmd_codec_deflate(z, bits, in, n, comp, n + 8);
    CHECK(c < n || c == 0);
    if (c) {
        CHECK(pmd_codec_inflate(z, NULL, 0, comp, c, n, &out, &ol) == PMD_INFLATE_OK);
        CHECK(ol == n && memcmp(out, in, n) == 0);
    }
    free(comp);
    pmd_codec_trim(z);
    return 0;
}
