/* model/tools/bench_device.h - `earmark bench model --device cuda[:N]`: the backend table at
 * the Qwen2-Audio-7B shapes (bf16 weights, random) on a device, beside the device's peaks:
 *   encoder   one layer at T = 1500 (q/k/v/o, fc1/fc2, full attention, norms, GELU)
 *   prefill   one decoder layer at T = 800 (q/k/v/o, gate/up/down, RoPE + f16 cache rows,
 *             causal attention, norms) and the lm_head row
 *   decode    one step of B = 64 sequences at 900 cached positions: one layer's matmuls at
 *             n = 64, decode attention over f16 pages, plus the lm_head at n = 64
 * Figures: TFLOPS (dense matmul and attention FLOPs / time) against the card's dense bf16
 * peak (SMs x clock x FLOPs per SM per clock for its architecture), decode bandwidth (weight
 * + KV bytes per step / time) against the memory peak (2 x memory clock x bus width), and
 * clips per second for 30 s clips, one prompt, 100 new tokens (32 encoder and 32 decoder
 * layers from the per-layer times; decode shared by 64 sequences). Per-layer figures are
 * best of EM_BENCH_DEVICE_REPS after a warm-up. Errors: the backend's (one line). */
#ifndef EM_BENCH_DEVICE_H
#define EM_BENCH_DEVICE_H

#include <stdio.h>

#include "common/err.h"

#define EM_BENCH_DEVICE_REPS 5

struct em_bench_shapes {
    int enc_d, enc_heads, enc_ffn, enc_T, enc_layers;   /* 1280, 20, 5120, 1500, 32 */
    int D, H, KVH, F, V, layers;                        /* 4096, 32, 32, 11008, 156032, 32 */
    int prefill_T, batch, ctx, new_tokens;              /* 800, 64, 900, 100 */
};
struct em_bench_shapes em_bench_shapes_7b(void);

/* Runs the measurements on backend `device` (em_backend_open's names; the CPU works too, with
 * small shapes: the unit test) and prints the table to out. */
em_err em_bench_device(const char *device, const struct em_bench_shapes *s, FILE *out,
                       struct em_errbuf *eb);

#endif
