/* statusfmt.h: `wsmill status` for people. The status socket serves one
 * JSON snapshot per connection; this client takes two of them --interval
 * apart and prints a summary: who serves what, connections against the
 * limit, workers by state, rates over the interval, rejections, closes,
 * the broker and the last reload. `--json` prints the snapshot as it is. */
#ifndef WSMILL_STATUSFMT_H
#define WSMILL_STATUSFMT_H
#include <stddef.h>
#include <stdio.h>

/* The status_socket path: from the config file, or, when the file has an
 * error, from its status_socket line alone (err then says what is wrong
 * with the file: print it, the answer is still good); from the built-in
 * default when the file does not name one. Returns 0, or -1 with the
 * reason in err when the file cannot be read at all. */
int statusfmt_socket_of(const char *path, char *sock, size_t socklen, char *err, size_t errlen);

/* Prints the summary of the server on sock, rates over interval seconds.
 * Returns 0, or 1 after printing why to stderr. */
int statusfmt_summary(const char *sock, double interval, FILE *out);

#endif
