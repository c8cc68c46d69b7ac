/*
 * inference.c -- stage: asks the stage's worker for a completion of the
 * message text, with generation settings, a deadline, and retries.
 *
 * Each message held is one struct held, which lives through every attempt.
 * One timer per held serves both phases: while a call runs it fires at the
 * attempt's timeout or the request's deadline, whichever comes first; while
 * waiting to retry it fires when the backoff is over.  Tokens go downstream
 * with porch_stream as they arrive; once one has gone, a failure is final,
 * since a client cannot take back what it has been shown.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <porch/plugin.h>

/* Contexts allocated at a time when the free list is empty. */
#define HELD_PER_SLAB 64

/* An answer buffer larger than this is freed, not kept, when a call ends. */
#define ANSWER_KEEP (64 * 1024)

struct inference;

enum phase {
	PHASE_IDLE,     /* in the free list */
	PHASE_CALL,     /* a call to the worker runs */
	PHASE_BACKOFF,  /* waiting to try again */
};

/*
 * One message held while its attempts run.  The answer is gathered here and
 * becomes the message text only when a call succeeds: the prompt (the
 * message text) stays untouched while the worker may still be reading it,
 * and a failed message keeps its prompt, for a retry or a dead letter.
 */
struct held {
	struct held *next;      /* free list */
	struct held *prev_active, *next_active;
	struct inference *in;
	porch_msg *m;
	porch_call *call;       /* PHASE_CALL: the call, once porch_infer returned */
	ev_timer timer;
	enum phase phase;
	char *answer;
	size_t len, cap;
	int oom;                /* the answer could not be stored */
	int streamed;           /* a piece went downstream: no retry */
	int stream_off;         /* nobody downstream takes pieces */
	int in_submit;          /* inside porch_infer: an end is only recorded */
	int ended_in_submit;
	enum porch_error end_err;
	char end_why[512];
	unsigned retries;       /* this request's: the stage's or its own */
	double timeout;         /* s, per attempt, likewise */
};

struct slab {
	struct slab *next;
	struct held held[HELD_PER_SLAB];
};

struct inference {
	porch_stage *st;
	struct ev_loop *loop;
	struct held *free;      /* contexts ready for reuse */
	struct held *active;    /* contexts holding a message */
	struct slab *slabs;     /* every context, for fini */
	double timeout;         /* s, per attempt */
	unsigned retries;
	double backoff, max_backoff; /* s */
	int stream;
	const char *model;
	char max_tokens[32], temperature[32], top_p[32];
	const char *thinking;   /* "true", "false", or NULL: not said */
	int64_t context_limit;  /* tokens; 0: none */
	int long_port;          /* where prompts over context-limit go, if used */
	char *stop_json;        /* the stop list as a JSON array, or NULL */
	uint64_t rng;           /* splitmix64, for the jitter */
};

static const struct porch_param inference_params[] = {
	{ "model", PORCH_PARAM_STRING, NULL, 0, -1, NULL, 0,
	  "model name for the worker; a request's \"model\" metadata overrides it" },
	{ "max-tokens", PORCH_PARAM_INTEGER, NULL, 1, 1048576, NULL, 0,
	  "most tokens to generate; a request's \"max-tokens\" metadata overrides it" },
	{ "temperature", PORCH_PARAM_NUMBER, NULL, 0, 2, NULL, 0,
	  "sampling temperature; a request's \"temperature\" metadata overrides it" },
	{ "top-p", PORCH_PARAM_NUMBER, NULL, 0, 1, NULL, 0,
	  "nucleus sampling mass; a request's \"top-p\" metadata overrides it" },
	{ "stop", PORCH_PARAM_LIST, NULL, 0, -1, NULL, 0,
	  "stop sequences, comma-separated; a request's \"stop\" metadata overrides them" },
	{ "timeout-ms", PORCH_PARAM_DURATION, "60s", 1, 86400000, NULL, 0,
	  "longest one attempt may take before it is cancelled as a timeout" },
	{ "retries", PORCH_PARAM_INTEGER, "2", 0, 100, NULL, 0,
	  "attempts after the first, for retryable errors only" },
	{ "backoff-ms", PORCH_PARAM_DURATION, "100ms", 0, 3600000, NULL, 0,
	  "base of the exponential backoff between attempts (full jitter)" },
	{ "max-backoff-ms", PORCH_PARAM_DURATION, "10s", 0, 3600000, NULL, 0,
	  "cap of the backoff between attempts, before Retry-After" },
	{ "stream", PORCH_PARAM_BOOLEAN, "true", 0, -1, NULL, 0,
	  "pass tokens downstream as they arrive (porch_stream)" },
	{ "context-limit", PORCH_PARAM_INTEGER, "0", 0, 100000000, NULL, 0,
	  "the model's context in tokens (prompt, at 4 bytes a token, plus max-tokens); "
	  "0: not checked" },
	{ "thinking", PORCH_PARAM_BOOLEAN, NULL, 0, -1, NULL, 0,
	  "the model's thinking switch (chat_template_kwargs.enable_thinking); a request's "
	  "\"thinking\" metadata overrides it" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static void attempt_start(struct held *h);

/* ---- contexts ----------------------------------------------------------- */

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

static struct held *
held_get(struct inference *in)
{
	if (in->free == NULL) {
		struct slab *sl = calloc(1, sizeof *sl);
		if (sl == NULL)
			return NULL;
		sl->next = in->slabs;
		in->slabs = sl;
		for (size_t i = 0; i < HELD_PER_SLAB; i++) {
			struct held *h = &sl->held[i];
			h->in = in;
			ev_init(&h->timer, on_timer);
			h->timer.data = h;
			h->next = in->free;
			in->free = h;
		}
	}
	struct held *h = in->free;
	in->free = h->next;
	h->next = NULL;
	h->len = 0;
	h->oom = h->streamed = h->stream_off = 0;
	h->in_submit = h->ended_in_submit = 0;
	h->call = NULL;
	h->prev_active = NULL;
	h->next_active = in->active;
	if (in->active)
		in->active->prev_active = h;
	in->active = h;
	return h;
}

static void
held_put(struct held *h)
{
	struct inference *in = h->in;
	ev_timer_stop(in->loop, &h->timer);
	if (h->m != NULL)
		porch_msg_set_local(in->st, h->m, NULL);
	if (h->prev_active)
		h->prev_active->next_active = h->next_active;
	else
		in->active = h->next_active;
	if (h->next_active)
		h->next_active->prev_active = h->prev_active;
	h->prev_active = h->next_active = NULL;
	if (h->cap > ANSWER_KEEP) {
		free(h->answer);
		h->answer = NULL;
		h->cap = 0;
	}
	h->m = NULL;
	h->call = NULL;
	h->phase = PHASE_IDLE;
	h->next = in->free;
	in->free = h;
}

/* ---- retry policy ------------------------------------------------------- */

/* splitmix64: a uniform double in [0, 1). */
static double
jitter(struct inference *in)
{
	uint64_t z = (in->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

/*
 * Worth another attempt: timeouts, connection failures, 408, 429 and 5xx.
 * Never a request the upstream refused as such (400, 401, 404 ...), nor an
 * answer that came (status 200) but could not be read.  An upstream error
 * without a status (a worker that is not HTTP) counts as a server error.
 */
static int
retryable(enum porch_error err, int status)
{
	switch (err) {
	case PORCH_ERR_TIMEOUT:
	case PORCH_ERR_TRANSPORT:
		return 1;
	case PORCH_ERR_UPSTREAM:
		return status == 0 || status == 408 || status == 429 || status >= 500;
	default:
		return 0;
	}
}

/* Full jitter (Brooker, 2015): uniform in [0, min(cap, base * 2^(n-1))]. */
static double
backoff_delay(struct inference *in, unsigned attempts_made)
{
	double ceiling = in->backoff * ldexp(1.0, (int)(attempts_made > 60 ? 60 : attempts_made) - 1);
	if (ceiling > in->max_backoff)
		ceiling = in->max_backoff;
	return ceiling * jitter(in);
}

/* ---- ending ------------------------------------------------------------- */

static void
finish_ok(struct held *h)
{
	porch_stage *st = h->in->st;
	porch_msg *m = h->m;
	/* no tokens: the answer is empty */
	int failed = h->oom || porch_msg_set_text(m, h->answer ? h->answer : "", h->len) != 0;
	held_put(h);
	if (failed) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "could not store the answer (out of memory)");
		return;
	}
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(st, m);
}

static void
finish_failed(struct held *h, enum porch_error err, const char *why, const char *note)
{
	porch_stage *st = h->in->st;
	porch_msg *m = h->m;
	unsigned n = porch_msg_attempts(m);
	held_put(h);
	porch_fail(st, m, err, "%s (%u attempt%s%s)", why, n, n == 1 ? "" : "s", note);
}

static void
expire(struct held *h)
{
	porch_stage *st = h->in->st;
	porch_msg *m = h->m;
	unsigned n = porch_msg_attempts(m);
	const char *when = h->phase == PHASE_CALL ? "during" : "after";
	if (h->phase == PHASE_CALL && h->call != NULL)
		porch_infer_cancel(h->call);
	held_put(h);
	porch_fail(st, m, PORCH_ERR_DEADLINE, "the request's deadline passed %s attempt %u "
	    "at stage '%s'", when, n, porch_stage_name(st));
}

/* A call ended with an error: try again later, or fail the message. */
static void
attempt_failed(struct held *h, enum porch_error err, const char *why)
{
	struct inference *in = h->in;
	porch_msg *m = h->m;
	ev_timer_stop(in->loop, &h->timer);
	h->call = NULL;
	if (h->streamed) {
		finish_failed(h, err, why, ", not retried: part of the answer was streamed");
		return;
	}
	if (!retryable(err, porch_msg_status(m))) {
		finish_failed(h, err, why, "");
		return;
	}
	unsigned made = porch_msg_attempts(m);
	if (made > h->retries) {
		finish_failed(h, err, why, h->retries ? ", retries exhausted" : "");
		return;
	}
	double delay = backoff_delay(in, made);
	double retry_after = (double)porch_msg_retry_after(m) / 1000.0;
	if (retry_after > delay)
		delay = retry_after;
	double deadline = porch_msg_deadline(m);
	if (deadline != 0 && ev_now(in->loop) + delay >= deadline) {
		finish_failed(h, err, why, retry_after > 0 ?
		    ", not retried: Retry-After is past the request's deadline" :
		    ", not retried: the request's deadline comes first");
		return;
	}
	porch_msg_event(in->st, m, PORCH_EVENT_RETRY, "attempt %u in %.0f ms, after %s: %s",
	    made + 1, delay * 1000.0, porch_error_name(err), why);
	h->phase = PHASE_BACKOFF;
	ev_timer_set(&h->timer, delay, 0.);
	ev_timer_start(in->loop, &h->timer);
}

/* ---- calls -------------------------------------------------------------- */

/* A piece of the answer: kept for the message, and streamed on with its extras. */
static void
on_piece(void *ctx, const char *token, size_t len, const struct porch_piece *pc)
{
	struct held *h = ctx;
	if (len == 0 && pc == NULL)
		return;
	if (len > 0 && !h->oom && h->cap - h->len < len) {
		size_t cap = h->cap ? h->cap : 256;
		while (cap - h->len < len && cap <= (size_t)-1 / 2)
			cap *= 2;
		char *a = cap - h->len >= len ? realloc(h->answer, cap) : NULL;
		if (a == NULL) {
			h->oom = 1;
		} else {
			h->answer = a;
			h->cap = cap;
		}
	}
	if (len > 0 && !h->oom) {
		memcpy(h->answer + h->len, token, len);
		h->len += len;
	}
	if (h->in->stream && !h->stream_off) {
		if (porch_stream_piece(h->in->st, h->m, token, len, pc) == 0)
			h->streamed = 1;
		else
			h->stream_off = 1;
	}
}

static void
on_end(void *ctx, enum porch_error err, const char *why)
{
	struct held *h = ctx;
	if (h->in_submit) {
		/* porch_infer has not returned: attempt_start handles it then */
		h->ended_in_submit = 1;
		h->end_err = err;
		/* kept only for a failure: a worker that answers in submit
		 * (echo) would otherwise pay a snprintf on every call */
		if (err != PORCH_ERR_NONE)
			snprintf(h->end_why, sizeof h->end_why, "%s", why && *why ? why :
			    porch_error_name(err));
		return;
	}
	ev_timer_stop(h->in->loop, &h->timer);
	h->call = NULL;
	if (err == PORCH_ERR_NONE)
		finish_ok(h);
	else
		attempt_failed(h, err, why && *why ? why : porch_error_name(err));
}

static void
attempt_start(struct held *h)
{
	struct inference *in = h->in;
	porch_msg *m = h->m;
	h->phase = PHASE_CALL;
	h->len = 0;
	h->oom = 0;
	h->ended_in_submit = 0;
	h->in_submit = 1;
	porch_call *call = porch_infer_pieces(in->st, m, on_piece, on_end, h);
	h->in_submit = 0;
	if (h->ended_in_submit) {
		/* answered (or failed) at once; the call is already recycled */
		h->call = NULL;
		if (h->end_err == PORCH_ERR_NONE)
			finish_ok(h);
		else
			attempt_failed(h, h->end_err, h->end_why);
		return;
	}
	if (call == NULL) {
		finish_failed(h, PORCH_ERR_INTERNAL, "could not start a call to the worker", "");
		return;
	}
	h->call = call;
	double now = ev_now(in->loop);
	double at = now + h->timeout;
	double deadline = porch_msg_deadline(m);
	if (deadline != 0 && deadline < at)
		at = deadline;
	ev_timer_set(&h->timer, at > now ? at - now : 0., 0.);
	ev_timer_start(in->loop, &h->timer);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct held *h = w->data;
	double deadline = porch_msg_deadline(h->m);
	if (deadline != 0 && ev_now(loop) >= deadline - 1e-6) {
		expire(h);
		return;
	}
	if (h->phase == PHASE_BACKOFF) {
		attempt_start(h);
		return;
	}
	/* the attempt's own timeout: held against a pool's member */
	porch_infer_abandon(h->call, PORCH_ERR_TIMEOUT);
	h->call = NULL;
	char why[128];
	snprintf(why, sizeof why, "the worker did not answer within %.0f ms",
	    h->timeout * 1000.0);
	attempt_failed(h, PORCH_ERR_TIMEOUT, why);
}

/* ---- settings ------------------------------------------------------------ */

/*
 * A request's override of a number, checked as the parameter would be;
 * *out (when not NULL) gets its value, and keeps what it had when the
 * request gives none.
 */
static int
check_number(porch_stage *st, porch_msg *m, const char *key, double lo, double hi,
    int integer, double *out)
{
	const char *v = porch_msg_meta(m, key);
	if (v == NULL)
		return 0;
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (*v == '\0' || *end != '\0' || errno != 0 || !(d >= lo && d <= hi) ||
	    (integer && d != floor(d))) {
		porch_fail(st, m, PORCH_ERR_BAD_REQUEST, "metadata '%s' is '%s': want %s "
		    "from %g to %g", key, v, integer ? "an integer" : "a number", lo, hi);
		return -1;
	}
	if (out != NULL)
		*out = d;
	return 0;
}

/*
 * A prompt too long for the model: estimated at 4 bytes a token (a common
 * rule for English text with BPE vocabularies; porch does not tokenize),
 * plus the tokens asked for.  It goes out the long port when that has a
 * channel (a larger model), else fails as bad-request naming the sizes.
 * 0: it fits; 1: sent on; -1: failed.
 */
static int
check_context(struct inference *in, porch_msg *m)
{
	size_t len;
	(void)porch_msg_text(m, &len);
	const char *mt = porch_msg_meta(m, "max-tokens");
	long long want = mt != NULL ? atoll(mt) : in->max_tokens[0] ? atoll(in->max_tokens) : 0;
	long long est = (long long)((len + 3) / 4);
	if (est + want <= in->context_limit)
		return 0;
	if (porch_stage_port_used(in->st, in->long_port)) {
		porch_stage_count(in->st, "context_fallback", 1);
		porch_emit_port(in->st, in->long_port, m);
		return 1;
	}
	porch_fail(in->st, m, PORCH_ERR_BAD_REQUEST, "the prompt is about %lld tokens (%zu "
	    "bytes at 4 a token) and max-tokens is %lld: more than context-limit %lld of "
	    "stage '%s'", est, len, want, (long long)in->context_limit,
	    porch_stage_name(in->st));
	return -1;
}

/* Fills the settings a request did not give from the stage's parameters. */
static int
apply_settings(struct inference *in, struct held *h, porch_msg *m)
{
	porch_stage *st = in->st;
	double retries = in->retries, timeout_ms = in->timeout * 1000.0;
	if (check_number(st, m, "max-tokens", 1, 1048576, 1, NULL) != 0 ||
	    check_number(st, m, "temperature", 0, 2, 0, NULL) != 0 ||
	    check_number(st, m, "top-p", 0, 1, 0, NULL) != 0 ||
	    check_number(st, m, "retries", 0, 100, 1, &retries) != 0 ||
	    check_number(st, m, "timeout-ms", 1, 86400000, 1, &timeout_ms) != 0)
		return -1;
	h->retries = (unsigned)retries;
	h->timeout = timeout_ms / 1000.0;
	if (in->context_limit > 0) {
		/* before this stage's defaults go in: a larger model's stage sets its own */
		int r = check_context(in, m);
		if (r != 0)
			return r;
	}
	struct { const char *key, *value; } defaults[] = {
		{ "thinking", in->thinking },
		{ "model", in->model },
		{ "max-tokens", in->max_tokens[0] ? in->max_tokens : NULL },
		{ "temperature", in->temperature[0] ? in->temperature : NULL },
		{ "top-p", in->top_p[0] ? in->top_p : NULL },
		{ "stop", in->stop_json },
	};
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
		if (defaults[i].value == NULL || porch_msg_meta(m, defaults[i].key) != NULL)
			continue;
		if (porch_msg_set_meta(m, defaults[i].key, defaults[i].value) != 0) {
			porch_fail(st, m, PORCH_ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* "a,b" -> ["a","b"], escaped as JSON strings; NULL when out of memory. */
static char *
list_to_json(const char *list)
{
	size_t cap = strlen(list) * 6 + 8, n = 0;
	char *out = malloc(cap);
	if (out == NULL)
		return NULL;
	out[n++] = '[';
	out[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)list; *p; p++) {
		if (*p == ',') {
			memcpy(out + n, "\",\"", 3);
			n += 3;
		} else if (*p == '"' || *p == '\\') {
			out[n++] = '\\';
			out[n++] = (char)*p;
		} else if (*p < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
		} else {
			out[n++] = (char)*p;
		}
	}
	out[n++] = '"';
	out[n++] = ']';
	out[n] = '\0';
	return out;
}

/* ---- the stage ---------------------------------------------------------- */

static void
inference_process(porch_stage *st, porch_msg *m)
{
	struct inference *in = porch_stage_data(st);
	struct held *h = held_get(in);
	if (h == NULL) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "out of memory");
		return;
	}
	if (apply_settings(in, h, m) != 0) {
		held_put(h); /* failed, or sent on (long) */
		return;
	}
	h->m = m;
	porch_msg_set_local(st, m, h);
	attempt_start(h);
}

/* The request's client has gone: stop its call or its wait, and fail it. */
static void
inference_cancel_msg(porch_stage *st, porch_msg *m)
{
	struct held *h = porch_msg_local(st, m);
	if (h == NULL || h->in_submit)
		return; /* inside porch_infer: attempt_start ends it */
	unsigned n = porch_msg_attempts(m);
	if (h->phase == PHASE_CALL && h->call != NULL)
		porch_infer_cancel(h->call);
	held_put(h);
	porch_fail(st, m, PORCH_ERR_CANCELLED, "%s (during attempt %u)",
	    porch_msg_error_text(m), n);
}

static int
inference_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct inference *in = calloc(1, sizeof *in);
	if (in == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	in->st = st;
	in->loop = porch_stage_loop(st);
	in->timeout = (double)porch_param_int(p, "timeout-ms") / 1000.0;
	in->retries = (unsigned)porch_param_int(p, "retries");
	in->backoff = (double)porch_param_int(p, "backoff-ms") / 1000.0;
	in->max_backoff = (double)porch_param_int(p, "max-backoff-ms") / 1000.0;
	in->stream = porch_param_int(p, "stream") != 0;
	in->model = porch_param_str(p, "model");
	in->context_limit = porch_param_int(p, "context-limit");
	in->long_port = porch_stage_port(st, "long");
	if (porch_param_isset(p, "thinking"))
		in->thinking = porch_param_int(p, "thinking") ? "true" : "false";
	if (porch_param_isset(p, "max-tokens"))
		snprintf(in->max_tokens, sizeof in->max_tokens, "%lld",
		    (long long)porch_param_int(p, "max-tokens"));
	if (porch_param_isset(p, "temperature"))
		snprintf(in->temperature, sizeof in->temperature, "%g",
		    porch_param_number(p, "temperature"));
	if (porch_param_isset(p, "top-p"))
		snprintf(in->top_p, sizeof in->top_p, "%g", porch_param_number(p, "top-p"));
	const char *stop = porch_param_str(p, "stop");
	if (stop != NULL && (in->stop_json = list_to_json(stop)) == NULL) {
		free(in);
		porch_stage_error(st, "out of memory");
		return -1;
	}
	/* different stages, different jitter; repeatable from run to run */
	for (const char *s = porch_stage_name(st); *s; s++)
		in->rng = in->rng * 31 + (unsigned char)*s;
	porch_stage_set_data(st, in);
	return 0;
}

static void
inference_fini(porch_stage *st)
{
	struct inference *in = porch_stage_data(st);
	if (in == NULL)
		return;
	/* after a drain deadline: calls may still run; the messages are counted */
	for (struct held *h = in->active; h != NULL; h = h->next_active) {
		ev_timer_stop(in->loop, &h->timer);
		if (h->phase == PHASE_CALL && h->call != NULL)
			porch_infer_cancel(h->call);
	}
	while (in->slabs != NULL) {
		struct slab *sl = in->slabs;
		in->slabs = sl->next;
		for (size_t i = 0; i < HELD_PER_SLAB; i++)
			free(sl->held[i].answer);
		free(sl);
	}
	free(in->stop_json);
	free(in);
	porch_stage_set_data(st, NULL);
}

static const char *const inference_outputs[] = { "out", "long", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "inference",
	.summary = "asks the stage's worker for a completion, with a deadline and retries",
	.params = inference_params,
	.flags = PORCH_STAGE_NEEDS_WORKER,
	.outputs = inference_outputs,
	.init = inference_init,
	.process = inference_process,
	.fini = inference_fini,
	.cancel_msg = inference_cancel_msg,
	.description =
	    "Sends the message text as the prompt to the stage's worker and, when the "
	    "call succeeds, replaces the text with the answer and passes the message on. "
	    "The generation settings model, max-tokens, temperature, top-p and stop come "
	    "from the parameters; a request's metadata of the same name overrides them "
	    "(stop as a JSON array of strings), and so do \"retries\" and "
	    "\"timeout-ms\". "
	    "A metadata value out of range fails the request as bad-request.\n\n"
	    "Each attempt may take timeout-ms; a request's own deadline, when it has "
	    "one, is the limit for all its attempts together, and when it passes the "
	    "running call is cancelled and the request ends as expired.\n\n"
	    "A failed attempt is tried again, up to retries more times, only when the "
	    "error can pass: a timeout, a connection failure, or an upstream status "
	    "408, 429 or 5xx (an upstream error without a status counts as 5xx). "
	    "Never after 400, 401, 404 or another client error, nor after an answer "
	    "that came but could not be read. "
	    "The wait before attempt n+1 is uniform between 0 and "
	    "min(max-backoff-ms, backoff-ms * 2^(n-1)) (full jitter), or the "
	    "upstream's Retry-After if that is longer; when the wait would pass the "
	    "request's deadline the request fails at once.\n\n"
	    "With stream on, each token is passed downstream as it arrives (see "
	    "porch_stream in porch-plugin(3)), so a streaming sink shows the answer "
	    "while it is written. "
	    "Once a token has gone out, a failure is final: it is not retried.\n\n"
	    "A request that fails leaves by the error port with its typed reason "
	    "(timeout, upstream with the status, transport, cancelled) and its "
	    "attempt count, e.g. \"upstream answered 503 (3 attempts, retries "
	    "exhausted)\". "
	    "A request cancelled by its origin (its client went away) has its call "
	    "cancelled and fails as cancelled.\n\n"
	    "Per-model settings: with context-limit set, a prompt whose estimated size "
	    "(its bytes / 4, rounded up) plus max-tokens is over it leaves by the long port "
	    "when that has a channel (to the stage of a larger model, which applies its "
	    "own settings: this stage's defaults are not set on it), and otherwise fails "
	    "as bad-request naming the sizes, before any call. thinking sets the "
	    "\"thinking\" metadata, which the openai worker sends as "
	    "chat_template_kwargs.enable_thinking (vLLM, llama.cpp) for chat requests.",
};
