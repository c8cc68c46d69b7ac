/* diag.h -- compiler-style diagnostics: FILE:LINE:COL: error: MESSAGE. */
#ifndef PORCH_DIAG_H
#define PORCH_DIAG_H

#include <stddef.h>
#include <stdio.h>

struct diag_held;

/*
 * One diagnostics context per file being checked.  It keeps the file's text
 * so a byte offset can be turned into a line and column, and a column found
 * for a line and a token.  Errors are printed as they come (or held, see
 * diag_hold) and counted, so a checker can report every problem and fail
 * at the end.
 */
struct diag {
	const char *file;
	const char *text;   /* the file's contents, or NULL */
	size_t text_len;
	size_t *lines;      /* offset of each line's start, built by diag_set_text */
	size_t n_lines;
	FILE *out;
	int errors;
	int holding;        /* messages wait in `held` for diag_flush */
	struct diag_held *held;
	size_t n_held;
};

void diag_init(struct diag *d, const char *file, FILE *out);

/* Gives d the file's text (kept by the caller); NULL forgets it. */
void diag_set_text(struct diag *d, const char *text, size_t len);

/*
 * Holds messages from now on, and prints them in file order (by line, then
 * column) at diag_flush: checks run pass by pass, but a reader wants the
 * file's problems top to bottom.  Errors are counted as they come.
 */
void diag_hold(struct diag *d);
void diag_flush(struct diag *d);

/* Line and column (1-based) of a byte offset into the text. */
void diag_offset_pos(const struct diag *d, size_t off, int *line, int *col);

/* Byte offset of line:col, or (size_t)-1 when out of the text. */
size_t diag_pos_offset(const struct diag *d, int line, int col);

/* Column (1-based) where `token` first appears on `line`, else 1. */
int diag_column(const struct diag *d, int line, const char *token);

/*
 * The last `token` that starts before line:col (searching back at most to
 * the start of line `floor`), as a line and column.  Returns 0 and leaves
 * line and col alone when there is none.
 */
int diag_find_back(const struct diag *d, int *line, int *col, int floor,
    const char *token);

/* Prints "FILE:LINE:COL: error: ..." and counts it.  line 0: no position. */
void diag_error(struct diag *d, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same, finding the column of `token` on `line`. */
void diag_error_at(struct diag *d, int line, const char *token, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_warning(struct diag *d, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
