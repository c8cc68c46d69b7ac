/*
 * answer.h -- the http source's middle layer: requests as the API sees
 * them, and the answers made for them, written down through the framing
 * layer (wire.h) and calling nothing above.
 *
 *   answer.c      JSON answers, the answer scratch buffer, error objects,
 *                 failures, and how outcomes become statuses
 *   stream.c      streamed answers: server-sent events and NDJSON
 *   completion.c  what every completion object shares: its opening, its usage
 *   buf.c         byte buffers and the small JSON writer (buf.h)
 *
 * A request (struct hreq) is the framing layer's struct wreq with the
 * upper layers' part hanging off it by embedding: the wreq comes first, so
 * the framing layer's callbacks give back the hreq with hreq_of().  The
 * endpoints (http.h) own the memory: they make it in on_new and free it
 * when both the connection and the pipeline have let go.
 */
#ifndef PORCH_HTTP_ANSWER_H
#define PORCH_HTTP_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <porch/plugin.h>

#include "origin.h"
#include "wire.h"

/* How the answer to a request goes out. */
enum mode {
	MODE_WHOLE = 0, /* one body, when the message ends */
	MODE_SSE_CHAT,  /* chat.completion.chunk server-sent events */
	MODE_SSE_TEXT,  /* text_completion server-sent events */
	MODE_NDJSON,    /* /generate: one JSON object per line */
	MODE_EVENTS,    /* a task's event stream */
};

/* What the answers of one source share (its struct http_src holds it). */
struct answers {
	char retry_after[40];       /* "Retry-After: N\r\n", for 503s; made at init */
	/* an answer's JSON body is written here, then copied after its head:
	 * one buffer for the source (one loop, one answer at a time) */
	struct buf scratch;
	/* a streamed piece joined to the bytes of a UTF-8 sequence cut at the
	 * end of the one before (stream.c), kept for the next */
	struct buf joined;
};

struct http_src;
struct task;
struct made;

/* One HTTP request, from its first byte until its answer is written. */
struct hreq {
	struct wreq w;              /* first: the framing part (wire.h) */
	struct answers *ans;        /* the source's */

	/* the endpoints' part (http.h), which this layer does not read */
	struct http_origin origin;  /* the reply sink reaches the request through it */
	struct http_src *s;
	porch_msg *m;               /* while the pipeline holds the request */
	int in_pipeline;            /* emitted (or waiting to be); outcome pending */
	int route;                  /* enum route */
	char *auth;                 /* the Authorization header's value */
	char *session;              /* X-Session-Id */
	int no_cache;               /* Cache-Control: no-cache or no-store */
	char task_id[48];           /* /v1/tasks/{id} */
	int preflight;              /* Access-Control-Request-Method came (a preflight) */
	char *cors_req_headers;     /* Access-Control-Request-Headers, when CORS is on */
	struct task *task;          /* MODE_EVENTS: the task watched */
	struct hreq *next_sub;      /* the task's list of watchers */
	/* threads: a watcher of a task another shard holds gets its events
	 * through its own shard's loop (tasks.c, the relay) */
	struct buf relay;           /* event bytes not yet written */
	int relay_end;              /* the task ended: end the stream */
	int relay_listed;           /* on its source's relay list */
	int watched;                /* it watched a task: tasks_unwatch when freed */
	struct hreq *relay_next;
	int answered_by_reply;      /* finish() came before the outcome */
	int client_gone;            /* the connection let go of it unanswered */
	int outcome_known;          /* its message ended: outcome (the access log) */
	enum porch_outcome outcome;
	size_t held;                /* its texts the pipeline holds, in w.held (wire_hold) */
	struct made *made;          /* a large request's message, made next (pipeline.c) */

	/* what the answer needs to know */
	enum mode mode;
	char *model;                /* for OpenAI answers */
	char *gen_id;               /* /generate's request_id, as the client gave it */
	int include_usage;          /* stream_options.include_usage */
	uint64_t prompt_words;
	int64_t created;            /* unix time, for OpenAI answers */

	/* a streamed answer (stream.c) */
	uint64_t pieces;            /* streamed pieces sent */
	int extras_sent;            /* a piece with extras (tool calls ...) was sent */
	int role_sent;              /* a chat stream's role went out */
	char carry[4];              /* an incomplete UTF-8 sequence held back */
	size_t carry_len;
	struct buf chunk_head;      /* SSE: each chunk's {"id",...,"choices":[ */

	/* a long whole answer, written a slice per loop iteration (answer.c) */
	struct {
		char *text;             /* a copy of the text: its message goes meanwhile */
		size_t len, off;        /* ... and how much of it is out */
		struct buf after;       /* the JSON after the text */
		ev_timer timer;         /* the next slice, at the next iteration */
	} slices;
};

/* The request whose framing part r is. */
static inline struct hreq *
hreq_of(struct wreq *r)
{
	return (struct hreq *)((char *)r - offsetof(struct hreq, w));
}

/* ---- answer.c ------------------------------------------------------------- */

/* Maps an outcome and error to a status (503 carries Retry-After). */
int status_of(enum porch_outcome o, enum porch_error e);
/* The upstream's 4xx a failure keeps, else 0. */
int upstream_status(porch_msg *m, enum porch_outcome o);
/* A failure's message into msg, "OUTCOME: ERROR[: WHY]"; its status (499 -> 500). */
int failure_text(porch_msg *m, enum porch_outcome o, char *msg, size_t size);
/* "Retry-After: N\r\n" for a 503, else NULL. */
const char *retry_after_of(const struct hreq *h, int status);
const char *error_type_of(int status);
/*
 * A whole answer with a long text: the scratch buffer holds the JSON with
 * the text's place (its quotes) at `at`; the text goes out escaped a
 * slice per loop iteration, in a chunked body (200, application/json).
 */
#define ANSWER_SLICE (256 * 1024)
void answer_sliced(struct hreq *h, size_t at, const char *text, size_t len);
/* Stops and frees what answer_sliced keeps (h is let go). */
void answer_slices_free(struct hreq *h);
/* A whole JSON answer, one line; steals j (500 if it is NULL: out of memory). */
void answer_json(struct hreq *h, int status, json_t *j, const char *extra);
/* The source's scratch buffer, emptied, for an answer's body written in place;
 * answer_scratch_send sends it as one line (or 500 if a write ran out of
 * memory); answer_scratch_done lets a large one go. */
struct buf *answer_scratch(struct hreq *h);
void answer_scratch_send(struct hreq *h, int status, const char *ctype, const char *extra);
void answer_scratch_done(struct hreq *h);
/* {"error":{"message","type","param","code"}[,"request_id"]}; param, code
 * and request_id may be NULL (null, null, left out). */
void json_put_error(struct buf *b, const char *message, const char *type, const char *param,
    const char *code, const char *request_id);
/* An OpenAI-style error answer, with Retry-After for 503. */
void answer_error(struct hreq *h, int status, const char *param, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same with the header lines extra (or none) and a message as it is. */
void answer_error_extra(struct hreq *h, int status, const char *param, const char *code,
    const char *extra, const char *message);
/* The answer for a request that failed, was shed or expired. */
void answer_failure(struct hreq *h, porch_msg *m, enum porch_outcome o);
char *json_text(json_t *j); /* steals j; compact, malloc'ed, or NULL */
json_t *json_bytes(const char *p, size_t n);      /* invalid UTF-8 -> U+FFFD */

/* ---- stream.c ------------------------------------------------------------- */

/* A piece of a streamed answer (pc: its extras, or NULL). */
void stream_piece(struct hreq *h, const char *text, size_t len, const struct porch_piece *pc);
/* The streamed answer ends with m's outcome. */
void stream_end(struct hreq *h, porch_msg *m, enum porch_outcome o);

/* ---- completion.c --------------------------------------------------------- */

uint64_t count_words(const char *p, size_t len);
/* usage: the worker's "usage" metadata or NULL (then words are counted) */
void json_put_usage(struct buf *b, const struct hreq *h, const char *usage, const char *text,
    size_t len);
void json_put_object_open(struct buf *b, const struct hreq *h, int chat, const char *object);

#endif /* PORCH_HTTP_ANSWER_H */
