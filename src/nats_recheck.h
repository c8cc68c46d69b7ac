/*
 * nats_recheck.h -- a sending end's thread that publishes a message again
 * and waits for JetStream's answer, to learn whether the stream still
 * holds it (nats_recheck.c says why and how).  Internal to porch run.
 */
#ifndef PORCH_NATS_RECHECK_H
#define PORCH_NATS_RECHECK_H

#include <stdint.h>

#include <nats/nats.h>

struct conn;
struct nats_chan;
struct recheck;

/* What a check found (a Q_CHECKED item: st NATS_OK, errcode one of these;
 * st NATS_ERR: JetStream refused the publish, errcode its error code). */
enum recheck_verdict {
	RECHECK_HELD = 0,  /* stored now, or still in the stream: it will be answered */
	RECHECK_GONE = 1,  /* stored earlier and removed since: worked on, answer lost */
};

/* Starts the thread for channel ch's sends on c (both outlive it).  NULL
 * when the thread cannot start. */
struct recheck *recheck_new(struct conn *c, const struct nats_chan *ch);

/* From the loop: publish msg (owned from now on; its Nats-Msg-Id header
 * set) and answer with a Q_CHECKED item with key on c's queue.  A server
 * that does not answer is asked again until it does. */
void recheck_ask(struct recheck *rc, uint64_t key, natsMsg *msg);

/* Stops and joins the thread (it may be waiting for the server: up to the
 * JetStream timeout); checks not done yet are dropped.  NULL: nothing. */
void recheck_free(struct recheck *rc);

#endif
