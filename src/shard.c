/*
 * shard.c -- session affinity: a session id to one of N shards, stably.
 *
 * The mapping is part of porch's contract (porch-plugin(3)): sessions keep
 * their shard across machines and releases, so it must never change.
 * FNV-1a spreads the bytes; Jump Consistent Hash turns the hash into a
 * bucket with minimal movement when the number of shards changes.
 */
#include <stddef.h>
#include <stdint.h>

#include "porch/plugin.h"

static uint64_t
fnv1a64(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm". */
static int64_t
jump_hash(uint64_t key, int64_t buckets)
{
	int64_t b = -1, j = 0;
	while (j < buckets) {
		b = j;
		key = key * 2862933555777941757ull + 1;
		/* exact in IEEE-754 doubles: both operands are below 2^53 */
		j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
	}
	return b;
}

int64_t
porch_shard(const char *session, size_t len, uint32_t shards)
{
	if (shards == 0)
		return -1;
	if (session == NULL)
		len = 0;
	return jump_hash(fnv1a64(session ? session : "", len), (int64_t)shards);
}
