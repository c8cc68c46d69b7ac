/*
 * ledger.c -- counters that outlive the graphs counting into them.
 *
 * Slots are found by a linear search when a graph is built, never per
 * message: a graph keeps the pointers it was given.
 */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "util.h"

struct ledger_slot {
	struct ledger_slot *next;
	enum ledger_kind kind;
	char *name;
	union {
		struct stage_stats stage;
		struct worker_stats worker;
		struct channel_stats channel;
		struct replica_stats replica;
		struct pool_stats pool;
	} u;
};

struct ledger *
ledger_new(void)
{
	struct ledger *l = xcalloc(1, sizeof *l);
	l->refs = 1;
	return l;
}

struct ledger *
ledger_ref(struct ledger *l)
{
	l->refs++;
	return l;
}

void
ledger_unref(struct ledger *l)
{
	if (l == NULL || --l->refs > 0)
		return;
	for (struct ledger_slot *s = l->slots, *next; s != NULL; s = next) {
		next = s->next;
		struct event_count *e = s->kind == LEDGER_STAGE ? s->u.stage.events :
		    s->kind == LEDGER_WORKER ? s->u.worker.events : NULL;
		while (e != NULL) {
			struct event_count *en = e->next;
			free(e->name);
			free(e);
			e = en;
		}
		free(s->name);
		free(s);
	}
	free(l);
}

void *
ledger_slot(struct ledger *l, enum ledger_kind kind, const char *name)
{
	struct ledger_slot *s;
	for (s = l->slots; s != NULL; s = s->next)
		if (s->kind == kind && strcmp(s->name, name) == 0)
			return &s->u;
	s = xcalloc(1, sizeof *s);
	s->name = xstrdup(name);
	s->kind = kind;
	s->next = l->slots;
	l->slots = s;
	return &s->u;
}

void
ledger_count(struct event_count **list, const char *name, uint64_t n)
{
	struct event_count **pp = list;
	for (; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			(*pp)->n += n;
			return;
		}
	}
	struct event_count *e = xcalloc(1, sizeof *e);
	e->name = xstrdup(name);
	e->n = n;
	*pp = e;
}

static void
events_add(struct event_count **dst, const struct event_count *e)
{
	for (; e != NULL; e = e->next)
		ledger_count(dst, e->name, e->n);
}

void
ledger_add(struct ledger *dst, const struct ledger *src)
{
	dst->totals.accepted += src->totals.accepted;
	for (size_t k = 0; k < 5; k++)
		dst->totals.outcome[k] += src->totals.outcome[k];
	dst->inflight += src->inflight;
	hist_add(&dst->loop_lag, &src->loop_lag);
	if (dst->started == 0 || (src->started != 0 && src->started < dst->started))
		dst->started = src->started;
	/* every shard reloads at once: one reload is one, not N */
	if (src->reloads > dst->reloads)
		dst->reloads = src->reloads;
	if (src->reload_failures > dst->reload_failures)
		dst->reload_failures = src->reload_failures;
	for (const struct ledger_slot *s = src->slots; s != NULL; s = s->next) {
		void *d = ledger_slot(dst, s->kind, s->name);
		switch (s->kind) {
		case LEDGER_STAGE: {
			struct stage_stats *a = d;
			const struct stage_stats *b = &s->u.stage;
			a->in += b->in;
			a->out += b->out;
			for (size_t k = 0; k < 5; k++)
				a->outcome[k] += b->outcome[k];
			hist_add(&a->latency, &b->latency);
			a->discarded += b->discarded;
			a->timeouts += b->timeouts;
			events_add(&a->events, b->events);
			break;
		}
		case LEDGER_WORKER: {
			struct worker_stats *a = d;
			const struct worker_stats *b = &s->u.worker;
			a->calls += b->calls;
			a->errors += b->errors;
			a->inflight += b->inflight;
			events_add(&a->events, b->events);
			break;
		}
		case LEDGER_CHANNEL: {
			struct channel_stats *a = d;
			const struct channel_stats *b = &s->u.channel;
			a->pushed += b->pushed;
			/* each shard's own channel: the highest of them */
			if (b->high_water > a->high_water)
				a->high_water = b->high_water;
			a->refused_reject += b->refused_reject;
			a->refused_drop_oldest += b->refused_drop_oldest;
			a->held_back += b->held_back;
			break;
		}
		case LEDGER_REPLICA: {
			struct replica_stats *a = d;
			const struct replica_stats *b = &s->u.replica;
			a->requests += b->requests;
			a->inflight += b->inflight;
			a->ejections += b->ejections;
			for (size_t k = 0; k < REPLICA_N_ERRORS; k++)
				a->errors[k] += b->errors[k];
			hist_add(&a->latency, &b->latency);
			hist_add(&a->ttft, &b->ttft);
			break;
		}
		case LEDGER_POOL: {
			struct pool_stats *a = d;
			const struct pool_stats *b = &s->u.pool;
			a->calls += b->calls;
			a->fallbacks += b->fallbacks;
			a->unavailable += b->unavailable;
			break;
		}
		}
	}
}
