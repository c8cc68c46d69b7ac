/*
 * loader_int.h -- the pipeline reader's helpers shared by its files
 * (loader.c, loader_pool.c); not part of the library's interface.
 */
#ifndef PORCH_LOADER_INT_H
#define PORCH_LOADER_INT_H

#include <libxml/tree.h>

#include "diag.h"
#include "loader.h"

#define LOADER_HIDDEN __attribute__((visibility("hidden")))

struct attr_rule {
	const char *name;
	int required;
	const char *hint;   /* added to "missing" messages, or NULL */
};

/* The '<' of an element; the first character of an attribute's value. */
LOADER_HIDDEN struct cfg_pos elem_pos(const struct diag *d, xmlNodePtr n);
LOADER_HIDDEN struct cfg_pos attr_value_pos(const struct diag *d, xmlNodePtr n,
    const char *name);
/* An attribute's value (without a namespace), copied, or NULL. */
LOADER_HIDDEN char *attr(xmlNodePtr n, const char *name);
/* Reports unknown attributes (with a suggestion) and missing ones. */
LOADER_HIDDEN void check_attrs(xmlNodePtr n, const struct attr_rule *rules,
    struct diag *d);
/* The candidate nearest s, or NULL when none is near enough. */
LOADER_HIDDEN const char *nearest(const char *const *cands, size_t n, const char *s);
/* The <param> children of parent into out; other elements are errors,
 * except those called skip (NULL: none), which the caller reads. */
LOADER_HIDDEN void read_params(xmlNodePtr parent, struct cfg_params *out,
    struct diag *d, const char *skip);

/* loader_threads.c: <pipeline threads="N|auto">: N, 0 for auto, 1 when
 * absent; errors (0, junk, out of range) at the value. */
LOADER_HIDDEN long threads_attr(xmlNodePtr root, struct diag *d);

/* loader_pool.c: a <pool> element into p->pools; pool_cfg_free frees them. */
void pool_read(xmlNodePtr n, struct cfg_pipeline *p, struct diag *d);
void pool_cfg_free(struct cfg_pipeline *p);

#endif
