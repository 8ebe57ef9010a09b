/* histstore.h: the mapping that holds the history store (history.h): a
 * memfd, so a new master started by a binary upgrade can inherit it (the
 * descriptor crosses exec) and keep every channel's epoch and messages. */
#ifndef WSMILL_HISTSTORE_H
#define WSMILL_HISTSTORE_H
#include "config.h"
#include "history.h"

/* Maps the store for cfg's history_* settings: adopts inherited_fd (-1:
 * none) when it holds a store made with the same settings, else makes a
 * new one (new epochs; the reason is logged). *fd_out is the memfd
 * (CLOEXEC) to pass on at the next upgrade. Aborts with a message when
 * memory cannot be had. */
struct history *histstore_open(const struct config *cfg, int inherited_fd, int *fd_out);

#endif
