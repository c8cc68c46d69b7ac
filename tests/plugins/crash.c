/*
 * crash.c -- a test-only plugin that dies on purpose, for tests/crash.sh:
 * porch must say which callback was running and still die by the signal.
 * Built twice: as the stage "crash", which crashes in process when it
 * takes request AT, and with CRASH_WORKER as the worker "crash-worker",
 * which crashes in submit for the call of request AT.  Not installed.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

static const struct porch_param crash_params[] = {
	{ "at", PORCH_PARAM_INTEGER, "1", 1, 1000000, NULL, 0,
	  "the request (by id) to crash on" },
	{ "how", PORCH_PARAM_ENUM, "segv", 0, -1, "segv|abort", 0,
	  "segv: a write through a NULL pointer; abort: abort()" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static int *volatile nowhere;

/* UBSan would catch the NULL write itself and exit: let the signal come */
#if defined(__GNUC__) && (__GNUC__ >= 8 || defined(__clang__))
__attribute__((no_sanitize("undefined")))
#endif
static void
crash(const porch_params *p, uint64_t id)
{
	if ((int64_t)id != porch_param_int(p, "at"))
		return;
	if (strcmp(porch_param_str(p, "how"), "abort") == 0)
		abort();
	*nowhere = 42;
}

#ifndef CRASH_WORKER
static void
crash_process(porch_stage *st, porch_msg *m)
{
	crash(porch_stage_params(st), porch_msg_id(m));
	porch_emit(st, m);
}

static const char *const crash_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "crash",
	.summary = "passes requests on, and crashes on one (tests only)",
	.params = crash_params,
	.outputs = crash_outputs,
	.process = crash_process,
};
#else
/* the call's request id is not in the worker API: count the calls */
static uint64_t calls;

static int
crash_submit(porch_worker *w, porch_call *c)
{
	crash(porch_worker_params(w), ++calls);
	size_t len;
	const char *prompt = porch_call_prompt(c, &len);
	porch_call_token(c, prompt, len);
	porch_call_done(c);
	return 0;
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_WORKER,
	.name = "crash-worker",
	.summary = "echoes prompts, and crashes on one call (tests only)",
	.params = crash_params,
	.submit = crash_submit,
};
#endif
