/*
 * nats_conn.c -- a graph's connection to NATS: connecting, the queue from
 * libnats's threads to the loop, and the streams (nats.h says why threads
 * and a queue rather than an event loop adapter).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "log.h"
#include "nats.h"
#include "nats_conn.h"
#include "util.h"

/* Seconds JetStream keeps a message id to drop a publish of it again: a
 * sender retries a publish for as long as its server is away, with the
 * same id, so a retry that crosses a stored first copy is not stored. */
#define DEDUPE_WINDOW_S 120

static void
on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop; (void)revents;
	struct conn *c = w->data;
	pthread_mutex_lock(&c->lock);
	struct qitem *it = c->head;
	c->head = c->tail = NULL;
	pthread_mutex_unlock(&c->lock);
	while (it != NULL) {
		struct qitem *next = it->next;
		nats_item(c, it);
		if (it->msg != NULL)
			natsMsg_Destroy(it->msg);
		free(it);
		it = next;
	}
}

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	nats_tick(w->data);
}

void
conn_push_list(struct conn *c, struct qitem *first, struct qitem *last)
{
	last->next = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->lock);
		while (first != NULL) {
			struct qitem *next = first->next;
			natsMsg_Destroy(first->msg);
			free(first);
			first = next;
		}
		return;
	}
	if (c->tail)
		c->tail->next = first;
	else
		c->head = first;
	c->tail = last;
	pthread_mutex_unlock(&c->lock);
	ev_async_send(c->g->loop, &c->wake);
}

void
conn_push(struct conn *c, struct qitem *it)
{
	conn_push_list(c, it, it);
}

/* libnats's threads: a message on our home subject, or an ack. */
static void
on_home(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc; (void)sub;
	struct qitem *it = xcalloc(1, sizeof *it);
	it->kind = Q_HOME;
	it->msg = msg;
	conn_push(closure, it);
}

static void
on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc; (void)sub;
	struct qitem *it = xcalloc(1, sizeof *it);
	it->kind = Q_ACK;
	it->msg = msg;
	conn_push(closure, it);
}

/*
 * JetStream refused a publish, or did not answer it within its MaxWait.
 * Only failures come here (libnats frees the message): a publish it took
 * costs the loop nothing more, which is most of them.
 */
static void
on_puberr(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	(void)js;
	/* the request is in the message id: INSTANCE-KEY-ATTEMPT */
	const char *id = NULL;
	if (natsMsgHeader_Get(pae->Msg, "Nats-Msg-Id", &id) != NATS_OK || id == NULL)
		return;
	const char *dash = strrchr(id, '-'), *key = dash;
	while (key != NULL && key > id && key[-1] != '-')
		key--;
	if (dash == NULL || key == NULL || key == id)
		return;
	struct qitem *it = xcalloc(1, sizeof *it);
	it->kind = Q_PUBACK;
	it->key = strtoull(key, NULL, 10);
	it->st = pae->Err != NATS_OK ? pae->Err : NATS_ERR;
	it->errcode = (int)pae->ErrCode;
	conn_push(closure, it);
}

static void
on_reconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct qitem *it = xcalloc(1, sizeof *it);
	it->kind = Q_RECONNECTED;
	conn_push(closure, it);
}

static natsStatus
connect_to(const char *url, const char *name, int timeout_ms, int reconnect,
    natsConnection **nc, void *closure)
{
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, url);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, timeout_ms);
	if (s == NATS_OK && reconnect) {
		/* a server that goes away is waited for, forever: what was
		 * published meanwhile waits in the reconnect buffer, and what
		 * it loses is published again (nats_stage.c) */
		s = natsOptions_SetMaxReconnect(o, -1);
		if (s == NATS_OK)
			s = natsOptions_SetReconnectWait(o, 250);
		if (s == NATS_OK)
			s = natsOptions_SetReconnectBufSize(o, 64 * 1024 * 1024);
		if (s == NATS_OK)
			s = natsOptions_SetPingInterval(o, 2000);
		if (s == NATS_OK)
			s = natsOptions_SetMaxPingsOut(o, 2);
		if (s == NATS_OK)
			s = natsOptions_SetReconnectedCB(o, on_reconnected, closure);
		/* one thread delivers answers, acks and publish acks alike (the
		 * library's pool), not one per subscription: fewer hand-overs */
		if (s == NATS_OK)
			s = natsOptions_UseGlobalMessageDelivery(o, true);
	} else if (s == NATS_OK) {
		s = natsOptions_SetAllowReconnect(o, false);
	}
	if (s == NATS_OK)
		s = natsConnection_Connect(nc, o);
	natsOptions_Destroy(o);
	return s;
}

int
nats_probe(const char *url, int timeout_ms, char *err, size_t errlen)
{
	natsConnection *nc = NULL;
	natsStatus s = connect_to(url, "porch-probe", timeout_ms, 0, &nc, NULL);
	if (s != NATS_OK) {
		snprintf(err, errlen, "cannot reach the NATS server at %s: %s", url,
		    natsStatus_GetText(s));
		return -1;
	}
	jsCtx *js = NULL;
	jsAccountInfo *ai = NULL;
	jsErrCode je = 0;
	s = natsConnection_JetStream(&js, nc, NULL);
	/* a server that does not answer in time (starting, or overloaded) is
	 * asked again, as at stream creation; no responders is a server
	 * without JetStream, told at once */
	for (int64_t waited = 0; s == NATS_OK; waited += INIT_RETRY_MS) {
		s = js_GetAccountInfo(&ai, js, NULL, &je);
		if (s != NATS_TIMEOUT || !conn_init_retry(s, waited))
			break;
	}
	if (s != NATS_OK)
		snprintf(err, errlen, "the NATS server at %s has no JetStream (start it with "
		    "nats-server -js): %s", url, natsStatus_GetText(s));
	jsAccountInfo_Destroy(ai);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return s == NATS_OK ? 0 : -1;
}

struct conn *
conn_get(struct node_state *ns, struct graph *g, const char *url, const char *node,
    char *err, size_t errlen)
{
	pthread_mutex_t *lk = ns->conns_lock;
	pthread_mutex_lock(lk);
	for (struct conn *c = ns->conns; c != NULL; c = c->next)
		if (c->g == g) {
			c->refs++;
			pthread_mutex_unlock(lk);
			return c;
		}
	static const char hex[] = "0123456789abcdef";
	struct conn *c = xcalloc(1, sizeof *c);
	c->g = g;
	c->ns = ns;
	c->refs = 1;
	pthread_mutex_init(&c->lock, NULL);
	/* unique across nodes, restarts and the graphs of one process: an
	 * answer for a request of a process that is gone finds no one */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t r = (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)(uintptr_t)c ^
	    ((uint64_t)getpid() << 32);
	char rnd[9];
	for (int i = 0; i < 8; i++)
		rnd[i] = hex[(r >> (4 * i)) & 15];
	rnd[8] = '\0';
	/* N: the graphs of one process (shards, reloads) never share an
	 * answers subject, whatever the random part gives */
	static atomic_uint graphs;
	snprintf(c->instance, sizeof c->instance, "%s-%d-%u-%s", node != NULL ? node : "all",
	    (int)getpid(), atomic_fetch_add(&graphs, 1), rnd);
	const char *prefix = ns->chans[0]->home_prefix;
	snprintf(c->home, sizeof c->home, "%s.%s", prefix, c->instance);
	snprintf(c->ackpfx, sizeof c->ackpfx, "%s.ack.%s", prefix, c->instance);
	c->pend_mask = 4095;
	c->pend = xcalloc(c->pend_mask + 1, sizeof *c->pend);
	natsStatus s = connect_to(url, c->instance, 5000, 1, &c->nc, c);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	jo.PublishAsync.ErrHandler = on_puberr;
	jo.PublishAsync.ErrHandlerClosure = c;
	jo.PublishAsync.MaxPending = 1 << 20;
	if (s == NATS_OK)
		s = natsConnection_JetStream(&c->js, c->nc, &jo);
	char sub[800];
	snprintf(sub, sizeof sub, "%s.*", c->ackpfx);
	if (s == NATS_OK)
		s = natsConnection_Subscribe(&c->home_sub, c->nc, c->home, on_home, c);
	if (s == NATS_OK)
		s = natsConnection_Subscribe(&c->ack_sub, c->nc, sub, on_ack, c);
	/* the callbacks only queue: never drop for a slow consumer */
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(c->home_sub, -1, -1);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(c->ack_sub, -1, -1);
	if (s != NATS_OK) {
		snprintf(err, errlen, "NATS server %s: %s", url, natsStatus_GetText(s));
		pthread_mutex_unlock(lk);
		c->refs = 0;
		c->closing = 1;
		natsSubscription_Destroy(c->home_sub);
		natsSubscription_Destroy(c->ack_sub);
		jsCtx_Destroy(c->js);
		natsConnection_Destroy(c->nc);
		pthread_mutex_destroy(&c->lock);
		free(c->pend);
		free(c);
		return NULL;
	}
	ev_async_init(&c->wake, on_wake);
	c->wake.data = c;
	ev_async_start(g->loop, &c->wake);
	/* the tick tells JetStream that jobs in hand are still ours every
	 * third of their ack wait (nats_tick): it must come round well inside
	 * the shortest ack wait, or a job a live node works on is redelivered */
	double period = 1.0;
	for (size_t i = 0; i < ns->n_chans; i++) {
		double aw = (double)ns->chans[i]->ack_wait_ms / 1000.0;
		if (aw / 4 < period)
			period = aw / 4;
	}
	ev_timer_init(&c->tick, on_tick, period, period);
	c->tick.data = c;
	ev_timer_start(g->loop, &c->tick);
	/* the tick alone must not keep a finished run alive; the wake
	 * watcher does keep the loop going while answers are awaited (a
	 * finished graph ends the run with ev_break, reload.c) */
	ev_unref(g->loop);
	c->next = ns->conns;
	ns->conns = c;
	pthread_mutex_unlock(lk);
	return c;
}

void
conn_put(struct conn *c)
{
	pthread_mutex_t *lk = c->ns->conns_lock;
	pthread_mutex_lock(lk);
	if (--c->refs > 0) {
		pthread_mutex_unlock(lk);
		return;
	}
	for (struct conn **pp = (struct conn **)&c->ns->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pthread_mutex_unlock(lk);
	/* what is buffered (ends, acks) goes out before we close */
	natsConnection_FlushTimeout(c->nc, 1000);
	pthread_mutex_lock(&c->lock);
	c->closing = 1;
	struct qitem *it = c->head;
	c->head = c->tail = NULL;
	pthread_mutex_unlock(&c->lock);
	natsSubscription_Unsubscribe(c->home_sub);
	natsSubscription_Unsubscribe(c->ack_sub);
	natsSubscription_Destroy(c->home_sub);
	natsSubscription_Destroy(c->ack_sub);
	jsCtx_Destroy(c->js);
	natsConnection_Close(c->nc);
	natsConnection_Destroy(c->nc);
	while (it != NULL) {
		struct qitem *next = it->next;
		natsMsg_Destroy(it->msg);
		free(it);
		it = next;
	}
	ev_ref(c->g->loop);
	ev_async_stop(c->g->loop, &c->wake);
	ev_timer_stop(c->g->loop, &c->tick);
	pthread_mutex_destroy(&c->lock);
	free(c->pend);
	free(c);
}

void
nats_conns_free(struct node_state *ns)
{
	/* every graph is freed before its configuration: no conn is left */
	if (ns->conns_lock != NULL) {
		pthread_mutex_destroy(ns->conns_lock);
		free(ns->conns_lock);
	}
}

int
conn_init_retry(natsStatus s, int64_t waited_ms)
{
	if ((s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS) || waited_ms >= INIT_RETRY_FOR_MS)
		return 0;
	if (waited_ms == 0)
		log_warn("the NATS server does not answer JetStream requests yet (%s); "
		    "trying again for %d s", natsStatus_GetText(s), INIT_RETRY_FOR_MS / 1000);
	nats_Sleep(INIT_RETRY_MS);
	return 1;
}

int
conn_stream(struct conn *c, const struct nats_chan *ch, char *err, size_t errlen)
{
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	/* sharded: one subject per shard, subject.K, under one stream */
	char all[600];
	snprintf(all, sizeof all, "%s.*", ch->subject);
	const char *subjects[1] = { ch->shards > 0 ? all : ch->subject };
	sc.Name = ch->stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Retention = js_WorkQueuePolicy;
	sc.MaxMsgs = ch->capacity;
	sc.Discard = js_DiscardNew;
	sc.Storage = js_FileStorage;
	sc.Duplicates = (int64_t)DEDUPE_WINDOW_S * 1000000000;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s;
	int overlaps = 0;
	for (int64_t waited = 0;; waited += INIT_RETRY_MS) {
		s = js_AddStream(&si, c->js, &sc, NULL, &je);
		if (s != NATS_OK && je == JSStreamNameExistErr) {
			/* made by another node, or by an earlier run with other limits */
			je = 0;
			s = js_UpdateStream(&si, c->js, &sc, NULL, &je);
		}
		jsStreamInfo_Destroy(si);
		si = NULL;
		if (s != NATS_OK && je == JSStreamSubjectOverlapErr && overlaps++ < 3) {
			/* two nodes making the stream at the same moment: the server
			 * may find the other's subjects before its name.  Once that
			 * one is made its name is found (and updated, above); a
			 * stream of another name on these subjects stays an error. */
			nats_Sleep(INIT_RETRY_MS);
			continue;
		}
		if (!conn_init_retry(s, waited))
			break;
	}
	if (s != NATS_OK) {
		snprintf(err, errlen, "cannot create the JetStream stream %s (subject %s) "
		    "on %s: %s (JetStream error %d)", ch->stream, ch->subject, ch->url,
		    nats_GetLastError(NULL) ? nats_GetLastError(NULL) : natsStatus_GetText(s),
		    (int)je);
		return -1;
	}
	return 0;
}
