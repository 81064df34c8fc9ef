/* storage/impl.h - internals shared by storage.c and the scheme back ends (file.c, http.c,
 * s3.c); not for use outside storage/. One ops table per scheme; storage.c parses the URI
 * and calls the table of its scheme. */
#ifndef EM_STORAGE_IMPL_H
#define EM_STORAGE_IMPL_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "storage/uri.h"

struct em_storage {
    struct em_storage_opts o; /* resolved: strings below, numbers defaulted */
    char *endpoint;           /* NULL: AWS */
    char *region;             /* never NULL */
    char *access_key, *secret_key, *session_token; /* NULL when unset */
    int endpoint_given;       /* from opts or AWS_ENDPOINT_URL (drives path_style -1) */
    /* libcurl 7.88 keeps signing state on a handle, so signed (s3) and unsigned (http)
     * requests never share one. Created on first use. */
    CURL *s3;
    CURL *http;
    uint32_t rng;             /* backoff jitter */
};

struct em_storage_ops {
    const char *name;
    em_err (*get)(struct em_storage *st, const struct em_uri *u, uint8_t **data, size_t *len,
                  struct em_errbuf *eb);
    em_err (*put)(struct em_storage *st, const struct em_uri *u, const void *data, size_t len,
                  const char *content_type, struct em_errbuf *eb);
    em_err (*exists)(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb);
    em_err (*del)(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb);
};

extern const struct em_storage_ops em_storage_file_ops;
extern const struct em_storage_ops em_storage_http_ops;
extern const struct em_storage_ops em_storage_s3_ops;

#endif
