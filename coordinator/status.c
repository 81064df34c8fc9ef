/* PLACEHOLDER until the owning module lands: replaced wholesale. */
#include <stdio.h>
#include "common/cmd.h"
int em_cmd_status(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "earmark status: not built yet\n");
    return 1;
}
