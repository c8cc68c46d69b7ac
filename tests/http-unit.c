/*
 * http-unit.c -- unit tests of the http source's JSON writer (cmocka):
 * its strings must be the bytes jansson's json_dumps(JSON_COMPACT |
 * JSON_ENSURE_ASCII) wrote for the same text, after invalid UTF-8 was
 * mended with U+FFFD one bad byte at a time, as answers did before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "buf.h"

/* The old way: jansson's string, each byte that does not begin a valid
 * UTF-8 sequence replaced with U+FFFD, dumped. */
static char *
jansson_way(const char *p, size_t n)
{
	json_t *j = json_stringn(p, n);
	if (j == NULL) {
		struct buf b = { 0 };
		for (size_t i = 0; i < n;) {
			unsigned char c = (unsigned char)p[i];
			size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
			    (c & 0xf8) == 0xf0 ? 4 : 0;
			json_t *one = k > 0 && i + k <= n ? json_stringn(p + i, k) : NULL;
			if (one == NULL) {
				buf_add(&b, "\xef\xbf\xbd", 3);
				i++;
				continue;
			}
			json_decref(one);
			buf_add(&b, p + i, k);
			i += k;
		}
		j = json_stringn(b.p ? b.p : "", b.len);
		buf_free(&b);
	}
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
	json_decref(j);
	return s;
}

static void
expect_same(const char *p, size_t n)
{
	char *want = jansson_way(p, n);
	struct buf b = { 0 };
	assert_int_equal(json_put_str(&b, p, n), 0);
	if (strlen(want) != b.len || memcmp(want, b.p, b.len) != 0) {
		print_error("input:");
		for (size_t i = 0; i < n; i++)
			print_error(" %02x", (unsigned char)p[i]);
		print_error("\n  got  %s\n  want %s\n", b.p, want);
		fail();
	}
	free(want);
	buf_free(&b);
}

static void
test_fixed(void **state)
{
	(void)state;
	static const char *const cases[] = {
		"", "hello", "say \"hi\"\\", "a/b", "tab\there\nnew\r\b\f", "\x01\x1f\x7f",
		"caf\xc3\xa9", "\xe2\x82\xac 5", "\xf0\x9f\x98\x80 emoji", "\xef\xbf\xbf",
		"\xed\xa0\x80 surrogate", "\xc0\xaf overlong", "\xf4\x90\x80\x80 too big",
		"\xe2\x82 cut", "\xff\xfe", "end \xf0\x9f\x98",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_same(cases[i], strlen(cases[i]));
	expect_same("nul\0inside", 10);
}

static void
test_random(void **state)
{
	(void)state;
	uint64_t x = 88172645463325252ull;
	for (int it = 0; it < 200000; it++) {
		char s[16];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t n = x % 13;
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			unsigned r = (unsigned)(x >> 8);
			switch (x % 8) {
			case 0: case 1: case 2: s[i] = (char)(r & 0xff); break;  /* any byte */
			case 3: case 4: s[i] = (char)(0x80 | (r & 0x3f)); break; /* continuation */
			case 5: s[i] = (char)(0xc0 | (r & 0x3f)); break;         /* a lead */
			default: s[i] = (char)(r & 0x7f); break;                 /* ASCII */
			}
		}
		expect_same(s, n);
	}
}

static void
test_integers(void **state)
{
	(void)state;
	struct buf b = { 0 };
	buf_u64(&b, 0);
	buf_lit(&b, " ");
	buf_u64(&b, UINT64_MAX);
	buf_lit(&b, " ");
	buf_i64(&b, -42);
	buf_lit(&b, " ");
	buf_i64(&b, INT64_MIN);
	buf_lit(&b, " ");
	buf_hex(&b, 0);
	buf_lit(&b, " ");
	buf_hex(&b, 0x1a2f);
	char h[17];
	hex16(h, 0x12ab);
	buf_lit(&b, " ");
	buf_str(&b, h);
	assert_string_equal(b.p, "0 18446744073709551615 -42 -9223372036854775808 0 1a2f "
	    "00000000000012ab");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_integers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
