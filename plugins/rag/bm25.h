/* bm25.h -- an in-memory BM25 index of passages, and top-k search over it. */
#ifndef RAG_BM25_H
#define RAG_BM25_H

#include <stddef.h>
#include <stdint.h>

struct bm25;

struct bm25_hit {
	uint32_t passage; /* passage id: the order of bm25_add, from 0 */
	float score;
};

/*
 * An empty index with BM25 parameters k1 (term frequency saturation) and b
 * (length normalization, 0 to 1).  NULL if out of memory.
 */
struct bm25 *bm25_new(double k1, double b);
void bm25_free(struct bm25 *ix);

/*
 * Adds a passage (the text is copied) of document doc, a number the caller
 * gives meaning to.  Returns 0 when added; 1 when the text has no token
 * (see token.h), so it could never be found and was not added; -1 if out
 * of memory or past 2^32 passages, tokens or dictionary bytes (the index
 * is then unusable).  Only before bm25_finish.
 */
int bm25_add(struct bm25 *ix, uint32_t doc, const char *text, size_t len);

/*
 * Ends the building: computes every term's BM25 weight in every passage
 * and lays out the postings.  Returns 0, or -1 if out of memory.
 */
int bm25_finish(struct bm25 *ix);

/*
 * The k best passages for the query q[0, len), best first, into hits
 * (room for k); returns how many were found (0 if no query term is in the
 * index).  A passage's score is the sum, over the distinct query tokens it
 * contains, of
 *
 *     idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
 *     idf = ln(1 + (N - df + 0.5) / (df + 0.5))
 *
 * with tf the token's count in the passage, dl the passage's length and
 * avgdl the mean length, in tokens; N the number of passages, df how many
 * hold the token.  Equal scores rank the earlier passage first.  Only
 * after bm25_finish; uses scratch space in ix, so one search at a time.
 */
size_t bm25_search(struct bm25 *ix, const char *q, size_t len, size_t k,
    struct bm25_hit *hits);

/*
 * A searcher's own working space, so that several threads can search one
 * index at once (the index is then read only): score accumulators per
 * passage and a mark per term.  NULL when memory is short.
 */
struct bm25_scratch;
struct bm25_scratch *bm25_scratch_new(const struct bm25 *ix);
void bm25_scratch_free(struct bm25_scratch *sc);
/* As bm25_search, with sc's working space: ix is not written. */
size_t bm25_search_with(const struct bm25 *ix, struct bm25_scratch *sc, const char *q,
    size_t len, size_t k, struct bm25_hit *hits);

/* A passage's text (NUL-terminated) and its length, and its document. */
const char *bm25_passage(const struct bm25 *ix, uint32_t passage, size_t *len,
    uint32_t *doc);

size_t bm25_passages(const struct bm25 *ix);
size_t bm25_terms(const struct bm25 *ix);
size_t bm25_postings(const struct bm25 *ix);
/* Bytes the index holds: passage text, dictionary, postings, scratch. */
size_t bm25_bytes(const struct bm25 *ix);

#endif
