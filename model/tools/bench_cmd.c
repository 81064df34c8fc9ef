/* model/tools/bench_cmd.c - `earmark bench model [--layers N] [--encoder-layers N] [--seconds S]
 * [--types f32,bf16,q8_0,q4_0] [--prefill N] [--new-tokens N]`: prints model/tools/bench.h's table
 * to stdout (progress on stderr). Exit status: 0 done, 1 failed, 2 usage error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cmd.h"
#include "common/usage.h"
#include "common/err.h"
#include "model/tools/bench.h"
#include "model/tools/bench_device.h"
#include "model/tools/bench_capacity.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: earmark bench model [--layers N] [--encoder-layers N] [--seconds S]\n"
            "                           [--types f32,f16,bf16,q8_0,q4_0] [--prefill N]\n"
            "                           [--new-tokens N] [--device cpu|cuda[:N]]\n"
            "  Speed of the model code at the Qwen2-Audio-7B shapes with random in-memory\n"
            "  weights, beside the machine's memory bandwidth, sgemm GFLOP/s and arithmetic\n"
            "  peaks, with the floor one clip cannot beat on this machine.\n"
            "  --layers N          decoder layers built (default 2; also the encoder's unless\n"
            "                      --encoder-layers is given); figures are extrapolated to 32\n"
            "  --seconds S         time per decode measurement (default 2)\n"
            "  --types LIST        weight types (default bf16,q8_0,q4_0)\n"
            "  --prefill N         prompt tokens of the prefill measurement (default 800)\n"
            "  --new-tokens N      answer length in the end-to-end estimate (default 100)\n"
            "  --device DEV        cpu (default; EARMARK_DEVICE), or cuda[:N]: the backend table\n"
            "                      on that GPU in bf16 (model/tools/bench_device.h)\n");
    em_bench_capacity_usage(f);
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int em_cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "capacity") == 0) return em_bench_capacity_cmd(argc, argv);
    if (argc < 2 || strcmp(argv[1], "model") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            usage(stdout);
            return 0;
        }
        return em_usage_error("bench", usage,
                              "expected 'model' or 'capacity' (make bench runs the dispatch "
                              "benchmark: deploy/bench-dispatch.sh)");
    }
    struct em_bench_opts o = em_bench_opts_default();
    int enc_set = 0;
    const char *device = getenv("EARMARK_DEVICE");
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (!v) {
            bad = 1;
        } else if (strcmp(a, "--layers") == 0) {
            bad = parse_int(v, 1, EM_BENCH_MAX_LAYERS, &o.dec_layers);
        } else if (strcmp(a, "--encoder-layers") == 0) {
            bad = parse_int(v, 1, EM_BENCH_MAX_LAYERS, &o.enc_layers);
            enc_set = 1;
        } else if (strcmp(a, "--seconds") == 0) {
            char *end;
            o.seconds = strtod(v, &end);
            bad = end == v || *end || !(o.seconds > 0 && o.seconds <= 600);
        } else if (strcmp(a, "--types") == 0) {
            struct em_errbuf eb = {{0}};
            if (em_bench_parse_types(v, &o.types, &eb) != EM_OK) {
                return em_usage_error("bench", usage, "%s", eb.msg);
            }
        } else if (strcmp(a, "--prefill") == 0) {
            bad = parse_int(v, 24, 4096, &o.prefill_tokens);
        } else if (strcmp(a, "--device") == 0) {
            device = v;
        } else if (strcmp(a, "--new-tokens") == 0) {
            bad = parse_int(v, 1, 4096, &o.new_tokens);
        } else {
            bad = 1;
        }
        if (bad)
            return em_usage_error("bench", usage, "%s '%.80s'",
                                  !v ? "option needs a value (or is unknown):"
                                     : "unknown option, or a bad value for",
                                  a);
        i++;
    }
    if (!enc_set) o.enc_layers = o.dec_layers;
    o.progress = stderr;
    struct em_errbuf eb = {{0}};
    em_err rc;
    if (device && *device && strcmp(device, "cpu") != 0) {
        struct em_bench_shapes sh = em_bench_shapes_7b();
        sh.prefill_T = o.prefill_tokens;
        sh.new_tokens = o.new_tokens;
        rc = em_bench_device(device, &sh, stdout, &eb);
    } else {
        rc = em_bench_model(&o, stdout, &eb);
    }
    if (rc != EM_OK) {
        fprintf(stderr, "earmark bench model: %s\n", em_errbuf_msg(&eb, rc));
        return 1;
    }
    return 0;
}
