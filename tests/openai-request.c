/*
 * openai-request.c -- unit test of the openai worker's request bodies
 * (plugins/openai/request.c) and answers (plugins/openai/answer.c): a
 * client's request forwarded whole with what porch acts on replaced, the
 * body made from the text, and the metadata and piece extras read from
 * whole answers, streams and errors.
 *
 * JSON in this file is written with ' for " (Q() turns them back), so
 * that it stays readable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../plugins/openai/request.h"
#include "../plugins/openai/sig.h"

static int failures, checks;

/* ---- a call, as the worker sees it ------------------------------------------ */

struct porch_call {
	const char *prompt;
	const char *opt[16][2];
};

/* The request's input (the text its source emitted): the prompt when NULL. */
static const char *call_input;

const char *
porch_call_input(const porch_call *c, size_t *len)
{
	const char *in = call_input != NULL ? call_input : c->prompt;
	*len = strlen(in);
	return in;
}

const char *
porch_call_prompt(const porch_call *c, size_t *len)
{
	*len = strlen(c->prompt);
	return c->prompt;
}

const char *
porch_call_option(const porch_call *c, const char *key)
{
	for (size_t i = 0; i < 16 && c->opt[i][0] != NULL; i++) {
		if (strcmp(c->opt[i][0], key) == 0)
			return c->opt[i][1];
	}
	return NULL;
}

/* ' -> ", in a buffer of a ring of them (several may be live at once). */
static const char *
Q(const char *s)
{
	static char bufs[32][8192];
	static int next;
	char *b = bufs[next++ % 32];
	size_t i;
	for (i = 0; s[i] != '\0' && i + 1 < sizeof bufs[0]; i++)
		b[i] = s[i] == '\'' ? '"' : s[i];
	b[i] = '\0';
	return b;
}

static void
fail(const char *name, const char *fmt, const char *a, const char *b)
{
	printf("not ok - %s: ", name);
	printf(fmt, a, b);
	printf("\n");
	failures++;
}

/* Two JSON texts of the same meaning. */
static int
same_json(const char *a, const char *b)
{
	json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
	int r = ja != NULL && jb != NULL && json_equal(ja, jb);
	json_decref(ja);
	json_decref(jb);
	return r;
}

static const struct oai_shape chat = { "default", 1, 1, 0, 0 };
static const struct oai_shape chat_plain = { "default", 1, 0, 0, 0 };
static const struct oai_shape chat_mct = { "default", 1, 1, 1, 0 };
static const struct oai_shape chat_as_sent = { "default", 1, 0, 0, 1 };
static const struct oai_shape comp = { "default", 0, 1, 0, 0 };

/* The body of c is want: exactly (bytes) or in meaning. */
static void
body_is(const char *name, const struct oai_shape *sh, const porch_call *c,
    const char *want, int exact)
{
	char *body = NULL, why[384] = "";
	size_t len = 0;
	checks++;
	int r = oai_request_body(sh, c, &body, &len, why, sizeof why);
	if (r != 0) {
		fail(name, "failed: %s%s", why, "");
	} else if (strlen(body) != len) {
		fail(name, "length %s%s", "wrong", "");
	} else if (exact ? strcmp(body, want) != 0 : !same_json(body, want)) {
		fail(name, "got %s, want %s", body, want);
	} else {
		printf("ok - %s\n", name);
	}
	free(body);
}

/* c is refused as a bad request, with why containing want. */
static void
body_refused(const char *name, const struct oai_shape *sh, const porch_call *c,
    const char *want)
{
	char *body = NULL, why[384] = "";
	size_t len = 0;
	checks++;
	int r = oai_request_body(sh, c, &body, &len, why, sizeof why);
	if (r != -1 || strstr(why, want) == NULL)
		fail(name, "got '%s', want a refusal with '%s'", r == 0 ? body : why, want);
	else
		printf("ok - %s\n", name);
	free(body);
}

/* ---- request bodies ------------------------------------------------------------ */

/* Every member a client may send, with messages of every kind. */
static const char *const full_chat =
    "{'model':'m1','messages':["
    "{'role':'developer','content':'be brief'},"
    "{'role':'user','content':[{'type':'text','text':'look'},"
    "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAAA','detail':'low'}}],"
    "'name':'ann'},"
    "{'role':'assistant','content':null,'tool_calls':[{'id':'call_1','type':'function',"
    "'function':{'name':'get_weather','arguments':'{\\'city\\':\\'Paris\\'}'}}]},"
    "{'role':'tool','tool_call_id':'call_1','content':'sunny'},"
    "{'role':'user','content':'and tomorrow?'}],"
    "'tools':[{'type':'function','function':{'name':'get_weather','parameters':"
    "{'type':'object','properties':{'city':{'type':'string'}}}}}],"
    "'tool_choice':'auto','parallel_tool_calls':false,"
    "'response_format':{'type':'json_schema','json_schema':{'name':'w','schema':{}}},"
    "'seed':42,'logprobs':true,'top_logprobs':3,'logit_bias':{'50256':-100},"
    "'presence_penalty':0.5,'frequency_penalty':-0.25,'user':'u-1',"
    "'stream':true,'stream_options':{'include_usage':true},'service_tier':'auto',"
    "'metadata':{'k':'v'},'n':1,'x_vendor_knob':[1,{'a':null}],'max_tokens':64,"
    "'temperature':0.7,'top_p':0.9,'stop':['END']}";

static void
test_forward(void)
{
	/* everything as sent, with the options equal to what it holds */
	char *want = strdup(Q(full_chat));
	porch_call c = { "and tomorrow?", {
		{ "openai.request", want }, { "model", "m1" }, { "max-tokens", "64" },
		{ "temperature", "0.7" }, { "top-p", "0.9" }, { "stop", "[\"END\"]" },
		{ "system", "be brief" }, { "stream", "true" } } };
	json_t *j = json_loads(want, 0, NULL);
	char *dumped = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
	body_is("every member forwarded unchanged", &chat, &c, want, 0);
	body_is("nothing replaced: the same bytes as the document's", &chat, &c, dumped, 1);
	free(dumped);

	/* the text changed by a stage: only the last user message changes */
	c.prompt = "and the day after?";
	json_object_set_new(json_array_get(json_object_get(j, "messages"), 4), "content",
	    json_string("and the day after?"));
	dumped = json_dumps(j, JSON_COMPACT);
	body_is("a new prompt replaces the last user message's string", &chat, &c, dumped, 0);
	free(dumped);

	/* the system option changed: the leading developer message's text, role kept */
	c.opt[6][1] = "be very brief";
	json_object_set_new(json_array_get(json_object_get(j, "messages"), 0), "content",
	    json_string("be very brief"));
	dumped = json_dumps(j, JSON_COMPACT);
	body_is("a new system text replaces the developer message's", &chat, &c, dumped, 0);
	free(dumped);

	/* not streamed: stream false, and no stream_options */
	c.opt[7][1] = "false";
	json_object_set_new(j, "stream", json_false());
	json_object_del(j, "stream_options");
	dumped = json_dumps(j, JSON_COMPACT);
	body_is("stream false drops stream_options", &chat, &c, dumped, 0);
	free(dumped);
	json_decref(j);
	free(want);

	/* the worker's stream parameter when the call does not say */
	porch_call s = { "hi", { { "openai.request",
	    Q("{'messages':[{'role':'user','content':'hi'}],'stream':true,"
	    "'stream_options':{'include_usage':true}}") } } };
	body_is("no stream option: the worker's (false)", &chat_plain, &s,
	    Q("{'messages':[{'role':'user','content':'hi'}],'stream':false,'model':'default'}"), 0);
	body_is("no stream option: the worker's (true)", &chat, &s,
	    Q("{'messages':[{'role':'user','content':'hi'}],'stream':true,"
	    "'stream_options':{'include_usage':true},'model':'default'}"), 0);
}

/* max-tokens-field as-sent, and stream written only when it changes */
static void
test_as_sent(void)
{
	porch_call c = { "q", { { "openai.request",
	    Q("{'messages':[{'role':'user','content':'q'}],'max_completion_tokens':7}") },
	    { "max-tokens", "7" } } };
	body_is("as-sent: the client's max_completion_tokens kept, no stream added",
	    &chat_as_sent, &c, Q("{'messages':[{'role':'user','content':'q'}],"
	    "'max_completion_tokens':7,'model':'default'}"), 0);
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':7}");
	body_is("as-sent: the client's max_tokens kept", &chat_as_sent, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':7,'model':'default'}"), 0);
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q'}]}");
	body_is("as-sent: a cap porch sets goes as max_tokens", &chat_as_sent, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':7,'model':'default'}"), 0);
	/* the client's own mistake, stream_options without stream, goes as sent
	 * for the upstream to refuse, as OpenAI would */
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q'}],"
	    "'stream_options':{'include_usage':true}}");
	c.opt[1][0] = "unused";
	body_is("stream_options without stream: as sent", &chat_as_sent, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'stream_options':{'include_usage':true},"
	    "'model':'default'}"), 0);
}

static void
test_parts(void)
{
	const char *doc = Q("{'model':'m','messages':[{'role':'user','content':["
	    "{'type':'text','text':'a'},{'type':'image_url','image_url':{'url':'u'}},"
	    "{'type':'text','text':'b'}]}]}");
	porch_call c = { "a\nb", { { "openai.request", doc } } };
	body_is("text parts joined by \\n are the prompt: unchanged", &chat, &c,
	    Q("{'model':'m','messages':[{'role':'user','content':["
	    "{'type':'text','text':'a'},{'type':'image_url','image_url':{'url':'u'}},"
	    "{'type':'text','text':'b'}]}],'stream':true}"), 1);
	c.prompt = "new";
	body_is("a new prompt: one text part at the first's place, the image kept", &chat, &c,
	    Q("{'model':'m','messages':[{'role':'user','content':["
	    "{'type':'text','text':'new'},{'type':'image_url','image_url':{'url':'u'}}]}],"
	    "'stream':true}"), 0);
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':["
	    "{'type':'image_url','image_url':{'url':'u'}}]}]}");
	c.prompt = "describe";
	body_is("parts without text: the prompt goes first", &chat, &c,
	    Q("{'messages':[{'role':'user','content':[{'type':'text','text':'describe'},"
	    "{'type':'image_url','image_url':{'url':'u'}}]}],'model':'default','stream':true}"), 0);
	c.prompt = "";
	body_is("parts without text, empty prompt: unchanged", &chat, &c,
	    Q("{'messages':[{'role':'user','content':["
	    "{'type':'image_url','image_url':{'url':'u'}}]}],'model':'default','stream':true}"), 0);

	/* no user message at all */
	c.opt[0][1] = Q("{'messages':[{'role':'system','content':'s'}]}");
	c.prompt = "q";
	body_is("no user message: one appended", &chat, &c,
	    Q("{'messages':[{'role':'system','content':'s'},{'role':'user','content':'q'}],"
	    "'model':'default','stream':true}"), 0);
	/* a system option and no system message: inserted first */
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q'}]}");
	c.opt[1][0] = "system";
	c.opt[1][1] = "sys";
	body_is("system option, no system message: inserted at 0", &chat, &c,
	    Q("{'messages':[{'role':'system','content':'sys'},{'role':'user','content':'q'}],"
	    "'model':'default','stream':true}"), 0);
	c.opt[1][1] = "";
	body_is("empty system option, no system message: nothing inserted", &chat, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'model':'default','stream':true}"), 0);
	/* a system message as parts */
	c.opt[0][1] = Q("{'messages':[{'role':'system','content':[{'type':'text','text':'x'}]},"
	    "{'role':'user','content':'q'}]}");
	c.opt[1][1] = "y";
	body_is("system parts replaced by one text part", &chat, &c,
	    Q("{'messages':[{'role':'system','content':[{'type':'text','text':'y'}]},"
	    "{'role':'user','content':'q'}],'model':'default','stream':true}"), 0);
}

static void
test_settings(void)
{
	const char *doc = Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':10,"
	    "'temperature':1,'stop':'END'}");
	porch_call c = { "q", { { "openai.request", doc }, { "max-tokens", "20" },
	    { "temperature", "1" }, { "stop", "[\"END\"]" }, { "model", "opt-model" } } };
	body_is("max-tokens-field max_completion_tokens: renamed, the option's value", &chat_mct,
	    &c, Q("{'messages':[{'role':'user','content':'q'}],'max_completion_tokens':20,"
	    "'temperature':1,'stop':'END','model':'opt-model','stream':true}"), 0);
	body_is("max-tokens-field max_tokens", &chat, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':20,"
	    "'temperature':1,'stop':'END','model':'opt-model','stream':true}"), 1);
	c.opt[1][0] = "unused";
	body_is("no option: the document's cap, under the upstream's name", &chat_mct, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'max_completion_tokens':10,"
	    "'temperature':1,'stop':'END','model':'opt-model','stream':true}"), 0);
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':null,"
	    "'max_completion_tokens':7}");
	body_is("null is not set: max_completion_tokens to max_tokens", &chat, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':7,'temperature':1.0,"
	    "'stop':['END'],'model':'opt-model','stream':true}"), 0);
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q'}],'max_tokens':null,"
	    "'max_completion_tokens':null,'temperature':0.5,'top_p':null}");
	c.opt[2][1] = "0.25";
	body_is("both null: no cap; a changed temperature replaced; null top_p kept", &chat, &c,
	    Q("{'messages':[{'role':'user','content':'q'}],'temperature':0.25,'top_p':null,"
	    "'stop':['END'],'model':'opt-model','stream':true}"), 0);
	/* the model: the document's when the option is not set */
	porch_call m = { "q", { { "openai.request",
	    Q("{'model':'client','messages':[{'role':'user','content':'q'}]}") } } };
	body_is("the document's model when no option", &chat, &m,
	    Q("{'model':'client','messages':[{'role':'user','content':'q'}],'stream':true}"), 1);
	m.opt[1][0] = "model";
	m.opt[1][1] = "";
	body_is("an empty model option is none", &chat, &m,
	    Q("{'model':'client','messages':[{'role':'user','content':'q'}],'stream':true}"), 1);
}

static void
test_completions(void)
{
	porch_call c = { "p2", { { "openai.request",
	    Q("{'model':'m','prompt':'p1','echo':false,'suffix':'s','best_of':2,'logprobs':2,"
	    "'max_completion_tokens':5}") } } };
	body_is("completions: prompt replaced, always max_tokens, the rest as sent", &comp, &c,
	    Q("{'model':'m','prompt':'p2','echo':false,'suffix':'s','best_of':2,'logprobs':2,"
	    "'max_tokens':5,'stream':true}"), 0);
	c.opt[0][1] = Q("{'model':'m','prompt':['p1']}");
	body_is("completions: [prompt] keeps its shape", &comp, &c,
	    Q("{'model':'m','prompt':['p2'],'stream':true}"), 0);
	c.prompt = "p1";
	body_is("completions: the same prompt, unchanged", &comp, &c,
	    Q("{'model':'m','prompt':['p1'],'stream':true}"), 1);
}

static void
test_cross(void)
{
	porch_call c = { "q", { { "openai.request",
	    Q("{'model':'m','messages':[{'role':'system','content':'s'},"
	    "{'role':'user','content':'hi'},"
	    "{'role':'assistant','content':null,'tool_calls':[{'id':'c'}]},"
	    "{'role':'user','content':'q'}]}") } } };
	body_refused("chat with tool_calls to /completions", &comp, &c,
	    "messages[2].tool_calls cannot be sent to /v1/completions");
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':[{'type':'image_url',"
	    "'image_url':{'url':'u'}}]}]}");
	body_refused("an image to /completions", &comp, &c,
	    "messages[0].content[0] (image_url) cannot be sent to /v1/completions");
	c.opt[0][1] = Q("{'messages':[{'role':'tool','content':'x'},{'role':'user','content':'q'}]}");
	body_refused("a tool message to /completions", &comp, &c,
	    "messages[0] (role 'tool') cannot be sent to /v1/completions");
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q'}],'tools':[]}");
	body_refused("tools to /completions", &comp, &c, "tools cannot be sent to /v1/completions");
	c.opt[0][1] = Q("{'messages':[{'role':'user','content':'q','name':'n'}]}");
	body_refused("a message's name to /completions", &comp, &c,
	    "messages[0].name cannot be sent to /v1/completions");
	/* plain text: built from the text; the shared members go along */
	c.opt[0][1] = Q("{'model':'m','messages':[{'role':'user','content':[{'type':'text',"
	    "'text':'q'}]}],'seed':7,'logprobs':false,'max_completion_tokens':9,"
	    "'stream_options':{'include_usage':true},'x_knob':1}");
	body_is("plain chat to /completions: from the text", &comp, &c,
	    Q("{'model':'m','prompt':'q','max_tokens':9,'stream':true,'seed':7,"
	    "'stream_options':{'include_usage':true},'x_knob':1}"), 0);
	c.opt[0][1] = Q("{'model':'m','prompt':'q','echo':true}");
	body_refused("echo to /chat/completions", &chat, &c,
	    "echo cannot be sent to /v1/chat/completions");
	c.opt[0][1] = Q("{'model':'m','prompt':['a','b']}");
	body_refused("two prompts to /chat/completions", &chat, &c, "prompt (not one string)");
	c.opt[0][1] = Q("{'model':'m','prompt':'q','temperature':0.5,'stop':'X'}");
	c.opt[1][0] = "system";
	c.opt[1][1] = "sys";
	body_is("a completion to /chat/completions: from the text", &chat_plain, &c,
	    Q("{'model':'m','messages':[{'role':'system','content':'sys'},"
	    "{'role':'user','content':'q'}],'temperature':0.5,'stop':'X','stream':false}"), 0);
	c.opt[0][1] = "[1]";
	body_refused("not an object", &chat, &c, "metadata \"openai.request\": not a JSON object");
	c.opt[0][1] = "{\"x\":1}";
	body_refused("neither kind", &chat, &c, "neither \"messages\" nor \"prompt\"");
	c.opt[0][1] = "{\"messages\":";
	body_refused("not JSON", &chat, &c, "not a JSON object: ");
}

static void
test_from_text(void)
{
	porch_call c = { "hello", { { "system", "be brief" }, { "max-tokens", "12" },
	    { "messages", "[{\"role\":\"user\",\"content\":\"hi\"}]" }, { "stop", "END" },
	    { "temperature", "0.7" } } };
	body_is("no document: the body from the text", &chat, &c,
	    Q("{'model':'default','messages':[{'role':'system','content':'be brief'},"
	    "{'role':'user','content':'hi'},{'role':'user','content':'hello'}],"
	    "'max_tokens':12,'temperature':0.7,'stop':'END','stream':true}"), 1);
	body_is("no document, max_completion_tokens", &chat_mct, &c,
	    Q("{'model':'default','messages':[{'role':'system','content':'be brief'},"
	    "{'role':'user','content':'hi'},{'role':'user','content':'hello'}],"
	    "'max_completion_tokens':12,'temperature':0.7,'stop':'END','stream':true}"), 1);
	c.opt[5][0] = "stream";
	c.opt[5][1] = "false";
	body_is("no document: the stream option", &comp, &c,
	    Q("{'model':'default','prompt':'hello','max_tokens':12,'temperature':0.7,"
	    "'stop':'END','stream':false}"), 1);
	c.opt[5][1] = "maybe";
	body_refused("a stream option that is no boolean", &comp, &c,
	    "option \"stream\": 'maybe' is not true or false");

	/* response-format: json asks chat for a JSON object; /completions has
	 * no response_format; text asks for nothing */
	porch_call j = { "hello", { { "response-format", "json" }, { "stream", "false" } } };
	body_is("response-format json", &chat, &j,
	    Q("{'model':'default','messages':[{'role':'user','content':'hello'}],"
	    "'stream':false,'response_format':{'type':'json_object'}}"), 1);
	body_is("response-format json, completions", &comp, &j,
	    Q("{'model':'default','prompt':'hello','stream':false}"), 1);
	j.opt[0][1] = "text";
	body_is("response-format text", &chat, &j,
	    Q("{'model':'default','messages':[{'role':'user','content':'hello'}],"
	    "'stream':false}"), 1);
	j.opt[0][1] = "yaml";
	body_refused("response-format yaml", &chat, &j,
	    "option \"response-format\": 'yaml' is not json or text");
	/* forwarded: added to a client's request, a json_schema kept */
	porch_call f = { "q", { { "response-format", "json" }, { "openai.request",
	    Q("{'model':'m','messages':[{'role':'user','content':'q'}]}") } } };
	body_is("response-format json, forwarded", &chat, &f,
	    Q("{'model':'m','messages':[{'role':'user','content':'q'}],'stream':true,"
	    "'response_format':{'type':'json_object'}}"), 0);
	f.opt[1][1] = Q("{'model':'m','messages':[{'role':'user','content':'q'}],'stream':true,"
	    "'response_format':{'type':'json_schema','json_schema':{'name':'x','schema':{}}}}");
	body_is("response-format json, a client's json_schema kept", &chat, &f, f.opt[1][1], 0);
}

/* ---- answers ------------------------------------------------------------------- */

/* Metadata received, as "key=value\n" lines. */
struct meta {
	char buf[8192];
	size_t len;
};

static void
on_meta(void *arg, const char *key, const char *value)
{
	struct meta *m = arg;
	int n = snprintf(m->buf + m->len, sizeof m->buf - m->len, "%s=%s\n", key, value);
	if (n > 0)
		m->len += (size_t)n;
}

static void
meta_is(const char *name, struct meta *m, const char *want)
{
	checks++;
	m->buf[m->len] = '\0';
	if (strcmp(m->buf, want) != 0)
		fail(name, "got\n%s\nwant\n%s", m->buf, want);
	else
		printf("ok - %s\n", name);
}

static void
test_whole(void)
{
	const char *body = Q("{'id':'chatcmpl-1','object':'chat.completion','created':1,"
	    "'model':'m','system_fingerprint':'fp_1','service_tier':'default','x':null,"
	    "'choices':[{'index':0,'message':{'role':'assistant','content':null,'refusal':null,"
	    "'tool_calls':[{'id':'call_1','type':'function','function':{'name':'f',"
	    "'arguments':'{}'}}],'annotations':[]},"
	    "'logprobs':{'content':[{'token':'a','logprob':-0.5,'bytes':[97],'top_logprobs':[]}]},"
	    "'finish_reason':'tool_calls'},"
	    "{'index':1,'message':{'role':'assistant','content':'two'},'finish_reason':'stop'}],"
	    "'usage':{'prompt_tokens':5,'completion_tokens':7,'total_tokens':12,"
	    "'completion_tokens_details':{'reasoning_tokens':2}}}");
	json_t *root;
	const char *text;
	size_t tlen;
	char why[256];
	struct meta m = { .len = 0 };
	checks++;
	if (oai_answer_text(1, body, strlen(body), &root, &text, &tlen, why, sizeof why) != OAI_OK ||
	    tlen != 0) {
		fail("whole answer", "%s%s", why, "");
		return;
	}
	printf("ok - whole answer: null content is no text\n");
	oai_answer_meta(1, root, on_meta, &m);
	json_decref(root);
	/* a whole answer's nulls are the client's to see, but for "logprobs":
	 * null, which every choice gets anyway */
	meta_is("whole answer: metadata", &m, Q(
	    "finish-reason=tool_calls\n"
	    "usage={'prompt_tokens':5,'completion_tokens':7,'total_tokens':12,"
	    "'completion_tokens_details':{'reasoning_tokens':2}}\n"
	    "openai.extra={'system_fingerprint':'fp_1','service_tier':'default','x':null}\n"
	    "openai.choice={'logprobs':{'content':[{'token':'a','logprob':-0.5,'bytes':[97],"
	    "'top_logprobs':[]}]}}\n"
	    "openai.message={'refusal':null,'tool_calls':[{'id':'call_1','type':'function',"
	    "'function':{'name':'f','arguments':'{}'}}],'annotations':[]}\n"
	    "openai.choices=[{'index':1,'message':{'role':'assistant','content':'two'},"
	    "'finish_reason':'stop'}]\n"));

	/* a plain answer sets what it has only */
	body = Q("{'id':'x','object':'text_completion','choices':[{'index':0,'text':'hi',"
	    "'logprobs':null,'finish_reason':'length'}]}");
	m.len = 0;
	checks++;
	if (oai_answer_text(0, body, strlen(body), &root, &text, &tlen, why, sizeof why) != OAI_OK ||
	    tlen != 2 || memcmp(text, "hi", 2) != 0) {
		fail("plain completion", "%s%s", why, "");
		return;
	}
	printf("ok - plain completion: its text\n");
	oai_answer_meta(0, root, on_meta, &m);
	json_decref(root);
	meta_is("plain completion: finish-reason only", &m, "finish-reason=length\n");
}

/* Pieces received, as "text|chunk|choice|delta\n" ("-" for NULL). */
struct pieces {
	char buf[8192];
	size_t len;
};

static void
feed(int chat, struct oai_acc *a, struct pieces *p, const char *data)
{
	struct oai_event ev;
	char why[256];
	int r = oai_chunk(chat, data, strlen(data), a, &ev, why, sizeof why);
	if (r != OAI_OK) {
		fail("stream event", "%s: %s", data, why);
		return;
	}
	if (ev.tlen > 0 || ev.chunk || ev.choice || ev.delta) {
		int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "%.*s|%s|%s|%s\n",
		    (int)ev.tlen, ev.text, ev.chunk ? ev.chunk : "-", ev.choice ? ev.choice : "-",
		    ev.delta ? ev.delta : "-");
		if (n > 0)
			p->len += (size_t)n;
	}
	oai_event_release(&ev);
}

static void
test_stream(void)
{
	struct oai_acc a;
	struct pieces p = { .len = 0 };
	struct meta m = { .len = 0 };
	memset(&a, 0, sizeof a);
#define CH(x) Q("{'id':'c','object':'chat.completion.chunk','created':1,'model':'m'," x "}")
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'role':'assistant','content':''},"
	    "'logprobs':null,'finish_reason':null}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'content':'Hel'},'finish_reason':null}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'content':'lo'},"
	    "'logprobs':{'content':[{'token':'lo','logprob':-1}],'refusal':null}}]"));
	feed(1, &a, &p, CH("'system_fingerprint':'fp','choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':0,'id':'call_a','type':'function','function':{'name':'get_','arguments':''}}]}}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':1,'id':'call_b','type':'function','function':{'name':'other','arguments':'{'}}]}}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':0,'function':{'name':'weather','arguments':'{\\'ci'}}]}}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':0,'function':{'arguments':'ty\\':1}'}},{'index':1,'function':{'arguments':'}'}}]},"
	    "'logprobs':{'content':[{'token':'x','logprob':-2}]}}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'refusal':'no'}}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{'refusal':'pe'}}]"));
	feed(1, &a, &p, CH("'choices':[{'index':1,'delta':{'content':'other choice'}}]"));
	feed(1, &a, &p, CH("'choices':[{'index':0,'delta':{},'finish_reason':'tool_calls'}]"));
	feed(1, &a, &p, CH("'choices':[],'usage':{'prompt_tokens':1,'completion_tokens':2,"
	    "'total_tokens':3}"));
#undef CH
	p.buf[p.len] = '\0';
	checks++;
	const char *want = Q(
	    "Hel|-|-|-\n"
	    "lo|-|{'logprobs':{'content':[{'token':'lo','logprob':-1}],'refusal':null}}|-\n"
	    "|{'system_fingerprint':'fp'}|-|{'tool_calls':[{'index':0,'id':'call_a','type':"
	    "'function','function':{'name':'get_','arguments':''}}]}\n"
	    "|-|-|{'tool_calls':[{'index':1,'id':'call_b','type':'function','function':"
	    "{'name':'other','arguments':'{'}}]}\n"
	    "|-|-|{'tool_calls':[{'index':0,'function':{'name':'weather','arguments':'{\\'ci'}}]}\n"
	    "|-|{'logprobs':{'content':[{'token':'x','logprob':-2}]}}|{'tool_calls':[{'index':0,"
	    "'function':{'arguments':'ty\\':1}'}},{'index':1,'function':{'arguments':'}'}}]}\n"
	    "|-|-|{'refusal':'no'}\n"
	    "|-|-|{'refusal':'pe'}\n");
	if (strcmp(p.buf, want) != 0)
		fail("stream: pieces", "got\n%s\nwant\n%s", p.buf, want);
	else
		printf("ok - stream: pieces, none for the role, the end, usage, another choice\n");
	oai_acc_meta(&a, on_meta, &m);
	oai_acc_clear(&a);
	meta_is("stream: metadata at the end", &m, Q(
	    "finish-reason=tool_calls\n"
	    "usage={'prompt_tokens':1,'completion_tokens':2,'total_tokens':3}\n"
	    "openai.extra={'system_fingerprint':'fp'}\n"
	    "openai.choice={'logprobs':{'content':[{'token':'lo','logprob':-1},"
	    "{'token':'x','logprob':-2}]}}\n"
	    "openai.message={'tool_calls':[{'index':0,'id':'call_a','type':'function','function':"
	    "{'name':'get_weather','arguments':'{\\'city\\':1}'}},{'index':1,'id':'call_b',"
	    "'type':'function','function':{'name':'other','arguments':'{}'}}],'refusal':'nope'}\n"));

	/* a text-only stream sets what it has, and builds nothing */
	memset(&a, 0, sizeof a);
	p.len = 0;
	m.len = 0;
	feed(0, &a, &p, Q("{'id':'c','object':'text_completion','choices':[{'index':0,'text':'a',"
	    "'logprobs':null,'finish_reason':null}]}"));
	feed(0, &a, &p, Q("{'id':'c','object':'text_completion','choices':[{'index':0,'text':'b',"
	    "'logprobs':{'tokens':['b'],'token_logprobs':[-1]},'finish_reason':'stop'}]}"));
	checks++;
	if (a.extra != NULL || a.message != NULL || a.strings != NULL)
		fail("completions stream", "%s%s", "extras built", "");
	else
		printf("ok - completions stream: no chunk extras built\n");
	oai_acc_meta(&a, on_meta, &m);
	oai_acc_clear(&a);
	meta_is("completions stream: metadata", &m, Q("finish-reason=stop\n"
	    "openai.choice={'logprobs':{'tokens':['b'],'token_logprobs':[-1]}}\n"));
}

static void
error_is(const char *name, const char *body, const char *want)
{
	char *e = oai_error_json(body, strlen(body));
	checks++;
	if ((want == NULL) != (e == NULL) || (e != NULL && strcmp(e, want) != 0))
		fail(name, "got %s, want %s", e ? e : "NULL", want ? want : "NULL");
	else
		printf("ok - %s\n", name);
	free(e);
}

static void
test_errors(void)
{
	error_is("an error object", Q("{'error':{'message':'m','type':'t','param':null,'code':'c'}}"),
	    Q("{'message':'m','type':'t','param':null,'code':'c'}"));
	error_is("an error string", Q("{'error':'boom'}"), Q("{'message':'boom'}"));
	error_is("vLLM's bare error", Q("{'object':'error','message':'m','type':'t','code':400}"),
	    Q("{'message':'m','type':'t','code':400}"));
	error_is("not JSON", "Service Unavailable", NULL);
	error_is("no error", Q("{'detail':'x'}"), NULL);

	/* an error in a stream's event */
	struct oai_acc a;
	struct oai_event ev;
	char why[256];
	const char *data = Q("{'error':{'message':'overloaded'}}");
	memset(&a, 0, sizeof a);
	checks++;
	if (oai_chunk(1, data, strlen(data), &a, &ev, why, sizeof why) != OAI_ERROR ||
	    strcmp(why, "overloaded") != 0)
		fail("error event", "got %s%s", why, "");
	else
		printf("ok - error event\n");
	oai_acc_clear(&a);
}


/* ---- the fast path: the document as it is ------------------------------------- */

static const struct oai_shape *const shapes[] = { &chat, &chat_plain, &chat_mct,
	&chat_as_sent, &comp };
static const char *const shape_names[] = { "chat", "chat (stream false)",
	"chat, max_completion_tokens", "chat, the cap as sent", "completions" };

/*
 * c with a signature: a document and the options its source derived from
 * it (sig.h's order), set as the call's options, with the signature.
 */
struct signed_call {
	porch_call c;
	char *sig;
};

static void
sign(struct signed_call *sc, const char *prompt, const char *doc, char kind, char cap,
    const char *const value[OAI_SIG_FIELDS])
{
	size_t k = 0;
	memset(sc, 0, sizeof *sc);
	sc->c.prompt = prompt;
	sc->c.opt[k][0] = "openai.request";
	sc->c.opt[k++][1] = doc;
	for (int i = 0; i < OAI_SIG_FIELDS; i++) {
		if (value[i] == NULL)
			continue;
		sc->c.opt[k][0] = oai_sig_options[i];
		sc->c.opt[k++][1] = value[i];
	}
	sc->sig = oai_sig_make(kind, cap, doc, strlen(doc), value);
	sc->c.opt[k][0] = OAI_SIG_KEY;
	sc->c.opt[k][1] = sc->sig;
}

/* c's option key, set to v (added when missing). */
static void
set_opt(porch_call *c, const char *key, const char *v)
{
	size_t i;
	for (i = 0; i < 15 && c->opt[i][0] != NULL; i++) {
		if (strcmp(c->opt[i][0], key) == 0)
			break;
	}
	c->opt[i][0] = key;
	c->opt[i][1] = v;
}

/*
 * For every shape: oai_request_body_ref takes the fast path (the body is
 * the document itself, not a copy) exactly where fast[] says, and its
 * body means what oai_request_body's does, always.
 */
static void
fast_is(const char *name, const porch_call *c, const int fast[5])
{
	const char *doc = porch_call_option(c, "openai.request");
	for (int i = 0; i < 5; i++) {
		const char *body = NULL;
		char *owned = NULL, *slow = NULL, why[384] = "", label[160];
		size_t len = 0, slen = 0;
		snprintf(label, sizeof label, "%s (%s)", name, shape_names[i]);
		checks++;
		int r = oai_request_body_ref(shapes[i], c, &body, &len, &owned, why, sizeof why);
		int rs = oai_request_body(shapes[i], c, &slow, &slen, why, sizeof why);
		if (r != rs) {
			fail(label, "results %s and %s differ", r == 0 ? "0" : "not 0",
			    rs == 0 ? "0" : "not 0");
		} else if (r != 0) {
			if (fast[i])
				fail(label, "refused: %s%s", why, "");
			else
				printf("ok - %s: refused both ways\n", label);
		} else if ((body == doc) != (fast[i] != 0) || (body == doc) != (owned == NULL)) {
			fail(label, "the fast path %s%s", fast[i] ? "not taken" : "taken", "");
		} else if (len != strlen(body)) {
			fail(label, "length %s%s", "wrong", "");
		} else if (!same_json(body, slow)) {
			fail(label, "got %s, the slow path %s", body, slow);
		} else {
			printf("ok - %s: %s\n", label, body == doc ? "as it is" : "rebuilt");
		}
		free(owned);
		free(slow);
	}
}

static void
test_fast(void)
{
	static const int none[5] = { 0, 0, 0, 0, 0 };
	/* the full chat request, as the http source signs it: numbers as
	 * "%.17g" writes them, stop as a JSON array, system the developer's */
	const char *doc = strdup(Q(full_chat));
	const char *v[OAI_SIG_FIELDS] = { "m1", "64", "0.69999999999999996",
		"0.90000000000000002", "[\"END\"]", "be brief", "true" };
	struct signed_call sc;
	sign(&sc, "and tomorrow?", doc, 'c', 'T', v);
	/* chat endpoints that send max_tokens; not the one that renames it,
	 * nor /completions (another kind) */
	static const int chat_t[5] = { 1, 1, 0, 1, 0 };
	fast_is("signed, nothing changed", &sc.c, chat_t);

	/* any option a stage changed, the prompt, the document: rebuilt */
	static const char *const changed[][2] = {
		{ "model", "m2" }, { "model", "" }, { "max-tokens", "63" },
		{ "temperature", "0.7" }, { "temperature", "0.5" }, { "top-p", "1" },
		{ "stop", "[\"END\",\"STOP\"]" }, { "stop", "END" }, { "system", "be long" },
		{ "system", "" }, { "stream", "false" }, { "stream", "1" },
	};
	for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++) {
		char label[96];
		struct signed_call x;
		sign(&x, "and tomorrow?", doc, 'c', 'T', v);
		set_opt(&x.c, changed[i][0], changed[i][1]);
		snprintf(label, sizeof label, "option %s changed to '%s'", changed[i][0],
		    changed[i][1]);
		fast_is(label, &x.c, none);
		free(x.sig);
	}
	/* an option a stage added: inference's defaults */
	const char *nomax[OAI_SIG_FIELDS] = { "m1", NULL, NULL, NULL, NULL, NULL, "false" };
	const char *plain = Q("{'model':'m1','messages':[{'role':'user','content':'q'}]}");
	struct signed_call p;
	sign(&p, "q", plain, 'c', 'N', nomax);
	static const int chat_n[5] = { 1, 1, 1, 1, 0 };
	fast_is("no cap, none added", &p.c, chat_n);
	set_opt(&p.c, "max-tokens", "256");
	fast_is("a cap a stage added", &p.c, none);
	free(p.sig);
	sign(&p, "q", plain, 'c', 'N', nomax);
	set_opt(&p.c, "temperature", "0.2");
	fast_is("a temperature a stage added", &p.c, none);
	free(p.sig);
	sign(&p, "q", plain, 'c', 'N', nomax);
	set_opt(&p.c, "response-format", "json");
	fast_is("response-format json added", &p.c, none);
	free(p.sig);

	/* the prompt: a stage's text, or another input */
	sign(&p, "q2", plain, 'c', 'N', nomax);
	call_input = "q";
	fast_is("the prompt changed", &p.c, none);
	call_input = NULL;
	free(p.sig);
	/* the document rewritten (redact does): same length, one byte */
	char *other = strdup(plain);
	sign(&p, "q", plain, 'c', 'N', nomax);
	other[strlen(other) - 5] = 'r';
	set_opt(&p.c, "openai.request", other);
	fast_is("the document rewritten", &p.c, none);
	free(p.sig);
	free(other);
	/* a signature broken, or with a field changed (a signature's kind
	 * and cap are its source's word: the kind of another endpoint is
	 * below, with a completion request) */
	sign(&p, "q", plain, 'c', 'N', nomax);
	set_opt(&p.c, OAI_SIG_KEY, "1cN:");
	fast_is("a broken signature", &p.c, none);
	p.sig[strlen(p.sig) - 2] = 'x';
	set_opt(&p.c, OAI_SIG_KEY, p.sig);
	fast_is("a signature with a field changed", &p.c, none);
	free(p.sig);

	/* the cap under the newer name: where the upstream takes that name */
	const char *mct = Q("{'model':'m1','messages':[{'role':'user','content':'q'}],"
	    "'max_completion_tokens':9,'stream':true,'stream_options':{'include_usage':true}}");
	const char *vm[OAI_SIG_FIELDS] = { "m1", "9", NULL, NULL, NULL, NULL, "true" };
	sign(&p, "q", mct, 'c', 'C', vm);
	static const int chat_c[5] = { 0, 0, 1, 1, 0 };
	fast_is("max_completion_tokens", &p.c, chat_c);
	free(p.sig);

	/* a system message and parts: the text parts joined are the prompt */
	const char *parts = Q("{'model':'m','messages':[{'role':'system','content':"
	    "[{'type':'text','text':'s1'},{'type':'text','text':'s2'}]},{'role':'user','content':["
	    "{'type':'text','text':'a'},{'type':'image_url','image_url':{'url':'u'}},"
	    "{'type':'text','text':'b'}]}],'temperature':1,'top_p':0.5,'stop':'X'}");
	const char *vp[OAI_SIG_FIELDS] = { "m", NULL, "1", "0.5", "[\"X\"]", "s1\ns2", "false" };
	sign(&p, "a\nb", parts, 'c', 'N', vp);
	fast_is("parts, system parts, stop as a string", &p.c, chat_n);
	free(p.sig);

	/* a completion request, to /completions only */
	const char *compl = Q("{'model':'m','prompt':['p1'],'max_tokens':5,'echo':false}");
	const char *vc[OAI_SIG_FIELDS] = { "m", "5", NULL, NULL, NULL, NULL, "false" };
	sign(&p, "p1", compl, 'p', 'T', vc);
	static const int comp_only[5] = { 0, 0, 0, 0, 1 };
	fast_is("a completion request", &p.c, comp_only);
	p.c.prompt = "p2";
	call_input = "p1";
	fast_is("a completion request, prompt changed", &p.c, none);
	call_input = NULL;
	free(p.sig);

	free(sc.sig);
	free((char *)doc);
}

int
main(void)
{
	test_forward();
	test_parts();
	test_settings();
	test_as_sent();
	test_completions();
	test_cross();
	test_from_text();
	test_whole();
	test_stream();
	test_errors();
	test_fast();
	printf("# %d checks\n", checks);
	if (failures > 0) {
		printf("# %d of %d checks failed\n", failures, checks);
		return 1;
	}
	return 0;
}
