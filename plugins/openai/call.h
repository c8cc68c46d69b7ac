/*
 * call.h -- one HTTP call of the openai worker, and the worker's state.
 *
 * A call's request goes out, and its answer comes in, through one of two
 * transports (struct oai_io): libcurl (xcurl.c), for https:// and when
 * asked for, or porch's own HTTP/1.1 client (h1.c) for plain http://.
 * What an answer means (status, headers, body bytes to the SSE parser or
 * the whole-body buffer, the stall limits, how the call ends) is the same
 * for both: call.c.  A transport only moves bytes and says how its
 * transfer ended.
 */
#ifndef PORCH_OPENAI_CALL_H
#define PORCH_OPENAI_CALL_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <ev.h>
#include <porch/plugin.h>

#include "request.h"
#include "sse.h"

struct oai;
struct oai_call;
struct h1;
struct h1_conn;
struct cev;

enum oai_state {
	OAI_FREE,     /* on the free list */
	OAI_WAITING,  /* queued on o->qhead: for libcurl to return (curl), or
	               * for a free connection (native) */
	OAI_RUNNING,  /* its transfer runs */
	OAI_ENDING,   /* its transfer is over, the call being ended */
	OAI_NOFD,     /* curl: no descriptor was free for its connection; on
	               * o->fhead until the worker tries again (fdwait.c) */
};

/*
 * A transport: how a call's request goes out and its answer comes in.
 * Its callbacks hand the answer to call.c (oai_resp_*), and end the call
 * with oai_call_end.
 */
struct oai_io {
	const char *name;                       /* "native" or "curl" */
	/* Starts cl's transfer (cl->body, cl->blen): now, or queued on
	 * o->qhead (state OAI_WAITING).  May end the call at once (failed). */
	void (*start)(struct oai_call *cl);
	/* The stage no longer wants cl, which is OAI_RUNNING (WAITING and
	 * ENDING are openai.c's): its transfer stops, now or as soon as the
	 * transport's callbacks on the stack return, and cl goes back to the
	 * free list.  cl->c is NULL already. */
	void (*cancel)(struct oai_call *cl);
	/* a stall limit: stops cl's transfer at once, from the loop (not from
	 * a transport's callback); the caller then ends cl. */
	void (*abort)(struct oai_call *cl);
	/* worker_fini: stops every transfer and frees the transport's state,
	 * what it keeps on the calls (active and free) included, ending no
	 * call; the calls are freed next. */
	void (*fini)(struct oai *o);
	/* The wait for a free descriptor is over (fdwait.c): the calls
	 * that waited for one try again, in the order they came. */
	void (*retry)(struct oai *o);
	/* Stops (paused 1) or resumes reading cl's answer, which is
	 * OAI_RUNNING, while a long text of it goes to the stage a slice at
	 * a time (slice.c); may be called from inside the transport's
	 * callbacks.  NULL: the transport reads on, and what comes meanwhile
	 * waits in cl->sl.later (bounded by max-response). */
	void (*pause)(struct oai_call *cl, int paused);
};

extern const struct oai_io oai_io_curl;   /* xcurl.c */
extern const struct oai_io oai_io_native; /* h1.c */

/*
 * Bytes of a text handed to the stage per slice, and per loop iteration:
 * a 10 MB event or answer goes on in slices (slice.c), one per loop
 * iteration, so it holds the loop for a millisecond at a time rather
 * than 100 ms at once.
 */
#define OAI_SLICE (256 * 1024)

/* A long text being handed on a slice at a time, and what waits for it. */
struct oai_slices {
	const char *p, *end;           /* what is left of the text */
	unsigned on : 1;               /* slices are being handed on */
	unsigned raw : 1;              /* the JSON string as written: unescaped per slice */
	unsigned busy : 1;             /* call.c on the stack outside a transport's
	                                * callback: a cancel only marks cl */
	unsigned end_pending : 1;      /* the transfer ended meanwhile: end_* */
	unsigned succeed : 1;          /* a whole answer: the call succeeds after */
	json_t *root;                  /* the text's owner, when jansson read it */
	char *own;                     /* ... or a copy of ours */
	char *buf;                     /* one slice, unescaped */
	struct js_buf later;           /* body bytes that came meanwhile, to feed */
	size_t later_off;              /* ... the bytes of it fed already */
	enum porch_error end_err;      /* end_pending: how the transfer ended */
	char end_why[384];
	ev_timer timer;                /* the next slice, at the next loop iteration */
};

/* One call; the struct is reused for later calls. */
struct oai_call {
	struct oai_call *prev, *next;  /* the active list; next: the free list */
	struct oai_call *qnext;        /* the waiting queue */
	struct oai *o;
	porch_call *c;                 /* NULL once cancelled */
	enum oai_state state;
	const char *body;              /* the request body: owned, or the message's
	                                * document itself (openai.request) */
	size_t blen;
	char *owned;                   /* the body when it is a copy of our own */

	/* the transports' own: one of these is used */
	CURL *easy;                    /* curl: made at the first start, reused */
	struct h1_conn *conn;          /* native: the connection it is on */
	unsigned retried : 1;          /* native: sent again once on a new connection */
	int sock_err;                  /* curl: why its socket could not be opened */
	ev_tstamp nofd_since;          /* when it first found no descriptor free; 0: never */

	int status;                    /* the final answer's HTTP status; 0: none yet */
	char *resp;                    /* a whole (not streamed) answer */
	size_t rlen, rcap;
	size_t total;                  /* answer bytes so far, for max-response */
	struct sse sse;
	struct oai_acc acc;            /* a stream's extras, for its end */
	char *error_json;              /* the upstream's error object, or NULL */

	ev_timer read_timer;           /* first-byte-timeout, then idle-timeout:
	                                * lazily re-armed (call.c) */
	ev_tstamp sent;                /* loop time the request went out */
	ev_tstamp last;                /* loop time of the last bytes received */

	int64_t retry_after;           /* ms; -1: not given */
	unsigned event_stream : 1;     /* Content-Type: text/event-stream */
	unsigned ms_given : 1;         /* retry-after-ms was given (it wins) */
	unsigned started : 1;          /* the first body bytes came */
	unsigned sse_mode : 1;         /* the body is parsed as events */
	unsigned saw_done : 1;         /* "data: [DONE]" came */
	unsigned cancelled : 1;

	struct oai_slices sl;          /* a long text handed on in slices (slice.c) */

	/* why we stopped the transfer ourselves, if we did */
	enum porch_error fail_err;
	int fail_status;
	char fail_why[384];
	char errbuf[CURL_ERROR_SIZE];  /* curl: CURLOPT_ERRORBUFFER */
};

struct oai {
	porch_worker *w;
	struct ev_loop *loop;
	const struct oai_io *io;
	char *url;                     /* base-url + the endpoint's path */
	struct oai_shape shape;
	long connect_timeout_ms;
	int64_t first_byte_ms;         /* first-byte-timeout */
	int64_t idle_ms;               /* idle-timeout */
	const char *first_byte_name;   /* ... as the failure's text names them */
	const char *idle_name;
	size_t max_response;
	long max_connections;
	const char *ca_file;           /* ca-file, or NULL: libcurl's CA bundle */
	const char *key;               /* the API key (the environment's), or NULL */
	struct oai_call *active;       /* every call not free */
	struct oai_call *free;
	struct oai_call *qhead, *qtail;/* OAI_WAITING, first come first served */
	char where[300];               /* host:port of base-url, for messages */

	/* no descriptor free for a connection (fdwait.c): the calls that found
	 * none try again after fd_delay, all at once, on one timer */
	ev_timer fd_timer;
	double fd_delay;               /* s: the next wait, growing while it lasts */
	struct oai_call *fhead, *ftail;/* curl: OAI_NOFD, in the order they came */
	uint64_t fd_waits;             /* connections that waited for a descriptor */
	uint64_t fd_gave_up;           /* calls failed after connect-timeout of that */
	ev_tstamp fd_logged;           /* loop time of the last line logged about it */

	/* curl */
	struct cev *cv;
	struct curl_slist *headers;    /* holds the API key: zeroed when freed */
	unsigned zombies;              /* cancelled while libcurl ran */
	int curl_ready;                /* curl_global_init succeeded */

	/* native */
	struct h1 *h1;

	/* a pool's health probe (probe.c), made when first asked for */
	struct oai_probe *probe;
};

/* ---- calls (call.c) ---- */

/*
 * A call ready for c: from the free list or new, on the active list, its
 * request not yet set.  NULL when out of memory.
 */
struct oai_call *oai_call_get(struct oai *o, porch_call *c);

/* Back to the free list; its transfer must be over or stopped. */
void oai_call_put(struct oai_call *cl);

/* Frees a call (worker_fini), after the transport's fini. */
void oai_call_destroy(struct oai_call *cl);

/* Appends cl to the waiting queue (state OAI_WAITING). */
void oai_queue_push(struct oai_call *cl);

/* Takes the first waiting call off the queue; NULL when none waits. */
struct oai_call *oai_queue_pop(struct oai *o);

/* Puts cl first in the waiting queue: it was first, and goes on being. */
void oai_queue_push_front(struct oai_call *cl);

/* ---- no descriptor free (fdwait.c) ---- */

/*
 * A socket(2) or connect(2) failure that is a local shortage, not the
 * server's doing: EMFILE (the process's ulimit -n), ENFILE (the system's
 * file table), ENOBUFS or ENOMEM (no kernel memory for a socket).  Such a
 * connection is not failed as transport: the call waits and tries again.
 */
int oai_fd_short(int err);

/*
 * cl found no descriptor free for its connection (err, oai_fd_short):
 * counted.  Returns 0 when it is to wait (the caller queues it, and the
 * transport's retry runs once a short delay has passed: 10 ms, doubling to
 * 200 ms while the shortage lasts), or -1 when cl has waited
 * connect-timeout already: then it was ended (failed as internal, saying
 * what was short and for how long).  Either way the retry is set to run.
 */
int oai_fd_wait(struct oai_call *cl, int err);

/* A socket was had: the next wait starts short again. */
void oai_fd_ok(struct oai *o);

/* The fd timer (worker_init), and its end with a line about the waits (fini). */
void oai_fd_init(struct oai *o);
void oai_fd_fini(struct oai *o);

/* curl: cl waits on o->fhead (state OAI_NOFD); the first of them; cl out of it. */
void oai_fdq_push(struct oai_call *cl);
struct oai_call *oai_fdq_pop(struct oai *o);
void oai_fdq_remove(struct oai_call *cl);

/* ---- what a transport hands over (call.c) ---- */

/* A response begins (its status line): what an earlier one (a 1xx) said
 * is forgotten. */
void oai_resp_begin(struct oai_call *cl);

/* One header of the response: Content-Type, Retry-After and
 * retry-after-ms are read; the others are ignored.  value without the
 * surrounding white space is best, but it is trimmed here too. */
void oai_resp_header(struct oai_call *cl, const char *name, size_t nlen,
    const char *value, size_t vlen);

/*
 * n bytes of the final response's body; cl->status must be set by then.
 * They go to the SSE parser, whose events may reach the stage (which may
 * cancel cl), or to the whole-body buffer.  Returns 0 to go on, or -1 to
 * stop the transfer: cl->cancelled, or why in cl->fail_* (oai_call_end
 * then fails the call with it).
 */
int oai_resp_body(struct oai_call *cl, const char *p, size_t n);

/* The request goes out now: first-byte-timeout runs from here, not from
 * submit (a call waiting for a connection is not late), and idle-timeout
 * from the answer's first body byte (oai_resp_body) on. */
void oai_read_timer_start(struct oai_call *cl);

/*
 * cl's transfer is over and out of its transport (not cancelled): ends
 * the call.  err PORCH_ERR_NONE: the answer came whole; else what broke
 * it (transport, timeout, internal) and fmt says how.  What the answer
 * said wins over err: a reason we stopped for (cl->fail_*), then an HTTP
 * status of 300 or more (or 1xx), then a stream that saw "[DONE]".
 * The call is recycled before porch hears of its end, since the stage
 * may start another one (a retry) from inside porch_call_done or
 * porch_call_fail.
 */
void oai_call_end(struct oai_call *cl, enum porch_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- call.c, for slice.c ---- */

/* An event of the stream (sse_event_fn). */
int oai_on_event(void *arg, enum sse_kind kind, const char *data, size_t len);
/* Records why we stop the transfer (the first reason wins). */
void oai_stop(struct oai_call *cl, enum porch_error err, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Ends a call with success; a stream's metadata goes on c first. */
void oai_succeed(struct oai_call *cl);

/* ---- long texts a slice at a time (slice.c) ---- */

/*
 * Hands a piece of the answer to cl's stage: at once when it is short;
 * else its first slice now (with pc), and the rest one slice per loop
 * iteration, from a timer.  raw: the text is a JSON string as written,
 * unescaped a slice at a time.  copy: the text's memory goes when the
 * caller returns, so the rest is copied (else it must stay until the
 * slices are out: the SSE parser's buffer, cl->resp, or root, which is
 * taken over).  Returns 1 when slices remain (cl->sl.on): the caller
 * stops taking the answer's bytes (see oai_resp_body) until they are out.
 * 0 otherwise; cl may have been cancelled meanwhile either way.
 */
int oai_hand(struct oai_call *cl, const char *text, size_t len, int raw, int copy,
    json_t **root, const struct porch_piece *pc);

/* The slices' timer callback (ev_init'ed with it once per call struct). */
void oai_on_slice(struct ev_loop *loop, ev_timer *t, int revents);

/* Forgets the slices and what waits for them (cl goes to the free list). */
void oai_slices_clear(struct oai_call *cl);

/* The stage cancelled cl while slices are out or being handed (cl->c is
 * NULL already): stops them, and the transfer, now or once off the stack. */
void oai_slices_cancel(struct oai_call *cl);

#endif /* PORCH_OPENAI_CALL_H */
