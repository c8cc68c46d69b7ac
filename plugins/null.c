/* null.c -- sink stage: accepts every message and discards it (counted). */
#include <porch/plugin.h>

static void
null_process(porch_stage *st, porch_msg *m)
{
	porch_done(st, m);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "null",
	.summary = "sink: accepts every message and discards it (counted)",
	.params = NULL,
	.outputs = NULL,
	.process = null_process,
	.description =
	    "Takes any request (its text, session and metadata are not read) and ends "
	    "it as completed, or, for a failed request routed here from an error port, "
	    "with the outcome its error stands for (failed, or expired for a deadline); "
	    "nothing is written anywhere, and the statistics count it.",
};
