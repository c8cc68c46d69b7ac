/* post.c -- stage: tidies answers (stop sequences, trim, collapse, length), whole or streamed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

#include "text/poststream.h"
#include "text/streamstage.h"
#include "text/tbuf.h"

/* The longest stop sequence accepted: a stream holds back one byte less. */
#define STOP_MAX 256

static const struct porch_param post_params[] = {
	{ "trim", PORCH_PARAM_BOOLEAN, "true", 0, 0, NULL, 0,
	  "drop the answer's leading and trailing whitespace" },
	{ "collapse-whitespace", PORCH_PARAM_BOOLEAN, "false", 0, 0, NULL, 0,
	  "turn each run of whitespace into one space" },
	{ "stop", PORCH_PARAM_LIST, NULL, 0, 0, NULL, 0,
	  "stop sequences: the answer ends before the first one (\\n \\t \\r \\s \\, \\\\ are escapes)" },
	{ "max-length", PORCH_PARAM_SIZE, "0", 0, 1073741824.0, NULL, 0,
	  "cut the answer to at most this many bytes, at a UTF-8 character boundary; 0: no limit" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static const char post_description[] =
    "Tidies the answers of a model, as whole texts or as they stream, token by token.\n"
    "In order: the answer is cut before the first occurrence of any stop sequence; "
    "leading whitespace is dropped (trim); "
    "each run of whitespace becomes one space (collapse-whitespace); "
    "the answer is cut to max-length bytes, never inside a UTF-8 character; "
    "and trailing whitespace is dropped (trim).\n"
    "Whitespace is ASCII: space, tab, newline, carriage return, vertical tab and form feed.\n"
    "\n"
    "stop is a comma-separated list; spaces around each sequence are dropped, and "
    "\\n, \\t, \\r, \\s (a space that is kept), \\, (a comma) and \\\\ (a backslash) "
    "stand for those characters, so stop=\"\\n\\nUser:, ###\" stops at a blank line followed by \"User:\", or at \"###\".\n"
    "A stop sequence is at most 256 bytes long.\n"
    "\n"
    "Streamed pieces of an answer (porch_stream, from the inference stage) are passed on "
    "as soon as they are decided, and what the stage passes on, joined, "
    "is exactly the whole answer's result.\n"
    "To keep that promise it holds back the end of the stream that could begin a stop sequence, "
    "whitespace that could turn out to be trailing, and up to 3 bytes before max-length; "
    "after a stop sequence or at max-length it passes nothing more.\n"
    "When the message itself arrives, the stage passes on what it held back and "
    "sets the message text to the result for the whole answer.";

static const char *const post_outputs[] = { "out", NULL };

struct post {
	struct post_cfg cfg;
	struct tbuf out;         /* what one call passes on, reused */
	struct streamstage ss;   /* the streams, filtered with post_ops */
};

/* The transform on a stream, for streamstage: wrapped, since calling
 * post_feed through a pointer of another type would be undefined. */
static int
post_ops_feed(const void *cfg, void *s, const char *in, size_t len, struct tbuf *out)
{
	return post_feed(cfg, s, in, len, out);
}

static int
post_ops_finish(const void *cfg, void *s, struct tbuf *out)
{
	return post_finish(cfg, s, out);
}

static void
post_ops_reset(void *s)
{
	post_stream_reset(s);
}

static void
post_ops_clear(void *s)
{
	post_stream_clear(s);
}

static const struct streamstage_ops post_ops = {
	.size = sizeof(struct post_stream),
	.feed = post_ops_feed,
	.finish = post_ops_finish,
	.reset = post_ops_reset,
	.clear = post_ops_clear,
};

/* Splitting the stop list: where the sequences go, and the error. */
struct stop_ctx {
	struct post_cfg *cfg;
	size_t n;
	char *err;
	size_t errlen;
};

static int
post_stop_one(void *ctx, const char *item, size_t len)
{
	struct stop_ctx *sc = ctx;
	sc->n++;
	if (len == 0) {
		snprintf(sc->err, sc->errlen, "stop sequence %zu is empty", sc->n);
		return -1;
	}
	if (len > STOP_MAX) {
		snprintf(sc->err, sc->errlen, "stop sequence %zu is %zu bytes long, more than %d",
		    sc->n, len, STOP_MAX);
		return -1;
	}
	if (sc->cfg != NULL && post_cfg_add_stop(sc->cfg, item, len) != 0) {
		snprintf(sc->err, sc->errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Builds the stop list into cfg (NULL: only checks).  0, or -1 with err filled. */
static int
post_stops(const porch_params *p, struct post_cfg *cfg, char *err, size_t errlen)
{
	const char *stop = porch_param_str(p, "stop");
	struct stop_ctx sc = { cfg, 0, err, errlen };
	size_t bad = 0;

	if (stop == NULL)
		return 0;
	int rc = text_list(stop, 1, post_stop_one, &sc, &bad);
	if (rc == -2 && bad == (size_t)-1)
		snprintf(err, errlen, "out of memory");
	else if (rc == -2)
		snprintf(err, errlen, "unknown escape '\\%c' at offset %zu; "
		    "known: \\n, \\t, \\r, \\s, \\, and \\\\", stop[bad + 1] ? stop[bad + 1] : ' ', bad);
	return rc == 0 ? 0 : -1;
}

static int
post_check(const porch_params *p, porch_check *c)
{
	char err[256];
	if (post_stops(p, NULL, err, sizeof err) != 0) {
		porch_check_error(c, "stop", "%s", err);
		return -1;
	}
	return 0;
}

static int
post_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct post *ps = calloc(1, sizeof *ps);
	char err[256];

	if (ps == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	streamstage_init(&ps->ss, &post_ops, &ps->cfg, &ps->out);
	ps->cfg.trim = porch_param_int(p, "trim") != 0;
	ps->cfg.collapse = porch_param_int(p, "collapse-whitespace") != 0;
	ps->cfg.max_length = (size_t)porch_param_int(p, "max-length");
	if (post_stops(p, &ps->cfg, err, sizeof err) != 0) {
		porch_stage_error(st, "parameter 'stop': %s", err);
		post_cfg_free(&ps->cfg);
		free(ps);
		return -1;
	}
	porch_stage_set_data(st, ps);
	return 0;
}

static void
post_chunk(porch_stage *st, porch_msg *m, const char *text, size_t len)
{
	struct post *ps = porch_stage_data(st);
	streamstage_chunk(&ps->ss, st, m, text, len);
}

static void
post_piece(porch_stage *st, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	struct post *ps = porch_stage_data(st);
	streamstage_piece(&ps->ss, st, m, text, len, pc);
}

static void
post_forget(porch_stage *st, porch_msg *m, void *local)
{
	struct post *ps = porch_stage_data(st);
	(void)m;
	streamstage_forget(&ps->ss, local);
}

static void
post_process(porch_stage *st, porch_msg *m)
{
	struct post *ps = porch_stage_data(st);
	size_t len;
	const char *text;

	streamstage_end(&ps->ss, st, m);
	text = porch_msg_text(m, &len);
	ps->out.len = 0;
	if (post_whole(&ps->cfg, text, len, &ps->out) != 0 ||
	    porch_msg_set_text(m, ps->out.p ? ps->out.p : "", ps->out.len) != 0) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "post: out of memory");
		return;
	}
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(st, m);
}

static void
post_fini(porch_stage *st)
{
	struct post *ps = porch_stage_data(st);
	if (ps == NULL)
		return;
	streamstage_free(&ps->ss);
	post_cfg_free(&ps->cfg);
	tbuf_free(&ps->out);
	free(ps);
	porch_stage_set_data(st, NULL);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.flags = PORCH_STAGE_EDITS_TEXT,
	.name = "post",
	.summary = "tidies answers: stop sequences, trimming, whitespace and a length limit, streamed or whole",
	.params = post_params,
	.outputs = post_outputs,
	.init = post_init,
	.process = post_process,
	.fini = post_fini,
	.description = post_description,
	.check = post_check,
	.chunk = post_chunk,
	.piece = post_piece,
	.forget = post_forget,
};
