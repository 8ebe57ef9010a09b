/* alloc.c: aborting allocation wrappers for start-up and control paths. */
#include "alloc.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* jemalloc's control interface, weak: NULL where jemalloc is not linked
 * (sanitizer builds, unit tests). 4096 is MALLCTL_ARENAS_ALL. */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));
#define PURGE_ALL_ARENAS "arena.4096.purge"

static void oom(size_t n)
{
    char msg[96];
    int len = snprintf(msg, sizeof(msg), "wsmill: out of memory allocating %zu bytes\n", n);
    if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0) {
        /* nothing left to report it with */
    }
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* jemalloc reads this at start-up. Handshakes come in bursts (a reconnect
 * storm allocates a request parser per pending client); returning the
 * freed pages within a couple of seconds keeps RSS tracking what the
 * held connections really use. Ignored when jemalloc is not linked. */
const char *malloc_conf = "dirty_decay_ms:2000,muzzy_decay_ms:0";

void alloc_release_free(void)
{
    if (mallctl)
        mallctl(PURGE_ALL_ARENAS, NULL, NULL, NULL, 0);
    else
        malloc_trim(0);
}
