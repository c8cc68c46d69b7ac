/*
 * openai.c -- worker: calls a model server through the OpenAI-compatible
 * HTTP API (POST /v1/chat/completions or /v1/completions), streamed or not.
 *
 * Every call is one HTTP request on the worker's libcurl multi handle,
 * which the loop drives (cev.c): no thread per request, and connections
 * are kept and reused, at most max-connections of them.  Request bodies
 * and answers are JSON (request.c); streamed answers are server-sent
 * events (sse.c), whose pieces go to the stage as they arrive.  The worker
 * never retries: it reports the HTTP status and Retry-After with the
 * failure, and the stage decides.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <ev.h>
#include <porch/plugin.h>

#include "cev.h"
#include "request.h"
#include "sse.h"

/* An answer buffer larger than this is freed, not kept, when a call ends. */
#define OAI_KEEP_BUFFER (64 * 1024)

/* Bytes of an error answer kept for the failure's text. */
#define OAI_EXCERPT 160

struct oai;

enum oai_state {
	OAI_FREE,     /* on the free list */
	OAI_WAITING,  /* submitted while libcurl ran: queued until it returns */
	OAI_RUNNING,  /* its transfer is in the multi handle */
	OAI_ENDING,   /* out of the multi handle, being ended */
};

/* One call, with its easy handle; both are reused for later calls. */
struct oai_call {
	struct oai_call *prev, *next;  /* the active list; next: the free list */
	struct oai_call *qnext;        /* the waiting queue */
	struct oai *o;
	porch_call *c;                 /* NULL once cancelled */
	CURL *easy;
	enum oai_state state;
	char *body;                    /* the request body */

	char *resp;                    /* a whole (not streamed) answer */
	size_t rlen, rcap;
	size_t total;                  /* answer bytes so far, for max-response */
	struct sse sse;

	ev_timer read_timer;           /* read-timeout, lazily re-armed */
	ev_tstamp last;                /* loop time of the last bytes received */

	int64_t retry_after;           /* ms; -1: not given */
	unsigned event_stream : 1;     /* Content-Type: text/event-stream */
	unsigned ms_given : 1;         /* retry-after-ms was given (it wins) */
	unsigned started : 1;          /* the first body bytes came */
	unsigned sse_mode : 1;         /* the body is parsed as events */
	unsigned saw_done : 1;         /* "data: [DONE]" came */
	unsigned cancelled : 1;

	/* why we stopped the transfer ourselves, if we did */
	enum porch_error fail_err;
	int fail_status;
	char fail_why[384];
	char errbuf[CURL_ERROR_SIZE];
};

struct oai {
	porch_worker *w;
	struct ev_loop *loop;
	struct cev *cv;
	struct curl_slist *headers;    /* holds the API key: zeroed when freed */
	char *url;
	struct oai_shape shape;
	long connect_timeout_ms;
	double read_timeout;           /* s */
	size_t max_response;
	struct oai_call *active;       /* every call not free */
	struct oai_call *free;
	struct oai_call *qhead, *qtail;/* waiting for libcurl to return */
	unsigned zombies;              /* cancelled while libcurl ran */
	int curl_ready;                /* curl_global_init succeeded */
};

static const struct porch_param oai_params[] = {
	{ "base-url", PORCH_PARAM_STRING, "http://127.0.0.1:8000/v1", 0, 0, NULL, 0,
	  "the API's base URL, up to and including /v1 (http:// or https://)" },
	{ "model", PORCH_PARAM_STRING, "default", 0, 0, NULL, 0,
	  "the model asked for, unless the request's \"model\" setting names one" },
	{ "endpoint", PORCH_PARAM_ENUM, "chat", 0, 0, "chat|completions", 0,
	  "chat: POST /chat/completions with messages; completions: POST /completions with a prompt" },
	{ "stream", PORCH_PARAM_BOOLEAN, "true", 0, 0, NULL, 0,
	  "ask for a streamed answer (server-sent events), passed on as it arrives" },
	{ "api-key-env", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "name of the environment variable holding the API key (sent as a Bearer token)" },
	{ "connect-timeout", PORCH_PARAM_DURATION, "5s", 1, 3600000, NULL, 0,
	  "longest wait for a connection (TCP, and TLS for https) to the server" },
	{ "read-timeout", PORCH_PARAM_DURATION, "60s", 1, 86400000, NULL, 0,
	  "longest wait for the next bytes of an answer once the request is sent" },
	{ "max-connections", PORCH_PARAM_INTEGER, "64", 1, 65536, NULL, 0,
	  "connections open at most; further requests wait for one to be free" },
	{ "max-response", PORCH_PARAM_SIZE, "8M", 1024, 1073741824, NULL, 0,
	  "largest answer body; a larger one fails as upstream" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/* ---- calls ----------------------------------------------------------- */

static size_t oai_on_write(char *p, size_t size, size_t nmemb, void *arg);
static size_t oai_on_header(char *p, size_t size, size_t nmemb, void *arg);
static void oai_on_read_timer(struct ev_loop *loop, ev_timer *t, int revents);

#if LIBCURL_VERSION_NUM >= 0x075000 /* 7.80: CURLOPT_PREREQFUNCTION */
#define OAI_HAVE_PREREQ 1
static int oai_on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port);
#endif

/* A new call with its easy handle, set up with what never changes. */
static struct oai_call *
oai_call_new(struct oai *o)
{
	struct oai_call *cl = calloc(1, sizeof *cl);
	if (cl == NULL)
		return NULL;
	if ((cl->easy = curl_easy_init()) == NULL) {
		free(cl);
		return NULL;
	}
	cl->o = o;
	ev_init(&cl->read_timer, oai_on_read_timer);
	cl->read_timer.data = cl;
	CURL *e = cl->easy;
	int bad = 0;
	bad |= curl_easy_setopt(e, CURLOPT_URL, o->url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->headers) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, oai_on_write) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, cl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, oai_on_header) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, cl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, cl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cl->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "porch-openai/1") != CURLE_OK;
	/* idle pooled connections: find out early when a peer went away */
	bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
#ifdef OAI_HAVE_PREREQ
	bad |= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, oai_on_prereq) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PREREQDATA, cl) != CURLE_OK;
#endif
	if (bad) {
		curl_easy_cleanup(cl->easy);
		free(cl);
		return NULL;
	}
	return cl;
}

static void
oai_call_destroy(struct oai_call *cl)
{
	curl_easy_cleanup(cl->easy);
	free(cl->body);
	free(cl->resp);
	sse_free(&cl->sse);
	free(cl);
}

/* A call ready for c: from the free list or new, on the active list. */
static struct oai_call *
oai_call_get(struct oai *o, porch_call *c)
{
	struct oai_call *cl = o->free;
	if (cl != NULL)
		o->free = cl->next;
	else if ((cl = oai_call_new(o)) == NULL)
		return NULL;
	cl->prev = NULL;
	cl->next = o->active;
	if (o->active != NULL)
		o->active->prev = cl;
	o->active = cl;
	cl->qnext = NULL;
	cl->c = c;
	cl->rlen = 0;
	cl->total = 0;
	sse_reset(&cl->sse);
	cl->retry_after = -1;
	cl->event_stream = cl->ms_given = cl->started = cl->sse_mode = 0;
	cl->saw_done = cl->cancelled = 0;
	cl->fail_err = PORCH_ERR_NONE;
	cl->fail_status = 0;
	cl->fail_why[0] = '\0';
	cl->errbuf[0] = '\0';
	return cl;
}

/* Back to the free list; it must be out of the multi handle. */
static void
oai_call_put(struct oai_call *cl)
{
	struct oai *o = cl->o;
	ev_timer_stop(o->loop, &cl->read_timer);
	free(cl->body);
	cl->body = NULL;
	if (cl->rcap > OAI_KEEP_BUFFER) {
		free(cl->resp);
		cl->resp = NULL;
		cl->rcap = 0;
	}
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		o->active = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	cl->state = OAI_FREE;
	cl->c = NULL;
	cl->prev = NULL;
	cl->next = o->free;
	o->free = cl;
}

/*
 * Records why we stop the transfer (the first reason wins); the write
 * callback then returns 0, and the transfer ends with CURLE_WRITE_ERROR.
 */
static void oai_stop(struct oai_call *cl, enum porch_error err, int status,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
oai_stop(struct oai_call *cl, enum porch_error err, int status, const char *fmt, ...)
{
	if (cl->fail_err != PORCH_ERR_NONE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cl->fail_why, sizeof cl->fail_why, fmt, ap);
	va_end(ap);
	cl->fail_err = err;
	cl->fail_status = status;
}

/*
 * Ends a call that is out of the multi handle (or never got in): recycles
 * it first, since the stage may start another call at once, then fails c.
 */
static void oai_fail(struct oai_call *cl, enum porch_error err, int status,
    int64_t retry_after, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
oai_fail(struct oai_call *cl, enum porch_error err, int status, int64_t retry_after,
    const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	porch_call *c = cl->c;
	oai_call_put(cl);
	if (status != 0)
		porch_call_set_status(c, status);
	if (retry_after >= 0)
		porch_call_set_retry_after(c, retry_after);
	porch_call_fail(c, err, "%s", why);
}

static void
oai_succeed(struct oai_call *cl)
{
	porch_call *c = cl->c;
	oai_call_put(cl);
	porch_call_done(c);
}

/* ---- what libcurl hands us ---------------------------------------------- */

/* One streamed event; see sse_event_fn. */
static int
oai_on_event(void *arg, enum sse_kind kind, const char *data, size_t len)
{
	struct oai_call *cl = arg;
	char excerpt[OAI_EXCERPT];
	if (kind == SSE_ERROR) {
		oai_error_excerpt(data, len, excerpt, sizeof excerpt);
		oai_stop(cl, PORCH_ERR_UPSTREAM, 200, "upstream sent an error event: %s", excerpt);
		return -1;
	}
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		cl->saw_done = 1;
		return 1;
	}
	json_t *root;
	const char *text;
	size_t tlen;
	char why[256];
	int r = oai_chunk_text(cl->o->shape.chat, data, len, &root, &text, &tlen, why, sizeof why);
	if (r == OAI_ERROR) {
		oai_stop(cl, PORCH_ERR_UPSTREAM, 200, "upstream sent an error event: %s", why);
		return -1;
	}
	if (r != OAI_OK) {
		oai_stop(cl, PORCH_ERR_UPSTREAM, 200, "%s", why);
		return -1;
	}
	if (tlen > 0)
		porch_call_token(cl->c, text, tlen); /* may cancel cl */
	json_decref(root);
	return cl->cancelled ? -1 : 0;
}

/* CURLOPT_WRITEFUNCTION: body bytes.  Returns n, or 0 to stop. */
static size_t
oai_on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct oai_call *cl = arg;
	struct oai *o = cl->o;
	size_t n = size * nmemb;
	if (cl->cancelled || cl->fail_err != PORCH_ERR_NONE)
		return 0;
	cl->last = ev_now(o->loop);
	if (!cl->started) {
		long status = 0;
		curl_easy_getinfo(cl->easy, CURLINFO_RESPONSE_CODE, &status);
		cl->started = 1;
		/* by what the server sent, not what we asked for: a server that
		 * does not stream answers in JSON, and errors come as JSON */
		cl->sse_mode = status >= 200 && status < 300 && cl->event_stream;
	}
	if (n > o->max_response - cl->total) {
		long status = 0;
		curl_easy_getinfo(cl->easy, CURLINFO_RESPONSE_CODE, &status);
		oai_stop(cl, PORCH_ERR_UPSTREAM, (int)status,
		    "the answer is larger than max-response (%zu bytes)", o->max_response);
		return 0;
	}
	cl->total += n;
	if (!cl->sse_mode) {
		if (cl->rcap - cl->rlen <= n) {
			size_t cap = cl->rcap ? cl->rcap : 4096;
			while (cap - cl->rlen <= n)
				cap *= 2; /* bounded by max-response */
			char *r = realloc(cl->resp, cap);
			if (r == NULL) {
				oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the answer");
				return 0;
			}
			cl->resp = r;
			cl->rcap = cap;
		}
		memcpy(cl->resp + cl->rlen, p, n);
		cl->rlen += n;
		cl->resp[cl->rlen] = '\0';
		return n;
	}
	int r = sse_feed(&cl->sse, p, n, oai_on_event, cl);
	if (r == -2) {
		oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the stream");
		return 0;
	}
	/* 1: "[DONE]"; what follows is read, and ignored, to the end */
	return r == -1 ? 0 : n;
}

static int
oai_header_is(const char *p, size_t n, const char *name, const char **value, size_t *vlen)
{
	size_t k = strlen(name);
	if (n <= k || p[k] != ':' || strncasecmp(p, name, k) != 0)
		return 0;
	p += k + 1;
	n -= k + 1;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	*value = p;
	*vlen = n;
	return 1;
}

/* Retry-After: delta-seconds or an HTTP-date; -1 if neither. */
static int64_t
oai_retry_after(const char *v, size_t n)
{
	char buf[64];
	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	if (strspn(buf, "0123456789") == n) {
		if (n > 9)
			return 999999999LL * 1000; /* absurd, but a wait all the same */
		return strtoll(buf, NULL, 10) * 1000;
	}
	time_t t = curl_getdate(buf, NULL);
	if (t == (time_t)-1)
		return -1;
	time_t now = time(NULL);
	return t > now ? (int64_t)(t - now) * 1000 : 0;
}

/* CURLOPT_HEADERFUNCTION: one header line (or a status line) at a time. */
static size_t
oai_on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct oai_call *cl = arg;
	size_t n = size * nmemb;
	const char *v;
	size_t vn;
	if (cl->cancelled)
		return 0;
	cl->last = ev_now(cl->o->loop);
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new response (after a 100 Continue, say): forget the last's */
		cl->retry_after = -1;
		cl->ms_given = 0;
		cl->event_stream = 0;
	} else if (oai_header_is(p, n, "content-type", &v, &vn)) {
		cl->event_stream = vn >= 17 && strncasecmp(v, "text/event-stream", 17) == 0;
	} else if (oai_header_is(p, n, "retry-after-ms", &v, &vn)) {
		/* OpenAI's own, in milliseconds, possibly with a fraction */
		char buf[32];
		if (vn > 0 && vn < sizeof buf && strspn(v, "0123456789.") >= vn) {
			memcpy(buf, v, vn);
			buf[vn] = '\0';
			double ms = strtod(buf, NULL);
			if (ms < 1e15) {
				cl->retry_after = (int64_t)(ms + 0.999);
				cl->ms_given = 1;
			}
		}
	} else if (!cl->ms_given && oai_header_is(p, n, "retry-after", &v, &vn)) {
		cl->retry_after = oai_retry_after(v, vn);
	}
	return n;
}

static void
oai_read_timer_start(struct oai_call *cl)
{
	struct oai *o = cl->o;
	cl->last = ev_now(o->loop);
	ev_timer_stop(o->loop, &cl->read_timer);
	ev_timer_set(&cl->read_timer, o->read_timeout, 0.);
	ev_timer_start(o->loop, &cl->read_timer);
}

#ifdef OAI_HAVE_PREREQ
/*
 * CURLOPT_PREREQFUNCTION: connected, the request goes out now.  The read
 * timeout runs from here, not from submit: a call waiting for one of the
 * max-connections is not late.
 */
static int
oai_on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port)
{
	(void)ip;
	(void)local_ip;
	(void)port;
	(void)local_port;
	oai_read_timer_start(arg);
	return CURL_PREREQFUNC_OK;
}
#endif

/* ---- ending calls -------------------------------------------------------- */

/* A whole answer (or a stream that ended): ends the call. */
static void
oai_finish_ok(struct oai_call *cl, long status)
{
	struct oai *o = cl->o;
	char why[384];
	if (cl->sse_mode) {
		int r = sse_end(&cl->sse, oai_on_event, cl);
		if (cl->cancelled) {
			oai_call_put(cl);
			return;
		}
		if (r == -2)
			oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the stream");
		if (cl->fail_err != PORCH_ERR_NONE) {
			oai_fail(cl, cl->fail_err, cl->fail_status, -1, "%s", cl->fail_why);
			return;
		}
		if (!cl->saw_done) {
			oai_fail(cl, PORCH_ERR_UPSTREAM, (int)status, -1,
			    "malformed stream: it ended without \"data: [DONE]\"");
			return;
		}
		oai_succeed(cl);
		return;
	}
	json_t *root;
	const char *text;
	size_t tlen;
	int r = oai_answer_text(o->shape.chat, cl->resp ? cl->resp : "", cl->rlen,
	    &root, &text, &tlen, why, sizeof why);
	if (r == OAI_ERROR) {
		oai_fail(cl, PORCH_ERR_UPSTREAM, (int)status, -1,
		    "upstream answered %ld with an error: %s", status, why);
		return;
	}
	if (r != OAI_OK) {
		oai_fail(cl, PORCH_ERR_UPSTREAM, (int)status, -1, "%s", why);
		return;
	}
	if (tlen > 0)
		porch_call_token(cl->c, text, tlen); /* may cancel cl */
	json_decref(root);
	if (cl->cancelled) {
		oai_call_put(cl);
		return;
	}
	oai_succeed(cl);
}

/* How a transfer that failed in libcurl ends the call. */
static void
oai_finish_curl_error(struct oai_call *cl, CURLcode result)
{
	const char *what = cl->errbuf[0] != '\0' ? cl->errbuf : curl_easy_strerror(result);
	switch (result) {
	case CURLE_OPERATION_TIMEDOUT:
		/* our read-timeout is our own timer: this is connect-timeout */
		oai_fail(cl, PORCH_ERR_TIMEOUT, 0, -1, "connect-timeout: %s", what);
		break;
	case CURLE_OUT_OF_MEMORY:
		oai_fail(cl, PORCH_ERR_INTERNAL, 0, -1, "libcurl: %s", what);
		break;
	default:
		/* refused, reset, DNS, TLS, a broken HTTP answer */
		oai_fail(cl, PORCH_ERR_TRANSPORT, 0, -1, "%s", what);
		break;
	}
}

/* cev_done_fn: a transfer ended. */
static void
oai_on_done(void *arg, CURL *easy, CURLcode result)
{
	struct oai *o = arg;
	char *priv = NULL;
	char excerpt[OAI_EXCERPT];
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
	struct oai_call *cl = (struct oai_call *)priv;
	if (cl == NULL)
		return;
	if (cl->cancelled) {
		o->zombies--;
		oai_call_put(cl);
		return;
	}
	cl->state = OAI_ENDING;
	ev_timer_stop(o->loop, &cl->read_timer);

	long status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (cl->fail_err != PORCH_ERR_NONE) {
		oai_fail(cl, cl->fail_err, cl->fail_status, -1, "%s", cl->fail_why);
	} else if (status >= 300 || (status != 0 && status < 200)) {
		/* what came of the error body is enough, even if cut short */
		char wait[48] = "";
		oai_error_excerpt(cl->resp ? cl->resp : "", cl->rlen, excerpt, sizeof excerpt);
		if (cl->retry_after >= 0)
			snprintf(wait, sizeof wait, " (retry after %lld ms)",
			    (long long)cl->retry_after);
		oai_fail(cl, PORCH_ERR_UPSTREAM, (int)status, cl->retry_after,
		    "upstream answered %ld%s: %s", status, wait, excerpt);
	} else if (result == CURLE_OK || cl->saw_done) {
		oai_finish_ok(cl, status);
	} else {
		oai_finish_curl_error(cl, result);
	}
}

/* Starts a call's transfer, outside libcurl. */
static void
oai_start(struct oai_call *cl)
{
	CURLMcode rc = cev_add(cl->o->cv, cl->easy);
	if (rc != CURLM_OK) {
		cl->state = OAI_ENDING;
		oai_fail(cl, PORCH_ERR_INTERNAL, 0, -1, "could not start the request: %s",
		    curl_multi_strerror(rc));
		return;
	}
	cl->state = OAI_RUNNING;
#ifndef OAI_HAVE_PREREQ
	oai_read_timer_start(cl);
#endif
}

/* cev_after_fn: what had to wait for libcurl to return. */
static void
oai_after(void *arg)
{
	struct oai *o = arg;
	if (o->zombies > 0) {
		struct oai_call *cl = o->active, *next;
		for (; cl != NULL && o->zombies > 0; cl = next) {
			next = cl->next;
			if (cl->cancelled && cl->state == OAI_RUNNING) {
				cev_remove(o->cv, cl->easy);
				o->zombies--;
				oai_call_put(cl);
			}
		}
	}
	while (o->qhead != NULL) {
		struct oai_call *cl = o->qhead;
		o->qhead = cl->qnext;
		if (o->qhead == NULL)
			o->qtail = NULL;
		cl->qnext = NULL;
		oai_start(cl); /* may end calls, and queue none: we are outside libcurl */
	}
}

/* The read timer: no bytes for read-timeout seconds ends the call. */
static void
oai_on_read_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct oai_call *cl = t->data;
	struct oai *o = cl->o;
	(void)revents;
	if (cl->cancelled) {
		/* oai_after removes it; cannot happen, as it runs first */
		return;
	}
	ev_tstamp left = cl->last + o->read_timeout - ev_now(loop);
	if (left > 0) {
		/* bytes came since it was set: wait for the rest */
		ev_timer_set(t, left, 0.);
		ev_timer_start(loop, t);
		return;
	}
	cev_remove(o->cv, cl->easy);
	cl->state = OAI_ENDING;
	if (cl->saw_done) {
		/* the answer was whole; only the end of the body never came */
		oai_succeed(cl);
		return;
	}
	oai_fail(cl, PORCH_ERR_TIMEOUT, 0, -1, "read-timeout: no bytes from upstream for %.0f ms",
	    o->read_timeout * 1000.);
}

/* ---- the worker ----------------------------------------------------------- */

static int
oai_submit(porch_worker *w, porch_call *c)
{
	struct oai *o = porch_worker_data(w);
	char why[384];
	char *body = NULL;
	size_t len = 0;
	int r = oai_request_body(&o->shape, c, &body, &len, why, sizeof why);
	if (r == -1) {
		porch_call_fail(c, PORCH_ERR_BAD_REQUEST, "%s", why);
		return 0;
	}
	struct oai_call *cl = r == 0 ? oai_call_get(o, c) : NULL;
	if (cl == NULL) {
		free(body);
		porch_call_fail(c, PORCH_ERR_INTERNAL, "out of memory");
		return 0;
	}
	cl->body = body;
	curl_easy_setopt(cl->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(cl->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	porch_call_set_data(c, cl);
	if (cev_busy(o->cv)) {
		/* called from a libcurl callback (a token went downstream):
		 * libcurl takes no new transfer until it returns */
		cl->state = OAI_WAITING;
		if (o->qtail != NULL)
			o->qtail->qnext = cl;
		else
			o->qhead = cl;
		o->qtail = cl;
		return 0;
	}
	oai_start(cl);
	return 0;
}

static void
oai_cancel(porch_worker *w, porch_call *c)
{
	struct oai *o = porch_worker_data(w);
	struct oai_call *cl = porch_call_data(c);
	if (cl == NULL || cl->c != c || cl->cancelled)
		return;
	cl->c = NULL;
	switch (cl->state) {
	case OAI_WAITING: {
		struct oai_call **pp = &o->qhead, *prev = NULL;
		while (*pp != cl) {
			prev = *pp;
			pp = &(*pp)->qnext;
		}
		*pp = cl->qnext;
		if (o->qtail == cl)
			o->qtail = prev;
		oai_call_put(cl);
		break;
	}
	case OAI_RUNNING:
		if (cev_busy(o->cv)) {
			/* inside libcurl: stopped by oai_on_done or oai_after */
			cl->cancelled = 1;
			o->zombies++;
			break;
		}
		cev_remove(o->cv, cl->easy);
		oai_call_put(cl);
		break;
	case OAI_ENDING:
		/* inside porch_call_token from oai_finish_ok: it puts cl */
		cl->cancelled = 1;
		break;
	case OAI_FREE:
		break;
	}
}

/* base-url must be an http(s) URL a path can be appended to. */
static int
oai_check(const porch_params *p, porch_check *ck)
{
	int bad = 0;
	const char *url = porch_param_str(p, "base-url");
	if (url == NULL || (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0)) {
		porch_check_error(ck, "base-url", "'%s' must start with http:// or https://",
		    url ? url : "");
		bad = 1;
	} else if (strpbrk(url, "?# \t\r\n") != NULL) {
		porch_check_error(ck, "base-url", "'%s' must not have a query, a fragment "
		    "or white space: the endpoint's path is appended to it", url);
		bad = 1;
	} else {
		CURLU *u = curl_url();
		char *host = NULL;
		if (u == NULL)
			return -1;
		if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		    host == NULL || *host == '\0') {
			porch_check_error(ck, "base-url", "'%s' is not a valid URL with a host", url);
			bad = 1;
		}
		curl_free(host);
		curl_url_cleanup(u);
	}
	const char *env = porch_param_str(p, "api-key-env");
	if (env != NULL && (env[0] == '\0' || isdigit((unsigned char)env[0]) ||
	    strspn(env, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
	    strlen(env))) {
		porch_check_error(ck, "api-key-env", "'%s' is not an environment variable name "
		    "(letters, digits and '_'); it names the variable, it is not the key", env);
		bad = 1;
	}
	return bad ? -1 : 0;
}

/* The request headers; the API key goes in the last one. */
static struct curl_slist *
oai_headers(const char *key)
{
	static const char *const fixed[] = {
		"Content-Type: application/json",
		"Accept: application/json, text/event-stream",
		"Expect:", /* no "100 Continue" round trip for large prompts */
	};
	struct curl_slist *h = NULL, *t;
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		if ((t = curl_slist_append(h, fixed[i])) == NULL)
			goto fail;
		h = t;
	}
	if (key != NULL) {
		size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;
		char *a = malloc(n);
		if (a == NULL)
			goto fail;
		snprintf(a, n, "Authorization: Bearer %s", key);
		t = curl_slist_append(h, a);
		explicit_bzero(a, n);
		free(a);
		if (t == NULL)
			goto fail;
		h = t;
	}
	return h;
fail:
	curl_slist_free_all(h);
	return NULL;
}

/* Frees the headers, the key's bytes zeroed first. */
static void
oai_headers_free(struct curl_slist *h)
{
	for (struct curl_slist *t = h; t != NULL; t = t->next)
		explicit_bzero(t->data, strlen(t->data));
	curl_slist_free_all(h);
}

static void oai_fini(porch_worker *w);

static int
oai_init(porch_worker *w)
{
	const porch_params *p = porch_worker_params(w);
	struct oai *o = calloc(1, sizeof *o);
	if (o == NULL) {
		porch_worker_error(w, "out of memory");
		return -1;
	}
	o->w = w;
	o->loop = porch_worker_loop(w);
	porch_worker_set_data(w, o);

	const char *env = porch_param_str(p, "api-key-env");
	const char *key = NULL;
	if (env != NULL) {
		key = getenv(env);
		if (key == NULL || *key == '\0') {
			/* the variable's name only: never its value */
			porch_worker_error(w, "api-key-env: the environment variable %s, which "
			    "should hold the API key, is %s", env, key == NULL ? "not set" : "empty");
			goto fail;
		}
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		porch_worker_error(w, "libcurl could not be initialised");
		goto fail;
	}
	o->curl_ready = 1;

	const char *base = porch_param_str(p, "base-url");
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	o->shape.chat = strcmp(porch_param_str(p, "endpoint"), "chat") == 0;
	o->shape.stream = porch_param_int(p, "stream") != 0;
	o->shape.model = porch_param_str(p, "model");
	const char *path = o->shape.chat ? "/chat/completions" : "/completions";
	size_t ulen = blen + strlen(path) + 1;
	if ((o->url = malloc(ulen)) == NULL) {
		porch_worker_error(w, "out of memory");
		goto fail;
	}
	snprintf(o->url, ulen, "%.*s%s", (int)blen, base, path);
	o->connect_timeout_ms = (long)porch_param_int(p, "connect-timeout");
	o->read_timeout = (double)porch_param_int(p, "read-timeout") / 1000.;
	o->max_response = (size_t)porch_param_int(p, "max-response");

	if ((o->headers = oai_headers(key)) == NULL ||
	    (o->cv = cev_new(o->loop, oai_on_done, oai_after, o)) == NULL) {
		porch_worker_error(w, "out of memory");
		goto fail;
	}
	long maxc = (long)porch_param_int(p, "max-connections");
	CURLM *m = cev_multi(o->cv);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxc);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, maxc);
	/* keep as many idle connections as may be open, for reuse */
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, maxc);
	return 0;
fail:
	oai_fini(w);
	return -1;
}

static void
oai_fini(porch_worker *w)
{
	struct oai *o = porch_worker_data(w);
	if (o == NULL)
		return;
	/* calls still open are forgotten, not ended */
	while (o->active != NULL) {
		struct oai_call *cl = o->active;
		o->active = cl->next;
		if (cl->state == OAI_RUNNING)
			cev_remove(o->cv, cl->easy);
		ev_timer_stop(o->loop, &cl->read_timer);
		oai_call_destroy(cl);
	}
	while (o->free != NULL) {
		struct oai_call *cl = o->free;
		o->free = cl->next;
		oai_call_destroy(cl);
	}
	cev_free(o->cv);
	oai_headers_free(o->headers);
	free(o->url);
	if (o->curl_ready)
		curl_global_cleanup();
	free(o);
	porch_worker_set_data(w, NULL);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_WORKER,
	.name = "openai",
	.summary = "worker: a model server speaking the OpenAI-compatible HTTP API, streamed or not",
	.params = oai_params,
	.worker_init = oai_init,
	.submit = oai_submit,
	.cancel = oai_cancel,
	.worker_fini = oai_fini,
	.check = oai_check,
	.description =
	    "Calls a model server through the OpenAI-compatible HTTP API, as served by "
	    "vLLM, llama.cpp's llama-server, Ollama and hosted providers: POST "
	    "BASE-URL/chat/completions (endpoint chat: the request's text is the last "
	    "user message, after the \"system\" and \"messages\" settings) or "
	    "BASE-URL/completions (endpoint completions: the text is the prompt).  The "
	    "request's settings model, max-tokens, temperature, top-p and stop (one "
	    "string, or a JSON array of strings) become the body's fields; a setting that "
	    "does not parse fails the request as bad-request, naming it.\n"
	    "\n"
	    "With stream true the server is asked for server-sent events, and each piece "
	    "of text goes on to the stage as it arrives; the answer ends with "
	    "\"data: [DONE]\".  A server that answers in one JSON body instead is read "
	    "that way too.  An HTTP status of 300 or more fails the request as upstream, "
	    "with the status and the server's error message; the status and any "
	    "Retry-After (seconds or an HTTP date; OpenAI's retry-after-ms wins) are "
	    "passed to the stage, which decides whether to retry: the worker never does.  "
	    "A status of 200 with an answer that is not what the API returns (not JSON, "
	    "no choices, a stream cut before [DONE]) fails as upstream with status 200.  "
	    "Refused or reset connections, DNS and TLS errors fail as transport; "
	    "connect-timeout, and read-timeout without a byte of the answer, as timeout.\n"
	    "\n"
	    "The API key is read at start from the environment variable api-key-env "
	    "names, never from the pipeline file; it is sent as \"Authorization: Bearer\" "
	    "and is never logged.  Requests run on libcurl's multi interface, driven by "
	    "the pipeline's event loop: no thread per request.  Connections are kept "
	    "open and reused, at most max-connections of them (HTTP/2 to an https "
	    "server multiplexes requests on them); requests beyond that wait for a free "
	    "one, without their read-timeout running.  libcurl's proxy environment "
	    "variables (https_proxy, no_proxy...) apply.",
};
