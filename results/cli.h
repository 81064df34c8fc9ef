/* results/cli.h - what the results commands (eval, diff, report, index, search, export)
 * share: loading a batch's records with their references and tag table, and scoring them.
 * Each prints its failure as one line `earmark WHO: cause` on stderr. Not thread-safe. */
#ifndef EM_RESULTS_CLI_H
#define EM_RESULTS_CLI_H

#include <stddef.h>

#include "results/records.h"
#include "results/score.h"

struct em_evtags;

struct em_rcli_opts {
    const char *redis; /* --redis, else EARMARK_REDIS_URL: for batch ids */
    const char *refs;  /* --refs FILE: references from a manifest file; NULL: records' meta */
    const char *tags;  /* --tags FILE: synonym table; NULL: $EARMARK_EVENT_TAGS or none */
};

/* The long options for the fields above, for a getopt_long table ('r', 'R', 't'), and
 * --redis-ca ('C', exported as EARMARK_REDIS_CA: coordinator/cli.h). */
#define EM_RCLI_LONGOPTS                                                                          \
    {"redis", required_argument, 0, 'r'}, {"refs", required_argument, 0, 'R'},                    \
        {"tags", required_argument, 0, 't'}, {"redis-ca", required_argument, 0, 'C'}
/* Takes getopt's option c (argument arg) into o when it is one of those: 1, else 0. */
int em_rcli_opt(struct em_rcli_opts *o, int c, const char *arg);

struct em_storage;
/* Resolves arg (batch id or OUT_URI; redis: --redis or NULL for EARMARK_REDIS_URL) into *out
 * (malloc'd) and opens *st with reads capped at EM_RECS_MAX_LIST bytes. On failure both are
 * NULL and eb says why. */
em_err em_rcli_open(const char *arg, const char *redis, char **out, struct em_storage **st,
                    struct em_errbuf *eb);

/* Resolves arg (batch id or OUT_URI), reads every record into *r and the references and
 * the tag table (*tags, NULL when none). 0 on success, 1 after printing the error. */
int em_rcli_load(const char *who, const char *arg, const struct em_rcli_opts *o,
                 struct em_recs *r, struct em_evtags **tags);
/* Scores every record of r (score.h); *items is malloc'd (r->n of them, borrowing from r).
 * 0 on success, 1 after printing the error. */
int em_rcli_score(const char *who, const struct em_recs *r, const struct em_evtags *tags,
                  struct em_score_item **items);
/* A number as JSON: a real, or null when NAN. New reference. */
json_t *em_rcli_jnum(double v);

#endif
