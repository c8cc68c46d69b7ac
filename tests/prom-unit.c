/*
 * prom-unit.c -- the Prometheus text reader of porch top (src/prom.c):
 * samples, labels and their escapes, comments and TYPE lines, what a
 * malformed line is told, and quantiles of histogram buckets.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"

static void
parse_ok(const char *text, struct prom_set *set)
{
	char err[128];
	if (prom_parse(text, strlen(text), set, err, sizeof err) != 0)
		fail_msg("'%s' did not parse: %s", text, err);
}

static void
test_samples(void **state)
{
	(void)state;
	struct prom_set set;
	parse_ok("# HELP porch_x A thing.\n"
	    "# TYPE porch_x counter\n"
	    "porch_x{stage=\"rag\"} 12\n"
	    "porch_x{stage=\"assemble\",outcome=\"shed\"} 3 1700000000000\n"
	    "\n"
	    "  porch_up 1\r\n"
	    "porch_y{ a = \"1\" , } 2.5e3\n"
	    "porch_nan NaN\n"
	    "porch_inf{le=\"+Inf\"} +Inf", &set);
	assert_int_equal(set.n, 6);
	assert_string_equal(set.s[0].name, "porch_x");
	assert_int_equal(set.s[0].n_labels, 1);
	assert_string_equal(prom_label(&set.s[0], "stage"), "rag");
	assert_null(prom_label(&set.s[0], "outcome"));
	assert_true(set.s[0].value == 12);
	assert_true(prom_value(&set, -1, "porch_x", "stage", "assemble", NULL) == 3);
	assert_true(prom_value(&set, -1, "porch_x", "stage", "assemble", "outcome", "shed",
	    NULL) == 3);
	assert_true(prom_value(&set, -1, "porch_x", "stage", "assemble", "outcome", "failed",
	    NULL) == -1);
	assert_true(prom_value(&set, -1, "porch_x", NULL) == 12); /* the first */
	assert_true(prom_value(&set, -1, "porch_up", NULL) == 1);
	assert_true(prom_value(&set, -1, "porch_y", "a", "1", NULL) == 2500);
	assert_true(isnan(prom_value(&set, 0, "porch_nan", NULL)));
	assert_true(isinf(prom_value(&set, 0, "porch_inf", "le", "+Inf", NULL)));
	assert_null(prom_find(&set, "porch_missing", NULL));
	assert_string_equal(prom_type(&set, "porch_x"), "counter");
	assert_null(prom_type(&set, "porch_up"));
	prom_free(&set);
}

static void
test_escapes(void **state)
{
	(void)state;
	struct prom_set set;
	parse_ok("m{p=\"a \\\"quoted\\\" \\\\ back\\nslash, {}=\"} 1\n", &set);
	assert_int_equal(set.n, 1);
	assert_string_equal(prom_label(&set.s[0], "p"), "a \"quoted\" \\ back\nslash, {}=");
	prom_free(&set);
}

static void
bad(const char *text, const char *want)
{
	struct prom_set set;
	char err[128];
	if (prom_parse(text, strlen(text), &set, err, sizeof err) == 0)
		fail_msg("'%s' parsed", text);
	if (strcmp(err, want) != 0)
		fail_msg("'%s': got '%s', want '%s'", text, err, want);
	assert_int_equal(set.n, 0);
	prom_free(&set);
}

static void
test_malformed(void **state)
{
	(void)state;
	bad("<html>\n", "line 1: expected a metric name");
	bad("ok 1\nm{a=\"1\" 2\n", "line 2: expected ',' or '}' after a label");
	bad("m{a=\"1} 2\n", "line 1: unterminated label value");
	bad("m{a=1} 2\n", "line 1: expected a quoted label value");
	bad("m{a} 2\n", "line 1: expected '=' after a label name");
	bad("m\n", "line 1: expected a value");
	bad("m x\n", "line 1: the value is not a number");
	bad("m 1 2 3\n", "line 1: junk after the value");
	bad("\n\n# c\nm{a=\"1\"", "line 4: unterminated label set");
}

static void
test_quantile(void **state)
{
	(void)state;
	const double le[] = { 0.1, 0.2, 0.5, INFINITY };
	/* 10 in (0, 0.1], 10 in (0.1, 0.2], none above */
	const double cum[] = { 10, 20, 20, 20 };
	assert_float_equal(prom_quantile(0.5, le, cum, 4), 0.1, 1e-12);
	assert_float_equal(prom_quantile(0.25, le, cum, 4), 0.05, 1e-12);
	assert_float_equal(prom_quantile(0.75, le, cum, 4), 0.15, 1e-12);
	assert_float_equal(prom_quantile(0.99, le, cum, 4), 0.198, 1e-12);
	/* ranks in +Inf answer the highest finite bound */
	const double over[] = { 0, 0, 1, 100 };
	assert_float_equal(prom_quantile(0.99, le, over, 4), 0.5, 1e-12);
	/* empty, or not a quantile */
	const double none[] = { 0, 0, 0, 0 };
	assert_true(isnan(prom_quantile(0.5, le, none, 4)));
	assert_true(isnan(prom_quantile(1.5, le, cum, 4)));
	assert_true(isnan(prom_quantile(0.5, le, cum, 0)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_quantile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
