/* diag.c -- compiler-style diagnostics: FILE:LINE:COL: error: MESSAGE. */
#include <stdarg.h>
#include <string.h>

#include "diag.h"

void
diag_init(struct diag *d, const char *file, FILE *out)
{
	memset(d, 0, sizeof *d);
	d->file = file;
	d->out = out;
}

int
diag_column(const struct diag *d, int line, const char *token)
{
	if (d->text == NULL || line < 1 || token == NULL || *token == '\0')
		return 1;
	const char *p = d->text, *end = d->text + d->text_len;
	for (int l = 1; l < line && p < end; l++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return 1;
		p = nl + 1;
	}
	const char *eol = memchr(p, '\n', (size_t)(end - p));
	if (eol == NULL)
		eol = end;
	size_t tl = strlen(token);
	for (const char *q = p; q + tl <= eol; q++)
		if (memcmp(q, token, tl) == 0)
			return (int)(q - p) + 1;
	return 1;
}

static void
vreport(struct diag *d, const char *kind, int line, int col, const char *fmt, va_list ap)
{
	if (line > 0)
		fprintf(d->out, "%s:%d:%d: %s: ", d->file, line, col > 0 ? col : 1, kind);
	else
		fprintf(d->out, "%s: %s: ", d->file, kind);
	vfprintf(d->out, fmt, ap);
	fputc('\n', d->out);
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
