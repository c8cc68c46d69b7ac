/* streamstage.c -- a text filter stage's streams: per-message state, pooled, fed by chunk. */
#include <stdlib.h>

#include "streamstage.h"

/* Stream states kept for reuse rather than freed. */
#define POOL_MAX 64

/* One message's stream, kept as its local pointer. */
struct streamstage_local {
	struct streamstage_local *next; /* in the pool */
	int done;                       /* nobody takes the stream, or it broke */
	max_align_t s[];                /* the filter's state, ops->size bytes */
};

void
streamstage_init(struct streamstage *ss, const struct streamstage_ops *ops,
    const void *cfg, struct tbuf *out)
{
	ss->ops = ops;
	ss->cfg = cfg;
	ss->out = out;
	ss->pool = NULL;
	ss->n_pool = 0;
}

static void
streamstage_put(struct streamstage *ss, struct streamstage_local *l)
{
	if (ss->n_pool >= POOL_MAX) {
		ss->ops->clear(l->s);
		free(l);
		return;
	}
	ss->ops->reset(l->s);
	l->done = 0;
	l->next = ss->pool;
	ss->pool = l;
	ss->n_pool++;
}

void
streamstage_chunk(struct streamstage *ss, porch_stage *st, porch_msg *m,
    const char *text, size_t len)
{
	streamstage_piece(ss, st, m, text, len, NULL);
}

/*
 * A piece's extras (tool calls, logprobs) go on at once, with whatever text
 * the transform let out of this piece: they need no transforming, and the
 * text held back (a possible stop sequence) follows with a later piece.
 */
void
streamstage_piece(struct streamstage *ss, porch_stage *st, porch_msg *m,
    const char *text, size_t len, const struct porch_piece *pc)
{
	struct streamstage_local *l = porch_msg_local(st, m);

	if (l == NULL) {
		if ((l = ss->pool) != NULL) {
			ss->pool = l->next;
			ss->n_pool--;
		} else if ((l = calloc(1, sizeof *l + ss->ops->size)) == NULL) {
			porch_stage_log(st, "request %llu: out of memory: not streaming it",
			    (unsigned long long)porch_msg_id(m));
			return;
		}
		porch_msg_set_local(st, m, l);
	}
	if (l->done)
		return;
	ss->out->len = 0;
	if (len > 0 && ss->ops->feed(ss->cfg, l->s, text, len, ss->out) != 0) {
		/* nothing undecided went out: the whole text still comes with the message */
		porch_stage_log(st, "request %llu: out of memory: not streaming it",
		    (unsigned long long)porch_msg_id(m));
		l->done = 1;
		return;
	}
	if ((ss->out->len > 0 || pc != NULL) &&
	    porch_stream_piece(st, m, ss->out->p, ss->out->len, pc) != 0)
		l->done = 1; /* nobody downstream takes pieces */
}

void
streamstage_forget(struct streamstage *ss, void *local)
{
	streamstage_put(ss, local);
}

void
streamstage_end(struct streamstage *ss, porch_stage *st, porch_msg *m)
{
	struct streamstage_local *l = porch_msg_local(st, m);

	if (l == NULL)
		return;
	/* the stream ends here: pass on what was held back, decided now */
	porch_msg_set_local(st, m, NULL);
	ss->out->len = 0;
	if (!l->done && ss->ops->finish(ss->cfg, l->s, ss->out) == 0 && ss->out->len > 0)
		(void)porch_stream(st, m, ss->out->p, ss->out->len);
	streamstage_put(ss, l);
}

void
streamstage_free(struct streamstage *ss)
{
	while (ss->pool != NULL) {
		struct streamstage_local *l = ss->pool;
		ss->pool = l->next;
		ss->ops->clear(l->s);
		free(l);
	}
	ss->n_pool = 0;
}
