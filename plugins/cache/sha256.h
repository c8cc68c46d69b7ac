/*
 * sha256.h -- SHA-256 (FIPS 180-4), incremental: the cache's key is the
 * digest of what a request asks, and a streamed answer is checked against
 * the text it made up by the digests of both.
 */
#ifndef PORCH_CACHE_SHA256_H
#define PORCH_CACHE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_SIZE 32

struct sha256 {
	uint32_t h[8];
	uint64_t len;           /* bytes hashed so far */
	unsigned char buf[64];  /* a block not yet full */
	size_t n;               /* bytes in buf */
};

void sha256_init(struct sha256 *s);
void sha256_add(struct sha256 *s, const void *p, size_t n);
void sha256_done(struct sha256 *s, unsigned char out[SHA256_SIZE]);

#endif
