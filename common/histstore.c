/* histstore.c: making or adopting the history store's memfd. */
#include "histstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static void params(const struct config *cfg, uint32_t *nchan, uint32_t *cap, uint64_t *data)
{
    *nchan = (uint32_t)cfg->history_channels;
    *cap = (uint32_t)cfg->history_size;
    *data = (uint64_t)cfg->history_memory;
}

/* The store in fd, when it is one we can keep; NULL otherwise. */
static struct history *adopt(int fd, uint32_t nchan, uint32_t cap, uint64_t data)
{
    struct stat st;
    if (fstat(fd, &st) == -1 || (size_t)st.st_size < sizeof(struct history)) {
        log_warn("upgrade: the inherited history store (fd %d) is unusable: starting new epochs", fd);
        return NULL;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (m == MAP_FAILED) {
        log_warn("mmap(inherited history store, %lld bytes) failed: %s; starting new epochs",
                 (long long)st.st_size, strerror(errno));
        return NULL;
    }
    if (!history_compatible(m, (size_t)st.st_size, nchan, cap, data)) {
        log_notice("upgrade: history_size, history_channels or history_memory changed: the history store "
                   "starts over (new epochs; resuming clients are told they did not recover)");
        munmap(m, (size_t)st.st_size);
        return NULL;
    }
    log_notice("upgrade: kept the history store (%llu messages published so far)",
               (unsigned long long)((struct history *)m)->published);
    return m;
}

struct history *histstore_open(const struct config *cfg, int inherited_fd, int *fd_out)
{
    uint32_t nchan, cap;
    uint64_t data;
    params(cfg, &nchan, &cap, &data);
    if (inherited_fd != -1) {
        struct history *h = adopt(inherited_fd, nchan, cap, data);
        if (h) {
            *fd_out = inherited_fd;
            return h;
        }
        close(inherited_fd);
    }
    size_t len = history_bytes(nchan, cap, data);
    int fd = memfd_create("wsmill-history", MFD_CLOEXEC);
    if (fd == -1 || ftruncate(fd, (off_t)len) == -1) {
        log_crit("memfd_create/ftruncate(wsmill-history, %zu bytes) failed: %s", len, strerror(errno));
        abort();
    }
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
        seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    if (m == MAP_FAILED || history_init(m, nchan, cap, data, seed) == -1) {
        log_crit("setting up the history store (%zu bytes) failed: %s", len, strerror(errno));
        abort();
    }
    *fd_out = fd;
    return m;
}
