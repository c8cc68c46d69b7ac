/*
 * http.h -- the http source's top layer: the endpoints and the source's
 * state.  The source is three layers, each header including only the one
 * below, and each layer calling down only:
 *
 *   top: endpoints (this header)
 *     plugin.c   descriptor, parameters, init/start/drain/outcome/fini;
 *                fills the framing layer's table of callbacks
 *     req.c      a request's memory and the framing layer's callbacks
 *                about it: made, header lines, failed, answered, let go
 *     route.c    routing, the checks every request passes, CORS
 *                preflights, dispatch, /healthz and /readyz
 *     pipeline.c requests for the pipeline: emitted with backpressure,
 *                cancelled, answered through the reply sink (origin.h)
 *     openai.c   OpenAI and /generate requests, whole answers, /v1/models
 *     tasks.c    the asynchronous tasks store and its event streams
 *     auth.c     API keys and per-key rate limits
 *     metrics.c  the plugin's own Prometheus metrics, GET /metrics
 *     graph.c    GET /graph, a page drawing the pipeline live (graph.html)
 *   middle: requests and answers (answer.h): answer.c, stream.c,
 *     completion.c, buf.c
 *   bottom: connection I/O and HTTP/1.1 framing (wire.h): conn.c,
 *     parse.c, frame.c
 *   reply.c, the reply sink, is a plugin of its own (see origin.h).
 *
 * The framing layer calls up only through struct wire_ops (plugin.c fills
 * it with req.c's and route.c's functions); the middle layer calls up never.
 *
 * Ownership: a connection owns the requests in its queue, in the order
 * they came.  A request handed to the pipeline is also owned by its message
 * until the outcome callback: it is freed when both have let go
 * (hreq_release).  A task (struct task) is owned by the store and by its
 * message likewise.
 */
#ifndef PORCH_HTTP_H
#define PORCH_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "answer.h"
#include "jparse.h"

/* ---- routes ------------------------------------------------------------- */

enum route {
	R_OTHER = 0,    /* unknown path: 404 */
	R_CHAT,         /* POST /v1/chat/completions */
	R_COMPLETIONS,  /* POST /v1/completions */
	R_GENERATE,     /* POST /generate */
	R_MODELS,       /* GET /v1/models */
	R_MODEL,        /* GET /v1/models/{id} */
	R_TASKS,        /* POST and GET /v1/tasks */
	R_TASK,         /* GET and DELETE /v1/tasks/{id} */
	R_TASK_EVENTS,  /* GET /v1/tasks/{id}/events */
	R_HEALTHZ,      /* GET /healthz */
	R_READYZ,       /* GET /readyz */
	R_METRICS,      /* GET /metrics */
	R_GRAPH,        /* GET /graph: the live page (graph.c) */
	R_COUNT
};

/* A request waiting for room in a full 'block' channel. */
struct waiting {
	struct hreq *h;             /* NULL for a task */
	porch_msg *m;
	struct waiting *next;
};

struct bucket;

/* An origin cors-origins allows, and the header lines answers to it carry. */
struct cors_origin {
	char *origin;               /* as browsers send it: scheme://host[:port] */
	size_t len;
	char *hdr;                  /* Access-Control-Allow-Origin: ORIGIN\r\n... */
};

/* Status codes counted apart in metrics, and one column for any other (metrics.c). */
#define HTTP_CODE_COLUMNS 20

/* The source's state. */
struct http_src {
	struct wire w;              /* first: the listener and connections (wire.h) */
	struct answers answers;     /* what answers share (answer.h) */
	porch_stage *st;
	const char *name;
	char listen_key[300];       /* the listener's key (porch_listener) */
	struct http_src *next_instance; /* metrics.c's list of live instances */
	/* threads (tasks.c): watchers here of tasks on other shards, and
	 * DELETEs from other shards for tasks here, woken through relay_w */
	ev_async relay_w;
	struct hreq *relay_head;
	int cancels;                /* a task here has cancel_asked set */

	/* parameters (the framing layer's are in w) */
	int64_t deadline_ms;
	int64_t retry_after_s;
	int access_fd;              /* the access log: -1 off (access.c) */
	int access_owned;           /* a file of ours, closed with the source */
	int access_json;
	int access_failed;          /* a write failed (said once) */
	double task_ttl;
	unsigned task_max;
	double rate, burst;
	const char *default_model;
	int check_model;            /* check-model: 404 for a model no worker serves */
	/* CORS (cors-origins), made at init: the header lines an answer to an
	 * allowed origin carries, and those every other answer carries */
	struct cors_origin *cors;
	size_t n_cors;
	int cors_on;                /* cors-origins is set */
	int cors_any;               /* it has '*': every origin, one header text */
	const char *cors_default;   /* '*': Allow-Origin *; else Vary: Origin */

	int started;
	struct waiting *wait_head, *wait_tail;
	struct hreq *hreq_pool;     /* freed requests kept for reuse (req.c) */
	unsigned n_hreq_pool;

	/* API keys and rate limits */
	char **keys;
	size_t n_keys;
	struct limiter *lim;        /* rate-limit's buckets: the stage's, every shard's */

	/* tasks */
	struct task *tasks_head, *tasks_tail;
	unsigned n_tasks;

	/* metrics (the framing layer counts connections and bytes in w) */
	uint64_t requests[R_COUNT][HTTP_CODE_COLUMNS];
};

/* The source whose framing layer w is. */
static inline struct http_src *
src_of(struct wire *w)
{
	return (struct http_src *)((char *)w - offsetof(struct http_src, w));
}

/* The request whose origin (what the reply sink calls: origin.h) o is. */
static inline struct hreq *
hreq_of_origin(struct http_origin *o)
{
	return (struct hreq *)((char *)o - offsetof(struct hreq, origin));
}

/* ---- req.c -------------------------------------------------------------- */

/* The framing layer's callbacks about a request (wire.h). */
struct wreq *req_new(struct wire *w);
void req_header(struct wreq *r, const char *name, size_t nlen, const char *value,
    size_t vlen);
void req_fail(struct wreq *r, int status, const char *code, const char *why);
void req_answered(struct wire *w, struct wreq *r, int status);
void req_gone(struct wreq *r, int closed);
void req_release(struct wreq *r);
void req_log(struct wire *w, const char *msg);
void hreq_release(struct hreq *h);     /* the connection or the message let go */
void hreq_pool_free(struct http_src *s);
/* access.c: the access log (the access-log parameters) */
int access_open(struct http_src *s, const char *spec, const char *format, char *err,
    size_t errlen);
void access_write(struct http_src *s, const struct hreq *h);
void access_close(struct http_src *s);

void http_log(struct http_src *s, const struct hreq *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- route.c ------------------------------------------------------------ */

const char *route_label(enum route r); /* the endpoint label of metrics */
enum route route_find(const char *path, size_t len, char *task_id, size_t idlen,
    const char **allow);
void route_head(struct wreq *r);       /* on_head: the early checks */
/* The request's path and query (without '?'; "" when there is none). */
void route_url(struct hreq *h, const char **path, size_t *plen, const char **query,
    size_t *qlen);
void route_dispatch(struct wreq *r);   /* on_request: a whole request arrived */
/* CORS: an Origin header's value, checked against cors-origins */
void cors_origin(struct hreq *h, const char *value, size_t len);

/* ---- pipeline.c --------------------------------------------------------- */

void pipeline_request(struct hreq *h); /* validate, make the message, emit it */
void pipeline_made_free(struct hreq *h); /* h is let go before its message was made */
void pipeline_emit(struct http_src *s, struct hreq *h, porch_msg *m);
void pipeline_resume(struct http_src *s); /* room again: emit those waiting */
void pipeline_drain(struct http_src *s);
void pipeline_cancel(struct http_src *s, struct hreq *h); /* its client is gone */
/* A task's message is no longer wanted: one waiting for room fails at once
 * (cancelled), one in the pipeline is cancelled (porch_msg_cancel). */
void pipeline_cancel_msg(struct http_src *s, porch_msg *m, const char *why);
/* Whether requests may hold `more` bytes beyond what they hold now
 * (max-inflight-bytes); 1: room. */
int pipeline_room(struct http_src *s, size_t more);
/* Sheds h at once, 503 with Retry-After, counted as shed: no room for it. */
void pipeline_shed(struct hreq *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern const struct http_origin_ops hreq_ops;
void hreq_outcome(struct hreq *h, porch_msg *m, enum porch_outcome o);

/* ---- openai.c ----------------------------------------------------------- */

/* Most metadata a request sets: model, max-tokens, temperature, top-p,
 * stop, system, stream, openai.request. */
#define PROMPT_META_MAX 10

/*
 * A request's prompt, checked, before it becomes a message.  Its text and
 * values point into the request (its body, or the JSON tree read from it,
 * which outlive the prompt) or are copies of its own: a 10 MB prompt is
 * not copied on its way to the message, which makes its own copy.
 */
struct prompt {
	const char *text;           /* NUL-ended */
	size_t len;
	char *own;                  /* the text, when it is ours (parts joined) */
	struct {
		const char *key;        /* a constant */
		const char *value;      /* NUL-ended: own, or the request's */
		char *own;              /* malloc'ed, or NULL */
	} meta[PROMPT_META_MAX];    /* metadata for the message, in order */
	size_t n_meta;
	char *user;     /* the session when there is no X-Session-Id */
};
void prompt_free(struct prompt *pr);

/* Fill pr from a request body; 0, or -1 after answering 400. */
int openai_chat_request(struct hreq *h, json_t *root, struct prompt *pr);
int openai_completion_request(struct hreq *h, json_t *root, struct prompt *pr);
int generate_request(struct hreq *h, json_t *root, struct prompt *pr);
void openai_models(struct hreq *h);
void openai_model(struct hreq *h);     /* GET /v1/models/{id} */
/* Whether a worker of the pipeline serves model (its name as clients send it). */
int openai_model_served(struct http_src *s, const char *model);
void answer_whole(struct hreq *h, porch_msg *m, enum porch_outcome o);

/* ---- tasks.c ------------------------------------------------------------ */

extern const struct http_origin_ops task_ops;
void tasks_create(struct hreq *h);
void tasks_get(struct hreq *h);
void tasks_list(struct hreq *h);       /* GET /v1/tasks?limit=N&after=ID */
void tasks_cancel(struct hreq *h);     /* DELETE /v1/tasks/{id} */
void tasks_events(struct hreq *h);
void tasks_unwatch(struct hreq *h);
void tasks_outcome(struct task *t, porch_msg *m, enum porch_outcome o);
void tasks_event(struct task *t, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail);
void tasks_fini(struct http_src *s);
/* threads: starts and stops the relay (tasks.c), in init and fini */
void tasks_relay_init(struct http_src *s);
void tasks_relay_fini(struct http_src *s);

/* ---- auth.c ------------------------------------------------------------- */

int auth_load(struct http_src *s, const char *path, char *err, size_t errlen);
int auth_check(struct http_src *s, struct hreq *h); /* 0, or -1 after answering 401/429 */
void auth_fini(struct http_src *s);

/* ---- metrics.c ---------------------------------------------------------- */

void metrics_count(struct http_src *s, enum route r, int status);
void metrics_get(struct hreq *h);      /* GET /metrics: the pipeline's and ours */
/* ---- graph.c ------------------------------------------------------------ */
void graph_get(struct hreq *h);        /* GET /graph: the pipeline drawn live */
/* An instance begins and ends: its counts outlive it (reloads). */
void metrics_attach(struct http_src *s);
/* Every live instance of this plugin file, through next_instance: a reload
 * runs the old and the new instance of a stage side by side. */
struct http_src *http_instances(void);
/* The list of instances is the process's: with threads, every shard's
 * instances are on it.  Hold this lock while walking it, and touch only
 * instances of one's own shard (http_same_shard), which run on one's
 * thread; a counter of another's may be read (the metrics' sums). */
void http_instances_lock(void);
void http_instances_unlock(void);
int http_same_shard(const struct http_src *a, const struct http_src *b);
void metrics_detach(struct http_src *s);

#endif /* PORCH_HTTP_H */
