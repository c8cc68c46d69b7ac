/*
 * answer.c -- writing answers: status lines and headers, whole and chunked
 * bodies, OpenAI-style error objects, and how outcomes become statuses.
 *
 * Every answer is appended to its request's own buffer; the connection
 * writes the buffers in request order (conn.c), so pipelined requests are
 * answered in the order they came whatever order they finish in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* ---- buffers ------------------------------------------------------------ */

int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	/* always room for a NUL after the bytes: a buffer is also a string */
	if (b->cap - b->len <= n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len <= n) {
			if (cap > (size_t)-1 / 2)
				return -1;
			cap *= 2;
		}
		char *q = realloc(b->p, cap);
		if (q == NULL)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return buf_add(b, small, (size_t)n);
	char *big = malloc((size_t)n + 1);
	if (big == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = buf_add(b, big, (size_t)n);
	free(big);
	return rc;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- outcomes and statuses ---------------------------------------------- */

enum porch_outcome
outcome_of(enum porch_error e)
{
	switch (e) {
	case PORCH_ERR_NONE:
		return PORCH_COMPLETED;
	case PORCH_ERR_DEADLINE:
		return PORCH_EXPIRED;
	case PORCH_ERR_FULL:
	case PORCH_ERR_ADMISSION:
		return PORCH_SHED;
	default:
		return PORCH_FAILED;
	}
}

/*
 * The status of an answer:
 *   completed                        200
 *   failed bad-request               400
 *   failed upstream, transport       502 (the model server failed us)
 *   failed timeout                   504 (it did not answer in time)
 *   failed internal, unrouted        500
 *   failed cancelled                 499 (the client went away; not sent)
 *   shed (full, admission)           503 + Retry-After
 *   expired (deadline)               504
 */
int
status_of(enum porch_outcome o, enum porch_error e, int *retry_after)
{
	*retry_after = 0;
	switch (o) {
	case PORCH_COMPLETED:
		return 200;
	case PORCH_SHED:
		*retry_after = 1;
		return 503;
	case PORCH_EXPIRED:
		return 504;
	case PORCH_FAILED:
		break;
	}
	switch (e) {
	case PORCH_ERR_BAD_REQUEST:
		return 400;
	case PORCH_ERR_UPSTREAM:
	case PORCH_ERR_TRANSPORT:
		return 502;
	case PORCH_ERR_TIMEOUT:
	case PORCH_ERR_DEADLINE:
		return 504;
	case PORCH_ERR_CANCELLED:
		return 499;
	case PORCH_ERR_FULL:
	case PORCH_ERR_ADMISSION:
		*retry_after = 1;
		return 503;
	default:
		return 500;
	}
}

const char *
status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return "Unknown";
}

const char *
error_type_of(int status)
{
	switch (status) {
	case 401:
		return "authentication_error";
	case 429:
		return "rate_limit_error";
	case 503:
		return "overloaded_error";
	case 502:
	case 504:
		return "upstream_error";
	}
	return status >= 500 ? "server_error" : "invalid_request_error";
}

/* ---- heads and bodies --------------------------------------------------- */

/*
 * Appends the status line and headers.  length >= 0 gives Content-Length;
 * -1 makes the body chunked (HTTP/1.1) or closes the connection after it
 * (HTTP/1.0).  extra is more header lines, each ending in CRLF, or NULL.
 */
void
answer_head(struct hreq *h, int status, const char *ctype, long long length, const char *extra)
{
	struct hconn *c = h->c;
	if (h->status != 0)
		return; /* one head per answer */
	if (c != NULL && (c->closing || h->s->draining))
		h->close = 1;
	if (!h->keep_alive)
		h->close = 1;
	if (length < 0) {
		if (h->http_minor >= 1)
			h->chunked = 1;
		else
			h->close = 1;
	}
	h->status = status;
	struct buf *b = &h->out;
	buf_printf(b, "HTTP/1.%d %d %s\r\n", h->http_minor >= 1 ? 1 : 0, status,
	    status_text(status));
	if (ctype != NULL)
		buf_printf(b, "Content-Type: %s\r\n", ctype);
	if (length >= 0)
		buf_printf(b, "Content-Length: %lld\r\n", length);
	else if (h->chunked)
		buf_str(b, "Transfer-Encoding: chunked\r\n");
	buf_printf(b, "X-Request-Id: %s\r\n", h->rid);
	if (extra != NULL)
		buf_str(b, extra);
	if (h->close)
		buf_str(b, "Connection: close\r\n");
	else if (h->http_minor == 0)
		buf_str(b, "Connection: keep-alive\r\n");
	buf_str(b, "\r\n");
	metrics_answer(h);
	if (h->s->access_log)
		http_log(h->s, h, "%s %s %s: %d", c != NULL ? c->peer : "-",
		    http_method_str((enum http_method)h->method),
		    h->url.len ? h->url.p : "-", status);
	if (c != NULL)
		conn_kick(c);
}

/* A piece of the body: framed as a chunk when the body is chunked. */
void
answer_body(struct hreq *h, const void *p, size_t len)
{
	if (len == 0)
		return;
	if (h->chunked)
		buf_printf(&h->out, "%zx\r\n", len);
	buf_add(&h->out, p, len);
	if (h->chunked)
		buf_add(&h->out, "\r\n", 2);
	if (h->c != NULL)
		conn_kick(h->c);
}

void
answer_end(struct hreq *h)
{
	if (h->complete)
		return;
	if (h->chunked)
		buf_add(&h->out, "0\r\n\r\n", 5);
	h->complete = 1;
	if (h->c != NULL)
		conn_kick(h->c);
}

void
answer_simple(struct hreq *h, int status, const char *ctype, const char *body, size_t len,
    const char *extra)
{
	if (h->status != 0)
		return;
	answer_head(h, status, ctype, (long long)len, extra);
	buf_add(&h->out, body, len);
	answer_end(h);
}

char *
json_text(json_t *j)
{
	if (j == NULL)
		return NULL;
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	return s;
}

void
answer_json(struct hreq *h, int status, json_t *j, const char *extra)
{
	char *s = json_text(j);
	if (s == NULL) {
		static const char oom[] = "{\"error\":{\"message\":\"out of memory\","
		    "\"type\":\"server_error\",\"param\":null,\"code\":\"internal\"}}\n";
		answer_simple(h, 500, "application/json", oom, sizeof oom - 1, NULL);
		return;
	}
	size_t n = strlen(s);
	s[n] = '\n'; /* one line: json_dumps left the room of its NUL */
	answer_simple(h, status, "application/json", s, n + 1, extra);
	free(s);
}

json_t *
error_object(const char *message, const char *type, const char *param, const char *code)
{
	json_t *e = json_object();
	json_object_set_new(e, "message", json_string(message));
	json_object_set_new(e, "type", json_string(type));
	json_object_set_new(e, "param", param ? json_string(param) : json_null());
	json_object_set_new(e, "code", code ? json_string(code) : json_null());
	json_t *root = json_object();
	json_object_set_new(root, "error", e);
	return root;
}

void
answer_error_extra(struct hreq *h, int status, const char *param, const char *code,
    const char *extra, const char *message)
{
	json_t *j = error_object(message, error_type_of(status), param, code);
	answer_json(h, status, j, extra);
}

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}}. */
void
answer_error(struct hreq *h, int status, const char *param, const char *code,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char extra[64] = "";
	if (status == 503)
		snprintf(extra, sizeof extra, "Retry-After: %lld\r\n",
		    (long long)h->s->retry_after_s);
	answer_error_extra(h, status, param, code, extra[0] ? extra : NULL, msg);
}
