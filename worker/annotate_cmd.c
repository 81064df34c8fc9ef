/* worker/annotate_cmd.c - `earmark annotate`: runs Qwen2-Audio on local files, no cluster.
 *   earmark annotate --model DIR [--task caption|transcript|events] [--prompt TEXT]
 *                    [--form base|chat] [--max-new-tokens N] [--greedy] [--seed N] [--ids]
 *                    FILE...
 * Per file: FFmpeg decode to 16 kHz mono (model/audio.h) -> 30 s windows (model/chunk.h)
 * -> log-mel (model/mel.h) -> audio tower (model/encoder.h) -> projector -> prompt with N
 * <|AUDIO|> tokens (model/prompt.h) -> generation (model/generate.h) -> text.
 * Prints one JSON object per file on stdout:
 *   {"file": F, "task": T, "form": "base"|"chat", "duration_s": D, "text": "...",
 *    "segments": [{"start_s", "end_s", "audio_tokens", "new_tokens", "stopped", "text"
 *                  [, "ids"]}]}
 * or {"file": F, "error": {"class": "EM_E_...", "message": "..."}} and goes on with the
 * next file. Exit status 0 if every file succeeded, 1 otherwise, 2 on usage errors.
 * The form defaults to chat when the checkpoint carries a chat template (Instruct), else base.
 * Sampling settings default to the checkpoint's generation_config.json. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cmd.h"
#include "model/audio.h"
#include "model/chunk.h"
#include "model/decoder.h"
#include "model/encoder.h"
#include "model/generate.h"
#include "model/loader/safetensors.h"
#include "model/mel.h"
#include "model/projector.h"
#include "model/prompt.h"
#include "model/tokenizer.h"

struct runner {
    struct em_ckpt *ck;
    struct em_tok *tok;
    struct em_mel *mel;
    struct em_encoder *enc;
    struct em_projector proj;
    struct em_dec *dec;
    struct em_prompt prompt;
    struct em_gen_params gen;
    int with_ids;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: earmark annotate --model DIR [--task caption|transcript|events] [--prompt TEXT]\n"
            "                        [--form base|chat] [--max-new-tokens N] [--greedy] [--seed N]\n"
            "                        [--ids] FILE...\n"
            "  --model           Hugging Face checkpoint directory (safetensors + tokenizer files)\n"
            "  --task            built-in prompt (default caption)\n"
            "  --prompt          free-text instruction/question instead of the task's\n"
            "  --form            base: plain prompt (Qwen2-Audio-7B); chat: ChatML (Instruct);\n"
            "                    default chat when the checkpoint has a chat template\n"
            "  --max-new-tokens  per 30 s window (default: generation_config.json, else %d)\n"
            "  --greedy          argmax decoding (the repetition penalty still applies)\n"
            "  --seed            sampling seed (default 0)\n"
            "  --ids             also print the generated token ids\n",
            EM_GEN_DEFAULT_MAX_NEW);
}

static long parse_num(const char *s, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || *end || v < lo || v > hi) return -1;
    return v;
}

/* Instruct checkpoints ship a chat template (chat_template.jinja or in tokenizer_config). */
static int has_chat_template(const char *dir)
{
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof p, "%s/chat_template.jinja", dir);
    if (stat(p, &sb) == 0) return 1;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    json_t *j = json_load_file(p, JSON_DECODE_INT_AS_REAL, NULL);
    int yes = json_is_string(json_object_get(j, "chat_template"));
    json_decref(j);
    return yes;
}

static em_err runner_open(struct runner *r, const char *dir, struct em_errbuf *eb)
{
    em_err rc;
    if ((rc = em_ckpt_open(dir, &r->ck, eb)) || (rc = em_tok_load(dir, &r->tok, eb)) ||
        (rc = em_mel_new(&r->mel)) || (rc = em_encoder_new(r->ck, &r->enc, eb)) ||
        (rc = em_projector_init(r->ck, &r->proj, eb)) || (rc = em_dec_open(r->ck, &r->dec, eb)))
        return rc;
    return EM_OK;
}

static void runner_close(struct runner *r)
{
    em_dec_free(r->dec);
    em_encoder_free(r->enc);
    em_mel_free(r->mel);
    em_tok_free(r->tok);
    em_ckpt_close(r->ck);
}

/* One window: pcm[n] -> segment object appended to segs, text appended to *all. */
static em_err run_window(struct runner *r, const float *pcm, size_t n, const struct em_chunk *c,
                         json_t *segs, json_t *text_parts, struct em_errbuf *eb)
{
    const int D = em_encoder_dim(r->enc), H = r->proj.out;
    float *mel = malloc((size_t)EM_MEL_BINS * EM_MEL_FRAMES * sizeof *mel);
    float *enc = malloc((size_t)750 * D * sizeof *enc);
    float *emb = malloc((size_t)750 * H * sizeof *emb);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct em_gen_result res = {0};
    char *text = NULL;
    int mel_len = 0, n_tok = 0;
    em_err rc = EM_E_NOMEM;
    if (!mel || !enc || !emb) goto done;
    if ((rc = em_mel_compute(r->mel, pcm, n, mel, &mel_len)) != EM_OK) goto done;
    if ((rc = em_encoder_run(r->enc, mel, mel_len, enc, &n_tok, eb)) != EM_OK) goto done;
    if ((rc = em_projector_run(&r->proj, enc, n_tok, emb)) != EM_OK) goto done;
    if ((rc = em_prompt_tokens(r->tok, &r->prompt, n_tok, &ids, &n_ids, eb)) != EM_OK) goto done;
    if ((rc = em_generate(r->dec, ids, n_ids, emb, n_tok, &r->gen, &res, eb)) != EM_OK) goto done;
    if ((rc = em_tok_decode(r->tok, res.ids, res.n, true, &text, NULL)) != EM_OK) goto done;
    json_t *seg = json_pack("{s:f, s:f, s:i, s:i, s:b, s:s}", "start_s", c->start_s, "end_s",
                            c->end_s, "audio_tokens", n_tok, "new_tokens", (int)res.n, "stopped",
                            res.stopped, "text", text);
    if (seg && r->with_ids) {
        json_t *a = json_array();
        for (size_t i = 0; i < res.n; i++) json_array_append_new(a, json_integer(res.ids[i]));
        json_object_set_new(seg, "ids", a);
    }
    if (!seg) rc = EM_E_NOMEM;
    else json_array_append_new(segs, seg);
    json_array_append_new(text_parts, json_string(text));
done:
    free(text);
    free(res.ids);
    free(ids);
    free(mel);
    free(enc);
    free(emb);
    return rc;
}

static json_t *run_file(struct runner *r, const char *path, const char *task, const char *form)
{
    struct em_errbuf eb = {{0}};
    struct em_audio a = {0};
    json_t *out = json_pack("{s:s}", "file", path);
    json_t *segs = json_array(), *parts = json_array();
    struct em_chunk *ch = NULL;
    size_t nc = 0;
    em_err rc = em_audio_decode_file(path, &a, &eb);
    if (rc == EM_OK) {
        size_t cnt = em_chunk_count(a.n);
        ch = calloc(cnt ? cnt : 1, sizeof *ch);
        rc = ch ? em_chunk_split(a.n, ch, cnt, &nc) : EM_E_NOMEM;
        if (rc == EM_OK && nc == 0) rc = em_errf(&eb, EM_E_TOO_SHORT, "%s: no samples", path);
    }
    for (size_t i = 0; rc == EM_OK && i < nc; i++) {
        rc = run_window(r, a.pcm + ch[i].offset, ch[i].n, &ch[i], segs, parts, &eb);
        /* a sub-320-sample tail after full windows has nothing to describe */
        if (rc == EM_E_TOO_SHORT && i > 0 && i + 1 == nc) rc = EM_OK;
    }
    if (rc == EM_OK) {
        size_t total = 0, k;
        json_t *p;
        json_array_foreach(parts, k, p) total += json_string_length(p) + 1;
        char *all = calloc(total + 1, 1);
        size_t off = 0;
        json_array_foreach(parts, k, p) {
            if (!all || json_string_length(p) == 0) continue; /* no separator for empty answers */
            off += (size_t)snprintf(all + off, total + 1 - off, "%s%s", off ? " " : "",
                                    json_string_value(p));
        }
        json_object_set_new(out, "task", json_string(r->prompt.text ? "prompt" : task));
        json_object_set_new(out, "form", json_string(form));
        json_object_set_new(out, "duration_s", json_real(a.duration_s));
        json_object_set_new(out, "text", json_string(all ? all : ""));
        json_object_set(out, "segments", segs);
        free(all);
    } else {
        json_object_set_new(out, "error", json_pack("{s:s, s:s}", "class", em_err_name(rc),
                                                    "message", em_errbuf_msg(&eb, rc)));
    }
    json_decref(segs);
    json_decref(parts);
    free(ch);
    em_audio_free(&a);
    return out;
}

int em_cmd_annotate(int argc, char **argv)
{
    const char *model = NULL, *task = "caption", *text = NULL, *form_s = NULL;
    long max_new = -1, seed = 0;
    int greedy = 0, with_ids = 0, first_file = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--greedy")) { greedy = 1; continue; }
        if (!strcmp(a, "--ids")) { with_ids = 1; continue; }
        if (strncmp(a, "--", 2) != 0) { first_file = i; break; }
        if (i + 1 >= argc) {
            fprintf(stderr, "earmark annotate: %s needs a value (or unknown option)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "--prompt")) text = v;
        else if (!strcmp(a, "--form")) form_s = v;
        else if (!strcmp(a, "--max-new-tokens")) {
            if ((max_new = parse_num(v, 1, 8192)) < 0) {
                fprintf(stderr, "earmark annotate: --max-new-tokens %s: expected 1..8192\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--seed")) {
            if ((seed = parse_num(v, 0, 0x7fffffffL)) < 0) {
                fprintf(stderr, "earmark annotate: --seed %s: expected 0..2^31-1\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "earmark annotate: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || first_file >= argc) {
        usage(stderr);
        return 2;
    }
    if (!text && !em_prompt_task_find(task)) {
        fprintf(stderr, "earmark annotate: unknown task '%s' (caption, transcript, events)\n", task);
        return 2;
    }
    if (form_s && strcmp(form_s, "base") && strcmp(form_s, "chat")) {
        fprintf(stderr, "earmark annotate: --form %s: expected base or chat\n", form_s);
        return 2;
    }
    struct runner r;
    memset(&r, 0, sizeof r);
    struct em_errbuf eb = {{0}};
    em_err rc = runner_open(&r, model, &eb);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark annotate: %s: %s\n", model, em_errbuf_msg(&eb, rc));
        runner_close(&r);
        return 1;
    }
    if (!form_s) form_s = has_chat_template(model) ? "chat" : "base";
    r.prompt = (struct em_prompt){strcmp(form_s, "chat") ? EM_PROMPT_BASE : EM_PROMPT_CHAT, task, text};
    char *check = NULL;
    if ((rc = em_prompt_render(&r.prompt, &check, &eb)) != EM_OK) {
        fprintf(stderr, "earmark annotate: %s\n", em_errbuf_msg(&eb, rc));
        runner_close(&r);
        return 2;
    }
    free(check);
    r.gen = em_gen_params_from(&em_ckpt_config(r.ck)->gen);
    if (max_new > 0) r.gen.max_new_tokens = (int)max_new;
    if (greedy) r.gen.sampler.do_sample = false;
    r.gen.sampler.seed = (uint64_t)seed;
    r.with_ids = with_ids;
    int failed = 0;
    for (int i = first_file; i < argc; i++) {
        json_t *o = run_file(&r, argv[i], task, form_s);
        failed |= json_object_get(o, "error") != NULL;
        char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s) printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(o);
    }
    runner_close(&r);
    return failed ? 1 : 0;
}
