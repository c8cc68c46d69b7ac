/*
 * fake-upstream.c -- a fake OpenAI-compatible model server for the tests
 * and the benchmark of the openai worker.
 *
 *   fake-upstream -p PORTFILE [-P PIDFILE] [-s STATSFILE] [-l LOGFILE] [-j JSONFILE]
 *                 [-t SECONDS] [-b BLACKHOLE-PORTFILE]
 *                 [-m MODE] [-d MS] [-w MS] [-c CONTROLFILE]
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
 *   slow-first-N       the head at once, the body N ms later (the first
 *                      event of a stream, or a whole answer's JSON), then
 *                      as ok: a server's queue and prefill before the first
 *                      token
 *   slow-stream        streamed, 20 ms between words
 *   echo-body          the answer is the request body itself
 *   classify           {"category":"code","complexity":"simple"} when the
 *                      request asks for response_format json_object, else
 *                      "not asked for JSON" (the classify stage's tests)
 *   big                an answer of 64 KiB
 *   huge               an answer of 10 MiB (10485760 bytes: "abc...z"
 *                      repeated, a '"' and a newline every 64 bytes), as
 *                      one JSON body, or streamed as one server-sent event
 *                      holding all of it (then the end of the stream)
 *   close              ok, then closes the connection
 *   drop-next          ok; then the next request on this connection is
 *                      read (and counted) and the connection closed
 *                      without an answer: a keep-alive timeout that fired
 *                      as the request came
 *   chunked            ok as one JSON body sent with Transfer-Encoding:
 *                      chunked, in 3 chunks 10 ms apart (streamed: as ok)
 *   no-length          ok as one JSON body with neither Content-Length nor
 *                      chunks: it ends when the connection closes
 *   interim            "100 Continue" and "103 Early Hints" answers, then
 *                      ok (whole), the heads cut mid-line, 10 ms apart
 *   429-ms             429 with retry-after-ms: 1500.5 and Retry-After: 2,
 *                      the head cut inside "retry-after-ms", 10 ms apart
 *   429                429, Retry-After: 2 and an OpenAI error body
 *   429-date           429, Retry-After as an HTTP date 30 s ahead
 *   500                500 with an OpenAI error body
 *   400, 401           400 or 401 with an OpenAI error body
 *   401-key            401 whose message repeats the Authorization header's
 *                      key, as a careless server might
 *   403, 404, 413, 422 that status with an OpenAI error body (404: code
 *                      model_not_found)
 *   503                503, Retry-After: 1 and a text/plain body
 *   429-then-400       429 with an OpenAI error body, then 400 with a
 *                      text/plain one, and so on
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
 *   strict             the OpenAI API as it is: see below
 *
 * Error bodies are OpenAI's: {"error": {"message", "type", "param", "code"}}.
 *
 * "strict" (chat only) checks the request as OpenAI does, and refuses it
 * with 400 and an invalid_request_error naming the field (param) when:
 * messages is missing or empty; a message's role is not system, developer,
 * user, assistant, tool or function; its content is not a string, an array
 * of parts (text with "text", image_url with "image_url.url"; image parts
 * in user messages only) or null (assistant only); a part's type is
 * unknown; an assistant message's tool_calls are not each answered by the
 * tool messages right after it (tool_call_id); a tool message answers no
 * tool call of the assistant message before it; a tool is not a function
 * with a name; stream_options is set without stream true; top_logprobs is
 * set without logprobs true; n is not 1 to 128.  Then it answers:
 *   - a tool call, when the request has tools (and tool_choice is not
 *     "none") and the last message is a user message: content null,
 *     finish_reason "tool_calls", tool_calls [{id "call_1", type
 *     "function", function {name: tool_choice's function or the first
 *     tool's name, arguments: a JSON text with the tool's parameters' first
 *     property: {"city":"Paris"} (a number 42, a boolean true)}}];
 *   - else text: "The weather is: " + the content of a last tool message;
 *     "I saw N image(s), the first at " + the first url's first 24 bytes
 *     when the last user message has image_url parts; else "you said: " +
 *     the last message's text;
 *     with response_format json_object that text as {"answer": TEXT}, and
 *     with json_schema an object with the schema's properties (strings
 *     TEXT, numbers 42, booleans true, arrays [], objects {});
 *     with max_completion_tokens (or max_tokens) N under its word count,
 *     its first N words and finish_reason "length", else "stop";
 *   - n choices (the i-th from 2 on prefixed "choice i: ");
 *   - logprobs true: choices[].logprobs {"content": [{token, logprob,
 *     bytes, top_logprobs: top_logprobs entries, the token first}] one per
 *     word, "refusal": null}; else "logprobs": null;
 *   - usage: prompt_tokens = bytes of all messages' text and urls / 4 + 3
 *     (not a word count), completion_tokens = the answer's words (a tool
 *     call: 4 + arguments' bytes / 4) summed over the choices,
 *     total_tokens, prompt_tokens_details {cached_tokens 0, audio_tokens
 *     0}, completion_tokens_details {reasoning_tokens 0, audio_tokens 0,
 *     accepted_prediction_tokens 0, rejected_prediction_tokens 0};
 *   - "system_fingerprint": "fp_fake", and "service_tier" as asked.
 * Streamed: the same as chat.completion.chunk events: per choice a first
 * chunk with the role (and content "", or content null and the tool call
 * with index 0, id, type, function.name and arguments ""), then the words
 * one a chunk (each with its logprobs), or the tool call's arguments in 3
 * pieces (index and function.arguments), then a chunk with an empty delta
 * and finish_reason; with stream_options.include_usage every chunk has
 * "usage": null and a last chunk has "choices": [] and the usage; then
 * "data: [DONE]".
 *
 * STATSFILE, rewritten whole on every change, has "connections" (accepted
 * so far), "requests", "open", "max_open" (most connections open at
 * once) and "models" (GET .../models answered), one per line as
 * "  \"key\": N,".  LOGFILE gets a line per request:
 * its number, its connection's, the path, the Authorization header and the
 * body.  JSONFILE (-j) gets a JSON object per line per request, written
 * before it is answered: {"n", "conn", "path", "auth", "model", "body": the
 * body parsed (null if it is not JSON), "raw": the body's exact bytes as a
 * string (absent if they are not UTF-8)}.  GET .../_requests answers the
 * last 256 such records as {"total": N, "requests": [...]}, so that a
 * client can check what reached the upstream without the file.
 * It exits after SECONDS (default 600), so that a test that dies
 * cannot leave it behind; SIGTERM stops it at once.
 *
 * One instance's own behaviour, whatever the requests' "model" (for tests
 * that run several, as replicas of one model):
 *   -m MODE   every request is answered as if its model were MODE (any
 *             mode above: 500, stall, reset, slow-200 ...); "none" (the
 *             default) leaves it to the request
 *   -d MS     every answer waits MS ms more before its first byte (and
 *             a reset or close its end)
 *   -w MS     streamed words (ok, slow-*, stall-mid-stream, reset-mid-stream,
 *             no-done) come MS ms more apart
 *   -c FILE   a control file, read at every request when it changed (its
 *             mtime, size or inode: write it with a rename, or a different
 *             size, to be sure a change within a clock tick is seen).
 *             Lines "mode MODE", "delay MS" and "word-delay MS" override
 *             -m, -d and -w; what it does not say, or all when it is
 *             missing or empty, is the command line's.  So a test makes a
 *             replica fail with "mode 500" and brings it back with
 *             "mode none".  A line it cannot read is reported on stderr
 *             and ignored.
 * GET (any method) .../models answers, not counted as a request but as
 * "models" in STATSFILE, 200 with {"object": "list", "data": [{"id":
 * "fake", "object": "model", ...}]}: a health probe's target.  Under -m or
 * the control file's mode it fails likewise: an HTTP status mode (400,
 * 429, 500, 503 ...) answers that status, stall and stall-mid-stream
 * never answer, reset and reset-mid-stream reset the connection, slow-N
 * and slow-first-N answer N ms late; -d delays it too.
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
#include <sys/stat.h>
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
	int drop_next;       /* the next request is closed unanswered */
	double word_gap;     /* -w: s more between streamed words */
};

/* The instance's own behaviour: -m, -d, -w, or the control file's. */
struct behaviour {
	char mode[128];      /* "": the request's model */
	double delay;        /* s before every answer */
	double word_gap;     /* s more between streamed words */
};

struct server {
	int lfd;
	struct conn *conns[MAX_CONNS];
	size_t n;
	unsigned long long connections, requests, open, max_open, models;
	struct behaviour given;    /* the command line's */
	struct behaviour now;      /* that, with the control file's over it */
	const char *control_path;  /* -c */
	struct stat control_st;    /* the control file as last read */
	int control_seen;          /* it existed then */
	unsigned next_id;
	const char *stats_path, *log_path;
	FILE *log, *jlog;
	json_t *recent[256];       /* the last requests' records, a ring */
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
	    "  \"open\": %llu,\n  \"max_open\": %llu,\n  \"models\": %llu\n}\n",
	    s->connections, s->requests, s->open, s->max_open, s->models);
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
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
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
	gap += c->word_gap;
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

/* A JSON string, or null for NULL. */
static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* An OpenAI error body: {"error": {"message", "type", "param", "code"}}. */
static void
answer_oai_error(struct conn *c, double at, int status, const char *extra, const char *msg,
    const char *type, const char *param, const char *code)
{
	json_t *j = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", msg, "type", type,
	    "param", str_or_null(param), "code", str_or_null(code));
	if (j == NULL)
		die("json_pack");
	answer_json(c, at, status, extra, j);
}

static void
answer_error(struct conn *c, double at, int status, const char *extra, const char *msg)
{
	const char *type = status == 429 ? "requests" :
	    status >= 500 ? "server_error" : "invalid_request_error";
	const char *code = status == 401 ? "invalid_api_key" :
	    status == 429 ? "rate_limit_exceeded" : NULL;
	answer_oai_error(c, at, status, extra, msg, type, NULL, code);
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

/* ---- the "strict" model: OpenAI's checks and answers ----------------------- */

/* Why a request is refused: 400 invalid_request_error. */
struct refusal {
	char msg[512];
	char param[128];
	const char *code;
};

static int refuse(struct refusal *r, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
refuse(struct refusal *r, const char *param, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
	snprintf(r->param, sizeof r->param, "%s", param ? param : "");
	r->code = code;
	return -1;
}

static const char *
jtype(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* The ids of pending (unanswered) tool calls, comma-separated. */
static void
pending_ids(json_t *pending, char *out, size_t outlen)
{
	const char *k;
	json_t *v;
	size_t n = 0;
	out[0] = '\0';
	json_object_foreach(pending, k, v) {
		n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%s",
		    n ? ", " : "", k);
		if (n >= outlen)
			break;
	}
}

static int
strict_check_content(json_t *m, size_t i, const char *role, struct refusal *r)
{
	char param[128];
	json_t *content = json_object_get(m, "content");
	snprintf(param, sizeof param, "messages[%zu].content", i);
	if (json_is_string(content))
		return 0;
	if (content == NULL || json_is_null(content)) {
		if (strcmp(role, "assistant") == 0)
			return 0;
		return refuse(r, param, "invalid_type",
		    "Invalid value for '%s': expected a string or an array of parts, got null.", param);
	}
	if (!json_is_array(content))
		return refuse(r, param, "invalid_type",
		    "Invalid type for '%s': expected a string or an array of parts, but got %s instead.",
		    param, jtype(content));
	size_t k;
	json_t *part;
	json_array_foreach(content, k, part) {
		snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, k);
		json_t *type = json_object_get(part, "type");
		if (!json_is_object(part) || !json_is_string(type))
			return refuse(r, param, "invalid_type",
			    "Invalid content part '%s': expected an object with a 'type'.", param);
		const char *t = json_string_value(type);
		if (strcmp(t, "text") == 0) {
			if (!json_is_string(json_object_get(part, "text")))
				return refuse(r, param, "missing_required_parameter",
				    "Missing required parameter: '%s.text'.", param);
		} else if (strcmp(t, "image_url") == 0) {
			if (strcmp(role, "user") != 0)
				return refuse(r, param, "invalid_value",
				    "Invalid '%s': image parts are only allowed in messages with role 'user', "
				    "not '%s'.", param, role);
			json_t *iu = json_object_get(part, "image_url");
			if (!json_is_string(json_object_get(iu, "url")))
				return refuse(r, param, "missing_required_parameter",
				    "Missing required parameter: '%s.image_url.url'.", param);
		} else {
			snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, k);
			return refuse(r, param, "invalid_value",
			    "Invalid value: '%s'. Supported values are: 'text' and 'image_url'.", t);
		}
	}
	return 0;
}

/* 0 if the request passes OpenAI's checks, else -1 and why in r. */
static int
strict_check(json_t *req, struct refusal *r)
{
	static const char *roles[] = { "system", "developer", "user", "assistant", "tool",
		"function", NULL };
	char param[128], ids[256];
	json_t *msgs = json_object_get(req, "messages");
	if (msgs == NULL)
		return refuse(r, "messages", "missing_required_parameter",
		    "Missing required parameter: 'messages'.");
	if (!json_is_array(msgs))
		return refuse(r, "messages", "invalid_type",
		    "Invalid type for 'messages': expected an array, but got %s instead.", jtype(msgs));
	if (json_array_size(msgs) == 0)
		return refuse(r, "messages", "empty_array",
		    "Invalid 'messages': empty array. Expected an array with minimum length 1, "
		    "but got an empty array instead.");
	json_t *pending = json_object(); /* tool call id -> the assistant message's index */
	size_t asked_at = 0;
	size_t i;
	json_t *m;
	int rc = 0;
	json_array_foreach(msgs, i, m) {
		snprintf(param, sizeof param, "messages[%zu].role", i);
		json_t *rv = json_object_get(m, "role");
		if (!json_is_object(m) || !json_is_string(rv)) {
			rc = refuse(r, param, "missing_required_parameter",
			    "Missing required parameter: '%s'.", param);
			break;
		}
		const char *role = json_string_value(rv);
		int known = 0;
		for (const char **k = roles; *k != NULL; k++)
			known |= strcmp(*k, role) == 0;
		if (!known) {
			rc = refuse(r, param, "invalid_value",
			    "Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', "
			    "'function', 'tool', and 'developer'.", role);
			break;
		}
		if (strcmp(role, "tool") != 0 && json_object_size(pending) > 0) {
			pending_ids(pending, ids, sizeof ids);
			snprintf(param, sizeof param, "messages.[%zu].role", asked_at);
			rc = refuse(r, param, NULL,
			    "An assistant message with 'tool_calls' must be followed by tool messages "
			    "responding to each 'tool_call_id'. The following tool_call_ids did not have "
			    "response messages: %s", ids);
			break;
		}
		if ((rc = strict_check_content(m, i, role, r)) != 0)
			break;
		if (strcmp(role, "tool") == 0) {
			json_t *id = json_object_get(m, "tool_call_id");
			if (!json_is_string(id)) {
				snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
				rc = refuse(r, param, "missing_required_parameter",
				    "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
				    "'tool_call_id'.");
				break;
			}
			if (json_object_get(pending, json_string_value(id)) == NULL) {
				snprintf(param, sizeof param, "messages.[%zu].role", i);
				rc = refuse(r, param, NULL,
				    "Invalid parameter: messages with role 'tool' must be a response to a "
				    "preceeding message with 'tool_calls' (no tool call has the id '%s').",
				    json_string_value(id));
				break;
			}
			json_object_del(pending, json_string_value(id));
		}
		json_t *calls = json_object_get(m, "tool_calls");
		if (calls != NULL && strcmp(role, "assistant") == 0) {
			size_t k;
			json_t *tc;
			if (!json_is_array(calls) || json_array_size(calls) == 0) {
				snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
				rc = refuse(r, param, "invalid_type",
				    "Invalid '%s': expected a non-empty array.", param);
				break;
			}
			json_array_foreach(calls, k, tc) {
				json_t *f = json_object_get(tc, "function");
				json_t *id = json_object_get(tc, "id");
				snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu]", i, k);
				if (!json_is_string(id) || !json_is_string(json_object_get(f, "name")) ||
				    !json_is_string(json_object_get(f, "arguments")) ||
				    !json_is_string(json_object_get(tc, "type")) ||
				    strcmp(json_string_value(json_object_get(tc, "type")), "function") != 0) {
					rc = refuse(r, param, "invalid_value",
					    "Invalid '%s': want {id, type: 'function', function: {name, "
					    "arguments: a string}}.", param);
					break;
				}
				json_object_set_new(pending, json_string_value(id), json_integer((json_int_t)i));
			}
			if (rc != 0)
				break;
			asked_at = i;
		}
	}
	if (rc == 0 && json_object_size(pending) > 0) {
		pending_ids(pending, ids, sizeof ids);
		snprintf(param, sizeof param, "messages.[%zu].role", asked_at);
		rc = refuse(r, param, NULL,
		    "An assistant message with 'tool_calls' must be followed by tool messages "
		    "responding to each 'tool_call_id'. The following tool_call_ids did not have "
		    "response messages: %s", ids);
	}
	json_decref(pending);
	if (rc != 0)
		return rc;

	json_t *tools = json_object_get(req, "tools");
	if (tools != NULL) {
		size_t k;
		json_t *t;
		if (!json_is_array(tools))
			return refuse(r, "tools", "invalid_type",
			    "Invalid type for 'tools': expected an array, but got %s instead.", jtype(tools));
		json_array_foreach(tools, k, t) {
			json_t *type = json_object_get(t, "type");
			snprintf(param, sizeof param, "tools[%zu].function.name", k);
			if (!json_is_string(type) || strcmp(json_string_value(type), "function") != 0 ||
			    !json_is_string(json_object_get(json_object_get(t, "function"), "name")))
				return refuse(r, param, "missing_required_parameter",
				    "Missing required parameter: '%s'.", param);
		}
	}
	int stream = json_is_true(json_object_get(req, "stream"));
	json_t *so = json_object_get(req, "stream_options");
	if (so != NULL && !json_is_null(so) && !stream)
		return refuse(r, "stream_options", "invalid_value",
		    "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
	json_t *tl = json_object_get(req, "top_logprobs");
	if (tl != NULL && !json_is_null(tl)) {
		if (!json_is_integer(tl) || json_integer_value(tl) < 0 || json_integer_value(tl) > 20)
			return refuse(r, "top_logprobs", "invalid_value",
			    "Invalid 'top_logprobs': expected an integer from 0 to 20.");
		if (!json_is_true(json_object_get(req, "logprobs")))
			return refuse(r, "top_logprobs", "invalid_value",
			    "Invalid value for 'top_logprobs': 'logprobs' must be set to true "
			    "when 'top_logprobs' is used.");
	}
	json_t *n = json_object_get(req, "n");
	if (n != NULL && !json_is_null(n) &&
	    (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > 128))
		return refuse(r, "n", "invalid_value", "Invalid 'n': expected an integer from 1 to 128.");
	return 0;
}

/* A growing string. */
struct str {
	char *s;
	size_t len, cap;
};

static void
str_add(struct str *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = 2 * (b->len + n + 1);
		if ((b->s = realloc(b->s, b->cap)) == NULL)
			die("out of memory");
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* The text of a message (its text parts joined by a space); counts its
 * image parts in *images and keeps the first url in *url; adds the bytes
 * of its text and urls to *bytes. */
static void
message_text(json_t *m, struct str *out, size_t *images, const char **url, size_t *bytes)
{
	json_t *content = json_object_get(m, "content");
	str_add(out, "", 0);
	if (json_is_string(content)) {
		str_add(out, json_string_value(content), json_string_length(content));
		*bytes += json_string_length(content);
		return;
	}
	size_t k;
	json_t *part;
	json_array_foreach(content, k, part) {
		const char *t = json_string_value(json_object_get(part, "type"));
		if (t != NULL && strcmp(t, "text") == 0) {
			json_t *tx = json_object_get(part, "text");
			if (out->len > 0)
				str_add(out, " ", 1);
			str_add(out, json_string_value(tx), json_string_length(tx));
			*bytes += json_string_length(tx);
		} else if (t != NULL && strcmp(t, "image_url") == 0) {
			json_t *u = json_object_get(json_object_get(part, "image_url"), "url");
			if (*images == 0)
				*url = json_string_value(u);
			(*images)++;
			*bytes += json_string_length(u);
		}
	}
}

/* A value of a JSON schema's type: TEXT for strings. */
static json_t *
value_of_type(json_t *schema, const char *text)
{
	const char *t = json_string_value(json_object_get(schema, "type"));
	if (t == NULL)
		return json_string(text);
	if (strcmp(t, "number") == 0 || strcmp(t, "integer") == 0)
		return json_integer(42);
	if (strcmp(t, "boolean") == 0)
		return json_true();
	if (strcmp(t, "array") == 0)
		return json_array();
	if (strcmp(t, "object") == 0)
		return json_object();
	return json_string(text);
}

/* What the strict model answers to one request. */
struct strict {
	json_t *req;
	const char *model;
	char id[64];
	json_int_t created;
	int n, logprobs, top_logprobs, include_usage;
	const char *tool_name;   /* a tool call when not NULL */
	char *args;              /* its arguments, a JSON text */
	char *text;              /* else the answer's text */
	json_int_t prompt_tokens;
};

/* Builds the answer of a checked request. */
static void
strict_plan(struct strict *st, json_t *req, const char *model, unsigned long long nreq)
{
	memset(st, 0, sizeof *st);
	st->req = req;
	st->model = model;
	snprintf(st->id, sizeof st->id, "chatcmpl-fake-%llu", nreq);
	st->created = (json_int_t)time(NULL);
	json_t *n = json_object_get(req, "n");
	st->n = json_is_integer(n) ? (int)json_integer_value(n) : 1;
	st->logprobs = json_is_true(json_object_get(req, "logprobs"));
	json_t *tl = json_object_get(req, "top_logprobs");
	st->top_logprobs = json_is_integer(tl) ? (int)json_integer_value(tl) : 0;
	st->include_usage = json_is_true(json_object_get(json_object_get(req, "stream_options"),
	    "include_usage"));

	/* the prompt's size, and the last message */
	json_t *msgs = json_object_get(req, "messages");
	size_t bytes = 0, images = 0, i;
	const char *url = NULL;
	json_t *m;
	struct str last = { 0 };
	json_array_foreach(msgs, i, m) {
		size_t im = 0;
		const char *u = NULL;
		last.len = 0;
		message_text(m, &last, &im, &u, &bytes);
		images = im;
		url = u;
	}
	st->prompt_tokens = (json_int_t)(bytes / 4 + 3);
	json_t *lm = json_array_get(msgs, json_array_size(msgs) - 1);
	const char *role = json_string_value(json_object_get(lm, "role"));

	/* a tool call? */
	json_t *tools = json_object_get(req, "tools");
	json_t *choice = json_object_get(req, "tool_choice");
	int none = json_is_string(choice) && strcmp(json_string_value(choice), "none") == 0;
	if (strcmp(role, "user") == 0 && json_array_size(tools) > 0 && !none) {
		json_t *tool = json_array_get(tools, 0);
		const char *want = json_string_value(json_object_get(json_object_get(choice,
		    "function"), "name"));
		size_t k;
		json_t *t;
		json_array_foreach(tools, k, t) {
			const char *name = json_string_value(json_object_get(json_object_get(t,
			    "function"), "name"));
			if (want != NULL && strcmp(want, name) == 0)
				tool = t;
		}
		json_t *f = json_object_get(tool, "function");
		st->tool_name = json_string_value(json_object_get(f, "name"));
		json_t *props = json_object_get(json_object_get(f, "parameters"), "properties");
		json_t *args = json_object();
		void *it = json_object_iter(props);
		if (it != NULL)
			json_object_set_new(args, json_object_iter_key(it),
			    value_of_type(json_object_iter_value(it), "Paris"));
		st->args = json_dumps(args, JSON_COMPACT);
		json_decref(args);
		free(last.s);
		return;
	}

	/* text */
	struct str text = { 0 };
	if (strcmp(role, "tool") == 0) {
		str_add(&text, "The weather is: ", 16);
		str_add(&text, last.s, last.len);
	} else if (strcmp(role, "user") == 0 && images > 0) {
		char head[64];
		size_t ul = strlen(url), k = ul < 24 ? ul : 24;
		while (k > 0 && k < ul && ((unsigned char)url[k] & 0xC0) == 0x80)
			k--; /* not in the middle of a UTF-8 sequence */
		snprintf(head, sizeof head, "I saw %zu image%s, the first at ", images,
		    images == 1 ? "" : "s");
		str_add(&text, head, strlen(head));
		str_add(&text, url, k);
	} else {
		str_add(&text, "you said: ", 10);
		str_add(&text, last.s, last.len);
	}
	free(last.s);
	json_t *rf = json_object_get(req, "response_format");
	const char *rft = json_string_value(json_object_get(rf, "type"));
	if (rft != NULL && (strcmp(rft, "json_object") == 0 || strcmp(rft, "json_schema") == 0)) {
		json_t *o = json_object();
		json_t *props = json_object_get(json_object_get(json_object_get(rf, "json_schema"),
		    "schema"), "properties");
		const char *k;
		json_t *v;
		if (strcmp(rft, "json_schema") == 0 && json_object_size(props) > 0)
			json_object_foreach(props, k, v)
				json_object_set_new(o, k, value_of_type(v, text.s));
		else
			json_object_set_new(o, "answer", json_string(text.s));
		st->text = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		free(text.s);
	} else {
		st->text = text.s;
	}
}

/* The text of choice i (from 0). */
static char *
strict_choice_text(struct strict *st, int i)
{
	char *t;
	if (i == 0)
		t = strdup(st->text);
	else if (asprintf(&t, "choice %d: %s", i + 1, st->text) < 0)
		t = NULL;
	if (t == NULL)
		die("out of memory");
	return t;
}

/* Cuts t to the max_completion_tokens (or max_tokens) words asked for;
 * returns the finish reason and the words kept in *words. */
static const char *
strict_cut(struct strict *st, char *t, size_t *words)
{
	json_t *mx = json_object_get(st->req, "max_completion_tokens");
	if (!json_is_integer(mx))
		mx = json_object_get(st->req, "max_tokens");
	json_int_t max = json_is_integer(mx) ? json_integer_value(mx) : 0;
	size_t len = strlen(t), i = 0;
	*words = 0;
	while (i < len) {
		if (max > 0 && (json_int_t)*words == max) {
			t[i] = '\0';
			return "length";
		}
		i = next_word(t, len, i);
		(*words)++;
	}
	return "stop";
}

/* The logprobs entry of one token. */
static json_t *
strict_token_logprob(struct strict *st, const char *tok, size_t len, size_t k)
{
	double lp = -0.25 * (double)(1 + k % 3);
	json_t *bytes = json_array();
	for (size_t b = 0; b < len; b++)
		json_array_append_new(bytes, json_integer((unsigned char)tok[b]));
	json_t *tops = json_array();
	for (int j = 0; j < st->top_logprobs; j++) {
		char alt[32];
		json_t *e;
		if (j == 0) {
			e = json_pack("{s:s%,s:f,s:O}", "token", tok, len, "logprob", lp, "bytes", bytes);
		} else {
			snprintf(alt, sizeof alt, " alt%d", j);
			json_t *ab = json_array();
			for (const char *p = alt; *p; p++)
				json_array_append_new(ab, json_integer((unsigned char)*p));
			e = json_pack("{s:s,s:f,s:o}", "token", alt, "logprob", lp - j, "bytes", ab);
		}
		json_array_append_new(tops, e);
	}
	return json_pack("{s:s%,s:f,s:o,s:o}", "token", tok, len, "logprob", lp, "bytes", bytes,
	    "top_logprobs", tops);
}

/* {"content": [entries of text's words], "refusal": null} */
static json_t *
strict_logprobs(struct strict *st, const char *t)
{
	json_t *content = json_array();
	size_t len = strlen(t), i = 0, k = 0;
	while (i < len) {
		size_t j = next_word(t, len, i);
		json_array_append_new(content, strict_token_logprob(st, t + i, j - i, k++));
		i = j;
	}
	return json_pack("{s:o,s:n}", "content", content, "refusal");
}

static json_t *
strict_tool_calls(struct strict *st, const char *args)
{
	return json_pack("[{s:i,s:s,s:s,s:{s:s,s:s}}]", "index", 0, "id", "call_1", "type",
	    "function", "function", "name", st->tool_name, "arguments", args);
}

static json_t *
strict_usage(struct strict *st, json_int_t completion)
{
	return json_pack("{s:I,s:I,s:I,s:{s:i,s:i},s:{s:i,s:i,s:i,s:i}}",
	    "prompt_tokens", st->prompt_tokens, "completion_tokens", completion,
	    "total_tokens", st->prompt_tokens + completion,
	    "prompt_tokens_details", "cached_tokens", 0, "audio_tokens", 0,
	    "completion_tokens_details", "reasoning_tokens", 0, "audio_tokens", 0,
	    "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0);
}

/* id, object, created, model, (service_tier,) system_fingerprint */
static json_t *
strict_head(struct strict *st, const char *object)
{
	json_t *j = json_pack("{s:s,s:s,s:I,s:s}", "id", st->id, "object", object, "created",
	    st->created, "model", st->model);
	json_t *tier = json_object_get(st->req, "service_tier");
	if (json_is_string(tier))
		json_object_set(j, "service_tier", tier);
	json_object_set_new(j, "system_fingerprint", json_string("fp_fake"));
	return j;
}

static void
strict_whole(struct conn *c, double at, struct strict *st)
{
	json_t *j = strict_head(st, "chat.completion");
	json_t *choices = json_array();
	json_int_t completion = 0;
	for (int i = 0; i < st->n; i++) {
		json_t *msg, *lp = json_null();
		const char *finish;
		if (st->tool_name != NULL) {
			json_t *calls = strict_tool_calls(st, st->args);
			json_object_del(json_array_get(calls, 0), "index");
			msg = json_pack("{s:s,s:n,s:o,s:n,s:[]}", "role", "assistant", "content",
			    "tool_calls", calls, "refusal", "annotations");
			finish = "tool_calls";
			completion += 4 + (json_int_t)strlen(st->args) / 4;
		} else {
			size_t words;
			char *t = strict_choice_text(st, i);
			finish = strict_cut(st, t, &words);
			msg = json_pack("{s:s,s:s,s:n,s:[]}", "role", "assistant", "content", t,
			    "refusal", "annotations");
			if (st->logprobs)
				lp = strict_logprobs(st, t);
			completion += (json_int_t)words;
			free(t);
		}
		json_array_append_new(choices, json_pack("{s:i,s:o,s:o,s:s}", "index", i,
		    "message", msg, "logprobs", lp, "finish_reason", finish));
	}
	json_object_set_new(j, "choices", choices);
	json_object_set_new(j, "usage", strict_usage(st, completion));
	answer_json(c, at, 200, "", j);
}

/* One chat.completion.chunk event of choice i; takes delta and logprobs. */
static void
strict_chunk(struct conn *c, double at, struct strict *st, int i, json_t *delta, json_t *lp,
    const char *finish)
{
	json_t *j = strict_head(st, "chat.completion.chunk");
	json_object_set_new(j, "choices", json_pack("[{s:i,s:o,s:o,s:o}]", "index", i, "delta",
	    delta, "logprobs", lp ? lp : json_null(), "finish_reason", str_or_null(finish)));
	if (st->include_usage)
		json_object_set_new(j, "usage", json_null());
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	char *ev;
	if (s == NULL || asprintf(&ev, "data: %s\n\n", s) < 0)
		die("out of memory");
	sse_raw(c, at, ev);
	free(ev);
	free(s);
}

static void
strict_stream(struct conn *c, double at, struct strict *st)
{
	json_int_t completion = 0;
	sse_head(c, at);
	for (int i = 0; i < st->n; i++) {
		if (st->tool_name != NULL) {
			strict_chunk(c, at, st, i, json_pack("{s:s,s:n,s:o,s:n}", "role", "assistant",
			    "content", "tool_calls", strict_tool_calls(st, ""), "refusal"), NULL, NULL);
			size_t len = strlen(st->args), cut[4] = { 0, len / 3, 2 * len / 3, len };
			for (int k = 0; k < 3; k++) {
				if (cut[k + 1] == cut[k])
					continue;
				strict_chunk(c, at, st, i, json_pack("{s:[{s:i,s:{s:s%}}]}", "tool_calls",
				    "index", 0, "function", "arguments", st->args + cut[k],
				    cut[k + 1] - cut[k]), NULL, NULL);
			}
			strict_chunk(c, at, st, i, json_object(), NULL, "tool_calls");
			completion += 4 + (json_int_t)strlen(st->args) / 4;
			continue;
		}
		size_t words;
		char *t = strict_choice_text(st, i);
		const char *finish = strict_cut(st, t, &words);
		strict_chunk(c, at, st, i, json_pack("{s:s,s:s,s:n}", "role", "assistant",
		    "content", "", "refusal"), NULL, NULL);
		size_t len = strlen(t), p = 0, k = 0;
		while (p < len) {
			size_t q = next_word(t, len, p);
			json_t *lp = NULL;
			if (st->logprobs)
				lp = json_pack("{s:[o],s:n}", "content",
				    strict_token_logprob(st, t + p, q - p, k), "refusal");
			strict_chunk(c, at, st, i, json_pack("{s:s%}", "content", t + p, q - p), lp, NULL);
			p = q;
			k++;
		}
		strict_chunk(c, at, st, i, json_object(), NULL, finish);
		completion += (json_int_t)words;
		free(t);
	}
	if (st->include_usage) {
		json_t *j = strict_head(st, "chat.completion.chunk");
		json_object_set_new(j, "choices", json_array());
		json_object_set_new(j, "usage", strict_usage(st, completion));
		char *s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		char *ev;
		if (s == NULL || asprintf(&ev, "data: %s\n\n", s) < 0)
			die("out of memory");
		sse_raw(c, at, ev);
		free(ev);
		free(s);
	}
	sse_raw(c, at, "data: [DONE]\n\n");
	addf(c, at, "0\r\n\r\n");
}

static void
strict(struct server *s, struct conn *c, double at, json_t *req, const char *model)
{
	struct refusal r;
	if (strict_check(req, &r) != 0) {
		answer_oai_error(c, at, 400, "", r.msg, "invalid_request_error",
		    r.param[0] ? r.param : NULL, r.code);
		return;
	}
	struct strict st;
	strict_plan(&st, req, model, s->requests);
	if (json_is_true(json_object_get(req, "stream")))
		strict_stream(c, at, &st);
	else
		strict_whole(c, at, &st);
	free(st.args);
	free(st.text);
}

/* Records a request: a line of JSONFILE, and the ring GET .../_requests answers. */
static void
record(struct server *s, struct conn *c, const char *path, const char *auth, json_t *j,
    const char *body, size_t blen)
{
	json_t *m = json_object_get(j, "model");
	json_t *rec = json_pack("{s:I,s:i,s:s,s:s,s:O?,s:O?}", "n", (json_int_t)s->requests,
	    "conn", (int)c->id, "path", path, "auth", auth, "model", json_is_string(m) ? m : NULL,
	    "body", j);
	if (rec == NULL) /* a path or header not in UTF-8 */
		return;
	json_t *raw = json_stringn(body, blen);
	if (raw != NULL)
		json_object_set_new(rec, "raw", raw);
	if (s->jlog != NULL) {
		json_dumpf(rec, s->jlog, JSON_COMPACT);
		fputc('\n', s->jlog);
		fflush(s->jlog);
	}
	size_t slot = (size_t)(s->requests % (sizeof s->recent / sizeof s->recent[0]));
	json_decref(s->recent[slot]);
	s->recent[slot] = rec;
}

/* {"total": N, "requests": [the last records, oldest first]} */
static void
answer_recent(struct server *s, struct conn *c, double at)
{
	size_t cap = sizeof s->recent / sizeof s->recent[0];
	json_t *list = json_array();
	unsigned long long from = s->requests > cap ? s->requests - cap + 1 : 1;
	for (unsigned long long n = from; n <= s->requests; n++)
		if (s->recent[n % cap] != NULL)
			json_array_append(list, s->recent[n % cap]);
	answer_json(c, at, 200, "", json_pack("{s:I,s:o}", "total", (json_int_t)s->requests,
	    "requests", list));
}

/* ---- the instance's own behaviour: -m, -d, -w and the control file ------- */

/* Reads MS (a non-negative number of milliseconds) into *out, in s. */
static int
read_ms(const char *v, double *out)
{
	char *end;
	double ms = strtod(v, &end);
	if (end == v || *end != '\0' || !(ms >= 0) || ms > 86400000)
		return -1;
	*out = ms / 1000.;
	return 0;
}

/* Sets a mode: "none" (or nothing) is the request's own. */
static void
set_mode(struct behaviour *b, const char *mode)
{
	snprintf(b->mode, sizeof b->mode, "%s", strcmp(mode, "none") == 0 ? "" : mode);
}

/*
 * Reads the control file again when it changed since the last time (its
 * mtime, size or inode; or it came or went): the command line's behaviour,
 * with what the file says over it.
 */
static void
control_poll(struct server *s)
{
	struct stat st;
	if (s->control_path == NULL)
		return;
	int seen = stat(s->control_path, &st) == 0;
	if (seen == s->control_seen && (!seen || (st.st_mtim.tv_sec == s->control_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->control_st.st_mtim.tv_nsec &&
	    st.st_size == s->control_st.st_size && st.st_ino == s->control_st.st_ino)))
		return;
	s->control_seen = seen;
	if (seen)
		s->control_st = st;
	s->now = s->given;
	FILE *f = seen ? fopen(s->control_path, "r") : NULL;
	if (f == NULL)
		return;
	char line[256];
	unsigned n = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		char key[32], value[128];
		n++;
		int k = sscanf(line, "%31s %127s", key, value);
		if (k <= 0 || key[0] == '#')
			continue;
		if (k == 2 && strcmp(key, "mode") == 0)
			set_mode(&s->now, value);
		else if (!(k == 2 && strcmp(key, "delay") == 0 && read_ms(value, &s->now.delay) == 0) &&
		    !(k == 2 && strcmp(key, "word-delay") == 0 && read_ms(value, &s->now.word_gap) == 0))
			fprintf(stderr, "fake-upstream: %s:%u: want \"mode MODE\", \"delay MS\" "
			    "or \"word-delay MS\", not: %s", s->control_path, n, line);
	}
	fclose(f);
}

/*
 * GET .../models: the list of one model, or what the instance's mode says
 * (a status, a stall, a reset, a delay).
 */
static void
answer_models(struct server *s, struct conn *c, double t)
{
	const char *mode = s->now.mode;
	s->models++;
	stats(s);
	if (strcmp(mode, "stall") == 0 || strcmp(mode, "stall-mid-stream") == 0) {
		c->end = END_STALL;
		return;
	}
	if (strncmp(mode, "slow-", 5) == 0 && strcmp(mode, "slow-stream") != 0)
		t += atof(mode + (strncmp(mode, "slow-first-", 11) == 0 ? 11 : 5)) / 1000.;
	add(c, t, "", 0); /* the end (reset, close) waits for it too */
	if (strcmp(mode, "reset") == 0 || strcmp(mode, "reset-mid-stream") == 0) {
		c->end = END_RESET;
		return;
	}
	int status = mode[0] >= '1' && mode[0] <= '9' ? atoi(mode) : 200;
	if (status != 200) {
		answer_error(c, t, status < 100 || status > 599 ? 500 : status,
		    status == 429 || status == 503 ? "Retry-After: 1\r\n" : "",
		    "the fake upstream's mode fails its models too");
		return;
	}
	answer_json(c, t, 200, "", json_pack("{s:s,s:[{s:s,s:s,s:i,s:s}]}", "object", "list",
	    "data", "id", "fake", "object", "model", "created", 0, "owned_by", "fake-upstream"));
	if (strcmp(mode, "close") == 0)
		c->end = END_CLOSE;
}

static void
handle(struct server *s, struct conn *c, const char *path, const char *auth,
    const char *body, size_t blen)
{
	double t = now_s();
	size_t plen = strcspn(path, "?"); /* the query (a client's counter) is ignored */
	c->end = END_KEEP;
	if (plen >= 10 && strncmp(path + plen - 10, "/_requests", 10) == 0) {
		answer_recent(s, c, t); /* not a request to the model: not counted */
		return;
	}
	control_poll(s);
	t += s->now.delay;
	c->word_gap = s->now.word_gap;
	if (plen >= 7 && strncmp(path + plen - 7, "/models", 7) == 0) {
		answer_models(s, c, t); /* a probe, not a request: counted apart */
		return;
	}
	if (s->now.delay > 0)
		add(c, t, "", 0); /* a reset or a close waits for it too */
	s->requests++;
	stats(s);
	if (s->log != NULL) {
		fprintf(s->log, "%llu conn=%u %s auth=[%s] %.*s\n", s->requests, c->id, path,
		    auth, (int)blen, body);
		fflush(s->log);
	}
	json_error_t jerr;
	json_t *j = json_loadb(body, blen, 0, &jerr);
	record(s, c, path, auth, j, body, blen);
	if (c->drop_next) {
		c->drop_next = 0;
		c->end = END_CLOSE; /* no pieces: closed at once */
		json_decref(j);
		return;
	}
	int chat = plen >= 17 && strncmp(path + plen - 17, "/chat/completions", 17) == 0;
	int comp = !chat && plen >= 12 && strncmp(path + plen - 12, "/completions", 12) == 0;
	if (!chat && !comp) {
		answer_error(c, t, 404, "", "no such endpoint");
		json_decref(j);
		return;
	}
	if (!json_is_object(j)) {
		answer_error(c, t, 400, "", "the body is not a JSON object");
		json_decref(j);
		return;
	}
	json_t *m = json_object_get(j, "model");
	const char *model = s->now.mode[0] != '\0' ? s->now.mode :
	    json_is_string(m) ? json_string_value(m) : "ok";
	int stream = json_is_true(json_object_get(j, "stream"));
	char *text;
	if (asprintf(&text, "you said: %s", prompt_of(j, chat)) < 0)
		die("out of memory");

	if (strncmp(model, "slow-first-", 11) == 0) {
		/* the head now, the rest after the wait: it is the head's piece */
		size_t head = c->np;
		answer_text(c, t + atof(model + 11) / 1000., chat, stream, text);
		c->pieces[head].at = t;
	} else if (strncmp(model, "slow-", 5) == 0 && strcmp(model, "slow-stream") != 0) {
		answer_text(c, t + atof(model + 5) / 1000., chat, stream, text);
	} else if (strcmp(model, "slow-stream") == 0) {
		stream_text(c, t, chat, text, 0.02, 0, 0);
	} else if (strcmp(model, "classify") == 0) {
		json_t *rf = json_object_get(j, "response_format");
		const char *type = json_string_value(json_object_get(rf, "type"));
		answer_text(c, t, chat, stream, type != NULL && strcmp(type, "json_object") == 0 ?
		    "{\"category\":\"code\",\"complexity\":\"simple\"}" : "not asked for JSON");
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
	} else if (strcmp(model, "huge") == 0) {
		size_t n = 10u << 20;
		char *b = malloc(n + 1);
		if (b == NULL)
			die("out of memory");
		for (size_t k = 0; k < n; k++)
			b[k] = k % 64 == 62 ? '"' : k % 64 == 63 ? '\n' : (char)('a' + k % 26);
		b[n] = '\0';
		if (stream) {
			/* one event: the whole text in one delta */
			sse_head(c, t);
			sse_word(c, t, chat, b, n);
			sse_raw(c, t, chat ?
			    "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\","
			    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" :
			    "data: {\"id\":\"cmpl-fake\",\"object\":\"text_completion\","
			    "\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n");
			sse_raw(c, t, "data: [DONE]\n\n");
			addf(c, t, "0\r\n\r\n");
		} else {
			answer_text(c, t, chat, stream, b);
		}
		free(b);
	} else if (strcmp(model, "close") == 0) {
		answer_text(c, t, chat, stream, text);
		c->end = END_CLOSE;
	} else if (strcmp(model, "drop-next") == 0) {
		answer_text(c, t, chat, stream, text);
		c->drop_next = 1;
	} else if (strcmp(model, "no-length") == 0 && !stream) {
		json_t *a = json_pack("{s:s,s:[{s:i,s:{s:s,s:s},s:s}]}", "object",
		    "chat.completion", "choices", "index", 0, "message", "role", "assistant",
		    "content", text, "finish_reason", "stop");
		char *b = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
		json_decref(a);
		if (b == NULL)
			die("out of memory");
		addf(c, t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n%s", b);
		free(b);
		c->end = END_CLOSE;
	} else if (strcmp(model, "interim") == 0 && !stream) {
		json_t *a = json_pack("{s:s,s:[{s:i,s:{s:s,s:s},s:s}]}", "object",
		    "chat.completion", "choices", "index", 0, "message", "role", "assistant",
		    "content", text, "finish_reason", "stop");
		char *b = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
		json_decref(a);
		if (b == NULL)
			die("out of memory");
		addf(c, t, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLi");
		addf(c, t + 0.01, "nk: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nConte");
		addf(c, t + 0.02, "nt-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		    strlen(b), b);
		free(b);
	} else if (strcmp(model, "429-ms") == 0) {
		static const char b[] = "{\"error\":{\"message\":\"Rate limit reached\","
		    "\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
		addf(c, t, "HTTP/1.1 429 Too Many Requests\r\nretry-af");
		addf(c, t + 0.01, "ter-ms: 1500.5\r\nRetry-After: 2\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\n\r\n%s", sizeof b - 1, b);
	} else if (strcmp(model, "chunked") == 0 && !stream) {
		json_t *a = chat ?
		    json_pack("{s:s,s:s,s:[{s:i,s:{s:s,s:s},s:s}]}", "id", "chatcmpl-fake",
			"object", "chat.completion", "choices", "index", 0, "message", "role",
			"assistant", "content", text, "finish_reason", "stop") :
		    json_pack("{s:s,s:s,s:[{s:i,s:s,s:s}]}", "id", "cmpl-fake", "object",
			"text_completion", "choices", "index", 0, "text", text, "finish_reason", "stop");
		char *b = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
		json_decref(a);
		if (b == NULL)
			die("out of memory");
		size_t n = strlen(b), third = n / 3;
		addf(c, t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n");
		addf(c, t, "%zx\r\n%.*s\r\n", third, (int)third, b);
		/* apart, so that a client reads them one at a time */
		addf(c, t + 0.01, "%zx\r\n%.*s\r\n", third, (int)third, b + third);
		addf(c, t + 0.02, "%zx\r\n%s\r\n0\r\n\r\n", n - 2 * third, b + 2 * third);
		free(b);
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
	} else if (strcmp(model, "401-key") == 0) {
		char msg[600]; /* the prefix and all of auth[512] */
		snprintf(msg, sizeof msg, "Incorrect API key provided: %s",
		    strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : auth);
		answer_error(c, t, 401, "", msg);
	} else if (strcmp(model, "403") == 0) {
		answer_oai_error(c, t, 403, "", "Country, region, or territory not supported",
		    "request_forbidden", NULL, "unsupported_country_region_territory");
	} else if (strcmp(model, "404") == 0) {
		answer_oai_error(c, t, 404, "", "The model `404` does not exist or you do not have "
		    "access to it.", "invalid_request_error", NULL, "model_not_found");
	} else if (strcmp(model, "413") == 0) {
		answer_oai_error(c, t, 413, "", "Request too large: the body is over the limit",
		    "invalid_request_error", NULL, "request_too_large");
	} else if (strcmp(model, "422") == 0) {
		answer_oai_error(c, t, 422, "", "Unprocessable entity: the request cannot be served",
		    "invalid_request_error", NULL, "unprocessable_entity");
	} else if (strcmp(model, "strict") == 0 && chat) {
		strict(s, c, t, j, model);
	} else if (strcmp(model, "429-then-400") == 0) {
		/* a rate limit with its error object, then a refusal without one */
		static unsigned flip;
		if (flip++ % 2 == 0) {
			answer_error(c, t, 429, "Retry-After: 0\r\n", "Rate limit reached for requests");
		} else {
			static const char b[] = "no such thing\n";
			answer(c, t, 400, "text/plain", "", b, sizeof b - 1);
		}
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
	const char *port_path = NULL, *pid_path = NULL, *hole_path = NULL, *json_path = NULL;
	double lifetime = 600;
	int opt;
	memset(&s, 0, sizeof s);
	while ((opt = getopt(argc, argv, "p:P:s:l:j:t:b:m:d:w:c:")) != -1) {
		switch (opt) {
		case 'm': set_mode(&s.given, optarg); break;
		case 'd':
			if (read_ms(optarg, &s.given.delay) != 0)
				die("-d %s: want milliseconds", optarg);
			break;
		case 'w':
			if (read_ms(optarg, &s.given.word_gap) != 0)
				die("-w %s: want milliseconds", optarg);
			break;
		case 'c': s.control_path = optarg; break;
		case 'p': port_path = optarg; break;
		case 'P': pid_path = optarg; break;
		case 's': s.stats_path = optarg; break;
		case 'l': s.log_path = optarg; break;
		case 'j': json_path = optarg; break;
		case 't': lifetime = atof(optarg); break;
		case 'b': hole_path = optarg; break;
		default:
			fprintf(stderr, "usage: fake-upstream -p PORTFILE [-P PIDFILE] "
			    "[-s STATSFILE] [-l LOGFILE] [-j JSONFILE] [-t SECONDS] "
			    "[-b BLACKHOLE-PORTFILE] [-m MODE] [-d MS] [-w MS] "
			    "[-c CONTROLFILE]\n");
			return 2;
		}
	}
	if (port_path == NULL)
		die("-p PORTFILE is required");
	s.now = s.given;
	control_poll(&s);
	if (s.log_path != NULL && (s.log = fopen(s.log_path, "a")) == NULL)
		die("%s: %s", s.log_path, strerror(errno));
	if (json_path != NULL && (s.jlog = fopen(json_path, "a")) == NULL)
		die("%s: %s", json_path, strerror(errno));

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
	if (s.jlog != NULL)
		fclose(s.jlog);
	for (size_t i = 0; i < sizeof s.recent / sizeof s.recent[0]; i++)
		json_decref(s.recent[i]);
	return 0;
}
