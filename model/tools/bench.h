/* model/tools/bench.h - `earmark bench model`: the model's CPU speed at the published
 * Qwen2-Audio-7B shapes, measured in one run beside the machine's own limits.
 *
 * Weights are random (never loaded from disk) with the exact shapes of the 7B checkpoint
 * (encoder d_model 1280, 20 heads, ffn 5120; decoder hidden 4096, 32 heads, intermediate
 * 11008, vocab 156032) at reduced depth, and go through the real model code: em_encoder_run,
 * em_projector_run and em_dec_forward over an in-memory checkpoint (em_ckpt_from_views).
 * Every figure is measured; per-layer times are extrapolated to 32 layers, and the table
 * says which figures are extrapolations. Nothing is asserted (timings vary with the load).
 *
 * Thread-safety: one benchmark at a time per process (it resets the process' peak-RSS
 * counter between weight types). */
#ifndef EM_BENCH_H
#define EM_BENCH_H

#include <stdio.h>

#include "common/err.h"

#define EM_BENCH_MAX_LAYERS 32

struct em_bench_opts {
    int enc_layers;  /* audio encoder layers built and run (1..32; default 2) */
    int dec_layers;  /* decoder layers (1..32; default 2) */
    double seconds;  /* time spent per decode measurement (default 2; more steps: steadier) */
    unsigned types;  /* bit (1 << wtype) per weight type to measure; default bf16, q8_0, q4_0 */
    int prefill_tokens; /* prompt length of the prefill measurement (default 800) */
    int new_tokens;     /* answer length of the end-to-end estimate (default 100) */
    FILE *progress;     /* a line per phase while it runs; NULL (default): quiet */
};

struct em_bench_opts em_bench_opts_default(void);

/* Parses a comma-separated list of weight types ("f32,bf16,q8_0,q4_0"; case-insensitive;
 * "f16" too) into a bit set. Errors: EM_E_ARG naming the unknown item. */
em_err em_bench_parse_types(const char *s, unsigned *types, struct em_errbuf *eb);

/* Runs the benchmark and prints the table to out. Errors: EM_E_ARG (options out of range),
 * EM_E_NOMEM (the weights of one type do not fit), the model code's errors. */
em_err em_bench_model(const struct em_bench_opts *o, FILE *out, struct em_errbuf *eb);


/* For other benches: the random in-memory checkpoint this bench measures (7B widths,
 * enc_layers / dec_layers deep, tensors in `earmark convert --type type`'s types). *ck is
 * borrowed from *out (valid until em_bench_ckpt_free). Errors: as em_bench_model's. */
struct em_bench_ckpt;
struct em_ckpt;
em_err em_bench_ckpt_new(int enc_layers, int dec_layers, int type, struct em_bench_ckpt **out,
                         const struct em_ckpt **ck, struct em_errbuf *eb);
void em_bench_ckpt_free(struct em_bench_ckpt *b); /* NULL ok */

#endif
