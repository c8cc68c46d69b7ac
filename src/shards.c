/*
 * shards.c -- porch run with threads="N": N shards, one thread, one event
 * loop and one copy of the graph each (shards.h).
 *
 * The main thread owns the signals, the control listener and the pid
 * file; it runs a loop of its own and tells the shards what to do through
 * each one's ev_async (proc_tell).  A shard ends when its graphs are done
 * and no shard can hand it a request any more (every shard's sources have
 * finished and its waiting hand-offs are through: done_producing == N);
 * the main loop ends when every shard has, and the main thread joins them,
 * prints the sum and frees everything.
 *
 * Reload: the main thread reads and checks the file once; an invalid file
 * changes nothing on any shard.  A valid one is shared (read-only) by
 * every shard, each of which builds its new graph and swaps on its own
 * thread, and answers; the reload's status (PID-FILE.reload) is written
 * when every shard has answered.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "notify.h"
#include "node.h"
#include "shards.h"
#include "stats.h"
#include "util.h"

struct cfg_ref {
	struct cfg_ref *next;
	struct cfg_pipeline *cfg;
	unsigned users;
};

/* The main thread's state. */
struct main_run {
	struct proc *p;
	struct run r;                 /* loop, file, status path; g is NULL */
	ev_signal sigint_w, sigterm_w, sigusr1_w, sighup_w;
	int reloading;
	const struct shards_opts *o;
};

/* ---- shared configurations --------------------------------------------- */

static void
proc_cfg_add(struct proc *p, struct cfg_pipeline *cfg, unsigned users)
{
	struct cfg_ref *c = xcalloc(1, sizeof *c);
	c->cfg = cfg;
	c->users = users;
	pthread_mutex_lock(&p->lock);
	c->next = p->cfgs;
	p->cfgs = c;
	pthread_mutex_unlock(&p->lock);
}

void
proc_cfg_unref(struct proc *p, struct cfg_pipeline *cfg)
{
	struct cfg_pipeline *dead = NULL;
	pthread_mutex_lock(&p->lock);
	for (struct cfg_ref **pp = &p->cfgs; *pp != NULL; pp = &(*pp)->next) {
		struct cfg_ref *c = *pp;
		if (c->cfg != cfg)
			continue;
		if (--c->users == 0) {
			*pp = c->next;
			dead = c->cfg;
			free(c);
		}
		break;
	}
	pthread_mutex_unlock(&p->lock);
	config_free(dead);
}

/* ---- a shard's thread ---------------------------------------------------- */

int
shard_may_end(struct shard *s)
{
	struct proc *p = s->p;
	return atomic_load(&p->done_producing) == p->n && s->held == NULL &&
	    s->pending == NULL && ring_size(&s->inbox) == 0;
}

/* Counts the shard in done_producing once its sources can hand off no
 * more; the last one tells every shard to look again. */
static void
check_done_producing(struct shard *s)
{
	if (s->told_done || s->r.g->sources_left > 0 || s->pending != NULL)
		return;
	s->told_done = 1;
	if (atomic_fetch_add(&s->p->done_producing, 1) + 1 == s->p->n)
		proc_tell_all(s->p, SHARD_CMD_CHECK);
}

void
shard_graph_finished(struct shard *s)
{
	check_done_producing(s);
}

static void
on_shard_drain_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	struct shard *s = w->data;
	log_warn("shard %u: drain deadline (%.3gs) passed with %llu requests in flight; "
	    "they end as expired", s->idx, s->r.drain_s,
	    (unsigned long long)s->r.led->inflight);
	for (struct generation *gen = s->r.retiring; gen != NULL; gen = gen->next)
		graph_abort(gen->g, "the drain deadline passed");
	graph_abort(s->r.g, "the drain deadline passed");
	/* requests still coming from other shards end as expired on arrival */
	s->aborted = 1;
	shard_take_inbox(s);
	run_finished(s->r.g, &s->r);
}

static void
shard_drain(struct shard *s)
{
	if (s->r.signals++ > 0)
		return;
	ev_timer_init(&s->r.drain_w, on_shard_drain_deadline, s->r.drain_s, 0);
	s->r.drain_w.data = s;
	ev_timer_start(s->r.loop, &s->r.drain_w);
	ev_unref(s->r.loop);
	for (struct generation *gen = s->r.retiring; gen != NULL; gen = gen->next)
		graph_drain(gen->g);
	graph_drain(s->r.g);
}

static void
shard_reload(struct shard *s)
{
	struct proc *p = s->p;
	struct cfg_pipeline *cfg = p->next_cfg;
	char err[2048];
	uint64_t held = 0;
	pthread_mutex_lock(&p->lock);
	int rc = run_swap(&s->r, cfg, &held, err, sizeof err);
	pthread_mutex_unlock(&p->lock);
	if (rc != 0) {
		s->reload_ok = 0;
		snprintf(s->reload_err, sizeof s->reload_err, "%.500s", err);
		s->r.led->reload_failures++;
		proc_cfg_unref(p, cfg);
	} else {
		s->reload_ok = 1;
		log_line(PORCH_LOG_DEBUG, NULL, NULL, 0, NULL, "shard %u: reloaded; the "
		    "replaced pipeline finishes its %llu requests in flight", s->idx,
		    (unsigned long long)held);
		/* a new source on this shard can hand off again */
		if (s->told_done && s->r.g->sources_left > 0) {
			s->told_done = 0;
			atomic_fetch_sub(&p->done_producing, 1);
		}
	}
	atomic_fetch_add(&p->reload_answers, 1);
	ev_async_send(p->main_loop, &p->main_w);
}

static void
on_shard_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop; (void)revents;
	struct shard *s = w->data;
	unsigned cmds = atomic_exchange(&s->cmds, 0);
	if (cmds & SHARD_CMD_DRAIN)
		shard_drain(s);
	if (cmds & SHARD_CMD_RELOAD)
		shard_reload(s);
	if (s->pending != NULL && shard_push_pending(s)) {
		/* through: the sources waiting behind them go on */
		graph_wake(s->r.g);
		check_done_producing(s);
	}
	shard_take_inbox(s);
	/* whatever changed, the reaper looks whether the shard may end */
	run_finished(s->r.g, &s->r);
}

static void *
shard_main(void *arg)
{
	struct shard *s = arg;
	graph_start(s->r.g);
	ev_run(s->r.loop, 0);
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
		s->cpu_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	atomic_fetch_add(&s->p->ended, 1);
	ev_async_send(s->p->main_loop, &s->p->main_w);
	return NULL;
}

/* ---- the main thread ------------------------------------------------------ */

static void
on_main_async(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)revents;
	struct main_run *mr = w->data;
	struct proc *p = mr->p;
	if (mr->reloading && atomic_load(&p->reload_answers) == p->n) {
		mr->reloading = 0;
		unsigned bad = 0, first = 0;
		for (unsigned i = 0; i < p->n; i++)
			if (!p->shards[i].reload_ok && bad++ == 0)
				first = i;
		if (bad == 0)
			run_report(&mr->r, 1, NULL, "%s loaded on every shard (%u)", mr->o->file,
			    p->n);
		else
			run_report(&mr->r, 0, NULL, "%s: %s on %u of %u shards (shard %u first); "
			    "those go on with the pipeline they had", mr->o->file,
			    p->shards[first].reload_err, bad, p->n, first);
		notify_ready("running %s: %s", mr->o->file, bad == 0 ? "reloaded" :
		    "reload failed");
		p->next_cfg = NULL;
	}
	if (atomic_load(&p->ended) == p->n)
		ev_break(loop, EVBREAK_ALL);
}

static void
on_main_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop; (void)revents;
	struct main_run *mr = w->data;
	const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";
	if (++mr->r.signals > 1) {
		log_warn("second %s: exiting at once with %llu requests in flight", name,
		    (unsigned long long)atomic_load(&mr->p->inflight));
		exit(128 + w->signum);
	}
	log_info("%s: draining %llu requests in flight on %u shards (deadline %.3gs; "
	    "send again to exit at once)", name,
	    (unsigned long long)atomic_load(&mr->p->inflight), mr->p->n, mr->r.drain_s);
	notify_stopping("draining (%s; deadline %.3gs)", name, mr->r.drain_s);
	proc_tell_all(mr->p, SHARD_CMD_DRAIN);
}

static void
on_main_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop; (void)revents;
	struct main_run *mr = w->data;
	stats_log_proc(mr->p, 1);
}

static void
on_main_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop; (void)revents;
	struct main_run *mr = w->data;
	struct proc *p = mr->p;
	struct run *r = &mr->r;
	r->attempts++;
	if (r->signals > 0) {
		p->reload_failures++;
		run_report(r, 0, NULL, "porch is draining (SIGINT/SIGTERM): not reloading %s",
		    r->file);
		return;
	}
	if (r->replay) {
		p->reload_failures++;
		run_report(r, 0, NULL, "porch replay does not reload: %s goes on unchanged",
		    r->file);
		return;
	}
	if (mr->reloading || atomic_load(&p->done_producing) == p->n) {
		p->reload_failures++;
		run_report(r, 0, NULL, "%s: %s; not reloading", r->file, mr->reloading ?
		    "a reload is under way on the shards" : "the pipeline is finishing");
		return;
	}
	notify_reloading(r->file);
	char *detail = NULL;
	int errors = 0;
	struct cfg_pipeline *cfg = run_reload_load(r, &p->lock, &detail, &errors);
	if (cfg == NULL) {
		p->reload_failures++;
		run_report(r, 0, detail, "%s is not valid (%d error%s above); the running "
		    "pipeline goes on unchanged on every shard", r->file, errors,
		    errors == 1 ? "" : "s");
		free(detail);
		notify_ready("running: reload failed, the pipeline goes on unchanged");
		return;
	}
	free(detail);
	if (run_reload_select(r, cfg) != 0) {
		p->reload_failures++;
		run_report(r, 0, NULL, "%s: its nodes or NATS channels are not valid "
		    "(above); the running pipeline goes on unchanged on every shard", r->file);
		config_free(cfg);
		return;
	}
	if (cfg->threads != (long)p->n && cfg->threads != 0)
		log_warn("reload: %s has threads=\"%ld\"; the number of threads changes only "
		    "on a restart (%u go on)", r->file, cfg->threads, p->n);
	proc_cfg_add(p, cfg, p->n);
	p->next_cfg = cfg;
	atomic_store(&p->reload_answers, 0);
	mr->reloading = 1;
	proc_tell_all(p, SHARD_CMD_RELOAD);
}

/* Frees what a shard holds (after its thread is joined, or never started). */
static void
shard_free(struct shard *s)
{
	struct run *r = &s->r;
	if (r->loop == NULL)
		return;
	if (ev_is_active(&s->wake_w))
		ev_async_stop(r->loop, &s->wake_w);
	if (r->signals > 0 && ev_is_active(&r->drain_w)) {
		ev_ref(r->loop);
		ev_timer_stop(r->loop, &r->drain_w);
	}
	run_free_generations(r);
	if (r->g != NULL)
		graph_free(r->g);
	if (r->cfg != NULL)
		proc_cfg_unref(s->p, r->cfg);
	shard_free_handoffs(s);
	ledger_unref(r->led);
	ev_loop_destroy(r->loop);
	r->loop = NULL;
}

int
shards_run(struct cfg_pipeline *cfg, unsigned n, const struct shards_opts *o)
{
	struct proc *p = xcalloc_line(sizeof *p); /* its _Alignas(64) fields */
	struct main_run mr;
	memset(&mr, 0, sizeof mr);
	mr.p = p;
	mr.o = o;
	p->n = n;
	p->shards = xcalloc_line(n * sizeof *p->shards);
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->inflight, 0);
	int status = EXIT_OK;
	char err[2048];
	p->main_loop = ev_default_loop(EVFLAG_AUTO);
	if (p->main_loop == NULL) {
		cli_error("%s: cannot create the event loop (bad $LIBEV_FLAGS?)", o->file);
		config_free(cfg);
		free(p->shards);
		free(p);
		return EXIT_RUNTIME;
	}
	proc_cfg_add(p, cfg, n);
	/* every shard's graph is built here, in turn, before any thread runs:
	 * shard 0 first, so the others find its listeners (port 0) */
	unsigned built = 0;
	for (unsigned i = 0; i < n; i++) {
		struct shard *s = &p->shards[i];
		s->p = p;
		s->idx = i;
		s->r.shard = s;
		s->r.proc = p;
		s->r.drain_s = o->drain_s;
		s->r.file = o->file;
		s->r.common = o->common;
		s->r.replay = o->replay;
		s->r.loop = ev_loop_new(EVFLAG_AUTO);
		if (s->r.loop == NULL || ring_init(&s->inbox, SHARD_INBOX) != 0) {
			cli_error("%s: cannot create shard %u's event loop", o->file, i);
			status = EXIT_RUNTIME;
			break;
		}
		s->r.led = ledger_new();
		s->r.led->shard = i;
		s->r.led->n_shards = n;
		s->r.led->proc = p;
		s->r.g = graph_new(cfg, s->r.loop, s->r.led, err, sizeof err);
		if (s->r.g == NULL) {
			cli_error("%s: shard %u: %s", o->file, i, err);
			status = EXIT_RUNTIME;
			break;
		}
		s->r.cfg = cfg;
		s->r.led->current = s->r.g;
		s->r.g->on_finished = run_finished;
		s->r.g->on_finished_arg = &s->r;
		ev_async_init(&s->wake_w, on_shard_wake);
		s->wake_w.data = s;
		ev_async_start(s->r.loop, &s->wake_w);
		built++;
	}
	if (status != EXIT_OK) {
		/* cfg's users: the shards that took it, and the ones that did not */
		for (unsigned i = built; i < n; i++)
			proc_cfg_unref(p, cfg);
		for (unsigned i = 0; i < n; i++)
			shard_free(&p->shards[i]);
		ev_loop_destroy(p->main_loop);
		pthread_mutex_destroy(&p->lock);
		free(p->shards);
		free(p);
		return status;
	}

	struct run *r = &mr.r;
	r->loop = p->main_loop;
	r->proc = p;
	r->file = o->file;
	r->common = o->common;
	r->drain_s = o->drain_s;
	r->status_path = o->status_path;
	r->replay = o->replay;
	r->node = o->node;
	ev_async_init(&p->main_w, on_main_async);
	p->main_w.data = &mr;
	ev_async_start(p->main_loop, &p->main_w);
	ev_signal_init(&mr.sigint_w, on_main_stop, SIGINT);
	ev_signal_init(&mr.sigterm_w, on_main_stop, SIGTERM);
	ev_signal_init(&mr.sigusr1_w, on_main_usr1, SIGUSR1);
	ev_signal_init(&mr.sighup_w, on_main_hup, SIGHUP);
	mr.sigint_w.data = mr.sigterm_w.data = mr.sigusr1_w.data = mr.sighup_w.data = &mr;
	ev_signal_start(p->main_loop, &mr.sigint_w);
	ev_signal_start(p->main_loop, &mr.sigterm_w);
	ev_signal_start(p->main_loop, &mr.sigusr1_w);
	ev_signal_start(p->main_loop, &mr.sighup_w);

	/* the signals are the main thread's: the shards' threads block them */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		struct shard *s = &p->shards[i];
		if (pthread_create(&s->tid, NULL, shard_main, s) != 0) {
			cli_error("%s: cannot start shard %u's thread: %s", o->file, i,
			    strerror(errno));
			status = EXIT_RUNTIME;
			/* the started ones drain and end; this one never runs */
			atomic_fetch_add(&p->ended, n - i);
			atomic_fetch_add(&p->done_producing, n - i);
			proc_tell_all(p, SHARD_CMD_DRAIN | SHARD_CMD_CHECK);
			break;
		}
		s->thread_started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	struct control *control = NULL;
	const char *pid_path = o->pid_path;
	if (status == EXIT_OK && o->control_spec != NULL &&
	    (control = control_open(r, o->control_spec, err, sizeof err)) == NULL) {
		cli_error("%s", err);
		status = EXIT_RUNTIME;
		proc_tell_all(p, SHARD_CMD_DRAIN);
	}
	if (status == EXIT_OK && pid_path != NULL &&
	    run_write_pid(pid_path, err, sizeof err) != 0) {
		cli_error("%s", err);
		pid_path = NULL;
		status = EXIT_RUNTIME;
		proc_tell_all(p, SHARD_CMD_DRAIN);
	} else if (status == EXIT_OK) {
		notify_ready("running %s on %u threads", cfg->name, n);
	}
	/* the signal watchers alone must not keep the main loop alive: the
	 * async (a shard ended) does, until every shard has */
	for (int k = 0; k < 4; k++)
		ev_unref(p->main_loop);
	if (atomic_load(&p->ended) < n)
		ev_run(p->main_loop, 0);
	for (unsigned i = 0; i < n; i++)
		if (p->shards[i].thread_started)
			pthread_join(p->shards[i].tid, NULL);
	if (r->signals == 0)
		notify_stopping("stopping %s: the pipeline ended", cfg->name);
	for (unsigned i = 0; i < n; i++) {
		struct shard *s = &p->shards[i];
		if (s->thread_started && !graph_done(s->r.g)) {
			log_error("%s: internal error: shard %u's loop stopped with %llu requests "
			    "in flight and %zu sources running", o->file, i,
			    (unsigned long long)s->r.g->inflight, s->r.g->sources_left);
			status = EXIT_RUNTIME;
		}
	}
	if (!o->quiet)
		stats_log_proc(p, 0);
	if (o->stats_path != NULL &&
	    stats_write_json_proc(p, o->stats_path, err, sizeof err) != 0) {
		cli_error("%s", err);
		status = EXIT_RUNTIME;
	}
	for (int k = 0; k < 4; k++)
		ev_ref(p->main_loop);
	ev_signal_stop(p->main_loop, &mr.sigint_w);
	ev_signal_stop(p->main_loop, &mr.sigterm_w);
	ev_signal_stop(p->main_loop, &mr.sigusr1_w);
	ev_signal_stop(p->main_loop, &mr.sighup_w);
	ev_async_stop(p->main_loop, &p->main_w);
	control_close(control);
	for (unsigned i = 0; i < n; i++)
		shard_free(&p->shards[i]);
	/* a reload's cfg no shard took (they all failed) */
	while (p->cfgs != NULL) {
		struct cfg_ref *c = p->cfgs;
		p->cfgs = c->next;
		config_free(c->cfg);
		free(c);
	}
	ev_loop_destroy(p->main_loop);
	pthread_mutex_destroy(&p->lock);
	free(p->shards);
	free(p);
	struct stat sb;
	if (pid_path != NULL && lstat(pid_path, &sb) == 0 && S_ISREG(sb.st_mode))
		unlink(pid_path);
	if (o->status_path != NULL && lstat(o->status_path, &sb) == 0 && S_ISREG(sb.st_mode))
		unlink(o->status_path);
	return status;
}
