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
