/*
 * conn.h -- the framing layer's own: a client connection and what conn.c,
 * parse.c and frame.c share about it.  Only those three include it; the
 * layers above see wire.h alone.
 */
#ifndef PORCH_HTTP_CONN_H
#define PORCH_HTTP_CONN_H

#include "wire.h"

enum conn_phase {
	PH_IDLE,    /* between requests */
	PH_HEADERS, /* a request's head is arriving */
	PH_BODY,    /* its body is arriving */
};

/* One client connection. */
struct conn {
	struct wire *w;
	struct conn *prev, *next;   /* every open connection */
	int fd;
	ev_io rio, wio;
	ev_timer timer;
	http_parser parser;
	char peer[64];              /* "ADDR:PORT", for logs */
	char addr[48];              /* the client's address, for rate limits */

	char *in;                   /* bytes read, [in_off, in_len) not parsed */
	size_t in_off, in_len, in_cap;

	struct wreq *head, *tail;   /* requests in order; the head writes */
	unsigned queued;
	struct wreq *cur;           /* the request being parsed */
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
	int holding;                /* a request of its waits for the pipeline: read no more (wire_wait) */
};

/* ---- conn.c --------------------------------------------------------------- */

/* A new request at the end of c's queue (on_new), with a fresh id; NULL when out of memory. */
struct wreq *conn_req_new(struct conn *c);
void conn_kick(struct conn *c);        /* write what is ready, soon */
/* r's buffers grew (or may have): w->held counts their size again */
void wreq_count(struct wreq *r);

/* ---- parse.c -------------------------------------------------------------- */

extern const http_parser_settings parse_settings;

#endif /* PORCH_HTTP_CONN_H */
