/* tests/unit/test_results_records.c - results/records and results/export: listing through
 * manifest.jsonl and through a directory, unreadable records counted and skipped, the
 * schema check, references from meta.ref and from a --refs manifest, created_at parsing,
 * resolving a batch id without Redis; the export rows' columns and CSV quoting. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results/export.h"
#include "results/records.h"
#include "results/score.h"
#include "storage/storage.h"
#include "tests/helpers/proc.h"

static char dir[512];
static struct em_storage *st;

static int init(void)
{
    struct em_storage_opts o = em_storage_opts_default();
    return th_tmpdir(dir, sizeof dir) != 0 || em_storage_open(&o, &st, NULL) != EM_OK;
}

static int clean(void)
{
    em_storage_close(st);
    th_rmrf(dir);
    return 0;
}

static void put(const char *name, const char *text)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

#define REC(id, src, extra)                                                                     \
    "{\"schema\":\"earmark.annotation/v1\",\"id\":\"" id "\",\"source\":\"" src "\","        \
    "\"status\":\"ok\",\"created_at\":\"2026-01-01T00:00:00.250Z\"" extra "}"

static void lists_by_directory_then_manifest(void)
{
    put("b.json", REC("b", "file:///b.wav", ",\"meta\":{\"ref\":{\"transcript\":\"hi\"}}"));
    put("a.json", REC("a", "file:///a.wav", ""));
    put("junk.json", "{not json");
    put("other.json", "{\"schema\":\"something/v2\",\"id\":\"x\"}");
    put("notes.txt", "ignored");
    char out[600];
    snprintf(out, sizeof out, "file://%s", dir);
    struct em_recs r;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_recs_load(st, out, "test", &r, &eb), EM_OK);
    CU_ASSERT_EQUAL(r.n, 2);
    CU_ASSERT_EQUAL(r.bad, 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r.v[0].rec, "id")), "a"); /* sorted */
    CU_ASSERT_PTR_NULL(r.v[0].ref);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r.v[1].ref, "transcript")), "hi");
    /* --refs: a manifest line's ref replaces the record's, matched by source */
    const char *m = "{\"uri\":\"file:///a.wav\",\"ref\":{\"transcript\":\"x\"}}\nnot json\n"
                    "{\"uri\":\"file:///b.wav\",\"meta\":{\"ref\":{\"caption\":\"c\"}}}\n";
    CU_ASSERT_EQUAL(em_recs_refs_load(&r, (const uint8_t *)m, strlen(m), NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r.v[0].ref, "transcript")), "x");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r.v[1].ref, "caption")), "c");
    em_recs_free(&r);
    /* with manifest.jsonl only its outputs are read, in its order */
    char man[1600];
    snprintf(man, sizeof man,
             "{\"id\":\"b\",\"status\":\"ok\",\"output\":\"%s/b.json\"}\n{\"id\":\"z\",\"status\":\"failed\"}\n"
             "{\"id\":\"m\",\"status\":\"ok\",\"output\":\"%s/missing.json\"}\n", out, out);
    put("manifest.jsonl", man);
    CU_ASSERT_EQUAL_FATAL(em_recs_load(st, out, "test", &r, &eb), EM_OK);
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.bad, 1); /* missing.json */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r.v[0].rec, "id")), "b");
    em_recs_free(&r);
    snprintf(out, sizeof out, "file://%s/nowhere", dir);
    CU_ASSERT_EQUAL(em_recs_load(st, out, "test", &r, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "manifest.jsonl"));
}

static void parse_and_fields(void)
{
    json_t *o = NULL;
    struct em_errbuf eb = {{0}};
    const char *bad[] = {"[]", "{\"schema\":\"earmark.annotation/v1\"}",
                         "{\"schema\":\"earmark.annotation/v1\",\"id\":\"a\",\"source\":\"s\",\"status\":\"maybe\"}"};
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(em_recs_parse((const uint8_t *)bad[i], strlen(bad[i]), &o, &eb), EM_E_FORMAT);
        CU_ASSERT_PTR_NULL(o);
    }
    const char *good = REC("a", "s", ",\"audio\":{\"duration_s\":2.5}");
    CU_ASSERT_EQUAL_FATAL(em_recs_parse((const uint8_t *)good, strlen(good), &o, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_rec_created_ms(o), 1767225600250LL);
    CU_ASSERT_DOUBLE_EQUAL(em_rec_num(o, "audio", "duration_s"), 2.5, 0);
    CU_ASSERT_TRUE(isnan(em_rec_num(o, "timings", "total_s")));
    CU_ASSERT_PTR_NULL(em_rec_str(o, "error", "class"));
    json_object_set_new(o, "created_at", json_string("2026-01-01 00:00:00"));
    CU_ASSERT_EQUAL(em_rec_created_ms(o), -1);
    json_decref(o);
    char *out = NULL;
    CU_ASSERT_EQUAL(em_recs_resolve("b-1234", NULL, &out, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--redis"));
    CU_ASSERT_EQUAL_FATAL(em_recs_resolve("s3://bucket/out", NULL, &out, &eb), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, "s3://bucket/out");
    free(out);
}

static void export_rows(void)
{
    json_t *rec = json_loads(
        "{\"id\":\"a\",\"batch_id\":\"b\",\"source\":\"s\",\"status\":\"ok\",\"worker\":\"w\","
        "\"audio\":{\"duration_s\":4,\"sample_rate\":16000,\"channels\":2},"
        "\"timings\":{\"total_s\":2},\"caption\":\"a \\\"loud\\\", dog\",\"transcript\":null,"
        "\"events\":[\"dog\",{\"label\":\"rain\"}],\"answers\":{\"caption\":\"c\",\"x\":{\"k\":1}},"
        "\"segments\":[{\"start_s\":0,\"end_s\":30,\"answers\":{\"events\":\"dog, rain ,\",\"transcript\":\"t\"}}]}",
        0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    json_t *row = em_export_item_row(rec);
    const char *const *cols = em_export_columns(0);
    size_t n = 0, i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(row, k, v) CU_ASSERT_STRING_EQUAL(k, cols[n++]); /* order */
    while (cols[i]) i++;
    CU_ASSERT_EQUAL(n, i);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(row, "rtf")), 0.5, 0);
    CU_ASSERT_TRUE(json_is_integer(json_object_get(row, "sample_rate")));
    CU_ASSERT_TRUE(json_is_real(json_object_get(row, "duration_s")));
    CU_ASSERT_EQUAL(json_array_size(json_object_get(row, "events")), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(json_object_get(row, "answers"), 1), "text")), "{\"k\":1}");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(em_export_write(f, row, 0, 1), 0);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",\"a \"\"loud\"\", dog\","));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",dog; rain,"));
    CU_ASSERT_EQUAL(strcmp(buf + strlen(buf) - 2, "\r\n"), 0);
    free(buf);
    json_decref(row);
    row = em_export_segment_row(rec, 0);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(row, "events")), 2); /* "dog, rain ," */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(row, "transcript")), "t");
    CU_ASSERT_TRUE(json_is_null(json_object_get(row, "caption")));
    json_decref(row);
    json_decref(rec);
}

/* Whisper writes "transcript" as {text, language, segments}; Qwen2-Audio as a string: both
 * are read as text, and scored alike. */
static void transcript_string_or_object(void)
{
    json_t *q = json_pack("{s:s, s:s}", "status", "ok", "transcript", "It is twelve degrees.");
    json_t *w = json_pack("{s:s, s:{s:s, s:s, s:[]}}", "status", "ok", "transcript", "text",
                          " It is 12 degrees.", "language", "en", "segments");
    json_t *n = json_pack("{s:s, s:{s:s}}", "status", "ok", "transcript", "language", "en");
    CU_ASSERT_STRING_EQUAL(json_string_value(em_rec_transcript(q)), "It is twelve degrees.");
    CU_ASSERT_STRING_EQUAL(json_string_value(em_rec_transcript(w)), " It is 12 degrees.");
    CU_ASSERT_PTR_NULL(em_rec_transcript(n));
    CU_ASSERT_PTR_NULL(em_rec_transcript(NULL));
    json_t *ref = json_pack("{s:s}", "transcript", "it is twelve degrees");
    struct em_score_item a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CU_ASSERT_EQUAL(em_score_item(q, ref, NULL, &a, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_score_item(w, ref, NULL, &b, NULL), EM_OK);
    CU_ASSERT_TRUE(b.has_tr);
    CU_ASSERT_EQUAL(b.w_ref, 4);
    CU_ASSERT_EQUAL(b.w_err, a.w_err); /* "12" reads as "twelve" */
    CU_ASSERT_EQUAL(b.w_err, 0);
    json_decref(q);
    json_decref(w);
    json_decref(n);
    json_decref(ref);
}

static CU_TestInfo tests[] = {
    {"lists_by_directory_then_manifest", lists_by_directory_then_manifest},
    {"parse_and_fields", parse_and_fields},
    {"export_rows", export_rows},
    {"transcript_string_or_object", transcript_string_or_object},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_records = {"results_records", init, clean, NULL, NULL, tests};
