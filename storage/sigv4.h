/* storage/sigv4.h - AWS Signature Version 4, computed independently of libcurl.
 *
 * ref: AWS S3 API docs, "Signature Calculations for the Authorization Header: Transferring
 * Payload in a Single Chunk (AWS Signature Version 4)":
 *   canonical request = method \n canonical URI \n canonical query \n canonical headers \n
 *                       signed headers \n payload hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz date \n date/region/service/aws4_request \n
 *                       hex(sha256(canonical request))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service),
 *                            "aws4_request")
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * storage/s3.c lets libcurl (CURLOPT_AWS_SIGV4) sign requests; this module exists so the
 * tests can check libcurl's Authorization header against a second computation and against
 * AWS's published examples. Pure functions, thread-safe. */
#ifndef EM_STORAGE_SIGV4_H
#define EM_STORAGE_SIGV4_H

#include <stddef.h>

#include "common/err.h"

#define EM_SIGV4_MAX_HEADERS 32      /* headers in one request */
#define EM_SIGV4_MAX_CANON 16384     /* bytes of a canonical request, with NUL */
#define EM_SIGV4_MAX_SIGNED 1024     /* bytes of the SignedHeaders list, with NUL */

struct em_sigv4_req {
    const char *method;          /* "GET", "PUT", ... */
    const char *path;            /* canonical URI, already percent-encoded: "/test%20x.txt" */
    const char *query;           /* query without '?', parts already encoded; NULL or "" for
                                  * none. Canonicalized here: sorted, "name" becomes "name=" */
    const char *const *headers;  /* nheaders strings "Name: value", each one signed */
    size_t nheaders;
    const char *payload_hash;    /* hex sha256 of the body, as sent in x-amz-content-sha256 */
    const char *amz_date;        /* "20130524T000000Z" */
    const char *region;          /* "us-east-1" */
    const char *service;         /* "s3" */
    const char *access_key;
    const char *secret_key;
};

struct em_sigv4_out {
    char canonical_request[EM_SIGV4_MAX_CANON];
    char string_to_sign[512];
    char signed_headers[EM_SIGV4_MAX_SIGNED]; /* "host;range;x-amz-date" */
    char signature[65];                       /* hex */
    char authorization[EM_SIGV4_MAX_SIGNED + 256]; /* the whole Authorization header value */
};

/* Computes every stage of the signature into *out. Errors: EM_E_ARG (missing field, header
 * without ':', more than EM_SIGV4_MAX_HEADERS headers), EM_E_TOO_LONG (a stage exceeds
 * its buffer). */
em_err em_sigv4_sign(const struct em_sigv4_req *r, struct em_sigv4_out *out,
                     struct em_errbuf *eb);

/* Canonical query string: parameters sorted by name then value, "name" written "name=".
 * Writes at most cap bytes with the NUL. EM_E_TOO_LONG or EM_E_ARG (too many parts). */
em_err em_sigv4_canonical_query(const char *query, char *out, size_t cap);

#endif
