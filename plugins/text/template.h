/*
 * template.h -- prompt templates for the assemble stage: compiled once into
 * segments, rendered per message without allocating.
 *
 * Syntax: {{input}}, {{context}}, {{session}} and {{meta.KEY}} are replaced
 * by their values; {{#NAME}}...{{/NAME}} keeps what it encloses only when
 * NAME's value is not empty, {{^NAME}}...{{/NAME}} only when it is empty;
 * spaces are allowed inside the braces; "{{{{" is a literal "{{".  Anything
 * else between "{{" and "}}" is an error, found when compiling.
 */
#ifndef PORCH_TEXT_TEMPLATE_H
#define PORCH_TEXT_TEMPLATE_H

#include <stddef.h>

enum tpl_var { TPL_INPUT, TPL_CONTEXT, TPL_SESSION, TPL_META };

struct tpl_seg;

struct tpl {
	char *pool;           /* literals, and meta keys NUL-terminated */
	struct tpl_seg *seg;
	size_t n;
	size_t n_context;     /* how many {{context}} substitutions */
	int uses_context;     /* {{context}} or a section on it */
};

/* Why compiling failed: where, what, and a hint for the user. */
struct tpl_error {
	size_t offset;        /* bytes from the template's start */
	unsigned line, col;   /* 1-based, col in bytes */
	char what[160];       /* e.g. "unknown placeholder '{{foo}}'" */
	char hint[160];       /* e.g. "known: {{input}}, ..." */
};

/* The values of one rendering.  A NULL meta function: every key is "". */
struct tpl_vals {
	const char *input;
	size_t input_len;
	const char *context;
	size_t context_len;
	const char *session;
	size_t session_len;
	const char *(*meta)(void *ctx, const char *key); /* NULL: not set */
	void *meta_ctx;
};

/*
 * Compiles len bytes of src into t.  Returns 0; -1 with *err filled for a
 * template error; -2 when out of memory.  On failure t is left empty.
 */
int tpl_compile(struct tpl *t, const char *src, size_t len, struct tpl_error *err);

/*
 * Renders t into out, which must have room for the length returned; with
 * out NULL, only returns that length.  Cannot fail.
 */
size_t tpl_render(const struct tpl *t, const struct tpl_vals *v, char *out);

void tpl_free(struct tpl *t);

/*
 * The length to which a context of len bytes is cut to fit in limit bytes:
 * len if it fits; else the end of the last whole passage (passages are
 * separated by a blank line, "\n\n") within limit; else the last UTF-8
 * character boundary within limit.
 */
size_t tpl_cut_context(const char *ctx, size_t len, size_t limit);

#endif
