/* PLACEHOLDER until the owning module lands: replaced wholesale. */
#include <stdio.h>
#include "common/cmd.h"
int em_cmd_coordinator(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "earmark coordinator: not built yet\n");
    return 1;
}
