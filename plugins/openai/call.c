/*
 * call.c -- one HTTP call of the openai worker, whichever transport moves
 * its bytes: what the answer's head says (status, Content-Type,
 * Retry-After), its body bytes (to the SSE parser, whose events go to the
 * stage as they come, or to the whole-body buffer), the stall limits
 * (first-byte-timeout, idle-timeout), and how the transfer's end becomes
 * the call's: done, or failed with a porch error, the HTTP status and
 * Retry-After.
 *
 * A call's struct is kept on a free list and reused.  A call is recycled
 * before porch hears of its end, since the stage may start another one (a
 * retry) from inside porch_call_done or porch_call_fail.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "call.h"

/* An answer buffer larger than this is freed, not kept, when a call ends. */
#define OAI_KEEP_BUFFER (64 * 1024)

/* Bytes of an error answer kept for the failure's text. */
#define OAI_EXCERPT 160

static void oai_on_read_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void oai_idle_timer_start(struct oai_call *cl);

/* ---- calls ----------------------------------------------------------------- */

void
oai_call_destroy(struct oai_call *cl)
{
	oai_slices_clear(cl);
	free(cl->owned);
	free(cl->resp);
	sse_free(&cl->sse);
	oai_acc_clear(&cl->acc);
	free(cl->error_json);
	free(cl);
}

struct oai_call *
oai_call_get(struct oai *o, porch_call *c)
{
	struct oai_call *cl = o->free;
	if (cl != NULL) {
		o->free = cl->next;
	} else {
		if ((cl = calloc(1, sizeof *cl)) == NULL)
			return NULL;
		cl->o = o;
		ev_init(&cl->read_timer, oai_on_read_timer);
		cl->read_timer.data = cl;
		ev_init(&cl->sl.timer, oai_on_slice);
		cl->sl.timer.data = cl;
	}
	cl->prev = NULL;
	cl->next = o->active;
	if (o->active != NULL)
		o->active->prev = cl;
	o->active = cl;
	cl->qnext = NULL;
	cl->c = c;
	cl->conn = NULL;
	cl->retried = 0;
	cl->sock_err = 0;
	cl->nofd_since = 0;
	cl->status = 0;
	cl->rlen = 0;
	cl->total = 0;
	sse_reset(&cl->sse);
	cl->retry_after = -1;
	cl->event_stream = cl->ms_given = cl->started = cl->sse_mode = 0;
	cl->saw_done = cl->cancelled = 0;
	cl->fail_err = PORCH_ERR_NONE;
	cl->fail_status = 0;
	cl->fail_why[0] = '\0';
	cl->errbuf[0] = '\0';
	/* a long text of the answer is left escaped, to be unescaped a slice
	 * at a time (slice.c) */
	cl->acc.lazy = OAI_SLICE;
	return cl;
}

void
oai_call_put(struct oai_call *cl)
{
	struct oai *o = cl->o;
	ev_timer_stop(o->loop, &cl->read_timer);
	oai_slices_clear(cl);
	free(cl->owned);
	cl->owned = NULL;
	cl->body = NULL;
	cl->blen = 0;
	cl->conn = NULL;
	oai_acc_clear(&cl->acc);
	free(cl->error_json);
	cl->error_json = NULL;
	if (cl->rcap > OAI_KEEP_BUFFER) {
		free(cl->resp);
		cl->resp = NULL;
		cl->rcap = 0;
	}
	if (cl->sse.cap > OAI_KEEP_BUFFER || cl->sse.dcap > OAI_KEEP_BUFFER)
		sse_free(&cl->sse);
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		o->active = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	cl->state = OAI_FREE;
	cl->c = NULL;
	cl->prev = NULL;
	cl->next = o->free;
	o->free = cl;
}

void
oai_queue_push(struct oai_call *cl)
{
	struct oai *o = cl->o;
	cl->state = OAI_WAITING;
	cl->qnext = NULL;
	if (o->qtail != NULL)
		o->qtail->qnext = cl;
	else
		o->qhead = cl;
	o->qtail = cl;
}

void
oai_queue_push_front(struct oai_call *cl)
{
	struct oai *o = cl->o;
	cl->state = OAI_WAITING;
	cl->qnext = o->qhead;
	o->qhead = cl;
	if (o->qtail == NULL)
		o->qtail = cl;
}

struct oai_call *
oai_queue_pop(struct oai *o)
{
	struct oai_call *cl = o->qhead;
	if (cl == NULL)
		return NULL;
	o->qhead = cl->qnext;
	if (o->qhead == NULL)
		o->qtail = NULL;
	cl->qnext = NULL;
	return cl;
}

/* ---- ending calls -------------------------------------------------------- */

/*
 * Records why we stop the transfer (the first reason wins); the transport
 * then stops it, and oai_call_end fails the call with it.
 */
void
oai_stop(struct oai_call *cl, enum porch_error err, int status, const char *fmt, ...)
{
	if (cl->fail_err != PORCH_ERR_NONE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cl->fail_why, sizeof cl->fail_why, fmt, ap);
	va_end(ap);
	cl->fail_err = err;
	cl->fail_status = status;
}

/* oai_meta_fn: one piece of the answer's metadata, on the call. */
static void
oai_set_meta(void *arg, const char *key, const char *value)
{
	porch_call_set_meta(arg, key, value);
}

/*
 * Masks the API key wherever the len bytes at s repeat it, in place, and
 * returns their new length: a server may quote the key it refused in its
 * error message, which goes on to logs, dead letters and the client's
 * answer.  Done on the whole body, before an excerpt could cut a key short.
 */
static size_t
oai_scrub_n(const char *key, char *s, size_t len)
{
	static const char mark[] = "[api key]";
	size_t klen = key != NULL ? strlen(key) : 0, mlen = sizeof mark - 1;
	if (klen == 0 || s == NULL)
		return len;
	char *end = s + len, *p = s;
	while ((p = memmem(p, (size_t)(end - p), key, klen)) != NULL) {
		if (klen >= mlen) {
			memcpy(p, mark, mlen);
			memmove(p + mlen, p + klen, (size_t)(end - p - klen));
			end -= klen - mlen;
			p += mlen;
		} else {
			memset(p, '*', klen);
			p += klen;
		}
	}
	return (size_t)(end - s);
}

/* The same on a string. */
static void
oai_scrub(const char *key, char *s)
{
	if (s != NULL)
		s[oai_scrub_n(key, s, strlen(s))] = '\0';
}

/*
 * Ends a call whose transfer is over: recycles it first, since the stage
 * may start another call at once, then fails c, with the upstream's error
 * object (cl->error_json) as "openai.error".
 */
static void oai_fail(struct oai_call *cl, enum porch_error err, int status,
    int64_t retry_after, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
oai_fail(struct oai_call *cl, enum porch_error err, int status, int64_t retry_after,
    const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	porch_call *c = cl->c;
	char *ej = cl->error_json;
	cl->error_json = NULL;
	oai_scrub(cl->o->key, why);
	oai_scrub(cl->o->key, ej);
	oai_call_put(cl);
	if (ej != NULL)
		porch_call_set_meta(c, "openai.error", ej);
	free(ej);
	if (status != 0)
		porch_call_set_status(c, status);
	if (retry_after >= 0)
		porch_call_set_retry_after(c, retry_after);
	porch_call_fail(c, err, "%s", why);
}

/* Ends a call with success; a stream's metadata goes on c first. */
void
oai_succeed(struct oai_call *cl)
{
	porch_call *c = cl->c;
	int r = oai_acc_meta(&cl->acc, oai_set_meta, c);
	oai_call_put(cl);
	if (r != OAI_OK)
		porch_call_fail(c, PORCH_ERR_INTERNAL, "out of memory for the answer's metadata");
	else
		porch_call_done(c);
}

/* Keeps the error object of an error answer or event for "openai.error". */
static void
oai_keep_error(struct oai_call *cl, const char *body, size_t len)
{
	if (cl->error_json == NULL)
		cl->error_json = oai_error_json(body, len);
}

/* ---- the answer's head ----------------------------------------------------- */

void
oai_resp_begin(struct oai_call *cl)
{
	cl->retry_after = -1;
	cl->ms_given = 0;
	cl->event_stream = 0;
	cl->last = ev_now(cl->o->loop);
}

/* Retry-After: delta-seconds or an HTTP-date; -1 if neither. */
static int64_t
oai_retry_after(const char *v, size_t n)
{
	char buf[64];
	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	if (strspn(buf, "0123456789") == n) {
		if (n > 9)
			return 999999999LL * 1000; /* absurd, but a wait all the same */
		return strtoll(buf, NULL, 10) * 1000;
	}
	time_t t = curl_getdate(buf, NULL);
	if (t == (time_t)-1)
		return -1;
	time_t now = time(NULL);
	return t > now ? (int64_t)(t - now) * 1000 : 0;
}

static int
oai_name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

void
oai_resp_header(struct oai_call *cl, const char *name, size_t nlen, const char *v, size_t vn)
{
	cl->last = ev_now(cl->o->loop);
	while (vn > 0 && (*v == ' ' || *v == '\t'))
		v++, vn--;
	while (vn > 0 && isspace((unsigned char)v[vn - 1]))
		vn--;
	if (oai_name_is(name, nlen, "content-type")) {
		cl->event_stream = vn >= 17 && strncasecmp(v, "text/event-stream", 17) == 0;
	} else if (oai_name_is(name, nlen, "retry-after-ms")) {
		/* OpenAI's own, in milliseconds, possibly with a fraction */
		char buf[32];
		if (vn > 0 && vn < sizeof buf && strspn(v, "0123456789.") >= vn) {
			memcpy(buf, v, vn);
			buf[vn] = '\0';
			double ms = strtod(buf, NULL);
			if (ms < 1e15) {
				cl->retry_after = (int64_t)(ms + 0.999);
				cl->ms_given = 1;
			}
		}
	} else if (!cl->ms_given && oai_name_is(name, nlen, "retry-after")) {
		cl->retry_after = oai_retry_after(v, vn);
	}
}

/* ---- the answer's body ----------------------------------------------------- */

/* Whether p lies in the n bytes at base (a buffer of ours, or not). */
static int
oai_within(const char *p, const char *base, size_t n)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
	return base != NULL && a >= b && a - b < n;
}

/* One streamed event; see sse_event_fn. */
int
oai_on_event(void *arg, enum sse_kind kind, const char *data, size_t len)
{
	struct oai_call *cl = arg;
	char excerpt[OAI_EXCERPT];
	if (kind == SSE_ERROR) {
		/* a copy without the API key, should the server quote it */
		char *clean = cl->o->key != NULL ? malloc(len + 1) : NULL;
		if (clean != NULL) {
			memcpy(clean, data, len);
			len = oai_scrub_n(cl->o->key, clean, len);
			data = clean;
		}
		oai_keep_error(cl, data, len);
		oai_error_excerpt(data, len, excerpt, sizeof excerpt);
		free(clean);
		oai_stop(cl, PORCH_ERR_UPSTREAM, 200, "upstream sent an error event: %s", excerpt);
		return -1;
	}
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		cl->saw_done = 1;
		return 1;
	}
	struct oai_event ev;
	char why[256];
	int r = oai_chunk(cl->o->shape.chat, data, len, &cl->acc, &ev, why, sizeof why);
	if (r == OAI_ERROR) {
		oai_keep_error(cl, data, len);
		oai_stop(cl, PORCH_ERR_UPSTREAM, 200, "upstream sent an error event: %s", why);
		return -1;
	}
	if (r == OAI_NOMEM) {
		oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the stream");
		return -1;
	}
	if (r != OAI_OK) {
		oai_stop(cl, PORCH_ERR_UPSTREAM, 200, "%s", why);
		return -1;
	}
	/* an event with neither text nor extras of its choice (the role, the
	 * finish reason, usage, a system_fingerprint repeated: kept for the
	 * end) is no piece */
	int later = 0;
	if (ev.tlen > 0 || ev.choice != NULL || ev.delta != NULL) {
		struct porch_piece pc = { ev.chunk, ev.choice, ev.delta };
		int extras = ev.chunk != NULL || ev.choice != NULL || ev.delta != NULL;
		/* a long text goes in slices (slice.c): the event's data stays in
		 * the parser's buffer until they are out, the parser being paused;
		 * data in the piece fed (or jansson's tree) is copied (taken) */
		int copy = ev.root == NULL && !oai_within(data, cl->sse.data, cl->sse.dcap);
		later = oai_hand(cl, ev.text, ev.tlen, ev.raw, copy, &ev.root,
		    extras ? &pc : NULL); /* may cancel cl */
	}
	oai_event_release(&ev);
	if (cl->cancelled || cl->fail_err != PORCH_ERR_NONE)
		return -1;
	return later ? SSE_PAUSE : 0;
}

int
oai_resp_body(struct oai_call *cl, const char *p, size_t n)
{
	struct oai *o = cl->o;
	if (cl->cancelled || cl->fail_err != PORCH_ERR_NONE)
		return -1;
	cl->last = ev_now(o->loop);
	if (!cl->started) {
		cl->started = 1;
		oai_idle_timer_start(cl);
		/* by what the server sent, not what we asked for: a server that
		 * does not stream answers in JSON, and errors come as JSON */
		cl->sse_mode = cl->status >= 200 && cl->status < 300 && cl->event_stream;
	}
	if (n > o->max_response - cl->total) {
		oai_stop(cl, PORCH_ERR_UPSTREAM, cl->status,
		    "the answer is larger than max-response (%zu bytes)", o->max_response);
		return -1;
	}
	cl->total += n;
	if (cl->sl.on) {
		/* after the slices of a long text: the rest of what the
		 * transport read before it paused, or all (it has no pause) */
		if (js_put(&cl->sl.later, p, n) != 0) {
			oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the stream");
			return -1;
		}
		return 0;
	}
	if (!cl->sse_mode) {
		if (cl->rcap - cl->rlen <= n) {
			size_t cap = cl->rcap ? cl->rcap : 4096;
			while (cap - cl->rlen <= n)
				cap *= 2; /* bounded by max-response */
			char *r = realloc(cl->resp, cap);
			if (r == NULL) {
				oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the answer");
				return -1;
			}
			cl->resp = r;
			cl->rcap = cap;
		}
		memcpy(cl->resp + cl->rlen, p, n);
		cl->rlen += n;
		cl->resp[cl->rlen] = '\0';
		return 0;
	}
	int r = sse_feed(&cl->sse, p, n, oai_on_event, cl);
	if (r == SSE_PAUSE) {
		/* a long text's slices are out: what follows it waits */
		size_t used = cl->sse.used;
		if (js_put(&cl->sl.later, p + used, n - used) != 0) {
			oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the stream");
			return -1;
		}
		if (o->io->pause != NULL)
			o->io->pause(cl, 1);
		return 0;
	}
	if (r == -2) {
		oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the stream");
		return -1;
	}
	/* 1: "[DONE]"; what follows is read, and ignored, to the end */
	return r == -1 ? -1 : 0;
}

/* ---- the stall limits ------------------------------------------------------ */

/*
 * One timer per call holds both limits.  It is set to first-byte-timeout
 * when the request goes out, set once more to idle-timeout when the
 * answer's body begins, and otherwise never touched while bytes come:
 * each byte only notes the time (cl->last), and the timer, when it fires,
 * works out whether the limit has really passed, and if not waits the rest
 * (no timer call per token).
 */
void
oai_read_timer_start(struct oai_call *cl)
{
	struct oai *o = cl->o;
	cl->sent = cl->last = ev_now(o->loop);
	ev_timer_stop(o->loop, &cl->read_timer);
	ev_timer_set(&cl->read_timer, (double)o->first_byte_ms / 1000., 0.);
	ev_timer_start(o->loop, &cl->read_timer);
}

/* The answer's body began (oai_resp_body): idle-timeout from now on. */
static void
oai_idle_timer_start(struct oai_call *cl)
{
	struct oai *o = cl->o;
	if (!ev_is_active(&cl->read_timer))
		return; /* none runs (a call that ends now, or curl before prereq) */
	ev_timer_stop(o->loop, &cl->read_timer);
	ev_timer_set(&cl->read_timer, (double)o->idle_ms / 1000., 0.);
	ev_timer_start(o->loop, &cl->read_timer);
}

/*
 * The timer: no byte of the answer's body first-byte-timeout after the
 * request was sent, or none for idle-timeout once it began, ends the call
 * as timeout.
 */
static void
oai_on_read_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct oai_call *cl = t->data;
	struct oai *o = cl->o;
	(void)revents;
	if (cl->cancelled || cl->state != OAI_RUNNING) {
		/* the transport stops its cancelled calls first; cannot happen */
		return;
	}
	int64_t limit = cl->started ? o->idle_ms : o->first_byte_ms;
	ev_tstamp left = (cl->started ? cl->last : cl->sent) + (double)limit / 1000. - ev_now(loop);
	if (left > 0) {
		/* bytes came since it was set: wait for the rest */
		ev_timer_set(t, left, 0.);
		ev_timer_start(loop, t);
		return;
	}
	o->io->abort(cl);
	cl->state = OAI_ENDING;
	if (cl->saw_done) {
		/* the answer was whole; only the end of the body never came */
		oai_succeed(cl);
		return;
	}
	if (cl->started)
		oai_fail(cl, PORCH_ERR_TIMEOUT, 0, -1, "%s: upstream silent for %lld ms "
		    "in the middle of the answer", o->idle_name, (long long)limit);
	else
		oai_fail(cl, PORCH_ERR_TIMEOUT, 0, -1, "%s: no byte of the answer from "
		    "upstream %lld ms after the request was sent", o->first_byte_name,
		    (long long)limit);
}

/* ---- the transfer's end ------------------------------------------------------ */

/* A whole answer (or a stream that ended): ends the call. */
static void
oai_finish_ok(struct oai_call *cl)
{
	struct oai *o = cl->o;
	int status = cl->status;
	char why[384];
	if (cl->sse_mode) {
		/* sse_end drops an event no blank line ended, as the format
		 * says, a last "data: [DONE]" too; it hands over nothing, so
		 * cl can be neither cancelled nor failed by it */
		int cut = sse_end(&cl->sse);
		if (cl->saw_done)
			oai_succeed(cl);
		else if (cut)
			oai_fail(cl, PORCH_ERR_UPSTREAM, status, -1, "malformed stream: "
			    "it ended inside an event (no blank line after its data)");
		else
			oai_fail(cl, PORCH_ERR_UPSTREAM, status, -1,
			    "malformed stream: it ended without \"data: [DONE]\"");
		return;
	}
	/* the metadata first (set by oai_answer_read): the piece may cancel
	 * the call */
	struct oai_answer an;
	int r = oai_answer_read(o->shape.chat, cl->resp ? cl->resp : "", cl->rlen, &an,
	    oai_set_meta, cl->c, OAI_SLICE, why, sizeof why);
	if (r != OAI_OK) {
		oai_answer_release(&an);
		if (r == OAI_ERROR) {
			oai_keep_error(cl, cl->resp ? cl->resp : "", cl->rlen);
			oai_fail(cl, PORCH_ERR_UPSTREAM, status, -1,
			    "upstream answered %d with an error: %s", status, why);
		} else if (r == OAI_NOMEM) {
			oai_fail(cl, PORCH_ERR_INTERNAL, 0, -1,
			    "out of memory for the answer's metadata");
		} else {
			oai_fail(cl, PORCH_ERR_UPSTREAM, status, -1, "%s", why);
		}
		return;
	}
	/* a long text in slices (slice.c): its bytes are in cl->resp, or in
	 * jansson's tree, which is taken over */
	int later = an.tlen > 0 &&
	    oai_hand(cl, an.text, an.tlen, an.raw, 0, &an.root, NULL); /* may cancel cl */
	oai_answer_release(&an);
	if (cl->cancelled) {
		oai_call_put(cl);
		return;
	}
	if (later) {
		cl->sl.succeed = 1; /* once the last slice is out */
		return;
	}
	if (cl->fail_err != PORCH_ERR_NONE) {
		oai_fail(cl, cl->fail_err, 0, -1, "%s", cl->fail_why);
		return;
	}
	oai_succeed(cl);
}

void
oai_call_end(struct oai_call *cl, enum porch_error err, const char *fmt, ...)
{
	struct oai *o = cl->o;
	char excerpt[OAI_EXCERPT];
	int status = cl->status;
	cl->state = OAI_ENDING;
	ev_timer_stop(o->loop, &cl->read_timer);
	if (cl->sl.on) {
		/* the slices of a long text are still out, and what came after
		 * it waits: the end comes after them (slice.c) */
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(cl->sl.end_why, sizeof cl->sl.end_why, fmt, ap);
		va_end(ap);
		cl->sl.end_err = err;
		cl->sl.end_pending = 1;
		return;
	}
	if (cl->fail_err != PORCH_ERR_NONE) {
		oai_fail(cl, cl->fail_err, cl->fail_status, -1, "%s", cl->fail_why);
	} else if (status >= 300 || (status != 0 && status < 200)) {
		/* what came of the error body is enough, even if cut short */
		char wait[48] = "";
		if (cl->resp != NULL) {
			cl->rlen = oai_scrub_n(cl->o->key, cl->resp, cl->rlen);
			if (cl->rlen < cl->rcap)
				cl->resp[cl->rlen] = '\0';
		}
		oai_keep_error(cl, cl->resp ? cl->resp : "", cl->rlen);
		oai_error_excerpt(cl->resp ? cl->resp : "", cl->rlen, excerpt, sizeof excerpt);
		if (cl->retry_after >= 0)
			snprintf(wait, sizeof wait, " (retry after %lld ms)",
			    (long long)cl->retry_after);
		oai_fail(cl, PORCH_ERR_UPSTREAM, status, cl->retry_after,
		    "upstream answered %d%s: %s", status, wait, excerpt);
	} else if (err == PORCH_ERR_NONE || cl->saw_done) {
		oai_finish_ok(cl);
	} else {
		char why[384];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof why, fmt, ap);
		va_end(ap);
		oai_fail(cl, err, 0, -1, "%s", why);
	}
}
