/*
 * balance.c -- the pool policies: which member takes the next call.
 *
 * Every pick walks the members that may take it (a bitmask), so its cost
 * grows with the pool, not with the traffic: about 16 steps for 16
 * members, no allocation, one or two random numbers.  The prefix policy
 * adds a binary search of its ring.  See balance.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "util.h"

/* Ring points per unit of weight: enough that 16 equal members each get
 * close to 1/16 of the ring (the spread of the arcs shrinks as 1/sqrt). */
#define POINTS_PER_WEIGHT 40

static const char *const policy_names[BAL_N_POLICIES] = {
	"round-robin", "random", "least-loaded", "p2c", "latency", "session", "prefix",
};

const char *
balance_policy_name(int policy)
{
	return policy >= 0 && policy < BAL_N_POLICIES ? policy_names[policy] : NULL;
}

int
balance_policy_parse(const char *name)
{
	for (int i = 0; name != NULL && i < BAL_N_POLICIES; i++)
		if (strcmp(name, policy_names[i]) == 0)
			return i;
	return -1;
}

const char *
balance_policy_list(void)
{
	return "round-robin, random, least-loaded, p2c, latency, session, prefix";
}

static inline uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* One 8-byte word into the running hash: a multiply, a rotation and a
 * multiply (MurmurHash3's constants), so a word costs about what one byte
 * of FNV-1a did. */
static inline uint64_t
hash_word(uint64_t h, uint64_t v)
{
	h ^= v * 0x87c37b91114253d5ull;
	h = (h << 31) | (h >> 33);
	return h * 0x4cf5ad432745937full;
}

/*
 * The string eight bytes at a time, its length in the seed, the last
 * partial word zero-padded, then splitmix64's finish.  A session id or a
 * 256-byte prompt prefix is hashed on every pick, and byte-at-a-time
 * FNV-1a (a multiplication's latency per byte) was most of what the
 * session and prefix policies cost.  Words are read in the host's order:
 * the hash is the same within a process, not across machines.
 */
uint64_t
balance_hash(const char *s, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)len * 0xff51afd7ed558ccdull);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		h = hash_word(h, v);
	}
	if (i < len) {
		uint64_t v = 0;
		for (size_t k = 0; i + k < len; k++)
			v |= (uint64_t)(unsigned char)s[i + k] << (8 * k);
		h = hash_word(h, v);
	}
	return mix64(h);
}

/* splitmix64 */
static inline uint64_t
next_rand(struct balance *b)
{
	return mix64(b->rng += 0x9e3779b97f4a7c15ull);
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift, bias below 2^-32). */
static inline uint32_t
rand_below(struct balance *b, uint32_t n)
{
	return (uint32_t)(((next_rand(b) >> 32) * (uint64_t)n) >> 32);
}

static int
point_cmp(const void *a, const void *b)
{
	const struct bal_point *x = a, *y = b;
	return x->h < y->h ? -1 : x->h > y->h;
}

int
balance_init(struct balance *b, int policy, size_t n, const uint32_t *weights,
    const char *const *names, uint64_t seed)
{
	memset(b, 0, sizeof *b);
	if (n == 0 || n > BALANCE_MAX)
		return -1;
	b->policy = policy;
	b->n = n;
	b->up = n == 64 ? ~0ull : (1ull << n) - 1;
	b->equal_weights = 1;
	b->explore = 0.05;
	b->alpha = 0.3;
	b->load_factor = 1.25;
	b->prefix_bytes = 256;
	size_t points = 0;
	for (size_t i = 0; i < n; i++) {
		b->m[i].weight = weights && weights[i] > 0 ? weights[i] : 1;
		b->m[i].inv_weight = 1.0 / b->m[i].weight;
		b->m[i].id_hash = names ? balance_hash(names[i], strlen(names[i])) :
		    mix64(i + 1);
		if (b->m[i].weight != b->m[0].weight)
			b->equal_weights = 0;
		points += (size_t)b->m[i].weight * POINTS_PER_WEIGHT;
	}
	b->rng = seed ? seed : clock_ns() ^ (uint64_t)(uintptr_t)b;
	if (policy == BAL_PREFIX) {
		b->ring = xcalloc(points, sizeof *b->ring);
		for (size_t i = 0; i < n; i++)
			for (uint32_t k = 0; k < b->m[i].weight * POINTS_PER_WEIGHT; k++) {
				b->ring[b->n_ring].h = mix64(b->m[i].id_hash + k);
				b->ring[b->n_ring++].member = (uint32_t)i;
			}
		qsort(b->ring, b->n_ring, sizeof *b->ring, point_cmp);
	}
	return 0;
}

void
balance_fini(struct balance *b)
{
	free(b->ring);
	b->ring = NULL;
	b->n_ring = 0;
}

void
balance_ttft(struct balance *b, int i, double ms)
{
	struct bal_member *m = &b->m[i];
	m->ewma_ms = m->ewma_ms == 0 ? ms : m->ewma_ms + b->alpha * (ms - m->ewma_ms);
	if (m->ewma_ms <= 0)
		m->ewma_ms = 1e-6;  /* 0 means "no sample" */
}

#define EACH(i, set) for (uint64_t _s = (set); _s && ((i) = __builtin_ctzll(_s), 1); \
	_s &= _s - 1)

/* Weighted random among set (not empty). */
static int
pick_random(struct balance *b, uint64_t set)
{
	int i;
	if (b->equal_weights) {
		uint32_t k = rand_below(b, (uint32_t)__builtin_popcountll(set));
		while (k--)
			set &= set - 1;
		return __builtin_ctzll(set);
	}
	uint32_t total = 0;
	EACH(i, set)
		total += b->m[i].weight;
	uint32_t r = rand_below(b, total);
	EACH(i, set) {
		if (r < b->m[i].weight)
			return i;
		r -= b->m[i].weight;
	}
	return __builtin_ctzll(set);
}

/* a less loaded than c, per unit of weight */
static inline int
lighter(const struct bal_member *a, const struct bal_member *c)
{
	return (uint64_t)a->inflight * c->weight < (uint64_t)c->inflight * a->weight;
}

static int
pick_round_robin(struct balance *b, uint64_t set)
{
	int i, best = -1;
	int64_t total = 0;
	EACH(i, set) {
		b->m[i].current += b->m[i].weight;
		total += b->m[i].weight;
		if (best < 0 || b->m[i].current > b->m[best].current)
			best = i;
	}
	b->m[best].current -= total;
	return best;
}

static int
pick_least(struct balance *b, uint64_t set)
{
	/* ties go round, from a point that moves on each pick */
	unsigned start = b->rr++ % (unsigned)b->n;
	uint64_t rot = (set >> start) | (start ? set << (64 - start) : 0);
	int i, best = -1;
	EACH(i, rot) {
		int j = (int)(((unsigned)i + start) & 63u);
		if (best < 0 || lighter(&b->m[j], &b->m[best]))
			best = j;
	}
	return best;
}

static int
pick_p2c(struct balance *b, uint64_t set)
{
	int x = pick_random(b, set);
	if ((set & (set - 1)) == 0)
		return x;
	int y = pick_random(b, set & ~(1ull << x));
	return lighter(&b->m[y], &b->m[x]) ? y : x;
}

static int
pick_latency(struct balance *b, uint64_t set)
{
	/* a share of picks at random: a member whose EWMA is stale (it was
	 * slow, or out) gets new samples and can win again */
	if ((double)(next_rand(b) >> 11) * 0x1.0p-53 < b->explore)
		return pick_random(b, set);
	int i, best = -1;
	double best_score = 0;
	EACH(i, set) {
		const struct bal_member *m = &b->m[i];
		/* no sample yet: small, so it is tried, but load still counts */
		double e = m->ewma_ms > 0 ? m->ewma_ms : 1e-3;
		double score = e * (double)(m->inflight + 1) / (double)m->weight;
		if (best < 0 || score < best_score) {
			best = i;
			best_score = score;
		}
	}
	return best;
}

/*
 * ln(x) for x in (0, 1], to about 1e-4: the exponent's bits times ln 2
 * plus a polynomial for ln of the mantissa.  The rendezvous scores only
 * need their order, and this costs a few ns where log(3) costs tens.
 */
static inline double
fast_ln(double x)
{
	union { double d; uint64_t u; } v = { x };
	int e = (int)((v.u >> 52) & 0x7ff) - 1023;
	v.u = (v.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
	double m = v.d;
	double p = -1.7417939 + (2.8212026 + (-1.4699568 + (0.44717955 -
	    0.056570851 * m) * m) * m) * m;
	return (double)e * 0.6931471805599453 + p;
}

static int
pick_session(struct balance *b, uint64_t set, const char *key, size_t len)
{
	uint64_t kh = balance_hash(key, len);
	int i, best = -1;
	if (b->equal_weights) {
		uint64_t top = 0;
		EACH(i, set) {
			uint64_t h = mix64(kh ^ b->m[i].id_hash);
			if (best < 0 || h > top) {
				best = i;
				top = h;
			}
		}
		return best;
	}
	/* weighted rendezvous: the highest w / -ln(u), i.e. the lowest
	 * -ln(u) / w (a multiplication, not a division) */
	double top = 0;
	EACH(i, set) {
		uint64_t h = mix64(kh ^ b->m[i].id_hash);
		double u = ((double)(h >> 11) + 0.5) * 0x1.0p-53;
		double score = -fast_ln(u) * b->m[i].inv_weight;
		if (best < 0 || score < top) {
			best = i;
			top = score;
		}
	}
	return best;
}

static int
pick_prefix(struct balance *b, uint64_t set, const char *key, size_t len)
{
	uint64_t h = balance_hash(key, len < b->prefix_bytes ? len : b->prefix_bytes);
	/* the first point at or after h */
	size_t lo = 0, hi = b->n_ring;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (b->ring[mid].h < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* bounded load: a member may take the call while its load after it,
	 * per unit of weight, is within load_factor of the mean's */
	uint64_t total = 1, weight = 0;
	int i;
	EACH(i, set) {
		total += b->m[i].inflight;
		weight += b->m[i].weight;
	}
	double per_weight = b->load_factor * (double)total / (double)weight;
	uint64_t seen = 0;
	int first = -1;
	for (size_t k = 0; k < b->n_ring && seen != set; k++) {
		uint32_t j = b->ring[(lo + k) % b->n_ring].member;
		if (!(set & (1ull << j)) || (seen & (1ull << j)))
			continue;
		seen |= 1ull << j;
		if (first < 0)
			first = (int)j;
		if ((double)(b->m[j].inflight + 1) <= ceil(per_weight * b->m[j].weight))
			return (int)j;
	}
	return first;
}

int
balance_pick(struct balance *b, const char *key, size_t len, uint64_t hard, uint64_t soft)
{
	uint64_t set = b->up & ~hard;
	if (set == 0)
		return -1;
	if (set & ~soft)
		set &= ~soft;
	switch (b->policy) {
	case BAL_ROUND_ROBIN:
		return pick_round_robin(b, set);
	case BAL_RANDOM:
		return pick_random(b, set);
	case BAL_LEAST_LOADED:
		return pick_least(b, set);
	case BAL_P2C:
		return pick_p2c(b, set);
	case BAL_LATENCY:
		return pick_latency(b, set);
	case BAL_SESSION:
		return key != NULL && len > 0 ? pick_session(b, set, key, len) :
		    pick_p2c(b, set);
	case BAL_PREFIX:
		return key != NULL && len > 0 && b->n_ring > 0 ?
		    pick_prefix(b, set, key, len) : pick_least(b, set);
	default:
		return pick_random(b, set);
	}
}
