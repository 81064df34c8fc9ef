/* worker/source.h - the source policy: what a worker may read as a task's source.
 *
 * What crosses this boundary: a source URI from a task (untrusted: anyone who can submit
 * chooses it) in, the bytes of one object or a one-line error out.
 *   - s3:// and http(s):// go through storage/ (its size limit, timeouts and retries).
 *   - file:///abs (or a plain absolute path) is read only when the path, resolved with
 *     realpath(3) so that ".." and symlinks cannot leave a root, lies under one of the
 *     policy's roots. No roots means no local file at all, unless the policy was made with
 *     any_local (`earmark annotate` reads the files it is given). Relative paths are
 *     refused: they would resolve against the worker's working directory.
 *   - The file is opened O_RDONLY|O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC and fstat'ed before any
 *     read: only a regular file is read; a FIFO, device, socket or directory is refused
 *     at once, never blocking the thread. After the open, the descriptor's own path
 *     (/proc/self/fd/N) is checked against the roots again, so a component swapped for a
 *     symlink between the check and the open is refused too.
 *   - A path outside the roots, a missing path and a path that does not resolve all give
 *     EM_E_NOTFOUND with the same message (EM_SOURCE_DENIED, without the path), so an error
 *     record never tells whether a file outside the roots exists.
 * Threads: a policy is read-only after em_source_policy_init and may be shared; the
 * storage handle passed to em_source_fetch is the calling thread's own. */
#ifndef EM_SOURCE_H
#define EM_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/storage.h"

#define EM_SOURCE_MAX_ROOTS 64 /* --source-root flags plus EARMARK_SOURCE_ROOTS entries */
#define EM_SOURCE_DENIED "not found, or not under an allowed source root"

struct em_source_policy {
    char *roots[EM_SOURCE_MAX_ROOTS]; /* realpath'd, owned */
    size_t n_roots;
    bool any_local; /* every readable local file (annotate only) */
};

/* Resolves each root with realpath (a root must exist and be a directory). roots may hold
 * NULL or "" entries, which are skipped. Errors: EM_E_ARG (a root that does not resolve or
 * is not a directory, more than EM_SOURCE_MAX_ROOTS), EM_E_NOMEM. On failure *p is empty. */
em_err em_source_policy_init(struct em_source_policy *p, const char *const *roots, size_t n,
                             bool any_local, struct em_errbuf *eb);
/* Adds the entries of a colon-separated list (EARMARK_SOURCE_ROOTS); same errors. */
em_err em_source_policy_add_list(struct em_source_policy *p, const char *list,
                                 struct em_errbuf *eb);
void em_source_policy_free(struct em_source_policy *p); /* frees the roots, zeroes */

/* Reads the source at uri under policy p (NULL: no local files). max_bytes 0: the storage
 * handle's limit. On EM_OK *data is malloc'd (caller frees), *len its size. Errors: those
 * of em_storage_get, EM_E_NOTFOUND (denied or missing, see above), EM_E_ARG (not a regular
 * file, relative path), EM_E_TOO_LONG. */
em_err em_source_fetch(const struct em_source_policy *p, struct em_storage *st, const char *uri,
                       size_t max_bytes, uint8_t **data, size_t *len, struct em_errbuf *eb);

#endif
