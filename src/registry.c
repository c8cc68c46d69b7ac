/*
 * registry.c -- finding, loading and checking plugin shared objects.
 *
 * A plugin is trusted only after its descriptor passes every check here:
 * ABI version, size, kind, name, callbacks and parameter table (including
 * its own defaults), so the rest of porch can use it without re-checking.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "params.h"
#include "registry.h"
#include "util.h"

#ifndef PORCH_PLUGINDIR
#define PORCH_PLUGINDIR "/usr/local/lib/porch"
#endif

void
registry_init(struct registry *r)
{
	memset(r, 0, sizeof *r);
}

static void
add_dir(struct registry *r, const char *dir, size_t len, const char *base)
{
	if (len == 0)
		return;
	char *d;
	if (dir[0] != '/' && base != NULL && strcmp(base, ".") != 0) {
		size_t n = strlen(base) + len + 2;
		d = xmalloc(n);
		snprintf(d, n, "%s/%.*s", base, (int)len, dir);
	} else {
		d = xstrndup(dir, len);
	}
	r->dirs = xrealloc(r->dirs, (r->n_dirs + 1) * sizeof *r->dirs);
	r->dirs[r->n_dirs++] = d;
}

void
registry_add_path(struct registry *r, const char *list, const char *base)
{
	while (list != NULL && *list) {
		const char *colon = strchr(list, ':');
		size_t len = colon ? (size_t)(colon - list) : strlen(list);
		add_dir(r, list, len, base);
		list = colon ? colon + 1 : NULL;
	}
}

void
registry_setup(struct registry *r, char *const *cli_dirs, size_t n_cli,
    const char *file_plugins, const char *file_dir)
{
	for (size_t i = 0; i < n_cli; i++)
		registry_add_path(r, cli_dirs[i], NULL);
	registry_add_path(r, getenv("PORCH_PLUGIN_PATH"), NULL);
	registry_add_path(r, file_plugins, file_dir);
	registry_add_path(r, PORCH_PLUGINDIR, NULL);
}

void
registry_free(struct registry *r)
{
	struct plugin *p = r->loaded, *next;
	for (; p != NULL; p = next) {
		next = p->next;
		/* keep the code mapped: descriptors and strings point into it
		 * until exit, and unloading buys nothing for a short process */
		free(p->path);
		free(p);
	}
	for (size_t i = 0; i < r->n_dirs; i++)
		free(r->dirs[i]);
	free(r->dirs);
	memset(r, 0, sizeof *r);
}

void
registry_describe(const struct registry *r, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < r->n_dirs && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
		    i ? ", " : "", r->dirs[i]);
}

/* Everything a descriptor must satisfy; err says what is wrong. */
static int
check_descriptor(struct plugin *p, char *err, size_t errlen)
{
	const struct porch_plugin *d = &p->desc;
	if (d->kind != PORCH_KIND_STAGE && d->kind != PORCH_KIND_WORKER) {
		snprintf(err, errlen, "invalid descriptor: kind %d is neither stage nor worker",
		    (int)d->kind);
		return -1;
	}
	if (!name_is_valid(d->name)) {
		snprintf(err, errlen, "invalid descriptor: name '%s' is not [a-z][a-z0-9_-]*",
		    d->name ? d->name : "(null)");
		return -1;
	}
	if (d->summary == NULL) {
		snprintf(err, errlen, "invalid descriptor: plugin '%s' has no summary", d->name);
		return -1;
	}
	if (d->kind == PORCH_KIND_STAGE) {
		if (!(d->flags & PORCH_STAGE_SOURCE) && d->process == NULL) {
			snprintf(err, errlen, "invalid descriptor: stage plugin '%s' has no "
			    "process callback and is not a source", d->name);
			return -1;
		}
		if ((d->flags & PORCH_STAGE_SOURCE) && d->outputs == NULL) {
			snprintf(err, errlen, "invalid descriptor: source plugin '%s' has no "
			    "output port", d->name);
			return -1;
		}
		for (int i = 0; d->outputs != NULL && d->outputs[i] != NULL; i++) {
			if (!name_is_valid(d->outputs[i]) || strcmp(d->outputs[i], "error") == 0) {
				snprintf(err, errlen, "invalid descriptor: plugin '%s' declares "
				    "port '%s' (ports are [a-z][a-z0-9_-]*, 'error' is implicit)",
				    d->name, d->outputs[i]);
				return -1;
			}
			p->n_outputs++;
		}
	} else if (d->submit == NULL) {
		snprintf(err, errlen, "invalid descriptor: worker plugin '%s' has no submit "
		    "callback", d->name);
		return -1;
	}
	for (size_t i = 0; d->params != NULL && d->params[i].name != NULL; i++) {
		const struct porch_param *row = &d->params[i];
		char why[256];
		if (!name_is_valid(row->name)) {
			snprintf(err, errlen, "invalid descriptor: parameter '%s' is not "
			    "[a-z][a-z0-9_-]*", row->name);
			return -1;
		}
		if (row->type == PORCH_PARAM_ENUM && row->choices == NULL) {
			snprintf(err, errlen, "invalid descriptor: enum parameter '%s' has no "
			    "choices", row->name);
			return -1;
		}
		if (row->default_value != NULL &&
		    param_value_check(row, row->default_value, why, sizeof why) != 0) {
			snprintf(err, errlen, "invalid descriptor: default of parameter '%s': %s",
			    row->name, why);
			return -1;
		}
	}
	return 0;
}

/*
 * One file or directory a plugin's code comes through: it must belong to
 * root or to porch's own user, and be writable by nobody else.  what is
 * "it" or "its directory DIR", for the message about `path`.
 */
static int
check_owner_mode(const char *path, const char *what, const char *fix,
    const struct stat *sb, char *err, size_t errlen)
{
	uid_t me = geteuid();
	if (sb->st_uid != 0 && sb->st_uid != me) {
		snprintf(err, errlen, "%s: refusing to load: %s is owned by uid %lu, "
		    "neither root nor the user porch runs as (uid %lu), who could change "
		    "the code porch runs; chown it to one of them (chown %lu %s)",
		    path, what, (unsigned long)sb->st_uid, (unsigned long)me,
		    (unsigned long)me, fix);
		return -1;
	}
	mode_t w = sb->st_mode & (S_IWGRP | S_IWOTH);
	if (w != 0) {
		snprintf(err, errlen, "%s: refusing to load: %s is writable by %s "
		    "(mode %04o), who could change the code porch runs; "
		    "fix it with chmod go-w %s", path, what,
		    w == (S_IWGRP | S_IWOTH) ? "group and others" :
		    w == S_IWGRP ? "its group" : "others",
		    (unsigned)(sb->st_mode & 07777), fix);
		return -1;
	}
	return 0;
}

/*
 * Like sshd's StrictModes: a plugin is code porch runs with its own
 * rights, so neither the file nor its directory (where it could be
 * replaced) may be writable by another user.  Symbolic links are
 * followed: what is checked is the file dlopen maps and its directory.
 */
static int
check_plugin_file(const char *path, char *err, size_t errlen)
{
	char *real = realpath(path, NULL);
	if (real == NULL) {
		snprintf(err, errlen, "%s: cannot load: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	int rc = -1;
	if (stat(real, &sb) != 0) {
		snprintf(err, errlen, "%s: cannot load: %s", path, strerror(errno));
		goto out;
	}
	char what[PATH_MAX + 32];
	if (strcmp(real, path) == 0)
		snprintf(what, sizeof what, "the file");
	else
		snprintf(what, sizeof what, "the file %s", real);
	if (check_owner_mode(path, what, real, &sb, err, errlen) != 0)
		goto out;
	char *slash = strrchr(real, '/');
	if (slash == real)
		slash[1] = '\0';    /* a plugin in / */
	else
		*slash = '\0';
	if (stat(real, &sb) != 0) {
		snprintf(err, errlen, "%s: cannot load: %s: %s", path, real, strerror(errno));
		goto out;
	}
	snprintf(what, sizeof what, "its directory %s", real);
	if (check_owner_mode(path, what, real, &sb, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	free(real);
	return rc;
}

/*
 * The files this process mapped, by path, with what they were when mapped.
 * dlopen knows an object by its name: asked for a path it loaded before, it
 * returns the old code even when the file was replaced since.  A reload
 * must load a changed plugin anew, so a file whose identity changed is
 * mapped from a private copy (a new name and a new inode), and the path
 * maps to that code from then on.  Nothing is unmapped: a retiring graph
 * may still run the old code, and descriptors point into it.
 */
struct mapped {
	struct mapped *next;
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	void *handle;
};

static struct mapped *mapped;

static int
same_file(const struct mapped *m, const struct stat *sb)
{
	return m->dev == sb->st_dev && m->ino == sb->st_ino && m->size == sb->st_size &&
	    m->mtime.tv_sec == sb->st_mtim.tv_sec && m->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

/* Copies path to a file only this user can reach; returns its name or NULL. */
static char *
private_copy(const char *path, char *err, size_t errlen)
{
	static char dir[PATH_MAX];
	static unsigned serial;
	if (dir[0] == '\0') {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/porch-plugins.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(dir) == NULL) {
			snprintf(err, errlen, "%s: cannot load the changed file: mkdtemp %s: %s",
			    path, dir, strerror(errno));
			dir[0] = '\0';
			return NULL;
		}
	}
	const char *base = strrchr(path, '/');
	char copy[PATH_MAX + 64];
	snprintf(copy, sizeof copy, "%s/%u-%s", dir, ++serial, base ? base + 1 : path);
	FILE *in = fopen(path, "rb"), *out = in ? fopen(copy, "wbx") : NULL;
	int ok = in != NULL && out != NULL;
	char buf[65536];
	size_t n;
	while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
		ok = fwrite(buf, 1, n, out) == n;
	ok = ok && !ferror(in);
	int saved = errno;
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0)
		ok = 0;
	if (!ok) {
		snprintf(err, errlen, "%s: cannot load the changed file: copying it to %s: %s",
		    path, copy, strerror(saved));
		unlink(copy);
		return NULL;
	}
	return xstrdup(copy);
}

/* A file that is not a usable plugin: forgotten and unmapped. */
static void
unmap_plugin(void *h)
{
	for (struct mapped **pp = &mapped; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->handle == h) {
			struct mapped *m = *pp;
			*pp = m->next;
			free(m->path);
			free(m);
			break;
		}
	}
	dlclose(h);
}

/* dlopen(path), or the code mapped for it before if the file is unchanged. */
static void *
map_plugin(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	if (stat(path, &sb) != 0) {
		snprintf(err, errlen, "%s: cannot load: %s", path, strerror(errno));
		return NULL;
	}
	struct mapped *m;
	for (m = mapped; m != NULL; m = m->next)
		if (strcmp(m->path, path) == 0)
			break;
	if (m != NULL && same_file(m, &sb))
		return m->handle;
	char *copy = NULL;
	if (m != NULL && (copy = private_copy(path, err, errlen)) == NULL)
		return NULL;
	/* RTLD_LOCAL: plugins cannot see (or clash with) each other's symbols */
	void *h = dlopen(copy ? copy : path, RTLD_NOW | RTLD_LOCAL);
	if (copy != NULL) {
		unlink(copy); /* mapped already, or not wanted */
		free(copy);
	}
	if (h == NULL) {
		snprintf(err, errlen, "%s: cannot load: %s", path, dlerror());
		return NULL;
	}
	if (m == NULL) {
		m = xcalloc(1, sizeof *m);
		m->path = xstrdup(path);
		m->next = mapped;
		mapped = m;
	}
	m->dev = sb.st_dev;
	m->ino = sb.st_ino;
	m->size = sb.st_size;
	m->mtime = sb.st_mtim;
	m->handle = h;
	return h;
}

const struct plugin *
registry_open(struct registry *r, const char *path, char *err, size_t errlen)
{
	for (struct plugin *p = r->loaded; p != NULL; p = p->next)
		if (strcmp(p->path, path) == 0)
			return p;

	if (check_plugin_file(path, err, errlen) != 0)
		return NULL;
	void *h = map_plugin(path, err, errlen);
	if (h == NULL)
		return NULL;
	const struct porch_plugin *d = dlsym(h, PORCH_PLUGIN_SYMBOL);
	if (d == NULL) {
		snprintf(err, errlen, "%s: not a porch plugin (no '%s' symbol)",
		    path, PORCH_PLUGIN_SYMBOL);
		unmap_plugin(h);
		return NULL;
	}
	if (d->abi_major != PORCH_ABI_MAJOR || d->abi_minor > PORCH_ABI_MINOR) {
		snprintf(err, errlen, "%s: built for plugin ABI %u.%u, but this porch "
		    "provides ABI %d.%d; rebuild the plugin against this porch's "
		    "<porch/plugin.h> (cc -shared -fPIC $(pkg-config --cflags --libs porch))",
		    path, d->abi_major, d->abi_minor, PORCH_ABI_MAJOR, PORCH_ABI_MINOR);
		unmap_plugin(h);
		return NULL;
	}
	/* the smallest descriptor ABI 1.0 allows ends after worker_fini */
	if (d->size < sizeof(struct porch_plugin) && d->abi_minor == PORCH_ABI_MINOR) {
		snprintf(err, errlen, "%s: descriptor size %u is smaller than ABI %d.%d's "
		    "%zu bytes; rebuild the plugin", path, d->size, PORCH_ABI_MAJOR,
		    PORCH_ABI_MINOR, sizeof(struct porch_plugin));
		unmap_plugin(h);
		return NULL;
	}
	struct plugin *p = xcalloc(1, sizeof *p);
	size_t n = d->size < sizeof p->desc ? d->size : sizeof p->desc;
	memcpy(&p->desc, d, n);
	if (check_descriptor(p, err + 0, errlen) != 0) {
		char why[512];
		snprintf(why, sizeof why, "%s", err);
		snprintf(err, errlen, "%s: %s", path, why);
		free(p);
		unmap_plugin(h);
		return NULL;
	}
	p->path = xstrdup(path);
	p->handle = h;
	p->next = r->loaded;
	r->loaded = p;
	return p;
}

/* The nearest plugin name in the search path, for "did you mean". */
static void
nearest_name(struct registry *r, const char *name, char *out, size_t outlen)
{
	size_t best = (size_t)-1;
	out[0] = '\0';
	for (size_t i = 0; i < r->n_dirs; i++) {
		DIR *dir = opendir(r->dirs[i]);
		if (dir == NULL)
			continue;
		struct dirent *e;
		while ((e = readdir(dir)) != NULL) {
			size_t len = strlen(e->d_name);
			if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
				continue;
			char *base = xstrndup(e->d_name, len - 3);
			size_t dist = edit_distance(base, name);
			if (dist < best) {
				best = dist;
				snprintf(out, outlen, "%s", base);
			}
			free(base);
		}
		closedir(dir);
	}
	if (best > 2 + strlen(name) / 3)
		out[0] = '\0';
}

const struct plugin *
registry_find(struct registry *r, const char *name, char *err, size_t errlen)
{
	for (struct plugin *p = r->loaded; p != NULL; p = p->next)
		if (strcmp(p->desc.name, name) == 0)
			return p;
	if (!name_is_valid(name)) {
		snprintf(err, errlen, "'%s' is not a plugin name ([a-z][a-z0-9_-]*)", name);
		return NULL;
	}
	for (size_t i = 0; i < r->n_dirs; i++) {
		char path[PATH_MAX];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s.so", r->dirs[i], name);
		if (stat(path, &sb) != 0)
			continue;
		const struct plugin *p = registry_open(r, path, err, errlen);
		if (p == NULL)
			return NULL;
		if (strcmp(p->desc.name, name) != 0) {
			snprintf(err, errlen, "%s: the file is named '%s.so' but the plugin "
			    "inside calls itself '%s'", path, name, p->desc.name);
			return NULL;
		}
		return p;
	}
	char tried[1024], near[64];
	registry_describe(r, tried, sizeof tried);
	nearest_name(r, name, near, sizeof near);
	if (near[0])
		snprintf(err, errlen, "unknown plugin '%s'; did you mean '%s'? (searched %s)",
		    name, near, tried);
	else
		snprintf(err, errlen, "unknown plugin '%s': no %s.so in %s", name, name,
		    r->n_dirs ? tried : "(empty search path)");
	return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
registry_scan(struct registry *r, registry_visit_fn *fn, void *ctx)
{
	for (size_t i = 0; i < r->n_dirs; i++) {
		DIR *dir = opendir(r->dirs[i]);
		if (dir == NULL)
			continue;
		char **names = NULL;
		size_t n = 0;
		struct dirent *e;
		while ((e = readdir(dir)) != NULL) {
			size_t len = strlen(e->d_name);
			if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
				continue;
			names = xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = xstrdup(e->d_name);
		}
		closedir(dir);
		qsort(names, n, sizeof *names, cmp_str);
		for (size_t k = 0; k < n; k++) {
			char path[PATH_MAX], err[1024];
			snprintf(path, sizeof path, "%s/%s", r->dirs[i], names[k]);
			const struct plugin *p = registry_open(r, path, err, sizeof err);
			fn(ctx, path, p, p ? NULL : err);
			free(names[k]);
		}
		free(names);
	}
}

int
plugin_port_index(const struct plugin *p, const char *port)
{
	for (int i = 0; i < p->n_outputs; i++)
		if (strcmp(p->desc.outputs[i], port) == 0)
			return i;
	if (strcmp(port, "error") == 0)
		return p->n_outputs;
	return -1;
}

const char *
plugin_port_name(const struct plugin *p, int index)
{
	if (index >= 0 && index < p->n_outputs)
		return p->desc.outputs[index];
	return index == p->n_outputs ? "error" : "?";
}
