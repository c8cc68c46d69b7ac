/*
 * graph.c -- a running pipeline: instantiation, scheduling and routing.
 *
 * Scheduling is batched, not recursive: emitting a message only puts it in
 * a ring.  Once per loop iteration (an ev_check watcher) the scheduler
 * walks the stages in topological order, and each stage takes what its
 * inputs hold, up to its concurrency, so a batch crosses the whole graph in
 * one pass.  An ev_idle watcher is kept active only while there is work the
 * scheduler can do, so the loop never spins on a stage that is waiting.
 *
 * A message held back by a full 'block' channel waits in its producer's
 * outbox; a stage with a non-empty outbox takes no more input, so its own
 * input fills and backpressure travels up to the source, which stops
 * reading (porch_stage_ready returns 0 and resume says when to go on).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "graph.h"
#include "log.h"
#include "pool.h"
#include "fanout.h"
#include "handover.h"
#include "route.h"
#include "shards.h"
#include "shared.h"
#include "util.h"

/* Most messages a stage takes in one pass: bounds the time between polls. */
#define STAGE_BATCH 1024
/* Most passes per loop iteration: the rest waits for the next iteration. */
#define PASSES_MAX 8

static void
on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
	/* nothing: an active idle watcher only keeps ev_run from blocking */
	(void)loop; (void)w; (void)revents;
}

void
graph_wake(struct graph *g)
{
	if (g->woken)
		return;
	g->woken = 1;
	ev_idle_start(g->loop, &g->idle_w);
}

static void
check_finished(struct graph *g)
{
	if (graph_done(g) && g->on_finished != NULL)
		g->on_finished(g, g->on_finished_arg);
}

int
graph_done(const struct graph *g)
{
	return g->sources_left == 0 && g->inflight == 0;
}

/* ---- outcomes ----------------------------------------------------------- */

static void
live_unlink(struct graph *g, struct porch_msg *m)
{
	if (m->prev_live)
		m->prev_live->next_live = m->next_live;
	else
		g->live = m->next_live;
	if (m->next_live)
		m->next_live->prev_live = m->prev_live;
	m->prev_live = m->next_live = NULL;
}

/*
 * A source hands a new request to the graph: from here it is counted.
 * Returns the requests in flight with it, over every shard with threads:
 * each request compares its own place in the count with max-inflight, so
 * two shards accepting at once cannot both take the last place.
 */
static uint64_t
accept(struct graph *g, struct porch_msg *m)
{
	g->led->totals.accepted++;
	g->led->inflight++;
	g->inflight++;
	uint64_t now = g->led->inflight;
	if (g->led->proc != NULL)
		now = (uint64_t)atomic_fetch_add_explicit(&g->led->proc->inflight, 1,
		    memory_order_relaxed) + 1;
	msg_keep_input(m);
	m->next_live = g->live;
	m->prev_live = NULL;
	if (g->live)
		g->live->prev_live = m;
	g->live = m;
	if (log_enabled(PORCH_LOG_DEBUG))
		log_line(PORCH_LOG_DEBUG, m->origin != NULL ? "stage" : NULL,
		    m->origin != NULL ? m->origin->name : NULL, m->id,
		    m->session_len > 0 ? m->session : NULL, "request %llu accepted "
		    "(%zu bytes of text)", (unsigned long long)m->id, m->text_len);
	return now;
}

static int
is_live(const struct graph *g, const struct porch_msg *m)
{
	return m->prev_live != NULL || g->live == m;
}

void
graph_finish(struct graph *g, struct porch_msg *m, enum porch_outcome o,
    struct porch_stage *where)
{
	if (m->copy) {
		/* not a request: its request learns it is lost */
		fanout_copy_ended(g, m, o, where);
		graph_wake(g);
		return;
	}
	if (m->fan != NULL)
		fanout_request_ended(g, m);
	g->led->totals.outcome[o]++;
	if (where != NULL)
		where->stats->outcome[o]++;
	if (m->error != PORCH_ERR_NONE && m->error_stage == NULL) {
		msg_rare(m);
		m->error_stage = where;
	}
	if (is_live(g, m)) {
		live_unlink(g, m);
		g->inflight--;
		g->led->inflight--;
		if (g->led->proc != NULL)
			atomic_fetch_sub_explicit(&g->led->proc->inflight, 1,
			    memory_order_relaxed);
	}
	if (m->n_local > 0)
		msg_forget_locals(g, m);
	if (log_enabled(PORCH_LOG_DEBUG))
		log_line(PORCH_LOG_DEBUG, where != NULL ? "stage" : NULL,
		    where != NULL ? where->name : NULL, m->id,
		    m->session_len > 0 ? m->session : NULL, "request %llu %s%s%s%s%s",
		    (unsigned long long)m->id, porch_outcome_name(o),
		    m->error_stage != NULL && m->error_stage != where ? " in stage " : "",
		    m->error_stage != NULL && m->error_stage != where ? m->error_stage->name : "",
		    m->error_len > 0 ? ": " : "", m->error_len > 0 ? m->error_text : "");
	struct porch_stage *origin = m->origin;
	if (origin != NULL && origin->d->outcome != NULL) {
		struct cb_frame saved = CB_STAGE(origin, "outcome", m->id);
		origin->d->outcome(origin, m, o);
		cb_leave(saved);
	}
	msg_release(g, m);
	graph_wake(g);
	check_finished(g);
}

/* ---- holding and routing ------------------------------------------------ */

static void
trace(struct porch_msg *m, enum porch_event e, const char *stage, const char *detail)
{
	struct porch_stage *origin = m->origin;
	if (m->traced && origin != NULL && origin->d->event != NULL) {
		struct cb_frame saved = CB_STAGE(origin, "event", m->id);
		origin->d->event(origin, m, e, stage, detail);
		cb_leave(saved);
	}
}

void
stage_release(struct porch_stage *st, struct porch_msg *m)
{
	struct graph *g = st->g;
	m->holder = NULL;
	st->held--;
	if (m->traced)
		trace(m, PORCH_EVENT_LEAVE, st->name, "");
	/* a copy's path is never reported (its request's is): not recorded,
	 * which spares a cold line of every copy */
	if (!m->copy && m->n_timings < g->n_stages) {
		struct msg_timing *t = &m->timings[m->n_timings++];
		t->stage = (uint32_t)(st - g->stages);
		t->ms = (float)((ev_now(g->loop) - m->enter_now) * 1000.0);
	}
	if (m == g->current) {
		/* synchronous: the scheduler times the whole batch at once */
		g->current = NULL;
		return;
	}
	hist_record_n(&st->stats->latency, clock_ns() - m->enter_ns, 1);
	graph_wake(g);
}

static void
outbox_append(struct porch_stage *st, struct porch_msg *m, struct channel *c)
{
	msg_rare(m);
	m->pending = c;
	m->next = NULL;
	if (st->outbox_tail)
		st->outbox_tail->next = m;
	else
		st->outbox = m;
	st->outbox_tail = m;
	st->outbox_len++;
}

/* Puts m in c or applies c's overflow policy.  PORCH_REFUSED: m ended. */
static int
push(struct graph *g, struct channel *c, struct porch_msg *m)
{
	if (!channel_full(c)) {
		channel_push(c, m);
		graph_wake(g);
		return PORCH_OK;
	}
	switch (c->overflow) {
	case OVERFLOW_BLOCK:
		c->s->held_back++;
		outbox_append(c->src, m, c);
		return PORCH_OK;
	case OVERFLOW_REJECT:
		c->s->refused_reject++;
		msg_set_error(m, PORCH_ERR_FULL, "channel %s -> %s is full (capacity %u, "
		    "overflow reject)", c->src->name, c->dst->name, c->capacity);
		graph_finish(g, m, PORCH_SHED, c->dst);
		return PORCH_REFUSED;
	case OVERFLOW_DROP_OLDEST: {
		struct porch_msg *old = channel_pop(c);
		c->s->refused_drop_oldest++;
		msg_set_error(old, PORCH_ERR_FULL, "channel %s -> %s is full (capacity %u, "
		    "overflow drop-oldest): the oldest waiting request was dropped",
		    c->src->name, c->dst->name, c->capacity);
		graph_finish(g, old, PORCH_SHED, c->dst);
		channel_push(c, m);
		return PORCH_OK;
	}
	}
	return PORCH_OK;
}

/* Moves held-back messages on while their channels have room. */
static size_t
flush_outbox(struct porch_stage *st)
{
	size_t moved = 0;
	while (st->outbox != NULL) {
		struct porch_msg *m = st->outbox;
		struct channel *c = m->pending;
		if (channel_full(c) && c->overflow == OVERFLOW_BLOCK)
			break;
		st->outbox = m->next;
		if (st->outbox == NULL)
			st->outbox_tail = NULL;
		st->outbox_len--;
		m->pending = NULL;
		m->next = NULL;
		push(st->g, c, m);
		moved++;
	}
	return moved;
}

int
stage_send(struct porch_stage *st, struct channel *c, struct porch_msg *m)
{
	if (st->outbox != NULL) {
		outbox_append(st, m, c);
		return PORCH_OK;
	}
	return push(st->g, c, m);
}

/*
 * A port whose channels carry conditions: the first that holds takes m.
 * When none does, m fails (unrouted) and goes out the error port, if it
 * has a channel, never dropped in silence.
 */
static int
emit_routed(struct graph *g, struct porch_stage *st, int port, struct porch_msg *m)
{
	if (st->routes[port]->copies)
		return fanout_emit(g, st, st->routes[port], m);
	struct channel *c = route_pick(st->routes[port], m);
	int err_port = st->n_ports - 1;
	if (c == NULL) {
		msg_set_error(m, PORCH_ERR_UNROUTED, "no channel from port '%s:%s' has a "
		    "condition that holds for this request", st->name,
		    plugin_port_name(st->cfg->plugin, port));
		if (port == err_port || st->outs[err_port] == NULL) {
			graph_finish(g, m, PORCH_FAILED, st);
			return PORCH_REFUSED;
		}
		if (st->routes[err_port] != NULL &&
		    (c = route_pick(st->routes[err_port], m)) == NULL) {
			graph_finish(g, m, PORCH_FAILED, st);
			return PORCH_REFUSED;
		}
		if (c == NULL)
			c = st->outs[err_port];
	}
	if (st->outbox != NULL) {
		outbox_append(st, m, c);
		return PORCH_OK;
	}
	return push(g, c, m);
}

int
porch_emit_port(porch_stage *st, int port, porch_msg *m)
{
	struct graph *g = st->g;
	if (m->holder == st) {
		stage_release(st, m);
	} else if (!is_live(g, m)) {
		/* a source's new request: with threads, on the shard its session
		 * hashes to, unless the source runs on every shard (shards.h) */
		unsigned to = 0;
		int routed = g->led->proc != NULL && st->is_source &&
		    !(st->d->flags & PORCH_STAGE_EVERY_SHARD) ?
		    shard_route(st, port, m, &to) : SHARD_HERE;
		if (routed == PORCH_OK)
			return PORCH_OK;
		uint64_t place = accept(g, m);
		if (routed == SHARD_FULL) {
			st->stats->out++;
			msg_set_error(m, PORCH_ERR_FULL, "the hand-off queue to shard %u is full "
			    "(%d requests; overflow reject)", to, SHARD_INBOX);
			graph_finish(g, m, PORCH_SHED, st);
			return PORCH_REFUSED;
		}
		if (place > g->max_inflight) {
			st->stats->out++;
			msg_set_error(m, PORCH_ERR_ADMISSION, "pipeline '%s' has %llu requests "
			    "in flight (max-inflight)", g->cfg->name,
			    (unsigned long long)g->max_inflight);
			graph_finish(g, m, PORCH_SHED, st);
			return PORCH_REFUSED;
		}
	}
	st->stats->out++;
	if (port >= 0 && port < st->n_ports && st->routes != NULL && st->routes[port] != NULL)
		return emit_routed(g, st, port, m);
	if (port < 0 || port >= st->n_ports || st->outs[port] == NULL) {
		if (port != st->n_ports - 1 || m->error == PORCH_ERR_NONE)
			msg_set_error(m, PORCH_ERR_UNROUTED, "stage '%s' sent a message to "
			    "port %d, which has no channel", st->name, port);
		graph_finish(g, m, PORCH_FAILED, st);
		return PORCH_REFUSED;
	}
	struct channel *c = st->outs[port];
	if (st->outbox != NULL) {
		/* keep order behind what is already held back */
		outbox_append(st, m, c);
		return PORCH_OK;
	}
	return push(g, c, m);
}

int
porch_emit(porch_stage *st, porch_msg *m)
{
	return porch_emit_port(st, 0, m);
}

void
porch_done(porch_stage *st, porch_msg *m)
{
	struct graph *g = st->g;
	if (m->holder == st)
		stage_release(st, m);
	else if (!is_live(g, m))
		accept(g, m);
	graph_finish(g, m, porch_error_outcome(m->error), st);
}

enum porch_outcome
porch_error_outcome(enum porch_error e)
{
	switch (e) {
	case PORCH_ERR_NONE:
		return PORCH_COMPLETED;
	case PORCH_ERR_DEADLINE:
		return PORCH_EXPIRED;
	case PORCH_ERR_FULL:
	case PORCH_ERR_ADMISSION:
		return PORCH_SHED;
	default:
		return PORCH_FAILED;
	}
}

int
porch_stream(porch_stage *st, porch_msg *m, const char *text, size_t len)
{
	return porch_stream_piece(st, m, text, len, NULL);
}

int
porch_stream_piece(porch_stage *st, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	struct channel *c = st->n_ports > 1 ? st->outs[0] : NULL;
	/* a routed port: where the message goes is known only when it is
	 * emitted, with what it has then, so its answer comes whole */
	if (c == NULL || (st->routes != NULL && st->routes[0] != NULL) || m->copy)
		return -1; /* a copy never streams: only its request answers */
	struct porch_stage *dst = c->dst;
	if (dst->d->piece != NULL) {
		struct cb_frame saved = CB_STAGE(dst, "piece", m->id);
		dst->d->piece(dst, m, text, len, pc);
		cb_leave(saved);
		return 0;
	}
	if (dst->d->chunk == NULL)
		return -1;
	/* a stage built before pieces: the text goes on, the extras stay in
	 * the answer's metadata, which the end of the stream brings */
	if (len > 0) {
		struct cb_frame saved = CB_STAGE(dst, "chunk", m->id);
		dst->d->chunk(dst, m, text, len);
		cb_leave(saved);
	}
	return 0;
}

int
porch_stage_answers_edited(const porch_stage *st)
{
	return st->answers_edited;
}

static void end_or_route(struct porch_stage *st, struct porch_msg *m);

void
porch_fail(porch_stage *st, porch_msg *m, enum porch_error why, const char *fmt, ...)
{
	struct graph *g = st->g;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	msg_set_error(m, why == PORCH_ERR_NONE ? PORCH_ERR_INTERNAL : why, "%s", text);
	msg_rare(m);
	m->error_stage = st;
	if (!is_live(g, m) && m->holder != st)
		accept(g, m);
	end_or_route(st, m);
}

/*
 * A request with an error leaves by st's error port when it has a channel
 * (e.g. to a dead-letter sink, where it ends as its error says), else it
 * ends here.
 */
static void
end_or_route(struct porch_stage *st, struct porch_msg *m)
{
	int error_port = st->n_ports - 1;
	if (st->outs[error_port] != NULL) {
		porch_emit_port(st, error_port, m);
		return;
	}
	if (m->holder == st)
		stage_release(st, m);
	graph_finish(st->g, m, porch_error_outcome(m->error), st);
}

/* ---- the scheduler ------------------------------------------------------ */

static struct porch_msg *
next_input(struct porch_stage *st)
{
	for (size_t k = 0; k < st->n_inputs; k++) {
		struct channel *c = st->inputs[st->next_input];
		if (st->n_inputs > 1)
			st->next_input = (st->next_input + 1) % st->n_inputs;
		struct porch_msg *m = channel_pop(c);
		if (m != NULL) {
			/* the next one in c is cold (a channel holds hundreds):
			 * its first line is fetched while this one is worked on */
			if (c->head != c->tail)
				__builtin_prefetch(channel_head(c), 1);
			return m;
		}
	}
	return NULL;
}

size_t
porch_stage_ready(const porch_stage *cst)
{
	porch_stage *st = (porch_stage *)cst;
	if (st->finished)
		return 0;
	size_t room = stage_room(st);
	if (room == 0)
		st->wants_resume = 1;
	return room;
}

size_t
stage_room(const struct porch_stage *st)
{
	const struct graph *g = st->g;
	uint64_t inflight = inflight_all(g);
	size_t room = inflight < g->max_inflight ? (size_t)(g->max_inflight - inflight) : 0;
	if (st->outbox != NULL || shard_blocked(g))
		room = 0;
	for (int p = 0; p < st->n_ports - 1 && room > 0; p++) {
		const struct route *r = st->routes != NULL ? st->routes[p] : NULL;
		/* a route: any of its channels may be the one, so the least room */
		for (size_t k = 0; k < (r != NULL ? r->n : 1); k++) {
			struct channel *c = r != NULL ? r->chans[k] : st->outs[p];
			if (c == NULL || c->overflow != OVERFLOW_BLOCK)
				continue;
			size_t free_slots = channel_depth(c) < c->capacity ?
			    c->capacity - channel_depth(c) : 0;
			if (free_slots < room)
				room = free_slots;
		}
	}
	return room;
}

static size_t
run_stage(struct graph *g, struct porch_stage *st)
{
	size_t progress = 0;
	if (st->outbox != NULL)
		progress += flush_outbox(st);
	if (st->is_source) {
		if (st->wants_resume && !st->finished && porch_stage_ready(st) > 0) {
			st->wants_resume = 0;
			if (st->d->resume) {
				struct cb_frame saved = CB_STAGE(st, "resume", 0);
				st->d->resume(st);
				cb_leave(saved);
			}
			progress++;
		}
		return progress;
	}
	if (st->outbox != NULL)
		return progress;

	/* a full stage takes nothing, but a cancelled request at the head of
	 * an input ends there now: its origin (a closed connection, DELETE
	 * /v1/tasks/ID) is not kept waiting for the stage to have room */
	if (st->held >= st->concurrency) {
		for (size_t k = 0; k < st->n_inputs; k++) {
			struct channel *c = st->inputs[k];
			struct porch_msg *m;
			while (c->head != c->tail && (m = c->ring[c->head & c->mask])->cancelled &&
			    m->error == PORCH_ERR_CANCELLED) {
				(void)channel_pop(c);
				progress++;
				graph_finish(g, m, PORCH_FAILED, st);
			}
		}
	}

	uint64_t t0 = 0, sync_n = 0;
	int budget = STAGE_BATCH;
	while (st->held < st->concurrency && budget-- > 0) {
		struct porch_msg *m = next_input(st);
		if (m == NULL)
			break;
		if (t0 == 0)
			t0 = clock_ns();
		progress++;
		if (m->cancelled && m->error == PORCH_ERR_CANCELLED) {
			/* its client has gone: no work for it */
			graph_finish(g, m, PORCH_FAILED, st);
			continue;
		}
		/* a failed request on its way to a dead-letter sink has no
		 * deadline left to keep: it has ended in all but the counting */
		if (m->deadline != 0 && m->error == PORCH_ERR_NONE &&
		    m->deadline < ev_now(g->loop)) {
			msg_set_error(m, PORCH_ERR_DEADLINE, "the deadline passed before stage "
			    "'%s' took the request", st->name);
			msg_rare(m);
			m->error_stage = st;
			/* like the stage's own failures, so a dead-letter sink sees
			 * every request that ended */
			end_or_route(st, m);
			continue;
		}
		st->stats->in++;
		m->holder = st;
		m->enter_ns = t0;
		if (!m->copy) /* for its timings, which a copy has not */
			m->enter_now = ev_now(g->loop);
		st->held++;
		if (m->traced)
			trace(m, PORCH_EVENT_ENTER, st->name, "");
		g->current = m;
		struct cb_frame saved = CB_STAGE(st, "process", m->id);
		st->d->process(st, m);
		cb_leave(saved);
		if (g->current == NULL)
			sync_n++;
		g->current = NULL;
		if (st->outbox != NULL)
			break;
	}
	if (sync_n > 0)
		hist_record_n(&st->stats->latency, (clock_ns() - t0) / sync_n, sync_n);
	return progress;
}

/* Is there anything the scheduler could do right now? */
static int
work_pending(struct graph *g)
{
	for (size_t i = 0; i < g->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		if (st->outbox != NULL) {
			struct channel *c = st->outbox->pending;
			if (!channel_full(c) || c->overflow != OVERFLOW_BLOCK)
				return 1;
			continue;
		}
		if (st->is_source) {
			if (st->wants_resume && !st->finished && porch_stage_ready(st) > 0)
				return 1;
			continue;
		}
		if (st->held >= st->concurrency)
			continue;
		for (size_t k = 0; k < st->n_inputs; k++)
			if (channel_depth(st->inputs[k]) > 0)
				return 1;
	}
	return 0;
}

static void
on_check(struct ev_loop *loop, ev_check *w, int revents)
{
	(void)loop; (void)revents;
	struct graph *g = w->data;
	g->woken = 1; /* graph_wake is a no-op while we run */
	for (int pass = 0; pass < PASSES_MAX; pass++) {
		size_t progress = 0;
		for (size_t i = 0; i < g->n_stages; i++)
			progress += run_stage(g, g->order[i]);
		if (progress == 0)
			break;
	}
	/* hand-offs waiting for this shard's copy of their source to have room */
	struct proc *p = g->led->proc;
	if (p != NULL && p->shards[g->led->shard].held != NULL &&
	    p->shards[g->led->shard].r.g == g)
		shard_take_inbox(&p->shards[g->led->shard]);
	if (work_pending(g)) {
		ev_idle_start(g->loop, &g->idle_w);
		g->woken = 1;
	} else {
		ev_idle_stop(g->loop, &g->idle_w);
		g->woken = 0;
	}
}

/* ---- building and running ---------------------------------------------- */

/*
 * Sets each stage's answers_edited (porch_stage_answers_edited), walking
 * the stages backwards in topological order: a stage edits downstream when
 * it or a stage after it edits text, and answers are edited from it when a
 * stage calling a worker, at it or after it, has an editing stage after it.
 */
static void
mark_answers_edited(struct graph *g)
{
	unsigned char *edits = xcalloc(g->n_stages, 1);
	for (size_t k = g->n_stages; k-- > 0;) {
		struct porch_stage *st = g->order[k];
		size_t i = (size_t)(st - g->stages);
		int after_edits = 0, after_edited = 0;
		for (int p = 0; p < st->n_ports; p++) {
			struct channel *c = st->outs[p];
			if (c == NULL)
				continue;
			after_edits |= edits[c->dst - g->stages];
			after_edited |= c->dst->answers_edited;
		}
		edits[i] = after_edits || (st->d->flags & PORCH_STAGE_EDITS_TEXT) != 0;
		st->answers_edited = after_edited ||
		    ((st->d->flags & PORCH_STAGE_NEEDS_WORKER) != 0 && after_edits);
	}
	free(edits);
}

/*
 * The loop's lag: a timer, every LAG_PERIOD seconds, records how late it
 * runs (the wall clock when it runs minus when it was due) in g->loop_lag.
 * A callback that holds the loop shows as lag: /metrics has it as
 * porch_loop_lag_seconds, the stats as "loop lag".  It wakes an idle
 * process 4 times a second and does not keep the loop alive.
 */
#define LAG_PERIOD 0.25

static void
lag_arm(struct graph *g)
{
	ev_timer_set(&g->lag_w, LAG_PERIOD, 0.);
	ev_timer_start(g->loop, &g->lag_w);
	ev_unref(g->loop);
	/* libev counts from ev_now, as the timer does */
	g->lag_due = ev_now(g->loop) + LAG_PERIOD;
}

static void
on_lag(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct graph *g = w->data;
	(void)revents;
	ev_tstamp late = ev_time() - g->lag_due;
	hist_record_n(&g->led->loop_lag, late > 0 ? (uint64_t)(late * 1e9) : 0, 1);
	/* it stopped when it fired, taking back the reference lag_arm gave up */
	ev_ref(loop);
	lag_arm(g);
}

struct graph *
graph_new(struct cfg_pipeline *cfg, struct ev_loop *loop, struct ledger *led, char *err,
    size_t errlen)
{
	struct graph *g = xcalloc(1, sizeof *g);
	g->loop = loop;
	g->led = led != NULL ? ledger_ref(led) : ledger_new();
	g->cfg = cfg;
	g->max_inflight = (uint64_t)cfg->max_inflight;
	/* ids: 1, 2, 3 ... alone; with N shards shard K's are K + N, K + 2N ... */
	g->id_step = g->led->n_shards > 1 ? g->led->n_shards : 1;
	g->id_base = g->led->n_shards > 1 ? g->led->shard : 0;

	g->n_workers = cfg->n_workers;
	g->workers = xcalloc(cfg->n_workers, sizeof *g->workers);
	for (size_t i = 0; i < cfg->n_workers; i++) {
		struct porch_worker *w = &g->workers[i];
		w->g = g;
		w->cfg = &cfg->workers[i];
		w->d = &cfg->workers[i].plugin->desc;
		w->name = cfg->workers[i].name;
		w->stats = ledger_slot(g->led, LEDGER_WORKER, w->name);
	}
	g->n_stages = cfg->n_stages;
	g->stages = xcalloc(cfg->n_stages, sizeof *g->stages);
	for (size_t i = 0; i < cfg->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		const struct cfg_stage *cs = &cfg->stages[i];
		st->g = g;
		st->cfg = cs;
		st->d = &cs->plugin->desc;
		st->name = cs->name;
		st->stats = ledger_slot(g->led, LEDGER_STAGE, st->name);
		st->concurrency = (unsigned)cs->concurrency;
		st->is_source = (st->d->flags & PORCH_STAGE_SOURCE) != 0;
		st->n_ports = cs->plugin->n_outputs + 1;
		st->outs = xcalloc((size_t)st->n_ports, sizeof *st->outs);
		if (cs->worker != NULL)
			st->worker = &g->workers[cs->worker - cfg->workers];
		if (st->is_source)
			g->sources_left++;
	}
	pools_new(g);
	g->n_channels = cfg->n_channels;
	g->channels = xcalloc(cfg->n_channels, sizeof *g->channels);
	for (size_t i = 0; i < cfg->n_channels; i++) {
		const struct cfg_channel *cc = &cfg->channels[i];
		struct channel *c = &g->channels[i];
		channel_init(c, (uint32_t)cc->capacity, cc->overflow);
		c->cfg = cc;
		c->src = &g->stages[cc->src - cfg->stages];
		c->dst = &g->stages[cc->dst - cfg->stages];
		c->port = cc->port_index;
		char key[512];
		snprintf(key, sizeof key, "%s:%s>%s", c->src->name,
		    plugin_port_name(c->src->cfg->plugin, c->port), c->dst->name);
		c->s = ledger_slot(g->led, LEDGER_CHANNEL, key);
		if (c->src->outs[c->port] == NULL)
			c->src->outs[c->port] = c; /* a route's first, for the room count */
		if (cc->routed) {
			if (c->src->routes == NULL)
				c->src->routes = xcalloc((size_t)c->src->n_ports, sizeof *c->src->routes);
			if (c->src->routes[c->port] == NULL)
				c->src->routes[c->port] = xcalloc(1, sizeof(struct route));
			route_add(c->src->routes[c->port], c, cc->otherwise ? NULL : cc->cond);
		} else if (cc->copy) {
			if (c->src->routes == NULL)
				c->src->routes = xcalloc((size_t)c->src->n_ports, sizeof *c->src->routes);
			if (c->src->routes[c->port] == NULL)
				c->src->routes[c->port] = xcalloc(1, sizeof(struct route));
			c->src->routes[c->port]->copies = 1;
			route_add(c->src->routes[c->port], c, NULL);
		}
		c->dst->inputs = xrealloc(c->dst->inputs, (c->dst->n_inputs + 1) * sizeof(void *));
		c->dst->inputs[c->dst->n_inputs++] = c;
	}
	g->order = xcalloc(cfg->n_stages, sizeof *g->order);
	for (size_t i = 0; i < cfg->n_stages; i++)
		g->order[i] = &g->stages[cfg->order[i]];
	mark_answers_edited(g);

	ev_check_init(&g->check_w, on_check);
	g->check_w.data = g;
	ev_idle_init(&g->idle_w, on_idle);
	ev_init(&g->lag_w, on_lag);
	g->lag_w.data = g;
	g->idle_w.data = g;

	for (size_t i = 0; i < g->n_workers; i++) {
		struct porch_worker *w = &g->workers[i];
		if (w->d->worker_init == NULL) {
			w->inited = 1;
			continue;
		}
		struct cb_frame saved = CB_WORKER(w, "worker_init", 0);
		int rc = w->d->worker_init(w);
		cb_leave(saved);
		if (rc != 0) {
			snprintf(err, errlen, "worker '%s' (plugin %s, %s): init failed: %s",
			    w->name, w->d->name, w->cfg->plugin->path,
			    w->init_error[0] ? w->init_error : "no reason given");
			graph_free(g);
			return NULL;
		}
		w->inited = 1;
	}
	for (size_t i = 0; i < g->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		if (st->d->init == NULL) {
			st->inited = 1;
			continue;
		}
		struct cb_frame saved = CB_STAGE(st, "init", 0);
		int rc = st->d->init(st);
		cb_leave(saved);
		if (rc != 0) {
			snprintf(err, errlen, "stage '%s' (plugin %s, %s): init failed: %s",
			    st->name, st->d->name, st->cfg->plugin->path,
			    st->init_error[0] ? st->init_error : "no reason given");
			graph_free(g);
			return NULL;
		}
		st->inited = 1;
	}
	return g;
}

void
graph_start(struct graph *g)
{
	ev_now_update(g->loop);
	g->started = ev_now(g->loop);
	if (g->led->started == 0)
		g->led->started = g->started;
	ev_check_start(g->loop, &g->check_w);
	/* the scheduler's watchers alone must not keep the loop alive */
	ev_unref(g->loop);
	lag_arm(g);
	pools_start(g);
	for (size_t i = 0; i < g->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		if (st->is_source && g->led->shard > 0 &&
		    !(st->d->flags & PORCH_STAGE_EVERY_SHARD)) {
			/* it runs on shard 0, which hands this shard its sessions'
			 * requests: this copy only gives them their origin */
			porch_stage_finished(st);
			continue;
		}
		if (st->d->start) {
			struct cb_frame saved = CB_STAGE(st, "start", 0);
			st->d->start(st);
			cb_leave(saved);
		}
	}
	graph_wake(g);
	check_finished(g);
}

/* A source stops taking requests (its drain callback) and is finished. */
static void
drain_source(struct porch_stage *st)
{
	if (st->d->drain) {
		struct cb_frame saved = CB_STAGE(st, "drain", 0);
		st->d->drain(st);
		cb_leave(saved);
	}
	porch_stage_finished(st);
}

void
graph_drain(struct graph *g)
{
	g->draining = 1;
	for (size_t i = 0; i < g->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		if (st->is_source && !st->finished)
			drain_source(st);
	}
	check_finished(g);
}

/*
 * A reload replaced g (the ledger's current graph is the new one): its
 * sources stop taking requests, handing idle connections over where they
 * can (retire), or drain when they cannot; what g holds finishes on it.
 */
void
graph_retire(struct graph *g)
{
	g->retired = 1;
	for (size_t i = 0; i < g->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		if (!st->is_source || st->finished)
			continue;
		if (st->d->retire != NULL) {
			struct cb_frame saved = CB_STAGE(st, "retire", 0);
			st->d->retire(st);
			cb_leave(saved);
			continue;
		}
		drain_source(st);
	}
	check_finished(g);
}

void
graph_abort(struct graph *g, const char *why)
{
	g->aborted = 1;
	/* stages may still point at these, so they are not recycled: graph_free
	 * frees them after every plugin's fini */
	for (struct porch_msg *m = g->live; m != NULL; m = m->next_live) {
		if (m->fan != NULL)
			fanout_request_ended(g, m);
		msg_set_error(m, PORCH_ERR_DEADLINE, "%s", why);
		if (m->n_local > 0)
			msg_forget_locals(g, m);
		g->led->totals.outcome[PORCH_EXPIRED]++;
		if (m->holder != NULL)
			m->holder->stats->outcome[PORCH_EXPIRED]++;
		if (m->origin != NULL && m->origin->d->outcome != NULL) {
			struct cb_frame saved = CB_STAGE(m->origin, "outcome", m->id);
			m->origin->d->outcome(m->origin, m, PORCH_EXPIRED);
			cb_leave(saved);
		}
	}
	g->led->inflight -= g->inflight;
	if (g->led->proc != NULL)
		atomic_fetch_sub_explicit(&g->led->proc->inflight, g->inflight,
		    memory_order_relaxed);
	g->inflight = 0;
	check_finished(g);
}

void
graph_free(struct graph *g)
{
	if (g == NULL)
		return;
	if (ev_is_active(&g->check_w)) {
		ev_ref(g->loop);
		ev_check_stop(g->loop, &g->check_w);
	}
	ev_idle_stop(g->loop, &g->idle_w);
	/* fired and not yet run counts too: its callback, still pending in
	 * this loop iteration, would run on g after it is freed (a reload's
	 * reap and the lag timer due in the same iteration); and it gave its
	 * reference back when it fired, as when it is stopped */
	if (ev_is_active(&g->lag_w) || ev_is_pending(&g->lag_w)) {
		ev_ref(g->loop);
		ev_timer_stop(g->loop, &g->lag_w);
	}
	for (size_t i = 0; i < g->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		if (st->inited && st->d->fini) {
			struct cb_frame saved = CB_STAGE(st, "fini", 0);
			st->d->fini(st);
			cb_leave(saved);
		}
	}
	/* listeners a stage kept and did not let go of */
	handover_release_graph(g);
	/* shared state its stages took (after their fini: they may read it) */
	shared_release_graph(g);
	for (size_t i = 0; i < g->n_workers; i++) {
		struct porch_worker *w = &g->workers[i];
		if (w->inited && w->d->worker_fini) {
			struct cb_frame saved = CB_WORKER(w, "worker_fini", 0);
			w->d->worker_fini(w);
			cb_leave(saved);
		}
		worker_free_calls(w);
	}
	pools_free(g);
	for (size_t i = 0; i < g->n_stages; i++) {
		struct porch_stage *st = &g->stages[i];
		for (int p = 0; st->routes != NULL && p < st->n_ports; p++) {
			if (st->routes[p] != NULL)
				route_fini(st->routes[p]);
			free(st->routes[p]);
		}
		free(st->routes);
		free(st->outs);
		free(st->inputs);
	}
	for (size_t i = 0; i < g->n_channels; i++)
		channel_fini(&g->channels[i]);
	fanout_free_all(g);
	/* messages still in rings or outboxes are on the live list */
	msg_free_all(g);
	free(g->stages);
	free(g->workers);
	free(g->channels);
	free(g->order);
	ledger_unref(g->led);
	free(g);
}

/* ---- stage accessors ---------------------------------------------------- */

const char *
porch_stage_name(const porch_stage *st)
{
	return st->name;
}

const porch_params *
porch_stage_params(const porch_stage *st)
{
	return st->cfg->parsed;
}

struct ev_loop *
porch_stage_loop(const porch_stage *st)
{
	return st->g->loop;
}

void *
porch_stage_data(const porch_stage *st)
{
	return st->data;
}

void
porch_stage_set_data(porch_stage *st, void *data)
{
	st->data = data;
}

int
porch_stage_port(const porch_stage *st, const char *port)
{
	return plugin_port_index(st->cfg->plugin, port);
}

void
porch_stage_finished(porch_stage *st)
{
	if (!st->is_source || st->finished)
		return;
	st->finished = 1;
	st->wants_resume = 0;
	st->g->sources_left--;
	check_finished(st->g);
}

porch_msg *
porch_msg_new(porch_stage *source)
{
	struct porch_msg *m = msg_alloc(source->g);
	m->origin = source;
	return m;
}

void
porch_stage_error(porch_stage *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->init_error, sizeof st->init_error, fmt, ap);
	va_end(ap);
}

/* ---- ABI 1.2 ------------------------------------------------------------ */

void
porch_msg_cancel(porch_msg *m, const char *why)
{
	if (m->origin == NULL || m->cancelled || (!m->copy && !is_live(m->origin->g, m)))
		return;
	struct graph *g = m->origin->g;
	m->cancelled = 1;
	/* an error it already has (on its way to a dead-letter sink) stays */
	if (m->error == PORCH_ERR_NONE)
		msg_set_error(m, PORCH_ERR_CANCELLED, "%s", why && *why ? why :
		    "cancelled by its origin");
	struct porch_stage *holder = m->holder;
	if (holder != NULL && holder->d->cancel_msg != NULL) {
		struct cb_frame saved = CB_STAGE(holder, "cancel_msg", m->id);
		holder->d->cancel_msg(holder, m); /* m may have ended: not touched again */
		cb_leave(saved);
	} else if (m->fan != NULL && !m->copy) {
		/* a request waiting for its copies: they go, and it fails with them */
		fanout_cancel(m->fan, why);
	}
	graph_wake(g);
}

int
porch_msg_cancelled(const porch_msg *m)
{
	return m->cancelled;
}

const char *
porch_event_name(enum porch_event e)
{
	switch (e) {
	case PORCH_EVENT_ENTER: return "enter";
	case PORCH_EVENT_LEAVE: return "leave";
	case PORCH_EVENT_RETRY: return "retry";
	case PORCH_EVENT_FALLBACK: return "fallback";
	}
	return "unknown";
}

void
porch_msg_set_traced(porch_msg *m, int traced)
{
	m->traced = traced != 0;
}

void
porch_msg_event(porch_stage *st, porch_msg *m, enum porch_event e, const char *fmt, ...)
{
	if (!m->traced)
		return;
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	trace(m, e, st->name, detail);
}

void
porch_msg_log(const porch_stage *st, const porch_msg *m, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	const char *rid = porch_msg_meta(m, "request-id");
	const char *session = porch_msg_session(m);
	char ids[512];
	if (*session && rid != NULL)
		snprintf(ids, sizeof ids, " (session %s, request-id %s)", session, rid);
	else if (*session)
		snprintf(ids, sizeof ids, " (session %s)", session);
	else if (rid != NULL)
		snprintf(ids, sizeof ids, " (request-id %s)", rid);
	else
		ids[0] = '\0';
	log_line(PORCH_LOG_INFO, "stage", st->name, m->id, session, "request %llu%s: %s",
	    (unsigned long long)m->id, ids, buf);
}

const char *
porch_version(void)
{
	return PACKAGE_VERSION;
}

porch_worker *
porch_stage_pipeline_worker(const porch_stage *st, size_t i)
{
	return i < st->g->n_workers ? &st->g->workers[i] : NULL;
}

const char *
porch_worker_model(const porch_worker *w)
{
	const struct porch_param *t = w->d->params;
	for (size_t i = 0; t != NULL && t[i].name != NULL; i++) {
		if (strcmp(t[i].name, "model") == 0) {
			const char *model = porch_param_str(w->cfg->parsed, "model");
			if (model != NULL && *model)
				return model;
		}
	}
	return w->name;
}

uint64_t
porch_stage_inflight(const porch_stage *st, uint64_t *max)
{
	if (max != NULL)
		*max = st->g->max_inflight;
	return inflight_all(st->g);
}

/* ---- a plugin's own counters -------------------------------------------- */

static int
event_name_ok(const char *name)
{
	if (name == NULL || !(*name >= 'a' && *name <= 'z'))
		return 0;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	return 1;
}

void
porch_stage_count(porch_stage *st, const char *name, uint64_t n)
{
	if (event_name_ok(name))
		ledger_count(&st->stats->events, name, n);
}

void
porch_worker_count(porch_worker *w, const char *name, uint64_t n)
{
	if (event_name_ok(name))
		ledger_count(&w->stats->events, name, n);
}

int
porch_stage_port_used(const porch_stage *st, int port)
{
	return port >= 0 && port < st->n_ports && st->outs[port] != NULL;
}

unsigned
porch_stage_shard(const porch_stage *st, unsigned *shards)
{
	const struct ledger *l = st->g->led;
	if (shards != NULL)
		*shards = l->n_shards > 1 ? l->n_shards : 1;
	return l->shard;
}
