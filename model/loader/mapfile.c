/* model/loader/mapfile.c - read-only whole-file mappings (mapfile.h). */
#include "model/loader/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

em_err em_map_file(const char *path, size_t min_len, const char *what, void **map, size_t *len,
                   struct em_errbuf *eb)
{
    *map = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return em_errf(eb, errno == ENOENT ? EM_E_NOTFOUND : EM_E_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return em_errf(eb, EM_E_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size < (unsigned long long)min_len || sb.st_size == 0) {
        close(fd);
        return em_errf(eb, EM_E_MODEL, "%s: %lld bytes, too short for %s", path,
                       (long long)sb.st_size, what);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return em_errf(eb, EM_E_IO, "%s: mmap: %s", path, strerror(errno));
    *map = m;
    *len = (size_t)sb.st_size;
    return EM_OK;
}

void em_unmap_file(void *map, size_t len)
{
    if (map) munmap(map, len);
}
