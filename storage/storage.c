/* storage/storage.c - em_storage_*: resolves options (opts > AWS_* environment > defaults),
 * parses the URI and calls the ops table of its scheme. */
#include "storage/storage.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/impl.h"
#include "storage/uri.h"

#define DEFAULT_RETRIES 4
#define DEFAULT_TIMEOUT_MS 30000
#define MAX_RETRIES 100

struct em_storage_opts em_storage_opts_default(void)
{
    return (struct em_storage_opts){
        .path_style = -1,
        .retries = DEFAULT_RETRIES,
        .timeout_ms = DEFAULT_TIMEOUT_MS,
        .max_bytes = EM_STORAGE_MAX_OBJECT,
    };
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* opts value if set, else the first non-empty environment variable, else NULL. */
static const char *pick(const char *v, const char *env1, const char *env2)
{
    if (v && *v) return v;
    const char *e = env1 ? getenv(env1) : NULL;
    if (e && *e) return e;
    e = env2 ? getenv(env2) : NULL;
    return e && *e ? e : NULL;
}

static int dup_opt(char **dst, const char *src)
{
    if (!src) return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static void wipe_free(char *s)
{
    if (!s) return;
    volatile char *p = s;
    while (*p) *p++ = 0;
    free(s);
}

em_err em_storage_open(const struct em_storage_opts *opts, struct em_storage **out,
                       struct em_errbuf *eb)
{
    struct em_storage_opts d = em_storage_opts_default();
    const struct em_storage_opts *o = opts ? opts : &d;
    if (!out) return em_errf(eb, EM_E_ARG, "storage: out is NULL");
    *out = NULL;
    if (o->retries < 0 || o->retries > MAX_RETRIES)
        return em_errf(eb, EM_E_ARG, "storage: retries %d out of range 0..%d", o->retries,
                       MAX_RETRIES);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return em_errf(eb, EM_E_INTERNAL, "storage: curl_global_init failed");

    struct em_storage *st = calloc(1, sizeof *st);
    if (!st) return em_errf(eb, EM_E_NOMEM, "storage: out of memory");
    st->o = *o;
    if (st->o.timeout_ms <= 0) st->o.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (st->o.max_bytes == 0) st->o.max_bytes = EM_STORAGE_MAX_OBJECT;
    const char *ep = pick(o->endpoint, "AWS_ENDPOINT_URL", NULL);
    const char *region = pick(o->region, "AWS_REGION", "AWS_DEFAULT_REGION");
    st->endpoint_given = ep != NULL;
    if (dup_opt(&st->endpoint, ep) || dup_opt(&st->region, region ? region : "us-east-1") ||
        dup_opt(&st->access_key, pick(o->access_key, "AWS_ACCESS_KEY_ID", NULL)) ||
        dup_opt(&st->secret_key, pick(o->secret_key, "AWS_SECRET_ACCESS_KEY", NULL)) ||
        dup_opt(&st->session_token, pick(o->session_token, "AWS_SESSION_TOKEN", NULL))) {
        em_storage_close(st);
        return em_errf(eb, EM_E_NOMEM, "storage: out of memory");
    }
    /* the copies in st->o would dangle once the caller's strings go */
    st->o.endpoint = st->endpoint;
    st->o.region = st->region;
    st->o.access_key = st->access_key;
    st->o.secret_key = st->secret_key;
    st->o.session_token = st->session_token;
    st->rng = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) ^ (uint32_t)(uintptr_t)st;
    *out = st;
    return EM_OK;
}

void em_storage_close(struct em_storage *st)
{
    if (!st) return;
    if (st->s3) curl_easy_cleanup(st->s3);
    if (st->http) curl_easy_cleanup(st->http);
    free(st->endpoint);
    free(st->region);
    wipe_free(st->access_key);
    wipe_free(st->secret_key);
    wipe_free(st->session_token);
    free(st);
}

static const struct em_storage_ops *ops_for(const struct em_uri *u)
{
    switch (u->scheme) {
    case EM_URI_S3:
        return &em_storage_s3_ops;
    case EM_URI_HTTP:
        return &em_storage_http_ops;
    case EM_URI_FILE:
    default:
        return &em_storage_file_ops;
    }
}

/* Parses uri into a heap em_uri (it is ~5 KiB) and picks the ops table. */
static em_err resolve(struct em_storage *st, const char *uri, struct em_uri **u,
                      const struct em_storage_ops **ops, struct em_errbuf *eb)
{
    if (!st) return em_errf(eb, EM_E_ARG, "storage: handle is NULL");
    *u = malloc(sizeof **u);
    if (!*u) return em_errf(eb, EM_E_NOMEM, "storage: out of memory");
    em_err rc = em_uri_parse(uri, *u, eb);
    if (rc != EM_OK) {
        free(*u);
        *u = NULL;
        return rc;
    }
    *ops = ops_for(*u);
    return EM_OK;
}

em_err em_storage_get(struct em_storage *st, const char *uri, uint8_t **data, size_t *len,
                      struct em_errbuf *eb)
{
    struct em_uri *u;
    const struct em_storage_ops *ops;
    if (!data || !len) return em_errf(eb, EM_E_ARG, "storage get: data/len is NULL");
    *data = NULL;
    *len = 0;
    em_err rc = resolve(st, uri, &u, &ops, eb);
    if (rc != EM_OK) return rc;
    rc = ops->get(st, u, data, len, eb);
    free(u);
    return rc;
}

em_err em_storage_put(struct em_storage *st, const char *uri, const void *data, size_t len,
                      const char *content_type, struct em_errbuf *eb)
{
    struct em_uri *u;
    const struct em_storage_ops *ops;
    if (!data && len) return em_errf(eb, EM_E_ARG, "storage put: data is NULL");
    if (content_type && strpbrk(content_type, "\r\n"))
        return em_errf(eb, EM_E_ARG, "storage put: content type has a line break");
    em_err rc = resolve(st, uri, &u, &ops, eb);
    if (rc != EM_OK) return rc;
    rc = ops->put(st, u, data ? data : "", len, content_type, eb);
    free(u);
    return rc;
}

em_err em_storage_exists(struct em_storage *st, const char *uri, struct em_errbuf *eb)
{
    struct em_uri *u;
    const struct em_storage_ops *ops;
    em_err rc = resolve(st, uri, &u, &ops, eb);
    if (rc != EM_OK) return rc;
    rc = ops->exists(st, u, eb);
    free(u);
    return rc;
}

em_err em_storage_delete(struct em_storage *st, const char *uri, struct em_errbuf *eb)
{
    struct em_uri *u;
    const struct em_storage_ops *ops;
    em_err rc = resolve(st, uri, &u, &ops, eb);
    if (rc != EM_OK) return rc;
    rc = ops->del(st, u, eb);
    free(u);
    return rc;
}

char *em_storage_join(const char *prefix, const char *name)
{
    return em_uri_join(prefix, name);
}
