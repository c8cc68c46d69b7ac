/*
 * record.h -- a message as one JSON object, for the jsonl and dlq sinks,
 * and the append-only file both write to.
 */
#ifndef PORCH_SINK_RECORD_H
#define PORCH_SINK_RECORD_H

#include <stdio.h>

#include <jansson.h>
#include <porch/plugin.h>


/*
 * {"id", "request_id", "time", "session", "outcome", "input", "text",
 * "attempts", "meta", "timings_ms"} and, for a failed message, "error",
 * "error_text", "error_stage" and "status": enough to join an answer to its
 * question.  With full: also "retry_after_ms", so that a dead letter can be
 * replayed as it was.  NULL when out of memory.
 */
json_t *record_of(const porch_msg *m, int full);

/*
 * An append-only file of JSON lines.  Each record is written with one
 * write(2) on a descriptor opened with O_APPEND, so it lands whole at the
 * end of the file, never mixed with another's.  When a write is short (a
 * full disk), the part written is cut off the file again; if that fails
 * too, the file is "torn" (it ends inside a record), and the next record
 * starts with a newline so that it is a line of its own.
 */
struct record_file {
	int fd;
	int torn;
	char *path;
};

/* Opens path for appending; -1 after porch_stage_error. */
int record_file_open(struct record_file *rf, porch_stage *st, const char *path);
/* Appends one record as one line; -1 with errno set when it could not
 * (then the file holds none of it, or says it is torn, as above). */
int record_file_write(struct record_file *rf, json_t *record);
void record_file_close(struct record_file *rf);

/* init and fini both sinks share: the record_file is the stage's data. */
int record_sink_init(porch_stage *st);
void record_sink_fini(porch_stage *st);

/* The check callback both sinks share: the file's directory must exist. */
int record_check_path(const porch_params *p, porch_check *c);

#endif
