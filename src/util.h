/* util.h -- small helpers shared by the runtime: allocation, strings, numbers. */
#ifndef PORCH_UTIL_H
#define PORCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Allocation that cannot fail: prints and aborts on exhaustion. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xcalloc_line(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Is s a name porch accepts for stages, workers, plugins, ports and
 * parameters: [a-z][a-z0-9_-]*?  NULL is not. */
int name_is_valid(const char *s);

/* Edit distance between two strings (for "did you mean"). */
size_t edit_distance(const char *a, const char *b);

/*
 * Strict number parsing: the whole string must be consumed, no leading
 * blanks, no overflow.  Return 0 on success, -1 on junk, -2 on overflow.
 */
int parse_int64(const char *s, int64_t *out);
int parse_double(const char *s, double *out);

/* Monotonic clock in nanoseconds. */
uint64_t clock_ns(void);

#endif
