/* model/loader/tensors.c - expands tensors.def against a config. */
#include "model/loader/tensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SCOPE_G, SCOPE_A, SCOPE_T, SCOPE_H };
#define G SCOPE_G
#define A SCOPE_A
#define T SCOPE_T
#define H SCOPE_H

static size_t count(const struct em_qa_config *c)
{
    size_t n = 0;
#define EM_T(scope, name, nd, d0, d1, d2)                                            \
    n += scope == SCOPE_A   ? (size_t)c->audio.encoder_layers                        \
         : scope == SCOPE_T ? (size_t)c->text.num_hidden_layers                      \
         : scope == SCOPE_H ? (size_t)!c->text.tie_word_embeddings                   \
                            : 1;
#include "model/loader/tensors.def"
#undef EM_T
    return n;
}

static void put(struct em_qa_expect *e, const char *fmt, int layer, int nd, int64_t d0,
                int64_t d1, int64_t d2)
{
    memset(e, 0, sizeof *e);
    if (layer >= 0) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(e->name, sizeof e->name, fmt, layer);
#pragma GCC diagnostic pop
    } else {
        snprintf(e->name, sizeof e->name, "%s", fmt);
    }
    e->ndim = nd;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->shape[2] = d2;
}

em_err em_qa_expected_tensors(const struct em_qa_config *c, struct em_qa_expect **out,
                              size_t *n)
{
    const int64_t MEL = c->audio.num_mel_bins, AD = c->audio.d_model,
                  AF = c->audio.encoder_ffn_dim, AP = c->audio.max_source_positions,
                  TD = c->text.hidden_size, TF = c->text.intermediate_size,
                  TV = c->text.vocab_size,
                  TKV = (int64_t)c->text.num_key_value_heads * c->text.head_dim;
    size_t total = count(c), k = 0;
    struct em_qa_expect *ex = calloc(total ? total : 1, sizeof *ex);
    if (!ex) return EM_E_NOMEM;
#define EM_T(scope, name, nd, d0, d1, d2)                                            \
    if (scope == SCOPE_A)                                                            \
        for (int l = 0; l < c->audio.encoder_layers; l++) put(&ex[k++], name, l, nd, d0, d1, d2); \
    else if (scope == SCOPE_T)                                                       \
        for (int l = 0; l < c->text.num_hidden_layers; l++) put(&ex[k++], name, l, nd, d0, d1, d2); \
    else if (scope == SCOPE_G || !c->text.tie_word_embeddings)                       \
        put(&ex[k++], name, -1, nd, d0, d1, d2);
#include "model/loader/tensors.def"
#undef EM_T
    (void)MEL;
    *out = ex;
    *n = k;
    return EM_OK;
}

int em_qa_expect_has(const struct em_qa_expect *ex, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ex[i].name, name) == 0) return 1;
    return 0;
}
