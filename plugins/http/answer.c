/*
 * answer.c -- answers as the API makes them: JSON bodies written in place
 * in the scratch buffer or dumped by jansson, OpenAI-style error objects,
 * the answers to failures, and how outcomes become statuses.  The bytes go
 * out through the framing layer (wire_head, wire_answer: wire.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"

/* ---- outcomes and statuses ---------------------------------------------- */

/*
 * The status of an answer:
 *   completed                        200
 *   failed bad-request               400
 *   failed upstream, transport       502 (the model server failed us)
 *   failed timeout                   504 (it did not answer in time)
 *   failed internal, unrouted        500
 *   failed cancelled                 499 (the client went away; not sent)
 *   shed (full, admission)           503 + Retry-After
 *   expired (deadline)               504
 */
int
status_of(enum porch_outcome o, enum porch_error e)
{
	switch (o) {
	case PORCH_COMPLETED:
		return 200;
	case PORCH_SHED:
		return 503;
	case PORCH_EXPIRED:
		return 504;
	case PORCH_FAILED:
		break;
	}
	switch (e) {
	case PORCH_ERR_BAD_REQUEST:
		return 400;
	case PORCH_ERR_UPSTREAM:
	case PORCH_ERR_TRANSPORT:
		return 502;
	case PORCH_ERR_TIMEOUT:
	case PORCH_ERR_DEADLINE:
		return 504;
	case PORCH_ERR_CANCELLED:
		return 499;
	case PORCH_ERR_FULL:
	case PORCH_ERR_ADMISSION:
		return 503;
	default:
		return 500;
	}
}

/*
 * The model server's own refusal (4xx: a bad request, a key it does not
 * take, a model it does not have, its rate limit), which keeps its status so
 * that a client does not retry what cannot succeed; 0 for any other end.
 * Its 5xx, and answers it could not make sense of, are ours to call 502;
 * but a pool with every member ejected (metadata "pool-unavailable") is 503,
 * with the Retry-After the pool gave.
 */
int
upstream_status(porch_msg *m, enum porch_outcome o)
{
	int up = porch_msg_status(m);
	if (o == PORCH_FAILED && porch_msg_error(m) == PORCH_ERR_UPSTREAM &&
	    up >= 400 && up < 500)
		return up;
	/* a pool with every member ejected: unavailable, come back later */
	if (o == PORCH_FAILED && porch_msg_error(m) == PORCH_ERR_UPSTREAM && up == 503 &&
	    porch_msg_meta(m, "pool-unavailable") != NULL)
		return 503;
	return 0;
}

/*
 * The status and message ("OUTCOME: ERROR[: WHY]") of the answer or event
 * for a request that failed, was shed or expired.  Cancelled (499) is 500
 * here: the client is still there, so it is ours to explain.
 */
int
failure_text(porch_msg *m, enum porch_outcome o, char *msg, size_t size)
{
	enum porch_error e = porch_msg_error(m);
	const char *why = porch_msg_error_text(m);
	snprintf(msg, size, "%s: %s%s%s", porch_outcome_name(o), porch_error_name(e),
	    *why ? ": " : "", why);
	int up = upstream_status(m, o);
	if (up != 0)
		return up;
	int status = status_of(o, e);
	return status == 499 ? 500 : status;
}

/* The Retry-After header line an answer with this status carries, or NULL. */
const char *
retry_after_of(const struct hreq *h, int status)
{
	return status == 503 ? h->ans->retry_after : NULL;
}

/* The "type" of an error object with this status. */
const char *
error_type_of(int status)
{
	switch (status) {
	case 401:
		return "authentication_error";
	case 429:
		return "rate_limit_error";
	case 503:
		return "overloaded_error";
	case 502:
	case 504:
		return "upstream_error";
	}
	return status >= 500 ? "server_error" : "invalid_request_error";
}

/* ---- whole answers ------------------------------------------------------ */

char *
json_text(json_t *j)
{
	if (j == NULL)
		return NULL;
	/* 15 significant digits: a time rounded to 0.01 ms (short_ms) prints
	 * as 68.23, not as the 17 digits of its binary double */
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15));
	json_decref(j);
	return s;
}

static const char oom_body[] = "{\"error\":{\"message\":\"out of memory\","
    "\"type\":\"server_error\",\"param\":null,\"code\":\"internal\"}}\n";

void
answer_json(struct hreq *h, int status, json_t *j, const char *extra)
{
	char *s = json_text(j);
	if (s == NULL) {
		wire_answer(&h->w, 500, "application/json", oom_body, sizeof oom_body - 1, NULL);
		return;
	}
	size_t n = strlen(s);
	s[n] = '\n'; /* one line: json_dumps left the room of its NUL */
	wire_answer(&h->w, status, "application/json", s, n + 1, extra);
	free(s);
}

/* ---- bodies written in place -------------------------------------------- */

/* The scratch buffer is kept between answers up to this size. */
#define SCRATCH_KEEP (64 * 1024)

struct buf *
answer_scratch(struct hreq *h)
{
	buf_reset(&h->ans->scratch);
	return &h->ans->scratch;
}

void
answer_scratch_done(struct hreq *h)
{
	if (h->ans->scratch.cap > SCRATCH_KEEP)
		buf_free(&h->ans->scratch);
}

void
answer_scratch_send(struct hreq *h, int status, const char *ctype, const char *extra)
{
	struct buf *b = &h->ans->scratch;
	buf_lit(b, "\n");
	if (b->oom)
		wire_answer(&h->w, 500, "application/json", oom_body, sizeof oom_body - 1, NULL);
	else
		wire_answer(&h->w, status, ctype, b->p, b->len, extra);
	answer_scratch_done(h);
}

void
json_put_error(struct buf *b, const char *message, const char *type, const char *param,
    const char *code, const char *request_id)
{
	buf_lit(b, "{\"error\":{\"message\":");
	json_put_cstr(b, message);
	buf_lit(b, ",\"type\":");
	json_put_cstr(b, type);
	buf_lit(b, ",\"param\":");
	json_put_cstr(b, param);
	buf_lit(b, ",\"code\":");
	json_put_cstr(b, code);
	buf_lit(b, "}");
	if (request_id != NULL) {
		buf_lit(b, ",\"request_id\":");
		json_put_cstr(b, request_id);
	}
	buf_lit(b, "}");
}

void
answer_error_extra(struct hreq *h, int status, const char *param, const char *code,
    const char *extra, const char *message)
{
	json_put_error(answer_scratch(h), message, error_type_of(status), param, code, NULL);
	answer_scratch_send(h, status, "application/json", extra);
}

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}}. */
void
answer_error(struct hreq *h, int status, const char *param, const char *code,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	answer_error_extra(h, status, param, code, retry_after_of(h, status), msg);
}

/* ---- long answers, a slice at a time ------------------------------------ */

/*
 * Why: escaping and writing a 10 MB text as JSON in one go held the loop
 * ~40 ms, and every other connection (a health probe) with it.  The text
 * is copied (its message ends when the reply sink returns), and a timer of
 * 0 s, which runs once per loop iteration whatever else is busy, escapes
 * and writes ANSWER_SLICE bytes of it each time, cut between whole UTF-8
 * sequences so the escaped slices put together are the escaped text.  The
 * length is not known before, so the body is chunked (HTTP/1.1; an
 * HTTP/1.0 client's ends with the connection).
 */
static void
answer_on_slice(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct hreq *h = t->data;
	(void)revents;
	size_t n = h->slices.len - h->slices.off;
	if (n > ANSWER_SLICE)
		n = utf8_whole(h->slices.text + h->slices.off, ANSWER_SLICE);
	struct buf *b = answer_scratch(h);
	json_put_esc(b, h->slices.text + h->slices.off, n);
	h->slices.off += n;
	int oom = b->oom;
	if (!oom)
		wire_body(&h->w, b->p, b->len);
	answer_scratch_done(h);
	if (!oom && h->slices.off < h->slices.len) {
		ev_timer_start(loop, t);
		return;
	}
	if (oom || h->slices.after.oom)
		wire_close_after(&h->w); /* cut short: the client sees it so */
	else
		wire_body(&h->w, h->slices.after.p, h->slices.after.len);
	wire_end(&h->w);
	answer_slices_free(h);
}

void
answer_sliced(struct hreq *h, size_t at, const char *text, size_t len)
{
	struct buf *b = &h->ans->scratch;
	buf_lit(b, "\n");
	if (b->oom || (h->slices.text = malloc(len)) == NULL) {
		wire_answer(&h->w, 500, "application/json", oom_body, sizeof oom_body - 1, NULL);
		answer_scratch_done(h);
		return;
	}
	memcpy(h->slices.text, text, len);
	h->slices.len = len;
	h->slices.off = 0;
	buf_reset(&h->slices.after);
	buf_add(&h->slices.after, b->p + at, b->len - at);
	wire_head(&h->w, 200, "application/json", -1, NULL);
	wire_body(&h->w, b->p, at);
	answer_scratch_done(h);
	ev_timer_init(&h->slices.timer, answer_on_slice, 0., 0.);
	h->slices.timer.data = h;
	ev_timer_start(h->w.wire->loop, &h->slices.timer);
}

void
answer_slices_free(struct hreq *h)
{
	if (h->slices.text == NULL)
		return;
	ev_timer_stop(h->w.wire->loop, &h->slices.timer);
	free(h->slices.text);
	h->slices.text = NULL;
	h->slices.len = h->slices.off = 0;
	buf_free(&h->slices.after);
}

/* ---- failures -------------------------------------------------------- */

/*
 * The answer for a request that failed, was shed or expired.  A model
 * server's refusal keeps its status, its error object as it sent it and,
 * for 429, its Retry-After (rounded up to whole seconds).
 */
void
answer_failure(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	char msg[600], wait[48];
	int status = failure_text(m, o, msg, sizeof msg);
	const char *extra = retry_after_of(h, status);
	if (upstream_status(m, o) != 0) {
		int64_t ms = porch_msg_retry_after(m);
		if (ms > 0) {
			snprintf(wait, sizeof wait, "Retry-After: %lld\r\n",
			    (long long)((ms + 999) / 1000));
			extra = wait;
		}
		const char *error = porch_msg_meta(m, "openai.error");
		if (error != NULL && error[0] == '{') {
			struct buf *b = answer_scratch(h);
			buf_lit(b, "{\"error\":");
			buf_add(b, error, strlen(error));
			buf_lit(b, "}");
			answer_scratch_send(h, status, "application/json", extra);
			return;
		}
	}
	answer_error_extra(h, status, NULL, porch_error_name(porch_msg_error(m)), extra, msg);
}

/* A JSON string of any bytes: invalid UTF-8 becomes U+FFFD. */
json_t *
json_bytes(const char *p, size_t n)
{
	json_t *j = json_stringn(p, n);
	if (j != NULL)
		return j;
	struct buf b = { 0 };
	for (size_t i = 0; i < n;) {
		size_t k = utf8_valid_prefix(p + i, n - i);
		if (k == 0) {
			buf_add(&b, "\xef\xbf\xbd", 3);
			i++;
			continue;
		}
		buf_add(&b, p + i, k);
		i += k;
	}
	j = json_stringn(b.p ? b.p : "", b.len);
	buf_free(&b);
	return j;
}
