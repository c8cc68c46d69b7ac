/*
 * join.c -- stage: takes the copies a fan-out made back together, one
 * request at a time, as its mode says (porch.xml(5), FAN-OUT AND JOIN).
 * The copies and their requests are the runtime's: this stage reads its
 * parameters and hands each copy to porch_join.
 */
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

static const struct porch_param join_params[] = {
	{ "mode", PORCH_PARAM_ENUM, "all", 0, 0, "first|all|best", 0,
	  "first: the first copy to arrive (the others are cancelled); all: every "
	  "copy's text in channel order; best: the copy with the highest number in key" },
	{ "timeout", PORCH_PARAM_DURATION, "30s", 0, 86400000, NULL, 0,
	  "how long to wait for the other copies once the first has arrived; 0: no limit" },
	{ "separator", PORCH_PARAM_STRING, "\n\n", 0, 0, NULL, 0,
	  "all: what goes between the copies' texts (by default a blank line)" },
	{ "key", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "best: the metadata key whose number ranks the copies" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static int
join_check(const porch_params *p, porch_check *c)
{
	const char *mode = porch_param_str(p, "mode");
	if (strcmp(mode, "best") == 0 && !porch_param_isset(p, "key")) {
		porch_check_error(c, "mode", "mode 'best' ranks the copies by a metadata key: "
		    "set the parameter key");
		return -1;
	}
	if (strcmp(mode, "best") != 0 && porch_param_isset(p, "key")) {
		porch_check_error(c, "key", "key is for mode 'best' (the mode is '%s')", mode);
		return -1;
	}
	return 0;
}

static int
join_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct porch_join *j = calloc(1, sizeof *j);
	if (j == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	const char *mode = porch_param_str(p, "mode");
	j->mode = strcmp(mode, "first") == 0 ? PORCH_JOIN_FIRST :
	    strcmp(mode, "best") == 0 ? PORCH_JOIN_BEST : PORCH_JOIN_ALL;
	j->timeout_ms = porch_param_int(p, "timeout");
	/* the parameters' strings live as long as the stage */
	j->separator = porch_param_str(p, "separator");
	j->key = porch_param_str(p, "key");
	porch_stage_set_data(st, j);
	return 0;
}

static void
join_process(porch_stage *st, porch_msg *m)
{
	porch_join(st, m, porch_stage_data(st));
}

static void
join_fini(porch_stage *st)
{
	free(porch_stage_data(st));
}

static const char *const join_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "join",
	.summary = "joins the copies of a fan-out (copy=\"true\" channels) into their request",
	.params = join_params,
	.flags = PORCH_STAGE_JOINS,
	.outputs = join_outputs,
	.init = join_init,
	.process = join_process,
	.fini = join_fini,
	.check = join_check,
	.description =
	    "A port whose channels have copy=\"true\" sends each request to all of them as "
	    "copies, and the request waits, counted once, until a join takes its copies "
	    "back together. The join's inputs must come from one fan-out (porch check "
	    "verifies it); a copy that ends elsewhere (fails, is shed by a full channel, "
	    "reaches a sink) is lost, and counts against the join.\n\n"
	    "The join decides once every copy has arrived or is lost, or at the first "
	    "arrival in mode first, or when the timeout passes after the first arrival. "
	    "first: the first copy's answer goes on and the other copies are cancelled "
	    "(their model calls too). all: the texts of the copies that arrived, in the "
	    "order of their channels in the file, with separator between them; the "
	    "metadata of the first of them. best: the copy whose metadata key is the "
	    "highest number (a copy without one ranks last; ties: the first in channel "
	    "order). The request then leaves by out with the answer, or, when no copy "
	    "arrived, fails out the error port: expired at the timeout, else with the "
	    "error of the first copy that failed.\n\n"
	    "Copies that arrive after the decision, and those cancelled by it, are "
	    "counted as discarded, and decisions made at the timeout as timeouts "
	    "(porch_join_discarded_total and porch_join_timeouts_total in /metrics, and "
	    "the statistics). A copy never streams: the answer goes on whole.",
};
