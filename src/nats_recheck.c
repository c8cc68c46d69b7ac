/*
 * nats_recheck.c -- is a message still in its stream? (nats_recheck.h)
 *
 * Publishes go out asynchronously and the loop hears only of failures
 * (nats_conn.c): a publish JetStream takes costs nothing more.  That
 * leaves two cases where the sender must know what JetStream did:
 *
 * After the connection was away.  Core NATS is at most once: an answer
 * sent home meanwhile is lost, and the worker node acked the message
 * after sending it, so the stream no longer holds it.  Published again
 * with the same Nats-Msg-Id, such a message is dropped by JetStream's
 * dedupe window (its PubAck says Duplicate, with the stored copy's
 * sequence) and never answered.  So every request still waiting is
 * published again here, synchronously: a new store, or a duplicate whose
 * sequence js_GetMsg still finds, will be answered (HELD); a duplicate
 * whose copy is gone was worked on and its answer lost (GONE): the loop
 * publishes it with a new id, and a second answer that comes anyway is
 * dropped as late.  Gone means acked or deleted: a copy deleted by a
 * drop-oldest sender had its shed outcome sent home and lost too.
 *
 * A blocked sender (overflow block, stream full) holds the source back at
 * its first refused message until that one is stored: it needs to hear a
 * success, one message at a time.
 *
 * Both wait for the server, so they run on a thread of their own per
 * sending end, as drop-oldest does (nats_evict.c).
 */
#include <stdlib.h>

#include "nats.h"
#include "nats_conn.h"
#include "nats_recheck.h"
#include "util.h"

/* How long a check waits before asking a server that did not answer again. */
#define RECHECK_AGAIN_MS 250

struct ask {
	struct ask *next;
	uint64_t key;
	natsMsg *msg;
};

struct recheck {
	struct conn *c;
	const struct nats_chan *ch;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ask *head, *tail;
	int stop;
};

static int
stopping(struct recheck *rc)
{
	pthread_mutex_lock(&rc->mu);
	int stop = rc->stop;
	pthread_mutex_unlock(&rc->mu);
	return stop;
}

/* One check, into it; 0, or -1 when stopped before the server answered. */
static int
check_one(struct recheck *rc, natsMsg *msg, struct qitem *it)
{
	for (;;) {
		jsPubAck *pa = NULL;
		jsErrCode je = 0;
		natsStatus s = js_PublishMsg(&pa, rc->c->js, msg, NULL, &je);
		if (s == NATS_OK) {
			int dup = pa->Duplicate;
			uint64_t seq = pa->Sequence;
			jsPubAck_Destroy(pa);
			it->st = NATS_OK;
			it->errcode = RECHECK_HELD;
			if (!dup)
				return 0;
			natsMsg *got = NULL;
			s = js_GetMsg(&got, rc->c->js, rc->ch->stream, seq, NULL, &je);
			natsMsg_Destroy(got);
			if (s == NATS_OK)
				return 0;
			if (je == JSNoMessageFoundErr || s == NATS_NOT_FOUND) {
				it->errcode = RECHECK_GONE;
				return 0;
			}
		} else if (je != 0) {
			/* refused (a full stream): the loop's usual ways */
			it->st = s;
			it->errcode = (int)je;
			return 0;
		}
		/* no answer (the server away again, a timeout): again */
		if (stopping(rc))
			return -1;
		nats_Sleep(RECHECK_AGAIN_MS);
		if (stopping(rc))
			return -1;
	}
}

static void *
recheck_main(void *arg)
{
	struct recheck *rc = arg;
	for (;;) {
		pthread_mutex_lock(&rc->mu);
		while (rc->head == NULL && !rc->stop)
			pthread_cond_wait(&rc->cv, &rc->mu);
		struct ask *a = rc->stop ? NULL : rc->head;
		if (a != NULL) {
			rc->head = a->next;
			if (rc->head == NULL)
				rc->tail = NULL;
		}
		pthread_mutex_unlock(&rc->mu);
		if (a == NULL)
			break;
		struct qitem *it = xcalloc(1, sizeof *it);
		it->kind = Q_CHECKED;
		it->key = a->key;
		if (check_one(rc, a->msg, it) == 0)
			conn_push(rc->c, it);
		else
			free(it);
		natsMsg_Destroy(a->msg);
		free(a);
	}
	return NULL;
}

struct recheck *
recheck_new(struct conn *c, const struct nats_chan *ch)
{
	struct recheck *rc = xcalloc(1, sizeof *rc);
	rc->c = c;
	rc->ch = ch;
	pthread_mutex_init(&rc->mu, NULL);
	pthread_cond_init(&rc->cv, NULL);
	if (pthread_create(&rc->th, NULL, recheck_main, rc) != 0) {
		pthread_mutex_destroy(&rc->mu);
		pthread_cond_destroy(&rc->cv);
		free(rc);
		return NULL;
	}
	return rc;
}

void
recheck_ask(struct recheck *rc, uint64_t key, natsMsg *msg)
{
	struct ask *a = xcalloc(1, sizeof *a);
	a->key = key;
	a->msg = msg;
	pthread_mutex_lock(&rc->mu);
	if (rc->tail)
		rc->tail->next = a;
	else
		rc->head = a;
	rc->tail = a;
	pthread_cond_signal(&rc->cv);
	pthread_mutex_unlock(&rc->mu);
}

void
recheck_free(struct recheck *rc)
{
	if (rc == NULL)
		return;
	pthread_mutex_lock(&rc->mu);
	rc->stop = 1;
	pthread_cond_signal(&rc->cv);
	pthread_mutex_unlock(&rc->mu);
	pthread_join(rc->th, NULL);
	for (struct ask *a = rc->head, *next; a != NULL; a = next) {
		next = a->next;
		natsMsg_Destroy(a->msg);
		free(a);
	}
	pthread_mutex_destroy(&rc->mu);
	pthread_cond_destroy(&rc->cv);
	free(rc);
}
