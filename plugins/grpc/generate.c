/*
 * generate.c -- Generate: a prompt through the pipeline, its answer's
 * pieces streamed back as they come (the reply sink calls gen_ops, the
 * table of origin.h), then a final message with the finish reason, the
 * usage and the whole text; or a status from its outcome.  Also the
 * emitting with backpressure that tasks share.
 *
 * Backpressure: when porch_stage_ready says a full 'block' channel has no
 * room, the request waits here (its call open, its client waiting) until
 * the resume callback; at the pipeline's in-flight bound it is emitted all
 * the same and the runtime sheds it: RESOURCE_EXHAUSTED at once.
 *
 * Deadline: the client's (grpc-timeout) is the request's deadline, or the
 * source's deadline parameter when that is sooner.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gsrc.h"

/* Keys porch itself sets, which a request's metadata may not. */
static const char *const reserved[] = {
	"request-id", "task-id", "model", "max-tokens", "temperature", "top-p", "stop",
	"finish-reason", "usage", "retries", "response-format", NULL
};

int
gen_set_meta(porch_msg *m, const char *key, const char *value, const char **why)
{
	size_t n = key ? strlen(key) : 0;
	if (n == 0 || n > 64) {
		*why = "a metadata key has 1 to 64 characters";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = key[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.')) {
			*why = "a metadata key has only letters, digits, '-', '_' and '.'";
			return -1;
		}
	}
	for (size_t i = 0; reserved[i] != NULL; i++)
		if (strcmp(key, reserved[i]) == 0 || strncmp(key, "openai.", 7) == 0) {
			*why = "that metadata key is porch's own (set it with the request's "
			    "fields)";
			return -1;
		}
	if (m != NULL && porch_msg_set_meta(m, key, value ? value : "") != 0) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* ---- emitting, waiting, resuming ---------------------------------------- */

static int
room_for_one(struct gsrc *s)
{
	if (porch_stage_ready(s->st) > 0)
		return 1;
	uint64_t max = 0;
	uint64_t n = porch_stage_inflight(s->st, &max);
	return n >= max; /* at the bound the runtime sheds it: answered at once */
}

void
gen_emit(struct gsrc *s, struct gcall *c, porch_msg *m)
{
	if (s->wait_head != NULL || !room_for_one(s)) {
		struct gwait *w = calloc(1, sizeof *w);
		if (w == NULL) {
			porch_fail(s->st, m, PORCH_ERR_INTERNAL, "out of memory");
			return;
		}
		w->m = m;
		w->c = c;
		if (s->wait_tail != NULL)
			s->wait_tail->next = w;
		else
			s->wait_head = w;
		s->wait_tail = w;
		return;
	}
	(void)porch_emit(s->st, m); /* refused: the outcome has answered */
}

void
gen_resume(struct gsrc *s)
{
	while (s->wait_head != NULL && room_for_one(s)) {
		struct gwait *w = s->wait_head;
		s->wait_head = w->next;
		if (s->wait_head == NULL)
			s->wait_tail = NULL;
		porch_msg *m = w->m;
		free(w);
		(void)porch_emit(s->st, m);
	}
	gsrc_maybe_finished(s);
}

int
gen_unwait(struct gsrc *s, porch_msg *m, const char *why)
{
	struct gwait *prev = NULL;
	for (struct gwait *w = s->wait_head; w != NULL; prev = w, w = w->next) {
		if (w->m != m)
			continue;
		if (prev != NULL)
			prev->next = w->next;
		else
			s->wait_head = w->next;
		if (s->wait_tail == w)
			s->wait_tail = prev;
		free(w);
		porch_fail(s->st, m, PORCH_ERR_CANCELLED, "%s", why);
		return 1;
	}
	return 0;
}

void
gen_drain(struct gsrc *s)
{
	while (s->wait_head != NULL) {
		struct gwait *w = s->wait_head;
		s->wait_head = w->next;
		porch_msg *m = w->m;
		free(w);
		porch_fail(s->st, m, PORCH_ERR_ADMISSION, "porch is shutting down");
	}
	s->wait_tail = NULL;
}

/* ---- the call ------------------------------------------------------------- */

static int
bad(struct gcall *c, const char *fmt, const char *what)
{
	call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, fmt, what);
	return -1;
}

/* The generation settings as metadata on m (m NULL: checked only); -1
 * after answering INVALID_ARGUMENT. */
static int
settings(struct gcall *c, porch_msg *m, const Porch__V1__GenerationSettings *g)
{
	char num[40];
	if (g == NULL)
		return 0;
	if (g->model != NULL && *g->model && m != NULL)
		porch_msg_set_meta(m, "model", g->model);
	if (g->max_tokens < 0)
		return bad(c, "%s must be 0 (the stage's own) or more", "settings.max_tokens");
	if (g->max_tokens > 0) {
		snprintf(num, sizeof num, "%d", (int)g->max_tokens);
		if (m != NULL)
			porch_msg_set_meta(m, "max-tokens", num);
	}
	if (g->temperature_set_case == PORCH__V1__GENERATION_SETTINGS__TEMPERATURE_SET_TEMPERATURE) {
		if (!(g->temperature >= 0 && g->temperature <= 2))
			return bad(c, "%s must be from 0 to 2", "settings.temperature");
		snprintf(num, sizeof num, "%g", g->temperature);
		if (m != NULL)
			porch_msg_set_meta(m, "temperature", num);
	}
	if (g->top_p_set_case == PORCH__V1__GENERATION_SETTINGS__TOP_P_SET_TOP_P) {
		if (!(g->top_p >= 0 && g->top_p <= 1))
			return bad(c, "%s must be from 0 to 1", "settings.top_p");
		snprintf(num, sizeof num, "%g", g->top_p);
		if (m != NULL)
			porch_msg_set_meta(m, "top-p", num);
	}
	if (g->n_stop > 4)
		return bad(c, "%s has at most 4 sequences", "settings.stop");
	if (g->n_stop > 0) {
		json_t *arr = json_array();
		for (size_t i = 0; i < g->n_stop; i++)
			json_array_append_new(arr, json_string(g->stop[i]));
		char *text = json_dumps(arr, JSON_COMPACT);
		json_decref(arr);
		if (text == NULL)
			return bad(c, "%s: not valid UTF-8", "settings.stop");
		if (m != NULL)
			porch_msg_set_meta(m, "stop", text);
		free(text);
	}
	return 0;
}

void
generate_call(struct gcall *c, const uint8_t *req, size_t len)
{
	struct gsrc *s = c->s;
	if (s->draining) {
		call_finish(c, GRPC_STATUS_UNAVAILABLE, "porch is shutting down and takes no "
		    "new requests");
		return;
	}
	Porch__V1__GenerateRequest *r = porch__v1__generate_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "porch.v1.GenerateRequest");
		return;
	}
	porch_msg *m = NULL;
	if (r->text == NULL || *r->text == '\0') {
		bad(c, "%s is empty: there is nothing to generate from", "text");
		goto out;
	}
	/* checked before a message is made: a bad request is no request */
	for (size_t i = 0; i < r->n_metadata; i++) {
		const char *why;
		if (gen_set_meta(NULL, r->metadata[i]->key, r->metadata[i]->value, &why) != 0) {
			call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "metadata '%s': %s",
			    r->metadata[i]->key, why);
			goto out;
		}
	}
	if (settings(c, NULL, r->settings) != 0)
		goto out;
	m = porch_msg_new(s->st);
	if (m == NULL) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	porch_msg_set_text(m, r->text, strlen(r->text));
	if (r->session != NULL && *r->session)
		porch_msg_set_session(m, r->session, strlen(r->session));
	for (size_t i = 0; i < r->n_metadata; i++) {
		const char *why;
		if (gen_set_meta(m, r->metadata[i]->key, r->metadata[i]->value, &why) != 0) {
			call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", why);
			goto refuse;
		}
	}
	if (settings(c, m, r->settings) != 0)
		goto refuse;
	snprintf(c->request_id, sizeof c->request_id, "grpc-%llx-%llu",
	    (unsigned long long)(uintptr_t)s & 0xffff, (unsigned long long)++s->next_id);
	porch_msg_set_meta(m, "request-id", c->request_id);
	int64_t dl = c->deadline_ms;
	if (s->deadline_ms > 0 && (dl == 0 || s->deadline_ms < dl))
		dl = s->deadline_ms;
	if (dl > 0)
		porch_msg_set_deadline(m, dl);
	c->origin.ops = &gen_ops;
	porch_msg_set_origin_data(m, &c->origin);
	c->m = m;
	call_hold(c); /* until the outcome */
	gen_emit(s, c, m);
	goto out;
refuse:
	/* out of memory filling it: it ends here, failed, without an origin */
	porch_fail(s->st, m, PORCH_ERR_INTERNAL, "could not fill the request");
out:
	porch__v1__generate_request__free_unpacked(r, NULL);
}

void
gen_cancelled(struct gcall *c)
{
	porch_msg *m = c->m;
	if (!gen_unwait(c->s, m, "the client cancelled the call"))
		porch_msg_cancel(m, "the client cancelled the call (or its deadline passed)");
}

/* ---- what the reply sink calls ------------------------------------------- */

static struct gcall *
gcall_of(struct http_origin *o)
{
	return (struct gcall *)o; /* origin is its first member */
}

static void
gen_piece(struct http_origin *o, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	(void)m;
	(void)pc;
	struct gcall *c = gcall_of(o);
	if (len == 0 || call_gone(c))
		return;
	(void)call_send_token(c, text, len);
}

static void
gen_chunk(struct http_origin *o, porch_msg *m, const char *text, size_t len)
{
	gen_piece(o, m, text, len, NULL);
}

static void
gen_finish(struct http_origin *o, porch_msg *m)
{
	(void)o;
	(void)m; /* the outcome answers */
}

const struct http_origin_ops gen_ops = {
	.magic = HTTP_ORIGIN_MAGIC,
	.version = HTTP_ORIGIN_VERSION,
	.chunk = gen_chunk,
	.finish = gen_finish,
	.piece = gen_piece,
};

static uint32_t
words(const char *p, size_t n)
{
	uint32_t w = 0;
	int in = 0;
	for (size_t i = 0; i < n; i++) {
		int sp = p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r';
		if (!sp && !in)
			w++;
		in = !sp;
	}
	return w;
}

void
gen_outcome(struct gcall *c, porch_msg *m, enum porch_outcome o)
{
	c->m = NULL;
	if (o == PORCH_COMPLETED) {
		size_t len, inlen;
		const char *text = porch_msg_text(m, &len);
		const char *in = porch_msg_input(m, &inlen);
		Porch__V1__GenerateResponse r = PORCH__V1__GENERATE_RESPONSE__INIT;
		Porch__V1__Usage u = PORCH__V1__USAGE__INIT;
		r.done = 1;
		const char *reason = porch_msg_meta(m, "finish-reason");
		r.finish_reason = (char *)(reason ? reason : "stop");
		r.text.data = (uint8_t *)text;
		r.text.len = len;
		r.request_id = c->request_id;
		/* the worker's usage, else words counted */
		const char *usage = porch_msg_meta(m, "usage");
		json_t *ju = usage ? json_loads(usage, 0, NULL) : NULL;
		if (json_is_object(ju)) {
			u.prompt_tokens = (uint32_t)json_integer_value(json_object_get(ju, "prompt_tokens"));
			u.completion_tokens = (uint32_t)json_integer_value(
			    json_object_get(ju, "completion_tokens"));
		} else {
			u.prompt_tokens = words(in, inlen);
			u.completion_tokens = words(text, len);
		}
		json_decref(ju);
		u.total_tokens = u.prompt_tokens + u.completion_tokens;
		r.usage = &u;
		call_send(c, &r.base);
		call_finish(c, GRPC_STATUS_OK, NULL);
	} else {
		porch_msg_log(c->s->st, m, "Generate %s: %s%s%s", porch_outcome_name(o),
		    porch_error_name(porch_msg_error(m)), *porch_msg_error_text(m) ? ": " : "",
		    porch_msg_error_text(m));
		call_finish_error(c, o, porch_msg_error(m), porch_msg_status(m),
		    porch_msg_error_text(m), o == PORCH_SHED ? c->s->retry_after_ms : 0);
	}
	call_release(c);
}
