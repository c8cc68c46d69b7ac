/*
 * fake-upstream.c -- a fake OpenAI-compatible model server for the tests
 * and the benchmark of the openai worker.
 *
 *   fake-upstream -p PORTFILE [-P PIDFILE] [-s STATSFILE] [-l LOGFILE] [-t SECONDS]
 *                 [-b BLACKHOLE-PORTFILE]
 *
 * Listens on 127.0.0.1, on a port the kernel picks, and writes that port to
 * PORTFILE once it accepts connections (written whole: a reader that sees
 * the file sees the port).  Serves HTTP/1.1 with keep-alive on plain
 * sockets and poll(2), one process, one thread.  It answers
 * POST .../chat/completions and POST .../completions; what it answers
 * depends on the request body's "model":
 *
 *   ok (or any other)  "you said: " + the prompt (the last message's
 *                      content, or "prompt"), in one JSON body, or as
 *                      server-sent events word by word when "stream" is true
 *   slow-N             the same after N ms
 *   slow-stream        streamed, 20 ms between words
 *   echo-body          the answer is the request body itself
 *   big                an answer of 64 KiB
 *   close              ok, then closes the connection
 *   429                429, Retry-After: 2 and an OpenAI error body
 *   429-date           429, Retry-After as an HTTP date 30 s ahead
 *   500                500 with an OpenAI error body
 *   400, 401           400 or 401 with an OpenAI error body
 *   503                503, Retry-After: 1 and a text/plain body
 *   stall              reads the request, never answers
 *   stall-mid-stream   SSE headers and one word, then nothing
 *   reset              resets the connection (RST) without answering
 *   reset-mid-stream   SSE headers and two words, then RST
 *   bad-json           200 with a body that is not JSON
 *   no-choices         200 with JSON that has no "choices"
 *   bad-sse            a stream with one word, then "data: " not JSON
 *   no-done            a stream that ends without "data: [DONE]"
 *   error-event        a stream whose first event is {"error": ...}
 *   tool-stream        "ok" with a tool call, logprobs, system_fingerprint and
 *                      usage: streamed (the call in fragments) or whole
 *
 * STATSFILE, rewritten whole on every change, has "connections" (accepted
 * so far), "requests", "open" and "max_open" (most connections open at
 * once), one per line as "  \"key\": N,".  LOGFILE gets a line per request:
 * its number, its connection's, the path, the Authorization header and the
 * body.  It exits after SECONDS (default 600), so that a test that dies
 * cannot leave it behind; SIGTERM stops it at once.
 *
 * With -b it also listens on a second port, written to BLACKHOLE-PORTFILE,
 * whose accept queue it never empties and fills itself: Linux drops the
 * SYN of any further connection, so a client's connect times out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define MAX_CONNS 1024

enum end { END_KEEP, END_CLOSE, END_RESET, END_STALL };

/* Bytes to send at a time (monotonic seconds). */
struct piece {
	double at;
	char *data;
	size_t len;
};

struct conn {
	int fd;
	unsigned id;
	char *in;            /* bytes read, not yet a whole request */
	size_t inlen, incap;
	struct piece *pieces;
	size_t np, cap, next;
	enum end end;        /* after the last piece */
	int busy;            /* answering: no next request read yet */
};

struct server {
	int lfd;
	struct conn *conns[MAX_CONNS];
	size_t n;
	unsigned long long connections, requests, open, max_open;
	unsigned next_id;
	const char *stats_path, *log_path;
	FILE *log;
};

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fake-upstream: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes text to path whole: a temporary file renamed over it. */
static void
write_file(const char *path, const char *text)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		die("%s: %s", tmp, strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		die("%s: %s", path, strerror(errno));
}

/*
 * A listener whose accept queue is full (backlog 0, filled by our own
 * connections, never accepted): connecting to it times out.  Returns the
 * port.
 */
static unsigned
blackhole(void)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 0) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) != 0)
		die("blackhole listener: %s", strerror(errno));
	/* backlog 0 holds one; the others wait in SYN-SENT, taking no more */
	for (int i = 0; i < 3; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 &&
		    errno != EINPROGRESS))
			die("blackhole connect: %s", strerror(errno));
	}
	return ntohs(a.sin_port);
}

static void
stats(struct server *s)
{
	char text[512];
	if (s->stats_path == NULL)
		return;
	snprintf(text, sizeof text, "{\n  \"connections\": %llu,\n  \"requests\": %llu,\n"
	    "  \"open\": %llu,\n  \"max_open\": %llu\n}\n",
	    s->connections, s->requests, s->open, s->max_open);
	write_file(s->stats_path, text);
}

/* ---- building answers ------------------------------------------------------ */

static void
add(struct conn *c, double at, const char *data, size_t len)
{
	if (c->np == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		if ((c->pieces = realloc(c->pieces, c->cap * sizeof *c->pieces)) == NULL)
			die("out of memory");
	}
	struct piece *p = &c->pieces[c->np++];
	p->at = at;
	p->len = len;
	if ((p->data = malloc(len ? len : 1)) == NULL)
		die("out of memory");
	memcpy(p->data, data, len);
}

static void addf(struct conn *c, double at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
addf(struct conn *c, double at, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	add(c, at, s, (size_t)n);
	free(s);
}

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/* A whole answer with Content-Length. */
static void
answer(struct conn *c, double at, int status, const char *type, const char *extra,
    const char *body, size_t len)
{
	addf(c, at, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
	    status, reason(status), type, len, extra);
	add(c, at, body, len);
}

static void
answer_json(struct conn *c, double at, int status, const char *extra, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		die("out of memory");
	answer(c, at, status, "application/json", extra, s, strlen(s));
	free(s);
}

static void
sse_head(struct conn *c, double at)
{
	addf(c, at, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	    "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n");
}

/* One chunk of the chunked body holding text. */
static void
sse_raw(struct conn *c, double at, const char *text)
{
	addf(c, at, "%zx\r\n%s\r\n", strlen(text), text);
}

/* "data: JSON\n\n" for one streamed piece of text. */
static void
sse_word(struct conn *c, double at, int chat, const char *w, size_t n)
{
	json_t *j = chat ?
	    json_pack("{s:s,s:s,s:[{s:i,s:{s:s%},s:n}]}", "id", "chatcmpl-fake",
		"object", "chat.completion.chunk", "choices", "index", 0, "delta",
		"content", w, n, "finish_reason") :
	    json_pack("{s:s,s:s,s:[{s:i,s:s%,s:n}]}", "id", "cmpl-fake",
		"object", "text_completion", "choices", "index", 0, "text", w, n,
		"finish_reason");
	if (j == NULL)
		die("json_pack");
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	char *ev;
	if (s == NULL || asprintf(&ev, "data: %s\n\n", s) < 0)
		die("out of memory");
	sse_raw(c, at, ev);
	free(ev);
	free(s);
}

/* Pieces of text, a space going with the word after it. */
static size_t
next_word(const char *t, size_t len, size_t i)
{
	size_t j = i;
	while (j < len && t[j] == ' ')
		j++;
	while (j < len && t[j] != ' ')
		j++;
	return j;
}

/*
 * Streams text word by word, `gap` s apart; stops after `words` words if
 * that is not 0 (the caller ends the connection), else ends the stream
 * (with [DONE] unless no_done).
 */
static double
stream_text(struct conn *c, double at, int chat, const char *text, double gap,
    size_t words, int no_done)
{
	size_t len = strlen(text), i = 0, k = 0;
	sse_head(c, at);
	if (chat)
		sse_raw(c, at, "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\","
		    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
		    "\"finish_reason\":null}]}\n\n");
	while (i < len) {
		size_t j = next_word(text, len, i);
		sse_word(c, at, chat, text + i, j - i);
		i = j;
		at += gap;
		if (words != 0 && ++k == words)
			return at;
	}
	sse_raw(c, at, chat ?
	    "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\","
	    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" :
	    "data: {\"id\":\"cmpl-fake\",\"object\":\"text_completion\","
	    "\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n");
	/* a usage event, as with stream_options.include_usage: no choices */
	sse_raw(c, at, "data: {\"id\":\"fake\",\"choices\":[],\"usage\":{\"total_tokens\":3}}\n\n");
	if (!no_done)
		sse_raw(c, at, "data: [DONE]\n\n");
	addf(c, at, "0\r\n\r\n");
	return at;
}

static void
answer_text(struct conn *c, double at, int chat, int stream, const char *text)
{
	if (stream) {
		stream_text(c, at, chat, text, 0, 0, 0);
		return;
	}
	json_t *j = chat ?
	    json_pack("{s:s,s:s,s:[{s:i,s:{s:s,s:s},s:s}],s:{s:i}}", "id", "chatcmpl-fake",
		"object", "chat.completion", "choices", "index", 0, "message", "role",
		"assistant", "content", text, "finish_reason", "stop", "usage",
		"total_tokens", 3) :
	    json_pack("{s:s,s:s,s:[{s:i,s:s,s:s}]}", "id", "cmpl-fake", "object",
		"text_completion", "choices", "index", 0, "text", text, "finish_reason", "stop");
	if (j == NULL)
		die("json_pack");
	answer_json(c, at, 200, "", j);
}

static void
answer_error(struct conn *c, double at, int status, const char *extra, const char *msg)
{
	json_t *j = json_pack("{s:{s:s,s:s,s:n}}", "error", "message", msg, "type",
	    status == 429 ? "requests" : "server_error", "code");
	if (j == NULL)
		die("json_pack");
	answer_json(c, at, status, extra, j);
}

/* The prompt of a request body: the last message's content, or "prompt". */
static const char *
prompt_of(json_t *body, int chat)
{
	if (!chat) {
		json_t *p = json_object_get(body, "prompt");
		return json_is_string(p) ? json_string_value(p) : "";
	}
	json_t *msgs = json_object_get(body, "messages");
	json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
	json_t *content = json_object_get(last, "content");
	return json_is_string(content) ? json_string_value(content) : "";
}

static void
handle(struct server *s, struct conn *c, const char *path, const char *auth,
    const char *body, size_t blen)
{
	double t = now_s();
	s->requests++;
	stats(s);
	if (s->log != NULL) {
		fprintf(s->log, "%llu conn=%u %s auth=[%s] %.*s\n", s->requests, c->id, path,
		    auth, (int)blen, body);
		fflush(s->log);
	}
	c->end = END_KEEP;
	size_t plen = strcspn(path, "?"); /* the query (a client's counter) is ignored */
	int chat = plen >= 17 && strncmp(path + plen - 17, "/chat/completions", 17) == 0;
	int comp = !chat && plen >= 12 && strncmp(path + plen - 12, "/completions", 12) == 0;
	if (!chat && !comp) {
		answer_error(c, t, 404, "", "no such endpoint");
		return;
	}
	json_error_t jerr;
	json_t *j = json_loadb(body, blen, 0, &jerr);
	if (!json_is_object(j)) {
		answer_error(c, t, 400, "", "the body is not a JSON object");
		json_decref(j);
		return;
	}
	json_t *m = json_object_get(j, "model");
	const char *model = json_is_string(m) ? json_string_value(m) : "ok";
	int stream = json_is_true(json_object_get(j, "stream"));
	char *text;
	if (asprintf(&text, "you said: %s", prompt_of(j, chat)) < 0)
		die("out of memory");

	if (strncmp(model, "slow-", 5) == 0 && strcmp(model, "slow-stream") != 0) {
		answer_text(c, t + atof(model + 5) / 1000., chat, stream, text);
	} else if (strcmp(model, "slow-stream") == 0) {
		stream_text(c, t, chat, text, 0.02, 0, 0);
	} else if (strcmp(model, "echo-body") == 0) {
		char *b = strndup(body, blen);
		answer_text(c, t, chat, stream, b);
		free(b);
	} else if (strcmp(model, "big") == 0) {
		char *b = malloc(65537);
		memset(b, 'x', 65536);
		b[65536] = '\0';
		answer_text(c, t, chat, stream, b);
		free(b);
	} else if (strcmp(model, "close") == 0) {
		answer_text(c, t, chat, stream, text);
		c->end = END_CLOSE;
	} else if (strcmp(model, "429") == 0) {
		answer_error(c, t, 429, "Retry-After: 2\r\n",
		    "Rate limit reached for requests");
	} else if (strcmp(model, "429-date") == 0) {
		char extra[128];
		time_t when = time(NULL) + 30;
		struct tm tm;
		gmtime_r(&when, &tm);
		strftime(extra, sizeof extra, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		answer_error(c, t, 429, extra, "Rate limit reached for tokens");
	} else if (strcmp(model, "500") == 0) {
		answer_error(c, t, 500, "", "internal boom");
	} else if (strcmp(model, "400") == 0) {
		answer_error(c, t, 400, "", "bad request");
	} else if (strcmp(model, "401") == 0) {
		answer_error(c, t, 401, "", "invalid api key");
	} else if (strcmp(model, "503") == 0) {
		static const char b[] = "Service Unavailable\n";
		answer(c, t, 503, "text/plain", "Retry-After: 1\r\n", b, sizeof b - 1);
	} else if (strcmp(model, "stall") == 0) {
		c->end = END_STALL;
	} else if (strcmp(model, "stall-mid-stream") == 0) {
		stream_text(c, t, chat, text, 0, 1, 0);
		c->end = END_STALL;
	} else if (strcmp(model, "reset") == 0) {
		c->end = END_RESET;
	} else if (strcmp(model, "reset-mid-stream") == 0) {
		stream_text(c, t, chat, text, 0.01, 2, 0);
		c->end = END_RESET;
	} else if (strcmp(model, "bad-json") == 0) {
		static const char b[] = "{\"choices\": [{\"message\": {\"content\": \"cut";
		answer(c, t, 200, "application/json", "", b, sizeof b - 1);
	} else if (strcmp(model, "no-choices") == 0) {
		static const char b[] = "{\"id\":\"x\",\"object\":\"chat.completion\"}";
		answer(c, t, 200, "application/json", "", b, sizeof b - 1);
	} else if (strcmp(model, "bad-sse") == 0) {
		sse_head(c, t);
		sse_word(c, t, chat, "you", 3);
		sse_raw(c, t, "data: this is not json\n\n");
		sse_raw(c, t, "data: [DONE]\n\n");
		addf(c, t, "0\r\n\r\n");
	} else if (strcmp(model, "no-done") == 0) {
		stream_text(c, t, chat, text, 0, 0, 1);
	} else if (strcmp(model, "error-event") == 0) {
		sse_head(c, t);
		sse_raw(c, t, "data: {\"error\":{\"message\":\"model overloaded\",\"code\":503}}\n\n");
		addf(c, t, "0\r\n\r\n");
	} else if (strcmp(model, "tool-stream") == 0) {
		/* "ok", a tool call in fragments, logprobs, extras and usage:
		 * streamed, or as one answer */
#define TS_CHUNK(x) "{\"id\":\"t\",\"object\":\"chat.completion.chunk\",\"created\":1," \
	"\"model\":\"tool-stream\",\"system_fingerprint\":\"fp_t\"," x "}"
#define TS_CHOICE(x) TS_CHUNK("\"choices\":[{\"index\":0," x "}]")
#define TS_CALL(x) TS_CHOICE("\"delta\":{\"tool_calls\":[{\"index\":0," x "}]}")
		static const char *const ev[] = {
			TS_CHOICE("\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"),
			TS_CHOICE("\"delta\":{\"content\":\"ok\"},\"logprobs\":{\"content\":"
			    "[{\"token\":\"ok\",\"logprob\":-0.5}]}"),
			TS_CALL("\"id\":\"call_1\",\"type\":\"function\",\"function\":"
			    "{\"name\":\"get_weather\",\"arguments\":\"\"}"),
			TS_CALL("\"function\":{\"arguments\":\"{\\\"ci\"}"),
			TS_CALL("\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}"),
			TS_CHOICE("\"delta\":{},\"finish_reason\":\"tool_calls\""),
			TS_CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9,"
			    "\"total_tokens\":12,\"completion_tokens_details\":{\"reasoning_tokens\":0}}"),
		};
		static const char whole[] = "{\"id\":\"t\",\"object\":\"chat.completion\","
		    "\"created\":1,\"model\":\"tool-stream\",\"system_fingerprint\":\"fp_t\","
		    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\","
		    "\"refusal\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
		    "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
		    "\"logprobs\":{\"content\":[{\"token\":\"ok\",\"logprob\":-0.5}]},"
		    "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,"
		    "\"completion_tokens\":9,\"total_tokens\":12,"
		    "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}";
#undef TS_CALL
#undef TS_CHOICE
#undef TS_CHUNK
		if (!stream) {
			answer(c, t, 200, "application/json", "", whole, sizeof whole - 1);
		} else {
			sse_head(c, t);
			for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
				char e[1024];
				snprintf(e, sizeof e, "data: %s\n\n", ev[i]);
				sse_raw(c, t, e);
			}
			sse_raw(c, t, "data: [DONE]\n\n");
			addf(c, t, "0\r\n\r\n");
		}
	} else {
		answer_text(c, t, chat, stream, text);
	}
	free(text);
	json_decref(j);
}

/* ---- connections ------------------------------------------------------------ */

static void
conn_close(struct server *s, size_t i, int reset)
{
	struct conn *c = s->conns[i];
	if (reset) {
		struct linger l = { 1, 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	close(c->fd);
	for (size_t k = c->next; k < c->np; k++)
		free(c->pieces[k].data);
	free(c->pieces);
	free(c->in);
	free(c);
	s->conns[i] = s->conns[--s->n];
	s->open--;
	stats(s);
}

/* Finds a header's value in [p, end); copies it to out. */
static int
header(const char *p, const char *end, const char *name, char *out, size_t outlen)
{
	size_t k = strlen(name);
	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > k && p[k] == ':' && strncasecmp(p, name, k) == 0) {
			const char *v = p + k + 1;
			while (v < eol && *v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(eol - v), v);
			return 1;
		}
		p = eol + 2;
	}
	return 0;
}

/* Answers the next whole request read, if there is one. */
static void
conn_parse(struct server *s, struct conn *c)
{
	if (c->busy)
		return;
	char *head_end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
	if (head_end == NULL)
		return;
	const char *line_end = memmem(c->in, c->inlen, "\r\n", 2);
	char method[16], path[1024], clen[32] = "0", auth[512] = "";
	if (sscanf(c->in, "%15s %1023s", method, path) != 2)
		snprintf(path, sizeof path, "?");
	header(line_end + 2, head_end + 2, "content-length", clen, sizeof clen);
	header(line_end + 2, head_end + 2, "authorization", auth, sizeof auth);
	size_t hlen = (size_t)(head_end + 4 - c->in);
	size_t blen = strtoul(clen, NULL, 10);
	if (c->inlen < hlen + blen)
		return;
	for (size_t k = c->next; k < c->np; k++)
		free(c->pieces[k].data);
	c->np = c->next = 0;
	c->busy = 1;
	handle(s, c, path, auth, c->in + hlen, blen);
	memmove(c->in, c->in + hlen + blen, c->inlen - hlen - blen);
	c->inlen -= hlen + blen;
}

/* Sends what is due.  Returns 0, or -1 if the connection is gone. */
static int
conn_send(struct server *s, size_t i, double now)
{
	struct conn *c = s->conns[i];
	while (c->busy && c->next < c->np && c->pieces[c->next].at <= now) {
		struct piece *p = &c->pieces[c->next];
		size_t off = 0;
		while (off < p->len) {
			ssize_t n = send(c->fd, p->data + off, p->len - off, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				conn_close(s, i, 0);
				return -1;
			}
			off += (size_t)n;
		}
		free(p->data);
		c->next++;
	}
	if (!c->busy || c->next < c->np)
		return 0;
	switch (c->end) {
	case END_KEEP:
		c->busy = 0;
		conn_parse(s, c); /* a request sent early */
		return 0;
	case END_CLOSE:
		conn_close(s, i, 0);
		return -1;
	case END_RESET:
		conn_close(s, i, 1);
		return -1;
	case END_STALL:
		return 0;
	}
	return 0;
}

static void
accept_all(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (s->n == MAX_CONNS) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = calloc(1, sizeof *c);
		if (c == NULL)
			die("out of memory");
		c->fd = fd;
		c->id = ++s->next_id;
		s->conns[s->n++] = c;
		s->connections++;
		if (++s->open > s->max_open)
			s->max_open = s->open;
		stats(s);
	}
}

/* Reads what came.  Returns 0, or -1 if the connection is gone. */
static int
conn_read(struct server *s, size_t i)
{
	struct conn *c = s->conns[i];
	if (c->incap - c->inlen < 65536) {
		c->incap = c->incap ? 2 * c->incap : 65536 * 2;
		if ((c->in = realloc(c->in, c->incap)) == NULL)
			die("out of memory");
	}
	ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen - 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		conn_close(s, i, 0);
		return -1;
	}
	c->inlen += (size_t)n;
	c->in[c->inlen] = '\0';
	conn_parse(s, c);
	return 0;
}

int
main(int argc, char **argv)
{
	struct server s;
	const char *port_path = NULL, *pid_path = NULL, *hole_path = NULL;
	double lifetime = 600;
	int opt;
	memset(&s, 0, sizeof s);
	while ((opt = getopt(argc, argv, "p:P:s:l:t:b:")) != -1) {
		switch (opt) {
		case 'p': port_path = optarg; break;
		case 'P': pid_path = optarg; break;
		case 's': s.stats_path = optarg; break;
		case 'l': s.log_path = optarg; break;
		case 't': lifetime = atof(optarg); break;
		case 'b': hole_path = optarg; break;
		default:
			fprintf(stderr, "usage: fake-upstream -p PORTFILE [-P PIDFILE] "
			    "[-s STATSFILE] [-l LOGFILE] [-t SECONDS] [-b BLACKHOLE-PORTFILE]\n");
			return 2;
		}
	}
	if (port_path == NULL)
		die("-p PORTFILE is required");
	if (s.log_path != NULL && (s.log = fopen(s.log_path, "a")) == NULL)
		die("%s: %s", s.log_path, strerror(errno));

	s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	socklen_t alen = sizeof a;
	if (s.lfd < 0 || bind(s.lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(s.lfd, 511) != 0 || getsockname(s.lfd, (struct sockaddr *)&a, &alen) != 0)
		die("listen on 127.0.0.1: %s", strerror(errno));
	char text[64];
	stats(&s);
	if (pid_path != NULL) {
		snprintf(text, sizeof text, "%ld\n", (long)getpid());
		write_file(pid_path, text);
	}
	if (hole_path != NULL) {
		snprintf(text, sizeof text, "%u\n", blackhole());
		write_file(hole_path, text);
	}
	snprintf(text, sizeof text, "%u\n", (unsigned)ntohs(a.sin_port));
	write_file(port_path, text);

	double end = now_s() + lifetime;
	struct pollfd fds[MAX_CONNS + 1];
	for (;;) {
		double now = now_s();
		if (now >= end)
			break;
		double wait = end - now;
		for (size_t i = 0; i < s.n; i++) {
			struct conn *c = s.conns[i];
			if (c->busy && c->next < c->np && c->pieces[c->next].at - now < wait)
				wait = c->pieces[c->next].at - now;
		}
		fds[0].fd = s.lfd;
		fds[0].events = POLLIN;
		for (size_t i = 0; i < s.n; i++) {
			fds[i + 1].fd = s.conns[i]->fd;
			fds[i + 1].events = POLLIN;
			fds[i + 1].revents = 0;
		}
		size_t polled = s.n;
		int ms = wait <= 0 ? 0 : (int)(wait * 1000.) + 1;
		if (poll(fds, polled + 1, ms) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		/* back to front: closing moves the last connection into the gap */
		for (size_t i = polled; i-- > 0;) {
			if (fds[i + 1].revents != 0)
				(void)conn_read(&s, i);
		}
		now = now_s();
		for (size_t i = s.n; i-- > 0;)
			(void)conn_send(&s, i, now);
		if (fds[0].revents & POLLIN)
			accept_all(&s);
	}
	while (s.n > 0)
		conn_close(&s, s.n - 1, 0);
	close(s.lfd);
	if (s.log != NULL)
		fclose(s.log);
	return 0;
}
