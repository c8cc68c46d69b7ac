/*
 * balance-pick.c -- the balancer's own cost per request: pick, then the
 * call's start and end bookkeeping (balance_pick, balance_start,
 * balance_end, and balance_ttft for the latency policy), for each policy
 * with 16 members, on one core.  Target (issue 11): under 200 ns.
 *
 * Usage: bench/balance-pick [COUNT [MEMBERS]]   (10000000, 16)
 * Prints one line a policy: ns per request, and the shares' spread
 * (largest member's share / fair share).  Run it on a quiet machine;
 * bench/balance (three fake replicas, one slow) measures latency end to
 * end, and runs this one too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "balance.h"

static double
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 10000000;
	size_t n = argc > 2 ? (size_t)atol(argv[2]) : 16;
	if (count <= 0 || n == 0 || n > BALANCE_MAX) {
		fprintf(stderr, "usage: balance-pick [COUNT [MEMBERS (1 to %d)]]\n", BALANCE_MAX);
		return 2;
	}
	char names[BALANCE_MAX][16];
	const char *np[BALANCE_MAX];
	uint32_t w[BALANCE_MAX];
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], "replica-%zu", i);
		np[i] = names[i];
		w[i] = 1 + (uint32_t)(i % 3);
	}
	/* keys: sessions and prompt prefixes, cycled */
	enum { KEYS = 1024 };
	static char keys[KEYS][64];
	static size_t klen[KEYS];
	for (int k = 0; k < KEYS; k++)
		klen[k] = (size_t)snprintf(keys[k], sizeof keys[k],
		    "session-%d: you are a helpful assistant", k);
	/* a window of calls in flight, ended first in, first out */
	enum { WINDOW = 32 };
	for (int pol = 0; pol < BAL_N_POLICIES; pol++) {
		struct balance b;
		balance_init(&b, pol, n, w, np, 12345);
		int ring[WINDOW];
		long share[BALANCE_MAX] = { 0 };
		for (int i = 0; i < WINDOW; i++)
			ring[i] = -1;
		double t0 = now_ns();
		for (long r = 0; r < count; r++) {
			int slot = (int)(r % WINDOW);
			if (ring[slot] >= 0) {
				if (pol == BAL_LATENCY)
					balance_ttft(&b, ring[slot], (double)(10 + ring[slot]));
				balance_end(&b, ring[slot]);
			}
			int k = (int)(r % KEYS);
			int i = balance_pick(&b, keys[k], klen[k], 0, 0);
			balance_start(&b, i);
			ring[slot] = i;
			share[i]++;
		}
		double t1 = now_ns();
		long most = 0, total_w = 0;
		for (size_t i = 0; i < n; i++)
			total_w += w[i];
		double spread = 0;
		for (size_t i = 0; i < n; i++) {
			double fair = (double)count * w[i] / (double)total_w;
			if (share[i] / fair > spread)
				spread = share[i] / fair;
			if (share[i] > most)
				most = share[i];
		}
		printf("%-13s %6.1f ns/request  (%zu members, largest share %.2fx its weight's)\n",
		    balance_policy_name(pol), (t1 - t0) / (double)count, n, spread);
		balance_fini(&b);
	}
	return 0;
}
