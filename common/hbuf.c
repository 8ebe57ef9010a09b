/* hbuf.c: see hbuf.h. */
#include "hbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hbuf_printf(struct hbuf *b, const char *fmt, ...)
{
    while (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        int n = b->cap ? vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap) : -2;
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (n > 0 ? (size_t)n : 0) + 4096;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

void *hbuf_room(struct hbuf *b, size_t n)
{
    if (b->failed)
        return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    void *at = b->p + b->len;
    b->len += n;
    return at;
}

void hbuf_put(struct hbuf *b, const void *s, size_t n)
{
    void *at = hbuf_room(b, n);
    if (at && n)
        memcpy(at, s, n);
}

void hbuf_free(struct hbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
