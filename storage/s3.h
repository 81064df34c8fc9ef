/* storage/s3.h - S3 request addressing, exposed for tests; the S3 back end itself is
 * reached through em_storage_* with s3:// URIs. Pure, thread-safe. */
#ifndef EM_STORAGE_S3_H
#define EM_STORAGE_S3_H

#include <stddef.h>

#include "common/err.h"

#define EM_S3_URL_MAX 8192 /* bytes of a request URL, with NUL */

/* Builds the request URL for bucket/key.
 *   endpoint  "http(s)://host[:port]" (a trailing '/' is allowed, a path is not), or NULL
 *             for AWS: https://s3.<region>.amazonaws.com
 *   path_style 1: <endpoint>/<bucket>/<key>; 0: <scheme>://<bucket>.<host>[:port]/<key>;
 *             -1: path-style when endpoint is non-NULL. Virtual-host falls back to
 *             path-style for https and a bucket with a '.' (the wildcard certificate would
 *             not match).
 * The key is percent-encoded canonically (RFC 3986 unreserved kept, '/' kept).
 * Errors: EM_E_ARG (bad endpoint), EM_E_TOO_LONG (cap too small). */
em_err em_s3_url(const char *endpoint, const char *region, int path_style, const char *bucket,
                 const char *key, char *out, size_t cap, struct em_errbuf *eb);

#endif
