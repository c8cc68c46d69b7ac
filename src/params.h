/* params.h -- a plugin's parameter table applied to the values a file gives. */
#ifndef PORCH_PARAMS_H
#define PORCH_PARAMS_H

#include "porch/plugin.h"
#include "diag.h"

/* One name=value from a <param> element or a --set override. */
struct param_input {
	const char *name;
	const char *value;
	int line;          /* of the name; 0 for --set */
	int col;
	int vline, vcol;   /* of the value, for errors about it */
	int override;      /* from --set: replaces a file value, not a duplicate */
};

/*
 * Parses every input against the table: unknown names (with a suggestion),
 * duplicates, missing required values, junk and out-of-range values are
 * reported to d, prefixed by `owner` ("stage 'x' (plugin y)").  Defaults
 * fill what is not given.  `dir` resolves relative path values.  Returns
 * the parsed set (even with errors, so checking can go on), never NULL.
 */
porch_params *params_parse(const struct porch_param *table,
    const struct param_input *in, size_t n_in, struct diag *d, int elem_line,
    int elem_col, const char *owner, const char *dir);
void params_free(porch_params *p);

/*
 * Parses one value as the row's type; on failure writes why to err and
 * returns -1.  Used for the values above and for checking a plugin's own
 * defaults when it is loaded.
 */
int param_value_check(const struct porch_param *row, const char *value,
    char *err, size_t errlen);

const char *param_type_name(enum porch_param_type t);
/* The row's bounds or choices for display ("0 to 100", "a|b"), or "". */
void param_describe_range(const struct porch_param *row, char *buf, size_t len);
/* Number of rows in a table (0 for NULL). */
size_t param_table_len(const struct porch_param *table);

#endif
