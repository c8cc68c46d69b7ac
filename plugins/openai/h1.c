/*
 * h1.c -- the openai worker's native transport: a small HTTP/1.1 client
 * for plain http:// upstreams, on the worker's libev loop, the shape of
 * nginx's proxy_pass with keepalive.
 *
 * The base URL's host is resolved once, when the worker starts (its
 * addresses are tried in order on a connection failure, the last that
 * worked first); the request head is rendered once, so a request costs a
 * "Content-Length: N" and one writev(2) of head, length and body (the
 * body request.c built, not copied).  Answers are read with http-parser
 * in HTTP_RESPONSE mode: status, the headers call.c reads, Content-Length,
 * chunked or to-the-close bodies, interim 1xx answers skipped; body bytes
 * go to call.c as they come, from one receive buffer shared by the
 * worker's connections.
 *
 * Connections: at most max-connections open or opening.  A call takes
 * the most recently used idle one, or opens one, or waits, first come
 * first served, for one to be free.  Every open connection's read watcher
 * stays on, idle or not (no epoll_ctl per request), so a server closing
 * an idle one is seen at once and it is dropped.  A request sent on a
 * kept connection that the server had closed meanwhile (EOF or reset
 * before a byte of the answer) is sent again once, on a new connection,
 * as curl does; never once a byte of the answer came.  A cancelled call's
 * connection is closed (the rest of its answer is not waited for).
 *
 * No descriptor free (socket(2) failing with EMFILE and the like,
 * fdwait.c): the call goes back first in the queue, and no new connection
 * is opened until the worker's wait is over (h->nofd), so the calls behind
 * it keep their order and do not each fail at socket(2) in turn; kept
 * connections that come free meanwhile still go to the queue at once.
 *
 * No proxy is used (http_proxy and the like are not read): the upstream
 * is reached directly.
 *
 * Reentrancy: body bytes reach the stage (porch_call_piece) from inside
 * http_parser_execute, and the stage may cancel that call, start others
 * or cancel others from there.  A connection is freed only from its own
 * watchers' callbacks once the parser has returned (conn->busy says it is
 * parsing), or from outside its callbacks (cancel, the read timer); I/O
 * errors met outside the callbacks (a write from submit) are handed to
 * the write watcher with ev_feed_event, so that no call ends from inside
 * submit.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <http_parser.h>

#include "h1.h"

/* Bytes asked of each recv(2): an answer's head and a whole small body. */
#define H1_READ (16 * 1024)
/* Addresses of the host kept. */
#define H1_ADDRS 8
/* The longest header name call.c reads: retry-after-ms. */
#define H1_NAME_MAX 16
/* Header values are cut here: call.c needs less of any it reads. */
#define H1_VALUE_MAX 128

struct h1_conn;

/* The worker's client. */
struct h1 {
	struct oai *o;
	struct ev_loop *loop;
	struct sockaddr_storage addr[H1_ADDRS];
	socklen_t alen[H1_ADDRS];
	int naddr;
	int good;                 /* the address that last connected */
	char where[300];          /* host:port, for messages */
	char *head;               /* the request head but Content-Length */
	size_t hlen;
	long open;                /* connections open or opening */
	int nofd;                 /* no descriptor was free: open none until the retry */
	struct h1_conn *idle;     /* kept, most recently used first */
	struct h1_conn *conns;    /* every connection, for fini */
	char rbuf[H1_READ];       /* what recv(2) got, parsed at once */
};

enum h1_state {
	H1_CONNECTING,            /* connect(2) under way, for conn->cl */
	H1_SENDING,               /* the request is being written */
	H1_READING,               /* written; the answer is read */
	H1_IDLE,                  /* on h->idle */
};

struct h1_conn {
	struct h1_conn *prev, *next;   /* h->conns */
	struct h1_conn *iprev, *inext; /* h->idle */
	struct h1 *h;
	struct oai_call *cl;           /* the call on it; NULL when idle */
	int fd;
	enum h1_state state;
	ev_io rio;                     /* on from connected to closed */
	ev_io wio;                     /* while connecting or a write waits */
	ev_timer ctimer;               /* connect-timeout */
	http_parser parser;
	int ai;                        /* the address connected or tried */
	int tries;                     /* addresses tried for this connect */
	int err;                       /* an errno met outside the callbacks */
	unsigned served;               /* answers read whole on it */
	size_t got;                    /* bytes of the current answer read */
	struct iovec iov[3];           /* head, Content-Length, body */
	int iovi;                      /* the first not yet written whole */
	char clen[48];                 /* "Content-Length: N\r\n\r\n" */
	int busy;                      /* http_parser_execute on the stack */
	int paused;                    /* the read watcher stopped (h1_pause) */
	unsigned complete : 1;         /* the final answer was read whole */
	unsigned in_value : 1;         /* header: in its value */
	unsigned skip : 1;             /* header: not one call.c reads */
	char hname[H1_NAME_MAX];
	size_t hnlen;
	char hval[H1_VALUE_MAX];
	size_t hvlen;
};

static void h1_on_read(struct ev_loop *loop, ev_io *w, int revents);
static void h1_on_write(struct ev_loop *loop, ev_io *w, int revents);
static void h1_on_connect_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void h1_kick(struct h1 *h);

/* ---- connections ----------------------------------------------------------- */

static void
h1_detach(struct h1_conn *conn)
{
	if (conn->cl != NULL)
		conn->cl->conn = NULL;
	conn->cl = NULL;
	if (conn->paused) {
		/* kept or reused, it is watched again (see the top) */
		conn->paused = 0;
		if (conn->fd >= 0)
			ev_io_start(conn->h->loop, &conn->rio);
	}
}

static void
h1_idle_remove(struct h1_conn *conn)
{
	struct h1 *h = conn->h;
	if (conn->iprev != NULL)
		conn->iprev->inext = conn->inext;
	else if (h->idle == conn)
		h->idle = conn->inext;
	if (conn->inext != NULL)
		conn->inext->iprev = conn->iprev;
	conn->iprev = conn->inext = NULL;
}

/* Closes the socket and stops its watchers; the struct stays. */
static void
h1_sock_close(struct h1_conn *conn)
{
	struct ev_loop *loop = conn->h->loop;
	/* ev_io_stop also drops an event fed and not yet handled */
	ev_io_stop(loop, &conn->rio);
	ev_io_stop(loop, &conn->wio);
	if (conn->fd >= 0)
		close(conn->fd);
	conn->fd = -1;
	conn->err = 0;
	conn->paused = 0;
}

/* h1_sock_close, and the connect timer stopped. */
static void
h1_conn_shut(struct h1_conn *conn)
{
	h1_sock_close(conn);
	ev_timer_stop(conn->h->loop, &conn->ctimer);
}

/* Frees a connection with no call on it; its slot is free, but no
 * waiting call is given it (fini, and h1_conn_close's first half). */
static void
h1_conn_free(struct h1_conn *conn)
{
	struct h1 *h = conn->h;
	h1_conn_shut(conn);
	if (conn->state == H1_IDLE)
		h1_idle_remove(conn);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		h->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	h->open--;
	free(conn);
}

/* Closes a connection with no call on it (any more); its slot goes to
 * the first waiting call.  Not from inside its parser. */
static void
h1_conn_close(struct h1_conn *conn)
{
	struct h1 *h = conn->h;
	h1_conn_free(conn);
	h1_kick(h);
}

/* Hands an I/O error met outside the callbacks to the write watcher. */
static void
h1_defer(struct h1_conn *conn, int err)
{
	conn->err = err;
	ev_feed_event(conn->h->loop, &conn->wio, EV_WRITE);
}

/*
 * Opens a socket to address conn->ai and starts connecting.  An error is
 * deferred (h1_defer), to be taken as a failed connect.
 */
static void
h1_dial(struct h1_conn *conn)
{
	struct h1 *h = conn->h;
	const struct sockaddr *sa = (const struct sockaddr *)&h->addr[conn->ai];
	int one = 1;
	conn->state = H1_CONNECTING;
	conn->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (conn->fd < 0) {
		int err = errno;
		/* known now, so that h1_kick opens no more in this turn */
		if (oai_fd_short(err))
			h->nofd = 1;
		h1_defer(conn, err);
		return;
	}
	oai_fd_ok(h->o);
	/* the head and body go in one writev: nothing for Nagle to wait for */
	setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* idle kept connections: find out early when a peer went away */
	setsockopt(conn->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	ev_io_set(&conn->rio, conn->fd, EV_READ);
	ev_io_set(&conn->wio, conn->fd, EV_WRITE);
	if (connect(conn->fd, sa, h->alen[conn->ai]) != 0 && errno != EINPROGRESS) {
		int err = errno;
		if (oai_fd_short(err))
			h->nofd = 1;
		h1_defer(conn, err);
		return;
	}
	/* writable once connected, or failed (then SO_ERROR says why) */
	ev_io_start(h->loop, &conn->wio);
}

/* Starts connecting conn (for its call), from the address that last
 * worked, with the connect timer running. */
static void
h1_connect(struct h1_conn *conn)
{
	struct h1 *h = conn->h;
	struct oai *o = h->o;
	conn->ai = h->good;
	conn->tries = 1;
	conn->served = 0;
	ev_timer_set(&conn->ctimer, (double)o->connect_timeout_ms / 1000., 0.);
	ev_timer_start(h->loop, &conn->ctimer);
	h1_dial(conn);
}

/* A new connection for cl, taking a slot.  NULL when out of memory. */
static struct h1_conn *
h1_conn_new(struct h1 *h, struct oai_call *cl)
{
	struct h1_conn *conn = calloc(1, sizeof *conn);
	if (conn == NULL)
		return NULL;
	conn->h = h;
	conn->fd = -1;
	ev_init(&conn->rio, h1_on_read);
	conn->rio.data = conn;
	ev_init(&conn->wio, h1_on_write);
	conn->wio.data = conn;
	ev_init(&conn->ctimer, h1_on_connect_timer);
	conn->ctimer.data = conn;
	conn->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = conn;
	h->conns = conn;
	h->open++;
	conn->cl = cl;
	cl->conn = conn;
	cl->state = OAI_RUNNING;
	h1_connect(conn);
	return conn;
}

/* ---- requests -------------------------------------------------------------- */

/*
 * Writes what is left of the request.  0 when written or waiting for the
 * socket (the write watcher on), else the errno.
 */
static int
h1_write(struct h1_conn *conn)
{
	while (conn->iovi < 3) {
		/* writev(2), but a peer gone is EPIPE, not SIGPIPE, in any host */
		struct msghdr m = { .msg_iov = conn->iov + conn->iovi,
		    .msg_iovlen = (size_t)(3 - conn->iovi) };
		ssize_t n = sendmsg(conn->fd, &m, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(conn->h->loop, &conn->wio);
				return 0;
			}
			return errno;
		}
		size_t left = (size_t)n;
		while (conn->iovi < 3 && left >= conn->iov[conn->iovi].iov_len) {
			left -= conn->iov[conn->iovi].iov_len;
			conn->iovi++;
		}
		if (conn->iovi < 3) {
			conn->iov[conn->iovi].iov_base = (char *)conn->iov[conn->iovi].iov_base + left;
			conn->iov[conn->iovi].iov_len -= left;
		}
	}
	ev_io_stop(conn->h->loop, &conn->wio);
	if (conn->state == H1_SENDING)
		conn->state = H1_READING;
	return 0;
}

/*
 * "Content-Length: N" and the head's end into out (48 bytes will do), by
 * hand: this is the one header rendered per request, and printf's
 * machinery would be most of its cost.  Returns the length.
 */
static size_t
h1_content_length(char *out, size_t len)
{
	static const char name[] = "Content-Length: ";
	char digits[24];
	size_t nd = 0;
	do {
		digits[nd++] = (char)('0' + len % 10);
		len /= 10;
	} while (len > 0);
	memcpy(out, name, sizeof name - 1);
	size_t n = sizeof name - 1;
	while (nd > 0)
		out[n++] = digits[--nd];
	memcpy(out + n, "\r\n\r\n", 4);
	return n + 4;
}

/*
 * Sends cl's request on conn, which is connected and has no call: its
 * first-byte-timeout starts.  A write error is deferred (h1_defer).
 */
static void
h1_send(struct h1_conn *conn, struct oai_call *cl)
{
	struct h1 *h = conn->h;
	conn->cl = cl;
	cl->conn = conn;
	cl->state = OAI_RUNNING;
	conn->state = H1_SENDING;
	conn->got = 0;
	conn->complete = 0;
	conn->in_value = conn->skip = 0;
	conn->hnlen = conn->hvlen = 0;
	http_parser_init(&conn->parser, HTTP_RESPONSE);
	conn->parser.data = conn;
	size_t n = h1_content_length(conn->clen, cl->blen);
	conn->iov[0].iov_base = h->head;
	conn->iov[0].iov_len = h->hlen;
	conn->iov[1].iov_base = conn->clen;
	conn->iov[1].iov_len = n;
	conn->iov[2].iov_base = (void *)cl->body; /* writev does not write it */
	conn->iov[2].iov_len = cl->blen;
	conn->iovi = 0;
	oai_read_timer_start(cl);
	int err = h1_write(conn);
	if (err != 0)
		h1_defer(conn, err);
}

/* Puts cl on a connection: an idle one, or a new one.  Needs a slot or
 * an idle connection. */
static void
h1_assign(struct h1 *h, struct oai_call *cl)
{
	struct h1_conn *conn = h->idle;
	if (conn != NULL) {
		h1_idle_remove(conn);
		h1_send(conn, cl);
		return;
	}
	if (h1_conn_new(h, cl) == NULL)
		oai_call_end(cl, PORCH_ERR_INTERNAL, "out of memory for a connection");
}

/* Gives idle connections and free slots to the calls waiting, in order. */
static void
h1_kick(struct h1 *h)
{
	struct oai *o = h->o;
	while (o->qhead != NULL && (h->idle != NULL ||
	    (h->open < o->max_connections && !h->nofd)))
		h1_assign(h, oai_queue_pop(o));
}

/* ---- failures ---------------------------------------------------------------- */

/* The connect failed with err: the next address, or the call fails; or,
 * no descriptor free, the call waits first in the queue (fdwait.c). */
static void
h1_connect_failed(struct h1_conn *conn, int err)
{
	struct h1 *h = conn->h;
	if (oai_fd_short(err)) {
		/* ours, not the address's: another address would do no better */
		struct oai_call *cl = conn->cl;
		h->nofd = 1;
		h1_detach(conn);
		h1_conn_free(conn);
		if (oai_fd_wait(cl, err) == 0)
			oai_queue_push_front(cl);
		/* a kept connection that came free meanwhile is not kept idle */
		h1_kick(h);
		return;
	}
	if (conn->tries < h->naddr) {
		/* the connect timer runs on: connect-timeout is for them all */
		h1_sock_close(conn);
		conn->ai = (conn->ai + 1) % h->naddr;
		conn->tries++;
		h1_dial(conn);
		return;
	}
	struct oai_call *cl = conn->cl;
	h1_detach(conn);
	h1_conn_close(conn);
	oai_call_end(cl, PORCH_ERR_TRANSPORT, "cannot connect to %s: %s", h->where, strerror(err));
}

/*
 * The connection broke (err, or 0 for the server's close) before the
 * answer was whole.  A request sent on a kept connection that got no byte
 * of an answer is sent again, once, on a new connection in the same slot
 * (the server closed it as the request came); else the call fails.
 */
static void
h1_broken(struct h1_conn *conn, int err)
{
	struct h1 *h = conn->h;
	struct oai_call *cl = conn->cl;
	if (conn->served > 0 && conn->got == 0 && !cl->retried) {
		cl->retried = 1;
		ev_timer_stop(h->loop, &cl->read_timer); /* again once sent */
		h1_conn_shut(conn);
		h1_connect(conn);
		return;
	}
	size_t got = conn->got;
	h1_detach(conn);
	h1_conn_close(conn);
	if (err != 0)
		oai_call_end(cl, PORCH_ERR_TRANSPORT, "connection to %s: %s", h->where, strerror(err));
	else if (got == 0)
		oai_call_end(cl, PORCH_ERR_TRANSPORT, "%s closed the connection without answering",
		    h->where);
	else
		oai_call_end(cl, PORCH_ERR_TRANSPORT, "%s closed the connection before the "
		    "answer's end", h->where);
}

/* ---- the answer -------------------------------------------------------------- */

/* A header line is whole: to call.c when it is one it reads. */
static void
h1_header_done(struct h1_conn *conn)
{
	if (conn->hnlen > 0 && !conn->skip)
		oai_resp_header(conn->cl, conn->hname, conn->hnlen, conn->hval, conn->hvlen);
	conn->hnlen = conn->hvlen = 0;
	conn->in_value = conn->skip = 0;
}

static int
h1_on_message_begin(http_parser *p)
{
	struct h1_conn *conn = p->data;
	conn->hnlen = conn->hvlen = 0;
	conn->in_value = conn->skip = 0;
	oai_resp_begin(conn->cl);
	return 0;
}

static int
h1_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct h1_conn *conn = p->data;
	if (conn->in_value)
		h1_header_done(conn);
	if (conn->skip || len > sizeof conn->hname - conn->hnlen) {
		conn->skip = 1;
		return 0;
	}
	memcpy(conn->hname + conn->hnlen, at, len);
	conn->hnlen += len;
	return 0;
}

static int
h1_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct h1_conn *conn = p->data;
	conn->in_value = 1;
	if (conn->skip)
		return 0;
	size_t room = sizeof conn->hval - conn->hvlen;
	if (len > room)
		len = room;
	memcpy(conn->hval + conn->hvlen, at, len);
	conn->hvlen += len;
	return 0;
}

static int
h1_on_headers_complete(http_parser *p)
{
	struct h1_conn *conn = p->data;
	if (conn->in_value)
		h1_header_done(conn);
	conn->cl->status = p->status_code;
	return 0;
}

static int
h1_on_body(http_parser *p, const char *at, size_t len)
{
	struct h1_conn *conn = p->data;
	/* -1 stops the parser (HPE_CB_body): cancelled, or why is in cl */
	return oai_resp_body(conn->cl, at, len);
}

static int
h1_on_message_complete(http_parser *p)
{
	struct h1_conn *conn = p->data;
	/* an interim answer (100 Continue, 103 Early Hints): the final one follows */
	if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101)
		return 0;
	conn->complete = 1;
	/* nothing after it is read: a next answer would be no request's */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings h1_settings = {
	.on_message_begin = h1_on_message_begin,
	.on_header_field = h1_on_header_field,
	.on_header_value = h1_on_header_value,
	.on_headers_complete = h1_on_headers_complete,
	.on_body = h1_on_body,
	.on_message_complete = h1_on_message_complete,
};

/*
 * The answer was read whole: the connection goes to the first waiting
 * call, or idle, or is closed when it cannot be reused; then the call
 * ends (the stage may start another call from there, which may take this
 * connection).
 */
static void
h1_complete(struct h1_conn *conn, int reusable)
{
	struct h1 *h = conn->h;
	struct oai_call *cl = conn->cl;
	h1_detach(conn);
	conn->served++;
	/* an answer that came before the whole request went out */
	if (conn->state != H1_READING)
		reusable = 0;
	if (!reusable) {
		h1_conn_close(conn);
	} else {
		struct oai_call *next = oai_queue_pop(h->o);
		if (next != NULL) {
			h1_send(conn, next);
		} else {
			conn->state = H1_IDLE;
			conn->iprev = NULL;
			conn->inext = h->idle;
			if (h->idle != NULL)
				h->idle->iprev = conn;
			h->idle = conn;
		}
	}
	oai_call_end(cl, PORCH_ERR_NONE, "done");
}

/* The read watcher: the answer's bytes, or an idle connection's end. */
static void
h1_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct h1_conn *conn = w->data;
	struct h1 *h = conn->h;
	(void)loop;
	(void)revents;
	ssize_t n = recv(conn->fd, h->rbuf, sizeof h->rbuf, 0);
	int err = n < 0 ? errno : 0;
	if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
		return;
	if (conn->state == H1_IDLE) {
		/* the server closed it, reset it, or sent what no request asked */
		h1_conn_close(conn);
		return;
	}
	struct oai_call *cl = conn->cl;
	size_t parsed = 0;
	conn->busy = 1;
	if (n > 0) {
		conn->got += (size_t)n;
		parsed = http_parser_execute(&conn->parser, &h1_settings, h->rbuf, (size_t)n);
	} else if (n == 0) {
		/* the end of an answer that runs to the close */
		http_parser_execute(&conn->parser, &h1_settings, NULL, 0);
	}
	conn->busy = 0;
	enum http_errno perr = HTTP_PARSER_ERRNO(&conn->parser);
	if (cl->cancelled) {
		/* cancelled from inside the parser: its answer is not wanted */
		h1_detach(conn);
		h1_conn_close(conn);
		oai_call_put(cl);
		return;
	}
	if (conn->complete) {
		h1_complete(conn, n > 0 && parsed == (size_t)n &&
		    http_should_keep_alive(&conn->parser));
		return;
	}
	if (cl->fail_err != PORCH_ERR_NONE) {
		/* we stopped it (max-response, a bad event): call.c says why */
		h1_detach(conn);
		h1_conn_close(conn);
		oai_call_end(cl, PORCH_ERR_UPSTREAM, "stopped");
		return;
	}
	if (n <= 0) {
		h1_broken(conn, err);
		return;
	}
	if (perr != HPE_OK) {
		h1_detach(conn);
		h1_conn_close(conn);
		oai_call_end(cl, PORCH_ERR_TRANSPORT, "malformed HTTP answer from %s: %s",
		    h->where, http_errno_description(perr));
		return;
	}
	/* more to come */
}

/* The write watcher: connected (or not), the rest of a request, or an
 * error met outside the callbacks. */
static void
h1_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct h1_conn *conn = w->data;
	struct h1 *h = conn->h;
	(void)revents;
	int err = conn->err;
	conn->err = 0;
	switch (conn->state) {
	case H1_CONNECTING:
		if (err == 0) {
			socklen_t len = sizeof err;
			if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				err = errno;
		}
		if (err != 0) {
			h1_connect_failed(conn, err);
			return;
		}
		ev_io_stop(loop, &conn->wio);
		ev_timer_stop(loop, &conn->ctimer);
		h->good = conn->ai;
		ev_io_start(loop, &conn->rio);
		h1_send(conn, conn->cl);
		return;
	case H1_SENDING:
		if (err == 0)
			err = h1_write(conn);
		if (err != 0)
			h1_broken(conn, err == EPIPE ? ECONNRESET : err);
		return;
	case H1_READING:
		/* a deferred error after the request went whole (cannot be), or
		 * a stale event */
		ev_io_stop(loop, &conn->wio);
		if (err != 0)
			h1_broken(conn, err);
		return;
	case H1_IDLE:
		ev_io_stop(loop, &conn->wio);
		return;
	}
}

static void
h1_on_connect_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct h1_conn *conn = t->data;
	struct h1 *h = conn->h;
	struct oai_call *cl = conn->cl;
	(void)loop;
	(void)revents;
	h1_detach(conn);
	h1_conn_close(conn);
	oai_call_end(cl, PORCH_ERR_TIMEOUT, "connect-timeout: no connection to %s after %ld ms",
	    h->where, h->o->connect_timeout_ms);
}

/* ---- the transport ------------------------------------------------------------ */

static void
h1_start(struct oai_call *cl)
{
	struct h1 *h = cl->o->h1;
	/* first come first served: behind those waiting already */
	if (cl->o->qhead == NULL && (h->idle != NULL ||
	    (h->open < cl->o->max_connections && !h->nofd)))
		h1_assign(h, cl);
	else
		oai_queue_push(cl);
}

static void
h1_cancel(struct oai_call *cl)
{
	struct h1_conn *conn = cl->conn;
	if (conn == NULL) {
		oai_call_put(cl);
		return;
	}
	if (conn->busy) {
		/* inside its parser: h1_on_read closes it once that returns */
		cl->cancelled = 1;
		return;
	}
	h1_detach(conn);
	h1_conn_close(conn);
	oai_call_put(cl);
}

static void
h1_abort(struct oai_call *cl)
{
	struct h1_conn *conn = cl->conn;
	if (conn == NULL)
		return;
	h1_detach(conn);
	h1_conn_close(conn);
}

/* The wait for a free descriptor is over: new connections again. */
static void
h1_retry(struct oai *o)
{
	struct h1 *h = o->h1;
	if (h == NULL)
		return;
	h->nofd = 0;
	h1_kick(h);
}

/* Reading stops while a long text goes to the stage in slices (slice.c):
 * the kernel's buffers fill, and the server waits, rather than our memory. */
static void
h1_pause(struct oai_call *cl, int paused)
{
	struct h1_conn *conn = cl->conn;
	if (conn == NULL || conn->fd < 0 || conn->paused == paused)
		return;
	conn->paused = paused;
	if (paused)
		ev_io_stop(conn->h->loop, &conn->rio);
	else
		ev_io_start(conn->h->loop, &conn->rio);
}

static void
h1_fini(struct oai *o)
{
	struct h1 *h = o->h1;
	if (h == NULL)
		return;
	/* the calls on them are freed next, not ended */
	while (h->conns != NULL)
		h1_conn_free(h->conns);
	if (h->head != NULL) {
		explicit_bzero(h->head, h->hlen); /* it holds the API key */
		free(h->head);
	}
	free(h);
	o->h1 = NULL;
}

const struct oai_io oai_io_native = {
	.name = "native",
	.start = h1_start,
	.cancel = h1_cancel,
	.abort = h1_abort,
	.fini = h1_fini,
	.retry = h1_retry,
	.pause = h1_pause,
};

/* ---- set-up -------------------------------------------------------------------- */

/* The request head: all but Content-Length.  -1 when out of memory. */
static int
h1_render_head(struct h1 *h, const char *path, const char *hostport, const char *key)
{
	static const char fixed[] =
	    "Content-Type: application/json\r\n"
	    "Accept: application/json, text/event-stream\r\n"
	    "User-Agent: porch-openai/1\r\n";
	size_t n = strlen("POST  HTTP/1.1\r\nHost: \r\n") + strlen(path) + strlen(hostport) +
	    sizeof fixed + (key != NULL ? strlen("Authorization: Bearer \r\n") + strlen(key) : 0) + 1;
	if ((h->head = malloc(n)) == NULL)
		return -1;
	int len = snprintf(h->head, n, "POST %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s", path, hostport,
	    fixed, key != NULL ? "Authorization: Bearer " : "", key != NULL ? key : "",
	    key != NULL ? "\r\n" : "");
	h->hlen = (size_t)len;
	return 0;
}

int
oai_h1_init(struct oai *o, const char *key)
{
	struct h1 *h = calloc(1, sizeof *h);
	if (h == NULL) {
		porch_worker_error(o->w, "out of memory");
		return -1;
	}
	o->h1 = h;
	h->o = o;
	h->loop = o->loop;

	/* the URL's parts, by libcurl's reading of it, as porch check does */
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *path = NULL, *user = NULL;
	int rc = -1;
	if (u == NULL) {
		porch_worker_error(o->w, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		porch_worker_error(o->w, "base-url: '%s' is not a URL with a host", o->url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user != NULL) {
		porch_worker_error(o->w, "transport native: base-url has credentials, which it "
		    "does not send; use transport curl");
		goto out;
	}
	/* an IPv6 literal comes in brackets: the Host header keeps them,
	 * getaddrinfo does not want them */
	char name[256];
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		snprintf(name, sizeof name, "%.*s", (int)(hl - 2), host + 1);
	else
		snprintf(name, sizeof name, "%s", host);
	snprintf(h->where, sizeof h->where, "%s:%s", host, port);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int gr = getaddrinfo(name, port, &hints, &res);
	if (gr != 0) {
		porch_worker_error(o->w, "base-url: cannot resolve '%s': %s (transport native "
		    "resolves the host once, at start)", name, gai_strerror(gr));
		goto out;
	}
	for (struct addrinfo *a = res; a != NULL && h->naddr < H1_ADDRS; a = a->ai_next) {
		if (a->ai_addrlen > sizeof h->addr[0])
			continue;
		memcpy(&h->addr[h->naddr], a->ai_addr, a->ai_addrlen);
		h->alen[h->naddr] = a->ai_addrlen;
		h->naddr++;
	}
	freeaddrinfo(res);
	if (h->naddr == 0) {
		porch_worker_error(o->w, "base-url: '%s' has no address", name);
		goto out;
	}
	/* Host: the port only when it is not http's */
	char hostport[300];
	if (strcmp(port, "80") == 0)
		snprintf(hostport, sizeof hostport, "%s", host);
	else
		snprintf(hostport, sizeof hostport, "%s:%s", host, port);
	if (h1_render_head(h, path[0] != '\0' ? path : "/", hostport, key) != 0) {
		porch_worker_error(o->w, "out of memory");
		goto out;
	}
	rc = 0;
out:
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_url_cleanup(u);
	return rc;
}
