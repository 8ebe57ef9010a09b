/* http_hdr.c: see http_hdr.h. */
#include "http_hdr.h"

#include <string.h>
#include <strings.h>

void http_hdr_init(struct http_hdr *h)
{
    h->field_len = 0;
    h->in_value = 0;
    h->cur = HTTP_HDR_OTHER;
}

void http_hdr_append(char *buf, size_t cap, size_t *len, const char *at, size_t n)
{
    if (*len < cap) {
        size_t room = cap - *len;
        memcpy(buf + *len, at, n < room ? n : room);
    }
    *len += n;
}

int http_hdr_field(struct http_hdr *h, const char *at, size_t n)
{
    int done = HTTP_HDR_NONE;
    if (h->in_value) {
        done = h->cur;
        h->in_value = 0;
        h->field_len = 0;
        h->cur = HTTP_HDR_OTHER;
    }
    http_hdr_append(h->field, HTTP_HDR_FIELD_MAX, &h->field_len, at, n);
    return done;
}

static int lookup(const struct http_hdr *h, const struct http_hdr_name *names, size_t count)
{
    if (h->field_len >= HTTP_HDR_FIELD_MAX)
        return HTTP_HDR_OTHER;
    for (size_t i = 0; i < count; i++)
        if (strlen(names[i].name) == h->field_len && !strncasecmp(names[i].name, h->field, h->field_len))
            return names[i].id;
    return HTTP_HDR_OTHER;
}

int http_hdr_value(struct http_hdr *h, const struct http_hdr_name *names, size_t count)
{
    if (!h->in_value) {
        h->cur = lookup(h, names, count);
        h->in_value = 1;
    }
    return h->cur;
}

int http_hdr_end(struct http_hdr *h)
{
    int done = h->in_value ? h->cur : HTTP_HDR_NONE;
    http_hdr_init(h);
    return done;
}

void http_hdr_trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t'))
        (*v)++, (*n)--;
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}
