/* redischeck.h: `wsmill check` with broker = redis: does Redis answer? */
#ifndef WSMILL_REDISCHECK_H
#define WSMILL_REDISCHECK_H
#include <stdio.h>

#include "../common/config.h"

#define REDISCHECK_FAILED 3 /* check's exit status when Redis does not answer */

/* Connects to cfg->redis_url (2 s timeout), AUTHs and SELECTs as it says
 * and PINGs. Prints one line to out (OK) or to err (what failed: the
 * address unreachable, the password refused, the database refused).
 * Returns 0, or REDISCHECK_FAILED. */
int redischeck_run(const struct config *cfg, FILE *out, FILE *err);

#endif
