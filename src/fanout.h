/* fanout.h -- copies of a request, and the join that takes them back together. */
#ifndef PORCH_FANOUT_H
#define PORCH_FANOUT_H

#include "graph.h"

struct route;

/* The most copy="true" channels one port may have (check_flow.c): a copy
 * carries its index in 16 bits (struct porch_msg's copy). */
#define FANOUT_MAX 1024

/* st sends m to every channel of r (copy="true"): m waits for its copies. */
int fanout_emit(struct graph *g, struct porch_stage *st, const struct route *r,
    struct porch_msg *m);
/* A copy ended without a join taking it (graph_finish): it is lost. */
void fanout_copy_ended(struct graph *g, struct porch_msg *cp, enum porch_outcome o,
    struct porch_stage *where);
/* A waiting request ended another way (an abort): its copies are not needed. */
void fanout_request_ended(struct graph *g, struct porch_msg *m);
/* The request was cancelled: so are its copies still on their way. */
void fanout_cancel(struct fan *f, const char *why);
/* graph_free: whatever is left. */
void fanout_free_all(struct graph *g);

#endif
