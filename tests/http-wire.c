/*
 * http-wire.c -- unit tests of the http source's framing layer alone
 * (plugins/http/wire.h: conn.c, parse.c, frame.c), driven by a fake upper
 * layer whose callbacks record what they get, over a socketpair: requests
 * arrive whole (head, then request, with method, target and body),
 * answers arrive intact (status line, headers, Content-Length or chunked),
 * pipelined requests are answered in order, HEAD gets no body, malformed
 * input is failed, and a client that closes makes its requests gone.
 *
 * Deterministic: the libev loop is run with EVRUN_NOWAIT, a bounded
 * number of times, until what a test waits for has happened.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "wire.h"

/* ---- the fake upper layer ------------------------------------------------- */

/* A request as the fake layer keeps it: the framing part first, as the
 * real one (answer.h) does. */
struct fake_req {
	struct wreq w;
	int n;                      /* 1, 2 ... in the order they began */
};

#define HELD_MAX 8

static struct {
	struct buf log;             /* one line per callback, in order */
	int n_new, n_live;          /* requests made; not yet let go */
	struct wreq *held[HELD_MAX]; /* requests arrived and not answered yet */
	size_t n_held;
	int hold;                   /* on_request keeps requests instead of answering */
} fake;

static void
note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
note(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	buf_str(&fake.log, line);
	buf_str(&fake.log, "\n");
}

static int
num(const struct wreq *r)
{
	return ((const struct fake_req *)r)->n;
}

static struct wreq *
fake_new(struct wire *w)
{
	(void)w;
	struct fake_req *f = calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	f->n = ++fake.n_new;
	fake.n_live++;
	note("new %d", f->n);
	return &f->w;
}

static void
fake_header(struct wreq *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
	note("header %d %.*s: %.*s", num(r), (int)nlen, name, (int)vlen, value);
}

static void
fake_head(struct wreq *r)
{
	note("head %d %s %.*s body=%zu", num(r), http_method_str(r->method), (int)r->url.len,
	    r->url.p, r->body.len);
	/* a refusal before the body is read */
	if (r->url.len == 7 && memcmp(r->url.p, "/refuse", 7) == 0)
		wire_answer(r, 404, "text/plain", "no", 2, NULL);
}

/* Answers GET /stream in chunks, anything else whole: "METHOD URL BODY". */
static void
fake_answer(struct wreq *r)
{
	if (r->url.len == 7 && memcmp(r->url.p, "/stream", 7) == 0) {
		wire_head(r, 200, "text/event-stream", -1, "Cache-Control: no-cache\r\n");
		wire_body(r, "data: a\n\n", 9);
		wire_body(r, "data: bc\n\n", 10);
		wire_end(r);
		return;
	}
	char text[256];
	int n = snprintf(text, sizeof text, "%s %.*s %.*s", http_method_str(r->method),
	    (int)r->url.len, r->url.p, (int)r->body.len, r->body.len ? r->body.p : "");
	wire_answer(r, 200, "text/plain", text, (size_t)n, "X-Fake: yes\r\n");
}

static void
fake_request(struct wreq *r)
{
	note("request %d %s %.*s body=%.*s", num(r), http_method_str(r->method),
	    (int)r->url.len, r->url.p, (int)r->body.len, r->body.len ? r->body.p : "");
	if (fake.hold && fake.n_held < HELD_MAX) {
		fake.held[fake.n_held++] = r;
		return;
	}
	fake_answer(r);
}

static void
fake_fail(struct wreq *r, int status, const char *code, const char *why)
{
	note("fail %d %d %s", num(r), status, code);
	wire_answer(r, status, "text/plain", why, strlen(why), NULL);
}

static void
fake_answered(struct wire *w, struct wreq *r, int status)
{
	(void)w;
	note("answer %d %d", r != NULL ? num(r) : 0, status);
}

static void
forget(struct wreq *r)
{
	for (size_t i = 0; i < fake.n_held; i++)
		if (fake.held[i] == r)
			fake.held[i] = NULL;
	fake.n_live--;
	wreq_free(r);
	free(r);
}

static void
fake_gone(struct wreq *r, int closed)
{
	note("gone %d %d", num(r), closed);
	forget(r);
}

static void
fake_release(struct wreq *r)
{
	note("release %d", num(r));
	forget(r);
}

static void
fake_log(struct wire *w, const char *msg)
{
	(void)w;
	note("log %s", msg);
}

static const struct wire_ops fake_ops = {
	.on_new = fake_new,
	.on_header = fake_header,
	.on_head = fake_head,
	.on_request = fake_request,
	.on_fail = fake_fail,
	.on_answer = fake_answered,
	.on_gone = fake_gone,
	.on_release = fake_release,
	.on_log = fake_log,
};

/* ---- the harness ---------------------------------------------------------- */

static struct wire wire;
static int client = -1;        /* the test's end of the socketpair */
static struct buf got;         /* what the client has read */

static int
setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof fake);
	memset(&wire, 0, sizeof wire);
	memset(&got, 0, sizeof got);
	wire.loop = ev_loop_new(EVFLAG_AUTO);
	wire.ops = &fake_ops;
	wire.lfd = -1;
	wire.max_body = 1024;
	wire.max_header = 4096;
	wire.max_url = 256;
	wire.header_timeout = wire.body_timeout = wire.idle_timeout = 60;
	wire.linger_timeout = 2;
	wire.max_connections = 4;
	wire.max_pipeline = 4;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	client = sv[0];
	assert_int_equal(wire_adopt(&wire, sv[1]), 0);
	assert_int_equal(wire.n_conns, 1);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	wire_fini(&wire);
	if (client >= 0)
		close(client);
	client = -1;
	ev_loop_destroy(wire.loop);
	assert_int_equal(fake.n_live, 0); /* every request went back up once */
	buf_free(&fake.log);
	buf_free(&got);
	return 0;
}

static void
send_all(const char *s)
{
	size_t n = strlen(s);
	assert_int_equal(write(client, s, n), (ssize_t)n);
}

/* Reads what the client can without waiting. */
static void
read_some(void)
{
	char tmp[4096];
	ssize_t n;
	while ((n = recv(client, tmp, sizeof tmp, MSG_DONTWAIT)) > 0)
		buf_add(&got, tmp, (size_t)n);
}

/* Runs the loop until the client has read want bytes, a bounded number of times. */
static void
run_until_read(size_t want)
{
	for (int i = 0; i < 1000 && got.len < want; i++) {
		ev_run(wire.loop, EVRUN_NOWAIT);
		read_some();
	}
}

/* Runs the loop until line is in the fake layer's log. */
static void
run_until_logged(const char *line)
{
	for (int i = 0; i < 1000 && (fake.log.p == NULL || strstr(fake.log.p, line) == NULL); i++)
		ev_run(wire.loop, EVRUN_NOWAIT);
	if (fake.log.p == NULL || strstr(fake.log.p, line) == NULL)
		fail_msg("not logged: %s\nlog:\n%s", line, fake.log.p ? fake.log.p : "");
}

/* The log has these lines, in this order (others may come between). */
static void
expect_log(const char *const *lines, size_t n)
{
	const char *at = fake.log.p ? fake.log.p : "";
	for (size_t i = 0; i < n; i++) {
		const char *p = strstr(at, lines[i]);
		if (p == NULL)
			fail_msg("missing, or out of order: %s\nlog:\n%s", lines[i], fake.log.p);
		at = p + strlen(lines[i]);
	}
}

static void
expect_got(const char *want)
{
	run_until_read(strlen(want));
	if (got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
		fail_msg("the client read:\n%.*s\nwanted:\n%s", (int)got.len, got.p ? got.p : "",
		    want);
	buf_reset(&got);
}

/* ---- the tests ------------------------------------------------------------ */

/* A request arrives: its head (with no body yet), its headers, then the whole
 * of it; the answer arrives as written, with Content-Length and the id. */
static void
test_request(void **state)
{
	(void)state;
	send_all("POST /echo?x=1 HTTP/1.1\r\nHost: test\r\nX-Request-Id: abc-1\r\n"
	    "Content-Length: 5\r\n\r\nhello");
	expect_got("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
	    "X-Request-Id: abc-1\r\nX-Fake: yes\r\n\r\nPOST /echo?x=1 hello");
	run_until_logged("release 1");
	static const char *const lines[] = {
		"new 1", "header 1 Host: test", "header 1 X-Request-Id: abc-1",
		"header 1 Content-Length: 5", "head 1 POST /echo?x=1 body=0",
		"request 1 POST /echo?x=1 body=hello", "answer 1 200", "release 1",
	};
	expect_log(lines, sizeof lines / sizeof lines[0]);
}

/* A body of unknown length goes out chunked, each piece a chunk, and ends. */
static void
test_chunked(void **state)
{
	(void)state;
	send_all("GET /stream HTTP/1.1\r\nHost: test\r\nX-Request-Id: s\r\n\r\n");
	expect_got("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	    "Transfer-Encoding: chunked\r\nX-Request-Id: s\r\nCache-Control: no-cache\r\n\r\n"
	    "9\r\ndata: a\n\n\r\na\r\ndata: bc\n\n\r\n0\r\n\r\n");
	/* and a chunked request body arrives whole */
	send_all("POST /up HTTP/1.1\r\nHost: test\r\nX-Request-Id: u\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
	expect_got("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n"
	    "X-Request-Id: u\r\nX-Fake: yes\r\n\r\nPOST /up abcde");
}

/* Three requests in one write, answered last first: they go out in order. */
static void
test_pipelined(void **state)
{
	(void)state;
	fake.hold = 1;
	send_all("GET /a HTTP/1.1\r\nX-Request-Id: a\r\n\r\n"
	    "GET /b HTTP/1.1\r\nX-Request-Id: b\r\n\r\n"
	    "GET /c HTTP/1.1\r\nX-Request-Id: c\r\n\r\n");
	run_until_logged("request 3 GET /c");
	assert_int_equal(fake.n_held, 3);
	fake_answer(fake.held[2]);
	fake_answer(fake.held[1]);
	for (int i = 0; i < 20; i++) {
		ev_run(wire.loop, EVRUN_NOWAIT);
		read_some();
	}
	assert_int_equal(got.len, 0); /* /c and /b wait for /a */
	fake_answer(fake.held[0]);
	expect_got("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"
	    "X-Request-Id: a\r\nX-Fake: yes\r\n\r\nGET /a "
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"
	    "X-Request-Id: b\r\nX-Fake: yes\r\n\r\nGET /b "
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"
	    "X-Request-Id: c\r\nX-Fake: yes\r\n\r\nGET /c ");
	run_until_logged("release 3");
	static const char *const lines[] = { "release 1", "release 2", "release 3" };
	expect_log(lines, 3);
}

/* HEAD: GET's head, Content-Length included, and no body; the connection
 * goes on; a chunked answer to HEAD has no chunks either. */
static void
test_head(void **state)
{
	(void)state;
	send_all("HEAD /h HTTP/1.1\r\nX-Request-Id: h\r\n\r\n"
	    "HEAD /stream HTTP/1.1\r\nX-Request-Id: hs\r\n\r\n"
	    "GET /g HTTP/1.1\r\nX-Request-Id: g\r\n\r\n");
	expect_got("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
	    "X-Request-Id: h\r\nX-Fake: yes\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	    "Transfer-Encoding: chunked\r\nX-Request-Id: hs\r\nCache-Control: no-cache\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"
	    "X-Request-Id: g\r\nX-Fake: yes\r\n\r\nGET /g ");
}

/* HTTP/1.0: no chunks (the close ends the body), keep-alive said when asked. */
static void
test_http10(void **state)
{
	(void)state;
	send_all("GET /k HTTP/1.0\r\nConnection: keep-alive\r\nX-Request-Id: k\r\n\r\n");
	expect_got("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"
	    "X-Request-Id: k\r\nX-Fake: yes\r\nConnection: keep-alive\r\n\r\nGET /k ");
	send_all("GET /stream HTTP/1.0\r\nX-Request-Id: s\r\n\r\n");
	expect_got("HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nX-Request-Id: s\r\n"
	    "Cache-Control: no-cache\r\nConnection: close\r\n\r\ndata: a\n\ndata: bc\n\n");
	run_until_logged("release 2");
}

/* Refused at its head: the body is not waited for by a client that
 * expects 100-continue; one that passes is told to go on. */
static void
test_expect(void **state)
{
	(void)state;
	send_all("POST /go HTTP/1.1\r\nX-Request-Id: e\r\nExpect: 100-continue\r\n"
	    "Content-Length: 2\r\n\r\n");
	expect_got("HTTP/1.1 100 Continue\r\n\r\n");
	send_all("ok");
	expect_got("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
	    "X-Request-Id: e\r\nX-Fake: yes\r\n\r\nPOST /go ok");
	send_all("POST /refuse HTTP/1.1\r\nX-Request-Id: r\r\nExpect: 100-continue\r\n"
	    "Content-Length: 2\r\n\r\n");
	expect_got("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
	    "X-Request-Id: r\r\nConnection: close\r\n\r\nno");
	run_until_logged("release 2");
	static const char *const lines[] = { "head 2 POST /refuse", "answer 2 404", "release 2" };
	expect_log(lines, 3);
	assert_null(strstr(fake.log.p, "request 2"));
}

/* Malformed input: the upper layer is asked to answer it, and the
 * connection closes after. */
static void
test_malformed(void **state)
{
	(void)state;
	send_all("GET / HTTP/1.1\r\nBad Header\r\n\r\n");
	run_until_logged("fail 1 400 malformed_request");
	run_until_read(12);
	assert_true(got.len >= 12 && memcmp(got.p, "HTTP/1.1 400", 12) == 0);
	assert_non_null(strstr(got.p, "Connection: close\r\n"));
	run_until_logged("release 1");
}

/* A client that closes: its request, held by the upper layer, is gone. */
static void
test_client_closes(void **state)
{
	(void)state;
	fake.hold = 1;
	send_all("GET /slow HTTP/1.1\r\nX-Request-Id: slow\r\n\r\n");
	run_until_logged("request 1 GET /slow");
	close(client);
	client = -1;
	run_until_logged("gone 1 1");
	assert_int_equal(wire.n_conns, 0);
	assert_int_equal(fake.n_live, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http10, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_closes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
