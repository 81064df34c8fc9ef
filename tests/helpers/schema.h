/* tests/helpers/schema.h - an annotation record checked against the committed
 * schema/annotation.schema.json by python3 jsonschema (found through th_root()).
 * Test-only code. (tests/unit/test_annotation.c runs its own, stricter Draft 2020-12
 * check with format checking and per-error output.) */
#ifndef EM_TH_SCHEMA_H
#define EM_TH_SCHEMA_H

/* 0 when the JSON file at path validates, non-zero otherwise (invalid, unreadable, or no
 * python3/jsonschema). */
int th_schema_valid(const char *path);
#endif
