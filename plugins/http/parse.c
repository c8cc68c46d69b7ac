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
 * by its size as chunks arrive (413).  A body whose size is known is read
 * into a buffer of that size, made once its head passed; one that grows
 * (chunks) stops, 503, where it would take the bytes requests hold past
 * max-inflight-bytes; the body of a request refused at its head is read
 * and thrown away, not kept.  HTTP/1.0 and 1.1 are spoken; any
 * other version in the request line, or none (HTTP/0.9), is 505.
 *
 * What the layer above learns (wire.h): each header line (on_header), the
 * head (on_head, which may refuse the request before its body is read; a
 * client that sent "Expect: 100-continue" is told to go on only when it
 * did not), and the whole request (on_request, from conn.c).
 */
#include <string.h>
#include <strings.h>

#include "conn.h"

/* Counted for each header line besides its name and value: ": " and CRLF. */
#define HEADER_LINE_OVERHEAD 4

static void parse_header(struct conn *c, const char *name, size_t nlen, const char *value,
    size_t vlen);

static struct conn *
conn_of(http_parser *p)
{
	return p->data;
}

/* Adds n bytes to the head's size; sets 431 and stops the parser past the limit. */
static int
head_bytes(struct conn *c, size_t n)
{
	c->header_bytes += n;
	if (c->header_bytes > c->w->max_header) {
		c->err_status = 431;
		return -1;
	}
	return 0;
}

static int
on_message_begin(http_parser *p)
{
	struct conn *c = conn_of(p);
	c->fresh = 0;
	c->header_bytes = 0;
	c->in_value = 0;
	buf_reset(&c->hfield);
	buf_reset(&c->hvalue);
	c->cur = conn_req_new(c);
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
	struct conn *c = conn_of(p);
	c->cur->method = p->method; /* known by now: an answer to HEAD has no body */
	/* "GET /" and a line end, no version: HTTP/0.9, which the parser marks
	 * so as it hands over the last of the target */
	if (p->http_major == 0 && p->http_minor == 9) {
		c->err_status = 505;
		return -1;
	}
	/* a target longer than max-url-size, or than the whole head may be */
	if (c->cur->url.len + len > c->w->max_url ||
	    c->header_bytes + len > c->w->max_header) {
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
header_done(struct conn *c)
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
	struct conn *c = conn_of(p);
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
	struct conn *c = conn_of(p);
	c->in_value = 1;
	if (head_bytes(c, len) != 0)
		return -1;
	if (buf_add(&c->hvalue, at, len) != 0) {
		c->err_status = 500;
		return -1;
	}
	return 0;
}

/*
 * The head of a request has arrived: the upper layer checks it now, so a
 * request that will be refused is refused before its body is read; a
 * client that waits for "100 Continue" gets it only when the request passed.
 */
static void
head_done(struct conn *c, struct wreq *r)
{
	int expect = r->expect_continue && r->http_minor >= 1;
	/* refused, a client that waits for "100 Continue" may never send the
	 * body it announced: the connection cannot carry another request, and
	 * the answer says so */
	r->close = expect;
	c->w->ops->on_head(r);
	if (r->status != 0) {
		if (expect)
			c->closing = 1;
		return;
	}
	r->close = 0;
	/* its size known: one buffer of it, counted from now, so that the
	 * heads that come next see it (the upper layer checked there is room) */
	if (r->content_length > 0 && buf_reserve(&r->body, (size_t)r->content_length) == 0)
		wreq_count(r);
	if (expect && c->head == r && r->out.len == 0) {
		buf_str(&r->out, "HTTP/1.1 100 Continue\r\n\r\n");
		wreq_count(r);
	}
	if (r->out.len > 0)
		conn_kick(c);
}

static int
on_headers_complete(http_parser *p)
{
	struct conn *c = conn_of(p);
	struct wreq *r = c->cur;
	if (c->in_value)
		header_done(c);
	c->in_value = 0;
	r->method = p->method;
	/* HTTP/1 only: the parser takes any digit.digit.  A later 1.x is read
	 * as 1.1, the highest minor porch speaks (RFC 9112, 2.3) */
	if (p->http_major != 1) {
		c->err_status = 505;
		return -1;
	}
	r->http_minor = p->http_minor > 1 ? 1 : p->http_minor;
	r->keep_alive = http_should_keep_alive(p);
	/* a body announced larger than allowed is refused before it is read */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->w->max_body) {
		c->err_status = 413;
		return -1;
	}
	r->content_length = (p->flags & F_CONTENTLENGTH) ? (long long)p->content_length : -1;
	c->phase = PH_BODY;
	head_done(c, r);
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	struct wreq *r = c->cur;
	struct wire *w = c->w;
	if (r->body.len + len > w->max_body) {
		c->err_status = 413;
		return -1;
	}
	if (r->status != 0)
		return 0; /* answered at its head: nobody reads its body */
	/* growing past its buffer (no Content-Length, or more than it said)
	 * doubles it, at most: refused if that would pass max-inflight-bytes */
	if (w->max_held > 0 && r->body.cap - r->body.len <= len) {
		size_t more = r->body.cap > len ? r->body.cap : len + 1;
		if (w->held + more > w->max_held) {
			c->err_status = 503;
			return -1;
		}
	}
	if (buf_add(&r->body, at, len) != 0) {
		c->err_status = 500;
		return -1;
	}
	wreq_count(r);
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct conn *c = conn_of(p);
	struct wreq *r = c->cur;
	if (r != NULL && !http_should_keep_alive(p))
		r->keep_alive = 0;
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

/* An X-Request-Id we pass on as it is: visible ASCII without quotes or
 * backslashes (it goes into headers, JSON and log lines), 1 to WIRE_ID_MAX. */
static int
id_valid(const char *v, size_t n)
{
	if (n == 0 || n > WIRE_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			return 0;
	}
	return 1;
}

/* A whole header line: the ones framing needs are acted on here, and every
 * one goes up (on_header). */
static void
parse_header(struct conn *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct wreq *r = c->cur;
	/* values arrive with their surrounding whitespace removed by the parser,
	 * except trailing blanks in lenient cases */
	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		vlen--;
	if (nlen == 12 && strncasecmp(name, "x-request-id", 12) == 0) {
		if (id_valid(value, vlen)) {
			memcpy(r->id, value, vlen);
			r->id[vlen] = '\0';
		}
	} else if (nlen == 6 && strncasecmp(name, "expect", 6) == 0) {
		r->expect_continue = vlen == 12 && strncasecmp(value, "100-continue", 12) == 0;
	}
	c->w->ops->on_header(r, name, nlen, value, vlen);
}
