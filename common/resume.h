/* resume.h: the resume positions a wsmill.v1 client sends in its upgrade
 * request's query string (docs/history.md), as pure code.
 *
 *     /ch/news,sport?resume=news:00c0ffee00c0ffee:41,sport:0123456789abcdef:7
 *
 * One item per channel: NAME:EPOCH:OFFSET, EPOCH 1-16 hex digits (not 0),
 * OFFSET 1-19 decimal digits (below 2^63). Names may hold ':' themselves,
 * so an item is split at its last two colons. %XX escapes are decoded
 * first (browsers' URLSearchParams write ':' and ',' as %3A and %2C). */
#ifndef WSMILL_RESUME_H
#define WSMILL_RESUME_H
#include <stddef.h>
#include <stdint.h>

struct resume_pos {
    uint16_t name_off; /* the name is buf[name_off, name_off + name_len) */
    uint8_t name_len;
    uint64_t epoch;
    uint64_t offset;
};

/* Finds the one `resume` parameter of a query string (the part after '?',
 * without it). Returns 1 with [*val, *val + *vlen), 0 when absent, -1 when
 * it is given more than once. */
int resume_find(const char *query, size_t len, const char **val, size_t *vlen);

/* Parses a resume value (len bytes, still %-encoded) into at most max
 * positions; names are decoded into buf (len bytes suffice). Returns the
 * count (>= 1), or -1 with *why set to a sentence for the client's 400:
 * bad %-escape, empty item, missing part, invalid channel name, bad epoch,
 * bad offset, a channel named twice, more than max. */
int resume_parse(const char *val, size_t len, char *buf, size_t bufcap, struct resume_pos *out, int max,
                 const char **why);

#endif
