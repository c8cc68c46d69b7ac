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
	js_buf_free(&a->text);
	js_buf_free(&a->finish_s);
	js_buf_free(&a->usage_s);
	js_buf_free(&a->extra_s);
	js_buf_free(&a->choice_s);
	js_buf_free(&a->delta_s);
	js_buf_free(&a->choices_p);
	js_buf_free(&a->deltas_p);
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

static int oai_acc_merge_pending(struct oai_acc *a);

int
oai_acc_meta(struct oai_acc *a, oai_meta_fn *set, void *arg)
{
	int bad = 0;
	if (oai_acc_merge_pending(a) != 0)
		return OAI_NOMEM;
	if (a->raw_finish)
		set(arg, "finish-reason", a->finish_s.p);
	else if (a->finish != NULL)
		set(arg, "finish-reason", json_string_value(a->finish));
	if (a->raw_usage) {
		if (strcmp(a->usage_s.p, "{}") != 0)
			set(arg, "usage", a->usage_s.p);
	} else if (a->usage != NULL && json_object_size(a->usage) > 0) {
		bad |= oai_set_json(set, arg, "usage", a->usage);
	}
	if (a->raw_extra)
		set(arg, "openai.extra", a->extra_s.p);
	else if (a->extra != NULL && json_object_size(a->extra) > 0)
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
oai_chunk_json(int chat, const char *data, size_t len, struct oai_acc *a,
    struct oai_event *ev, char *why, size_t whylen)
{
	json_t *root, *first, *delta = NULL;
	memset(ev, 0, sizeof *ev);
	ev->text = "";
	ev->owned = 1;
	/* the scanner's events before this one are merged first, in order */
	if (oai_acc_merge_pending(a) != 0)
		return OAI_NOMEM;
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
			a->raw_finish = 0;
		}
	}
	ev->root = root;
	json_t *u = json_object_get(root, "usage");
	if (json_is_object(u)) {
		json_decref(a->usage);
		a->usage = json_incref(u);
		a->raw_usage = 0;
	}
	/* the common event (text only) allocates nothing below */
	int bad = 0;
	if (oai_has_extras(root, oai_top_basic, 0)) {
		json_t *e = oai_extras(root, oai_top_basic, 0);
		bad |= e == NULL || (ev->chunk = json_dumps(e, OAI_DUMP_FLAGS)) == NULL;
		json_decref(a->extra);
		a->extra = e;
		a->raw_extra = 0;
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
	if (ev->owned) {
		free(ev->chunk);
		free(ev->choice);
		free(ev->delta);
	}
	memset(ev, 0, sizeof *ev);
}

/* ---- the scanner's way ------------------------------------------------------ */

/*
 * What the scanner takes from an answer or an event: the members of the
 * objects it reads (the top level, choices[0], its message or delta), each
 * with its value's raw text.  A level with more members than this, or a
 * key twice (jansson keeps the last, at the first's place), is declined.
 */
#define OAI_MEMBERS 32

struct oai_member {
	const char *key;
	size_t klen;
	struct js_value v;     /* kind only, for the objects read in turn */
};

struct oai_level {
	struct oai_member m[OAI_MEMBERS];
	size_t n;
};

/* A new member of l; NULL: declined (a duplicate, or too many). */
static struct oai_member *
oai_add(struct oai_level *l, const char *key, size_t klen)
{
	if (l->n == OAI_MEMBERS)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (l->m[i].klen == klen && memcmp(l->m[i].key, key, klen) == 0)
			return NULL;
	}
	struct oai_member *m = &l->m[l->n++];
	m->key = key;
	m->klen = klen;
	m->v.kind = JS_NULL;
	m->v.p = NULL;
	m->v.n = 0;
	return m;
}

static const struct oai_member *
oai_get(const struct oai_level *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++) {
		if (js_key_is(l->m[i].key, l->m[i].klen, name))
			return &l->m[i];
	}
	return NULL;
}

/* oai_is_extra, for a member as written. */
static int
oai_is_extra_raw(const struct oai_member *m, const char *const *basic, int nulls)
{
	for (const char *const *b = basic; *b != NULL; b++) {
		if (js_key_is(m->key, m->klen, *b))
			return 0;
	}
	if (m->v.kind != JS_NULL)
		return 1;
	return nulls && !js_key_is(m->key, m->klen, "logprobs");
}

/*
 * Puts l's extras (see oai_is_extra) in b as a JSON object's text, as the
 * upstream wrote them but for white space.  The number of extras (b is
 * left empty when there are none), or -1 when out of memory.
 */
static int
oai_put_extras(struct js_buf *b, const struct oai_level *l, const char *const *basic,
    int nulls)
{
	int n = 0;
	b->len = 0;
	for (size_t i = 0; i < l->n; i++) {
		const struct oai_member *m = &l->m[i];
		if (!oai_is_extra_raw(m, basic, nulls))
			continue;
		if (js_put(b, n++ == 0 ? "{\"" : ",\"", 2) != 0 ||
		    js_put(b, m->key, m->klen) != 0 || js_put(b, "\":", 2) != 0 ||
		    js_put_compact(b, m->v.p, m->v.n) != 0)
			return -1;
	}
	if (n > 0 && js_put(b, "}", 1) != 0)
		return -1;
	return n;
}

/*
 * Reads the members of the object at s->p into l; the member named
 * inner (NULL: none), when it is an object, into *il (*inner_seen set),
 * and null is left for the caller to judge.  0 or -1 (declined).
 */
static int
oai_read_object(struct jscan *s, struct oai_level *l, const char *inner,
    struct oai_level *il, int *inner_seen)
{
	size_t count = 0;
	const char *k;
	size_t kn;
	int r;
	if (js_enter(s, '{') != 0)
		return -1;
	while ((r = js_member(s, &count, &k, &kn)) == 1) {
		struct oai_member *m = oai_add(l, k, kn);
		if (m == NULL)
			return -1;
		if (inner != NULL && js_key_is(k, kn, inner) && js_enter(s, '{') == 0) {
			/* entered: read its members, as plain ones */
			size_t ic = 0;
			int ir;
			m->v.kind = JS_OBJECT;
			*inner_seen = 1;
			while ((ir = js_member(s, &ic, &k, &kn)) == 1) {
				struct oai_member *im = oai_add(il, k, kn);
				if (im == NULL || js_value(s, &im->v) != 0)
					return -1;
			}
			if (ir < 0)
				return -1;
			continue;
		}
		if (js_value(s, &m->v) != 0)
			return -1;
	}
	return r;
}

/* What the scanner read of an answer or an event. */
struct oai_scanned {
	struct oai_level top, choice, inner; /* inner: message or delta */
	int have_choices, have_first, have_inner;
	size_t nchoices;
	const char *rest, *rest_end;         /* choices[1] to the last, as written */
};

/*
 * Reads an answer (inner "message") or an event (inner "delta") whole, as
 * far as the scanner goes: 0, or -1 (declined).  An error object, and
 * choices that is no array or whose first item is no object, are
 * declined: jansson's way words them.
 */
static int
oai_scan(const char *p, size_t len, const char *inner, struct oai_scanned *sc)
{
	struct jscan s;
	size_t count = 0, ic;
	const char *k;
	size_t kn;
	int r, ir;
	sc->top.n = sc->choice.n = sc->inner.n = 0;
	sc->have_choices = sc->have_first = sc->have_inner = 0;
	sc->nchoices = 0;
	sc->rest = sc->rest_end = NULL;
	js_init(&s, p, len);
	if (js_enter(&s, '{') != 0)
		return -1;
	while ((r = js_member(&s, &count, &k, &kn)) == 1) {
		if (js_key_is(k, kn, "error"))
			return -1;
		struct oai_member *m = oai_add(&sc->top, k, kn);
		if (m == NULL)
			return -1;
		if (!js_key_is(k, kn, "choices")) {
			if (js_value(&s, &m->v) != 0)
				return -1;
			continue;
		}
		m->v.kind = JS_ARRAY;
		if (js_enter(&s, '[') != 0)
			return -1;
		sc->have_choices = 1;
		ic = 0;
		while ((ir = js_item(&s, &ic)) == 1) {
			if (ic == 1) {
				sc->have_first = 1;
				if (oai_read_object(&s, &sc->choice, inner, &sc->inner,
				    &sc->have_inner) != 0)
					return -1;
				continue;
			}
			struct js_value v;
			if (js_value(&s, &v) != 0)
				return -1;
			if (sc->rest == NULL)
				sc->rest = v.p;
			sc->rest_end = v.p + v.n;
		}
		if (ir < 0)
			return -1;
		sc->nchoices = ic;
	}
	if (r < 0 || js_finish(&s) != 0 || !sc->have_choices)
		return -1;
	return 0;
}

/*
 * The text member name of level l: a string (unescaped into b when it
 * must be), null or absent ("", 1), or anything else (-1).  A string with
 * escapes longer than lazy bytes (0: none is) is left as written, *raw
 * set: unescaping megabytes at once would hold the loop, so the caller
 * does it a part at a time (js_unescape_part).
 */
static int
oai_scan_text(const struct oai_level *l, const char *name, struct js_buf *b,
    const char **text, size_t *tlen, int *nomem, size_t lazy, unsigned *raw)
{
	const struct oai_member *m = oai_get(l, name);
	*text = "";
	*tlen = 0;
	*raw = 0;
	if (m == NULL || m->v.kind == JS_NULL)
		return 1;
	if (m->v.kind != JS_STRING)
		return -1;
	if (lazy > 0 && m->v.escaped && m->v.n - 2 > lazy) {
		*text = m->v.p + 1;
		*tlen = m->v.n - 2;
		*raw = 1;
		return 0;
	}
	if (js_string(&m->v, b, text, tlen) != 0)
		*nomem = 1;
	return 0;
}

/* oai_answer_scan, with a text longer than lazy left as written (an->raw) */
static int
oai_answer_scan_lazy(int chat, const char *body, size_t len, struct oai_answer *an,
    oai_meta_fn *set, void *arg, size_t lazy)
{
	struct oai_scanned sc;
	int nomem = 0;
	unsigned raw = 0;
	memset(an, 0, sizeof *an);
	an->text = "";
	if (oai_scan(body, len, chat ? "message" : NULL, &sc) != 0 || !sc.have_first)
		return OAI_DECLINE;
	if (chat) {
		/* content is null when the model only called tools: no text */
		if (!sc.have_inner || oai_get(&sc.inner, "content") == NULL ||
		    oai_scan_text(&sc.inner, "content", &an->buf, &an->text, &an->tlen,
		    &nomem, lazy, &raw) < 0)
			return OAI_DECLINE;
	} else if (oai_scan_text(&sc.choice, "text", &an->buf, &an->text, &an->tlen,
	    &nomem, lazy, &raw) != 0) {
		return OAI_DECLINE;
	}
	an->raw = raw;
	if (nomem)
		return OAI_NOMEM;

	/* the metadata, as oai_answer_meta sets it */
	struct js_buf b = { 0 }, t = { 0 };
	const struct oai_member *m = oai_get(&sc.choice, "finish_reason");
	const char *v;
	size_t vn;
	int bad = 0;
	if (m != NULL && m->v.kind == JS_STRING) {
		if (js_string(&m->v, &t, &v, &vn) != 0 || js_put(&b, v, vn) != 0)
			bad = 1;
		else
			set(arg, "finish-reason", b.p);
	}
	m = oai_get(&sc.top, "usage");
	if (!bad && m != NULL && m->v.kind == JS_OBJECT) {
		b.len = 0;
		if (js_put_compact(&b, m->v.p, m->v.n) != 0)
			bad = 1;
		else if (strcmp(b.p, "{}") != 0)
			set(arg, "usage", b.p);
	}
	int n;
	if (!bad && (n = oai_put_extras(&b, &sc.top, oai_top_basic, 1)) != 0) {
		if (n < 0)
			bad = 1;
		else
			set(arg, "openai.extra", b.p);
	}
	if (!bad && (n = oai_put_extras(&b, &sc.choice,
	    chat ? oai_choice_chat : oai_choice_text, 1)) != 0) {
		if (n < 0)
			bad = 1;
		else
			set(arg, "openai.choice", b.p);
	}
	if (!bad && chat && (n = oai_put_extras(&b, &sc.inner, oai_message_basic, 1)) != 0) {
		if (n < 0)
			bad = 1;
		else
			set(arg, "openai.message", b.p);
	}
	if (!bad && sc.rest != NULL) {
		b.len = 0;
		if (js_put(&b, "[", 1) != 0 ||
		    js_put_compact(&b, sc.rest, (size_t)(sc.rest_end - sc.rest)) != 0 ||
		    js_put(&b, "]", 1) != 0)
			bad = 1;
		else
			set(arg, "openai.choices", b.p);
	}
	js_buf_free(&b);
	js_buf_free(&t);
	return bad ? OAI_NOMEM : OAI_OK;
}

int
oai_answer_scan(int chat, const char *body, size_t len, struct oai_answer *an,
    oai_meta_fn *set, void *arg)
{
	return oai_answer_scan_lazy(chat, body, len, an, set, arg, 0);
}

int
oai_answer_read(int chat, const char *body, size_t len, struct oai_answer *an,
    oai_meta_fn *set, void *arg, size_t lazy, char *why, size_t whylen)
{
	int r = oai_answer_scan_lazy(chat, body, len, an, set, arg, lazy);
	if (r != OAI_DECLINE)
		return r;
	r = oai_answer_text(chat, body, len, &an->root, &an->text, &an->tlen, why, whylen);
	if (r != OAI_OK)
		return r;
	return oai_answer_meta(chat, an->root, set, arg);
}

void
oai_answer_release(struct oai_answer *an)
{
	json_decref(an->root);
	js_buf_free(&an->buf);
	memset(an, 0, sizeof *an);
}

/*
 * Merges the events' choice and delta extras kept as text (choices_p,
 * deltas_p) into a->choice and a->message, as oai_chunk_json merges each
 * event's: once per answer, and only for the answers that had extras.
 */
static int
oai_acc_merge_pending(struct oai_acc *a)
{
	struct js_buf *list[2] = { &a->choices_p, &a->deltas_p };
	int (*merge[2])(struct oai_acc *, json_t *) = { oai_merge_choice, oai_merge_delta };
	for (int i = 0; i < 2; i++) {
		if (list[i]->len == 0)
			continue;
		/* "[" and "]" around it: the list was made with room for them */
		list[i]->p[0] = '[';
		list[i]->p[list[i]->len - 1] = ']';
		json_t *arr = json_loadb(list[i]->p, list[i]->len, 0, NULL);
		list[i]->len = 0;
		if (arr == NULL)
			return -1; /* the scanner checked it: only memory */
		size_t k;
		json_t *e;
		int bad = 0;
		json_array_foreach(arr, k, e)
			bad |= merge[i](a, e) != 0;
		json_decref(arr);
		if (bad)
			return -1;
	}
	return 0;
}

/* Keeps an event's extras (b, an object's text) to merge at the end: the
 * list is " {...},{...} " with a byte before and after for the brackets. */
static int
oai_keep_pending(struct js_buf *list, const struct js_buf *b)
{
	if (list->len == 0) {
		if (js_put(list, " ", 1) != 0)
			return -1;
	} else {
		list->p[list->len - 1] = ',';
	}
	return js_put(list, b->p, b->len) != 0 || js_put(list, " ", 1) != 0 ? -1 : 0;
}

int
oai_chunk_scan(int chat, const char *data, size_t len, struct oai_acc *a,
    struct oai_event *ev)
{
	struct oai_scanned sc;
	int nomem = 0;
	unsigned raw = 0;
	memset(ev, 0, sizeof *ev);
	ev->text = "";
	if (oai_scan(data, len, chat ? "delta" : NULL, &sc) != 0)
		return OAI_DECLINE;
	const struct oai_member *m;
	if (sc.have_first) {
		/* choices[0] is not the choice with index 0 (n > 1): jansson
		 * finds that one */
		m = oai_get(&sc.choice, "index");
		if (m != NULL && m->v.kind == JS_NUMBER && m->v.integer &&
		    !(m->v.n == 1 && m->v.p[0] == '0') &&
		    !(m->v.n == 2 && m->v.p[0] == '-' && m->v.p[1] == '0'))
			return OAI_DECLINE;
		if (chat) {
			m = oai_get(&sc.choice, "delta");
			if (m != NULL && m->v.kind != JS_OBJECT && m->v.kind != JS_NULL)
				return OAI_DECLINE;
			if (sc.have_inner && oai_scan_text(&sc.inner, "content", &a->text,
			    &ev->text, &ev->tlen, &nomem, a->lazy, &raw) < 0)
				return OAI_DECLINE;
		} else if (oai_scan_text(&sc.choice, "text", &a->text, &ev->text, &ev->tlen,
		    &nomem, a->lazy, &raw) < 0) {
			return OAI_DECLINE;
		}
	}
	/* from here on the event is the scanner's: a is changed */
	ev->raw = raw;
	const char *v;
	size_t vn;
	m = sc.have_first ? oai_get(&sc.choice, "finish_reason") : NULL;
	if (!nomem && m != NULL && m->v.kind == JS_STRING) {
		struct js_buf t = { 0 };
		a->finish_s.len = 0;
		nomem = js_string(&m->v, &t, &v, &vn) != 0 || js_put(&a->finish_s, v, vn) != 0;
		js_buf_free(&t);
		a->raw_finish = !nomem;
	}
	m = oai_get(&sc.top, "usage");
	if (!nomem && m != NULL && m->v.kind == JS_OBJECT) {
		a->usage_s.len = 0;
		nomem = js_put_compact(&a->usage_s, m->v.p, m->v.n) != 0;
		a->raw_usage = !nomem;
	}
	/* the common event (text only) allocates nothing below */
	int n;
	if (!nomem && (n = oai_put_extras(&a->extra_s, &sc.top, oai_top_basic, 0)) != 0) {
		nomem = n < 0;
		a->raw_extra = !nomem;
		ev->chunk = a->extra_s.p;
	}
	if (!nomem && sc.have_first && (n = oai_put_extras(&a->choice_s, &sc.choice,
	    chat ? oai_choice_chat : oai_choice_text, 0)) != 0) {
		nomem = n < 0 || oai_keep_pending(&a->choices_p, &a->choice_s) != 0;
		ev->choice = a->choice_s.p;
	}
	if (!nomem && sc.have_inner &&
	    (n = oai_put_extras(&a->delta_s, &sc.inner, oai_message_basic, 0)) != 0) {
		nomem = n < 0 || oai_keep_pending(&a->deltas_p, &a->delta_s) != 0;
		ev->delta = a->delta_s.p;
	}
	if (nomem) {
		memset(ev, 0, sizeof *ev);
		return OAI_NOMEM;
	}
	return OAI_OK;
}

int
oai_chunk(int chat, const char *data, size_t len, struct oai_acc *a,
    struct oai_event *ev, char *why, size_t whylen)
{
	int r = oai_chunk_scan(chat, data, len, a, ev);
	if (r != OAI_DECLINE)
		return r;
	return oai_chunk_json(chat, data, len, a, ev, why, whylen);
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
