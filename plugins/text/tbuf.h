/*
 * tbuf.h -- a growable byte buffer, UTF-8 and list helpers shared by the
 * text stages (assemble, post, redact).  No porch API: the unit tests
 * drive these directly.
 */
#ifndef PORCH_TEXT_TBUF_H
#define PORCH_TEXT_TBUF_H

#include <stddef.h>

/* A byte buffer; all zero is an empty one.  Not NUL-terminated. */
struct tbuf {
	char *p;
	size_t len, cap;
};

/* Makes room for n more bytes.  0, or -1 (out of memory, b unchanged). */
int tbuf_reserve(struct tbuf *b, size_t n);
/* Appends n bytes (0 or -1 as above). */
int tbuf_put(struct tbuf *b, const char *s, size_t n);
int tbuf_putc(struct tbuf *b, char c);
/* Drops the first n bytes (n <= len). */
void tbuf_consume(struct tbuf *b, size_t n);
void tbuf_free(struct tbuf *b);

/* ASCII whitespace: space, \t, \n, \v, \f, \r. */
int text_space(int c);

/*
 * The largest length k <= len, k >= len - 3, such that s[k] does not
 * continue a UTF-8 sequence: where a text of len bytes or more can be cut
 * to at most `len` bytes without splitting a character.  s must have at
 * least len + 1 bytes (the byte at s[len] is read).
 */
size_t utf8_cut(const char *s, size_t len);

/*
 * Splits a LIST parameter at commas.  Each item is trimmed of spaces and
 * tabs around it; with `escapes`, \n \t \r \s (a space) \, and \\ stand
 * for those characters (and an escaped space is kept).  fn gets each item,
 * decoded, and returns 0 to go on or -1 to stop (its error).  An empty
 * value has no items.  Returns 0, -1 if fn stopped, or -2 for a bad escape
 * (its offset in *bad) or no memory (*bad = (size_t)-1).
 */
int text_list(const char *s, int escapes,
    int (*fn)(void *ctx, const char *item, size_t len), void *ctx, size_t *bad);

#endif
