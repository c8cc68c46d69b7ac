/*
 * loader_pool.c -- <pool> elements: read from the file, then checked.
 *
 * A pool puts workers (of any plugin) behind one name that stages use as
 * they use a worker's: <pool name="model" policy="least-loaded"
 * fallback="big"> with <member worker="gpu1" weight="2"/> children and
 * <param> children for its tuning (pool_params).  porch.xml(5), POOLS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "check.h"
#include "loader_int.h"
#include "util.h"

#define POOL_WEIGHT_MAX 1000
#define POOL_CONTEXT_MAX 100000000L

const struct porch_param pool_params[] = {
	{ "failures", PORCH_PARAM_INTEGER, "5", 1, 1000, NULL, 0,
	  "failures in a row (transport errors, timeouts, 5xx) that eject a member" },
	{ "cooldown", PORCH_PARAM_DURATION, "5s", 1, 3600000, NULL, 0,
	  "how long a first ejection lasts; each ejection in a row doubles it" },
	{ "max-cooldown", PORCH_PARAM_DURATION, "5m", 1, 86400000, NULL, 0,
	  "the longest an ejection lasts" },
	{ "max-ejected-percent", PORCH_PARAM_INTEGER, "50", 0, 100, NULL, 0,
	  "most of the pool's members ejected at once, in percent (one may always be)" },
	{ "probe-interval", PORCH_PARAM_DURATION, "0", 0, 3600000, NULL, 0,
	  "how often members are probed (workers with a probe callback); 0: never" },
	{ "prefix-bytes", PORCH_PARAM_SIZE, "256", 1, 1048576, NULL, 0,
	  "prefix policy: bytes of the prompt hashed" },
	{ "load-factor", PORCH_PARAM_NUMBER, "1.25", 1, 100, NULL, 0,
	  "prefix policy: a member above this times the mean load passes the call on" },
	{ "explore", PORCH_PARAM_NUMBER, "0.05", 0, 1, NULL, 0,
	  "latency policy: share of calls sent at random, so a recovered member is tried" },
	{ "seed", PORCH_PARAM_INTEGER, "0", 0, 9007199254740992.0, NULL, 0,
	  "seed of the pool's random numbers; 0: from the clock" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static const struct attr_rule pool_attrs[] = {
	{ "name", 1, NULL }, { "policy", 0, NULL }, { "fallback", 0, NULL },
	{ NULL, 0, NULL },
};
static const struct attr_rule member_attrs[] = {
	{ "worker", 1, NULL }, { "weight", 0, NULL }, { "context-limit", 0, NULL },
	{ NULL, 0, NULL },
};

/* An integer attribute in [lo, hi]; def when absent, def after an error. */
static long
long_attr(xmlNodePtr n, const char *name, long def, long lo, long hi, struct diag *d,
    struct cfg_pos *at)
{
	char *v = attr(n, name);
	*at = attr_value_pos(d, n, name);
	if (v == NULL)
		return def;
	int64_t i;
	int rc = parse_int64(v, &i);
	long out = def;
	if (rc == -1)
		diag_error(d, at->line, at->col, "<member> %s='%s' is not an integer "
		    "(%ld to %ld)", name, v, lo, hi);
	else if (rc == -2 || i < lo || i > hi)
		diag_error(d, at->line, at->col, "<member> %s='%s' is out of range "
		    "(%ld to %ld)", name, v, lo, hi);
	else
		out = (long)i;
	free(v);
	return out;
}

static void free_one(struct cfg_pool *pl);

static void
read_member(xmlNodePtr n, struct cfg_pool *pl, struct diag *d)
{
	check_attrs(n, member_attrs, d);
	for (xmlNodePtr c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE) {
			struct cfg_pos at = elem_pos(d, c);
			diag_error(d, at.line, at.col, "unexpected element <%s> inside "
			    "<member>; a <member> has attributes only", c->name);
		}
	char *worker = attr(n, "worker");
	if (worker == NULL)
		return;
	pl->members = xrealloc(pl->members, (pl->n_members + 1) * sizeof *pl->members);
	struct cfg_member *m = &pl->members[pl->n_members++];
	memset(m, 0, sizeof *m);
	m->worker_name = worker;
	m->at = elem_pos(d, n);
	m->worker_at = attr_value_pos(d, n, "worker");
	m->weight = (int)long_attr(n, "weight", 1, 1, POOL_WEIGHT_MAX, d, &m->weight_at);
	m->context_limit = long_attr(n, "context-limit", 0, 0, POOL_CONTEXT_MAX, d,
	    &m->limit_at);
}

void
pool_read(xmlNodePtr n, struct cfg_pipeline *p, struct diag *d)
{
	check_attrs(n, pool_attrs, d);
	char *name = attr(n, "name");
	struct cfg_pool tmp, *pl = &tmp;
	memset(&tmp, 0, sizeof tmp);
	if (name != NULL) {
		p->pools = xrealloc(p->pools, (p->n_pools + 1) * sizeof *p->pools);
		pl = &p->pools[p->n_pools++];
		memset(pl, 0, sizeof *pl);
	}
	pl->name = name;
	pl->at = elem_pos(d, n);
	pl->line = pl->at.line;
	pl->name_at = attr_value_pos(d, n, "name");
	pl->policy_name = attr(n, "policy");
	pl->policy_at = attr_value_pos(d, n, "policy");
	pl->fallback = attr(n, "fallback");
	pl->fallback_at = attr_value_pos(d, n, "fallback");
	pl->policy = BAL_LEAST_LOADED;
	read_params(n, &pl->params, d, "member");
	for (xmlNodePtr c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, BAD_CAST "member") == 0)
			read_member(c, pl, d);
	if (pl == &tmp)
		free_one(&tmp); /* no name: reported; read only for its errors */
}

static void
free_one(struct cfg_pool *pl)
{
	free(pl->name);
	free(pl->policy_name);
	free(pl->fallback);
	for (size_t j = 0; j < pl->n_members; j++)
		free(pl->members[j].worker_name);
	free(pl->members);
	for (size_t j = 0; j < pl->params.n; j++) {
		free((char *)pl->params.v[j].name);
		free((char *)pl->params.v[j].value);
	}
	free(pl->params.v);
	params_free(pl->parsed);
	free(pl->fb_workers);
	free(pl->fb_pools);
}

void
pool_cfg_free(struct cfg_pipeline *p)
{
	for (size_t i = 0; i < p->n_pools; i++)
		free_one(&p->pools[i]);
	free(p->pools);
	p->pools = NULL;
	p->n_pools = 0;
}

/* ---- checks --------------------------------------------------------------- */

struct cfg_pool *
pool_find(struct cfg_pipeline *p, const char *name)
{
	for (size_t i = 0; name != NULL && i < p->n_pools; i++)
		if (p->pools[i].name && strcmp(p->pools[i].name, name) == 0)
			return &p->pools[i];
	return NULL;
}

static struct cfg_worker *
worker_named(struct cfg_pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->n_workers; i++)
		if (p->workers[i].name && strcmp(p->workers[i].name, name) == 0)
			return &p->workers[i];
	return NULL;
}

/* The worker or pool name nearest s, or NULL. */
static const char *
near_target(struct cfg_pipeline *p, const char *s, int pools)
{
	size_t n = p->n_workers + (pools ? p->n_pools : 0);
	const char **c = xcalloc(n + 1, sizeof *c);
	size_t k = 0;
	for (size_t i = 0; i < p->n_workers; i++)
		if (p->workers[i].name)
			c[k++] = p->workers[i].name;
	for (size_t i = 0; pools && i < p->n_pools; i++)
		c[k++] = p->pools[i].name;
	const char *near = nearest(c, k, s);
	free(c);
	return near;
}

/* Names: valid, and not a worker's, a stage's or an earlier pool's. */
static void
check_pool_name(struct cfg_pipeline *p, size_t i, struct diag *d)
{
	struct cfg_pool *pl = &p->pools[i];
	struct cfg_pos at = pl->name_at;
	if (!name_is_valid(pl->name)) {
		diag_error(d, at.line, at.col, "pool name '%s' is not valid: use "
		    "[a-z][a-z0-9_-]* (lower case, digits, '_', '-')", pl->name);
		return;
	}
	const char *what = NULL;
	int line = 0;
	for (size_t j = 0; what == NULL && j < p->n_workers; j++)
		if (p->workers[j].name && strcmp(p->workers[j].name, pl->name) == 0) {
			what = "worker";
			line = p->workers[j].line;
		}
	for (size_t j = 0; what == NULL && j < p->n_stages; j++)
		if (p->stages[j].name && strcmp(p->stages[j].name, pl->name) == 0) {
			what = "stage";
			line = p->stages[j].line;
		}
	for (size_t j = 0; what == NULL && j < i; j++)
		if (strcmp(p->pools[j].name, pl->name) == 0) {
			what = "pool";
			line = p->pools[j].line;
		}
	if (what != NULL)
		diag_error(d, at.line, at.col, "pool name '%s' is already used by the %s at "
		    "line %d", pl->name, what, line);
}

static void
check_members(struct cfg_pipeline *p, struct cfg_pool *pl, struct diag *d)
{
	if (pl->n_members == 0) {
		diag_error(d, pl->at.line, pl->at.col, "pool '%s' has no members: add "
		    "<member worker=\"NAME\"/> naming a <worker>", pl->name);
		return;
	}
	if (pl->n_members > BALANCE_MAX) {
		struct cfg_pos at = pl->members[BALANCE_MAX].at;
		diag_error(d, at.line, at.col, "pool '%s' has %zu members; a pool has at "
		    "most %d", pl->name, pl->n_members, BALANCE_MAX);
	}
	for (size_t j = 0; j < pl->n_members; j++) {
		struct cfg_member *m = &pl->members[j];
		struct cfg_pos at = m->worker_at;
		m->worker = worker_named(p, m->worker_name);
		if (m->worker == NULL) {
			const char *near = near_target(p, m->worker_name, 0);
			if (pool_find(p, m->worker_name) != NULL)
				diag_error(d, at.line, at.col, "pool '%s': member '%s' is a pool; "
				    "members are workers (a pool can name another in fallback=)",
				    pl->name, m->worker_name);
			else if (near)
				diag_error(d, at.line, at.col, "pool '%s': unknown worker '%s' in "
				    "<member>; did you mean '%s'?", pl->name, m->worker_name, near);
			else
				diag_error(d, at.line, at.col, "pool '%s': unknown worker '%s' in "
				    "<member> (declare it with <worker name=\"%s\" plugin=\"...\">)",
				    pl->name, m->worker_name, m->worker_name);
			continue;
		}
		for (size_t k = 0; k < j; k++)
			if (strcmp(pl->members[k].worker_name, m->worker_name) == 0) {
				diag_error(d, at.line, at.col, "pool '%s': worker '%s' is already "
				    "a member (line %d)", pl->name, m->worker_name,
				    pl->members[k].at.line);
				break;
			}
	}
}

static void
check_policy(struct cfg_pool *pl, struct diag *d)
{
	if (pl->policy_name == NULL)
		return;
	int pol = balance_policy_parse(pl->policy_name);
	if (pol >= 0) {
		pl->policy = pol;
		return;
	}
	const char *names[BAL_N_POLICIES];
	for (int i = 0; i < BAL_N_POLICIES; i++)
		names[i] = balance_policy_name(i);
	const char *near = nearest(names, BAL_N_POLICIES, pl->policy_name);
	struct cfg_pos at = pl->policy_at;
	if (near)
		diag_error(d, at.line, at.col, "pool '%s': unknown policy '%s'; did you mean "
		    "'%s'? (one of %s)", pl->name, pl->policy_name, near, balance_policy_list());
	else
		diag_error(d, at.line, at.col, "pool '%s': unknown policy '%s' (one of %s)",
		    pl->name, pl->policy_name, balance_policy_list());
}

/* fallback="a, b": each a worker or a pool, not itself, not twice. */
static void
check_fallback(struct cfg_pipeline *p, struct cfg_pool *pl, struct diag *d)
{
	if (pl->fallback == NULL)
		return;
	struct cfg_pos at = pl->fallback_at;
	char *list = xstrdup(pl->fallback), *save = NULL;
	for (char *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		size_t len = strlen(t);
		while (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t'))
			t[--len] = '\0';
		if (len == 0) {
			diag_error(d, at.line, at.col, "pool '%s': fallback='%s' has an empty "
			    "name; write names separated by commas", pl->name, pl->fallback);
			continue;
		}
		struct cfg_worker *w = worker_named(p, t);
		struct cfg_pool *o = w ? NULL : pool_find(p, t);
		if (w == NULL && o == NULL) {
			const char *near = near_target(p, t, 1);
			if (near)
				diag_error(d, at.line, at.col, "pool '%s': fallback '%s' is no "
				    "worker or pool; did you mean '%s'?", pl->name, t, near);
			else
				diag_error(d, at.line, at.col, "pool '%s': fallback '%s' is no "
				    "worker or pool", pl->name, t);
			continue;
		}
		if (o == pl) {
			diag_error(d, at.line, at.col, "pool '%s': fallback names the pool "
			    "itself", pl->name);
			continue;
		}
		size_t k = pl->n_fallbacks++;
		pl->fb_workers = xrealloc(pl->fb_workers, pl->n_fallbacks * sizeof *pl->fb_workers);
		pl->fb_pools = xrealloc(pl->fb_pools, pl->n_fallbacks * sizeof *pl->fb_pools);
		pl->fb_workers[k] = w;
		pl->fb_pools[k] = o;
	}
	free(list);
}

/* A cycle of pools through fallback=, reported once at the first pool on
 * it: "a -> b -> a".  state: 0 new, 1 on the path, 2 done. */
static int
fallback_cycle(struct cfg_pipeline *p, size_t i, unsigned char *state, size_t *path,
    size_t depth, struct diag *d)
{
	state[i] = 1;
	path[depth] = i;
	struct cfg_pool *pl = &p->pools[i];
	for (size_t k = 0; k < pl->n_fallbacks; k++) {
		if (pl->fb_pools[k] == NULL)
			continue;
		size_t j = (size_t)(pl->fb_pools[k] - p->pools);
		if (state[j] == 1) {
			char buf[1024];
			size_t used = 0, from = 0;
			while (path[from] != j)
				from++;
			for (size_t q = from; q <= depth && used < sizeof buf; q++)
				used += (size_t)snprintf(buf + used, sizeof buf - used, "%s -> ",
				    p->pools[path[q]].name);
			if (used < sizeof buf)
				snprintf(buf + used, sizeof buf - used, "%s", p->pools[j].name);
			struct cfg_pool *at = &p->pools[j];
			diag_error(d, at->fallback_at.line, at->fallback_at.col, "pool '%s': "
			    "fallback cycle %s", at->name, buf);
			return 1;
		}
		if (state[j] == 0 && fallback_cycle(p, j, state, path, depth + 1, d))
			return 1;
	}
	state[i] = 2;
	return 0;
}

void
pool_check(struct cfg_pipeline *p, const struct override *ov, size_t n_ov,
    struct diag *d)
{
	for (size_t i = 0; i < p->n_pools; i++) {
		struct cfg_pool *pl = &p->pools[i];
		check_pool_name(p, i, d);
		/* --set POOL.policy=NAME replaces the attribute, as NAME.plugin=
		 * replaces a worker's plugin */
		for (size_t k = 0; pl->name != NULL && k < n_ov; k++)
			if (strcmp(ov[k].target, pl->name) == 0 &&
			    strcmp(ov[k].param, "policy") == 0) {
				free(pl->policy_name);
				pl->policy_name = xstrdup(ov[k].value);
				pl->policy_at.line = 0;
				pl->policy_at.col = 0;
			}
		check_policy(pl, d);
		check_members(p, pl, d);
		char owner[160];
		snprintf(owner, sizeof owner, "pool '%s'", pl->name);
		/* the file's <param>s, then --set POOL.PARAM=VALUE */
		size_t n = pl->params.n;
		struct param_input *in = xcalloc(n + n_ov + 1, sizeof *in);
		if (n > 0)
			memcpy(in, pl->params.v, n * sizeof *in);
		for (size_t k = 0; k < n_ov; k++) {
			if (strcmp(ov[k].target, pl->name) != 0 ||
			    strcmp(ov[k].param, "policy") == 0)
				continue;
			in[n].name = ov[k].param;
			in[n].value = ov[k].value;
			in[n].override = 1;
			n++;
		}
		pl->parsed = params_parse(pool_params, in, n, d, pl->at.line, pl->at.col,
		    owner, p->dir);
		free(in);
	}
	for (size_t i = 0; i < p->n_pools; i++)
		check_fallback(p, &p->pools[i], d);
	unsigned char *state = xcalloc(p->n_pools + 1, 1);
	size_t *path = xcalloc(p->n_pools + 1, sizeof *path);
	for (size_t i = 0; i < p->n_pools; i++)
		if (state[i] == 0 && fallback_cycle(p, i, state, path, 0, d))
			break;
	free(state);
	free(path);
}
