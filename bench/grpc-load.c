/*
 * grpc-load.c -- a small closed-loop load client for porch.v1.Porch/Generate
 * on gRPC's C core, for bench/grpc: a Python grpcio client costs far more
 * per call than porch does, so it cannot load porch, and its CPU would
 * crowd porch's on a small machine.
 *
 * CONCURRENCY calls are kept in flight on one channel (one HTTP/2
 * connection) and one completion queue, driven by this one thread.  Each
 * call is one batch: send initial metadata, the GenerateRequest message and
 * close, receive initial metadata and the status; and a receive-message
 * batch at a time until the stream ends.  A call is done when its status
 * has come and its stream has ended; the next call starts in its slot at
 * once.  The messages are counted, not decoded (the first call's are
 * checked: the last one must be the final one, done = true).
 *
 * usage: grpc-load HOST:PORT SECONDS CONCURRENCY TEXT [MAX_TOKENS]
 * prints: calls=N ok=N failed=N messages=N seconds=S first-status=CODE
 * exit status: 0 when every call ended OK, 1 otherwise, 2 on bad usage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "porch.pb-c.h"

struct slot {
	grpc_call *call;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *recv, *last;
	int status_done, stream_done;
	uint64_t messages;
};

static grpc_channel *chan;
static grpc_completion_queue *cq;
static grpc_slice method;
static grpc_byte_buffer *request; /* copied per call */
static uint64_t n_calls, n_ok, n_failed, n_messages;
static int first_status = -1;
static int checked_first;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* tags: the slot's address with the low bit 0 for the main batch, 1 for a
 * receive-message batch */
static void
start_recv(struct slot *s)
{
	grpc_op op;
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &s->recv;
	s->recv = NULL;
	if (grpc_call_start_batch(s->call, &op, 1, (void *)((uintptr_t)s | 1), NULL) !=
	    GRPC_CALL_OK) {
		fprintf(stderr, "grpc-load: cannot start a receive\n");
		exit(1);
	}
}

static void
start_call(struct slot *s)
{
	memset(s, 0, sizeof *s);
	s->call = grpc_channel_create_call(chan, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
	    NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_metadata_array_init(&s->initial_md);
	grpc_metadata_array_init(&s->trailing_md);
	grpc_op ops[5];
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = grpc_byte_buffer_copy(request);
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
	ops[4].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[4].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
	ops[4].data.recv_status_on_client.status = &s->status;
	ops[4].data.recv_status_on_client.status_details = &s->details;
	grpc_byte_buffer *sent = ops[1].data.send_message.send_message;
	if (grpc_call_start_batch(s->call, ops, 5, s, NULL) != GRPC_CALL_OK) {
		fprintf(stderr, "grpc-load: cannot start a call\n");
		exit(1);
	}
	grpc_byte_buffer_destroy(sent); /* the core holds its own reference */
	start_recv(s);
}

/* Checks the first call's last message: a GenerateResponse with done set. */
static void
check_final(grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return;
	grpc_slice all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	Porch__V1__GenerateResponse *m = porch__v1__generate_response__unpack(NULL,
	    GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
	if (m == NULL || !m->done) {
		fprintf(stderr, "grpc-load: the first call's last message is not final\n");
		exit(1);
	}
	porch__v1__generate_response__free_unpacked(m, NULL);
	grpc_slice_unref(all);
}

/* Returns 1 when the call in s has ended (and was counted). */
static int
maybe_done(struct slot *s)
{
	if (!s->status_done || !s->stream_done)
		return 0;
	n_calls++;
	if (first_status < 0)
		first_status = (int)s->status;
	if (s->status == GRPC_STATUS_OK) {
		n_ok++;
	} else {
		n_failed++;
		if (n_failed <= 3) {
			char *d = grpc_slice_to_c_string(s->details);
			fprintf(stderr, "grpc-load: status %d: %s\n", (int)s->status, d);
			gpr_free(d);
		}
	}
	n_messages += s->messages;
	if (!checked_first && s->status == GRPC_STATUS_OK) {
		if (s->last == NULL) {
			fprintf(stderr, "grpc-load: a call ended OK without a message\n");
			exit(1);
		}
		check_final(s->last);
		checked_first = 1;
	}
	if (s->last != NULL)
		grpc_byte_buffer_destroy(s->last);
	grpc_metadata_array_destroy(&s->initial_md);
	grpc_metadata_array_destroy(&s->trailing_md);
	grpc_slice_unref(s->details);
	grpc_call_unref(s->call);
	s->call = NULL;
	return 1;
}

int
main(int argc, char **argv)
{
	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: grpc-load HOST:PORT SECONDS CONCURRENCY TEXT [MAX_TOKENS]\n");
		return 2;
	}
	double seconds = atof(argv[2]);
	int conc = atoi(argv[3]);
	if (seconds <= 0 || conc < 1 || conc > 100000) {
		fprintf(stderr, "grpc-load: bad SECONDS or CONCURRENCY\n");
		return 2;
	}
	Porch__V1__GenerateRequest req = PORCH__V1__GENERATE_REQUEST__INIT;
	Porch__V1__GenerationSettings set = PORCH__V1__GENERATION_SETTINGS__INIT;
	req.text = argv[4];
	if (argc == 6) {
		set.max_tokens = atoi(argv[5]);
		req.settings = &set;
	}
	size_t len = porch__v1__generate_request__get_packed_size(&req);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return 1;
	porch__v1__generate_request__pack(&req, buf);
	grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, len);
	request = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	free(buf);

	grpc_init();
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	chan = grpc_channel_create(argv[1], creds, NULL);
	grpc_channel_credentials_release(creds);
	cq = grpc_completion_queue_create_for_next(NULL);
	method = grpc_slice_from_static_string("/porch.v1.Porch/Generate");

	struct slot *slots = calloc((size_t)conc, sizeof *slots);
	if (slots == NULL)
		return 1;
	double t0 = now_s(), end = t0 + seconds;
	for (int i = 0; i < conc; i++)
		start_call(&slots[i]);
	int open = conc, stopping = 0;
	while (open > 0) {
		grpc_event ev = grpc_completion_queue_next(cq,
		    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(100, GPR_TIMESPAN)),
		    NULL);
		if (!stopping && now_s() >= end)
			stopping = 1;
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			if (now_s() > end + 30) {
				fprintf(stderr, "grpc-load: %d calls still open 30 s after the end\n", open);
				break;
			}
			continue;
		}
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		struct slot *s = (struct slot *)((uintptr_t)ev.tag & ~(uintptr_t)1);
		if ((uintptr_t)ev.tag & 1) {
			if (ev.success && s->recv != NULL) {
				/* keep the latest message: the final one is checked once */
				s->messages++;
				if (s->last != NULL)
					grpc_byte_buffer_destroy(s->last);
				s->last = s->recv;
				s->recv = NULL;
				start_recv(s);
				continue;
			}
			s->stream_done = 1;
		} else {
			s->status_done = 1;
		}
		if (maybe_done(s)) {
			if (stopping)
				open--;
			else
				start_call(s);
		}
	}
	double took = now_s() - t0;
	printf("calls=%llu ok=%llu failed=%llu messages=%llu seconds=%.3f first-status=%d\n",
	    (unsigned long long)n_calls, (unsigned long long)n_ok,
	    (unsigned long long)n_failed, (unsigned long long)n_messages, took, first_status);
	grpc_byte_buffer_destroy(request);
	grpc_channel_destroy(chan);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	    GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	free(slots);
	grpc_shutdown();
	return n_failed == 0 && n_calls > 0 ? 0 : 1;
}
