/* results/report.h - the HTML page of `earmark report` (results/report.c), exposed so tests
 * can render it from records in memory. */
#ifndef EM_REPORT_H
#define EM_REPORT_H

#include <stdio.h>

#include "results/records.h"
#include "results/score.h"

/* Writes the whole page for records r scored as it[r->n] to f. */
void em_report_write(FILE *f, const struct em_recs *r, const struct em_score_item *it);

#endif
