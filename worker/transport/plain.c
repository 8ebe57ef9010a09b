/* plain.c: the plain TCP transport: the socket as it is. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static ssize_t plain_recv(struct conn *c, uint8_t *buf, size_t len)
{
    return read(conn_fd(c), buf, len);
}

static ssize_t plain_sendv(struct conn *c, const struct iovec *iov, int n)
{
    /* sendmsg rather than writev: it goes straight to the socket layer and
     * skips the file write path (fdget_pos, rw_verify_area, fsnotify), which
     * the fan-out sweep pays once per subscriber (docs/channels.md). */
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    return sendmsg(conn_fd(c), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int plain_flush(struct conn *c)
{
    return 0;
}

static int plain_pending(const struct conn *c)
{
    return 0;
}

static void plain_shutdown(struct conn *c)
{
    shutdown(conn_fd(c), SHUT_WR);
}

static void plain_release(struct conn *c) {}

const struct transport transport_plain = {
    .name = "plain",
    .recv = plain_recv,
    .sendv = plain_sendv,
    .flush = plain_flush,
    .pending = plain_pending,
    .shutdown = plain_shutdown,
    .release = plain_release,
    .answers_early = 1,
};

const struct transport *const transports[TRANSPORT_MAX] = {&transport_plain, &transport_tls};
