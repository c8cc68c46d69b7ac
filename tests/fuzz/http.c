/*
 * http.c -- libFuzzer harness: the http source's connection path, from the
 * bytes a client sends to the request the pipeline would get.  The three
 * layers (plugins/http/http.h) run as the plugin runs them: the framing
 * layer (request heads, bodies, pipelining, chunked bodies, limits) reads
 * a socketpair's end adopted as a client connection, and the real upper
 * layer routes, checks (API keys, CORS) and converts requests
 * (openai_chat_request, openai_completion_request, generate_request,
 * tasks); only the runtime under them is a fake (porch-fake.c), whose
 * messages the harness ends as the reply sink and the pipeline would: the
 * prompt echoed back, whole or in pieces of 3 bytes (cutting UTF-8), or a
 * failure, so answers, streams and task events are written too.
 *
 * Input: byte 0, flags: bit 0 API keys on (the key is "sk-fuzz"), bits 1-2
 * how messages end (completed, upstream error, deadline, full), bit 3 the
 * pipeline is full at first (backpressure: requests wait, reading pauses),
 * bit 4 answers were edited; byte 1, how many cut points follow (at most
 * 7), two bytes each; the rest, the bytes the client sends, written in
 * pieces cut there, the loop run between pieces, so pipelined requests and
 * heads split anywhere are read.  Then the client half-closes, and what
 * was answered is read; then it closes.
 *
 * The answers are read and thrown away; the sanitizers and the wire's own
 * checks are the oracle, and every request and message must be let go
 * (LeakSanitizer).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "http.h"
#include "porch-fake.h"

static struct http_src *src;
static struct porch_stage stage;
static int flags;
static int client = -1;

static const struct wire_ops ops = {
	.on_new = req_new,
	.on_header = req_header,
	.on_head = route_head,
	.on_request = route_dispatch,
	.on_fail = req_fail,
	.on_answer = req_answered,
	.on_gone = req_gone,
	.on_release = req_release,
	.on_log = req_log,
};

static void
setup(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	if (loop == NULL)
		abort();
	src = calloc(1, sizeof *src);
	if (src == NULL)
		abort();
	src->access_fd = -1; /* no access log: the fuzzer's output stays clean */
	stage.loop = loop;
	stage.data = src;
	struct http_src *s = src;
	s->st = &stage;
	s->name = "http";
	s->w.loop = loop;
	s->w.ops = &ops;
	s->w.lfd = -1;
	s->w.max_connections = 16;
	s->w.max_pipeline = 16;
	s->w.max_body = 64 * 1024;
	s->w.max_header = 4096;
	s->w.max_url = 1024;
	s->w.header_timeout = s->w.body_timeout = s->w.idle_timeout = 3600;
	s->w.linger_timeout = 0.01;
	s->retry_after_s = 1;
	snprintf(s->answers.retry_after, sizeof s->answers.retry_after, "Retry-After: 1\r\n");
	s->burst = 10;
	s->task_ttl = 300;
	s->task_max = 8;
	/* CORS on for one origin, as cors_init makes it */
	static struct cors_origin origin = { "https://example.com", 19,
		"Access-Control-Allow-Origin: https://example.com\r\nVary: Origin\r\n"
		"Access-Control-Expose-Headers: X-Request-Id, Retry-After\r\n" };
	s->cors = &origin;
	s->n_cors = 1;
	s->cors_on = 1;
	s->cors_default = "Vary: Origin\r\n";
	/* the API keys file, read by the real reader */
	char path[] = "/tmp/porch-fuzz-keys.XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, "# fuzz\nsk-fuzz\n", 15) != 15)
		abort();
	close(fd);
	if (auth_load(s, path, err, sizeof err) != 0) {
		fprintf(stderr, "http fuzz: %s\n", err);
		abort();
	}
	unlink(path);
}

/* Reads and drops what the connection wrote. */
static void
drain_client(void)
{
	char b[65536];
	while (client >= 0 && read(client, b, sizeof b) > 0)
		;
}

static void
spin(int times)
{
	for (int i = 0; i < times; i++) {
		ev_run(stage.loop, EVRUN_NOWAIT);
		drain_client();
	}
}

/* Ends every message the runtime holds, as the pipeline and reply would. */
static void
finish_messages(void)
{
	static const enum porch_error errs[] = { PORCH_ERR_NONE, PORCH_ERR_UPSTREAM,
		PORCH_ERR_DEADLINE, PORCH_ERR_FULL };
	while (fake_msgs != NULL) {
		porch_msg *m = fake_msgs;
		fake_msgs = m->next;
		struct http_origin *o = http_origin_of(m);
		if (!m->ended && m->err == PORCH_ERR_NONE) {
			m->err = errs[(flags >> 1) & 3];
			if (m->err != PORCH_ERR_NONE)
				snprintf(m->errtext, sizeof m->errtext, "fake %s",
				    porch_error_name(m->err));
		}
		if (!m->ended && o != NULL) {
			if (m->traced && o->ops == &task_ops)
				tasks_event((struct task *)o, m, PORCH_EVENT_ENTER, "fake", NULL);
			if (m->err == PORCH_ERR_NONE) {
				/* the answer: the prompt, streamed in pieces of 3 bytes
				 * with extras on the first, then whole */
				static const struct porch_piece extra = { "{\"system_fingerprint\":\"fp\"}",
					"{\"logprobs\":null}", "{\"refusal\":null}" };
				/* as reply does: piece where the origin has it (tasks
				 * have chunk only) */
				for (size_t at = 0; at < m->len; at += 3) {
					size_t n = m->len - at < 3 ? m->len - at : 3;
					if (o->ops->piece != NULL)
						o->ops->piece(o, m, m->text + at, n, at == 0 ? &extra : NULL);
					else
						o->ops->chunk(o, m, m->text + at, n);
				}
				porch_msg_set_meta(m, "finish-reason", "stop");
				porch_msg_set_meta(m, "usage", "{\"prompt_tokens\":1,"
				    "\"completion_tokens\":2,\"total_tokens\":3}");
			}
			o->ops->finish(o, m);
		}
		if (o != NULL && o->ops == &hreq_ops)
			hreq_outcome(hreq_of_origin(o), m, porch_error_outcome(m->err));
		else if (o != NULL && o->ops == &task_ops)
			tasks_outcome((struct task *)o, m, porch_error_outcome(m->err));
		fake_msg_free(m);
		spin(2);
	}
}

/* Runs the loop and the fake pipeline until nothing more happens. */
static void
settle(void)
{
	for (int round = 0; round < 8; round++) {
		spin(3);
		if (fake_msgs == NULL && src->wait_head == NULL && src->w.holding == 0)
			break;
		finish_messages();
		if (src->wait_head != NULL || src->w.holding > 0) {
			stage.ready = 1000000;
			pipeline_resume(src);
		}
	}
}

/* Writes all of p, reading answers meanwhile so neither side blocks. */
static void
send_all(const uint8_t *p, size_t n)
{
	for (int tries = 0; n > 0 && tries < 1000; tries++) {
		ssize_t k = send(client, p, n, MSG_NOSIGNAL); /* no SIGPIPE: the wire may close first */
		if (k > 0) {
			p += k;
			n -= (size_t)k;
		} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
			return; /* the connection closed (a refused request) */
		}
		settle();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (src == NULL)
		setup();
	if (size < 2)
		return 0;
	flags = data[0];
	size_t keys = src->n_keys;
	if (!(flags & 1))
		src->n_keys = 0;
	stage.ready = flags & 8 ? 0 : 1000000;
	stage.answers_edited = (flags >> 4) & 1;
	size_t ncut = data[1] % 8, skip = 2 + 2 * ncut;
	if (skip > size)
		ncut = 0, skip = 2;
	const uint8_t *in = data + skip;
	size_t n = size - skip;
	size_t cuts[9], nc = 0;
	for (size_t i = 0; i < ncut; i++) {
		size_t at = n ? ((size_t)data[2 + 2 * i] << 8 | data[3 + 2 * i]) % (n + 1) : 0;
		size_t j = nc;
		while (j > 0 && cuts[j - 1] > at) {
			cuts[j] = cuts[j - 1];
			j--;
		}
		cuts[j] = at;
		nc++;
	}
	cuts[nc++] = n;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	client = sv[1];
	if (fcntl(client, F_SETFL, O_NONBLOCK) != 0 || wire_adopt(&src->w, sv[0]) != 0)
		abort();
	size_t at = 0;
	for (size_t k = 0; k < nc; k++) {
		send_all(in + at, cuts[k] - at);
		at = cuts[k];
	}
	shutdown(client, SHUT_WR);
	settle();
	close(client);
	client = -1;
	settle();
	/* what is left, as at teardown: the connection goes, its requests
	 * are let go, and what the pipeline still holds ends */
	wire_fini(&src->w);
	finish_messages();
	tasks_fini(src);
	src->w.holding = 0;
	src->n_keys = keys;
	if (fake_inflight != 0 || src->wait_head != NULL) {
		fprintf(stderr, "http fuzz: %zu messages never ended\n", fake_inflight);
		abort();
	}
	return 0;
}
