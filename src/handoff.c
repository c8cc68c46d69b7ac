/*
 * handoff.c -- a request crossing from one shard to another.
 *
 * A source that does not run on every shard (stdin: not
 * PORCH_STAGE_EVERY_SHARD) runs on shard 0, and each request it makes goes
 * to the shard its session hashes to (porch_shard), so one session's
 * requests are taken, in order, by one shard.  The request is copied into
 * a struct handoff (its session, text, metadata, deadline, trace flag,
 * origin data), pushed on the target's bounded queue (ring.h) and the
 * target's loop is woken (ev_async: many pushes, one wake-up).  The
 * target makes it a request of its own copy of the source stage, where it
 * is accepted and counted, so each shard's books balance on their own.
 *
 * A full queue is the channel's overflow policy, never a silent drop:
 * block (the default) keeps the request, and every later one, in order
 * on the producer until the target makes room, and the source waits
 * (porch_stage_ready is 0), as behind a full channel; reject and
 * drop-oldest shed the new request on the producer (an old one cannot be
 * taken back out of another thread's queue), counted as shed and
 * answered.  The target in turn takes from its queue only while its copy
 * of the source has room downstream, so a slow shard's backpressure
 * reaches the source.
 */
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "log.h"
#include "shards.h"
#include "util.h"

struct handoff {
	struct handoff *next;         /* the producer's pending list */
	unsigned dst;                 /* the shard it goes to */
	int port;
	char *stage;                  /* the source stage's name */
	char *session, *text;
	size_t session_len, text_len;
	char **meta;                  /* key, value, ... */
	size_t n_meta;                /* pairs */
	double deadline;              /* loop time: one clock for every loop */
	void *origin_data;
	int traced;
};

void
handoff_free(struct handoff *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n_meta * 2; i++)
		free(h->meta[i]);
	free(h->meta);
	free(h->session);
	free(h->text);
	free(h->stage);
	free(h);
}

static struct handoff *
handoff_new(struct porch_stage *st, int port, const struct porch_msg *m, unsigned dst)
{
	struct handoff *h = xcalloc(1, sizeof *h);
	h->dst = dst;
	h->port = port;
	h->stage = xstrdup(st->name);
	h->session = xstrndup(m->session_len > 0 ? m->session : "", m->session_len);
	h->session_len = m->session_len;
	h->text = xstrndup(m->text != NULL ? m->text : "", m->text_len);
	h->text_len = m->text_len;
	if (m->n_meta > 0) {
		h->meta = xcalloc(m->n_meta * 2, sizeof *h->meta);
		for (size_t i = 0; i < m->n_meta * 2; i++)
			h->meta[i] = xstrdup(m->meta[i]);
		h->n_meta = m->n_meta;
	}
	h->deadline = m->deadline;
	h->origin_data = m->origin_data;
	h->traced = m->traced;
	return h;
}

void
proc_tell(struct proc *p, unsigned i, unsigned cmd)
{
	struct shard *s = &p->shards[i];
	if (cmd != 0)
		atomic_fetch_or(&s->cmds, cmd);
	ev_async_send(s->r.loop, &s->wake_w);
}

void
proc_tell_all(struct proc *p, unsigned cmd)
{
	for (unsigned i = 0; i < p->n; i++)
		proc_tell(p, i, cmd);
}

static void
pending_append(struct shard *s, struct handoff *h)
{
	h->next = NULL;
	if (s->pending_tail != NULL)
		s->pending_tail->next = h;
	else
		s->pending = h;
	s->pending_tail = h;
}

/* Pushes h on its target's queue; -1 when it is full (the target is then
 * told that a producer waits, and wakes it with SHARD_CMD_ROOM). */
static int
push(struct proc *p, struct handoff *h)
{
	struct shard *t = &p->shards[h->dst];
	if (ring_push(&t->inbox, h) != 0) {
		atomic_store(&t->starved, 1);
		/* the target may have emptied its queue before it saw the flag */
		if (ring_push(&t->inbox, h) != 0)
			return -1;
	}
	ev_async_send(t->r.loop, &t->wake_w);
	return 0;
}

int
shard_route(struct porch_stage *st, int port, struct porch_msg *m, unsigned *to)
{
	struct graph *g = st->g;
	struct proc *p = g->led->proc;
	unsigned me = g->led->shard;
	unsigned dst = (unsigned)porch_shard(m->session_len > 0 ? m->session : "",
	    m->session_len, p->n);
	*to = dst;
	if (dst == me)
		return SHARD_HERE;
	struct shard *self = &p->shards[me];
	struct handoff *h = handoff_new(st, port, m, dst);
	if (self->pending == NULL && push(p, h) == 0) {
		msg_release(g, m);
		return PORCH_OK;
	}
	struct channel *c = port >= 0 && port < st->n_ports ? st->outs[port] : NULL;
	if (self->pending != NULL || c == NULL || c->overflow == OVERFLOW_BLOCK) {
		/* in order behind what already waits; the source waits with it */
		pending_append(self, h);
		msg_release(g, m);
		return PORCH_OK;
	}
	handoff_free(h);
	return SHARD_FULL;
}

int
shard_blocked(const struct graph *g)
{
	struct proc *p = g->led->proc;
	return p != NULL && p->shards[g->led->shard].pending != NULL;
}

int
shard_push_pending(struct shard *s)
{
	while (s->pending != NULL) {
		struct handoff *h = s->pending;
		struct handoff *next = h->next;
		if (push(s->p, h) != 0)
			return 0;
		s->pending = next;
		if (next == NULL)
			s->pending_tail = NULL;
	}
	return 1;
}

static struct porch_stage *
find_source(struct graph *g, const char *name)
{
	for (size_t i = 0; i < g->n_stages; i++)
		if (g->stages[i].is_source && strcmp(g->stages[i].name, name) == 0)
			return &g->stages[i];
	return NULL;
}

/* h's request, made again on this shard's copy of its source, emitted. */
static void
deliver(struct graph *g, struct porch_stage *st, struct handoff *h)
{
	struct porch_msg *m = porch_msg_new(st);
	porch_msg_set_session(m, h->session, h->session_len);
	porch_msg_set_text(m, h->text, h->text_len);
	for (size_t i = 0; i < h->n_meta; i++)
		porch_msg_set_meta(m, h->meta[2 * i], h->meta[2 * i + 1]);
	m->deadline = h->deadline;
	msg_rare(m);
	m->origin_data = h->origin_data;
	m->traced = (unsigned char)h->traced;
	(void)g;
	/* the session hashes here: porch_emit_port accepts it on this shard */
	(void)porch_emit_port(st, h->port, m);
}

void
shard_take_inbox(struct shard *s)
{
	struct graph *g = s->r.g;
	struct handoff *h;
	for (;;) {
		h = s->held != NULL ? s->held : ring_pop(&s->inbox);
		if (h == NULL)
			break;
		s->held = NULL;
		struct porch_stage *st = find_source(g, h->stage);
		if (st == NULL) {
			/* a reload took the source away: the request still ends */
			log_warn("shard %u: a request handed over for source '%s', which the "
			    "reloaded pipeline does not have, fails", s->idx, h->stage);
			for (size_t i = 0; i < g->n_stages && st == NULL; i++)
				if (g->stages[i].is_source)
					st = &g->stages[i];
			if (st == NULL) {
				handoff_free(h);
				continue;
			}
			struct porch_msg *m = porch_msg_new(st);
			porch_msg_set_session(m, h->session, h->session_len);
			porch_fail(st, m, PORCH_ERR_UNROUTED, "source '%s' is gone (a reload)",
			    h->stage);
			handoff_free(h);
			continue;
		}
		if (s->aborted) {
			/* past the drain deadline: accepted here, and expired */
			struct porch_msg *m = porch_msg_new(st);
			porch_msg_set_session(m, h->session, h->session_len);
			msg_rare(m);
			m->origin_data = h->origin_data;
			msg_set_error(m, PORCH_ERR_DEADLINE, "the drain deadline passed");
			porch_done(st, m);
			handoff_free(h);
			continue;
		}
		if (stage_room(st) == 0) {
			/* backpressure: the rest waits in the queue, the producers with it */
			s->held = h;
			break;
		}
		deliver(g, st, h);
		handoff_free(h);
	}
	if (atomic_exchange(&s->starved, 0))
		proc_tell_all(s->p, SHARD_CMD_ROOM);
}

void
shard_free_handoffs(struct shard *s)
{
	handoff_free(s->held);
	s->held = NULL;
	struct handoff *h;
	while (s->inbox.cells != NULL && (h = ring_pop(&s->inbox)) != NULL)
		handoff_free(h);
	while ((h = s->pending) != NULL) {
		s->pending = h->next;
		handoff_free(h);
	}
	s->pending_tail = NULL;
	ring_fini(&s->inbox);
}
