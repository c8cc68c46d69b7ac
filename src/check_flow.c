/*
 * check_flow.c -- the checks of how messages leave a port: a plain channel,
 * a route (conditions, porch.xml(5) CONDITIONS) or a fan-out (copies), and
 * of the joins that take a fan-out's copies back together.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cond.h"
#include "fanout.h"

static int
same_port(const struct cfg_channel *a, const struct cfg_channel *b)
{
	return a->src == b->src && a->port_index == b->port_index;
}

/*
 * The channels of one port: one plain channel; or a route, where each
 * channel has a condition (the last may have otherwise="true") and the
 * first whose condition holds takes the message, every channel reachable;
 * or a fan-out, where each has copy="true".
 */
void
check_port_channels(struct cfg_pipeline *p, size_t i, struct diag *d)
{
	struct cfg_channel *c = &p->channels[i];
	if (c->cond != NULL && cond_constant(c->cond) == 0) {
		diag_error(d, c->when_at.line, c->when_at.col, "when=\"%s\" can never hold: "
		    "it reads nothing of the message and is false", cond_source(c->cond));
		return;
	}
	size_t copies = 1;
	for (size_t j = 0; j < i; j++) {
		struct cfg_channel *o = &p->channels[j];
		if (!same_port(o, c))
			continue;
		if (o->copy && c->copy) {
			/* a fan-out: every copy channel is taken; a copy knows its
			 * index in 16 bits (graph.h), and a join of thousands of
			 * copies is not a design anyone means */
			if (++copies == FANOUT_MAX + 1)
				diag_error(d, c->copy_at.line, c->copy_at.col, "port '%s:%s' "
				    "has more than %d copy=\"true\" channels", c->from, c->port,
				    FANOUT_MAX);
			continue;
		}
		if (!o->routed || !c->routed) {
			diag_error(d, c->from_at.line, c->from_at.col, "port '%s:%s' already has "
			    "a channel (line %d); several channels from one port are a route, "
			    "each with when=\"CONDITION\" (the last may have otherwise=\"true\"), "
			    "or a fan-out, each with copy=\"true\"", c->from, c->port, o->line);
			return;
		}
		if (o->otherwise) {
			diag_error(d, c->from_at.line, c->from_at.col, "this channel is never "
			    "taken: the channel at line %d (otherwise=\"true\") takes every "
			    "message from port '%s:%s' before it", o->line, c->from, c->port);
			return;
		}
		if (o->cond != NULL && cond_constant(o->cond) == 1) {
			diag_error(d, c->from_at.line, c->from_at.col, "this channel is never "
			    "taken: the condition of the channel at line %d always holds, so it "
			    "takes every message from port '%s:%s' before it", o->line, c->from,
			    c->port);
			return;
		}
	}
}

static int
joins(const struct cfg_stage *s)
{
	return s->plugin != NULL && (s->plugin->desc.flags & PORCH_STAGE_JOINS);
}

/*
 * Follows a join's input channel back to the fan-out it comes from: up
 * through stages with one input, to a copy="true" channel.  Returns that
 * channel, or NULL with why saying where the way back ends.
 */
static const struct cfg_channel *
fan_of(const struct cfg_pipeline *p, const struct cfg_channel *c, char *why, size_t len)
{
	for (size_t steps = 0; steps <= p->n_channels; steps++) {
		if (c->copy)
			return c;
		const struct cfg_stage *s = c->src;
		if (s == NULL)
			break;
		if (s->plugin != NULL && (s->plugin->desc.flags & PORCH_STAGE_SOURCE)) {
			snprintf(why, len, "it reaches source '%s' without passing a channel with "
			    "copy=\"true\"", s->name);
			return NULL;
		}
		const struct cfg_channel *in = NULL;
		size_t n_in = 0;
		for (size_t k = 0; k < p->n_channels; k++) {
			if (p->channels[k].dst == s) {
				in = &p->channels[k];
				n_in++;
			}
		}
		if (n_in != 1) {
			snprintf(why, len, "stage '%s' on the way has %zu inputs, so its messages "
			    "are not one fan-out's copies", s->name, n_in);
			return NULL;
		}
		c = in;
	}
	snprintf(why, len, "it goes round a cycle");
	return NULL;
}

void
check_fanouts(struct cfg_pipeline *p, struct diag *d)
{
	/* a fan-out of one channel copies nothing */
	for (size_t i = 0; i < p->n_channels; i++) {
		const struct cfg_channel *c = &p->channels[i];
		if (!c->copy || c->src == NULL)
			continue;
		size_t n = 0;
		for (size_t j = 0; j < p->n_channels; j++)
			if (same_port(&p->channels[j], c))
				n++;
		if (n == 1)
			diag_error(d, c->copy_at.line, c->copy_at.col, "copy=\"true\" on the only "
			    "channel from port '%s:%s': a fan-out has two copy channels or more",
			    c->from, c->port);
	}
	for (size_t i = 0; i < p->n_stages; i++) {
		const struct cfg_stage *s = &p->stages[i];
		if (!joins(s))
			continue;
		size_t n_in = 0;
		const struct cfg_channel *fan = NULL, *fan_in = NULL;
		for (size_t k = 0; k < p->n_channels; k++) {
			const struct cfg_channel *c = &p->channels[k];
			if (c->dst != s)
				continue;
			n_in++;
			char why[256];
			const struct cfg_channel *f = fan_of(p, c, why, sizeof why);
			if (f == NULL) {
				diag_error(d, c->at.line, c->at.col, "stage '%s' (plugin %s) joins "
				    "copies, but its input from '%s' does not come from a fan-out: %s",
				    s->name, s->plugin_name, c->from, why);
				continue;
			}
			if (fan == NULL) {
				fan = f;
				fan_in = c;
			} else if (!same_port(f, fan)) {
				diag_error(d, c->at.line, c->at.col, "stage '%s' (plugin %s) joins "
				    "copies of one fan-out, but its input from '%s' comes from port "
				    "'%s:%s' (line %d) and its input from '%s' (line %d) from port "
				    "'%s:%s'", s->name, s->plugin_name, c->from, f->from, f->port,
				    f->line, fan_in->from, fan_in->line, fan->from, fan->port);
			}
		}
		if (n_in < 2)
			diag_error(d, s->at.line, s->at.col, "stage '%s' (plugin %s) joins copies "
			    "but has %zu input channel%s; give it one from each branch of a fan-out "
			    "(channels with copy=\"true\")", s->name, s->plugin_name, n_in,
			    n_in == 1 ? "" : "s");
	}
}
