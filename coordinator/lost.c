/* coordinator/lost.c - Redis lost its data under a running coordinator (restarted without
 * persistence, flushed): XREADGROUP, XCLAIM and XAUTOCLAIM answer NOGROUP. The consumer
 * group is made again (from the start of whatever stream exists now, so batches submitted
 * since are read), the items held of batches that no longer exist are dropped - those
 * batches are gone and said so once each, loudly - and the coordinator goes on serving new
 * batches without a restart. Workers still running dropped items answer later; their
 * results find no lease and are dropped (lease.c). */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/coord.h"

#define LOST_MAX 256 /* distinct lost batches named per recovery (the rest are counted) */

static int seen(char (*ids)[EM_QUEUE_MAX_BATCH_ID + 1], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0) return 1;
    return 0;
}

int em_coord_recover_nogroup(struct em_coord *c, const struct em_errbuf *eb)
{
    if (!eb || !strstr(eb->msg, "NOGROUP")) return 0;
    struct em_errbuf e2 = {{0}};
    em_err rc = em_queue_ensure_group(c->q, &e2);
    em_error("err=EM_E_REDIS msg=\"Redis lost the work stream or its consumer group (restarted "
             "without persistence, or flushed); group made again\" ok=%d held=%zu",
             rc == EM_OK, c->njobs);
    static char lost[LOST_MAX][EM_QUEUE_MAX_BATCH_ID + 1]; /* poll-loop thread only */
    size_t nlost = 0;
    for (size_t i = 0; i < c->njobs;) {
        struct em_job *j = c->jobs[i];
        struct em_batch_info bi;
        int gone = seen(lost, nlost, j->e.batch);
        if (!gone) {
            em_err g = em_queue_batch_get(c->q, j->e.batch, &bi, &e2);
            if (g == EM_OK) em_batch_info_clear(&bi);
            gone = g == EM_E_NOTFOUND;
            if (gone) {
                atomic_fetch_add(&c->m->batches_lost, 1);
                em_error("batch=%s msg=\"batch lost: Redis no longer has it; its items are "
                         "dropped (resubmit the manifest)\"",
                         j->e.batch);
                if (nlost < LOST_MAX) snprintf(lost[nlost++], sizeof lost[0], "%s", j->e.batch);
            }
        }
        if (!gone) {
            i++;
            continue;
        }
        em_coord_job_drop(c, j); /* the array changed: i now holds another job */
    }
    for (size_t k = 0; k < nlost; k++) em_coord_batch_forget(c, lost[k]);
    return 1;
}
