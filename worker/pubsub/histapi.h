/* histapi.h: GET /history/NAME and GET /channels/NAME on the publish API
 * (histapi.c): a channel's position, kept messages and subscribers. */
#ifndef WSMILL_HISTAPI_H
#define WSMILL_HISTAPI_H
#include <stddef.h>

struct worker;

/* 1 when a GET for this path (plen bytes, no query) is one of ours. */
int histapi_route(const char *url, size_t plen);
/* Answers GET url (with its query): returns the HTTP status with a JSON
 * body in *body (malloc'd, the caller frees), -1 when out of memory, or
 * 0 with broker = redis for a valid request: histapi_get_redis answers. */
int histapi_get(struct worker *w, const char *url, size_t url_len, char **body, size_t *blen);
/* An answer that came later: status and JSON body (the callee copies it). */
typedef void (*histapi_answer_fn)(void *ctx, int status, const char *body, size_t blen);
/* Reads what histapi_get returned 0 for from Redis; answer(ctx, ...) is
 * called once, from the event loop. Returns 0, or -1 when Redis is down
 * (answer is not called). */
int histapi_get_redis(struct worker *w, const char *url, size_t url_len, histapi_answer_fn answer, void *ctx);

#endif
