/*
 * metrics.c -- the http source's own metrics, in the Prometheus text format
 * after the pipeline's (porch_metrics_text) on GET /metrics:
 *
 *   porch_http_requests_total{stage,endpoint,code}   answers by endpoint and status
 *   porch_http_connections_open{stage}               connections open now
 *   porch_http_connections_total{stage}              connections accepted
 *   porch_http_connections_refused_total{stage}      refused over max-connections
 *   porch_http_received_bytes_total{stage}           bytes read from clients
 *   porch_http_sent_bytes_total{stage}               bytes written to clients
 *   porch_http_requests_waiting{stage}               requests waiting for room
 *   porch_http_tasks{stage}                          tasks kept (any status)
 *   porch_http_inflight_bytes{stage}                 bytes requests in flight hold
 *   porch_http_inflight_bytes_peak{stage}            the most they have held
 *   porch_http_inflight_bytes_max{stage}             max-inflight-bytes (0: no bound)
 *
 * Status 499 counts requests whose client went away before the answer.
 * Counters go on across reloads (see struct tally).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static const int codes[] = {
	200, 202, 204, 400, 401, 404, 405, 408, 413, 414, 429, 431, 499, 500, 502, 503, 504, 505
};
#define N_CODES (sizeof codes / sizeof codes[0])
#define CODE_OTHER N_CODES /* any other status: the table's last column */
_Static_assert(N_CODES < HTTP_CODE_COLUMNS, "struct http_src's requests has a column per code");

static size_t
code_index(int status)
{
	for (size_t i = 0; i < N_CODES; i++)
		if (codes[i] == status)
			return i;
	return CODE_OTHER;
}

void
metrics_count(struct http_src *s, enum route r, int status)
{
	if (r < 0 || r >= R_COUNT)
		r = R_OTHER;
	s->requests[r][code_index(status)]++;
}

/*
 * Counters across reloads.  A reload makes a new instance of the stage while
 * the old one finishes; a counter must go on from where it was, never back.
 * So the instances of one stage name (in this loaded plugin) are listed, a
 * freed one leaves its counts behind, and what is shown is the sum.
 */
struct tally {
	struct tally *next;
	char *name;
	uint64_t requests[R_COUNT][HTTP_CODE_COLUMNS];
	uint64_t conns_total, conns_refused, bytes_in, bytes_out;
};

static struct tally *left;         /* counts of freed instances, by name */
static struct http_src *instances; /* every live instance, every shard's */
static pthread_mutex_t instances_lock = PTHREAD_MUTEX_INITIALIZER;

void
http_instances_lock(void)
{
	pthread_mutex_lock(&instances_lock);
}

void
http_instances_unlock(void)
{
	pthread_mutex_unlock(&instances_lock);
}

int
http_same_shard(const struct http_src *a, const struct http_src *b)
{
	return porch_stage_shard(a->st, NULL) == porch_stage_shard(b->st, NULL);
}

static void
tally_add(struct tally *t, const struct http_src *s)
{
	for (int r = 0; r < R_COUNT; r++)
		for (size_t i = 0; i < HTTP_CODE_COLUMNS; i++)
			t->requests[r][i] += s->requests[r][i];
	t->conns_total += s->w.conns_total;
	t->conns_refused += s->w.conns_refused;
	t->bytes_in += s->w.bytes_in;
	t->bytes_out += s->w.bytes_out;
}

static void
tally_add_tally(struct tally *t, const struct tally *o)
{
	for (int r = 0; r < R_COUNT; r++)
		for (size_t i = 0; i < HTTP_CODE_COLUMNS; i++)
			t->requests[r][i] += o->requests[r][i];
	t->conns_total += o->conns_total;
	t->conns_refused += o->conns_refused;
	t->bytes_in += o->bytes_in;
	t->bytes_out += o->bytes_out;
}

static struct tally *
left_by(const char *name, int make)
{
	for (struct tally *t = left; t != NULL; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	if (!make)
		return NULL;
	struct tally *t = calloc(1, sizeof *t);
	if (t == NULL || (t->name = strdup(name)) == NULL) {
		free(t);
		return NULL;
	}
	t->next = left;
	left = t;
	return t;
}

struct http_src *
http_instances(void)
{
	return instances;
}

void
metrics_attach(struct http_src *s)
{
	pthread_mutex_lock(&instances_lock);
	s->next_instance = instances;
	instances = s;
	pthread_mutex_unlock(&instances_lock);
}

void
metrics_detach(struct http_src *s)
{
	pthread_mutex_lock(&instances_lock);
	struct http_src **pp = &instances;
	while (*pp != NULL && *pp != s)
		pp = &(*pp)->next_instance;
	if (*pp == NULL) {
		pthread_mutex_unlock(&instances_lock);
		return;
	}
	*pp = s->next_instance;
	struct tally *t = left_by(s->name, 1);
	if (t != NULL)
		tally_add(t, s); /* out of memory: the counts go (a reset, not a lie) */
	if (instances == NULL) {
		/* the last one: nothing will ask again (porch exits, or the
		 * plugin is no longer in the pipeline) */
		while (left != NULL) {
			struct tally *next = left->next;
			free(left->name);
			free(left);
			left = next;
		}
	}
	pthread_mutex_unlock(&instances_lock);
}

/* The pipeline's metrics and ours, malloc'ed; NULL when out of memory. */
static char *
metrics_text(struct http_src *s)
{
	char *base = porch_metrics_text(s->st);
	if (base == NULL)
		return NULL;
	struct buf b = { 0 };
	buf_str(&b, base);
	free(base);
	if (b.len > 0 && b.p[b.len - 1] != '\n')
		buf_str(&b, "\n");
	const char *st = s->name;
	buf_str(&b, "# HELP porch_http_requests_total HTTP requests answered, by endpoint and "
	    "status code (499: the client left first).\n"
	    "# TYPE porch_http_requests_total counter\n");
	/* this stage's counts: every instance's, the freed ones' too */
	struct tally sum;
	memset(&sum, 0, sizeof sum);
	unsigned open = 0;
	/* with threads, every shard's instances: the process's counts */
	pthread_mutex_lock(&instances_lock);
	for (struct http_src *o = instances; o != NULL; o = o->next_instance) {
		if (strcmp(o->name, s->name) == 0) {
			tally_add(&sum, o);
			open += o->w.n_conns;
		}
	}
	const struct tally *gone = left_by(s->name, 0);
	if (gone != NULL)
		tally_add_tally(&sum, gone);
	pthread_mutex_unlock(&instances_lock);
	for (int r = 0; r < R_COUNT; r++) {
		for (size_t i = 0; i <= N_CODES; i++) {
			uint64_t n = sum.requests[r][i];
			if (n == 0)
				continue;
			char code[8];
			if (i == CODE_OTHER)
				snprintf(code, sizeof code, "other");
			else
				snprintf(code, sizeof code, "%d", codes[i]);
			buf_printf(&b, "porch_http_requests_total{stage=\"%s\",endpoint=\"%s\","
			    "code=\"%s\"} %llu\n", st, route_label((enum route)r), code,
			    (unsigned long long)n);
		}
	}
	unsigned waiting = 0;
	for (struct waiting *w = s->wait_head; w != NULL; w = w->next)
		waiting++;
	buf_printf(&b,
	    "# HELP porch_http_connections_open Client connections open now.\n"
	    "# TYPE porch_http_connections_open gauge\n"
	    "porch_http_connections_open{stage=\"%s\"} %u\n"
	    "# HELP porch_http_connections_total Client connections accepted.\n"
	    "# TYPE porch_http_connections_total counter\n"
	    "porch_http_connections_total{stage=\"%s\"} %llu\n"
	    "# HELP porch_http_connections_refused_total Connections refused over max-connections.\n"
	    "# TYPE porch_http_connections_refused_total counter\n"
	    "porch_http_connections_refused_total{stage=\"%s\"} %llu\n"
	    "# HELP porch_http_received_bytes_total Bytes read from clients.\n"
	    "# TYPE porch_http_received_bytes_total counter\n"
	    "porch_http_received_bytes_total{stage=\"%s\"} %llu\n"
	    "# HELP porch_http_sent_bytes_total Bytes written to clients.\n"
	    "# TYPE porch_http_sent_bytes_total counter\n"
	    "porch_http_sent_bytes_total{stage=\"%s\"} %llu\n"
	    "# HELP porch_http_requests_waiting Requests waiting for room in a full block channel.\n"
	    "# TYPE porch_http_requests_waiting gauge\n"
	    "porch_http_requests_waiting{stage=\"%s\"} %u\n"
	    "# HELP porch_http_tasks Tasks kept, in progress or finished.\n"
	    "# TYPE porch_http_tasks gauge\n"
	    "porch_http_tasks{stage=\"%s\"} %u\n",
	    st, open, st, (unsigned long long)sum.conns_total,
	    st, (unsigned long long)sum.conns_refused, st, (unsigned long long)sum.bytes_in,
	    st, (unsigned long long)sum.bytes_out, st, waiting, st, s->n_tasks);
	buf_printf(&b,
	    "# HELP porch_http_inflight_bytes Bytes requests in flight hold: bodies, the texts "
	    "handed to the pipeline, answers not yet written.\n"
	    "# TYPE porch_http_inflight_bytes gauge\n"
	    "porch_http_inflight_bytes{stage=\"%s\"} %llu\n"
	    "# HELP porch_http_inflight_bytes_peak The most bytes requests in flight have held.\n"
	    "# TYPE porch_http_inflight_bytes_peak gauge\n"
	    "porch_http_inflight_bytes_peak{stage=\"%s\"} %llu\n"
	    "# HELP porch_http_inflight_bytes_max max-inflight-bytes: new requests are shed "
	    "above it (0: no bound).\n"
	    "# TYPE porch_http_inflight_bytes_max gauge\n"
	    "porch_http_inflight_bytes_max{stage=\"%s\"} %llu\n",
	    st, (unsigned long long)s->w.held, st, (unsigned long long)s->w.held_peak,
	    st, (unsigned long long)s->w.max_held);
	return b.p;
}

/* GET /metrics: our metrics after the pipeline's, in one exposition. */
void
metrics_get(struct hreq *h)
{
	char *text = metrics_text(h->s);
	if (text == NULL) {
		answer_error(h, 500, NULL, "internal", "out of memory");
		return;
	}
	wire_answer(&h->w, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
	    NULL);
	free(text);
}
