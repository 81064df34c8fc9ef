/* model/text/prompt.h - the prompts earmark sends to Qwen2-Audio, rendered as text and as ids.
 *
 * Built-in tasks (caption, transcript, events) exist in two forms: the base model's plain
 * form "<|audio_bos|><|AUDIO|><|audio_eos|>" + instruction (spec section 8.1), and the
 * Instruct model's ChatML form with the default system prompt and one user turn
 * "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n" + question (spec section 8.2). Free text
 * replaces the task's instruction (base) or question (chat).
 * In the ids the single <|AUDIO|> is expanded to n_audio copies (spec section 4.1).
 * Thread-safe: pure functions over a read-only tokenizer. */
#ifndef EM_PROMPT_H
#define EM_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/text/tokenizer.h"

#define EM_PROMPT_MAX_TEXT 4096 /* bytes of free text */
#define EM_PROMPT_MAX_AUDIO 750 /* <|AUDIO|> tokens of one 30 s window */

enum em_prompt_form {
    EM_PROMPT_BASE = 0, /* Qwen2-Audio-7B: no chat template */
    EM_PROMPT_CHAT = 1, /* Qwen2-Audio-7B-Instruct: ChatML */
};

struct em_prompt_task {
    const char *name;     /* "caption", "transcript", "events" */
    const char *base;     /* instruction after the audio in the base form */
    const char *question; /* user question in the chat form */
};

/* The built-in table, terminated by an entry with name NULL. */
extern const struct em_prompt_task em_prompt_tasks[];
/* The task named name, or NULL. */
const struct em_prompt_task *em_prompt_task_find(const char *name);

struct em_prompt {
    enum em_prompt_form form;
    const char *task; /* a built-in task name; ignored when text is set */
    const char *text; /* free text (UTF-8), or NULL */
};

/* Renders the prompt with one <|AUDIO|> into a string the caller frees (free()).
 * Errors: EM_E_ARG (unknown task, neither task nor text, free text over
 * EM_PROMPT_MAX_TEXT or containing a control token such as "<|im_end|>"), EM_E_NOMEM. */
em_err em_prompt_render(const struct em_prompt *p, char **out, struct em_errbuf *eb);

/* Renders and encodes the prompt, expanding the placeholder into n_audio <|AUDIO|> ids.
 * On EM_OK *ids (caller frees with free()) holds *n ids. Errors: as em_prompt_render, the
 * tokenizer's, EM_E_MODEL (the tokenizer lacks <|AUDIO|>/<|audio_bos|>/...), EM_E_ARG
 * (n_audio outside 1..EM_PROMPT_MAX_AUDIO). */
em_err em_prompt_tokens(const struct em_tok *tok, const struct em_prompt *p, int n_audio,
                        int32_t **ids, size_t *n, struct em_errbuf *eb);

#endif
