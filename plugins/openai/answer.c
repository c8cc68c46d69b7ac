/*
 * answer.c -- the openai worker's answers, in JSON: the text of a whole
 * answer or of a streamed event, what they carry besides it (the answer's
 * metadata, a piece's extras), and error answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

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

/* ---- what an answer carries besides its text ---------------------------------- */

/* The members of each place that porch reads itself; the rest are extras. */
static const char *const oai_top_basic[] = {
	"id", "object", "created", "model", "choices", "usage", NULL
};
static const char *const oai_choice_chat[] = {
	"index", "message", "delta", "finish_reason", NULL
};
static const char *const oai_choice_text[] = { "index", "text", "finish_reason", NULL };
static const char *const oai_message_basic[] = { "role", "content", NULL };

/* Whether member key (value v) is an extra; "logprobs": null is not, as the
 * http source writes it for every choice itself. */
static int
oai_is_extra(const char *key, json_t *v, const char *const *basic, int nulls)
{
	if (oai_in(key, basic))
		return 0;
	if (!json_is_null(v))
		return 1;
	return nulls && strcmp(key, "logprobs") != 0;
}

/*
 * 1 when obj has a member not in basic (whose value is not null, unless
 * nulls count: a whole answer's "refusal": null is what the client would
 * have got): cheap, nothing is allocated.
 */
static int
oai_has_extras(json_t *obj, const char *const *basic, int nulls)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		if (oai_is_extra(key, v, basic, nulls))
			return 1;
	}
	return 0;
}

/* A new object of obj's members not in basic (and not null, unless nulls
 * count); NULL: memory. */
static json_t *
oai_extras(json_t *obj, const char *const *basic, int nulls)
{
	json_t *e = json_object();
	const char *key;
	json_t *v;
	if (e == NULL)
		return NULL;
	json_object_foreach(obj, key, v) {
		if (oai_is_extra(key, v, basic, nulls) && json_object_set(e, key, v) != 0) {
			json_decref(e);
			return NULL;
		}
	}
	return e;
}

/* Hands j's JSON text to set as key.  0, or -1 when out of memory. */
static int
oai_set_json(oai_meta_fn *set, void *arg, const char *key, json_t *j)
{
	char *s = json_dumps(j, OAI_DUMP_FLAGS);
	if (s == NULL)
		return -1;
	set(arg, key, s);
	free(s);
	return 0;
}

/* Hands obj's extras to set as key, when it has any. */
static int
oai_set_extras(oai_meta_fn *set, void *arg, const char *key, json_t *obj,
    const char *const *basic)
{
	if (!json_is_object(obj) || !oai_has_extras(obj, basic, 1))
		return 0;
	json_t *e = oai_extras(obj, basic, 1);
	int r = e == NULL ? -1 : oai_set_json(set, arg, key, e);
	json_decref(e);
	return r;
}

int
oai_answer_meta(int chat, json_t *root, oai_meta_fn *set, void *arg)
{
	json_t *choices = json_object_get(root, "choices");
	json_t *first = json_array_get(choices, 0);
	int bad = 0;
	json_t *v = json_object_get(first, "finish_reason");
	if (json_is_string(v))
		set(arg, "finish-reason", json_string_value(v));
	v = json_object_get(root, "usage");
	if (json_is_object(v) && json_object_size(v) > 0)
		bad |= oai_set_json(set, arg, "usage", v);
	bad |= oai_set_extras(set, arg, "openai.extra", root, oai_top_basic);
	bad |= oai_set_extras(set, arg, "openai.choice", first,
	    chat ? oai_choice_chat : oai_choice_text);
	if (chat)
		bad |= oai_set_extras(set, arg, "openai.message",
		    json_object_get(first, "message"), oai_message_basic);
	if (json_array_size(choices) > 1) {
		json_t *rest = json_array();
		bad |= rest == NULL;
		for (size_t i = 1; rest != NULL && i < json_array_size(choices); i++)
			bad |= json_array_append(rest, json_array_get(choices, i));
		if (rest != NULL && !bad)
			bad |= oai_set_json(set, arg, "openai.choices", rest);
		json_decref(rest);
	}
	return bad ? OAI_NOMEM : OAI_OK;
}

/* ---- a stream's extras put together ------------------------------------------- */

void
oai_acc_clear(struct oai_acc *a)
{
	json_decref(a->finish);
	json_decref(a->usage);
	json_decref(a->extra);
	json_decref(a->choice);
	json_decref(a->message);
	json_decref(a->strings);
	memset(a, 0, sizeof *a);
}

/* *slot, an object made when missing. */
static json_t *
oai_object(json_t **slot)
{
	if (*slot == NULL)
		*slot = json_object();
	return *slot;
}

/* obj[key], an object made (or put over what was there) when it is none. */
static json_t *
oai_member_object(json_t *obj, const char *key)
{
	json_t *o = json_object_get(obj, key);
	if (json_is_object(o))
		return o;
	o = json_object();
	if (o == NULL || json_object_set_new(obj, key, o) != 0)
		return NULL;
	return o;
}

/* Appends array src's items to obj[key], an array made when missing
 * (arrays in an accumulator are always its own, never an event's). */
static int
oai_extend(json_t *obj, const char *key, json_t *src)
{
	json_t *a = json_object_get(obj, key);
	if (!json_is_array(a)) {
		a = json_array();
		if (a == NULL || json_object_set_new(obj, key, a) != 0)
			return -1;
	}
	return json_array_extend(a, src);
}

/*
 * A fragment of a string that is put together at the end: holder[key]
 * is the array of its fragments (joined once, not copied at every one).
 */
static int
oai_fragment(json_t *holder, const char *key, json_t *s)
{
	json_t *a = json_object_get(holder, key);
	if (!json_is_array(a)) {
		a = json_array();
		if (a == NULL || json_object_set_new(holder, key, a) != 0)
			return -1;
	}
	return json_array_append(a, s);
}

/* The fragments of an array joined: a new string; NULL: memory. */
static json_t *
oai_join(json_t *a)
{
	size_t n = 0, i;
	json_t *s;
	json_array_foreach(a, i, s)
		n += json_string_length(s);
	char *p = malloc(n + 1), *q = p;
	if (p == NULL)
		return NULL;
	json_array_foreach(a, i, s) {
		size_t k = json_string_length(s);
		if (k > 0)
			memcpy(q, json_string_value(s), k);
		q += k;
	}
	/* fragments of valid UTF-8 (jansson checked each) join to valid UTF-8 */
	json_t *j = json_stringn_nocheck(p, n);
	free(p);
	return j;
}

/*
 * Streamed tool_calls deltas into msg's tool_calls, by their "index":
 * function.name and function.arguments are put together from their
 * fragments, id and type are the first non-empty ones, the rest the last.
 */
static int
oai_merge_tool_calls(json_t *msg, json_t *deltas)
{
	json_t *calls = json_object_get(msg, "tool_calls");
	int bad = 0;
	if (!json_is_array(calls)) {
		calls = json_array();
		if (calls == NULL || json_object_set_new(msg, "tool_calls", calls) != 0)
			return -1;
	}
	size_t i;
	json_t *d;
	json_array_foreach(deltas, i, d) {
		if (!json_is_object(d))
			continue;
		json_t *ix = json_object_get(d, "index");
		json_int_t k = json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)i;
		json_t *call = NULL;
		size_t n = json_array_size(calls), at = n;
		for (size_t j = 0; j < n; j++) {
			json_t *cj = json_array_get(calls, j);
			json_int_t kj = json_integer_value(json_object_get(cj, "index"));
			if (kj == k) {
				call = cj;
				break;
			}
			if (kj > k && at == n)
				at = j;
		}
		if (call == NULL) {
			call = json_object();
			if (call == NULL || json_object_set_new(call, "index", json_integer(k)) != 0 ||
			    json_array_insert_new(calls, at, call) != 0)
				return -1;
		}
		const char *key;
		json_t *v;
		json_object_foreach(d, key, v) {
			if (json_is_null(v) || strcmp(key, "index") == 0)
				continue;
			if (strcmp(key, "function") == 0 && json_is_object(v)) {
				json_t *fn = oai_member_object(call, "function");
				const char *fk;
				json_t *fv;
				if (fn == NULL)
					return -1;
				json_object_foreach(v, fk, fv) {
					if (json_is_null(fv))
						continue;
					if (json_is_string(fv) && (strcmp(fk, "name") == 0 ||
					    strcmp(fk, "arguments") == 0))
						bad |= oai_fragment(fn, fk, fv);
					else
						bad |= json_object_set(fn, fk, fv);
				}
			} else if (json_is_string(v)) {
				json_t *old = json_object_get(call, key);
				if (!json_is_string(old) || json_string_length(old) == 0)
					bad |= json_object_set(call, key, v);
			} else {
				bad |= json_object_set(call, key, v);
			}
		}
	}
	return bad ? -1 : 0;
}

/* A delta's extras into a: tool_calls by index, strings concatenated,
 * arrays concatenated, anything else the last one. */
static int
oai_merge_delta(struct oai_acc *a, json_t *extras)
{
	json_t *msg = oai_object(&a->message);
	const char *key;
	json_t *v;
	int bad = msg == NULL;
	json_object_foreach(extras, key, v) {
		if (bad)
			break;
		if (strcmp(key, "tool_calls") == 0 && json_is_array(v))
			bad |= oai_merge_tool_calls(msg, v);
		else if (json_is_string(v))
			bad |= oai_object(&a->strings) == NULL || oai_fragment(a->strings, key, v);
		else if (json_is_array(v))
			bad |= oai_extend(msg, key, v);
		else
			bad |= json_object_set(msg, key, v);
	}
	return bad ? -1 : 0;
}

/* A choice's extras into a: in an object (logprobs), arrays concatenated
 * (content, refusal, tokens ...); anything else the last one. */
static int
oai_merge_choice(struct oai_acc *a, json_t *extras)
{
	json_t *ch = oai_object(&a->choice);
	const char *key, *k2;
	json_t *v, *v2;
	int bad = ch == NULL;
	json_object_foreach(extras, key, v) {
		if (bad)
			break;
		if (!json_is_object(v)) {
			bad |= json_object_set(ch, key, v);
			continue;
		}
		json_t *sub = oai_member_object(ch, key);
		if (sub == NULL)
			return -1;
		json_object_foreach(v, k2, v2) {
			if (json_is_null(v2))
				continue;
			if (json_is_array(v2))
				bad |= oai_extend(sub, k2, v2);
			else
				bad |= json_object_set(sub, k2, v2);
		}
	}
	return bad ? -1 : 0;
}

int
oai_acc_meta(struct oai_acc *a, oai_meta_fn *set, void *arg)
{
	int bad = 0;
	if (a->finish != NULL)
		set(arg, "finish-reason", json_string_value(a->finish));
	if (a->usage != NULL && json_object_size(a->usage) > 0)
		bad |= oai_set_json(set, arg, "usage", a->usage);
	if (a->extra != NULL && json_object_size(a->extra) > 0)
		bad |= oai_set_json(set, arg, "openai.extra", a->extra);
	if (a->choice != NULL && json_object_size(a->choice) > 0)
		bad |= oai_set_json(set, arg, "openai.choice", a->choice);
	if (a->message == NULL && a->strings == NULL)
		return bad ? OAI_NOMEM : OAI_OK;
	json_t *msg = oai_object(&a->message);
	if (msg == NULL)
		return OAI_NOMEM;
	/* the fragments joined, in place: a is cleared next */
	size_t i;
	json_t *call, *v;
	const char *key;
	json_array_foreach(json_object_get(msg, "tool_calls"), i, call) {
		json_t *fn = json_object_get(call, "function");
		static const char *const joined[] = { "name", "arguments" };
		for (size_t k = 0; k < 2; k++) {
			json_t *frags = json_object_get(fn, joined[k]);
			if (json_is_array(frags))
				bad |= json_object_set_new(fn, joined[k], oai_join(frags));
		}
	}
	json_object_foreach(a->strings, key, v)
		bad |= json_object_set_new(msg, key, oai_join(v));
	if (json_object_size(msg) > 0)
		bad |= oai_set_json(set, arg, "openai.message", msg);
	return bad ? OAI_NOMEM : OAI_OK;
}

/*
 * The choice with index 0: choices[0] (first) nearly always; with n > 1
 * a chunk may carry another choice only, which is not read.
 */
static json_t *
oai_choice0(json_t *root, json_t *first)
{
	json_t *ix = json_object_get(first, "index");
	if (first == NULL || !json_is_integer(ix) || json_integer_value(ix) == 0)
		return first;
	size_t i;
	json_t *ch;
	json_array_foreach(json_object_get(root, "choices"), i, ch) {
		ix = json_object_get(ch, "index");
		if (json_is_object(ch) && (ix == NULL || (json_is_integer(ix) &&
		    json_integer_value(ix) == 0)))
			return ch;
	}
	return NULL;
}

/* The extras of obj for a piece (*text) and, merged, for the end. */
static int
oai_piece_extras(json_t *obj, const char *const *basic, char **text,
    struct oai_acc *a, int (*merge)(struct oai_acc *, json_t *))
{
	json_t *e = oai_extras(obj, basic, 0);
	int bad = e == NULL || (*text = json_dumps(e, OAI_DUMP_FLAGS)) == NULL;
	if (!bad && merge != NULL)
		bad = merge(a, e) != 0;
	json_decref(e);
	return bad ? -1 : 0;
}

int
oai_chunk(int chat, const char *data, size_t len, struct oai_acc *a,
    struct oai_event *ev, char *why, size_t whylen)
{
	json_t *root, *first, *delta = NULL;
	memset(ev, 0, sizeof *ev);
	ev->text = "";
	int r = oai_load(data, len, "stream event", &root, why, whylen);
	if (r != OAI_OK)
		return r;
	if ((r = oai_first_choice(root, "stream event", &first, why, whylen)) != OAI_OK)
		return oai_fail_root(&root, r);
	/* "choices": [] is e.g. the usage event */
	if ((first = oai_choice0(root, first)) != NULL) {
		if (chat) {
			delta = json_object_get(first, "delta");
			if (delta != NULL && !json_is_object(delta) && !json_is_null(delta)) {
				oai_why(why, whylen, "malformed stream event: choices[0].delta is "
				    "not an object");
				return oai_fail_root(&root, OAI_MALFORMED);
			}
			if (json_is_object(delta) &&
			    oai_text_of(delta, "content", &ev->text, &ev->tlen) < 0) {
				oai_why(why, whylen, "malformed stream event: "
				    "choices[0].delta.content is not a string");
				return oai_fail_root(&root, OAI_MALFORMED);
			}
		} else if (oai_text_of(first, "text", &ev->text, &ev->tlen) < 0) {
			oai_why(why, whylen, "malformed stream event: choices[0].text is not a string");
			return oai_fail_root(&root, OAI_MALFORMED);
		}
		json_t *fr = json_object_get(first, "finish_reason");
		if (json_is_string(fr)) {
			json_decref(a->finish);
			a->finish = json_incref(fr);
		}
	}
	ev->root = root;
	json_t *u = json_object_get(root, "usage");
	if (json_is_object(u)) {
		json_decref(a->usage);
		a->usage = json_incref(u);
	}
	/* the common event (text only) allocates nothing below */
	int bad = 0;
	if (oai_has_extras(root, oai_top_basic, 0)) {
		json_t *e = oai_extras(root, oai_top_basic, 0);
		bad |= e == NULL || (ev->chunk = json_dumps(e, OAI_DUMP_FLAGS)) == NULL;
		json_decref(a->extra);
		a->extra = e;
	}
	const char *const *cb = chat ? oai_choice_chat : oai_choice_text;
	if (!bad && first != NULL && oai_has_extras(first, cb, 0))
		bad |= oai_piece_extras(first, cb, &ev->choice, a, oai_merge_choice);
	if (!bad && json_is_object(delta) && oai_has_extras(delta, oai_message_basic, 0))
		bad |= oai_piece_extras(delta, oai_message_basic, &ev->delta, a, oai_merge_delta);
	if (bad) {
		oai_event_release(ev);
		return OAI_NOMEM;
	}
	return OAI_OK;
}

void
oai_event_release(struct oai_event *ev)
{
	json_decref(ev->root);
	free(ev->chunk);
	free(ev->choice);
	free(ev->delta);
	memset(ev, 0, sizeof *ev);
}

char *
oai_error_json(const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL), *e = NULL;
	char *s = NULL;
	if (json_is_object(root)) {
		json_t *err = json_object_get(root, "error");
		if (json_is_object(err)) {
			e = json_incref(err);
		} else if (json_is_string(err)) {
			e = json_object();
			if (e != NULL && json_object_set(e, "message", err) != 0) {
				json_decref(e);
				e = NULL;
			}
		} else if (err == NULL && json_is_string(json_object_get(root, "message"))) {
			/* vLLM's {"object": "error", "message": ...} */
			e = json_copy(root);
			if (e != NULL)
				json_object_del(e, "object");
		}
	}
	if (e != NULL)
		s = json_dumps(e, OAI_DUMP_FLAGS);
	json_decref(e);
	json_decref(root);
	return s;
}
