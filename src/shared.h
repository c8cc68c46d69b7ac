/* shared.h -- read-only state shared by every copy of a stage (porch_shared). */
#ifndef PORCH_SHARED_H
#define PORCH_SHARED_H

struct graph;

/* g's stages let go of the shared state they hold (graph_free). */
void shared_release_graph(struct graph *g);

#endif
