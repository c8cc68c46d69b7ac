/*
 * run.h -- a running porch: the graph that takes requests, the graphs a
 * reload replaced that are still finishing theirs, and the signals.
 * Shared by cmd_run.c (start, signals, exit) and reload.c (the swap).
 */
#ifndef PORCH_RUN_H
#define PORCH_RUN_H

#include <ev.h>
#include <pthread.h>

#include "cli.h"
#include "graph.h"

struct run;
struct shard;
struct proc;

/* A graph a reload replaced, finishing what it holds. */
struct generation {
	struct generation *next;
	struct run *r;
	struct graph *g;
	struct cfg_pipeline *cfg;
	ev_timer deadline_w;          /* --drain-timeout after the reload */
};

struct run {
	struct ev_loop *loop;
	struct graph *g;              /* takes new requests */
	struct cfg_pipeline *cfg;     /* g's */
	struct ledger *led;           /* every graph's counters */
	struct generation *retiring;  /* replaced graphs, newest first */
	ev_timer reap_w;              /* frees finished generations, outside their callbacks */
	ev_signal sigint_w, sigterm_w, sigusr1_w, sighup_w;
	const char *file;
	struct cli_common *common;
	const struct node_opts *node; /* --node, --nats-url (node.h) */
	const char *status_path;      /* PID-FILE.reload, or NULL */
	uint64_t attempts;            /* reloads tried, numbering the status file */
	int replay;                   /* porch replay: no reload */
	ev_timer drain_w;
	ev_timer status_w;            /* systemd's STATUS= line (notify.c) */
	double drain_s;
	int signals;
	/* threads (shards.h): the shard this run is, and the process; NULL
	 * for one thread (and for the main thread's run, proc alone) */
	struct shard *shard;
	struct proc *proc;
};

/* A graph of r finished (its on_finished): frees retired ones, ends the run. */
void run_finished(struct graph *g, void *arg);
/* SIGHUP: the file again; swaps the graph when it is valid (reload.c). */
void run_reload(struct run *r);
/* A reload's two steps shared by one loop and shards (reload.c). */
struct cfg_pipeline *run_reload_load(struct run *r, pthread_mutex_t *lock, char **detail,
    int *errors);
int run_reload_select(struct run *r, struct cfg_pipeline *cfg);
/*
 * The swap of a reload: builds a graph of cfg beside r's, starts it, and
 * retires the old one, which finishes what it holds.  0 (cfg is r's now,
 * *held says how many requests the old one finishes), or -1 with err set
 * and nothing changed (cfg is still the caller's).
 */
int run_swap(struct run *r, struct cfg_pipeline *cfg, uint64_t *held, char *err,
    size_t errlen);
/* A graph's cfg is no longer used by r (freed, or one user fewer). */
void run_cfg_release(struct run *r, struct cfg_pipeline *cfg);
/* The reload's result, to stderr and PID-FILE.reload (reload.c). */
void run_report(struct run *r, int ok, const char *detail, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* shards.c: one of the shard's graphs is done (from run_finished) */
void shard_graph_finished(struct shard *s);
/* cmd_run.c: writes the pid file (whole, atomically); 0 or -1 with err */
int run_write_pid(const char *path, char *err, size_t errlen);
/* shards.c: may this shard's loop end (its graphs are done)? */
int shard_may_end(struct shard *s);
/* shards.c: a cfg shared by the shards has one user fewer */
void proc_cfg_unref(struct proc *p, struct cfg_pipeline *cfg);
/* Frees every retired generation (at exit). */
void run_free_generations(struct run *r);
/* The status file's name for a pid file: "PATH.reload". */
void run_status_path(const char *pid_path, char *out, size_t len);

#endif
