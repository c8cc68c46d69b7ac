/*
 * metrics.c -- a pipeline's statistics in the Prometheus text format.
 *
 * The same counters as the statistics table (stats.c), exposed for a
 * scraper: per stage, per channel, per worker and the totals.  Latency
 * histograms are folded from the log-linear buckets of hist.h into fixed
 * Prometheus buckets; a bucket's share goes by its lowest value, so an
 * edge is off by at most the histogram's 1/8 precision.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "graph.h"
#include "pool.h"
#include "shards.h"
#include "util.h"

/* The upper edges of the exposed latency buckets, in seconds. */
static const double latency_le[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

struct out {
	char *buf;
	size_t len, cap;
	int oom;
};

static void out_printf(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_printf(struct out *o, const char *fmt, ...)
{
	if (o->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = o->cap * 2 + (size_t)n;
		char *b = realloc(o->buf, cap);
		if (b == NULL) {
			o->oom = 1;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
}

/* A label value: backslash, quote and newline escaped, as the format asks. */
static void
label_escape(const char *in, char *out, size_t len)
{
	size_t n = 0;
	for (; *in && n + 3 < len; in++) {
		if (*in == '\\' || *in == '"') {
			out[n++] = '\\';
			out[n++] = *in;
		} else if (*in == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *in;
		}
	}
	out[n] = '\0';
}

/* Other label values are names checked as [a-z][a-z0-9_-]*: nothing to escape. */
static void
help(struct out *o, const char *name, const char *type, const char *text)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* A histogram of seconds: name, its one label (key="value") and the values. */
static void
histogram(struct out *o, const char *name, const char *key, const char *value,
    const struct hist *h)
{
	uint64_t cum = 0;
	unsigned idx = 0;
	for (size_t i = 0; i < sizeof latency_le / sizeof latency_le[0]; i++) {
		uint64_t edge_ns = (uint64_t)(latency_le[i] * 1e9);
		for (; idx < HIST_BUCKETS && hist_bucket_low(idx) <= edge_ns; idx++)
			cum += h->bucket[idx];
		out_printf(o, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, key, value,
		    latency_le[i], (unsigned long long)cum);
	}
	out_printf(o, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, key, value,
	    (unsigned long long)h->count);
	out_printf(o, "%s_sum{%s=\"%s\"} %.9f\n", name, key, value, (double)h->sum / 1e9);
	out_printf(o, "%s_count{%s=\"%s\"} %llu\n", name, key, value,
	    (unsigned long long)h->count);
}

static void
latency_histogram(struct out *o, const char *stage, const struct hist *h)
{
	histogram(o, "porch_stage_latency_seconds", "stage", stage, h);
}

static const char *const replica_errors[REPLICA_N_ERRORS] = {
	"timeout", "transport", "5xx", "4xx", "other",
};

/* Per pool and per member (replica); labels pool="P",replica="W". */
static void
pool_metrics(struct out *o, struct graph *g)
{
	char lab[300];
#define EACH_MEMBER(p, pm) for (size_t _i = 0; _i < g->n_pools; _i++) \
	for (size_t _k = 0; (p) = &g->pools[_i], _k < (p)->n && ((pm) = &(p)->m[_k]); _k++)
	struct pool *p;
	struct pool_member *pm;
	help(o, "porch_pool_calls_total", "counter", "Calls a pool routed.");
	for (size_t i = 0; i < g->n_pools; i++)
		out_printf(o, "porch_pool_calls_total{pool=\"%s\"} %llu\n", g->pools[i].name,
		    (unsigned long long)g->pools[i].stats->calls);
	help(o, "porch_pool_fallbacks_total", "counter", "Calls a pool sent to a fallback.");
	for (size_t i = 0; i < g->n_pools; i++)
		out_printf(o, "porch_pool_fallbacks_total{pool=\"%s\"} %llu\n", g->pools[i].name,
		    (unsigned long long)g->pools[i].stats->fallbacks);
	help(o, "porch_pool_unavailable_total", "counter",
	    "Calls failed at once (503) because every member of the pool was ejected.");
	for (size_t i = 0; i < g->n_pools; i++)
		out_printf(o, "porch_pool_unavailable_total{pool=\"%s\"} %llu\n",
		    g->pools[i].name, (unsigned long long)g->pools[i].stats->unavailable);
	help(o, "porch_pool_healthy_members", "gauge", "Members of a pool not ejected now.");
	for (size_t i = 0; i < g->n_pools; i++)
		out_printf(o, "porch_pool_healthy_members{pool=\"%s\"} %zu\n", g->pools[i].name,
		    pool_healthy(&g->pools[i]));
	help(o, "porch_replica_requests_total", "counter", "Calls a pool gave a member.");
	EACH_MEMBER(p, pm)
		out_printf(o, "porch_replica_requests_total{pool=\"%s\",replica=\"%s\"} %llu\n",
		    p->name, pm->w->name, (unsigned long long)pm->stats->requests);
	help(o, "porch_replica_errors_total", "counter",
	    "A member's failed calls, by kind (timeout, transport, 5xx, 4xx, other).");
	EACH_MEMBER(p, pm)
		for (int k = 0; k < REPLICA_N_ERRORS; k++)
			out_printf(o, "porch_replica_errors_total{pool=\"%s\",replica=\"%s\","
			    "kind=\"%s\"} %llu\n", p->name, pm->w->name, replica_errors[k],
			    (unsigned long long)pm->stats->errors[k]);
	help(o, "porch_replica_in_flight", "gauge", "A member's calls not yet ended.");
	EACH_MEMBER(p, pm)
		out_printf(o, "porch_replica_in_flight{pool=\"%s\",replica=\"%s\"} %llu\n",
		    p->name, pm->w->name, (unsigned long long)pm->stats->inflight);
	help(o, "porch_replica_ejections_total", "counter",
	    "Times a member was ejected (failures in a row, or a failed probe).");
	EACH_MEMBER(p, pm)
		out_printf(o, "porch_replica_ejections_total{pool=\"%s\",replica=\"%s\"} %llu\n",
		    p->name, pm->w->name, (unsigned long long)pm->stats->ejections);
	help(o, "porch_replica_ejected", "gauge", "1 while a member is ejected, else 0.");
	for (size_t i = 0; i < g->n_pools; i++)
		pool_healthy(&g->pools[i]); /* members whose time is up come back */
	EACH_MEMBER(p, pm)
		out_printf(o, "porch_replica_ejected{pool=\"%s\",replica=\"%s\"} %d\n",
		    p->name, pm->w->name, pm->back_at != 0);
	help(o, "porch_replica_latency_seconds", "histogram",
	    "A member's calls, from the pool's pick to their end.");
	EACH_MEMBER(p, pm) {
		snprintf(lab, sizeof lab, "%s\",replica=\"%s", p->name, pm->w->name);
		histogram(o, "porch_replica_latency_seconds", "pool", lab, &pm->stats->latency);
	}
	help(o, "porch_replica_ttft_seconds", "histogram",
	    "A member's time to the first piece of an answer.");
	EACH_MEMBER(p, pm) {
		snprintf(lab, sizeof lab, "%s\",replica=\"%s", p->name, pm->w->name);
		histogram(o, "porch_replica_ttft_seconds", "pool", lab, &pm->stats->ttft);
	}
#undef EACH_MEMBER
}

static const enum porch_outcome outcomes[] = {
	PORCH_COMPLETED, PORCH_FAILED, PORCH_SHED, PORCH_EXPIRED,
};

char *
porch_metrics_text(const porch_stage *st)
{
	if (st->g->led->proc != NULL)
		return proc_metrics_text(st->g->led->proc);
	return metrics_render(st->g);
}

char *
metrics_render(const struct graph *g)
{
	struct out o = { NULL, 0, 0, 0 };
	o.cap = 16384;
	o.buf = malloc(o.cap);
	if (o.buf == NULL)
		return NULL;
	o.buf[0] = '\0';
	char pl[256];
	label_escape(g->cfg->name, pl, sizeof pl);

	help(&o, "porch_requests_accepted_total", "counter",
	    "Requests the pipeline's sources handed over.");
	out_printf(&o, "porch_requests_accepted_total{pipeline=\"%s\"} %llu\n", pl,
	    (unsigned long long)g->led->totals.accepted);
	help(&o, "porch_requests_total", "counter",
	    "Requests that ended, by outcome; with those in flight they add up to accepted.");
	for (size_t k = 0; k < 4; k++)
		out_printf(&o, "porch_requests_total{pipeline=\"%s\",outcome=\"%s\"} %llu\n", pl,
		    porch_outcome_name(outcomes[k]),
		    (unsigned long long)g->led->totals.outcome[outcomes[k]]);
	help(&o, "porch_requests_in_flight", "gauge", "Requests accepted and not yet ended.");
	out_printf(&o, "porch_requests_in_flight{pipeline=\"%s\"} %llu\n", pl,
	    (unsigned long long)g->led->inflight);
	help(&o, "porch_requests_in_flight_max", "gauge", "The pipeline's max-inflight bound.");
	out_printf(&o, "porch_requests_in_flight_max{pipeline=\"%s\"} %llu\n", pl,
	    (unsigned long long)g->max_inflight);
	help(&o, "porch_reloads_total", "counter",
	    "Reloads (SIGHUP, porch reload): ok swapped the pipeline, failed changed nothing.");
	out_printf(&o, "porch_reloads_total{pipeline=\"%s\",result=\"ok\"} %llu\n", pl,
	    (unsigned long long)g->led->reloads);
	out_printf(&o, "porch_reloads_total{pipeline=\"%s\",result=\"failed\"} %llu\n", pl,
	    (unsigned long long)g->led->reload_failures);
	help(&o, "porch_loop_lag_seconds", "histogram",
	    "How late a timer due every 0.25 s ran: time the event loop was held.");
	histogram(&o, "porch_loop_lag_seconds", "pipeline", pl, &g->led->loop_lag);

	/* the pipeline's shape, for porch top and the http source's /graph:
	 * the same structure porch graph draws */
	help(&o, "porch_stage_info", "gauge",
	    "A stage: its plugin, kind (source, stage or sink), worker and concurrency.");
	for (size_t i = 0; i < g->n_stages; i++) {
		const struct porch_stage *s = &g->stages[i];
		const char *kind = s->is_source ? "source" :
		    s->cfg->plugin->n_outputs == 0 ? "sink" : "stage";
		out_printf(&o, "porch_stage_info{stage=\"%s\",plugin=\"%s\",kind=\"%s\","
		    "worker=\"%s\",concurrency=\"%u\"} 1\n", s->name, s->cfg->plugin_name, kind,
		    s->worker != NULL ? s->worker->name : "", s->concurrency);
	}
	help(&o, "porch_worker_info", "gauge", "A worker: its plugin.");
	for (size_t i = 0; i < g->n_workers; i++)
		out_printf(&o, "porch_worker_info{worker=\"%s\",plugin=\"%s\"} 1\n",
		    g->workers[i].name, g->workers[i].cfg->plugin_name);

	help(&o, "porch_stage_messages_in_total", "counter", "Messages a stage took.");
	for (size_t i = 0; i < g->n_stages; i++)
		out_printf(&o, "porch_stage_messages_in_total{stage=\"%s\"} %llu\n",
		    g->stages[i].name, (unsigned long long)g->stages[i].stats->in);
	help(&o, "porch_stage_messages_out_total", "counter", "Messages a stage passed on.");
	for (size_t i = 0; i < g->n_stages; i++)
		out_printf(&o, "porch_stage_messages_out_total{stage=\"%s\"} %llu\n",
		    g->stages[i].name, (unsigned long long)g->stages[i].stats->out);
	help(&o, "porch_stage_outcomes_total", "counter",
	    "Requests that ended at a stage, by outcome.");
	for (size_t i = 0; i < g->n_stages; i++)
		for (size_t k = 0; k < 4; k++)
			out_printf(&o, "porch_stage_outcomes_total{stage=\"%s\",outcome=\"%s\"} %llu\n",
			    g->stages[i].name, porch_outcome_name(outcomes[k]),
			    (unsigned long long)g->stages[i].stats->outcome[outcomes[k]]);
	int joins = 0;
	for (size_t i = 0; i < g->n_stages; i++)
		joins += (g->stages[i].d->flags & PORCH_STAGE_JOINS) != 0;
	if (joins > 0) {
		help(&o, "porch_join_discarded_total", "counter",
		    "Copies a join did not use: cancelled by its decision, or late.");
		for (size_t i = 0; i < g->n_stages; i++)
			if (g->stages[i].d->flags & PORCH_STAGE_JOINS)
				out_printf(&o, "porch_join_discarded_total{stage=\"%s\"} %llu\n",
				    g->stages[i].name,
				    (unsigned long long)g->stages[i].stats->discarded);
		help(&o, "porch_join_timeouts_total", "counter",
		    "Requests a join decided at its timeout.");
		for (size_t i = 0; i < g->n_stages; i++)
			if (g->stages[i].d->flags & PORCH_STAGE_JOINS)
				out_printf(&o, "porch_join_timeouts_total{stage=\"%s\"} %llu\n",
				    g->stages[i].name, (unsigned long long)g->stages[i].stats->timeouts);
	}
	int events = 0;
	for (size_t i = 0; i < g->n_stages; i++)
		events += g->stages[i].stats->events != NULL;
	if (events > 0) {
		help(&o, "porch_stage_events_total", "counter",
		    "A stage plugin's own counters (porch_stage_count).");
		for (size_t i = 0; i < g->n_stages; i++)
			for (const struct event_count *e = g->stages[i].stats->events; e != NULL;
			    e = e->next)
				out_printf(&o, "porch_stage_events_total{stage=\"%s\",event=\"%s\"} "
				    "%llu\n", g->stages[i].name, e->name, (unsigned long long)e->n);
	}
	help(&o, "porch_stage_held", "gauge", "Messages a stage holds now.");
	for (size_t i = 0; i < g->n_stages; i++)
		out_printf(&o, "porch_stage_held{stage=\"%s\"} %u\n", g->stages[i].name,
		    g->stages[i].held);
	help(&o, "porch_stage_latency_seconds", "histogram",
	    "Time a stage held each message.");
	for (size_t i = 0; i < g->n_stages; i++)
		if (!g->stages[i].is_source)
			latency_histogram(&o, g->stages[i].name, &g->stages[i].stats->latency);

	help(&o, "porch_channel_depth", "gauge", "Messages waiting in a channel.");
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		out_printf(&o, "porch_channel_depth{from=\"%s\",port=\"%s\",to=\"%s\"} %u\n",
		    c->src->name, plugin_port_name(c->src->cfg->plugin, c->port), c->dst->name,
		    channel_depth(c));
	}
	help(&o, "porch_channel_capacity", "gauge", "A channel's capacity.");
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		out_printf(&o, "porch_channel_capacity{from=\"%s\",port=\"%s\",to=\"%s\"} %u\n",
		    c->src->name, plugin_port_name(c->src->cfg->plugin, c->port), c->dst->name,
		    c->capacity);
	}
	help(&o, "porch_channel_info", "gauge", "A channel: its overflow policy.");
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		out_printf(&o, "porch_channel_info{from=\"%s\",port=\"%s\",to=\"%s\","
		    "overflow=\"%s\"} 1\n", c->src->name,
		    plugin_port_name(c->src->cfg->plugin, c->port), c->dst->name,
		    overflow_name(c->overflow));
	}
	help(&o, "porch_channel_high_water", "gauge", "The most messages a channel has held.");
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		out_printf(&o, "porch_channel_high_water{from=\"%s\",port=\"%s\",to=\"%s\"} %llu\n",
		    c->src->name, plugin_port_name(c->src->cfg->plugin, c->port), c->dst->name,
		    (unsigned long long)c->s->high_water);
	}
	help(&o, "porch_channel_refused_total", "counter",
	    "Messages a full channel refused, by reason (its overflow policy).");
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		const char *port = plugin_port_name(c->src->cfg->plugin, c->port);
		out_printf(&o, "porch_channel_refused_total{from=\"%s\",port=\"%s\",to=\"%s\","
		    "reason=\"reject\"} %llu\n", c->src->name, port, c->dst->name,
		    (unsigned long long)c->s->refused_reject);
		out_printf(&o, "porch_channel_refused_total{from=\"%s\",port=\"%s\",to=\"%s\","
		    "reason=\"drop-oldest\"} %llu\n", c->src->name, port, c->dst->name,
		    (unsigned long long)c->s->refused_drop_oldest);
	}
	help(&o, "porch_channel_held_back_total", "counter",
	    "Messages that waited for room in a full 'block' channel.");
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		out_printf(&o, "porch_channel_held_back_total{from=\"%s\",port=\"%s\",to=\"%s\"} %llu\n",
		    c->src->name, plugin_port_name(c->src->cfg->plugin, c->port), c->dst->name,
		    (unsigned long long)c->s->held_back);
	}

	events = 0;
	for (size_t i = 0; i < g->n_workers; i++)
		events += g->workers[i].stats->events != NULL;
	if (events > 0) {
		help(&o, "porch_worker_events_total", "counter",
		    "A worker plugin's own counters (porch_worker_count).");
		for (size_t i = 0; i < g->n_workers; i++)
			for (const struct event_count *e = g->workers[i].stats->events; e != NULL;
			    e = e->next)
				out_printf(&o, "porch_worker_events_total{worker=\"%s\",event=\"%s\"} "
				    "%llu\n", g->workers[i].name, e->name, (unsigned long long)e->n);
	}
	help(&o, "porch_worker_calls_total", "counter", "Calls made to a worker.");
	for (size_t i = 0; i < g->n_workers; i++)
		out_printf(&o, "porch_worker_calls_total{worker=\"%s\"} %llu\n",
		    g->workers[i].name, (unsigned long long)g->workers[i].stats->calls);
	help(&o, "porch_worker_errors_total", "counter", "Calls to a worker that failed.");
	for (size_t i = 0; i < g->n_workers; i++)
		out_printf(&o, "porch_worker_errors_total{worker=\"%s\"} %llu\n",
		    g->workers[i].name, (unsigned long long)g->workers[i].stats->errors);
	help(&o, "porch_worker_in_flight", "gauge", "Calls to a worker not yet ended.");
	for (size_t i = 0; i < g->n_workers; i++)
		out_printf(&o, "porch_worker_in_flight{worker=\"%s\"} %llu\n",
		    g->workers[i].name, (unsigned long long)g->workers[i].stats->inflight);
	if (g->n_pools > 0)
		pool_metrics(&o, (struct graph *)g);
	if (o.oom) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}
