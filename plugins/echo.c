/* echo.c -- worker: answers with the prompt itself, split into whitespace-separated tokens. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <porch/plugin.h>

struct echo;

/*
 * One call in progress.  A call answered at once (no delays) uses one on
 * the stack, only so that cancel() can reach its flags; a delayed call
 * uses one from the worker's free list, with its timer.
 */
struct echo_call {
	struct echo_call *prev, *next; /* active list; next: free list */
	struct echo *e;
	porch_call *c;
	ev_timer timer;
	size_t pos;          /* where the next word is looked for in the prompt */
	uint64_t sent;       /* tokens sent */
	uint64_t max;        /* the "max-tokens" option; 0: no cap */
	unsigned started;    /* a token was sent (the first has no space) */
	unsigned fail;       /* this call fails when its delay has passed */
	unsigned busy;       /* inside porch_call_token: cancel only marks */
	unsigned cancelled;  /* cancel() came while busy */
};

struct echo {
	porch_worker *w;
	struct ev_loop *loop;
	double delay;        /* s, before the first token (or the failure) */
	double token_delay;  /* s, between tokens; 0: all at once */
	double fail_rate;
	uint64_t fail_first; /* calls left that fail whatever fail-rate says */
	int fail_status;     /* the status a failure carries; 0: none */
	uint64_t rng;        /* splitmix64 state */
	struct echo_call *active; /* calls waiting on their timer */
	struct echo_call *free;
	char *scratch;       /* " " + word, when the prompt's separator is not a space */
	size_t scratch_cap;
};

static const struct porch_param echo_params[] = {
	{ "delay-ms", PORCH_PARAM_DURATION, "0", 0, 3600000, NULL, 0,
	  "time to wait before the first token (or the failure); a bare number is milliseconds" },
	{ "token-delay-ms", PORCH_PARAM_DURATION, "0", 0, 3600000, NULL, 0,
	  "time between tokens (a bare number is milliseconds); 0 sends all tokens at once" },
	{ "fail-rate", PORCH_PARAM_NUMBER, "0", 0, 1, NULL, 0,
	  "probability that a call fails with an upstream error" },
	{ "seed", PORCH_PARAM_INTEGER, "1", 0, 9007199254740992.0, NULL, 0,
	  "seed of the worker's random numbers, for repeatable failures" },
	{ "fail-first", PORCH_PARAM_INTEGER, "0", 0, 1000000000, NULL, 0,
	  "the first this many calls fail, then fail-rate decides (a replica that recovers)" },
	{ "fail-status", PORCH_PARAM_INTEGER, "0", 0, 599, NULL, 0,
	  "the upstream status a failure carries (e.g. 503, or 400 for a refused request); "
	  "0: none" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/* splitmix64: a uniform double in [0, 1). */
static double
echo_random(struct echo *e)
{
	uint64_t z = (e->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1.0p-53;
}

static int
echo_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\v' || ch == '\f';
}

/* Skips whitespace from ec->pos; returns 1 if a word follows. */
static int
echo_more(struct echo_call *ec, const char *p, size_t len)
{
	while (ec->pos < len && echo_space(p[ec->pos]))
		ec->pos++;
	return ec->pos < len;
}

/*
 * Sends the next token (there must be one).  Returns 0, or -1 after failing
 * the call if the token could not be built.  The caller checks ec->cancelled.
 */
static int
echo_send(struct echo_call *ec, const char *p, size_t len)
{
	struct echo *e = ec->e;
	size_t start = ec->pos;
	while (ec->pos < len && !echo_space(p[ec->pos]))
		ec->pos++;
	size_t n = ec->pos - start;
	const char *tok = p + start;

	if (ec->started) {
		if (p[start - 1] == ' ') {
			/* the usual case: the prompt already has " word" */
			tok--;
			n++;
		} else {
			if (e->scratch_cap < n + 1) {
				char *s = realloc(e->scratch, n + 1);
				if (s == NULL) {
					porch_call_fail(ec->c, PORCH_ERR_INTERNAL, "echo: out of memory");
					return -1;
				}
				e->scratch = s;
				e->scratch_cap = n + 1;
			}
			e->scratch[0] = ' ';
			memcpy(e->scratch + 1, tok, n);
			tok = e->scratch;
			n++;
		}
	}
	ec->started = 1;
	ec->sent++;
	ec->busy = 1;
	porch_call_token(ec->c, tok, n);
	ec->busy = 0;
	return 0;
}

/*
 * The call's end, with its finish reason.  No usage: the echo worker has
 * no tokenizer, so the source counts words as it does for any worker that
 * gives none.
 */
static void
echo_end(struct echo_call *ec, const char *reason)
{
	porch_call_set_meta(ec->c, "finish-reason", reason);
	porch_call_done(ec->c);
}

/* The "max-tokens" option as a whole number; 0 when unset or not one. */
static uint64_t
echo_max_tokens(const porch_call *c)
{
	const char *v = porch_call_option(c, "max-tokens");
	if (v == NULL || *v == '\0' || strspn(v, "0123456789") != strlen(v) || strlen(v) > 15)
		return 0;
	return strtoull(v, NULL, 10);
}

/*
 * Sends one token, or all that remain when `all`, and ends the call when
 * none remain, or when max-tokens were sent (finish reason "length").
 * Returns 1 if the call goes on (tokens left), 0 if it ended
 * (done, failed or cancelled): the caller then forgets ec->c.
 */
static int
echo_run(struct echo_call *ec, int all)
{
	size_t len;
	const char *p = porch_call_prompt(ec->c, &len);
	if (p == NULL)
		len = 0;
	while (echo_more(ec, p, len)) {
		if (ec->max != 0 && ec->sent >= ec->max) {
			echo_end(ec, "length");
			return 0;
		}
		if (echo_send(ec, p, len) != 0 || ec->cancelled)
			return 0;
		if (!all)
			break;
	}
	if (echo_more(ec, p, len) && (ec->max == 0 || ec->sent < ec->max))
		return 1;
	echo_end(ec, echo_more(ec, p, len) ? "length" : "stop");
	return 0;
}

static struct echo_call *
echo_call_get(struct echo *e)
{
	struct echo_call *ec = e->free;
	if (ec != NULL)
		e->free = ec->next;
	else if ((ec = malloc(sizeof *ec)) == NULL)
		return NULL;
	memset(ec, 0, sizeof *ec);
	ec->e = e;
	/* on the active list from now: worker_fini finds it there */
	ec->next = e->active;
	if (e->active != NULL)
		e->active->prev = ec;
	e->active = ec;
	return ec;
}

static void
echo_call_put(struct echo_call *ec)
{
	struct echo *e = ec->e;
	ev_timer_stop(e->loop, &ec->timer);
	if (ec->prev != NULL)
		ec->prev->next = ec->next;
	else
		e->active = ec->next;
	if (ec->next != NULL)
		ec->next->prev = ec->prev;
	ec->prev = NULL;
	ec->c = NULL;
	ec->next = e->free;
	e->free = ec;
}

static void
echo_fail(struct echo *e, porch_call *c)
{
	if (e->fail_status != 0)
		porch_call_set_status(c, e->fail_status);
	porch_call_fail(c, PORCH_ERR_UPSTREAM, "echo: simulated failure");
}

static void
echo_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct echo_call *ec = t->data;
	struct echo *e = ec->e;
	(void)loop;
	(void)revents;

	if (ec->fail) {
		porch_call *c = ec->c;
		echo_call_put(ec);
		echo_fail(e, c);
		return;
	}
	if (echo_run(ec, e->token_delay == 0) == 0) {
		echo_call_put(ec);
		return;
	}
	ev_timer_set(&ec->timer, e->token_delay, 0.);
	ev_timer_start(e->loop, &ec->timer);
}

static int
echo_submit(porch_worker *w, porch_call *c)
{
	struct echo *e = porch_worker_data(w);
	int fail = e->fail_rate > 0 && echo_random(e) < e->fail_rate;
	if (e->fail_first > 0) {
		e->fail_first--;
		fail = 1;
	}

	if (e->delay == 0 && e->token_delay == 0) {
		/* the fast path: answered before submit returns, nothing allocated */
		if (fail) {
			echo_fail(e, c);
			return 0;
		}
		struct echo_call ec = { .e = e, .c = c, .max = echo_max_tokens(c) };
		porch_call_set_data(c, &ec);
		(void)echo_run(&ec, 1);
		return 0;
	}

	struct echo_call *ec = echo_call_get(e);
	if (ec == NULL) {
		porch_call_fail(c, PORCH_ERR_INTERNAL, "echo: out of memory");
		return 0;
	}
	ec->c = c;
	ec->max = echo_max_tokens(c);
	ec->fail = (unsigned)fail;
	ev_timer_init(&ec->timer, echo_on_timer, e->delay, 0.);
	ec->timer.data = ec;
	porch_call_set_data(c, ec);
	ev_timer_start(e->loop, &ec->timer);
	return 0;
}

static void
echo_cancel(porch_worker *w, porch_call *c)
{
	struct echo_call *ec = porch_call_data(c);
	(void)w;
	if (ec == NULL)
		return;
	if (ec->busy) {
		/* inside our own porch_call_token: echo_run sees it and stops */
		ec->cancelled = 1;
		return;
	}
	echo_call_put(ec);
}

static int
echo_init(porch_worker *w)
{
	const porch_params *p = porch_worker_params(w);
	struct echo *e = calloc(1, sizeof *e);
	if (e == NULL) {
		porch_worker_error(w, "out of memory");
		return -1;
	}
	e->w = w;
	e->loop = porch_worker_loop(w);
	e->delay = (double)porch_param_int(p, "delay-ms") / 1000.;
	e->token_delay = (double)porch_param_int(p, "token-delay-ms") / 1000.;
	e->fail_rate = porch_param_number(p, "fail-rate");
	e->rng = (uint64_t)porch_param_int(p, "seed");
	e->fail_first = (uint64_t)porch_param_int(p, "fail-first");
	e->fail_status = (int)porch_param_int(p, "fail-status");
	porch_worker_set_data(w, e);
	return 0;
}

/* A pool's probe: there is no server, so always healthy. */
static void
echo_probe(porch_worker *w)
{
	porch_worker_probed(w, 1);
}

static void
echo_fini(porch_worker *w)
{
	struct echo *e = porch_worker_data(w);
	if (e == NULL)
		return;
	/* calls still waiting are dropped: they will not be called back */
	while (e->active != NULL) {
		struct echo_call *ec = e->active;
		e->active = ec->next;
		ev_timer_stop(e->loop, &ec->timer);
		free(ec);
	}
	while (e->free != NULL) {
		struct echo_call *ec = e->free;
		e->free = ec->next;
		free(ec);
	}
	free(e->scratch);
	free(e);
	porch_worker_set_data(w, NULL);
}

static const char echo_description[] =
    "Answers each call with its prompt, one whitespace-separated word a token "
    "(a space before every word but the first), so a pipeline runs with no model server.\n"
    "A request's \"max-tokens\" is honoured: the answer stops after that many words, "
    "with the finish reason \"length\"; otherwise it ends with \"stop\".\n"
    "It reports no usage: a source that answers with token counts counts words itself. "
    "It sees only the message text: an OpenAI request's other fields (tools, images) do not reach it.\n"
    "Failures (fail-first, fail-rate) are upstream errors with the status fail-status, for "
    "testing retries and a pool's health checks; a pool's probe always finds echo healthy.";

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_WORKER,
	.name = "echo",
	.summary = "worker: answers with the prompt itself, split into whitespace-separated tokens",
	.params = echo_params,
	.description = echo_description,
	.worker_init = echo_init,
	.submit = echo_submit,
	.cancel = echo_cancel,
	.worker_fini = echo_fini,
	.probe = echo_probe,
};
