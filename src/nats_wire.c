/* nats_wire.c -- tagged, length-prefixed fields (nats_wire.h). */
#include <stdlib.h>
#include <string.h>

#include "nats_wire.h"
#include "util.h"

static void
wb_grow(struct wbuf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

/* n in decimal at out (20 bytes at most); returns its length */
static size_t
utoa(unsigned long long n, char *out)
{
	char tmp[24];
	size_t k = 0;
	do {
		tmp[k++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	for (size_t i = 0; i < k; i++)
		out[i] = tmp[k - 1 - i];
	return k;
}

void
wb_str(struct wbuf *b, char tag, const char *s, size_t n)
{
	wb_grow(b, n + 24);
	b->p[b->len++] = tag;
	b->len += utoa(n, b->p + b->len);
	b->p[b->len++] = ':';
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
}

void
wb_cstr(struct wbuf *b, char tag, const char *s)
{
	wb_str(b, tag, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

void
wb_int(struct wbuf *b, char tag, long long v)
{
	char num[24];
	size_t k = 0;
	if (v < 0) {
		num[k++] = '-';
		k += utoa((unsigned long long)(-(v + 1)) + 1, num + k);
	} else {
		k += utoa((unsigned long long)v, num);
	}
	wb_str(b, tag, num, k);
}

int
wr_next(const char **cur, const char *end, struct wfield *f)
{
	const char *p = *cur;
	if (p >= end)
		return 0;
	f->tag = *p++;
	size_t n = 0;
	int digits = 0;
	while (p < end && *p >= '0' && *p <= '9' && digits < 12) {
		n = n * 10 + (size_t)(*p++ - '0');
		digits++;
	}
	if (digits == 0 || p >= end || *p != ':')
		return -1;
	p++;
	if ((size_t)(end - p) < n)
		return -1;
	f->p = p;
	f->n = n;
	*cur = p + n;
	return 1;
}

long long
wf_int(const struct wfield *f)
{
	long long v = 0;
	size_t i = 0;
	int neg = f->n > 0 && f->p[0] == '-';
	for (i = neg ? 1 : 0; i < f->n && i < 19; i++) {
		if (f->p[i] < '0' || f->p[i] > '9')
			return 0;
		v = v * 10 + (f->p[i] - '0');
	}
	return neg ? -v : v;
}

const char *
wf_str(const struct wfield *f, char *buf, size_t len)
{
	size_t n = f->n < len - 1 ? f->n : len - 1;
	memcpy(buf, f->p, n);
	buf[n] = '\0';
	return buf;
}
