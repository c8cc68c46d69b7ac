/*
 * cond.c -- the condition language: a recursive-descent compiler to a
 * small tree, and an evaluator that walks it.
 *
 *   expr    := and ('or' and)*
 *   and     := not ('and' not)*
 *   not     := 'not' not | cmp
 *   cmp     := operand [ op operand | ['not'] 'in' '(' literal (',' literal)* ')' ]
 *   op      := '==' | '!=' | '<' | '<=' | '>' | '>='
 *   operand := name | 'string' | "string" | number | true | false
 *            | function '(' [expr (',' expr)*] ')' | '(' expr ')'
 *
 * Evaluation reads the message through struct cond_input and allocates
 * nothing: a number shown as a string uses a buffer in the value.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond.h"
#include "util.h"

enum node_kind {
	N_OR, N_AND, N_NOT, N_CMP, N_IN,
	N_STR, N_NUM, N_BOOL, N_META, N_TEXT, N_SESSION, N_FN,
};

enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

enum fn_id { FN_LENGTH, FN_WORDS, FN_HAS, FN_STARTS, FN_ENDS, FN_CONTAINS };

static const struct fn_def {
	const char *name;
	int arity;
} fns[] = {
	[FN_LENGTH] = { "length", 1 },
	[FN_WORDS] = { "words", 1 },
	[FN_HAS] = { "has", 1 },
	[FN_STARTS] = { "starts_with", 2 },
	[FN_ENDS] = { "ends_with", 2 },
	[FN_CONTAINS] = { "contains", 2 },
};
#define N_FNS (sizeof fns / sizeof fns[0])

struct node {
	enum node_kind kind;
	int op;                       /* N_CMP: enum cmp_op; N_FN: enum fn_id; N_IN: negated */
	struct node *a, *b;           /* operands; N_FN: its arguments a (and b) */
	struct node **list;           /* N_IN: the literals */
	size_t n_list;
	char *s;                      /* N_STR: the string; N_META: the key */
	size_t len;                   /* N_STR: its bytes; N_IN: 1 when every literal is a string */
	double num;                   /* N_NUM; N_BOOL: 0 or 1 */
};

struct cond {
	struct node *root;
	char *src;
};

/* ---- values ------------------------------------------------------------- */

enum vkind { V_STR, V_NUM, V_BOOL };

struct val {
	enum vkind kind;
	const char *s;
	size_t len;
	double num;
	char buf[32];                 /* a number shown as a string */
};

/* A string that reads wholly as a decimal number: 1, -2.5, 1e3. */
static int
as_number(const char *s, size_t len, double *out)
{
	char tmp[64];
	if (len == 0 || len >= sizeof tmp)
		return 0;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	char *end;
	double v = strtod(tmp, &end);
	if (*end != '\0' || isspace((unsigned char)tmp[0]) || !isfinite(v))
		return 0;
	*out = v;
	return 1;
}

static int
truthy(const struct val *v)
{
	switch (v->kind) {
	case V_BOOL:
	case V_NUM:
		return v->num != 0;
	case V_STR:
		return v->len > 0;
	}
	return 0;
}

/* The string form of v (numbers as %g, booleans as true/false). */
static void
as_string(struct val *v, const char **s, size_t *len)
{
	if (v->kind == V_STR) {
		*s = v->s;
		*len = v->len;
		return;
	}
	if (v->kind == V_BOOL)
		snprintf(v->buf, sizeof v->buf, "%s", v->num != 0 ? "true" : "false");
	else
		snprintf(v->buf, sizeof v->buf, "%.17g", v->num);
	*s = v->buf;
	*len = strlen(v->buf);
}

/* Numeric when both read as numbers; 0 when they cannot be compared so. */
static int
both_numbers(const struct val *a, const struct val *b, double *x, double *y)
{
	if (a->kind != V_NUM && b->kind != V_NUM)
		return 0; /* two strings compare as bytes, and are not parsed */
	if (a->kind == V_NUM)
		*x = a->num;
	else if (a->kind != V_STR || !as_number(a->s, a->len, x))
		return 0;
	if (b->kind == V_NUM)
		*y = b->num;
	else if (b->kind != V_STR || !as_number(b->s, b->len, y))
		return 0;
	return 1;
}

static int
equal(struct val *a, struct val *b)
{
	double x, y;
	if (both_numbers(a, b, &x, &y))
		return x == y;
	if (a->kind == V_BOOL || b->kind == V_BOOL)
		return truthy(a) == truthy(b);
	const char *s, *t;
	size_t sl, tl;
	as_string(a, &s, &sl);
	as_string(b, &t, &tl);
	return sl == tl && memcmp(s, t, sl) == 0;
}

static size_t
count_words(const char *s, size_t len)
{
	size_t n = 0;
	int in = 0;
	for (size_t i = 0; i < len; i++) {
		int sp = s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
		    s[i] == '\f' || s[i] == '\v';
		if (!sp && !in)
			n++;
		in = !sp;
	}
	return n;
}

static void eval(const struct node *n, const struct cond_input *in, struct val *out);

/* The bytes of a node that is a string as it stands, without a struct val:
 * the common case, evaluated once per message per condition.  0: not one. */
/* always inlined: it is most of what a condition does per message */
static inline __attribute__((always_inline)) int
leaf_str(const struct node *n, const struct cond_input *in, const char **s, size_t *len)
{
	const char *v;
	switch (n->kind) {
	case N_STR:
		*s = n->s;
		*len = n->len;
		return 1;
	case N_TEXT:
		*s = in->text != NULL ? in->text : "";
		*len = in->text != NULL ? in->text_len : 0;
		return 1;
	case N_SESSION:
		*s = in->session != NULL ? in->session : "";
		*len = strlen(*s);
		return 1;
	case N_META:
		v = in->meta != NULL ? in->meta(in->ctx, n->s) : NULL;
		*s = v != NULL ? v : "";
		*len = v != NULL ? strlen(v) : 0;
		return 1;
	default:
		return 0;
	}
}

/* The string form of any node; buf holds a number's. */
static void
str_of(const struct node *n, const struct cond_input *in, struct val *buf, const char **s,
    size_t *len)
{
	if (leaf_str(n, in, s, len))
		return;
	eval(n, in, buf);
	as_string(buf, s, len);
}

/* A node that is a number without a struct val (a literal, length or
 * words).  0: not one of those. */
static inline __attribute__((always_inline)) int
leaf_num(const struct node *n, const struct cond_input *in, double *out)
{
	const char *s;
	size_t len;
	if (n->kind == N_NUM) {
		*out = n->num;
		return 1;
	}
	if (n->kind == N_FN && (n->op == FN_LENGTH || n->op == FN_WORDS) &&
	    leaf_str(n->a, in, &s, &len)) {
		*out = (double)(n->op == FN_LENGTH ? len : count_words(s, len));
		return 1;
	}
	return 0;
}

static int
test(const struct node *n, const struct cond_input *in)
{
	double x, y;
	switch (n->kind) {
	case N_OR:
		return test(n->a, in) || test(n->b, in);
	case N_AND:
		return test(n->a, in) && test(n->b, in);
	case N_NOT:
		return !test(n->a, in);
	case N_CMP:
		if (leaf_num(n->a, in, &x) && leaf_num(n->b, in, &y)) {
			switch ((enum cmp_op)n->op) {
			case OP_EQ: return x == y;
			case OP_NE: return x != y;
			case OP_LT: return x < y;
			case OP_LE: return x <= y;
			case OP_GT: return x > y;
			case OP_GE: return x >= y;
			}
		}
		break;
	case N_FN:
		if (n->op == FN_STARTS || n->op == FN_ENDS || n->op == FN_CONTAINS) {
			const char *s, *t;
			size_t sl, tl;
			if (leaf_str(n->a, in, &s, &sl) && leaf_str(n->b, in, &t, &tl)) {
				if (tl > sl)
					return 0;
				if (n->op == FN_STARTS)
					return memcmp(s, t, tl) == 0;
				if (n->op == FN_ENDS)
					return memcmp(s + sl - tl, t, tl) == 0;
				return tl == 0 || memmem(s, sl, t, tl) != NULL;
			}
		} else if (n->op == FN_HAS) {
			return in->meta != NULL && in->meta(in->ctx, n->a->s) != NULL;
		}
		break;
	case N_IN:
		if (n->len) { /* every literal a string: bytes against bytes */
			const char *s;
			size_t len;
			if (leaf_str(n->a, in, &s, &len)) {
				int found = 0;
				for (size_t i = 0; i < n->n_list && !found; i++)
					found = n->list[i]->len == len &&
					    memcmp(n->list[i]->s, s, len) == 0;
				return found != n->op;
			}
		}
		break;
	default:
		break;
	}
	struct val v;
	eval(n, in, &v);
	return truthy(&v);
}

static void
eval_fn(const struct node *n, const struct cond_input *in, struct val *out)
{
	struct val a, b;
	const char *s, *t;
	size_t sl, tl;
	out->kind = V_BOOL;
	switch ((enum fn_id)n->op) {
	case FN_HAS:
		/* compiled so that a is the key as a name or a string */
		out->num = in->meta != NULL && in->meta(in->ctx, n->a->s) != NULL;
		return;
	case FN_LENGTH:
	case FN_WORDS:
		str_of(n->a, in, &a, &s, &sl);
		out->kind = V_NUM;
		out->num = (double)(n->op == FN_LENGTH ? sl : count_words(s, sl));
		return;
	case FN_STARTS:
	case FN_ENDS:
	case FN_CONTAINS:
		str_of(n->a, in, &a, &s, &sl);
		str_of(n->b, in, &b, &t, &tl);
		if (tl > sl)
			out->num = 0;
		else if (n->op == FN_STARTS)
			out->num = memcmp(s, t, tl) == 0;
		else if (n->op == FN_ENDS)
			out->num = memcmp(s + sl - tl, t, tl) == 0;
		else
			out->num = tl == 0 || memmem(s, sl, t, tl) != NULL;
		return;
	}
	out->num = 0;
}

static void
eval(const struct node *n, const struct cond_input *in, struct val *out)
{
	struct val a, b;
	double x, y;
	switch (n->kind) {
	case N_OR:
		out->kind = V_BOOL;
		out->num = test(n->a, in) || test(n->b, in);
		return;
	case N_AND:
		out->kind = V_BOOL;
		out->num = test(n->a, in) && test(n->b, in);
		return;
	case N_NOT:
		out->kind = V_BOOL;
		out->num = !test(n->a, in);
		return;
	case N_CMP:
		eval(n->a, in, &a);
		eval(n->b, in, &b);
		out->kind = V_BOOL;
		if (n->op == OP_EQ || n->op == OP_NE) {
			out->num = equal(&a, &b) == (n->op == OP_EQ);
			return;
		}
		if (!both_numbers(&a, &b, &x, &y)) {
			out->num = 0;
			return;
		}
		out->num = n->op == OP_LT ? x < y : n->op == OP_LE ? x <= y :
		    n->op == OP_GT ? x > y : x >= y;
		return;
	case N_IN:
		eval(n->a, in, &a);
		out->kind = V_BOOL;
		out->num = 0;
		for (size_t i = 0; i < n->n_list && out->num == 0; i++) {
			eval(n->list[i], in, &b);
			out->num = equal(&a, &b);
		}
		if (n->op)
			out->num = !out->num;
		return;
	case N_STR:
		out->kind = V_STR;
		out->s = n->s;
		out->len = n->len;
		return;
	case N_NUM:
	case N_BOOL:
		out->kind = n->kind == N_NUM ? V_NUM : V_BOOL;
		out->num = n->num;
		return;
	case N_META: {
		const char *v = in->meta != NULL ? in->meta(in->ctx, n->s) : NULL;
		out->kind = V_STR;
		out->s = v != NULL ? v : "";
		out->len = v != NULL ? strlen(v) : 0;
		return;
	}
	case N_TEXT:
		out->kind = V_STR;
		out->s = in->text != NULL ? in->text : "";
		out->len = in->text != NULL ? in->text_len : 0;
		return;
	case N_SESSION:
		out->kind = V_STR;
		out->s = in->session != NULL ? in->session : "";
		out->len = strlen(out->s);
		return;
	case N_FN:
		eval_fn(n, in, out);
		return;
	}
}

int
cond_eval(const struct cond *c, const struct cond_input *in)
{
	return test(c->root, in);
}

/* ---- the compiler ------------------------------------------------------- */

enum tok_kind {
	T_END, T_NAME, T_STR, T_NUM, T_LPAREN, T_RPAREN, T_COMMA, T_OP, T_BAD,
};

struct parser {
	const char *src;
	size_t pos;                   /* of the current token */
	enum tok_kind tok;
	size_t tok_len;               /* bytes of the current token in src */
	int op;                       /* T_OP: enum cmp_op */
	struct cond_error *err;
	int failed;
};

static struct node *
node_new(enum node_kind kind)
{
	struct node *n = xcalloc(1, sizeof *n);
	n->kind = kind;
	return n;
}

static void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	node_free(n->a);
	node_free(n->b);
	for (size_t i = 0; i < n->n_list; i++)
		node_free(n->list[i]);
	free(n->list);
	free(n->s);
	free(n);
}

static void
fail_at(struct parser *p, size_t at, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = 1;
	p->err->offset = at;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
	va_end(ap);
}

static int
name_start(int ch)
{
	return isalpha(ch) || ch == '_';
}

static int
name_char(int ch)
{
	return isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
}

/* Reads the token at p->pos (after blanks). */
static void
lex(struct parser *p)
{
	const char *s = p->src;
	while (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r')
		p->pos++;
	const char *at = s + p->pos;
	p->tok_len = 1;
	switch (*at) {
	case '\0':
		p->tok = T_END;
		p->tok_len = 0;
		return;
	case '(':
		p->tok = T_LPAREN;
		return;
	case ')':
		p->tok = T_RPAREN;
		return;
	case ',':
		p->tok = T_COMMA;
		return;
	case '=':
	case '!':
		if (at[1] == '=') {
			p->tok = T_OP;
			p->op = *at == '=' ? OP_EQ : OP_NE;
			p->tok_len = 2;
			return;
		}
		p->tok = T_BAD;
		return;
	case '<':
	case '>':
		p->tok = T_OP;
		p->op = *at == '<' ? (at[1] == '=' ? OP_LE : OP_LT) : (at[1] == '=' ? OP_GE : OP_GT);
		p->tok_len = at[1] == '=' ? 2 : 1;
		return;
	case '\'':
	case '"': {
		size_t i = 1;
		while (at[i] != '\0' && at[i] != *at)
			i += at[i] == '\\' && at[i + 1] != '\0' ? 2 : 1;
		if (at[i] == '\0') {
			p->tok = T_BAD;
			p->tok_len = i;
			fail_at(p, p->pos, "this string has no closing %c", *at);
			return;
		}
		p->tok = T_STR;
		p->tok_len = i + 1;
		return;
	}
	default:
		break;
	}
	if (isdigit((unsigned char)*at) || (*at == '-' && isdigit((unsigned char)at[1])) ||
	    (*at == '.' && isdigit((unsigned char)at[1]))) {
		char *end;
		(void)strtod(at, &end);
		p->tok = T_NUM;
		p->tok_len = (size_t)(end - at);
		if (name_char((unsigned char)*end)) {
			p->tok = T_BAD;
			fail_at(p, p->pos, "'%.*s' is not a number", (int)(p->tok_len + 1), at);
		}
		return;
	}
	if (name_start((unsigned char)*at)) {
		size_t i = 1;
		while (name_char((unsigned char)at[i]))
			i++;
		p->tok = T_NAME;
		p->tok_len = i;
		return;
	}
	p->tok = T_BAD;
}

static void
advance(struct parser *p)
{
	p->pos += p->tok_len;
	lex(p);
}

static int
is_word(const struct parser *p, const char *w)
{
	return p->tok == T_NAME && p->tok_len == strlen(w) &&
	    memcmp(p->src + p->pos, w, p->tok_len) == 0;
}

/* What the current token is, for messages: "'foo'", "the end". */
static const char *
what(const struct parser *p, char *buf, size_t len)
{
	if (p->tok == T_END)
		return "the end";
	snprintf(buf, len, "'%.*s'", (int)(p->tok_len > 24 ? 24 : p->tok_len), p->src + p->pos);
	return buf;
}

static void
expected(struct parser *p, const char *what_expected)
{
	char buf[40];
	fail_at(p, p->pos, "expected %s, found %s", what_expected, what(p, buf, sizeof buf));
}

static struct node *parse_or(struct parser *p);

static int
keyword(const struct parser *p)
{
	static const char *const kw[] = { "and", "or", "not", "in", NULL };
	for (size_t i = 0; kw[i] != NULL; i++)
		if (is_word(p, kw[i]))
			return 1;
	return 0;
}

static struct node *
parse_string(struct parser *p)
{
	struct node *n = node_new(N_STR);
	const char *at = p->src + p->pos;
	n->s = xmalloc(p->tok_len);
	for (size_t i = 1; i + 1 < p->tok_len; i++) {
		if (at[i] == '\\')
			i++;
		n->s[n->len++] = at[i];
	}
	n->s[n->len] = '\0';
	advance(p);
	return n;
}

static struct node *
parse_call(struct parser *p, size_t name_at, size_t name_len)
{
	const char *name = p->src + name_at;
	size_t f;
	for (f = 0; f < N_FNS; f++)
		if (strlen(fns[f].name) == name_len && memcmp(fns[f].name, name, name_len) == 0)
			break;
	if (f == N_FNS) {
		fail_at(p, name_at, "unknown function '%.*s' (the functions are length, words, "
		    "has, starts_with, ends_with and contains)", (int)name_len, name);
		return NULL;
	}
	advance(p); /* '(' */
	struct node *n = node_new(N_FN);
	n->op = (int)f;
	int argc = 0;
	size_t open_at = p->pos;
	while (!p->failed && p->tok != T_RPAREN) {
		if (argc > 0) {
			if (p->tok != T_COMMA) {
				expected(p, "',' or ')'");
				break;
			}
			advance(p);
		}
		size_t arg_at = p->pos;
		struct node *arg;
		if (f == FN_HAS && argc == 0 && (p->tok == T_NAME || p->tok == T_STR)) {
			/* has(key): the key itself, not its value */
			if (p->tok == T_STR) {
				arg = parse_string(p);
			} else {
				arg = node_new(N_META);
				arg->s = xstrndup(p->src + p->pos, p->tok_len);
				advance(p);
			}
		} else if (f == FN_HAS && argc == 0) {
			expected(p, "a metadata key");
			break;
		} else {
			arg = parse_or(p);
		}
		if (arg == NULL)
			break;
		if (argc >= fns[f].arity) {
			node_free(arg);
			fail_at(p, arg_at, "%s() takes %d argument%s", fns[f].name, fns[f].arity,
			    fns[f].arity == 1 ? "" : "s");
			break;
		}
		if (argc == 0)
			n->a = arg;
		else
			n->b = arg;
		argc++;
	}
	if (!p->failed && argc < fns[f].arity)
		fail_at(p, open_at, "%s() takes %d argument%s", fns[f].name, fns[f].arity,
		    fns[f].arity == 1 ? "" : "s");
	if (p->failed) {
		node_free(n);
		return NULL;
	}
	advance(p); /* ')' */
	return n;
}

static struct node *
parse_operand(struct parser *p)
{
	struct node *n;
	switch (p->tok) {
	case T_STR:
		return parse_string(p);
	case T_NUM:
		n = node_new(N_NUM);
		n->num = strtod(p->src + p->pos, NULL);
		advance(p);
		return n;
	case T_LPAREN: {
		size_t open_at = p->pos;
		advance(p);
		n = parse_or(p);
		if (n == NULL)
			return NULL;
		if (p->tok != T_RPAREN) {
			char buf[40];
			size_t rest = strlen(p->src + open_at);
			fail_at(p, p->pos, "expected ')' to close '%.*s%s', found %s",
			    (int)(rest > 16 ? 16 : rest), p->src + open_at, rest > 16 ? "..." : "",
			    what(p, buf, sizeof buf));
			node_free(n);
			return NULL;
		}
		advance(p);
		return n;
	}
	case T_NAME: {
		if (keyword(p)) {
			expected(p, "a value (a metadata key, a 'string', a number or a function)");
			return NULL;
		}
		size_t at = p->pos, len = p->tok_len;
		const char *name = p->src + at;
		advance(p);
		if (p->tok == T_LPAREN)
			return parse_call(p, at, len);
		if (len == 4 && memcmp(name, "text", 4) == 0)
			return node_new(N_TEXT);
		if (len == 7 && memcmp(name, "session", 7) == 0)
			return node_new(N_SESSION);
		if ((len == 4 && memcmp(name, "true", 4) == 0) ||
		    (len == 5 && memcmp(name, "false", 5) == 0)) {
			n = node_new(N_BOOL);
			n->num = len == 4;
			return n;
		}
		n = node_new(N_META);
		n->s = xstrndup(name, len);
		return n;
	}
	default:
		expected(p, "a value (a metadata key, a 'string', a number or a function)");
		return NULL;
	}
}

static struct node *
parse_in(struct parser *p, struct node *left, int negated)
{
	struct node *n = node_new(N_IN);
	n->a = left;
	n->op = negated;
	n->len = 1; /* every literal a string, until a number comes */
	if (p->tok != T_LPAREN) {
		expected(p, "'(' and a list of values after 'in'");
		node_free(n);
		return NULL;
	}
	advance(p);
	for (;;) {
		if (p->tok != T_STR && p->tok != T_NUM) {
			expected(p, "a 'string' or a number in the list");
			node_free(n);
			return NULL;
		}
		if (p->tok == T_NUM)
			n->len = 0;
		n->list = xrealloc(n->list, (n->n_list + 1) * sizeof *n->list);
		n->list[n->n_list++] = parse_operand(p);
		if (p->tok == T_RPAREN)
			break;
		if (p->tok != T_COMMA) {
			expected(p, "',' or ')' in the list");
			node_free(n);
			return NULL;
		}
		advance(p);
	}
	advance(p);
	return n;
}

static struct node *
parse_cmp(struct parser *p)
{
	struct node *left = parse_operand(p);
	if (left == NULL)
		return NULL;
	if (p->tok == T_OP) {
		struct node *n = node_new(N_CMP);
		n->op = p->op;
		n->a = left;
		advance(p);
		if ((n->b = parse_operand(p)) == NULL) {
			node_free(n);
			return NULL;
		}
		return n;
	}
	if (is_word(p, "in")) {
		advance(p);
		return parse_in(p, left, 0);
	}
	if (is_word(p, "not")) {
		size_t not_at = p->pos;
		advance(p);
		if (!is_word(p, "in")) {
			fail_at(p, not_at, "expected 'in' after 'not' here (or 'and'/'or' "
			    "before it)");
			node_free(left);
			return NULL;
		}
		advance(p);
		return parse_in(p, left, 1);
	}
	return left;
}

static struct node *
parse_not(struct parser *p)
{
	if (is_word(p, "not")) {
		advance(p);
		struct node *a = parse_not(p);
		if (a == NULL)
			return NULL;
		struct node *n = node_new(N_NOT);
		n->a = a;
		return n;
	}
	return parse_cmp(p);
}

static struct node *
parse_binary(struct parser *p, const char *word, enum node_kind kind,
    struct node *(*sub)(struct parser *))
{
	struct node *left = sub(p);
	while (left != NULL && is_word(p, word)) {
		advance(p);
		struct node *right = sub(p);
		if (right == NULL) {
			node_free(left);
			return NULL;
		}
		struct node *n = node_new(kind);
		n->a = left;
		n->b = right;
		left = n;
	}
	return left;
}

static struct node *
parse_and(struct parser *p)
{
	return parse_binary(p, "and", N_AND, parse_not);
}

static struct node *
parse_or(struct parser *p)
{
	return parse_binary(p, "or", N_OR, parse_and);
}

struct cond *
cond_compile(const char *src, struct cond_error *err)
{
	struct parser p = { .src = src, .err = err };
	err->offset = 0;
	err->msg[0] = '\0';
	lex(&p);
	if (p.tok == T_END) {
		fail_at(&p, 0, "the condition is empty");
		return NULL;
	}
	struct node *root = parse_or(&p);
	if (root != NULL && !p.failed && p.tok != T_END) {
		if (p.tok == T_BAD) {
			char buf[40];
			fail_at(&p, p.pos, "unexpected %s (the operators are == != < <= > >=, "
			    "in, and, or, not)", what(&p, buf, sizeof buf));
		} else {
			expected(&p, "'and', 'or', or the end of the condition");
		}
	}
	if (p.failed || root == NULL) {
		if (!p.failed)
			fail_at(&p, p.pos, "not a condition");
		node_free(root);
		return NULL;
	}
	struct cond *c = xcalloc(1, sizeof *c);
	c->root = root;
	c->src = xstrdup(src);
	return c;
}

void
cond_free(struct cond *c)
{
	if (c == NULL)
		return;
	node_free(c->root);
	free(c->src);
	free(c);
}

const char *
cond_source(const struct cond *c)
{
	return c->src;
}

/* Does n read the message (its text, session or metadata)? */
static int
reads_message(const struct node *n)
{
	if (n == NULL)
		return 0;
	if (n->kind == N_META || n->kind == N_TEXT || n->kind == N_SESSION)
		return 1;
	if (n->kind == N_FN && n->op == FN_HAS)
		return 1;
	for (size_t i = 0; i < n->n_list; i++)
		if (reads_message(n->list[i]))
			return 1;
	return reads_message(n->a) || reads_message(n->b);
}

int
cond_constant(const struct cond *c)
{
	if (reads_message(c->root))
		return -1;
	struct cond_input none = { 0 };
	return cond_eval(c, &none);
}
