/*
 * classify.c -- stage: labels each request with a category and a
 * complexity, in metadata, by heuristics or by asking a model.
 *
 * Method heuristic labels a request at once (heuristic.c).  Method model
 * looks the text's prefix up in the cache (cache.c), and on a miss asks
 * the stage's worker with a call of the stage's own (porch_infer_aside),
 * so the request's text, metadata and attempts stay as they were; one
 * struct job per request holds the call, its timer and the answer.  When
 * the call fails, times out or answers what does not parse (model.c), the
 * heuristics label the request instead, and that is counted.  The request
 * goes on out of port out with its text unchanged, whatever happens, but
 * for a deadline that passes (failed, expired) or a client that goes away
 * (failed, cancelled).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <porch/plugin.h>

#include "cache.h"
#include "labels.h"
#include "model.h"

/* How a request was labelled: the classified-by values. */
enum by { BY_HEURISTIC, BY_MODEL, BY_FALLBACK };
static const char *const by_names[] = { "heuristic", "model", "heuristic-fallback" };

/* Why the model's labels were not used: fallback_<why> counters. */
enum why { WHY_TIMEOUT, WHY_ERROR, WHY_UNPARSED, N_WHY };
static const char *const why_names[] = { "timeout", "error", "unparsed" };

/* The longest answer read; a longer one does not parse. */
#define ANSWER_MAX 4096

struct classify;

/* One request while the model is asked about it. */
struct job {
	struct job *prev, *next;     /* the stage's jobs */
	struct classify *cl;
	porch_msg *m;
	porch_call *call;            /* NULL once ended or cancelled */
	ev_timer timer;              /* the timeout, or the request's deadline */
	uint64_t hash;               /* of the prefix, for the cache */
	size_t plen;                 /* the prefix's length in m's text */
	char answer[ANSWER_MAX];
	size_t len;
	int overflow;                /* the answer was longer than ANSWER_MAX */
	int in_submit, ended_in_submit;
	enum porch_error end_err;
	char end_why[160];
};

struct classify {
	porch_stage *st;
	struct ev_loop *loop;
	int model;                   /* method model */
	size_t prefix_chars;
	double timeout;              /* s */
	const char *prompt;
	const char *options[11];     /* the call's settings, key, value ..., NULL */
	char max_tokens[24];
	struct cls_cache *cache;     /* NULL: none */
	struct cls_index index;      /* the heuristics' keywords */
	struct job *jobs;
	unsigned logged;             /* the whys already logged, a bit each */
};

static const struct porch_param classify_params[] = {
	{ "method", PORCH_PARAM_ENUM, "heuristic", 0, 0, "heuristic|model", 0,
	  "heuristic: keywords, code markers, question forms and length; model: the "
	  "stage's worker is asked, the heuristics standing in when it fails" },
	{ "prefix-chars", PORCH_PARAM_INTEGER, "800", 1, 65536, NULL, 0,
	  "characters read from the start of the text (UTF-8 characters)" },
	{ "cache-entries", PORCH_PARAM_INTEGER, "4096", 0, 1048576, NULL, 0,
	  "method model: labels kept by text prefix, least recently used out first; "
	  "0: none" },
	{ "timeout-ms", PORCH_PARAM_DURATION, "5s", 1, 600000, NULL, 0,
	  "method model: longest the model may take before the heuristics label the "
	  "request" },
	{ "model", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "method model: the call's \"model\" setting; unset: the worker's own" },
	{ "max-tokens", PORCH_PARAM_INTEGER, "64", 1, 65536, NULL, 0,
	  "method model: most tokens the model may answer with" },
	{ "prompt", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "method model: instructions in place of the built-in ones; {text} marks "
	  "where the text goes, else it follows them after a blank line" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/* ---- labelling ----------------------------------------------------------- */

static void
label(porch_msg *m, const struct cls_labels *l, enum by by)
{
	porch_msg_set_meta(m, "category", cls_category_names[l->category]);
	porch_msg_set_meta(m, "complexity", cls_complexity_names[l->complexity]);
	porch_msg_set_meta(m, "classified-by", by_names[by]);
}

/* The heuristics label m instead of the model, for why. */
static void
fall_back(struct classify *cl, porch_msg *m, size_t plen, enum why why, const char *detail)
{
	size_t len;
	const char *text = porch_msg_text(m, &len);
	struct cls_labels l;
	cls_heuristic(&cl->index, text, plen <= len ? plen : len, &l);
	label(m, &l, BY_FALLBACK);
	char name[32];
	snprintf(name, sizeof name, "fallback_%s", why_names[why]);
	porch_stage_count(cl->st, "fallback", 1);
	porch_stage_count(cl->st, name, 1);
	/* once per why: the counters say how often */
	if (!(cl->logged & (1u << why))) {
		cl->logged |= 1u << why;
		porch_msg_log(cl->st, m, "the model's labels could not be used (%s%s%s): the "
		    "heuristics label the request; counted as %s, logged once",
		    why == WHY_TIMEOUT ? "no answer in time" : why == WHY_ERROR ? "the call failed" :
		    "the answer is not a JSON object with a known category and complexity",
		    *detail ? ": " : "", detail, name);
	}
}

/* ---- jobs ---------------------------------------------------------------- */

static void
job_free(struct job *j)
{
	struct classify *cl = j->cl;
	ev_timer_stop(cl->loop, &j->timer);
	if (j->call != NULL)
		porch_infer_cancel(j->call);
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		cl->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	free(j);
}

/* The call ended with err (PORCH_ERR_NONE: the answer is in j): label m
 * and pass it on. */
static void
job_end(struct job *j, enum porch_error err, const char *why)
{
	struct classify *cl = j->cl;
	porch_msg *m = j->m;
	size_t plen = j->plen;
	struct cls_labels l;
	j->call = NULL;
	porch_msg_set_local(cl->st, m, NULL);
	if (err == PORCH_ERR_NONE && !j->overflow && cls_model_parse(j->answer, j->len, &l) == 0) {
		label(m, &l, BY_MODEL);
		porch_stage_count(cl->st, "model", 1);
		if (cl->cache != NULL) {
			size_t len;
			const char *text = porch_msg_text(m, &len);
			struct cls_value v = { l, BY_MODEL };
			(void)cls_cache_put(cl->cache, text, plen <= len ? plen : len, j->hash, &v);
		}
	} else if (err == PORCH_ERR_TIMEOUT) {
		fall_back(cl, m, plen, WHY_TIMEOUT, why);
	} else if (err != PORCH_ERR_NONE) {
		char detail[200];
		snprintf(detail, sizeof detail, "%s: %s", porch_error_name(err), why);
		fall_back(cl, m, plen, WHY_ERROR, detail);
	} else {
		fall_back(cl, m, plen, WHY_UNPARSED, j->overflow ? "longer than 4096 bytes" : "");
	}
	job_free(j);
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(cl->st, m);
}

static void
on_piece(void *ctx, const char *text, size_t len, const struct porch_piece *pc)
{
	struct job *j = ctx;
	(void)pc;
	if (len > sizeof j->answer - j->len) {
		j->overflow = 1;
		return;
	}
	memcpy(j->answer + j->len, text, len);
	j->len += len;
}

static void
on_end(void *ctx, enum porch_error err, const char *why)
{
	struct job *j = ctx;
	if (j->in_submit) {
		/* inside porch_infer_aside: ask() ends it once that returns */
		j->ended_in_submit = 1;
		j->end_err = err;
		snprintf(j->end_why, sizeof j->end_why, "%s", why);
		return;
	}
	j->call = NULL;
	job_end(j, err, why);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct job *j = w->data;
	struct classify *cl = j->cl;
	(void)revents;
	double deadline = porch_msg_deadline(j->m);
	int expired = deadline != 0 && ev_now(loop) >= deadline;
	if (j->call != NULL) {
		/* the stage's own timeout counts against a pool member's health;
		 * the request's deadline is the request's */
		if (expired)
			porch_infer_cancel(j->call);
		else
			porch_infer_abandon(j->call, PORCH_ERR_TIMEOUT);
		j->call = NULL;
	}
	if (expired) {
		porch_msg *m = j->m;
		porch_msg_set_local(cl->st, m, NULL);
		job_free(j);
		porch_fail(cl->st, m, PORCH_ERR_DEADLINE, "the request's deadline passed "
		    "while the model classified it at stage '%s'", porch_stage_name(cl->st));
		return;
	}
	job_end(j, PORCH_ERR_TIMEOUT, "");
}

/* Asks the model about m's prefix (plen bytes of its text, hash h). */
static void
ask(struct classify *cl, porch_msg *m, const char *text, size_t plen, uint64_t h)
{
	double wait = cl->timeout, deadline = porch_msg_deadline(m);
	if (deadline != 0 && deadline - ev_now(cl->loop) < wait)
		wait = deadline - ev_now(cl->loop);
	if (wait <= 0) {
		porch_fail(cl->st, m, PORCH_ERR_DEADLINE, "the request's deadline passed "
		    "before stage '%s' could classify it", porch_stage_name(cl->st));
		return;
	}
	size_t n;
	struct job *j = calloc(1, sizeof *j);
	char *prompt = j != NULL ? cls_model_prompt(cl->prompt, text, plen, &n) : NULL;
	if (prompt == NULL) {
		free(j);
		fall_back(cl, m, plen, WHY_ERROR, "out of memory");
		(void)porch_emit(cl->st, m);
		return;
	}
	j->cl = cl;
	j->m = m;
	j->hash = h;
	j->plen = plen;
	j->next = cl->jobs;
	if (cl->jobs != NULL)
		cl->jobs->prev = j;
	cl->jobs = j;
	porch_msg_set_local(cl->st, m, j);
	ev_timer_init(&j->timer, on_timer, wait, 0.);
	j->timer.data = j;
	ev_timer_start(cl->loop, &j->timer);

	j->in_submit = 1;
	porch_call *call = porch_infer_aside(cl->st, m, prompt, n, cl->options, on_piece,
	    on_end, j);
	j->in_submit = 0;
	free(prompt); /* the call has its own copy */
	if (j->ended_in_submit) {
		job_end(j, j->end_err, j->end_why);
		return;
	}
	if (call == NULL) {
		job_end(j, PORCH_ERR_INTERNAL, "the worker did not start the call");
		return;
	}
	j->call = call;
	if (porch_msg_cancelled(m)) {
		/* cancelled inside porch_infer_aside, where cancel_msg left it */
		porch_msg_set_local(cl->st, m, NULL);
		job_free(j);
		porch_fail(cl->st, m, PORCH_ERR_CANCELLED, "%s (while the model classified it)",
		    porch_msg_error_text(m));
	}
}

/* ---- the stage ------------------------------------------------------------ */

static void
classify_process(porch_stage *st, porch_msg *m)
{
	struct classify *cl = porch_stage_data(st);
	size_t len;
	const char *text = porch_msg_text(m, &len);
	size_t plen = cls_prefix(text, len, cl->prefix_chars);
	if (!cl->model) {
		struct cls_labels l;
		cls_heuristic(&cl->index, text, plen, &l);
		label(m, &l, BY_HEURISTIC);
		porch_stage_count(st, "heuristic", 1);
		(void)porch_emit(st, m);
		return;
	}
	uint64_t h = 0;
	if (cl->cache != NULL) {
		struct cls_value v;
		h = cls_cache_hash(cl->cache, text, plen);
		if (cls_cache_get(cl->cache, text, plen, h, &v)) {
			label(m, &v.labels, (enum by)v.by);
			porch_stage_count(st, "cache_hit", 1);
			(void)porch_emit(st, m);
			return;
		}
		porch_stage_count(st, "cache_miss", 1);
	}
	ask(cl, m, text, plen, h);
}

/* The request's client has gone: stop asking about it, and fail it. */
static void
classify_cancel_msg(porch_stage *st, porch_msg *m)
{
	struct job *j = porch_msg_local(st, m);
	if (j == NULL || j->in_submit)
		return; /* inside porch_infer_aside: ask() ends it */
	porch_msg_set_local(st, m, NULL);
	job_free(j);
	porch_fail(st, m, PORCH_ERR_CANCELLED, "%s (while the model classified it)",
	    porch_msg_error_text(m));
}

/* m ended while asked about (a drain deadline ended it): forget the job. */
static void
classify_forget(porch_stage *st, porch_msg *m, void *local)
{
	(void)st;
	(void)m;
	job_free(local);
}

static int
classify_check(const porch_params *p, porch_check *c)
{
	if (strcmp(porch_param_str(p, "method"), "model") == 0 && porch_check_worker(c) == NULL) {
		porch_check_error(c, "method", "method model asks a worker: name one with "
		    "worker=\"NAME\" on the <stage>");
		return -1;
	}
	return 0;
}

static int
classify_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct classify *cl = calloc(1, sizeof *cl);
	if (cl == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	cl->st = st;
	cl->loop = porch_stage_loop(st);
	cl->model = strcmp(porch_param_str(p, "method"), "model") == 0;
	cls_index_init(&cl->index);
	cl->prefix_chars = (size_t)porch_param_int(p, "prefix-chars");
	cl->timeout = (double)porch_param_int(p, "timeout-ms") / 1000.0;
	cl->prompt = porch_param_str(p, "prompt");
	if (cl->prompt == NULL)
		cl->prompt = cls_default_prompt;
	snprintf(cl->max_tokens, sizeof cl->max_tokens, "%lld",
	    (long long)porch_param_int(p, "max-tokens"));
	size_t o = 0;
	cl->options[o++] = "max-tokens";
	cl->options[o++] = cl->max_tokens;
	cl->options[o++] = "temperature";
	cl->options[o++] = "0";
	cl->options[o++] = "response-format";
	cl->options[o++] = "json";
	cl->options[o++] = "stream";
	cl->options[o++] = "false";
	if (porch_param_str(p, "model") != NULL) {
		cl->options[o++] = "model";
		cl->options[o++] = porch_param_str(p, "model");
	}
	cl->options[o] = NULL;
	size_t entries = (size_t)porch_param_int(p, "cache-entries");
	if (cl->model && entries > 0 && (cl->cache = cls_cache_new(entries)) == NULL) {
		free(cl);
		porch_stage_error(st, "out of memory (a cache of %zu entries)", entries);
		return -1;
	}
	porch_stage_set_data(st, cl);
	return 0;
}

static void
classify_fini(porch_stage *st)
{
	struct classify *cl = porch_stage_data(st);
	if (cl == NULL)
		return;
	/* after a drain deadline: calls may still run */
	while (cl->jobs != NULL)
		job_free(cl->jobs);
	cls_cache_free(cl->cache);
	free(cl);
	porch_stage_set_data(st, NULL);
}

static const char *const classify_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "classify",
	.summary = "labels each request with a category and a complexity, by heuristics or a model",
	.params = classify_params,
	.flags = PORCH_STAGE_OPTIONAL_WORKER,
	.outputs = classify_outputs,
	.init = classify_init,
	.process = classify_process,
	.fini = classify_fini,
	.check = classify_check,
	.forget = classify_forget,
	.cancel_msg = classify_cancel_msg,
	.description =
	    "Labels each request, in its metadata, with a category: code, reasoning, "
	    "creative, extraction, summary, classification or chat; and a complexity: "
	    "simple, moderate or complex; for channel conditions to route by "
	    "(when=\"complexity == 'simple'\", porch.xml(5)).  Only the first "
	    "prefix-chars characters of the text are read (UTF-8 sequences kept "
	    "whole); the text is not changed, and labels the request already had are "
	    "replaced.  The metadata classified-by says how: heuristic, model, or "
	    "heuristic-fallback (method model, but the heuristics labelled it).\n"
	    "\n"
	    "Method heuristic needs nothing else and labels at once, in time linear "
	    "in the prefix.  Words (runs of ASCII letters and digits, lower-cased) "
	    "and phrases of two or three of them are looked up in a table of "
	    "keywords (summarize: summary; poem: creative; prove: reasoning), each "
	    "worth points for a category, twice as many before the first line break "
	    "or colon (where the request says what it asks), none inside a quoted "
	    "text (what it asks about).  Code fences, lines ending in ; { or }, "
	    "operators such as == and ->, and a high share of brackets count for "
	    "code; arithmetic (2 + 3, x^2, 15%) for reasoning; choices offered "
	    "before a quoted text (\"positive or negative: '...'\") for "
	    "classification.  The category with the most points wins; under 2 points "
	    "it is chat.  Complexity counts points for length (25, 60 and 150 words), "
	    "code to work on, three or more list items, two or more questions, three "
	    "or more commas in the first line, three or more distinct asks (explain, "
	    "compare, list ...) and words of long answers (design, step by step, for "
	    "each, explain), and takes points off for words of short ones (one "
	    "sentence, haiku, gist): 0 or less is simple, 1 or 2 moderate, more "
	    "complex.  It takes about 20 ns a byte (some 15 microseconds for 800 characters).  "
	    "On labelled prompts it was not tuned on, it gets about six categories "
	    "in ten and seven complexities in ten right (bench/RESULTS.md in porch's "
	    "sources): enough to send the plainly simple to a small model, not to "
	    "trust each label.\n"
	    "\n"
	    "Method model asks the stage's worker, which the <stage> must name "
	    "(worker=; porch check refuses method model without one), with a call of "
	    "the stage's own: the prompt is the instructions (the prompt parameter, "
	    "else built-in ones that name and explain the labels) with the prefix "
	    "where {text} is, and the settings are max-tokens, temperature 0, stream "
	    "false, response-format json (the openai worker asks for a JSON object) "
	    "and model, when the parameter is set; none of the request's metadata "
	    "goes, and the request's text, metadata and attempts are left as they "
	    "were.  The answer must be one JSON object, alone but for white space "
	    "or a Markdown code fence, whose \"category\" and \"complexity\" are "
	    "strings naming labels (in any case).  When the call fails, takes longer "
	    "than timeout-ms, or answers anything else, the heuristics label the "
	    "request (classified-by heuristic-fallback), which is counted, and "
	    "logged once per reason.  A request whose deadline passes meanwhile "
	    "fails as expired; one whose client goes away, as cancelled.\n"
	    "\n"
	    "With method model the model's labels are cached, up to cache-entries "
	    "entries (0: no cache), the least recently used going first: keyed by "
	    "the prefix, hashed with SipHash-1-3 under a random key and compared "
	    "byte for byte, so a hit is the same prefix, and is labelled as the "
	    "model labelled it (classified-by model); memory is bounded by "
	    "cache-entries times the prefix's bytes.  A fallback's labels are not "
	    "cached: the model is asked again next time.  Requests with the same "
	    "prefix that arrive while the model is being asked about it are each "
	    "asked about.\n"
	    "\n"
	    "Counters (statistics, and /metrics as porch_stage_events_total): "
	    "heuristic (requests labelled by method heuristic); cache_hit and "
	    "cache_miss; model (labelled by the model's answer); fallback, with "
	    "fallback_timeout, fallback_error (the call failed or could not be "
	    "made) and fallback_unparsed.",
};
