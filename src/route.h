/*
 * route.h -- the channels of one port that carry conditions: the first
 * whose condition holds takes the message (porch.xml(5), CONDITIONS).
 */
#ifndef PORCH_ROUTE_H
#define PORCH_ROUTE_H

#include <stddef.h>

struct channel;
struct porch_msg;
struct cond;

struct route {
	int copies;                   /* a fan-out (copy="true"): every channel */
	size_t n;
	struct channel **chans;       /* in document order */
	const struct cond **conds;    /* NULL: otherwise="true" */
};

/* Adds a channel to r (a NULL cond: otherwise). */
void route_add(struct route *r, struct channel *c, const struct cond *cond);
void route_fini(struct route *r);

/* The channel that takes m, or NULL when no condition holds. */
struct channel *route_pick(const struct route *r, const struct porch_msg *m);

#endif
