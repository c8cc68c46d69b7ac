/*
 * reload.c -- SIGHUP: the pipeline file again, and the running graph
 * swapped for it without dropping a request.
 *
 * The file is read and checked as porch check would.  If it is invalid,
 * or a plugin's init fails, nothing changes: the errors go to stderr and
 * the old graph goes on.  Otherwise the new graph is built beside the old
 * one (a listener for an address already open is the same socket, so no
 * connection is refused), it starts, and the old one retires: its sources
 * take no new requests and hand idle connections over; what it holds
 * finishes on it, and it is freed when its last request has ended, or at
 * the drain deadline (--drain-timeout), when what is left ends as expired.
 * Every graph counts into one ledger, so the totals stay exact.
 *
 * With --pid-file, each attempt is also written to PID-FILE.reload as one
 * line, "N ok|failed MESSAGE", for porch reload to wait on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "node.h"
#include "run.h"

void
run_status_path(const char *pid_path, char *out, size_t len)
{
	snprintf(out, len, "%s.reload", pid_path);
}

/* One line to stderr and, numbered, to the status file (written whole),
 * followed there by detail (the file's errors, one a line) when not NULL,
 * for porch reload to print. */
void
run_report(struct run *r, int ok, const char *detail, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_line(ok ? PORCH_LOG_INFO : PORCH_LOG_ERROR, NULL, NULL, 0, NULL,
	    "reload: %s", msg);
	if (r->status_path == NULL)
		return;
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", r->status_path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%llu %s %s\n%s", (unsigned long long)r->attempts,
	    ok ? "ok" : "failed", msg, detail != NULL ? detail : "") < 0 ||
	    fclose(f) != 0 || rename(tmp, r->status_path) != 0)
		log_error("reload: cannot write %s: %s", r->status_path,
		    strerror(errno));
}

#define report(r, ok, ...) run_report((r), (ok), NULL, __VA_ARGS__)
#define report_detail run_report

void
run_cfg_release(struct run *r, struct cfg_pipeline *cfg)
{
	if (r->proc != NULL)
		proc_cfg_unref(r->proc, cfg);
	else
		config_free(cfg);
}

static void
generation_free(struct run *r, struct generation *gen)
{
	ev_timer_stop(r->loop, &gen->deadline_w);
	graph_free(gen->g);
	run_cfg_release(r, gen->cfg);
	free(gen);
}

/* Runs from the loop, never inside a callback of the graphs it frees. */
static void
on_reap(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct run *r = w->data;
	for (struct generation **pp = &r->retiring; *pp != NULL;) {
		struct generation *gen = *pp;
		if (graph_done(gen->g)) {
			*pp = gen->next;
			generation_free(r, gen);
		} else {
			pp = &gen->next;
		}
	}
	if (r->retiring == NULL && graph_done(r->g) &&
	    (r->shard == NULL || shard_may_end(r->shard)))
		ev_break(loop, EVBREAK_ALL);
}

void
run_finished(struct graph *g, void *arg)
{
	(void)g;
	struct run *r = arg;
	if (r->shard != NULL)
		shard_graph_finished(r->shard);
	if (!ev_is_active(&r->reap_w)) {
		ev_timer_init(&r->reap_w, on_reap, 0., 0.);
		r->reap_w.data = r;
		ev_timer_start(r->loop, &r->reap_w);
	}
}

static void
on_generation_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	struct generation *gen = w->data;
	log_info("reload: the replaced pipeline still has %llu requests in "
	    "flight after %.3gs (--drain-timeout); they end as expired\n",
	    (unsigned long long)gen->g->inflight, gen->r->drain_s);
	graph_drain(gen->g);
	graph_abort(gen->g, "the drain deadline of a reload passed");
}

void
run_free_generations(struct run *r)
{
	while (r->retiring != NULL) {
		struct generation *gen = r->retiring;
		r->retiring = gen->next;
		generation_free(r, gen);
	}
	ev_timer_stop(r->loop, &r->reap_w);
}

/*
 * The file again, for a reload (run_reload, and shards.c's on the main
 * thread): checked as porch check would; its errors are log lines, and
 * *detail (malloc'd, or NULL) holds them for the status file, *errors
 * their count.  lock, when not NULL, is held while plugins are loaded.
 */
struct cfg_pipeline *
run_reload_load(struct run *r, pthread_mutex_t *lock, char **detail, int *errors)
{
	char *dtext = NULL;
	size_t dlen = 0;
	FILE *dout = open_memstream(&dtext, &dlen);
	struct diag d;
	diag_init(&d, r->file, dout != NULL ? dout : stderr);
	struct cli_common *c = r->common;
	if (lock != NULL)
		pthread_mutex_lock(lock);
	struct cfg_pipeline *cfg = config_load(r->file, config_schema_path(),
	    c->plugin_dirs, c->n_plugin_dirs, c->overrides, c->n_overrides, NULL, &d);
	if (lock != NULL)
		pthread_mutex_unlock(lock);
	*detail = NULL;
	if (dout != NULL) {
		fclose(dout);
		if (dtext != NULL)
			*detail = strdup(dtext);
		for (char *line = dtext, *end; line != NULL && *line != '\0'; line = end) {
			end = strchr(line, '\n');
			if (end != NULL)
				*end++ = '\0';
			log_line(PORCH_LOG_ERROR, NULL, NULL, 0, NULL, "reload: %s", line);
		}
		free(dtext);
	}
	*errors = d.errors;
	return cfg;
}

/* --node: this node's stages of a reloaded file (node.c); 0, or -1 after
 * the errors went to stderr. */
int
run_reload_select(struct run *r, struct cfg_pipeline *cfg)
{
	struct diag nd;
	diag_init(&nd, r->file, stderr);
	return r->node != NULL && node_select(cfg, r->node, &nd) != 0 ? -1 : 0;
}

void
run_reload(struct run *r)
{
	r->attempts++;
	if (r->signals > 0) {
		report(r, 0, "porch is draining (SIGINT/SIGTERM): not reloading %s", r->file);
		return;
	}
	if (r->replay) {
		report(r, 0, "porch replay does not reload: %s goes on unchanged", r->file);
		return;
	}
	char *detail = NULL;
	int errors = 0;
	struct cfg_pipeline *cfg = run_reload_load(r, NULL, &detail, &errors);
	if (cfg == NULL) {
		r->led->reload_failures++;
		report_detail(r, 0, detail, "%s is not valid (%d error%s above); the running "
		    "pipeline goes on unchanged", r->file, errors, errors == 1 ? "" : "s");
		free(detail);
		return;
	}
	free(detail);
	char err[2048];
	if (run_reload_select(r, cfg) != 0) {
		r->led->reload_failures++;
		report(r, 0, "%s: its nodes or NATS channels are not valid (above); the "
		    "running pipeline goes on unchanged", r->file);
		config_free(cfg);
		return;
	}
	uint64_t held;
	if (run_swap(r, cfg, &held, err, sizeof err) != 0) {
		r->led->reload_failures++;
		report(r, 0, "%s: %s; the running pipeline goes on unchanged", r->file, err);
		config_free(cfg);
		return;
	}
	report(r, 1, "%s loaded; the replaced pipeline finishes its %llu requests in "
	    "flight", r->file, (unsigned long long)held);
}

int
run_swap(struct run *r, struct cfg_pipeline *cfg, uint64_t *held, char *err, size_t errlen)
{
	struct graph *g = graph_new(cfg, r->loop, r->led, err, errlen);
	if (g == NULL)
		return -1;
	struct generation *gen = calloc(1, sizeof *gen);
	if (gen == NULL) {
		snprintf(err, errlen, "out of memory");
		graph_free(g);
		return -1;
	}
	g->on_finished = run_finished;
	g->on_finished_arg = r;
	gen->r = r;
	gen->g = r->g;
	gen->cfg = r->cfg;
	gen->next = r->retiring;
	r->retiring = gen;
	r->g = g;
	r->cfg = cfg;
	r->led->current = g;
	r->led->reloads++;
	*held = gen->g->inflight;
	graph_start(g);
	ev_timer_init(&gen->deadline_w, on_generation_deadline, r->drain_s, 0.);
	gen->deadline_w.data = gen;
	ev_timer_start(r->loop, &gen->deadline_w);
	graph_retire(gen->g);
	return 0;
}
