/*
 * nats_pieces.h -- the pieces of a streamed answer that came home over
 * NATS, checked for gaps (nats_pieces.c).  Internal to porch run.
 *
 * Pieces travel home on core NATS, at most once: those on their way when
 * the server went away are lost, and later ones still come.  Each piece is
 * numbered (per delivery, from 0) and the end says how many its delivery
 * sent, so the home node knows when the stream it passed on has a hole.
 * It never passes on a piece after a hole; at the end, the answer's text
 * (which the end carries whole) tells whether what was passed on is its
 * beginning: then the rest goes on as one piece and the client's stream
 * is the whole answer; else the request fails (error transport).
 */
#ifndef PORCH_NATS_PIECES_H
#define PORCH_NATS_PIECES_H

#include <stddef.h>
#include <stdint.h>

/* What a request's pieces have been so far; zeroed to start. */
struct pieces {
	unsigned next;      /* the index of the next piece to pass on */
	int gap;            /* one was missing: nothing passed on since */
	int extras;         /* one passed on had extras (chunk, choice, delta) */
	size_t len;         /* bytes of text passed on */
	uint64_t hash;      /* their FNV-1a hash (0: none yet) */
};

enum piece_verdict {
	PIECE_PASS,         /* the next one: pass it on (it is counted) */
	PIECE_SKIP,         /* passed on already (a copy worked on again) */
	PIECE_HOLE,         /* after a missing one: not passed on */
};

/* A piece with index idx and its text came: what to do with it. */
enum piece_verdict pieces_take(struct pieces *p, unsigned idx, const char *text,
    size_t len, int extras);

enum pieces_end {
	PIECES_WHOLE,       /* the stream passed on was the whole answer */
	PIECES_REST,        /* it was its beginning: pass on text + *rest */
	PIECES_LOST,        /* it was not: the request must fail */
};

/*
 * The end came, with the answer's text and sent, the number of pieces its
 * delivery sent (-1: not said).  *rest is the offset in text of what was
 * not passed on (PIECES_REST).  A stream with extras cannot be mended
 * (they are not in the text): PIECES_LOST.
 */
enum pieces_end pieces_end(const struct pieces *p, const char *text, size_t len,
    long long sent, size_t *rest);

#endif
