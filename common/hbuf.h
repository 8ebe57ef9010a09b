/* hbuf.h: a growable byte buffer (HTTP bodies, metrics text, JSON, a run of
 * WebSocket frames sent in one piece). Out of memory marks it failed
 * instead of aborting: the caller checks failed once at the end. */
#ifndef WSMILL_HBUF_H
#define WSMILL_HBUF_H
#include <stddef.h>

struct hbuf {
    char *p;
    size_t len, cap;
    int failed;
};

void __attribute__((format(printf, 2, 3))) hbuf_printf(struct hbuf *b, const char *fmt, ...);
/* Appends n bytes the caller fills at the returned address; NULL (and
 * failed set) when memory is short. */
void *hbuf_room(struct hbuf *b, size_t n);
/* Appends n bytes from s. */
void hbuf_put(struct hbuf *b, const void *s, size_t n);
void hbuf_free(struct hbuf *b);

#endif
