/*
 * redact_scan.h -- finds secrets and personal data in text and masks them,
 * on a whole text or on its stream of pieces, with the same result either
 * way.
 *
 * The text is scanned from left to right.  At each position the kinds are
 * tried in a fixed order (key, bearer, email, phone, hex, base64), and the
 * first that matches there is replaced by its mask; the scan goes on after
 * it.  Every kind matches only where a word starts (the byte before is not
 * a letter or digit).  See redact.c's description for each kind's rule.
 *
 * Streamed, the scanner lets through everything before the first position
 * it cannot decide yet (a word that may still grow into a secret) and holds
 * the rest back.  No match is longer than REDACT_MAX bytes: a key, token or
 * hex or base64 run that reaches REDACT_MAX bytes is masked then and there,
 * and the rest of its run is dropped as it comes, so a stream never holds
 * back more than REDACT_MAX bytes.
 */
#ifndef PORCH_TEXT_REDACT_SCAN_H
#define PORCH_TEXT_REDACT_SCAN_H

#include <stddef.h>

#include "tbuf.h"

#define REDACT_MAX 512

enum redact_kind {
	REDACT_KEY,
	REDACT_BEARER,
	REDACT_EMAIL,
	REDACT_PHONE,
	REDACT_HEX,
	REDACT_BASE64,
	REDACT_NKINDS
};

struct redact_cfg {
	unsigned kinds;        /* 1u << REDACT_*: the kinds to mask */
	size_t hex_min;        /* shortest hex run masked */
	size_t base64_min;     /* shortest base64 run masked */
	char *mask[REDACT_NKINDS];
	size_t mask_len[REDACT_NKINDS];
};

/* "key", "bearer", ...; NULL for no kind. */
const char *redact_kind_name(int kind);
/* The kind of that name (n bytes), or -1. */
int redact_kind_parse(const char *name, size_t n);
/* "email, phone, key, bearer, hex, base64": for messages. */
const char *redact_kind_list(void);

/*
 * Makes each kind's mask from fmt, where "%s" stands for the kind's name
 * and "%%" for "%".  0; -1 for another '%' (its offset in *bad); -2: no
 * memory.
 */
int redact_cfg_masks(struct redact_cfg *c, const char *fmt, size_t *bad);
void redact_cfg_free(struct redact_cfg *c);

/* One stream; all zero is a new one. */
struct redact_stream {
	struct tbuf pend;      /* undecided text, at most REDACT_MAX bytes between feeds */
	int prev;              /* the byte before pend, 0 at the start */
	int swallow;           /* dropping the rest of a long secret: its class */
};

/* Feeds the next piece; appends what is decided to out.  0 or -1: no memory. */
int redact_feed(const struct redact_cfg *c, struct redact_stream *s, const char *in,
    size_t len, struct tbuf *out);
/* The text is complete: appends the rest to out.  0 or -1. */
int redact_finish(const struct redact_cfg *c, struct redact_stream *s, struct tbuf *out);
/* Makes s a new stream again, keeping its memory. */
void redact_stream_reset(struct redact_stream *s);
/* Frees what s holds; s is then a new stream. */
void redact_stream_clear(struct redact_stream *s);

/* The whole text at once, appended to out.  0 or -1. */
int redact_whole(const struct redact_cfg *c, const char *in, size_t len, struct tbuf *out);

#endif
