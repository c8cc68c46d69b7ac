/*
 * openai-sse.c -- unit test of the openai worker's server-sent events
 * parser (plugins/openai/sse.c): every stream is fed whole, byte by byte
 * and in pieces of every size, and must give the same events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/openai/sse.h"

static int failures, checks;

/* The events seen, as "D:data|" or "E:data|", and when to stop. */
struct seen {
	char buf[4096];
	size_t len;
	const char *stop_at;   /* data that makes the callback return `stop_with` */
	int stop_with;
};

static int
on_event(void *arg, enum sse_kind kind, const char *data, size_t len)
{
	struct seen *s = arg;
	int n = snprintf(s->buf + s->len, sizeof s->buf - s->len, "%c:%.*s|",
	    kind == SSE_ERROR ? 'E' : 'D', (int)len, data);
	if (n > 0)
		s->len += (size_t)n;
	if (s->stop_at != NULL && strlen(s->stop_at) == len && memcmp(s->stop_at, data, len) == 0)
		return s->stop_with;
	return 0;
}

/* Feeds `in` in pieces of `step` bytes (0: whole); returns the last result. */
static int
feed(const char *in, size_t step, struct seen *s, int end)
{
	struct sse p;
	int r = 0;
	size_t n = strlen(in), i = 0;
	memset(&p, 0, sizeof p);
	if (step == 0)
		step = n ? n : 1;
	while (i < n && r == 0) {
		size_t k = n - i < step ? n - i : step;
		r = sse_feed(&p, in + i, k, on_event, s);
		i += k;
	}
	if (r == 0 && end)
		r = sse_end(&p, on_event, s);
	sse_free(&p);
	return r;
}

/* check NAME INPUT WANT-EVENTS WANT-RESULT [stop_at stop_with] */
static void
check(const char *name, const char *in, const char *want, int want_r,
    const char *stop_at, int stop_with, int end)
{
	size_t n = strlen(in);
	for (size_t step = 0; step <= n; step++) {
		struct seen s = { .stop_at = stop_at, .stop_with = stop_with };
		int r = feed(in, step, &s, end);
		s.buf[s.len] = '\0';
		checks++;
		if (strcmp(s.buf, want) != 0 || r != want_r) {
			printf("not ok - %s (pieces of %zu): got '%s' (%d), want '%s' (%d)\n",
			    name, step, s.buf, r, want, want_r);
			failures++;
			return;
		}
	}
	printf("ok - %s\n", name);
}

int
main(void)
{
	check("one event", "data: {\"a\":1}\n\n", "D:{\"a\":1}|", 0, NULL, 0, 1);
	check("CRLF line ends", "data: x\r\n\r\ndata: y\r\n\r\n", "D:x|D:y|", 0, NULL, 0, 1);
	check("CR line ends", "data: x\r\rdata: y\r\r", "D:x|D:y|", 0, NULL, 0, 1);
	check("no space after the colon", "data:x\n\n", "D:x|", 0, NULL, 0, 1);
	check("only one space is removed", "data:  x\n\n", "D: x|", 0, NULL, 0, 1);
	check("data lines are joined", "data: a\ndata: b\n\n", "D:a\nb|", 0, NULL, 0, 1);
	check("comments and other fields", ": keep-alive\nid: 7\nretry: 10\nevent: message\n"
	    "data: x\n\n", "D:x|", 0, NULL, 0, 1);
	check("no data, no event", "event: ping\n\n: c\n\n", "", 0, NULL, 0, 1);
	check("an error event", "event: error\ndata: {\"e\":1}\n\ndata: ok\n\n",
	    "E:{\"e\":1}|D:ok|", 0, NULL, 0, 1);
	check("llama.cpp's error field", "error: {\"message\":\"m\"}\n\n",
	    "E:{\"message\":\"m\"}|", 0, NULL, 0, 1);
	check("an empty data line", "data\n\n", "D:|", 0, NULL, 0, 1);
	check("the last event without its blank line", "data: a\n\ndata: [DONE]",
	    "D:a|D:[DONE]|", 0, NULL, 0, 1);
	check("nothing dispatched before the end", "data: a\n", "", 0, NULL, 0, 0);
	check("[DONE] stops the stream", "data: a\n\ndata: [DONE]\n\ndata: late\n\n",
	    "D:a|D:[DONE]|", 1, "[DONE]", 1, 1);
	check("an error stops the stream", "data: a\n\ndata: bad\n\ndata: c\n\n",
	    "D:a|D:bad|", -1, "bad", -1, 1);
	check("empty input", "", "", 0, NULL, 0, 1);
	printf("# %d checks\n", checks);
	if (failures > 0) {
		printf("# %d of %d checks failed\n", failures, checks);
		return 1;
	}
	return 0;
}
