/* snapshot.h: the server's figures as one JSON object, cumulative (rates
 * are the reader's differences): GET /status and the dashboard's event
 * stream. */
#ifndef WSMILL_HTTP_SNAPSHOT_H
#define WSMILL_HTTP_SNAPSHOT_H
#include "hbuf.h"

struct worker;

/* Appends the snapshot (one line of JSON, no newline) to b. */
void snapshot_json(struct worker *w, struct hbuf *b);

#endif
