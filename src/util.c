/* util.c -- small helpers shared by the runtime: allocation, strings, numbers. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

static void
out_of_memory(size_t n)
{
	fprintf(stderr, "porch: out of memory (allocating %zu bytes)\n", n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		out_of_memory(n);
	return p;
}

void *
xcalloc(size_t count, size_t n)
{
	void *p = calloc(count ? count : 1, n ? n : 1);
	if (p == NULL)
		out_of_memory(count * n);
	return p;
}

/* n zeroed bytes starting on a cache line (64 bytes); free() frees them. */
void *
xcalloc_line(size_t n)
{
	size_t size = (n + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, size ? size : 64);
	if (p == NULL)
		out_of_memory(size);
	memset(p, 0, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		out_of_memory(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

int
name_is_valid(const char *s)
{
	if (s == NULL || !(*s >= 'a' && *s <= 'z'))
		return 0;
	for (s++; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_' || *s == '-'))
			return 0;
	return 1;
}

/* Classic two-row Levenshtein; names are short, so O(n*m) is fine. */
size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t *prev = xcalloc(lb + 1, sizeof *prev);
	size_t *cur = xcalloc(lb + 1, sizeof *cur);
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t best = del < ins ? del : ins;
			cur[j] = best < sub ? best : sub;
		}
		size_t *t = prev;
		prev = cur;
		cur = t;
	}
	size_t d = prev[lb];
	free(prev);
	free(cur);
	return d;
}

int
parse_int64(const char *s, int64_t *out)
{
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (*end != '\0')
		return -1;
	if (errno == ERANGE)
		return -2;
	*out = v;
	return 0;
}

int
parse_double(const char *s, double *out)
{
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	/* digits or a leading dot followed by a digit: no "inf", "nan", hex */
	if (!((*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9')))
		return -1;
	for (const char *q = p; *q; q++)
		if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
		    *q == '-' || *q == '+'))
			return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (*end != '\0')
		return -1;
	if (errno == ERANGE || !isfinite(v))
		return -2;
	*out = v;
	return 0;
}

uint64_t
clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
