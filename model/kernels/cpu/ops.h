/* model/kernels/cpu/ops.h - internal to the CPU backend: the slots of its table
 * (model/kernels/backend.h) that live in separate files. Device memory is host memory here. */
#ifndef EM_CPU_OPS_H
#define EM_CPU_OPS_H

#include "model/kernels/backend.h"

/* matmul.c: the matmul slot (policy in backend.h). */
em_err em_cpu_matmul(void *ctx, float *y, const float *x, int n, int in, int out,
                     const struct em_tensor *w, const struct em_tensor *bias);
/* attn_rows.c: the attn_decode slot; errors EM_E_ARG (shapes, NULL rows), EM_E_NOMEM. */
em_err em_cpu_attn_decode(void *ctx, const struct em_attn_decode_args *a);
/* attn_rows.c: full / causal attention with cblas_sgemm per head, the path below AVX-512
 * (the caller has checked a as em_attn does). EM_E_NOMEM. */
em_err em_cpu_attn_sgemm(const struct em_attn_args *a);

#endif
