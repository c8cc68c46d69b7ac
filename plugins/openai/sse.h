/*
 * sse.h -- an incremental parser of server-sent events (text/event-stream),
 * as WHATWG HTML 9.2.6 "Interpreting an event stream" says; see sse.c.
 */
#ifndef PORCH_OPENAI_SSE_H
#define PORCH_OPENAI_SSE_H

#include <stddef.h>

/* What an event carries, for the event callback. */
enum sse_kind {
	SSE_DATA = 1,  /* an ordinary event: its data lines, joined by "\n" */
	SSE_ERROR,     /* "event: error", or llama.cpp's "error: {...}" line */
};

/*
 * Called for each event a blank line ends, if it has data.  data is not
 * NUL-terminated, and is good only until the callback returns; it may
 * point into the piece being fed.  The event's type and the last event
 * id can be read meanwhile: see sse_type and sse_last_id.  Returns 0 to
 * go on, 1 to stop quietly (the stream's end, e.g. "[DONE]": the rest is
 * ignored), -1 to stop with an error the caller recorded, or SSE_PAUSE to
 * stop for now: sse_feed returns at once, and the data stays where it is
 * (in the parser's buffer, or the piece fed) until the rest is fed.
 */
typedef int sse_event_fn(void *arg, enum sse_kind kind, const char *data, size_t len);

#define SSE_PAUSE 2

/*
 * The parser's state between pieces of a stream.  Zero it to start;
 * sse_reset empties it for another stream and keeps its buffers, so that
 * once they have grown an event costs no allocation.
 */
struct sse {
	char *line;            /* a line not yet ended: [0, len) */
	size_t len, cap;
	char *data;            /* the event's data so far: [doff, doff + dlen) */
	size_t doff, dlen, dcap; /* ... of data, or [0, dlen) of dref */
	const char *dref;      /* a first data line still in the fed piece */
	char *type;            /* the "event" field's value: [0, tlen) */
	size_t tlen, tcap;
	char *id;              /* the last event id, kept from event to */
	size_t idlen, idcap;   /* ... event: [0, idlen), NUL-terminated */
	long long retry;       /* the last "retry" field, in ms, if has_retry */
	unsigned has_retry : 1;
	unsigned has_data : 1; /* a data field was seen since the last event */
	unsigned error : 1;    /* llama.cpp's "error" field was seen */
	unsigned skip_lf : 1;  /* the last byte was CR: a next LF ends no line */
	unsigned started : 1;  /* past the stream's first bytes (a BOM?) */
	unsigned bom : 2;      /* bytes of a BOM seen at the start so far */
	int stopped;           /* 0, or 1 or -1: what stopped the stream */
	size_t used;           /* SSE_PAUSE: bytes of the piece taken */
};

/*
 * Feeds n bytes of the stream, cut anywhere.  Returns 0; 1 or -1 when the
 * callback returned it (later bytes are ignored, and so is every later
 * call, which returns the same); -2 when out of memory (the stream is
 * then stopped as by -1); SSE_PAUSE when the callback returned it: s->used
 * of the n bytes were taken, and the rest is to be fed again later.
 */
int sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn *fn, void *arg);

/*
 * The stream has ended.  As the format says, what no blank line ended is
 * discarded: an event whose blank line never came is not dispatched
 * (some servers end with "data: [DONE]\n"; that is a malformed stream).
 * Returns 1 if something was so discarded (data lines, or a line that was
 * not ended and is not a comment), else 0; 0 too for a stream that was
 * stopped.  Feed nothing more before sse_reset.
 */
int sse_end(struct sse *s);

/*
 * For the callback: the event's type, "message" when no "event" field set
 * one, and the last event id, "" when none.  *len gets the length.
 */
const char *sse_type(const struct sse *s, size_t *len);
const char *sse_last_id(const struct sse *s, size_t *len);

void sse_reset(struct sse *s);
void sse_free(struct sse *s);

#endif /* PORCH_OPENAI_SSE_H */
