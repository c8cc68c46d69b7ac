/*
 * grpc-echo.c -- the floor for bench/grpc: a minimal porch.v1.Porch/Generate
 * server on gRPC's C core, with no pipeline behind it, answering as the
 * grpc source does with the echo worker (the text as one token message,
 * then the final message with the status), so that bench/grpc can measure
 * what gRPC's C core itself costs per call under the same load: the cost
 * any gRPC source built on it pays, whatever it does around it.
 *
 * Three ways to run the calls, the first argument:
 *   one   one thread waits in grpc_completion_queue_next and runs each
 *         completion's handler itself (starting the next batch there): the
 *         C core alone, no thread hop, its best case.
 *   hop   the grpc source's poller thread (poller = thread): a thread waits
 *         in grpc_completion_queue_next and hands each completion to a
 *         libev loop on the main thread (a ring under a mutex and
 *         ev_async_send), whose handlers start the next batches.
 *   loop  the grpc source's loop poller (poller = loop): one libev loop
 *         watches gRPC's epoll set (its fd read from the line gRPC logs
 *         at grpc_init) and drains the completion queue with a deadline in
 *         the past when it is readable and before it blocks; a 10 ms timer
 *         for what gRPC's own threads complete.
 * The handlers are the same in all three; no porch code is linked.
 *
 * Per call: a RECV_CLOSE_ON_SERVER batch and a RECV_MESSAGE batch when it
 * is accepted; SEND_INITIAL_METADATA with the token message; the final
 * message in its own batch (gRPC takes one message in flight a call), with
 * SEND_STATUS_FROM_SERVER.  FINAL=1 in the environment answers with the
 * final message alone: one batch less, to price a batch.  ARGS="key=value,
 * ..." sets server channel arguments (a value all digits is an integer),
 * to try them.
 *
 * usage: grpc-echo one|hop|loop PORT-FILE
 *   listens on 127.0.0.1, a port picked by the system, written to
 *   PORT-FILE; runs until SIGTERM or SIGINT.
 * exit status: 0; 1 when it cannot listen; 2 on bad usage.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "porch.pb-c.h"

#define ACCEPTS 16

struct tag {
	void (*fn)(struct tag *t, int ok);
};

struct accept {
	struct tag tag;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
};

struct ecall {
	grpc_call *call;
	struct tag t_recv, t_close, t_send;
	grpc_byte_buffer *recv_bb;
	int cancelled;
	int refs;
	int md_sent;
	grpc_byte_buffer *out[2]; /* the messages still to send, in order */
	int n_out, next_out;
};

static grpc_server *server;
static grpc_completion_queue *cq;
static struct accept accepts[ACCEPTS];
static int final_only;
static uint64_t next_id;

/* ---- the handlers: the same in both modes ---------------------------------- */

static void request_call(struct accept *a);

static void
release(struct ecall *c)
{
	if (--c->refs > 0)
		return;
	for (int i = c->next_out; i < c->n_out; i++)
		grpc_byte_buffer_destroy(c->out[i]);
	grpc_call_unref(c->call);
	free(c);
}

static grpc_byte_buffer *
pack(const Porch__V1__GenerateResponse *r)
{
	size_t len = porch__v1__generate_response__get_packed_size(r);
	grpc_slice sl = grpc_slice_malloc(len);
	porch__v1__generate_response__pack(r, GRPC_SLICE_START_PTR(sl));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	return bb;
}

/* Sends the next message; the last one with the status. */
static void
send_next(struct ecall *c)
{
	grpc_op ops[3];
	size_t n = 0;
	memset(ops, 0, sizeof ops);
	if (!c->md_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->md_sent = 1;
	}
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = c->out[c->next_out];
	if (c->next_out == c->n_out - 1) {
		ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		ops[n++].data.send_status_from_server.status = GRPC_STATUS_OK;
	}
	c->refs++;
	if (grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL) != GRPC_CALL_OK) {
		fprintf(stderr, "grpc-echo: cannot send\n");
		exit(1);
	}
}

static void
on_send(struct tag *t, int ok)
{
	struct ecall *c = (struct ecall *)((char *)t - offsetof(struct ecall, t_send));
	grpc_byte_buffer_destroy(c->out[c->next_out++]);
	if (ok && c->next_out < c->n_out)
		send_next(c);
	release(c);
}

static void
on_recv(struct tag *t, int ok)
{
	struct ecall *c = (struct ecall *)((char *)t - offsetof(struct ecall, t_recv));
	grpc_byte_buffer *bb = c->recv_bb;
	c->recv_bb = NULL;
	Porch__V1__GenerateRequest *r = NULL;
	if (ok && bb != NULL) {
		grpc_byte_buffer_reader rd;
		if (grpc_byte_buffer_reader_init(&rd, bb)) {
			grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
			grpc_byte_buffer_reader_destroy(&rd);
			r = porch__v1__generate_request__unpack(NULL, GRPC_SLICE_LENGTH(all),
			    GRPC_SLICE_START_PTR(all));
			grpc_slice_unref(all);
		}
		grpc_byte_buffer_destroy(bb);
	}
	if (r == NULL || r->text == NULL) {
		if (r != NULL)
			porch__v1__generate_request__free_unpacked(r, NULL);
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_INVALID_ARGUMENT, "bad request",
		    NULL);
		release(c);
		return;
	}
	char id[32];
	snprintf(id, sizeof id, "echo-%llu", (unsigned long long)++next_id);
	const char *text = r->text;
	size_t len = strlen(text);
	Porch__V1__GenerateResponse m = PORCH__V1__GENERATE_RESPONSE__INIT;
	if (!final_only) {
		/* the words as one token message, as the grpc source sends the
		 * echo worker's tokens, which all come in one loop iteration */
		m.token.data = (uint8_t *)text;
		m.token.len = len;
		m.request_id = id;
		c->out[c->n_out++] = pack(&m);
	}
	Porch__V1__Usage u = PORCH__V1__USAGE__INIT;
	m = (Porch__V1__GenerateResponse)PORCH__V1__GENERATE_RESPONSE__INIT;
	m.done = 1;
	m.finish_reason = "stop";
	m.text.data = (uint8_t *)text;
	m.text.len = len;
	m.request_id = id;
	u.prompt_tokens = u.completion_tokens = 1;
	u.total_tokens = 2;
	m.usage = &u;
	c->out[c->n_out++] = pack(&m);
	porch__v1__generate_request__free_unpacked(r, NULL);
	send_next(c);
	release(c);
}

static void
on_close(struct tag *t, int ok)
{
	(void)ok;
	struct ecall *c = (struct ecall *)((char *)t - offsetof(struct ecall, t_close));
	release(c);
}

static void
on_accept(struct tag *t, int ok)
{
	struct accept *a = (struct accept *)t;
	if (!ok || a->call == NULL)
		return;
	struct ecall *c = calloc(1, sizeof *c);
	if (c == NULL)
		exit(1);
	c->call = a->call;
	c->t_recv.fn = on_recv;
	c->t_close.fn = on_close;
	c->t_send.fn = on_send;
	c->refs = 2;
	grpc_op op;
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK)
		exit(1);
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv_bb;
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK)
		exit(1);
	grpc_call_details_destroy(&a->details);
	grpc_metadata_array_destroy(&a->md);
	request_call(a);
}

static void
request_call(struct accept *a)
{
	a->tag.fn = on_accept;
	a->call = NULL;
	grpc_call_details_init(&a->details);
	grpc_metadata_array_init(&a->md);
	if (grpc_server_request_call(server, &a->call, &a->details, &a->md, cq, cq, &a->tag) !=
	    GRPC_CALL_OK)
		exit(1);
}

/* ---- hop: the grpc source's bridge ---------------------------------------- */

static struct ev_loop *loop;
static ev_async async;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static grpc_event *ring;
static size_t ring_head, ring_n, ring_cap;

static void *
poller_main(void *arg)
{
	(void)arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
		    NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return NULL;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		pthread_mutex_lock(&lock);
		if (ring_n == ring_cap) {
			size_t cap = ring_cap ? 2 * ring_cap : 256;
			grpc_event *e = malloc(cap * sizeof *e);
			if (e == NULL)
				exit(1);
			for (size_t i = 0; i < ring_n; i++)
				e[i] = ring[(ring_head + i) % ring_cap];
			free(ring);
			ring = e;
			ring_head = 0;
			ring_cap = cap;
		}
		ring[(ring_head + ring_n++) % ring_cap] = ev;
		pthread_mutex_unlock(&lock);
		ev_async_send(loop, &async);
	}
}

static void
on_async(struct ev_loop *l, ev_async *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	for (;;) {
		pthread_mutex_lock(&lock);
		if (ring_n == 0) {
			pthread_mutex_unlock(&lock);
			return;
		}
		grpc_event ev = ring[ring_head];
		ring_head = (ring_head + 1) % ring_cap;
		ring_n--;
		pthread_mutex_unlock(&lock);
		struct tag *t = ev.tag;
		t->fn(t, ev.success);
	}
}

/* ---- loop: the libev loop is gRPC's only poller, on gRPC's epoll fd -------- */

static int grpc_epfd = -1;

static void
capture_log(gpr_log_func_args *a)
{
	int fd;
	if (sscanf(a->message, "grpc epoll fd: %d", &fd) == 1)
		grpc_epfd = fd;
}

/* what gRPC logs after its start: as its default does, on stderr */
static void
plain_log(gpr_log_func_args *a)
{
	fprintf(stderr, "grpc %s %s:%d: %s\n", gpr_log_severity_string(a->severity), a->file,
	    a->line, a->message);
}

/* as the grpc source's loop poller: rounds without an event before the
 * loop blocks */
#define DRIVE_IDLE 2

static void
poll_grpc(void)
{
	int idle = 0;
	while (idle < DRIVE_IDLE) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type != GRPC_OP_COMPLETE) {
			idle++;
			continue;
		}
		idle = 0;
		struct tag *t = ev.tag;
		t->fn(t, ev.success);
	}
}

static void
on_epfd(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l; (void)w; (void)revents;
	poll_grpc();
}

static void
on_prepare(struct ev_loop *l, ev_prepare *w, int revents)
{
	(void)l; (void)w; (void)revents;
	poll_grpc();
}

static void
on_safety(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l; (void)w; (void)revents;
	poll_grpc();
}

static void
on_signal(struct ev_loop *l, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ALL);
}

/* ---- main ------------------------------------------------------------------ */

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "one") != 0 && strcmp(argv[1], "hop") != 0 &&
	    strcmp(argv[1], "loop") != 0)) {
		fprintf(stderr, "usage: grpc-echo one|hop|loop PORT-FILE\n");
		return 2;
	}
	int hop = strcmp(argv[1], "hop") == 0;
	int in_loop = strcmp(argv[1], "loop") == 0;
	if (in_loop) {
		gpr_set_log_verbosity(GPR_LOG_SEVERITY_DEBUG);
		gpr_set_log_function(capture_log);
	}
	final_only = getenv("FINAL") != NULL && strcmp(getenv("FINAL"), "1") == 0;
	grpc_init();
	if (in_loop) {
		gpr_set_log_function(plain_log);
		gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
		if (grpc_epfd < 0) {
			fprintf(stderr, "grpc-echo: gRPC's epoll fd not found\n");
			return 1;
		}
	}
	cq = grpc_completion_queue_create_for_next(NULL);
	/* ARGS="key=value,...": channel arguments to try (a value all digits
	 * is an integer) */
	grpc_arg args[16];
	grpc_channel_args cargs = { 0, args };
	char *spec = getenv("ARGS") ? strdup(getenv("ARGS")) : NULL;
	for (char *save = NULL, *kv = spec ? strtok_r(spec, ",", &save) : NULL;
	    kv != NULL && cargs.num_args < 16; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		grpc_arg *a = &args[cargs.num_args++];
		a->key = kv;
		if (eq[1] != '\0' && strspn(eq + 1, "0123456789") == strlen(eq + 1)) {
			a->type = GRPC_ARG_INTEGER;
			a->value.integer = atoi(eq + 1);
		} else {
			a->type = GRPC_ARG_STRING;
			a->value.string = eq + 1;
		}
	}
	server = grpc_server_create(&cargs, NULL);
	grpc_server_register_completion_queue(server, cq, NULL);
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	int port = grpc_server_add_http2_port(server, "127.0.0.1:0", creds);
	grpc_server_credentials_release(creds);
	if (port <= 0) {
		fprintf(stderr, "grpc-echo: cannot listen\n");
		return 1;
	}
	grpc_server_start(server);
	for (int i = 0; i < ACCEPTS; i++)
		request_call(&accepts[i]);
	FILE *f = fopen(argv[2], "w");
	if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
		fprintf(stderr, "grpc-echo: cannot write %s\n", argv[2]);
		return 1;
	}
	if (in_loop) {
		loop = EV_DEFAULT;
		ev_io io;
		ev_prepare prep;
		ev_timer safety;
		ev_io_init(&io, on_epfd, grpc_epfd, EV_READ);
		ev_io_start(loop, &io);
		ev_prepare_init(&prep, on_prepare);
		ev_prepare_start(loop, &prep);
		ev_timer_init(&safety, on_safety, 0.01, 0.01);
		ev_timer_start(loop, &safety);
		ev_signal sig_term, sig_int;
		ev_signal_init(&sig_term, on_signal, SIGTERM);
		ev_signal_init(&sig_int, on_signal, SIGINT);
		ev_signal_start(loop, &sig_term);
		ev_signal_start(loop, &sig_int);
		ev_run(loop, 0);
		return 0;
	}
	if (hop) {
		loop = EV_DEFAULT;
		ev_async_init(&async, on_async);
		ev_async_start(loop, &async);
		ev_signal sig_term, sig_int;
		ev_signal_init(&sig_term, on_signal, SIGTERM);
		ev_signal_init(&sig_int, on_signal, SIGINT);
		ev_signal_start(loop, &sig_term);
		ev_signal_start(loop, &sig_int);
		pthread_t poller;
		if (pthread_create(&poller, NULL, poller_main, NULL) != 0)
			return 1;
		ev_run(loop, 0);
		/* stopped: the process ends; the core's threads with it */
		return 0;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	while (!stop) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_time_add(
		    gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN)), NULL);
		if (ev.type == GRPC_OP_COMPLETE) {
			struct tag *t = ev.tag;
			t->fn(t, ev.success);
		}
	}
	return 0;
}
