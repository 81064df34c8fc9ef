/* common/smallfile.h - reading a small file whole: key files, allow lists, a URL with a
 * password. Opened without following a final symlink and without blocking (a FIFO is
 * refused, never waited on), regular files only, bounded size. Thread-safe. */
#ifndef EM_SMALLFILE_H
#define EM_SMALLFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

/* Reads path (at most max bytes) into a malloc'd NUL-terminated *out (caller frees; for a
 * secret, zero it first); *mode gets its st_mode (may be NULL). Errors: EM_E_IO (cannot
 * open/read), EM_E_AUTH (not a regular file), EM_E_TOO_LONG, EM_E_NOMEM; each one line
 * naming path. */
em_err em_smallfile_read(const char *path, size_t max, char **out, mode_t *mode,
                         struct em_errbuf *eb);
/* EM_E_AUTH (with the chmod to run) when mode lets group or others read or write a file
 * holding a secret; what names the secret ("secret key", "Redis URL"). */
em_err em_smallfile_private(const char *path, mode_t mode, const char *what,
                            struct em_errbuf *eb);

#endif
