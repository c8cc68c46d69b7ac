/* reply.c -- sink stage: writes each answer back on the HTTP connection its request came from. */
#include <porch/plugin.h>

#include "origin.h"

/*
 * The sink owns no socket: the http source does, and hands each request a
 * small table of functions (origin.h) that this stage calls.  A piece of a
 * streamed answer goes out at once through chunk(); the message's arrival
 * ends the answer through finish(), with its text or its error.
 */
static void
reply_chunk(porch_stage *st, porch_msg *m, const char *text, size_t len)
{
	(void)st;
	struct http_origin *o = http_origin_of(m);
	if (o != NULL && o->ops->chunk != NULL)
		o->ops->chunk(o, m, text, len);
}

static void
reply_piece(porch_stage *st, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	(void)st;
	struct http_origin *o = http_origin_of(m);
	if (o == NULL)
		return;
	if (o->ops->version >= 2 && o->ops->piece != NULL)
		o->ops->piece(o, m, text, len, pc);
	else if (o->ops->chunk != NULL && len > 0)
		o->ops->chunk(o, m, text, len);
}

static void
reply_process(porch_stage *st, porch_msg *m)
{
	struct http_origin *o = http_origin_of(m);
	if (o != NULL && o->ops->finish != NULL)
		o->ops->finish(o, m);
	/* a failed message (from an error port) ends as failed: it carries its error */
	porch_done(st, m);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "reply",
	.summary = "sink: writes each answer back on the HTTP connection its request came from",
	.outputs = NULL,
	.process = reply_process,
	.chunk = reply_chunk,
	.piece = reply_piece,
	.description =
	    "The end of a pipeline fed by an http source. Each message that arrives is "
	    "answered on the connection its request came from: a completed one with its "
	    "text, in the shape its endpoint asks for (a chat.completion or text_completion "
	    "object, the end of a server-sent event stream or of /generate's "
	    "newline-delimited JSON), a failed one (routed here from an error port, for "
	    "example inference:error -> reply) with the status its error maps to (400 "
	    "bad-request, the model server's own 4xx, 502 upstream or transport, 504 "
	    "timeout or deadline, 500 internal; see http). Pieces of a streamed answer "
	    "(porch_stream and porch_stream_piece, from inference through stages that pass "
	    "them on) are written as they arrive, each as one event or line with its "
	    "extras (tool call deltas, logprobs), before the message itself ends the "
	    "stream.\n\n"
	    "reply owns no socket. The http source puts, as each request's origin data, a "
	    "pointer to an object whose first member points to a constant table of "
	    "functions (chunk and finish, with a magic number and a version) that reply "
	    "calls; the object lives until the source's outcome callback, and is detached "
	    "from its connection if the client leaves first, so an answer is never written "
	    "to a closed or reused connection. A message from another source (no such "
	    "table) is ended without an answer. Answers are written in request order per "
	    "connection by the source, whatever order the messages arrive in.",
};
