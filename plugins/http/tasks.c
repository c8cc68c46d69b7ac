/*
 * tasks.c -- asynchronous tasks: POST /v1/tasks answers 202 at once, the
 * request goes through the pipeline traced, GET /v1/tasks/{id} reports its
 * status, result or error, attempts and per-stage timings, and
 * GET /v1/tasks/{id}/events streams its progress as server-sent events,
 * GET /v1/tasks lists the tasks kept, newest first, a page at a time, and
 * DELETE /v1/tasks/{id} cancels one.
 *
 * Status: queued (emitted, or waiting for room), running (a stage took it),
 * then completed, failed, shed or expired.  A finished task is kept for
 * task-ttl and while there are at most task-max finished tasks, then
 * forgotten (404).  Tasks in progress are bounded by the pipeline's own
 * in-flight bound.
 *
 * Events ("event: NAME" and "data: JSON" lines): enter and leave (a stage
 * took or passed on the request), retry (a stage tries again, with why and
 * when), and outcome (the end, after which the stream closes).  A watcher
 * gets the history so far, then live events.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "http.h"

/* Milliseconds to two decimals (68.23), as every time in a task is printed;
 * json_text writes them with 15 digits, so no binary tail follows. */
static double
short_ms(double ms)
{
	return ms <= 0 ? 0 : (double)(int64_t)(ms * 100 + 0.5) / 100;
}

enum tstatus { T_QUEUED, T_RUNNING, T_COMPLETED, T_FAILED, T_SHED, T_EXPIRED };

static const char *const tstatus_names[] = {
	"queued", "running", "completed", "failed", "shed", "expired"
};

/* Most bytes of event history kept per task; later events still go live. */
#define HISTORY_MAX (64 * 1024)

struct task {
	struct http_origin origin;  /* first: the reply sink may call it */
	struct http_src *s;
	struct task *prev, *next;   /* the store, oldest first */
	char id[48];
	char rid[WIRE_ID_MAX + 1];
	char *name, *description;
	enum tstatus status;
	int in_pipeline;
	porch_msg *m;               /* while in_pipeline: for DELETE */
	int cancelling;             /* DELETE came; the outcome has not */
	int cancel_asked;           /* threads: DELETE came on another shard */
	uint64_t seq;               /* order of creation, for the list */
	size_t held;                /* its text the pipeline holds, in w.held */
	int creating;               /* inside tasks_create: an outcome now is a refusal */
	int refused;
	double created_wall, finished_wall;
	double created, finished;   /* loop time */
	char *result;
	size_t result_len;
	char *error_code, *error_msg;
	int http_status;
	unsigned attempts;
	json_t *timings;
	struct buf history;
	struct hreq *watchers;
};

/* The time of day, in seconds since the epoch. */
static double
wall_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void
rfc3339(double t, char *out, size_t len)
{
	time_t secs = (time_t)t;
	struct tm tm;
	gmtime_r(&secs, &tm);
	char base[32];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03dZ", base, (int)((t - (double)secs) * 1000) % 1000);
}

/* ---- threads ------------------------------------------------------------ */

/*
 * With threads, each shard's copy of the stage keeps the tasks it took,
 * and a request about a task (GET, DELETE, the events) may land on any
 * shard.  Every shard's tasks are one store under one lock (recursive: an
 * outcome may come inside tasks_create or a DELETE), taken by each entry
 * point below; the lock is a task's, never a chat request's.  What must
 * run on the task's own shard goes there through the relay: a DELETE from
 * another shard marks the task and wakes its shard (relay_w), which
 * cancels the message; a watcher on another shard gets the events in its
 * relay buffer, written out by its own shard's loop.
 */
static pthread_mutex_t tasks_lock;
static pthread_once_t tasks_lock_once = PTHREAD_ONCE_INIT;

static void
tasks_lock_init(void)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&tasks_lock, &a);
	pthread_mutexattr_destroy(&a);
}

static void
lock(void)
{
	pthread_once(&tasks_lock_once, tasks_lock_init);
	pthread_mutex_lock(&tasks_lock);
}

static void
unlock(void)
{
	pthread_mutex_unlock(&tasks_lock);
}

/* Is watcher h on another shard than the task's? */
static int
remote(const struct hreq *h, const struct task *t)
{
	return h->s->w.loop != t->s->w.loop;
}

/* Queues bytes (or the end) for a watcher on another shard, and wakes it. */
static void
relay_add(struct hreq *h, const char *p, size_t len, int end)
{
	if (len > 0)
		buf_add(&h->relay, p, len);
	if (end)
		h->relay_end = 1;
	if (!h->relay_listed) {
		h->relay_listed = 1;
		h->relay_next = h->s->relay_head;
		h->s->relay_head = h;
	}
	ev_async_send(h->s->w.loop, &h->s->relay_w);
}

static void
relay_unlist(struct hreq *h)
{
	if (!h->relay_listed)
		return;
	for (struct hreq **pp = &h->s->relay_head; *pp != NULL; pp = &(*pp)->relay_next)
		if (*pp == h) {
			*pp = h->relay_next;
			break;
		}
	h->relay_listed = 0;
	h->relay_next = NULL;
	buf_free(&h->relay);
}

static void pipeline_cancel_task(struct task *t);

/* On a source's own loop: what other shards left for it. */
static void
on_relay(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop; (void)revents;
	struct http_src *s = w->data;
	lock();
	while (s->relay_head != NULL) {
		struct hreq *h = s->relay_head;
		s->relay_head = h->relay_next;
		h->relay_listed = 0;
		h->relay_next = NULL;
		if (h->relay.len > 0)
			wire_body(&h->w, h->relay.p, h->relay.len);
		h->relay.len = 0;
		if (h->relay_end) {
			h->relay_end = 0;
			wire_end(&h->w);
		}
	}
	if (s->cancels) {
		s->cancels = 0;
		for (struct task *t = s->tasks_head; t != NULL; t = t->next)
			if (t->cancel_asked) {
				t->cancel_asked = 0;
				pipeline_cancel_task(t);
			}
	}
	unlock();
}

void
tasks_relay_init(struct http_src *s)
{
	ev_async_init(&s->relay_w, on_relay);
	s->relay_w.data = s;
	ev_async_start(s->w.loop, &s->relay_w);
	ev_unref(s->w.loop); /* it waits for other shards: it keeps nothing alive */
}

void
tasks_relay_fini(struct http_src *s)
{
	lock();
	if (ev_is_active(&s->relay_w)) {
		ev_ref(s->w.loop);
		ev_async_stop(s->w.loop, &s->relay_w);
	}
	unlock();
}

/* ---- the store ---------------------------------------------------------- */

static void
task_free(struct task *t)
{
	free(t->name);
	free(t->description);
	free(t->result);
	free(t->error_code);
	free(t->error_msg);
	json_decref(t->timings);
	buf_free(&t->history);
	free(t);
}

static void
task_remove(struct task *t)
{
	struct http_src *s = t->s;
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
finished(const struct task *t)
{
	return t->status >= T_COMPLETED && !t->in_pipeline;
}

/* Forgets finished tasks past task-ttl, then the oldest beyond task-max. */
static void
tasks_purge(struct http_src *s)
{
	double now = ev_now(s->w.loop);
	unsigned done = 0;
	for (struct task *t = s->tasks_head, *next; t != NULL; t = next) {
		next = t->next;
		if (!finished(t))
			continue;
		if (now - t->finished >= s->task_ttl)
			task_remove(t);
		else
			done++;
	}
	for (struct task *t = s->tasks_head, *next; t != NULL && done > s->task_max; t = next) {
		next = t->next;
		if (finished(t)) {
			task_remove(t);
			done--;
		}
	}
}

static struct task *
task_find_in(struct http_src *s, const char *id)
{
	tasks_purge(s);
	for (struct task *t = s->tasks_head; t != NULL; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

/* s's task, or that of the stage of the same name in a pipeline a reload
 * replaced, which runs its tasks to their end (porch(1), RELOAD). */
static struct task *
task_find(struct http_src *s, const char *id)
{
	struct task *t = task_find_in(s, id);
	if (t != NULL)
		return t;
	http_instances_lock();
	for (struct http_src *o = http_instances(); t == NULL && o != NULL; o = o->next_instance)
		if (o != s && strcmp(o->name, s->name) == 0)
			t = task_find_in(o, id); /* every shard's: one store (above) */
	http_instances_unlock();
	return t;
}

/* ---- events ------------------------------------------------------------- */

/* Sends an event to the watchers and keeps it in the history. */
static void
task_event(struct task *t, const char *name, json_t *data)
{
	char *d = json_text(data);
	if (d == NULL)
		return;
	struct buf frame = { 0 };
	buf_printf(&frame, "event: %s\ndata: %s\n\n", name, d);
	free(d);
	if (t->history.len + frame.len <= HISTORY_MAX)
		buf_add(&t->history, frame.p, frame.len);
	for (struct hreq *sub = t->watchers; sub != NULL; sub = sub->next_sub) {
		if (remote(sub, t))
			relay_add(sub, frame.p, frame.len, 0);
		else
			wire_body(&sub->w, frame.p, frame.len);
	}
	buf_free(&frame);
}

static void
tasks_event_locked(struct task *t, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail)
{
	struct http_src *s = t->s;
	double ms = (ev_now(s->w.loop) - t->created) * 1000.0;
	if (e == PORCH_EVENT_ENTER && t->status == T_QUEUED)
		t->status = T_RUNNING;
	json_t *data;
	if (e == PORCH_EVENT_RETRY)
		data = json_pack("{s:s, s:s, s:s, s:i, s:s, s:f}", "task_id", t->id,
		    "type", "retry", "stage", stage, "attempt", (int)porch_msg_attempts(m) + 1,
		    "detail", detail, "elapsed_ms", short_ms(ms));
	else if (detail != NULL && *detail != '\0')
		data = json_pack("{s:s, s:s, s:s, s:s, s:f}", "task_id", t->id,
		    "type", porch_event_name(e), "stage", stage, "detail", detail,
		    "elapsed_ms", short_ms(ms));
	else
		data = json_pack("{s:s, s:s, s:s, s:f}", "task_id", t->id,
		    "type", porch_event_name(e), "stage", stage, "elapsed_ms", short_ms(ms));
	task_event(t, porch_event_name(e), data);
}

static void
task_unwatch_all(struct task *t)
{
	while (t->watchers != NULL) {
		struct hreq *sub = t->watchers;
		t->watchers = sub->next_sub;
		sub->next_sub = NULL;
		int far = remote(sub, t);
		sub->task = NULL;
		if (far)
			relay_add(sub, NULL, 0, 1);
		else
			wire_end(&sub->w);
	}
}

void
tasks_unwatch(struct hreq *h)
{
	lock();
	relay_unlist(h);
	buf_free(&h->relay);
	h->relay_end = 0;
	h->watched = 0;
	struct task *t = h->task;
	if (t == NULL) {
		unlock();
		return;
	}
	for (struct hreq **pp = &t->watchers; *pp != NULL; pp = &(*pp)->next_sub) {
		if (*pp == h) {
			*pp = h->next_sub;
			break;
		}
	}
	h->next_sub = NULL;
	h->task = NULL;
	unlock();
}

/* ---- the task's message ------------------------------------------------- */

static void
task_chunk(struct http_origin *o, porch_msg *m, const char *text, size_t len)
{
	(void)o; (void)m; (void)text; (void)len; /* the result is read at the end */
}

static void
task_finish(struct http_origin *o, porch_msg *m)
{
	(void)o; (void)m; /* the outcome records it */
}

const struct http_origin_ops task_ops = {
	.magic = HTTP_ORIGIN_MAGIC,
	.version = HTTP_ORIGIN_VERSION,
	.chunk = task_chunk,
	.finish = task_finish,
};

static char *
dup_str(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
tasks_outcome_locked(struct task *t, porch_msg *m, enum porch_outcome o)
{
	struct http_src *s = t->s;
	enum porch_error e = porch_msg_error(m);
	t->in_pipeline = 0;
	t->m = NULL;
	t->cancelling = 0;
	wire_unhold(&s->w, t->held);
	t->held = 0;
	t->status = o == PORCH_COMPLETED ? T_COMPLETED : o == PORCH_SHED ? T_SHED :
	    o == PORCH_EXPIRED ? T_EXPIRED : T_FAILED;
	t->http_status = status_of(o, e);
	t->attempts = porch_msg_attempts(m);
	t->finished = ev_now(s->w.loop);
	t->finished_wall = wall_now();
	if (o == PORCH_COMPLETED) {
		size_t len;
		const char *text = porch_msg_text(m, &len);
		t->result = malloc(len + 1);
		if (t->result != NULL) {
			memcpy(t->result, text, len + 1);
			t->result_len = len;
		}
	} else {
		t->error_code = dup_str(porch_error_name(e));
		t->error_msg = dup_str(porch_msg_error_text(m));
		porch_msg_log(s->st, m, "task %s %s: %s%s%s", t->id, porch_outcome_name(o),
		    porch_error_name(e), *porch_msg_error_text(m) ? ": " : "",
		    porch_msg_error_text(m));
	}
	json_t *timings = json_object();
	const char *stage;
	double ms;
	for (size_t i = 0; (stage = porch_msg_timing_at(m, i, &ms)) != NULL; i++)
		json_object_set_new(timings, stage, json_real(short_ms(ms)));
	t->timings = timings;
	if (t->creating) {
		t->refused = 1;
		return;
	}
	json_t *data = json_pack("{s:s, s:s, s:s, s:i, s:f}", "task_id", t->id,
	    "type", "outcome", "status", tstatus_names[t->status], "attempts", (int)t->attempts,
	    "elapsed_ms", short_ms((t->finished - t->created) * 1000.0));
	if (t->error_code != NULL)
		json_object_set_new(data, "error", json_pack("{s:s, s:s}", "code", t->error_code,
		    "message", t->error_msg ? t->error_msg : ""));
	task_event(t, "outcome", data);
	task_unwatch_all(t);
	tasks_purge(s);
}

/* ---- endpoints ---------------------------------------------------------- */

static int
b64_value(int ch)
{
	if (ch >= 'A' && ch <= 'Z') return ch - 'A';
	if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9') return ch - '0' + 52;
	if (ch == '+' || ch == '-') return 62;
	if (ch == '/' || ch == '_') return 63;
	return -1;
}

/* Decodes base64 (standard or URL-safe, padding optional); -1 if malformed. */
static int
b64_decode(const char *in, size_t n, struct buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i = 0, pad = 0;
	for (; i < n; i++) {
		char ch = in[i];
		if (ch == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			return -1; /* data after padding */
		int v = b64_value((unsigned char)ch);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			char byte = (char)((acc >> bits) & 0xff);
			if (buf_add(out, &byte, 1) != 0)
				return -1;
		}
	}
	if (pad > 2 || bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
		return -1;
	return 0;
}

static int
task_bad(struct hreq *h, const char *param, const char *code, const char *msg)
{
	answer_error_extra(h, 400, param, code, NULL, msg);
	return -1;
}

static void
tasks_create_locked(struct hreq *h)
{
	struct http_src *s = h->s;
	json_error_t jerr;
	json_t *root = h->w.body.len ? json_loadb(h->w.body.p, h->w.body.len, JSON_REJECT_DUPLICATES,
	    &jerr) : NULL;
	if (root == NULL || !json_is_object(root)) {
		answer_error(h, 400, NULL, "invalid_json", "the body must be a JSON object: %s",
		    root == NULL ? (h->w.body.len ? jerr.text : "there is none") : "it is not one");
		json_decref(root);
		return;
	}
	json_t *name = json_object_get(root, "name");
	json_t *desc = json_object_get(root, "description");
	json_t *payload = json_object_get(root, "payload");
	json_t *timeout = json_object_get(root, "timeout_secs");
	json_t *retries = json_object_get(root, "max_retries");
	struct buf text = { 0 };
	if (name != NULL && !json_is_null(name) && !json_is_string(name)) {
		task_bad(h, "name", "invalid_type", "'name' must be a string");
		goto out;
	}
	if (desc != NULL && !json_is_null(desc) && !json_is_string(desc)) {
		task_bad(h, "description", "invalid_type", "'description' must be a string");
		goto out;
	}
	if (payload == NULL) {
		task_bad(h, "payload", "missing_required_parameter", "'payload' is required");
		goto out;
	}
	if (!json_is_string(payload)) {
		task_bad(h, "payload", "invalid_type", "'payload' must be a base64 string");
		goto out;
	}
	if (b64_decode(json_string_value(payload), json_string_length(payload), &text) != 0) {
		task_bad(h, "payload", "invalid_value", "'payload' is not valid base64");
		goto out;
	}
	if (timeout != NULL && !json_is_null(timeout) && (!json_is_number(timeout) ||
	    !(json_number_value(timeout) > 0 && json_number_value(timeout) <= 86400))) {
		task_bad(h, "timeout_secs", json_is_number(timeout) ? "invalid_value" : "invalid_type",
		    "'timeout_secs' must be a number of seconds, more than 0 and at most 86400");
		goto out;
	}
	if (retries != NULL && !json_is_null(retries) && (!json_is_integer(retries) ||
	    json_integer_value(retries) < 0 || json_integer_value(retries) > 100)) {
		task_bad(h, "max_retries", json_is_integer(retries) ? "invalid_value" : "invalid_type",
		    "'max_retries' must be an integer from 0 to 100");
		goto out;
	}

	struct task *t = calloc(1, sizeof *t);
	porch_msg *m = t != NULL ? porch_msg_new(s->st) : NULL;
	if (m == NULL) {
		free(t);
		answer_error(h, 500, NULL, "internal", "out of memory");
		goto out;
	}
	t->origin.ops = &task_ops;
	t->s = s;
	/* ours, not the client's X-Request-Id: that may repeat */
	snprintf(t->id, sizeof t->id, "task-%016llx",
	    (unsigned long long)http_mix64(++s->w.next_id ^ (uint64_t)(uintptr_t)t));
	memcpy(t->rid, h->w.id, sizeof t->rid);
	t->name = json_is_string(name) ? strdup(json_string_value(name)) : NULL;
	t->description = json_is_string(desc) ? strdup(json_string_value(desc)) : NULL;
	t->status = T_QUEUED;
	t->created = ev_now(s->w.loop);
	t->created_wall = wall_now();
	t->prev = s->tasks_tail;
	if (s->tasks_tail != NULL)
		s->tasks_tail->next = t;
	else
		s->tasks_head = t;
	s->tasks_tail = t;
	s->n_tasks++;

	porch_msg_set_text(m, text.p ? text.p : "", text.len);
	t->held = text.len; /* its body was counted at its head (route.c) */
	wire_hold(&s->w, t->held);
	porch_msg_set_meta(m, "request-id", h->w.id);
	porch_msg_set_meta(m, "task-id", t->id);
	if (h->no_cache)
		porch_msg_set_meta(m, "cache", "no");
	if (h->session != NULL)
		porch_msg_set_session(m, h->session, strlen(h->session));
	if (json_is_integer(retries)) {
		char num[24];
		snprintf(num, sizeof num, "%lld", (long long)json_integer_value(retries));
		porch_msg_set_meta(m, "retries", num);
	}
	if (json_is_number(timeout))
		porch_msg_set_deadline(m, (int64_t)(json_number_value(timeout) * 1000.0 + 0.5));
	else if (s->deadline_ms > 0)
		porch_msg_set_deadline(m, s->deadline_ms);
	porch_msg_set_traced(m, 1);
	porch_msg_set_origin_data(m, &t->origin);
	t->in_pipeline = 1;
	t->m = m;
	static atomic_uint_fast64_t seq; /* every shard's: one order */
	t->seq = (uint64_t)atomic_fetch_add(&seq, 1) + 1;
	t->creating = 1;
	pipeline_emit(s, NULL, m);
	t->creating = 0;
	if (t->refused) {
		/* refused at once: say so now, not through a task nobody knows of */
		int status = t->http_status == 499 ? 500 : t->http_status;
		char msg[600];
		snprintf(msg, sizeof msg, "%s: %s%s%s", tstatus_names[t->status],
		    t->error_code ? t->error_code : "", t->error_msg && *t->error_msg ? ": " : "",
		    t->error_msg ? t->error_msg : "");
		answer_error(h, status, NULL, t->error_code, "%s", msg);
		task_remove(t);
		goto out;
	}
	char ts[40];
	rfc3339(t->created_wall, ts, sizeof ts);
	answer_json(h, 202, json_pack("{s:s, s:s, s:s}", "task_id", t->id, "timestamp", ts,
	    "status", tstatus_names[t->status]), NULL);
out:
	buf_free(&text);
	json_decref(root);
}

static void
no_task(struct hreq *h)
{
	answer_error(h, 404, NULL, "task_not_found", "no such task: %s (finished tasks are "
	    "kept for task-ttl only)", h->task_id);
}

/* A task as the API shows it: GET and DELETE /v1/tasks/{id}, the list. */
static json_t *
task_json(const struct task *t)
{
	char created[40], done[40];
	rfc3339(t->created_wall, created, sizeof created);
	/* "cancelling": DELETE came, and the pipeline has not yet let it go */
	const char *status = t->cancelling && !finished(t) ? "cancelling" :
	    tstatus_names[t->status];
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i}", "task_id", t->id, "object", "task",
	    "status", status, "created", created, "attempts", (int)t->attempts);
	if (j == NULL)
		return NULL;
	if (t->name != NULL)
		json_object_set_new(j, "name", json_string(t->name));
	if (t->description != NULL)
		json_object_set_new(j, "description", json_string(t->description));
	if (finished(t)) {
		rfc3339(t->finished_wall, done, sizeof done);
		json_object_set_new(j, "finished", json_string(done));
		json_object_set_new(j, "elapsed_ms", json_real(short_ms((t->finished - t->created) * 1000.0)));
		json_object_set_new(j, "timings", json_incref(t->timings));
		if (t->status == T_COMPLETED)
			json_object_set_new(j, "result", json_bytes(t->result ? t->result : "",
			    t->result_len));
		else
			json_object_set_new(j, "error", json_pack("{s:s, s:s, s:s, s:i}",
			    "message", t->error_msg ? t->error_msg : "",
			    "type", error_type_of(t->http_status), "code",
			    t->error_code ? t->error_code : "", "status", t->http_status));
	}
	return j;
}

static void
tasks_get_locked(struct hreq *h)
{
	struct task *t = task_find(h->s, h->task_id);
	if (t == NULL) {
		no_task(h);
		return;
	}
	answer_json(h, 200, task_json(t), NULL);
}

static void
tasks_cancel_locked(struct hreq *h)
{
	struct task *t = task_find(h->s, h->task_id);
	if (t == NULL) {
		no_task(h);
		return;
	}
	if (t->in_pipeline && t->m != NULL && !t->cancelling) {
		t->cancelling = 1;
		if (remote(h, t)) {
			/* its message is another shard's: that shard cancels it */
			t->cancel_asked = 1;
			t->s->cancels = 1;
			ev_async_send(t->s->w.loop, &t->s->relay_w);
		} else {
			porch_msg_log(t->s->st, t->m, "task %s: cancelled by DELETE /v1/tasks/%s "
			    "(request-id %s)", t->id, t->id, h->w.id);
			/* its outcome may come inside this call (it waited in a channel,
			 * or its model call ends at once): then the answer shows it */
			pipeline_cancel_task(t);
		}
	}
	answer_json(h, 200, task_json(t), NULL);
}

static void
pipeline_cancel_task(struct task *t)
{
	if (t->in_pipeline && t->m != NULL)
		pipeline_cancel_msg(t->s, t->m, "the task was cancelled (DELETE /v1/tasks/ID)");
}

/* Newest first: by creation, the later one before. */
static int
task_newer(const void *a, const void *b)
{
	const struct task *x = *(struct task *const *)a, *y = *(struct task *const *)b;
	return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

/* The value of name in a query ("a=1&b=2"), its length in *len; NULL if absent. */
static const char *
query_value(const char *q, size_t qlen, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < qlen;) {
		size_t end = i;
		while (end < qlen && q[end] != '&')
			end++;
		if (end - i > nl && memcmp(q + i, name, nl) == 0 && q[i + nl] == '=') {
			*len = end - i - nl - 1;
			return q + i + nl + 1;
		}
		i = end + 1;
	}
	return NULL;
}

/* Most tasks a page holds, and how many when the client does not say. */
#define TASKS_LIMIT_MAX 100
#define TASKS_LIMIT_DEFAULT 20

static void
tasks_list_locked(struct hreq *h)
{
	struct http_src *s = h->s;
	const char *path, *q;
	size_t plen, qlen, n;
	route_url(h, &path, &plen, &q, &qlen);
	long limit = TASKS_LIMIT_DEFAULT;
	const char *v = query_value(q, qlen, "limit", &n);
	if (v != NULL) {
		char num[8];
		size_t digits = 0;
		while (digits < n && v[digits] >= '0' && v[digits] <= '9')
			digits++;
		limit = -1;
		if (n > 0 && digits == n && n < sizeof num) {
			memcpy(num, v, n);
			num[n] = '\0';
			limit = strtol(num, NULL, 10);
		}
		if (limit < 1 || limit > TASKS_LIMIT_MAX) {
			answer_error(h, 400, "limit", "invalid_value", "'limit' must be an integer "
			    "from 1 to %d", TASKS_LIMIT_MAX);
			return;
		}
	}
	char after[sizeof ((struct task *)0)->id] = "";
	v = query_value(q, qlen, "after", &n);
	if (v != NULL) {
		if (n == 0 || n >= sizeof after) {
			answer_error(h, 400, "after", "invalid_value", "'after' must be the "
			    "task_id of a task in the list");
			return;
		}
		memcpy(after, v, n);
		after[n] = '\0';
	}

	/* this stage's tasks and those of the instances a reload replaced */
	size_t count = 0;
	http_instances_lock();
	for (struct http_src *o = http_instances(); o != NULL; o = o->next_instance)
		if (o == s || strcmp(o->name, s->name) == 0) {
			tasks_purge(o);
			count += o->n_tasks;
		}
	struct task **all = calloc(count + 1, sizeof *all);
	if (all == NULL) {
		http_instances_unlock();
		answer_error(h, 500, NULL, "internal", "out of memory");
		return;
	}
	size_t k = 0;
	for (struct http_src *o = http_instances(); o != NULL; o = o->next_instance)
		if (o == s || strcmp(o->name, s->name) == 0)
			for (struct task *t = o->tasks_head; t != NULL && k < count; t = t->next)
				all[k++] = t;
	http_instances_unlock();
	qsort(all, k, sizeof *all, task_newer);
	size_t from = 0;
	if (after[0] != '\0') {
		while (from < k && strcmp(all[from]->id, after) != 0)
			from++;
		if (from == k) {
			free(all);
			answer_error(h, 400, "after", "invalid_value", "'after' is no task kept: "
			    "%s (finished tasks are kept for task-ttl only)", after);
			return;
		}
		from++;
	}
	json_t *data = json_array();
	size_t to = from + (size_t)limit < k ? from + (size_t)limit : k;
	for (size_t i = from; i < to; i++)
		json_array_append_new(data, task_json(all[i]));
	json_t *j = json_pack("{s:s, s:o, s:b}", "object", "list", "data", data,
	    "has_more", to < k);
	if (j != NULL) {
		json_object_set_new(j, "first_id", to > from ? json_string(all[from]->id) : json_null());
		json_object_set_new(j, "last_id", to > from ? json_string(all[to - 1]->id) : json_null());
	}
	free(all);
	answer_json(h, 200, j, NULL);
}

static void
tasks_events_locked(struct hreq *h)
{
	struct task *t = task_find(h->s, h->task_id);
	if (t == NULL) {
		no_task(h);
		return;
	}
	h->mode = MODE_EVENTS;
	wire_head(&h->w, 200, "text/event-stream", -1, "Cache-Control: no-cache\r\n");
	if (t->history.len > 0)
		wire_body(&h->w, t->history.p, t->history.len);
	if (finished(t)) {
		wire_end(&h->w);
		return;
	}
	h->task = t;
	h->watched = 1;
	h->next_sub = t->watchers;
	t->watchers = h;
}

/*
 * The instance goes (its pipeline was replaced by a reload and has ended):
 * its finished tasks go to a live instance of the same stage, so that a
 * client still finds them for task-ttl.  Returns 1 when they went.
 */
static int
tasks_pass_on(struct http_src *s)
{
	struct http_src *to = NULL;
	http_instances_lock();
	for (struct http_src *o = http_instances(); o != NULL && to == NULL; o = o->next_instance)
		if (o != s && strcmp(o->name, s->name) == 0 && !o->w.draining &&
		    http_same_shard(o, s))
			to = o; /* the list is newest first */
	http_instances_unlock();
	if (to == NULL || s->tasks_head == NULL)
		return 0;
	for (struct task *t = s->tasks_head; t != NULL; t = t->next) {
		if (!finished(t) || t->watchers != NULL)
			return 0; /* not expected once the pipeline has ended */
		t->s = to;
	}
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
	return 1;
}

static void
tasks_fini_locked(struct http_src *s)
{
	tasks_pass_on(s);
	while (s->tasks_head != NULL) {
		struct task *t = s->tasks_head;
		s->tasks_head = t->next;
		task_unwatch_all(t); /* watchers on other shards */
		task_free(t);
	}
	s->tasks_tail = NULL;
	s->n_tasks = 0;
}

/* ---- the entry points, under the store's lock --------------------------- */

void
tasks_event(struct task *t, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail)
{
	lock();
	tasks_event_locked(t, m, e, stage, detail);
	unlock();
}

void
tasks_outcome(struct task *t, porch_msg *m, enum porch_outcome o)
{
	lock();
	tasks_outcome_locked(t, m, o);
	unlock();
}

#define LOCKED(name) \
void \
name(struct hreq *h) \
{ \
	lock(); \
	name##_locked(h); \
	unlock(); \
}

LOCKED(tasks_create)
LOCKED(tasks_get)
LOCKED(tasks_cancel)
LOCKED(tasks_list)
LOCKED(tasks_events)

void
tasks_fini(struct http_src *s)
{
	lock();
	tasks_fini_locked(s);
	unlock();
}
