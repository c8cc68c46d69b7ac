/* rag.c -- stage: attaches the corpus passages that best match each request (BM25). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <porch/plugin.h>

#include "bm25.h"
#include "corpus.h"
#include "passage.h"

struct rag {
	struct rag_corpus *corpus;   /* shared by every copy of the stage (porch_shared) */
	struct bm25_scratch *scratch; /* this copy's: searches on its own thread */
	size_t top_k;
	size_t max_context;
	struct bm25_hit *hits;   /* top_k */
	struct rag_span *spans;  /* top_k */
	char *context;           /* max_context + 1 */
};

static const struct porch_param rag_params[] = {
	{ "corpus", PORCH_PARAM_PATH, NULL, 1, 0, NULL, PORCH_PARAM_REQUIRED,
	  "directory searched, at any depth, for the .txt and .md documents" },
	{ "top-k", PORCH_PARAM_INTEGER, "3", 1, 100, NULL, 0,
	  "most passages attached to a request, best first" },
	{ "max-context-bytes", PORCH_PARAM_SIZE, "4k", 16, 67108864, NULL, 0,
	  "bound on the context: whole passages while they fit, separators included" },
	{ "max-passage-bytes", PORCH_PARAM_SIZE, "1k", 64, 1048576, NULL, 0,
	  "longer paragraphs are cut at a sentence end, a space or a character" },
	{ "k1", PORCH_PARAM_NUMBER, "1.2", 0, 10, NULL, 0,
	  "BM25 term frequency saturation: 0 counts a term once, more counts repeats more" },
	{ "b", PORCH_PARAM_NUMBER, "0.75", 0, 1, NULL, 0,
	  "BM25 length normalization: 0 none, 1 scores by density in the passage" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static const char rag_description[] =
    "Finds the passages of a corpus of documents that best match each "
    "request's text, by BM25, and attaches them to the request as metadata, "
    "for a later stage to put into the prompt.  The request's text is not "
    "changed, and a request that matches nothing goes on, with an empty "
    "context.  In a conversation (an OpenAI chat request) the text searched is "
    "the last user message's, and the conversation itself is not changed: the "
    "context reaches the model only through a stage that writes it into the "
    "prompt (assemble: into the last user message, or in its chat form into "
    "the system message).\n"
    "\n"
    "Documents: every regular file under the corpus directory, at any depth, "
    "whose name ends in .txt or .md (in any case).  Names that start with a "
    "dot are left out; symbolic links are followed to files, not to "
    "directories.  porch check and porch run refuse a corpus that does not "
    "exist, cannot be read, or has no document with a word in it.  The index "
    "is built in memory when the stage starts (a log line gives its size and "
    "build time); changes to the files are not seen until porch starts "
    "again.\n"
    "\n"
    "Passages: a document is cut into paragraphs at blank lines, and a "
    "paragraph made only of Markdown headings (lines starting with #) is "
    "joined to the one after it.  Lines lose their trailing white space and "
    "are joined by one newline, so a passage never holds a blank line.  A "
    "paragraph longer than max-passage-bytes is cut at the last sentence end "
    "(. ! or ? before a space) that keeps at least half of it, else at the "
    "last space, else at a UTF-8 character boundary.\n"
    "\n"
    "Tokens: runs of ASCII letters and digits and of non-ASCII bytes, so "
    "that UTF-8 words stay whole; ASCII letters are lower-cased and every "
    "other byte separates tokens.  There is no stemming.  54 English stop "
    "words (the, of, and, what, how, does and the like) and tokens over 64 "
    "bytes are ignored, in documents and requests alike.\n"
    "\n"
    "Scoring: a passage's score is the sum, over the distinct tokens of the "
    "request that it holds, of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * "
    "dl / avgdl)), with idf = ln(1 + (N - df + 0.5) / (df + 0.5)); tf is the "
    "token's count in the passage, dl the passage's length and avgdl the mean "
    "length, in tokens, N the number of passages and df how many of them hold "
    "the token.  The top-k passages are kept, best first; equal scores keep "
    "corpus order (files by path, then by position).\n"
    "\n"
    "Metadata: context holds the passages, best first, joined by a blank "
    "line: whole passages only, for as long as the next one, with its "
    "separator, still fits in max-context-bytes.  If even the best passage "
    "is longer, it alone is cut at a UTF-8 character boundary.  rag.hits is "
    "the number of passages in the context (0, with an empty context, when "
    "no token of the request is in the corpus), and for N from 1 to "
    "rag.hits, rag.N.source is the passage's file, relative to the corpus "
    "directory, and rag.N.score its score, printed with four decimals.";

/* Refuses, when the pipeline is loaded, a corpus that could not be indexed. */
static int
rag_check(const porch_params *p, porch_check *c)
{
	char err[1024];
	if (rag_corpus_check(porch_param_str(p, "corpus"), err, sizeof err) != 0) {
		porch_check_error(c, "corpus", "%s", err);
		return -1;
	}
	return 0;
}

static void
rag_free(struct rag *r)
{
	if (r == NULL)
		return;
	bm25_scratch_free(r->scratch);
	free(r->hits);
	free(r->spans);
	free(r->context);
	free(r);
}

/* "12 KiB" or "3.4 MiB", for the log line. */
static const char *
human_size(size_t bytes, char *buf, size_t len)
{
	if (bytes < 1048576)
		snprintf(buf, len, "%zu KiB", (bytes + 1023) / 1024);
	else
		snprintf(buf, len, "%.1f MiB", (double)bytes / 1048576.0);
	return buf;
}

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* What the index is built from, for porch_shared's key. */
struct build {
	const char *dir;
	size_t max_passage;
	double k1, b;
	double ms;                /* how long it took: 0 when shared, not built */
};

static void *
build_index(void *arg, char *err, size_t errlen)
{
	struct build *b = arg;
	double t0 = now_ms();
	struct rag_corpus *c = rag_corpus_load(b->dir, b->max_passage, b->k1, b->b, err,
	    errlen);
	b->ms = now_ms() - t0;
	return c;
}

static void
free_index(void *obj)
{
	rag_corpus_free(obj);
}

/*
 * The key of the shared index: the corpus' path, the parameters that shape
 * the index, and each document's name, size and modification time, so a
 * reload after the corpus changed builds it again.  Hashed (FNV-1a) into
 * a short key.
 */
static int
index_key(const struct build *b, char *key, size_t len, char *err, size_t errlen)
{
	char **files = NULL;
	size_t n = 0;
	if (rag_corpus_list(b->dir, &files, &n, err, errlen) != 0)
		return -1;
	uint64_t h = 14695981039346656037ull;
	char buf[4200];
	for (size_t i = 0; i < n; i++) {
		struct stat sb;
		snprintf(buf, sizeof buf, "%s/%s", b->dir, files[i]);
		if (stat(buf, &sb) != 0)
			memset(&sb, 0, sizeof sb);
		int m = snprintf(buf, sizeof buf, "%s\n%lld\n%lld.%09ld\n", files[i],
		    (long long)sb.st_size, (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
		for (int k = 0; k < m && k < (int)sizeof buf; k++) {
			h ^= (unsigned char)buf[k];
			h *= 1099511628211ull;
		}
	}
	rag_corpus_list_free(files, n);
	snprintf(key, len, "rag %s %zu %.17g %.17g %zu %016llx", b->dir, b->max_passage,
	    b->k1, b->b, n, (unsigned long long)h);
	return 0;
}

/* Builds the index: the only slow part, done once per process (every
 * shard's copy of the stage, and a reload's, share it), before requests
 * flow. */
static int
rag_init(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	const char *dir = porch_param_str(p, "corpus");
	char err[1024];

	struct rag *r = calloc(1, sizeof *r);
	if (r == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	r->top_k = (size_t)porch_param_int(p, "top-k");
	r->max_context = (size_t)porch_param_int(p, "max-context-bytes");
	r->hits = calloc(r->top_k, sizeof *r->hits);
	r->spans = calloc(r->top_k, sizeof *r->spans);
	r->context = malloc(r->max_context + 1);
	if (r->hits == NULL || r->spans == NULL || r->context == NULL) {
		rag_free(r);
		porch_stage_error(st, "out of memory");
		return -1;
	}
	struct build b = { dir, (size_t)porch_param_int(p, "max-passage-bytes"),
		porch_param_number(p, "k1"), porch_param_number(p, "b"), 0 };
	char key[4400];
	if (index_key(&b, key, sizeof key, err, sizeof err) != 0 ||
	    (r->corpus = porch_shared(st, key, build_index, free_index, &b, err,
	    sizeof err)) == NULL ||
	    (r->scratch = bm25_scratch_new(r->corpus->index)) == NULL) {
		if (r->corpus != NULL)
			snprintf(err, sizeof err, "out of memory");
		rag_free(r);
		porch_stage_error(st, "%s", err);
		return -1;
	}
	const struct bm25 *ix = r->corpus->index;
	char read_s[32], mem_s[32];
	if (b.ms > 0)
		porch_stage_log(st, "indexed %zu documents (%s): %zu passages, %zu terms, "
		    "%s in memory, in %.0f ms", r->corpus->n_documents,
		    human_size(r->corpus->bytes, read_s, sizeof read_s), bm25_passages(ix),
		    bm25_terms(ix), human_size(bm25_bytes(ix), mem_s, sizeof mem_s), b.ms);
	else
		porch_stage_log(st, "shares the index of %zu documents built before "
		    "(%zu passages)", r->corpus->n_documents, bm25_passages(ix));
	porch_stage_set_data(st, r);
	return 0;
}

/* Scores, attaches the context and its sources, and passes the request on. */
static void
rag_process(porch_stage *st, porch_msg *m)
{
	struct rag *r = porch_stage_data(st);
	const struct bm25 *ix = r->corpus->index;
	size_t len = 0, clen;
	char key[32], val[64];

	const char *q = porch_msg_text(m, &len);
	if (q == NULL)
		len = 0;
	size_t n = bm25_search_with(ix, r->scratch, q, len, r->top_k, r->hits);
	for (size_t i = 0; i < n; i++)
		r->spans[i].text = bm25_passage(ix, r->hits[i].passage, &r->spans[i].len, NULL);
	size_t used = rag_context(r->context, r->max_context, r->spans, n, &clen);

	int rc = porch_msg_set_meta(m, "context", r->context);
	snprintf(val, sizeof val, "%zu", used);
	rc |= porch_msg_set_meta(m, "rag.hits", val);
	for (size_t i = 0; i < used; i++) {
		uint32_t doc;
		(void)bm25_passage(ix, r->hits[i].passage, NULL, &doc);
		snprintf(key, sizeof key, "rag.%zu.source", i + 1);
		rc |= porch_msg_set_meta(m, key, r->corpus->files[doc]);
		snprintf(key, sizeof key, "rag.%zu.score", i + 1);
		snprintf(val, sizeof val, "%.4f", (double)r->hits[i].score);
		rc |= porch_msg_set_meta(m, key, val);
	}
	if (rc != 0) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "rag: out of memory");
		return;
	}
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(st, m);
}

static void
rag_fini(porch_stage *st)
{
	rag_free(porch_stage_data(st));
	porch_stage_set_data(st, NULL);
}

static const char *const rag_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "rag",
	.summary = "attaches the corpus passages that best match each request (BM25) as context",
	.params = rag_params,
	.outputs = rag_outputs,
	.init = rag_init,
	.process = rag_process,
	.fini = rag_fini,
	.description = rag_description,
	.check = rag_check,
};
