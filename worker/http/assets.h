/* assets.h: the dashboard's files, embedded at build time by embed.py
 * (a meson custom_target writes dashboard_assets.c). */
#ifndef WSMILL_HTTP_ASSETS_H
#define WSMILL_HTTP_ASSETS_H
#include <stddef.h>

struct asset {
    const char *name; /* file name: "index.html", "app.js" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct asset assets[];
extern const unsigned assets_count;

#endif
