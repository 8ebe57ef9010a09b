/* liveness.c: whether a silent peer's application is still reading what
 * we sent, from the kernel's view of the TCP connection (TCP_INFO).
 *
 * Between two looks the peer acknowledged `acked` more bytes and its
 * advertised receive window went from wnd0 to wnd1. A receiver never
 * shrinks its window's right edge (RFC 7323), so bytes that arrived and
 * were not read shrink the window by exactly as much; whatever is left,
 * acked + wnd1 - wnd0, is what the application read (or room the kernel
 * gave it for reading: autotuning grows the buffer only for a reader).
 * A frozen application reads nothing however many bytes its kernel still
 * takes, so it is closed; one that reads slowly is not. */
#include "liveness.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"

#define LOOK_MAX_MS 2000

static int look(int fd, struct liveness_look *out)
{
    struct tcp_info ti = {0};
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1 || len < sizeof(ti))
        return -1; /* a kernel without tcpi_snd_wnd: no second chance */
    out->acked = ti.tcpi_bytes_acked;
    out->wnd = ti.tcpi_snd_wnd;
    return 0;
}

int liveness_ms(int64_t idle_ms)
{
    return idle_ms / 2 < LOOK_MAX_MS ? (int)(idle_ms / 2) : LOOK_MAX_MS;
}

enum liveness liveness_check(struct conn *c, int64_t idle_ms)
{
    struct liveness_look now;
    if (look(conn_fd(c), &now) == -1)
        return LIVENESS_SILENT;
    struct conn_busy *b = conn_busy(c);
    if (!b)
        return LIVENESS_SILENT;
    if (!b->looked) {
        b->looked = 1;
        b->look = now;
        return LIVENESS_LOOK_AGAIN;
    }
    int64_t read = (int64_t)(now.acked - b->look.acked) + (int64_t)now.wnd - (int64_t)b->look.wnd;
    /* A peer whose window is shut is behind: it announces room only once
     * it read about a segment's worth (64 KB on loopback), so a slow reader
     * may need longer than one look to show it. Up to idle_timeout / 2. */
    if (read <= 0 && now.wnd == 0 && (int64_t)b->looked * liveness_ms(idle_ms) < idle_ms / 2 &&
        b->looked < UINT8_MAX) {
        b->looked++;
        return LIVENESS_LOOK_AGAIN;
    }
    b->looked = 0;
    return read > 0 ? LIVENESS_READING : LIVENESS_SILENT;
}
