/*
 * check.c -- the graph and parameter checks of a pipeline file.
 *
 * Runs after the structural walk, even when the walk found errors, so one
 * run of `porch check` shows every problem in the file.  Each check reports
 * and goes on; what the walk could not read (struct check_gaps), a plugin
 * that did not load or a name that did not resolve is taken as unknown, not
 * as wrong, so only root causes are reported and never their consequences.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crash.h"
#include "util.h"


static struct cfg_stage *
find_stage(struct cfg_pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->n_stages; i++)
		if (p->stages[i].name && strcmp(p->stages[i].name, name) == 0)
			return &p->stages[i];
	return NULL;
}

static struct cfg_worker *
find_worker(struct cfg_pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->n_workers; i++)
		if (p->workers[i].name && strcmp(p->workers[i].name, name) == 0)
			return &p->workers[i];
	return NULL;
}

/* The nearest stage (workers=0) or worker (workers=1) name, or NULL. */
static const char *
near_name(struct cfg_pipeline *p, const char *name, int workers)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	size_t n = workers ? p->n_workers + p->n_pools : p->n_stages;
	for (size_t i = 0; i < n; i++) {
		const char *c = !workers ? p->stages[i].name : i < p->n_workers ?
		    p->workers[i].name : p->pools[i - p->n_workers].name;
		if (c == NULL)
			continue;
		size_t dist = edit_distance(c, name);
		if (dist < best_d) {
			best_d = dist;
			best = c;
		}
	}
	/* a third of the name may differ, at least one letter: more, and the
	 * suggestion is another name altogether ("llm" is not "rag") */
	size_t len = strlen(name);
	size_t allowed = (len + 2) / 3;
	return best_d <= allowed && best_d < len ? best : NULL;
}

static int
is_ghost(const struct check_gaps *g, const char *name)
{
	for (size_t i = 0; g != NULL && i < g->n_ghosts; i++)
		if (strcmp(g->ghosts[i], name) == 0)
			return 1;
	return 0;
}

/* An unknown name the walk has already accounted for: reporting it again
 * would be a consequence, not a cause. */
static int
excused(const struct check_gaps *g, const char *name)
{
	return g != NULL && (g->unnamed || is_ghost(g, name));
}

/*
 * Invalid and repeated names.  bad[i] is set for a repeated one (workers
 * first, then stages), so later checks leave that element alone: channels
 * naming it reach the first, and "unreachable" would only repeat this.
 */
static void
check_names(struct cfg_pipeline *p, unsigned char *bad, struct diag *d)
{
	for (size_t i = 0; i < p->n_workers + p->n_stages; i++) {
		int is_worker = i < p->n_workers;
		const char *name = is_worker ? p->workers[i].name : p->stages[i - p->n_workers].name;
		struct cfg_pos at = is_worker ? p->workers[i].name_at :
		    p->stages[i - p->n_workers].name_at;
		const char *what = is_worker ? "worker" : "stage";
		if (name == NULL)
			continue;
		if (!name_is_valid(name)) {
			/* "Input": the likely intent is plain lower case */
			char *lower = xstrdup(name);
			for (char *c = lower; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
			if (name_is_valid(lower))
				diag_error(d, at.line, at.col, "%s name '%s' is not valid: use "
				    "[a-z][a-z0-9_-]* (lower case, digits, '_', '-'); did you "
				    "mean '%s'?", what, name, lower);
			else
				diag_error(d, at.line, at.col, "%s name '%s' is not valid: use "
				    "[a-z][a-z0-9_-]* (lower case, digits, '_', '-')", what, name);
			free(lower);
			continue;
		}
		/* stages and workers share one namespace so --set NAME.PARAM is unambiguous */
		for (size_t j = 0; j < i; j++) {
			int other_worker = j < p->n_workers;
			const char *other = other_worker ? p->workers[j].name :
			    p->stages[j - p->n_workers].name;
			int oline = other_worker ? p->workers[j].line : p->stages[j - p->n_workers].line;
			if (other && strcmp(other, name) == 0) {
				diag_error(d, at.line, at.col, "%s name '%s' is already used by "
				    "the %s at line %d", what, name,
				    other_worker ? "worker" : "stage", oline);
				bad[i] = 1;
				break;
			}
		}
	}
}

static void
resolve_plugin(struct cfg_pipeline *p, const char *plugin_name, struct cfg_pos at,
    enum porch_kind want, const char *owner, const struct plugin **out, struct diag *d)
{
	char err[2048];
	*out = NULL;
	if (plugin_name == NULL)   /* no plugin=: the walk said so */
		return;
	const struct plugin *pl = registry_find(&p->registry, plugin_name, err, sizeof err);
	if (pl == NULL) {
		diag_error(d, at.line, at.col, "%s: %s", owner, err);
		return;
	}
	if (pl->desc.kind != want) {
		diag_error(d, at.line, at.col, "%s: plugin '%s' is a %s plugin; use it in a "
		    "<%s> element", owner, plugin_name,
		    pl->desc.kind == PORCH_KIND_WORKER ? "worker" : "stage",
		    pl->desc.kind == PORCH_KIND_WORKER ? "worker" : "stage");
		return;
	}
	*out = pl;
}

/* --set NAME.plugin=PLUGIN: the stage or worker is made by another plugin
 * (e.g. an echo worker becomes an openai one), its parameters then
 * checked against that plugin's table. */
static void
plugin_override(char **plugin_name, struct cfg_pos *at, const char *name,
    const struct override *ov, size_t n_ov)
{
	for (size_t i = 0; i < n_ov; i++) {
		if (strcmp(ov[i].target, name) == 0 && strcmp(ov[i].param, "plugin") == 0) {
			free(*plugin_name);
			*plugin_name = xstrdup(ov[i].value);
			at->line = at->col = 0; /* not the file's: errors have no place in it */
		}
	}
}

/* The file's params plus any --set for this name, then parsed. */
static porch_params *
parse_params(struct cfg_pipeline *p, const struct cfg_params *ps, const char *name,
    const struct plugin *pl, struct cfg_pos at, const char *owner,
    const struct override *ov, size_t n_ov, struct diag *d)
{
	size_t n = ps->n;
	struct param_input *in = xcalloc(n + n_ov, sizeof *in);
	if (n > 0)
		memcpy(in, ps->v, n * sizeof *in);
	for (size_t i = 0; i < n_ov; i++) {
		if (strcmp(ov[i].target, name) != 0 || strcmp(ov[i].param, "plugin") == 0 ||
		    override_structural(p, &ov[i]))
			continue;
		in[n].name = ov[i].param;
		in[n].value = ov[i].value;
		in[n].line = 0;
		in[n].override = 1;
		n++;
	}
	porch_params *parsed = params_parse(pl->desc.params, in, n, d, at.line, at.col,
	    owner, p->dir);
	free(in);
	return parsed;
}

/* A plugin's own check of its parsed parameters (descriptor 1.1). */
struct porch_check {
	struct diag *d;
	const struct cfg_params *ps;
	const char *name, *owner;
	struct cfg_pos at;
	const struct override *ov;
	size_t n_ov;
	int errors;
	const char *worker;         /* a stage's worker=, or NULL */
};

const char *
porch_check_worker(const porch_check *c)
{
	return c->worker;
}

/* Bytes of value the entity reference at t (an '&') stands for, and its
 * length in *n; 0 when it is not one. */
static size_t
entity_bytes(const char *t, size_t left, size_t *n)
{
	const char *semi = memchr(t, ';', left < 12 ? left : 12);
	if (semi == NULL)
		return 0;
	*n = (size_t)(semi - t) + 1;
	if (t[1] != '#')
		return 1; /* &lt; &gt; &amp; &quot; &apos; */
	unsigned long cp = t[2] == 'x' ? strtoul(t + 3, NULL, 16) : strtoul(t + 2, NULL, 10);
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* Steps over a CDATA section's start or end at t[*p], which yields no
 * byte of the value: 1 when there was one. */
static int
cdata_mark(const char *t, size_t n, size_t *p, int *cdata)
{
	if (!*cdata && *p + 9 <= n && memcmp(t + *p, "<![CDATA[", 9) == 0) {
		*p += 9;
		*cdata = 1;
		return 1;
	}
	if (*cdata && *p + 3 <= n && memcmp(t + *p, "]]>", 3) == 0) {
		*p += 3;
		*cdata = 0;
		return 1;
	}
	return 0;
}

/*
 * The file position of byte offset of a parameter value whose text begins
 * at line:col: white space the value was trimmed of skipped, then the
 * file's bytes walked as the parser reads them.
 */
static void
value_pos(const struct diag *d, int line, int col, size_t offset, int *oline, int *ocol)
{
	*oline = line;
	*ocol = col;
	size_t p = diag_pos_offset(d, line, col);
	if (p == (size_t)-1 || d->text == NULL)
		return;
	const char *t = d->text;
	size_t n = d->text_len, k = 0;
	int cdata = 0;
	/* a value that begins inside a CDATA section: its bytes are literal */
	for (size_t q = p; q >= 9; q--) {
		if (memcmp(t + q - 3, "]]>", 3) == 0)
			break;
		if (memcmp(t + q - 9, "<![CDATA[", 9) == 0) {
			cdata = 1;
			break;
		}
		if (t[q - 1] == '>')
			break;
	}
	/* the white space the value was trimmed of */
	for (;;) {
		if (cdata_mark(t, n, &p, &cdata))
			continue;
		if (p < n && (t[p] == ' ' || t[p] == '\t' || t[p] == '\r' || t[p] == '\n')) {
			p++;
			continue;
		}
		break;
	}
	while (p < n && k < offset) {
		if (cdata_mark(t, n, &p, &cdata))
			continue;
		size_t len, bytes;
		if (!cdata && t[p] == '&' && (bytes = entity_bytes(t + p, n - p, &len)) > 0) {
			k += bytes;
			p += len;
			continue;
		}
		p++;
		k++;
	}
	diag_offset_pos(d, p, oline, ocol);
}

static void
check_verror(porch_check *c, const char *param, int has_offset, size_t offset,
    const char *fmt, va_list ap)
{
	char text[1024];
	vsnprintf(text, sizeof text, fmt, ap);
	c->errors++;
	if (param != NULL) {
		for (size_t i = c->n_ov; i-- > 0;) {
			if (strcmp(c->ov[i].target, c->name) == 0 &&
			    strcmp(c->ov[i].param, param) == 0) {
				if (has_offset)
					diag_error(c->d, 0, 0, "--set %s.%s: %s: at offset %zu: %s",
					    c->name, param, c->owner, offset, text);
				else
					diag_error(c->d, 0, 0, "--set %s.%s: %s: %s", c->name, param,
					    c->owner, text);
				return;
			}
		}
		for (size_t i = c->ps->n; i-- > 0;) {
			const struct param_input *in = &c->ps->v[i];
			if (strcmp(in->name, param) == 0) {
				int line = in->vline, col = in->vcol;
				if (has_offset)
					value_pos(c->d, in->vline, in->vcol, offset, &line, &col);
				diag_error(c->d, line, col, "%s: %s", c->owner, text);
				return;
			}
		}
	}
	diag_error(c->d, c->at.line, c->at.col, "%s: %s", c->owner, text);
}

void
porch_check_error(porch_check *c, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	check_verror(c, param, 0, 0, fmt, ap);
	va_end(ap);
}

void
porch_check_error_at(porch_check *c, const char *param, size_t offset, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	check_verror(c, param, 1, offset, fmt, ap);
	va_end(ap);
}

/* Runs the plugin's check when its parameters parsed cleanly. */
static void
plugin_check(const struct plugin *pl, const porch_params *parsed, int errors_before,
    const struct cfg_params *ps, const char *name, const char *worker, const char *owner,
    struct cfg_pos at, const struct override *ov, size_t n_ov, struct diag *d)
{
	if (pl->desc.check == NULL || parsed == NULL || d->errors != errors_before)
		return;
	struct porch_check c = { d, ps, name, owner, at, ov, n_ov, 0, worker };
	struct cb_frame saved = cb_set(pl->desc.kind == PORCH_KIND_WORKER ? "worker" :
	    "stage", name, pl->desc.name, pl->path, "check", 0);
	int rc = pl->desc.check(parsed, &c);
	cb_leave(saved);
	if (rc != 0 && c.errors == 0)
		diag_error(d, at.line, at.col, "%s: its parameters were refused "
		    "(the plugin gave no reason)", owner);
}

static void
check_overrides(struct cfg_pipeline *p, const struct override *ov, size_t n_ov, struct diag *d)
{
	for (size_t i = 0; i < n_ov; i++) {
		if (override_structural(p, &ov[i]))
			continue; /* loader_set.c's */
		if (find_stage(p, ov[i].target) || find_worker(p, ov[i].target) ||
		    pool_find(p, ov[i].target))
			continue;
		const char *near = near_name(p, ov[i].target, 0);
		const char *nw = near_name(p, ov[i].target, 1);
		if (near == NULL || (nw != NULL && edit_distance(nw, ov[i].target) <
		    edit_distance(near, ov[i].target)))
			near = nw;
		if (near)
			diag_error(d, 0, 0, "--set %s.%s: no stage, worker or pool named '%s'; "
			    "did you mean '%s'?", ov[i].target, ov[i].param, ov[i].target, near);
		else
			diag_error(d, 0, 0, "--set %s.%s: no stage, worker or pool named '%s'",
			    ov[i].target, ov[i].param, ov[i].target);
	}
}

/* The one worker a stage could mean, when the file declares exactly one. */
static const char *
only_worker(struct cfg_pipeline *p)
{
	return p->n_workers == 1 && p->workers[0].plugin != NULL ? p->workers[0].name : NULL;
}

static void
check_nodes(struct cfg_pipeline *p, const struct check_gaps *g, const struct override *ov,
    size_t n_ov, struct diag *d)
{
	char owner[256];
	for (size_t i = 0; i < p->n_workers; i++) {
		struct cfg_worker *w = &p->workers[i];
		snprintf(owner, sizeof owner, "worker '%s'", w->name);
		plugin_override(&w->plugin_name, &w->plugin_at, w->name, ov, n_ov);
		resolve_plugin(p, w->plugin_name, w->plugin_at, PORCH_KIND_WORKER, owner,
		    &w->plugin, d);
		if (w->plugin == NULL)
			continue;
		snprintf(owner, sizeof owner, "worker '%s' (plugin %s)", w->name, w->plugin_name);
		int before = d->errors;
		w->parsed = parse_params(p, &w->params, w->name, w->plugin, w->at, owner,
		    ov, n_ov, d);
		plugin_check(w->plugin, w->parsed, before, &w->params, w->name, NULL, owner,
		    w->at, ov, n_ov, d);
	}
	for (size_t i = 0; i < p->n_stages; i++) {
		struct cfg_stage *s = &p->stages[i];
		snprintf(owner, sizeof owner, "stage '%s'", s->name);
		plugin_override(&s->plugin_name, &s->plugin_at, s->name, ov, n_ov);
		resolve_plugin(p, s->plugin_name, s->plugin_at, PORCH_KIND_STAGE, owner,
		    &s->plugin, d);
		if (s->worker_name != NULL) {
			s->worker = find_worker(p, s->worker_name);
			s->pool = s->worker ? NULL : pool_find(p, s->worker_name);
			const char *near = s->worker || s->pool ? NULL :
			    near_name(p, s->worker_name, 1);
			struct cfg_pos at = s->worker_at;
			if (s->worker != NULL || s->pool != NULL || excused(g, s->worker_name))
				;
			else if (near)
				diag_error(d, at.line, at.col, "stage '%s': unknown worker '%s'; "
				    "did you mean '%s'?", s->name, s->worker_name, near);
			else
				diag_error(d, at.line, at.col, "stage '%s': unknown worker '%s' "
				    "(declare it with <worker name=\"%s\" plugin=\"...\">)",
				    s->name, s->worker_name, s->worker_name);
		}
		if (s->plugin == NULL)
			continue;
		snprintf(owner, sizeof owner, "stage '%s' (plugin %s)", s->name, s->plugin_name);
		int needs = (s->plugin->desc.flags & PORCH_STAGE_NEEDS_WORKER) != 0;
		int may = (s->plugin->desc.flags & PORCH_STAGE_OPTIONAL_WORKER) != 0;
		if (needs && s->worker_name == NULL) {
			if (only_worker(p) != NULL)
				diag_error(d, s->at.line, s->at.col, "%s needs a worker: add "
				    "worker=\"%s\"", owner, only_worker(p));
			else
				diag_error(d, s->at.line, s->at.col, "%s needs a worker: add "
				    "worker=\"NAME\" naming a <worker>", owner);
		} else if (!needs && !may && s->worker_name != NULL) {
			diag_error(d, s->worker_at.line, s->worker_at.col, "%s takes no "
			    "worker; remove worker=\"%s\"", owner, s->worker_name);
		}
		int before = d->errors;
		s->parsed = parse_params(p, &s->params, s->name, s->plugin, s->at, owner,
		    ov, n_ov, d);
		plugin_check(s->plugin, s->parsed, before, &s->params, s->name, s->worker_name,
		    owner, s->at, ov, n_ov, d);
	}
}

/*
 * "worker 'x' is not used": only when that is surely so.  A stage naming an
 * unknown worker, or one that needs a worker and names none, was probably
 * meant to use it, and that stage's error already says what to fix.
 */
static void
check_unused_workers(struct cfg_pipeline *p, const struct check_gaps *g,
    const unsigned char *bad, struct diag *d)
{
	if (p->n_stages == 0 || (g != NULL && (g->unnamed || g->n_ghosts > 0)))
		return;
	for (size_t j = 0; j < p->n_stages; j++) {
		const struct cfg_stage *s = &p->stages[j];
		if (s->worker_name != NULL && s->worker == NULL && s->pool == NULL)
			return;
		if (s->worker_name == NULL && (s->plugin == NULL ||
		    (s->plugin->desc.flags & PORCH_STAGE_NEEDS_WORKER)))
			return;
	}
	/* an empty pool, or one naming an unknown worker, was meant to use it */
	for (size_t j = 0; j < p->n_pools; j++) {
		if (p->pools[j].n_members == 0)
			return;
		for (size_t k = 0; k < p->pools[j].n_members; k++)
			if (p->pools[j].members[k].worker == NULL)
				return;
	}
	for (size_t i = 0; i < p->n_workers; i++) {
		const struct cfg_worker *w = &p->workers[i];
		if (bad[i] || w->plugin == NULL)
			continue;
		int used = 0;
		for (size_t j = 0; j < p->n_stages; j++)
			if (p->stages[j].worker == w)
				used = 1;
		for (size_t j = 0; j < p->n_pools; j++) {
			for (size_t k = 0; k < p->pools[j].n_members; k++)
				if (p->pools[j].members[k].worker == w)
					used = 1;
			for (size_t k = 0; k < p->pools[j].n_fallbacks; k++)
				if (p->pools[j].fb_workers[k] == w)
					used = 1;
		}
		if (!used)
			diag_warning(d, w->name_at.line, w->name_at.col, "worker '%s' is not "
			    "used by any stage", w->name);
	}
}

static int
is_source(const struct cfg_stage *s)
{
	return s->plugin && (s->plugin->desc.flags & PORCH_STAGE_SOURCE);
}

/* "out, error": a plugin's ports, for messages. */
static void
port_list(const struct plugin *pl, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int k = 0; k <= pl->n_outputs && used < len; k++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", k ? ", " : "",
		    plugin_port_name(pl, k));
}

static const char *
near_port(const struct plugin *pl, const char *port)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	for (int k = 0; k <= pl->n_outputs; k++) {
		size_t dist = edit_distance(plugin_port_name(pl, k), port);
		if (dist < best_d) {
			best_d = dist;
			best = plugin_port_name(pl, k);
		}
	}
	return best_d <= 2 + strlen(port) / 3 ? best : NULL;
}

static void
check_channels(struct cfg_pipeline *p, const struct check_gaps *g, struct diag *d)
{
	for (size_t i = 0; i < p->n_channels; i++) {
		struct cfg_channel *c = &p->channels[i];
		c->port_index = -1;
		c->src = find_stage(p, c->from);
		c->dst = find_stage(p, c->to);
		if (c->src == NULL && !excused(g, c->from)) {
			const char *near = near_name(p, c->from, 0);
			if (near)
				diag_error(d, c->from_at.line, c->from_at.col, "channel from "
				    "unknown stage '%s'; did you mean '%s'?", c->from, near);
			else
				diag_error(d, c->from_at.line, c->from_at.col, "channel from "
				    "unknown stage '%s'", c->from);
		}
		if (c->dst == NULL && strchr(c->to, ':') != NULL) {
			diag_error(d, c->to_at.line, c->to_at.col, "channel to '%s': to= names "
			    "a stage, and a stage has one input (ports are for from= only)",
			    c->to);
		} else if (c->dst == NULL && !excused(g, c->to)) {
			const char *near = near_name(p, c->to, 0);
			if (near)
				diag_error(d, c->to_at.line, c->to_at.col, "channel to unknown "
				    "stage '%s'; did you mean '%s'?", c->to, near);
			else
				diag_error(d, c->to_at.line, c->to_at.col, "channel to unknown "
				    "stage '%s'", c->to);
		}
		if (c->dst != NULL && is_source(c->dst))
			diag_error(d, c->to_at.line, c->to_at.col, "channel to stage '%s': it is "
			    "a source (plugin %s) and takes no input", c->to,
			    c->dst->plugin_name);
		if (c->src == NULL || c->src->plugin == NULL)
			continue;
		const struct plugin *pl = c->src->plugin;
		c->port_index = plugin_port_index(pl, c->port);
		if (c->port_index < 0) {
			char ports[256];
			const char *near = near_port(pl, c->port);
			port_list(pl, ports, sizeof ports);
			if (near)
				diag_error(d, c->port_at.line, c->port_at.col, "stage '%s' (plugin "
				    "%s) has no port '%s'; did you mean '%s'? (its ports are: %s)",
				    c->from, c->src->plugin_name, c->port, near, ports);
			else
				diag_error(d, c->port_at.line, c->port_at.col, "stage '%s' (plugin "
				    "%s) has no port '%s'; its ports are: %s", c->from,
				    c->src->plugin_name, c->port, ports);
			continue;
		}
		check_port_channels(p, i, d);
	}
}

/* ---- graph shape -------------------------------------------------------- */

struct walk {
	struct cfg_pipeline *p;
	struct diag *d;
	int *state;     /* 0 new, 1 on the DFS stack, 2 done */
	size_t *stack;  /* stage indices on the current path */
	size_t depth;
	int found_cycle;
};

static size_t
stage_index(struct cfg_pipeline *p, const struct cfg_stage *s)
{
	return (size_t)(s - p->stages);
}

static void
dfs(struct walk *w, size_t v)
{
	w->state[v] = 1;
	w->stack[w->depth++] = v;
	for (size_t i = 0; i < w->p->n_channels; i++) {
		struct cfg_channel *c = &w->p->channels[i];
		if (c->src == NULL || c->dst == NULL || stage_index(w->p, c->src) != v)
			continue;
		size_t u = stage_index(w->p, c->dst);
		if (w->state[u] == 1) {
			/* spell the cycle out from u back to u */
			char buf[1024];
			size_t used = 0, k = 0;
			while (w->stack[k] != u)
				k++;
			for (; k < w->depth && used < sizeof buf; k++)
				used += (size_t)snprintf(buf + used, sizeof buf - used, "%s -> ",
				    w->p->stages[w->stack[k]].name);
			if (used < sizeof buf)
				snprintf(buf + used, sizeof buf - used, "%s", w->p->stages[u].name);
			diag_error(w->d, c->at.line, c->at.col, "the graph has a cycle: %s "
			    "(pipelines must be acyclic)", buf);
			w->found_cycle = 1;
		} else if (w->state[u] == 0) {
			dfs(w, u);
		}
	}
	w->depth--;
	w->state[v] = 2;
}

/* The stage an unknown name most likely meant: its "did you mean". */
static struct cfg_stage *
guess_stage(struct cfg_pipeline *p, const char *name)
{
	const char *near = near_name(p, name, 0);
	return near != NULL ? find_stage(p, near) : NULL;
}

/*
 * Sources, reachability and sinks, on the graph as far as it is known.  A
 * channel end that did not resolve stands for its "did you mean" stage when
 * there is one (the author's likely intent); a ghost end or a stage whose
 * plugin did not load may be anything, so checks that depend on them are
 * skipped rather than guessed.
 */
static void
check_flow(struct cfg_pipeline *p, const struct check_gaps *g, const unsigned char *bad,
    struct diag *d)
{
	size_t n = p->n_stages, nc = p->n_channels;
	int unsure_out = g != NULL && g->lost_edges;    /* a stage's channel may be lost */
	int unsure_reach = g != NULL && g->lost_edges;  /* a channel into a stage may be lost */
	int unsure_source = g != NULL && (g->unnamed || g->n_ghosts > 0);
	struct cfg_stage **src = xcalloc(nc ? nc : 1, sizeof *src);
	struct cfg_stage **dst = xcalloc(nc ? nc : 1, sizeof *dst);
	int *seen = xcalloc(n, sizeof *seen);
	size_t *queue = xcalloc(n, sizeof *queue), head = 0, tail = 0, sources = 0;

	for (size_t i = 0; i < nc; i++) {
		struct cfg_channel *c = &p->channels[i];
		src[i] = c->src;
		dst[i] = c->dst;
		if (src[i] == NULL && !is_ghost(g, c->from) &&
		    (src[i] = guess_stage(p, c->from)) == NULL)
			unsure_out = 1;
		if (dst[i] == NULL && !is_ghost(g, c->to) &&
		    (dst[i] = guess_stage(p, c->to)) == NULL)
			unsure_reach = 1;
	}
	for (size_t v = 0; v < n; v++) {
		const struct cfg_stage *s = &p->stages[v];
		if (is_source(s))
			sources++;
		if (s->plugin == NULL)
			unsure_source = 1;
		/* a stage whose plugin did not load may be a source */
		if (is_source(s) || s->plugin == NULL) {
			seen[v] = 1;
			queue[tail++] = v;
		}
	}
	/* a channel from an unknown stage may come from a reachable one */
	for (size_t i = 0; i < nc; i++) {
		if (src[i] != NULL || dst[i] == NULL || seen[stage_index(p, dst[i])])
			continue;
		seen[stage_index(p, dst[i])] = 1;
		queue[tail++] = stage_index(p, dst[i]);
	}
	if (sources == 0 && !unsure_source)
		diag_error(d, p->at.line, p->at.col, "the pipeline has no source stage "
		    "(a stage whose plugin makes requests, such as stdin or gen)");
	while (head < tail) {
		size_t v = queue[head++];
		for (size_t i = 0; i < nc; i++) {
			if (src[i] == NULL || dst[i] == NULL || stage_index(p, src[i]) != v ||
			    seen[stage_index(p, dst[i])])
				continue;
			seen[stage_index(p, dst[i])] = 1;
			queue[tail++] = stage_index(p, dst[i]);
		}
	}
	for (size_t v = 0; v < n; v++) {
		struct cfg_stage *s = &p->stages[v];
		if (bad[p->n_workers + v] || s->plugin == NULL)
			continue;
		if (sources > 0 && !unsure_reach && !seen[v])
			diag_error(d, s->at.line, s->at.col, "stage '%s' is not reachable from "
			    "any source; add a channel to it", s->name);
		/* a stage that can pass messages on must do so: paths end in sinks */
		if (unsure_out || s->plugin->n_outputs == 0)
			continue;
		int has_out = 0;
		for (size_t i = 0; i < nc; i++)
			if (src[i] == s && (p->channels[i].port_index < 0 ||
			    p->channels[i].port_index < s->plugin->n_outputs))
				has_out = 1;
		if (!has_out)
			diag_error(d, s->at.line, s->at.col, "stage '%s' (plugin %s) has no "
			    "outgoing channel; every path must end in a sink such as stdout "
			    "or null", s->name, s->plugin_name);
	}
	free(src);
	free(dst);
	free(seen);
	free(queue);
}

static void
check_shape(struct cfg_pipeline *p, const struct check_gaps *g, const unsigned char *bad,
    struct diag *d)
{
	size_t n = p->n_stages;
	if (n == 0)     /* the walk said so */
		return;
	struct walk w = { p, d, xcalloc(n, sizeof(int)), xcalloc(n, sizeof(size_t)), 0, 0 };
	for (size_t v = 0; v < n; v++)
		if (w.state[v] == 0)
			dfs(&w, v);
	check_flow(p, g, bad, d);

	/* topological order (Kahn), used by the scheduler to run a batch
	 * through the graph in one pass */
	if (!w.found_cycle && d->errors == 0) {
		int *indeg = xcalloc(n, sizeof *indeg);
		size_t head = 0, tail = 0;
		for (size_t i = 0; i < p->n_channels; i++)
			indeg[stage_index(p, p->channels[i].dst)]++;
		p->order = xcalloc(n, sizeof *p->order);
		for (size_t v = 0; v < n; v++)
			if (indeg[v] == 0)
				p->order[tail++] = v;
		while (head < tail) {
			size_t v = p->order[head++];
			for (size_t i = 0; i < p->n_channels; i++) {
				struct cfg_channel *c = &p->channels[i];
				if (stage_index(p, c->src) == v && --indeg[stage_index(p, c->dst)] == 0)
					p->order[tail++] = stage_index(p, c->dst);
			}
		}
		free(indeg);
	}
	free(w.state);
	free(w.stack);
}

void
check_pipeline(struct cfg_pipeline *p, const struct override *ov, size_t n_ov,
    const struct check_gaps *g, struct diag *d)
{
	unsigned char *bad = xcalloc(p->n_workers + p->n_stages + 1, 1);
	check_names(p, bad, d);
	check_overrides(p, ov, n_ov, d);
	pool_check(p, ov, n_ov, d);
	check_nodes(p, g, ov, n_ov, d);
	int before = d->errors;
	check_channels(p, g, d);
	/* a join's way back to its fan-out is only worth following on channels
	 * that are right: else each error would be told twice */
	if (d->errors == before)
		check_fanouts(p, d);
	check_unused_workers(p, g, bad, d);
	check_shape(p, g, bad, d);
	free(bad);
}
