/* tap.h: a tiny TAP producer for the unit tests.
 *
 * Each check prints "ok N - msg" or "not ok N - msg" plus a diagnostic
 * saying what was got and what was expected. done_testing() prints the
 * plan (when tap_plan was not called), "# passed N, failed M", and returns
 * the exit status: non-zero when any check failed or the plan was missed,
 * so a test binary fails under meson both by TAP and by exit code. */
#ifndef WSMILL_TESTS_TAP_H
#define WSMILL_TESTS_TAP_H
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_run, tap_failed, tap_planned = -1;

static inline void tap_plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
}

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

static inline int tap_vresult(int pass, const char *fmt, va_list ap)
{
    tap_run++;
    if (!pass)
        tap_failed++;
    printf("%sok %d - ", pass ? "" : "not ", tap_run);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    /* Flush per line so a crash (ASan abort) leaves the last passed check
     * visible in the log. */
    fflush(stdout);
    return pass;
}

static inline int ok(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int ok(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_vresult(pass, fmt, ap);
    va_end(ap);
    return r;
}

static inline int is_int(long long got, long long want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int is_int(long long got, long long want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_vresult(got == want, fmt, ap);
    va_end(ap);
    if (!r)
        diag("     got: %lld\n#     expected: %lld", got, want);
    return r;
}

static inline int is_u64(uint64_t got, uint64_t want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int is_u64(uint64_t got, uint64_t want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_vresult(got == want, fmt, ap);
    va_end(ap);
    if (!r)
        diag("     got: %" PRIu64 " (0x%" PRIx64 ")\n#     expected: %" PRIu64 " (0x%" PRIx64 ")", got, got,
             want, want);
    return r;
}

static inline int is_str(const char *got, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int is_str(const char *got, const char *want, const char *fmt, ...)
{
    va_list ap;
    int pass = got && want ? strcmp(got, want) == 0 : got == want;
    va_start(ap, fmt);
    int r = tap_vresult(pass, fmt, ap);
    va_end(ap);
    if (!r)
        diag("     got: '%s'\n#     expected: '%s'", got ? got : "(null)", want ? want : "(null)");
    return r;
}

static inline void tap_hex(const char *label, const void *p, size_t n)
{
    const unsigned char *b = p;
    printf("#     %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 64; i++)
        printf(" %02x", b[i]);
    printf("%s\n", n > 64 ? " ..." : "");
}

static inline int is_mem(const void *got, size_t got_len, const void *want, size_t want_len, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));
static inline int is_mem(const void *got, size_t got_len, const void *want, size_t want_len, const char *fmt,
                         ...)
{
    va_list ap;
    int pass = got_len == want_len && (got_len == 0 || memcmp(got, want, got_len) == 0);
    va_start(ap, fmt);
    int r = tap_vresult(pass, fmt, ap);
    va_end(ap);
    if (!r) {
        tap_hex("got", got, got_len);
        tap_hex("expected", want, want_len);
    }
    return r;
}

/* Prints the trailer and returns the process exit status. */
static inline int done_testing(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_run);
    else if (tap_planned != tap_run) {
        diag("planned %d tests but ran %d", tap_planned, tap_run);
        tap_failed++;
    }
    printf("# passed %d, failed %d\n", tap_run - tap_failed, tap_failed);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

#endif
