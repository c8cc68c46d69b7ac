/* stdin.c -- source stage: one request per line of standard input (text or JSON). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <porch/plugin.h>

/* Bytes asked of each read(2); the buffer keeps at least this much room. */
#define STDIN_CHUNK (64 * 1024)

struct stdin_src {
	porch_stage *st;
	struct ev_loop *loop;
	ev_io io;

	char *buf;          /* bytes read, not yet made into requests: [off, len) */
	size_t off, len, cap;

	size_t max_line;    /* longest accepted line, without its terminator */
	int64_t deadline;   /* ms; 0: none */
	char *session;      /* session of plain-text lines */
	const char *text_field; /* the JSON member holding a request's text */
	size_t session_len;

	uint64_t invalid;   /* malformed lines, failed as bad-request */
	size_t budget;      /* requests we may still emit before asking again */

	int saved_flags;    /* fd 0's flags before init, restored in fini */
	int flags_changed;
	int eof;            /* read(2) returned 0 (or failed): no more bytes */
	int read_failed;    /* the partial last line is not a line then */
	int skipping;       /* discarding the rest of an overlong line */
	int paused;         /* stopped because the graph is full */
	int finished;       /* porch_stage_finished was called */
};

/*
 * Standard input is one stream for the whole process, whichever instance
 * reads it: a reload hands it (and what was read of it) from the old
 * stage to the new one, so its line count and its flags before porch made
 * it non-blocking belong to the process, not to an instance.
 */
static uint64_t lines_read;         /* lines consumed so far (the last one's number) */
static int original_flags = -1;     /* fd 0's flags before the first init */

static const struct porch_param stdin_params[] = {
	{ "deadline", PORCH_PARAM_DURATION, "0", 0, 86400000, NULL, 0,
	  "time each request has to complete once read; 0: no deadline" },
	{ "max-line", PORCH_PARAM_SIZE, "1M", 1, 1073741824, NULL, 0,
	  "longest line accepted; a longer one fails as bad-request" },
	{ "session", PORCH_PARAM_STRING, "stdin", 0, 0, NULL, 0,
	  "session of plain-text lines (a JSON line may give its own)" },
	{ "text-field", PORCH_PARAM_STRING, "text", 0, 0, NULL, 0,
	  "member of a JSON line holding the text (porch replay reads \"input\")" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/*
 * A line that cannot be a request still is one: it is accepted and fails
 * at once as bad-request, so it is counted with every other outcome, can be
 * routed out the error port to a dead-letter sink, and is reported by
 * stdin_outcome as "porch: stdin:LINE: request ID (session S) failed: ...".
 */
static void stdin_invalid(struct stdin_src *s, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
stdin_invalid(struct stdin_src *s, uint64_t line, const char *fmt, ...)
{
	char why[512], num[24];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	s->invalid++;
	porch_msg *m = porch_msg_new(s->st);
	if (m == NULL) {
		porch_log(s->st, PORCH_LOG_WARN, NULL, "stdin:%" PRIu64 ": error: %s", line, why);
		return;
	}
	snprintf(num, sizeof num, "%" PRIu64, line);
	porch_msg_set_session(m, s->session, s->session_len);
	porch_msg_set_meta(m, "line", num);
	porch_fail(s->st, m, PORCH_ERR_BAD_REQUEST, "%s", why);
}

/* A request was made but a setter failed: only exhaustion can cause that. */
static void
stdin_fill_failed(struct stdin_src *s, uint64_t line)
{
	porch_log(s->st, PORCH_LOG_ERROR, NULL, "stdin:%" PRIu64 ": error: could not fill "
	    "the request (out of memory)", line);
}

static void
stdin_finish(struct stdin_src *s)
{
	ev_io_stop(s->loop, &s->io);
	if (s->finished)
		return;
	s->finished = 1;
	if (s->invalid > 0)
		porch_log(s->st, PORCH_LOG_WARN, NULL, "stdin: %" PRIu64 " invalid line%s failed as bad-request",
		    s->invalid, s->invalid == 1 ? "" : "s");
	porch_stage_finished(s->st);
}

/*
 * Fills and emits a request.  A setter can only fail on exhaustion; the
 * request is emitted anyway, since a made request cannot be taken back and
 * must end with an outcome.
 */
static void
stdin_emit(struct stdin_src *s, porch_msg *m, uint64_t line, int64_t deadline)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRIu64, line);
	/* set last, so a JSON line's own meta cannot hide where it came from */
	if (porch_msg_set_meta(m, "line", num) != 0)
		stdin_fill_failed(s, line);
	if (deadline > 0)
		porch_msg_set_deadline(m, deadline);
	/* PORCH_REFUSED: ended and counted already; outcome() has reported it */
	(void)porch_emit(s->st, m);
	if (s->budget > 0)
		s->budget--;
}

/* A line that is a JSON object: {"text", "session"?, "meta"?, "deadline_ms"?}. */
static void
stdin_json_line(struct stdin_src *s, const char *p, size_t n, uint64_t line)
{
	json_error_t jerr;
	json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		stdin_invalid(s, line, "bad JSON: %s", jerr.text);
		return;
	}
	if (!json_is_object(root)) {
		stdin_invalid(s, line, "a JSON line must be an object");
		goto out;
	}
	json_t *text = json_object_get(root, s->text_field);
	json_t *session = json_object_get(root, "session");
	json_t *meta = json_object_get(root, "meta");
	json_t *deadline = json_object_get(root, "deadline_ms");
	if (text == NULL) {
		stdin_invalid(s, line, "\"%s\" is missing", s->text_field);
		goto out;
	}
	if (!json_is_string(text)) {
		stdin_invalid(s, line, "\"%s\" must be a string", s->text_field);
		goto out;
	}
	if (session != NULL && !json_is_string(session)) {
		stdin_invalid(s, line, "\"session\" must be a string");
		goto out;
	}
	if (meta != NULL && !json_is_object(meta)) {
		stdin_invalid(s, line, "\"meta\" must be an object of strings");
		goto out;
	}
	const char *key;
	json_t *value;
	if (meta != NULL) {
		json_object_foreach(meta, key, value) {
			if (!json_is_string(value)) {
				stdin_invalid(s, line, "\"meta\" value \"%s\" must be a string", key);
				goto out;
			}
		}
	}
	int64_t dl = s->deadline;
	if (deadline != NULL) {
		if (!json_is_integer(deadline) || json_integer_value(deadline) < 0) {
			stdin_invalid(s, line, "%s",
			    "\"deadline_ms\" must be an integer >= 0 (0: none)");
			goto out;
		}
		dl = (int64_t)json_integer_value(deadline);
	}

	porch_msg *m = porch_msg_new(s->st);
	if (m == NULL) {
		stdin_invalid(s, line, "could not make a request (out of memory)");
		goto out;
	}
	int ok = 1;
	if (porch_msg_set_text(m, json_string_value(text), json_string_length(text)) != 0)
		ok = 0;
	if (session != NULL) {
		if (porch_msg_set_session(m, json_string_value(session),
		    json_string_length(session)) != 0)
			ok = 0;
	} else if (porch_msg_set_session(m, s->session, s->session_len) != 0) {
		ok = 0;
	}
	if (meta != NULL) {
		json_object_foreach(meta, key, value) {
			/* the http source's word that "openai.request" may go to
			 * the upstream unread (plugins/openai/sig.h): not a line's */
			if (strcmp(key, "openai.sig") == 0)
				continue;
			if (porch_msg_set_meta(m, key, json_string_value(value)) != 0)
				ok = 0;
		}
	}
	if (!ok)
		stdin_fill_failed(s, line);
	stdin_emit(s, m, line, dl);
out:
	json_decref(root);
}

/* One complete line, its terminator removed.  Empty and blank lines are skipped. */
static void
stdin_line(struct stdin_src *s, const char *p, size_t n)
{
	uint64_t line = ++lines_read;
	if (n > s->max_line) {
		stdin_invalid(s, line, "line is longer than max-line (%zu bytes)",
		    s->max_line);
		return;
	}
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i == n)
		return;
	if (p[i] == '{') {
		stdin_json_line(s, p, n, line);
		return;
	}
	porch_msg *m = porch_msg_new(s->st);
	if (m == NULL) {
		stdin_invalid(s, line, "could not make a request (out of memory)");
		return;
	}
	if (porch_msg_set_text(m, p, n) != 0 ||
	    porch_msg_set_session(m, s->session, s->session_len) != 0)
		stdin_fill_failed(s, line);
	stdin_emit(s, m, line, s->deadline);
}

/* Is there room for one more request?  If not, stop reading until resume(). */
static int
stdin_room(struct stdin_src *s)
{
	if (s->budget == 0)
		s->budget = porch_stage_ready(s->st);
	if (s->budget > 0)
		return 1;
	s->paused = 1;
	ev_io_stop(s->loop, &s->io);
	return 0;
}

/* Turns the complete lines in the buffer into requests while the graph has room. */
static void
stdin_process_buffer(struct stdin_src *s)
{
	s->budget = 0; /* ask afresh: the graph may have filled since */
	while (!s->finished && !s->paused) {
		char *p = s->buf + s->off;
		size_t avail = s->len - s->off;
		char *nl = avail > 0 ? memchr(p, '\n', avail) : NULL;

		if (s->skipping) {
			if (nl == NULL) {
				s->off = s->len;
				if (s->eof)
					stdin_finish(s);
				return;
			}
			s->off += (size_t)(nl - p) + 1;
			s->skipping = 0;
			continue;
		}
		if (nl == NULL) {
			if (!s->eof) {
				/* room for "\r" too: only more than that is surely too long */
				if (avail > s->max_line + 1) {
					stdin_invalid(s, ++lines_read,
					    "line is longer than max-line (%zu bytes)", s->max_line);
					s->off = s->len;
					s->skipping = 1;
				}
				return;
			}
			if (avail == 0 || s->read_failed) {
				s->off = s->len;
				stdin_finish(s);
				return;
			}
			/* the last line has no newline: it is a line all the same */
			if (!stdin_room(s))
				return;
			size_t n = avail;
			if (n > 0 && p[n - 1] == '\r')
				n--;
			s->off = s->len;
			stdin_line(s, p, n);
			continue;
		}
		if (!stdin_room(s))
			return;
		size_t n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		s->off += (size_t)(nl - p) + 1;
		stdin_line(s, p, n);
	}
}

/* Moves unprocessed bytes to the front and makes room for one more read. */
static int
stdin_make_room(struct stdin_src *s)
{
	if (s->off > 0) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	}
	if (s->cap - s->len >= STDIN_CHUNK)
		return 0;
	size_t cap = s->cap ? s->cap : STDIN_CHUNK;
	while (cap - s->len < STDIN_CHUNK)
		cap *= 2;
	char *b = realloc(s->buf, cap);
	if (b == NULL)
		return -1;
	s->buf = b;
	s->cap = cap;
	return 0;
}

static void
stdin_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stdin_src *s = w->data;
	(void)loop;
	(void)revents;

	if (stdin_make_room(s) != 0) {
		porch_log(s->st, PORCH_LOG_ERROR, NULL, "stdin: read error: %s", strerror(ENOMEM));
		s->eof = s->read_failed = 1;
	} else {
		ssize_t n = read(0, s->buf + s->len, s->cap - s->len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			porch_log(s->st, PORCH_LOG_ERROR, NULL, "stdin: read error: %s", strerror(errno));
			s->eof = s->read_failed = 1;
		} else if (n == 0) {
			s->eof = 1;
		} else {
			s->len += (size_t)n;
		}
	}
	if (s->eof)
		ev_io_stop(s->loop, &s->io);
	stdin_process_buffer(s);
}

static int
stdin_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct stdin_src *s = calloc(1, sizeof *s);
	if (s == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	s->st = st;
	s->loop = porch_stage_loop(st);
	ev_io_init(&s->io, stdin_on_readable, 0, EV_READ);
	s->io.data = s;
	s->max_line = (size_t)porch_param_int(p, "max-line");
	s->deadline = porch_param_int(p, "deadline");
	s->text_field = porch_param_str(p, "text-field");
	if (s->text_field == NULL)
		s->text_field = "text";
	const char *session = porch_param_str(p, "session");
	if (session == NULL)
		session = "stdin";
	s->session_len = strlen(session);
	s->session = malloc(s->session_len + 1);
	if (s->session == NULL) {
		free(s);
		porch_stage_error(st, "out of memory");
		return -1;
	}
	memcpy(s->session, session, s->session_len + 1);

	int flags = fcntl(0, F_GETFL);
	if (flags >= 0 && original_flags < 0)
		original_flags = flags;
	if (flags >= 0)
		flags = original_flags;
	if (flags < 0) {
		porch_stage_error(st, "standard input is not open: %s", strerror(errno));
		free(s->session);
		free(s);
		return -1;
	}
	s->saved_flags = flags;
	if (!(flags & O_NONBLOCK)) {
		if (fcntl(0, F_SETFL, flags | O_NONBLOCK) < 0) {
			porch_stage_error(st, "cannot make standard input non-blocking: %s",
			    strerror(errno));
			free(s->session);
			free(s);
			return -1;
		}
		s->flags_changed = 1;
	}
	porch_stage_set_data(st, s);
	return 0;
}

static void
stdin_start(porch_stage *st)
{
	struct stdin_src *s = porch_stage_data(st);
	if (!s->finished && !s->paused)
		ev_io_start(s->loop, &s->io);
}

static void
stdin_resume(porch_stage *st)
{
	struct stdin_src *s = porch_stage_data(st);
	if (s->finished || !s->paused)
		return;
	s->paused = 0;
	stdin_process_buffer(s); /* lines already read come first */
	if (!s->finished && !s->paused && !s->eof)
		ev_io_start(s->loop, &s->io);
}

static void
stdin_drain(porch_stage *st)
{
	stdin_finish(porch_stage_data(st));
}

/* A reload replaced the pipeline: the new stdin stage reads on, from the
 * first byte not yet made into a request. */
static void
stdin_retire(porch_stage *st)
{
	struct stdin_src *s = porch_stage_data(st);
	ev_io_stop(s->loop, &s->io);
	if (s->finished)
		return;
	size_t left = s->len - s->off;
	if (!s->skipping && !s->read_failed &&
	    porch_stage_handover(st, 0, left > 0 ? s->buf + s->off : "", left) == 0) {
		s->off = s->len;
		s->flags_changed = 0; /* the new stage restores them at the end */
	} else if (left > 0 || !s->eof) {
		porch_log(st, PORCH_LOG_WARN, NULL, "stdin: the new pipeline does not read "
		    "standard input: it is no longer read (%zu bytes read were not made into "
		    "requests)", left);
	}
	stdin_finish(s);
}

static int
stdin_adopt(porch_stage *st, int fd, const void *bytes, size_t len)
{
	struct stdin_src *s = porch_stage_data(st);
	if (fd != 0 || s == NULL || s->finished || s->len - s->off > 0)
		return -1;
	if (len == 0)
		return 0; /* nothing read and left: this stage reads on from fd 0 */
	if (s->cap - s->len < len) {
		char *b = realloc(s->buf, s->len + len + STDIN_CHUNK);
		if (b == NULL)
			return -1;
		s->buf = b;
		s->cap = s->len + len + STDIN_CHUNK;
	}
	memcpy(s->buf + s->len, bytes, len);
	s->len += len;
	stdin_process_buffer(s);
	return 0;
}

static void
stdin_outcome(porch_stage *st, porch_msg *m, enum porch_outcome o)
{
	(void)st;
	if (o == PORCH_COMPLETED)
		return;
	const char *line = porch_msg_meta(m, "line");
	const char *session = porch_msg_session(m);
	const char *why = porch_msg_error_text(m);
	porch_log(st, o == PORCH_EXPIRED ? PORCH_LOG_WARN : PORCH_LOG_INFO, m,
	    "stdin:%s: request %" PRIu64 " (session %s) %s: %s%s%s",
	    line ? line : "?", porch_msg_id(m), session ? session : "",
	    porch_outcome_name(o), porch_error_name(porch_msg_error(m)),
	    why && *why ? ": " : "", why && *why ? why : "");
}

static void
stdin_fini(porch_stage *st)
{
	struct stdin_src *s = porch_stage_data(st);
	if (s == NULL)
		return;
	ev_io_stop(s->loop, &s->io);
	if (s->flags_changed)
		(void)fcntl(0, F_SETFL, s->saved_flags);
	free(s->buf);
	free(s->session);
	free(s);
	porch_stage_set_data(st, NULL);
}

static const char *const stdin_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "stdin",
	.summary = "source: one request per line of standard input (text or JSON)",
	.params = stdin_params,
	.flags = PORCH_STAGE_SOURCE,
	.outputs = stdin_outputs,
	.init = stdin_init,
	.start = stdin_start,
	.resume = stdin_resume,
	.drain = stdin_drain,
	.retire = stdin_retire,
	.adopt = stdin_adopt,
	.outcome = stdin_outcome,
	.fini = stdin_fini,
	.description =
	    "Reads standard input a line at a time (a line ends with LF or CRLF; "
	    "blank lines are skipped), and each line is one request. "
	    "A line that does not start with \"{\" (after spaces and tabs) is plain "
	    "text: the line is the request's text, and its session is the session "
	    "parameter.\n\n"
	    "A line that starts with \"{\" is a JSON object:\n\n"
	    "{\"text\": \"what is porch?\", \"session\": \"u1\", \"meta\": "
	    "{\"request-id\": \"q-17\", \"temperature\": \"0.2\"}, \"deadline_ms\": 5000}\n\n"
	    "\"text\" (or the member text-field names) is the request's text, a string, "
	    "and the only member required. \"session\", a string, is the request's "
	    "session (its conversation: a cache or a sink groups by it); without it, the "
	    "session parameter. \"meta\", an object of strings, is the request's "
	    "metadata, which the stages read: the inference stage's \"model\", "
	    "\"max-tokens\", \"temperature\", \"top-p\", \"stop\" (a JSON array of "
	    "strings), \"retries\", \"timeout-ms\" and \"thinking\" (each in place of "
	    "its parameter), \"request-id\" (which jsonl and dlq "
	    "records and stdout's request-id show, to join an answer to its "
	    "question), and any other a stage of the pipeline reads. "
	    "\"deadline_ms\", an integer (0: none), is the request's deadline in "
	    "milliseconds from when it is read, in place of the deadline parameter. "
	    "Other members are ignored. "
	    "Every request also gets the metadata \"line\", its line number in the "
	    "whole input (from 1), set last, so that a line's own \"line\" cannot hide "
	    "where it came from.\n\n"
	    "A line that cannot be a request (not valid JSON, not an object, \"text\" "
	    "missing or not a string, \"session\" not a string, a \"meta\" value that is "
	    "not a string, a bad \"deadline_ms\", longer than max-line) is still one: "
	    "it fails at once as bad-request, counted with the others and sent out the "
	    "error port if it leads somewhere, and standard error says \"porch: "
	    "stdin:LINE: request ID (session S) failed: bad-request: WHY\". "
	    "porch replay feeds a dlq file here, whose records are such lines with "
	    "the text in \"input\" (text-field is \"input\" then).\n\n"
	    "The stage reads only while the graph has room for more requests (the "
	    "in-flight bound and the block channels after it), so a full pipeline stops "
	    "it reading and a writer to a pipe waits. At the end of the input it "
	    "finishes, and porch run ends once every request it made has ended.",
};
