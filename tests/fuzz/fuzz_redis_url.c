/* tests/fuzz/fuzz_redis_url.c - libFuzzer target for em_redis_url_parse: any text either
 * parses (host set, port in range, strings terminated) or is refused with EM_E_ARG and a
 * message that never contains the password part of the input. Build: see run.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    struct em_redis_url u;
    struct em_errbuf eb = {{0}};
    em_err rc = em_redis_url_parse(s, &u, &eb);
    if (rc == EM_OK) {
        if (!u.host[0] || u.port < 1 || u.port > 65535 || u.db < 0 || u.db > 1000) abort();
        if (strnlen(u.user, sizeof u.user) == sizeof u.user ||
            strnlen(u.password, sizeof u.password) == sizeof u.password)
            abort();
    } else if (rc != EM_E_ARG || strncmp(eb.msg, "redis url", 9) != 0) {
        abort();
    }
    free(s);
    return 0;
}
