/*
 * stats.c -- a graph's counters as a table for people and JSON for scripts.
 *
 * The totals obey accepted = completed + failed + shed + expired +
 * in_flight at every moment; on a clean exit in_flight is 0.
 */
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "channel.h"
#include "log.h"
#include "pool.h"
#include "shards.h"
#include "stats.h"

/* "12.3us", "4.56ms", "1.20s": latencies at a glance. */
static void
fmt_ns(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000)
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1fus", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.2fms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", (double)ns / 1e9);
}

static double
elapsed(const struct graph *g)
{
	return ev_now(g->loop) - g->led->started;
}

/* "events stage cache: hit 10, miss 3": a plugin's own counters. */
static void
print_events(FILE *out, const char *kind, const char *name, const struct event_count *e)
{
	if (e == NULL)
		return;
	fprintf(out, "events %s %s:", kind, name);
	for (; e != NULL; e = e->next)
		fprintf(out, " %s %llu%s", e->name, (unsigned long long)e->n, e->next ? "," : "");
	fputc('\n', out);
}

static json_t *
events_json(const struct event_count *e)
{
	json_t *o = json_object();
	for (; e != NULL; e = e->next)
		json_object_set_new(o, e->name, json_integer((json_int_t)e->n));
	return o;
}

/* The table of stages, channels and workers, after the summary line. */
static void
stats_table(const struct graph *g, FILE *out)
{
	fprintf(out, "%-16s %-10s %10s %10s %10s %8s %8s %8s %5s %9s %9s %9s\n",
	    "stage", "plugin", "in", "out", "completed", "failed", "shed", "expired",
	    "held", "p50", "p90", "p99");
	for (size_t i = 0; i < g->n_stages; i++) {
		const struct porch_stage *st = &g->stages[i];
		const struct stage_stats *s = st->stats;
		char p50[16], p90[16], p99[16];
		fmt_ns(hist_quantile(&s->latency, 0.50), p50, sizeof p50);
		fmt_ns(hist_quantile(&s->latency, 0.90), p90, sizeof p90);
		fmt_ns(hist_quantile(&s->latency, 0.99), p99, sizeof p99);
		/* a source holds no request, and a stage that saw none has no
		 * latency to show: "-", not "0ns" */
		if (st->is_source || s->latency.count == 0)
			strcpy(p50, "-"), strcpy(p90, "-"), strcpy(p99, "-");
		fprintf(out, "%-16s %-10s %10llu %10llu %10llu %8llu %8llu %8llu %5u %9s %9s %9s\n",
		    st->name, st->d->name, (unsigned long long)s->in,
		    (unsigned long long)s->out,
		    (unsigned long long)s->outcome[PORCH_COMPLETED],
		    (unsigned long long)s->outcome[PORCH_FAILED],
		    (unsigned long long)s->outcome[PORCH_SHED],
		    (unsigned long long)s->outcome[PORCH_EXPIRED], st->held, p50, p90, p99);
	}
	char l50[16], l99[16], lmax[16];
	fmt_ns(hist_quantile(&g->led->loop_lag, 0.50), l50, sizeof l50);
	fmt_ns(hist_quantile(&g->led->loop_lag, 0.99), l99, sizeof l99);
	fmt_ns(g->led->loop_lag.max, lmax, sizeof lmax);
	if (g->led->loop_lag.count == 0)
		strcpy(l50, "-"), strcpy(l99, "-"), strcpy(lmax, "-");
	if (g->led->reloads + g->led->reload_failures > 0)
		fprintf(out, "reloads          %llu, failed %llu (the totals count every "
		    "pipeline the reloads replaced)\n", (unsigned long long)g->led->reloads,
		    (unsigned long long)g->led->reload_failures);
	for (size_t i = 0; i < g->n_stages; i++)
		print_events(out, "stage", g->stages[i].name, g->stages[i].stats->events);
	for (size_t i = 0; i < g->n_workers; i++)
		print_events(out, "worker", g->workers[i].name, g->workers[i].stats->events);
	for (size_t i = 0; i < g->n_stages; i++) {
		const struct porch_stage *st = &g->stages[i];
		if (st->d->flags & PORCH_STAGE_JOINS)
			fprintf(out, "join %-11s copies discarded %llu, decided at the timeout %llu\n",
			    st->name, (unsigned long long)st->stats->discarded,
			    (unsigned long long)st->stats->timeouts);
	}
	fprintf(out, "loop lag         p50 %s, p99 %s, max %s (%llu timer runs)\n", l50, l99, lmax,
	    (unsigned long long)g->led->loop_lag.count);
	if (g->n_channels == 0)
		return;
	fprintf(out, "%-32s %6s %6s %8s %-11s %10s %9s %9s %9s\n", "channel", "depth",
	    "peak", "capacity", "overflow", "pushed", "rejected", "dropped", "heldback");
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		char name[128];
		snprintf(name, sizeof name, "%s:%s -> %s", c->src->name, c->cfg->port, c->dst->name);
		fprintf(out, "%-32s %6u %6llu %8u %-11s %10llu %9llu %9llu %9llu\n", name,
		    channel_depth(c), (unsigned long long)c->s->high_water, c->capacity,
		    overflow_name(c->overflow), (unsigned long long)c->s->pushed,
		    (unsigned long long)c->s->refused_reject,
		    (unsigned long long)c->s->refused_drop_oldest,
		    (unsigned long long)c->s->held_back);
	}
	for (size_t i = 0; i < g->n_workers; i++) {
		const struct porch_worker *w = &g->workers[i];
		fprintf(out, "worker %-16s plugin %-10s calls %llu, errors %llu, in flight %llu\n",
		    w->name, w->d->name, (unsigned long long)w->stats->calls,
		    (unsigned long long)w->stats->errors, (unsigned long long)w->stats->inflight);
	}
	for (size_t i = 0; i < g->n_pools; i++) {
		const struct pool *p = &g->pools[i];
		fprintf(out, "pool %-18s policy %-10s calls %llu, fallbacks %llu, unavailable %llu\n",
		    p->name, balance_policy_name(p->bal.policy),
		    (unsigned long long)p->stats->calls, (unsigned long long)p->stats->fallbacks,
		    (unsigned long long)p->stats->unavailable);
		for (size_t k = 0; k < p->n; k++) {
			const struct replica_stats *r = p->m[k].stats;
			uint64_t errors = 0;
			for (int e = 0; e < REPLICA_N_ERRORS; e++)
				errors += r->errors[e];
			char l50[32], t50[32];
			fmt_ns(hist_quantile(&r->latency, 0.50), l50, sizeof l50);
			fmt_ns(hist_quantile(&r->ttft, 0.50), t50, sizeof t50);
			fprintf(out, "  replica %-16s requests %llu, errors %llu (timeout %llu, "
			    "transport %llu, 5xx %llu, 4xx %llu), in flight %llu, ejections %llu%s, "
			    "p50 %s, ttft p50 %s\n", p->m[k].w->name,
			    (unsigned long long)r->requests, (unsigned long long)errors,
			    (unsigned long long)r->errors[REPLICA_ERR_TIMEOUT],
			    (unsigned long long)r->errors[REPLICA_ERR_TRANSPORT],
			    (unsigned long long)r->errors[REPLICA_ERR_5XX],
			    (unsigned long long)r->errors[REPLICA_ERR_4XX],
			    (unsigned long long)r->inflight, (unsigned long long)r->ejections,
			    p->m[k].back_at != 0 ? " (ejected)" : "", l50, t50);
		}
	}
}

void
stats_print(const struct graph *g, FILE *out)
{
	const struct totals *t = &g->led->totals;
	fprintf(out, "porch: pipeline '%s' after %.3fs: accepted %llu, completed %llu, "
	    "failed %llu, shed %llu, expired %llu, in flight %llu\n",
	    g->cfg->name, elapsed(g), (unsigned long long)t->accepted,
	    (unsigned long long)t->outcome[PORCH_COMPLETED],
	    (unsigned long long)t->outcome[PORCH_FAILED],
	    (unsigned long long)t->outcome[PORCH_SHED],
	    (unsigned long long)t->outcome[PORCH_EXPIRED],
	    (unsigned long long)g->led->inflight);
	stats_table(g, out);
}

static json_t *
latency_json(const struct hist *h)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I}",
	    "count", (json_int_t)h->count,
	    "p50_ns", (json_int_t)hist_quantile(h, 0.50),
	    "p90_ns", (json_int_t)hist_quantile(h, 0.90),
	    "p99_ns", (json_int_t)hist_quantile(h, 0.99),
	    "max_ns", (json_int_t)h->max);
}

/* With threads: each shard's totals, "shards" in the JSON. */
static json_t *
shards_json(struct proc *p)
{
	json_t *a = json_array();
	for (unsigned i = 0; i < p->n; i++) {
		const struct ledger *l = p->shards[i].r.led;
		json_array_append_new(a, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		    "shard", (json_int_t)i, "reloads", (json_int_t)l->reloads,
		    "accepted", (json_int_t)l->totals.accepted,
		    "completed", (json_int_t)l->totals.outcome[PORCH_COMPLETED],
		    "failed", (json_int_t)l->totals.outcome[PORCH_FAILED],
		    "shed", (json_int_t)l->totals.outcome[PORCH_SHED],
		    "expired", (json_int_t)l->totals.outcome[PORCH_EXPIRED],
		    "in_flight", (json_int_t)l->inflight));
		/* the shard thread's CPU time, known once its loop has ended */
		if (p->shards[i].cpu_s > 0)
			json_object_set_new(json_array_get(a, i), "cpu_s",
			    json_real((double)(long long)(p->shards[i].cpu_s * 1000 + 0.5) / 1000));
	}
	return a;
}

/* With threads: each shard's totals, one line each, after the table. */
static void
shards_print(struct proc *p, FILE *out)
{
	for (unsigned i = 0; i < p->n; i++) {
		const struct ledger *l = p->shards[i].r.led;
		fprintf(out, "shard %-10u accepted %llu, completed %llu, failed %llu, shed %llu, "
		    "expired %llu, in flight %llu\n", i, (unsigned long long)l->totals.accepted,
		    (unsigned long long)l->totals.outcome[PORCH_COMPLETED],
		    (unsigned long long)l->totals.outcome[PORCH_FAILED],
		    (unsigned long long)l->totals.outcome[PORCH_SHED],
		    (unsigned long long)l->totals.outcome[PORCH_EXPIRED],
		    (unsigned long long)l->inflight);
	}
}

static json_t *
stats_json(const struct graph *g)
{
	const struct totals *t = &g->led->totals;
	json_t *root = json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "pipeline", g->cfg->name, "elapsed_s",
	    (double)(long long)(elapsed(g) * 1000 + 0.5) / 1000,
	    "accepted", (json_int_t)t->accepted,
	    "completed", (json_int_t)t->outcome[PORCH_COMPLETED],
	    "failed", (json_int_t)t->outcome[PORCH_FAILED],
	    "shed", (json_int_t)t->outcome[PORCH_SHED],
	    "expired", (json_int_t)t->outcome[PORCH_EXPIRED],
	    "in_flight", (json_int_t)g->led->inflight);
	json_object_set_new(root, "reloads", json_integer((json_int_t)g->led->reloads));
	json_object_set_new(root, "reload_failures",
	    json_integer((json_int_t)g->led->reload_failures));
	json_t *stages = json_array();
	for (size_t i = 0; i < g->n_stages; i++) {
		const struct porch_stage *st = &g->stages[i];
		const struct stage_stats *s = st->stats;
		json_array_append_new(stages, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
		    "name", st->name, "plugin", st->d->name,
		    "in", (json_int_t)s->in, "out", (json_int_t)s->out,
		    "completed", (json_int_t)s->outcome[PORCH_COMPLETED],
		    "failed", (json_int_t)s->outcome[PORCH_FAILED],
		    "shed", (json_int_t)s->outcome[PORCH_SHED],
		    "expired", (json_int_t)s->outcome[PORCH_EXPIRED],
		    "held", (json_int_t)st->held,
		    "latency", latency_json(&s->latency)));
		if (s->events != NULL)
			json_object_set_new(json_array_get(stages, json_array_size(stages) - 1),
			    "events", events_json(s->events));
		if (st->d->flags & PORCH_STAGE_JOINS) {
			json_t *js = json_array_get(stages, json_array_size(stages) - 1);
			json_object_set_new(js, "discarded", json_integer((json_int_t)s->discarded));
			json_object_set_new(js, "timeouts", json_integer((json_int_t)s->timeouts));
		}
	}
	json_object_set_new(root, "stages", stages);
	json_object_set_new(root, "loop_lag", latency_json(&g->led->loop_lag));
	json_t *chans = json_array();
	for (size_t i = 0; i < g->n_channels; i++) {
		const struct channel *c = &g->channels[i];
		json_array_append_new(chans, json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
		    "from", c->src->name, "port", c->cfg->port, "to", c->dst->name,
		    "capacity", (json_int_t)c->capacity, "overflow", overflow_name(c->overflow),
		    "depth", (json_int_t)channel_depth(c),
		    "high_water", (json_int_t)c->s->high_water,
		    "pushed", (json_int_t)c->s->pushed,
		    "rejected", (json_int_t)c->s->refused_reject,
		    "dropped_oldest", (json_int_t)c->s->refused_drop_oldest,
		    "held_back", (json_int_t)c->s->held_back));
	}
	json_object_set_new(root, "channels", chans);
	json_t *workers = json_array();
	for (size_t i = 0; i < g->n_workers; i++) {
		const struct porch_worker *w = &g->workers[i];
		json_array_append_new(workers, json_pack("{s:s, s:s, s:I, s:I, s:I}",
		    "name", w->name, "plugin", w->d->name, "calls", (json_int_t)w->stats->calls,
		    "errors", (json_int_t)w->stats->errors, "in_flight", (json_int_t)w->stats->inflight));
		if (w->stats->events != NULL)
			json_object_set_new(json_array_get(workers, i), "events",
			    events_json(w->stats->events));
	}
	json_object_set_new(root, "workers", workers);
	json_t *pools = json_array();
	for (size_t i = 0; i < g->n_pools; i++) {
		const struct pool *p = &g->pools[i];
		json_t *reps = json_array();
		for (size_t k = 0; k < p->n; k++) {
			const struct replica_stats *r = p->m[k].stats;
			json_array_append_new(reps, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
			    "s:I, s:I, s:b, s:o, s:o}", "name", p->m[k].w->name,
			    "requests", (json_int_t)r->requests,
			    "timeouts", (json_int_t)r->errors[REPLICA_ERR_TIMEOUT],
			    "transport_errors", (json_int_t)r->errors[REPLICA_ERR_TRANSPORT],
			    "errors_5xx", (json_int_t)r->errors[REPLICA_ERR_5XX],
			    "errors_4xx", (json_int_t)r->errors[REPLICA_ERR_4XX],
			    "other_errors", (json_int_t)r->errors[REPLICA_ERR_OTHER],
			    "in_flight", (json_int_t)r->inflight,
			    "ejections", (json_int_t)r->ejections,
			    "ejected", p->m[k].back_at != 0,
			    "latency", latency_json(&r->latency), "ttft", latency_json(&r->ttft)));
		}
		json_array_append_new(pools, json_pack("{s:s, s:s, s:I, s:I, s:I, s:o}",
		    "name", p->name, "policy", balance_policy_name(p->bal.policy),
		    "calls", (json_int_t)p->stats->calls,
		    "fallbacks", (json_int_t)p->stats->fallbacks,
		    "unavailable", (json_int_t)p->stats->unavailable, "replicas", reps));
	}
	json_object_set_new(root, "pools", pools);
	return root;
}

static int write_json(json_t *root, const char *path, char *err, size_t errlen);

int
stats_write_json(const struct graph *g, const char *path, char *err, size_t errlen)
{
	return write_json(stats_json(g), path, err, errlen);
}

int
stats_write_json_proc(struct proc *p, const char *path, char *err, size_t errlen)
{
	pthread_mutex_lock(&p->lock);
	struct graph *s = sum_graph_new(p);
	json_t *root = stats_json(s);
	json_object_set_new(root, "threads", json_integer((json_int_t)p->n));
	json_object_set_new(root, "shards", shards_json(p));
	sum_graph_free(s);
	pthread_mutex_unlock(&p->lock);
	return write_json(root, path, err, errlen);
}

static int
write_json(json_t *root, const char *path, char *err, size_t errlen)
{
	size_t len = strlen(path) + 16;
	char *tmp = malloc(len);
	if (tmp == NULL) {
		json_decref(root);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(tmp, len, "%s.tmp%ld", path, (long)getpid());
	/* a renamed file would replace what is there: only a regular file may
	 * be replaced ("--stats-json /dev/null" as root would remove the device) */
	struct stat sb;
	int special = stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
	int rc = json_dump_file(root, special ? path : tmp, JSON_INDENT(2) | JSON_SORT_KEYS |
	    JSON_REAL_PRECISION(15));
	json_decref(root);
	if (rc != 0 || (!special && rename(tmp, path) != 0)) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/*
 * The statistics in porch run's log: in text the summary as a log line,
 * then the table; in json one line whose "stats" is what --stats-json
 * writes.  asked (SIGUSR1): whatever --log-level says; else (at the end)
 * only when info lines are written.
 */
void
stats_log(const struct graph *g, int asked)
{
	const struct totals *t = &g->led->totals;
	if (!asked && !log_enabled(PORCH_LOG_INFO))
		return;
	if (log_format_now() == LOG_JSON) {
		log_value(PORCH_LOG_INFO, "statistics", "stats", stats_json(g));
		return;
	}
	log_asked("pipeline '%s' after %.3fs: accepted %llu, completed %llu, failed %llu, "
	    "shed %llu, expired %llu, in flight %llu", g->cfg->name, elapsed(g),
	    (unsigned long long)t->accepted, (unsigned long long)t->outcome[PORCH_COMPLETED],
	    (unsigned long long)t->outcome[PORCH_FAILED],
	    (unsigned long long)t->outcome[PORCH_SHED],
	    (unsigned long long)t->outcome[PORCH_EXPIRED],
	    (unsigned long long)g->led->inflight);
	stats_table(g, stderr);
}

void
stats_log_proc(struct proc *p, int asked)
{
	if (!asked && !log_enabled(PORCH_LOG_INFO))
		return;
	pthread_mutex_lock(&p->lock);
	struct graph *s = sum_graph_new(p);
	if (log_format_now() == LOG_JSON) {
		json_t *root = stats_json(s);
		json_object_set_new(root, "threads", json_integer((json_int_t)p->n));
		json_object_set_new(root, "shards", shards_json(p));
		log_value(PORCH_LOG_INFO, "statistics", "stats", root);
	} else {
		stats_log(s, asked);
		shards_print(p, stderr);
	}
	sum_graph_free(s);
	pthread_mutex_unlock(&p->lock);
}
