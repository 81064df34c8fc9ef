/* tests/helpers/schema.c - see schema.h. */
#include "tests/helpers/schema.h"

#include "tests/helpers/proc.h"

int th_schema_valid(const char *path)
{
    return th_sh("python3 -c 'import json,sys,jsonschema; "
                 "jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))' "
                 "'%s/schema/annotation.schema.json' '%s'",
                 th_root(), path);
}
