/* common/curve_cmd.c - `earmark keygen -o PREFIX`: a new CURVE key pair in PREFIX.key
 * (secret, mode 0600) and PREFIX.pub (public, Z85). Give the coordinator's .key to
 * `coordinator --curve-secret` and its .pub to every worker's --coordinator-key; give each
 * worker's .key to its --curve-key and put its .pub in the coordinator's --allow-keys. */
#include <stdio.h>
#include <string.h>

#include "common/cmd.h"
#include "common/curve.h"

int em_cmd_keygen(int argc, char **argv)
{
    const char *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: earmark keygen -o PREFIX\n"
                   "  writes PREFIX.key (secret, mode 0600) and PREFIX.pub (public)\n");
            return 0;
        }
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0) && i + 1 < argc) {
            prefix = argv[++i];
            continue;
        }
        fprintf(stderr, "earmark keygen: unknown or incomplete option '%s'\n", argv[i]);
        return 2;
    }
    if (!prefix) {
        fprintf(stderr, "earmark keygen: -o PREFIX is required\n");
        return 2;
    }
    struct em_errbuf eb = {{0}};
    em_err rc = em_curve_keygen(prefix, &eb);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark keygen: %s\n", em_errbuf_msg(&eb, rc));
        return rc == EM_E_ARG ? 2 : 1;
    }
    printf("%s.key\n%s.pub\n", prefix, prefix);
    return 0;
}
