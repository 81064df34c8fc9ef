/* model/kernels/cpu/eltwise.h - element-wise f32 passes shared by the audio encoder
 * (model/audio/encoder.c) and the Whisper decoder (model/whisper/): single-threaded, AVX2 + FMA
 * when em_cpu_level() allows, else plain C with the same formulas (exp: Cephes-style range
 * reduction, about 1 ulp; erfc: Chebyshev fit, relative error < 1.2e-7), so both agree up to
 * FMA rounding. Pure functions: thread-safe. */
#ifndef EM_ELTWISE_H
#define EM_ELTWISE_H

#include <stddef.h>
#include <stdint.h>

/* x[i] = x[i] * Phi(x[i]) (exact GELU, erf form), in place. */
void em_gelu(float *x, size_t n);
/* Row i of s[rows, n]: s = exp(s - max); inv[i] = 1 / sum (the caller scales later). */
void em_softmax_rows(float *s, float *inv, int rows, int n);
/* h[i] += a[i] */
void em_add_into(float *restrict h, const float *restrict a, size_t n);
/* h[i] = x[i] as IEEE half, rounded to nearest even, saturated at +-65504 (infinities too),
 * NaN kept: the bits a KV cache stores (model/gen/kvcache.h); F16C where the CPU allows. */
void em_f16_narrow(uint16_t *h, const float *x, size_t n);
/* y[n, d] = LayerNorm(x) * w + b per row (biased variance, two passes); y may equal x. */
void em_layer_norm(float *y, const float *x, int n, int d, const float *w, const float *b,
                   float eps);

#endif
