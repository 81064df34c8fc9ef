/* common/curve.c - CURVE key files and allow lists (see curve.h). */
#include "common/curve.h"
#include "common/smallfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

struct em_curve_allow {
    uint8_t (*keys)[EM_CURVE_BIN];
    size_t n, cap;
};

int em_curve_available(void) { return zmq_has("curve"); }

static em_err slurp(const char *path, char **out, struct stat *st, struct em_errbuf *eb)
{
    memset(st, 0, sizeof *st);
    return em_smallfile_read(path, EM_CURVE_MAX_FILE, out, &st->st_mode, eb);
}

/* Next key line of text at *p (skipping blanks and '#' comments), trimmed, into z (Z85,
 * NUL-terminated). 1 found, 0 end of text, -1 a line that is not a key (*line gets its
 * number). */
static int next_key(const char **p, char z[EM_CURVE_Z85 + 1], int *line)
{
    while (**p) {
        const char *s = *p, *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        *p = s + len + (e ? 1 : 0);
        (*line)++;
        while (len && (*s == ' ' || *s == '\t')) s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) len--;
        if (len == 0 || *s == '#') continue;
        uint8_t bin[EM_CURVE_BIN];
        if (len != EM_CURVE_Z85) return -1;
        memcpy(z, s, len);
        z[len] = 0;
        return zmq_z85_decode(bin, z) ? 1 : -1;
    }
    return 0;
}

static em_err one_key(const char *path, const char *text, char z[EM_CURVE_Z85 + 1],
                      struct em_errbuf *eb)
{
    int line = 0;
    int r = next_key(&text, z, &line);
    if (r == 1) return EM_OK;
    if (r == 0) return em_errf(eb, EM_E_FORMAT, "%s: no key in it", path);
    return em_errf(eb, EM_E_FORMAT, "%s: line %d is not a %d-character Z85 key", path, line,
                   EM_CURVE_Z85);
}

em_err em_curve_load_pair(const char *path, struct em_curve_pair *out, struct em_errbuf *eb)
{
    char *text = NULL;
    struct stat st;
    memset(out, 0, sizeof *out);
    em_err rc = slurp(path, &text, &st, eb);
    if (rc == EM_OK) rc = em_smallfile_private(path, st.st_mode, "secret key", eb);
    if (rc == EM_OK) rc = one_key(path, text, out->sec, eb);
    if (rc == EM_OK && zmq_curve_public(out->pub, out->sec) != 0)
        rc = em_errf(eb, EM_E_INTERNAL, "%s: cannot derive the public key: %s", path,
                     zmq_strerror(errno));
    if (text) {
        memset(text, 0, strlen(text)); /* the secret does not outlive its use */
        free(text);
    }
    if (rc != EM_OK) memset(out, 0, sizeof *out);
    return rc;
}

em_err em_curve_load_pub(const char *path, char out[EM_CURVE_Z85 + 1], struct em_errbuf *eb)
{
    char *text = NULL;
    struct stat st;
    out[0] = 0;
    em_err rc = slurp(path, &text, &st, eb);
    if (rc == EM_OK) rc = one_key(path, text, out, eb);
    free(text);
    return rc;
}

/* Writes text to path, created with mode (never over an existing file). */
static em_err write_new(const char *path, const char *text, mode_t mode, struct em_errbuf *eb)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return em_errf(eb, errno == EEXIST ? EM_E_ARG : EM_E_IO, "%s: %s", path,
                       errno == EEXIST ? "exists; remove it first or choose another -o"
                                       : strerror(errno));
    size_t n = strlen(text);
    em_err rc = EM_OK;
    if (fchmod(fd, mode) != 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0)
        rc = em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == EM_OK) rc = em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    if (rc != EM_OK) unlink(path);
    return rc;
}

em_err em_curve_keygen(const char *prefix, struct em_errbuf *eb)
{
    char kp[4096], pp[4096], text[160];
    struct em_curve_pair k;
    if (!prefix || !*prefix) return em_errf(eb, EM_E_ARG, "keygen: no output prefix (-o)");
    if (snprintf(kp, sizeof kp, "%s.key", prefix) >= (int)sizeof kp ||
        snprintf(pp, sizeof pp, "%s.pub", prefix) >= (int)sizeof pp)
        return em_errf(eb, EM_E_ARG, "keygen: prefix too long");
    if (!em_curve_available())
        return em_errf(eb, EM_E_INTERNAL, "keygen: this libzmq has no CURVE support");
    if (zmq_curve_keypair(k.pub, k.sec) != 0)
        return em_errf(eb, EM_E_INTERNAL, "keygen: %s", zmq_strerror(errno));
    snprintf(text, sizeof text, "# earmark CURVE secret key; keep it mode 0600\n%s\n", k.sec);
    em_err rc = write_new(kp, text, 0600, eb);
    memset(&k.sec, 0, sizeof k.sec);
    if (rc != EM_OK) {
        memset(text, 0, sizeof text);
        return rc;
    }
    memset(text, 0, sizeof text);
    snprintf(text, sizeof text, "%s\n", k.pub);
    rc = write_new(pp, text, 0644, eb);
    if (rc != EM_OK) unlink(kp);
    return rc;
}

static em_err allow_add(struct em_curve_allow *a, const char *z, const char *path,
                        struct em_errbuf *eb)
{
    if (a->n >= EM_CURVE_MAX_ALLOWED)
        return em_errf(eb, EM_E_TOO_LONG, "%s: more than %d allowed keys", path,
                       EM_CURVE_MAX_ALLOWED);
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        void *v = realloc(a->keys, nc * sizeof *a->keys);
        if (!v) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", path);
        a->keys = v;
        a->cap = nc;
    }
    zmq_z85_decode(a->keys[a->n++], z);
    return EM_OK;
}

static em_err not_writable_by_others(const char *path, const struct stat *st, struct em_errbuf *eb)
{
    if (!(st->st_mode & 022)) return EM_OK;
    return em_errf(eb, EM_E_AUTH,
                   "%s: allow list is writable by group or others (mode %04o); whoever writes "
                   "it decides who gets tasks",
                   path, (unsigned)(st->st_mode & 07777));
}

static em_err allow_file(struct em_curve_allow *a, const char *path, int every_line,
                         struct em_errbuf *eb)
{
    char *text = NULL;
    struct stat st;
    em_err rc = slurp(path, &text, &st, eb);
    if (rc == EM_OK) rc = not_writable_by_others(path, &st, eb);
    const char *p = text;
    char z[EM_CURVE_Z85 + 1];
    int line = 0, r;
    while (rc == EM_OK && (r = next_key(&p, z, &line)) != 0) {
        if (r < 0)
            rc = em_errf(eb, EM_E_FORMAT, "%s: line %d is not a %d-character Z85 key", path,
                         line, EM_CURVE_Z85);
        else
            rc = allow_add(a, z, path, eb);
        if (!every_line) break;
    }
    free(text);
    return rc;
}

static em_err allow_dir(struct em_curve_allow *a, const char *path, struct em_errbuf *eb)
{
    DIR *d = opendir(path);
    if (!d) return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    em_err rc = EM_OK;
    for (struct dirent *de; rc == EM_OK && (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".pub") != 0) continue;
        char f[4096];
        if (snprintf(f, sizeof f, "%s/%s", path, de->d_name) >= (int)sizeof f) continue;
        rc = allow_file(a, f, 0, eb);
    }
    closedir(d);
    return rc;
}

em_err em_curve_allow_load(const char *path, struct em_curve_allow **out, struct em_errbuf *eb)
{
    *out = NULL;
    struct stat st;
    if (!path || !*path) return em_errf(eb, EM_E_ARG, "no allow list given");
    if (stat(path, &st) != 0) return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    struct em_curve_allow *a = calloc(1, sizeof *a);
    if (!a) return em_errf(eb, EM_E_NOMEM, "allow list: out of memory");
    em_err rc;
    if (S_ISDIR(st.st_mode)) {
        rc = not_writable_by_others(path, &st, eb);
        if (rc == EM_OK) rc = allow_dir(a, path, eb);
    } else {
        rc = allow_file(a, path, 1, eb);
    }
    if (rc == EM_OK && a->n == 0)
        rc = em_errf(eb, EM_E_ARG, "%s: no public keys in it (every worker would be refused)",
                     path);
    if (rc != EM_OK) {
        em_curve_allow_free(a);
        return rc;
    }
    *out = a;
    return EM_OK;
}

int em_curve_allow_has(const struct em_curve_allow *a, const uint8_t *key, size_t len)
{
    if (!a || len != EM_CURVE_BIN) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(a->keys[i], key, EM_CURVE_BIN) == 0) return 1;
    return 0;
}

size_t em_curve_allow_count(const struct em_curve_allow *a) { return a ? a->n : 0; }

void em_curve_allow_free(struct em_curve_allow *a)
{
    if (!a) return;
    free(a->keys);
    free(a);
}
