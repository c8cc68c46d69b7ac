/*
 * conn.c -- the framing layer's sockets: the listener, client connections,
 * reading and writing on the libev loop, timeouts and pausing (wire.h).
 *
 * Reentrancy: a connection is freed only from its own watchers' callbacks
 * (or from drain and fini), never while a parser callback or the upper
 * layer may still point at it.  Code that has something to write calls
 * conn_kick, which feeds a write event to the connection: libev runs it in
 * the same loop iteration, after the current callback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

/* Bytes asked of each recv(2). */
#define READ_CHUNK (16 * 1024)
/* Connections accepted per readiness event, so one burst cannot starve the rest. */
#define ACCEPT_BATCH 64
/* The listen(2) backlog: the kernel caps it at somaxconn (4096 on current
 * Linux); 511 is what nginx and Redis ask for. */
#define LISTEN_BACKLOG 511
/* Most bytes read and thrown away while a closing connection lingers. */
#define LINGER_MAX (1024 * 1024)
/* How long fini waits, in all, to write answers still buffered. */
#define FINI_FLUSH_MS 2000
/* How long accepting pauses when descriptors run short. */
#define ACCEPT_PAUSE 0.1
/* Seconds between two lines in the log about accepting paused. */
#define PAUSE_LOG_EVERY 10.0
/* Descriptors kept free for the rest of porch: an eighth of ulimit -n,
 * within these bounds.  Without them, a burst of clients takes every
 * descriptor, and the workers' calls for those very clients' requests
 * find none for their own connections until some client gives up. */
#define FD_RESERVE_MIN 8
#define FD_RESERVE_MAX 256

static void on_read(struct ev_loop *loop, ev_io *io, int revents);
static void on_write(struct ev_loop *loop, ev_io *io, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void conn_linger_after(struct conn *c);
static void conn_update(struct conn *c);
static void conn_parse(struct conn *c);
static void conn_free(struct conn *c, int closed);
static void conn_close(struct conn *c);
static int conn_handover(struct conn *c);

/* ---- requests ----------------------------------------------------------- */

/* A new request at the end of c's queue, with a fresh request id. */
struct wreq *
conn_req_new(struct conn *c)
{
	struct wire *w = c->w;
	struct wreq *r = w->ops->on_new(w);
	if (r == NULL)
		return NULL;
	r->wire = w;
	r->c = c;
	r->t0 = ev_now(w->loop);
	_Static_assert(sizeof r->addr == sizeof c->addr, "a connection's address fits a request's");
	memcpy(r->addr, c->addr, sizeof r->addr);
	r->keep_alive = 1;
	r->content_length = -1;
	r->http_minor = 1; /* until the request line says otherwise */
	/* unique in the run, unguessable enough for logs: a mixed counter */
	hex16(r->id, http_mix64(++w->next_id ^ (uint64_t)(uintptr_t)w));
	if (c->tail != NULL)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->queued++;
	return r;
}

/* ---- memory held ------------------------------------------------------ */

/*
 * What a request holds is counted as the capacity of its body and answer
 * buffers (what is allocated, not only what is used), from when they grow
 * until they are emptied for the pool or freed: a body stays while its
 * request is in the pipeline, and an answer while its client reads it.
 */
void
wreq_count(struct wreq *r)
{
	struct wire *w = r->wire;
	size_t now = r->body.cap + r->out.cap;
	if (w == NULL || now == r->held)
		return;
	w->held = w->held - r->held + now;
	r->held = now;
	if (w->held > w->held_peak)
		w->held_peak = w->held;
}

/* r's buffers count no more: emptied, or freed. */
static void
wreq_uncount(struct wreq *r)
{
	if (r->wire != NULL)
		r->wire->held -= r->held;
	r->held = 0;
}

void
wire_hold(struct wire *w, size_t n)
{
	w->held += n;
	if (w->held > w->held_peak)
		w->held_peak = w->held;
}

void
wire_unhold(struct wire *w, size_t n)
{
	w->held -= n < w->held ? n : w->held;
}

void
wreq_reset(struct wreq *r)
{
	struct buf url = r->url, body = r->body, out = r->out;
	memset(r, 0, sizeof *r);
	r->url = url;
	r->body = body;
	r->out = out;
	buf_reset(&r->url);
	buf_reset(&r->body);
	buf_reset(&r->out);
}

/* A buffer kept for the next request is at most this large. */
#define WREQ_BUF_KEEP (16 * 1024)

static void
buf_recycle(struct buf *b)
{
	if (b->cap > WREQ_BUF_KEEP)
		buf_free(b);
	else
		buf_reset(b);
}

void
wreq_trim(struct wreq *r)
{
	wreq_uncount(r);
	buf_recycle(&r->url);
	buf_recycle(&r->body);
	buf_recycle(&r->out);
}

void
wreq_free(struct wreq *r)
{
	wreq_uncount(r);
	buf_free(&r->url);
	buf_free(&r->body);
	buf_free(&r->out);
}

void
wire_close_after(struct wreq *r)
{
	r->close = 1;
	if (r->c != NULL)
		r->c->closing = 1;
}

const char *
wire_peer(const struct wreq *r)
{
	return r->c != NULL ? r->c->peer : "-";
}

const char *
wire_addr(const struct wreq *r)
{
	return r->addr[0] != '\0' ? r->addr : "?";
}

/* ---- the listener ------------------------------------------------------- */

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Binds and listens on w->host:w->port.  Returns 0 and sets w->port to the
 * port bound (the one the kernel chose for port 0), or -1 with err filled.
 */
int
wire_listen(struct wire *w, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char port[16];
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof port, "%d", w->port);
	int rc = getaddrinfo(w->host[0] ? w->host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "listen: cannot resolve '%s': %s", w->host, gai_strerror(rc));
		return -1;
	}
	int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0) {
		snprintf(err, errlen, "listen: socket: %s", strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (w->reuse_port &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
		snprintf(err, errlen, "listen: SO_REUSEPORT: %s", strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
	    set_nonblock(fd) != 0) {
		snprintf(err, errlen, "listen: cannot listen on %s:%d: %s", w->host, w->port,
		    strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	int bound = wire_port(fd);
	if (bound > 0)
		w->port = bound;
	w->lfd = fd;
	return 0;
}

int
wire_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

static void
peer_name(const struct sockaddr_storage *ss, char *addr, size_t alen, char *peer, size_t plen)
{
	int port = 0;
	addr[0] = '\0';
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, addr, (socklen_t)alen);
		port = ntohs(a->sin_port);
		snprintf(peer, plen, "%s:%d", addr, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, addr, (socklen_t)alen);
		port = ntohs(a->sin6_port);
		snprintf(peer, plen, "[%s]:%d", addr, port);
	} else {
		snprintf(addr, alen, "?");
		snprintf(peer, plen, "?");
	}
}

/* Over max-connections: say so in one write, if the socket takes it, and
 * close.  The answer is made once (wire_start), with the source's
 * Retry-After and the error type of every overload answer. */
static void
refuse(struct wire *w, int fd)
{
	ssize_t n = send(fd, w->refusal, w->refusal_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0)
		w->bytes_out += (uint64_t)n;
	close(fd);
	w->conns_refused++;
	w->ops->on_answer(w, NULL, 503);
}

static void
on_accept_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	struct wire *w = t->data;
	if (w->lfd >= 0 && !w->draining)
		ev_io_start(loop, &w->lio);
}

/* Serves fd, a connected socket whose peer's address is ss: 0, or -1 when
 * out of memory (fd left open). */
static int
conn_open(struct wire *w, int fd, const struct sockaddr_storage *ss)
{
	struct conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -1;
	int one = 1;
	/* tokens go out as they come: no Nagle delay on small writes */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->w = w;
	c->fd = fd;
	c->fresh = 1;
	c->phase = PH_IDLE;
	peer_name(ss, c->addr, sizeof c->addr, c->peer, sizeof c->peer);
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_init(&c->timer, on_timer);
	c->rio.data = c->wio.data = c->timer.data = c;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	w->conns_total++;
	c->in_value = 0;
	conn_update(c);
	return 0;
}

/* A socket connected already (a socketpair's end, one inherited): served as
 * a client connection, non-blocking from now on.  0, or -1 (fd left open). */
int
wire_adopt(struct wire *w, int fd)
{
	return wire_adopt_read(w, fd, NULL, 0);
}

int
wire_adopt_read(struct wire *w, int fd, const char *bytes, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		ss.ss_family = AF_UNSPEC;
	if (set_nonblock(fd) != 0 || conn_open(w, fd, &ss) != 0)
		return -1;
	if (len == 0)
		return 0;
	struct conn *c = w->conns; /* conn_open put it first */
	if ((c->in = malloc(len > READ_CHUNK ? len : READ_CHUNK)) == NULL) {
		c->fd = -1; /* the caller keeps fd, as promised */
		conn_free(c, 0);
		return -1;
	}
	c->in_cap = len > READ_CHUNK ? len : READ_CHUNK;
	memcpy(c->in, bytes, len);
	c->in_len = len;
	c->fresh = 0;
	conn_parse(c);
	if (c->dead)
		conn_close(c);
	return 0;
}

/*
 * Pauses accepting for ACCEPT_PAUSE rather than spin on a listener that
 * stays readable; the clients wait in the listen backlog meanwhile.  A
 * line in the log says why, at most every PAUSE_LOG_EVERY seconds (a
 * shortage that lasts would write one every pause).
 */
static void
accept_pause(struct wire *w, const char *why)
{
	double now = ev_now(w->loop);
	w->accept_pauses++;
	if (w->pause_logged == 0 || now - w->pause_logged >= PAUSE_LOG_EVERY) {
		char msg[256];
		snprintf(msg, sizeof msg, "accept: %s; pausing for %.0f ms (%llu pauses since "
		    "the last line)", why, ACCEPT_PAUSE * 1000, (unsigned long long)w->accept_pauses);
		w->ops->on_log(w, msg);
		w->pause_logged = now;
		w->accept_pauses = 0;
	}
	ev_io_stop(w->loop, &w->lio);
	ev_timer_set(&w->accept_retry, ACCEPT_PAUSE, 0.);
	ev_timer_start(w->loop, &w->accept_retry);
}

static void
on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	struct wire *w = io->data;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(w->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* out of descriptors or memory */
			accept_pause(w, strerror(errno));
			return;
		}
		if (w->n_conns >= w->max_connections) {
			refuse(w, fd);
			continue;
		}
		if (conn_open(w, fd, &ss) != 0) {
			refuse(w, fd);
			continue;
		}
		/* the kernel gives the lowest descriptor free: one this high
		 * means at most fd_reserve are left, which are for the rest of
		 * porch; this connection is served, the next ones wait */
		if (w->fd_reserve > 0 && fd >= w->fd_limit - w->fd_reserve) {
			char why[96];
			snprintf(why, sizeof why, "fewer than %ld of %ld descriptors free (kept "
			    "for the pipeline's own connections)", w->fd_reserve, w->fd_limit);
			accept_pause(w, why);
			return;
		}
	}
}

/* The descriptors to keep free, from the soft ulimit -n (none if unlimited). */
static void
fd_reserve_init(struct wire *w)
{
	struct rlimit rl;
	w->fd_limit = w->fd_reserve = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > (rlim_t)(1L << 30))
		return;
	w->fd_limit = (long)rl.rlim_cur;
	w->fd_reserve = w->fd_limit / 8;
	if (w->fd_reserve < FD_RESERVE_MIN)
		w->fd_reserve = FD_RESERVE_MIN;
	if (w->fd_reserve > FD_RESERVE_MAX)
		w->fd_reserve = FD_RESERVE_MAX;
	if (w->fd_reserve >= w->fd_limit)
		w->fd_reserve = 0; /* a limit this low leaves nothing to keep */
}

void
wire_start(struct wire *w)
{
	ev_io_init(&w->lio, on_accept, w->lfd, EV_READ);
	w->lio.data = w;
	ev_init(&w->accept_retry, on_accept_retry);
	w->accept_retry.data = w;
	fd_reserve_init(w);
	static const char body[] = "{\"error\":{\"message\":\"too many connections "
	    "(max-connections)\",\"type\":\"overloaded_error\",\"param\":null,"
	    "\"code\":\"max_connections\"}}\n";
	int n = snprintf(w->refusal, sizeof w->refusal,
	    "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: application/json\r\n"
	    "Retry-After: %u\r\n"
	    "Connection: close\r\n"
	    "Content-Length: %zu\r\n\r\n%s", w->retry_after_s, sizeof body - 1, body);
	w->refusal_len = n > 0 && (size_t)n < sizeof w->refusal ? (size_t)n : 0;
	ev_io_start(w->loop, &w->lio);
}

static void
conn_stop_listening(struct wire *w)
{
	ev_io_stop(w->loop, &w->lio);
	ev_timer_stop(w->loop, &w->accept_retry);
	if (w->lfd >= 0) {
		if (w->ops->on_unlisten != NULL)
			w->ops->on_unlisten(w);
		else
			close(w->lfd);
		w->lfd = -1;
	}
}

/* ---- connection state --------------------------------------------------- */

static int
wants_read(const struct conn *c)
{
	const struct wire *w = c->w;
	if (c->dead)
		return 0;
	if (c->lingering)
		return 1;
	if (c->closing || c->err_status != 0 || c->holding)
		return 0;
	/* a request being parsed may finish; a new one waits for room */
	return c->cur != NULL || c->queued < w->max_pipeline;
}

/*
 * Sets the connection's one timer from its phase: the whole head must come
 * within header-timeout, the whole body within body-timeout, and an idle
 * keep-alive connection is closed after idle-timeout.  No deadline runs
 * while the connection waits for us (answers pending, the pipeline full).
 */
static void
conn_timer(struct conn *c, int reset)
{
	struct wire *w = c->w;
	double timeout = 0;
	if (c->lingering)
		timeout = w->linger_timeout;
	else if (!wants_read(c))
		timeout = 0;
	else if (c->phase == PH_HEADERS)
		timeout = w->header_timeout;
	else if (c->phase == PH_BODY)
		timeout = w->body_timeout;
	else if (c->queued == 0)
		timeout = c->fresh ? w->header_timeout : w->idle_timeout;
	if (timeout <= 0) {
		ev_timer_stop(w->loop, &c->timer);
		return;
	}
	if (ev_is_active(&c->timer) && !reset)
		return;
	ev_timer_stop(w->loop, &c->timer);
	ev_timer_set(&c->timer, timeout, 0.);
	ev_timer_start(w->loop, &c->timer);
}

static void
conn_update(struct conn *c)
{
	if (c->dead)
		return;
	if (wants_read(c))
		ev_io_start(c->w->loop, &c->rio);
	else
		ev_io_stop(c->w->loop, &c->rio);
	conn_timer(c, 0);
}

/* The phase changed: its deadline starts now. */
static void
conn_phase(struct conn *c, enum conn_phase ph)
{
	c->phase = ph;
	ev_timer_stop(c->w->loop, &c->timer);
	conn_timer(c, 1);
}

void
conn_kick(struct conn *c)
{
	if (c == NULL || c->dead)
		return;
	ev_io_start(c->w->loop, &c->wio);
	ev_feed_event(c->w->loop, &c->wio, EV_WRITE);
}

/* Frees c and whatever only it holds.  Its requests go back to the upper
 * layer: answered or not, at teardown (`closed` 0) as released, else as
 * gone with their connection. */
static void
conn_free(struct conn *c, int closed)
{
	if (c->holding) {
		c->holding = 0;
		c->w->holding--;
	}
	struct wire *w = c->w;
	/* what on_gone calls (resuming other connections) must leave it be */
	c->dead = 1;
	struct wreq *r = c->head;
	c->head = c->tail = NULL;
	c->cur = NULL;
	while (r != NULL) {
		struct wreq *next = r->next;
		r->next = NULL;
		r->c = NULL;
		if (closed)
			w->ops->on_gone(r, 1); /* may free it, maybe inside this call */
		else
			w->ops->on_release(r);
		r = next;
	}
	ev_io_stop(w->loop, &c->rio);
	ev_io_stop(w->loop, &c->wio);
	ev_timer_stop(w->loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->n_conns--;
	free(c->in);
	buf_free(&c->hfield);
	buf_free(&c->hvalue);
	free(c);
	if (w->retiring && w->n_conns == 0 && w->ops->on_empty != NULL)
		w->ops->on_empty(w);
}

/*
 * A retiring wire's connection with nothing in flight goes to whoever
 * replaces the wire, with what was read and not parsed: the socket is the
 * same, so the client sees nothing.  0: gone over (c is freed).
 */
static int
conn_handover(struct conn *c)
{
	struct wire *w = c->w;
	if (!w->retiring || w->ops->on_handover == NULL || c->dead || c->lingering ||
	    c->closing || c->eof || c->head != NULL || c->cur != NULL || c->queued > 0 ||
	    c->phase != PH_IDLE || c->err_status != 0)
		return -1;
	size_t left = c->in_len - c->in_off;
	if (w->ops->on_handover(w, c->fd, left > 0 ? c->in + c->in_off : "", left) != 0)
		return -1;
	c->fd = -1; /* not ours to close any more */
	conn_free(c, 0);
	return 0;
}

static void
conn_close(struct conn *c)
{
	conn_free(c, 1);
}

/* Answered what it will answer: shut our side, read what is left a while,
 * then close; closing at once could reset the connection and lose the
 * answer while the client is still sending (a body we refused). */
static void
conn_linger(struct conn *c)
{
	if (c->lingering)
		return;
	c->lingering = 1;
	c->closing = 1;
	ev_io_stop(c->w->loop, &c->wio);
	if (c->eof || shutdown(c->fd, SHUT_WR) != 0) {
		conn_close(c);
		return;
	}
	c->in_off = c->in_len = 0;
	conn_update(c);
	conn_timer(c, 1);
}

/* A request that could not be read: the upper layer answers it (in its
 * turn), and the connection closes after. */
static void
conn_fail_request(struct conn *c, int status, const char *code, const char *why)
{
	struct wreq *r = c->cur;
	c->cur = NULL;
	if (r == NULL && (r = conn_req_new(c)) == NULL) {
		c->dead = 1;
		conn_kick(c);
		return;
	}
	r->close = 1;
	c->closing = 1;
	c->w->ops->on_fail(r, status, code, why);
	conn_update(c);
	conn_kick(c);
}

/* ---- reading ------------------------------------------------------------ */

/* Parses what was read, request by request, while the connection may take more. */
static void
conn_parse(struct conn *c)
{
	struct wire *w = c->w;
	while (!c->dead && !c->closing && c->err_status == 0 && !c->holding &&
	    c->in_off < c->in_len && (c->cur != NULL || c->queued < w->max_pipeline)) {
		size_t avail = c->in_len - c->in_off;
		const char *at = c->in + c->in_off;
		enum conn_phase before = c->phase;
		size_t n = http_parser_execute(&c->parser, &parse_settings, at, avail);
		c->in_off += n;
		/* the parser stops at each request's end: n is the current one's */
		if (c->cur != NULL)
			c->cur->bytes_in += n;
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (c->phase != before)
			conn_phase(c, c->phase);
		if (e == HPE_PAUSED) {
			/* on_message_complete paused it: one whole request */
			http_parser_pause(&c->parser, 0);
			struct wreq *r = c->cur;
			c->cur = NULL;
			conn_phase(c, PH_IDLE);
			if (r != NULL) {
				if (r->status == 0) /* else refused when its head arrived */
					w->ops->on_request(r);
				if (r->complete)
					conn_kick(c); /* it may have waited for its parse */
			}
			continue;
		}
		if (c->err_status != 0) {
			int st = c->err_status;
			c->err_status = 0;
			if (st == 413)
				conn_fail_request(c, 413, "request_too_large",
				    "the request body is larger than max-body");
			else if (st == 431)
				conn_fail_request(c, 431, "headers_too_large",
				    "the request's headers are larger than max-header-size");
			else if (st == 414)
				conn_fail_request(c, 414, "url_too_long",
				    "the request's target is longer than max-url-size");
			else if (st == 505)
				conn_fail_request(c, 505, "http_version_not_supported",
				    "porch speaks HTTP/1.1 and HTTP/1.0 only");
			else if (st == 503)
				conn_fail_request(c, 503, "max_inflight_bytes",
				    "the request's body would take the bytes requests in flight "
				    "hold past max-inflight-bytes");
			else
				conn_fail_request(c, 500, "internal", "out of memory");
			break;
		}
		if (e == HPE_HEADER_OVERFLOW) {
			conn_fail_request(c, 431, "headers_too_large",
			    "the request's headers are larger than max-header-size");
			break;
		}
		if (e == HPE_CLOSED_CONNECTION) {
			/* bytes after a request that said Connection: close */
			c->closing = 1;
			break;
		}
		if (e == HPE_INVALID_METHOD && before == PH_IDLE && avail >= 14 &&
		    memcmp(at, "PRI * HTTP/2.0", 14) == 0) {
			/* HTTP/2's connection preface (prior knowledge) */
			conn_fail_request(c, 505, "http_version_not_supported",
			    "porch speaks HTTP/1.1 and HTTP/1.0 only");
			break;
		}
		if (e != HPE_OK) {
			char why[160];
			snprintf(why, sizeof why, "malformed HTTP request: %s",
			    http_errno_description(e));
			conn_fail_request(c, 400, "malformed_request", why);
			break;
		}
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	conn_update(c);
}

/* Room for one more read: unparsed bytes to the front, READ_CHUNK free. */
static int
conn_room(struct conn *c)
{
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_cap - c->in_len >= READ_CHUNK)
		return 0;
	size_t cap = c->in_len + READ_CHUNK;
	char *p = realloc(c->in, cap);
	if (p == NULL)
		return -1;
	c->in = p;
	c->in_cap = cap;
	return 0;
}

static void
on_read(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	struct conn *c = io->data;
	struct wire *w = c->w;
	if (c->lingering) {
		char junk[READ_CHUNK];
		ssize_t n = recv(c->fd, junk, sizeof junk, 0);
		if (n > 0) {
			w->bytes_in += (uint64_t)n;
			c->in_len += (size_t)n; /* counts what was thrown away */
			if (c->in_len <= LINGER_MAX)
				return;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			return;
		}
		conn_close(c);
		return;
	}
	if (conn_room(c) != 0) {
		conn_close(c);
		return;
	}
	ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c);
		return;
	}
	if (n == 0) {
		/* the client is gone (HTTP clients do not half-close): what it
		 * asked for is no longer wanted */
		c->eof = 1;
		conn_close(c);
		return;
	}
	w->bytes_in += (uint64_t)n;
	c->in_len += (size_t)n;
	if (c->fresh)
		c->fresh = 0;
	conn_parse(c);
	if (c->dead)
		conn_close(c);
}

/* ---- writing ------------------------------------------------------------ */

/* Writes what the head request has ready, request after request. */
static void
conn_flush(struct conn *c)
{
	struct wire *w = c->w;
	while (c->head != NULL) {
		struct wreq *r = c->head;
		/* HEAD: the head only; what a body added after it is not sent */
		size_t end = r->out_cut ? r->out_cut : r->out.len;
		if (r->out_off < end) {
			ssize_t n = send(c->fd, r->out.p + r->out_off, end - r->out_off,
			    MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					ev_io_start(w->loop, &c->wio);
					return;
				}
				conn_close(c);
				return;
			}
			w->bytes_out += (uint64_t)n;
			r->bytes_out += (uint64_t)n;
			if (r->t_first == 0)
				r->t_first = ev_now(w->loop);
			r->out_off += (size_t)n;
			continue;
		}
		buf_reset(&r->out);
		r->out_off = r->out_cut = 0;
		if (!r->complete)
			break; /* more to come (a stream): wait for it */
		if (r == c->cur) {
			/* answered before its body was read (401, 404 ...): the parser
			 * still fills it; it goes when parsed, or now if nothing more
			 * will be parsed on this connection */
			if (!c->closing)
				break;
			c->cur = NULL;
		}
		int close_after = r->close;
		c->head = r->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->queued--;
		r->next = NULL;
		r->c = NULL;
		w->ops->on_release(r);
		if (close_after) {
			/* requests pipelined after it are not answered */
			c->closing = 1;
			conn_linger_after(c);
			return;
		}
		if (c->head == NULL)
			conn_phase(c, c->phase); /* idle from now */
	}
	ev_io_stop(w->loop, &c->wio);
	if (c->head == NULL && (c->closing || w->draining)) {
		conn_linger(c);
		return;
	}
	if (c->head == NULL && w->retiring) {
		if (conn_handover(c) == 0)
			return;
		if (c->cur == NULL && c->in_off == c->in_len) {
			/* nobody takes it over: closed between answers, as a drain does */
			conn_linger(c);
			return;
		}
	}
	/* room in the queue again: pipelined requests already read go on */
	conn_parse(c);
	if (c->dead)
		conn_close(c);
}

/* The connection closes after an answer: the requests after it go back to
 * the upper layer unanswered, then it lingers. */
static void
conn_linger_after(struct conn *c)
{
	struct wire *w = c->w;
	struct wreq *r = c->head;
	c->head = c->tail = NULL;
	c->cur = NULL;
	c->queued = 0;
	while (r != NULL) {
		struct wreq *next = r->next;
		r->next = NULL;
		r->c = NULL;
		w->ops->on_gone(r, 0);
		r = next;
	}
	conn_linger(c);
}

static void
on_write(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	struct conn *c = io->data;
	if (c->dead) {
		conn_close(c);
		return;
	}
	conn_flush(c);
}

static void
on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct conn *c = t->data;
	if (c->lingering || c->dead) {
		conn_close(c);
		return;
	}
	if (c->phase == PH_HEADERS || c->phase == PH_BODY) {
		const char *what = c->phase == PH_HEADERS ? "headers" : "body";
		char why[128];
		snprintf(why, sizeof why, "the request's %s took longer than %s-timeout",
		    what, what[0] == 'h' ? "header" : "body");
		conn_fail_request(c, 408, "request_timeout", why);
		if (c->dead)
			conn_close(c);
		return;
	}
	if (c->queued == 0) {
		/* idle keep-alive connection, or one that never sent a request */
		if (c->in_len > c->in_off) {
			conn_fail_request(c, 408, "request_timeout",
			    "the request took longer than header-timeout");
			return;
		}
		conn_close(c);
	}
}

/* ---- the whole source --------------------------------------------------- */

void
wire_wait(struct wreq *r)
{
	struct conn *c = r->c;
	if (c == NULL || c->holding)
		return;
	c->holding = 1;
	c->w->holding++;
	conn_update(c);
}

/* Every held connection reads again, in the order they were opened. */
static void
release_holds(struct wire *w)
{
	for (struct conn *c = w->conns; c != NULL; c = c->next)
		if (c->holding) {
			c->holding = 0;
			w->holding--;
		}
}

void
wire_resume(struct wire *w)
{
	if (w->holding == 0)
		return;
	release_holds(w);
	for (struct conn *c = w->conns, *next; c != NULL; c = next) {
		next = c->next;
		/* the wait was ours, not the client's: deadlines start again */
		conn_timer(c, 1);
		conn_parse(c);
	}
}

void
wire_retire(struct wire *w)
{
	w->retiring = 1;
	release_holds(w);
	conn_stop_listening(w);
	for (struct conn *c = w->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (conn_handover(c) == 0)
			continue;
		if (c->queued == 0 && c->cur == NULL)
			conn_close(c); /* idle, and nobody takes it over */
		else
			conn_update(c);
	}
	if (w->n_conns == 0 && w->ops->on_empty != NULL)
		w->ops->on_empty(w);
}

void
wire_drain(struct wire *w)
{
	/* nothing waits for room any more: every connection may read */
	release_holds(w);
	conn_stop_listening(w);
	for (struct conn *c = w->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->queued == 0 && c->cur == NULL)
			conn_close(c);
		else
			conn_update(c);
	}
}

/* Best effort, at teardown: write what is buffered, for a bounded time. */
static void
conn_flush_blocking(struct conn *c, double until)
{
	for (struct wreq *r = c->head; r != NULL; r = r->next) {
		size_t end = r->out_cut ? r->out_cut : r->out.len;
		while (r->out_off < end) {
			double left = until - ev_time();
			if (left <= 0)
				return;
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };
			if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
				return;
			ssize_t n = send(c->fd, r->out.p + r->out_off, end - r->out_off,
			    MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return;
			if (n > 0)
				r->out_off += (size_t)n;
		}
		if (!r->complete)
			return;
	}
}

void
wire_fini(struct wire *w)
{
	double until = ev_time() + FINI_FLUSH_MS / 1000.0;
	while (w->conns != NULL) {
		struct conn *c = w->conns;
		conn_flush_blocking(c, until);
		conn_free(c, 0);
	}
	conn_stop_listening(w);
}
