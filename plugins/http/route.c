/*
 * route.c -- what each request is: routing, the checks every request
 * passes (path, method, key, rate, drain), the endpoints answered here,
 * and handing requests to the pipeline with backpressure.
 *
 * Backpressure: before a request is emitted, porch_stage_ready says whether
 * the pipeline can take it.  When a full 'block' channel says no, the
 * request waits here and the source stops reading every socket and stops
 * accepting, so clients are held back by TCP rather than by memory; the
 * resume callback emits what waits and reads again.  When the pipeline's
 * in-flight bound says no, the request is emitted all the same: the runtime
 * refuses it (shed, admission) and the client gets 503 at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

struct route_def {
	const char *path;
	enum route route;
	unsigned method;     /* enum http_method; HEAD goes with GET */
	const char *allow;   /* the Allow header's methods */
	int needs_key;       /* behind api-keys-file */
	int makes_request;   /* goes to the pipeline: refused while draining */
};

static const struct route_def routes[] = {
	{ "/v1/chat/completions", R_CHAT, HTTP_POST, "POST", 1, 1 },
	{ "/v1/completions", R_COMPLETIONS, HTTP_POST, "POST", 1, 1 },
	{ "/generate", R_GENERATE, HTTP_POST, "POST", 1, 1 },
	{ "/v1/models", R_MODELS, HTTP_GET, "GET, HEAD", 1, 0 },
	{ "/v1/tasks", R_TASKS, HTTP_POST, "POST", 1, 1 },
	{ NULL, R_TASK, HTTP_GET, "GET, HEAD", 1, 0 },
	{ NULL, R_TASK_EVENTS, HTTP_GET, "GET, HEAD", 1, 0 },
	{ "/healthz", R_HEALTHZ, HTTP_GET, "GET, HEAD", 0, 0 },
	{ "/readyz", R_READYZ, HTTP_GET, "GET, HEAD", 0, 0 },
	{ "/metrics", R_METRICS, HTTP_GET, "GET, HEAD", 0, 0 },
};

static const struct route_def *
route_def(enum route r)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (routes[i].route == r)
			return &routes[i];
	return NULL;
}

const char *
route_label(enum route r)
{
	switch (r) {
	case R_TASK:
		return "/v1/tasks/{id}";
	case R_TASK_EVENTS:
		return "/v1/tasks/{id}/events";
	case R_OTHER:
	case R_COUNT:
		return "other";
	default:
		return route_def(r)->path;
	}
}

static int
task_id_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

/* The route of a path (without its query); a task's id is copied out. */
enum route
route_find(const char *path, size_t len, char *task_id, size_t idlen, const char **allow)
{
	*allow = NULL;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const char *p = routes[i].path;
		if (p != NULL && strlen(p) == len && memcmp(p, path, len) == 0) {
			*allow = routes[i].allow;
			return routes[i].route;
		}
	}
	static const char prefix[] = "/v1/tasks/";
	size_t pl = sizeof prefix - 1;
	if (len <= pl || memcmp(path, prefix, pl) != 0)
		return R_OTHER;
	size_t i = pl;
	while (i < len && task_id_char(path[i]))
		i++;
	size_t n = i - pl;
	if (n == 0 || n >= idlen)
		return R_OTHER;
	enum route r;
	if (i == len)
		r = R_TASK;
	else if (len - i == 7 && memcmp(path + i, "/events", 7) == 0)
		r = R_TASK_EVENTS;
	else
		return R_OTHER;
	memcpy(task_id, path + pl, n);
	task_id[n] = '\0';
	*allow = route_def(r)->allow;
	return r;
}

/* ---- CORS --------------------------------------------------------------- */

/* How long a browser may keep a preflight's answer, in seconds. */
#define CORS_MAX_AGE 600
/* Request headers a preflight is always told it may send. */
static const char *const cors_base_headers[] = {
	"Authorization", "Content-Type", "X-Request-Id", "X-Session-Id",
};
#define CORS_BASE_HEADERS "Authorization, Content-Type, X-Request-Id, X-Session-Id"
/* The most bytes of Access-Control-Request-Headers echoed. */
#define CORS_ECHO_MAX 1024

/* An Origin header: the answer carries the CORS headers made for it at
 * init when cors-origins lists it, exactly as sent; with '*' the one text
 * every answer carries already. */
void
cors_origin(struct hreq *h, const char *value, size_t len)
{
	const struct http_src *s = h->s;
	for (size_t i = 0; i < s->n_cors; i++) {
		if (s->cors[i].len == len && memcmp(s->cors[i].origin, value, len) == 0) {
			h->cors = s->cors[i].hdr;
			return;
		}
	}
}

static int
cors_allowed(const struct hreq *h)
{
	return h->s->cors_any || (h->cors != NULL && h->cors != h->s->cors_default);
}

static int
tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/*
 * Appends to out (", NAME" each) the names Access-Control-Request-Headers
 * asks for beyond the base list: header names only, CORS_ECHO_MAX bytes
 * at most; nothing if the value is anything else.
 */
static void
cors_echo(const char *v, char *out, size_t size)
{
	size_t used = 0;
	out[0] = '\0';
	if (v == NULL || strlen(v) > CORS_ECHO_MAX)
		return;
	while (*v != '\0') {
		while (*v == ',' || *v == ' ' || *v == '\t')
			v++;
		size_t n = 0;
		while (tchar((unsigned char)v[n]))
			n++;
		if (n == 0) {
			if (*v != '\0')
				out[0] = '\0'; /* not a list of names: echo none */
			return;
		}
		int known = 0;
		for (size_t i = 0; i < sizeof cors_base_headers / sizeof cors_base_headers[0]; i++)
			if (strlen(cors_base_headers[i]) == n && strncasecmp(cors_base_headers[i], v, n) == 0)
				known = 1;
		if (!known && used + n + 3 <= size) {
			memcpy(out + used, ", ", 2);
			memcpy(out + used + 2, v, n);
			used += n + 2;
			out[used] = '\0';
		}
		v += n;
	}
}

/*
 * OPTIONS while CORS is on, on a known path: 204 with Allow.  A preflight
 * (it has Access-Control-Request-Method) from an allowed origin is also
 * told the methods, the request headers it may send, and how long it may
 * keep this answer.  Answered before the key is checked: browsers send
 * none on a preflight.
 */
static void
cors_options(struct hreq *h, const char *allow)
{
	char extra[CORS_ECHO_MAX + 512];
	int n = snprintf(extra, sizeof extra, "Allow: %s, OPTIONS\r\n", allow);
	if (h->preflight && cors_allowed(h)) {
		char echo[CORS_ECHO_MAX + 3];
		cors_echo(h->cors_req_headers, echo, sizeof echo);
		snprintf(extra + n, sizeof extra - (size_t)n,
		    "Access-Control-Allow-Methods: %s\r\n"
		    "Access-Control-Allow-Headers: " CORS_BASE_HEADERS "%s\r\n"
		    "Access-Control-Max-Age: %d\r\n"
		    "%s",
		    allow, echo, CORS_MAX_AGE,
		    echo[0] ? "Vary: Access-Control-Request-Headers\r\n" : "");
	}
	answer_simple(h, 204, NULL, "", 0, extra);
}

/* ---- the checks --------------------------------------------------------- */

/*
 * The checks before a request's body matters: a known path, an allowed
 * method, a valid key within its rate, not draining.  Returns 0, or -1
 * after answering.
 */
static int
route_check(struct hreq *h)
{
	struct http_src *s = h->s;
	struct http_parser_url u;
	http_parser_url_init(&u);
	if (h->url.len == 0 ||
	    http_parser_parse_url(h->url.p, h->url.len, h->method == HTTP_CONNECT, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH))) {
		answer_error(h, 400, NULL, "invalid_url", "the request's URL is not valid");
		return -1;
	}
	const char *path = h->url.p + u.field_data[UF_PATH].off;
	size_t plen = u.field_data[UF_PATH].len;
	const char *allow;
	h->route = route_find(path, plen, h->task_id, sizeof h->task_id, &allow);
	if (h->route == R_OTHER) {
		answer_error(h, 404, NULL, "not_found", "no such endpoint: %.*s",
		    (int)(plen > 200 ? 200 : plen), path);
		return -1;
	}
	const struct route_def *d = route_def(h->route);
	if (h->method == HTTP_OPTIONS && s->cors_on) {
		cors_options(h, allow);
		return -1;
	}
	if (h->method != d->method && !(h->method == HTTP_HEAD && d->method == HTTP_GET)) {
		char extra[64];
		snprintf(extra, sizeof extra, "Allow: %s%s\r\n", allow,
		    s->cors_on ? ", OPTIONS" : "");
		char msg[160];
		snprintf(msg, sizeof msg, "%s is not allowed here; use %s",
		    http_method_str((enum http_method)h->method), allow);
		answer_error_extra(h, 405, NULL, "method_not_allowed", extra, msg);
		return -1;
	}
	if (d->needs_key && auth_check(s, h) != 0)
		return -1;
	if (d->makes_request && s->draining) {
		answer_error(h, 503, NULL, "draining",
		    "porch is shutting down and takes no new requests");
		return -1;
	}
	return 0;
}

/*
 * The head of a request has arrived.  It is checked now, so a request that
 * will be refused is refused before its body is read; a client that waits
 * for "100 Continue" gets it only when the request passed.
 */
void
route_headers_done(struct hconn *c, struct hreq *h)
{
	int expect = h->expect_continue && h->http_minor >= 1;
	/* refused, a client that waits for "100 Continue" may never send the
	 * body it announced: the connection cannot carry another request, and
	 * the answer says so */
	h->close = expect;
	if (route_check(h) != 0) {
		if (expect)
			c->closing = 1;
		return;
	}
	h->close = 0;
	if (expect && c->head == h && h->out.len == 0)
		buf_str(&h->out, "HTTP/1.1 100 Continue\r\n\r\n");
	if (h->out.len > 0)
		conn_kick(c);
}

/* ---- endpoints answered here ------------------------------------------- */

static void
healthz(struct hreq *h)
{
	json_t *j = json_pack("{s:b, s:s}", "healthy", 1, "version", porch_version());
	answer_json(h, 200, j, NULL);
}

static void
readyz(struct hreq *h)
{
	struct http_src *s = h->s;
	if (s->draining)
		answer_json(h, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", "draining"),
		    s->retry_after_hdr);
	else if (!s->started)
		answer_json(h, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", "starting"),
		    s->retry_after_hdr);
	else
		answer_json(h, 200, json_pack("{s:b}", "ready", 1), NULL);
}

/* Our metrics after the pipeline's, in one exposition. */
char *metrics_text(struct http_src *s);

static void
metrics(struct hreq *h)
{
	char *text = metrics_text(h->s);
	if (text == NULL) {
		answer_error(h, 500, NULL, "internal", "out of memory");
		return;
	}
	answer_simple(h, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
	    NULL);
	free(text);
}

/* ---- requests for the pipeline ------------------------------------------ */

static json_t *
body_json(struct hreq *h)
{
	json_error_t err;
	if (h->body.len == 0) {
		answer_error(h, 400, NULL, "invalid_json", "the request has no body; "
		    "send a JSON object");
		return NULL;
	}
	/* the quick reader takes well-formed bodies; json_loadb the rest, and
	 * words what is wrong */
	json_t *root = jparse_object(h->body.p, h->body.len);
	if (root != NULL)
		return root;
	root = json_loadb(h->body.p, h->body.len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		answer_error(h, 400, NULL, "invalid_json", "the body is not valid JSON: %s "
		    "(line %d, column %d)", err.text, err.line, err.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		answer_error(h, 400, NULL, "invalid_json", "the body must be a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

/* Sets every metadata pair of pr on m; -1 if one could not be stored. */
static int
set_meta(porch_msg *m, const struct prompt *pr)
{
	int rc = 0;
	for (size_t i = 0; i < pr->n_meta; i++)
		if (porch_msg_set_meta(m, pr->meta[i].key, pr->meta[i].value) != 0)
			rc = -1;
	return rc;
}

/* A request for the pipeline: validate, make the message, emit it. */
static void
pipeline_request(struct hreq *h)
{
	struct http_src *s = h->s;
	json_t *root = body_json(h);
	if (root == NULL)
		return;
	struct prompt pr = { 0 };
	int rc;
	switch (h->route) {
	case R_CHAT:
		rc = openai_chat_request(h, root, &pr);
		break;
	case R_COMPLETIONS:
		rc = openai_completion_request(h, root, &pr);
		break;
	default:
		rc = generate_request(h, root, &pr);
		break;
	}
	json_decref(root);
	if (rc != 0) {
		prompt_free(&pr);
		return;
	}
	porch_msg *m = porch_msg_new(s->st);
	if (m == NULL) {
		prompt_free(&pr);
		answer_error(h, 500, NULL, "internal", "could not make a request (out of memory)");
		return;
	}
	int ok = porch_msg_set_text(m, pr.text, pr.len) == 0 && set_meta(m, &pr) == 0;
	const char *session = h->session ? h->session : pr.user;
	if (session != NULL && porch_msg_set_session(m, session, strlen(session)) != 0)
		ok = 0;
	prompt_free(&pr);
	if (!ok) {
		porch_msg_set_origin_data(m, &h->origin);
		h->m = m;
		h->in_pipeline = 1;
		porch_fail(s->st, m, PORCH_ERR_INTERNAL, "could not fill the request "
		    "(out of memory)");
		return;
	}
	if (s->deadline_ms > 0)
		porch_msg_set_deadline(m, s->deadline_ms);
	route_emit(s, h, m);
}

void
route_dispatch(struct hreq *h)
{
	struct http_src *s = h->s;
	struct hconn *c = h->c;
	if (h->status != 0)
		return; /* refused when its head arrived */
	if (s->draining && c != NULL) {
		/* answered, then the connection closes */
		h->close = 1;
		c->closing = 1;
	}
	if (s->draining && route_def(h->route) != NULL && route_def(h->route)->makes_request) {
		/* its head came before the drain, its body after: no new work now */
		answer_error(h, 503, NULL, "draining",
		    "porch is shutting down and takes no new requests");
		return;
	}
	switch (h->route) {
	case R_HEALTHZ:
		healthz(h);
		break;
	case R_READYZ:
		readyz(h);
		break;
	case R_METRICS:
		metrics(h);
		break;
	case R_MODELS:
		openai_models(h);
		break;
	case R_TASK:
		tasks_get(h);
		break;
	case R_TASK_EVENTS:
		tasks_events(h);
		break;
	case R_TASKS:
		tasks_create(h);
		break;
	case R_CHAT:
	case R_COMPLETIONS:
	case R_GENERATE:
		pipeline_request(h);
		break;
	default:
		answer_error(h, 404, NULL, "not_found", "no such endpoint");
		break;
	}
}

/* ---- emitting, waiting, resuming --------------------------------------- */

static void
wait_push(struct http_src *s, struct hreq *h, porch_msg *m)
{
	struct waiting *w = calloc(1, sizeof *w);
	if (w == NULL) {
		porch_fail(s->st, m, PORCH_ERR_INTERNAL, "out of memory");
		return;
	}
	w->h = h;
	w->m = m;
	if (s->wait_tail != NULL)
		s->wait_tail->next = w;
	else
		s->wait_head = w;
	s->wait_tail = w;
}

/* Can the pipeline take one now?  1: emit; 0: wait (a full block channel). */
static int
room_for_one(struct http_src *s)
{
	if (porch_stage_ready(s->st) > 0)
		return 1;
	uint64_t max = 0;
	uint64_t n = porch_stage_inflight(s->st, &max);
	/* at the in-flight bound the runtime refuses it: 503 at once */
	return n >= max;
}

static void
emit_now(struct http_src *s, porch_msg *m)
{
	/* PORCH_REFUSED: shed; the outcome callback has answered it */
	(void)porch_emit(s->st, m);
}

/*
 * Hands m, made for request h (or for a task: h NULL), to the pipeline now
 * or when there is room.  The request or task is its origin from here until
 * the outcome.
 */
void
route_emit(struct http_src *s, struct hreq *h, porch_msg *m)
{
	if (h != NULL) {
		porch_msg_set_origin_data(m, &h->origin);
		porch_msg_set_meta(m, "request-id", h->rid);
		h->m = m;
		h->in_pipeline = 1;
	}
	if (s->wait_head != NULL || !room_for_one(s)) {
		wait_push(s, h, m);
		conn_pause_all(s);
		return;
	}
	emit_now(s, m);
}

void
route_resume(struct http_src *s)
{
	while (s->wait_head != NULL) {
		if (!room_for_one(s))
			return; /* resume comes again */
		struct waiting *w = s->wait_head;
		s->wait_head = w->next;
		if (s->wait_head == NULL)
			s->wait_tail = NULL;
		porch_msg *m = w->m;
		free(w);
		emit_now(s, m);
	}
	conn_resume_all(s);
}

/* Removes h's message from the waiting list; returns it, or NULL. */
static porch_msg *
wait_remove(struct http_src *s, struct hreq *h)
{
	struct waiting **pp = &s->wait_head, *prev = NULL;
	for (struct waiting *w = s->wait_head; w != NULL; prev = w, w = w->next) {
		if (w->h != h) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (s->wait_tail == w)
			s->wait_tail = prev;
		porch_msg *m = w->m;
		free(w);
		return m;
	}
	return NULL;
}

void
route_cancel(struct http_src *s, struct hreq *h)
{
	porch_msg *m = wait_remove(s, h);
	if (m != NULL) {
		porch_fail(s->st, m, PORCH_ERR_CANCELLED, "the client closed the connection");
		if (s->wait_head == NULL)
			route_resume(s);
		return;
	}
	if (h->m != NULL)
		porch_msg_cancel(h->m, "the client closed the connection");
}

void
route_drain(struct http_src *s)
{
	s->draining = 1;
	while (s->wait_head != NULL) {
		struct waiting *w = s->wait_head;
		s->wait_head = w->next;
		porch_msg *m = w->m;
		free(w);
		porch_fail(s->st, m, PORCH_ERR_ADMISSION, "porch is shutting down");
	}
	s->wait_tail = NULL;
	s->paused = 0;
	conn_drain(s);
}

/* ---- the origin functions the reply sink calls ------------------------- */

static void
deliver(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	if (h->mode == MODE_WHOLE)
		answer_whole(h, m, o);
	else
		stream_end(h, m, o);
}

static void
hreq_piece(struct http_origin *o, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	struct hreq *h = (struct hreq *)o;
	(void)m;
	if (h->c == NULL || h->mode == MODE_WHOLE || h->complete)
		return;
	stream_piece(h, text, len, pc);
}

static void
hreq_chunk(struct http_origin *o, porch_msg *m, const char *text, size_t len)
{
	hreq_piece(o, m, text, len, NULL);
}

static void
hreq_finish(struct http_origin *o, porch_msg *m)
{
	struct hreq *h = (struct hreq *)o;
	h->answered_by_reply = 1;
	if (h->c == NULL || h->complete)
		return;
	deliver(h, m, porch_error_outcome(porch_msg_error(m)));
}

const struct http_origin_ops hreq_ops = {
	.magic = HTTP_ORIGIN_MAGIC,
	.version = HTTP_ORIGIN_VERSION,
	.chunk = hreq_chunk,
	.finish = hreq_finish,
	.piece = hreq_piece,
};

/* The request ended: answer it if the reply sink did not, and let go. */
void
hreq_outcome(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	struct http_src *s = h->s;
	enum porch_error e = porch_msg_error(m);
	if (o != PORCH_COMPLETED)
		porch_msg_log(s->st, m, "%s %s: %s%s%s", route_label(h->route),
		    porch_outcome_name(o), porch_error_name(e),
		    *porch_msg_error_text(m) ? ": " : "", porch_msg_error_text(m));
	if (h->c != NULL && !h->complete && (!h->answered_by_reply || h->status == 0))
		deliver(h, m, o);
	if (h->c == NULL && e == PORCH_ERR_CANCELLED)
		metrics_count(s, h->route, 499);
	h->m = NULL;
	h->in_pipeline = 0;
	hreq_release(h);
}
