/*
 * openai-sse.c -- unit test of the openai worker's server-sent events
 * parser (plugins/openai/sse.c), rule by rule of WHATWG HTML 9.2.6
 * "Interpreting an event stream".
 *
 * Every stream is fed whole, in pieces of every size (1: byte by byte)
 * and cut in two at every byte, with an empty piece before each piece,
 * and must give the same events.  Each piece is fed from a buffer of its
 * own that is scribbled over and freed right after: the parser may keep
 * no pointer into a piece once sse_feed returned.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/openai/sse.h"

static int failures, checks;

/* A stream and what it must give. */
struct t {
	const char *name;
	const char *in;
	size_t n;             /* in's length if it holds a NUL; 0: strlen(in) */
	const char *want;     /* see struct seen */
	int r;                /* what the last sse_feed returns */
	const char *stop_at;  /* data that makes the callback return stop_with */
	int stop_with;
	int no_end;           /* sse_end is not called */
	int meta;             /* events show their type and the last event id */
};

/*
 * What a run gave: "D:data|" per event ("E:" for SSE_ERROR; with meta,
 * "D(type;id):data|"), then "CUT|" if sse_end discarded something, then
 * "R:ms|" if a retry field set the reconnection time.
 */
struct seen {
	char buf[4096];
	size_t len;
	const struct t *t;
	const struct sse *p;
};

static void put(struct seen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct seen *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(s->buf + s->len, sizeof s->buf - s->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->len += (size_t)n < sizeof s->buf - s->len ? (size_t)n : sizeof s->buf - s->len - 1;
}

static int
on_event(void *arg, enum sse_kind kind, const char *data, size_t len)
{
	struct seen *s = arg;
	const struct t *t = s->t;
	put(s, "%c", kind == SSE_ERROR ? 'E' : 'D');
	if (t->meta) {
		size_t tn, idn;
		const char *type = sse_type(s->p, &tn);
		const char *id = sse_last_id(s->p, &idn);
		put(s, "(%.*s;%.*s)", (int)tn, type, (int)idn, id);
	}
	put(s, ":%.*s|", (int)len, data);
	if (t->stop_at != NULL && strlen(t->stop_at) == len && memcmp(t->stop_at, data, len) == 0)
		return t->stop_with;
	return 0;
}

/* Feeds an empty piece, then [in, in + k) from a copy it then spoils. */
static int
feed_piece(struct sse *p, const char *in, size_t k, struct seen *s)
{
	char *b = malloc(k + 1);
	if (b == NULL)
		abort();
	memcpy(b, in, k);
	sse_feed(p, b, 0, on_event, s);
	int r = sse_feed(p, b, k, on_event, s);
	memset(b, '#', k);
	free(b);
	return r;
}

/* Feeds t's stream in pieces ending at ends[0..nends).  The last result. */
static int
run(const struct t *t, const size_t *ends, size_t nends, struct seen *s)
{
	struct sse p;
	memset(&p, 0, sizeof p);
	s->t = t;
	s->p = &p;
	int r = 0;
	size_t at = 0;
	for (size_t k = 0; k < nends; k++) {
		r = feed_piece(&p, t->in + at, ends[k] - at, s);
		at = ends[k];
	}
	if (!t->no_end && sse_end(&p) != 0)
		put(s, "CUT|");
	if (p.has_retry)
		put(s, "R:%lld|", p.retry);
	sse_free(&p);
	return r;
}

static void
print_escaped(const char *p)
{
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\n')
			printf("\\n");
		else if (c == '\r')
			printf("\\r");
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02X", c);
		else
			putchar(c);
	}
}

/* One run against the want; 0, or -1 after saying how it failed. */
static int
try(const struct t *t, const size_t *ends, size_t nends, const char *how, size_t arg)
{
	struct seen s = { .len = 0 };
	int r = run(t, ends, nends, &s);
	s.buf[s.len] = '\0';
	checks++;
	if (strcmp(s.buf, t->want) == 0 && r == t->r)
		return 0;
	printf("not ok - %s (%s %zu): got '", t->name, how, arg);
	print_escaped(s.buf);
	printf("' (%d), want '", r);
	print_escaped(t->want);
	printf("' (%d)\n", t->r);
	failures++;
	return -1;
}

static void
check(const struct t *t)
{
	size_t n = t->n ? t->n : strlen(t->in), ends[512], nends;
	if (n >= sizeof ends / sizeof ends[0])
		abort();
	for (size_t step = 0; step <= n; step++) {
		size_t k = step ? step : n ? n : 1;
		nends = 0;
		for (size_t at = 0; at < n; at += k)
			ends[nends++] = at + k < n ? at + k : n;
		if (try(t, ends, nends, "pieces of", step) != 0)
			return;
	}
	for (size_t cut = 1; cut < n; cut++) {
		ends[0] = cut;
		ends[1] = n;
		if (try(t, ends, 2, "cut at", cut) != 0)
			return;
	}
	printf("ok - %s\n", t->name);
}

#define CHECK(...) check(&(struct t){ __VA_ARGS__ })

/* ---- the common case costs no copy ---------------------------------------- */

struct span {
	const char *lo, *hi;   /* the piece fed */
	int events, outside;   /* events, and those whose data is not in it */
};

static int
on_span(void *arg, enum sse_kind kind, const char *data, size_t len)
{
	struct span *sp = arg;
	(void)kind;
	sp->events++;
	if (data < sp->lo || data + len > sp->hi)
		sp->outside++;
	return 0;
}

/*
 * Whole events in one piece: each event's data is handed over where it
 * lies in the piece, and neither the line nor the data buffer is ever
 * allocated, so nothing was copied.
 */
static void
check_in_place(const char *name, const char *in, int events)
{
	struct sse p;
	struct span sp = { in, in + strlen(in), 0, 0 };
	memset(&p, 0, sizeof p);
	int r = sse_feed(&p, in, strlen(in), on_span, &sp);
	int cut = sse_end(&p);
	checks++;
	if (r != 0 || cut != 0 || sp.events != events || sp.outside != 0 ||
	    p.cap != 0 || p.dcap != 0) {
		printf("not ok - %s: %d events (%d copied), line buffer %zu, data buffer %zu\n",
		    name, sp.events, sp.outside, p.cap, p.dcap);
		failures++;
	} else {
		printf("ok - %s\n", name);
	}
	sse_free(&p);
}

/* ---- buffers are reused ----------------------------------------------------- */

/* Byte by byte, so that every buffer is used; then sse_end. */
static void
feed_bytes(struct sse *p, const char *in, struct seen *s)
{
	for (size_t i = 0; in[i] != '\0'; i++)
		sse_feed(p, in + i, 1, on_event, s);
	if (sse_end(p) != 0)
		put(s, "CUT|");
}

/*
 * A second stream after sse_reset gives the same events (its BOM is the
 * start of a stream again, the last event id is forgotten) and grows no
 * buffer: after warm-up, events cost no allocation.
 */
static void
check_reuse(void)
{
	static const struct t t = { .name = "reuse", .meta = 1 };
	const char *in = "\xEF\xBB\xBFid: 1\nevent: delta\ndata: a\ndata: b\n\n"
	    "data: c\r\n\r\nretry: 5\ndata: [DONE]";
	struct seen s1 = { .t = &t }, s2 = { .t = &t };
	struct sse p;
	memset(&p, 0, sizeof p);
	s1.p = s2.p = &p;
	feed_bytes(&p, in, &s1);
	size_t caps[4] = { p.cap, p.dcap, p.tcap, p.idcap };
	sse_reset(&p);
	int reset = p.has_retry == 0 && p.idlen == 0;
	feed_bytes(&p, in, &s2);
	s1.buf[s1.len] = s2.buf[s2.len] = '\0';
	const char *want = "D(delta;1):a\nb|D(message;1):c|CUT|";
	checks++;
	if (strcmp(s1.buf, want) != 0 || strcmp(s2.buf, want) != 0 || !reset ||
	    caps[0] != p.cap || caps[1] != p.dcap || caps[2] != p.tcap || caps[3] != p.idcap) {
		printf("not ok - buffers are reused after sse_reset: '");
		print_escaped(s1.buf);
		printf("' then '");
		print_escaped(s2.buf);
		printf("'\n");
		failures++;
	} else {
		printf("ok - buffers are reused after sse_reset\n");
	}
	sse_free(&p);
}

/* ---- pausing ---------------------------------------------------------------- */

/* What a paused run saw: each event, and whether its data was still as
 * handed over when sse_feed returned SSE_PAUSE. */
struct paused {
	struct seen s;
	const char *data;      /* the last event's data, and a copy of it */
	char copy[256];
	size_t len;
};

static int
on_pause(void *arg, enum sse_kind kind, const char *data, size_t len)
{
	struct paused *pz = arg;
	(void)kind;
	put(&pz->s, "D:%.*s|", (int)len, data);
	pz->data = data;
	pz->len = len < sizeof pz->copy ? len : sizeof pz->copy;
	memcpy(pz->copy, data, pz->len);
	return SSE_PAUSE;
}

/*
 * Every event pauses the parser: the rest of the piece is fed again from
 * where it stopped (s->used), and the events come as without pausing; the
 * data handed over stays as it was until then.  In pieces of every size.
 */
static void
check_pause(const char *name, const char *in, const char *want)
{
	size_t n = strlen(in);
	for (size_t k = 1; k <= n; k++) {
		struct paused pz = { .s = { .len = 0 } };
		struct sse p;
		int spoiled = 0;
		memset(&p, 0, sizeof p);
		for (size_t at = 0; at < n; at += k) {
			size_t m = at + k < n ? k : n - at, off = 0;
			char *b = malloc(m);
			if (b == NULL)
				abort();
			memcpy(b, in + at, m);
			while (off < m && sse_feed(&p, b + off, m - off, on_pause, &pz) == SSE_PAUSE) {
				spoiled |= memcmp(pz.data, pz.copy, pz.len) != 0;
				off += p.used;
			}
			memset(b, '#', m);
			free(b);
		}
		if (sse_end(&p) != 0)
			put(&pz.s, "CUT|");
		sse_free(&p);
		pz.s.buf[pz.s.len] = '\0';
		checks++;
		if (strcmp(pz.s.buf, want) != 0 || spoiled) {
			printf("not ok - %s (pieces of %zu): got '", name, k);
			print_escaped(pz.s.buf);
			printf("'%s\n", spoiled ? ", data changed while paused" : "");
			failures++;
			return;
		}
	}
	printf("ok - %s\n", name);
}

/*
 * An event's one long data line, come in many pieces, is handed over where
 * the line was put together: the line's buffer became the data's, and
 * nothing was copied at the end (the data buffer is the line's old one).
 */
static void
check_long_line(void)
{
	static char in[70000];
	struct span sp = { NULL, NULL, 0, 0 };
	struct sse p;
	memset(&p, 0, sizeof p);
	memcpy(in, "data: ", 6);
	memset(in + 6, 'x', sizeof in - 8);
	memcpy(in + sizeof in - 2, "\n\n", 2);
	size_t at = 0;
	int r = 0;
	while (r == 0 && at < sizeof in - 2) {
		size_t k = sizeof in - 2 - at < 4096 ? sizeof in - 2 - at : 4096;
		r = sse_feed(&p, in + at, k, on_span, &sp);
		at += k;
	}
	char *line = p.line; /* the long line, put together */
	sp.lo = line;
	sp.hi = line + p.cap;
	r |= sse_feed(&p, "\n\n", 2, on_span, &sp);
	checks++;
	if (r != 0 || sp.events != 1 || sp.outside != 0 || p.data != line) {
		printf("not ok - a long data line is handed over where it was put together\n");
		failures++;
	} else {
		printf("ok - a long data line is handed over where it was put together\n");
	}
	sse_free(&p);
}

int
main(void)
{
	/* line endings: CRLF, LF and CR, mixed, a CRLF cut anywhere */
	CHECK(.name = "one event", .in = "data: {\"a\":1}\n\n", .want = "D:{\"a\":1}|");
	CHECK(.name = "LF line ends", .in = "data: x\n\ndata: y\n\n", .want = "D:x|D:y|");
	CHECK(.name = "CRLF line ends (a CRLF cut between pieces is one line end)",
	    .in = "data: x\r\n\r\ndata: y\r\n\r\n", .want = "D:x|D:y|");
	CHECK(.name = "a CRLF cut between pieces ends no second line",
	    .in = "data: a\r\ndata: b\r\n\r\n", .want = "D:a\nb|");
	CHECK(.name = "CR line ends", .in = "data: x\r\rdata: y\r\r", .want = "D:x|D:y|");
	CHECK(.name = "mixed line ends", .in = "data: a\rdata: b\ndata: c\r\n\rdata: d\n\r",
	    .want = "D:a\nb\nc|D:d|");
	CHECK(.name = "CR then CRLF is two line ends", .in = "data: a\r\r\ndata: b\r\n\n",
	    .want = "D:a|D:b|");
	CHECK(.name = "LF then CR is two line ends", .in = "data: a\n\rdata: b\n\n",
	    .want = "D:a|D:b|");

	/* one byte order mark, at the very start only */
	CHECK(.name = "a leading BOM is dropped", .in = "\xEF\xBB\xBF" "data: x\n\n",
	    .want = "D:x|");
	CHECK(.name = "a leading BOM before a comment", .in = "\xEF\xBB\xBF: c\ndata: x\n\n",
	    .want = "D:x|");
	CHECK(.name = "only one BOM is dropped",
	    .in = "\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\ndata: y\n\n", .want = "D:y|");
	CHECK(.name = "a BOM later is ordinary bytes",
	    .in = "data: a\n\n\xEF\xBB\xBF" "data: b\n\n", .want = "D:a|");
	CHECK(.name = "a BOM in a value is data", .in = "data: \xEF\xBB\xBFx\n\n",
	    .want = "D:\xEF\xBB\xBFx|");
	CHECK(.name = "the start of a BOM is ordinary bytes",
	    .in = "\xEF\xBB" "data: x\n\ndata: y\n\n", .want = "D:y|");
	CHECK(.name = "the start of a BOM, then a line end",
	    .in = "\xEF\ndata: y\n\n", .want = "D:y|");
	CHECK(.name = "a stream of only a BOM", .in = "\xEF\xBB\xBF", .want = "");
	CHECK(.name = "a stream cut inside its BOM", .in = "\xEF\xBB", .want = "CUT|");

	/* comments */
	CHECK(.name = "comment lines are ignored",
	    .in = ": keep-alive\n:\n::data: x\n:data: x\n\ndata: y\n\n", .want = "D:y|");
	CHECK(.name = "a comment inside an event", .in = "data: a\n: c\ndata: b\n\n",
	    .want = "D:a\nb|");

	/* fields */
	CHECK(.name = "no space after the colon", .in = "data:x\n\n", .want = "D:x|");
	CHECK(.name = "only one space is removed", .in = "data:  x\n\n", .want = "D: x|");
	CHECK(.name = "a tab after the colon stays", .in = "data:\tx\n\n", .want = "D:\tx|");
	CHECK(.name = "trailing spaces stay", .in = "data: x \n\n", .want = "D:x |");
	CHECK(.name = "a colon in the value stays", .in = "data: a: b\n\n", .want = "D:a: b|");
	CHECK(.name = "a line without a colon: an empty data line", .in = "data\n\n",
	    .want = "D:|");
	CHECK(.name = "a colon and nothing: an empty data line", .in = "data:\n\n",
	    .want = "D:|");
	CHECK(.name = "two empty data lines", .in = "data\ndata\n\n", .want = "D:\n|");
	CHECK(.name = "field names are exact",
	    .in = "Data: a\nDATA: b\ndata : c\n data: d\ndatum: e\ndata: f\n\n", .want = "D:f|");
	CHECK(.name = "unknown fields are ignored", .in = "foo: bar\nfoo\ndata: x\nbar:\n\n",
	    .want = "D:x|");

	/* data, and the blank line that dispatches it */
	CHECK(.name = "data lines are joined by LF", .in = "data: a\ndata: b\n\n",
	    .want = "D:a\nb|");
	CHECK(.name = "an empty data line in the middle",
	    .in = "data: a\ndata\ndata: b\n\n", .want = "D:a\n\nb|");
	CHECK(.name = "an event without data is not dispatched",
	    .in = "event: ping\nid: 1\n\n: c\n\n", .want = "");
	CHECK(.name = "blank lines alone dispatch nothing", .in = "\n\n\r\n\r\r",
	    .want = "");
	CHECK(.name = "a long line over many pieces",
	    .in = "data: 0123456789012345678901234567890123456789\n\n",
	    .want = "D:0123456789012345678901234567890123456789|");

	/* event: the event's type, for that event only */
	CHECK(.name = "the event type is the event's only",
	    .in = "event: delta\ndata: 1\n\ndata: 2\n\n",
	    .want = "D(delta;):1|D(message;):2|", .meta = 1);
	CHECK(.name = "the event type is forgotten by an event without data",
	    .in = "event: delta\n\ndata: 2\n\n", .want = "D(message;):2|", .meta = 1);
	CHECK(.name = "the last event field wins",
	    .in = "event: a\nevent: b\ndata: x\n\n", .want = "D(b;):x|", .meta = 1);
	CHECK(.name = "an empty event type is message",
	    .in = "event: a\nevent\ndata: x\n\n", .want = "D(message;):x|", .meta = 1);

	/* id: the last event id, kept from event to event */
	CHECK(.name = "the last event id persists", .in = "id: 7\ndata: a\n\ndata: b\n\n",
	    .want = "D(message;7):a|D(message;7):b|", .meta = 1);
	CHECK(.name = "the id is the buffer's at the blank line",
	    .in = "data: a\nid: 9\n\n", .want = "D(message;9):a|", .meta = 1);
	CHECK(.name = "an id in an event without data persists",
	    .in = "id: 3\n\ndata: a\n\n", .want = "D(message;3):a|", .meta = 1);
	CHECK(.name = "an empty id empties the last event id",
	    .in = "id: 7\ndata: a\n\nid\ndata: b\n\n",
	    .want = "D(message;7):a|D(message;):b|", .meta = 1);
	CHECK(.name = "an id with a NUL is ignored",
	    .in = "id: 7\ndata: a\n\nid: 8\0x\ndata: b\n\n",
	    .n = sizeof "id: 7\ndata: a\n\nid: 8\0x\ndata: b\n\n" - 1,
	    .want = "D(message;7):a|D(message;7):b|", .meta = 1);

	/* retry: digits only */
	CHECK(.name = "retry sets the reconnection time", .in = "retry: 3000\ndata: x\n\n",
	    .want = "D:x|R:3000|");
	CHECK(.name = "retry not all digits is ignored",
	    .in = "retry: 3000\nretry: 30x\nretry: -1\nretry: \nretry\nretry:  5\n"
	    "retry: 1.5\nretry: +5\n\n", .want = "R:3000|");
	CHECK(.name = "a huge retry saturates", .in = "retry: 99999999999999999999\n\n",
	    .want = "R:9223372036854775807|");

	/* errors: "event: error", and llama.cpp's "error" field */
	CHECK(.name = "an error event", .in = "event: error\ndata: {\"e\":1}\n\ndata: ok\n\n",
	    .want = "E:{\"e\":1}|D:ok|");
	CHECK(.name = "an error event without data is not dispatched",
	    .in = "event: error\n\ndata: ok\n\n", .want = "D:ok|");
	CHECK(.name = "an error type replaced is no error",
	    .in = "event: error\nevent: delta\ndata: x\n\n", .want = "D:x|");
	CHECK(.name = "llama.cpp's error field", .in = "error: {\"message\":\"m\"}\n\n",
	    .want = "E:{\"message\":\"m\"}|");
	CHECK(.name = "llama.cpp's error field joins the data",
	    .in = "data: a\nerror: b\n\ndata: c\n\n", .want = "E:a\nb|D:c|");

	/* the end of the stream: an event not ended is discarded */
	CHECK(.name = "a last event without its blank line is discarded",
	    .in = "data: a\n\ndata: [DONE]\n", .want = "D:a|CUT|");
	CHECK(.name = "a last line without its end is discarded",
	    .in = "data: a\n\ndata: [DONE]", .want = "D:a|CUT|");
	CHECK(.name = "a last event without its blank line, CRLF",
	    .in = "data: a\r\n\r\ndata: [DONE]\r\n", .want = "D:a|CUT|");
	CHECK(.name = "a last field line without its end is discarded",
	    .in = "data: a\n\nid: 4", .want = "D:a|CUT|");
	CHECK(.name = "a stream ended between events", .in = "data: a\n\n", .want = "D:a|");
	CHECK(.name = "a last comment without its end is no event",
	    .in = "data: a\n\n: ping", .want = "D:a|");
	CHECK(.name = "last fields without data are no event",
	    .in = "data: a\n\nid: 4\nevent: x\n", .want = "D:a|");
	CHECK(.name = "nothing dispatched before the end", .in = "data: a\n", .want = "",
	    .no_end = 1);
	CHECK(.name = "empty input", .in = "", .want = "");

	/* the callback stops the stream */
	CHECK(.name = "[DONE] stops the stream",
	    .in = "data: a\n\ndata: [DONE]\n\ndata: late\n\ndata: cut",
	    .want = "D:a|D:[DONE]|", .r = 1, .stop_at = "[DONE]", .stop_with = 1);
	CHECK(.name = "an error stops the stream", .in = "data: a\n\ndata: bad\n\ndata: c\n\n",
	    .want = "D:a|D:bad|", .r = -1, .stop_at = "bad", .stop_with = -1);

	check_in_place("one whole event in one piece is not copied",
	    "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n", 1);
	check_in_place("whole events in one piece are not copied",
	    ": c\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\ndata: {\"a\":2}\n\n", 2);
	check_reuse();
	check_pause("SSE_PAUSE: events come in order, fed again from where it stopped",
	    "data: a\n\ndata: b\r\n\r\n: c\ndata: x\ndata: y\r\rdata: z\n\n",
	    "D:a|D:b|D:x\ny|D:z|");
	check_pause("SSE_PAUSE: a BOM, and a CR ending the event at a piece's end",
	    "\xEF\xBB\xBF" "data: a\r\r\ndata: b\n\ndata: c", "D:a|D:b|CUT|");
	check_long_line();

	printf("# %d checks\n", checks);
	if (failures > 0) {
		printf("# %d of %d checks failed\n", failures, checks);
		return 1;
	}
	return 0;
}
