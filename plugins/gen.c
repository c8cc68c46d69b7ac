/* gen.c -- source stage: makes COUNT requests, as fast as the graph takes them or at RATE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <porch/plugin.h>

/*
 * Requests made per idle callback at most, so a large `ready` cannot keep
 * the loop from serving its other watchers (timers, signals, I/O) for long.
 */
#define GEN_BATCH 4096

struct gen {
	porch_stage *st;
	struct ev_loop *loop;
	ev_idle idle;          /* produces while active (no rate) */
	ev_timer tick;         /* produces on schedule (rate > 0) */
	double rate;           /* requests per second; 0: as fast as taken */
	double t0;             /* loop time of start, for the schedule */

	uint64_t count;        /* requests to make */
	uint64_t made;         /* requests made so far */
	uint64_t sessions;     /* distinct sessions, >= 1 */
	uint64_t next_session; /* made % sessions, kept without a division */
	int64_t deadline;      /* ms from creation; 0: none */
	char *text;
	size_t text_len;
	int finished;          /* porch_stage_finished was called */
	/* threads: each shard's copy makes the requests whose session hashes
	 * to it (porch_shard), so no request crosses shards; NULL: all */
	unsigned char *mine;   /* per session: 1 if this shard's */
	uint64_t n_mine;       /* sessions that are: none, and it finishes at once */

	char session[24];      /* "s" + up to 20 digits */
	size_t session_len;
};

static const struct porch_param gen_params[] = {
	{ "count", PORCH_PARAM_INTEGER, "1000", 0, 1e12, NULL, 0,
	  "number of requests to make, then finish" },
	{ "text", PORCH_PARAM_STRING, "hello from porch", 0, 0, NULL, 0,
	  "the text of every request" },
	{ "sessions", PORCH_PARAM_INTEGER, "1", 1, 1000000, NULL, 0,
	  "request i gets session \"s<i mod sessions>\"" },
	{ "deadline", PORCH_PARAM_DURATION, "0", 0, 86400000, NULL, 0,
	  "time each request has to complete from its creation; 0: no deadline" },
	{ "rate", PORCH_PARAM_INTEGER, "0", 0, 100000000, NULL, 0,
	  "requests per second to offer, whether or not the graph keeps up; "
	  "0: as fast as the graph takes them" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/* Writes "s<n>" into g->session by hand: snprintf is too slow here. */
static void
gen_format_session(struct gen *g, uint64_t n)
{
	char digits[20];
	size_t nd = 0;
	do {
		digits[nd++] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	g->session[0] = 's';
	for (size_t i = 0; i < nd; i++)
		g->session[1 + i] = digits[nd - 1 - i];
	g->session_len = 1 + nd;
	g->session[g->session_len] = '\0';
}

static void
gen_finish(struct gen *g)
{
	ev_idle_stop(g->loop, &g->idle);
	ev_timer_stop(g->loop, &g->tick);
	if (g->finished)
		return;
	g->finished = 1;
	porch_stage_finished(g->st);
}

/*
 * Makes one batch of requests: as many as the graph takes now, at most
 * GEN_BATCH, and with a rate no more than the schedule allows by now.
 */
static void
gen_produce(struct gen *g)
{
	if (g->made >= g->count) {
		gen_finish(g);
		return;
	}
	size_t ready = porch_stage_ready(g->st);
	if (ready == 0) {
		/* full downstream: resume() restarts us (the tick keeps going) */
		ev_idle_stop(g->loop, &g->idle);
		return;
	}
	/* n: requests of the schedule to walk (others' too, with threads);
	 * ready bounds the ones this copy makes */
	uint64_t n = g->count - g->made;
	if (g->rate > 0) {
		double due = (ev_now(g->loop) - g->t0) * g->rate;
		uint64_t owed = due > (double)g->made ? (uint64_t)due - g->made : 0;
		if (n > owed)
			n = owed;
	}
	if (g->mine == NULL && n > ready)
		n = ready;
	if (n > GEN_BATCH)
		n = GEN_BATCH;

	while (n-- > 0 && !g->finished && ready > 0) {
		if (g->mine != NULL && !g->mine[g->next_session]) {
			/* another shard's session: its copy of gen makes this one */
			if (++g->next_session == g->sessions)
				g->next_session = 0;
			g->made++;
			continue;
		}
		ready--;
		porch_msg *m = porch_msg_new(g->st);
		if (m == NULL) {
			/* out of memory: try again on a later iteration */
			porch_stage_log(g->st, "gen: could not make a request (out of memory)");
			return;
		}
		if (g->sessions > 1)
			gen_format_session(g, g->next_session);
		if (++g->next_session == g->sessions)
			g->next_session = 0;
		g->made++;
		porch_msg_set_text(m, g->text, g->text_len);
		porch_msg_set_session(m, g->session, g->session_len);
		if (g->deadline > 0)
			porch_msg_set_deadline(m, g->deadline);
		/* PORCH_REFUSED: the request has ended and been counted already */
		(void)porch_emit(g->st, m);
	}
	if (g->made >= g->count)
		gen_finish(g);
}

static void
gen_on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)loop;
	(void)revents;
	gen_produce(w->data);
}

static void
gen_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	gen_produce(w->data);
}

static int
gen_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct gen *g = calloc(1, sizeof *g);
	if (g == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	g->st = st;
	g->loop = porch_stage_loop(st);
	ev_idle_init(&g->idle, gen_on_idle);
	g->idle.data = g;
	/* 100 ticks a second: smooth enough, and cheap at any rate */
	ev_timer_init(&g->tick, gen_on_tick, 0.01, 0.01);
	g->tick.data = g;
	g->rate = (double)porch_param_int(p, "rate");

	g->count = (uint64_t)porch_param_int(p, "count");
	g->sessions = (uint64_t)porch_param_int(p, "sessions");
	g->deadline = porch_param_int(p, "deadline");
	const char *text = porch_param_str(p, "text");
	if (text == NULL)
		text = "";
	g->text_len = strlen(text);
	g->text = malloc(g->text_len + 1);
	if (g->text == NULL) {
		free(g);
		porch_stage_error(st, "out of memory");
		return -1;
	}
	memcpy(g->text, text, g->text_len + 1);
	unsigned shards = 1, shard = porch_stage_shard(st, &shards);
	if (shards > 1) {
		g->mine = malloc(g->sessions);
		if (g->mine == NULL) {
			free(g->text);
			free(g);
			porch_stage_error(st, "out of memory");
			return -1;
		}
		for (uint64_t j = 0; j < g->sessions; j++) {
			gen_format_session(g, j);
			g->mine[j] = porch_shard(g->session, g->session_len, shards) == shard;
			g->n_mine += g->mine[j];
		}
	}
	gen_format_session(g, 0); /* the only one when sessions is 1 */

	porch_stage_set_data(st, g);
	return 0;
}

static void
gen_start(porch_stage *st)
{
	struct gen *g = porch_stage_data(st);
	if (g->finished)
		return;
	g->t0 = ev_now(g->loop);
	if (g->mine != NULL && g->n_mine == 0) {
		gen_finish(g); /* no session of this shard's: nothing to make */
		return;
	}
	if (g->rate > 0)
		ev_timer_start(g->loop, &g->tick);
	else
		ev_idle_start(g->loop, &g->idle);
}

static void
gen_resume(porch_stage *st)
{
	struct gen *g = porch_stage_data(st);
	/* with a rate the tick is still running and catches up by itself */
	if (!g->finished && g->rate == 0)
		ev_idle_start(g->loop, &g->idle);
}

static void
gen_drain(porch_stage *st)
{
	gen_finish(porch_stage_data(st));
}

static void
gen_fini(porch_stage *st)
{
	struct gen *g = porch_stage_data(st);
	if (g == NULL)
		return;
	ev_idle_stop(g->loop, &g->idle);
	ev_timer_stop(g->loop, &g->tick);
	free(g->text);
	free(g->mine);
	free(g);
	porch_stage_set_data(st, NULL);
}

static const char *const gen_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "gen",
	.summary = "source: makes COUNT requests, as fast as the graph takes them or at RATE per second",
	.params = gen_params,
	.flags = PORCH_STAGE_SOURCE | PORCH_STAGE_EVERY_SHARD,
	.outputs = gen_outputs,
	.init = gen_init,
	.start = gen_start,
	.resume = gen_resume,
	.drain = gen_drain,
	.fini = gen_fini,
	.description =
	    "Takes no input: it makes count requests of its own, each with the text "
	    "parameter as its text, session \"s<i mod sessions>\" for the i-th (from 0) "
	    "and no metadata, then finishes. "
	    "With rate 0 it makes them as fast as the graph takes them (the in-flight "
	    "bound and the block channels after it); with a rate, on schedule, whether "
	    "or not the graph keeps up, so that overload shows as shed requests. "
	    "With threads (threads=\"N\") it runs on every shard, and each copy makes "
	    "the requests whose session hashes to its shard (porch_shard), on the same "
	    "schedule: together they make count requests, each session's in order on "
	    "one shard, and none crosses shards. "
	    "For benchmarks and tests.",
};
