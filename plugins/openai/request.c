/*
 * request.c -- OpenAI-style request bodies and answers, in JSON.
 *
 * The request shapes are those of POST /v1/chat/completions and POST
 * /v1/completions as OpenAI documents them and vLLM, llama.cpp's server
 * and Ollama serve them.  A client's request that a source passed on
 * ("openai.request") is forwarded whole, but for what porch acts on;
 * without one, only the fields porch has settings for are sent.  The
 * answers are read in answer.c.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "sig.h"

void
oai_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* A decimal number as written by a user ("0.7", "1", "1e-3"); 0 or -1. */
static int
oai_number(const char *s, double *v)
{
	size_t n = strlen(s);
	/* strtod would also take " 1", "0x1p3", "inf" and "nan" */
	if (n == 0 || strspn(s, "0123456789.eE+-") != n)
		return -1;
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (*end != '\0' || errno == ERANGE || !isfinite(d))
		return -1;
	*v = d;
	return 0;
}

/* A whole number from 0 to INT_MAX, digits only; 0 or -1. */
static int
oai_count(const char *s, long long *v)
{
	size_t n = strlen(s);
	if (n == 0 || n > 10 || strspn(s, "0123456789") != n)
		return -1;
	long long x = strtoll(s, NULL, 10);
	if (x > INT_MAX)
		return -1;
	*v = x;
	return 0;
}

/* The "messages" option: a JSON array of {"role", "content"} objects. */
static json_t *
oai_messages(const char *opt, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *a = json_loads(opt, JSON_REJECT_DUPLICATES, &jerr);
	if (a == NULL) {
		oai_why(why, whylen, "option \"messages\": not JSON: %s", jerr.text);
		return NULL;
	}
	if (!json_is_array(a)) {
		oai_why(why, whylen, "option \"messages\": not a JSON array");
		json_decref(a);
		return NULL;
	}
	size_t i;
	json_t *m;
	json_array_foreach(a, i, m) {
		json_t *content = json_object_get(m, "content");
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")) ||
		    !(json_is_string(content) || json_is_array(content) || json_is_null(content))) {
			oai_why(why, whylen, "option \"messages\": item %zu is not an object "
			    "with a string \"role\" and a \"content\"", i + 1);
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The "stop" option: a JSON array of strings, or else one stop string. */
static json_t *
oai_stop_option(const char *opt, char *why, size_t whylen)
{
	if (opt[0] != '[') {
		json_t *s = json_string(opt);
		if (s == NULL)
			oai_why(why, whylen, "option \"stop\": not valid UTF-8");
		return s;
	}
	json_error_t jerr;
	json_t *a = json_loads(opt, JSON_REJECT_DUPLICATES, &jerr);
	if (a == NULL) {
		oai_why(why, whylen, "option \"stop\": not a JSON array: %s", jerr.text);
		return NULL;
	}
	size_t i;
	json_t *s;
	int good = json_is_array(a);
	if (good) {
		json_array_foreach(a, i, s) {
			if (!json_is_string(s))
				good = 0;
		}
	}
	if (!good) {
		oai_why(why, whylen, "option \"stop\": not a JSON array of strings");
		json_decref(a);
		return NULL;
	}
	return a;
}

/* A {"role", "content"} message; NULL if content is not valid UTF-8. */
static json_t *
oai_message(const char *role, const char *content, size_t len)
{
	json_t *s = json_stringn(content, len);
	if (s == NULL)
		return NULL;
	json_t *m = json_object();
	if (m == NULL || json_object_set_new(m, "role", json_string(role)) != 0 ||
	    json_object_set_new(m, "content", s) != 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

int
oai_in(const char *key, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (strcmp(key, *list) == 0)
			return 1;
	}
	return 0;
}

/* ---- the call's settings --------------------------------------------------- */

/* The options a body is made from, read and checked once per call. */
struct oai_opts {
	const char *model;      /* NULL: none (unset or empty) */
	const char *system;     /* NULL: unset */
	json_t *stop;           /* NULL: none; a string or an array of strings */
	long long max;
	double temperature, top_p;
	unsigned has_max : 1, has_temperature : 1, has_top_p : 1;
	unsigned stream : 1;    /* this call asks for a streamed answer */
	int thinking;           /* -1: unset; 0 or 1: chat_template_kwargs.enable_thinking */
	unsigned json : 1;      /* "response-format" json: one JSON object */
};

/* Reads the options of c.  0, or -1 (why filled). */
static int
oai_opts_read(const struct oai_shape *sh, const porch_call *c, struct oai_opts *o,
    char *why, size_t whylen)
{
	const char *opt;
	memset(o, 0, sizeof *o);
	if ((opt = porch_call_option(c, "model")) != NULL && *opt != '\0')
		o->model = opt;
	o->system = porch_call_option(c, "system");
	if ((opt = porch_call_option(c, "max-tokens")) != NULL) {
		if (oai_count(opt, &o->max) != 0) {
			oai_why(why, whylen, "option \"max-tokens\": '%.40s' is not a whole "
			    "number from 0 to %d", opt, INT_MAX);
			return -1;
		}
		o->has_max = 1;
	}
	if ((opt = porch_call_option(c, "temperature")) != NULL) {
		if (oai_number(opt, &o->temperature) != 0) {
			oai_why(why, whylen, "option \"temperature\": '%.40s' is not a decimal "
			    "number", opt);
			return -1;
		}
		o->has_temperature = 1;
	}
	if ((opt = porch_call_option(c, "top-p")) != NULL) {
		if (oai_number(opt, &o->top_p) != 0) {
			oai_why(why, whylen, "option \"top-p\": '%.40s' is not a decimal number", opt);
			return -1;
		}
		o->has_top_p = 1;
	}
	o->thinking = -1;
	if ((opt = porch_call_option(c, "thinking")) != NULL) {
		if (strcmp(opt, "true") == 0 || strcmp(opt, "on") == 0 || strcmp(opt, "1") == 0)
			o->thinking = 1;
		else if (strcmp(opt, "false") == 0 || strcmp(opt, "off") == 0 ||
		    strcmp(opt, "0") == 0)
			o->thinking = 0;
		else {
			oai_why(why, whylen, "option \"thinking\": '%.40s' is not true or false", opt);
			return -1;
		}
	}
	o->stream = sh->stream != 0;
	if ((opt = porch_call_option(c, "stream")) != NULL) {
		if (strcmp(opt, "true") == 0 || strcmp(opt, "1") == 0)
			o->stream = 1;
		else if (strcmp(opt, "false") == 0 || strcmp(opt, "0") == 0)
			o->stream = 0;
		else {
			oai_why(why, whylen, "option \"stream\": '%.40s' is not true or false", opt);
			return -1;
		}
	}
	if ((opt = porch_call_option(c, "response-format")) != NULL) {
		if (strcmp(opt, "json") == 0)
			o->json = 1;
		else if (strcmp(opt, "text") != 0 && *opt != '\0') {
			oai_why(why, whylen, "option \"response-format\": '%.40s' is not json or "
			    "text", opt);
			return -1;
		}
	}
	/* last: the only one that holds memory */
	if ((opt = porch_call_option(c, "stop")) != NULL && *opt != '\0' &&
	    (o->stop = oai_stop_option(opt, why, whylen)) == NULL)
		return -1;
	return 0;
}

static void
oai_opts_free(struct oai_opts *o)
{
	json_decref(o->stop);
	o->stop = NULL;
}

/* The token cap's name in this worker's requests, and the other one. */
static const char *
oai_cap_name(const struct oai_shape *sh, const char **other)
{
	/* /completions has only max_tokens */
	int mct = sh->chat && sh->max_completion_tokens;
	if (other != NULL)
		*other = mct ? "max_tokens" : "max_completion_tokens";
	return mct ? "max_completion_tokens" : "max_tokens";
}

/* ---- a body from the text ------------------------------------------------------ */

/* response_format {"type": "json_object"} (the "response-format" option
 * json), unless root asks for a format already: a client's json_schema is
 * the stricter request.  Chat only: /completions has no response_format. */
static int
oai_put_json_format(json_t *root)
{
	json_t *cur = json_object_get(root, "response_format");
	const char *type = json_string_value(json_object_get(cur, "type"));
	if (type != NULL && strcmp(type, "text") != 0)
		return 0;
	json_t *rf = json_pack("{s:s}", "type", "json_object");
	return rf == NULL || json_object_set_new(root, "response_format", rf) != 0;
}

/* Fills root from the prompt and the options.  0, -1 (why filled) or -2. */
/*
 * The thinking switch, for chat models that have one: vLLM's and
 * llama.cpp's chat_template_kwargs.enable_thinking (Qwen3, DeepSeek-R1
 * templates), merged into what the client sent there.  0, or -2.
 */
static int
oai_put_thinking(const struct oai_shape *sh, const struct oai_opts *o, json_t *root)
{
	if (o->thinking < 0 || !sh->chat)
		return 0;
	json_t *kw = json_object_get(root, "chat_template_kwargs");
	if (!json_is_object(kw)) {
		kw = json_object();
		if (kw == NULL || json_object_set_new(root, "chat_template_kwargs", kw) != 0)
			return -2;
	}
	return json_object_set_new(kw, "enable_thinking", json_boolean(o->thinking)) != 0 ? -2 : 0;
}

static int
oai_fill(const struct oai_shape *sh, const porch_call *c, const struct oai_opts *o,
    json_t *root, char *why, size_t whylen)
{
	size_t plen;
	const char *prompt = porch_call_prompt(c, &plen);
	if (prompt == NULL) {
		prompt = "";
		plen = 0;
	}
	int bad = 0; /* a jansson call failed: memory */

	json_t *model = json_string(o->model != NULL ? o->model : sh->model);
	if (model == NULL) {
		oai_why(why, whylen, "option \"model\": not valid UTF-8");
		return -1;
	}
	bad |= json_object_set_new(root, "model", model);

	if (sh->chat) {
		json_t *msgs = json_array();
		if (msgs == NULL)
			return -2;
		bad |= json_object_set_new(root, "messages", msgs);
		if (o->system != NULL) {
			json_t *m = oai_message("system", o->system, strlen(o->system));
			if (m == NULL) {
				oai_why(why, whylen, "option \"system\": not valid UTF-8");
				return -1;
			}
			bad |= json_array_append_new(msgs, m);
		}
		const char *opt = porch_call_option(c, "messages");
		if (opt != NULL) {
			json_t *a = oai_messages(opt, why, whylen);
			if (a == NULL)
				return -1;
			bad |= json_array_extend(msgs, a);
			json_decref(a);
		}
		json_t *m = oai_message("user", prompt, plen);
		if (m == NULL) {
			oai_why(why, whylen, "the prompt is not valid UTF-8");
			return -1;
		}
		bad |= json_array_append_new(msgs, m);
	} else {
		json_t *p = json_stringn(prompt, plen);
		if (p == NULL) {
			oai_why(why, whylen, "the prompt is not valid UTF-8");
			return -1;
		}
		bad |= json_object_set_new(root, "prompt", p);
	}
	if (o->has_max)
		bad |= json_object_set_new(root, oai_cap_name(sh, NULL), json_integer(o->max));
	if (o->has_temperature)
		bad |= json_object_set_new(root, "temperature", json_real(o->temperature));
	if (o->has_top_p)
		bad |= json_object_set_new(root, "top_p", json_real(o->top_p));
	if (o->stop != NULL)
		bad |= json_object_set(root, "stop", o->stop);
	bad |= json_object_set_new(root, "stream", json_boolean(o->stream));
	if (o->json && sh->chat)
		bad |= oai_put_json_format(root);
	if (bad == 0 && oai_put_thinking(sh, o, root) != 0)
		return -2;
	return bad ? -2 : 0;
}

/* ---- a client's request, forwarded ------------------------------------------------ */

/*
 * Members of a client's request that porch acts on itself (see
 * oai_forward), and those only one endpoint takes: what a document of
 * the other kind holds of these cannot be sent.
 */
static const char *const oai_acted[] = {
	"model", "messages", "prompt", "max_tokens", "max_completion_tokens",
	"temperature", "top_p", "stop", "stream", "stream_options", NULL
};
static const char *const oai_chat_only[] = {
	"tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
	"response_format", "logprobs", "top_logprobs", "modalities", "audio",
	"prediction", "reasoning_effort", "store", "metadata", "web_search_options",
	"verbosity", NULL
};
static const char *const oai_completions_only[] = {
	"suffix", "echo", "best_of", "logprobs", NULL
};

/* root[key] = v (stolen), unless root has an equal value: its bytes stay. */
static int
oai_put(json_t *root, const char *key, json_t *v)
{
	if (v == NULL)
		return -2;
	json_t *cur = json_object_get(root, key);
	if (cur != NULL && json_equal(cur, v)) {
		json_decref(v);
		return 0;
	}
	return json_object_set_new(root, key, v) != 0 ? -2 : 0;
}

/* root[key] = v, unless it is a number of that value already (1 or 1.0). */
static int
oai_put_number(json_t *root, const char *key, double v)
{
	json_t *cur = json_object_get(root, key);
	if (json_is_number(cur) && json_number_value(cur) == v)
		return 0;
	return json_object_set_new(root, key, json_real(v)) != 0 ? -2 : 0;
}

/* The same stop sequences: equal, or "END" and ["END"]. */
static int
oai_stop_same(json_t *cur, json_t *want)
{
	if (cur == NULL)
		return 0;
	if (json_equal(cur, want))
		return 1;
	if (json_is_string(cur) && json_is_array(want) && json_array_size(want) == 1)
		return json_equal(cur, json_array_get(want, 0));
	if (json_is_array(cur) && json_array_size(cur) == 1 && json_is_string(want))
		return json_equal(json_array_get(cur, 0), want);
	return 0;
}

/*
 * The token cap under the name the upstream takes: the option, else what
 * the document has under either name (null is none); the other name goes.
 */
static int
oai_put_cap(const struct oai_shape *sh, const struct oai_opts *o, json_t *root)
{
	const char *other;
	const char *name = oai_cap_name(sh, &other);
	if (sh->chat && sh->cap_as_sent) {
		/* the name the client used, when it used one (null is none) */
		json_t *mct = json_object_get(root, "max_completion_tokens");
		if (mct != NULL && !json_is_null(mct)) {
			name = "max_completion_tokens";
			other = "max_tokens";
		}
	}
	json_t *cur = json_object_get(root, name), *alt = json_object_get(root, other);
	int bad = 0;
	if (o->has_max) {
		if (!json_is_integer(cur) || json_integer_value(cur) != o->max)
			bad |= json_object_set_new(root, name, json_integer(o->max));
	} else if (cur != NULL && !json_is_null(cur)) {
		/* as sent */
	} else if (alt != NULL && !json_is_null(alt)) {
		bad |= json_object_set(root, name, alt);
	} else if (cur != NULL) {
		bad |= json_object_del(root, name);
	}
	if (alt != NULL)
		bad |= json_object_del(root, other);
	return bad ? -2 : 0;
}

static int
oai_is_text_part(json_t *part)
{
	json_t *t = json_object_get(part, "type");
	return json_is_string(t) && strcmp(json_string_value(t), "text") == 0;
}

/*
 * 1 when a message's content has the text t: a string, or its text parts'
 * texts joined by "\n" (null: the empty text).  Compared in place.
 */
static int
oai_content_is(json_t *content, const char *t, size_t n)
{
	if (content == NULL || json_is_null(content))
		return n == 0;
	if (json_is_string(content))
		return json_string_length(content) == n &&
		    memcmp(json_string_value(content), t, n) == 0;
	if (!json_is_array(content))
		return 0;
	size_t off = 0, i;
	int first = 1;
	json_t *part;
	json_array_foreach(content, i, part) {
		if (!oai_is_text_part(part))
			continue;
		if (!first) {
			if (off >= n || t[off] != '\n')
				return 0;
			off++;
		}
		first = 0;
		json_t *s = json_object_get(part, "text");
		size_t k = json_string_length(s); /* 0 if not a string */
		if (k > n - off || (k > 0 && memcmp(json_string_value(s), t + off, k) != 0))
			return 0;
		off += k;
	}
	return off == n;
}

/*
 * Gives msg the text t: string (or null) content becomes t; in an array,
 * the text parts become one {"type": "text", "text": t} at the first's
 * place (first, if there was none), and every other part stays where it is.
 */
static int
oai_set_content(json_t *msg, const char *t, size_t n, const char *what,
    char *why, size_t whylen)
{
	json_t *s = json_stringn(t, n);
	if (s == NULL) {
		oai_why(why, whylen, "%s is not valid UTF-8", what);
		return -1;
	}
	json_t *content = json_object_get(msg, "content");
	if (!json_is_array(content))
		return json_object_set_new(msg, "content", s) != 0 ? -2 : 0;
	json_t *part = json_object(), *a = json_array();
	int bad = part == NULL || a == NULL;
	bad |= json_object_set_new(part, "type", json_string("text"));
	bad |= json_object_set_new(part, "text", s);
	int placed = 0;
	size_t i;
	json_t *p;
	json_array_foreach(content, i, p) {
		if (!oai_is_text_part(p))
			bad |= json_array_append(a, p);
		else if (!placed++)
			bad |= json_array_append(a, part);
	}
	if (!placed)
		bad |= json_array_insert(a, 0, part);
	json_decref(part);
	if (bad) {
		json_decref(a);
		return -2;
	}
	return json_object_set_new(msg, "content", a) != 0 ? -2 : 0;
}

static const char *
oai_role(json_t *msg)
{
	json_t *r = json_object_get(msg, "role");
	return json_is_string(r) ? json_string_value(r) : "";
}

/*
 * A chat request's messages, as sent, but for the last user message's
 * text when it is no longer the prompt, and the leading system (or
 * developer) message's when it is no longer the "system" option: stages
 * may have changed them.
 */
static int
oai_forward_messages(const struct oai_opts *o, const char *prompt, size_t plen,
    json_t *root, char *why, size_t whylen)
{
	json_t *msgs = json_object_get(root, "messages");
	if (!json_is_array(msgs)) {
		oai_why(why, whylen, "metadata \"openai.request\": \"messages\" is not an array");
		return -1;
	}
	json_t *user = NULL;
	for (size_t i = json_array_size(msgs); i-- > 0;) {
		json_t *m = json_array_get(msgs, i);
		if (strcmp(oai_role(m), "user") == 0) {
			user = m;
			break;
		}
	}
	int r = 0;
	if (user != NULL) {
		if (!oai_content_is(json_object_get(user, "content"), prompt, plen))
			r = oai_set_content(user, prompt, plen, "the prompt", why, whylen);
	} else if (plen > 0) {
		json_t *m = oai_message("user", prompt, plen);
		if (m == NULL) {
			oai_why(why, whylen, "the prompt is not valid UTF-8");
			return -1;
		}
		r = json_array_append_new(msgs, m) != 0 ? -2 : 0;
	}
	if (r != 0 || o->system == NULL)
		return r;
	size_t slen = strlen(o->system);
	json_t *first = json_array_get(msgs, 0);
	const char *role = oai_role(first);
	if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
		if (!oai_content_is(json_object_get(first, "content"), o->system, slen))
			r = oai_set_content(first, o->system, slen, "option \"system\"", why, whylen);
	} else if (slen > 0) {
		json_t *m = oai_message("system", o->system, slen);
		if (m == NULL) {
			oai_why(why, whylen, "option \"system\": not valid UTF-8");
			return -1;
		}
		r = json_array_insert_new(msgs, 0, m) != 0 ? -2 : 0;
	}
	return r;
}

/* A completion request's prompt (a string, or [string]) replaced by the
 * call's when they differ; any other prompt goes as sent. */
static int
oai_forward_prompt(const char *prompt, size_t plen, json_t *root, char *why, size_t whylen)
{
	json_t *p = json_object_get(root, "prompt"), *in = p;
	if (json_is_array(p) && json_array_size(p) == 1)
		in = json_array_get(p, 0);
	if (!json_is_string(in) || oai_content_is(in, prompt, plen))
		return 0;
	json_t *s = json_stringn(prompt, plen);
	if (s == NULL) {
		oai_why(why, whylen, "the prompt is not valid UTF-8");
		return -1;
	}
	if (in != p)
		return json_array_set_new(p, 0, s) != 0 ? -2 : 0;
	return json_object_set_new(root, "prompt", s) != 0 ? -2 : 0;
}

/*
 * A client's request of the worker's own kind, edited in place: every
 * member stays as sent but for what porch acts on (model, the token cap,
 * temperature, top_p, stop, stream and stream_options, the prompt and the
 * system message), which is replaced only when the call's differs.
 */
static int
oai_forward(const struct oai_shape *sh, const porch_call *c, const struct oai_opts *o,
    json_t *root, char *why, size_t whylen)
{
	int r = 0;
	if (o->model != NULL || !json_is_string(json_object_get(root, "model"))) {
		json_t *m = json_string(o->model != NULL ? o->model : sh->model);
		if (m == NULL) {
			oai_why(why, whylen, "option \"model\": not valid UTF-8");
			return -1;
		}
		if ((r = oai_put(root, "model", m)) != 0)
			return r;
	}
	if ((r = oai_put_cap(sh, o, root)) != 0)
		return r;
	if (o->has_temperature && (r = oai_put_number(root, "temperature", o->temperature)) != 0)
		return r;
	if (o->has_top_p && (r = oai_put_number(root, "top_p", o->top_p)) != 0)
		return r;
	if (o->stop != NULL && !oai_stop_same(json_object_get(root, "stop"), o->stop) &&
	    json_object_set(root, "stop", o->stop) != 0)
		return -2;
	/* stream as the client asked (absent and null are false): only a call
	 * that streams otherwise says so, and then stream_options, which OpenAI
	 * refuses without stream, goes; a client's own mistake goes as sent */
	int asked = json_is_true(json_object_get(root, "stream"));
	if (asked != (int)o->stream) {
		if ((r = oai_put(root, "stream", json_boolean(o->stream))) != 0)
			return r;
		if (!o->stream && json_object_get(root, "stream_options") != NULL)
			json_object_del(root, "stream_options");
	}

	if (o->json && sh->chat && oai_put_json_format(root) != 0)
		return -2;

	if ((r = oai_put_thinking(sh, o, root)) != 0)
		return r;
	size_t plen;
	const char *prompt = porch_call_prompt(c, &plen);
	if (prompt == NULL) {
		prompt = "";
		plen = 0;
	}
	if (sh->chat)
		return oai_forward_messages(o, prompt, plen, root, why, whylen);
	return oai_forward_prompt(prompt, plen, root, why, whylen);
}

/*
 * What of a chat request's messages /completions cannot carry (the body
 * is made from the text): anything but plain text from system, developer,
 * user and assistant.  0, or -1 with why naming it.
 */
static int
oai_messages_plain(json_t *doc, const char *to, char *why, size_t whylen)
{
	json_t *msgs = json_object_get(doc, "messages");
	if (!json_is_array(msgs)) {
		oai_why(why, whylen, "metadata \"openai.request\": \"messages\" is not an array");
		return -1;
	}
	size_t i, k;
	json_t *m, *v;
	const char *key;
	json_array_foreach(msgs, i, m) {
		const char *role = oai_role(m);
		if (!json_is_object(m) || !(strcmp(role, "system") == 0 ||
		    strcmp(role, "developer") == 0 || strcmp(role, "user") == 0 ||
		    strcmp(role, "assistant") == 0)) {
			oai_why(why, whylen, "messages[%zu] (role '%.20s') cannot be sent to %s",
			    i, role, to);
			return -1;
		}
		json_object_foreach(m, key, v) {
			if (json_is_null(v) || strcmp(key, "role") == 0 || strcmp(key, "content") == 0)
				continue;
			oai_why(why, whylen, "messages[%zu].%.40s cannot be sent to %s", i, key, to);
			return -1;
		}
		json_t *content = json_object_get(m, "content");
		if (!json_is_array(content))
			continue;
		json_array_foreach(content, k, v) {
			if (oai_is_text_part(v))
				continue;
			json_t *t = json_object_get(v, "type");
			oai_why(why, whylen, "messages[%zu].content[%zu] (%.40s) cannot be sent to %s",
			    i, k, json_is_string(t) ? json_string_value(t) : "not a text part", to);
			return -1;
		}
	}
	return 0;
}

/*
 * A client's request of the other kind than the worker's endpoint: built
 * from the text as without one, when the document holds nothing the
 * endpoint cannot take (refused then, naming it, rather than sent
 * altered); its members both endpoints take (n, seed, user, penalties,
 * logit_bias, unknown ones) go along.
 */
static int
oai_cross(const struct oai_shape *sh, const porch_call *c, const struct oai_opts *o,
    json_t *doc, json_t **out, char *why, size_t whylen)
{
	const char *to = sh->chat ? "/v1/chat/completions" : "/v1/completions";
	const char *const *only = sh->chat ? oai_completions_only : oai_chat_only;
	const char *key;
	json_t *v;
	json_object_foreach(doc, key, v) {
		if (!json_is_null(v) && !json_is_false(v) && oai_in(key, only)) {
			oai_why(why, whylen, "%.40s cannot be sent to %s", key, to);
			return -1;
		}
	}
	if (!sh->chat) {
		if (oai_messages_plain(doc, to, why, whylen) != 0)
			return -1;
	} else {
		json_t *p = json_object_get(doc, "prompt");
		if (json_is_array(p) && json_array_size(p) == 1)
			p = json_array_get(p, 0);
		if (!json_is_string(p)) {
			oai_why(why, whylen, "prompt (not one string) cannot be sent to %s", to);
			return -1;
		}
	}
	/* the document's settings where no option overrides them */
	struct oai_opts oo = *o;
	if (oo.model == NULL && json_is_string(v = json_object_get(doc, "model")) &&
	    json_string_length(v) > 0)
		oo.model = json_string_value(v);
	if (!oo.has_max) {
		v = json_object_get(doc, "max_completion_tokens");
		if (!json_is_integer(v))
			v = json_object_get(doc, "max_tokens");
		if (json_is_integer(v) && json_integer_value(v) >= 0) {
			oo.has_max = 1;
			oo.max = json_integer_value(v);
		}
	}
	if (!oo.has_temperature && json_is_number(v = json_object_get(doc, "temperature"))) {
		oo.has_temperature = 1;
		oo.temperature = json_number_value(v);
	}
	if (!oo.has_top_p && json_is_number(v = json_object_get(doc, "top_p"))) {
		oo.has_top_p = 1;
		oo.top_p = json_number_value(v);
	}
	if (oo.stop == NULL && (json_is_string(v = json_object_get(doc, "stop")) ||
	    json_is_array(v)))
		oo.stop = v; /* borrowed: oo is not freed */
	json_t *root = json_object();
	if (root == NULL)
		return -2;
	int r = oai_fill(sh, c, &oo, root, why, whylen);
	json_object_foreach(doc, key, v) {
		if (r != 0)
			break;
		if (json_is_null(v) || oai_in(key, oai_acted) || oai_in(key, only))
			continue;
		r = json_object_set(root, key, v) != 0 ? -2 : 0;
	}
	v = json_object_get(doc, "stream_options");
	if (r == 0 && o->stream && v != NULL && !json_is_null(v))
		r = json_object_set(root, "stream_options", v) != 0 ? -2 : 0;
	if (r != 0) {
		json_decref(root);
		return r;
	}
	*out = root;
	return 0;
}

/* The body from a client's request (the "openai.request" option). */
static int
oai_from_request(const struct oai_shape *sh, const porch_call *c, const struct oai_opts *o,
    const char *doc, json_t **root, char *why, size_t whylen)
{
	/* one parse and, by the caller, one dump: the way when the fast
	 * path (oai_request_fast) cannot say the document goes as it is */
	json_error_t jerr;
	json_t *d = json_loadb(doc, strlen(doc), JSON_ALLOW_NUL, &jerr);
	if (!json_is_object(d)) {
		oai_why(why, whylen, "metadata \"openai.request\": not a JSON object%s%s",
		    d == NULL ? ": " : "", d == NULL ? jerr.text : "");
		json_decref(d);
		return -1;
	}
	int chat = json_object_get(d, "messages") != NULL;
	if (!chat && json_object_get(d, "prompt") == NULL) {
		oai_why(why, whylen, "metadata \"openai.request\": neither \"messages\" "
		    "nor \"prompt\"");
		json_decref(d);
		return -1;
	}
	int r;
	if (chat == (sh->chat != 0)) {
		r = oai_forward(sh, c, o, d, why, whylen);
		*root = d;
	} else {
		r = oai_cross(sh, c, o, d, root, why, whylen);
		json_decref(d);
	}
	return r;
}

/*
 * 1 when c's document ("openai.request") can go to the upstream as it is:
 * oai_forward would make a body of the same meaning of it.  Its source's
 * signature (sig.h) says what it derived from the document; the document
 * is still that one (length and hash), of this endpoint's kind; every
 * option porch acts on is still what the source set, so each member
 * oai_forward would compare with one is equal to it (model, the cap,
 * temperature, top_p, stop, stream, the system message); the cap is under
 * the name this worker sends (oai_put_cap renames it otherwise); and the
 * prompt is still the request's input, which the source took from the
 * document (the last user message, or the prompt).  Anything else: 0,
 * and the document is read and edited.  On 1, *len is its length.
 */
static int
oai_request_fast(const struct oai_shape *sh, const porch_call *c, const char *doc,
    size_t *len)
{
	const char *sig = porch_call_option(c, OAI_SIG_KEY);
	/* a thinking switch or a JSON format is not the client's: the body is edited */
	const char *rf = porch_call_option(c, "response-format");
	if (sig == NULL || porch_call_option(c, "thinking") != NULL ||
	    (rf != NULL && strcmp(rf, "json") == 0))
		return 0;
	const char *value[OAI_SIG_FIELDS];
	for (int i = 0; i < OAI_SIG_FIELDS; i++)
		value[i] = porch_call_option(c, oai_sig_options[i]);
	size_t n = strlen(doc);
	char cap;
	if (!oai_sig_match(sig, sh->chat ? 'c' : 'p', doc, n, value, &cap))
		return 0;
	/* the name oai_put_cap would send the cap under: the client's */
	int mct = sh->chat && sh->max_completion_tokens;
	if ((cap == 'T' && mct) ||
	    (cap == 'C' && !(mct || (sh->chat && sh->cap_as_sent))))
		return 0;
	size_t plen, ilen;
	const char *prompt = porch_call_prompt(c, &plen);
	const char *input = porch_call_input(c, &ilen);
	if (prompt == NULL)
		plen = 0;
	if (input == NULL)
		ilen = 0;
	if (plen != ilen || (plen > 0 && memcmp(prompt, input, plen) != 0))
		return 0;
	*len = n;
	return 1;
}

int
oai_request_body_ref(const struct oai_shape *sh, const porch_call *c,
    const char **body, size_t *len, char **owned, char *why, size_t whylen)
{
	const char *doc = porch_call_option(c, "openai.request");
	*owned = NULL;
	if (doc != NULL && oai_request_fast(sh, c, doc, len)) {
		*body = doc;
		return 0;
	}
	int r = oai_request_body(sh, c, owned, len, why, whylen);
	*body = *owned;
	return r;
}

int
oai_request_body(const struct oai_shape *sh, const porch_call *c,
    char **body, size_t *len, char *why, size_t whylen)
{
	struct oai_opts o;
	json_t *root = NULL;
	int r = oai_opts_read(sh, c, &o, why, whylen);
	if (r != 0)
		return r;
	const char *doc = porch_call_option(c, "openai.request");
	if (doc != NULL) {
		r = oai_from_request(sh, c, &o, doc, &root, why, whylen);
	} else if ((root = json_object()) == NULL) {
		r = -2;
	} else {
		r = oai_fill(sh, c, &o, root, why, whylen);
	}
	if (r == 0) {
		*body = json_dumps(root, OAI_DUMP_FLAGS);
		if (*body == NULL)
			r = -2;
		else
			*len = strlen(*body);
	}
	json_decref(root);
	oai_opts_free(&o);
	return r;
}

