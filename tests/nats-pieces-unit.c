/*
 * nats-pieces-unit.c -- holes in a streamed answer over NATS
 * (src/nats_pieces.c): which pieces go on, and whether the stream passed
 * on can be mended from the answer's text or the request must fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "nats_pieces.h"

static const char *const tok[] = { "a ", "bb ", "ccc ", "dd ", "e" };
#define ANSWER "a bb ccc dd e"

static enum piece_verdict
take(struct pieces *p, unsigned i)
{
	return pieces_take(p, i, tok[i], strlen(tok[i]), 0);
}

static void
test_whole(void **state)
{
	(void)state;
	struct pieces p = { 0 };
	size_t rest;
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(take(&p, i), PIECE_PASS);
	assert_int_equal(pieces_end(&p, ANSWER, strlen(ANSWER), 5, &rest), PIECES_WHOLE);
	/* an end that does not say (an older node): as it was */
	assert_int_equal(pieces_end(&p, ANSWER, strlen(ANSWER), -1, &rest), PIECES_WHOLE);
	/* no pieces at all (a stage that does not stream) */
	struct pieces none = { 0 };
	assert_int_equal(pieces_end(&none, ANSWER, strlen(ANSWER), 0, &rest), PIECES_WHOLE);
}

static void
test_copy_again(void **state)
{
	(void)state;
	/* a copy worked on again streams from its start: what went on
	 * already is skipped, the rest goes on */
	struct pieces p = { 0 };
	size_t rest;
	assert_int_equal(take(&p, 0), PIECE_PASS);
	assert_int_equal(take(&p, 1), PIECE_PASS);
	assert_int_equal(take(&p, 0), PIECE_SKIP);
	assert_int_equal(take(&p, 1), PIECE_SKIP);
	assert_int_equal(take(&p, 2), PIECE_PASS);
	assert_int_equal(take(&p, 3), PIECE_PASS);
	assert_int_equal(take(&p, 4), PIECE_PASS);
	assert_int_equal(pieces_end(&p, ANSWER, strlen(ANSWER), 5, &rest), PIECES_WHOLE);
}

static void
test_hole_mended(void **state)
{
	(void)state;
	struct pieces p = { 0 };
	size_t rest;
	assert_int_equal(take(&p, 0), PIECE_PASS);
	assert_int_equal(take(&p, 1), PIECE_PASS);
	assert_int_equal(take(&p, 3), PIECE_HOLE);  /* 2 was lost */
	assert_int_equal(take(&p, 2), PIECE_HOLE);  /* nothing after a hole */
	assert_int_equal(take(&p, 4), PIECE_HOLE);
	assert_int_equal(pieces_end(&p, ANSWER, strlen(ANSWER), 5, &rest), PIECES_REST);
	assert_string_equal(ANSWER + rest, "ccc dd e");
	/* the last pieces lost, no hole seen: the end's count tells */
	struct pieces q = { 0 };
	assert_int_equal(take(&q, 0), PIECE_PASS);
	assert_int_equal(pieces_end(&q, ANSWER, strlen(ANSWER), 5, &rest), PIECES_REST);
	assert_string_equal(ANSWER + rest, "bb ccc dd e");
	/* the first one lost: the whole answer goes on as one piece */
	struct pieces r = { 0 };
	assert_int_equal(take(&r, 1), PIECE_HOLE);
	assert_int_equal(pieces_end(&r, ANSWER, strlen(ANSWER), 5, &rest), PIECES_REST);
	assert_int_equal(rest, 0);
}

static void
test_hole_lost(void **state)
{
	(void)state;
	size_t rest;
	/* what went on is not the answer's beginning */
	struct pieces p = { 0 };
	assert_int_equal(take(&p, 0), PIECE_PASS);
	assert_int_equal(take(&p, 2), PIECE_HOLE);
	assert_int_equal(pieces_end(&p, "x bb ccc", 8, 5, &rest), PIECES_LOST);
	/* more went on than the answer has */
	assert_int_equal(pieces_end(&p, "a", 1, 5, &rest), PIECES_LOST);
	/* a piece with extras went on: they are not in the text */
	struct pieces q = { 0 };
	assert_int_equal(pieces_take(&q, 0, "a ", 2, 1), PIECE_PASS);
	assert_int_equal(pieces_end(&q, ANSWER, strlen(ANSWER), 5, &rest), PIECES_LOST);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_copy_again),
		cmocka_unit_test(test_hole_mended),
		cmocka_unit_test(test_hole_lost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
