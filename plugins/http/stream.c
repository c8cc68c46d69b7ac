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

#include "answer.h"

/*
 * Each event is written in place into the source's scratch buffer: begun
 * with event_open ("data: " for SSE), its JSON appended, then sent as one
 * body piece (one HTTP chunk) by event_send, with its "\n\n" or "\n".
 */
static struct buf *
event_open(struct hreq *h, int sse)
{
	struct buf *b = answer_scratch(h);
	if (sse)
		buf_lit(b, "data: ");
	return b;
}

static void
event_send(struct hreq *h, struct buf *b, int sse)
{
	if (sse)
		buf_lit(b, "\n\n");
	else
		buf_lit(b, "\n");
	if (!b->oom)
		wire_body(&h->w, b->p, b->len);
	answer_scratch_done(h);
}

/*
 * A chunk object's opening, {"id","object","created","model", the same for
 * every chunk of the stream: made once by chunk_head_make (when the stream
 * begins) into the request's chunk_head; chunk_open copies it, then the
 * piece's top-level extras (pc->chunk, may be NULL) and ,"choices":[.
 */
static void
chunk_head_make(struct hreq *h)
{
	struct buf *b = &h->chunk_head;
	int chat = h->mode == MODE_SSE_CHAT;
	buf_reset(b);
	json_put_object_open(b, h, chat, chat ? "chat.completion.chunk" : "text_completion");
}

static void
chunk_open(struct hreq *h, struct buf *b, const char *extras)
{
	if (h->chunk_head.oom)
		b->oom = 1;
	else
		buf_add(b, h->chunk_head.p, h->chunk_head.len);
	json_put_members(b, extras, 1);
	buf_lit(b, ",\"choices\":[");
}

/* NDJSON's request id: the client's request_id, else ours. */
static const char *
gen_id(const struct hreq *h)
{
	return h->gen_id ? h->gen_id : h->w.id;
}

/* The status line and headers, and for chat the first event (the role). */
static void
stream_begin(struct hreq *h)
{
	if (h->w.status != 0)
		return;
	if (h->mode == MODE_NDJSON) {
		wire_head(&h->w, 200, "application/x-ndjson", -1, "Cache-Control: no-cache\r\n");
	} else {
		wire_head(&h->w, 200, "text/event-stream", -1,
		    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
		chunk_head_make(h);
	}
}

/*
 * Chat streams open with the role, as OpenAI's do: in a chunk of its own
 * before the first text ({"role":"assistant","content":""}), or in the
 * first chunk's delta when that has no text (a tool call: content null).
 */
static void
role_out(struct hreq *h)
{
	if (h->mode != MODE_SSE_CHAT || h->role_sent)
		return;
	h->role_sent = 1;
	struct buf *b = event_open(h, 1);
	chunk_open(h, b, NULL);
	buf_lit(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
	    "\"logprobs\":null,\"finish_reason\":null}]}");
	event_send(h, b, 1);
}

/* The choice's own extras (logprobs ...), or the "logprobs":null every choice has. */
static void
choice_extras(struct buf *b, const char *extras)
{
	if (extras != NULL)
		json_put_members(b, extras, 1);
	else
		buf_lit(b, ",\"logprobs\":null");
}

/*
 * One event: the text (none for a piece with only extras) and, in the SSE
 * modes, the piece's extras where the chunk format puts them.  /generate's
 * lines carry the text only.
 */
static void
piece_out(struct hreq *h, const char *text, size_t len, const struct porch_piece *pc)
{
	static const struct porch_piece none;
	struct buf *b;
	if (pc == NULL)
		pc = &none;
	else
		h->extras_sent |= pc->chunk != NULL || pc->choice != NULL || pc->delta != NULL;
	switch (h->mode) {
	case MODE_SSE_CHAT: {
		int with_role = !h->role_sent && len == 0 && pc->delta != NULL;
		if (!with_role)
			role_out(h);
		h->role_sent = 1;
		b = event_open(h, 1);
		chunk_open(h, b, pc->chunk);
		buf_lit(b, "{\"index\":0,\"delta\":{");
		if (with_role)
			buf_lit(b, "\"role\":\"assistant\",\"content\":null");
		if (len > 0) {
			buf_lit(b, "\"content\":");
			json_put_str(b, text, len);
		}
		json_put_members(b, pc->delta, len > 0 || with_role);
		buf_lit(b, "}");
		choice_extras(b, pc->choice);
		buf_lit(b, ",\"finish_reason\":null}]}");
		event_send(h, b, 1);
		break;
	}
	case MODE_SSE_TEXT:
		b = event_open(h, 1);
		chunk_open(h, b, pc->chunk);
		buf_lit(b, "{\"index\":0,\"text\":");
		json_put_str(b, text, len);
		choice_extras(b, pc->choice);
		buf_lit(b, ",\"finish_reason\":null}]}");
		event_send(h, b, 1);
		break;
	case MODE_NDJSON:
		if (len == 0)
			return;
		b = event_open(h, 0);
		buf_lit(b, "{\"request_id\":");
		json_put_cstr(b, gen_id(h));
		buf_lit(b, ",\"token\":");
		json_put_str(b, text, len);
		buf_lit(b, "}");
		event_send(h, b, 0);
		break;
	default:
		break;
	}
	h->pieces++;
}

/* The source's joined buffer is kept between pieces up to this size. */
#define JOINED_KEEP (16 * 1024)

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
stream_piece(struct hreq *h, const char *text, size_t len, const struct porch_piece *pc)
{
	if (pc != NULL && pc->chunk == NULL && pc->choice == NULL && pc->delta == NULL)
		pc = NULL;
	if (len == 0 && pc == NULL)
		return;
	stream_begin(h);
	struct buf *joined = NULL;
	if (h->carry_len > 0) {
		joined = &h->ans->joined;
		buf_reset(joined);
		buf_add(joined, h->carry, h->carry_len);
		buf_add(joined, text, len);
		text = joined->p;
		len = joined->len;
		h->carry_len = 0;
	}
	size_t ok = utf8_valid_prefix(text, len);
	if (ok < len && len - ok < sizeof h->carry && utf8_cut(text + ok, len - ok)) {
		/* a sequence cut at the end: it goes with the next piece */
		h->carry_len = len - ok;
		memcpy(h->carry, text + ok, h->carry_len);
		len = ok;
	}
	if (len > 0 || pc != NULL)
		piece_out(h, text, len, pc); /* anything invalid left is mended as U+FFFD */
	if (joined != NULL && joined->cap > JOINED_KEEP)
		buf_free(joined);
}

static void
stream_error(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	char msg[600];
	int status = failure_text(m, o, msg, sizeof msg);
	int sse = h->mode != MODE_NDJSON;
	struct buf *b = event_open(h, sse);
	const char *error = porch_msg_meta(m, "openai.error");
	if (sse && upstream_status(m, o) != 0 && error != NULL && error[0] == '{') {
		/* the model server's own error object, as it sent it */
		buf_lit(b, "{\"error\":");
		buf_add(b, error, strlen(error));
		buf_lit(b, "}");
	} else {
		json_put_error(b, msg, error_type_of(status), NULL,
		    porch_error_name(porch_msg_error(m)), sse ? NULL : gen_id(h));
	}
	event_send(h, b, sse);
	wire_end(&h->w);
}

void
stream_end(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	if (h->w.complete)
		return;
	if (o != PORCH_COMPLETED && h->w.status == 0) {
		/* nothing sent yet: a plain answer with the right status */
		if (h->mode == MODE_NDJSON) {
			char msg[600];
			int status = failure_text(m, o, msg, sizeof msg);
			json_put_error(answer_scratch(h), msg, error_type_of(status), NULL,
			    porch_error_name(porch_msg_error(m)), gen_id(h));
			answer_scratch_send(h, status, "application/x-ndjson",
			    retry_after_of(h, status));
			return;
		}
		answer_failure(h, m, o);
		return;
	}
	if (o != PORCH_COMPLETED) {
		stream_error(h, m, o);
		return;
	}
	size_t len = 0;
	const char *text = porch_msg_text(m, &len);
	if (text == NULL)
		text = "", len = 0;
	const char *reason = porch_msg_meta(m, "finish-reason");
	const char *usage = porch_msg_meta(m, "usage");
	const char *message = porch_msg_meta(m, "openai.message");
	stream_begin(h);
	if (h->pieces == 0 && len > 0)
		stream_piece(h, text, len, NULL); /* nothing streamed: the whole answer at once */
	if (h->carry_len > 0) {
		piece_out(h, h->carry, h->carry_len, NULL);
		h->carry_len = 0;
	}
	if ((h->mode == MODE_SSE_CHAT || h->mode == MODE_SSE_TEXT) && !h->extras_sent) {
		/* the extras did not come as pieces (a stage before us takes text
		 * only, or the answer came whole): the answer's, in one chunk */
		struct porch_piece whole = {
			.chunk = porch_msg_meta(m, "openai.extra"),
			.choice = porch_msg_meta(m, "openai.choice"),
			.delta = h->mode == MODE_SSE_CHAT ? message : NULL,
		};
		if (whole.chunk != NULL || whole.choice != NULL || whole.delta != NULL)
			piece_out(h, "", 0, &whole);
	}
	if (reason == NULL)
		reason = "stop";
	role_out(h); /* an empty answer still has its role */
	const char *extra = porch_msg_meta(m, "openai.extra");
	struct buf *b;
	switch (h->mode) {
	case MODE_SSE_CHAT:
		b = event_open(h, 1);
		chunk_open(h, b, extra);
		buf_lit(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":");
		json_put_cstr(b, reason);
		buf_lit(b, "}]}");
		event_send(h, b, 1);
		break;
	case MODE_SSE_TEXT:
		b = event_open(h, 1);
		chunk_open(h, b, extra);
		buf_lit(b, "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":");
		json_put_cstr(b, reason);
		buf_lit(b, "}]}");
		event_send(h, b, 1);
		break;
	case MODE_NDJSON:
		b = event_open(h, 0);
		buf_lit(b, "{\"request_id\":");
		json_put_cstr(b, gen_id(h));
		buf_lit(b, ",\"done\":true,\"text\":");
		json_put_str(b, text, len);
		buf_lit(b, ",\"finish_reason\":");
		json_put_cstr(b, reason);
		buf_lit(b, ",\"usage\":");
		json_put_usage(b, h, usage, text, len);
		buf_lit(b, "}");
		event_send(h, b, 0);
		wire_end(&h->w);
		return;
	default:
		break;
	}
	if (h->include_usage) {
		b = event_open(h, 1);
		chunk_open(h, b, extra);
		buf_lit(b, "],\"usage\":");
		json_put_usage(b, h, usage, text, len);
		buf_lit(b, "}");
		event_send(h, b, 1);
	}
	wire_body(&h->w, "data: [DONE]\n\n", 14);
	wire_end(&h->w);
}
