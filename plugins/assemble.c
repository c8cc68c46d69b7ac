/* assemble.c -- stage: builds the prompt from a template, the question, the retrieved context and metadata. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

#include "text/tbuf.h"
#include "text/template.h"

/* A template file larger than this is refused: it is a prompt, not a corpus. */
#define TEMPLATE_FILE_MAX (1024 * 1024)

/* The prompts used when no template is given. */
static const char default_text[] =
    "{{#context}}Answer the question using the context below.\n\n"
    "Context:\n{{context}}\n\nQuestion: {{/context}}{{input}}";
static const char default_user[] = "{{input}}";
static const char default_system[] =
    "{{#context}}Answer the question using the context below.\n\n"
    "Context:\n{{context}}{{/context}}";

static const struct porch_param assemble_params[] = {
	{ "template", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "the prompt template (the user message in chat form); default: see below" },
	{ "template-file", PORCH_PARAM_PATH, NULL, 0, 0, NULL, 0,
	  "a file holding the template, instead of template" },
	{ "form", PORCH_PARAM_ENUM, "text", 0, 0, "text|chat", 0,
	  "text: the prompt becomes the message text; chat: the text is the user message and metadata \"system\" the system message" },
	{ "system", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "the system message template, in chat form; default: see below" },
	{ "max-context-bytes", PORCH_PARAM_SIZE, "0", 0, 1073741824.0, NULL, 0,
	  "cut {{context}} to this many bytes, after a whole passage if one fits; 0: no limit" },
	{ "max-prompt-bytes", PORCH_PARAM_SIZE, "0", 0, 1073741824.0, NULL, 0,
	  "cut the context further so that the prompt fits; 0: no limit" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static const char assemble_description[] =
    "Turns each request into the prompt for a model.\n"
    "The template is text with placeholders: {{input}} is the message text (the question), "
    "{{context}} the metadata \"context\" (the passages the rag stage found), "
    "{{session}} the session id and {{meta.KEY}} the metadata KEY; "
    "a value that is not set is empty.\n"
    "Spaces are allowed inside the braces, as in {{ input }}.\n"
    "{{#NAME}}...{{/NAME}} keeps what it encloses only when NAME (one of the above) is not empty, "
    "{{^NAME}}...{{/NAME}} only when it is empty.\n"
    "Write {{{{ for a literal {{; a lone { or }} is literal as it is.\n"
    "Any other placeholder, or a {{ without its }}, is an error that porch check reports, "
    "with its offset in the template.\n"
    "\n"
    "The template is given inline (template) or in a file (template-file), not both; "
    "it is read and checked when the pipeline is loaded.\n"
    "Without either, the text form uses \"{{#context}}Answer the question using the context below.\\n\\n"
    "Context:\\n{{context}}\\n\\nQuestion: {{/context}}{{input}}\", "
    "so that a request without context goes to the model as it is.\n"
    "\n"
    "In the text form the message text becomes the rendered template.\n"
    "In the chat form (form chat) the message text becomes the rendered template, the user message, "
    "and the metadata \"system\" the rendered system template, "
    "which chat workers (openai) send as the system message; "
    "an empty system message leaves the metadata as it was.\n"
    "The chat form's defaults are \"{{input}}\" for the user message and "
    "\"{{#context}}Answer the question using the context below.\\n\\nContext:\\n{{context}}{{/context}}\" "
    "for the system message.\n"
    "\n"
    "Limits never cut the question, only the context.\n"
    "With max-context-bytes, a longer context is cut to at most that many bytes: "
    "after the last whole passage that fits (passages are separated by a blank line), "
    "or, when not even the first passage fits, at the last UTF-8 character boundary within the limit.\n"
    "With max-prompt-bytes, when the prompt (the text, plus the system message in the chat form) "
    "is still longer, the context is cut the same way to the room left, "
    "down to nothing (sections on {{context}} then disappear); "
    "a prompt that is too long even without context fails the request as bad-request.\n"
    "\n"
    "A conversation (an OpenAI chat request from an http source): the message text is the "
    "last user message's text (its content, or its text parts joined by a newline), and "
    "{{input}} is that.  The openai worker forwards the client's conversation whole, and puts "
    "the rendered template in place of that message's text: a string content becomes the "
    "prompt; content parts keep every part that is not text (images, audio) where it was, and "
    "their text parts become one text part with the prompt.  Every other message (earlier "
    "turns, tool calls, tool results) goes as the client sent it.  In the chat form the rendered "
    "system template replaces the text of the conversation's leading system or developer "
    "message, or becomes a system message at its start when it has none.";

static const char *const assemble_outputs[] = { "out", NULL };

struct assemble {
	struct tpl user;       /* the text form's template, or the user message */
	struct tpl system;     /* chat form only */
	int chat;
	size_t max_context, max_prompt;
	struct tbuf buf, sbuf; /* rendered text and system message, reused */
};

/*
 * Reads a template file into *out (NUL-terminated).  0, or -1 with err
 * filled.
 */
static int
assemble_read(const char *path, struct tbuf *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "cannot read template file '%s': %s", path, strerror(errno));
		return -1;
	}
	char chunk[4096];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (out->len + n > TEMPLATE_FILE_MAX) {
			snprintf(err, errlen, "template file '%s' is larger than 1M", path);
			rc = -1;
			break;
		}
		if (tbuf_put(out, chunk, n) != 0) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "cannot read template file '%s': %s", path, strerror(errno));
		rc = -1;
	}
	fclose(f);
	return rc;
}

/* Compiles one template; on error err says what and *at where in src (or
 * (size_t)-1 when err says it: a template file's line and column).  0 or -1. */
static int
assemble_compile(struct tpl *t, const char *src, size_t len, const char *file,
    char *err, size_t errlen, size_t *at)
{
	struct tpl_error te;
	int rc = tpl_compile(t, src, len, &te);
	*at = (size_t)-1;
	if (rc == -2)
		snprintf(err, errlen, "out of memory");
	else if (rc != 0 && file != NULL)
		snprintf(err, errlen, "template file '%s', line %u, column %u: %s%s%s", file,
		    te.line, te.col, te.what, te.hint[0] ? "; " : "", te.hint);
	else if (rc != 0) {
		snprintf(err, errlen, "%s%s%s", te.what, te.hint[0] ? "; " : "", te.hint);
		*at = te.offset;
	}
	return rc == 0 ? 0 : -1;
}

/* Where assemble_load reports problems: porch_check_error, or init's error. */
struct assemble_report {
	porch_check *c;        /* check: every problem goes here */
	porch_stage *st;       /* init: the first problem goes here */
	int errors;
};

/* A problem with param's value (NULL: with the stage), at byte at of it
 * ((size_t)-1: nowhere in particular). */
static void
assemble_problem_at(struct assemble_report *r, const char *param, size_t at, const char *msg)
{
	if (r->c != NULL && param != NULL && at != (size_t)-1)
		porch_check_error_at(r->c, param, at, "%s", msg);
	else if (r->c != NULL)
		porch_check_error(r->c, param, "%s", msg);
	else if (r->errors == 0 && param != NULL && at != (size_t)-1)
		porch_stage_error(r->st, "parameter '%s': %s at offset %zu", param, msg, at);
	else if (r->errors == 0 && param != NULL)
		porch_stage_error(r->st, "parameter '%s': %s", param, msg);
	else if (r->errors == 0)
		porch_stage_error(r->st, "%s", msg);
	r->errors++;
}

static void
assemble_problem(struct assemble_report *r, const char *param, const char *msg)
{
	assemble_problem_at(r, param, (size_t)-1, msg);
}

/*
 * Loads and compiles the templates the parameters name, for check and for
 * init, reporting every problem.  0, or -1 (a is then empty).
 */
static int
assemble_load(const porch_params *p, struct assemble *a, struct assemble_report *r)
{
	const char *form = porch_param_str(p, "form");
	const char *inline_tpl = porch_param_str(p, "template");
	const char *file = porch_param_str(p, "template-file");
	const char *system = porch_param_str(p, "system");
	char err[512];
	size_t at;

	a->chat = form != NULL && strcmp(form, "chat") == 0;
	if (inline_tpl != NULL && file != NULL)
		assemble_problem(r, "template-file", "give template or template-file, not both");
	if (system != NULL && !a->chat)
		assemble_problem(r, "system",
		    "system is the chat form's system message: set form to chat, or drop it");
	if (file != NULL) {
		struct tbuf text = { 0 };
		if (assemble_read(file, &text, err, sizeof err) != 0 ||
		    assemble_compile(&a->user, text.p ? text.p : "", text.len, file, err,
		    sizeof err, &at) != 0)
			assemble_problem(r, "template-file", err);
		tbuf_free(&text);
	}
	if (file == NULL || inline_tpl != NULL) {
		const char *src = inline_tpl ? inline_tpl : a->chat ? default_user : default_text;
		tpl_free(&a->user);
		if (assemble_compile(&a->user, src, strlen(src), NULL, err, sizeof err, &at) != 0)
			assemble_problem_at(r, inline_tpl ? "template" : NULL, at, err);
	}
	if (a->chat || system != NULL) {
		const char *src = system ? system : default_system;
		if (assemble_compile(&a->system, src, strlen(src), NULL, err, sizeof err, &at) != 0)
			assemble_problem_at(r, system ? "system" : NULL, at, err);
	}
	a->max_context = (size_t)porch_param_int(p, "max-context-bytes");
	a->max_prompt = (size_t)porch_param_int(p, "max-prompt-bytes");
	if (r->errors > 0) {
		tpl_free(&a->user);
		tpl_free(&a->system);
		return -1;
	}
	return 0;
}

static int
assemble_check(const porch_params *p, porch_check *c)
{
	struct assemble a;
	struct assemble_report r = { c, NULL, 0 };

	memset(&a, 0, sizeof a);
	if (assemble_load(p, &a, &r) != 0)
		return -1;
	tpl_free(&a.user);
	tpl_free(&a.system);
	return 0;
}

static int
assemble_init(porch_stage *st)
{
	struct assemble *a = calloc(1, sizeof *a);
	struct assemble_report r = { NULL, st, 0 };

	if (a == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	if (assemble_load(porch_stage_params(st), a, &r) != 0) {
		free(a);
		return -1;
	}
	porch_stage_set_data(st, a);
	return 0;
}

static const char *
assemble_meta(void *ctx, const char *key)
{
	return porch_msg_meta(ctx, key);
}

/* The prompt's length: the text, and the system message in the chat form. */
static size_t
assemble_measure(const struct assemble *a, const struct tpl_vals *v)
{
	size_t n = tpl_render(&a->user, v, NULL);
	if (a->chat)
		n += tpl_render(&a->system, v, NULL);
	return n;
}

/* Renders t into b, NUL-terminated.  0, or -1: no memory. */
static int
assemble_render(const struct tpl *t, const struct tpl_vals *v, struct tbuf *b)
{
	size_t n = tpl_render(t, v, NULL);
	b->len = 0;
	if (tbuf_reserve(b, n + 1) != 0)
		return -1;
	b->len = tpl_render(t, v, b->p);
	b->p[b->len] = '\0';
	return 0;
}

static void
assemble_process(porch_stage *st, porch_msg *m)
{
	struct assemble *a = porch_stage_data(st);
	struct tpl_vals v;
	const char *ctx = porch_msg_meta(m, "context");
	const char *session = porch_msg_session(m);
	size_t ctx_len;

	if (ctx == NULL)
		ctx = "";
	if (session == NULL)
		session = "";
	ctx_len = strlen(ctx);
	v.input = porch_msg_text(m, &v.input_len);
	v.context = ctx;
	v.context_len = ctx_len;
	if (a->max_context > 0)
		v.context_len = tpl_cut_context(ctx, ctx_len, a->max_context);
	v.session = session;
	v.session_len = strlen(session);
	v.meta = assemble_meta;
	v.meta_ctx = m;

	if (a->max_prompt > 0) {
		size_t total = assemble_measure(a, &v);
		if (total > a->max_prompt) {
			/* each byte of context counts once per {{context}}: make room for it */
			size_t n_ctx = a->user.n_context + (a->chat ? a->system.n_context : 0);
			size_t k = v.context_len, fixed = total - n_ctx * k;
			if (k > 0 && n_ctx > 0 && fixed < a->max_prompt)
				k = tpl_cut_context(ctx, ctx_len, (a->max_prompt - fixed) / n_ctx);
			else
				k = 0;
			v.context_len = k;
			if (k == 0 && (total = assemble_measure(a, &v)) > a->max_prompt) {
				porch_fail(st, m, PORCH_ERR_BAD_REQUEST,
				    "the prompt is %zu bytes without any context, more than max-prompt-bytes (%zu)",
				    total, a->max_prompt);
				return;
			}
		}
	}

	if (assemble_render(&a->user, &v, &a->buf) != 0 ||
	    (a->chat && assemble_render(&a->system, &v, &a->sbuf) != 0)) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "assemble: out of memory");
		return;
	}
	if (porch_msg_set_text(m, a->buf.p, a->buf.len) != 0 ||
	    (a->chat && a->sbuf.len > 0 && porch_msg_set_meta(m, "system", a->sbuf.p) != 0)) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "assemble: out of memory");
		return;
	}
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(st, m);
}

static void
assemble_fini(porch_stage *st)
{
	struct assemble *a = porch_stage_data(st);
	if (a == NULL)
		return;
	tpl_free(&a->user);
	tpl_free(&a->system);
	tbuf_free(&a->buf);
	tbuf_free(&a->sbuf);
	free(a);
	porch_stage_set_data(st, NULL);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.flags = PORCH_STAGE_EDITS_TEXT,
	.name = "assemble",
	.summary = "builds the prompt from a template: the question, the retrieved context, the session and metadata",
	.params = assemble_params,
	.outputs = assemble_outputs,
	.init = assemble_init,
	.process = assemble_process,
	.fini = assemble_fini,
	.description = assemble_description,
	.check = assemble_check,
};
