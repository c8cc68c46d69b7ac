/* bm25.c -- an in-memory BM25 index of passages, and top-k search over it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "token.h"

/*
 * The dictionary is an open-addressing hash table (linear probing, at most
 * half full) of slots that hold a term's hash, id and first bytes; all of
 * the terms' bytes are in one arena.  While building, every token of a passage either starts a
 * (term, passage, tf) occurrence or counts into the one it started; at the
 * end a counting sort by term turns the occurrences into postings, one
 * array of (passage, weight) ordered by term and then by passage.  The
 * weight is the term's whole BM25 contribution to the passage: none of its
 * factors depends on the query, so a search only adds weights up, into an
 * accumulator per passage, and keeps the k best with a heap.
 */

struct term {
	uint32_t off;     /* its bytes: words[off, off + len) */
	uint32_t len;
	uint32_t df;      /* passages that hold it */
	uint32_t start;   /* after finish: its postings begin here */
	uint32_t last;    /* building: 1 + the last passage it was seen in;
	                     searching: the last query that used it */
	uint32_t occ;     /* building: its occurrence in that passage */
};

/*
 * A slot keeps the term's first 8 bytes, so that finding a term of up to
 * 8 bytes (most words) reads only its slot: one cache miss, not three.
 */
struct slot {
	uint64_t head;    /* the term's first 8 bytes, zero-padded */
	uint32_t tag;     /* the hash of all its bytes, its length in the low 8 bits */
	uint32_t id1;     /* term id + 1; 0: empty */
};

struct passage {
	size_t off;       /* its text: text[off, off + len), NUL after */
	uint32_t len;
	uint32_t doc;
	uint32_t dl;      /* tokens */
};

struct occurrence {
	uint32_t term, passage, tf;
};

struct posting {
	uint32_t passage;
	float w;
};

struct bm25 {
	double k1, b;
	int finished;

	struct passage *passages;
	size_t n_passages, cap_passages;
	char *text;
	size_t text_len, text_cap;
	uint64_t tokens;          /* sum of dl */

	struct term *terms;
	size_t n_terms, cap_terms;
	struct slot *slots;
	size_t cap_slots;         /* a power of two */
	char *words;
	size_t words_len, words_cap;

	struct occurrence *occ;   /* building only */
	size_t n_occ, cap_occ;

	struct posting *postings; /* after finish */
	size_t n_postings;

	float *acc;               /* searching: score per passage, 0 untouched */
	uint32_t *touched;        /* passages with acc != 0 */
	uint32_t query;           /* serial of the current query */
};

/*
 * Room for need items of size sz in array p of *cap items: returns p itself
 * when it has room, else the grown array (and updates *cap), or NULL if out
 * of memory (p is then unchanged).
 */
static void *
grow(void *p, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return p;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(p, n * sz);
	if (q != NULL)
		*cap = n;
	return q;
}

/* grow() for a field of ix: 0, or -1 if out of memory. */
#define GROW(field, cap, need) \
	((tmp = grow(ix->field, &ix->cap, (need), sizeof *ix->field)) == NULL ? -1 : \
	    (ix->field = tmp, 0))

/*
 * FNV-1a (64 bits) with MurmurHash3's final mix, so that the low bits (the
 * slot) and the high bits (the tag) both depend on every byte.
 */
static uint64_t
hash_bytes(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

struct bm25 *
bm25_new(double k1, double b)
{
	struct bm25 *ix = calloc(1, sizeof *ix);
	if (ix == NULL)
		return NULL;
	ix->k1 = k1;
	ix->b = b;
	ix->cap_slots = 1024;
	ix->slots = calloc(ix->cap_slots, sizeof *ix->slots);
	if (ix->slots == NULL) {
		free(ix);
		return NULL;
	}
	return ix;
}

void
bm25_free(struct bm25 *ix)
{
	if (ix == NULL)
		return;
	free(ix->passages);
	free(ix->text);
	free(ix->terms);
	free(ix->slots);
	free(ix->words);
	free(ix->occ);
	free(ix->postings);
	free(ix->acc);
	free(ix->touched);
	free(ix);
}

/* The first 8 bytes of t[0, n), zero-padded. */
static uint64_t
head_of(const char *t, size_t n)
{
	uint64_t head = 0;
	memcpy(&head, t, n < 8 ? n : 8);
	return head;
}

/* A slot's tag: 24 high bits of hash h, and the length (at most RAG_TOKEN_MAX). */
static uint32_t
tag_of(uint64_t h, size_t n)
{
	return ((uint32_t)(h >> 32) & ~0xFFu) | (uint32_t)n;
}

/* The id of term t[0, n) with hash h, or -1. */
static int64_t
lookup(const struct bm25 *ix, const char *t, size_t n, uint64_t h)
{
	size_t mask = ix->cap_slots - 1;
	uint64_t head = head_of(t, n);
	uint32_t tag = tag_of(h, n);
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct slot *s = &ix->slots[i];
		if (s->id1 == 0)
			return -1;
		if (s->tag != tag || s->head != head)
			continue;
		/* same length and first 8 bytes: the same term, if it is that short */
		if (n <= 8)
			return s->id1 - 1;
		const struct term *tm = &ix->terms[s->id1 - 1];
		if (memcmp(ix->words + tm->off, t, n) == 0)
			return s->id1 - 1;
	}
}

/* Doubles the table.  Returns 0, or -1 if out of memory. */
static int
rehash(struct bm25 *ix)
{
	size_t cap = ix->cap_slots * 2, mask = cap - 1;
	struct slot *slots = calloc(cap, sizeof *slots);
	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < ix->cap_slots; i++) {
		struct slot s = ix->slots[i];
		if (s.id1 == 0)
			continue;
		const struct term *tm = &ix->terms[s.id1 - 1];
		size_t j = hash_bytes(ix->words + tm->off, tm->len) & mask;
		while (slots[j].id1 != 0)
			j = (j + 1) & mask;
		slots[j] = s;
	}
	free(ix->slots);
	ix->slots = slots;
	ix->cap_slots = cap;
	return 0;
}

/* The id of term t[0, n), added if new; -1 if out of memory or too many. */
static int64_t
intern(struct bm25 *ix, const char *t, size_t n)
{
	void *tmp;
	uint64_t h = hash_bytes(t, n);
	int64_t id = lookup(ix, t, n, h);
	if (id >= 0)
		return id;
	if (ix->n_terms >= UINT32_MAX - 1 || ix->words_len + n > UINT32_MAX)
		return -1;
	/* at most half full, so probes stay short and a free slot exists */
	if ((ix->n_terms + 1) * 2 > ix->cap_slots && rehash(ix) != 0)
		return -1;
	if (GROW(terms, cap_terms, ix->n_terms + 1) != 0 ||
	    GROW(words, words_cap, ix->words_len + n) != 0)
		return -1;
	struct term *tm = &ix->terms[ix->n_terms];
	memset(tm, 0, sizeof *tm);
	tm->off = (uint32_t)ix->words_len;
	tm->len = (uint32_t)n;
	memcpy(ix->words + ix->words_len, t, n);
	ix->words_len += n;

	size_t mask = ix->cap_slots - 1, i = h & mask;
	while (ix->slots[i].id1 != 0)
		i = (i + 1) & mask;
	ix->slots[i].head = head_of(t, n);
	ix->slots[i].tag = tag_of(h, n);
	ix->slots[i].id1 = (uint32_t)(ix->n_terms + 1);
	return (int64_t)ix->n_terms++;
}

int
bm25_add(struct bm25 *ix, uint32_t doc, const char *text, size_t len)
{
	char tok[RAG_TOKEN_MAX];
	size_t pos = 0, n;
	void *tmp;

	if (ix->finished)
		return -1;
	if (!rag_token_any(text, len))
		return 1;
	if (ix->n_passages >= UINT32_MAX - 1 || len > UINT32_MAX)
		return -1;
	if (GROW(passages, cap_passages, ix->n_passages + 1) != 0 ||
	    GROW(text, text_cap, ix->text_len + len + 1) != 0)
		return -1;
	uint32_t pid = (uint32_t)ix->n_passages;
	struct passage *p = &ix->passages[pid];
	p->off = ix->text_len;
	p->len = (uint32_t)len;
	p->doc = doc;
	p->dl = 0;
	memcpy(ix->text + ix->text_len, text, len);
	ix->text[ix->text_len + len] = '\0';
	ix->text_len += len + 1;
	ix->n_passages++;

	while ((n = rag_token_next(text, len, &pos, tok)) > 0) {
		int64_t id = intern(ix, tok, n);
		if (id < 0)
			return -1;
		struct term *tm = &ix->terms[id];
		if (p->dl == UINT32_MAX)
			return -1;
		p->dl++;
		if (tm->last == pid + 1) {
			ix->occ[tm->occ].tf++;
			continue;
		}
		if (ix->n_occ >= UINT32_MAX || GROW(occ, cap_occ, ix->n_occ + 1) != 0)
			return -1;
		tm->last = pid + 1;
		tm->occ = (uint32_t)ix->n_occ;
		tm->df++;
		ix->occ[ix->n_occ++] = (struct occurrence){ (uint32_t)id, pid, 1 };
	}
	ix->tokens += p->dl;
	return 0;
}

/* Gives back what the doubling arrays hold beyond their use (a quarter, on average). */
static void
shrink(struct bm25 *ix)
{
	void *p;
	if (ix->text_len > 0 && (p = realloc(ix->text, ix->text_len)) != NULL) {
		ix->text = p;
		ix->text_cap = ix->text_len;
	}
	if (ix->n_passages > 0 &&
	    (p = realloc(ix->passages, ix->n_passages * sizeof *ix->passages)) != NULL) {
		ix->passages = p;
		ix->cap_passages = ix->n_passages;
	}
	if (ix->n_terms > 0 && (p = realloc(ix->terms, ix->n_terms * sizeof *ix->terms)) != NULL) {
		ix->terms = p;
		ix->cap_terms = ix->n_terms;
	}
	if (ix->words_len > 0 && (p = realloc(ix->words, ix->words_len)) != NULL) {
		ix->words = p;
		ix->words_cap = ix->words_len;
	}
}

int
bm25_finish(struct bm25 *ix)
{
	size_t np = ix->n_passages;
	if (ix->finished)
		return 0;
	ix->postings = malloc((ix->n_occ ? ix->n_occ : 1) * sizeof *ix->postings);
	ix->acc = calloc(np ? np : 1, sizeof *ix->acc);
	ix->touched = malloc((np ? np : 1) * sizeof *ix->touched);
	double *norm = malloc((np ? np : 1) * sizeof *norm);
	double *idf = malloc((ix->n_terms ? ix->n_terms : 1) * sizeof *idf);
	if (ix->postings == NULL || ix->acc == NULL || ix->touched == NULL || norm == NULL ||
	    idf == NULL) {
		free(norm);
		free(idf);
		return -1;
	}

	/* k1 * (1 - b + b * dl / avgdl), per passage */
	double avgdl = np ? (double)ix->tokens / (double)np : 1;
	for (size_t i = 0; i < np; i++)
		norm[i] = ix->k1 * (1 - ix->b + ix->b * ix->passages[i].dl / avgdl);

	/* counting sort by term: term.start is where its postings begin, and
	 * term.last, no longer needed, is where the next one goes */
	uint32_t at = 0;
	for (size_t t = 0; t < ix->n_terms; t++) {
		double df = ix->terms[t].df;
		idf[t] = log(1 + ((double)np - df + 0.5) / (df + 0.5));
		ix->terms[t].start = at;
		ix->terms[t].last = at;
		at += ix->terms[t].df;
	}
	for (size_t i = 0; i < ix->n_occ; i++) {
		const struct occurrence *o = &ix->occ[i];
		struct term *tm = &ix->terms[o->term];
		double tf = o->tf;
		double w = idf[o->term] * tf * (ix->k1 + 1) / (tf + norm[o->passage]);
		ix->postings[tm->last++] = (struct posting){ o->passage, (float)w };
	}
	for (size_t t = 0; t < ix->n_terms; t++)
		ix->terms[t].last = 0;
	ix->n_postings = ix->n_occ;
	free(norm);
	free(idf);
	free(ix->occ);
	ix->occ = NULL;
	ix->n_occ = ix->cap_occ = 0;
	shrink(ix);
	ix->finished = 1;
	return 0;
}

/* Is hit a worse than hit b?  Lower score, then later passage. */
static int
worse(struct bm25_hit a, struct bm25_hit b)
{
	return a.score < b.score || (a.score == b.score && a.passage > b.passage);
}

/* Restores the min-heap (worst hit on top) below i. */
static void
sift_down(struct bm25_hit *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && worse(h[l], h[m]))
			m = l;
		if (r < n && worse(h[r], h[m]))
			m = r;
		if (m == i)
			return;
		struct bm25_hit t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/*
 * The k best of the nt passages in touched, by their score in acc (which
 * goes back to 0 for the next search), best first, into hits: a heap
 * whose top is the worst of those kept.  Returns how many (at most k).
 */
static size_t
top_k(const uint32_t *touched, size_t nt, float *acc, struct bm25_hit *hits, size_t k)
{
	size_t nh = 0;
	for (size_t i = 0; i < nt; i++) {
		uint32_t pid = touched[i];
		struct bm25_hit c = { pid, acc[pid] };
		acc[pid] = 0;
		if (nh < k) {
			/* sift up */
			size_t j = nh++;
			while (j > 0 && worse(c, hits[(j - 1) / 2])) {
				hits[j] = hits[(j - 1) / 2];
				j = (j - 1) / 2;
			}
			hits[j] = c;
		} else if (worse(hits[0], c)) {
			hits[0] = c;
			sift_down(hits, nh, 0);
		}
	}
	/* best first: take the worst off the top, filling from the back */
	for (size_t m = nh; m > 1; m--) {
		struct bm25_hit t = hits[0];
		hits[0] = hits[m - 1];
		hits[m - 1] = t;
		sift_down(hits, m - 1, 0);
	}
	return nh;
}

size_t
bm25_search(struct bm25 *ix, const char *q, size_t len, size_t k, struct bm25_hit *hits)
{
	char tok[RAG_TOKEN_MAX];
	size_t pos = 0, n, nt = 0;

	if (!ix->finished || ix->n_passages == 0 || k == 0)
		return 0;
	/* term.last marks the terms this query used already, to count each once */
	if (++ix->query == 0) {
		for (size_t t = 0; t < ix->n_terms; t++)
			ix->terms[t].last = 0;
		ix->query = 1;
	}
	while ((n = rag_token_next(q, len, &pos, tok)) > 0) {
		int64_t id = lookup(ix, tok, n, hash_bytes(tok, n));
		if (id < 0)
			continue;
		struct term *tm = &ix->terms[id];
		if (tm->last == ix->query)
			continue;
		tm->last = ix->query;
		const struct posting *p = ix->postings + tm->start, *end = p + tm->df;
		float *acc = ix->acc;
		uint32_t *touched = ix->touched;
		for (; p < end; p++) {
			if (acc[p->passage] == 0)
				touched[nt++] = p->passage;
			acc[p->passage] += p->w;
		}
	}
	return top_k(ix->touched, nt, ix->acc, hits, k);
}

const char *
bm25_passage(const struct bm25 *ix, uint32_t passage, size_t *len, uint32_t *doc)
{
	const struct passage *p = &ix->passages[passage];
	if (len != NULL)
		*len = p->len;
	if (doc != NULL)
		*doc = p->doc;
	return ix->text + p->off;
}

size_t
bm25_passages(const struct bm25 *ix)
{
	return ix->n_passages;
}

size_t
bm25_terms(const struct bm25 *ix)
{
	return ix->n_terms;
}

size_t
bm25_postings(const struct bm25 *ix)
{
	return ix->finished ? ix->n_postings : ix->n_occ;
}

size_t
bm25_bytes(const struct bm25 *ix)
{
	size_t np = ix->finished ? ix->n_passages : 0;
	return sizeof *ix + ix->cap_passages * sizeof *ix->passages + ix->text_cap +
	    ix->cap_terms * sizeof *ix->terms + ix->cap_slots * sizeof *ix->slots +
	    ix->words_cap + ix->cap_occ * sizeof *ix->occ +
	    ix->n_postings * sizeof *ix->postings + np * (sizeof *ix->acc + sizeof *ix->touched);
}

struct bm25_scratch {
	float *acc;               /* score per passage, 0 untouched */
	uint32_t *touched;        /* passages with acc != 0 */
	uint32_t *seen;           /* per term: the query that used it last */
	uint32_t query;
};

struct bm25_scratch *
bm25_scratch_new(const struct bm25 *ix)
{
	struct bm25_scratch *sc = calloc(1, sizeof *sc);
	size_t np = ix->n_passages ? ix->n_passages : 1;
	if (sc == NULL)
		return NULL;
	sc->acc = calloc(np, sizeof *sc->acc);
	sc->touched = malloc(np * sizeof *sc->touched);
	sc->seen = calloc(ix->n_terms ? ix->n_terms : 1, sizeof *sc->seen);
	if (sc->acc == NULL || sc->touched == NULL || sc->seen == NULL) {
		bm25_scratch_free(sc);
		return NULL;
	}
	return sc;
}

void
bm25_scratch_free(struct bm25_scratch *sc)
{
	if (sc == NULL)
		return;
	free(sc->acc);
	free(sc->touched);
	free(sc->seen);
	free(sc);
}

size_t
bm25_search_with(const struct bm25 *ix, struct bm25_scratch *sc, const char *q, size_t len,
    size_t k, struct bm25_hit *hits)
{
	char tok[RAG_TOKEN_MAX];
	size_t pos = 0, n, nt = 0;

	if (!ix->finished || ix->n_passages == 0 || k == 0)
		return 0;
	if (++sc->query == 0) {
		memset(sc->seen, 0, (ix->n_terms ? ix->n_terms : 1) * sizeof *sc->seen);
		sc->query = 1;
	}
	while ((n = rag_token_next(q, len, &pos, tok)) > 0) {
		int64_t id = lookup(ix, tok, n, hash_bytes(tok, n));
		if (id < 0 || sc->seen[id] == sc->query)
			continue;
		sc->seen[id] = sc->query;
		const struct term *tm = &ix->terms[id];
		const struct posting *p = ix->postings + tm->start, *end = p + tm->df;
		for (; p < end; p++) {
			if (sc->acc[p->passage] == 0)
				sc->touched[nt++] = p->passage;
			sc->acc[p->passage] += p->w;
		}
	}
	return top_k(sc->touched, nt, sc->acc, hits, k);
}
