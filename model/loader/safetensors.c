/* model/loader/safetensors.c - safetensors header parser (no I/O) and the checkpoint
 * directory: config + mmap of model.safetensors or the shards named by
 * model.safetensors.index.json, every tensor checked against tensors.def.
 *
 *   file = u64le H | H bytes JSON header | data area
 *   header entry: "name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}
 *   ref: huggingface/safetensors README "Format" */
#include "model/loader/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/loader/gguf.h"
#include "model/loader/tensors.h"

struct st_entry {
    char *name;
    struct em_tensor t;
    uint64_t begin, end; /* offsets in the data area */
};

struct em_st {
    struct st_entry *e;
    size_t n;
    size_t *by_name; /* indices sorted by name */
};

void em_st_free(struct em_st *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->e[i].name);
    free(st->e);
    free(st->by_name);
    free(st);
}

size_t em_st_count(const struct em_st *st) { return st->n; }

void em_st_get(const struct em_st *st, size_t i, struct em_tensor *t) { *t = st->e[i].t; }

static int cmp_name(const void *a, const void *b, void *ctx)
{
    const struct em_st *st = ctx;
    return strcmp(st->e[*(const size_t *)a].name, st->e[*(const size_t *)b].name);
}
static int cmp_begin(const void *a, const void *b, void *ctx)
{
    const struct em_st *st = ctx;
    uint64_t x = st->e[*(const size_t *)a].begin, y = st->e[*(const size_t *)b].begin;
    return x < y ? -1 : x > y;
}

em_err em_st_find(const struct em_st *st, const char *name, struct em_tensor *t)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->e[st->by_name[mid]].name);
        if (c == 0) {
            *t = st->e[st->by_name[mid]].t;
            return EM_OK;
        }
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return EM_E_NOTFOUND;
}

static int parse_dtype(const char *s)
{
    if (strcmp(s, "F32") == 0) return EM_DT_F32;
    if (strcmp(s, "F16") == 0) return EM_DT_F16;
    if (strcmp(s, "BF16") == 0) return EM_DT_BF16;
    return -1;
}

/* Reads a non-negative integer that fits in int64 from a JSON number. */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (uint64_t)x;
    return 0;
}

static em_err parse_entry(struct st_entry *en, const char *key, const json_t *v,
                          uint64_t data_len, const uint8_t *data, const char *file,
                          struct em_errbuf *eb)
{
    if (strlen(key) >= EM_ST_MAX_NAME)
        return em_errf(eb, EM_E_MODEL, "%s: tensor name longer than %d bytes", file,
                       EM_ST_MAX_NAME);
    if (!json_is_object(v))
        return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': header entry is not an object", file, key);
    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
        return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': needs dtype, shape and data_offsets",
                       file, key);
    int dt = parse_dtype(json_string_value(jd));
    if (dt < 0)
        return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': unsupported dtype %.16s", file, key,
                       json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > EM_TENSOR_MAX_DIMS)
        return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': %zu dims (max %d)", file, key, nd,
                       EM_TENSOR_MAX_DIMS);
    uint64_t numel = 1;
    memset(&en->t, 0, sizeof en->t);
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (get_u64(json_array_get(js, i), &d) != 0 || d > (uint64_t)INT64_MAX / 16)
            return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': bad shape", file, key);
        if (d != 0 && numel > UINT64_MAX / 16 / d)
            return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': shape overflows", file, key);
        numel *= d;
        en->t.shape[i] = (int64_t)d;
    }
    uint64_t b, e;
    if (json_array_size(jo) != 2 || get_u64(json_array_get(jo, 0), &b) != 0 ||
        get_u64(json_array_get(jo, 1), &e) != 0 || b > e)
        return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': bad data_offsets", file, key);
    if (e > data_len)
        return em_errf(eb, EM_E_MODEL,
                       "%s: tensor '%s': data_offsets [%llu, %llu] outside the data area of %llu "
                       "bytes (truncated file?)",
                       file, key, (unsigned long long)b, (unsigned long long)e,
                       (unsigned long long)data_len);
    uint64_t want = numel * em_dtype_size(dt);
    if (e - b != want)
        return em_errf(eb, EM_E_MODEL,
                       "%s: tensor '%s': %llu bytes, but %s x %llu elements needs %llu", file,
                       key, (unsigned long long)(e - b), em_dtype_name(dt),
                       (unsigned long long)numel, (unsigned long long)want);
    en->name = strdup(key);
    if (!en->name) return EM_E_NOMEM;
    en->t.name = en->name;
    en->t.dtype = dt;
    en->t.ndim = (int)nd;
    en->t.data = data + b;
    en->t.nbytes = (size_t)want;
    en->begin = b;
    en->end = e;
    return EM_OK;
}

static em_err parse_header(struct em_st *st, const json_t *root, uint64_t data_len,
                           const uint8_t *data, const char *file, struct em_errbuf *eb)
{
    size_t cap = json_object_size(root);
    if (cap > EM_ST_MAX_TENSORS + 1)
        return em_errf(eb, EM_E_MODEL, "%s: %zu header entries (max %d)", file, cap,
                       EM_ST_MAX_TENSORS);
    st->e = calloc(cap ? cap : 1, sizeof *st->e);
    st->by_name = calloc(cap ? cap : 1, sizeof *st->by_name);
    if (!st->e || !st->by_name) return EM_E_NOMEM;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v))
                return em_errf(eb, EM_E_MODEL, "%s: __metadata__ is not an object", file);
            continue;
        }
        em_err rc = parse_entry(&st->e[st->n], key, v, data_len, data, file, eb);
        if (rc != EM_OK) return rc;
        st->n++;
    }
    for (size_t i = 0; i < st->n; i++) st->by_name[i] = i;
    /* Overlap check on a copy of the index sorted by offset. */
    size_t *ord = malloc((st->n ? st->n : 1) * sizeof *ord);
    if (!ord) return EM_E_NOMEM;
    for (size_t i = 0; i < st->n; i++) ord[i] = i;
    qsort_r(ord, st->n, sizeof *ord, cmp_begin, st);
    em_err rc = EM_OK;
    for (size_t i = 1; i < st->n && rc == EM_OK; i++) {
        const struct st_entry *p = &st->e[ord[i - 1]], *q = &st->e[ord[i]];
        if (q->begin < p->end)
            rc = em_errf(eb, EM_E_MODEL, "%s: tensors '%s' and '%s' overlap", file, p->name,
                         q->name);
    }
    free(ord);
    if (rc != EM_OK) return rc;
    qsort_r(st->by_name, st->n, sizeof *st->by_name, cmp_name, st);
    return EM_OK;
}

em_err em_st_parse(const uint8_t *buf, size_t len, const char *file, struct em_st **out,
                   struct em_errbuf *eb)
{
    *out = NULL;
    if (len < 8)
        return em_errf(eb, EM_E_MODEL, "%s: %zu bytes, too short for a safetensors header",
                       file, len);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | buf[i];
    if (h > EM_ST_MAX_HEADER)
        return em_errf(eb, EM_E_MODEL, "%s: header length %llu over the %u-byte limit", file,
                       (unsigned long long)h, EM_ST_MAX_HEADER);
    if (h > len - 8)
        return em_errf(eb, EM_E_MODEL, "%s: header length %llu but only %zu bytes follow", file,
                       (unsigned long long)h, len - 8);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)h, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return em_errf(eb, EM_E_MODEL, "%s: header JSON: %s (at byte %d)", file, jerr.text,
                       jerr.position);
    em_err rc = EM_E_NOMEM;
    struct em_st *st = NULL;
    if (!json_is_object(root)) {
        rc = em_errf(eb, EM_E_MODEL, "%s: header JSON is not an object", file);
        goto fail;
    }
    st = calloc(1, sizeof *st);
    if (!st) goto fail;
    rc = parse_header(st, root, len - 8 - h, buf + 8 + h, file, eb);
    if (rc != EM_OK) goto fail;
    json_decref(root);
    *out = st;
    return EM_OK;
fail:
    json_decref(root);
    em_st_free(st);
    return rc;
}

/* ---- checkpoint directory ---------------------------------------------------------------- */

struct shard {
    char *file;   /* name inside the directory */
    void *map;
    size_t size;
    struct em_st *st;
};

struct em_ckpt {
    struct em_qa_config cfg;
    struct shard *sh;
    size_t nsh;
    int dtype;
    const struct em_tensor *views; /* em_ckpt_from_views: borrowed */
    size_t nviews;
    struct em_gguf *gg; /* a .gguf checkpoint instead of shards (model/loader/gguf.h) */
};

void em_ckpt_close(struct em_ckpt *ck)
{
    if (!ck) return;
    for (size_t i = 0; i < ck->nsh; i++) {
        em_st_free(ck->sh[i].st);
        if (ck->sh[i].map) munmap(ck->sh[i].map, ck->sh[i].size);
        free(ck->sh[i].file);
    }
    free(ck->sh);
    em_gguf_close(ck->gg);
    free(ck);
}

const struct em_qa_config *em_ckpt_config(const struct em_ckpt *ck) { return &ck->cfg; }
int em_ckpt_dtype(const struct em_ckpt *ck) { return ck->dtype; }
const struct em_gguf *em_ckpt_gguf(const struct em_ckpt *ck) { return ck->gg; }

static em_err map_shard(struct shard *s, const char *dir, struct em_errbuf *eb)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, s->file) >= (int)sizeof path)
        return em_errf(eb, EM_E_ARG, "%s: path too long", s->file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return em_errf(eb, EM_E_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return em_errf(eb, EM_E_MODEL, "%s: %lld bytes, too short for a safetensors header",
                       s->file, (long long)sb.st_size);
    }
    s->size = (size_t)sb.st_size;
    void *m = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return em_errf(eb, EM_E_IO, "%s: mmap: %s", path, strerror(errno));
    s->map = m;
    return em_st_parse(m, s->size, s->file, &s->st, eb);
}

static int valid_shard_name(const char *f)
{
    size_t n = strlen(f);
    return n > 0 && n < 256 && !strchr(f, '/') && strcmp(f, ".") && strcmp(f, "..");
}

/* Lists the shards from model.safetensors.index.json (weight_map values, deduplicated in
 * first-seen order), or model.safetensors when there is no index. */
static em_err list_shards(struct em_ckpt *ck, const char *dir, json_t **wmap_out,
                          struct em_errbuf *eb)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    *wmap_out = NULL;
    if (access(path, F_OK) != 0) {
        ck->sh = calloc(1, sizeof *ck->sh);
        if (!ck->sh || !(ck->sh[0].file = strdup("model.safetensors"))) return EM_E_NOMEM;
        ck->nsh = 1;
        return EM_OK;
    }
    char *txt = NULL;
    size_t len = 0;
    em_err rc = em_cfg_read_file(path, 0, &txt, &len, eb);
    if (rc != EM_OK) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(txt, len, 0, &jerr);
    free(txt);
    if (!root)
        return em_errf(eb, EM_E_MODEL, "model.safetensors.index.json: %s (line %d)", jerr.text,
                       jerr.line);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        return em_errf(eb, EM_E_MODEL, "model.safetensors.index.json: no weight_map object");
    }
    ck->sh = calloc(EM_CKPT_MAX_SHARDS, sizeof *ck->sh);
    if (!ck->sh) {
        json_decref(root);
        return EM_E_NOMEM;
    }
    const char *key;
    json_t *v;
    rc = EM_OK;
    json_object_foreach(wm, key, v) {
        const char *f = json_string_value(v);
        if (!f || !valid_shard_name(f)) {
            rc = em_errf(eb, EM_E_MODEL, "model.safetensors.index.json: tensor '%.100s' maps to "
                         "an invalid file name", key);
            break;
        }
        size_t i = 0;
        while (i < ck->nsh && strcmp(ck->sh[i].file, f) != 0) i++;
        if (i < ck->nsh) continue;
        if (ck->nsh == EM_CKPT_MAX_SHARDS) {
            rc = em_errf(eb, EM_E_MODEL, "model.safetensors.index.json: over %d shards",
                         EM_CKPT_MAX_SHARDS);
            break;
        }
        if (!(ck->sh[ck->nsh].file = strdup(f))) {
            rc = EM_E_NOMEM;
            break;
        }
        ck->nsh++;
    }
    if (rc != EM_OK) {
        json_decref(root);
        return rc;
    }
    *wmap_out = json_incref(wm);
    json_decref(root);
    return EM_OK;
}

/* Every weight_map entry is in the shard it names; every shard tensor is in the map. */
static em_err check_weight_map(const struct em_ckpt *ck, json_t *wm, struct em_errbuf *eb)
{
    const char *key;
    json_t *v;
    struct em_tensor t;
    json_object_foreach(wm, key, v) {
        const char *f = json_string_value(v);
        for (size_t i = 0; i < ck->nsh; i++) {
            if (strcmp(ck->sh[i].file, f) != 0) continue;
            if (em_st_find(ck->sh[i].st, key, &t) != EM_OK)
                return em_errf(eb, EM_E_MODEL, "%s: tensor '%.100s' listed by the index is "
                               "missing", f, key);
        }
    }
    for (size_t i = 0; i < ck->nsh; i++)
        for (size_t j = 0; j < em_st_count(ck->sh[i].st); j++) {
            em_st_get(ck->sh[i].st, j, &t);
            const char *f = json_string_value(json_object_get(wm, t.name));
            if (!f || strcmp(f, ck->sh[i].file) != 0)
                return em_errf(eb, EM_E_MODEL, "%s: tensor '%.100s' is not mapped to this file "
                               "by the index", ck->sh[i].file, t.name);
        }
    return EM_OK;
}

static em_err find_any(const struct em_ckpt *ck, const char *name, struct em_tensor *t,
                       const char **file)
{
    if (ck->gg) {
        const struct em_gguf_tensor *gt = em_gguf_find_tensor(ck->gg, name);
        if (!gt) return EM_E_NOTFOUND;
        em_gguf_tensor_view(gt, t);
        if (file) *file = "gguf";
        return EM_OK;
    }
    for (size_t i = 0; i < ck->nsh; i++)
        if (em_st_find(ck->sh[i].st, name, t) == EM_OK) {
            if (file) *file = ck->sh[i].file;
            return EM_OK;
        }
    for (size_t i = 0; i < ck->nviews; i++)
        if (strcmp(ck->views[i].name, name) == 0) {
            *t = ck->views[i];
            if (file) *file = "memory";
            return EM_OK;
        }
    return EM_E_NOTFOUND;
}

static em_err check_tensors(struct em_ckpt *ck, struct em_errbuf *eb)
{
    struct em_qa_expect *ex = NULL;
    size_t nex = 0;
    em_err rc = em_qa_expected_tensors(&ck->cfg, &ex, &nex);
    if (rc != EM_OK) return rc;
    size_t total = 0;
    for (size_t i = 0; i < ck->nsh; i++) total += em_st_count(ck->sh[i].st);
    total += ck->nviews;
    if (ck->gg) total += em_gguf_n_tensors(ck->gg);
    for (size_t i = 0; i < nex && rc == EM_OK; i++) {
        struct em_tensor t;
        const char *file = NULL;
        if (find_any(ck, ex[i].name, &t, &file) != EM_OK) {
            rc = em_errf(eb, EM_E_MODEL, "checkpoint: tensor '%s' is missing", ex[i].name);
            break;
        }
        int ok = t.ndim == ex[i].ndim;
        for (int d = 0; ok && d < t.ndim; d++) ok = t.shape[d] == ex[i].shape[d];
        if (!ok) {
            char got[96], want[96];
            struct em_tensor w = {.ndim = ex[i].ndim};
            memcpy(w.shape, ex[i].shape, sizeof w.shape);
            rc = em_errf(eb, EM_E_MODEL, "%s: tensor '%s' is %s, config.json implies %s", file,
                         ex[i].name, em_shape_str(&t, got, sizeof got),
                         em_shape_str(&w, want, sizeof want));
        }
        if (i == 0) ck->dtype = t.dtype;
        if (strcmp(ex[i].name, "language_model.model.embed_tokens.weight") == 0) ck->dtype = t.dtype;
    }
    if (rc == EM_OK && total != nex) {
        /* Name the first tensor the table does not know. */
        for (size_t i = 0; i < ck->nsh && rc == EM_OK; i++)
            for (size_t j = 0; j < em_st_count(ck->sh[i].st); j++) {
                struct em_tensor t;
                em_st_get(ck->sh[i].st, j, &t);
                if (!em_qa_expect_has(ex, nex, t.name)) {
                    rc = em_errf(eb, EM_E_MODEL, "%s: unexpected tensor '%s'", ck->sh[i].file,
                                 t.name);
                    break;
                }
            }
        for (size_t j = 0; ck->gg && j < em_gguf_n_tensors(ck->gg) && rc == EM_OK; j++) {
            const char *nm = em_gguf_tensor_at(ck->gg, j)->name;
            if (!em_qa_expect_has(ex, nex, nm))
                rc = em_errf(eb, EM_E_MODEL, "gguf: unexpected tensor '%s'", nm);
        }
        if (rc == EM_OK)
            rc = em_errf(eb, EM_E_MODEL, "checkpoint: %zu tensors, expected %zu (duplicates "
                         "across shards?)", total, nex);
    }
    free(ex);
    return rc;
}

/* Maps model.safetensors, or the shards model.safetensors.index.json lists, into ck and
 * checks the index against the shards. */
static em_err open_shards(struct em_ckpt *ck, const char *dir, struct em_errbuf *eb)
{
    json_t *wm = NULL;
    em_err rc = list_shards(ck, dir, &wm, eb);
    for (size_t i = 0; rc == EM_OK && i < ck->nsh; i++) rc = map_shard(&ck->sh[i], dir, eb);
    if (rc == EM_OK && wm) rc = check_weight_map(ck, wm, eb);
    json_decref(wm);
    return rc;
}

em_err em_ckpt_open(const char *dir, struct em_ckpt **out, struct em_errbuf *eb)
{
    *out = NULL;
    em_err rc = EM_E_NOMEM;
    struct em_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck) goto fail;
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) { /* a .gguf file (model/loader/gguf.h) */
        if ((rc = em_gguf_open(dir, &ck->gg, eb)) != EM_OK) goto fail;
        if ((rc = em_gguf_read_config(ck->gg, dir, &ck->cfg, eb)) != EM_OK) goto fail;
        if ((rc = check_tensors(ck, eb)) != EM_OK) goto fail;
        /* report the type of the layer linears (q8_0, ...), not of the kept embeddings */
        const struct em_gguf_tensor *gt =
            em_gguf_find_tensor(ck->gg, "language_model.model.layers.0.mlp.gate_proj.weight");
        if (gt) ck->dtype = em_gguf_ggml_to_wtype(gt->ggml_type);
        *out = ck;
        return EM_OK;
    }
    if ((rc = em_qa_config_load(dir, &ck->cfg, eb)) != EM_OK) goto fail;
    if ((rc = open_shards(ck, dir, eb)) != EM_OK) goto fail;
    if ((rc = check_tensors(ck, eb)) != EM_OK) goto fail;
    *out = ck;
    return EM_OK;
fail:
    em_ckpt_close(ck);
    return rc;
}

em_err em_ckpt_open_tensors(const char *dir, struct em_ckpt **out, struct em_errbuf *eb)
{
    *out = NULL;
    struct em_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck) return EM_E_NOMEM;
    em_err rc = open_shards(ck, dir, eb);
    if (rc != EM_OK) {
        em_ckpt_close(ck);
        return rc;
    }
    if (ck->nsh > 0 && em_st_count(ck->sh[0].st) > 0) {
        struct em_tensor t;
        em_st_get(ck->sh[0].st, 0, &t);
        ck->dtype = t.dtype;
    }
    *out = ck;
    return EM_OK;
}

em_err em_ckpt_from_views(const struct em_qa_config *cfg, const struct em_tensor *views,
                          size_t n, struct em_ckpt **out, struct em_errbuf *eb)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct em_tensor *v = &views[i];
        if (!v->name || !v->data || v->ndim < 0 || v->ndim > EM_TENSOR_MAX_DIMS ||
            em_dtype_nbytes(v->dtype, em_tensor_numel(v)) != v->nbytes)
            return em_errf(eb, EM_E_MODEL, "memory: tensor %zu '%.100s': bad dtype, shape or "
                           "size", i, v->name ? v->name : "?");
    }
    struct em_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck) return EM_E_NOMEM;
    ck->cfg = *cfg;
    ck->views = views;
    ck->nviews = n;
    em_err rc = check_tensors(ck, eb);
    if (rc != EM_OK) {
        em_ckpt_close(ck);
        return rc;
    }
    *out = ck;
    return EM_OK;
}

em_err em_ckpt_tensor(const struct em_ckpt *ck, const char *name, struct em_tensor *t,
                      struct em_errbuf *eb)
{
    if (find_any(ck, name, t, NULL) == EM_OK) return EM_OK;
    return em_errf(eb, EM_E_NOTFOUND, "checkpoint: no tensor '%.200s'", name);
}

em_err em_ckpt_tensorf(const struct em_ckpt *ck, struct em_tensor *t, struct em_errbuf *eb,
                       const char *fmt, ...)
{
    char name[EM_ST_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof name) return em_errf(eb, EM_E_ARG, "tensor name too long");
    return em_ckpt_tensor(ck, name, t, eb);
}
