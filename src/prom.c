/*
 * prom.c -- a reader of the Prometheus text exposition format, for porch
 * top (prom.h).  Not on any hot path: plain allocations, one line at a time.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"
#include "util.h"

static int
name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int
name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

static const char *
skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static char *
dup_n(const char *p, size_t n)
{
	char *s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void
sample_free(struct prom_sample *s)
{
	free(s->name);
	for (size_t i = 0; i < s->n_labels; i++) {
		free(s->labels[i].name);
		free(s->labels[i].value);
	}
	free(s->labels);
}

void
prom_free(struct prom_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		sample_free(&set->s[i]);
	free(set->s);
	for (size_t i = 0; i < set->n_types * 2; i++)
		free(set->types[i]);
	free(set->types);
	memset(set, 0, sizeof *set);
}

/* A label value from just after its opening quote; *pp ends after the
 * closing one.  NULL if it does not end on this line. */
static char *
label_value(const char **pp, const char *end)
{
	const char *p = *pp;
	char *v = xmalloc((size_t)(end - p) + 1);
	size_t n = 0;
	for (; p < end; p++) {
		if (*p == '"') {
			v[n] = '\0';
			*pp = p + 1;
			return v;
		}
		if (*p == '\\') {
			if (++p == end)
				break;
			v[n++] = *p == 'n' ? '\n' : *p;
		} else {
			v[n++] = *p;
		}
	}
	free(v);
	return NULL;
}

/* One sample line [p, end) into s; NULL, or why it is malformed. */
static const char *
parse_sample(const char *p, const char *end, struct prom_sample *s)
{
	const char *q = p;
	if (q == end || !name_start(*q))
		return "expected a metric name";
	while (q < end && name_char(*q))
		q++;
	s->name = dup_n(p, (size_t)(q - p));
	p = skip_blank(q, end);
	if (p == end || *p != '{') {
		p = q; /* no labels: the value's blank comes next */
	} else {
		p = skip_blank(p + 1, end);
		while (p < end && *p != '}') {
			q = p;
			if (!name_start(*q))
				return "expected a label name";
			while (q < end && name_char(*q))
				q++;
			const char *lname = p;
			size_t lnlen = (size_t)(q - p);
			p = skip_blank(q, end);
			if (p == end || *p != '=')
				return "expected '=' after a label name";
			p = skip_blank(p + 1, end);
			if (p == end || *p != '"')
				return "expected a quoted label value";
			p++;
			char *v = label_value(&p, end);
			if (v == NULL)
				return "unterminated label value";
			s->labels = xrealloc(s->labels, (s->n_labels + 1) * sizeof *s->labels);
			s->labels[s->n_labels].name = dup_n(lname, lnlen);
			s->labels[s->n_labels].value = v;
			s->n_labels++;
			p = skip_blank(p, end);
			if (p < end && *p == ',')
				p = skip_blank(p + 1, end);
			else if (p < end && *p != '}')
				return "expected ',' or '}' after a label";
		}
		if (p == end)
			return "unterminated label set";
		p++;
	}
	const char *v = skip_blank(p, end);
	if (v == p && v < end)
		return "expected a space before the value";
	q = v;
	while (q < end && *q != ' ' && *q != '\t')
		q++;
	if (q == v)
		return "expected a value";
	char num[64];
	size_t n = (size_t)(q - v);
	if (n >= sizeof num)
		return "the value is too long";
	memcpy(num, v, n);
	num[n] = '\0';
	char *e;
	s->value = strtod(num, &e);
	if (*e != '\0')
		return "the value is not a number";
	/* a timestamp may follow: an integer, ignored */
	p = skip_blank(q, end);
	if (p < end) {
		if (*p == '-')
			p++;
		const char *digits = p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == digits || skip_blank(p, end) != end)
			return "junk after the value";
	}
	return NULL;
}

/* "# TYPE NAME TYPE": kept; other comments are skipped. */
static void
parse_comment(const char *p, const char *end, struct prom_set *set)
{
	p = skip_blank(p + 1, end);
	if ((size_t)(end - p) < 5 || memcmp(p, "TYPE", 4) != 0 || (p[4] != ' ' && p[4] != '\t'))
		return;
	p = skip_blank(p + 4, end);
	const char *n = p;
	while (p < end && name_char(*p))
		p++;
	const char *nend = p;
	p = skip_blank(p, end);
	const char *t = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	if (nend == n || p == t)
		return;
	set->types = xrealloc(set->types, (set->n_types + 1) * 2 * sizeof(char *));
	set->types[set->n_types * 2] = dup_n(n, (size_t)(nend - n));
	set->types[set->n_types * 2 + 1] = dup_n(t, (size_t)(p - t));
	set->n_types++;
}

int
prom_parse(const char *text, size_t len, struct prom_set *set, char *err, size_t errlen)
{
	memset(set, 0, sizeof *set);
	const char *p = text, *end = text + len;
	unsigned line = 0;
	size_t cap = 0;
	while (p < end) {
		line++;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		const char *q = skip_blank(p, eol);
		const char *e = eol;
		while (e > q && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (q < e && *q == '#') {
			parse_comment(q, e, set);
		} else if (q < e) {
			if (set->n == cap) {
				cap = cap ? cap * 2 : 64;
				set->s = xrealloc(set->s, cap * sizeof *set->s);
			}
			struct prom_sample *s = &set->s[set->n];
			memset(s, 0, sizeof *s);
			const char *why = parse_sample(q, e, s);
			if (why != NULL) {
				snprintf(err, errlen, "line %u: %s", line, why);
				sample_free(s);
				prom_free(set);
				return -1;
			}
			set->n++;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}

const char *
prom_label(const struct prom_sample *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

const char *
prom_type(const struct prom_set *set, const char *name)
{
	for (size_t i = 0; i < set->n_types; i++)
		if (strcmp(set->types[2 * i], name) == 0)
			return set->types[2 * i + 1];
	return NULL;
}

/* The most label pairs a lookup takes. */
#define PROM_MAX_PAIRS 8

static const struct prom_sample *
find_v(const struct prom_set *set, const char *name, va_list ap)
{
	const char *pairs[PROM_MAX_PAIRS * 2];
	size_t n = 0;
	const char *k;
	while (n < PROM_MAX_PAIRS * 2 && (k = va_arg(ap, const char *)) != NULL) {
		pairs[n++] = k;
		pairs[n++] = va_arg(ap, const char *);
	}
	for (size_t i = 0; i < set->n; i++) {
		const struct prom_sample *s = &set->s[i];
		if (strcmp(s->name, name) != 0)
			continue;
		size_t j = 0;
		for (; j < n; j += 2) {
			const char *v = prom_label(s, pairs[j]);
			if (v == NULL || pairs[j + 1] == NULL || strcmp(v, pairs[j + 1]) != 0)
				break;
		}
		if (j == n)
			return s;
	}
	return NULL;
}

const struct prom_sample *
prom_find(const struct prom_set *set, const char *name, ...)
{
	va_list ap;
	va_start(ap, name);
	const struct prom_sample *s = find_v(set, name, ap);
	va_end(ap);
	return s;
}

double
prom_value(const struct prom_set *set, double dflt, const char *name, ...)
{
	va_list ap;
	va_start(ap, name);
	const struct prom_sample *s = find_v(set, name, ap);
	va_end(ap);
	return s != NULL ? s->value : dflt;
}

double
prom_quantile(double q, const double *le, const double *cum, size_t n)
{
	if (n == 0 || !(q > 0 && q < 1))
		return NAN;
	double total = cum[n - 1];
	if (!(total > 0))
		return NAN;
	double rank = q * total;
	size_t i = 0;
	while (i < n && cum[i] < rank)
		i++;
	if (i == n)
		i = n - 1;
	if (isinf(le[i]))
		return i > 0 ? le[i - 1] : NAN;
	double lo = i > 0 ? le[i - 1] : 0;
	double below = i > 0 ? cum[i - 1] : 0;
	double in = cum[i] - below;
	if (!(in > 0))
		return le[i];
	return lo + (le[i] - lo) * (rank - below) / in;
}
