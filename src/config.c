/*
 * config.c -- reads a pipeline file into plain structs.
 *
 * Three passes, each reporting every problem it finds: libxml2 parses (no
 * network, no DTD, no entities: a DOCTYPE stops the parse before any
 * declaration is read, so entity bombs never start), a structural walk
 * checks elements and attributes with precise messages, and the shipped
 * RELAX NG schema backs the walk up.  check.c then checks the graph.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "check.h"
#include "config.h"
#include "util.h"

#define PIPELINE_FILE_MAX (16 * 1024 * 1024)

/* share/porch.rng, compiled in (src/schema.c is generated from it) */
extern const char porch_schema_rng[];

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

/* ---- reading and parsing ------------------------------------------------ */

static char *
read_file(const char *file, size_t *len, char *err, size_t errlen)
{
	int fd = open(file, O_RDONLY);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		close(fd);
		return NULL;
	}
	if (sb.st_size > PIPELINE_FILE_MAX) {
		snprintf(err, errlen, "file is %lld bytes; pipeline files are limited to %d",
		    (long long)sb.st_size, PIPELINE_FILE_MAX);
		close(fd);
		return NULL;
	}
	char *buf = xmalloc((size_t)sb.st_size + 1);
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read: %s", n < 0 ? strerror(errno) : "short read");
			free(buf);
			close(fd);
			return NULL;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return buf;
}

static void
xml_error(void *ctx, xmlErrorPtr e)
{
	struct diag *d = ctx;
	char msg[512];
	snprintf(msg, sizeof msg, "%s", e->message ? e->message : "XML error");
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	if (e->level == XML_ERR_WARNING)
		return;
	diag_error(d, e->line, e->int2, "%s", msg);
}

/* A DOCTYPE is refused before its declarations are read. */
static void
refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
	(void)name; (void)ext; (void)sys;
	xmlParserCtxtPtr ctxt = ctx;
	struct diag *d = ctxt->_private;
	diag_error(d, xmlSAX2GetLineNumber(ctxt), diag_column(d, xmlSAX2GetLineNumber(ctxt),
	    "<!DOCTYPE"), "DOCTYPE declarations are not allowed in pipeline files "
	    "(no DTDs, no entities)");
	xmlStopParser(ctxt);
}

static xmlParserInputPtr
refuse_external(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	(void)id; (void)ctxt;
	(void)url;
	return NULL;
}

static xmlDocPtr
parse(const char *buf, size_t len, const char *file, struct diag *d)
{
	xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
	if (ctxt == NULL) {
		diag_error(d, 0, 0, "out of memory creating the XML parser");
		return NULL;
	}
	ctxt->_private = d;
	ctxt->sax->internalSubset = refuse_doctype;
	xmlExternalEntityLoader saved = xmlGetExternalEntityLoader();
	xmlSetExternalEntityLoader(refuse_external);
	xmlSetStructuredErrorFunc(d, xml_error);
	int errors_before = d->errors;
	xmlDocPtr doc = xmlCtxtReadMemory(ctxt, buf, (int)len, file, NULL,
	    XML_PARSE_NONET | XML_PARSE_BIG_LINES | XML_PARSE_NOCDATA);
	xmlSetStructuredErrorFunc(NULL, NULL);
	xmlSetExternalEntityLoader(saved);
	xmlFreeParserCtxt(ctxt);
	if (doc != NULL && d->errors > errors_before) {
		xmlFreeDoc(doc);
		doc = NULL;
	}
	if (doc == NULL && d->errors == errors_before)
		diag_error(d, 1, 1, "not a well-formed XML document");
	return doc;
}

static void
rng_error(void *ctx, xmlErrorPtr e)
{
	struct diag *d = ctx;
	char msg[512];
	snprintf(msg, sizeof msg, "%s", e->message ? e->message : "schema error");
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	const char *elem = e->node ? (const char *)((xmlNodePtr)e->node)->name : NULL;
	char tok[128] = "";
	if (elem)
		snprintf(tok, sizeof tok, "<%s", elem);
	diag_error(d, e->line, diag_column(d, e->line, tok), "schema: %s", msg);
}

static void
validate_schema(xmlDocPtr doc, const char *schema, struct diag *d)
{
	struct diag sd;
	diag_init(&sd, schema ? schema : "porch.rng", d->out);
	xmlSetStructuredErrorFunc(&sd, xml_error);
	xmlRelaxNGParserCtxtPtr pc = schema ? xmlRelaxNGNewParserCtxt(schema) :
	    xmlRelaxNGNewMemParserCtxt(porch_schema_rng, (int)strlen(porch_schema_rng));
	xmlRelaxNGPtr rng = pc ? xmlRelaxNGParse(pc) : NULL;
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (rng == NULL) {
		diag_error(d, 0, 0, "cannot load the pipeline schema %s (unset PORCH_SCHEMA "
		    "to use the built-in one)", schema ? schema : "(built in)");
		if (pc)
			xmlRelaxNGFreeParserCtxt(pc);
		return;
	}
	xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(rng);
	xmlRelaxNGSetValidStructuredErrors(vc, rng_error, d);
	xmlRelaxNGValidateDoc(vc, doc);
	xmlRelaxNGFreeValidCtxt(vc);
	xmlRelaxNGFree(rng);
	xmlRelaxNGFreeParserCtxt(pc);
}

/* ---- the structural walk ------------------------------------------------ */

struct attr_rule {
	const char *name;
	int required;
};

static const struct attr_rule pipeline_attrs[] = {
	{ "name", 1 }, { "version", 1 }, { "plugins", 0 }, { "max-inflight", 0 }, { NULL, 0 },
};
static const struct attr_rule worker_attrs[] = {
	{ "name", 1 }, { "plugin", 1 }, { NULL, 0 },
};
static const struct attr_rule stage_attrs[] = {
	{ "name", 1 }, { "plugin", 1 }, { "worker", 0 }, { "concurrency", 0 }, { NULL, 0 },
};
static const struct attr_rule channel_attrs[] = {
	{ "from", 1 }, { "to", 1 }, { "capacity", 0 }, { "overflow", 0 }, { NULL, 0 },
};
static const struct attr_rule param_attrs[] = {
	{ "name", 1 }, { NULL, 0 },
};

static const char *
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

static int
line_of(xmlNodePtr n)
{
	return (int)xmlGetLineNo(n);
}

/* Checks attribute names against the rules; reports unknown and missing. */
static void
check_attrs(xmlNodePtr n, const struct attr_rule *rules, struct diag *d)
{
	int line = line_of(n);
	for (xmlAttrPtr a = n->properties; a != NULL; a = a->next) {
		size_t i;
		for (i = 0; rules[i].name; i++)
			if (xmlStrcmp(a->name, BAD_CAST rules[i].name) == 0)
				break;
		if (rules[i].name != NULL)
			continue;
		const char *names[8];
		size_t k;
		for (k = 0; rules[k].name && k < 8; k++)
			names[k] = rules[k].name;
		const char *near = nearest(names, k, (const char *)a->name);
		char tok[128];
		snprintf(tok, sizeof tok, "%s=", (const char *)a->name);
		if (near)
			diag_error_at(d, line, tok, "unknown attribute '%s' on <%s>; did you mean '%s'?",
			    a->name, n->name, near);
		else
			diag_error_at(d, line, tok, "unknown attribute '%s' on <%s>", a->name, n->name);
	}
	for (size_t i = 0; rules[i].name; i++) {
		if (!rules[i].required || xmlHasProp(n, BAD_CAST rules[i].name))
			continue;
		char tok[128];
		snprintf(tok, sizeof tok, "<%s", (const char *)n->name);
		diag_error_at(d, line, tok, "<%s> is missing the required attribute '%s'",
		    n->name, rules[i].name);
	}
}

static char *
attr(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST name);
	if (v == NULL)
		return NULL;
	char *s = xstrdup((const char *)v);
	xmlFree(v);
	return s;
}

/* Column of ATTR="..." on the element's line, for attribute errors. */
static int
attr_col(struct diag *d, xmlNodePtr n, const char *name)
{
	char tok[128];
	snprintf(tok, sizeof tok, "%s=", name);
	return diag_column(d, line_of(n), tok);
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
	if (rc == -1)
		diag_error(d, line_of(n), attr_col(d, n, name),
		    "%s='%s' is not an integer", name, v);
	else if (rc == -2 || i < 1 || i > max)
		diag_error(d, line_of(n), attr_col(d, n, name),
		    "%s='%s' is out of range (1 to %ld)", name, v, max);
	else
		out = (long)i;
	free(v);
	return out;
}

static int
is_blank(const xmlChar *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return 0;
	return 1;
}

static char *
trimmed_text(xmlNodePtr n)
{
	xmlChar *c = xmlNodeGetContent(n);
	const char *s = c ? (const char *)c : "";
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
	    s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	char *out = xstrndup(s, len);
	xmlFree(c);
	return out;
}

static void
read_params(xmlNodePtr parent, struct cfg_params *out, struct diag *d)
{
	for (xmlNodePtr c = parent->children; c != NULL; c = c->next) {
		if (c->type == XML_TEXT_NODE && is_blank(c->content))
			continue;
		if (c->type == XML_COMMENT_NODE)
			continue;
		if (c->type != XML_ELEMENT_NODE) {
			diag_error(d, line_of(c) ? line_of(c) : line_of(parent), 0,
			    "unexpected text inside <%s> (values go in <param> elements)",
			    parent->name);
			continue;
		}
		if (xmlStrcmp(c->name, BAD_CAST "param") != 0) {
			char tok[128];
			snprintf(tok, sizeof tok, "<%s", (const char *)c->name);
			diag_error_at(d, line_of(c), tok, "unknown element <%s> inside <%s>; "
			    "only <param> is allowed", c->name, parent->name);
			continue;
		}
		check_attrs(c, param_attrs, d);
		for (xmlNodePtr g = c->children; g != NULL; g = g->next)
			if (g->type == XML_ELEMENT_NODE)
				diag_error_at(d, line_of(g), "<", "<param> holds text only, "
				    "not <%s>", g->name);
		char *name = attr(c, "name");
		if (name == NULL)
			continue;
		out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
		struct param_input *pi = &out->v[out->n++];
		pi->name = name;
		pi->value = trimmed_text(c);
		pi->line = line_of(c);
		pi->col = attr_col(d, c, "name");
		pi->override = 0;
	}
}

static void
read_channel(xmlNodePtr n, struct cfg_pipeline *p, struct diag *d)
{
	check_attrs(n, channel_attrs, d);
	for (xmlNodePtr c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE || (c->type == XML_TEXT_NODE && !is_blank(c->content)))
			diag_error(d, line_of(n), 0, "<channel> must be empty");
	char *from = attr(n, "from"), *to = attr(n, "to");
	if (from == NULL || to == NULL) {
		free(from);
		free(to);
		return;
	}
	p->channels = xrealloc(p->channels, (p->n_channels + 1) * sizeof *p->channels);
	struct cfg_channel *ch = &p->channels[p->n_channels++];
	memset(ch, 0, sizeof *ch);
	char *colon = strchr(from, ':');
	if (colon != NULL) {
		ch->port = xstrdup(colon + 1);
		*colon = '\0';
	} else {
		ch->port = xstrdup("out");
	}
	ch->from = from;
	ch->to = to;
	ch->line = line_of(n);
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
			int col = attr_col(d, n, "overflow");
			if (near)
				diag_error(d, ch->line, col, "overflow='%s' is not one of block, "
				    "reject, drop-oldest; did you mean '%s'?", ov, near);
			else
				diag_error(d, ch->line, col, "overflow='%s' is not one of block, "
				    "reject, drop-oldest", ov);
		}
		free(ov);
	}
}

static void
walk(xmlDocPtr doc, struct cfg_pipeline *p, struct diag *d)
{
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (root == NULL || xmlStrcmp(root->name, BAD_CAST "pipeline") != 0) {
		diag_error(d, root ? line_of(root) : 1, 1,
		    "the root element is <%s>; a pipeline file starts with <pipeline>",
		    root ? (const char *)root->name : "");
		return;
	}
	if (root->ns != NULL)
		diag_error_at(d, line_of(root), "<pipeline", "<pipeline> takes no XML namespace");
	check_attrs(root, pipeline_attrs, d);
	p->name = attr(root, "name");
	char *version = attr(root, "version");
	if (version != NULL && strcmp(version, "1") != 0)
		diag_error(d, line_of(root), attr_col(d, root, "version"),
		    "unsupported pipeline format version '%s' (this porch reads version 1)",
		    version);
	free(version);
	p->plugins = attr(root, "plugins");
	p->max_inflight = int_attr(root, "max-inflight", DEFAULT_MAX_INFLIGHT,
	    1L << 30, d);

	static const char *const kinds[] = { "worker", "stage", "channel" };
	for (xmlNodePtr n = root->children; n != NULL; n = n->next) {
		if (n->type == XML_COMMENT_NODE || n->type == XML_PI_NODE)
			continue;
		if (n->type == XML_TEXT_NODE && is_blank(n->content))
			continue;
		if (n->type != XML_ELEMENT_NODE) {
			diag_error(d, line_of(n) ? line_of(n) : line_of(root), 0,
			    "unexpected text inside <pipeline>");
			continue;
		}
		const char *name = (const char *)n->name;
		if (strcmp(name, "worker") == 0) {
			check_attrs(n, worker_attrs, d);
			p->workers = xrealloc(p->workers, (p->n_workers + 1) * sizeof *p->workers);
			struct cfg_worker *w = &p->workers[p->n_workers++];
			memset(w, 0, sizeof *w);
			w->name = attr(n, "name");
			w->plugin_name = attr(n, "plugin");
			w->line = line_of(n);
			read_params(n, &w->params, d);
		} else if (strcmp(name, "stage") == 0) {
			check_attrs(n, stage_attrs, d);
			p->stages = xrealloc(p->stages, (p->n_stages + 1) * sizeof *p->stages);
			struct cfg_stage *s = &p->stages[p->n_stages++];
			memset(s, 0, sizeof *s);
			s->name = attr(n, "name");
			s->plugin_name = attr(n, "plugin");
			s->worker_name = attr(n, "worker");
			s->line = line_of(n);
			s->concurrency = (int)int_attr(n, "concurrency", DEFAULT_CONCURRENCY,
			    STAGE_CONCURRENCY_MAX, d);
			read_params(n, &s->params, d);
		} else if (strcmp(name, "channel") == 0) {
			read_channel(n, p, d);
		} else {
			char tok[128];
			const char *near = nearest(kinds, 3, name);
			snprintf(tok, sizeof tok, "<%s", name);
			if (near)
				diag_error_at(d, line_of(n), tok, "unknown element <%s> in "
				    "<pipeline>; did you mean <%s>?", name, near);
			else
				diag_error_at(d, line_of(n), tok, "unknown element <%s> in "
				    "<pipeline> (expected <worker>, <stage> or <channel>)", name);
		}
	}
	if (p->n_stages == 0)
		diag_error_at(d, line_of(root), "<pipeline", "the pipeline has no <stage>");
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

struct cfg_pipeline *
config_load(const char *file, const char *schema, char *const *plugin_dirs,
    size_t n_dirs, const struct override *ov, size_t n_ov, struct diag *d)
{
	char err[512];
	size_t len = 0;
	char *buf = read_file(file, &len, err, sizeof err);
	if (buf == NULL) {
		diag_error(d, 0, 0, "%s", err);
		return NULL;
	}
	d->text = buf;
	d->text_len = len;

	struct cfg_pipeline *p = xcalloc(1, sizeof *p);
	p->file = xstrdup(file);
	char *tmp = xstrdup(file);
	p->dir = xstrdup(dirname(tmp));
	free(tmp);
	registry_init(&p->registry);

	xmlDocPtr doc = parse(buf, len, file, d);
	if (doc != NULL) {
		walk(doc, p, d);
		/* the walk's messages are precise; the schema's only add noise
		 * after them, so it speaks only when the walk found nothing */
		if (d->errors == 0)
			validate_schema(doc, schema, d);
		xmlFreeDoc(doc);
	}
	if (d->errors == 0) {
		registry_setup(&p->registry, plugin_dirs, n_dirs, p->plugins, p->dir);
		check_pipeline(p, ov, n_ov, d);
	}
	d->text = NULL;
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
	}
	free(p->stages);
	free(p->workers);
	free(p->channels);
	free(p->order);
	free(p->file);
	free(p->dir);
	free(p->name);
	free(p->plugins);
	registry_free(&p->registry);
	free(p);
}
