/*
 * table.h -- the cache's store: answers by the SHA-256 of what was asked,
 * bounded in bytes (least recently used go first) and in age (ttl).  Free
 * of the plugin API, so that tests/cache-unit drives it directly.
 *
 * Stores are kept by name in a registry private to the plugin (one .so,
 * one process): every stage that names one shares it, the lookup and
 * store stages of a pipeline and the pipeline a reload brings, which
 * takes it over while the old one finishes.  It is freed when the last
 * stage that named it lets go.  Everything runs on the loop thread.
 */
#ifndef PORCH_CACHE_TABLE_H
#define PORCH_CACHE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

/* One streamed piece of an answer: its text's length (the texts of the
 * pieces, in order, are the answer's text) and its extras, as offsets into
 * the entry's extras (NUL-ended JSON object texts), -1 for none. */
struct cache_piece {
	size_t len;
	int64_t chunk, choice, delta;
};

struct cache_entry {
	struct cache_entry *hnext;               /* the hash chain */
	struct cache_entry *lru_prev, *lru_next; /* most recently used first */
	struct cache_entry *age_prev, *age_next; /* oldest stored first */
	unsigned char key[SHA256_SIZE];
	double stored;                           /* when, in loop time (s) */
	size_t size;                             /* its bytes, all of them */
	const char *text;                        /* the answer (not NUL-ended) */
	size_t text_len;
	const struct cache_piece *pieces;        /* as it streamed; may be none */
	size_t n_pieces;
	const char *extras;
	const char *meta;                        /* "KEY\0VALUE\0" n_meta times */
	size_t n_meta;
};

/* An entry in one allocation, what it points to copied in; NULL when out
 * of memory.  Its size counts every byte of it. */
struct cache_entry *cache_entry_new(const unsigned char key[SHA256_SIZE],
    const char *text, size_t text_len, const struct cache_piece *pieces, size_t n_pieces,
    const char *extras, size_t extras_len, const char *meta, size_t meta_len, size_t n_meta);

/* Something a message waits for, by its pointer (the lookup stage's
 * record of a miss, which the store stage finds by its message). */
struct cache_link {
	struct cache_link *next;
	const void *owner;
};

struct cache_table {
	struct cache_table *next;     /* the registry */
	char *name;
	unsigned refs;
	size_t max_bytes;
	double ttl;                   /* s; 0: entries do not age */
	size_t bytes, n;              /* held */
	struct cache_entry **buckets;
	size_t n_buckets;             /* a power of two */
	struct cache_entry *lru_head, *lru_tail, *age_head, *age_tail;
	struct cache_link **links;    /* pending misses, by message */
	size_t n_links, n_link_buckets;
};

/* What an insertion did to the entries already held. */
struct cache_changes {
	uint64_t evicted;             /* least recently used, for room */
	uint64_t expired;             /* older than ttl */
	uint64_t replaced;            /* the same key stored again */
	uint64_t bytes_freed;         /* the bytes of all of them */
};

/* The store called name, made empty (max_bytes 64M, no ttl) if there is
 * none, with one more holder; NULL when out of memory. */
struct cache_table *cache_table_get(const char *name);
/* One holder fewer; the last frees the store and what it holds. */
void cache_table_put(struct cache_table *t);
/* Sets the bounds; a smaller max_bytes is met at the next insertion. */
void cache_table_configure(struct cache_table *t, size_t max_bytes, double ttl);

/* The entry for key, if it is younger than ttl at now (it becomes the
 * most recently used), else NULL.  Valid until the next insertion. */
const struct cache_entry *cache_table_find(struct cache_table *t,
    const unsigned char key[SHA256_SIZE], double now);
/* Takes e, stored at now: what is older than ttl goes, then the least
 * recently used until e fits.  0: stored; -1: larger than max_bytes
 * (freed, nothing else changed). */
int cache_table_insert(struct cache_table *t, struct cache_entry *e, double now,
    struct cache_changes *ch);

/* The pending map: add, find, remove (a full map grows, or chains longer). */
void cache_link_add(struct cache_table *t, struct cache_link *l, const void *owner);
struct cache_link *cache_link_find(struct cache_table *t, const void *owner);
void cache_link_del(struct cache_table *t, struct cache_link *l);

#endif
