/* load_opts: wsmill-load's command line, parsed and validated once in the
 * parent; children get a read-only copy through fork. */
#ifndef WSMILL_LOAD_OPTS_H
#define WSMILL_LOAD_OPTS_H

#include <netinet/in.h>
#include <stdint.h>

#define LOAD_MAX_CPUS 256

enum load_mode { LOAD_HOLD, LOAD_ECHO, LOAD_CHURN };

struct load_opts {
    enum load_mode mode;
    char url[512];
    char host[272]; /* Host header value: "host:port" */
    char path[256];
    struct sockaddr_in dst;
    const char *origin;     /* NULL: no Origin header */
    uint64_t conns;         /* hold/echo: connections; churn: concurrent loops */
    double rate;            /* connects/s over all processes; 0 = unlimited */
    double duration;        /* s: hold time, or the measured window */
    double timeout;         /* s: bound on the ramp, verify and close phases */
    double conn_timeout;    /* s: per connect+handshake, per echo, per close */
    uint64_t size;          /* message payload bytes */
    uint32_t depth;         /* echo: messages in flight per connection */
    uint64_t verify_sample; /* hold: connections that echo once before closing */
    uint32_t procs;
    uint32_t max_pending; /* per process: unfinished handshakes (and closes) */
    uint32_t src_base;    /* first source address, host byte order */
    uint64_t per_src;     /* connections per source address */
    int raw;              /* plain TCP (floor server echo mode) */
    int handshake_only;   /* churn/hold: no echo, no close frame */
    int quiet;            /* no progress lines */
    int ncpus;
    int cpus[LOAD_MAX_CPUS];
};

/* Fills o from argv. Returns 0, 1 when --help was printed, or -1 after
 * printing what is wrong (the caller exits 2). */
int load_opts_parse(struct load_opts *o, int argc, char **argv);

const char *load_opts_mode_name(enum load_mode mode);

#endif
