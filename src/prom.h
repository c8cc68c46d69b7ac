/*
 * prom.h -- a reader of the Prometheus text exposition format (version
 * 0.0.4), for porch top: samples with their labels and values, looked up
 * by name and labels, and quantiles of a histogram's buckets.
 */
#ifndef PORCH_PROM_H
#define PORCH_PROM_H

#include <stddef.h>

struct prom_label {
	char *name;
	char *value;                /* unescaped */
};

struct prom_sample {
	char *name;
	struct prom_label *labels;
	size_t n_labels;
	double value;               /* NaN and +-Inf as the text says */
};

/* Every sample of one exposition, in the order they came.  TYPE lines are
 * kept so a reader can tell a histogram from a gauge. */
struct prom_set {
	struct prom_sample *s;
	size_t n;
	char **types;               /* "NAME TYPE" pairs: types[2i], types[2i+1] */
	size_t n_types;
};

/*
 * Parses text (len bytes, need not end in NUL) into set.  Comments other
 * than TYPE, blank lines and a trailing timestamp are skipped.  Returns 0,
 * or -1 with "line N: why" in err (set is then empty) for a malformed
 * line.  prom_free frees what it holds, on success and failure alike.
 */
int prom_parse(const char *text, size_t len, struct prom_set *set, char *err,
    size_t errlen);
void prom_free(struct prom_set *set);

/* A sample's label value, or NULL when it has no such label. */
const char *prom_label(const struct prom_sample *s, const char *name);

/* The metric's declared type ("counter", "histogram" ...), or NULL. */
const char *prom_type(const struct prom_set *set, const char *name);

/*
 * The first sample named name whose labels include the pairs given, as
 * NULL-terminated (label, value) strings: prom_find(set, "x", "stage",
 * "rag", NULL).  NULL when there is none.
 */
const struct prom_sample *prom_find(const struct prom_set *set, const char *name, ...);

/* prom_find's value, or dflt when there is no such sample. */
double prom_value(const struct prom_set *set, double dflt, const char *name, ...);

/*
 * The q-quantile (0 < q < 1) of a histogram given by its cumulative
 * buckets: n upper bounds le[] (ascending, the last may be +Inf) and their
 * cumulative counts cum[].  Linear within the bucket the rank falls in, as
 * Prometheus's histogram_quantile does; the +Inf bucket answers the highest
 * finite bound.  NaN when the histogram is empty or the input is not one.
 */
double prom_quantile(double q, const double *le, const double *cum, size_t n);

#endif
