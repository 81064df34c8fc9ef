/* common/id.h - stable identifiers.
 * Item id = first 16 bytes of SHA-256(batch_id || 0x00 || source_uri), hex (32 chars),
 * so a retry or a resubmission of the same URI in the same batch writes the same key.
 * Batch ids are random (getrandom) 16 hex chars prefixed "b-". Thread-safe. */
#ifndef EM_ID_H
#define EM_ID_H
#include <stddef.h>

#define EM_ID_LEN 32      /* hex chars of an item id */
#define EM_BATCH_ID_LEN 18 /* "b-" + 16 hex */

/* out must hold EM_ID_LEN + 1 bytes. */
void em_id_item(const char *batch_id, const char *uri, char out[EM_ID_LEN + 1]);
/* out must hold EM_BATCH_ID_LEN + 1 bytes. */
void em_id_batch(char out[EM_BATCH_ID_LEN + 1]);
/* Hex SHA-256 of data (65 bytes with NUL). */
void em_sha256_hex(const void *data, size_t len, char out[65]);
#endif
