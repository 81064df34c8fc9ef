/* model/tools/bench_capacity.h - `earmark bench capacity`: clips per hour of one worker at
 * capacity 1, 2 and 4 (model/gen/engine.h), Qwen2-Audio-7B widths, random weights, in one
 * run with the capacities alternated round by round, and where a clip's time goes.
 *
 * Each configuration runs capacity x clips_per_slot clips through `capacity` clip threads
 * (the worker's pipeline threads) doing what the worker does per clip: its file in memory
 * (as fetched: seeded noise as a 44.1 kHz stereo 16-bit WAV) decoded and resampled by FFmpeg
 * (em_audio_decode_mem), then per window as model.c: log-mel -> em_encoder_run ->
 * em_projector_run -> em_engine_generate of the prompts (shared audio prefix prefilled once, the prompt tails
 * together, then every live sequence of every clip stepped together by the engine). No
 * stop token ends an answer (random weights): every prompt decodes new_tokens ids.
 * Per clip: encoder (FFmpeg decode + mel + encoder + projector), prefill (the shared
 * prefix), decode (the prompt tails and every step until the clip's last answer ends; at capacity > 1 this
 * wall time is shared with other clips' rows), other (the rest: waiting for memory, the
 * engine hand-over). Then the decode step alone at each capacity's rows (prompts x C
 * sequences over a prefix of the clip's shared length, grouped as the engine groups them,
 * best of 3) and the capacity ratio those step costs allow beside the measured one (a clip
 * alone: E + P + N t(prompts); at capacity C: E + P + N t(prompts x C) / C, E + P from
 * capacity 1's split): where the two agree, the engine delivers what batching the decode
 * step allows on this machine. Nothing is asserted: timings vary with the load. */
#ifndef EM_BENCH_CAPACITY_H
#define EM_BENCH_CAPACITY_H

#include <stdio.h>

#include "common/err.h"

#define EM_BENCHCAP_MAX_CAPS 4

struct em_benchcap_opts {
    int layers;         /* encoder and decoder layers built (1..32; default 4) */
    unsigned types;     /* bit (1 << wtype); default q8_0, q4_0 */
    int caps[EM_BENCHCAP_MAX_CAPS], n_caps; /* default 1, 2, 4 */
    int clips_per_slot; /* clips per configuration = capacity x this (default 2) */
    double audio_s;     /* seconds of audio per clip, 1..30 (default 30) */
    int prompts;        /* prompts per clip, 1..8 (default 3) */
    int new_tokens;     /* ids each prompt decodes (default 32) */
    int rounds;         /* alternations of every capacity (default 1) */
    FILE *progress;     /* a line per configuration; NULL: quiet */
};
struct em_benchcap_opts em_benchcap_opts_default(void);

/* Runs it and prints the table to out. Errors: EM_E_ARG (options), EM_E_NOMEM, the model
 * code's errors. */
em_err em_bench_capacity(const struct em_benchcap_opts *o, FILE *out, struct em_errbuf *eb);

/* `earmark bench capacity ...` (argv[1] is "capacity"): the table on stdout, progress on
 * stderr. Exit status: 0 done, 1 failed, 2 usage error. */
int em_bench_capacity_cmd(int argc, char **argv);
void em_bench_capacity_usage(FILE *f); /* its usage text (also in `earmark bench --help`) */

#endif
