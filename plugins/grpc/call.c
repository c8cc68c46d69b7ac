/*
 * call.c -- one gRPC call's life on the loop thread.
 *
 * A new call gets two batches at once: RECV_MESSAGE (its request) and
 * RECV_CLOSE_ON_SERVER (which completes when the call is over, and says
 * whether the client cancelled it, its deadline passed or its connection
 * went).  The request read, its method's handler runs.  Answers go out one
 * batch at a time, as gRPC allows one send of a message in flight per
 * call: call_send queues them, and each completed batch starts the next,
 * with the initial metadata on the first and the status on the last.  A
 * call whose client is gone has its queue dropped, and what it put in the
 * pipeline is cancelled (porch_msg_cancel), which cancels its model call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/time.h>

#include "gsrc.h"

static const struct {
	const char *path;
	enum gmethod m;
} methods[] = {
	{ "/porch.v1.Porch/SubmitTask", M_SUBMIT },
	{ "/porch.v1.Porch/SubscribeProgress", M_SUBSCRIBE },
	{ "/porch.v1.Porch/GetTask", M_GET },
	{ "/porch.v1.Porch/CancelTask", M_CANCEL },
	{ "/porch.v1.Porch/HealthCheck", M_HEALTHCHECK },
	{ "/porch.v1.Porch/Generate", M_GENERATE },
	{ "/grpc.health.v1.Health/Check", M_HEALTH_CHECK },
	{ "/grpc.health.v1.Health/Watch", M_HEALTH_WATCH },
	{ "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", M_REFLECT },
};

static void on_recv(struct gtag *t, int ok);
static void on_close(struct gtag *t, int ok);
static void on_send(struct gtag *t, int ok);
static void pump(struct gcall *c);

/* The client's deadline in ms from now; 0 when it set none. */
static int64_t
deadline_ms(gpr_timespec d)
{
	if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0)
		return 0;
	gpr_timespec now = gpr_now(d.clock_type);
	gpr_timespec left = gpr_time_sub(d, now);
	int64_t ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
	return ms > 0 ? ms : 1;
}

struct gcall *
call_new(struct gsrc *s, grpc_call *call, const grpc_call_details *d)
{
	struct gcall *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->s = s;
	c->call = call;
	size_t n = GRPC_SLICE_LENGTH(d->method);
	if (n >= sizeof c->method_name)
		n = sizeof c->method_name - 1;
	memcpy(c->method_name, GRPC_SLICE_START_PTR(d->method), n);
	c->method_name[n] = '\0';
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(c->method_name, methods[i].path) == 0)
			c->method = methods[i].m;
	c->deadline_ms = deadline_ms(d->deadline);
	c->t_recv.fn = on_recv;
	c->t_close.fn = on_close;
	c->t_send.fn = on_send;
	c->t_recv.owner = c->t_close.owner = c->t_send.owner = s;
	c->alive = 1;
	c->refs = 1;
	c->next = s->calls;
	if (s->calls != NULL)
		s->calls->prev = c;
	s->calls = c;
	s->n_calls++;
	server_call_opened();

	grpc_op op = { 0 };
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->client_cancelled;
	call_hold(c);
	server_poke();
	if (grpc_call_start_batch(call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
		c->closed = 1;
		call_release(c);
	}
	if (c->method == M_UNKNOWN) {
		/* no need to read its request */
		call_finish(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s (porch serves "
		    "porch.v1.Porch, grpc.health.v1.Health and "
		    "grpc.reflection.v1alpha.ServerReflection)", c->method_name);
		return c;
	}
	call_recv(c);
	return c;
}

void
call_recv(struct gcall *c)
{
	grpc_op op = { 0 };
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv_bb;
	call_hold(c);
	server_poke();
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK) {
		call_release(c);
		call_finish(c, GRPC_STATUS_INTERNAL, "cannot read the request");
	}
}

void
call_hold(struct gcall *c)
{
	c->refs++;
}

static void
call_free(struct gcall *c)
{
	struct gsrc *s = c->s;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->n_calls--;
	server_call_closed();
	while (c->out_head != NULL) {
		struct gout *o = c->out_head;
		c->out_head = o->next;
		grpc_byte_buffer_destroy(o->bb);
		free(o);
	}
	if (c->has_details)
		grpc_slice_unref(c->details_bin);
	free(c->status_msg);
	free(c->tok);
	grpc_call_unref(c->call);
	free(c);
}

void
call_release(struct gcall *c)
{
	if (--c->refs == 0)
		call_free(c);
}

/* Its own hold ends: the status went out, or the call is over without it. */
static void
call_end(struct gcall *c)
{
	if (!c->alive)
		return;
	c->alive = 0;
	call_release(c);
}

int
call_gone(const struct gcall *c)
{
	return c->status_set || c->closed;
}

/* ---- reading -------------------------------------------------------------- */

static void
on_recv(struct gtag *t, int ok)
{
	struct gcall *c = (struct gcall *)((char *)t - offsetof(struct gcall, t_recv));
	grpc_byte_buffer *bb = c->recv_bb;
	c->recv_bb = NULL;
	if (c->s->stopping || call_gone(c)) {
		if (bb != NULL)
			grpc_byte_buffer_destroy(bb);
		call_release(c);
		return;
	}
	if (!ok || bb == NULL) {
		if (c->method == M_REFLECT && ok)
			call_finish(c, GRPC_STATUS_OK, NULL); /* the client is done */
		else if (ok)
			call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "%s wants one request message; "
			    "none came", c->method_name);
		call_release(c);
		return;
	}
	size_t len = 0;
	uint8_t *req = codec_bytes(bb, &len);
	grpc_byte_buffer_destroy(bb);
	if (req == NULL) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		call_release(c);
		return;
	}
	switch (c->method) {
	case M_SUBMIT: tasks_submit(c, req, len); break;
	case M_SUBSCRIBE: tasks_subscribe(c, req, len); break;
	case M_GET: tasks_get(c, req, len); break;
	case M_CANCEL: tasks_cancel(c, req, len); break;
	case M_HEALTHCHECK: health_porch(c, req, len); break;
	case M_GENERATE: generate_call(c, req, len); break;
	case M_HEALTH_CHECK: health_check(c, req, len); break;
	case M_HEALTH_WATCH: health_watch(c, req, len); break;
	case M_REFLECT: reflect_message(c, req, len); break;
	case M_UNKNOWN: break;
	}
	free(req);
	call_release(c);
}

static void
on_close(struct gtag *t, int ok)
{
	(void)ok;
	struct gcall *c = (struct gcall *)((char *)t - offsetof(struct gcall, t_close));
	c->closed = 1;
	if (c->client_cancelled && !c->s->stopping) {
		/* cancelled by the client, by its deadline or by a lost connection:
		 * what it asked for is no longer wanted */
		if (c->m != NULL)
			gen_cancelled(c);
		if (c->task != NULL)
			tasks_unwatch(c);
		if (c->method == M_HEALTH_WATCH)
			health_unwatch(c);
	}
	if (c->s->stopping) {
		if (c->task != NULL)
			tasks_unwatch(c);
		if (c->method == M_HEALTH_WATCH)
			health_unwatch(c);
	}
	if (!c->sending)
		call_end(c);
	call_release(c);
}

/* ---- writing -------------------------------------------------------------- */

static int
enqueue(struct gcall *c, const ProtobufCMessage *msg)
{
	struct gout *o = malloc(sizeof *o);
	grpc_byte_buffer *bb = o != NULL ? codec_pack(msg) : NULL;
	if (bb == NULL) {
		free(o);
		return -1;
	}
	o->bb = bb;
	o->next = NULL;
	if (c->out_tail != NULL)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	return 0;
}

/* Queues the tokens kept while a send was in flight, as one message. */
static int
flush_tokens(struct gcall *c)
{
	if (c->tok_len == 0)
		return 0;
	Porch__V1__GenerateResponse r = PORCH__V1__GENERATE_RESPONSE__INIT;
	r.token.data = (uint8_t *)c->tok;
	r.token.len = c->tok_len;
	if (!c->md_sent && c->out_head == NULL)
		r.request_id = c->request_id; /* the first message */
	c->tok_len = 0;
	return enqueue(c, &r.base);
}

int
call_send(struct gcall *c, const ProtobufCMessage *msg)
{
	if (call_gone(c))
		return -1;
	if (flush_tokens(c) != 0 || enqueue(c, msg) != 0)
		return -1;
	pump(c);
	return 0;
}

int
call_send_token(struct gcall *c, const char *text, size_t len)
{
	if (call_gone(c))
		return -1;
	if (c->tok_len + len > c->tok_cap) {
		size_t cap = c->tok_cap ? c->tok_cap : 256;
		while (cap < c->tok_len + len)
			cap *= 2;
		char *t = realloc(c->tok, cap);
		if (t == NULL)
			return -1;
		c->tok = t;
		c->tok_cap = cap;
	}
	memcpy(c->tok + c->tok_len, text, len);
	c->tok_len += len;
	/* no send in flight: with the loop poller, before the loop blocks (the
	 * tokens of this loop iteration together); with the poller thread, now.
	 * A send in flight: when it is done (on_send). */
	if (!c->sending && server_flush_later(c) != 0)
		call_flush(c);
	return 0;
}

void
call_flush(struct gcall *c)
{
	if (c->sending || c->tok_len == 0 || call_gone(c))
		return;
	if (flush_tokens(c) == 0)
		pump(c);
}

static void
finish_v(struct gcall *c, grpc_status_code code, const char *fmt, va_list ap)
{
	if (call_gone(c))
		return;
	(void)flush_tokens(c); /* before the status */
	c->status_set = 1;
	c->status = code;
	if (fmt != NULL) {
		char msg[1024];
		vsnprintf(msg, sizeof msg, fmt, ap);
		c->status_msg = strdup(msg);
	}
	pump(c);
}

void
call_finish(struct gcall *c, grpc_status_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	finish_v(c, code, fmt, ap);
	va_end(ap);
}

void
call_finish_error(struct gcall *c, enum porch_outcome o, enum porch_error e,
    int upstream_status, const char *text, int64_t retry_ms)
{
	if (call_gone(c))
		return;
	grpc_status_code code = codec_status(o, e, upstream_status);
	char msg[900];
	snprintf(msg, sizeof msg, "%s: %s%s%s", porch_outcome_name(o), porch_error_name(e),
	    text && *text ? ": " : "", text ? text : "");
	if (code == GRPC_STATUS_RESOURCE_EXHAUSTED && retry_ms > 0) {
		/* when to try again, twice: a plain trailer, and the standard
		 * google.rpc.RetryInfo in the status details */
		snprintf(c->retry_ms, sizeof c->retry_ms, "%lld", (long long)retry_ms);
		c->trailing[0].key = grpc_slice_from_static_string("retry-after-ms");
		c->trailing[0].value = grpc_slice_from_static_string(c->retry_ms);
		c->n_trailing = 1;
		size_t len;
		uint8_t *det = codec_retry_status(code, msg, retry_ms, &len);
		if (det != NULL) {
			c->details_bin = grpc_slice_from_copied_buffer((const char *)det, len);
			c->has_details = 1;
			free(det);
			c->trailing[1].key = grpc_slice_from_static_string("grpc-status-details-bin");
			c->trailing[1].value = c->details_bin;
			c->n_trailing = 2;
		}
	}
	call_finish(c, code, "%s", msg);
}

/* Starts the next batch of sends, if none is in flight. */
static void
pump(struct gcall *c)
{
	if (c->sending || c->status_sent || c->closed)
		return;
	if (c->out_head == NULL && !c->status_set)
		return;
	grpc_op ops[3];
	size_t n = 0;
	memset(ops, 0, sizeof ops);
	if (!c->md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
		c->md_sent = 1;
	}
	struct gout *o = c->out_head;
	if (o != NULL) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = o->bb;
		n++;
	}
	grpc_slice details = { 0 };
	int with_status = c->status_set && (o == NULL || o->next == NULL);
	if (with_status) {
		details = grpc_slice_from_copied_string(c->status_msg ? c->status_msg : "");
		ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		ops[n].data.send_status_from_server.status = c->status;
		ops[n].data.send_status_from_server.status_details =
		    c->status_msg ? &details : NULL;
		ops[n].data.send_status_from_server.trailing_metadata = c->trailing;
		ops[n].data.send_status_from_server.trailing_metadata_count = c->n_trailing;
		n++;
		c->status_sent = 1;
	}
	c->sending = 1;
	call_hold(c);
	server_poke();
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL);
	if (with_status)
		grpc_slice_unref(details);
	if (e != GRPC_CALL_OK) {
		porch_stage_log(c->s->st, "%s: cannot send (gRPC error %d)", c->method_name, (int)e);
		c->sending = 0;
		call_release(c);
		call_end(c);
	}
}

static void
on_send(struct gtag *t, int ok)
{
	struct gcall *c = (struct gcall *)((char *)t - offsetof(struct gcall, t_send));
	c->sending = 0;
	struct gout *o = c->out_head;
	if (o != NULL) {
		c->out_head = o->next;
		if (c->out_head == NULL)
			c->out_tail = NULL;
		grpc_byte_buffer_destroy(o->bb);
		free(o);
	}
	if (!ok) {
		/* the client is gone: nothing more can be sent */
		while (c->out_head != NULL) {
			struct gout *d = c->out_head;
			c->out_head = d->next;
			grpc_byte_buffer_destroy(d->bb);
			free(d);
		}
		c->out_tail = NULL;
		c->tok_len = 0;
		c->status_sent = 1;
	} else if (c->out_head == NULL && !c->status_sent && !c->closed) {
		(void)flush_tokens(c); /* the tokens that came meanwhile */
	}
	if ((c->status_sent && c->out_head == NULL) || c->closed)
		call_end(c);
	else
		pump(c);
	call_release(c);
}
