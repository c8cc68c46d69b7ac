/*
 * check.c -- the graph and parameter checks of a pipeline file.
 *
 * Runs after the structural walk, so every element has its required
 * attributes.  Each check reports and goes on, so one run of `porch check`
 * shows every problem in the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util.h"

static int
valid_name(const char *s)
{
	if (s == NULL || !(*s >= 'a' && *s <= 'z'))
		return 0;
	for (s++; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_' || *s == '-'))
			return 0;
	return 1;
}

static int
attr_col(struct diag *d, int line, const char *attr)
{
	char tok[64];
	snprintf(tok, sizeof tok, "%s=", attr);
	return diag_column(d, line, tok);
}

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
	size_t n = workers ? p->n_workers : p->n_stages;
	for (size_t i = 0; i < n; i++) {
		const char *c = workers ? p->workers[i].name : p->stages[i].name;
		if (c == NULL)
			continue;
		size_t dist = edit_distance(c, name);
		if (dist < best_d) {
			best_d = dist;
			best = c;
		}
	}
	return best_d <= 2 + strlen(name) / 3 ? best : NULL;
}

static void
check_names(struct cfg_pipeline *p, struct diag *d)
{
	for (size_t i = 0; i < p->n_workers + p->n_stages; i++) {
		int is_worker = i < p->n_workers;
		const char *name = is_worker ? p->workers[i].name : p->stages[i - p->n_workers].name;
		int line = is_worker ? p->workers[i].line : p->stages[i - p->n_workers].line;
		const char *what = is_worker ? "worker" : "stage";
		if (!valid_name(name)) {
			diag_error(d, line, attr_col(d, line, "name"), "%s name '%s' is not "
			    "valid: use [a-z][a-z0-9_-]* (lower case, digits, '_', '-')", what, name);
			continue;
		}
		/* stages and workers share one namespace so --set NAME.PARAM is unambiguous */
		for (size_t j = 0; j < i; j++) {
			int other_worker = j < p->n_workers;
			const char *other = other_worker ? p->workers[j].name :
			    p->stages[j - p->n_workers].name;
			int oline = other_worker ? p->workers[j].line : p->stages[j - p->n_workers].line;
			if (other && strcmp(other, name) == 0) {
				diag_error(d, line, attr_col(d, line, "name"), "%s name '%s' is "
				    "already used by the %s at line %d", what, name,
				    other_worker ? "worker" : "stage", oline);
				break;
			}
		}
	}
}

static void
resolve_plugin(struct cfg_pipeline *p, const char *plugin_name, int line,
    enum porch_kind want, const char *owner, const struct plugin **out, struct diag *d)
{
	char err[2048];
	*out = NULL;
	const struct plugin *pl = registry_find(&p->registry, plugin_name, err, sizeof err);
	int col = attr_col(d, line, "plugin");
	if (pl == NULL) {
		diag_error(d, line, col, "%s: %s", owner, err);
		return;
	}
	if (pl->desc.kind != want) {
		diag_error(d, line, col, "%s: plugin '%s' is a %s plugin; use it in a <%s> element",
		    owner, plugin_name, pl->desc.kind == PORCH_KIND_WORKER ? "worker" : "stage",
		    pl->desc.kind == PORCH_KIND_WORKER ? "worker" : "stage");
		return;
	}
	*out = pl;
}

/* The file's params plus any --set for this name, then parsed. */
static porch_params *
parse_params(struct cfg_pipeline *p, const struct cfg_params *ps, const char *name,
    const struct plugin *pl, int line, const char *owner, const struct override *ov,
    size_t n_ov, struct diag *d)
{
	size_t n = ps->n;
	struct param_input *in = xcalloc(n + n_ov, sizeof *in);
	memcpy(in, ps->v, n * sizeof *in);
	for (size_t i = 0; i < n_ov; i++) {
		if (strcmp(ov[i].target, name) != 0)
			continue;
		in[n].name = ov[i].param;
		in[n].value = ov[i].value;
		in[n].line = 0;
		in[n].override = 1;
		n++;
	}
	porch_params *parsed = params_parse(pl->desc.params, in, n, d, line, owner, p->dir);
	free(in);
	return parsed;
}

static void
check_overrides(struct cfg_pipeline *p, const struct override *ov, size_t n_ov, struct diag *d)
{
	for (size_t i = 0; i < n_ov; i++) {
		if (find_stage(p, ov[i].target) || find_worker(p, ov[i].target))
			continue;
		const char *near = near_name(p, ov[i].target, 0);
		if (near == NULL)
			near = near_name(p, ov[i].target, 1);
		if (near)
			diag_error(d, 0, 0, "--set %s.%s: no stage or worker named '%s'; "
			    "did you mean '%s'?", ov[i].target, ov[i].param, ov[i].target, near);
		else
			diag_error(d, 0, 0, "--set %s.%s: no stage or worker named '%s'",
			    ov[i].target, ov[i].param, ov[i].target);
	}
}

static void
check_nodes(struct cfg_pipeline *p, const struct override *ov, size_t n_ov, struct diag *d)
{
	char owner[256];
	for (size_t i = 0; i < p->n_workers; i++) {
		struct cfg_worker *w = &p->workers[i];
		snprintf(owner, sizeof owner, "worker '%s'", w->name);
		resolve_plugin(p, w->plugin_name, w->line, PORCH_KIND_WORKER, owner, &w->plugin, d);
		if (w->plugin == NULL)
			continue;
		snprintf(owner, sizeof owner, "worker '%s' (plugin %s)", w->name, w->plugin_name);
		w->parsed = parse_params(p, &w->params, w->name, w->plugin, w->line, owner,
		    ov, n_ov, d);
	}
	for (size_t i = 0; i < p->n_stages; i++) {
		struct cfg_stage *s = &p->stages[i];
		snprintf(owner, sizeof owner, "stage '%s'", s->name);
		resolve_plugin(p, s->plugin_name, s->line, PORCH_KIND_STAGE, owner, &s->plugin, d);
		if (s->worker_name != NULL) {
			s->worker = find_worker(p, s->worker_name);
			if (s->worker == NULL) {
				const char *near = near_name(p, s->worker_name, 1);
				int col = attr_col(d, s->line, "worker");
				if (near)
					diag_error(d, s->line, col, "stage '%s': unknown worker '%s'; "
					    "did you mean '%s'?", s->name, s->worker_name, near);
				else
					diag_error(d, s->line, col, "stage '%s': unknown worker '%s' "
					    "(declare it with <worker name=\"%s\" plugin=\"...\">)",
					    s->name, s->worker_name, s->worker_name);
			}
		}
		if (s->plugin == NULL)
			continue;
		snprintf(owner, sizeof owner, "stage '%s' (plugin %s)", s->name, s->plugin_name);
		int needs = (s->plugin->desc.flags & PORCH_STAGE_NEEDS_WORKER) != 0;
		if (needs && s->worker_name == NULL)
			diag_error(d, s->line, attr_col(d, s->line, "plugin"), "%s needs a worker: "
			    "add worker=\"NAME\" naming a <worker>", owner);
		else if (!needs && s->worker_name != NULL)
			diag_error(d, s->line, attr_col(d, s->line, "worker"), "%s takes no "
			    "worker; remove worker=\"%s\"", owner, s->worker_name);
		s->parsed = parse_params(p, &s->params, s->name, s->plugin, s->line, owner,
		    ov, n_ov, d);
	}
}

static int
is_source(const struct cfg_stage *s)
{
	return s->plugin && (s->plugin->desc.flags & PORCH_STAGE_SOURCE);
}

static void
check_channels(struct cfg_pipeline *p, struct diag *d)
{
	for (size_t i = 0; i < p->n_channels; i++) {
		struct cfg_channel *c = &p->channels[i];
		c->port_index = -1;
		c->src = find_stage(p, c->from);
		c->dst = find_stage(p, c->to);
		if (c->src == NULL) {
			const char *near = near_name(p, c->from, 0);
			int col = attr_col(d, c->line, "from");
			if (near)
				diag_error(d, c->line, col, "channel from unknown stage '%s'; "
				    "did you mean '%s'?", c->from, near);
			else
				diag_error(d, c->line, col, "channel from unknown stage '%s'", c->from);
		}
		if (c->dst == NULL) {
			const char *near = near_name(p, c->to, 0);
			int col = attr_col(d, c->line, "to");
			if (near)
				diag_error(d, c->line, col, "channel to unknown stage '%s'; "
				    "did you mean '%s'?", c->to, near);
			else
				diag_error(d, c->line, col, "channel to unknown stage '%s'", c->to);
		}
		if (c->dst != NULL && is_source(c->dst))
			diag_error(d, c->line, attr_col(d, c->line, "to"), "channel to stage '%s': "
			    "it is a source (plugin %s) and takes no input", c->to,
			    c->dst->plugin_name);
		if (c->src == NULL || c->src->plugin == NULL)
			continue;
		const struct plugin *pl = c->src->plugin;
		c->port_index = plugin_port_index(pl, c->port);
		if (c->port_index < 0) {
			char ports[256] = "";
			size_t used = 0;
			for (int k = 0; k <= pl->n_outputs; k++)
				used += (size_t)snprintf(ports + used, sizeof ports - used, "%s%s",
				    k ? ", " : "", plugin_port_name(pl, k));
			diag_error(d, c->line, attr_col(d, c->line, "from"), "stage '%s' (plugin %s) "
			    "has no port '%s'; its ports are: %s", c->from, c->src->plugin_name,
			    c->port, ports);
			continue;
		}
		/* one channel per port: a message goes one way (fan-out would need copies) */
		for (size_t j = 0; j < i; j++) {
			struct cfg_channel *o = &p->channels[j];
			if (o->src == c->src && o->port_index == c->port_index) {
				diag_error(d, c->line, attr_col(d, c->line, "from"), "port '%s:%s' "
				    "already has a channel (line %d); a port feeds one channel",
				    c->from, c->port, o->line);
				break;
			}
		}
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
			diag_error(w->d, c->line, attr_col(w->d, c->line, "from"),
			    "the graph has a cycle: %s (pipelines must be acyclic)", buf);
			w->found_cycle = 1;
		} else if (w->state[u] == 0) {
			dfs(w, u);
		}
	}
	w->depth--;
	w->state[v] = 2;
}

static void
check_shape(struct cfg_pipeline *p, struct diag *d)
{
	size_t n = p->n_stages;
	struct walk w = { p, d, xcalloc(n, sizeof(int)), xcalloc(n, sizeof(size_t)), 0, 0 };
	for (size_t v = 0; v < n; v++)
		if (w.state[v] == 0)
			dfs(&w, v);

	/* reachability from the sources */
	int *seen = xcalloc(n, sizeof *seen);
	size_t *queue = xcalloc(n, sizeof *queue), head = 0, tail = 0, sources = 0;
	for (size_t v = 0; v < n; v++)
		if (is_source(&p->stages[v])) {
			seen[v] = 1;
			queue[tail++] = v;
			sources++;
		}
	if (sources == 0)
		diag_error(d, p->stages[0].line, 1, "the pipeline has no source stage "
		    "(a stage whose plugin makes requests, such as stdin or gen)");
	while (head < tail) {
		size_t v = queue[head++];
		for (size_t i = 0; i < p->n_channels; i++) {
			struct cfg_channel *c = &p->channels[i];
			if (c->src && c->dst && stage_index(p, c->src) == v &&
			    !seen[stage_index(p, c->dst)]) {
				seen[stage_index(p, c->dst)] = 1;
				queue[tail++] = stage_index(p, c->dst);
			}
		}
	}
	for (size_t v = 0; v < n; v++) {
		struct cfg_stage *s = &p->stages[v];
		if (sources > 0 && !seen[v] && s->plugin != NULL)
			diag_error(d, s->line, attr_col(d, s->line, "name"), "stage '%s' is not "
			    "reachable from any source; add a channel to it", s->name);
		/* a stage that can pass messages on must do so: paths end in sinks */
		if (s->plugin == NULL || s->plugin->n_outputs == 0)
			continue;
		int has_out = 0;
		for (size_t i = 0; i < p->n_channels; i++)
			if (p->channels[i].src == s && p->channels[i].port_index >= 0 &&
			    p->channels[i].port_index < s->plugin->n_outputs)
				has_out = 1;
		if (!has_out)
			diag_error(d, s->line, attr_col(d, s->line, "name"), "stage '%s' (plugin %s) "
			    "has no outgoing channel; every path must end in a sink such as "
			    "stdout or null", s->name, s->plugin_name);
	}

	/* topological order (Kahn), used by the scheduler to run a batch
	 * through the graph in one pass */
	if (!w.found_cycle && d->errors == 0) {
		int *indeg = xcalloc(n, sizeof *indeg);
		for (size_t i = 0; i < p->n_channels; i++)
			indeg[stage_index(p, p->channels[i].dst)]++;
		p->order = xcalloc(n, sizeof *p->order);
		head = tail = 0;
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
	free(seen);
	free(queue);
	free(w.state);
	free(w.stack);
}

void
check_pipeline(struct cfg_pipeline *p, const struct override *ov, size_t n_ov,
    struct diag *d)
{
	check_names(p, d);
	check_overrides(p, ov, n_ov, d);
	check_nodes(p, ov, n_ov, d);
	check_channels(p, d);
	for (size_t i = 0; i < p->n_workers; i++) {
		int used = 0;
		for (size_t j = 0; j < p->n_stages; j++)
			if (p->stages[j].worker == &p->workers[i])
				used = 1;
		if (!used)
			diag_warning(d, p->workers[i].line, 1, "worker '%s' is not used by any stage",
			    p->workers[i].name);
	}
	check_shape(p, d);
}
