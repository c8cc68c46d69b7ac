/*
 * cache.h -- the classify stage's cache: labels by text prefix, least
 * recently used first out, bounded in entries.  Free of the plugin API.
 *
 * Keys are hashed with SipHash-1-3 under a key drawn at random per cache,
 * so that nobody can choose texts that all fall into one bucket; and a
 * lookup compares the stored prefix itself, so two texts never share
 * labels because their hashes collide.  Memory: entries times the longest
 * prefix stored, plus a fixed 48 bytes or so per entry.
 */
#ifndef PORCH_CLASSIFY_CACHE_H
#define PORCH_CLASSIFY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"

struct cls_cache;

/* What an entry holds: the labels and how they were made (a "by" value). */
struct cls_value {
	struct cls_labels labels;
	unsigned char by;
};

/* A cache of at most entries (>= 1) entries; NULL when out of memory. */
struct cls_cache *cls_cache_new(size_t entries);
void cls_cache_free(struct cls_cache *c);

/* The hash of a key, to give to get and put. */
uint64_t cls_cache_hash(const struct cls_cache *c, const char *key, size_t len);

/* 1 and *v when key (len bytes, hash h) is there (it becomes the most
 * recently used), else 0. */
int cls_cache_get(struct cls_cache *c, const char *key, size_t len, uint64_t h,
    struct cls_value *v);

/* Stores v for key, replacing what it had, the least recently used entry
 * going when the cache is full.  0, or -1 when out of memory (nothing
 * stored). */
int cls_cache_put(struct cls_cache *c, const char *key, size_t len, uint64_t h,
    const struct cls_value *v);

/* Entries held now. */
size_t cls_cache_size(const struct cls_cache *c);

/* SipHash-1-3 of n bytes under the 128-bit key k. */
uint64_t cls_siphash13(const uint64_t k[2], const void *p, size_t n);

#endif /* PORCH_CLASSIFY_CACHE_H */
