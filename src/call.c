/*
 * call.c -- inference calls from a stage to its worker.
 *
 * A call is the runtime's record of one request to a worker: the message
 * (prompt and settings), the stage's callbacks, and the worker's own data.
 * Calls are pooled per worker, so a call costs no allocation after warm-up.
 * A call ends once: done, failed or cancelled; whatever comes after is
 * ignored, so a confused worker cannot end a message twice.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph.h"
#include "pool.h"
#include "util.h"

/* Recycles c; why says how it ended, for its pool (PORCH_ERR_NONE: done,
 * PORCH_ERR_CANCELLED: not wanted). */
static void
call_recycle(struct porch_call *c, enum porch_error why)
{
	struct porch_worker *w = c->w;
	if (c->pool != NULL) {
		pool_call_end(c->pool, c->member, why, c->m->status, clock_ns() - c->t0);
		c->pool = NULL;
	}
	if (c->aside)
		msg_release(w->g, c->m); /* the call's own message */
	c->active = 0;
	c->aside = 0;
	c->m = NULL;
	c->data = NULL;
	c->next = w->free_calls;
	w->free_calls = c;
	w->inflight--;
	w->stats->inflight--;
}

/* Frees every call, also those still open when a drain deadline cut them off. */
void
worker_free_calls(struct porch_worker *w)
{
	struct porch_call *c, *next;
	for (c = w->all_calls; c != NULL; c = next) {
		next = c->all_next;
		free(c);
	}
	w->all_calls = NULL;
	w->free_calls = NULL;
}

/* A call with one of on_token and on_piece; aside: m is the call's own,
 * released when the call ends (or here, when it cannot be made). */
/* What porch_infer returns for a call that ended before it could start
 * (a pool with nowhere to send it): never active, so cancelling it does
 * nothing. */
static struct porch_call refused_call;

/* A call refused at once: m's attempt is counted, its end called. */
static porch_call *
refuse(porch_stage *st, porch_msg *m, int aside, porch_end_fn *on_end, void *ctx,
    enum porch_error err, const char *why)
{
	msg_rare(m);
	m->attempts++;
	struct cb_frame saved = CB_STAGE(st, "end", m->id);
	on_end(ctx, err, why);
	cb_leave(saved);
	if (aside)
		msg_release(st->g, m);
	return &refused_call;
}

static porch_call *
infer(porch_stage *st, porch_msg *m, int aside, porch_token_fn *on_token,
    porch_piece_fn *on_piece, porch_end_fn *on_end, void *ctx)
{
	struct porch_worker *w = st->worker;
	struct pool_target t = { NULL, NULL, -1 };
	if (st->pool != NULL && on_end != NULL) {
		enum porch_error err;
		char why[256];
		msg_rare(m);
		m->status = 0;
		m->retry_after_ms = 0;
		if (pool_route(st->pool, st, m, &t, &err, why, sizeof why) != 0)
			return refuse(st, m, aside, on_end, ctx, err, why);
		w = t.w;
	}
	if (w == NULL || on_end == NULL) {
		if (aside)
			msg_release(st->g, m);
		return NULL;
	}
	struct porch_call *c = w->free_calls;
	if (c != NULL) {
		w->free_calls = c->next;
	} else {
		c = xcalloc(1, sizeof *c);
		c->all_next = w->all_calls;
		w->all_calls = c;
	}
	c->next = NULL;
	c->w = w;
	c->st = st;
	c->m = m;
	c->on_token = on_token;
	c->on_piece = on_piece;
	c->on_end = on_end;
	c->ctx = ctx;
	c->data = NULL;
	c->active = 1;
	c->aside = aside;
	c->pool = t.pool;
	c->member = t.member;
	c->got_first = 0;
	if (t.pool != NULL) {
		c->t0 = clock_ns();
		pool_call_start(t.pool, t.member);
	}
	w->stats->calls++;
	w->stats->inflight++;
	w->inflight++;
	msg_rare(m);
	m->attempts++;
	m->status = 0;
	m->retry_after_ms = 0;
	struct cb_frame saved = CB_WORKER(w, "submit", m->id);
	int rc = w->d->submit(w, c);
	cb_leave(saved);
	if (rc != 0) {
		/* not started; but a worker that ended it and then said -1 has
		 * already been heard, so only recycle what is still open */
		if (c->active) {
			call_recycle(c, PORCH_ERR_TRANSPORT);
			w->stats->errors++;
			return NULL;
		}
	}
	return c;
}

porch_call *
porch_infer(porch_stage *st, porch_msg *m, porch_token_fn *on_token,
    porch_end_fn *on_end, void *ctx)
{
	return infer(st, m, 0, on_token, NULL, on_end, ctx);
}

porch_call *
porch_infer_pieces(porch_stage *st, porch_msg *m, porch_piece_fn *on_piece,
    porch_end_fn *on_end, void *ctx)
{
	return infer(st, m, 0, NULL, on_piece, on_end, ctx);
}

/*
 * The call gets a message of its own: the prompt as its text and input,
 * the options as its metadata, m's session and id.  m itself is not
 * touched, so its attempts, status and metadata are the request's alone.
 */
porch_call *
porch_infer_aside(porch_stage *st, const porch_msg *m, const char *text, size_t len,
    const char *const *options, porch_piece_fn *on_piece, porch_end_fn *on_end, void *ctx)
{
	if ((st->worker == NULL && st->pool == NULL) || on_end == NULL || (text == NULL && len > 0))
		return NULL;
	struct porch_msg *a = msg_aside(st->g, m);
	porch_msg_set_text(a, text != NULL ? text : "", len);
	msg_keep_input(a);
	for (size_t i = 0; options != NULL && options[i] != NULL; i += 2) {
		if (options[i + 1] == NULL)
			break;
		porch_msg_set_meta(a, options[i], options[i + 1]);
	}
	return infer(st, a, 1, NULL, on_piece, on_end, ctx);
}

void
porch_infer_cancel(porch_call *c)
{
	if (c == NULL || !c->active)
		return;
	if (c->w->d->cancel) {
		struct cb_frame saved = CB_WORKER(c->w, "cancel", c->m->id);
		c->w->d->cancel(c->w, c);
		cb_leave(saved);
	}
	call_recycle(c, PORCH_ERR_CANCELLED);
}

void
porch_infer_abandon(porch_call *c, enum porch_error why)
{
	if (c == NULL || !c->active)
		return;
	if (c->w->d->cancel) {
		struct cb_frame saved = CB_WORKER(c->w, "cancel", c->m->id);
		c->w->d->cancel(c->w, c);
		cb_leave(saved);
	}
	call_recycle(c, why == PORCH_ERR_NONE ? PORCH_ERR_CANCELLED : why);
}

const char *
porch_call_prompt(const porch_call *c, size_t *len)
{
	return porch_msg_text(c->m, len);
}

const char *
porch_call_option(const porch_call *c, const char *key)
{
	return porch_msg_meta(c->m, key);
}

const char *
porch_call_session(const porch_call *c)
{
	return porch_msg_session(c->m);
}

void *
porch_call_data(const porch_call *c)
{
	return c->data;
}

void
porch_call_set_data(porch_call *c, void *data)
{
	c->data = data;
}

const char *
porch_call_input(const porch_call *c, size_t *len)
{
	return porch_msg_input(c->m, len);
}

void
porch_call_token(porch_call *c, const char *token, size_t len)
{
	porch_call_piece(c, token, len, NULL);
}

void
porch_call_piece(porch_call *c, const char *text, size_t len, const struct porch_piece *pc)
{
	if (!c->active)
		return;
	if (c->pool != NULL && !c->got_first) {
		c->got_first = 1;
		pool_call_first(c->pool, c->member, clock_ns() - c->t0);
	}
	if (c->on_piece) {
		struct cb_frame saved = CB_STAGE(c->st, "piece", c->m->id);
		c->on_piece(c->ctx, text, len, pc);
		cb_leave(saved);
	} else if (c->on_token && len > 0) {
		struct cb_frame saved = CB_STAGE(c->st, "token", c->m->id);
		c->on_token(c->ctx, text, len);
		cb_leave(saved);
	}
}

void
porch_call_set_meta(porch_call *c, const char *key, const char *value)
{
	if (c->active && key != NULL && value != NULL)
		porch_msg_set_meta(c->m, key, value);
}

void
porch_call_done(porch_call *c)
{
	if (!c->active)
		return;
	porch_end_fn *end = c->on_end;
	void *ctx = c->ctx;
	struct cb_frame saved = CB_STAGE(c->st, "end", c->m->id);
	/* recycled first: the stage may start another call (a retry) at once */
	call_recycle(c, PORCH_ERR_NONE);
	end(ctx, PORCH_ERR_NONE, "");
	cb_leave(saved);
}

void
porch_call_fail(porch_call *c, enum porch_error why, const char *fmt, ...)
{
	if (!c->active)
		return;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	porch_end_fn *end = c->on_end;
	void *ctx = c->ctx;
	struct cb_frame saved = CB_STAGE(c->st, "end", c->m->id);
	c->w->stats->errors++;
	call_recycle(c, why == PORCH_ERR_NONE ? PORCH_ERR_INTERNAL : why);
	end(ctx, why == PORCH_ERR_NONE ? PORCH_ERR_INTERNAL : why, text);
	cb_leave(saved);
}

void
porch_call_set_status(porch_call *c, int status)
{
	if (c->active) {
		msg_rare(c->m);
		c->m->status = status;
	}
}

void
porch_call_set_retry_after(porch_call *c, int64_t ms)
{
	if (c->active) {
		msg_rare(c->m);
		c->m->retry_after_ms = ms > 0 ? ms : 0;
	}
}

/* ---- worker accessors --------------------------------------------------- */

const char *
porch_worker_name(const porch_worker *w)
{
	return w->name;
}

const porch_params *
porch_worker_params(const porch_worker *w)
{
	return w->cfg->parsed;
}

struct ev_loop *
porch_worker_loop(const porch_worker *w)
{
	return w->g->loop;
}

void *
porch_worker_data(const porch_worker *w)
{
	return w->data;
}

void
porch_worker_set_data(porch_worker *w, void *data)
{
	w->data = data;
}

void
porch_worker_error(porch_worker *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->init_error, sizeof w->init_error, fmt, ap);
	va_end(ap);
}
