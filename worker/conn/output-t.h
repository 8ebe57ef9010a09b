/* output-t.h: the types of the write path (output.c): a connection's queue
 * of what its socket refused, and the worker's cork buffer. */
#ifndef WSMILL_OUTPUT_T_H
#define WSMILL_OUTPUT_T_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct conn;

struct chunk {
    struct chunk *next;
    uint32_t len, off;
    uint8_t *ext; /* external payload, or NULL */
    uint32_t ext_len;
    uint8_t shared; /* ext is a struct shbuf's data (unref), else malloc'd (free) */
    uint8_t data[]; /* inline bytes, sent before ext */
};

struct outq {
    struct chunk *head, *tail;
    size_t bytes;
};

#define CORK_BYTES (16 * 1024) /* small frames are copied into one buffer... */
#define CORK_IOV   64          /* ...large payloads ride by reference in the iovec */

/* Everything one readable event produces for one connection (replies,
 * pongs, a close) is gathered here and leaves in one send when the event's
 * input is handled (uWebSockets calls this corking). One per worker, so an
 * idle connection still owns no buffer. */
struct cork {
    struct conn *c;          /* the connection corked now, or NULL */
    size_t bytes;            /* total bytes gathered */
    size_t buf_len;          /* bytes used in buf */
    int niov;                /* iov[0..niov) in order: slices of buf and external payloads */
    uint8_t owned[CORK_IOV]; /* iov[i] is a malloc'd payload to free after the send */
    struct iovec iov[CORK_IOV];
    uint8_t *buf; /* CORK_BYTES */
};

#endif
