/*
 * nats.h -- channels over NATS JetStream: a graph's connection and the
 * three built-in stages that are a NATS channel's ends (node.h).
 *
 * Threads.  libnats (Debian's 3.4.1 has no libev adapter) runs its own
 * threads: a reader per connection, the library's shared delivery thread
 * that calls subscription callbacks and the JetStream publish error
 * handler, and, here, one thread per receiving end that pulls
 * (natsSubscription_Fetch blocks).  None of them touches a graph: each
 * puts what it got on its connection's queue (a mutex-guarded list,
 * bounded by the receiving ends' credit and by the requests in flight) and
 * wakes the loop with ev_async; the loop does the rest.  Once running, the
 * loop only calls libnats functions that do not wait for the server:
 * publishes (copied into the connection's buffer, also while it is
 * reconnecting) and acks.  At init (start, and a reload) it waits for the
 * server to create the stream and the consumer (asking again for 15 s
 * while it does not answer: nats_conn.h).
 * Everything of porch's is per graph, so each loop (thread shard, reload
 * generation) has its own connection, consumers and threads; libnats's
 * delivery thread is the library's, shared by the connections.
 */
#ifndef PORCH_NATS_H
#define PORCH_NATS_H

#include <stddef.h>

#include "porch/plugin.h"

struct node_state;

/* The descriptors of the ends (nats_stage.c): the proxy, the source that
 * pulls a stream, and the sink that sends a port's messages home. */
extern const struct porch_plugin nats_proxy_desc;
extern const struct porch_plugin nats_in_desc;
extern const struct porch_plugin nats_home_desc;

/*
 * Connects to url once, to tell a server that is not there (or is not a
 * JetStream server) at start: 0, or -1 with err saying why.  Waits up to
 * timeout_ms.
 */
int nats_probe(const char *url, int timeout_ms, char *err, size_t errlen);

/* Frees what nats_stage.c left in the configuration (node_state.conns). */
void nats_conns_free(struct node_state *ns);

#endif
