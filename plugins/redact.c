/* redact.c -- stage: masks keys, tokens, e-mail addresses and phone numbers, whole or streamed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <porch/plugin.h>

#include "text/redact_scan.h"
#include "text/streamstage.h"
#include "text/tbuf.h"

static const struct porch_param redact_params[] = {
	{ "kinds", PORCH_PARAM_LIST, "email,phone,key,bearer,hex,base64", 0, 0, NULL, 0,
	  "what to mask: any of email, phone, key, bearer, hex, base64" },
	{ "mask", PORCH_PARAM_STRING, "[REDACTED:%s]", 0, 0, NULL, 0,
	  "what replaces a match: %s is the kind's name, %% a percent sign" },
	{ "hex-min-length", PORCH_PARAM_INTEGER, "32", 16, 512, NULL, 0,
	  "the shortest run of hex digits masked as kind hex" },
	{ "base64-min-length", PORCH_PARAM_INTEGER, "40", 16, 512, NULL, 0,
	  "the shortest base64 run masked as kind base64" },
	{ "meta", PORCH_PARAM_LIST, NULL, 0, 0, NULL, 0,
	  "metadata keys whose values are masked too, e.g. system,context" },
	{ "conversation", PORCH_PARAM_BOOLEAN, "true", 0, 0, NULL, 0,
	  "mask the text of every message of an OpenAI request too (metadata openai.request)" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static const char redact_description[] =
    "Masks secrets and personal data in the message text: in prompts when it stands before "
    "the inference stage, in answers after it, and in streamed answers piece by piece.\n"
    "The text is read from left to right; at each place the kinds are tried in the order "
    "key, bearer, email, phone, hex, base64, the first that matches is replaced by its mask, "
    "and reading goes on after it.\n"
    "Every kind matches only where a word starts: the byte before is not an ASCII letter or digit "
    "(nor, for email, phone and base64, one of the characters the kind itself is made of).\n"
    "\n"
    "key: an API key or token of a well-known format: sk- followed by 20 or more letters, digits, _ or - "
    "with a capital or a digit among them (OpenAI, Anthropic, Stripe), "
    "AKIA or ASIA and 16 or more capitals or digits (AWS), AIza and 30 more (Google), "
    "ghp_, gho_, ghu_, ghs_, ghr_ or github_pat_ and 30 more (GitHub), glpat- and 20 more (GitLab), "
    "xoxb-, xoxp-, xoxa-, xoxr- or xoxs- and 10 more (Slack); "
    "it must not run on into a letter or digit.\n"
    "bearer: the word Bearer, in any case, 1 to 15 spaces or tabs, and a token of 16 or more "
    "letters, digits and - . _ ~ + / =; the word and the spaces are kept, the token masked.\n"
    "email: a local part of 1 to 64 letters, digits and . _ % + -, an @, and a domain of two or more "
    "labels (letters, digits, -) separated by dots, the last of 2 or more letters.\n"
    "phone: an optional +, then groups of digits separated by one space or -, or in parentheses, "
    "with 7 to 15 digits in all and not running on into a letter or digit; "
    "without the + it needs parentheses, or 3 or more groups, or 2 groups with 10 or more digits together, "
    "and a group of 3 or more digits; groups of 4-2-2 or 2-2-4 digits (a date) are not a phone number, "
    "nor are digits without any separator.\n"
    "hex: a whole word of hex-min-length or more hex digits, after an optional 0x.\n"
    "base64: a run of base64-min-length or more letters, digits and + / _ - "
    "(standard or URL-safe base64) with a capital, a small letter and a digit among them, "
    "and its = padding.\n"
    "\n"
    "Streamed pieces are passed on as soon as they are decided, and what the stage passes on, joined, "
    "is exactly the whole text's redaction: a secret cut across pieces is masked all the same.\n"
    "The stage holds back the end of the stream from the first place not yet decided, "
    "at most 512 bytes: a key, token, hex or base64 run that reaches 512 bytes is masked then, "
    "and the rest of its run is dropped as it comes.\n"
    "The same 512-byte rule applies to whole texts, so both agree; "
    "base64 runs are judged by their first 512 bytes.\n"
    "\n"
    "The metadata values named by meta are masked too when the message arrives "
    "(for example the chat form's system message and the retrieved context).\n"
    "\n"
    "A request that came in OpenAI's form (an http source) carries the client's whole "
    "conversation in metadata openai.request, which the openai worker forwards; with "
    "conversation true (the default) the text of every message in it is masked too, "
    "whatever its role: content given as a string and the text of content parts "
    "(image and other parts are left as they are), and a completion request's prompt. "
    "Other fields (tool definitions, tool call arguments, names) are not touched. "
    "The message text, the last user message's, is masked as above, so the two agree.";

static const char *const redact_outputs[] = { "out", NULL };

struct redact {
	struct redact_cfg cfg;
	char **meta;               /* metadata keys to mask too */
	size_t n_meta;
	int conversation;          /* mask openai.request's messages too */
	struct tbuf out;           /* what one call passes on, reused */
	struct streamstage ss;     /* the streams, scanned with redact_ops */
};

/* The scanner on a stream, for streamstage: wrapped, since calling
 * redact_feed through a pointer of another type would be undefined. */
static int
redact_ops_feed(const void *cfg, void *s, const char *in, size_t len, struct tbuf *out)
{
	return redact_feed(cfg, s, in, len, out);
}

static int
redact_ops_finish(const void *cfg, void *s, struct tbuf *out)
{
	return redact_finish(cfg, s, out);
}

static void
redact_ops_reset(void *s)
{
	redact_stream_reset(s);
}

static void
redact_ops_clear(void *s)
{
	redact_stream_clear(s);
}

static const struct streamstage_ops redact_ops = {
	.size = sizeof(struct redact_stream),
	.feed = redact_ops_feed,
	.finish = redact_ops_finish,
	.reset = redact_ops_reset,
	.clear = redact_ops_clear,
};

struct kinds_ctx {
	unsigned kinds;
	char *err;
	size_t errlen;
};

static int
redact_kind_one(void *ctx, const char *item, size_t len)
{
	struct kinds_ctx *kc = ctx;
	int k = redact_kind_parse(item, len);
	if (k < 0) {
		snprintf(kc->err, kc->errlen, "unknown kind '%s'; known: %s", item,
		    redact_kind_list());
		return -1;
	}
	kc->kinds |= 1u << k;
	return 0;
}

static int
redact_meta_one(void *ctx, const char *item, size_t len)
{
	struct redact *r = ctx;
	if (len == 0)
		return 0;
	if (r == NULL)
		return 0;
	char **meta = realloc(r->meta, (r->n_meta + 1) * sizeof *meta);
	if (meta == NULL)
		return -1;
	r->meta = meta;
	if ((r->meta[r->n_meta] = strdup(item)) == NULL)
		return -1;
	r->n_meta++;
	return 0;
}

/* Where redact_setup reports problems: porch_check_error, or init's error. */
struct redact_report {
	porch_check *c;        /* check: every problem goes here */
	porch_stage *st;       /* init: the first problem goes here */
	int errors;
};

static void
redact_problem(struct redact_report *rp, const char *param, const char *msg)
{
	if (rp->c != NULL)
		porch_check_error(rp->c, param, "%s", msg);
	else if (rp->errors == 0)
		porch_stage_error(rp->st, "parameter '%s': %s", param, msg);
	rp->errors++;
}

/*
 * Reads the parameters into r (NULL: only checks), reporting every problem.
 * 0 or -1.
 */
static int
redact_setup(const porch_params *p, struct redact *r, struct redact_report *rp)
{
	struct redact_cfg tmp;
	struct redact_cfg *cfg = r ? &r->cfg : &tmp;
	char err[256];
	struct kinds_ctx kc = { 0, err, sizeof err };
	const char *kinds = porch_param_str(p, "kinds");
	const char *mask = porch_param_str(p, "mask");
	const char *meta = porch_param_str(p, "meta");
	size_t bad = 0;
	int rc;

	memset(&tmp, 0, sizeof tmp);
	if (kinds != NULL && (rc = text_list(kinds, 0, redact_kind_one, &kc, &bad)) != 0) {
		if (rc == -2)
			snprintf(err, sizeof err, "out of memory");
		redact_problem(rp, "kinds", err);
	}
	cfg->kinds = kc.kinds;
	if (r != NULL)
		r->conversation = porch_param_int(p, "conversation") != 0;
	cfg->hex_min = (size_t)porch_param_int(p, "hex-min-length");
	cfg->base64_min = (size_t)porch_param_int(p, "base64-min-length");
	if (mask == NULL)
		mask = "";
	rc = redact_cfg_masks(cfg, mask, &bad);
	if (rc == -1) {
		snprintf(err, sizeof err, "'%%%c' at offset %zu: only %%s (the kind) and %%%% "
		    "(a percent sign) may follow a percent sign", mask[bad + 1] ? mask[bad + 1] : ' ',
		    bad);
		redact_problem(rp, "mask", err);
	} else if (rc == -2) {
		redact_problem(rp, "mask", "out of memory");
	}
	redact_cfg_free(&tmp);
	if (meta != NULL && text_list(meta, 0, redact_meta_one, r, &bad) != 0)
		redact_problem(rp, "meta", "out of memory");
	return rp->errors > 0 ? -1 : 0;
}

static int
redact_check(const porch_params *p, porch_check *c)
{
	struct redact_report rp = { c, NULL, 0 };
	return redact_setup(p, NULL, &rp);
}

static void
redact_free(struct redact *r)
{
	streamstage_free(&r->ss);
	for (size_t i = 0; i < r->n_meta; i++)
		free(r->meta[i]);
	free(r->meta);
	redact_cfg_free(&r->cfg);
	tbuf_free(&r->out);
	free(r);
}

static int
redact_init(porch_stage *st)
{
	struct redact *r = calloc(1, sizeof *r);
	struct redact_report rp = { NULL, st, 0 };

	if (r == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	streamstage_init(&r->ss, &redact_ops, &r->cfg, &r->out);
	if (redact_setup(porch_stage_params(st), r, &rp) != 0) {
		redact_free(r);
		return -1;
	}
	porch_stage_set_data(st, r);
	return 0;
}

static void
redact_chunk(porch_stage *st, porch_msg *m, const char *text, size_t len)
{
	struct redact *r = porch_stage_data(st);
	streamstage_chunk(&r->ss, st, m, text, len);
}

static void
redact_piece(porch_stage *st, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	struct redact *r = porch_stage_data(st);
	streamstage_piece(&r->ss, st, m, text, len, pc);
}

static void
redact_forget(porch_stage *st, porch_msg *m, void *local)
{
	struct redact *r = porch_stage_data(st);
	(void)m;
	streamstage_forget(&r->ss, local);
}

/* Masks one JSON string in place; *changed is set when it changed.  0, or -1. */
static int
redact_json_string(struct redact *r, json_t *s, int *changed)
{
	if (!json_is_string(s))
		return 0;
	const char *v = json_string_value(s);
	size_t n = json_string_length(s);
	r->out.len = 0;
	if (redact_whole(&r->cfg, v, n, &r->out) != 0)
		return -1;
	if (r->out.len == n && (n == 0 || memcmp(r->out.p, v, n) == 0))
		return 0;
	*changed = 1;
	return json_string_setn_nocheck(s, r->out.p ? r->out.p : "", r->out.len);
}

/*
 * Masks the text of every message of the OpenAI request the message
 * carries (openai.request), and puts it back when something changed.
 * 0, or -1 when out of memory.  A request that is not JSON is left to the
 * worker, which refuses it.
 */
static int
redact_conversation(struct redact *r, porch_msg *m)
{
	const char *doc = porch_msg_meta(m, "openai.request");
	if (doc == NULL)
		return 0;
	json_t *root = json_loads(doc, 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	int changed = 0, rc = 0;
	size_t i, k;
	json_t *msg, *part;
	json_array_foreach(json_object_get(root, "messages"), i, msg) {
		json_t *c = json_object_get(msg, "content");
		if (json_is_string(c)) {
			rc |= redact_json_string(r, c, &changed);
			continue;
		}
		json_array_foreach(c, k, part) {
			json_t *type = json_object_get(part, "type");
			if (json_is_string(type) && strcmp(json_string_value(type), "text") == 0)
				rc |= redact_json_string(r, json_object_get(part, "text"), &changed);
		}
	}
	rc |= redact_json_string(r, json_object_get(root, "prompt"), &changed);
	if (rc == 0 && changed) {
		char *text = json_dumps(root, JSON_COMPACT);
		if (text == NULL || porch_msg_set_meta(m, "openai.request", text) != 0)
			rc = -1;
		free(text);
	}
	json_decref(root);
	return rc;
}

static void
redact_process(porch_stage *st, porch_msg *m)
{
	struct redact *r = porch_stage_data(st);
	size_t len;
	const char *text;

	streamstage_end(&r->ss, st, m);
	for (size_t i = 0; i < r->n_meta; i++) {
		const char *v = porch_msg_meta(m, r->meta[i]);
		if (v == NULL)
			continue;
		r->out.len = 0;
		if (redact_whole(&r->cfg, v, strlen(v), &r->out) != 0 ||
		    tbuf_putc(&r->out, '\0') != 0 ||
		    porch_msg_set_meta(m, r->meta[i], r->out.p) != 0) {
			porch_fail(st, m, PORCH_ERR_INTERNAL, "redact: out of memory");
			return;
		}
	}
	if (r->conversation && redact_conversation(r, m) != 0) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "redact: out of memory");
		return;
	}
	text = porch_msg_text(m, &len);
	r->out.len = 0;
	if (redact_whole(&r->cfg, text, len, &r->out) != 0 ||
	    porch_msg_set_text(m, r->out.p ? r->out.p : "", r->out.len) != 0) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "redact: out of memory");
		return;
	}
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(st, m);
}

static void
redact_fini(porch_stage *st)
{
	struct redact *r = porch_stage_data(st);
	if (r == NULL)
		return;
	redact_free(r);
	porch_stage_set_data(st, NULL);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.flags = PORCH_STAGE_EDITS_TEXT,
	.name = "redact",
	.summary = "masks API keys, tokens, hex and base64 secrets, e-mail addresses and phone numbers, streamed or whole",
	.params = redact_params,
	.outputs = redact_outputs,
	.init = redact_init,
	.process = redact_process,
	.fini = redact_fini,
	.description = redact_description,
	.check = redact_check,
	.chunk = redact_chunk,
	.piece = redact_piece,
	.forget = redact_forget,
};
