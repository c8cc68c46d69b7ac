/* corpus.h -- a directory of .txt and .md documents, read into a BM25 index. */
#ifndef RAG_CORPUS_H
#define RAG_CORPUS_H

#include <stddef.h>

#include "bm25.h"

/*
 * The documents of a corpus are the regular files under its directory, at
 * any depth, whose names end in ".txt" or ".md" (in any case).  Names that
 * start with '.' (files and directories) are left out; symbolic links to
 * files are followed, links to directories are not (so none can loop).
 * Documents are read in the byte order of their relative paths, so
 * passage numbers, and so the order of equal scores, do not depend on the
 * file system.
 */
struct rag_corpus {
	char **files;        /* paths relative to the directory, sorted */
	size_t n_files;
	size_t n_documents;  /* files that gave at least one passage */
	size_t bytes;        /* bytes read */
	struct bm25 *index;  /* a passage's doc is its index in files */
};

/*
 * Checks, without indexing, that dir can be a corpus: it is a directory,
 * every directory and document under it can be read, and at least one
 * document has a token.  Returns 0, or -1 with a message that starts
 * "corpus 'DIR'" in err.
 */
int rag_corpus_check(const char *dir, char *err, size_t errlen);

/*
 * Reads every document under dir, cuts it into passages of at most
 * max_passage bytes (see passage.h) and indexes them with BM25 parameters
 * k1 and b.  Returns the corpus, or NULL with a message in err (as for
 * rag_corpus_check, or "out of memory").  Free it with rag_corpus_free.
 */
struct rag_corpus *rag_corpus_load(const char *dir, size_t max_passage,
    double k1, double b, char *err, size_t errlen);

void rag_corpus_free(struct rag_corpus *c);

/*
 * The documents under dir, as rag_corpus_load reads them: *files gets
 * their paths relative to dir, sorted, and *n their number.  Returns 0, or
 * -1 with a message in err.  Free the list with rag_corpus_list_free.
 */
int rag_corpus_list(const char *dir, char ***files, size_t *n, char *err, size_t errlen);
void rag_corpus_list_free(char **files, size_t n);

#endif
