/*
 * pool.c -- pools at run time: routing calls to members, passive and
 * active health, fallbacks, and the members' counters.
 *
 * Health is judged from the ends of calls: a member that fails `failures`
 * times in a row (a timeout, a transport error, an upstream error with a
 * 5xx status or none; never a 4xx nor a cancellation) is ejected for
 * `cooldown`, doubled for each ejection since its last success up to
 * `max-cooldown`.  An ejected member comes back when its time is up,
 * checked when a call is routed (no timer), on probation: one more failure
 * ejects it again.  A probe (the worker's probe callback, every
 * probe-interval) brings a member back early or takes it out.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "util.h"

static void probe_tick(struct ev_loop *loop, ev_timer *w, int revents);

static void
pool_init(struct graph *g, struct pool *p, const struct cfg_pool *cp)
{
	p->g = g;
	p->cfg = cp;
	p->name = cp->name;
	p->n = cp->n_members;
	p->m = xcalloc(p->n, sizeof *p->m);
	uint32_t weights[BALANCE_MAX];
	const char *names[BALANCE_MAX];
	char key[512];
	for (size_t i = 0; i < p->n; i++) {
		const struct cfg_member *cm = &cp->members[i];
		p->m[i].w = &g->workers[cm->worker - g->cfg->workers];
		p->m[i].context_limit = cm->context_limit;
		snprintf(key, sizeof key, "%s/%s", cp->name, cm->worker_name);
		p->m[i].stats = ledger_slot(g->led, LEDGER_REPLICA, key);
		weights[i] = (uint32_t)cm->weight;
		names[i] = cm->worker_name;
	}
	const porch_params *pp = cp->parsed;
	balance_init(&p->bal, cp->policy, p->n, weights, names,
	    (uint64_t)porch_param_int(pp, "seed"));
	p->bal.explore = porch_param_number(pp, "explore");
	p->bal.load_factor = porch_param_number(pp, "load-factor");
	p->bal.prefix_bytes = (size_t)porch_param_int(pp, "prefix-bytes");
	p->stats = ledger_slot(g->led, LEDGER_POOL, cp->name);
	p->failures = (unsigned)porch_param_int(pp, "failures");
	p->cooldown = (double)porch_param_int(pp, "cooldown") / 1000.0;
	p->max_cooldown = (double)porch_param_int(pp, "max-cooldown") / 1000.0;
	int64_t pct = porch_param_int(pp, "max-ejected-percent");
	p->max_ejected = (size_t)((int64_t)p->n * pct / 100);
	if (p->max_ejected == 0 && pct > 0)
		p->max_ejected = 1; /* one may always be */
	p->probe_interval = (double)porch_param_int(pp, "probe-interval") / 1000.0;
	/* health goes on across reloads, as the counters do: a member the
	 * graph before ejected stays out until its time is up */
	double now = ev_now(g->loop);
	for (size_t i = 0; i < p->n; i++) {
		struct pool_member *pm = &p->m[i];
		const struct replica_stats *r = pm->stats;
		pm->fails = r->fails;
		pm->ejections = r->ejections_in_row;
		if (r->back_at > now && p->n_ejected < p->max_ejected) {
			pm->back_at = r->back_at;
			p->n_ejected++;
			p->bal.up &= ~(1ull << i);
			if (p->next_back == 0 || pm->back_at < p->next_back)
				p->next_back = pm->back_at;
		}
	}
}

void
pools_new(struct graph *g)
{
	struct cfg_pipeline *cfg = g->cfg;
	g->n_pools = cfg->n_pools;
	g->pools = xcalloc(cfg->n_pools + 1, sizeof *g->pools);
	for (size_t i = 0; i < cfg->n_pools; i++)
		pool_init(g, &g->pools[i], &cfg->pools[i]);
	for (size_t i = 0; i < cfg->n_pools; i++) {
		struct pool *p = &g->pools[i];
		const struct cfg_pool *cp = &cfg->pools[i];
		p->n_fb = cp->n_fallbacks;
		p->fb_pools = xcalloc(p->n_fb + 1, sizeof *p->fb_pools);
		p->fb_workers = xcalloc(p->n_fb + 1, sizeof *p->fb_workers);
		for (size_t k = 0; k < p->n_fb; k++) {
			if (cp->fb_pools[k] != NULL)
				p->fb_pools[k] = &g->pools[cp->fb_pools[k] - cfg->pools];
			else
				p->fb_workers[k] = &g->workers[cp->fb_workers[k] - cfg->workers];
		}
	}
	for (size_t i = 0; i < g->n_stages; i++) {
		const struct cfg_stage *cs = g->stages[i].cfg;
		if (cs->pool != NULL)
			g->stages[i].pool = &g->pools[cs->pool - cfg->pools];
	}
}

/* Marks p, and the pools it falls back to, as called by this graph. */
static void
mark_called(struct graph *g, struct pool *p, unsigned char *called)
{
	size_t i = (size_t)(p - g->pools);
	if (called[i])
		return;
	called[i] = 1;
	for (size_t k = 0; k < p->n_fb; k++)
		if (p->fb_pools[k] != NULL)
			mark_called(g, p->fb_pools[k], called);
}

void
pools_start(struct graph *g)
{
	/* Probes go out for the pools a stage of this graph calls, itself or
	 * as a fallback, only: a node of a deployment over NATS (porch run
	 * --node) holds every pool of the file, and must not probe the model
	 * servers of other nodes' stages, which it may not even reach. */
	unsigned char *called = xcalloc(g->n_pools + 1, 1);
	for (size_t i = 0; i < g->n_stages; i++)
		if (g->stages[i].pool != NULL)
			mark_called(g, g->stages[i].pool, called);
	for (size_t i = 0; i < g->n_pools; i++) {
		struct pool *p = &g->pools[i];
		if (p->probe_interval <= 0 || !called[i])
			continue;
		ev_timer_init(&p->probe_w, probe_tick, 0., p->probe_interval);
		p->probe_w.data = p;
		ev_timer_start(g->loop, &p->probe_w);
		ev_unref(g->loop); /* probes alone do not keep the loop alive */
		p->probe_started = 1;
	}
	free(called);
}

void
pools_free(struct graph *g)
{
	for (size_t i = 0; i < g->n_pools; i++) {
		struct pool *p = &g->pools[i];
		if (p->probe_started) {
			ev_ref(g->loop);
			ev_timer_stop(g->loop, &p->probe_w);
		}
		balance_fini(&p->bal);
		free(p->m);
		free(p->fb_pools);
		free(p->fb_workers);
	}
	free(g->pools);
	g->pools = NULL;
	g->n_pools = 0;
}

/* ---- health ------------------------------------------------------------ */

/* The member's health into the ledger, for the graph after a reload. */
static void
keep(struct pool_member *pm)
{
	pm->stats->fails = pm->fails;
	pm->stats->ejections_in_row = pm->ejections;
	pm->stats->back_at = pm->back_at;
}

static void
member_in(struct pool *p, size_t i)
{
	struct pool_member *pm = &p->m[i];
	if (pm->back_at == 0)
		return;
	pm->back_at = 0;
	p->n_ejected--;
	p->bal.up |= 1ull << i;
	keep(pm);
}

static void
member_out(struct pool *p, size_t i, double now)
{
	struct pool_member *pm = &p->m[i];
	if (pm->back_at != 0 || p->n_ejected >= p->max_ejected)
		return;
	double t = p->cooldown * ldexp(1.0, (int)(pm->ejections < 30 ? pm->ejections : 30));
	if (t > p->max_cooldown)
		t = p->max_cooldown;
	pm->ejections++;
	pm->back_at = now + t;
	p->n_ejected++;
	pm->stats->ejections++;
	keep(pm);
	p->bal.up &= ~(1ull << i);
	if (p->next_back == 0 || pm->back_at < p->next_back)
		p->next_back = pm->back_at;
}

/* Members whose ejection is over come back, on probation. */
static void
refresh(struct pool *p, double now)
{
	if (p->n_ejected == 0 || now < p->next_back)
		return;
	p->next_back = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct pool_member *pm = &p->m[i];
		if (pm->back_at == 0)
			continue;
		if (pm->back_at <= now) {
			member_in(p, i);
			pm->fails = p->failures > 0 ? p->failures - 1 : 0;
			keep(pm);
		} else if (p->next_back == 0 || pm->back_at < p->next_back) {
			p->next_back = pm->back_at;
		}
	}
}

size_t
pool_healthy(struct pool *p)
{
	refresh(p, ev_now(p->g->loop));
	return (size_t)__builtin_popcountll(p->bal.up);
}

void
pool_call_start(struct pool *p, int member)
{
	balance_start(&p->bal, member);
	p->m[member].stats->requests++;
	p->m[member].stats->inflight++;
}

void
pool_call_first(struct pool *p, int member, uint64_t ns)
{
	balance_ttft(&p->bal, member, (double)ns / 1e6);
	hist_record_n(&p->m[member].stats->ttft, ns, 1);
}

void
pool_call_end(struct pool *p, int member, enum porch_error err, int status, uint64_t ns)
{
	struct pool_member *pm = &p->m[member];
	balance_end(&p->bal, member);
	if (pm->stats->inflight > 0)
		pm->stats->inflight--;
	if (err == PORCH_ERR_CANCELLED)
		return;
	hist_record_n(&pm->stats->latency, ns, 1);
	int sick = 0;
	switch (err) {
	case PORCH_ERR_NONE:
		pm->fails = 0;
		pm->ejections = 0;
		keep(pm);
		return;
	case PORCH_ERR_TIMEOUT:
		pm->stats->errors[REPLICA_ERR_TIMEOUT]++;
		sick = 1;
		break;
	case PORCH_ERR_TRANSPORT:
		pm->stats->errors[REPLICA_ERR_TRANSPORT]++;
		sick = 1;
		break;
	case PORCH_ERR_UPSTREAM:
		if (status >= 400 && status < 500) {
			pm->stats->errors[REPLICA_ERR_4XX]++;
		} else {
			pm->stats->errors[REPLICA_ERR_5XX]++;
			sick = 1;
		}
		break;
	default:
		pm->stats->errors[REPLICA_ERR_OTHER]++;
		break;
	}
	if (!sick)
		return;
	if (++pm->fails >= p->failures)
		member_out(p, (size_t)member, ev_now(p->g->loop));
	keep(pm);
}

/* ---- probes ------------------------------------------------------------ */

static void
probe_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct pool *p = w->data;
	for (size_t i = 0; i < p->n; i++) {
		struct pool_member *pm = &p->m[i];
		if (pm->probing || pm->w->d->probe == NULL || !pm->w->inited)
			continue;
		pm->probing = 1;
		struct cb_frame saved = CB_WORKER(pm->w, "probe", 0);
		pm->w->d->probe(pm->w);
		cb_leave(saved);
	}
}

void
porch_worker_probed(porch_worker *w, int healthy)
{
	struct graph *g = w->g;
	double now = ev_now(g->loop);
	for (size_t k = 0; k < g->n_pools; k++) {
		struct pool *p = &g->pools[k];
		for (size_t i = 0; i < p->n; i++) {
			struct pool_member *pm = &p->m[i];
			if (pm->w != w || !pm->probing)
				continue;
			pm->probing = 0;
			if (healthy) {
				member_in(p, i);
				pm->fails = 0;
				keep(pm);
			} else {
				pm->stats->errors[REPLICA_ERR_TRANSPORT]++;
				pm->fails = p->failures;
				member_out(p, i, now);
				keep(pm);
			}
		}
	}
}

/* ---- routing ----------------------------------------------------------- */

/* The prompt's size in tokens as the inference stage's context-limit
 * estimates it: 4 bytes a token, plus max-tokens. */
static long long
estimate_tokens(const struct porch_msg *m)
{
	const char *mt = porch_msg_meta(m, "max-tokens");
	return (long long)((m->text_len + 3) / 4) + (mt != NULL ? atoll(mt) : 0);
}

/* Members m is too long for. */
static uint64_t
too_long(const struct pool *p, const struct porch_msg *m)
{
	uint64_t out = 0;
	long long est = -1;
	for (size_t i = 0; i < p->n; i++) {
		if (p->m[i].context_limit <= 0)
			continue;
		if (est < 0)
			est = estimate_tokens(m);
		if (est > p->m[i].context_limit)
			out |= 1ull << i;
	}
	return out;
}

static const char *
routing_key(const struct pool *p, const struct porch_msg *m, size_t *len)
{
	if (p->bal.policy == BAL_SESSION) {
		const char *s = m->session ? m->session : "";
		*len = strlen(s);
		return s;
	}
	if (p->bal.policy == BAL_PREFIX) {
		*len = m->text_len;
		return m->text;
	}
	*len = 0;
	return NULL;
}

/* A member of p (a fallback: no memory of tries), or -1. */
static int
pick_in(struct pool *p, const struct porch_msg *m, uint64_t avoid)
{
	refresh(p, ev_now(p->g->loop));
	size_t len;
	const char *key = routing_key(p, m, &len);
	return balance_pick(&p->bal, key, len, too_long(p, m), avoid);
}

/* p's fallbacks from the k-th on, depth-first into pools; 0 with t and
 * *used (the index in p's list) filled, or -1. */
static int
route_fallback(struct pool *p, size_t k, struct porch_stage *st, struct porch_msg *m,
    struct pool_target *t, size_t *used)
{
	size_t inner;
	for (; k < p->n_fb; k++) {
		*used = k;
		if (p->fb_workers[k] != NULL) {
			p->stats->fallbacks++;
			porch_msg_event(st, m, PORCH_EVENT_FALLBACK, "pool '%s' -> worker '%s'",
			    p->name, p->fb_workers[k]->name);
			t->w = p->fb_workers[k];
			t->pool = NULL;
			t->member = -1;
			return 0;
		}
		struct pool *o = p->fb_pools[k];
		int i = pick_in(o, m, 0);
		if (i >= 0) {
			porch_msg_event(st, m, PORCH_EVENT_FALLBACK, "pool '%s' -> pool '%s' "
			    "(worker '%s')", p->name, o->name, o->m[i].w->name);
			t->w = o->m[i].w;
			t->pool = o;
			t->member = i;
			o->stats->calls++;
			p->stats->fallbacks++;
			return 0;
		}
		porch_msg_event(st, m, PORCH_EVENT_FALLBACK, "pool '%s' -> pool '%s': "
		    "no member available", p->name, o->name);
		if (route_fallback(o, 0, st, m, t, &inner) == 0) {
			p->stats->fallbacks++;
			return 0;
		}
	}
	return -1;
}

int
pool_route(struct pool *p, struct porch_stage *st, struct porch_msg *m,
    struct pool_target *t, enum porch_error *err, char *why, size_t whylen)
{
	double now = ev_now(p->g->loop);
	refresh(p, now);
	p->stats->calls++;
	if (m->pool_at != p) {
		msg_rare(m);
		m->pool_at = p;
		m->pool_tried = 0;
		m->pool_last = -1;
		m->pool_fb = 0;
	}
	uint64_t hard = too_long(p, m);
	uint64_t fits = ~hard & (p->n == 64 ? ~0ull : (1ull << p->n) - 1);
	/* every member it fits tried (and failed): on to the fallbacks */
	int done_here = m->pool_fb > 0 || (m->pool_tried != 0 &&
	    (fits & ~m->pool_tried) == 0 && p->n_fb > 0);
	int i = -1;
	if (!done_here) {
		size_t len;
		const char *key = routing_key(p, m, &len);
		uint64_t soft = (fits & ~m->pool_tried) != 0 ? m->pool_tried :
		    m->pool_tried != 0 ? 1ull << m->pool_last : 0;
		i = balance_pick(&p->bal, key, len, hard, soft);
	}
	if (i >= 0) {
		m->pool_tried |= 1ull << i;
		m->pool_last = i;
		t->w = p->m[i].w;
		t->pool = p;
		t->member = i;
		return 0;
	}
	/* the fallbacks in order: a retry after one failed goes to the next,
	 * and stays with the last when none is left */
	size_t used;
	if (route_fallback(p, m->pool_fb, st, m, t, &used) == 0 ||
	    (m->pool_fb > 0 && route_fallback(p, m->pool_fb - 1, st, m, t, &used) == 0)) {
		m->pool_fb = (unsigned)used + 1;
		return 0;
	}
	if (fits == 0) {
		*err = PORCH_ERR_BAD_REQUEST;
		snprintf(why, whylen, "the prompt is about %lld tokens (with max-tokens): "
		    "more than the context-limit of every member of pool '%s'",
		    estimate_tokens(m), p->name);
		return -1;
	}
	p->stats->unavailable++;
	*err = PORCH_ERR_UPSTREAM;
	msg_rare(m);
	m->status = 503;
	porch_msg_set_meta(m, "pool-unavailable", p->name);
	double wait = p->next_back > now ? p->next_back - now : 0;
	m->retry_after_ms = (int64_t)ceil(wait * 1000.0);
	if (m->retry_after_ms < 1)
		m->retry_after_ms = 1;
	snprintf(why, whylen, "pool '%s': every member is ejected (the first returns "
	    "in %lld ms)", p->name, (long long)m->retry_after_ms);
	return -1;
}

/*
 * Members that can take a call and are well: up, and not failing in a row
 * past `failures` (one that max-ejected-percent keeps in takes calls all
 * the same, but is not counted here, so a pool whose every member fails is
 * not ready even when the cap leaves some in).
 */
static size_t
pool_well(struct pool *p)
{
	refresh(p, ev_now(p->g->loop));
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		if ((p->bal.up >> i) & 1 && (p->failures == 0 || p->m[i].fails < p->failures))
			n++;
	return n;
}

/* p, or one of its fallbacks, can take a call now and has a member well. */
static int
pool_available(struct pool *p)
{
	if (pool_well(p) > 0)
		return 1;
	for (size_t k = 0; k < p->n_fb; k++)
		if (p->fb_workers[k] != NULL || pool_available(p->fb_pools[k]))
			return 1;
	return 0;
}

const char *
porch_stage_pipeline_unready(const porch_stage *st)
{
	struct graph *g = st->g;
	for (size_t i = 0; i < g->n_stages; i++) {
		struct pool *p = g->stages[i].pool;
		if (p != NULL && !pool_available(p))
			return p->name;
	}
	return NULL;
}
