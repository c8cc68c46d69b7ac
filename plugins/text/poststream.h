/*
 * poststream.h -- the post stage's text transform, on a whole answer or on
 * its stream of pieces, with the same result either way.
 *
 * The transform, in order: cut the answer before the first occurrence of
 * any stop sequence; drop leading whitespace (trim); turn each run of
 * whitespace into one space (collapse); cut to max_length bytes at a UTF-8
 * character boundary; drop trailing whitespace (trim).  Whitespace is
 * ASCII: space, \t, \n, \v, \f, \r.
 *
 * Streamed, the filter holds back only what it cannot decide yet: a tail
 * that may begin a stop sequence (shorter than the longest one), whitespace
 * that may turn out to be trailing, and up to 3 bytes at the length limit.
 */
#ifndef PORCH_TEXT_POSTSTREAM_H
#define PORCH_TEXT_POSTSTREAM_H

#include <stddef.h>

#include "tbuf.h"

struct post_cfg {
	int trim;
	int collapse;
	size_t max_length;   /* 0: no limit */
	char **stop;         /* n_stop stop sequences, none empty */
	size_t *stop_len;
	size_t n_stop;
	size_t stop_max;     /* the longest one's length */
};

/* Adds a stop sequence (copied; must not be empty).  0, or -1: no memory. */
int post_cfg_add_stop(struct post_cfg *c, const char *s, size_t len);
void post_cfg_free(struct post_cfg *c);

/* Appends the transform of the whole text to out.  0, or -1: no memory. */
int post_whole(const struct post_cfg *c, const char *in, size_t len, struct tbuf *out);

/* One answer's stream; all zero is a new one. */
struct post_stream {
	struct tbuf pend;    /* raw text that may begin a stop sequence */
	int stopped;         /* a stop sequence or the limit ended the answer */
	int full;            /* the length limit was reached */
	int started;         /* a non-space came (trim) */
	int in_space;        /* the last byte let through was a space (collapse) */
	size_t count;        /* bytes that reached the length limit's counter */
	char hold[3];        /* bytes just before the limit, undecided */
	size_t n_hold;
	struct tbuf ws;      /* whitespace that may be trailing (trim) */
};

/*
 * Feeds the next piece of the answer, appending what can be let through to
 * out.  0, or -1: no memory (the stream is then broken).
 */
int post_feed(const struct post_cfg *c, struct post_stream *s, const char *in,
    size_t len, struct tbuf *out);
/* The answer is complete: appends the rest to out.  0 or -1 as above. */
int post_finish(const struct post_cfg *c, struct post_stream *s, struct tbuf *out);
/* Makes s a new stream again, keeping its memory. */
void post_stream_reset(struct post_stream *s);
/* Frees what s holds; s is then a new stream. */
void post_stream_clear(struct post_stream *s);

#endif
