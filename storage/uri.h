/* storage/uri.h - storage URIs: parse, check, percent-encode, join.
 *
 *   file:///abs/path   file://localhost/abs/path   percent-escapes decoded, must be absolute
 *   /abs/path  rel/path                             a plain path, taken literally
 *   http(s)://host[:port]/path?query                 kept as given (must already be encoded)
 *   s3://bucket/key                                  key taken literally (raw bytes, not
 *                                                    percent-decoded), encoded on the wire
 *
 * Canonical checks (everything else is EM_E_ARG with a sentence saying why): length at most
 * EM_URI_MAX; no control characters; s3 bucket names follow the S3 naming rules (3-63 of
 * a-z 0-9 . -, alphanumeric at both ends, no "..", not an IPv4 address); s3 keys are
 * 1..EM_S3_KEY_MAX bytes of valid UTF-8 with no "." or ".." segment (libcurl and servers
 * would collapse them, so the object written would not be the one named); file:// paths
 * have no "." or ".." segment either.
 * Pure functions, thread-safe. */
#ifndef EM_STORAGE_URI_H
#define EM_STORAGE_URI_H

#include <stddef.h>

#include "common/err.h"

#define EM_URI_MAX 4096      /* bytes in a URI, without the NUL */
#define EM_S3_BUCKET_MAX 63  /* bytes in a bucket name (S3 rule) */
#define EM_S3_KEY_MAX 1024   /* bytes in an object key (S3 rule) */

enum em_uri_scheme { EM_URI_FILE, EM_URI_HTTP, EM_URI_S3 };

struct em_uri {
    enum em_uri_scheme scheme;
    char bucket[EM_S3_BUCKET_MAX + 1]; /* s3 only */
    /* s3: the key (raw); file: the decoded path; http: the whole URL as given */
    char path[EM_URI_MAX + 1];
};

/* Parses s into *out. Errors: EM_E_ARG (detail names the rule broken). */
em_err em_uri_parse(const char *s, struct em_uri *out, struct em_errbuf *eb);

/* Percent-encodes len bytes of s the SigV4 / RFC 3986 way: A-Z a-z 0-9 - . _ ~ kept, '/'
 * kept when keep_slash, every other byte as %XX (upper-case hex). Writes at most cap bytes
 * including the NUL; the encoded length goes to *n. EM_E_TOO_LONG when cap is short. */
em_err em_uri_encode(const char *s, size_t len, int keep_slash, char *out, size_t cap,
                     size_t *n);

/* Joins a prefix URI and a name with exactly one '/' between them. Returns a malloc'd
 * string (caller frees) or NULL on allocation failure or NULL input. */
char *em_uri_join(const char *prefix, const char *name);

#endif
