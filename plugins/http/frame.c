/*
 * frame.c -- answers on the wire: the status line and headers, the body as
 * it is (Content-Length) or in chunks, and its end (wire.h).
 *
 * Every answer is appended to its request's own buffer; the connection
 * writes the buffers in request order (conn.c), so pipelined requests are
 * answered in the order they came whatever order they finish in.
 */
#include "conn.h"

/* The reason phrase of a status. */
const char *
status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/*
 * Appends the status line and headers (see wire.h).  An answer to HEAD is
 * this head alone, with GET's headers: it is complete here, and what a body
 * adds after it is not sent (conn.c stops at out_cut).  Written without
 * printf: this runs once per request.
 */
void
wire_head(struct wreq *r, int status, const char *ctype, long long length, const char *extra)
{
	struct conn *c = r->c;
	if (r->status != 0)
		return; /* one head per answer */
	if (c != NULL && (c->closing || r->wire->draining))
		r->close = 1;
	if (!r->keep_alive)
		r->close = 1;
	if (length < 0) {
		if (r->http_minor >= 1)
			r->chunked = 1;
		else if (r->method != HTTP_HEAD)
			r->close = 1;
	}
	r->status = status;
	struct buf *b = &r->out;
	if (r->http_minor >= 1)
		buf_lit(b, "HTTP/1.1 ");
	else
		buf_lit(b, "HTTP/1.0 ");
	buf_i64(b, status);
	buf_lit(b, " ");
	buf_str(b, status_text(status));
	buf_lit(b, "\r\n");
	if (ctype != NULL) {
		buf_lit(b, "Content-Type: ");
		buf_str(b, ctype);
		buf_lit(b, "\r\n");
	}
	if (length >= 0 && status != 204) {
		buf_lit(b, "Content-Length: ");
		buf_i64(b, length);
		buf_lit(b, "\r\n");
	} else if (r->chunked) {
		buf_lit(b, "Transfer-Encoding: chunked\r\n");
	}
	buf_lit(b, "X-Request-Id: ");
	buf_str(b, r->id);
	buf_lit(b, "\r\n");
	if (extra != NULL)
		buf_str(b, extra);
	if (r->headers != NULL)
		buf_str(b, r->headers);
	if (r->close)
		buf_lit(b, "Connection: close\r\n");
	else if (r->http_minor == 0)
		buf_lit(b, "Connection: keep-alive\r\n");
	buf_lit(b, "\r\n");
	if (r->method == HTTP_HEAD) {
		r->out_cut = b->len;
		r->complete = 1;
	}
	wreq_count(r);
	r->wire->ops->on_answer(r->wire, r, status);
	conn_kick(c);
}

/* A piece of the body: framed as a chunk when the body is chunked. */
void
wire_body(struct wreq *r, const void *p, size_t len)
{
	if (len == 0)
		return;
	if (r->chunked) {
		buf_hex(&r->out, len);
		buf_lit(&r->out, "\r\n");
	}
	buf_add(&r->out, p, len);
	if (r->chunked)
		buf_lit(&r->out, "\r\n");
	wreq_count(r);
	conn_kick(r->c);
}

/* The answer is whole: the chunked body's last chunk. */
void
wire_end(struct wreq *r)
{
	if (r->complete)
		return;
	if (r->chunked) {
		buf_lit(&r->out, "0\r\n\r\n");
		wreq_count(r);
	}
	r->complete = 1;
	conn_kick(r->c);
}

/* A whole answer, for one that was not begun. */
void
wire_answer(struct wreq *r, int status, const char *ctype, const char *body, size_t len,
    const char *extra)
{
	if (r->status != 0)
		return;
	wire_head(r, status, ctype, (long long)len, extra);
	/* its size known: the buffer made for it, not the next power of two
	 * (it counts in the bytes requests hold) */
	buf_reserve(&r->out, len);
	buf_add(&r->out, body, len);
	wreq_count(r);
	wire_end(r);
}
