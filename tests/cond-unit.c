/*
 * cond-unit.c -- the condition language (src/cond.c): what each form
 * means, and what a malformed one is told, at which column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cond.h"

/* Metadata as "key=value" strings, ending with NULL. */
static const char *
meta(const void *ctx, const char *key)
{
	for (const char *const *kv = ctx; *kv != NULL; kv++) {
		size_t n = strlen(key);
		if (strncmp(*kv, key, n) == 0 && (*kv)[n] == '=')
			return *kv + n + 1;
	}
	return NULL;
}

static int
holds(const char *src, const char *text, const char *const *md)
{
	struct cond_error err;
	struct cond *c = cond_compile(src, &err);
	if (c == NULL)
		fail_msg("'%s' did not compile: %s at %zu", src, err.msg, err.offset);
	struct cond_input in = { text, strlen(text), "s1", meta, md };
	int r = cond_eval(c, &in);
	cond_free(c);
	return r;
}

static void
test_compare(void **state)
{
	(void)state;
	static const char *const md[] = { "complexity=simple", "category=extraction",
	    "score=0.75", "n=10", "empty=", "finish-reason=stop", NULL };
	assert_true(holds("complexity == 'simple'", "", md));
	assert_false(holds("complexity != 'simple'", "", md));
	assert_true(holds("complexity == \"simple\"", "", md));
	/* the example */
	assert_true(holds("complexity == 'simple' or category in ('extraction', 'summary', "
	    "'classification')", "", md));
	assert_true(holds("category in ('extraction', 'summary')", "", md));
	assert_false(holds("category not in ('extraction', 'summary')", "", md));
	/* numbers: numeric against a number, even from metadata strings */
	assert_true(holds("n > 9", "", md));
	assert_true(holds("n == 10.0", "", md));
	assert_false(holds("n < 9", "", md));
	assert_true(holds("score >= 0.5 and score <= 1", "", md));
	assert_true(holds("n in (3, 10)", "", md));
	/* strings are not ordered; an unset key is '' */
	assert_false(holds("complexity > 'a'", "", md));
	assert_true(holds("missing == ''", "", md));
	assert_false(holds("missing > 0", "", md));
	assert_true(holds("finish-reason == 'stop'", "", md));
	/* a bare value: set and not empty */
	assert_true(holds("complexity", "", md));
	assert_false(holds("empty", "", md));
	assert_false(holds("missing", "", md));
	assert_true(holds("session == 's1'", "", md));
}

static void
test_logic(void **state)
{
	(void)state;
	static const char *const md[] = { "a=1", "b=0", NULL };
	assert_true(holds("not b == 1", "", md));
	assert_true(holds("a == 1 and (b == 1 or b == 0)", "", md));
	/* and binds tighter than or */
	assert_true(holds("a == 1 or b == 1 and b == 2", "", md));
	assert_false(holds("(a == 1 or b == 1) and b == 2", "", md));
	assert_true(holds("not not a", "", md));
	assert_true(holds("true", "", md));
	assert_false(holds("false or false", "", md));
}

static void
test_functions(void **state)
{
	(void)state;
	static const char *const md[] = { "cache=no", "lang=python", NULL };
	assert_true(holds("length(text) == 11", "hello world", md));
	assert_true(holds("words(text) == 2", "  hello \t world\n", md));
	assert_true(holds("words(text) == 0", "   ", md));
	assert_true(holds("has(cache)", "", md));
	assert_true(holds("has('cache')", "", md));
	assert_false(holds("has(other)", "", md));
	assert_true(holds("starts_with(text, '/code')", "/code x", md));
	assert_false(holds("starts_with(text, '/code')", "/cod", md));
	assert_true(holds("ends_with(text, '?')", "why?", md));
	assert_true(holds("contains(text, 'json')", "answer in json please", md));
	assert_true(holds("contains(lang, 'py')", "", md));
	assert_true(holds("length(lang) > 3 and not has(nope)", "", md));
	assert_true(holds("starts_with(text, 'it\\'s') and contains(text, \"t's\")", "it's", md));
}

/* compile_error SRC OFFSET MSG: fails at OFFSET with MSG */
static void
compile_error(const char *src, size_t offset, const char *msg)
{
	struct cond_error err;
	struct cond *c = cond_compile(src, &err);
	if (c != NULL)
		fail_msg("'%s' compiled", src);
	assert_string_equal(err.msg, msg);
	assert_int_equal(err.offset, offset);
}

static void
test_errors(void **state)
{
	(void)state;
	compile_error("", 0, "the condition is empty");
	compile_error("complexity ==", 13,
	    "expected a value (a metadata key, a 'string', a number or a function), found the end");
	compile_error("complexity = 'simple'", 11,
	    "unexpected '=' (the operators are == != < <= > >=, in, and, or, not)");
	compile_error("a == 'b", 5, "this string has no closing '");
	compile_error("size(text) > 3", 0, "unknown function 'size' (the functions are "
	    "length, words, has, starts_with, ends_with and contains)");
	compile_error("length(text, 2) > 3", 13, "length() takes 1 argument");
	compile_error("starts_with(text) ", 12, "starts_with() takes 2 arguments");
	compile_error("a == 1)", 6, "expected 'and', 'or', or the end of the condition, "
	    "found ')'");
	compile_error("(a == 1 or b", 12, "expected ')' to close '(a == 1 or b', found the end");
	compile_error("x and (a == 1 or b == 2 or c == 3", 33, "expected ')' to close "
	    "'(a == 1 or b == ...', found the end");
	compile_error("a in 'x'", 5, "expected '(' and a list of values after 'in', found ''x''");
	compile_error("a in (b)", 6, "expected a 'string' or a number in the list, found 'b'");
	compile_error("a == 1 b == 2", 7, "expected 'and', 'or', or the end of the condition, "
	    "found 'b'");
	compile_error("a not b", 2, "expected 'in' after 'not' here (or 'and'/'or' before it)");
	compile_error("has(1)", 4, "expected a metadata key, found '1'");
	compile_error("and a", 0, "expected a value (a metadata key, a 'string', a number or a "
	    "function), found 'and'");
	compile_error("n > 3x", 4, "'3x' is not a number");
}

static void
test_constant(void **state)
{
	(void)state;
	struct cond_error err;
	const struct { const char *src; int want; } cases[] = {
		{ "1 == 2", 0 }, { "'a' == 'a'", 1 }, { "true", 1 }, { "a == 1", -1 },
		{ "length(text) > 0", -1 }, { "has(x)", -1 }, { "1 == 1 and 2 > 3", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cond *c = cond_compile(cases[i].src, &err);
		assert_non_null(c);
		assert_int_equal(cond_constant(c), cases[i].want);
		assert_string_equal(cond_source(c), cases[i].src);
		cond_free(c);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_logic),
		cmocka_unit_test(test_functions),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_constant),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
