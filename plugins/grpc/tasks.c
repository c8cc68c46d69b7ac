/*
 * tasks.c -- the task API: SubmitTask answers at once with the task's id,
 * the request goes through the pipeline traced; SubscribeProgress streams
 * what happens to it (the history so far, then live: stage entered and
 * left, retry, tokens as they stream, and the outcome with its typed
 * error, after which the stream ends OK); GetTask reports it; CancelTask
 * cancels it (porch_msg_cancel, which cancels its model call).
 *
 * A finished task is kept for task-ttl and while there are at most
 * task-max finished tasks, then forgotten (NOT_FOUND).  Tasks are the grpc
 * source's own: see the plugin's description for why they are not shared
 * with the http source's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gsrc.h"

/* Most bytes of progress history kept per task; later updates still go live. */
#define HISTORY_MAX (64 * 1024)

struct hist {
	uint8_t *p;                 /* one packed Progress */
	size_t len;
	struct hist *next;
};

struct gtask {
	struct http_origin origin;  /* first: the reply sink may call it */
	struct gsrc *s;
	struct gtask *prev, *next;
	char id[48];
	char *name, *description;
	Porch__V1__TaskStatus status;
	porch_msg *m;               /* while in the pipeline */
	int creating, refused;
	double created_wall, finished_wall, created, finished;
	uint8_t *result;
	size_t result_len;
	char *err_code, *err_msg, *err_stage;
	int grpc_code;
	unsigned attempts;
	size_t n_timings;
	char **timing_stage;
	double *timing_ms;
	struct hist *hist_head, *hist_tail;
	size_t hist_bytes;
	struct gcall *watchers;
};

static char *
dup_str(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
task_free(struct gtask *t)
{
	free(t->name);
	free(t->description);
	free(t->result);
	free(t->err_code);
	free(t->err_msg);
	free(t->err_stage);
	for (size_t i = 0; i < t->n_timings; i++)
		free(t->timing_stage[i]);
	free(t->timing_stage);
	free(t->timing_ms);
	while (t->hist_head != NULL) {
		struct hist *h = t->hist_head;
		t->hist_head = h->next;
		free(h->p);
		free(h);
	}
	free(t);
}

static void
task_remove(struct gtask *t)
{
	struct gsrc *s = t->s;
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		s->tasks_head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	else
		s->tasks_tail = t->prev;
	s->n_tasks--;
	task_free(t);
}

static int
finished(const struct gtask *t)
{
	return t->status >= PORCH__V1__TASK_STATUS__COMPLETED && t->m == NULL;
}

static void
tasks_purge(struct gsrc *s)
{
	double now = ev_now(s->loop);
	unsigned done = 0;
	for (struct gtask *t = s->tasks_head, *next; t != NULL; t = next) {
		next = t->next;
		if (!finished(t) || t->watchers != NULL)
			continue;
		if (now - t->finished >= s->task_ttl)
			task_remove(t);
		else
			done++;
	}
	for (struct gtask *t = s->tasks_head, *next; t != NULL && done > s->task_max; t = next) {
		next = t->next;
		if (finished(t) && t->watchers == NULL) {
			task_remove(t);
			done--;
		}
	}
}

static struct gtask *
task_find_in(struct gsrc *s, const char *id)
{
	tasks_purge(s);
	for (struct gtask *t = s->tasks_head; t != NULL && id != NULL; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

struct lookup {
	struct gsrc *s;
	const char *id;
	struct gtask *t;            /* the task found */
	struct gsrc *to;            /* the live instance found */
};

static int
find_other(struct gsrc *o, void *arg)
{
	struct lookup *l = arg;
	if (o != l->s && strcmp(o->name, l->s->name) == 0)
		l->t = task_find_in(o, l->id);
	return l->t != NULL;
}

/* s's task, or that of the stage of the same name in a pipeline a reload
 * replaced, which runs its tasks to their end. */
static struct gtask *
task_find(struct gsrc *s, const char *id)
{
	struct gtask *t = task_find_in(s, id);
	if (t == NULL && id != NULL) {
		struct lookup l = { s, id, NULL, NULL };
		gsrc_each(s, find_other, &l);
		t = l.t;
	}
	return t;
}

/* ---- progress ------------------------------------------------------------- */

/* Sends p to the watchers and keeps it in the history (tokens too, within
 * HISTORY_MAX). */
static void
progress(struct gtask *t, Porch__V1__Progress *p)
{
	p->task_id = t->id;
	p->elapsed_ms = (ev_now(t->s->loop) - t->created) * 1000.0;
	for (struct gcall *c = t->watchers; c != NULL; c = c->next_watch)
		call_send(c, &p->base);
	size_t len = protobuf_c_message_get_packed_size(&p->base);
	if (t->hist_bytes + len > HISTORY_MAX)
		return;
	struct hist *h = malloc(sizeof *h);
	uint8_t *b = h ? malloc(len ? len : 1) : NULL;
	if (b == NULL) {
		free(h);
		return;
	}
	protobuf_c_message_pack(&p->base, b);
	h->p = b;
	h->len = len;
	h->next = NULL;
	if (t->hist_tail != NULL)
		t->hist_tail->next = h;
	else
		t->hist_head = h;
	t->hist_tail = h;
	t->hist_bytes += len;
}

void
tasks_event(struct gtask *t, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail)
{
	Porch__V1__Progress p = PORCH__V1__PROGRESS__INIT;
	if (e == PORCH_EVENT_ENTER && t->status == PORCH__V1__TASK_STATUS__QUEUED)
		t->status = PORCH__V1__TASK_STATUS__RUNNING;
	p.kind = e == PORCH_EVENT_ENTER ? PORCH__V1__PROGRESS__KIND__STAGE_ENTERED :
	    e == PORCH_EVENT_LEAVE ? PORCH__V1__PROGRESS__KIND__STAGE_LEFT :
	    PORCH__V1__PROGRESS__KIND__RETRY;
	p.stage = (char *)stage;
	p.detail = (char *)(detail ? detail : "");
	p.attempt = porch_msg_attempts(m) + (e == PORCH_EVENT_RETRY);
	progress(t, &p);
}

static void
task_piece(struct http_origin *o, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	(void)m;
	(void)pc;
	struct gtask *t = (struct gtask *)o;
	if (len == 0)
		return;
	Porch__V1__Progress p = PORCH__V1__PROGRESS__INIT;
	p.kind = PORCH__V1__PROGRESS__KIND__TOKEN;
	p.token.data = (uint8_t *)text;
	p.token.len = len;
	progress(t, &p);
}

static void
task_chunk(struct http_origin *o, porch_msg *m, const char *text, size_t len)
{
	task_piece(o, m, text, len, NULL);
}

static void
task_finish(struct http_origin *o, porch_msg *m)
{
	(void)o;
	(void)m; /* the outcome records it */
}

const struct http_origin_ops task_ops = {
	.magic = HTTP_ORIGIN_MAGIC,
	.version = HTTP_ORIGIN_VERSION,
	.chunk = task_chunk,
	.finish = task_finish,
	.piece = task_piece,
};

static void
fill_error(struct gtask *t, Porch__V1__Error *e)
{
	e->code = t->err_code ? t->err_code : (char *)"";
	e->message = t->err_msg ? t->err_msg : (char *)"";
	e->stage = t->err_stage ? t->err_stage : (char *)"";
	e->grpc_code = t->grpc_code;
}

void
tasks_outcome(struct gtask *t, porch_msg *m, enum porch_outcome o)
{
	struct gsrc *s = t->s;
	enum porch_error e = porch_msg_error(m);
	t->m = NULL;
	t->status = o == PORCH_COMPLETED ? PORCH__V1__TASK_STATUS__COMPLETED :
	    o == PORCH_SHED ? PORCH__V1__TASK_STATUS__SHED :
	    o == PORCH_EXPIRED ? PORCH__V1__TASK_STATUS__EXPIRED : PORCH__V1__TASK_STATUS__FAILED;
	t->attempts = porch_msg_attempts(m);
	t->finished = ev_now(s->loop);
	t->finished_wall = codec_wall();
	t->grpc_code = (int)codec_status(o, e, porch_msg_status(m));
	if (o == PORCH_COMPLETED) {
		size_t len;
		const char *text = porch_msg_text(m, &len);
		t->result = malloc(len + 1);
		if (t->result != NULL) {
			memcpy(t->result, text, len);
			t->result_len = len;
		}
	} else {
		t->err_code = dup_str(porch_error_name(e));
		t->err_msg = dup_str(porch_msg_error_text(m));
		t->err_stage = dup_str(porch_msg_error_stage(m));
		porch_msg_log(s->st, m, "task %s %s: %s%s%s", t->id, porch_outcome_name(o),
		    porch_error_name(e), *porch_msg_error_text(m) ? ": " : "",
		    porch_msg_error_text(m));
	}
	const char *stage;
	double ms;
	size_t n = 0;
	while (porch_msg_timing_at(m, n, &ms) != NULL)
		n++;
	t->timing_stage = calloc(n ? n : 1, sizeof *t->timing_stage);
	t->timing_ms = calloc(n ? n : 1, sizeof *t->timing_ms);
	if (t->timing_stage != NULL && t->timing_ms != NULL)
		for (size_t i = 0; (stage = porch_msg_timing_at(m, i, &ms)) != NULL && i < n; i++) {
			t->timing_stage[i] = strdup(stage);
			t->timing_ms[i] = ms;
			t->n_timings = i + 1;
		}
	if (t->creating) {
		t->refused = 1;
		return;
	}
	Porch__V1__Progress p = PORCH__V1__PROGRESS__INIT;
	Porch__V1__Error pe = PORCH__V1__ERROR__INIT;
	p.kind = PORCH__V1__PROGRESS__KIND__OUTCOME;
	p.status = t->status;
	p.attempt = t->attempts;
	if (o == PORCH_COMPLETED) {
		p.result.data = t->result;
		p.result.len = t->result_len;
	} else {
		fill_error(t, &pe);
		p.error = &pe;
	}
	progress(t, &p);
	while (t->watchers != NULL) {
		struct gcall *c = t->watchers;
		t->watchers = c->next_watch;
		c->next_watch = NULL;
		c->task = NULL;
		call_finish(c, GRPC_STATUS_OK, NULL);
		call_release(c);
	}
	tasks_purge(s);
}

/* ---- the calls ------------------------------------------------------------ */

void
tasks_submit(struct gcall *c, const uint8_t *req, size_t len)
{
	struct gsrc *s = c->s;
	if (s->draining) {
		call_finish(c, GRPC_STATUS_UNAVAILABLE, "porch is shutting down and takes no "
		    "new tasks");
		return;
	}
	Porch__V1__SubmitTaskRequest *r = porch__v1__submit_task_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "porch.v1.SubmitTaskRequest");
		return;
	}
	struct gtask *t = NULL;
	porch_msg *m = NULL;
	if (r->payload.len == 0) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "payload is empty: it is the "
		    "task's prompt");
		goto out;
	}
	if (!(r->timeout_secs >= 0 && r->timeout_secs <= 86400)) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "timeout_secs must be from 0 "
		    "(none given) to 86400");
		goto out;
	}
	if (r->retries_case == PORCH__V1__SUBMIT_TASK_REQUEST__RETRIES_MAX_RETRIES &&
	    (r->max_retries < 0 || r->max_retries > 100)) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "max_retries must be from 0 to 100");
		goto out;
	}
	/* checked before a message is made: a bad request is no request */
	for (size_t i = 0; i < r->n_metadata; i++) {
		const char *why;
		if (gen_set_meta(NULL, r->metadata[i]->key, r->metadata[i]->value, &why) != 0) {
			call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "metadata '%s': %s",
			    r->metadata[i]->key, why);
			goto out;
		}
	}
	t = calloc(1, sizeof *t);
	m = t != NULL ? porch_msg_new(s->st) : NULL;
	if (m == NULL) {
		free(t);
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r->n_metadata; i++) {
		const char *why;
		(void)gen_set_meta(m, r->metadata[i]->key, r->metadata[i]->value, &why);
	}
	t->origin.ops = &task_ops;
	t->s = s;
	snprintf(t->id, sizeof t->id, "task-%016llx", (unsigned long long)
	    (((uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ull) ^ ++s->next_id ^
	    (uint64_t)(codec_wall() * 1e6)));
	t->name = dup_str(r->name);
	t->description = dup_str(r->description);
	t->status = PORCH__V1__TASK_STATUS__QUEUED;
	t->created = ev_now(s->loop);
	t->created_wall = codec_wall();
	t->prev = s->tasks_tail;
	if (s->tasks_tail != NULL)
		s->tasks_tail->next = t;
	else
		s->tasks_head = t;
	s->tasks_tail = t;
	s->n_tasks++;

	porch_msg_set_text(m, (const char *)r->payload.data, r->payload.len);
	porch_msg_set_meta(m, "request-id", t->id);
	porch_msg_set_meta(m, "task-id", t->id);
	if (r->session != NULL && *r->session)
		porch_msg_set_session(m, r->session, strlen(r->session));
	if (r->retries_case == PORCH__V1__SUBMIT_TASK_REQUEST__RETRIES_MAX_RETRIES) {
		char num[24];
		snprintf(num, sizeof num, "%d", (int)r->max_retries);
		porch_msg_set_meta(m, "retries", num);
	}
	if (r->timeout_secs > 0)
		porch_msg_set_deadline(m, (int64_t)(r->timeout_secs * 1000.0 + 0.5));
	else if (s->deadline_ms > 0)
		porch_msg_set_deadline(m, s->deadline_ms);
	porch_msg_set_traced(m, 1);
	porch_msg_set_origin_data(m, &t->origin);
	t->m = m;
	t->creating = 1;
	gen_emit(s, NULL, m);
	t->creating = 0;
	if (t->refused) {
		/* refused at once: say so now, not through a task nobody knows of */
		enum porch_outcome o = t->status == PORCH__V1__TASK_STATUS__SHED ? PORCH_SHED :
		    t->status == PORCH__V1__TASK_STATUS__EXPIRED ? PORCH_EXPIRED : PORCH_FAILED;
		enum porch_error e = PORCH_ERR_INTERNAL;
		for (int i = 0; i <= PORCH_ERR_UNROUTED; i++)
			if (t->err_code && strcmp(porch_error_name((enum porch_error)i), t->err_code) == 0)
				e = (enum porch_error)i;
		call_finish_error(c, o, e, 0, t->err_msg, o == PORCH_SHED ? s->retry_after_ms : 0);
		task_remove(t);
		goto out;
	}
	char ts[40];
	codec_rfc3339(t->created_wall, ts, sizeof ts);
	Porch__V1__SubmitTaskResponse a = PORCH__V1__SUBMIT_TASK_RESPONSE__INIT;
	a.task_id = t->id;
	a.timestamp = ts;
	a.created_unix_ms = (int64_t)(t->created_wall * 1000.0);
	a.status = t->status;
	call_send(c, &a.base);
	call_finish(c, GRPC_STATUS_OK, NULL);
out:
	porch__v1__submit_task_request__free_unpacked(r, NULL);
}

/* The task a request names; NULL after answering NOT_FOUND. */
static struct gtask *
named(struct gcall *c, const char *id)
{
	struct gtask *t = task_find(c->s, id);
	if (t == NULL)
		call_finish(c, GRPC_STATUS_NOT_FOUND, "no such task: %s (finished tasks are "
		    "kept for task-ttl only)", id ? id : "");
	return t;
}

void
tasks_subscribe(struct gcall *c, const uint8_t *req, size_t len)
{
	Porch__V1__SubscribeProgressRequest *r =
	    porch__v1__subscribe_progress_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "porch.v1.SubscribeProgressRequest");
		return;
	}
	struct gtask *t = named(c, r->task_id);
	porch__v1__subscribe_progress_request__free_unpacked(r, NULL);
	if (t == NULL)
		return;
	for (struct hist *h = t->hist_head; h != NULL; h = h->next) {
		Porch__V1__Progress *p = porch__v1__progress__unpack(NULL, h->len, h->p);
		if (p != NULL) {
			call_send(c, &p->base);
			porch__v1__progress__free_unpacked(p, NULL);
		}
	}
	if (finished(t)) {
		call_finish(c, GRPC_STATUS_OK, NULL);
		return;
	}
	call_hold(c);
	c->task = t;
	c->next_watch = t->watchers;
	t->watchers = c;
}

void
tasks_unwatch(struct gcall *c)
{
	struct gtask *t = c->task;
	if (t == NULL)
		return;
	for (struct gcall **pp = &t->watchers; *pp != NULL; pp = &(*pp)->next_watch)
		if (*pp == c) {
			*pp = c->next_watch;
			break;
		}
	c->next_watch = NULL;
	c->task = NULL;
	call_release(c);
}

void
tasks_get(struct gcall *c, const uint8_t *req, size_t len)
{
	Porch__V1__GetTaskRequest *r = porch__v1__get_task_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "porch.v1.GetTaskRequest");
		return;
	}
	struct gtask *t = named(c, r->task_id);
	porch__v1__get_task_request__free_unpacked(r, NULL);
	if (t == NULL)
		return;
	char created[40], done[40];
	Porch__V1__Task a = PORCH__V1__TASK__INIT;
	Porch__V1__Error e = PORCH__V1__ERROR__INIT;
	codec_rfc3339(t->created_wall, created, sizeof created);
	a.task_id = t->id;
	a.name = t->name ? t->name : (char *)"";
	a.description = t->description ? t->description : (char *)"";
	a.status = t->status;
	a.created = created;
	a.attempts = t->attempts;
	Porch__V1__Task__TimingsEntry *entries = NULL, **ptrs = NULL;
	if (finished(t)) {
		codec_rfc3339(t->finished_wall, done, sizeof done);
		a.finished = done;
		a.elapsed_ms = (t->finished - t->created) * 1000.0;
		if (t->status == PORCH__V1__TASK_STATUS__COMPLETED) {
			a.result.data = t->result;
			a.result.len = t->result_len;
		} else {
			fill_error(t, &e);
			a.error = &e;
		}
		entries = calloc(t->n_timings + 1, sizeof *entries);
		ptrs = calloc(t->n_timings + 1, sizeof *ptrs);
		if (entries != NULL && ptrs != NULL) {
			for (size_t i = 0; i < t->n_timings; i++) {
				porch__v1__task__timings_entry__init(&entries[i]);
				entries[i].key = t->timing_stage[i] ? t->timing_stage[i] : (char *)"";
				entries[i].value = t->timing_ms[i];
				ptrs[i] = &entries[i];
			}
			a.n_timings = t->n_timings;
			a.timings = ptrs;
		}
	}
	call_send(c, &a.base);
	call_finish(c, GRPC_STATUS_OK, NULL);
	free(entries);
	free(ptrs);
}

void
tasks_cancel(struct gcall *c, const uint8_t *req, size_t len)
{
	struct gsrc *s = c->s;
	Porch__V1__CancelTaskRequest *r = porch__v1__cancel_task_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "porch.v1.CancelTaskRequest");
		return;
	}
	struct gtask *t = named(c, r->task_id);
	porch__v1__cancel_task_request__free_unpacked(r, NULL);
	if (t == NULL)
		return;
	Porch__V1__CancelTaskResponse a = PORCH__V1__CANCEL_TASK_RESPONSE__INIT;
	a.task_id = t->id;
	if (t->m != NULL) {
		a.cancelled = 1;
		if (!gen_unwait(s, t->m, "cancelled by CancelTask"))
			porch_msg_cancel(t->m, "cancelled by CancelTask");
	}
	a.status = t->status; /* as it is now: the outcome may come later */
	call_send(c, &a.base);
	call_finish(c, GRPC_STATUS_OK, NULL);
}

static int
live_other(struct gsrc *o, void *arg)
{
	struct lookup *l = arg;
	if (o != l->s && !o->draining && strcmp(o->name, l->s->name) == 0) {
		l->to = o;
		return 1;
	}
	return 0;
}

/*
 * The instance goes (its pipeline was replaced by a reload and has ended):
 * its finished tasks go to the live instance of the same stage, so that a
 * client still finds them for task-ttl.
 */
static void
tasks_pass_on(struct gsrc *s)
{
	struct lookup l = { s, NULL, NULL, NULL };
	if (s->tasks_head == NULL || !gsrc_each(s, live_other, &l))
		return;
	struct gsrc *to = l.to;
	for (struct gtask *t = s->tasks_head; t != NULL; t = t->next)
		if (!finished(t) || t->watchers != NULL)
			return; /* not expected once the pipeline has ended */
	for (struct gtask *t = s->tasks_head; t != NULL; t = t->next)
		t->s = to;
	porch_stage_log(s->st, "the replaced pipeline has ended: its %u finished tasks go "
	    "over to the new one", s->n_tasks);
	/* older than the new instance's own: they go first */
	s->tasks_tail->next = to->tasks_head;
	if (to->tasks_head != NULL)
		to->tasks_head->prev = s->tasks_tail;
	else
		to->tasks_tail = s->tasks_tail;
	to->tasks_head = s->tasks_head;
	to->n_tasks += s->n_tasks;
	s->tasks_head = s->tasks_tail = NULL;
	s->n_tasks = 0;
}

void
tasks_fini(struct gsrc *s)
{
	tasks_pass_on(s);
	while (s->tasks_head != NULL) {
		struct gtask *t = s->tasks_head;
		s->tasks_head = t->next;
		while (t->watchers != NULL) {
			struct gcall *c = t->watchers;
			t->watchers = c->next_watch;
			c->next_watch = NULL;
			c->task = NULL;
		}
		task_free(t);
	}
	s->tasks_tail = NULL;
	s->n_tasks = 0;
}
