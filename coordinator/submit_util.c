/* coordinator/submit_util.c - prompts/producer JSON and the --skip-done record checks. */
#include "coordinator/submit_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"
#include "storage/storage.h"
#include "storage/uri.h"

int em_submit_prompt_known(const char *name)
{
    return name && (strcmp(name, "caption") == 0 || strcmp(name, "transcript") == 0 ||
                    strcmp(name, "events") == 0);
}

static json_t *gen_defaults(unsigned max_new_tokens)
{
    /* Greedy decoding: deterministic output, so a retry writes the same record. 0 means
     * "the checkpoint's generation_config.json value" (as on the wire), so the repetition
     * penalty the model ships with applies, as Hugging Face applies it even when greedy. */
    return json_pack("{s:i, s:f, s:i, s:f, s:f, s:i, s:b}", "max_new_tokens", (int)max_new_tokens, "temperature",
                     0.0, "top_k", 0, "top_p", 0.0, "repetition_penalty", 0.0, "seed", 0, "greedy",
                     1);
}

em_err em_submit_producer(const char *model, const char *const *builtin, size_t nbuiltin,
                          const char *const *free_text, size_t nfree, unsigned max_new_tokens,
                          bool strict_audio, char **prompts_json, char **gen_json, char **hash,
                          struct em_errbuf *eb)
{
    *prompts_json = *gen_json = *hash = NULL;
    if (max_new_tokens > EM_SUBMIT_MAX_NEW_TOKENS)
        return em_errf(eb, EM_E_ARG, "max_new_tokens %u, expected 1..%u", max_new_tokens,
                       EM_SUBMIT_MAX_NEW_TOKENS);
    json_t *pr = json_array(), *gen = gen_defaults(max_new_tokens ? max_new_tokens
                                                                  : EM_SUBMIT_DEFAULT_NEW_TOKENS),
           *all = NULL;
    char *canon = NULL;
    em_err rc = EM_E_NOMEM;
    if (!pr || !gen) goto fail;
    if (strict_audio && json_object_set_new(gen, "strict_audio", json_true())) goto fail;
    for (size_t i = 0; i < nbuiltin; i++) {
        if (!em_submit_prompt_known(builtin[i])) {
            rc = em_errf(eb, EM_E_ARG, "unknown prompt '%s'", builtin[i]);
            goto fail;
        }
        if (json_array_append_new(pr, json_pack("{s:s, s:s}", "name", builtin[i], "text", "")))
            goto fail;
    }
    for (size_t i = 0; i < nfree; i++) {
        char name[32];
        snprintf(name, sizeof name, "free%u", (unsigned)(i + 1));
        json_t *p = json_pack("{s:s, s:s}", "name", name, "text", free_text[i]);
        if (!p) {
            rc = em_errf(eb, EM_E_ARG, "prompt %zu is not valid UTF-8", i + 1);
            goto fail;
        }
        if (json_array_append_new(pr, p)) goto fail;
    }
    all = json_pack("{s:s, s:O, s:s, s:O}", "earmark_version", EM_VERSION, "gen", gen, "model",
                    model ? model : "", "prompts", pr);
    if (!all) goto fail;
    canon = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    *prompts_json = json_dumps(pr, JSON_COMPACT);
    *gen_json = json_dumps(gen, JSON_COMPACT | JSON_SORT_KEYS);
    *hash = malloc(65);
    if (!canon || !*prompts_json || !*gen_json || !*hash) goto fail;
    em_sha256_hex(canon, strlen(canon), *hash);
    rc = EM_OK;
    goto out;
fail:
    if (rc == EM_E_NOMEM) em_errf(eb, EM_E_NOMEM, "producer: out of memory");
    free(*prompts_json);
    free(*gen_json);
    free(*hash);
    *prompts_json = *gen_json = *hash = NULL;
out:
    free(canon);
    json_decref(all);
    json_decref(pr);
    json_decref(gen);
    return rc;
}

int em_submit_record_current(const uint8_t *data, size_t len, const char *hash)
{
    json_t *r = json_loadb((const char *)data, len, 0, NULL);
    if (!r) return 0;
    const char *st = json_string_value(json_object_get(r, "status"));
    const char *h = json_string_value(json_object_get(json_object_get(r, "producer"), "hash"));
    int ok = st && h && hash && strcmp(st, "ok") == 0 && strcmp(h, hash) == 0;
    json_decref(r);
    return ok;
}

struct em_submit_prev {
    json_t *map; /* source -> output */
};

struct em_submit_prev *em_submit_prev_parse(const uint8_t *data, size_t len)
{
    struct em_submit_prev *p = calloc(1, sizeof *p);
    if (!p || !(p->map = json_object())) {
        free(p);
        return NULL;
    }
    const char *s = (const char *)data, *end = s + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        json_t *o = json_loadb(s, (size_t)(e - s), 0, NULL);
        const char *src = json_string_value(json_object_get(o, "source"));
        const char *st = json_string_value(json_object_get(o, "status"));
        json_t *out = json_object_get(o, "output");
        if (src && st && strcmp(st, "ok") == 0 && json_is_string(out))
            json_object_set(p->map, src, out);
        json_decref(o);
        s = nl ? nl + 1 : end;
    }
    return p;
}

void em_submit_prev_load(struct em_storage *st, const char *out, struct em_submit_prev **prev)
{
    *prev = NULL;
    char *uri = em_storage_join(out, "manifest.jsonl");
    uint8_t *data = NULL;
    size_t len = 0;
    if (uri && em_storage_get(st, uri, &data, &len, NULL) == EM_OK)
        *prev = em_submit_prev_parse(data, len);
    free(data);
    free(uri);
}

const char *em_submit_prev_output(const struct em_submit_prev *p, const char *source)
{
    return p ? json_string_value(json_object_get(p->map, source)) : NULL;
}

void em_submit_prev_free(struct em_submit_prev *p)
{
    if (!p) return;
    json_decref(p->map);
    free(p);
}

/* 1 if the record at uri is current. */
static int check(struct em_storage *st, const char *uri, const char *hash)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int cur = 0;
    if (em_storage_get(st, uri, &data, &len, NULL) == EM_OK)
        cur = em_submit_record_current(data, len, hash);
    free(data);
    return cur;
}

int em_submit_find_current(struct em_storage *st, const char *out,
                           const struct em_submit_prev *prev, const char *item_id,
                           const char *source, const char *hash, char **uri)
{
    char name[EM_ID_MAX + 8];
    snprintf(name, sizeof name, "%s.json", item_id);
    *uri = em_storage_join(out, name);
    if (!*uri) return -1;
    if (check(st, *uri, hash)) return 1;
    free(*uri);
    *uri = NULL;
    const char *old = em_submit_prev_output(prev, source);
    if (old && check(st, old, hash)) {
        *uri = strdup(old);
        return *uri ? 1 : -1;
    }
    return 0;
}

em_err em_submit_check_out(struct em_storage *st, const char *out, const char *probe_name,
                           struct em_errbuf *eb)
{
    struct em_errbuf ub = {{0}};
    struct em_uri *u = malloc(sizeof *u);
    if (!u) return em_errf(eb, EM_E_NOMEM, "--out: out of memory");
    em_err rc = em_uri_parse(out, u, &ub);
    if (rc == EM_OK && u->scheme == EM_URI_HTTP)
        rc = em_errf(&ub, EM_E_ARG, "http(s) is read-only; records need file:/// or s3://");
    else if (rc == EM_OK && u->scheme == EM_URI_FILE && u->path[0] != '/')
        rc = em_errf(&ub, EM_E_ARG, "relative path (it would be written relative to the "
                                    "coordinator's working directory); give file:///abs/path");
    free(u);
    if (rc != EM_OK) return em_errf(eb, rc, "--out %.200s: %s", out, ub.msg);
    char *probe = em_storage_join(out, probe_name);
    if (!probe) return em_errf(eb, EM_E_NOMEM, "--out: out of memory");
    static const char body[] = "earmark submit probe\n";
    rc = em_storage_put(st, probe, body, sizeof body - 1, "text/plain", &ub);
    if (rc == EM_OK) rc = em_storage_delete(st, probe, &ub);
    free(probe);
    if (rc != EM_OK)
        return em_errf(eb, rc, "--out %.200s: cannot write there (%s)", out, em_errbuf_msg(&ub, rc));
    return EM_OK;
}
