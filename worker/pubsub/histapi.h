/* histapi.h: GET /history/NAME and GET /channels/NAME on the publish API
 * (histapi.c): a channel's position, kept messages and subscribers. */
#ifndef WSMILL_HISTAPI_H
#define WSMILL_HISTAPI_H
#include <stddef.h>

struct worker;

/* 1 when a GET for this path (plen bytes, no query) is one of ours. */
int histapi_route(const char *url, size_t plen);
/* Answers GET url (with its query): returns the HTTP status with a JSON
 * body in *body (malloc'd, the caller frees), or -1 when out of memory. */
int histapi_get(struct worker *w, const char *url, size_t url_len, char **body, size_t *blen);

#endif
