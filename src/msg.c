/*
 * msg.c -- requests in flight: the pool they come from and their accessors.
 *
 * Messages are recycled through a per-graph free list and keep their text,
 * session and error buffers, so after warm-up a request costs no
 * allocation at all, however many stages it passes.  A text or input
 * buffer past MSG_BUF_KEEP is freed instead: kept, every message that
 * ever carried a large request would hold its size for good, and the
 * memory of a run would grow with the number of messages, not with what
 * is in flight.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "util.h"

/* The largest text or input buffer a recycled message keeps. */
#define MSG_BUF_KEEP (64 * 1024)
/* The largest metadata string buffer it keeps. */
#define MSG_META_KEEP 1024

/* A clear message from the pool, without an id. */
static struct porch_msg *
msg_get(struct graph *g)
{
	struct porch_msg *m = g->free_msgs;
	if (m != NULL) {
		g->free_msgs = m->next;
	} else {
		m = xcalloc_line(sizeof *m); /* see struct porch_msg */
		m->all_next = g->all_msgs;
		g->all_msgs = m;
	}
	m->next = NULL;
	if (m->timings == NULL && g->n_stages > 0)
		m->timings = xcalloc(g->n_stages, sizeof *m->timings);
	return m;
}

struct porch_msg *
msg_alloc(struct graph *g)
{
	struct porch_msg *m = msg_get(g);
	m->id = ++g->next_id * g->id_step + g->id_base;
	return m;
}

/*
 * The message of a stage's own call (porch_infer_aside): no request, so
 * neither live nor counted, with no origin; it has m's id and session (m
 * may be NULL) for logs, and goes back with msg_release when the call ends.
 */
struct porch_msg *
msg_aside(struct graph *g, const struct porch_msg *m)
{
	struct porch_msg *a = msg_get(g);
	a->id = m != NULL ? m->id : 0;
	if (m != NULL && m->session_len > 0)
		porch_msg_set_session(a, m->session, m->session_len);
	return a;
}

/* The buffers a copy made its own go: a pooled copy owns none. */
static void
view_drop_own(struct porch_msg *m)
{
	if (!(m->shared & MSG_SHARE_TEXT))
		free(m->text);
	if (!(m->shared & MSG_SHARE_SESSION))
		free(m->session);
	if (!(m->shared & MSG_SHARE_INPUT))
		free(m->input);
	if (!(m->shared & MSG_SHARE_META)) {
		for (size_t i = 0; i < m->meta_slots * 2; i++)
			free(m->meta[i]);
		free(m->meta);
		free(m->meta_size);
		free(m->meta_hash);
	}
	m->shared = MSG_SHARE_ALL; /* the fields are not its own */
}

/* Clears a message for reuse but keeps its buffers. */
void
msg_release(struct graph *g, struct porch_msg *m)
{
	if (m->view) {
		/* a copy that read its request's buffers: nothing of them is
		 * touched (most copies end here, cold, with all four shared) */
		if (m->shared != MSG_SHARE_ALL)
			view_drop_own(m);
	} else {
		/* the metadata's buffers stay for the next request, but large ones */
		for (size_t i = 0; i < m->n_meta * 2; i++)
			if (m->meta_size[i] > MSG_META_KEEP) {
				free(m->meta[i]);
				m->meta[i] = NULL;
				m->meta_size[i] = 0;
			}
		m->n_meta = 0;
		m->meta_bloom = 0;
		m->text_len = 0;
		if (m->text_cap > MSG_BUF_KEEP) {
			free(m->text);
			m->text = NULL;
			m->text_cap = 0;
		}
		if (m->input_cap > MSG_BUF_KEEP) {
			free(m->input);
			m->input = NULL;
			m->input_cap = 0;
		}
		m->session_len = 0;
		m->input_len = 0;
		m->n_timings = 0; /* a copy's are not recorded */
	}
	/* the buffers are not written: the lengths say they are empty, and
	 * a message released is cold, so each write would be a cache miss */
	m->error = PORCH_ERR_NONE;
	if (!m->view)
		m->origin = NULL; /* a copy's is set when it is made */
	m->holder = NULL;
	m->deadline = 0;
	m->cancelled = 0;
	m->traced = 0;
	m->input_is_text = 0;
	m->fan = NULL;
	m->copy = 0;
	if (m->rare) {
		/* the fields past the first lines, only when one was set: a
		 * message is cold when released, and each line is a miss */
		m->pending = NULL;
		m->origin_data = NULL;
		m->attempts = 0;
		m->error_stage = NULL;
		m->status = 0;
		m->retry_after_ms = 0;
		m->error_len = 0;
		m->pool_at = NULL;
		m->pool_tried = 0;
		m->pool_last = -1;
		m->pool_fb = 0;
		m->rare = 0;
	}
	if (m->n_local > 0) {
		memset(m->local, 0, g->n_stages * sizeof *m->local);
		m->n_local = 0;
	}
	if (m->view) {
		m->next = g->free_copies;
		g->free_copies = m;
		return;
	}
	m->next = g->free_msgs;
	g->free_msgs = m;
}

static void
msg_destroy(struct porch_msg *m)
{
	view_drop_own(m); /* what is shared is another message's */
	free(m->error_text);
	free(m->timings);
	free(m->local);
	free(m);
}

void
msg_free_all(struct graph *g)
{
	/* all of them: pooled, in flight, and any a source made but never
	 * handed over */
	struct porch_msg *m, *next;
	for (m = g->all_msgs; m != NULL; m = next) {
		next = m->all_next;
		msg_destroy(m);
	}
	g->all_msgs = NULL;
	g->free_msgs = NULL;
	g->free_copies = NULL;
	g->live = NULL;
}

/* Grows *buf to hold need bytes; capacities double to stay amortised. */
static void
reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap && *buf != NULL)
		return;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	*buf = xrealloc(*buf, n);
	*cap = n;
}

void
msg_set_error(struct porch_msg *m, enum porch_error e, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	size_t len = strlen(tmp);
	msg_rare(m);
	reserve(&m->error_text, &m->error_cap, len + 1);
	memcpy(m->error_text, tmp, len + 1);
	m->error_len = len;
	m->error = e;
}

uint64_t
porch_msg_id(const porch_msg *m)
{
	return m->id;
}

const char *
porch_msg_session(const porch_msg *m)
{
	return m->session_len > 0 ? m->session : "";
}

int
porch_msg_set_session(porch_msg *m, const char *session, size_t len)
{
	if (m->shared & MSG_SHARE_SESSION) {
		/* replaced: session may be the shared bytes, which stay */
		m->shared &= ~MSG_SHARE_SESSION;
		m->session = NULL;
		m->session_cap = 0;
	}
	reserve(&m->session, &m->session_cap, len + 1);
	memcpy(m->session, session, len);
	m->session[len] = '\0';
	m->session_len = len;
	return 0;
}

const char *
porch_msg_text(const porch_msg *m, size_t *len)
{
	if (len)
		*len = m->text_len;
	return m->text_len > 0 ? m->text : "";
}

/*
 * The text is about to change while it is the input still: the input
 * takes the text's buffer as it is, and the text the input's (spare)
 * buffer.  So a request's input costs no copy when it is emitted (a 10 MB
 * prompt is not copied there), only a swap if and when a stage rewrites it.
 */
static void
msg_input_apart(struct porch_msg *m)
{
	if (!m->input_is_text)
		return;
	/* a copy: the shared text becomes the shared input, and its text
	 * starts from no buffer of its own */
	int text_shared = (m->shared & MSG_SHARE_TEXT) != 0;
	char *b = (m->shared & MSG_SHARE_INPUT) ? NULL : m->input;
	size_t cap = b != NULL ? m->input_cap : 0;
	m->input = m->text;
	m->input_cap = m->text_cap;
	m->input_len = m->text_len;
	m->text = b;
	m->text_cap = cap;
	m->text_len = 0;
	if (m->text != NULL)
		m->text[0] = '\0';
	m->input_is_text = 0;
	m->shared = (unsigned char)((m->shared & ~(MSG_SHARE_TEXT | MSG_SHARE_INPUT)) |
	    (text_shared ? MSG_SHARE_INPUT : 0));
}

/* A shared text becomes the copy's own: with its bytes (keep), or none
 * (it is about to be replaced; the shared bytes stay readable meanwhile). */
static void
own_text(struct porch_msg *m, int keep)
{
	if (!(m->shared & MSG_SHARE_TEXT))
		return;
	const char *t = m->text;
	size_t n = m->text_len;
	m->shared &= ~MSG_SHARE_TEXT;
	m->text = NULL;
	m->text_cap = 0;
	m->text_len = 0;
	if (!keep)
		return;
	reserve(&m->text, &m->text_cap, n + 1);
	memcpy(m->text, t != NULL ? t : "", n);
	m->text[n] = '\0';
	m->text_len = n;
}

int
porch_msg_set_text(porch_msg *m, const char *text, size_t len)
{
	/* text may point into the text: after the swap it is the input's */
	msg_input_apart(m);
	own_text(m, 0);
	reserve(&m->text, &m->text_cap, len + 1);
	memmove(m->text, text, len);
	m->text[len] = '\0';
	m->text_len = len;
	return 0;
}

int
porch_msg_append_text(porch_msg *m, const char *text, size_t len)
{
	if (m->input_is_text) {
		/* the text goes on from the input, which keeps the buffer */
		msg_input_apart(m);
		reserve(&m->text, &m->text_cap, m->input_len + 1);
		memcpy(m->text, m->input, m->input_len);
		m->text_len = m->input_len;
		m->text[m->text_len] = '\0';
	}
	own_text(m, 1);
	reserve(&m->text, &m->text_cap, m->text_len + len + 1);
	memcpy(m->text + m->text_len, text, len);
	m->text_len += len;
	m->text[m->text_len] = '\0';
	return 0;
}

/*
 * Metadata: pairs of strings, each in a buffer kept from request to
 * request (a request sets a dozen: a malloc and a free each would cost
 * more than the rest of its hop), and each key's hash beside it, so that a
 * lookup (a worker reads a dozen settings) compares strings only on a
 * hash that matches.
 */
static uint32_t
key_hash(const char *key)
{
	/* the length and the first and last 8 bytes: keys are short names
	 * ("max-tokens", "openai.request"), told apart by these, and a lookup
	 * (a dozen a hop) is paid mostly in hashing its key byte by byte */
	size_t len = strlen(key);
	uint64_t a = 0, b = 0;
	if (len >= 8) {
		memcpy(&a, key, 8);
		memcpy(&b, key + len - 8, 8);
	} else {
		memcpy(&a, key, len);
	}
	uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ len) * 0xff51afd7ed558ccdull;
	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* A key's two bits in meta_bloom.  A worker asks for a dozen settings a
 * request, most of them not set: with ~20 keys set, four lookups in five
 * for a missing key end here without scanning the pairs. */
static inline uint64_t
meta_bits(uint32_t h)
{
	return (1ull << (h & 63)) | (1ull << ((h >> 6) & 63));
}

static void
meta_put(struct porch_msg *m, size_t i, const char *s)
{
	size_t len = strlen(s) + 1;
	if (m->meta_size[i] < len) {
		/* s may be inside the old buffer: copied before it goes */
		size_t size = len < 32 ? 32 : len;
		char *b = xmalloc(size);
		memcpy(b, s, len);
		free(m->meta[i]);
		m->meta[i] = b;
		m->meta_size[i] = size;
		return;
	}
	memmove(m->meta[i], s, len);
}

const char *
porch_msg_meta(const porch_msg *m, const char *key)
{
	uint32_t h = key_hash(key);
	uint64_t bits = meta_bits(h);
	if ((m->meta_bloom & bits) != bits)
		return NULL;
	for (size_t i = 0; i < m->n_meta; i++)
		if (m->meta_hash[i] == h && strcmp(m->meta[2 * i], key) == 0)
			return m->meta[2 * i + 1];
	return NULL;
}

/* Shared metadata becomes the copy's own (key and value may point into
 * the shared strings: they stay readable). */
static void
own_meta(struct porch_msg *m)
{
	char **meta = m->meta;
	size_t n = m->n_meta;
	m->shared &= ~MSG_SHARE_META;
	m->meta = NULL;
	m->meta_size = NULL;
	m->meta_hash = NULL;
	m->meta_cap = m->meta_slots = m->n_meta = 0;
	m->meta_bloom = 0;
	for (size_t i = 0; i < n; i++)
		porch_msg_set_meta(m, meta[2 * i], meta[2 * i + 1]);
}

int
porch_msg_set_meta(porch_msg *m, const char *key, const char *value)
{
	if (m->shared & MSG_SHARE_META)
		own_meta(m);
	uint32_t h = key_hash(key);
	uint64_t bits = meta_bits(h);
	for (size_t i = 0; (m->meta_bloom & bits) == bits && i < m->n_meta; i++) {
		if (m->meta_hash[i] == h && strcmp(m->meta[2 * i], key) == 0) {
			if (m->meta[2 * i + 1] != value)
				meta_put(m, 2 * i + 1, value);
			return 0;
		}
	}
	if (m->n_meta == m->meta_cap) {
		size_t cap = m->meta_cap ? m->meta_cap * 2 : 4;
		m->meta = xrealloc(m->meta, cap * 2 * sizeof *m->meta);
		m->meta_size = xrealloc(m->meta_size, cap * 2 * sizeof *m->meta_size);
		m->meta_hash = xrealloc(m->meta_hash, cap * sizeof *m->meta_hash);
		for (size_t i = m->meta_cap * 2; i < cap * 2; i++) {
			m->meta[i] = NULL;
			m->meta_size[i] = 0;
		}
		m->meta_cap = cap;
	}
	size_t n = m->n_meta;
	meta_put(m, 2 * n, key);
	meta_put(m, 2 * n + 1, value);
	m->meta_hash[n] = h;
	m->meta_bloom |= meta_bits(h);
	m->n_meta++;
	if (m->meta_slots < m->n_meta)
		m->meta_slots = m->n_meta;
	return 0;
}

const char *
porch_msg_meta_at(const porch_msg *m, size_t i, const char **value)
{
	if (i >= m->n_meta)
		return NULL;
	if (value)
		*value = m->meta[2 * i + 1];
	return m->meta[2 * i];
}

void
porch_msg_set_deadline(porch_msg *m, int64_t ms_from_now)
{
	if (ms_from_now <= 0 || m->origin == NULL) {
		m->deadline = 0;
		return;
	}
	m->deadline = ev_now(m->origin->g->loop) + (double)ms_from_now / 1000.0;
}

double
porch_msg_deadline(const porch_msg *m)
{
	return m->deadline;
}

unsigned
porch_msg_attempts(const porch_msg *m)
{
	return m->attempts;
}

void
porch_msg_add_attempt(porch_msg *m)
{
	msg_rare(m);
	m->attempts++;
}

enum porch_error
porch_msg_error(const porch_msg *m)
{
	return m->error;
}

const char *
porch_msg_error_text(const porch_msg *m)
{
	return m->error_len > 0 ? m->error_text : "";
}

void *
porch_msg_origin_data(const porch_msg *m)
{
	return m->origin_data;
}

void
porch_msg_set_origin_data(porch_msg *m, void *data)
{
	msg_rare(m);
	m->origin_data = data;
}

const char *
porch_outcome_name(enum porch_outcome o)
{
	switch (o) {
	case PORCH_COMPLETED: return "completed";
	case PORCH_FAILED: return "failed";
	case PORCH_SHED: return "shed";
	case PORCH_EXPIRED: return "expired";
	}
	return "unknown";
}

const char *
porch_error_name(enum porch_error e)
{
	switch (e) {
	case PORCH_ERR_NONE: return "none";
	case PORCH_ERR_BAD_REQUEST: return "bad-request";
	case PORCH_ERR_TIMEOUT: return "timeout";
	case PORCH_ERR_UPSTREAM: return "upstream";
	case PORCH_ERR_TRANSPORT: return "transport";
	case PORCH_ERR_CANCELLED: return "cancelled";
	case PORCH_ERR_INTERNAL: return "internal";
	case PORCH_ERR_FULL: return "full";
	case PORCH_ERR_ADMISSION: return "admission";
	case PORCH_ERR_DEADLINE: return "deadline";
	case PORCH_ERR_UNROUTED: return "unrouted";
	}
	return "unknown";
}

/* ---- ABI 1.1 ------------------------------------------------------------ */

/* The text as it is now is the input: shared until it changes (see
 * msg_input_apart). */
void
msg_keep_input(struct porch_msg *m)
{
	m->input_is_text = 1;
	m->input_len = m->text_len;
}

const char *
porch_msg_input(const porch_msg *m, size_t *len)
{
	if (m->input_is_text)
		return porch_msg_text(m, len);
	if (len)
		*len = m->input_len;
	return m->input_len > 0 ? m->input : "";
}

const char *
porch_msg_error_stage(const porch_msg *m)
{
	return m->error_stage ? m->error_stage->name : "";
}

int
porch_msg_status(const porch_msg *m)
{
	return m->status;
}

int64_t
porch_msg_retry_after(const porch_msg *m)
{
	return m->retry_after_ms;
}

const char *
porch_msg_timing_at(const porch_msg *m, size_t i, double *ms)
{
	if (i >= m->n_timings || m->origin == NULL)
		return NULL;
	if (ms)
		*ms = m->timings[i].ms;
	return m->origin->g->stages[m->timings[i].stage].name;
}

void *
porch_msg_local(const porch_stage *st, const porch_msg *m)
{
	if (m->local == NULL)
		return NULL;
	return m->local[st - st->g->stages];
}

void
porch_msg_set_local(porch_stage *st, porch_msg *m, void *local)
{
	size_t i = (size_t)(st - st->g->stages);
	if (m->local == NULL) {
		if (local == NULL)
			return;
		m->local = xcalloc(st->g->n_stages, sizeof *m->local);
	}
	if (m->local[i] == NULL && local != NULL)
		m->n_local++;
	else if (m->local[i] != NULL && local == NULL)
		m->n_local--;
	m->local[i] = local;
}

void
msg_forget_locals(struct graph *g, struct porch_msg *m)
{
	for (size_t i = 0; i < g->n_stages && m->n_local > 0; i++) {
		void *local = m->local[i];
		if (local == NULL)
			continue;
		m->local[i] = NULL;
		m->n_local--;
		struct porch_stage *st = &g->stages[i];
		if (st->d->forget != NULL) {
			struct cb_frame saved = CB_STAGE(st, "forget", m->id);
			st->d->forget(st, m, local);
			cb_leave(saved);
		}
	}
}

/*
 * A copy of m for a fan-out: text, session, metadata, input, deadline,
 * origin and id (a copy is the same request), but no origin data (a copy
 * never answers a client) and no error.  It reads m's buffers (shared,
 * see MSG_SHARE_TEXT) until a stage changes it: a copy that goes on
 * unchanged (most do, into a join) costs no copy of its bytes, and is one
 * struct in few cache lines, from a pool of its own whose messages own
 * no buffers.
 */
struct porch_msg *
msg_clone(struct graph *g, const struct porch_msg *m)
{
	struct porch_msg *c = g->free_copies;
	if (c != NULL) {
		g->free_copies = c->next;
		/* copies are made in a row: the next one's two lines are
		 * fetched while this one is filled */
		if (c->next != NULL) {
			__builtin_prefetch(c->next, 1);
			__builtin_prefetch((char *)c->next + 64, 1);
		}
	} else {
		c = xcalloc_line(sizeof *c);
		c->all_next = g->all_msgs;
		g->all_msgs = c;
		c->view = 1;
	}
	c->next = NULL;
	c->id = m->id;
	c->text = m->text;
	c->text_len = m->text_len;
	c->session = m->session;
	c->session_len = m->session_len;
	c->n_meta = m->n_meta;
	c->meta_bloom = m->meta_bloom;
	if (m->n_meta > 0) {
		/* without pairs these are not read: a line not touched */
		c->meta = m->meta;
		c->meta_size = m->meta_size;
		c->meta_hash = m->meta_hash;
	}
	c->shared = MSG_SHARE_ALL;
	if (m->input_is_text) {
		c->input_is_text = 1; /* the copy's text is the same bytes */
	} else {
		c->input = m->input;
		c->input_len = m->input_len;
	}
	c->deadline = m->deadline;
	c->origin = m->origin;
	c->traced = m->traced;
	c->cancelled = m->cancelled;
	return c;
}

void
msg_unshare(struct porch_msg *m)
{
	if (m->shared == 0)
		return;
	if (m->shared & MSG_SHARE_META)
		own_meta(m);
	if (m->shared & MSG_SHARE_SESSION) {
		const char *s = m->session;
		porch_msg_set_session(m, s != NULL ? s : "", m->session_len);
	}
	own_text(m, 1);
	if (m->shared & MSG_SHARE_INPUT) {
		const char *in = m->input;
		size_t n = m->input_len;
		m->shared &= ~MSG_SHARE_INPUT;
		m->input = NULL;
		m->input_cap = 0;
		if (!m->input_is_text) {
			char *b = xmalloc(n + 1);
			memcpy(b, in != NULL ? in : "", n);
			b[n] = '\0';
			m->input = b;
			m->input_cap = n + 1;
		}
	}
}

/*
 * a takes b's text, metadata and answer fields, b a's (to be released).
 * What b shares is a's already (b is a's copy, unchanged there): it stays.
 */
void
msg_swap_answer(struct porch_msg *a, struct porch_msg *b)
{
#define SWAP(f) do { __typeof__(a->f) t_ = a->f; a->f = b->f; b->f = t_; } while (0)
	if (!(b->shared & MSG_SHARE_TEXT)) {
		/* an input that is its text stays with its message */
		msg_input_apart(a);
		msg_input_apart(b);
		SWAP(text);
		SWAP(text_len);
		SWAP(text_cap);
	}
	if (!(b->shared & MSG_SHARE_META)) {
		SWAP(meta);
		SWAP(n_meta);
		SWAP(meta_cap);
		SWAP(meta_size);
		SWAP(meta_hash);
		SWAP(meta_bloom);
		SWAP(meta_slots);
	}
	if (a->rare || b->rare) {
		/* both zero otherwise: their line is not touched */
		msg_rare(a);
		msg_rare(b);
		SWAP(status);
		SWAP(retry_after_ms);
	}
#undef SWAP
}
