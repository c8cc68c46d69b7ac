/* stdout.c -- sink stage: prints each answer's session and text, one line each. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

/*
 * Streaming: the first request whose answer comes in pieces gets the
 * terminal, and its pieces are written as they come; pieces of other
 * requests meanwhile are not shown (their lines would interleave), and
 * those answers are printed whole when they arrive.
 */
struct stdout_sink {
	int stream;
	const porch_msg *open;  /* the request whose line is being streamed */
	char *pending;          /* whole lines that came while a line was open */
	size_t plen, pcap;
};

/* Past this, an open line is ended early rather than hold more lines back. */
#define PENDING_MAX (4u << 20)

/* A non-NULL local pointer marks the request whose line is open. */
static char open_mark;

static const struct porch_param stdout_params[] = {
	{ "stream", PORCH_PARAM_BOOLEAN, "true", 0, -1, NULL, 0,
	  "print streamed answers piece by piece as they arrive" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/*
 * Writes "SESSION\tTEXT\n", or "SESSION\terror: NAME: TEXT\n" for a failed
 * message (one routed here from an error port).  The text's own newlines are
 * written as they are.  Returns 0, or -1 with errno set if writing failed.
 */
static int
stdout_write(const porch_msg *m)
{
	const char *session = porch_msg_session(m);
	enum porch_error err = porch_msg_error(m);
	int failed = 0;

	if (session == NULL)
		session = "";
	if (err != PORCH_ERR_NONE) {
		const char *why = porch_msg_error_text(m);
		if (printf("%s\terror: %s: %s\n", session, porch_error_name(err),
		    why ? why : "") < 0)
			failed = 1;
	} else {
		size_t len = 0;
		const char *text = porch_msg_text(m, &len);
		if (fputs(session, stdout) == EOF || putchar('\t') == EOF)
			failed = 1;
		else if (len > 0 && fwrite(text, 1, len, stdout) != len)
			failed = 1;
		else if (putchar('\n') == EOF)
			failed = 1;
	}
	if (fflush(stdout) == EOF)
		failed = 1;
	if (failed) {
		int e = errno;
		clearerr(stdout); /* report each failing message, not only the first */
		errno = e ? e : EIO;
		return -1;
	}
	return 0;
}

/* Keeps a whole line to print when the open line is done; -1: out of memory. */
static int
pending_add(struct stdout_sink *s, const char *a, size_t alen, const char *b, size_t blen)
{
	size_t need = s->plen + alen + blen;
	if (need > s->pcap) {
		size_t cap = s->pcap ? s->pcap : 4096;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		char *p = realloc(s->pending, cap);
		if (p == NULL)
			return -1;
		s->pending = p;
		s->pcap = cap;
	}
	memcpy(s->pending + s->plen, a, alen);
	memcpy(s->pending + s->plen + alen, b, blen);
	s->plen = need;
	return 0;
}

static void
pending_flush(struct stdout_sink *s)
{
	if (s->plen > 0)
		fwrite(s->pending, 1, s->plen, stdout);
	s->plen = 0;
}

/* m arrives whole while another line is open: its line waits. */
static int
stdout_hold_line(struct stdout_sink *s, const porch_msg *m)
{
	char head[1024];
	const char *body;
	size_t blen;
	if (porch_msg_error(m) != PORCH_ERR_NONE) {
		snprintf(head, sizeof head, "%s\terror: %s: ", porch_msg_session(m),
		    porch_error_name(porch_msg_error(m)));
		body = porch_msg_error_text(m);
		blen = strlen(body);
	} else {
		snprintf(head, sizeof head, "%s\t", porch_msg_session(m));
		body = porch_msg_text(m, &blen);
	}
	if (pending_add(s, head, strlen(head), body, blen) != 0 ||
	    pending_add(s, "\n", 1, "", 0) != 0) {
		errno = ENOMEM;
		return -1;
	}
	if (s->plen > PENDING_MAX) {
		/* the open line has held back enough: end it here */
		putchar('\n');
		pending_flush(s);
		fflush(stdout);
		s->open = NULL;
	}
	return 0;
}

static void
stdout_chunk(porch_stage *st, porch_msg *m, const char *text, size_t len)
{
	struct stdout_sink *s = porch_stage_data(st);
	if (!s->stream || (s->open != NULL && s->open != m))
		return;
	if (s->open == NULL && porch_msg_local(st, m) != NULL)
		return; /* its line was ended early: it prints whole when it arrives */
	if (s->open == NULL) {
		s->open = m;
		porch_msg_set_local(st, m, &open_mark);
		fputs(porch_msg_session(m), stdout);
		putchar('\t');
	}
	/* errors show when the message arrives, with its final flush */
	fwrite(text, 1, len, stdout);
	fflush(stdout);
}

/* The streamed line of m is over: its text is out; a newline, or the error. */
static int
stdout_close_line(struct stdout_sink *s, porch_stage *st, const porch_msg *m)
{
	s->open = NULL;
	porch_msg_set_local(st, (porch_msg *)m, NULL);
	int failed = putchar('\n') == EOF;
	if (porch_msg_error(m) != PORCH_ERR_NONE) {
		failed |= printf("%s\terror: %s: %s\n", porch_msg_session(m),
		    porch_error_name(porch_msg_error(m)), porch_msg_error_text(m)) < 0;
	}
	pending_flush(s);
	failed |= fflush(stdout) == EOF || ferror(stdout);
	if (failed) {
		int e = errno;
		clearerr(stdout);
		errno = e ? e : EIO;
		return -1;
	}
	return 0;
}

static void
stdout_forget(porch_stage *st, porch_msg *m, void *local)
{
	(void)local;
	struct stdout_sink *s = porch_stage_data(st);
	if (s->open != m)
		return;
	s->open = NULL;
	putchar('\n');
	pending_flush(s);
	fflush(stdout);
	porch_stage_log(st, "the answer to request %llu (session %s) was cut off: the "
	    "request ended before it was complete (%s: %s)", (unsigned long long)porch_msg_id(m),
	    porch_msg_session(m), porch_error_name(porch_msg_error(m)),
	    porch_msg_error_text(m));
}

static void
stdout_process(porch_stage *st, porch_msg *m)
{
	struct stdout_sink *s = porch_stage_data(st);
	errno = 0;
	if (s->open == m) {
		if (stdout_close_line(s, st, m) != 0)
			porch_fail(st, m, PORCH_ERR_INTERNAL, "stdout: %s", strerror(errno));
		else
			porch_done(st, m);
		return;
	}
	if (porch_msg_local(st, m) != NULL) {
		/* its line was ended early (PENDING_MAX): print it whole */
		porch_msg_set_local(st, m, NULL);
	}
	if (s->open != NULL) {
		if (stdout_hold_line(s, m) != 0)
			porch_fail(st, m, PORCH_ERR_INTERNAL, "stdout: %s", strerror(errno));
		else
			porch_done(st, m);
		return;
	}
	if (stdout_write(m) != 0) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "stdout: %s", strerror(errno));
		return;
	}
	porch_done(st, m);
}

static int
stdout_init(porch_stage *st)
{
	struct stdout_sink *s = calloc(1, sizeof *s);
	if (s == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	s->stream = porch_param_int(porch_stage_params(st), "stream") != 0;
	porch_stage_set_data(st, s);
	return 0;
}

static void
stdout_fini(porch_stage *st)
{
	struct stdout_sink *s = porch_stage_data(st);
	if (s != NULL) {
		pending_flush(s);
		fflush(stdout);
		free(s->pending);
	}
	free(s);
	porch_stage_set_data(st, NULL);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "stdout",
	.summary = "sink: prints each answer's session and text, one line each",
	.params = stdout_params,
	.outputs = NULL,
	.init = stdout_init,
	.process = stdout_process,
	.fini = stdout_fini,
	.chunk = stdout_chunk,
	.forget = stdout_forget,
	.description =
	    "Prints SESSION, a tab and the text, then a newline, for each request "
	    "that reaches it; the text's own newlines are written as they are. "
	    "A failed request, one routed here from an error port, prints "
	    "SESSION, a tab, \"error: \", the error's type, \": \" and its text.\n\n"
	    "With stream on, an answer that comes in pieces (from an inference stage "
	    "streaming its tokens) is written piece by piece as it arrives, so the "
	    "reader sees it being written. "
	    "One answer streams at a time: pieces of other requests meanwhile are not "
	    "shown, and those answers are printed whole when they arrive, so lines "
	    "never interleave. "
	    "If a streamed request ends elsewhere (its deadline passes, a channel "
	    "sheds it), its line is ended and the stage says why on standard error.",
};
