/*
 * run.h -- a running porch: the graph that takes requests, the graphs a
 * reload replaced that are still finishing theirs, and the signals.
 * Shared by cmd_run.c (start, signals, exit) and reload.c (the swap).
 */
#ifndef PORCH_RUN_H
#define PORCH_RUN_H

#include <ev.h>

#include "cli.h"
#include "graph.h"

struct run;

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
};

/* A graph of r finished (its on_finished): frees retired ones, ends the run. */
void run_finished(struct graph *g, void *arg);
/* SIGHUP: the file again; swaps the graph when it is valid (reload.c). */
void run_reload(struct run *r);
/* Frees every retired generation (at exit). */
void run_free_generations(struct run *r);
/* The status file's name for a pid file: "PATH.reload". */
void run_status_path(const char *pid_path, char *out, size_t len);

#endif
