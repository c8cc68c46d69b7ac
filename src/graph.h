/*
 * graph.h -- a running pipeline: stages, workers and channels on one loop.
 *
 * Everything a loop needs hangs off its struct graph; nothing is global,
 * so several graphs (one per thread, or old and new across a reload) can
 * live in one process.
 */
#ifndef PORCH_GRAPH_H
#define PORCH_GRAPH_H

#include <ev.h>
#include <stdint.h>

#include "loader.h"
#include "crash.h"
#include "hist.h"
#include "ledger.h"
#include "porch/plugin.h"

struct channel;

/* The record of a call into a stage's or worker's plugin (crash.h). */
#define CB_STAGE(st, cb, id) cb_set("stage", (st)->name, (st)->d->name, \
	(st)->cfg->plugin->path, (cb), (id))
#define CB_WORKER(w, cb, id) cb_set("worker", (w)->name, (w)->d->name, \
	(w)->cfg->plugin->path, (cb), (id))

struct porch_msg {
	/* What the scheduler and a fan-out's copy touch on every hop comes
	 * first, in the first two cache lines (messages are allocated on a
	 * line): with a few hundred messages in each channel a message is
	 * cold when a stage takes it, and each further line read is a miss
	 * (bench/route).  A copy without metadata touches these two only. */
	struct porch_msg *next;      /* pool, channel outbox */
	struct porch_stage *holder;  /* the stage holding it now, or NULL */
	struct fan *fan;             /* a request waiting for its copies, or a copy's */
	double deadline;             /* loop time; 0: none */
	uint64_t enter_ns;           /* when its holder received it */
	uint64_t id;                 /* read at every hop (the callback's record) */
	enum porch_error error;
	uint32_t n_local;            /* how many locals are set */
	uint16_t copy;               /* a copy: 1 + its index; 0: a request */
	unsigned char cancelled;     /* porch_msg_cancel: no longer wanted */
	unsigned char traced;        /* its origin wants events about it */
	unsigned char input_is_text; /* the input is its text still: not copied */
	unsigned char shared;        /* MSG_SHARE_*: buffers that are not its own */
	unsigned char view;          /* a copy from the copies' pool (msg_clone) */
	unsigned char rare;          /* a field of the last two lines was set (msg_rare) */
	/* second line */
	struct porch_stage *origin;
	char *text;
	size_t text_len;
	char *session;               /* session_len bytes and a NUL */
	size_t session_len;
	size_t n_meta;               /* in pairs */
	uint64_t meta_bloom;         /* two bits a key (meta_bit): most lookups miss */
	char **meta;                 /* key, value, key, value ... */
	/* third line: metadata, timings (a copy's are not recorded) */
	/* the strings' buffers are kept for the next request (msg.c): */
	size_t *meta_size;           /* each string's buffer, in bytes (2 a pair) */
	uint32_t *meta_hash;         /* each key's hash, so a lookup compares few */
	struct msg_timing *timings;  /* n_stages slots: a path visits each once */
	size_t n_timings;
	double enter_now;            /* loop time its holder received it (not a copy) */
	size_t text_cap;
	size_t session_cap;
	size_t meta_cap;             /* in pairs */
	/* the rest */
	size_t meta_slots;           /* pairs with buffers: n_meta <= it <= meta_cap */
	void **local;                /* per stage (porch_msg_set_local), or NULL */
	struct porch_msg *all_next;  /* every message the graph made, to free them */
	struct porch_msg *prev_live, *next_live; /* the graph's in-flight list */
	char *input;                 /* the text as the source emitted it */
	size_t input_len, input_cap;
	/* rare: reset on release only when rare is set (msg_rare) */
	struct channel *pending;     /* the full 'block' channel it waits for */
	void *origin_data;
	unsigned attempts;
	int status;                  /* the last call's upstream status */
	int64_t retry_after_ms;      /* the last call's Retry-After */
	char *error_text;            /* error_len bytes and a NUL */
	size_t error_len, error_cap;
	struct porch_stage *error_stage; /* who failed it */
	/* pool.c: its attempts on its stage's pool */
	struct pool *pool_at;        /* the pool the three below are about */
	uint64_t pool_tried;         /* members tried, as a mask */
	int pool_last;               /* the member of the last attempt; -1 none */
	unsigned pool_fb;            /* fallback steps taken */
};

/* Before a field of the rare group (pending down to pool_fb) is set: so
 * that a message that never had one is released without touching them. */
static inline void
msg_rare(struct porch_msg *m)
{
	m->rare = 1;
}

/*
 * A copy (msg_clone) reads its request's buffers instead of copying them:
 * the bits say which of its buffer fields point into another message's
 * (the request's, which waits for its copies and changes nothing while
 * any is read).  A copy makes its own the first time a stage changes it
 * (copy on write, in msg.c), and fanout.c makes it its own before the
 * request leaves or changes.  A buffer that is shared is never written,
 * grown or freed through the copy.
 */
enum {
	MSG_SHARE_TEXT = 1,
	MSG_SHARE_SESSION = 2,
	MSG_SHARE_META = 4,          /* meta, meta_size and meta_hash */
	MSG_SHARE_INPUT = 8,
	MSG_SHARE_ALL = 15
};

struct msg_timing {
	uint32_t stage;              /* index in graph.stages */
	float ms;
};

struct porch_stage {
	struct graph *g;
	const struct cfg_stage *cfg;
	const struct porch_plugin *d;
	const char *name;
	void *data;
	struct channel **inputs;
	size_t n_inputs, next_input;  /* round robin over fan-in */
	struct channel **outs;        /* by port index; "error" is last */
	struct route **routes;        /* by port index: NULL, or its conditions */
	int n_ports;
	unsigned concurrency, held;
	struct porch_msg *outbox, *outbox_tail; /* held back by full channels */
	size_t outbox_len;
	int is_source, finished, wants_resume, inited;
	int answers_edited;           /* porch_stage_answers_edited */
	struct porch_worker *worker;
	struct pool *pool;            /* worker= names a pool (pool.c) */
	struct stage_stats *stats;    /* in the graph's ledger, by name */
	char init_error[512];
};

struct porch_worker {
	struct graph *g;
	const struct cfg_worker *cfg;
	const struct porch_plugin *d;
	const char *name;
	void *data;
	struct porch_call *free_calls;
	struct porch_call *all_calls; /* every call ever made, to free at the end */
	struct worker_stats *stats;   /* in the graph's ledger, by name */
	uint64_t inflight;            /* this graph's calls in flight */
	int inited;
	char init_error[512];
};

struct porch_call {
	struct porch_call *next;      /* the free list */
	struct porch_call *all_next;  /* the worker's list of every call */
	struct porch_worker *w;
	struct porch_stage *st;       /* the stage that made the call */
	struct porch_msg *m;
	porch_token_fn *on_token;
	porch_piece_fn *on_piece;     /* instead of on_token (porch_infer_pieces) */
	porch_end_fn *on_end;
	void *ctx;
	void *data;
	int active;
	int aside;                    /* porch_infer_aside: m is the call's own */
	struct pool *pool;            /* the pool whose member w is, or NULL */
	int member;
	int got_first;                /* a piece came */
	uint64_t t0;                  /* clock_ns() at submit, for a pool's member */
};

struct graph {
	struct ev_loop *loop;
	struct cfg_pipeline *cfg;     /* borrowed: outlives the graph */
	struct porch_stage *stages;   /* in file order */
	size_t n_stages;
	struct porch_stage **order;   /* topological */
	struct porch_worker *workers;
	size_t n_workers;
	struct pool *pools;           /* pool.c */
	size_t n_pools;
	struct channel *channels;
	size_t n_channels;
	struct porch_msg *free_msgs;
	struct porch_msg *free_copies; /* the copies' pool: they own no buffers */
	struct porch_msg *all_msgs;   /* every message made, pooled or not */
	struct porch_msg *live;       /* in-flight requests, for aborts */
	uint64_t next_id;             /* ids are next_id * id_step + id_base */
	uint64_t id_step, id_base;    /* threads: unique over the shards */
	uint64_t inflight;            /* this graph's requests in flight */
	uint64_t max_inflight;        /* over every graph of the ledger */
	struct ledger *led;           /* the run's counters, shared across reloads */
	size_t sources_left;
	struct porch_msg *current;    /* being passed to process() now */
	struct fan *fans;             /* every fan made, to free them (fanout.c) */
	struct fan *free_fans;        /* their pool */
	int woken, draining, aborted;
	int retired;                  /* a reload replaced it (graph_retire) */
	ev_check check_w;
	ev_idle idle_w;
	ev_timer lag_w;               /* measures the loop's lag; see graph.c */
	ev_tstamp lag_due;            /* when lag_w should fire */
	double started;
	void (*on_finished)(struct graph *g, void *arg); /* all done */
	void *on_finished_arg;
};

/*
 * Builds the runtime graph from a checked pipeline and runs every plugin's
 * init (workers first).  It counts into led (a reference is taken), or into
 * a ledger of its own when led is NULL.  On failure returns NULL with err naming the stage,
 * plugin file and reason; everything already initialised is finalised.
 */
struct graph *graph_new(struct cfg_pipeline *cfg, struct ev_loop *loop,
    struct ledger *led, char *err, size_t errlen);
/* Starts the scheduler and calls every stage's start. */
void graph_start(struct graph *g);
/* Sources stop taking requests; the graph finishes when in-flight ends. */
void graph_drain(struct graph *g);
/* A reload replaced g: sources retire (or drain); in-flight work finishes. */
void graph_retire(struct graph *g);
/* Ends every request still in flight as expired (a drain deadline). */
void graph_abort(struct graph *g, const char *why);
int graph_done(const struct graph *g);
void graph_free(struct graph *g);

/* msg.c */
struct porch_msg *msg_alloc(struct graph *g);
/* msg.c: the message of a stage's own call (porch_infer_aside) */
struct porch_msg *msg_aside(struct graph *g, const struct porch_msg *m);
void msg_release(struct graph *g, struct porch_msg *m);
void msg_free_all(struct graph *g);
void msg_set_error(struct porch_msg *m, enum porch_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* graph.c: a request ends; counted, told to its origin, recycled. */
void graph_finish(struct graph *g, struct porch_msg *m, enum porch_outcome o,
    struct porch_stage *where);
void graph_wake(struct graph *g);
void stage_release(struct porch_stage *st, struct porch_msg *m);
/* msg.c: gives each stage holding a local pointer for m its forget call */
void msg_forget_locals(struct graph *g, struct porch_msg *m);
/* msg.c: the source's text becomes the request's input */
void msg_keep_input(struct porch_msg *m);
/* msg.c: a copy of m for a fan-out (fanout.c): it reads m's buffers,
 * which must not change or go while it does (see MSG_SHARE_TEXT) */
struct porch_msg *msg_clone(struct graph *g, const struct porch_msg *m);
/* msg.c: a copy's buffers become its own (a copy of the bytes) */
void msg_unshare(struct porch_msg *m);
/* msg.c: a and b exchange text, metadata, status and Retry-After */
void msg_swap_answer(struct porch_msg *a, struct porch_msg *b);
/* graph.c: how many requests st could emit now, finished or not (the room
 * porch_stage_ready reports) */
size_t stage_room(const struct porch_stage *st);
/* graph.c: m, released by st, goes into c (behind st's held-back ones) */
int stage_send(struct porch_stage *st, struct channel *c, struct porch_msg *m);

/* call.c */
void worker_free_calls(struct porch_worker *w);

#endif
