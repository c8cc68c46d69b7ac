/*
 * jscan.h -- a small strict JSON scanner (jscan.c), for reading the
 * upstream's answers without building a tree.
 *
 * It walks the text in place: objects member by member, arrays item by
 * item, and any other value skipped whole, checked as strictly as
 * jansson's json_loadb (flags 0) checks it, with its raw text handed
 * back.  What it does not take on (see jscan.c) it declines (-1), and the
 * caller falls back to jansson, which either says precisely what is wrong
 * or reads it.
 */
#ifndef PORCH_OPENAI_JSCAN_H
#define PORCH_OPENAI_JSCAN_H

#include <stddef.h>

enum js_kind {
	JS_OBJECT = 1, JS_ARRAY, JS_STRING, JS_NUMBER, JS_TRUE, JS_FALSE, JS_NULL
};

/* A value's raw text, as it was written (a string with its quotes). */
struct js_value {
	const char *p;
	size_t n;
	enum js_kind kind;
	unsigned escaped : 1;  /* a string with a backslash in it */
	unsigned integer : 1;  /* a number without fraction or exponent */
};

struct jscan {
	const unsigned char *p, *end;
	unsigned depth;        /* containers open, entered or being skipped */
};

/* A growing byte buffer; zero it to start.  Its text is kept NUL-ended. */
struct js_buf {
	char *p;
	size_t len, cap;
};

void js_init(struct jscan *s, const char *p, size_t n);

/*
 * The value at s->p (after white space), checked and skipped: *v is its
 * raw text and kind, s->p after it.  0, or -1: declined.
 */
int js_value(struct jscan *s, struct js_value *v);

/* Enters the object ('{') or array ('[') at s->p (after white space).
 * 0, or -1 when it is something else (s unchanged then). */
int js_enter(struct jscan *s, char open);

/*
 * The next member of the object entered last: 1 with its key's raw bytes
 * (*key, *klen: a key with an escape in it is declined, so these are its
 * bytes) and s->p at its value, which the caller must read (js_value or
 * js_enter and the members or items); 0 at the object's end (consumed);
 * -1: declined.  *count starts at 0 on entering and is the caller's.
 */
int js_member(struct jscan *s, size_t *count, const char **key, size_t *klen);

/* The next item of the array entered last: 1 with s->p at it (to read as
 * for js_member), 0 at the array's end (consumed), -1: declined. */
int js_item(struct jscan *s, size_t *count);

/* Only white space left: 0, else -1. */
int js_finish(struct jscan *s);

/*
 * A string value's text, unescaped: *out points into v when it has no
 * escapes, else into b (reset first).  0, or -1 when out of memory.
 * v must come from js_value (it is valid then).
 */
int js_string(const struct js_value *v, struct js_buf *b, const char **out, size_t *n);

/*
 * Unescapes part of a string's bytes as written (checked by js_value, its
 * quotes left out): from *p, before end, into out, at most cap bytes
 * (cap >= 4), stopping between whole characters, so that neither an
 * escape nor a UTF-8 sequence is cut.  *p moves past what was read, and
 * the bytes written are returned: the parts put together are js_string's
 * text.  For a long text handed on a part at a time.
 */
size_t js_unescape_part(const char **p, const char *end, char *out, size_t cap);

/* How many of the n bytes at p to take so as not to cut a UTF-8
 * sequence: n, or less by the bytes of one begun at the end. */
size_t js_utf8_cut(const char *p, size_t n);

/* Appends n bytes. 0, or -1 when out of memory. */
int js_put(struct js_buf *b, const void *p, size_t n);

/* Appends the raw text of a value js_value checked, without the white
 * space between its tokens.  0, or -1 when out of memory. */
int js_put_compact(struct js_buf *b, const char *p, size_t n);

void js_buf_free(struct js_buf *b);

/* 1 when the key's raw bytes are the NUL-ended name. */
static inline int
js_key_is(const char *key, size_t klen, const char *name)
{
	size_t i;
	for (i = 0; i < klen; i++) {
		if (name[i] != key[i] || name[i] == '\0')
			return 0;
	}
	return name[i] == '\0';
}

#endif /* PORCH_OPENAI_JSCAN_H */
