/*
 * post.c -- libFuzzer harness: the post stage's transform
 * (plugins/text/poststream.c).  The answer, transformed whole, must come
 * out the same fed as a stream: in pieces whose lengths the input seeds,
 * byte by byte, and cut in two at every point (short answers); and never
 * longer than max-length.
 *
 * Input: byte 0, trim (bit 0) and collapse (bit 1) and how many stop
 * sequences follow (bits 2-3); byte 1, max-length (0: none); then each stop
 * sequence as a length byte (1 to 8) and its bytes; the rest, the answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "poststream.h"

static void
stream(const struct post_cfg *c, const char *in, const size_t *ends, size_t nends,
    struct tbuf *out)
{
	struct post_stream s;
	memset(&s, 0, sizeof s);
	out->len = 0;
	size_t at = 0;
	for (size_t k = 0; k < nends; k++) {
		if (post_feed(c, &s, in + at, ends[k] - at, out) != 0)
			abort();
		at = ends[k];
	}
	if (post_finish(c, &s, out) != 0)
		abort();
	post_stream_clear(&s);
}

static void
same(const struct tbuf *want, const struct tbuf *got, const char *how, size_t arg)
{
	if (want->len == got->len && (want->len == 0 || memcmp(want->p, got->p, want->len) == 0))
		return;
	fprintf(stderr, "post: streamed (%s %zu) differs from whole:\n whole:  '%.*s'\n"
	    " stream: '%.*s'\n", how, arg, (int)want->len, want->p, (int)got->len, got->p);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct post_cfg c;
	memset(&c, 0, sizeof c);
	c.trim = data[0] & 1;
	c.collapse = (data[0] >> 1) & 1;
	c.max_length = data[1];
	size_t at = 2, nstop = (data[0] >> 2) & 3;
	for (size_t i = 0; i < nstop && at < size; i++) {
		size_t len = 1 + data[at++] % 8;
		if (len > size - at)
			break;
		if (post_cfg_add_stop(&c, (const char *)data + at, len) != 0)
			abort();
		at += len;
	}
	const char *in = (const char *)data + at;
	size_t n = size - at;
	struct tbuf whole = { 0 }, got = { 0 };
	if (post_whole(&c, in, n, &whole) != 0)
		abort();
	if (c.max_length > 0 && whole.len > c.max_length) {
		fprintf(stderr, "post: %zu bytes out, max-length %zu\n", whole.len, c.max_length);
		abort();
	}

	size_t *ends = malloc((n + 2) * sizeof *ends), nends = 0, pos = 0;
	if (ends == NULL)
		abort();
	struct fuzz_rng r = fuzz_seed(data, size);
	do {
		pos += fuzz_piece(&r, n - pos);
		ends[nends++] = pos;
	} while (pos < n && nends < n + 1);
	if (pos < n)
		ends[nends++] = n;
	stream(&c, in, ends, nends, &got);
	same(&whole, &got, "pieces seeded by the input, count", nends);

	if (n <= 4096) {
		ends[0] = 0;
		for (size_t i = 0; i < n; i++)
			ends[i] = i + 1;
		stream(&c, in, ends, n ? n : 1, &got);
		same(&whole, &got, "byte by byte, bytes", n);
	}
	/* cut in two: at every point of a short text, else at 16 points the
	 * input seeds (every point of a long one costs more than it finds) */
	for (size_t k = 1; k < n && k <= 64; k++) {
		size_t cut = n <= 64 ? k : 1 + (size_t)(fuzz_next(&r) % (n - 1));
		if (n > 64 && k > 16)
			break;
		size_t two[2] = { cut, n };
		stream(&c, in, two, 2, &got);
		same(&whole, &got, "cut in two at", cut);
	}
	free(ends);
	tbuf_free(&whole);
	tbuf_free(&got);
	post_cfg_free(&c);
	return 0;
}
