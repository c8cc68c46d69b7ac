/*
 * fuzz.h -- what the libFuzzer harnesses under tests/fuzz/ share: a small
 * generator of piece lengths, seeded from the input, so that a stream is
 * cut where the input says and the same input always cuts it the same way.
 */
#ifndef PORCH_FUZZ_H
#define PORCH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_rng {
	uint64_t x;
};

static inline uint64_t
fuzz_next(struct fuzz_rng *r)
{
	/* xorshift64* */
	r->x ^= r->x >> 12;
	r->x ^= r->x << 25;
	r->x ^= r->x >> 27;
	return r->x * 2685821657736338717ULL;
}

/* A seed from the input's bytes (never 0). */
static inline struct fuzz_rng
fuzz_seed(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return (struct fuzz_rng){ h ? h : 1 };
}

/* The next piece's length: 0 sometimes, short mostly, now and then long. */
static inline size_t
fuzz_piece(struct fuzz_rng *r, size_t left)
{
	uint64_t v = fuzz_next(r);
	size_t k;
	switch (v & 7) {
	case 0:
		k = 0;
		break;
	case 1:
		k = (size_t)(v >> 8) % 700;
		break;
	default:
		k = 1 + (size_t)(v >> 8) % 16;
		break;
	}
	return k < left ? k : left;
}

#endif
