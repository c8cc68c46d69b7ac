/*
 * route.c -- picking a port's channel by the conditions compiled at load
 * time.  A condition reads the message through its accessors, so nothing
 * is copied or parsed per message.
 */
#include <stdlib.h>

#include "cond.h"
#include "graph.h"
#include "route.h"
#include "util.h"

void
route_add(struct route *r, struct channel *c, const struct cond *cond)
{
	r->chans = xrealloc(r->chans, (r->n + 1) * sizeof *r->chans);
	r->conds = xrealloc(r->conds, (r->n + 1) * sizeof *r->conds);
	r->chans[r->n] = c;
	r->conds[r->n] = cond;
	r->n++;
}

void
route_fini(struct route *r)
{
	free(r->chans);
	free(r->conds);
	r->chans = NULL;
	r->conds = NULL;
	r->n = 0;
}

static const char *
meta(const void *ctx, const char *key)
{
	return porch_msg_meta(ctx, key);
}

struct channel *
route_pick(const struct route *r, const struct porch_msg *m)
{
	struct cond_input in = { m->text, m->text_len, porch_msg_session(m), meta, m };
	for (size_t i = 0; i < r->n; i++)
		if (r->conds[i] == NULL || cond_eval(r->conds[i], &in))
			return r->chans[i];
	return NULL;
}
