/*
 * cache-unit.c -- unit tests of the cache stage's store (cmocka): SHA-256
 * against FIPS 180-4's examples, entries and their sizes, the byte bound
 * and least-recently-used order, ttl, replacement, the registry by name,
 * and the map of pending misses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sha256.h"
#include "table.h"

/* ---- SHA-256 -------------------------------------------------------------- */

static const char *
hex(const unsigned char *d)
{
	static char out[2 * SHA256_SIZE + 1];
	for (int i = 0; i < SHA256_SIZE; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	return out;
}

/* The digest of p, fed in pieces of step bytes. */
static const char *
digest(const char *p, size_t n, size_t step)
{
	struct sha256 s;
	unsigned char d[SHA256_SIZE];
	sha256_init(&s);
	for (size_t i = 0; i < n; i += step)
		sha256_add(&s, p + i, n - i < step ? n - i : step);
	sha256_done(&s, d);
	return hex(d);
}

static void
test_sha256(void **state)
{
	(void)state;
	static const char two_blocks[] =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	for (size_t step = 1; step <= 64; step += 9) {
		assert_string_equal(digest("", 0, step),
		    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
		assert_string_equal(digest("abc", 3, step),
		    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
		assert_string_equal(digest(two_blocks, sizeof two_blocks - 1, step),
		    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	}
	/* a million 'a', in pieces that straddle the blocks */
	char *a = malloc(1000000);
	assert_non_null(a);
	memset(a, 'a', 1000000);
	assert_string_equal(digest(a, 1000000, 999),
	    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

/* ---- the store ------------------------------------------------------------ */

static void
key_n(unsigned char key[SHA256_SIZE], int n)
{
	struct sha256 s;
	sha256_init(&s);
	sha256_add(&s, &n, sizeof n);
	sha256_done(&s, key);
}

/* An entry for key n with a text of len bytes and no pieces or metadata. */
static struct cache_entry *
entry_n(int n, size_t len)
{
	unsigned char key[SHA256_SIZE];
	char text[256];
	assert_true(len <= sizeof text);
	memset(text, 'a' + n % 26, len);
	key_n(key, n);
	struct cache_entry *e = cache_entry_new(key, text, len, NULL, 0, NULL, 0, NULL, 0, 0);
	assert_non_null(e);
	return e;
}

static const struct cache_entry *
find_n(struct cache_table *t, int n, double now)
{
	unsigned char key[SHA256_SIZE];
	key_n(key, n);
	return cache_table_find(t, key, now);
}

static void
test_entry(void **state)
{
	(void)state;
	unsigned char key[SHA256_SIZE];
	key_n(key, 1);
	struct cache_piece pieces[2] = { { 3, -1, 0, -1 }, { 4, -1, -1, 3 } };
	static const char extras[] = "{}\0{\"x\":1}";
	static const char meta[] = "finish-reason\0stop\0usage\0{}";
	struct cache_entry *e = cache_entry_new(key, "abcdefg", 7, pieces, 2, extras,
	    sizeof extras, meta, sizeof meta, 2);
	assert_non_null(e);
	assert_memory_equal(e->text, "abcdefg", 7);
	assert_int_equal(e->n_pieces, 2);
	assert_int_equal(e->pieces[1].len, 4);
	assert_string_equal(e->extras + e->pieces[0].choice, "{}");
	assert_string_equal(e->extras + e->pieces[1].delta, "{\"x\":1}");
	assert_string_equal(e->meta, "finish-reason");
	assert_string_equal(e->meta + 14, "stop");
	assert_int_equal(e->n_meta, 2);
	assert_int_equal((uintptr_t)e->pieces % _Alignof(struct cache_piece), 0);
	/* every byte counts: the entry, its pieces, text, extras and metadata */
	assert_true(e->size >= sizeof *e + 2 * sizeof pieces[0] + 7 + sizeof extras + sizeof meta);
	free(e);
}

static void
test_bound_and_lru(void **state)
{
	(void)state;
	struct cache_table *t = cache_table_get("lru");
	assert_non_null(t);
	struct cache_entry *probe = entry_n(0, 100);
	size_t size = probe->size;
	free(probe);
	/* room for three entries, not four */
	cache_table_configure(t, 3 * size + size / 2, 0);
	struct cache_changes ch;
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(cache_table_insert(t, entry_n(i, 100), 0, &ch), 0);
		assert_int_equal(ch.evicted, 0);
	}
	assert_int_equal(t->n, 3);
	assert_int_equal(t->bytes, 3 * size);
	/* 1 used last: 2 is the least recently used, and goes for 4 */
	assert_non_null(find_n(t, 1, 0));
	assert_int_equal(cache_table_insert(t, entry_n(4, 100), 0, &ch), 0);
	assert_int_equal(ch.evicted, 1);
	assert_int_equal(ch.bytes_freed, size);
	assert_null(find_n(t, 2, 0));
	assert_non_null(find_n(t, 1, 0));
	assert_non_null(find_n(t, 3, 0));
	assert_non_null(find_n(t, 4, 0));
	assert_true(t->bytes <= t->max_bytes);
	/* larger than the whole store: refused, nothing else goes */
	cache_table_configure(t, 3 * size + size / 2, 0);
	struct cache_entry *big = entry_n(9, 100);
	big->size = t->max_bytes + 1;
	assert_int_equal(cache_table_insert(t, big, 0, &ch), -1);
	assert_int_equal(ch.evicted, 0);
	assert_int_equal(t->n, 3);
	/* a smaller bound is met at the next insertion */
	cache_table_configure(t, size, 0);
	assert_int_equal(cache_table_insert(t, entry_n(5, 100), 0, &ch), 0);
	assert_int_equal(ch.evicted, 3);
	assert_int_equal(ch.bytes_freed, 3 * size);
	assert_int_equal(t->n, 1);
	assert_non_null(find_n(t, 5, 0));
	cache_table_put(t);
}

static void
test_ttl(void **state)
{
	(void)state;
	struct cache_table *t = cache_table_get("ttl");
	struct cache_changes ch;
	cache_table_configure(t, 1 << 20, 10);
	assert_int_equal(cache_table_insert(t, entry_n(1, 10), 100, &ch), 0);
	assert_int_equal(cache_table_insert(t, entry_n(2, 10), 105, &ch), 0);
	assert_non_null(find_n(t, 1, 109.9));
	/* aged: not given out, though still held until an insertion */
	assert_null(find_n(t, 1, 110));
	assert_non_null(find_n(t, 2, 110));
	assert_int_equal(t->n, 2);
	assert_int_equal(cache_table_insert(t, entry_n(3, 10), 111, &ch), 0);
	assert_int_equal(ch.expired, 1);
	assert_int_equal(ch.evicted, 0);
	assert_int_equal(t->n, 2);
	/* stored anew: young again */
	assert_int_equal(cache_table_insert(t, entry_n(2, 10), 116, &ch), 0);
	assert_int_equal(ch.replaced, 1);
	assert_int_equal(ch.expired, 0);
	assert_non_null(find_n(t, 2, 125));
	/* ttl 0: nothing ages */
	cache_table_configure(t, 1 << 20, 0);
	assert_non_null(find_n(t, 3, 1e9));
	cache_table_put(t);
}

static void
test_replace(void **state)
{
	(void)state;
	struct cache_table *t = cache_table_get("replace");
	struct cache_changes ch;
	assert_int_equal(cache_table_insert(t, entry_n(1, 10), 0, &ch), 0);
	size_t one = t->bytes;
	assert_int_equal(cache_table_insert(t, entry_n(1, 50), 0, &ch), 0);
	assert_int_equal(ch.replaced, 1);
	assert_int_equal(ch.bytes_freed, one);
	assert_int_equal(t->n, 1);
	assert_int_equal(find_n(t, 1, 0)->text_len, 50);
	/* many entries: the table grows, every one is still found */
	for (int i = 2; i < 1000; i++)
		assert_int_equal(cache_table_insert(t, entry_n(i, 1), 0, &ch), 0);
	for (int i = 2; i < 1000; i++)
		assert_int_equal(find_n(t, i, 0)->text_len, 1);
	assert_int_equal(t->n, 999);
	cache_table_put(t);
}

static void
test_registry(void **state)
{
	(void)state;
	struct cache_table *a = cache_table_get("shared");
	struct cache_table *b = cache_table_get("shared");
	struct cache_table *c = cache_table_get("other");
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	struct cache_changes ch;
	assert_int_equal(cache_table_insert(a, entry_n(1, 10), 0, &ch), 0);
	cache_table_put(a);
	/* still held by b: kept, with its entries */
	struct cache_table *again = cache_table_get("shared");
	assert_ptr_equal(again, b);
	assert_non_null(find_n(again, 1, 0));
	cache_table_put(again);
	cache_table_put(b);
	cache_table_put(c);
	/* the last holder let go: a new, empty one */
	struct cache_table *fresh = cache_table_get("shared");
	assert_int_equal(fresh->n, 0);
	cache_table_put(fresh);
}

static void
test_links(void **state)
{
	(void)state;
	struct cache_table *t = cache_table_get("links");
	enum { N = 500 };
	static struct cache_link links[N];
	static char owners[N];
	for (int i = 0; i < N; i++)
		cache_link_add(t, &links[i], &owners[i]);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(cache_link_find(t, &owners[i]), &links[i]);
	for (int i = 0; i < N; i += 2)
		cache_link_del(t, &links[i]);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(cache_link_find(t, &owners[i]), i % 2 ? &links[i] : NULL);
	assert_int_equal(t->n_links, N / 2);
	for (int i = 1; i < N; i += 2)
		cache_link_del(t, &links[i]);
	assert_int_equal(t->n_links, 0);
	cache_table_put(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_entry),
		cmocka_unit_test(test_bound_and_lru),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_links),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
