/*
 * openai.c -- the OpenAI-shaped API: checking chat and completion requests
 * (and /generate's) and turning them into a prompt and metadata, whole
 * answers (chat.completion, text_completion), and the model list.
 *
 * A request maps to a message as the inference stage and the workers read
 * it: text = the last user message's text (chat) or the prompt; metadata
 * "openai.request" (the body as the client sent it, which the openai
 * worker forwards whole), "stream" (the client's choice), "system" (a
 * leading system or developer message's text), "model", "max-tokens",
 * "temperature", "top-p", "stop" (a JSON array).
 *
 * Answers carry what the worker brought back (finish reason, usage, tool
 * calls, logprobs, more choices; see plugin.h).  When a worker gives no
 * usage, the counts are porch's own, and approximate: whitespace-separated
 * words of the prompt (every message's text) and of the answer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "../openai/sig.h"

void
prompt_free(struct prompt *pr)
{
	free(pr->own);
	free(pr->user);
	for (size_t i = 0; i < pr->n_meta; i++)
		free(pr->meta[i].own);
	memset(pr, 0, sizeof *pr);
}

/* 400 naming the field at fault; returns -1. */
static int bad(struct hreq *h, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
bad(struct hreq *h, const char *param, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	answer_error_extra(h, 400, param, code, NULL, msg);
	return -1;
}

static const char *
jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "something else";
}

/* Sets metadata key (a constant) to value, and own (value itself, or NULL
 * when value is the request's) is the prompt's to free.  0, or -1. */
static int
meta_set(struct prompt *pr, const char *key, const char *value, char *own)
{
	for (size_t i = 0; i < pr->n_meta; i++) {
		if (pr->meta[i].key[0] == key[0] && strcmp(pr->meta[i].key, key) == 0) {
			free(pr->meta[i].own);
			pr->meta[i].value = value;
			pr->meta[i].own = own;
			return 0;
		}
	}
	if (pr->n_meta == PROMPT_META_MAX) {
		free(own);
		return -1;
	}
	pr->meta[pr->n_meta].key = key;
	pr->meta[pr->n_meta].value = value;
	pr->meta[pr->n_meta].own = own;
	pr->n_meta++;
	return 0;
}

/* Sets metadata key (a constant) to a copy of value; 0, or -1 when out of memory. */
static int
meta_str(struct prompt *pr, const char *key, const char *value)
{
	char *v = strdup(value);
	if (v == NULL)
		return -1;
	return meta_set(pr, key, v, v);
}

/*
 * A request's top-level members, looked up twenty times a request (each
 * setting, then the signature): jansson hashes the name each time, a
 * third of the cost of reading the request; here the names are compared
 * by their first byte, then whole.  Past ROOT_MAX members, jansson.
 */
#define ROOT_MAX 16

struct root {
	json_t *obj;
	size_t n;                   /* > ROOT_MAX: too many, ask obj */
	const char *k[ROOT_MAX];
	json_t *v[ROOT_MAX];
};

static void
root_index(struct root *r, json_t *obj)
{
	r->obj = obj;
	r->n = 0;
	for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
		if (r->n == ROOT_MAX) {
			r->n = ROOT_MAX + 1;
			return;
		}
		r->k[r->n] = json_object_iter_key(it);
		r->v[r->n] = json_object_iter_value(it);
		r->n++;
	}
}

static json_t *
rget(const struct root *r, const char *name)
{
	if (r->n > ROOT_MAX)
		return json_object_get(r->obj, name);
	for (size_t i = 0; i < r->n; i++)
		if (r->k[i][0] == name[0] && strcmp(r->k[i], name) == 0)
			return r->v[i];
	return NULL;
}

/* A number as "%.17g" writes it; whole numbers (max_tokens) without printf. */
static int
meta_num(struct prompt *pr, const char *key, double d)
{
	char num[32];
	if (d >= 0 && d < 1e15 && d == (double)(uint64_t)d) {
		/* %.17g prints these as plain digits: so do we */
		fmt_u64(num, (uint64_t)d);
	} else {
		snprintf(num, sizeof num, "%.17g", d);
	}
	return meta_str(pr, key, num);
}

/* A number field within [lo, hi]; integer when asked. 1 set, 0 absent, -1 answered. */
static int
number_field(struct hreq *h, const struct root *root, const char *name, double lo, double hi,
    int integer, double *out)
{
	json_t *v = rget(root, name);
	if (v == NULL || json_is_null(v))
		return 0;
	if (integer ? !json_is_integer(v) : !json_is_number(v))
		return bad(h, name, "invalid_type", "'%s' must be %s, not %s", name,
		    integer ? "an integer" : "a number", jtype(v));
	double d = json_number_value(v);
	if (!(d >= lo && d <= hi))
		return bad(h, name, "invalid_value", "'%s' is %g; it must be from %g to %g",
		    name, d, lo, hi);
	*out = d;
	return 1;
}

/* Most stop sequences, as OpenAI allows. */
#define STOP_MAX 4

/*
 * The generation settings common to every endpoint: model, max_tokens,
 * temperature, top_p, stop, and (when `openai`) stream, stream_options,
 * user and n.  Returns 0, or -1 after answering 400.
 */
static int
settings(struct hreq *h, const struct root *root, struct prompt *pr, int openai)
{
	struct http_src *s = h->s;
	json_t *v;
	double d;
	int rc;

	h->created = (int64_t)time(NULL);
	v = rget(root, "model");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			return bad(h, "model", "invalid_type", "'model' must be a non-empty "
			    "string, not %s", json_is_string(v) ? "an empty one" : jtype(v));
		if (s->check_model && !openai_model_served(s, json_string_value(v))) {
			answer_error(h, 404, NULL, "model_not_found", "The model '%s' does not "
			    "exist: no worker of this pipeline serves it (GET /v1/models lists "
			    "those that do)", json_string_value(v));
			return -1;
		}
		/* the tree's string: the tree outlives pr (pipeline.c frees both) */
		meta_set(pr, "model", json_string_value(v), NULL);
		h->model = strdup(json_string_value(v));
	} else {
		/* answers name the model: the stage's, else the first worker's */
		porch_worker *w = porch_stage_pipeline_worker(s->st, 0);
		const char *model = s->default_model ? s->default_model :
		    w != NULL ? porch_worker_model(w) : "porch";
		h->model = strdup(model);
	}
	if (h->model == NULL)
		return bad(h, NULL, "internal", "out of memory");

	/* max_completion_tokens is the newer name of max_tokens: the one set
	 * (null is not set) wins, the newer when both are */
	if ((rc = number_field(h, root, "max_completion_tokens", 1, 1048576, 1, &d)) < 0)
		return -1;
	if (rc == 0 && (rc = number_field(h, root, "max_tokens", 1, 1048576, 1, &d)) < 0)
		return -1;
	if (rc > 0)
		meta_num(pr, "max-tokens", d);
	if ((rc = number_field(h, root, "temperature", 0, 2, 0, &d)) < 0)
		return -1;
	if (rc > 0)
		meta_num(pr, "temperature", d);
	if ((rc = number_field(h, root, "top_p", 0, 1, 0, &d)) < 0)
		return -1;
	if (rc > 0)
		meta_num(pr, "top-p", d);

	v = rget(root, "stop");
	if (v != NULL && !json_is_null(v)) {
		json_t *arr;
		if (json_is_string(v)) {
			arr = json_pack("[O]", v);
		} else if (json_is_array(v)) {
			if (json_array_size(v) > STOP_MAX)
				return bad(h, "stop", "invalid_value", "'stop' has %zu sequences; "
				    "at most %d are allowed", json_array_size(v), STOP_MAX);
			size_t i;
			json_t *e;
			json_array_foreach(v, i, e) {
				if (!json_is_string(e)) {
					char param[32];
					snprintf(param, sizeof param, "stop[%zu]", i);
					return bad(h, param, "invalid_type", "'%s' must be a string, "
					    "not %s", param, jtype(e));
				}
			}
			arr = json_incref(v);
		} else {
			return bad(h, "stop", "invalid_type", "'stop' must be a string or an "
			    "array of strings, not %s", jtype(v));
		}
		char *text = json_text(arr);
		if (text == NULL)
			return bad(h, NULL, "internal", "out of memory");
		meta_str(pr, "stop", text);
		free(text);
	}
	if (!openai)
		return 0;

	v = rget(root, "stream");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_boolean(v))
			return bad(h, "stream", "invalid_type", "'stream' must be a boolean, "
			    "not %s", jtype(v));
		if (json_is_true(v))
			h->mode = h->route == R_CHAT ? MODE_SSE_CHAT : MODE_SSE_TEXT;
	}
	/* a worker that forwards the request asks its upstream the same way */
	meta_set(pr, "stream", h->mode == MODE_SSE_CHAT || h->mode == MODE_SSE_TEXT ?
	    "true" : "false", NULL);
	v = rget(root, "stream_options");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_object(v))
			return bad(h, "stream_options", "invalid_type", "'stream_options' must "
			    "be an object, not %s", jtype(v));
		json_t *u = json_object_get(v, "include_usage");
		if (u != NULL && !json_is_boolean(u))
			return bad(h, "stream_options.include_usage", "invalid_type",
			    "'stream_options.include_usage' must be a boolean, not %s", jtype(u));
		h->include_usage = u != NULL && json_is_true(u);
	}
	v = rget(root, "user");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v))
			return bad(h, "user", "invalid_type", "'user' must be a string, not %s",
			    jtype(v));
		pr->user = strdup(json_string_value(v));
	}
	v = rget(root, "n");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v))
			return bad(h, "n", "invalid_type", "'n' must be an integer, not %s", jtype(v));
		json_int_t k = json_integer_value(v);
		if (k < 1 || k > 128)
			return bad(h, "n", "invalid_value", "'n' is %lld; it must be from 1 to 128",
			    (long long)k);
		/* the other choices come back as the upstream made them: only
		 * whole answers carry them, and only when no stage edits answers */
		if (k > 1 && h->mode != MODE_WHOLE)
			return bad(h, "n", "invalid_value", "'n' must be 1 when streaming: "
			    "porch streams one choice");
		if (k > 1 && porch_stage_answers_edited(s->st))
			return bad(h, "n", "invalid_value", "'n' must be 1: this pipeline has a "
			    "stage that edits answers, which would change the first choice only");
	}
	return 0;
}

/*
 * A message's text, in *t and *tn (NUL-ended): its content when a string
 * (in the tree, not copied: it may be megabytes); its text parts' text
 * joined by "\n" (into out, emptied first) when an array of parts (image,
 * audio and other parts have none); "" when null.  Any part is allowed, as
 * long as it is an object with a string "type": porch forwards the request
 * as it came.
 */
static int
content_text(struct hreq *h, json_t *c, size_t i, struct buf *out, const char **t,
    size_t *tn)
{
	char param[48];
	*t = "";
	*tn = 0;
	buf_reset(out);
	if (c == NULL || json_is_null(c))
		return 0;
	if (json_is_string(c)) {
		*t = json_string_value(c);
		*tn = json_string_length(c);
		return 0;
	}
	snprintf(param, sizeof param, "messages[%zu].content", i);
	if (!json_is_array(c))
		return bad(h, param, "invalid_type", "'%s' must be a string, an array of "
		    "content parts or null, not %s", param, jtype(c));
	size_t k, texts = 0;
	json_t *part;
	json_array_foreach(c, k, part) {
		json_t *type = json_object_get(part, "type");
		if (!json_is_object(part) || !json_is_string(type)) {
			snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, k);
			return bad(h, param, "invalid_value", "'%s' must be an object with a "
			    "string \"type\"", param);
		}
		if (strcmp(json_string_value(type), "text") != 0)
			continue;
		json_t *text = json_object_get(part, "text");
		if (!json_is_string(text)) {
			snprintf(param, sizeof param, "messages[%zu].content[%zu].text", i, k);
			return bad(h, param, "invalid_type", "'%s' must be a string, not %s",
			    param, text ? jtype(text) : "missing");
		}
		if (texts++ > 0)
			buf_add(out, "\n", 1);
		buf_add(out, json_string_value(text), json_string_length(text));
	}
	if (out->oom)
		return bad(h, NULL, "internal", "out of memory");
	*t = out->p != NULL ? out->p : "";
	*tn = out->len;
	return 0;
}

static int
role_valid(const char *r)
{
	return strcmp(r, "system") == 0 || strcmp(r, "developer") == 0 ||
	    strcmp(r, "user") == 0 || strcmp(r, "assistant") == 0 ||
	    strcmp(r, "tool") == 0 || strcmp(r, "function") == 0;
}

/* The request body as metadata "openai.request", for a worker that forwards
 * it: the body itself (a buffer keeps a NUL after its bytes), which the
 * message copies. */
static int
request_meta(struct hreq *h, struct prompt *pr)
{
	if (pr->n_meta == PROMPT_META_MAX)
		return bad(h, NULL, "internal", "too much metadata");
	pr->meta[pr->n_meta].key = "openai.request";
	pr->meta[pr->n_meta].value = h->w.body.p != NULL ? h->w.body.p : "";
	pr->meta[pr->n_meta].own = NULL;
	pr->n_meta++;
	return 0;
}

static const char *
meta_get(const struct prompt *pr, const char *key)
{
	/* the first byte first: most keys differ there, and this runs ~30
	 * times a request (sig_meta) */
	for (size_t i = 0; i < pr->n_meta; i++) {
		if (pr->meta[i].key[0] == key[0] && strcmp(pr->meta[i].key, key) == 0)
			return pr->meta[i].value;
	}
	return NULL;
}

/*
 * "openai.sig" (plugins/openai/sig.h): what was derived from the document,
 * so that a worker that forwards it can send its bytes as they are when
 * none of it changed on the way.  None when that would not be the same
 * request: no model in the document (the worker would add its own), token
 * caps under both names or null, a "stream" that is not what the option
 * says, a completion request with "messages" (the worker would read it as
 * a chat).  0, or -1 after answering 500.
 */
static int
sig_meta(struct hreq *h, const struct root *root, struct prompt *pr, int chat)
{
	json_t *mt = rget(root, "max_tokens");
	json_t *mct = rget(root, "max_completion_tokens");
	char cap = mt == NULL && mct == NULL ? 'N' :
	    mct == NULL && !json_is_null(mt) ? 'T' :
	    mt == NULL && !json_is_null(mct) ? 'C' : 0;
	const char *stream = meta_get(pr, "stream");
	int streams = json_is_true(rget(root, "stream"));
	if (cap == 0 || !json_is_string(rget(root, "model")) ||
	    (rget(root, "messages") != NULL) != chat || stream == NULL ||
	    (strcmp(stream, "true") == 0) != streams || pr->n_meta == PROMPT_META_MAX)
		return 0;
	const char *value[OAI_SIG_FIELDS];
	for (int i = 0; i < OAI_SIG_FIELDS; i++)
		value[i] = meta_get(pr, oai_sig_options[i]);
	char *sig = oai_sig_make(chat ? 'c' : 'p', cap, h->w.body.p, h->w.body.len, value);
	if (sig == NULL)
		return bad(h, NULL, "internal", "out of memory");
	return meta_set(pr, OAI_SIG_KEY, sig, sig);
}

/*
 * A chat request.  The conversation goes on whole in "openai.request"; the
 * message text is the last user message's text (wherever it is: an agent's
 * conversation may end with tool results), and "system" the leading system
 * or developer message's, for the stages that read or rewrite them.
 */
int
openai_chat_request(struct hreq *h, json_t *obj, struct prompt *pr)
{
	struct root rx;
	root_index(&rx, obj);
	const struct root *root = &rx;
	json_t *msgs = rget(root, "messages");
	if (msgs == NULL)
		return bad(h, "messages", "missing_required_parameter", "'messages' is required");
	if (!json_is_array(msgs))
		return bad(h, "messages", "invalid_type", "'messages' must be an array, not %s",
		    jtype(msgs));
	size_t n = json_array_size(msgs);
	if (n == 0)
		return bad(h, "messages", "invalid_value", "'messages' must not be empty");

	struct buf text = { 0 };
	const char *t;
	size_t tn;
	int rc = -1;
	size_t last_user = n;
	for (size_t i = 0; i < n; i++) {
		json_t *msg = json_array_get(msgs, i);
		char param[48];
		if (!json_is_object(msg)) {
			snprintf(param, sizeof param, "messages[%zu]", i);
			bad(h, param, "invalid_type", "'%s' must be an object, not %s", param,
			    jtype(msg));
			goto out;
		}
		json_t *role = json_object_get(msg, "role");
		if (!json_is_string(role) || !role_valid(json_string_value(role))) {
			snprintf(param, sizeof param, "messages[%zu].role", i);
			bad(h, param, role == NULL ? "missing_required_parameter" : "invalid_value",
			    "'%s' must be one of system, developer, user, assistant, tool, "
			    "function", param);
			goto out;
		}
		const char *r = json_string_value(role);
		if (content_text(h, json_object_get(msg, "content"), i, &text, &t, &tn) != 0)
			goto out;
		h->prompt_words += count_words(t, tn);
		if (i == 0 && (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0))
			meta_str(pr, "system", t);
		if (strcmp(r, "user") == 0)
			last_user = i;
	}
	pr->text = "";
	pr->len = 0;
	if (last_user < n) {
		(void)content_text(h, json_object_get(json_array_get(msgs, last_user), "content"),
		    last_user, &text, &pr->text, &pr->len);
		if (pr->text == text.p) {
			/* parts joined: the buffer is the prompt's now */
			pr->own = text.p;
			memset(&text, 0, sizeof text);
		}
	}
	if ((rc = settings(h, root, pr, 1)) == 0 && (rc = request_meta(h, pr)) == 0)
		rc = sig_meta(h, root, pr, 1);
out:
	buf_free(&text);
	return rc;
}

int
openai_completion_request(struct hreq *h, json_t *obj, struct prompt *pr)
{
	struct root rx;
	root_index(&rx, obj);
	const struct root *root = &rx;
	json_t *p = rget(root, "prompt");
	if (p == NULL)
		return bad(h, "prompt", "missing_required_parameter", "'prompt' is required");
	if (json_is_array(p)) {
		if (json_array_size(p) != 1)
			return bad(h, "prompt", "invalid_value", "'prompt' as an array must hold "
			    "exactly one string: porch makes one completion per request");
		p = json_array_get(p, 0);
	}
	if (!json_is_string(p))
		return bad(h, "prompt", "invalid_type", "'prompt' must be a string, not %s",
		    jtype(p));
	pr->len = json_string_length(p);
	pr->text = json_string_value(p); /* in the tree, which outlives pr */
	h->prompt_words = count_words(pr->text, pr->len);
	int rc = settings(h, root, pr, 1);
	if (rc == 0 && (rc = request_meta(h, pr)) == 0)
		rc = sig_meta(h, root, pr, 0);
	return rc;
}

int
generate_request(struct hreq *h, json_t *obj, struct prompt *pr)
{
	struct root rx;
	root_index(&rx, obj);
	const struct root *root = &rx;
	json_t *t = rget(root, "text");
	if (t == NULL)
		return bad(h, "text", "missing_required_parameter", "'text' is required");
	if (!json_is_string(t))
		return bad(h, "text", "invalid_type", "'text' must be a string, not %s", jtype(t));
	json_t *id = rget(root, "request_id");
	char num[32];
	const char *gid = h->w.id;
	if (id != NULL && !json_is_null(id)) {
		if (json_is_string(id)) {
			gid = json_string_value(id);
		} else if (json_is_integer(id)) {
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(id));
			gid = num;
		} else {
			return bad(h, "request_id", "invalid_type", "'request_id' must be a string "
			    "or an integer, not %s", jtype(id));
		}
	}
	h->gen_id = strdup(gid);
	pr->len = json_string_length(t);
	pr->text = json_string_value(t); /* in the tree, which outlives pr */
	if (h->gen_id == NULL)
		return bad(h, NULL, "internal", "out of memory");
	h->prompt_words = count_words(pr->text, pr->len);
	h->mode = MODE_NDJSON;
	return settings(h, root, pr, 0);
}

/* ---- whole answers ---------------------------------------------------- */

/* A long text's quotes, the text to go between them later (answer_sliced):
 * where it goes, or 0 when out of memory (b->oom says so). */
static size_t
text_place(struct buf *b)
{
	buf_lit(b, "\"\"");
	return b->oom ? 0 : b->len - 1;
}

/*
 * A completed request's whole answer: the text as the pipeline left it,
 * with what the worker brought back beyond it (finish reason, usage, and
 * the upstream's other members: tool calls, refusal, logprobs,
 * system_fingerprint, more choices) where the OpenAI format puts them.
 */
void
answer_whole(struct hreq *h, porch_msg *m, enum porch_outcome o)
{
	if (h->w.status != 0)
		return;
	if (o != PORCH_COMPLETED) {
		answer_failure(h, m, o);
		return;
	}
	size_t len = 0;
	const char *text = porch_msg_text(m, &len);
	if (text == NULL)
		text = "", len = 0;
	const char *reason = porch_msg_meta(m, "finish-reason");
	const char *message = porch_msg_meta(m, "openai.message");
	const char *choices = porch_msg_meta(m, "openai.choices");
	/* written in place, field by field; a long text later, a slice at a
	 * time (answer_sliced), where its quotes are */
	struct buf *b = answer_scratch(h);
	int chat = h->route == R_CHAT;
	size_t at = 0;
	json_put_object_open(b, h, chat, chat ? "chat.completion" : "text_completion");
	json_put_members(b, porch_msg_meta(m, "openai.extra"), 1);
	if (chat) {
		buf_lit(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		    "\"content\":");
		/* a model that only called tools said nothing: null, as it sent */
		if (len == 0 && message != NULL && strstr(message, "\"tool_calls\":") != NULL)
			buf_lit(b, "null");
		else if (len > ANSWER_SLICE)
			at = text_place(b);
		else
			json_put_str(b, text, len);
		json_put_members(b, message, 1);
		buf_lit(b, "}");
	} else {
		buf_lit(b, ",\"choices\":[{\"index\":0,\"text\":");
		if (len > ANSWER_SLICE)
			at = text_place(b);
		else
			json_put_str(b, text, len);
	}
	buf_lit(b, ",\"finish_reason\":");
	json_put_cstr(b, reason != NULL ? reason : "stop");
	const char *choice = porch_msg_meta(m, "openai.choice");
	if (choice != NULL)
		json_put_members(b, choice, 1);
	else
		buf_lit(b, ",\"logprobs\":null");
	buf_lit(b, "}");
	size_t clen = choices != NULL ? strlen(choices) : 0;
	if (clen > 2 && choices[0] == '[' && choices[clen - 1] == ']') {
		/* n > 1: the other choices as the upstream made them */
		buf_lit(b, ",");
		buf_add(b, choices + 1, clen - 2);
	}
	buf_lit(b, "],\"usage\":");
	json_put_usage(b, h, porch_msg_meta(m, "usage"), text, len);
	buf_lit(b, "}");
	if (at > 0)
		answer_sliced(h, at, text, len);
	else
		answer_scratch_send(h, 200, "application/json", NULL);
}

/* OpenAI's model object. */
static json_t *
model_json(const char *model)
{
	return json_pack("{s:s, s:s, s:i, s:s}", "id", model, "object", "model", "created", 0,
	    "owned_by", "porch");
}

int
openai_model_served(struct http_src *s, const char *model)
{
	porch_worker *w;
	for (size_t i = 0; (w = porch_stage_pipeline_worker(s->st, i)) != NULL; i++)
		if (strcmp(porch_worker_model(w), model) == 0)
			return 1;
	return 0;
}

/* GET /v1/models: the models of the pipeline's workers, each once. */
void
openai_models(struct hreq *h)
{
	json_t *data = json_array();
	porch_worker *w;
	for (size_t i = 0; (w = porch_stage_pipeline_worker(h->s->st, i)) != NULL; i++) {
		const char *model = porch_worker_model(w);
		int seen = 0;
		size_t k;
		json_t *e;
		json_array_foreach(data, k, e) {
			if (strcmp(json_string_value(json_object_get(e, "id")), model) == 0)
				seen = 1;
		}
		if (!seen)
			json_array_append_new(data, model_json(model));
	}
	answer_json(h, 200, json_pack("{s:s, s:o}", "object", "list", "data", data), NULL);
}

static int
hex_value(char ch)
{
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* Most bytes of a model id in a path, decoded. */
#define MODEL_ID_MAX 256

/* GET /v1/models/{id}: the model object of a model a worker serves (the id
 * may hold slashes, "org/name", sent as they are or as %2F), else 404
 * model_not_found. */
void
openai_model(struct hreq *h)
{
	const char *path, *q;
	size_t plen, qlen;
	route_url(h, &path, &plen, &q, &qlen);
	static const char prefix[] = "/v1/models/";
	size_t pl = sizeof prefix - 1;
	char id[MODEL_ID_MAX + 1];
	size_t n = 0;
	int bad = plen <= pl;
	for (size_t i = pl; !bad && i < plen; i++) {
		char ch = path[i];
		if (ch == '%') {
			int hi = i + 2 < plen ? hex_value(path[i + 1]) : -1;
			int lo = i + 2 < plen ? hex_value(path[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				bad = 1;
				break;
			}
			ch = (char)(hi * 16 + lo);
			i += 2;
		}
		if (n == MODEL_ID_MAX) {
			bad = 1;
			break;
		}
		id[n++] = ch;
	}
	id[n] = '\0';
	if (bad || !openai_model_served(h->s, id)) {
		answer_error(h, 404, NULL, "model_not_found", "The model '%.*s' does not exist: "
		    "no worker of this pipeline serves it (GET /v1/models lists those that do)",
		    (int)(plen - pl > 200 ? 200 : plen - pl), path + pl);
		return;
	}
	answer_json(h, 200, model_json(id), NULL);
}
