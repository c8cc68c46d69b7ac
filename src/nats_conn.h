/*
 * nats_conn.h -- a graph's NATS connection (nats_conn.c), shared by the
 * NATS ends of that graph (nats_stage.c).  Internal to porch run.
 */
#ifndef PORCH_NATS_CONN_H
#define PORCH_NATS_CONN_H

#include <pthread.h>
#include <stdint.h>

#include <ev.h>
#include <nats/nats.h>

#include "node.h"

struct graph;
struct in_end;

/* What a libnats thread hands the loop. */
enum qkind {
	Q_HOME = 1,    /* on our home subject: a piece or the end of an answer */
	Q_ACK,         /* the origin took an end we sent (or no one is there) */
	Q_JOB,         /* a request pulled from a stream, for in */
	Q_PUBACK,      /* JetStream refused a publish: key, st, errcode */
	Q_RECONNECTED, /* the connection is back after the server was away */
	Q_EVICTED,     /* drop-oldest: key, errcode 1 dropped one (nats_evict.h) */
	Q_CHECKED,     /* published again and checked: key, st, errcode (nats_recheck.h) */
};

struct qitem {
	struct qitem *next;
	enum qkind kind;
	natsMsg *msg;
	struct in_end *in;
	uint64_t key;
	natsStatus st;
	int errcode;
};

struct pend;
struct job;

struct conn {
	struct conn *next;          /* node_state.conns */
	struct graph *g;
	struct node_state *ns;
	int refs;
	natsConnection *nc;
	jsCtx *js;
	char instance[128];         /* NODE-PID-N-RANDOM: this graph, everywhere */
	char home[700];             /* answers for requests we sent come here */
	char ackpfx[700];           /* ends we send reply here: "no responders" */
	natsSubscription *home_sub, *ack_sub;
	ev_async wake;
	ev_timer tick;              /* once a second: resends, in-progress, deadlines */
	pthread_mutex_t lock;       /* guards head, tail, closing */
	struct qitem *head, *tail;
	int closing;
	/* sender: requests waiting for their answer, by key (the message id) */
	struct pend **pend;
	size_t pend_mask;
	struct pend *pend_all;      /* every one, for the deadline sweep */
	/* receiver: requests pulled and not yet acked */
	struct job *jobs;
	uint64_t next_seq;
	struct in_end *ins;         /* the graph's receiving ends */
};

/* nats_stage.c: what the loop does with each item, and once a second. */
void nats_item(struct conn *c, struct qitem *it);
void nats_tick(struct conn *c);

/* The graph's connection, made (connected, subscribed) on first use; a
 * reference each.  NULL with err when the server cannot be reached. */
struct conn *conn_get(struct node_state *ns, struct graph *g, const char *url,
    const char *node, char *err, size_t errlen);
void conn_put(struct conn *c);
/* From any thread: hands it to the loop (frees it if the conn is closing). */
void conn_push(struct conn *c, struct qitem *it);
/* The same for a list linked by next, first to last, with one wake-up. */
void conn_push_list(struct conn *c, struct qitem *first, struct qitem *last);
/* At init, a server that does not answer JetStream requests (a timeout, no
 * responders: starting, or overloaded) is asked again every INIT_RETRY_MS
 * for INIT_RETRY_FOR_MS; conn_init_retry says whether to (and sleeps). */
#define INIT_RETRY_MS     250
#define INIT_RETRY_FOR_MS 15000
int conn_init_retry(natsStatus s, int64_t waited_ms);
/* Creates or updates a channel's stream (work queue, max-msgs capacity,
 * discard new, file storage).  Blocks up to the JetStream timeout: init only. */
int conn_stream(struct conn *c, const struct nats_chan *ch, char *err, size_t errlen);

#endif
