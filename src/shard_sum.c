/*
 * shard_sum.c -- the statistics of every shard as one pipeline's.
 *
 * Each shard counts into its own ledger, touched by its thread only.  The
 * table, --stats-json and /metrics want the process: a "sum graph" is
 * shard 0's current graph in shape (stages, channels, workers, pools,
 * copied) with every counter pointing into a ledger that adds up every
 * shard's (ledger_add), so the renderers (stats.c, metrics.c) print it as
 * they print one graph.  Per-shard totals are shown beside it.
 *
 * While the shards run, their counters are read as they are being
 * written: each word read is whole (aligned 64-bit loads), but the set is
 * not a snapshot, so a sum taken mid-run may have a request counted as
 * accepted and not yet in flight.  At the end of a run (the threads are
 * joined) the sums are exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "pool.h"
#include "shards.h"
#include "util.h"

static const struct porch_stage *
same_stage(const struct graph *g, size_t i, const char *name)
{
	if (g == NULL)
		return NULL;
	if (i < g->n_stages && strcmp(g->stages[i].name, name) == 0)
		return &g->stages[i];
	for (size_t k = 0; k < g->n_stages; k++)
		if (strcmp(g->stages[k].name, name) == 0)
			return &g->stages[k];
	return NULL;
}

struct graph *
sum_graph_new(struct proc *p)
{
	const struct graph *g0 = p->shards[0].r.g;
	struct graph *s = xcalloc(1, sizeof *s);
	*s = *g0;
	s->led = ledger_new();
	s->inflight = 0;
	for (unsigned i = 0; i < p->n; i++) {
		ledger_add(s->led, p->shards[i].r.led);
		if (p->shards[i].r.g != NULL)
			s->inflight += p->shards[i].r.g->inflight;
	}
	s->led->reload_failures += p->reload_failures;
	s->stages = xcalloc(g0->n_stages, sizeof *s->stages);
	memcpy(s->stages, g0->stages, g0->n_stages * sizeof *s->stages);
	for (size_t i = 0; i < s->n_stages; i++) {
		struct porch_stage *st = &s->stages[i];
		st->stats = ledger_slot(s->led, LEDGER_STAGE, st->name);
		st->held = 0;
		for (unsigned k = 0; k < p->n; k++) {
			const struct porch_stage *o = same_stage(p->shards[k].r.g, i, st->name);
			if (o != NULL)
				st->held += o->held;
		}
	}
	s->workers = xcalloc(g0->n_workers, sizeof *s->workers);
	memcpy(s->workers, g0->workers, g0->n_workers * sizeof *s->workers);
	for (size_t i = 0; i < s->n_workers; i++)
		s->workers[i].stats = ledger_slot(s->led, LEDGER_WORKER, s->workers[i].name);
	s->channels = xcalloc(g0->n_channels, sizeof *s->channels);
	memcpy(s->channels, g0->channels, g0->n_channels * sizeof *s->channels);
	for (size_t i = 0; i < s->n_channels; i++) {
		struct channel *c = &s->channels[i];
		char key[512];
		snprintf(key, sizeof key, "%s:%s>%s", c->src->name,
		    plugin_port_name(c->src->cfg->plugin, c->port), c->dst->name);
		c->s = ledger_slot(s->led, LEDGER_CHANNEL, key);
		/* depth: what every shard's copy of the channel holds */
		uint32_t depth = 0;
		for (unsigned k = 0; k < p->n; k++) {
			const struct graph *gk = p->shards[k].r.g;
			if (gk != NULL && i < gk->n_channels)
				depth += channel_depth(&gk->channels[i]);
		}
		c->ring = NULL;
		c->head = 0;
		c->tail = depth;
	}
	s->pools = xcalloc(g0->n_pools, sizeof *s->pools);
	memcpy(s->pools, g0->pools, g0->n_pools * sizeof *s->pools);
	for (size_t i = 0; i < s->n_pools; i++) {
		struct pool *pl = &s->pools[i];
		pl->m = xcalloc(pl->n, sizeof *pl->m);
		memcpy(pl->m, g0->pools[i].m, pl->n * sizeof *pl->m);
		for (size_t k = 0; k < pl->n; k++) {
			char key[512];
			snprintf(key, sizeof key, "%s/%s", pl->name, pl->m[k].w->name);
			pl->m[k].stats = ledger_slot(s->led, LEDGER_REPLICA, key);
		}
		pl->stats = ledger_slot(s->led, LEDGER_POOL, pl->name);
	}
	return s;
}

void
sum_graph_free(struct graph *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_pools; i++)
		free(s->pools[i].m);
	free(s->pools);
	free(s->stages);
	free(s->workers);
	free(s->channels);
	ledger_unref(s->led);
	free(s);
}

/* Appends the per-shard totals to a /metrics text. */
static char *
append_shards(char *text, struct proc *p, const char *pipeline)
{
	size_t len = strlen(text), cap = len + 1024 + (size_t)p->n * (640 + 6 * strlen(pipeline));
	char *out = realloc(text, cap);
	if (out == NULL) {
		free(text);
		return NULL;
	}
	static const char *const names[] = { NULL, "completed", "failed", "shed", "expired" };
	len += (size_t)snprintf(out + len, cap - len,
	    "# HELP porch_shard_requests_accepted_total Requests accepted by one shard "
	    "(threads): they add up to porch_requests_accepted_total.\n"
	    "# TYPE porch_shard_requests_accepted_total counter\n");
	for (unsigned i = 0; i < p->n; i++)
		len += (size_t)snprintf(out + len, cap - len,
		    "porch_shard_requests_accepted_total{pipeline=\"%s\",shard=\"%u\"} %llu\n",
		    pipeline, i, (unsigned long long)p->shards[i].r.led->totals.accepted);
	len += (size_t)snprintf(out + len, cap - len,
	    "# HELP porch_shard_requests_total Requests that ended on one shard, by outcome.\n"
	    "# TYPE porch_shard_requests_total counter\n");
	for (unsigned i = 0; i < p->n; i++)
		for (int o = PORCH_COMPLETED; o <= PORCH_EXPIRED; o++)
			len += (size_t)snprintf(out + len, cap - len,
			    "porch_shard_requests_total{pipeline=\"%s\",shard=\"%u\","
			    "outcome=\"%s\"} %llu\n", pipeline, i, names[o],
			    (unsigned long long)p->shards[i].r.led->totals.outcome[o]);
	len += (size_t)snprintf(out + len, cap - len,
	    "# HELP porch_shard_requests_in_flight Requests in flight on one shard.\n"
	    "# TYPE porch_shard_requests_in_flight gauge\n");
	for (unsigned i = 0; i < p->n; i++)
		len += (size_t)snprintf(out + len, cap - len,
		    "porch_shard_requests_in_flight{pipeline=\"%s\",shard=\"%u\"} %llu\n",
		    pipeline, i, (unsigned long long)p->shards[i].r.led->inflight);
	return out;
}

char *
proc_metrics_text(struct proc *p)
{
	pthread_mutex_lock(&p->lock);
	struct graph *s = sum_graph_new(p);
	char *text = metrics_render(s);
	if (text != NULL)
		text = append_shards(text, p, s->cfg->name);
	sum_graph_free(s);
	pthread_mutex_unlock(&p->lock);
	return text;
}
