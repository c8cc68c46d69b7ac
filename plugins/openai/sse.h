/* sse.h -- an incremental parser of server-sent events (text/event-stream). */
#ifndef PORCH_OPENAI_SSE_H
#define PORCH_OPENAI_SSE_H

#include <stddef.h>

/* What an event carries, for the event callback. */
enum sse_kind {
	SSE_DATA = 1,  /* an ordinary event: its data lines, joined by "\n" */
	SSE_ERROR,     /* "event: error", or llama.cpp's "error: {...}" line */
};

/*
 * Called for each complete event.  Returns 0 to go on, 1 to stop quietly
 * (the stream's end, e.g. "[DONE]": the rest is ignored) or -1 to stop
 * with an error the caller recorded.
 */
typedef int sse_event_fn(void *arg, enum sse_kind kind, const char *data, size_t len);

/*
 * The parser's state between pieces of a stream.  Zero it to start;
 * sse_reset empties it for another stream and keeps its buffers.
 */
struct sse {
	char *line;            /* a line not yet ended: [0, len) */
	size_t len, cap;
	char *data;            /* the event's data so far: [0, dlen) */
	size_t dlen, dcap;
	unsigned has_data : 1; /* a data field was seen since the last event */
	unsigned error : 1;    /* the event is an error event */
	unsigned skip_lf : 1;  /* the last byte was CR: a next LF ends no line */
	int stopped;           /* 0, or 1 or -1: what stopped the stream */
};

/*
 * Feeds n bytes of the stream.  Returns 0; 1 or -1 when the callback
 * returned it (later bytes are ignored, and so is every later call); -2
 * when out of memory.  Lines end with CRLF, LF or CR, as the format says.
 */
int sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn *fn, void *arg);

/*
 * The stream has ended: an event not closed by its blank line is
 * dispatched anyway (some servers end with "data: [DONE]\n").  Returns as
 * sse_feed does.
 */
int sse_end(struct sse *s, sse_event_fn *fn, void *arg);

void sse_reset(struct sse *s);
void sse_free(struct sse *s);

#endif /* PORCH_OPENAI_SSE_H */
