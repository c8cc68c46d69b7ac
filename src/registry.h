/* registry.h -- finding, loading and checking plugin shared objects. */
#ifndef PORCH_REGISTRY_H
#define PORCH_REGISTRY_H

#include <stddef.h>

#include "porch/plugin.h"

/* A loaded plugin: its file and a normalised copy of its descriptor. */
struct plugin {
	char *path;
	void *handle;
	/* copied from the file, zero past the plugin's own size */
	struct porch_plugin desc;
	int n_outputs;            /* declared output ports, without "error" */
	struct plugin *next;
};

/*
 * The search path, in order: --plugin-path directories, PORCH_PLUGIN_PATH,
 * the pipeline file's plugins= path, then the installed directory.  Each
 * pipeline gets its own registry so its plugins= path applies to it alone.
 */
struct registry {
	char **dirs;
	size_t n_dirs;
	struct plugin *loaded;
};

void registry_init(struct registry *r);
/* Appends each directory of a ':'-separated list; relative ones to base. */
void registry_add_path(struct registry *r, const char *list, const char *base);
/* The standard order around the file's own plugins= list (may be NULL). */
void registry_setup(struct registry *r, char *const *cli_dirs, size_t n_cli,
    const char *file_plugins, const char *file_dir);
void registry_free(struct registry *r);

/*
 * Finds NAME.so along the path, loads and checks it.  On failure returns
 * NULL with one line in err naming the file, or the directories tried.
 */
const struct plugin *registry_find(struct registry *r, const char *name,
    char *err, size_t errlen);

/* Loads and checks one file. */
const struct plugin *registry_open(struct registry *r, const char *path,
    char *err, size_t errlen);

/* Calls fn for every *.so in every directory, in search order (also broken
 * ones: then p is NULL and err says why). */
typedef void registry_visit_fn(void *ctx, const char *path,
    const struct plugin *p, const char *err);
void registry_scan(struct registry *r, registry_visit_fn *fn, void *ctx);

/* The search path as "a, b, c" for messages. */
void registry_describe(const struct registry *r, char *buf, size_t len);

/* Port index by name: declared outputs first, then "error". -1: none. */
int plugin_port_index(const struct plugin *p, const char *port);
const char *plugin_port_name(const struct plugin *p, int index);

#endif
