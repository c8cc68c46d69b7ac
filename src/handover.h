/* handover.h -- listeners and connections passed from a graph to its successor. */
#ifndef PORCH_HANDOVER_H
#define PORCH_HANDOVER_H

struct graph;

/* g's stages let go of every kept listener they still hold (graph_free). */
void handover_release_graph(struct graph *g);

#endif
