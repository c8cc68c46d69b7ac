/*
 * openai-canceler.c -- a stage for tests/openai.sh that cancels its
 * worker's calls: at the first token (from inside the worker's token
 * callback), after a delay, or at the first token followed by a new call
 * for the same message at once (both from inside the token callback).
 * With "match", only messages whose text holds it are cancelled; the
 * others are passed on with their whole answers.
 * Checks that a worker forgets cancelled calls cleanly.  Built by the test
 * itself, as a third party's plugin would be.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <porch/plugin.h>

enum mode { FIRST_TOKEN, AFTER, RESTART };

struct canceler {
	porch_stage *st;
	enum mode mode;
	double after;        /* s */
	const char *match;   /* cancel only messages whose text has it; NULL: all */
	struct held *held;   /* every message held, for fini */
};

struct held {
	struct held *prev, *next;
	struct canceler *cn;
	porch_msg *m;
	porch_call *call;
	ev_timer timer;
	char *answer;
	size_t len;
	int restarted;
	int spared;          /* not cancelled: its text lacks match */
	int starting;        /* inside porch_infer */
	int ended;           /* ended while starting */
};

static const struct porch_param canceler_params[] = {
	{ "mode", PORCH_PARAM_ENUM, "first-token", 0, 0, "first-token|after|restart", 0,
	  "first-token: cancel at the first token; after: cancel after after-ms; "
	  "restart: cancel at the first token and call again" },
	{ "after-ms", PORCH_PARAM_INTEGER, "50", 0, 600000, NULL, 0,
	  "milliseconds before the call is cancelled, in mode after" },
	{ "match", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "cancel only messages whose text holds this; the others are answered" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static void
held_free(struct held *h)
{
	struct canceler *cn = h->cn;
	ev_timer_stop(porch_stage_loop(cn->st), &h->timer);
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		cn->held = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	free(h->answer);
	free(h);
}

static void start(struct held *h);

static void
on_token(void *ctx, const char *token, size_t len)
{
	struct held *h = ctx;
	struct canceler *cn = h->cn;
	char *a = realloc(h->answer, h->len + len + 1);
	if (a == NULL)
		abort();
	memcpy(a + h->len, token, len);
	h->answer = a;
	h->len += len;
	if (h->spared)
		return;
	if (cn->mode == FIRST_TOKEN) {
		porch_infer_cancel(h->call);
		porch_fail(cn->st, h->m, PORCH_ERR_CANCELLED, "cancelled at the first token");
		held_free(h);
	} else if (cn->mode == RESTART && !h->restarted) {
		h->restarted = 1;
		porch_infer_cancel(h->call);
		h->len = 0;
		start(h);
	}
}

static void
on_end(void *ctx, enum porch_error err, const char *why)
{
	struct held *h = ctx;
	struct canceler *cn = h->cn;
	porch_msg *m = h->m;
	if (err != PORCH_ERR_NONE)
		porch_fail(cn->st, m, err, "%s", why);
	else if (porch_msg_set_text(m, h->answer ? h->answer : "", h->len) != 0)
		porch_fail(cn->st, m, PORCH_ERR_INTERNAL, "out of memory");
	else
		(void)porch_emit(cn->st, m);
	if (h->starting)
		h->ended = 1;
	else
		held_free(h);
}

static void
on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct held *h = t->data;
	(void)loop;
	(void)revents;
	porch_infer_cancel(h->call);
	porch_fail(h->cn->st, h->m, PORCH_ERR_CANCELLED, "cancelled after a delay");
	held_free(h);
}

static void
start(struct held *h)
{
	struct canceler *cn = h->cn;
	h->starting = 1;
	porch_call *call = porch_infer(cn->st, h->m, on_token, on_end, h);
	h->starting = 0;
	if (h->ended) {
		held_free(h);
		return;
	}
	if (call == NULL) {
		porch_fail(cn->st, h->m, PORCH_ERR_INTERNAL, "could not start a call");
		held_free(h);
		return;
	}
	h->call = call;
}

static void
canceler_process(porch_stage *st, porch_msg *m)
{
	struct canceler *cn = porch_stage_data(st);
	struct held *h = calloc(1, sizeof *h);
	if (h == NULL) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "out of memory");
		return;
	}
	h->cn = cn;
	h->m = m;
	h->next = cn->held;
	if (cn->held != NULL)
		cn->held->prev = h;
	cn->held = h;
	ev_timer_init(&h->timer, on_timer, cn->after, 0.);
	h->timer.data = h;
	if (cn->match != NULL) {
		size_t len;
		const char *text = porch_msg_text(m, &len);
		h->spared = text == NULL || memmem(text, len, cn->match, strlen(cn->match)) == NULL;
	}
	if (cn->mode == AFTER && !h->spared)
		ev_timer_start(porch_stage_loop(st), &h->timer);
	start(h);
}

static int
canceler_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct canceler *cn = calloc(1, sizeof *cn);
	if (cn == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	cn->st = st;
	const char *mode = porch_param_str(p, "mode");
	cn->mode = strcmp(mode, "after") == 0 ? AFTER :
	    strcmp(mode, "restart") == 0 ? RESTART : FIRST_TOKEN;
	cn->after = (double)porch_param_int(p, "after-ms") / 1000.;
	cn->match = porch_param_str(p, "match");
	porch_stage_set_data(st, cn);
	return 0;
}

static void
canceler_fini(porch_stage *st)
{
	struct canceler *cn = porch_stage_data(st);
	while (cn->held != NULL)
		held_free(cn->held);
	free(cn);
}

static const char *const canceler_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "canceler",
	.summary = "test stage: cancels its worker's calls",
	.params = canceler_params,
	.flags = PORCH_STAGE_NEEDS_WORKER,
	.outputs = canceler_outputs,
	.init = canceler_init,
	.process = canceler_process,
	.fini = canceler_fini,
};
