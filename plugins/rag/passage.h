/* passage.h -- cutting documents into passages, and joining passages into a context. */
#ifndef RAG_PASSAGE_H
#define RAG_PASSAGE_H

#include <stddef.h>

/* Called for each passage; a non-zero return stops rag_split, which returns it. */
typedef int rag_passage_fn(void *ctx, const char *text, size_t len);

/*
 * Cuts a document, doc[0, len), into passages of 1 to max bytes and calls
 * fn for each, in order.  The rules:
 *
 *   - A passage is a paragraph: lines up to a blank line (one of only
 *     spaces, tabs, CR, FF, VT or NUL).  A paragraph made only of lines
 *     that start with '#' (Markdown headings) is joined to the next one,
 *     so a heading stays with the text under it.
 *   - Each line loses its trailing white space (CR included); the lines
 *     are joined with one "\n"; NUL bytes become spaces; a passage starts
 *     and ends with no white space.  So a passage never holds a blank line.
 *   - A paragraph longer than max bytes is cut, piece by piece, at the
 *     last sentence end ('.', '!' or '?' before white space) that leaves a
 *     piece of at least max / 2 bytes; failing that at the last white
 *     space; failing that (one huge word) at the last UTF-8 character
 *     boundary at or before max bytes (a character longer than max, only
 *     possible when max < 4, is kept whole).
 *
 * max must be at least 1.  The text passed to fn lives only during the
 * call.  Returns 0; the non-zero value fn returned; or -1 if out of memory.
 */
int rag_split(const char *doc, size_t len, size_t max, rag_passage_fn *fn, void *ctx);

/*
 * The length of the longest prefix of s[0, len) that is at most max bytes
 * and does not end inside a UTF-8 character (len itself if len <= max).
 * Bytes that are not UTF-8 (more than 3 continuation bytes in a row) are
 * cut at max.
 */
size_t rag_utf8_cut(const char *s, size_t len, size_t max);

struct rag_span {
	const char *text;
	size_t len;
};

/*
 * Writes the context for passages p[0, n), best first, to out, which has
 * room for max + 1 bytes: the passages joined by a blank line ("\n\n"),
 * whole, for as long as the next one (with its separator) fits in max
 * bytes; the first that does not fit ends the context.  If even the first
 * passage is longer than max, it is cut at the last UTF-8 character
 * boundary at or before max bytes and is the whole context.  out is
 * NUL-terminated and *outlen is its length.  Returns the number of
 * passages used (0 only when n is 0).
 */
size_t rag_context(char *out, size_t max, const struct rag_span *p, size_t n,
    size_t *outlen);

#endif
