/*
 * http-unit.c -- unit tests of the http source's JSON writer and quick
 * reader (cmocka), against jansson: the writer's strings must be the bytes
 * json_dumps(JSON_COMPACT | JSON_ENSURE_ASCII) wrote for the same text,
 * after invalid UTF-8 was mended with U+FFFD one bad byte at a time, as
 * answers did before; the reader must build what json_loadb builds, or
 * give up where json_loadb fails.  A text cut with utf8_whole and written
 * a slice at a time must give the bytes it gives whole; count_words (a
 * word at a time) must count as a byte loop does.
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
#include "jparse.h"

uint64_t count_words(const char *p, size_t len); /* completion.c */

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

/* Random bytes of every kind (any, continuations, leads, white space,
 * quotes and backslashes, ASCII), n of them. */
static void
random_bytes(uint64_t *x, char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
		unsigned r = (unsigned)(*x >> 8);
		switch (*x % 10) {
		case 0: s[i] = (char)(r & 0xff); break;
		case 1: s[i] = (char)(0x80 | (r & 0x3f)); break;
		case 2: s[i] = (char)(0xc0 | (r & 0x3f)); break;
		case 3: s[i] = " \t\n\v\f\r\"\\"[r % 8]; break;
		default: s[i] = (char)(0x20 + r % 0x5f); break;
		}
	}
}

/* A text escaped a slice at a time, each cut by utf8_whole, is the text
 * escaped whole: slices are cut between whole UTF-8 sequences. */
static void
test_slices(void **state)
{
	(void)state;
	uint64_t x = 2463534242ull;
	for (int it = 0; it < 20000; it++) {
		char s[200];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* 4 bytes at least: the longest sequence */
		size_t n = x % sizeof s, slice = 4 + (x >> 32) % 16;
		random_bytes(&x, s, n);
		struct buf whole = { 0 }, parts = { 0 };
		json_put_esc(&whole, s, n);
		for (size_t at = 0; at < n;) {
			size_t k = n - at > slice ? utf8_whole(s + at, slice) : n - at;
			assert_true(k > 0);
			json_put_esc(&parts, s + at, k);
			at += k;
		}
		if (whole.len != parts.len || (whole.len > 0 && memcmp(whole.p, parts.p, whole.len) != 0)) {
			print_error("slices of %zu: %s\n  whole %s\n", slice, parts.p, whole.p);
			fail();
		}
		buf_free(&whole);
		buf_free(&parts);
	}
}

/* count_words against a byte loop, at every alignment. */
static void
test_words(void **state)
{
	(void)state;
	uint64_t x = 1234567ull;
	for (int it = 0; it < 100000; it++) {
		char s[100];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t n = x % sizeof s;
		random_bytes(&x, s, n);
		uint64_t want = 0;
		int in_word = 0;
		for (size_t i = 0; i < n; i++) {
			char c = s[i];
			int space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
			    c == '\f';
			want += !space && !in_word;
			in_word = !space;
		}
		assert_int_equal(count_words(s, n), want);
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

/* buf_reserve makes room for exactly what is asked (a body whose size is
 * known counts in max-inflight-bytes as that, not the next power of two),
 * and nothing when there is room already. */
static void
test_reserve(void **state)
{
	(void)state;
	struct buf b = { 0 };
	buf_lit(&b, "abc");
	size_t cap = b.cap;
	assert_int_equal(buf_reserve(&b, 1), 0);
	assert_int_equal(b.cap, cap);
	assert_int_equal(buf_reserve(&b, 100000), 0);
	assert_int_equal(b.cap, 3 + 100000 + 1);
	char *p = b.p;
	for (int i = 0; i < 100000; i++)
		buf_lit(&b, "x");
	assert_ptr_equal(b.p, p); /* no growth on the way */
	assert_int_equal(b.len, 100003);
	assert_memory_equal(b.p, "abcxx", 5);
	assert_int_equal(b.p[b.len], '\0');
	buf_free(&b);
}

/* ---- the reader ------------------------------------------------------------ */

/* jparse_object agrees with json_loadb on body[0..n): the same tree, keys
 * in the same order, or NULL where json_loadb fails or reads no object.
 * Returns 1 if the quick reader took it. */
static int
expect_read(const char *body, size_t n)
{
	json_error_t err;
	json_t *want = json_loadb(body, n, JSON_REJECT_DUPLICATES, &err);
	json_t *got = jparse_object(body, n);
	int took = got != NULL;
	if (got != NULL) {
		char *a = want ? json_dumps(want, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
		char *b = json_dumps(got, JSON_COMPACT | JSON_ENSURE_ASCII);
		if (want == NULL || !json_is_object(want) || !json_equal(want, got) ||
		    strcmp(a, b) != 0) {
			print_error("body %.*s\n  quick   %s\n  jansson %s (%s)\n", (int)n, body, b,
			    a ? a : "NULL", want ? "" : err.text);
			fail();
		}
		free(a);
		free(b);
		json_decref(got);
	}
	json_decref(want);
	return took;
}

static void
test_read_fixed(void **state)
{
	(void)state;
	static const char *const taken[] = {
		"{}", " {\"a\":1} \n", "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"hello\"}],\"max_tokens\":16}",
		"{\"t\":0.7,\"p\":1e-3,\"q\":-2.5E+2,\"z\":-0,\"b\":[true,false,null,[],{}]}",
		"{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}", "{\"u\":\"\\u00e9\\u20AC\\ud83d\\ude00\"}",
		"{\"caf\xc3\xa9\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}", "{\"big\":999999999999999999}",
		"{\"e\\u0041\":1}",
	};
	for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
		if (!expect_read(taken[i], strlen(taken[i]))) {
			print_error("not taken: %s\n", taken[i]);
			fail();
		}
	static const char *const left[] = {
		"", "[]", "\"s\"", "{", "{\"a\":1,}", "{\"a\":1}x", "{\"a\":1,\"a\":2}", "{\"a\":01}",
		"{\"a\":1.}", "{\"a\":-}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":tru}", "{\"a\":\"\\u0000\"}",
		"{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\x\"}", "{\"a\":\"tab\there\"}",
		"{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":1e999}",
		"{\"a\":12345678901234567890}", "{'a':1}", "{\"a\" 1}", "{\"a\":[1 2]}",
	};
	for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
		if (expect_read(left[i], strlen(left[i]))) {
			print_error("taken: %s\n", left[i]);
			fail();
		}
	expect_read("{\"a\":\"x\0y\"}", 10);
}

/* Long strings (read a word at a time) of every kind of byte, in a body. */
static void
test_read_long(void **state)
{
	(void)state;
	uint64_t x = 362436069ull;
	for (int it = 0; it < 50000; it++) {
		char s[160], body[200];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t n = x % 150;
		random_bytes(&x, s, n);
		if (x % 3 != 0)
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x80)
					s[i] = 'a'; /* mostly valid ones */
		int len = snprintf(body, sizeof body, "{\"k\":\"%.*s\"}", (int)n, s);
		expect_read(body, (size_t)len);
	}
}

/* Bodies made of JSON-ish pieces, many of them broken. */
static void
test_read_random(void **state)
{
	(void)state;
	static const char *const pieces[] = {
		"{", "}", "[", "]", ",", ":", "\"", "\"k\"", "\"v\"", "\"a\":", "1", "-", "0", "12",
		".5", "e3", "E-2", "true", "null", "fals", " ", "\n", "\\", "\\u", "d83d", "\\ude00",
		"00e9", "\xc3\xa9", "\xff", "\x01", "\"x\":[1,2]", "{\"m\":\"h\"}",
	};
	const size_t np = sizeof pieces / sizeof pieces[0];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	unsigned taken = 0;
	for (int it = 0; it < 200000; it++) {
		char body[256];
		size_t n = 0;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t k = 1 + x % 12;
		if (x >> 60 < 12) /* mostly objects */
			body[n++] = '{';
		for (size_t i = 0; i < k; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			const char *p = pieces[x % np];
			size_t l = strlen(p);
			memcpy(body + n, p, l);
			n += l;
		}
		if (x >> 61 < 6)
			body[n++] = '}';
		taken += (unsigned)expect_read(body, n);
	}
	/* and well-formed ones, built by jansson from random values */
	for (int it = 0; it < 20000; it++) {
		json_t *o = json_object();
		for (int f = 0; f < 4; f++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			char key[8] = { (char)('a' + f), (char)('a' + x % 26), 0 };
			char s[8];
			for (int i = 0; i < 7; i++)
				s[i] = (char)(0x01 + (x >> (8 * i)) % 0x7f);
			s[7] = 0;
			json_t *v = x % 4 == 0 ? json_string(s) : x % 4 == 1 ?
			    json_integer((json_int_t)(x >> 20) - (json_int_t)(1ll << 42)) :
			    x % 4 == 2 ? json_real((double)(x >> 11) * 0x1.0p-40) :
			    json_pack("[s,{s:b}]", s, "k", (int)(x & 1));
			json_object_set_new(o, key, v);
		}
		char *d = json_dumps(o, (x & 1) ? JSON_COMPACT : JSON_INDENT(2));
		if (!expect_read(d, strlen(d))) {
			print_error("not taken: %s\n", d);
			fail();
		}
		free(d);
		json_decref(o);
	}
	print_message("quick reader took %u of 200000 random bodies\n", taken);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_read_fixed),
		cmocka_unit_test(test_read_random),
		cmocka_unit_test(test_read_long),
		cmocka_unit_test(test_slices),
		cmocka_unit_test(test_words),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
