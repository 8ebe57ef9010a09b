/* privs.c: resolving and dropping to the configured user (see privs.h). */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int privs_resolve(const char *name, uid_t euid, struct privs *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!name[0])
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        if (errno)
            snprintf(err, errlen, "user: getpwnam(\"%s\") failed: %s", name, strerror(errno));
        else
            snprintf(err, errlen, "user: no such user '%s' (in the system's user database)", name);
        return -1;
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
    p->ngroups = PRIVS_MAX_GROUPS;
    if (getgrouplist(name, pw->pw_gid, p->groups, &p->ngroups) == -1) {
        snprintf(err, errlen, "user: '%s' belongs to %d groups, more than the %d wsmill can set", name,
                 p->ngroups, PRIVS_MAX_GROUPS);
        return -1;
    }
    if (euid != 0) {
        if (euid == p->uid)
            return 0; /* already that user: nothing to switch */
        snprintf(err, errlen,
                 "user = %s is set, but wsmill runs as uid %u and only root can switch users; workers keep "
                 "uid %u",
                 name, (unsigned)euid, (unsigned)euid);
        return 1;
    }
    p->active = p->uid != 0; /* user = root: nothing to drop */
    return 0;
}

int privs_drop(const struct privs *p, char *err, size_t errlen)
{
    uid_t ru = 0, eu = 0, su = 0;
    gid_t rg = 0, eg = 0, sg = 0;
    if (!p->active)
        return 0;
    /* Groups first: once the uid is gone, setgroups and setresgid fail. */
    if (setgroups((size_t)p->ngroups, p->groups) == -1) {
        snprintf(err, errlen, "setgroups(%d groups of %s) failed: %s", p->ngroups, p->name, strerror(errno));
        return -1;
    }
    if (setresgid(p->gid, p->gid, p->gid) == -1) {
        snprintf(err, errlen, "setresgid(%u) failed: %s", (unsigned)p->gid, strerror(errno));
        return -1;
    }
    if (setresuid(p->uid, p->uid, p->uid) == -1) {
        snprintf(err, errlen, "setresuid(%u) failed: %s", (unsigned)p->uid, strerror(errno));
        return -1;
    }
    /* Trust nothing: read the ids back, and make sure root is out of reach
     * (a saved set-user-ID of 0 would let it come back). */
    if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 || ru != p->uid || eu != p->uid ||
        su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid) {
        snprintf(err, errlen, "after the switch to %s the ids are uid %u/%u/%u gid %u/%u/%u, not %u and %u",
                 p->name, (unsigned)ru, (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg,
                 (unsigned)p->uid, (unsigned)p->gid);
        return -1;
    }
    if (setuid(0) != -1 || seteuid(0) != -1 || (p->gid != 0 && setgid(0) != -1)) {
        snprintf(err, errlen, "after the switch to %s, root could be regained", p->name);
        return -1;
    }
    return 0;
}
