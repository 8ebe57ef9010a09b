/* test_privs.c: common/privs.c: resolving `user` (empty, unknown, root,
 * not root ourselves) and, when the test runs as root, the switch itself in
 * a forked child: ids read back and root out of reach afterwards. */
#include <pwd.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/privs.h"
#include "tap.h"

static void test_resolve(void)
{
    struct privs p;
    char err[512] = "";
    struct passwd *nobody = getpwnam("nobody");

    is_int(privs_resolve("", 0, &p, err, sizeof err), 0, "empty user: nothing to do");
    is_int(p.active, 0, "empty user: inactive");

    is_int(privs_resolve("no-such-user-wsmill", 0, &p, err, sizeof err), -1, "unknown user refused");
    ok(strstr(err, "user: no such user 'no-such-user-wsmill'") != NULL, "error names the key and user: %s",
       err);

    is_int(privs_resolve("root", 0, &p, err, sizeof err), 0, "user = root as root");
    is_int(p.active, 0, "user = root: nothing to drop");

    if (!nobody) {
        diag("no user 'nobody' here: skipping the rest");
        return;
    }
    is_int(privs_resolve("nobody", 0, &p, err, sizeof err), 0, "nobody as root");
    ok(p.active && p.uid == nobody->pw_uid && p.gid == nobody->pw_gid, "nobody resolved to %u/%u",
       (unsigned)p.uid, (unsigned)p.gid);
    ok(p.ngroups >= 1 && p.groups[0] == nobody->pw_gid, "groups start with the primary group");

    is_int(privs_resolve("nobody", nobody->pw_uid, &p, err, sizeof err), 0, "already nobody: fine");
    is_int(p.active, 0, "already nobody: nothing to switch");

    uid_t other = nobody->pw_uid == 1000 ? 1001 : 1000;
    is_int(privs_resolve("nobody", other, &p, err, sizeof err), 1, "not root: cannot switch, a warning");
    ok(p.active == 0 && strstr(err, "only root can switch users") != NULL, "warning says why: %s", err);
}

static void test_drop(void)
{
    struct privs p;
    char err[512];
    if (geteuid() != 0 || privs_resolve("nobody", 0, &p, err, sizeof err) != 0) {
        diag("not root (or no nobody): skipping the switch itself");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (privs_drop(&p, err, sizeof err) == -1)
            _exit(10);
        /* Root must be gone for good. */
        if (getuid() != p.uid || geteuid() != p.uid || getgid() != p.gid || setuid(0) != -1 ||
            setgid(0) != -1)
            _exit(11);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child switched to nobody and cannot regain root (exit %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(void)
{
    test_resolve();
    test_drop();
    return done_testing();
}
