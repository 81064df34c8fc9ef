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

/* Whether batch was declared lost already (a ring of the last EM_COORD_LOST_RING). */
static int known_lost(const struct em_coord *c, const char *batch)
{
    for (size_t i = 0; i < EM_COORD_LOST_RING; i++)
        if (strcmp(c->lost[i], batch) == 0) return 1;
    return 0;
}

void em_coord_batch_lost(struct em_coord *c, const char *batch_in)
{
    char batch[EM_QUEUE_MAX_BATCH_ID + 1];
    snprintf(batch, sizeof batch, "%s", batch_in); /* batch_in may live in a job dropped here */
    size_t dropped = 0;
    for (size_t i = 0; i < c->njobs;) {
        if (strcmp(c->jobs[i]->e.batch, batch) != 0) {
            i++;
            continue;
        }
        em_coord_job_drop(c, c->jobs[i]); /* the array changed: i now holds another job */
        dropped++;
    }
    em_coord_batch_forget(c, batch);
    if (known_lost(c, batch)) return;
    snprintf(c->lost[c->nlost++ % EM_COORD_LOST_RING], sizeof c->lost[0], "%s", batch);
    atomic_fetch_add(&c->m->batches_lost, 1);
    em_error("batch=%s msg=\"batch lost: Redis no longer has it (restarted without persistence, "
             "flushed, or deleted); its held items are dropped - resubmit the manifest\" "
             "dropped=%zu",
             batch, dropped);
}

int em_coord_recover_nogroup(struct em_coord *c, const struct em_errbuf *eb)
{
    if (!eb || !strstr(eb->msg, "NOGROUP")) return 0;
    struct em_errbuf e2 = {{0}};
    em_err rc = em_queue_ensure_group(c->q, &e2);
    em_error("err=EM_E_REDIS msg=\"Redis lost the work stream or its consumer group (restarted "
             "without persistence, or flushed); group made again\" ok=%d held=%zu",
             rc == EM_OK, c->njobs);
    for (size_t i = 0; i < c->njobs;) {
        struct em_batch_info bi;
        em_err g = em_queue_batch_get(c->q, c->jobs[i]->e.batch, &bi, &e2);
        if (g == EM_OK) em_batch_info_clear(&bi);
        if (g != EM_E_NOTFOUND) {
            i++;
            continue;
        }
        em_coord_batch_lost(c, c->jobs[i]->e.batch);
        i = 0; /* jobs were dropped: rescan (each lost batch is handled once) */
    }
    /* batches followed for progress but with no item held right now (all of theirs were in
     * the stream, or in flight on workers) are lost as well */
    for (size_t i = 0; i < c->nbatches;) {
        struct em_batch_info bi;
        if (strcmp(c->batches[i]->info.state, "open") != 0) { /* finished before the loss */
            i++;
            continue;
        }
        em_err g = em_queue_batch_get(c->q, c->batches[i]->info.id, &bi, &e2);
        if (g == EM_OK) em_batch_info_clear(&bi);
        if (g != EM_E_NOTFOUND) {
            i++;
            continue;
        }
        em_coord_batch_lost(c, c->batches[i]->info.id); /* forgets it: i now holds another */
    }
    return 1;
}
