/*
 * labels.h -- the classify stage's labels, the prefix it reads, and its
 * heuristics.  Free of the plugin API: tests/classify-accuracy links this
 * code directly.
 */
#ifndef PORCH_CLASSIFY_LABELS_H
#define PORCH_CLASSIFY_LABELS_H

#include <stddef.h>

enum cls_category {
	CLS_CODE,
	CLS_REASONING,
	CLS_CREATIVE,
	CLS_EXTRACTION,
	CLS_SUMMARY,
	CLS_CLASSIFICATION,
	CLS_CHAT,
	CLS_N_CATEGORIES
};

enum cls_complexity {
	CLS_SIMPLE,
	CLS_MODERATE,
	CLS_COMPLEX,
	CLS_N_COMPLEXITIES
};

struct cls_labels {
	enum cls_category category;
	enum cls_complexity complexity;
};

/* "code" ... "chat", "simple" ... "complex": the metadata values */
extern const char *const cls_category_names[CLS_N_CATEGORIES];
extern const char *const cls_complexity_names[CLS_N_COMPLEXITIES];

/* The label named by the n bytes at s, in any case; -1 if none. */
int cls_category_of(const char *s, size_t n);
int cls_complexity_of(const char *s, size_t n);

/*
 * The length in bytes of the first `chars` characters of text (len
 * bytes): UTF-8 sequences stay whole, and a byte that starts none counts
 * as one character.
 */
size_t cls_prefix(const char *text, size_t len, size_t chars);

/* The heuristics' keywords, indexed by a hash of their words: made once
 * with cls_index_init, then only read. */
#define CLS_INDEX_SLOTS 1024
struct cls_index {
	unsigned short slot[CLS_INDEX_SLOTS]; /* a keyword's place + 1, 0: free */
	unsigned short stem[8];               /* the places of stems (word*) */
	unsigned char stem_len[8];
	unsigned n_stems;
	/* bits by the hash of a phrase's first word: phrases of 2 and of 3 */
	unsigned char first2[CLS_INDEX_SLOTS / 8], first3[CLS_INDEX_SLOTS / 8];
};
void cls_index_init(struct cls_index *ix);

/* The heuristics' labels of text (len bytes: the prefix), in O(len). */
void cls_heuristic(const struct cls_index *ix, const char *text, size_t len,
    struct cls_labels *out);

#endif /* PORCH_CLASSIFY_LABELS_H */
