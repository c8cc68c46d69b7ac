/*
 * loader.c -- reads a pipeline file into plain structs.
 *
 * libxml2 parses (loader_xml.c: no network, no DTD, no entities, and
 * each node's position recorded), a structural walk checks elements and
 * attributes with precise messages, check.c checks names, plugins, parameters and the graph, and the shipped
 * RELAX NG schema backs them up.  Every problem is reported, each once, at
 * the token that causes it; what one problem makes unknowable is not
 * reported again as more problems.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "check.h"
#include "cond.h"
#include "loader.h"
#include "loader_int.h"
#include "util.h"

/* $PORCH_SCHEMA, or NULL: the compiled-in copy of the shipped schema. */
const char *
config_schema_path(void)
{
	const char *env = getenv("PORCH_SCHEMA");
	return env && *env ? env : NULL;
}

const char *
overflow_name(enum overflow o)
{
	switch (o) {
	case OVERFLOW_BLOCK: return "block";
	case OVERFLOW_REJECT: return "reject";
	case OVERFLOW_DROP_OLDEST: return "drop-oldest";
	}
	return "?";
}

/* ---- the structural walk ------------------------------------------------ */

static const struct attr_rule pipeline_attrs[] = {
	{ "name", 1, NULL }, { "version", 1, "add version=\"1\"" }, { "plugins", 0, NULL },
	{ "max-inflight", 0, NULL }, { "threads", 0, NULL }, { "nats-url", 0, NULL },
	{ NULL, 0, NULL },
};
static const struct attr_rule worker_attrs[] = {
	{ "name", 1, NULL }, { "plugin", 1, NULL }, { NULL, 0, NULL },
};
static const struct attr_rule stage_attrs[] = {
	{ "name", 1, NULL }, { "plugin", 1, NULL }, { "worker", 0, NULL },
	{ "concurrency", 0, NULL }, { "node", 0, NULL }, { NULL, 0, NULL },
};
static const struct attr_rule channel_attrs[] = {
	{ "from", 1, NULL }, { "to", 1, NULL }, { "capacity", 0, NULL },
	{ "overflow", 0, NULL }, { "when", 0, NULL }, { "otherwise", 0, NULL },
	{ "copy", 0, NULL }, { "transport", 0, NULL }, { "ack-wait", 0, NULL },
	{ "max-deliver", 0, NULL }, { "shards", 0, NULL }, { NULL, 0, NULL },
};
static const struct attr_rule param_attrs[] = {
	{ "name", 1, NULL }, { NULL, 0, NULL },
};

/* The walk's state: where it reports, and what it could not model. */
struct walker {
	struct diag *d;
	struct cfg_pipeline *p;
	struct check_gaps gaps;
};

const char *
nearest(const char *const *cands, size_t n, const char *s)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		size_t dist = edit_distance(cands[i], s);
		if (dist < best_d) {
			best_d = dist;
			best = cands[i];
		}
	}
	return best_d <= 2 + strlen(s) / 3 ? best : NULL;
}

/* "prefix:name" for a namespaced attribute, as it is written. */
static void
attr_qname(xmlAttrPtr a, char *buf, size_t len)
{
	if (a->ns != NULL && a->ns->prefix != NULL)
		snprintf(buf, len, "%s:%s", (const char *)a->ns->prefix, (const char *)a->name);
	else
		snprintf(buf, len, "%s", (const char *)a->name);
}

/* Checks attribute names against the rules; reports unknown and missing. */
void
check_attrs(xmlNodePtr n, const struct attr_rule *rules, struct diag *d)
{
	for (xmlAttrPtr a = n->properties; a != NULL; a = a->next) {
		size_t i;
		for (i = 0; rules[i].name; i++)
			if (a->ns == NULL && xmlStrcmp(a->name, BAD_CAST rules[i].name) == 0)
				break;
		if (rules[i].name != NULL)
			continue;
		const char *names[8];
		size_t k;
		for (k = 0; rules[k].name && k < 8; k++)
			names[k] = rules[k].name;
		char qname[128];
		attr_qname(a, qname, sizeof qname);
		const char *near = nearest(names, k, qname);
		struct cfg_pos at = attr_name_pos(d, n, qname);
		if (near)
			diag_error(d, at.line, at.col, "unknown attribute '%s' on <%s>; did you "
			    "mean '%s'?", qname, n->name, near);
		else
			diag_error(d, at.line, at.col, "unknown attribute '%s' on <%s>", qname,
			    n->name);
	}
	for (size_t i = 0; rules[i].name; i++) {
		if (!rules[i].required || xmlHasNsProp(n, BAD_CAST rules[i].name, NULL))
			continue;
		struct cfg_pos at = elem_pos(d, n);
		if (rules[i].hint)
			diag_error(d, at.line, at.col, "<%s> is missing the required attribute "
			    "'%s'; %s", n->name, rules[i].name, rules[i].hint);
		else
			diag_error(d, at.line, at.col, "<%s> is missing the required attribute "
			    "'%s'", n->name, rules[i].name);
	}
}

/* An attribute's value (without a namespace), or NULL. */
char *
attr(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);
	if (v == NULL)
		return NULL;
	char *s = xstrdup((const char *)v);
	xmlFree(v);
	return s;
}

/* A positive integer attribute within [1, max]; def when absent. */
static long
int_attr(xmlNodePtr n, const char *name, long def, long max, struct diag *d)
{
	char *v = attr(n, name);
	if (v == NULL)
		return def;
	int64_t i;
	int rc = parse_int64(v, &i);
	long out = def;
	struct cfg_pos at = attr_value_pos(d, n, name);
	if (rc == -1)
		diag_error(d, at.line, at.col, "%s='%s' is not an integer (1 to %ld)",
		    name, v, max);
	else if (rc == -2 || i < 1 || i > max)
		diag_error(d, at.line, at.col, "%s='%s' is out of range (1 to %ld)",
		    name, v, max);
	else
		out = (long)i;
	free(v);
	return out;
}

static char *
trimmed_text(xmlNodePtr n)
{
	xmlChar *c = xmlNodeGetContent(n);
	const char *s = c ? (const char *)c : "";
	while (loader_is_space(*s))
		s++;
	size_t len = strlen(s);
	while (len > 0 && loader_is_space(s[len - 1]))
		len--;
	char *out = xstrndup(s, len);
	xmlFree(c);
	return out;
}

/* Text where only elements belong: one error, at the text. */
static void
stray_text(xmlNodePtr t, xmlNodePtr parent, const char *why, struct diag *d)
{
	char ex[64];
	text_excerpt(t, ex, sizeof ex);
	struct cfg_pos at = text_pos(d, t);
	diag_error(d, at.line, at.col, "unexpected text '%s' inside <%s>%s", ex,
	    parent->name, why);
}

void
read_params(xmlNodePtr parent, struct cfg_params *out, struct diag *d, const char *skip)
{
	const char *only[] = { "param", skip };
	for (xmlNodePtr c = parent->children; c != NULL; c = c->next) {
		if (c->type == XML_TEXT_NODE && loader_is_blank(c->content))
			continue;
		if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
			continue;
		if (c->type != XML_ELEMENT_NODE) {
			stray_text(c, parent, " (values go in <param> elements)", d);
			continue;
		}
		if (skip != NULL && xmlStrcmp(c->name, BAD_CAST skip) == 0)
			continue;
		if (xmlStrcmp(c->name, BAD_CAST "param") != 0) {
			struct cfg_pos at = elem_pos(d, c);
			const char *near = nearest(only, skip ? 2 : 1, (const char *)c->name);
			if (near)
				diag_error(d, at.line, at.col, "unknown element <%s> inside <%s>; "
				    "did you mean <%s>?", c->name, parent->name, near);
			else
				diag_error(d, at.line, at.col, "unknown element <%s> inside <%s>; "
				    "only <param>%s%s%s is allowed", c->name, parent->name,
				    skip ? " and <" : "", skip ? skip : "", skip ? ">" : "");
			continue;
		}
		check_attrs(c, param_attrs, d);
		int nested = 0;
		xmlNodePtr value = NULL;
		for (xmlNodePtr g = c->children; g != NULL; g = g->next) {
			if (g->type == XML_ELEMENT_NODE) {
				struct cfg_pos at = elem_pos(d, g);
				diag_error(d, at.line, at.col, "<param> holds text only, not <%s>",
				    g->name);
				nested = 1;
			} else if (g->type == XML_TEXT_NODE && value == NULL &&
			    !loader_is_blank(g->content)) {
				value = g;
			}
		}
		char *name = attr(c, "name");
		if (name == NULL || nested) {
			/* a value with markup in it is not the value meant: do not
			 * also report it as a bad value */
			free(name);
			continue;
		}
		out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
		struct param_input *pi = &out->v[out->n++];
		memset(pi, 0, sizeof *pi);
		struct cfg_pos nat = attr_value_pos(d, c, "name");
		struct cfg_pos vat = value ? text_pos(d, value) : nat;
		pi->name = name;
		pi->value = trimmed_text(c);
		pi->line = nat.line;
		pi->col = nat.col;
		pi->vline = vat.line;
		pi->vcol = vat.col;
		pi->override = 0;
	}
}

/* Everything inside an element that must be empty. */
static void
check_empty(xmlNodePtr n, struct diag *d)
{
	for (xmlNodePtr c = n->children; c != NULL; c = c->next) {
		if (c->type == XML_ELEMENT_NODE) {
			struct cfg_pos at = elem_pos(d, c);
			diag_error(d, at.line, at.col, "unexpected element <%s> inside <%s>; "
			    "a <%s> has attributes only", c->name, n->name, n->name);
		} else if (c->type == XML_TEXT_NODE && !loader_is_blank(c->content)) {
			stray_text(c, n, "; a <channel> has attributes only", d);
		}
	}
}

/* when="CONDITION" (compiled here, once), otherwise="true" and copy="true". */
static void
read_route(xmlNodePtr n, struct cfg_channel *ch, struct diag *d)
{
	char *when = attr(n, "when"), *otherwise = attr(n, "otherwise");
	if (when != NULL) {
		struct cond_error ce;
		ch->when_at = attr_value_pos(d, n, "when");
		ch->cond = cond_compile(when, &ce);
		if (ch->cond == NULL) {
			struct cfg_pos at = attr_value_pos_at(d, n, "when", ce.offset);
			diag_error(d, at.line, at.col, "when: %s", ce.msg);
		}
	}
	if (otherwise != NULL) {
		struct cfg_pos at = attr_value_pos(d, n, "otherwise");
		if (strcmp(otherwise, "true") != 0)
			diag_error(d, at.line, at.col, "otherwise='%s': the only value is 'true' "
			    "(the channel takes what no condition before it took)", otherwise);
		else if (when != NULL)
			diag_error(d, at.line, at.col, "a channel has when=\"...\" or "
			    "otherwise=\"true\", not both");
		else
			ch->otherwise = 1;
	}
	ch->routed = when != NULL || otherwise != NULL;
	char *copy = attr(n, "copy");
	if (copy != NULL) {
		ch->copy_at = attr_value_pos(d, n, "copy");
		if (strcmp(copy, "true") != 0)
			diag_error(d, ch->copy_at.line, ch->copy_at.col, "copy='%s': the only value "
			    "is 'true' (the channel gets a copy of every message)", copy);
		else if (ch->routed)
			diag_error(d, ch->copy_at.line, ch->copy_at.col, "a channel has copy=\"true\" "
			    "or a condition, not both");
		/* meant as a copy either way: its port's other channels are judged so */
		ch->copy = 1;
		ch->routed = 0;
		free(copy);
	}
	free(when);
	free(otherwise);
}

static void
read_channel(xmlNodePtr n, struct walker *wk)
{
	struct diag *d = wk->d;
	struct cfg_pipeline *p = wk->p;
	check_attrs(n, channel_attrs, d);
	check_empty(n, d);
	char *from = attr(n, "from"), *to = attr(n, "to");
	if (from == NULL || to == NULL) {
		/* reported; the graph checks must not guess without it */
		wk->gaps.lost_edges = 1;
		free(from);
		free(to);
		return;
	}
	p->channels = xrealloc(p->channels, (p->n_channels + 1) * sizeof *p->channels);
	struct cfg_channel *ch = &p->channels[p->n_channels++];
	memset(ch, 0, sizeof *ch);
	ch->at = elem_pos(d, n);
	ch->line = ch->at.line;
	ch->from_at = attr_value_pos(d, n, "from");
	ch->to_at = attr_value_pos(d, n, "to");
	ch->port_at = ch->from_at;
	char *colon = strchr(from, ':');
	if (colon != NULL) {
		ch->port = xstrdup(colon + 1);
		*colon = '\0';
		ch->port_at.col += (int)strlen(from) + 1;
	} else {
		ch->port = xstrdup("out");
	}
	ch->from = from;
	ch->to = to;
	ch->capacity = (int)int_attr(n, "capacity", DEFAULT_CAPACITY, CHANNEL_CAPACITY_MAX, d);
	ch->overflow = OVERFLOW_BLOCK;
	char *ov = attr(n, "overflow");
	if (ov != NULL) {
		static const char *const names[] = { "block", "reject", "drop-oldest" };
		size_t i;
		for (i = 0; i < 3; i++)
			if (strcmp(ov, names[i]) == 0)
				break;
		if (i < 3) {
			ch->overflow = (enum overflow)i;
		} else {
			const char *near = nearest(names, 3, ov);
			struct cfg_pos at = attr_value_pos(d, n, "overflow");
			if (near)
				diag_error(d, at.line, at.col, "overflow='%s' is not one of block, "
				    "reject, drop-oldest; did you mean '%s'?", ov, near);
			else
				diag_error(d, at.line, at.col, "overflow='%s' is not one of block, "
				    "reject, drop-oldest", ov);
		}
		free(ov);
	}
	read_route(n, ch, d);
	/* transport="nats" and its tuning: read as text here, judged by
	 * node.c, which alone knows the transport (porch check and run) */
	ch->transport = attr(n, "transport");
	ch->transport_at = attr_value_pos(d, n, "transport");
	ch->ack_wait = attr(n, "ack-wait");
	ch->ack_wait_at = attr_value_pos(d, n, "ack-wait");
	ch->max_deliver = attr(n, "max-deliver");
	ch->max_deliver_at = attr_value_pos(d, n, "max-deliver");
	ch->shards = attr(n, "shards");
	ch->shards_at = attr_value_pos(d, n, "shards");
}

static void
read_worker(xmlNodePtr n, struct walker *wk)
{
	struct diag *d = wk->d;
	struct cfg_pipeline *p = wk->p;
	check_attrs(n, worker_attrs, d);
	char *name = attr(n, "name");
	if (name == NULL) {
		/* reported; any unknown name may have meant this one */
		wk->gaps.unnamed = 1;
		struct cfg_params ignored = { NULL, 0 };
		read_params(n, &ignored, d, NULL);
		for (size_t i = 0; i < ignored.n; i++) {
			free((char *)ignored.v[i].name);
			free((char *)ignored.v[i].value);
		}
		free(ignored.v);
		return;
	}
	p->workers = xrealloc(p->workers, (p->n_workers + 1) * sizeof *p->workers);
	struct cfg_worker *w = &p->workers[p->n_workers++];
	memset(w, 0, sizeof *w);
	w->name = name;
	w->plugin_name = attr(n, "plugin");
	w->at = elem_pos(d, n);
	w->line = w->at.line;
	w->name_at = attr_value_pos(d, n, "name");
	w->plugin_at = attr_value_pos(d, n, "plugin");
	read_params(n, &w->params, d, NULL);
}

static void
read_stage(xmlNodePtr n, struct walker *wk)
{
	struct diag *d = wk->d;
	struct cfg_pipeline *p = wk->p;
	check_attrs(n, stage_attrs, d);
	int concurrency = (int)int_attr(n, "concurrency", DEFAULT_CONCURRENCY,
	    STAGE_CONCURRENCY_MAX, d);
	char *name = attr(n, "name");
	struct cfg_params params = { NULL, 0 };
	read_params(n, &params, d, NULL);
	if (name == NULL) {
		wk->gaps.unnamed = 1;
		for (size_t i = 0; i < params.n; i++) {
			free((char *)params.v[i].name);
			free((char *)params.v[i].value);
		}
		free(params.v);
		return;
	}
	p->stages = xrealloc(p->stages, (p->n_stages + 1) * sizeof *p->stages);
	struct cfg_stage *s = &p->stages[p->n_stages++];
	memset(s, 0, sizeof *s);
	s->name = name;
	s->plugin_name = attr(n, "plugin");
	s->worker_name = attr(n, "worker");
	s->at = elem_pos(d, n);
	s->line = s->at.line;
	s->name_at = attr_value_pos(d, n, "name");
	s->plugin_at = attr_value_pos(d, n, "plugin");
	s->worker_at = attr_value_pos(d, n, "worker");
	s->concurrency = concurrency;
	s->params = params;
	s->node = attr(n, "node");
	s->node_at = attr_value_pos(d, n, "node");
}

/* An element the walk does not know: reported once, remembered as a gap. */
static void
unknown_element(xmlNodePtr n, struct walker *wk)
{
	static const char *const kinds[] = { "worker", "stage", "channel", "pool" };
	struct diag *d = wk->d;
	const char *name = (const char *)n->name;
	struct cfg_pos at = elem_pos(d, n);
	const char *near = nearest(kinds, 4, name);
	if (strcmp(name, "param") == 0)
		diag_error(d, at.line, at.col, "<param> belongs inside a <stage> or "
		    "<worker>, not directly in <pipeline>");
	else if (near)
		diag_error(d, at.line, at.col, "unknown element <%s> in <pipeline>; did you "
		    "mean <%s>?", name, near);
	else
		diag_error(d, at.line, at.col, "unknown element <%s> in <pipeline> "
		    "(expected <worker>, <pool>, <stage> or <channel>)", name);
	/* it may have been a stage or worker that channels and stages name,
	 * or a channel that stages depend on */
	char *ghost = attr(n, "name");
	if (ghost != NULL) {
		wk->gaps.ghosts = xrealloc(wk->gaps.ghosts,
		    (wk->gaps.n_ghosts + 1) * sizeof *wk->gaps.ghosts);
		wk->gaps.ghosts[wk->gaps.n_ghosts++] = ghost;
	}
	if (xmlHasNsProp(n, BAD_CAST "from", NULL) || xmlHasNsProp(n, BAD_CAST "to", NULL))
		wk->gaps.lost_edges = 1;
}

/*
 * Pipeline elements are in no namespace.  Reported where a namespace starts,
 * not again for every element that inherits it.
 */
static void
check_ns(xmlNodePtr n, struct diag *d)
{
	if (n->ns == NULL || (n->parent != NULL && n->parent->type == XML_ELEMENT_NODE &&
	    n->parent->ns == n->ns))
		return;
	char decl[128];
	if (n->ns->prefix != NULL)
		snprintf(decl, sizeof decl, "xmlns:%s", (const char *)n->ns->prefix);
	else
		snprintf(decl, sizeof decl, "xmlns");
	struct cfg_pos at = attr_name_pos(d, n, decl);
	diag_error(d, at.line, at.col, "<%s> is in the XML namespace '%s'; pipeline "
	    "files use no namespace (remove %s=\"...\")", n->name,
	    n->ns->href ? (const char *)n->ns->href : "", decl);
}

/* Reads the document into the pipeline; 0 if the root is not <pipeline>. */
static int
walk(xmlDocPtr doc, struct walker *wk)
{
	struct diag *d = wk->d;
	struct cfg_pipeline *p = wk->p;
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (root == NULL || xmlStrcmp(root->name, BAD_CAST "pipeline") != 0) {
		struct cfg_pos at = { 1, 1 };
		if (root != NULL)
			at = elem_pos(d, root);
		diag_error(d, at.line, at.col, "the root element is <%s>; a pipeline file "
		    "starts with <pipeline>", root ? (const char *)root->name : "");
		return 0;
	}
	p->at = elem_pos(d, root);
	check_ns(root, d);
	check_attrs(root, pipeline_attrs, d);
	p->name = attr(root, "name");
	if (p->name != NULL && !name_is_valid(p->name)) {
		struct cfg_pos at = attr_value_pos(d, root, "name");
		diag_error(d, at.line, at.col, "pipeline name '%s' is not valid: use "
		    "[a-z][a-z0-9_-]* (lower case, digits, '_', '-')", p->name);
	}
	char *version = attr(root, "version");
	if (version != NULL && strcmp(version, "1") != 0) {
		struct cfg_pos at = attr_value_pos(d, root, "version");
		diag_error(d, at.line, at.col, "unsupported pipeline format version '%s' "
		    "(this porch reads version 1)", version);
	}
	free(version);
	p->plugins = attr(root, "plugins");
	p->nats_url = attr(root, "nats-url");
	p->nats_url_at = attr_value_pos(d, root, "nats-url");
	p->max_inflight = int_attr(root, "max-inflight", DEFAULT_MAX_INFLIGHT,
	    1L << 30, d);
	p->threads = threads_attr(root, d);

	int stages = 0;
	for (xmlNodePtr n = root->children; n != NULL; n = n->next) {
		if (n->type == XML_COMMENT_NODE || n->type == XML_PI_NODE)
			continue;
		if (n->type == XML_TEXT_NODE && loader_is_blank(n->content))
			continue;
		if (n->type != XML_ELEMENT_NODE) {
			stray_text(n, root, "", d);
			continue;
		}
		const char *name = (const char *)n->name;
		check_ns(n, d);
		if (strcmp(name, "worker") == 0) {
			read_worker(n, wk);
		} else if (strcmp(name, "stage") == 0) {
			read_stage(n, wk);
			stages++;
		} else if (strcmp(name, "channel") == 0) {
			read_channel(n, wk);
		} else if (strcmp(name, "pool") == 0) {
			pool_read(n, p, d);
		} else {
			unknown_element(n, wk);
		}
	}
	if (stages == 0 && wk->gaps.n_ghosts == 0)
		diag_error(d, p->at.line, p->at.col, "the pipeline has no <stage>");
	return 1;
}

/* ---- overrides ---------------------------------------------------------- */

int
override_parse(const char *arg, struct override *o, char *err, size_t errlen)
{
	const char *dot = strchr(arg, '.');
	const char *eq = strchr(arg, '=');
	if (dot == NULL || eq == NULL || dot > eq || dot == arg || eq == dot + 1) {
		snprintf(err, errlen, "--set '%s': expected STAGE.PARAM=VALUE", arg);
		return -1;
	}
	o->target = xstrndup(arg, (size_t)(dot - arg));
	o->param = xstrndup(dot + 1, (size_t)(eq - dot - 1));
	o->value = xstrdup(eq + 1);
	return 0;
}

/* ---- load and free ------------------------------------------------------ */

static void free_params(struct cfg_params *ps);

/* Gives the source stage its stand-in plugin and parameters (porch replay). */
static void
swap_source(struct cfg_pipeline *p, const struct source_swap *swap, struct diag *d)
{
	struct cfg_stage *target = NULL;
	if (swap->stage != NULL) {
		for (size_t i = 0; i < p->n_stages; i++)
			if (strcmp(p->stages[i].name, swap->stage) == 0)
				target = &p->stages[i];
		if (target == NULL) {
			diag_error(d, p->at.line, p->at.col, "no stage named '%s' to feed",
			    swap->stage);
			return;
		}
	} else {
		size_t sources = 0;
		char err[1024];
		for (size_t i = 0; i < p->n_stages; i++) {
			struct cfg_stage *s = &p->stages[i];
			const struct plugin *pl = registry_find(&p->registry, s->plugin_name,
			    err, sizeof err);
			if (pl != NULL && (pl->desc.flags & PORCH_STAGE_SOURCE)) {
				target = s;
				sources++;
			}
		}
		if (sources != 1) {
			diag_error(d, p->at.line, p->at.col, "the pipeline has %zu source "
			    "stages; name the one to feed with --source STAGE", sources);
			return;
		}
	}
	free(target->plugin_name);
	target->plugin_name = xstrdup(swap->plugin);
	free_params(&target->params);
	memset(&target->params, 0, sizeof target->params);
	size_t n = 0;
	while (swap->params != NULL && swap->params[2 * n] != NULL)
		n++;
	target->params.v = xcalloc(n ? n : 1, sizeof *target->params.v);
	for (size_t i = 0; i < n; i++) {
		struct param_input *in = &target->params.v[i];
		in->name = xstrdup(swap->params[2 * i]);
		in->value = xstrdup(swap->params[2 * i + 1]);
	}
	target->params.n = n;
}

struct cfg_pipeline *
config_load(const char *file, const char *schema, char *const *plugin_dirs,
    size_t n_dirs, const struct override *ov, size_t n_ov,
    const struct source_swap *swap, struct diag *d)
{
	char err[512];
	size_t len = 0;
	char *buf = loader_read_file(file, &len, err, sizeof err);
	if (buf == NULL) {
		diag_error(d, 0, 0, "%s", err);
		return NULL;
	}
	diag_set_text(d, buf, len);
	diag_hold(d);

	struct cfg_pipeline *p = xcalloc(1, sizeof *p);
	p->file = xstrdup(file);
	char *tmp = xstrdup(file);
	p->dir = xstrdup(dirname(tmp));
	free(tmp);
	registry_init(&p->registry);

	struct walker wk;
	memset(&wk, 0, sizeof wk);
	wk.d = d;
	wk.p = p;
	xmlDocPtr doc = loader_parse(buf, len, file, d);
	/* the checks run even after the walk's errors, so every problem is
	 * reported in one go; the gaps keep them from repeating the walk's */
	if (doc != NULL && walk(doc, &wk)) {
		registry_setup(&p->registry, plugin_dirs, n_dirs, p->plugins, p->dir);
		if (swap != NULL && d->errors == 0)
			swap_source(p, swap, d);
		config_set_structural(p, ov, n_ov, d);
		check_pipeline(p, ov, n_ov, &wk.gaps, d);
		/* the walk's and the checks' messages are precise; the schema's
		 * would only repeat them vaguely, so it speaks only when they
		 * found nothing: it then catches what they do not check */
		if (d->errors == 0)
			loader_validate(doc, schema, d);
	}
	if (doc != NULL)
		xmlFreeDoc(doc);
	for (size_t i = 0; i < wk.gaps.n_ghosts; i++)
		free(wk.gaps.ghosts[i]);
	free(wk.gaps.ghosts);
	diag_flush(d);
	diag_set_text(d, NULL, 0);
	free(buf);
	if (d->errors > 0) {
		config_free(p);
		return NULL;
	}
	return p;
}

static void
free_params(struct cfg_params *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free((char *)ps->v[i].name);
		free((char *)ps->v[i].value);
	}
	free(ps->v);
}

void
config_free(struct cfg_pipeline *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_stages; i++) {
		struct cfg_stage *s = &p->stages[i];
		free(s->name);
		free(s->plugin_name);
		free(s->worker_name);
		free(s->node);
		free_params(&s->params);
		params_free(s->parsed);
	}
	for (size_t i = 0; i < p->n_workers; i++) {
		struct cfg_worker *w = &p->workers[i];
		free(w->name);
		free(w->plugin_name);
		free_params(&w->params);
		params_free(w->parsed);
	}
	for (size_t i = 0; i < p->n_channels; i++) {
		free(p->channels[i].from);
		free(p->channels[i].port);
		free(p->channels[i].to);
		free(p->channels[i].transport);
		free(p->channels[i].ack_wait);
		free(p->channels[i].max_deliver);
		free(p->channels[i].shards);
		cond_free(p->channels[i].cond);
	}
	pool_cfg_free(p);
	free(p->stages);
	free(p->workers);
	free(p->channels);
	free(p->order);
	free(p->file);
	free(p->dir);
	free(p->name);
	free(p->plugins);
	free(p->nats_url);
	if (p->node_free != NULL)
		p->node_free(p->node_data);
	registry_free(&p->registry);
	free(p);
}
