/*
 * request.c -- OpenAI-style request bodies and answers, in JSON.
 *
 * The request shapes are those of POST /v1/chat/completions and POST
 * /v1/completions as OpenAI documents them and vLLM, llama.cpp's server
 * and Ollama serve them; only the fields porch has settings for are sent.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

/* Reals as a user writes them: 0.7, not 0.69999999999999996. */
#define OAI_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

static void oai_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
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

/* Fills root from the call.  0, -1 (why filled) or -2 (memory). */
static int
oai_fill(const struct oai_shape *sh, const porch_call *c, json_t *root,
    char *why, size_t whylen)
{
	const char *opt;
	size_t plen;
	const char *prompt = porch_call_prompt(c, &plen);
	if (prompt == NULL) {
		prompt = "";
		plen = 0;
	}
	int bad = 0; /* a jansson call failed: memory */

	opt = porch_call_option(c, "model");
	json_t *model = json_string(opt != NULL && *opt != '\0' ? opt : sh->model);
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
		if ((opt = porch_call_option(c, "system")) != NULL) {
			json_t *m = oai_message("system", opt, strlen(opt));
			if (m == NULL) {
				oai_why(why, whylen, "option \"system\": not valid UTF-8");
				return -1;
			}
			bad |= json_array_append_new(msgs, m);
		}
		if ((opt = porch_call_option(c, "messages")) != NULL) {
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

	if ((opt = porch_call_option(c, "max-tokens")) != NULL) {
		long long n;
		if (oai_count(opt, &n) != 0) {
			oai_why(why, whylen, "option \"max-tokens\": '%.40s' is not a whole "
			    "number from 0 to %d", opt, INT_MAX);
			return -1;
		}
		bad |= json_object_set_new(root, "max_tokens", json_integer(n));
	}
	static const char *const reals[][2] = {
		{ "temperature", "temperature" }, { "top-p", "top_p" },
	};
	for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
		if ((opt = porch_call_option(c, reals[i][0])) == NULL)
			continue;
		double v;
		if (oai_number(opt, &v) != 0) {
			oai_why(why, whylen, "option \"%s\": '%.40s' is not a decimal number",
			    reals[i][0], opt);
			return -1;
		}
		bad |= json_object_set_new(root, reals[i][1], json_real(v));
	}
	if ((opt = porch_call_option(c, "stop")) != NULL && *opt != '\0') {
		json_t *s = oai_stop_option(opt, why, whylen);
		if (s == NULL)
			return -1;
		bad |= json_object_set_new(root, "stop", s);
	}
	bad |= json_object_set_new(root, "stream", json_boolean(sh->stream));
	return bad ? -2 : 0;
}

int
oai_request_body(const struct oai_shape *sh, const porch_call *c,
    char **body, size_t *len, char *why, size_t whylen)
{
	json_t *root = json_object();
	if (root == NULL)
		return -2;
	int r = oai_fill(sh, c, root, why, whylen);
	if (r == 0) {
		*body = json_dumps(root, OAI_DUMP_FLAGS);
		if (*body == NULL)
			r = -2;
		else
			*len = strlen(*body);
	}
	json_decref(root);
	return r;
}

/* The message of an {"error": ...} answer, or NULL if root is none. */
static const char *
oai_error_of(json_t *root)
{
	json_t *e = json_object_get(root, "error");
	if (e == NULL)
		return NULL;
	if (json_is_string(e))
		return json_string_value(e);
	json_t *m = json_object_get(e, "message");
	if (json_is_string(m))
		return json_string_value(m);
	return "(no message)";
}

/* Copies at most outlen - 1 bytes, control characters as spaces, cut
 * at a UTF-8 character's start and marked with "..." when cut. */
static void
oai_printable(const char *p, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;
	if (outlen == 0)
		return;
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' '))
		len--;
	for (i = 0; i < len && o + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)p[i];
		out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	if (i < len && outlen > 4) {
		o = o + 4 > outlen ? outlen - 4 : o;
		while (o > 0 && ((unsigned char)out[o] & 0xc0) == 0x80)
			o--;
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

void
oai_error_excerpt(const char *body, size_t len, char *out, size_t outlen)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *m = NULL;
	if (json_is_object(root)) {
		m = oai_error_of(root);
		if (m == NULL && json_is_string(json_object_get(root, "message")))
			m = json_string_value(json_object_get(root, "message"));
		if (m == NULL && json_is_string(json_object_get(root, "detail")))
			m = json_string_value(json_object_get(root, "detail"));
	}
	if (m != NULL)
		oai_printable(m, strlen(m), out, outlen);
	else if (len == 0)
		snprintf(out, outlen, "(empty body)");
	else
		oai_printable(body, len, out, outlen);
	json_decref(root);
}

/*
 * choices[0] of root, which must be an object; *first is NULL when choices
 * is an empty array.  OAI_OK, OAI_MALFORMED or OAI_ERROR.
 */
static int
oai_first_choice(json_t *root, const char *what, json_t **first, char *why, size_t whylen)
{
	const char *err = oai_error_of(root);
	if (err != NULL) {
		oai_printable(err, strlen(err), why, whylen);
		return OAI_ERROR;
	}
	json_t *choices = json_object_get(root, "choices");
	if (!json_is_array(choices)) {
		oai_why(why, whylen, "malformed %s: no \"choices\" array", what);
		return OAI_MALFORMED;
	}
	*first = json_array_get(choices, 0);
	if (*first != NULL && !json_is_object(*first)) {
		oai_why(why, whylen, "malformed %s: choices[0] is not an object", what);
		return OAI_MALFORMED;
	}
	return OAI_OK;
}

/* Parses JSON that must be an object; OAI_OK or OAI_MALFORMED. */
static int
oai_load(const char *p, size_t len, const char *what, json_t **root, char *why, size_t whylen)
{
	json_error_t jerr;
	*root = json_loadb(p, len, 0, &jerr);
	if (*root == NULL) {
		char head[48];
		oai_printable(p, len, head, sizeof head);
		oai_why(why, whylen, "malformed %s: not JSON (%s): '%s'", what, jerr.text, head);
		return OAI_MALFORMED;
	}
	if (!json_is_object(*root)) {
		oai_why(why, whylen, "malformed %s: not a JSON object", what);
		json_decref(*root);
		*root = NULL;
		return OAI_MALFORMED;
	}
	return OAI_OK;
}

/* Reads a string member (or null, as empty) of obj into *text. */
static int
oai_text_of(json_t *obj, const char *key, const char **text, size_t *tlen)
{
	json_t *s = json_object_get(obj, key);
	if (json_is_string(s)) {
		*text = json_string_value(s);
		*tlen = json_string_length(s);
		return 0;
	}
	*text = "";
	*tlen = 0;
	return s == NULL || json_is_null(s) ? 1 : -1;
}

static int
oai_fail_root(json_t **root, int r)
{
	json_decref(*root);
	*root = NULL;
	return r;
}

int
oai_answer_text(int chat, const char *body, size_t len, json_t **root,
    const char **text, size_t *tlen, char *why, size_t whylen)
{
	json_t *first;
	int r = oai_load(body, len, "answer", root, why, whylen);
	if (r != OAI_OK)
		return r;
	if ((r = oai_first_choice(*root, "answer", &first, why, whylen)) != OAI_OK)
		return oai_fail_root(root, r);
	if (first == NULL) {
		oai_why(why, whylen, "malformed answer: \"choices\" is empty");
		return oai_fail_root(root, OAI_MALFORMED);
	}
	if (chat) {
		json_t *msg = json_object_get(first, "message");
		/* content is null when the model only called tools: no text */
		if (!json_is_object(msg) || oai_text_of(msg, "content", text, tlen) < 0 ||
		    json_object_get(msg, "content") == NULL) {
			oai_why(why, whylen, "malformed answer: no choices[0].message.content");
			return oai_fail_root(root, OAI_MALFORMED);
		}
	} else if (oai_text_of(first, "text", text, tlen) != 0) {
		oai_why(why, whylen, "malformed answer: no choices[0].text string");
		return oai_fail_root(root, OAI_MALFORMED);
	}
	return OAI_OK;
}

int
oai_chunk_text(int chat, const char *data, size_t len, json_t **root,
    const char **text, size_t *tlen, char *why, size_t whylen)
{
	json_t *first;
	int r = oai_load(data, len, "stream event", root, why, whylen);
	if (r != OAI_OK)
		return r;
	if ((r = oai_first_choice(*root, "stream event", &first, why, whylen)) != OAI_OK)
		return oai_fail_root(root, r);
	*text = "";
	*tlen = 0;
	if (first == NULL)
		return OAI_OK; /* e.g. the usage event: "choices": [] */
	if (chat) {
		json_t *delta = json_object_get(first, "delta");
		if (delta != NULL && !json_is_object(delta)) {
			oai_why(why, whylen, "malformed stream event: choices[0].delta is not an object");
			return oai_fail_root(root, OAI_MALFORMED);
		}
		if (delta != NULL && oai_text_of(delta, "content", text, tlen) < 0) {
			oai_why(why, whylen, "malformed stream event: "
			    "choices[0].delta.content is not a string");
			return oai_fail_root(root, OAI_MALFORMED);
		}
	} else if (oai_text_of(first, "text", text, tlen) < 0) {
		oai_why(why, whylen, "malformed stream event: choices[0].text is not a string");
		return oai_fail_root(root, OAI_MALFORMED);
	}
	return OAI_OK;
}
