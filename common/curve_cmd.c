/* common/curve_cmd.c - `earmark keygen -o PREFIX`: a new CURVE key pair in PREFIX.key
 * (secret, mode 0600) and PREFIX.pub (public, Z85). Give the coordinator's .key to
 * `coordinator --curve-secret` and its .pub to every worker's --coordinator-key; give each
 * worker's .key to its --curve-key and put its .pub in the coordinator's --allow-keys. */
#include <stdio.h>
#include <string.h>

#include "common/cmd.h"
#include "common/usage.h"
#include "common/curve.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark keygen -o|--out PREFIX\n"
               "  writes PREFIX.key (secret, mode 0600) and PREFIX.pub (public)\n");
}

int em_cmd_keygen(int argc, char **argv)
{
    const char *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0) && i + 1 < argc) {
            prefix = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0)
            return em_usage_error("keygen", usage, "option '%s' needs a value", argv[i]);
        return em_usage_error("keygen", usage, "unknown option or argument '%.80s'", argv[i]);
    }
    if (!prefix) return em_usage_required("keygen", usage, "-o PREFIX", NULL);
    struct em_errbuf eb = {{0}};
    em_err rc = em_curve_keygen(prefix, &eb);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark keygen: %s\n", em_errbuf_msg(&eb, rc));
        return rc == EM_E_ARG ? 2 : 1;
    }
    printf("%s.key\n%s.pub\n", prefix, prefix);
    return 0;
}
