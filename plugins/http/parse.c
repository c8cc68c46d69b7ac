/*
 * parse.c -- HTTP/1.1 requests read with http-parser (nodejs/http-parser,
 * Debian's libhttp-parser-dev): a callback parser that does no I/O, so the
 * sockets stay ours, on the libev loop.
 *
 * The parser is paused at the end of every request, so requests pipelined
 * on a connection are taken one at a time, in order, and a connection stops
 * being parsed (and read) while it has max-pipeline answers outstanding.
 * Limits are checked as bytes arrive: the request-target against
 * max-url-size (414), the head against max-header-size (431), the body
 * against max-body, by its Content-Length before a byte of it is read and
 * by its size as chunks arrive (413).  HTTP/1.0 and 1.1 are spoken; any
 * other version in the request line, or none (HTTP/0.9), is 505.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* Counted for each header line besides its name and value: ": " and CRLF. */
#define HEADER_LINE_OVERHEAD 4

static struct hconn *
conn_of(http_parser *p)
{
	return p->data;
}

/* Adds n bytes to the head's size; sets 431 and stops the parser past the limit. */
static int
head_bytes(struct hconn *c, size_t n)
{
	c->header_bytes += n;
	if (c->header_bytes > c->s->max_header) {
		c->err_status = 431;
		return -1;
	}
	return 0;
}

static int
on_message_begin(http_parser *p)
{
	struct hconn *c = conn_of(p);
	c->fresh = 0;
	c->header_bytes = 0;
	c->in_value = 0;
	buf_reset(&c->hfield);
	buf_reset(&c->hvalue);
	c->cur = hreq_new(c);
	if (c->cur == NULL) {
		c->err_status = 500;
		return -1;
	}
	c->phase = PH_HEADERS;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct hconn *c = conn_of(p);
	c->cur->method = p->method; /* known by now: an answer to HEAD has no body */
	/* "GET /" and a line end, no version: HTTP/0.9, which the parser marks
	 * so as it hands over the last of the target */
	if (p->http_major == 0 && p->http_minor == 9) {
		c->err_status = 505;
		return -1;
	}
	/* a target longer than max-url-size, or than the whole head may be */
	if (c->cur->url.len + len > c->s->max_url ||
	    c->header_bytes + len > c->s->max_header) {
		c->err_status = 414;
		return -1;
	}
	c->header_bytes += len;
	if (buf_add(&c->cur->url, at, len) != 0) {
		c->err_status = 500;
		return -1;
	}
	return 0;
}

/* A whole header line was read: act on the ones we know. */
static void
header_done(struct hconn *c)
{
	if (c->hfield.len == 0)
		return;
	parse_header(c, c->hfield.p, c->hfield.len, c->hvalue.len ? c->hvalue.p : "",
	    c->hvalue.len);
	buf_reset(&c->hfield);
	buf_reset(&c->hvalue);
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct hconn *c = conn_of(p);
	if (c->in_value) {
		header_done(c);
		c->in_value = 0;
	}
	if (head_bytes(c, len + (c->hfield.len == 0 ? HEADER_LINE_OVERHEAD : 0)) != 0)
		return -1;
	if (buf_add(&c->hfield, at, len) != 0) {
		c->err_status = 500;
		return -1;
	}
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct hconn *c = conn_of(p);
	c->in_value = 1;
	if (head_bytes(c, len) != 0)
		return -1;
	if (buf_add(&c->hvalue, at, len) != 0) {
		c->err_status = 500;
		return -1;
	}
	return 0;
}

static int
on_headers_complete(http_parser *p)
{
	struct hconn *c = conn_of(p);
	struct hreq *h = c->cur;
	if (c->in_value)
		header_done(c);
	c->in_value = 0;
	h->method = p->method;
	/* HTTP/1 only: the parser takes any digit.digit.  A later 1.x is read
	 * as 1.1, the highest minor porch speaks (RFC 9112, 2.3) */
	if (p->http_major != 1) {
		c->err_status = 505;
		return -1;
	}
	h->http_minor = p->http_minor > 1 ? 1 : p->http_minor;
	h->keep_alive = http_should_keep_alive(p);
	/* a body announced larger than allowed is refused before it is read */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->s->max_body) {
		c->err_status = 413;
		return -1;
	}
	c->phase = PH_BODY;
	route_headers_done(c, h);
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct hconn *c = conn_of(p);
	struct hreq *h = c->cur;
	if (h->body.len + len > c->s->max_body) {
		c->err_status = 413;
		return -1;
	}
	if (buf_add(&h->body, at, len) != 0) {
		c->err_status = 500;
		return -1;
	}
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct hconn *c = conn_of(p);
	struct hreq *h = c->cur;
	if (h != NULL && !http_should_keep_alive(p))
		h->keep_alive = 0;
	/* one request at a time: conn_parse dispatches it, then goes on */
	http_parser_pause(p, 1);
	return 0;
}

const http_parser_settings parse_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

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

/* An X-Request-Id we pass on as it is: visible ASCII without quotes or
 * backslashes (it goes into headers, JSON and log lines), 1 to RID_MAX. */
static int
rid_valid(const char *v, size_t n)
{
	if (n == 0 || n > RID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			return 0;
	}
	return 1;
}

/* Longest X-Session-Id kept; a longer one is cut. */
#define SESSION_MAX 256

void
parse_header(struct hconn *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct hreq *h = c->cur;
	/* values arrive with their surrounding whitespace removed by the parser,
	 * except trailing blanks in lenient cases */
	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		vlen--;
	if (nlen == 13 && strncasecmp(name, "authorization", 13) == 0) {
		free(h->auth);
		h->auth = dup_n(value, vlen);
	} else if (nlen == 12 && strncasecmp(name, "x-request-id", 12) == 0) {
		if (rid_valid(value, vlen)) {
			memcpy(h->rid, value, vlen);
			h->rid[vlen] = '\0';
		}
	} else if (nlen == 12 && strncasecmp(name, "x-session-id", 12) == 0) {
		free(h->session);
		h->session = dup_n(value, vlen > SESSION_MAX ? SESSION_MAX : vlen);
	} else if (nlen == 6 && strncasecmp(name, "expect", 6) == 0) {
		h->expect_continue = vlen == 12 && strncasecmp(value, "100-continue", 12) == 0;
	} else if (c->s->cors_on) {
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
