/*
 * openai.c -- worker: calls a model server through the OpenAI-compatible
 * HTTP API (POST /v1/chat/completions or /v1/completions), streamed or not.
 *
 * Every call is one HTTP request on a transport the loop drives, with no
 * thread per request, and connections kept and reused, at most
 * max-connections of them: porch's own HTTP/1.1 client for http:// (h1.c),
 * or libcurl's multi interface (xcurl.c, cev.c) for https:// and when the
 * transport parameter asks for it.  Request bodies are JSON (request.c):
 * a client's request forwarded whole when a source passed it on, else
 * built from the text; answers (answer.c) come back whole, their text as
 * pieces and the rest as extras and metadata; streamed answers are
 * server-sent events (sse.c), whose pieces go to the stage as they
 * arrive; call.c makes one call of what a transport hands over.  The
 * worker never retries a request the server answered: it reports the
 * HTTP status and Retry-After with the failure, and the stage decides.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>
#include <porch/plugin.h>

#include "call.h"
#include "h1.h"
#include "probe.h"
#include "xcurl.h"

static const struct porch_param oai_params[] = {
	{ "base-url", PORCH_PARAM_STRING, "http://127.0.0.1:8000/v1", 0, 0, NULL, 0,
	  "the API's base URL, up to and including /v1 (http:// or https://)" },
	{ "model", PORCH_PARAM_STRING, "default", 0, 0, NULL, 0,
	  "the model asked for, unless the request's \"model\" setting or the "
	  "client's request names one" },
	{ "endpoint", PORCH_PARAM_ENUM, "chat", 0, 0, "chat|completions", 0,
	  "chat: POST /chat/completions with messages; completions: POST /completions with a prompt" },
	{ "stream", PORCH_PARAM_BOOLEAN, "true", 0, 0, NULL, 0,
	  "ask for a streamed answer (server-sent events), passed on as it arrives, "
	  "unless the request's \"stream\" setting says" },
	{ "max-tokens-field", PORCH_PARAM_ENUM, "as-sent", 0, 0,
	  "as-sent|max_tokens|max_completion_tokens", 0,
	  "the name chat requests give the token cap: the client's (as-sent; "
	  "max_tokens when porch sets it), max_tokens (vLLM, llama.cpp, Ollama) or "
	  "max_completion_tokens (OpenAI's newer models)" },
	{ "api-key-env", PORCH_PARAM_STRING, NULL, 0, 0, NULL, 0,
	  "name of the environment variable holding the API key (sent as a Bearer token)" },
	{ "ca-file", PORCH_PARAM_PATH, NULL, 0, 0, NULL, 0,
	  "PEM file of the certificate authorities an https server's certificate is "
	  "verified against, instead of the system's (a private CA, a self-signed server)" },
	{ "connect-timeout", PORCH_PARAM_DURATION, "5s", 1, 3600000, NULL, 0,
	  "longest wait for a connection (TCP, and TLS for https) to the server" },
	{ "first-byte-timeout", PORCH_PARAM_DURATION, "60s", 1, 86400000, NULL, 0,
	  "longest wait, once the request is sent, for the first byte of the answer's "
	  "body (the server's queueing and prefill; a whole answer's generation); "
	  "a head sent before it does not count" },
	{ "idle-timeout", PORCH_PARAM_DURATION, "30s", 1, 86400000, NULL, 0,
	  "longest silence once the answer's body has begun: between a stream's "
	  "events, or the bytes of a whole answer" },
	{ "read-timeout", PORCH_PARAM_DURATION, NULL, 1, 86400000, NULL, 0,
	  "the single limit of earlier versions, kept for existing files: when given, "
	  "the value of first-byte-timeout and of idle-timeout where they are not given" },
	{ "max-connections", PORCH_PARAM_INTEGER, "64", 1, 65536, NULL, 0,
	  "connections open at most; further requests wait for one to be free" },
	{ "max-response", PORCH_PARAM_SIZE, "8M", 1024, 1073741824, NULL, 0,
	  "largest answer body; a larger one fails as upstream" },
	{ "transport", PORCH_PARAM_ENUM, "auto", 0, 0, "auto|native|curl", 0,
	  "how requests go out: native, porch's own HTTP/1.1 client (http:// only, "
	  "direct, the host resolved once at start); curl, libcurl (http:// and "
	  "https://, proxy variables honoured); auto: native for http://, curl for https://" },
	{ "health-path", PORCH_PARAM_STRING, "/models", 0, 0, NULL, 0,
	  "a pool's probe (probe-interval) GETs base-url + this path; 2xx is healthy" },
	{ "health-timeout", PORCH_PARAM_DURATION, "5s", 1, 3600000, NULL, 0,
	  "longest a probe may take before the server counts as not healthy" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/* ---- the worker ----------------------------------------------------------- */

/*
 * The largest body libcurl is given as the message's own document rather
 * than a copy: it takes one this small into its buffers whole when it
 * makes the request (CURL_MAX_WRITE_SIZE), so a cancelled call's message
 * may go while libcurl still holds the transfer.
 */
#define OAI_BORROW_MAX (16 * 1024)

static int
oai_submit(porch_worker *w, porch_call *c)
{
	struct oai *o = porch_worker_data(w);
	char why[384];
	const char *body = NULL;
	char *owned = NULL;
	size_t len = 0;
	/* an earlier attempt's error object is not this one's (metadata cannot
	 * be removed: empty is none, as the http source reads it) */
	const char *old_error = porch_call_option(c, "openai.error");
	if (old_error != NULL && *old_error != '\0')
		porch_call_set_meta(c, "openai.error", "");
	/* the client's document itself when it can go as it is (not copied:
	 * cl->owned stays NULL then, see xcurl_cancel) */
	int r = oai_request_body_ref(&o->shape, c, &body, &len, &owned, why, sizeof why);
	if (r == -1) {
		porch_call_fail(c, PORCH_ERR_BAD_REQUEST, "%s", why);
		return 0;
	}
	if (r == 0 && owned == NULL && len > OAI_BORROW_MAX && o->io == &oai_io_curl) {
		/* libcurl reads a large body as it sends it, for longer than a
		 * cancelled call lasts (see xcurl_cancel): a copy of it; the
		 * native transport closes a cancelled call's connection at once */
		if ((owned = malloc(len + 1)) == NULL) {
			r = -2;
		} else {
			memcpy(owned, body, len + 1);
			body = owned;
		}
	}
	struct oai_call *cl = r == 0 ? oai_call_get(o, c) : NULL;
	if (cl == NULL) {
		free(owned);
		porch_call_fail(c, PORCH_ERR_INTERNAL, "out of memory");
		return 0;
	}
	cl->body = body;
	cl->blen = len;
	cl->owned = owned;
	porch_call_set_data(c, cl);
	o->io->start(cl);
	return 0;
}

static void
oai_cancel(porch_worker *w, porch_call *c)
{
	struct oai *o = porch_worker_data(w);
	struct oai_call *cl = porch_call_data(c);
	if (cl == NULL || cl->c != c || cl->cancelled)
		return;
	cl->c = NULL;
	if (cl->sl.on || cl->sl.busy) {
		/* a long text's slices are out (slice.c) */
		oai_slices_cancel(cl);
		return;
	}
	switch (cl->state) {
	case OAI_WAITING: {
		struct oai_call **pp = &o->qhead, *prev = NULL;
		while (*pp != cl) {
			prev = *pp;
			pp = &(*pp)->qnext;
		}
		*pp = cl->qnext;
		if (o->qtail == cl)
			o->qtail = prev;
		oai_call_put(cl);
		break;
	}
	case OAI_NOFD:
		oai_fdq_remove(cl);
		oai_call_put(cl);
		break;
	case OAI_RUNNING:
		o->io->cancel(cl);
		break;
	case OAI_ENDING:
		/* inside porch_call_piece from call.c's end of a whole answer:
		 * it puts cl */
		cl->cancelled = 1;
		break;
	case OAI_FREE:
		break;
	}
}

/* base-url must be an http(s) URL a path can be appended to. */
static int
oai_check(const porch_params *p, porch_check *ck)
{
	int bad = 0;
	const char *url = porch_param_str(p, "base-url");
	if (url == NULL || (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0)) {
		porch_check_error(ck, "base-url", "'%s' must start with http:// or https://",
		    url ? url : "");
		bad = 1;
	} else if (strpbrk(url, "?# \t\r\n") != NULL) {
		porch_check_error(ck, "base-url", "'%s' must not have a query, a fragment "
		    "or white space: the endpoint's path is appended to it", url);
		bad = 1;
	} else {
		CURLU *u = curl_url();
		char *host = NULL;
		if (u == NULL)
			return -1;
		if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		    host == NULL || *host == '\0') {
			porch_check_error(ck, "base-url", "'%s' is not a valid URL with a host", url);
			bad = 1;
		}
		curl_free(host);
		curl_url_cleanup(u);
	}
	const char *tr = porch_param_str(p, "transport");
	if (!bad && tr != NULL && strcmp(tr, "native") == 0 && strncasecmp(url, "https://", 8) == 0) {
		porch_check_error(ck, "transport", "native speaks plain http:// only; base-url "
		    "'%s' needs TLS: use transport curl (or auto)", url);
		bad = 1;
	}
	const char *env = porch_param_str(p, "api-key-env");
	if (env != NULL && (env[0] == '\0' || isdigit((unsigned char)env[0]) ||
	    strspn(env, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
	    strlen(env))) {
		porch_check_error(ck, "api-key-env", "'%s' is not an environment variable name "
		    "(letters, digits and '_'); it names the variable, it is not the key", env);
		bad = 1;
	}
	const char *ca = porch_param_str(p, "ca-file");
	if (ca != NULL && access(ca, R_OK) != 0) {
		porch_check_error(ck, "ca-file", "'%s': %s", ca, strerror(errno));
		bad = 1;
	}
	return bad ? -1 : 0;
}

static void oai_fini(porch_worker *w);

/*
 * first-byte-timeout and idle-timeout, each its own value when given, else
 * read-timeout's when that is given (a file written for the single limit
 * keeps it for both), else its default.  The name kept for the failure's
 * text says where the value came from.
 */
static void
oai_stall_limits(struct oai *o, const porch_params *p)
{
	int old = porch_param_isset(p, "read-timeout");
	int64_t rt = porch_param_int(p, "read-timeout");
	int fb_own = porch_param_isset(p, "first-byte-timeout") || !old;
	int idle_own = porch_param_isset(p, "idle-timeout") || !old;
	o->first_byte_ms = fb_own ? porch_param_int(p, "first-byte-timeout") : rt;
	o->idle_ms = idle_own ? porch_param_int(p, "idle-timeout") : rt;
	o->first_byte_name = fb_own ? "first-byte-timeout" : "first-byte-timeout (read-timeout)";
	o->idle_name = idle_own ? "idle-timeout" : "idle-timeout (read-timeout)";
}

/* host:port of the base URL, for messages (the URL was checked: porch check). */
static void
oai_where(struct oai *o)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	if (u != NULL && curl_url_set(u, CURLUPART_URL, o->url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		snprintf(o->where, sizeof o->where, "%s:%s", host, port);
	else
		snprintf(o->where, sizeof o->where, "the server");
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

static int
oai_init(porch_worker *w)
{
	const porch_params *p = porch_worker_params(w);
	struct oai *o = calloc(1, sizeof *o);
	if (o == NULL) {
		porch_worker_error(w, "out of memory");
		return -1;
	}
	o->w = w;
	o->loop = porch_worker_loop(w);
	oai_fd_init(o);
	porch_worker_set_data(w, o);

	const char *env = porch_param_str(p, "api-key-env");
	const char *key = NULL;
	if (env != NULL) {
		key = getenv(env);
		if (key == NULL || *key == '\0') {
			/* the variable's name only: never its value */
			porch_worker_error(w, "api-key-env: the environment variable %s, which "
			    "should hold the API key, is %s", env, key == NULL ? "not set" : "empty");
			goto fail;
		}
	}
	o->ca_file = porch_param_str(p, "ca-file");
	o->key = key; /* to mask it in what the server says */
	const char *base = porch_param_str(p, "base-url");
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	o->shape.chat = strcmp(porch_param_str(p, "endpoint"), "chat") == 0;
	o->shape.stream = porch_param_int(p, "stream") != 0;
	o->shape.model = porch_param_str(p, "model");
	o->shape.max_completion_tokens =
	    strcmp(porch_param_str(p, "max-tokens-field"), "max_completion_tokens") == 0;
	o->shape.cap_as_sent = strcmp(porch_param_str(p, "max-tokens-field"), "as-sent") == 0;
	const char *path = o->shape.chat ? "/chat/completions" : "/completions";
	size_t ulen = blen + strlen(path) + 1;
	if ((o->url = malloc(ulen)) == NULL) {
		porch_worker_error(w, "out of memory");
		goto fail;
	}
	snprintf(o->url, ulen, "%.*s%s", (int)blen, base, path);
	oai_where(o);
	o->connect_timeout_ms = (long)porch_param_int(p, "connect-timeout");
	oai_stall_limits(o, p);
	o->max_response = (size_t)porch_param_int(p, "max-response");

	o->max_connections = (long)porch_param_int(p, "max-connections");

	/* auto: native where it can go, which is plain http:// without
	 * credentials in the URL (porch check refuses native with https://) */
	const char *tr = porch_param_str(p, "transport");
	int native = strcmp(tr, "native") == 0;
	if (strcmp(tr, "auto") == 0)
		native = strncasecmp(base, "http://", 7) == 0 &&
		    memchr(base + 7, '@', strcspn(base + 7, "/")) == NULL;
	o->io = native ? &oai_io_native : &oai_io_curl;
	if ((native ? oai_h1_init(o, key) : oai_curl_init(o, key)) != 0)
		goto fail;
	return 0;
fail:
	oai_fini(w);
	return -1;
}

static void
oai_fini(porch_worker *w)
{
	struct oai *o = porch_worker_data(w);
	if (o == NULL)
		return;
	oai_probe_free(o);
	oai_fd_fini(o);
	/* calls still open are forgotten, not ended */
	if (o->io != NULL)
		o->io->fini(o);
	while (o->active != NULL) {
		struct oai_call *cl = o->active;
		o->active = cl->next;
		ev_timer_stop(o->loop, &cl->read_timer);
		oai_call_destroy(cl);
	}
	while (o->free != NULL) {
		struct oai_call *cl = o->free;
		o->free = cl->next;
		oai_call_destroy(cl);
	}
	free(o->url);
	free(o);
	porch_worker_set_data(w, NULL);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_WORKER,
	.name = "openai",
	.summary = "worker: a model server speaking the OpenAI-compatible HTTP API, streamed or not",
	.params = oai_params,
	.worker_init = oai_init,
	.submit = oai_submit,
	.cancel = oai_cancel,
	.worker_fini = oai_fini,
	.probe = oai_probe,
	.check = oai_check,
	.description =
	    "Calls a model server through the OpenAI-compatible HTTP API, as served by "
	    "vLLM, llama.cpp's llama-server, Ollama and hosted providers: POST "
	    "BASE-URL/chat/completions (endpoint chat) or BASE-URL/completions (endpoint "
	    "completions).\n"
	    "\n"
	    "A request that carries the metadata \"openai.request\" (the body of a "
	    "client's POST /v1/chat/completions or /v1/completions, as the http source "
	    "passes it on) of the endpoint's kind is forwarded whole: every member as the "
	    "client sent it (tools, tool_choice, parallel_tool_calls, response_format, "
	    "seed, logprobs, top_logprobs, logit_bias, the penalties, user, n, metadata, "
	    "service_tier, stream_options, and members porch does not know), and the "
	    "messages exactly as sent (assistant tool calls, tool results, names, content "
	    "parts such as images).  Replaced, so that what the pipeline decided holds, "
	    "are only: model (the \"model\" setting when not empty, else the client's, "
	    "else the model parameter); the token cap (the \"max-tokens\" setting, else "
	    "the client's max_tokens or max_completion_tokens, null being none), sent "
	    "under the name max-tokens-field gives (as-sent, the default: the name the "
	    "client used, max_tokens when it used none), the other name removed "
	    "(/completions always takes max_tokens); temperature, top_p and stop (the "
	    "settings, which a stage may have changed); stream (the \"stream\" setting, "
	    "true or false, else the stream parameter), written only when it differs from "
	    "what the client asked, and then stream_options removed when the call is not "
	    "streamed, as OpenAI refuses it then; and the text.  Stages (rag, assemble, "
	    "redact) may have rewritten the prompt: when it is no longer the last user "
	    "message's text (its string, or its text parts joined by newlines), that "
	    "text is replaced, a string by the prompt, text parts by one text part at the "
	    "first one's place, every other part (an image) kept where it was; with no "
	    "user message, one is appended.  The \"system\" setting, likewise, replaces "
	    "the text of a leading system or developer message when it differs, or is "
	    "inserted first when there is none.  For /completions, the prompt is "
	    "replaced when it differs.  What equals what the client sent is left as sent "
	    "(the \"messages\" setting is not used).  A request of the other kind than "
	    "the endpoint (a chat request to endpoint completions) is built from the text "
	    "as below, with the members both endpoints take, when nothing is lost that "
	    "way; one holding what the endpoint cannot carry (tool calls, tool messages, "
	    "images, tools, response_format, echo, suffix ...) fails as bad-request, "
	    "naming it, rather than being sent altered.  When the http source's "
	    "\"openai.sig\" says nothing of this differs from the request (no stage "
	    "changed a setting, the text or the document, and the token cap is under "
	    "the name the endpoint takes), the client's bytes are sent as they are, "
	    "unread.\n"
	    "\n"
	    "Without \"openai.request\" (the stdin and gen sources), the body is built: "
	    "for chat, the messages are the \"system\" setting, the \"messages\" "
	    "setting (a JSON array of {role, content}) and the request's text as the last "
	    "user message; for completions the text is the prompt.  The settings model, "
	    "max-tokens, temperature, top-p, stop (one string, or a JSON array of strings) "
	    "and stream become the body's fields.  The setting response-format json "
	    "(endpoint chat) asks for response_format {\"type\": \"json_object\"}, in a "
	    "forwarded request too unless the client asked for a format other than "
	    "text; text, or none, asks for nothing.  Either way, a setting that does "
	    "not parse fails the request as bad-request, naming it.\n"
	    "\n"
	    "What the server answers comes back whole.  A whole answer's content (null: "
	    "none) goes to the stage as one piece (a text over 256 KiB: in pieces of "
	    "256 KiB, one per loop iteration, cut between whole characters, so that one "
	    "long answer does not hold the loop), and the request gets the metadata "
	    "finish-reason; usage (the server's object, details included); openai.extra "
	    "(top-level members beyond id, object, created, model, choices and usage: "
	    "system_fingerprint, service_tier ...); openai.choice (members of choices[0] "
	    "beyond index, message or text and finish_reason: logprobs ...); "
	    "openai.message (members of the message beyond role and content: tool_calls, "
	    "refusal, annotations, audio ...); and openai.choices (choices[1] onwards, "
	    "for n > 1), as compact JSON texts, members that are null left out, each key "
	    "set only when there is something for it.  A streamed answer's events each "
	    "go to the stage as a piece (a long one in pieces likewise, the stream "
	    "read no further meanwhile): the delta's text, with the event's extras at "
	    "their places (chunk, choice and delta; see struct porch_piece in "
	    "porch-plugin(3)); an event with neither is none.  Its end sets "
	    "finish-reason, usage (the last event's, as stream_options.include_usage "
	    "sends it), openai.message (the tool_calls deltas put together by index: "
	    "function name and arguments concatenated, the first id and type; refusal "
	    "and other strings concatenated, arrays appended), openai.choice (logprobs' "
	    "arrays concatenated) and openai.extra (the last event's).\n"
	    "\n"
	    "With stream true the server is asked for server-sent events, and each piece "
	    "of text goes on to the stage as it arrives; the answer ends with "
	    "\"data: [DONE]\".  A server that answers in one JSON body instead is read "
	    "that way too.  An HTTP status of 300 or more fails the request as upstream, "
	    "with the status and the server's error message; the status and any "
	    "Retry-After (seconds or an HTTP date; OpenAI's retry-after-ms wins) are "
	    "passed to the stage, which decides whether to retry: the worker never does.  "
	    "The server's error object ({\"error\": {...}}, an error string as "
	    "{\"message\": ...}, or an error event in a stream) is set as the metadata "
	    "openai.error, so that a client can be told what the server said.  "
	    "A status of 200 with an answer that is not what the API returns (not JSON, "
	    "no choices, a stream cut before [DONE]) fails as upstream with status 200.  "
	    "Refused or reset connections, a malformed HTTP answer, and (transport curl) "
	    "DNS and TLS errors fail as transport; connect-timeout, first-byte-timeout "
	    "and idle-timeout as timeout.\n"
	    "\n"
	    "Two limits catch a server that stalls (accepts the request and never "
	    "answers, or stops in the middle).  first-byte-timeout (60 s) runs from "
	    "the moment the request is sent (a request waiting for a connection is "
	    "not late) to the first byte of the answer's body: the server's queue, "
	    "the prefill of a long prompt and, for an answer not streamed, all of its "
	    "generation, so it is generous; a head the server sends before the body "
	    "(many send it at once) does not end it.  From the body's first byte on, "
	    "idle-timeout (30 s) bounds every silence: between a stream's events, or "
	    "between the bytes of a whole answer.  Either fails the call as timeout, "
	    "naming the limit and its value (\"first-byte-timeout: no byte of the "
	    "answer from upstream 60000 ms after the request was sent\", "
	    "\"idle-timeout: upstream silent for 30000 ms in the middle of the "
	    "answer\"), unless a stream's \"data: [DONE]\" had come, which completes "
	    "it.  A stalled call holds its own connection and nothing else: calls on "
	    "the others go on as they would.  The timer costs nothing per token: it "
	    "is set when the request goes out and once more when the body begins, "
	    "and bytes only note the time.  read-timeout, the single limit of earlier "
	    "versions, still works: when given, it is the value of those of the two "
	    "that are not given themselves, so a file written for it keeps its limit "
	    "(the failure then says \"first-byte-timeout (read-timeout)\" or "
	    "\"idle-timeout (read-timeout)\"); a file that gives none of the three gets "
	    "the two defaults (the single limit was 60 s).\n"
	    "\n"
	    "A connection that cannot be opened for want of a descriptor or of socket "
	    "memory in porch itself (EMFILE: the process is at its ulimit -n; ENFILE: "
	    "the system's file table is full; ENOBUFS, ENOMEM) is not the server's "
	    "failure: the call waits and tries again, 10 ms at first, the wait doubling "
	    "to 200 ms while the shortage lasts, behind the calls that waited before it, "
	    "and takes a kept connection as soon as one is free.  Only once it has "
	    "waited connect-timeout does it fail, as internal, with what was short and "
	    "for how long (\"no file descriptor free for a connection to HOST:PORT: "
	    "EMFILE (ulimit -n 64); waited 5000 ms\"); the request's deadline or the "
	    "stage's timeout may end it sooner.  The waits are counted and logged on "
	    "stderr (\"porch: worker 'NAME': ...\"): the first, then at most one line "
	    "every 10 s while they go on, and the totals, waits and calls that gave "
	    "up, when the worker stops.\n"
	    "\n"
	    "An https server's certificate is always verified, its chain against the "
	    "system's certificate authorities (or those of ca-file) and its name against "
	    "the host of base-url; nothing turns that off.  A server whose certificate "
	    "does not pass (self-signed, another name, expired) fails every request as "
	    "transport, with libcurl's reason (\"SSL certificate problem: self-signed "
	    "certificate\").  For a private CA or a self-signed server, give its "
	    "certificate in ca-file.\n"
	    "\n"
	    "Where a server's error message or error event repeats the API key (some "
	    "quote the key they refused), it is masked as [api key] before the message "
	    "goes on to the failure's text, openai.error, logs, dead letters and the "
	    "client's answer.\n"
	    "\n"
	    "The API key is read at start from the environment variable api-key-env "
	    "names, never from the pipeline file; it is sent as \"Authorization: Bearer\" "
	    "and is never logged.  Requests run on the pipeline's event loop, no thread "
	    "per request, through one of two transports (the transport parameter).  "
	    "native, auto's choice for http://, is porch's own HTTP/1.1 client: the "
	    "base URL's host is resolved once, when the worker starts (a name that does "
	    "not resolve stops porch run there; its later changes are not seen), its "
	    "addresses tried in order when a connection fails; the request's head is "
	    "rendered once; it goes directly to the server, reading no proxy "
	    "variables; credentials in base-url are refused.  curl, auto's choice for "
	    "https://, is libcurl's multi interface: TLS, HTTP/2 where the server "
	    "offers it (requests multiplexed on a connection), the name resolved for "
	    "each new connection, and libcurl's proxy environment variables "
	    "(http_proxy, https_proxy, no_proxy...) honoured.  Either way connections "
	    "are kept open and reused, at most max-connections of them; requests beyond "
	    "that wait for a free one, first come first served, without their "
	    "first-byte-timeout running.  A request sent on a kept connection that the server "
	    "had closed meanwhile (closed or reset before any byte of the answer) is "
	    "sent again once on a new connection, by both; never once part of the answer "
	    "came.  A cancelled call's connection is closed.",
};
