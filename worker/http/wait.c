/* wait.c: answers that come later (http.h, "wait.c"), in request order.
 *
 * hc's output is its buffer, then for each answer still to come (oldest
 * first) that answer and what was answered after it, synchronously, while
 * it was awaited:
 *     hc->out | w1.answer | w1.after | w2.answer | w2.after ...
 * http_out writes into the newest ticket's `after`; when the oldest
 * ticket is answered, its answer and its `after` move to hc->out, and so
 * on while the next one is answered too. Redis answers a batch of
 * publishes in one read: what they release is written once, before the
 * loop waits again (the `answers_due` prepare watcher), not once per answer,
 * so the client's next batch arrives, and goes to Redis, in one piece. */
#include <stdlib.h>

#include "../../common/hbuf.h"
#include "http.h"

struct http_wait {
    struct http_wait *next;
    struct http_conn *hc; /* NULL until bound, and once hc stopped waiting */
    int answered;
    int closing, http10; /* the request's, for the answer's head */
    struct hbuf answer;  /* its response, once it came */
    struct hbuf after;   /* responses to later requests, given meanwhile */
};

static void wait_free(struct http_wait *hw)
{
    hbuf_free(&hw->answer);
    hbuf_free(&hw->after);
    free(hw);
}

struct http_wait *http_wait_new(void)
{
    return calloc(1, sizeof(struct http_wait));
}

void http_conn_defer(struct http_conn *hc, struct http_wait *hw)
{
    const http_parser *p = &hc->req.parser;
    hw->hc = hc;
    hw->closing = hc->closing; /* complete() decided it before the route ran */
    hw->http10 = p->http_major == 1 && p->http_minor == 0;
    if (hc->waits_tail)
        hc->waits_tail->next = hw;
    else
        hc->waits = hw;
    hc->waits_tail = hw;
    hc->nwaits++;
}

struct hbuf *http_wait_out(struct http_conn *hc)
{
    return hc->waits_tail ? &hc->waits_tail->after : NULL;
}

/* Moves the answered tickets at the head of hc's queue to its output. */
static void release(struct http_conn *hc)
{
    while (hc->waits && hc->waits->answered) {
        struct http_wait *hw = hc->waits;
        hc->waits = hw->next;
        if (!hc->waits)
            hc->waits_tail = NULL;
        hc->nwaits--;
        if (hw->answer.failed || hw->after.failed)
            hc->broken = 1;
        http_conn_out(hc, hw->answer.p, hw->answer.len);
        http_conn_out(hc, hw->after.p, hw->after.len);
        wait_free(hw);
    }
}

void http_wait_answer(struct http_wait *hw, int status, const char *ctype, const char *extra,
                      const void *body, size_t blen)
{
    struct http_conn *hc = hw->hc;
    if (!hc) {
        wait_free(hw); /* never bound, or hc is gone */
        return;
    }
    char head[512];
    hbuf_put(&hw->answer, head,
             http_head(head, sizeof(head), status, ctype, extra, blen, hw->closing, hw->http10));
    hbuf_put(&hw->answer, body, blen);
    hw->answered = 1;
    shm_add(&hc->svc->w->slot->http_requests, 1);
    release(hc);
    hc->answer_came = 1;
    ev_prepare_start(hc->svc->w->loop, &hc->svc->answers_due);
}

static void answers_due_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    struct http_service *svc = p->data;
    ev_prepare_stop(loop, p);
    struct http_conn *next;
    for (struct http_conn *hc = svc->conns; hc; hc = next) {
        next = hc->next; /* resuming may close hc */
        if (hc->answer_came) {
            hc->answer_came = 0;
            http_conn_resume(hc);
        }
    }
}

void http_wait_init(struct http_service *svc)
{
    ev_prepare_init(&svc->answers_due, answers_due_cb);
    svc->answers_due.data = svc;
}

void http_wait_forget(struct http_conn *hc)
{
    for (struct http_wait *hw = hc->waits, *next; hw; hw = next) {
        next = hw->next;
        hw->hc = NULL;
        hw->next = NULL;
        if (hw->answered)
            wait_free(hw); /* only an unanswered one is still owed a call */
    }
    hc->waits = hc->waits_tail = NULL;
    hc->nwaits = 0;
}
