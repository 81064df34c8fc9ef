/* model/encoder.h - the Qwen2-Audio audio tower (Whisper-large-v3 style, spec §3):
 * mel[128, 3000] -> conv1 (k3 s1) + GELU -> conv2 (k3 s2) + GELU -> + embed_positions
 * -> L x pre-LN blocks (self-attention, k_proj without bias; fc1 GELU fc2)
 * -> avg pool (2, 2) -> final LayerNorm -> [N, d_model].
 * Only the feat_len = ceil(L / 2) valid positions are computed, attending over valid keys
 * only; this equals the reference's key-padding mask (keys >= feat_len masked) for every
 * row that is kept, because the conv stem still reads the real padded mel frames.
 * Compute is f32; weights are read in their stored dtype through model/kernels/backend.h.
 * Thread-safety: an em_encoder is read-only after em_encoder_new; em_encoder_run may be
 * called from several threads (each call allocates its own scratch). */
#ifndef EM_ENCODER_H
#define EM_ENCODER_H

#include "common/err.h"
#include "model/loader/safetensors.h"

struct em_encoder;

/* Binds the audio_tower weights of ck (borrowed: ck must outlive *out) and checks the
 * geometry the front end depends on (128 mel bins, 1500 positions). On EM_OK the caller
 * owns *out (em_encoder_free). Errors: EM_E_MODEL, EM_E_NOTFOUND, EM_E_NOMEM. */
em_err em_encoder_new(const struct em_ckpt *ck, struct em_encoder **out, struct em_errbuf *eb);
void em_encoder_free(struct em_encoder *e); /* NULL ok */

int em_encoder_dim(const struct em_encoder *e); /* d_model */

/* Audio tokens for L valid mel frames (spec §3.6): feat_len = (L - 1) / 2 + 1,
 * N = (feat_len - 2) / 2 + 1; 0 for L <= 2. */
int em_encoder_tokens(int mel_len);

/* Runs the tower on mel[128 * 3000] (model/mel.h layout) with mel_len valid frames
 * (1..3000). Writes N = em_encoder_tokens(mel_len) rows to out[N * d_model] (caller-owned,
 * at least 750 * d_model floats is always enough) and N to *n_tokens.
 * Errors: EM_E_TOO_SHORT (N == 0, under 321 samples), EM_E_ARG (mel_len out of range),
 * EM_E_NOMEM. */
em_err em_encoder_run(const struct em_encoder *e, const float *mel, int mel_len, float *out,
                      int *n_tokens, struct em_errbuf *eb);

#endif
