/* tbuf.c -- a growable byte buffer, UTF-8 and list helpers for the text stages. */
#include <stdlib.h>
#include <string.h>

#include "tbuf.h"

int
tbuf_reserve(struct tbuf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len < n) {
		if (cap > (size_t)-1 / 2)
			return -1;
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
tbuf_put(struct tbuf *b, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (tbuf_reserve(b, n) != 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

int
tbuf_putc(struct tbuf *b, char c)
{
	return tbuf_put(b, &c, 1);
}

void
tbuf_consume(struct tbuf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

void
tbuf_free(struct tbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int
text_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

size_t
utf8_cut(const char *s, size_t len)
{
	size_t k = len;
	size_t lo = len >= 3 ? len - 3 : 0;
	/* at most three steps back: no UTF-8 character is longer than 4 bytes */
	while (k > lo && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	return k;
}

int
text_list(const char *s, int escapes,
    int (*fn)(void *ctx, const char *item, size_t len), void *ctx, size_t *bad)
{
	struct tbuf item = { 0 };
	size_t i = 0, n = strlen(s);
	int rc = 0;

	/* an empty (or blank) value: no items at all */
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == n)
		return 0;
	i = 0;
	for (;;) {
		size_t keep = 0; /* item length up to its last kept character */
		item.len = 0;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		while (i < n && s[i] != ',') {
			char c = s[i];
			if (escapes && c == '\\') {
				char e = i + 1 < n ? s[i + 1] : '\0';
				switch (e) {
				case 'n': c = '\n'; break;
				case 't': c = '\t'; break;
				case 'r': c = '\r'; break;
				case 's': c = ' '; break;
				case ',': c = ','; break;
				case '\\': c = '\\'; break;
				default:
					*bad = i;
					rc = -2;
					goto out;
				}
				i += 2;
				if (tbuf_putc(&item, c) != 0)
					goto oom;
				keep = item.len;
				continue;
			}
			if (tbuf_putc(&item, c) != 0)
				goto oom;
			if (c != ' ' && c != '\t')
				keep = item.len;
			i++;
		}
		if (tbuf_putc(&item, '\0') != 0)
			goto oom;
		item.p[keep] = '\0';
		if (fn(ctx, item.p, keep) != 0) {
			rc = -1;
			goto out;
		}
		if (i >= n)
			break;
		i++; /* the comma */
	}
out:
	tbuf_free(&item);
	return rc;
oom:
	*bad = (size_t)-1;
	tbuf_free(&item);
	return -2;
}
