/*
 * ring.c -- the bounded multi-producer, single-consumer queue of ring.h.
 *
 * D. Vyukov's bounded queue, with the consumer side simplified to one
 * thread.  Cell i's sequence says whose turn it is: equal to a position p
 * (p = i mod size), the cell is free for the producer that claims p;
 * p + 1, it holds p's item for the consumer; p + size, it is free again
 * for the next lap.  A producer claims p with one compare-and-swap on
 * head, writes the item, then publishes it with a release store of the
 * sequence, which the consumer reads with acquire: the item is visible
 * before the consumer can see the cell as full.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ring.h"

int
ring_init(struct ring *r, size_t capacity)
{
	size_t size = 2;
	while (size < capacity)
		size <<= 1;
	r->cells = calloc(size, sizeof *r->cells);
	if (r->cells == NULL)
		return -1;
	r->mask = size - 1;
	for (size_t i = 0; i < size; i++)
		atomic_init(&r->cells[i].seq, i);
	atomic_init(&r->head, 0);
	r->tail = 0;
	return 0;
}

void
ring_fini(struct ring *r)
{
	free(r->cells);
	r->cells = NULL;
}

int
ring_push(struct ring *r, void *item)
{
	size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
	for (;;) {
		struct ring_cell *c = &r->cells[pos & r->mask];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t diff = (intptr_t)seq - (intptr_t)pos;
		if (diff == 0) {
			/* free for position pos: claim it (a failed CAS reloads pos) */
			if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1,
			    memory_order_relaxed, memory_order_relaxed)) {
				c->item = item;
				atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
				return 0;
			}
		} else if (diff < 0) {
			/* the consumer has not freed it since the last lap: full */
			return -1;
		} else {
			/* another producer took pos: try the newest head */
			pos = atomic_load_explicit(&r->head, memory_order_relaxed);
		}
	}
}

void *
ring_pop(struct ring *r)
{
	size_t pos = r->tail;
	struct ring_cell *c = &r->cells[pos & r->mask];
	size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
	if ((intptr_t)seq - (intptr_t)(pos + 1) < 0)
		return NULL; /* not published yet: empty (or a push in progress) */
	void *item = c->item;
	atomic_store_explicit(&c->seq, pos + r->mask + 1, memory_order_release);
	r->tail = pos + 1;
	return item;
}

size_t
ring_size(struct ring *r)
{
	size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	return head >= r->tail ? head - r->tail : 0;
}
