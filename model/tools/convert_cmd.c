/* model/tools/convert_cmd.c - `earmark convert`: a checkpoint -> one GGUF file (model/tools/convert.h).
 *   earmark convert SRC -o OUT.gguf [--type q8_0|q4_0|bf16|f16|f32] [--quiet]
 * SRC is a Hugging Face Qwen2-Audio directory (or a GGUF file), or a Whisper checkpoint
 * (model/family.h; written by em_whisper_convert, model/whisper/gguf.c). Prints one progress line per
 * tensor on stderr ("convert: tensor 12/453 name -> Q8_0"), then a summary line. The output
 * is loadable by every command that takes a checkpoint (em_ckpt_open).
 * Exit status 0 on success, 1 on failure (one-line error on stderr), 2 on usage errors. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/usage.h"
#include "model/tools/convert.h"
#include "model/kernels/quant.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: earmark convert SRC -o|--output OUT.gguf [--type q8_0|q4_0|bf16|f16|f32] [--quiet]\n"
            "  SRC      Hugging Face Qwen2-Audio checkpoint directory (or a GGUF file), or a\n"
            "           Whisper checkpoint (CTranslate2 or Hugging Face directory; written as\n"
            "           f32, f16 or q8_0, docs/whisper.md)\n"
            "  -o, --output  the GGUF file to write (written to OUT.tmp.<pid>, then renamed)\n"
            "  --type   type of the layer linear weights and lm_head (default q8_0); q4_0\n"
            "           quantizes the decoder MLPs to q4_0 and keeps the audio encoder, the\n"
            "           decoder attention and lm_head in q8_0 (docs/accuracy.md); linears whose\n"
            "           input dim is not a multiple of 32 stay f16/bf16, norms and biases f32,\n"
            "           embeddings/conv/projector keep the source type unless f32/f16/bf16 is\n"
            "           asked (model/tools/convert.h)\n"
            "  --quiet  no per-tensor progress lines\n");
}

static void progress(void *ctx, size_t i, size_t n, const char *name, int wtype)
{
    (void)ctx;
    fprintf(stderr, "convert: tensor %zu/%zu %s -> %s\n", i + 1, n, name, em_wtype_name(wtype));
}

int em_cmd_convert(int argc, char **argv)
{
    const char *src = NULL, *out = NULL;
    struct em_convert_opts o = em_convert_opts_default();
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--type") == 0 && i + 1 < argc) {
            if ((o.wtype = em_convert_parse_type(argv[++i])) < 0)
                return em_usage_error("convert", usage,
                                      "--type %.80s is not q8_0, q4_0, bf16, f16 or f32", argv[i]);
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--type")) {
            return em_usage_error("convert", usage, "option '%s' needs a value", a);
        } else if (a[0] == '-') {
            return em_usage_error("convert", usage, "unknown option '%.80s'", a);
        } else if (src) {
            return em_usage_error("convert", usage, "unexpected argument '%.80s' (one SRC only)",
                                  a);
        } else {
            src = a;
        }
    }
    if (!src) return em_usage_error("convert", usage, "SRC (a checkpoint) is required");
    if (!out) return em_usage_required("convert", usage, "-o/--output", NULL);
    if (!quiet) o.progress = progress;
    struct em_errbuf eb = {{0}};
    double t0 = em_now_s();
    em_err rc = em_convert(src, out, &o, &eb);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark convert: %s: %s\n", em_err_str(rc), eb.msg[0] ? eb.msg : src);
        return 1;
    }
    struct stat sb;
    long long size = stat(out, &sb) == 0 ? (long long)sb.st_size : -1;
    fprintf(stderr, "convert: wrote %s (%s, %lld bytes) in %.1f s\n", out, em_wtype_name(o.wtype),
            size, em_now_s() - t0);
    return 0;
}
