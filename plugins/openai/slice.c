/*
 * slice.c -- a long text of an answer handed to the stage a slice at a
 * time, so that one request cannot hold the loop.
 *
 * Why: the stage's piece callback does work in proportion to the text
 * (inference keeps it, the http source escapes it as JSON and writes it).
 * A 10 MB server-sent event or whole answer handed on in one call held the
 * loop ~100 ms, and every other connection (a health probe) waited.  Here
 * such a text goes OAI_SLICE bytes at a time, one slice per loop
 * iteration, from a timer of 0 s (timers run every iteration, whatever
 * else is busy); a JSON string as written is unescaped a slice at a time
 * too.  The slices put together are the text, byte for byte: they are cut
 * between whole characters (js_unescape_part, js_utf8_cut).
 *
 * Order: what comes after the text must reach the stage after it.  While
 * slices are out, the transport stops reading (its pause), and the bytes
 * already read (the rest of a receive buffer) wait in cl->sl.later, as
 * does the transfer's end (oai_call_end records it); both are taken up
 * once the last slice is out, which may start another text.
 *
 * Reentrancy: the stage may cancel the call from its piece callback, or
 * at any time between slices.  On the stack (sl.busy), a cancel only marks
 * cl->cancelled; the code here stops the transfer once porch_call_piece
 * has returned.
 */
#include <stdlib.h>
#include <string.h>

#include "call.h"

/* Drops the text's memory, what waits and the timer; the flags are reset. */
void
oai_slices_clear(struct oai_call *cl)
{
	struct oai_slices *sl = &cl->sl;
	ev_timer_stop(cl->o->loop, &sl->timer);
	json_decref(sl->root);
	sl->root = NULL;
	free(sl->own);
	sl->own = NULL;
	free(sl->buf);
	sl->buf = NULL;
	js_buf_free(&sl->later);
	sl->later_off = 0;
	sl->p = sl->end = NULL;
	sl->on = sl->raw = sl->busy = sl->end_pending = sl->succeed = 0;
}

/* The next slice: into sl->buf when unescaped, else where it lies. */
static size_t
oai_slice_next(struct oai_slices *sl, const char **out)
{
	if (sl->raw) {
		*out = sl->buf;
		return js_unescape_part(&sl->p, sl->end, sl->buf, OAI_SLICE);
	}
	size_t n = (size_t)(sl->end - sl->p);
	if (n > OAI_SLICE)
		n = js_utf8_cut(sl->p, OAI_SLICE);
	*out = sl->p;
	sl->p += n;
	return n;
}

/* The stage cancelled cl from inside code of ours: stop the transfer. */
static void
oai_slices_stop(struct oai_call *cl)
{
	oai_slices_clear(cl);
	if (cl->state == OAI_RUNNING)
		cl->o->io->cancel(cl); /* puts cl */
	else
		oai_call_put(cl);
}

void
oai_slices_cancel(struct oai_call *cl)
{
	if (cl->sl.busy) {
		cl->cancelled = 1; /* stopped once porch_call_piece returns */
		return;
	}
	oai_slices_stop(cl);
}

int
oai_hand(struct oai_call *cl, const char *text, size_t len, int raw, int copy,
    json_t **root, const struct porch_piece *pc)
{
	struct oai_slices *sl = &cl->sl;
	if (!raw && len <= OAI_SLICE) {
		porch_call_piece(cl->c, text, len, pc); /* may cancel cl */
		return 0;
	}
	if (raw && sl->buf == NULL && (sl->buf = malloc(OAI_SLICE)) == NULL) {
		oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the answer");
		return 0;
	}
	const char *out;
	sl->p = text;
	sl->end = text + len;
	sl->raw = raw != 0;
	size_t n = oai_slice_next(sl, &out);
	/* the first slice as any piece: a cancel from it is the transport's
	 * to handle, as for a short text */
	porch_call_piece(cl->c, out, n, pc);
	if (cl->cancelled || cl->c == NULL || sl->p == sl->end)
		return 0;
	if (copy) {
		size_t left = (size_t)(sl->end - sl->p);
		if ((sl->own = malloc(left)) == NULL) {
			oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the answer");
			return 0;
		}
		memcpy(sl->own, sl->p, left);
		sl->p = sl->own;
		sl->end = sl->own + left;
	}
	if (root != NULL) {
		sl->root = *root;
		*root = NULL;
	}
	sl->on = 1;
	ev_timer_set(&sl->timer, 0., 0.);
	ev_timer_start(cl->o->loop, &sl->timer);
	return 1;
}

/*
 * The text is out: what came meanwhile is fed to the SSE parser (which
 * may start another text: then that waits again), then the transfer's end
 * recorded meanwhile is taken up, or the transport reads on.
 */
static void
oai_slices_done(struct oai_call *cl)
{
	struct oai_slices *sl = &cl->sl;
	json_decref(sl->root);
	sl->root = NULL;
	free(sl->own);
	sl->own = NULL;
	sl->on = 0;
	sl->busy = 1;
	int r = 0;
	while (r == 0 && sl->later_off < sl->later.len) {
		size_t n = sl->later.len - sl->later_off;
		r = sse_feed(&cl->sse, sl->later.p + sl->later_off, n, oai_on_event, cl);
		sl->later_off += r == SSE_PAUSE ? cl->sse.used : n;
		if (r == 1)
			r = 0; /* "[DONE]": the rest is read and ignored */
	}
	sl->busy = 0;
	if (cl->cancelled) {
		oai_slices_stop(cl);
		return;
	}
	if (r == SSE_PAUSE)
		return; /* another long text: its slices are out first */
	sl->later.len = sl->later_off = 0;
	if (r == -2)
		oai_stop(cl, PORCH_ERR_INTERNAL, 0, "out of memory for the stream");
	if (cl->fail_err != PORCH_ERR_NONE && cl->state == OAI_RUNNING) {
		/* a bad event: the transfer stops here (why is in cl) */
		cl->o->io->abort(cl);
		oai_call_end(cl, PORCH_ERR_UPSTREAM, "stopped");
		return;
	}
	if (sl->end_pending) {
		sl->end_pending = 0;
		oai_call_end(cl, sl->end_err, "%s", sl->end_why);
		return;
	}
	if (sl->succeed) {
		sl->succeed = 0;
		oai_succeed(cl);
		return;
	}
	if (cl->o->io->pause != NULL)
		cl->o->io->pause(cl, 0);
}

/* The timer: one slice, then the next iteration's, or what waited. */
void
oai_on_slice(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct oai_call *cl = t->data;
	struct oai_slices *sl = &cl->sl;
	const char *out;
	(void)revents;
	/* our own delay is no silence of the server's (idle-timeout) */
	cl->last = ev_now(loop);
	size_t n = oai_slice_next(sl, &out);
	sl->busy = 1;
	porch_call_piece(cl->c, out, n, NULL);
	sl->busy = 0;
	if (cl->cancelled) {
		oai_slices_stop(cl);
		return;
	}
	if (sl->p < sl->end) {
		ev_timer_set(t, 0., 0.);
		ev_timer_start(loop, t);
		return;
	}
	oai_slices_done(cl);
}
