/* tests/fuzz/fuzz_gguf.c - libFuzzer target for the GGUF header parser and earmark's keys:
 * any bytes either parse, with every tensor lying inside the buffer (first and last byte
 * touched so ASan sees an overrun), every metadata string and array inside it, and the
 * config/tokenizer readers returning a code without crashing; or are refused with
 * EM_E_MODEL. Built and run by tests/fuzz/run.sh (fuzz_gguf). */
#include <stdint.h>
#include <stdlib.h>

#include "model/loader/gguf.h"

static void inside(const uint8_t *data, size_t size, const void *p, uint64_t n)
{
    const uint8_t *q = p;
    if (n == 0) return;
    if (q < data || q > data + size || n > (uint64_t)(data + size - q)) abort();
    volatile uint8_t x = q[0];
    x = q[n - 1];
    (void)x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct em_gguf *g = NULL;
    struct em_errbuf eb;
    em_err rc = em_gguf_parse(data, size, "fuzz", &g, &eb);
    if (rc != EM_OK) {
        if (rc != EM_E_MODEL && rc != EM_E_NOMEM) abort();
        return 0;
    }
    for (size_t i = 0; i < em_gguf_n_kv(g); i++) {
        const struct em_gguf_value *v = em_gguf_value(g, i);
        if (em_gguf_find(g, em_gguf_key(g, i)) != v) abort();
        if (v->type == EM_GGUF_STR) inside(data, size, v->str.s, v->str.len);
        if (v->type == EM_GGUF_ARR && v->strs)
            for (uint64_t k = 0; k < v->n; k++) inside(data, size, v->strs[k].s, v->strs[k].len);
        if (v->type == EM_GGUF_ARR && v->n) {
            (void)em_gguf_arr_int(v, v->n - 1);
            (void)em_gguf_arr_f64(v, v->n - 1);
        }
    }
    for (size_t i = 0; i < em_gguf_n_tensors(g); i++) {
        const struct em_gguf_tensor *t = em_gguf_tensor_at(g, i);
        if (em_gguf_find_tensor(g, t->name) != t) abort();
        inside(data, size, t->data, t->nbytes);
        struct em_tensor v;
        em_gguf_tensor_view(t, &v);
        if (em_dtype_nbytes(v.dtype, em_tensor_numel(&v)) != v.nbytes) abort();
    }
    struct em_qa_config c;
    (void)em_gguf_read_config(g, "fuzz", &c, &eb);
    struct em_tok *tok = NULL;
    if (em_gguf_read_tokenizer(g, "fuzz", &tok, &eb) == EM_OK) em_tok_free(tok);
    em_gguf_close(g);
    return 0;
}
