/* model.c -- the classify stage's question to a model and the reading of its answer. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "model.h"

const char cls_default_prompt[] =
    "Classify the request below; do not answer it. Reply with one JSON object "
    "and nothing else, with two members, \"category\" and \"complexity\".\n"
    "category, one of: code (write, fix, explain or review code, commands, "
    "queries, regular expressions); reasoning (maths, logic, analysis or a "
    "decision worked out step by step); creative (stories, poems, slogans, "
    "names, jokes, brainstorming); extraction (pull given fields or entities "
    "out of a given text); summary (condense a given text or a known work); "
    "classification (put a given text into given or implied classes); chat "
    "(greetings, general questions, advice, small talk).\n"
    "complexity, one of: simple (one short, self-contained ask); moderate (a "
    "few parts or constraints, or about a paragraph of input); complex (many "
    "parts or constraints, a long input, design or deep analysis, a long "
    "answer).\n"
    "\n"
    "The request:\n"
    "{text}";

char *
cls_model_prompt(const char *prompt, const char *text, size_t len, size_t *out_len)
{
	const char *at = strstr(prompt, "{text}");
	size_t head = at != NULL ? (size_t)(at - prompt) : strlen(prompt);
	const char *tail = at != NULL ? at + 6 : "";
	const char *sep = at != NULL ? "" : "\n\n";
	size_t n = head + strlen(sep) + len + strlen(tail);
	char *p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	char *o = p;
	memcpy(o, prompt, head);
	o += head;
	memcpy(o, sep, strlen(sep));
	o += strlen(sep);
	memcpy(o, text, len);
	o += len;
	memcpy(o, tail, strlen(tail));
	o += strlen(tail);
	*o = '\0';
	*out_len = n;
	return p;
}

static int
space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The label a member names: its index, or -1. */
static int
member(json_t *o, const char *key, int (*of)(const char *, size_t))
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return -1;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	while (n > 0 && space((unsigned char)*s))
		s++, n--;
	while (n > 0 && space((unsigned char)s[n - 1]))
		n--;
	return of(s, n);
}

int
cls_model_parse(const char *answer, size_t n, struct cls_labels *out)
{
	const char *s = answer;
	while (n > 0 && space((unsigned char)*s))
		s++, n--;
	while (n > 0 && space((unsigned char)s[n - 1]))
		n--;
	/* ```json\n{...}\n``` */
	if (n >= 6 && memcmp(s, "```", 3) == 0 && memcmp(s + n - 3, "```", 3) == 0) {
		const char *nl = memchr(s, '\n', n - 3);
		if (nl == NULL)
			return -1;
		n -= (size_t)(nl + 1 - s) + 3;
		s = nl + 1;
	}
	if (n == 0 || *s != '{')
		return -1;
	json_error_t err;
	json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &err);
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	int cat = member(o, "category", cls_category_of);
	int cx = member(o, "complexity", cls_complexity_of);
	json_decref(o);
	if (cat < 0 || cx < 0)
		return -1;
	out->category = (enum cls_category)cat;
	out->complexity = (enum cls_complexity)cx;
	return 0;
}
