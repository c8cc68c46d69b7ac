/*
 * plugin.c -- the http source: its descriptor, parameters and callbacks,
 * and the table of callbacks it gives the framing layer (wire.h).  See
 * http.h for the layers and files that do the work, and the description
 * below for what it does (it becomes the plugin's part of porch-plugins(7)).
 */
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"

static const struct porch_param http_params[] = {
	{ "listen", PORCH_PARAM_STRING, "127.0.0.1:8080", 0, -1, NULL, 0,
	  "address to listen on, HOST:PORT or [IPV6]:PORT; port 0 picks a free port" },
	{ "port-file", PORCH_PARAM_PATH, NULL, 0, -1, NULL, 0,
	  "file to write the port to once listening (for port 0)" },
	{ "max-connections", PORCH_PARAM_INTEGER, "1024", 1, 1000000, NULL, 0,
	  "client connections open at once; more are answered 503 and closed" },
	{ "max-pipeline", PORCH_PARAM_INTEGER, "16", 1, 1024, NULL, 0,
	  "requests one connection may have waiting for answers before it is not read" },
	{ "max-body", PORCH_PARAM_SIZE, "1M", 1, 1073741824, NULL, 0,
	  "largest request body; a larger one is refused with 413 unread" },
	{ "max-inflight-bytes", PORCH_PARAM_SIZE, "1G", 0, 1099511627776.0, NULL, 0,
	  "bytes the requests in flight may hold (bodies, the texts handed to the pipeline, "
	  "answers not yet written); a new request that would pass it is shed, 503; 0: no bound" },
	{ "max-header-size", PORCH_PARAM_SIZE, "16k", 256, 81920, NULL, 0,
	  "largest request line and headers together; larger is refused with 431" },
	{ "max-url-size", PORCH_PARAM_SIZE, "8k", 64, 65536, NULL, 0,
	  "longest request-target (path and query); longer is refused with 414" },
	{ "header-timeout", PORCH_PARAM_DURATION, "10s", 1, 3600000, NULL, 0,
	  "time a request's line and headers may take to arrive (408 after)" },
	{ "body-timeout", PORCH_PARAM_DURATION, "30s", 1, 3600000, NULL, 0,
	  "time a request's body may take to arrive (408 after)" },
	{ "idle-timeout", PORCH_PARAM_DURATION, "60s", 1, 86400000, NULL, 0,
	  "time a keep-alive connection may stay idle before it is closed" },
	{ "deadline", PORCH_PARAM_DURATION, "0", 0, 86400000, NULL, 0,
	  "time each request has to complete; 0: none (tasks use their timeout_secs)" },
	{ "retry-after", PORCH_PARAM_DURATION, "1s", 1000, 3600000, NULL, 0,
	  "the Retry-After of 503 answers (shed, draining), in whole seconds" },
	{ "api-keys-file", PORCH_PARAM_PATH, NULL, 0, -1, NULL, 0,
	  "file of API keys, one per line, private to its owner (chmod 600); when set, "
	  "/v1/ and /generate want one (401)" },
	{ "rate-limit", PORCH_PARAM_NUMBER, "0", 0, 1000000, NULL, 0,
	  "requests per second per API key (per client address without keys); 0: no limit" },
	{ "burst", PORCH_PARAM_INTEGER, "10", 1, 1000000, NULL, 0,
	  "requests a key may make at once above rate-limit" },
	{ "task-ttl", PORCH_PARAM_DURATION, "5m", 0, 604800000, NULL, 0,
	  "how long a finished task is kept for GET /v1/tasks/ID" },
	{ "task-max", PORCH_PARAM_INTEGER, "1000", 0, 10000000, NULL, 0,
	  "most finished tasks kept; the oldest are forgotten first" },
	{ "model", PORCH_PARAM_STRING, NULL, 0, -1, NULL, 0,
	  "model name answers give when a request names none (default: the first worker's)" },
	{ "check-model", PORCH_PARAM_BOOLEAN, "false", 0, -1, NULL, 0,
	  "a request naming a model no worker serves gets 404 model_not_found (as OpenAI)" },
	{ "access-log", PORCH_PARAM_STRING, "off", 0, -1, NULL, 0,
	  "one line per request answered: off, stderr, or a file appended to (opened "
	  "again on reload); true and false, its older values, mean stderr and off" },
	{ "access-log-format", PORCH_PARAM_ENUM, "text", 0, 0, "text|json", 0,
	  "text: the common log format's fields (client, -, -, [time], \"request line\", "
	  "status, bytes out), then bytes in, time to first byte and total (seconds), "
	  "request id, model and outcome; json: one object a line; a request whose "
	  "client closed the connection before its answer was whole has status 499" },
	{ "cors-origins", PORCH_PARAM_LIST, NULL, 0, -1, NULL, 0,
	  "origins browsers may call from (CORS), as scheme://host[:port], or *; unset: no CORS" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/*
 * Splits "HOST:PORT" or "[V6]:PORT".  Returns 0, or -1 with err filled.
 */
static int
parse_listen(const char *v, char *host, size_t hlen, int *port, char *err, size_t errlen)
{
	const char *colon;
	size_t n;
	if (v[0] == '[') {
		const char *end = strchr(v, ']');
		if (end == NULL || end[1] != ':') {
			snprintf(err, errlen, "'%s' is not [IPV6]:PORT", v);
			return -1;
		}
		n = (size_t)(end - v - 1);
		colon = end + 1;
		v++;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "'%s' is not HOST:PORT", v);
			return -1;
		}
		n = (size_t)(colon - v);
		if (memchr(v, ':', n) != NULL) {
			snprintf(err, errlen, "'%s': write an IPv6 address in brackets, "
			    "as [::1]:8080", v);
			return -1;
		}
	}
	if (n == 0 || n >= hlen) {
		snprintf(err, errlen, "'%s' has no host: write 0.0.0.0:PORT for every "
		    "interface", v[-1] == '[' ? v - 1 : v);
		return -1;
	}
	const char *p = colon + 1;
	long val = 0;
	if (*p == '\0') {
		snprintf(err, errlen, "'%s' has no port", v);
		return -1;
	}
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || (val = val * 10 + (*p - '0')) > 65535) {
			snprintf(err, errlen, "the port of '%s' is not a number from 0 to 65535",
			    v);
			return -1;
		}
	}
	memcpy(host, v, n);
	host[n] = '\0';
	*port = (int)val;
	return 0;
}

/* The headers a browser's script may read from an answer. */
#define CORS_EXPOSE "Access-Control-Expose-Headers: X-Request-Id, Retry-After\r\n"

/*
 * One origin of cors-origins, from *pp on: its bounds in [*start, *end),
 * *pp past it and its comma.  Returns 0 at the end of the list.
 */
static int
cors_next(const char **pp, const char **start, const char **end)
{
	const char *p = *pp;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		const char *q = p;
		while (*q != ',' && *q != '\0')
			q++;
		const char *e = q;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*pp = *q == ',' ? q + 1 : q;
		if (e > p) {
			*start = p;
			*end = e;
			return 1;
		}
		p = *pp;
	}
}

/* An origin as browsers send it: '*', or scheme://host[:port] without a
 * path; visible ASCII.  Returns NULL or why not. */
static const char *
cors_bad(const char *p, size_t n)
{
	if (n == 1 && p[0] == '*')
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return "has a character that is not visible ASCII";
	const char *sep = memchr(p, ':', n);
	if (sep == NULL || (size_t)(p + n - sep) < 4 || sep[1] != '/' || sep[2] != '/')
		return "is not scheme://host[:port]";
	if (memchr(sep + 3, '/', (size_t)(p + n - sep - 3)) != NULL)
		return "has a path: an origin is scheme://host[:port] only, without a '/' at the end";
	return NULL;
}

static int
cors_check(const char *list, char *err, size_t errlen)
{
	const char *p = list, *a, *b;
	while (cors_next(&p, &a, &b)) {
		const char *why = cors_bad(a, (size_t)(b - a));
		if (why != NULL) {
			snprintf(err, errlen, "'%.*s' %s", (int)(b - a), a, why);
			return -1;
		}
	}
	return 0;
}

/* The header lines of CORS, made once: one text per origin allowed. */
static int
cors_init(struct http_src *s, const char *list, char *err, size_t errlen)
{
	if (list == NULL)
		return 0;
	if (cors_check(list, err, errlen) != 0)
		return -1;
	const char *p = list, *a, *b;
	size_t n = 0;
	while (cors_next(&p, &a, &b)) {
		if (b - a == 1 && *a == '*')
			s->cors_any = 1;
		n++;
	}
	if (n == 0)
		return 0; /* empty: off */
	s->cors_on = 1;
	if (s->cors_any) {
		s->cors_default = "Access-Control-Allow-Origin: *\r\n" CORS_EXPOSE;
		return 0;
	}
	s->cors_default = "Vary: Origin\r\n";
	if ((s->cors = calloc(n, sizeof *s->cors)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p = list;
	while (cors_next(&p, &a, &b)) {
		struct cors_origin *o = &s->cors[s->n_cors];
		size_t len = (size_t)(b - a);
		struct buf hdr = { 0 };
		buf_lit(&hdr, "Access-Control-Allow-Origin: ");
		buf_add(&hdr, a, len);
		buf_lit(&hdr, "\r\nVary: Origin\r\n" CORS_EXPOSE);
		o->origin = strndup(a, len);
		o->len = len;
		o->hdr = hdr.p;
		s->n_cors++;
		if (o->origin == NULL || hdr.oom) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

static void
cors_fini(struct http_src *s)
{
	for (size_t i = 0; i < s->n_cors; i++) {
		free(s->cors[i].origin);
		free(s->cors[i].hdr);
	}
	free(s->cors);
	s->cors = NULL;
	s->n_cors = 0;
}

static int
http_check(const porch_params *p, porch_check *c)
{
	char host[256], err[512];
	int port, rc = 0;
	const char *listen = porch_param_str(p, "listen");
	if (parse_listen(listen ? listen : "", host, sizeof host, &port, err, sizeof err) != 0) {
		porch_check_error(c, "listen", "%s", err);
		rc = -1;
	}
	const char *keys = porch_param_str(p, "api-keys-file");
	if (keys != NULL) {
		struct http_src tmp;
		memset(&tmp, 0, sizeof tmp);
		if (auth_load(&tmp, keys, err, sizeof err) != 0) {
			porch_check_error(c, "api-keys-file", "%s", err);
			rc = -1;
		}
		auth_fini(&tmp);
	}
	const char *cors = porch_param_str(p, "cors-origins");
	if (cors != NULL && cors_check(cors, err, sizeof err) != 0) {
		porch_check_error(c, "cors-origins", "%s", err);
		rc = -1;
	}
	/* a body max-body allows, but the bound never would, is a mistake
	 * (only when set: the default is far above max-body's default) */
	int64_t held = porch_param_int(p, "max-inflight-bytes");
	int64_t body = porch_param_int(p, "max-body");
	if (porch_param_isset(p, "max-inflight-bytes") && held > 0 && held < body) {
		porch_check_error(c, "max-inflight-bytes", "max-inflight-bytes %lld is less than max-body "
		    "(%lld): every request with a body that large would be shed; make it "
		    "several times max-body (a request holds its body about four times over), "
		    "or 0 for no bound", (long long)held, (long long)body);
		rc = -1;
	}
	return rc;
}

/* Writes the port to path, whole or not at all (a reader never sees half). */
static int
write_port_file(const char *path, int port, char *err, size_t errlen)
{
	char tmp[4096];
	struct stat sb;
	/* only a regular file may be replaced by the rename (not /dev/null) */
	int special = stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	FILE *f = fopen(special ? path : tmp, "w");
	if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
	    (!special && rename(tmp, path) != 0)) {
		snprintf(err, errlen, "port-file '%s': %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
all_interfaces(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "*") == 0;
}

static void http_fini(porch_stage *st);

/* ---- reload: the listener is kept by porch, connections go over ------- */

static void
src_unlisten(struct wire *w)
{
	struct http_src *s = (struct http_src *)w;
	porch_listener_release(s->st, s->listen_key);
}

static int
src_handover(struct wire *w, int fd, const char *bytes, size_t len)
{
	struct http_src *s = (struct http_src *)w;
	return porch_stage_handover(s->st, fd, bytes, len);
}

static void
src_empty(struct wire *w)
{
	struct http_src *s = (struct http_src *)w;
	porch_stage_finished(s->st);
}

/* What the framing layer calls (wire.h): the only way it reaches up. */
static const struct wire_ops http_wire_ops = {
	.on_new = req_new,
	.on_header = req_header,
	.on_head = route_head,
	.on_request = route_dispatch,
	.on_fail = req_fail,
	.on_answer = req_answered,
	.on_gone = req_gone,
	.on_release = req_release,
	.on_log = req_log,
	.on_unlisten = src_unlisten,
	.on_handover = src_handover,
	.on_empty = src_empty,
};

static int
http_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	char err[512];
	struct http_src *s = calloc(1, sizeof *s);
	if (s == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	s->access_fd = -1;
	s->st = st;
	s->w.loop = porch_stage_loop(st);
	s->w.ops = &http_wire_ops;
	s->name = porch_stage_name(st);
	s->w.lfd = -1;
	porch_stage_set_data(st, s);
	tasks_relay_init(s);
	metrics_attach(s);
	const char *listen = porch_param_str(p, "listen");
	if (parse_listen(listen ? listen : "", s->w.host, sizeof s->w.host, &s->w.port, err,
	    sizeof err) != 0) {
		porch_stage_error(st, "listen: %s", err);
		goto fail;
	}
	if (strcmp(s->w.host, "*") == 0)
		strcpy(s->w.host, "0.0.0.0");
	s->w.max_connections = (unsigned)porch_param_int(p, "max-connections");
	s->w.max_pipeline = (unsigned)porch_param_int(p, "max-pipeline");
	s->w.max_body = (size_t)porch_param_int(p, "max-body");
	s->w.max_held = (uint64_t)porch_param_int(p, "max-inflight-bytes");
	s->w.max_header = (size_t)porch_param_int(p, "max-header-size");
	s->w.max_url = (size_t)porch_param_int(p, "max-url-size");
	s->w.header_timeout = (double)porch_param_int(p, "header-timeout") / 1000.0;
	s->w.body_timeout = (double)porch_param_int(p, "body-timeout") / 1000.0;
	s->w.idle_timeout = (double)porch_param_int(p, "idle-timeout") / 1000.0;
	s->w.linger_timeout = 2.0;
	s->deadline_ms = porch_param_int(p, "deadline");
	s->retry_after_s = (porch_param_int(p, "retry-after") + 999) / 1000;
	s->w.retry_after_s = (unsigned)s->retry_after_s;
	snprintf(s->answers.retry_after, sizeof s->answers.retry_after, "Retry-After: %lld\r\n",
	    (long long)s->retry_after_s);
	s->rate = porch_param_number(p, "rate-limit");
	s->burst = (double)porch_param_int(p, "burst");
	s->task_ttl = (double)porch_param_int(p, "task-ttl") / 1000.0;
	s->task_max = (unsigned)porch_param_int(p, "task-max");
	if (access_open(s, porch_param_str(p, "access-log"), porch_param_str(p,
	    "access-log-format"), err, sizeof err) != 0) {
		porch_stage_error(st, "%s", err);
		goto fail;
	}
	s->default_model = porch_param_str(p, "model");
	s->check_model = porch_param_int(p, "check-model") != 0;
	const char *keys = porch_param_str(p, "api-keys-file");
	if (keys != NULL && auth_load(s, keys, err, sizeof err) != 0) {
		porch_stage_error(st, "%s", err);
		goto fail;
	}
	if (cors_init(s, porch_param_str(p, "cors-origins"), err, sizeof err) != 0) {
		porch_stage_error(st, "cors-origins: %s", err);
		goto fail;
	}
	/* the socket a graph this one replaces listened on, if any: a reload
	 * refuses no connection (porch_listener) */
	snprintf(s->listen_key, sizeof s->listen_key, "http %s", listen ? listen : "");
	int lfd = porch_listener(st, s->listen_key);
	unsigned shards = 1;
	if (porch_stage_shard(st, &shards) > 0 && lfd < 0) {
		/* threads: each shard listens on a socket of its own, on shard 0's
		 * port (the kernel spreads connections over them: SO_REUSEPORT) */
		int first = porch_listener_first(st, s->listen_key);
		if (first >= 0)
			s->w.port = wire_port(first);
	}
	s->w.reuse_port = shards > 1;
	if (lfd >= 0) {
		s->w.lfd = lfd;
		s->w.port = wire_port(lfd);
	} else if (wire_listen(&s->w, err, sizeof err) != 0) {
		porch_stage_error(st, "%s", err);
		goto fail;
	} else {
		porch_listener_keep(st, s->listen_key, s->w.lfd);
	}
	const char *port_file = porch_param_str(p, "port-file");
	if (port_file != NULL && write_port_file(port_file, s->w.port, err, sizeof err) != 0) {
		porch_stage_error(st, "%s", err);
		goto fail;
	}
	int v6 = strchr(s->w.host, ':') != NULL;
	porch_stage_log(st, "listening on %s%s%s:%d", v6 ? "[" : "", s->w.host, v6 ? "]" : "",
	    s->w.port);
	if (all_interfaces(s->w.host) && s->n_keys == 0)
		porch_stage_log(st, "warning: listening on every interface without API keys: "
		    "anyone who can reach port %d can use the pipeline (set api-keys-file)",
		    s->w.port);
	return 0;
fail:
	http_fini(st);
	return -1;
}

static void
http_start(porch_stage *st)
{
	struct http_src *s = porch_stage_data(st);
	s->started = 1;
	wire_start(&s->w);
}

static void
http_resume(porch_stage *st)
{
	pipeline_resume(porch_stage_data(st));
}

static void
http_drain(porch_stage *st)
{
	struct http_src *s = porch_stage_data(st);
	uint64_t max;
	uint64_t n = porch_stage_inflight(st, &max);
	porch_stage_log(st, "draining: no new connections; %u open, %llu requests in flight",
	    s->w.n_conns, (unsigned long long)n);
	pipeline_drain(s);
}

/* A reload replaced the graph: connections go over to the new one once
 * idle; what is in flight here finishes here. */
static void
http_retire(porch_stage *st)
{
	struct http_src *s = porch_stage_data(st);
	uint64_t max;
	uint64_t n = porch_stage_inflight(st, &max);
	porch_stage_log(st, "retiring (reload): %u connections go over to the new pipeline "
	    "once idle; %llu requests in flight in the pipeline", s->w.n_conns,
	    (unsigned long long)n);
	wire_retire(&s->w);
}

static int
http_adopt(porch_stage *st, int fd, const void *bytes, size_t len)
{
	struct http_src *s = porch_stage_data(st);
	if (s == NULL || s->w.draining || s->w.retiring)
		return -1;
	/* over max-connections or not, it is an open connection already: closing
	 * it would fail its client's next request */
	return wire_adopt_read(&s->w, fd, bytes, len);
}

static void
http_outcome(porch_stage *st, porch_msg *m, enum porch_outcome o)
{
	(void)st;
	struct http_origin *origin = http_origin_of(m);
	if (origin == NULL)
		return;
	if (origin->ops == &hreq_ops)
		hreq_outcome(hreq_of_origin(origin), m, o);
	else if (origin->ops == &task_ops)
		tasks_outcome((struct task *)origin, m, o);
}

static void
http_event(porch_stage *st, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail)
{
	(void)st;
	struct http_origin *origin = http_origin_of(m);
	if (origin != NULL && origin->ops == &task_ops)
		tasks_event((struct task *)origin, m, e, stage, detail);
}

static void
http_fini(porch_stage *st)
{
	struct http_src *s = porch_stage_data(st);
	if (s == NULL)
		return;
	wire_fini(&s->w);
	metrics_detach(s);
	tasks_relay_fini(s);
	while (s->wait_head != NULL) {
		struct waiting *w = s->wait_head;
		s->wait_head = w->next;
		free(w);
	}
	tasks_fini(s);
	access_close(s);
	auth_fini(s);
	cors_fini(s);
	buf_free(&s->answers.scratch);
	buf_free(&s->answers.joined);
	hreq_pool_free(s);
	free(s);
	porch_stage_set_data(st, NULL);
}

static const char *const http_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "http",
	.summary = "source: an HTTP/1.1 API (OpenAI chat and completions, /generate, tasks, "
	    "health, metrics)",
	.params = http_params,
	.flags = PORCH_STAGE_SOURCE | PORCH_STAGE_EVERY_SHARD,
	.outputs = http_outputs,
	.init = http_init,
	.start = http_start,
	.resume = http_resume,
	.drain = http_drain,
	.retire = http_retire,
	.adopt = http_adopt,
	.outcome = http_outcome,
	.fini = http_fini,
	.check = http_check,
	.event = http_event,
	.description =
	    "Serves HTTP/1.1 (and 1.0) on the pipeline's event loop: keep-alive, pipelining (answers "
	    "go out in the order the requests came, whatever order they finish in), chunked "
	    "request and answer bodies. Each request for a model becomes a message; the "
	    "answer is written by a reply stage at the end of the pipeline (see reply), or, "
	    "for a request that never reaches it (shed, expired, failed without an error "
	    "channel to reply), by this stage when the request ends. Example: http -> "
	    "inference -> reply, with inference:error -> reply so failures are answered "
	    "with their status.\n\n"
	    "POST /v1/chat/completions and POST /v1/completions take OpenAI's request as "
	    "the API defines it, and pass it on whole: the body goes in metadata "
	    "\"openai.request\", which the openai worker forwards with every field porch "
	    "does not act on unchanged (tools, tool_choice, response_format, seed, logprobs, "
	    "logit_bias, penalties, user, metadata, service_tier, unknown fields), and the "
	    "messages as sent: any role (system, developer, user, assistant, tool, function), "
	    "assistant tool calls with content null, tool results with tool_call_id, "
	    "content as a string, null or an array of parts (text, image_url and any other "
	    "typed part); a conversation may end with a tool message. JSON null is \"not "
	    "set\" for every optional field. Checked here, as porch acts on them: model, "
	    "max_tokens and max_completion_tokens (its newer name: the one set wins, the "
	    "newer when both are), temperature, top_p, stop (a string or up to 4), stream, "
	    "stream_options.include_usage, user, and n (1 to 128; more than 1 only for "
	    "whole answers, and 400 when the pipeline has a stage that edits answers after "
	    "inference, see porch_stage_answers_edited in porch-plugin(3)). The message's "
	    "text is the last user message's text (its content string, or its text parts "
	    "joined by a newline) or the prompt, for the stages that read or rewrite it; "
	    "its metadata: \"system\" (a leading system or developer message's text), "
	    "\"stream\" (the client's choice, true or false), \"model\", \"max-tokens\", "
	    "\"temperature\", \"top-p\", \"stop\" (a JSON array) and \"request-id\". The "
	    "session is the X-Session-Id header, else \"user\". A request with "
	    "Cache-Control: no-cache or no-store (here and on /generate and /v1/tasks) "
	    "has metadata \"cache\" \"no\": a cache stage neither answers it from its "
	    "store nor stores its answer (see cache).\n\n"
	    "Answers carry what the worker brought back. Without stream the answer is one "
	    "chat.completion or text_completion object: the text as the pipeline left it "
	    "(content null when the model only called tools), the worker's finish_reason "
	    "(stop, length, tool_calls, content_filter; stop when it gives none) and usage "
	    "(the upstream's own counts with their details; porch counts whitespace-"
	    "separated words of the prompt and the answer only for a worker that gives none, "
	    "such as echo), and the upstream's other members where OpenAI puts them: "
	    "tool_calls, refusal and annotations in the message, logprobs in the choice, "
	    "system_fingerprint and service_tier at the top, the other choices for n > 1. "
	    "An answer whose text is over 256 KiB goes out with a chunked body (HTTP/1.0: "
	    "to the connection's close), its text escaped and written 256 KiB per loop "
	    "iteration, so that one long answer does not hold the loop. "
	    "With stream it is server-sent events: the role, then one \"data: JSON\" event "
	    "per piece as the reply stage receives it (chat.completion.chunk with "
	    "choices[0].delta.content and the piece's tool call deltas (index, id, name, "
	    "argument fragments) and logprobs, or text_completion with choices[0].text), "
	    "then a last chunk with the finish_reason, the usage chunk if asked, and "
	    "\"data: [DONE]\". A stage between inference and reply that takes text only "
	    "(no piece callback) lets the text through; the tool calls then come whole in "
	    "one chunk before the last. A model server's refusal keeps its meaning: its 4xx "
	    "status (400, 401, 403, 404, 409, 413, 422, 429 ...) and its error object as it "
	    "sent it, with Retry-After for 429, so a client does not retry what cannot "
	    "succeed.\n\n"
	    "GET /v1/models lists the models the pipeline's workers serve, by the names "
	    "clients send (a worker's model parameter, else its name), each once, as "
	    "OpenAI does: {\"object\": \"list\", \"data\": [{\"id\", \"object\": "
	    "\"model\", \"created\": 0, \"owned_by\": \"porch\"}]}; GET /v1/models/ID "
	    "answers one of them (an ID with a slash may be sent as it is or as %2F), and "
	    "404 model_not_found for a model no worker serves. With check-model on, a "
	    "request naming such a model (\"model\" of /v1/chat/completions, "
	    "/v1/completions or /generate) gets that 404 too, before it reaches the "
	    "pipeline; off (the default), the model is passed on and the worker decides.\n\n"
	    "POST /generate takes {\"text\", \"request_id\"?} (and the same generation "
	    "fields) and answers newline-delimited JSON: {\"request_id\", \"token\"} per "
	    "piece, then {\"request_id\", \"done\": true, \"text\", \"finish_reason\", "
	    "\"usage\"} or "
	    "{\"request_id\", \"error\": {...}}.\n\n"
	    "POST /v1/tasks takes {name, description, payload (base64: the request's text), "
	    "timeout_secs (the request's deadline), max_retries (its \"retries\" "
	    "metadata)} and answers 202 {task_id, timestamp, status} at once. "
	    "GET /v1/tasks/ID gives status (queued, running, completed, failed, shed, "
	    "expired), result or error, attempts and timings (milliseconds per stage). "
	    "GET /v1/tasks/ID/events streams server-sent events: the history so far, then "
	    "enter and leave (per stage), retry (with why and when), fallback (a pool "
	    "sent the call on; detail says where) and outcome, after which the stream "
	    "ends. A finished task is kept for task-ttl and among the "
	    "task-max newest, then it is 404. "
	    "GET /v1/tasks lists the tasks kept, newest first, a page at a time, as "
	    "OpenAI's list endpoints do: ?limit=N (1 to 100, default 20) and "
	    "?after=TASK_ID (the page after that task), answered {\"object\": \"list\", "
	    "\"data\": [task, ...], \"has_more\", \"first_id\", \"last_id\"}, each task "
	    "as GET /v1/tasks/ID gives it; a bad limit, or an after that is no task kept, "
	    "is 400 invalid_value. "
	    "DELETE /v1/tasks/ID cancels a task: one waiting for room fails at once; one in "
	    "the pipeline is cancelled (a model call it is in is cancelled), and it ends as "
	    "failed with the error cancelled. The answer is the task, its status "
	    "\"cancelling\" until the pipeline has let it go; for a finished task, the "
	    "task as it ended. An unknown ID is 404 task_not_found.\n\n"
	    "GET /healthz answers {\"healthy\": true, \"version\"}; GET /readyz 200 while "
	    "running, and 503 while draining or while a pool that a stage calls has no "
	    "member to take a call (every member ejected, no fallback that can: "
	    "{\"ready\": false, \"reason\": \"no healthy member\", \"pool\": NAME}); GET /metrics the pipeline's metrics and this "
	    "stage's (porch_http_requests_total by endpoint and code, connections open, "
	    "accepted and refused, bytes received and sent, requests waiting, tasks, bytes "
	    "held by requests in flight, their peak and max-inflight-bytes), in "
	    "the Prometheus text format (porch top reads it, porch(1)). GET /graph is a page "
	    "that draws the pipeline live: the stages as boxes in layers by topological "
	    "order, each with its plugin, messages in and out (totals and per second), what "
	    "it holds, its p50 and p99 latency and its failures and sheds; the channels as "
	    "edges with their capacity, overflow, depth and refusals; the workers beside "
	    "their stages with their calls; and the same figures in tables. It is one "
	    "self-contained document (inline script and style, nothing from elsewhere) that "
	    "reads /metrics every second; like /metrics it needs no key. Every answer carries X-Request-Id: the client's "
	    "(visible ASCII, at most 128 bytes) or a new one; it is the request's "
	    "\"request-id\" metadata and is in every log line about the request.\n\n"
	    "Statuses: completed 200; failed bad-request 400; failed upstream with the "
	    "model server's 4xx: that status; failed upstream otherwise (its 5xx, an answer "
	    "that is not valid) or transport 502; failed timeout 504; failed internal or unrouted 500; shed (a full channel "
	    "or the in-flight bound) 503 with Retry-After; expired (its deadline passed) "
	    "504; cancelled: nothing, the client has gone. Errors are OpenAI-style: "
	    "{\"error\": {\"message\", \"type\", \"param\", \"code\"}}, param naming the "
	    "field at fault. Malformed HTTP (bad framing: a bad Content-Length or chunk) "
	    "is 400 and closes the connection; a malformed or mistyped body 400 "
	    "(invalid_request_error); an unknown path 404; a wrong method 405 with Allow; "
	    "a body over max-body 413, refused by its Content-Length before it is read or "
	    "as its chunks grow past it; a request-target (path and query) over "
	    "max-url-size 414; a head over max-header-size 431; a head slower than "
	    "header-timeout or a body slower than body-timeout 408 (slowloris); an HTTP "
	    "version other than 1.x 505; each of these closing the connection. "
	    "Over max-connections a new connection gets 503 and is closed; those open are "
	    "untouched. With api-keys-file, /v1/ and /generate want \"Authorization: "
	    "Bearer KEY\" (401 otherwise; keys are compared in constant time); /healthz, "
	    "/readyz, /metrics and /graph stay open. The keys file must be private to its owner: "
	    "one that group or others may read or write is refused, by porch check as by "
	    "porch run, with an error naming its mode (chmod 600 FILE fixes it); no key "
	    "is ever written to a log, an answer or the metrics. rate-limit and burst make a token bucket per "
	    "key (per client address without keys): 429 with Retry-After. The buckets are "
	    "the stage's, kept across a reload and, with threads, shared by every shard's "
	    "copy of the stage, so a key's limit holds for the process.\n\n"
	    "With threads (threads=\"N\"), the stage runs on every shard, each with its "
	    "own socket on the same address and port (SO_REUSEPORT; with port 0, the port "
	    "the first shard was given, which port-file names): the kernel spreads new "
	    "connections over the shards, and a connection's requests stay on its shard. "
	    "max-connections and max-inflight-bytes bound each shard's copy; /metrics "
	    "adds up every shard's counters. Tasks are one store over the shards: a task "
	    "is found, listed, streamed and cancelled from any of them.\n\n"
	    "HTTP as RFC 9110 and RFC 9112 say: HEAD is answered on every GET endpoint "
	    "(/healthz, /readyz, /metrics, /graph, /v1/models, /v1/models/ID, /v1/tasks, "
	    "/v1/tasks/ID, /v1/tasks/ID/events) "
	    "with the status and headers GET would have, Content-Length the length of "
	    "GET's body (Transfer-Encoding: chunked for an event stream), and no body, so "
	    "the connection stays usable; HEAD of anything else has no body either. A "
	    "method not allowed is 405 with Allow listing the methods that are (\"GET, "
	    "HEAD\", \"POST\", \"GET, HEAD, POST\" for /v1/tasks, \"GET, HEAD, DELETE\" for "
	    "/v1/tasks/ID, and OPTIONS when CORS is on). A request line with "
	    "another major version (HTTP/2.0, HTTP/3.0 ...; HTTP/1.2 is read as HTTP/1.1, as "
	    "RFC 9112 says), with none (HTTP/0.9) or "
	    "HTTP/2's connection preface is answered 505 HTTP Version Not Supported, in "
	    "HTTP/1.1. Every answer after which the connection is closed says "
	    "\"Connection: close\": the errors above, an answer to a client that asked to "
	    "close (or to HTTP/1.0 without keep-alive, or to a stream HTTP/1.0 cannot "
	    "frame), a refusal of a request sent with \"Expect: 100-continue\" (its body "
	    "may never come), the 503 over max-connections, and the answers begun once "
	    "porch is draining; then porch shuts its side and reads what is left for a "
	    "moment before it closes, so the answer is not lost to a reset. Two closes "
	    "come without it, as RFC 9112 allows: an idle keep-alive connection (after "
	    "idle-timeout, or at drain) is closed between answers, and a stream whose "
	    "head went out before the drain began ends its connection when it ends.\n\n"
	    "CORS, for browsers: off unless cors-origins is set. It lists the origins "
	    "allowed, each as browsers send it (scheme://host[:port], compared exactly), "
	    "or is *. An answer to a request whose Origin is listed carries "
	    "Access-Control-Allow-Origin with that origin and Access-Control-Expose-Headers: "
	    "X-Request-Id, Retry-After, and every answer carries Vary: Origin; with * "
	    "every answer carries Access-Control-Allow-Origin: * and the same "
	    "Expose-Headers. An origin not listed gets no CORS headers. OPTIONS on an "
	    "endpoint is answered 204 with Allow, before any key is asked for (browsers "
	    "send none on a preflight); a preflight (Access-Control-Request-Method) from "
	    "an allowed origin also gets Access-Control-Allow-Methods (the endpoint's), "
	    "Access-Control-Allow-Headers (Authorization, Content-Type, X-Request-Id, "
	    "X-Session-Id and the header names Access-Control-Request-Headers asks for, "
	    "up to 1 KiB of them) and Access-Control-Max-Age: 600. The header lines are "
	    "made when the stage starts, so an ordinary request adds no allocation or "
	    "formatting. With CORS off OPTIONS is one more method not allowed: 405 with "
	    "Allow.\n\n"
	    "Load: a request the pipeline refuses (a reject or drop-oldest channel, the "
	    "in-flight bound) is answered 503 with Retry-After at once. Memory: the bytes "
	    "requests in flight hold are counted, and bounded by max-inflight-bytes (1G; "
	    "0: no bound; when set, not below max-body, which porch check enforces): "
	    "request bodies (the buffer each is read into, kept until its "
	    "request ends; a body whose size is known gets a buffer of that size at once), "
	    "the texts a request hands to the pipeline (its message's text, the "
	    "runtime's copy of it as the request's input, and its metadata, "
	    "\"openai.request\" being the body again: a chat request holds its body "
	    "about four times over; a task's text), and answers not yet written to their "
	    "client. A request that would take the "
	    "count past the bound is shed, 503 with Retry-After, counted as shed like the "
	    "pipeline's refusals (outcome shed, error admission): at its head, by its "
	    "Content-Length, before its body is read (which is then read and thrown "
	    "away); as a chunked body grows past the room left (the connection closes "
	    "after the answer); or when its body has been read, by the size of its "
	    "texts. Requests already admitted are never cut: a stream whose client reads "
	    "slowly may take the count past the bound, and new requests are shed until "
	    "it is written. Not counted: what other stages and the worker keep of a "
	    "request (an answer being gathered: the openai worker's max-response bounds "
	    "it), and the copies made while one request's body is parsed or one answer "
	    "is written, one at a time; so the process's memory is the bound, plus a "
	    "base, plus a few times the largest body or answer. GET /metrics shows the "
	    "count (porch_http_inflight_bytes), its peak and the bound. When a 'block' "
	    "channel is full, a request for the pipeline waits in the stage and its "
	    "connection reads no more (what its client sends next waits in TCP, not in "
	    "memory) until the pipeline has room again; other connections are read and "
	    "new ones accepted (up to max-connections), so /healthz, /readyz and /metrics "
	    "answer at once. Over max-connections a connection gets 503 with the "
	    "retry-after of this stage, type overloaded_error, code max_connections. Descriptors: accepting pauses for 100 ms (the clients waiting in the "
	    "listen backlog) when accept fails for want of descriptors or memory, and "
	    "also once fewer than an eighth of ulimit -n (at least 8, at most 256) would "
	    "be left free, which are kept for the rest of porch, such as the openai "
	    "worker's connections for these very requests; a line in the log says so, at "
	    "most every 10 s. A client that closes its connection cancels its requests "
	    "(porch_msg_cancel: the inference stage stops its call). On SIGTERM it stops "
	    "listening, closes idle connections, answers requests that arrive on busy ones "
	    "(readyz 503, new work 503) and closes each connection after its last answer, "
	    "while the requests in flight, streams included, finish.\n\n"
	    "The HTTP parser is http-parser (nodejs/http-parser 2.9, Debian's "
	    "libhttp-parser-dev), driven by this stage's own libev socket code: a small, "
	    "well-tested callback parser that does no I/O and owns no thread, so every "
	    "socket stays on the pipeline's loop, where backpressure, cancellation and "
	    "streaming need them. libmicrohttpd was not chosen: it owns its sockets and "
	    "threads and fits a libev loop poorly. "
	    "The measurement (bench/http-parsers, recorded in bench/RESULTS.md): "
	    "http-parser takes 0.46-0.56 us to parse the benchmark's request, about 3% "
	    "of the 15-17 us of CPU porch spends on the whole request, so a faster "
	    "parser could not matter much; and a whole libmicrohttpd 0.9.75 server "
	    "answering a constant costs 12.4-13.3 us per request under the same load, "
	    "no less than nginx, before it hands each request from its thread to the "
	    "pipeline's loop.",
};
