/* common/main.c - `earmark SUBCOMMAND ...`: the subcommand table. */
#include <stdio.h>
#include <string.h>

#include "common/cmd.h"
#include "common/log.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"coordinator", em_cmd_coordinator, "pull batches from Redis and dispatch them to workers"},
    {"worker", em_cmd_worker, "fetch, decode and annotate the tasks a coordinator sends"},
    {"submit", em_cmd_submit, "write a batch (manifest + prompts) to Redis"},
    {"status", em_cmd_status, "show a batch's progress"},
    {"annotate", em_cmd_annotate, "annotate local files in-process, no Redis"},
    {"convert", em_cmd_convert, "convert a checkpoint to one GGUF file (q8_0, q4_0, bf16, f16, f32)"},
    {"bench", em_cmd_bench, "benchmark the model code at the 7B shapes (bench model)"},
    {"keygen", em_cmd_keygen, "write a CURVE key pair (PREFIX.key, PREFIX.pub) for coordinator/worker"},
    {"cancel", em_cmd_cancel, "cancel a batch: the rest of its items are settled cancelled"},
    {"delete", em_cmd_delete, "delete a finished (or cancelled) batch's keys from Redis"},
    {"ls", em_cmd_ls, "list batches: state and counts"},
    {"eval", em_cmd_eval, "score a batch's records against the references of its manifest"},
    {"diff", em_cmd_diff, "compare two runs of a manifest: metric deltas, changed items, gate"},
    {"report", em_cmd_report, "write a self-contained HTML report of a batch"},
    {"index", em_cmd_index, "load records into an SQLite full-text index"},
    {"search", em_cmd_search, "search an index made by earmark index"},
    {"export", em_cmd_export, "flatten records to JSON lines or CSV (one row per item or segment)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "  %-12s %s\n", "version", "print the version");
    fprintf(f, "\n`earmark COMMAND --help` (or `earmark help COMMAND`) describes each command's "
               "options.\n");
}

int main(int argc, char **argv)
{
    em_log_init_env();
    if (argc < 2) {
        fprintf(stderr, "earmark: no command given\n");
        usage(stderr);
        return 2;
    }
    int help = strcmp(argv[1], "help") == 0;
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        (help && (argc == 2 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0))) {
        usage(stdout);
        return 0;
    }
    if (help) { /* `earmark help CMD` is `earmark CMD --help` */
        static char help_flag[] = "--help";
        static char *hv[4];
        if (argc > 3) {
            fprintf(stderr, "earmark help: expected one COMMAND\n");
            return 2;
        }
        hv[0] = argv[0], hv[1] = argv[2], hv[2] = help_flag, hv[3] = NULL;
        argc = 3, argv = hv;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("earmark %s\n", EM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) {
            em_log_set_comp(cmds[i].name);
            return cmds[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "earmark: unknown command '%s' (try earmark --help)\n", argv[1]);
    return 2;
}
