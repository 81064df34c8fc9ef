/* coordinator/route.c - routing by model: a worker announces its model family and the
 * built-in prompts it answers in Hello; a batch may name a model (submit --model, stored as
 * the batch's "want"). An item goes only to a worker that runs that model and answers every
 * prompt of its batch; a batch no connected worker can serve gets a "waiting for a worker
 * with <model>" field in Redis, which `earmark status` shows, until one connects. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "coordinator/coord.h"

#define WAITING_MAX 200 /* bytes of the waiting message */

static const struct {
    const char *name;
    unsigned bit;
} route_tasks[] = {
    {"caption", EM_ROUTE_CAPTION},
    {"transcript", EM_ROUTE_TRANSCRIPT},
    {"events", EM_ROUTE_EVENTS},
};
#define N_ROUTE_TASKS (sizeof route_tasks / sizeof *route_tasks)

static unsigned task_bit(const char *name)
{
    for (size_t i = 0; i < N_ROUTE_TASKS; i++)
        if (name && strcmp(route_tasks[i].name, name) == 0) return route_tasks[i].bit;
    return 0;
}

void em_coord_worker_caps(struct em_worker *w, const Earmark__Hello *h)
{
    snprintf(w->family, sizeof w->family, "%s", h->family ? h->family : "");
    w->tasks = 0;
    for (size_t i = 0; i < h->n_tasks && i < EM_ROUTE_MAX_TASKS; i++)
        w->tasks |= task_bit(h->tasks[i]);
    w->free_text = h->free_text;
    /* no family: a worker without a model (it records signal facts only, whatever the
     * prompts), or one from before routing: sent any batch that names no model */
    w->caps = w->family[0] != 0;
}

void em_coord_batch_needs(struct em_cbatch *b)
{
    b->need_tasks = 0;
    b->need_free = 0;
    for (size_t i = 0; i < b->n_prompts; i++) {
        const Earmark__Prompt *p = b->prompts[i];
        if (p->text && p->text[0])
            b->need_free = 1;
        else
            b->need_tasks |= task_bit(p->name);
    }
}

/* w runs the model named want: its family, its identity, or the identity's name. */
static int runs_model(const struct em_worker *w, const char *want)
{
    if (strcasecmp(w->family, want) == 0 || strcasecmp(w->model, want) == 0) return 1;
    size_t n = strlen(want);
    return strncasecmp(w->model, want, n) == 0 && w->model[n] == '@';
}

int em_coord_can_serve(const struct em_worker *w, const struct em_cbatch *b)
{
    const char *want = b->info.want;
    if (want && *want && !runs_model(w, want)) return 0;
    if (!w->caps) return 1;
    if ((b->need_tasks & w->tasks) != b->need_tasks) return 0;
    return !b->need_free || w->free_text;
}

/* "waiting for a worker with whisper (caption)", or without --model "waiting for a worker
 * that does caption, events" */
static void waiting_msg(const struct em_cbatch *b, char *out, size_t cap)
{
    char need[120] = "";
    size_t o = 0;
    for (size_t i = 0; i < N_ROUTE_TASKS; i++)
        if (b->need_tasks & route_tasks[i].bit)
            o += (size_t)snprintf(need + o, sizeof need - o, "%s%s", o ? ", " : "",
                                  route_tasks[i].name);
    if (b->need_free && o < sizeof need)
        snprintf(need + o, sizeof need - o, "%sfree text", o ? ", " : "");
    const char *want = b->info.want && *b->info.want ? b->info.want : NULL;
    if (want)
        snprintf(out, cap, "waiting for a worker with %s%s%s%s", want, need[0] ? " (" : "", need,
                 need[0] ? ")" : "");
    else
        snprintf(out, cap, "waiting for a worker that does %s", need);
}

void em_coord_route_check(struct em_coord *c)
{
    for (size_t i = 0; i < c->nbatches; i++) c->batches[i]->has_waiting = 0;
    for (size_t i = 0; i < c->njobs; i++)
        if (c->jobs[i]->state == EM_JOB_WAITING) c->jobs[i]->b->has_waiting = 1;
    for (size_t i = 0; i < c->nbatches; i++) {
        struct em_cbatch *b = c->batches[i];
        int served = 0;
        for (size_t k = 0; k < c->nworkers && !served; k++) {
            const struct em_worker *w = c->workers[k];
            served = w->hello && !w->refused && !w->leaving && em_coord_can_serve(w, b);
        }
        /* a plain batch (no model asked, no prompt) waits for any worker: nothing to say */
        int constrained = (b->info.want && *b->info.want) || b->need_tasks || b->need_free;
        int wait = constrained && b->has_waiting && !served;
        if (wait == b->waiting) continue;
        char msg[WAITING_MAX];
        waiting_msg(b, msg, sizeof msg);
        struct em_errbuf eb = {{0}};
        em_err rc = em_queue_batch_waiting(c->q, b->info.id, wait ? msg : NULL, &eb);
        if (rc != EM_OK) {
            em_warn("batch=%s msg=\"cannot record waiting state\" detail=\"%s\"", b->info.id,
                    em_errbuf_msg(&eb, rc));
            continue;
        }
        b->waiting = wait;
        if (wait) em_info("batch=%s msg=\"%s\"", b->info.id, msg);
    }
}
