/* common/cmd.h - the subcommands of the `earmark` binary. Each takes the arguments after
 * its name (argv[0] is the subcommand name) and returns the process exit status:
 * 0 success, 1 failure (one-line error on stderr), 2 usage error. */
#ifndef EM_CMD_H
#define EM_CMD_H
int em_cmd_coordinator(int argc, char **argv); /* coordinator/cmd.c */
int em_cmd_worker(int argc, char **argv);      /* worker/cmd.c */
int em_cmd_submit(int argc, char **argv);      /* coordinator/submit.c */
int em_cmd_status(int argc, char **argv);      /* coordinator/status.c */
int em_cmd_annotate(int argc, char **argv);    /* worker/annotate_cmd.c */
int em_cmd_convert(int argc, char **argv);     /* model/tools/convert_cmd.c */
int em_cmd_bench(int argc, char **argv);       /* model/tools/bench_cmd.c */
int em_cmd_keygen(int argc, char **argv);      /* common/curve_cmd.c */
int em_cmd_cancel(int argc, char **argv);      /* coordinator/life_cmd.c */
int em_cmd_delete(int argc, char **argv);      /* coordinator/life_cmd.c */
int em_cmd_ls(int argc, char **argv);          /* coordinator/life_cmd.c */
int em_cmd_eval(int argc, char **argv);        /* results/eval.c */
int em_cmd_diff(int argc, char **argv);        /* results/diff.c */
int em_cmd_report(int argc, char **argv);      /* results/report.c */
int em_cmd_index(int argc, char **argv);       /* results/index.c */
int em_cmd_search(int argc, char **argv);      /* results/search.c */
int em_cmd_export(int argc, char **argv);      /* results/export.c */
#endif
