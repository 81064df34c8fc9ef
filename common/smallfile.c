/* common/smallfile.c - see smallfile.h. */
#include "common/smallfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

em_err em_smallfile_read(const char *path, size_t max, char **out, mode_t *mode,
                         struct em_errbuf *eb)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    em_err rc = EM_OK;
    char *b = NULL;
    if (fstat(fd, &st) != 0) {
        rc = em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = em_errf(eb, EM_E_AUTH, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > max) {
        rc = em_errf(eb, EM_E_TOO_LONG, "%s: %lld bytes, at most %zu expected", path,
                     (long long)st.st_size, max);
    } else if (!(b = malloc((size_t)st.st_size + 1))) {
        rc = em_errf(eb, EM_E_NOMEM, "%s: out of memory", path);
    } else {
        size_t n = 0;
        ssize_t r;
        while (n < (size_t)st.st_size && (r = read(fd, b + n, (size_t)st.st_size - n)) > 0)
            n += (size_t)r;
        b[n] = 0;
        *out = b;
        if (mode) *mode = st.st_mode;
    }
    close(fd);
    return rc;
}

em_err em_smallfile_private(const char *path, mode_t mode, const char *what,
                            struct em_errbuf *eb)
{
    if (!(mode & 077)) return EM_OK;
    return em_errf(eb, EM_E_AUTH,
                   "%s: %s file is accessible by group or others (mode %04o); chmod 600 it",
                   path, what, (unsigned)(mode & 07777));
}
