/*
 * cond.h -- the condition language of conditional channels (porch.xml(5),
 * CONDITIONS): compiled once when the pipeline is loaded, evaluated per
 * message with no parsing and no allocation.
 *
 *   complexity == 'simple' or category in ('extraction', 'summary')
 *   length(text) > 4000 and not has(cache)
 *   starts_with(text, '/code') or words(text) < 5
 *
 * Values are strings or numbers.  A bare name is a metadata key (its value,
 * or '' when it is not set); text and session are the message's own.
 * Comparisons between two numbers, or a number and a string that reads as
 * one, are numeric; otherwise == and != compare bytes and < <= > >= are
 * false.
 */
#ifndef PORCH_COND_H
#define PORCH_COND_H

#include <stddef.h>

struct cond;

/* Where and why a condition did not compile: offset in bytes from the
 * start of the source, and a message saying what was expected there. */
struct cond_error {
	size_t offset;
	char msg[256];
};

/*
 * Compiles src.  Returns the condition (cond_free frees it), or NULL with
 * err filled in.  Allocation failures abort, as everywhere in the runtime.
 */
struct cond *cond_compile(const char *src, struct cond_error *err);
void cond_free(struct cond *c);

/* What a condition sees of a message. */
struct cond_input {
	const char *text;
	size_t text_len;
	const char *session;                 /* may be NULL: '' */
	/* the value of metadata key, or NULL when it is not set */
	const char *(*meta)(const void *ctx, const char *key);
	const void *ctx;
};

/* 1 when the condition holds for the message, 0 when it does not. */
int cond_eval(const struct cond *c, const struct cond_input *in);

/* A condition that reads nothing of the message: 1 always true, 0 always
 * false, -1 depends on the message (for load-time checks). */
int cond_constant(const struct cond *c);

/* The source text it was compiled from (for porch graph and messages). */
const char *cond_source(const struct cond *c);

#endif
