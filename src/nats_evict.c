/*
 * nats_evict.c -- overflow drop-oldest over NATS (nats_evict.h).
 *
 * A stream refused a publish because it is full, and the sending channel's
 * overflow is drop-oldest: the oldest message still WAITING in the stream
 * is removed and its request ends as shed at its origin, then the new
 * message is published (by the loop, once this says so).
 *
 * Which messages wait.  The stream has work-queue retention: it also holds
 * the messages nodes are working on (delivered, not acked yet).  The
 * channel's durable consumer knows the highest stream sequence it has
 * delivered (Delivered.Stream): every message after it waits; the first of
 * them that is still stored is the oldest waiting.  (A message given back
 * with a nak waits too, below that sequence: it is not looked for, so a
 * drop may take a younger one; naks happen only when a node stops.)
 *
 * The origin.  The message may have been sent by another node: its body
 * names its home subject (h) and its key there (i), read with
 * js_GetMsg before it is deleted.  The shed outcome is sent home as
 * any answer is ("K e", outcome shed, error full, and D: dropped), so a
 * request of this node takes the normal path too.
 *
 * Races.  Between the consumer's info and the delete, a node may pull the
 * message: JetStream deletes it all the same (a delete does not ask the
 * consumer), the node works on it, its ack finds nothing, and its answer
 * goes home as the shed outcome does.  Two answers then race home; the
 * origin ends the request with the first and counts the second as late
 * (nats_late_answers), as it does for a redelivered request worked on
 * twice: each request is answered once.  Two senders evicting at once may
 * pick the same message: the second delete fails (not found) and that
 * sender tries the next sequence.  A stream where nothing waits (every
 * message is being worked on) has nothing to drop: the loop tries the
 * publish again later (nats_stage.c), as block does.
 *
 * All of this waits for the server (request and reply), so it runs on a
 * thread of its own per sending end; the loop asks with evict_ask and
 * hears back with a Q_EVICTED item on the connection's queue.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nats_conn.h"
#include "nats_evict.h"
#include "nats_wire.h"
#include "porch/plugin.h"
#include "util.h"

/* At most this many sequences are read looking for one still stored. */
#define EVICT_SCAN 64

struct ev_ask {
	struct ev_ask *next;
	uint64_t key;
};

struct evictor {
	struct conn *c;
	const struct nats_chan *ch;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ev_ask *head, *tail;
	int stop;
};

/* The shed outcome, home to the request's origin. */
static void
send_shed(struct evictor *ev, const char *home, const char *key)
{
	char text[512];
	snprintf(text, sizeof text, "channel %s -> %s is full (its stream %s holds %u "
	    "messages, overflow drop-oldest): the oldest waiting request was dropped",
	    ev->ch->from, ev->ch->to, ev->ch->stream, ev->ch->capacity);
	struct wbuf b = { NULL, 0, 0 };
	wb_str(&b, 'K', "e", 1);
	wb_cstr(&b, 'i', key);
	wb_int(&b, 'd', 0);
	wb_int(&b, 'p', -1);
	wb_int(&b, 'o', PORCH_SHED);
	wb_int(&b, 'e', PORCH_ERR_FULL);
	wb_cstr(&b, 'x', text);
	wb_int(&b, 'D', 1);
	natsConnection_Publish(ev->c->nc, home, b.p, (int)b.len);
	free(b.p);
}

/* Drops the oldest waiting message: 1, or 0 when none waits or the server
 * did not answer. */
static int
evict_one(struct evictor *ev)
{
	jsCtx *js = ev->c->js;
	const struct nats_chan *ch = ev->ch;
	uint64_t delivered = 0, first = 0, last = 0;
	jsConsumerInfo *ci = NULL;
	jsErrCode je = 0;
	natsStatus s = js_GetConsumerInfo(&ci, js, ch->stream, ch->durable, NULL, &je);
	if (s == NATS_OK) {
		delivered = ci->Delivered.Stream;
		jsConsumerInfo_Destroy(ci);
	} else if (je != JSConsumerNotFoundErr) {
		return 0;
	} /* else no node of B has made it yet: nothing was delivered */
	jsStreamInfo *si = NULL;
	if (js_GetStreamInfo(&si, js, ch->stream, NULL, &je) != NATS_OK)
		return 0;
	first = si->State.FirstSeq;
	last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	uint64_t seq = delivered + 1 > first ? delivered + 1 : first;
	for (int n = 0; seq <= last && n < EVICT_SCAN; seq++, n++) {
		natsMsg *m = NULL;
		if (js_GetMsg(&m, js, ch->stream, seq, NULL, &je) != NATS_OK)
			continue; /* deleted (acked, or evicted by another sender) */
		char key[32] = "", home[700] = "";
		const char *p = natsMsg_GetData(m), *end = p + natsMsg_GetDataLength(m);
		struct wfield f;
		while (wr_next(&p, end, &f) == 1) {
			if (f.tag == 'i')
				wf_str(&f, key, sizeof key);
			else if (f.tag == 'h')
				wf_str(&f, home, sizeof home);
		}
		natsMsg_Destroy(m);
		if (js_DeleteMsg(js, ch->stream, seq, NULL, &je) != NATS_OK)
			continue; /* gone between the read and the delete */
		if (*key && *home)
			send_shed(ev, home, key);
		return 1;
	}
	return 0;
}

static void *
evict_main(void *arg)
{
	struct evictor *ev = arg;
	for (;;) {
		pthread_mutex_lock(&ev->mu);
		while (ev->head == NULL && !ev->stop)
			pthread_cond_wait(&ev->cv, &ev->mu);
		struct ev_ask *a = ev->stop ? NULL : ev->head;
		if (a != NULL) {
			ev->head = a->next;
			if (ev->head == NULL)
				ev->tail = NULL;
		}
		pthread_mutex_unlock(&ev->mu);
		if (a == NULL)
			break;
		struct qitem *it = xcalloc(1, sizeof *it);
		it->kind = Q_EVICTED;
		it->key = a->key;
		it->errcode = evict_one(ev);
		free(a);
		conn_push(ev->c, it);
	}
	return NULL;
}

struct evictor *
evict_new(struct conn *c, const struct nats_chan *ch)
{
	struct evictor *ev = xcalloc(1, sizeof *ev);
	ev->c = c;
	ev->ch = ch;
	pthread_mutex_init(&ev->mu, NULL);
	pthread_cond_init(&ev->cv, NULL);
	if (pthread_create(&ev->th, NULL, evict_main, ev) != 0) {
		pthread_mutex_destroy(&ev->mu);
		pthread_cond_destroy(&ev->cv);
		free(ev);
		return NULL;
	}
	return ev;
}

void
evict_ask(struct evictor *ev, uint64_t key)
{
	struct ev_ask *a = xcalloc(1, sizeof *a);
	a->key = key;
	pthread_mutex_lock(&ev->mu);
	if (ev->tail)
		ev->tail->next = a;
	else
		ev->head = a;
	ev->tail = a;
	pthread_cond_signal(&ev->cv);
	pthread_mutex_unlock(&ev->mu);
}

void
evict_free(struct evictor *ev)
{
	if (ev == NULL)
		return;
	pthread_mutex_lock(&ev->mu);
	ev->stop = 1;
	pthread_cond_signal(&ev->cv);
	pthread_mutex_unlock(&ev->mu);
	pthread_join(ev->th, NULL);
	for (struct ev_ask *a = ev->head, *next; a != NULL; a = next) {
		next = a->next;
		free(a);
	}
	pthread_mutex_destroy(&ev->mu);
	pthread_cond_destroy(&ev->cv);
	free(ev);
}
