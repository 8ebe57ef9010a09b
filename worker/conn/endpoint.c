/* endpoint.c: the table of endpoints a worker serves (see endpoint.h). */
#include "endpoint.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../worker-t.h"

void endpoint_register(struct worker *w, const struct endpoint *ep)
{
    if (w->nendpoints >= WORKER_MAX_ENDPOINTS) {
        log_crit("endpoint %s: more than %d endpoints (WORKER_MAX_ENDPOINTS)", ep->path,
                 WORKER_MAX_ENDPOINTS);
        abort();
    }
    w->endpoints[++w->nendpoints] = ep;
}

int endpoint_find(struct worker *w, const char *path, size_t len, const char **rest, size_t *rest_len)
{
    for (int i = 1; i <= w->nendpoints; i++) {
        const char *p = w->endpoints[i]->path;
        size_t pl = strlen(p);
        int prefix = p[pl - 1] == '/';
        if (prefix ? len >= pl && !memcmp(path, p, pl) : len == pl && !memcmp(path, p, pl)) {
            *rest = path + pl;
            *rest_len = len - pl;
            return i;
        }
    }
    return 0;
}
