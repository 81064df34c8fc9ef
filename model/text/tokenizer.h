/* model/text/tokenizer.h - Qwen2 byte-level BPE: UTF-8 text <-> token ids, matching
 * Qwen2TokenizerFast (HF tokenizers): added tokens are matched literally in the raw text
 * first (leftmost, longest), the rest is NFC-normalised, split by the Qwen2 pre-tokenizer
 * (model/text/pretok.h) and each piece BPE-encoded by merge rank over the GPT-2 byte alphabet.
 * No BOS is prepended.
 *
 * Files (untrusted, bounded by the EM_TOK_MAX_* limits): tokenizer.json, or vocab.json +
 * merges.txt plus the added tokens of tokenizer_config.json (added_tokens_decoder) and/or
 * added_tokens.json.
 *
 * Thread-safety: after em_tok_load() a tokenizer is read-only and may be shared by threads;
 * the internal per-piece BPE cache has its own lock. */
#ifndef EM_TOKENIZER_H
#define EM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_TOK_MAX_FILE_BYTES (64u * 1024u * 1024u) /* any one tokenizer file */
#define EM_TOK_MAX_VOCAB 1000000                   /* ids, regular + added */
#define EM_TOK_MAX_TOKEN_BYTES 1024                /* one token's text */
#define EM_TOK_MAX_TEXT_BYTES (4u * 1024u * 1024u) /* one encode() input */

/* Qwen2 / Qwen2-Audio special token ids (spec qwen2-audio.md section 7). The tokenizer itself
 * takes ids from the files; these name the values the model code expects. */
#define EM_TOK_ENDOFTEXT 151643
#define EM_TOK_IM_START 151644
#define EM_TOK_IM_END 151645
#define EM_TOK_AUDIO 151646
#define EM_TOK_AUDIO_BOS 151647
#define EM_TOK_AUDIO_EOS 151648

struct em_tok;

/* Loads dir/tokenizer.json if present, else dir/vocab.json + dir/merges.txt with added
 * tokens from dir/tokenizer_config.json and dir/added_tokens.json (each optional). On EM_OK
 * the caller owns *out (em_tok_free). Errors: EM_E_IO (missing/unreadable file),
 * EM_E_MODEL (inconsistent content: merge of unknown tokens, missing byte tokens,
 * duplicate or out-of-range ids), EM_E_FORMAT (not JSON / wrong types),
 * EM_E_TOO_LONG (over a limit), EM_E_NOMEM. */
em_err em_tok_load(const char *dir, struct em_tok **out, struct em_errbuf *eb);
void em_tok_free(struct em_tok *tok); /* NULL is a no-op */

/* Encodes text[0..len) (UTF-8), matching added tokens. Writes at most cap ids to ids and the
 * total count to *n; if cap is short, returns EM_E_TOO_LONG with *n = the count needed
 * (ids may be NULL when cap is 0). Errors: EM_E_FORMAT (invalid UTF-8, detail names the
 * byte offset), EM_E_TOO_LONG (text over EM_TOK_MAX_TEXT_BYTES, or cap short), EM_E_NOMEM. */
em_err em_tok_encode(const struct em_tok *tok, const char *text, size_t len, int32_t *ids,
                     size_t cap, size_t *n, struct em_errbuf *eb);
/* Same without matching added tokens: "<|im_end|>" in text becomes ordinary BPE pieces.
 * For user-supplied text that must not inject control tokens. */
em_err em_tok_encode_plain(const struct em_tok *tok, const char *text, size_t len,
                           int32_t *ids, size_t cap, size_t *n, struct em_errbuf *eb);

/* Decodes ids into a NUL-terminated UTF-8 string the caller frees (free()); *len (may be
 * NULL) gets its length. Byte sequences that are not valid UTF-8 become U+FFFD per maximal
 * invalid subpart (like Rust's from_utf8_lossy). skip_special drops added tokens marked
 * special. Ids without a token (e.g. the model's padded vocabulary rows) are skipped, as
 * HF does. Errors: EM_E_NOMEM, EM_E_TOO_LONG (output over EM_TOK_MAX_TEXT_BYTES). */
em_err em_tok_decode(const struct em_tok *tok, const int32_t *ids, size_t n,
                     bool skip_special, char **out, size_t *len);

/* Id of an exact token text (added tokens first, then the regular vocabulary, whose
 * entries are compared as raw bytes), or -1. */
int32_t em_tok_find(const struct em_tok *tok, const char *text);
/* One past the largest id with a token. */
int32_t em_tok_n_vocab(const struct em_tok *tok);
/* Raw bytes of id's token (borrowed, valid while tok lives; not NUL-terminated), or NULL
 * for an id without a token. */
const char *em_tok_piece(const struct em_tok *tok, int32_t id, size_t *len);
/* True for an added token marked special. */
bool em_tok_is_special(const struct em_tok *tok, int32_t id);

/* ---- in-memory form: the GGUF "gpt2" tokenizer keys ------------------------------------ */

/* Token types, GGUF numbering (tokenizer.ggml.token_type). */
enum em_tok_type {
    EM_TOK_T_NORMAL = 1,  /* regular BPE token, text in the GPT-2 byte alphabet */
    EM_TOK_T_CONTROL = 3, /* added token marked special, literal text */
    EM_TOK_T_USER = 4,    /* added token not marked special, literal text */
    EM_TOK_T_UNUSED = 5,  /* no token at this id (padded vocabulary); text ignored */
};

struct em_tok_str {
    const char *s; /* not NUL-terminated */
    size_t len;
};

/* A whole tokenizer as arrays: id i has text tokens[i] and type types[i]; merges[r] is
 * "a b" (GPT-2 alphabet) with rank r. */
struct em_tok_spec {
    size_t n_tokens;
    const struct em_tok_str *tokens;
    const int32_t *types; /* enum em_tok_type; NULL = every token NORMAL */
    size_t n_merges;
    const struct em_tok_str *merges;
    bool ignore_merges;
    void *owned_; /* em_tok_export's allocation; NULL for a caller-built spec */
};

/* Builds a tokenizer from spec (borrowed: everything is copied). what names the source in
 * error details ("m.gguf: tokenizer.ggml.merges"). Same errors as em_tok_load, plus
 * EM_E_MODEL for an unknown token type. On EM_OK the caller owns *out (em_tok_free). */
em_err em_tok_load_spec(const struct em_tok_spec *spec, const char *what, struct em_tok **out,
                        struct em_errbuf *eb);
/* The inverse: fills *spec from tok (regular tokens re-encoded in the GPT-2 alphabet, merges
 * in rank order, added tokens CONTROL or USER). em_tok_load_spec(spec) gives a tokenizer that
 * encodes and decodes exactly as tok. The caller frees with em_tok_spec_free.
 * Errors: EM_E_NOMEM. */
em_err em_tok_export(const struct em_tok *tok, struct em_tok_spec *spec);
void em_tok_spec_free(struct em_tok_spec *spec); /* frees what em_tok_export allocated */

#endif
