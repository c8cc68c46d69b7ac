/*
 * streamstage.h -- the streamed side of a text filter stage (post, redact):
 * one filter state per message, kept as the message's local pointer and
 * pooled for reuse, fed by the chunk callback, ended when the message
 * arrives.  Unlike the rest of plugins/text/, it uses the plugin API; the
 * filters it drives (poststream, redact_scan) do not.
 */
#ifndef PORCH_TEXT_STREAMSTAGE_H
#define PORCH_TEXT_STREAMSTAGE_H

#include <stddef.h>

#include <porch/plugin.h>

#include "tbuf.h"

/*
 * A filter, on its settings (cfg) and one stream's state (s, size bytes;
 * all zero is a new stream).
 */
struct streamstage_ops {
	size_t size;
	/* Feeds the next piece, appending what is decided to out.  0, or -1:
	 * no memory (the stream is then broken). */
	int (*feed)(const void *cfg, void *s, const char *in, size_t len, struct tbuf *out);
	/* The text is complete: appends the rest to out.  0 or -1 as above. */
	int (*finish)(const void *cfg, void *s, struct tbuf *out);
	/* Makes s a new stream again, keeping its memory. */
	void (*reset)(void *s);
	/* Frees what s holds. */
	void (*clear)(void *s);
};

struct streamstage_local;

/* A stage's streams, inside the stage's data; see streamstage_init. */
struct streamstage {
	const struct streamstage_ops *ops;
	const void *cfg;          /* passed to feed and finish */
	struct tbuf *out;         /* the stage's buffer, borrowed for each call */
	struct streamstage_local *pool;
	size_t n_pool;
};

/*
 * Sets up ss for the filter ops with settings cfg, passing pieces on
 * through out; cfg and out stay the caller's and must outlive ss.  An
 * all-zero ss may be freed with streamstage_free without this.
 */
void streamstage_init(struct streamstage *ss, const struct streamstage_ops *ops,
    const void *cfg, struct tbuf *out);

/*
 * The chunk callback: feeds a piece of m's answer to m's stream (made on
 * the first piece) and passes on with porch_stream what comes out.  Stops
 * streaming m, and logs why, when memory runs out; stops quietly when
 * nobody downstream takes pieces.
 */
void streamstage_chunk(struct streamstage *ss, porch_stage *st, porch_msg *m,
    const char *text, size_t len);
/* As streamstage_chunk, with the piece's extras passed on (pc may be NULL). */
void streamstage_piece(struct streamstage *ss, porch_stage *st, porch_msg *m,
    const char *text, size_t len, const struct porch_piece *pc);

/* The forget callback: m ended with local, its stream, still set. */
void streamstage_forget(struct streamstage *ss, void *local);

/*
 * For process(), before it handles m: if m was streamed, its stream ends
 * here; passes on with porch_stream what was held back, and drops m's
 * local pointer.
 */
void streamstage_end(struct streamstage *ss, porch_stage *st, porch_msg *m);

/* Frees the pooled streams (the streams of messages still held are freed
 * through forget). */
void streamstage_free(struct streamstage *ss);

#endif
