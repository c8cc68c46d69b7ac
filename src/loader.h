/* loader.h -- a pipeline file read into plain structs, with source positions. */
#ifndef PORCH_LOADER_H
#define PORCH_LOADER_H

#include <stddef.h>

#include "cond.h"
#include "diag.h"
#include "params.h"
#include "registry.h"

/* Documented limits (porch.xml(5)). */
#define CHANNEL_CAPACITY_MAX   1048576
#define STAGE_CONCURRENCY_MAX  1048576
#define DEFAULT_CONCURRENCY    64
#define DEFAULT_CAPACITY       128
#define DEFAULT_MAX_INFLIGHT   65536

enum overflow {
	OVERFLOW_BLOCK = 0,
	OVERFLOW_REJECT,
	OVERFLOW_DROP_OLDEST,
};

/* Where something is in the file, 1-based; line 0: not known (e.g. --set). */
struct cfg_pos {
	int line, col;
};

struct cfg_params {
	struct param_input *v;
	size_t n;
};

struct cfg_worker {
	char *name, *plugin_name;
	int line;
	struct cfg_pos at, name_at, plugin_at;   /* the '<', the values */
	struct cfg_params params;
	const struct plugin *plugin;    /* resolved by config_check */
	porch_params *parsed;
};

/* A <member> of a <pool>: a worker and its share (loader_pool.c). */
struct cfg_member {
	char *worker_name;
	int weight;                     /* 1 to POOL_WEIGHT_MAX, default 1 */
	long context_limit;             /* bytes of prompt it takes; 0: any */
	struct cfg_pos at, worker_at, weight_at, limit_at;
	struct cfg_worker *worker;      /* resolved by pool_check */
};

/* A <pool>: workers behind one name, picked per call by a policy. */
struct cfg_pool {
	char *name, *policy_name, *fallback;
	int policy;                     /* enum balance_policy (balance.h) */
	int line;
	struct cfg_pos at, name_at, policy_at, fallback_at;
	struct cfg_member *members;
	size_t n_members;
	struct cfg_params params;       /* <param>: the pool's tuning */
	porch_params *parsed;
	/* the fallback list resolved: a worker or a pool each */
	struct cfg_worker **fb_workers;
	struct cfg_pool **fb_pools;
	size_t n_fallbacks;
};

struct cfg_stage {
	char *name, *plugin_name, *worker_name;
	int concurrency;
	int line;
	struct cfg_pos at, name_at, plugin_at, worker_at;
	struct cfg_params params;
	const struct plugin *plugin;
	struct cfg_worker *worker;
	struct cfg_pool *pool;          /* worker= names a <pool> */
	porch_params *parsed;
	char *node;                     /* node="NAME", or NULL: every node (node.c) */
	struct cfg_pos node_at;
	void *nats;                     /* node.c: a NATS end's state, or NULL */
};

struct cfg_channel {
	char *from, *port, *to;   /* port defaults to "out" */
	int capacity;
	enum overflow overflow;
	int line;
	struct cfg_pos at, from_at, port_at, to_at;
	struct cfg_stage *src, *dst;
	int port_index;
	/* a route: the first channel of a port whose condition holds takes the
	 * message (porch.xml(5), CONDITIONS) */
	struct cond *cond;        /* when="...", compiled; NULL: none */
	struct cfg_pos when_at;
	int otherwise;            /* otherwise="true": takes what no condition took */
	int routed;               /* has when= or otherwise= (even a bad one) */
	int copy;                 /* copy="true": a fan-out's channel */
	struct cfg_pos copy_at;
	/* transport="nats" and its tuning, as written; node.c judges them */
	char *transport, *ack_wait, *max_deliver, *shards;
	struct cfg_pos transport_at, ack_wait_at, max_deliver_at, shards_at;
};

struct cfg_pipeline {
	char *file, *dir;         /* dir: for relative paths in the file */
	char *name;
	struct cfg_pos at;        /* the <pipeline> element */
	char *plugins;            /* the file's plugins= search path, or NULL */
	long max_inflight;
	long threads;             /* threads="N": shards; 0: "auto" (CPUs online) */
	struct cfg_stage *stages;
	size_t n_stages;
	struct cfg_worker *workers;
	size_t n_workers;
	struct cfg_channel *channels;
	size_t n_channels;
	struct cfg_pool *pools;
	size_t n_pools;
	struct registry registry;
	size_t *order;            /* stages in topological order (after check) */
	char *nats_url;           /* nats-url="...", or NULL */
	struct cfg_pos nats_url_at;
	/* node.c: what --node made of the file, freed with it */
	void *node_data;
	void (*node_free)(void *node_data);
};

/* One --set STAGE.PARAM=VALUE (or WORKER.PARAM=VALUE). */
struct override {
	char *target, *param, *value;
};

/*
 * porch replay: the pipeline's source stage (the one named, or the only
 * source) runs with another plugin and parameters, e.g. stdin reading the
 * dead letters.  The rest of the file is loaded and checked as it is.
 */
struct source_swap {
	const char *stage;           /* NULL: the pipeline's only source */
	const char *plugin;
	const char *const *params;   /* name, value, name, value ..., NULL */
};

/*
 * Reads and validates a file: well-formed, valid against the schema, then
 * the graph and every parameter.  Every problem is reported to d.  Returns
 * the pipeline when d->errors is 0 after the call, otherwise NULL.
 */
struct cfg_pipeline *config_load(const char *file, const char *schema,
    char *const *plugin_dirs, size_t n_dirs, const struct override *ov,
    size_t n_ov, const struct source_swap *swap, struct diag *d);
void config_free(struct cfg_pipeline *p);

/* Parses "STAGE.PARAM=VALUE"; -1 with a message if malformed. */
int override_parse(const char *arg, struct override *o, char *err, size_t errlen);

const char *overflow_name(enum overflow o);

/* The most threads (shards) a pipeline may ask for. */
#define THREADS_MAX 1024
/* threads="auto": the CPUs online (at least 1, at most THREADS_MAX). */
unsigned config_threads_auto(void);

/* $PORCH_SCHEMA when set, else NULL: the schema compiled into porch. */
const char *config_schema_path(void);

/* loader_set.c: --set on the pipeline's own attributes (stage concurrency,
 * channel capacity and overflow, the pipeline's max-inflight) */
int override_structural(const struct cfg_pipeline *p, const struct override *o);
void config_set_structural(struct cfg_pipeline *p, const struct override *ov, size_t n_ov,
    struct diag *d);

#endif
