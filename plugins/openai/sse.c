/*
 * sse.c -- an incremental parser of server-sent events (text/event-stream).
 *
 * It follows WHATWG HTML, "Server-sent events", 9.2.6 "Interpreting an
 * event stream" (https://html.spec.whatwg.org/multipage/server-sent-events.html
 * #event-stream-interpretation):
 *
 *  - one UTF-8 byte order mark at the very start of the stream is dropped;
 *  - lines end with CRLF, LF or CR;
 *  - a line starting with ':' is a comment;
 *  - "name:value" is a field; one space after the colon is not part of the
 *    value; a line with no colon is a field name with an empty value;
 *  - "data" appends its value to the event's data, lines joined by LF;
 *    "event" sets the event's type, for that event only; "id" sets the
 *    last event id, kept from event to event, unless it holds a NUL;
 *    "retry" sets the reconnection time if it is all digits; any other
 *    field is ignored;
 *  - a blank line dispatches the event, unless its data is empty (no data
 *    line), and starts the next;
 *  - at the end of the stream, an event no blank line ended is discarded.
 *
 * Beyond the format, porch needs to know an error: "event: error", or
 * llama.cpp's "error: {...}" field line, whose value is data.  Bytes are
 * passed through as they come, not decoded: porch parses the data as
 * JSON, which must be UTF-8.
 *
 * Bytes arrive in pieces cut anywhere, a CRLF or a BOM included.  In the
 * common case, "data: {...}\n\n" whole in one piece, the data is handed
 * over where it lies, with no copy; only what must outlive a piece is
 * copied, into buffers kept from event to event.  An event's one data
 * line that came in many pieces (a long one) is not copied either: the
 * line's buffer becomes the data's, as it is, whatever its length.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

/* Makes room for `more` bytes and a NUL after [0, len).  0, or -1. */
static int
sse_room(char **buf, size_t *cap, size_t len, size_t more)
{
	if (*cap - len > more)
		return 0;
	size_t c = *cap ? *cap : 256;
	while (c - len <= more) {
		if (c > (size_t)-1 / 2)
			return -1;
		c *= 2;
	}
	char *b = realloc(*buf, c);
	if (b == NULL)
		return -1;
	*buf = b;
	*cap = c;
	return 0;
}

/* Appends [p, p + n) and a NUL.  0, or -1. */
static int
sse_append(char **buf, size_t *cap, size_t *len, const char *p, size_t n)
{
	if (sse_room(buf, cap, *len, n) != 0)
		return -1;
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* Sets the buffer to [p, p + n) and a NUL.  0, or -1. */
static int
sse_set(char **buf, size_t *cap, size_t *len, const char *p, size_t n)
{
	*len = 0;
	return sse_append(buf, cap, len, p, n);
}

static int
sse_field_is(const char *f, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(f, name, n) == 0;
}

/*
 * The data held by reference is copied into s->data: the piece it lies
 * in is about to go, or more data is to be joined to it.  0, or -1.
 */
static int
sse_keep(struct sse *s)
{
	if (s->dref == NULL)
		return 0;
	const char *p = s->dref;
	size_t n = s->dlen;
	s->dref = NULL;
	s->doff = 0;
	return sse_set(&s->data, &s->dcap, &s->dlen, p, n);
}

/* Appends to the data held in s->data.  0, or -1. */
static int
sse_data_add(struct sse *s, const char *p, size_t n)
{
	size_t end = s->doff + s->dlen;
	if (sse_append(&s->data, &s->dcap, &end, p, n) != 0)
		return -1;
	s->dlen += n;
	return 0;
}

/*
 * A data line's value.  The event's first, when it lies in the piece
 * being fed, is only pointed at: the blank line usually follows in the
 * same piece, and then it is never copied.  When it lies in s->line (it
 * came in several pieces), the two buffers trade places: a long event's
 * megabytes are not copied at its end, in one go.  0, or -1.
 */
static int
sse_data(struct sse *s, const char *v, size_t n, int in_place)
{
	if (!s->has_data && in_place) {
		s->dref = v;
		s->dlen = n;
		s->has_data = 1;
		return 0;
	}
	if (!s->has_data && !in_place) {
		/* v lies in s->line (sse_lines) */
		char *b = s->data;
		size_t cap = s->dcap;
		s->data = s->line;
		s->dcap = s->cap;
		s->line = b;
		s->cap = cap;
		s->doff = (size_t)(v - s->data);
		s->dlen = n;
		s->has_data = 1;
		return 0;
	}
	/* a later line, joined to the data by "\n" */
	if (sse_keep(s) != 0 || sse_data_add(s, "\n", 1) != 0 || sse_data_add(s, v, n) != 0)
		return -1;
	return 0;
}

/* "retry": all ASCII digits (and at least one), or ignored. */
static void
sse_retry(struct sse *s, const char *v, size_t n)
{
	long long ms = 0;
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return;
		int d = v[i] - '0';
		/* no limit in the format: a huge one saturates */
		ms = ms > (LLONG_MAX - d) / 10 ? LLONG_MAX : ms * 10 + d;
	}
	s->retry = ms;
	s->has_retry = 1;
}

/* One field, by its name.  0, or -1 (memory). */
static int
sse_field(struct sse *s, const char *f, size_t fn, const char *v, size_t vn, int in_place)
{
	if (sse_field_is(f, fn, "data"))
		return sse_data(s, v, vn, in_place);
	if (sse_field_is(f, fn, "event"))
		return sse_set(&s->type, &s->tcap, &s->tlen, v, vn);
	if (sse_field_is(f, fn, "id")) {
		/* a NUL would cut the id short wherever it is a C string */
		if (memchr(v, '\0', vn) != NULL)
			return 0;
		return sse_set(&s->id, &s->idcap, &s->idlen, v, vn);
	}
	if (sse_field_is(f, fn, "retry")) {
		sse_retry(s, v, vn);
		return 0;
	}
	if (sse_field_is(f, fn, "error")) {
		/* llama.cpp's: not in the format, but the error's text is there */
		s->error = 1;
		return sse_data(s, v, vn, in_place);
	}
	return 0;
}

static enum sse_kind
sse_kind(const struct sse *s)
{
	if (s->error || sse_field_is(s->type, s->tlen, "error"))
		return SSE_ERROR;
	return SSE_DATA;
}

/*
 * The blank line: hands over the event if it has data, then forgets it
 * (its type too; not the last event id).  Returns as the callback does.
 */
static int
sse_dispatch(struct sse *s, sse_event_fn *fn, void *arg)
{
	int r = 0;
	if (s->has_data) {
		const char *d = s->dref != NULL ? s->dref : s->data + s->doff;
		r = fn(arg, sse_kind(s), d, s->dlen);
	}
	s->dref = NULL;
	s->doff = s->dlen = 0;
	s->tlen = 0;
	s->has_data = 0;
	s->error = 0;
	return r;
}

/*
 * One line, without its end; in_place if it lies in the piece being fed
 * (not in s->line).  Returns as the callback does, or -2.
 */
static int
sse_line(struct sse *s, const char *line, size_t len, int in_place,
    sse_event_fn *fn, void *arg)
{
	if (len == 0)
		return sse_dispatch(s, fn, arg);
	if (line[0] == ':')
		return 0;
	const char *colon = memchr(line, ':', len);
	size_t flen = colon != NULL ? (size_t)(colon - line) : len;
	const char *value = colon != NULL ? colon + 1 : line + len;
	size_t vlen = (size_t)(line + len - value);
	if (vlen > 0 && value[0] == ' ') {
		value++;
		vlen--;
	}
	return sse_field(s, line, flen, value, vlen, in_place) != 0 ? -2 : 0;
}

/*
 * The stream's first bytes: a UTF-8 BOM is dropped.  Its bytes may come
 * in several pieces, so those seen are counted in s->bom until it is
 * whole, or is not one: then they are the first line's.  *used gets how
 * many of the n > 0 bytes were taken.  0, or -1 (memory).
 */
static int
sse_start(struct sse *s, const char *p, size_t n, size_t *used)
{
	static const char bom[] = "\xEF\xBB\xBF";
	size_t i = 0;
	while (i < n && s->bom < 3 && p[i] == bom[s->bom]) {
		i++;
		s->bom++;
	}
	*used = i;
	if (s->bom < 3 && i == n)
		return 0; /* the rest may be in the next piece */
	s->started = 1;
	if (s->bom == 3 || s->bom == 0)
		return 0;
	return sse_append(&s->line, &s->cap, &s->len, bom, s->bom);
}

/* The lines of a piece, past its start.  Returns as sse_line does. */
static int
sse_lines(struct sse *s, const char *p, size_t n, sse_event_fn *fn, void *arg)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && p[j] != '\n' && p[j] != '\r')
			j++;
		if (j == n) {
			/* a line not ended yet: kept for the next piece */
			if (sse_append(&s->line, &s->cap, &s->len, p + i, n - i) != 0)
				return -2;
			break;
		}
		const char *line = p + i;
		size_t len = j - i;
		int in_place = s->len == 0;
		if (!in_place) {
			if (sse_append(&s->line, &s->cap, &s->len, p + i, j - i) != 0)
				return -2;
			line = s->line;
			len = s->len;
		}
		int r = sse_line(s, line, len, in_place, fn, arg);
		s->len = 0;
		if (p[j] == '\r') {
			if (j + 1 == n)
				s->skip_lf = 1;
			else if (p[j + 1] == '\n')
				j++;
		}
		i = j + 1;
		if (r != 0) {
			s->used = i;
			return r;
		}
	}
	return 0;
}

static int
sse_stop(struct sse *s, int r)
{
	if (r != 0) {
		s->stopped = r == 1 ? 1 : -1; /* -2 (memory) is reported once */
		s->dref = NULL;               /* it points into a piece gone */
	}
	return r;
}

int
sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn *fn, void *arg)
{
	size_t skipped = 0;
	if (s->stopped)
		return s->stopped;
	if (n == 0)
		return 0;
	if (!s->started) {
		size_t used;
		if (sse_start(s, p, n, &used) != 0)
			return sse_stop(s, -2);
		p += used;
		n -= used;
		skipped += used;
	}
	if (s->skip_lf && n > 0) {
		s->skip_lf = 0;
		if (p[0] == '\n') {
			p++;
			n--;
			skipped++;
		}
	}
	int r = sse_lines(s, p, n, fn, arg);
	if (r == SSE_PAUSE) {
		/* a blank line ended the event, so nothing is held by reference */
		s->used += skipped;
		return r;
	}
	if (r == 0 && sse_keep(s) != 0)
		r = -2;
	return sse_stop(s, r);
}

int
sse_end(struct sse *s)
{
	if (s->stopped)
		return 0;
	int cut = s->has_data || (s->len > 0 && s->line[0] != ':') ||
	    (!s->started && s->bom > 0);
	s->len = 0;
	s->dref = NULL;
	s->doff = s->dlen = 0;
	s->tlen = 0;
	s->has_data = 0;
	s->error = 0;
	return cut;
}

const char *
sse_type(const struct sse *s, size_t *len)
{
	if (s->tlen == 0) {
		*len = 7;
		return "message";
	}
	*len = s->tlen;
	return s->type;
}

const char *
sse_last_id(const struct sse *s, size_t *len)
{
	*len = s->idlen;
	return s->idlen > 0 ? s->id : "";
}

void
sse_reset(struct sse *s)
{
	s->len = 0;
	s->doff = s->dlen = 0;
	s->dref = NULL;
	s->tlen = 0;
	s->idlen = 0;
	s->retry = 0;
	s->has_retry = 0;
	s->has_data = 0;
	s->error = 0;
	s->skip_lf = 0;
	s->started = 0;
	s->bom = 0;
	s->stopped = 0;
}

void
sse_free(struct sse *s)
{
	free(s->line);
	free(s->data);
	free(s->type);
	free(s->id);
	memset(s, 0, sizeof *s);
}
