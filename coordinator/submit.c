/* PLACEHOLDER until the owning module lands: replaced wholesale. */
#include <stdio.h>
#include "common/cmd.h"
int em_cmd_submit(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "earmark submit: not built yet\n");
    return 1;
}
