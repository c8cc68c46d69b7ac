/*
 * loader_int.h -- the pipeline reader's helpers shared by its files
 * (loader.c, loader_xml.c, loader_pool.c, loader_set.c, loader_threads.c);
 * not part of the library's interface.
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

/*
 * loader_xml.c: the file read and parsed, with positions.
 *
 * loader_read_file: the whole file, malloc'd, NUL-terminated, its length in
 * *len; NULL with a message in err.  loader_parse: the document, or NULL
 * after reporting why in d; each node's offset is recorded for the
 * position functions below.  loader_validate: the schema's findings (the
 * file's, or the built-in one when schema is NULL) reported in d.
 */
LOADER_HIDDEN char *loader_read_file(const char *file, size_t *len, char *err,
    size_t errlen);
LOADER_HIDDEN xmlDocPtr loader_parse(const char *buf, size_t len, const char *file,
    struct diag *d);
LOADER_HIDDEN void loader_validate(xmlDocPtr doc, const char *schema, struct diag *d);
LOADER_HIDDEN int loader_is_space(int c);
LOADER_HIDDEN int loader_is_blank(const xmlChar *s);

/* The '<' of an element; the first character of an attribute's value. */
LOADER_HIDDEN struct cfg_pos elem_pos(const struct diag *d, xmlNodePtr n);
LOADER_HIDDEN struct cfg_pos attr_value_pos(const struct diag *d, xmlNodePtr n,
    const char *name);
/* An attribute's name; the byte `decoded` bytes into its value (after
 * references are replaced); a text node's first non-blank character. */
LOADER_HIDDEN struct cfg_pos attr_name_pos(const struct diag *d, xmlNodePtr n,
    const char *name);
LOADER_HIDDEN struct cfg_pos attr_value_pos_at(const struct diag *d, xmlNodePtr n,
    const char *name, size_t decoded);
LOADER_HIDDEN struct cfg_pos text_pos(const struct diag *d, xmlNodePtr t);
/* The start of a text node for messages, at most len - 1 bytes. */
LOADER_HIDDEN void text_excerpt(xmlNodePtr t, char *buf, size_t len);
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
