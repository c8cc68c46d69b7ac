/* diag.h -- compiler-style diagnostics: FILE:LINE:COL: error: MESSAGE. */
#ifndef PORCH_DIAG_H
#define PORCH_DIAG_H

#include <stdio.h>

/*
 * One diagnostics context per file being checked.  It keeps the file's text
 * so a column can be found for a line and a token (libxml2's tree keeps
 * line numbers only).  Errors are printed as they come and counted, so a
 * checker can report every problem and fail at the end.
 */
struct diag {
	const char *file;
	const char *text;   /* the file's contents, or NULL */
	size_t text_len;
	FILE *out;
	int errors;
};

void diag_init(struct diag *d, const char *file, FILE *out);

/* Column (1-based) where `token` first appears on `line`, else 1. */
int diag_column(const struct diag *d, int line, const char *token);

/* Prints "FILE:LINE:COL: error: ..." and counts it.  line 0: no position. */
void diag_error(struct diag *d, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same, finding the column of `token` on `line`. */
void diag_error_at(struct diag *d, int line, const char *token, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_warning(struct diag *d, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
