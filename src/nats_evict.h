/*
 * nats_evict.h -- overflow drop-oldest over NATS: a sending end's thread
 * that removes the oldest message waiting in a full stream and sends its
 * request's shed outcome home (nats_evict.c says how and its races).
 * Internal to porch run.
 */
#ifndef PORCH_NATS_EVICT_H
#define PORCH_NATS_EVICT_H

#include <stdint.h>

struct conn;
struct nats_chan;
struct evictor;

/* Starts the thread for channel ch's sends on c (both outlive it).  NULL
 * when the thread cannot start. */
struct evictor *evict_new(struct conn *c, const struct nats_chan *ch);

/* From the loop: drop one waiting message to make room for the request
 * key.  The answer is a Q_EVICTED item with that key on c's queue, errcode
 * 1 (one was dropped: publish again) or 0 (none waits, or the server did
 * not answer). */
void evict_ask(struct evictor *ev, uint64_t key);

/* Stops and joins the thread (it may be waiting for the server: up to the
 * JetStream timeout); questions not yet asked are dropped.  NULL: nothing. */
void evict_free(struct evictor *ev);

#endif
