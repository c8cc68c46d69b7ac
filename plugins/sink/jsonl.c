/* jsonl.c -- sink stage: appends one JSON object per request it receives to a file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

#include "record.h"

static const struct porch_param jsonl_params[] = {
	{ "path", PORCH_PARAM_PATH, NULL, 0, -1, NULL, PORCH_PARAM_REQUIRED,
	  "file to append to (created if missing), relative to the pipeline file" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static void
jsonl_process(porch_stage *st, porch_msg *m)
{
	struct record_file *rf = porch_stage_data(st);
	json_t *r = record_of(m, 0);
	if (r == NULL) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "could not make the record (out of memory)");
		return;
	}
	int rc = record_file_write(rf, r);
	json_decref(r);
	if (rc != 0) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "cannot write to %s: %s", rf->path,
		    strerror(errno));
		return;
	}
	porch_done(st, m);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "jsonl",
	.summary = "sink: appends one JSON object per request to a file",
	.params = jsonl_params,
	.outputs = NULL,
	.init = record_sink_init,
	.process = jsonl_process,
	.fini = record_sink_fini,
	.check = record_check_path,
	.description =
	    "Each request that reaches the stage is appended to the file as one line "
	    "of JSON, and flushed before the request ends: {\"id\" (porch's number for "
	    "the request), \"request_id\" (its \"request-id\" metadata: the http "
	    "source's X-Request-Id, or a JSON line's own on the stdin source; else the "
	    "id, as a string), \"time\" (seconds since the epoch, to the millisecond), "
	    "\"session\", \"outcome\", \"input\" (the request as it came in), "
	    "\"text\" (the answer), \"attempts\", \"meta\" (the request's metadata, "
	    "an object of strings), \"timings_ms\" (each stage the request passed, "
	    "with the milliseconds it held it, to two decimals)}, so that an answer "
	    "can be joined to its question; and for a failed request, one routed here from an error port, "
	    "\"error\", \"error_text\", \"error_stage\" and \"status\" (the upstream's, "
	    "0 if none). "
	    "Text that is not valid UTF-8 is written with U+FFFD in place of the bad "
	    "bytes.\n\n"
	    "Records are appended in the order requests reach the stage, which for "
	    "answers is the order they complete. "
	    "The text is the message's when it arrives: the stage takes no streamed "
	    "pieces, so a streamed answer is written whole, once it is complete, "
	    "however many streams are interleaved. "
	    "Each record is one line (control characters in strings are escaped) "
	    "written with a single write(2) to the file, opened for appending, so "
	    "records never interleave with one another.\n\n"
	    "A record that cannot be written (a full disk, a file size limit) fails its "
	    "request, which is then counted as failed, never lost without a word. "
	    "If only part of it went in, that part is cut off the file again, so the "
	    "file holds whole records only; should that fail too, the next record "
	    "starts with a newline, so the torn one is a line of its own.",
};
