/*
 * nats_wire.h -- the bodies of porch's messages over NATS: a list of
 * fields, each a tag byte, its length in decimal, ':' and that many bytes
 * ("t5:hello"), in any order.  Binary-safe (a text need not be UTF-8),
 * without escaping, and made and read without allocating per field: the
 * hot path of a hop (bench/nats).  Integers are fields of decimal text.
 */
#ifndef PORCH_NATS_WIRE_H
#define PORCH_NATS_WIRE_H

#include <stddef.h>

/* A body being made; p is malloc'ed (the caller frees it). */
struct wbuf {
	char *p;
	size_t len, cap;
};

void wb_str(struct wbuf *b, char tag, const char *s, size_t n);
void wb_cstr(struct wbuf *b, char tag, const char *s);   /* NULL: "" */
void wb_int(struct wbuf *b, char tag, long long v);

/* A field read: its tag and bytes (in the body, not NUL-ended). */
struct wfield {
	char tag;
	const char *p;
	size_t n;
};

/* The next field at *cur (before end): 1, 0 at the end, -1 malformed. */
int wr_next(const char **cur, const char *end, struct wfield *f);
/* A field's decimal integer (0 when it is not one). */
long long wf_int(const struct wfield *f);
/* A field as a NUL-ended string in buf (cut to len - 1). */
const char *wf_str(const struct wfield *f, char *buf, size_t len);

#endif
