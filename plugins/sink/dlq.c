/* dlq.c -- sink stage: dead letters; writes each failed request whole as a JSON line. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

#include "record.h"

static const struct porch_param dlq_params[] = {
	{ "path", PORCH_PARAM_PATH, NULL, 0, -1, NULL, PORCH_PARAM_REQUIRED,
	  "dead-letter file to append to (created if missing)" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static void
dlq_process(porch_stage *st, porch_msg *m)
{
	struct record_file *rf = porch_stage_data(st);
	json_t *r = record_of(m, 1);
	if (r == NULL) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "could not make the dead letter "
		    "(out of memory)");
		return;
	}
	int rc = record_file_write(rf, r);
	json_decref(r);
	if (rc != 0) {
		/* the request keeps its first error: that is what failed it */
		porch_stage_log(st, "cannot write request %llu to %s: %s",
		    (unsigned long long)porch_msg_id(m), rf->path, strerror(errno));
		if (porch_msg_error(m) == PORCH_ERR_NONE) {
			porch_fail(st, m, PORCH_ERR_INTERNAL, "cannot write to %s: %s",
			    rf->path, strerror(errno));
			return;
		}
	}
	/* a failed request ends as failed (or expired) here, as its error says */
	porch_done(st, m);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "dlq",
	.summary = "sink: dead letters; appends each failed request whole as a JSON line",
	.params = dlq_params,
	.outputs = NULL,
	.init = record_sink_init,
	.process = dlq_process,
	.fini = record_sink_fini,
	.check = record_check_path,
	.description =
	    "Connect error ports to it (from=\"inference:error\"): each failed request "
	    "is appended to the file as one line of JSON and flushed, with everything "
	    "needed to understand and replay it: {\"id\", \"request_id\" (the "
	    "request's \"request-id\" metadata, else the id, as a string, to join the "
	    "record to the question), \"time\", \"session\", "
	    "\"outcome\", \"input\" (the text as the source first read it), \"text\" "
	    "(the text when it failed, e.g. the assembled prompt), \"error\" (its "
	    "type: timeout, upstream, transport, cancelled, bad-request ...), "
	    "\"error_text\", \"error_stage\", \"status\" (the upstream's HTTP status, "
	    "0 if none), \"retry_after_ms\" (when the upstream gave one), "
	    "\"attempts\", \"meta\" and \"timings_ms\"}.\n\n"
	    "The request ends with the outcome its error stands for: failed, or "
	    "expired for a deadline. "
	    "porch replay DLQ-FILE PIPELINE feeds the records' inputs, sessions and "
	    "metadata back into a pipeline's source. "
	    "Records are appended in the order requests reach the stage. "
	    "The \"text\" is the message's when it arrives: the stage takes no streamed "
	    "pieces, so whatever streamed before the request failed is not in it (an "
	    "inference stage keeps a failed request's prompt as its text). "
	    "Each record is one line written with a single write(2) to the file, "
	    "opened for appending, so records never interleave with one another.\n\n"
	    "If a record cannot be written (a full disk, a file size limit), the stage "
	    "says so on standard error, and the request is still counted as failed. "
	    "If only part of it went in, that part is cut off the file again, so the "
	    "file holds whole records only; should that fail too, the next record "
	    "starts with a newline, so the torn one is a line of its own.",
};
