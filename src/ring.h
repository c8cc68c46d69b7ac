/*
 * ring.h -- a bounded multi-producer, single-consumer queue of pointers.
 *
 * The hand-off between shards (shards.c): any shard's thread may push,
 * only the owning shard pops.  Lock-free: each cell carries a sequence
 * number (Vyukov's bounded queue), so a push is one compare-and-swap on
 * the head and a pop touches no shared counter but the cell's.  Neither
 * blocks nor allocates: a full ring says so, and the caller decides.
 */
#ifndef PORCH_RING_H
#define PORCH_RING_H

#include <stdatomic.h>
#include <stddef.h>

struct ring_cell {
	atomic_size_t seq;
	void *item;
};

struct ring {
	struct ring_cell *cells;
	size_t mask;
	/* producers and the consumer on lines of their own: no false sharing */
	_Alignas(64) atomic_size_t head;  /* next position to push */
	_Alignas(64) size_t tail;         /* next position to pop: the consumer's */
};

/* A ring holding up to capacity items (rounded up to a power of two, at
 * least 2).  0, or -1 when memory is short. */
int ring_init(struct ring *r, size_t capacity);
/* Frees the cells; items still queued are the caller's to drain first. */
void ring_fini(struct ring *r);
/* Any thread: 0 when item is queued, -1 when the ring is full. */
int ring_push(struct ring *r, void *item);
/* The consumer's thread only: the oldest item, or NULL when empty. */
void *ring_pop(struct ring *r);
/* Items in the ring now (exact for the consumer; a hint for others). */
size_t ring_size(struct ring *r);

#endif
