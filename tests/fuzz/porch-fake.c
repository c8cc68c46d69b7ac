/*
 * porch-fake.c -- the porch runtime, as far as the http source's upper
 * layers reach it, faked for the http harness (see porch-fake.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "porch-fake.h"

struct porch_msg *fake_msgs;
size_t fake_inflight;

static void
queue(porch_msg *m)
{
	porch_msg **pp = &fake_msgs;
	while (*pp != NULL) {
		if (*pp == m)
			abort(); /* handed to the runtime twice */
		pp = &(*pp)->next;
	}
	m->next = NULL;
	*pp = m;
}

void
fake_msg_free(porch_msg *m)
{
	free(m->text);
	free(m->input);
	free(m->session);
	for (size_t i = 0; i < m->n_meta; i++) {
		free(m->key[i]);
		free(m->val[i]);
	}
	free(m);
	fake_inflight--;
}

porch_msg *
porch_msg_new(porch_stage *source)
{
	(void)source;
	porch_msg *m = calloc(1, sizeof *m);
	if (m != NULL)
		fake_inflight++;
	return m;
}

int
porch_emit(porch_stage *st, porch_msg *m)
{
	(void)st;
	if (m->ended)
		abort();
	queue(m);
	return 0;
}

void
porch_fail(porch_stage *st, porch_msg *m, enum porch_error why, const char *fmt, ...)
{
	(void)st;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->errtext, sizeof m->errtext, fmt, ap);
	va_end(ap);
	m->err = why;
	m->ended = 1;
	queue(m);
}

const char *
porch_msg_text(const porch_msg *m, size_t *len)
{
	if (len != NULL)
		*len = m->len;
	return m->text ? m->text : "";
}

int
porch_msg_set_text(porch_msg *m, const char *text, size_t len)
{
	char *p = malloc(len + 1);
	if (p == NULL)
		return -1;
	memcpy(p, text, len);
	p[len] = '\0';
	free(m->text);
	m->text = p;
	m->len = len;
	if (m->input == NULL && (m->input = malloc(len + 1)) != NULL) {
		memcpy(m->input, p, len + 1);
		m->input_len = len;
	}
	return 0;
}

const char *
porch_msg_meta(const porch_msg *m, const char *key)
{
	for (size_t i = 0; i < m->n_meta; i++)
		if (strcmp(m->key[i], key) == 0)
			return m->val[i];
	return NULL;
}

int
porch_msg_set_meta(porch_msg *m, const char *key, const char *value)
{
	char *v = strdup(value);
	if (v == NULL)
		return -1;
	for (size_t i = 0; i < m->n_meta; i++)
		if (strcmp(m->key[i], key) == 0) {
			free(m->val[i]);
			m->val[i] = v;
			return 0;
		}
	if (m->n_meta == FAKE_META_MAX || (m->key[m->n_meta] = strdup(key)) == NULL) {
		free(v);
		return -1;
	}
	m->val[m->n_meta++] = v;
	return 0;
}

int
porch_msg_set_session(porch_msg *m, const char *session, size_t len)
{
	char *p = strndup(session, len);
	if (p == NULL)
		return -1;
	free(m->session);
	m->session = p;
	return 0;
}

void porch_msg_set_origin_data(porch_msg *m, void *data) { m->origin = data; }
void *porch_msg_origin_data(const porch_msg *m) { return m->origin; }
void porch_msg_set_deadline(porch_msg *m, int64_t ms) { m->deadline = ms; }
void porch_msg_set_traced(porch_msg *m, int traced) { m->traced = traced; }
enum porch_error porch_msg_error(const porch_msg *m) { return m->err; }
const char *porch_msg_error_text(const porch_msg *m) { return m->errtext; }
unsigned porch_msg_attempts(const porch_msg *m) { (void)m; return 1; }
int64_t porch_msg_retry_after(const porch_msg *m) { return m->err == PORCH_ERR_UPSTREAM ? 2000 : 0; }
int porch_msg_status(const porch_msg *m) { return m->err == PORCH_ERR_UPSTREAM ? 429 : 0; }

void
porch_msg_cancel(porch_msg *m, const char *why)
{
	if (m->cancelled)
		return;
	m->cancelled = 1;
	if (m->err == PORCH_ERR_NONE) {
		m->err = PORCH_ERR_CANCELLED;
		snprintf(m->errtext, sizeof m->errtext, "%s", why);
	}
}

const char *
porch_msg_timing_at(const porch_msg *m, size_t i, double *ms)
{
	(void)m;
	*ms = 1.5;
	return i == 0 ? "fake" : NULL;
}

void
porch_msg_log(const porch_stage *st, const porch_msg *m, const char *fmt, ...)
{
	(void)st;
	(void)m;
	(void)fmt;
}

void
porch_stage_log(const porch_stage *st, const char *fmt, ...)
{
	(void)st;
	(void)fmt;
}

const char *
porch_stage_pipeline_unready(const porch_stage *st)
{
	(void)st;
	return NULL; /* no pools here: always ready */
}

unsigned
porch_stage_shard(const porch_stage *st, unsigned *shards)
{
	(void)st;
	if (shards != NULL)
		*shards = 1; /* one loop: no threads here */
	return 0;
}

void
porch_log(const porch_stage *st, enum porch_log_level level, const porch_msg *m,
    const char *fmt, ...)
{
	(void)st;
	(void)level;
	(void)m;
	(void)fmt;
}

void
porch_stage_error(porch_stage *st, const char *fmt, ...)
{
	(void)st;
	(void)fmt;
}

void *porch_stage_data(const porch_stage *st) { return st->data; }
void porch_stage_set_data(porch_stage *st, void *data) { st->data = data; }
struct ev_loop *porch_stage_loop(const porch_stage *st) { return st->loop; }
const char *porch_stage_name(const porch_stage *st) { (void)st; return "http"; }
int porch_stage_answers_edited(const porch_stage *st) { return st->answers_edited; }

size_t
porch_stage_ready(const porch_stage *st)
{
	return st->ready;
}

uint64_t
porch_stage_inflight(const porch_stage *st, uint64_t *max)
{
	(void)st;
	*max = 1000000;
	return fake_inflight;
}

static char fake_worker;

porch_worker *
porch_stage_pipeline_worker(const porch_stage *st, size_t i)
{
	(void)st;
	return i == 0 ? (porch_worker *)&fake_worker : NULL;
}

const char *porch_worker_model(const porch_worker *w) { (void)w; return "fake-model"; }
const char *porch_version(void) { return "0.0.0-fuzz"; }

char *
porch_metrics_text(const porch_stage *st)
{
	(void)st;
	return strdup("# TYPE porch_requests_total counter\nporch_requests_total 1\n");
}

const char *
porch_outcome_name(enum porch_outcome o)
{
	switch (o) {
	case PORCH_COMPLETED: return "completed";
	case PORCH_FAILED: return "failed";
	case PORCH_SHED: return "shed";
	case PORCH_EXPIRED: return "expired";
	}
	return "?";
}

const char *
porch_error_name(enum porch_error e)
{
	static const char *const names[] = { "none", "bad_request", "timeout", "upstream",
		"transport", "cancelled", "internal", "full", "admission", "deadline",
		"unrouted" };
	return (unsigned)e < sizeof names / sizeof names[0] ? names[e] : "?";
}

enum porch_outcome
porch_error_outcome(enum porch_error e)
{
	switch (e) {
	case PORCH_ERR_NONE: return PORCH_COMPLETED;
	case PORCH_ERR_DEADLINE: return PORCH_EXPIRED;
	case PORCH_ERR_FULL:
	case PORCH_ERR_ADMISSION: return PORCH_SHED;
	default: return PORCH_FAILED;
	}
}

const char *
porch_event_name(enum porch_event e)
{
	switch (e) {
	case PORCH_EVENT_ENTER: return "enter";
	case PORCH_EVENT_LEAVE: return "leave";
	case PORCH_EVENT_RETRY: return "retry";
	}
	return "?";
}
