/*
 * fanout.c -- copies of a request, and the join that takes them back
 * together (porch.xml(5), FAN-OUT AND JOIN).
 *
 * A port whose channels have copy="true" sends each request to all of
 * them as copies.  The request itself waits here, counted once as in
 * flight, held by no stage.  A copy is not a request: it is not counted in
 * the totals, never answers a client and never streams.  It ends one of
 * three ways: a join takes it (porch_join), it ends elsewhere (fails,
 * is shed, reaches a sink: "lost"), or it is cancelled because the join
 * decided without it.  The join decides once every copy has arrived or is
 * lost, at its first arrival (mode first), or at its timeout; then the
 * request takes the answer and leaves the join, or fails out its error
 * port when no copy came.  So a request still ends in exactly one outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "fanout.h"
#include "route.h"
#include "util.h"

/* Copies a fan keeps in itself; a port with more has its arrays allocated. */
#define FAN_INLINE 4

/*
 * What the fan-out and the join read for every request comes first and
 * the arrays of up to FAN_INLINE copies are inside the fan: with a few
 * hundred requests between the fan-out and the join, a fan is cold when
 * the join takes a copy, and each further line or separate array it reads
 * is a cache miss (bench/route).
 */
struct fan {
	struct fan *next;             /* the graph's pool */
	struct graph *g;
	struct porch_msg *m0;         /* the request, waiting; NULL once it left */
	unsigned k;                   /* copies made */
	unsigned live;                /* copies not yet released */
	unsigned arrived, lost;
	unsigned cap;                 /* room in copies, got and chans */
	unsigned char making;         /* inside fanout_emit: no decision yet */
	unsigned char decided;
	unsigned char timed_out;
	unsigned char timing;         /* timer started: stopped when done */
	struct porch_msg **copies;    /* by index, until released */
	struct porch_msg **got;       /* by index: taken by the join */
	struct channel **chans;       /* by index: the channel each copy was sent into */
	struct porch_msg *first;      /* the first to arrive */
	struct porch_stage *join;     /* the join that took a copy */
	/* second line on */
	struct porch_join opts;       /* its way of combining */
	enum porch_error error;       /* the first lost copy's */
	struct porch_msg *copies_in[FAN_INLINE], *got_in[FAN_INLINE];
	struct channel *chans_in[FAN_INLINE];
	/* cold */
	struct fan *all_next;         /* every fan the graph made, to free them */
	ev_timer timer;               /* the join's timeout */
	char error_text[256];         /* set with error (not cleared: cold) */
};

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void drop_copy(struct porch_msg *cp, const char *why);

/* Done with: back to the graph's pool (its arrays kept for the next). */
static void
fan_free_if_done(struct fan *f)
{
	if (f->m0 != NULL || f->live > 0 || f->making)
		return;
	struct graph *g = f->g;
	if (f->timing) {
		ev_timer_stop(g->loop, &f->timer);
		f->timing = 0;
	}
	f->next = g->free_fans;
	g->free_fans = f;
}

/* A fan for k copies, from the pool when there is one. */
static struct fan *
fan_get(struct graph *g, unsigned k)
{
	struct fan *f = g->free_fans;
	if (f != NULL) {
		g->free_fans = f->next;
	} else {
		f = xcalloc_line(sizeof *f);
		ev_init(&f->timer, on_timeout);
		f->timer.data = f;
		f->copies = f->copies_in;
		f->got = f->got_in;
		f->chans = f->chans_in;
		f->cap = FAN_INLINE;
		f->all_next = g->fans;
		g->fans = f;
	}
	if (f->cap < k) {
		if (f->copies == f->copies_in) {
			f->copies = f->got = NULL;
			f->chans = NULL;
		}
		f->copies = xrealloc(f->copies, k * sizeof *f->copies);
		f->got = xrealloc(f->got, k * sizeof *f->got);
		f->chans = xrealloc(f->chans, k * sizeof *f->chans);
		f->cap = k;
	}
	/* copies[i] and chans[i] are set by fanout_emit for every i < k */
	for (unsigned i = 0; i < k; i++)
		f->got[i] = NULL;
	f->g = g;
	f->k = k;
	f->m0 = NULL;
	f->live = f->arrived = f->lost = 0;
	f->first = NULL;
	f->join = NULL;
	f->error = PORCH_ERR_NONE;
	f->making = f->decided = f->timed_out = 0;
	return f;
}

/* A copy is done with: back to the pool. */
static void
copy_release(struct fan *f, struct porch_msg *cp)
{
	struct graph *g = f->g;
	unsigned i = (unsigned)cp->copy - 1;
	f->copies[i] = NULL;
	if (f->got[i] == cp)
		f->got[i] = NULL;
	f->live--;
	if (cp->n_local > 0)
		msg_forget_locals(g, cp);
	msg_release(g, cp);
}

/* The value of key in m as a number, or -inf when unset or not one. */
static double
score(const struct porch_msg *m, const char *key)
{
	const char *v = key != NULL ? porch_msg_meta(m, key) : NULL;
	char *end;
	double d = v != NULL ? strtod(v, &end) : 0;
	if (v == NULL || end == v || *end != '\0')
		return -1e308;
	return d;
}

/*
 * The request leaves the join: with the answer, or failed when none came.
 * sync: inside the join's process callback, where the scheduler times the
 * stage's work itself (no clock read here).
 */
static void
decide(struct fan *f, int sync)
{
	struct graph *g = f->g;
	struct porch_stage *st = f->join;
	struct porch_msg *m0 = f->m0;
	f->decided = 1;
	f->making = 1; /* what ends inside must not free f under us */
	/* active or fired and pending in this iteration: either way its
	 * callback must not run on f, which may be freed before it would */
	if (f->timing) {
		ev_timer_stop(g->loop, &f->timer);
		f->timing = 0;
	}
	/* copies still on their way are not needed any more; one that waits
	 * at the head of the channel it was sent into (the usual case when
	 * the copies go straight to the join) is taken out and let go now,
	 * while it is in cache, rather than marked and met again later */
	/* the others are cold: their lines are fetched together, not one
	 * after the other as the loop below comes to each */
	for (unsigned i = 0; i < f->k; i++)
		if (f->copies[i] != NULL && f->got[i] == NULL)
			__builtin_prefetch(f->copies[i], 1);
	for (unsigned i = 0; i < f->k; i++) {
		struct porch_msg *cp = f->copies[i];
		if (cp == NULL || f->got[i] != NULL)
			continue;
		struct channel *c = f->chans[i];
		if (!cp->cancelled && cp->holder == NULL && c != NULL &&
		    channel_depth(c) > 0 && channel_head(c) == cp) {
			(void)channel_pop(c);
			if (st != NULL)
				st->stats->discarded++;
			copy_release(f, cp);
			graph_wake(g); /* room in c: its producer may go on */
			continue;
		}
		/* one a stage holds may still be read (its holder may finish it
		 * before it learns of the cancel): its own bytes first, as the
		 * request leaves or changes (and before the cancel, which may
		 * end it); one that waits in a channel or an outbox, cancelled,
		 * is dropped unread where it is taken (run_stage) */
		if (cp->holder != NULL || (cp->cancelled && cp->error != PORCH_ERR_CANCELLED))
			msg_unshare(cp);
		if (!cp->cancelled)
			drop_copy(cp, "a join decided without this copy");
	}
	if (m0 == NULL)
		goto release;
	f->m0 = NULL;
	m0->fan = NULL;
	struct porch_msg *win = NULL;
	if (f->arrived > 0) {
		win = f->first;
		if (f->opts.mode == PORCH_JOIN_BEST) {
			for (unsigned i = 0; i < f->k; i++)
				if (f->got[i] != NULL && (win == NULL ||
				    score(f->got[i], f->opts.key) > score(win, f->opts.key)))
					win = f->got[i];
		} else if (f->opts.mode == PORCH_JOIN_ALL) {
			win = NULL; /* the first in channel order leads */
			for (unsigned i = 0; i < f->k && win == NULL; i++)
				win = f->got[i];
		}
	}
	if (win == NULL) {
		enum porch_error e = f->timed_out ? PORCH_ERR_DEADLINE :
		    f->error != PORCH_ERR_NONE ? f->error : PORCH_ERR_INTERNAL;
		if (st == NULL) {
			msg_set_error(m0, e, "every copy failed; the first: %s",
			    f->error != PORCH_ERR_NONE ? f->error_text : "none");
			graph_finish(g, m0, porch_error_outcome(e), NULL);
		} else {
			m0->holder = st;
			st->held++;
			if (f->timed_out)
				porch_fail(st, m0, e, "no copy reached join '%s' within its timeout "
				    "(%lld ms)", st->name, (long long)f->opts.timeout_ms);
			else
				porch_fail(st, m0, e, "no copy reached join '%s'; the first to fail: "
				    "%s", st->name, f->error != PORCH_ERR_NONE ? f->error_text : "none");
		}
		goto release;
	}
	if (f->opts.mode == PORCH_JOIN_ALL) {
		/* the texts in channel order; the metadata of the first of them */
		struct porch_msg *lead = win;
		size_t sep = f->opts.separator != NULL ? strlen(f->opts.separator) : 0;
		for (unsigned i = 0; i < f->k; i++)
			if (f->got[i] != NULL)
				msg_unshare(f->got[i]); /* read as m0 changes */
		porch_msg_set_text(m0, "", 0);
		int n = 0;
		for (unsigned i = 0; i < f->k; i++) {
			struct porch_msg *cp = f->got[i];
			if (cp == NULL)
				continue;
			if (n++ > 0 && sep > 0)
				porch_msg_append_text(m0, f->opts.separator, sep);
			porch_msg_append_text(m0, cp->text ? cp->text : "", cp->text_len);
		}
		/* m0's combined text stays; lead's metadata comes over */
		char *text = m0->text;
		size_t len = m0->text_len, cap = m0->text_cap;
		msg_swap_answer(m0, lead);
		lead->text = m0->text;
		lead->text_len = m0->text_len;
		lead->text_cap = m0->text_cap;
		m0->text = text;
		m0->text_len = len;
		m0->text_cap = cap;
	} else {
		msg_swap_answer(m0, win);
	}
	m0->holder = st;
	st->held++;
	m0->enter_now = ev_now(g->loop);
	if (sync && g->current == NULL)
		g->current = m0; /* timed with the copy that decided it */
	else
		m0->enter_ns = clock_ns();
	porch_emit(st, m0);
release:
	for (unsigned i = 0; i < f->k; i++)
		if (f->got[i] != NULL)
			copy_release(f, f->got[i]);
	f->making = 0;
	fan_free_if_done(f);
}

/*
 * A copy the join no longer needs: marked so that the stage that takes it
 * drops it at once, and its holder told (an inference stage cancels its
 * model call).  No error text is made: a discarded copy is never reported.
 */
static void
drop_copy(struct porch_msg *cp, const char *why)
{
	if (cp->holder == NULL) {
		cp->cancelled = 1;
		cp->error = PORCH_ERR_CANCELLED;
		return;
	}
	porch_msg_cancel(cp, why);
}

static void
maybe_decide(struct fan *f)
{
	if (!f->decided && !f->making && f->arrived + f->lost >= f->k)
		decide(f, 0);
	else
		fan_free_if_done(f);
}

static void
on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct fan *f = w->data;
	if (f->decided)
		return;
	f->timed_out = 1;
	if (f->join != NULL)
		f->join->stats->timeouts++;
	decide(f, 0);
}

int
fanout_emit(struct graph *g, struct porch_stage *st, const struct route *r,
    struct porch_msg *m)
{
	if (m->copy) {
		msg_set_error(m, PORCH_ERR_INTERNAL, "stage '%s' sent a copy to a fan-out: "
		    "fan-outs do not nest (join the copies first)", st->name);
		graph_finish(g, m, PORCH_FAILED, st);
		return PORCH_REFUSED;
	}
	struct fan *f = fan_get(g, (unsigned)r->n);
	f->m0 = m;
	f->making = 1;
	m->fan = f;
	for (size_t i = 0; i < r->n; i++) {
		struct porch_msg *cp = msg_clone(g, m);
		cp->fan = f;
		cp->copy = (uint16_t)(i + 1); /* a port has far fewer channels */
		f->copies[i] = cp;
		f->chans[i] = r->chans[i];
		f->live++;
		/* shed by a full channel: a lost copy (fanout_copy_ended) */
		stage_send(st, r->chans[i], cp);
	}
	f->making = 0;
	maybe_decide(f);
	return PORCH_OK;
}

void
fanout_copy_ended(struct graph *g, struct porch_msg *cp, enum porch_outcome o,
    struct porch_stage *where)
{
	(void)g;
	(void)o;
	(void)where;
	struct fan *f = cp->fan;
	if (f->decided) {
		if (f->join != NULL)
			f->join->stats->discarded++;
	} else {
		f->lost++;
		if (f->error == PORCH_ERR_NONE) {
			f->error = cp->error != PORCH_ERR_NONE ? cp->error : PORCH_ERR_INTERNAL;
			snprintf(f->error_text, sizeof f->error_text, "%s%s%s",
			    porch_error_name(f->error), cp->error_len > 0 ? ": " : "",
			    porch_msg_error_text(cp));
		}
	}
	copy_release(f, cp);
	maybe_decide(f);
}

void
fanout_request_ended(struct graph *g, struct porch_msg *m)
{
	(void)g;
	struct fan *f = m->fan;
	m->fan = NULL;
	f->m0 = NULL;
	int was = f->decided;
	f->decided = 1;
	f->making = 1;
	/* m goes back to the pool: the copies still about read their own */
	for (unsigned i = 0; i < f->k; i++)
		if (f->copies[i] != NULL)
			msg_unshare(f->copies[i]);
	if (!was)
		fanout_cancel(f, "the request ended");
	f->making = 0;
	fan_free_if_done(f);
}

void
fanout_cancel(struct fan *f, const char *why)
{
	for (unsigned i = 0; i < f->k; i++) {
		struct porch_msg *cp = f->copies[i];
		if (cp != NULL && f->got[i] == NULL && !cp->cancelled)
			porch_msg_cancel(cp, why);
	}
}

void
fanout_free_all(struct graph *g)
{
	while (g->fans != NULL) {
		struct fan *f = g->fans;
		g->fans = f->all_next;
		ev_timer_stop(g->loop, &f->timer);
		if (f->copies != f->copies_in) {
			free(f->copies);
			free(f->got);
			free(f->chans);
		}
		free(f);
	}
	g->free_fans = NULL;
}

/* ---- the join's side (ABI 1.4) ------------------------------------------ */

int
porch_msg_copy_index(const porch_msg *m)
{
	return m->copy - 1;
}

void
porch_join(porch_stage *st, porch_msg *m, const struct porch_join *j)
{
	if (!m->copy) {
		porch_emit(st, m); /* porch check lets none come; on, unchanged */
		return;
	}
	struct fan *f = m->fan;
	/* the copy waits here, held by no stage, so that a join never stops
	 * taking the copies it waits for */
	stage_release(st, m);
	if (f->decided || f->m0 == NULL) {
		st->stats->discarded++;
		copy_release(f, m);
		fan_free_if_done(f);
		return;
	}
	unsigned i = (unsigned)m->copy - 1;
	f->got[i] = m;
	f->arrived++;
	if (f->join == NULL) {
		f->join = st;
		f->opts = *j;
		f->first = m;
	}
	if (f->opts.mode == PORCH_JOIN_FIRST || f->arrived + f->lost >= f->k) {
		decide(f, 1);
		return;
	}
	if (f->arrived == 1 && j->timeout_ms > 0) {
		ev_timer_set(&f->timer, (double)j->timeout_ms / 1000.0, 0.);
		ev_timer_start(st->g->loop, &f->timer);
		f->timing = 1;
	}
}
