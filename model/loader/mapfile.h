/* model/loader/mapfile.h - maps a whole regular file read-only (MAP_SHARED, so workers on one
 * host share the page cache) for the format readers that parse a buffer (gguf.c, ct2.c).
 * Thread-safe: no shared state. */
#ifndef EM_MAPFILE_H
#define EM_MAPFILE_H

#include <stddef.h>

#include "common/err.h"

/* Maps path; *map and *len get the mapping (release with em_unmap_file). A file shorter than
 * min_len bytes is refused with EM_E_MODEL naming what (e.g. "a GGUF header").
 * Errors: EM_E_NOTFOUND (no such file), EM_E_IO (not a regular file, open/mmap failure),
 * EM_E_MODEL (too short). */
em_err em_map_file(const char *path, size_t min_len, const char *what, void **map, size_t *len,
                   struct em_errbuf *eb);
void em_unmap_file(void *map, size_t len); /* NULL ok */

#endif
