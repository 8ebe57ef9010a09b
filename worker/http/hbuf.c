/* hbuf.c: see hbuf.h. */
#include "hbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

void hbuf_free(struct hbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
