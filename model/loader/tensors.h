/* model/loader/tensors.h - the list of tensors a Qwen2-Audio checkpoint must hold, with the
 * shapes its config implies (expanded from tensors.def). Used by em_ckpt_open.
 * Thread-safe: pure. */
#ifndef EM_TENSORS_H
#define EM_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/qwen2audio/config.h"
#include "model/loader/tensor.h"

struct em_qa_expect {
    char name[128];
    int ndim;
    int64_t shape[EM_TENSOR_MAX_DIMS];
};

/* Fills *out (caller frees with free()) with *n expected tensors. Errors: EM_E_NOMEM. */
em_err em_qa_expected_tensors(const struct em_qa_config *c, struct em_qa_expect **out,
                              size_t *n);
/* 1 if name is in ex[0..n). */
int em_qa_expect_has(const struct em_qa_expect *ex, size_t n, const char *name);

#endif
