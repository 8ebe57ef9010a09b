/* hbuf.h: a growable text buffer for the bodies routes build (metrics,
 * JSON). Out of memory marks it failed instead of aborting. */
#ifndef WSMILL_HTTP_HBUF_H
#define WSMILL_HTTP_HBUF_H
#include <stddef.h>

struct hbuf {
    char *p;
    size_t len, cap;
    int failed;
};

void __attribute__((format(printf, 2, 3))) hbuf_printf(struct hbuf *b, const char *fmt, ...);
void hbuf_free(struct hbuf *b);

#endif
