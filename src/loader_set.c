/*
 * loader_set.c -- --set on the pipeline's own attributes, not a plugin's
 * parameters (porch(1), --set):
 *
 *   --set STAGE.concurrency=N            a stage's concurrency
 *   --set FROM->TO.capacity=N            a channel's capacity (FROM may be
 *   --set FROM:PORT->TO.overflow=POLICY  STAGE:PORT when FROM feeds TO by
 *                                        more than one port)
 *   --set pipeline.max-inflight=N        the pipeline's in-flight bound
 *
 * The values are checked as the file's attributes are; an error names the
 * --set, since it has no place in the file.  What is not one of these goes
 * on to the stage, worker or pool of that name as a parameter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "loader.h"
#include "util.h"

/* Is o about the pipeline's own attributes (not a plugin's parameter)? */
int
override_structural(const struct cfg_pipeline *p, const struct override *o)
{
	if (strstr(o->target, "->") != NULL)
		return 1;
	if (strcmp(o->target, "pipeline") == 0)
		return 1;
	if (strcmp(o->param, "concurrency") == 0)
		for (size_t i = 0; i < p->n_stages; i++)
			if (p->stages[i].name != NULL && strcmp(p->stages[i].name, o->target) == 0)
				return 1;
	return 0;
}

/* An integer from 1 to max, or -1 after the error. */
static long
set_int(const struct override *o, long max, struct diag *d)
{
	int64_t v;
	int rc = parse_int64(o->value, &v);
	if (rc == -1) {
		diag_error(d, 0, 0, "--set %s.%s: '%s' is not an integer (1 to %ld)", o->target,
		    o->param, o->value, max);
		return -1;
	}
	if (rc == -2 || v < 1 || v > max) {
		diag_error(d, 0, 0, "--set %s.%s: '%s' is out of range (1 to %ld)", o->target,
		    o->param, o->value, max);
		return -1;
	}
	return (long)v;
}

static void
set_channel(struct cfg_pipeline *p, const struct override *o, struct diag *d)
{
	const char *arrow = strstr(o->target, "->");
	char *from = xstrndup(o->target, (size_t)(arrow - o->target));
	const char *to = arrow + 2;
	char *port = strchr(from, ':');
	if (port != NULL)
		*port++ = '\0';
	struct cfg_channel *hit = NULL;
	size_t hits = 0;
	for (size_t i = 0; i < p->n_channels; i++) {
		struct cfg_channel *c = &p->channels[i];
		if (c->from == NULL || c->to == NULL || strcmp(c->from, from) != 0 ||
		    strcmp(c->to, to) != 0 || (port != NULL && strcmp(c->port, port) != 0))
			continue;
		hit = c;
		hits++;
	}
	if (hits == 0)
		diag_error(d, 0, 0, "--set %s.%s: no channel from '%s%s%s' to '%s'", o->target,
		    o->param, from, port ? ":" : "", port ? port : "", to);
	else if (hits > 1)
		diag_error(d, 0, 0, "--set %s.%s: %zu channels go from '%s' to '%s'; name the "
		    "port, as %s:PORT->%s", o->target, o->param, hits, from, to, from, to);
	else if (strcmp(o->param, "capacity") == 0) {
		long v = set_int(o, CHANNEL_CAPACITY_MAX, d);
		if (v > 0)
			hit->capacity = (int)v;
	} else if (strcmp(o->param, "overflow") == 0) {
		static const char *const names[] = { "block", "reject", "drop-oldest" };
		size_t i;
		for (i = 0; i < 3 && strcmp(o->value, names[i]) != 0; i++)
			;
		if (i < 3)
			hit->overflow = (enum overflow)i;
		else
			diag_error(d, 0, 0, "--set %s.%s: '%s' is not one of block, reject, "
			    "drop-oldest", o->target, o->param, o->value);
	} else {
		diag_error(d, 0, 0, "--set %s.%s: a channel has capacity and overflow, not '%s'",
		    o->target, o->param, o->param);
	}
	free(from);
}

void
config_set_structural(struct cfg_pipeline *p, const struct override *ov, size_t n_ov,
    struct diag *d)
{
	for (size_t i = 0; i < n_ov; i++) {
		const struct override *o = &ov[i];
		if (!override_structural(p, o))
			continue;
		if (strstr(o->target, "->") != NULL) {
			set_channel(p, o, d);
		} else if (strcmp(o->target, "pipeline") == 0) {
			if (strcmp(o->param, "max-inflight") != 0) {
				diag_error(d, 0, 0, "--set pipeline.%s: the pipeline has max-inflight, "
				    "not '%s'", o->param, o->param);
				continue;
			}
			long v = set_int(o, 1L << 30, d);
			if (v > 0)
				p->max_inflight = v;
		} else {
			long v = set_int(o, STAGE_CONCURRENCY_MAX, d);
			for (size_t k = 0; v > 0 && k < p->n_stages; k++)
				if (p->stages[k].name != NULL && strcmp(p->stages[k].name, o->target) == 0)
					p->stages[k].concurrency = (int)v;
		}
	}
}
