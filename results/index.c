/* results/index.c - the SQLite index (index.h) and `earmark index OUT_URI --db FILE`. */
#include "results/index.h"
#include "results/index_impl.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/usage.h"
#include "coordinator/cli.h"
#include "results/cli.h"
#include "results/records.h"
#include "results/evtags.h"
#include "storage/storage.h"

static const char schema_sql[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS items(rid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, uri TEXT,"
    " batch_id TEXT, source TEXT, status TEXT, producer_hash TEXT, created_at TEXT,"
    " duration_s REAL, caption TEXT, transcript TEXT, events TEXT, answers TEXT);"
    "CREATE TABLE IF NOT EXISTS segments(rid INTEGER NOT NULL, seg INTEGER NOT NULL,"
    " start_s REAL, end_s REAL, caption TEXT, transcript TEXT, events TEXT, answers TEXT,"
    " PRIMARY KEY(rid, seg));"
    "CREATE TABLE IF NOT EXISTS item_tags(rid INTEGER NOT NULL, tag TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS item_tags_tag ON item_tags(tag, rid);"
    "CREATE INDEX IF NOT EXISTS item_tags_rid ON item_tags(rid);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(caption, transcript, events, answers,"
    " tokenize='porter unicode61');";

static const char *const stmt_sql[EM_IX_NSTMT] = {
    [EM_IX_GET] = "SELECT rid, producer_hash, created_at FROM items WHERE id = ?1",
    [EM_IX_DEL_FTS] = "DELETE FROM fts WHERE rowid BETWEEN ?1 AND ?2",
    [EM_IX_DEL_SEG] = "DELETE FROM segments WHERE rid = ?1",
    [EM_IX_DEL_TAG] = "DELETE FROM item_tags WHERE rid = ?1",
    [EM_IX_UPSERT] = "INSERT INTO items(id, uri, batch_id, source, status, producer_hash, created_at,"
                 " duration_s, caption, transcript, events, answers)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                 " ON CONFLICT(id) DO UPDATE SET uri = ?2, batch_id = ?3, source = ?4,"
                 " status = ?5, producer_hash = ?6, created_at = ?7, duration_s = ?8,"
                 " caption = ?9, transcript = ?10, events = ?11, answers = ?12"
                 " RETURNING rid",
    [EM_IX_SEG] = "INSERT INTO segments VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [EM_IX_TAG] = "INSERT INTO item_tags VALUES(?1, ?2)",
    [EM_IX_FTS] = "INSERT INTO fts(rowid, caption, transcript, events, answers) VALUES(?1, ?2, ?3, ?4, ?5)",
};

static em_err sql_err(struct em_index *ix, struct em_errbuf *eb, const char *what)
{
    return em_errf(eb, EM_E_IO, "sqlite: %s: %s", what, sqlite3_errmsg(ix->db));
}

em_err em_index_open(const char *path, struct em_index **out, struct em_errbuf *eb)
{
    *out = NULL;
    struct em_index *ix = calloc(1, sizeof *ix);
    if (!ix) return em_errf(eb, EM_E_NOMEM, "out of memory");
    em_err rc = EM_OK;
    if (sqlite3_open_v2(path, &ix->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        rc = em_errf(eb, EM_E_IO, "%s: cannot open: %s", path,
                     ix->db ? sqlite3_errmsg(ix->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(ix->db, 5000);
    if (sqlite3_exec(ix->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc = em_errf(eb, EM_E_IO, "%s: not an earmark index (%s)", path, sqlite3_errmsg(ix->db));
        goto fail;
    }
    for (int i = 0; i < EM_IX_NSTMT; i++)
        if (sqlite3_prepare_v3(ix->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ix->st[i], NULL) != SQLITE_OK) {
            rc = em_errf(eb, EM_E_IO, "%s: not an earmark index (%s)", path, sqlite3_errmsg(ix->db));
            goto fail;
        }
    *out = ix;
    return EM_OK;
fail:
    em_index_close(ix, NULL);
    return rc;
}

em_err em_index_close(struct em_index *ix, struct em_errbuf *eb)
{
    if (!ix) return EM_OK;
    em_err rc = EM_OK;
    if (ix->pending && sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = sql_err(ix, eb, "commit");
    for (int i = 0; i < EM_IX_NSTMT; i++) sqlite3_finalize(ix->st[i]);
    sqlite3_close(ix->db);
    free(ix);
    return rc;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* Tags of an events array (strings or {label}) joined by ", " (malloc'd). */
static char *join_events(const json_t *ev)
{
    size_t cap = 1, i;
    json_t *e;
    json_array_foreach(ev, i, e) {
        const char *s = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "label"));
        if (s) cap += strlen(s) + 2;
    }
    char *out = calloc(1, cap), *p = out;
    if (!out) return NULL;
    json_array_foreach(ev, i, e) {
        const char *s = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "label"));
        if (!s) continue;
        p += snprintf(p, cap - (size_t)(p - out), "%s%s", p == out ? "" : ", ", s);
    }
    return out;
}

/* Free-form answers (every prompt but the built-in three) as "name: text" lines. */
static char *join_free(const json_t *ans)
{
    size_t cap = 1;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ans, k, v)
        if (json_is_string(v)) cap += strlen(k) + strlen(json_string_value(v)) + 3;
    char *out = calloc(1, cap), *p = out;
    if (!out) return NULL;
    json_object_foreach((json_t *)ans, k, v) {
        if (!json_is_string(v) || strcmp(k, "caption") == 0 || strcmp(k, "transcript") == 0 ||
            strcmp(k, "events") == 0)
            continue;
        p += snprintf(p, cap - (size_t)(p - out), "%s: %s\n", k, json_string_value(v));
    }
    return out;
}

static int step_done(sqlite3_stmt *s)
{
    int r = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : -1;
}

static int fts_row(struct em_index *ix, sqlite3_int64 rowid, const char *cap, const char *tr,
                   const char *ev, const char *fr)
{
    sqlite3_stmt *s = ix->st[EM_IX_FTS];
    sqlite3_bind_int64(s, 1, rowid);
    bind_text(s, 2, cap);
    bind_text(s, 3, tr);
    bind_text(s, 4, ev);
    bind_text(s, 5, fr);
    return step_done(s);
}

/* Segments of rec into segments and fts, for item rid. */
static int add_segments(struct em_index *ix, sqlite3_int64 rid, const json_t *rec)
{
    const json_t *segs = json_object_get(rec, "segments");
    if (json_array_size(segs) + 1 >= EM_INDEX_SEG_SPAN)
        ix->segs_skipped += json_array_size(segs) + 2 - EM_INDEX_SEG_SPAN;
    for (size_t i = 0; i < json_array_size(segs) && i + 2 < EM_INDEX_SEG_SPAN; i++) {
        const json_t *sg = json_array_get(segs, i), *a = json_object_get(sg, "answers");
        const char *cap = json_string_value(json_object_get(a, "caption"));
        const char *tr = json_string_value(json_object_get(a, "transcript"));
        const char *ev = json_string_value(json_object_get(a, "events"));
        char *fr = join_free(a);
        sqlite3_stmt *s = ix->st[EM_IX_SEG];
        sqlite3_bind_int64(s, 1, rid);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        sqlite3_bind_double(s, 3, json_number_value(json_object_get(sg, "start_s")));
        sqlite3_bind_double(s, 4, json_number_value(json_object_get(sg, "end_s")));
        bind_text(s, 5, cap);
        bind_text(s, 6, tr);
        bind_text(s, 7, ev);
        bind_text(s, 8, fr);
        int bad = !fr || step_done(s) != 0 ||
                  fts_row(ix, rid * EM_INDEX_SEG_SPAN + 1 + (sqlite3_int64)i, cap, tr, ev, fr) != 0;
        free(fr);
        if (bad) return -1;
    }
    return 0;
}

static int add_tags(struct em_index *ix, sqlite3_int64 rid, const json_t *ev)
{
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e) {
        const char *s = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "label"));
        if (!s) continue;
        char tag[EM_EVTAG_MAX_TAG + 1];
        em_evtag_norm(NULL, s, tag, sizeof tag);
        if (!tag[0]) continue;
        sqlite3_bind_int64(ix->st[EM_IX_TAG], 1, rid);
        bind_text(ix->st[EM_IX_TAG], 2, tag);
        if (step_done(ix->st[EM_IX_TAG]) != 0) return -1;
    }
    return 0;
}

/* 1 if the stored row of id has the same producer hash and created_at; *rid its rid. */
static int unchanged(struct em_index *ix, const char *id, const char *hash, const char *created,
                     sqlite3_int64 *rid)
{
    sqlite3_stmt *s = ix->st[EM_IX_GET];
    bind_text(s, 1, id);
    int same = 0;
    *rid = -1;
    if (sqlite3_step(s) == SQLITE_ROW) {
        *rid = sqlite3_column_int64(s, 0);
        const char *h = (const char *)sqlite3_column_text(s, 1);
        const char *c = (const char *)sqlite3_column_text(s, 2);
        same = strcmp(h ? h : "", hash ? hash : "") == 0 && strcmp(c ? c : "", created ? created : "") == 0;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return same;
}

/* Commits after every EM_INDEX_COMMIT_EVERY records, so a crash loses little. */
static em_err maybe_commit(struct em_index *ix, struct em_errbuf *eb)
{
    if (ix->pending < EM_INDEX_COMMIT_EVERY) return EM_OK;
    ix->pending = 0;
    return sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? EM_OK
                                                                        : sql_err(ix, eb, "commit");
}

em_err em_index_add(struct em_index *ix, const json_t *rec, const char *uri,
                    enum em_index_change *what, struct em_errbuf *eb)
{
    *what = EM_INDEX_UNCHANGED;
    const char *id = json_string_value(json_object_get(rec, "id"));
    if (!id) return em_errf(eb, EM_E_FORMAT, "%s: record without an id", uri);
    const char *hash = json_string_value(json_object_get(json_object_get(rec, "producer"), "hash"));
    const char *created = json_string_value(json_object_get(rec, "created_at"));
    if (ix->pending == 0 && sqlite3_exec(ix->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return sql_err(ix, eb, "begin");
    ix->pending++;
    sqlite3_int64 rid;
    if (unchanged(ix, id, hash, created, &rid)) return maybe_commit(ix, eb);
    if (rid >= 0) {
        sqlite3_bind_int64(ix->st[EM_IX_DEL_FTS], 1, rid * EM_INDEX_SEG_SPAN);
        sqlite3_bind_int64(ix->st[EM_IX_DEL_FTS], 2, rid * EM_INDEX_SEG_SPAN + EM_INDEX_SEG_SPAN - 1);
        sqlite3_bind_int64(ix->st[EM_IX_DEL_SEG], 1, rid);
        sqlite3_bind_int64(ix->st[EM_IX_DEL_TAG], 1, rid);
        if (step_done(ix->st[EM_IX_DEL_FTS]) || step_done(ix->st[EM_IX_DEL_SEG]) || step_done(ix->st[EM_IX_DEL_TAG]))
            return sql_err(ix, eb, "delete");
    }
    const json_t *ev = json_object_get(rec, "events"), *ans = json_object_get(rec, "answers");
    char *evs = join_events(ev), *fr = join_free(ans);
    char *ev_json = json_dumps(ev ? ev : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    char *ans_json = json_dumps(ans ? ans : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    const char *cap = json_string_value(json_object_get(rec, "caption"));
    const char *tr = json_string_value(em_rec_transcript(rec));
    sqlite3_stmt *s = ix->st[EM_IX_UPSERT];
    bind_text(s, 1, id);
    bind_text(s, 2, uri);
    bind_text(s, 3, json_string_value(json_object_get(rec, "batch_id")));
    bind_text(s, 4, json_string_value(json_object_get(rec, "source")));
    bind_text(s, 5, json_string_value(json_object_get(rec, "status")));
    bind_text(s, 6, hash);
    bind_text(s, 7, created);
    const json_t *dur = json_object_get(json_object_get(rec, "audio"), "duration_s");
    if (json_is_number(dur))
        sqlite3_bind_double(s, 8, json_number_value(dur));
    else
        sqlite3_bind_null(s, 8);
    bind_text(s, 9, cap);
    bind_text(s, 10, tr);
    bind_text(s, 11, ev_json);
    bind_text(s, 12, ans_json);
    em_err rc = EM_OK;
    if (!evs || !fr || !ev_json || !ans_json) {
        sqlite3_reset(s);
        rc = em_errf(eb, EM_E_NOMEM, "out of memory");
    } else if (sqlite3_step(s) != SQLITE_ROW) {
        rc = sql_err(ix, eb, "insert item");
        sqlite3_reset(s);
    } else {
        sqlite3_int64 nrid = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (fts_row(ix, nrid * EM_INDEX_SEG_SPAN, cap, tr, evs, fr) != 0 ||
            add_segments(ix, nrid, rec) != 0 || add_tags(ix, nrid, ev) != 0)
            rc = sql_err(ix, eb, "insert");
    }
    sqlite3_clear_bindings(s);
    free(evs);
    free(fr);
    free(ev_json);
    free(ans_json);
    if (rc == EM_OK) *what = rid >= 0 ? EM_INDEX_UPDATED : EM_INDEX_ADDED;
    return rc == EM_OK ? maybe_commit(ix, eb) : rc;
}

em_err em_index_optimize(struct em_index *ix, struct em_errbuf *eb)
{
    if (ix->pending && sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return sql_err(ix, eb, "commit");
    ix->pending = 0;
    if (sqlite3_exec(ix->db, "INSERT INTO fts(fts) VALUES('optimize')", NULL, NULL, NULL) != SQLITE_OK)
        return sql_err(ix, eb, "optimize");
    return EM_OK;
}

/* ---- the command ---- */

struct run {
    struct em_index *ix;
    size_t added, updated, unchanged, segs_skipped;
    struct em_errbuf eb;
    em_err rc;
};

static int one(void *ud, const char *uri, const uint8_t *data, size_t len, json_t *rec)
{
    (void)data;
    (void)len;
    struct run *r = ud;
    enum em_index_change what;
    r->rc = em_index_add(r->ix, rec, uri, &what, &r->eb);
    if (r->rc != EM_OK) return 1;
    r->added += what == EM_INDEX_ADDED;
    r->updated += what == EM_INDEX_UPDATED;
    r->unchanged += what == EM_INDEX_UNCHANGED;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark index BATCH|OUT_URI --db FILE [--redis URL] [--redis-ca FILE]\n");
}

int em_cmd_index(int argc, char **argv)
{
    static const struct option lo[] = {
        {"db", required_argument, 0, 'd'}, {"redis", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},     {"redis-ca", required_argument, 0, 'C'},
        {0, 0, 0, 0},
    };
    const char *db = NULL, *redis = NULL;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        if (c == 'd') db = optarg;
        else if (c == 'r') redis = em_cli_redis_arg(optarg);
        else if (c == 'C' && em_cli_redis_ca(optarg) == 0) continue;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            return em_usage_bad_option("index", usage, c, argv, optind);
        }
    }
    if (!db) return em_usage_required("index", usage, "--db", NULL);
    if (optind != argc - 1)
        return em_usage_error("index", usage, "expected one BATCH|OUT_URI, got %d arguments", argc - optind);
    struct em_errbuf eb = {{0}};
    struct run r = {0};
    char *out = NULL;
    struct em_storage *st = NULL;
    size_t bad = 0;
    double t0 = em_now_s();
    em_err rc = em_rcli_open(argv[optind], redis, &out, &st, &eb);
    if (rc == EM_OK) rc = em_index_open(db, &r.ix, &eb);
    if (rc == EM_OK) rc = em_recs_each(st, out, "index", one, &r, &bad, &eb);
    if (rc == EM_E_CANCELLED) {
        rc = r.rc;
        eb = r.eb;
    }
    double t1 = em_now_s();
    if (rc == EM_OK) rc = em_index_optimize(r.ix, &eb);
    double opt_s = em_now_s() - t1;
    r.segs_skipped = r.ix ? r.ix->segs_skipped : 0;
    em_err crc = em_index_close(r.ix, rc == EM_OK ? &eb : NULL);
    if (rc == EM_OK) rc = crc;
    em_storage_close(st);
    free(out);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark index: %s\n", em_errbuf_msg(&eb, rc));
        return 1;
    }
    printf("indexed %s into %s: %zu added, %zu updated, %zu unchanged, %zu unreadable (%.1f s,"
           " %.1f s of it merging the full-text index)\n",
           argv[optind], db, r.added, r.updated, r.unchanged, bad, em_now_s() - t0, opt_s);
    if (r.segs_skipped)
        printf("  %zu segments not indexed (more than %d in one record)\n", r.segs_skipped,
               EM_INDEX_SEG_SPAN - 2);
    return 0;
}
