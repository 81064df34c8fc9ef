/* common/id.h - stable identifiers.
 * Item id = the manifest line's "id" when it has one (em_id_valid), else the first 16
 * bytes of SHA-256(source_uri), hex (32 chars). Never the batch: the output key
 * <out>/<item>.json stays the same across retries, resubmissions and --skip-done reruns,
 * so each source has exactly one object under an output prefix.
 * Batch ids are random (getrandom) 16 hex chars prefixed "b-". Thread-safe. */
#ifndef EM_ID_H
#define EM_ID_H
#include <stddef.h>

#define EM_ID_LEN 32      /* hex chars of an item id */
#define EM_BATCH_ID_LEN 18 /* "b-" + 16 hex */
#define EM_ID_MAX 128     /* bytes of an item id given in a manifest */

/* The hashed item id of a source URI; out must hold EM_ID_LEN + 1 bytes. */
void em_id_item(const char *uri, char out[EM_ID_LEN + 1]);
/* 1 if s is a usable item id: 1..EM_ID_MAX bytes of [A-Za-z0-9._-], not "." or ".." (it
 * becomes a Redis key part and an object name). */
int em_id_valid(const char *s);
/* out must hold EM_BATCH_ID_LEN + 1 bytes. */
void em_id_batch(char out[EM_BATCH_ID_LEN + 1]);
/* Hex SHA-256 of data (65 bytes with NUL). */
void em_sha256_hex(const void *data, size_t len, char out[65]);
#endif
