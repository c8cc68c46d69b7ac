/*
 * stream.c -- answers that go out as they are made: server-sent events in
 * OpenAI's chunk format (chat.completion.chunk, text_completion) ending
 * with "data: [DONE]", and /generate's newline-delimited JSON.
 *
 * Framing: each SSE event is "data: JSON\n\n"; each NDJSON object one line.
 * The body is chunked (HTTP/1.1), one HTTP chunk per event, written as soon
 * as the piece arrives (the connection has TCP_NODELAY).  A piece that ends
 * inside a UTF-8 sequence keeps those bytes back for the next one, so every
 * event is valid JSON text.
 *
 * A request that fails before anything was sent gets a plain error answer
 * with its status; once the stream has begun (status 200 is out), a failure
 * is an error event, {"error": {...}} (SSE, without [DONE]) or
 * {"request_id", "error": {...}} (NDJSON), and the stream ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static void
emit_line(struct hreq *h, json_t *j, int sse)
{
	char *s = json_text(j);
	if (s == NULL)
		return;
	struct buf b = { 0 };
	if (sse) {
		buf_str(&b, "data: ");
		buf_str(&b, s);
		buf_str(&b, "\n\n");
	} else {
		buf_str(&b, s);
		buf_str(&b, "\n");
	}
	free(s);
	answer_body(h, b.p, b.len);
	buf_free(&b);
}

static json_t *
chunk_object(struct hreq *h, json_t *choice)
{
	char id[RID_MAX + 16];
	int chat = h->mode == MODE_SSE_CHAT;
	snprintf(id, sizeof id, "%s-%s", chat ? "chatcmpl" : "cmpl", h->rid);
	json_t *choices = choice ? json_pack("[o]", choice) : json_array();
	return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id,
	    "object", chat ? "chat.completion.chunk" : "text_completion",
	    "created", (json_int_t)h->created, "model", h->model ? h->model : "",
	    "choices", choices);
}

/* The status line and headers, and for chat the first event (the role). */
static void
stream_begin(struct hreq *h)
{
	if (h->status != 0)
		return;
	if (h->mode == MODE_NDJSON) {
		answer_head(h, 200, "application/x-ndjson", -1, "Cache-Control: no-cache\r\n");
	} else {
		answer_head(h, 200, "text/event-stream", -1,
		    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
		if (h->mode == MODE_SSE_CHAT)
			emit_line(h, chunk_object(h, json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}",
			    "index", 0, "delta", "role", "assistant", "content", "",
			    "logprobs", "finish_reason")), 1);
	}
}

static void
piece_out(struct hreq *h, const char *text, size_t len)
{
	json_t *t = json_bytes(text, len);
	switch (h->mode) {
	case MODE_SSE_CHAT:
		emit_line(h, chunk_object(h, json_pack("{s:i, s:{s:o}, s:n, s:n}", "index", 0,
		    "delta", "content", t, "logprobs", "finish_reason")), 1);
		break;
	case MODE_SSE_TEXT:
		emit_line(h, chunk_object(h, json_pack("{s:i, s:o, s:n, s:n}", "index", 0,
		    "text", t, "logprobs", "finish_reason")), 1);
		break;
	case MODE_NDJSON:
		emit_line(h, json_pack("{s:s, s:o}", "request_id", h->gen_id ? h->gen_id : h->rid,
		    "token", t), 0);
		break;
	default:
		json_decref(t);
		break;
	}
	h->pieces++;
}

/* Whether p[0..n) is the start of a UTF-8 sequence longer than n bytes. */
static int
utf8_cut(const char *p, size_t n)
{
	unsigned char lead = (unsigned char)p[0];
	size_t want = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 :
	    (lead & 0xf8) == 0xf0 ? 4 : 0;
	if (want <= n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (((unsigned char)p[i] & 0xc0) != 0x80)
			return 0;
	return 1;
}

void
stream_piece(struct hreq *h, const char *text, size_t len)
{
	if (len == 0)
		return;
	stream_begin(h);
	struct buf joined = { 0 };
	if (h->carry_len > 0) {
		buf_add(&joined, h->carry, h->carry_len);
		buf_add(&joined, text, len);
		text = joined.p;
		len = joined.len;
		h->carry_len = 0;
	}
	size_t ok = utf8_valid_prefix(text, len);
	if (ok < len && len - ok < sizeof h->carry && utf8_cut(text + ok, len - ok)) {
		/* a sequence cut at the end: it goes with the next piece */
		h->carry_len = len - ok;
		memcpy(h->carry, text + ok, h->carry_len);
		len = ok;
	}
	if (len > 0)
		piece_out(h, text, len); /* anything invalid left is mended as U+FFFD */
	buf_free(&joined);
}

static void
stream_error(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	enum porch_error e = porch_msg_error(m);
	int retry;
	int status = status_of(o, e, &retry);
	const char *why = porch_msg_error_text(m);
	char msg[600];
	snprintf(msg, sizeof msg, "%s: %s%s%s", porch_outcome_name(o), porch_error_name(e),
	    *why ? ": " : "", why);
	json_t *err = error_object(msg, error_type_of(status == 499 ? 500 : status), NULL,
	    porch_error_name(e));
	if (h->mode == MODE_NDJSON) {
		json_object_set_new(err, "request_id", json_string(h->gen_id ? h->gen_id : h->rid));
		emit_line(h, err, 0);
	} else {
		emit_line(h, err, 1);
	}
	answer_end(h);
}

void
stream_end(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	if (h->complete)
		return;
	if (o != PORCH_COMPLETED && h->status == 0) {
		/* nothing sent yet: a plain answer with the right status */
		if (h->mode == MODE_NDJSON) {
			enum porch_error e = porch_msg_error(m);
			int retry;
			int status = status_of(o, e, &retry);
			if (status == 499)
				status = 500;
			const char *why = porch_msg_error_text(m);
			char msg[600];
			snprintf(msg, sizeof msg, "%s: %s%s%s", porch_outcome_name(o),
			    porch_error_name(e), *why ? ": " : "", why);
			json_t *err = error_object(msg, error_type_of(status), NULL,
			    porch_error_name(e));
			json_object_set_new(err, "request_id",
			    json_string(h->gen_id ? h->gen_id : h->rid));
			char extra[64] = "";
			if (retry)
				snprintf(extra, sizeof extra, "Retry-After: %lld\r\n",
				    (long long)h->s->retry_after_s);
			char *s = json_text(err);
			if (s != NULL) {
				size_t n = strlen(s);
				s[n] = '\n';
				answer_simple(h, status, "application/x-ndjson", s, n + 1,
				    extra[0] ? extra : NULL);
				free(s);
			}
			return;
		}
		answer_failure(h, m, o);
		return;
	}
	if (o != PORCH_COMPLETED) {
		stream_error(h, m, o);
		return;
	}
	size_t len;
	const char *text = porch_msg_text(m, &len);
	stream_begin(h);
	if (h->pieces == 0 && len > 0)
		stream_piece(h, text, len); /* nothing streamed: the whole answer at once */
	if (h->carry_len > 0) {
		piece_out(h, h->carry, h->carry_len);
		h->carry_len = 0;
	}
	uint64_t words = count_words(text, len);
	switch (h->mode) {
	case MODE_SSE_CHAT:
		emit_line(h, chunk_object(h, json_pack("{s:i, s:{}, s:n, s:s}", "index", 0,
		    "delta", "logprobs", "finish_reason", "stop")), 1);
		break;
	case MODE_SSE_TEXT:
		emit_line(h, chunk_object(h, json_pack("{s:i, s:s, s:n, s:s}", "index", 0,
		    "text", "", "logprobs", "finish_reason", "stop")), 1);
		break;
	case MODE_NDJSON:
		emit_line(h, json_pack("{s:s, s:b, s:o, s:o}", "request_id",
		    h->gen_id ? h->gen_id : h->rid, "done", 1, "text", json_bytes(text, len),
		    "usage", usage_object(h, words)), 0);
		answer_end(h);
		return;
	default:
		break;
	}
	if (h->include_usage) {
		json_t *u = chunk_object(h, NULL);
		json_object_set_new(u, "usage", usage_object(h, words));
		emit_line(h, u, 1);
	}
	answer_body(h, "data: [DONE]\n\n", 14);
	answer_end(h);
}
