/* token.c -- rag's tokeniser: lower-cased ASCII words, UTF-8 kept, stop words dropped. */
#include <string.h>

#include "token.h"

/*
 * The 54 stop words, grouped by length: Lucene's English stop set (33
 * words), and the question words and pronouns that questions put in front
 * of what they ask about ("what does porch check do?"), which are rare in
 * documents and so would weigh more than the words that matter.
 */
static const char *const stop1[] = { "a", "i", NULL };
static const char *const stop2[] = {
	"an", "as", "at", "be", "by", "do", "if", "in", "is", "it", "me", "my",
	"no", "of", "on", "or", "so", "to", "we", NULL
};
static const char *const stop3[] = {
	"and", "are", "but", "can", "did", "for", "how", "its", "not", "our",
	"the", "was", "who", "why", "you", NULL
};
static const char *const stop4[] = {
	"does", "into", "such", "that", "then", "they", "this", "what", "when",
	"will", "with", "your", NULL
};
static const char *const stop5[] = {
	"their", "there", "these", "where", "which", "whose", NULL
};

/* Byte classes: 0 separates tokens, 1 is kept as is, 2 is ASCII upper case. */
static const unsigned char token_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
	0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0,
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

int
rag_token_is_stop(const char *t, size_t n)
{
	const char *const *list;
	switch (n) {
	case 1: list = stop1; break;
	case 2: list = stop2; break;
	case 3: list = stop3; break;
	case 4: list = stop4; break;
	case 5: list = stop5; break;
	default: return 0;
	}
	/* every word of the list has n bytes: the first byte rules most out */
	for (; *list != NULL; list++)
		if ((*list)[0] == t[0] && memcmp(*list + 1, t + 1, n - 1) == 0)
			return 1;
	return 0;
}

size_t
rag_token_next(const char *s, size_t len, size_t *pos, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = *pos;
	for (;;) {
		while (i < len && token_class[p[i]] == 0)
			i++;
		if (i == len) {
			*pos = i;
			return 0;
		}
		size_t n = 0;
		int too_long = 0;
		for (; i < len && token_class[p[i]] != 0; i++) {
			if (n == RAG_TOKEN_MAX) {
				too_long = 1;
				continue;
			}
			out[n++] = token_class[p[i]] == 2 ? (char)(p[i] | 0x20) : (char)p[i];
		}
		if (too_long || rag_token_is_stop(out, n))
			continue;
		*pos = i;
		return n;
	}
}

int
rag_token_any(const char *s, size_t len)
{
	char tok[RAG_TOKEN_MAX];
	size_t pos = 0;
	return rag_token_next(s, len, &pos, tok) > 0;
}
