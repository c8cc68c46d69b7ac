/* stats.h -- a graph's counters as a table for people and JSON for scripts. */
#ifndef PORCH_STATS_H
#define PORCH_STATS_H

#include <stdio.h>

#include "graph.h"

/* The per-stage and per-channel table, as printed on exit and SIGUSR1. */
void stats_print(const struct graph *g, FILE *out);
void stats_log(const struct graph *g, int asked); /* to the log: see stats.c */
/* Writes the JSON form to path (atomically: a temporary file, then rename).
 * Returns 0, or -1 with err set. */
int stats_write_json(const struct graph *g, const char *path, char *err, size_t errlen);

/* With threads (shards.h): the same over every shard, summed, and each
 * shard's totals (a line each; "shards" in the JSON).  Take p->lock. */
struct proc;
void stats_log_proc(struct proc *p, int asked);
int stats_write_json_proc(struct proc *p, const char *path, char *err, size_t errlen);

#endif
