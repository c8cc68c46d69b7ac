/*
 * openai-jscan.c -- differential unit test of the openai worker's answer
 * scanner (plugins/openai/jscan.c, and its use in answer.c) against the
 * jansson way it stands in for: for many whole answers and streamed events
 * (the usual ones, edge cases, every prefix and many one-byte mutations of
 * them), either the scanner declines, or both give the same text (byte for
 * byte), the same pieces and the same metadata (the same keys in the same
 * order; finish-reason byte for byte, JSON values by json_equal).  It also
 * checks that the usual answers and events are the scanner's, and that an
 * event of text alone allocates nothing.
 *
 * JSON in this file is written with ' for " (Q() turns them back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../plugins/openai/request.h"

/* request.c's calls into porch, unused here */
const char *
porch_call_prompt(const porch_call *c, size_t *len)
{
	(void)c;
	*len = 0;
	return "";
}

const char *
porch_call_option(const porch_call *c, const char *key)
{
	(void)c;
	(void)key;
	return NULL;
}

const char *
porch_call_input(const porch_call *c, size_t *len)
{
	(void)c;
	*len = 0;
	return "";
}

static int failures, checks, declined, taken;

static const char *
Q(const char *s)
{
	static char bufs[16][8192];
	static int next;
	char *b = bufs[next++ % 16];
	size_t i;
	for (i = 0; s[i] != '\0' && i + 1 < sizeof bufs[0]; i++)
		b[i] = s[i] == '\'' ? '"' : s[i];
	b[i] = '\0';
	return b;
}

static void
fail(const char *name, const char *what, const char *input, size_t len)
{
	printf("not ok - %s: %s; input: '%.*s'\n", name, what, (int)len, input);
	failures++;
}

/* ---- metadata, as set --------------------------------------------------------- */

#define METAS 16

struct metas {
	char *key[METAS], *val[METAS];
	int n;
};

static void
on_meta(void *arg, const char *key, const char *value)
{
	struct metas *m = arg;
	if (m->n == METAS)
		return;
	m->key[m->n] = strdup(key);
	m->val[m->n] = strdup(value);
	m->n++;
}

static void
metas_free(struct metas *m)
{
	for (int i = 0; i < m->n; i++) {
		free(m->key[i]);
		free(m->val[i]);
	}
	m->n = 0;
}

/*
 * Two JSON texts of the same value (both must be JSON): a, the scanner's,
 * at the precision b, jansson's, has.  The scanner passes reals on as the
 * upstream wrote them, where jansson's way rounds them to 15 digits
 * (OAI_DUMP_FLAGS): a is dumped that way first.
 */
static int
same_json(const char *a, const char *b)
{
	json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
	char *da = ja != NULL ? json_dumps(ja, OAI_DUMP_FLAGS) : NULL;
	json_decref(ja);
	ja = da != NULL ? json_loads(da, 0, NULL) : NULL;
	int r = ja != NULL && jb != NULL && json_equal(ja, jb);
	free(da);
	json_decref(ja);
	json_decref(jb);
	return r;
}

static int
same_optional_json(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return same_json(a, b);
}

static int
same_metas(const struct metas *a, const struct metas *b)
{
	if (a->n != b->n)
		return 0;
	for (int i = 0; i < a->n; i++) {
		if (strcmp(a->key[i], b->key[i]) != 0)
			return 0;
		if (strcmp(a->key[i], "finish-reason") == 0 ? strcmp(a->val[i], b->val[i]) != 0 :
		    !same_json(a->val[i], b->val[i]))
			return 0;
	}
	return 1;
}

/* ---- whole answers ------------------------------------------------------------ */

/* want: 1 the scanner must take it, 0 either way. */
static void
answer_case(const char *name, int chat, const char *body, size_t len, int want)
{
	struct oai_answer an;
	struct metas ms = { .n = 0 }, mj = { .n = 0 };
	checks++;
	int rs = oai_answer_scan(chat, body, len, &an, on_meta, &ms);
	if (rs == OAI_DECLINE) {
		declined++;
		if (want)
			fail(name, "declined", body, len);
		else if (ms.n != 0)
			fail(name, "declined after setting metadata", body, len);
		oai_answer_release(&an);
		metas_free(&ms);
		return;
	}
	taken++;
	json_t *root = NULL;
	const char *text;
	size_t tlen;
	char why[256];
	int rj = oai_answer_text(chat, body, len, &root, &text, &tlen, why, sizeof why);
	if (rs != OAI_OK)
		fail(name, "the scanner ran out of memory", body, len);
	else if (rj != OAI_OK)
		fail(name, "the scanner took what jansson refuses", body, len);
	else if (oai_answer_meta(chat, root, on_meta, &mj) != OAI_OK)
		fail(name, "jansson's metadata failed", body, len);
	else if (an.tlen != tlen || memcmp(an.text, text, tlen) != 0)
		fail(name, "not the same text", body, len);
	else if (!same_metas(&ms, &mj))
		fail(name, "not the same metadata", body, len);
	json_decref(root);
	oai_answer_release(&an);
	metas_free(&ms);
	metas_free(&mj);
}

/* ---- streamed events ---------------------------------------------------------- */

/* The scanner and jansson each read one event into an acc of their own. */
static void
event_case(const char *name, int chat, const char *data, size_t len, int want)
{
	struct oai_acc as, aj;
	struct oai_event es, ej;
	struct metas ms = { .n = 0 }, mj = { .n = 0 };
	char why[256];
	memset(&as, 0, sizeof as);
	memset(&aj, 0, sizeof aj);
	checks++;
	int rs = oai_chunk_scan(chat, data, len, &as, &es);
	if (rs == OAI_DECLINE) {
		declined++;
		if (want)
			fail(name, "declined", data, len);
		else if (as.raw_finish || as.raw_usage || as.raw_extra || as.choices_p.len ||
		    as.deltas_p.len)
			fail(name, "declined after changing the acc", data, len);
		oai_acc_clear(&as);
		return;
	}
	taken++;
	int rj = oai_chunk_json(chat, data, len, &aj, &ej, why, sizeof why);
	if (rs != OAI_OK)
		fail(name, "the scanner ran out of memory", data, len);
	else if (rj != OAI_OK)
		fail(name, "the scanner took what jansson refuses", data, len);
	else if (es.tlen != ej.tlen || memcmp(es.text, ej.text, es.tlen) != 0)
		fail(name, "not the same text", data, len);
	else if (!same_optional_json(es.chunk, ej.chunk) ||
	    !same_optional_json(es.choice, ej.choice) || !same_optional_json(es.delta, ej.delta))
		fail(name, "not the same extras", data, len);
	else if (oai_acc_meta(&as, on_meta, &ms) != OAI_OK ||
	    oai_acc_meta(&aj, on_meta, &mj) != OAI_OK)
		fail(name, "out of memory for the metadata", data, len);
	else if (!same_metas(&ms, &mj))
		fail(name, "not the same metadata", data, len);
	if (rs == OAI_OK)
		oai_event_release(&es);
	if (rj == OAI_OK)
		oai_event_release(&ej);
	oai_acc_clear(&as);
	oai_acc_clear(&aj);
	metas_free(&ms);
	metas_free(&mj);
}

/*
 * A stream read three ways: by oai_chunk (the scanner, jansson for what it
 * declines), by jansson alone, and alternately: the same pieces and the
 * same metadata at the end (the merging order kept).
 */
static void
stream_case(const char *name, int chat, const char *const *events, size_t n)
{
	struct oai_acc acc[3];
	struct metas m[3];
	char pieces[3][8192];
	size_t plen[3] = { 0, 0, 0 };
	char why[256];
	checks++;
	memset(acc, 0, sizeof acc);
	memset(m, 0, sizeof m);
	for (int way = 0; way < 3; way++) {
		for (size_t i = 0; i < n; i++) {
			struct oai_event ev;
			const char *d = events[i];
			int json = way == 1 || (way == 2 && i % 2 == 1);
			int r = json ? oai_chunk_json(chat, d, strlen(d), &acc[way], &ev, why, sizeof why) :
			    oai_chunk(chat, d, strlen(d), &acc[way], &ev, why, sizeof why);
			if (r != OAI_OK) {
				plen[way] += (size_t)snprintf(pieces[way] + plen[way],
				    sizeof pieces[way] - plen[way], "error %d\n", r);
				continue;
			}
			/* extras compared as values: one canonical text each */
			const char *x[3] = { ev.chunk, ev.choice, ev.delta };
			char *canon[3] = { NULL, NULL, NULL };
			for (int k = 0; k < 3; k++) {
				json_t *j = x[k] ? json_loads(x[k], 0, NULL) : NULL;
				canon[k] = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
				json_decref(j);
			}
			plen[way] += (size_t)snprintf(pieces[way] + plen[way],
			    sizeof pieces[way] - plen[way], "%.*s|%s|%s|%s\n", (int)ev.tlen, ev.text,
			    canon[0] ? canon[0] : "-", canon[1] ? canon[1] : "-",
			    canon[2] ? canon[2] : "-");
			for (int k = 0; k < 3; k++)
				free(canon[k]);
			oai_event_release(&ev);
		}
		oai_acc_meta(&acc[way], on_meta, &m[way]);
		oai_acc_clear(&acc[way]);
	}
	for (int way = 1; way < 3; way++) {
		if (plen[way] != plen[0] || memcmp(pieces[way], pieces[0], plen[0]) != 0) {
			printf("# pieces:\n%.*s# and:\n%.*s", (int)plen[0], pieces[0],
			    (int)plen[way], pieces[way]);
			fail(name, "not the same pieces", "", 0);
		} else if (!same_metas(&m[way], &m[0])) {
			fail(name, "not the same metadata at the end", "", 0);
		}
	}
	for (int way = 0; way < 3; way++)
		metas_free(&m[way]);
}

/* ---- variations of an input -------------------------------------------------- */

typedef void case_fn(const char *name, int chat, const char *p, size_t len, int want);

/* Every prefix, and one-byte replacements everywhere. */
static void
variations(const char *name, case_fn *fn, int chat, const char *p)
{
	static const char subst[] = "\"\\}]{[,: 0e-.u\x01\x80\xff\xc3n1";
	size_t len = strlen(p);
	char *b = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		fn(name, chat, p, i, 0);
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < sizeof subst - 1; k++) {
			memcpy(b, p, len + 1);
			b[i] = subst[k];
			fn(name, chat, b, len, 0);
		}
	}
	free(b);
}

/* White space between all tokens: " \n" before and "\t\r " after each
 * structural character outside strings. */
static const char *
spaced(const char *p)
{
	static char buf[16384];
	size_t o = 0;
	int in = 0;
	for (; *p != '\0' && o + 8 < sizeof buf; p++) {
		char c = *p;
		if (in) {
			buf[o++] = c;
			if (c == '\\')
				buf[o++] = *++p;
			else if (c == '"')
				in = 0;
			continue;
		}
		if (c == '"') {
			in = 1;
			buf[o++] = c;
			continue;
		}
		if (strchr("{}[],:", c) != NULL) {
			memcpy(buf + o, " \n", 2);
			o += 2;
			buf[o++] = c;
			memcpy(buf + o, "\t\r ", 3);
			o += 3;
			continue;
		}
		buf[o++] = c;
	}
	buf[o] = '\0';
	return buf;
}

static void
both(case_fn *fn, const char *name, int chat, const char *p, int want)
{
	fn(name, chat, p, strlen(p), want);
	fn(name, chat, spaced(p), strlen(spaced(p)), want);
}

/* ---- the inputs --------------------------------------------------------------- */

static const char *const whole_chat[] = {
	/* the usual answers: the scanner's (want 1) */
	"{'id':'chatcmpl-1','object':'chat.completion','created':1,"
	"'model':'m','system_fingerprint':'fp_1','service_tier':'default','x':null,"
	"'choices':[{'index':0,'message':{'role':'assistant','content':null,'refusal':null,"
	"'tool_calls':[{'id':'call_1','type':'function','function':{'name':'f',"
	"'arguments':'{}'}}],'annotations':[]},"
	"'logprobs':{'content':[{'token':'a','logprob':-0.5,'bytes':[97],'top_logprobs':[]}]},"
	"'finish_reason':'tool_calls'},"
	"{'index':1,'message':{'role':'assistant','content':'two'},'finish_reason':'stop'}],"
	"'usage':{'prompt_tokens':5,'completion_tokens':7,'total_tokens':12,"
	"'completion_tokens_details':{'reasoning_tokens':2}}}",
	"{'id':'x','object':'chat.completion','created':1700000000,'model':'ok','choices':[{"
	"'index':0,'message':{'role':'assistant','content':'you said: hello from wrk'},"
	"'logprobs':null,'finish_reason':'stop'}],'usage':{'prompt_tokens':3,"
	"'completion_tokens':5,'total_tokens':8}}",
	"{'choices':[{'message':{'content':'a\\nb\\t\\'q\\' \\\\ \\/ \\u00e9 \\u20AC "
	"\\ud83d\\ude00 \\b\\f\\r end'}}]}",
	"{'choices':[{'message':{'content':'\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80'}}],"
	"'x':{'a':[1,{'b':null}],'c':'\\u00e9','d':[[],{}],'e':true,'f':false}}",
	"{'choices':[{'message':{'content':''}}],'usage':{}}",
	"{'choices':[{'message':{'content':'n'}}],'logprobs':null,'n0':0,'n1':-0,"
	"'n2':1.5,'n3':-1.5e10,'n4':1E+2,'n5':1e-400,'n6':1e299,'n7':123456789012345678,"
	"'n8':-0.0,'n9':0e0,'n10':2.5E-3}",
	"{'choices':[{'message':{'content':'x','role':'assistant'},'finish_reason':'s\\u0074op'},"
	"  {'index':1} ,\n{'index':2,'x':[1,2]}]}",
	"{'choices':[{'message':{'content':'x','extra':{'a':1,'a':2}}}]}",
	"{'choices':[{'message':{'content':'x'},'logprobs':null,'finish_reason':null}]}",
	NULL
};

static const char *const whole_odd[] = {
	/* jansson's to word, or the scanner's to decline */
	"{'choices':[{'message':{'content':'a\\u0000b'}}]}",
	"{'choices':[{'message':{'content':'\\ud800'}}]}",
	"{'choices':[{'message':{'content':'\\udc00\\ud800'}}]}",
	"{'choices':[{'message':{'content':'\\ud800\\u0041'}}]}",
	"{'choices':[{'message':{'content':'\\ud800x'}}]}",
	"{'choices':[{'message':{'content':'\\x'}}]}",
	"{'choices':[{'message':{'content':'\\u12g4'}}]}",
	"{'model':'a','model':'b','choices':[{'message':{'content':'x'}}]}",
	"{'choices':[{'message':{'content':'x'}}],'choices':[{'message':{'content':'y'}}]}",
	"{'choices':[{'message':{'content':'x','content':'y'}}]}",
	"{'choices':[{'message':{'content':'x'},'finish_reason':'a','finish_reason':'b'}]}",
	"{'choices':[{'message':{'\\u0063ontent':'x'}}]}",
	"{'choices':[{'message':{'content':1}}]}",
	"{'choices':[{'message':{'content':['x']}}]}",
	"{'choices':[{'message':{}}]}",
	"{'choices':[{'message':null}]}",
	"{'choices':[{'message':'x'}]}",
	"{'choices':[{'text':'x'}]}",
	"{'choices':[{'text':null}]}",
	"{'choices':[{'text':1}]}",
	"{'choices':[]}",
	"{'choices':{}}",
	"{'choices':[1]}",
	"{'choices':null}",
	"{}",
	"[]",
	"",
	"   ",
	"{'error':{'message':'m'}}",
	"{'error':'boom','choices':[]}",
	"{'error':null,'choices':[{'message':{'content':'x'}}]}",
	"{'choices':[{'message':{'content':'x'}}]} x",
	"{'choices':[{'message':{'content':'x'}}]}\n\t ",
	"{'choices':[{'message':{'content':'x'}}],'n':1e309}",
	"{'choices':[{'message':{'content':'x'}}],'n':-1e309}",
	"{'choices':[{'message':{'content':'x'}}],'n':1234567890123456789}",
	"{'choices':[{'message':{'content':'x'}}],'n':99999999999999999999}",
	"{'choices':[{'message':{'content':'x'}}],'n':-9223372036854775809}",
	"{'choices':[{'message':{'content':'x'}}],'n':01}",
	"{'choices':[{'message':{'content':'x'}}],'n':1.}",
	"{'choices':[{'message':{'content':'x'}}],'n':.5}",
	"{'choices':[{'message':{'content':'x'}}],'n':-}",
	"{'choices':[{'message':{'content':'x'}}],'n':1e}",
	"{'choices':[{'message':{'content':'x'}}],'n':1e+}",
	"{'choices':[{'message':{'content':'x'}}],'n':+1}",
	"{'choices':[{'message':{'content':'x'}}],'n':0x1}",
	"{'choices':[{'message':{'content':'x'}}],'n':truex}",
	"{'choices':[{'message':{'content':'x'}}],'n':nul}",
	"{'choices':[{'message':{'content':'x'}}],'n':NaN}",
	"{'choices':[{'message':{'content':'x'}}],'n':[1,]}",
	"{'choices':[{'message':{'content':'x'}}],}",
	"{'choices':[{'message':{'content':'x'}}] 'a':1}",
	"{'choices':[{'message':{'content':'\xff'}}]}",
	"{'choices':[{'message':{'content':'\xc0\x80'}}]}",
	"{'choices':[{'message':{'content':'\xed\xa0\x80'}}]}",
	"{'choices':[{'message':{'content':'\xf4\x90\x80\x80'}}]}",
	"{'choices':[{'message':{'content':'\xe2\x82'}}]}",
	"{'choices':[{'message':{'content':'\xe0\x80\xaf'}}]}",
	"{'choices':[{'message':{'content':'x'}}],'x':'\x01'}",
	"{'choices':[{'message':{'content':'x'}}],'x\xff':1}",
	"{'choices':[{'message':{'content':'x\n'}}]}",
	NULL
};

static const char *const whole_text[] = {
	"{'id':'x','object':'text_completion','choices':[{'index':0,'text':'hi',"
	"'logprobs':null,'finish_reason':'length'}]}",
	"{'choices':[{'text':'a\\nb','logprobs':{'tokens':['a'],'token_logprobs':[-1]},"
	"'delta':1}],'x':[]}",
	NULL
};

static const char *const events_chat[] = {
#define CH(x) "{'id':'c','object':'chat.completion.chunk','created':1,'model':'m'," x "}"
	CH("'choices':[{'index':0,'delta':{'role':'assistant','content':''},"
	    "'logprobs':null,'finish_reason':null}]"),
	CH("'choices':[{'index':0,'delta':{'content':'Hel'},'finish_reason':null}]"),
	CH("'system_fingerprint':'fp','choices':[{'index':0,'delta':{'content':'lo\\n'},"
	    "'finish_reason':null}]"),
	CH("'choices':[{'index':0,'delta':{'content':'lo'},"
	    "'logprobs':{'content':[{'token':'lo','logprob':-1}],'refusal':null}}]"),
	CH("'system_fingerprint':'fp','choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':0,'id':'call_a','type':'function','function':{'name':'get_','arguments':''}}]}}]"),
	CH("'choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':1,'id':'call_b','type':'function','function':{'name':'other','arguments':'{'}}]}}]"),
	CH("'choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':0,'function':{'name':'weather','arguments':'{\\'ci'}}]}}]"),
	CH("'choices':[{'index':0,'delta':{'tool_calls':"
	    "[{'index':0,'function':{'arguments':'ty\\':1}'}},{'index':1,'function':{'arguments':'}'}}]},"
	    "'logprobs':{'content':[{'token':'x','logprob':-2}]}}]"),
	CH("'choices':[{'index':0,'delta':{'refusal':'no'}}]"),
	CH("'choices':[{'index':0,'delta':{'refusal':'pe'}}]"),
	CH("'choices':[{'index':-0,'delta':{'content':'minus zero'}}]"),
	CH("'choices':[{'index':0.0,'delta':{'content':'real zero'}}]"),
	CH("'choices':[{'index':0,'delta':null,'finish_reason':'st\\u006fp'}]"),
	CH("'choices':[{'index':0,'delta':{},'finish_reason':'tool_calls'}]"),
	CH("'choices':[],'usage':{'prompt_tokens':1,'completion_tokens':2,'total_tokens':3}"),
	CH("'choices':[{'delta':{'content':'x'}}],'usage':null,'x':null"),
	CH("'choices':[{'delta':{'content':'x'}}],'usage':{}"),
	CH("'choices':[{'delta':{'content':'\\ud83d\\ude00 \\u00e9'}}],'service_tier':'t'"),
#undef CH
	NULL
};

static const char *const events_odd[] = {
	"{'choices':[{'index':1,'delta':{'content':'other choice'}}]}",
	"{'choices':[{'index':1,'delta':{'content':'b'}},{'index':0,'delta':{'content':'a'}}]}",
	"{'choices':[{'index':0,'delta':'x'}]}",
	"{'choices':[{'index':0,'delta':{'content':1}}]}",
	"{'choices':[{'index':0,'delta':{'content':'\\u0000'}}]}",
	"{'error':{'message':'overloaded'}}",
	"{'choices':[{'delta':{'content':'a','content':'b'}}]}",
	"{'choices':[{'delta':{'x':1,'x':null}}]}",
	"{'choices':[{'delta':{'content':'x'}}],'x':1,'x':null}",
	"{'choices':[1]}",
	"{'choices':{}}",
	"{}",
	"{'choices':[{'delta':{'content':'x'}}]}}",
	NULL
};

static const char *const events_text[] = {
	"{'id':'c','object':'text_completion','choices':[{'index':0,'text':'a',"
	"'logprobs':null,'finish_reason':null}]}",
	"{'id':'c','object':'text_completion','choices':[{'index':0,'text':'b',"
	"'logprobs':{'tokens':['b'],'token_logprobs':[-1]},'finish_reason':'stop'}]}",
	"{'choices':[{'text':null,'delta':{'a':1}}]}",
	"{'choices':[{'text':1}]}",
	NULL
};

/* ---- an event of text alone allocates nothing ------------------------------------- */

static size_t jansson_allocs;

static void *
count_malloc(size_t n)
{
	jansson_allocs++;
	return malloc(n);
}

static void
test_no_allocation(void)
{
	struct oai_acc a;
	char why[256];
	const char *ev = Q("{'id':'chatcmpl-1','object':'chat.completion.chunk','created':1,"
	    "'model':'m','system_fingerprint':'fp_1','choices':[{'index':0,"
	    "'delta':{'content':'word\\n'},'logprobs':null,'finish_reason':null}]}");
	memset(&a, 0, sizeof a);
	checks++;
	json_set_alloc_funcs(count_malloc, free);
	int bad = 0;
	void *text = NULL, *extra = NULL;
	size_t tcap = 0, xcap = 0;
	for (int i = 0; i < 1000 && !bad; i++) {
		struct oai_event e;
		if (oai_chunk(1, ev, strlen(ev), &a, &e, why, sizeof why) != OAI_OK ||
		    e.tlen != 5 || memcmp(e.text, "word\n", 5) != 0 || e.chunk == NULL)
			bad = 1;
		oai_event_release(&e);
		if (i == 0) {
			text = a.text.p, tcap = a.text.cap;
			extra = a.extra_s.p, xcap = a.extra_s.cap;
		} else if (a.text.p != text || a.text.cap != tcap || a.extra_s.p != extra ||
		    a.extra_s.cap != xcap) {
			bad = 1;
		}
	}
	json_set_alloc_funcs(malloc, free);
	oai_acc_clear(&a);
	if (bad || jansson_allocs != 0)
		fail("no allocation", "events of text alone allocated", ev, strlen(ev));
	else
		printf("ok - 1000 events of text (escaped) and a system_fingerprint: "
		    "no allocation after the first\n");
}

/* ---- long texts a part at a time --------------------------------------------------- */

/* Whether the n bytes at p end between whole UTF-8 sequences. */
static int
whole_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t k = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : 2;
		if (i + k > n)
			return 0;
		i += k;
	}
	return 1;
}

/*
 * js_unescape_part, at every room from 4 bytes up, puts together what
 * js_string gives whole, each part ending between whole characters; and an
 * event whose text is longer than the acc's lazy is left as written.
 */
static void
test_parts(void)
{
	static const char *const strings[] = {
		"'plain ascii text, no escape at all'",
		"'a\\nb\\tc\\\\d\\/e\\'f\\bg\\fh\\ri'",
		"'caf\u00e9 \u20ac \U0001F600 x\\u00e9y\\u20acz\\ud83d\\ude00w'",
		"'\\ud83d\\ude00\\ud83d\\ude00\u00e9\\n\U0001F600\\u0041'",
		"'\u00e9\u00e9\u00e9\u20ac\u20ac\U0001F600\U0001F600abc'",
		NULL
	};
	char big[4096];
	for (size_t i = 0; strings[i] != NULL; i++) {
		/* \u and \U above are C's: the bytes are UTF-8 */
		const char *q = Q(strings[i]);
		/* repeated, so that parts are cut everywhere */
		size_t n = strlen(q) - 2, len = 0;
		big[len++] = '"';
		for (int r = 0; r < 9; r++, len += n)
			memcpy(big + len, q + 1, n);
		big[len++] = '"';
		struct jscan sc;
		struct js_value v;
		struct js_buf b = { 0 };
		const char *whole;
		size_t wn;
		js_init(&sc, big, len);
		checks++;
		if (js_value(&sc, &v) != 0 || js_string(&v, &b, &whole, &wn) != 0) {
			fail("parts", "the string is not read", big, len);
			js_buf_free(&b);
			continue;
		}
		for (size_t room = 4; room < 64; room++) {
			char out[4096], part[64];
			size_t on = 0;
			const char *p = v.p + 1, *end = v.p + v.n - 1;
			int bad = 0;
			while (p < end && !bad) {
				size_t k = js_unescape_part(&p, end, part, room);
				bad = k == 0 || k > room || !whole_utf8((unsigned char *)part, k);
				memcpy(out + on, part, k);
				on += k;
			}
			checks++;
			if (bad || on != wn || memcmp(out, whole, wn) != 0) {
				char why[64];
				snprintf(why, sizeof why, "parts of %zu bytes are not the text", room);
				fail("parts", why, big, len);
				break;
			}
		}
		js_buf_free(&b);
	}
	/* js_utf8_cut: never into a sequence, else all */
	checks++;
	if (js_utf8_cut("ab\xc3", 3) != 2 || js_utf8_cut("ab\xc3\xa9", 4) != 4 ||
	    js_utf8_cut("\xe2\x82", 2) != 0 || js_utf8_cut("\xf0\x9f\x98\x80", 4) != 4 ||
	    js_utf8_cut("a\xf0\x9f\x98", 4) != 1 || js_utf8_cut("\x80\x80\x80\x80", 4) != 4)
		fail("js_utf8_cut", "a sequence was cut", "", 0);

	/* a long text with escapes is left as written, past the acc's lazy */
	struct oai_acc a;
	struct oai_event e;
	char why[256];
	const char *ev = Q("{'choices':[{'index':0,'delta':{'content':'0123456789\\n0123456789'}}]}");
	memset(&a, 0, sizeof a);
	a.lazy = 8;
	checks++;
	if (oai_chunk(1, ev, strlen(ev), &a, &e, why, sizeof why) != OAI_OK || !e.raw ||
	    e.tlen != 22 || memcmp(e.text, "0123456789\\n0123456789", 22) != 0)
		fail("lazy", "a long text was not left as written", ev, strlen(ev));
	oai_event_release(&e);
	oai_acc_clear(&a);
	printf("ok - long texts a part at a time\n");
}

int
main(void)
{
	char name[64];
	for (size_t i = 0; whole_chat[i] != NULL; i++) {
		snprintf(name, sizeof name, "whole chat answer %zu", i);
		both(answer_case, name, 1, Q(whole_chat[i]), 1);
		variations(name, answer_case, 1, Q(whole_chat[i]));
		/* a chat answer read as a completion */
		both(answer_case, name, 0, Q(whole_chat[i]), 0);
	}
	for (size_t i = 0; whole_odd[i] != NULL; i++) {
		snprintf(name, sizeof name, "odd answer %zu", i);
		both(answer_case, name, 1, Q(whole_odd[i]), 0);
		both(answer_case, name, 0, Q(whole_odd[i]), 0);
	}
	for (size_t i = 0; whole_text[i] != NULL; i++) {
		snprintf(name, sizeof name, "whole completion %zu", i);
		both(answer_case, name, 0, Q(whole_text[i]), 1);
		variations(name, answer_case, 0, Q(whole_text[i]));
	}
	const char *stream[64];
	size_t n = 0;
	for (size_t i = 0; events_chat[i] != NULL; i++) {
		snprintf(name, sizeof name, "chat event %zu", i);
		stream[n++] = strdup(Q(events_chat[i]));
		both(event_case, name, 1, Q(events_chat[i]), 1);
		variations(name, event_case, 1, Q(events_chat[i]));
		both(event_case, name, 0, Q(events_chat[i]), 0);
	}
	for (size_t i = 0; events_odd[i] != NULL; i++) {
		snprintf(name, sizeof name, "odd event %zu", i);
		stream[n++] = strdup(Q(events_odd[i]));
		both(event_case, name, 1, Q(events_odd[i]), 0);
		both(event_case, name, 0, Q(events_odd[i]), 0);
	}
	stream_case("a chat stream, three ways", 1, stream, n);
	for (size_t i = 0; i < n; i++)
		free((char *)stream[i]);
	n = 0;
	for (size_t i = 0; events_text[i] != NULL; i++) {
		snprintf(name, sizeof name, "completion event %zu", i);
		stream[n++] = strdup(Q(events_text[i]));
		both(event_case, name, 0, Q(events_text[i]), i < 2);
		variations(name, event_case, 0, Q(events_text[i]));
	}
	stream_case("a completion stream, three ways", 0, stream, n);
	for (size_t i = 0; i < n; i++)
		free((char *)stream[i]);
	test_no_allocation();
	test_parts();
	printf("# %d cases: the scanner took %d (the same as jansson's), declined %d\n",
	    checks, taken, declined);
	if (failures > 0) {
		printf("# %d of %d checks failed\n", failures, checks);
		return 1;
	}
	printf("ok - the scanner and jansson agree\n");
	return 0;
}
