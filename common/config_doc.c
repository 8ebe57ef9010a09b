/* config_doc.c: the settings table as Markdown, for docs/config.md
 * (`wsmill config-doc`, scripts/gen-config-doc.sh). */
#include "config.h"

#include <stdio.h>

static const char *type_unit(enum config_type type)
{
    switch (type) {
    case CONFIG_SIZE: return "bytes (k/m/g, see sizes above)";
    case CONFIG_DURATION: return "seconds (ms/s/m/h suffixes)";
    case CONFIG_LISTEN: return "HOST:PORT";
    case CONFIG_AUTO_COUNT: return "count or auto";
    case CONFIG_LOGLEVEL: return "level";
    case CONFIG_BOOL: return "on/off";
    case CONFIG_CHOICE: return "choice";
    case CONFIG_STRING: return "text";
    default: return "count";
    }
}

static const char *reload_text(int r)
{
    switch (r) {
    case RELOAD_HOT: return "yes";
    case RELOAD_GENERATION: return "yes, new worker generation";
    case RELOAD_MASTER: return "yes, by the master";
    default: return "restart or upgrade";
    }
}

void config_doc_write(FILE *out)
{
    size_t nkeys;
    const struct config_key *keys = config_keys(&nkeys);
    fprintf(out, "| key | default | unit | reload | meaning |\n| --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < nkeys; i++) {
        const struct config_key *k = &keys[i];
        fprintf(out, "| `%s` | `%s` | %s%s%s | %s | %s |\n", k->name, *k->dflt ? k->dflt : "(empty)",
                type_unit(k->type), k->choices ? ": " : "", k->choices ? k->choices : "",
                reload_text(k->reloadable), k->doc);
    }
}
