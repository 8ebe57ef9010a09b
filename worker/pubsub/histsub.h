/* histsub.h: wsmill.v1 subscribers of /ch/ (histsub.c, docs/history.md):
 * positions, the envelope, resume. */
#ifndef WSMILL_HISTSUB_H
#define WSMILL_HISTSUB_H
#include <stddef.h>

struct conn;
struct worker;
struct ring_msg;

/* The /ch/ endpoint's check_query: `resume` at most once, and only with
 * wsmill.v1 offered. Returns 0 or 400 with *why. */
int histsub_check_query(struct worker *w, const char *query, size_t len, int offered, const char **why);
/* The /ch/ endpoint's open_protocol: opens c as a wsmill.v1 subscriber of
 * list with the query's resume positions: sends resp (the 101), each
 * channel's answer and catch-up, and joins the channels so that live
 * messages follow with no gap and no duplicate. A resume value it cannot
 * use gets an error frame and close 1008. Returns 0, or -1 when c was
 * dropped (out of memory). */
int histsub_open(struct conn *c, const char *list, size_t len, const char *query, size_t qlen,
                 const char *resp, size_t resp_len);
/* The fan-out hands each ring record here while wsmill.v1 sides exist: its
 * envelope frame joins the log of each listed channel's v1 side. */
void histsub_ring_record(struct worker *w, const struct ring_msg *m);

#endif
