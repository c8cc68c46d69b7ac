/*
 * balance-unit.c -- the pool policies (src/balance.c): weights honoured,
 * loads followed, sessions sticking and moving about 1/N when a member
 * is added, bounded load on the prefix ring, retries passed elsewhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "balance.h"

static const char *const names[] = { "gpu-a", "gpu-b", "gpu-c", "gpu-d", "gpu-e",
	"gpu-f", "gpu-g", "gpu-h", "gpu-i", "gpu-j", "gpu-k", "gpu-l", "gpu-m",
	"gpu-n", "gpu-o", "gpu-p" };

static void
setup(struct balance *b, int policy, size_t n, const uint32_t *w)
{
	assert_int_equal(balance_init(b, policy, n, w, names, 42), 0);
}

static void
test_names(void **state)
{
	(void)state;
	for (int i = 0; i < BAL_N_POLICIES; i++)
		assert_int_equal(balance_policy_parse(balance_policy_name(i)), i);
	assert_int_equal(balance_policy_parse("fastest"), -1);
	struct balance b;
	assert_int_equal(balance_init(&b, BAL_RANDOM, 0, NULL, NULL, 1), -1);
	assert_int_equal(balance_init(&b, BAL_RANDOM, BALANCE_MAX + 1, NULL, NULL, 1), -1);
}

/* Smooth weighted round robin: exact shares, interleaved. */
static void
test_round_robin(void **state)
{
	(void)state;
	struct balance b;
	uint32_t w[] = { 2, 1, 1 };
	setup(&b, BAL_ROUND_ROBIN, 3, w);
	int n[3] = { 0 };
	for (int i = 0; i < 400; i++) {
		int k = balance_pick(&b, NULL, 0, 0, 0);
		n[k]++;
		/* smooth: every 4 picks hold each share exactly */
		if (i % 4 == 3) {
			assert_int_equal(n[0], (i + 1) / 2);
			assert_int_equal(n[1], (i + 1) / 4);
		}
	}
	assert_int_equal(n[0], 200);
	assert_int_equal(n[1], 100);
	assert_int_equal(n[2], 100);
	/* a member out: the others share */
	b.up = 0x6;
	memset(n, 0, sizeof n);
	for (int i = 0; i < 100; i++)
		n[balance_pick(&b, NULL, 0, 0, 0)]++;
	assert_int_equal(n[0], 0);
	assert_int_equal(n[1], 50);
	balance_fini(&b);
}

static void
test_random(void **state)
{
	(void)state;
	struct balance b;
	uint32_t w[] = { 3, 1 };
	setup(&b, BAL_RANDOM, 2, w);
	int n[2] = { 0 };
	for (int i = 0; i < 40000; i++)
		n[balance_pick(&b, NULL, 0, 0, 0)]++;
	assert_in_range(n[0], 29000, 31000);
	balance_fini(&b);
}

static void
test_least_loaded(void **state)
{
	(void)state;
	struct balance b;
	setup(&b, BAL_LEAST_LOADED, 3, NULL);
	balance_start(&b, 0);
	balance_start(&b, 0);
	balance_start(&b, 2);
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 1);
	balance_start(&b, 1);
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 1 + (balance_pick(&b, NULL, 0, 0, 0) == 1)); /* 1 or 2 tie */
	balance_end(&b, 0);
	balance_end(&b, 0);
	balance_end(&b, 0); /* one too many: not below 0 */
	assert_int_equal(b.m[0].inflight, 0);
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 0);
	balance_end(&b, 1);
	balance_end(&b, 2);
	assert_int_equal(b.total_inflight, 0);
	/* ties are spread, not all on the first */
	int n[3] = { 0 };
	for (int i = 0; i < 300; i++)
		n[balance_pick(&b, NULL, 0, 0, 0)]++;
	assert_int_equal(n[0], 100);
	assert_int_equal(n[1], 100);
	/* weights: inflight per unit of weight */
	balance_fini(&b);
	uint32_t w[] = { 4, 1 };
	setup(&b, BAL_LEAST_LOADED, 2, w);
	for (int i = 0; i < 3; i++)
		balance_start(&b, 0);
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 1);
	balance_start(&b, 1);
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 0); /* 3/4 < 1/1 */
	balance_fini(&b);
}

static void
test_p2c(void **state)
{
	(void)state;
	struct balance b;
	setup(&b, BAL_P2C, 3, NULL);
	for (int i = 0; i < 50; i++)
		balance_start(&b, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_not_equal(balance_pick(&b, NULL, 0, 0, 0), 0);
	/* one member left: it */
	b.up = 1;
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 0);
	balance_fini(&b);
}

static void
test_latency(void **state)
{
	(void)state;
	struct balance b;
	setup(&b, BAL_LATENCY, 2, NULL);
	b.explore = 0;
	balance_ttft(&b, 0, 100);
	balance_ttft(&b, 1, 10);
	for (int i = 0; i < 100; i++)
		assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 1);
	/* with exploration the slow one is still tried now and then */
	b.explore = 0.1;
	int n0 = 0;
	for (int i = 0; i < 20000; i++)
		n0 += balance_pick(&b, NULL, 0, 0, 0) == 0;
	assert_in_range(n0, 700, 1300);  /* about half of 10% */
	/* it recovered: its samples bring its EWMA down and it wins */
	for (int i = 0; i < 20; i++)
		balance_ttft(&b, 0, 1);
	b.explore = 0;
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 0);
	/* a member never sampled is tried */
	balance_fini(&b);
	setup(&b, BAL_LATENCY, 2, NULL);
	b.explore = 0;
	balance_ttft(&b, 0, 5);
	assert_int_equal(balance_pick(&b, NULL, 0, 0, 0), 1);
	balance_fini(&b);
}

/* Adding a fifth member moves about 1/5 of the sessions, all to it. */
static void
test_session(void **state)
{
	(void)state;
	struct balance b4, b5;
	setup(&b4, BAL_SESSION, 4, NULL);
	setup(&b5, BAL_SESSION, 5, NULL);
	enum { N = 20000 };
	int moved = 0, n[5] = { 0 };
	char key[32];
	for (int i = 0; i < N; i++) {
		int len = snprintf(key, sizeof key, "session-%d", i);
		int a = balance_pick(&b4, key, (size_t)len, 0, 0);
		int c = balance_pick(&b5, key, (size_t)len, 0, 0);
		n[c]++;
		if (a != c) {
			moved++;
			assert_int_equal(c, 4);
		}
		/* sticks */
		assert_int_equal(balance_pick(&b4, key, (size_t)len, 0, 0), a);
	}
	printf("# session: adding a 5th member moved %.3f of %d sessions (1/5 = 0.200)\n",
	    (double)moved / N, N);
	assert_in_range(moved, N / 5 - N / 40, N / 5 + N / 40);
	for (int k = 0; k < 5; k++)
		assert_in_range(n[k], N / 5 - N / 25, N / 5 + N / 25);
	/* a member out: only its sessions move */
	b5.up &= ~(1ull << 2);
	for (int i = 0; i < 2000; i++) {
		int len = snprintf(key, sizeof key, "session-%d", i);
		int c = balance_pick(&b4, key, (size_t)len, 0, 0);
		b5.up |= 1ull << 2;
		int was = balance_pick(&b5, key, (size_t)len, 0, 0);
		b5.up &= ~(1ull << 2);
		int now = balance_pick(&b5, key, (size_t)len, 0, 0);
		if (was != 2)
			assert_int_equal(now, was);
		(void)c;
	}
	/* weights: a member of weight 3 of 1+1+3 takes about 3/5 */
	balance_fini(&b4);
	uint32_t w[] = { 1, 1, 3 };
	setup(&b4, BAL_SESSION, 3, w);
	int heavy = 0;
	for (int i = 0; i < N; i++) {
		int len = snprintf(key, sizeof key, "s%d", i);
		heavy += balance_pick(&b4, key, (size_t)len, 0, 0) == 2;
	}
	assert_in_range(heavy, N * 3 / 5 - N / 30, N * 3 / 5 + N / 30);
	balance_fini(&b4);
	balance_fini(&b5);
}

static void
test_prefix(void **state)
{
	(void)state;
	struct balance b;
	setup(&b, BAL_PREFIX, 4, NULL);
	b.prefix_bytes = 16;
	const char *p1 = "You are a helpful assistant. Question one?";
	const char *p2 = "You are a helpful assistant. Question two, longer?";
	int a = balance_pick(&b, p1, strlen(p1), 0, 0);
	/* the same first 16 bytes: the same member, while it is not loaded */
	assert_int_equal(balance_pick(&b, p2, strlen(p2), 0, 0), a);
	/* spread over members for different prefixes */
	int n[4] = { 0 };
	char key[64];
	for (int i = 0; i < 4000; i++) {
		int len = snprintf(key, sizeof key, "%d-prefix of a prompt", i);
		n[balance_pick(&b, key, (size_t)len, 0, 0)]++;
	}
	for (int k = 0; k < 4; k++)
		assert_in_range(n[k], 600, 1400);
	/* bounded load: a above 1.25 times the mean passes it on */
	for (int i = 0; i < 8; i++)
		balance_start(&b, a);
	int other = balance_pick(&b, p1, strlen(p1), 0, 0);
	assert_int_not_equal(other, a);
	/* and it comes back once the load is gone */
	for (int i = 0; i < 8; i++)
		balance_end(&b, a);
	assert_int_equal(balance_pick(&b, p1, strlen(p1), 0, 0), a);
	balance_fini(&b);
}

/* A retry passes over the member the last attempt used (soft); members
 * the prompt is too long for are never picked (hard). */
static void
test_exclude(void **state)
{
	(void)state;
	for (int pol = 0; pol < BAL_N_POLICIES; pol++) {
		struct balance b;
		setup(&b, pol, 3, NULL);
		for (int i = 0; i < 200; i++) {
			int k = balance_pick(&b, "s", 1, 0x1, 0x2);
			assert_int_equal(k, 2);
			k = balance_pick(&b, "s", 1, 0x1, 0x6); /* both soft: one of them */
			assert_true(k == 1 || k == 2);
		}
		assert_int_equal(balance_pick(&b, "s", 1, 0x7, 0), -1);
		b.up = 0;
		assert_int_equal(balance_pick(&b, "s", 1, 0, 0), -1);
		balance_fini(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_least_loaded),
		cmocka_unit_test(test_p2c),
		cmocka_unit_test(test_latency),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_exclude),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
