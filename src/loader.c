/*
 * loader.c -- reads a pipeline file into plain structs.
 *
 * libxml2 parses (no network, no DTD, no entities: a DOCTYPE stops the
 * parse before any declaration is read, so entity bombs never start), a
 * structural walk checks elements and attributes with precise messages,
 * check.c checks names, plugins, parameters and the graph, and the shipped
 * RELAX NG schema backs them up.  Every problem is reported, each once, at
 * the token that causes it; what one problem makes unknowable is not
 * reported again as more problems.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "check.h"
#include "cond.h"
#include "loader.h"
#include "loader_int.h"
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

/* ---- positions ----------------------------------------------------------- */

/*
 * libxml2 keeps a line per node, and for an element it is the line where the
 * start tag ends.  To point at the offending token, parse() wraps two SAX
 * callbacks to record the byte offset of each element's '<' and of each
 * text's first non-blank character in node->_private (offset + 1; 0 is "not
 * recorded", POS_UNKNOWN "could not be placed").  Attributes are then found
 * by scanning the start tag in the file's text.
 */
#define POS_UNKNOWN ((uintptr_t)-1)

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
is_blank(const xmlChar *s)
{
	for (; s && *s; s++)
		if (!is_space(*s))
			return 0;
	return 1;
}

static int
line_of(xmlNodePtr n)
{
	return (int)xmlGetLineNo(n);
}

/* The recorded offset of a node, or (size_t)-1. */
static size_t
node_off(const struct diag *d, xmlNodePtr n)
{
	uintptr_t v = (uintptr_t)n->_private;
	if (v == 0 || v == POS_UNKNOWN || v - 1 >= d->text_len)
		return (size_t)-1;
	return (size_t)(v - 1);
}

static struct cfg_pos
off_pos(const struct diag *d, size_t off)
{
	struct cfg_pos at;
	diag_offset_pos(d, off, &at.line, &at.col);
	return at;
}

/* The '<' of an element. */
struct cfg_pos
elem_pos(const struct diag *d, xmlNodePtr n)
{
	size_t off = node_off(d, n);
	if (off != (size_t)-1)
		return off_pos(d, off);
	struct cfg_pos at = { line_of(n), 1 };
	return at;
}

/*
 * Scans the start tag at `tag` for attribute `qname`: the offsets of its
 * name and of its value's first character.  A '<' cannot occur inside a
 * start tag, and quotes are matched, so the scan cannot run past it.
 */
static int
scan_attr(const struct diag *d, size_t tag, const char *qname, size_t *name_off,
    size_t *value_off)
{
	const char *t = d->text;
	size_t n = d->text_len, i = tag + 1, ql = strlen(qname);
	while (i < n && !is_space(t[i]) && t[i] != '>' && t[i] != '/')
		i++;
	for (;;) {
		while (i < n && is_space(t[i]))
			i++;
		if (i >= n || t[i] == '>' || t[i] == '/' || t[i] == '<')
			return 0;
		size_t a = i;
		while (i < n && !is_space(t[i]) && t[i] != '=' && t[i] != '>' && t[i] != '/')
			i++;
		size_t alen = i - a;
		while (i < n && is_space(t[i]))
			i++;
		if (i >= n || t[i] != '=')
			return 0;
		for (i++; i < n && is_space(t[i]); i++)
			;
		if (i >= n || (t[i] != '"' && t[i] != '\''))
			return 0;
		char q = t[i++];
		size_t v = i;
		while (i < n && t[i] != q)
			i++;
		if (i >= n)
			return 0;
		i++;
		if (alen == ql && memcmp(t + a, qname, ql) == 0) {
			*name_off = a;
			*value_off = v;
			return 1;
		}
	}
}

/* Where attribute `name` of element n is: its name, or its value. */
static struct cfg_pos
attr_at(const struct diag *d, xmlNodePtr n, const char *name, int value)
{
	size_t tag = node_off(d, n), a, v;
	if (tag != (size_t)-1 && scan_attr(d, tag, name, &a, &v))
		return off_pos(d, value ? v : a);
	return elem_pos(d, n);
}

static struct cfg_pos
attr_name_pos(const struct diag *d, xmlNodePtr n, const char *name)
{
	return attr_at(d, n, name, 0);
}

struct cfg_pos
attr_value_pos(const struct diag *d, xmlNodePtr n, const char *name)
{
	return attr_at(d, n, name, 1);
}

/* Bytes a UTF-8 encoding of code point cp takes. */
static size_t
utf8_len(unsigned long cp)
{
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/*
 * Where the byte at `decoded` of attribute name's value is in the file.
 * libxml2 gives the value with entity and character references replaced
 * (&lt; is one '<'), so the file's bytes are walked, a reference at a time,
 * until that many decoded bytes are behind.
 */
static struct cfg_pos
attr_value_pos_at(const struct diag *d, xmlNodePtr n, const char *name, size_t decoded)
{
	size_t tag = node_off(d, n), a, v;
	if (tag == (size_t)-1 || !scan_attr(d, tag, name, &a, &v))
		return elem_pos(d, n);
	const char *t = d->text;
	size_t i = v, k = 0;
	while (k < decoded && i < d->text_len && t[i] != '"' && t[i] != '\'') {
		const char *semi = t[i] == '&' ? memchr(t + i, ';', d->text_len - i < 12 ?
		    d->text_len - i : 12) : NULL;
		if (semi == NULL) {
			i++;
			k++;
			continue;
		}
		if (t[i + 1] == '#')
			k += utf8_len(strtoul(t + i + 2 + (t[i + 2] == 'x'), NULL,
			    t[i + 2] == 'x' ? 16 : 10));
		else
			k++; /* &lt; &gt; &amp; &quot; &apos; */
		i = (size_t)(semi - t) + 1;
	}
	return off_pos(d, i);
}

/* The first non-blank character of a text node. */
static struct cfg_pos
text_pos(const struct diag *d, xmlNodePtr t)
{
	size_t off = node_off(d, t);
	if (off != (size_t)-1)
		return off_pos(d, off);
	struct cfg_pos at = { line_of(t), 1 };
	return at;
}

/* The start of a text node for messages: "stages follow", at most 32 bytes. */
static void
text_excerpt(xmlNodePtr t, char *buf, size_t len)
{
	const char *s = t->content ? (const char *)t->content : "";
	while (is_space(*s))
		s++;
	size_t n = 0;
	while (s[n] != '\0' && s[n] != '\n' && s[n] != '\r' && n < 32)
		n++;
	while (n > 0 && is_space(s[n - 1]))
		n--;
	int more = s[n] != '\0' && !is_blank((const xmlChar *)s + n);
	snprintf(buf, len, "%.*s%s", (int)n, s, more ? "..." : "");
}

/* ---- parsing -------------------------------------------------------------- */

struct parse_state {
	struct diag *d;
	int failed;     /* an error was reported: libxml2's later ones are its
	                 * own cascade (an unclosed tag is also a premature end) */
};

/* libxml2's message on one line, as every diagnostic is one line. */
static void
trim_message(const char *in, char *out, size_t len)
{
	snprintf(out, len, "%s", in ? in : "XML error");
	size_t n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	for (char *c = out; *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
}

/*
 * The first well-formedness error, in porch's words where libxml2's are
 * obscure, at the token that caused it (libxml2 reports where it noticed,
 * which is often after the token).
 */
static void
parse_error(void *ctx, xmlErrorPtr e)
{
	struct parse_state *ps = ctx;
	struct diag *d = ps->d;
	if (e->level == XML_ERR_WARNING || ps->failed)
		return;
	ps->failed = 1;
	int line = e->line > 0 ? e->line : 1, col = e->int2 > 0 ? e->int2 : 1;
	const char *s1 = e->str1 ? e->str1 : "", *s2 = e->str2 ? e->str2 : "";
	char msg[512], tok[160];
	switch (e->code) {
	case XML_ERR_DOCUMENT_EMPTY:
		if (is_blank((const xmlChar *)d->text))
			diag_error(d, 1, 1, "the file is empty; a pipeline file holds one "
			    "<pipeline> element");
		else
			diag_error(d, line, col, "not an XML document: expected the "
			    "<pipeline> start tag here");
		return;
	case XML_ERR_RESERVED_XML_NAME:
		diag_find_back(d, &line, &col, 1, "<?xml");
		diag_error(d, line, col, "the <?xml ...?> declaration must be the very "
		    "first thing in the file, with nothing before it");
		return;
	case XML_ERR_COMMENT_NOT_FINISHED:
		diag_find_back(d, &line, &col, 1, "<!--");
		diag_error(d, line, col, "comment is not closed: '<!--' without '-->'");
		return;
	case XML_ERR_ATTRIBUTE_NOT_STARTED:
		diag_error(d, line, col, "attribute value must be in quotes: "
		    "name=\"value\"");
		return;
	case XML_ERR_ATTRIBUTE_WITHOUT_VALUE:
		diag_find_back(d, &line, &col, line, s1);
		diag_error(d, line, col, "attribute '%s' has no value: write %s=\"...\"",
		    s1, s1);
		return;
	case XML_ERR_SPACE_REQUIRED:
		/* libxml2's "attributes construct error": in a start tag, neither
		 * an attribute nor its end */
		diag_error(d, line, col, "malformed start tag: expected an attribute "
		    "(name=\"value\", after a space), '>' or '/>' here");
		return;
	case XML_ERR_LT_IN_ATTRIBUTE:
		diag_error(d, line, col, "'<' is not allowed in an attribute value "
		    "(write &lt;)");
		return;
	case XML_ERR_NAME_REQUIRED:
		if (e->message && strstr(e->message, "EntityRef")) {
			diag_error(d, line, col - 1 > 0 ? col - 1 : 1, "a bare '&' must be "
			    "written &amp;");
			return;
		}
		if (e->message && strstr(e->message, "StartTag")) {
			diag_error(d, line, col - 1 > 0 ? col - 1 : 1, "'<' must start an "
			    "element name (a literal '<' is written &lt;)");
			return;
		}
		break;
	case XML_ERR_INVALID_CHAR:
		if (e->message && strstr(e->message, "not proper UTF-8")) {
			diag_error(d, line, col, "the file is not valid UTF-8 here (pipeline "
			    "files are UTF-8, or say their encoding in <?xml ... "
			    "encoding=\"...\"?>)");
			return;
		}
		break;
	case XML_ERR_TAG_NAME_MISMATCH:
		/* str1: the open element, int1: its line, str2: the end tag found */
		snprintf(tok, sizeof tok, "</%s", s2);
		diag_find_back(d, &line, &col, e->int1, tok);
		diag_error(d, line, col, "end tag </%s> does not match <%s> (line %d), "
		    "which is still open", s2, s1, e->int1);
		return;
	case XML_ERR_TAG_NOT_FINISHED:
		/* str1: the open element, int1: its line */
		snprintf(tok, sizeof tok, "<%s", s1);
		diag_error(d, e->int1, diag_column(d, e->int1, tok), "<%s> is not closed: "
		    "the file ends before its </%s>", s1, s1);
		return;
	case XML_ERR_UNDECLARED_ENTITY:
	case XML_WAR_UNDECLARED_ENTITY:
		snprintf(tok, sizeof tok, "&%s;", s1);
		diag_find_back(d, &line, &col, line, tok);
		diag_error(d, line, col, "unknown entity '&%s;': a pipeline file may use "
		    "only &lt; &gt; &amp; &quot; &apos; and character references", s1);
		return;
	case XML_ERR_ATTRIBUTE_REDEFINED:
		diag_find_back(d, &line, &col, line, s1);
		diag_error(d, line, col, "attribute '%s' is given twice", s1);
		return;
	case XML_ERR_DOCUMENT_END:
		diag_error(d, line, col, "extra content after the end of the root element "
		    "(the file must end with </pipeline>)");
		return;
	default:
		break;
	}
	trim_message(e->message, msg, sizeof msg);
	/* "Comment not terminated": lower case like porch's own messages,
	 * but not "XML declaration ..." */
	if (msg[0] >= 'A' && msg[0] <= 'Z' && msg[1] >= 'a' && msg[1] <= 'z')
		msg[0] = (char)(msg[0] - 'A' + 'a');
	diag_error(d, line, col, "%s", msg);
}

static struct parse_state *
state_of(void *ctx)
{
	return ((xmlParserCtxtPtr)ctx)->_private;
}

/* A DOCTYPE is refused before its declarations are read. */
static void
refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
	(void)name; (void)ext; (void)sys;
	xmlParserCtxtPtr ctxt = ctx;
	struct parse_state *ps = state_of(ctx);
	struct diag *d = ps->d;
	long off = xmlByteConsumed(ctxt);
	struct cfg_pos at = { xmlSAX2GetLineNumber(ctxt), 1 };
	if (off >= 0)
		at = off_pos(d, (size_t)off);
	diag_find_back(d, &at.line, &at.col, 1, "<!DOCTYPE");
	if (!ps->failed)
		diag_error(d, at.line, at.col, "DOCTYPE declarations are not allowed in "
		    "pipeline files (no DTDs, no entities)");
	ps->failed = 1;
	xmlStopParser(ctxt);
}

static void
record_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
    int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct diag *d = state_of(ctx)->d;
	xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces,
	    nb_attributes, nb_defaulted, attributes);
	/* the parser stands at the tag's '>' or "/>"; no '<' can be in between */
	long off = xmlByteConsumed(ctxt);
	if (ctxt->node == NULL || off < 0 || d->text_len == 0)
		return;
	size_t at = (size_t)off < d->text_len ? (size_t)off : d->text_len - 1;
	while (at > 0 && d->text[at] != '<')
		at--;
	if (d->text[at] == '<')
		ctxt->node->_private = (void *)(uintptr_t)(at + 1);
}

static void
record_text(void *ctx, const xmlChar *ch, int len)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct diag *d = state_of(ctx)->d;
	xmlSAX2Characters(ctx, ch, len);
	xmlNodePtr t = ctxt->node ? ctxt->node->last : NULL;
	if (t == NULL || t->type != XML_TEXT_NODE || t->_private != NULL)
		return;
	int i = 0;
	while (i < len && is_space(ch[i]))
		i++;
	if (i == len)
		return;
	/* Where the chunk is in the file: libxml2 hands over a pointer into
	 * its input buffer, whose cursor it knows the file offset of (the
	 * cursor may stand before or after the chunk).  A copied chunk (text
	 * with non-ASCII characters) was read up to the cursor, so it ends
	 * there.  Either way the file must agree, or the place is unknown. */
	long cur = xmlByteConsumed(ctxt), off = -1;
	const xmlChar *first = ch + i;
	xmlParserInputPtr in = ctxt->input;
	uintptr_t at = POS_UNKNOWN;
	if (cur >= 0 && in != NULL && in->base != NULL && first >= in->base &&
	    first < in->end)
		off = cur - (long)(in->cur - first);
	else if (cur >= 0) {
		off = cur - (long)(len - i);
		/* a CDATA section's text is handed over once its "]]>" is
		 * read ("]]>" cannot end other text) */
		if (cur >= 3 && (size_t)cur <= d->text_len &&
		    memcmp(d->text + cur - 3, "]]>", 3) == 0)
			off -= 3;
	}
	if (off >= 0 && (size_t)off < d->text_len && (xmlChar)d->text[off] == *first)
		at = (uintptr_t)off + 1;
	t->_private = (void *)at;
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
	struct parse_state ps = { d, 0 };
	ctxt->_private = &ps;
	ctxt->sax->internalSubset = refuse_doctype;
	ctxt->sax->startElementNs = record_start;
	ctxt->sax->characters = record_text;
	xmlExternalEntityLoader saved = xmlGetExternalEntityLoader();
	xmlSetExternalEntityLoader(refuse_external);
	xmlSetStructuredErrorFunc(&ps, parse_error);
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

/* ---- the schema ------------------------------------------------------------ */

static void
schema_load_error(void *ctx, xmlErrorPtr e)
{
	struct diag *d = ctx;
	char msg[512];
	if (e->level == XML_ERR_WARNING)
		return;
	trim_message(e->message, msg, sizeof msg);
	diag_error(d, e->line, e->int2, "%s", msg);
}

/*
 * The schema backs the walk and the checks up: it speaks only when they
 * found nothing, so what it says is something they do not check.
 */
static void
rng_error(void *ctx, xmlErrorPtr e)
{
	struct diag *d = ctx;
	char msg[512];
	trim_message(e->message, msg, sizeof msg);
	struct cfg_pos at = { e->line, 1 };
	if (e->node != NULL)
		at = elem_pos(d, (xmlNodePtr)e->node);
	if (at.line <= 0)
		at.line = 1;
	diag_error(d, at.line, at.col, "schema: %s", msg);
}

static void
validate_schema(xmlDocPtr doc, const char *schema, struct diag *d)
{
	struct diag sd;
	diag_init(&sd, schema ? schema : "porch.rng", d->out);
	xmlSetStructuredErrorFunc(&sd, schema_load_error);
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
	while (is_space(*s))
		s++;
	size_t len = strlen(s);
	while (len > 0 && is_space(s[len - 1]))
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
		if (c->type == XML_TEXT_NODE && is_blank(c->content))
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
			    !is_blank(g->content)) {
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
		} else if (c->type == XML_TEXT_NODE && !is_blank(c->content)) {
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
		if (n->type == XML_TEXT_NODE && is_blank(n->content))
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
	char *buf = read_file(file, &len, err, sizeof err);
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
	xmlDocPtr doc = parse(buf, len, file, d);
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
			validate_schema(doc, schema, d);
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
