/* hist.c -- a log-linear latency histogram: fixed memory, ~12% precision. */
#include "hist.h"

uint64_t
hist_bucket_low(unsigned idx)
{
	if (idx < (1u << HIST_SUB_BITS))
		return idx;
	unsigned e = idx / (1u << HIST_SUB_BITS) + HIST_SUB_BITS - 1;
	uint64_t sub = idx % (1u << HIST_SUB_BITS);
	return (1ull << e) + (sub << (e - HIST_SUB_BITS));
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	/* the rank of the wanted value, 1-based, rounded up */
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count || rank == 0)
		rank++;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t high = i + 1 < HIST_BUCKETS ? hist_bucket_low(i + 1) - 1 : h->max;
			return high < h->max ? high : h->max;
		}
	}
	return h->max;
}

void
hist_add(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}
