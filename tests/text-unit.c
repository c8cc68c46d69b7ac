/*
 * text-unit.c -- unit tests of the text stages' logic (cmocka): assemble's
 * templates, post's transform and redact's scanner, whole and streamed.
 *
 * The streaming tests cut each text at every position (2 pieces), at every
 * pair of positions (3 pieces) and into 1-byte pieces, and check that what
 * the stream lets through, joined, is exactly the whole text's result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "poststream.h"
#include "redact_scan.h"
#include "tbuf.h"
#include "template.h"

/* ---- helpers --------------------------------------------------------------- */

/* Asserts b holds exactly the NUL-terminated want, printing both if not. */
static void
expect_buf(const struct tbuf *b, const char *want, const char *what)
{
	size_t n = strlen(want);
	if (b->len != n || (n > 0 && memcmp(b->p, want, n) != 0)) {
		print_error("%s:\n  got  '%.*s'\n  want '%s'\n", what, (int)b->len,
		    b->p ? b->p : "", want);
		fail();
	}
}

/* Whether the n bytes of b contain the n2 bytes of s. */
static int
contains(const char *b, size_t n, const char *s, size_t n2)
{
	if (n2 == 0)
		return 1;
	for (size_t i = 0; i + n2 <= n; i++)
		if (memcmp(b + i, s, n2) == 0)
			return 1;
	return 0;
}

/* ---- templates ------------------------------------------------------------- */

static const char *
meta_lookup(void *ctx, const char *key)
{
	(void)ctx;
	if (strcmp(key, "lang") == 0)
		return "fr";
	if (strcmp(key, "user.name") == 0)
		return "Ada";
	return NULL;
}

static struct tpl_vals
vals(const char *input, const char *context, const char *session)
{
	struct tpl_vals v = {
		input, strlen(input), context, strlen(context), session, strlen(session),
		meta_lookup, NULL,
	};
	return v;
}

/* Compiles src (which must compile), renders it with v, checks the result. */
static void
render_is(const char *src, const struct tpl_vals *v, const char *want)
{
	struct tpl t;
	struct tpl_error e;
	int rc = tpl_compile(&t, src, strlen(src), &e);
	if (rc != 0) {
		print_error("'%s' did not compile: %s at %zu\n", src, e.what, e.offset);
		fail();
	}
	size_t n = tpl_render(&t, v, NULL);
	char *out = malloc(n + 1);
	assert_non_null(out);
	assert_int_equal(tpl_render(&t, v, out), n);
	struct tbuf b = { out, n, n + 1 };
	expect_buf(&b, want, src);
	free(out);
	tpl_free(&t);
}

/* Compiles src, which must fail, and checks what and where. */
static void
error_is(const char *src, const char *what, size_t offset, unsigned line, unsigned col)
{
	struct tpl t;
	struct tpl_error e;
	memset(&e, 0, sizeof e);
	assert_int_equal(tpl_compile(&t, src, strlen(src), &e), -1);
	if (strcmp(e.what, what) != 0) {
		print_error("'%s':\n  got  '%s'\n  want '%s'\n", src, e.what, what);
		fail();
	}
	assert_int_equal(e.offset, offset);
	assert_int_equal(e.line, line);
	assert_int_equal(e.col, col);
	assert_null(t.seg);
}

static void
test_template_render(void **state)
{
	(void)state;
	struct tpl_vals v = vals("What is porch?", "porch is a runtime.", "u1");

	render_is("Q: {{input}}", &v, "Q: What is porch?");
	render_is("{{ input }}|{{\tcontext\n}}|{{session}}", &v,
	    "What is porch?|porch is a runtime.|u1");
	render_is("[{{meta.lang}}][{{meta.user.name}}][{{meta.none}}]", &v, "[fr][Ada][]");
	render_is("", &v, "");
	render_is("no placeholders at all", &v, "no placeholders at all");
	render_is("{{input}}{{input}}", &v, "What is porch?What is porch?");
	/* escapes and lone braces */
	render_is("{{{{input}} is written {{{{input}}", &v,
	    "{{input}} is written {{input}}");
	render_is("{\"q\": \"{{input}}\"} }} { }", &v,
	    "{\"q\": \"What is porch?\"} }} { }");
	render_is("{{{{", &v, "{{");
	render_is("{{input}}}", &v, "What is porch?}");
	/* sections */
	const char *sec = "{{#context}}C={{context}};{{/context}}{{^context}}none;{{/context}}{{input}}";
	render_is(sec, &v, "C=porch is a runtime.;What is porch?");
	struct tpl_vals empty = vals("hi", "", "");
	render_is(sec, &empty, "none;hi");
	render_is("{{#meta.lang}}lang={{meta.lang}}{{/meta.lang}}{{#meta.x}}X{{/meta.x}}.", &v,
	    "lang=fr.");
	render_is("{{#session}}[{{#context}}both{{/context}}]{{/session}}", &empty, "");
	render_is("{{#input}}[{{^context}}no context{{/context}}]{{/input}}", &empty,
	    "[no context]");
	/* no meta function: every key is empty */
	struct tpl_vals nometa = vals("a", "", "");
	nometa.meta = NULL;
	render_is("<{{meta.lang}}>", &nometa, "<>");
}

static void
test_template_context_count(void **state)
{
	(void)state;
	struct tpl t;
	struct tpl_error e;
	const char *src = "{{#context}}{{context}} and {{context}}{{/context}}";
	assert_int_equal(tpl_compile(&t, src, strlen(src), &e), 0);
	assert_int_equal(t.n_context, 2);
	assert_int_equal(t.uses_context, 1);
	tpl_free(&t);
	assert_int_equal(tpl_compile(&t, "{{input}}", 9, &e), 0);
	assert_int_equal(t.n_context, 0);
	assert_int_equal(t.uses_context, 0);
	tpl_free(&t);
}

static void
test_template_errors(void **state)
{
	(void)state;
	error_is("Q: {{foo}}", "unknown placeholder '{{foo}}'", 3, 1, 4);
	error_is("{{ inputs }}", "unknown placeholder '{{ inputs }}'", 0, 1, 1);
	error_is("x {{meta.}}", "unknown placeholder '{{meta.}}'", 2, 1, 3);
	error_is("{{meta.a b}}", "unknown placeholder '{{meta.a b}}'", 0, 1, 1);
	error_is("{{}}", "unknown placeholder '{{}}'", 0, 1, 1);
	error_is("{{{input}}}", "unknown placeholder '{{{input}}'", 0, 1, 1);
	error_is("line one\nline {{two}}", "unknown placeholder '{{two}}'", 14, 2, 6);
	error_is("abc {{input", "unclosed '{{'", 4, 1, 5);
	error_is("{{input}} {{", "unclosed '{{'", 10, 1, 11);
	error_is("{{#context}}x", "section '{{#context}}' is not closed", 0, 1, 1);
	error_is("x{{/input}}", "'{{/input}}' closes no section", 1, 1, 2);
	error_is("{{#context}}{{/input}}", "'{{/input}}' does not close '{{#context}}'", 12, 1, 13);
	error_is("{{#meta.a}}{{/meta.b}}", "'{{/meta.b}}' does not close '{{#meta.a}}'", 11, 1, 12);
	error_is("{{#nope}}{{/nope}}", "unknown placeholder '{{#nope}}'", 0, 1, 1);
	/* a long placeholder is quoted cut short */
	error_is("{{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}}",
	    "unknown placeholder '{{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'", 0, 1, 1);

	struct tpl t;
	struct tpl_error e;
	assert_int_equal(tpl_compile(&t, "{{foo}}", 7, &e), -1);
	assert_string_equal(e.hint, "known: {{input}}, {{context}}, {{session}}, {{meta.KEY}}");
}

static void
test_template_cut_context(void **state)
{
	(void)state;
	const char *ctx = "first passage.\n\nsecond one.\n\nthird.";
	size_t n = strlen(ctx);
	assert_int_equal(tpl_cut_context(ctx, n, 1000), n);
	assert_int_equal(tpl_cut_context(ctx, n, n), n);
	/* the first two passages fit in 29 bytes ("...one." ends at 27) */
	assert_int_equal(tpl_cut_context(ctx, n, n - 1), 27);
	assert_int_equal(tpl_cut_context(ctx, n, 27), 27);
	assert_int_equal(tpl_cut_context(ctx, n, 26), 14);
	assert_int_equal(tpl_cut_context(ctx, n, 14), 14);
	/* not even the first passage fits: cut inside it */
	assert_int_equal(tpl_cut_context(ctx, n, 13), 13);
	assert_int_equal(tpl_cut_context(ctx, n, 0), 0);
	/* extra blank lines go with the separator */
	const char *c2 = "A\n\n\n\nB";
	assert_int_equal(tpl_cut_context(c2, strlen(c2), 4), 1);
	/* never inside a UTF-8 character: "é" is 2 bytes, "€" 3, "😀" 4 */
	const char *u = "ab\xc3\xa9" "cd\xe2\x82\xac" "e\xf0\x9f\x98\x80" "f";
	size_t un = strlen(u);
	assert_int_equal(tpl_cut_context(u, un, 3), 2);
	assert_int_equal(tpl_cut_context(u, un, 4), 4);
	assert_int_equal(tpl_cut_context(u, un, 7), 6);
	assert_int_equal(tpl_cut_context(u, un, 8), 6);
	assert_int_equal(tpl_cut_context(u, un, 9), 9);
	assert_int_equal(tpl_cut_context(u, un, 11), 10);
	assert_int_equal(tpl_cut_context(u, un, 12), 10);
	assert_int_equal(tpl_cut_context(u, un, 13), 10);
	assert_int_equal(tpl_cut_context(u, un, 14), 14);
	/* a context starting with a blank line has no passage before it */
	const char *c3 = "\n\nabcdef";
	assert_int_equal(tpl_cut_context(c3, strlen(c3), 4), 4);
}

/* ---- lists ----------------------------------------------------------------- */

struct items {
	char v[8][32];
	size_t len[8];
	size_t n;
};

static int
collect_item(void *ctx, const char *item, size_t len)
{
	struct items *it = ctx;
	assert_true(it->n < 8 && len < 32);
	memcpy(it->v[it->n], item, len);
	it->len[it->n++] = len;
	return 0;
}

static void
test_text_list(void **state)
{
	(void)state;
	struct items it;
	size_t bad = 0;

	memset(&it, 0, sizeof it);
	assert_int_equal(text_list("a, b ,c", 0, collect_item, &it, &bad), 0);
	assert_int_equal(it.n, 3);
	assert_string_equal(it.v[0], "a");
	assert_string_equal(it.v[1], "b");
	assert_string_equal(it.v[2], "c");

	memset(&it, 0, sizeof it);
	assert_int_equal(text_list("  ", 0, collect_item, &it, &bad), 0);
	assert_int_equal(it.n, 0);

	memset(&it, 0, sizeof it);
	assert_int_equal(text_list("\\n\\nUser:, \\sEND\\s ,a\\,b,\\\\,x\\t", 1, collect_item,
	    &it, &bad), 0);
	assert_int_equal(it.n, 5);
	assert_string_equal(it.v[0], "\n\nUser:");
	assert_string_equal(it.v[1], " END ");
	assert_string_equal(it.v[2], "a,b");
	assert_string_equal(it.v[3], "\\");
	assert_string_equal(it.v[4], "x\t");

	memset(&it, 0, sizeof it);
	assert_int_equal(text_list("a,,b,", 1, collect_item, &it, &bad), 0);
	assert_int_equal(it.n, 4);
	assert_int_equal(it.len[1], 0);
	assert_int_equal(it.len[3], 0);

	memset(&it, 0, sizeof it);
	assert_int_equal(text_list("ok,b\\qd", 1, collect_item, &it, &bad), -2);
	assert_int_equal(bad, 4);
	/* without escapes a backslash is itself */
	memset(&it, 0, sizeof it);
	assert_int_equal(text_list("b\\qd", 0, collect_item, &it, &bad), 0);
	assert_string_equal(it.v[0], "b\\qd");
}

/* ---- post ------------------------------------------------------------------ */

/* Runs in through a stream cut at the given points; appends to out. */
static void
post_stream_cuts(const struct post_cfg *c, const char *in, size_t n, const size_t *cuts,
    size_t ncuts, struct tbuf *out)
{
	struct post_stream s;
	size_t from = 0;
	memset(&s, 0, sizeof s);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : n;
		assert_int_equal(post_feed(c, &s, in + from, to - from, out), 0);
		from = to;
	}
	assert_int_equal(post_finish(c, &s, out), 0);
	post_stream_clear(&s);
}

/*
 * Checks post on in: the whole result is want, and so is every stream of
 * it in 2 pieces, in 3 pieces and in 1-byte pieces.
 */
static void
post_is(const struct post_cfg *c, const char *in, const char *want)
{
	struct tbuf out = { 0 };
	size_t n = strlen(in), cuts[2];
	char what[512];

	assert_int_equal(post_whole(c, in, n, &out), 0);
	snprintf(what, sizeof what, "post whole '%s'", in);
	expect_buf(&out, want, what);
	for (size_t i = 0; i <= n; i++) {
		out.len = 0;
		cuts[0] = i;
		post_stream_cuts(c, in, n, cuts, 1, &out);
		snprintf(what, sizeof what, "post '%s' in 2 pieces at %zu", in, i);
		expect_buf(&out, want, what);
		for (size_t j = i; j <= n; j++) {
			out.len = 0;
			cuts[1] = j;
			post_stream_cuts(c, in, n, cuts, 2, &out);
			snprintf(what, sizeof what, "post '%s' in 3 pieces at %zu, %zu", in, i, j);
			expect_buf(&out, want, what);
		}
	}
	/* 1-byte pieces */
	struct post_stream s;
	memset(&s, 0, sizeof s);
	out.len = 0;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(post_feed(c, &s, in + i, 1, &out), 0);
	assert_int_equal(post_finish(c, &s, &out), 0);
	snprintf(what, sizeof what, "post '%s' in 1-byte pieces", in);
	expect_buf(&out, want, what);
	post_stream_clear(&s);
	tbuf_free(&out);
}

static void
add_stop(struct post_cfg *c, const char *s)
{
	assert_int_equal(post_cfg_add_stop(c, s, strlen(s)), 0);
}

static void
test_post_trim(void **state)
{
	(void)state;
	struct post_cfg c;
	memset(&c, 0, sizeof c);
	c.trim = 1;
	post_is(&c, "  \n hello  world \t\n", "hello  world");
	post_is(&c, "", "");
	post_is(&c, " \t\n ", "");
	post_is(&c, "x", "x");
	post_is(&c, "a\n\nb\n", "a\n\nb");
	c.trim = 0;
	post_is(&c, "  as it is \n", "  as it is \n");
	c.collapse = 1;
	post_is(&c, "  a \n\t b  ", " a b ");
	c.trim = 1;
	post_is(&c, "  a \n\t b  c\n", "a b c");
}

static void
test_post_stop(void **state)
{
	(void)state;
	struct post_cfg c;
	memset(&c, 0, sizeof c);
	c.trim = 1;
	add_stop(&c, "\n\nUser:");
	add_stop(&c, "###");
	post_is(&c, "The answer is 42.\n\nUser: and more", "The answer is 42.");
	post_is(&c, "The answer is 42.\n\nUse it well.", "The answer is 42.\n\nUse it well.");
	post_is(&c, "one ## two ### three", "one ## two");
	post_is(&c, "###", "");
	post_is(&c, "ends with a partial \n\nUse", "ends with a partial \n\nUse");
	post_is(&c, "#\n\nUser:#", "#");
	post_cfg_free(&c);

	/* the earliest occurrence wins, even of a longer sequence */
	memset(&c, 0, sizeof c);
	add_stop(&c, "abcd");
	add_stop(&c, "bc");
	post_is(&c, "xxabcd", "xx");
	post_is(&c, "xxabce", "xxa");
	post_is(&c, "xabxbcd", "xabx");
	post_cfg_free(&c);

	/* overlapping prefixes of one sequence */
	memset(&c, 0, sizeof c);
	add_stop(&c, "aab");
	post_is(&c, "aaaab!", "aa");
	post_is(&c, "aaaa", "aaaa");
	post_cfg_free(&c);
}

static void
test_post_max_length(void **state)
{
	(void)state;
	struct post_cfg c;
	memset(&c, 0, sizeof c);
	c.trim = 1;
	c.max_length = 5;
	post_is(&c, "hello world", "hello");
	post_is(&c, "hi", "hi");
	post_is(&c, "hello", "hello");
	post_is(&c, "   hello world", "hello");
	/* a cut that leaves trailing whitespace drops it */
	c.max_length = 6;
	post_is(&c, "hello world", "hello");
	/* UTF-8: "héllo" is 6 bytes; never half an "é" */
	c.max_length = 2;
	post_is(&c, "h\xc3\xa9llo", "h");
	c.max_length = 3;
	post_is(&c, "h\xc3\xa9llo", "h\xc3\xa9");
	c.max_length = 4;
	post_is(&c, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
	c.max_length = 7;
	post_is(&c, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
	c.max_length = 1;
	post_is(&c, "\xe2\x82\xac", "");
	post_is(&c, "ab", "a");
	/* with stops and collapsing */
	c.max_length = 9;
	c.collapse = 1;
	add_stop(&c, "STOP");
	post_is(&c, "  one   two\n\nthree STOP four", "one two t");
	post_is(&c, "  one   two\n\nSTOP four", "one two");
	post_is(&c, "a  b STOP", "a b");
	post_cfg_free(&c);
}

static void
test_post_holds_back(void **state)
{
	(void)state;
	struct post_cfg c;
	struct post_stream s;
	struct tbuf out = { 0 };
	memset(&c, 0, sizeof c);
	memset(&s, 0, sizeof s);
	c.trim = 1;
	add_stop(&c, "\n\nUser:");

	assert_int_equal(post_feed(&c, &s, "  Hello", 7, &out), 0);
	expect_buf(&out, "Hello", "leading whitespace dropped");
	assert_int_equal(post_feed(&c, &s, " world\n\nUs", 10, &out), 0);
	/* " world" goes out; "\n\nUs" may begin the stop sequence */
	expect_buf(&out, "Hello world", "a stop prefix held back");
	assert_int_equal(post_feed(&c, &s, "er: more", 8, &out), 0);
	expect_buf(&out, "Hello world", "stopped");
	assert_int_equal(post_feed(&c, &s, " and more", 9, &out), 0);
	assert_int_equal(post_finish(&c, &s, &out), 0);
	expect_buf(&out, "Hello world", "nothing after the stop");

	/* reset: a new stream with the same memory */
	post_stream_reset(&s);
	out.len = 0;
	assert_int_equal(post_feed(&c, &s, "a  ", 3, &out), 0);
	expect_buf(&out, "a", "trailing whitespace held back");
	assert_int_equal(post_feed(&c, &s, "b", 1, &out), 0);
	expect_buf(&out, "a  b", "and let through");
	assert_int_equal(post_feed(&c, &s, "\n", 1, &out), 0);
	assert_int_equal(post_finish(&c, &s, &out), 0);
	expect_buf(&out, "a  b", "and dropped at the end");
	post_stream_clear(&s);
	post_cfg_free(&c);
	tbuf_free(&out);
}

/* ---- redact ---------------------------------------------------------------- */

static void
redact_cfg_all(struct redact_cfg *c)
{
	size_t bad;
	memset(c, 0, sizeof *c);
	c->kinds = (1u << REDACT_NKINDS) - 1;
	c->hex_min = 32;
	c->base64_min = 40;
	assert_int_equal(redact_cfg_masks(c, "[REDACTED:%s]", &bad), 0);
}

static void
redact_stream_cuts(const struct redact_cfg *c, const char *in, size_t n,
    const size_t *cuts, size_t ncuts, struct tbuf *out)
{
	struct redact_stream s;
	size_t from = 0;
	memset(&s, 0, sizeof s);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : n;
		assert_int_equal(redact_feed(c, &s, in + from, to - from, out), 0);
		assert_true(s.pend.len <= REDACT_MAX);
		from = to;
	}
	assert_int_equal(redact_finish(c, &s, out), 0);
	redact_stream_clear(&s);
}

/* Fails if out holds any 4-byte piece of the secret. */
static void
no_leak(const struct tbuf *out, const char *secret, const char *what)
{
	size_t n = strlen(secret);
	for (size_t i = 0; i + 4 <= n; i++) {
		if (contains(out->p, out->len, secret + i, 4)) {
			print_error("%s: leaks '%.4s' of secret '%s'\n", what, secret + i, secret);
			fail();
		}
	}
}

/*
 * Checks redact on in: the whole result is want, so is every stream of it
 * in 2 pieces, in 3 pieces and in 1-byte pieces, and none leaks the secret
 * (may be NULL).
 */
static void
redact_is(const struct redact_cfg *c, const char *in, const char *want, const char *secret)
{
	struct tbuf out = { 0 };
	size_t n = strlen(in), cuts[2];
	char what[1024];

	assert_int_equal(redact_whole(c, in, n, &out), 0);
	snprintf(what, sizeof what, "redact whole '%s'", in);
	expect_buf(&out, want, what);
	if (secret)
		no_leak(&out, secret, what);
	for (size_t i = 0; i <= n; i++) {
		out.len = 0;
		cuts[0] = i;
		redact_stream_cuts(c, in, n, cuts, 1, &out);
		snprintf(what, sizeof what, "redact '%s' in 2 pieces at %zu", in, i);
		expect_buf(&out, want, what);
		for (size_t j = i; j <= n; j++) {
			out.len = 0;
			cuts[1] = j;
			redact_stream_cuts(c, in, n, cuts, 2, &out);
			snprintf(what, sizeof what, "redact '%s' in 3 pieces at %zu, %zu", in, i, j);
			expect_buf(&out, want, what);
		}
	}
	struct redact_stream s;
	memset(&s, 0, sizeof s);
	out.len = 0;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(redact_feed(c, &s, in + i, 1, &out), 0);
		/* nothing let through so far may hold part of the secret */
		if (secret)
			no_leak(&out, secret, "redact in 1-byte pieces, before the end");
	}
	assert_int_equal(redact_finish(c, &s, &out), 0);
	snprintf(what, sizeof what, "redact '%s' in 1-byte pieces", in);
	expect_buf(&out, want, what);
	redact_stream_clear(&s);
	tbuf_free(&out);
}

static void
test_redact_keys(void **state)
{
	(void)state;
	struct redact_cfg c;
	redact_cfg_all(&c);
	redact_is(&c, "key: sk-proj-Ab12Cd34Ef56Gh78Ij90Kl done.",
	    "key: [REDACTED:key] done.", "proj-Ab12Cd34Ef56Gh78Ij90Kl");
	redact_is(&c, "sk-ant-api03-aBcDeFgHiJkLmNoPqRsT_uvw-xyz0123",
	    "[REDACTED:key]", "ant-api03-aBcDeFgHiJkLmNoPqRsT_uvw-xyz0123");
	redact_is(&c, "aws AKIAIOSFODNN7EXAMPLE, ok", "aws [REDACTED:key], ok",
	    "IOSFODNN7EXAMPLE");
	redact_is(&c, "(ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789)", "([REDACTED:key])",
	    "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789");
	redact_is(&c, "xoxb-1234-5678-abcdefgh", "[REDACTED:key]", "1234-5678-abcdefgh");
	redact_is(&c, "AIzaSyA-abcdefghijklmnopqrstuvwxyz12345", "[REDACTED:key]",
	    "SyA-abcdefghijklmnopqrstuvwxyz12345");
	/* not keys */
	redact_is(&c, "a sk-learn model; task-force sk-abc", "a sk-learn model; task-force sk-abc", NULL);
	redact_is(&c, "sk-this-is-just-a-long-lowercase-name", "sk-this-is-just-a-long-lowercase-name", NULL);
	redact_is(&c, "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEx", "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEx", NULL);
	/* glued on after - or _, a key is a key all the same */
	redact_is(&c, "my-sk-proj-Ab12Cd34Ef56Gh78Ij90Kl", "my-[REDACTED:key]", "proj-Ab12Cd34Ef56Gh78Ij90Kl");
	redact_is(&c, "KEY_AKIAIOSFODNN7EXAMPLE", "KEY_[REDACTED:key]", "IOSFODNN7EXAMPLE");
	redact_is(&c, "masksk-proj-Ab12Cd34Ef56Gh78Ij90Kl", "masksk-proj-Ab12Cd34Ef56Gh78Ij90Kl", NULL);
	redact_cfg_free(&c);
}

static void
test_redact_bearer(void **state)
{
	(void)state;
	struct redact_cfg c;
	redact_cfg_all(&c);
	redact_is(&c, "Authorization: Bearer eyJhbGciOi.J9eyJzdWIi.OiIxMjM0== next",
	    "Authorization: Bearer [REDACTED:bearer] next", "eyJhbGciOi.J9eyJzdWIi.OiIxMjM0==");
	redact_is(&c, "bearer\t\tabcdefghijklmnop", "bearer\t\t[REDACTED:bearer]",
	    "abcdefghijklmnop");
	redact_is(&c, "the bearer of bad news", "the bearer of bad news", NULL);
	redact_is(&c, "BEARER abcdefghijklmn.", "BEARER abcdefghijklmn.", NULL);
	redact_is(&c, "BEARER abcdefghijklmno.", "BEARER [REDACTED:bearer]", NULL);
	redact_is(&c, "Bearer                 abcdefghijklmnopqrstu",
	    "Bearer                 abcdefghijklmnopqrstu", NULL);
	redact_cfg_free(&c);
}

static void
test_redact_email(void **state)
{
	(void)state;
	struct redact_cfg c;
	redact_cfg_all(&c);
	redact_is(&c, "Write to john.doe+tag@corp.example.co.uk.",
	    "Write to [REDACTED:email].", "john.doe+tag@corp.example.co.uk");
	redact_is(&c, "<a@b.io>", "<[REDACTED:email]>", NULL);
	redact_is(&c, "a@b.io,c_d@e-f.org", "[REDACTED:email],[REDACTED:email]", NULL);
	/* not addresses */
	redact_is(&c, "foo@bar and user@host.c0m and @x.com and me@.com",
	    "foo@bar and user@host.c0m and @x.com and me@.com", NULL);
	redact_cfg_free(&c);
}

static void
test_redact_phone(void **state)
{
	(void)state;
	struct redact_cfg c;
	redact_cfg_all(&c);
	redact_is(&c, "call +1 202-555-0143 now", "call [REDACTED:phone] now", "202-555-0143");
	redact_is(&c, "call (202) 555-0143.", "call [REDACTED:phone].", "555-0143");
	redact_is(&c, "+442079460958", "[REDACTED:phone]", "2079460958");
	redact_is(&c, "+33 1 23 45 67 89", "[REDACTED:phone]", NULL);
	redact_is(&c, "020 7946 0958", "[REDACTED:phone]", NULL);
	redact_is(&c, "0800 123456", "[REDACTED:phone]", NULL);
	redact_is(&c, "(555) 0143", "[REDACTED:phone]", NULL);
	/* two groups of fewer than 10 digits: year ranges, ZIP+4, local numbers */
	redact_is(&c, "1914-1918, 12345-6789, 555-0143", "1914-1918, 12345-6789, 555-0143", NULL);
	redact_is(&c, "tel 555-014-3999", "tel [REDACTED:phone]", NULL);
	/* not phone numbers */
	redact_is(&c, "on 2024-01-15 at 10:30, 15-01-2024", "on 2024-01-15 at 10:30, 15-01-2024", NULL);
	redact_is(&c, "pi is 3.14159265, ip 192.168.100.200", "pi is 3.14159265, ip 192.168.100.200", NULL);
	redact_is(&c, "sold 12000000 units", "sold 12000000 units", NULL);
	redact_is(&c, "10 20 30 40 50", "10 20 30 40 50", NULL);
	redact_is(&c, "+1234567890123456 is too long", "+1234567890123456 is too long", NULL);
	redact_is(&c, "id 202-555-0143x", "id 202-555-0143x", NULL);
	redact_cfg_free(&c);
}

static void
test_redact_hex_base64(void **state)
{
	(void)state;
	struct redact_cfg c;
	redact_cfg_all(&c);
	const char *sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	char in[256], want[256];
	snprintf(in, sizeof in, "sha256 %s ok", sha);
	redact_is(&c, in, "sha256 [REDACTED:hex] ok", sha);
	redact_is(&c, "key=0xdeadbeef00112233445566778899aabbccddeeff;",
	    "key=[REDACTED:hex];", "deadbeef00112233445566778899aabbccddeeff");
	redact_is(&c, "short deadbeef0011 and 9f86d081884c7d659a2feaa0c55ad01g",
	    "short deadbeef0011 and 9f86d081884c7d659a2feaa0c55ad01g", NULL);
	const char *b64 = "QWxhZGRpbjpvcGVuIHNlc2FtZQ0KdGhpcyBpcyBhIHRlc3Q=";
	snprintf(in, sizeof in, "secret=%s end", b64);
	redact_is(&c, in, "secret=[REDACTED:base64] end", b64);
	redact_is(&c, "url-safe: dGhpcy1pcy1h_dGVzdC1vZi11cmwtc2FmZS1iYXNlNjQ- x",
	    "url-safe: [REDACTED:base64] x", "dGhpcy1pcy1h_dGVzdC1vZi11cmwtc2FmZS1iYXNlNjQ-");
	/* long words without the mix of a secret */
	redact_is(&c, "Pneumonoultramicroscopicsilicovolcanoconiosis is long",
	    "Pneumonoultramicroscopicsilicovolcanoconiosis is long", NULL);
	/* hex is tried before base64: a mixed-case hex run is hex */
	snprintf(in, sizeof in, "%s", "ABCDEF0123456789abcdef0123456789ABCDEF01");
	snprintf(want, sizeof want, "[REDACTED:hex]");
	redact_is(&c, in, want, NULL);
	redact_cfg_free(&c);
}

static void
test_redact_mixed(void **state)
{
	(void)state;
	struct redact_cfg c;
	redact_cfg_all(&c);
	redact_is(&c,
	    "From a@b.io: use sk-Ab12Cd34Ef56Gh78Ij90 or call +1 202 555 0143.\n"
	    "Bearer Zm9vYmFyYmF6cXV4MTIzNDU2 and 0123456789abcdef0123456789abcdef!",
	    "From [REDACTED:email]: use [REDACTED:key] or call [REDACTED:phone].\n"
	    "Bearer [REDACTED:bearer] and [REDACTED:hex]!", NULL);
	/* only some kinds */
	c.kinds = 1u << REDACT_EMAIL;
	redact_is(&c, "a@b.io sk-Ab12Cd34Ef56Gh78Ij90 +1 202 555 0143",
	    "[REDACTED:email] sk-Ab12Cd34Ef56Gh78Ij90 +1 202 555 0143", NULL);
	c.kinds = 0;
	redact_is(&c, "a@b.io", "a@b.io", NULL);
	redact_cfg_free(&c);
}

static void
test_redact_long_secret(void **state)
{
	(void)state;
	struct redact_cfg c;
	redact_cfg_all(&c);
	/* a hex run of 2000 digits: one mask, and a stream never holds more than REDACT_MAX */
	size_t n = 2000;
	char *in = malloc(n + 16);
	assert_non_null(in);
	memcpy(in, "x ", 2);
	for (size_t i = 0; i < n; i++)
		in[2 + i] = "0123456789abcdef"[(i * 7) % 16];
	memcpy(in + 2 + n, " y", 3);
	struct tbuf out = { 0 };
	assert_int_equal(redact_whole(&c, in, strlen(in), &out), 0);
	expect_buf(&out, "x [REDACTED:hex] y", "a long hex run, whole");
	struct redact_stream s;
	memset(&s, 0, sizeof s);
	for (size_t step = 1; step <= 700; step += 233) {
		out.len = 0;
		for (size_t i = 0; i < strlen(in); i += step) {
			size_t k = strlen(in) - i < step ? strlen(in) - i : step;
			assert_int_equal(redact_feed(&c, &s, in + i, k, &out), 0);
			assert_true(s.pend.len <= REDACT_MAX);
		}
		assert_int_equal(redact_finish(&c, &s, &out), 0);
		expect_buf(&out, "x [REDACTED:hex] y", "a long hex run, streamed");
	}
	redact_stream_clear(&s);

	/* a long token after Bearer is masked too, its word kept */
	char *b = malloc(n + 16);
	assert_non_null(b);
	memcpy(b, "Bearer ", 7);
	memset(b + 7, 'a', n);
	b[7 + n] = '\0';
	out.len = 0;
	assert_int_equal(redact_whole(&c, b, strlen(b), &out), 0);
	expect_buf(&out, "Bearer [REDACTED:bearer]", "a long bearer token");
	free(b);
	free(in);
	tbuf_free(&out);
	redact_cfg_free(&c);
}

static void
test_redact_masks(void **state)
{
	(void)state;
	struct redact_cfg c;
	size_t bad = 0;
	memset(&c, 0, sizeof c);
	c.kinds = 1u << REDACT_EMAIL;
	assert_int_equal(redact_cfg_masks(&c, "<%s 100%%>", &bad), 0);
	assert_string_equal(c.mask[REDACT_EMAIL], "<email 100%>");
	assert_string_equal(c.mask[REDACT_PHONE], "<phone 100%>");
	assert_int_equal(redact_cfg_masks(&c, "[%d]", &bad), -1);
	assert_int_equal(bad, 1);
	assert_int_equal(redact_cfg_masks(&c, "50%", &bad), -1);
	assert_int_equal(bad, 2);
	assert_int_equal(redact_cfg_masks(&c, "", &bad), 0);
	struct tbuf out = { 0 };
	assert_int_equal(redact_whole(&c, "x a@b.io y", 10, &out), 0);
	expect_buf(&out, "x  y", "an empty mask");
	tbuf_free(&out);
	redact_cfg_free(&c);

	assert_int_equal(redact_kind_parse("base64", 6), REDACT_BASE64);
	assert_int_equal(redact_kind_parse("base6", 5), -1);
	assert_string_equal(redact_kind_name(REDACT_KEY), "key");
	assert_null(redact_kind_name(REDACT_NKINDS));
}

/* ---- random texts: stream and whole agree ----------------------------------- */

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint32_t
rnd(uint32_t n)
{
	/* xorshift64*: repeatable, so a failure can be replayed */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 33) % n;
}

/* A random text of pieces from the given list. */
static size_t
random_text(char *buf, size_t cap, const char *const *parts, size_t n_parts, size_t count)
{
	size_t len = 0;
	for (size_t i = 0; i < count; i++) {
		const char *p = parts[rnd((uint32_t)n_parts)];
		size_t n = strlen(p);
		if (len + n >= cap)
			break;
		memcpy(buf + len, p, n);
		len += n;
	}
	buf[len] = '\0';
	return len;
}

static void
test_post_random(void **state)
{
	(void)state;
	static const char *const parts[] = {
		" ", "  ", "\n", "\t", "a", "b", "word", "\xc3\xa9", "\xe2\x82\xac",
		"\xf0\x9f\x98\x80", "ST", "OP", "STOP", "\n\n", "Us", "er:", "#", "##",
	};
	char text[256];
	struct tbuf whole = { 0 }, streamed = { 0 };
	for (int iter = 0; iter < 20000; iter++) {
		struct post_cfg c;
		memset(&c, 0, sizeof c);
		c.trim = (int)rnd(2);
		c.collapse = (int)rnd(2);
		c.max_length = rnd(3) == 0 ? 0 : rnd(40);
		if (rnd(3) != 0)
			add_stop(&c, "STOP");
		if (rnd(2) != 0)
			add_stop(&c, "\n\nUser:");
		if (rnd(3) == 0)
			add_stop(&c, "##");
		size_t n = random_text(text, sizeof text, parts, sizeof parts / sizeof parts[0],
		    1 + rnd(30));
		whole.len = streamed.len = 0;
		assert_int_equal(post_whole(&c, text, n, &whole), 0);
		struct post_stream s;
		memset(&s, 0, sizeof s);
		for (size_t i = 0; i < n;) {
			size_t k = 1 + rnd(8);
			if (k > n - i)
				k = n - i;
			assert_int_equal(post_feed(&c, &s, text + i, k, &streamed), 0);
			i += k;
		}
		assert_int_equal(post_finish(&c, &s, &streamed), 0);
		if (whole.len != streamed.len ||
		    (whole.len > 0 && memcmp(whole.p, streamed.p, whole.len) != 0)) {
			print_error("iteration %d: trim %d collapse %d max %zu stops %zu on '%s':\n"
			    "  whole    '%.*s'\n  streamed '%.*s'\n", iter, c.trim, c.collapse,
			    c.max_length, c.n_stop, text, (int)whole.len, whole.p,
			    (int)streamed.len, streamed.p);
			fail();
		}
		post_stream_clear(&s);
		post_cfg_free(&c);
	}
	tbuf_free(&whole);
	tbuf_free(&streamed);
}

static void
test_redact_random(void **state)
{
	(void)state;
	static const char *const parts[] = {
		" ", "\n", ".", "-", "_", "+", "(", ")", "@", "=", "/", ":", "x", "Q",
		"sk-", "AKIA", "ghp_", "Bearer ", "bearer\t", "0x", "12", "555", "0143",
		"deadbeef", "c0ffee42", "AbCd", "Zz9", "mail", "com", "io", "a@b.io",
		"+1 ", "(202) ", "2024-01-15", "\xc3\xa9",
	};
	char text[1024];
	struct tbuf whole = { 0 }, streamed = { 0 };
	struct redact_cfg c;
	redact_cfg_all(&c);
	c.hex_min = 16;
	c.base64_min = 16;
	for (int iter = 0; iter < 20000; iter++) {
		c.kinds = rnd(4) == 0 ? rnd(1u << REDACT_NKINDS) : (1u << REDACT_NKINDS) - 1;
		size_t n = random_text(text, sizeof text, parts, sizeof parts / sizeof parts[0],
		    1 + rnd(60));
		whole.len = streamed.len = 0;
		assert_int_equal(redact_whole(&c, text, n, &whole), 0);
		struct redact_stream s;
		memset(&s, 0, sizeof s);
		for (size_t i = 0; i < n;) {
			size_t k = 1 + rnd(12);
			if (k > n - i)
				k = n - i;
			assert_int_equal(redact_feed(&c, &s, text + i, k, &streamed), 0);
			assert_true(s.pend.len <= REDACT_MAX);
			i += k;
		}
		assert_int_equal(redact_finish(&c, &s, &streamed), 0);
		if (whole.len != streamed.len ||
		    (whole.len > 0 && memcmp(whole.p, streamed.p, whole.len) != 0)) {
			print_error("iteration %d: kinds %#x on '%s':\n  whole    '%.*s'\n"
			    "  streamed '%.*s'\n", iter, c.kinds, text, (int)whole.len, whole.p,
			    (int)streamed.len, streamed.p);
			fail();
		}
		redact_stream_clear(&s);
	}
	redact_cfg_free(&c);
	tbuf_free(&whole);
	tbuf_free(&streamed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_template_render),
		cmocka_unit_test(test_template_context_count),
		cmocka_unit_test(test_template_errors),
		cmocka_unit_test(test_template_cut_context),
		cmocka_unit_test(test_text_list),
		cmocka_unit_test(test_post_trim),
		cmocka_unit_test(test_post_stop),
		cmocka_unit_test(test_post_max_length),
		cmocka_unit_test(test_post_holds_back),
		cmocka_unit_test(test_redact_keys),
		cmocka_unit_test(test_redact_bearer),
		cmocka_unit_test(test_redact_email),
		cmocka_unit_test(test_redact_phone),
		cmocka_unit_test(test_redact_hex_base64),
		cmocka_unit_test(test_redact_mixed),
		cmocka_unit_test(test_redact_long_secret),
		cmocka_unit_test(test_redact_masks),
		cmocka_unit_test(test_post_random),
		cmocka_unit_test(test_redact_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
