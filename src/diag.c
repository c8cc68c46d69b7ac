/* diag.c -- compiler-style diagnostics: FILE:LINE:COL: error: MESSAGE. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "util.h"

void
diag_init(struct diag *d, const char *file, FILE *out)
{
	memset(d, 0, sizeof *d);
	d->file = file;
	d->out = out;
}

void
diag_set_text(struct diag *d, const char *text, size_t len)
{
	free(d->lines);
	d->lines = NULL;
	d->n_lines = 0;
	d->text = text;
	d->text_len = text ? len : 0;
	if (text == NULL)
		return;
	/* one pass up front: errors then map offsets to lines by bisection,
	 * so a large file with many errors is not rescanned for each */
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			n++;
	d->lines = xmalloc(n * sizeof *d->lines);
	d->lines[0] = 0;
	d->n_lines = 1;
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			d->lines[d->n_lines++] = i + 1;
}

void
diag_offset_pos(const struct diag *d, size_t off, int *line, int *col)
{
	if (d->lines == NULL) {
		*line = 1;
		*col = 1;
		return;
	}
	if (off > d->text_len)
		off = d->text_len;
	size_t lo = 0, hi = d->n_lines;   /* the answer is in [lo, hi) */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->lines[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	*line = (int)lo + 1;
	*col = (int)(off - d->lines[lo]) + 1;
}

size_t
diag_pos_offset(const struct diag *d, int line, int col)
{
	if (d->lines == NULL || line < 1 || (size_t)line > d->n_lines || col < 1)
		return (size_t)-1;
	size_t off = d->lines[line - 1] + (size_t)(col - 1);
	return off <= d->text_len ? off : (size_t)-1;
}

int
diag_column(const struct diag *d, int line, const char *token)
{
	if (d->text == NULL || line < 1 || token == NULL || *token == '\0')
		return 1;
	size_t start = diag_pos_offset(d, line, 1);
	if (start == (size_t)-1)
		return 1;
	const char *p = d->text + start, *end = d->text + d->text_len;
	const char *eol = memchr(p, '\n', (size_t)(end - p));
	if (eol == NULL)
		eol = end;
	size_t tl = strlen(token);
	for (const char *q = p; q + tl <= eol; q++)
		if (memcmp(q, token, tl) == 0)
			return (int)(q - p) + 1;
	return 1;
}

int
diag_find_back(const struct diag *d, int *line, int *col, int floor,
    const char *token)
{
	size_t at = diag_pos_offset(d, *line, *col);
	size_t lim = diag_pos_offset(d, floor < 1 ? 1 : floor, 1);
	size_t tl = strlen(token);
	if (at == (size_t)-1 || lim == (size_t)-1 || tl == 0)
		return 0;
	for (size_t q = at; q-- > lim;) {
		if (q + tl <= d->text_len && memcmp(d->text + q, token, tl) == 0) {
			diag_offset_pos(d, q, line, col);
			return 1;
		}
	}
	return 0;
}

struct diag_held {
	int line, col;
	size_t seq;         /* arrival order, to keep the sort stable */
	char *text;
};

void
diag_hold(struct diag *d)
{
	d->holding = 1;
}

static int
cmp_held(const void *a, const void *b)
{
	const struct diag_held *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void
diag_flush(struct diag *d)
{
	if (d->n_held > 0)
		qsort(d->held, d->n_held, sizeof *d->held, cmp_held);
	for (size_t i = 0; i < d->n_held; i++) {
		fputs(d->held[i].text, d->out);
		free(d->held[i].text);
	}
	free(d->held);
	d->held = NULL;
	d->n_held = 0;
	d->holding = 0;
}

static void
vreport(struct diag *d, const char *kind, int line, int col, const char *fmt, va_list ap)
{
	char head[512];
	if (col < 1)
		col = 1;
	if (line > 0)
		snprintf(head, sizeof head, "%s:%d:%d: %s: ", d->file, line, col, kind);
	else
		snprintf(head, sizeof head, "%s: %s: ", d->file, kind);
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	size_t hl = strlen(head), len = hl + (n > 0 ? (size_t)n : 0) + 2;
	char *text = xmalloc(len);
	memcpy(text, head, hl);
	vsnprintf(text + hl, len - hl, fmt, ap);
	text[len - 2] = '\n';
	text[len - 1] = '\0';
	if (!d->holding) {
		fputs(text, d->out);
		free(text);
		return;
	}
	d->held = xrealloc(d->held, (d->n_held + 1) * sizeof *d->held);
	d->held[d->n_held].line = line > 0 ? line : 0;
	d->held[d->n_held].col = col;
	d->held[d->n_held].seq = d->n_held;
	d->held[d->n_held].text = text;
	d->n_held++;
}

void
diag_error(struct diag *d, int line, int col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(d, "error", line, col, fmt, ap);
	va_end(ap);
	d->errors++;
}

void
diag_error_at(struct diag *d, int line, const char *token, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(d, "error", line, diag_column(d, line, token), fmt, ap);
	va_end(ap);
	d->errors++;
}

void
diag_warning(struct diag *d, int line, int col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(d, "warning", line, col, fmt, ap);
	va_end(ap);
}
