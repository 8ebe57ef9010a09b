/* snapshot.h: the server's figures as one JSON object, cumulative (rates
 * are the reader's differences): GET /status and the dashboard's event
 * stream. */
#ifndef WSMILL_HTTP_SNAPSHOT_H
#define WSMILL_HTTP_SNAPSHOT_H
#include "../../common/hbuf.h"

struct worker;
struct collect;
struct hist_sample;

/* Appends the snapshot of c (collect_totals) and its sample s (the
 * charted figures: history.h) to b as one line of JSON, no newline. */
void snapshot_json(struct worker *w, const struct collect *c, const struct hist_sample *s, struct hbuf *b);

#endif
