/* model/tools/convert.h - a Qwen2-Audio checkpoint (Hugging Face directory, or a GGUF file) ->
 * one GGUF file (model/loader/gguf.h) that em_ckpt_open and em_gguf_read_tokenizer load
 * with the same config, tokenizer and tensor names.
 *
 *   src (em_ckpt_open + em_tok_load) -> config keys, tokenizer keys, generation defaults
 *   every tensor of tensors.def under its HF name, layer-major (audio tower: globals, then
 *   layer 0, 1, ...; projector; language model: globals, then layer 0, 1, ...: a cold
 *   forward pass reads the mapping front to back), stored as:
 *
 * Type policy (em_convert_tensor_type), with T the requested type:
 *   - "linear" weights: the 2-D q/k/v/o (out_proj) attention projections, gate/up/down and
 *     fc1/fc2 of every decoder and encoder layer, and language_model.lm_head.weight, in the
 *     classes of enum em_convert_class: the type of the per-class table of convert.c
 *     (em_convert_policy_type; the measurements behind it: docs/accuracy.md):
 *       T = F32/F16/BF16/Q8_0: T for every class;
 *       T = Q4_0: Q8_0 for the audio encoder's linears, the decoder's q/k/v/o_proj and
 *         lm_head; Q4_0 for the decoder's gate/up/down_proj;
 *     but when that type is Q8_0/Q4_0 and the input dim (shape[1]) is not a multiple of 32,
 *     F16, or BF16 when the source is BF16 (no range loss).
 *   - 1-D tensors (every norm weight and bias, every bias): F32 (small; widened at load).
 *   - the other weights (embed_tokens, conv1/conv2, embed_positions, the projector):
 *       T when T is F32/F16/BF16; with Q8_0/Q4_0 their source type (their bytes are copied),
 *       since embed_tokens rows are read one at a time and the conv/projector are small.
 * Values are widened to f32 and rounded once (em_quantize_row: round to nearest even;
 * q8_0/q4_0 bit-compatible with ggml), so F32 output of an F32/BF16/F16 source is exact.
 *
 * Memory: one chunk of scratch (about EM_CONVERT_CHUNK floats plus its encoded bytes); the
 * source stays mapped. The output is written to a temporary file and renamed.
 * Thread-safety: em_convert uses only its arguments. */
#ifndef EM_CONVERT_H
#define EM_CONVERT_H

#include <stddef.h>

#include "common/err.h"
#include "model/loader/tensor.h"

#define EM_CONVERT_CHUNK (1u << 20) /* f32 values converted per step */

/* The classes of linear weights the per-class policy (convert.c, em_convert_policy_type)
 * types separately. Every other tensor is EM_CC_NONE. */
enum em_convert_class {
    EM_CC_NONE = -1,
    EM_CC_ENC_ATTN = 0, /* audio_tower.layers.N.self_attn.{q,k,v,out}_proj.weight */
    EM_CC_ENC_MLP,      /* audio_tower.layers.N.fc1 / fc2.weight */
    EM_CC_DEC_Q,        /* language_model.model.layers.N.self_attn.q_proj.weight */
    EM_CC_DEC_K,        /* ... k_proj.weight */
    EM_CC_DEC_V,        /* ... v_proj.weight */
    EM_CC_DEC_O,        /* ... o_proj.weight */
    EM_CC_DEC_GATE,     /* ... mlp.gate_proj.weight */
    EM_CC_DEC_UP,       /* ... mlp.up_proj.weight */
    EM_CC_DEC_DOWN,     /* ... mlp.down_proj.weight */
    EM_CC_LM_HEAD,      /* language_model.lm_head.weight */
    EM_CC_COUNT
};

struct em_convert_opts {
    int wtype; /* enum em_wtype (model/kernels/quant.h) requested; default EM_WT_Q8_0 */
    /* Optional, EM_CC_COUNT entries: the type of each class of linears, replacing the
     * policy's (-1: the policy's). NULL: the policy. Used to measure the policy
     * (tests/unit/test_qaccuracy.c); the block-type fallback below still applies. */
    const int *class_type;
    /* Optional: called before each tensor (i of n, 0-based), e.g. to print progress. */
    void (*progress)(void *ctx, size_t i, size_t n, const char *name, int wtype);
    void *progress_ctx;
};

struct em_convert_opts em_convert_opts_default(void);

/* "q8_0", "q4_0", "bf16", "f16", "f32" (any case) -> enum em_wtype, or -1. */
int em_convert_parse_type(const char *s);

/* The type tensor src (named name, of a source) is stored as for requested type wtype (the
 * policy above); -1 for a wtype that is not an em_wtype. */
int em_convert_tensor_type(const char *name, const struct em_tensor *src, int wtype);

/* The class of tensor src named name (enum em_convert_class; EM_CC_NONE if it is not one of
 * the linears above). */
int em_convert_class_of(const char *name, const struct em_tensor *src);

/* "enc_attn", "enc_mlp", "dec_q", ... "lm_head"; "other" for anything else. */
const char *em_convert_class_name(int cls);

/* The policy: the type class cls of a source of dtype src_dtype (enum em_dtype) is stored as
 * when wtype is requested (before the multiple-of-32 fallback); -1 for a bad wtype or
 * class. */
int em_convert_policy_type(int cls, int wtype, int src_dtype);

/* em_convert_tensor_type with the per-class override of em_convert_opts.class_type
 * (NULL: the policy). */
int em_convert_tensor_type_with(const char *name, const struct em_tensor *src, int wtype,
                                const int *class_type);

/* A Whisper src (em_family_detect) goes to em_whisper_convert (model/whisper/whisper.h):
 * f32, f16 or q8_0 only, the policy above does not apply.
 * Converts src (a checkpoint directory or .gguf file) into out (a new GGUF file; an existing
 * file is replaced only when the whole conversion succeeded). Errors: those of em_ckpt_open
 * and em_tok_load for src, EM_E_ARG (bad type), EM_E_IO (writing out), EM_E_NOMEM. */
em_err em_convert(const char *src, const char *out, const struct em_convert_opts *opts,
                  struct em_errbuf *eb);

#endif
