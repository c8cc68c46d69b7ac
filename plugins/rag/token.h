/* token.h -- rag's tokeniser: the words that documents and questions are indexed by. */
#ifndef RAG_TOKEN_H
#define RAG_TOKEN_H

#include <stddef.h>

/*
 * Longest token kept, in bytes.  Longer runs of letters and digits are
 * hashes, base64 or packed identifiers that nobody asks about; dropping
 * them keeps the dictionary small and every token fits a stack buffer.
 */
#define RAG_TOKEN_MAX 64

/*
 * Finds the next token of s[*pos, len) and advances *pos past it.  A token
 * is a run of ASCII letters and digits and of bytes >= 0x80 (so UTF-8
 * letters stay inside words); everything else separates tokens.  ASCII
 * letters are lower-cased into out, which has room for RAG_TOKEN_MAX bytes;
 * other bytes are copied as they are.  Stop words and tokens longer than
 * RAG_TOKEN_MAX are skipped.  Returns the token's length, or 0 when s has
 * no more tokens.  Cannot fail.
 */
size_t rag_token_next(const char *s, size_t len, size_t *pos, char *out);

/* 1 if t[0, n) (lower case) is one of the stop words, else 0. */
int rag_token_is_stop(const char *t, size_t n);

/* 1 if s[0, len) has at least one token, else 0. */
int rag_token_any(const char *s, size_t len);

#endif
