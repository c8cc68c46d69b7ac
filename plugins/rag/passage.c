/* passage.c -- cutting documents into passages, and joining passages into a context. */
#include <stdlib.h>
#include <string.h>

#include "passage.h"

/* White space inside a line (a line ends at '\n'). */
static int
line_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || c == '\0';
}

/* White space in a normalized paragraph, where a cut may fall. */
static int
para_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\v';
}

static int
utf8_cont(char c)
{
	return ((unsigned char)c & 0xC0) == 0x80;
}

size_t
rag_utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	/* s[c] is the first byte left out: it must not continue a character */
	size_t c = max;
	for (int k = 0; k < 3 && c > 0 && utf8_cont(s[c]); k++)
		c--;
	if (utf8_cont(s[c]))
		return max; /* not UTF-8 here: any cut is as good */
	return c;
}

/*
 * Where to end the next piece of s[0, n), n > max: the rules of
 * rag_split.  Returns a length from 1 to max.
 */
static size_t
cut_point(const char *s, size_t n, size_t max)
{
	for (size_t cut = max; cut >= 1 && cut >= max / 2; cut--)
		if ((s[cut - 1] == '.' || s[cut - 1] == '!' || s[cut - 1] == '?') &&
		    para_space(s[cut]))
			return cut;
	for (size_t cut = max; cut >= 1; cut--)
		if (para_space(s[cut]))
			return cut;
	size_t cut = rag_utf8_cut(s, n, max);
	if (cut == 0) {
		/* max is shorter than the first character: take it whole */
		cut = 1;
		while (cut < n && utf8_cont(s[cut]))
			cut++;
	}
	return cut;
}

/* Passes a normalized paragraph on as pieces of at most max bytes. */
static int
emit_paragraph(const char *s, size_t n, size_t max, rag_passage_fn *fn, void *ctx)
{
	size_t start = 0;
	for (;;) {
		while (start < n && para_space(s[start]))
			start++;
		if (start == n)
			return 0;
		size_t end = n - start <= max ? n : start + cut_point(s + start, n - start, max);
		size_t e = end;
		while (e > start && para_space(s[e - 1]))
			e--;
		if (e > start) {
			int rc = fn(ctx, s + start, e - start);
			if (rc != 0)
				return rc;
		}
		start = end;
	}
}

int
rag_split(const char *doc, size_t len, size_t max, rag_passage_fn *fn, void *ctx)
{
	/* a normalized paragraph is never longer than the document */
	char *buf = malloc(len + 1);
	if (buf == NULL)
		return -1;
	size_t n = 0;         /* bytes of the paragraph so far */
	int headings = 1;     /* every line so far starts with '#' */
	int rc = 0;
	size_t i = 0;
	while (i < len && rc == 0) {
		const char *nl = memchr(doc + i, '\n', len - i);
		size_t e = nl != NULL ? (size_t)(nl - doc) : len;
		size_t le = e, ls = i;
		while (le > i && line_space(doc[le - 1]))
			le--;
		while (ls < le && line_space(doc[ls]))
			ls++;
		if (ls == le) {
			/* a blank line ends the paragraph, unless it is only headings */
			if (n > 0 && !headings) {
				rc = emit_paragraph(buf, n, max, fn, ctx);
				n = 0;
				headings = 1;
			}
		} else {
			if (n > 0)
				buf[n++] = '\n';
			for (size_t j = i; j < le; j++)
				buf[n++] = doc[j] == '\0' ? ' ' : doc[j];
			if (doc[ls] != '#')
				headings = 0;
		}
		i = e + 1;
	}
	if (rc == 0 && n > 0)
		rc = emit_paragraph(buf, n, max, fn, ctx);
	free(buf);
	return rc;
}

size_t
rag_context(char *out, size_t max, const struct rag_span *p, size_t n, size_t *outlen)
{
	size_t used = 0, hits = 0;
	for (size_t i = 0; i < n; i++) {
		size_t sep = hits > 0 ? 2 : 0;
		if (p[i].len + sep > max - used) {
			if (hits == 0) {
				used = rag_utf8_cut(p[0].text, p[0].len, max);
				memcpy(out, p[0].text, used);
				hits = 1;
			}
			break;
		}
		if (sep > 0) {
			out[used++] = '\n';
			out[used++] = '\n';
		}
		memcpy(out + used, p[i].text, p[i].len);
		used += p[i].len;
		hits++;
	}
	out[used] = '\0';
	*outlen = used;
	return hits;
}
