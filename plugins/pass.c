/* pass.c -- stage: passes each message on unchanged (for tests and benchmarks). */
#include <porch/plugin.h>

static void
pass_process(porch_stage *st, porch_msg *m)
{
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(st, m);
}

static const char *const pass_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "pass",
	.summary = "passes each message on unchanged (for tests and benchmarks)",
	.params = NULL,
	.outputs = pass_outputs,
	.process = pass_process,
	.description =
	    "Takes any request and passes it on out of its out port as it came: text, "
	    "session and metadata unchanged. For tests and benchmarks (the cost of a hop).",
};
