/* nats_pieces.c -- gaps in a streamed answer over NATS (nats_pieces.h). */
#include <string.h>

#include "nats_pieces.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME  1099511628211ULL

static uint64_t
fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= FNV_PRIME;
	}
	return h;
}

enum piece_verdict
pieces_take(struct pieces *p, unsigned idx, const char *text, size_t len, int extras)
{
	if (idx < p->next)
		return PIECE_SKIP;
	if (p->gap || idx > p->next) {
		p->gap = 1;
		return PIECE_HOLE;
	}
	if (p->len == 0 && p->hash == 0)
		p->hash = FNV_OFFSET;
	p->hash = fnv(p->hash, text, len);
	p->len += len;
	p->extras |= extras;
	p->next = idx + 1;
	return PIECE_PASS;
}

enum pieces_end
pieces_end(const struct pieces *p, const char *text, size_t len, long long sent,
    size_t *rest)
{
	*rest = len;
	if (!p->gap && (sent < 0 || (unsigned long long)sent == p->next))
		return PIECES_WHOLE;
	/* a hole, or pieces missing at the end (or more passed on than this
	 * delivery sent): is what was passed on the answer's beginning? */
	if (p->extras || p->len > len)
		return PIECES_LOST;
	if (p->next > 0 && fnv(FNV_OFFSET, text, p->len) != p->hash)
		return PIECES_LOST;
	*rest = p->len;
	return PIECES_REST;
}
