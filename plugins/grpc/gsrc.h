/*
 * gsrc.h -- the grpc source: its state, its calls and its tasks, shared by
 * the files of plugins/grpc/ (one concept each):
 *
 *   plugin.c   descriptor, parameters, init/start/drain/outcome/event/fini
 *   server.c   the C-core server and the completion-queue bridge: the
 *              libev loop polls gRPC itself (on its epoll set), or a
 *              poller thread hands each completion to it (ev_async)
 *   call.c     one call's life: its request read, its answers and status
 *              written one batch at a time, its cancellation
 *   codec.c    protobuf-c messages to and from byte buffers; outcomes and
 *              errors to status codes
 *   generate.c Generate: a prompt through the pipeline, tokens streamed
 *   tasks.c    SubmitTask, SubscribeProgress, GetTask, CancelTask
 *   health.c   porch.v1 HealthCheck, grpc.health.v1.Health, reflection
 *
 * Threading: every porch_* and grpc_call_start_batch call, and every
 * handler, runs on the stage's loop thread.  gRPC is polled by that loop
 * itself (the loop poller, server.c) or, when it cannot be, by a poller
 * thread that only calls grpc_completion_queue_next and never touches
 * porch or a call.
 *
 * Ownership: a call is held by each batch it has in flight, by the request
 * it put in the pipeline (until the outcome callback), by the task it
 * watches and by its own life until its status is sent or it is cancelled
 * (call_hold, call_release); the last to let go frees it.
 */
#ifndef PORCH_GRPC_GSRC_H
#define PORCH_GRPC_GSRC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <grpc/grpc.h>
#include <porch/plugin.h>

#include "origin.h"
#include "porch.pb-c.h"

struct gsrc;
struct gcall;

/* What a completion-queue tag points to: the handler of the batch it ends,
 * and the source it belongs to (the loop poller's queue is shared). */
struct gtag {
	void (*fn)(struct gtag *t, int ok);
	struct gsrc *owner;
};

/* ---- server.c ------------------------------------------------------------ */

/* One completion handed from the poller thread to the loop. */
struct gevent {
	struct gtag *tag;
	int ok;
};

/* A request for a new call kept outstanding on the server. */
struct gaccept {
	struct gtag tag;
	struct gsrc *s;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
};

#define GSRC_ACCEPTS 16 /* new calls requested at once: calls that arrive
                         * together wait for a re-armed request, not a thread */

enum gmethod {
	M_UNKNOWN = 0,
	M_SUBMIT, M_SUBSCRIBE, M_GET, M_CANCEL, M_HEALTHCHECK, M_GENERATE,
	M_HEALTH_CHECK, M_HEALTH_WATCH, M_REFLECT,
};

/* A request waiting for room in a full 'block' channel. */
struct gwait {
	porch_msg *m;
	struct gcall *c;            /* Generate's call, or NULL for a task */
	struct gwait *next;
};

struct gtask;

struct gsrc {
	porch_stage *st;
	struct ev_loop *loop;
	const char *name;

	/* the bridge */
	grpc_server *server;
	grpc_completion_queue *cq;  /* the loop poller's, shared; or its own */
	int loop_poller;            /* the loop polls gRPC (else: a poller thread) */
	pthread_t poller;
	int poller_running;
	ev_async async;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* signalled with each event (fini waits on it) */
	struct gevent *events;      /* a ring, under lock */
	size_t ev_head, ev_n, ev_cap;
	struct gaccept accepts[GSRC_ACCEPTS];
	struct gtag shutdown_tag;
	int shutdown_done;
	int stopping;               /* fini began: no porch calls from handlers */

	/* parameters */
	int port;
	int want_thread;            /* poller = thread */
	int64_t deadline_ms;
	int64_t retry_after_ms;
	double task_ttl;
	unsigned task_max;
	size_t max_recv, max_send;

	int started, draining;
	int retiring;               /* a reload replaced the pipeline */
	int finished;               /* porch_stage_finished was called */
	int shutdown_started;       /* grpc_server_shutdown_and_notify was */
	struct gsrc *next_instance; /* plugin.c's list of live instances */
	struct gcall *calls;        /* every live call */
	unsigned n_calls;
	struct gwait *wait_head, *wait_tail;
	struct gcall *health_watchers;
	ev_timer health_timer;      /* while there are watchers: readiness polled */
	int health_sent;            /* the serving state watchers were last sent; -1 none */
	struct gtask *tasks_head, *tasks_tail;
	unsigned n_tasks;
	uint64_t next_id;
};

/* grpc_init, noting gRPC's epoll set for the loop poller (see server.c). */
void server_grpc_init(void);
int server_start(struct gsrc *s, const char *listen, const char *cert, const char *key,
    char *err, size_t errlen);
/* A batch was started, or a call began or ended, on the loop thread: the
 * loop poller looks at gRPC before the loop next blocks. */
void server_poke(void);
void server_call_opened(void);
void server_call_closed(void);
/* With the loop poller: has c's tokens sent (call_flush) before the loop
 * next blocks, holding c until then; 0, or -1 without the loop poller. */
int server_flush_later(struct gcall *c);
void server_accept(struct gsrc *s, struct gaccept *a); /* (re)arms a request for a call */
void server_stop(struct gsrc *s);  /* blocking: ends every call, the thread, the server */
/* Stops listening and taking calls (a reload): the calls open go on. */
void server_retire(struct gsrc *s);

/* ---- plugin.c ------------------------------------------------------------ */

/*
 * Calls fn for every live instance of this plugin on the same loop as s
 * (a reload runs an old and a new instance of a stage side by side;
 * another thread's instances are not touched), newest first, until fn
 * returns non-zero; returns that.
 */
int gsrc_each(struct gsrc *s, int (*fn)(struct gsrc *o, void *arg), void *arg);
/* A retiring source with nothing waiting: nothing more will be emitted. */
void gsrc_maybe_finished(struct gsrc *s);

/* ---- call.c -------------------------------------------------------------- */

/* An answer waiting for its turn to be sent (one message in flight per call). */
struct gout {
	grpc_byte_buffer *bb;
	struct gout *next;
};

struct gcall {
	struct http_origin origin;  /* first: the reply sink calls it (Generate) */
	struct gsrc *s;
	grpc_call *call;
	enum gmethod method;
	char method_name[128];
	int64_t deadline_ms;        /* the client's grpc-timeout, from the call's start; 0: none */
	int refs;
	struct gcall *prev, *next;  /* s->calls */

	struct gtag t_recv, t_close, t_send;
	grpc_byte_buffer *recv_bb;
	int client_cancelled;       /* RECV_CLOSE_ON_SERVER said so */
	int closed;                 /* RECV_CLOSE_ON_SERVER arrived */
	int alive;                  /* its own hold: until the status went or it was cancelled */

	struct gout *out_head, *out_tail;
	int sending;                /* a batch of sends in flight */
	char *tok;                  /* Generate: tokens that came while a send was */
	size_t tok_len, tok_cap;    /* in flight, sent as one message after it */
	int flush_queued;           /* on the loop poller's list (server_flush_later) */
	struct gcall *next_flush;
	int md_sent;
	int status_set, status_sent;
	grpc_status_code status;
	char *status_msg;
	grpc_metadata trailing[2];
	size_t n_trailing;
	char retry_ms[24];          /* the value of retry-after-ms */
	grpc_slice details_bin;     /* grpc-status-details-bin, when set */
	int has_details;

	/* Generate */
	porch_msg *m;               /* in the pipeline, until the outcome */
	char request_id[32];
	/* SubscribeProgress and Health Watch */
	struct gtask *task;
	struct gcall *next_watch;
	int health_service_known;
};

struct gcall *call_new(struct gsrc *s, grpc_call *call, const grpc_call_details *d);
void call_hold(struct gcall *c);
void call_release(struct gcall *c);
/* Queues a message to send (serialized here); -1 when it could not be. */
int call_send(struct gcall *c, const ProtobufCMessage *msg);
/* Generate: a piece of the answer, kept with the pieces that follow it
 * until they go as one token message: with the loop poller, before the
 * loop next blocks (the pieces of one loop iteration together), else at
 * once when no send is in flight; and when a send is in flight, when it
 * is done (gRPC takes one send at a time: this spares a batch and its
 * completion per piece when they come faster than the client takes
 * them).  The first token message has the request's id. */
int call_send_token(struct gcall *c, const char *text, size_t len);
/* Sends the tokens kept, if no send is in flight (server_flush_later). */
void call_flush(struct gcall *c);
/* Ends the call with a status, after what was queued; msg may be NULL. */
void call_finish(struct gcall *c, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As call_finish for an outcome that is not completed: its status code,
 * message and, when shed, the retry delay. */
void call_finish_error(struct gcall *c, enum porch_outcome o, enum porch_error e,
    int upstream_status, const char *text, int64_t retry_ms);
/* Re-arms the receive of a streaming call (reflection). */
void call_recv(struct gcall *c);
int call_gone(const struct gcall *c); /* cancelled, or its status is set */

/* ---- codec.c ------------------------------------------------------------- */

grpc_byte_buffer *codec_pack(const ProtobufCMessage *msg);
/* The bytes of bb, malloc'ed, in *len; NULL when out of memory. */
uint8_t *codec_bytes(grpc_byte_buffer *bb, size_t *len);
grpc_status_code codec_status(enum porch_outcome o, enum porch_error e, int upstream);
const char *codec_status_name(grpc_status_code c);
/* google.rpc.Status with a google.rpc.RetryInfo, serialized, for
 * grpc-status-details-bin; malloc'ed, NULL when out of memory. */
uint8_t *codec_retry_status(int code, const char *msg, int64_t retry_ms, size_t *len);
/* Time of day in seconds, and as RFC 3339 (UTC, milliseconds). */
double codec_wall(void);
void codec_rfc3339(double t, char *out, size_t len);

/* ---- generate.c ---------------------------------------------------------- */

void generate_call(struct gcall *c, const uint8_t *req, size_t len);
/* Hands m to the pipeline now or, behind a full 'block' channel, when
 * there is room; c is Generate's call, or NULL for a task. */
void gen_emit(struct gsrc *s, struct gcall *c, porch_msg *m);
void gen_resume(struct gsrc *s);
void gen_drain(struct gsrc *s);
/* Removes m from the waiting list; 1 if it was there (and is failed now). */
int gen_unwait(struct gsrc *s, porch_msg *m, const char *why);
void gen_outcome(struct gcall *c, porch_msg *m, enum porch_outcome o);
void gen_cancelled(struct gcall *c);         /* the client cancelled the call */
extern const struct http_origin_ops gen_ops;
/* Sets one pair of a request's metadata map on m (m NULL: checks it);
 * -1 (and *why) when the key is one porch sets itself or is not allowed. */
int gen_set_meta(porch_msg *m, const char *key, const char *value, const char **why);

/* ---- tasks.c ------------------------------------------------------------- */

extern const struct http_origin_ops task_ops;
void tasks_submit(struct gcall *c, const uint8_t *req, size_t len);
void tasks_subscribe(struct gcall *c, const uint8_t *req, size_t len);
void tasks_get(struct gcall *c, const uint8_t *req, size_t len);
void tasks_cancel(struct gcall *c, const uint8_t *req, size_t len);
void tasks_unwatch(struct gcall *c);
void tasks_outcome(struct gtask *t, porch_msg *m, enum porch_outcome o);
void tasks_event(struct gtask *t, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail);
void tasks_fini(struct gsrc *s);

/* ---- health.c ------------------------------------------------------------ */

void health_porch(struct gcall *c, const uint8_t *req, size_t len);
void health_check(struct gcall *c, const uint8_t *req, size_t len);
void health_watch(struct gcall *c, const uint8_t *req, size_t len);
void health_unwatch(struct gcall *c);
void health_changed(struct gsrc *s);        /* serving or not: tell the watchers */
void health_end_watches(struct gsrc *s);
void reflect_message(struct gcall *c, const uint8_t *req, size_t len);

#endif /* PORCH_GRPC_GSRC_H */
