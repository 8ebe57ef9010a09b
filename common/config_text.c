/* config_text.c: a setting's value formatted the way it would be written
 * in the file (config_format), and a list setting read as a list
 * (config_origin_allowed); config.c parses, config_doc.c documents. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"

#define KiB ((int64_t)1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)
#define SEC ((int64_t)1000)

static void choice_word(const char *choices, int64_t idx, char *buf, size_t len)
{
    const char *p = choices;
    for (int64_t i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (!p) {
        snprintf(buf, len, "?");
        return;
    }
    const char *end = strchr(p, '|');
    snprintf(buf, len, "%.*s", (int)(end ? (size_t)(end - p) : strlen(p)), p);
}

void config_format(const struct config *c, const struct config_key *k, char *buf, size_t len)
{
    const char *field = (const char *)c + k->offset;
    int64_t n = k->type == CONFIG_STRING || k->type == CONFIG_LISTEN ? 0 : *(const int64_t *)field;
    switch (k->type) {
    case CONFIG_STRING:
    case CONFIG_LISTEN: snprintf(buf, len, "%s", field); break;
    case CONFIG_LOGLEVEL: snprintf(buf, len, "%s", log_level_name((int)n)); break;
    case CONFIG_BOOL: snprintf(buf, len, "%s", n ? "on" : "off"); break;
    case CONFIG_CHOICE: choice_word(k->choices, n, buf, len); break;
    case CONFIG_AUTO_COUNT:
        if (n == 0)
            snprintf(buf, len, "auto");
        else
            snprintf(buf, len, "%" PRId64, n);
        break;
    case CONFIG_SIZE:
        if (n && n % GiB == 0)
            snprintf(buf, len, "%" PRId64 "g", n / GiB);
        else if (n && n % MiB == 0)
            snprintf(buf, len, "%" PRId64 "m", n / MiB);
        else if (n && n % KiB == 0)
            snprintf(buf, len, "%" PRId64 "k", n / KiB);
        else
            snprintf(buf, len, "%" PRId64, n);
        break;
    case CONFIG_DURATION:
        if (n % SEC == 0)
            snprintf(buf, len, "%" PRId64 "s", n / SEC);
        else
            snprintf(buf, len, "%" PRId64 "ms", n);
        break;
    default: snprintf(buf, len, "%" PRId64, n);
    }
}

int config_origin_allowed(const struct config *c, const char *origin, size_t n)
{
    const char *p = c->allowed_origins;
    if (!*p)
        return 1;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *tail = end;
        while (tail > p && (tail[-1] == ' ' || tail[-1] == '\t'))
            tail--;
        size_t l = (size_t)(tail - p);
        if (l && l == n && strncasecmp(p, origin, n) == 0)
            return 1;
        if (l == 1 && *p == '*')
            return 1;
        p = end;
    }
    return 0;
}
