/* results/export.h - the flat rows of `earmark export` (columns in results/export.c's
 * header comment), shared with the tests. Thread-safe (no shared state). */
#ifndef EM_EXPORT_H
#define EM_EXPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Column names in order, NULL-terminated (static). */
const char *const *em_export_columns(int segments);
/* The row of one record, or of its segment i; new reference, NULL on allocation failure. */
json_t *em_export_item_row(const json_t *rec);
json_t *em_export_segment_row(const json_t *rec, size_t i);
/* Writes a row as a JSON line or a CSV line. 0, or -1 on allocation failure / NULL row. */
int em_export_write(FILE *f, const json_t *row, int segments, int csv);

#endif
