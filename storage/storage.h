/* storage/storage.h - object storage behind one small interface.
 *
 * URIs: file:///abs/path (or a plain path), http(s)://host/path (read-only),
 * s3://bucket/key (libcurl + SigV4; endpoint/region/credentials from the standard AWS_*
 * environment variables or em_storage_opts). The key after the bucket is taken raw (not
 * percent-decoded) and encoded on the wire; storage/uri.h lists the checks a URI must pass.
 * s3 without credentials gives EM_E_AUTH; environment variables are read by em_storage_open.
 *
 * A handle is not thread-safe; open one per thread. Each call is synchronous and
 * retries retryable failures (5xx, connection errors) with backoff up to opts.retries.
 * Errors: EM_E_NOTFOUND (404 / no such file), EM_E_AUTH (403, signature refused),
 * EM_E_STORAGE (other 4xx/5xx after retries), EM_E_STORAGE_DOWN (cannot connect or resolve,
 * after retries), EM_E_STORAGE_FULL (disk full, quota, read-only file system, HTTP 507),
 * EM_E_IO (other connection trouble), EM_E_TOO_LONG
 * (object larger than max_bytes), EM_E_ARG (bad URI). The detail in eb never contains
 * credentials or signatures. */
#ifndef EM_STORAGE_H
#define EM_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_STORAGE_MAX_OBJECT (512u * 1024u * 1024u) /* bytes, default get limit */

struct em_storage_opts {
    const char *endpoint;      /* e.g. http://127.0.0.1:9000; NULL: AWS_ENDPOINT_URL or AWS */
    const char *region;        /* NULL: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1 */
    const char *access_key;    /* NULL: AWS_ACCESS_KEY_ID */
    const char *secret_key;    /* NULL: AWS_SECRET_ACCESS_KEY */
    const char *session_token; /* NULL: AWS_SESSION_TOKEN */
    int path_style;            /* 1 path-style, 0 virtual-host; -1 auto (path-style when endpoint set) */
    int retries;               /* attempts after the first; default 4 */
    int timeout_ms;            /* per request; default 30000 */
    size_t max_bytes;          /* get limit; default EM_STORAGE_MAX_OBJECT */
};

/* Defaults (all NULL/auto, retries 4, timeout 30 s). */
struct em_storage_opts em_storage_opts_default(void);

struct em_storage;

/* Opens a handle able to serve every scheme. Strings in opts are copied.
 * On EM_OK the caller owns *out and frees it with em_storage_close(). */
em_err em_storage_open(const struct em_storage_opts *opts, struct em_storage **out,
                       struct em_errbuf *eb);
void em_storage_close(struct em_storage *st); /* NULL is a no-op */

/* Reads the whole object. On EM_OK *data is malloc'd (caller frees), NUL-terminated
 * one byte past *len for convenience. */
em_err em_storage_get(struct em_storage *st, const char *uri, uint8_t **data, size_t *len,
                      struct em_errbuf *eb);
/* Writes the whole object atomically (file: temp + rename; s3: single PUT).
 * content_type may be NULL. http(s) URIs give EM_E_UNSUPPORTED. */
em_err em_storage_put(struct em_storage *st, const char *uri, const void *data, size_t len,
                      const char *content_type, struct em_errbuf *eb);
/* EM_OK if the object exists, EM_E_NOTFOUND if not, another code on failure. */
em_err em_storage_exists(struct em_storage *st, const char *uri, struct em_errbuf *eb);
/* Deletes; a missing object is EM_OK. */
em_err em_storage_delete(struct em_storage *st, const char *uri, struct em_errbuf *eb);

/* Reads the whole regular file open on fd (not closed here), named name in messages:
 * fstat first, so anything but a regular file (FIFO, device, socket, directory) is
 * EM_E_ARG before any read, and a file over max_bytes is EM_E_TOO_LONG. On EM_OK *data is
 * malloc'd (caller frees), NUL-terminated one byte past *len. */
em_err em_storage_read_fd(int fd, const char *name, size_t max_bytes, uint8_t **data,
                          size_t *len, struct em_errbuf *eb);

/* Joins a prefix URI and a name with exactly one '/'. Returns malloc'd string or NULL. */
char *em_storage_join(const char *prefix, const char *name);

#endif
