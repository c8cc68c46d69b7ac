/*
 * params.c -- a plugin's parameter table applied to the values a file gives.
 *
 * The table declared by the plugin is the one source of truth: the same rows
 * drive `porch check`, `porch plugins NAME` and the typed reads plugins make
 * at init, so they cannot disagree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "params.h"
#include "log.h"
#include "util.h"

struct param_value {
	int set;     /* given in the file or by --set */
	int line;    /* where it was given, for duplicate reports */
	int64_t i;
	double d;
	char *s;
};

struct porch_params {
	const struct porch_param *table;
	size_t n;
	struct param_value v[];
};

size_t
param_table_len(const struct porch_param *table)
{
	size_t n = 0;
	while (table != NULL && table[n].name != NULL)
		n++;
	return n;
}

const char *
param_type_name(enum porch_param_type t)
{
	switch (t) {
	case PORCH_PARAM_INTEGER: return "integer";
	case PORCH_PARAM_DURATION: return "duration";
	case PORCH_PARAM_SIZE: return "size";
	case PORCH_PARAM_BOOLEAN: return "boolean";
	case PORCH_PARAM_STRING: return "string";
	case PORCH_PARAM_PATH: return "path";
	case PORCH_PARAM_ENUM: return "enum";
	case PORCH_PARAM_LIST: return "list";
	case PORCH_PARAM_NUMBER: return "number";
	}
	return "unknown";
}

static int
bounded(const struct porch_param *row)
{
	return row->min <= row->max;
}

void
param_describe_range(const struct porch_param *row, char *buf, size_t len)
{
	buf[0] = '\0';
	if (row->type == PORCH_PARAM_ENUM && row->choices != NULL)
		snprintf(buf, len, "%s", row->choices);
	else if (bounded(row) && row->type == PORCH_PARAM_NUMBER)
		snprintf(buf, len, "%g to %g", row->min, row->max);
	else if (bounded(row) && (row->type == PORCH_PARAM_INTEGER ||
	    row->type == PORCH_PARAM_DURATION || row->type == PORCH_PARAM_SIZE)) {
		const char *unit = row->type == PORCH_PARAM_DURATION ? "ms" :
		    row->type == PORCH_PARAM_SIZE ? " bytes" : "";
		snprintf(buf, len, "%.0f to %.0f%s", row->min, row->max, unit);
	}
}

/*
 * "250ms", "2s", "1m", "1h", or a bare integer of milliseconds.  -1: not a
 * duration, -2: too large to represent.
 */
static int
parse_duration(const char *s, int64_t *ms)
{
	size_t len = strlen(s), digits = 0;
	while (digits < len && s[digits] >= '0' && s[digits] <= '9')
		digits++;
	if (digits == 0 || digits > 15)
		return -1;
	char num[16];
	memcpy(num, s, digits);
	num[digits] = '\0';
	int64_t v;
	if (parse_int64(num, &v) != 0)
		return -1;
	const char *unit = s + digits;
	int64_t mult;
	if (*unit == '\0' || strcmp(unit, "ms") == 0)
		mult = 1;
	else if (strcmp(unit, "s") == 0)
		mult = 1000;
	else if (strcmp(unit, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(unit, "h") == 0)
		mult = 3600 * 1000;
	else
		return -1;
	/* "999999999999999h" would overflow: call it out of range, not UB */
	if (v > INT64_MAX / mult)
		return -2;
	*ms = v * mult;
	return 0;
}

/* "512", "4k", "16M", "1G" (powers of 1024), optional trailing "B"/"iB";
 * -1: not a size, -2: too large to represent. */
static int
parse_size(const char *s, int64_t *bytes)
{
	size_t len = strlen(s), digits = 0;
	while (digits < len && s[digits] >= '0' && s[digits] <= '9')
		digits++;
	if (digits == 0 || digits > 15)
		return -1;
	char num[16];
	memcpy(num, s, digits);
	num[digits] = '\0';
	int64_t v;
	if (parse_int64(num, &v) != 0)
		return -1;
	const char *unit = s + digits;
	int64_t mult = 1;
	switch (*unit) {
	case '\0': break;
	case 'k': case 'K': mult = 1024; unit++; break;
	case 'm': case 'M': mult = 1024 * 1024; unit++; break;
	case 'g': case 'G': mult = 1024 * 1024 * 1024; unit++; break;
	case 'B': break;
	default: return -1;
	}
	if (*unit != '\0' && strcmp(unit, "B") != 0 && strcmp(unit, "iB") != 0)
		return -1;
	if (v > INT64_MAX / mult)
		return -2;
	*bytes = v * mult;
	return 0;
}

static int
parse_boolean(const char *s, int64_t *b)
{
	static const char *yes[] = { "true", "yes", "on", "1" };
	static const char *no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*b = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*b = 0;
			return 0;
		}
	}
	return -1;
}

/* Is `s` one of the '|'-separated choices?  Else the nearest, in near. */
static int
enum_match(const char *choices, const char *s, char *near, size_t nearlen)
{
	size_t best = (size_t)-1;
	near[0] = '\0';
	const char *p = choices;
	while (p != NULL && *p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		char *c = xstrndup(p, len);
		if (strcmp(c, s) == 0) {
			free(c);
			return 1;
		}
		size_t dist = edit_distance(c, s);
		if (dist < best) {
			best = dist;
			snprintf(near, nearlen, "%s", c);
		}
		free(c);
		p = bar ? bar + 1 : NULL;
	}
	if (best > 2)
		near[0] = '\0';
	return 0;
}

/* "'v' is out of range", with the bounds when the row has them. */
static void
out_of_range(const struct porch_param *row, const char *value, char *err, size_t errlen)
{
	char range[96];
	param_describe_range(row, range, sizeof range);
	if (range[0])
		snprintf(err, errlen, "'%s' is out of range (%s)", value, range);
	else
		snprintf(err, errlen, "'%s' is out of range", value);
}

static int
check_bounds(const struct porch_param *row, double v, const char *value,
    char *err, size_t errlen)
{
	if (!bounded(row) || (v >= row->min && v <= row->max))
		return 0;
	out_of_range(row, value, err, errlen);
	return -1;
}

/* Parses into *pv (if non-NULL); the error says what was expected. */
static int
parse_value(const struct porch_param *row, const char *value,
    struct param_value *pv, char *err, size_t errlen)
{
	int64_t i = 0;
	double d = 0;
	int rc;
	switch (row->type) {
	case PORCH_PARAM_INTEGER:
		rc = parse_int64(value, &i);
		if (rc == -2) {
			out_of_range(row, value, err, errlen);
			return -1;
		}
		if (rc != 0) {
			snprintf(err, errlen, "'%s' is not an integer", value);
			return -1;
		}
		if (check_bounds(row, (double)i, value, err, errlen) != 0)
			return -1;
		break;
	case PORCH_PARAM_DURATION:
		rc = parse_duration(value, &i);
		if (rc == -2) {
			out_of_range(row, value, err, errlen);
			return -1;
		}
		if (rc != 0) {
			snprintf(err, errlen, "'%s' is not a duration "
			    "(an integer with ms, s, m or h, e.g. 250ms)", value);
			return -1;
		}
		if (check_bounds(row, (double)i, value, err, errlen) != 0)
			return -1;
		break;
	case PORCH_PARAM_SIZE:
		rc = parse_size(value, &i);
		if (rc == -2) {
			out_of_range(row, value, err, errlen);
			return -1;
		}
		if (rc != 0) {
			snprintf(err, errlen, "'%s' is not a size "
			    "(an integer with an optional k, M or G, e.g. 64k)", value);
			return -1;
		}
		if (check_bounds(row, (double)i, value, err, errlen) != 0)
			return -1;
		break;
	case PORCH_PARAM_BOOLEAN:
		if (parse_boolean(value, &i) != 0) {
			snprintf(err, errlen, "'%s' is not a boolean "
			    "(true, false, yes, no, on, off, 1 or 0)", value);
			return -1;
		}
		break;
	case PORCH_PARAM_NUMBER:
		rc = parse_double(value, &d);
		if (rc == -2) {
			out_of_range(row, value, err, errlen);
			return -1;
		}
		if (rc != 0) {
			snprintf(err, errlen, "'%s' is not a number", value);
			return -1;
		}
		if (check_bounds(row, d, value, err, errlen) != 0)
			return -1;
		break;
	case PORCH_PARAM_ENUM: {
		char near[64];
		if (!enum_match(row->choices, value, near, sizeof near)) {
			if (near[0])
				snprintf(err, errlen, "'%s' is not one of %s; did you mean '%s'?",
				    value, row->choices, near);
			else
				snprintf(err, errlen, "'%s' is not one of %s", value, row->choices);
			return -1;
		}
		break;
	}
	case PORCH_PARAM_PATH:
		if (*value == '\0') {
			snprintf(err, errlen, "the path is empty");
			return -1;
		}
		break;
	case PORCH_PARAM_STRING:
	case PORCH_PARAM_LIST:
		break;
	default:
		snprintf(err, errlen, "the plugin declares an unknown type %d", (int)row->type);
		return -1;
	}
	if (pv != NULL) {
		pv->i = i;
		pv->d = row->type == PORCH_PARAM_NUMBER ? d : (double)i;
	}
	return 0;
}

int
param_value_check(const struct porch_param *row, const char *value, char *err, size_t errlen)
{
	return parse_value(row, value, NULL, err, errlen);
}

static void
store(porch_params *p, size_t idx, const char *value, const char *dir,
    struct diag *d, int line, int col, const char *owner)
{
	const struct porch_param *row = &p->table[idx];
	struct param_value *pv = &p->v[idx];
	char err[256];
	free(pv->s);
	pv->s = NULL;
	if (parse_value(row, value, pv, err, sizeof err) != 0) {
		if (d != NULL)
			diag_error(d, line, col, "%s: parameter '%s': %s", owner, row->name, err);
		return;
	}
	if (row->type == PORCH_PARAM_PATH && value[0] != '/' && dir != NULL) {
		size_t len = strlen(dir) + strlen(value) + 2;
		pv->s = xmalloc(len);
		snprintf(pv->s, len, "%s/%s", dir, value);
	} else {
		pv->s = xstrdup(value);
	}
}

static const char *
suggest(const struct porch_param *table, size_t n, const char *name)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		size_t dist = edit_distance(table[i].name, name);
		if (dist < best_d) {
			best_d = dist;
			best = table[i].name;
		}
	}
	/* a suggestion more than a third different is noise */
	if (best == NULL || best_d > 2 + strlen(name) / 3)
		return NULL;
	return best;
}

/* "a, b, c": the table's names, for an unknown name with no near one. */
static void
list_names(const struct porch_param *table, size_t n, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
		    table[i].name);
}

porch_params *
params_parse(const struct porch_param *table, const struct param_input *in,
    size_t n_in, struct diag *d, int elem_line, int elem_col, const char *owner,
    const char *dir)
{
	size_t n = param_table_len(table);
	porch_params *p = xcalloc(1, sizeof *p + n * sizeof p->v[0]);
	p->table = table;
	p->n = n;

	for (size_t k = 0; k < n_in; k++) {
		size_t idx;
		for (idx = 0; idx < n; idx++)
			if (strcmp(table[idx].name, in[k].name) == 0)
				break;
		if (idx == n) {
			const char *near = suggest(table, n, in[k].name);
			if (near != NULL)
				diag_error(d, in[k].line, in[k].col,
				    "%s: unknown parameter '%s'; did you mean '%s'?",
				    owner, in[k].name, near);
			else if (n == 0)
				diag_error(d, in[k].line, in[k].col,
				    "%s: unknown parameter '%s'; this plugin takes no parameters",
				    owner, in[k].name);
			else {
				char names[512];
				list_names(table, n, names, sizeof names);
				diag_error(d, in[k].line, in[k].col,
				    "%s: unknown parameter '%s'; its parameters are: %s",
				    owner, in[k].name, names);
			}
			continue;
		}
		if (p->v[idx].set && !in[k].override) {
			diag_error(d, in[k].line, in[k].col,
			    "%s: parameter '%s' is given twice (first at line %d)",
			    owner, in[k].name, p->v[idx].line);
			continue;
		}
		p->v[idx].set = 1;
		p->v[idx].line = in[k].line;
		/* a bad value is pointed at where the value is, when known */
		if (in[k].vline > 0)
			store(p, idx, in[k].value, dir, d, in[k].vline, in[k].vcol, owner);
		else
			store(p, idx, in[k].value, dir, d, in[k].line, in[k].col, owner);
	}

	for (size_t idx = 0; idx < n; idx++) {
		if (p->v[idx].set)
			continue;
		if (table[idx].flags & PORCH_PARAM_REQUIRED) {
			if (table[idx].doc != NULL && table[idx].doc[0] != '\0')
				diag_error(d, elem_line, elem_col, "%s: missing required "
				    "parameter '%s' (%s)", owner, table[idx].name, table[idx].doc);
			else
				diag_error(d, elem_line, elem_col, "%s: missing required "
				    "parameter '%s'", owner, table[idx].name);
			continue;
		}
		if (table[idx].default_value != NULL)
			store(p, idx, table[idx].default_value, dir, NULL, 0, 0, owner);
	}
	return p;
}

void
params_free(porch_params *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].s);
	free(p);
}

static const struct param_value *
lookup(const porch_params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->table[i].name, name) == 0)
			return &p->v[i];
	/* asking for a name the plugin did not declare is a plugin bug */
	log_error("plugin bug: parameter '%s' is not in its table", name);
	return NULL;
}

int64_t
porch_param_int(const porch_params *p, const char *name)
{
	const struct param_value *v = p ? lookup(p, name) : NULL;
	return v ? v->i : 0;
}

double
porch_param_number(const porch_params *p, const char *name)
{
	const struct param_value *v = p ? lookup(p, name) : NULL;
	return v ? v->d : 0;
}

const char *
porch_param_str(const porch_params *p, const char *name)
{
	const struct param_value *v = p ? lookup(p, name) : NULL;
	return v ? v->s : NULL;
}

int
porch_param_isset(const porch_params *p, const char *name)
{
	const struct param_value *v = p ? lookup(p, name) : NULL;
	return v ? v->set : 0;
}
