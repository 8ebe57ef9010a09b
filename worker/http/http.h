/* http.h: the worker's small HTTP/1.1 service on publish_listen, shared by
 * its files: the listener (listener.c), connections (conn.c), answers
 * (response.c), the route table (route.c), tokens (auth.c), event
 * streams (stream.c) and one file per route (route_*.c).
 *
 * HTTP connections are few (backends, balancers, an operator's browser),
 * so unlike struct conn each one is malloc'd with its own watchers.
 * Requests are answered in arrival order as each completes; answers
 * collect in the connection's output buffer and leave in one write at the
 * end of the wakeup, so a pipelined batch is answered in one send. */
#ifndef WSMILL_HTTP_SERVICE_H
#define WSMILL_HTTP_SERVICE_H
#include <ev.h>
#include <stddef.h>

#include "../../common/hbuf.h"
#include "../worker-t.h"
#include "history.h"
#include "request.h"

enum http_conn_state {
    HC_IDLE,    /* between requests */
    HC_REQUEST, /* a request has begun and is not complete */
    HC_LINGER,  /* answered with Connection: close: FIN sent, discard input */
    HC_STREAM,  /* an event stream (stream.c): we write, input is dropped */
};

/* Answers that come later (wait.c) a connection keeps at most; past it,
 * input waits (held) until the oldest is answered. */
#define HTTP_WAITS_MAX 64

struct http_service {
    struct worker *w;
    int fd;
    ev_io accept_io;
    ev_timer accept_pause;
    ev_timer tick;          /* once a second: history sample, event streams (stream.c) */
    ev_prepare answers_due; /* before the loop waits: connections an answer came for (wait.c) */
    struct http_conn *conns;
    int nstreams;
    struct history history;
    int stopped;
    char name[CONFIG_STR_MAX];
};

struct http_route;

struct http_conn {
    struct http_conn *prev, *next;
    struct http_service *svc;
    ev_io io;
    ev_timer timer;
    uint8_t state;                  /* enum http_conn_state */
    uint8_t closing;                /* no more requests: close once the output is flushed */
    uint8_t peer_eof;               /* the peer sent FIN */
    uint8_t broken;                 /* out of memory or a write error: close now */
    uint8_t answered;               /* at least one request was answered */
    uint8_t answer_came;            /* an answer that waited came: write it (wait.c) */
    const struct http_route *route; /* of the request in progress */
    int status;                     /* refused at the headers, answered when complete */
    const char *why;
    struct hbuf out; /* what is to be written; out_off of it is */
    size_t out_off;
    struct http_wait *waits, *waits_tail; /* answers to come, oldest first (wait.c) */
    int nwaits;
    uint8_t *held; /* input read while HTTP_WAITS_MAX answers were to come */
    size_t held_len;
    struct http_request req;
};

enum route_match {
    ROUTE_EXACT,  /* the path itself */
    ROUTE_PREFIX, /* path + anything ("/pub/" + channels) */
    ROUTE_FOLDER, /* the path, or path + "/" + anything */
};

/* One route: a path and what to do when the headers and then the whole
 * request are in. */
struct http_route {
    const char *path;
    int match;         /* enum route_match */
    const char *allow; /* the method it serves, for 405's Allow */
    /* Headers are in: 0 to take the request (clear hc->req.discard and set
     * hc->req.limit to keep a body), or the status to refuse with (*why). */
    int (*head)(struct http_conn *hc, const char **why);
    /* Complete and not refused: answer (or start a stream). */
    void (*done)(struct http_conn *hc);
};

/* conn.c */
void http_conn_new(struct http_service *svc, int fd);
/* Closes and frees hc; callers touch it no more. */
void http_conn_close(struct http_conn *hc);
/* Drain: a silent new connection gets handshake_timeout for its first
 * request (answered with Connection: close). */
void http_conn_await_first(struct http_conn *hc);
/* Takes hc's input again after an answer came (feeds what was held). */
void http_conn_resume(struct http_conn *hc);
/* Queues raw bytes on hc's output (response.c's http_out goes through the
 * answers still to come, wait.c). */
void http_conn_out(struct http_conn *hc, const void *data, size_t n);

/* wait.c: answers that come later (a Redis round trip). A route's done()
 * makes a ticket (NULL when out of memory), hands it to the asynchronous
 * step and, once that step is under way, binds it to hc. hc goes on
 * reading and answering the requests pipelined behind it; their answers
 * wait behind the ticket's, so answers leave in request order. A ticket
 * outlives hc: when hc closes, or gives up after handshake_timeout (504),
 * the answer is dropped. An answer never comes before the binding (Redis's
 * come from the event loop). */
void http_wait_init(struct http_service *svc);
struct http_wait *http_wait_new(void);
void http_conn_defer(struct http_conn *hc, struct http_wait *hw);
/* Answers the request behind hw (as http_respond) and frees hw; an unbound
 * ticket (the step did not start) is only freed. */
void http_wait_answer(struct http_wait *hw, int status, const char *ctype, const char *extra,
                      const void *body, size_t blen);
/* hc stops waiting: every ticket's answer will be dropped. */
void http_wait_forget(struct http_conn *hc);
/* Where hc's next output goes while answers are to come; NULL: hc's own. */
struct hbuf *http_wait_out(struct http_conn *hc);

/* After a wakeup: write, then pick what to wait for. -1 when hc was closed. */
int http_conn_settle(struct http_conn *hc);

/* response.c */
/* Appends raw bytes to hc's output (marks hc broken when out of memory). */
void http_out(struct http_conn *hc, const void *data, size_t n);
/* Queues a whole response: status, Content-Type, extra header lines (each
 * ending in \r\n, or ""), Content-Length and body. */
void http_respond(struct http_conn *hc, int status, const char *ctype, const char *extra, const void *body,
                  size_t blen);
/* A response's head (status line and headers) into buf; its length. */
size_t http_head(char *buf, size_t cap, int status, const char *ctype, const char *extra, size_t blen,
                 int closing, int http10);
/* Counts and answers {"error": why} (why: our own text, nothing to
 * escape); then_close ends the connection after it. */
void http_refuse(struct http_conn *hc, int status, const char *why, int then_close);

/* route.c */
/* The headers are in: picks the route and checks what can be checked. */
void http_route_head(struct http_conn *hc);
/* The request is complete: answers it. */
void http_route_done(struct http_conn *hc);

/* auth.c */
/* 1 when token is empty, or the request carries it as Authorization:
 * Bearer (or, with query set, as ?token=, for browsers). */
int auth_token_ok(const struct http_request *r, const char *token, int query);
/* Why auth_token_ok refused r, for a 401's body. */
const char *auth_why(const struct http_request *r, const char *key);
/* The head of a GET route that shows the server's figures: 405 for other
 * methods, 401 without metrics_token (when set). */
int auth_metrics_head(struct http_conn *hc, const char **why);

/* stream.c: the one-second tick (history, Server-Sent Events). */
void stream_init(struct http_service *svc);
void stream_stop(struct http_service *svc);
/* Answers hc with an event stream: the history, then a snapshot a second. */
void stream_start(struct http_conn *hc);
void stream_end(struct http_conn *hc);

/* The routes (route_*.c) */
extern const struct http_route route_publish, route_metrics, route_health, route_status, route_dashboard;
extern const struct http_route route_history, route_channels; /* route_history.c */

#endif
