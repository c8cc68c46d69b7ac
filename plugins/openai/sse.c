/*
 * sse.c -- an incremental parser of server-sent events (text/event-stream).
 *
 * The format (WHATWG HTML, "Server-sent events"): lines ended by CRLF, LF
 * or CR; "field: value" lines, the one space after the colon not part of
 * the value; lines starting with ':' are comments; a blank line ends an
 * event, whose data is its "data" lines joined by LF.  Only "data" and
 * "event" matter here, plus the "error" field llama.cpp's server writes.
 * Bytes arrive in pieces cut anywhere, a CRLF included.
 */
#include <stdlib.h>
#include <string.h>

#include "sse.h"

/* Makes room for `more` bytes and a NUL after [0, *len).  0, or -1. */
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

/* The blank line: hands over the event, if it has data, and forgets it. */
static int
sse_dispatch(struct sse *s, sse_event_fn *fn, void *arg)
{
	int r = 0;
	if (s->has_data)
		r = fn(arg, s->error ? SSE_ERROR : SSE_DATA, s->data, s->dlen);
	s->dlen = 0;
	s->has_data = 0;
	s->error = 0;
	return r;
}

static int
sse_field_is(const char *f, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(f, name, n) == 0;
}

/* One line, without its end.  Returns as the callback does, or -2. */
static int
sse_line(struct sse *s, const char *line, size_t len, sse_event_fn *fn, void *arg)
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
	if (sse_field_is(line, flen, "event")) {
		s->error = sse_field_is(value, vlen, "error");
		return 0;
	}
	if (sse_field_is(line, flen, "error"))
		s->error = 1;
	else if (!sse_field_is(line, flen, "data"))
		return 0; /* id, retry and unknown fields */
	if (s->has_data && sse_append(&s->data, &s->dcap, &s->dlen, "\n", 1) != 0)
		return -2;
	if (sse_append(&s->data, &s->dcap, &s->dlen, value, vlen) != 0)
		return -2;
	s->has_data = 1;
	return 0;
}

static int
sse_stop(struct sse *s, int r)
{
	if (r != 0)
		s->stopped = r == 1 ? 1 : -1; /* -2 (memory) is reported once */
	return r;
}

int
sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn *fn, void *arg)
{
	size_t i = 0;
	if (s->stopped)
		return s->stopped;
	if (s->skip_lf && n > 0) {
		s->skip_lf = 0;
		if (p[0] == '\n')
			i = 1;
	}
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
		if (s->len > 0) {
			if (sse_append(&s->line, &s->cap, &s->len, p + i, j - i) != 0)
				return -2;
			line = s->line;
			len = s->len;
		}
		int r = sse_line(s, line, len, fn, arg);
		s->len = 0;
		if (p[j] == '\r') {
			if (j + 1 == n)
				s->skip_lf = 1;
			else if (p[j + 1] == '\n')
				j++;
		}
		i = j + 1;
		if (r != 0)
			return sse_stop(s, r);
	}
	return 0;
}

int
sse_end(struct sse *s, sse_event_fn *fn, void *arg)
{
	if (s->stopped)
		return s->stopped;
	int r = 0;
	if (s->len > 0) {
		r = sse_line(s, s->line, s->len, fn, arg);
		s->len = 0;
	}
	if (r == 0)
		r = sse_dispatch(s, fn, arg);
	return sse_stop(s, r);
}

void
sse_reset(struct sse *s)
{
	s->len = 0;
	s->dlen = 0;
	s->has_data = 0;
	s->error = 0;
	s->skip_lf = 0;
	s->stopped = 0;
}

void
sse_free(struct sse *s)
{
	free(s->line);
	free(s->data);
	memset(s, 0, sizeof *s);
}
