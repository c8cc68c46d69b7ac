/*
 * pipeline.c -- requests for the pipeline: the body read as JSON, checked
 * by its endpoint (openai.c), made a message and emitted with backpressure,
 * cancelled when its client leaves, and answered through the functions the
 * reply sink calls (origin.h) or, when it never reaches the sink, at its
 * outcome.
 *
 * Backpressure: before a request is emitted, porch_stage_ready says whether
 * the pipeline can take it.  When a full 'block' channel says no, the
 * request waits here and its connection stops reading (wire_wait), so its
 * client is held back by TCP rather than by memory; the resume callback
 * emits what waits and lets those connections read again.  Other
 * connections go on being read and accepted (each holds at most one
 * request back), so health, readiness and metrics answer at once.  When the
 * pipeline's in-flight bound says no, the request is emitted all the same:
 * the runtime refuses it (shed, admission) and the client gets 503 at once.
 *
 * Memory: the bytes requests in flight hold (struct wire's held: bodies
 * and answers not yet written, counted by the framing layer, and the
 * texts a message holds, counted here) are bounded by max-inflight-bytes.
 * A request that would pass it is shed, at its head by its Content-Length
 * (route.c), as its body grows (req_fail), or here by its texts, before
 * its message is made: a message made only to be refused (pipeline_shed),
 * so that it is counted as shed like the runtime's own refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* ---- requests for the pipeline ------------------------------------------ */

static json_t *
body_json(struct hreq *h)
{
	json_error_t err;
	if (h->w.body.len == 0) {
		answer_error(h, 400, NULL, "invalid_json", "the request has no body; "
		    "send a JSON object");
		return NULL;
	}
	/* the quick reader takes well-formed bodies; json_loadb the rest, and
	 * words what is wrong */
	json_t *root = jparse_object(h->w.body.p, h->w.body.len);
	if (root != NULL)
		return root;
	root = json_loadb(h->w.body.p, h->w.body.len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		answer_error(h, 400, NULL, "invalid_json", "the body is not valid JSON: %s "
		    "(line %d, column %d)", err.text, err.line, err.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		answer_error(h, 400, NULL, "invalid_json", "the body must be a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

/* Sets every metadata pair of pr on m; -1 if one could not be stored. */
static int
set_meta(porch_msg *m, const struct prompt *pr)
{
	int rc = 0;
	for (size_t i = 0; i < pr->n_meta; i++)
		if (porch_msg_set_meta(m, pr->meta[i].key, pr->meta[i].value) != 0)
			rc = -1;
	return rc;
}

/*
 * A request whose body is larger than this has its message made at the
 * next loop iteration, from a timer: reading and checking a 10 MB body,
 * then the message's copies of its text and of the body, are two steps of
 * ~10 ms each rather than one that holds the loop twice as long.
 */
#define MADE_LATER (1024 * 1024)

/* A request read and checked, its message to be made (h->made). */
struct made {
	struct hreq *h;
	json_t *root;               /* the body, read: pr points into it */
	struct prompt pr;
	ev_timer timer;
};

static void make_message(struct hreq *h, json_t *root, struct prompt *pr);

static void
on_made(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct made *md = t->data;
	struct hreq *h = md->h;
	(void)loop;
	(void)revents;
	h->made = NULL;
	if (h->s->w.draining) {
		answer_error(h, 503, NULL, "draining",
		    "porch is shutting down and takes no new requests");
		prompt_free(&md->pr);
		json_decref(md->root);
	} else {
		make_message(h, md->root, &md->pr);
	}
	free(md);
}

void
pipeline_made_free(struct hreq *h)
{
	struct made *md = h->made;
	if (md == NULL)
		return;
	h->made = NULL;
	ev_timer_stop(h->s->w.loop, &md->timer);
	prompt_free(&md->pr);
	json_decref(md->root);
	free(md);
}

/* A request for the pipeline: validate, make the message, emit it. */
void
pipeline_request(struct hreq *h)
{
	struct http_src *s = h->s;
	json_t *root = body_json(h);
	if (root == NULL)
		return;
	struct prompt pr = { 0 };
	int rc;
	switch (h->route) {
	case R_CHAT:
		rc = openai_chat_request(h, root, &pr);
		break;
	case R_COMPLETIONS:
		rc = openai_completion_request(h, root, &pr);
		break;
	default:
		rc = generate_request(h, root, &pr);
		break;
	}
	if (rc != 0) {
		json_decref(root);
		prompt_free(&pr);
		return;
	}
	/* the message's copies, held until its outcome: its text, the
	 * request's input (porch_msg_input: the text itself until a stage
	 * changes it, so counted twice to stay on the safe side), and its
	 * metadata ("openai.request" is the body again) */
	size_t texts = 2 * pr.len;
	for (size_t i = 0; i < pr.n_meta; i++)
		texts += strlen(pr.meta[i].value);
	if (!pipeline_room(s, texts)) {
		json_decref(root);
		prompt_free(&pr);
		pipeline_shed(h, "requests in flight hold %llu bytes; its texts' %zu more would "
		    "pass max-inflight-bytes (%llu)", (unsigned long long)s->w.held, texts,
		    (unsigned long long)s->w.max_held);
		return;
	}
	/* held from now, also while a large request's message waits a turn */
	h->held = texts;
	wire_hold(&s->w, texts);
	struct made *md;
	if (h->w.body.len > MADE_LATER && (md = calloc(1, sizeof *md)) != NULL) {
		/* freed with h if its client leaves first (pipeline_made_free) */
		md->h = h;
		md->root = root;
		md->pr = pr;
		ev_timer_init(&md->timer, on_made, 0., 0.);
		md->timer.data = md;
		ev_timer_start(s->w.loop, &md->timer);
		h->made = md;
		return;
	}
	make_message(h, root, &pr);
}

/* The message of a request read and checked: made, filled, emitted; root
 * and pr are let go. */
static void
make_message(struct hreq *h, json_t *root, struct prompt *pr)
{
	struct http_src *s = h->s;
	porch_msg *m = porch_msg_new(s->st);
	if (m == NULL) {
		json_decref(root);
		prompt_free(pr);
		answer_error(h, 500, NULL, "internal", "could not make a request (out of memory)");
		return;
	}
	/* the prompt points into root: freed after the message took its copy */
	int ok = porch_msg_set_text(m, pr->text, pr->len) == 0 && set_meta(m, pr) == 0;
	/* a cache stage neither answers it from its store nor stores its answer */
	if (h->no_cache && porch_msg_set_meta(m, "cache", "no") != 0)
		ok = 0;
	const char *session = h->session ? h->session : pr->user;
	if (session != NULL && porch_msg_set_session(m, session, strlen(session)) != 0)
		ok = 0;
	prompt_free(pr);
	json_decref(root);
	if (!ok) {
		porch_msg_set_origin_data(m, &h->origin);
		h->m = m;
		h->in_pipeline = 1;
		porch_fail(s->st, m, PORCH_ERR_INTERNAL, "could not fill the request "
		    "(out of memory)");
		return;
	}
	if (s->deadline_ms > 0)
		porch_msg_set_deadline(m, s->deadline_ms);
	pipeline_emit(s, h, m);
}

int
pipeline_room(struct http_src *s, size_t more)
{
	return s->w.max_held == 0 || s->w.held + more <= s->w.max_held;
}

void
pipeline_shed(struct hreq *h, const char *fmt, ...)
{
	struct http_src *s = h->s;
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	porch_msg *m = porch_msg_new(s->st);
	if (m == NULL) {
		answer_error(h, 503, NULL, "admission", "shed: admission: %s", why);
		return;
	}
	porch_msg_set_origin_data(m, &h->origin);
	porch_msg_set_meta(m, "request-id", h->w.id);
	h->m = m;
	h->in_pipeline = 1;
	/* its outcome (inside this call) answers it: 503 and Retry-After */
	porch_fail(s->st, m, PORCH_ERR_ADMISSION, "%s", why);
}

/* ---- emitting, waiting, resuming --------------------------------------- */

static void
wait_push(struct http_src *s, struct hreq *h, porch_msg *m)
{
	struct waiting *w = calloc(1, sizeof *w);
	if (w == NULL) {
		porch_fail(s->st, m, PORCH_ERR_INTERNAL, "out of memory");
		return;
	}
	w->h = h;
	w->m = m;
	if (s->wait_tail != NULL)
		s->wait_tail->next = w;
	else
		s->wait_head = w;
	s->wait_tail = w;
}

/* Can the pipeline take one now?  1: emit; 0: wait (a full block channel). */
static int
room_for_one(struct http_src *s)
{
	if (porch_stage_ready(s->st) > 0)
		return 1;
	uint64_t max = 0;
	uint64_t n = porch_stage_inflight(s->st, &max);
	/* at the in-flight bound the runtime refuses it: 503 at once */
	return n >= max;
}

static void
emit_now(struct http_src *s, porch_msg *m)
{
	/* PORCH_REFUSED: shed; the outcome callback has answered it */
	(void)porch_emit(s->st, m);
}

/*
 * Hands m, made for request h (or for a task: h NULL), to the pipeline now
 * or when there is room.  The request or task is its origin from here until
 * the outcome.
 */
void
pipeline_emit(struct http_src *s, struct hreq *h, porch_msg *m)
{
	if (h != NULL) {
		porch_msg_set_origin_data(m, &h->origin);
		porch_msg_set_meta(m, "request-id", h->w.id);
		h->m = m;
		h->in_pipeline = 1;
	}
	if (s->wait_head != NULL || !room_for_one(s)) {
		wait_push(s, h, m);
		if (h != NULL)
			wire_wait(&h->w);
		return;
	}
	emit_now(s, m);
}

void
pipeline_resume(struct http_src *s)
{
	while (s->wait_head != NULL) {
		if (!room_for_one(s))
			return; /* resume comes again */
		struct waiting *w = s->wait_head;
		s->wait_head = w->next;
		if (s->wait_head == NULL)
			s->wait_tail = NULL;
		porch_msg *m = w->m;
		free(w);
		emit_now(s, m);
	}
	wire_resume(&s->w);
}

/* Removes h's message from the waiting list; returns it, or NULL. */
static porch_msg *
wait_remove(struct http_src *s, struct hreq *h)
{
	struct waiting **pp = &s->wait_head, *prev = NULL;
	for (struct waiting *w = s->wait_head; w != NULL; prev = w, w = w->next) {
		if (w->h != h) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (s->wait_tail == w)
			s->wait_tail = prev;
		porch_msg *m = w->m;
		free(w);
		return m;
	}
	return NULL;
}

void
pipeline_cancel(struct http_src *s, struct hreq *h)
{
	porch_msg *m = wait_remove(s, h);
	if (m != NULL) {
		porch_fail(s->st, m, PORCH_ERR_CANCELLED, "the client closed the connection");
		if (s->wait_head == NULL)
			pipeline_resume(s);
		return;
	}
	if (h->m != NULL)
		porch_msg_cancel(h->m, "the client closed the connection");
}

void
pipeline_cancel_msg(struct http_src *s, porch_msg *m, const char *why)
{
	struct waiting **pp = &s->wait_head, *prev = NULL;
	for (struct waiting *w = s->wait_head; w != NULL; prev = w, w = w->next) {
		if (w->m != m) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (s->wait_tail == w)
			s->wait_tail = prev;
		free(w);
		porch_fail(s->st, m, PORCH_ERR_CANCELLED, "%s", why);
		if (s->wait_head == NULL)
			pipeline_resume(s);
		return;
	}
	porch_msg_cancel(m, why);
}

void
pipeline_drain(struct http_src *s)
{
	s->w.draining = 1;
	while (s->wait_head != NULL) {
		struct waiting *w = s->wait_head;
		s->wait_head = w->next;
		porch_msg *m = w->m;
		free(w);
		porch_fail(s->st, m, PORCH_ERR_ADMISSION, "porch is shutting down");
	}
	s->wait_tail = NULL;
	wire_drain(&s->w); /* reads again, as nothing waits */
}

/* ---- the origin functions the reply sink calls ------------------------- */

static void
deliver(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	if (h->mode == MODE_WHOLE)
		answer_whole(h, m, o);
	else
		stream_end(h, m, o);
}

static void
hreq_piece(struct http_origin *o, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	struct hreq *h = hreq_of_origin(o);
	(void)m;
	if (h->w.c == NULL || h->mode == MODE_WHOLE || h->w.complete)
		return;
	stream_piece(h, text, len, pc);
}

static void
hreq_chunk(struct http_origin *o, porch_msg *m, const char *text, size_t len)
{
	hreq_piece(o, m, text, len, NULL);
}

static void
hreq_finish(struct http_origin *o, porch_msg *m)
{
	struct hreq *h = hreq_of_origin(o);
	h->answered_by_reply = 1;
	if (h->w.c == NULL || h->w.complete)
		return;
	deliver(h, m, porch_error_outcome(porch_msg_error(m)));
}

const struct http_origin_ops hreq_ops = {
	.magic = HTTP_ORIGIN_MAGIC,
	.version = HTTP_ORIGIN_VERSION,
	.chunk = hreq_chunk,
	.finish = hreq_finish,
	.piece = hreq_piece,
};

/* The request ended: answer it if the reply sink did not, and let go. */
void
hreq_outcome(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	struct http_src *s = h->s;
	enum porch_error e = porch_msg_error(m);
	/* the message, and its copies of the texts, are let go */
	wire_unhold(&s->w, h->held);
	h->held = 0;
	h->outcome_known = 1;
	h->outcome = o;
	if (o != PORCH_COMPLETED)
		porch_msg_log(s->st, m, "%s %s: %s%s%s", route_label(h->route),
		    porch_outcome_name(o), porch_error_name(e),
		    *porch_msg_error_text(m) ? ": " : "", porch_msg_error_text(m));
	if (h->w.c != NULL && !h->w.complete && (!h->answered_by_reply || h->w.status == 0))
		deliver(h, m, o);
	if (h->w.c == NULL && e == PORCH_ERR_CANCELLED)
		metrics_count(s, h->route, 499);
	h->m = NULL;
	h->in_pipeline = 0;
	hreq_release(h);
}
