/*
 * origin.h -- how the reply sink reaches a request made by the http source.
 *
 * The http source and the reply sink are two plugins (two .so files), yet
 * only the source owns connections.  Every request the source makes carries,
 * as its origin data (porch_msg_origin_data), a pointer to a struct whose
 * first member is a `struct http_origin`: a pointer to a constant table of
 * functions, defined in the source.  The reply sink calls them and never
 * sees a socket:
 *
 *   chunk   a streamed piece of the answer (the sink's chunk callback);
 *   piece   the same with its extras (tool calls, logprobs ...), version 2;
 *   finish  the message arrived at the sink: the answer is complete (its
 *           text) or failed (its error); the source writes it out.
 *
 * Lifetime: the object behind the origin pointer lives until the source's
 * outcome callback for the message has run, so the sink may call into it
 * while it holds the message or receives its pieces.  When the client's
 * connection closes first, the source detaches the object from it (and
 * cancels the message); the functions then write nothing.  Nothing is ever
 * written to a freed connection.
 *
 * A message from another source has other origin data (or none): the magic
 * number tells them apart, and reply then ends the message without an answer.
 */
#ifndef PORCH_HTTP_ORIGIN_H
#define PORCH_HTTP_ORIGIN_H

#include <stddef.h>
#include <stdint.h>

#include <porch/plugin.h>

#define HTTP_ORIGIN_MAGIC   0x68747470u /* "http" */
#define HTTP_ORIGIN_VERSION 2u

struct http_origin;

struct http_origin_ops {
	uint32_t magic;   /* HTTP_ORIGIN_MAGIC */
	uint32_t version; /* HTTP_ORIGIN_VERSION; grows when functions are appended */
	void (*chunk)(struct http_origin *o, porch_msg *m, const char *text, size_t len);
	void (*finish)(struct http_origin *o, porch_msg *m);
	/* version 2: a streamed piece with its extras (pc may be NULL) */
	void (*piece)(struct http_origin *o, porch_msg *m, const char *text, size_t len,
	    const struct porch_piece *pc);
};

struct http_origin {
	const struct http_origin_ops *ops;
};

/* The http origin of m, or NULL if m did not come from an http source. */
static inline struct http_origin *
http_origin_of(const porch_msg *m)
{
	struct http_origin *o = porch_msg_origin_data(m);
	if (o == NULL || o->ops == NULL || o->ops->magic != HTTP_ORIGIN_MAGIC ||
	    o->ops->version < 1)
		return NULL;
	return o;
}

#endif /* PORCH_HTTP_ORIGIN_H */
