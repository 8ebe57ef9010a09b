/* capacity.h: how many connections this process model can hold under the
 * current limits, shared by the master (a warning at start) and `wsmill
 * check` (a full report with the command that fixes each shortfall). */
#ifndef WSMILL_CAPACITY_H
#define WSMILL_CAPACITY_H
#include <stdint.h>
#include <stdio.h>
#include "../common/config.h"

/* Descriptors a worker needs besides its connections: listening socket,
 * log, epoll, eventfd, stdio, the odd pipe. */
#define CAPACITY_RESERVE_FDS 32
/* Memory of one idle connection: the kernel's socket, file, dentry, inode
 * and epoll item; wsmill's user space (110 B measured at 1M, docs/tuning.md,
 * rounded up). */
#define CAPACITY_KERNEL_BYTES_PER_SOCKET 5120
#define CAPACITY_WSMILL_BYTES_PER_CONN   128
/* max_connections = auto leaves a quarter of RAM to everything else (and
 * takes no more than MemAvailable). */
#define CAPACITY_AUTO_MEMORY_SHARE 0.75

struct capacity {
    int workers;      /* resolved: auto = online CPUs, capped */
    int auto_workers; /* 1 when the config said auto */
    int64_t nofile_soft, nofile_hard;
    int64_t per_worker; /* connections one worker can hold */
    int64_t total;      /* workers x per_worker */
    int64_t max_connections;
    int64_t workers_needed; /* to reach max_connections at this limit */
    int64_t nofile_needed;  /* per-process limit to reach it with these workers */
};

/* The number of workers the config asks for (0 = one per online CPU),
 * between 1 and SHM_MAX_WORKERS. */
int capacity_workers(const struct config *cfg);

/* Raises RLIMIT_NOFILE: the hard limit towards what max_connections needs
 * (capped by fs.nr_open; needs CAP_SYS_RESOURCE), then soft to hard.
 * Returns 0, or -1 with the failed call named in err (the limit is then
 * as high as it could be made). */
int capacity_raise_nofile(const struct config *cfg, char *err, size_t errlen);

/* max_connections = auto: what nofile_soft descriptors for workers
 * workers and memory bytes of RAM allow, whichever is less (pure). */
int64_t capacity_auto(int workers, int64_t nofile_soft, int64_t memory);

/* When cfg says max_connections = auto, sets it to capacity_auto for the
 * current RLIMIT_NOFILE and MemTotal (capped so its share is at most
 * MemAvailable) and writes how it was derived into
 * why (else why = ""). Returns the resolved value. */
int64_t capacity_resolve(struct config *cfg, char *why, size_t whylen);

/* Fills cap from the config and the current RLIMIT_NOFILE. */
void capacity_compute(const struct config *cfg, struct capacity *cap);

/* Logs a warning naming the limit and the fix when max_connections
 * cannot be reached; returns 1 when it fits, 0 when it does not. */
int capacity_warn(const struct capacity *cap);

/* `wsmill check`: prints limits, sysctls, capacity and memory estimates
 * with a fix for each shortfall. Returns 0 when max_connections fits,
 * 2 when it cannot be reached. path names the config file in fixes. */
int capacity_report(const struct config *cfg, const char *path, FILE *out);

#endif
