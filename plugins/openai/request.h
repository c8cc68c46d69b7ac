/* request.h -- OpenAI-style request bodies and answers, in JSON. */
#ifndef PORCH_OPENAI_REQUEST_H
#define PORCH_OPENAI_REQUEST_H

#include <stddef.h>

#include <jansson.h>
#include <porch/plugin.h>

/* What the worker fixes for every request it makes. */
struct oai_shape {
	const char *model; /* when the call has no "model" option */
	int chat;          /* /chat/completions (messages), else /completions (prompt) */
	int stream;        /* ask for server-sent events */
};

/*
 * The JSON body of call c: the prompt, and the generation settings from its
 * options (model, max-tokens, temperature, top-p, stop, and for chat
 * system and messages).  Returns 0 with *body (free it) and *len; -1 when
 * an option or the prompt is unusable, with why naming it (a bad request);
 * -2 when out of memory.
 */
int oai_request_body(const struct oai_shape *sh, const porch_call *c,
    char **body, size_t *len, char *why, size_t whylen);

/* Results of the answer parsers. */
#define OAI_OK          0
#define OAI_MALFORMED  -1 /* not what the API answers; why says what */
#define OAI_ERROR      -2 /* an error object; why has its message */

/*
 * The text of a whole, non-streamed answer: choices[0].message.content
 * (chat) or choices[0].text.  On OAI_OK, *text (*tlen bytes) points into
 * *root, which the caller releases with json_decref; on the others *root
 * is NULL.
 */
int oai_answer_text(int chat, const char *body, size_t len, json_t **root,
    const char **text, size_t *tlen, char *why, size_t whylen);

/*
 * The text of one streamed event's data (not "[DONE]"):
 * choices[0].delta.content (chat) or choices[0].text, empty when the event
 * carries none (the role, the finish reason, usage).  As oai_answer_text.
 */
int oai_chunk_text(int chat, const char *data, size_t len, json_t **root,
    const char **text, size_t *tlen, char *why, size_t whylen);

/*
 * A short, printable summary of an error answer's body, for the failure's
 * text: error.message, error (a string), message or detail when the body
 * is such JSON, else its first bytes.  Control characters become spaces.
 */
void oai_error_excerpt(const char *body, size_t len, char *out, size_t outlen);

#endif /* PORCH_OPENAI_REQUEST_H */
