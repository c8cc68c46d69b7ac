/* probe.h -- the openai worker's health probe (probe.c). */
#ifndef PORCH_OPENAI_PROBE_H
#define PORCH_OPENAI_PROBE_H

#include <porch/plugin.h>

struct oai;

/* The probe callback: GET health-path, answered with porch_worker_probed. */
void oai_probe(porch_worker *w);
/* worker_fini: stops a probe that runs and frees its state. */
void oai_probe_free(struct oai *o);

#endif /* PORCH_OPENAI_PROBE_H */
