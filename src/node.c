/*
 * node.c -- which stages this process runs, and the ends of channels over
 * NATS (node.h).  Works on the configuration only: no NATS call is made
 * here, so porch check judges the same attributes without a server.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nats.h"
#include "node.h"
#include "util.h"

static int
is_nats(const struct cfg_channel *ch)
{
	return ch->transport != NULL && strcmp(ch->transport, "nats") == 0;
}

/* The channel over NATS into stage s, or NULL. */
static const struct cfg_channel *
nats_input(const struct cfg_pipeline *p, const struct cfg_stage *s)
{
	for (size_t i = 0; i < p->n_channels; i++)
		if (p->channels[i].dst == s && is_nats(&p->channels[i]))
			return &p->channels[i];
	return NULL;
}

void
node_check(struct cfg_pipeline *p, struct diag *d)
{
	for (size_t i = 0; i < p->n_channels; i++) {
		struct cfg_channel *ch = &p->channels[i];
		if (ch->transport != NULL && strcmp(ch->transport, "local") != 0 &&
		    strcmp(ch->transport, "nats") != 0) {
			diag_error(d, ch->transport_at.line, ch->transport_at.col,
			    "transport='%s' is not one of local, nats", ch->transport);
			continue;
		}
		if (!is_nats(ch)) {
			if (ch->ack_wait != NULL)
				diag_error(d, ch->ack_wait_at.line, ch->ack_wait_at.col,
				    "ack-wait applies to a channel with transport=\"nats\" only");
			if (ch->max_deliver != NULL)
				diag_error(d, ch->max_deliver_at.line, ch->max_deliver_at.col,
				    "max-deliver applies to a channel with transport=\"nats\" only");
			if (ch->shards != NULL)
				diag_error(d, ch->shards_at.line, ch->shards_at.col,
				    "shards applies to a channel with transport=\"nats\" only");
			if (ch->src != NULL && nats_input(p, ch->src) != NULL &&
			    ch->dst != NULL && ch->dst->node != NULL && ch->src->node != NULL &&
			    strcmp(ch->dst->node, ch->src->node) == 0)
				diag_error(d, ch->at.line, ch->at.col, "channel %s -> %s: what a "
				    "stage fed over NATS emits goes home to the node that sent "
				    "it, so '%s' cannot run on '%s''s node '%s'", ch->from, ch->to,
				    ch->to, ch->from, ch->src->node);
			continue;
		}
		double s;
		if (ch->ack_wait != NULL && (cli_parse_duration(ch->ack_wait, &s) != 0 ||
		    s < 1 || s > 86400))
			diag_error(d, ch->ack_wait_at.line, ch->ack_wait_at.col, "ack-wait='%s' "
			    "is not a duration from 1s to 24h (e.g. 30s)", ch->ack_wait);
		int64_t md;
		if (ch->max_deliver != NULL && (parse_int64(ch->max_deliver, &md) != 0 ||
		    md < 1 || md > 1000))
			diag_error(d, ch->max_deliver_at.line, ch->max_deliver_at.col,
			    "max-deliver='%s' is not an integer from 1 to 1000", ch->max_deliver);
		if (ch->shards != NULL && (parse_int64(ch->shards, &md) != 0 ||
		    md < 1 || md > 1024))
			diag_error(d, ch->shards_at.line, ch->shards_at.col,
			    "shards='%s' is not an integer from 1 to 1024", ch->shards);
		if (ch->copy)
			diag_error(d, ch->copy_at.line, ch->copy_at.col, "channel %s -> %s: a "
			    "copy (fan-out) cannot travel over NATS", ch->from, ch->to);
		if (ch->dst == NULL)
			continue;
		size_t inputs = 0;
		for (size_t k = 0; k < p->n_channels; k++)
			inputs += p->channels[k].dst == ch->dst;
		if (inputs > 1)
			diag_error(d, ch->at.line, ch->at.col, "channel %s -> %s: a stage fed "
			    "over NATS takes no other input ('%s' has %zu channels in)",
			    ch->from, ch->to, ch->to, inputs);
		if (ch->dst->node == NULL)
			diag_error(d, ch->at.line, ch->at.col, "channel %s -> %s is "
			    "transport=\"nats\": give stage '%s' a node=\"NAME\" (the nodes "
			    "that pull its stream)", ch->from, ch->to, ch->to);
		for (size_t k = 0; k < p->n_channels; k++) {
			const struct cfg_channel *o = &p->channels[k];
			if (o->src == ch->dst && is_nats(o))
				diag_error(d, o->at.line, o->at.col, "channel %s -> %s: a stage fed "
				    "over NATS sends its output home; it cannot be over NATS too",
				    o->from, o->to);
		}
	}
	for (size_t i = 0; i < p->n_channels; i++) {
		const struct cfg_channel *ch = &p->channels[i];
		if (is_nats(ch) || ch->src == NULL || ch->dst == NULL ||
		    nats_input(p, ch->src) != NULL ||
		    (ch->transport != NULL && strcmp(ch->transport, "local") != 0))
			continue;
		if (ch->src->node != NULL && ch->dst->node != NULL &&
		    strcmp(ch->src->node, ch->dst->node) != 0)
			diag_error(d, ch->at.line, ch->at.col, "channel %s -> %s joins node "
			    "'%s' to node '%s': make it transport=\"nats\" or run both on one "
			    "node", ch->from, ch->to, ch->src->node, ch->dst->node);
	}
}

/* ---- the rewrite ---------------------------------------------------------- */

static int
runs_here(const struct cfg_stage *s, const struct node_opts *o)
{
	return o->node == NULL || s->node == NULL || strcmp(s->node, o->node) == 0;
}

static void
name_part(char *out, size_t len, const char *s, int upper)
{
	size_t k = 0;
	for (; *s != '\0' && k + 1 < len; s++, k++) {
		char c = *s;
		if (upper) {
			c = c == '-' ? '_' : c;
			if (c >= 'a' && c <= 'z')
				c = (char)(c - 'a' + 'A');
		}
		out[k] = c;
	}
	out[k] = '\0';
}

static struct nats_chan *
chan_new(const struct cfg_pipeline *p, const struct cfg_channel *ch, const char *url)
{
	struct nats_chan *c = xcalloc(1, sizeof *c);
	char pl[256], fr[256], po[256], to[256], buf[1200];
	c->url = xstrdup(url);
	name_part(pl, sizeof pl, p->name, 1);
	name_part(fr, sizeof fr, ch->from, 1);
	name_part(po, sizeof po, ch->port, 1);
	name_part(to, sizeof to, ch->to, 1);
	snprintf(buf, sizeof buf, "PORCH_%s_%s_%s_%s", pl, fr, po, to);
	c->stream = xstrdup(buf);
	snprintf(buf, sizeof buf, "porch.%s.%s.%s.%s", p->name, ch->from, ch->port, ch->to);
	c->subject = xstrdup(buf);
	c->durable = xstrdup(ch->to);
	snprintf(buf, sizeof buf, "porch.%s.home", p->name);
	c->home_prefix = xstrdup(buf);
	c->from = xstrdup(ch->from);
	c->to = xstrdup(ch->to);
	c->capacity = (uint32_t)ch->capacity;
	c->overflow = ch->overflow;
	c->ack_wait_ms = 30000;
	double s;
	if (ch->ack_wait != NULL && cli_parse_duration(ch->ack_wait, &s) == 0)
		c->ack_wait_ms = (int64_t)(s * 1000);
	int64_t md;
	c->max_deliver = 5;
	if (ch->max_deliver != NULL && parse_int64(ch->max_deliver, &md) == 0)
		c->max_deliver = (int)md;
	if (ch->shards != NULL && parse_int64(ch->shards, &md) == 0)
		c->shards = (unsigned)md;
	return c;
}

static void
chan_free(struct nats_chan *c)
{
	free(c->url);
	free(c->stream);
	free(c->subject);
	free(c->durable);
	free(c->home_prefix);
	free(c->from);
	free(c->to);
	free(c);
}

static void
state_free(void *arg)
{
	struct node_state *ns = arg;
	for (size_t i = 0; i < ns->n_chans; i++)
		chan_free(ns->chans[i]);
	free(ns->chans);
	for (size_t i = 0; i < ns->n_dropped_stages; i++) {
		struct cfg_stage *s = &ns->dropped_stages[i];
		free(s->name);
		free(s->plugin_name);
		free(s->worker_name);
		free(s->node);
		for (size_t k = 0; k < s->params.n; k++) {
			free((char *)s->params.v[k].name);
			free((char *)s->params.v[k].value);
		}
		free(s->params.v);
		params_free(s->parsed);
	}
	free(ns->dropped_stages);
	for (size_t i = 0; i < ns->n_dropped_channels; i++) {
		struct cfg_channel *ch = &ns->dropped_channels[i];
		free(ch->from);
		free(ch->port);
		free(ch->to);
		free(ch->transport);
		free(ch->ack_wait);
		free(ch->max_deliver);
		free(ch->shards);
		cond_free(ch->cond);
	}
	free(ns->dropped_channels);
	for (size_t i = 0; i < ns->n_ends; i++)
		free(ns->ends[i]);
	free(ns->ends);
	nats_conns_free(ns);
	free(ns);
}

/* A built-in plugin for a NATS end, owned by the registry (freed with it). */
static const struct plugin *
end_plugin(struct cfg_pipeline *p, const struct porch_plugin *desc,
    const struct plugin *like)
{
	struct plugin *pl = xcalloc(1, sizeof *pl);
	pl->path = xstrdup("(built in: nats)");
	pl->desc = *desc;
	if (like != NULL) {
		/* the proxy has the ports of the stage it stands for */
		pl->desc.outputs = like->desc.outputs;
		pl->n_outputs = like->n_outputs;
	} else {
		for (pl->n_outputs = 0; desc->outputs != NULL &&
		    desc->outputs[pl->n_outputs] != NULL; pl->n_outputs++)
			;
	}
	pl->next = p->registry.loaded;
	p->registry.loaded = pl;
	return pl;
}

static struct cfg_stage *
stage_push(struct cfg_stage **v, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xrealloc(*v, *cap * sizeof **v);
	}
	struct cfg_stage *s = &(*v)[(*n)++];
	memset(s, 0, sizeof *s);
	return s;
}

static struct cfg_channel *
chan_push(struct cfg_channel **v, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xrealloc(*v, *cap * sizeof **v);
	}
	struct cfg_channel *c = &(*v)[(*n)++];
	memset(c, 0, sizeof *c);
	return c;
}

static struct nats_end *
end_new(struct node_state *ns, enum nats_role role, struct nats_chan *c, int port)
{
	struct nats_end *e = xcalloc(1, sizeof *e);
	e->role = role;
	e->chan = c;
	e->port = port;
	e->shard = -1;
	e->ns = ns;
	ns->ends = xrealloc(ns->ends, (ns->n_ends + 1) * sizeof *ns->ends);
	ns->ends[ns->n_ends++] = e;
	return e;
}

/* A pseudo-stage: name, plugin and concurrency; src_index is where it will
 * be in the new array (channels are wired by index, then by pointer). */
static size_t
add_end_stage(struct cfg_stage **v, size_t *n, size_t *cap, const char *name,
    const struct plugin *pl, struct nats_end *e, const struct cfg_stage *like)
{
	struct cfg_stage *s = stage_push(v, n, cap);
	s->name = xstrdup(name);
	s->plugin_name = xstrdup(pl->desc.name);
	s->plugin = pl;
	s->concurrency = STAGE_CONCURRENCY_MAX;
	s->nats = e;
	if (like != NULL) {
		s->at = like->at;
		s->line = like->line;
	}
	return *n - 1;
}

/* Kahn's order over the rewritten arrays (the file's was checked acyclic). */
static void
reorder(struct cfg_pipeline *p)
{
	size_t n = p->n_stages;
	size_t *indeg = xcalloc(n, sizeof *indeg), *order = xcalloc(n, sizeof *order);
	for (size_t i = 0; i < p->n_channels; i++)
		indeg[p->channels[i].dst - p->stages]++;
	size_t head = 0, tail = 0;
	for (size_t i = 0; i < n; i++)
		if (indeg[i] == 0)
			order[tail++] = i;
	while (head < tail) {
		size_t s = order[head++];
		for (size_t i = 0; i < p->n_channels; i++)
			if ((size_t)(p->channels[i].src - p->stages) == s &&
			    --indeg[p->channels[i].dst - p->stages] == 0)
				order[tail++] = (size_t)(p->channels[i].dst - p->stages);
	}
	free(indeg);
	free(p->order);
	p->order = order;
}

const char *
node_nats_url(const struct cfg_pipeline *p)
{
	const struct node_state *ns = p->node_data;
	if (ns == NULL || ns->n_chans == 0)
		return NULL;
	return ns->chans[0]->url;
}

int
node_select(struct cfg_pipeline *p, const struct node_opts *o, struct diag *d)
{
	int errors = d->errors;
	node_check(p, d);
	if (d->errors != errors)
		return -1;
	const char *url = o->nats_url != NULL ? o->nats_url : p->nats_url;
	int any_nats = 0;
	for (size_t i = 0; i < p->n_channels; i++) {
		struct cfg_channel *ch = &p->channels[i];
		if (!is_nats(ch))
			continue;
		any_nats = 1;
		if (url == NULL || *url == '\0')
			diag_error(d, ch->transport_at.line, ch->transport_at.col, "channel %s "
			    "-> %s is transport=\"nats\" but no NATS server is named: add "
			    "nats-url=\"nats://HOST:PORT\" to <pipeline> or give porch run "
			    "--nats-url URL", ch->from, ch->to);
	}
	if (o->node != NULL) {
		int named = 0;
		char nodes[1024] = "";
		for (size_t i = 0; i < p->n_stages; i++) {
			const char *nn = p->stages[i].node;
			if (nn == NULL)
				continue;
			named |= strcmp(nn, o->node) == 0;
			if (strstr(nodes, nn) == NULL && strlen(nodes) + strlen(nn) + 3 < sizeof nodes) {
				if (*nodes)
					strcat(nodes, ", ");
				strcat(nodes, nn);
			}
		}
		if (!named)
			diag_error(d, p->at.line, p->at.col, "--node %s: no stage of pipeline "
			    "'%s' has node=\"%s\" (%s%s)", o->node, p->name, o->node,
			    *nodes ? "the file's nodes: " : "no stage has a node=", nodes);
	}
	if (d->errors != errors)
		return -1;
	if (o->node == NULL && !any_nats)
		return 0;

	struct node_state *ns = xcalloc(1, sizeof *ns);
	p->node_data = ns;
	p->node_free = state_free;
	pthread_mutex_t *lk = xcalloc(1, sizeof *lk);
	pthread_mutex_init(lk, NULL);
	ns->conns_lock = lk;
	size_t n_st = 0, cap_st = 0, n_ch = 0, cap_ch = 0;
	struct cfg_stage *st = NULL;
	struct cfg_channel *chs = NULL;
	/* old stage index -> new index, and its proxy's new index */
	size_t *map = xcalloc(p->n_stages, sizeof *map), *proxy = xcalloc(p->n_stages, sizeof *proxy);
	struct nats_chan **fed = xcalloc(p->n_stages, sizeof *fed);
	const size_t NONE = (size_t)-1;
	for (size_t i = 0; i < p->n_stages; i++) {
		map[i] = proxy[i] = NONE;
		const struct cfg_channel *in = nats_input(p, &p->stages[i]);
		if (in != NULL) {
			fed[i] = chan_new(p, in, url);
			ns->chans = xrealloc(ns->chans, (ns->n_chans + 1) * sizeof *ns->chans);
			ns->chans[ns->n_chans++] = fed[i];
		}
	}
	for (size_t i = 0; i < p->n_stages; i++) {
		struct cfg_stage *s = &p->stages[i];
		if (runs_here(s, o)) {
			*stage_push(&st, &n_st, &cap_st) = *s;
			map[i] = n_st - 1;
		} else {
			ns->dropped_stages = xrealloc(ns->dropped_stages,
			    (ns->n_dropped_stages + 1) * sizeof *ns->dropped_stages);
			ns->dropped_stages[ns->n_dropped_stages++] = *s;
		}
	}
	/* the proxies: where a sender of a stage fed over NATS runs */
	for (size_t i = 0; i < p->n_channels; i++) {
		struct cfg_channel *ch = &p->channels[i];
		size_t b = (size_t)(ch->dst - p->stages), a = (size_t)(ch->src - p->stages);
		if (!is_nats(ch) || map[a] == NONE)
			continue;
		char name[600];
		snprintf(name, sizeof name, "%s%s", ch->to, map[b] != NONE ? "/nats" : "");
		const struct plugin *pl = end_plugin(p, &nats_proxy_desc, ch->dst->plugin);
		proxy[b] = add_end_stage(&st, &n_st, &cap_st, name, pl,
		    end_new(ns, NATS_PROXY, fed[b], -1), ch->dst);
		/* a sender holds no more than the stream does: beyond that its
		 * channel fills and its overflow applies there, at once, not
		 * when JetStream's refusals come back */
		st[proxy[b]].concurrency = ch->capacity;
	}
	/* the channels, with new ends: by new index for now */
	struct wire { size_t src, dst; };
	struct wire *wires = NULL;
	size_t n_wires = 0;
#define WIRE(s_, d_) do { \
		wires = xrealloc(wires, (n_wires + 1) * sizeof *wires); \
		wires[n_wires].src = (s_); wires[n_wires].dst = (d_); n_wires++; \
	} while (0)
	for (size_t i = 0; i < p->n_stages; i++) {
		if (fed[i] == NULL || map[i] == NONE)
			continue;
		/* a source pulling the stream into the stage */
		char name[600];
		snprintf(name, sizeof name, "%s/in", p->stages[i].name);
		const struct plugin *pl = end_plugin(p, &nats_in_desc, NULL);
		struct nats_end *ie = end_new(ns, NATS_IN, fed[i], -1);
		if (fed[i]->shards > 0) {
			const struct cfg_channel *inch = nats_input(p, &p->stages[i]);
			if (o->shard < 0 || (unsigned)o->shard >= fed[i]->shards)
				diag_error(d, inch->shards_at.line, inch->shards_at.col,
				    "channel %s -> %s has shards=\"%u\": start each node of "
				    "'%s' with --nats-shard K, K from 0 to %u (the sessions it "
				    "keeps)%s", inch->from, inch->to, fed[i]->shards,
				    inch->to, fed[i]->shards - 1, o->shard >= 0 ?
				    "; --nats-shard is out of range" : "");
			ie->shard = o->shard;
		}
		size_t in = add_end_stage(&st, &n_st, &cap_st, name, pl, ie, &p->stages[i]);
		struct cfg_channel *c = chan_push(&chs, &n_ch, &cap_ch);
		c->from = xstrdup(name);
		c->port = xstrdup("out");
		c->to = xstrdup(p->stages[i].name);
		c->capacity = (int)fed[i]->capacity;
		c->overflow = OVERFLOW_BLOCK;
		c->port_index = 0;
		WIRE(in, map[i]);
		/* a sink per output port that has a channel in the file */
		const struct plugin *sp = p->stages[i].plugin;
		for (int port = 0; port <= sp->n_outputs; port++) {
			int used = 0;
			for (size_t k = 0; k < p->n_channels; k++)
				used |= p->channels[k].src == &p->stages[i] &&
				    p->channels[k].port_index == port;
			if (!used)
				continue;
			snprintf(name, sizeof name, "%s/%s", p->stages[i].name,
			    plugin_port_name(sp, port));
			const struct plugin *hp = end_plugin(p, &nats_home_desc, NULL);
			size_t h = add_end_stage(&st, &n_st, &cap_st, name, hp,
			    end_new(ns, NATS_HOME, fed[i], port), &p->stages[i]);
			c = chan_push(&chs, &n_ch, &cap_ch);
			c->from = xstrdup(p->stages[i].name);
			c->port = xstrdup(plugin_port_name(sp, port));
			c->to = xstrdup(name);
			c->capacity = CHANNEL_CAPACITY_MAX;
			c->overflow = OVERFLOW_BLOCK;
			c->port_index = port;
			WIRE(map[i], h);
		}
	}
	for (size_t i = 0; i < p->n_channels; i++) {
		struct cfg_channel *ch = &p->channels[i];
		size_t a = (size_t)(ch->src - p->stages), b = (size_t)(ch->dst - p->stages);
		size_t from = NONE, to = NONE;
		if (is_nats(ch)) {
			from = map[a];
			to = proxy[b];
		} else if (fed[a] != NULL) {
			/* from a stage fed over NATS: leaves from its proxy */
			from = proxy[a];
			to = map[b];
			if (from != NONE && to == NONE) {
				diag_error(d, ch->at.line, ch->at.col, "channel %s -> %s: what "
				    "'%s' emits comes home to the node that sent it over NATS, "
				    "where '%s' does not run (--node %s)", ch->from, ch->to,
				    ch->from, ch->to, o->node ? o->node : "");
				from = to = NONE;
			}
		} else {
			from = map[a];
			to = map[b];
		}
		if (from == NONE || to == NONE) {
			ns->dropped_channels = xrealloc(ns->dropped_channels,
			    (ns->n_dropped_channels + 1) * sizeof *ns->dropped_channels);
			ns->dropped_channels[ns->n_dropped_channels++] = *ch;
			continue;
		}
		*chan_push(&chs, &n_ch, &cap_ch) = *ch;
		WIRE(from, to);
	}
#undef WIRE
	free(p->stages);
	free(p->channels);
	p->stages = st;
	p->n_stages = n_st;
	p->channels = chs;
	p->n_channels = n_ch;
	for (size_t i = 0; i < n_ch; i++) {
		chs[i].src = &st[wires[i].src];
		chs[i].dst = &st[wires[i].dst];
	}
	free(wires);
	free(map);
	free(proxy);
	free(fed);
	reorder(p);
	return d->errors != errors ? -1 : 0;
}
