/* plan.h: `wsmill check --plan N --memory SIZE --cores C`: what a host
 * that is not this one needs to hold N connections: workers,
 * max_connections, LimitNOFILE, every sysctl with its value and reason,
 * the established-hash size, memory (kernel, wsmill, and the worst case
 * max_backpressure allows) and keepalive traffic. Pure arithmetic over the
 * arguments and the config file: nothing of this host is read. */
#ifndef WSMILL_PLAN_H
#define WSMILL_PLAN_H
#include <stdint.h>
#include <stdio.h>
#include "../common/config.h"

struct plan_box {
    int64_t conns;  /* connections to hold */
    int64_t memory; /* bytes of RAM */
    int cores;
    int64_t nofile;    /* hard open-file limit that cannot be raised; 0 = raisable */
    int local_clients; /* the clients run on the same host */
};

struct plan_result {
    int workers;
    int64_t nofile;          /* LimitNOFILE per process */
    int64_t kernel_bytes;    /* sockets' kernel memory */
    int64_t wsmill_bytes;    /* wsmill user space */
    int64_t ehash_default;   /* buckets the kernel picks from memory */
    int64_t ehash_want;      /* buckets for the sockets */
    int64_t spare;           /* memory left once the idle connections are held */
    int64_t backpressure_ok; /* largest max_backpressure every connection could use at once */
    double pings_per_sec;    /* whole box; 0 when ping_interval is 0 */
};

/* SO_REUSEPORT spreads connections over the workers' sockets by a hash of
 * each connection: the counts are multinomial, so a worker gets its mean
 * give or take about sqrt(mean). Descriptors are planned for this many
 * standard deviations above the mean. */
#define PLAN_SPREAD_SIGMAS 4

/* Connections the fullest of workers workers should be ready for when
 * they share conns: the mean plus PLAN_SPREAD_SIGMAS standard deviations. */
int64_t plan_worker_share(int64_t conns, int workers);

/* Fills r for box with cfg's ping_interval and max_backpressure. */
void plan_compute(const struct plan_box *box, const struct config *cfg, struct plan_result *r);

/* Prints the plan as a copy-paste recipe. Returns 0 when it fits, 2 when
 * the memory does not hold the idle connections. */
int plan_print(const struct plan_box *box, const struct config *cfg, const char *path, FILE *out);

#endif
