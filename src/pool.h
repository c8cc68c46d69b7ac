/*
 * pool.h -- a <pool> at run time: its members' health and the routing of
 * each call to one of them (or to a fallback).
 *
 * A stage whose worker= names a pool has st->pool set; call.c asks
 * pool_route for the worker to call, tells pool_call_start and
 * pool_call_end about the call, and pool.c keeps the balancer's counts,
 * the members' health and the counters.  Every ending reaches
 * pool_call_end (done, failed, cancelled, abandoned), so the in-flight
 * counts never drift.
 */
#ifndef PORCH_POOL_H
#define PORCH_POOL_H

#include <stdint.h>

#include "balance.h"
#include "graph.h"

struct pool_member {
	struct porch_worker *w;
	struct replica_stats *stats;  /* in the ledger, "POOL/WORKER" */
	long context_limit;           /* tokens; 0: any prompt */
	unsigned fails;               /* failures in a row */
	unsigned ejections;           /* ejections since its last success */
	double back_at;               /* loop time its ejection ends; 0: in */
	int probing;                  /* a probe is out */
};

struct pool {
	struct graph *g;
	const struct cfg_pool *cfg;
	const char *name;
	struct balance bal;
	struct pool_member *m;
	size_t n;
	struct pool_stats *stats;
	unsigned failures;            /* in a row that eject */
	double cooldown, max_cooldown; /* s */
	size_t max_ejected;
	size_t n_ejected;
	double next_back;             /* the earliest back_at; 0: none out */
	struct pool **fb_pools;       /* fallback=, in order: a pool ... */
	struct porch_worker **fb_workers; /* ... or a worker */
	size_t n_fb;
	double probe_interval;        /* s; 0: no probes */
	ev_timer probe_w;
	int probe_started;
};

/* Where a call goes: a worker, and the pool member it is (pool NULL: a
 * plain worker, a fallback). */
struct pool_target {
	struct porch_worker *w;
	struct pool *pool;
	int member;
};

/* graph.c: every pool of the graph, after its workers; NULL-free on error. */
void pools_new(struct graph *g);
void pools_start(struct graph *g);
void pools_free(struct graph *g);

/*
 * The worker for m's next attempt on p.  A retry avoids the member the last
 * attempt used; a request that has been tried on every member it fits, or
 * finds them all ejected, goes to the fallbacks (a trace event each step).
 * Returns 0, or -1 with *err, m's status (503) and Retry-After set and
 * why filled: nowhere to go.
 */
int pool_route(struct pool *p, struct porch_stage *st, struct porch_msg *m,
    struct pool_target *t, enum porch_error *err, char *why, size_t whylen);

void pool_call_start(struct pool *p, int member);
/* The call's first piece came after ns. */
void pool_call_first(struct pool *p, int member, uint64_t ns);
/* The call ended after ns: err PORCH_ERR_NONE done, PORCH_ERR_CANCELLED
 * not wanted any more (no health verdict), else a failure with status. */
void pool_call_end(struct pool *p, int member, enum porch_error err, int status,
    uint64_t ns);

/* Members that may take calls now (after returning those whose time is
 * up); for /readyz. */
size_t pool_healthy(struct pool *p);

#endif
