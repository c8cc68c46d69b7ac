/*
 * jparse.c -- a quick reader for request bodies: it builds the jansson tree
 * json_loadb(JSON_REJECT_DUPLICATES) would build from well-formed JSON, and
 * gives up (NULL) on anything it does not take on, so that json_loadb reads
 * that body instead and says what is wrong, in its own words.
 *
 * jansson's reader goes byte by byte through a stream with a saved-text
 * buffer: about 2 us for a 110-byte chat request, a tenth of the source's
 * CPU time per request.  This one walks the bytes once.  It gives up on: a
 * top level that is not an object, nesting deeper than JP_MAX_DEPTH, a
 * duplicate key, control bytes or invalid UTF-8 in a string, \u0000 or a
 * lone surrogate, an integer of more than 18 digits, a real strtod cannot
 * give exactly (ERANGE), any byte out of place; json_loadb then errs, or
 * agrees and builds the same tree.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jparse.h"

/* Deeper bodies go to json_loadb (whose own limit is 2048). */
#define JP_MAX_DEPTH 32
/* Longest number token read here. */
#define JP_MAX_NUMBER 64

struct jp {
	const unsigned char *p, *end;
	int depth;
	struct buf str;         /* a string with escapes, unescaped */
};

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
	    *j->p == '\r'))
		j->p++;
}

static int
jp_hex4(const unsigned char *p, unsigned *out)
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

/* Appends code point cp as UTF-8. */
static void
jp_utf8(struct buf *b, unsigned cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_add(b, u, n);
}

/*
 * A string, j->p at its opening quote.  Sets *s and *n to its bytes: in
 * the body when it has no escapes, else in j->str.  -1: give up.
 */
static int
jp_string(struct jp *j, const char **s, size_t *n)
{
	const unsigned char *p = ++j->p, *end = j->end;
	const unsigned char *start = p;
	int escaped = 0;
	buf_reset(&j->str);
	for (;;) {
		const unsigned char *run = p;
		/* a word at a time while it lasts: a 10 MB prompt is one string */
		p = json_skip_plain(p, end);
		if (escaped)
			buf_add(&j->str, run, (size_t)(p - run));
		if (p >= end)
			return -1;
		unsigned c = *p;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			/* one whole, valid sequence, as jansson's reader checks it */
			size_t want = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
			    (c & 0xf8) == 0xf0 ? 4 : 0;
			if (want == 0 || (size_t)(end - p) < want ||
			    utf8_valid_prefix((const char *)p, want) != want)
				return -1;
			if (escaped)
				buf_add(&j->str, p, want);
			p += want;
			continue;
		}
		/* a backslash */
		if (!escaped) {
			escaped = 1;
			buf_add(&j->str, start, (size_t)(p - start));
		}
		if (end - p < 2)
			return -1;
		unsigned e = p[1];
		p += 2;
		char out;
		switch (e) {
		case '"': out = '"'; break;
		case '\\': out = '\\'; break;
		case '/': out = '/'; break;
		case 'b': out = '\b'; break;
		case 'f': out = '\f'; break;
		case 'n': out = '\n'; break;
		case 'r': out = '\r'; break;
		case 't': out = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (end - p < 4 || jp_hex4(p, &cp) != 0)
				return -1;
			p += 4;
			if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
				return -1;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				    jp_hex4(p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
					return -1;
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			jp_utf8(&j->str, cp);
			continue;
		}
		default:
			return -1;
		}
		buf_add(&j->str, &out, 1);
	}
	j->p = p + 1;
	if (escaped) {
		if (j->str.oom)
			return -1;
		*s = j->str.p ? j->str.p : "";
		*n = j->str.len;
	} else {
		*s = (const char *)start;
		*n = (size_t)(p - start);
	}
	return 0;
}

static json_t *jp_value(struct jp *j);

static json_t *
jp_number(struct jp *j)
{
	const unsigned char *p = j->p, *end = j->end, *start = p;
	int neg = 0;
	if (p < end && *p == '-')
		neg = 1, p++;
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	const unsigned char *digits = p;
	if (*p == '0') {
		p++;
		if (p < end && *p >= '0' && *p <= '9')
			return NULL;
	} else {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	size_t nd = (size_t)(p - digits);
	if (p >= end || (*p != '.' && *p != 'e' && *p != 'E')) {
		if (nd > 18)
			return NULL; /* json_loadb knows its limits */
		json_int_t v = 0;
		for (const unsigned char *q = digits; q < p; q++)
			v = v * 10 + (*q - '0');
		j->p = p;
		return json_integer(neg ? -v : v);
	}
	if (*p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	char tmp[JP_MAX_NUMBER + 1];
	size_t len = (size_t)(p - start);
	if (len > JP_MAX_NUMBER)
		return NULL;
	memcpy(tmp, start, len);
	tmp[len] = '\0';
	errno = 0;
	char *stop;
	double d = strtod(tmp, &stop);
	if (errno != 0 || stop != tmp + len)
		return NULL;
	j->p = p;
	return json_real(d);
}

static json_t *
jp_object(struct jp *j)
{
	if (++j->depth > JP_MAX_DEPTH)
		return NULL;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		j->depth--;
		return o;
	}
	char small[128];
	for (;;) {
		jp_ws(j);
		const char *k;
		size_t kn;
		if (j->p >= j->end || *j->p != '"' || jp_string(j, &k, &kn) != 0 ||
		    kn >= sizeof small)
			goto fail;
		memcpy(small, k, kn);
		small[kn] = '\0';
		if (json_object_get(o, small) != NULL)
			goto fail; /* a duplicate: json_loadb says so */
		jp_ws(j);
		if (j->p >= j->end || *j->p != ':')
			goto fail;
		j->p++;
		json_t *v = jp_value(j);
		if (v == NULL || json_object_set_new_nocheck(o, small, v) != 0)
			goto fail;
		jp_ws(j);
		if (j->p >= j->end)
			goto fail;
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p != '}')
			goto fail;
		j->p++;
		j->depth--;
		return o;
	}
fail:
	json_decref(o);
	return NULL;
}

static json_t *
jp_array(struct jp *j)
{
	if (++j->depth > JP_MAX_DEPTH)
		return NULL;
	json_t *a = json_array();
	if (a == NULL)
		return NULL;
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		j->depth--;
		return a;
	}
	for (;;) {
		json_t *v = jp_value(j);
		if (v == NULL || json_array_append_new(a, v) != 0)
			goto fail;
		jp_ws(j);
		if (j->p >= j->end)
			goto fail;
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p != ']')
			goto fail;
		j->p++;
		j->depth--;
		return a;
	}
fail:
	json_decref(a);
	return NULL;
}

static json_t *
jp_literal(struct jp *j, const char *word, size_t n, json_t *v)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return NULL;
	j->p += n;
	return v;
}

static json_t *
jp_value(struct jp *j)
{
	jp_ws(j);
	if (j->p >= j->end)
		return NULL;
	switch (*j->p) {
	case '{':
		return jp_object(j);
	case '[':
		return jp_array(j);
	case '"': {
		const char *s;
		size_t n;
		if (jp_string(j, &s, &n) != 0)
			return NULL;
		return json_stringn_nocheck(s, n);
	}
	case 't':
		return jp_literal(j, "true", 4, json_true());
	case 'f':
		return jp_literal(j, "false", 5, json_false());
	case 'n':
		return jp_literal(j, "null", 4, json_null());
	default:
		return jp_number(j);
	}
}

json_t *
jparse_object(const char *body, size_t len)
{
	struct jp j = { (const unsigned char *)body, (const unsigned char *)body + len, 0,
	    { 0 } };
	jp_ws(&j);
	json_t *root = NULL;
	if (j.p < j.end && *j.p == '{')
		root = jp_object(&j);
	if (root != NULL) {
		jp_ws(&j);
		if (j.p != j.end) {
			json_decref(root);
			root = NULL;
		}
	}
	buf_free(&j.str);
	return root;
}
