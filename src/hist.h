/* hist.h -- a log-linear latency histogram: fixed memory, ~12% precision. */
#ifndef PORCH_HIST_H
#define PORCH_HIST_H

#include <stdint.h>

/*
 * Values (nanoseconds) below 8 have a bucket each; above, every power of two
 * is split into 8 sub-buckets, so a percentile is off by at most 1/8.  With
 * 44 powers this covers 8 ns to over four hours in 2.8 KB.
 */
#define HIST_SUB_BITS 3
#define HIST_BUCKETS  ((44 - HIST_SUB_BITS + 1) * (1 << HIST_SUB_BITS))

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t sum;          /* of every value, for a mean and Prometheus' _sum */
	uint64_t bucket[HIST_BUCKETS];
};

static inline unsigned
hist_index(uint64_t v)
{
	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
	unsigned idx = (e - HIST_SUB_BITS + 1) * (1u << HIST_SUB_BITS) + sub;
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Records n values of v at once (a batch timed together). */
static inline void
hist_record_n(struct hist *h, uint64_t v, uint64_t n)
{
	h->bucket[hist_index(v)] += n;
	h->count += n;
	h->sum += v * n;
	if (v > h->max)
		h->max = v;
}

/* Adds every value of src to dst (the sum over shards). */
void hist_add(struct hist *dst, const struct hist *src);
/* The value at quantile q (0..1): the upper edge of its bucket, capped at max. */
uint64_t hist_quantile(const struct hist *h, double q);
/* The lowest value a bucket holds (for tests and exposition). */
uint64_t hist_bucket_low(unsigned idx);

#endif
