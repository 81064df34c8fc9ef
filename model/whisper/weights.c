/* model/whisper/weights.c - Whisper weights in a dtype other than the file's.
 *
 *   CTranslate2 int8 files (ct2-transformers-converter --quantization int8): a quantized
 *   variable is int8 [out, ...] plus a float32 "<name>_scale" [out], x = q / scale per row
 *   (python/ctranslate2/specs/model_spec.py _quantize: scale = 127 / max|row|). A row whose
 *   length is a multiple of 32 becomes q8_0 blocks holding the same int8 values with
 *   d = f16(1 / scale) (model/kernels/quant.h), so the int8 kernels run it; any other row
 *   (a conv1 [d, 80, 3] is 240 long) is widened to f32 as q / scale.
 *   Load-time quantization (em_whisper_load_as with EM_WT_Q8_0): every 2-D float tensor named
 *   "...weight" except the position tables (the linear layers and the tied embedding /
 *   output projection) whose rows are a multiple of 32 long is quantized to q8_0 with
 *   em_quantize_row (per 32-block scale, as ggml and `earmark convert --type q8_0` do).
 *   LayerNorms, biases, convolutions and positions stay as stored.
 * Converted tensors are owned by the model (w->owned) and cached by their source bytes, so
 * an alias (decoder/projection/weight -> the embeddings) resolves to the same converted view.
 * ref: OpenNMT/CTranslate2 python/ctranslate2/specs/model_spec.py (quantization),
 *      src/ops/dequantize.cc (x = q / scale) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/whisper/whisper_impl.h"

/* The cached conversion of src's bytes, or NULL. */
static const struct em_tensor *cached(const struct em_whisper *w, const void *src)
{
    for (size_t i = 0; i < w->n_conv; i++)
        if (w->conv_src[i] == src) return &w->conv[i];
    return NULL;
}

/* Takes ownership of buf (freed with the model) and records t as src's conversion. */
static em_err keep(struct em_whisper *w, const void *src, void *buf, const struct em_tensor *t)
{
    if (w->n_conv == w->cap_conv) {
        size_t cap = w->cap_conv ? 2 * w->cap_conv : 64;
        const void **s = realloc(w->conv_src, cap * sizeof *s);
        if (s) w->conv_src = s;
        struct em_tensor *c = s ? realloc(w->conv, cap * sizeof *c) : NULL;
        if (c) w->conv = c;
        void **o = c ? realloc(w->owned, cap * sizeof *o) : NULL;
        if (!o) {
            free(buf);
            return EM_E_NOMEM;
        }
        w->owned = o;
        w->cap_conv = cap;
    }
    w->conv_src[w->n_conv] = src;
    w->conv[w->n_conv] = *t;
    w->owned[w->n_conv++] = buf;
    return EM_OK;
}

void wh_weights_free(struct em_whisper *w)
{
    for (size_t i = 0; i < w->n_conv; i++) free(w->owned[i]);
    free(w->owned);
    free(w->conv);
    free(w->conv_src);
    w->owned = NULL, w->conv = NULL, w->conv_src = NULL;
    w->n_conv = w->cap_conv = 0;
}

/* An int8 CTranslate2 variable v with its per-row scale sc[out] into *t (owned by w). */
static em_err from_int8(struct em_whisper *w, const char *name, const struct em_ct2_var *v,
                        const struct em_ct2_var *sc, struct em_tensor *t, struct em_errbuf *eb)
{
    const struct em_tensor *hit = cached(w, v->data);
    if (hit) {
        *t = *hit;
        t->name = name;
        return EM_OK;
    }
    int64_t out = v->ndim >= 1 ? v->shape[0] : 0, numel = 1;
    for (int i = 0; i < v->ndim; i++) numel *= v->shape[i];
    if (v->ndim < 2 || out < 1 || numel / out < 1)
        return em_errf(eb, EM_E_MODEL, "model.bin: int8 variable '%s' is not a matrix", name);
    if (sc->dtype != EM_CT2_F32 || sc->ndim != 1 || sc->shape[0] != out)
        return em_errf(eb, EM_E_MODEL, "model.bin: '%s_scale' is not float32 [%lld]", name,
                       (long long)out);
    const int64_t in = numel / out;
    const int q8 = in % EM_QK == 0;
    const size_t row_bytes = q8 ? em_wtype_row_size(EM_WT_Q8_0, in) : (size_t)in * sizeof(float);
    uint8_t *buf = malloc(row_bytes * (size_t)out);
    if (!buf) return EM_E_NOMEM;
    const int8_t *q = v->data;
    for (int64_t r = 0; r < out; r++) {
        float s;
        memcpy(&s, (const uint8_t *)sc->data + 4 * r, 4);
        if (!isfinite(s) || !(s > 0) || !isfinite(1.0f / s)) {
            free(buf);
            return em_errf(eb, EM_E_MODEL, "model.bin: '%s_scale'[%lld] is %g, not a positive "
                           "finite scale", name, (long long)r, (double)s);
        }
        const int8_t *qr = q + r * in;
        uint8_t *dst = buf + (size_t)r * row_bytes;
        if (q8) {
            const uint16_t d = em_quant_f32_to_f16(1.0f / s);
            for (int64_t b = 0; b < in / EM_QK; b++) {
                struct em_block_q8_0 blk;
                blk.d = d;
                memcpy(blk.qs, qr + b * EM_QK, EM_QK);
                memcpy(dst + (size_t)b * sizeof blk, &blk, sizeof blk);
            }
        } else {
            float *f = (float *)(void *)dst;
            for (int64_t i = 0; i < in; i++) f[i] = (float)qr[i] / s;
        }
    }
    struct em_tensor c = {.name = name, .dtype = q8 ? EM_DT_Q8_0 : EM_DT_F32, .ndim = v->ndim,
                          .data = buf, .nbytes = row_bytes * (size_t)out};
    memcpy(c.shape, v->shape, sizeof c.shape);
    em_err rc = keep(w, v->data, buf, &c);
    if (rc == EM_OK) *t = c;
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

em_err wh_weight_adapt(struct em_whisper *w, struct em_tensor *t, struct em_errbuf *eb)
{
    if (w->wtype != EM_WT_Q8_0 || t->ndim != 2 || !t->name || !ends_with(t->name, "weight") ||
        strstr(t->name, "position") || t->shape[1] % EM_QK != 0 ||
        (t->dtype != EM_DT_F32 && t->dtype != EM_DT_F16 && t->dtype != EM_DT_BF16))
        return EM_OK;
    const struct em_tensor *hit = cached(w, t->data);
    if (hit && hit->shape[0] == t->shape[0]) {
        const char *name = t->name;
        *t = *hit;
        t->name = name;
        return EM_OK;
    }
    const int64_t out = t->shape[0], in = t->shape[1];
    const size_t rb = em_wtype_row_size(EM_WT_Q8_0, in);
    uint8_t *buf = malloc(rb * (size_t)out);
    float *row = malloc(sizeof(float) * (size_t)in);
    if (!buf || !row) {
        free(buf);
        free(row);
        return EM_E_NOMEM;
    }
    em_err rc = EM_OK;
    for (int64_t r = 0; rc == EM_OK && r < out; r++) {
        em_tensor_read_f32(t, (size_t)(r * in), (size_t)in, row);
        rc = em_quantize_row(EM_WT_Q8_0, row, buf + (size_t)r * rb, in);
    }
    free(row);
    if (rc != EM_OK) {
        free(buf);
        return em_errf(eb, rc, "whisper: quantizing '%s' to q8_0 failed", t->name);
    }
    struct em_tensor c = *t;
    c.dtype = EM_DT_Q8_0;
    c.data = buf;
    c.nbytes = rb * (size_t)out;
    if ((rc = keep(w, t->data, buf, &c)) == EM_OK) *t = c;
    return rc;
}

em_err wh_ct2_tensor(struct em_whisper *w, const char *name, int ndim, struct em_tensor *t,
                     struct em_errbuf *eb)
{
    struct em_ct2_var v, sc;
    if (em_ct2_find(w->ct2, name, &v) == EM_OK && v.dtype == EM_CT2_I8 && v.ndim > 0) {
        char sname[256]; /* the scale of the variable an alias names */
        if (snprintf(sname, sizeof sname, "%s_scale", v.name) >= (int)sizeof sname ||
            em_ct2_find(w->ct2, sname, &sc) != EM_OK)
            return em_errf(eb, EM_E_MODEL, "model.bin: int8 variable '%s' has no '%s_scale'",
                           v.name, v.name);
        if (ndim >= 0 && v.ndim != ndim)
            return em_errf(eb, EM_E_MODEL, "model.bin: '%s' has %d dimensions, expected %d", name,
                           v.ndim, ndim);
        w->int8_file = true;
        return from_int8(w, v.name, &v, &sc, t, eb);
    }
    em_err rc = em_ct2_tensor(w->ct2, name, ndim, t, eb);
    return rc == EM_OK ? wh_weight_adapt(w, t, eb) : rc;
}
