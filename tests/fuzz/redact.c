/*
 * redact.c -- libFuzzer harness: the redact stage's scanner
 * (plugins/text/redact_scan.c).  The text, masked whole, must come out the
 * same fed as a stream: in pieces whose lengths the input seeds, byte by
 * byte, and cut in two at every point (short texts); and a stream never
 * holds back more than REDACT_MAX bytes between feeds.
 *
 * Input: byte 0, the kinds to mask (bits 0-5) and an empty mask (bit 6);
 * byte 1, hex-min-length; byte 2, base64-min-length (16 to 79 each, the
 * parameters' lower end, where matches are many); the rest, the text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "redact_scan.h"

static void
stream(const struct redact_cfg *c, const char *in, size_t n, const size_t *ends,
    size_t nends, struct tbuf *out)
{
	struct redact_stream s;
	memset(&s, 0, sizeof s);
	out->len = 0;
	size_t at = 0;
	for (size_t k = 0; k < nends; k++) {
		if (redact_feed(c, &s, in + at, ends[k] - at, out) != 0)
			abort();
		if (s.pend.len > REDACT_MAX) {
			fprintf(stderr, "redact: %zu bytes held back, more than REDACT_MAX\n",
			    s.pend.len);
			abort();
		}
		at = ends[k];
	}
	(void)n;
	if (redact_finish(c, &s, out) != 0)
		abort();
	redact_stream_clear(&s);
}

static void
same(const struct tbuf *want, const struct tbuf *got, const char *how, size_t arg)
{
	if (want->len == got->len && (want->len == 0 || memcmp(want->p, got->p, want->len) == 0))
		return;
	fprintf(stderr, "redact: streamed (%s %zu) differs from whole:\n whole:  '%.*s'\n"
	    " stream: '%.*s'\n", how, arg, (int)want->len, want->p, (int)got->len, got->p);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	struct redact_cfg c;
	size_t bad;
	memset(&c, 0, sizeof c);
	c.kinds = data[0] & ((1u << REDACT_NKINDS) - 1);
	c.hex_min = 16 + data[1] % 64;
	c.base64_min = 16 + data[2] % 64;
	if (redact_cfg_masks(&c, data[0] & 0x40 ? "" : "[REDACTED:%s]", &bad) != 0)
		abort();
	const char *in = (const char *)data + 3;
	size_t n = size - 3;
	struct tbuf whole = { 0 }, got = { 0 };
	if (redact_whole(&c, in, n, &whole) != 0)
		abort();

	size_t *ends = malloc((n + 2) * sizeof *ends), nends = 0, at = 0;
	if (ends == NULL)
		abort();
	struct fuzz_rng r = fuzz_seed(data, size);
	do {
		at += fuzz_piece(&r, n - at);
		ends[nends++] = at;
	} while (at < n && nends < n + 1);
	if (at < n)
		ends[nends++] = n;
	stream(&c, in, n, ends, nends, &got);
	same(&whole, &got, "pieces seeded by the input, count", nends);

	/* byte by byte rescans what is held back (up to REDACT_MAX) at each
	 * byte: kept to texts of 1k */
	if (n <= 1024) {
		ends[0] = 0;
		for (size_t i = 0; i < n; i++)
			ends[i] = i + 1;
		stream(&c, in, n, ends, n ? n : 1, &got);
		same(&whole, &got, "byte by byte, bytes", n);
	}
	/* cut in two: at every point of a short text, else at 16 points the
	 * input seeds (every point of a long one costs more than it finds) */
	for (size_t k = 1; k < n && k <= 64; k++) {
		size_t cut = n <= 64 ? k : 1 + (size_t)(fuzz_next(&r) % (n - 1));
		if (n > 64 && k > 16)
			break;
		size_t two[2] = { cut, n };
		stream(&c, in, n, two, 2, &got);
		same(&whole, &got, "cut in two at", cut);
	}
	free(ends);
	tbuf_free(&whole);
	tbuf_free(&got);
	redact_cfg_free(&c);
	return 0;
}
