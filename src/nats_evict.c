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
 * Shards.  A channel with shards="n" has one stream over n subjects
 * (subject.k) and one filtered consumer per shard (B-k on subject.k), each
 * with its own delivered sequence; the stream's limit is over all of them,
 * so the message to drop is the oldest one waiting over every shard: for
 * each shard k, the first stored message on subject.k after B-k's
 * delivered sequence (the JetStream API's message get with next_by_subj;
 * js_DirectGetMsg would need the stream to allow direct gets), and the
 * smallest sequence of those.  A shard whose consumer has nothing pending
 * is not asked.  The races are those above: a message gone before its
 * read or its delete makes that shard look again after it.
 *
 * All of this waits for the server (request and reply), so it runs on a
 * thread of its own per sending end (nats_asker.c); the loop asks with
 * evict_ask and hears back with a Q_EVICTED item on the connection's queue.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nats_asker.h"
#include "nats_conn.h"
#include "nats_evict.h"
#include "nats_wire.h"
#include "porch/plugin.h"
#include "util.h"

/* At most this many sequences are read looking for one still stored. */
#define EVICT_SCAN 64

struct evictor {
	struct conn *c;
	const struct nats_chan *ch;
	struct asker *a;
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

/* Reads the message at seq (its home and key), deletes it, and sends its
 * shed outcome home: 1, or 0 when it is gone (acked, or evicted by another
 * sender) before the read or the delete. */
static int
drop_seq(struct evictor *ev, uint64_t seq)
{
	jsCtx *js = ev->c->js;
	jsErrCode je = 0;
	natsMsg *m = NULL;
	if (js_GetMsg(&m, js, ev->ch->stream, seq, NULL, &je) != NATS_OK)
		return 0;
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
	if (js_DeleteMsg(js, ev->ch->stream, seq, NULL, &je) != NATS_OK)
		return 0;
	if (*key && *home)
		send_shed(ev, home, key);
	return 1;
}

/* The consumer's delivered stream sequence in *delivered and its pending
 * count (messages after it on its subject) in *pending: 0, or -1 when the
 * server did not answer.  A consumer no node has made yet has delivered
 * nothing: 0, and pending is UINT64_MAX (unknown: look). */
static int
consumer_at(struct evictor *ev, const char *durable, uint64_t *delivered,
    uint64_t *pending)
{
	jsConsumerInfo *ci = NULL;
	jsErrCode je = 0;
	natsStatus s = js_GetConsumerInfo(&ci, ev->c->js, ev->ch->stream, durable, NULL, &je);
	if (s == NATS_OK) {
		*delivered = ci->Delivered.Stream;
		*pending = ci->NumPending;
		jsConsumerInfo_Destroy(ci);
		return 0;
	}
	if (je != JSConsumerNotFoundErr)
		return -1;
	*delivered = 0;
	*pending = UINT64_MAX;
	return 0;
}

/* The sequence of the first message stored on subject at or after from, in
 * *seq (0: none): the JetStream API's message get with next_by_subj, whose
 * answer is the message with its sequence.  0, or -1 when the server did
 * not answer or answered something else than "no message found". */
static int
first_on(struct evictor *ev, const char *subject, uint64_t from, uint64_t *seq)
{
	char api[400];
	snprintf(api, sizeof api, "$JS.API.STREAM.MSG.GET.%s", ev->ch->stream);
	json_t *q = json_pack("{sIss}", "seq", (json_int_t)from, "next_by_subj", subject);
	char *body = q != NULL ? json_dumps(q, JSON_COMPACT) : NULL;
	json_decref(q);
	if (body == NULL)
		return -1;
	natsMsg *r = NULL;
	natsStatus s = natsConnection_Request(&r, ev->c->nc, api, body, (int)strlen(body), 5000);
	free(body);
	if (s != NATS_OK)
		return -1;
	json_t *a = json_loadb(natsMsg_GetData(r), (size_t)natsMsg_GetDataLength(r), 0, NULL);
	natsMsg_Destroy(r);
	json_int_t got = 0, code = 0;
	int rc = -1;
	if (a != NULL && json_unpack(a, "{s:{s:I}}", "message", "seq", &got) == 0 && got > 0) {
		*seq = (uint64_t)got;
		rc = 0;
	} else if (a != NULL && json_unpack(a, "{s:{s:I}}", "error", "code", &code) == 0 &&
	    code == 404) {
		*seq = 0;
		rc = 0;
	}
	json_decref(a);
	return rc;
}

/* The sharded channel's eviction (above, Shards): 1 when one was dropped,
 * 0 when none waits or the server did not answer. */
static int
evict_sharded(struct evictor *ev)
{
	const struct nats_chan *ch = ev->ch;
	uint64_t *next = xcalloc(ch->shards, sizeof *next); /* 0: none waits */
	int dropped = 0;
	char durable[300], subject[700];
	for (unsigned k = 0; k < ch->shards; k++) {
		uint64_t delivered, pending;
		snprintf(durable, sizeof durable, "%s-%u", ch->durable, k);
		snprintf(subject, sizeof subject, "%s.%u", ch->subject, k);
		if (consumer_at(ev, durable, &delivered, &pending) != 0)
			goto out;
		if (pending > 0 && first_on(ev, subject, delivered + 1, &next[k]) != 0)
			goto out;
	}
	for (int n = 0; n < EVICT_SCAN; n++) {
		unsigned best = ch->shards;
		for (unsigned k = 0; k < ch->shards; k++)
			if (next[k] != 0 && (best == ch->shards || next[k] < next[best]))
				best = k;
		if (best == ch->shards)
			break;
		if (drop_seq(ev, next[best])) {
			dropped = 1;
			break;
		}
		/* gone since: that shard's next one, after it */
		snprintf(subject, sizeof subject, "%s.%u", ch->subject, best);
		if (first_on(ev, subject, next[best] + 1, &next[best]) != 0)
			break;
	}
out:
	free(next);
	return dropped;
}

/* Drops the oldest waiting message: 1, or 0 when none waits or the server
 * did not answer. */
static int
evict_one(struct evictor *ev)
{
	jsCtx *js = ev->c->js;
	const struct nats_chan *ch = ev->ch;
	if (ch->shards > 0)
		return evict_sharded(ev);
	uint64_t delivered = 0, pending = 0, first = 0, last = 0;
	if (consumer_at(ev, ch->durable, &delivered, &pending) != 0)
		return 0;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	if (js_GetStreamInfo(&si, js, ch->stream, NULL, &je) != NATS_OK)
		return 0;
	first = si->State.FirstSeq;
	last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	uint64_t seq = delivered + 1 > first ? delivered + 1 : first;
	for (int n = 0; seq <= last && n < EVICT_SCAN; seq++, n++)
		if (drop_seq(ev, seq))
			return 1;
	return 0;
}

/* A job of the asker's: one drop, for the message of key it->key. */
static int
evict_job(void *ctx, natsMsg *msg, struct qitem *it)
{
	(void)msg;
	it->kind = Q_EVICTED;
	it->errcode = evict_one(ctx);
	return 0;
}

struct evictor *
evict_new(struct conn *c, const struct nats_chan *ch)
{
	struct evictor *ev = xcalloc(1, sizeof *ev);
	ev->c = c;
	ev->ch = ch;
	if ((ev->a = asker_new(c, evict_job, ev)) == NULL) {
		free(ev);
		return NULL;
	}
	return ev;
}

void
evict_ask(struct evictor *ev, uint64_t key)
{
	asker_ask(ev->a, key, NULL);
}

void
evict_free(struct evictor *ev)
{
	if (ev == NULL)
		return;
	asker_free(ev->a);
	free(ev);
}
