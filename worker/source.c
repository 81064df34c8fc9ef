/* worker/source.c - the source policy (see source.h): realpath + roots for local files,
 * a non-blocking no-follow open, fstat before reading; everything else through storage/. */
#include "worker/source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/uri.h"

static em_err add_root(struct em_source_policy *p, const char *root, struct em_errbuf *eb)
{
    if (!root || !*root) return EM_OK;
    if (p->n_roots >= EM_SOURCE_MAX_ROOTS)
        return em_errf(eb, EM_E_ARG, "more than %d source roots", EM_SOURCE_MAX_ROOTS);
    char *r = realpath(root, NULL);
    struct stat sb;
    if (!r || stat(r, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        int e = errno;
        free(r);
        return em_errf(eb, EM_E_ARG, "source root %s: %s", root,
                       r ? "not a directory" : strerror(e));
    }
    p->roots[p->n_roots++] = r;
    return EM_OK;
}

em_err em_source_policy_init(struct em_source_policy *p, const char *const *roots, size_t n,
                             bool any_local, struct em_errbuf *eb)
{
    memset(p, 0, sizeof *p);
    p->any_local = any_local;
    for (size_t i = 0; i < n; i++) {
        em_err rc = add_root(p, roots[i], eb);
        if (rc != EM_OK) {
            em_source_policy_free(p);
            return rc;
        }
    }
    return EM_OK;
}

em_err em_source_policy_add_list(struct em_source_policy *p, const char *list,
                                 struct em_errbuf *eb)
{
    for (const char *s = list; s && *s;) {
        const char *colon = strchr(s, ':');
        size_t n = colon ? (size_t)(colon - s) : strlen(s);
        char one[PATH_MAX];
        if (n >= sizeof one) {
            em_source_policy_free(p);
            return em_errf(eb, EM_E_ARG, "a source root is longer than %d bytes", PATH_MAX - 1);
        }
        memcpy(one, s, n);
        one[n] = 0;
        em_err rc = add_root(p, one, eb);
        if (rc != EM_OK) {
            em_source_policy_free(p);
            return rc;
        }
        s = colon ? colon + 1 : s + n;
    }
    return EM_OK;
}

void em_source_policy_free(struct em_source_policy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_roots; i++)
        free(p->roots[i]);
    memset(p, 0, sizeof *p);
}

/* 1 if the resolved path lies under a root (or any local file is allowed). */
static int allowed(const struct em_source_policy *p, const char *path)
{
    if (p && p->any_local) return 1;
    for (size_t i = 0; p && i < p->n_roots; i++) {
        const char *r = p->roots[i];
        size_t n = strlen(r);
        if (n == 1 && r[0] == '/') return 1;
        if (strncmp(path, r, n) == 0 && (path[n] == '/' || path[n] == 0)) return 1;
    }
    return 0;
}

/* The URI is left out: the caller names the item, and the text must be the same for every
 * path refused (the pipeline prefixes the file name). */
static em_err denied(struct em_errbuf *eb)
{
    return em_errf(eb, EM_E_NOTFOUND, EM_SOURCE_DENIED);
}

static em_err fetch_local(const struct em_source_policy *p, const char *uri, const char *path,
                          size_t max_bytes, uint8_t **data, size_t *len, struct em_errbuf *eb)
{
    if (path[0] != '/')
        return em_errf(eb, EM_E_ARG, "%.200s: relative path refused (sources are absolute)", uri);
    char *real = realpath(path, NULL);
    if (!real || !allowed(p, real)) {
        free(real);
        return denied(eb);
    }
    int fd = open(real, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    free(real);
    if (fd < 0) return errno == ENOMEM ? em_errf(eb, EM_E_NOMEM, "%.200s: out of memory", uri)
                                       : denied(eb);
    /* the path may have changed between realpath and open: check what was opened */
    char link[64], opened[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, opened, sizeof opened - 1);
    em_err rc;
    if (k <= 0 || (size_t)k >= sizeof opened - 1) {
        rc = denied(eb);
    } else {
        opened[k] = 0;
        rc = allowed(p, opened) ? em_storage_read_fd(fd, uri, max_bytes, data, len, eb)
                                : denied(eb);
    }
    close(fd);
    return rc;
}

em_err em_source_fetch(const struct em_source_policy *p, struct em_storage *st, const char *uri,
                       size_t max_bytes, uint8_t **data, size_t *len, struct em_errbuf *eb)
{
    *data = NULL;
    *len = 0;
    struct em_uri *u = malloc(sizeof *u); /* ~5 KiB: not on a pipeline thread's stack */
    if (!u) return em_errf(eb, EM_E_NOMEM, "source: out of memory");
    em_err rc = em_uri_parse(uri, u, eb);
    if (rc == EM_OK) {
        if (u->scheme == EM_URI_FILE)
            rc = fetch_local(p, uri, u->path, max_bytes ? max_bytes : EM_STORAGE_MAX_OBJECT, data,
                             len, eb);
        else
            rc = em_storage_get(st, uri, data, len, eb);
    }
    free(u);
    return rc;
}
