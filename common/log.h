/* log.h: one line per event, written with a single write(2) so lines from
 * the master and every worker interleave whole in one O_APPEND file. */
#ifndef WSMILL_LOG_H
#define WSMILL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARN, LOG_ERROR, LOG_CRIT };

/* Name this process in every line ("master", "worker 3"). */
void log_set_process(const char *name);
void log_set_level(int level);
int log_get_level(void);
/* Opens (or reopens, for SIGUSR1) the log file; NULL or "" means stderr.
 * Returns 0, or -1 with errno set and the old destination kept. */
int log_open(const char *path);
/* Parses "debug|info|notice|warn|error|crit"; -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)                                                                                       \
    do {                                                                                                     \
        if (log_get_level() <= LOG_DEBUG)                                                                    \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                                 \
    } while (0)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...)  log_msg(LOG_ERROR, __VA_ARGS__)
#define log_crit(...)   log_msg(LOG_CRIT, __VA_ARGS__)

#endif
