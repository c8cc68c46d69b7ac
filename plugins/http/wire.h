/*
 * wire.h -- the http source's bottom layer: connection I/O and HTTP/1.1
 * framing, and the table of callbacks through which it calls the layer above.
 *
 *   conn.c    the listener, connections, reading, writing, timeouts, pausing
 *   parse.c   requests read with http-parser: limits, malformed input, 100-continue
 *   frame.c   answers written: status line, headers, Content-Length or chunked body
 *
 * The layer knows sockets, bytes and HTTP/1.1, and nothing of routes,
 * OpenAI, tasks, metrics or the pipeline: it includes none of their headers
 * (nor porch's), and reaches them only through struct wire_ops, which the
 * upper layer fills and hands over in struct wire before wire_listen.
 *
 * Requests: a connection reads requests one at a time, in order, and keeps
 * them in a queue; the head of the queue writes its answer, and the next
 * one's answer waits in its own buffer until then, so pipelined requests
 * are answered in the order they came, whatever order they finish in.
 *
 * Memory: a request's memory is the upper layer's.  on_new gives the wire
 * a struct wreq (usually the first member of a larger struct of its own:
 * the upper part hangs off the framing part by embedding); the connection
 * holds it from then on, and lets go of it exactly once, through on_release
 * (answered whole, or at teardown) or on_gone (not answered whole: the
 * connection closed, or closes after an earlier answer).  From then on the
 * wire never touches it, and r->c is NULL; the functions below may still
 * be called on it and write to no connection.
 *
 * Reentrancy: a connection is freed only from its own watchers' callbacks
 * (or by wire_drain and wire_fini), never while a callback may still point
 * at it.  Writing an answer feeds a write event to its connection: libev
 * runs it in the same loop iteration, after the current callback.
 */
#ifndef PORCH_HTTP_WIRE_H
#define PORCH_HTTP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <http_parser.h>

#include "buf.h"

#define WIRE_ID_MAX 128 /* longest X-Request-Id accepted */

struct wire;
struct conn; /* one client connection: the layer's own (conn.h) */

/* One request, from its first byte until its answer is written: the framing part. */
struct wreq {
	struct wire *wire;
	struct conn *c;             /* NULL once the connection let go of it */
	struct wreq *next;          /* the connection's queue (the upper layer's while it is not queued) */

	/* the request, as read */
	unsigned method;            /* enum http_method */
	int http_minor;             /* 0 or 1 */
	struct buf url, body;
	char id[WIRE_ID_MAX + 1];   /* X-Request-Id, the client's (visible ASCII) or made */
	int expect_continue;        /* Expect: 100-continue */
	int keep_alive;
	long long content_length;   /* the head's Content-Length; -1: none (chunked) */
	double t0;                  /* ev_now when the request began */
	char addr[48];              /* the client's address (the access log, rate limits) */
	uint64_t bytes_in;          /* bytes of the request read: head and body */
	uint64_t bytes_out;         /* bytes of the answer written */
	double t_first;             /* ev_now when its first byte was written; 0: not yet */
	/* header lines (each ending in CRLF) every answer to it carries after the
	 * answer's own, or NULL: the upper layer's to set (CORS) */
	const char *headers;

	/* the answer */
	struct buf out;             /* bytes not yet written; the queue's head writes */
	size_t out_off;             /* bytes of out already written */
	int status;                 /* 0 until the status line is in out */
	int chunked;                /* the body is chunked (HTTP/1.1, no length) */
	int complete;               /* the last byte of the answer is in out */
	int close;                  /* close the connection after this answer */
	size_t out_cut;             /* HEAD: out ends here, after the head; 0: at out.len */
	size_t held;                /* the bytes of body and out counted in wire->held */
};

/*
 * The upper layer's callbacks, the only way this layer calls up.  Each is
 * called from within the loop, never from inside another of them for the
 * same request unless said.
 */
struct wire_ops {
	/* A request begins: a struct wreq, zeroed but for its buffers' memory
	 * (wreq_reset), or NULL when out of memory (the connection closes). */
	struct wreq *(*on_new)(struct wire *w);
	/* A header line of r: its name and value as sent (the value without
	 * trailing blanks), every line, X-Request-Id and Expect too, which the
	 * wire acts on itself. */
	void (*on_header)(struct wreq *r, const char *name, size_t nlen, const char *value,
	    size_t vlen);
	/* r's head arrived: method, target, version, headers; not its body.
	 * The upper layer may answer it at once (a refusal: 404, 401 ...), and
	 * then its body is read and thrown away; else a client that waits for
	 * "100 Continue" is told to go on. */
	void (*on_head)(struct wreq *r);
	/* The whole of r arrived (body too), and it was not answered at its head. */
	void (*on_request)(struct wreq *r);
	/* A request could not be read (malformed 400, too large 413/414/431,
	 * too slow 408, another version 505, out of memory 500, its body would
	 * pass max_held 503): answer r with status; the connection closes
	 * after it.  code and why say what was wrong. */
	void (*on_fail)(struct wreq *r, int status, const char *code, const char *why);
	/* The head of an answer was written (r NULL: the 503 written to a
	 * connection refused over max-connections). */
	void (*on_answer)(struct wire *w, struct wreq *r, int status);
	/* The connection let go of r before its answer was written whole:
	 * `closed`, the connection closed (its client left, or it failed);
	 * else it closes after an earlier answer.  r is the upper layer's now. */
	void (*on_gone)(struct wreq *r, int closed);
	/* The connection let go of r after its answer was written whole, or at
	 * teardown (wire_fini).  r is the upper layer's now. */
	void (*on_release)(struct wreq *r);
	/* Something worth a line in the log (accept failing ...). */
	void (*on_log)(struct wire *w, const char *msg);
	/* Optional.  The listening socket is no longer watched: the upper layer
	 * closes it (it may be shared with another wire: a reload).  When NULL
	 * the wire closes it itself. */
	void (*on_unlisten)(struct wire *w);
	/* Optional.  A retiring wire's connection has nothing in flight: hand
	 * fd and the bytes read from it but not parsed to whoever replaces
	 * this wire.  0: taken, the wire forgets fd; -1: the wire keeps it. */
	int (*on_handover)(struct wire *w, int fd, const char *bytes, size_t len);
	/* Optional.  A retiring wire's last connection closed or went over. */
	void (*on_empty)(struct wire *w);
};

/* The listener and its connections: one per source.  The upper layer sets
 * the first group before wire_listen and reads the counters. */
struct wire {
	struct ev_loop *loop;
	const struct wire_ops *ops;
	char host[256];             /* where to listen */
	int port;                   /* 0: any; the port bound once listening */
	size_t max_body, max_header, max_url;
	double header_timeout, body_timeout, idle_timeout, linger_timeout;
	unsigned max_connections, max_pipeline;
	/* max-inflight-bytes: a body that would take held past it is refused as
	 * it grows (on_fail, 503); 0: no bound.  The upper layer refuses
	 * requests at their head, and after, against the same count. */
	uint64_t max_held;

	/* state */
	int lfd;                    /* the listening socket, or -1 */
	int reuse_port;             /* threads: SO_REUSEPORT, a socket per shard */
	ev_io lio;
	ev_timer accept_retry;
	/* descriptors kept for the rest of porch (its workers' connections):
	 * accepting pauses once fewer than fd_reserve of fd_limit are free */
	long fd_limit, fd_reserve;
	uint64_t accept_pauses;     /* pauses not yet logged */
	double pause_logged;        /* loop time of the last line about them; 0: none */
	struct conn *conns;         /* every open connection */
	unsigned n_conns;
	unsigned holding;           /* connections waiting (wire_wait) */
	unsigned retry_after_s;     /* the Retry-After of the max-connections refusal */
	char refusal[512];          /* that answer, made by wire_start */
	size_t refusal_len;
	/* set by the upper layer when it drains: answers begun from then on
	 * close their connection, and a connection closes after its last one */
	int draining;
	/* set by wire_retire: no accepting; requests on open connections are
	 * served, and each connection goes over (on_handover) once idle */
	int retiring;
	uint64_t next_id;           /* counter behind the ids made here (and the upper layer's) */
	/* bytes requests hold: their body and answer buffers (allocated, from the
	 * first byte until the request is let go of), counted here, and what
	 * the upper layer adds for them (wire_hold) */
	uint64_t held, held_peak;

	/* counters */
	uint64_t conns_total, conns_refused;
	uint64_t bytes_in, bytes_out;
};

/* ---- the listener and the connections (conn.c) ---------------------------- */

/* Binds and listens on w->host:w->port; 0 (w->port the port bound), or -1 with err. */
int wire_listen(struct wire *w, char *err, size_t errlen);
int wire_port(int fd);              /* the port a socket is bound to, or -1 */
void wire_start(struct wire *w);    /* accept connections */
/* Serves fd, a socket connected already (a socketpair's end, one inherited),
 * as a client connection; 0, or -1 (fd left open). */
int wire_adopt(struct wire *w, int fd);
/* wire_adopt with bytes read from fd already (copied): they are parsed first. */
int wire_adopt_read(struct wire *w, int fd, const char *bytes, size_t len);
/* A reload replaced the wire's owner: stop accepting, hand idle connections
 * over, serve the rest until each is idle (then over) or closed. */
void wire_retire(struct wire *w);
/* r waits for room in the pipeline: its connection reads no more until
 * wire_resume.  Other connections go on, and new ones are accepted, so
 * /healthz, /readyz and /metrics answer while block backpressure holds the
 * pipeline's requests back (by TCP, one request a connection). */
void wire_wait(struct wreq *r);
void wire_resume(struct wire *w);   /* held connections read again; parse what was read */
/* Stop listening, close idle connections, close the others after their
 * last answer (set w->draining first). */
void wire_drain(struct wire *w);
/* Teardown: write what is buffered (2 s at most), close all, release every request. */
void wire_fini(struct wire *w);

/* ---- a request (conn.c) ---------------------------------------------------- */

/* The connection closes after r's answer: no more requests are read on it. */
void wire_close_after(struct wreq *r);
const char *wire_peer(const struct wreq *r); /* "ADDR:PORT" for logs, "-" once let go */
const char *wire_addr(const struct wreq *r); /* the client's address */

/* Bytes the upper layer holds for its requests, counted in w->held with
 * the wire's own: n more (wire_hold) or n fewer (wire_unhold). */
void wire_hold(struct wire *w, size_t n);
void wire_unhold(struct wire *w, size_t n);

/* For the upper layer's pool of requests: */
void wreq_reset(struct wreq *r);  /* zeroes r, keeping its buffers' memory, emptied */
/* empties its buffers, freeing the large ones; they count in held no more */
void wreq_trim(struct wreq *r);
void wreq_free(struct wreq *r);   /* frees its buffers (r itself is the caller's) */

/* ---- answers (frame.c) ----------------------------------------------------- */

/*
 * Appends the status line and headers: Content-Type when ctype is not NULL;
 * Content-Length when length >= 0 (none for 204), else a chunked body
 * (HTTP/1.1) or one the connection's close ends (HTTP/1.0); X-Request-Id;
 * extra (header lines each ending in CRLF, or NULL); r->headers; Connection
 * when it closes (or keeps an HTTP/1.0 one alive).  One head per answer: a
 * second call does nothing.  An answer to HEAD is its head alone, complete
 * here; what a body adds after it is not sent.
 */
void wire_head(struct wreq *r, int status, const char *ctype, long long length,
    const char *extra);
void wire_body(struct wreq *r, const void *p, size_t len); /* a chunk when chunked */
void wire_end(struct wreq *r);                             /* the answer is whole */
/* A whole answer: head, body, end; nothing if r was answered already. */
void wire_answer(struct wreq *r, int status, const char *ctype, const char *body,
    size_t len, const char *extra);
const char *status_text(int status); /* "OK", "Not Found" ... */

#endif /* PORCH_HTTP_WIRE_H */
