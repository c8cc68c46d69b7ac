/*
 * http.h -- the http source's private types, shared by its files.
 *
 *   plugin.c   descriptor, parameters, init/start/drain/outcome/fini
 *   conn.c     listener, connections, reading, writing, timeouts, backpressure
 *   parse.c    HTTP/1.1 parsing with http-parser, limits, malformed input
 *   route.c    routing, endpoints that do not need the pipeline, emitting
 *   openai.c   OpenAI request validation, whole answers, the model list
 *   stream.c   streamed answers: server-sent events and NDJSON
 *   answer.c   status lines, headers, chunked bodies, error objects
 *   completion.c  what every completion object shares: its opening, its usage
 *   reply.c    the reply sink, a plugin of its own (see origin.h)
 *   tasks.c    the asynchronous tasks store and its event streams
 *   auth.c     API keys and per-key rate limits
 *   metrics.c  the plugin's own Prometheus metrics
 *
 * Ownership: a connection (struct hconn) owns the requests (struct hreq)
 * in its queue, in the order they came.  A request handed to the pipeline
 * is also owned by its message until the outcome callback: it is freed
 * when both have let go (hreq_release).  A task (struct task) is owned by
 * the store and by its message likewise.
 */
#ifndef PORCH_HTTP_H
#define PORCH_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <http_parser.h>
#include <jansson.h>
#include <porch/plugin.h>

#include "origin.h"

#include "buf.h"
#include "jparse.h"

/* ---- routes ------------------------------------------------------------- */

enum route {
	R_OTHER = 0,    /* unknown path: 404 */
	R_CHAT,         /* POST /v1/chat/completions */
	R_COMPLETIONS,  /* POST /v1/completions */
	R_GENERATE,     /* POST /generate */
	R_MODELS,       /* GET /v1/models */
	R_TASKS,        /* POST /v1/tasks */
	R_TASK,         /* GET /v1/tasks/{id} */
	R_TASK_EVENTS,  /* GET /v1/tasks/{id}/events */
	R_HEALTHZ,      /* GET /healthz */
	R_READYZ,       /* GET /readyz */
	R_METRICS,      /* GET /metrics */
	R_COUNT
};

const char *route_label(enum route r); /* the endpoint label of metrics */

/* How the answer to a request goes out. */
enum mode {
	MODE_WHOLE = 0, /* one body, when the message ends */
	MODE_SSE_CHAT,  /* chat.completion.chunk server-sent events */
	MODE_SSE_TEXT,  /* text_completion server-sent events */
	MODE_NDJSON,    /* /generate: one JSON object per line */
	MODE_EVENTS,    /* a task's event stream */
};

struct http_src;
struct hconn;
struct task;

#define RID_MAX 128 /* longest X-Request-Id accepted */

/* One HTTP request, from its first byte until its answer is written. */
struct hreq {
	struct http_origin origin;  /* first: the reply sink reaches us through it */
	struct http_src *s;
	struct hconn *c;            /* NULL once the connection let go of it */
	struct hreq *next;          /* the connection's queue */
	porch_msg *m;               /* while the pipeline holds the request */
	int in_pipeline;            /* emitted (or waiting to be); outcome pending */

	/* the request */
	enum route route;
	unsigned method;            /* enum http_method */
	int http_minor;
	struct buf url, body;
	char *auth;                 /* the Authorization header's value */
	char *session;              /* X-Session-Id */
	char task_id[48];           /* /v1/tasks/{id} */
	char rid[RID_MAX + 1];      /* X-Request-Id, given or made */
	int expect_continue;
	int keep_alive;
	const char *cors;           /* CORS header lines every answer carries, or NULL */
	int preflight;              /* Access-Control-Request-Method came (a preflight) */
	char *cors_req_headers;     /* Access-Control-Request-Headers, when CORS is on */
	double t0;                  /* ev_now when the request began */

	/* what the answer needs to know */
	enum mode mode;
	char *model;                /* for OpenAI answers */
	char *gen_id;               /* /generate's request_id, as the client gave it */
	int include_usage;          /* stream_options.include_usage */
	uint64_t prompt_words;
	int64_t created;            /* unix time, for OpenAI answers */
	struct task *task;          /* MODE_EVENTS: the task watched */
	struct hreq *next_sub;      /* the task's list of watchers */

	/* the answer */
	struct buf out;             /* bytes not yet written; the head writes */
	size_t out_off;             /* bytes of out already written */
	int status;                 /* 0 until the status line is in out */
	int chunked;                /* the body is chunked (streams, HTTP/1.1) */
	int complete;               /* the last byte of the answer is in out */
	int close;                  /* close the connection after this answer */
	size_t out_cut;             /* HEAD: out ends here, after the head; 0: at out.len */
	int answered_by_reply;      /* finish() came before the outcome */
	uint64_t pieces;            /* streamed pieces sent */
	int extras_sent;            /* a piece with extras (tool calls ...) was sent */
	int role_sent;              /* a chat stream's role went out (stream.c) */
	char carry[4];              /* an incomplete UTF-8 sequence held back */
	size_t carry_len;
	struct buf chunk_head;      /* SSE: each chunk's {"id",...,"choices":[ (stream.c) */
};

enum conn_phase {
	PH_IDLE,    /* between requests */
	PH_HEADERS, /* a request's head is arriving */
	PH_BODY,    /* its body is arriving */
};

/* One client connection. */
struct hconn {
	struct http_src *s;
	struct hconn *prev, *next;  /* every open connection */
	int fd;
	ev_io rio, wio;
	ev_timer timer;
	http_parser parser;
	char peer[64];              /* "ADDR:PORT", for logs */
	char addr[48];              /* the client's address, for rate limits */

	char *in;                   /* bytes read, [in_off, in_len) not parsed */
	size_t in_off, in_len, in_cap;

	struct hreq *head, *tail;   /* requests in order; the head writes */
	unsigned queued;
	struct hreq *cur;           /* the request being parsed */
	enum conn_phase phase;
	size_t header_bytes;
	int in_value;               /* the parser is inside a header value */
	struct buf hfield, hvalue;

	int err_status;             /* set by a parser callback to stop parsing */
	int closing;                /* no more requests: close when answered */
	int eof;                    /* the client closed its side */
	int dead;                   /* to be closed by its watcher */
	int lingering;              /* answered and shut down; reading the rest */
	int fresh;                  /* no request has begun yet */
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
	porch_stage *st;
	struct ev_loop *loop;
	const char *name;

	/* parameters */
	char host[256];
	int port;
	size_t max_body, max_header, max_url;
	double header_timeout, body_timeout, idle_timeout, linger_timeout;
	unsigned max_connections, max_pipeline;
	int64_t deadline_ms;
	int64_t retry_after_s;
	char retry_after_hdr[40];   /* "Retry-After: N\r\n", made at init */
	int access_log;
	double task_ttl;
	unsigned task_max;
	double rate, burst;
	const char *default_model;
	/* CORS (cors-origins), made at init: the header lines an answer to an
	 * allowed origin carries, and those every other answer carries */
	struct cors_origin *cors;
	size_t n_cors;
	int cors_on;                /* cors-origins is set */
	int cors_any;               /* it has '*': every origin, one header text */
	const char *cors_default;   /* '*': Allow-Origin *; else Vary: Origin */

	/* listener */
	int lfd;
	ev_io lio;
	ev_timer accept_retry;

	/* connections */
	struct hconn *conns;
	unsigned n_conns;
	int paused;                 /* the pipeline is full: nobody reads */
	int draining;
	int started;
	struct waiting *wait_head, *wait_tail;
	uint64_t next_rid;
	struct hreq *hreq_pool;      /* freed requests kept for reuse (conn.c) */
	unsigned n_hreq_pool;

	/* API keys and rate limits */
	char **keys;
	size_t n_keys;
	struct bucket **buckets;
	size_t n_buckets;

	/* tasks */
	struct task *tasks_head, *tasks_tail;
	unsigned n_tasks;

	/* metrics */
	uint64_t requests[R_COUNT][HTTP_CODE_COLUMNS];
	uint64_t conns_total, conns_refused;
	uint64_t bytes_in, bytes_out;

	/* an answer's JSON body is written here, then copied after its head:
	 * one buffer for the source (one loop, one answer at a time) */
	struct buf scratch;
	/* a streamed piece joined to the bytes of a UTF-8 sequence cut at the
	 * end of the one before (stream.c), kept for the next */
	struct buf joined;
};

/* ---- conn.c ------------------------------------------------------------- */

int conn_listen(struct http_src *s, char *err, size_t errlen);
void conn_start(struct http_src *s);
void conn_stop_listening(struct http_src *s);
void conn_close(struct hconn *c);
void conn_kick(struct hconn *c);       /* write what is ready, soon */
void conn_update(struct hconn *c);     /* start or stop reading as the state says */
void conn_parse(struct hconn *c);      /* parse what was read, request by request */
void conn_pause_all(struct http_src *s);
void conn_resume_all(struct http_src *s);
void conn_drain(struct http_src *s);
void conn_fini(struct http_src *s);
void conn_fail_request(struct hconn *c, int status, const char *code, const char *why);
void conn_linger_after(struct hconn *c);
struct hreq *hreq_new(struct hconn *c);
void hreq_release(struct hreq *h);     /* the connection or the message let go */
void hreq_pool_free(struct http_src *s);
void http_log(struct http_src *s, const struct hreq *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- parse.c ------------------------------------------------------------ */

extern const http_parser_settings parse_settings;
void parse_header(struct hconn *c, const char *name, size_t nlen, const char *value,
    size_t vlen);

/* ---- route.c ------------------------------------------------------------ */

enum route route_find(const char *path, size_t len, char *task_id, size_t idlen,
    const char **allow);
void route_headers_done(struct hconn *c, struct hreq *h); /* early checks */
void route_dispatch(struct hreq *h);   /* a whole request arrived */
void route_emit(struct http_src *s, struct hreq *h, porch_msg *m);
void route_resume(struct http_src *s); /* room again: emit those waiting */
void route_drain(struct http_src *s);
/* CORS: an Origin header's value, checked against cors-origins */
void cors_origin(struct hreq *h, const char *value, size_t len);
void route_cancel(struct http_src *s, struct hreq *h); /* its client is gone */
extern const struct http_origin_ops hreq_ops;
void hreq_outcome(struct hreq *h, porch_msg *m, enum porch_outcome o);

/* ---- openai.c ----------------------------------------------------------- */

/* Most metadata a request sets: model, max-tokens, temperature, top-p,
 * stop, system, stream, openai.request. */
#define PROMPT_META_MAX 10

/* A request's prompt, checked, before it becomes a message. */
struct prompt {
	char *text;
	size_t len;
	struct {
		const char *key;        /* a constant */
		char *value;            /* malloc'ed */
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
void stream_piece(struct hreq *h, const char *text, size_t len, const struct porch_piece *pc);
void stream_end(struct hreq *h, porch_msg *m, enum porch_outcome o);
void answer_whole(struct hreq *h, porch_msg *m, enum porch_outcome o);

/* ---- answer.c ----------------------------------------------------------- */

/* Maps an outcome and error to a status (503 carries Retry-After). */
int status_of(enum porch_outcome o, enum porch_error e);
/* The upstream's 4xx a failure keeps, else 0. */
int upstream_status(porch_msg *m, enum porch_outcome o);
/* A failure's message into msg, "OUTCOME: ERROR[: WHY]"; its status (499 -> 500). */
int failure_text(porch_msg *m, enum porch_outcome o, char *msg, size_t size);
/* "Retry-After: N\r\n" for a 503, else NULL. */
const char *retry_after_of(const struct http_src *s, int status);
const char *status_text(int status);
void answer_head(struct hreq *h, int status, const char *ctype, long long length,
    const char *extra);
void answer_body(struct hreq *h, const void *p, size_t len);
void answer_end(struct hreq *h);
void answer_simple(struct hreq *h, int status, const char *ctype, const char *body,
    size_t len, const char *extra);
void answer_json(struct hreq *h, int status, json_t *j, const char *extra); /* steals j */
/* The source's scratch buffer, emptied, for an answer's body written in place;
 * answer_scratch_send sends it as one line (or 500 if a write ran out of
 * memory); answer_scratch_done lets a large one go. */
struct buf *answer_scratch(struct hreq *h);
void answer_scratch_send(struct hreq *h, int status, const char *ctype, const char *extra);
void answer_scratch_done(struct http_src *s);
/* {"error":{"message","type","param","code"}[,"request_id"]}; param, code
 * and request_id may be NULL (null, null, left out). */
void json_put_error(struct buf *b, const char *message, const char *type, const char *param,
    const char *code, const char *request_id);
void answer_error(struct hreq *h, int status, const char *param, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void answer_error_extra(struct hreq *h, int status, const char *param, const char *code,
    const char *extra, const char *message);
const char *error_type_of(int status);
char *json_text(json_t *j); /* steals j; compact, malloc'ed, or NULL */
json_t *json_bytes(const char *p, size_t n);      /* invalid UTF-8 -> U+FFFD */
/* The answer for a request that failed, was shed or expired. */
void answer_failure(struct hreq *h, porch_msg *m, enum porch_outcome o);

/* ---- completion.c ------------------------------------------------------- */

uint64_t count_words(const char *p, size_t len);
/* usage: the worker's "usage" metadata or NULL (then words are counted) */
void json_put_usage(struct buf *b, const struct hreq *h, const char *usage, const char *text,
    size_t len);
void json_put_object_open(struct buf *b, const struct hreq *h, int chat, const char *object);

/* ---- tasks.c ------------------------------------------------------------ */

extern const struct http_origin_ops task_ops;
void tasks_create(struct hreq *h);
void tasks_get(struct hreq *h);
void tasks_events(struct hreq *h);
void tasks_unwatch(struct hreq *h);
void tasks_outcome(struct task *t, porch_msg *m, enum porch_outcome o);
void tasks_event(struct task *t, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail);
void tasks_fini(struct http_src *s);

/* ---- auth.c ------------------------------------------------------------- */

int auth_load(struct http_src *s, const char *path, char *err, size_t errlen);
int auth_check(struct http_src *s, struct hreq *h); /* 0, or -1 after answering 401/429 */
void auth_fini(struct http_src *s);

/* ---- metrics.c ---------------------------------------------------------- */

void metrics_count(struct http_src *s, enum route r, int status);
void metrics_answer(struct hreq *h);

#endif /* PORCH_HTTP_H */
