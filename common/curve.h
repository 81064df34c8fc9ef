/* common/curve.h - ZeroMQ CURVE key files, and the list of worker keys a coordinator allows.
 *
 * What each key protects (README, Reliability: threat model):
 *   coordinator pair  the coordinator proves who it is to workers (a worker refuses to
 *                     connect to any other server key) and encrypts every frame
 *   worker pair       a worker proves who it is; the coordinator's ZAP handler accepts only
 *                     public keys in its allow list, so nobody else is sent a task
 * Files (all keys Z85 text, 40 characters, as zmq_curve_keypair() makes them):
 *   PREFIX.key  the secret key, one line (lines starting with '#' and blank lines are
 *               skipped); the public key is derived from it. Must be a regular file that
 *               neither group nor others can read or write (0600), or it is refused.
 *   PREFIX.pub  the public key, one line (same comment rules).
 *   allow list  a directory (every regular *.pub file in it, one key each) or a file (one
 *               key per line); neither may be writable by group or others, since whoever
 *               writes it decides who gets tasks.
 * Files are at most EM_CURVE_MAX_FILE bytes and a list holds at most EM_CURVE_MAX_ALLOWED
 * keys; every refusal is one line naming the file and the cause. Thread-safe (no globals);
 * an allow list is read-only after load. */
#ifndef EM_CURVE_H
#define EM_CURVE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_CURVE_Z85 40           /* characters of a Z85 key */
#define EM_CURVE_BIN 32           /* bytes of a key */
#define EM_CURVE_MAX_FILE 65536   /* bytes of a key or allow-list file */
#define EM_CURVE_MAX_ALLOWED 4096 /* keys in an allow list */

struct em_curve_pair {
    char pub[EM_CURVE_Z85 + 1], sec[EM_CURVE_Z85 + 1]; /* Z85, NUL-terminated */
};

/* 1 when libzmq was built with CURVE (libsodium). */
int em_curve_available(void);

/* Makes a new key pair and writes PREFIX.key (0600) and PREFIX.pub (0644). Refuses to
 * overwrite either. Errors: EM_E_ARG (exists, prefix too long), EM_E_IO, EM_E_INTERNAL (no
 * CURVE in libzmq). */
em_err em_curve_keygen(const char *prefix, struct em_errbuf *eb);

/* Reads a secret key file (mode checked) into *out, public key derived. Errors: EM_E_IO
 * (cannot open), EM_E_AUTH (readable by group/others, not a regular file), EM_E_FORMAT (no
 * valid key in it). */
em_err em_curve_load_pair(const char *path, struct em_curve_pair *out, struct em_errbuf *eb);
/* Reads a public key file: Z85 into out. Errors: EM_E_IO, EM_E_FORMAT. */
em_err em_curve_load_pub(const char *path, char out[EM_CURVE_Z85 + 1], struct em_errbuf *eb);

struct em_curve_allow;
/* Loads an allow list from a directory or a file (see above). On EM_OK the caller owns *out
 * (em_curve_allow_free). An empty list is EM_E_ARG (it would refuse every worker). Errors:
 * EM_E_IO, EM_E_AUTH (writable by group/others), EM_E_FORMAT, EM_E_TOO_LONG, EM_E_NOMEM. */
em_err em_curve_allow_load(const char *path, struct em_curve_allow **out, struct em_errbuf *eb);
/* 1 when the 32-byte key is in the list. */
int em_curve_allow_has(const struct em_curve_allow *a, const uint8_t *key, size_t len);
size_t em_curve_allow_count(const struct em_curve_allow *a);
void em_curve_allow_free(struct em_curve_allow *a); /* NULL is a no-op */

#endif
