/*
 * shards.h -- threads: N shared-nothing shards, one event loop, one thread
 * and one copy of the graph each, in one process.
 *
 * Nothing on a request's path is shared: a shard's graph, channels,
 * messages and ledger are its own, touched by its thread only.  What
 * crosses shards does so explicitly:
 *   - a request a source hands to the shard its session hashes to
 *     (porch_shard): a bounded lock-free queue per shard (ring.h), woken
 *     with ev_async (handoff.c);
 *   - commands from the main thread, which alone handles signals (drain,
 *     reload, a statistics table): a bit in cmds and the same ev_async;
 *   - the process-wide in-flight count, an atomic, so max-inflight bounds
 *     the process and not each shard;
 *   - building, swapping and freeing graphs, and reading every shard's
 *     counters for a sum, under one mutex: never per message.
 */
#ifndef PORCH_SHARDS_H
#define PORCH_SHARDS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ev.h>

#include "ring.h"
#include "run.h"

/* A shard's hand-off queue: requests waiting for its thread. */
#define SHARD_INBOX 4096

/* Commands to a shard (bits of its cmds). */
#define SHARD_CMD_DRAIN  0x1u  /* SIGINT/SIGTERM: stop taking requests, finish */
#define SHARD_CMD_RELOAD 0x2u  /* SIGHUP: swap to proc->next_cfg */
#define SHARD_CMD_CHECK  0x4u  /* something changed: may it end now? */
#define SHARD_CMD_ROOM   0x8u  /* a shard it waits on made room: push again */

struct handoff;
struct proc;

struct shard {
	struct proc *p;
	unsigned idx;
	pthread_t tid;
	int thread_started;
	struct run r;                 /* its graphs: current and retiring */
	ev_async wake_w;              /* cmds or the inbox want it */
	atomic_uint cmds;             /* SHARD_CMD_* */
	struct ring inbox;            /* struct handoff *, from every shard */
	/* this shard's hand-offs refused by a full inbox ('block'), in order:
	 * its sources wait (porch_stage_ready is 0) until they are through */
	struct handoff *pending, *pending_tail;
	struct handoff *held;         /* taken from inbox, waiting for room here */
	atomic_int starved;           /* a producer waits for room in inbox */
	int told_done;                /* counted in proc->done_producing */
	double cpu_s;                 /* its thread's CPU time, once its loop ended */
	int aborted;                  /* past its drain deadline: hand-offs expire */
	int reload_ok;                /* the last reload's result, for main */
	char reload_err[512];
};

struct proc {
	unsigned n;
	struct shard *shards;
	struct ev_loop *main_loop;
	ev_async main_w;              /* a shard ended or answered a reload */
	atomic_uint done_producing;   /* shards that will hand off no more */
	atomic_uint ended;            /* shards whose loop returned */
	atomic_uint reload_answers;   /* shards done with the current reload */
	/* written by every shard per request: a cache line of its own, so
	 * the fields read on every loop iteration (n, shards) stay shared */
	_Alignas(64) atomic_uint_fast64_t inflight; /* requests in flight, every shard */
	char pad_[64 - sizeof(atomic_uint_fast64_t)];
	pthread_mutex_t lock;         /* graphs built, swapped, freed; sums */
	struct cfg_pipeline *next_cfg; /* a reload's, shared by every shard */
	struct cfg_ref *cfgs;         /* every cfg in use, with its users */
	uint64_t reload_failures;     /* reloads refused before any shard saw them */
};

/* ---- graph.c's side (handoff.c, in libporch) ----------------------------- */

/* What shard_route returns when the request stays on this shard, and
 * when the target's queue is full and the channel says reject. */
#define SHARD_HERE (-2)
#define SHARD_FULL (-3)

/*
 * A source's new request m, emitted on port: hands it to the shard its
 * session hashes to.  SHARD_HERE when that is this shard (the caller
 * goes on as without threads); else PORCH_OK (it is on its way, or waits
 * in order behind others for room: the source waits too) or PORCH_REFUSED
 * (SHARD_FULL: the queue of shard *to is full and the channel's
 * overflow is reject or drop-oldest: the caller accepts m and sheds it).
 * *to is the shard the session hashes to.
 */
int shard_route(struct porch_stage *st, int port, struct porch_msg *m, unsigned *to);
/* 1 while this shard's hand-offs wait for room (its sources must wait). */
int shard_blocked(const struct graph *g);
/* Takes what the inbox holds into the shard's current graph. */
void shard_take_inbox(struct shard *s);
/* Pushes the shard's waiting hand-offs again; 1 when none is left. */
int shard_push_pending(struct shard *s);
/* Frees a hand-off. */
void handoff_free(struct handoff *h);
/* The end of a run: frees the hand-offs the shard still has (none after a
 * clean run) and its queue. */
void shard_free_handoffs(struct shard *s);
/* Tells shard i: sets cmd and wakes its loop. */
void proc_tell(struct proc *p, unsigned i, unsigned cmd);
void proc_tell_all(struct proc *p, unsigned cmd);

/* Requests in flight over the process (every shard), or g's ledger's. */
static inline uint64_t
inflight_all(const struct graph *g)
{
	struct proc *p = g->led->proc;
	return p != NULL ? (uint64_t)atomic_load_explicit(&p->inflight,
	    memory_order_relaxed) : g->led->inflight;
}

/* ---- sums (shard_sum.c, in libporch) ------------------------------------- */

/*
 * A graph that reads as the sum of every shard's current one: shard 0's
 * shape, every counter added up (ledger_add), held and channel depth
 * summed.  For the statistics, --stats-json and /metrics; the caller
 * holds p->lock (the shards' graphs stay as they are meanwhile).  Freed
 * with sum_graph_free.
 */
struct graph *sum_graph_new(struct proc *p);
void sum_graph_free(struct graph *g);
/* /metrics over every shard, with per-shard totals (label shard="K");
 * malloc'd, or NULL when memory is short.  Takes p->lock. */
char *proc_metrics_text(struct proc *p);
/* metrics.c: the text of one graph, as porch_metrics_text without threads */
char *metrics_render(const struct graph *g);

/* ---- the command (shards.c, in porch) ------------------------------------ */

struct shards_opts {
	const char *file;
	struct cli_common *common;
	double drain_s;
	const char *stats_path, *pid_path, *status_path, *control_spec;
	int quiet, replay;
	const struct node_opts *node; /* --node, --nats-url: a reload selects again */
};

/* porch run with threads > 1: runs cfg (which it owns from here) on n
 * shards until done; the exit status. */
int shards_run(struct cfg_pipeline *cfg, unsigned n, const struct shards_opts *o);

#endif
