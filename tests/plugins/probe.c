/*
 * probe.c -- a test-only source: makes COUNT traced requests, prints every
 * event and outcome about them on stderr, cancels request CANCEL a little
 * after it enters stage CANCEL-AT, and writes the pipeline's metrics to
 * METRICS when every request has ended.  Not installed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <porch/plugin.h>

struct probe {
	porch_stage *st;
	ev_timer cancel_w;
	porch_msg *to_cancel;
	int64_t count, ended, cancel;
	const char *cancel_at, *metrics;
};

static const struct porch_param probe_params[] = {
	{ "count", PORCH_PARAM_INTEGER, "3", 0, 1000000, NULL, 0, "requests to make" },
	{ "cancel", PORCH_PARAM_INTEGER, "0", 0, 1000000, NULL, 0,
	  "the request (1 = first) to cancel; 0: none" },
	{ "cancel-at", PORCH_PARAM_STRING, "infer", 0, -1, NULL, 0,
	  "the stage it is cancelled in, 20 ms after it enters" },
	{ "metrics", PORCH_PARAM_PATH, NULL, 0, -1, NULL, 0,
	  "where to write porch_metrics_text at the end" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static void
on_cancel(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	struct probe *p = w->data;
	porch_msg_cancel(p->to_cancel, "the client went away");
	p->to_cancel = NULL;
}

static void
probe_event(porch_stage *st, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail)
{
	struct probe *p = porch_stage_data(st);
	fprintf(stderr, "probe: %llu %s %s%s%s\n", (unsigned long long)porch_msg_id(m),
	    porch_event_name(e), stage, *detail ? " " : "", detail);
	if (e == PORCH_EVENT_ENTER && (int64_t)porch_msg_id(m) == p->cancel &&
	    strcmp(stage, p->cancel_at) == 0) {
		p->to_cancel = m;
		ev_timer_start(porch_stage_loop(st), &p->cancel_w);
	}
}

static void
probe_outcome(porch_stage *st, porch_msg *m, enum porch_outcome o)
{
	struct probe *p = porch_stage_data(st);
	if (p->to_cancel == m) {
		ev_timer_stop(porch_stage_loop(st), &p->cancel_w);
		p->to_cancel = NULL;
	}
	fprintf(stderr, "probe: %llu outcome %s %s: %s\n", (unsigned long long)porch_msg_id(m),
	    porch_outcome_name(o), porch_error_name(porch_msg_error(m)),
	    porch_msg_error_text(m));
	if (++p->ended < p->count)
		return;
	if (p->metrics != NULL) {
		char *text = porch_metrics_text(st);
		FILE *f = fopen(p->metrics, "w");
		if (text != NULL && f != NULL)
			fputs(text, f);
		if (f != NULL)
			fclose(f);
		free(text);
	}
	porch_stage_finished(st);
}

static void
probe_start(porch_stage *st)
{
	struct probe *p = porch_stage_data(st);
	for (int64_t i = 0; i < p->count; i++) {
		char text[32];
		porch_msg *m = porch_msg_new(st);
		snprintf(text, sizeof text, "req %lld", (long long)i + 1);
		porch_msg_set_text(m, text, strlen(text));
		porch_msg_set_traced(m, 1);
		porch_emit(st, m);
	}
	if (p->count == 0)
		porch_stage_finished(st);
}

static int
probe_init(porch_stage *st)
{
	const porch_params *pp = porch_stage_params(st);
	struct probe *p = calloc(1, sizeof *p);
	if (p == NULL)
		return -1;
	p->st = st;
	p->count = porch_param_int(pp, "count");
	p->cancel = porch_param_int(pp, "cancel");
	p->cancel_at = porch_param_str(pp, "cancel-at");
	p->metrics = porch_param_str(pp, "metrics");
	ev_timer_init(&p->cancel_w, on_cancel, 0.02, 0.);
	p->cancel_w.data = p;
	porch_stage_set_data(st, p);
	return 0;
}

static void
probe_fini(porch_stage *st)
{
	struct probe *p = porch_stage_data(st);
	ev_timer_stop(porch_stage_loop(st), &p->cancel_w);
	free(p);
}

static const char *const probe_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "probe",
	.summary = "test source: traced requests, events, a cancel, metrics",
	.params = probe_params,
	.flags = PORCH_STAGE_SOURCE,
	.outputs = probe_outputs,
	.init = probe_init,
	.start = probe_start,
	.outcome = probe_outcome,
	.event = probe_event,
	.fini = probe_fini,
};
