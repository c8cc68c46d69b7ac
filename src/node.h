/*
 * node.h -- one pipeline file, several processes: which stages this one
 * runs (porch run --node NAME), and what a channel over NATS becomes at
 * each of its ends.
 *
 * A stage with node="NAME" runs only in the process started with --node
 * NAME; one without node= runs in every process.  Without --node a process
 * runs every stage.  A channel with transport="nats" from A to B becomes,
 * where A runs, a channel from A into a stand-in for B (the proxy, nats.c)
 * that publishes to the channel's JetStream stream and brings B's answers
 * back; and, where B runs, a source that pulls from the stream into B, and
 * for each of B's output ports a sink that sends what B emits home to the
 * node that published it.  The rewrite is done on the checked
 * configuration, before any graph is built, so the graph (graph.c) knows
 * nothing of NATS: the proxy, source and sinks are stages.
 */
#ifndef PORCH_NODE_H
#define PORCH_NODE_H

#include <stdint.h>

#include "loader.h"

/* What porch run was told on its command line. */
struct node_opts {
	const char *node;      /* --node NAME, or NULL: every stage */
	const char *nats_url;  /* --nats-url URL, or NULL: the file's nats-url= */
	int shard;             /* --nats-shard K, or -1: none */
};

/* One channel over NATS, as both its ends see it (names of the JetStream
 * objects it uses: porch.xml(5) NATS). */
struct nats_chan {
	char *url;             /* the server, nats://HOST:PORT[,...] */
	char *stream;          /* PORCH_<pipeline>_<from>_<port>_<to>, '-' as '_' */
	char *subject;         /* porch.<pipeline>.<from>.<port>.<to> */
	char *durable;         /* the receiving stage's consumer: <to> */
	char *home_prefix;     /* porch.<pipeline>.home: + .<instance> */
	char *from, *to;       /* stage names, for messages */
	uint32_t capacity;     /* max-ack-pending and the stream's max-msgs */
	enum overflow overflow;
	int64_t ack_wait_ms;
	int max_deliver;
	unsigned shards;       /* shards="N": subject.K, K = porch_shard(session); 0: none */
};

/* A NATS end, as a stage of the rewritten configuration (cfg_stage.nats). */
enum nats_role {
	NATS_PROXY = 1,        /* stands for the receiving stage where it does not run */
	NATS_IN,               /* pulls the stream into the receiving stage */
	NATS_HOME,             /* sends what the receiving stage emits on a port home */
};

struct nats_end {
	enum nats_role role;
	struct nats_chan *chan;
	int port;              /* NATS_HOME: the receiving stage's port */
	int shard;             /* NATS_IN of a sharded channel: the one it pulls */
	struct node_state *ns; /* the configuration's, for the graphs' connections */
};

/* node.c's part of a configuration (cfg_pipeline.node_data). */
struct node_state {
	struct nats_chan **chans;
	size_t n_chans;
	/* stages and channels the node does not run, freed with it */
	struct cfg_stage *dropped_stages;
	size_t n_dropped_stages;
	struct cfg_channel *dropped_channels;
	size_t n_dropped_channels;
	struct nats_end **ends;
	size_t n_ends;
	/* nats.c: one connection per graph (per loop), created on demand */
	void *conns;
	void *conns_lock;
};

/*
 * Checks what the transport and node attributes say that the file can be
 * judged on alone (porch check and porch run): transport's value, ack-wait
 * and max-deliver, and the shapes a NATS channel allows.  Errors go to d.
 */
void node_check(struct cfg_pipeline *p, struct diag *d);

/*
 * porch run: keeps the stages of o->node and turns each NATS channel into
 * its ends (see above).  Returns 0, or -1 after reporting to d (a node that
 * names no stage, a NATS channel with no server, a local channel between
 * two nodes).  p must have passed config_load; it stays valid for graph_new.
 */
int node_select(struct cfg_pipeline *p, const struct node_opts *o, struct diag *d);

/* The first NATS server the configuration needs, or NULL: none. */
const char *node_nats_url(const struct cfg_pipeline *p);

#endif
