/* check.h -- the graph and parameter checks of a pipeline file. */
#ifndef PORCH_CHECK_H
#define PORCH_CHECK_H

#include "loader.h"

/*
 * What the structural walk saw but could not put into the pipeline, so the
 * checks do not report its consequences: a misspelt <stgae name="x"> is one
 * error, not also "channel to unknown stage 'x'" and "x is unreachable".
 */
struct check_gaps {
	char **ghosts;       /* name= of elements the walk rejected */
	size_t n_ghosts;
	int unnamed;         /* a <stage> or <worker> without a name: any
	                      * unknown name may have been meant for it */
	int lost_edges;      /* an element that may have been a channel (or a
	                      * channel without both ends) was not read */
};

/*
 * Names, plugins, workers, channel ends and ports, cycles, reachability,
 * sinks, and every parameter (with --set overrides applied).  Reports every
 * problem to d; on success fills p->order with a topological order.  gaps
 * may be NULL.
 */
void check_pipeline(struct cfg_pipeline *p, const struct override *ov,
    size_t n_ov, const struct check_gaps *gaps, struct diag *d);

/* check_flow.c: the channels of one port (a plain channel, a route or a
 * fan-out), p->channels[i] against those before it in the file. */
void check_port_channels(struct cfg_pipeline *p, size_t i, struct diag *d);
/* check_flow.c: every fan-out has two copies or more, and every join's
 * inputs come from one fan-out.  After channels are resolved. */
void check_fanouts(struct cfg_pipeline *p, struct diag *d);

/* loader_pool.c: pools' names, policies, members, parameters and
 * fallbacks (no cycle through fallback=); before the stages are checked. */
void pool_check(struct cfg_pipeline *p, const struct override *ov, size_t n_ov,
    struct diag *d);
/* loader_pool.c: the pool called name, or NULL */
struct cfg_pool *pool_find(struct cfg_pipeline *p, const char *name);
/* loader_pool.c: the parameters of a <pool> */
extern const struct porch_param pool_params[];

#endif
