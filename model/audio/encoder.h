/* model/audio/encoder.h - the Whisper audio encoder, shared by the model families:
 * mel[n_mels, 3000] -> conv1 (k3 s1) + GELU -> conv2 (k3 s2) + GELU -> + embed_positions
 * -> L x pre-LN blocks (self-attention, k_proj with or without bias; fc1 GELU fc2)
 * -> [Qwen2-Audio only: avg pool (2, 2)] -> final LayerNorm -> [N, d_model].
 * Qwen2-Audio's audio tower (spec §3) is Whisper-large-v3 with the pooling; Whisper itself
 * (model/whisper/) runs it without pooling on all 1500 positions (mel_len 3000).
 * Only the feat_len = ceil(L / 2) valid positions are computed, attending over valid keys
 * only; this equals the reference's key-padding mask (keys >= feat_len masked) for every
 * row that is kept, because the conv stem still reads the real padded mel frames.
 * Compute is f32 through the backend table (model/kernels/backend.h): weights resident on
 * the backend once, activations in its device buffers; mel in and rows out are host memory.
 * Thread-safety: an em_encoder is read-only after em_encoder_new; em_encoder_run may be
 * called from several threads (each call allocates its own scratch). */
#ifndef EM_ENCODER_H
#define EM_ENCODER_H

#include "common/err.h"
#include "model/kernels/backend.h"
#include "model/loader/safetensors.h"

#define EM_ENCODER_MAX_LAYERS 64

struct em_encoder;

/* One block's weights as borrowed views, shapes in PyTorch order: LayerNorm vectors [d]
 * (widened to f32 at bind time), Linear weights [out, in] and biases [out]. k_b.data == NULL
 * means no key bias (HF Whisper and Qwen2-Audio); CTranslate2's fused QKV carries one. */
struct em_encoder_layer_desc {
    struct em_tensor ln1_w, ln1_b, ln2_w, ln2_b;
    struct em_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* [d, d], [d] */
    struct em_tensor fc1_w, fc1_b, fc2_w, fc2_b;             /* [ffn, d], [ffn], [d, ffn], [d] */
};

/* A whole encoder as borrowed views (they must outlive the encoder) plus its geometry.
 * conv1_w [d, n_mels, 3], conv2_w [d, d, 3], pos [>= npos, d], lnf_* [d]. */
struct em_encoder_desc {
    int n_mels;     /* 80 or 128 */
    int d, heads, ffn, nlayers;
    int npos;       /* 1500: the front end's 3000 frames after the stride-2 conv */
    float eps;      /* LayerNorm epsilon */
    int pool;       /* 1: Qwen2-Audio's avg pool (2, 2) before the final LayerNorm */
    struct em_tensor conv1_w, conv1_b, conv2_w, conv2_b, pos, lnf_w, lnf_b;
    const struct em_encoder_layer_desc *layers; /* [nlayers], read during the call only */
    const struct em_backend *be; /* where it runs (borrowed, outlives the encoder); NULL: CPU */
};

/* Builds an encoder from a descriptor (every shape checked). On EM_OK the caller owns *out
 * (em_encoder_free). Errors: EM_E_MODEL (detail names the tensor), EM_E_NOMEM. */
em_err em_encoder_new_desc(const struct em_encoder_desc *desc, struct em_encoder **out,
                           struct em_errbuf *eb);

/* Binds the audio_tower weights of ck (borrowed: ck must outlive *out) and checks the
 * geometry the front end depends on (128 mel bins, 1500 positions). On EM_OK the caller
 * owns *out (em_encoder_free). Errors: EM_E_MODEL, EM_E_NOTFOUND, EM_E_NOMEM. */
em_err em_encoder_new(const struct em_ckpt *ck, struct em_encoder **out, struct em_errbuf *eb);
/* The same on backend be (NULL: the CPU; borrowed, must outlive *out): weights made resident
 * there once. Errors as em_encoder_new, plus the backend's (EM_E_UNSUPPORTED dtype). */
em_err em_encoder_new_be(const struct em_ckpt *ck, const struct em_backend *be,
                         struct em_encoder **out, struct em_errbuf *eb);
void em_encoder_free(struct em_encoder *e); /* NULL ok */

int em_encoder_dim(const struct em_encoder *e); /* d_model */

/* Audio tokens for L valid mel frames (spec §3.6): feat_len = (L - 1) / 2 + 1,
 * N = (feat_len - 2) / 2 + 1; 0 for L <= 2. */
int em_encoder_tokens(int mel_len);

/* Output rows for mel_len frames: em_encoder_tokens(mel_len) with pooling, else
 * (mel_len - 1) / 2 + 1 (1500 for a full window). */
int em_encoder_out_len(const struct em_encoder *e, int mel_len);

/* Runs the tower on mel[n_mels * 3000] (model/audio/mel.h layout) with mel_len valid frames
 * (1..3000). Writes N = em_encoder_out_len(e, mel_len) rows to out[N * d_model]
 * (caller-owned; 1500 * d_model floats is always enough) and N to *n_tokens.
 * Errors: EM_E_TOO_SHORT (N == 0, under 321 samples), EM_E_ARG (mel_len out of range),
 * EM_E_NOMEM. */
em_err em_encoder_run(const struct em_encoder *e, const float *mel, int mel_len, float *out,
                      int *n_tokens, struct em_errbuf *eb);

#endif
