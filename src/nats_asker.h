/*
 * nats_asker.h -- a thread of a sending end for the calls that wait for the
 * server (request and reply), so that the loop never does.
 *
 * Jobs run one at a time, in the order asked.  Each gets a queue item with
 * its key; the job's function fills it in and returns 0 to have it pushed on
 * the connection's queue (the loop hears of it there), or -1 to drop it
 * (stopped before the server answered).  Used by drop-oldest
 * (nats_evict.c) and by the checks after a reconnect and under block
 * (nats_recheck.c).
 */
#ifndef PORCH_NATS_ASKER_H
#define PORCH_NATS_ASKER_H

#include <stdint.h>

#include <nats/nats.h>

struct conn;
struct qitem;
struct asker;

/* msg: the job's message, or NULL; the asker destroys it after the job. */
typedef int (*asker_job)(void *ctx, natsMsg *msg, struct qitem *it);

/* A thread running fn(ctx, ...) for each job; NULL if it cannot start. */
struct asker *asker_new(struct conn *c, asker_job fn, void *ctx);
/* Queues a job for key, taking msg (may be NULL). */
void asker_ask(struct asker *a, uint64_t key, natsMsg *msg);
/* Whether asker_free has begun: a job that waits should give up. */
int asker_stopping(struct asker *a);
/* Stops the thread after its current job; jobs not begun are dropped. */
void asker_free(struct asker *a);

#endif
