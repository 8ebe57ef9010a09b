/* notify.c: sd_notify's datagram protocol (see notify.h). */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"

/* Fills sun from NOTIFY_SOCKET; returns the address length, 0 when the
 * variable is unset, -1 when it is neither an absolute path nor '@name'. */
static socklen_t notify_addr(struct sockaddr_un *sun)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len = path ? strlen(path) : 0;
    if (!len)
        return 0;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sun->sun_path)
        return (socklen_t)-1;
    memcpy(sun->sun_path, path, len);
    if (path[0] == '@')
        sun->sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, no terminator */
    else
        len++; /* a path is sent with its terminating NUL */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

int notify_send(const char *fmt, ...)
{
    struct sockaddr_un sun;
    char msg[512];
    va_list ap;
    socklen_t alen = notify_addr(&sun);
    if (alen == 0)
        return 0;
    if (alen == (socklen_t)-1) {
        log_warn("NOTIFY_SOCKET=%s is neither an absolute path nor @name: not notifying",
                 getenv("NOTIFY_SOCKET"));
        return -1;
    }
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = (int)strlen(msg);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        log_warn("socket(AF_UNIX, SOCK_DGRAM) for NOTIFY_SOCKET failed: %s", strerror(errno));
        return -1;
    }
    ssize_t sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
    int e = errno;
    close(fd);
    if (sent == -1) {
        log_warn("sendto(NOTIFY_SOCKET %s) failed: %s", getenv("NOTIFY_SOCKET"), strerror(e));
        return -1;
    }
    return 1;
}
