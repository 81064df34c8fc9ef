/* results/search.c - FTS5 queries over the index (em_index_search in index.h) and
 * `earmark search --db FILE "words" [--event TAG] [--limit N] [--json]`. */
#include <getopt.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/usage.h"
#include "common/num.h"
#include "results/index.h"
#include "results/index_impl.h"
#include "results/evtags.h"

#define ROWS_PER_ITEM 8 /* fts rows fetched per item asked for (whole item + segments) */

em_err em_index_fts_query(const char *words, char *out, size_t cap, struct em_errbuf *eb)
{
    size_t n = 0, nw = 0;
    if (strlen(words) > EM_INDEX_MAX_QUERY)
        return em_errf(eb, EM_E_ARG, "query of %zu bytes (limit %u)", strlen(words), EM_INDEX_MAX_QUERY);
    for (const char *p = words; *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        if (n + 2 >= cap) goto too_long;
        if (nw++) out[n++] = ' ';
        out[n++] = '"';
        for (; *p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r'; p++) {
            if (n + 3 >= cap) goto too_long;
            if (*p == '"') out[n++] = '"';
            out[n++] = *p;
        }
        out[n++] = '"';
    }
    if (!nw) return em_errf(eb, EM_E_ARG, "empty query");
    out[n] = 0;
    return EM_OK;
too_long:
    return em_errf(eb, EM_E_TOO_LONG, "query too long");
}

void em_index_set_rank_cap(struct em_index *ix, size_t cap) { ix->rank_cap = cap; }

/* Binds the match (?1), event (?2) and span (?3) parameters shared by the queries below. */
static void bind_match(sqlite3_stmt *s, const char *q, const char *tag)
{
    sqlite3_bind_text(s, 1, q, -1, SQLITE_TRANSIENT);
    if (tag[0])
        sqlite3_bind_text(s, 2, tag, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, 2);
    sqlite3_bind_int64(s, 3, EM_INDEX_SEG_SPAN);
}

#define MATCH_WHERE                                                                              \
    " fts MATCH ?1 AND (?2 IS NULL OR rowid / ?3 IN (SELECT rid FROM item_tags WHERE tag = ?2))"

/* The lowest fts rowid to rank: 0 when at most cap rows match (all are ranked), else the
 * first rowid of the item after the (cap + 1)-th newest matching row, so at most cap rows
 * of whole items are ranked. Walking matches in rowid order costs no scoring. */
static em_err rank_floor(sqlite3 *db, const char *q, const char *tag, size_t cap,
                         sqlite3_int64 *lo, struct em_errbuf *eb)
{
    static const char sql[] =
        "SELECT rowid FROM fts WHERE" MATCH_WHERE " ORDER BY rowid DESC LIMIT 1 OFFSET ?4";
    sqlite3_stmt *s = NULL;
    *lo = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return em_errf(eb, EM_E_IO, "sqlite: %s", sqlite3_errmsg(db));
    bind_match(s, q, tag);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)cap);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) *lo = (sqlite3_column_int64(s, 0) / EM_INDEX_SEG_SPAN + 1) * EM_INDEX_SEG_SPAN;
    sqlite3_finalize(s);
    if (r != SQLITE_ROW && r != SQLITE_DONE) return em_errf(eb, EM_E_IO, "sqlite: %s", sqlite3_errmsg(db));
    return EM_OK;
}

em_err em_index_search(struct em_index *ix, const char *query, const char *event, size_t limit,
                       json_t **out, struct em_errbuf *eb)
{
    *out = NULL;
    sqlite3 *db = ix->db;
    char q[EM_INDEX_MAX_QUERY * 2 + 8];
    em_err rc = em_index_fts_query(query, q, sizeof q, eb);
    if (rc != EM_OK) return rc;
    if (limit == 0 || limit > EM_INDEX_MAX_LIMIT) limit = EM_INDEX_MAX_LIMIT;
    char tag[EM_EVTAG_MAX_TAG + 1] = "";
    if (event) em_evtag_norm(NULL, event, tag, sizeof tag);
    sqlite3_int64 lo = 0;
    size_t cap = ix->rank_cap ? ix->rank_cap : EM_INDEX_RANK_CAP;
    if (cap < limit * ROWS_PER_ITEM) cap = limit * ROWS_PER_ITEM;
    rc = rank_floor(db, q, tag, cap, &lo, eb);
    if (rc != EM_OK) return rc;
    /* Without --event: FTS5 sorts by rank itself (ORDER BY rank with a LIMIT), snippets
     * and the joins run only for the rows returned; rowid >= ?5 bounds the rows it scores
     * (it seeks to the bound). */
    static const char sql_all[] =
        "SELECT f.rowid, f.score, f.snip, i.id, i.source, s.start_s, s.end_s FROM"
        " (SELECT rowid, rank AS score, snippet(fts, -1, '[', ']', '...', 12) AS snip FROM fts"
        "  WHERE" MATCH_WHERE " AND rowid >= ?5"
        "  ORDER BY rank LIMIT ?4) f"
        " JOIN items i ON i.rid = f.rowid / ?3"
        " LEFT JOIN segments s ON s.rid = i.rid AND s.seg = f.rowid % ?3 - 1"
        " ORDER BY f.score";
    /* With --event, ORDER BY rank would score every row FTS5 yields before the filter;
     * bm25 as a column is computed only for rows that pass the WHERE clause. Snippets and
     * joins still run only for the rows returned: the outer fts scan is a rowid lookup per
     * row (CROSS JOIN keeps that order). */
    static const char sql_event[] =
        "SELECT f.r, f.score, snippet(fts, -1, '[', ']', '...', 12), i.id, i.source, s.start_s,"
        " s.end_s FROM"
        " (SELECT rowid AS r, bm25(fts) AS score FROM fts"
        "  WHERE" MATCH_WHERE " AND rowid >= ?5"
        "  ORDER BY score LIMIT ?4) f"
        " CROSS JOIN fts ON fts.rowid = f.r"
        " JOIN items i ON i.rid = f.r / ?3"
        " LEFT JOIN segments s ON s.rid = i.rid AND s.seg = f.r % ?3 - 1"
        " WHERE fts MATCH ?1"
        " ORDER BY f.score";
    const char *sql = tag[0] ? sql_event : sql_all;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return em_errf(eb, EM_E_IO, "sqlite: %s", sqlite3_errmsg(db));
    bind_match(s, q, tag);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)(limit * ROWS_PER_ITEM));
    sqlite3_bind_int64(s, 5, lo);
    json_t *items = json_array(), *byid = json_object();
    int r;
    while (items && byid && (r = sqlite3_step(s)) == SQLITE_ROW) {
        sqlite3_int64 rowid = sqlite3_column_int64(s, 0);
        double score = sqlite3_column_double(s, 1);
        const char *snip = (const char *)sqlite3_column_text(s, 2);
        const char *id = (const char *)sqlite3_column_text(s, 3);
        const char *src = (const char *)sqlite3_column_text(s, 4);
        if (!id) continue;
        json_t *it = json_object_get(byid, id);
        if (!it) {
            if (json_array_size(items) >= limit) continue;
            it = json_pack("{s:s, s:s?, s:f, s:n, s:[]}", "id", id, "source", src, "score", score,
                           "snippet", "segments");
            json_array_append_new(items, it);
            json_object_set(byid, id, it);
        }
        long seg = (long)(rowid % EM_INDEX_SEG_SPAN) - 1;
        if (seg < 0) {
            json_object_set_new(it, "snippet", json_string(snip ? snip : ""));
        } else {
            json_array_append_new(json_object_get(it, "segments"),
                                  json_pack("{s:i, s:f, s:f, s:f, s:s}", "segment", (int)seg,
                                            "start_s", sqlite3_column_double(s, 5), "end_s",
                                            sqlite3_column_double(s, 6), "score", score,
                                            "snippet", snip ? snip : ""));
        }
    }
    if (items && byid && r != SQLITE_DONE) rc = em_errf(eb, EM_E_IO, "sqlite: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    json_decref(byid);
    if (!items) rc = em_errf(eb, EM_E_NOMEM, "out of memory");
    if (rc != EM_OK) {
        json_decref(items);
        return rc;
    }
    *out = items;
    return EM_OK;
}

/* CPU time of this process (user + system), seconds: unlike wall time, not inflated by
 * other processes on a busy machine. */
static double cpu_s(void)
{
    struct timespec ts;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 ? (double)ts.tv_sec + ts.tv_nsec / 1e9 : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark search --db FILE [--event TAG] [--limit N] [--json] [--timing] "
               "WORDS...\n");
}

int em_cmd_search(int argc, char **argv)
{
    static const struct option lo[] = {
        {"db", required_argument, 0, 'd'},    {"event", required_argument, 0, 'e'},
        {"limit", required_argument, 0, 'n'}, {"json", no_argument, 0, 'j'},
        {"timing", no_argument, 0, 't'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *db = NULL, *event = NULL;
    long limit = 20;
    int as_json = 0, timing = 0;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        if (c == 'd') db = optarg;
        else if (c == 'e') event = optarg;
        else if (c == 'j') as_json = 1;
        else if (c == 't') timing = 1;
        else if (c == 'n' && (limit = em_num_parse(optarg, 1, EM_INDEX_MAX_LIMIT)) < 0) {
            fprintf(stderr, "earmark search: --limit must be 1..%u\n", EM_INDEX_MAX_LIMIT);
            return 2;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else if (c != 'n') {
            return em_usage_bad_option("search", usage, c, argv, optind);
        }
    }
    if (!db) return em_usage_required("search", usage, "--db", NULL);
    if (optind >= argc) return em_usage_error("search", usage, "no search words given");
    char words[EM_INDEX_MAX_QUERY + 1];
    size_t n = 0;
    for (int i = optind; i < argc; i++) {
        int k = snprintf(words + n, sizeof words - n, "%s%s", n ? " " : "", argv[i]);
        if (k < 0 || (size_t)k >= sizeof words - n) {
            fprintf(stderr, "earmark search: query longer than %u bytes\n", EM_INDEX_MAX_QUERY);
            return 2;
        }
        n += (size_t)k;
    }
    struct em_errbuf eb = {{0}};
    struct em_index *ix = NULL;
    json_t *res = NULL;
    if (access(db, R_OK) != 0) {
        fprintf(stderr, "earmark search: %s: no such index (make one with earmark index)\n", db);
        return 1;
    }
    double t0 = em_now_s(), c0 = cpu_s();
    em_err rc = em_index_open(db, &ix, &eb);
    if (rc == EM_OK) rc = em_index_search(ix, words, event, (size_t)limit, &res, &eb);
    em_index_close(ix, NULL);
    if (timing) /* open + query + close, without the process start; wall time last */
        fprintf(stderr, "earmark search: %zu items, cpu %.2f ms, in %.2f ms\n",
                json_array_size(res), (cpu_s() - c0) * 1000.0, (em_now_s() - t0) * 1000.0);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark search: %s\n", em_errbuf_msg(&eb, rc));
        return rc == EM_E_ARG || rc == EM_E_TOO_LONG ? 2 : 1;
    }
    if (as_json) {
        char *s = json_dumps(res, JSON_COMPACT);
        if (s) printf("%s\n", s);
        free(s);
    } else {
        size_t i, k;
        json_t *it, *sg;
        json_array_foreach(res, i, it) {
            printf("%2zu. %s  %s  (bm25 %.3f)\n", i + 1, json_string_value(json_object_get(it, "id")),
                   json_string_value(json_object_get(it, "source")),
                   json_real_value(json_object_get(it, "score")));
            if (json_is_string(json_object_get(it, "snippet")))
                printf("      %s\n", json_string_value(json_object_get(it, "snippet")));
            json_array_foreach(json_object_get(it, "segments"), k, sg)
                printf("      [%.2f-%.2f s] %s\n", json_real_value(json_object_get(sg, "start_s")),
                       json_real_value(json_object_get(sg, "end_s")),
                       json_string_value(json_object_get(sg, "snippet")));
        }
        if (json_array_size(res) == 0) printf("no match\n");
    }
    json_decref(res);
    return 0;
}
