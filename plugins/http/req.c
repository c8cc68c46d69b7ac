/*
 * req.c -- a request's life as the framing layer tells it (wire.h's
 * on_new, on_header, on_fail, on_answer, on_gone, on_release): its memory,
 * kept in a pool, the header lines the endpoints read, the answer to one
 * that could not be read, the access log, and letting go of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/*
 * Requests freed are kept for the next ones, with their buffers (url,
 * body, answer, chunk head), so a keep-alive request costs no malloc of its
 * own: at most HREQ_POOL_MAX of them, and a buffer past HREQ_BUF_KEEP is
 * let go.  The pool is bounded, so memory stays flat under load.  In the
 * pool a request is linked through w.next.
 */
#define HREQ_POOL_MAX 256
#define HREQ_BUF_KEEP (16 * 1024)

/* on_new: a request, from the pool or new; NULL when out of memory. */
struct wreq *
req_new(struct wire *w)
{
	struct http_src *s = src_of(w);
	struct hreq *h = s->hreq_pool;
	if (h != NULL) {
		s->hreq_pool = h->w.next != NULL ? hreq_of(h->w.next) : NULL;
		s->n_hreq_pool--;
		struct buf chunk_head = h->chunk_head;
		wreq_reset(&h->w);
		memset((char *)h + sizeof h->w, 0, sizeof *h - sizeof h->w);
		h->chunk_head = chunk_head;
	} else if ((h = calloc(1, sizeof *h)) == NULL) {
		return NULL;
	}
	h->ans = &s->answers;
	h->origin.ops = &hreq_ops;
	h->s = s;
	h->w.headers = s->cors_default;
	return &h->w;
}

static void
hreq_free(struct hreq *h)
{
	struct http_src *s = h->s;
	if (h->w.status != 0 || h->client_gone)
		access_write(s, h); /* answered and ended: its line */
	if (h->watched)
		tasks_unwatch(h); /* also what another shard relayed to it */
	answer_slices_free(h); /* a long answer's client left before its end */
	pipeline_made_free(h); /* ... or a large request's, before its message */
	free(h->auth);
	free(h->session);
	free(h->model);
	free(h->gen_id);
	free(h->cors_req_headers);
	if (s->n_hreq_pool < HREQ_POOL_MAX) {
		wreq_trim(&h->w);
		if (h->chunk_head.cap > HREQ_BUF_KEEP)
			buf_free(&h->chunk_head);
		else
			buf_reset(&h->chunk_head);
		h->w.next = s->hreq_pool != NULL ? &s->hreq_pool->w : NULL;
		s->hreq_pool = h;
		s->n_hreq_pool++;
		return;
	}
	wreq_free(&h->w);
	buf_free(&h->chunk_head);
	free(h);
}

void
hreq_pool_free(struct http_src *s)
{
	while (s->hreq_pool != NULL) {
		struct hreq *h = s->hreq_pool;
		s->hreq_pool = h->w.next != NULL ? hreq_of(h->w.next) : NULL;
		wreq_free(&h->w);
		buf_free(&h->chunk_head);
		free(h);
	}
	s->n_hreq_pool = 0;
}

/* Frees h once neither its connection nor its message holds it. */
void
hreq_release(struct hreq *h)
{
	if (h->w.c == NULL && !h->in_pipeline)
		hreq_free(h);
}

/* on_release: the connection answered it whole (or is torn down). */
void
req_release(struct wreq *r)
{
	hreq_release(hreq_of(r));
}

/* on_gone: the connection let go of it unanswered; a request in the
 * pipeline is cancelled, and its outcome frees it (maybe inside this call). */
void
req_gone(struct wreq *r, int closed)
{
	struct hreq *h = hreq_of(r);
	h->client_gone = closed;
	if (!h->in_pipeline) {
		hreq_release(h);
		return;
	}
	if (closed && h->m != NULL)
		http_log(h->s, h, "the client closed the connection; cancelling");
	pipeline_cancel(h->s, h);
}

/* on_fail: a request that could not be read is answered with an error object. */
void
req_fail(struct wreq *r, int status, const char *code, const char *why)
{
	struct hreq *h = hreq_of(r);
	if (status == 503) {
		/* its body would pass max-inflight-bytes: shed, as at its head */
		pipeline_shed(h, "%s (%llu bytes held, max %llu)", why,
		    (unsigned long long)h->s->w.held, (unsigned long long)h->s->w.max_held);
		return;
	}
	http_log(h->s, h, "%s %s: %d %s", wire_peer(r), r->url.len ? r->url.p : "-", status, why);
	answer_error(h, status, NULL, code, "%s", why);
}

/* on_answer: counted by endpoint and status, and logged when access-log is on. */
void
req_answered(struct wire *w, struct wreq *r, int status)
{
	struct http_src *s = src_of(w);
	if (r == NULL) {
		metrics_count(s, R_OTHER, status); /* refused over max-connections */
		return;
	}
	struct hreq *h = hreq_of(r);
	metrics_count(s, (enum route)h->route, status);
}

/* on_log */
void
req_log(struct wire *w, const char *msg)
{
	porch_stage_log(src_of(w)->st, "%s", msg);
}

/* A line in the log about request h (NULL: about the source), with its
 * message's identity once it has one, else its request id. */
void
http_log(struct http_src *s, const struct hreq *h, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (h != NULL && h->m != NULL)
		porch_msg_log(s->st, h->m, "%s", buf);
	else if (h != NULL)
		porch_stage_log(s->st, "request-id %s: %s", h->w.id, buf);
	else
		porch_stage_log(s->st, "%s", buf);
}

/* ---- header lines ------------------------------------------------------- */

static char *
dup_n(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* Longest X-Session-Id kept; a longer one is cut. */
#define SESSION_MAX 256

/* Whether a Cache-Control value has the directive no-cache or no-store
 * (names in any case; a directive's value, quoted or not, is skipped). */
static int
cache_control_bypass(const char *v, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',' && v[i] != '=' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i - s == 8 && (strncasecmp(v + s, "no-cache", 8) == 0 ||
		    strncasecmp(v + s, "no-store", 8) == 0))
			return 1;
		for (int quoted = 0; i < n && (quoted || v[i] != ','); i++) {
			if (v[i] == '"')
				quoted = !quoted;
			else if (quoted && v[i] == '\\' && i + 1 < n)
				i++;
		}
	}
	return 0;
}

/* on_header: the lines the endpoints act on (X-Request-Id and Expect are
 * the framing layer's). */
void
req_header(struct wreq *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct hreq *h = hreq_of(r);
	if (nlen == 13 && strncasecmp(name, "authorization", 13) == 0) {
		free(h->auth);
		h->auth = dup_n(value, vlen);
	} else if (nlen == 13 && strncasecmp(name, "cache-control", 13) == 0) {
		h->no_cache |= cache_control_bypass(value, vlen);
	} else if (nlen == 12 && strncasecmp(name, "x-session-id", 12) == 0) {
		free(h->session);
		h->session = dup_n(value, vlen > SESSION_MAX ? SESSION_MAX : vlen);
	} else if (h->s->cors_on) {
		if (nlen == 6 && strncasecmp(name, "origin", 6) == 0) {
			cors_origin(h, value, vlen);
		} else if (nlen == 29 && strncasecmp(name, "access-control-request-method", 29) == 0) {
			h->preflight = 1;
		} else if (nlen == 30 &&
		    strncasecmp(name, "access-control-request-headers", 30) == 0) {
			free(h->cors_req_headers);
			h->cors_req_headers = dup_n(value, vlen);
		}
	}
}
