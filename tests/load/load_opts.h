/* load_opts: wsmill-load's command line, parsed and validated once in the
 * parent; children get a read-only copy through fork. */
#ifndef WSMILL_LOAD_OPTS_H
#define WSMILL_LOAD_OPTS_H

#include <netinet/in.h>
#include <stdint.h>

#define LOAD_MAX_CPUS     256
#define LOAD_MAX_CHANNELS 1000000
#define LOAD_STAMP_LEN    24 /* publish payloads: stamp, sequence, publisher, channel */

enum load_mode { LOAD_HOLD, LOAD_ECHO, LOAD_CHURN, LOAD_SUBSCRIBE, LOAD_PUBLISH, LOAD_FANOUT };

/* One parsed --url / --pub-url. */
struct load_target {
    char url[512];
    char host[272]; /* Host header value: "host:port" */
    char path[256];
    uint32_t name_end; /* where --channels puts "-K": the end of the path before any '?' */
    struct sockaddr_in dst;
    int http; /* http:// (the publish API) rather than ws:// */
    int tls;  /* wss:// */
};

struct load_opts {
    enum load_mode mode;
    struct load_target target; /* --url: what the main processes connect to */
    struct load_target pub;    /* publishers: publish --url, fanout --pub-url (default --url) */
    const char *origin;        /* NULL: no Origin header */
    uint64_t conns;         /* hold/echo/subscribe/fanout: connections; churn: loops; publish: publishers */
    double rate;            /* connects/s over all processes; 0 = unlimited */
    double duration;        /* s: hold time, or the measured window */
    double timeout;         /* s: bound on the ramp, verify and close phases */
    double conn_timeout;    /* s: per connect+handshake, per echo, per close, per publish answer */
    uint64_t size;          /* message payload bytes */
    uint32_t depth;         /* echo: messages in flight per connection */
    uint64_t verify_sample; /* hold: connections that echo once before closing */
    int verify_first;       /* hold: ... once the hold begins instead */
    uint32_t procs;         /* processes for conns */
    uint32_t max_pending;   /* per process: unfinished handshakes (and closes) */
    uint32_t src_base;      /* first source address, host byte order */
    uint64_t per_src;       /* connections per source address */
    int raw;                /* plain TCP (floor server echo mode) */
    int deflate;            /* offer permessage-deflate (2: letting the server keep our window);
                             * compress echo messages, inflate RSV1 ones */
    int json;               /* echo: JSON-like text messages instead of the binary pattern */
    int recv_spin;          /* subscribers: poll epoll without sleeping during the run */
    int v1;                 /* subscribers offer wsmill.v1 and strip each message's "NAME OFFSET\n" */
    int handshake_only;     /* churn/hold: no echo, no close frame */
    int quiet;              /* no progress lines */
    int ncpus;
    int cpus[LOAD_MAX_CPUS];
    /* publish / subscribe / fanout */
    double pub_rate;    /* messages/s over all publishers */
    uint64_t channels;  /* 0: the URL's channel as given; K: NAME-0 .. NAME-(K-1) */
    uint64_t pub_conns; /* publisher connections (publish: = conns) */
    uint32_t pub_procs; /* fanout: processes for the publishers (1); publish: 0 (they are the procs) */
    uint32_t pipeline;  /* HTTP publishing: requests in flight per connection */
    double drain;       /* s: after the run, bound on waiting for answers and deliveries */
    const char *token;  /* publish API: Authorization: Bearer TOKEN */
    int pub_ncpus;      /* fanout --pub-cpu; 0 = use --cpu */
    int pub_cpus[LOAD_MAX_CPUS];
};

/* Fills o from argv. Returns 0, 1 when --help was printed, or -1 after
 * printing what is wrong (the caller exits 2). */
int load_opts_parse(struct load_opts *o, int argc, char **argv);

const char *load_opts_mode_name(enum load_mode mode);

/* 1 for the modes that publish or subscribe. */
static inline int load_opts_pubsub(const struct load_opts *o)
{
    return o->mode == LOAD_SUBSCRIBE || o->mode == LOAD_PUBLISH || o->mode == LOAD_FANOUT;
}

/* Channels the run uses (1 without --channels). */
static inline uint64_t load_opts_nchan(const struct load_opts *o)
{
    return o->channels ? o->channels : 1;
}

/* Writes t's path for channel k into out (the path as given without
 * --channels, else NAME-k with any query kept after it). Returns its length,
 * or -1 when it does not fit in cap. */
int load_opts_chan_path(const struct load_opts *o, const struct load_target *t, uint64_t k, char *out,
                        size_t cap);

#endif
