/*
 * jscan.c -- a small strict JSON scanner: see jscan.h.
 *
 * Why: jansson's reader goes byte by byte through a stream with a
 * saved-text buffer and builds a tree of allocations; reading an answer
 * that way, and dumping its extras back to text, was about a tenth of the
 * gateway's CPU time per request.  Here the text is walked once, in place,
 * and what is wanted of it is taken as the bytes the upstream wrote.
 *
 * Strictness: everything jansson's json_loadb (flags 0) refuses is
 * declined (-1), and the caller asks jansson, which then says what is
 * wrong in its own words.  Declined as well, to stay on the safe side of
 * jansson's own limits: nesting deeper than JS_MAX_DEPTH, an integer of
 * more than 18 digits (json_int_t's range is jansson's to judge), a real
 * whose magnitude could reach DBL_MAX (jansson refuses an overflow), a key
 * with an escape among the members the caller reads (js_member), and any
 * byte out of place.  \u0000 is declined, as json_loadb without
 * JSON_ALLOW_NUL refuses it; so are lone surrogates and invalid UTF-8.
 */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "../text/json_plain.h"
#include "jscan.h"

/* Deeper values go to jansson (whose own limit is 2048). */
#define JS_MAX_DEPTH 64
/* A real whose decimal exponent (digits before the point plus the
 * exponent) is above this may overflow a double: declined. */
#define JS_MAX_EXP10 300

void
js_init(struct jscan *s, const char *p, size_t n)
{
	s->p = (const unsigned char *)p;
	s->end = s->p + n;
	s->depth = 0;
}

static inline void
js_ws(struct jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' ||
	    *s->p == '\t'))
		s->p++;
}

static int
js_hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/*
 * The length of the valid UTF-8 sequence at p (first byte >= 0x80), 0 if
 * it is none: no overlong forms, no surrogates, nothing above U+10FFFF,
 * as jansson's utf8_check_full.
 */
static size_t
js_utf8(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	unsigned cp;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * The string at s->p (its opening quote), checked: s->p after its closing
 * quote, *escaped set when it has a backslash.  0 or -1.
 */
static int
js_scan_string(struct jscan *s, int *escaped)
{
	const unsigned char *p = s->p + 1, *end = s->end;
	*escaped = 0;
	for (;;) {
		/* the common bytes, fast: eight at a time */
		p = json_skip_plain(p, end);
		if (p >= end)
			return -1;
		unsigned c = *p;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			size_t k = js_utf8(p, end);
			if (k == 0)
				return -1;
			p += k;
			continue;
		}
		/* a backslash */
		*escaped = 1;
		if (end - p < 2)
			return -1;
		c = p[1];
		p += 2;
		if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
		    c == 'r' || c == 't')
			continue;
		if (c != 'u')
			return -1;
		unsigned cp, lo;
		if (end - p < 4 || js_hex4(p, &cp) != 0)
			return -1;
		p += 4;
		if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
			return -1;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || js_hex4(p + 2, &lo) != 0 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return -1;
			p += 6;
		}
	}
	s->p = p + 1;
	return 0;
}

static inline int
js_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* The number at s->p, checked (see the top); *integer when it is one. */
static int
js_scan_number(struct jscan *s, int *integer)
{
	const unsigned char *p = s->p, *end = s->end;
	if (p < end && *p == '-')
		p++;
	if (!js_digit(p, end))
		return -1;
	const unsigned char *digits = p;
	if (*p == '0') {
		p++;
		if (js_digit(p, end))
			return -1;
	} else {
		while (js_digit(p, end))
			p++;
	}
	long before = (long)(p - digits);
	*integer = 1;
	if (p < end && *p == '.') {
		*integer = 0;
		p++;
		if (!js_digit(p, end))
			return -1;
		while (js_digit(p, end))
			p++;
	}
	long exp = 0;
	if (p < end && (*p == 'e' || *p == 'E')) {
		int neg = 0;
		*integer = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			neg = *p++ == '-';
		if (!js_digit(p, end))
			return -1;
		for (; js_digit(p, end); p++) {
			if (exp < 100000)
				exp = exp * 10 + (*p - '0');
		}
		if (neg)
			exp = -exp;
	}
	if (*integer ? before > 18 : before + exp > JS_MAX_EXP10)
		return -1;
	s->p = p;
	return 0;
}

static int js_skip(struct jscan *s, struct js_value *v);

/* A container's members or items, s->p after its opening. */
static int
js_skip_members(struct jscan *s, int object)
{
	size_t count = 0;
	struct js_value v;
	for (;;) {
		js_ws(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == (object ? '}' : ']')) {
			s->p++;
			s->depth--;
			return 0;
		}
		if (count++ > 0) {
			if (*s->p != ',')
				return -1;
			s->p++;
			js_ws(s);
		}
		if (object) {
			int esc;
			if (s->p >= s->end || *s->p != '"' || js_scan_string(s, &esc) != 0)
				return -1;
			js_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return -1;
			s->p++;
		}
		if (js_skip(s, &v) != 0)
			return -1;
	}
}

static int
js_literal(struct jscan *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

/* The value at s->p (after white space), skipped. */
static int
js_skip(struct jscan *s, struct js_value *v)
{
	js_ws(s);
	if (s->p >= s->end)
		return -1;
	const unsigned char *start = s->p;
	int flag = 0, r;
	v->escaped = v->integer = 0;
	switch (*s->p) {
	case '{':
	case '[':
		v->kind = *s->p == '{' ? JS_OBJECT : JS_ARRAY;
		if (++s->depth > JS_MAX_DEPTH)
			return -1;
		s->p++;
		r = js_skip_members(s, v->kind == JS_OBJECT);
		break;
	case '"':
		v->kind = JS_STRING;
		r = js_scan_string(s, &flag);
		v->escaped = flag != 0;
		break;
	case 't':
		v->kind = JS_TRUE;
		r = js_literal(s, "true", 4);
		break;
	case 'f':
		v->kind = JS_FALSE;
		r = js_literal(s, "false", 5);
		break;
	case 'n':
		v->kind = JS_NULL;
		r = js_literal(s, "null", 4);
		break;
	default:
		v->kind = JS_NUMBER;
		r = js_scan_number(s, &flag);
		v->integer = flag != 0;
		break;
	}
	if (r != 0)
		return -1;
	/* what follows a value is white space or punctuation: "truex",
	 * "1x" and the like are jansson's to refuse */
	if (s->p < s->end && !(*s->p == ' ' || *s->p == '\n' || *s->p == '\r' ||
	    *s->p == '\t' || *s->p == ',' || *s->p == '}' || *s->p == ']'))
		return -1;
	v->p = (const char *)start;
	v->n = (size_t)(s->p - start);
	return 0;
}

int
js_value(struct jscan *s, struct js_value *v)
{
	return js_skip(s, v);
}

int
js_enter(struct jscan *s, char open)
{
	js_ws(s);
	if (s->p >= s->end || *s->p != (unsigned char)open || s->depth + 1 > JS_MAX_DEPTH)
		return -1;
	s->p++;
	s->depth++;
	return 0;
}

/* The separator or the end of a container being read; 1, 0 or -1. */
static int
js_next(struct jscan *s, size_t *count, char close)
{
	js_ws(s);
	if (s->p >= s->end)
		return -1;
	if (*s->p == (unsigned char)close) {
		s->p++;
		s->depth--;
		return 0;
	}
	if ((*count)++ > 0) {
		if (*s->p != ',')
			return -1;
		s->p++;
		js_ws(s);
	}
	return 1;
}

int
js_member(struct jscan *s, size_t *count, const char **key, size_t *klen)
{
	int r = js_next(s, count, '}');
	if (r <= 0)
		return r;
	int esc;
	const unsigned char *k = s->p;
	if (s->p >= s->end || *s->p != '"' || js_scan_string(s, &esc) != 0 || esc)
		return -1;
	*key = (const char *)k + 1;
	*klen = (size_t)(s->p - k) - 2;
	js_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return -1;
	s->p++;
	js_ws(s);
	return 1;
}

int
js_item(struct jscan *s, size_t *count)
{
	int r = js_next(s, count, ']');
	if (r <= 0)
		return r;
	return 1;
}

int
js_finish(struct jscan *s)
{
	js_ws(s);
	return s->p == s->end ? 0 : -1;
}

/* ---- buffers ---------------------------------------------------------------- */

/* Room for n more bytes and the NUL. */
static int
js_room(struct js_buf *b, size_t n)
{
	if (b->cap - b->len > n)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len <= n) {
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
js_put(struct js_buf *b, const void *p, size_t n)
{
	if (js_room(b, n) != 0)
		return -1;
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
js_put_compact(struct js_buf *b, const char *p, size_t n)
{
	if (js_room(b, n) != 0)
		return -1;
	char *o = b->p + b->len;
	const char *end = p + n;
	while (p < end) {
		char c = *p++;
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		*o++ = c;
		if (c != '"')
			continue;
		/* a string, as written: it was checked, so it ends */
		while ((c = *p++) != '"') {
			*o++ = c;
			if (c == '\\')
				*o++ = *p++;
		}
		*o++ = c;
	}
	b->len = (size_t)(o - b->p);
	b->p[b->len] = '\0';
	return 0;
}

void
js_buf_free(struct js_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* Code point cp as UTF-8 at o; the bytes written. */
static size_t
js_put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * One escape of a string the scanner checked, at p (its backslash): its
 * bytes written at *o (at most 4), *o moved past them.  Returns what
 * follows the escape.
 */
static const char *
js_unescape_one(const char *p, char **o)
{
	char e = p[1];
	char *w = *o;
	p += 2;
	switch (e) {
	case 'b': *w++ = '\b'; break;
	case 'f': *w++ = '\f'; break;
	case 'n': *w++ = '\n'; break;
	case 'r': *w++ = '\r'; break;
	case 't': *w++ = '\t'; break;
	case 'u': {
		unsigned cp, lo;
		js_hex4((const unsigned char *)p, &cp);
		p += 4;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			js_hex4((const unsigned char *)p + 2, &lo);
			p += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		w += js_put_utf8(w, cp);
		break;
	}
	default: /* '"', '\\', '/' */
		*w++ = e;
		break;
	}
	*o = w;
	return p;
}

int
js_string(const struct js_value *v, struct js_buf *b, const char **out, size_t *n)
{
	const char *p = v->p + 1, *end = v->p + v->n - 1;
	if (!v->escaped) {
		*out = p;
		*n = (size_t)(end - p);
		return 0;
	}
	/* unescaped, it is never longer than as written */
	b->len = 0;
	if (js_room(b, (size_t)(end - p)) != 0)
		return -1;
	char *o = b->p;
	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		size_t run = bs != NULL ? (size_t)(bs - p) : (size_t)(end - p);
		memcpy(o, p, run);
		o += run;
		p += run;
		if (p >= end)
			break;
		p = js_unescape_one(p, &o);
	}
	b->len = (size_t)(o - b->p);
	b->p[b->len] = '\0';
	*out = b->p;
	*n = b->len;
	return 0;
}

size_t
js_utf8_cut(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t k = n;
	/* back over continuation bytes (three at most) to a sequence's start */
	while (k > 0 && n - k < 3 && (p[k - 1] & 0xc0) == 0x80)
		k--;
	if (k == 0 || p[k - 1] < 0xc0)
		return n; /* ASCII last, or no start found: nothing is cut */
	unsigned c = p[k - 1];
	size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	return n - (k - 1) < want ? k - 1 : n;
}

size_t
js_unescape_part(const char **pp, const char *end, char *out, size_t cap)
{
	const char *p = *pp;
	char *o = out, *oend = out + cap;
	while (p < end && o < oend) {
		size_t room = (size_t)(oend - o), left = (size_t)(end - p);
		const char *bs = memchr(p, '\\', left < room ? left : room);
		if (bs == NULL) {
			/* plain bytes to the end or to the room's end: not into a
			 * sequence when cut there */
			size_t run = left < room ? left : js_utf8_cut(p, room);
			memcpy(o, p, run);
			o += run;
			p += run;
			break;
		}
		memcpy(o, p, (size_t)(bs - p));
		o += bs - p;
		p = bs;
		if (oend - o < 4)
			break; /* an escape may write 4 bytes: in the next part */
		p = js_unescape_one(p, &o);
	}
	*pp = p;
	return (size_t)(o - out);
}
