/* storage/xfer.h - one HTTP request through libcurl with retries, shared by http.c and s3.c.
 * Internal to storage/.
 *
 * em_xfer_run() sends the request, retrying connection errors, 429 and 5xx replies with
 * exponential backoff (EM_XFER_BACKOFF_START_MS doubling up to EM_XFER_BACKOFF_CAP_MS, with
 * jitter) up to st->o.retries times, and hands back the last HTTP status and body. The
 * caller maps statuses to codes with em_xfer_status_err(). */
#ifndef EM_STORAGE_XFER_H
#define EM_STORAGE_XFER_H

#include <curl/curl.h>

#include "storage/impl.h"

#define EM_XFER_BACKOFF_START_MS 100
#define EM_XFER_BACKOFF_CAP_MS 2000
#define EM_XFER_MAX_ERROR_BODY 8192 /* bytes of a non-2xx body kept to find the error Code */
#define EM_XFER_MAX_REDIRECTS 5

struct em_xfer {
    const char *method;          /* "GET", "PUT", "HEAD", "DELETE" */
    const char *url;             /* fully encoded */
    struct curl_slist *headers;  /* borrowed; may be NULL */
    const void *body;            /* PUT only; borrowed */
    size_t body_len;
    size_t max_bytes;            /* cap on a 2xx body (EM_E_TOO_LONG beyond) */
    const char *sigv4;           /* "aws:amz:REGION:s3" to sign, NULL for none */
    const char *user, *pass;     /* access/secret key when signing */
    int follow_redirects;        /* http only */
    const char *what;            /* for messages: "s3 PUT s3://b/k" (no credentials) */
};

struct em_xfer_resp {
    long status;   /* last HTTP status */
    uint8_t *data; /* malloc'd, NUL-terminated; the caller frees (also on error) */
    size_t len;
};

/* EM_OK once a reply arrived (any status; the caller judges it). Errors: EM_E_IO
 * (connection failed after retries), EM_E_TOO_LONG (2xx body beyond max_bytes),
 * EM_E_TIMEOUT, EM_E_ARG (URL refused by libcurl), EM_E_NOMEM. */
em_err em_xfer_run(struct em_storage *st, CURL *h, const struct em_xfer *x,
                   struct em_xfer_resp *r, struct em_errbuf *eb);

/* Maps a non-2xx reply: 404 EM_E_NOTFOUND, 401/403 EM_E_AUTH, else EM_E_STORAGE; the
 * detail names `what`, the status and the <Code> of an S3 XML error body if any. */
em_err em_xfer_status_err(const struct em_xfer *x, const struct em_xfer_resp *r,
                          struct em_errbuf *eb);

#endif
