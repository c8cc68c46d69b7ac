/*
 * channel.h -- a bounded FIFO of messages between two stages of one loop.
 *
 * A plain ring buffer: the loop is single-threaded, so no atomics or locks.
 * The ring is sized to a power of two for cheap wrap-around; `capacity`,
 * not the ring size, bounds what it holds.
 */
#ifndef PORCH_CHANNEL_H
#define PORCH_CHANNEL_H

#include <stdint.h>

#include "loader.h"
#include "ledger.h"

struct porch_msg;
struct porch_stage;

struct channel {
	struct porch_msg **ring;
	uint32_t mask;
	uint32_t head, tail;      /* tail - head messages, wrapping */
	uint32_t capacity;
	enum overflow overflow;
	const struct cfg_channel *cfg;
	struct porch_stage *src, *dst;
	int port;
	struct channel_stats *s;      /* in the graph's ledger, by name */
};

void channel_init(struct channel *c, uint32_t capacity, enum overflow ov);
void channel_fini(struct channel *c);

static inline uint32_t
channel_depth(const struct channel *c)
{
	return c->tail - c->head;
}

static inline int
channel_full(const struct channel *c)
{
	return channel_depth(c) >= c->capacity;
}

/* The caller checks channel_full first. */
static inline void
channel_push(struct channel *c, struct porch_msg *m)
{
	c->ring[c->tail++ & c->mask] = m;
	c->s->pushed++;
	uint32_t depth = c->tail - c->head;
	if (depth > c->s->high_water)
		c->s->high_water = depth;
}

/* The oldest message; the channel must not be empty. */
static inline struct porch_msg *
channel_head(const struct channel *c)
{
	return c->ring[c->head & c->mask];
}

static inline struct porch_msg *
channel_pop(struct channel *c)
{
	if (c->head == c->tail)
		return 0;
	return c->ring[c->head++ & c->mask];
}

#endif
