/* storage/file.c - local files. put writes "<dir>/.<name>.tmp-XXXXXX", fsyncs it, renames it
 * over the target and fsyncs the directory, so a reader sees the old or the new object,
 * never a torn one, even across a crash. Missing parent directories are created. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/impl.h"

static em_err errno_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return EM_E_NOTFOUND;
    case EACCES:
    case EPERM:
        return EM_E_AUTH;
    case ENOMEM:
        return EM_E_NOMEM;
    case ENAMETOOLONG:
        return EM_E_ARG;
    case ENOSPC:
    case EDQUOT:
    case EROFS:
        return EM_E_STORAGE_FULL;
    default:
        return EM_E_IO;
    }
}

em_err em_storage_read_fd(int fd, const char *name, size_t max_bytes, uint8_t **data,
                          size_t *len, struct em_errbuf *eb)
{
    em_err rc = EM_OK;
    uint8_t *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) return em_errf(eb, EM_E_IO, "%s: %s", name, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return em_errf(eb, EM_E_ARG, "%s: not a regular file", name);
    if ((uint64_t)sb.st_size > max_bytes)
        return em_errf(eb, EM_E_TOO_LONG, "%s: %lld bytes, limit %zu", name,
                       (long long)sb.st_size, max_bytes);
    size_t cap = (size_t)sb.st_size, n = 0;
    buf = malloc(cap + 1);
    if (!buf) return em_errf(eb, EM_E_NOMEM, "%s: cannot allocate %zu bytes", name, cap + 1);
    for (;;) {
        if (n == cap) {
            /* the file may have grown since fstat: probe one byte past the end */
            uint8_t probe;
            ssize_t k = read(fd, &probe, 1);
            if (k == 0) break;
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) {
                rc = em_errf(eb, EM_E_IO, "%s: %s", name, strerror(errno));
                goto done;
            }
            rc = em_errf(eb, EM_E_IO, "%s: file grew while being read", name);
            goto done;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k == 0) break;
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            rc = em_errf(eb, EM_E_IO, "%s: %s", name, strerror(errno));
            goto done;
        }
        n += (size_t)k;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    buf = NULL;
done:
    free(buf);
    return rc;
}

static em_err file_get(struct em_storage *st, const struct em_uri *u, uint8_t **data,
                       size_t *len, struct em_errbuf *eb)
{
    const char *path = u->path;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return em_errf(eb, errno_err(errno), "%s: %s", path, strerror(errno));
    em_err rc = em_storage_read_fd(fd, path, st->o.max_bytes, data, len, eb);
    close(fd);
    return rc;
}

/* mkdir -p of the directory part of path (everything before the last '/'). */
static em_err make_parents(const char *path, struct em_errbuf *eb)
{
    char dir[EM_URI_MAX + 1];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return EM_OK;
    size_t n = (size_t)(slash - path);
    memcpy(dir, path, n);
    dir[n] = 0;
    for (size_t i = 1; i <= n; i++) {
        if (dir[i] != '/' && dir[i] != 0) continue;
        char saved = dir[i];
        dir[i] = 0;
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            dir[i] = saved;
            return em_errf(eb, errno_err(e) == EM_E_NOTFOUND ? EM_E_IO : errno_err(e),
                           "%s: cannot create directory: %s", path, strerror(e));
        }
        dir[i] = saved;
    }
    return EM_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static em_err file_put(struct em_storage *st, const struct em_uri *u, const void *data,
                       size_t len, const char *content_type, struct em_errbuf *eb)
{
    (void)st;
    (void)content_type;
    const char *path = u->path;
    size_t pn = strlen(path);
    if (pn == 0 || path[pn - 1] == '/')
        return em_errf(eb, EM_E_ARG, "%s: names a directory, not a file", path);
    em_err rc = make_parents(path, eb);
    if (rc != EM_OK) return rc;

    const char *slash = strrchr(path, '/');
    size_t dn = slash ? (size_t)(slash - path) + 1 : 0; /* directory part, with its '/' */
    char tmp[EM_URI_MAX + 32];
    if ((size_t)snprintf(tmp, sizeof tmp, "%.*s.%.200s.tmp-XXXXXX", (int)dn, path,
                         path + dn) >= sizeof tmp)
        return em_errf(eb, EM_E_ARG, "%s: path too long", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return em_errf(eb, errno_err(errno), "%s: temp file: %s", path, strerror(errno));
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return em_errf(eb, errno_err(e), "%s: write: %s", path, strerror(e));
    }
    /* objects are world-readable like an S3 object behind the same credentials */
    fchmod(fd, 0644);
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return em_errf(eb, errno_err(e), "%s: rename: %s", path, strerror(e));
    }
    char dir[EM_URI_MAX + 1];
    snprintf(dir, sizeof dir, "%.*s", dn ? (int)dn : 1, dn ? path : ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* makes the rename durable; failure here cannot undo it */
        close(dfd);
    }
    return EM_OK;
}

static em_err file_exists(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb)
{
    (void)st;
    struct stat sb;
    if (stat(u->path, &sb) != 0)
        return em_errf(eb, errno_err(errno), "%s: %s", u->path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return em_errf(eb, EM_E_NOTFOUND, "%s: not a regular file", u->path);
    return EM_OK;
}

static em_err file_del(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb)
{
    (void)st;
    if (unlink(u->path) == 0 || errno == ENOENT) return EM_OK;
    return em_errf(eb, errno_err(errno), "%s: delete: %s", u->path, strerror(errno));
}

const struct em_storage_ops em_storage_file_ops = {
    .name = "file",
    .get = file_get,
    .put = file_put,
    .exists = file_exists,
    .del = file_del,
};
