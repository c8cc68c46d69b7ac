/* template.c -- prompt templates: compile into segments, render without allocating. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tbuf.h"
#include "template.h"

enum tpl_op {
	OP_LIT,    /* pool[off, off + len) */
	OP_VAR,    /* the value of var (meta: key at pool + off) */
	OP_IF,     /* when var is empty, jump to segment `end` */
	OP_IFNOT,  /* when var is not empty, jump to segment `end` */
	OP_END,    /* closes a section */
};

struct tpl_seg {
	unsigned char op;
	unsigned char var;
	size_t off, len;
	size_t end;
};

static const char tpl_known[] =
    "known: {{input}}, {{context}}, {{session}}, {{meta.KEY}}";

/* Fills *err for the problem at src[off]. */
static void
tpl_fail(struct tpl_error *err, const char *src, size_t off, const char *hint,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
tpl_fail(struct tpl_error *err, const char *src, size_t off, const char *hint,
    const char *fmt, ...)
{
	va_list ap;
	err->offset = off;
	err->line = 1;
	err->col = 1;
	for (size_t i = 0; i < off; i++) {
		if (src[i] == '\n') {
			err->line++;
			err->col = 1;
		} else {
			err->col++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(err->what, sizeof err->what, fmt, ap);
	va_end(ap);
	snprintf(err->hint, sizeof err->hint, "%s", hint);
}

/* A placeholder as the user wrote it, cut to a readable length. */
static void
tpl_quote(char *dst, size_t cap, const char *s, size_t len)
{
	if (len > 40)
		snprintf(dst, cap, "%.*s...", 36, s);
	else
		snprintf(dst, cap, "%.*s", (int)len, s);
}

/*
 * Parses a name (input, context, session, meta.KEY) of n bytes: 0 and *var,
 * with a meta key at name + 5; -1 if it is none of these.
 */
static int
tpl_name(const char *name, size_t n, unsigned char *var)
{
	if (n == 5 && memcmp(name, "input", 5) == 0)
		*var = TPL_INPUT;
	else if (n == 7 && memcmp(name, "context", 7) == 0)
		*var = TPL_CONTEXT;
	else if (n == 7 && memcmp(name, "session", 7) == 0)
		*var = TPL_SESSION;
	else if (n > 5 && memcmp(name, "meta.", 5) == 0) {
		for (size_t i = 5; i < n; i++)
			if (text_space((unsigned char)name[i]) || name[i] == '{' ||
			    name[i] == '}')
				return -1;
		*var = TPL_META;
	} else
		return -1;
	return 0;
}

struct tpl_build {
	struct tbuf pool;
	struct tbuf seg;  /* struct tpl_seg[] */
	int in_lit;       /* the last segment is a literal we may extend */
};

static struct tpl_seg *
tpl_seg_at(struct tpl_build *b, size_t i)
{
	return (struct tpl_seg *)(void *)b->seg.p + i;
}

static size_t
tpl_nseg(const struct tpl_build *b)
{
	return b->seg.len / sizeof(struct tpl_seg);
}

static int
tpl_add(struct tpl_build *b, unsigned char op, unsigned char var, size_t off,
    size_t len)
{
	struct tpl_seg s = { op, var, off, len, 0 };
	b->in_lit = op == OP_LIT;
	return tbuf_put(&b->seg, (const char *)&s, sizeof s);
}

static int
tpl_lit(struct tpl_build *b, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (b->in_lit) {
		if (tbuf_put(&b->pool, s, n) != 0)
			return -1;
		tpl_seg_at(b, tpl_nseg(b) - 1)->len += n;
		return 0;
	}
	size_t off = b->pool.len;
	if (tbuf_put(&b->pool, s, n) != 0)
		return -1;
	return tpl_add(b, OP_LIT, 0, off, n);
}

/* Adds a meta key to the pool, NUL-terminated; its offset in *off. */
static int
tpl_key(struct tpl_build *b, const char *key, size_t n, size_t *off)
{
	*off = b->pool.len;
	if (tbuf_put(&b->pool, key, n) != 0 || tbuf_putc(&b->pool, '\0') != 0)
		return -1;
	b->in_lit = 0; /* a literal must not grow over the key */
	return 0;
}

int
tpl_compile(struct tpl *t, const char *src, size_t len, struct tpl_error *err)
{
	struct tpl_build b = { { 0 }, { 0 }, 0 };
	/* open sections: segment index, source offset */
	size_t open_seg[32], open_off[32], n_open = 0;
	size_t i = 0, lit = 0;
	int rc = -1;
	char q[64];

	memset(t, 0, sizeof *t);
	while (i < len) {
		if (!(src[i] == '{' && i + 1 < len && src[i + 1] == '{')) {
			i++;
			continue;
		}
		/* the literal before it */
		if (tpl_lit(&b, src + lit, i - lit) != 0)
			goto oom;
		if (i + 3 < len && src[i + 2] == '{' && src[i + 3] == '{') {
			/* "{{{{": a literal "{{" */
			if (tpl_lit(&b, "{{", 2) != 0)
				goto oom;
			i += 4;
			lit = i;
			continue;
		}
		size_t start = i, j = i + 2;
		while (j + 1 < len && !(src[j] == '}' && src[j + 1] == '}'))
			j++;
		if (j + 1 >= len) {
			tpl_fail(err, src, start,
			    "close it with '}}', or write '{{{{' for a literal '{{'",
			    "unclosed '{{'");
			goto out;
		}
		size_t end = j + 2; /* past "}}" */
		const char *name = src + i + 2;
		size_t n = j - (i + 2);
		while (n > 0 && text_space((unsigned char)*name)) {
			name++;
			n--;
		}
		while (n > 0 && text_space((unsigned char)name[n - 1]))
			n--;
		char sigil = n > 0 && (*name == '#' || *name == '^' || *name == '/') ? *name : 0;
		const char *id = sigil ? name + 1 : name;
		size_t idn = sigil ? n - 1 : n;
		unsigned char var;
		tpl_quote(q, sizeof q, src + start, end - start);
		if (tpl_name(id, idn, &var) != 0) {
			tpl_fail(err, src, start, tpl_known, "unknown placeholder '%s'", q);
			goto out;
		}
		size_t off = 0;
		if (var == TPL_META && tpl_key(&b, id + 5, idn - 5, &off) != 0)
			goto oom;
		if (var == TPL_CONTEXT) {
			t->uses_context = 1;
			if (!sigil)
				t->n_context++;
		}
		if (sigil == '#' || sigil == '^') {
			if (n_open == sizeof open_seg / sizeof open_seg[0]) {
				tpl_fail(err, src, start, "", "sections nested too deep at '%s'", q);
				goto out;
			}
			open_seg[n_open] = tpl_nseg(&b);
			open_off[n_open++] = start;
			if (tpl_add(&b, sigil == '#' ? OP_IF : OP_IFNOT, var, off,
			    var == TPL_META ? idn - 5 : 0) != 0)
				goto oom;
		} else if (sigil == '/') {
			if (n_open == 0) {
				tpl_fail(err, src, start, "open sections with {{#NAME}} or {{^NAME}}",
				    "'%s' closes no section", q);
				goto out;
			}
			struct tpl_seg *o = tpl_seg_at(&b, open_seg[n_open - 1]);
			int same = o->var == var && (var != TPL_META ||
			    (o->len == idn - 5 && memcmp(b.pool.p + o->off, id + 5, idn - 5) == 0));
			if (!same) {
				char oq[64];
				size_t os = open_off[n_open - 1], oe = os;
				while (oe + 1 < len && !(src[oe] == '}' && src[oe + 1] == '}'))
					oe++;
				tpl_quote(oq, sizeof oq, src + os, oe + 2 - os);
				tpl_fail(err, src, start, "sections close in the order they open",
				    "'%s' does not close '%s'", q, oq);
				goto out;
			}
			n_open--;
			o->end = tpl_nseg(&b);
			if (tpl_add(&b, OP_END, var, 0, 0) != 0)
				goto oom;
		} else {
			if (tpl_add(&b, OP_VAR, var, off, var == TPL_META ? idn - 5 : 0) != 0)
				goto oom;
		}
		i = lit = end;
	}
	if (tpl_lit(&b, src + lit, len - lit) != 0)
		goto oom;
	if (n_open > 0) {
		size_t os = open_off[n_open - 1], oe = os;
		while (oe + 1 < len && !(src[oe] == '}' && src[oe + 1] == '}'))
			oe++;
		tpl_quote(q, sizeof q, src + os, oe + 2 - os);
		tpl_fail(err, src, os, "close it with {{/NAME}}", "section '%s' is not closed", q);
		goto out;
	}
	t->pool = b.pool.p;
	t->seg = (struct tpl_seg *)(void *)b.seg.p;
	t->n = tpl_nseg(&b);
	return 0;
oom:
	rc = -2;
out:
	tbuf_free(&b.pool);
	tbuf_free(&b.seg);
	memset(t, 0, sizeof *t);
	return rc;
}

/* The value of a variable; its length in *n. */
static const char *
tpl_value(const struct tpl *t, const struct tpl_seg *s, const struct tpl_vals *v,
    size_t *n)
{
	const char *p = NULL;
	switch (s->var) {
	case TPL_INPUT:
		*n = v->input_len;
		return v->input;
	case TPL_CONTEXT:
		*n = v->context_len;
		return v->context;
	case TPL_SESSION:
		*n = v->session_len;
		return v->session;
	default:
		if (v->meta != NULL)
			p = v->meta(v->meta_ctx, t->pool + s->off);
		if (p == NULL)
			p = "";
		*n = strlen(p);
		return p;
	}
}

size_t
tpl_render(const struct tpl *t, const struct tpl_vals *v, char *out)
{
	size_t total = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct tpl_seg *s = &t->seg[i];
		const char *p;
		size_t n;
		switch (s->op) {
		case OP_LIT:
			if (out != NULL)
				memcpy(out + total, t->pool + s->off, s->len);
			total += s->len;
			break;
		case OP_VAR:
			p = tpl_value(t, s, v, &n);
			if (out != NULL && n > 0)
				memcpy(out + total, p, n);
			total += n;
			break;
		case OP_IF:
		case OP_IFNOT:
			(void)tpl_value(t, s, v, &n);
			if ((s->op == OP_IF) == (n == 0))
				i = s->end; /* the loop steps past the OP_END */
			break;
		default:
			break;
		}
	}
	return total;
}

void
tpl_free(struct tpl *t)
{
	free(t->pool);
	free(t->seg);
	memset(t, 0, sizeof *t);
}

size_t
tpl_cut_context(const char *ctx, size_t len, size_t limit)
{
	if (len <= limit)
		return len;
	/* the last blank line that starts within the limit ends a passage */
	for (size_t p = limit; p > 0; p--) {
		if (p + 1 < len && ctx[p] == '\n' && ctx[p + 1] == '\n') {
			size_t k = p;
			while (k > 0 && ctx[k - 1] == '\n')
				k--;
			if (k > 0)
				return k;
			break;
		}
	}
	return utf8_cut(ctx, limit);
}
