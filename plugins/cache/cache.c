/*
 * cache.c -- stage: a response cache in front of inference, in two roles
 * sharing a store by name (table.h).
 *
 *   lookup  before inference: a request asked before (the same key) is
 *           answered from the store and leaves by out, streamed as it
 *           streamed the first time; any other leaves by miss, towards
 *           inference, and the lookup keeps its key (a pending miss) on
 *           the message until it ends.
 *   store   after inference: passes everything on, pieces included, and
 *           stores the answer of a pending miss that arrives completed,
 *           with the pieces it streamed in.
 *
 * Why "out" is the answer's port and "miss" the other: pieces a stage
 * streams (porch_stream_piece) go down its first port, so the port a
 * cached answer streams down must be first, and a store stage's only
 * port is out.
 *
 * A pending miss is found by the store through its message (the map in
 * table.h), not through metadata: only a request the lookup missed can
 * have its answer stored, under the key the lookup made of it, whatever a
 * client or a stage puts in metadata.  A message that fails or is cut on
 * the way ends elsewhere, and the lookup's forget callback drops its
 * pending miss and the pieces gathered for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <jansson.h>
#include <porch/plugin.h>

#include "sha256.h"
#include "table.h"

enum role { ROLE_LOOKUP, ROLE_STORE };

/* The answer's metadata a store keeps and a hit gives back (plugin.h). */
static const char *const answer_meta[] = {
	"finish-reason", "usage", "openai.extra", "openai.choice", "openai.message",
	"openai.choices",
};
#define N_ANSWER_META (sizeof answer_meta / sizeof answer_meta[0])

/* The metadata that is part of every key: what the workers generate from. */
static const char *const key_meta[] = {
	"model", "system", "messages", "max-tokens", "temperature", "top-p", "stop", "seed",
};
#define N_KEY_META (sizeof key_meta / sizeof key_meta[0])

struct pend;

struct cache {
	porch_stage *st;
	struct ev_loop *loop;
	enum role role;
	struct cache_table *t;
	int miss_port;          /* lookup */
	char **keys;            /* lookup: more metadata in the key */
	size_t n_keys;
	int per_session;        /* lookup: the session too */
	struct pend *pends;     /* lookup: its pending misses */
};

/*
 * A request the lookup missed: its key, and what the store has seen of its
 * answer stream so far.  The piece texts are not kept: their digest and
 * length tell, when the message arrives, whether they made up its text.
 */
struct pend {
	struct cache_link link;   /* first: the table finds it by its message */
	struct pend *prev, *next; /* the lookup stage's */
	struct cache *owner;
	unsigned char key[SHA256_SIZE];
	struct sha256 streamed;
	size_t streamed_len;
	struct cache_piece *pieces;
	size_t n_pieces, cap_pieces;
	char *extras;
	size_t extras_len, cap_extras;
	int no_pieces;            /* out of memory: the answer is kept whole */
	int too_big;              /* its stream outgrew the store */
};

static const struct porch_param cache_params[] = {
	{ "role", PORCH_PARAM_ENUM, NULL, 0, 0, "lookup|store", PORCH_PARAM_REQUIRED,
	  "lookup: before inference, answers what was asked before; store: after "
	  "inference, keeps the answers" },
	{ "name", PORCH_PARAM_STRING, "cache", 0, 0, NULL, 0,
	  "the store: a lookup and a store stage of the same name share it" },
	{ "max-bytes", PORCH_PARAM_SIZE, "64M", 0, 1099511627776.0, NULL, 0,
	  "lookup: most bytes the store holds; the least recently used answers go first" },
	{ "ttl", PORCH_PARAM_DURATION, "1h", 0, 31536000000.0, NULL, 0,
	  "lookup: how long an answer is given out after it was stored; 0: no limit" },
	{ "keys", PORCH_PARAM_LIST, NULL, 0, 0, NULL, 0,
	  "lookup: more metadata keys whose values are part of the key" },
	{ "per-session", PORCH_PARAM_BOOLEAN, "no", 0, 0, NULL, 0,
	  "lookup: the session is part of the key: sessions share no answers" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static const char *const lookup_only[] = { "max-bytes", "ttl", "keys", "per-session" };

/* Calls one(item, len, arg) for each comma-separated item, spaces trimmed. */
static int
each_item(const char *list, int (*one)(const char *, size_t, void *), void *arg)
{
	const char *p = list;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		while (n > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			n--;
		}
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (one(s, n, arg) != 0)
			return -1;
		if (end == NULL)
			return 0;
		p = end + 1;
	}
}

static int
item_empty(const char *s, size_t n, void *arg)
{
	(void)s;
	(void)arg;
	return n == 0 ? -1 : 0;
}

static int
cache_check(const porch_params *p, porch_check *c)
{
	int bad = 0;
	if (strcmp(porch_param_str(p, "role"), "store") == 0) {
		for (size_t i = 0; i < sizeof lookup_only / sizeof lookup_only[0]; i++) {
			if (!porch_param_isset(p, lookup_only[i]))
				continue;
			porch_check_error(c, lookup_only[i], "%s is the lookup's: a store stage "
			    "takes only name, and keeps answers under the key and within the "
			    "bounds its lookup stage sets", lookup_only[i]);
			bad = 1;
		}
		return bad ? -1 : 0;
	}
	if (porch_param_int(p, "max-bytes") == 0) {
		porch_check_error(c, "max-bytes", "a cache with a zero size holds nothing: "
		    "give max-bytes a size (e.g. 64M), or take the cache out of the pipeline");
		bad = 1;
	}
	const char *keys = porch_param_str(p, "keys");
	if (keys != NULL && each_item(keys, item_empty, NULL) != 0) {
		porch_check_error(c, "keys", "'%s' has an empty key: give metadata keys, "
		    "separated by commas", keys);
		bad = 1;
	}
	if (*porch_param_str(p, "name") == '\0') {
		porch_check_error(c, "name", "the store's name is empty");
		bad = 1;
	}
	return bad ? -1 : 0;
}

/* ---- the key ----------------------------------------------------------- */

/* One part of the key: its name, whether it is there, its length, its bytes. */
static void
key_field(struct sha256 *s, const char *name, const char *v, size_t len)
{
	unsigned char n[9];
	sha256_add(s, name, strlen(name) + 1);
	n[0] = v != NULL;
	for (int i = 0; i < 8; i++)
		n[1 + i] = (unsigned char)((uint64_t)(v ? len : 0) >> (56 - 8 * i));
	sha256_add(s, n, sizeof n);
	if (v != NULL && len > 0)
		sha256_add(s, v, len);
}

/*
 * An OpenAI request as a key: its members but "stream" and
 * "stream_options", sorted, compact, so that the same request asked
 * streamed and whole, or with other spacing or order, is one key.
 */
static void
key_request(struct sha256 *s, const char *doc)
{
	json_t *root = json_loads(doc, 0, NULL);
	char *canon = NULL;
	if (json_is_object(root)) {
		json_object_del(root, "stream");
		json_object_del(root, "stream_options");
		canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	}
	json_decref(root);
	if (canon != NULL)
		key_field(s, "openai.request", canon, strlen(canon));
	else
		key_field(s, "openai.request:raw", doc, strlen(doc));
	free(canon);
}

static void
key_of(const struct cache *c, porch_msg *m, unsigned char key[SHA256_SIZE])
{
	struct sha256 s;
	size_t len;
	sha256_init(&s);
	sha256_add(&s, "porch cache 1", 14);
	const char *text = porch_msg_text(m, &len);
	key_field(&s, "text", text ? text : "", text ? len : 0);
	for (size_t i = 0; i < N_KEY_META; i++) {
		const char *v = porch_msg_meta(m, key_meta[i]);
		key_field(&s, key_meta[i], v, v ? strlen(v) : 0);
	}
	for (size_t i = 0; i < c->n_keys; i++) {
		const char *v = porch_msg_meta(m, c->keys[i]);
		/* as "meta:KEY", apart from the fixed ones */
		sha256_add(&s, "meta:", 5);
		key_field(&s, c->keys[i], v, v ? strlen(v) : 0);
	}
	if (c->per_session) {
		const char *v = porch_msg_session(m);
		key_field(&s, "session", v, v ? strlen(v) : 0);
	}
	const char *doc = porch_msg_meta(m, "openai.request");
	if (doc != NULL)
		key_request(&s, doc);
	sha256_done(&s, key);
}

/* ---- pending misses ---------------------------------------------------- */

static void
pend_free(struct pend *p)
{
	struct cache *c = p->owner;
	cache_link_del(c->t, &p->link);
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		c->pends = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	free(p->pieces);
	free(p->extras);
	free(p);
}

static struct pend *
pend_new(struct cache *c, porch_msg *m, const unsigned char key[SHA256_SIZE])
{
	struct pend *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->owner = c;
	memcpy(p->key, key, SHA256_SIZE);
	sha256_init(&p->streamed);
	cache_link_add(c->t, &p->link, m);
	p->next = c->pends;
	if (c->pends != NULL)
		c->pends->prev = p;
	c->pends = p;
	return p;
}

/* An extra's text into p->extras, NUL-ended; its offset, -1 for none, -2 out of memory. */
static int64_t
pend_extra(struct pend *p, const char *s)
{
	if (s == NULL)
		return -1;
	size_t n = strlen(s) + 1;
	if (p->cap_extras - p->extras_len < n) {
		size_t cap = p->cap_extras ? p->cap_extras : 256;
		while (cap - p->extras_len < n)
			cap *= 2;
		char *e = realloc(p->extras, cap);
		if (e == NULL)
			return -2;
		p->extras = e;
		p->cap_extras = cap;
	}
	memcpy(p->extras + p->extras_len, s, n);
	p->extras_len += n;
	return (int64_t)(p->extras_len - n);
}

/* A piece of the pending answer, as the store stage passes it on. */
static void
pend_piece(struct pend *p, const char *text, size_t len, const struct porch_piece *pc,
    size_t max_bytes)
{
	if (p->too_big)
		return;
	p->streamed_len += len;
	sha256_add(&p->streamed, text, len);
	if (p->no_pieces)
		return;
	if (p->streamed_len + p->extras_len + p->n_pieces * sizeof *p->pieces > max_bytes) {
		p->too_big = 1; /* it would not be stored: keep nothing more */
		return;
	}
	if (p->n_pieces == p->cap_pieces) {
		size_t cap = p->cap_pieces ? p->cap_pieces * 2 : 16;
		struct cache_piece *a = realloc(p->pieces, cap * sizeof *a);
		if (a == NULL) {
			p->no_pieces = 1;
			return;
		}
		p->pieces = a;
		p->cap_pieces = cap;
	}
	struct cache_piece *cp = &p->pieces[p->n_pieces];
	cp->len = len;
	cp->chunk = pend_extra(p, pc ? pc->chunk : NULL);
	cp->choice = pend_extra(p, pc ? pc->choice : NULL);
	cp->delta = pend_extra(p, pc ? pc->delta : NULL);
	if (cp->chunk == -2 || cp->choice == -2 || cp->delta == -2) {
		p->no_pieces = 1;
		return;
	}
	p->n_pieces++;
}

/* ---- lookup ------------------------------------------------------------ */

static int
bypassed(porch_msg *m)
{
	const char *v = porch_msg_meta(m, "cache");
	return v != NULL && (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
	    strcmp(v, "off") == 0 || strcmp(v, "0") == 0);
}

/* A hit: the answer as it was stored, streamed as it streamed, out port out. */
static void
answer_hit(struct cache *c, porch_msg *m, const struct cache_entry *e)
{
	porch_stage *st = c->st;
	int bad = porch_msg_set_text(m, e->text, e->text_len) != 0;
	const char *kv = e->meta;
	for (size_t i = 0; i < e->n_meta; i++) {
		const char *v = kv + strlen(kv) + 1;
		bad |= porch_msg_set_meta(m, kv, v) != 0;
		kv = v + strlen(v) + 1;
	}
	bad |= porch_msg_set_meta(m, "cache", "hit") != 0;
	if (bad) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "could not give the cached answer "
		    "(out of memory)");
		return;
	}
	porch_stage_count(st, "hit", 1);
	/* the stages downstream take the pieces at once: nothing can store or
	 * evict in between, so e stays valid */
	size_t at = 0;
	for (size_t i = 0; i < e->n_pieces; i++) {
		const struct cache_piece *cp = &e->pieces[i];
		struct porch_piece pc = {
			.chunk = cp->chunk >= 0 ? e->extras + cp->chunk : NULL,
			.choice = cp->choice >= 0 ? e->extras + cp->choice : NULL,
			.delta = cp->delta >= 0 ? e->extras + cp->delta : NULL,
		};
		int extras = pc.chunk != NULL || pc.choice != NULL || pc.delta != NULL;
		if (porch_stream_piece(st, m, e->text + at, cp->len, extras ? &pc : NULL) != 0)
			break; /* nobody downstream takes pieces: the text goes whole */
		at += cp->len;
	}
	(void)porch_emit(st, m);
}

static void
lookup_process(struct cache *c, porch_msg *m)
{
	porch_stage *st = c->st;
	if (bypassed(m)) {
		porch_stage_count(st, "bypass", 1);
		(void)porch_emit_port(st, c->miss_port, m);
		return;
	}
	unsigned char key[SHA256_SIZE];
	key_of(c, m, key);
	const struct cache_entry *e = cache_table_find(c->t, key, ev_now(c->loop));
	if (e != NULL) {
		answer_hit(c, m, e);
		return;
	}
	porch_stage_count(st, "miss", 1);
	struct pend *p = pend_new(c, m, key);
	if (p == NULL || porch_msg_set_meta(m, "cache", "miss") != 0) {
		/* answered all the same, only not stored */
		if (p != NULL)
			pend_free(p);
		porch_msg_log(st, m, "out of memory: its answer will not be stored");
	} else {
		porch_msg_set_local(st, m, p);
	}
	(void)porch_emit_port(st, c->miss_port, m);
}

/* The message ended before a store stage took its answer (or never will). */
static void
cache_forget(porch_stage *st, porch_msg *m, void *local)
{
	(void)st;
	(void)m;
	pend_free(local);
}

/* ---- store ------------------------------------------------------------- */

/* The answer's metadata, "KEY\0VALUE\0" each; -1 when out of memory. */
static int
meta_blob(porch_msg *m, char **out, size_t *len, size_t *n)
{
	size_t total = 0;
	*n = 0;
	for (size_t i = 0; i < N_ANSWER_META; i++) {
		const char *v = porch_msg_meta(m, answer_meta[i]);
		if (v != NULL)
			total += strlen(answer_meta[i]) + strlen(v) + 2;
	}
	*len = total;
	*out = NULL;
	if (total == 0)
		return 0;
	char *b = malloc(total), *at = b;
	if (b == NULL)
		return -1;
	for (size_t i = 0; i < N_ANSWER_META; i++) {
		const char *v = porch_msg_meta(m, answer_meta[i]);
		if (v == NULL)
			continue;
		size_t kn = strlen(answer_meta[i]) + 1, vn = strlen(v) + 1;
		memcpy(at, answer_meta[i], kn);
		memcpy(at + kn, v, vn);
		at += kn + vn;
		(*n)++;
	}
	*out = b;
	return 0;
}

/* Stores the answer m carries for pending miss p, if it may be. */
static void
store_answer(struct cache *c, struct pend *p, porch_msg *m)
{
	porch_stage *st = c->st;
	if (porch_msg_error(m) != PORCH_ERR_NONE || porch_msg_cancelled(m))
		return; /* failed, or its client has gone: not an answer to keep */
	size_t len;
	const char *text = porch_msg_text(m, &len);
	if (text == NULL)
		text = "", len = 0;
	if (p->too_big || len > c->t->max_bytes) {
		porch_stage_count(st, "too_big", 1);
		return;
	}
	/* the pieces count only when they made up the text that arrived */
	size_t n_pieces = 0;
	if (!p->no_pieces && p->streamed_len == len && p->n_pieces > 0) {
		unsigned char a[SHA256_SIZE], b[SHA256_SIZE];
		struct sha256 s;
		sha256_init(&s);
		sha256_add(&s, text, len);
		sha256_done(&s, a);
		sha256_done(&p->streamed, b);
		if (memcmp(a, b, SHA256_SIZE) == 0)
			n_pieces = p->n_pieces;
	}
	char *meta;
	size_t meta_len, n_meta;
	struct cache_entry *e = NULL;
	if (meta_blob(m, &meta, &meta_len, &n_meta) == 0)
		e = cache_entry_new(p->key, text, len, p->pieces, n_pieces,
		    n_pieces ? p->extras : NULL, n_pieces ? p->extras_len : 0, meta, meta_len, n_meta);
	free(meta);
	if (e == NULL) {
		porch_msg_log(st, m, "out of memory: its answer is not stored");
		return;
	}
	size_t size = e->size;
	struct cache_changes ch;
	if (cache_table_insert(c->t, e, ev_now(c->loop), &ch) != 0) {
		porch_stage_count(st, "too_big", 1);
		return;
	}
	porch_stage_count(st, "store", 1);
	porch_stage_count(st, "bytes_stored", size);
	if (ch.evicted)
		porch_stage_count(st, "eviction", ch.evicted);
	if (ch.expired)
		porch_stage_count(st, "expired", ch.expired);
	if (ch.bytes_freed)
		porch_stage_count(st, "bytes_evicted", ch.bytes_freed);
}

static void
store_process(struct cache *c, porch_msg *m)
{
	struct cache_link *l = cache_link_find(c->t, m);
	if (l != NULL) {
		struct pend *p = (struct pend *)l;
		/* taken now: the lookup no longer holds it for m */
		porch_msg_set_local(p->owner->st, m, NULL);
		store_answer(c, p, m);
		pend_free(p);
	}
	(void)porch_emit(c->st, m);
}

/* A piece on its way to the client: noted for the store, and passed on. */
static void
cache_piece(porch_stage *st, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc)
{
	struct cache *c = porch_stage_data(st);
	if (c->role == ROLE_STORE) {
		struct cache_link *l = cache_link_find(c->t, m);
		if (l != NULL)
			pend_piece((struct pend *)l, text, len, pc, c->t->max_bytes);
	}
	(void)porch_stream_piece(st, m, text, len, pc);
}

/* ---- the stage ----------------------------------------------------------- */

static void
cache_process(porch_stage *st, porch_msg *m)
{
	struct cache *c = porch_stage_data(st);
	if (c->role == ROLE_LOOKUP)
		lookup_process(c, m);
	else
		store_process(c, m);
}

static int
key_add(const char *s, size_t n, void *arg)
{
	struct cache *c = arg;
	char *k = malloc(n + 1);
	if (k == NULL)
		return -1;
	memcpy(k, s, n);
	k[n] = '\0';
	c->keys[c->n_keys++] = k;
	return 0;
}

static void
cache_free(struct cache *c)
{
	while (c->pends != NULL)
		pend_free(c->pends);
	for (size_t i = 0; i < c->n_keys; i++)
		free(c->keys[i]);
	free(c->keys);
	cache_table_put(c->t);
	free(c);
}

static int
cache_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct cache *c = calloc(1, sizeof *c);
	if (c == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	c->st = st;
	c->loop = porch_stage_loop(st);
	c->role = strcmp(porch_param_str(p, "role"), "store") == 0 ? ROLE_STORE : ROLE_LOOKUP;
	c->miss_port = porch_stage_port(st, "miss");
	/* with threads, a store per shard: a shard's stages touch only its own
	 * (no lock per lookup); "NAME" on shard 0, "NAME@K" on shard K */
	char tname[512];
	unsigned shard = porch_stage_shard(st, NULL);
	if (shard == 0)
		snprintf(tname, sizeof tname, "%s", porch_param_str(p, "name"));
	else
		snprintf(tname, sizeof tname, "%s@%u", porch_param_str(p, "name"), shard);
	c->t = cache_table_get(tname);
	const char *keys = porch_param_str(p, "keys");
	int bad = c->t == NULL;
	if (!bad && keys != NULL) {
		size_t n = 1;
		for (const char *k = keys; *k; k++)
			n += *k == ',';
		c->keys = calloc(n, sizeof *c->keys);
		bad = c->keys == NULL || each_item(keys, key_add, c) != 0;
	}
	if (bad) {
		cache_free(c);
		porch_stage_error(st, "out of memory");
		return -1;
	}
	if (c->role == ROLE_LOOKUP) {
		/* the store's bounds are its lookup's: the latest made (a reload's) */
		cache_table_configure(c->t, (size_t)porch_param_int(p, "max-bytes"),
		    (double)porch_param_int(p, "ttl") / 1000.0);
		c->per_session = porch_param_int(p, "per-session") != 0;
	}
	porch_stage_set_data(st, c);
	return 0;
}

static void
cache_fini(porch_stage *st)
{
	struct cache *c = porch_stage_data(st);
	if (c == NULL)
		return;
	/* no message of this pipeline is in flight any more, and no forget
	 * comes after fini: what is pending is let go here */
	cache_free(c);
	porch_stage_set_data(st, NULL);
}

static const char *const cache_outputs[] = { "out", "miss", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "cache",
	.summary = "answers a request asked before from a store of answers, without the model",
	.params = cache_params,
	.outputs = cache_outputs,
	.init = cache_init,
	.process = cache_process,
	.fini = cache_fini,
	.check = cache_check,
	.forget = cache_forget,
	.piece = cache_piece,
	.description =
	    "A response cache, in two roles that share a store of answers by name "
	    "(with threads, each shard has its own stores: up to max-bytes each, and a "
	    "request repeated on another shard misses there once): "
	    "a stage with role lookup before inference, and one with role store after it. "
	    "Wired: source -> lookup; lookup:miss -> inference -> store -> reply; "
	    "lookup (its port out) -> reply, or to whatever follows the store stage. "
	    "A request whose key was answered before, within ttl, is a hit: the lookup "
	    "gives it the stored answer (its text, and the answer's metadata "
	    "finish-reason, usage, openai.extra, openai.choice, openai.message and "
	    "openai.choices), sets its metadata \"cache\" to \"hit\", and sends it out "
	    "its port out without calling the model. "
	    "An answer that streamed when it was stored streams again, piece by piece "
	    "with the same pieces and extras (tool call deltas, logprobs), so a "
	    "streaming client sees server-sent events as from a live answer, at once. "
	    "Every other request is a miss: its metadata \"cache\" becomes \"miss\" and "
	    "it leaves by the port miss, towards inference. "
	    "Out is the first port because streamed pieces go down a stage's first port "
	    "(porch_stream in porch-plugin(3)); out must be a plain channel for a hit to "
	    "stream (a routed or copied one takes the answer whole).\n\n"
	    "The key is the SHA-256 of what the model is asked: the message text (the "
	    "prompt as it reaches the lookup), the metadata model, system, messages, "
	    "max-tokens, temperature, top-p, stop and seed, the metadata named in keys, "
	    "the session with per-session, and for a request the http source took in "
	    "OpenAI's form its whole body (metadata \"openai.request\") less stream and "
	    "stream_options, its members sorted: the same request asked streamed and "
	    "whole is one entry, and one that differs in any other member (a "
	    "temperature, tools, user, n) is another. "
	    "The generation settings inference fills from its own parameters are not in "
	    "the key (the lookup comes before it); they are the same for every request "
	    "of a pipeline. Metadata that routes requests to different models after the "
	    "lookup belongs in keys. Clients that ask the same thing share its answer; "
	    "per-session (or a key in keys) keeps them apart.\n\n"
	    "The store stage passes every message and piece on unchanged, and stores "
	    "the answer of a request its lookup missed when it arrives completed: never "
	    "one that failed, was cancelled or cut (those end before they reach it), nor "
	    "one the lookup did not miss (a bypass, or a request that came another way), "
	    "whatever the metadata says. An answer with finish reason length is an "
	    "answer like another: max-tokens is in the key. The pieces are kept when "
	    "they make up the text that arrived. A request with metadata \"cache\" "
	    "\"no\" (or false, off, 0) bypasses the cache: the lookup neither answers "
	    "it nor lets its answer be stored; the http source sets it for a request "
	    "with Cache-Control: no-cache or no-store.\n\n"
	    "The store holds at most max-bytes, counting every byte of each entry (the "
	    "answer, its pieces and metadata, and the entry's own bookkeeping); to make "
	    "room for a new answer the least recently used ones go, after any older than "
	    "ttl. An answer larger than max-bytes is not stored. A lookup and a store "
	    "stage share the store when they give the same name (by default \"cache\"); "
	    "max-bytes, ttl, keys and per-session are the lookup's (porch check refuses "
	    "them on a store stage, and refuses max-bytes 0). The store lives in the "
	    "porch process, not on disk, while a stage names it: a reload keeps it, with "
	    "the new lookup's bounds (a smaller max-bytes is met at the next store); "
	    "change its name to start empty.\n\n"
	    "Counted, in the statistics and /metrics "
	    "(porch_stage_events_total{stage, event}): on the lookup, hit, miss and "
	    "bypass; on the store, store (answers stored), eviction (entries removed for "
	    "room), expired (entries removed past ttl), too_big, bytes_stored and "
	    "bytes_evicted (the bytes of every entry removed: evicted, expired, or "
	    "replaced by a newer answer to the same key), so the bytes held are "
	    "bytes_stored - bytes_evicted. Identical requests that miss together each "
	    "call the model; the last answer stored is kept.",
};
