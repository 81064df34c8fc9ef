/* PLACEHOLDER until the owning module lands: replaced wholesale. */
#include <stdio.h>
#include "common/cmd.h"
int em_cmd_annotate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "earmark annotate: not built yet\n");
    return 1;
}
