/*
 * cache.c -- the classify stage's LRU cache (see cache.h).
 *
 * Entries live in one array, allocated when the cache is made; free ones
 * are chained on a free list.  A hash table of bucket heads (twice as many as
 * entries, a power of two) chains entries by index, and a doubly linked
 * list, by index too, orders them from most to least recently used.  Each
 * entry owns a copy of its key, whose buffer is kept for the next key an
 * evicted entry takes when it is large enough.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"

#define NIL UINT32_MAX

struct entry {
	uint64_t hash;
	char *key;
	size_t len, cap;
	uint32_t chain;          /* next in the bucket, or on the free list */
	uint32_t newer, older;   /* the recency list */
	struct cls_value v;
};

struct cls_cache {
	struct entry *e;
	size_t n, used;
	uint32_t *buckets;
	size_t mask;
	uint32_t newest, oldest;
	uint32_t free;           /* the free list */
	uint64_t key[2];         /* SipHash key */
};

/* ---- SipHash-1-3 (Aumasson and Bernstein; the variant Rust's HashMap uses) */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

static uint64_t
le64(const unsigned char *p)
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

uint64_t
cls_siphash13(const uint64_t k[2], const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k[0];
	uint64_t v1 = 0x646f72616e646f6dULL ^ k[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ k[0];
	uint64_t v3 = 0x7465646279746573ULL ^ k[1];
	uint64_t b = (uint64_t)n << 56;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t m = le64(p);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < n; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the cache ---------------------------------------------------------- */

/* 16 random bytes from the kernel; else the clock and addresses, which
 * still differ from run to run. */
static void
random_key(uint64_t k[2], const void *salt)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t got = read(fd, k, 2 * sizeof *k);
		close(fd);
		if (got == (ssize_t)(2 * sizeof *k))
			return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)salt;
	k[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)getpid();
}

struct cls_cache *
cls_cache_new(size_t entries)
{
	if (entries == 0 || entries >= NIL / 2)
		return NULL;
	struct cls_cache *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	size_t nb = 16;
	while (nb < 2 * entries)
		nb *= 2;
	c->e = calloc(entries, sizeof *c->e);
	c->buckets = malloc(nb * sizeof *c->buckets);
	if (c->e == NULL || c->buckets == NULL) {
		cls_cache_free(c);
		return NULL;
	}
	for (size_t i = 0; i < nb; i++)
		c->buckets[i] = NIL;
	c->mask = nb - 1;
	c->n = entries;
	c->newest = c->oldest = NIL;
	c->free = NIL;
	for (size_t i = entries; i-- > 0;) {
		c->e[i].chain = c->free;
		c->e[i].newer = c->e[i].older = NIL;
		c->free = (uint32_t)i;
	}
	random_key(c->key, c);
	return c;
}

void
cls_cache_free(struct cls_cache *c)
{
	if (c == NULL)
		return;
	if (c->e != NULL)
		for (size_t i = 0; i < c->n; i++)
			free(c->e[i].key);
	free(c->e);
	free(c->buckets);
	free(c);
}

uint64_t
cls_cache_hash(const struct cls_cache *c, const char *key, size_t len)
{
	return cls_siphash13(c->key, key, len);
}

size_t
cls_cache_size(const struct cls_cache *c)
{
	return c->used;
}

static void
unlink_lru(struct cls_cache *c, uint32_t i)
{
	struct entry *e = &c->e[i];
	if (e->newer != NIL)
		c->e[e->newer].older = e->older;
	else
		c->newest = e->older;
	if (e->older != NIL)
		c->e[e->older].newer = e->newer;
	else
		c->oldest = e->newer;
	e->newer = e->older = NIL;
}

static void
push_newest(struct cls_cache *c, uint32_t i)
{
	struct entry *e = &c->e[i];
	e->newer = NIL;
	e->older = c->newest;
	if (c->newest != NIL)
		c->e[c->newest].newer = i;
	c->newest = i;
	if (c->oldest == NIL)
		c->oldest = i;
}

static void
unlink_bucket(struct cls_cache *c, uint32_t i)
{
	uint32_t *at = &c->buckets[c->e[i].hash & c->mask];
	while (*at != i)
		at = &c->e[*at].chain;
	*at = c->e[i].chain;
	c->e[i].chain = NIL;
}

static uint32_t
find(const struct cls_cache *c, const char *key, size_t len, uint64_t h)
{
	for (uint32_t i = c->buckets[h & c->mask]; i != NIL; i = c->e[i].chain) {
		const struct entry *e = &c->e[i];
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			return i;
	}
	return NIL;
}

int
cls_cache_get(struct cls_cache *c, const char *key, size_t len, uint64_t h,
    struct cls_value *v)
{
	uint32_t i = find(c, key, len, h);
	if (i == NIL)
		return 0;
	if (c->newest != i) {
		unlink_lru(c, i);
		push_newest(c, i);
	}
	*v = c->e[i].v;
	return 1;
}

int
cls_cache_put(struct cls_cache *c, const char *key, size_t len, uint64_t h,
    const struct cls_value *v)
{
	uint32_t i = find(c, key, len, h);
	if (i != NIL) {
		c->e[i].v = *v;
		if (c->newest != i) {
			unlink_lru(c, i);
			push_newest(c, i);
		}
		return 0;
	}
	if (c->free != NIL) {
		i = c->free;
		c->free = c->e[i].chain;
	} else {
		i = c->oldest; /* evicted */
		unlink_lru(c, i);
		unlink_bucket(c, i);
		c->used--;
	}
	struct entry *e = &c->e[i];
	if (e->cap < len || e->key == NULL) {
		char *k = malloc(len > 0 ? len : 1);
		if (k == NULL) {
			e->chain = c->free;
			c->free = i;
			return -1;
		}
		free(e->key);
		e->key = k;
		e->cap = len > 0 ? len : 1;
	}
	memcpy(e->key, key, len);
	e->len = len;
	e->hash = h;
	e->v = *v;
	e->chain = c->buckets[h & c->mask];
	c->buckets[h & c->mask] = i;
	push_newest(c, i);
	c->used++;
	return 0;
}
