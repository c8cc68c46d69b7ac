/*
 * conn.c -- the http source's sockets: the listener, client connections,
 * reading and writing on the libev loop, timeouts and backpressure.
 *
 * Reentrancy: a connection is freed only from its own watchers' callbacks
 * (or from drain and fini), never while a parser callback, the pipeline or
 * the reply sink may still point at it.  Code elsewhere that has something
 * to write calls conn_kick, which feeds a write event to the connection:
 * libev runs it in the same loop iteration, after the current callback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

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

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* ---- requests ----------------------------------------------------------- */

/*
 * Requests freed are kept for the next ones, with their buffers (url,
 * body, answer), so a keep-alive request costs no malloc of its own: at
 * most HREQ_POOL_MAX of them, and a buffer past HREQ_BUF_KEEP is let go.
 * The pool is bounded, so memory stays flat under load.
 */
#define HREQ_POOL_MAX 256
#define HREQ_BUF_KEEP (16 * 1024)

static void
buf_recycle(struct buf *b)
{
	if (b->cap > HREQ_BUF_KEEP)
		buf_free(b);
	else
		buf_reset(b);
}

/* A new request at the end of c's queue, with a fresh request id. */
struct hreq *
hreq_new(struct hconn *c)
{
	struct http_src *s = c->s;
	struct hreq *h = s->hreq_pool;
	if (h != NULL) {
		s->hreq_pool = h->next;
		s->n_hreq_pool--;
		struct buf url = h->url, body = h->body, out = h->out;
		struct buf chunk_head = h->chunk_head;
		memset(h, 0, sizeof *h);
		h->url = url;
		h->body = body;
		h->out = out;
		h->chunk_head = chunk_head;
	} else if ((h = calloc(1, sizeof *h)) == NULL) {
		return NULL;
	}
	h->origin.ops = &hreq_ops;
	h->s = s;
	h->c = c;
	h->t0 = ev_now(s->loop);
	h->keep_alive = 1;
	h->http_minor = 1; /* until the request line says otherwise */
	h->cors = s->cors_default;
	/* unique in the run, unguessable enough for logs: a mixed counter */
	hex16(h->rid, http_mix64(++s->next_rid ^ (uint64_t)(uintptr_t)s));
	if (c->tail != NULL)
		c->tail->next = h;
	else
		c->head = h;
	c->tail = h;
	c->queued++;
	return h;
}

static void
hreq_free(struct hreq *h)
{
	struct http_src *s = h->s;
	if (h->task != NULL)
		tasks_unwatch(h);
	free(h->auth);
	free(h->session);
	free(h->model);
	free(h->gen_id);
	free(h->cors_req_headers);
	if (s->n_hreq_pool < HREQ_POOL_MAX) {
		buf_recycle(&h->url);
		buf_recycle(&h->body);
		buf_recycle(&h->out);
		buf_recycle(&h->chunk_head);
		h->next = s->hreq_pool;
		s->hreq_pool = h;
		s->n_hreq_pool++;
		return;
	}
	buf_free(&h->url);
	buf_free(&h->body);
	buf_free(&h->out);
	buf_free(&h->chunk_head);
	free(h);
}

void
hreq_pool_free(struct http_src *s)
{
	while (s->hreq_pool != NULL) {
		struct hreq *h = s->hreq_pool;
		s->hreq_pool = h->next;
		buf_free(&h->url);
		buf_free(&h->body);
		buf_free(&h->out);
		buf_free(&h->chunk_head);
		free(h);
	}
	s->n_hreq_pool = 0;
}

void
hreq_release(struct hreq *h)
{
	if (h->c == NULL && !h->in_pipeline)
		hreq_free(h);
}

void
http_log(struct http_src *s, const struct hreq *h, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (h != NULL && h->m != NULL)
		porch_msg_log(s->st, h->m, "%s", buf);
	else if (h != NULL)
		porch_stage_log(s->st, "request-id %s: %s", h->rid, buf);
	else
		porch_stage_log(s->st, "%s", buf);
}

/* ---- the listener ------------------------------------------------------- */

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Binds and listens on s->host:s->port.  Returns 0 and sets s->port to the
 * port bound (the one the kernel chose for port 0), or -1 with err filled.
 */
int
conn_listen(struct http_src *s, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char port[16];
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof port, "%d", s->port);
	int rc = getaddrinfo(s->host[0] ? s->host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "listen: cannot resolve '%s': %s", s->host, gai_strerror(rc));
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
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
	    set_nonblock(fd) != 0) {
		snprintf(err, errlen, "listen: cannot listen on %s:%d: %s", s->host, s->port,
		    strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	s->lfd = fd;
	return 0;
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

#define REFUSE_BODY "{\"error\":{\"message\":\"too many connections\",\"type\":\"server_error\"," \
	"\"param\":null,\"code\":\"max_connections\"}}\n"
_Static_assert(sizeof REFUSE_BODY - 1 == 105, "refuse's Content-Length is its body's length");

/* Over max-connections: say so in one write, if the socket takes it, and close. */
static void
refuse(struct http_src *s, int fd)
{
	static const char msg[] =
	    "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: application/json\r\n"
	    "Retry-After: 1\r\n"
	    "Connection: close\r\n"
	    "Content-Length: 105\r\n\r\n"
	    REFUSE_BODY;
	ssize_t n = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0)
		s->bytes_out += (uint64_t)n;
	close(fd);
	s->conns_refused++;
	metrics_count(s, R_OTHER, 503);
}

static void
on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct http_src *s = w->data;
	if (s->lfd >= 0 && !s->paused && !s->draining)
		ev_io_start(loop, &s->lio);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct http_src *s = w->data;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* out of descriptors or memory: pause accepting a little
			 * rather than spin on a listener that stays readable */
			porch_stage_log(s->st, "accept: %s; pausing for 100 ms", strerror(errno));
			ev_io_stop(loop, &s->lio);
			ev_timer_set(&s->accept_retry, 0.1, 0.);
			ev_timer_start(loop, &s->accept_retry);
			return;
		}
		if (s->n_conns >= s->max_connections) {
			refuse(s, fd);
			continue;
		}
		struct hconn *c = calloc(1, sizeof *c);
		if (c == NULL) {
			refuse(s, fd);
			continue;
		}
		int one = 1;
		/* tokens go out as they come: no Nagle delay on small writes */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->s = s;
		c->fd = fd;
		c->fresh = 1;
		c->phase = PH_IDLE;
		peer_name(&ss, c->addr, sizeof c->addr, c->peer, sizeof c->peer);
		http_parser_init(&c->parser, HTTP_REQUEST);
		c->parser.data = c;
		ev_io_init(&c->rio, on_read, fd, EV_READ);
		ev_io_init(&c->wio, on_write, fd, EV_WRITE);
		ev_init(&c->timer, on_timer);
		c->rio.data = c->wio.data = c->timer.data = c;
		c->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = c;
		s->conns = c;
		s->n_conns++;
		s->conns_total++;
		c->in_value = 0;
		conn_update(c);
	}
}

void
conn_start(struct http_src *s)
{
	ev_io_init(&s->lio, on_accept, s->lfd, EV_READ);
	s->lio.data = s;
	ev_init(&s->accept_retry, on_accept_retry);
	s->accept_retry.data = s;
	if (!s->paused)
		ev_io_start(s->loop, &s->lio);
}

void
conn_stop_listening(struct http_src *s)
{
	ev_io_stop(s->loop, &s->lio);
	ev_timer_stop(s->loop, &s->accept_retry);
	if (s->lfd >= 0) {
		close(s->lfd);
		s->lfd = -1;
	}
}

/* ---- connection state --------------------------------------------------- */

static int
wants_read(const struct hconn *c)
{
	const struct http_src *s = c->s;
	if (c->dead)
		return 0;
	if (c->lingering)
		return 1;
	if (c->closing || c->err_status != 0 || s->paused)
		return 0;
	/* a request being parsed may finish; a new one waits for room */
	return c->cur != NULL || c->queued < s->max_pipeline;
}

/*
 * Sets the connection's one timer from its phase: the whole head must come
 * within header-timeout, the whole body within body-timeout, and an idle
 * keep-alive connection is closed after idle-timeout.  No deadline runs
 * while the connection waits for us (answers pending, the pipeline full).
 */
static void
conn_timer(struct hconn *c, int reset)
{
	struct http_src *s = c->s;
	double timeout = 0;
	if (c->lingering)
		timeout = s->linger_timeout;
	else if (!wants_read(c))
		timeout = 0;
	else if (c->phase == PH_HEADERS)
		timeout = s->header_timeout;
	else if (c->phase == PH_BODY)
		timeout = s->body_timeout;
	else if (c->queued == 0)
		timeout = c->fresh ? s->header_timeout : s->idle_timeout;
	if (timeout <= 0) {
		ev_timer_stop(s->loop, &c->timer);
		return;
	}
	if (ev_is_active(&c->timer) && !reset)
		return;
	ev_timer_stop(s->loop, &c->timer);
	ev_timer_set(&c->timer, timeout, 0.);
	ev_timer_start(s->loop, &c->timer);
}

void
conn_update(struct hconn *c)
{
	if (c->dead)
		return;
	if (wants_read(c))
		ev_io_start(c->s->loop, &c->rio);
	else
		ev_io_stop(c->s->loop, &c->rio);
	conn_timer(c, 0);
}

/* The phase changed: its deadline starts now. */
static void
conn_phase(struct hconn *c, enum conn_phase ph)
{
	c->phase = ph;
	ev_timer_stop(c->s->loop, &c->timer);
	conn_timer(c, 1);
}

void
conn_kick(struct hconn *c)
{
	if (c == NULL || c->dead)
		return;
	ev_io_start(c->s->loop, &c->wio);
	ev_feed_event(c->s->loop, &c->wio, EV_WRITE);
}

/* Frees c and whatever only it holds; requests in the pipeline are cancelled
 * when `cancel`, and live on until their outcome. */
static void
conn_free(struct hconn *c, int cancel)
{
	struct http_src *s = c->s;
	/* what cancelling calls (resuming other connections) must leave it be */
	c->dead = 1;
	struct hreq *h = c->head;
	c->head = c->tail = NULL;
	c->cur = NULL;
	while (h != NULL) {
		struct hreq *next = h->next;
		h->next = NULL;
		h->c = NULL;
		if (!h->in_pipeline || !cancel) {
			/* at teardown every request has had its outcome */
			hreq_free(h);
		} else {
			if (h->m != NULL)
				http_log(s, h, "the client closed the connection; cancelling");
			/* its outcome frees it, maybe inside this call */
			route_cancel(s, h);
		}
		h = next;
	}
	ev_io_stop(s->loop, &c->rio);
	ev_io_stop(s->loop, &c->wio);
	ev_timer_stop(s->loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->n_conns--;
	free(c->in);
	buf_free(&c->hfield);
	buf_free(&c->hvalue);
	free(c);
}

void
conn_close(struct hconn *c)
{
	conn_free(c, 1);
}

/* Answered what it will answer: shut our side, read what is left a while,
 * then close; closing at once could reset the connection and lose the
 * answer while the client is still sending (a body we refused). */
static void
conn_linger(struct hconn *c)
{
	if (c->lingering)
		return;
	c->lingering = 1;
	c->closing = 1;
	ev_io_stop(c->s->loop, &c->wio);
	if (c->eof || shutdown(c->fd, SHUT_WR) != 0) {
		conn_close(c);
		return;
	}
	c->in_off = c->in_len = 0;
	conn_update(c);
	conn_timer(c, 1);
}

/* A request that could not be read: answer it (in its turn) and close. */
void
conn_fail_request(struct hconn *c, int status, const char *code, const char *why)
{
	struct hreq *h = c->cur;
	c->cur = NULL;
	if (h == NULL && (h = hreq_new(c)) == NULL) {
		c->dead = 1;
		conn_kick(c);
		return;
	}
	h->close = 1;
	c->closing = 1;
	http_log(c->s, h, "%s %s: %d %s", c->peer, h->url.len ? h->url.p : "-", status, why);
	answer_error(h, status, NULL, code, "%s", why);
	conn_update(c);
	conn_kick(c);
}

/* ---- reading ------------------------------------------------------------ */

void
conn_parse(struct hconn *c)
{
	struct http_src *s = c->s;
	while (!c->dead && !c->closing && c->err_status == 0 && !s->paused &&
	    c->in_off < c->in_len && (c->cur != NULL || c->queued < s->max_pipeline)) {
		size_t avail = c->in_len - c->in_off;
		const char *at = c->in + c->in_off;
		enum conn_phase before = c->phase;
		size_t n = http_parser_execute(&c->parser, &parse_settings, at, avail);
		c->in_off += n;
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (c->phase != before)
			conn_phase(c, c->phase);
		if (e == HPE_PAUSED) {
			/* on_message_complete paused it: one whole request */
			http_parser_pause(&c->parser, 0);
			struct hreq *h = c->cur;
			c->cur = NULL;
			conn_phase(c, PH_IDLE);
			if (h != NULL) {
				route_dispatch(h);
				if (h->complete)
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
conn_room(struct hconn *c)
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
on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct hconn *c = w->data;
	struct http_src *s = c->s;
	if (c->lingering) {
		char junk[READ_CHUNK];
		ssize_t n = recv(c->fd, junk, sizeof junk, 0);
		if (n > 0) {
			s->bytes_in += (uint64_t)n;
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
	s->bytes_in += (uint64_t)n;
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
conn_flush(struct hconn *c)
{
	struct http_src *s = c->s;
	while (c->head != NULL) {
		struct hreq *h = c->head;
		/* HEAD: the head only; what a body added after it is not sent */
		size_t end = h->out_cut ? h->out_cut : h->out.len;
		if (h->out_off < end) {
			ssize_t n = send(c->fd, h->out.p + h->out_off, end - h->out_off,
			    MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					ev_io_start(s->loop, &c->wio);
					return;
				}
				conn_close(c);
				return;
			}
			s->bytes_out += (uint64_t)n;
			h->out_off += (size_t)n;
			continue;
		}
		buf_reset(&h->out);
		h->out_off = h->out_cut = 0;
		if (!h->complete)
			break; /* more to come (a stream): wait for it */
		if (h == c->cur) {
			/* answered before its body was read (401, 404 ...): the parser
			 * still fills it; it goes when parsed, or now if nothing more
			 * will be parsed on this connection */
			if (!c->closing)
				break;
			c->cur = NULL;
		}
		int close_after = h->close;
		c->head = h->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->queued--;
		h->next = NULL;
		h->c = NULL;
		hreq_release(h);
		if (close_after) {
			/* requests pipelined after it are not answered */
			c->closing = 1;
			conn_linger_after(c);
			return;
		}
		if (c->head == NULL)
			conn_phase(c, c->phase); /* idle from now */
	}
	ev_io_stop(s->loop, &c->wio);
	if (c->head == NULL && (c->closing || s->draining)) {
		conn_linger(c);
		return;
	}
	/* room in the queue again: pipelined requests already read go on */
	conn_parse(c);
	if (c->dead)
		conn_close(c);
}

/* The connection closes after an answer: forget the rest, then linger. */
void
conn_linger_after(struct hconn *c)
{
	struct http_src *s = c->s;
	struct hreq *h = c->head;
	c->head = c->tail = NULL;
	c->cur = NULL;
	c->queued = 0;
	while (h != NULL) {
		struct hreq *next = h->next;
		h->next = NULL;
		h->c = NULL;
		if (h->in_pipeline)
			route_cancel(s, h);
		else
			hreq_release(h);
		h = next;
	}
	conn_linger(c);
}

static void
on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct hconn *c = w->data;
	if (c->dead) {
		conn_close(c);
		return;
	}
	conn_flush(c);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct hconn *c = w->data;
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
conn_pause_all(struct http_src *s)
{
	if (s->paused)
		return;
	s->paused = 1;
	ev_io_stop(s->loop, &s->lio);
	for (struct hconn *c = s->conns; c != NULL; c = c->next)
		conn_update(c);
}

void
conn_resume_all(struct http_src *s)
{
	if (!s->paused)
		return;
	s->paused = 0;
	if (s->lfd >= 0 && !s->draining)
		ev_io_start(s->loop, &s->lio);
	for (struct hconn *c = s->conns, *next; c != NULL; c = next) {
		next = c->next;
		/* the wait was ours, not the client's: deadlines start again */
		conn_timer(c, 1);
		conn_parse(c);
		if (s->paused)
			break;
	}
}

void
conn_drain(struct http_src *s)
{
	conn_stop_listening(s);
	for (struct hconn *c = s->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->queued == 0 && c->cur == NULL)
			conn_close(c);
		else
			conn_update(c);
	}
}

/* Best effort, at teardown: write what is buffered, for a bounded time. */
static void
conn_flush_blocking(struct hconn *c, double until)
{
	for (struct hreq *h = c->head; h != NULL; h = h->next) {
		size_t end = h->out_cut ? h->out_cut : h->out.len;
		while (h->out_off < end) {
			double left = until - ev_time();
			if (left <= 0)
				return;
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };
			if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
				return;
			ssize_t n = send(c->fd, h->out.p + h->out_off, end - h->out_off,
			    MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return;
			if (n > 0)
				h->out_off += (size_t)n;
		}
		if (!h->complete)
			return;
	}
}

void
conn_fini(struct http_src *s)
{
	double until = ev_time() + FINI_FLUSH_MS / 1000.0;
	while (s->conns != NULL) {
		struct hconn *c = s->conns;
		conn_flush_blocking(c, until);
		conn_free(c, 0);
	}
	conn_stop_listening(s);
}
