/* stdout.c -- sink stage: prints each answer's session and text, one line each. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

/*
 * Every answer is printed whole, and lines never interleave.
 *
 * Streaming: one answer at a time is "live": its line is open on the
 * terminal and its pieces are written as they come.  The other answers
 * streaming meanwhile are "waiting": their pieces are kept, in the order
 * the streams began, and when the live line ends the oldest of them goes
 * live (what it has so far is written at once).  An answer whose request
 * arrives while a line is live has its whole line kept ("pending") and
 * written, in the order they arrived, right after the live line ends.
 *
 * The hold parameter bounds what is kept (waiting pieces and pending
 * lines).  Past it, the newest waiting streams let their pieces go and
 * print whole when their requests arrive; if the pending lines alone
 * would pass it, the live line is ended early (it is announced on
 * standard error) and that answer too prints whole when it arrives.
 *
 * The terminal is the process's: every stdout stage shares it (they write
 * to one standard output), so lines of two stdout stages never interleave
 * either.  This relies on porch running every stage on one loop thread;
 * with threads (several shards, porch_stage_shard), each answer prints
 * whole, as with stream=false, its line written under a lock, so lines
 * from the shards never interleave.
 */
#include <pthread.h>

static pthread_mutex_t term_lock = PTHREAD_MUTEX_INITIALIZER;

enum line_state {
	LINE_WAITING,   /* streaming, its pieces kept: may go live */
	LINE_LIVE,      /* its line is open on the terminal */
	LINE_WHOLE,     /* prints whole when it arrives; its pieces are ignored */
};

/* An answer that has streamed to a stdout stage: that stage's local pointer. */
struct line {
	struct line *prev, *next;  /* the waiting list, oldest stream first */
	porch_stage *st;
	porch_msg *m;
	enum line_state state;
	char *buf;                 /* waiting: the text so far */
	size_t len, cap;
	size_t shown;              /* live: bytes of text written on its line */
	uint64_t hash;             /* live: their FNV-1a hash */
	int werr;                  /* live: errno of a failed write, 0 if none */
};

static struct term {
	unsigned refs;             /* stdout stages sharing it */
	struct line *live;
	struct line *head, *tail;  /* waiting lines */
	char *pending;             /* whole lines behind the live one */
	size_t plen, pcap;
	size_t pending_lines;
	size_t kept;               /* waiting texts + pending, in bytes */
} term;

struct stdout_sink {
	int stream;
	int request_id;  /* lines start with the request id and a tab */
	size_t hold;
};

static const struct porch_param stdout_params[] = {
	{ "stream", PORCH_PARAM_BOOLEAN, "true", 0, -1, NULL, 0,
	  "print streamed answers piece by piece as they arrive" },
	{ "hold", PORCH_PARAM_SIZE, "4M", 0, 1073741824.0, NULL, 0,
	  "most bytes kept while a line streams: other streams' pieces and lines waiting behind it" },
	{ "request-id", PORCH_PARAM_BOOLEAN, "false", 0, -1, NULL, 0,
	  "start each line with the request id and a tab (REQUEST-ID, SESSION, TEXT)" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

#define FNV_BASIS 0xcbf29ce484222325ull

static uint64_t
fnv1a(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static const char *
session_of(const porch_msg *m)
{
	const char *s = porch_msg_session(m);
	return s ? s : "";
}

/*
 * The request id that starts m's line when st prints them, else NULL: its
 * "request-id" metadata (the http source's X-Request-Id, a JSON line's
 * meta), or else porch's number for it, written into num.
 */
static const char *
rid_of(const porch_stage *st, const porch_msg *m, char num[24])
{
	const struct stdout_sink *s = porch_stage_data(st);
	if (s == NULL || !s->request_id)
		return NULL;
	const char *rid = porch_msg_meta(m, "request-id");
	if (rid != NULL)
		return rid;
	snprintf(num, 24, "%llu", (unsigned long long)porch_msg_id(m));
	return num;
}

static const char *
error_text_of(const porch_msg *m)
{
	const char *s = porch_msg_error_text(m);
	return s ? s : "";
}

/* ---- writing ---------------------------------------------------------- */

/* Ends a run of writes: 0, or -1 with errno set if any of them failed. */
static int
term_flush(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		int e = errno ? errno : EIO;
		clearerr(stdout); /* report each failure, not only the first */
		errno = e;
		return -1;
	}
	return 0;
}

static void
term_put(const char *p, size_t n)
{
	if (n > 0)
		(void)fwrite(p, 1, n, stdout);
}

static int
pending_put(const char *p, size_t n)
{
	if (n > term.pcap - term.plen) {
		size_t need = term.plen + n;
		size_t cap = term.pcap ? term.pcap : 4096;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		char *q = realloc(term.pending, cap);
		if (q == NULL)
			return -1;
		term.pending = q;
		term.pcap = cap;
	}
	memcpy(term.pending + term.plen, p, n);
	term.plen += n;
	return 0;
}

/* The size of m's whole line: "SESSION\tTEXT\n" or "SESSION\terror: TYPE: WHY\n",
 * after "REQUEST-ID\t" if st prints it. */
static size_t
whole_size(const porch_stage *st, const porch_msg *m)
{
	char num[24];
	const char *rid = rid_of(st, m, num);
	size_t n = strlen(session_of(m)) + 2 + (rid ? strlen(rid) + 1 : 0);
	enum porch_error err = porch_msg_error(m);
	if (err != PORCH_ERR_NONE) {
		n += strlen("error: ") + strlen(porch_error_name(err)) + 2 +
		    strlen(error_text_of(m));
	} else {
		size_t len = 0;
		(void)porch_msg_text(m, &len);
		n += len;
	}
	return n;
}

/* Writes m's whole line to the terminal, or to the pending lines; -1: out of memory. */
static int
whole_put(const porch_stage *st, const porch_msg *m, int pend)
{
	const char *parts[7];
	size_t lens[7], n = 0;
	enum porch_error err = porch_msg_error(m);
	char num[24];
	const char *rid = rid_of(st, m, num);
	if (rid != NULL) {
		parts[n] = rid;
		lens[n] = strlen(rid);
		n++;
		parts[n] = "\t";
		lens[n] = 1;
		n++;
	}
	parts[n] = session_of(m);
	lens[n] = strlen(parts[n]);
	n++;
	if (err != PORCH_ERR_NONE) {
		parts[n] = "\terror: ";
		lens[n] = 8;
		n++;
		parts[n] = porch_error_name(err);
		lens[n] = strlen(parts[n]);
		n++;
		parts[n] = ": ";
		lens[n] = 2;
		n++;
		parts[n] = error_text_of(m);
		lens[n] = strlen(parts[n]);
		n++;
	} else {
		parts[n] = "\t";
		lens[n] = 1;
		n++;
		parts[n] = porch_msg_text(m, &lens[n]);
		if (parts[n] == NULL)
			parts[n] = "", lens[n] = 0;
		n++;
	}
	if (!pend) {
		for (size_t i = 0; i < n; i++)
			term_put(parts[i], lens[i]);
		term_put("\n", 1);
		return 0;
	}
	size_t before = term.plen;
	for (size_t i = 0; i < n; i++) {
		if (pending_put(parts[i], lens[i]) != 0) {
			term.plen = before;
			return -1;
		}
	}
	if (pending_put("\n", 1) != 0) {
		term.plen = before;
		return -1;
	}
	term.kept += term.plen - before;
	term.pending_lines++;
	return 0;
}

/* Writes the pending lines (their requests have ended: a failure is told). */
static void
pending_flush(const porch_stage *st)
{
	if (term.plen == 0)
		return;
	term_put(term.pending, term.plen);
	if (term_flush() != 0)
		porch_stage_log(st, "could not write %zu answer line%s that waited behind a "
		    "streamed one: %s", term.pending_lines, term.pending_lines == 1 ? "" : "s",
		    strerror(errno));
	term.kept -= term.plen;
	term.plen = 0;
	term.pending_lines = 0;
	if (term.pcap > (64u << 10)) {
		free(term.pending);
		term.pending = NULL;
		term.pcap = 0;
	}
}

/* ---- lines ------------------------------------------------------------ */

static void
waiting_unlink(struct line *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		term.head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		term.tail = l->prev;
	l->prev = l->next = NULL;
	term.kept -= l->len;
	free(l->buf);
	l->buf = NULL;
	l->len = l->cap = 0;
}

static void
line_free(struct line *l)
{
	if (l->state == LINE_WAITING)
		waiting_unlink(l);
	free(l->buf);
	free(l);
}

static void
live_write(struct line *l, const char *text, size_t len)
{
	term_put(text, len);
	l->shown += len;
	l->hash = fnv1a(l->hash, text, len);
}

/* l, waiting, goes live: its line opens with what it has so far. */
static void
go_live(struct line *l)
{
	const char *session = session_of(l->m);
	char num[24];
	const char *rid = rid_of(l->st, l->m, num);
	if (rid != NULL) {
		term_put(rid, strlen(rid));
		term_put("\t", 1);
	}
	term_put(session, strlen(session));
	term_put("\t", 1);
	live_write(l, l->buf, l->len);
	waiting_unlink(l); /* frees the text, now written */
	l->state = LINE_LIVE;
	term.live = l;
	if (term_flush() != 0)
		l->werr = errno;
}

/* The live line has ended: the lines behind it, then the oldest waiting stream. */
static void
live_over(const porch_stage *st)
{
	term.live = NULL;
	pending_flush(st);
	if (term.head != NULL)
		go_live(term.head);
}

/*
 * Makes room for need more bytes within s's hold: the newest waiting
 * streams let their pieces go (they print whole), and with may_cut, the
 * live line is ended early when the pending lines alone do not fit.
 */
static void
make_room(const struct stdout_sink *s, size_t need, int may_cut)
{
	while (term.kept + need > s->hold && term.tail != NULL) {
		struct line *l = term.tail;
		waiting_unlink(l);
		l->state = LINE_WHOLE;
	}
	if (!may_cut || term.live == NULL || term.kept + need <= s->hold)
		return;
	struct line *l = term.live;
	term_put("\n", 1);
	(void)term_flush(); /* the line ends before the note about it */
	l->state = LINE_WHOLE;
	porch_stage_log(l->st, "the answer to request %llu (session %s) was cut off after "
	    "%zu bytes: %zu bytes of other answers (%zu line%s) waited behind its line, past "
	    "the stage's hold of %zu bytes; it is printed again, whole, on a line of its own "
	    "when its request arrives", (unsigned long long)porch_msg_id(l->m),
	    session_of(l->m), l->shown, term.plen + need, term.pending_lines + 1,
	    term.pending_lines ? "s" : "", s->hold);
	live_over(l->st);
}

/* ---- callbacks -------------------------------------------------------- */

static void
stdout_chunk(porch_stage *st, porch_msg *m, const char *text, size_t len)
{
	struct stdout_sink *s = porch_stage_data(st);
	if (!s->stream || len == 0)
		return;
	struct line *l = porch_msg_local(st, m);
	if (l == NULL) {
		l = calloc(1, sizeof *l);
		if (l == NULL)
			return; /* it prints whole when it arrives */
		l->st = st;
		l->m = m;
		l->state = LINE_WAITING;
		l->hash = FNV_BASIS;
		l->prev = term.tail;
		if (term.tail != NULL)
			term.tail->next = l;
		else
			term.head = l;
		term.tail = l;
		porch_msg_set_local(st, m, l);
		if (term.live == NULL)
			go_live(l);
	}
	switch (l->state) {
	case LINE_LIVE:
		live_write(l, text, len);
		if (term_flush() != 0 && l->werr == 0)
			l->werr = errno;
		return;
	case LINE_WHOLE:
		return;
	case LINE_WAITING:
		break;
	}
	make_room(s, len, 0);
	if (l->state != LINE_WAITING)
		return;
	if (len > l->cap - l->len) {
		size_t cap = l->cap ? l->cap : 256;
		while (cap - l->len < len && cap <= SIZE_MAX / 2)
			cap *= 2;
		char *b = cap - l->len >= len ? realloc(l->buf, cap) : NULL;
		if (b == NULL) {
			waiting_unlink(l);
			l->state = LINE_WHOLE;
			return;
		}
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, text, len);
	l->len += len;
	term.kept += len;
}

/*
 * The live line's request has arrived: its line ends, then the error
 * line if it failed.  If the answer is not what was streamed (a stage
 * changed it after passing its pieces on), the whole answer follows on a
 * line of its own.  Returns 0, or -1 with errno set if a write failed.
 */
static int
live_end(const porch_stage *st, struct line *l, const porch_msg *m)
{
	term_put("\n", 1);
	if (porch_msg_error(m) != PORCH_ERR_NONE) {
		(void)whole_put(st, m, 0);
	} else {
		size_t len = 0;
		const char *text = porch_msg_text(m, &len);
		if (text == NULL)
			text = "", len = 0;
		if (len != l->shown || fnv1a(FNV_BASIS, text, len) != l->hash) {
			porch_stage_log(st, "the answer to request %llu (session %s) is not what "
			    "was streamed (%zu bytes streamed, %zu in the answer): it is printed "
			    "again, whole, on a line of its own", (unsigned long long)porch_msg_id(m),
			    session_of(m), l->shown, len);
			(void)whole_put(st, m, 0);
		}
	}
	int failed = term_flush() != 0;
	int e = failed ? errno : l->werr;
	live_over(st);
	errno = e;
	return e != 0 ? -1 : 0;
}

static void
stdout_forget(porch_stage *st, porch_msg *m, void *local)
{
	struct line *l = local;
	if (l->state == LINE_LIVE) {
		term_put("\n", 1);
		(void)term_flush();
		porch_stage_log(st, "the answer to request %llu (session %s) was cut off: the "
		    "request ended before it was complete (%s: %s); its line shows the first "
		    "%zu bytes", (unsigned long long)porch_msg_id(m), session_of(m),
		    porch_error_name(porch_msg_error(m)), error_text_of(m), l->shown);
		live_over(st);
	}
	line_free(l);
}

static void
stdout_process(porch_stage *st, porch_msg *m)
{
	struct stdout_sink *s = porch_stage_data(st);
	struct line *l = porch_msg_local(st, m);
	int rc = 0;
	errno = 0;
	pthread_mutex_lock(&term_lock);
	if (l != NULL) {
		porch_msg_set_local(st, m, NULL);
		if (l->state == LINE_LIVE) {
			rc = live_end(st, l, m);
			line_free(l);
			goto out;
		}
		line_free(l); /* waiting, or whole: it prints whole */
	}
	if (term.live != NULL) {
		size_t need = whole_size(st, m);
		make_room(s, need, 1);
	}
	if (term.live != NULL) {
		if (whole_put(st, m, 1) != 0) {
			errno = ENOMEM;
			rc = -1;
		}
	} else {
		(void)whole_put(st, m, 0);
		rc = term_flush();
	}
out:
	pthread_mutex_unlock(&term_lock);
	if (rc != 0)
		porch_fail(st, m, PORCH_ERR_INTERNAL, "stdout: %s", strerror(errno));
	else
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
	const porch_params *p = porch_stage_params(st);
	s->stream = porch_param_int(p, "stream") != 0;
	s->hold = (size_t)porch_param_int(p, "hold");
	s->request_id = porch_param_int(p, "request-id") != 0;
	unsigned shards = 1;
	(void)porch_stage_shard(st, &shards);
	if (shards > 1)
		s->stream = 0; /* a shard's streamed line could not be kept whole */
	porch_stage_set_data(st, s);
	pthread_mutex_lock(&term_lock);
	term.refs++;
	pthread_mutex_unlock(&term_lock);
	return 0;
}

static void
stdout_fini(porch_stage *st)
{
	struct stdout_sink *s = porch_stage_data(st);
	if (s == NULL)
		return;
	pthread_mutex_lock(&term_lock);
	/* every request of this stage's graph has ended by now, so none of its
	 * lines is open or waiting; a live line is another graph's (a reload's
	 * new one, sharing the terminal) and goes on */
	if (term.live != NULL && term.live->st == st) {
		term_put("\n", 1);
		term.live = NULL;
	}
	pending_flush(st);
	(void)term_flush();
	if (--term.refs == 0) {
		free(term.pending);
		memset(&term, 0, sizeof term);
	}
	pthread_mutex_unlock(&term_lock);
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
	    "SESSION, a tab, \"error: \", the error's type, \": \" and its text. "
	    "With request-id on, each line starts with the request id and a tab: "
	    "the request's \"request-id\" metadata (the http source's X-Request-Id, "
	    "or the meta of a JSON line on the stdin source), or else porch's own "
	    "number for the request, so an answer can be joined to its question.\n\n"
	    "Every answer is printed whole, and lines never interleave. "
	    "Each line is written, whole and at once, when its request reaches the "
	    "stage, in the order requests arrive; a request that arrives while another "
	    "answer's line is being streamed (below) waits for that line to end, and "
	    "the lines that waited follow it in the order their requests arrived.\n\n"
	    "With stream on, an answer that comes in pieces (from an inference stage "
	    "streaming its tokens) is written piece by piece as it arrives, so the "
	    "reader sees it being written. "
	    "One answer streams live at a time: the oldest of those streaming (the one "
	    "whose first piece came first). "
	    "The pieces of the others are kept, and when the live line ends (its request "
	    "arrives), the oldest of them goes live: what it has so far is written at "
	    "once, and the rest as it comes. "
	    "Every stdout stage of a process shares this, as they share standard "
	    "output.\n\n"
	    "hold bounds what is kept meanwhile, the waiting answers' pieces and the "
	    "lines waiting behind the live one together. "
	    "Past it, the newest streams' pieces are let go: those answers are printed "
	    "whole when their requests arrive, never live. "
	    "If the waiting lines alone would pass it, the live line is ended where it "
	    "is, a line on standard error names the request whose answer was cut there "
	    "and how many bytes of it were shown, and that answer is printed again, "
	    "whole, on a line of its own when its request arrives.\n\n"
	    "If a streamed request ends elsewhere (its deadline passes, a channel "
	    "sheds it, it fails and its error port leads elsewhere), its line is ended "
	    "where it stopped and a line on standard error says so and why; one that "
	    "fails and is routed here has its line ended, and its error line follows. "
	    "If the answer that arrives is not the one that was streamed (a stage after "
	    "the streaming one changed it without streaming the change), it is printed "
	    "again, whole, on a line of its own, with a line on standard error. "
	    "A line that cannot be written (a closed pipe, a full disk) fails its "
	    "request; for lines that waited behind a live one, whose requests have "
	    "ended, the stage says so on standard error.",
};
