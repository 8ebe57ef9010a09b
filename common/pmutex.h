/* pmutex.h: a mutex in shared memory that several processes take (the
 * publish ring, the history store). Robust: a holder that dies leaves it
 * EOWNERDEAD for the next taker instead of locked forever. */
#ifndef WSMILL_PMUTEX_H
#define WSMILL_PMUTEX_H
#include <errno.h>
#include <pthread.h>

/* Initialises m as process-shared and robust. Returns 0, or -1 with errno. */
static inline int pmutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (!rc)
        rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

#endif
