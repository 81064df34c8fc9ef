/* model/text/prompt.c - prompt table, rendering and audio placeholder expansion.
 * ref: QwenLM/Qwen2-Audio README and eval_audio scripts (base form); transformers
 * Qwen2AudioProcessor chat template (chat form); the texts are the ones
 * tests/golden/make_golden.py renders, so the golden input ids check them. */
#include "model/text/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIO_SLOT "<|audio_bos|><|AUDIO|><|audio_eos|>"
#define CHAT_HEAD "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" \
                  "<|im_start|>user\nAudio 1: " AUDIO_SLOT "\n"
#define CHAT_TAIL "<|im_end|>\n<|im_start|>assistant\n"

const struct em_prompt_task em_prompt_tasks[] = {
    {"caption", "Generate the caption in English:", "Describe this audio in one sentence."},
    {"transcript", "Detect the language and recognize the speech: <|en|>",
     "Transcribe the speech exactly."},
    {"events", "Classify the sound events in English:",
     "List the sound events you hear, separated by commas."},
    {NULL, NULL, NULL},
};

static const char *const control[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                      "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"};

const struct em_prompt_task *em_prompt_task_find(const char *name)
{
    for (const struct em_prompt_task *t = em_prompt_tasks; name && t->name; t++)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

em_err em_prompt_render(const struct em_prompt *p, char **out, struct em_errbuf *eb)
{
    *out = NULL;
    const char *body;
    if (p->text) {
        size_t len = strnlen(p->text, EM_PROMPT_MAX_TEXT + 1);
        if (len > EM_PROMPT_MAX_TEXT)
            return em_errf(eb, EM_E_ARG, "prompt: free text over %d bytes", EM_PROMPT_MAX_TEXT);
        for (size_t i = 0; i < sizeof control / sizeof *control; i++)
            if (strstr(p->text, control[i]))
                return em_errf(eb, EM_E_ARG, "prompt: free text contains the control token %s",
                               control[i]);
        body = p->text;
    } else {
        const struct em_prompt_task *t = em_prompt_task_find(p->task);
        if (!t)
            return em_errf(eb, EM_E_ARG, "prompt: unknown task '%s' (caption, transcript, events)",
                           p->task ? p->task : "(none)");
        body = p->form == EM_PROMPT_CHAT ? t->question : t->base;
    }
    const char *head = p->form == EM_PROMPT_CHAT ? CHAT_HEAD : AUDIO_SLOT;
    const char *tail = p->form == EM_PROMPT_CHAT ? CHAT_TAIL : "";
    size_t n = strlen(head) + strlen(body) + strlen(tail) + 1;
    char *s = malloc(n);
    if (!s) return EM_E_NOMEM;
    snprintf(s, n, "%s%s%s", head, body, tail);
    *out = s;
    return EM_OK;
}

em_err em_prompt_tokens(const struct em_tok *tok, const struct em_prompt *p, int n_audio,
                        int32_t **ids, size_t *n, struct em_errbuf *eb)
{
    *ids = NULL;
    *n = 0;
    if (n_audio < 1 || n_audio > EM_PROMPT_MAX_AUDIO)
        return em_errf(eb, EM_E_ARG, "prompt: %d audio tokens, expected 1..%d", n_audio,
                       EM_PROMPT_MAX_AUDIO);
    int32_t audio = em_tok_find(tok, "<|AUDIO|>");
    if (audio < 0 || em_tok_find(tok, "<|audio_bos|>") < 0 || em_tok_find(tok, "<|audio_eos|>") < 0)
        return em_errf(eb, EM_E_MODEL, "prompt: the tokenizer has no <|AUDIO|> / <|audio_bos|> / "
                                       "<|audio_eos|> tokens");
    char *text;
    em_err rc = em_prompt_render(p, &text, eb);
    if (rc != EM_OK) return rc;
    size_t len = strlen(text), cnt = 0;
    /* ids <= bytes; + n_audio for the expansion */
    int32_t *v = malloc((len + (size_t)n_audio + 1) * sizeof *v);
    if (!v) {
        free(text);
        return EM_E_NOMEM;
    }
    rc = em_tok_encode(tok, text, len, v, len + 1, &cnt, eb);
    if (rc == EM_E_TOO_LONG && cnt > len + 1) { /* NFC grew the free text */
        int32_t *w = realloc(v, (cnt + (size_t)n_audio) * sizeof *v);
        rc = w ? em_tok_encode(tok, text, len, w, cnt, &cnt, eb) : EM_E_NOMEM;
        if (w) v = w;
    }
    free(text);
    size_t at = cnt, k = 0;
    for (size_t i = 0; rc == EM_OK && i < cnt; i++)
        if (v[i] == audio) {
            at = i;
            k++;
        }
    if (rc == EM_OK && k != 1)
        rc = em_errf(eb, EM_E_INTERNAL, "prompt: %zu audio placeholders after encoding", k);
    if (rc != EM_OK) {
        free(v);
        return rc;
    }
    memmove(v + at + n_audio, v + at + 1, (cnt - at - 1) * sizeof *v);
    for (int i = 0; i < n_audio; i++) v[at + (size_t)i] = audio;
    *ids = v;
    *n = cnt - 1 + (size_t)n_audio;
    return EM_OK;
}
