/* channel.c -- a bounded FIFO of messages between two stages of one loop. */
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "util.h"

void
channel_init(struct channel *c, uint32_t capacity, enum overflow ov)
{
	memset(c, 0, sizeof *c);
	uint32_t size = 1;
	while (size < capacity)
		size <<= 1;
	c->ring = xcalloc(size, sizeof *c->ring);
	c->mask = size - 1;
	c->capacity = capacity;
	c->overflow = ov;
}

void
channel_fini(struct channel *c)
{
	free(c->ring);
	c->ring = NULL;
}
