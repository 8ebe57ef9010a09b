/* histsub.h: wsmill.v1 subscribers of /ch/ (histsub.c, docs/history.md):
 * positions, the envelope, resume. */
#ifndef WSMILL_HISTSUB_H
#define WSMILL_HISTSUB_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../common/hbuf.h"

struct conn;
struct worker;
struct ring_msg;
struct shbuf;
struct resume_pos;

#define HISTSUB_LINE_MAX (128 + 24) /* "NAME OFFSET\n" */

/* Helpers histsub.c shares with histsub_redis.c, over a buffer of whole
 * frames (answers and catch-up, sent in one piece). */
void histsub_buf_frame(struct hbuf *b, unsigned opcode, const char *line, size_t ll,
                       const struct iovec *piece, int npieces);
/* The {"type":"subscribed",...} answer for a channel; r is an enum
 * history_result (used when asked). */
void histsub_answer(struct hbuf *b, const char *name, size_t nl, uint64_t epoch, uint64_t top, int asked,
                    int r);
size_t histsub_env_line(char *line, const char *name, size_t nl, uint64_t off);
/* A shared v1 frame for (name, off) with room for len payload bytes. */
struct shbuf *histsub_env_frame(unsigned opcode, const char *name, size_t nl, uint64_t off, size_t len,
                                uint8_t **payload);

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

/* histsub_redis.c: the same with broker = redis, where positions live in
 * Redis and the answer to a resume comes back later. */
struct channel;
/* Like histsub_open, sending the 101 at once and the answers when Redis
 * has answered and the live stream has caught up with it. */
int histsub_redis_open(struct conn *c, const char *list, size_t len, const char *rbuf,
                       const struct resume_pos *pos, const int *which, const char *resp, size_t resp_len);
/* Redis's marker for the open numbered token came back on the subscribe
 * connection: everything published before its read has arrived. */
void histsub_redis_synced(struct worker *w, uint64_t token);
/* A message from Redis for via's v1 side, at offset. */
void histsub_redis_frame(struct worker *w, const char *via, size_t via_len, uint64_t offset, unsigned opcode,
                         const uint8_t *payload, size_t len);
/* A SUBSCRIBE was confirmed: opens waiting for it go on. */
void histsub_redis_subscribed(struct worker *w);
/* The connection of a waiting open went away. */
void histsub_redis_cancel(struct worker *w, void *pending);

#endif
