/*
 * sse.c -- libFuzzer harness: the openai worker's server-sent events reader
 * (plugins/openai/sse.c).  The stream is fed whole, then cut at points the
 * input chooses (its first bytes), then cut at every point in two (short
 * inputs) and byte by byte: every feeding must give the same events, types,
 * ids, retry and end.  Each piece comes from a buffer of its own that is
 * spoiled right after, as tests/openai-sse.c does: the reader may keep no
 * pointer into a piece.  Its callback stops the stream at "[DONE]", as the
 * worker's does, and fails it at "[FAIL]".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sse.h"

/* What a run gave, as text: each event with its kind, type and last id. */
struct seen {
	char *p;
	size_t len, cap;
	const struct sse *s;
};

static void
put(struct seen *v, const void *p, size_t n)
{
	if (v->len + n + 1 > v->cap) {
		size_t cap = (v->len + n + 1) * 2;
		char *q = realloc(v->p, cap);
		if (q == NULL)
			abort();
		v->p = q;
		v->cap = cap;
	}
	memcpy(v->p + v->len, p, n);
	v->len += n;
}

static void
putn(struct seen *v, size_t n)
{
	char b[32];
	int k = snprintf(b, sizeof b, "%zu:", n);
	put(v, b, (size_t)k);
}

static int
on_event(void *arg, enum sse_kind kind, const char *data, size_t len)
{
	struct seen *v = arg;
	size_t tn, idn;
	const char *type = sse_type(v->s, &tn), *id = sse_last_id(v->s, &idn);
	put(v, kind == SSE_ERROR ? "E" : "D", 1);
	putn(v, tn);
	put(v, type, tn);
	putn(v, idn);
	put(v, id, idn);
	putn(v, len);
	put(v, data, len);
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
		return 1;
	if (len == 6 && memcmp(data, "[FAIL]", 6) == 0)
		return -1;
	return 0;
}

/* Feeds in[0..n) in pieces ending at ends[0..nends) (the last is n). */
static void
run(const char *in, const size_t *ends, size_t nends, struct seen *v)
{
	struct sse s;
	memset(&s, 0, sizeof s);
	v->len = 0;
	v->s = &s;
	size_t at = 0;
	int r = 0;
	for (size_t k = 0; k < nends; k++) {
		size_t len = ends[k] - at;
		char *b = malloc(len + 1);
		if (b == NULL)
			abort();
		memcpy(b, in + at, len);
		r = sse_feed(&s, b, len, on_event, v);
		memset(b, '#', len);
		free(b);
		at = ends[k];
	}
	char tail[64];
	int k = snprintf(tail, sizeof tail, "|r%d|end%d|retry%d:%lld", r, sse_end(&s),
	    (int)s.has_retry, s.has_retry ? s.retry : 0);
	put(v, tail, (size_t)k);
	sse_free(&s);
}

static void
same(const struct seen *want, const struct seen *got, const char *how, size_t arg)
{
	if (want->len == got->len && (want->len == 0 || memcmp(want->p, got->p, want->len) == 0))
		return;
	fprintf(stderr, "sse: fed %s %zu, the events differ from the whole stream's:\n"
	    " whole: %.*s\n %s: %.*s\n", how, arg, (int)want->len, want->p, how,
	    (int)got->len, got->p);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte says how many cut points follow (at most 8), two bytes each */
	size_t ncut = size > 0 ? data[0] % 9 : 0, skip = size > 0 ? 1 + 2 * ncut : 0;
	if (skip > size)
		ncut = 0, skip = size;
	const char *in = (const char *)data + skip;
	size_t n = size - skip;
	struct seen whole = { 0 }, got = { 0 };
	size_t one = n;
	run(in, &one, 1, &whole);

	/* cut where the input says */
	size_t ends[10], nends = 0;
	for (size_t i = 0; i < ncut; i++) {
		size_t at = n ? ((size_t)data[1 + 2 * i] << 8 | data[2 + 2 * i]) % (n + 1) : 0;
		size_t j = nends;
		while (j > 0 && ends[j - 1] > at) { /* keep them sorted */
			ends[j] = ends[j - 1];
			j--;
		}
		ends[j] = at;
		nends++;
	}
	ends[nends++] = n;
	run(in, ends, nends, &got);
	same(&whole, &got, "cut at input's points", ncut);

	/* cut in two: at every point of a short stream, else at 16 points the
	 * input seeds (every point of a long one costs more than it finds) */
	struct fuzz_rng r = fuzz_seed(data, size);
	for (size_t k = 1; k < n && k <= 64; k++) {
		size_t cut = n <= 64 ? k : 1 + (size_t)(fuzz_next(&r) % (n - 1));
		if (n > 64 && k > 16)
			break;
		size_t two[2] = { cut, n };
		run(in, two, 2, &got);
		same(&whole, &got, "cut in two at", cut);
	}
	/* byte by byte */
	if (n <= 4096) {
		size_t *each = malloc((n + 1) * sizeof *each);
		if (each == NULL)
			abort();
		each[0] = 0; /* no bytes: one empty piece */
		for (size_t i = 0; i < n; i++)
			each[i] = i + 1;
		run(in, each, n ? n : 1, &got);
		free(each);
		same(&whole, &got, "byte by byte", n);
	}
	free(whole.p);
	free(got.p);
	return 0;
}
