/* check.h -- the graph and parameter checks of a pipeline file. */
#ifndef PORCH_CHECK_H
#define PORCH_CHECK_H

#include "config.h"

/*
 * Names, plugins, workers, channel ends and ports, cycles, reachability,
 * sinks, and every parameter (with --set overrides applied).  Reports every
 * problem to d; on success fills p->order with a topological order.
 */
void check_pipeline(struct cfg_pipeline *p, const struct override *ov,
    size_t n_ov, struct diag *d);

#endif
