/* results/index_impl.h - the index handle, shared by index.c (writing) and search.c
 * (queries); not for use outside results/. */
#ifndef EM_INDEX_IMPL_H
#define EM_INDEX_IMPL_H

#include <sqlite3.h>

#include "results/index.h"

enum { EM_IX_GET, EM_IX_DEL_FTS, EM_IX_DEL_SEG, EM_IX_DEL_TAG, EM_IX_UPSERT, EM_IX_SEG,
       EM_IX_TAG, EM_IX_FTS, EM_IX_NSTMT };

struct em_index {
    sqlite3 *db;
    sqlite3_stmt *st[EM_IX_NSTMT]; /* prepared once per handle */
    size_t pending;                /* records in the open transaction */
    size_t segs_skipped;           /* segments past EM_INDEX_SEG_SPAN - 2 (reported) */
    size_t rank_cap;               /* search: fts rows ranked at most; 0: EM_INDEX_RANK_CAP */
};

#endif
