/* tests/integration/test_it_cli.c - the command line as a new user meets it, through the
 * real binary: every usage error says what was wrong on its first line ("earmark CMD: ...",
 * the missing flag named), before the usage text, never with a doubled prefix; `earmark
 * help` and `earmark help CMD` work; and the README's command synopsis (the block under
 * "## Commands") names exactly the long flags each command's --help prints. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/proc.h"

#define MAX_CMDS 64
#define MAX_FLAGS 64

static char tmp[512];
static char cmds[MAX_CMDS][32]; /* from `earmark help` */
static int ncmds;

/* Runs `earmark ARGS` (no Redis URL in the environment); stdout and stderr to files under
 * tmp, read back into *out and *err (malloc'd, may be NULL). Returns the exit status. */
static int run(const char *args, char **out, char **err)
{
    char o[600], e[600];
    snprintf(o, sizeof o, "%s/out", tmp);
    snprintf(e, sizeof e, "%s/err", tmp);
    int rc = th_sh("env -u EARMARK_REDIS_URL -u EARMARK_COORDINATOR '%s' %s > '%s' 2> '%s' "
                   "< /dev/null",
                   th_bin(), args, o, e);
    if (out) *out = th_slurp(o, NULL);
    if (err) *err = th_slurp(e, NULL);
    return rc;
}

static int init(void)
{
    if (th_tmpdir(tmp, sizeof tmp) != 0) return 1;
    char *out = NULL;
    if (run("help", &out, NULL) != 0 || !out) return free(out), 1;
    /* "commands:" then "  NAME  description" lines */
    char *p = strstr(out, "commands:\n");
    for (p = p ? strchr(p, '\n') : NULL; p && ncmds < MAX_CMDS; p = strchr(p + 1, '\n')) {
        char name[32];
        if (sscanf(p + 1, "  %31[a-z]", name) != 1 || p[1] != ' ') break;
        if (strcmp(name, "version") && strcmp(name, "help")) snprintf(cmds[ncmds++], 32, "%s", name);
    }
    free(out);
    return ncmds < 10;
}

static int clean(void)
{
    th_rmrf(tmp);
    return 0;
}

/* The first line of s (into line, cap bytes). */
static void first_line(const char *s, char *line, size_t cap)
{
    size_t n = strcspn(s ? s : "", "\n");
    if (n >= cap) n = cap - 1;
    memcpy(line, s ? s : "", n);
    line[n] = 0;
}

static void usage_errors_say_what_was_wrong(void)
{
    static const struct {
        const char *cmd, *args, *want; /* want: in the first line of stderr */
        int usage;                     /* the usage text follows */
    } cases[] = {
        {"submit", "--redis redis://x --manifest m", "--out is required", 1},
        {"submit", "--manifest m --out /tmp/o", "--redis is required", 1},
        {"submit", "--redis redis://x --out /tmp/o", "--manifest is required", 1},
        {"submit", "--bogus", "unknown option '--bogus'", 1},
        {"submit", "--redis", "option '--redis' needs a value", 1},
        {"submit", "--redis redis://x --manifest m --out /o extra", "unexpected argument 'extra'", 1},
        {"status", "b", "--redis is required", 1},
        {"status", "--redis redis://x", "expected one BATCH", 1},
        {"coordinator", "--redis redis://x", "--bind is required", 1},
        {"coordinator", "--bind tcp://127.0.0.1:1", "--redis is required", 1},
        {"worker", "", "--connect is required", 1},
        {"worker", "--threads", "needs a value", 1},
        {"worker", "--connect tcp://x --nope 1", "unknown option '--nope'", 1},
        {"annotate", "f.wav", "--model is required", 1},
        {"annotate", "--model m", "no FILE given", 1},
        {"annotate", "--model m --form xml f.wav", "--form xml", 1},
        {"convert", "src", "-o/--output is required", 1},
        {"convert", "", "SRC (a checkpoint) is required", 1},
        {"convert", "src -o", "option '-o' needs a value", 1},
        {"bench", "", "expected 'model'", 1},
        {"bench", "model --layers", "needs a value", 1},
        {"keygen", "", "-o PREFIX is required", 1},
        {"cancel", "b", "--redis is required", 1},
        {"delete", "--redis redis://x", "expected one BATCH", 1},
        {"ls", "--redis redis://x extra", "unexpected argument 'extra'", 1},
        {"eval", "", "expected one BATCH|OUT_URI", 1},
        {"diff", "a", "expected two runs", 1},
        {"report", "b", "-o/--output is required", 1},
        {"index", "b", "--db is required", 1},
        {"search", "--db x", "no search words", 1},
        {"search", "w", "--db is required", 1},
        {"export", "--format xml b", "--format xml", 1},
        {"export", "a b", "expected one BATCH|OUT_URI", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[512], line[512], prefix[64], doubled[128];
        char *err = NULL;
        snprintf(args, sizeof args, "%s %s", cases[i].cmd, cases[i].args);
        int rc = run(args, NULL, &err);
        first_line(err, line, sizeof line);
        snprintf(prefix, sizeof prefix, "earmark %s: ", cases[i].cmd);
        snprintf(doubled, sizeof doubled, "%searmark", prefix);
        int ok = rc == 2 && strncmp(line, prefix, strlen(prefix)) == 0 &&
                 strstr(line, cases[i].want) && !strstr(line, doubled) &&
                 (!cases[i].usage || strstr(err, "\nusage: earmark "));
        if (!ok)
            fprintf(stderr, "\n  earmark %s: rc %d, stderr:\n%s\n  (wanted '%s')\n", args, rc,
                    err ? err : "(none)", cases[i].want);
        CU_ASSERT_TRUE(ok);
        free(err);
    }
    /* no command, unknown command */
    char *err = NULL;
    CU_ASSERT_EQUAL(run("", NULL, &err), 2);
    CU_ASSERT_TRUE(err && strncmp(err, "earmark: no command given\nusage: ", 33) == 0);
    free(err);
    CU_ASSERT_EQUAL(run("frobnicate", NULL, &err), 2);
    CU_ASSERT_TRUE(err && strstr(err, "unknown command 'frobnicate'"));
    free(err);
}

static void help_works_for_every_command(void)
{
    char *a = NULL, *b = NULL, args[128];
    CU_ASSERT_EQUAL(run("help", &a, NULL), 0);
    CU_ASSERT_TRUE(a && strstr(a, "usage: earmark COMMAND"));
    free(a);
    for (int i = 0; i < ncmds; i++) {
        snprintf(args, sizeof args, "help %.31s", cmds[i]);
        int ra = run(args, &a, NULL);
        snprintf(args, sizeof args, "%.31s --help", cmds[i]);
        int rb = run(args, &b, NULL);
        int ok = ra == 0 && rb == 0 && a && b && strstr(a, "usage: earmark ") && !strcmp(a, b);
        if (!ok) fprintf(stderr, "\n  earmark help %s: rc %d/%d\n", cmds[i], ra, rb);
        CU_ASSERT_TRUE(ok);
        free(a);
        free(b);
    }
    CU_ASSERT_EQUAL(run("help frobnicate", NULL, NULL), 2);
    CU_ASSERT_EQUAL(run("help --help", &a, NULL), 0); /* deploy/install.sh asks every listed name */
    CU_ASSERT_TRUE(a && strstr(a, "usage: earmark COMMAND"));
    free(a);
}

struct flags {
    char v[MAX_FLAGS][48];
    int n;
};

/* Adds every long flag ("--word") of text[0..len) but --help to f. */
static void collect_flags(const char *text, size_t len, struct flags *f)
{
    for (size_t i = 0; i + 2 < len; i++) {
        if (text[i] != '-' || text[i + 1] != '-' || (i && text[i - 1] == '-')) continue;
        size_t j = i + 2;
        while (j < len && ((text[j] >= 'a' && text[j] <= 'z') || (text[j] >= '0' && text[j] <= '9') ||
                           text[j] == '-'))
            j++;
        if (j == i + 2 || (j - i == 6 && !strncmp(text + i, "--help", 6))) continue;
        char name[48];
        snprintf(name, sizeof name, "%.*s", (int)(j - i), text + i);
        int seen = 0;
        for (int k = 0; k < f->n; k++) seen |= !strcmp(f->v[k], name);
        if (!seen && f->n < MAX_FLAGS) snprintf(f->v[f->n++], sizeof f->v[0], "%s", name);
        i = j;
    }
}

/* The README synopsis lines of cmd: its "earmark CMD ..." lines and their indented
 * continuations, without the "# ..." comments. */
static void readme_flags(const char *block, const char *cmd, struct flags *f, int *found)
{
    char head[64];
    snprintf(head, sizeof head, "earmark %.31s ", cmd);
    int in = 0;
    for (const char *l = block; *l;) {
        size_t n = strcspn(l, "\n");
        if (!strncmp(l, "earmark ", 8)) in = !strncmp(l, head, strlen(head));
        else if (l[0] != ' ') in = 0;
        if (in) {
            size_t m = strcspn(l, "#\n");
            collect_flags(l, m < n ? m : n, f);
            *found = 1;
        }
        l += n + (l[n] == '\n');
    }
}

static int has(const struct flags *f, const char *name)
{
    for (int k = 0; k < f->n; k++)
        if (!strcmp(f->v[k], name)) return 1;
    return 0;
}

static void readme_synopsis_matches_help(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/README.md", th_root());
    char *readme = th_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(readme);
    char *b = strstr(readme, "\n## Commands\n\n```\n");
    char *e = b ? strstr(b + 18, "\n```") : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    e[1] = 0;
    b += 18;
    /* every synopsis line names a real command */
    for (const char *l = b; (l = strstr(l, "earmark ")) != NULL; l++) {
        if (l != b && l[-1] != '\n') continue;
        char name[32] = "";
        sscanf(l + 8, "%31[a-z]", name);
        int known = !strcmp(name, "help");
        for (int i = 0; i < ncmds; i++) known |= !strcmp(name, cmds[i]);
        if (!known) fprintf(stderr, "\n  README synopsis: unknown command '%s'\n", name);
        CU_ASSERT_TRUE(known);
    }
    for (int i = 0; i < ncmds; i++) {
        char args[128], *out = NULL;
        snprintf(args, sizeof args, "%.31s --help", cmds[i]);
        CU_ASSERT_EQUAL(run(args, &out, NULL), 0);
        struct flags h = {.n = 0}, r = {.n = 0};
        int found = 0;
        if (out) collect_flags(out, strlen(out), &h);
        readme_flags(b, cmds[i], &r, &found);
        if (!found) fprintf(stderr, "\n  README synopsis: no line for '%s'\n", cmds[i]);
        CU_ASSERT_TRUE(found);
        for (int k = 0; k < h.n; k++) {
            if (!has(&r, h.v[k]))
                fprintf(stderr, "\n  %s: --help prints %s, the README synopsis does not\n",
                        cmds[i], h.v[k]);
            CU_ASSERT_TRUE(has(&r, h.v[k]));
        }
        for (int k = 0; k < r.n; k++) {
            if (!has(&h, r.v[k]))
                fprintf(stderr, "\n  %s: the README synopsis has %s, --help does not\n",
                        cmds[i], r.v[k]);
            CU_ASSERT_TRUE(has(&h, r.v[k]));
        }
        free(out);
    }
    free(readme);
}

static CU_TestInfo tests[] = {
    {"usage_errors_say_what_was_wrong", usage_errors_say_what_was_wrong},
    {"help_works_for_every_command", help_works_for_every_command},
    {"readme_synopsis_matches_help", readme_synopsis_matches_help},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_cli = {"it_cli", init, clean, NULL, NULL, tests};
