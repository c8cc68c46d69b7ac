/*
 * porch-fake.h -- a small fake of the porch runtime for the http harness
 * (tests/fuzz/http.c): the porch_* functions the http source's upper
 * layers call, with messages that wait in a list until the harness
 * finishes them as the pipeline and the reply sink would.
 */
#ifndef PORCH_FUZZ_FAKE_H
#define PORCH_FUZZ_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <porch/plugin.h>

#define FAKE_META_MAX 32

struct porch_stage {
	struct ev_loop *loop;
	void *data;
	size_t ready;              /* how many more porch_stage_ready lets in */
	int answers_edited;
};

struct porch_msg {
	char *text, *input;
	size_t len, input_len;
	char *session;
	char *key[FAKE_META_MAX], *val[FAKE_META_MAX];
	size_t n_meta;
	void *origin;
	enum porch_error err;
	char errtext[256];
	int cancelled, traced, ended;
	int64_t deadline;
	struct porch_msg *next;
};

/* Messages emitted or failed, in order, not yet ended by the harness. */
extern struct porch_msg *fake_msgs;
extern size_t fake_inflight;
void fake_msg_free(porch_msg *m);

#endif
