/* load_stats: the shared-memory block between wsmill-load's parent and its
 * client processes.
 *
 * One anonymous MAP_SHARED mapping made before fork: a control block the
 * parent writes (the phase every child follows) and one slot per child that
 * only that child writes. Headline counters are read live by the parent for
 * progress lines and phase decisions, so they are accessed with relaxed
 * atomics; the detail (failure tables, histograms) is read only after the
 * child has exited. No pointers inside. */
#ifndef WSMILL_LOAD_STATS_H
#define WSMILL_LOAD_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "load_hist.h"

struct load_opts;

/* Single writer per field, so a plain read-modify-write is enough; the
 * store is atomic so the parent's concurrent read is never torn. */
#define LOAD_GET(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define LOAD_ADD(x, v) __atomic_store_n(&(x), (x) + (v), __ATOMIC_RELAXED)
#define LOAD_SUB(x, v) __atomic_store_n(&(x), (x) - (v), __ATOMIC_RELAXED)

enum load_phase {
    LOAD_PH_RAMP = 1, /* hold/echo/pub-sub: open the connections */
    LOAD_PH_RUN,      /* hold, subscribe: idle/receive; echo: messages; churn: cycles; publish */
    LOAD_PH_DRAIN,    /* publish/fanout: no new publishes; answers and deliveries still count */
    LOAD_PH_VERIFY,   /* hold --verify-sample: one echo on K connections */
    LOAD_PH_CLOSE,    /* close everything cleanly, then exit */
    LOAD_PH_DONE,     /* out of time: abort what is left and exit */
};

struct load_ctl {
    uint32_t phase;        /* enum load_phase; release-stored by the parent */
    uint32_t pub_id_base;  /* publisher ids of this run: base + global publisher index */
    uint64_t run_start_ns; /* CLOCK_MONOTONIC, valid from LOAD_PH_RUN */
    uint64_t run_end_ns;
    uint64_t hard_deadline_ns; /* children exit by this time whatever happens */
} __attribute__((aligned(64)));

/* Where in a connection's life a failure happened (a failure key's prefix). */
enum load_stage {
    LOAD_ST_CONNECT,
    LOAD_ST_HANDSHAKE,
    LOAD_ST_OPEN,
    LOAD_ST_ECHO,
    LOAD_ST_MESSAGE, /* subscribe: verification of a published message */
    LOAD_ST_PUBLISH, /* HTTP publishing: the answers */
    LOAD_ST_CLOSE,
    LOAD_ST_N
};

/* What went wrong, beyond an errno, a status code or a close code. */
enum load_cause {
    LOAD_C_TIMEOUT,
    LOAD_C_EOF,                /* the peer closed TCP at the wrong moment */
    LOAD_C_BAD_RESPONSE,       /* not HTTP/1.x */
    LOAD_C_RESPONSE_TOO_LARGE, /* no "\r\n\r\n" within the buffer */
    LOAD_C_BAD_UPGRADE,        /* Upgrade/Connection headers wrong */
    LOAD_C_BAD_ACCEPT,
    LOAD_C_FRAME_RSV, /* these four follow enum load_ws_frame_err */
    LOAD_C_FRAME_OPCODE,
    LOAD_C_FRAME_CONTROL,
    LOAD_C_FRAME_LENGTH,
    LOAD_C_FRAME_MASKED,    /* a server must not mask */
    LOAD_C_FRAGMENT,        /* continuation without a start, or vice versa */
    LOAD_C_CLOSE_PAYLOAD,   /* a 1-byte close payload */
    LOAD_C_MISMATCH,        /* echoed bytes differ from what was sent */
    LOAD_C_UNEXPECTED_DATA, /* data with nothing outstanding */
    LOAD_C_WRONG_CHANNEL,   /* a published message reached a subscriber of another channel */
    LOAD_C_ABORTED,         /* still in progress when time ran out */
    LOAD_C_TLS,             /* wss: the TLS handshake failed */
    LOAD_C_N
};

enum load_histo {
    LOAD_H_HANDSHAKE,
    LOAD_H_ECHO,
    LOAD_H_CYCLE,
    LOAD_H_DELAY,   /* publisher's stamp to a subscriber's receipt */
    LOAD_H_PUBLISH, /* HTTP publish: request handed to the socket to its answer */
    LOAD_H_N
};

#define LOAD_ERRNO_MAX  140
#define LOAD_STATUS_MAX 600
#define LOAD_CLOSE_MAX  5000

struct load_slot {
    /* live: read by the parent while the child runs */
    uint64_t attempts;  /* connects started */
    uint64_t connected; /* TCP connects completed */
    uint64_t opened;    /* handshakes completed (raw: connects) */
    uint64_t open_now;  /* gauge: open connections */
    uint64_t pending;   /* gauge: connecting or handshaking */
    uint64_t active;    /* gauge: connections in any state */
    uint64_t settled;   /* ramp: connections opened or failed before opening */
    uint64_t failed;    /* connections that failed, each counted once */
    uint64_t closed_clean;
    uint64_t msgs_sent, msgs_recv, bytes_sent, bytes_recv;
    uint64_t msgs_window, bytes_window; /* echoes received inside the run window */
    uint64_t cycles, cycles_window;     /* churn */
    uint64_t pings, pongs_recv;
    uint64_t verify_req, verify_ok, verify_failed;
    /* publishers */
    uint64_t pub_sent, pub_sent_window; /* messages handed to the socket (in the run window) */
    uint64_t pub_acked;                 /* HTTP: 2xx answers; ws: = sent */
    uint64_t pub_errors;                /* HTTP: other answers (by status in pub_status) */
    uint64_t pub_inflight;              /* gauge: HTTP requests without an answer */
    uint64_t pub_unanswered;            /* HTTP requests whose connection ended before the answer */
    uint64_t pub_echoes;                /* ws publishers: messages of their channel they got back */
    /* subscribers */
    uint64_t sub_recv, sub_recv_window, sub_bytes;
    uint64_t sub_gaps;       /* sequence numbers skipped ... */
    uint64_t sub_late_fills; /* ... of which arrived later after all (reordered) */
    uint64_t sub_dups, sub_reordered;
    uint64_t sub_untracked; /* from publishers past the per-subscriber table */
    uint64_t sub_inflated;  /* compressed deliveries inflated ... */
    uint64_t sub_memo_hits; /* ... and answered by the inflate memo (load_pmd.h) */
    uint32_t phase_ack;     /* last phase this child acted on */
    /* detail: read after the child exited */
    uint64_t cause[LOAD_ST_N][LOAD_C_N];
    uint64_t err[LOAD_ST_N][LOAD_ERRNO_MAX];
    uint64_t status[LOAD_STATUS_MAX];     /* handshake: non-101 status codes */
    uint64_t close_code[LOAD_CLOSE_MAX];  /* open: close codes the server sent first */
    uint64_t pub_status[LOAD_STATUS_MAX]; /* HTTP publishing: non-2xx answers by status */
    struct load_hist hist[LOAD_H_N];      /* ns */
    uint64_t sub_first_ns, sub_last_ns;   /* first and last delivery (min / max when merged) */
} __attribute__((aligned(64)));

/* Timing facts the parent gathered, for the report. */
struct load_run {
    unsigned procs;
    double elapsed; /* s, whole run */
    double ramp;    /* s, start to the run phase (hold/echo) */
    double window;  /* s, the run phase as measured */
    uint64_t open_at_run_start;
    uint64_t open_at_run_end;
    uint64_t peak_open;
    int interrupted;          /* a signal cut the run short */
    int killed;               /* children had to be killed at the hard deadline */
    double drain;             /* s, publish/fanout: the drain phase */
    double cpu_user, cpu_sys; /* s, the client processes' CPU time (getrusage of the children) */
    /* fanout: deliveries the publishes accepted should have made, over the
     * subscribers open when the drain ended (exact when none failed) */
    uint64_t expected;
    int expected_known;
};

/* Empties a slot (histograms need their min set). */
void load_stats_init(struct load_slot *s);
/* Adds every counter, table and histogram of src into dst. */
void load_stats_merge(struct load_slot *dst, const struct load_slot *src);
/* publish/subscribe/fanout: HTTP errors, unanswered publishes, gaps,
 * duplicates, reorderings and (fanout) missing deliveries; 0 = none. */
uint64_t load_stats_problems(const struct load_opts *o, const struct load_slot *t, const struct load_run *r);
/* Writes the one-line JSON report, newline included, for the merged totals t. */
void load_stats_json(FILE *out, const struct load_opts *o, const struct load_slot *t,
                     const struct load_run *r);

#endif
