/* results/cli.c - shared loading and scoring for the results commands (cli.h). */
#include "results/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/cli.h"
#include "results/evtags.h"
#include "storage/storage.h"

static int load_tags(const char *who, const char *path, struct em_evtags **tags)
{
    *tags = NULL;
    if (!path) path = getenv("EARMARK_EVENT_TAGS");
    if (!path || !*path) return 0;
    uint8_t *data = NULL;
    size_t len = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = em_cli_read_file(path, EM_EVTAG_MAX_FILE, &data, &len, &eb);
    if (rc == EM_OK) rc = em_evtag_parse((const char *)data, len, tags, &eb);
    free(data);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark %s: %s: %s\n", who, path, em_errbuf_msg(&eb, rc));
        return 1;
    }
    return 0;
}

int em_rcli_opt(struct em_rcli_opts *o, int c, const char *arg)
{
    if (c == 'r') o->redis = em_cli_redis_arg((char *)arg); /* arg is getopt's optarg: argv */
    else if (c == 'C') return em_cli_redis_ca(arg) == 0 ? 1 : 0; /* empty: a usage error */
    else if (c == 'R') o->refs = arg;
    else if (c == 't') o->tags = arg;
    else return 0;
    return 1;
}

em_err em_rcli_open(const char *arg, const char *redis, char **out, struct em_storage **st,
                    struct em_errbuf *eb)
{
    struct em_storage_opts so = em_storage_opts_default();
    so.max_bytes = EM_RECS_MAX_LIST;
    *st = NULL;
    em_err rc = em_recs_resolve(arg, em_cli_redis_url(redis), out, eb);
    if (rc == EM_OK) rc = em_storage_open(&so, st, eb);
    if (rc != EM_OK) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int em_rcli_load(const char *who, const char *arg, const struct em_rcli_opts *o,
                 struct em_recs *r, struct em_evtags **tags)
{
    struct em_errbuf eb = {{0}};
    char *out = NULL;
    struct em_storage *st = NULL;
    memset(r, 0, sizeof *r);
    *tags = NULL;
    em_err rc = em_rcli_open(arg, o->redis, &out, &st, &eb);
    if (rc == EM_OK) rc = em_recs_load(st, out, who, r, &eb);
    em_storage_close(st);
    free(out);
    if (rc == EM_OK && o->refs) {
        uint8_t *data = NULL;
        size_t len = 0;
        rc = em_cli_read_file(o->refs, EM_RECS_MAX_LIST, &data, &len, &eb);
        if (rc == EM_OK) rc = em_recs_refs_load(r, data, len, &eb);
        free(data);
    }
    if (rc != EM_OK) {
        fprintf(stderr, "earmark %s: %s\n", who, em_errbuf_msg(&eb, rc));
        em_recs_free(r);
        return 1;
    }
    if (load_tags(who, o->tags, tags) != 0) {
        em_recs_free(r);
        return 1;
    }
    return 0;
}

int em_rcli_score(const char *who, const struct em_recs *r, const struct em_evtags *tags,
                  struct em_score_item **items)
{
    *items = calloc(r->n ? r->n : 1, sizeof **items);
    if (!*items) {
        fprintf(stderr, "earmark %s: out of memory\n", who);
        return 1;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct em_errbuf eb = {{0}};
        em_err rc = em_score_item(r->v[i].rec, r->v[i].ref, tags, &(*items)[i], &eb);
        if (rc != EM_OK) {
            fprintf(stderr, "earmark %s: %s: %s\n", who, r->v[i].uri, em_errbuf_msg(&eb, rc));
            free(*items);
            *items = NULL;
            return 1;
        }
    }
    return 0;
}

json_t *em_rcli_jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}
