/* fuzz_config.c: libFuzzer target for common/config.c.
 *
 * 1. config_set: the input up to the first '=' is the key, the rest the
 *    value. An accepted value must format and set back to the same text; a
 *    refused one leaves a NUL-terminated reason in an error buffer whose
 *    size comes from the input (heap, so ASan sees any overrun).
 * 2. config_load: the whole input as a file (a memfd, so no disk I/O per
 *    run). Success means config_validate agrees; failure means the error
 *    starts with the path. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create; meson passes it already */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "common/config.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int memfd = -1;
static char memfd_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    memfd = memfd_create("fuzz_config", 0);
    CHECK(memfd >= 0);
    snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
    return 0;
}

static void fuzz_set(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *eq = strchr(buf, '=');
    const char *key = buf, *value = "";
    if (eq) {
        *eq = 0;
        value = eq + 1;
    }
    size_t errlen = size ? 1 + data[0] % 200 : 1;
    char *err = malloc(errlen);
    struct config c, d;
    config_defaults(&c);
    config_defaults(&d);
    int r = config_set(&c, key, value, err, errlen);
    CHECK(r == 0 || r == -1);
    if (r == -1) {
        CHECK(memchr(err, 0, errlen) != NULL);
    } else {
        const struct config_key *k = config_key_find(key);
        CHECK(k != NULL);
        char f1[CONFIG_LIST_MAX + 8], f2[CONFIG_LIST_MAX + 8], e2[256];
        config_format(&c, k, f1, sizeof(f1));
        CHECK(config_set(&d, key, f1, e2, sizeof(e2)) == 0);
        config_format(&d, k, f2, sizeof(f2));
        CHECK(strcmp(f1, f2) == 0);
        char diff[1024];
        CHECK(config_diff(&c, &d, 0, diff, sizeof(diff)) == 0);
    }
    free(err);
    free(buf);
}

static void fuzz_load(const uint8_t *data, size_t size)
{
    CHECK(ftruncate(memfd, 0) == 0);
    CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);
    struct config c;
    char err[512], why[512];
    int r = config_load(&c, memfd_path, err, sizeof(err));
    CHECK(r == 0 || r == -1);
    if (r == 0)
        CHECK(config_validate(&c, why, sizeof(why)) == 0);
    else
        CHECK(strncmp(err, memfd_path, strlen(memfd_path)) == 0 && err[strlen(memfd_path)] == ':');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_set(data, size);
    fuzz_load(data, size);
    return 0;
}
