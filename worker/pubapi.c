/* pubapi.c: PLACEHOLDER being replaced by the publish API implementation. */
#include "../common/log.h"
#include "internal.h"

int pubapi_start(struct worker *w)
{
    (void)w;
    return 0;
}

void pubapi_stop(struct worker *w)
{
    (void)w;
}
