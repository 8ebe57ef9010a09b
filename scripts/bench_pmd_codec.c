/* bench_pmd_codec.c: per-message CPU cost of common/pmd_codec.c on chat-like
 * JSON (docs/deflate.md). Not part of the build; run it alone:
 *
 *   gcc -O2 -I. scripts/bench_pmd_codec.c common/pmd_codec.c common/alloc.c common/log.c -lz \
 *       -o /tmp/bench_pmd_codec && flock /tmp/wsmill-bench.lock /tmp/bench_pmd_codec [SIZE] [LEVEL]
 *
 * Compresses N messages as the server does (each on its own), inflates them
 * without context, then inflates messages of a client that keeps its
 * context through a 1 KiB window, priming the inflater with it each time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "common/pmd_codec.h"

#define N 2000

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Message i: JSON chat records whose words depend on i. */
static void message(uint8_t *out, size_t size, unsigned i)
{
    static const char *const w[] = {"hello", "world", "price",  "update", "room",  "alice",
                                    "bob",   "carol", "typing", "online", "ready", "lobby"};
    size_t len = 0;
    for (unsigned r = 0; len < size; r++) {
        char rec[128];
        unsigned h = (i * 2654435761u) ^ (r * 40503u);
        int n =
            snprintf(rec, sizeof(rec), "{\"seq\":%u,\"user\":\"%s%u\",\"text\":\"%s %s %s\"},", i * 100 + r,
                     w[h % 12], h % 997, w[(h >> 4) % 12], w[(h >> 8) % 12], w[(h >> 12) % 12]);
        size_t take = (size_t)n < size - len ? (size_t)n : size - len;
        memcpy(out + len, rec, take);
        len += take;
    }
}

int main(int argc, char **argv)
{
    size_t size = argc > 1 ? (size_t)atoi(argv[1]) : 512, cap = size + 64;
    int level = argc > 2 ? atoi(argv[2]) : 1;
    uint8_t *plain = malloc(N * size), *z = malloc(N * cap), *cz = malloc(N * cap), win[1024];
    size_t zl[N], czl[N], fill = 0, zsum = 0, czsum = 0, ol;
    const uint8_t *o;
    struct pmd_codec *c = pmd_codec_new(level);
    for (unsigned i = 0; i < N; i++)
        message(plain + i * size, size, i);
    double t = cpu_s();
    for (int r = 0; r < 10; r++)
        for (unsigned i = 0; i < N; i++)
            zl[i] = pmd_codec_deflate(c, 15, plain + i * size, size, z + i * cap, cap);
    double t_def = (cpu_s() - t) / (10.0 * N);
    t = cpu_s();
    for (int r = 0; r < 10; r++)
        for (unsigned i = 0; i < N; i++)
            if (zl[i] && pmd_codec_inflate(c, NULL, 0, z + i * cap, zl[i], 1 << 20, &o, &ol) != 0)
                return 1;
    double t_inf = (cpu_s() - t) / (10.0 * N);
    z_stream d = {0};
    deflateInit2(&d, 6, Z_DEFLATED, -10, 8, Z_DEFAULT_STRATEGY);
    for (unsigned i = 0; i < N; i++) {
        d.next_in = plain + i * size;
        d.avail_in = (uInt)size;
        d.next_out = cz + i * cap;
        d.avail_out = (uInt)cap;
        deflate(&d, Z_SYNC_FLUSH);
        czl[i] = cap - d.avail_out - 4;
    }
    t = cpu_s();
    for (unsigned i = 0; i < N; i++) {
        if (pmd_codec_inflate(c, win, fill, cz + i * cap, czl[i], 1 << 20, &o, &ol) != 0 || ol != size)
            return 1;
        pmd_window_push(win, sizeof(win), &fill, o, ol);
    }
    double t_win = (cpu_s() - t) / N;
    for (unsigned i = 0; i < N; i++) {
        zsum += zl[i] ? zl[i] : size;
        czsum += czl[i];
    }
    printf("{\"size\":%zu,\"level\":%d,\"deflate_us\":%.2f,\"inflate_us\":%.2f,\"inflate_window_us\":%.2f,"
           "\"server_ratio\":%.3f,\"client_takeover_ratio\":%.3f}\n",
           size, level, t_def * 1e6, t_inf * 1e6, t_win * 1e6, (double)zsum / (N * size),
           (double)czsum / (N * size));
    pmd_codec_free(c);
    return 0;
}
