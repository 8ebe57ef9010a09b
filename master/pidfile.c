/* pidfile.c: the master's pid file, the handle scripts use to signal it. */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"

static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "re");
    int pid = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 0 ? pid : 0;
}

/* The pid file outlives a master killed with SIGKILL and its pid may be
 * reused: only a process running the same program counts as live. */
static int same_program(pid_t pid)
{
    char path[64], theirs[64] = "", ours[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *a = fopen(path, "re"), *b = fopen("/proc/self/comm", "re");
    int same =
        a && b && fgets(theirs, sizeof theirs, a) && fgets(ours, sizeof ours, b) && !strcmp(theirs, ours);
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    return same;
}

pid_t pidfile_live(const char *path)
{
    if (!path[0])
        return 0;
    pid_t pid = read_pid(path);
    if (pid == 0 || pid == getpid())
        return 0;
    if (kill(pid, 0) == -1 && errno != EPERM)
        return 0;
    return same_program(pid) ? pid : 0;
}

int pidfile_write(const char *path)
{
    if (!path[0])
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        log_error("open(%s, O_WRONLY|O_CREAT|O_TRUNC) failed: %s", path, strerror(errno));
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (write(fd, buf, (size_t)n) != n) {
        log_error("write(%s) failed: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

void pidfile_remove(const char *path)
{
    /* A second master started by mistake must not remove ours. */
    if (!path[0] || read_pid(path) != getpid())
        return;
    if (unlink(path) == -1)
        log_warn("unlink(%s) failed: %s", path, strerror(errno));
}

int pidfile_rename(const char *from, const char *to)
{
    if (read_pid(from) != getpid()) {
        log_error("rename(%s, %s) refused: %s does not name this process", from, to, from);
        return -1;
    }
    if (rename(from, to) == -1) {
        log_error("rename(%s, %s) failed: %s", from, to, strerror(errno));
        return -1;
    }
    return 0;
}
