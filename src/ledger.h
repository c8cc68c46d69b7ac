/*
 * ledger.h -- the counters of a run, kept apart from the graphs that count.
 *
 * A reload runs two graphs at once for a while: the new one takes new
 * requests while the old one finishes its own.  Both count into one
 * ledger, so the outcome totals stay exact across reloads (accepted =
 * completed + failed + shed + expired + in flight, summed over every graph)
 * and a Prometheus counter never goes back.  Stages, workers and channels
 * count into slots found by name: a stage of the same name in the new graph
 * goes on from where the old one's counters were.
 *
 * Single-threaded, like the loop the graphs run on.
 */
#ifndef PORCH_LEDGER_H
#define PORCH_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

/* A plugin's own counter (porch_stage_count, porch_worker_count). */
struct event_count {
	struct event_count *next;
	char *name;
	uint64_t n;
};

struct stage_stats {
	uint64_t in, out;
	uint64_t outcome[5];     /* indexed by enum porch_outcome */
	struct hist latency;     /* time a message spends held by the stage */
	uint64_t discarded;      /* joins: copies not used (first, late) */
	uint64_t timeouts;       /* joins: decided at the timeout */
	struct event_count *events; /* the plugin's own counters, oldest first */
};

struct worker_stats {
	uint64_t calls, errors, inflight;
	struct event_count *events; /* the plugin's own counters, oldest first */
};

/* One member of a pool (a replica), by "POOL/WORKER" (pool.c). */
enum replica_error { REPLICA_ERR_TIMEOUT, REPLICA_ERR_TRANSPORT, REPLICA_ERR_5XX,
	REPLICA_ERR_4XX, REPLICA_ERR_OTHER, REPLICA_N_ERRORS };
struct replica_stats {
	uint64_t requests, inflight, ejections;
	/* its health as the newest graph left it, for the next after a
	 * reload: a reload does not bring an ejected member back early */
	double back_at;          /* loop time its ejection ends; 0: in */
	unsigned fails;          /* failures in a row */
	unsigned ejections_in_row; /* since its last success */
	uint64_t errors[REPLICA_N_ERRORS]; /* by enum replica_error */
	struct hist latency;     /* a call's whole time, ns */
	struct hist ttft;        /* time to its first piece, ns */
};

/* A pool as a whole (pool.c). */
struct pool_stats {
	uint64_t calls;          /* calls routed through it */
	uint64_t fallbacks;      /* calls it sent to a fallback */
	uint64_t unavailable;    /* calls failed at once: every member out */
};

struct channel_stats {
	uint64_t pushed;
	uint64_t high_water;
	uint64_t refused_reject;      /* new message refused: overflow=reject */
	uint64_t refused_drop_oldest; /* oldest refused: overflow=drop-oldest */
	uint64_t held_back;           /* producer waited: overflow=block */
};

struct totals {
	uint64_t accepted;
	uint64_t outcome[5];          /* indexed by enum porch_outcome */
};

enum ledger_kind { LEDGER_STAGE = 1, LEDGER_WORKER, LEDGER_CHANNEL, LEDGER_REPLICA,
	LEDGER_POOL };

struct ledger_slot;
struct graph;
struct proc;

struct ledger {
	unsigned refs;                /* graphs counting into it, and its owner */
	struct totals totals;
	uint64_t inflight;            /* requests in flight in every graph */
	struct hist loop_lag;         /* how late the lag timer fired, ns */
	double started;               /* loop time the first graph started; 0: not yet */
	uint64_t reloads;             /* graphs swapped in by a reload */
	uint64_t reload_failures;     /* reloads refused: the file or an init failed */
	struct graph *current;        /* the graph new requests go to (set by the run) */
	struct ledger_slot *slots;
	/* threads (shards.h): which shard counts into this ledger, of how
	 * many, and the process they share; 0, 1 and NULL for one thread */
	unsigned shard, n_shards;
	struct proc *proc;
};

/* A new ledger with one reference (allocation aborts on exhaustion, as
 * everywhere in the runtime: util.h). */
struct ledger *ledger_new(void);
struct ledger *ledger_ref(struct ledger *l);
/* Drops a reference; the last one frees the ledger and its slots. */
void ledger_unref(struct ledger *l);

/*
 * The counters of the stage, worker or channel called name (a channel's
 * name is "from:port>to"), zeroed when first asked for.  The pointer stays
 * valid for the ledger's life.
 */
void *ledger_slot(struct ledger *l, enum ledger_kind kind, const char *name);

/*
 * Adds every counter of src into dst, slot by slot (by kind and name):
 * the sum over shards (shards.c).  src may be counting on another thread
 * meanwhile: each counter read is a whole word, the set not a snapshot.
 */
void ledger_add(struct ledger *dst, const struct ledger *src);

/* Adds n to the counter called name in *list (made at 0 the first time). */
void ledger_count(struct event_count **list, const char *name, uint64_t n);

#endif
