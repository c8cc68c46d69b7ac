/* table.c -- the cache's store: a hash table of entries on two lists, by use and by age. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define FIRST_BUCKETS 64
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)

/* the registry: one per process; with threads each shard's stores are
 * its own (cache.c names them by shard), the registry under a lock */
static struct cache_table *tables;
static pthread_mutex_t tables_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- entries ------------------------------------------------------------ */

struct cache_entry *
cache_entry_new(const unsigned char key[SHA256_SIZE], const char *text, size_t text_len,
    const struct cache_piece *pieces, size_t n_pieces, const char *extras, size_t extras_len,
    const char *meta, size_t meta_len, size_t n_meta)
{
	/* the pieces first, where the struct's alignment leaves them aligned */
	size_t head = sizeof(struct cache_entry);
	head += (_Alignof(struct cache_piece) - head % _Alignof(struct cache_piece)) %
	    _Alignof(struct cache_piece);
	if (n_pieces > (SIZE_MAX - head) / sizeof *pieces)
		return NULL;
	size_t size = head + n_pieces * sizeof *pieces;
	if (text_len > SIZE_MAX - size || extras_len > SIZE_MAX - size - text_len ||
	    meta_len > SIZE_MAX - size - text_len - extras_len)
		return NULL;
	size += text_len + extras_len + meta_len;
	char *p = malloc(size);
	if (p == NULL)
		return NULL;
	struct cache_entry *e = (struct cache_entry *)p;
	memset(e, 0, sizeof *e);
	memcpy(e->key, key, SHA256_SIZE);
	e->size = size;
	char *at = p + head;
	if (n_pieces > 0)
		memcpy(at, pieces, n_pieces * sizeof *pieces);
	e->pieces = (const struct cache_piece *)at;
	e->n_pieces = n_pieces;
	at += n_pieces * sizeof *pieces;
	if (text_len > 0)
		memcpy(at, text, text_len);
	e->text = at;
	e->text_len = text_len;
	at += text_len;
	if (extras_len > 0)
		memcpy(at, extras, extras_len);
	e->extras = at;
	at += extras_len;
	if (meta_len > 0)
		memcpy(at, meta, meta_len);
	e->meta = at;
	e->n_meta = n_meta;
	return e;
}

/* ---- the registry --------------------------------------------------------- */

struct cache_table *
cache_table_get(const char *name)
{
	struct cache_table *t;
	pthread_mutex_lock(&tables_lock);
	for (t = tables; t != NULL; t = t->next) {
		if (strcmp(t->name, name) == 0) {
			t->refs++;
			pthread_mutex_unlock(&tables_lock);
			return t;
		}
	}
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		pthread_mutex_unlock(&tables_lock);
		return NULL;
	}
	t->name = strdup(name);
	t->buckets = calloc(FIRST_BUCKETS, sizeof *t->buckets);
	t->links = calloc(FIRST_BUCKETS, sizeof *t->links);
	if (t->name == NULL || t->buckets == NULL || t->links == NULL) {
		free(t->name);
		free(t->buckets);
		free(t->links);
		free(t);
		pthread_mutex_unlock(&tables_lock);
		return NULL;
	}
	t->n_buckets = t->n_link_buckets = FIRST_BUCKETS;
	t->max_bytes = DEFAULT_MAX_BYTES;
	t->refs = 1;
	t->next = tables;
	tables = t;
	pthread_mutex_unlock(&tables_lock);
	return t;
}

void
cache_table_put(struct cache_table *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&tables_lock);
	if (--t->refs > 0) {
		pthread_mutex_unlock(&tables_lock);
		return;
	}
	for (struct cache_table **pp = &tables; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	pthread_mutex_unlock(&tables_lock);
	/* pending misses belong to their messages, which have all ended by
	 * now: each stage that named the store has let go */
	while (t->lru_head != NULL) {
		struct cache_entry *e = t->lru_head;
		t->lru_head = e->lru_next;
		free(e);
	}
	free(t->buckets);
	free(t->links);
	free(t->name);
	free(t);
}

void
cache_table_configure(struct cache_table *t, size_t max_bytes, double ttl)
{
	t->max_bytes = max_bytes;
	t->ttl = ttl > 0 ? ttl : 0;
}

/* ---- entries in the table -------------------------------------------------- */

static size_t
bucket_of(const unsigned char key[SHA256_SIZE], size_t n_buckets)
{
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | key[i];
	return (size_t)(h & (n_buckets - 1));
}

static void
grow(struct cache_table *t)
{
	size_t n = t->n_buckets * 2;
	struct cache_entry **b = calloc(n, sizeof *b);
	if (b == NULL)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct cache_entry *e = t->buckets[i];
		while (e != NULL) {
			struct cache_entry *next = e->hnext;
			size_t k = bucket_of(e->key, n);
			e->hnext = b[k];
			b[k] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = n;
}

static void
lru_unlink(struct cache_table *t, struct cache_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		t->lru_head = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		t->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void
lru_front(struct cache_table *t, struct cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = t->lru_head;
	if (t->lru_head != NULL)
		t->lru_head->lru_prev = e;
	else
		t->lru_tail = e;
	t->lru_head = e;
}

/* Unlinks e from everything, frees it, and returns its size. */
static size_t
drop(struct cache_table *t, struct cache_entry *e)
{
	struct cache_entry **pp = &t->buckets[bucket_of(e->key, t->n_buckets)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(t, e);
	if (e->age_prev != NULL)
		e->age_prev->age_next = e->age_next;
	else
		t->age_head = e->age_next;
	if (e->age_next != NULL)
		e->age_next->age_prev = e->age_prev;
	else
		t->age_tail = e->age_prev;
	size_t size = e->size;
	t->bytes -= size;
	t->n--;
	free(e);
	return size;
}

static struct cache_entry *
lookup(struct cache_table *t, const unsigned char key[SHA256_SIZE])
{
	struct cache_entry *e = t->buckets[bucket_of(key, t->n_buckets)];
	while (e != NULL && memcmp(e->key, key, SHA256_SIZE) != 0)
		e = e->hnext;
	return e;
}

static int
aged(const struct cache_table *t, const struct cache_entry *e, double now)
{
	return t->ttl > 0 && now - e->stored >= t->ttl;
}

const struct cache_entry *
cache_table_find(struct cache_table *t, const unsigned char key[SHA256_SIZE], double now)
{
	struct cache_entry *e = lookup(t, key);
	if (e == NULL || aged(t, e, now))
		return NULL; /* an aged one goes when its answer is stored anew, or sooner */
	lru_unlink(t, e);
	lru_front(t, e);
	return e;
}

int
cache_table_insert(struct cache_table *t, struct cache_entry *e, double now,
    struct cache_changes *ch)
{
	memset(ch, 0, sizeof *ch);
	if (e->size > t->max_bytes) {
		free(e);
		return -1;
	}
	struct cache_entry *old = lookup(t, e->key);
	if (old != NULL) {
		ch->bytes_freed += drop(t, old);
		ch->replaced++;
	}
	/* the oldest first: with one ttl for all, they age in that order */
	while (t->age_head != NULL && aged(t, t->age_head, now)) {
		ch->bytes_freed += drop(t, t->age_head);
		ch->expired++;
	}
	while (t->bytes + e->size > t->max_bytes && t->lru_tail != NULL) {
		ch->bytes_freed += drop(t, t->lru_tail);
		ch->evicted++;
	}
	if (t->n >= t->n_buckets)
		grow(t);
	size_t k = bucket_of(e->key, t->n_buckets);
	e->hnext = t->buckets[k];
	t->buckets[k] = e;
	lru_front(t, e);
	e->stored = now;
	e->age_next = NULL;
	e->age_prev = t->age_tail;
	if (t->age_tail != NULL)
		t->age_tail->age_next = e;
	else
		t->age_head = e;
	t->age_tail = e;
	t->bytes += e->size;
	t->n++;
	return 0;
}

/* ---- pending misses ----------------------------------------------------------- */

static size_t
link_bucket(const void *owner, size_t n)
{
	uint64_t h = (uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32) & (n - 1);
}

void
cache_link_add(struct cache_table *t, struct cache_link *l, const void *owner)
{
	if (t->n_links >= t->n_link_buckets) {
		size_t n = t->n_link_buckets * 2;
		struct cache_link **b = calloc(n, sizeof *b);
		if (b != NULL) {
			for (size_t i = 0; i < t->n_link_buckets; i++) {
				struct cache_link *x = t->links[i];
				while (x != NULL) {
					struct cache_link *next = x->next;
					size_t k = link_bucket(x->owner, n);
					x->next = b[k];
					b[k] = x;
					x = next;
				}
			}
			free(t->links);
			t->links = b;
			t->n_link_buckets = n;
		}
	}
	l->owner = owner;
	size_t k = link_bucket(owner, t->n_link_buckets);
	l->next = t->links[k];
	t->links[k] = l;
	t->n_links++;
}

struct cache_link *
cache_link_find(struct cache_table *t, const void *owner)
{
	struct cache_link *l = t->links[link_bucket(owner, t->n_link_buckets)];
	while (l != NULL && l->owner != owner)
		l = l->next;
	return l;
}

void
cache_link_del(struct cache_table *t, struct cache_link *l)
{
	struct cache_link **pp = &t->links[link_bucket(l->owner, t->n_link_buckets)];
	while (*pp != NULL && *pp != l)
		pp = &(*pp)->next;
	if (*pp == l) {
		*pp = l->next;
		t->n_links--;
	}
	l->next = NULL;
}
