/*
 * nats_stage.c -- the ends of a channel over NATS, as stages (node.h):
 *
 *   proxy  where the sender runs, stands for the receiving stage B: takes a
 *          message, publishes it to the channel's stream (asynchronously,
 *          with Nats-Msg-Id = instance-id-attempt), holds it until B's
 *          answer comes home, then emits it on the port B emitted it on
 *          (or ends it as B's node ended it).  Streamed pieces come home
 *          too and go on at once, as B's own would.
 *   in     where B runs, a source: a thread pulls the durable consumer
 *          (natsSubscription_Fetch blocks) up to its credit (the channel's
 *          capacity); each message becomes a request of this node.  When
 *          the request ends, its answer is sent home and the JetStream
 *          message acked, in that order on one connection: a node that
 *          dies before leaves it unacked, and JetStream gives it to
 *          another after ack-wait.  A connection that went away may have
 *          lost answers on their way: when it is back, each sender checks
 *          what it still waits for (nats_recheck.c) and publishes again,
 *          with a new id, each one the stream no longer holds.
 *   home   where B runs, a sink per port of B: notes the port and ends the
 *          request; in's outcome callback sends it home.  Its piece
 *          callback sends B's streamed pieces home.
 *
 * Wire (fields of nats_wire.h, by tag): a request is i (the sender's key
 * for it: its message id), h (the sender's home subject), s (session), t
 * (text), k and v (each metadata pair), a (attempts), with the headers
 * Nats-Msg-Id (INSTANCE-KEY-ATTEMPT, then INSTANCE-KEY-ATTEMPTrN for its
 * Nth publish with a new id: JetStream's dedupe) and, when it has
 * one, Porch-Deadline (absolute, seconds since the epoch).  What goes home
 * starts with K ("p" a piece, "e" the end) and i; a piece has d (its
 * delivery), n (its index), t and C, H, L (its chunk, choice and delta
 * extras); an end has d, p (the port B emitted it on, or -1), o
 * (outcome), e, x, g (error, its text, its stage), t, k/v, S (status),
 * r (retry-after), N (how many pieces this delivery sent: nats_pieces.h)
 * and, from a sender that dropped it from a full stream (drop-oldest,
 * nats_evict.c), D.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "graph.h"
#include "log.h"
#include "nats.h"
#include "nats_conn.h"
#include "nats_evict.h"
#include "nats_pieces.h"
#include "nats_recheck.h"
#include "nats_wire.h"
#include "util.h"

/* The sender's retries of a publish JetStream did not take: from RETRY_MIN
 * doubling up to RETRY_MAX seconds. */
#define RETRY_MIN 0.02
#define RETRY_MAX 0.5
/* How many times a refusal for a full stream is tried again before a
 * request is shed (overflow reject). */
#define FULL_CONFIRM 2
/* How long after its deadline a request still waits for its answer (s). */
#define DEADLINE_GRACE_S 1.0

struct proxy {
	struct nats_end *e;
	struct conn *c;
	porch_stage *st;
	struct pend *retry, *retry_tail; /* publishes to try again, oldest first */
	ev_timer retry_w;
	double backoff;
	int blocked;                 /* the stream is full and overflow is block */
	struct evictor *ev;          /* overflow drop-oldest: nats_evict.h */
	struct recheck *rc;          /* publishes that must be heard: nats_recheck.h */
	unsigned checking;           /* its pends in P_CHECK */
};

/* P_PUBLISHING: with JetStream, no error heard (it is stored, or on its
 * way); P_RETRY: refused or lost, to be published again; P_EVICT: refused
 * by a full stream, waiting for its oldest to be dropped (drop-oldest);
 * P_CHECK: published again by the recheck thread, waiting for what
 * JetStream did with it (nats_recheck.h). */
enum pend_state { P_PUBLISHING, P_RETRY, P_EVICT, P_CHECK };

struct pend {
	struct pend *next;           /* hash bucket */
	struct pend *prev_all, *next_all;
	struct pend *next_retry;
	uint64_t key;
	porch_msg *m;
	struct proxy *px;
	enum pend_state state;
	int counted_block;
	int full_tries;              /* refusals (stream full) tried again */
	unsigned renewed;            /* published again with a new id (rN) */
	int check_again;             /* the connection was away while in P_CHECK */
	struct pieces pieces;        /* of a streamed answer: nats_pieces.h */
};

struct in_end {
	struct nats_end *e;
	struct conn *c;
	porch_stage *st;
	struct in_end *next;         /* conn.ins */
	natsSubscription *sub;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int credit, stop, running, reffed;
};

struct job {
	struct job *prev_all, *next_all;
	uint64_t seq;
	natsMsg *jm;                 /* the JetStream message, acked at the end */
	struct in_end *in;
	char *home;
	char key[32];
	uint64_t delivered;
	int port;                    /* the port B emitted it on; -1: none */
	unsigned pieces;
	double progress_at;          /* when JetStream last heard it is ours */
};

/* ---- sender ----------------------------------------------------------------- */

static void retry_arm(struct proxy *px);

static struct pend *
pend_find(struct conn *c, uint64_t key)
{
	for (struct pend *p = c->pend[key & c->pend_mask]; p != NULL; p = p->next)
		if (p->key == key)
			return p;
	return NULL;
}

static void
retry_unlink(struct proxy *px, struct pend *pd)
{
	struct pend *prev = NULL;
	for (struct pend **pp = &px->retry; *pp; prev = *pp, pp = &(*pp)->next_retry)
		if (*pp == pd) {
			*pp = pd->next_retry;
			if (px->retry_tail == pd)
				px->retry_tail = prev;
			break;
		}
	pd->next_retry = NULL;
}

static void
pend_remove(struct conn *c, struct pend *pd)
{
	for (struct pend **pp = &c->pend[pd->key & c->pend_mask]; *pp; pp = &(*pp)->next)
		if (*pp == pd) {
			*pp = pd->next;
			break;
		}
	if (pd->prev_all)
		pd->prev_all->next_all = pd->next_all;
	else
		c->pend_all = pd->next_all;
	if (pd->next_all)
		pd->next_all->prev_all = pd->prev_all;
	struct proxy *px = pd->px;
	if (pd->state == P_RETRY)
		retry_unlink(px, pd);
	if (pd->state == P_CHECK)
		px->checking--;
	/* a blocked sender whose held message ended (its deadline, a
	 * cancel) settles on its timer: blocked on the next, or not */
	if (px->blocked && px->retry == NULL && px->checking == 0)
		retry_arm(px);
	free(pd);
}

/* m's metadata as k/v fields */
static void
wb_meta(struct wbuf *b, const porch_msg *m)
{
	const char *k, *v;
	for (size_t i = 0; (k = porch_msg_meta_at(m, i, &v)) != NULL; i++) {
		wb_cstr(b, 'k', k);
		wb_cstr(b, 'v', v);
	}
}

/* A k field then its v field: set on m (NUL-ended copies for the API). */
static void
meta_set(porch_msg *m, const struct wfield *k, const struct wfield *v)
{
	char kb[256], vb[1024];
	char *kp = k->n < sizeof kb ? kb : xmalloc(k->n + 1);
	char *vp = v->n < sizeof vb ? vb : xmalloc(v->n + 1);
	memcpy(kp, k->p, k->n);
	kp[k->n] = '\0';
	memcpy(vp, v->p, v->n);
	vp[v->n] = '\0';
	porch_msg_set_meta(m, kp, vp);
	if (kp != kb)
		free(kp);
	if (vp != vb)
		free(vp);
}

/* pd's message, with its headers (Nats-Msg-Id, Porch-Deadline); NULL when
 * libnats cannot make it. */
static natsMsg *
px_msg(struct proxy *px, struct pend *pd)
{
	struct conn *c = px->c;
	porch_msg *m = pd->m;
	size_t len;
	const char *text = porch_msg_text(m, &len);
	struct wbuf b = { NULL, 0, 0 };
	wb_int(&b, 'i', (long long)pd->key);
	wb_cstr(&b, 'h', c->home);
	wb_str(&b, 's', m->session != NULL ? m->session : "", m->session_len);
	wb_str(&b, 't', text, len);
	wb_meta(&b, m);
	wb_int(&b, 'a', porch_msg_attempts(m));
	/* sharded: the session's shard, as porch_shard gives it to threads */
	char subject[700];
	const struct nats_chan *ch = px->e->chan;
	if (ch->shards > 0)
		snprintf(subject, sizeof subject, "%s.%lld", ch->subject, (long long)
		    porch_shard(m->session != NULL ? m->session : "", m->session_len, ch->shards));
	natsMsg *nm = NULL;
	natsStatus s = natsMsg_Create(&nm, ch->shards > 0 ? subject : ch->subject, NULL,
	    b.p, (int)b.len);
	free(b.p);
	char id[200], dl[64];
	int n = snprintf(id, sizeof id, "%s-%llu-%u", c->instance,
	    (unsigned long long)pd->key, porch_msg_attempts(m));
	/* a new id: the key stays between the last two dashes (on_puberr) */
	if (pd->renewed > 0 && n > 0 && (size_t)n < sizeof id)
		snprintf(id + n, sizeof id - (size_t)n, "r%u", pd->renewed);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(nm, "Nats-Msg-Id", id);
	if (s == NATS_OK && m->deadline != 0) {
		snprintf(dl, sizeof dl, "%.3f", m->deadline);
		s = natsMsgHeader_Set(nm, "Porch-Deadline", dl);
	}
	if (s != NATS_OK) {
		natsMsg_Destroy(nm);
		return NULL;
	}
	return nm;
}

/* Publishes pd's message; -1: libnats refused at once (try again later). */
static int
px_publish(struct proxy *px, struct pend *pd)
{
	natsMsg *nm = px_msg(px, pd);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	natsStatus s = nm != NULL ? js_PublishMsgAsync(px->c->js, &nm, &po) : NATS_NO_MEMORY;
	natsMsg_Destroy(nm); /* NULL when libnats took it */
	pd->state = P_PUBLISHING;
	return s == NATS_OK ? 0 : -1;
}

static void to_retry(struct proxy *px, struct pend *pd, int front);

/* Publishes pd's message on the recheck thread, which says what JetStream
 * did with it (px_checked). */
static void
px_check(struct proxy *px, struct pend *pd)
{
	natsMsg *nm = px_msg(px, pd);
	if (nm == NULL) {
		to_retry(px, pd, 0);
		return;
	}
	pd->state = P_CHECK;
	px->checking++;
	recheck_ask(px->rc, pd->key, nm);
}

/* Puts pd with the publishes to try again: at the front (the oldest, a
 * blocked sender's held one, refused again) or at the back. */
static void
to_retry(struct proxy *px, struct pend *pd, int front)
{
	pd->state = P_RETRY;
	pd->next_retry = NULL;
	if (front) {
		pd->next_retry = px->retry;
		px->retry = pd;
		if (px->retry_tail == NULL)
			px->retry_tail = pd;
	} else {
		if (px->retry_tail)
			px->retry_tail->next_retry = pd;
		else
			px->retry = pd;
		px->retry_tail = pd;
	}
	retry_arm(px);
}

/* Publishes again every publish waiting to be tried again. */
static void
retry_all(struct proxy *px)
{
	while (px->retry != NULL) {
		struct pend *pd = px->retry;
		retry_unlink(px, pd);
		if (px_publish(px, pd) != 0)
			to_retry(px, pd, 0);
	}
}

/*
 * Overflow block over NATS holds the source back at the first refused
 * message, as a full local channel with block does (graph.c): the stand-in
 * takes nothing more (its concurrency drops to what it holds) until that
 * one is stored.  Its refused messages are tried one at a time, oldest
 * first, on the recheck thread, which hears the success an asynchronous
 * publish does not report: the next when one is stored, again when one is
 * refused (on the timer, backing off, and at once when an answer comes: a
 * message left the stream).  Once none is refused or being tried, the
 * stand-in takes messages again.
 */
static void
px_settle(struct proxy *px)
{
	if (!px->blocked || px->checking > 0)
		return;
	if (px->retry != NULL) {
		struct pend *pd = px->retry;
		retry_unlink(px, pd);
		px_check(px, pd);
		return;
	}
	px->blocked = 0;
	px->backoff = 0;
	px->st->concurrency = (unsigned)px->e->chan->capacity;
	graph_wake(px->st->g);
}

/* A timeout, a server away: everything is tried again at once, on the
 * timer, backing off; a blocked sender tries its oldest (px_settle). */
static void
on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	struct proxy *px = w->data;
	if (px->blocked)
		px_settle(px);
	else
		retry_all(px);
	if (px->retry != NULL) {
		px->backoff = px->backoff * 2 > RETRY_MAX ? RETRY_MAX : px->backoff * 2;
		retry_arm(px);
	}
}

static void
retry_arm(struct proxy *px)
{
	if (ev_is_active(&px->retry_w))
		return;
	if (px->backoff < RETRY_MIN)
		px->backoff = RETRY_MIN;
	ev_timer_set(&px->retry_w, px->backoff, 0.);
	ev_timer_start(px->st->g->loop, &px->retry_w);
}

/* JetStream refused pd's publish with errcode (0: no answer from it);
 * front: pd was a blocked sender's oldest, tried on its own. */
static void
px_refused(struct conn *c, struct pend *pd, int errcode, int front)
{
	struct proxy *px = pd->px;
	porch_stage *st = px->st;
	struct channel *in = st->n_inputs > 0 ? st->inputs[0] : NULL;
	enum overflow ov = px->e->chan->overflow;
	if (errcode == JSStreamStoreFailedErr &&
	    (ov == OVERFLOW_REJECT || (ov == OVERFLOW_DROP_OLDEST && px->ev != NULL)) &&
	    pd->full_tries < FULL_CONFIRM) {
		/* the stream's count lags the acks of answers already home
		 * (JetStream removes an acked message a moment later): a
		 * refusal is shed (or makes room) only when it stands, tried
		 * again twice */
		pd->full_tries++;
		to_retry(px, pd, 0);
		return;
	}
	if (errcode == JSStreamStoreFailedErr &&
	    px->e->chan->overflow == OVERFLOW_REJECT) {
		/* the stream holds capacity messages: shed, as a full local
		 * channel with overflow reject does, and counted the same */
		porch_msg *m = pd->m;
		pend_remove(c, pd);
		if (in != NULL)
			in->s->refused_reject++;
		msg_set_error(m, PORCH_ERR_FULL, "channel %s -> %s is full (its stream %s "
		    "holds %u messages, overflow reject)", px->e->chan->from,
		    px->e->chan->to, px->e->chan->stream, px->e->chan->capacity);
		stage_release(st, m);
		graph_finish(st->g, m, PORCH_SHED, st);
		return;
	}
	if (errcode == JSStreamStoreFailedErr && ov == OVERFLOW_DROP_OLDEST &&
	    px->ev != NULL) {
		/* the oldest waiting message makes room (nats_evict.c), then
		 * this one is published again (px_evicted) */
		pd->full_tries = 0;
		pd->state = P_EVICT;
		evict_ask(px->ev, pd->key);
		return;
	}
	if (errcode == JSStreamStoreFailedErr) {
		/* block: the proxy takes no more until the stream has room, so
		 * its channel fills and the source is held back (px_settle) */
		if (!pd->counted_block && in != NULL)
			in->s->held_back++;
		pd->counted_block = 1;
		px->blocked = 1;
		st->concurrency = st->held;
	}
	/* full, a timeout, no stream yet, a server away: again, same id */
	to_retry(px, pd, front);
}

/* JetStream refused a publish, or did not answer it. */
static void
px_puback(struct conn *c, struct qitem *it)
{
	struct pend *pd = pend_find(c, it->key);
	if (pd == NULL || pd->state != P_PUBLISHING)
		return; /* answered already, or a late error of an earlier try */
	px_refused(c, pd, it->errcode, 0);
}

/* The recheck thread published pd again and heard what JetStream did. */
static void
px_checked(struct conn *c, struct qitem *it)
{
	struct pend *pd = pend_find(c, it->key);
	if (pd == NULL || pd->state != P_CHECK)
		return; /* ended meanwhile (answered, its deadline, a cancel) */
	struct proxy *px = pd->px;
	px->checking--;
	pd->state = P_PUBLISHING;
	if (pd->check_again && it->st == NATS_OK && it->errcode == RECHECK_HELD) {
		pd->check_again = 0;
		px_check(px, pd);
		return;
	}
	pd->check_again = 0;
	if (it->st != NATS_OK) {
		px_refused(c, pd, it->errcode, px->blocked);
	} else if (it->errcode == RECHECK_GONE) {
		/* worked on while we were away, its answer lost: again, with
		 * a new id (the old one is a duplicate for 2 minutes) */
		pd->renewed++;
		porch_stage_count(px->st, "nats_republished", 1);
		if (px_publish(px, pd) != 0)
			to_retry(px, pd, 0);
	} /* else stored: it will be answered */
	px_settle(px);
}

static void
px_process(porch_stage *st, porch_msg *m)
{
	struct proxy *px = porch_stage_data(st);
	struct conn *c = px->c;
	struct pend *pd = xcalloc(1, sizeof *pd);
	pd->key = porch_msg_id(m);
	pd->m = m;
	pd->px = px;
	size_t b = pd->key & c->pend_mask;
	pd->next = c->pend[b];
	c->pend[b] = pd;
	pd->next_all = c->pend_all;
	if (c->pend_all)
		c->pend_all->prev_all = pd;
	c->pend_all = pd;
	if (px_publish(px, pd) != 0)
		to_retry(px, pd, 0);
}

static void
px_piece(struct pend *pd, const char *p, const char *end)
{
	struct wfield f;
	unsigned idx = 0;
	const char *text = "";
	size_t tlen = 0;
	char *x[3] = { NULL, NULL, NULL };
	while (wr_next(&p, end, &f) == 1) {
		switch (f.tag) {
		case 'n': idx = (unsigned)wf_int(&f); break;
		case 't': text = f.p; tlen = f.n; break;
		case 'C': case 'H': case 'L':
			x[f.tag == 'C' ? 0 : f.tag == 'H' ? 1 : 2] = xstrndup(f.p, f.n);
			break;
		}
	}
	/* a copy worked on again (another node, or published again after the
	 * server was away) streams from its start: its pieces go on from
	 * where the first stopped (a model at temperature 0 repeats itself);
	 * after a hole (pieces lost on their way) none goes on: px_end mends
	 * the stream or fails the request */
	if (pieces_take(&pd->pieces, idx, text, tlen, x[0] || x[1] || x[2]) == PIECE_PASS) {
		struct porch_piece pc = { x[0], x[1], x[2] };
		porch_stream_piece(pd->px->st, pd->m, text, tlen,
		    x[0] || x[1] || x[2] ? &pc : NULL);
	}
	for (int k = 0; k < 3; k++)
		free(x[k]);
}

static void
px_end(struct conn *c, struct pend *pd, const char *p, const char *end)
{
	porch_msg *m = pd->m;
	porch_stage *st = pd->px->st;
	int port = -1, outcome = PORCH_FAILED, err = PORCH_ERR_NONE, dropped = 0;
	long long sent = -1;
	char et[512] = "";
	struct wfield f, k = { 0, NULL, 0 };
	while (wr_next(&p, end, &f) == 1) {
		switch (f.tag) {
		case 'p': port = (int)wf_int(&f); break;
		case 'o': outcome = (int)wf_int(&f); break;
		case 'e': err = (int)wf_int(&f); break;
		case 'x': wf_str(&f, et, sizeof et); break;
		case 't': porch_msg_set_text(m, f.p, f.n); break;
		case 'k': k = f; break;
		case 'v': if (k.p != NULL) meta_set(m, &k, &f); break;
		case 'S': msg_rare(m); m->status = (int)wf_int(&f); break;
		case 'r': msg_rare(m); m->retry_after_ms = wf_int(&f); break;
		case 'D': dropped = wf_int(&f) != 0; break;
		case 'N': sent = wf_int(&f); break;
		}
	}
	struct proxy *px = pd->px;
	struct pieces pcs = pd->pieces;
	pend_remove(c, pd);
	px_settle(px); /* blocked: it left the stream, room for one */
	size_t tlen, rest;
	const char *text = porch_msg_text(m, &tlen);
	enum pieces_end pe = pieces_end(&pcs, text, tlen, sent, &rest);
	if (!dropped && err == PORCH_ERR_NONE && pe == PIECES_REST) {
		/* pieces were lost on their way; what went on is the answer's
		 * beginning: the rest goes on whole */
		porch_stage_count(st, "nats_pieces_mended", 1);
		if (rest < tlen)
			porch_stream_piece(st, m, text + rest, tlen - rest, NULL);
	} else if (!dropped && err == PORCH_ERR_NONE && pe == PIECES_LOST) {
		porch_stage_count(st, "nats_pieces_lost", 1);
		porch_fail(st, m, PORCH_ERR_TRANSPORT, "pieces of the answer streamed by "
		    "stage '%s' over NATS were lost on their way (the server was away): "
		    "what was streamed is not the answer", st->name);
		graph_wake(st->g);
		return;
	}
	if (dropped) {
		/* a sender with drop-oldest dropped it from the full stream
		 * (nats_evict.c): shed, as a local drop-oldest sheds the oldest
		 * waiting, and counted the same, by the channel that sent it */
		struct channel *in = st->n_inputs > 0 ? st->inputs[0] : NULL;
		if (in != NULL)
			in->s->refused_drop_oldest++;
		porch_stage_count(st, "nats_dropped", 1);
		msg_set_error(m, PORCH_ERR_FULL, "%s", et);
		stage_release(st, m);
		graph_finish(st->g, m, PORCH_SHED, st);
		graph_wake(st->g);
		return;
	}
	if (err != PORCH_ERR_NONE)
		msg_set_error(m, (enum porch_error)err, "%s", et);
	if (port >= 0 && port < st->n_ports) {
		porch_emit_port(st, port, m);
	} else if (outcome == PORCH_COMPLETED && err == PORCH_ERR_NONE) {
		porch_done(st, m);
	} else {
		porch_fail(st, m, err != PORCH_ERR_NONE ? (enum porch_error)err :
		    PORCH_ERR_INTERNAL, "%s", *et ? et : "failed on its node");
	}
	graph_wake(st->g);
}

/* A piece or an end on our home subject. */
static void
home_msg(struct conn *c, natsMsg *msg)
{
	const char *p = natsMsg_GetData(msg), *end = p + natsMsg_GetDataLength(msg);
	const char *rest = p;
	struct wfield f;
	char kind = 0;
	uint64_t key = 0;
	/* the kind and key come first */
	for (int n = 0; n < 2 && wr_next(&rest, end, &f) == 1; n++) {
		if (f.tag == 'K' && f.n == 1)
			kind = f.p[0];
		else if (f.tag == 'i')
			key = (uint64_t)wf_int(&f);
	}
	if (kind != 'p' && kind != 'e')
		return;
	struct pend *pd = pend_find(c, key);
	if (pd == NULL) {
		/* answered already (a copy worked on twice), or given up on at
		 * its deadline: counted and dropped, never answered twice */
		for (size_t i = 0; kind == 'e' && i < c->g->n_stages; i++)
			if (c->g->stages[i].d->init == nats_proxy_desc.init) {
				porch_stage_count(&c->g->stages[i], "nats_late_answers", 1);
				break;
			}
		return;
	}
	if (kind == 'p')
		px_piece(pd, rest, end);
	else
		px_end(c, pd, rest, end);
}

static int
px_init(porch_stage *st)
{
	const struct nats_end *e = st->cfg->nats;
	struct proxy *px = xcalloc(1, sizeof *px);
	px->e = (struct nats_end *)e;
	px->st = st;
	char err[512];
	px->c = conn_get(e->ns, st->g, e->chan->url, st->cfg->node, err, sizeof err);
	if (px->c == NULL || conn_stream(px->c, e->chan, err, sizeof err) != 0) {
		if (px->c != NULL)
			conn_put(px->c);
		free(px);
		porch_stage_error(st, "%s", err);
		return -1;
	}
	ev_init(&px->retry_w, on_retry);
	px->retry_w.data = px;
	if (e->chan->overflow == OVERFLOW_DROP_OLDEST &&
	    (px->ev = evict_new(px->c, e->chan)) == NULL) {
		conn_put(px->c);
		free(px);
		porch_stage_error(st, "cannot start the drop-oldest thread of channel "
		    "%s -> %s", e->chan->from, e->chan->to);
		return -1;
	}
	if ((px->rc = recheck_new(px->c, e->chan)) == NULL) {
		evict_free(px->ev);
		conn_put(px->c);
		free(px);
		porch_stage_error(st, "cannot start the recheck thread of channel "
		    "%s -> %s", e->chan->from, e->chan->to);
		return -1;
	}
	porch_stage_set_data(st, px);
	return 0;
}

static void
px_fini(porch_stage *st)
{
	struct proxy *px = porch_stage_data(st);
	if (px == NULL)
		return;
	evict_free(px->ev);
	recheck_free(px->rc);
	px->blocked = 0; /* pend_remove arms no timer */
	ev_timer_stop(st->g->loop, &px->retry_w);
	struct conn *c = px->c;
	for (struct pend *pd = c->pend_all, *next; pd != NULL; pd = next) {
		next = pd->next_all;
		if (pd->px == px)
			pend_remove(c, pd);
	}
	conn_put(c);
	free(px);
}

/* The client has gone: the request ends now; its answer, if it comes, is
 * dropped as late. */
static void
px_cancel(porch_stage *st, porch_msg *m)
{
	struct proxy *px = porch_stage_data(st);
	struct pend *pd = pend_find(px->c, porch_msg_id(m));
	if (pd == NULL || pd->m != m)
		return;
	pend_remove(px->c, pd);
	porch_fail(st, m, PORCH_ERR_CANCELLED, "cancelled while stage '%s' worked on it "
	    "on another node", st->name);
}

const struct porch_plugin nats_proxy_desc = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "nats-proxy",
	.summary = "built in: a stage that runs on other nodes, reached over NATS",
	.init = px_init,
	.process = px_process,
	.fini = px_fini,
	.cancel_msg = px_cancel,
};

/* ---- receiver --------------------------------------------------------------- */

/* A request left this node's graph: the fetch thread may pull another.
 * (What waits for its origin to take the answer is bounded by JetStream's
 * max-ack-pending, the channel's capacity.) */
static void
in_credit(struct in_end *in)
{
	pthread_mutex_lock(&in->mu);
	in->credit++;
	pthread_cond_signal(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

/* Ends a job: acked (done) or handed back to JetStream (nak), then freed. */
static void
job_close(struct conn *c, struct job *j, int ack)
{
	if (ack)
		natsMsg_Ack(j->jm, NULL);
	else
		natsMsg_Nak(j->jm, NULL);
	if (j->prev_all)
		j->prev_all->next_all = j->next_all;
	else
		c->jobs = j->next_all;
	if (j->next_all)
		j->next_all->prev_all = j->prev_all;
	in_credit(j->in);
	natsMsg_Destroy(j->jm);
	free(j->home);
	free(j);
}

/*
 * The answer goes home, then the request is acked: on one connection, so
 * the server has the answer before the ack.  The reply subject is only
 * for the server's "no responders" when no one listens at home any more.
 */
static void
send_end(struct conn *c, struct job *j, const char *body, size_t len)
{
	char reply[800];
	snprintf(reply, sizeof reply, "%s.%llu", c->ackpfx, (unsigned long long)j->seq);
	natsMsg *nm = NULL;
	natsStatus s = natsMsg_Create(&nm, j->home, reply, body, (int)len);
	if (s == NATS_OK)
		natsConnection_PublishMsg(c->nc, nm);
	natsMsg_Destroy(nm);
}

/* A request pulled from the stream becomes a request of this node. */
static void
in_job(struct conn *c, struct qitem *it)
{
	struct in_end *in = it->in;
	porch_stage *st = in->st;
	natsMsg *msg = it->msg;
	it->msg = NULL;
	struct job *j = xcalloc(1, sizeof *j);
	j->jm = msg;
	j->in = in;
	j->port = -1;
	j->seq = ++c->next_seq;
	j->progress_at = ev_now(c->g->loop);
	const char *dl = NULL;
	natsMsgHeader_Get(msg, "Porch-Deadline", &dl);
	const char *p = natsMsg_GetData(msg), *end = p + natsMsg_GetDataLength(msg);
	snprintf(j->key, sizeof j->key, "0");
	jsMsgMetaData *md = NULL;
	if (natsMsg_GetMetaData(&md, msg) == NATS_OK) {
		j->delivered = md->NumDelivered;
		jsMsgMetaData_Destroy(md);
	}
	j->next_all = c->jobs;
	if (c->jobs)
		c->jobs->prev_all = j;
	c->jobs = j;
	if (j->delivered > 1)
		porch_stage_count(st, "nats_redelivered", 1);

	porch_msg *m = porch_msg_new(st);
	porch_msg_set_origin_data(m, j);
	struct wfield f, k = { 0, NULL, 0 };
	int rc;
	while ((rc = wr_next(&p, end, &f)) == 1) {
		switch (f.tag) {
		case 'i': wf_str(&f, j->key, sizeof j->key); break;
		case 'h': j->home = xstrndup(f.p, f.n); break;
		case 's': porch_msg_set_session(m, f.p, f.n); break;
		case 't': porch_msg_set_text(m, f.p, f.n); break;
		case 'k': k = f; break;
		case 'v': if (k.p != NULL) meta_set(m, &k, &f); break;
		case 'a': msg_rare(m); m->attempts = (unsigned)wf_int(&f); break;
		}
	}
	if (dl != NULL)
		m->deadline = strtod(dl, NULL); /* loop time is the epoch's (ev_now) */
	if (rc < 0 || j->home == NULL) {
		if (j->home == NULL)
			j->home = xstrdup("");
		porch_fail(st, m, PORCH_ERR_BAD_REQUEST, "a message on %s is not porch's",
		    in->e->chan->subject);
		return;
	}
	if (j->delivered > (uint64_t)in->e->chan->max_deliver) {
		porch_stage_count(st, "nats_max_deliver", 1);
		porch_fail(st, m, PORCH_ERR_TRANSPORT, "delivered %llu times over NATS "
		    "(channel %s -> %s, max-deliver %d): the nodes that took it did not "
		    "answer", (unsigned long long)j->delivered, in->e->chan->from,
		    in->e->chan->to, in->e->chan->max_deliver);
		return;
	}
	porch_emit(st, m);
}

static void
in_outcome(porch_stage *st, porch_msg *m, enum porch_outcome o)
{
	struct in_end *in = porch_stage_data(st);
	struct job *j = porch_msg_origin_data(m);
	if (j == NULL)
		return;
	size_t len;
	const char *text = porch_msg_text(m, &len);
	struct wbuf b = { NULL, 0, 0 };
	wb_str(&b, 'K', "e", 1);
	wb_cstr(&b, 'i', j->key);
	wb_int(&b, 'd', (long long)j->delivered);
	wb_int(&b, 'p', j->port);
	wb_int(&b, 'o', o);
	wb_int(&b, 'e', porch_msg_error(m));
	wb_cstr(&b, 'x', porch_msg_error_text(m));
	wb_cstr(&b, 'g', porch_msg_error_stage(m));
	wb_str(&b, 't', text, len);
	wb_meta(&b, m);
	wb_int(&b, 'S', porch_msg_status(m));
	wb_int(&b, 'r', porch_msg_retry_after(m));
	wb_int(&b, 'N', (long long)j->pieces); /* the home node checks for holes */
	send_end(in->c, j, b.p, b.len);
	free(b.p);
	job_close(in->c, j, 1);
}

/* No one listens on an answer's home: its sender is gone.  Counted; the
 * answer is dropped (its request was acked: no one would take it). */
static void
in_ack(struct conn *c, natsMsg *msg)
{
	if (natsMsg_IsNoResponders(msg) && c->ins != NULL)
		porch_stage_count(c->ins->st, "nats_orphaned", 1);
}

static void *
fetch_main(void *arg)
{
	struct in_end *in = arg;
	for (;;) {
		pthread_mutex_lock(&in->mu);
		while (in->credit <= 0 && !in->stop)
			pthread_cond_wait(&in->cv, &in->mu);
		int stop = in->stop, n = in->credit > 256 ? 256 : in->credit;
		pthread_mutex_unlock(&in->mu);
		if (stop)
			break;
		natsMsgList list = { NULL, 0 };
		natsStatus s = natsSubscription_Fetch(&list, in->sub, n, 500, NULL);
		if (s == NATS_OK && list.Count > 0) {
			pthread_mutex_lock(&in->mu);
			in->credit -= list.Count;
			pthread_mutex_unlock(&in->mu);
			struct qitem *first = NULL, *last = NULL;
			for (int i = 0; i < list.Count; i++) {
				struct qitem *it = xcalloc(1, sizeof *it);
				it->kind = Q_JOB;
				it->msg = list.Msgs[i];
				it->in = in;
				list.Msgs[i] = NULL;
				if (last)
					last->next = it;
				else
					first = it;
				last = it;
			}
			conn_push_list(in->c, first, last);
			natsMsgList_Destroy(&list);
		} else if (s == NATS_OK) {
			natsMsgList_Destroy(&list);
		} else if (s != NATS_TIMEOUT) {
			/* the server is away: libnats reconnects meanwhile */
			nats_Sleep(200);
		}
	}
	return NULL;
}

static int
in_init(porch_stage *st)
{
	const struct nats_end *e = st->cfg->nats;
	struct in_end *in = xcalloc(1, sizeof *in);
	in->e = (struct nats_end *)e;
	in->st = st;
	char err[512];
	in->c = conn_get(e->ns, st->g, e->chan->url, st->cfg->node, err, sizeof err);
	if (in->c == NULL || conn_stream(in->c, e->chan, err, sizeof err) != 0) {
		if (in->c != NULL)
			conn_put(in->c);
		free(in);
		porch_stage_error(st, "%s", err);
		return -1;
	}
	/* the durable consumer, made or brought to the file's ack-wait and
	 * capacity (a restart with other values), then pulled as it is */
	/* a shard: its own consumer, B-K, on its subject */
	char durable[300], subject[700];
	snprintf(durable, sizeof durable, "%s", e->chan->durable);
	snprintf(subject, sizeof subject, "%s", e->chan->subject);
	if (e->chan->shards > 0) {
		snprintf(durable, sizeof durable, "%s-%d", e->chan->durable, e->shard);
		snprintf(subject, sizeof subject, "%s.%d", e->chan->subject, e->shard);
	}
	jsConsumerConfig cc;
	jsConsumerConfig_Init(&cc);
	cc.Durable = durable;
	cc.FilterSubject = subject;
	cc.AckPolicy = js_AckExplicit;
	cc.AckWait = e->chan->ack_wait_ms * 1000000;
	/* redelivery is bounded here (in_job), where the request can fail
	 * typed; JetStream's own bound would leave it unanswered */
	cc.MaxDeliver = -1;
	cc.MaxAckPending = e->chan->capacity;
	cc.DeliverPolicy = js_DeliverAll;
	jsConsumerInfo *ci = NULL;
	jsErrCode je = 0;
	natsStatus s;
	for (int64_t waited = 0;; waited += INIT_RETRY_MS) {
		s = js_AddConsumer(&ci, in->c->js, e->chan->stream, &cc, NULL, &je);
		if (s != NATS_OK && je == JSConsumerNameExistErr) {
			je = 0;
			s = js_UpdateConsumer(&ci, in->c->js, e->chan->stream, &cc, NULL, &je);
		}
		jsConsumerInfo_Destroy(ci);
		ci = NULL;
		if (!conn_init_retry(s, waited))
			break;
	}
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = e->chan->stream;
	so.Consumer = durable;
	/* it looks the consumer up: a request the server may be slow to
	 * answer too */
	if (s == NATS_OK) {
		for (int64_t waited = 0;; waited += INIT_RETRY_MS) {
			s = js_PullSubscribe(&in->sub, in->c->js, subject, durable, NULL, &so, &je);
			if (!conn_init_retry(s, waited))
				break;
		}
	}
	if (s != NATS_OK) {
		porch_stage_error(st, "cannot pull %s as the durable consumer %s of stream "
		    "%s: %s (JetStream error %d)", subject, durable,
		    e->chan->stream, nats_GetLastError(NULL) ? nats_GetLastError(NULL) :
		    natsStatus_GetText(s), (int)je);
		conn_put(in->c);
		free(in);
		return -1;
	}
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->cv, NULL);
	/* a node pulls no more than twice what its stage works on at once:
	 * enough that the next pull overlaps the work, not so much that
	 * what it holds waits here while another node is idle */
	in->credit = (int)e->chan->capacity;
	if (st->outs[0] != NULL && 2 * (int)st->outs[0]->dst->concurrency < in->credit)
		in->credit = 2 * (int)st->outs[0]->dst->concurrency;
	in->next = in->c->ins;
	in->c->ins = in;
	porch_stage_set_data(st, in);
	return 0;
}

static void
in_start(porch_stage *st)
{
	struct in_end *in = porch_stage_data(st);
	if (pthread_create(&in->th, NULL, fetch_main, in) == 0) {
		in->running = 1;
		/* a running source keeps the loop going, as a listener would:
		 * the connection's own watchers do not (nats_conn.c) */
		ev_ref(st->g->loop);
		in->reffed = 1;
	} else
		log_error("stage '%s': cannot start its NATS fetch thread", st->name);
}

static void
in_stop(struct in_end *in)
{
	pthread_mutex_lock(&in->mu);
	in->stop = 1;
	pthread_cond_signal(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

static void
in_drain(porch_stage *st)
{
	struct in_end *in = porch_stage_data(st);
	in_stop(in);
	if (in->reffed) {
		ev_unref(st->g->loop);
		in->reffed = 0;
	}
	porch_stage_finished(st);
}

static void
in_fini(porch_stage *st)
{
	struct in_end *in = porch_stage_data(st);
	if (in == NULL)
		return;
	struct conn *c = in->c;
	in_stop(in);
	if (in->reffed)
		ev_unref(st->g->loop);
	if (in->running)
		pthread_join(in->th, NULL);
	/* what the loop has not seen yet, and what is not done: JetStream
	 * gives it to another node (nak: at once) */
	pthread_mutex_lock(&c->lock);
	struct qitem *mine = NULL;
	for (struct qitem **pp = &c->head; *pp != NULL;) {
		struct qitem *it = *pp;
		if (it->kind == Q_JOB && it->in == in) {
			*pp = it->next;
			it->next = mine;
			mine = it;
		} else {
			pp = &it->next;
		}
	}
	c->tail = NULL;
	for (struct qitem *it = c->head; it != NULL; it = it->next)
		c->tail = it;
	pthread_mutex_unlock(&c->lock);
	while (mine != NULL) {
		struct qitem *next = mine->next;
		natsMsg_Nak(mine->msg, NULL);
		natsMsg_Destroy(mine->msg);
		free(mine);
		mine = next;
	}
	for (struct job *j = c->jobs, *next; j != NULL; j = next) {
		next = j->next_all;
		if (j->in == in)
			job_close(c, j, 0);
	}
	for (struct in_end **pp = &c->ins; *pp; pp = &(*pp)->next)
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	natsSubscription_Destroy(in->sub);
	pthread_mutex_destroy(&in->mu);
	pthread_cond_destroy(&in->cv);
	conn_put(c);
	free(in);
}

const struct porch_plugin nats_in_desc = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "nats-in",
	.summary = "built in: pulls a NATS channel's stream into its stage",
	/* with threads, every shard pulls the one durable consumer on its
	 * own connection, and a request stays on the shard that pulled it:
	 * its job (the JetStream message, its ack) belongs to that shard's
	 * connection, and its outcome must come back on that shard's loop */
	.flags = PORCH_STAGE_SOURCE | PORCH_STAGE_EVERY_SHARD,
	.outputs = (const char *const[]){ "out", NULL },
	.init = in_init,
	.start = in_start,
	.drain = in_drain,
	.outcome = in_outcome,
	.fini = in_fini,
};

/* ---- home ------------------------------------------------------------------- */

static struct job *
job_of(const porch_msg *m)
{
	/* a stage's descriptor is the registry's copy: known by its init */
	const struct porch_stage *o = m->origin;
	if (o == NULL || o->d->init != nats_in_desc.init)
		return NULL;
	return porch_msg_origin_data(m);
}

static void
home_process(porch_stage *st, porch_msg *m)
{
	const struct nats_end *e = st->cfg->nats;
	struct job *j = job_of(m);
	if (j != NULL)
		j->port = e->port;
	porch_done(st, m);
}

static void
home_piece(porch_stage *st, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	(void)st;
	struct job *j = job_of(m);
	if (j == NULL)
		return;
	struct conn *c = j->in->c;
	struct wbuf b = { NULL, 0, 0 };
	wb_str(&b, 'K', "p", 1);
	wb_cstr(&b, 'i', j->key);
	wb_int(&b, 'd', (long long)j->delivered);
	wb_int(&b, 'n', j->pieces++);
	wb_str(&b, 't', text, len);
	if (pc != NULL && pc->chunk)
		wb_cstr(&b, 'C', pc->chunk);
	if (pc != NULL && pc->choice)
		wb_cstr(&b, 'H', pc->choice);
	if (pc != NULL && pc->delta)
		wb_cstr(&b, 'L', pc->delta);
	natsConnection_Publish(c->nc, j->home, b.p, (int)b.len);
	free(b.p);
}

const struct porch_plugin nats_home_desc = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "nats-home",
	.summary = "built in: sends what a stage fed over NATS emits home",
	.process = home_process,
	.piece = home_piece,
};

/* ---- the loop's side of the queue ------------------------------------------- */

/*
 * The connection was away: what was on its way (an answer, a publish, an
 * ack) may be lost, as core NATS is at most once.  Every request still
 * waiting for its answer (published, or to be published again: a retry
 * with the same id may have been dropped as a duplicate meanwhile) is
 * published again on the recheck thread, which says whether the stream
 * still holds it (it will be answered) or not (worked on, its answer
 * lost: px_checked publishes it with a new id).  Those waiting for room
 * (drop-oldest) are left: their publish is still to come; those being
 * checked are checked again if the check said stored.
 */
static void
recheck_all(struct conn *c)
{
	for (struct pend *pd = c->pend_all; pd != NULL; pd = pd->next_all) {
		if (pd->state == P_CHECK)
			pd->check_again = 1; /* its answer may predate this */
		if (pd->state != P_PUBLISHING && pd->state != P_RETRY)
			continue;
		if (pd->state == P_RETRY)
			retry_unlink(pd->px, pd);
		px_check(pd->px, pd);
	}
}

/* The oldest waiting message was dropped (errcode 1) to make room for
 * it->key's, which is published again; or none waits (all are being worked
 * on) or the server did not answer: tried again later, and dropping is
 * asked again if the stream still refuses it. */
static void
px_evicted(struct conn *c, struct qitem *it)
{
	struct pend *pd = pend_find(c, it->key);
	if (pd == NULL || pd->state != P_EVICT)
		return; /* ended meanwhile (its deadline, a cancel) */
	if (it->errcode == 0 || px_publish(pd->px, pd) != 0)
		to_retry(pd->px, pd, 0);
}

void
nats_item(struct conn *c, struct qitem *it)
{
	switch (it->kind) {
	case Q_RECONNECTED:
		recheck_all(c);
		break;
	case Q_CHECKED:
		px_checked(c, it);
		break;
	case Q_HOME:
		home_msg(c, it->msg);
		break;
	case Q_ACK:
		in_ack(c, it->msg);
		break;
	case Q_JOB:
		in_job(c, it);
		break;
	case Q_PUBACK:
		px_puback(c, it);
		break;
	case Q_EVICTED:
		px_evicted(c, it);
		break;
	}
}

void
nats_tick(struct conn *c)
{
	double now = ev_now(c->g->loop);
	for (struct job *j = c->jobs; j != NULL; j = j->next_all) {
		double aw = (double)j->in->e->chan->ack_wait_ms / 1000.0;
		if (now - j->progress_at >= aw / 3) {
			/* still ours: JetStream must not give it to another */
			natsMsg_InProgress(j->jm, NULL);
			j->progress_at = now;
		}
	}
	for (struct pend *pd = c->pend_all, *next; pd != NULL; pd = next) {
		next = pd->next_all;
		porch_msg *m = pd->m;
		if (m->deadline == 0 || m->deadline + DEADLINE_GRACE_S > now)
			continue;
		porch_stage *st = pd->px->st;
		pend_remove(c, pd);
		porch_fail(st, m, PORCH_ERR_DEADLINE, "no answer over NATS from stage '%s' "
		    "before the request's deadline", st->name);
	}
}
