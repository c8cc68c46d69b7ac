/* request.h -- OpenAI-style request bodies (request.c) and answers (answer.c), in JSON. */
#ifndef PORCH_OPENAI_REQUEST_H
#define PORCH_OPENAI_REQUEST_H

#include <stddef.h>

#include <jansson.h>
#include <porch/plugin.h>

#include "jscan.h"

/* What the worker fixes for every request it makes. */
struct oai_shape {
	const char *model; /* when the call has no "model" option */
	int chat;          /* /chat/completions (messages), else /completions (prompt) */
	int stream;        /* ask for server-sent events, unless the call says */
	int max_completion_tokens; /* chat: the token cap's name is max_completion_tokens */
	int cap_as_sent;           /* chat: the name the client used, when it used one */
};

/*
 * The JSON body of call c.  When c has the option "openai.request" (a
 * client's request body, as the http source passes it on), that document
 * is forwarded whole, with what porch acts on replaced: model, the token
 * cap, temperature, top_p, stop, stream (stream_options dropped when not
 * streaming), the last user message's text and the leading system
 * message's (from the prompt and the "system" option, when a stage changed
 * them), or for /completions the prompt.  A document of the other kind
 * than the worker's endpoint is rebuilt from the text, as below, when
 * nothing it holds is lost that way, else refused.  Without it the body
 * is built from the prompt and the options (model, max-tokens,
 * temperature, top-p, stop, stream, and for chat system and messages).
 *
 * Returns 0 with *body (free it) and *len; -1 when an option, the document
 * or the prompt is unusable, with why naming it (a bad request); -2 when
 * out of memory.
 */
int oai_request_body(const struct oai_shape *sh, const porch_call *c,
    char **body, size_t *len, char *why, size_t whylen);

/*
 * As oai_request_body, without making a body when the call's document can
 * go as it is (its source's "openai.sig" says nothing porch acts on
 * differs from it: see sig.h): then *body is "openai.request"'s value
 * itself, not copied, and *owned is NULL.  The message's metadata does not
 * change during a call, so it stays valid while the call runs; a transport
 * that may still read it after the call was cancelled must copy it first.
 * Else *body is *owned, which the caller frees.  Same results.
 */
int oai_request_body_ref(const struct oai_shape *sh, const porch_call *c,
    const char **body, size_t *len, char **owned, char *why, size_t whylen);

/* Results of the answer parsers. */
#define OAI_OK          0
#define OAI_MALFORMED  -1 /* not what the API answers; why says what */
#define OAI_ERROR      -2 /* an error object; why has its message */
#define OAI_NOMEM      -3 /* out of memory */
#define OAI_DECLINE    -4 /* the scanner's paths only: ask jansson's */

/* Receives one piece of an answer's metadata (keys as in porch/plugin.h). */
typedef void oai_meta_fn(void *arg, const char *key, const char *value);

/*
 * The text of a whole, non-streamed answer: choices[0].message.content
 * (chat) or choices[0].text.  On OAI_OK, *text (*tlen bytes) points into
 * *root, which the caller releases with json_decref; on the others *root
 * is NULL.
 */
int oai_answer_text(int chat, const char *body, size_t len, json_t **root,
    const char **text, size_t *tlen, char *why, size_t whylen);

/*
 * The metadata of a whole answer that oai_answer_text read: finish-reason,
 * usage, openai.extra, openai.choice, openai.message, openai.choices, each
 * only when the answer has something for it.  OAI_OK or OAI_NOMEM.
 */
int oai_answer_meta(int chat, json_t *root, oai_meta_fn *set, void *arg);

/* A whole answer read by oai_answer_read. */
struct oai_answer {
	const char *text;  /* into the body, buf or root */
	size_t tlen;
	json_t *root;      /* jansson's tree, when it read the answer */
	struct js_buf buf; /* the text unescaped, when it had escapes */
	unsigned raw : 1;  /* text is the string as written, escapes and all */
};

/*
 * A whole, non-streamed answer: its text in *an (release it with
 * oai_answer_release, whatever the result) and, on OAI_OK only, its
 * metadata handed to set first, as oai_answer_text and oai_answer_meta
 * give them.  It is read in place by a scanner (jscan.h), with the
 * metadata's JSON texts as the upstream wrote them (white space between
 * tokens left out); what the scanner declines, jansson reads, and words
 * what is wrong.  OAI_OK, OAI_MALFORMED, OAI_ERROR or OAI_NOMEM.  A text
 * with escapes longer than lazy bytes (0: none is) is not unescaped here:
 * an->raw says so, and the caller unescapes it a part at a time
 * (js_unescape_part), not megabytes in one go.
 */
int oai_answer_read(int chat, const char *body, size_t len, struct oai_answer *an,
    oai_meta_fn *set, void *arg, size_t lazy, char *why, size_t whylen);

/* The scanner's part of oai_answer_read alone (for tests): OAI_OK,
 * OAI_NOMEM, or OAI_DECLINE with nothing set. */
int oai_answer_scan(int chat, const char *body, size_t len, struct oai_answer *an,
    oai_meta_fn *set, void *arg);

void oai_answer_release(struct oai_answer *an);

/*
 * What a stream's events put together, for the metadata at its end.  Zero
 * it to start; oai_acc_clear empties it.  Nothing is allocated while the
 * events carry only text.
 */
struct oai_acc {
	json_t *finish;    /* the last finish_reason, a string */
	json_t *usage;     /* the last usage object */
	json_t *extra;     /* the last chunk-level extras */
	json_t *choice;    /* choices[0]'s extras; arrays in objects concatenated */
	json_t *message;   /* the deltas' extras but strings; tool_calls by index */
	json_t *strings;   /* the deltas' strings: key -> array of fragments */

	/*
	 * The scanner's (see oai_chunk): what it read, kept as text, and
	 * buffers reused from event to event.  finish_s, usage_s and extra_s
	 * stand for finish, usage and extra when their flag is set (the
	 * later of the two ways wins); choices_p and deltas_p are the
	 * events' choice and delta extras ("{...},{...}"), merged into
	 * choice and message once, at the end (or before jansson reads an
	 * event, to keep their order).
	 */
	struct js_buf text;                 /* an event's text, unescaped */
	struct js_buf finish_s, usage_s, extra_s;
	struct js_buf choice_s, delta_s;    /* this event's extras */
	struct js_buf choices_p, deltas_p;
	unsigned raw_finish : 1, raw_usage : 1, raw_extra : 1;
	/* the caller's: an event's text with escapes longer than this is
	 * left as written (ev->raw), for the caller to unescape a part at a
	 * time; 0: never */
	size_t lazy;
};

void oai_acc_clear(struct oai_acc *a);

/*
 * The metadata of a stream that ended (see oai_answer_meta): finish-reason,
 * usage, openai.extra, openai.choice and openai.message, put together from
 * its events.  OAI_OK or OAI_NOMEM.
 */
int oai_acc_meta(struct oai_acc *a, oai_meta_fn *set, void *arg);

/* One streamed event, read. */
struct oai_event {
	json_t *root;
	const char *text;        /* into root, the event's data or the acc */
	size_t tlen;
	/* the extras at their places (struct porch_piece's members), as
	 * JSON object texts; NULL where there is nothing.  malloc'ed when
	 * owned, else the acc's (valid until its next event) */
	char *chunk, *choice, *delta;
	unsigned owned : 1;
	unsigned raw : 1;        /* text is the string as written (see oai_acc's lazy) */
};

/*
 * Reads one streamed event's data (not "[DONE]"): its text
 * (choices[0].delta.content for chat, choices[0].text; empty when it
 * carries none: the role, the finish reason, usage), the extras of this
 * event as a struct porch_piece, and what goes into a for the end.  A
 * choice whose index is not 0 (n > 1) is not read.  OAI_OK (release ev
 * with oai_event_release), OAI_MALFORMED, OAI_ERROR or OAI_NOMEM.
 */
int oai_chunk(int chat, const char *data, size_t len, struct oai_acc *a,
    struct oai_event *ev, char *why, size_t whylen);

/*
 * oai_chunk's two ways, alone (for tests): the scanner's (OAI_OK,
 * OAI_NOMEM, or OAI_DECLINE with a unchanged), used first, which
 * allocates nothing for an event of text alone once a's buffers have
 * grown; and jansson's, for what it declines.
 */
int oai_chunk_scan(int chat, const char *data, size_t len, struct oai_acc *a,
    struct oai_event *ev);
int oai_chunk_json(int chat, const char *data, size_t len, struct oai_acc *a,
    struct oai_event *ev, char *why, size_t whylen);

void oai_event_release(struct oai_event *ev);

/*
 * A short, printable summary of an error answer's body, for the failure's
 * text: error.message, error (a string), message or detail when the body
 * is such JSON, else its first bytes.  Control characters become spaces.
 */
void oai_error_excerpt(const char *body, size_t len, char *out, size_t outlen);

/*
 * The error object of an error answer or event, as compact JSON text
 * (malloc'ed): {"error": {...}}'s object, {"error": STRING} as
 * {"message": STRING}, or a bare object with a string "message" (as some
 * servers send).  NULL when the body is none of these.
 */
char *oai_error_json(const char *body, size_t len);

/* ---- shared by request.c and answer.c ---- */

/* Reals as a user writes them: 0.7, not 0.69999999999999996. */
#define OAI_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* snprintf into why. */
void oai_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 when key is one of list's (NULL-ended). */
int oai_in(const char *key, const char *const *list);

#endif /* PORCH_OPENAI_REQUEST_H */
