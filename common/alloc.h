/* alloc.h: the one allocation header. jemalloc is linked in and replaces
 * malloc for the whole process (release builds); sanitizer builds use the
 * sanitizer's allocator instead.
 * x* functions are for start-up and control paths: they abort with a message
 * on out-of-memory. Connection paths call malloc() directly and close only
 * that connection when it fails. */
#ifndef WSMILL_ALLOC_H
#define WSMILL_ALLOC_H
#include <stddef.h>
#include <stdlib.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Gives the allocator's free pages back to the kernel now (jemalloc: purge
 * every arena; otherwise glibc's malloc_trim). jemalloc returns freed
 * memory only as a side effect of later allocations, so a worker that goes
 * quiet after a burst (a reconnect storm's request parsers) would keep it
 * resident; the worker calls this when a burst ends. */
void alloc_release_free(void);

/* jemalloc options (read by jemalloc itself; see alloc.c). */
extern const char *malloc_conf;

#endif
