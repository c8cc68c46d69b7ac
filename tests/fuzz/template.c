/*
 * template.c -- libFuzzer harness: the assemble stage's templates
 * (plugins/text/template.c).  A template either compiles or fails with an
 * error inside it; one that compiles renders to exactly the length that
 * tpl_render(NULL) promised, into a buffer of that size (AddressSanitizer
 * sees a byte more); and tpl_cut_context cuts within its limit.
 *
 * Input: the template, then NUL-separated input, context and session
 * values.  Every piece is copied to a buffer of its own size, so a read
 * past its end is seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "template.h"

static const char *
meta(void *ctx, const char *key)
{
	(void)ctx;
	if (strcmp(key, "lang") == 0)
		return "fr";
	if (strcmp(key, "empty") == 0)
		return "";
	if (strcmp(key, "user.name") == 0)
		return "Ada";
	return NULL;
}

/* The next NUL-separated field of [*p, end), copied to a buffer of its size. */
static char *
field(const char **p, const char *end, size_t *len)
{
	const char *q = memchr(*p, '\0', (size_t)(end - *p));
	if (q == NULL)
		q = end;
	*len = (size_t)(q - *p);
	char *b = malloc(*len ? *len : 1);
	if (b == NULL)
		abort();
	memcpy(b, *p, *len);
	*p = q < end ? q + 1 : end;
	return b;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	size_t sn, in_n, ctx_n, ses_n;
	char *src = field(&p, end, &sn);
	char *input = field(&p, end, &in_n);
	char *ctx = field(&p, end, &ctx_n);
	char *session = field(&p, end, &ses_n);

	struct tpl t;
	struct tpl_error e;
	memset(&e, 0, sizeof e);
	int rc = tpl_compile(&t, src, sn, &e);
	if (rc == -1) {
		if (e.offset > sn || e.line == 0 || e.col == 0 || t.seg != NULL ||
		    memchr(e.what, '\0', sizeof e.what) == NULL || e.what[0] == '\0') {
			fprintf(stderr, "template: a bad error: offset %zu of %zu, line %u, "
			    "col %u, '%.*s'\n", e.offset, sn, e.line, e.col, (int)sizeof e.what,
			    e.what);
			abort();
		}
	} else if (rc == 0) {
		struct tpl_vals v = { input, in_n, ctx, ctx_n, session, ses_n, meta, NULL };
		size_t n = tpl_render(&t, &v, NULL);
		char *out = malloc(n ? n : 1);
		if (out == NULL)
			abort();
		size_t n2 = tpl_render(&t, &v, out);
		if (n2 != n) {
			fprintf(stderr, "template: rendered %zu bytes, promised %zu\n", n2, n);
			abort();
		}
		/* the same with no meta function and empty values */
		struct tpl_vals none = { "", 0, "", 0, "", 0, NULL, NULL };
		size_t m = tpl_render(&t, &none, NULL);
		char *out2 = malloc(m ? m : 1);
		if (out2 == NULL || tpl_render(&t, &none, out2) != m)
			abort();
		free(out2);
		free(out);
		tpl_free(&t);
	} else {
		abort(); /* no memory: not under the fuzzer's limits */
	}

	/* the context cut to every limit up to its length (utf8_cut reads the
	 * byte at the limit, inside the context when limit < len) */
	for (size_t limit = 0; limit <= ctx_n && limit < 300; limit++) {
		size_t k = tpl_cut_context(ctx, ctx_n, limit);
		if (k > limit || (ctx_n <= limit && k != ctx_n)) {
			fprintf(stderr, "template: context of %zu cut to %zu for limit %zu\n",
			    ctx_n, k, limit);
			abort();
		}
	}
	free(src);
	free(input);
	free(ctx);
	free(session);
	return 0;
}
