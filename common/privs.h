/* privs.h: the user workers run as (config key `user`).
 *
 * The master resolves the name once, at start-up, while it can still read
 * the user database and report a clear error; a worker forked later drops
 * to the resolved ids after binding what it binds, with no lookups of its
 * own. Nothing here forks or touches an event loop. */
#ifndef WSMILL_PRIVS_H
#define WSMILL_PRIVS_H
#include <stddef.h>
#include <sys/types.h>

#define PRIVS_MAX_GROUPS 64
#define PRIVS_NAME_MAX   256

struct privs {
    int active; /* 1: workers switch to uid/gid/groups; 0: they keep ours */
    uid_t uid;
    gid_t gid;
    int ngroups; /* supplementary groups, the primary one included */
    gid_t groups[PRIVS_MAX_GROUPS];
    char name[PRIVS_NAME_MAX];
};

/* Resolves user name (empty: no switch) for a process running with
 * effective uid euid. Fills p; p->active is set only when a switch is both
 * asked for and possible (euid 0, and the user is not root itself).
 * Returns 0; 1 when a user was named but euid is not 0 and differs from
 * it, so nothing can switch (err says so, for a warning); -1 with
 * "user: ..." in err when the name is unknown or has too many groups. */
int privs_resolve(const char *name, uid_t euid, struct privs *p, char *err, size_t errlen);

/* In a worker: sets the supplementary groups, then real, effective and
 * saved gid, then uid, to p's, and checks that uid 0 and gid 0 cannot be
 * regained. Returns 0, or -1 with the failed call in err (the caller must
 * not go on serving). Changing credentials clears the parent-death signal
 * (prctl PR_SET_PDEATHSIG): callers that use it set it again. */
int privs_drop(const struct privs *p, char *err, size_t errlen);

#endif
