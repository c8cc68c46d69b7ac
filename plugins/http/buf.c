/*
 * buf.c -- growable byte buffers, integers without printf, and the JSON
 * string writer the answers are made with (see buf.h for the escaping).
 *
 * Answers used to be jansson objects dumped with json_dumps; for the
 * chat.completion of a short echo that was about a third of the source's
 * CPU time per request.  The writer appends straight to a buffer and
 * gives the same bytes.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ---- ids ---------------------------------------------------------------- */

/* splitmix64's mixer: ids from counters. */
uint64_t
http_mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- buffers ------------------------------------------------------------ */

char *
buf_room(struct buf *b, size_t n)
{
	/* always room for a NUL after the bytes: a buffer is also a string */
	if (b->cap - b->len <= n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len <= n) {
			if (cap > (size_t)-1 / 2) {
				b->oom = 1;
				return NULL;
			}
			cap *= 2;
		}
		char *q = realloc(b->p, cap);
		if (q == NULL) {
			b->oom = 1;
			return NULL;
		}
		b->p = q;
		b->cap = cap;
	}
	return b->p + b->len;
}

int
buf_reserve(struct buf *b, size_t n)
{
	if (b->cap - b->len > n)
		return 0;
	if (n > (size_t)-1 - b->len - 1) {
		b->oom = 1;
		return -1;
	}
	char *q = realloc(b->p, b->len + n + 1);
	if (q == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = q;
	b->cap = b->len + n + 1;
	return 0;
}

int
buf_add_grow(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	char *q = buf_room(b, n);
	if (q == NULL)
		return -1;
	memcpy(q, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return buf_add(b, small, (size_t)n);
	char *big = malloc((size_t)n + 1);
	if (big == NULL) {
		b->oom = 1;
		return -1;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = buf_add(b, big, (size_t)n);
	free(big);
	return rc;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->oom = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

/* ---- integers ----------------------------------------------------------- */

size_t
fmt_u64(char out[21], uint64_t v)
{
	char tmp[20];
	size_t i = sizeof tmp;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	size_t n = sizeof tmp - i;
	memcpy(out, tmp + i, n);
	out[n] = '\0';
	return n;
}

int
buf_u64(struct buf *b, uint64_t v)
{
	char tmp[21];
	return buf_add(b, tmp, fmt_u64(tmp, v));
}

int
buf_i64(struct buf *b, int64_t v)
{
	if (v >= 0)
		return buf_u64(b, (uint64_t)v);
	if (buf_lit(b, "-") != 0)
		return -1;
	return buf_u64(b, (uint64_t)0 - (uint64_t)v);
}

static const char hexdigits[] = "0123456789abcdef";

int
buf_hex(struct buf *b, uint64_t v)
{
	char tmp[16];
	size_t i = sizeof tmp;
	do {
		tmp[--i] = hexdigits[v & 0xf];
		v >>= 4;
	} while (v != 0);
	return buf_add(b, tmp + i, sizeof tmp - i);
}

void
hex16(char out[17], uint64_t v)
{
	for (int i = 15; i >= 0; i--) {
		out[i] = hexdigits[v & 0xf];
		v >>= 4;
	}
	out[16] = '\0';
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* Whether the 8 bytes at p are all ASCII (one word read). */
static inline int
ascii8(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return (v & 0x8080808080808080ull) == 0;
}


/* How many leading bytes of p form whole, valid UTF-8 sequences (stops at
 * the first invalid or incomplete one). */
size_t
utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		size_t len;
		unsigned min;
		if (c < 0x80) {
			/* ASCII, eight bytes at a time while it lasts */
			i++;
			while (n - i >= 8 && ascii8(p + i))
				i += 8;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, min = 0x10000;
		} else {
			break;
		}
		if (i + len > n)
			break;
		unsigned cp = c & (0x7f >> len);
		size_t k;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				break;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (k < len || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			break;
		i += len;
	}
	return i;
}

size_t
utf8_whole(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t k = n;
	/* back over continuation bytes (three at most) to a sequence's start */
	while (k > 0 && n - k < 3 && (p[k - 1] & 0xc0) == 0x80)
		k--;
	if (k == 0 || p[k - 1] < 0xc0)
		return n; /* ASCII last, or no start: nothing is cut */
	unsigned c = p[k - 1];
	size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	return n - (k - 1) < want ? k - 1 : n;
}

/* ---- JSON strings ------------------------------------------------------- */

/*
 * The code point of a valid UTF-8 sequence at p[0..n) (its first byte is
 * above 0x7f), its length in *len; -1 if the bytes there are not one
 * (invalid, overlong, a surrogate, beyond U+10FFFF, or cut short).
 */
static long
utf8_decode(const unsigned char *p, size_t n, size_t *len)
{
	unsigned c = p[0];
	size_t k;
	unsigned min;
	if ((c & 0xe0) == 0xc0)
		k = 2, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		k = 3, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		k = 4, min = 0x10000;
	else
		return -1;
	if (k > n)
		return -1;
	unsigned long cp = c & (0x7fu >> k);
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*len = k;
	return (long)cp;
}

/* \uXXXX, upper-case as jansson writes it. */
static char *
put_u4(char *q, unsigned long v)
{
	static const char up[] = "0123456789ABCDEF";
	*q++ = '\\';
	*q++ = 'u';
	*q++ = up[(v >> 12) & 0xf];
	*q++ = up[(v >> 8) & 0xf];
	*q++ = up[(v >> 4) & 0xf];
	*q++ = up[v & 0xf];
	return q;
}

/* Input bytes escaped per reservation of room (6 bytes out per byte in). */
#define ESC_BLOCK 16384

int
json_put_esc(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	if (n == 0)
		return 0;
	/*
	 * At most 6 bytes out per byte in (\u00XX, or \uFFFD for one bad
	 * byte; a 4-byte sequence becomes 12).  Room is made a block of
	 * input at a time, not for all of it at once: a 10 MB text would
	 * otherwise reserve (and realloc, and fault in) 60 MB.  Within a
	 * block there are no checks; a sequence may run past its end.
	 */
	size_t i = 0;
	while (i < n) {
		size_t blk = n - i < ESC_BLOCK ? n - i : ESC_BLOCK;
		char *q0 = buf_room(b, blk * 6 + 12);
		if (q0 == NULL)
			return -1;
		char *q = q0;
		size_t stop = i + blk;
		while (i < stop) {
			size_t run = (size_t)(json_skip_plain(p + i, p + stop) - p);
			if (run > i) {
				memcpy(q, p + i, run - i);
				q += run - i;
				i = run;
				if (i == stop)
					break;
			}
			unsigned char c = p[i];
			if (c < 0x80) {
				switch (c) {
				case '"': *q++ = '\\'; *q++ = '"'; break;
				case '\\': *q++ = '\\'; *q++ = '\\'; break;
				case '\b': *q++ = '\\'; *q++ = 'b'; break;
				case '\f': *q++ = '\\'; *q++ = 'f'; break;
				case '\n': *q++ = '\\'; *q++ = 'n'; break;
				case '\r': *q++ = '\\'; *q++ = 'r'; break;
				case '\t': *q++ = '\\'; *q++ = 't'; break;
				default: q = put_u4(q, c); break; /* other control bytes */
				}
				i++;
				continue;
			}
			size_t len = 1;
			long cp = utf8_decode(p + i, n - i, &len);
			if (cp < 0) {
				q = put_u4(q, 0xfffd);
			} else if (cp < 0x10000) {
				q = put_u4(q, (unsigned long)cp);
			} else {
				unsigned long v = (unsigned long)cp - 0x10000;
				q = put_u4(q, 0xd800 | (v >> 10));
				q = put_u4(q, 0xdc00 | (v & 0x3ff));
			}
			i += len;
		}
		b->len += (size_t)(q - q0);
	}
	b->p[b->len] = '\0';
	return 0;
}

int
json_put_str(struct buf *b, const char *p, size_t n)
{
	if (buf_lit(b, "\"") != 0 || json_put_esc(b, p, n) != 0)
		return -1;
	return buf_lit(b, "\"");
}

int
json_put_cstr(struct buf *b, const char *s)
{
	if (s == NULL)
		return buf_lit(b, "null");
	return json_put_str(b, s, strlen(s));
}

/* The members of obj (a compact JSON object's text, or NULL), after a comma when asked. */
void
json_put_members(struct buf *b, const char *obj, int comma)
{
	if (obj == NULL)
		return;
	size_t n = strlen(obj);
	/* compact JSON from a worker: {} or {"k":v,...} */
	if (n <= 2 || obj[0] != '{' || obj[n - 1] != '}')
		return;
	if (comma)
		buf_lit(b, ",");
	buf_add(b, obj + 1, n - 2);
}
