/*
 * loader_xml.c -- the pipeline file under libxml2: read, parsed with the
 * byte offset of every element and text recorded, libxml2's errors turned
 * into one-line diagnostics at FILE:LINE:COL, and the shipped RELAX NG
 * schema checked.  loader.c walks the tree this gives it.
 *
 * No network, no DTD, no entities: a DOCTYPE stops the parse before any
 * declaration is read, so entity bombs never start.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "loader.h"
#include "loader_int.h"
#include "util.h"

/* a pipeline file is refused above this size (bytes) */
#define PIPELINE_FILE_MAX (16 * 1024 * 1024)

/* share/porch.rng, compiled in (src/schema.c is generated from it) */
extern const char porch_schema_rng[];

/* ---- reading and parsing ------------------------------------------------ */

char *
loader_read_file(const char *file, size_t *len, char *err, size_t errlen)
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
 * start tag ends.  To point at the offending token, loader_parse() wraps two SAX
 * callbacks to record the byte offset of each element's '<' and of each
 * text's first non-blank character in node->_private (offset + 1; 0 is "not
 * recorded", POS_UNKNOWN "could not be placed").  Attributes are then found
 * by scanning the start tag in the file's text.
 */
#define POS_UNKNOWN ((uintptr_t)-1)

int
loader_is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int
loader_is_blank(const xmlChar *s)
{
	for (; s && *s; s++)
		if (!loader_is_space(*s))
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
	while (i < n && !loader_is_space(t[i]) && t[i] != '>' && t[i] != '/')
		i++;
	for (;;) {
		while (i < n && loader_is_space(t[i]))
			i++;
		if (i >= n || t[i] == '>' || t[i] == '/' || t[i] == '<')
			return 0;
		size_t a = i;
		while (i < n && !loader_is_space(t[i]) && t[i] != '=' && t[i] != '>' && t[i] != '/')
			i++;
		size_t alen = i - a;
		while (i < n && loader_is_space(t[i]))
			i++;
		if (i >= n || t[i] != '=')
			return 0;
		for (i++; i < n && loader_is_space(t[i]); i++)
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

struct cfg_pos
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
struct cfg_pos
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
struct cfg_pos
text_pos(const struct diag *d, xmlNodePtr t)
{
	size_t off = node_off(d, t);
	if (off != (size_t)-1)
		return off_pos(d, off);
	struct cfg_pos at = { line_of(t), 1 };
	return at;
}

/* The start of a text node for messages: "stages follow", at most 32 bytes. */
void
text_excerpt(xmlNodePtr t, char *buf, size_t len)
{
	const char *s = t->content ? (const char *)t->content : "";
	while (loader_is_space(*s))
		s++;
	size_t n = 0;
	while (s[n] != '\0' && s[n] != '\n' && s[n] != '\r' && n < 32)
		n++;
	while (n > 0 && loader_is_space(s[n - 1]))
		n--;
	int more = s[n] != '\0' && !loader_is_blank((const xmlChar *)s + n);
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
		if (loader_is_blank((const xmlChar *)d->text))
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
	while (i < len && loader_is_space(ch[i]))
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

xmlDocPtr
loader_parse(const char *buf, size_t len, const char *file, struct diag *d)
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

void
loader_validate(xmlDocPtr doc, const char *schema, struct diag *d)
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
