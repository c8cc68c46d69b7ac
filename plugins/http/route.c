/*
 * route.c -- what each request is: routing, the checks every request
 * passes when its head arrives (path, method, key, rate, drain), CORS
 * preflights, dispatch to the endpoints when the whole request arrived,
 * and the endpoints answered here (/healthz, /readyz; /metrics and /graph
 * are metrics.c's and graph.c's).  on_head and
 * on_request of the framing layer's table (wire.h) are route_head and
 * route_dispatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* A set of methods: M(HTTP_GET) | M(HTTP_POST). */
#define M(method) (1ull << (method))

struct route_def {
	const char *path;
	enum route route;
	unsigned long long methods; /* M(enum http_method)s; HEAD goes with GET */
	const char *allow;   /* the Allow header's methods */
	int needs_key;       /* behind api-keys-file */
	int makes_request;   /* its POST goes to the pipeline: refused while draining */
};

static const struct route_def routes[] = {
	{ "/v1/chat/completions", R_CHAT, M(HTTP_POST), "POST", 1, 1 },
	{ "/v1/completions", R_COMPLETIONS, M(HTTP_POST), "POST", 1, 1 },
	{ "/generate", R_GENERATE, M(HTTP_POST), "POST", 1, 1 },
	{ "/v1/models", R_MODELS, M(HTTP_GET), "GET, HEAD", 1, 0 },
	{ NULL, R_MODEL, M(HTTP_GET), "GET, HEAD", 1, 0 },
	{ "/v1/tasks", R_TASKS, M(HTTP_GET) | M(HTTP_POST), "GET, HEAD, POST", 1, 1 },
	{ NULL, R_TASK, M(HTTP_GET) | M(HTTP_DELETE), "GET, HEAD, DELETE", 1, 0 },
	{ NULL, R_TASK_EVENTS, M(HTTP_GET), "GET, HEAD", 1, 0 },
	{ "/healthz", R_HEALTHZ, M(HTTP_GET), "GET, HEAD", 0, 0 },
	{ "/readyz", R_READYZ, M(HTTP_GET), "GET, HEAD", 0, 0 },
	{ "/metrics", R_METRICS, M(HTTP_GET), "GET, HEAD", 0, 0 },
	{ "/graph", R_GRAPH, M(HTTP_GET), "GET, HEAD", 0, 0 },
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
	case R_MODEL:
		return "/v1/models/{id}";
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
	/* /v1/models/{id}: the id, which may hold slashes, is read at dispatch
	 * (route_model_id) */
	static const char models[] = "/v1/models/";
	if (len > sizeof models - 1 && memcmp(path, models, sizeof models - 1) == 0) {
		*allow = route_def(R_MODEL)->allow;
		return R_MODEL;
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
			h->w.headers = s->cors[i].hdr;
			return;
		}
	}
}

static int
cors_allowed(const struct hreq *h)
{
	return h->s->cors_any || (h->w.headers != NULL && h->w.headers != h->s->cors_default);
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
	wire_answer(&h->w, 204, NULL, "", 0, extra);
}

/* ---- the checks --------------------------------------------------------- */

/*
 * The length of url when it is a plain path: "/" then bytes from 0x21 to
 * 0x7e but '?' and '#', which http_parser_parse_url would take whole as
 * the path (it allows each of them there); else 0.  Nearly every request
 * is one, and the parser costs ~700 instructions a request.
 */
static size_t
plain_path(const char *url, size_t len)
{
	if (len == 0 || url[0] != '/')
		return 0;
	for (size_t i = 1; i < len; i++) {
		unsigned char ch = (unsigned char)url[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#')
			return 0;
	}
	return len;
}

/*
 * The checks before a request's body matters: a known path, an allowed
 * method, a valid key within its rate, not draining.  Returns 0, or -1
 * after answering.
 */
static int
route_check(struct hreq *h)
{
	struct http_src *s = h->s;
	const char *path = h->w.url.p;
	size_t plen = h->w.method != HTTP_CONNECT ? plain_path(h->w.url.p, h->w.url.len) : 0;
	if (plen == 0) {
		struct http_parser_url u;
		http_parser_url_init(&u);
		if (h->w.url.len == 0 ||
		    http_parser_parse_url(h->w.url.p, h->w.url.len, h->w.method == HTTP_CONNECT,
		    &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
			answer_error(h, 400, NULL, "invalid_url", "the request's URL is not valid");
			return -1;
		}
		path = h->w.url.p + u.field_data[UF_PATH].off;
		plen = u.field_data[UF_PATH].len;
	}
	const char *allow;
	h->route = route_find(path, plen, h->task_id, sizeof h->task_id, &allow);
	if (h->route == R_OTHER) {
		answer_error(h, 404, NULL, "not_found", "no such endpoint: %.*s",
		    (int)(plen > 200 ? 200 : plen), path);
		return -1;
	}
	const struct route_def *d = route_def(h->route);
	if (h->w.method == HTTP_OPTIONS && s->cors_on) {
		cors_options(h, allow);
		return -1;
	}
	unsigned method = h->w.method;
	int allowed = method < 64 && (d->methods & M(method));
	if (!allowed && !(method == HTTP_HEAD && (d->methods & M(HTTP_GET)))) {
		char extra[64];
		snprintf(extra, sizeof extra, "Allow: %s%s\r\n", allow,
		    s->cors_on ? ", OPTIONS" : "");
		char msg[160];
		snprintf(msg, sizeof msg, "%s is not allowed here; use %s",
		    http_method_str((enum http_method)h->w.method), allow);
		answer_error_extra(h, 405, NULL, "method_not_allowed", extra, msg);
		return -1;
	}
	if (d->needs_key && auth_check(s, h) != 0)
		return -1;
	int makes_request = d->makes_request && method == HTTP_POST;
	if (makes_request && s->w.draining) {
		answer_error(h, 503, NULL, "draining",
		    "porch is shutting down and takes no new requests");
		return -1;
	}
	/* its body, by its Content-Length, must fit in max-inflight-bytes;
	 * one without (chunked) is stopped where it would not (parse.c) */
	size_t body = h->w.content_length > 0 ? (size_t)h->w.content_length : 0;
	if (makes_request && !pipeline_room(s, body)) {
		pipeline_shed(h, "requests in flight hold %llu bytes; its body's %zu more "
		    "would pass max-inflight-bytes (%llu)", (unsigned long long)s->w.held, body,
		    (unsigned long long)s->w.max_held);
		return -1;
	}
	return 0;
}

/*
 * on_head: the head of a request has arrived.  It is checked now, so a
 * request that will be refused is refused (answered) before its body is
 * read; the framing layer then tells a client that waits for "100
 * Continue" to go on only when it passed.
 */
void
route_head(struct wreq *r)
{
	(void)route_check(hreq_of(r));
}

/*
 * The request's path and query (without "?"), from its URL; an absent
 * query is "" (length 0).  The URL parsed at its head (route_check).
 */
void
route_url(struct hreq *h, const char **path, size_t *plen, const char **query, size_t *qlen)
{
	struct http_parser_url u;
	http_parser_url_init(&u);
	*path = *query = "";
	*plen = *qlen = 0;
	if (http_parser_parse_url(h->w.url.p, h->w.url.len, 0, &u) != 0)
		return;
	if (u.field_set & (1 << UF_PATH)) {
		*path = h->w.url.p + u.field_data[UF_PATH].off;
		*plen = u.field_data[UF_PATH].len;
	}
	if (u.field_set & (1 << UF_QUERY)) {
		*query = h->w.url.p + u.field_data[UF_QUERY].off;
		*qlen = u.field_data[UF_QUERY].len;
	}
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
	const char *pool;
	if (s->w.draining)
		answer_json(h, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", "draining"),
		    s->answers.retry_after);
	else if (!s->started)
		answer_json(h, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", "starting"),
		    s->answers.retry_after);
	else if ((pool = porch_stage_pipeline_unready(s->st)) != NULL)
		answer_json(h, 503, json_pack("{s:b, s:s, s:s}", "ready", 0, "reason",
		    "no healthy member", "pool", pool), s->answers.retry_after);
	else
		answer_json(h, 200, json_pack("{s:b}", "ready", 1), NULL);
}

/* on_request: the whole request arrived (one refused at its head does not
 * come here); its endpoint answers it, now or when the pipeline has. */
void
route_dispatch(struct wreq *r)
{
	struct hreq *h = hreq_of(r);
	struct http_src *s = h->s;
	if (s->w.draining && r->c != NULL)
		wire_close_after(r); /* answered, then the connection closes */
	if (s->w.draining && route_def(h->route) != NULL && route_def(h->route)->makes_request &&
	    h->w.method == HTTP_POST) {
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
		metrics_get(h);
		break;
	case R_GRAPH:
		graph_get(h);
		break;
	case R_MODELS:
		openai_models(h);
		break;
	case R_MODEL:
		openai_model(h);
		break;
	case R_TASK:
		if (h->w.method == HTTP_DELETE)
			tasks_cancel(h);
		else
			tasks_get(h);
		break;
	case R_TASK_EVENTS:
		tasks_events(h);
		break;
	case R_TASKS:
		if (h->w.method == HTTP_POST)
			tasks_create(h);
		else
			tasks_list(h);
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
