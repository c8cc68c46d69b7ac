/* redact_scan.c -- masks keys, tokens, e-mail addresses and phone numbers, whole or streamed. */
#include <stdlib.h>
#include <string.h>

#include "redact_scan.h"

static const char *const kind_names[REDACT_NKINDS] = {
	"key", "bearer", "email", "phone", "hex", "base64",
};

const char *
redact_kind_name(int kind)
{
	return kind >= 0 && kind < REDACT_NKINDS ? kind_names[kind] : NULL;
}

int
redact_kind_parse(const char *name, size_t n)
{
	for (int k = 0; k < REDACT_NKINDS; k++)
		if (strlen(kind_names[k]) == n && memcmp(kind_names[k], name, n) == 0)
			return k;
	return -1;
}

const char *
redact_kind_list(void)
{
	return "email, phone, key, bearer, hex, base64";
}

int
redact_cfg_masks(struct redact_cfg *c, const char *fmt, size_t *bad)
{
	for (int k = 0; k < REDACT_NKINDS; k++) {
		struct tbuf b = { 0 };
		for (size_t i = 0; fmt[i]; i++) {
			int rc;
			if (fmt[i] != '%') {
				rc = tbuf_putc(&b, fmt[i]);
			} else if (fmt[i + 1] == 's') {
				rc = tbuf_put(&b, kind_names[k], strlen(kind_names[k]));
				i++;
			} else if (fmt[i + 1] == '%') {
				rc = tbuf_putc(&b, '%');
				i++;
			} else {
				tbuf_free(&b);
				*bad = i;
				return -1;
			}
			if (rc != 0) {
				tbuf_free(&b);
				return -2;
			}
		}
		if (tbuf_putc(&b, '\0') != 0) {
			tbuf_free(&b);
			return -2;
		}
		free(c->mask[k]);
		c->mask[k] = b.p;
		c->mask_len[k] = b.len - 1;
	}
	return 0;
}

void
redact_cfg_free(struct redact_cfg *c)
{
	for (int k = 0; k < REDACT_NKINDS; k++) {
		free(c->mask[k]);
		c->mask[k] = NULL;
	}
}

/* ---- character classes -------------------------------------------------- */

enum cls {
	CL_NONE,
	CL_KEY,     /* A-Z a-z 0-9 _ -        */
	CL_UPNUM,   /* A-Z 0-9                */
	CL_ALNUM,   /* A-Z a-z 0-9            */
	CL_WORD,    /* A-Z a-z 0-9 _          */
	CL_TOKEN,   /* A-Z a-z 0-9 - . _ ~ + / =  (a bearer token) */
	CL_HEX,     /* 0-9 a-f A-F            */
	CL_B64,     /* A-Z a-z 0-9 + / _ -    */
	CL_B64PAD,  /* CL_B64 and =           */
};

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_upper(int c)
{
	return c >= 'A' && c <= 'Z';
}

static int
is_lower(int c)
{
	return c >= 'a' && c <= 'z';
}

static int
is_alnum(int c)
{
	return is_digit(c) || is_upper(c) || is_lower(c);
}

static int
cls_has(int cls, int c)
{
	switch (cls) {
	case CL_KEY:
		return is_alnum(c) || c == '_' || c == '-';
	case CL_UPNUM:
		return is_upper(c) || is_digit(c);
	case CL_ALNUM:
		return is_alnum(c);
	case CL_WORD:
		return is_alnum(c) || c == '_';
	case CL_TOKEN:
		return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
		    c == '+' || c == '/' || c == '=';
	case CL_HEX:
		return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	case CL_B64:
		return is_alnum(c) || c == '+' || c == '/' || c == '_' || c == '-';
	case CL_B64PAD:
		return cls_has(CL_B64, c) || c == '=';
	default:
		return 0;
	}
}

static int
email_local(int c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static int
email_label(int c)
{
	return is_alnum(c) || c == '-';
}

/* ---- the scanner ----------------------------------------------------------- */

/*
 * The text from the position being tried: n bytes known, and whether more
 * may come.  at() gives the byte at j, END past the end of the text, or
 * NEED when it is not known yet: the matcher then answers MORE.  A matcher
 * answers NONE or MATCH only from bytes it has seen, so that it answers
 * the same however the text is cut into pieces.
 */
struct scan {
	const unsigned char *p;
	size_t n;
	int at_end;
	int prev;
};

#define END  (-1)
#define NEED (-2)

enum { R_NONE, R_MORE, R_MATCH, R_OPEN };

struct hit {
	int kind;
	size_t len;   /* bytes replaced */
	size_t keep;  /* of which the first `keep` are kept before the mask */
	int swallow;  /* R_OPEN: the class of the rest of the run */
};

static int
at(const struct scan *s, size_t j)
{
	if (j < s->n)
		return s->p[j];
	return s->at_end ? END : NEED;
}

/*
 * Scans a run of class cls from j, stopping at REDACT_MAX bytes from the
 * start.  Returns R_MORE if the text ran out first; else R_NONE with *end
 * at the first byte not in the run, or R_OPEN with *end at REDACT_MAX.
 */
static int
run(const struct scan *s, size_t j, int cls, size_t *end)
{
	for (;; j++) {
		if (j >= REDACT_MAX) {
			*end = REDACT_MAX;
			return R_OPEN;
		}
		int c = at(s, j);
		if (c == NEED)
			return R_MORE;
		if (!cls_has(cls, c)) {
			*end = j;
			return R_NONE;
		}
	}
}

struct key_prefix {
	const char *prefix;
	int cls;
	size_t min;      /* shortest body after the prefix */
	int mixed;       /* the body needs a digit or a capital letter */
};

/* Well-known API key and token formats, by their prefix. */
static const struct key_prefix key_prefixes[] = {
	{ "sk-", CL_KEY, 20, 1 },          /* OpenAI, Anthropic, Stripe secret keys */
	{ "AKIA", CL_UPNUM, 16, 0 },       /* AWS access key ids */
	{ "ASIA", CL_UPNUM, 16, 0 },       /* AWS temporary access key ids */
	{ "AIza", CL_KEY, 30, 0 },         /* Google API keys */
	{ "ghp_", CL_ALNUM, 30, 0 },       /* GitHub tokens */
	{ "gho_", CL_ALNUM, 30, 0 },
	{ "ghu_", CL_ALNUM, 30, 0 },
	{ "ghs_", CL_ALNUM, 30, 0 },
	{ "ghr_", CL_ALNUM, 30, 0 },
	{ "github_pat_", CL_WORD, 30, 0 },
	{ "glpat-", CL_KEY, 20, 0 },       /* GitLab tokens */
	{ "xoxb-", CL_KEY, 10, 0 },        /* Slack tokens */
	{ "xoxp-", CL_KEY, 10, 0 },
	{ "xoxa-", CL_KEY, 10, 0 },
	{ "xoxr-", CL_KEY, 10, 0 },
	{ "xoxs-", CL_KEY, 10, 0 },
};

static int
match_key(const struct scan *s, struct hit *h)
{
	int more = 0;
	for (size_t k = 0; k < sizeof key_prefixes / sizeof key_prefixes[0]; k++) {
		const struct key_prefix *kp = &key_prefixes[k];
		size_t plen = strlen(kp->prefix), j, end;
		int c = 0;
		for (j = 0; j < plen; j++) {
			c = at(s, j);
			if (c != (unsigned char)kp->prefix[j])
				break;
		}
		if (j < plen) {
			if (c == NEED)
				more = 1;
			continue;
		}
		int r = run(s, plen, kp->cls, &end);
		if (r == R_MORE)
			return R_MORE;
		if (r == R_NONE) {
			c = at(s, end);
			if (c == NEED)
				return R_MORE;
			if (end - plen < kp->min || is_alnum(c))
				continue;
		}
		if (kp->mixed) {
			int ok = 0;
			for (j = plen; j < end && !ok; j++)
				ok = is_digit(s->p[j]) || is_upper(s->p[j]);
			if (!ok)
				continue;
		}
		h->len = end;
		h->swallow = kp->cls;
		return r == R_OPEN ? R_OPEN : R_MATCH;
	}
	return more ? R_MORE : R_NONE;
}

/* "Bearer" (any case), 1 to 16 blanks, and a token of 16 or more bytes. */
static int
match_bearer(const struct scan *s, struct hit *h)
{
	static const char word[] = "bearer";
	size_t j, end;
	int c;

	for (j = 0; j < 6; j++) {
		c = at(s, j);
		if (c == NEED)
			return R_MORE;
		if (c == END || (c | 0x20) != word[j])
			return R_NONE;
	}
	for (; j < 6 + 16; j++) {
		c = at(s, j);
		if (c == NEED)
			return R_MORE;
		if (c != ' ' && c != '\t')
			break;
	}
	if (j == 6 || j == 6 + 16)
		return R_NONE;
	size_t start = j;
	int r = run(s, start, CL_TOKEN, &end);
	if (r == R_MORE)
		return R_MORE;
	if (r == R_NONE && end - start < 16)
		return R_NONE;
	h->len = end;
	h->keep = start;
	h->swallow = CL_TOKEN;
	return r == R_OPEN ? R_OPEN : R_MATCH;
}

/* local@domain.tld: local part of 1 to 64 bytes, a domain of two or more labels, the last all letters. */
static int
match_email(const struct scan *s, struct hit *h)
{
	size_t j = 0;
	int c;

	while ((c = at(s, j)) >= 0 && email_local(c)) {
		if (++j > 64)
			return R_NONE;
	}
	if (c == NEED)
		return R_MORE;
	if (j == 0 || c != '@')
		return R_NONE;
	j++;
	size_t labels = 0, last_start = 0, end = 0;
	for (;;) {
		size_t start = j;
		while ((c = at(s, j)) >= 0 && email_label(c)) {
			if (++j - start > 63 || j > 64 + 1 + 253)
				return R_NONE;
		}
		if (c == NEED)
			return R_MORE;
		if (j == start)
			break;
		labels++;
		last_start = start;
		end = j;
		if (c != '.')
			break;
		int c2 = at(s, j + 1);
		if (c2 == NEED)
			return R_MORE;
		if (c2 < 0 || !email_label(c2))
			break;
		j++;
	}
	if (labels < 2 || end - last_start < 2)
		return R_NONE;
	for (size_t k = last_start; k < end; k++)
		if (!is_upper(s->p[k]) && !is_lower(s->p[k]))
			return R_NONE;
	h->len = end;
	return R_MATCH;
}

/*
 * A phone number: an optional '+', then groups of digits, each after the
 * first separated by one space or '-', or in parentheses; 7 to 15 digits.
 * Without '+' it needs parentheses, or separators between 3 or more groups
 * or 2 groups of 10 digits in all; a group of 3 or more digits; and must
 * not look like a date (groups of 4-2-2 or 2-2-4 digits).
 */
static int
match_phone(const struct scan *s, struct hit *h)
{
	size_t j = 0, end = 0, digits = 0, groups = 0, seps = 0, longest = 0;
	size_t glen[16];
	int plus = 0, paren = 0, c;

	if ((c = at(s, 0)) == NEED)
		return R_MORE;
	if (c == '+') {
		plus = 1;
		j = 1;
	}
	for (;;) {
		size_t g = 0;
		c = at(s, j);
		if (c == NEED)
			return R_MORE;
		if (c == '(') {
			size_t k = j + 1;
			while ((c = at(s, k)) >= 0 && is_digit(c)) {
				k++;
				if (digits + (k - j - 1) > 15)
					return R_NONE;
			}
			if (c == NEED)
				return R_MORE;
			if (c != ')' || k == j + 1)
				break; /* not a group: the number (if any) ended before */
			g = k - j - 1;
			j = k + 1;
			paren = 1;
		} else if (c >= 0 && is_digit(c)) {
			while ((c = at(s, j)) >= 0 && is_digit(c)) {
				j++;
				if (digits + ++g > 15)
					return R_NONE;
			}
			if (c == NEED)
				return R_MORE;
		} else {
			break;
		}
		if (groups == sizeof glen / sizeof glen[0])
			return R_NONE;
		glen[groups++] = g;
		digits += g;
		if (g > longest)
			longest = g;
		end = j;
		/* another group? after a separator, or right after a ')' */
		c = at(s, j);
		if (c == NEED)
			return R_MORE;
		if (c == ' ' || c == '-') {
			int c2 = at(s, j + 1);
			if (c2 == NEED)
				return R_MORE;
			if (c2 >= 0 && (is_digit(c2) || c2 == '(')) {
				j++;
				seps++;
				continue;
			}
			break;
		}
		if (c == '(' || (c >= 0 && is_digit(c) && s->p[j - 1] == ')'))
			continue;
		break;
	}
	if (groups == 0)
		return R_NONE;
	c = at(s, end);
	if (c == NEED)
		return R_MORE;
	if (c >= 0 && is_alnum(c))
		return R_NONE;
	if (digits < 7 || digits > 15)
		return R_NONE;
	if (!plus) {
		if ((seps == 0 && !paren) || longest < 3)
			return R_NONE;
		/* "1914-1918", "12345-6789": two groups need 10 digits */
		if (!paren && groups < 3 && digits < 10)
			return R_NONE;
		if (!paren && groups == 3 && glen[1] == 2 &&
		    ((glen[0] == 4 && glen[2] == 2) || (glen[0] == 2 && glen[2] == 4)))
			return R_NONE;
	}
	h->len = end;
	return R_MATCH;
}

/* A run of hex digits (after an optional 0x) of hex_min or more, a whole word. */
static int
match_hex(const struct scan *s, size_t min, struct hit *h)
{
	size_t start = 0, end;
	int c = at(s, 0), c2;

	if (c == NEED)
		return R_MORE;
	if (c == '0') {
		if ((c2 = at(s, 1)) == NEED)
			return R_MORE;
		if (c2 == 'x' || c2 == 'X')
			start = 2;
	}
	int r = run(s, start, CL_HEX, &end);
	if (r == R_MORE)
		return R_MORE;
	if (r == R_NONE) {
		if ((c = at(s, end)) == NEED)
			return R_MORE;
		if (end - start < min || (c >= 0 && (is_alnum(c) || c == '_')))
			return R_NONE;
	}
	h->len = end;
	h->swallow = CL_HEX;
	return r == R_OPEN ? R_OPEN : R_MATCH;
}

/* A base64 run (standard or URL-safe, '=' padded) of base64_min or more with a capital, a small letter and a digit. */
static int
match_base64(const struct scan *s, size_t min, struct hit *h)
{
	size_t end;
	int r = run(s, 0, CL_B64, &end);
	if (r == R_MORE)
		return R_MORE;
	int up = 0, low = 0, dig = 0;
	for (size_t k = 0; k < end; k++) {
		up |= is_upper(s->p[k]);
		low |= is_lower(s->p[k]);
		dig |= is_digit(s->p[k]);
	}
	if (!(up && low && dig))
		return R_NONE;
	if (r == R_NONE) {
		size_t pad;
		int rp = run(s, end, CL_B64PAD, &pad);
		if (rp == R_MORE)
			return R_MORE;
		if (rp == R_NONE) {
			/* only '=' can follow the run: it is the padding */
			if (pad < min)
				return R_NONE;
			h->len = pad;
			return R_MATCH;
		}
		h->len = pad;
		h->swallow = CL_B64PAD;
		return R_OPEN;
	}
	h->len = end;
	h->swallow = CL_B64PAD;
	return R_OPEN;
}

/* Tries every kind at the start of s, in order: the first that matches wins. */
static int
scan_at(const struct redact_cfg *c, const struct scan *s, struct hit *h)
{
	/* every kind starts a word */
	if (is_alnum(s->prev))
		return R_NONE;
	for (int k = 0; k < REDACT_NKINDS; k++) {
		if (!(c->kinds & (1u << k)))
			continue;
		int r;
		h->kind = k;
		h->keep = 0;
		h->swallow = CL_NONE;
		switch (k) {
		case REDACT_KEY:
			r = match_key(s, h);
			break;
		case REDACT_BEARER:
			r = match_bearer(s, h);
			break;
		case REDACT_EMAIL:
			r = email_local(s->prev) ? R_NONE : match_email(s, h);
			break;
		case REDACT_PHONE:
			r = s->prev == '+' ? R_NONE : match_phone(s, h);
			break;
		case REDACT_HEX:
			r = match_hex(s, c->hex_min, h);
			break;
		default:
			r = cls_has(CL_B64, s->prev) ? R_NONE : match_base64(s, c->base64_min, h);
			break;
		}
		if (r != R_NONE)
			return r;
	}
	return R_NONE;
}

/*
 * Scans n bytes of p, passing what is decided to out; with at_end,
 * everything is decided.  Returns how many bytes were decided (the rest
 * must be scanned again with more text), or (size_t)-1: no memory.
 */
static size_t
redact_scan(const struct redact_cfg *c, struct redact_stream *s, const char *text,
    size_t n, int at_end, struct tbuf *out)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0, raw = 0; /* p[raw, i) is let through as it is */

	while (i < n) {
		if (s->swallow != CL_NONE) {
			if (cls_has(s->swallow, p[i])) {
				s->prev = p[i++];
				raw = i;
				continue;
			}
			s->swallow = CL_NONE;
		}
		struct scan sc = { p + i, n - i, at_end, s->prev };
		struct hit h;
		int r = scan_at(c, &sc, &h);
		if (r == R_MORE)
			break;
		if (r == R_NONE) {
			s->prev = p[i++];
			continue;
		}
		if (tbuf_put(out, text + raw, i - raw + h.keep) != 0 ||
		    tbuf_put(out, c->mask[h.kind], c->mask_len[h.kind]) != 0)
			return (size_t)-1;
		i += h.len;
		s->prev = p[i - 1];
		raw = i;
		if (r == R_OPEN)
			s->swallow = h.swallow;
	}
	if (tbuf_put(out, text + raw, i - raw) != 0)
		return (size_t)-1;
	return i;
}

int
redact_feed(const struct redact_cfg *c, struct redact_stream *s, const char *in,
    size_t len, struct tbuf *out)
{
	size_t done;

	if (len == 0)
		return 0;
	if (s->pend.len == 0) {
		/* nothing held back: scan the piece where it is, keep its tail */
		if ((done = redact_scan(c, s, in, len, 0, out)) == (size_t)-1)
			return -1;
		return tbuf_put(&s->pend, in + done, len - done);
	}
	if (tbuf_put(&s->pend, in, len) != 0)
		return -1;
	if ((done = redact_scan(c, s, s->pend.p, s->pend.len, 0, out)) == (size_t)-1)
		return -1;
	tbuf_consume(&s->pend, done);
	return 0;
}

int
redact_finish(const struct redact_cfg *c, struct redact_stream *s, struct tbuf *out)
{
	size_t done = 0;
	if (s->pend.len > 0)
		done = redact_scan(c, s, s->pend.p, s->pend.len, 1, out);
	s->pend.len = 0;
	s->prev = 0;
	s->swallow = CL_NONE;
	return done == (size_t)-1 ? -1 : 0;
}

void
redact_stream_reset(struct redact_stream *s)
{
	s->pend.len = 0;
	s->prev = 0;
	s->swallow = CL_NONE;
}

void
redact_stream_clear(struct redact_stream *s)
{
	tbuf_free(&s->pend);
	memset(s, 0, sizeof *s);
}

int
redact_whole(const struct redact_cfg *c, const char *in, size_t len, struct tbuf *out)
{
	/* the stream's own scanner, told the text is complete */
	struct redact_stream s = { { 0 }, 0, 0 };
	return redact_scan(c, &s, in, len, 1, out) == (size_t)-1 ? -1 : 0;
}
