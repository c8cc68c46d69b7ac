/*
 * control.c -- the runtime's own small HTTP listener (control.h).
 *
 * It answers one request a connection and closes it (HTTP/1.0 style, with
 * Connection: close): GET or HEAD of /metrics (porch_metrics_text of the
 * pipeline that takes requests now, so it goes on across a reload),
 * /graph (the live graph page the http source serves, reading /metrics
 * from here) and /healthz.  Anything else is 404, a method other than GET
 * or HEAD 405, a head larger than CONTROL_HEAD_MAX 431, a client silent
 * for CONTROL_TIMEOUT seconds is closed.  It takes no keys: bind it to a
 * loopback address, as the default porch(1) shows.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "control.h"
#include "shards.h"
#include "log.h"
#include "run.h"
#include "util.h"

#define CONTROL_HEAD_MAX 8192
#define CONTROL_TIMEOUT 10.0

extern const char http_graph_page[];

struct control_conn {
	struct control *c;
	struct control_conn *next;
	int fd;
	ev_io io;
	ev_timer timer;
	char in[CONTROL_HEAD_MAX];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
};

struct control {
	struct run *r;
	int fd;
	ev_io lio;
	struct control_conn *conns;
};

/* A connection's watchers do not keep the loop running either: a run that
 * ends does not wait for a client of this listener.  These start and stop
 * them so. */
static void
io_start(struct ev_loop *loop, ev_io *w)
{
	ev_io_start(loop, w);
	ev_unref(loop);
}

static void
io_stop(struct ev_loop *loop, ev_io *w)
{
	if (ev_is_active(w)) {
		ev_ref(loop);
		ev_io_stop(loop, w);
	}
}

static void
conn_close(struct control_conn *k)
{
	struct control *c = k->c;
	for (struct control_conn **pp = &c->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	io_stop(c->r->loop, &k->io);
	/* pending too: fired in this iteration, its callback would run on k */
	if (ev_is_active(&k->timer) || ev_is_pending(&k->timer)) {
		ev_ref(c->r->loop);
		ev_timer_stop(c->r->loop, &k->timer);
	}
	close(k->fd);
	free(k->out);
	free(k);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents);

/* The whole answer, written as the socket takes it. */
static void
answer(struct control_conn *k, int status, const char *reason, const char *type,
    const char *body, size_t len, int head_only)
{
	char head[512];
	int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n%s\r\n",
	    status, reason, type, len, status == 405 ? "Allow: GET, HEAD\r\n" :
	    strcmp(type, "text/html; charset=utf-8") == 0 ?
	    "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
	    "style-src 'unsafe-inline'; connect-src 'self'\r\n" : "");
	size_t blen = head_only ? 0 : len;
	k->out = xmalloc((size_t)n + blen);
	memcpy(k->out, head, (size_t)n);
	memcpy(k->out + n, body, blen);
	k->out_len = (size_t)n + blen;
	k->out_off = 0;
	struct ev_loop *loop = k->c->r->loop;
	io_stop(loop, &k->io);
	ev_io_init(&k->io, on_write, k->fd, EV_WRITE);
	k->io.data = k;
	io_start(loop, &k->io);
}

static void
serve(struct control_conn *k)
{
	char method[8], path[256];
	if (sscanf(k->in, "%7s %255s", method, path) != 2) {
		static const char bad[] = "a malformed request\n";
		answer(k, 400, "Bad Request", "text/plain", bad, sizeof bad - 1, 0);
		return;
	}
	int head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		static const char no[] = "GET or HEAD only\n";
		answer(k, 405, "Method Not Allowed", "text/plain", no, sizeof no - 1, 0);
		return;
	}
	char *q = strchr(path, '?');
	if (q != NULL)
		*q = '\0';
	struct graph *g = k->c->r->g;
	struct proc *proc = k->c->r->proc;
	if (strcmp(path, "/metrics") == 0 && (proc != NULL || g->n_stages > 0)) {
		/* threads: the sum over the shards, which the main thread serves */
		char *text = proc != NULL ? proc_metrics_text(proc) :
		    porch_metrics_text(&g->stages[0]);
		if (text == NULL) {
			static const char oom[] = "out of memory\n";
			answer(k, 500, "Internal Server Error", "text/plain", oom, sizeof oom - 1, 0);
			return;
		}
		answer(k, 200, "OK", "text/plain; version=0.0.4", text, strlen(text), head);
		free(text);
	} else if (strcmp(path, "/graph") == 0) {
		answer(k, 200, "OK", "text/html; charset=utf-8", http_graph_page,
		    strlen(http_graph_page), head);
	} else if (strcmp(path, "/healthz") == 0) {
		char body[128];
		int n = snprintf(body, sizeof body, "{\"healthy\": true, \"version\": \"%s\"}\n",
		    porch_version());
		answer(k, 200, "OK", "application/json", body, (size_t)n, head);
	} else {
		static const char nf[] = "not found: the control listener has /metrics, "
		    "/graph and /healthz\n";
		answer(k, 404, "Not Found", "text/plain", nf, sizeof nf - 1, head);
	}
}

static void
on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct control_conn *k = w->data;
	while (k->out_off < k->out_len) {
		ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
		    MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;
		k->out_off += (size_t)n;
	}
	conn_close(k);
}

static void
on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct control_conn *k = w->data;
	ssize_t n = recv(k->fd, k->in + k->in_len, sizeof k->in - 1 - k->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(k);
		return;
	}
	k->in_len += (size_t)n;
	k->in[k->in_len] = '\0';
	if (strstr(k->in, "\r\n\r\n") != NULL || strstr(k->in, "\n\n") != NULL) {
		serve(k);
	} else if (k->in_len >= sizeof k->in - 1) {
		static const char big[] = "the request's head is too large\n";
		answer(k, 431, "Request Header Fields Too Large", "text/plain", big,
		    sizeof big - 1, 0);
	}
}

static void
on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	/* it stopped when it fired, taking back the reference on_accept gave up */
	ev_ref(loop);
	conn_close(t->data);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct control *c = w->data;
	for (;;) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or out of descriptors: the next readiness */
		struct control_conn *k = calloc(1, sizeof *k);
		if (k == NULL) {
			close(fd);
			return;
		}
		k->c = c;
		k->fd = fd;
		k->next = c->conns;
		c->conns = k;
		ev_io_init(&k->io, on_read, fd, EV_READ);
		k->io.data = k;
		io_start(loop, &k->io);
		ev_timer_init(&k->timer, on_timeout, CONTROL_TIMEOUT, 0.);
		k->timer.data = k;
		ev_timer_start(loop, &k->timer);
		ev_unref(loop);
	}
}

struct control *
control_open(struct run *r, const char *spec, char *err, size_t errlen)
{
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec || colon[1] == '\0') {
		snprintf(err, errlen, "--control '%s': expected HOST:PORT (e.g. 127.0.0.1:9090)",
		    spec);
		return NULL;
	}
	/* getaddrinfo takes 99999 and keeps its low 16 bits: 34463 */
	const char *ps = colon + 1;
	size_t digits = strspn(ps, "0123456789");
	if (ps[digits] != '\0' || digits > 5 || strtol(ps, NULL, 10) > 65535) {
		snprintf(err, errlen, "--control '%s': the port is not a number from 0 "
		    "to 65535", spec);
		return NULL;
	}
	char host[256];
	snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	    .ai_socktype = SOCK_STREAM }, *ai;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "--control '%s': %s", spec, gai_strerror(rc));
		return NULL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
		snprintf(err, errlen, "--control '%s': cannot listen: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return NULL;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
			port = ntohs(a->sin6_port);
		}
	}
	struct control *c = xcalloc(1, sizeof *c);
	c->r = r;
	c->fd = fd;
	ev_io_init(&c->lio, on_accept, fd, EV_READ);
	c->lio.data = c;
	io_start(r->loop, &c->lio); /* a listener alone must not keep a finished run alive */
	log_info("control: listening on %s%s%s:%d (/metrics, /graph, /healthz)",
	    ss.ss_family == AF_INET6 ? "[" : "", addr, ss.ss_family == AF_INET6 ? "]" : "",
	    port);
	return c;
}

void
control_close(struct control *c)
{
	if (c == NULL)
		return;
	while (c->conns != NULL)
		conn_close(c->conns);
	io_stop(c->r->loop, &c->lio);
	close(c->fd);
	free(c);
}
