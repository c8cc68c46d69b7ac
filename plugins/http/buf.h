/*
 * buf.h -- growable byte buffers and a small JSON writer over them, for
 * the http source's answers (buf.c).  No dependency on the rest of the
 * plugin, so tests/http-unit links them alone.
 */
#ifndef PORCH_HTTP_BUF_H
#define PORCH_HTTP_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../text/json_plain.h"

struct buf {
	char *p;
	size_t len, cap;
	int oom;        /* an append failed: the bytes are incomplete */
};

/* buf_add's way when the bytes do not fit (or n is 0): grows the buffer. */
int buf_add_grow(struct buf *b, const void *p, size_t n);

/*
 * Appends n bytes; 0, or -1: out of memory.  Inline for the common case,
 * bytes that fit: an answer is ~50 appends, most of them literals, whose
 * copy the compiler then makes a move or two, where a call to buf_add,
 * buf_room and memcpy cost ~30 instructions each (callgrind, bench/gateway).
 */
static inline int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n != 0 && b->cap - b->len > n) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
		b->p[b->len] = '\0';
		return 0;
	}
	return buf_add_grow(b, p, n);
}
int buf_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *buf_room(struct buf *b, size_t n); /* n free bytes at p + len (len unchanged), or NULL */
/* Room for exactly n more bytes (and the NUL) when there is less, not the
 * power of two buf_room grows to: for a size known ahead.  0, or -1. */
int buf_reserve(struct buf *b, size_t n);
void buf_reset(struct buf *b);           /* empty, capacity kept, oom cleared */
void buf_free(struct buf *b);

/* A string literal, without strlen. */
#define buf_lit(b, s) buf_add((b), (s), sizeof(s) - 1)

int buf_u64(struct buf *b, uint64_t v);  /* decimal */
size_t fmt_u64(char out[21], uint64_t v); /* decimal and a NUL; returns the digits */
int buf_i64(struct buf *b, int64_t v);   /* decimal, with '-' below 0 */
int buf_hex(struct buf *b, uint64_t v);  /* lower-case hex, no leading zeros */
void hex16(char out[17], uint64_t v);    /* 16 lower-case hex digits and a NUL */
uint64_t http_mix64(uint64_t z);         /* splitmix64's mixer: ids from counters */


/* How many leading bytes of p form whole, valid UTF-8 sequences (stops at
 * the first invalid or incomplete one). */
size_t utf8_valid_prefix(const char *p, size_t n);

/* How many of the n bytes at p to take so as not to cut a UTF-8 sequence
 * at the end: n, or less by the bytes of one begun there.  A text cut
 * so, and escaped piece by piece (json_put_esc), escapes as it does whole. */
size_t utf8_whole(const char *p, size_t n);

/*
 * JSON strings, written as jansson's json_dumps(JSON_COMPACT |
 * JSON_ENSURE_ASCII) writes them, byte for byte: '"' and '\\' escaped,
 * \b \f \n \r \t, other bytes below 0x20 as \u00XX, every code point above
 * 0x7f as \uXXXX (upper-case hex; a surrogate pair beyond the BMP).  jansson
 * refuses a string that is not valid UTF-8; here each byte that does not
 * begin a valid sequence becomes U+FFFD (\uFFFD) and the rest goes on, as
 * json_bytes did.  Each returns 0, or -1 when out of memory (b->oom set).
 */
int json_put_str(struct buf *b, const char *p, size_t n);  /* "..." */
int json_put_esc(struct buf *b, const char *p, size_t n);  /* the same, unquoted */
int json_put_cstr(struct buf *b, const char *s);           /* "...", or null for NULL */
/* The members of obj (a compact JSON object's text, or NULL), after a comma when asked. */
void json_put_members(struct buf *b, const char *obj, int comma);

#endif /* PORCH_HTTP_BUF_H */
