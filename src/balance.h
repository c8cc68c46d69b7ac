/*
 * balance.h -- the policies that pick a pool's member for a call.
 *
 * A balancer knows nothing of workers, loops or messages: members are
 * indexes with a weight, a count of calls in flight, an EWMA of the time
 * to first token and a bit saying whether they may be picked.  That keeps
 * the pick and its bookkeeping measurable on their own (tests/balance-unit,
 * bench/balance) and lets pool.c own health, timers and counters.
 *
 * Members are at most BALANCE_MAX (a bitmask of them is one uint64_t).
 * Single-threaded, like the loop the pool runs on.
 */
#ifndef PORCH_BALANCE_H
#define PORCH_BALANCE_H

#include <stddef.h>
#include <stdint.h>

#define BALANCE_MAX 64

enum balance_policy {
	BAL_ROUND_ROBIN = 0, /* smooth weighted round robin (nginx's) */
	BAL_RANDOM,          /* weighted random */
	BAL_LEAST_LOADED,    /* fewest in flight per unit of weight */
	BAL_P2C,             /* the better of two weighted random choices */
	BAL_LATENCY,         /* lowest EWMA time to first token, times load */
	BAL_SESSION,         /* weighted rendezvous hash of the session id */
	BAL_PREFIX,          /* consistent hash of the prompt's first bytes,
	                      * with bounded load */
	BAL_N_POLICIES
};

/* "round-robin", ...; NULL out of range */
const char *balance_policy_name(int policy);
/* The policy called name, or -1. */
int balance_policy_parse(const char *name);
/* "round-robin, random, ..." for messages */
const char *balance_policy_list(void);

struct bal_member {
	uint64_t id_hash;        /* of the member's name: rendezvous, ring */
	int64_t current;         /* smooth round robin's running weight */
	double ewma_ms;          /* time to first token; 0: no sample yet */
	double inv_weight;       /* 1 / weight */
	uint32_t weight;         /* 1 and up */
	uint32_t inflight;
};

struct bal_point {           /* a point of the prefix policy's ring */
	uint64_t h;
	uint32_t member;
};

struct balance {
	int policy;
	size_t n;
	struct bal_member m[BALANCE_MAX];
	uint64_t up;             /* members that may be picked (pool.c) */
	uint64_t rng;            /* splitmix64 state */
	uint32_t total_inflight;
	uint32_t rr;             /* least-loaded: where ties start */
	int equal_weights;       /* every weight is the same */
	double explore;          /* latency: share of picks made at random */
	double alpha;            /* latency: the EWMA's weight of a new sample */
	double load_factor;      /* prefix: 1 + eps */
	size_t prefix_bytes;     /* prefix: bytes of the prompt hashed */
	struct bal_point *ring;  /* prefix: sorted, POINTS_PER_WEIGHT a weight */
	size_t n_ring;
};

/*
 * Sets b up for n members with these weights (and names, hashed for the
 * session and prefix policies); every member starts up.  seed 0: seeded
 * from the clock.  Returns 0, or -1 when n is 0 or above BALANCE_MAX.
 */
int balance_init(struct balance *b, int policy, size_t n, const uint32_t *weights,
    const char *const *names, uint64_t seed);
void balance_fini(struct balance *b);

/*
 * The member to call, or -1 when none of the members up and not in hard
 * may be picked.  Members in soft are passed over while another will do
 * (a retry avoids the member its last attempt used).  key is the session
 * id (session) or the prompt (prefix), NULL or empty for none: session
 * without one picks as p2c, prefix without one as least-loaded.
 */
int balance_pick(struct balance *b, const char *key, size_t len, uint64_t hard,
    uint64_t soft);

/* A call to member i started / ended (however it ended). */
static inline void
balance_start(struct balance *b, int i)
{
	b->m[i].inflight++;
	b->total_inflight++;
}

static inline void
balance_end(struct balance *b, int i)
{
	if (b->m[i].inflight > 0) {
		b->m[i].inflight--;
		b->total_inflight--;
	}
}

/* Member i answered its first token after ms. */
void balance_ttft(struct balance *b, int i, double ms);

/* The balancer's string hash: eight bytes a step, then a splitmix64 finish;
 * the same within a process, not across machines (words in host order). */
uint64_t balance_hash(const char *s, size_t len);

#endif
